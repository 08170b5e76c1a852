//! The single-shard metering process: decode, attribute fragments, update
//! the flow table, count everything. This is flowlib's embedded mode: no
//! threads, no libpcap; feed it packets, collect records.

use crate::config::{ConfigError, TableConfig};
use crate::decode::{PacketView, Transport};
use crate::fragment::{Attribution, FragmentStats, FragmentTracker};
use crate::key::FlowKey;
use crate::record::{ConnRecord, EndReason};
use crate::start::ConnStart;
use crate::table::{FlowTable, TableStats};
use crate::time::Timestamp;
use crate::weird::{Weird, WeirdCounts};
use crate::LinkType;

/// Selects every flow update of a packet in [`FlowMeter::process_view`].
pub const ALL_PARTS: u8 = u8::MAX;

/// IPv6 "no next header".
const IPV6_NO_NEXT_HEADER: u8 = 59;

/// The connection a packet was attributed to, as the flow table sees it:
/// its key and the time of its first packet. Two connections on one key
/// (a reused 5-tuple, a flow that idled out and came back) differ in
/// `start`, or, when they started at the same instant, in `seq`;
/// [`ConnRef::uid`] is the `uid` their records carry.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnRef {
    /// The connection's canonical key.
    pub key: FlowKey,
    /// Capture time of its first packet (the record's `ts`).
    pub start: Timestamp,
    /// Earlier connections on `key` that started at the same instant (a
    /// 5-tuple reused within one timestamp); almost always 0.
    pub seq: u32,
}

impl ConnRef {
    /// The uid of this connection's records.
    pub fn uid(&self) -> String {
        crate::conn::conn_uid(&self.key, self.start, self.seq)
    }
}

/// Packet-level counters of a [`FlowMeter`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MeterStats {
    /// Packets handed in.
    pub packets: u64,
    /// Their bytes on the wire.
    pub wire_bytes: u64,
    /// Packets that updated at least one flow.
    pub decoded: u64,
    /// Packets cut short by the snaplen (decoded anyway).
    pub truncated: u64,
    /// Packets that did not become a flow update, by reason.
    pub weirds: WeirdCounts,
    /// Packets stamped earlier than one already seen: processed at the
    /// latest time seen, so capture time never runs backwards.
    pub clock_backwards: u64,
    /// Packets stamped far ahead of the capture clock whose next packet
    /// said the stamp was wrong: processed at the clock, which stays (a
    /// capture pipeline's guard; a [`FlowMeter`] alone does not set it).
    pub clock_leaps: u64,
    /// Anomalies of packets that were still decoded (overlapping, tiny or
    /// oversized fragments): not part of `packets = decoded + weirds`.
    pub anomalies: WeirdCounts,
    /// The fragment tracker's counters.
    pub fragments: FragmentStats,
}

impl MeterStats {
    /// Adds `other` into `self` (merging shards).
    pub fn merge(&mut self, other: &MeterStats) {
        self.packets += other.packets;
        self.wire_bytes += other.wire_bytes;
        self.decoded += other.decoded;
        self.truncated += other.truncated;
        self.weirds.merge(&other.weirds);
        self.clock_backwards += other.clock_backwards;
        self.clock_leaps += other.clock_leaps;
        self.anomalies.merge(&other.anomalies);
        self.fragments.merge(&other.fragments);
    }
}

