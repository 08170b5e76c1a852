//! End-to-end tests of `sensor extract`: round trips (replay a capture, pick
//! connections by uid, Community ID or host, extract their packets, replay
//! the extracted pcap, compare records), the output read by an independent
//! reader (tshark), link types and timestamps kept, mixed link types
//! refused, and the progress display on and off a terminal.
//!
//! Fixtures: a capture written here with flowlib's pcap writer from
//! flowbench conversations (a reused TCP 5-tuple, a UDP 5-tuple back after
//! its idle timeout, a VXLAN tunnel carrying two connections, ...), the
//! bundled demo capture, and real captures from `../shared/corpus`.

mod common;

use etherparse::PacketBuilder;
use flowbench::{Close, Conversation};
use flowlib::pcap_reader::PcapReader;
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{LinkType, Timestamp};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Capture time of the generated capture's first packet.
const T0: i64 = 1_772_438_400;
/// UDP ports of tunnels whose outer flow is a connection of its own.
const TUNNEL_PORTS: [u64; 5] = [4789, 6081, 2152, 3544, 5072];

fn sensor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowmon-extract-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(args: &[&str]) -> Output {
    sensor()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("sensor runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The records of `sensor replay` over `files` (JSON, two workers).
fn replay(files: &[&Path]) -> Vec<Value> {
    let mut args = vec!["replay", "-q", "-w", "2"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let o = run(&args);
    assert!(o.status.success(), "replay {files:?}: {}", stderr(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

/// Runs `sensor extract ARGS -o out`, asserting success.
fn extract(input: &Path, select: &[&str], out: &Path) -> Output {
    let mut args = vec!["extract", input.to_str().unwrap()];
    args.extend_from_slice(select);
    args.extend(["-o", out.to_str().unwrap()]);
    let o = run(&args);
    assert!(
        o.status.success(),
        "extract {input:?} {select:?}: {}",
        stderr(&o)
    );
    o
}

/// The last record of each uid (interim records come first).
fn by_uid(records: &[Value]) -> BTreeMap<String, Value> {
    records
        .iter()
        .map(|r| (r["uid"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

fn pkts(r: &Value) -> u64 {
    r["orig_pkts"].as_u64().unwrap() + r["resp_pkts"].as_u64().unwrap()
}

/// The outer UDP flow of a tunnel (VXLAN, Geneve, GTP-U, Teredo, AYIYA).
fn is_tunnel_carrier(r: &Value) -> bool {
    r["proto"] == "udp"
        && TUNNEL_PORTS
            .iter()
            .any(|p| r["id.resp_p"] == *p || r["id.orig_p"] == *p)
}

/// Packets in `path` as tshark (Wireshark's reader, not libpcap) counts them.
fn tshark_count(path: &Path) -> u64 {
    let o = Command::new("tshark")
        .args([
            "-n",
            "-r",
            path.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.number",
        ])
        .output()
        .expect("tshark runs (Debian package tshark; .ci/run installs it)");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "tshark -r {path:?}: {err}");
    // tshark run as root warns about it; any other message is a read problem.
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Running as user \"root\""))
        .collect();
    assert!(problems.is_empty(), "tshark -r {path:?}: {problems:?}");
    String::from_utf8_lossy(&o.stdout).lines().count() as u64
}

/// One packet as stored: capture time, captured bytes, length on the wire.
type Stored = (Timestamp, Vec<u8>, u32);

/// Every packet of a classic pcap, read with flowlib's reader; also the
/// link type and whether timestamps are in nanoseconds.
fn packets_of(path: &Path) -> (LinkType, bool, Vec<Stored>) {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let (link, nanos) = (r.header().link, r.header().nanos);
    let mut v = Vec::new();
    while let Ok(Some(p)) = r.next_packet() {
        v.push((p.ts, p.data.to_vec(), p.wire_len));
    }
    (link, nanos, v)
}

/// The heart of every round trip. `original`: the records of the whole
/// input; `selected`: the uids the selection names; `extracted`: the
/// records of the extracted pcap; `out`: the extracted pcap.
///
/// - Every selected connection comes back with identical fields (uids are
///   derived from the flow key and first packet's time, so they match too).
///   The one field that may legitimately differ is `end_reason`: in the
///   extracted pcap a connection may be the last thing in the file, so a
///   flow that ended by idle timeout (or was still open) in the original
///   may end at `eof`.
/// - Any other record must be a tunnel sharing the selected packets: the
///   outer UDP connection of a selected tunnelled connection (a subset of
///   the original tunnel's packets), or, when a tunnel is selected, the
///   connections inside it (identical to the original's).
/// - tshark reads the file and counts exactly the selected packets: each
///   packet belongs to one innermost connection.
fn assert_round_trip(
    what: &str,
    original: &[Value],
    selected: &BTreeSet<String>,
    extracted: &[Value],
    out: &Path,
) {
    assert!(!selected.is_empty(), "{what}: nothing selected");
    let original = by_uid(original);
    let extracted = by_uid(extracted);
    let same = |a: &Value, b: &Value| -> Vec<String> {
        let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .filter(|k| {
                // idle / eof: the end of the extracted file comes sooner.
                !(k.as_str() == "end_reason" && b[k.as_str()] == "eof")
            })
            .map(|k| format!("{k}: {:?} vs {:?}", a.get(k), b.get(k)))
            .collect()
    };
    for uid in selected {
        let want = &original[uid];
        let got = extracted.get(uid).unwrap_or_else(|| {
            panic!("{what}: selected {uid} missing after the round trip: {want}")
        });
        let diff = same(want, got);
        assert!(diff.is_empty(), "{what}: {uid} differs: {diff:?}");
    }
    let tunnel_selected = selected.iter().any(|u| is_tunnel_carrier(&original[u]));
    let tunnelled_selected = selected
        .iter()
        .any(|u| original[u].get("tunnel_parents").is_some());
    for (uid, r) in extracted.iter().filter(|(u, _)| !selected.contains(*u)) {
        if is_tunnel_carrier(r) && tunnelled_selected {
            // Same tunnel (Community ID of the outer 5-tuple), fewer packets.
            let tunnel = original
                .values()
                .find(|o| o["community_id"] == r["community_id"])
                .unwrap_or_else(|| panic!("{what}: {uid} is no tunnel of the input: {r}"));
            assert!(
                r["orig_pkts"].as_u64() <= tunnel["orig_pkts"].as_u64()
                    && r["resp_pkts"].as_u64() <= tunnel["resp_pkts"].as_u64(),
                "{what}: tunnel {uid} has more packets than in the input: {r}"
            );
        } else if tunnel_selected && r.get("tunnel_parents").is_some() {
            let parents = |r: &Value| -> BTreeSet<String> {
                r["tunnel_parents"]
                    .as_array()
                    .map(|a| a.iter().map(|p| p.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default()
            };
            let here = parents(r);
            // The same connection, or, when only part of it came through
            // this tunnel, the one with its 5-tuple and this tunnel (its
            // first packet here may be a later one: another start, uid).
            let inner = original
                .get(uid)
                .or_else(|| {
                    original.values().find(|o| {
                        o["community_id"] == r["community_id"] && here.is_subset(&parents(o))
                    })
                })
                .unwrap_or_else(|| panic!("{what}: {uid} inside the tunnel is not in the input"));
            let all = parents(inner);
            if here == all {
                // Carried by the selected tunnel only: all of it is here.
                let diff = same(inner, r);
                assert!(diff.is_empty(), "{what}: inner {uid} differs: {diff:?}");
            } else {
                // Also carried by another tunnel (e.g. replies on other
                // outer ports): only this tunnel's share is here.
                assert!(here.is_subset(&all), "{what}: {uid}: {here:?} vs {all:?}");
                assert!(pkts(r) < pkts(inner), "{what}: {uid}: {r} vs {inner}");
            }
        } else {
            panic!("{what}: unexpected connection after the round trip: {r}");
        }
    }
    // Each packet has one innermost connection: a plain one, or the inner
    // connection of a tunnel.
    let innermost: u64 = extracted
        .values()
        .filter(|r| !is_tunnel_carrier(r))
        .map(pkts)
        .sum();
    let carriers: u64 = extracted
        .values()
        .filter(|r| is_tunnel_carrier(r))
        .map(pkts)
        .sum();
    let count = tshark_count(out);
    assert!(
        count == innermost || (innermost == 0 && count == carriers),
        "{what}: tshark reads {count} packets, the records account for {innermost}"
    );
}

/// One selection's round trip: extract, replay the output, compare.
fn round_trip(
    what: &str,
    input: &Path,
    original: &[Value],
    select: &[&str],
    expected: &BTreeSet<String>,
) -> Output {
    let out = tmp(&format!("{}.pcap", what.replace(['/', ' ', ':', '='], "_")));
    let o = extract(input, select, &out);
    let extracted = replay(&[&out]);
    assert_round_trip(what, original, expected, &extracted, &out);
    o
}

/// VXLAN (RFC 7348) around an Ethernet frame, from one outer UDP flow.
fn vxlan(inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![0x08, 0, 0, 0, 0, 0x10, 0x01, 0];
    payload.extend_from_slice(inner);
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .udp(50_000, 4789)
        .write(&mut frame, &payload)
        .unwrap();
    frame
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_micros(T0 + secs, 0)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The generated capture: several connections, a reused TCP 5-tuple, a UDP
/// 5-tuple back after its idle timeout, a VXLAN tunnel with two inner
/// connections (one of them to a host that also has plain connections).
fn generated_capture() -> PathBuf {
    let path = tmp("generated.pcap");
    let client = "10.1.0.10";
    let plain = [
        // The reused 5-tuple: a second session with a new ISN 30 s later.
        Conversation::tcp(addr("10.1.0.10:40001"), addr("10.2.0.20:443"), at(0))
            .bytes(3000, 20_000)
            .seed(1),
        Conversation::tcp(addr("10.1.0.10:40001"), addr("10.2.0.20:443"), at(30))
            .bytes(500, 800)
            .seed(2),
        // The same UDP 5-tuple again after the 60 s idle timeout.
        Conversation::udp(addr("10.1.0.10:5353"), addr("10.2.0.53:53"), at(1))
            .bytes(60, 200)
            .rounds(3),
        Conversation::udp(addr("10.1.0.10:5353"), addr("10.2.0.53:53"), at(200))
            .bytes(60, 200)
            .rounds(2),
        Conversation::icmp_echo(
            "10.1.0.11".parse().unwrap(),
            "10.2.0.20".parse().unwrap(),
            7,
            at(2),
        ),
        Conversation::tcp(addr("10.1.0.12:40002"), addr("10.2.0.20:22"), at(5))
            .bytes(1000, 1000)
            .close(Close::RstByServer),
    ];
    let tunnelled = [
        Conversation::tcp(addr("10.9.0.1:41000"), addr("10.9.0.2:3389"), at(2))
            .bytes(2000, 5000)
            .spacing(Duration::from_millis(20)),
        Conversation::udp(addr("10.9.0.1:5000"), addr(&format!("{client}:514")), at(3))
            .bytes(100, 0)
            .rounds(4),
    ];
    let mut frames: Vec<(Timestamp, Vec<u8>)> = Vec::new();
    for c in &plain {
        frames.extend(flowbench::packets(c));
    }
    for c in &tunnelled {
        frames.extend(
            flowbench::packets(c)
                .into_iter()
                .map(|(ts, f)| (ts, vxlan(&f))),
        );
    }
    frames.sort_by_key(|(ts, _)| *ts);
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    for (ts, f) in &frames {
        w.write_packet(*ts, f, f.len() as u32).unwrap();
    }
    std::fs::write(&path, w.into_inner().unwrap()).unwrap();
    path
}

fn uids_where(records: &[Value], f: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    records
        .iter()
        .filter(|r| f(r))
        .map(|r| r["uid"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn generated_capture_round_trips_by_uid_community_id_host_and_time() {
    let input = generated_capture();
    let original = replay(&[&input]);
    let conns = by_uid(&original);
    assert_eq!(
        conns.len(),
        9,
        "8 conversations and the tunnel: {original:?}"
    );

    // The reused TCP 5-tuple and the returning UDP one are two connections
    // each: same Community ID, different uids.
    let mut by_cid: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for r in conns.values() {
        by_cid
            .entry(r["community_id"].as_str().unwrap())
            .or_default()
            .push(r);
    }
    let reused: Vec<&Vec<&Value>> = by_cid.values().filter(|v| v.len() == 2).collect();
    assert_eq!(reused.len(), 2, "{by_cid:?}");

    // Every connection by its uid, including the tunnel, the connections
    // inside it, and each use of a reused 5-tuple alone.
    for uid in conns.keys() {
        let what = format!("uid {uid}");
        let o = round_trip(
            &what,
            &input,
            &original,
            &["--uid", uid],
            &BTreeSet::from([uid.clone()]),
        );
        assert!(
            stderr(&o).contains("1 connection selected by uid"),
            "{}",
            stderr(&o)
        );
    }

    // By Community ID: both connections of a reused 5-tuple.
    for pair in &reused {
        let cid = pair[0]["community_id"].as_str().unwrap();
        let want = uids_where(&original, |r| r["community_id"] == cid);
        assert_eq!(want.len(), 2);
        round_trip(
            &format!("community id {cid}"),
            &input,
            &original,
            &["--community-id", cid],
            &want,
        );
    }

    // By host: its plain connections and the tunnelled one it answers.
    let host = "10.1.0.10";
    let want = uids_where(&original, |r| {
        r["id.orig_h"] == host || r["id.resp_h"] == host
    });
    assert_eq!(want.len(), 5, "two TCP, two UDP, one tunnelled");
    assert!(want
        .iter()
        .any(|u| conns[u].get("tunnel_parents").is_some()));
    round_trip("host", &input, &original, &["--host", host], &want);

    // Host and time: only the UDP connection that came back at T0 + 200 s
    // (RFC 3339, open end), or only what started by T0 + 0.5 s (epoch).
    let late = uids_where(&original, |r| {
        r["id.orig_h"] == host && r["ts"].as_f64().unwrap() >= (T0 + 100) as f64
    });
    assert_eq!(late.len(), 1);
    round_trip(
        "host late",
        &input,
        &original,
        &["--host", host, "--time", "2026-03-02T08:01:40Z.."],
        &late,
    );
    let early = uids_where(&original, |r| {
        r["id.orig_h"] == host && r["ts"].as_f64().unwrap() <= T0 as f64 + 0.5
    });
    assert_eq!(early.len(), 1);
    let until = format!("..{}.5", T0);
    round_trip(
        "host early",
        &input,
        &original,
        &["--host", host, "--time", &until],
        &early,
    );
}

/// Real captures: every connection of each, by uid. Covers GRE (no outer
/// connection), real VXLAN, VLANs reusing a 5-tuple, IPv6, an FTP session
/// with its data connections, and Linux SLL with nanosecond timestamps.
#[test]
fn corpus_captures_round_trip_every_connection_by_uid() {
    let Some(corpus) = common::Corpus::locate() else {
        return;
    };
    for name in [
        "tunnel-gre-ipv4-dns-ssh.pcap",
        "tunnel-vxlan.pcap",
        "vlan-same-5tuple-different-vlans.pcap",
        "ipv6-tcp-ftp-with-data-conns.pcap",
        "nsec-pcap-sll-tcp-handshake.pcap",
    ] {
        let input = corpus.pcap_path(name);
        let original = replay(&[&input]);
        let conns = by_uid(&original);
        assert!(!conns.is_empty(), "{name}");
        let (in_link, in_nanos, in_packets) = packets_of(&input);
        for uid in conns.keys() {
            let what = format!("{name} uid {uid}");
            round_trip(
                &what,
                &input,
                &original,
                &["--uid", uid],
                &BTreeSet::from([uid.clone()]),
            );
            // Same link type, same timestamp resolution, and every packet
            // exactly as it was in the input (time, bytes, wire length), in
            // input order.
            let out = tmp(&format!("{}.pcap", what.replace(['/', ' ', ':', '='], "_")));
            let (link, nanos, packets) = packets_of(&out);
            assert_eq!((link, nanos), (in_link, in_nanos), "{what}");
            let mut rest = in_packets.iter();
            for p in &packets {
                assert!(
                    rest.any(|q| q == p),
                    "{what}: a packet not in the input, or out of order"
                );
            }
        }
    }
}

/// libpcap's savefile header says 65535 bytes per packet; libpcap itself
/// would cut a longer packet back to that when reading, so the header is
/// raised to the longest packet written (an 80 kB GSO frame here).
#[test]
fn packets_longer_than_64_kib_are_read_back_whole_by_libpcap() {
    let Some(corpus) = common::Corpus::locate() else {
        return;
    };
    let input = corpus.pcap_path("bigtcp-ipv4-vxlan-ipv4-80kB-packet.pcap");
    let original = replay(&[&input]);
    let inner = uids_where(&original, |r| !is_tunnel_carrier(r));
    assert_eq!(inner.len(), 1);
    let uid = inner.iter().next().unwrap();
    let out = tmp("bigtcp.pcap");
    round_trip("bigtcp", &input, &original, &["--uid", uid], &inner);
    let mut cap = pcap::Capture::from_file(&out).unwrap();
    let p = cap.next_packet().unwrap();
    assert_eq!((p.header.caplen, p.data.len()), (80_116, 80_116));
    assert_eq!(packets_of(&out).2, packets_of(&input).2);
}

#[test]
fn packets_of_mixed_link_types_are_refused_and_nothing_is_left_behind() {
    // The same host in an Ethernet capture and a raw-IP one.
    let conv = Conversation::udp(addr("10.1.0.10:5353"), addr("10.2.0.53:53"), at(0)).rounds(2);
    let frames = flowbench::packets(&conv);
    let eth = tmp("mixed-eth.pcap");
    let raw = tmp("mixed-raw.pcap");
    for (path, link, strip, shift) in [
        (&eth, LinkType::ETHERNET, 0, 0),
        (&raw, LinkType::RAW, 14, 100),
    ] {
        let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 65535, link).unwrap();
        for (ts, f) in &frames {
            w.write_packet(
                Timestamp(ts.0 + shift * 1_000_000_000),
                &f[strip..],
                (f.len() - strip) as u32,
            )
            .unwrap();
        }
        std::fs::write(path, w.into_inner().unwrap()).unwrap();
    }
    let out = tmp("mixed-out.pcap");
    let o = run(&[
        "extract",
        eth.to_str().unwrap(),
        raw.to_str().unwrap(),
        "--host",
        "10.1.0.10",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("different link types"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("RAW"), "{}", stderr(&o));
    assert!(!out.exists(), "the partial output is removed");
    // Each input alone is fine, and keeps its link type.
    for (input, link) in [(&eth, LinkType::ETHERNET), (&raw, LinkType::RAW)] {
        extract(input, &["--host", "10.1.0.10"], &out);
        assert_eq!(packets_of(&out).0, link);
        assert_eq!(tshark_count(&out), frames.len() as u64);
    }
}

/// A capture cut mid-record: what is complete is extracted, the exit code
/// says the input ended early (3) and the message names the record.
#[test]
fn a_truncated_input_is_extracted_up_to_the_damage_with_exit_code_3() {
    let Some(corpus) = common::Corpus::locate() else {
        return;
    };
    let input = corpus.pcap_path("malformed-file-cut-mid-record-http.pcap");
    let out = tmp("truncated.pcap");
    let host = "1.8.31.101";
    let o = run(&[
        "extract",
        input.to_str().unwrap(),
        "--host",
        host,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("capture ended early at record 2697"),
        "{}",
        stderr(&o)
    );
    let original = run(&["replay", "-q", input.to_str().unwrap()]).stdout;
    let original: Vec<Value> = String::from_utf8(original)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want = uids_where(&original, |r| {
        r["id.orig_h"] == host || r["id.resp_h"] == host
    });
    assert_round_trip("truncated", &original, &want, &replay(&[&out]), &out);

    // Nothing matching in a damaged input: both are said.
    let o = run(&[
        "extract",
        input.to_str().unwrap(),
        "--host",
        "192.0.2.99",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "no connection matches host 192.0.2.99; nothing written (and an input ended early"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn nothing_matching_is_an_error_and_writes_nothing() {
    let out = tmp("nothing.pcap");
    let demo = repo().join("demo/msp-demo.pcap");
    let o = run(&[
        "extract",
        demo.to_str().unwrap(),
        "--uid",
        "CnotAConnection00",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no connection matches uid CnotAConnection00"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    let o = run(&[
        "extract",
        demo.to_str().unwrap(),
        "--host",
        "10.1.1.1",
        "--time",
        "tomorrow..",
        "-o",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("neither an RFC 3339 time"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn without_a_terminal_progress_is_one_summary_line() {
    let demo = repo().join("demo/msp-demo.pcap");
    let size = std::fs::metadata(&demo).unwrap().len();
    let (_, _, packets) = packets_of(&demo);
    let n = packets.len() as u64;
    let out = tmp("progress.pcap");
    let o = extract(&demo, &["--host", "10.20.10.5"], &out);
    let err = stderr(&o);
    let line = format!(
        "extract: {} packets, {} of {} bytes read (100%) in ",
        2 * n,
        2 * size,
        2 * size
    );
    assert_eq!(err.matches(&line).count(), 1, "two passes, one line: {err}");
    assert!(
        !err.contains('\r') && !err.contains("eta"),
        "no bar drawn: {err:?}"
    );

    let o = run(&["replay", "-o", "/dev/null", demo.to_str().unwrap()]);
    let line = format!("replay: {n} packets, {size} of {size} bytes read (100%) in ");
    assert_eq!(stderr(&o).matches(&line).count(), 1, "{}", stderr(&o));

    // --quiet and --no-progress silence it.
    let o = run(&["replay", "-q", "-o", "/dev/null", demo.to_str().unwrap()]);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let o = run(&[
        "replay",
        "--no-progress",
        "-o",
        "/dev/null",
        demo.to_str().unwrap(),
    ]);
    assert!(!stderr(&o).contains("bytes read"), "{}", stderr(&o));
}

/// On a terminal (a real pty from util-linux's `script`), a bar with the
/// bytes of the total, the packets and an ETA is drawn, then cleared.
#[test]
fn on_a_terminal_progress_is_a_bar_with_packets_bytes_and_eta() {
    let demo = repo().join("demo/msp-demo.pcap");
    let out = tmp("pty.pcap");
    let cmd = format!(
        "{} extract {} --host 10.20.10.5 -o {}",
        env!("CARGO_BIN_EXE_sensor"),
        demo.display(),
        out.display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(screen.contains("extract selecting"), "{screen:?}");
    assert!(screen.contains(" MiB"), "bytes of the total: {screen:?}");
    assert!(screen.contains(" packets "), "{screen:?}");
    assert!(screen.contains("eta "), "{screen:?}");
    assert!(
        screen.contains("\u{1b}[2K"),
        "the bar is redrawn in place: {screen:?}"
    );
    // No summary line on a terminal: the bar was the progress.
    assert!(!screen.contains("bytes read ("), "{screen:?}");
    assert!(
        screen.contains("connections selected by host 10.20.10.5"),
        "{screen:?}"
    );
}

/// A write error (here the full device) ends the extraction with exit 1
/// and a message naming the file; the device itself is left alone.
#[test]
fn an_output_that_cannot_be_written_is_an_error_not_a_short_file() {
    let input = generated_capture();
    let o = run(&[
        "extract",
        input.to_str().unwrap(),
        "--host",
        "10.1.0.10",
        "-o",
        "/dev/full",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/dev/full: cannot write")
            && stderr(&o).contains("(no space left on the device)"),
        "{}",
        stderr(&o)
    );
    let full = std::fs::metadata("/dev/full").expect("/dev/full is still there");
    assert!(!full.is_file(), "still the device");
    // The same extraction to a writable file works and holds the packets.
    let out = tmp("writable.pcap");
    let o = extract(&input, &["--host", "10.1.0.10"], &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(tshark_count(&out) > 0);
}

/// Extraction reads its inputs twice; standard input (or a FIFO) is
/// refused before anything is read or written.
#[test]
fn standard_input_is_refused_up_front() {
    let out = tmp("from-stdin.pcap");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/msp-demo.pcap");
    let o = sensor()
        .args([
            "extract",
            "-",
            "--host",
            "10.20.10.5",
            "-o",
            out.to_str().unwrap(),
        ])
        .stdin(std::fs::File::open(demo).unwrap())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("extract reads its inputs twice"), "{err}");
    assert!(!out.exists());
}

/// A packet stamped in 2100 in the middle of the demo: extract applies
/// the replay's capture clock, so a connection after it is found by the
/// uid the replay printed, with all its packets (a frozen clock made other
/// connections and other uids).
#[test]
fn uids_after_a_wrong_future_stamp_are_the_replays() {
    let (link, nanos, mut packets) = packets_of(&repo().join("demo/msp-demo.pcap"));
    let mut wrong = packets[1000].clone();
    wrong.0 = Timestamp::from_micros(4_102_444_800, 0);
    packets.insert(1001, wrong);
    let input = tmp("year-2100.pcap");
    let resolution = if nanos {
        Resolution::Nanos
    } else {
        Resolution::Micros
    };
    let mut w = PcapWriter::new(Vec::new(), resolution, 65535, link).unwrap();
    for (ts, data, len) in &packets {
        w.write_packet(*ts, data, *len).unwrap();
    }
    std::fs::write(&input, w.into_inner().unwrap()).unwrap();
    let records = by_uid(&replay(&[&input]));
    // The last connection to start, long after the wrong stamp.
    let last = records
        .values()
        .max_by(|a, b| a["ts"].as_f64().partial_cmp(&b["ts"].as_f64()).unwrap())
        .unwrap();
    let uid = last["uid"].as_str().unwrap();
    let out = tmp("year-2100-last.pcap");
    extract(&input, &["--uid", uid], &out);
    let (_, _, got) = packets_of(&out);
    assert_eq!(got.len() as u64, pkts(last), "{last}");
}
