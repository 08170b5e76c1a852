//! The start of a connection, as the shards hand it to the output.
//!
//! With the detector on, the flow table reports every connection's first
//! packet as a start record, so policy alerts come when a session starts.
//! Start records are scored and never written, and there is one per
//! connection: the shards' tables make them compact
//! ([`TableConfig::compact_starts`](flowlib::TableConfig::compact_starts)),
//! they travel as [`ConnStart`]s (nothing on the heap) through the ordering,
//! and are turned back into records only to be scored.

pub use flowlib::start::ConnStart;

#[cfg(test)]
mod tests {
    use super::*;
    use flowlib::pcap_reader::PcapReader;
    use flowlib::start::UID_BYTES;
    use flowlib::{ConnRecord, EndReason};
    use flowlib::{FlowMeter, TableConfig};
    use std::path::Path;

    /// Every record of `path`, start records included, and the compact
    /// starts when `compact` (the shards' setting).
    fn records_of(path: &Path, compact: bool) -> (Vec<ConnRecord>, Vec<ConnStart>) {
        let (mut out, mut starts) = (Vec::new(), Vec::new());
        let Ok(mut r) = std::fs::File::open(path).map(PcapReader::new) else {
            return (out, starts);
        };
        let Ok(r) = r.as_mut() else {
            return (out, starts);
        };
        let link = r.header().link;
        let mut meter = FlowMeter::new(TableConfig {
            report_starts: true,
            compact_starts: compact,
            ..TableConfig::default()
        })
        .unwrap();
        while let Ok(Some(p)) = r.next_packet() {
            let (ts, wire) = (p.ts, p.wire_len);
            meter.process(p.data, link, ts, wire, &mut out);
        }
        meter.take_starts(&mut starts);
        meter.flush(EndReason::Eof, &mut out);
        (out, starts)
    }

    #[test]
    fn every_start_record_of_the_demo_and_the_corpus_comes_back_unchanged() {
        let files = crate::test_captures::demo_and_corpus_pcaps();
        let (mut all_starts, mut compact, mut tunnelled) = (0, 0, 0);
        for path in &files {
            let (whole, _) = records_of(path, false);
            let (rest, starts) = records_of(path, true);
            let is_start = |r: &&ConnRecord| r.end_reason == EndReason::Start;
            // The table made each compact start as the record it would have
            // made, in the same order; the others stay records.
            let whole_starts: Vec<&ConnRecord> = whole.iter().filter(is_start).collect();
            let (fitting, kept): (Vec<&ConnRecord>, Vec<&ConnRecord>) = whole_starts
                .iter()
                .partition(|r| ConnStart::compact((**r).clone()).is_ok());
            let back: Vec<ConnRecord> = starts.iter().map(ConnStart::record).collect();
            assert_eq!(
                back.iter().collect::<Vec<_>>(),
                fitting,
                "{}",
                path.display()
            );
            for (s, r) in starts.iter().zip(&fitting) {
                assert_eq!((s.uid(), s.emitted()), (r.uid.as_str(), r.emitted));
            }
            assert_eq!(rest.iter().filter(is_start).collect::<Vec<_>>(), kept);
            assert!(
                kept.iter().all(|r| !r.tunnel_parents.is_empty()),
                "only tunnelled starts stay whole"
            );
            let ends = |v: &[ConnRecord]| {
                v.iter()
                    .filter(|r| r.end_reason != EndReason::Start)
                    .cloned()
                    .collect::<Vec<_>>()
            };
            assert_eq!(ends(&rest), ends(&whole), "{}", path.display());
            all_starts += whole_starts.len();
            compact += starts.len();
            tunnelled += kept.len();
            for r in whole
                .into_iter()
                .filter(|r| r.end_reason != EndReason::Start)
            {
                assert!(ConnStart::compact(r).is_err(), "only start records");
            }
        }
        assert!(all_starts > 100, "{all_starts} start records");
        assert_eq!(compact + tunnelled, all_starts);
        assert!(
            compact * 10 > all_starts * 9,
            "{compact} of {all_starts} compact"
        );
    }

    #[test]
    fn a_start_with_anything_it_cannot_hold_stays_a_record() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/msp-demo.pcap");
        let start = records_of(&path, false)
            .0
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
}
