//! Broken capture files through `sensor replay` (issue 6, item 7): one test
//! per failure libpcap names for classic pcap and pcapng, each with its
//! message and exit code (0 read, 2 unusable file, 3 ended early: the
//! complete records before the damage are processed first), and every
//! malformed capture of the shared corpus. The files are built here, byte
//! by byte, by the test's own code.

use etherparse::PacketBuilder;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowmon-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `sensor replay` of `bytes` written to a file named `name`.
fn replay(name: &str, bytes: &[u8]) -> Output {
    let path = tmp(name);
    std::fs::write(&path, bytes).unwrap();
    replay_path(&path)
}

fn replay_path(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["replay", "--no-progress", "-w", "1"])
        .arg(path)
        .output()
        .expect("sensor runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Packets the flows of the output hold.
fn packets_in_records(o: &Output) -> u64 {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON lines");
            v["orig_pkts"].as_u64().unwrap() + v["resp_pkts"].as_u64().unwrap()
        })
        .sum()
}

/// Asserts exit code and that stderr says each of `says`.
fn expect(o: &Output, code: i32, says: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    for s in says {
        assert!(err.contains(s), "expected {s:?} in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// Distinct UDP frames: frame `i` is its own flow.
fn frame(i: u8) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([10, 0, 0, i], [10, 0, 1, 1], 64)
        .udp(5000, 9000)
        .write(&mut v, &[i; 30])
        .unwrap();
    v
}

// ---- classic pcap -------------------------------------------------------

fn pcap_header(magic: u32, major: u16, minor: u16, snaplen: u32) -> Vec<u8> {
    let mut h = magic.to_le_bytes().to_vec();
    h.extend_from_slice(&major.to_le_bytes());
    h.extend_from_slice(&minor.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&snaplen.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

fn pcap_record(secs: u32, caplen: u32, wire: u32, data: &[u8]) -> Vec<u8> {
    let mut r = secs.to_le_bytes().to_vec();
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&caplen.to_le_bytes());
    r.extend_from_slice(&wire.to_le_bytes());
    r.extend_from_slice(data);
    r
}

/// A good file of `n` records.
fn good_pcap(n: u8) -> Vec<u8> {
    let mut f = pcap_header(0xa1b2_c3d4, 2, 4, 65535);
    for i in 0..n {
        let d = frame(i);
        f.extend(pcap_record(
            1_772_438_400 + u32::from(i),
            d.len() as u32,
            d.len() as u32,
            &d,
        ));
    }
    f
}

#[test]
fn pcap_bad_magic_is_refused_with_exit_2() {
    let mut f = good_pcap(2);
    f[..4].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    expect(
        &replay("magic.pcap", &f),
        2,
        &["cannot open capture", "not a pcap or pcapng file"],
    );
}

#[test]
fn pcap_unknown_version_is_refused_with_exit_2() {
    let mut f = good_pcap(2);
    f[4..6].copy_from_slice(&3u16.to_le_bytes());
    expect(
        &replay("version.pcap", &f),
        2,
        &["cannot open capture", "unsupported pcap format version"],
    );
}

#[test]
fn pcap_shorter_than_its_header_is_refused_with_exit_2() {
    let f = good_pcap(0);
    expect(
        &replay("short.pcap", &f[..20]),
        2,
        &["shorter than a pcap file header"],
    );
}

#[test]
fn pcap_record_length_above_the_maximum_ends_the_file_with_exit_3_after_the_good_records() {
    let mut f = good_pcap(2);
    let offset = f.len();
    f.extend(pcap_record(1_772_438_402, 300_000, 300_000, &[0; 64]));
    let o = replay("caplen.pcap", &f);
    expect(
        &o,
        3,
        &[
            "capture ended early at record 3",
            &format!("byte offset {offset}"),
            "captured length 300000 is over the limit of 262144",
            "packets: 2 ",
        ],
    );
    assert_eq!(packets_in_records(&o), 2);
}

#[test]
fn pcap_record_longer_than_the_snaplen_is_clipped_to_it_and_read() {
    // libpcap salvages these (up to its maximum): so do we.
    let mut f = pcap_header(0xa1b2_c3d4, 2, 4, 50);
    let d = frame(1);
    f.extend(pcap_record(
        1_772_438_400,
        d.len() as u32,
        d.len() as u32,
        &d,
    ));
    f.extend(pcap_record(
        1_772_438_401,
        50,
        d.len() as u32,
        &frame(2)[..50],
    ));
    let o = replay("snaplen.pcap", &f);
    expect(&o, 0, &["packets: 2 ", "2 decoded"]);
    assert_eq!(packets_in_records(&o), 2);
}

#[test]
fn pcap_zero_lengths_are_counted_not_fatal() {
    // A snaplen of 0 (means: the maximum) and an empty record.
    let mut f = pcap_header(0xa1b2_c3d4, 2, 4, 0);
    f.extend(pcap_record(1_772_438_400, 0, 0, &[]));
    let d = frame(1);
    f.extend(pcap_record(
        1_772_438_401,
        d.len() as u32,
        d.len() as u32,
        &d,
    ));
    let o = replay("zero.pcap", &f);
    expect(
        &o,
        0,
        &["packets: 2 ", "1 decoded", "truncated_link_header 1"],
    );
    assert_eq!(packets_in_records(&o), 1);
}

/// A good file of `n` records, then the first `keep` bytes of one more;
/// with the byte offset where that last record starts.
fn cut_pcap(n: u8, keep: usize) -> (Vec<u8>, usize) {
    let mut f = good_pcap(n);
    let offset = f.len();
    let d = frame(9);
    let secs = 1_772_438_400 + u32::from(n) + 9;
    f.extend(&pcap_record(secs, d.len() as u32, d.len() as u32, &d)[..keep]);
    (f, offset)
}

#[test]
fn pcap_cut_inside_a_record_exits_3_with_its_offset() {
    let (f, offset) = cut_pcap(3, 20);
    let o = replay("cut.pcap", &f);
    expect(
        &o,
        3,
        &[
            "record 4",
            &format!("byte offset {offset}"),
            "the file ends inside this record",
            "packets: 3 ",
        ],
    );
    assert_eq!(packets_in_records(&o), 3);
}

#[test]
fn every_damaged_input_of_a_timeline_is_reported_not_only_the_first() {
    // Two cut files and a good one, read as one timeline.
    let (first, first_offset) = cut_pcap(3, 20);
    let (second, second_offset) = cut_pcap(5, 30);
    let paths = [tmp("cut-a.pcap"), tmp("cut-b.pcap"), tmp("whole.pcap")];
    std::fs::write(&paths[0], &first).unwrap();
    std::fs::write(&paths[1], &second).unwrap();
    std::fs::write(&paths[2], good_pcap(2)).unwrap();
    for workers in ["1", "2"] {
        let o = Command::new(env!("CARGO_BIN_EXE_sensor"))
            .args(["replay", "--no-progress", "-w", workers])
            .args(&paths)
            .output()
            .expect("sensor runs");
        expect(
            &o,
            3,
            &[
                "2 inputs could not be read to the end",
                &format!(
                    "cut-a.pcap: capture ended early at record 4 (byte offset {first_offset})"
                ),
                &format!(
                    "cut-b.pcap: capture ended early at record 6 (byte offset {second_offset})"
                ),
                "packets: 10 ",
            ],
        );
        assert!(!stderr(&o).contains("whole.pcap"), "{}", stderr(&o));
        assert_eq!(packets_in_records(&o), 10, "{workers} workers");
    }
}

// ---- pcapng -------------------------------------------------------------

const BOM: u32 = 0x1a2b_3c4d;

/// A block, little-endian, with its trailing length.
fn block(t: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len()) as u32;
    let mut v = t.to_le_bytes().to_vec();
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(body);
    v.extend_from_slice(&len.to_le_bytes());
    v
}

/// A big-endian block.
fn block_be(t: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len()) as u32;
    let mut v = t.to_be_bytes().to_vec();
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(body);
    v.extend_from_slice(&len.to_be_bytes());
    v
}

fn shb(major: u16) -> Vec<u8> {
    let mut b = BOM.to_le_bytes().to_vec();
    b.extend_from_slice(&major.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(-1i64).to_le_bytes());
    block(0x0a0d_0d0a, &b)
}

fn shb_be() -> Vec<u8> {
    let mut b = BOM.to_be_bytes().to_vec();
    b.extend_from_slice(&1u16.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    block_be(0x0a0d_0d0a, &b)
}

fn idb(link: u16, snaplen: u32) -> Vec<u8> {
    let mut b = link.to_le_bytes().to_vec();
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&snaplen.to_le_bytes());
    block(1, &b)
}

fn idb_be(link: u16) -> Vec<u8> {
    let mut b = link.to_be_bytes().to_vec();
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&65535u32.to_be_bytes());
    block_be(1, &b)
}

