//! The flow table: connections keyed by [`FlowKey`] in a hashbrown map,
//! driven only by capture time.
//!
//! Each connection files itself in a one-second timer wheel under the time
//! it is due to end (idle timeout, close delay, unanswered attempt) or to
//! report an interim record. Firing is lazy: a connection whose deadline
//! moved later is simply re-filed. A packet for a connection whose deadline
//! has passed ends the old connection first, so results do not depend on
//! how often timers are run. One table per shard: no global state.

use crate::config::TableConfig;
use crate::conn::{packet_endpoints, Conn};
use crate::decode::FlowPacket;
use crate::key::FlowKey;
use crate::record::{ConnRecord, EndReason};
use crate::time::Timestamp;
use hashbrown::HashMap;
use std::collections::BTreeMap;

/// Counters of a [`FlowTable`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableStats {
    /// Connections created.
    pub created: u64,
    /// Records emitted per end reason, indexed like [`EndReason::ALL`].
    pub ended: [u64; EndReason::ALL.len()],
    /// Most connections live at once.
    pub peak_live: u64,
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
    }
}

/// A bidirectional flow table.
pub struct FlowTable {
    cfg: TableConfig,
    flows: HashMap<FlowKey, Conn>,
    /// Second -> keys due in that second (lazily validated).
    timers: BTreeMap<i64, Vec<FlowKey>>,
    spare: Vec<Vec<FlowKey>>,
    stats: TableStats,
    /// Latest capture time seen.
    now: Timestamp,
}

impl FlowTable {
    /// An empty table.
    pub fn new(cfg: TableConfig) -> FlowTable {
        FlowTable {
            flows: HashMap::with_capacity(cfg.max_flows.min(1 << 16)),
            cfg,
            timers: BTreeMap::new(),
            spare: Vec::new(),
            stats: TableStats::default(),
            now: Timestamp(i64::MIN),
        }
    }

    /// The table's settings.
    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Counters so far.
    pub fn stats(&self) -> &TableStats {
        &self.stats
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

    /// Applies one flow-bearing packet at capture time `ts`; records of
    /// connections that end on the way are appended to `out`. `complete`
    /// says the payload was fully captured. Returns the packet's key and
    /// sender side.
    pub fn update(
        &mut self,
        p: &FlowPacket<'_>,
        ts: Timestamp,
        complete: bool,
        out: &mut Vec<ConnRecord>,
    ) -> (FlowKey, bool) {
        self.advance(ts, out);
        let (key, src_is_lo) = Self::key_of(p);
        if let Some(conn) = self.flows.get_mut(&key) {
            let (deadline, reason) = conn.deadline(&self.cfg);
            if deadline <= ts && reason == EndReason::Active {
                out.push(conn.record(&key, EndReason::Active, deadline));
                self.stats.ended[EndReason::Active as usize] += 1;
                conn.interim_emitted(deadline, &self.cfg);
            } else if deadline <= ts {
                self.end(&key, reason, deadline, out);
            } else if conn.is_reuse(p) {
                self.end(&key, EndReason::Reuse, ts, out);
            }
        }
        let cfg = &self.cfg;
        let mut created = false;
        let conn = match self.flows.get_mut(&key) {
            Some(conn) => conn,
            None => {
                created = true;
                if self.flows.len() >= cfg.max_flows {
                    self.evict_one(ts, out);
                }
                self.stats.created += 1;
                let conn = Conn::new(p, src_is_lo, ts, &self.cfg);
                self.flows.insert(key, conn);
                self.stats.peak_live = self.stats.peak_live.max(self.flows.len() as u64);
                self.flows.get_mut(&key).expect("just inserted")
            }
        };
        conn.update(p, src_is_lo, ts, complete, &self.cfg);
        if created && self.cfg.report_starts {
            out.push(conn.record(&key, EndReason::Start, ts));
            self.stats.ended[EndReason::Start as usize] += 1;
        }
        let slot = conn.deadline(&self.cfg).0.secs();
        if slot < conn.timer_slot || conn.timer_slot == i64::MIN {
            conn.timer_slot = slot;
            self.file(slot, key);
        }
        (key, src_is_lo)
    }

    /// Counts a non-first IP fragment for an existing connection; `false`
    /// if the connection is gone.
    pub fn add_fragment(
        &mut self,
        key: &FlowKey,
        src_is_lo: bool,
        ip_len: u32,
        ts: Timestamp,
    ) -> bool {
        match self.flows.get_mut(key) {
            Some(conn) => {
                conn.add_fragment(src_is_lo, ip_len, ts);
                true
            }
            None => false,
        }
    }

    /// Moves the table's clock to `now`: connections due before `now`'s
    /// second end (or report interim records) and go to `out`.
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<ConnRecord>) {
        self.now = self.now.max(now);
        let now_sec = now.secs();
        while let Some(entry) = self.timers.first_entry() {
            let slot = *entry.key();
            if slot >= now_sec {
                break;
            }
            let mut keys = entry.remove();
            for key in keys.drain(..) {
                self.fire(slot, key, now, out);
            }
            self.spare.push(keys);
        }
    }

