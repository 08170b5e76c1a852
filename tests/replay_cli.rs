//! End-to-end tests of `sensor replay`: exit codes and messages for bad
//! input, filters, formats, multi-file timelines and
//! determinism. Fixtures are the bundled demo capture and captures written
//! here with flowlib's own pcap writer.

use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{LinkType, Timestamp};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sensor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn demo() -> PathBuf {
    repo().join("demo/msp-demo.pcap")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowmon-replay-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(args: &[&str]) -> Output {
    sensor().args(args).output().expect("sensor runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_records(o: &Output) -> Vec<Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
        .collect()
}

/// Reads every packet of a capture with libpcap.
fn read_packets(path: &Path) -> (i32, Vec<(Timestamp, Vec<u8>, u32)>) {
    let mut cap = pcap::Capture::from_file(path).unwrap();
    let link = cap.get_datalink().0;
    let mut v = Vec::new();
    while let Ok(p) = cap.next_packet() {
        let ts = Timestamp::from_micros(p.header.ts.tv_sec, p.header.ts.tv_usec as u32);
        v.push((ts, p.data.to_vec(), p.header.len));
    }
    (link, v)
}

#[test]
fn demo_capture_replays_to_json_records_with_a_summary() {
    let o = run(&["replay", "--no-progress", demo().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = json_records(&o);
    assert_eq!(records.len(), 633);
    let summary = stderr(&o);
    assert!(summary.contains("packets: 3900"), "{summary}");
    assert!(summary.contains("633 records written"), "{summary}");
    // The Cloud Hopper story: customer A reaching into customer B over SMB.
    assert!(records.iter().any(|r| {
        r["id.orig_h"]
            .as_str()
            .is_some_and(|h| h.starts_with("10.20."))
            && r["id.resp_h"]
                .as_str()
                .is_some_and(|h| h.starts_with("10.30."))
            && r["id.resp_p"] == 445
    }));
    for r in &records {
        for field in [
            "ts",
            "uid",
            "id.orig_h",
            "id.orig_p",
            "id.resp_h",
            "id.resp_p",
            "proto",
        ] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
        assert!(r["community_id"].as_str().unwrap().starts_with("1:"));
    }
}

#[test]
fn replaying_twice_gives_identical_output() {
    let a = run(&["replay", "-q", "-f", "zeek", demo().to_str().unwrap()]);
    let b = run(&["replay", "-q", "-f", "zeek", demo().to_str().unwrap()]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn zeek_format_has_zeek_headers_and_one_column_per_field() {
    let o = run(&["replay", "-q", "-f", "zeek", demo().to_str().unwrap()]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "#separator \\x09");
    assert_eq!(lines[1], "#set_separator\t,");
    assert_eq!(lines[4], "#path\tconn");
    assert!(lines[5].starts_with("#open\t2026-03-02-08-00-00"));
    let fields: Vec<&str> = lines[6]
        .strip_prefix("#fields\t")
        .unwrap()
        .split('\t')
        .collect();
    let types: Vec<&str> = lines[7]
        .strip_prefix("#types\t")
        .unwrap()
        .split('\t')
        .collect();
    assert_eq!(fields.len(), types.len());
    assert_eq!(
        &fields[..6],
        [
            "ts",
            "uid",
            "id.orig_h",
            "id.orig_p",
            "id.resp_h",
            "id.resp_p"
        ]
    );
    assert!(lines.last().unwrap().starts_with("#close\t"));
    let data: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert_eq!(data.len(), 633);
    for l in data {
        assert_eq!(l.split('\t').count(), fields.len(), "{l}");
    }
}

#[test]
fn output_file_option_writes_records_there() {
    let path = tmp("out.json");
    let o = run(&[
        "replay",
        "-q",
        "-o",
        path.to_str().unwrap(),
        demo().to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 633);
}

#[test]
fn output_dash_is_standard_output_not_a_file_named_dash() {
    let dir = tmp("dash-cwd");
    std::fs::create_dir_all(&dir).unwrap();
    let o = sensor()
        .current_dir(&dir)
        .args(["replay", "-q", "-o", "-", demo().to_str().unwrap()])
        .output()
        .expect("sensor runs");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_records(&o).len(), 633);
    assert!(!dir.join("-").exists(), "no file named -");
    // Rotation needs a file: standard output is not one, however named.
    let o = sensor()
        .current_dir(&dir)
        .args(["replay", "-q", "-o", "-", "--rotate-size", "1M"])
        .arg(demo())
        .output()
        .expect("sensor runs");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!dir.join("-").exists(), "no file named -");
}

#[test]
fn bpf_filter_keeps_only_matching_packets() {
    let o = run(&[
        "replay",
        "-q",
        "--bpf",
        "tcp port 3389",
        demo().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = json_records(&o);
    assert!(!records.is_empty());
    assert!(records
        .iter()
        .all(|r| r["proto"] == "tcp" && r["id.resp_p"] == 3389));
}

#[test]
fn invalid_bpf_filter_is_a_usage_error() {
    let o = run(&["replay", "--bpf", "tcp port", demo().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid BPF filter"), "{}", stderr(&o));
}

#[test]
fn missing_file_and_non_capture_are_usage_errors() {
    let o = run(&["replay", "/nonexistent/x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/x.pcap"));

    let junk = tmp("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file at all").unwrap();
    let o = run(&["replay", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a pcap or pcapng file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unsupported_link_type_is_refused_at_open_naming_it() {
    let path = tmp("usb.pcap");
    let f = std::fs::File::create(&path).unwrap();
    // LINKTYPE_USB_LINUX (189): a link type we do not decode.
    let mut w = PcapWriter::new(f, Resolution::Micros, 65535, LinkType(189)).unwrap();
    w.write_packet(Timestamp::from_micros(1, 0), &[0u8; 64], 64)
        .unwrap();
    w.flush().unwrap();
    let o = run(&["replay", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unsupported link type"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("189"), "{}", stderr(&o));
}

#[test]
fn truncated_capture_processes_complete_records_then_exits_3_with_position() {
    let (_, packets) = read_packets(&demo());
    let path = tmp("cut.pcap");
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    for (ts, data, len) in &packets[..100] {
        w.write_packet(*ts, data, *len).unwrap();
    }
    let mut bytes = w.into_inner().unwrap();
    let complete = bytes.len() as u64;
    // Half of record 101: its header and a few bytes of data.
    let (ts, data, len) = &packets[100];
    let mut extra =
        PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    extra.write_packet(*ts, data, *len).unwrap();
    let extra = extra.into_inner().unwrap();
    bytes.extend_from_slice(&extra[24..24 + 16 + 10]);
    std::fs::write(&path, &bytes).unwrap();

    let o = run(&["replay", "--no-progress", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("record 101"), "{err}");
    assert!(err.contains(&format!("byte offset {complete}")), "{err}");
    assert!(err.contains("packets: 100 "), "{err}");
    let records = json_records(&o);
    let pkts: u64 = records
        .iter()
        .map(|r| r["orig_pkts"].as_u64().unwrap() + r["resp_pkts"].as_u64().unwrap())
        .sum();
    assert_eq!(pkts, 100, "every complete record is in a flow");
    assert!(records.iter().any(|r| r["end_reason"] == "eof"));
}

// A closed pipe on standard output is an error with exit code 1 now (it
// used to end quietly): see tests/output_files.rs.

#[test]
fn several_files_form_one_timeline() {
    let (_, packets) = read_packets(&demo());
    let (a, b) = (tmp("even.pcap"), tmp("odd.pcap"));
    for (path, parity) in [(&a, 0), (&b, 1)] {
        let mut w =
            PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
        for (ts, data, len) in packets.iter().skip(parity).step_by(2) {
            w.write_packet(*ts, data, *len).unwrap();
        }
        std::fs::File::create(path)
            .unwrap()
            .write_all(&w.into_inner().unwrap())
            .unwrap();
    }
    let whole = run(&["replay", "-q", "-f", "zeek", demo().to_str().unwrap()]);
    // Given in reverse order on purpose: the merge is by capture time.
    let split = run(&[
        "replay",
        "-q",
        "-f",
        "zeek",
        b.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert!(split.status.success(), "{}", stderr(&split));
    assert_eq!(whole.stdout, split.stdout);
}

#[test]
fn table_options_change_timeouts() {
    // With a 1 s UDP idle timeout the 60 s beacon becomes one flow per beacon.
    let default = json_records(&run(&["replay", "-q", demo().to_str().unwrap()]));
    let short = json_records(&run(&[
        "replay",
        "-q",
        "--udp-idle",
        "1",
        demo().to_str().unwrap(),
    ]));
    assert!(short.len() >= default.len());
    let o = run(&[
        "replay",
        "--max-flows",
        "10",
        "-q",
        demo().to_str().unwrap(),
    ]);
    assert!(json_records(&o)
        .iter()
        .any(|r| r["end_reason"] == "evicted"));
}

#[test]
fn check_rules_prints_a_summary_for_a_valid_file() {
    let o = run(&[
        "check-rules",
        repo().join("rules/examples/msp.toml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("enclaves"), "{out}");
    assert!(out.contains("relationships"), "{out}");
}

#[test]
fn summaries_to_a_reader_that_went_away_exit_0_without_a_panic() {
    // `sensor check-rules F | head -1` once panicked ("failed printing to
    // stdout"): the reader here is gone before the sensor writes.
    let bin = env!("CARGO_BIN_EXE_sensor");
    let rules = repo().join("rules/examples/msp.toml");
    let config = tmp("closed-pipe.toml");
    std::fs::write(&config, "workers = 2\n").unwrap();
    for args in [
        format!("check-rules {}", rules.display()),
        format!("config check {}", config.display()),
    ] {
        let o = std::process::Command::new("bash")
            .args([
                "-c",
                &format!("set -o pipefail; (sleep 0.3; exec \"$0\" {args}) | true"),
                bin,
            ])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args}: {}", stderr(&o));
    }
}

#[test]
fn bad_rule_file_is_rejected_with_file_line_and_field_before_anything_runs() {
    let bad = repo().join("rules/tests/bad/bad_networks.toml");
    let o = run(&["check-rules", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("bad_networks.toml:10: enclaves[1].networks[2]: \"10.20.0.0/33\" is not a valid network"),
        "{err}"
    );
    assert_eq!(
        err.matches("bad_networks.toml:").count(),
        7,
        "every error is reported: {err}"
    );

    // `replay --rules` refuses before reading any packet: no records, no summary.
    let o = run(&[
        "replay",
        "--rules",
        bad.to_str().unwrap(),
        demo().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert!(!stderr(&o).contains("packets:"), "{}", stderr(&o));
}

#[test]
fn rules_put_the_enclave_and_host_group_of_each_side_on_records() {
    let rules = repo().join("rules/examples/demo.toml");
    let o = run(&[
        "replay",
        "-q",
        "--rules",
        rules.to_str().unwrap(),
        demo().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = json_records(&o);
    assert!(records
        .iter()
        .all(|r| r["orig_enclave"].is_string() && r["resp_enclave"].is_string()));
    // Provider monitoring polling customer B's servers over SNMP.
    let snmp = records
        .iter()
        .find(|r| {
            r["id.orig_h"] == "10.10.2.20"
                && r["id.resp_p"] == 161
                && r["id.resp_h"] == "10.30.10.5"
        })
        .expect("SNMP poll of customer B");
    assert_eq!(snmp["orig_enclave"], "provider-mgmt");
    assert_eq!(snmp["resp_enclave"], "customer-b");
    assert_eq!(snmp["orig_host_group"], "monitoring");
    // Customer A reaching into customer B: the cross-customer crossing is visible.
    assert!(records.iter().any(|r| r["orig_enclave"] == "customer-a"
        && r["resp_enclave"] == "customer-b"
        && r["id.resp_p"] == 445));
    // Internet hosts fall in the implicit external enclave.
    assert!(records.iter().any(|r| r["resp_enclave"] == "internet"));
}

/// Replays the demo with its rule file and the detector; returns the alerts.
fn demo_alerts(name: &str) -> Vec<Value> {
    demo_records_and_alerts(name).1
}

/// Replays the demo with its rule file and the detector.
/// `name` keeps the alert files of tests running in parallel apart.
fn demo_records_and_alerts(name: &str) -> (Vec<Value>, Vec<Value>) {
    let alerts = tmp(&format!("{name}-alerts.json"));
    let rules = repo().join("rules/examples/demo.toml");
    let o = run(&[
        "replay",
        "--no-progress",
        "--rules",
        rules.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
        demo().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("alerts: "), "{}", stderr(&o));
    // Start records feed the detector only; the connection log and the
    // summary's end reasons are unchanged.
    let records = json_records(&o);
    assert_eq!(records.len(), 633);
    assert!(
        stderr(&o).contains(
            "flows: 633 created, 633 records written (fin 190, rst 56, idle 383, eof 4)\n"
        ),
        "{}",
        stderr(&o)
    );
    let alerts = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (records, alerts)
}

fn reasons(a: &Value) -> Vec<String> {
    a["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn detector_alerts_on_every_demo_story_with_reasons_and_techniques() {
    let alerts = demo_alerts("stories");
    let find = |orig: &str, resp: &str, port: u64| {
        alerts
            .iter()
            .find(|a| {
                a["event"] == "alert"
                    && a["id.orig_h"] == orig
                    && a["id.resp_h"] == resp
                    && a["id.resp_p"] == port
            })
            .unwrap_or_else(|| panic!("no alert for {orig} -> {resp}:{port}"))
    };
    // 1. Cloud Hopper: customer A into customer B over SMB and RDP.
    for (resp, port, technique) in [
        ("10.30.10.20", 445, "T1021.002"),
        ("10.30.10.5", 3389, "T1021.001"),
    ] {
        let a = find("10.20.10.5", resp, port);
        assert_eq!(a["severity"], "critical");
        let r = reasons(a);
        assert!(
            r.contains(&"cross_customer".to_owned()) && r.contains(&"no_relationship".to_owned()),
            "{r:?}"
        );
        let t: Vec<&str> = a["techniques"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(t.contains(&"T1199") && t.contains(&technique), "{t:?}");
        assert_eq!(
            (a["orig_enclave"].as_str(), a["resp_enclave"].as_str()),
            (Some("customer-a"), Some("customer-b"))
        );
        // Every reason carries its weight, and the score is their sum (capped).
        let sum: u64 = a["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["weight"].as_u64().unwrap())
            .sum();
        assert_eq!(a["score"].as_u64().unwrap(), sum.min(100));
    }
    // 2. Off-hours RDP from a jump host: allowed pair, outside the window.
    let a = find("10.10.1.11", "10.20.10.5", 3389);
    assert!(reasons(a).contains(&"outside_window".to_owned()));
    assert_eq!(a["relationship"], "maintenance-a");
    // 3. The scan: fan-out.
    assert!(alerts.iter().any(|a| a["id.orig_h"] == "10.20.30.44"
        && reasons(a).contains(&"fan_out".to_owned())
        && a["techniques"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "T1046")));
    // 4. The beacon to the internet.
    let b = find("10.20.30.77", "203.0.113.66", 443);
    assert!(reasons(b).contains(&"beacon".to_owned()));
    assert!(b["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "T1071"));
    // Alerts join to connection records by uid and community_id.
    assert!(alerts
        .iter()
        .all(|a| a["uid"].as_str().unwrap().starts_with('C')
            && a["community_id"].as_str().unwrap().starts_with("1:")));
}

#[test]
fn detector_stays_quiet_on_allowed_look_alikes() {
    let (records, alerts) = demo_records_and_alerts("look-alikes");
    // The look-alikes are there: an RDP and an SSH session from the jump
    // hosts inside the maintenance window, and nightly SMB backups.
    let present = |orig: &str, port: u64| {
        records
            .iter()
            .any(|r| r["id.orig_h"] == orig && r["id.resp_p"] == port)
    };
    assert!(present("10.10.1.10", 3389) && present("10.10.1.11", 22) && present("10.10.3.30", 445));
    for a in &alerts {
        let r = reasons(a);
        let policy = [
            "no_relationship",
            "cross_customer",
            "outside_window",
            "unapproved_host",
        ];
        if !r.iter().any(|x| policy.contains(&x.as_str())) {
            continue;
        }
        // Jump-host sessions inside the maintenance window, nightly backups
        // in their window and DNS through the shared resolver are allowed.
        let orig = a["id.orig_h"].as_str().unwrap();
        let port = a["id.resp_p"].as_u64().unwrap();
        assert!(
            !(orig == "10.10.1.10" && (port == 3389 || port == 22))
                && !(orig == "10.10.1.11" && port == 22),
            "maintenance session flagged: {a}"
        );
        assert!(
            !(orig == "10.10.3.30" && port == 445),
            "backup flagged: {a}"
        );
        assert_ne!(a["id.resp_h"], "10.40.0.53", "DNS flagged: {a}");
    }
    // Repeats are folded: the port scan of one host is one alert plus an update.
    let scan: Vec<_> = alerts
        .iter()
        .filter(|a| a["id.orig_h"] == "10.20.30.44" && a["id.resp_h"] == "10.30.10.9")
        .collect();
    assert!(
        scan.iter().filter(|a| a["event"] == "alert").count() <= 2,
        "{scan:#?}"
    );
    assert!(scan
        .iter()
        .any(|a| a["event"] == "update" && a["count"].as_u64().unwrap() > 1));
}

#[test]
fn baseline_learn_takes_no_progress_and_quiet_like_replay() {
    let rules = repo().join("rules/examples/demo.toml");
    let learn = |flag: &str, name: &str| {
        let out = tmp(name);
        let o = run(&[
            "baseline",
            "learn",
            flag,
            "--rules",
            rules.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            demo().to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        (stderr(&o), std::fs::read(out).unwrap())
    };
    let (plain, plain_baseline) = learn("-w2", "learn-plain.json");
    assert!(plain.contains("bytes read (100%)"), "{plain}");
    let (no_progress, baseline) = learn("--no-progress", "learn-no-progress.json");
    assert!(!no_progress.contains("bytes read"), "{no_progress}");
    assert!(no_progress.contains("packets: 3900 "), "{no_progress}");
    assert!(
        no_progress.contains("baseline: 633 connections across boundaries"),
        "{no_progress}"
    );
    assert_eq!(baseline, plain_baseline);
    let (quiet, baseline) = learn("-q", "learn-quiet.json");
    assert_eq!(quiet, "");
    assert_eq!(baseline, plain_baseline);
}

#[test]
fn baseline_learned_on_clean_traffic_recognises_periodic_services_and_flags_new_pairs() {
    // The learning period: the demo day without the attackers' traffic (the
    // scanner, the beaconing host, and the hop from 10.20.10.5 into customer B).
    let attackers = ["10.20.30.44", "10.20.30.77"];
    let (_, packets) = read_packets(&demo());
    let clean = tmp("clean-day.pcap");
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    let mut kept = 0;
    for (ts, data, len) in &packets {
        let view = flowlib::PacketView::parse(data, LinkType::ETHERNET, *ts, *len).unwrap();
        let ip = view.inner.ip;
        let (src, dst) = (ip.src.to_string(), ip.dst.to_string());
        let hop = (src == "10.20.10.5" && dst.starts_with("10.30."))
            || (dst == "10.20.10.5" && src.starts_with("10.30."));
        if hop || attackers.iter().any(|a| src == *a || dst == *a) {
            continue;
        }
        w.write_packet(*ts, data, *len).unwrap();
        kept += 1;
    }
    assert!(kept > 2500, "{kept}");
    std::fs::write(&clean, w.into_inner().unwrap()).unwrap();

    let rules = repo().join("rules/examples/demo.toml");
    let baseline = tmp("demo-baseline.json");
    let o = run(&[
        "baseline",
        "learn",
        "--rules",
        rules.to_str().unwrap(),
        "-o",
        baseline.to_str().unwrap(),
        clean.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let b: Value = serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    assert_eq!(
        (b["format"].as_str(), b["version"].as_u64()),
        (Some("flowmon-baseline"), Some(1))
    );
    let monitoring_periodic = b["pairs"].as_object().unwrap().values().any(|p| {
        p["orig"] == "10.10.2.20" && !p["periodic_services"].as_array().unwrap().is_empty()
    });
    assert!(monitoring_periodic, "the monitoring polls are periodic");

    let alerts_path = tmp("baseline-alerts.json");
    let o = run(&[
        "replay",
        "-q",
        "--rules",
        rules.to_str().unwrap(),
        "--alerts",
        alerts_path.to_str().unwrap(),
        "--baseline",
        baseline.to_str().unwrap(),
        demo().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let alerts: Vec<Value> = std::fs::read_to_string(&alerts_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Known periodic monitoring is no longer reported as beaconing...
    assert!(!alerts
        .iter()
        .any(|a| a["id.orig_h"] == "10.10.2.20" && reasons(a).contains(&"beacon".to_owned())));
    // ...while the beacon to the internet, absent from the baseline, still is.
    assert!(alerts
        .iter()
        .any(|a| a["id.orig_h"] == "10.20.30.77" && reasons(a).contains(&"beacon".to_owned())));
    // The hop into customer B is a pair the baseline never saw.
    let hop = alerts
        .iter()
        .find(|a| a["id.orig_h"] == "10.20.10.5" && a["id.resp_p"] == 445)
        .expect("cross-customer SMB alert");
    assert!(reasons(hop).contains(&"new_pair".to_owned()), "{hop}");

    // A baseline of another version is refused before anything runs.
    let old = tmp("old-baseline.json");
    std::fs::write(&old, r#"{"format":"flowmon-baseline","version":0}"#).unwrap();
    let o = run(&[
        "replay",
        "--rules",
        rules.to_str().unwrap(),
        "--alerts",
        alerts_path.to_str().unwrap(),
        "--baseline",
        old.to_str().unwrap(),
        demo().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("version 0"), "{}", stderr(&o));
}

#[test]
fn one_packet_stamped_in_2100_does_not_stop_the_flow_clocks() {
    // A bad timestamp in the middle of the demo: a copy of a real frame
    // stamped in the year 2100. Taken as the clock, it froze every timeout:
    // every connection after it ended at `eof`, stamped 2100.
    replay_with_a_stamp_in_2100(1000, 1001);
    // The first packet has nothing before it to say it is wrong.
    replay_with_a_stamp_in_2100(0, 0);
}

/// Replays the demo with a copy of packet `copy` stamped 2100 inserted at
/// `at`: the same connections end as without it, none after the demo.
fn replay_with_a_stamp_in_2100(copy: usize, at: usize) {
    let (_, mut packets) = read_packets(&demo());
    let last = packets.last().unwrap().0;
    let mut wrong = packets[copy].clone();
    wrong.0 = Timestamp::from_micros(4_102_444_800, 0);
    packets.insert(at, wrong);
    let path = tmp(&format!("year-2100-at-{at}.pcap"));
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    for (ts, data, len) in &packets {
        w.write_packet(*ts, data, *len).unwrap();
    }
    let bytes = w.into_inner().unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let sorted = |o: &Output| {
        let mut lines: Vec<String> = String::from_utf8(o.stdout.clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let mut outputs = Vec::new();
    for workers in ["1", "2", "3"] {
        let o = run(&[
            "replay",
            "--no-progress",
            "-w",
            workers,
            path.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let says = stderr(&o);
        assert!(
            says.contains(
                "flows: 633 created, 633 records written (fin 190, rst 56, idle 383, eof 4)"
            ),
            "{workers} workers: {says}"
        );
        assert!(
            says.contains("clock: 1 packets stamped far ahead of the packets after them"),
            "{says}"
        );
        assert!(!says.contains("earlier than the clock"), "{says}");
        outputs.push(sorted(&o));
    }
    for record in json_records(&run(&["replay", "-w", "1", path.to_str().unwrap()])) {
        let end = record["ts"].as_f64().unwrap() + record["duration"].as_f64().unwrap_or(0.0);
        assert!(end <= last.0 as f64 / 1e9 + 1.0, "{record}");
    }
    // Standard input goes through the dispatcher's clock.
    let mut child = sensor()
        .args(["replay", "--no-progress", "-w", "2", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&bytes));
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(stderr(&o).contains("clock: 1 packets"), "{}", stderr(&o));
    outputs.push(sorted(&o));
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn packets_earlier_than_the_clock_are_counted_once_for_any_worker_count() {
    let (_, mut packets) = read_packets(&demo());
    // Three packets stamped a second before the packet ten places earlier.
    for i in [100, 200, 300] {
        packets[i].0 = Timestamp(packets[i - 10].0 .0 - 1_000_000_000);
    }
    let mut latest = Timestamp(i64::MIN);
    let mut expected = 0;
    for (ts, _, _) in &packets {
        if *ts < latest {
            expected += 1;
        }
        latest = latest.max(*ts);
    }
    assert!(expected >= 3, "{expected}");
    let path = tmp("backwards.pcap");
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    for (ts, data, len) in &packets {
        w.write_packet(*ts, data, *len).unwrap();
    }
    let bytes = w.into_inner().unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let says = format!("{expected} packets earlier than the clock");
    for workers in ["1", "2", "3"] {
        let o = run(&["replay", "-w", workers, path.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&says),
            "{workers} workers: {}",
            stderr(&o)
        );
    }
    // Standard input goes through the dispatcher instead of every shard
    // reading the file.
    for workers in ["1", "2"] {
        let mut child = sensor()
            .args(["replay", "-w", workers, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = bytes.clone();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let o = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&says),
            "stdin, {workers} workers: {}",
            stderr(&o)
        );
    }
}

/// With several workers every worker opens every input. When the process
/// may not open that many files, the run stops before writing anything
/// (exit 2, saying why) rather than leaving out the flows of the workers
/// that could not read.
#[test]
fn workers_that_cannot_open_the_inputs_stop_the_run_before_any_record() {
    let dir = tmp("many-inputs");
    std::fs::create_dir_all(&dir).unwrap();
    let mut inputs = Vec::new();
    for i in 0..12 {
        let p = dir.join(format!("part{i}.pcap"));
        std::fs::copy(demo(), &p).unwrap();
        inputs.push(p.to_str().unwrap().to_owned());
    }
    let out = dir.join("records.json");
    let replay = |workers: &str| {
        let cmd = format!(
            "ulimit -n 32 && exec {} replay -q --no-progress -w {workers} -o {} {}",
            env!("CARGO_BIN_EXE_sensor"),
            out.display(),
            inputs.join(" ")
        );
        Command::new("sh").args(["-c", &cmd]).output().unwrap()
    };
    // One worker opens the 12 files once: within the limit.
    let one = replay("1");
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
    // Four workers need 48: refused before the output is created.
    std::fs::remove_file(&out).unwrap();
    let four = replay("4");
    let err = stderr(&four);
    assert_eq!(four.status.code(), Some(2), "{err}");
    assert!(err.contains("Too many open files"), "{err}");
    assert!(err.contains("try fewer --workers"), "{err}");
    assert!(!out.exists(), "nothing written: {err}");
}

#[test]
fn a_worker_count_out_of_range_is_refused() {
    for bad in ["0", "257", "+2", "many"] {
        let o = run(&["replay", "-w", bad, demo().to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("is not a worker count (1-256)"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn a_directory_or_stdin_twice_as_input_is_refused_saying_why() {
    let dir = tmp("a-directory");
    std::fs::create_dir_all(&dir).unwrap();
    let o = run(&["replay", dir.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot open capture: Is a directory"), "{err}");

    let o = run(&["replay", "-", demo().to_str().unwrap(), "-"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`-` (standard input) is given more than once"),
        "{err}"
    );
}

/// `inbound`, `outbound` and `ifindex` read a live socket's metadata on
/// Ethernet; on a capture file's packets they would match nothing, so the
/// filter is refused (as `tcpdump -r` refuses it).
#[test]
fn a_filter_that_needs_a_live_socket_is_refused_for_a_capture_file() {
    for expr in ["inbound", "ifindex 1", "outbound and tcp"] {
        let o = run(&[
            "replay",
            "--bpf",
            expr,
            "-o",
            "/dev/null",
            demo().to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{expr}: {err}");
        assert!(err.contains("only a live capture knows"), "{expr}: {err}");
    }
}

/// With `--bpf` the summary places every record read: handed on as a
/// packet, or left out by the filter.
#[test]
fn the_summary_counts_the_records_a_filter_left_out() {
    let number_after = |text: &str, label: &str| -> u64 {
        let at = text
            .find(label)
            .unwrap_or_else(|| panic!("{label} in {text}"))
            + label.len();
        text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    for workers in ["1", "2"] {
        let o = run(&[
            "replay",
            "--no-progress",
            "-w",
            workers,
            "--bpf",
            "tcp port 445",
            "-o",
            "/dev/null",
            demo().to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{err}");
        let packets = number_after(&err, "packets: ");
        let read = number_after(&err, "filter: ");
        let left_out = number_after(&err, "records read, ");
        assert!(packets > 0 && left_out > 0, "{err}");
        assert_eq!(read, packets + left_out, "{err}");
        assert_eq!(read, 3900, "every record of the demo: {err}");
    }
}

#[test]
fn ipfix_template_refresh_of_zero_is_refused_not_taken_as_one() {
    for flag in ["--ipfix-template-every", "--ipfix-template-refresh"] {
        let o = run(&[
            "replay",
            "--ipfix",
            "127.0.0.1:9",
            flag,
            "0",
            demo().to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag}: {err}");
        assert!(
            err.contains(&format!("invalid value '0' for '{flag}")),
            "{err}"
        );
    }
}

/// The README's example output is what the demo prints today: its JSON
/// record and alert lines, its Zeek line and its summary lines are lines of
/// the real output (packets/s, which varies, is not compared).
#[test]
fn readme_examples_are_what_the_demo_prints() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let example = |prefix: &str| -> Vec<&str> {
        let lines: Vec<&str> = readme.lines().filter(|l| l.starts_with(prefix)).collect();
        assert!(!lines.is_empty(), "the README has a line starting {prefix}");
        lines
    };
    let rules = repo().join("rules/examples/demo.toml");
    let alerts = tmp("readme-alerts.json");
    let plain = run(&["replay", "--no-progress", demo().to_str().unwrap()]);
    let zeek = run(&[
        "replay",
        "--no-progress",
        "-f",
        "zeek",
        "--rules",
        rules.to_str().unwrap(),
        demo().to_str().unwrap(),
    ]);
    let detected = run(&[
        "replay",
        "--no-progress",
        "--rules",
        rules.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
        demo().to_str().unwrap(),
    ]);
    for o in [&plain, &zeek, &detected] {
        assert!(o.status.success(), "{}", stderr(o));
    }
    let stdout = |o: &Output| String::from_utf8(o.stdout.clone()).unwrap();
    let has_line = |text: &str, line: &str| text.lines().any(|l| l == line);
    for line in example("{\"ts\":") {
        assert!(
            has_line(&stdout(&plain), line),
            "README JSON record: {line}"
        );
    }
    for line in example("1772") {
        assert!(has_line(&stdout(&zeek), line), "README Zeek record: {line}");
    }
    for line in example("flows: ") {
        assert!(has_line(&stderr(&zeek), line), "README summary: {line}");
    }
    let alert_text = std::fs::read_to_string(&alerts).unwrap();
    for line in example("{\"event\":\"alert\"") {
        assert!(has_line(&alert_text, line), "README alert: {line}");
    }
    for line in example("alerts: ") {
        assert!(
            has_line(&stderr(&detected), line),
            "README alert summary: {line}"
        );
    }
}
