//! `sensor replay --max-timer-expires` over a capture with a ten-year jump
//! of the clock, written by our pcap writer (issue 6, item 6, end to end):
//! a budget of 1 leaves a backlog of due connections in every shard, and
//! the output is still byte for byte the unbounded one, for 1, 2 and 4
//! workers (the shards' ordering watermarks wait for their backlogs).

use etherparse::PacketBuilder;
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{LinkType, Timestamp};
use std::process::Command;

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut v, &[0u8; 24])
        .unwrap();
    v
}

const START: i64 = 1_772_438_400;
const TEN_YEARS: i64 = 10 * 365 * 86_400;

#[test]
fn a_budget_of_one_gives_the_unbounded_output_for_1_2_and_4_workers() {
    const FLOWS: u32 = 3000;
    let path = std::env::temp_dir().join(format!("flowmon-jump-{}.pcap", std::process::id()));
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut w = PcapWriter::new(file, Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    let mut write = |ts: Timestamp, f: Vec<u8>| w.write_packet(ts, &f, f.len() as u32).unwrap();
    let client = |i: u32| [10, 1, (i >> 8) as u8, i as u8];
    let server = [192, 0, 2, 7];
    // Request and answer flows over 100 s, most still live at the jump.
    for i in 0..FLOWS {
        let ts = Timestamp::from_micros(START + i64::from(i / 30), (i % 30) * 1000);
        write(ts, udp(client(i), 4000, server, 5000));
        write(
            ts.plus(std::time::Duration::from_millis(1)),
            udp(server, 5000, client(i), 4000),
        );
    }
    // Ten years later: every second old flow speaks again, new flows start.
    for i in 0..FLOWS {
        let ts = Timestamp::from_micros(START + 100 + TEN_YEARS, i * 10);
        if i % 2 == 0 {
            write(ts, udp(client(i), 4000, server, 5000));
        } else {
            write(
                ts,
                udp([10, 9, (i >> 8) as u8, i as u8], 4000, server, 5000),
            );
        }
    }
    w.into_inner().unwrap();
    let replay = |budget: &str, workers: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_sensor"))
            .args(["replay", "-q", "--format", "zeek", "--workers", workers])
            .args(["--max-timer-expires", budget])
            .arg(&path)
            .output()
            .expect("sensor runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let reference = replay("0", "1");
    let text = String::from_utf8_lossy(&reference);
    let records = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(records, 2 * FLOWS as usize, "old flows once each, new ones");
    for workers in ["1", "2", "4"] {
        let bounded = replay("1", workers);
        assert!(
            bounded == reference,
            "budget 1 with {workers} workers differs from the unbounded output"
        );
    }
    let _ = std::fs::remove_file(&path);
}
