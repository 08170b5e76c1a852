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

    /// Keeps a finished record if it is behind an alert raised so far: the
    /// connection that raised it, or one of the pair that started at or
    /// after the time it was raised. (Records are written in batches after
    /// the batch is scored: "raised so far" alone would also take earlier
    /// connections of the pair that happened to share the alert's batch.)
    pub fn note_record(&mut self, r: &ConnRecord) {
        if r.end_reason == EndReason::Start {
            return;
        }
        let Some(alerts) = self.by_pair.get(&(r.orig_h, r.resp_h, r.vlan)) else {
            return;
        };
        for &i in alerts {
            let a = &self.alerts[i];
            if r.uid != a.uid && r.ts < a.ts {
                continue;
            }
            if self.records[i].len() < MAX_RECORDS_PER_ALERT {
                self.records[i].push(r.clone());
            } else {
                self.more[i] += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlib::{ConnState, Proto, Timestamp};
    use rules::detector::Detector;
    use std::time::Duration;

    const RULES: &str = r#"
        [[enclaves]]
        name = "cust-a"
        kind = "customer"
        networks = ["10.20.0.0/16"]

        [[enclaves]]
        name = "cust-b"
        kind = "customer"
        networks = ["10.30.0.0/16"]
    "#;

    fn record(uid: &str, secs: i64, end_reason: EndReason) -> ConnRecord {
        ConnRecord {
            ts: Timestamp::from_micros(1_772_409_600 + secs, 0),
            uid: uid.to_owned(),
            orig_h: "10.20.0.5".parse().unwrap(),
            orig_p: 50_000,
            resp_h: "10.30.0.7".parse().unwrap(),
            resp_p: 445,
            proto: Proto::Tcp,
            service: None,
            duration: Some(Duration::from_secs(10)),
            orig_bytes: Some(1),
            resp_bytes: Some(1),
            conn_state: ConnState::SF,
            local_orig: None,
            local_resp: None,
            missed_bytes: 0,
            history: "ShADadFf".into(),
            orig_pkts: 5,
            orig_ip_bytes: 300,
            resp_pkts: 5,
            resp_ip_bytes: 300,
            tunnel_parents: vec![],
            vlan: None,
            inner_vlan: None,
            ip_proto: 6,
            community_id: String::new(),
            end_reason,
            emitted: Timestamp::from_micros(1_772_409_600 + secs, 0),
            orig_enclave: None,
            resp_enclave: None,
            orig_host_group: None,
            resp_host_group: None,
        }
    }

    #[test]
    fn an_alert_keeps_its_connection_and_later_ones_whatever_the_batches() {
        let mut detector = Detector::new(rules::Rules::from_str(RULES, "t.toml").unwrap());
        let mut alerts = Vec::new();
        detector.observe(&record("CRaise", 100, EndReason::Start), &mut alerts);
        assert_eq!(alerts.len(), 1);
        let mut ev = Evidence::default();
        ev.note_alerts(&alerts);
        // One batch written after it was scored: a connection of the pair
        // that started before the alert, the one that raised it, a later one.
        for (uid, secs) in [("CEarlier", 50), ("CRaise", 100), ("CLater", 200)] {
            ev.note_record(&record(uid, secs, EndReason::Fin));
        }
        let kept: Vec<&str> = ev.records[0].iter().map(|r| r.uid.as_str()).collect();
        assert_eq!(kept, ["CRaise", "CLater"]);
    }
}
