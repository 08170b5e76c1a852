//! Alert deduplication: one alert per (source, destination, VLAN, reason)
//! per window; repeats within the window are counted and reported once,
//! as an `update` line, when the window is over (the same key alerts
//! again) or at the end of input. A repeat that scores higher than the
//! alert held is raised as a new alert, which later repeats fold into.
//!
//! The map keeps of each raised alert only what its update line needs
//! ([`Held`]): the strings a rule file already holds (enclave, host group
//! and relationship names, protocol, severity) as indices, the id as its
//! hash, no second copy of the alert. Alerts raised once whose window is
//! over can never give an update line, and are dropped while running, so
//! the map holds the alerts of one window and the repeated ones.
//!
//! Beside the map, a queue of the alerts in the order they were raised
//! finds the alerts whose window is over at a cost of the alerts it finds
//! (entries whose alert has gone are skipped when they reach its front),
//! never a pass over the map. The map holds at most [`MAX_HELD`] alerts:
//! when full, the repeated alerts whose window is over are written out,
//! then, while it is still full, the oldest alert is written out and
//! forgotten before its window is over (counted: a repeat of it raises a
//! new alert).

use super::alert::{self, Alert, ReasonHit};
use crate::config::detector::Reason;
use crate::enclave::Location;
use crate::Rules;
use flowlib::{Proto, Timestamp};
use hashbrown::HashMap;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

/// What alerts are deduplicated by.
pub(crate) type Key = (IpAddr, IpAddr, Option<u16>, Reason);

/// Most alerts held. A full map writes out and forgets the alerts whose
/// window is over, repeated or not (a bound on memory for floods of alerts
/// repeated in every window), then, if still full, its oldest alerts.
const MAX_HELD: usize = 100_000;

/// Queue entries (alerts gone included) beyond twice the alerts held
/// before a queue is compacted.
const QUEUE_SLACK: usize = 1024;

/// A raised alert as the dedup map keeps it: its count and last time, and
/// the fields of its update line that the key and the rules do not give,
/// in two allocations (the texts, the reasons) besides its own box.
pub(crate) struct Held {
    /// Time it was raised (its window starts here).
    first: Timestamp,
    /// Time of the last repeat.
    last_ts: Timestamp,
    /// Connections it stands for.
    count: u64,
    /// The hash its `alert_id` is the hex text of.
    id: u64,
    /// The uid, the community id and each reason's detail, one after the
    /// other.
    text: Box<str>,
    /// Lengths of the uid and the community id in `text`.
    uid_len: u32,
    community_id_len: u32,
    /// Each reason with its weight and the length of its detail in `text`.
    reasons: Box<[(Reason, u8, u32)]>,
    techniques: Techniques,
    orig_p: u16,
    resp_p: u16,
    proto: Proto,
    ip_proto: u8,
    /// Inner VLAN of the first connection (the key holds the outer one).
    inner_vlan: Option<u16>,
    score: u8,
    relationship: Option<usize>,
    orig: Location,
    resp: Location,
}

/// Every ATT&CK technique id an alert can carry ([`alert::techniques`]).
const TECHNIQUE_IDS: [&str; 12] = [
    "T1199",
    "T1046",
    "T1071",
    "T1048",
    "T1074",
    "T1041",
    "T1021.001",
    "T1021.002",
    "T1021.003",
    "T1021.004",
    "T1021.005",
    "T1021.006",
];

