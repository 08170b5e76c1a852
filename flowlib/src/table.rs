//! The flow table: connections in slabs, found through a hash index of
//! [`FlowKey`]s, driven only by capture time.
//!
//! Connections live in two slabs (vectors grown in chunks of 4096 entries,
//! slots recycled through free lists): TCP connections with their packed
//! state machine in one (132 bytes an entry), UDP / ICMP / other protocols
//! in a smaller one (80 bytes), so those do not pay for TCP state. A
//! hashbrown table holds only a `u32` slab reference per connection; the
//! key itself is stored once, in the slab (IPv4 addresses inline, others in
//! an address slab), and the hash is recomputed from it when the index
//! grows. Rare state (TCP's FIN / RST positions, anomaly counters, long
//! histories, out-of-order blocks; tunnel parents, counters past 32 bits)
//! lives in side slabs, allocated only for connections that need it; see
//! [`FlowTable::memory`].
//!
//! Each connection files itself in a one-second timer wheel under the time
//! it is due to end (idle timeout, close delay, unanswered attempt) or to
//! report an interim record; a timer entry is a slab reference and the
//! slot's 16-bit generation, so an entry left behind by an ended connection
//! is recognised and skipped (a stale entry would be taken for a new
//! connection's only after 32 768 reuses of its slot, and only if it names
//! the very second that connection is filed under, when it is due anyway). Firing is lazy: a connection whose deadline
//! moved later is simply re-filed. A packet for a connection whose deadline
//! has passed ends the old connection first, so results do not depend on
//! how often timers are run. One table per shard: no global state.

use crate::chunked::ChunkedVec;
use crate::config::{ConfigError, TableConfig};
use crate::conn::{
    packet_endpoints, Conn, NewState, OooSlab, PackedTcp, SideSlab, StateMut, StateRef, TcpCold,
};
use crate::decode::FlowPacket;
use crate::key::{Endpoint, FlowKey};
use crate::record::{ConnRecord, EndReason};
use crate::start::ConnStart;
use crate::table_memory::{MemoryPart, TableMemory};
use crate::time::Timestamp;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod invariants;
pub use invariants::InvariantViolation;

/// Counters of a [`FlowTable`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableStats {
    /// Connections created.
    pub created: u64,
    /// Records emitted per end reason, indexed like [`EndReason::ALL`].
    pub ended: [u64; EndReason::ALL.len()],
    /// Most connections live at once.
    pub peak_live: u64,
    /// Evictions of half-open connections (an unanswered SYN), made first
    /// when the table is full (flow cap or memory cap).
    pub evicted_half_open: u64,
    /// Evictions of the connection nearest to expiry, made when no
    /// half-open connection was left to evict.
    pub evicted_oldest: u64,
    /// Packets that would have created a connection but were refused: the
    /// memory cap left no room and nothing could be evicted to make some
    /// (no connection of the packet's slab, TCP or other, to evict). At
    /// the flow cap ([`TableConfig::max_flows`]) a connection is always
    /// evicted instead; bare SYNs refused while the table is full are
    /// counted in [`TableStats::refused_syn_when_full`], not here.
    pub refused_no_memory: u64,
    /// Bare SYNs refused because the table was full (flow cap or memory
    /// cap) and at least half its live connections were half-open, with
    /// [`TableConfig::refuse_syns_when_full`].
    pub refused_syn_when_full: u64,
    /// Packets stamped earlier than the table's latest capture time: they
    /// were applied at the latest time, so the table's clock never ran
    /// backwards.
    pub clock_backwards: u64,
    /// Most bytes the table held at once ([`FlowTable::memory_bytes`]),
    /// sampled whenever it allocated.
    pub peak_memory_bytes: u64,
}

impl TableStats {
    /// Records emitted with `reason`.
    pub fn ended(&self, reason: EndReason) -> u64 {
        self.ended[reason as usize]
    }

    /// Adds `other` into `self` (merging shards).
    pub fn merge(&mut self, other: &TableStats) {
        self.created += other.created;
        for (a, b) in self.ended.iter_mut().zip(other.ended.iter()) {
            *a += b;
        }
        self.peak_live += other.peak_live;
        self.evicted_half_open += other.evicted_half_open;
        self.evicted_oldest += other.evicted_oldest;
        self.refused_no_memory += other.refused_no_memory;
        self.refused_syn_when_full += other.refused_syn_when_full;
        self.clock_backwards += other.clock_backwards;
        self.peak_memory_bytes += other.peak_memory_bytes;
    }

    /// Connections that ended: records of every end reason but the
    /// interim (`active`) and `start` ones, which do not end a connection.
    /// Evictions are included (end reason `evicted`).
    pub fn finished(&self) -> u64 {
        EndReason::ALL
            .iter()
            .filter(|r| !matches!(r, EndReason::Active | EndReason::Start))
            .map(|&r| self.ended(r))
            .sum()
    }
}

/// Slab reference bit: the connection is in the TCP slab.
const TCP_BIT: u32 = 1 << 31;

/// A [`FlowKey`] as the slabs store it: IPv4 addresses inline, IPv6 ones
/// (or a mix of families) in the [`V6Slab`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct SlimKey {
    /// The IPv4 addresses (lo, hi), or `[slot, 0]` in the IPv6 slab.
    addrs: [u32; 2],
    ports: [u16; 2],
    vlan: u16,
    inner_vlan: u16,
    proto: u8,
    /// [`slim`] bits.
    flags: u8,
}

/// Bits of [`SlimKey::flags`].
mod slim {
    /// The addresses are in the IPv6 slab.
    pub const IN_SLAB: u8 = 1;
    /// `lo` is an IPv6 address.
    pub const LO_V6: u8 = 2;
    /// `hi` is an IPv6 address.
    pub const HI_V6: u8 = 4;
    /// The outer VLAN id is present.
    pub const VLAN: u8 = 8;
    /// The inner VLAN id is present.
    pub const INNER_VLAN: u8 = 16;
}

/// Addresses of the connections that are not IPv4 on both sides: 16 bytes
/// per address (IPv4 ones mapped), slots recycled through a free list.
#[derive(Debug, Default)]
struct V6Slab {
    addrs: Vec<[[u8; 16]; 2]>,
    free: Vec<u32>,
}

