//! The flow table's invariants, checked on demand (by tests and fuzzers)
//! rather than on every packet.

use super::{FlowTable, SlimKey};
use crate::key::FlowKey;
use crate::record::EndReason;
use crate::time::Timestamp;
use std::hash::BuildHasher;
use thiserror::Error;

/// An invariant of a [`FlowTable`] that does not hold: a bug in flowlib.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum InvariantViolation {
    /// Connections were lost or counted twice: every connection created is
    /// either live or ended with exactly one final record.
    #[error("conservation: {created} created != {live} live + {ended} ended (incl. evicted)")]
    Conservation {
        /// [`crate::table::TableStats::created`].
        created: u64,
        /// Live connections.
        live: u64,
        /// Final records (every end reason but `active` and `start`).
        ended: u64,
    },
    /// The live count disagrees with the live slab slots or the index.
    #[error("{live} live connections, but {slots} live slab slots and {indexed} index entries")]
    LiveCount {
        /// [`FlowTable::len`].
        live: usize,
        /// Live slots in the slabs.
        slots: usize,
        /// Entries in the hash index.
        indexed: usize,
    },
    /// More connections live than ever peaked.
    #[error("peak {peak} below the {live} connections live")]
    Peak {
        /// [`crate::table::TableStats::peak_live`].
        peak: u64,
        /// Live connections.
        live: u64,
    },
    /// A live connection cannot be found through the index by its key.
    #[error("connection {key:?} is not reachable through the index")]
    Unindexed {
        /// The connection's key.
        key: FlowKey,
    },
    /// A live connection's last packet precedes its first: a negative duration.
    #[error("connection {key:?} starts at {start} after its last packet at {last}")]
    NegativeDuration {
        /// The connection's key.
        key: FlowKey,
        /// First packet.
        start: Timestamp,
        /// Last packet.
        last: Timestamp,
    },
    /// A live connection is not filed in the timer wheel at or before the
    /// second it is due: it would end late, or never.
    #[error("connection {key:?} due in second {due} is filed under {filed:?}")]
    Unfiled {
        /// The connection's key.
        key: FlowKey,
        /// The second its deadline falls in.
        due: i64,
        /// The second it is filed under, if its timer entry exists.
        filed: Option<i64>,
    },
    /// The count of half-open connections (which decides the SYN flood
    /// emergency mode) disagrees with the live connections.
    #[error("{counted} half-open connections counted, {actual} live")]
    HalfOpenCount {
        /// The table's running count.
        counted: usize,
        /// Live connections that are half-open.
        actual: usize,
    },
}

impl FlowTable {
    /// Checks the table's invariants, in time linear in the live connections
    /// and timer entries (meant for tests and fuzzing, not per packet):
    /// - conservation: `created == live + ended`, where `ended` counts
    ///   final records of every reason (`fin`, `rst`, `idle`, `evicted`,
    ///   `reuse`, `eof`, `shutdown`; not the interim `active` nor `start`);
    /// - the live count equals the live slab slots and the index entries,
    ///   and is at most the peak;
    /// - every live connection is found through the index by its key, has
    ///   its first packet no later than its last (no negative duration),
    ///   and has a timer entry filed no later than the second it is due;
    /// - the running count of half-open connections is exact.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let s = &self.stats;
        let ended: u64 = EndReason::ALL
            .iter()
            .filter(|r| !matches!(r, EndReason::Active | EndReason::Start))
            .map(|r| s.ended(*r))
            .sum();
        let live = self.live as u64;
        if s.created != live + ended {
            return Err(InvariantViolation::Conservation {
                created: s.created,
                live,
                ended,
            });
        }
        let slots = self.flows.live().count();
        if slots != self.live || self.index.len() != self.live {
            return Err(InvariantViolation::LiveCount {
                live: self.live,
                slots,
                indexed: self.index.len(),
            });
        }
        if s.peak_live < live {
            return Err(InvariantViolation::Peak {
                peak: s.peak_live,
                live,
            });
        }
        let half_open = self
            .flows
            .live()
            .filter(|&r| self.flows.is_half_open(r))
            .count();
        if half_open != self.half_open_live {
            return Err(InvariantViolation::HalfOpenCount {
                counted: self.half_open_live,
                actual: half_open,
            });
        }
        for r in self.flows.live() {
            let key = self.flows.key(r);
            let hash = self.hasher.hash_one(key);
            if self.find(&SlimKey::probe(&key), hash) != Some(r) {
                return Err(InvariantViolation::Unindexed { key });
            }
            let (conn, state) = self.flows.get(r);
            if conn.last() < conn.start() {
                return Err(InvariantViolation::NegativeDuration {
                    key,
                    start: conn.start(),
                    last: conn.last(),
                });
            }
            let due = conn.deadline(state, &self.cfg).0.secs();
            let gen = self.flows.gen(r);
            let timer_slot = self.flows.timer_slot(r);
            let filed = self
                .timers
                .get(&timer_slot)
                .is_some_and(|v| v.iter().any(|t| t.flow() == r && t.gen == gen))
                .then_some(timer_slot);
            if filed.is_none_or(|slot| slot > due) {
                return Err(InvariantViolation::Unfiled { key, due, filed });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TableConfig;
    use crate::decode::PacketView;
    use crate::LinkType;

    /// A table holding one UDP flow.
    fn one_flow() -> FlowTable {
        let ip = [
            0x45, 0, 0, 33, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x14, 0xe9, 0, 53,
            0, 13, 0, 0, b'q', b'u', b'e', b'r', b'y',
        ];
        let ts = Timestamp::from_micros(1_700_000_000, 0);
        let v = PacketView::parse(&ip, LinkType::RAW, ts, ip.len() as u32).unwrap();
        let mut t = FlowTable::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        t.update(&v.inner, ts, true, &mut out);
        assert!(out.is_empty());
        t
    }

    #[test]
    fn a_consistent_table_passes() {
        assert_eq!(one_flow().check_invariants(), Ok(()));
    }

    #[test]
    fn a_lost_connection_breaks_conservation() {
        let mut t = one_flow();
        t.stats.created += 1;
        assert!(matches!(
            t.check_invariants(),
            Err(InvariantViolation::Conservation {
                created: 2,
                live: 1,
                ended: 0
            })
        ));
    }

    #[test]
    fn a_connection_missing_from_the_timer_wheel_is_unfiled() {
        let mut t = one_flow();
        t.timers.clear();
        assert!(matches!(
            t.check_invariants(),
            Err(InvariantViolation::Unfiled { filed: None, .. })
        ));
    }

    #[test]
    fn a_wrong_half_open_count_is_reported() {
        let mut t = one_flow();
        t.half_open_live = 1;
        assert_eq!(
            t.check_invariants(),
            Err(InvariantViolation::HalfOpenCount {
                counted: 1,
                actual: 0
            })
        );
    }

    #[test]
    fn a_connection_missing_from_the_index_is_reported() {
        let mut t = one_flow();
        t.index.clear();
        assert!(matches!(
            t.check_invariants(),
            Err(InvariantViolation::LiveCount {
                live: 1,
                slots: 1,
                indexed: 0
            })
        ));
    }
}
