//! Replay with every shard reading the input itself: no dispatcher, no
//! packet queues, no copies.
//!
//! ```text
//!  file ──read──> shard 0: keeps its packets, FlowMeter ─┐
//!  file ──read──> shard 1: keeps its packets, FlowMeter ─┼─records─> RecordOrder ─> Output
//!  file ──read──> shard N: keeps its packets, FlowMeter ─┘            (caller's thread)
//! ```
//!
//! A capture file on disk can be read any number of times, so instead of
//! one thread reading and handing packets to the others (a copy per packet,
//! a queue, and one thread that does more than its share), each shard
//! thread reads the whole file through its own reader, finds the shard of
//! every packet from a few header bytes (the same `quick_shard` and
//! `route_parts` the dispatcher uses) and meters only its own. Reading and
//! sharding a packet cost a small fraction of metering it, so the work
//! splits evenly between the threads. This is the replay counterpart of a
//! kernel fanout group: every reader sees the stream, each keeps its part.
//!
//! Every thread sees every packet, so every thread knows the dispatcher's
//! clock (capture time, never backwards) and ticks after the same packets:
//! the records are exactly those of the dispatching pipeline
//! ([`pipeline::run`](crate::pipeline::run)), and identical for any number
//! of workers. Counting is split as there: the owner of a packet's innermost
//! flow counts it, and shard 0 counts what no shard can decode.
//!
//! The threads are kept within [`MAX_LAG_TICKS`] ticks of each other
//! (`Lockstep`): the output can release records only up to the slowest
//! shard's clock, so a shard running ahead would make it hold more and more.

use crate::clock::{CaptureClock, Offer};
use crate::error::SensorError;
use crate::metrics::Metrics;
use crate::output::Output;
use crate::pipeline::{
    collect_records, quick_shard, route_parts, LocalShard, Packet, PipelineConfig, PipelineStats,
    ShardMsg, Stopped, TICK_PACKETS,
};
use crossbeam_channel::bounded;
use flowlib::{FlowMeter, MeterStats, PacketView, Timestamp};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// How many ticks (`TICK_PACKETS`, 8 192 packets each) a shard may run ahead of
/// the slowest one before it waits.
pub const MAX_LAG_TICKS: u64 = 8;

/// Messages queued from the shards to the output, per shard.
const OUTPUT_DEPTH: usize = 8;

/// Keeps shard threads within [`MAX_LAG_TICKS`] of each other.
struct Lockstep {
    /// Ticks completed per shard; `u64::MAX` once a shard has finished.
    ticks: Vec<AtomicU64>,
    lock: Mutex<()>,
    moved: Condvar,
}

impl Lockstep {
    fn new(shards: usize) -> Lockstep {
        Lockstep {
            ticks: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            lock: Mutex::new(()),
            moved: Condvar::new(),
        }
    }

    /// Records that `shard` completed `ticks` ticks, wakes the shards
    /// waiting for it, and waits while `shard` is too far ahead of the
    /// slowest (or until `stopped` says to give up).
    fn arrive(&self, shard: usize, ticks: u64, stopped: impl Fn() -> bool) {
        self.publish(shard, ticks);
        let slowest = || {
            self.ticks
                .iter()
                .map(|t| t.load(Ordering::Acquire))
                .min()
                .unwrap_or(u64::MAX)
        };
        if ticks <= slowest().saturating_add(MAX_LAG_TICKS) {
            return;
        }
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while ticks > slowest().saturating_add(MAX_LAG_TICKS) && !stopped() {
            // The timeout only bounds how late a stop is noticed.
            guard = match self.moved.wait_timeout(guard, Duration::from_millis(50)) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// `shard` has finished: nobody waits for it any more.
    fn leave(&self, shard: usize) {
        self.publish(shard, u64::MAX);
    }

    /// Stores `shard`'s progress and wakes the shards waiting for it.
    fn publish(&self, shard: usize, ticks: u64) {
        self.ticks[shard].store(ticks, Ordering::Release);
        // Taking the lock orders this store before any waiter's check: a
        // waiter holds the lock from its check until it sleeps.
        drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()));
        self.moved.notify_all();
    }
}