fn addr_bytes(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn addr_from(bytes: [u8; 16], v6: bool) -> IpAddr {
    let v6addr = Ipv6Addr::from(bytes);
    match (v6, v6addr.to_ipv4_mapped()) {
        (false, Some(v4)) => IpAddr::V4(v4),
        _ => IpAddr::V6(v6addr),
    }
}

impl SlimKey {
    /// The stored form `key` would have, and its addresses when they would
    /// go to the IPv6 slab (whose slot is left 0).
    fn probe(key: &FlowKey) -> (SlimKey, Option<[[u8; 16]; 2]>) {
        let mut flags = 0;
        if key.vlan.is_some() {
            flags |= slim::VLAN;
        }
        if key.inner_vlan.is_some() {
            flags |= slim::INNER_VLAN;
        }
        let (addrs, pair) = match (key.lo.addr, key.hi.addr) {
            (IpAddr::V4(lo), IpAddr::V4(hi)) => ([u32::from(lo), u32::from(hi)], None),
            (lo, hi) => {
                flags |= slim::IN_SLAB;
                if lo.is_ipv6() {
                    flags |= slim::LO_V6;
                }
                if hi.is_ipv6() {
                    flags |= slim::HI_V6;
                }
                ([0, 0], Some([addr_bytes(lo), addr_bytes(hi)]))
            }
        };
        let slim = SlimKey {
            addrs,
            ports: [key.lo.port, key.hi.port],
            vlan: key.vlan.unwrap_or(0),
            inner_vlan: key.inner_vlan.unwrap_or(0),
            proto: key.proto,
            flags,
        };
        (slim, pair)
    }

    /// Whether this stored key is the probed one (see [`SlimKey::probe`]).
    fn matches(&self, probe: &(SlimKey, Option<[[u8; 16]; 2]>), v6: &V6Slab) -> bool {
        match probe {
            (p, None) => self == p,
            (p, Some(pair)) => {
                self.flags == p.flags
                    && self.ports == p.ports
                    && self.proto == p.proto
                    && self.vlan == p.vlan
                    && self.inner_vlan == p.inner_vlan
                    && v6.addrs.get(self.addrs[0] as usize) == Some(pair)
            }
        }
    }

    /// Stores `key`, its addresses in `v6` unless both are IPv4.
    #[cfg(test)]
    fn new(key: &FlowKey, v6: &mut V6Slab) -> SlimKey {
        Self::store(Self::probe(key), v6)
    }

    /// Stores a probed key, its addresses in `v6` if they go there.
    fn store(probe: (SlimKey, Option<[[u8; 16]; 2]>), v6: &mut V6Slab) -> SlimKey {
        let (mut slim, pair) = probe;
        if let Some(pair) = pair {
            let slot = match v6.free.pop() {
                Some(i) => {
                    v6.addrs[i as usize] = pair;
                    i
                }
                None => {
                    v6.addrs.push(pair);
                    v6.addrs.len() as u32 - 1
                }
            };
            slim.addrs = [slot, 0];
        }
        slim
    }

    /// The full key back.
    fn get(&self, v6: &V6Slab) -> FlowKey {
        let (lo, hi) = if self.flags & slim::IN_SLAB != 0 {
            let [lo, hi] = v6.addrs[self.addrs[0] as usize];
            (
                addr_from(lo, self.flags & slim::LO_V6 != 0),
                addr_from(hi, self.flags & slim::HI_V6 != 0),
            )
        } else {
            (
                IpAddr::V4(Ipv4Addr::from(self.addrs[0])),
                IpAddr::V4(Ipv4Addr::from(self.addrs[1])),
            )
        };
        FlowKey {
            lo: Endpoint {
                addr: lo,
                port: self.ports[0],
            },
            hi: Endpoint {
                addr: hi,
                port: self.ports[1],
            },
            proto: self.proto,
            vlan: (self.flags & slim::VLAN != 0).then_some(self.vlan),
            inner_vlan: (self.flags & slim::INNER_VLAN != 0).then_some(self.inner_vlan),
        }
    }

    /// Frees the key's IPv6 slab slot, if it has one.
    fn release(&self, v6: &mut V6Slab) {
        if self.flags & slim::IN_SLAB != 0 {
            v6.free.push(self.addrs[0]);
        }
    }
}

/// A TCP connection in its slab (132 bytes). The slot's generation,
/// odd while it is live, is [`Conn::gen`].
struct TcpEntry {
    key: SlimKey,
    conn: Conn,
    tcp: PackedTcp,
}

/// A UDP / ICMP / other connection in its slab (80 bytes).
struct SmallEntry {
    key: SlimKey,
    conn: Conn,
    small: crate::conn::Small,
}

/// A timer-wheel (or half-open queue) entry (6 bytes): a slab reference,
/// in two halves, and the slot's generation when filed.
#[derive(Copy, Clone, Debug)]
struct Timer {
    flow: [u16; 2],
    gen: u16,
}

impl Timer {
    fn new(flow: u32, gen: u16) -> Timer {
        Timer {
            flow: [flow as u16, (flow >> 16) as u16],
            gen,
        }
    }

    fn flow(self) -> u32 {
        u32::from(self.flow[0]) | u32::from(self.flow[1]) << 16
    }
}

/// The connections, in slabs.
#[derive(Default)]
struct Flows {
    tcp: ChunkedVec<TcpEntry>,
    tcp_free: Vec<u32>,
    small: ChunkedVec<SmallEntry>,
    small_free: Vec<u32>,
    ooo: OooSlab,
    side: SideSlab,
    v6: V6Slab,
}

impl Flows {
    fn slim(&self, r: u32) -> &SlimKey {
        if r & TCP_BIT != 0 {
            &self.tcp[(r & !TCP_BIT) as usize].key
        } else {
            &self.small[r as usize].key
        }
    }

    fn key(&self, r: u32) -> FlowKey {
        self.slim(r).get(&self.v6)
    }

    /// The slot's generation (odd while live).
    fn gen(&self, r: u32) -> u16 {
        if r & TCP_BIT != 0 {
            self.tcp
                .get((r & !TCP_BIT) as usize)
                .map_or(0, |e| e.conn.gen)
        } else {
            self.small.get(r as usize).map_or(0, |e| e.conn.gen)
        }
    }

    fn get(&self, r: u32) -> (&Conn, StateRef<'_>) {
        if r & TCP_BIT != 0 {
            let e = &self.tcp[(r & !TCP_BIT) as usize];
            (&e.conn, e.tcp.as_ref())
        } else {
            let e = &self.small[r as usize];
            (&e.conn, StateRef::Small(&e.small))
        }
    }

    fn get_mut(&mut self, r: u32) -> (&mut Conn, StateMut<'_>, &mut SideSlab) {
        if r & TCP_BIT != 0 {
            let e = &mut self.tcp[(r & !TCP_BIT) as usize];
            (&mut e.conn, e.tcp.as_mut(&mut self.ooo), &mut self.side)
        } else {
            let e = &mut self.small[r as usize];
            (&mut e.conn, StateMut::Small(&mut e.small), &mut self.side)
        }
    }

    /// The second connection `r` is due in, with its slot's generation,
    /// if that is earlier than the second it is filed under (or it is not
    /// filed yet); it is then recorded as filed there. One slab lookup.
    fn due_earlier(&mut self, r: u32, cfg: &TableConfig) -> Option<(i64, u16)> {
        let (conn, state) = if r & TCP_BIT != 0 {
            let e = &mut self.tcp[(r & !TCP_BIT) as usize];
            (&mut e.conn, StateRef::Tcp(&e.tcp))
        } else {
            let e = &mut self.small[r as usize];
            (&mut e.conn, StateRef::Small(&e.small))
        };
        let slot = conn.deadline(state, cfg).0.secs();
        let filed = conn.timer_slot(&self.side);
        if slot < filed || filed == i64::MIN {
            conn.set_timer_slot(slot, &mut self.side);
            Some((slot, conn.gen))
        } else {
            None
        }
    }

    /// Slots taken and given back in the side slabs (cold, extra,
    /// out-of-order blocks) so far, wrapping: the only memory a packet for
    /// an existing connection may grow besides its timer entry. Unchanged
    /// means nothing was allocated there.
    fn side_allocated(&self) -> u32 {
        self.side.changes().wrapping_add(self.ooo.changes())
    }

    /// Whether slot `r` holds generation `gen` (the connection a timer
    /// entry was filed for) and that connection is filed under `slot`.
    /// One slab lookup.
    fn filed(&self, r: u32, gen: u16, slot: i64) -> bool {
        let conn = if r & TCP_BIT != 0 {
            self.tcp.get((r & !TCP_BIT) as usize).map(|e| &e.conn)
        } else {
            self.small.get(r as usize).map(|e| &e.conn)
        };
        conn.is_some_and(|c| c.gen == gen && c.timer_slot(&self.side) == slot)
    }

    /// The timer-wheel slot connection `r` is filed under.
    fn timer_slot(&self, r: u32) -> i64 {
        self.get(r).0.timer_slot(&self.side)
    }

    fn set_timer_slot(&mut self, r: u32, slot: i64) {
        let (conn, _, side) = self.get_mut(r);
        conn.set_timer_slot(slot, side);
    }

    /// Whether the live connection `r` is half-open (an unanswered SYN).
    fn is_half_open(&self, r: u32) -> bool {
        let (conn, state) = self.get(r);
        conn.is_attempt(state)
    }

    /// Bytes of the slabs and their free lists, by capacity.
    fn capacity_bytes(&self) -> usize {
        self.tcp.capacity_bytes()
            + self.small.capacity_bytes()
            + (self.tcp_free.capacity() + self.small_free.capacity()) * 4
            + self.ooo.capacity_bytes()
            + self.side.capacity_bytes()
            + self.v6.addrs.capacity() * 32
            + self.v6.free.capacity() * 4
    }

    /// Slots of the TCP (`tcp`) or the other slab: (free, used, allocated).
    fn slab_slots(&self, tcp: bool) -> (usize, usize, usize) {
        if tcp {
            (self.tcp_free.len(), self.tcp.len(), self.tcp.capacity())
        } else {
            (
                self.small_free.len(),
                self.small.len(),
                self.small.capacity(),
            )
        }
    }

    /// Allocates room for exactly `n` more connections in one slab; for
    /// TCP, as many cold slots as TCP slots (a connection holds at most
    /// one), so the cold slots never grow on their own under a memory cap.
    fn reserve(&mut self, tcp: bool, n: usize) {
        if tcp {
            self.tcp.reserve_exact(n);
            self.side.tcp.reserve_to(self.tcp.capacity());
        } else {
            self.small.reserve_exact(n);
        }
    }

    fn record(&self, r: u32, reason: EndReason, at: Timestamp) -> ConnRecord {
        let (conn, state) = self.get(r);
        conn.record(state, &self.side, &self.key(r), reason, at)
    }

    fn insert(
        &mut self,
        probe: (SlimKey, Option<[[u8; 16]; 2]>),
        conn: Conn,
        state: NewState,
    ) -> u32 {
        let key = SlimKey::store(probe, &mut self.v6);
        let mut conn = conn;
        match state {
            NewState::Tcp(history) => {
                let tcp = PackedTcp::new(history, &mut conn.side, &mut self.side);
                match self.tcp_free.pop() {
                    Some(i) => {
                        let e = &mut self.tcp[i as usize];
                        conn.gen = e.conn.gen.wrapping_add(1);
                        *e = TcpEntry { key, conn, tcp };
                        i | TCP_BIT
                    }
                    None => {
                        conn.gen = 1;
                        self.tcp.push(TcpEntry { key, conn, tcp });
                        (self.tcp.len() as u32 - 1) | TCP_BIT
                    }
                }
            }
            NewState::Small(small) => match self.small_free.pop() {
                Some(i) => {
                    let e = &mut self.small[i as usize];
                    conn.gen = e.conn.gen.wrapping_add(1);
                    *e = SmallEntry { key, conn, small };
                    i
                }
                None => {
                    conn.gen = 1;
                    self.small.push(SmallEntry { key, conn, small });
                    self.small.len() as u32 - 1
                }
            },
        }
    }

    /// Frees a slot (its generation becomes even) and the side state it held.
    fn remove(&mut self, r: u32) {
        if r & TCP_BIT != 0 {
            let i = r & !TCP_BIT;
            let e = &mut self.tcp[i as usize];
            e.conn.gen = e.conn.gen.wrapping_add(1);
            e.key.release(&mut self.v6);
            e.conn.release(e.tcp.as_mut(&mut self.ooo), &mut self.side);
            self.tcp_free.push(i);
        } else {
            let e = &mut self.small[r as usize];
            e.conn.gen = e.conn.gen.wrapping_add(1);
            e.key.release(&mut self.v6);
            e.conn
                .release(StateMut::Small(&mut e.small), &mut self.side);
            self.small_free.push(r);
        }
    }

    /// References of every live connection.
    fn live(&self) -> impl Iterator<Item = u32> + '_ {
        let tcp = self
            .tcp
            .iter()
            .enumerate()
            .filter(|(_, e)| e.conn.gen % 2 == 1)
            .map(|(i, _)| i as u32 | TCP_BIT);
        let small = self
            .small
            .iter()
            .enumerate()
            .filter(|(_, e)| e.conn.gen % 2 == 1)
            .map(|(i, _)| i as u32);
        tcp.chain(small)
    }

    fn clear(&mut self) {
        self.tcp.clear();
        self.tcp_free.clear();
        self.small.clear();
        self.small_free.clear();
        self.ooo = OooSlab::default();
        self.side = SideSlab::default();
        self.v6 = V6Slab::default();
    }
}

/// Bytes of one hash index bucket: a `u32` slab reference and a control byte.
const INDEX_BUCKET_BYTES: usize = std::mem::size_of::<u32>() + 1;

/// Bytes charged per timer-wheel second (its B-tree node share), an
/// estimate: the standard B-tree does not report its allocations.
const TIMER_SLOT_BYTES: usize = 64;

/// Timer vectors kept for reuse at most, and the largest one kept (in entries).
const MAX_SPARE: usize = 64;
const MAX_SPARE_ENTRIES: usize = 256;

/// Bytes a memory-capped table budgets per slab slot beyond the slot
/// itself: up to two timer entries and two half-open queue entries (stale
/// ones are purged beyond that), each with vector growth slack, and a free
/// list entry.
const PER_FLOW_OVERHEAD: usize = 2 * 2 * std::mem::size_of::<Timer>() * 2 + 8;

/// Stale timer or half-open queue entries tolerated beyond one per live
/// connection before they are purged.
const STALE_SLACK: usize = 1024;

/// A bidirectional flow table.
pub struct FlowTable {
    cfg: TableConfig,
    /// Slab references, hashed by the key stored in the slab.
    index: HashTable<u32>,
    /// Buckets of `index` when allocated once up front (memory cap), else 0.
    index_buckets: usize,
    hasher: DefaultHashBuilder,
    flows: Flows,
    live: usize,
    /// Most live connections: `max_flows`, lower under a memory cap.
    flow_limit: usize,
    /// Second -> connections due in that second (lazily validated).
    timers: BTreeMap<i64, Vec<Timer>>,
    spare: Vec<Vec<Timer>>,
    /// Entries in `timers`, stale ones included.
    timer_entries: usize,
    /// Bytes of the buffers of the vectors in `timers` and `spare`.
    timer_bytes: usize,
    /// Half-open connections in creation order (lazily validated).
    half_open: VecDeque<Timer>,
    /// Live connections that are half-open right now (exact).
    half_open_live: usize,
    stats: TableStats,
    /// Latest capture time seen.
    now: Timestamp,
    /// Whether the last [`FlowTable::advance`] stopped at its budget
    /// ([`TableConfig::max_timer_expires`]) with due entries left: the
    /// backlog. Stale `true` (the entries went another way) costs one
    /// look; a due entry never exists while this is `false`.
    backlog: bool,
    /// Compact start records not taken yet ([`TableConfig::compact_starts`]).
    starts: Vec<ConnStart>,
    /// Uid seqs of connections that ended at the instant they started.
    same_instant: SameInstant,
}