/// An enhanced packet block at `secs` (microsecond resolution).
fn epb(iface: u32, secs: u64, data: &[u8]) -> Vec<u8> {
    block(6, &epb_body(iface, secs, data, |x| x.to_le_bytes()))
}

fn epb_be(iface: u32, secs: u64, data: &[u8]) -> Vec<u8> {
    block_be(6, &epb_body(iface, secs, data, |x| x.to_be_bytes()))
}

fn epb_body(iface: u32, secs: u64, data: &[u8], enc: fn(u32) -> [u8; 4]) -> Vec<u8> {
    let ts = secs * 1_000_000;
    let mut b = enc(iface).to_vec();
    b.extend_from_slice(&enc((ts >> 32) as u32));
    b.extend_from_slice(&enc(ts as u32));
    b.extend_from_slice(&enc(data.len() as u32));
    b.extend_from_slice(&enc(data.len() as u32));
    b.extend_from_slice(data);
    while b.len() % 4 != 0 {
        b.push(0);
    }
    b
}

/// A good section: header, one Ethernet interface, `n` packets.
fn good_pcapng(n: u8) -> Vec<u8> {
    let mut f = shb(1);
    f.extend(idb(1, 65535));
    for i in 0..n {
        f.extend(epb(0, 1_772_438_400 + u64::from(i), &frame(i)));
    }
    f
}

