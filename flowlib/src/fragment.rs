//! Attribution of non-first IP fragments to their flow, and checks of
//! every fragment against the others of its datagram.
//!
//! Only the first fragment of a datagram carries the transport header. The
//! tracker remembers, per fragment train (addresses, protocol, IP id, VLAN),
//! which flow the first fragment went to, so later fragments are counted in
//! that flow's packets and IP bytes. No datagram is reassembled, but the
//! captured bytes of each fragment are kept while the train lives, so a
//! fragment that overlaps an earlier one is reported with the same bytes
//! ([`Weird::FragmentOverlap`]) or different ones
//! ([`Weird::FragmentInconsistency`], an evasion: receivers may reassemble
//! different datagrams). Fragments under 64 bytes that are not the last
//! ([`Weird::ExcessivelySmallFragment`]) and fragments reaching past byte
//! 65535 ([`Weird::ExcessivelyLargeFragment`]) are reported too; the names
//! are Zeek's.
//!
//! The tracker is bounded by trains ([`crate::TableConfig::max_fragment_trains`])
//! and by bytes ([`crate::TableConfig::max_fragment_bytes`]: fragment bytes
//! kept plus bookkeeping, see [`FragmentTracker::memory_bytes`]). When
//! either is reached the oldest trains are evicted and counted
//! ([`FragmentStats`]); trains older than the fragment timeout expire, and
//! a train closes once every byte of its datagram has arrived: a copy of
//! one of its fragments (the same bytes) still counts in its flow, any other
//! fragment with its IP id starts a new datagram. Non-first fragments that come
//! before their first fragment wait in their train ([`Attribution::Waiting`])
//! and count in its flow when it comes; those whose first fragment never
//! comes (or was evicted) are counted by the caller as
//! [`Weird::UnattributedFragment`].

use crate::decode::FlowPacket;
use crate::key::FlowKey;
use crate::time::Timestamp;
use crate::weird::Weird;
use hashbrown::HashMap;
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Fragments of one train whose bytes are kept for overlap checks; later
/// ones are still attributed but not checked.
pub const MAX_FRAGMENTS_CHECKED: usize = 64;

/// Largest IP datagram (IPv4 total length, IPv6 payload without jumbograms).
const MAX_DATAGRAM: u64 = 65_535;

/// A non-last fragment smaller than this (IP packet bytes) is reported
/// as [`Weird::ExcessivelySmallFragment`], as Zeek does.
const MIN_FRAGMENT: u32 = 64;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
struct TrainKey {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
    vlan: Option<u16>,
    inner_vlan: Option<u16>,
}

impl TrainKey {
    /// IPv4 names a datagram by addresses, protocol and id (RFC 791);
    /// IPv6 by addresses and id (RFC 8200): the protocol a non-first
    /// fragment names may be an extension header the first one steps over.
    fn of(p: &FlowPacket<'_>) -> Option<TrainKey> {
        Some(TrainKey {
            src: p.ip.src,
            dst: p.ip.dst,
            proto: if p.ip.src.is_ipv4() { p.ip.proto } else { 0 },
            id: p.ip.fragment?.id,
            vlan: p.vlan,
            inner_vlan: p.inner_vlan,
        })
    }
}

/// One fragment's bytes, at its offset in the datagram.
struct Block {
    start: u32,
    data: Box<[u8]>,
}

/// What the tracker knows of one datagram.
struct Train {
    created: Timestamp,
    /// The flow of the first fragment once seen, or what waits for it.
    owner: Owner,
    blocks: Vec<Block>,
    /// Bytes charged to the byte cap for this train (at most the cap).
    charged: u32,
    /// Which bytes of the datagram have arrived, and where it ends (once
    /// its last fragment is seen): a complete datagram's train is closed,
    /// so that the next datagram reusing its IP id starts afresh.
    coverage: Coverage,
}

/// Whom a train's fragments count for: in the space of the flow's key,
/// so a train is no bigger for its waiting fragments.
#[derive(Clone, Copy)]
enum Owner {
    /// The flow of the first fragment, and its sender's side.
    Flow(FlowKey, bool),
    /// No first fragment yet: `count` non-first fragments (at most
    /// [`MAX_FRAGMENTS_CHECKED`]) with `bytes` of payload wait for it.
    Waiting { count: u16, bytes: u32 },
}

impl Owner {
    fn flow(&self) -> Option<(FlowKey, bool)> {
        match *self {
            Owner::Flow(key, side) => Some((key, side)),
            Owner::Waiting { .. } => None,
        }
    }

