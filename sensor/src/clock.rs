//! The capture clock of a packet stream: capture time, never backwards,
//! and not thrown forward by one packet with a wrong timestamp.
//!
//! Capture time drives every flow clock (idle and active timeouts, the
//! detector's windows). Taken as the latest time seen, one packet stamped
//! far in the future (a NIC or a merge tool writing a bad timestamp) would
//! freeze it there for the rest of the run: no flow would end by a timeout
//! again and every later packet would be applied at that time. So a packet
//! stamped more than [`MAX_LEAP`] ahead of the clock is held back (copied,
//! which happens only at such a leap) until the packet after it says
//! whether time really moved on:
//!
//! - the next packet is no more than [`MAX_LEAP`] earlier than the held
//!   one: time did move on (the next file of a replay, a quiet spell in a
//!   sparse capture). The held packet is applied at its own time, then the
//!   next one, and nothing differs from an unguarded clock;
//! - the next packet is earlier than that: the held packet's stamp was
//!   wrong. It is applied at the clock (as a packet stamped earlier than the
//!   clock is) and counted ([`CaptureClock::leaps`]); the clock stays.
//!
//! The first packet of a stream is held the same way: nothing before it
//! says whether its stamp is right (a wrong one is applied at the time of
//! the packet after it). The end of the input, or an idle tick of a live
//! capture whose wall clock (moved on from the clock, never from a held
//! stamp) is within [`MAX_LEAP`] of the held packet, accepts it at its own
//! time. Every shard of a replay sees every packet, so every shard makes the
//! same decisions; the records are the same for any number of workers.

use crate::pipeline::Packet;
use flowlib::{LinkType, Timestamp};
use std::ops::ControlFlow;

/// How far ahead of the clock a packet may be stamped before the next
/// packet must confirm that time moved on.
pub const MAX_LEAP: i64 = 600 * 1_000_000_000;

/// A packet held back at a leap, or handed back to be applied.
#[derive(Debug)]
pub struct HeldPacket {
    ts: Timestamp,
    wire_len: u32,
    link: LinkType,
    data: Vec<u8>,
}

impl HeldPacket {
    /// The packet, as it was offered.
    pub fn packet(&self) -> Packet<'_> {
        Packet {
            ts: self.ts,
            data: &self.data,
            wire_len: self.wire_len,
            link: self.link,
        }
    }
}

/// What to do with an offered packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Apply it now, at this time.
    Now(Timestamp),
    /// It was held back: nothing to do yet.
    Held,
    /// First apply the packet held before it ([`CaptureClock::take_released`])
    /// at `held_at`; then the offered one at `then`, or nothing if it was
    /// held back in turn (`None`).
    Released {
        /// When the held packet is applied.
        held_at: Timestamp,
        /// When the offered packet is applied, unless held.
        then: Option<Timestamp>,
    },
}

/// The clock of one packet stream (see the module docs).
#[derive(Debug)]
pub struct CaptureClock {
    now: Timestamp,
    /// The latest packet time applied (`now` may be ahead, moved by a tick).
    latest_packet: Timestamp,
    held: Option<HeldPacket>,
    released: Option<HeldPacket>,
    /// A buffer to copy the next held packet into.
    spare: Vec<u8>,
    backwards: u64,
    leaps: u64,
}

impl Default for CaptureClock {
    fn default() -> Self {
        CaptureClock::new()
    }
}

impl CaptureClock {
    /// A clock that has seen nothing yet.
    pub fn new() -> CaptureClock {
        CaptureClock {
            now: Timestamp(i64::MIN),
            latest_packet: Timestamp(i64::MIN),
            held: None,
            released: None,
            spare: Vec::new(),
            backwards: 0,
            leaps: 0,
        }
    }

    /// The clock: capture time, never backwards.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Packets stamped earlier than a packet before them (applied at the
    /// clock).
    pub fn backwards(&self) -> u64 {
        self.backwards
    }