/// Turns packets into connection records.
///
/// ```
/// use flowlib::{FlowMeter, LinkType, Timestamp, TableConfig};
///
/// let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
/// let mut records = Vec::new();
/// // An ARP request ("who has 192.168.1.1? tell 192.168.1.10"): counted,
/// // but not a flow.
/// let frame: [u8; 42] = [
///     // Ethernet: broadcast destination, source, EtherType ARP.
///     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06,
///     // ARP: Ethernet / IPv4, address lengths 6 and 4, operation 1 (request).
///     0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
///     // Sender MAC and IPv4 address (192.168.1.10).
///     0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 168, 1, 10,
///     // Target MAC (unknown) and IPv4 address (192.168.1.1).
///     0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 168, 1, 1,
/// ];
/// let ts = Timestamp::from_micros(1_772_438_400, 0);
/// meter.process(&frame, LinkType::ETHERNET, ts, frame.len() as u32, &mut records);
/// meter.finish(&mut records);
/// assert!(records.is_empty());
/// let stats = meter.stats();
/// assert_eq!((stats.packets, stats.wire_bytes, stats.decoded), (1, 42, 0));
/// assert_eq!(stats.weirds.get(flowlib::Weird::NonIpFrame), 1);
/// ```
#[derive(Debug)]
pub struct FlowMeter {
    table: FlowTable,
    fragments: FragmentTracker,
    stats: MeterStats,
    last_ts: Timestamp,
}

impl FlowMeter {
    /// A meter with an empty table; a configuration
    /// [`TableConfig::validate`] refuses is refused, with its
    /// [`ConfigError`].
    pub fn new(cfg: TableConfig) -> Result<FlowMeter, ConfigError> {
        Ok(FlowMeter {
            fragments: FragmentTracker::new(
                cfg.max_fragment_trains,
                cfg.max_fragment_bytes,
                cfg.fragment_timeout,
            ),
            table: FlowTable::new(cfg)?,
            stats: MeterStats::default(),
            last_ts: Timestamp(i64::MIN),
        })
    }

    /// Processes one captured packet. Records of connections that end are
    /// appended to `out`. Never panics; undecodable packets are counted.
    pub fn process(
        &mut self,
        data: &[u8],
        link: LinkType,
        ts: Timestamp,
        wire_len: u32,
        out: &mut Vec<ConnRecord>,
    ) {
        self.process_inner(data, link, ts, wire_len, out, None);
    }

    /// [`FlowMeter::process`], also telling which connections the packet
    /// was attributed to: `conns` is cleared, then gets one [`ConnRef`] per
    /// connection the packet updated (a tunnelled packet: each UDP tunnel
    /// around it, then the inner connection; a non-first IP fragment: its
    /// datagram's connection). Empty for a packet that made no connection
    /// (undecodable, unattributed fragment, IPv6 without next header).
    pub fn process_attributed(
        &mut self,
        data: &[u8],
        link: LinkType,
        ts: Timestamp,
        wire_len: u32,
        out: &mut Vec<ConnRecord>,
        conns: &mut Vec<ConnRef>,
    ) {
        conns.clear();
        self.process_inner(data, link, ts, wire_len, out, Some(conns));
    }

    fn process_inner(
        &mut self,
        data: &[u8],
        link: LinkType,
        ts: Timestamp,
        wire_len: u32,
        out: &mut Vec<ConnRecord>,
        conns: Option<&mut Vec<ConnRef>>,
    ) {
        let ts = self.clock(ts);
        match PacketView::parse(data, link, ts, wire_len) {
            Ok(view) => self.apply(&view, ALL_PARTS, true, out, conns),
            Err(e) => {
                self.count_undecodable(data.len(), wire_len, e.weird);
                self.table.advance(ts, out);
            }
        }
    }

    /// Counts a packet that did not decode, under `weird` (for callers that
    /// decode themselves, like a dispatcher in front of several meters).
    pub fn count_undecodable(&mut self, cap_len: usize, wire_len: u32, weird: Weird) {
        self.stats.packets += 1;
        self.stats.wire_bytes += u64::from(wire_len.max(cap_len as u32));
        self.stats.weirds.add(weird);
    }

    /// Capture time never runs backwards for the table: a packet stamped
    /// earlier than one already seen is processed at the latest time.
    fn clock(&mut self, ts: Timestamp) -> Timestamp {
        if ts < self.last_ts {
            self.stats.clock_backwards += 1;
        }
        let ts = ts.max(self.last_ts);
        self.last_ts = ts;
        ts
    }

