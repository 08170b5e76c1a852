//! The multi-core pipeline: a dispatcher, N shard workers, an ordered output.
//!
//! ```text
//!  capture loop ──> Dispatcher ─────────> shard 0: FlowMeter ─┐  (replay: on the capture thread)
//!  (one thread)     shard from  ─batches─> shard 1: FlowMeter ─┼─records─> RecordOrder ─> Output
//!                   addresses   ─batches─> shard N: FlowMeter ─┘            (caller's thread)
//! ```
//!
//! - Shards are shared-nothing: each worker owns a [`FlowMeter`] (its own
//!   flow table and fragment tracker); the hot path takes no lock.
//! - A flow's shard is chosen from a symmetric hash of its addresses and
//!   VLANs (not its ports or protocol), so both directions and every
//!   fragment of a datagram meet in one shard. Plain packets (Ethernet,
//!   VLANs, IPv4 / IPv6, no tunnel, no fragment) are sharded from a few
//!   header bytes; the others are decoded fully. A tunnelled packet whose
//!   outer UDP flow and inner flow hash to different shards goes to both,
//!   each applying its own part; exactly one counts the packet.
//! - In replay, shard 0 runs on the capture thread itself: its packets are
//!   metered straight from the reader's buffer. With one worker there is no
//!   queue at all: read, decode and meter on one thread, output on another.
//!   Live capture keeps its capture thread free and runs every shard on a
//!   thread of its own. (Replay of files on disk with several workers does
//!   not dispatch at all: every shard reads the files itself, see
//!   [`crate::scan`]; this pipeline serves live capture and streams.)
//! - Packets for shard threads travel in batches over bounded crossbeam
//!   channels, copied into one buffer per batch; batches come back empty and
//!   are reused, so there is no allocation per packet. Bounded channels give
//!   backpressure: replay is lossless.
//! - The dispatcher owns the clock: capture time never goes backwards and
//!   every shard hears the time regularly, even without packets, so timers
//!   fire the same way whatever the worker count and the output order is
//!   canonical ([`RecordOrder`]). The records for an input are identical for
//!   any number of workers (except evictions: the flow cap is split between
//!   shards).

use crate::clock::{CaptureClock, Offer};
use crate::error::SensorError;
use crate::metrics::Metrics;
use crate::order::RecordOrder;
use crate::output::Output;
use crate::start::ConnStart;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use flowlib::key::mix64;
use flowlib::meter::ALL_PARTS;
use flowlib::table::TableStats;
use flowlib::{
    ConnRecord, EndReason, FlowMeter, LinkType, MeterStats, PacketView, TableConfig, Timestamp,
};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// Packets per batch before it is sent.
const BATCH_PACKETS: usize = 1024;
/// Packet bytes per batch before it is sent.
const BATCH_BYTES: usize = 1024 * 1024;
/// After this many packets every shard gets its batch (maybe empty), so
/// clocks and output keep moving.
pub(crate) const TICK_PACKETS: usize = 8192;
/// Batches queued per shard.
const QUEUE_DEPTH: usize = 8;

/// Pipeline settings.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Shard workers (at least 1).
    pub workers: usize,
    /// Flow table settings; `max_flows` and `max_memory` are totals, split
    /// between shards.
    pub table: TableConfig,
    /// End reason for flows still open when the input ends.
    pub final_reason: EndReason,
    /// Live capture: never block the capture thread; when a shard's queue
    /// is full, drop the batch and count its packets. Replay blocks instead
    /// (lossless backpressure).
    pub lossy: bool,
    /// Set by a signal handler: stop reading, flush every open flow with end
    /// reason `shutdown`.
    pub shutdown: Arc<AtomicBool>,
    /// Where shards, the dispatcher and the output publish their counters
    /// (once per batch) for the metrics endpoint.
    pub metrics: Option<Arc<Metrics>>,
}

impl PipelineConfig {
    /// The flow table settings of each of `n` shards: the totals split
    /// between them, start records kept compact for [`ShardMsg`].
    ///
    /// # Panics
    /// If the metrics were made for fewer than `n` shards.
    pub(crate) fn shard_table(&self, n: usize) -> TableConfig {
        if let Some(m) = &self.metrics {
            assert!(
                m.shard_count() >= n,
                "metrics made for {} shards, pipeline runs {n}",
                m.shard_count()
            );
        }
        let mut table = self.table.clone();
        table.compact_starts = table.report_starts;
        table.max_flows = table.max_flows.div_ceil(n).max(1);
        table.max_memory = table.max_memory.map(|m| m / n);
        table
    }
}

/// One packet handed to the dispatcher.
#[derive(Copy, Clone, Debug)]
pub struct Packet<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire.
    pub wire_len: u32,
    /// Link type.
    pub link: LinkType,
}

