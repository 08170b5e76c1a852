//! Behavioural reasons: evidence that builds up over many connections
//! (fan-out, beaconing, staging then upload, volume ceilings, long
//! sessions). Each tracker keeps bounded state keyed by host or pair.

use super::small_map::{HostBits, SmallMap};
use crate::config::detector::{Beacon, FanOut, Reason, Staging};
use flowlib::{ConnRecord, EndReason, Timestamp};
use hashbrown::hash_map::Entry;
use hashbrown::HashMap;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;

/// Most hosts (sources, pairs) a tracker remembers. A new one that finds
/// the table full makes it forget those whose window is over (see
/// [`SweepGate`]); while the table is still full, it forgets its least
/// useful keys to make room (counted).
const MAX_KEYS: usize = 200_000;

/// When a full table may be swept again for the keys whose window is over,
/// and what it forgets when every key is still live. A sweep is a pass
/// over the whole table: one that frees nothing is not repeated for every
/// new key that finds the table full (which would cost a pass per
/// connection while it stays full), only once capture time has moved on by
/// [`SweepGate::PAUSE`]. Until then a full table evicts the
/// [`SweepGate::EVICT_SHARE`] of its keys that rank lowest (one pass,
/// then room for as many new keys).
struct SweepGate {
    /// Most keys held ([`MAX_KEYS`]; less in tests).
    cap: usize,
    /// No sweep before this time (set by a sweep that freed nothing).
    next: Option<Timestamp>,
    /// Sweeps done.
    sweeps: u64,
    /// Live keys forgotten to make room.
    evicted: u64,
}

impl Default for SweepGate {
    fn default() -> Self {
        SweepGate::with_cap(MAX_KEYS)
    }
}

impl SweepGate {
    /// Capture time between two sweeps of a table that stays full.
    const PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

    /// The share (1 in this many) of a full table's keys an eviction
    /// forgets.
    const EVICT_SHARE: usize = 16;

    /// A gate for a table of at most `cap` keys.
    fn with_cap(cap: usize) -> SweepGate {
        SweepGate {
            cap: cap.max(1),
            next: None,
            sweeps: 0,
            evicted: 0,
        }
    }

    /// Makes a place for `key` in `map` at `now`, if it is not there: if
    /// the map holds [`SweepGate::cap`] keys, a sweep (keeping the entries
    /// `live` says are) or else an eviction of the entries of lowest
    /// `rank` makes room.
    fn make_room<K: Eq + Hash, V, R: Ord + Copy>(
        &mut self,
        map: &mut HashMap<K, V>,
        key: &K,
        now: Timestamp,
        live: impl FnMut(&K, &mut V) -> bool,
        rank: impl Fn(&V) -> R,
    ) {
        if map.len() < self.cap || map.contains_key(key) {
            return;
        }
        if self.next.is_none_or(|next| now >= next) {
            map.retain(live);
            self.sweeps += 1;
            let room = map.len() < self.cap;
            self.next =
                (!room).then(|| Timestamp(now.0.saturating_add(Self::PAUSE.as_nanos() as i64)));
        }
        if map.len() < self.cap {
            return;
        }
        // Every key is live: forget the lowest ranked share of them.
        let n = (map.len() / Self::EVICT_SHARE).max(1);
        let mut ranks: Vec<R> = map.values().map(&rank).collect();
        let (_, &mut bar, _) = ranks.select_nth_unstable(n - 1);
        // Below the bar all go; at the bar, as many as make `n`.
        let below = ranks.iter().filter(|r| **r < bar).count();
        let mut at_bar = n - below;
        map.retain(|_, v| {
            let r = rank(v);
            if r < bar {
                return false;
            }
            if r == bar && at_bar > 0 {
                at_bar -= 1;
                return false;
            }
            true
        });
        self.evicted += n as u64;
    }
}

/// Sources held before the fan-out tracker first forgets the sources
/// whose window is over.
const FIRST_FAN_SWEEP: usize = 4096;

/// Most hosts, and most (host, port) pairs besides each host's first port
/// (held with the host), a source is remembered to have reached in a
/// window. Past them the source's sets stop growing (counted): hosts and
/// ports new to it are not counted in the window.
const MAX_FAN_ENTRIES: usize = crate::config::detector::MAX_FAN_OUT_COUNT as usize;

/// One source reaching many hosts, or many ports on one host, within a
/// window: a sliding window (the hosts and ports reached in the last
/// `window`), not one that starts at the source's first connection, so a
/// sweep is counted whole whenever it starts (a tumbling window opened by
/// an unrelated connection split 30 hosts in 4 minutes into two halves
/// below the threshold).
///
/// Each host and (host, port) is held with the time it was last reached;
/// those not reached for a window are forgotten every
/// [`FAN_PRUNE_SHARE`]th of a window, so a count may include some reached
/// up to a window and that share ago.
///
/// A source's sets stop growing where they can change nothing: a host
/// whose port fan-out is reported forgets its ports and takes no new ones
/// while it is reached (a sweep that goes on costs nothing more, and leaves
/// room for the next host's); and at [`MAX_FAN_ENTRIES`] hosts or
/// (host, port) pairs.
pub(crate) struct FanOutTracker {
    /// Keyed by source and VLAN: tenants may reuse addresses on other VLANs.
    sources: HashMap<(IpAddr, Option<u16>), FanState>,
    /// Size at which sources whose window is over are forgotten.
    next_sweep: usize,
    /// Windows of a source whose sets reached [`MAX_FAN_ENTRIES`].
    saturated: u64,
    /// Sweeps and evictions of the table when it is full.
    full: SweepGate,
}

impl Default for FanOutTracker {
    fn default() -> Self {
        FanOutTracker::with_cap(MAX_KEYS)
    }
}

/// A source forgets the hosts and ports it last reached a window ago
/// every 1/this of a window.
const FAN_PRUNE_SHARE: i64 = 16;

/// A host a source reached in the window.
#[derive(Clone, Copy)]
struct FanHost {
    /// When the source last reached it.
    last: Timestamp,
    /// When the source last reached it on [`FanHost::port`].
    port_last: Timestamp,
    /// Its distinct ports reached in the window.
    ports: u32,
    /// The first port the source reached it on in the window, held here
    /// rather than in [`FanState::ports`] (valid with `has_port`): most
    /// sources reach each host on one port, and then the ports table is
    /// never touched.
    port: u16,
    has_port: bool,
    /// Its port fan-out was reported (while it goes on being reached).
    alerted: bool,
}

impl FanHost {
    /// Notes `port` reached at `ts` if it can be held inline: the first
    /// port of a host with none in the window, or the one held. `None` when
    /// it goes to the ports table (the host has other ports); else whether
    /// it is new.
    fn reach_inline(&mut self, port: u16, ts: Timestamp) -> Option<bool> {
        if self.has_port && self.port == port {
            self.port_last = self.port_last.max(ts);
            Some(false)
        } else if !self.has_port && self.ports == 0 {
            // No port at all in the window (so none in the ports table).
            (self.has_port, self.port, self.port_last) = (true, port, ts);
            Some(true)
        } else {
            None
        }
    }
}

struct FanState {
    /// When hosts and ports older than the window were last forgotten.
    pruned: Timestamp,
    /// The latest connection.
    last: Timestamp,
    /// Hosts reached in the window.
    hosts: SmallMap<HostBits, FanHost>,
    /// Every other (host, port) reached in the window (a host's first
    /// port is in its [`FanHost`]), with when it was last: two flat tables
    /// rather than a set of ports per host (no allocation per host). Most
    /// sources reach a few hosts and ports: short vectors until they grow.
    ports: SmallMap<(HostBits, u16), Timestamp>,
    /// The host fan-out was reported (until the hosts in the window fall
    /// below the threshold).
    alerted_hosts: bool,
    /// The sets reached [`MAX_FAN_ENTRIES`] (until they have room again).
    saturated: bool,
}

