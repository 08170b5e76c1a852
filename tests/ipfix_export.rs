//! IPFIX export checked by real collectors and decoders:
//!
//! - UDP: Debian's nfdump collector (`nfcapd`, nfdump 1.7.1) receives a
//!   replay of demo and corpus captures; `nfdump -o json` reads its file back
//!   and every flow, with packets and octets per direction (RFC 5103 reverse
//!   counters, which nfdump maps to its "out" counters), start and end times,
//!   VLAN and TCP flags, must equal our own JSON records of the same replay.
//!   The export is also captured on loopback and decoded by tshark to check
//!   the template refresh and the sequence numbers message by message.
//! - UDP: pmacct's `nfacctd` (1.7.7) receives the same replay; its print
//!   plugin's JSON must hold every flow with our originator's packets,
//!   octets, times, VLAN and TCP flags (pmacct does not decode RFC 5103
//!   reverse elements, so the responder's counters are checked with nfdump
//!   and tshark only).
//! - TCP: nfcapd 1.7.1 only listens on UDP (as does pmacct's nfacctd), so
//!   the test is the TCP collector's socket, captures the stream on loopback
//!   with tcpdump and decodes it with tshark's IPFIX dissector (cflow), which
//!   also decodes the fields nfdump drops: reverse TCP flags, inner VLAN,
//!   flowEndReason, biflowDirection and our enterprise-specific strings.
//!
//! Capturing on loopback needs root (as the live capture test; CI runs as
//! root).

mod common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sensor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("flowmon-ipfix-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Captures from the corpus with IPv4 and IPv6, TCP, UDP, ICMP and ICMPv6,
/// 802.1Q and QinQ VLANs, and a long SSH session for interim records.
const CORPUS_CAPTURES: &[&str] = &[
    "eth-ipv4-mixed-http-dns-wikipedia.pcap",
    "ipv6-tcp-ftp-with-data-conns.pcap",
    "vlan-same-5tuple-different-vlans.pcap",
    "qinq-8021ad-double-tagged.pcap",
    "icmp-echo-pings.pcap",
    "icmp6-nd-echo-mixed.pcap",
    "tcp-long-lived-ssh-session.pcap",
];

/// The demo capture plus the corpus captures, as replay arguments.
fn inputs() -> Option<Vec<PathBuf>> {
    let corpus = common::Corpus::locate()?;
    let mut files = vec![repo().join("demo/msp-demo.pcap")];
    files.extend(CORPUS_CAPTURES.iter().map(|c| corpus.pcap_path(c)));
    Some(files)
}

/// Runs `sensor replay` over `files` with `extra` arguments, records as
/// JSON into `json`; returns the process output.
fn replay(files: &[PathBuf], json: &Path, extra: &[&str]) -> Output {
    let mut cmd = sensor();
    cmd.arg("replay").args(files).arg("-o").arg(json);
    // Interim records: the SSH session runs for minutes.
    cmd.args(["--active-timeout", "60", "--no-progress"]);
    cmd.args(extra);
    let out = cmd.output().expect("run sensor");
    assert!(
        out.status.success(),
        "sensor replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read records")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record is JSON"))
        .collect()
}

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    s.local_addr().unwrap().port()
}

/// Calls `check` every `every` until it returns `Ok`; after `secs` seconds,
/// returns what its last `Err` said.
fn poll(
    secs: u64,
    every: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(why) if Instant::now() >= deadline => return Err(why),
            Err(_) => std::thread::sleep(every),
        }
    }
}

/// Calls `check` every 50 ms until it returns `Ok`; after `secs` seconds,
/// fails with what its last `Err` said.
fn wait_until(secs: u64, check: impl FnMut() -> Result<(), String>) {
    if let Err(why) = poll(secs, Duration::from_millis(50), check) {
        panic!("{why}");
    }
}

/// Waits until `/proc/net/{udp,tcp}` shows a socket bound to 127.0.0.1:port.
fn wait_listening(proto: &str, port: u16, child: &mut Child) {
    let needle = format!("0100007F:{port:04X}");
    wait_until(10, || {
        let table = std::fs::read_to_string(format!("/proc/net/{proto}")).unwrap_or_default();
        if table.contains(&needle) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("collector exited before listening on {port}: {status}");
        }
        Err(format!("nothing listens on {proto} {port}"))
    });
}

/// Waits until the UDP socket bound to 127.0.0.1:port has no datagram
/// waiting (`rx_queue` 0 in `/proc/net/udp`): the collector has read all
/// that was sent. Fails if the kernel dropped any for a full buffer.
fn wait_drained(port: u16) {
    let needle = format!("0100007F:{port:04X}");
    wait_until(20, || {
        let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
        let fields: Vec<&str> = table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(needle.as_str()))
            .unwrap_or_else(|| panic!("no UDP socket on port {port}"))
            .split_whitespace()
            .collect();
        assert_eq!(
            fields.last(),
            Some(&"0"),
            "datagrams dropped on port {port}"
        );
        let queued = fields[4].split_once(':').map_or("0", |(_, rx)| rx);
        if u64::from_str_radix(queued, 16) == Ok(0) {
            return Ok(());
        }
        Err(format!("port {port} still has {queued} bytes queued"))
    });
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {}", child.id());
}

/// Waits for a child to exit, with a deadline.
fn wait_exit(child: &mut Child, what: &str) {
    wait_until(20, || match child.try_wait().expect("wait") {
        Some(_) => Ok(()),
        None => Err(format!("{what} did not exit")),
    });
}