/// Counters of a finished pipeline.
#[derive(Clone, Debug, Default)]
pub struct PipelineStats {
    /// Packet counters over all shards and the dispatcher.
    pub meter: MeterStats,
    /// Flow counters over all shards.
    pub table: TableStats,
    /// Records written.
    pub records: u64,
    /// Packets dropped because a shard's queue was full (live capture only).
    pub queue_drops: u64,
    /// The input was stopped by a signal.
    pub interrupted: bool,
}

#[derive(Copy, Clone, Debug)]
struct Slot {
    start: u32,
    len: u32,
    wire_len: u32,
    ts: Timestamp,
    link: LinkType,
    parts: u8,
    count: bool,
}

/// Packets for one shard, in one reusable buffer.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    slots: Vec<Slot>,
    now: Timestamp,
}

impl Batch {
    fn clear(&mut self) {
        self.data.clear();
        self.slots.clear();
    }
}

/// What a shard hands to the output. Start records (made only for the
/// detector) travel compact, apart from the others ([`ConnStart`]).
pub(crate) enum ShardMsg {
    Records {
        shard: usize,
        clock: Timestamp,
        records: Vec<ConnRecord>,
        starts: Vec<ConnStart>,
    },
    Done {
        shard: usize,
        records: Vec<ConnRecord>,
        starts: Vec<ConnStart>,
        meter: Box<MeterStats>,
        table: Box<TableStats>,
    },
}

impl ShardMsg {
    /// The records so far (`records` is left empty) and the meter's
    /// compact starts; `clock` is the shard's clock.
    fn records(
        shard: usize,
        clock: Timestamp,
        records: &mut Vec<ConnRecord>,
        meter: &mut FlowMeter,
    ) -> ShardMsg {
        let mut starts = Vec::new();
        meter.take_starts(&mut starts);
        ShardMsg::Records {
            shard,
            clock,
            records: std::mem::take(records),
            starts,
        }
    }

    /// A finished shard's last records and compact starts, and its
    /// counters.
    fn done(shard: usize, records: Vec<ConnRecord>, meter: &mut FlowMeter) -> ShardMsg {
        let mut starts = Vec::new();
        meter.take_starts(&mut starts);
        ShardMsg::Done {
            shard,
            records,
            starts,
            meter: Box::new(meter.stats().clone()),
            table: Box::new(meter.table_stats().clone()),
        }
    }
}

/// A shard metered on the thread that reads its packets, straight from the
/// reader's buffer, never copied or queued: shard 0 on the dispatching
/// capture thread (replay of a stream), or every shard when each reads the
/// file itself ([`crate::scan`]).
pub(crate) struct LocalShard {
    /// Which shard this is (0 in the dispatching pipeline).
    pub(crate) shard: usize,
    pub(crate) meter: FlowMeter,
    pub(crate) records: Vec<ConnRecord>,
    pub(crate) out: Sender<ShardMsg>,
    pub(crate) final_reason: EndReason,
    pub(crate) metrics: Option<Arc<Metrics>>,
}

impl LocalShard {
    pub(crate) fn process(&mut self, p: &Packet<'_>, ts: Timestamp) {
        match PacketView::parse(p.data, p.link, ts, p.wire_len) {
            Ok(view) => self
                .meter
                .process_view(&view, ALL_PARTS, true, &mut self.records),
            Err(e) => self
                .meter
                .count_undecodable(p.data.len(), p.wire_len, e.weird),
        }
    }

    /// Hands the records so far to the output, with the shard's clock.
    pub(crate) fn publish(&mut self, now: Timestamp) -> Result<(), Stopped> {
        self.meter.advance(now, &mut self.records);
        publish_shard(self.metrics.as_deref(), self.shard, &self.meter);
        // Records of a timer backlog are due earlier than the clock.
        let clock = self.meter.backlog_since().map_or(now, |b| b.min(now));
        let msg = ShardMsg::records(self.shard, clock, &mut self.records, &mut self.meter);
        self.out.send(msg).map_err(|_| Stopped)
    }

    pub(crate) fn finish(mut self, now: Timestamp, shutdown: bool) {
        // As a shard thread does with its last batch: catch up with the
        // clock first, so due timers fire before the flush.
        self.meter.advance(now, &mut self.records);
        let reason = if shutdown {
            EndReason::Shutdown
        } else {
            self.final_reason
        };
        self.meter.flush(reason, &mut self.records);
        publish_shard(self.metrics.as_deref(), self.shard, &self.meter);
        let _ = self
            .out
            .send(ShardMsg::done(self.shard, self.records, &mut self.meter));
    }
}

