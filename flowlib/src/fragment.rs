//! Attribution of non-first IP fragments to their flow.
//!
//! Only the first fragment of a datagram carries the transport header. The
//! tracker remembers, per fragment train (addresses, protocol, IP id, VLAN),
//! which flow the first fragment went to, so later fragments are counted in
//! that flow's packets and IP bytes. No payload is reassembled. The tracker
//! is bounded; fragments it cannot attribute are counted by the caller as
//! [`crate::Weird::UnattributedFragment`].

use crate::decode::FlowPacket;
use crate::key::FlowKey;
use crate::time::Timestamp;
use hashbrown::HashMap;
use std::net::IpAddr;
use std::time::Duration;

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
    fn of(p: &FlowPacket<'_>) -> Option<TrainKey> {
        Some(TrainKey {
            src: p.ip.src,
            dst: p.ip.dst,
            proto: p.ip.proto,
            id: p.ip.fragment?.id,
            vlan: p.vlan,
            inner_vlan: p.inner_vlan,
        })
    }
}

/// Bounded map from fragment trains to flows.
pub struct FragmentTracker {
    trains: HashMap<TrainKey, (FlowKey, bool, Timestamp)>,
    cap: usize,
    timeout: Duration,
}

impl FragmentTracker {
    /// A tracker remembering at most `cap` trains for `timeout` each.
    pub fn new(cap: usize, timeout: Duration) -> FragmentTracker {
        FragmentTracker {
            trains: HashMap::new(),
            cap,
            timeout,
        }
    }

    /// Remembers the flow of a first fragment (offset 0, more fragments follow).
    pub fn first_fragment(
        &mut self,
        p: &FlowPacket<'_>,
        key: FlowKey,
        src_is_lo: bool,
        ts: Timestamp,
    ) {
        let Some(train) = TrainKey::of(p) else { return };
        if self.trains.len() >= self.cap && !self.trains.contains_key(&train) {
            let timeout = self.timeout;
            self.trains.retain(|_, (_, _, t)| ts.since(*t) < timeout);
            if self.trains.len() >= self.cap {
                return;
            }
        }
        self.trains.insert(train, (key, src_is_lo, ts));
    }

    /// The flow (key and sender side) of a non-first fragment, if its first
    /// fragment was seen recently enough.
    pub fn lookup(&self, p: &FlowPacket<'_>, ts: Timestamp) -> Option<(FlowKey, bool)> {
        let (key, src_is_lo, t) = self.trains.get(&TrainKey::of(p)?)?;
        (ts.since(*t) < self.timeout).then_some((*key, *src_is_lo))
    }

    /// Trains currently remembered.
    pub fn len(&self) -> usize {
        self.trains.len()
    }

    /// Whether no train is remembered.
    pub fn is_empty(&self) -> bool {
        self.trains.is_empty()
    }
}
