//! The alerts a detector raised, kept in memory with the connection records
//! behind each: the connection that raised it and the later connections of
//! the same host pair (on the same VLAN), which repeats of the alert were
//! folded from.

use flowlib::{ConnRecord, EndReason};
use rules::detector::Alert;
use std::collections::HashMap;
use std::net::IpAddr;

/// Records kept per alert; beyond it they are counted in [`Evidence::more`].
pub const MAX_RECORDS_PER_ALERT: usize = 25;

/// Alerts and the records behind them.
#[derive(Debug, Default)]
pub struct Evidence {
    /// Alerts in the order raised; an `update` event is folded into its
    /// alert (count and last time).
    pub alerts: Vec<Alert>,
    /// Records behind each alert (same index as `alerts`).
    pub records: Vec<Vec<ConnRecord>>,
    /// Records behind each alert beyond [`MAX_RECORDS_PER_ALERT`].
    pub more: Vec<u64>,
    index: HashMap<String, usize>,
    by_pair: HashMap<(IpAddr, IpAddr, Option<u16>), Vec<usize>>,
}

impl Evidence {
    /// Takes note of alerts (and updates) as the detector raises them.
    pub fn note_alerts(&mut self, alerts: &[Alert]) {
        for a in alerts {
            if let Some(&i) = self.index.get(&a.alert_id) {
                let kept = &mut self.alerts[i];
                kept.count = kept.count.max(a.count);
                kept.last_ts = kept.last_ts.max(a.last_ts);
                continue;
            }
            let i = self.alerts.len();
            self.index.insert(a.alert_id.clone(), i);
            self.by_pair
                .entry((a.orig_h, a.resp_h, a.vlan))
                .or_default()
                .push(i);
            self.alerts.push(a.clone());
            self.records.push(Vec::new());
            self.more.push(0);
        }
    }

    /// Keeps a finished record if it is behind an alert raised so far.
    pub fn note_record(&mut self, r: &ConnRecord) {
        if r.end_reason == EndReason::Start {
            return;
        }
        let Some(alerts) = self.by_pair.get(&(r.orig_h, r.resp_h, r.vlan)) else {
            return;
        };
        for &i in alerts {
            if self.records[i].len() < MAX_RECORDS_PER_ALERT {
                self.records[i].push(r.clone());
            } else {
                self.more[i] += 1;
            }
        }
    }
}