/// The dispatching end, driven by the capture loop.
pub struct Dispatcher<'s> {
    /// Shards in total (threads plus the local one).
    shards: usize,
    /// Shard 0, when it runs on this thread; `senders[i]` then feeds shard
    /// `i + 1`, else shard `i`.
    local: Option<LocalShard>,
    senders: Vec<Sender<Batch>>,
    free: Receiver<Batch>,
    pending: Vec<Batch>,
    since_tick: usize,
    /// Capture time, moved on by packets and by [`Dispatcher::tick`].
    clock: CaptureClock,
    stats: MeterStats,
    stop: &'s AtomicBool,
    shutdown: &'s AtomicBool,
    lossy: bool,
    queue_drops: u64,
    metrics: Option<Arc<Metrics>>,
}

/// The output failed (a write error, a closed pipe): stop feeding.
#[derive(Debug)]
pub struct Stopped;

impl Dispatcher<'_> {
    /// Sends one packet to the shard(s) owning its flows. Blocks when the
    /// shards are busy (backpressure).
    pub fn dispatch(&mut self, p: Packet<'_>) -> Result<(), Stopped> {
        if self.stopped() {
            return Err(Stopped);
        }
        self.feed(p)
    }

    /// [`Dispatcher::dispatch`] after a signal asked to shut down: the
    /// packets a live capture had already received when it stopped. Fails
    /// only when the output went away.
    pub fn dispatch_after_stop(&mut self, p: Packet<'_>) -> Result<(), Stopped> {
        if self.output_gone() {
            return Err(Stopped);
        }
        self.feed(p)
    }

    fn feed(&mut self, p: Packet<'_>) -> Result<(), Stopped> {
        // The clock counts, here, once, for the input's order: the shards
        // only see times already moved up to the clock.
        match self.clock.offer(&p) {
            Offer::Now(ts) => self.route(&p, ts)?,
            Offer::Held => {}
            Offer::Released { held_at, then } => {
                self.route_released(held_at, then.map(|ts| (p, ts)))?
            }
        }
        self.since_tick += 1;
        if self.since_tick >= TICK_PACKETS {
            self.since_tick = 0;
            self.send_all()?;
        }
        Ok(())
    }

    /// Sends `p` to the shard(s) owning its flows, at capture time `ts`.
    fn route(&mut self, p: &Packet<'_>, ts: Timestamp) -> Result<(), Stopped> {
        let n = self.shards;
        if n == 1 {
            // One shard: it decodes and counts everything itself.
            self.deliver(0, p, ts)
        } else if let Some(shard) = quick_shard(p.data, p.link, n) {
            self.deliver(shard, p, ts)
        } else {
            self.dispatch_parsed(p, ts)
        }
    }

    /// Routes the packet the clock released at `held_at`, then `next`.
    fn route_released(
        &mut self,
        held_at: Timestamp,
        next: Option<(Packet<'_>, Timestamp)>,
    ) -> Result<(), Stopped> {
        let held = self.clock.take_released();
        let routed = self.route(&held.packet(), held_at);
        self.clock.recycle(held);
        routed?;
        match next {
            Some((p, ts)) => self.route(&p, ts),
            None => Ok(()),
        }
    }

    /// A whole packet (every flow part, counted) for one shard.
    fn deliver(&mut self, shard: usize, p: &Packet<'_>, ts: Timestamp) -> Result<(), Stopped> {
        match &mut self.local {
            Some(local) if shard == 0 => {
                local.process(p, ts);
                Ok(())
            }
            _ => self.push(shard, p, ts, ALL_PARTS, true),
        }
    }

    /// The general case: decode fully, send each flow part to its shard.
    fn dispatch_parsed(&mut self, p: &Packet<'_>, ts: Timestamp) -> Result<(), Stopped> {
        let n = self.shards;
        match PacketView::parse(p.data, p.link, ts, p.wire_len) {
            Err(e) => {
                self.stats.packets += 1;
                self.stats.wire_bytes += u64::from(p.wire_len.max(p.data.len() as u32));
                self.stats.weirds.add(e.weird);
            }
            Ok(view) => {
                let (targets, counter) = route_parts(&view, n);
                for (shard, mask) in targets {
                    if shard == usize::MAX {
                        continue;
                    }
                    match &mut self.local {
                        Some(local) if shard == 0 => local.meter.process_view(
                            &view,
                            mask,
                            shard == counter,
                            &mut local.records,
                        ),
                        _ => self.push(shard, p, ts, mask, shard == counter)?,
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends every shard its pending batch (maybe empty), so clocks and
    /// output keep moving.
    fn send_all(&mut self) -> Result<(), Stopped> {
        self.stats.clock_backwards = self.clock.backwards();
        self.stats.clock_leaps = self.clock.leaps();
        if let Some(m) = &self.metrics {
            m.publish_dispatcher(&self.stats, self.queue_drops);
        }
        if let Some(local) = &mut self.local {
            local.publish(self.clock.now())?;
        }
        for shard in 0..self.senders.len() {
            self.send(shard)?;
        }
        Ok(())
    }

    fn push(
        &mut self,
        shard: usize,
        p: &Packet<'_>,
        ts: Timestamp,
        parts: u8,
        count: bool,
    ) -> Result<(), Stopped> {
        let queue = shard - usize::from(self.local.is_some());
        let b = &mut self.pending[queue];
        b.slots.push(Slot {
            start: b.data.len() as u32,
            len: p.data.len() as u32,
            wire_len: p.wire_len,
            ts,
            link: p.link,
            parts,
            count,
        });
        b.data.extend_from_slice(p.data);
        if b.slots.len() >= BATCH_PACKETS || b.data.len() >= BATCH_BYTES {
            self.send(queue)?;
        }
        Ok(())
    }

    /// Sends the pending batch of queue `queue` (the shard thread
    /// `senders[queue]` feeds).
    fn send(&mut self, queue: usize) -> Result<(), Stopped> {
        let mut fresh = self.free.try_recv().unwrap_or_default();
        fresh.clear();
        let mut batch = std::mem::replace(&mut self.pending[queue], fresh);
        batch.now = self.clock.now();
        if !self.lossy {
            return self.senders[queue].send(batch).map_err(|_| Stopped);
        }
        match self.senders[queue].try_send(batch) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(mut batch)) => {
                // The shard is behind: drop this batch rather than stall
                // the capture, and count what was lost.
                self.queue_drops += batch.slots.iter().filter(|s| s.count).count() as u64;
                batch.clear();
                self.pending[queue] = batch;
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(Stopped),
        }
    }

    /// Whether the caller should stop feeding: the output went away or a
    /// signal asked to shut down.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.shutdown.load(Ordering::Relaxed)
    }

    /// Whether the output went away (nothing more can be written).
    pub fn output_gone(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Packets dropped so far because a shard's queue was full.
    pub fn queue_drops(&self) -> u64 {
        self.queue_drops
    }

    /// Capture time so far (`None` before a packet was applied: the first
    /// one waits for the second, see [`crate::clock`]).
    pub fn clock_now(&self) -> Option<Timestamp> {
        Some(self.clock.now()).filter(|t| *t != Timestamp(i64::MIN))
    }

    /// Moves the clock forward without a packet (an idle live capture).
    pub fn tick(&mut self, now: Timestamp) -> Result<(), Stopped> {
        if let Some(held_at) = self.clock.tick(now) {
            self.route_released(held_at, None)?;
        }
        self.send_all()
    }

    fn finish(mut self) -> (MeterStats, u64) {
        self.lossy = false; // the last batches must arrive
        if let Some(held_at) = self.clock.finish() {
            let _ = self.route_released(held_at, None);
        }
        self.stats.clock_backwards = self.clock.backwards();
        self.stats.clock_leaps = self.clock.leaps();
        for queue in 0..self.senders.len() {
            let _ = self.send(queue);
        }
        self.senders.clear();
        if let Some(local) = self.local.take() {
            local.finish(self.clock.now(), self.shutdown.load(Ordering::Relaxed));
        }
        if let Some(m) = &self.metrics {
            m.publish_dispatcher(&self.stats, self.queue_drops);
        }
        (self.stats, self.queue_drops)
    }
}

/// The shard of a packet that is certainly a single plain flow (Ethernet
/// with up to two VLAN tags, or raw IP; unfragmented IPv4 or IPv6 without
/// extension headers; no tunnel), read from a few header bytes: the same
/// answer [`shard_of`] gives for its one flow part, without a full decode.
/// `None` for everything else: the caller decodes fully. A packet that
/// would not decode at all may get a shard here; that shard then counts it
/// as undecodable, as the dispatcher would have.
pub(crate) fn quick_shard(data: &[u8], link: LinkType, n: usize) -> Option<usize> {
    let mut vlan = None;
    let mut inner = None;
    let (mut off, mut version) = match link {
        LinkType::ETHERNET => (14, None),
        LinkType::RAW => (0, Some(data.first()? >> 4)),
        LinkType::IPV4 => (0, Some(4)),
        LinkType::IPV6 => (0, Some(6)),
        _ => return None,
    };
    if version.is_none() {
        let mut ethertype = be16(data, 12)?;
        for _ in 0..2 {
            if !matches!(ethertype, 0x8100 | 0x88a8 | 0x9100 | 0x9200) {
                break;
            }
            // As the full decode (and Zeek): the first tag is the VLAN, a
            // later one the inner VLAN; id 0 (a priority tag) is no VLAN.
            let id = Some(be16(data, off)? & 0x0fff).filter(|id| *id != 0);
            if vlan.is_none() {
                vlan = id;
            } else {
                inner = id;
            }
            ethertype = be16(data, off + 2)?;
            off += 4;
        }
        version = match ethertype {
            0x0800 => Some(4),
            0x86dd => Some(6),
            _ => return None,
        };
    }
    let ip = data.get(off..)?;
    let (src, dst, proto, l4) = match version {
        Some(4) if ip.len() >= 20 && ip[0] >> 4 == 4 => {
            // More fragments, or a fragment offset: a fragment.
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                return None;
            }
            let src = fold_v4(ip[12..16].try_into().ok()?);
            let dst = fold_v4(ip[16..20].try_into().ok()?);
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            (src, dst, ip[9], ihl)
        }
        Some(6) if ip.len() >= 40 && ip[0] >> 4 == 6 => {
            let src = fold_v6(ip[8..24].try_into().ok()?);
            let dst = fold_v6(ip[24..40].try_into().ok()?);
            (src, dst, ip[6], 40)
        }
        _ => return None,
    };
    let plain = match proto {
        // TCP, ICMP, ICMPv6, SCTP never carry a tunnel.
        6 | 1 | 58 | 132 => true,
        17 => {
            let udp = ip.get(l4..)?;
            let (sp, dp) = (be16(udp, 0)?, be16(udp, 2)?);
            let tunnel_port = |p: u16| matches!(p, 4789 | 6081 | 2152 | 3544 | 5072 | 6635);
            // Teredo is recognised on any port by its payload: an IPv6
            // header (40 bytes at least), maybe behind an authentication
            // (0x0001) or origin (0x0000) header.
            let payload = udp.get(8..).unwrap_or(&[]);
            let teredo_like =
                payload.len() >= 40 && (payload[0] >> 4 == 6 || payload[0] == 0 && payload[1] <= 1);
            !(tunnel_port(sp) || tunnel_port(dp) || teredo_like)
        }
        _ => false,
    };
    plain.then(|| shard_of_folded(src, dst, vlan, inner, n))
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]))
}