impl FanState {
    /// Forgets the hosts and ports last reached before `horizon`, and
    /// counts each host's ports again.
    fn prune(&mut self, now: Timestamp, horizon: i64, min_hosts: u32) {
        self.pruned = now;
        if self.last.0 < horizon {
            // Quiet for a window: nothing is left (a large table's memory
            // goes too).
            self.hosts.clear();
            self.ports.clear();
        }
        // Hosts still in the window, their ports counted again from the
        // (host, port) pairs still in it.
        self.hosts.retain(|_, h| {
            h.has_port &= h.port_last.0 >= horizon;
            h.ports = u32::from(h.has_port);
            h.last.0 >= horizon
        });
        let hosts = &mut self.hosts;
        self.ports.retain(|(host, _), t| {
            t.0 >= horizon && hosts.get_mut(host).map(|h| h.ports += 1).is_some()
        });
        if (self.hosts.len() as u32) < min_hosts {
            self.alerted_hosts = false;
        }
        if self.hosts.len() < MAX_FAN_ENTRIES && self.ports.len() < MAX_FAN_ENTRIES {
            self.saturated = false;
        }
    }
}

impl FanOutTracker {
    /// A tracker of at most `cap` sources.
    pub(crate) fn with_cap(cap: usize) -> FanOutTracker {
        FanOutTracker {
            sources: HashMap::new(),
            next_sweep: FIRST_FAN_SWEEP,
            saturated: 0,
            full: SweepGate::with_cap(cap),
        }
    }

    /// Live sources forgotten to make room for new ones.
    pub(crate) fn evicted(&self) -> u64 {
        self.full.evicted
    }

    /// Windows of a source whose sets reached their cap.
    pub(crate) fn saturated(&self) -> u64 {
        self.saturated
    }

    /// Hosts and (host, port) pairs held, over every source.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        self.sources
            .values()
            .map(|s| {
                let inline = match &s.hosts {
                    SmallMap::Few(v) => v.iter().filter(|(_, h)| h.has_port).count(),
                    SmallMap::Many(m) => m.values().filter(|h| h.has_port).count(),
                };
                s.hosts.len() + inline + s.ports.len()
            })
            .sum()
    }

    /// Notes a new connection; returns a reason when it completes a fan-out.
    pub(crate) fn observe(&mut self, r: &ConnRecord, cfg: &FanOut) -> Option<(Reason, String)> {
        let key = (r.orig_h, r.vlan);
        let window = cfg.window.as_nanos() as i64;
        let horizon = r.ts.0 - window;
        // Sources seen on one (host, port) go first, then the least
        // recently seen.
        self.full.make_room(
            &mut self.sources,
            &key,
            r.ts,
            |_, s| s.last.0 >= horizon,
            |s| (s.hosts.len() > 1 || s.ports.len() > 0, s.last),
        );
        if self.sources.len() >= self.next_sweep && !self.sources.contains_key(&key) {
            // A source that reached nothing in the window would start
            // afresh on its next connection: forgetting it changes nothing
            // but the memory held. Again when doubled.
            self.sources.retain(|_, s| s.last.0 >= horizon);
            self.next_sweep = (2 * self.sources.len()).max(FIRST_FAN_SWEEP);
        }
        let s = self.sources.entry(key).or_insert_with(|| FanState {
            pruned: r.ts,
            last: r.ts,
            hosts: SmallMap::default(),
            ports: SmallMap::default(),
            alerted_hosts: false,
            saturated: false,
        });
        if r.ts.0 - s.pruned.0 >= (window / FAN_PRUNE_SHARE).max(1) {
            s.prune(r.ts, horizon, cfg.min_hosts);
        }
        s.last = s.last.max(r.ts);
        let resp = HostBits::of(r.resp_h);
        let minutes = cfg.window.as_secs() / 60;
        let fresh = FanHost {
            last: r.ts,
            port_last: r.ts,
            ports: 0,
            port: 0,
            has_port: false,
            alerted: false,
        };
        // A host new to the source is counted while there is room (after
        // the host fan-out too: each host's port sweep is still its own
        // finding).
        let host = if s.hosts.len() < MAX_FAN_ENTRIES {
            Some(s.hosts.entry_or_insert_with(resp, || fresh).0)
        } else {
            s.hosts.get_mut(&resp)
        };
        if host.is_none() && !s.saturated {
            s.saturated = true;
            self.saturated += 1;
        }
        if let Some(host) = host {
            host.last = host.last.max(r.ts);
            // Ports on a host whose port fan-out is reported change nothing.
            if !host.alerted {
                if let Some(new) = host.reach_inline(r.resp_p, r.ts) {
                    host.ports += u32::from(new);
                } else {
                    let pair = (resp, r.resp_p);
                    let seen = if s.ports.len() < MAX_FAN_ENTRIES {
                        let (seen, new) = s.ports.entry_or_insert_with(pair, || r.ts);
                        host.ports += u32::from(new);
                        Some(seen)
                    } else {
                        s.ports.get_mut(&pair)
                    };
                    if let Some(seen) = seen {
                        *seen = (*seen).max(r.ts);
                    } else if !s.saturated {
                        s.saturated = true;
                        self.saturated += 1;
                    }
                }
                if host.ports >= cfg.min_ports {
                    host.alerted = true;
                    host.has_port = false;
                    let ports = host.ports;
                    // Its ports change nothing more: room for other hosts'.
                    s.ports.retain(|(host, _), _| *host != resp);
                    return Some((
                        Reason::FanOut,
                        format!(
                            "{} tried {} ports on {} within {} min",
                            r.orig_h, ports, r.resp_h, minutes
                        ),
                    ));
                }
            }
        }
        if s.hosts.len() as u32 >= cfg.min_hosts && !s.alerted_hosts {
            s.alerted_hosts = true;
            return Some((
                Reason::FanOut,
                format!(
                    "{} reached {} hosts within {} min",
                    r.orig_h,
                    s.hosts.len(),
                    minutes
                ),
            ));
        }
        None
    }
}

/// RITA-style beacon scoring per (source, destination, port, protocol).
///
/// Pairs are held by a 64-bit fingerprint of their [`PairKey`] (foldhash,
/// seeded at random for each tracker): a key takes 8 bytes instead of 40,
/// and an entry of a pair seen once 24 bytes in all, so a day of pairs
/// (hundreds of thousands, most seen once) takes little memory and cache. Two pairs share a fingerprint with a probability of
/// about n²/2⁶⁵ for n pairs (about 10⁻⁹ for 200 000); with the seed
/// unknown outside the process, colliding pairs cannot be chosen in advance.
pub(crate) struct BeaconTracker {
    pairs: HashMap<u64, PairHistory>,
    /// Series scored.
    #[cfg(test)]
    scored: u64,
    /// Seeds the fingerprints.
    fingerprint: hashbrown::DefaultHashBuilder,
    /// Sweeps and evictions of the table when it is full.
    full: SweepGate,
}

impl Default for BeaconTracker {
    fn default() -> Self {
        BeaconTracker::with_cap(MAX_KEYS)
    }
}

