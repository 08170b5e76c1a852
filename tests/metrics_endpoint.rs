//! The Prometheus endpoint of `sensor replay --metrics`, scraped while a
//! replay runs: the capture is fed through standard input in two parts, so
//! the test decides when the sensor has more to read, and every scrape is
//! parsed strictly (every sample belongs to a family announced by `# HELP`
//! and `# TYPE`, no sample twice). Counters move between scrapes, never go
//! down, and the final numbers (`--metrics-file`) add up to the summary the
//! sensor prints and to the records it writes.

use flowbench::{Interleave, MixConfig, RealisticFlows};
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::LinkType;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn sensor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowmon-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A scrape: samples by family, then by their label set.
#[derive(Clone, Debug, Default)]
struct Scrape {
    families: BTreeMap<String, (String, BTreeMap<String, f64>)>,
}

impl Scrape {
    /// The value of `family` with exactly `labels` (rendered `a="b",c="d"`).
    fn get(&self, family: &str, labels: &str) -> f64 {
        let (_, samples) = self
            .families
            .get(family)
            .unwrap_or_else(|| panic!("no family {family}"));
        *samples
            .get(labels)
            .unwrap_or_else(|| panic!("no sample {family}{{{labels}}} in {samples:?}"))
    }

    fn total(&self, family: &str) -> f64 {
        self.get(family, "")
    }

    /// Sum over every sample of a family.
    fn sum(&self, family: &str) -> f64 {
        self.families
            .get(family)
            .map_or(0.0, |(_, s)| s.values().sum())
    }

    /// Samples of a family by the value of one label.
    fn by(&self, family: &str, label: &str) -> HashMap<String, f64> {
        let (_, samples) = &self.families[family];
        samples
            .iter()
            .map(|(labels, v)| {
                let value = labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{label}=\"")))
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("{family}{{{labels}}} has no {label}"));
                (value.to_owned(), *v)
            })
            .collect()
    }
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses Prometheus' text format strictly; panics on anything off.
fn parse_exposition(text: &str) -> Scrape {
    assert!(text.ends_with('\n'), "the last line ends with a line feed");
    let mut scrape = Scrape::default();
    let mut helped: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_name(name), "{line}");
            assert!(!help.is_empty(), "{line}");
            assert!(
                helped.insert(name.to_owned(), help.to_owned()).is_none(),
                "HELP twice: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            assert!(helped.contains_key(name), "TYPE before HELP: {line}");
            let prev = scrape
                .families
                .insert(name.to_owned(), (kind.to_owned(), BTreeMap::new()));
            assert!(prev.is_none(), "TYPE twice: {line}");
            if kind == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "counter names end in _total: {line}"
                );
            }
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        assert!(value >= 0.0 && value.fract() == 0.0, "{line}");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels = rest.strip_suffix('}').expect("labels end with }");
                for pair in split_labels(labels) {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    assert!(valid_name(k) && !k.contains(':'), "label name in {line}");
                    assert!(
                        v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
                        "{line}"
                    );
                }
                (name, labels)
            }
            None => (series, ""),
        };
        let Some((_, samples)) = scrape.families.get_mut(name) else {
            panic!("sample of an undeclared family: {line}");
        };
        assert!(
            samples.insert(labels.to_owned(), value).is_none(),
            "sample twice: {line}"
        );
    }
    for name in helped.keys() {
        assert!(
            scrape.families.contains_key(name),
            "HELP without TYPE: {name}"
        );
    }
    scrape
}

/// Splits `a="x",b="y,z"` at the commas between labels (not inside quotes,
/// minding `\"` escapes).
fn split_labels(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    assert!(!quoted, "unterminated label value in {s}");
    out.push(&s[start..]);
    out
}

/// One HTTP request; returns status, headers (lower-case names) and body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, HashMap<String, String>, String) {
    http_get_within(addr, path, Duration::from_secs(20))
}

