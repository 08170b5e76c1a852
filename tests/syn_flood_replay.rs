//! `sensor replay --max-memory` over a SYN flood capture written by our
//! pcap writer (issue 6, item 4, end to end): the established connection
//! survives, the evictions are counted in the summary, and every packet is
//! in a record or counted.

use flowbench::flood::tcp_frame as tcp;
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{LinkType, Timestamp};
use std::process::Command;
use std::time::Duration;

#[test]
fn syn_flood_under_max_memory_evicts_half_open_connections_and_keeps_the_established_one() {
    const SYNS: u32 = 60_000;
    let path = std::env::temp_dir().join(format!("flowmon-synflood-{}.pcap", std::process::id()));
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut w = PcapWriter::new(file, Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    let (c, s) = (([192, 168, 1, 10], 50_000), ([172, 16, 0, 1], 443));
    let mut ts = Timestamp::from_micros(1_772_438_400, 0);
    let step = Duration::from_micros(20); // 50 000 SYNs a second
    let put = |w: &mut PcapWriter<_>, ts: &mut Timestamp, f: Vec<u8>| {
        w.write_packet(*ts, &f, f.len() as u32).unwrap();
        *ts = ts.plus(step);
    };
    put(&mut w, &mut ts, tcp(c, s, 100, None, true, &[]));
    put(&mut w, &mut ts, tcp(s, c, 900, Some(101), true, &[]));
    put(&mut w, &mut ts, tcp(c, s, 101, Some(901), false, &[]));
    let mut seq = 101u32;
    for i in 0..SYNS {
        let src = (
            [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            1024 + (i % 50_000) as u16,
        );
        put(
            &mut w,
            &mut ts,
            tcp(src, ([203, 0, 113, 80], 80), 7, None, true, &[]),
        );
        if i % 1000 == 0 {
            put(
                &mut w,
                &mut ts,
                tcp(c, s, seq, Some(901), false, &[0x42; 100]),
            );
            seq += 100;
        }
    }
    w.into_inner().unwrap();

    let o = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["replay", "--no-progress", "-w", "1", "--max-memory", "2"])
        .args(["--syn-when-full", "evict"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("half-open evicted"), "{err}");
    assert!(err.contains(" 0 oldest evicted, 0 refused"), "{err}");
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let evicted = records
        .iter()
        .filter(|r| r["end_reason"] == "evicted")
        .count();
    assert!(evicted > SYNS as usize / 2, "{evicted} evicted: {err}");
    assert!(records
        .iter()
        .filter(|r| r["end_reason"] == "evicted")
        .all(|r| r["history"] == "S" && r["conn_state"] == "S0"));
    // The established connection ran to the end of the capture, whole.
    let est: Vec<_> = records
        .iter()
        .filter(|r| r["id.orig_h"] == "192.168.1.10")
        .collect();
    assert_eq!(est.len(), 1, "{est:?}");
    assert_eq!(est[0]["end_reason"], "eof");
    assert_eq!(est[0]["orig_pkts"], 2 + 60);
    // Every packet is in a record.
    let pkts: u64 = records
        .iter()
        .map(|r| r["orig_pkts"].as_u64().unwrap() + r["resp_pkts"].as_u64().unwrap())
        .sum();
    assert_eq!(pkts, u64::from(SYNS) + 3 + 60);

    // Emergency mode, the default: SYNs that would only push out another
    // half-open connection are refused and counted (weird flow_table_full).
    let o = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["replay", "--no-progress", "-w", "1", "--max-memory", "2"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records.iter().all(|r| r["end_reason"] != "evicted"),
        "{err}"
    );
    let est: Vec<_> = records
        .iter()
        .filter(|r| r["id.orig_h"] == "192.168.1.10")
        .collect();
    assert_eq!(
        (est.len(), &est[0]["orig_pkts"]),
        (1, &serde_json::json!(62))
    );
    let in_records: u64 = records
        .iter()
        .map(|r| r["orig_pkts"].as_u64().unwrap() + r["resp_pkts"].as_u64().unwrap())
        .sum();
    let at = err.find("flow_table_full ").expect("refusals counted") + "flow_table_full ".len();
    let refused: u64 = err[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    assert!(refused > u64::from(SYNS) / 2, "{err}");
    assert!(
        err.contains(&format!("{refused} SYNs refused (table full)")),
        "{err}"
    );
    assert_eq!(
        in_records + refused,
        u64::from(SYNS) + 3 + 60,
        "every packet in a record or counted"
    );
    std::fs::remove_file(&path).ok();
}
