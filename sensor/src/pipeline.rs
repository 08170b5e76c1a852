//! The multi-core pipeline: a dispatcher, N shard workers, an ordered output.
//!
//! ```text
//!  capture loop ──> Dispatcher ──batches──> shard 0: FlowMeter ─┐
//!  (this thread)    decode, hash  ───────> shard 1: FlowMeter ─┼─records─> RecordOrder ─> Output
//!                   address pair  ───────> shard N: FlowMeter ─┘            (caller's thread)
//! ```
//!
//! - Shards are shared-nothing: each worker owns a [`FlowMeter`] (its own
//!   flow table and fragment tracker); the hot path takes no lock.
//! - A flow's shard is chosen from a symmetric hash of its addresses,
//!   protocol and VLANs (not its ports), so both directions and every
//!   fragment of a datagram meet in one shard. A tunnelled packet whose outer
//!   UDP flow and inner flow hash to different shards goes to both, each
//!   applying its own part; exactly one counts the packet.
//! - Packets travel in batches over bounded crossbeam channels, copied into
//!   one buffer per batch; batches come back empty and are reused, so there
//!   is no allocation per packet. Bounded channels give backpressure: replay
//!   is lossless.
//! - The dispatcher owns the clock: capture time never goes backwards and
//!   every shard hears the time regularly, even without packets, so timers
//!   fire the same way whatever the worker count and the output order is
//!   canonical ([`RecordOrder`]). The records for an input are identical for
//!   any number of workers (except evictions: the flow cap is split between
//!   shards).

use crate::error::SensorError;
use crate::order::RecordOrder;
use crate::output::Output;
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
const BATCH_PACKETS: usize = 256;
/// Packet bytes per batch before it is sent.
const BATCH_BYTES: usize = 256 * 1024;
/// After this many packets every shard gets its batch (maybe empty), so
/// clocks and output keep moving.
const TICK_PACKETS: usize = 4096;
/// Batches queued per shard.
const QUEUE_DEPTH: usize = 8;

/// Pipeline settings.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Shard workers (at least 1).
    pub workers: usize,
    /// Flow table settings; `max_flows` is the total, split between shards.
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

enum ShardMsg {
    Records {
        shard: usize,
        clock: Timestamp,
        records: Vec<ConnRecord>,
    },
    Done {
        shard: usize,
        records: Vec<ConnRecord>,
        meter: Box<MeterStats>,
        table: Box<TableStats>,
    },
}

/// The dispatching end, driven by the capture loop.
pub struct Dispatcher<'s> {
    senders: Vec<Sender<Batch>>,
    free: Receiver<Batch>,
    pending: Vec<Batch>,
    since_tick: usize,
    now: Timestamp,
    stats: MeterStats,
    stop: &'s AtomicBool,
    shutdown: &'s AtomicBool,
    lossy: bool,
    queue_drops: u64,
}

/// The output side went away (closed pipe or write error): stop feeding.
#[derive(Debug)]
pub struct Stopped;

