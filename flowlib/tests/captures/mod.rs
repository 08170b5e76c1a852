//! Captures for the integration tests: where the shared corpus is, and a
//! pcap file's bytes metered into records.

#![allow(dead_code)] // each test file uses its part

use flowlib::pcap_reader::PcapReader;
use flowlib::{ConnRecord, FlowMeter, MeterStats, TableConfig};
use std::path::PathBuf;

/// The shared corpus (`../shared/corpus` beside the repository, or
/// `FLOWMON_CORPUS`).
pub fn corpus() -> PathBuf {
    std::env::var_os("FLOWMON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

/// Every record of a pcap file's bytes, through a meter with Zeek's
/// default timeouts, and the meter's counters.
pub fn meter_pcap(pcap: &[u8]) -> (Vec<ConnRecord>, MeterStats) {
    let mut reader = PcapReader::new(pcap).unwrap();
    let link = reader.header().link;
    let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet().unwrap() {
        meter.process(p.data, link, p.ts, p.wire_len, &mut out);
    }
    meter.finish(&mut out);
    (out, meter.stats().clone())
}

/// The records of [`meter_pcap`].
pub fn records(pcap: &[u8]) -> Vec<ConnRecord> {
    meter_pcap(pcap).0
}
