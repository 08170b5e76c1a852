//! `sensor replay -` and FIFOs: a capture read once, front to back, from a
//! stream gives exactly the records and summary of the same file read from
//! disk (pcap and pcapng), and a broken stream gives the same errors and
//! exit codes as a broken file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn sensor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus_pcap(name: &str) -> PathBuf {
    let root = std::env::var_os("FLOWMON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/corpus"));
    let path = root.join("pcaps").join(name);
    assert!(
        path.is_file(),
        "{} missing: the corpus is needed",
        path.display()
    );
    path
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowmon-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `sensor replay ARGS... -` with `input` on standard input.
fn replay_stdin(input: &[u8], args: &[&str]) -> Output {
    let mut child = sensor()
        .arg("replay")
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    o
}

fn replay_file(path: &Path, args: &[&str]) -> Output {
    sensor()
        .arg("replay")
        .args(args)
        .arg(path)
        .output()
        .unwrap()
}

/// The summary without its timing-dependent packets/s.
fn summary(o: &Output) -> String {
    let s = String::from_utf8_lossy(&o.stderr);
    s.lines()
        .map(|l| match l.strip_suffix(" packets/s") {
            // ..., 0 truncated by snaplen, 88791 packets/s
            Some(l) => l.rsplit_once(", ").map_or(l, |(a, _)| a),
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn stdin_and_a_fifo_give_the_records_of_the_file() {
    let demo = repo().join("demo/msp-demo.pcap");
    let ng = corpus_pcap("pcapng-two-interfaces.pcapng");
    for (path, args) in [
        (&demo, &["--no-progress", "-f", "zeek", "-w", "2"][..]),
        (&ng, &["--no-progress", "-w", "1"][..]),
    ] {
        let from_file = replay_file(path, args);
        assert!(from_file.status.success());
        assert!(!from_file.stdout.is_empty());
        let bytes = std::fs::read(path).unwrap();
        let from_stdin = replay_stdin(&bytes, args);
        assert!(
            from_stdin.status.success(),
            "{}",
            String::from_utf8_lossy(&from_stdin.stderr)
        );
        assert!(from_stdin.stdout == from_file.stdout, "{}", path.display());
        assert_eq!(summary(&from_stdin), summary(&from_file));

        let fifo = tmp("capture.fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let child = sensor()
            .arg("replay")
            .args(args)
            .arg(&fifo)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        let from_fifo = child.wait_with_output().unwrap();
        assert!(from_fifo.status.success());
        assert!(from_fifo.stdout == from_file.stdout, "{}", path.display());
        std::fs::remove_file(&fifo).unwrap();
    }
}

#[test]
fn a_broken_stream_is_reported_like_a_broken_file() {
    let o = replay_stdin(b"this is not a capture", &["--no-progress"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("-: cannot open capture: not a pcap"));

    let demo = std::fs::read(repo().join("demo/msp-demo.pcap")).unwrap();
    let cut = &demo[..demo.len() - 30];
    let o = replay_stdin(cut, &["--no-progress"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("-: capture ended early at record 3900"),
        "{err}"
    );
    assert!(err.contains("packets: 3899"), "{err}");
}

/// Several workers reading a file each read it whole and keep their own
/// packets (`sensor::scan`); from a stream, one thread reads and dispatches
/// (`sensor::pipeline`). Both must give the same records, summary, errors
/// and exit code for every corpus capture: tunnels split over shards,
/// fragments, undecodable packets, cut and corrupt files, pcapng.
#[test]
fn shards_reading_the_file_themselves_give_the_dispatched_records() {
    let root = std::env::var_os("FLOWMON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/corpus"));
    let mut captures: Vec<PathBuf> = std::fs::read_dir(root.join("pcaps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    captures.sort();
    captures.push(repo().join("demo/msp-demo.pcap"));
    assert!(captures.len() > 50, "the corpus is needed");
    let mut differing = Vec::new();
    for path in &captures {
        let bytes = std::fs::read(path).unwrap();
        for workers in ["2", "3"] {
            let args = ["--no-progress", "-f", "zeek", "-w", workers];
            let from_file = replay_file(path, &args);
            let from_stdin = replay_stdin(&bytes, &args);
            // Errors name the input: the path, or "-".
            let file_summary = summary(&from_file).replace(&*path.to_string_lossy(), "-");
            if from_file.stdout != from_stdin.stdout
                || from_file.status.code() != from_stdin.status.code()
                || file_summary != summary(&from_stdin)
            {
                differing.push(format!("{} with {workers} workers", path.display()));
            }
        }
    }
    assert!(differing.is_empty(), "differ: {differing:#?}");

    // Each shard applies the BPF filter itself.
    let demo = repo().join("demo/msp-demo.pcap");
    let args = ["--no-progress", "-f", "zeek", "-w", "2", "--bpf", "tcp"];
    let from_file = replay_file(&demo, &args);
    assert!(from_file.status.success());
    let from_stdin = replay_stdin(&std::fs::read(&demo).unwrap(), &args);
    assert!(from_file.stdout == from_stdin.stdout);
    assert_eq!(summary(&from_file), summary(&from_stdin));
    // Each shard merges several files into one timeline itself.
    let vxlan = corpus_pcap("tunnel-vxlan.pcap");
    let merged = |workers: &str| {
        sensor()
            .args(["replay", "--no-progress", "-f", "zeek", "-w", workers])
            .arg(&demo)
            .arg(&vxlan)
            .output()
            .unwrap()
    };
    let (one, three) = (merged("1"), merged("3"));
    assert!(one.status.success() && !one.stdout.is_empty());
    assert!(one.stdout == three.stdout);
    assert_eq!(summary(&one), summary(&three));
}

/// A stream whose writer goes quiet (`tcpdump -w - | sensor replay -` on an
/// idle link) still stops at SIGTERM: at once, every open flow flushed with
/// end reason `shutdown`, the summary printed, exit 0. The signal comes
/// twice, as `timeout` delivers it (to the child, then its process group):
/// that is one stop, not a forced exit.
#[test]
fn a_stop_request_ends_a_replay_waiting_on_a_quiet_stream() {
    let bytes = std::fs::read(repo().join("demo/msp-demo.pcap")).unwrap();
    for workers in ["1", "2"] {
        let mut child = sensor()
            .args(["replay", "--no-progress", "-w", workers, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The whole capture, then the writer stays, silent.
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&bytes).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(800));
        let pid = child.id().to_string();
        for _ in 0..2 {
            let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            assert!(sent.success());
        }
        let asked = std::time::Instant::now();
        let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
        while !waiter.is_finished() && asked.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let stopped_in = asked.elapsed();
        drop(stdin);
        let o = waiter.join().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            stopped_in.as_secs() < 5,
            "took {stopped_in:?} after SIGTERM"
        );
        assert_eq!(o.status.code(), Some(0), "{err}");
        assert!(err.contains("packets: "), "the summary: {err}");
        let records: Vec<serde_json::Value> = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            records.iter().any(|r| r["end_reason"] == "shutdown"),
            "open flows flushed at the stop"
        );
        assert!(records.iter().all(|r| r["end_reason"] != "eof"));
    }
}

/// A pcapng block of type `kind` around `body` (padded to 4 bytes).
fn pcapng_block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    body.resize(body.len().div_ceil(4) * 4, 0);
    let len = (12 + body.len()) as u32;
    let mut b = kind.to_le_bytes().to_vec();
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&body);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// A filter that cannot apply to an interface a pcapng stream reveals
/// only at its first packet is the same usage error (exit 2) as for the
/// file on disk, not an input that ended early (exit 3).
#[test]
fn a_filter_that_does_not_fit_a_streamed_interface_is_a_usage_error() {
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]); // version 1.0
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut idb = 113u16.to_le_bytes().to_vec(); // Linux cooked capture
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&65535u32.to_le_bytes());
    // SLL header, then IPv4/UDP 10.0.0.1:1000 -> 10.0.0.2:53.
    let mut packet = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    packet.extend_from_slice(&[0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0]);
    packet.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0x03, 0xe8, 0, 53, 0, 8, 0, 0]);
    let mut epb = vec![0u8; 12];
    epb.extend_from_slice(&(packet.len() as u32).to_le_bytes());
    epb.extend_from_slice(&(packet.len() as u32).to_le_bytes());
    epb.extend_from_slice(&packet);
    let mut file = pcapng_block(0x0a0d_0d0a, &shb);
    file.extend(pcapng_block(1, &idb));
    file.extend(pcapng_block(6, &epb));
    let path = tmp("sll.pcapng");
    std::fs::write(&path, &file).unwrap();
    let args = [
        "--no-progress",
        "-o",
        "/dev/null",
        "--bpf",
        "ether src 1:2:3:4:5:6",
    ];
    for o in [replay_stdin(&file, &args), replay_file(&path, &args)] {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("ethernet addresses supported only"), "{err}");
    }
    // A filter the interface can take runs.
    let o = replay_stdin(&file, &["--no-progress", "-o", "/dev/null", "--bpf", "udp"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