impl Dispatcher<'_> {
    /// Sends one packet to the shard(s) owning its flows. Blocks when the
    /// shards are busy (backpressure).
    pub fn dispatch(&mut self, p: Packet<'_>) -> Result<(), Stopped> {
        if self.stopped() {
            return Err(Stopped);
        }
        let ts = p.ts.max(self.now);
        self.now = ts;
        let n = self.senders.len();
        if n == 1 {
            // One shard: it decodes and counts everything itself.
            self.push(0, &p, ts, ALL_PARTS, true)?;
        } else {
            match PacketView::parse(p.data, p.link, ts, p.wire_len) {
                Err(e) => {
                    self.stats.packets += 1;
                    self.stats.wire_bytes += u64::from(p.wire_len.max(p.data.len() as u32));
                    self.stats.weirds.add(e.weird);
                }
                Ok(view) => {
                    // (shard, parts) pairs; a packet has at most 4 flow parts.
                    let mut targets: [(usize, u8); 4] = [(usize::MAX, 0); 4];
                    let mut counter = usize::MAX;
                    let last = view.encapsulations().count();
                    for (i, fp) in view.flow_packets().enumerate() {
                        let shard =
                            shard_of(fp.ip.src, fp.ip.dst, fp.ip.proto, fp.vlan, fp.inner_vlan, n);
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
                    for (shard, mask) in targets {
                        if shard != usize::MAX {
                            self.push(shard, &p, ts, mask, shard == counter)?;
                        }
                    }
                }
            }
        }
        self.since_tick += 1;
        if self.since_tick >= TICK_PACKETS {
            self.since_tick = 0;
            for shard in 0..n {
                self.send(shard)?;
            }
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
        let b = &mut self.pending[shard];
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
            self.send(shard)?;
        }
        Ok(())
    }

    fn send(&mut self, shard: usize) -> Result<(), Stopped> {
        let mut fresh = self.free.try_recv().unwrap_or_default();
        fresh.clear();
        let mut batch = std::mem::replace(&mut self.pending[shard], fresh);
        batch.now = self.now;
        if !self.lossy {
            return self.senders[shard].send(batch).map_err(|_| Stopped);
        }
        match self.senders[shard].try_send(batch) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(mut batch)) => {
                // The shard is behind: drop this batch rather than stall
                // the capture, and count what was lost.
                self.queue_drops += batch.slots.iter().filter(|s| s.count).count() as u64;
                batch.clear();
                self.pending[shard] = batch;
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

    /// Packets dropped so far because a shard's queue was full.
    pub fn queue_drops(&self) -> u64 {
        self.queue_drops
    }

    /// Moves the clock forward without a packet (an idle live capture).
    pub fn tick(&mut self, now: Timestamp) -> Result<(), Stopped> {
        self.now = self.now.max(now);
        for shard in 0..self.senders.len() {
            self.send(shard)?;
        }
        Ok(())
    }

    fn finish(mut self) -> (MeterStats, u64) {
        self.lossy = false; // the last batches must arrive
        for shard in 0..self.senders.len() {
            let _ = self.send(shard);
        }
        self.senders.clear();
        (self.stats, self.queue_drops)
    }
}

/// The shard owning a flow: a symmetric hash of its addresses, protocol and
/// VLANs (ports excluded, so IP fragments land with their flow).
fn shard_of(
    a: IpAddr,
    b: IpAddr,
    proto: u8,
    vlan: Option<u16>,
    inner: Option<u16>,
    n: usize,
) -> usize {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let fold = |x: IpAddr| match x {
        IpAddr::V4(v) => u64::from(u32::from(v)),
        IpAddr::V6(v) => {
            let n = u128::from(v);
            (n as u64) ^ ((n >> 64) as u64).rotate_left(17)
        }
    };
    let h = mix64(fold(lo) ^ mix64(fold(hi)).rotate_left(1))
        ^ mix64(
            u64::from(proto)
                | u64::from(vlan.unwrap_or(0xffff)) << 8
                | u64::from(inner.unwrap_or(0xffff)) << 24,
        );
    (mix64(h) % n as u64) as usize
}

fn worker(
    shard: usize,
    rx: Receiver<Batch>,
    out: Sender<ShardMsg>,
    free: Sender<Batch>,
    table: TableConfig,
    final_reason: EndReason,
    shutdown: &AtomicBool,
) {
    let mut meter = FlowMeter::new(table);
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
        let msg = ShardMsg::Records {
            shard,
            clock,
            records: std::mem::take(&mut records),
        };
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
    let _ = out.send(ShardMsg::Done {
        shard,
        records,
        meter: Box::new(meter.stats().clone()),
        table: Box::new(meter.table_stats().clone()),
    });
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
    let mut table = cfg.table.clone();
    table.max_flows = table.max_flows.div_ceil(n).max(1);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let (out_tx, out_rx) = bounded::<ShardMsg>(n * QUEUE_DEPTH);
        let (free_tx, free_rx) = bounded::<Batch>(n * (QUEUE_DEPTH + 2));
        let mut senders = Vec::with_capacity(n);
        for shard in 0..n {
            let (tx, rx) = bounded::<Batch>(QUEUE_DEPTH);
            senders.push(tx);
            let (out, free, table) = (out_tx.clone(), free_tx.clone(), table.clone());
            let reason = cfg.final_reason;
            let shutdown = &*cfg.shutdown;
            thread::Builder::new()
                .name(format!("shard-{shard}"))
                .spawn_scoped(s, move || {
                    worker(shard, rx, out, free, table, reason, shutdown)
                })
                .expect("spawn shard worker");
        }
        drop(out_tx);
        drop(free_tx);
        let stop_ref = &stop;
        let shutdown_ref = &*cfg.shutdown;
        let lossy = cfg.lossy;
        let feeder = thread::Builder::new()
            .name("dispatch".into())
            .spawn_scoped(s, move || {
                let mut d = Dispatcher {
                    pending: (0..senders.len()).map(|_| Batch::default()).collect(),
                    senders,
                    free: free_rx,
                    since_tick: 0,
                    now: Timestamp(i64::MIN),
                    stats: MeterStats::default(),
                    stop: stop_ref,
                    shutdown: shutdown_ref,
                    lossy,
                    queue_drops: 0,
                };
                let r = feed(&mut d);
                (r, d.finish())
            })
            .expect("spawn dispatcher");

        let mut order = RecordOrder::new(n);
        let mut ready = Vec::new();
        let mut stats = PipelineStats::default();
        let mut failure = None;
        for msg in out_rx {
            match msg {
                ShardMsg::Records {
                    shard,
                    clock,
                    records,
                } => order.push(shard, clock, records),
                ShardMsg::Done {
                    shard,
                    records,
                    meter,
                    table,
                } => {
                    order.push(shard, Timestamp(i64::MIN), records);
                    order.finish(shard);
                    stats.meter.merge(&meter);
                    stats.table.merge(&table);
                }
            }
            order.release(&mut ready);
            if failure.is_none() {
                if let Err(e) = output.write_all(&mut ready) {
                    failure = Some(e);
                }
                if failure.is_some() || output.is_closed() {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            ready.clear();
        }
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