/// The shard owning a flow: a symmetric hash of its addresses and VLANs.
/// Ports are left out, so IP fragments land with their flow; so is the
/// protocol, which an IPv6 non-first fragment may not show (its fragment
/// header can name an extension header that the first fragment steps
/// over).
fn shard_of(a: IpAddr, b: IpAddr, vlan: Option<u16>, inner: Option<u16>, n: usize) -> usize {
    shard_of_folded(fold_addr(a), fold_addr(b), vlan, inner, n)
}

/// An address folded into 64 bits for [`shard_of_folded`].
fn fold_addr(addr: IpAddr) -> u64 {
    match addr {
        IpAddr::V4(v) => fold_v4(v.octets()),
        IpAddr::V6(v) => fold_v6(v.octets()),
    }
}

fn fold_v4(octets: [u8; 4]) -> u64 {
    u64::from(u32::from_be_bytes(octets))
}

fn fold_v6(octets: [u8; 16]) -> u64 {
    let n = u128::from_be_bytes(octets);
    (n as u64) ^ ((n >> 64) as u64).rotate_left(17)
}

/// [`shard_of`] on folded addresses: the same for both directions (the
/// smaller fold goes first), one mixing step, and a multiply-shift instead
/// of a division to pick the shard.
fn shard_of_folded(a: u64, b: u64, vlan: Option<u16>, inner: Option<u16>, n: usize) -> usize {
    let (lo, hi) = (a.min(b), a.max(b));
    let meta = u64::from(vlan.unwrap_or(0xffff)) | u64::from(inner.unwrap_or(0xffff)) << 16;
    let h = mix64(
        lo.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ hi.rotate_left(29)
            ^ meta.wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
    );
    ((u128::from(h) * n as u128) >> 64) as usize
}