/// One shard thread's view of the input: offered every packet, it keeps
/// the ones it owns.
pub struct ScanShard<'s> {
    shard: usize,
    shards: usize,
    local: LocalShard,
    /// Capture time over every packet of the input.
    clock: CaptureClock,
    since_tick: usize,
    ticks: u64,
    /// What only shard 0 counts: packets no shard can decode, and the
    /// clock's counts (packets whose time went backwards or leapt ahead).
    undecodable: MeterStats,
    stop: &'s AtomicBool,
    shutdown: &'s AtomicBool,
    lockstep: &'s Lockstep,
    metrics: Option<Arc<Metrics>>,
}

impl ScanShard<'_> {
    /// This thread's shard.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Offers the next packet of the input (every packet, in input order);
    /// the shard meters the flow parts it owns. `Err` when the output went
    /// away or a signal asked to stop: stop reading.
    pub fn offer(&mut self, p: Packet<'_>) -> Result<(), Stopped> {
        if self.stopped() {
            return Err(Stopped);
        }
        // Every shard sees every packet, so every shard's clock makes the
        // same decisions; shard 0 counts them, once ([`ScanShard::finish`]).
        match self.clock.offer(&p) {
            Offer::Now(ts) => self.meter_packet(&p, ts),
            Offer::Held => {}
            Offer::Released { held_at, then } => {
                let held = self.clock.take_released();
                self.meter_packet(&held.packet(), held_at);
                self.clock.recycle(held);
                if let Some(ts) = then {
                    self.meter_packet(&p, ts);
                }
            }
        }
        self.since_tick += 1;
        if self.since_tick >= TICK_PACKETS {
            self.since_tick = 0;
            self.tick()?;
        }
        Ok(())
    }

    /// Meters the flow parts of `p` this shard owns, at capture time `ts`.
    fn meter_packet(&mut self, p: &Packet<'_>, ts: Timestamp) {
        if self.shards == 1 {
            self.local.process(p, ts);
        } else if let Some(shard) = quick_shard(p.data, p.link, self.shards) {
            if shard == self.shard {
                self.local.process(p, ts);
            }
        } else {
            self.offer_parsed(p, ts);
        }
    }

    /// The general case: decode fully, meter the flow parts this shard owns.
    fn offer_parsed(&mut self, p: &Packet<'_>, ts: Timestamp) {
        match PacketView::parse(p.data, p.link, ts, p.wire_len) {
            Err(e) => {
                if self.shard == 0 {
                    self.undecodable.packets += 1;
                    self.undecodable.wire_bytes += u64::from(p.wire_len.max(p.data.len() as u32));
                    self.undecodable.weirds.add(e.weird);
                }
            }
            Ok(view) => {
                let (targets, counter) = route_parts(&view, self.shards);
                if let Some(&(_, mask)) = targets.iter().find(|t| t.0 == self.shard) {
                    let count = counter == self.shard;
                    let local = &mut self.local;
                    local
                        .meter
                        .process_view(&view, mask, count, &mut local.records);
                }
            }
        }
    }

    /// Hands the records so far to the output and keeps pace with the
    /// other shards.
    fn tick(&mut self) -> Result<(), Stopped> {
        if let (0, Some(m)) = (self.shard, &self.metrics) {
            self.undecodable.clock_backwards = self.clock.backwards();
            self.undecodable.clock_leaps = self.clock.leaps();
            m.publish_dispatcher(&self.undecodable, 0);
        }
        self.local.publish(self.clock.now())?;
        self.ticks += 1;
        let (stop, shutdown) = (self.stop, self.shutdown);
        self.lockstep.arrive(self.shard, self.ticks, || {
            stop.load(Ordering::Relaxed) || shutdown.load(Ordering::Relaxed)
        });
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.shutdown.load(Ordering::Relaxed)
    }

    /// Flushes the shard and returns what only it counted.
    fn finish(mut self) -> MeterStats {
        if let Some(at) = self.clock.finish() {
            let held = self.clock.take_released();
            self.meter_packet(&held.packet(), at);
        }
        if self.shard == 0 {
            self.undecodable.clock_backwards = self.clock.backwards();
            self.undecodable.clock_leaps = self.clock.leaps();
        }
        self.lockstep.leave(self.shard);
        if let (0, Some(m)) = (self.shard, &self.metrics) {
            m.publish_dispatcher(&self.undecodable, 0);
        }
        self.local
            .finish(self.clock.now(), self.shutdown.load(Ordering::Relaxed));
        self.undecodable
    }
}

