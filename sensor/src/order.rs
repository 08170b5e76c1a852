//! A canonical output order for records coming from several shards.
//!
//! Records are released by the capture time they became due
//! ([`ConnRecord::emitted`]), then uid, then end reason (a start before the
//! records of the same connection: `reason_rank`), once every shard's
//! clock has passed them. Every record a shard can still produce is due no
//! earlier than the start of the second its clock is in (the flow table's
//! timers fire per second), so that is each shard's watermark. The result
//! is the same order for any number of shards.
//!
//! Records wait in a slab; what is sorted is small keys, gathered by the
//! second they are due in: a second is sorted once, when every shard has
//! passed it (one cache-friendly sort of a contiguous batch instead of a
//! heap operation per record).
//!
//! Start records may come compact ([`ConnStart`]): they wait in a slab of
//! their own and are released beside the records, each with the place it
//! takes among them ([`RecordOrder::release_items_up_to`]).

use crate::start::ConnStart;
use flowlib::{ConnRecord, EndReason, Timestamp};
use std::collections::BTreeMap;

/// Uids are "C" + 17 base62 characters; longer ones compare by their first
/// bytes here and are never equal to a different uid in practice.
const UID_BYTES: usize = 18;

/// Marks a [`Key::slot`] in the slab of compact starts.
const START_SLOT: u32 = 1 << 31;

/// What a record is ordered by, and where it waits. The uid's bytes are
/// held as big-endian integers, which compare in the same order as the
/// bytes but with integer comparisons instead of a `memcmp` call; 64-bit
/// halves keep the key at 32 bytes.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    emitted: Timestamp,
    uid_high: u64,
    uid_mid: u64,
    uid_tail: u16,
    reason: u8,
    slot: u32,
}

/// Where records of one connection due at the same instant go: its start
/// first (a connection that ends the instant it begins is scored from its
/// start before its end, as the detector and EVE's `flow.alerted` expect),
/// then end reasons in their declaration order.
pub(crate) fn reason_rank(reason: EndReason) -> u8 {
    match reason {
        EndReason::Start => 0,
        other => other as u8 + 1,
    }
}

/// The first [`UID_BYTES`] bytes of a uid (zero-padded) as big-endian
/// `u64`, `u64` and `u16`.
fn uid_key(uid: &str) -> (u64, u64, u16) {
    let mut bytes = [0u8; UID_BYTES];
    let n = uid.len().min(UID_BYTES);
    bytes[..n].copy_from_slice(&uid.as_bytes()[..n]);
    let mut high = [0u8; 8];
    high.copy_from_slice(&bytes[..8]);
    let mut mid = [0u8; 8];
    mid.copy_from_slice(&bytes[8..16]);
    (
        u64::from_be_bytes(high),
        u64::from_be_bytes(mid),
        u16::from_be_bytes([bytes[16], bytes[17]]),
    )
}

/// Puts `item` in a free slot of `slab` (or a new one); returns the slot.
fn place<T>(slab: &mut Vec<Option<T>>, free: &mut Vec<u32>, item: T) -> u32 {
    match free.pop() {
        Some(s) => {
            slab[s as usize] = Some(item);
            s
        }
        None => {
            slab.push(Some(item));
            (slab.len() - 1) as u32
        }
    }
}

/// Holds records until every shard has moved past them.
pub struct RecordOrder {
    /// Keys of the records held, by the second they are due in.
    seconds: BTreeMap<i64, Vec<Key>>,
    /// Emptied key vectors, for the next seconds.
    spare: Vec<Vec<Key>>,
    /// The rest of a second whose release stopped at a batch's size,
    /// sorted in reverse (the next key is last). No shard can add to it.
    releasing: Vec<Key>,
    held: usize,
    slab: Vec<Option<ConnRecord>>,
    free: Vec<u32>,
    starts: Vec<Option<ConnStart>>,
    free_starts: Vec<u32>,
    /// Keys of the batch being taken (kept for its room).
    incoming: Vec<Key>,
    clocks: Vec<Timestamp>,
}

impl RecordOrder {
    /// An order over `shards` sources.
    pub fn new(shards: usize) -> RecordOrder {
        RecordOrder {
            seconds: BTreeMap::new(),
            spare: Vec::new(),
            releasing: Vec::new(),
            held: 0,
            slab: Vec::new(),
            free: Vec::new(),
            starts: Vec::new(),
            free_starts: Vec::new(),
            incoming: Vec::new(),
            clocks: vec![Timestamp(i64::MIN); shards],
        }
    }