/// Which shards own the flow parts of a decoded packet: up to four
/// (shard, parts mask) pairs (unused ones have shard `usize::MAX`), and the
/// shard that counts the packet (the owner of its innermost flow).
pub(crate) fn route_parts(view: &PacketView<'_>, n: usize) -> ([(usize, u8); 4], usize) {
    // A packet has at most 4 flow parts.
    let mut targets: [(usize, u8); 4] = [(usize::MAX, 0); 4];
    let mut counter = usize::MAX;
    let last = view.encapsulations().count();
    for (i, fp) in view.flow_packets().enumerate() {
        let shard = shard_of(fp.ip.src, fp.ip.dst, fp.vlan, fp.inner_vlan, n);
        if i == last {
            counter = shard;
        }
        if let Some(t) = targets
            .iter_mut()
            .find(|t| t.0 == shard || t.0 == usize::MAX)
        {
            t.0 = shard;
            t.1 |= 1 << i;
        }
    }
    (targets, counter)
}

/// Stores a shard's running totals for the metrics endpoint.
pub(crate) fn publish_shard(metrics: Option<&Metrics>, shard: usize, meter: &FlowMeter) {
    if let Some(m) = metrics {
        m.shard(shard)
            .publish(meter.stats(), meter.table_stats(), meter.live_flows());
    }
}

