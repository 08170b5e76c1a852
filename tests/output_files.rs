//! Files that behave: rotation by size and by capture time on a real replay
//! (every record exactly once across the rotated files, names following
//! the documented scheme, nothing overwritten), and write failures (a full
//! disk, a closed pipe) ending with the documented message and exit code.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn demo() -> String {
    repo().join("demo/msp-demo.pcap").display().to_string()
}

fn rules() -> String {
    repo()
        .join("rules/examples/demo.toml")
        .display()
        .to_string()
}

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("flowmon-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sensor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(args)
        .output()
        .expect("sensor runs")
}

fn ok(args: &[&str]) -> Output {
    let o = sensor(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    o
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Closed files of `active` in `dir`, in write order, after checking each
/// name is `<active>.<YYYYMMDDTHHMMSSZ>.<n>`; returns (stamp, n, path).
fn closed_files(dir: &Path, active: &str) -> Vec<(String, u32, PathBuf)> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&format!("{active}.")) else {
            continue;
        };
        let (stamp, n) = rest.split_once('.').unwrap_or_else(|| panic!("{name}"));
        let b = stamp.as_bytes();
        assert!(
            b.len() == 16
                && b[8] == b'T'
                && b[15] == b'Z'
                && stamp[..8].bytes().all(|c| c.is_ascii_digit())
                && stamp[9..15].bytes().all(|c| c.is_ascii_digit()),
            "{name} does not follow <name>.<YYYYMMDDTHHMMSSZ>.<n>"
        );
        let n: u32 = n.parse().unwrap_or_else(|_| panic!("{name}"));
        files.push((stamp.to_owned(), n, dir.join(&name)));
    }
    files.sort();
    files
}

fn concat(files: &[(String, u32, PathBuf)]) -> String {
    files
        .iter()
        .map(|(_, _, p)| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn rotation_by_size_keeps_every_record_exactly_once_in_named_files() {
    let d = dir("size");
    let whole = d.join("whole.json");
    ok(&["replay", "-q", &demo(), "-o", whole.to_str().unwrap()]);
    let whole = std::fs::read_to_string(whole).unwrap();
    let active = d.join("conn.json");
    ok(&[
        "replay",
        "-q",
        &demo(),
        "-o",
        active.to_str().unwrap(),
        "--rotate-size",
        "32K",
    ]);
    assert!(!active.exists(), "the last file is closed at the end");
    let files = closed_files(&d, "conn.json");
    let longest = whole.lines().map(str::len).max().unwrap() as u64 + 1;
    assert!(files.len() >= 4, "{} files", files.len());
    for (i, (_, _, p)) in files.iter().enumerate() {
        let size = std::fs::metadata(p).unwrap().len();
        assert!(
            size < 32 * 1024 + longest,
            "{} holds {size} bytes",
            p.display()
        );
        if i + 1 < files.len() {
            assert!(size >= 32 * 1024, "{} closed early", p.display());
        }
    }
    // Every record exactly once, in order, no line split across files.
    assert_eq!(concat(&files), whole);
    assert_eq!(whole.lines().count(), 633);

    // A second run into the same place never overwrites: its files take the
    // next free numbers, the first run's stay as they were.
    let before: Vec<String> = files
        .iter()
        .map(|(_, _, p)| std::fs::read_to_string(p).unwrap())
        .collect();
    ok(&[
        "replay",
        "-q",
        &demo(),
        "-o",
        active.to_str().unwrap(),
        "--rotate-size",
        "32K",
    ]);
    let after = closed_files(&d, "conn.json");
    assert!(after.len() >= 2 * files.len() - 1, "{after:?}");
    for ((_, _, p), text) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read_to_string(p).unwrap(), text);
    }
}