#[test]
fn pcapng_unknown_version_is_refused() {
    let mut f = shb(2);
    f.extend(idb(1, 65535));
    f.extend(epb(0, 1_772_438_400, &frame(1)));
    expect(
        &replay("version.pcapng", &f),
        3,
        &["record 1", "byte offset 0", "unsupported pcapng version"],
    );
}

#[test]
fn pcapng_block_shorter_than_12_bytes_ends_the_file_after_the_good_packets() {
    let mut f = good_pcapng(2);
    let offset = f.len();
    f.extend_from_slice(&6u32.to_le_bytes());
    f.extend_from_slice(&8u32.to_le_bytes());
    let o = replay("short-block.pcapng", &f);
    expect(
        &o,
        3,
        &[
            "record 3",
            &format!("byte offset {offset}"),
            "block length is less than 12 bytes",
            "packets: 2 ",
        ],
    );
    assert_eq!(packets_in_records(&o), 2);
}

#[test]
fn pcapng_block_length_not_a_multiple_of_4_ends_the_file_after_the_good_packets() {
    let mut f = good_pcapng(2);
    let offset = f.len();
    let mut bad = epb(0, 1_772_438_409, &frame(9));
    let odd = (bad.len() - 2) as u32;
    bad[4..8].copy_from_slice(&odd.to_le_bytes());
    f.extend(bad);
    let o = replay("odd-block.pcapng", &f);
    expect(
        &o,
        3,
        &[
            "record 3",
            &format!("byte offset {offset}"),
            "not a multiple of 4",
            "packets: 2 ",
        ],
    );
    assert_eq!(packets_in_records(&o), 2);
}

#[test]
fn pcapng_block_trailer_that_disagrees_ends_the_file_after_the_good_packets() {
    let mut f = good_pcapng(2);
    let offset = f.len();
    let mut bad = epb(0, 1_772_438_409, &frame(9));
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&((n + 4) as u32).to_le_bytes());
    f.extend(bad);
    f.extend(epb(0, 1_772_438_410, &frame(10)));
    let o = replay("trailer.pcapng", &f);
    expect(
        &o,
        3,
        &[
            "record 3",
            &format!("byte offset {offset}"),
            "block total length in header and trailer don't match",
            "packets: 2 ",
        ],
    );
    assert_eq!(packets_in_records(&o), 2);
}

#[test]
fn pcapng_block_length_above_the_maximum_ends_the_file() {
    let mut f = good_pcapng(1);
    let offset = f.len();
    f.extend_from_slice(&6u32.to_le_bytes());
    f.extend_from_slice(&(64u32 << 20).to_le_bytes());
    f.extend_from_slice(&[0; 64]);
    let o = replay("huge-block.pcapng", &f);
    expect(
        &o,
        3,
        &[
            "record 2",
            &format!("byte offset {offset}"),
            "block length is over the 16 MiB maximum",
            "packets: 1 ",
        ],
    );
}

#[test]
fn pcapng_packet_before_any_interface_is_refused() {
    let mut f = shb(1);
    f.extend(epb(0, 1_772_438_400, &frame(1)));
    f.extend(idb(1, 65535));
    expect(
        &replay("no-idb.pcapng", &f),
        3,
        &[
            "record 1",
            "byte offset 28",
            "packet block before any interface description block",
        ],
    );
}

#[test]
fn pcapng_unknown_interface_id_ends_the_file_after_the_good_packets() {
    let mut f = good_pcapng(2);
    let offset = f.len();
    f.extend(epb(3, 1_772_438_409, &frame(9)));
    let o = replay("iface.pcapng", &f);
    expect(
        &o,
        3,
        &[
            "record 3",
            &format!("byte offset {offset}"),
            "packet names an interface its section did not describe",
            "packets: 2 ",
        ],
    );
    assert_eq!(packets_in_records(&o), 2);
}