/// What a shard worker thread needs besides its queues.
struct WorkerSetup<'a> {
    shard: usize,
    meter: FlowMeter,
    final_reason: EndReason,
    shutdown: &'a AtomicBool,
    metrics: Option<Arc<Metrics>>,
}

fn worker(setup: WorkerSetup<'_>, rx: Receiver<Batch>, out: Sender<ShardMsg>, free: Sender<Batch>) {
    let WorkerSetup {
        shard,
        mut meter,
        final_reason,
        shutdown,
        metrics,
    } = setup;
    let mut records = Vec::new();
    let mut clock = Timestamp(i64::MIN);
    for mut batch in rx {
        for s in &batch.slots {
            let data = &batch.data[s.start as usize..(s.start + s.len) as usize];
            match PacketView::parse(data, s.link, s.ts, s.wire_len) {
                Ok(view) => meter.process_view(&view, s.parts, s.count, &mut records),
                Err(e) => {
                    if s.count {
                        meter.count_undecodable(data.len(), s.wire_len, e.weird);
                    }
                }
            }
            clock = clock.max(s.ts);
        }
        clock = clock.max(batch.now);
        meter.advance(clock, &mut records);
        publish_shard(metrics.as_deref(), shard, &meter);
        // Records of a timer backlog are due earlier than the clock.
        let due = meter.backlog_since().map_or(clock, |b| b.min(clock));
        let msg = ShardMsg::records(shard, due, &mut records, &mut meter);
        if out.send(msg).is_err() {
            return;
        }
        batch.clear();
        let _ = free.try_send(batch);
    }
    let reason = if shutdown.load(Ordering::Relaxed) {
        EndReason::Shutdown
    } else {
        final_reason
    };
    meter.flush(reason, &mut records);
    publish_shard(metrics.as_deref(), shard, &meter);
    let _ = out.send(ShardMsg::done(shard, records, &mut meter));
}

