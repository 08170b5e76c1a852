//! Helpers shared by the corpus tests: locating the capture corpus, running
//! `sensor replay`, and parsing the reference outputs (Zeek conn logs, tshark
//! conversation tables, argus flow lists) and the known-differences file.
//!
//! Each test binary that declares `mod common;` uses only a subset of this.
#![allow(dead_code)]

pub mod compare;
pub mod known;
pub mod tools;
pub mod zeek;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Environment variable that overrides the corpus location.
pub const CORPUS_ENV: &str = "FLOWMON_CORPUS";
/// Environment variable that, when `1`, lets the corpus tests pass without a corpus.
pub const ALLOW_MISSING_ENV: &str = "FLOWMON_ALLOW_MISSING_CORPUS";

/// Exit codes of `sensor replay` (see the sensor's CLI documentation).
pub const EXIT_OK: i32 = 0;
/// The input is unusable (bad magic, unsupported link type, ...).
pub const EXIT_UNUSABLE: i32 = 2;
/// The input ended early (truncated or corrupt file); records before it were processed.
pub const EXIT_TRUNCATED: i32 = 3;

/// A replay that takes longer than this is treated as hung.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);

/// The developer capture corpus (`pcaps/` + `expected/`).
#[derive(Debug, Clone)]
pub struct Corpus {
    pub root: PathBuf,
}

impl Corpus {
    /// Finds the corpus: `$FLOWMON_CORPUS`, else `../shared/corpus` relative to
    /// the repository root.
    ///
    /// A missing corpus is a hard failure (a test that silently passes without
    /// its inputs proves nothing) unless `FLOWMON_ALLOW_MISSING_CORPUS=1`, in
    /// which case this returns `None` and the caller skips.
    pub fn locate() -> Option<Corpus> {
        let root = match std::env::var_os(CORPUS_ENV) {
            Some(dir) => PathBuf::from(dir),
            // CARGO_MANIFEST_DIR is <repo>/sensor for this test target.
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
        };
        if root.join("pcaps").is_dir() && root.join("expected").is_dir() {
            return Some(Corpus { root });
        }
        if std::env::var(ALLOW_MISSING_ENV).as_deref() == Ok("1") {
            eprintln!(
                "SKIPPED: capture corpus not found at {} ({ALLOW_MISSING_ENV}=1)",
                root.display()
            );
            return None;
        }
        panic!(
            "capture corpus not found: expected directories pcaps/ and expected/ under {}.\n\
             Set {CORPUS_ENV}=/path/to/corpus, or set {ALLOW_MISSING_ENV}=1 to skip the \
             corpus tests deliberately.",
            root.display()
        );
    }

    /// File names of every capture in `pcaps/`, sorted.
    pub fn captures(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join("pcaps"))
            .expect("read corpus pcaps/ directory")
            .map(|entry| {
                entry
                    .expect("read corpus directory entry")
                    .file_name()
                    .into_string()
                    .expect("capture file names are UTF-8")
            })
            .collect();
        names.sort();
        assert!(!names.is_empty(), "corpus pcaps/ directory is empty");
        names
    }

    pub fn pcap_path(&self, capture: &str) -> PathBuf {
        self.root.join("pcaps").join(capture)
    }

    /// `expected/<capture>.<suffix>`, if that file exists.
    pub fn expected(&self, capture: &str, suffix: &str) -> Option<PathBuf> {
        let path = self
            .root
            .join("expected")
            .join(format!("{capture}.{suffix}"));
        path.is_file().then_some(path)
    }
}

/// Reads a whole reference file, panicking with its path on failure.
pub fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// One connection record, from our JSON output or from a Zeek log.
///
/// `None` means Zeek's unset value `-` (or, in our JSON, an absent field).
/// Whether Zeek's log *has* a column at all is tracked separately, by
/// [`zeek::ZeekLog::has`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conn {
    pub ts: Option<f64>,
    pub uid: Option<String>,
    pub orig_h: Option<IpAddr>,
    pub orig_p: Option<u16>,
    pub resp_h: Option<IpAddr>,
    pub resp_p: Option<u16>,
    pub proto: Option<String>,
    pub service: Option<String>,
    pub duration: Option<f64>,
    pub orig_bytes: Option<u64>,
    pub resp_bytes: Option<u64>,
    pub conn_state: Option<String>,
    pub missed_bytes: Option<u64>,
    pub history: Option<String>,
    pub orig_pkts: Option<u64>,
    pub orig_ip_bytes: Option<u64>,
    pub resp_pkts: Option<u64>,
    pub resp_ip_bytes: Option<u64>,
    pub tunnel_parents: Vec<String>,
    pub ip_proto: Option<u8>,
    pub vlan: Option<u16>,
    pub inner_vlan: Option<u16>,
    /// Why the sensor emitted the record (ours only; Zeek has no such field).
    pub end_reason: Option<String>,
}

