//! Builds the fuzzers' seed directories from the capture corpus, at run
//! time (corpus files are never committed):
//!
//! ```text
//! cargo run -p flowlib --example make_fuzz_seeds -- ../shared/corpus fuzz/seeds [RULES_DIR]
//! ```
//!
//! Writes `OUT/decode/` (each distinct packet, prefixed by its link type's
//! index in the decode target's table and a zero snaplen byte),
//! `OUT/capture_file/` (each capture, prefixed by 0 for classic pcap or 1
//! for pcapng, cut to 64 KiB), `OUT/table_ops/` (each capture's TCP, UDP
//! and ICMP packets turned into the table target's operations) and
//! `OUT/rule_file/` (the `*.toml` files of RULES_DIR, default
//! `rules/examples`). The input formats are documented in `fuzz/src/lib.rs`.

use flowlib::decode::{PacketView, Transport};
use flowlib::pcap_reader::PcapReader;
use flowlib::pcapng::PcapNgReader;
use flowlib::{LinkType, Timestamp};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::{env, fs, io, process};

/// The decode target's link type table, in its order (`fuzz/src/lib.rs`).
const LINK_TYPES: [LinkType; 9] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::PPP,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
];

/// Largest seed for the per-packet and per-file targets.
const MAX_PACKET_SEED: usize = 4096;
const MAX_FILE_SEED: usize = 64 * 1024;

/// Packets taken from one capture.
const PACKETS_PER_FILE: usize = 200;

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: make_fuzz_seeds CORPUS_DIR OUT_DIR [RULES_DIR]");
        process::exit(2);
    }
    let rules_dir = args.get(2).map_or("rules/examples", String::as_str);
    match run(
        Path::new(&args[0]),
        Path::new(&args[1]),
        Path::new(rules_dir),
    ) {
        Ok(counts) => println!(
            "seeds: decode {}, capture_file {}, table_ops {}, rule_file {}",
            counts[0], counts[1], counts[2], counts[3]
        ),
        Err(e) => {
            eprintln!("make_fuzz_seeds: {e}");
            process::exit(1);
        }
    }
}

/// A captured packet: link type, time, bytes, wire length.
type Packet = (LinkType, Timestamp, Vec<u8>, u32);

/// Up to [`PACKETS_PER_FILE`] packets of a capture; reading stops quietly
/// at the first error (the corpus holds deliberately broken files).
fn packets(file: &[u8]) -> Vec<Packet> {
    let mut out = Vec::new();
    if let Ok(mut r) = PcapReader::new(file) {
        let link = r.header().link;
        while let Ok(Some(p)) = r.next_packet() {
            out.push((link, p.ts, p.data.to_vec(), p.wire_len));
            if out.len() == PACKETS_PER_FILE {
                break;
            }
        }
    } else {
        let mut r = PcapNgReader::new(file);
        while let Ok(Some(p)) = r.next_packet() {
            out.push((p.link, p.ts, p.data.to_vec(), p.wire_len));
            if out.len() == PACKETS_PER_FILE {
                break;
            }
        }
    }
    out
}

fn run(corpus: &Path, out: &Path, rules_dir: &Path) -> io::Result<[usize; 4]> {
    let pcaps = corpus.join("pcaps");
    let mut files: Vec<PathBuf> = fs::read_dir(&pcaps)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(io::Error::other(format!(
            "no captures in {}",
            pcaps.display()
        )));
    }
    let dirs = ["decode", "capture_file", "table_ops", "rule_file"].map(|d| out.join(d));
    for d in &dirs {
        fs::create_dir_all(d)?;
    }
    let mut counts = [0usize; 4];
    let mut seen = BTreeSet::new();
    for path in &files {
        let bytes = fs::read(path)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let pcapng = bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]);
        let mut seed = vec![u8::from(pcapng)];
        seed.extend_from_slice(&bytes[..bytes.len().min(MAX_FILE_SEED)]);
        fs::write(dirs[1].join(&*name), seed)?;
        counts[1] += 1;

        let packets = packets(&bytes);
        for (link, _, data, wire) in &packets {
            let Some(index) = LINK_TYPES.iter().position(|l| l == link) else {
                continue;
            };
            let cut = data.len().min(MAX_PACKET_SEED - 2);
            let extra = (*wire as usize).saturating_sub(cut).min(255) as u8;
            let mut seed = vec![index as u8, extra];
            seed.extend_from_slice(&data[..cut]);
            if seen.insert(seed.clone()) {
                fs::write(dirs[0].join(format!("{name}-{}", seen.len())), seed)?;
                counts[0] += 1;
            }
        }

        let ops = table_ops(&packets);
        if ops.len() > 2 {
            fs::write(dirs[2].join(&*name), ops)?;
            counts[2] += 1;
        }
    }
    for entry in fs::read_dir(rules_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().unwrap_or_default().to_owned();
            fs::copy(&path, dirs[3].join(name))?;
            counts[3] += 1;
        }
    }
    Ok(counts)
}

/// The table target's operations for a capture's packets: each TCP, UDP or
/// ICMP packet becomes a packet operation with its time step, hosts, ports,
/// flags and payload size folded into the target's small ranges; a gap of
/// more than a second becomes a time advance.
fn table_ops(packets: &[Packet]) -> Vec<u8> {
    // Flow cap 32, active timeout on; TCP idle 61 s, UDP idle 9 s.
    let mut ops = vec![0x5f, 0x23];
    let mut last: Option<Timestamp> = None;
    for (link, ts, data, wire) in packets {
        let Ok(v) = PacketView::parse(data, *link, *ts, *wire) else {
            continue;
        };
        let p = &v.inner;
        let step_ms = last.map_or(0, |l| ts.since(l).as_millis());
        last = Some(*ts);
        if step_ms > 1000 {
            let secs = (step_ms / 2000).min(0x7fff) as u16;
            ops.push(6);
            ops.extend((0x8000 | secs).to_be_bytes());
        }
        let (sp, dp) = p.transport.ports();
        let port_sel = match sp.min(dp) {
            22 => 0,
            53 => 1,
            80 => 2,
            _ => 3,
        };
        let host = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(v4) => v4.octets()[3] & 7,
            std::net::IpAddr::V6(v6) => v6.octets()[15] & 7,
        };
        let hosts = host(p.ip.src) | host(p.ip.dst) << 3;
        let len = p.transport.payload_len().min(0x3f) as u8;
        ops.push(0);
        ops.push(((step_ms / 10).min(255)) as u8);
        match p.transport {
            Transport::Tcp(t) => {
                ops.extend([port_sel << 6, hosts, sp as u8, len, t.flags.0]);
                ops.extend(((t.seq >> 8) as u16).to_be_bytes());
                ops.extend(((t.ack >> 8) as u16).to_be_bytes());
            }
            Transport::Udp { .. } => ops.extend([port_sel << 6 | 1, hosts, sp as u8, len]),
            Transport::Icmp { icmp_type, .. } => {
                let t = match icmp_type {
                    0 | 8 => 0,
                    3 => 2 << 2,
                    _ => 3 << 2,
                };
                ops.extend([2 | t, hosts, 0, len]);
            }
            _ => continue,
        }
        ops.push(0x02); // no fragment
        ops.push(u8::from(v.truncated) << 4);
    }
    ops.push(7);
    ops.push(0);
    ops
}