/// Runs the pipeline: `feed` (on its own thread) hands packets to the
/// dispatcher; records are written to `output` in canonical order on the
/// calling thread. Returns the counters and whatever `feed` returned.
pub fn run<F, T>(
    cfg: &PipelineConfig,
    output: &mut Output,
    feed: F,
) -> Result<(PipelineStats, T), SensorError>
where
    F: FnOnce(&mut Dispatcher<'_>) -> T + Send,
    T: Send,
{
    let n = cfg.workers.max(1);
    let table = cfg.shard_table(n);
    // Made before any thread starts: settings the flow table refuses are
    // an error here.
    let mut meters = (0..n)
        .map(|_| FlowMeter::new(table.clone()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let (out_tx, out_rx) = bounded::<ShardMsg>(n * QUEUE_DEPTH);
        let (free_tx, free_rx) = bounded::<Batch>(n * (QUEUE_DEPTH + 2));
        // Replay meters shard 0 on the capture thread; live capture keeps
        // that thread free for capturing.
        let local = if cfg.lossy { None } else { meters.next() }.map(|meter| LocalShard {
            shard: 0,
            meter,
            records: Vec::new(),
            out: out_tx.clone(),
            final_reason: cfg.final_reason,
            metrics: cfg.metrics.clone(),
        });
        let first_thread = usize::from(local.is_some());
        let mut senders = Vec::with_capacity(n);
        for (shard, meter) in (first_thread..n).zip(meters.by_ref()) {
            let (tx, rx) = bounded::<Batch>(QUEUE_DEPTH);
            senders.push(tx);
            let (out, free) = (out_tx.clone(), free_tx.clone());
            let setup = WorkerSetup {
                shard,
                meter,
                final_reason: cfg.final_reason,
                shutdown: &cfg.shutdown,
                metrics: cfg.metrics.clone(),
            };
            thread::Builder::new()
                .name(format!("shard-{shard}"))
                .spawn_scoped(s, move || worker(setup, rx, out, free))
                .expect("spawn shard worker");
        }
        drop(out_tx);
        drop(free_tx);
        let stop_ref = &stop;
        let shutdown_ref = &*cfg.shutdown;
        let lossy = cfg.lossy;
        let metrics = cfg.metrics.clone();
        let feeder = thread::Builder::new()
            .name("dispatch".into())
            .spawn_scoped(s, move || {
                let mut d = Dispatcher {
                    shards: n,
                    local,
                    pending: (0..senders.len()).map(|_| Batch::default()).collect(),
                    senders,
                    free: free_rx,
                    since_tick: 0,
                    clock: CaptureClock::new(),
                    stats: MeterStats::default(),
                    stop: stop_ref,
                    shutdown: shutdown_ref,
                    lossy,
                    queue_drops: 0,
                    metrics,
                };
                let r = feed(&mut d);
                (r, d.finish())
            })
            .expect("spawn dispatcher");

        let (mut stats, failure) = collect_records(out_rx, n, output, &stop);
        let (fed, (dispatcher_stats, queue_drops)) = feeder.join().expect("dispatcher thread");
        stats.meter.merge(&dispatcher_stats);
        stats.queue_drops = queue_drops;
        stats.interrupted = cfg.shutdown.load(Ordering::Relaxed);
        if let Some(e) = failure {
            return Err(e);
        }
        output.finish()?;
        stats.records = output.written();
        Ok((stats, fed))
    })
}

/// Most records handed to the output at once.
const WRITE_BATCH: usize = 4096;

/// The output end, on the caller's thread: puts the shards' records in
/// canonical order and writes them until every shard is done. On a write
/// error, sets `stop` (the feeders stop reading) and keeps draining, so no
/// shard blocks; the error is returned with the shards' merged counters.
pub(crate) fn collect_records(
    messages: Receiver<ShardMsg>,
    shards: usize,
    output: &mut Output,
    stop: &AtomicBool,
) -> (PipelineStats, Option<SensorError>) {
    let mut order = RecordOrder::new(shards);
    let (mut ready, mut ready_starts) = (Vec::new(), Vec::new());
    let mut stats = PipelineStats::default();
    let mut failure = None;
    for msg in messages {
        match msg {
            ShardMsg::Records {
                shard,
                clock,
                records,
                starts,
            } => order.push(shard, clock, records, starts),
            ShardMsg::Done {
                shard,
                records,
                starts,
                meter,
                table,
            } => {
                order.push(shard, Timestamp(i64::MIN), records, starts);
                order.finish(shard);
                stats.meter.merge(&meter);
                stats.table.merge(&table);
            }
        }
        // In batches of a bounded size: the last message of each shard
        // holds every connection still open, and the output's scoring and
        // writing overlap batch by batch.
        loop {
            let more = order.release_items_up_to(&mut ready, &mut ready_starts, WRITE_BATCH);
            if failure.is_none() {
                if let Err(e) = output.write_released(&mut ready, &mut ready_starts) {
                    failure = Some(e);
                    stop.store(true, Ordering::Relaxed);
                }
            }
            ready.clear();
            ready_starts.clear();
            if !more {
                break;
            }
        }
    }
    (stats, failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowbench::{Interleave, MixConfig, RealisticFlows};
    use flowlib::pcap_reader::PcapReader;

    /// What the dispatcher decided before the quick path existed: the shard
    /// of every flow part of the fully decoded packet.
    fn full_shards(data: &[u8], link: LinkType, n: usize) -> Option<Vec<usize>> {
        let view = PacketView::parse(data, link, Timestamp(0), data.len() as u32).ok()?;
        Some(
            view.flow_packets()
                .map(|fp| shard_of(fp.ip.src, fp.ip.dst, fp.vlan, fp.inner_vlan, n))
                .collect(),
        )
    }

    #[test]
    fn only_packets_earlier_than_a_packet_count_as_going_back_not_those_before_a_tick() {
        let frame = |i: u8| {
            let mut v = Vec::new();
            etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4([10, 0, 0, i], [10, 0, 1, 1], 64)
                .udp(5000, 53)
                .write(&mut v, &[0; 20])
                .unwrap();
            v
        };
        let at = |ms: i64| Timestamp(1_772_438_400_000_000_000 + ms * 1_000_000);
        for workers in [1, 2] {
            let cfg = PipelineConfig {
                workers,
                table: TableConfig::default(),
                final_reason: EndReason::Shutdown,
                lossy: true,
                shutdown: Arc::new(AtomicBool::new(false)),
                metrics: None,
            };
            let mut out = Output::discard();
            let (stats, ()) = run(&cfg, &mut out, |d| {
                let frames: Vec<Vec<u8>> = (1..=4).map(frame).collect();
                let send = |d: &mut Dispatcher<'_>, i: usize, ms: i64| {
                    let packet = Packet {
                        ts: at(ms),
                        data: &frames[i],
                        wire_len: frames[i].len() as u32,
                        link: LinkType::ETHERNET,
                    };
                    d.dispatch(packet).unwrap();
                };
                send(d, 0, 0);
                // An idle tick moves the clock on from the wall clock...
                d.tick(at(300)).unwrap();
                // ...a packet stamped before it is not going back,
                send(d, 1, 100);
                // one stamped before the latest packet is.
                send(d, 2, 50);
                send(d, 3, 400);
            })
            .unwrap();
            assert_eq!(stats.meter.clock_backwards, 1, "{workers} workers");
            assert_eq!(stats.meter.packets, 4);
        }
    }

    #[test]
    fn shards_get_even_shares_of_address_pairs_and_both_directions_meet() {
        // Sequential hosts, as address plans have them, talking to a few
        // servers; IPv4 and IPv6; with and without a VLAN.
        for n in [2usize, 3, 4, 8] {
            let mut counts = vec![0u32; n];
            for i in 0..20_000u32 {
                let client = IpAddr::from((0x0a14_0000u32 + i).to_be_bytes());
                let server = IpAddr::from((0x0a0a_0001u32 + i % 7).to_be_bytes());
                let v6: IpAddr = format!("2001:db8::{:x}", i).parse().unwrap();
                let vlan = (i % 3 == 0).then_some(30);
                for (a, b) in [(client, server), (v6, server)] {
                    let there = shard_of(a, b, vlan, None, n);
                    assert_eq!(there, shard_of(b, a, vlan, None, n));
                    counts[there] += 1;
                }
            }
            let even = 40_000.0 / n as f64;
            for c in &counts {
                assert!(
                    (f64::from(*c) - even).abs() < 0.03 * even,
                    "{n} shards: {counts:?}"
                );
            }
        }
    }

    /// Checks one packet; returns whether the quick path took it.
    fn check(data: &[u8], link: LinkType, what: &str) -> bool {
        let mut quick = false;
        for n in [2, 3, 4, 7] {
            let Some(shard) = quick_shard(data, link, n) else {
                continue;
            };
            quick = true;
            if let Some(full) = full_shards(data, link, n) {
                assert_eq!(full, [shard], "{what}: {n} shards");
            }
        }
        quick
    }

    #[test]
    fn quick_shard_agrees_with_the_full_decode_on_generated_traffic() {
        let mut buf = Vec::new();
        let (mut seen, mut quick) = (0, 0);
        // Untagged flows tagged with VLAN 200, left alone, or given a
        // priority tag (VLAN id 0, which is no VLAN).
        for (seed, tag) in [(7, Some(200)), (8, None), (9, Some(0))] {
            let mut frames = Interleave::new(RealisticFlows::new(MixConfig::new(seed, 3_000)).map(
                move |c| match tag {
                    Some(id) if c.vlan.is_none() => c.vlan(id),
                    _ => c,
                },
            ));
            for _ in 0..40_000 {
                if frames.next_into(&mut buf).is_none() {
                    break;
                }
                seen += 1;
                quick += usize::from(check(&buf, LinkType::ETHERNET, "generated"));
            }
        }
        assert!(
            quick * 10 > seen * 9,
            "{quick} of {seen} took the quick path"
        );
    }

    #[test]
    fn quick_shard_agrees_with_the_full_decode_on_every_corpus_and_demo_packet() {
        for path in crate::test_captures::demo_and_corpus_pcaps() {
            let Ok(mut r) = std::fs::File::open(&path).map(PcapReader::new) else {
                continue;
            };
            let Ok(r) = r.as_mut() else { continue };
            let link = r.header().link;
            while let Ok(Some(p)) = r.next_packet() {
                check(p.data, link, &path.display().to_string());
            }
        }
    }

    #[test]
    fn quick_shard_leaves_tunnels_fragments_and_extension_headers_to_the_full_decode() {
        // Ethernet / IPv4 / UDP to the VXLAN port.
        let mut f = vec![0x11u8; 14 + 20 + 8 + 60];
        f[14..14 + 20].fill(0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&4789u16.to_be_bytes());
        assert_eq!(quick_shard(&f, LinkType::ETHERNET, 2), None);
        // The same to port 53: plain.
        f[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&53u16.to_be_bytes());
        assert!(quick_shard(&f, LinkType::ETHERNET, 2).is_some());
        // ... unless the payload starts like an IPv6 packet (Teredo).
        f[14 + 28] = 0x60;
        assert_eq!(quick_shard(&f, LinkType::ETHERNET, 2), None);
        f[14 + 28] = 0x11;
        // A fragment.
        f[14 + 6] = 0x20;
        assert_eq!(quick_shard(&f, LinkType::ETHERNET, 2), None);
        f[14 + 6] = 0;
        // GRE and IP-in-IP.
        for proto in [47, 4, 41] {
            f[14 + 9] = proto;
            assert_eq!(quick_shard(&f, LinkType::ETHERNET, 2), None);
        }
        // IPv6 with a hop-by-hop header.
        let mut g = vec![0u8; 14 + 40 + 40];
        g[12..14].copy_from_slice(&[0x86, 0xdd]);
        g[14] = 0x60;
        g[14 + 6] = 0;
        assert_eq!(quick_shard(&g, LinkType::ETHERNET, 2), None);
        g[14 + 6] = 6;
        assert!(quick_shard(&g, LinkType::ETHERNET, 2).is_some());
    }
}
