//! Captures the unit tests read: the bundled demo and every classic pcap
//! of the shared corpus (`../shared/corpus`, or `$FLOWMON_CORPUS`).

use std::path::{Path, PathBuf};

/// The demo capture, then the corpus's `.pcap` files (none when the corpus
/// is not there).
pub(crate) fn demo_and_corpus_pcaps() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("demo/msp-demo.pcap")];
    let corpus = std::env::var_os("FLOWMON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/corpus"))
        .join("pcaps");
    if let Ok(dir) = std::fs::read_dir(corpus) {
        let mut found: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}