/// Regression: a closed file was named from the capture time of its first
/// entry, and a deduplicated alert's final count (`update`, written when
/// its window closes) carries the older time the alert was raised, so the
/// file written last could sort before files written earlier.
#[test]
fn rotated_names_sort_in_write_order_when_an_update_carries_an_older_time() {
    let d = dir("order");
    let (whole, whole_alerts) = (d.join("whole.json"), d.join("whole-alerts.json"));
    ok(&[
        "replay",
        "-q",
        &demo(),
        "-o",
        whole.to_str().unwrap(),
        "--rules",
        &rules(),
        "--alerts",
        whole_alerts.to_str().unwrap(),
    ]);
    let whole_alerts = std::fs::read_to_string(whole_alerts).unwrap();
    let times: Vec<(String, f64)> = whole_alerts
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["event"].as_str().unwrap().to_owned(),
                v["ts"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(
        times
            .windows(2)
            .any(|w| w[1].0 == "update" && w[1].1 < w[0].1.floor()),
        "the demo writes an update older than the alert before it: {times:?}"
    );

    // One line per file: every line closes its file.
    let (active, alerts) = (d.join("conn.json"), d.join("alerts.json"));
    ok(&[
        "replay",
        "-q",
        &demo(),
        "-o",
        active.to_str().unwrap(),
        "--rules",
        &rules(),
        "--alerts",
        alerts.to_str().unwrap(),
        "--rotate-size",
        "1",
    ]);
    let files = closed_files(&d, "alerts.json");
    assert_eq!(files.len(), times.len());
    // Sorted by stamp, then number, the files give the lines in the order
    // they were written.
    assert_eq!(concat(&files), whole_alerts);
    // Each stamp is its line's capture time, or the stamp before it when
    // that is later; equal stamps are numbered in write order.
    let mut before: Option<(i64, u32)> = None;
    for ((stamp, n, p), (event, ts)) in files.iter().zip(&times) {
        let secs = hour_secs(stamp);
        let expected = before.map_or(ts.floor() as i64, |(b, _)| b.max(ts.floor() as i64));
        assert_eq!(secs, expected, "{event} at {ts} in {}", p.display());
        if let Some((b, m)) = before.filter(|(b, _)| *b == secs) {
            assert!(*n > m, "{} after number {m} of {b}", p.display());
        }
        before = Some((secs, *n));
    }
    assert_eq!(
        concat(&closed_files(&d, "conn.json")),
        std::fs::read_to_string(whole).unwrap()
    );
}

#[test]
fn rotation_by_capture_time_cuts_records_and_alerts_at_hour_boundaries() {
    let d = dir("time");
    let (whole, whole_alerts) = (d.join("whole.log"), d.join("whole-alerts.json"));
    ok(&[
        "replay",
        "-q",
        &demo(),
        "-f",
        "zeek",
        "-o",
        whole.to_str().unwrap(),
        "--rules",
        &rules(),
        "--alerts",
        whole_alerts.to_str().unwrap(),
    ]);
    let (active, alerts) = (d.join("conn.log"), d.join("alerts.json"));
    ok(&[
        "replay",
        "-q",
        &demo(),
        "-f",
        "zeek",
        "-o",
        active.to_str().unwrap(),
        "--rules",
        &rules(),
        "--alerts",
        alerts.to_str().unwrap(),
        "--rotate-interval",
        "1h",
    ]);
    let files = closed_files(&d, "conn.log");
    // The demo spans 24 hours of capture time: one file per hour.
    assert!(files.len() >= 24, "{} files", files.len());
    let data = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    let mut records = Vec::new();
    for (stamp, n, p) in &files {
        assert_eq!(*n, 1);
        assert!(
            stamp.ends_with("0000Z"),
            "{stamp} is not on an hour boundary"
        );
        let text = std::fs::read_to_string(p).unwrap();
        // Each file is a complete Zeek log: header and #close.
        assert!(text.starts_with("#separator"), "{}", p.display());
        assert!(text.lines().last().unwrap().starts_with("#close"));
        let start = hour_secs(stamp);
        for line in data(&text) {
            // A record is due (timeout, end) in its file's hour, so it
            // started before that hour ended.
            let ts: f64 = line.split('\t').next().unwrap().parse().unwrap();
            assert!(ts < (start + 3600) as f64, "{line} in {stamp}");
            records.push(line);
        }
    }
    assert_eq!(records, data(&std::fs::read_to_string(whole).unwrap()));
    assert_eq!(records.len(), 633);

    let alert_files = closed_files(&d, "alerts.json");
    assert!(alert_files.len() >= 2);
    for (stamp, _, p) in &alert_files {
        let start = hour_secs(stamp);
        for line in std::fs::read_to_string(p).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ts = v["ts"].as_f64().unwrap();
            assert!(ts < (start + 3600) as f64, "{line}");
            // Raised alerts come in capture-time order, each in its hour;
            // a deduplicated alert's final count (`update`) is written when
            // its window closes, into the file open then.
            if v["event"] == "alert" {
                assert!(ts >= start as f64, "{line}");
            }
        }
    }
    assert_eq!(
        concat(&alert_files),
        std::fs::read_to_string(whole_alerts).unwrap()
    );
}

