//! Refusing a command whose output would overwrite one of its own files:
//! `-o` naming an input capture, the rule file or the alerts file would
//! truncate it before it is read, or interleave two writers in one file.
//! Existing files are compared by device and inode (hard links, symbolic
//! links and `..` name one file alike).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file a command names, and the option (or argument) that named it.
#[derive(Clone, Copy, Debug)]
pub struct NamedPath<'a> {
    /// How the user named it: `-o`, `--alerts`, `capture file`.
    pub role: &'a str,
    /// The path as given.
    pub path: &'a Path,
}

impl<'a> NamedPath<'a> {
    /// `path`, named by `role`.
    pub fn new(role: &'a str, path: &'a Path) -> NamedPath<'a> {
        NamedPath { role, path }
    }

    /// `path`, named by `role`, when the option was given.
    pub fn of(role: &'a str, path: Option<&'a Path>) -> Option<NamedPath<'a>> {
        path.map(|p| NamedPath::new(role, p))
    }
}

/// Not a file two writers can spoil: something that exists and is not a
/// regular file (`/dev/null`, a FIFO).
fn is_not_a_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| !m.is_file())
}

/// Which file a path names.
#[derive(PartialEq, Eq, Debug)]
enum FileId {
    /// An existing file: its device and inode, so that hard links,
    /// symbolic links and `..` all name it alike.
    Inode(u64, u64),
    /// A file the command would create: its canonical directory joined
    /// with its name.
    New(PathBuf),
}

/// Which file `p` names.
fn resolved(p: &Path) -> FileId {
    if let Ok(m) = std::fs::metadata(p) {
        return FileId::Inode(m.dev(), m.ino());
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    FileId::New(match (parent.canonicalize(), p.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
    })
}

/// The files among `paths`, each with the file it names.
fn files<'a>(paths: &[NamedPath<'a>]) -> Vec<(NamedPath<'a>, FileId)> {
    paths
        .iter()
        .filter(|p| !is_not_a_file(p.path))
        .map(|p| (*p, resolved(p.path)))
        .collect()
}

/// The first output that is the same file as another output or as an
/// input, as a message naming both; `None` when every output is a file of
/// its own. Devices such as `/dev/null` are never a clash; callers leave
/// out what stands for standard input or output (`-` where it does).
pub fn clash(outputs: &[NamedPath<'_>], inputs: &[NamedPath<'_>]) -> Option<String> {
    let (outs, ins) = (files(outputs), files(inputs));
    for (i, (out, at)) in outs.iter().enumerate() {
        if let Some((other, _)) = outs[..i].iter().find(|(_, a)| a == at) {
            return Some(format!(
                "{} {} and {} {} are the same file: give each output a file of its own",
                other.role,
                other.path.display(),
                out.role,
                out.path.display()
            ));
        }
        if let Some((input, _)) = ins.iter().find(|(_, a)| a == at) {
            return Some(format!(
                "{} {} is also the {} {}: writing it would destroy the input before it is read",
                out.role,
                out.path.display(),
                input.role,
                input.path.display()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("flowmon-paths-{}", std::process::id()));
        std::fs::create_dir_all(d.join("sub")).unwrap();
        d
    }

    #[test]
    fn outputs_naming_one_file_clash_even_when_spelt_differently() {
        let d = dir();
        let a = d.join("out.log");
        let b = d.join("sub/../out.log");
        let m = clash(
            &[NamedPath::new("-o", &a), NamedPath::new("--alerts", &b)],
            &[],
        )
        .expect("one file");
        assert!(m.starts_with("-o ") && m.contains("--alerts"), "{m}");
        assert!(clash(
            &[
                NamedPath::new("-o", &a),
                NamedPath::new("--alerts", &d.join("alerts.log"))
            ],
            &[]
        )
        .is_none());
    }

    #[test]
    fn an_output_that_is_an_input_clashes_through_a_symlink_too() {
        let d = dir();
        let input = d.join("in.pcap");
        std::fs::write(&input, b"x").unwrap();
        let link = d.join("link.pcap");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let m = clash(
            &[NamedPath::new("-o", &link)],
            &[NamedPath::new("capture file", &input)],
        )
        .expect("the same file");
        assert!(m.contains("capture file"), "{m}");
    }

    #[test]
    fn devices_never_clash() {
        let p = Path::new("/dev/null");
        assert!(clash(
            &[NamedPath::new("-o", p), NamedPath::new("--alerts", p)],
            &[NamedPath::new("capture file", p)]
        )
        .is_none());
    }

    #[test]
    fn a_hard_link_to_an_input_clashes() {
        let d = dir();
        let input = d.join("linked.pcap");
        std::fs::write(&input, b"x").unwrap();
        let hard = d.join("hard.pcap");
        let _ = std::fs::remove_file(&hard);
        std::fs::hard_link(&input, &hard).unwrap();
        assert!(clash(
            &[NamedPath::new("-o", &hard)],
            &[NamedPath::new("capture file", &input)],
        )
        .is_some());
    }
}