/// tcpdump on loopback, writing `file`, ready when it says it listens.
struct LoopbackCapture {
    child: Child,
    file: PathBuf,
}

impl LoopbackCapture {
    fn start(filter: &str, file: PathBuf) -> LoopbackCapture {
        let mut child = Command::new("tcpdump")
            // In immediate mode the kernel ring has one snaplen-sized slot
            // per packet: libpcap's default 2 MiB holds only 8 of 256 KiB,
            // so a burst of datagrams while tcpdump waits for the CPU would
            // be dropped. 128 MiB holds 500.
            .args(["-i", "lo", "--immediate-mode", "-U", "-n", "-s", "0"])
            .args(["-B", "131072", "-w"])
            .arg(&file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump (installed by .ci/run; capturing needs root)");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).expect("tcpdump stderr");
        assert!(
            line.contains("listening on"),
            "tcpdump did not start: {line}"
        );
        // Keep draining stderr so tcpdump never blocks on it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = err.read_to_string(&mut sink);
        });
        LoopbackCapture { child, file }
    }

    /// Stops the capture, once its file holds `packets` packets when that
    /// many are known to be sent, and decodes it with tshark's IPFIX
    /// dissector: one JSON object (the `cflow` layer) per IPFIX message.
    fn decode(mut self, decode_as: &str, packets: Option<u64>) -> Vec<Value> {
        match packets {
            // tcpdump stops reading its ring at SIGINT: wait until it has
            // written every packet sent.
            Some(n) => wait_until(20, || match pcap_packets(&self.file) {
                got if got >= n => Ok(()),
                got => Err(format!("tcpdump wrote {got} of {n} packets")),
            }),
            // Let the last packets reach the capture before stopping it.
            None => std::thread::sleep(Duration::from_millis(300)),
        }
        signal(&self.child, "-INT");
        wait_exit(&mut self.child, "tcpdump");
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args(["-d", decode_as, "-T", "json", "--no-duplicate-keys"])
            .output()
            .expect("tshark (installed by .ci/run)");
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let packets: Value = serde_json::from_slice(&out.stdout).expect("tshark JSON");
        let mut messages = Vec::new();
        for p in packets.as_array().expect("packet array") {
            match &p["_source"]["layers"]["cflow"] {
                Value::Null => {}
                Value::Array(several) => messages.extend(several.iter().cloned()),
                one => messages.push(one.clone()),
            }
        }
        messages
    }
}

/// Complete packet records in a pcap file that may still be being written.
fn pcap_packets(path: &Path) -> u64 {
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    let Ok(mut reader) = flowlib::pcap_reader::PcapReader::new(file) else {
        return 0;
    };
    let mut n = 0;
    while let Ok(Some(_)) = reader.next_packet() {
        n += 1;
    }
    n
}

/// One flow as compared across tools: addresses, ports, protocol, first and
/// last packet (ms), packets and octets per direction, VLAN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Flow {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
    first_ms: i64,
    last_ms: i64,
    orig_pkts: u64,
    orig_octets: u64,
    resp_pkts: u64,
    resp_octets: u64,
    vlan: u16,
}

fn u(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().expect("unsigned"),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        other => panic!("not a number: {other}"),
    }
}

/// Microseconds from a JSON seconds value (our records log microseconds).
fn micros(v: &Value) -> i64 {
    (v.as_f64().expect("seconds") * 1e6).round() as i64
}

/// Our record as a [`Flow`]. ICMP: IPFIX has no ports, the type and code
/// travel in icmpTypeCode, which nfdump shows as the destination port
/// (type * 256 + code) and tshark as its own fields.
fn our_flow(r: &Value) -> Flow {
    let start_us = micros(&r["ts"]);
    let end_us = start_us + r.get("duration").map_or(0, micros);
    let proto = u(&r["ip_proto"]) as u8;
    let (sport, dport) = match proto {
        1 | 58 => (0, icmp_type_code(r)),
        _ => (u(&r["id.orig_p"]) as u16, u(&r["id.resp_p"]) as u16),
    };
    Flow {
        src: r["id.orig_h"].as_str().unwrap().parse().unwrap(),
        dst: r["id.resp_h"].as_str().unwrap().parse().unwrap(),
        sport,
        dport,
        proto,
        first_ms: start_us.div_euclid(1000),
        last_ms: end_us.div_euclid(1000),
        orig_pkts: u(&r["orig_pkts"]),
        orig_octets: u(&r["orig_ip_bytes"]),
        resp_pkts: u(&r["resp_pkts"]),
        resp_octets: u(&r["resp_ip_bytes"]),
        vlan: r.get("vlan").map_or(0, |v| u(v) as u16),
    }
}

/// ICMP type * 256 + code from a record: Zeek's mapping keeps the type in
/// `id.orig_p`; `id.resp_p` is the code for one-way messages and the
/// counterpart type for request/reply pairs, whose code is 0.
fn icmp_type_code(r: &Value) -> u16 {
    let t = u(&r["id.orig_p"]) as u16;
    let v6 = u(&r["ip_proto"]) == 58;
    let pairs: &[(u16, u16)] = if v6 {
        &[(128, 129), (130, 131), (133, 134), (135, 136), (139, 140)]
    } else {
        &[(8, 0), (13, 14), (15, 16), (17, 18), (10, 9)]
    };
    let two_way = pairs.iter().any(|&(a, b)| t == a || t == b);
    let code = if two_way {
        0
    } else {
        u(&r["id.resp_p"]) as u16
    };
    t << 8 | code
}