/// A (source, destination, port, protocol, VLAN) packed into 38 bytes
/// (a tuple of `IpAddr`s takes 42 and aligns the entry to 8 less well):
/// the addresses as 16 bytes each (IPv4 in the first 4), and flags for
/// which is IPv6 and whether there is a VLAN.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct PairKey {
    orig: [u8; 16],
    resp: [u8; 16],
    port: u16,
    vlan: u16,
    proto: u8,
    /// Bit 0: `orig` is IPv6; bit 1: `resp` is IPv6; bit 2: tagged.
    flags: u8,
}

impl PairKey {
    fn of(r: &ConnRecord) -> PairKey {
        let bytes = |a: IpAddr| match a {
            IpAddr::V4(v4) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&v4.octets());
                (b, 0u8)
            }
            IpAddr::V6(v6) => (v6.octets(), 1u8),
        };
        let ((orig, o6), (resp, r6)) = (bytes(r.orig_h), bytes(r.resp_h));
        PairKey {
            orig,
            resp,
            port: r.resp_p,
            vlan: r.vlan.unwrap_or(0),
            proto: r.ip_proto,
            flags: o6 | r6 << 1 | u8::from(r.vlan.is_some()) << 2,
        }
    }
}

/// What a pair has seen. Most pairs see one connection: it is held
/// inline (16 bytes an entry), and a series is allocated only for pairs
/// seen again, and freed when the pair is reported.
enum PairHistory {
    /// The pair's only connection so far: (start in milliseconds since
    /// the epoch, bytes up to `u32::MAX`).
    One(i64, u32),
    /// Every connection in the window.
    Many(Box<Series>),
    /// Reported as a beacon: the latest start (milliseconds). While the
    /// pair is held it is not reported again.
    Beaconed(i64),
}

/// Connections of a pair in the window, oldest first, at most
/// [`MAX_BEACON_POINTS`]: each as its start in milliseconds after `base`
/// and its bytes up to `u32::MAX` (8 bytes a connection).
struct Series {
    base: i64,
    starts: VecDeque<(u32, u32)>,
    /// Connections added, those since gone included.
    added: u32,
    /// `added` when the series was last scored (0: never).
    scored_at: u32,
}

impl Series {
    /// A series of no connection yet, from `base` (milliseconds).
    fn empty(base: i64) -> Series {
        Series {
            base,
            starts: VecDeque::new(),
            added: 0,
            scored_at: 0,
        }
    }

    /// The latest start (milliseconds).
    fn last(&self) -> i64 {
        self.starts
            .back()
            .map_or(self.base, |s| self.base + i64::from(s.0))
    }

    /// The offset of `t` (milliseconds) from the base, moving the base
    /// (and every offset) when `t` is before it or too far after it for 32
    /// bits; connections 2³² ms (49 days) older than the newest go. `None`
    /// for a connection that old.
    fn offset(&mut self, t: i64) -> Option<u32> {
        const SPAN: i64 = u32::MAX as i64;
        if t < self.base {
            let shift = self.base - t;
            let newest = self.starts.back().map_or(0, |s| i64::from(s.0));
            if newest + shift > SPAN {
                return None;
            }
            for s in &mut self.starts {
                s.0 += shift as u32;
            }
            self.base = t;
        } else if t - self.base > SPAN {
            while self
                .starts
                .front()
                .is_some_and(|s| t - (self.base + i64::from(s.0)) > SPAN)
            {
                self.starts.pop_front();
            }
            let shift = self
                .starts
                .front()
                .map_or(t - self.base, |s| i64::from(s.0));
            for s in &mut self.starts {
                s.0 -= shift as u32;
            }
            self.base += shift;
        }
        Some((t - self.base) as u32)
    }

    /// Adds a connection that started at `t` (milliseconds) with `bytes`,
    /// in start order, keeping the latest [`MAX_BEACON_POINTS`] and none
    /// that started more than `window` milliseconds before the latest.
    fn add(&mut self, t: i64, bytes: u32, window: i64) {
        self.added = self.added.saturating_add(1);
        let Some(t) = self.offset(t) else {
            return;
        };
        // Records finish in their end order: a connection that ran long
        // comes after shorter ones that started later. The series is kept
        // in start order (most records go at the end).
        let mut at = self.starts.len() - self.starts.iter().rev().take_while(|s| s.0 > t).count();
        if self.starts.len() >= MAX_BEACON_POINTS {
            // Full: the oldest goes first (never above the cap, so the
            // queue never grows past it), unless the new one is the oldest.
            if at == 0 {
                return;
            }
            self.starts.pop_front();
            at -= 1;
        }
        self.starts.insert(at, (t, bytes));
        let latest = self.starts.back().map_or(t, |s| s.0);
        while self
            .starts
            .front()
            .is_some_and(|s| i64::from(latest - s.0) > window)
        {
            self.starts.pop_front();
        }
    }

    /// The connections as (start in seconds after the base, bytes).
    fn points(&self) -> Vec<(f64, u64)> {
        self.starts
            .iter()
            .map(|&(t, b)| (f64::from(t) / 1e3, u64::from(b)))
            .collect()
    }
}

impl PairHistory {
    /// The latest connection's start (milliseconds).
    fn last(&self) -> i64 {
        match self {
            PairHistory::One(t, _) | PairHistory::Beaconed(t) => *t,
            PairHistory::Many(s) => s.last(),
        }
    }

    /// How useful the pair is to keep when the table is full: one
    /// connection least, a series building up most.
    fn rank(&self) -> u8 {
        match self {
            PairHistory::One(..) => 0,
            PairHistory::Beaconed(_) => 1,
            PairHistory::Many(_) => 2,
        }
    }
}

/// Longest history kept per pair.
const MAX_BEACON_POINTS: usize = crate::config::detector::MAX_BEACON_CONNECTIONS as usize;