    /// Takes records and compact start records from `shard`, whose clock
    /// is now `clock`.
    pub fn push(
        &mut self,
        shard: usize,
        clock: Timestamp,
        records: impl IntoIterator<Item = ConnRecord>,
        starts: impl IntoIterator<Item = ConnStart>,
    ) {
        let mut incoming = std::mem::take(&mut self.incoming);
        let records = records.into_iter();
        // One allocation for a large batch (the last one of each shard holds
        // every connection still open), not a doubling after another.
        let (arriving, _) = records.size_hint();
        self.slab.reserve(arriving.saturating_sub(self.free.len()));
        for r in records {
            let (uid_high, uid_mid, uid_tail) = uid_key(&r.uid);
            let (emitted, reason) = (r.emitted, reason_rank(r.end_reason));
            let slot = place(&mut self.slab, &mut self.free, r);
            incoming.push(Key {
                emitted,
                uid_high,
                uid_mid,
                uid_tail,
                reason,
                slot,
            });
        }
        for st in starts {
            let (uid_high, uid_mid, uid_tail) = uid_key(st.uid());
            let emitted = st.emitted();
            let slot = place(&mut self.starts, &mut self.free_starts, st);
            incoming.push(Key {
                emitted,
                uid_high,
                uid_mid,
                uid_tail,
                reason: reason_rank(EndReason::Start),
                slot: slot | START_SLOT,
            });
        }
        self.held += incoming.len();
        // Records of a batch are mostly due in the same second.
        let mut current: Option<(i64, &mut Vec<Key>)> = None;
        for key in incoming.drain(..) {
            let second = key.emitted.secs();
            match &mut current {
                Some((s, keys)) if *s == second => keys.push(key),
                _ => {
                    let spare = &mut self.spare;
                    let keys = self
                        .seconds
                        .entry(second)
                        .or_insert_with(|| spare.pop().unwrap_or_default());
                    keys.push(key);
                    current = Some((second, keys));
                }
            }
        }
        self.incoming = incoming;
        let c = &mut self.clocks[shard];
        *c = (*c).max(clock);
    }

    /// Marks `shard` as finished: it will send nothing more.
    pub fn finish(&mut self, shard: usize) {
        self.clocks[shard] = Timestamp(i64::MAX);
    }

    /// Appends to `out`, in order, every record no shard can still precede.
    pub fn release(&mut self, out: &mut Vec<ConnRecord>) {
        self.release_up_to(out, usize::MAX);
    }

    /// [`RecordOrder::release`], stopping after `max` records; returns
    /// whether more are ready. Called again, it goes on where it stopped:
    /// the batches together are what one release would give.
    pub fn release_up_to(&mut self, out: &mut Vec<ConnRecord>, max: usize) -> bool {
        let mut starts = Vec::new();
        let more = self.release_items_up_to(out, &mut starts, max);
        // Each start goes back to its place among the records.
        let Some(&(first, _)) = starts.first() else {
            return more;
        };
        let tail = out.split_off(first);
        let mut starts = starts.into_iter().peekable();
        for (i, r) in tail.into_iter().enumerate() {
            while let Some((_, s)) = starts.next_if(|(at, _)| *at <= first + i) {
                out.push(s.record());
            }
            out.push(r);
        }
        out.extend(starts.map(|(_, s)| s.record()));
        more
    }

    /// [`RecordOrder::release_up_to`] keeping the compact starts apart:
    /// each goes to `starts` with the index in `out` of the record it
    /// comes before (`out.len()` when none follows). At most `max` records
    /// and starts together.
    pub fn release_items_up_to(
        &mut self,
        out: &mut Vec<ConnRecord>,
        starts: &mut Vec<(usize, ConnStart)>,
        max: usize,
    ) -> bool {
        let min = self
            .clocks
            .iter()
            .copied()
            .min()
            .unwrap_or(Timestamp(i64::MAX));
        let all = min.0 == i64::MAX;
        // Every record due before the start of the slowest shard's second:
        // the seconds before it, whole.
        let watermark = min.secs();
        out.reserve(max.min(self.held));
        let mut released = 0;
        loop {
            while released < max {
                let Some(key) = self.releasing.pop() else {
                    break;
                };
                if key.slot & START_SLOT != 0 {
                    let slot = key.slot & !START_SLOT;
                    if let Some(s) = self.starts[slot as usize].take() {
                        starts.push((out.len(), s));
                    }
                    self.free_starts.push(slot);
                } else {
                    if let Some(r) = self.slab[key.slot as usize].take() {
                        out.push(r);
                    }
                    self.free.push(key.slot);
                }
                self.held -= 1;
                released += 1;
            }
            let next_ready = self
                .seconds
                .first_key_value()
                .is_some_and(|(second, _)| all || *second < watermark);
            if released >= max {
                return !self.releasing.is_empty() || next_ready;
            }
            if !next_ready {
                return false;
            }
            if let Some(mut keys) = self.seconds.pop_first().map(|(_, keys)| keys) {
                keys.sort_unstable_by(|a, b| b.cmp(a));
                let done = std::mem::replace(&mut self.releasing, keys);
                self.spare.push(done);
            }
        }
    }