/// Days since 1970-01-01 to (year, month, day) (proleptic Gregorian).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Parses nfdump's `2026-03-02T08:00:00.003` (printed in UTC: TZ=UTC).
fn nfdump_ms(s: &str) -> i64 {
    let (date, time) = s.split_once('T').expect("date T time");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, ms) = time.split_once('.').expect("milliseconds");
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    // Find the day number by inverting `civil` around an estimate.
    let mut days = (d[0] - 1970) * 365 + (d[0] - 1969) / 4 + (d[1] - 1) * 28;
    while civil(days) < (d[0], d[1], d[2]) {
        days += 1;
    }
    assert_eq!(civil(days), (d[0], d[1], d[2]), "bad date {s}");
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms.parse::<i64>().unwrap()
}

fn nfdump_flow(f: &Value) -> Flow {
    let u = |v: &Value| -> u64 {
        match v {
            Value::Null => panic!("nfdump record without a field: {f}"),
            v => u(v),
        }
    };
    let addr = |k4: &str, k6: &str| -> IpAddr {
        f.get(k4)
            .or_else(|| f.get(k6))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no address in {f}"))
            .parse()
            .unwrap()
    };
    Flow {
        src: addr("src4_addr", "src6_addr"),
        dst: addr("dst4_addr", "dst6_addr"),
        // nfdump shows icmpTypeCode as its own fields instead of ports.
        sport: f.get("src_port").map_or(0, |p| u(p) as u16),
        dport: match f.get("icmp_type") {
            Some(t) => (u(t) << 8 | u(&f["icmp_code"])) as u16,
            None => u(&f["dst_port"]) as u16,
        },
        proto: u(&f["proto"]) as u8,
        first_ms: nfdump_ms(f["first"].as_str().unwrap()),
        last_ms: nfdump_ms(f["last"].as_str().unwrap()),
        orig_pkts: u(&f["in_packets"]),
        orig_octets: u(&f["in_bytes"]),
        resp_pkts: u(&f["out_packets"]),
        resp_octets: u(&f["out_bytes"]),
        vlan: u(&f["src_vlan"]) as u16,
    }
}

/// TCP flags each side certainly sent, from Zeek's history letters (upper
/// case: originator): S SYN, H SYN+ACK, A ACK, F FIN, R RST, I FIN+RST,
/// Q SYN. As `FSRPAUEC` bits (FIN 0x01 .. ACK 0x10).
fn flags_from_history(history: &str) -> (u16, u16) {
    let (mut o, mut r) = (0, 0);
    for c in history.chars() {
        let bits = match c.to_ascii_uppercase() {
            'S' | 'Q' => 0x02,
            'H' => 0x12,
            'A' => 0x10,
            'F' => 0x01,
            'R' => 0x04,
            'I' => 0x05,
            _ => 0,
        };
        if c.is_ascii_uppercase() {
            o |= bits
        } else {
            r |= bits
        }
    }
    (o, r)
}

