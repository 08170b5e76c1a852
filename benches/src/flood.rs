//! A SYN flood against a memory-capped flow table while established
//! connections keep exchanging data: the driver behind the flood test and
//! the `flood` example.
//!
//! The flood is `syns` distinct SYNs (source address and port vary, one
//! destination), 100 000 per second of capture time, so with Zeek's 5 s
//! attempt delay half a million half-open connections would be live at
//! once: far more than the cap holds. Interleaved with it, `established`
//! TCP connections (handshake done before the flood) each send one data
//! segment per batch, alternating direction.
//!
//! Work alternates between *quiet* batches (established traffic only) and
//! *flood* batches (SYNs plus the established traffic), so the throughput
//! ratio compares the two under the same machine load; batches are timed
//! by the thread's CPU time, so preemption by other tenants does not count
//! (it would hit the longer flood batches more). After every batch
//! the table's accounting is read and conservation (created = live +
//! ended + evicted) is checked.

use std::time::Duration;

use cpu_time::ThreadTime;

use etherparse::PacketBuilder;
use flowlib::{ConfigError, ConnRecord, EndReason, FlowMeter, LinkType, TableConfig, Timestamp};

/// Settings of one flood run.
#[derive(Clone, Debug)]
pub struct FloodConfig {
    /// Distinct SYNs sent.
    pub syns: u64,
    /// Established connections kept busy during the flood.
    pub established: u32,
    /// The table's memory cap in bytes.
    pub max_memory: usize,
    /// SYNs per flood batch.
    pub batch: u64,
    /// SYNs per second of capture time.
    pub syn_rate: u64,
    /// Also feed every frame to an uncapped reference table (interleaved,
    /// batch by batch) to compare throughput with and without the cap.
    pub reference: bool,
    /// [`TableConfig::refuse_syns_when_full`] of the capped table (the SYN
    /// flood emergency mode, on by default); `false`: every SYN evicts.
    pub refuse_syns_when_full: bool,
}

impl FloodConfig {
    /// `syns` SYNs against a table capped at `max_memory` bytes, with 1000
    /// established connections.
    pub fn new(syns: u64, max_memory: usize) -> FloodConfig {
        FloodConfig {
            syns,
            established: 1000,
            max_memory,
            batch: 10_000,
            syn_rate: 100_000,
            reference: false,
            refuse_syns_when_full: TableConfig::default().refuse_syns_when_full,
        }
    }
}

/// What a flood run measured.
#[derive(Clone, Debug, Default)]
pub struct FloodReport {
    /// SYNs sent.
    pub syns: u64,
    /// Packets processed in all.
    pub packets: u64,
    /// Most bytes the table's own accounting showed after any batch.
    pub peak_table_bytes: usize,
    /// The table's own peak ([`flowlib::table::TableStats::peak_memory_bytes`]).
    pub peak_memory_stat: u64,
    /// Resident set growth of the process from before the table was built
    /// to the end of the flood, in bytes (`None` without `/proc`).
    pub rss_growth: Option<u64>,
    /// Established connections ended by eviction during the flood.
    pub established_evicted: u32,
    /// Established connections at the start.
    pub established: u32,
    /// Half-open evictions.
    pub evicted_half_open: u64,
    /// Nearest-to-expiry evictions.
    pub evicted_oldest: u64,
    /// Refused packets.
    pub refused: u64,
    /// Connections created.
    pub created: u64,
    /// Batches after which conservation was checked (and held).
    pub conservation_checks: u64,
    /// Median packets per second of quiet batches.
    pub quiet_pps: f64,
    /// Median packets per second of flood batches once the table is at its
    /// cap (every SYN evicts a half-open connection or is refused).
    pub flood_pps: f64,
    /// Median packets per second of flood batches while the table was
    /// still below its cap (no eviction): the same packet mix, no pressure.
    pub below_cap_pps: f64,
    /// With [`FloodConfig::reference`]: packets per second of the capped
    /// table and of the uncapped reference over the same flood batches,
    /// once both are in a steady state (the capped one evicting, the
    /// reference expiring unanswered SYNs after Zeek's 5 s attempt delay:
    /// both emit one record per SYN).
    pub steady_capped_pps: f64,
    /// See [`FloodReport::steady_capped_pps`].
    pub steady_reference_pps: f64,
    /// Most live connections the table allowed.
    pub flow_limit: usize,
}

impl FloodReport {
    /// Flood throughput (at the cap) over quiet throughput (established
    /// traffic only).
    pub fn throughput_ratio(&self) -> f64 {
        self.flood_pps / self.quiet_pps
    }

