//! The end-of-run accounting printed on stderr.

use flowlib::table::TableStats;
use flowlib::{EndReason, MeterStats};
use std::fmt;
use std::time::Duration;

/// Everything the final summary reports.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Where packets came from ("2 files", "interface eth1").
    pub source: String,
    /// Packet counters.
    pub meter: MeterStats,
    /// Flow counters.
    pub table: TableStats,
    /// Records written.
    pub records: u64,
    /// Wall-clock time spent.
    pub elapsed: Duration,
    /// With a BPF filter on capture files: (records read, records the
    /// filter left out).
    pub filtered: Option<(u64, u64)>,
}

impl Summary {
    /// Bundles the counters.
    pub fn new(
        source: String,
        meter: MeterStats,
        table: TableStats,
        records: u64,
        elapsed: Duration,
    ) -> Self {
        Summary {
            source,
            meter,
            table,
            records,
            elapsed,
            filtered: None,
        }
    }

    /// With `read` records read from capture files, of which a BPF filter
    /// left `left_out` out.
    pub fn with_filtered(mut self, read: u64, left_out: u64) -> Self {
        self.filtered = Some((read, left_out));
        self
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "packets: {} ({} bytes) from {}, {} decoded, {} truncated by snaplen, {:.0} packets/s",
            self.meter.packets,
            self.meter.wire_bytes,
            self.source,
            self.meter.decoded,
            self.meter.truncated,
            self.meter.packets as f64 / secs
        )?;
        if let Some((read, left_out)) = self.filtered {
            writeln!(
                f,
                "filter: {read} records read, {left_out} left out by the BPF filter"
            )?;
        }
        write!(
            f,
            "flows: {} created, {} records written",
            self.table.created, self.records
        )?;
        // Start records are not ends (they feed the detector only).
        let ended: Vec<String> = EndReason::ALL
            .iter()
            .filter(|r| **r != EndReason::Start && self.table.ended(**r) > 0)
            .map(|r| format!("{} {}", r, self.table.ended(*r)))
            .collect();
        if !ended.is_empty() {
            write!(f, " ({})", ended.join(", "))?;
        }
        writeln!(f)?;
        let t = &self.table;
        let backwards = self.meter.clock_backwards + t.clock_backwards;
        let refused = t.refused_no_memory + t.refused_syn_when_full;
        if t.evicted_half_open + t.evicted_oldest + refused + backwards > 0 {
            writeln!(
                f,
                "table pressure: {} half-open evicted, {} oldest evicted, {} refused (no memory), \
                 {} SYNs refused (table full), {} packets earlier than the clock, peak {} bytes",
                t.evicted_half_open,
                t.evicted_oldest,
                t.refused_no_memory,
                t.refused_syn_when_full,
                backwards,
                t.peak_memory_bytes
            )?;
        }
        if self.meter.clock_leaps > 0 {
            writeln!(
                f,
                "clock: {} packets stamped far ahead of the packets after them, applied at the clock",
                self.meter.clock_leaps
            )?;
        }
        write!(f, "weirds: {}", self.meter.weirds.total())?;
        let weirds: Vec<String> = self
            .meter
            .weirds
            .iter()
            .map(|(w, n)| format!("{w} {n}"))
            .collect();
        if !weirds.is_empty() {
            write!(f, " ({})", weirds.join(", "))?;
        }
        let m = &self.meter;
        if m.anomalies.total() > 0 {
            let names: Vec<String> = m
                .anomalies
                .iter()
                .map(|(w, n)| format!("{w} {n}"))
                .collect();
            write!(
                f,
                "\nanomalies: {} ({})",
                m.anomalies.total(),
                names.join(", ")
            )?;
        }
        let fr = &m.fragments;
        if fr.evicted_train_cap + fr.evicted_byte_cap + fr.unchecked > 0 {
            write!(
                f,
                "\nfragment trains: {} evicted (train cap), {} evicted (byte cap), {} expired, \
                 {} fragments unchecked",
                fr.evicted_train_cap, fr.evicted_byte_cap, fr.expired, fr.unchecked
            )?;
        }
        Ok(())
    }
}