/// nfdump's flag string (`...A..SF`, positions CWR ECE URG ACK PSH RST SYN FIN).
fn nfdump_flags(s: &str) -> u16 {
    s.chars()
        .rev()
        .enumerate()
        .filter(|(_, c)| *c != '.')
        .fold(0, |acc, (i, _)| acc | 1 << i)
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn udp_export_to_nfcapd_equals_our_records_per_direction() {
    let Some(files) = inputs() else { return };
    let dir = tmp_dir("nfcapd");
    let flows_dir = dir.join("flows");
    std::fs::create_dir_all(&flows_dir).unwrap();
    let port = free_udp_port();
    let mut nfcapd = Command::new("nfcapd")
        .arg("-w")
        .arg(&flows_dir)
        .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-t", "3600"])
        .args(["-B", "4194304"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nfcapd (Debian package nfdump, installed by .ci/run)");
    wait_listening("udp", port, &mut nfcapd);
    let capture = LoopbackCapture::start(&format!("udp port {port}"), dir.join("udp.pcap"));

    let json = dir.join("records.json");
    let out = replay(
        &files,
        &json,
        &[
            "--ipfix",
            &format!("127.0.0.1:{port}"),
            "--ipfix-domain",
            "42",
            "--ipfix-template-every",
            "16",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);

    // nfcapd writes its file when it stops (SIGTERM): once it has read
    // every datagram.
    wait_drained(port);
    signal(&nfcapd, "-TERM");
    wait_exit(&mut nfcapd, "nfcapd");
    let mut log = String::new();
    nfcapd
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    nfcapd
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let dump = Command::new("nfdump")
        .arg("-R")
        .arg(&flows_dir)
        .args(["-o", "json"])
        .env("TZ", "UTC")
        .output()
        .expect("nfdump");
    assert!(
        dump.status.success(),
        "nfdump failed: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let theirs: Vec<Value> = serde_json::from_slice(&dump.stdout).expect("nfdump JSON");
    let ours = json_lines(&json);

    // Interim records (active timeout) are exported too.
    assert!(
        ours.iter().any(|r| r["end_reason"] == "active"),
        "no interim records: lower --active-timeout"
    );
    assert!(ours
        .iter()
        .any(|r| r["id.orig_h"].as_str().unwrap().contains(':')));
    assert!(ours.iter().any(|r| r.get("vlan").is_some()));
    assert!(
        stderr.contains(&format!("ipfix: {} records in", ours.len()))
            && stderr.contains(", 0 failed"),
        "summary: {stderr}"
    );
    assert!(
        log.contains(&format!("Flows: {}", ours.len())) && log.contains("Sequence Errors: 0"),
        "nfcapd's own accounting: {log}"
    );

    // Every flow, with packets and octets per direction, equal.
    let our_flows = sorted(ours.iter().map(our_flow).collect());
    let their_flows = sorted(theirs.iter().map(nfdump_flow).collect());
    assert_eq!(their_flows.len(), our_flows.len(), "flow count");
    for (t, o) in their_flows.iter().zip(&our_flows) {
        assert_eq!(t, o, "nfdump vs ours");
    }
    // Forward TCP flags: nfdump decodes tcpControlBits (not the reverse one).
    let mut our_flags = BTreeMap::new();
    for r in &ours {
        let key = our_flow(r);
        let f = flags_from_history(r.get("history").and_then(Value::as_str).unwrap_or(""));
        let f = if r["ip_proto"] == 6 { f.0 } else { 0 };
        our_flags.entry(key).or_insert_with(Vec::new).push(f);
    }
    let mut their_flags = BTreeMap::new();
    for f in &theirs {
        their_flags
            .entry(nfdump_flow(f))
            .or_insert_with(Vec::new)
            .push(f["tcp_flags"].as_str().map_or(0, nfdump_flags));
    }
    for v in our_flags.values_mut().chain(their_flags.values_mut()) {
        v.sort();
    }
    let differing: Vec<_> = our_flags
        .iter()
        .filter(|(k, v)| their_flags.get(*k) != Some(*v))
        .map(|(k, v)| (k, v, their_flags.get(k)))
        .take(5)
        .collect();
    assert!(
        differing.is_empty(),
        "TCP flags (flow, ours, nfdump's): {differing:#?}"
    );

    // Message by message, as tshark decodes the datagrams: domain 42,
    // sequence = data records sent before, templates in the first and
    // then in every 16th message.
    // One datagram per message: "ipfix: R records in M messages ...".
    let sent: u64 = stderr
        .split_once(" records in ")
        .and_then(|(_, rest)| rest.split_once(' '))
        .and_then(|(m, _)| m.parse().ok())
        .unwrap_or_else(|| panic!("no message count in the summary: {stderr}"));
    let messages = capture.decode(&format!("udp.port=={port},cflow"), Some(sent));
    assert_eq!(messages.len() as u64, sent, "messages captured");
    assert!(messages.len() > 16 * 3, "{} messages", messages.len());
    let mut expected_seq = 0u64;
    let mut since_templates = 0;
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(u(&m["cflow.od_id"]), 42);
        assert_eq!(u(&m["cflow.sequence"]), expected_seq, "message {i}");
        let templates = m
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("(Data Template)"));
        assert!(
            u(&m["cflow.len"]) <= 1400,
            "message {i} exceeds the UDP limit"
        );
        if i == 0 || since_templates + 1 == 16 {
            assert!(templates, "message {i} should carry the templates");
            since_templates = 0;
        } else {
            assert!(!templates, "message {i} should not carry the templates");
            since_templates += 1;
        }
        expected_seq += data_records(m).len() as u64;
    }
    assert_eq!(expected_seq, ours.len() as u64);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The data records of one decoded message, in order.
fn data_records(m: &Value) -> Vec<&Value> {
    // JSON objects come back with sorted keys ("Set 10" before "Set 2"):
    // order sets and flows by their numbers.
    let mut sets: Vec<(usize, &Value)> = m
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.contains("(Data Template)"))
        .filter_map(|(k, v)| {
            let n = k.strip_prefix("Set ")?.split_whitespace().next()?;
            Some((n.parse().ok()?, v))
        })
        .collect();
    sets.sort_by_key(|(n, _)| *n);
    let mut out = Vec::new();
    for (_, set) in sets {
        let mut flows: Vec<(usize, &Value)> = set
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("Flow ")?.parse().ok()?, v)))
            .collect();
        flows.sort_by_key(|(n, _)| *n);
        out.extend(flows.into_iter().map(|(_, v)| v));
    }
    out
}

/// A field tshark printed once or (forward, reverse) twice.
fn pair(v: &Value) -> (u64, u64) {
    match v {
        Value::Array(a) => (u(&a[0]), u(&a[1])),
        other => panic!("expected forward and reverse values: {other}"),
    }
}

/// Our enterprise strings, as tshark prints unknown-PEN fields (hex bytes).
fn strings(v: &Value) -> Vec<String> {
    let items = match v {
        Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    };
    items
        .iter()
        .map(|s| {
            let s = s.as_str().unwrap();
            let bytes: Vec<u8> = s
                .split(':')
                .filter(|h| !h.is_empty())
                .map(|h| u8::from_str_radix(h, 16).unwrap())
                .collect();
            String::from_utf8(bytes).unwrap()
        })
        .collect()
}