/// [`http_get`], failing when the answer takes longer than `patience`.
fn http_get_within(
    addr: SocketAddr,
    path: &str,
    patience: Duration,
) -> (u16, HashMap<String, String>, String) {
    let mut s = TcpStream::connect_timeout(&addr, patience).unwrap();
    s.set_read_timeout(Some(patience)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .unwrap_or_else(|e| panic!("no answer to {path} within {patience:?}: {e}"));
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP head and body");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (status, headers, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_exposition(&body)
}

/// Scrapes until `done` holds (the sensor works at its own pace).
fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = scrape(addr);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_counters_never_go_down(before: &Scrape, after: &Scrape) {
    for (name, (kind, samples)) in &before.families {
        if kind != "counter" {
            continue;
        }
        for (labels, v) in samples {
            assert!(
                after.get(name, labels) >= *v,
                "{name}{{{labels}}} went down"
            );
        }
    }
}

/// A generated capture and the byte offset after its first `split` packets.
fn capture(seed: u64, flows: usize, split: usize) -> (Vec<u8>, usize, u64) {
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    let mut frames = Interleave::new(RealisticFlows::new(MixConfig::new(seed, flows)));
    let mut buf = Vec::new();
    while let Some(ts) = frames.next_into(&mut buf) {
        w.write_packet(ts, &buf, buf.len() as u32).unwrap();
    }
    let packets = w.packets();
    let bytes = w.into_inner().unwrap();
    // Walk the records: a 24-byte file header, then 16 + caplen each.
    let mut at = 24;
    for _ in 0..split {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    (bytes, at, packets)
}

/// The number after `label` in the summary, e.g. `packets: 123`.
fn summary_number(summary: &str, label: &str) -> u64 {
    let at = summary
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {summary}"));
    summary[at + label.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn metrics_move_during_a_replay_and_add_up_to_the_summary() {
    let (pcap, split, packets) = capture(11, 6_000, 30_000);
    assert!(packets > 60_000, "{packets} packets");
    let textfile = tmp("final.prom");
    let mut child = sensor()
        .args([
            "replay",
            "-",
            "-w",
            "3",
            "--no-progress",
            "--metrics",
            "127.0.0.1:0",
        ])
        .arg("--metrics-file")
        .arg(&textfile)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let records = std::thread::spawn(move || BufReader::new(stdout).lines().count() as u64);
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let addr: SocketAddr = first
        .strip_prefix("sensor: metrics at http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("first line names the endpoint: {first}"))
        .parse()
        .unwrap();

    // Nothing read yet: the families are there, at zero.
    let empty = scrape(addr);
    assert_eq!(empty.total("flowmon_packets_total"), 0.0);
    assert_eq!(empty.families["flowmon_flows_live"].0, "gauge");
    assert_eq!(http_get(addr, "/other").0, 404);

    stdin.write_all(&pcap[..split]).unwrap();
    stdin.flush().unwrap();
    let a = scrape_until(addr, "the first part", |s| {
        s.total("flowmon_packets_total") > 0.0 && s.total("flowmon_flows_created_total") > 0.0
    });
    assert!(a.total("flowmon_packets_total") <= 30_000.0);

    stdin.write_all(&pcap[split..]).unwrap();
    stdin.flush().unwrap();
    let b = scrape_until(addr, "the second part", |s| {
        s.total("flowmon_packets_total") > 30_000.0
    });
    assert_counters_never_go_down(&a, &b);
    for moved in [
        "flowmon_packets_total",
        "flowmon_bytes_total",
        "flowmon_packets_decoded_total",
        "flowmon_flows_created_total",
    ] {
        assert!(b.total(moved) > a.total(moved), "{moved} did not move");
    }
    assert!(b.sum("flowmon_flows_ended_total") > a.sum("flowmon_flows_ended_total"));

    drop(stdin); // end of input: the sensor flushes and exits
    let status = child.wait().unwrap();
    let summary: Vec<String> = rx.iter().collect();
    let summary = summary.join("\n");
    assert!(status.success(), "{summary}");
    let written = records.join().unwrap();

    let end = parse_exposition(&std::fs::read_to_string(&textfile).unwrap());
    assert_counters_never_go_down(&b, &end);
    // The final numbers are the summary's.
    assert_eq!(end.total("flowmon_packets_total") as u64, packets);
    assert_eq!(summary_number(&summary, "packets:"), packets);
    let bytes = summary_number(&summary, &format!("packets: {packets} ("));
    assert_eq!(end.total("flowmon_bytes_total") as u64, bytes);
    assert_eq!(
        end.total("flowmon_packets_decoded_total") as u64,
        summary_number(&summary, "1 file,")
    );
    let created = summary_number(&summary, "flows:");
    assert_eq!(end.total("flowmon_flows_created_total") as u64, created);
    assert_eq!(
        end.get("flowmon_records_exported_total", "exporter=\"conn\"") as u64,
        written
    );
    assert_eq!(summary_number(&summary, "created,"), written);
    assert_eq!(
        end.sum("flowmon_weirds_total") as u64,
        summary_number(&summary, "weirds:")
    );
    // Every flow created has ended, once, under its reason; interim
    // records aside, one record per flow.
    let ended = end.by("flowmon_flows_ended_total", "reason");
    let finals: f64 = ended
        .iter()
        .filter(|(r, _)| *r != "active")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(finals as u64, created);
    assert_eq!(ended.values().sum::<f64>() as u64, written);
    for (reason, n) in &ended {
        if *n > 0.0 {
            assert!(
                summary.contains(&format!("{reason} {n}")),
                "{reason} {n}: {summary}"
            );
        }
    }
    assert!(ended["eof"] > 0.0, "the end of input flushed open flows");
    assert_eq!(end.total("flowmon_flows_live"), 0.0);
    assert_eq!(
        end.get(
            "flowmon_drops_total",
            "stage=\"dispatcher\",reason=\"shard_queue_full\""
        ),
        0.0,
        "replay is lossless"
    );
    assert_eq!(end.sum("flowmon_export_failures_total"), 0.0);
}

#[test]
fn alert_metrics_match_the_detector_summary() {
    let textfile = tmp("alerts.prom");
    let alerts = tmp("alerts.json");
    let demo = repo().join("demo/msp-demo.pcap");
    let rules = repo().join("rules/examples/demo.toml");
    let o = sensor()
        .args(["replay", "--no-progress", "-o", "/dev/null"])
        .arg("--rules")
        .arg(&rules)
        .arg("--alerts")
        .arg(&alerts)
        .arg("--metrics-file")
        .arg(&textfile)
        .arg(&demo)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{summary}");
    let end = parse_exposition(&std::fs::read_to_string(&textfile).unwrap());
    let line = summary
        .lines()
        .find(|l| l.starts_with("alerts: "))
        .expect("alert summary");
    // alerts: 35 raised (beacon 7, ...), severities (critical 27, ...), ...
    let by_reason = end.by("flowmon_alerts_total", "reason");
    let by_severity = end.by("flowmon_alerts_by_severity_total", "severity");
    assert!(!by_reason.is_empty());
    for (reason, n) in &by_reason {
        assert!(
            line.contains(&format!("{reason} {n}")),
            "{reason} {n}: {line}"
        );
    }
    for (severity, n) in &by_severity {
        assert!(
            line.contains(&format!("{severity} {n}")),
            "{severity} {n}: {line}"
        );
    }
    let raised = summary_number(line, "alerts:");
    assert_eq!(by_reason.values().sum::<f64>() as u64, raised);
    assert_eq!(by_severity.values().sum::<f64>() as u64, raised);
    let lines = std::fs::read_to_string(&alerts).unwrap().lines().count() as u64;
    assert_eq!(
        end.get("flowmon_records_exported_total", "exporter=\"alerts\"") as u64,
        lines
    );
    assert_eq!(summary_number(line, "folded,"), lines);
}

#[test]
fn a_port_in_use_is_an_error_before_anything_is_read() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let demo = repo().join("demo/msp-demo.pcap");
    let o = sensor()
        .args(["replay", "--no-progress", "--metrics", &addr.to_string()])
        .arg(&demo)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("metrics endpoint: cannot listen on {addr}")),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "no record was written");
    assert!(!err.contains("packets:"), "nothing was replayed: {err}");
}

#[test]
fn the_exposition_parser_rejects_samples_outside_a_family() {
    let bad = std::panic::catch_unwind(|| parse_exposition("x_total 1\n"));
    assert!(bad.is_err());
    let bad = std::panic::catch_unwind(|| {
        parse_exposition("# HELP x_total X.\n# TYPE x_total counter\nx_total 1\nx_total 2\n")
    });
    assert!(bad.is_err());
    let ok =
        parse_exposition("# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"1,\\\"2\"} 1\n");
    assert_eq!(ok.get("x_total", "a=\"1,\\\"2\""), 1.0);
}

#[test]
fn export_failures_are_counted_by_reason() {
    let demo = repo().join("demo/msp-demo.pcap");
    // A full disk: the write fails, the run ends with exit 1, and the final
    // numbers still reach the metrics file.
    let textfile = tmp("full.prom");
    let o = sensor()
        .args([
            "replay",
            "--no-progress",
            "-o",
            "/dev/full",
            "--metrics-file",
        ])
        .arg(&textfile)
        .arg(&demo)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let end = parse_exposition(&std::fs::read_to_string(&textfile).unwrap());
    assert!(
        end.get(
            "flowmon_export_failures_total",
            "exporter=\"conn\",reason=\"write_error\""
        ) >= 1.0
    );

    // A reader that goes away: the run stops with exit 1 and the error,
    // the failure is counted as `output_closed`, and the records counted as
    // exported are exactly those the error says were written and flushed.
    let textfile = tmp("closed.prom");
    let mut child = sensor()
        .args(["replay", "--no-progress", "-w", "1", "--metrics-file"])
        .arg(&textfile)
        .arg(&demo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("{\"ts\":"));
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the reader closed the pipe"), "{stderr}");
    let flushed: f64 = stderr
        .split(" after ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no written count in: {stderr}"));
    let end = parse_exposition(&std::fs::read_to_string(&textfile).unwrap());
    let written = end.get("flowmon_records_exported_total", "exporter=\"conn\"");
    let closed = end.get(
        "flowmon_export_failures_total",
        "exporter=\"conn\",reason=\"output_closed\"",
    );
    assert_eq!(closed, 1.0);
    assert_eq!(written, flushed);
    assert!(written < 633.0);
}

/// A metrics file that could not be written at the end is refused at the
/// start, before a packet is read.
#[test]
fn a_metrics_file_in_a_missing_directory_is_refused_before_anything_runs() {
    let textfile = tmp("no-such-dir").join("final.prom");
    let o = sensor()
        .args(["replay", "--no-progress", "-w", "1", "--metrics-file"])
        .arg(&textfile)
        .arg(repo().join("demo/msp-demo.pcap"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write the metrics file")
            && stderr.contains("final.prom: No such file or directory (os error 2)")
            && stderr.matches("os error").count() == 1,
        "{stderr}"
    );
    assert!(o.stdout.is_empty(), "no record was written");
    assert!(!stderr.contains("packets:"), "nothing ran: {stderr}");
}

/// A sensor that is killed if the test ends before it does.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Regression: the endpoint answered every request on one thread, so a
/// client that pipelined scrapes and never read the answers blocked every
/// other scrape, and stopping the endpoint waited for that thread: after
/// SIGTERM the sensor kept running until the client went away.
///
/// `sensor live` on loopback, so the run lasts until the signal; capturing
/// needs root (as the live capture test; CI runs as root).
#[test]
fn a_client_that_never_reads_holds_up_neither_scrapes_nor_shutdown() {
    let records = tmp("stuck-client.json");
    let mut child = Running(
        sensor()
            .args(["live", "-i", "lo", "-w", "1", "--metrics", "127.0.0.1:0"])
            .arg("-o")
            .arg(&records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let addr: SocketAddr = first
        .strip_prefix("sensor: metrics at http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("first line names the endpoint (root is needed): {first}"))
        .parse()
        .unwrap();

    // 3000 scrapes on one connection, none of the answers read. The
    // writer may block once the buffers are full, or fail once the sensor
    // closes the connection: either way the socket stays open, unread.
    let stuck = TcpStream::connect(addr).unwrap();
    let mut writer = stuck.try_clone().unwrap();
    let pipelined = std::thread::spawn(move || {
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        for _ in 0..3000 {
            if writer.write_all(request.as_bytes()).is_err() {
                break;
            }
        }
    });
    // And a client that starts a request and never finishes it.
    let mut silent = TcpStream::connect(addr).unwrap();
    silent.write_all(b"GET /metr").unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // Another scraper is answered, promptly and in full.
    let patience = Duration::from_secs(5);
    let (status, _, body) = http_get_within(addr, "/metrics", patience);
    assert_eq!(status, 200);
    let s = parse_exposition(&body);
    assert!(s.families.contains_key("flowmon_packets_total"));

    // SIGTERM ends the run within a few seconds, with its summary, while
    // both clients are still connected: the end waits for neither the one
    // that does not read nor the request that never completes (which
    // would hold its worker for 5 s).
    let st = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(4),
            "the sensor still runs {:?} after SIGTERM",
            signalled.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let summary: Vec<String> = rx.iter().collect();
    let summary = summary.join("\n");
    assert!(status.success(), "{status}: {summary}");
    assert!(summary.contains("packets:"), "{summary}");
    assert!(
        summary.contains("sensor: stopped by signal on lo; every open flow flushed"),
        "{summary}"
    );
    drop((stuck, silent));
    pipelined.join().unwrap();
}