    /// Records held back.
    pub fn pending(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlib::{ConnState, Proto};

    fn rec(uid: &str, emitted: i64, reason: EndReason) -> ConnRecord {
        ConnRecord {
            ts: Timestamp(0),
            uid: uid.into(),
            orig_h: "10.0.0.1".parse().unwrap(),
            orig_p: 1,
            resp_h: "10.0.0.2".parse().unwrap(),
            resp_p: 2,
            proto: Proto::Udp,
            service: None,
            duration: None,
            orig_bytes: None,
            resp_bytes: None,
            conn_state: ConnState::S0,
            local_orig: None,
            local_resp: None,
            missed_bytes: 0,
            history: String::new(),
            orig_pkts: 1,
            orig_ip_bytes: 28,
            resp_pkts: 0,
            resp_ip_bytes: 0,
            tunnel_parents: vec![],
            vlan: None,
            inner_vlan: None,
            ip_proto: 17,
            community_id: String::new(),
            end_reason: reason,
            emitted: Timestamp(emitted),
            orig_enclave: None,
            resp_enclave: None,
            orig_host_group: None,
            resp_host_group: None,
        }
    }

    #[test]
    fn uid_keys_order_like_the_uid_bytes() {
        let uids = [
            "C",
            "CA",
            "Ca",
            "Cb",
            "C0000000000000000",
            "C00000000000000000",
            "C00000000000000001",
            "C0000000000000001z",
            "CzzzzzzzzzzzzzzzzZ",
            "Czzzzzzzzzzzzzzzzz",
            "D",
            "",
        ];
        for a in uids {
            for b in uids {
                assert_eq!(
                    uid_key(a).cmp(&uid_key(b)),
                    a.as_bytes().cmp(b.as_bytes()),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn records_come_out_by_due_time_then_uid_once_every_shard_passed_them() {
        let s = 1_000_000_000;
        let mut o = RecordOrder::new(2);
        let mut out = Vec::new();
        o.push(
            0,
            Timestamp(5 * s),
            [
                rec("Cb", 3 * s, EndReason::Idle),
                rec("Ca", 3 * s, EndReason::Idle),
            ],
            [],
        );
        o.release(&mut out);
        assert!(out.is_empty(), "shard 1 has not reported yet");
        o.push(
            1,
            Timestamp(4 * s + 5),
            [
                rec("Cc", 2 * s, EndReason::Fin),
                rec("Cd", 4 * s, EndReason::Fin),
            ],
            [],
        );
        o.release(&mut out);
        let uids: Vec<&str> = out.iter().map(|r| r.uid.as_str()).collect();
        assert_eq!(
            uids,
            ["Cc", "Ca", "Cb"],
            "due before second 4 of the slowest shard"
        );
        out.clear();
        o.finish(0);
        o.finish(1);
        o.release(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(o.pending(), 0);
        // Slots are reused.
        o.push(0, Timestamp(9 * s), [rec("Ce", 9 * s, EndReason::Eof)], []);
        assert_eq!(o.slab.len(), 4);
    }

    #[test]
    fn a_connection_that_ends_the_instant_it_starts_is_released_start_first() {
        let s = 1_000_000_000;
        let mut o = RecordOrder::new(1);
        let start = rec("Ca", 3 * s, EndReason::Start);
        let compact = ConnStart::compact(start.clone()).ok().unwrap();
        o.push(
            0,
            Timestamp(3 * s),
            [
                rec("Ca", 3 * s, EndReason::Evicted),
                rec("Ca", 3 * s, EndReason::Active),
            ],
            [compact],
        );
        o.push(0, Timestamp(3 * s), [], []);
        o.finish(0);
        let mut out = Vec::new();
        o.release(&mut out);
        let reasons: Vec<EndReason> = out.iter().map(|r| r.end_reason).collect();
        assert_eq!(
            reasons,
            [EndReason::Start, EndReason::Active, EndReason::Evicted]
        );
    }

    #[test]
    fn releases_in_batches_give_what_one_release_gives() {
        let s = 1_000_000_000;
        let fill = |o: &mut RecordOrder| {
            for (i, second) in [3, 1, 2, 1, 3, 1, 2, 2, 1, 5].iter().enumerate() {
                let uid = format!("C{:02}", (i * 7) % 10);
                o.push(
                    0,
                    Timestamp(4 * s),
                    [rec(&uid, second * s, EndReason::Idle)],
                    [],
                );
            }
        };
        let mut whole = RecordOrder::new(1);
        fill(&mut whole);
        let mut expected = Vec::new();
        whole.release(&mut expected);
        let expected: Vec<String> = expected.into_iter().map(|r| r.uid).collect();
        assert_eq!(expected.len(), 9, "second 5 is not due yet");
        for max in [1, 2, 3, 4, 9, 10] {
            let mut o = RecordOrder::new(1);
            fill(&mut o);
            let (mut got, mut batch) = (Vec::new(), Vec::new());
            while o.release_up_to(&mut batch, max) {
                assert_eq!(batch.len(), max, "a full batch while more are ready");
                got.extend(batch.drain(..).map(|r| r.uid));
            }
            assert!(batch.len() <= max);
            got.extend(batch.drain(..).map(|r| r.uid));
            assert_eq!(got, expected, "batches of {max}");
            assert_eq!(o.pending(), 1, "batches of {max}");
            o.finish(0);
            assert!(!o.release_up_to(&mut batch, max));
            assert_eq!(batch.len(), 1);
        }
    }

    #[test]
    fn agrees_with_sorting_everything_on_random_shards_and_clocks() {
        let s = 1_000_000_000i64;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut o = RecordOrder::new(3);
        let mut clocks = [10 * s; 3];
        let (mut out, mut sent) = (Vec::new(), Vec::new());
        let reasons = [EndReason::Start, EndReason::Fin, EndReason::Idle];
        let mut compact = 0;
        for step in 0..3000 {
            let shard = next(3) as usize;
            clocks[shard] += next(s as u64 * 3 / 2) as i64;
            // A shard produces nothing due before its clock's second.
            let floor = clocks[shard].div_euclid(s) * s;
            let batch: Vec<ConnRecord> = (0..next(6))
                .map(|_| {
                    let uid = format!("C{:03}", next(400));
                    let due = floor + next(2 * s as u64) as i64;
                    let mut r = rec(&uid, due, reasons[next(3) as usize]);
                    if next(4) == 0 {
                        // A start that cannot be compact.
                        r.tunnel_parents.push("Tx".into());
                    }
                    r
                })
                .collect();
            sent.extend(
                batch
                    .iter()
                    .map(|r| (r.emitted, r.uid.clone(), r.end_reason)),
            );
            // As the shards send them: compact starts apart.
            let (mut whole, mut starts) = (Vec::new(), Vec::new());
            for r in batch {
                match ConnStart::compact(r) {
                    Ok(s) => starts.push(s),
                    Err(r) => whole.push(r),
                }
            }
            let batch = whole;
            compact += starts.len();
            o.push(shard, Timestamp(clocks[shard]), batch, starts);
            let before = out.len();
            // In batches of any size, as the output takes them; with the
            // starts apart or put back in place.
            let max = 1 + next(8) as usize;
            if step % 2 == 0 {
                while o.release_up_to(&mut out, max) {}
            } else {
                loop {
                    let (mut records, mut starts) = (Vec::new(), Vec::new());
                    let more = o.release_items_up_to(&mut records, &mut starts, max);
                    assert!(records.len() + starts.len() <= max);
                    assert!(starts.windows(2).all(|w| w[0].0 <= w[1].0));
                    let mut starts = starts.into_iter().peekable();
                    for (i, r) in records.into_iter().enumerate() {
                        while let Some((_, st)) = starts.next_if(|(at, _)| *at <= i) {
                            out.push(st.record());
                        }
                        out.push(r);
                    }
                    out.extend(starts.map(|(_, st)| st.record()));
                    if !more {
                        break;
                    }
                }
            }
            let watermark = clocks.iter().min().unwrap().div_euclid(s) * s;
            assert!(
                out[before..].iter().all(|r| r.emitted.0 < watermark),
                "step {step}"
            );
        }
        for shard in 0..3 {
            o.finish(shard);
        }
        o.release(&mut out);
        assert_eq!(o.pending(), 0);
        assert!(compact > 1000, "{compact} compact starts");
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.emitted, r.uid.clone(), r.end_reason))
            .collect();
        sent.sort_by_key(|(emitted, uid, reason)| (*emitted, uid.clone(), reason_rank(*reason)));
        assert_eq!(got, sent, "every record, once, by due time, uid, reason");
    }
}