fn quartiles(sorted: &[f64]) -> (f64, f64, f64) {
    let q = |p: f64| {
        let idx = p * (sorted.len() - 1) as f64;
        let (lo, hi) = (idx.floor() as usize, idx.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (idx - lo as f64)
    };
    (q(0.25), q(0.5), q(0.75))
}

/// Bowley skew and median absolute deviation of `values`. A spread within
/// 5% of the median has no meaningful skew (a few discrete jitter values
/// would otherwise give the extreme skew of +-1).
fn skew_and_madm(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let (q1, q2, q3) = quartiles(values);
    let bowley = if q3 - q1 > (0.05 * q2.abs()).max(f64::EPSILON) {
        (q3 + q1 - 2.0 * q2) / (q3 - q1)
    } else {
        0.0
    };
    let mut dev: Vec<f64> = values.iter().map(|v| (v - q2).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let (_, madm, _) = quartiles(&dev);
    (bowley, madm)
}

/// Starts closer than this to the previous one count as one check-in:
/// connections opened together (a page's parallel fetches, a client's
/// retries) are one event in time, not a period of zero.
const SAME_CHECK_IN: f64 = 1.0;

/// The times of the distinct check-ins among connection start times, in
/// order: a start within [`SAME_CHECK_IN`] of the previous check-in joins
/// it (as RITA scores unique timestamps).
fn check_ins(starts: &[(f64, u64)]) -> Vec<f64> {
    let mut times: Vec<f64> = starts.iter().map(|s| s.0).collect();
    times.sort_by(f64::total_cmp);
    let mut kept: Vec<f64> = Vec::with_capacity(times.len());
    for t in times {
        if kept.last().is_none_or(|last| t - last >= SAME_CHECK_IN) {
            kept.push(t);
        }
    }
    kept
}

/// The beacon score (0-1) of connection start times and sizes: timing and
/// size regularity, as RITA scores them (skew and dispersion of the
/// intervals between distinct check-ins; skew, dispersion and smallness of
/// the sizes), each dispersion relative to its median (the intervals' to
/// half the period, the sizes' to 10 % of the size, at least 32 bytes).
/// The starts may come in any order; fewer than 4 distinct check-ins
/// (starts at least a second apart) score 0.
pub fn beacon_score(starts: &[(f64, u64)]) -> f64 {
    let check_ins = check_ins(starts);
    if check_ins.len() < 4 {
        return 0.0;
    }
    let mut intervals: Vec<f64> = check_ins.windows(2).map(|w| w[1] - w[0]).collect();
    let (ts_skew, ts_madm) = skew_and_madm(&mut intervals);
    let (_, median_interval, _) = quartiles(&intervals);
    // Dispersion relative to the period (RITA uses an absolute 30 s, which
    // rates any slow, jittery series as regular); a symmetric but wide
    // spread of intervals is not a beacon, so dispersion weighs most.
    let dispersion = (1.0 - ts_madm / (median_interval * 0.5).max(1.0)).max(0.0);
    let ts_score = 0.25 * (1.0 - ts_skew.abs()) + 0.75 * dispersion;
    let mut sizes: Vec<f64> = starts.iter().map(|s| s.1 as f64).collect();
    let (ds_skew, ds_madm) = skew_and_madm(&mut sizes);
    let (_, median_size, _) = quartiles(&sizes);
    let smallness = (1.0 - median_size / 65_535.0).max(0.0);
    // Size dispersion relative to the median size too (RITA's absolute
    // 32 bytes rates any check-in over TLS, whose handshake alone varies
    // by a few hundred bytes, as irregular): within 10 % of it, at least
    // 32 bytes.
    let size_spread = (0.1 * median_size).max(32.0);
    let ds_score =
        ((1.0 - ds_skew.abs()) + (1.0 - ds_madm / size_spread).max(0.0) + smallness) / 3.0;
    (ts_score + ds_score) / 2.0
}

impl BeaconTracker {
    /// A tracker of at most `cap` pairs.
    pub(crate) fn with_cap(cap: usize) -> BeaconTracker {
        BeaconTracker {
            pairs: HashMap::new(),
            #[cfg(test)]
            scored: 0,
            fingerprint: hashbrown::DefaultHashBuilder::default(),
            full: SweepGate::with_cap(cap),
        }
    }

    /// Live pairs forgotten to make room for new ones.
    pub(crate) fn evicted(&self) -> u64 {
        self.full.evicted
    }

    /// Notes a finished connection; returns a reason when its pair beacons.
    pub(crate) fn observe(&mut self, r: &ConnRecord, cfg: &Beacon) -> Option<(Reason, String)> {
        let key = self.fingerprint.hash_one(PairKey::of(r));
        let now = r.ts.0.div_euclid(1_000_000);
        let window = i64::try_from(cfg.window.as_millis()).unwrap_or(i64::MAX);
        let horizon = now.saturating_sub(window);
        // Pairs seen once go first, then those reported, then the least
        // recently seen.
        self.full.make_room(
            &mut self.pairs,
            &key,
            r.ts,
            |_, p| p.last() >= horizon,
            |p| (p.rank(), p.last()),
        );
        let bytes = r.orig_bytes.unwrap_or(0) + r.resp_bytes.unwrap_or(0);
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let p = match self.pairs.entry(key) {
            Entry::Vacant(v) => {
                if cfg.min_connections > 1 {
                    // A new pair: too little evidence to score, nothing to trim.
                    v.insert(PairHistory::One(now, bytes));
                    return None;
                }
                v.insert(PairHistory::Many(Box::new(Series::empty(now))))
            }
            Entry::Occupied(o) => o.into_mut(),
        };
        match *p {
            PairHistory::Beaconed(last) => {
                *p = PairHistory::Beaconed(last.max(now));
                return None;
            }
            PairHistory::One(t, b) => {
                let mut series = Box::new(Series::empty(t));
                series.add(t, b, window);
                *p = PairHistory::Many(series);
            }
            PairHistory::Many(_) => {}
        }
        let PairHistory::Many(series) = p else {
            return None;
        };
        series.add(now, bytes, window);
        if (series.starts.len() as u32) < cfg.min_connections {
            return None;
        }
        // Scoring sorts the history: do it when the evidence first suffices
        // and then every 8 connections added, not on every one (counted as
        // they come: a series at its cap, or as long as its window, keeps
        // its length).
        if series.scored_at != 0 && series.added.saturating_sub(series.scored_at) < 8 {
            return None;
        }
        series.scored_at = series.added;
        // Regularity is judged on distinct check-ins: connections opened
        // together (parallel fetches, retries) are one event, so a few
        // bursts of them are too few intervals to judge.
        let points = series.points();
        let check_ins = check_ins(&points);
        if (check_ins.len() as u32) < cfg.min_connections {
            return None;
        }
        #[cfg(test)]
        {
            self.scored += 1;
        }
        let score = beacon_score(&points);
        if score < cfg.min_score {
            return None;
        }
        // Reported: the series is of no more use.
        *p = PairHistory::Beaconed(series.last());
        // The median interval (a check-in whose record is still to come
        // leaves one gap of two periods, which the mean would count).
        // beacon_score found at least 4 check-ins.
        let mut intervals: Vec<f64> = check_ins.windows(2).map(|w| w[1] - w[0]).collect();
        intervals.sort_by(f64::total_cmp);
        let (_, every, _) = quartiles(&intervals);
        Some((
            Reason::Beacon,
            format!(
                "{} connections to {}:{} about every {:.0} s (beacon score {:.2})",
                points.len(),
                r.resp_h,
                r.resp_p,
                every,
                score
            ),
        ))
    }
}

/// A host that pulls large volumes from internal hosts, then uploads a
/// comparable amount out of its enclave.
pub(crate) struct StagingTracker {
    /// Keyed by host and VLAN.
    hosts: HashMap<(IpAddr, Option<u16>), Pulled>,
    /// Pulls from a source not remembered, the sources being full.
    sources_rejected: u64,
    /// Sweeps and evictions of the table when it is full.
    full: SweepGate,
}

impl Default for StagingTracker {
    fn default() -> Self {
        StagingTracker::with_cap(MAX_KEYS)
    }
}

/// Slices a staging window is cut into: what a host pulled is summed per
/// slice, and the window at a time is the slice of that time and the
/// slices before it, as many as make [`STAGING_SLICES`] (so it spans from
/// 7/8 of the window to the whole of it).
const STAGING_SLICES: usize = 8;

/// Most internal hosts a host is remembered to have pulled from in a
/// window; pulls from more are counted as bytes only.
const MAX_STAGING_SOURCES: usize = 64;

/// Bytes summed per slice of a staging window, of each slice at its
/// number modulo [`STAGING_SLICES`]: its first transfer, the bytes and the
/// connections (no bytes: an empty slot).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlicedBytes([(Timestamp, u64, u32); STAGING_SLICES]);

impl SlicedBytes {
    pub(crate) fn new(ts: Timestamp) -> SlicedBytes {
        SlicedBytes([(ts, 0, 0); STAGING_SLICES])
    }

    /// Adds `bytes` at `ts` (slices `slice` ns long); false if `ts` is a
    /// window or more older than a slice already counted (its window is
    /// over: not added).
    pub(crate) fn add(&mut self, ts: Timestamp, bytes: u64, slice: i64) -> bool {
        let n = ts.0.div_euclid(slice);
        let slot = &mut self.0[n.rem_euclid(STAGING_SLICES as i64) as usize];
        match slot.0 .0.div_euclid(slice).cmp(&n) {
            std::cmp::Ordering::Equal if slot.1 > 0 => {
                slot.0 = slot.0.min(ts);
                slot.1 = slot.1.saturating_add(bytes);
                slot.2 = slot.2.saturating_add(1);
            }
            std::cmp::Ordering::Greater if slot.1 > 0 => return false,
            // Empty, or a slice whose window is over.
            _ => *slot = (ts, bytes, 1),
        }
        true
    }

    /// The bytes and connections in the window ending in the slice of
    /// `ts` (and after it), and the first transfer among them (`since`
    /// if none is earlier).
    pub(crate) fn in_window(
        &self,
        ts: Timestamp,
        slice: i64,
        since: Timestamp,
    ) -> (u64, u32, Timestamp) {
        let now = ts.0.div_euclid(slice);
        self.0
            .iter()
            .filter(|(first, bytes, _)| {
                *bytes > 0 && first.0.div_euclid(slice) > now - STAGING_SLICES as i64
            })
            .fold((0, 0, since), |(sum, conns, first), (f, bytes, n)| {
                (
                    sum.saturating_add(*bytes),
                    conns.saturating_add(*n),
                    first.min(*f),
                )
            })
    }
}

struct Pulled {
    /// What the host pulled from internal hosts.
    pulled: SlicedBytes,
    /// What it uploaded out of its enclave while it held a staged
    /// collection (pulled at least the threshold in the window): a
    /// collection may leave in several connections. Allocated on such a
    /// host's first upload: most hosts never hold one, and a table entry
    /// without it is 200 bytes smaller (less to move when the table grows).
    uploaded: Option<Box<SlicedBytes>>,
    /// The latest pull.
    last: Timestamp,
    /// The most pulled within one window (its bytes, its latest pull, its
    /// first pull), held for the staging hold so a later upload is
    /// compared with it.
    peak: (u64, Timestamp, Timestamp),
    /// Each internal host pulled from, with the time of the latest pull.
    sources: SmallMap<HostBits, Timestamp>,
    /// No time in `sources` is older than this: a full list is swept for
    /// sources out of the window only when one can be (a sweep for every
    /// new source of a host pulled from by more than the list holds was
    /// 5% of the detector's time on the benchmark).
    sources_oldest: Timestamp,
    /// The latest pull from a host not remembered, the sources being full.
    unlisted: Option<Timestamp>,
}

impl Pulled {
    fn new(ts: Timestamp) -> Pulled {
        Pulled {
            pulled: SlicedBytes::new(ts),
            uploaded: None,
            last: ts,
            peak: (0, ts, ts),
            sources: SmallMap::default(),
            sources_oldest: ts,
            unlisted: None,
        }
    }
}

/// How long a staged collection is held: the staging hold, at least the
/// window.
fn hold(cfg: &Staging) -> std::time::Duration {
    cfg.hold.max(cfg.window)
}

/// The length of a staging window's slices, in nanoseconds.
pub(crate) fn staging_slice(cfg: &Staging) -> i64 {
    (cfg.window.as_nanos() as i64 / STAGING_SLICES as i64).max(1)
}

impl StagingTracker {
    /// A tracker of at most `cap` hosts.
    pub(crate) fn with_cap(cap: usize) -> StagingTracker {
        StagingTracker {
            hosts: HashMap::new(),
            sources_rejected: 0,
            full: SweepGate::with_cap(cap),
        }
    }

    /// Live hosts forgotten to make room for new ones.
    pub(crate) fn evicted(&self) -> u64 {
        self.full.evicted
    }

    /// Pulls from an internal host not remembered, the host's sources in
    /// the window being full.
    pub(crate) fn sources_rejected(&self) -> u64 {
        self.sources_rejected
    }

    /// `host` received `bytes` from internal host `from` (a download it
    /// made, or a push to it).
    pub(crate) fn pulled(
        &mut self,
        host: (IpAddr, Option<u16>),
        from: IpAddr,
        bytes: u64,
        ts: Timestamp,
        cfg: &Staging,
    ) {
        if bytes == 0 {
            return;
        }
        // The hosts that pulled least recently go first.
        self.full.make_room(
            &mut self.hosts,
            &host,
            ts,
            |_, p| ts.since(p.last) <= hold(cfg),
            |p| p.last,
        );
        let p = self.hosts.entry(host).or_insert_with(|| Pulled::new(ts));
        let slice = staging_slice(cfg);
        if !p.pulled.add(ts, bytes, slice) {
            return;
        }
        p.last = p.last.max(ts);
        let (in_window, _, first) = p.pulled.in_window(ts, slice, ts);
        if in_window >= p.peak.0 || ts.since(p.peak.1) > hold(cfg) {
            p.peak = (in_window, ts, first);
        }
        let from = HostBits::of(from);
        if let Some(seen) = p.sources.get_mut(&from) {
            *seen = (*seen).max(ts);
            return;
        }
        if p.sources.len() >= MAX_STAGING_SOURCES && ts.since(p.sources_oldest) > cfg.window {
            let mut oldest = ts;
            p.sources.retain(|_, seen| {
                let keep = ts.since(*seen) <= cfg.window;
                if keep {
                    oldest = oldest.min(*seen);
                }
                keep
            });
            p.sources_oldest = oldest;
        }
        if p.sources.len() < MAX_STAGING_SOURCES {
            p.sources.insert_new(from, ts);
            p.sources_oldest = p.sources_oldest.min(ts);
        } else {
            p.unlisted = Some(p.unlisted.map_or(ts, |u| u.max(ts)));
            self.sources_rejected += 1;
        }
    }

    /// `host` uploaded `bytes` out of its enclave at `ts`: staging if it
    /// pulled at least `threshold()` bytes (asked only of a host that
    /// pulled) within one window, this one or one ended less than the
    /// staging hold ago, and what it uploaded since (in the window, this
    /// connection included) is comparable.
    pub(crate) fn uploaded(
        &mut self,
        host: (IpAddr, Option<u16>),
        bytes: u64,
        ts: Timestamp,
        cfg: &Staging,
        threshold: impl FnOnce() -> u64,
    ) -> Option<(Reason, String)> {
        let p = self.hosts.get_mut(&host)?;
        let threshold = threshold();
        let slice = staging_slice(cfg);
        let (mut pulled, _, mut first) = p.pulled.in_window(ts, slice, p.last);
        let (mut last, mut keep) = (p.last, cfg.window);
        if pulled < threshold && p.peak.0 >= threshold && ts.since(p.peak.1) <= hold(cfg) {
            // Collected more than a window ago, still held.
            (pulled, last, first) = p.peak;
            keep = hold(cfg);
        }
        // Only uploads made while the host holds a staged collection count.
        if bytes == 0 || pulled < threshold {
            return None;
        }
        let uploaded = p
            .uploaded
            .get_or_insert_with(|| Box::new(SlicedBytes::new(ts)));
        if !uploaded.add(ts, bytes, slice) {
            return None;
        }
        let (sent, uploads, _) = uploaded.in_window(ts, slice, ts);
        if (sent as f64) < cfg.upload_ratio * pulled as f64 {
            return None;
        }
        let recent = |seen: Timestamp| ts.since(seen) <= keep;
        p.sources.retain(|_, seen| recent(*seen));
        let more = if p.unlisted.is_some_and(recent) {
            "more than "
        } else {
            ""
        };
        let detail = format!(
            "{} pulled {} bytes from {}{} internal host(s) in {} s, then uploaded {} bytes in {} connection(s)",
            host.0,
            pulled,
            more,
            p.sources.len(),
            last.since(first).as_secs(),
            sent,
            uploads
        );
        self.hosts.remove(&host);
        Some((Reason::Staging, detail))
    }
}

/// The long sessions already reported, by uid, while they run: a
/// connection is reported as long once, on the first record that finds
/// it long (interim records of a running connection follow one another
/// for as long as it runs), and forgotten on its final record.
///
/// Uids are held by a 64-bit fingerprint (seeded at random for each
/// tracker, as [`BeaconTracker`] holds pairs), with the time of their
/// latest record.
pub(crate) struct LongSessions {
    running: HashMap<u64, Timestamp>,
    /// Seeds the fingerprints.
    fingerprint: hashbrown::DefaultHashBuilder,
    /// Evictions of the table when it is full.
    full: SweepGate,
}

impl Default for LongSessions {
    fn default() -> Self {
        LongSessions::with_cap(MAX_KEYS)
    }
}

impl LongSessions {
    /// A tracker of at most `cap` running sessions.
    pub(crate) fn with_cap(cap: usize) -> LongSessions {
        LongSessions {
            running: HashMap::new(),
            fingerprint: hashbrown::DefaultHashBuilder::default(),
            full: SweepGate::with_cap(cap),
        }
    }

    /// Running sessions forgotten to make room for new ones (a later
    /// record of one reports it again).
    pub(crate) fn evicted(&self) -> u64 {
        self.full.evicted
    }

    /// Sessions held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    /// A record `r` of a long connection: whether it is the first found
    /// long (to report). Interim records keep the connection in mind, its
    /// final record forgets it.
    pub(crate) fn first(&mut self, r: &ConnRecord) -> bool {
        let key = self.fingerprint.hash_one(r.uid.as_str());
        if r.end_reason != EndReason::Active {
            return self.running.remove(&key).is_none();
        }
        // Only a final record ends a session: the least recently seen go
        // first when full.
        self.full
            .make_room(&mut self.running, &key, r.ts, |_, _| true, |last| *last);
        self.running.insert(key, r.emitted.max(r.ts)).is_none()
    }
}

/// Bytes per relationship per day, against its ceiling.
#[derive(Default)]
pub(crate) struct VolumeLedger {
    days: HashMap<(usize, i64), (u64, bool)>,
}

/// Which day a connection's bytes count for, against a daily ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CeilingDay {
    /// A local calendar day (days since 1970-01-01): the relationship has
    /// no windows.
    Calendar(i64),
    /// The local day its window opened: a window that runs past midnight
    /// is one night, whichever side of midnight a connection starts.
    WindowOpened(i64),
}

impl VolumeLedger {
    /// Adds a finished connection's bytes to relationship `rel`, on `day`;
    /// returns a reason the first time the day's total passes `ceiling`.
    pub(crate) fn add(
        &mut self,
        rel: usize,
        name: &str,
        ceiling: u64,
        day: CeilingDay,
        r: &ConnRecord,
    ) -> Option<(Reason, String)> {
        let n = match day {
            CeilingDay::Calendar(n) | CeilingDay::WindowOpened(n) => n,
        };
        if self.days.len() > MAX_KEYS {
            self.days.retain(|k, _| k.1 >= n - 1);
        }
        let e = self.days.entry((rel, n)).or_insert((0, false));
        e.0 += r.orig_bytes.unwrap_or(0) + r.resp_bytes.unwrap_or(0);
        if e.0 > ceiling && !e.1 {
            e.1 = true;
            // 719 163 days from 0001-01-01 to 1970-01-01.
            let date = i32::try_from(n + 719_163)
                .ok()
                .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
                .map_or_else(|| format!("day {n}"), |d| d.to_string());
            let when = match day {
                CeilingDay::Calendar(_) => format!("on {date}"),
                CeilingDay::WindowOpened(_) => format!("in its window opened on {date}"),
            };
            return Some((
                Reason::OverVolume,
                format!(
                    "{} carried {} bytes {when}, above its daily ceiling of {}",
                    name, e.0, ceiling
                ),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_from(i: u32, dst: u8, secs: i64) -> ConnRecord {
        let ts = Timestamp::from_micros(1_772_409_600 + secs, 0);
        let orig = std::net::Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8);
        let resp = std::net::Ipv4Addr::new(10, 0, 0, dst);
        crate::detector::tests::tcp_start(format!("C{i}"), orig, resp, 22, ts)
    }

    #[test]
    fn fan_out_forgets_sources_whose_window_is_over_and_still_counts_the_live_ones() {
        let cfg = FanOut {
            window: std::time::Duration::from_secs(300),
            min_hosts: 5,
            min_ports: 100,
        };
        let mut t = FanOutTracker::default();
        // Source 0 reaches 4 hosts at 00:00..00:03, then 10 000 other
        // sources one connection each, a minute apart in blocks of 1000.
        for dst in 1..=4 {
            assert!(t
                .observe(&start_from(0, dst, i64::from(dst)), &cfg)
                .is_none());
        }
        for i in 1..=10_000u32 {
            let secs = 10 + i64::from(i / 1000) * 60;
            assert!(t.observe(&start_from(i, 1, secs), &cfg).is_none());
        }
        // The sweep at 8 192 sources (08:10) forgot the 3 000 whose window
        // was over, source 0 among them: 7 001 held, not 10 001.
        assert_eq!(t.sources.len(), 7001);
        let zero = (start_from(0, 1, 0).orig_h, None);
        assert!(!t.sources.contains_key(&zero));
        // Source 0's window (00:00-00:05) is over: its fifth host at 00:10
        // starts a new window, as it would have without the sweeps...
        assert!(t.observe(&start_from(0, 5, 600), &cfg).is_none());
        // ...and five hosts within the new window are a fan-out.
        for dst in 6..=9 {
            let hit = t.observe(&start_from(0, dst, 600 + i64::from(dst)), &cfg);
            assert_eq!(hit.is_some(), dst == 9, "host {dst}");
        }
    }

    #[test]
    fn a_hosts_ports_are_counted_once_whether_held_inline_or_in_the_ports_table() {
        let cfg = FanOut {
            window: std::time::Duration::from_secs(300),
            min_hosts: 100,
            min_ports: 3,
        };
        let mut t = FanOutTracker::default();
        let at = |port: u16, secs: i64| {
            let ts = Timestamp::from_micros(1_772_409_600 + secs, 0);
            let orig = std::net::Ipv4Addr::new(10, 1, 0, 1);
            let resp = std::net::Ipv4Addr::new(10, 0, 0, 1);
            crate::detector::tests::tcp_start(format!("C{secs}"), orig, resp, port, ts)
        };
        // Port 22 first (held inline), 80 later (in the ports table).
        assert!(t.observe(&at(22, 0), &cfg).is_none());
        assert!(t.observe(&at(80, 200), &cfg).is_none());
        // At 05:20 port 22 has left the window and 80 has not: 80 again
        // is one port in the window, not a new one...
        assert!(t.observe(&at(80, 320), &cfg).is_none());
        // ...so 443 makes two, and 22 again three.
        assert!(t.observe(&at(443, 321), &cfg).is_none());
        let (reason, text) = t.observe(&at(22, 322), &cfg).expect("three ports");
        assert_eq!(reason, Reason::FanOut);
        assert_eq!(text, "10.1.0.1 tried 3 ports on 10.0.0.1 within 5 min");
        // Reported: its ports are forgotten, inline or not.
        assert_eq!(t.entries(), 1);
    }

    /// The `n`-th of many distinct addresses.
    fn host(n: u32) -> IpAddr {
        std::net::Ipv4Addr::from(0x0a00_0000 | n).into()
    }

    #[test]
    fn a_full_table_of_live_keys_is_swept_once_a_second_and_evicts_to_make_room() {
        let t0 = 1_772_409_600;
        let at = |s: i64| Timestamp::from_micros(t0 + s, 0);
        let conn = |i: u32, s: i64| {
            crate::detector::tests::tcp_start(
                format!("C{i}"),
                std::net::Ipv4Addr::from(0x0a00_0000 | i),
                std::net::Ipv4Addr::new(192, 0, 2, 1),
                443,
                at(s),
            )
        };
        let cap = 1000;
        let full = cap as u32;

        // Beacon pairs: a table of 1000 live pairs (in their window), then
        // 5 000 new ones in the same second and 5 000 a second later: one
        // sweep a second, and every new pair finds room.
        let mut beacons = BeaconTracker::with_cap(cap);
        let cfg = Beacon::default();
        for i in 0..full {
            assert!(beacons.observe(&conn(i, 0), &cfg).is_none());
        }
        assert_eq!(beacons.evicted(), 0);
        for i in full..full + 5_000 {
            beacons.observe(&conn(i, 0), &cfg);
        }
        assert_eq!(beacons.full.sweeps, 1, "one sweep for 5 000 new pairs");
        for i in full + 5_000..full + 10_000 {
            beacons.observe(&conn(i, 1), &cfg);
        }
        assert_eq!(beacons.full.sweeps, 2, "and one more a second later");
        assert!(beacons.pairs.len() <= cap);
        assert_eq!(
            beacons.pairs.len() as u64 + beacons.evicted(),
            u64::from(full + 10_000),
            "every pair is held or counted as evicted"
        );
        // The newest pair is held.
        let newest = beacons
            .fingerprint
            .hash_one(PairKey::of(&conn(full + 9_999, 1)));
        assert!(beacons.pairs.contains_key(&newest));
        // A sweep that frees room lets the next pair in without eviction.
        let evicted = beacons.evicted();
        while beacons.pairs.len() < cap {
            let i = full + 10_000 + beacons.pairs.len() as u32;
            beacons.observe(&conn(i, 1), &cfg);
        }
        // A window after them, every pair is over.
        let later = conn(full + 20_000, cfg.window.as_secs() as i64 + 2);
        beacons.observe(&later, &cfg);
        assert_eq!(beacons.full.sweeps, 3);
        assert_eq!(beacons.pairs.len(), 1);
        assert_eq!(beacons.evicted(), evicted);

        // Fan-out sources: the same.
        let mut fan = FanOutTracker::with_cap(cap);
        let fan_cfg = FanOut {
            window: std::time::Duration::from_secs(300),
            min_hosts: 5,
            min_ports: 100,
        };
        for i in 0..full + 5_000 {
            fan.observe(&conn(i, 0), &fan_cfg);
        }
        assert_eq!(fan.full.sweeps, 1);
        for i in full + 5_000..full + 10_000 {
            fan.observe(&conn(i, 1), &fan_cfg);
        }
        assert_eq!(fan.full.sweeps, 2);
        assert!(fan.sources.len() <= cap);
        assert_eq!(
            fan.sources.len() as u64 + fan.evicted(),
            u64::from(full + 10_000)
        );

        // Staging hosts: the same.
        let mut staging = StagingTracker::with_cap(cap);
        let staging_cfg = Staging::default();
        for i in 0..full + 5_000 {
            staging.pulled((host(i), None), host(1), 1_000, at(0), &staging_cfg);
        }
        assert_eq!(staging.full.sweeps, 1);
        for i in full + 5_000..full + 10_000 {
            staging.pulled((host(i), None), host(1), 1_000, at(1), &staging_cfg);
        }
        assert_eq!(staging.full.sweeps, 2);
        assert!(staging.hosts.len() <= cap);
        assert_eq!(
            staging.hosts.len() as u64 + staging.evicted(),
            u64::from(full + 10_000)
        );
    }

    #[test]
    fn a_beacon_is_scored_as_soon_as_its_window_holds_enough_connections() {
        // Ten check-ins, a window and more of silence (they leave it), then
        // a steady one a minute: found at the 20th of those, the first
        // moment the window holds 20 (not at the next multiple of 8 added).
        let cfg = Beacon::default();
        let mut t = BeaconTracker::default();
        let t0 = 1_772_409_600;
        let conn = |t: &mut BeaconTracker, secs: i64| {
            let r = crate::test_records::tcp("10.20.0.5", "192.0.2.7", 443, t0 + secs, (300, 100));
            t.observe(&r, &cfg)
        };
        for i in 0..10 {
            assert!(conn(&mut t, i * 60).is_none());
        }
        let later = cfg.window.as_secs() as i64 + 86_400;
        let found: Vec<i64> = (0..30)
            .filter(|i| conn(&mut t, later + i * 60).is_some())
            .collect();
        assert_eq!(found, [i64::from(cfg.min_connections) - 1]);
    }

    #[test]
    fn a_pair_holds_at_most_its_cap_of_connections_and_none_once_reported() {
        let cfg = Beacon::default();
        let mut t = BeaconTracker::default();
        let t0 = 1_772_409_600;
        // 3000 connections at irregular gaps (1-20 s) and sizes: never a
        // beacon, and more than a pair keeps.
        let (mut x, mut secs) = (7u64, 0);
        let mut conn = |t: &mut BeaconTracker| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            secs += 1 + (x >> 33) as i64 % 20;
            let r = crate::test_records::tcp(
                "10.20.0.5",
                "192.0.2.7",
                443,
                t0 + secs,
                ((x >> 20) % 200_000, 100),
            );
            (t.observe(&r, &cfg), t.fingerprint.hash_one(PairKey::of(&r)))
        };
        for _ in 0..3000 {
            assert!(conn(&mut t).0.is_none());
        }
        // Scored when 20 connections were in, then every 8 added: not on
        // every connection once the series is full.
        assert_eq!(t.scored, 1 + (3000 - 20) / 8);
        let (_, key) = conn(&mut t);
        let Some(PairHistory::Many(series)) = t.pairs.get(&key) else {
            panic!("a series");
        };
        assert_eq!(series.starts.len(), MAX_BEACON_POINTS);
        assert!(
            series.starts.capacity() <= MAX_BEACON_POINTS,
            "room for {} connections",
            series.starts.capacity()
        );
        // 16 bytes an entry for a pair seen once, 8 a connection in a series.
        assert_eq!(std::mem::size_of::<PairHistory>(), 16);
        assert_eq!(std::mem::size_of_val(&series.starts[0]), 8);

        // A beacon (every 60 s, 500 bytes) keeps only its latest time once
        // reported, and is not reported again.
        let mut reported = 0;
        for k in 0..100 {
            let r =
                crate::test_records::tcp("10.20.0.6", "192.0.2.7", 443, t0 + 60 * k, (400, 100));
            reported += usize::from(t.observe(&r, &cfg).is_some());
            if k == 99 {
                let key = t.fingerprint.hash_one(PairKey::of(&r));
                let last = r.ts.0 / 1_000_000;
                assert!(matches!(t.pairs.get(&key), Some(PairHistory::Beaconed(l)) if *l == last));
            }
        }
        assert_eq!(reported, 1);
    }

    #[test]
    fn connections_opened_together_are_one_check_in_not_a_beacon() {
        // 20 fetches within a second, or at one instant: no period at all.
        let burst: Vec<(f64, u64)> = (0..20).map(|i| (100.0 + i as f64 * 0.05, 512)).collect();
        assert_eq!(beacon_score(&burst), 0.0);
        let same: Vec<(f64, u64)> = (0..20).map(|_| (100.0, 512)).collect();
        assert_eq!(beacon_score(&same), 0.0);
        // Three connections at each check-in, every 60 s: the period shows.
        let triplets: Vec<(f64, u64)> = (0..60)
            .map(|i| ((i / 3) as f64 * 60.0 + (i % 3) as f64 * 0.1, 512))
            .collect();
        assert!(beacon_score(&triplets) > 0.9, "{}", beacon_score(&triplets));
        // The order the starts come in does not matter.
        let mut shuffled = triplets.clone();
        shuffled.reverse();
        assert_eq!(beacon_score(&shuffled), beacon_score(&triplets));
    }

    #[test]
    fn a_beacon_whose_records_finish_out_of_start_order_is_found() {
        // A check-in every 60 s; every other one is a 90 s long poll, so
        // its record finishes after the next check-in's.
        let start = 1_772_409_600;
        let mut records: Vec<(i64, ConnRecord)> = (0..40)
            .map(|i| {
                let mut r = crate::test_records::tcp(
                    "10.20.0.5",
                    "192.0.2.99",
                    8443,
                    start + 60 * i,
                    (300, 200),
                );
                let dur = if i % 2 == 0 { 10 } else { 90 };
                r.duration = Some(std::time::Duration::from_secs(dur as u64));
                (start + 60 * i + dur, r)
            })
            .collect();
        records.sort_by_key(|(end, _)| *end);
        let cfg = Beacon::default();
        let mut t = BeaconTracker::default();
        let found: Vec<String> = records
            .iter()
            .filter_map(|(_, r)| t.observe(r, &cfg))
            .map(|(reason, text)| {
                assert_eq!(reason, Reason::Beacon);
                text
            })
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("about every 60 s"), "{}", found[0]);
    }

    #[test]
    fn regular_small_connections_score_as_beacons_and_irregular_ones_do_not() {
        let regular: Vec<(f64, u64)> = (0..60)
            .map(|i| (i as f64 * 60.0 + (i % 3) as f64 * 0.4, 512))
            .collect();
        assert!(beacon_score(&regular) > 0.9, "{}", beacon_score(&regular));
        let mut x = 7u64;
        let mut t = 0.0;
        let irregular: Vec<(f64, u64)> = (0..60)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                t += (x >> 33) as f64 % 3600.0;
                (t, (x >> 20) % 200_000)
            })
            .collect();
        assert!(
            beacon_score(&irregular) < 0.7,
            "{}",
            beacon_score(&irregular)
        );
    }

    #[test]
    fn a_beacon_whose_size_varies_by_a_few_percent_scores_as_one() {
        // A check-in over a new TLS connection each time: about 5 kB
        // (+-300 bytes) every 300 s (+-10 %), and likewise about 20 kB
        // (+-1 kB).
        for (size, spread) in [(5_000u64, 600u64), (20_000, 2_000)] {
            let mut x = 11u64;
            let mut next = || {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                x >> 33
            };
            let mut t = 0.0;
            let checks: Vec<(f64, u64)> = (0..40)
                .map(|_| {
                    t += 270.0 + (next() % 60) as f64;
                    (t, size - spread / 2 + next() % spread)
                })
                .collect();
            let score = beacon_score(&checks);
            assert!(score >= 0.8, "{size} bytes: {score}");
            // The same timing with sizes all over the place is none.
            let varied: Vec<(f64, u64)> = checks
                .iter()
                .map(|&(t, _)| (t, 500 + next() % (4 * size)))
                .collect();
            let score = beacon_score(&varied);
            assert!(score < 0.8, "{size} bytes, varied: {score}");
        }
    }

    /// Check-ins of a pair at `gaps` (seconds) from Monday 2 March 2026,
    /// each `bytes` (client + server) long, through a tracker with the
    /// default settings: the reasons it gives.
    fn beacon_reasons(gaps: impl IntoIterator<Item = f64>, bytes: u64) -> Vec<String> {
        let cfg = Beacon::default();
        let mut t = BeaconTracker::default();
        let mut at = 1_772_409_600.0;
        let mut found = Vec::new();
        for gap in gaps {
            at += gap;
            let mut r =
                crate::test_records::tcp("10.20.0.5", "192.0.2.7", 443, 0, (bytes - 100, 100));
            r.ts = flowlib::Timestamp((at * 1e9) as i64);
            found.extend(t.observe(&r, &cfg).map(|(reason, text)| {
                assert_eq!(reason, Reason::Beacon);
                text
            }));
        }
        found
    }

    /// A pseudo-random number in [0, 1) from `x` (advanced).
    fn unit(x: &mut u64) -> f64 {
        *x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn beacons_slower_than_a_day_over_twenty_are_found() {
        // A check-in every 90 minutes, or every 4 or 6 hours, +-10 %: 16, 6
        // and 4 check-ins a day, never the 20 a day's window once needed.
        // Found once the pair's history holds enough check-ins, with the
        // period.
        let mut x = 11u64;
        for period in [5400.0, 4.0 * 3600.0, 6.0 * 3600.0] {
            let gaps: Vec<f64> = (0..24)
                .map(|_| period * (0.9 + 0.2 * unit(&mut x)))
                .collect();
            let found = beacon_reasons(gaps, 480);
            assert_eq!(found.len(), 1, "every {period} s: {found:?}");
            let every: f64 = found[0]
                .split("about every ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|s| s.parse().ok())
                .unwrap();
            assert!((every / period - 1.0).abs() < 0.1, "{}", found[0]);
        }
        // Fast beacons are still found as soon as they were.
        let found = beacon_reasons((0..40).map(|_| 10.0 + unit(&mut x)), 480);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("20 connections"), "{}", found[0]);
    }

    #[test]
    fn irregular_pairs_as_slow_and_as_many_are_not_beacons() {
        // The same number of equally small connections at random (Poisson)
        // times of the same mean gaps, over many seeds, or in working-day
        // bursts (a few connections a working hour, nothing at night):
        // never a beacon.
        for seed in 0..100u64 {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            for mean in [5400.0, 4.0 * 3600.0] {
                let gaps: Vec<f64> = (0..24)
                    .map(|_| -mean * (1.0 - unit(&mut x)).ln() + 1.0)
                    .collect();
                let found = beacon_reasons(gaps, 480);
                assert!(found.is_empty(), "seed {seed}, mean {mean} s: {found:?}");
            }
        }
        for seed in 0..10u64 {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let gaps: Vec<f64> = (0..24)
                .map(|i| {
                    if i % 6 == 0 {
                        15.0 * 3600.0 + 3600.0 * unit(&mut x)
                    } else {
                        60.0 + 3000.0 * unit(&mut x)
                    }
                })
                .collect();
            let found = beacon_reasons(gaps, 480);
            assert!(found.is_empty(), "seed {seed}, office hours: {found:?}");
        }
    }

    #[test]
    fn a_few_bursts_of_connections_are_too_few_check_ins_to_score() {
        // 20 connections in 5 bursts of 4, an hour apart: enough
        // connections, but 5 check-ins (4 intervals) judge no regularity.
        let gaps = (0..32).map(|i| if i % 4 == 0 { 3600.0 } else { 0.2 });
        let cfg = Beacon::default();
        let mut t = BeaconTracker::default();
        let mut at = 1_772_409_600.0;
        for gap in gaps.take(20) {
            at += gap;
            let mut r = crate::test_records::tcp("10.20.0.5", "192.0.2.7", 443, 0, (400, 100));
            r.ts = flowlib::Timestamp((at * 1e9) as i64);
            assert!(t.observe(&r, &cfg).is_none());
        }
        assert_eq!(t.scored, 0);
    }
}