#[test]
fn tcp_export_decoded_by_tshark_carries_every_field() {
    let Some(files) = inputs() else { return };
    let dir = tmp_dir("tcp");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().unwrap().port();
    let capture = LoopbackCapture::start(&format!("tcp port {port}"), dir.join("tcp.pcap"));
    // The collector's socket: accept one connection and read it to the end.
    let collector = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut all = Vec::new();
        s.read_to_end(&mut all).expect("read stream");
        all.len()
    });

    let json = dir.join("records.json");
    let rules = repo().join("rules/examples/demo.toml");
    replay(
        &files,
        &json,
        &[
            "--ipfix",
            &format!("tcp://127.0.0.1:{port}"),
            "--rules",
            rules.to_str().unwrap(),
        ],
    );
    let received = collector.join().expect("collector thread");
    assert!(received > 0);
    let messages = capture.decode(&format!("tcp.port=={port},cflow"), None);
    let ours = json_lines(&json);

    // One transport session: templates once, at its start; the sequence
    // number counts data records.
    let mut decoded = Vec::new();
    let mut expected_seq = 0u64;
    for (i, m) in messages.iter().enumerate() {
        let templates = m
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("(Data Template)"));
        assert_eq!(
            templates,
            i == 0,
            "templates only in the first message ({i})"
        );
        assert_eq!(u(&m["cflow.sequence"]), expected_seq, "message {i}");
        assert_eq!(u(&m["cflow.od_id"]), 1);
        let recs = data_records(m);
        expected_seq += recs.len() as u64;
        decoded.extend(recs);
    }
    assert_eq!(decoded.len(), ours.len(), "every record exported once");

    // Records go out in output order, so record i is message record i.
    for (r, f) in ours.iter().zip(&decoded) {
        let uid = r["uid"].as_str().unwrap();
        let v6 = r["id.orig_h"].as_str().unwrap().contains(':');
        let (src, dst) = if v6 {
            (&f["cflow.srcaddrv6"], &f["cflow.dstaddrv6"])
        } else {
            (&f["cflow.srcaddr"], &f["cflow.dstaddr"])
        };
        let o = our_flow(r);
        assert_eq!(
            src.as_str().unwrap().parse::<IpAddr>().unwrap(),
            o.src,
            "{uid}"
        );
        assert_eq!(
            dst.as_str().unwrap().parse::<IpAddr>().unwrap(),
            o.dst,
            "{uid}"
        );
        assert_eq!(u(&f["cflow.protocol"]), u(&r["ip_proto"]), "{uid}");
        match o.proto {
            1 => assert_eq!(
                u64::from_str_radix(
                    f["cflow.icmp_type_code_ipv4"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("0x"),
                    16
                )
                .unwrap(),
                u64::from(o.dport),
                "{uid}"
            ),
            58 => assert_eq!(
                u(&f["cflow.icmp_ipv6_type"]) << 8 | u(&f["cflow.icmp_ipv6_code"]),
                u64::from(o.dport),
                "{uid}"
            ),
            _ => {
                assert_eq!(u(&f["cflow.srcport"]), u64::from(o.sport), "{uid}");
                assert_eq!(u(&f["cflow.dstport"]), u64::from(o.dport), "{uid}");
            }
        }
        assert_eq!(
            pair(&f["cflow.permanent_packets"]),
            (o.orig_pkts, o.resp_pkts),
            "{uid} packets per direction"
        );
        assert_eq!(
            pair(&f["cflow.permanent_octets"]),
            (o.orig_octets, o.resp_octets),
            "{uid} octets per direction"
        );
        assert_eq!(u(&f["cflow.vlanid"]), u64::from(o.vlan), "{uid}");
        assert_eq!(
            u(&f["cflow.dot1q_customer_vlan_id"]),
            r.get("inner_vlan").map_or(0, u),
            "{uid}"
        );
        let times = &f["cflow.timedelta_tree"];
        assert_eq!(
            tshark_ms(times["cflow.abstimestart"].as_str().unwrap()),
            o.first_ms,
            "{uid}"
        );
        assert_eq!(
            tshark_ms(times["cflow.abstimeend"].as_str().unwrap()),
            o.last_ms,
            "{uid}"
        );
        // Template order: reverse (responder) flags, then forward.
        let flags = match &f["cflow.tcpflags"] {
            Value::Array(a) => (hex(&a[1]), hex(&a[0])),
            other => panic!("{uid}: tcp flags {other}"),
        };
        let expected = if o.proto == 6 {
            flags_from_history(r.get("history").and_then(Value::as_str).unwrap_or(""))
        } else {
            (0, 0)
        };
        assert_eq!(flags, expected, "{uid} TCP flags per direction");
        let reason = match r["end_reason"].as_str().unwrap() {
            "idle" => 1,
            "active" => 2,
            "fin" | "rst" | "reuse" => 3,
            "eof" | "shutdown" => 4,
            "evicted" => 5,
            other => panic!("{uid}: end reason {other}"),
        };
        assert_eq!(u(&f["cflow.flow_end_reason"]), reason, "{uid}");
        assert_eq!(u(&f["cflow.biflow_direction"]), 1, "{uid}");
        let s = strings(&f["cflow.enterprise_private_entry"]);
        let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        // tshark shows no value for an empty string (no history, no enclave).
        let expected: Vec<String> = [
            "conn_state",
            "history",
            "orig_enclave",
            "resp_enclave",
            "community_id",
            "uid",
        ]
        .iter()
        .map(|k| field(k))
        .filter(|v| !v.is_empty())
        .collect();
        assert_eq!(s, expected, "{uid} enterprise-specific strings");
    }
    assert!(ours.iter().any(|r| r.get("orig_enclave").is_some()));
    assert!(ours.iter().any(|r| r.get("inner_vlan").is_some()));
    let _ = std::fs::remove_dir_all(&dir);
}