    fn fire(&mut self, slot: i64, key: FlowKey, now: Timestamp, out: &mut Vec<ConnRecord>) {
        let Some(conn) = self.flows.get_mut(&key) else {
            return;
        };
        if conn.timer_slot != slot {
            return; // filed again under an earlier second since
        }
        let (deadline, reason) = conn.deadline(&self.cfg);
        if deadline > now {
            conn.timer_slot = deadline.secs();
            self.file(deadline.secs(), key);
        } else if reason == EndReason::Active {
            out.push(conn.record(&key, EndReason::Active, deadline));
            self.stats.ended[EndReason::Active as usize] += 1;
            conn.interim_emitted(deadline, &self.cfg);
            let next = conn.deadline(&self.cfg).0.secs();
            conn.timer_slot = next;
            self.file(next, key);
        } else {
            self.end(&key, reason, deadline, out);
        }
    }

    fn file(&mut self, slot: i64, key: FlowKey) {
        let spare = &mut self.spare;
        self.timers
            .entry(slot)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push(key);
    }

    /// Removes a connection and emits its record, ended at capture time `at`.
    fn end(&mut self, key: &FlowKey, reason: EndReason, at: Timestamp, out: &mut Vec<ConnRecord>) {
        if let Some(conn) = self.flows.remove(key) {
            out.push(conn.record(key, reason, at));
            self.stats.ended[reason as usize] += 1;
        }
    }

    /// Evicts the live connection nearest to its deadline.
    fn evict_one(&mut self, now: Timestamp, out: &mut Vec<ConnRecord>) {
        while let Some(mut entry) = self.timers.first_entry() {
            let slot = *entry.key();
            let keys = entry.get_mut();
            while let Some(key) = keys.pop() {
                if self.flows.get(&key).is_some_and(|c| c.timer_slot == slot) {
                    self.end(&key, EndReason::Evicted, now, out);
                    return;
                }
            }
            let keys = entry.remove();
            self.spare.push(keys);
        }
    }

    /// Ends every live connection with `reason` (end of input, shutdown),
    /// in a deterministic order: by start time, then key. Their records are
    /// stamped with the table's latest capture time.
    pub fn flush(&mut self, reason: EndReason, out: &mut Vec<ConnRecord>) {
        let mut all: Vec<(FlowKey, Conn)> = self.flows.drain().collect();
        all.sort_by(|a, b| a.1.start().cmp(&b.1.start()).then(a.0.cmp(&b.0)));
        for (key, conn) in all {
            let reason = conn.flush_reason(reason);
            out.push(conn.record(&key, reason, self.now));
            self.stats.ended[reason as usize] += 1;
        }
        self.timers.clear();
    }
}

/// Bytes of table memory per live connection, excluding the hash map's
/// spare capacity: the key, the connection state, one timer-wheel entry.
pub fn bytes_per_flow() -> usize {
    std::mem::size_of::<FlowKey>() * 2 + std::mem::size_of::<Conn>() + 1
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
        t.update(&view.inner, ts, true, out);
    }

    const C: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
    const S: ([u8; 4], u16) = ([10, 0, 0, 2], 22);

    #[test]
    fn long_flow_reports_interim_records_then_its_final_record() {
        let cfg = TableConfig {
            active_timeout: Some(Duration::from_secs(60)),
            ..TableConfig::default()
        };
        let mut t = FlowTable::new(cfg);
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

    #[test]
    fn idle_udp_flow_ends_and_a_later_packet_starts_a_new_one() {
        let mut t = FlowTable::new(TableConfig::default());
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
        let mut t = FlowTable::new(TableConfig::default());
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
        let mut t = FlowTable::new(TableConfig::default());
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
        let mut t = FlowTable::new(TableConfig::default());
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
    fn full_table_evicts_the_flow_nearest_to_expiry() {
        let cfg = TableConfig {
            max_flows: 2,
            ..TableConfig::default()
        };
        let mut t = FlowTable::new(cfg);
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
        let mut t = FlowTable::new(TableConfig::default());
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
        let mut t = FlowTable::new(cfg);
        let mut out = Vec::new();
        feed(&mut t, &tcp(C, S, 100, None, "S", 0), 0.0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end_reason, EndReason::Start);
        assert_eq!((out[0].orig_pkts, out[0].history.as_str()), (1, "S"));
        feed(&mut t, &tcp(S, C, 500, Some(101), "SA", 0), 0.1, &mut out);
        assert_eq!(out.len(), 1, "one start per connection");
        t.flush(EndReason::Eof, &mut out);
        assert_eq!(out[1].uid, out[0].uid);
    }
}