/// Runs `cfg.workers` shard threads, each calling `scan` to read the whole
/// input and offer every packet to its [`ScanShard`]; records are written to
/// `output` in canonical order on the calling thread. `scan` must offer the
/// same packets in the same order on every thread (the same files, the
/// same filter). Returns the counters and what `scan` returned on each
/// shard, in shard order.
pub fn run<F, T>(
    cfg: &PipelineConfig,
    output: &mut Output,
    scan: F,
) -> Result<(PipelineStats, Vec<T>), SensorError>
where
    F: Fn(&mut ScanShard<'_>) -> T + Sync,
    T: Send,
{
    let n = cfg.workers.max(1);
    let table = cfg.shard_table(n);
    // Made before any thread starts: settings the flow table refuses are
    // an error here.
    let meters = (0..n)
        .map(|_| FlowMeter::new(table.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let stop = AtomicBool::new(false);
    let lockstep = Lockstep::new(n);
    thread::scope(|s| {
        let (out_tx, out_rx) = bounded::<ShardMsg>(n * OUTPUT_DEPTH);
        let mut threads = Vec::with_capacity(n);
        for (shard, meter) in meters.into_iter().enumerate() {
            let mut scanner = ScanShard {
                shard,
                shards: n,
                local: LocalShard {
                    shard,
                    meter,
                    records: Vec::new(),
                    out: out_tx.clone(),
                    final_reason: cfg.final_reason,
                    metrics: cfg.metrics.clone(),
                },
                clock: CaptureClock::new(),
                since_tick: 0,
                ticks: 0,
                undecodable: MeterStats::default(),
                stop: &stop,
                shutdown: &cfg.shutdown,
                lockstep: &lockstep,
                metrics: cfg.metrics.clone(),
            };
            let scan = &scan;
            let handle = thread::Builder::new()
                .name(format!("shard-{shard}"))
                .spawn_scoped(s, move || {
                    let r = scan(&mut scanner);
                    (r, scanner.finish())
                })
                .expect("spawn shard thread");
            threads.push(handle);
        }
        drop(out_tx);
        let (mut stats, failure) = collect_records(out_rx, n, output, &stop);
        let mut scanned = Vec::with_capacity(n);
        for handle in threads {
            let (r, undecodable) = handle.join().expect("shard thread");
            stats.meter.merge(&undecodable);
            scanned.push(r);
        }
        stats.interrupted = cfg.shutdown.load(Ordering::Relaxed);
        if let Some(e) = failure {
            return Err(e);
        }
        output.finish()?;
        stats.records = output.written();
        Ok((stats, scanned))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_shard_ahead_waits_for_the_slowest_and_a_finished_shard_holds_nobody() {
        let lockstep = Lockstep::new(2);
        let (tx, rx) = mpsc::channel();
        thread::scope(|s| {
            let l = &lockstep;
            s.spawn(move || {
                for t in 1..=MAX_LAG_TICKS + 3 {
                    l.arrive(0, t, || false);
                    tx.send(t).unwrap();
                }
            });
            // Shard 1 has not moved: shard 0 gets MAX_LAG_TICKS ahead, no further.
            for t in 1..=MAX_LAG_TICKS {
                assert_eq!(rx.recv().unwrap(), t);
            }
            let early = rx.recv_timeout(Duration::from_millis(300));
            assert!(early.is_err(), "ran ahead: {early:?}");
            // One step of shard 1 lets shard 0 take one more.
            l.arrive(1, 1, || false);
            assert_eq!(rx.recv().unwrap(), MAX_LAG_TICKS + 1);
            assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
            // Once shard 1 is done, nothing holds shard 0.
            l.leave(1);
            assert_eq!(rx.recv().unwrap(), MAX_LAG_TICKS + 2);
            assert_eq!(rx.recv().unwrap(), MAX_LAG_TICKS + 3);
        });
    }

    #[test]
    fn a_stop_releases_a_waiting_shard() {
        let lockstep = Lockstep::new(2);
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let waiter =
                s.spawn(|| lockstep.arrive(0, MAX_LAG_TICKS + 1, || stop.load(Ordering::Relaxed)));
            thread::sleep(Duration::from_millis(100));
            assert!(!waiter.is_finished());
            stop.store(true, Ordering::Relaxed);
            waiter.join().unwrap();
        });
    }
}