/// Seconds since the epoch of a `YYYYMMDDTHHMMSSZ` stamp.
fn hour_secs(stamp: &str) -> i64 {
    let n = |a: usize, b: usize| stamp[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(4, 6), n(6, 8));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(9, 11) * 3600 + n(11, 13) * 60 + n(13, 15)
}

#[test]
fn records_to_a_full_disk_end_with_a_clear_error_and_exit_1() {
    let o = sensor(&["replay", "-q", &demo(), "-o", "/dev/full"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "cannot write records to /dev/full (no space left on the device) \
             after 0 records were written and flushed"
        ),
        "{err}"
    );
    assert!(err.contains("os error 28"), "{err}");
    // Nothing is reported as written.
    assert!(!err.contains("records written"), "{err}");
}

#[test]
fn alerts_to_a_full_disk_end_with_a_clear_error_and_exit_1() {
    let d = dir("full-alerts");
    let records = d.join("conn.json");
    // Customer A's users to customer B's server: every connection is
    // alerted on (no relationship between two customers), over many batches.
    let pcap = udp_conversations(&d, "a-to-b.pcap", "10.20", "10.30.10.5:5000");
    let o = sensor(&[
        "replay",
        "-q",
        pcap.to_str().unwrap(),
        "--rules",
        &rules(),
        "--alerts",
        "/dev/full",
        "-o",
        records.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "cannot write alerts to /dev/full (no space left on the device) \
             after 0 alerts were written and flushed"
        ),
        "{err}"
    );
    // The run stopped at the first failed batch: not every record made it.
    let written = std::fs::read_to_string(records).unwrap().lines().count();
    assert!(written < 120, "{written} records after the alerts failed");
}

#[test]
fn stdout_to_a_pipe_whose_reader_closed_ends_with_a_clear_error_and_exit_1() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["replay", "-q", &demo()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The read end is dropped here: the sensor's next writes hit a closed pipe.
    let o = child.wait_with_output().unwrap();
    assert!(first.starts_with('{'));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("cannot write records to standard output (the reader closed the pipe) after "),
        "{err}"
    );
    assert!(err.contains("os error 32"), "{err}");
    // The count it reports is at most what exists.
    let n: u64 = err
        .split(" after ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(n < 633, "{err}");
}