fn hex(v: &Value) -> u16 {
    u16::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// tshark's `Feb 15, 2012 17:42:57.822000000 UTC` in milliseconds.
fn tshark_ms(s: &str) -> i64 {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = s.split_whitespace().collect();
    let month = MONTHS.iter().position(|m| *m == parts[0]).unwrap() as i64 + 1;
    let day: i64 = parts[1].trim_end_matches(',').parse().unwrap();
    let year: i64 = parts[2].parse().unwrap();
    let (hms, frac) = parts[3].split_once('.').unwrap();
    nfdump_ms(&format!(
        "{year:04}-{month:02}-{day:02}T{hms}.{}",
        &frac[..3]
    ))
}

#[test]
fn tcp_collector_that_is_not_listening_is_an_error_at_startup() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tmp_dir("refused");
    let out = sensor()
        .arg("replay")
        .arg(repo().join("demo/msp-demo.pcap"))
        .arg("-o")
        .arg(dir.join("r.json"))
        .args(["--ipfix", &format!("tcp://127.0.0.1:{port}")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot connect to the IPFIX collector tcp://127.0.0.1"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn udp_export_errors_are_counted_and_reported_not_silent() {
    // Nothing listens: loopback answers with ICMP port unreachable, which a
    // connected UDP socket reports on the next send.
    let port = free_udp_port();
    let dir = tmp_dir("udp-refused");
    let out = sensor()
        .arg("replay")
        .arg(repo().join("demo/msp-demo.pcap"))
        .arg("-o")
        .arg(dir.join("r.json"))
        .args(["--ipfix", &format!("127.0.0.1:{port}"), "-q"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let records = json_lines(&dir.join("r.json")).len();
    assert_eq!(records, 633, "records still reach the normal output");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("sensor: warning: ipfix:"))
        .unwrap_or_else(|| panic!("no export warning: {stderr}"));
    assert!(line.contains("udp_send_connection_refused"), "{line}");
    // Every record is either sent or counted as failed.
    let num = |before: &str| number_before(line, before);
    assert_eq!(
        num(" records in") + num(" failed"),
        records as u64,
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn contradictory_or_unknown_transport_is_a_usage_error() {
    for args in [
        vec!["--ipfix", "sctp://127.0.0.1:4739"],
        vec![
            "--ipfix",
            "tcp://127.0.0.1:4739",
            "--ipfix-transport",
            "udp",
        ],
        vec!["--ipfix", "127.0.0.1:4739", "--ipfix-message-size", "100"],
    ] {
        let out = sensor()
            .arg("replay")
            .arg(repo().join("demo/msp-demo.pcap"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("--ipfix"), "{stderr}");
    }
}

/// Regression: the time-based template refresh was checked only after a
/// message had gone, so the first message after a quiet gap longer than
/// `--ipfix-template-refresh` went without templates (RFC 7011 section
/// 8.4). The refresh runs on the wall clock, so this is a live capture on
/// loopback: one UDP packet every 3 s, each ending as a record after 1 s
/// idle, each record a message of its own more than 1 s after the last;
/// the collector's socket must find the template set in every one.
#[test]
fn udp_templates_resent_in_the_first_message_after_a_gap_longer_than_the_refresh() {
    let dir = tmp_dir("refresh");
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = collector.local_addr().unwrap().port();
    collector
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut messages = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(n) = collector.recv(&mut buf) {
                messages.push(buf[..n].to_vec());
            }
        }
        messages
    });
    // The traffic's destination, so that loopback answers with no ICMP.
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let traffic_port = sink.local_addr().unwrap().port();
    let err_file = dir.join("live.err");
    let mut live = sensor()
        .args(["live", "-i", "lo", "--udp-idle", "1", "-o"])
        .arg(dir.join("lv.json"))
        .args(["--bpf", &format!("udp port {traffic_port}")])
        .args(["--ipfix", &format!("127.0.0.1:{port}")])
        .args(["--ipfix-template-refresh", "1"])
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .expect("sensor live");
    wait_until(10, || {
        let err = std::fs::read_to_string(&err_file).unwrap_or_default();
        if err.contains("capturing") {
            return Ok(());
        }
        if let Ok(Some(status)) = live.try_wait() {
            panic!("sensor live exited: {status}: {err}");
        }
        Err(format!("sensor live is not capturing: {err}"))
    });
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    const PACKETS: usize = 4;
    for _ in 0..PACKETS {
        peer.send_to(b"ping", ("127.0.0.1", traffic_port)).unwrap();
        std::thread::sleep(Duration::from_secs(3));
    }
    signal(&live, "-TERM");
    wait_exit(&mut live, "sensor live");
    // Anything still in flight on loopback arrives within the reader's
    // next timeout.
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let messages = reader.join().expect("collector thread");
    let err = std::fs::read_to_string(&err_file).unwrap();
    let line = err
        .lines()
        .find(|l| l.starts_with("ipfix:"))
        .unwrap_or_else(|| panic!("no ipfix summary: {err}"));
    assert_eq!(number_before(line, " records in"), PACKETS as u64, "{line}");
    assert_eq!(
        number_before(line, " messages"),
        messages.len() as u64,
        "{line}"
    );
    assert_eq!(messages.len(), PACKETS, "one message per record: {line}");
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(u16::from_be_bytes([m[0], m[1]]), 10, "message {i}");
        assert_eq!(&m[16..18], &[0, 2], "message {i} opens with the templates");
    }
    assert!(
        line.contains(&format!("({PACKETS} with templates)")),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression: message sizes up to 65535 were accepted over UDP, and every
/// datagram larger than UDP carries failed (`EMSGSIZE`, counted as
/// `udp_send_uncategorized`). Above the largest UDP payload (65507 over
/// IPv4, 65527 over IPv6) the size is now a usage error; at it, every
/// record goes.
#[test]
fn udp_message_size_above_the_largest_datagram_is_a_usage_error() {
    let dir = tmp_dir("udp-size");
    for (target, size, most) in [
        ("127.0.0.1:4739", "65508", "65507"),
        ("udp://127.0.0.1:4739", "65535", "65507"),
        ("[::1]:4739", "65528", "65527"),
    ] {
        let out = sensor()
            .arg("replay")
            .arg(repo().join("demo/msp-demo.pcap"))
            .arg("-o")
            .arg(dir.join("r.json"))
            .args(["--ipfix", target, "--ipfix-message-size", size])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{target} {size}: {stderr}");
        assert!(
            stderr.contains("--ipfix")
                && stderr.contains(&format!("message size {size}"))
                && stderr.contains(&format!("({most} octets)")),
            "{stderr}"
        );
    }

    // The largest size goes: the collector's socket receives every record
    // in datagrams of at most 65507 octets, and nothing failed.
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = collector.local_addr().unwrap().port();
    collector
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut lens = Vec::new();
        let mut buf = vec![0u8; 65_536];
        // Until the sensor has been quiet for half a second after a start.
        loop {
            match collector.recv(&mut buf) {
                Ok(n) => lens.push(n),
                Err(_) if !lens.is_empty() => return lens,
                Err(_) => {}
            }
        }
    });
    let json = dir.join("r.json");
    let out = sensor()
        .arg("replay")
        .arg(repo().join("demo/msp-demo.pcap"))
        .arg("-o")
        .arg(&json)
        .args(["--ipfix", &format!("127.0.0.1:{port}")])
        .args(["--ipfix-message-size", "65507"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lens = reader.join().expect("collector thread");
    let records = json_lines(&json).len();
    assert!(
        stderr.contains(&format!(
            "ipfix: {records} records in {} messages",
            lens.len()
        )) && stderr.contains(", 0 failed"),
        "{stderr}"
    );
    assert!(lens.iter().all(|n| *n <= 65_507), "{lens:?}");
    assert!(lens.iter().any(|n| *n > 60_000), "{lens:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tcp_export_reconnects_after_the_collector_drops_it_and_resends_templates() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().unwrap().port();
    // A collector that drops the first connection at once, then reads the
    // second to the end. It waits in accept before the sensor starts: a
    // first connection taken only after the sensor had written everything
    // and left would leave nothing to reconnect. The second accept has a
    // deadline, so that a sensor that never reconnects fails the test
    // instead of hanging it.
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let collector = std::thread::spawn(move || {
        ready_tx.send(()).unwrap();
        drop(listener.accept().expect("first connection"));
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "no second connection");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("second connection: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).expect("read stream");
        all
    });
    ready.recv().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let dir = tmp_dir("reconnect");
    let json = dir.join("r.json");
    let out = sensor()
        .arg("replay")
        .arg(repo().join("demo/msp-demo.pcap"))
        .arg("-o")
        .arg(&json)
        .args(["--ipfix", &format!("tcp://127.0.0.1:{port}")])
        // Small messages, so that the export is many writes.
        .args(["--ipfix-message-size", "1000"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stream = collector.join().expect("collector thread");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("ipfix:"))
        .unwrap_or_else(|| panic!("no ipfix summary: {stderr}"));
    assert!(line.contains(", 1 reconnects"), "{line}");
    assert!(line.contains("tcp_send_"), "the loss is named: {line}");
    let records = json_lines(&json).len() as u64;
    let num = |before: &str| number_before(line, before);
    assert!(num(" failed") > 0, "{line}");
    assert_eq!(num(" records in") + num(" failed"), records, "{line}");
    // The new session: messages framed back to back, the first one opening
    // with the template set and sequence number 0, numbers never falling.
    let mut at = 0;
    let mut last_seq = 0;
    let mut first = true;
    while at < stream.len() {
        let h = &stream[at..at + 16];
        assert_eq!(u16::from_be_bytes([h[0], h[1]]), 10, "version at {at}");
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let seq = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        if first {
            assert_eq!(seq, 0, "a new session counts from 0");
            assert_eq!(&stream[at + 16..at + 18], &[0, 2], "templates first");
            first = false;
        } else {
            assert!(seq > last_seq, "sequence numbers grow");
            assert_ne!(&stream[at + 16..at + 18], &[0, 2], "templates once");
        }
        last_seq = seq;
        at += len;
    }
    assert_eq!(at, stream.len());
    assert!(!first, "the second connection carried messages");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Key of a flow as pmacct aggregates it (forward direction only).
type PmacctKey = (IpAddr, IpAddr, u16, u16, u8, i64, i64, u16, u16);

/// The plugin processes pmacct names in `PIDFILE-<type>-<name>` files
/// beside its own pidfile.
fn plugin_pids(pidfile: &Path) -> Vec<u32> {
    let prefix = format!("{}-", pidfile.file_name().unwrap().to_string_lossy());
    std::fs::read_dir(pidfile.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect()
}

/// Waits until process `pid` has exited (gone, or a zombie).
fn wait_gone(pid: u32, what: &str) {
    wait_until(20, || {
        // The state follows the command name in parentheses.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        match stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
        {
            None | Some('Z') => Ok(()),
            Some(_) => Err(format!("{what} ({pid}) did not exit")),
        }
    });
}

/// nfacctd's JSON output, packets and bytes summed per key (a flow may be
/// written in parts, one per refresh). While nfacctd runs (`complete`
/// false) the file may be missing or end inside a line, which is left out;
/// once it has exited every line must parse.
fn pmacct_flows(path: &Path, complete: bool) -> BTreeMap<PmacctKey, (u64, u64, u64)> {
    let mut flows: BTreeMap<PmacctKey, (u64, u64, u64)> = BTreeMap::new();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(_) if !complete => return flows,
        Err(e) => panic!("nfacctd output {}: {e}", path.display()),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if !complete => continue,
            Err(e) => panic!("pmacct JSON: {e}: {line}"),
        };
        let key = (
            v["ip_src"].as_str().unwrap().parse().unwrap(),
            v["ip_dst"].as_str().unwrap().parse().unwrap(),
            u(&v["port_src"]) as u16,
            u(&v["port_dst"]) as u16,
            u(&v["ip_proto"]) as u8,
            pmacct_ms(v["timestamp_start"].as_str().unwrap()),
            pmacct_ms(v["timestamp_end"].as_str().unwrap()),
            u(&v["vlan"]) as u16,
            u(&v["tcp_flags"]) as u16,
        );
        let e = flows.entry(key).or_default();
        e.1 += u(&v["packets"]);
        e.2 += u(&v["bytes"]);
    }
    flows
}

/// pmacct's `1772438400.003000` in milliseconds.
fn pmacct_ms(s: &str) -> i64 {
    let (secs, frac) = s.split_once('.').expect("seconds.fraction");
    secs.parse::<i64>().unwrap() * 1000 + frac[..3].parse::<i64>().unwrap()
}

#[test]
fn udp_export_to_pmacct_nfacctd_equals_our_forward_counters() {
    let Some(files) = inputs() else { return };
    let dir = tmp_dir("nfacctd");
    let port = free_udp_port();
    let out_file = dir.join("flows.json");
    let conf = dir.join("nfacctd.conf");
    let pidfile = dir.join("nfacctd.pid");
    // Aggregating on the start and end times keeps every record apart.
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\n\
             nfacctd_ip: 127.0.0.1\n\
             nfacctd_port: {port}\n\
             nfacctd_pipe_size: 4194304\n\
             pidfile: {}\n\
             plugins: print\n\
             aggregate: src_host, dst_host, src_port, dst_port, proto, timestamp_start, \
             timestamp_end, vlan, tcpflags\n\
             print_output: json\n\
             print_num_protos: true\n\
             print_output_file: {}\n\
             print_output_file_append: true\n\
             print_refresh_time: 1\n\
             timestamps_since_epoch: true\n",
            pidfile.display(),
            out_file.display()
        ),
    )
    .unwrap();
    let mut nfacctd = Command::new("nfacctd")
        .arg("-f")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nfacctd (Debian package pmacct, installed by .ci/run)");
    wait_listening("udp", port, &mut nfacctd);
    let json = dir.join("records.json");
    replay(&files, &json, &["--ipfix", &format!("127.0.0.1:{port}")]);
    let mut ours: BTreeMap<PmacctKey, (u64, u64, u64)> = BTreeMap::new();
    for r in json_lines(&json) {
        let f = our_flow(&r);
        let flags = if f.proto == 6 {
            flags_from_history(r.get("history").and_then(Value::as_str).unwrap_or("")).0
        } else {
            0
        };
        let (sport, dport) = if matches!(f.proto, 1 | 58) {
            (0, 0)
        } else {
            (f.sport, f.dport)
        };
        let key = (
            f.src, f.dst, sport, dport, f.proto, f.first_ms, f.last_ms, f.vlan, flags,
        );
        let e = ours.entry(key).or_default();
        e.0 += 1;
        e.1 += f.orig_pkts;
        e.2 += f.orig_octets;
    }
    // nfacctd's core process reads the datagrams and hands the records to
    // its print plugin, a process of its own, which appends its cache to the
    // file (every second while records come in) and once more when it
    // stops. On a busy machine a fixed 300 ms pause before stopping it was
    // not enough: datagrams were dropped at its socket (default buffer), or
    // records were still queued for the plugin, which then wrote nothing.
    // So: wait until the socket is drained, none dropped; then until the
    // file holds every flow, for at most 10 s (on a busy machine the
    // periodic writes can stop short, and the final one has every flow);
    // stop nfacctd and wait for the plugin to exit too.
    wait_drained(port);
    // Running out of time here is not a failure: the file written when
    // nfacctd stops is the one compared.
    let _ = poll(10, Duration::from_millis(200), || {
        match pmacct_flows(&out_file, false).len() {
            n if n >= ours.len() => Ok(()),
            n => Err(format!("nfacctd wrote {n} of {} flows", ours.len())),
        }
    });
    let plugins = plugin_pids(&pidfile);
    assert!(!plugins.is_empty(), "nfacctd wrote no plugin pidfile");
    signal(&nfacctd, "-INT");
    wait_exit(&mut nfacctd, "nfacctd");
    for pid in plugins {
        wait_gone(pid, "nfacctd's print plugin");
    }
    let theirs = pmacct_flows(&out_file, true);
    let flows: u64 = ours.values().map(|e| e.0).sum();
    assert!(flows > 600, "{flows} records");
    assert_eq!(theirs.len(), ours.len(), "distinct flows");
    for (k, o) in &ours {
        let t = theirs
            .get(k)
            .unwrap_or_else(|| panic!("nfacctd lacks {k:?}"));
        assert_eq!((t.1, t.2), (o.1, o.2), "packets, bytes of {k:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The number just before `label` in a summary line (`... 12 failed`).
fn number_before(line: &str, label: &str) -> u64 {
    let i = line
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {line}"));
    line[..i]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {label:?} in {line}"))
}
