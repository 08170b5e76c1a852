//! The start of a connection, as the shards hand it to the output.
//!
//! With the detector on, the flow table reports every connection's first
//! packet as a start record ([`EndReason::Start`]), so policy alerts come
//! when a session starts. Start records are scored and never written, and
//! there is one per connection: carried as whole [`ConnRecord`]s (about
//! 400 bytes, a uid and a history on the heap) from the shard through the
//! ordering to the writer, they cost as much as the records that are
//! written. A [`ConnStart`] holds what a start record has (a third of the
//! size, nothing on the heap) and gives the same record back
//! ([`ConnStart::record`]) where it is scored.

use flowlib::{ConnRecord, ConnState, EndReason, Proto, Timestamp};
use std::net::IpAddr;

/// Longest uid a [`ConnStart`] holds (connection uids are 18 bytes).
const UID_BYTES: usize = 24;
/// Longest history a [`ConnStart`] holds (a first packet's is 1 or 2).
const HISTORY_BYTES: usize = 14;

/// A start record without its heap parts. Made only from a record it gives
/// back unchanged ([`ConnStart::compact`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ConnStart {
    ts: Timestamp,
    emitted: Timestamp,
    orig_h: IpAddr,
    resp_h: IpAddr,
    orig_pkts: u64,
    orig_ip_bytes: u64,
    resp_pkts: u64,
    resp_ip_bytes: u64,
    orig_p: u16,
    resp_p: u16,
    vlan: Option<u16>,
    inner_vlan: Option<u16>,
    proto: Proto,
    conn_state: ConnState,
    ip_proto: u8,
    uid_len: u8,
    history_len: u8,
    uid: [u8; UID_BYTES],
    history: [u8; HISTORY_BYTES],
}

impl ConnStart {
    /// The compact form of a start record, or the record back when it has
    /// something a `ConnStart` does not hold (not a start record, a long
    /// uid, tunnel parents, a service, enclave names...).
    #[allow(clippy::result_large_err)] // the record itself, handed back
    pub fn compact(r: ConnRecord) -> Result<ConnStart, ConnRecord> {
        let plain = r.end_reason == EndReason::Start
            && r.uid.len() <= UID_BYTES
            && r.history.len() <= HISTORY_BYTES
            && r.service.is_none()
            && r.duration.is_none()
            && r.orig_bytes.is_none()
            && r.resp_bytes.is_none()
            && r.local_orig.is_none()
            && r.local_resp.is_none()
            && r.missed_bytes == 0
            && r.tunnel_parents.is_empty()
            && r.community_id.is_empty()
            && r.orig_enclave.is_none()
            && r.resp_enclave.is_none()
            && r.orig_host_group.is_none()
            && r.resp_host_group.is_none();
        if !plain {
            return Err(r);
        }
        let mut uid = [0u8; UID_BYTES];
        uid[..r.uid.len()].copy_from_slice(r.uid.as_bytes());
        let mut history = [0u8; HISTORY_BYTES];
        history[..r.history.len()].copy_from_slice(r.history.as_bytes());
        Ok(ConnStart {
            ts: r.ts,
            emitted: r.emitted,
            orig_h: r.orig_h,
            resp_h: r.resp_h,
            orig_pkts: r.orig_pkts,
            orig_ip_bytes: r.orig_ip_bytes,
            resp_pkts: r.resp_pkts,
            resp_ip_bytes: r.resp_ip_bytes,
            orig_p: r.orig_p,
            resp_p: r.resp_p,
            vlan: r.vlan,
            inner_vlan: r.inner_vlan,
            proto: r.proto,
            conn_state: r.conn_state,
            ip_proto: r.ip_proto,
            uid_len: r.uid.len() as u8,
            history_len: r.history.len() as u8,
            uid,
            history,
        })
    }

    /// The connection's uid.
    pub fn uid(&self) -> &str {
        // Copied from a `String` whole: always UTF-8.
        std::str::from_utf8(&self.uid[..usize::from(self.uid_len)]).unwrap_or_default()
    }

    /// When the record became due: the connection's first packet.
    pub fn emitted(&self) -> Timestamp {
        self.emitted
    }

    /// The start record this was made from.
    pub fn record(&self) -> ConnRecord {
        let history = &self.history[..usize::from(self.history_len)];
        ConnRecord {
            ts: self.ts,
            uid: self.uid().to_owned(),
            orig_h: self.orig_h,
            orig_p: self.orig_p,
            resp_h: self.resp_h,
            resp_p: self.resp_p,
            proto: self.proto,
            service: None,
            duration: None,
            orig_bytes: None,
            resp_bytes: None,
            conn_state: self.conn_state,
            local_orig: None,
            local_resp: None,
            missed_bytes: 0,
            history: std::str::from_utf8(history).unwrap_or_default().to_owned(),
            orig_pkts: self.orig_pkts,
            orig_ip_bytes: self.orig_ip_bytes,
            resp_pkts: self.resp_pkts,
            resp_ip_bytes: self.resp_ip_bytes,
            tunnel_parents: Vec::new(),
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            ip_proto: self.ip_proto,
            community_id: String::new(),
            end_reason: EndReason::Start,
            emitted: self.emitted,
            orig_enclave: None,
            resp_enclave: None,
            orig_host_group: None,
            resp_host_group: None,
        }
    }
}

