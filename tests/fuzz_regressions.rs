//! Every input a fuzz target crashed on, replayed through the same target
//! code (`fuzz/src/lib.rs`) in ordinary `cargo test`, plus a named test per
//! bug that asserts the fixed behaviour. Inputs live in
//! `fuzz/regressions/TARGET/NAME`; all were written by us (minimised by
//! hand from the fuzzer's finding), none come from the capture corpus.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz_targets;

use flowlib::pcapng::PcapNgReader;
use flowlib::Timestamp;
use std::path::{Path, PathBuf};

fn regressions(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target)
}

fn input(target: &str, name: &str) -> Vec<u8> {
    let path = regressions(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first packet's timestamp of a `capture_file` input holding a pcapng file.
fn first_pcapng_ts(data: &[u8]) -> Timestamp {
    assert_eq!(data[0] % 2, 1, "a pcapng input");
    let mut r = PcapNgReader::new(&data[1..]);
    r.next_packet().expect("readable").expect("one packet").ts
}

/// A fuzz target: its name and what it does with an input.
type Target = (&'static str, fn(&[u8]));

/// Runs every committed input of every target: none may panic.
#[test]
fn all_committed_inputs_replay_without_a_crash() {
    let targets: [Target; 4] = [
        ("decode", fuzz_targets::decode),
        ("capture_file", fuzz_targets::capture_file),
        ("table_ops", fuzz_targets::table_ops),
        ("rule_file", fuzz_targets::rule_file),
    ];
    let mut replayed = 0;
    for (target, run) in targets {
        let Ok(dir) = std::fs::read_dir(regressions(target)) else {
            continue;
        };
        for entry in dir {
            let path = entry.unwrap().path();
            run(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    assert!(replayed >= 2, "{replayed} inputs replayed");
}

/// capture_file crash: an interface's `if_tsoffset` of i64::MAX seconds made
/// `Timestamp::from_nanos` overflow adding the sub-second part (a panic in
/// debug builds, a wrapped negative time in release). Now it saturates.
#[test]
fn pcapng_tsoffset_overflows_nanoseconds() {
    let data = input("capture_file", "pcapng_tsoffset_overflows_nanoseconds");
    assert_eq!(first_pcapng_ts(&data), Timestamp(i64::MAX));
    fuzz_targets::capture_file(&data);
}

/// Found next to the crash above: with one timestamp unit per second, a raw
/// timestamp above i64::MAX seconds wrapped to a time before 1970.
#[test]
fn pcapng_raw_seconds_above_i64() {
    let data = input("capture_file", "pcapng_raw_seconds_above_i64");
    assert_eq!(first_pcapng_ts(&data), Timestamp(i64::MAX));
    fuzz_targets::capture_file(&data);
}

/// A deterministic byte stream (xorshift64*), so the targets' checks also
/// run in `cargo test` over inputs no one picked by hand.
fn pseudo_random_inputs(seed: u64, count: usize, len: usize) -> Vec<Vec<u8>> {
    let mut s = seed;
    (0..count)
        .map(|i| {
            (0..(len / 2 + i % (len / 2)))
                .map(|_| {
                    s ^= s >> 12;
                    s ^= s << 25;
                    s ^= s >> 27;
                    (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
                })
                .collect()
        })
        .collect()
}

/// The table target's invariant checks (conservation, index, timers, no
/// negative durations) after every operation of 300 random sequences.
#[test]
fn table_invariants_hold_over_random_operation_sequences() {
    for input in pseudo_random_inputs(0x0074_6162_6c65, 300, 1200) {
        fuzz_targets::table_ops(&input);
    }
}

/// The decoder target's checks over random bytes on every link type.
#[test]
fn decoder_checks_hold_over_random_packets() {
    for input in pseudo_random_inputs(0x6465_636f_6465, 3000, 200) {
        fuzz_targets::decode(&input);
    }
}