impl Conn {
    /// Parses one line of `sensor replay --format json` output.
    pub fn from_json_line(line: &str) -> Result<Conn, String> {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("invalid JSON ({e}): {line}"))?;
        let obj = value
            .as_object()
            .ok_or_else(|| format!("not a JSON object: {line}"))?;
        let string = |key: &str| -> Result<Option<String>, String> {
            match obj.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("field {key} is not a string: {other}")),
            }
        };
        let float = |key: &str| -> Result<Option<f64>, String> {
            match obj.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| format!("field {key} is not a number: {v}")),
            }
        };
        let count = |key: &str| -> Result<Option<u64>, String> {
            match obj.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("field {key} is not a non-negative integer: {v}")),
            }
        };
        let small = |key: &str| -> Result<Option<u16>, String> {
            count(key)?
                .map(|n| u16::try_from(n).map_err(|_| format!("field {key} out of range: {n}")))
                .transpose()
        };
        let addr = |key: &str| -> Result<Option<IpAddr>, String> {
            string(key)?
                .map(|s| {
                    s.parse()
                        .map_err(|e| format!("field {key}: bad address {s:?}: {e}"))
                })
                .transpose()
        };
        let tunnel_parents = match obj.get("tunnel_parents") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("tunnel_parents item is not a string: {v}"))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("tunnel_parents is not an array: {other}")),
        };
        Ok(Conn {
            ts: float("ts")?,
            uid: string("uid")?,
            orig_h: addr("id.orig_h")?,
            orig_p: small("id.orig_p")?,
            resp_h: addr("id.resp_h")?,
            resp_p: small("id.resp_p")?,
            proto: string("proto")?,
            service: string("service")?,
            duration: float("duration")?,
            orig_bytes: count("orig_bytes")?,
            resp_bytes: count("resp_bytes")?,
            conn_state: string("conn_state")?,
            missed_bytes: count("missed_bytes")?,
            history: string("history")?,
            orig_pkts: count("orig_pkts")?,
            orig_ip_bytes: count("orig_ip_bytes")?,
            resp_pkts: count("resp_pkts")?,
            resp_ip_bytes: count("resp_ip_bytes")?,
            tunnel_parents,
            ip_proto: count("ip_proto")?
                .map(|n| u8::try_from(n).map_err(|_| format!("ip_proto out of range: {n}")))
                .transpose()?,
            vlan: small("vlan")?,
            inner_vlan: small("inner_vlan")?,
            end_reason: string("end_reason")?,
        })
    }

    /// orig_pkts + resp_pkts (absent counts as 0).
    pub fn total_pkts(&self) -> u64 {
        self.orig_pkts.unwrap_or(0) + self.resp_pkts.unwrap_or(0)
    }

    /// The flow as a human-readable string used in reports and in
    /// `known-differences.toml`, e.g. `tcp 10.0.0.1:1234 -> 10.0.0.2:80 vlan=42`.
    /// Unknown parts (columns a zeek-cut subset lacks) print as `?`.
    pub fn flow_id(&self) -> String {
        fn opt<T: ToString>(v: &Option<T>) -> String {
            v.as_ref().map_or_else(|| "?".to_owned(), T::to_string)
        }
        fn host(v: &Option<IpAddr>) -> String {
            match v {
                Some(IpAddr::V6(a)) => format!("[{a}]"),
                Some(IpAddr::V4(a)) => a.to_string(),
                None => "?".to_owned(),
            }
        }
        let mut id = format!(
            "{} {}:{} -> {}:{}",
            opt(&self.proto),
            host(&self.orig_h),
            opt(&self.orig_p),
            host(&self.resp_h),
            opt(&self.resp_p)
        );
        match (self.vlan, self.inner_vlan) {
            (Some(outer), Some(inner)) => id.push_str(&format!(" vlan={outer}/{inner}")),
            (Some(outer), None) => id.push_str(&format!(" vlan={outer}")),
            (None, Some(inner)) => id.push_str(&format!(" vlan=?/{inner}")),
            (None, None) => {}
        }
        id
    }
}

/// What one `sensor replay --format json CAPTURE` run produced.
#[derive(Debug, Clone)]
pub struct ReplayRun {
    /// Exit code, or `None` if the process was killed by a signal or timed out.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub stderr: String,
    /// Parsed records, sorted by (ts, flow id) so that matching is deterministic.
    pub conns: Vec<Conn>,
    /// stdout lines that were not valid records.
    pub bad_lines: Vec<String>,
}

impl ReplayRun {
    pub fn panicked(&self) -> bool {
        self.exit_code == Some(101) || self.stderr.contains("panicked")
    }
}

/// Runs `sensor replay --format json` on one file, with a timeout.
pub fn replay(pcap: &Path) -> ReplayRun {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["replay", "--format", "json"])
        .arg(pcap)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn sensor replay {}: {e}", pcap.display()));

    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));

    let started = Instant::now();
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("wait for sensor") {
            break (Some(status), false);
        }
        if started.elapsed() > REPLAY_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = stdout.join().expect("stdout reader thread");
    let stderr = stderr.join().expect("stderr reader thread");

    let mut conns = Vec::new();
    let mut bad_lines = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        match Conn::from_json_line(line) {
            Ok(conn) => conns.push(conn),
            Err(e) => bad_lines.push(e),
        }
    }
    conns.sort_by(|a, b| {
        a.ts.unwrap_or(f64::MAX)
            .total_cmp(&b.ts.unwrap_or(f64::MAX))
            .then_with(|| a.flow_id().cmp(&b.flow_id()))
    });
    ReplayRun {
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        stderr,
        conns,
        bad_lines,
    }
}

/// Replays every capture of the corpus once per test process and caches the
/// result, since three tests need the same runs.
pub fn replay_all(corpus: &Corpus) -> &'static BTreeMap<String, ReplayRun> {
    static RUNS: OnceLock<BTreeMap<String, ReplayRun>> = OnceLock::new();
    RUNS.get_or_init(|| {
        corpus
            .captures()
            .into_iter()
            .map(|capture| {
                let run = replay(&corpus.pcap_path(&capture));
                (capture, run)
            })
            .collect()
    })
}