/// Most keys [`SameInstant`] remembers for one instant (a few tens of KB):
/// past that, a connection evicted at the instant it started and followed
/// by another on its key at that instant may share its uid.
const SAME_INSTANT_MAX: usize = 4096;

/// The uid seqs ([`conn_uid`](crate::conn::conn_uid)'s `seq`) of
/// connections that ended at the instant they started (a 5-tuple reused,
/// or evicted and back, within one timestamp), by key hash: the next
/// connection on the key at that instant takes the next seq, so no two
/// share a uid. Forgotten when the clock moves on.
struct SameInstant {
    at: Timestamp,
    seqs: std::collections::HashMap<u64, u32>,
}

impl Default for SameInstant {
    fn default() -> Self {
        SameInstant {
            at: Timestamp(i64::MIN),
            seqs: std::collections::HashMap::new(),
        }
    }
}

impl SameInstant {
    /// A connection on the key hashed `hash`, with uid seq `seq`, started
    /// and ended at `at`.
    fn note(&mut self, at: Timestamp, hash: u64, seq: u32) {
        if self.at != at {
            self.seqs.clear();
            self.at = at;
        }
        if self.seqs.len() < SAME_INSTANT_MAX || self.seqs.contains_key(&hash) {
            self.seqs.insert(hash, seq);
        }
    }

    /// The uid seq of a connection starting at `at` on the key hashed
    /// `hash`: 0 unless one on that key started and ended at `at`.
    fn next_seq(&self, at: Timestamp, hash: u64) -> u32 {
        if self.at != at || self.seqs.is_empty() {
            return 0;
        }
        self.seqs.get(&hash).map_or(0, |seq| seq.wrapping_add(1))
    }
}

/// Its settings, size and counters, not its connections.
impl std::fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable")
            .field("live", &self.live)
            .field("flow_limit", &self.flow_limit)
            .field("half_open", &self.half_open_live)
            .field("timer_entries", &self.timer_entries)
            .field("backlog", &self.backlog)
            .field("now", &self.now)
            .field("memory_bytes", &self.memory_bytes())
            .field("stats", &self.stats)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Whether timer entry `t` filed under `slot` still stands for its connection.
fn is_current(flows: &Flows, slot: i64, t: Timer) -> bool {
    flows.filed(t.flow(), t.gen, slot)
}

impl FlowTable {
    /// An empty table.
    ///
    /// Under a memory cap ([`TableConfig::max_memory`]) the hash index is
    /// allocated once, with up to an eighth of the cap (no more than
    /// [`TableConfig::max_flows`] needs), and the live connections
    /// are kept at most at half its capacity so it never grows; the slabs
    /// then grow in exact steps as long as they fit in the rest.
    ///
    /// A configuration [`TableConfig::validate`] refuses is refused here,
    /// with its [`ConfigError`].
    pub fn new(cfg: TableConfig) -> Result<FlowTable, ConfigError> {
        cfg.validate()?;
        let (index, index_buckets, flow_limit) = match cfg.max_memory {
            Some(limit) => {
                // Up to an eighth of the cap, and no larger than the flow
                // cap needs (live flows stay under half the buckets).
                let mut buckets = 16usize;
                while buckets.saturating_mul(2 * INDEX_BUCKET_BYTES) <= limit / 8
                    && buckets / 8 * 7 / 2 < cfg.max_flows
                {
                    buckets *= 2;
                }
                let index = HashTable::with_capacity(buckets / 8 * 7);
                let flow_limit = cfg.max_flows.min(buckets / 8 * 7 / 2).max(1);
                (index, buckets, flow_limit)
            }
            None => (
                HashTable::with_capacity(cfg.max_flows.min(1 << 16)),
                0,
                cfg.max_flows,
            ),
        };
        let mut t = FlowTable {
            index,
            index_buckets,
            hasher: DefaultHashBuilder::default(),
            flows: Flows::default(),
            live: 0,
            flow_limit,
            cfg,
            timers: BTreeMap::new(),
            spare: Vec::new(),
            timer_entries: 0,
            timer_bytes: 0,
            half_open: VecDeque::new(),
            half_open_live: 0,
            stats: TableStats::default(),
            now: Timestamp(i64::MIN),
            backlog: false,
            starts: Vec::new(),
            same_instant: SameInstant::default(),
        };
        t.note_memory();
        Ok(t)
    }

    /// Most connections the table keeps live (the flow cap, or less where
    /// the memory cap's hash index allows fewer).
    pub fn flow_limit(&self) -> usize {
        self.flow_limit
    }

    /// The table's settings.
    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Moves the compact start records made so far to the end of `out`
    /// ([`TableConfig::compact_starts`]; in the order made).
    pub fn take_starts(&mut self, out: &mut Vec<ConnStart>) {
        out.append(&mut self.starts);
    }