    /// Packets stamped more than [`MAX_LEAP`] ahead of the clock that the
    /// packet after them did not confirm (applied at the clock).
    pub fn leaps(&self) -> u64 {
        self.leaps
    }

    /// Offers the next packet of the stream.
    pub fn offer(&mut self, p: &Packet<'_>) -> Offer {
        let Some(held_ts) = self.held.as_ref().map(|h| h.ts) else {
            return match self.hold_or_apply(p) {
                Some(ts) => Offer::Now(ts),
                None => Offer::Held,
            };
        };
        let held_at = if p.ts.0 >= held_ts.0.saturating_sub(MAX_LEAP) {
            self.apply(held_ts)
        } else if !self.applied_any() {
            // A wrong first stamp: the next packet's time is the best there is.
            self.leaps += 1;
            self.apply(p.ts)
        } else {
            self.leaps += 1;
            self.now
        };
        self.released = self.held.take();
        let then = self.hold_or_apply(p);
        Offer::Released { held_at, then }
    }

    /// An idle live capture's wall clock: a held packet within
    /// [`MAX_LEAP`] of it is accepted at its own time (else applied at the
    /// clock and counted), then the clock moves on to `now`. Returns when
    /// the released packet ([`CaptureClock::take_released`]) is applied.
    pub fn tick(&mut self, now: Timestamp) -> Option<Timestamp> {
        let released = match self.held.as_ref().map(|h| h.ts) {
            Some(ts) => {
                let at = if ts.0 <= now.0.saturating_add(MAX_LEAP) {
                    self.apply(ts)
                } else if !self.applied_any() {
                    // A wrong first stamp: the wall clock is the best there is.
                    self.leaps += 1;
                    self.apply(now)
                } else {
                    self.leaps += 1;
                    self.now
                };
                self.released = self.held.take();
                Some(at)
            }
            None => None,
        };
        self.now = self.now.max(now);
        released
    }

    /// The input ended: a held packet is accepted at its own time. Returns
    /// when the released packet ([`CaptureClock::take_released`]) is applied.
    pub fn finish(&mut self) -> Option<Timestamp> {
        let ts = self.held.as_ref()?.ts;
        let at = self.apply(ts);
        self.released = self.held.take();
        Some(at)
    }

    /// The packet released by the last [`Offer::Released`], tick or finish;
    /// give it back with [`CaptureClock::recycle`] once applied.
    ///
    /// # Panics
    /// If no packet was released.
    pub fn take_released(&mut self) -> HeldPacket {
        self.released.take().expect("a packet was released")
    }

    /// Takes back a released packet's buffer for the next leap.
    pub fn recycle(&mut self, p: HeldPacket) {
        self.spare = p.data;
    }

    /// Offers `p` and calls `apply` for every packet to apply now, in
    /// input order, with the time it is applied at (for callers whose
    /// `apply` does not need the clock itself). Stops at a `Break`.
    pub fn feed<B>(
        &mut self,
        p: Packet<'_>,
        mut apply: impl FnMut(&Packet<'_>, Timestamp) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        match self.offer(&p) {
            Offer::Now(ts) => apply(&p, ts),
            Offer::Held => ControlFlow::Continue(()),
            Offer::Released { held_at, then } => {
                let held = self.take_released();
                let flow = apply(&held.packet(), held_at);
                self.recycle(held);
                flow?;
                match then {
                    Some(ts) => apply(&p, ts),
                    None => ControlFlow::Continue(()),
                }
            }
        }
    }

    /// [`CaptureClock::finish`] for [`CaptureClock::feed`]'s callers: the
    /// held packet, if any, goes to `apply`.
    pub fn finish_with<B>(
        &mut self,
        mut apply: impl FnMut(&Packet<'_>, Timestamp) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        match self.finish() {
            Some(at) => {
                let held = self.take_released();
                let flow = apply(&held.packet(), at);
                self.recycle(held);
                flow
            }
            None => ControlFlow::Continue(()),
        }
    }