    /// Fragments waiting.
    fn waiting(&self) -> u64 {
        match *self {
            Owner::Waiting { count, .. } => u64::from(count),
            Owner::Flow(..) => 0,
        }
    }
}

/// Most byte ranges ahead of the contiguous start a train tracks towards
/// completeness; a datagram arriving in more out-of-order pieces than that
/// lives until the fragment timeout instead.
const MAX_RANGES: usize = 16;

/// Which bytes of a datagram have arrived: every byte before `contiguous`,
/// and the ranges in `ahead` (fragments that came early; none, with no
/// allocation, while fragments come in order); and the datagram's length
/// once its last fragment has been seen. 16 bytes: every train has one.
struct Coverage {
    /// [`Coverage::GAVE_UP`]: more than [`MAX_RANGES`] ranges came ahead,
    /// completeness is no longer tracked; [`Coverage::CLOSED`]: the
    /// datagram was complete.
    contiguous: u32,
    /// [`Coverage::UNKNOWN`] until the last fragment is seen.
    end: u32,
    /// Boxed: 8 bytes in every train instead of a `Vec`'s 24, and only
    /// trains with fragments out of order allocate.
    #[allow(clippy::box_collection)]
    ahead: Option<Box<Vec<(u32, u32)>>>,
}

impl Default for Coverage {
    fn default() -> Self {
        Coverage {
            contiguous: 0,
            end: Coverage::UNKNOWN,
            ahead: None,
        }
    }
}

impl Coverage {
    /// An IP datagram ends before byte 2^17 (offsets below 2^16, lengths
    /// below 2^16): these can be no datagram's real values.
    const UNKNOWN: u32 = u32::MAX;
    const GAVE_UP: u32 = u32::MAX;
    const CLOSED: u32 = u32::MAX - 1;

    /// Notes the fragment carrying bytes `start..start + len`.
    fn add(&mut self, start: u32, len: u32, last: bool) {
        if self.closed() {
            return;
        }
        let stop = start.saturating_add(len).min(Coverage::CLOSED - 1);
        if last {
            self.end = stop;
        }
        if self.contiguous == Coverage::GAVE_UP || len == 0 {
            return;
        }
        if start > self.contiguous {
            let ahead = self.ahead.get_or_insert_with(Box::default);
            if ahead.len() == MAX_RANGES {
                self.contiguous = Coverage::GAVE_UP;
                self.ahead = None;
            } else {
                ahead.push((start, stop));
            }
            return;
        }
        self.contiguous = self.contiguous.max(stop);
        // Ranges that came early and now join the contiguous start.
        if let Some(ahead) = &mut self.ahead {
            while let Some(i) = ahead.iter().position(|&(a, _)| a <= self.contiguous) {
                let (_, b) = ahead.swap_remove(i);
                self.contiguous = self.contiguous.max(b);
            }
        }
    }

    /// Every byte from the first to the last fragment's end has arrived
    /// (and the train is not closed yet).
    fn complete(&self) -> bool {
        self.contiguous != Coverage::GAVE_UP
            && !self.closed()
            && self.end != Coverage::UNKNOWN
            && self.contiguous >= self.end
    }

    /// The datagram is complete: nothing more to track.
    fn close(&mut self) {
        self.contiguous = Coverage::CLOSED;
        self.ahead = None;
    }

    fn closed(&self) -> bool {
        self.contiguous == Coverage::CLOSED
    }
}

/// Bookkeeping bytes charged per train (its map entry and record) and per
/// kept fragment (its block and allocation header), on top of the bytes.
const TRAIN_COST: usize =
    std::mem::size_of::<TrainKey>() + std::mem::size_of::<Train>() + 1 + 2 * 24;
const BLOCK_COST: usize = std::mem::size_of::<Block>() + 16;

/// Counters of a [`FragmentTracker`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FragmentStats {
    /// Trains started.
    pub trains: u64,
    /// Trains evicted because the train cap was reached.
    pub evicted_train_cap: u64,
    /// Trains evicted because the byte cap was reached.
    pub evicted_byte_cap: u64,
    /// Trains dropped after the fragment timeout.
    pub expired: u64,
    /// Trains closed when every byte of their datagram had arrived.
    pub completed: u64,
    /// Fragments attributed or kept but not checked for overlaps (beyond
    /// [`MAX_FRAGMENTS_CHECKED`] in a train, or larger than the byte cap).
    pub unchecked: u64,
    /// Most bytes charged to the byte cap at once.
    pub peak_bytes: u64,
    /// Non-first fragments that came before their first fragment and
    /// were counted in its flow when it came.
    pub waited: u64,
    /// Non-first fragments waiting for their first fragment now.
    pub waiting: u64,
}