    /// Applies the flow updates of a decoded packet selected by `parts`
    /// (bit `i` = the `i`-th of [`PacketView::flow_packets`]). With `count`,
    /// the packet is also counted (packets, bytes, decoded or weird): when a
    /// packet's parts are spread over several meters, exactly one counts it.
    pub fn process_view(
        &mut self,
        view: &PacketView<'_>,
        parts: u8,
        count: bool,
        out: &mut Vec<ConnRecord>,
    ) {
        self.apply(view, parts, count, out, None);
    }

    /// The body of [`FlowMeter::process_view`]; with `conns`, the
    /// connections updated are appended to it.
    fn apply(
        &mut self,
        view: &PacketView<'_>,
        parts: u8,
        count: bool,
        out: &mut Vec<ConnRecord>,
        mut conns: Option<&mut Vec<ConnRef>>,
    ) {
        let ts = self.clock(view.ts);
        let mut unattributed = false;
        let mut waiting = false;
        let mut no_next = false;
        let mut updated = false;
        let mut refused = false;
        for (i, p) in view.flow_packets().enumerate() {
            if parts & (1 << i) == 0 {
                updated = true; // another meter applies this part
                continue;
            }
            if let Transport::NonFirstFragment { payload_len } = p.transport {
                let anomalies = &mut self.stats.anomalies;
                match self.fragments.fragment(p, None, ts, |w| anomalies.add(w)) {
                    Attribution::Flow {
                        flow: (key, src_is_lo),
                        ..
                    } if self
                        .table
                        .add_fragment(&key, src_is_lo, payload_len, ts, out) =>
                    {
                        if let Some(conns) = conns.as_deref_mut() {
                            self.attribute(key, conns);
                        }
                    }
                    // Counted when its first fragment comes, or as
                    // unattributed when its train ends.
                    Attribution::Waiting => waiting = true,
                    _ => unattributed = true,
                }
                self.fragments_synced();
                continue;
            }
            if p.ip.proto == IPV6_NO_NEXT_HEADER {
                // An IPv6 packet with nothing inside (e.g. a Teredo bubble)
                // makes no connection, as in Zeek.
                no_next = true;
                continue;
            }
            updated = true;
            let complete = match p.transport {
                Transport::Tcp(ref seg) => seg.payload.len() as u64 >= u64::from(seg.payload_len),
                _ => !view.truncated,
            };
            let Some((key, src_is_lo)) = self.table.update(p, ts, complete, out) else {
                refused = true;
                continue;
            };
            if let Some(conns) = conns.as_deref_mut() {
                self.attribute(key, conns);
            }
            if p.ip.fragment.is_some() {
                let anomalies = &mut self.stats.anomalies;
                let attribution = self
                    .fragments
                    .fragment(p, Some((key, src_is_lo)), ts, |w| anomalies.add(w));
                if let Attribution::Flow {
                    waited: waited @ 1..,
                    waited_bytes,
                    ..
                } = attribution
                {
                    // The fragments that came before this first one: in
                    // its flow now (counted as packets when they came).
                    let bytes = u32::try_from(waited_bytes).unwrap_or(u32::MAX);
                    if self.table.add_fragment(&key, src_is_lo, bytes, ts, out) {
                        self.stats.decoded += u64::from(waited);
                    } else {
                        self.stats
                            .weirds
                            .add_n(Weird::UnattributedFragment, u64::from(waited));
                    }
                }
                self.fragments_synced();
            }
        }
        if !count {
            return;
        }
        self.stats.packets += 1;
        self.stats.wire_bytes += u64::from(view.wire_len);
        if view.truncated {
            self.stats.truncated += 1;
        }
        if waiting {
            // Counted later, once (see above), even if a tunnel part
            // around it was refused.
        } else if refused {
            self.stats.weirds.add(Weird::FlowTableFull);
        } else if unattributed {
            self.stats.weirds.add(Weird::UnattributedFragment);
        } else if no_next && !updated {
            self.stats.weirds.add(Weird::NoNextHeader);
        } else {
            self.stats.decoded += 1;
        }
    }