    /// Flood throughput at the cap over the same mix below the cap.
    pub fn at_cap_ratio(&self) -> f64 {
        self.flood_pps / self.below_cap_pps
    }

    /// Flood throughput of the capped table over that of the uncapped
    /// reference in steady state: what the memory cap costs.
    pub fn reference_ratio(&self) -> f64 {
        self.steady_capped_pps / self.steady_reference_pps
    }

    /// Share of established connections that survived.
    pub fn survival(&self) -> f64 {
        1.0 - f64::from(self.established_evicted) / f64::from(self.established)
    }
}

/// Resident set size of this process in bytes, from `/proc/self/statm`.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// An Ethernet/IPv4/TCP frame from `src` to `dst` (a SYN when `syn`, with
/// ACK `ack` when given), carrying `payload`.
pub fn tcp_frame(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, seq, 64240);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let mut v = Vec::with_capacity(64 + payload.len());
    b.write(&mut v, payload).expect("a vector takes any frame");
    v
}

/// Established connection `i`: client and server endpoints.
fn established_ends(i: u32) -> (([u8; 4], u16), ([u8; 4], u16)) {
    let c = [192, 168, (i >> 8) as u8, i as u8];
    ((c, 40_000 + (i % 20_000) as u16), ([172, 16, 0, 1], 443))
}

/// The SYN frame template: source address at bytes 26..30, source port
/// at 34..36 (Ethernet 14 + IPv4 20). Only those change between SYNs; the
/// decoder does not check checksums.
fn syn_frame(n: u64) -> Vec<u8> {
    let mut f = tcp_frame(
        ([10, 0, 0, 0], 0),
        ([203, 0, 113, 80], 80),
        0x1000_0000,
        None,
        true,
        &[],
    );
    let addr = 0x0a00_0000u32 | ((n >> 10) as u32 & 0x00ff_ffff);
    f[26..30].copy_from_slice(&addr.to_be_bytes());
    f[34..36].copy_from_slice(&(1024 + (n & 1023) as u16).to_be_bytes());
    f
}

