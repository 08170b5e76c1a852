//! A canonical output order for records coming from several shards.
//!
//! Records are released by the capture time they became due
//! ([`ConnRecord::emitted`]), then uid, then end reason, once every shard's
//! clock has passed them. Every record a shard can still produce is due no
//! earlier than the start of the second its clock is in (the flow table's
//! timers fire per second), so that is each shard's watermark. The result
//! is the same order for any number of shards.

use flowlib::{ConnRecord, Timestamp};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

struct Due(ConnRecord);

impl Due {
    fn key(&self) -> (Timestamp, &str, flowlib::EndReason) {
        (self.0.emitted, self.0.uid.as_str(), self.0.end_reason)
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Holds records until every shard has moved past them.
pub struct RecordOrder {
    heap: BinaryHeap<Reverse<Due>>,
    clocks: Vec<Timestamp>,
}

impl RecordOrder {
    /// An order over `shards` sources.
    pub fn new(shards: usize) -> RecordOrder {
        RecordOrder {
            heap: BinaryHeap::new(),
            clocks: vec![Timestamp(i64::MIN); shards],
        }
    }

    /// Takes records from `shard`, whose clock is now `clock`.
    pub fn push(
        &mut self,
        shard: usize,
        clock: Timestamp,
        records: impl IntoIterator<Item = ConnRecord>,
    ) {
        for r in records {
            self.heap.push(Reverse(Due(r)));
        }
        let c = &mut self.clocks[shard];
        *c = (*c).max(clock);
    }

    /// Marks `shard` as finished: it will send nothing more.
    pub fn finish(&mut self, shard: usize) {
        self.clocks[shard] = Timestamp(i64::MAX);
    }

    /// Appends to `out`, in order, every record no shard can still precede.
    pub fn release(&mut self, out: &mut Vec<ConnRecord>) {
        let min = self
            .clocks
            .iter()
            .copied()
            .min()
            .unwrap_or(Timestamp(i64::MAX));
        let watermark = if min.0 == i64::MAX {
            min
        } else {
            Timestamp(min.secs().saturating_mul(1_000_000_000))
        };
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.0.emitted >= watermark && watermark.0 != i64::MAX {
                break;
            }
            let Some(Reverse(Due(r))) = self.heap.pop() else {
                break;
            };
            out.push(r);
        }
    }

    /// Records held back.
    pub fn pending(&self) -> usize {
        self.heap.len()
    }
}