    /// Applies `p` now (returning its time) or holds it back at a leap.
    /// The first packet is always held: nothing before it says whether its
    /// stamp is right.
    fn hold_or_apply(&mut self, p: &Packet<'_>) -> Option<Timestamp> {
        let first = !self.applied_any();
        let leap = first || p.ts.0 > self.now.0.saturating_add(MAX_LEAP);
        if !leap {
            return Some(self.apply(p.ts));
        }
        let mut data = std::mem::take(&mut self.spare);
        data.clear();
        data.extend_from_slice(p.data);
        self.held = Some(HeldPacket {
            ts: p.ts,
            wire_len: p.wire_len,
            link: p.link,
            data,
        });
        None
    }

    /// Whether a packet was applied yet (the first one waits for the second).
    fn applied_any(&self) -> bool {
        self.latest_packet != Timestamp(i64::MIN)
    }

    /// Moves the clock to a packet stamped `ts`; returns the time it is
    /// applied at (`ts`, or the clock if `ts` is earlier).
    fn apply(&mut self, ts: Timestamp) -> Timestamp {
        if ts < self.latest_packet {
            // Against packets only: an idle tick moves the clock on from
            // the wall clock, and a packet stamped before a tick did not go
            // back in the capture's order (it is still applied at `now`).
            self.backwards += 1;
        }
        self.latest_packet = self.latest_packet.max(ts);
        self.now = self.now.max(ts);
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn packet(secs: i64, data: &[u8]) -> Packet<'_> {
        Packet {
            ts: Timestamp(secs * S),
            data,
            wire_len: data.len() as u32,
            link: LinkType::ETHERNET,
        }
    }

    /// Offers packets stamped `secs`; returns (stamp, applied at) in the
    /// order they are applied, the finish included.
    fn run(secs: &[i64]) -> (Vec<(i64, i64)>, CaptureClock) {
        let mut c = CaptureClock::new();
        let mut applied = Vec::new();
        for &s in secs {
            let bytes = s.to_be_bytes();
            let p = packet(s, &bytes);
            match c.offer(&p) {
                Offer::Now(at) => applied.push((s, at.0 / S)),
                Offer::Held => {}
                Offer::Released { held_at, then } => {
                    let h = c.take_released();
                    let stamp = i64::from_be_bytes(h.packet().data.try_into().unwrap());
                    assert_eq!(h.packet().ts.0 / S, stamp);
                    applied.push((stamp, held_at.0 / S));
                    c.recycle(h);
                    if let Some(at) = then {
                        applied.push((s, at.0 / S));
                    }
                }
            }
        }
        if let Some(at) = c.finish() {
            let h = c.take_released();
            applied.push((h.packet().ts.0 / S, at.0 / S));
        }
        (applied, c)
    }

    #[test]
    fn one_packet_from_the_future_does_not_move_the_clock() {
        let year_2100 = 4_102_444_800;
        let (applied, c) = run(&[1000, 1001, year_2100, 1002, 1003]);
        assert_eq!(
            applied,
            [
                (1000, 1000),
                (1001, 1001),
                (year_2100, 1001),
                (1002, 1002),
                (1003, 1003)
            ]
        );
        assert_eq!((c.leaps(), c.backwards(), c.now().0 / S), (1, 0, 1003));
    }

    #[test]
    fn time_that_moved_on_is_followed_at_once() {
        // The next file of a replay a week later; a sparse capture.
        let week = 7 * 86_400;
        let (applied, c) = run(&[1000, 1000 + week, 1001 + week, 1002 + week]);
        let at: Vec<i64> = applied.iter().map(|a| a.1).collect();
        assert_eq!(at, [1000, 1000 + week, 1001 + week, 1002 + week]);
        let (applied, c2) = run(&[0, 3600, 7200, 10_800]);
        assert_eq!(
            applied,
            [(0, 0), (3600, 3600), (7200, 7200), (10_800, 10_800)]
        );
        assert_eq!((c.leaps(), c2.leaps(), c2.backwards()), (0, 0, 0));
    }