    /// Counters so far.
    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Bytes the table holds right now, by capacity (what it costs, not
    /// what it uses): slabs and their free lists, side slabs, hash index,
    /// timer-wheel vectors and half-open queue, plus an estimate of the
    /// timer wheel's B-tree nodes. Constant time; this is what
    /// [`TableConfig::max_memory`] caps.
    pub fn memory_bytes(&self) -> usize {
        let estimated_buckets = self.index.capacity() * 8 / 7;
        self.flows.capacity_bytes()
            + self.index_buckets.max(estimated_buckets) * INDEX_BUCKET_BYTES
            + self.timer_bytes
            + self.timers.len() * TIMER_SLOT_BYTES
            + self.half_open.capacity() * std::mem::size_of::<Timer>()
    }

    /// Where the table's memory goes, part by part (linear in the timer
    /// wheel's seconds: for reports, not per packet). The parts' held
    /// bytes add up to [`FlowTable::memory_bytes`].
    pub fn memory(&self) -> TableMemory {
        let f = &self.flows;
        let part = |name, entries: usize, entry_bytes: usize, held: usize| MemoryPart {
            name,
            entries,
            entry_bytes,
            used: entries * entry_bytes,
            held,
        };
        let tcp = f.tcp.len() - f.tcp_free.len();
        let small = f.small.len() - f.small_free.len();
        let timers: usize = self.timers.values().map(Vec::len).sum();
        let v6 = f.v6.addrs.len() - f.v6.free.len();
        let free = f.tcp_free.len() + f.small_free.len() + f.v6.free.len();
        let free_held = f.tcp_free.capacity() + f.small_free.capacity() + f.v6.free.capacity();
        let timer = std::mem::size_of::<Timer>();
        let index_buckets = self.index_buckets.max(self.index.capacity() * 8 / 7);
        TableMemory {
            live: self.live,
            live_tcp: tcp,
            parts: vec![
                part(
                    "tcp slab",
                    tcp,
                    std::mem::size_of::<TcpEntry>(),
                    f.tcp.capacity_bytes(),
                ),
                part(
                    "udp/icmp/other slab",
                    small,
                    std::mem::size_of::<SmallEntry>(),
                    f.small.capacity_bytes(),
                ),
                part(
                    "tcp cold slots",
                    f.side.tcp.in_use(),
                    f.side.tcp.entry_bytes(),
                    f.side.tcp.capacity_bytes(),
                ),
                part(
                    "extra slots",
                    f.side.extra.in_use(),
                    f.side.extra.entry_bytes(),
                    f.side.extra.capacity_bytes(),
                ),
                part(
                    "out-of-order blocks",
                    f.ooo.in_use(),
                    f.ooo.entry_bytes(),
                    f.ooo.capacity_bytes(),
                ),
                part("ipv6 addresses", v6, 32, f.v6.addrs.capacity() * 32),
                part("slab free lists", free, 4, free_held * 4),
                part(
                    "hash index",
                    self.index.len(),
                    INDEX_BUCKET_BYTES,
                    index_buckets * INDEX_BUCKET_BYTES,
                ),
                part(
                    "timer wheel",
                    timers,
                    timer,
                    self.timer_bytes + self.timers.len() * TIMER_SLOT_BYTES,
                ),
                part(
                    "half-open queue",
                    self.half_open.len(),
                    timer,
                    self.half_open.capacity() * timer,
                ),
            ],
        }
    }

    /// Debug builds: the peak of [`FlowTable::memory_bytes`] covers what
    /// is held now (every allocation was sampled).
    fn debug_check_peak(&self) {
        debug_assert!(
            self.memory_bytes() as u64 <= self.stats.peak_memory_bytes,
            "an allocation went unsampled: peak {}, now {}",
            self.stats.peak_memory_bytes,
            self.memory()
        );
    }

    /// Records the peak of [`FlowTable::memory_bytes`].
    fn note_memory(&mut self) {
        let m = self.memory_bytes() as u64;
        if m > self.stats.peak_memory_bytes {
            self.stats.peak_memory_bytes = m;
        }
    }

    /// The key a packet belongs to, and whether its sender is the key's `lo`
    /// side. One-way ICMP messages keep their direction, as in Zeek.
    pub fn key_of(p: &FlowPacket<'_>) -> (FlowKey, bool) {
        let (src, dst, one_way) = packet_endpoints(p);
        if one_way {
            (
                FlowKey {
                    lo: src,
                    hi: dst,
                    proto: p.ip.proto,
                    vlan: p.vlan,
                    inner_vlan: p.inner_vlan,
                },
                true,
            )
        } else {
            FlowKey::new(src, dst, p.ip.proto, p.vlan, p.inner_vlan)
        }
    }

    fn find(&self, probe: &(SlimKey, Option<[[u8; 16]; 2]>), hash: u64) -> Option<u32> {
        let flows = &self.flows;
        self.index
            .find(hash, |&r| flows.slim(r).matches(probe, &flows.v6))
            .copied()
    }

    /// Applies one flow-bearing packet at capture time `ts`; records of
    /// connections that end on the way are appended to `out`. `complete`
    /// says the payload was fully captured. Returns the packet's key and
    /// sender side.
    ///
    /// Returns `None` if the packet would have started a connection but
    /// was refused: the memory cap left no room and nothing could be
    /// evicted (counted in [`TableStats::refused_no_memory`]), or it is a
    /// bare SYN and the table is full (flow cap or memory cap) and mostly
    /// half-open, with [`TableConfig::refuse_syns_when_full`] (counted in
    /// [`TableStats::refused_syn_when_full`]). A packet stamped earlier than
    /// the latest one is applied at the latest time (counted in
    /// [`TableStats::clock_backwards`]).
    pub fn update(
        &mut self,
        p: &FlowPacket<'_>,
        ts: Timestamp,
        complete: bool,
        out: &mut Vec<ConnRecord>,
    ) -> Option<(FlowKey, bool)> {
        let ts = if ts < self.now {
            self.stats.clock_backwards += 1;
            self.now
        } else {
            ts
        };
        self.advance(ts, out);
        let (key, src_is_lo) = Self::key_of(p);
        let hash = self.hasher.hash_one(key);
        let probe = SlimKey::probe(&key);
        let mut found = self.find(&probe, hash);
        if let Some(r) = found.filter(|_| self.backlog) {
            // Due before this second but not fired yet (the budget): end it
            // (or report interim records) as its timer would have.
            if !self.settle(r, out) {
                found = None;
            }
        }
        if let Some(r) = found {
            let (conn, state) = self.flows.get(r);
            let (deadline, reason) = conn.deadline(state, &self.cfg);
            if deadline <= ts && reason == EndReason::Active {
                out.push(self.flows.record(r, EndReason::Active, deadline));
                self.stats.ended[EndReason::Active as usize] += 1;
                self.flows.get_mut(r).0.interim_emitted();
            } else if deadline <= ts {
                self.end(r, reason, deadline, out);
                found = None;
            } else if conn.is_reuse(state, p) {
                self.end(r, EndReason::Reuse, ts, out);
                found = None;
            }
        }
        let created = found.is_none();
        // Side slots the packet may take (the only growth of an existing
        // connection's memory besides its timer entry).
        let side_before = self.flows.side_allocated();
        let r = match found {
            Some(r) => r,
            None => {
                let (tcp, bare_syn) = match p.transport {
                    crate::decode::Transport::Tcp(ref seg) => {
                        (true, seg.flags.syn() && !seg.flags.ack())
                    }
                    _ => (false, false),
                };
                if bare_syn
                    && self.cfg.refuse_syns_when_full
                    && !self.has_room(tcp, out)
                    && 2 * self.half_open_live >= self.live
                {
                    // Emergency: the table is full and mostly half-open (a
                    // SYN flood); this SYN would only push out another
                    // half-open connection.
                    self.stats.refused_syn_when_full += 1;
                    return None;
                }
                if !self.make_room(tcp, ts, out) {
                    self.stats.refused_no_memory += 1;
                    return None;
                }
                self.stats.created += 1;
                let (conn, state) = Conn::new(p, src_is_lo, ts);
                let r = self.flows.insert(probe, conn, state);
                let (flows, hasher) = (&self.flows, &self.hasher);
                self.index
                    .insert_unique(hash, r, |&r| hasher.hash_one(flows.key(r)));
                self.live += 1;
                self.stats.peak_live = self.stats.peak_live.max(self.live as u64);
                r
            }
        };
        let was_half_open = !created && self.flows.is_half_open(r);
        let (conn, state, side) = self.flows.get_mut(r);
        if created {
            // After connections on this key that started and ended at this
            // instant (a reused or evicted 5-tuple): the next uid seq.
            conn.set_uid_seq(side, self.same_instant.next_seq(ts, hash));
        }
        conn.update(state, side, p, src_is_lo, ts, complete, &self.cfg);
        if created && self.cfg.report_starts {
            let compact = if self.cfg.compact_starts {
                let (conn, state) = self.flows.get(r);
                conn.start_record(state, &self.flows.side, &self.flows.key(r), ts)
            } else {
                None
            };
            match compact {
                Some(start) => self.starts.push(start),
                None => out.push(self.flows.record(r, EndReason::Start, ts)),
            }
            self.stats.ended[EndReason::Start as usize] += 1;
        }
        let mut grew = created;
        if let Some((slot, gen)) = self.flows.due_earlier(r, &self.cfg) {
            self.file_timer(slot, Timer::new(r, gen));
            grew = true;
        }
        let half_open = self.flows.is_half_open(r);
        if half_open && !was_half_open {
            self.half_open_live += 1;
            self.half_open.push_back(Timer::new(r, self.flows.gen(r)));
            grew = true;
        } else if was_half_open && !half_open {
            self.half_open_live -= 1;
        }
        self.purge_stale();
        // The peak is sampled whenever the table may have allocated: a new
        // connection, a timer entry, a side slot.
        if grew || self.flows.side_allocated() != side_before {
            self.note_memory();
        }
        self.debug_check_peak();
        Some((key, src_is_lo))
    }

    /// Whether a new connection (in the TCP slab with `tcp`) fits without
    /// evicting one.
    fn has_room(&mut self, tcp: bool, out: &mut Vec<ConnRecord>) -> bool {
        self.drain_for_room(tcp, out);
        self.live < self.flow_limit && self.slot_available(tcp)
    }

    /// While a backlog is left and a new connection (in the TCP slab with
    /// `tcp`) would find no room without growing a slab or evicting, fires
    /// backlog entries one at a time: the table without a budget would
    /// have ended those connections already, so room is made (or evictions
    /// chosen) exactly as it would have been.
    fn drain_for_room(&mut self, tcp: bool, out: &mut Vec<ConnRecord>) {
        while self.backlog {
            let (free, used, allocated) = self.flows.slab_slots(tcp);
            let slot_free = self.cfg.max_memory.is_none() || free > 0 || used < allocated;
            if self.live < self.flow_limit && slot_free {
                return;
            }
            self.expire(self.now, 1, out);
        }
    }

    /// Processes what the timers of the live connection `r` would have
    /// done before the current second (`fire`, repeated): interim records,
    /// then its end. `false` if it ended.
    fn settle(&mut self, r: u32, out: &mut Vec<ConnRecord>) -> bool {
        let now_sec = self.now.secs();
        loop {
            let (conn, state) = self.flows.get(r);
            let (deadline, reason) = conn.deadline(state, &self.cfg);
            if deadline.secs() >= now_sec {
                return true;
            }
            if reason != EndReason::Active {
                self.end(r, reason, deadline, out);
                return false;
            }
            out.push(self.flows.record(r, EndReason::Active, deadline));
            self.stats.ended[EndReason::Active as usize] += 1;
            self.flows.get_mut(r).0.interim_emitted();
        }
    }

    /// Makes room for one new connection (in the TCP slab with `tcp`):
    /// evicts half-open connections first, then the connection nearest to
    /// expiry. `false` if no room could be made.
    fn make_room(&mut self, tcp: bool, now: Timestamp, out: &mut Vec<ConnRecord>) -> bool {
        self.drain_for_room(tcp, out);
        loop {
            let below_limit = self.live < self.flow_limit;
            if below_limit && self.slot_available(tcp) {
                return true;
            }
            // Below the flow limit only the slab of this kind is short, and
            // only a connection of the same kind frees a slot in it.
            let kind = below_limit.then_some(tcp);
            if kind != Some(false) && self.evict_half_open(now, out) {
                self.stats.evicted_half_open += 1;
                continue;
            }
            if self.evict_nearest(kind, now, out) {
                self.stats.evicted_oldest += 1;
                continue;
            }
            return false;
        }
    }

    /// Whether a slot is free in the slab (growing it if the memory cap
    /// allows: by up to its size, in one exact step).
    fn slot_available(&mut self, tcp: bool) -> bool {
        let (free, used, allocated) = self.flows.slab_slots(tcp);
        if free > 0 || used < allocated {
            return true;
        }
        let Some(limit) = self.cfg.max_memory else {
            return true;
        };
        // A TCP slot comes with room for its cold slot (reserved with it
        // below), which connections take when they close or see anomalies.
        let slot_bytes = if tcp {
            std::mem::size_of::<TcpEntry>() + std::mem::size_of::<TcpCold>()
        } else {
            std::mem::size_of::<SmallEntry>()
        } + PER_FLOW_OVERHEAD;
        let (_, _, tcp_slots) = self.flows.slab_slots(true);
        let (_, _, small_slots) = self.flows.slab_slots(false);
        // What is held now, with the per-slot overhead budgeted for every
        // slot (not only what the timers hold at this moment), and a
        // reserve for the timer wheel's seconds and spare vectors.
        let reserve = self.index_buckets * INDEX_BUCKET_BYTES + limit / 32;
        let committed =
            self.flows.capacity_bytes() + (tcp_slots + small_slots) * PER_FLOW_OVERHEAD + reserve;
        // Slabs never shrink, so neither kind may take more than three
        // quarters of the slab budget: a SYN flood cannot starve UDP of
        // room for good, nor a UDP flood TCP.
        let share = limit.saturating_sub(reserve) / 4 * 3 / slot_bytes;
        let room =
            (limit.saturating_sub(committed) / slot_bytes).min(share.saturating_sub(allocated));
        let grow = room
            .min(used.max(16))
            .min(self.flow_limit.saturating_sub(used));
        if grow == 0 {
            return false;
        }
        self.flows.reserve(tcp, grow);
        true
    }

    /// Evicts the oldest half-open connection, if there is one.
    fn evict_half_open(&mut self, now: Timestamp, out: &mut Vec<ConnRecord>) -> bool {
        while let Some(t) = self.half_open.pop_front() {
            if self.flows.gen(t.flow()) == t.gen && self.flows.is_half_open(t.flow()) {
                self.end(t.flow(), EndReason::Evicted, now, out);
                return true;
            }
        }
        false
    }

    /// Drops stale timer-wheel and half-open queue entries once they
    /// outnumber the live connections (amortised constant time).
    fn purge_stale(&mut self) {
        let allowed = 2 * self.live + STALE_SLACK;
        if self.timer_entries > allowed {
            let flows = &self.flows;
            let mut entries = 0;
            let mut bytes = 0;
            self.timers.retain(|&slot, due| {
                due.retain(|&t| is_current(flows, slot, t));
                if due.capacity() > 2 * due.len() + 4 {
                    due.shrink_to(due.len() + 4);
                }
                entries += due.len();
                bytes += due.capacity() * std::mem::size_of::<Timer>();
                !due.is_empty()
            });
            self.timer_entries = entries;
            self.timer_bytes = bytes + self.spare_bytes();
        }
        if self.half_open.len() > allowed {
            let flows = &self.flows;
            self.half_open
                .retain(|t| flows.gen(t.flow()) == t.gen && flows.is_half_open(t.flow()));
            if self.half_open.capacity() > 2 * self.half_open.len() + STALE_SLACK {
                self.half_open.shrink_to(self.half_open.len() + STALE_SLACK);
            }
        }
    }

    fn spare_bytes(&self) -> usize {
        self.spare
            .iter()
            .map(|v| v.capacity() * std::mem::size_of::<Timer>())
            .sum()
    }

    /// Keeps an emptied timer vector for reuse, or frees it.
    fn recycle(&mut self, due: Vec<Timer>) {
        if self.spare.len() < MAX_SPARE && due.capacity() <= MAX_SPARE_ENTRIES {
            self.spare.push(due);
        } else {
            self.timer_bytes -= due.capacity() * std::mem::size_of::<Timer>();
        }
    }

    /// Start time (first packet) of the live connection on `key`, if any,
    /// and its uid's `seq` (the earlier connections on `key` that started
    /// at the same instant, almost always 0). With the key, they name the
    /// connection: its uid is
    /// [`conn_uid`](crate::conn::conn_uid)`(key, start, seq)`.
    pub fn start_of(&self, key: &FlowKey) -> Option<(Timestamp, u32)> {
        let hash = self.hasher.hash_one(key);
        self.find(&SlimKey::probe(key), hash).map(|r| {
            let conn = self.flows.get(r).0;
            (conn.start(), conn.uid_seq(&self.flows.side))
        })
    }

    /// Counts a non-first IP fragment for an existing connection; `false`
    /// if the connection is gone. A connection left due in the timer
    /// backlog ([`TableConfig::max_timer_expires`]) ends first (its record
    /// goes to `out`), as it would have without the budget.
    pub fn add_fragment(
        &mut self,
        key: &FlowKey,
        src_is_lo: bool,
        ip_len: u32,
        ts: Timestamp,
        out: &mut Vec<ConnRecord>,
    ) -> bool {
        let hash = self.hasher.hash_one(key);
        let found = self.find(&SlimKey::probe(key), hash);
        match found.filter(|&r| !self.backlog || self.settle(r, out)) {
            Some(r) => {
                let side_before = self.flows.side_allocated();
                let (conn, state, side) = self.flows.get_mut(r);
                conn.add_fragment(state, side, src_is_lo, ip_len, ts);
                if self.flows.side_allocated() != side_before {
                    // Counters past 32 bits took a side slot.
                    self.note_memory();
                }
                self.debug_check_peak();
                true
            }
            None => false,
        }
    }

    /// Moves the table's clock to `now`: connections due before `now`'s
    /// second end (or report interim records) and go to `out`, at most
    /// [`TableConfig::max_timer_expires`] timer entries per call; the rest
    /// stay due (the backlog, see [`FlowTable::backlog_since`]) for the
    /// next calls.
    ///
    /// The wheel holds only the seconds that have entries, in order, so a
    /// jump of any length visits the due entries, never the seconds in
    /// between. A `now` earlier than the latest time seen moves nothing
    /// (a backlog is still worked on).
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<ConnRecord>) {
        self.expire(now.max(self.now), self.cfg.max_timer_expires, out);
        self.debug_check_peak();
    }