impl FragmentStats {
    /// Adds `other` into `self` (merging shards).
    pub fn merge(&mut self, other: &FragmentStats) {
        self.trains += other.trains;
        self.evicted_train_cap += other.evicted_train_cap;
        self.evicted_byte_cap += other.evicted_byte_cap;
        self.expired += other.expired;
        self.completed += other.completed;
        self.unchecked += other.unchecked;
        self.peak_bytes += other.peak_bytes;
        self.waited += other.waited;
        self.waiting += other.waiting;
    }
}

/// Where a fragment goes, as [`FragmentTracker::fragment`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attribution {
    /// To this flow (its key and whether the fragment's sender is the
    /// key's lower end). A first fragment brings along the `waited`
    /// non-first fragments of its datagram that came before it, with
    /// `waited_bytes` of payload: they count in the flow now.
    Flow {
        /// The flow and the sender's side.
        flow: (FlowKey, bool),
        /// Earlier fragments that waited for this first one.
        waited: u32,
        /// Their payload bytes.
        waited_bytes: u64,
    },
    /// A non-first fragment whose first fragment has not come: it waits in
    /// its train, and counts when the first comes, or as unattributed
    /// when the train ends ([`FragmentTracker::take_abandoned`]).
    Waiting,
    /// Nowhere: the first fragment made no flow, or the train is full.
    Unattributed,
}

/// Bounded map from fragment trains to flows, with each train's bytes.
pub struct FragmentTracker {
    trains: HashMap<TrainKey, Train>,
    /// Trains in creation order (lazily validated against `created`).
    order: VecDeque<(TrainKey, Timestamp)>,
    max_trains: usize,
    max_bytes: usize,
    timeout: Duration,
    /// Bytes charged: trains' bookkeeping and kept fragment bytes.
    charged: usize,
    /// Waiting fragments whose train ended without its first fragment,
    /// not yet taken by [`FragmentTracker::take_abandoned`].
    abandoned: u64,
    stats: FragmentStats,
}