/// Moves the start records of `records` that have a compact form to
/// `starts`; the others stay in `records`. The order of neither is kept:
/// the output orders records by itself, so the order of a batch does not
/// matter. Nothing moves when there is no start record, and `records` is
/// split in place.
pub fn split_starts(records: &mut Vec<ConnRecord>, starts: &mut Vec<ConnStart>) {
    let mut whole = Vec::new();
    let mut i = 0;
    while i < records.len() {
        if records[i].end_reason != EndReason::Start {
            i += 1;
            continue;
        }
        // The last record takes its place (and is looked at next).
        match ConnStart::compact(records.swap_remove(i)) {
            Ok(s) => starts.push(s),
            Err(r) => whole.push(r),
        }
    }
    records.append(&mut whole);
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlib::pcap_reader::PcapReader;
    use flowlib::{FlowMeter, TableConfig};
    use std::path::Path;

    /// Every record of `path`, start records included.
    fn records_of(path: &Path) -> Vec<ConnRecord> {
        let Ok(mut r) = std::fs::File::open(path).map(PcapReader::new) else {
            return Vec::new();
        };
        let Ok(r) = r.as_mut() else {
            return Vec::new();
        };
        let link = r.header().link;
        let mut meter = FlowMeter::new(TableConfig {
            report_starts: true,
            ..TableConfig::default()
        });
        let mut out = Vec::new();
        while let Ok(Some(p)) = r.next_packet() {
            let (ts, wire) = (p.ts, p.wire_len);
            meter.process(p.data, link, ts, wire, &mut out);
        }
        meter.flush(EndReason::Eof, &mut out);
        out
    }

    #[test]
    fn every_start_record_of_the_demo_and_the_corpus_comes_back_unchanged() {
        let files = crate::test_captures::demo_and_corpus_pcaps();
        let (mut starts, mut compact, mut tunnelled) = (0, 0, 0);
        for path in &files {
            for r in records_of(path) {
                if r.end_reason != EndReason::Start {
                    assert!(ConnStart::compact(r).is_err(), "only start records");
                    continue;
                }
                starts += 1;
                let tunnels = !r.tunnel_parents.is_empty();
                match ConnStart::compact(r.clone()) {
                    Ok(s) => {
                        compact += 1;
                        assert_eq!(s.record(), r, "{}", path.display());
                        assert_eq!(s.uid(), r.uid);
                        assert_eq!(s.emitted(), r.emitted);
                    }
                    Err(back) => {
                        assert_eq!(back, r, "handed back unchanged");
                        assert!(tunnels, "only tunnelled starts stay whole: {r:?}");
                        tunnelled += 1;
                    }
                }
            }
        }
        assert!(starts > 100, "{starts} start records");
        assert_eq!(compact + tunnelled, starts);
        assert!(compact * 10 > starts * 9, "{compact} of {starts} compact");
    }

    #[test]
    fn a_start_with_anything_it_cannot_hold_stays_a_record() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/msp-demo.pcap");
        let start = records_of(&path)
            .into_iter()
            .find(|r| r.end_reason == EndReason::Start)
            .expect("a start record");
        let changes: [fn(&mut ConnRecord); 8] = [
            |r| r.uid = "C".repeat(UID_BYTES + 1),
            |r| r.history = "ShADadFf".repeat(2),
            |r| r.service = Some("dns".into()),
            |r| r.orig_bytes = Some(1),
            |r| r.tunnel_parents = vec!["Tabc".into()],
            |r| r.community_id = "1:x".into(),
            |r| r.orig_enclave = Some("users".into()),
            |r| r.end_reason = EndReason::Fin,
        ];
        for change in changes {
            let mut r = start.clone();
            change(&mut r);
            assert_eq!(ConnStart::compact(r.clone()), Err(r));
        }
        assert!(ConnStart::compact(start).is_ok());
    }

    #[test]
    fn splitting_moves_each_compact_start_once_and_leaves_the_rest() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/msp-demo.pcap");
        let mut all = records_of(&path);
        // One start that cannot be compact.
        if let Some(r) = all.iter_mut().find(|r| r.end_reason == EndReason::Start) {
            r.tunnel_parents.push("Tx".into());
        }
        let mut records = all.clone();
        let room = records.capacity();
        let mut starts = Vec::new();
        split_starts(&mut records, &mut starts);
        assert_eq!(records.capacity(), room, "split in place");
        let expected_starts: Vec<ConnRecord> = all
            .iter()
            .filter(|r| r.end_reason == EndReason::Start && r.tunnel_parents.is_empty())
            .cloned()
            .collect();
        assert!(!expected_starts.is_empty());
        let sorted = |v: &[ConnRecord]| {
            let mut v: Vec<String> = v.iter().map(|r| format!("{r:?}")).collect();
            v.sort();
            v
        };
        let back: Vec<ConnRecord> = starts.iter().map(ConnStart::record).collect();
        assert_eq!(
            sorted(&back),
            sorted(&expected_starts),
            "every compact start, once"
        );
        let rest: Vec<ConnRecord> = all
            .iter()
            .filter(|r| r.end_reason != EndReason::Start || !r.tunnel_parents.is_empty())
            .cloned()
            .collect();
        assert_eq!(sorted(&records), sorted(&rest), "every other record, once");
        let before = records.as_ptr();
        split_starts(&mut records, &mut starts);
        assert_eq!(records.as_ptr(), before, "no start record: nothing moved");
    }
}
