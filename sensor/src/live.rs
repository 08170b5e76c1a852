//! `sensor live`: capture from an interface through the sharded pipeline.
//!
//! The capture thread never waits for the shards: when a shard falls behind
//! its batch is dropped and counted. Capture time drives every flow clock;
//! when the link is quiet the clock advances by the wall time since the
//! last packet, so idle flows still end. SIGINT/SIGTERM stop the capture
//! promptly and every open flow is flushed once with end reason `shutdown`.

use crate::error::SensorError;
use crate::metrics::Metrics;
use crate::output::Output;
use crate::pipeline::{self, Dispatcher, Packet, PipelineConfig};
use crate::source::compile_check;
use flowlib::{EndReason, LinkType, MeterStats, TableConfig, Timestamp};
use pcap::{Active, Capture};
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sleep when the capture has nothing to read.
const IDLE_POLL: Duration = Duration::from_millis(1);
/// How often an idle capture advances the shards' clocks.
const IDLE_TICK: Duration = Duration::from_millis(200);
/// How often libpcap's counters are read for the metrics endpoint.
const METRICS_STATS: Duration = Duration::from_secs(1);

/// What to capture and how.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Interface name.
    pub interface: String,
    /// Bytes captured per packet.
    pub snaplen: i32,
    /// Optional BPF expression (applied in the kernel).
    pub bpf: Option<String>,
    /// Kernel capture buffer in bytes (libpcap's default when `None`).
    pub buffer_size: Option<i32>,
    /// Put the interface in promiscuous mode.
    pub promisc: bool,
    /// Shard workers.
    pub workers: usize,
    /// Flow table settings.
    pub table: TableConfig,
    /// Interval of the periodic statistics log line.
    pub stats_interval: Duration,
    /// Set by SIGINT/SIGTERM.
    pub shutdown: Arc<AtomicBool>,
    /// Counters for the metrics endpoint, when one runs.
    pub metrics: Option<Arc<Metrics>>,
}

/// A 32-bit counter that wraps (libpcap's statistics) folded into 64 bits.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counter64 {
    last: u32,
    total: u64,
}

impl Counter64 {
    /// Takes a new reading of the 32-bit counter.
    pub fn update(&mut self, reading: u32) {
        self.total += u64::from(reading.wrapping_sub(self.last));
        self.last = reading;
    }

    /// The running 64-bit total.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// Drop counters of a live capture, by stage.
#[derive(Clone, Debug, Default)]
pub struct LiveDrops {
    /// Packets the kernel received for us (libpcap `ps_recv`).
    pub kernel_received: Counter64,
    /// Dropped by the kernel: no room in the capture buffer (`ps_drop`).
    pub kernel: Counter64,
    /// Dropped by the interface or its driver (`ps_ifdrop`).
    pub interface: Counter64,
    /// Dropped because a shard's queue was full.
    pub shard_queue: u64,
    /// Packets read from libpcap.
    pub captured: u64,
    /// Packets the kernel had received but were not read: those that
    /// arrived after a signal stopped the capture and the ring was
    /// drained (kernel received - kernel drops - captured).
    pub unread_at_stop: u64,
}

impl fmt::Display for LiveDrops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "captured: {}; drops: kernel {}, interface {}, shard queue {} (kernel received {}); \
             arrived after the stop, unread: {}",
            self.captured,
            self.kernel.total(),
            self.interface.total(),
            self.shard_queue,
            self.kernel_received.total(),
            self.unread_at_stop
        )
    }
}

/// The result of a live capture.
pub struct LiveOutcome {
    /// Packet and flow counters.
    pub meter: MeterStats,
    /// Flow counters.
    pub table: flowlib::table::TableStats,
    /// Records written.
    pub records: u64,
    /// Drops by stage.
    pub drops: LiveDrops,
    /// Stopped by a signal (rather than by the interface going away).
    pub interrupted: bool,
    /// Why libpcap stopped capturing, if it failed (the interface went
    /// away, ...); every open flow was still flushed.
    pub capture_error: Option<String>,
    /// Wall time spent.
    pub elapsed: Duration,
}