/// Runs one flood; `check` is called after every batch with the meter,
/// so a test can assert on the table's state at every step. A memory cap
/// the flow table refuses (below [`flowlib::config::MIN_MAX_MEMORY`]) is
/// an error.
pub fn run(
    cfg: &FloodConfig,
    mut check: impl FnMut(&FlowMeter),
) -> Result<FloodReport, ConfigError> {
    let rss_before = rss_bytes();
    let table = TableConfig {
        max_memory: Some(cfg.max_memory),
        refuse_syns_when_full: cfg.refuse_syns_when_full,
        max_flows: usize::MAX,
        ..TableConfig::default()
    };
    let mut meter = FlowMeter::new(table)?;
    let mut reference = match cfg.reference {
        true => Some(FlowMeter::new(TableConfig {
            max_flows: usize::MAX,
            ..TableConfig::default()
        })?),
        false => None,
    };
    let mut ref_out = Vec::new();
    let (mut steady_capped, mut steady_ref, mut steady_packets) = (0f64, 0f64, 0u64);
    let mut report = FloodReport {
        established: cfg.established,
        ..FloodReport::default()
    };
    let mut out: Vec<ConnRecord> = Vec::new();
    let base = 1_772_438_400i64;
    let mut now = Timestamp::from_micros(base, 0);
    let process = |meter: &mut FlowMeter, out: &mut Vec<ConnRecord>, ts, f: &[u8]| {
        meter.process(f, LinkType::ETHERNET, ts, f.len() as u32, out);
    };

    // Handshakes of the established connections, before the flood.
    let mut seqs = Vec::new();
    for i in 0..cfg.established {
        let (c, s) = established_ends(i);
        let step = Duration::from_micros(10);
        for f in [
            tcp_frame(c, s, 100, None, true, &[]),
            tcp_frame(s, c, 900, Some(101), true, &[]),
            tcp_frame(c, s, 101, Some(901), false, &[]),
        ] {
            process(&mut meter, &mut out, now, &f);
            if let Some(m) = reference.as_mut() {
                process(m, &mut ref_out, now, &f);
            }
            now = now.plus(step);
        }
        seqs.push((101u32, 901u32));
    }

    let payload = [0x42u8; 100];
    let mut quiet = Vec::new();
    let mut flood = Vec::new();
    let mut below_cap = Vec::new();
    let mut sent = 0u64;
    let mut round = 0u64;
    // Capture time per batch: `batch` SYNs at `syn_rate` per second.
    let batch_span = Duration::from_secs_f64(cfg.batch as f64 / cfg.syn_rate as f64);
    let flood_start = now;
    let mut frames: Vec<(Timestamp, Vec<u8>)> = Vec::new();
    while sent < cfg.syns {
        let flood_batch = round % 2 == 1;
        round += 1;
        let n = if flood_batch {
            cfg.batch.min(cfg.syns - sent)
        } else {
            0
        };
        // Frames are built before the batch is timed.
        frames.clear();
        let per_est = (n / u64::from(cfg.established.max(1))).max(1);
        let step = batch_span / (n as u32 + cfg.established).max(1);
        let mut syn_i = 0;
        for i in 0..cfg.established {
            let (c, s) = established_ends(i);
            let (cs, ss) = &mut seqs[i as usize];
            let f = if round % 4 < 2 {
                let f = tcp_frame(c, s, *cs, Some(*ss), false, &payload);
                *cs = cs.wrapping_add(payload.len() as u32);
                f
            } else {
                let f = tcp_frame(s, c, *ss, Some(*cs), false, &payload);
                *ss = ss.wrapping_add(payload.len() as u32);
                f
            };
            frames.push((now, f));
            now = now.plus(step);
            for _ in 0..per_est {
                if syn_i < n {
                    frames.push((now, syn_frame(sent + syn_i)));
                    now = now.plus(step);
                    syn_i += 1;
                }
            }
        }
        while syn_i < n {
            frames.push((now, syn_frame(sent + syn_i)));
            now = now.plus(step);
            syn_i += 1;
        }
        sent += n;
        let evictions_before = evictions(&meter);
        let mut ref_secs = 0.0;
        if round % 4 == 0 {
            // The reference goes first every other flood batch.
            if let Some(m) = reference.as_mut() {
                ref_secs = time(m, &mut ref_out, &frames);
            }
        }
        let secs = time(&mut meter, &mut out, &frames);
        if round % 4 != 0 {
            if let Some(m) = reference.as_mut() {
                ref_secs = time(m, &mut ref_out, &frames);
            }
        }
        ref_out.clear();
        let pps = frames.len() as f64 / secs.max(1e-9);
        let steady = now.since(flood_start) > Duration::from_secs(6) && evictions_before > 0;
        if flood_batch && steady && reference.is_some() {
            steady_capped += secs;
            steady_ref += ref_secs;
            steady_packets += frames.len() as u64;
        }
        if flood_batch && evictions(&meter) == evictions_before {
            below_cap.push(pps);
        } else if flood_batch && evictions_before > 0 {
            flood.push(pps);
        } else if round > 2 {
            quiet.push(pps); // the first quiet batch warms caches up
        }
        report.packets += frames.len() as u64;
        for r in out.drain(..) {
            if r.end_reason == EndReason::Evicted {
                if let std::net::IpAddr::V4(a) = r.orig_h {
                    if a.octets()[..2] == [192, 168] {
                        report.established_evicted += 1;
                    }
                }
            }
        }
        report.peak_table_bytes = report.peak_table_bytes.max(meter.table_memory_bytes());
        check(&meter);
        report.conservation_checks += 1;
    }
    report.rss_growth = match (rss_before, rss_bytes()) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    };
    let stats = meter.table_stats();
    report.syns = sent;
    report.peak_memory_stat = stats.peak_memory_bytes;
    report.evicted_half_open = stats.evicted_half_open;
    report.evicted_oldest = stats.evicted_oldest;
    report.refused = stats.refused_no_memory + stats.refused_syn_when_full;
    report.created = stats.created;
    report.flow_limit = meter.table_flow_limit();
    report.quiet_pps = median(&mut quiet);
    report.flood_pps = median(&mut flood);
    report.below_cap_pps = median(&mut below_cap);
    report.steady_capped_pps = steady_packets as f64 / steady_capped;
    report.steady_reference_pps = steady_packets as f64 / steady_ref;
    Ok(report)
}

/// Seconds `meter` takes to process `frames`.
///
/// Seconds of this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall
/// time: on a shared machine a long batch is more likely to be preempted
/// than a short one, which would bias the flood batches (ten times longer)
/// against the quiet ones.
fn time(meter: &mut FlowMeter, out: &mut Vec<ConnRecord>, frames: &[(Timestamp, Vec<u8>)]) -> f64 {
    let started = ThreadTime::now();
    for (ts, f) in frames {
        meter.process(f, LinkType::ETHERNET, *ts, f.len() as u32, out);
    }
    started.elapsed().as_secs_f64()
}

/// Connections evicted and SYNs refused so far: nonzero once the table
/// is at its cap.
fn evictions(meter: &FlowMeter) -> u64 {
    let s = meter.table_stats();
    s.evicted_half_open + s.evicted_oldest + s.refused_syn_when_full
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