    /// Start of the earliest second with timer entries due but not fired
    /// (the backlog [`TableConfig::max_timer_expires`] leaves), if any:
    /// records still to come from the table are due no earlier than this,
    /// or than the start of the current second when there is no backlog.
    pub fn backlog_since(&self) -> Option<Timestamp> {
        if !self.backlog {
            return None;
        }
        let (&slot, _) = self.timers.first_key_value()?;
        (slot < self.now.secs()).then(|| Timestamp(slot.saturating_mul(1_000_000_000)))
    }

    /// [`FlowTable::advance`] firing at most `budget` entries (0: all).
    fn expire(&mut self, now: Timestamp, budget: usize, out: &mut Vec<ConnRecord>) {
        self.now = now;
        let now_sec = now.secs();
        let mut left = if budget == 0 { usize::MAX } else { budget };
        let mut stopped = false;
        let mut fired = false;
        while let Some(entry) = self.timers.first_entry() {
            let slot = *entry.key();
            if slot >= now_sec {
                break;
            }
            if left == 0 {
                stopped = true;
                break;
            }
            fired = true;
            let mut due = entry.remove();
            let n = due.len().min(left);
            left -= n;
            self.timer_entries -= n;
            for &t in &due[..n] {
                self.fire(slot, t, now, out);
            }
            if n == due.len() {
                due.clear();
                self.recycle(due);
            } else {
                due.drain(..n);
                self.refile_rest(slot, due);
            }
        }
        self.backlog = stopped;
        if fired {
            // Only firing files connections again (and may grow the wheel).
            self.note_memory();
        }
    }

    /// Puts the entries of `slot` left by a budget back in front of any
    /// filed there meanwhile.
    fn refile_rest(&mut self, slot: i64, mut due: Vec<Timer>) {
        if let Some(mut filed) = self.timers.remove(&slot) {
            let before = due.capacity();
            due.append(&mut filed);
            self.timer_bytes += (due.capacity() - before) * std::mem::size_of::<Timer>();
            self.recycle(filed);
        }
        self.timers.insert(slot, due);
    }

    /// Whether timer entry `t` filed under `slot` still stands for its
    /// connection.
    fn current(&self, slot: i64, t: Timer) -> bool {
        is_current(&self.flows, slot, t)
    }

    fn fire(&mut self, slot: i64, t: Timer, now: Timestamp, out: &mut Vec<ConnRecord>) {
        if !self.current(slot, t) {
            return; // ended, or filed again under an earlier second since
        }
        let r = t.flow();
        let (conn, state) = self.flows.get(r);
        let (deadline, reason) = conn.deadline(state, &self.cfg);
        if deadline > now {
            self.flows.set_timer_slot(r, deadline.secs());
            self.file(deadline.secs(), r);
        } else if reason == EndReason::Active {
            out.push(self.flows.record(r, EndReason::Active, deadline));
            self.stats.ended[EndReason::Active as usize] += 1;
            self.flows.get_mut(r).0.interim_emitted();
            let (conn, state) = self.flows.get(r);
            let next = conn.deadline(state, &self.cfg).0.secs();
            // An active timeout of at least a second (checked at
            // construction) puts the next interim record in a later
            // second: this connection is not fired again in this slot.
            debug_assert!(next > slot || conn.deadline(state, &self.cfg).1 != EndReason::Active);
            self.flows.set_timer_slot(r, next);
            self.file(next, r);
        } else {
            self.end(r, reason, deadline, out);
        }
    }

    fn file(&mut self, slot: i64, r: u32) {
        self.file_timer(slot, Timer::new(r, self.flows.gen(r)));
    }

    /// Files timer entry `t` under `slot`.
    fn file_timer(&mut self, slot: i64, t: Timer) {
        let spare = &mut self.spare;
        let due = self
            .timers
            .entry(slot)
            .or_insert_with(|| spare.pop().unwrap_or_default());
        let before = due.capacity();
        due.push(t);
        self.timer_bytes += (due.capacity() - before) * std::mem::size_of::<Timer>();
        self.timer_entries += 1;
    }

    /// Removes a connection and emits its record, ended at capture time `at`.
    fn end(&mut self, r: u32, reason: EndReason, at: Timestamp, out: &mut Vec<ConnRecord>) {
        out.push(self.flows.record(r, reason, at));
        self.stats.ended[reason as usize] += 1;
        if self.flows.is_half_open(r) {
            self.half_open_live -= 1;
        }
        let key = self.flows.key(r);
        let hash = self.hasher.hash_one(key);
        let conn = self.flows.get(r).0;
        if conn.start() == self.now {
            let seq = conn.uid_seq(&self.flows.side);
            self.same_instant.note(self.now, hash, seq);
        }
        if let Ok(e) = self.index.find_entry(hash, |&x| x == r) {
            e.remove();
        }
        self.flows.remove(r);
        self.live -= 1;
        // The slab's free list may have grown.
        self.note_memory();
    }

    /// Evicts the live connection nearest to its deadline (of the TCP
    /// slab, or of the other one, when `kind` says which); `false` if there
    /// is none.
    fn evict_nearest(
        &mut self,
        kind: Option<bool>,
        now: Timestamp,
        out: &mut Vec<ConnRecord>,
    ) -> bool {
        let flows = &self.flows;
        let mut found = None;
        let mut emptied = Vec::new();
        for (&slot, due) in self.timers.iter_mut() {
            // Stale entries at the end are dropped on the way.
            while due.last().is_some_and(|&t| !is_current(flows, slot, t)) {
                due.pop();
                self.timer_entries -= 1;
            }
            let wanted = |t: &Timer| {
                is_current(flows, slot, *t)
                    && kind.is_none_or(|tcp| (t.flow() & TCP_BIT != 0) == tcp)
            };
            if let Some(i) = due.iter().rposition(wanted) {
                found = Some(due.swap_remove(i));
                self.timer_entries -= 1;
            }
            if due.is_empty() {
                emptied.push(slot);
            }
            if found.is_some() {
                break;
            }
        }
        for slot in emptied {
            if let Some(due) = self.timers.remove(&slot) {
                self.recycle(due);
            }
        }
        match found {
            Some(t) => {
                self.end(t.flow(), EndReason::Evicted, now, out);
                true
            }
            None => false,
        }
    }

    /// Ends every live connection with `reason` (end of input, shutdown),
    /// in a deterministic order: by start time, then key. Their records are
    /// stamped with the table's latest capture time.
    pub fn flush(&mut self, reason: EndReason, out: &mut Vec<ConnRecord>) {
        if self.backlog {
            // What is due ends as due, not with `reason`.
            self.expire(self.now, 0, out);
        }
        let flows = &self.flows;
        let mut all: Vec<u32> = flows.live().collect();
        all.sort_by(|&a, &b| {
            (flows.get(a).0.start())
                .cmp(&flows.get(b).0.start())
                .then(flows.key(a).cmp(&flows.key(b)))
        });
        for r in all {
            let (conn, state) = self.flows.get(r);
            let reason = conn.flush_reason(state, reason);
            out.push(self.flows.record(r, reason, self.now));
            self.stats.ended[reason as usize] += 1;
        }
        self.flows.clear();
        self.index.clear();
        self.live = 0;
        self.timers.clear();
        self.timer_entries = 0;
        self.half_open.clear();
        self.half_open_live = 0;
        self.timer_bytes = self.spare_bytes();
    }
}

/// Bytes of table memory per live TCP connection (the largest kind): its
/// slab entry (key, common counters and times, packed TCP state machine and
/// history), one timer-wheel entry, and its share of the hash index just
/// after the index has doubled (half full: two 4-byte slots plus two
/// control bytes). Not included: slab growth slack, and the side slots
/// (see [`FlowTable::memory`]) that only some connections take, on their
/// first FIN, RST, retransmission, zero window or gap, tunnel, or counter
/// past 32 bits: one side slot costs about as much as a slab entry again.
/// See [`bytes_per_flow_non_tcp`] for UDP / ICMP / other.
pub fn bytes_per_flow() -> usize {
    std::mem::size_of::<TcpEntry>() + std::mem::size_of::<Timer>() + 2 * 5
}