    /// Appends the live connection on `key` (just updated) to `conns`.
    fn attribute(&self, key: FlowKey, conns: &mut Vec<ConnRef>) {
        if let Some((start, seq)) = self.table.start_of(&key) {
            conns.push(ConnRef { key, start, seq });
        }
    }

    /// Moves capture time forward without a packet (e.g. a live capture
    /// that is idle): due connections end.
    /// A timer backlog ([`TableConfig::max_timer_expires`]) is worked on
    /// even when the time does not move.
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<ConnRecord>) {
        if now > self.last_ts {
            self.last_ts = now;
            self.table.advance(now, out);
        } else if self.table.backlog_since().is_some() {
            self.table.advance(self.last_ts, out);
        }
    }

    /// Start of the earliest second with connections due but not ended yet
    /// (the flow table's timer backlog, [`FlowTable::backlog_since`]): no
    /// record still to come is due earlier. `None` when there is no backlog
    /// (records to come are then due no earlier than the current second).
    pub fn backlog_since(&self) -> Option<Timestamp> {
        self.table.backlog_since()
    }

    /// Ends every live connection with end reason `eof`.
    pub fn finish(&mut self, out: &mut Vec<ConnRecord>) {
        self.flush(EndReason::Eof, out);
    }

    /// Ends every live connection with `reason` (e.g. `shutdown`). The
    /// input is over: fragments still waiting for their first fragment are
    /// unattributed.
    pub fn flush(&mut self, reason: EndReason, out: &mut Vec<ConnRecord>) {
        self.fragments.abandon_waiting();
        self.fragments_synced();
        self.table.flush(reason, out);
    }

    /// Copies the fragment tracker's counters, and counts the fragments
    /// that waited in vain for their first fragment as unattributed.
    fn fragments_synced(&mut self) {
        let abandoned = self.fragments.take_abandoned();
        if abandoned > 0 {
            self.stats
                .weirds
                .add_n(Weird::UnattributedFragment, abandoned);
        }
        self.stats.fragments = self.fragments.stats().clone();
    }

    /// Packet counters.
    pub fn stats(&self) -> &MeterStats {
        &self.stats
    }

    /// Moves the compact start records made so far to the end of `out`
    /// ([`TableConfig::compact_starts`](crate::TableConfig::compact_starts)).
    pub fn take_starts(&mut self, out: &mut Vec<ConnStart>) {
        self.table.take_starts(out);
    }

    /// Flow table counters.
    pub fn table_stats(&self) -> &TableStats {
        self.table.stats()
    }

    /// Checks the flow table's invariants
    /// ([`FlowTable::check_invariants`]; for tests and fuzzing).
    pub fn check_table_invariants(&self) -> Result<(), crate::table::InvariantViolation> {
        self.table.check_invariants()
    }

    /// Live connections.
    pub fn live_flows(&self) -> usize {
        self.table.len()
    }

    /// Where the flow table's memory goes, part by part.
    pub fn table_memory(&self) -> crate::table_memory::TableMemory {
        self.table.memory()
    }

    /// Bytes the fragment tracker holds now ([`FragmentTracker::memory_bytes`]).
    pub fn fragment_memory_bytes(&self) -> usize {
        self.fragments.memory_bytes()
    }

    /// Bytes charged to the fragment tracker's byte cap now.
    pub fn fragment_charged_bytes(&self) -> usize {
        self.fragments.charged_bytes()
    }

    /// Bytes the flow table holds now ([`FlowTable::memory_bytes`]).
    pub fn table_memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    /// Most connections the flow table keeps live ([`FlowTable::flow_limit`]).
    pub fn table_flow_limit(&self) -> usize {
        self.table.flow_limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap_reader::PcapReader;
    use std::collections::BTreeMap;
    use std::path::Path;

    /// A meter's debug form summarises its table and fragment tracker
    /// (sizes, limits, counters), not their connections and trains.
    #[test]
    fn debug_summarises_the_table_and_the_fragment_tracker() {
        let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..200u8 {
            let mut f = Vec::new();
            etherparse::PacketBuilder::ipv4([10, 0, 0, i], [10, 0, 1, 1], 64)
                .udp(5000, 53)
                .write(&mut f, &[0; 12])
                .unwrap();
            let ts = Timestamp::from_micros(100, u32::from(i));
            meter.process(&f, LinkType::RAW, ts, f.len() as u32, &mut out);
        }
        let debug = format!("{meter:?}");
        assert!(
            debug.starts_with("FlowMeter { table: FlowTable { live: 200, flow_limit: 1000000,"),
            "{debug}"
        );
        assert!(
            debug.contains("fragments: FragmentTracker { trains: 0, max_trains: 65536,"),
            "{debug}"
        );
        assert!(debug.len() < 3000, "{} bytes: {debug}", debug.len());
    }

    /// What `Weird::FlowTableFull` counts: a bare SYN refused at the flow
    /// cap (not only at the memory cap) in the SYN flood emergency mode,
    /// while a UDP packet at the same cap evicts and is decoded.
    #[test]
    fn syns_refused_at_the_flow_cap_are_counted_as_flow_table_full() {
        let mut meter = FlowMeter::new(TableConfig {
            max_flows: 10,
            ..TableConfig::default()
        })
        .unwrap();
        let mut out = Vec::new();
        for i in 0..15u8 {
            let mut f = Vec::new();
            etherparse::PacketBuilder::ipv4([10, 0, 0, i], [10, 0, 1, 1], 64)
                .tcp(40000, 443, 1, 1000)
                .syn()
                .write(&mut f, &[])
                .unwrap();
            let ts = Timestamp::from_micros(100, u32::from(i));
            meter.process(&f, LinkType::RAW, ts, f.len() as u32, &mut out);
        }
        let mut f = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 99], [10, 0, 1, 1], 64)
            .udp(5000, 53)
            .write(&mut f, &[0; 12])
            .unwrap();
        let ts = Timestamp::from_micros(100, 99);
        meter.process(&f, LinkType::RAW, ts, f.len() as u32, &mut out);
        let (s, t) = (meter.stats(), meter.table_stats());
        assert_eq!(s.weirds.get(Weird::FlowTableFull), 5);
        assert_eq!((t.refused_syn_when_full, t.refused_no_memory), (5, 0));
        assert_eq!((s.decoded, t.evicted_half_open), (11, 1));
        assert_eq!(out.len(), 1, "the evicted half-open connection");
    }

    /// Every packet of the demo capture is attributed to connections whose
    /// uids are those of the records, and each record's packet count is the
    /// number of packets attributed to its uid.
    #[test]
    fn attribution_names_the_connections_the_records_report() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/msp-demo.pcap");
        let mut reader = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let link = reader.header().link;
        let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
        let (mut records, mut conns) = (Vec::new(), Vec::new());
        let mut per_uid: BTreeMap<String, u64> = BTreeMap::new();
        let mut packets = 0;
        while let Some(p) = reader.next_packet().unwrap() {
            meter.process_attributed(p.data, link, p.ts, p.wire_len, &mut records, &mut conns);
            packets += 1;
            assert_eq!(conns.len(), 1, "packet {packets}: one plain flow each");
            *per_uid.entry(conns[0].uid()).or_default() += 1;
        }
        meter.finish(&mut records);
        // Interim records repeat a uid; the last one carries the totals.
        let mut last: BTreeMap<&str, &ConnRecord> = BTreeMap::new();
        for r in &records {
            last.insert(&r.uid, r);
        }
        assert_eq!(last.len(), per_uid.len());
        for (uid, r) in last {
            assert_eq!(
                per_uid.get(uid).copied(),
                Some(r.orig_pkts + r.resp_pkts),
                "{uid}"
            );
        }
    }
}