#[test]
fn pcapng_unknown_block_types_are_skipped() {
    let mut f = shb(1);
    f.extend(block(0x0bad_0001, &[1, 2, 3, 4]));
    f.extend(idb(1, 65535));
    f.extend(epb(0, 1_772_438_400, &frame(1)));
    f.extend(block(0x4000_0bad, &[0; 16]));
    f.extend(block(5, &[0; 12])); // interface statistics
    f.extend(epb(0, 1_772_438_401, &frame(2)));
    let o = replay("unknown.pcapng", &f);
    expect(&o, 0, &["packets: 2 ", "2 decoded"]);
    assert_eq!(packets_in_records(&o), 2);
}

#[test]
fn pcapng_zero_length_packet_is_counted_not_fatal() {
    let mut f = good_pcapng(1);
    f.extend(epb(0, 1_772_438_401, &[]));
    let o = replay("zero.pcapng", &f);
    expect(
        &o,
        0,
        &["packets: 2 ", "1 decoded", "truncated_link_header 1"],
    );
}

#[test]
fn pcapng_packet_longer_than_the_snaplen_is_kept_whole() {
    let mut f = shb(1);
    f.extend(idb(1, 40));
    f.extend(epb(0, 1_772_438_400, &frame(1)));
    let o = replay("snaplen.pcapng", &f);
    expect(&o, 0, &["packets: 1 ", "1 decoded"]);
    assert_eq!(packets_in_records(&o), 1);
}

#[test]
fn pcapng_sections_with_their_own_interfaces_byte_orders_and_link_types_are_all_read() {
    // Section 1: Ethernet, little-endian. Section 2: big-endian, raw IP on
    // interface 0 and Ethernet on interface 1. libpcap refuses section 2;
    // the sensor goes on with flowlib's reader.
    let mut f = good_pcapng(2);
    f.extend(shb_be());
    f.extend(idb_be(101));
    f.extend(idb_be(1));
    f.extend(epb_be(0, 1_772_438_410, &frame(10)[14..]));
    f.extend(epb_be(1, 1_772_438_411, &frame(11)));
    // Section 3: little-endian again, interface ids start over.
    f.extend(shb(1));
    f.extend(idb(1, 65535));
    f.extend(epb(0, 1_772_438_412, &frame(12)));
    let o = replay("sections.pcapng", &f);
    expect(&o, 0, &["packets: 5 ", "5 decoded"]);
    assert_eq!(packets_in_records(&o), 5);
    // A packet naming section 2's interface 1 in section 3 is an error.
    f.extend(epb(1, 1_772_438_413, &frame(13)));
    let o = replay("sections-bad.pcapng", &f);
    expect(
        &o,
        3,
        &[
            "record 6",
            "packet names an interface its section did not describe",
            "packets: 5 ",
        ],
    );
}

// ---- the corpus's malformed captures ------------------------------------

fn corpus() -> Option<PathBuf> {
    let dir = match std::env::var_os("FLOWMON_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    };
    dir.join("pcaps").is_dir().then_some(dir)
}

#[test]
fn every_malformed_capture_in_the_corpus_is_handled() {
    let Some(dir) = corpus() else {
        panic!("../shared/corpus is missing");
    };
    let mut names: Vec<String> = std::fs::read_dir(dir.join("pcaps"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("malformed-"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        let o = replay_path(&dir.join("pcaps").join(name));
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{name}: {err}");
        match name.as_str() {
            // One whole record, then a record header claiming 1.4 GB at
            // byte 228, as libpcap reads it (tcpdump: "invalid packet
            // capture length 1409179648"; tshark resynchronises and
            // counts a second record). The one packet is a weird.
            "malformed-file-bogus-record-length.pcap" => {
                expect(
                    &o,
                    3,
                    &[
                        "record 2",
                        "byte offset 228",
                        "captured length 1409179648",
                        "packets: 1 ",
                    ],
                );
                assert_eq!(weirds(&err), 1, "{name}");
            }
            // 2696 whole records, then the file ends inside one.
            "malformed-file-cut-mid-record-http.pcap" => {
                expect(
                    &o,
                    3,
                    &[
                        "record 2697",
                        "byte offset ",
                        "the file ends inside this record",
                        "packets: 2696 ",
                    ],
                );
                assert_eq!(packets_in_records(&o), 2696 - weirds(&err), "{name}");
            }
            // Packet-level damage: read to the end, damage counted.
            _ => {
                assert_eq!(o.status.code(), Some(0), "{name}: {err}");
                let packets = summary_packets(&err);
                assert!(packets > 0, "{name}: {err}");
                // Every packet is decoded or counted under a weird.
                let decoded = number_after(&err, "bytes) from 1 file, ");
                assert_eq!(packets, decoded + weirds(&err), "{name}: {err}");
            }
        }
    }
}

/// The summary's packet count.
fn summary_packets(err: &str) -> u64 {
    number_after(err, "packets: ")
}

/// The summary's weird count.
fn weirds(err: &str) -> u64 {
    number_after(err, "weirds: ")
}

fn number_after(text: &str, label: &str) -> u64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {text}"))
        + label.len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}