/// An alert's technique ids, in order.
enum Techniques {
    /// Up to 16 ids from [`TECHNIQUE_IDS`], 4 bits each (index + 1),
    /// first in the lowest bits: no allocation.
    Packed(u64),
    /// Any other list.
    Listed(Box<[&'static str]>),
}

impl Techniques {
    fn of(ids: &[&'static str]) -> Techniques {
        let mut packed = 0u64;
        for (i, id) in ids.iter().enumerate() {
            match TECHNIQUE_IDS.iter().position(|t| t == id) {
                Some(n) if i < 16 => packed |= (n as u64 + 1) << (4 * i),
                _ => return Techniques::Listed(ids.into()),
            }
        }
        Techniques::Packed(packed)
    }

    fn to_vec(&self) -> Vec<&'static str> {
        match self {
            Techniques::Listed(ids) => ids.to_vec(),
            Techniques::Packed(mut bits) => {
                let mut ids = Vec::new();
                while bits != 0 {
                    ids.push(TECHNIQUE_IDS[(bits & 0xf) as usize - 1]);
                    bits >>= 4;
                }
                ids
            }
        }
    }
}

/// Where an alert's names come from: the ends' locations and the
/// relationship checked against, in the detector's rules; and the
/// connection's protocol.
#[derive(Clone, Copy)]
pub(crate) struct Context {
    /// Originator's location.
    pub(crate) orig: Location,
    /// Responder's location.
    pub(crate) resp: Location,
    /// Index of the relationship in the rules, if one applied.
    pub(crate) relationship: Option<usize>,
    /// The connection's transport protocol.
    pub(crate) proto: Proto,
}

impl Held {
    fn of(a: &Alert, id: u64, cx: Context) -> Held {
        let mut text = String::with_capacity(
            a.uid.len()
                + a.community_id.len()
                + a.reasons.iter().map(|h| h.detail.len()).sum::<usize>(),
        );
        text.push_str(&a.uid);
        text.push_str(&a.community_id);
        let reasons = a
            .reasons
            .iter()
            .map(|h| {
                text.push_str(&h.detail);
                (h.reason, h.weight, h.detail.len() as u32)
            })
            .collect();
        Held {
            first: a.ts,
            last_ts: a.last_ts,
            count: a.count,
            id,
            text: text.into_boxed_str(),
            uid_len: a.uid.len() as u32,
            community_id_len: a.community_id.len() as u32,
            reasons,
            techniques: Techniques::of(&a.techniques),
            orig_p: a.orig_p,
            resp_p: a.resp_p,
            proto: cx.proto,
            ip_proto: a.ip_proto,
            inner_vlan: a.inner_vlan,
            score: a.score,
            relationship: cx.relationship,
            orig: cx.orig,
            resp: cx.resp,
        }
    }

    /// The alert's update line (only repeated alerts have one).
    fn update(&self, key: &Key, rules: &Rules) -> Option<Alert> {
        if self.count <= 1 {
            return None;
        }
        let group = |l: Location| l.host_group.map(|g| rules.host_group(g).name().to_owned());
        let (uid, rest) = self.text.split_at(self.uid_len as usize);
        let (community_id, mut details) = rest.split_at(self.community_id_len as usize);
        let reasons = self
            .reasons
            .iter()
            .map(|&(reason, weight, len)| {
                let (detail, more) = details.split_at(len as usize);
                details = more;
                ReasonHit {
                    reason,
                    weight,
                    detail: detail.to_owned(),
                }
            })
            .collect();
        Some(Alert {
            event: "update",
            ts: self.last_ts,
            alert_id: id_text(self.id),
            uid: uid.to_owned(),
            community_id: community_id.to_owned(),
            orig_h: key.0,
            orig_p: self.orig_p,
            resp_h: key.1,
            resp_p: self.resp_p,
            proto: self.proto.name().to_owned(),
            ip_proto: self.ip_proto,
            vlan: key.2,
            inner_vlan: self.inner_vlan,
            score: self.score,
            severity: alert::severity(self.score, &rules.detector().severity),
            reasons,
            relationship: self
                .relationship
                .map(|i| rules.relationships()[i].name().to_owned()),
            orig_enclave: rules.enclave(self.orig.enclave).name().to_owned(),
            resp_enclave: rules.enclave(self.resp.enclave).name().to_owned(),
            orig_host_group: group(self.orig),
            resp_host_group: group(self.resp),
            techniques: self.techniques.to_vec(),
            count: self.count,
            last_ts: self.last_ts,
            primary: key.3,
        })
    }
}

/// The hex text of an alert id.
pub(crate) fn id_text(id: u64) -> String {
    format!("{id:016x}")
}

/// A held alert in a queue: its id (an entry whose key holds an alert of
/// another id, or none, is of an alert gone) and key.
type Queued = (u64, Key);

/// Raised alerts, by key, until their window is over.
pub(crate) struct AlertDedup {
    /// Boxed: a table entry is then 48 bytes, not 180, and the table moves
    /// a quarter of the bytes each time it grows (it grows with the alerts
    /// of a window, to tens of thousands on a busy network).
    held: HashMap<Key, Box<Held>>,
    /// Every alert held, in the order raised (so by the time its window
    /// ends).
    raised: VecDeque<Queued>,
    /// The repeated alerts whose window is over, in the order raised:
    /// their update lines wait for a repeat, the end of input or a full
    /// map.
    over: VecDeque<Queued>,
    /// Most alerts held ([`MAX_HELD`]; less in tests).
    cap: usize,
    /// Alerts forgotten before their window was over, the map being full.
    evicted: u64,
    /// Queue entries looked at (the cost of expiry).
    #[cfg(test)]
    visited: u64,
    /// What was held when the input last ended ([`AlertDedup::finish`]).
    finished: HashMap<Key, Box<Held>>,
}

impl Default for AlertDedup {
    fn default() -> Self {
        AlertDedup::with_cap(MAX_HELD)
    }
}

impl AlertDedup {
    /// A map holding at most `cap` alerts.
    pub(crate) fn with_cap(cap: usize) -> AlertDedup {
        AlertDedup {
            held: HashMap::new(),
            raised: VecDeque::new(),
            over: VecDeque::new(),
            cap: cap.max(1),
            evicted: 0,
            #[cfg(test)]
            visited: 0,
            finished: HashMap::new(),
        }
    }

    /// Alerts written out and forgotten before their window was over, to
    /// keep the map within its cap.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Folds an alert raised at `ts` with `score` into the alert with the
    /// same key raised within `window` (true), or makes room for a new one
    /// (false): the previous alert's update, if it is over or the new one
    /// scores higher, goes to `out`, and so do those of alerts written out
    /// to keep the map within its cap.
    pub(crate) fn fold(
        &mut self,
        key: &Key,
        ts: Timestamp,
        score: u8,
        window: Duration,
        rules: &Rules,
        out: &mut Vec<Alert>,
    ) -> bool {
        if let Some(prev) = self.held.get_mut(key) {
            // A repeat that scores higher (an administrative protocol after
            // a web port, say) is raised: folded, its severity and
            // techniques would be lost.
            if ts.since(prev.first) <= window && score <= prev.score {
                prev.count += 1;
                prev.last_ts = prev.last_ts.max(ts);
                return true;
            }
            if let Some(prev) = self.held.remove(key) {
                out.extend(prev.update(key, rules));
            }
        }
        self.expire(ts, window);
        if self.held.len() >= self.cap {
            // Full: the repeated alerts whose window is over go first...
            while let Some(q) = self.over.pop_front() {
                self.write_out(&q, rules, out);
            }
            // ...then, while still full, the oldest alerts.
            while self.held.len() >= self.cap {
                let Some(q) = self.raised.pop_front() else {
                    break;
                };
                if self.write_out(&q, rules, out) {
                    self.evicted += 1;
                }
            }
        }
        false
    }

    /// Keeps a newly raised alert (already written) with its id hash.
    pub(crate) fn hold(&mut self, key: Key, a: &Alert, id: u64, cx: Context) {
        self.held.insert(key, Box::new(Held::of(a, id, cx)));
        self.raised.push_back((id, key));
        compact(&mut self.raised, &self.held);
        compact(&mut self.over, &self.held);
    }

    /// Takes the alerts whose window is over at `ts` off the front of the
    /// queue: forgets those raised once (they can never be folded into or
    /// updated again: alerts come in time order), and queues the repeated
    /// ones' updates.
    fn expire(&mut self, ts: Timestamp, window: Duration) {
        while let Some(&(id, key)) = self.raised.front() {
            #[cfg(test)]
            {
                self.visited += 1;
            }
            match self.held.get(&key) {
                Some(h) if h.id == id => {
                    if ts.since(h.first) <= window {
                        break;
                    }
                    if h.count > 1 {
                        self.over.push_back((id, key));
                    } else {
                        self.held.remove(&key);
                    }
                }
                // Gone: its key raised a newer alert.
                _ => {}
            }
            self.raised.pop_front();
        }
    }

    /// Writes out and forgets the queued alert `q`, if it is still held;
    /// whether it was.
    fn write_out(&mut self, &(id, key): &Queued, rules: &Rules, out: &mut Vec<Alert>) -> bool {
        #[cfg(test)]
        {
            self.visited += 1;
        }
        if self.held.get(&key).is_none_or(|h| h.id != id) {
            return false;
        }
        if let Some(prev) = self.held.remove(&key) {
            out.extend(prev.update(&key, rules));
        }
        true
    }

    /// End of input: the updates of every repeated alert, in the order
    /// they were raised.
    pub(crate) fn finish(&mut self, rules: &Rules, out: &mut Vec<Alert>) {
        let mut rest: Vec<(&Key, &Box<Held>)> =
            self.held.iter().filter(|(_, h)| h.count > 1).collect();
        rest.sort_unstable_by_key(|(_, h)| (h.first, h.id));
        out.extend(rest.into_iter().filter_map(|(k, h)| h.update(k, rules)));
        // The input is over: the map is put aside whole rather than emptied
        // entry by entry (tens of thousands of frees, the last thing a
        // replay would wait for). It goes with the detector, or at the next
        // finish.
        self.finished = std::mem::take(&mut self.held);
        self.raised.clear();
        self.over.clear();
    }

    /// Alerts held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Queue entries looked at so far.
    #[cfg(test)]
    pub(crate) fn visited(&self) -> u64 {
        self.visited
    }
}

/// Drops the entries of alerts gone from `queue` when it has grown past
/// twice the alerts held (the cost spread over as many new entries).
fn compact(queue: &mut VecDeque<Queued>, held: &HashMap<Key, Box<Held>>) {
    if queue.len() > 2 * held.len() + QUEUE_SLACK {
        queue.retain(|(id, key)| held.get(key).is_some_and(|h| h.id == *id));
    }
}

#[cfg(test)]
mod tests {
    use super::{Techniques, TECHNIQUE_IDS};

    #[test]
    fn technique_lists_come_back_in_order() {
        let lists: [&[&'static str]; 5] = [
            &[],
            &["T1199", "T1021.001"],
            &["T1021.006", "T1074", "T1041", "T1199"],
            &TECHNIQUE_IDS,
            &["T1199", "T9999"],
        ];
        for ids in lists {
            let t = Techniques::of(ids);
            assert_eq!(t.to_vec(), ids);
            assert_eq!(matches!(t, Techniques::Listed(_)), ids.contains(&"T9999"));
        }
    }
}