    #[test]
    fn a_confirmed_leap_keeps_packets_after_it_in_their_order() {
        // The packet after the leap is a little earlier than it (within
        // MAX_LEAP): time moved on, and that packet is counted backwards.
        let (applied, c) = run(&[1000, 5000, 4990, 5001]);
        assert_eq!(
            applied,
            [(1000, 1000), (5000, 5000), (4990, 5000), (5001, 5001)]
        );
        assert_eq!((c.leaps(), c.backwards()), (0, 1));
    }

    #[test]
    fn two_leaps_in_a_row_and_a_leap_at_the_end() {
        // A wrong stamp followed by a real leap: the first is refuted by
        // the second (which is more than MAX_LEAP earlier), the second is
        // confirmed by the third.
        let (applied, c) = run(&[1000, 90_000, 5000, 5001, 99_999]);
        assert_eq!(
            applied,
            [
                (1000, 1000),
                (90_000, 1000),
                (5000, 5000),
                (5001, 5001),
                (99_999, 99_999)
            ]
        );
        assert_eq!(c.leaps(), 1);
    }

    #[test]
    fn a_wrong_first_stamp_is_applied_at_the_time_of_the_packet_after_it() {
        let year_2100 = 4_102_444_800;
        let (applied, c) = run(&[year_2100, 1000, 1001]);
        assert_eq!(applied, [(year_2100, 1000), (1000, 1000), (1001, 1001)]);
        assert_eq!((c.leaps(), c.backwards()), (1, 0));
        // A right one, or one a little after the next, is kept.
        let (applied, c) = run(&[1000, 1001]);
        assert_eq!(applied, [(1000, 1000), (1001, 1001)]);
        let (applied, c2) = run(&[1005, 1000]);
        assert_eq!(applied, [(1005, 1005), (1000, 1005)]);
        assert_eq!((c.leaps(), c2.leaps(), c2.backwards()), (0, 0, 1));
        // Alone in the input, it is taken as it is.
        assert_eq!(run(&[year_2100]).0, [(year_2100, year_2100)]);
    }

    #[test]
    fn a_tick_releases_a_held_packet_by_the_wall_clock() {
        let mut c = CaptureClock::new();
        let bytes = [1u8; 60];
        // The first packet waits for the second.
        assert_eq!(c.offer(&packet(1000, &bytes)), Offer::Held);
        assert_eq!(
            c.offer(&packet(1001, &bytes)),
            Offer::Released {
                held_at: Timestamp(1000 * S),
                then: Some(Timestamp(1001 * S))
            }
        );
        let first = c.take_released();
        c.recycle(first);
        assert_eq!(c.offer(&packet(5000, &bytes)), Offer::Held);
        // The wall clock is near the held packet: it was right.
        assert_eq!(c.tick(Timestamp(4999 * S)), Some(Timestamp(5000 * S)));
        assert_eq!(c.take_released().packet().data, &bytes[..]);
        assert_eq!(c.offer(&packet(1_000_000, &bytes)), Offer::Held);
        // The wall clock is far behind it: it was wrong.
        assert_eq!(c.tick(Timestamp(5010 * S)), Some(Timestamp(5000 * S)));
        let held = c.take_released();
        assert_eq!(held.packet().ts, Timestamp(1_000_000 * S));
        c.recycle(held);
        assert_eq!((c.leaps(), c.now()), (1, Timestamp(5010 * S)));
        assert_eq!(c.tick(Timestamp(5011 * S)), None);
        // A wrong first stamp released by a tick: at the wall clock.
        let mut c = CaptureClock::new();
        assert_eq!(c.offer(&packet(4_102_444_800, &bytes)), Offer::Held);
        assert_eq!(c.tick(Timestamp(1000 * S)), Some(Timestamp(1000 * S)));
        assert_eq!((c.leaps(), c.now()), (1, Timestamp(1000 * S)));
    }
}