/// Opens the interface, with errors that say what to do.
pub fn open(cfg: &LiveConfig) -> Result<Capture<Active>, SensorError> {
    let mut inactive = Capture::from_device(cfg.interface.as_str())
        .map_err(|e| interface_error(&cfg.interface, e))?
        .promisc(cfg.promisc)
        .snaplen(cfg.snaplen)
        .timeout(100)
        .immediate_mode(true);
    if let Some(size) = cfg.buffer_size {
        inactive = inactive.buffer_size(size);
    }
    // Non-blocking: libpcap's read timeout does not reliably wake a blocked
    // read on Linux (TPACKET_V3), and the capture loop must notice signals
    // and keep the clock moving on a quiet link.
    let mut cap = inactive
        .open()
        .and_then(|c| c.setnonblock())
        .map_err(|e| interface_error(&cfg.interface, e))?;
    let link = LinkType::from_dlt(cap.get_datalink().0 as u32);
    if !link.is_supported() {
        return Err(SensorError::UnsupportedLink {
            path: cfg.interface.clone().into(),
            link: link.to_string(),
        });
    }
    if let Some(expr) = &cfg.bpf {
        compile_check(link, expr)?;
        cap.filter(expr, true).map_err(|e| SensorError::Filter {
            expr: expr.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(cap)
}

fn interface_error(name: &str, e: pcap::Error) -> SensorError {
    let message = e.to_string();
    let lower = message.to_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        SensorError::Permission {
            interface: name.to_owned(),
            message,
        }
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        SensorError::NoInterface {
            interface: name.to_owned(),
            message,
        }
    } else {
        SensorError::Open {
            path: name.into(),
            message,
        }
    }
}

/// Captures until a signal (or the interface going away).
pub fn live(
    cfg: &LiveConfig,
    cap: Capture<Active>,
    out: &mut Output,
) -> Result<LiveOutcome, SensorError> {
    let started = Instant::now();
    let pipeline = PipelineConfig {
        workers: cfg.workers,
        table: cfg.table.clone(),
        final_reason: EndReason::Shutdown,
        lossy: true,
        shutdown: cfg.shutdown.clone(),
        metrics: cfg.metrics.clone(),
    };
    let interval = cfg.stats_interval;
    let metrics = cfg.metrics.as_deref();
    let (stats, fed) = pipeline::run(&pipeline, out, move |d| {
        capture_loop(cap, d, interval, metrics)
    })?;
    let (mut drops, error) = fed;
    drops.shard_queue = stats.queue_drops;
    if let Some(e) = &error {
        tracing::error!("capture ended: {e}");
    }
    Ok(LiveOutcome {
        meter: stats.meter,
        table: stats.table,
        records: stats.records,
        drops,
        interrupted: stats.interrupted,
        capture_error: error.map(|e| e.to_string()),
        elapsed: started.elapsed(),
    })
}

/// The capture thread: reads packets, keeps the clock moving when idle,
/// logs statistics periodically.
fn capture_loop(
    mut cap: Capture<Active>,
    d: &mut Dispatcher<'_>,
    interval: Duration,
    metrics: Option<&Metrics>,
) -> (LiveDrops, Option<pcap::Error>) {
    let link = LinkType::from_dlt(cap.get_datalink().0 as u32);
    let mut drops = LiveDrops::default();
    let mut last_ts = None::<(Timestamp, Instant)>;
    let mut next_stats = Instant::now() + interval;
    let mut packets = 0u64;
    let mut error = None;
    let mut last_tick = Instant::now();
    let mut next_metrics = Instant::now();
    tracing::info!("capturing ({link})");
    while !d.stopped() {
        match cap.next_packet() {
            Ok(p) => {
                let packet = packet_of(&p, link);
                packets += 1;
                if d.dispatch(packet).is_err() {
                    break;
                }
                // The clock, not the packet's stamp: a packet stamped far
                // ahead is held until time is shown to have moved on, and
                // the wall clock must not show it by starting from it.
                last_ts = d.clock_now().map(|ts| (ts, Instant::now())).or(last_ts);
            }
            Err(pcap::Error::TimeoutExpired) => {
                // Nothing to read. On a quiet link capture time moves on with
                // the wall clock, so idle flows still end.
                std::thread::sleep(IDLE_POLL);
                if last_tick.elapsed() >= IDLE_TICK {
                    last_tick = Instant::now();
                    if let Some((ts, at)) = last_ts {
                        let _ = d.tick(ts.plus(at.elapsed()));
                    }
                }
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        if let Some(m) = metrics.filter(|_| Instant::now() >= next_metrics) {
            next_metrics = Instant::now() + METRICS_STATS;
            read_stats(&mut cap, &mut drops);
            publish_drops(m, &drops);
        }
        if Instant::now() >= next_stats {
            next_stats += interval;
            read_stats(&mut cap, &mut drops);
            tracing::info!(
                packets,
                kernel_drops = drops.kernel.total(),
                interface_drops = drops.interface.total(),
                shard_queue_drops = d.queue_drops(),
                "capture statistics"
            );
        }
    }
    if error.is_none() && !d.output_gone() {
        // Stopped by a signal: the packets already in the ring are read
        // too (as many as the kernel had received then, so a busy link
        // cannot keep the capture going).
        read_stats(&mut cap, &mut drops);
        let waiting = drops
            .kernel_received
            .total()
            .saturating_sub(drops.kernel.total() + packets);
        for _ in 0..waiting {
            let Ok(p) = cap.next_packet() else { break };
            packets += 1;
            if d.dispatch_after_stop(packet_of(&p, link)).is_err() {
                break;
            }
        }
    }
    read_stats(&mut cap, &mut drops);
    if let Some(m) = metrics {
        publish_drops(m, &drops);
    }
    drops.captured = packets;
    drops.unread_at_stop = drops
        .kernel_received
        .total()
        .saturating_sub(drops.kernel.total() + packets);
    (drops, error)
}

/// A packet libpcap captured, for the dispatcher.
fn packet_of<'p>(p: &pcap::Packet<'p>, link: LinkType) -> Packet<'p> {
    Packet {
        ts: Timestamp::from_micros(
            p.header.ts.tv_sec,
            p.header.ts.tv_usec.clamp(0, 999_999) as u32,
        ),
        data: p.data,
        wire_len: p.header.len,
        link,
    }
}

fn publish_drops(m: &Metrics, drops: &LiveDrops) {
    m.publish_capture(
        drops.kernel_received.total(),
        drops.kernel.total(),
        drops.interface.total(),
    );
}

fn read_stats(cap: &mut Capture<Active>, drops: &mut LiveDrops) {
    if let Ok(s) = cap.stats() {
        drops.kernel_received.update(s.received);
        drops.kernel.update(s.dropped);
        drops.interface.update(s.if_dropped);
    }
}

/// Lists capture interfaces: name, state, addresses, description.
pub fn list_interfaces() -> Result<String, SensorError> {
    let devices = pcap::Device::list().map_err(|e| SensorError::Open {
        path: "interfaces".into(),
        message: e.to_string(),
    })?;
    let mut s = String::new();
    for dev in devices {
        let state = if dev.flags.is_up() { "up" } else { "down" };
        let addrs: Vec<String> = dev.addresses.iter().map(|a| a.addr.to_string()).collect();
        s.push_str(&format!(
            "{}\t{}{}\t{}\t{}\n",
            dev.name,
            state,
            if dev.flags.is_loopback() {
                ",loopback"
            } else {
                ""
            },
            if addrs.is_empty() {
                "-".to_owned()
            } else {
                addrs.join(",")
            },
            dev.desc.as_deref().unwrap_or("")
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_fold_32_bit_wraparound_into_64_bits() {
        let mut c = Counter64::default();
        c.update(4_000_000_000);
        c.update(100); // wrapped
        assert_eq!(c.total(), 4_294_967_396);
        c.update(100);
        assert_eq!(c.total(), 4_294_967_396);
    }
}