/// Its size and limits, not its trains.
impl fmt::Debug for FragmentTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FragmentTracker")
            .field("trains", &self.trains.len())
            .field("max_trains", &self.max_trains)
            .field("charged", &self.charged)
            .field("max_bytes", &self.max_bytes)
            .field("timeout", &self.timeout)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl FragmentTracker {
    /// A tracker of at most `max_trains` trains and `max_bytes` charged
    /// bytes, remembering each train for `timeout`.
    pub fn new(max_trains: usize, max_bytes: usize, timeout: Duration) -> FragmentTracker {
        FragmentTracker {
            trains: HashMap::new(),
            order: VecDeque::new(),
            max_trains: max_trains.max(1),
            max_bytes,
            timeout,
            charged: 0,
            abandoned: 0,
            stats: FragmentStats::default(),
        }
    }

    /// Takes in a fragment (`p.ip.fragment` set) seen at `ts`: checks it
    /// against the train's earlier fragments and keeps its bytes. For a
    /// first fragment, `flow` is the flow it went to. Anomalies found are
    /// passed to `weird`. Returns where the fragment (and, for a first
    /// fragment, those that waited for it) counts.
    pub fn fragment(
        &mut self,
        p: &FlowPacket<'_>,
        flow: Option<(FlowKey, bool)>,
        ts: Timestamp,
        mut weird: impl FnMut(Weird),
    ) -> Attribution {
        let (Some(key), Some(frag)) = (TrainKey::of(p), p.ip.fragment) else {
            return Attribution::Unattributed;
        };
        let len = frag.len;
        if frag.more && p.ip.ip_len < MIN_FRAGMENT {
            weird(Weird::ExcessivelySmallFragment);
        }
        if u64::from(frag.offset) + u64::from(len) > MAX_DATAGRAM {
            weird(Weird::ExcessivelyLargeFragment);
        }
        self.expire(ts);
        let bytes = p.fragment_bytes;
        if let Some(t) = self.trains.get(&key).filter(|t| t.coverage.closed()) {
            // Its datagram was complete. The same bytes again are a
            // duplicate of it (a span port's copy, a retransmission); any
            // other fragment with this id starts a new datagram, as it does
            // at the receiver, which is done with the first one.
            let duplicate = overlaps(&t.blocks, frag.offset, bytes) == Some(true);
            if !duplicate {
                self.drop_train(&key);
            }
        }
        if !self.trains.contains_key(&key) {
            while self.trains.len() >= self.max_trains {
                self.evict_oldest();
                self.stats.evicted_train_cap += 1;
            }
            self.make_room(TRAIN_COST);
            self.trains.insert(
                key,
                Train {
                    created: ts,
                    owner: Owner::Waiting { count: 0, bytes: 0 },
                    blocks: Vec::new(),
                    charged: TRAIN_COST as u32,
                    coverage: Coverage::default(),
                },
            );
            self.order.push_back((key, ts));
            self.charged += TRAIN_COST;
            self.stats.trains += 1;
        }
        let cost = BLOCK_COST + bytes.len();
        let mut keep = false;
        if let Some(train) = self.trains.get(&key) {
            // One anomaly per fragment: inconsistent if any overlapped
            // bytes differ, else an overlap.
            match overlaps(&train.blocks, frag.offset, bytes) {
                Some(true) => weird(Weird::FragmentOverlap),
                Some(false) => weird(Weird::FragmentInconsistency),
                None => {}
            }
            keep = !train.coverage.closed()
                && train.blocks.len() < MAX_FRAGMENTS_CHECKED
                && TRAIN_COST + cost <= self.max_bytes
                && !bytes.is_empty();
        }
        if keep {
            // Evicting makes room, but must not evict this train.
            self.make_room_keeping(cost, &key);
        }
        let Some(train) = self.trains.get_mut(&key) else {
            return Attribution::Unattributed;
        };
        if keep && self.charged + cost <= self.max_bytes {
            train.blocks.push(Block {
                start: frag.offset,
                data: bytes.into(),
            });
            train.charged += cost as u32;
            self.charged += cost;
        } else if !bytes.is_empty() {
            self.stats.unchecked += 1;
        }
        let mut waited = (0, 0);
        if frag.offset == 0 {
            if let Some(f) = flow {
                if let Owner::Waiting { count, bytes } = train.owner {
                    waited = (u32::from(count), u64::from(bytes));
                }
                train.owner = Owner::Flow(f.0, f.1);
                self.stats.waited += u64::from(waited.0);
                self.stats.waiting -= u64::from(waited.0);
            }
        }
        train.coverage.add(frag.offset, len, !frag.more);
        let attribution = match &mut train.owner {
            Owner::Flow(key, side) => Attribution::Flow {
                flow: (*key, *side),
                waited: waited.0,
                waited_bytes: waited.1,
            },
            Owner::Waiting { count, bytes }
                if frag.offset > 0 && usize::from(*count) < MAX_FRAGMENTS_CHECKED =>
            {
                *count += 1;
                *bytes += len;
                self.stats.waiting += 1;
                Attribution::Waiting
            }
            Owner::Waiting { .. } => Attribution::Unattributed,
        };
        if train.owner.flow().is_some() && train.coverage.complete() {
            // Kept, with its bytes, until it expires: a duplicate of its
            // fragments still counts in its flow.
            train.coverage.close();
            self.stats.completed += 1;
        }
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.charged as u64);
        attribution
    }

    /// Removes train `key` (a closed one, replaced by a new datagram with
    /// its id). Its creation-order entry is left behind: it no longer
    /// names a live train (see `remove_if`), and the queue is compacted
    /// once such entries are half of it.
    fn drop_train(&mut self, key: &TrainKey) {
        if let Some(t) = self.trains.remove(key) {
            self.charged -= t.charged as usize;
        }
        if self.order.len() > 2 * self.trains.len().max(1024) {
            let trains = &self.trains;
            self.order
                .retain(|(k, c)| trains.get(k).is_some_and(|t| t.created == *c));
        }
    }

    /// Takes the count of waiting fragments whose train ended (expired or
    /// evicted) before their first fragment came: unattributed now.
    pub fn take_abandoned(&mut self) -> u64 {
        std::mem::take(&mut self.abandoned)
    }

    /// The input is over: every fragment still waiting for its first
    /// fragment is abandoned ([`FragmentTracker::take_abandoned`]).
    pub fn abandon_waiting(&mut self) {
        for t in self.trains.values_mut() {
            if let Owner::Waiting { count, bytes } = &mut t.owner {
                self.abandoned += u64::from(std::mem::take(count));
                *bytes = 0;
            }
        }
        self.stats.waiting = 0;
    }

    /// Drops trains older than the timeout (oldest first).
    fn expire(&mut self, ts: Timestamp) {
        while let Some(&(key, created)) = self.order.front() {
            if ts.since(created) < self.timeout {
                break;
            }
            self.order.pop_front();
            if self.remove_if(&key, created) {
                self.stats.expired += 1;
            }
        }
    }

    /// Evicts trains, oldest first, until `cost` more bytes fit.
    fn make_room(&mut self, cost: usize) {
        while self.charged + cost > self.max_bytes && !self.trains.is_empty() {
            self.evict_oldest();
            self.stats.evicted_byte_cap += 1;
        }
    }

    /// [`FragmentTracker::make_room`] that never evicts train `keep`.
    fn make_room_keeping(&mut self, cost: usize, keep: &TrainKey) {
        while self.charged + cost > self.max_bytes && self.trains.len() > 1 {
            let Some(&(key, _)) = self.order.front() else {
                return;
            };
            if key == *keep {
                // Move it to the back; evict the next oldest instead.
                if let Some(front) = self.order.pop_front() {
                    self.order.push_back(front);
                }
                continue;
            }
            self.evict_oldest();
            self.stats.evicted_byte_cap += 1;
        }
    }

    /// Removes the oldest live train.
    fn evict_oldest(&mut self) {
        while let Some((key, created)) = self.order.pop_front() {
            if self.remove_if(&key, created) {
                return;
            }
        }
    }

    /// Removes train `key` if it is the one created at `created`.
    fn remove_if(&mut self, key: &TrainKey, created: Timestamp) -> bool {
        match self.trains.get(key) {
            Some(t) if t.created == created => {
                let t = self.trains.remove(key).expect("just found");
                self.charged -= t.charged as usize;
                self.abandoned += t.owner.waiting();
                self.stats.waiting -= t.owner.waiting();
                true
            }
            _ => false,
        }
    }

    /// Trains currently remembered.
    pub fn len(&self) -> usize {
        self.trains.len()
    }

    /// Whether no train is remembered.
    pub fn is_empty(&self) -> bool {
        self.trains.is_empty()
    }

    /// Bytes charged to the byte cap now: kept fragment bytes and the
    /// bookkeeping of trains and fragments (always at most
    /// [`crate::TableConfig::max_fragment_bytes`]).
    pub fn charged_bytes(&self) -> usize {
        self.charged
    }

    /// Bytes the tracker holds, by capacity: the charged bytes plus the
    /// hash map's and the creation-order queue's allocations (which the
    /// train cap bounds).
    pub fn memory_bytes(&self) -> usize {
        let entry = std::mem::size_of::<TrainKey>() + std::mem::size_of::<Train>();
        let blocks: usize = self
            .trains
            .values()
            .map(|t| t.blocks.capacity() * std::mem::size_of::<Block>())
            .sum();
        let block_bytes: usize = self
            .trains
            .values()
            .flat_map(|t| t.blocks.iter())
            .map(|b| b.data.len())
            .sum();
        let ahead: usize = self
            .trains
            .values()
            .filter_map(|t| t.coverage.ahead.as_ref())
            .map(|a| std::mem::size_of::<Vec<(u32, u32)>>() + a.capacity() * 8)
            .sum();
        self.trains.capacity() * 8 / 7 * (entry + 1)
            + self.order.capacity() * std::mem::size_of::<(TrainKey, Timestamp)>()
            + blocks
            + block_bytes
            + ahead
    }

    /// Counters so far.
    pub fn stats(&self) -> &FragmentStats {
        &self.stats
    }
}

/// Whether fragment bytes `data` at `start` overlap any of `blocks`, and if
/// so whether every overlapping byte is the same.
fn overlaps(blocks: &[Block], start: u32, data: &[u8]) -> Option<bool> {
    blocks
        .iter()
        .filter_map(|b| overlap(b, start, data))
        .fold(None, |acc, same| Some(acc.unwrap_or(true) && same))
}

/// Whether fragment bytes `data` at `start` overlap block `b`, and if so
/// whether the overlapping bytes are the same.
fn overlap(b: &Block, start: u32, data: &[u8]) -> Option<bool> {
    let (a0, a1) = (u64::from(b.start), u64::from(b.start) + b.data.len() as u64);
    let (b0, b1) = (u64::from(start), u64::from(start) + data.len() as u64);
    let (lo, hi) = (a0.max(b0), a1.min(b1));
    if lo >= hi {
        return None;
    }
    let x = &b.data[(lo - a0) as usize..(hi - a0) as usize];
    let y = &data[(lo - b0) as usize..(hi - b0) as usize];
    Some(x == y)
}