/// [`bytes_per_flow`] for a UDP, ICMP or other-protocol connection.
pub fn bytes_per_flow_non_tcp() -> usize {
    std::mem::size_of::<SmallEntry>() + std::mem::size_of::<Timer>() + 2 * 5
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::PacketView;
    use crate::record::ConnState;
    use crate::LinkType;
    use etherparse::PacketBuilder;
    use std::time::Duration;

    /// An Ethernet/IPv4/TCP frame from `src` to `dst`.
    fn tcp(
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        ack: Option<u32>,
        flags: &str,
        len: usize,
    ) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src.0, dst.0, 64)
            .tcp(src.1, dst.1, seq, 1000);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('R') {
            b = b.rst();
        }
        if let Some(a) = ack {
            b = b.ack(a);
        }
        let mut v = Vec::new();
        b.write(&mut v, &vec![0u8; len]).unwrap();
        v
    }

    fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16), len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src.0, dst.0, 64)
            .udp(src.1, dst.1)
            .write(&mut v, &vec![0u8; len])
            .unwrap();
        v
    }

    fn feed(t: &mut FlowTable, frame: &[u8], secs: f64, out: &mut Vec<ConnRecord>) {
        let ts = Timestamp((secs * 1e9) as i64);
        let view = PacketView::parse(frame, LinkType::ETHERNET, ts, frame.len() as u32).unwrap();
        t.update(&view.inner, ts, true, out).unwrap();
    }

    const C: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
    const S: ([u8; 4], u16) = ([10, 0, 0, 2], 22);

    #[test]
    fn slim_keys_give_back_every_family_and_vlan_combination() {
        let mut v6 = V6Slab::default();
        let ep = |a: &str, port| Endpoint {
            addr: a.parse().unwrap(),
            port,
        };
        let keys = [
            ("10.0.0.1", "10.0.0.2", None, None),
            ("10.0.0.1", "255.255.255.255", Some(0), None),
            ("2001:db8::1", "2001:db8::2", Some(100), Some(7)),
            ("::ffff:10.0.0.1", "2001:db8::2", None, Some(0)),
            ("10.0.0.1", "::1", None, None),
        ];
        let mut slims = Vec::new();
        for (lo, hi, vlan, inner_vlan) in keys {
            let key = FlowKey {
                lo: ep(lo, 1),
                hi: ep(hi, 65535),
                proto: 17,
                vlan,
                inner_vlan,
            };
            let slim = SlimKey::new(&key, &mut v6);
            assert_eq!(slim.get(&v6), key);
            slims.push((slim, key));
        }
        for (slim, key) in &slims {
            assert_eq!(slim.get(&v6), *key, "slab slots stay apart");
        }
        assert_eq!(v6.addrs.len(), 3);
        slims[2].0.release(&mut v6);
        assert_eq!(v6.free, vec![0], "the first key in the slab");
    }

    #[test]
    fn slab_entries_fit_their_budget() {
        assert_eq!(std::mem::size_of::<TcpEntry>(), 132);
        assert_eq!(std::mem::size_of::<SmallEntry>(), 80);
        assert_eq!(std::mem::size_of::<Timer>(), 6);
        assert!(bytes_per_flow() <= 160);
        assert_eq!(SideSlab::default().tcp.entry_bytes(), 96);
    }

    #[test]
    fn counters_past_32_bits_stay_exact() {
        let mut t = FlowTable::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        let (a, b) = (([10, 0, 0, 1], 5000), ([10, 0, 0, 2], 9000));
        let frame = udp(a, b, 20);
        feed(&mut t, &frame, 0.0, &mut out);
        let ts = Timestamp(1_000_000_000);
        let view = PacketView::parse(&frame, LinkType::ETHERNET, ts, frame.len() as u32).unwrap();
        let (key, src_is_lo) = FlowTable::key_of(&view.inner);
        // Non-first fragments add IP bytes only: two of 4 GiB - 1 each.
        assert!(t.add_fragment(&key, src_is_lo, u32::MAX, ts, &mut out));
        assert!(t.add_fragment(&key, src_is_lo, u32::MAX, ts, &mut out));
        feed(&mut t, &udp(b, a, 30), 2.0, &mut out);
        assert_eq!(t.check_invariants(), Ok(()));
        t.flush(EndReason::Eof, &mut out);
        let r = &out[0];
        assert_eq!(r.orig_ip_bytes, 48 + 2 * u64::from(u32::MAX));
        assert_eq!((r.orig_pkts, r.resp_pkts, r.resp_ip_bytes), (1, 1, 58));
        assert_eq!((r.orig_bytes, r.resp_bytes), (Some(20), Some(30)));
        assert_eq!(r.conn_state, ConnState::SF);
    }

    #[test]
    fn a_timer_slot_decades_away_is_kept_exactly() {
        let secs = 3_000_000_000u64; // 95 years: past a 32-bit offset
        let cfg = TableConfig {
            udp_idle: Duration::from_secs(secs),
            active_timeout: None,
            ..TableConfig::default()
        };
        let mut t = FlowTable::new(cfg).unwrap();
        let mut out = Vec::new();
        feed(
            &mut t,
            &udp(([10, 0, 0, 1], 5000), ([10, 0, 0, 2], 9000), 20),
            0.0,
            &mut out,
        );
        assert_eq!(t.check_invariants(), Ok(()));
        t.advance(Timestamp(secs as i64 * 1_000_000_000), &mut out);
        assert!(out.is_empty(), "due at the end of that second");
        t.advance(Timestamp((secs as i64 + 2) * 1_000_000_000), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end_reason, EndReason::Idle);
        assert_eq!(out[0].emitted, Timestamp(secs as i64 * 1_000_000_000));
        assert!(t.is_empty());
    }

    #[test]
    fn memory_breakdown_adds_up_to_memory_bytes() {
        let mut t = FlowTable::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..300u32 {
            let c = client(i);
            feed(&mut t, &tcp(c, S, 100, None, "S", 0), 0.0, &mut out);
            feed(&mut t, &tcp(S, c, 500, Some(101), "SA", 0), 0.1, &mut out);
            feed(&mut t, &tcp(c, S, 101, Some(501), "FA", 0), 0.2, &mut out);
            feed(&mut t, &udp(c, S, 10), 0.3, &mut out);
        }
        let m = t.memory();
        assert_eq!(m.live, 600);
        assert_eq!(m.live_tcp, 300);
        assert_eq!(m.held(), t.memory_bytes(), "{m}");
        let cold = m.parts.iter().find(|p| p.name == "tcp cold slots").unwrap();
        assert_eq!(cold.entries, 300, "every FIN takes a cold slot");
    }

    #[test]
    fn long_flow_reports_interim_records_then_its_final_record() {
        let cfg = TableConfig {
            active_timeout: Some(Duration::from_secs(60)),
            ..TableConfig::default()
        };
        let mut t = FlowTable::new(cfg).unwrap();
        let mut out = Vec::new();
        feed(&mut t, &tcp(C, S, 100, None, "S", 0), 0.0, &mut out);
        feed(&mut t, &tcp(S, C, 500, Some(101), "SA", 0), 0.1, &mut out);
        for i in 0..30u32 {
            let seq = 101 + i * 10;
            feed(
                &mut t,
                &tcp(C, S, seq, Some(501), "A", 10),
                1.0 + f64::from(i) * 5.0,
                &mut out,
            );
        }
        let interim: Vec<ConnRecord> = out
            .iter()
            .filter(|r| r.end_reason == EndReason::Active)
            .cloned()
            .collect();
        assert_eq!(interim.len(), 2, "at 60 s and 120 s");
        assert!(interim.iter().all(|r| r.uid == interim[0].uid));
        assert!(
            interim[1].orig_pkts > interim[0].orig_pkts,
            "cumulative totals"
        );
        t.flush(EndReason::Eof, &mut out);
        let last = out.last().unwrap();
        assert_eq!(last.end_reason, EndReason::Eof);
        assert_eq!(last.uid, interim[0].uid);
        assert_eq!(last.orig_pkts, 31);
        assert_eq!(last.orig_bytes, Some(300));
        assert_eq!(t.stats().ended(EndReason::Active), 2);
    }

    /// Regression: an active timeout of zero (or 1 ns) made `fire` file
    /// the connection again under the second it was firing, forever, with
    /// an interim record each time; 1 ms gave a thousand a second. Such
    /// settings are refused; a whole second gives one record a second.
    #[test]
    fn active_timeouts_under_a_second_are_refused_and_one_second_gives_one_record_a_second() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(1),
        ] {
            let cfg = TableConfig {
                active_timeout: Some(d),
                ..TableConfig::default()
            };
            let want = Err(ConfigError::ActiveTimeoutTooShort {
                value: d,
                min: Duration::from_secs(1),
            });
            assert_eq!(FlowTable::new(cfg.clone()).map(|_| ()), want);
            assert_eq!(crate::FlowMeter::new(cfg).map(|_| ()), want);
        }
        let cfg = TableConfig {
            active_timeout: Some(crate::config::MIN_ACTIVE_TIMEOUT),
            ..TableConfig::default()
        };
        let mut t = FlowTable::new(cfg).unwrap();
        let mut out = Vec::new();
        let (a, b) = (([10, 0, 0, 1], 5000), ([10, 0, 0, 2], 9000));
        // One UDP flow, a packet every 10 ms for 2.5 s.
        for i in 0..250 {
            feed(&mut t, &udp(a, b, 20), 0.3 + f64::from(i) * 0.01, &mut out);
        }
        t.flush(EndReason::Eof, &mut out);
        let interim: Vec<_> = out
            .iter()
            .filter(|r| r.end_reason == EndReason::Active)
            .map(|r| r.orig_pkts)
            .collect();
        // Due at 1.3 s and 2.3 s, each with the packets before it.
        assert_eq!(interim, [100, 200]);
        assert_eq!(out.len(), 3);
    }

    /// Between two packets a connection reports at most its idle timeout
    /// / the active timeout interim records, however far the clock jumps.
    #[test]
    fn a_clock_jump_gives_at_most_idle_over_active_interim_records() {
        for budget in [0, 300] {
            let cfg = TableConfig {
                active_timeout: Some(Duration::from_secs(1)),
                udp_idle: Duration::from_secs(60),
                max_timer_expires: budget,
                ..TableConfig::default()
            };
            let mut t = FlowTable::new(cfg).unwrap();
            let mut out = Vec::new();
            let (a, b) = (([10, 0, 0, 1], 5000), ([10, 0, 0, 2], 9000));
            feed(&mut t, &udp(a, b, 20), 0.0, &mut out);
            feed(&mut t, &udp(b, a, 20), 0.5, &mut out);
            // Ten years later, another flow.
            feed(&mut t, &udp(a, S, 20), 315_360_000.0, &mut out);
            t.flush(EndReason::Eof, &mut out);
            let interim = out
                .iter()
                .filter(|r| r.end_reason == EndReason::Active)
                .count();
            assert_eq!(interim, 60, "budget {budget}: at 1 s, 2 s, .. 60 s");
            assert_eq!(t.stats().ended(EndReason::Idle), 1, "at 60.5 s");
        }
    }

    #[test]
    fn idle_udp_flow_ends_and_a_later_packet_starts_a_new_one() {
        let mut t = FlowTable::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        let (a, b) = (([10, 0, 0, 1], 5000), ([10, 0, 0, 2], 9000));
        feed(&mut t, &udp(a, b, 20), 0.0, &mut out);
        feed(&mut t, &udp(b, a, 30), 0.5, &mut out);
        feed(&mut t, &udp(a, b, 20), 59.0, &mut out);
        assert!(out.is_empty(), "59 s of silence is below the 60 s timeout");
        feed(&mut t, &udp(a, b, 20), 200.0, &mut out);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(
            (r.end_reason, r.conn_state),
            (EndReason::Idle, ConnState::SF)
        );
        assert_eq!(
            (r.orig_pkts, r.resp_pkts, r.orig_bytes, r.resp_bytes),
            (2, 1, Some(40), Some(30))
        );
        assert_eq!(t.len(), 1, "the late packet started a new flow");
    }

    #[test]
    fn timers_alone_end_idle_flows() {
        let mut t = FlowTable::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        feed(
            &mut t,
            &udp(([10, 0, 0, 1], 5000), ([10, 0, 0, 2], 9000), 20),
            0.0,
            &mut out,
        );
        t.advance(Timestamp(30_000_000_000), &mut out);
        assert!(out.is_empty());
        t.advance(Timestamp(62_000_000_000), &mut out);
        assert_eq!(out.len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn closed_connection_lingers_to_absorb_late_packets() {
        let mut t = FlowTable::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        feed(&mut t, &tcp(C, S, 100, None, "S", 0), 0.0, &mut out);
        feed(&mut t, &tcp(S, C, 500, Some(101), "SA", 0), 0.1, &mut out);
        feed(&mut t, &tcp(C, S, 101, Some(501), "FA", 0), 0.2, &mut out);
        feed(&mut t, &tcp(S, C, 501, Some(102), "FA", 0), 0.3, &mut out);
        feed(&mut t, &tcp(C, S, 102, Some(502), "A", 0), 2.0, &mut out);
        assert!(out.is_empty());
        t.advance(Timestamp(7_000_000_000), &mut out);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(
            (r.end_reason, r.conn_state, r.history.as_str()),
            (EndReason::Fin, ConnState::SF, "ShFfA")
        );
        assert_eq!(r.orig_pkts, 3, "the late ACK joined the closed connection");
        assert_eq!(
            r.duration,
            Some(Duration::from_millis(300)),
            "but did not extend it"
        );
    }

    #[test]
    fn new_syn_on_an_active_tuple_starts_a_new_connection() {
        let mut t = FlowTable::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        feed(&mut t, &tcp(C, S, 100, None, "S", 0), 0.0, &mut out);
        feed(&mut t, &tcp(C, S, 100, None, "S", 0), 1.0, &mut out);
        assert!(out.is_empty(), "same ISN: a retransmission");
        feed(&mut t, &tcp(C, S, 9000, None, "S", 0), 2.0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end_reason, EndReason::Reuse);
        assert_eq!(out[0].orig_pkts, 2);
    }

    #[test]
    fn connections_reusing_a_tuple_within_one_timestamp_get_uids_of_their_own() {
        for compact_starts in [false, true] {
            let cfg = TableConfig {
                report_starts: true,
                compact_starts,
                ..TableConfig::default()
            };
            let mut t = FlowTable::new(cfg).unwrap();
            let mut out = Vec::new();
            // Three SYNs with new sequence numbers, all at one instant.
            for isn in [100, 9000, 70000] {
                feed(&mut t, &tcp(C, S, isn, None, "S", 0), 5.0, &mut out);
            }
            // A fourth a microsecond later: seq 0 again.
            feed(
                &mut t,
                &tcp(C, S, 900_000, None, "S", 0),
                5.000001,
                &mut out,
            );
            t.flush(EndReason::Eof, &mut out);
            let mut starts = Vec::new();
            t.take_starts(&mut starts);
            let mut uids: Vec<String> = out
                .iter()
                .filter(|r| r.end_reason != EndReason::Start)
                .map(|r| r.uid.clone())
                .collect();
            assert_eq!(uids.len(), 4, "{out:#?}");
            let ts = Timestamp(5_000_000_000);
            let frame = tcp(C, S, 100, None, "S", 0);
            let view =
                PacketView::parse(&frame, LinkType::ETHERNET, ts, frame.len() as u32).unwrap();
            let key = FlowTable::key_of(&view.inner).0;
            assert_eq!(uids[0], crate::conn::conn_uid(&key, ts, 0));
            assert_eq!(uids[1], crate::conn::conn_uid(&key, ts, 1));
            assert_eq!(uids[2], crate::conn::conn_uid(&key, ts, 2));
            assert_eq!(
                uids[3],
                crate::conn::conn_uid(&key, Timestamp(5_000_001_000), 0)
            );
            // Start records carry the uid of the connection they start.
            let mut start_uids: Vec<String> = out
                .iter()
                .filter(|r| r.end_reason == EndReason::Start)
                .map(|r| r.uid.clone())
                .chain(starts.iter().map(|s| s.uid().to_owned()))
                .collect();
            start_uids.sort();
            uids.sort();
            uids.dedup();
            assert_eq!(uids.len(), 4, "every uid distinct");
            assert_eq!(start_uids, uids);
        }
    }

    #[test]
    fn a_tuple_evicted_and_back_within_one_timestamp_gets_a_uid_of_its_own() {
        let cfg = TableConfig {
            max_flows: 1,
            refuse_syns_when_full: false,
            ..TableConfig::default()
        };
        let mut t = FlowTable::new(cfg).unwrap();
        let mut out = Vec::new();
        let other = ([10, 0, 0, 9], 40009);
        // K, then L (evicting K), then K again: all at one instant.
        feed(&mut t, &tcp(C, S, 100, None, "S", 0), 5.0, &mut out);
        feed(&mut t, &tcp(other, S, 200, None, "S", 0), 5.0, &mut out);
        feed(&mut t, &tcp(C, S, 300, None, "S", 0), 5.0, &mut out);
        // L is evicted by K in turn, and K comes back once more.
        feed(&mut t, &tcp(other, S, 400, None, "S", 0), 5.0, &mut out);
        feed(&mut t, &tcp(C, S, 500, None, "S", 0), 5.0, &mut out);
        t.flush(EndReason::Eof, &mut out);
        assert_eq!(out.len(), 5, "{out:#?}");
        assert_eq!(
            out.iter()
                .filter(|r| r.end_reason == EndReason::Evicted)
                .count(),
            4
        );
        let mut uids: Vec<&str> = out.iter().map(|r| r.uid.as_str()).collect();
        uids.sort_unstable();
        uids.dedup();
        assert_eq!(uids.len(), 5, "every connection its own uid: {out:#?}");
        // The clock moving on forgets the instant: seq 0 again.
        feed(&mut t, &tcp(C, S, 600, None, "S", 0), 6.0, &mut out);
        t.flush(EndReason::Eof, &mut out);
        let ts = Timestamp(6_000_000_000);
        let frame = tcp(C, S, 600, None, "S", 0);
        let view = PacketView::parse(&frame, LinkType::ETHERNET, ts, frame.len() as u32).unwrap();
        let key = FlowTable::key_of(&view.inner).0;
        assert_eq!(out[5].uid, crate::conn::conn_uid(&key, ts, 0));
    }

    #[test]
    fn full_table_evicts_the_flow_nearest_to_expiry() {
        let cfg = TableConfig {
            max_flows: 2,
            ..TableConfig::default()
        };
        let mut t = FlowTable::new(cfg).unwrap();
        let mut out = Vec::new();
        // An unanswered SYN expires after 5 s; UDP after 60 s.
        feed(
            &mut t,
            &udp(([10, 0, 0, 1], 1), ([10, 0, 0, 9], 2), 1),
            0.0,
            &mut out,
        );
        feed(&mut t, &tcp(C, S, 1, None, "S", 0), 1.0, &mut out);
        feed(
            &mut t,
            &udp(([10, 0, 0, 3], 1), ([10, 0, 0, 9], 2), 1),
            2.0,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end_reason, EndReason::Evicted);
        assert_eq!(out[0].proto, crate::record::Proto::Tcp);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn unanswered_syn_is_an_attempt_that_ends_after_the_attempt_delay() {
        let mut t = FlowTable::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        feed(&mut t, &tcp(C, S, 1, None, "S", 0), 0.0, &mut out);
        feed(&mut t, &tcp(C, S, 1, None, "S", 0), 3.0, &mut out);
        t.advance(Timestamp(6_000_000_000), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].conn_state, out[0].history.as_str()),
            (ConnState::S0, "S")
        );
        assert_eq!(out[0].orig_pkts, 2);
    }

    #[test]
    fn start_records_report_the_first_packet_when_asked() {
        let cfg = TableConfig {
            report_starts: true,
            ..TableConfig::default()
        };
        let mut t = FlowTable::new(cfg).unwrap();
        let mut out = Vec::new();
        feed(&mut t, &tcp(C, S, 100, None, "S", 0), 0.0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end_reason, EndReason::Start);
        assert_eq!((out[0].orig_pkts, out[0].history.as_str()), (1, "S"));
        feed(&mut t, &tcp(S, C, 500, Some(101), "SA", 0), 0.1, &mut out);
        assert_eq!(out.len(), 1, "one start per connection");
        t.flush(EndReason::Eof, &mut out);
        assert_eq!(out[1].uid, out[0].uid);
        assert!(out[0].community_id.is_empty(), "start records stay cheap");
        assert_eq!(out[0].computed_community_id(), out[1].community_id);
    }

    #[test]
    fn compact_starts_are_the_start_records_without_the_heap() {
        let frames = [
            tcp(C, S, 100, None, "S", 0),
            // A connection first seen from its server's side (flipped).
            tcp(
                ([10, 0, 0, 9], 443),
                ([10, 0, 0, 1], 50000),
                7,
                Some(8),
                "SA",
                0,
            ),
            // Mid-stream data, no handshake.
            tcp(
                ([10, 0, 0, 3], 40001),
                ([10, 0, 0, 4], 80),
                5,
                Some(9),
                "",
                300,
            ),
            tcp(([10, 0, 0, 3], 40002), ([10, 0, 0, 4], 80), 5, None, "R", 0),
            udp(([10, 0, 0, 5], 5353), ([10, 0, 0, 6], 53), 40),
            udp(([10, 0, 0, 6], 53), ([10, 0, 0, 5], 5353), 90),
        ];
        let run = |compact: bool| {
            let mut t = FlowTable::new(TableConfig {
                report_starts: true,
                compact_starts: compact,
                ..TableConfig::default()
            })
            .unwrap();
            let (mut out, mut starts) = (Vec::new(), Vec::new());
            for (i, f) in frames.iter().enumerate() {
                feed(&mut t, f, i as f64 * 0.25, &mut out);
            }
            t.take_starts(&mut starts);
            t.flush(EndReason::Eof, &mut out);
            (out, starts)
        };
        let (whole, none) = run(false);
        assert!(none.is_empty(), "no compact starts unless asked");
        let (rest, starts) = run(true);
        let whole_starts: Vec<&ConnRecord> = whole
            .iter()
            .filter(|r| r.end_reason == EndReason::Start)
            .collect();
        assert_eq!(whole_starts.len(), 5, "one start per connection");
        assert_eq!(starts.len(), whole_starts.len(), "every start is compact");
        for (s, r) in starts.iter().zip(&whole_starts) {
            assert_eq!(&&s.record(), r);
        }
        // Written over records that held other things (a final record
        // with a service, bytes, tunnel parents and enclave names; then
        // each start in turn), the same records.
        let mut scratch = whole.last().expect("records").clone();
        scratch.service = Some("dns".to_owned());
        scratch.tunnel_parents = vec!["Cparent".to_owned()];
        scratch.community_id = "1:abc".to_owned();
        scratch.orig_enclave = Some("users".to_owned());
        scratch.history = "ShADadFf-and-much-more".to_owned();
        assert_ne!(&scratch, whole_starts[0]);
        for (s, r) in starts.iter().zip(&whole_starts) {
            s.record_into(&mut scratch);
            assert_eq!(&&scratch, r);
        }
        let ends: Vec<&ConnRecord> = whole
            .iter()
            .filter(|r| r.end_reason != EndReason::Start)
            .collect();
        assert_eq!(
            rest.iter().collect::<Vec<_>>(),
            ends,
            "the other records unchanged"
        );
        assert_eq!(starts[1].record().history, "^h");
    }

    /// Client `i` of a family of distinct endpoints.
    fn client(i: u32) -> ([u8; 4], u16) {
        ([10, 1, (i >> 8) as u8, i as u8], 30000 + (i % 1000) as u16)
    }

    /// Conservation: every connection created is live or has ended.
    fn assert_conserved(t: &FlowTable) {
        let s = t.stats();
        assert_eq!(s.created, t.len() as u64 + s.finished());
        assert_eq!(
            s.ended(EndReason::Evicted),
            s.evicted_half_open + s.evicted_oldest
        );
    }

    #[test]
    fn memory_cap_evicts_half_open_connections_before_established_ones() {
        const CAP: usize = 256 << 10;
        let cfg = TableConfig {
            max_memory: Some(CAP),
            // Every SYN evicts: the emergency mode is tested below.
            refuse_syns_when_full: false,
            ..TableConfig::default()
        };
        let mut t = FlowTable::new(cfg).unwrap();
        let mut out = Vec::new();
        for i in 0..50 {
            let c = client(i);
            feed(&mut t, &tcp(c, S, 100, None, "S", 0), 0.0, &mut out);
            feed(&mut t, &tcp(S, c, 500, Some(101), "SA", 0), 0.0, &mut out);
            feed(&mut t, &tcp(c, S, 101, Some(501), "A", 10), 0.0, &mut out);
        }
        for i in 0..20_000u32 {
            let syn = ([172, 16, (i >> 8) as u8, i as u8], 1000 + (i % 7) as u16);
            feed(&mut t, &tcp(syn, S, 7, None, "S", 0), 1.0, &mut out);
            assert!(t.memory_bytes() <= CAP, "{} > {CAP}", t.memory_bytes());
            assert_conserved(&t);
        }
        let s = t.stats().clone();
        assert!(s.evicted_half_open > 10_000, "{s:?}");
        assert_eq!((s.evicted_oldest, s.refused_no_memory), (0, 0));
        assert!(
            out.iter().all(|r| r.history == "S"),
            "only SYNs were evicted"
        );
        assert!(s.peak_memory_bytes as usize <= CAP);
        assert!(s.peak_memory_bytes as usize > CAP / 2, "{s:?}");
        // UDP still finds room: TCP may take only three quarters.
        out.clear();
        for i in 0..100 {
            feed(&mut t, &udp(client(i), S, 10), 2.0, &mut out);
        }
        assert_eq!(t.stats().refused_no_memory, 0);
        assert!(out.is_empty(), "room was there without evicting");
        assert_conserved(&t);
    }

    #[test]
    fn memory_cap_holds_when_closed_connections_take_cold_slots() {
        // Every connection closes (FIN both ways) and waits out the close
        // delay with a cold slot: side slots must stay within the cap too,
        // whatever share UDP took first.
        for cap_kib in [192usize, 256, 384, 1024] {
            for udp_flows in [0u32, 200, 300, 400, 500, 700, 1000, 2000] {
                let cap = cap_kib << 10;
                let cfg = TableConfig {
                    max_memory: Some(cap),
                    ..TableConfig::default()
                };
                let mut t = FlowTable::new(cfg).unwrap();
                let mut out = Vec::new();
                for i in 0..udp_flows {
                    feed(&mut t, &udp(client(i), S, 10), 0.0, &mut out);
                }
                for i in 0..6_000u32 {
                    let c = ([172, 16, (i >> 8) as u8, i as u8], 1000 + (i % 7) as u16);
                    let at = f64::from(i) * 0.0001;
                    feed(&mut t, &tcp(c, S, 100, None, "S", 0), at, &mut out);
                    feed(&mut t, &tcp(S, c, 500, Some(101), "SA", 0), at, &mut out);
                    feed(&mut t, &tcp(c, S, 101, Some(501), "FA", 0), at, &mut out);
                    feed(&mut t, &tcp(S, c, 501, Some(102), "FA", 0), at, &mut out);
                    assert!(
                        t.memory_bytes() <= cap,
                        "cap {cap_kib} KiB, {udp_flows} UDP flows: {}",
                        t.memory()
                    );
                }
                assert_conserved(&t);
                let m = t.memory();
                let cold = m.parts.iter().find(|p| p.name == "tcp cold slots").unwrap();
                assert!(cold.entries > 100, "{m}");
            }
        }
    }

    #[test]
    fn memory_cap_evicts_the_oldest_when_no_half_open_is_left() {
        let cfg = TableConfig {
            max_memory: Some(128 << 10),
            ..TableConfig::default()
        };
        let mut t = FlowTable::new(cfg).unwrap();
        let mut out = Vec::new();
        for i in 0..5_000u32 {
            feed(
                &mut t,
                &udp(client(i), S, 10),
                f64::from(i) * 0.001,
                &mut out,
            );
            assert!(t.memory_bytes() <= 128 << 10);
            assert_conserved(&t);
        }
        let s = t.stats();
        assert!(s.evicted_oldest > 1000, "{s:?}");
        assert_eq!(s.evicted_half_open, 0);
        // The flows due first (to the second of the timer wheel) went first.
        assert_eq!(out[0].ts.secs(), 0);
        assert!(out.windows(2).all(|w| w[0].ts.secs() <= w[1].ts.secs()));
    }

    #[test]
    fn backward_clock_is_counted_and_durations_never_go_negative() {
        let mut t = FlowTable::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        feed(&mut t, &tcp(C, S, 100, None, "S", 0), 1000.0, &mut out);
        feed(
            &mut t,
            &tcp(S, C, 500, Some(101), "SA", 0),
            1000.5,
            &mut out,
        );
        // The clock jumps back an hour, then forward again.
        feed(
            &mut t,
            &tcp(C, S, 101, Some(501), "A", 10),
            1000.0 - 3600.0,
            &mut out,
        );
        feed(&mut t, &udp(C, S, 10), 10.0, &mut out);
        feed(
            &mut t,
            &tcp(C, S, 111, Some(501), "A", 10),
            1001.0,
            &mut out,
        );
        assert_eq!(t.stats().clock_backwards, 2);
        t.flush(EndReason::Eof, &mut out);
        for r in &out {
            assert!(r.ts.as_secs_f64() >= 1000.0, "{r:?}");
        }
        let tcp_rec = out
            .iter()
            .find(|r| r.proto == crate::record::Proto::Tcp)
            .unwrap();
        assert_eq!(tcp_rec.duration, Some(Duration::from_secs(1)));
        assert_eq!(tcp_rec.orig_pkts, 3);
        let udp_rec = out
            .iter()
            .find(|r| r.proto == crate::record::Proto::Udp)
            .unwrap();
        assert_eq!(
            udp_rec.ts,
            Timestamp(1_000_500_000_000),
            "at the latest time"
        );
    }

    #[test]
    fn emergency_mode_refuses_syns_while_full_but_lets_answers_and_other_flows_in() {
        let cfg = TableConfig {
            max_flows: 100,
            refuse_syns_when_full: true,
            ..TableConfig::default()
        };
        let mut t = FlowTable::new(cfg).unwrap();
        let mut out = Vec::new();
        let syn = |i: u32| {
            tcp(
                ([172, 16, (i >> 8) as u8, i as u8], 1000),
                S,
                7,
                None,
                "S",
                0,
            )
        };
        let mut refused = 0;
        for i in 0..1000u32 {
            let frame = syn(i);
            let ts = Timestamp(1_000_000_000 + i64::from(i) * 1000);
            let view =
                PacketView::parse(&frame, LinkType::ETHERNET, ts, frame.len() as u32).unwrap();
            if t.update(&view.inner, ts, true, &mut out).is_none() {
                refused += 1;
            }
            assert_conserved(&t);
        }
        assert_eq!((t.len(), refused), (100, 900));
        assert_eq!(t.stats().refused_syn_when_full, 900);
        assert!(out.is_empty(), "nothing was evicted");
        // A SYN-ACK of a connection whose SYN was refused gets in, pushing
        // out a half-open connection; so does a UDP flow.
        feed(
            &mut t,
            &tcp(S, ([172, 16, 3, 200], 1000), 500, Some(8), "SA", 0),
            1.5,
            &mut out,
        );
        feed(&mut t, &udp(C, S, 10), 1.5, &mut out);
        assert_eq!(t.stats().evicted_half_open, 2);
        assert_eq!(t.len(), 100);
        assert_conserved(&t);
        assert_eq!(t.check_invariants(), Ok(()));
    }

    #[test]
    fn emergency_mode_is_on_by_default_but_only_while_half_open_connections_dominate() {
        let cfg = TableConfig {
            max_flows: 100,
            ..TableConfig::default()
        };
        assert!(cfg.refuse_syns_when_full);
        let mut t = FlowTable::new(cfg).unwrap();
        let mut out = Vec::new();
        let syn = |i: u32| {
            tcp(
                ([172, 16, (i >> 8) as u8, i as u8], 1000),
                S,
                7,
                None,
                "S",
                0,
            )
        };
        // 60 UDP flows and 40 half-open connections: full, but not a flood.
        for i in 0..60u16 {
            feed(
                &mut t,
                &udp(([10, 0, 0, 1], 2000 + i), S, 10),
                1.0,
                &mut out,
            );
        }
        for i in 0..40 {
            feed(&mut t, &syn(i), 1.1, &mut out);
        }
        assert_eq!(t.len(), 100);
        // A SYN then evicts the oldest half-open connection, as when off.
        for i in 40..60 {
            feed(&mut t, &syn(i), 1.2, &mut out);
        }
        assert_eq!(t.stats().refused_syn_when_full, 0);
        assert_eq!(t.stats().evicted_half_open, 20);
        assert_eq!(t.check_invariants(), Ok(()));
        // Answered connections stop counting as half-open: 10 of the 40
        // get their SYN-ACK.
        for i in 20..30u32 {
            let client = ([172, 16, (i >> 8) as u8, i as u8], 1000);
            feed(
                &mut t,
                &tcp(S, client, 500, Some(8), "SA", 0),
                1.3,
                &mut out,
            );
        }
        assert_eq!(t.check_invariants(), Ok(()));
        assert_eq!(t.half_open_live, 30);
        assert_conserved(&t);
    }
}