/// Regression: the output buffer flushed itself when it filled, in the
/// middle of a batch, and those lines were not counted: `sensor replay
/// big.pcap | head -1000` said "after 0 records were written and flushed"
/// although head had printed a thousand. Lines are now flushed and counted
/// whenever 32 KiB wait, so what a reader got exceeds the count by at most
/// one such stretch (the one being flushed when the pipe closed).
#[test]
fn a_reader_that_stops_after_a_thousand_lines_is_told_they_were_written() {
    let d = dir("head");
    // Cut short, as a capture is: thousands of flows still open at the end
    // are flushed together, in one batch far larger than the buffer.
    let pcap = mixed_capture(&d, 6_000, 30_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["replay", "-q", "-w", "1", pcap.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 4096];
    while got.iter().filter(|b| **b == b'\n').count() < 1000 {
        let n = std::io::Read::read(&mut out, &mut buf).unwrap();
        assert!(n > 0, "the sensor wrote fewer than 1000 lines");
        got.extend_from_slice(&buf[..n]);
    }
    drop(out); // as head does once it has its lines
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let reported: usize = err
        .split_once("(the reader closed the pipe) after ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    let lines: Vec<&[u8]> = got
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .collect();
    let shortest = lines.iter().map(|l| l.len()).min().unwrap();
    let longest = lines.iter().map(|l| l.len()).max().unwrap();
    let stretch = (32 * 1024 + longest) / shortest + 1;
    assert!(
        reported + stretch >= lines.len(),
        "{reported} reported as written, {} read ({err})",
        lines.len()
    );
}

/// The first `packets` packets of a generated mix of `flows` users',
/// resolver and internet flows (the benchmark's), in `dir/mix.pcap`.
fn mixed_capture(dir: &Path, flows: usize, packets: usize) -> PathBuf {
    use flowbench::{Interleave, MixConfig, RealisticFlows};
    use flowlib::pcap_writer::{PcapWriter, Resolution};
    use flowlib::LinkType;
    let path = dir.join("mix.pcap");
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut w = PcapWriter::new(file, Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    let mut frames = Interleave::new(RealisticFlows::new(MixConfig::new(7, flows)));
    let mut buf = Vec::new();
    for _ in 0..packets {
        let ts = frames.next_into(&mut buf).expect("enough packets");
        w.write_packet(ts, &buf, buf.len() as u32).unwrap();
    }
    std::io::Write::flush(&mut w.into_inner().unwrap()).unwrap();
    path
}

/// A capture of 120 UDP conversations of 400 packets each, one after the
/// other, written with our own pcap writer: the records come out a few at
/// a time over many batches.
fn generated_capture(dir: &Path) -> PathBuf {
    udp_conversations(dir, "udp.pcap", "10.1", "10.2.0.1:53")
}

/// 120 UDP conversations of 400 packets each, one after the other, from
/// clients in `client_net`.0.y to `server`, written to `dir/name`.
fn udp_conversations(dir: &Path, name: &str, client_net: &str, server: &str) -> PathBuf {
    use flowbench::{packets, Conversation, DEFAULT_START};
    use flowlib::pcap_writer::{PcapWriter, Resolution};
    use flowlib::LinkType;
    use std::time::Duration;
    let path = dir.join(name);
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut w = PcapWriter::new(file, Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    for i in 0..120u16 {
        let client = format!("{client_net}.{}.{}:{}", i / 200, i % 200 + 1, 40_000 + i);
        let start = DEFAULT_START.plus(Duration::from_secs(5 * u64::from(i)));
        let conv = Conversation::udp(client.parse().unwrap(), server.parse().unwrap(), start)
            .bytes(40, 120)
            .rounds(200);
        for (ts, frame) in packets(&conv) {
            w.write_packet(ts, &frame, frame.len() as u32).unwrap();
        }
    }
    std::io::Write::flush(&mut w.into_inner().unwrap()).unwrap();
    path
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `96k`) on a fresh directory; `None`
    /// when not root and FLOWMON_ALLOW_NO_TMPFS=1 says to skip.
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !root && std::env::var("FLOWMON_ALLOW_NO_TMPFS").as_deref() == Ok("1") {
            eprintln!("SKIPPED: full-disk test needs root to mount a tmpfs");
            return None;
        }
        let dir = dir(name);
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(
            st.success(),
            "mounting a {size} tmpfs failed: this test needs root (CI runs as root); \
             set FLOWMON_ALLOW_NO_TMPFS=1 to skip it deliberately"
        );
        Some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_disk_that_fills_mid_run_reports_only_what_was_flushed() {
    let d = dir("midrun");
    let pcap = generated_capture(&d);
    let whole = d.join("whole.json");
    ok(&[
        "replay",
        "-q",
        pcap.to_str().unwrap(),
        "-o",
        whole.to_str().unwrap(),
    ]);
    let whole = std::fs::read_to_string(whole).unwrap();
    let whole: Vec<&str> = whole.lines().collect();
    let Some(fs) = Tmpfs::mount("midrun-tmpfs", "16k") else {
        return;
    };
    let path = fs.0.join("conn.json");
    let o = sensor(&[
        "replay",
        "-q",
        pcap.to_str().unwrap(),
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let prefix = format!(
        "cannot write records to {} (no space left on the device) after ",
        path.display()
    );
    let reported: usize = err
        .split_once(&prefix)
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    let text = std::fs::read(&path).unwrap();
    let complete: Vec<&[u8]> = text
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .collect();
    // It failed mid-run, after some batches were flushed...
    assert!(reported > 0, "{err}");
    assert!(complete.len() < whole.len());
    // ...and everything it reports as written is in the file, as it should be.
    assert!(
        reported <= complete.len(),
        "{reported} reported, {} in the file",
        complete.len()
    );
    for (line, expected) in complete.iter().zip(&whole) {
        assert_eq!(std::str::from_utf8(line).unwrap().trim_end(), *expected);
    }
    drop(fs);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn rotation_needs_a_regular_file() {
    let o = sensor(&["replay", "-q", &demo(), "--rotate-size", "1M"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("standard output is never rotated"),
        "{}",
        stderr(&o)
    );
    let o = sensor(&[
        "replay",
        "-q",
        &demo(),
        "--rotate-interval",
        "1h",
        "-o",
        "/dev/full",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/dev/full is not a regular file; rotation renames files"),
        "{}",
        stderr(&o)
    );
}

/// `sensor` with `args`, expecting a refusal (exit 2) whose message holds
/// `says`; returns standard error.
fn refused(args: &[&str], says: &str) -> String {
    let o = sensor(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
    err
}

#[test]
fn an_output_naming_an_input_or_another_output_is_refused_before_anything_is_written() {
    let d = dir("clash");
    let capture = d.join("in.pcap");
    std::fs::copy(demo(), &capture).unwrap();
    let before = std::fs::read(&capture).unwrap();
    let rule_copy = d.join("rules.toml");
    std::fs::copy(rules(), &rule_copy).unwrap();
    let (cap, rul) = (
        capture.display().to_string(),
        rule_copy.display().to_string(),
    );
    // Records over the capture being replayed, spelt another way.
    let other_spelling = d.join(".").join("in.pcap").display().to_string();
    refused(
        &["replay", "-q", &cap, "-o", &other_spelling],
        "is also the input file",
    );
    // Alerts over the rule file.
    refused(
        &["replay", "-q", &cap, "--rules", &rul, "--alerts", &rul],
        "--alerts",
    );
    // Records and alerts into one file.
    let shared = d.join("both.log").display().to_string();
    let err = refused(
        &[
            "replay", "-q", &cap, "--rules", &rul, "-o", &shared, "--alerts", &shared,
        ],
        "are the same file",
    );
    assert!(err.contains("-o") && err.contains("--alerts"), "{err}");
    assert!(!d.join("both.log").exists(), "nothing was created");
    // A hard link is the same file under another name.
    let hard = d.join("hard.pcap");
    std::fs::hard_link(&capture, &hard).unwrap();
    refused(
        &["replay", "-q", &cap, "-o", &hard.display().to_string()],
        "is also the input file",
    );
    // `-` is standard output only for replay's and live's `-o`: as the
    // alerts and the metrics file it is a file named `-`, the same one.
    refused(
        &[
            "replay",
            "-q",
            &cap,
            "--rules",
            &rul,
            "--alerts",
            "-",
            "--metrics-file",
            "-",
        ],
        "are the same file",
    );
    // The other commands that write files.
    refused(&["extract", &cap, "--host", "10.0.0.1", "-o", &cap], "-o");
    refused(
        &["report", &cap, "--rules", &rul, "-o", &rul],
        "is also the --rules",
    );
    refused(
        &["baseline", "learn", &cap, "--rules", &rul, "-o", &cap],
        "is also the input file",
    );
    assert_eq!(
        std::fs::read(&capture).unwrap(),
        before,
        "the capture is intact"
    );
    assert_eq!(
        std::fs::read_to_string(&rule_copy).unwrap(),
        std::fs::read_to_string(rules()).unwrap(),
        "the rule file is intact"
    );
    // Distinct files work, and a device is not a file two writers can spoil.
    let (records, alerts) = (
        d.join("records.log").display().to_string(),
        d.join("alerts.log").display().to_string(),
    );
    for (o, a) in [
        (records.as_str(), alerts.as_str()),
        ("/dev/null", "/dev/null"),
    ] {
        ok(&[
            "replay", "-q", &cap, "--rules", &rul, "-o", o, "--alerts", a,
        ]);
    }
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_bad_baseline_is_refused_before_the_output_file_is_touched() {
    let d = dir("baseline");
    let records = d.join("records.log");
    std::fs::write(&records, "earlier records\n").unwrap();
    let bad = d.join("baseline.json");
    std::fs::write(&bad, r#"{"format":"something-else"}"#).unwrap();
    let o = sensor(&[
        "replay",
        "-q",
        &demo(),
        "--rules",
        &rules(),
        "--alerts",
        &d.join("alerts.log").display().to_string(),
        "--baseline",
        &bad.display().to_string(),
        "-o",
        &records.display().to_string(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("baseline.json"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&records).unwrap(),
        "earlier records\n",
        "the records file is untouched"
    );
    assert!(!d.join("alerts.log").exists(), "no alerts file was created");
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn report_and_inventory_name_the_file_they_cannot_write() {
    let (demo, rules) = (demo(), rules());
    for command in ["report", "inventory"] {
        let args = [command, &demo, "--rules", &rules, "-o", "/dev/full"];
        let o = sensor(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("/dev/full: cannot write"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}
