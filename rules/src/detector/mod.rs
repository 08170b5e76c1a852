//! The detector: scores every connection that crosses a trust boundary
//! (or touches a host group) from 0 to 100 and explains the score.
//!
//! Feed it connection records in order ([`Detector::observe`]): start
//! records (end reason `start`, the connection's first packet) get the
//! policy reasons at once — no relationship, cross-customer, outside the
//! window, unapproved host, administrative protocol — and feed the fan-out
//! tracker; finished records get the behavioural reasons — beaconing
//! (RITA-style timing and size regularity), staging then upload, the
//! relationship's volume ceiling, very long sessions. An alert is raised
//! when the score reaches the threshold; repeats of the same (source,
//! destination, reason) within the dedup window are counted and reported
//! once as an `update` rather than repeated, unless they score higher.
//!
//! Fan-out and beaconing count every connection, inside an enclave too:
//! a scan or a periodic check-in is evidence wherever it runs.

mod alert;
pub(crate) mod behaviour;
mod dedup;
pub(crate) mod policy;
mod small_map;

pub use alert::{Alert, ReasonHit};
pub use behaviour::beacon_score;
pub(crate) use behaviour::BeaconTracker;

use crate::baseline::{self, Baseline, BaselineIndex};
use crate::config::detector::Reason;
use crate::enclave::{EnclaveKind, Location};
use crate::Rules;
use behaviour::{CeilingDay, FanOutTracker, LongSessions, StagingTracker, VolumeLedger};
use dedup::AlertDedup;
use flowlib::{ConnRecord, EndReason, Timestamp};
use hashbrown::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Counters of a detector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DetectorStats {
    /// Records looked at.
    pub records: u64,
    /// Alerts raised, by primary reason.
    pub alerts: HashMap<&'static str, u64>,
    /// Alerts raised, by severity.
    pub severities: HashMap<&'static str, u64>,
    /// Repeats folded into an earlier alert.
    pub suppressed: u64,
    /// Alerts written out (their update line, if repeated) and forgotten
    /// before their dedup window was over, the dedup map being full: a
    /// repeat of one raises a new alert.
    pub alerts_evicted: u64,
    /// Sources the fan-out tracker forgot while their window was open, its
    /// table being full (those seen on one host and port first, then the
    /// least recently seen).
    pub fan_out_evicted: u64,
    /// Pairs the beacon tracker forgot while their window was open, its
    /// table being full (those seen once first, then the least recently
    /// seen).
    pub beacon_evicted: u64,
    /// Hosts the staging tracker forgot while their window was open, its
    /// table being full (those that pulled least recently first).
    pub staging_evicted: u64,
    /// Running long sessions forgotten, the table of those already
    /// reported being full (the least recently seen first): a later record
    /// of one reports it again.
    pub long_sessions_evicted: u64,
    /// Pulls from an internal host the staging tracker did not remember,
    /// the host having pulled from 64 others in the window (its bytes
    /// count; the alert says "more than" that many hosts).
    pub staging_sources_rejected: u64,
    /// Windows of a source whose fan-out sets reached their cap (4096
    /// hosts, or 4096 host and port pairs) before its fan-out was reported:
    /// hosts and ports new to it were not counted for the rest of the
    /// window.
    pub fan_out_saturated: u64,
}

impl DetectorStats {
    /// What the detector's bounded tables did when full, as (table,
    /// outcome, count), every one, zeros included: `dedup`/`evicted`
    /// ([`DetectorStats::alerts_evicted`]), `fan_out`, `beacon`,
    /// `staging`, `long_session`/`evicted`; `staging_sources`/`rejected`;
    /// `fan_out_sets`/`saturated`.
    pub fn bounded(&self) -> Vec<(&'static str, &'static str, u64)> {
        vec![
            ("dedup", "evicted", self.alerts_evicted),
            ("fan_out", "evicted", self.fan_out_evicted),
            ("beacon", "evicted", self.beacon_evicted),
            ("staging", "evicted", self.staging_evicted),
            ("long_session", "evicted", self.long_sessions_evicted),
            ("staging_sources", "rejected", self.staging_sources_rejected),
            ("fan_out_sets", "saturated", self.fan_out_saturated),
        ]
    }
}

/// Copies of the settings one record needs.
struct Knobs {
    fan_out: crate::config::detector::FanOut,
    beacon: crate::config::detector::Beacon,
    long_session: crate::config::detector::LongSession,
    weights: crate::config::detector::Weights,
    alert_threshold: u8,
}

/// Scores connections against a rule set.
pub struct Detector {
    rules: Rules,
    baseline: Option<BaselineIndex>,
    fan_out: FanOutTracker,
    beacons: BeaconTracker,
    staging: StagingTracker,
    long_sessions: LongSessions,
    volume: VolumeLedger,
    dedup: AlertDedup,
    stats: DetectorStats,
    /// Some relationship has a volume ceiling.
    any_ceiling: bool,
    /// The reasons found for the record being scored (kept empty between
    /// records, for its allocation).
    found: Vec<(Reason, Option<String>)>,
}

impl Detector {
    /// A detector for `rules` (its `[detector]` table holds the settings).
    pub fn new(rules: Rules) -> Detector {
        let any_ceiling = rules
            .relationships()
            .iter()
            .any(|rel| rel.max_bytes_per_day().is_some());
        Detector {
            any_ceiling,
            found: Vec::new(),
            rules,
            baseline: None,
            fan_out: FanOutTracker::default(),
            beacons: BeaconTracker::default(),
            staging: StagingTracker::default(),
            long_sessions: LongSessions::default(),
            volume: VolumeLedger::default(),
            dedup: AlertDedup::default(),
            stats: DetectorStats::default(),
        }
    }

    /// Compares connections with a learned baseline: first-seen pairs,
    /// services and provider hours, uploads out of line, and known
    /// periodic pairs (not reported as beacons).
    pub fn with_baseline(mut self, baseline: Baseline) -> Detector {
        self.baseline = Some(BaselineIndex::new(baseline));
        self
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Counters so far.
    pub fn stats(&self) -> &DetectorStats {
        &self.stats
    }

    /// Looks at one connection record; alerts go to `out`.
    pub fn observe(&mut self, r: &ConnRecord, out: &mut Vec<Alert>) {
        let (o, d) = (
            self.rules.locate(r.orig_h, r.vlan),
            self.rules.locate(r.resp_h, r.vlan),
        );
        self.observe_located(r, o, d, out);
    }

    /// [`Detector::observe`] for a caller that has already looked up where
    /// the originator (`o`) and the responder (`d`) are:
    /// [`Rules::locate`] of `orig_h` and `resp_h` with the record's outer
    /// VLAN, in these rules (e.g. to annotate the record as well).
    pub fn observe_located(
        &mut self,
        r: &ConnRecord,
        o: Location,
        d: Location,
        out: &mut Vec<Alert>,
    ) {
        // One list of reasons for every record: most records find a
        // reason or two and raise no alert.
        let mut found = std::mem::take(&mut self.found);
        self.score(r, o, d, &mut found, out);
        found.clear();
        self.found = found;
        self.stats.fan_out_evicted = self.fan_out.evicted();
        self.stats.beacon_evicted = self.beacons.evicted();
        self.stats.staging_evicted = self.staging.evicted();
        self.stats.long_sessions_evicted = self.long_sessions.evicted();
        self.stats.staging_sources_rejected = self.staging.sources_rejected();
        self.stats.fan_out_saturated = self.fan_out.saturated();
    }

    /// [`Detector::observe_located`] with an empty list to collect the
    /// reasons found in (each with its explanation; `None` for policy
    /// reasons, whose explanation is written only if an alert is raised).
    fn score(
        &mut self,
        r: &ConnRecord,
        o: Location,
        d: Location,
        found: &mut Vec<(Reason, Option<String>)>,
        out: &mut Vec<Alert>,
    ) {
        self.stats.records += 1;
        if policy::ignored(&self.rules, r, o, d) {
            return;
        }
        // The small, copyable settings this record needs (no clone of the
        // lists in the settings per record).
        let settings = {
            let d = self.rules.detector();
            Knobs {
                fan_out: d.fan_out,
                beacon: d.beacon,
                long_session: d.long_session,
                weights: d.weights,
                alert_threshold: d.alert_threshold,
            }
        };
        // A finished record needs the relationships only for a volume
        // ceiling or to explain an alert: until then, only where it stands.
        let checked = r.end_reason == EndReason::Start || self.any_ceiling;
        let mut verdict = if checked {
            policy::check(&self.rules, r, o, d)
        } else {
            policy::scope(&self.rules, o, d)
        };
        let primary;
        match r.end_reason {
            EndReason::Start => {
                found.extend(verdict.reasons.iter().map(|x| (*x, None)));
                if verdict.scored {
                    found.extend(
                        self.novelty(r, verdict.provider_side)
                            .into_iter()
                            .map(|(x, t)| (x, Some(t))),
                    );
                }
                if let Some((x, t)) = self.fan_out.observe(r, &settings.fan_out) {
                    found.push((x, Some(t)));
                }
                found.retain(|(reason, _)| policy::counts(&self.rules, *reason));
                // The strongest reason that counts names the alert.
                primary = found
                    .iter()
                    .map(|(reason, _)| *reason)
                    .max_by_key(|reason| settings.weights.get(*reason));
            }
            reason => {
                let mut behaviour = Vec::new();
                // Once a connection: its interim records, each running
                // longer, and its final one are the same session.
                // A session a relationship allows that opened and (so far)
                // ran inside one opening of its window is what the window
                // is for (a provider's VPN or RDP session through a long
                // maintenance window); running past its close is long.
                if verdict.crosses
                    && r.duration
                        .is_some_and(|dur| dur >= settings.long_session.min_duration)
                    && !self.within_its_window(r, o, d)
                    && self.long_sessions.first(r)
                {
                    behaviour.push((
                        Reason::LongSession,
                        format!(
                            "session across the boundary running {} min",
                            r.duration.map_or(0, |d| d.as_secs() / 60)
                        ),
                    ));
                }
                if reason != EndReason::Active {
                    if let (true, Some(i)) = (verdict.allowed, verdict.relationship) {
                        let rel = &self.rules.relationships()[i];
                        if let Some(ceiling) = rel.max_bytes_per_day() {
                            // An allowed connection of a relationship with
                            // windows starts in one of them.
                            let day = rel
                                .windows()
                                .iter()
                                .find_map(|w| w.opened_on(r.ts))
                                .map(CeilingDay::WindowOpened)
                                .unwrap_or_else(|| {
                                    let zone = self.rules.default_tz();
                                    let local =
                                        r.ts.secs() + i64::from(zone.offset_at(r.ts.secs()));
                                    CeilingDay::Calendar(local.div_euclid(86_400))
                                });
                            behaviour.extend(self.volume.add(i, rel.name(), ceiling, day, r));
                        }
                    }
                    let known = self
                        .baseline
                        .as_ref()
                        .and_then(|b| b.pair(r.orig_h, r.resp_h, r.vlan));
                    let beacon = self.beacons.observe(r, &settings.beacon);
                    if !known.is_some_and(|p| p.periodic_service_of(r)) {
                        behaviour.extend(beacon);
                    }
                    if let (true, Some(p)) = (verdict.scored, known) {
                        let volume = self.rules.detector().volume;
                        behaviour.extend(volume_vs_baseline(r, &p.profile, &volume));
                    }
                    behaviour.extend(self.staging_step(r, o, d));
                }
                behaviour.retain(|(reason, _)| policy::counts(&self.rules, *reason));
                primary = behaviour.first().map(|(reason, _)| *reason);
                if primary.is_some() {
                    if !checked {
                        verdict = policy::check(&self.rules, r, o, d);
                    }
                    // The policy context explains the score too.
                    found.extend(verdict.reasons.iter().map(|x| (*x, None)));
                    found.extend(behaviour.into_iter().map(|(x, t)| (x, Some(t))));
                }
            }
        }
        let Some(primary) = primary else { return };
        found.retain(|(reason, _)| policy::counts(&self.rules, *reason));
        let score = found
            .iter()
            .map(|(reason, _)| u32::from(settings.weights.get(*reason)))
            .sum::<u32>()
            .min(100) as u8;
        if score < settings.alert_threshold || found.is_empty() {
            return;
        }
        let hits = found
            .drain(..)
            .map(|(reason, text)| ReasonHit {
                reason,
                weight: settings.weights.get(reason),
                detail: text
                    .unwrap_or_else(|| policy::detail(&self.rules, r, o, d, &verdict, reason)),
            })
            .collect();
        let alert = self.build(r, o, d, &verdict, hits, score, primary);
        let context = dedup::Context {
            orig: o,
            resp: d,
            relationship: verdict.relationship,
            proto: r.proto,
        };
        self.emit(primary, alert, context, out);
    }

    /// Whether `r` is allowed by a relationship with time windows and ran,
    /// start to (latest) end, inside one opening of one of its windows.
    fn within_its_window(&self, r: &ConnRecord, o: Location, d: Location) -> bool {
        let Some(duration) = r.duration else {
            return false;
        };
        let v = policy::check(&self.rules, r, o, d);
        let (true, Some(i)) = (v.allowed, v.relationship) else {
            return false;
        };
        let end = Timestamp(
            r.ts.0
                .saturating_add(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)),
        );
        self.rules.relationships()[i].windows().iter().any(|w| {
            w.opened_on(r.ts)
                .is_some_and(|day| w.opened_on(end) == Some(day))
        })
    }

    /// First-seen reasons against the baseline.
    fn novelty(&self, r: &ConnRecord, provider_side: bool) -> Vec<(Reason, String)> {
        let Some(b) = &self.baseline else {
            return Vec::new();
        };
        let mut found = Vec::new();
        match b.pair(r.orig_h, r.resp_h, r.vlan) {
            None => found.push((
                Reason::NewPair,
                format!("{} -> {} never seen in the baseline", r.orig_h, r.resp_h),
            )),
            Some(known) => {
                let p = &known.profile;
                if !known.used_service_of(r) {
                    found.push((
                        Reason::NewService,
                        format!(
                            "{} is new for this pair (baseline: {})",
                            baseline::service_of(r),
                            p.services.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                let hour = baseline::hour_of_week(r.ts);
                if provider_side && !p.hours.contains(&hour) {
                    found.push((
                        Reason::NewHour,
                        format!("no provider session at this hour of the week in the baseline (hour {hour}, Monday 00:00 UTC = 0)"),
                    ));
                }
            }
        }
        found
    }

    /// Staging bookkeeping for a finished connection.
    fn staging_step(
        &mut self,
        r: &ConnRecord,
        o: Location,
        d: Location,
    ) -> Option<(Reason, String)> {
        let cfg = self.rules.detector().staging;
        let kind = |l: Location| self.rules.enclave(l.enclave).kind();
        let (ok, dk) = (kind(o), kind(d));
        let internal = |k: EnclaveKind| k != EnclaveKind::External;
        if internal(ok) && internal(dk) {
            // Both ends inside: whatever either end received counts as pulled.
            let (down, up) = (r.resp_bytes.unwrap_or(0), r.orig_bytes.unwrap_or(0));
            self.staging
                .pulled((r.orig_h, r.vlan), r.resp_h, down, r.ts, &cfg);
            self.staging
                .pulled((r.resp_h, r.vlan), r.orig_h, up, r.ts, &cfg);
            None
        } else if internal(ok) && !internal(dk) {
            let (rules, baseline) = (&self.rules, self.baseline.as_ref());
            let threshold = || staging_threshold(rules, baseline, r.orig_h, r.vlan);
            self.staging.uploaded(
                (r.orig_h, r.vlan),
                r.orig_bytes.unwrap_or(0),
                r.ts,
                &cfg,
                threshold,
            )
        } else {
            None
        }
    }

    #[allow(clippy::too_many_arguments)] // the alert's parts, each named
    fn build(
        &self,
        r: &ConnRecord,
        o: Location,
        d: Location,
        verdict: &policy::PolicyVerdict,
        hits: Vec<ReasonHit>,
        score: u8,
        primary: Reason,
    ) -> Alert {
        let rules = &self.rules;
        let group = |l: Location| l.host_group.map(|g| rules.host_group(g).name().to_owned());
        let techniques = alert::techniques(&hits, r, verdict.provider_side);
        Alert {
            event: "alert",
            ts: r.emitted.max(r.ts),
            alert_id: String::new(),
            uid: r.uid.clone(),
            community_id: r.computed_community_id(),
            orig_h: r.orig_h,
            orig_p: r.orig_p,
            resp_h: r.resp_h,
            resp_p: r.resp_p,
            proto: r.proto.name().to_owned(),
            ip_proto: r.ip_proto,
            vlan: r.vlan,
            inner_vlan: r.inner_vlan,
            score,
            severity: alert::severity(score, &rules.detector().severity),
            reasons: hits,
            relationship: verdict
                .relationship
                .map(|i| rules.relationships()[i].name().to_owned()),
            orig_enclave: rules.enclave(o.enclave).name().to_owned(),
            resp_enclave: rules.enclave(d.enclave).name().to_owned(),
            orig_host_group: group(o),
            resp_host_group: group(d),
            techniques,
            count: 1,
            last_ts: r.ts,
            primary,
        }
    }

    /// Raises an alert, or folds it into the same (source, destination,
    /// reason) alert raised within the dedup window.
    fn emit(
        &mut self,
        primary: Reason,
        mut alert: Alert,
        context: dedup::Context,
        out: &mut Vec<Alert>,
    ) {
        let key = (alert.orig_h, alert.resp_h, alert.vlan, primary);
        let window = self.rules.detector().dedup_window;
        if self
            .dedup
            .fold(&key, alert.ts, alert.score, window, &self.rules, out)
        {
            self.stats.suppressed += 1;
            return;
        }
        self.stats.alerts_evicted = self.dedup.evicted();
        let id = alert_id(&key, alert.ts);
        alert.alert_id = dedup::id_text(id);
        *self.stats.alerts.entry(primary.as_str()).or_default() += 1;
        *self.stats.severities.entry(alert.severity).or_default() += 1;
        self.dedup.hold(key, &alert, id, context);
        out.push(alert);
    }

    /// End of input: reports the final counts of deduplicated alerts.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        self.dedup.finish(&self.rules, out);
    }
}

/// Feeds formatted text to a byte-eating hash.
struct Fnv<'a, F: FnMut(&[u8])>(&'a mut F);

impl<F: FnMut(&[u8])> std::fmt::Write for Fnv<'_, F> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        (self.0)(s.as_bytes());
        Ok(())
    }
}

/// Writes the dotted-quad text of `v4` (as its `Display` does) into
/// `out`; returns its length.
fn ipv4_text(v4: std::net::Ipv4Addr, out: &mut [u8; 15]) -> usize {
    let mut n = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            out[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            out[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        out[n] = b'0' + octet % 10;
        n += 1;
    }
    n
}

/// A stable id: a hash of the alert's key and first time (written as hex).
fn alert_id(key: &dedup::Key, ts: Timestamp) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    // The addresses' text, hashed as it is formatted (no temporary string;
    // IPv4 without the formatting machinery).
    for addr in [key.0, key.1] {
        match addr {
            IpAddr::V4(v4) => {
                let mut text = [0u8; 15];
                let n = ipv4_text(v4, &mut text);
                eat(&text[..n]);
            }
            IpAddr::V6(v6) => {
                let _ = write!(Fnv(&mut eat), "{v6}");
            }
        }
    }
    eat(&key.2.map_or([0xff; 3], |v| [0, (v >> 8) as u8, v as u8]));
    eat(key.3.as_str().as_bytes());
    eat(&ts.0.to_le_bytes());
    h
}

/// An upload far above what the baseline knows for the pair (`p`).
fn volume_vs_baseline(
    r: &ConnRecord,
    p: &baseline::PairProfile,
    cfg: &crate::config::detector::Volume,
) -> Option<(Reason, String)> {
    let sent = r.orig_bytes.unwrap_or(0);
    let usual = p
        .orig_bytes
        .mean()
        .max(p.orig_bytes.max as f64 / 2.0)
        .max(1.0);
    (p.orig_bytes.count >= 3 && sent >= cfg.min_bytes && sent as f64 > cfg.factor * usual).then(
        || {
            (
                Reason::Volume,
                format!("sent {sent} bytes; the baseline's usual for this pair is {usual:.0}"),
            )
        },
    )
}

/// The bytes `host` must pull within a staging window to hold a staged
/// collection: with a baseline that learned hosts' pulls, out of line with
/// what it pulled while learning (`[detector.volume]` factor times the
/// most it pulled in one window, at least that section's min_bytes), so the
/// threshold follows the network's own scale; else `[detector.staging]`
/// min_bytes.
fn staging_threshold(
    rules: &Rules,
    baseline: Option<&BaselineIndex>,
    host: IpAddr,
    vlan: Option<u16>,
) -> u64 {
    let d = rules.detector();
    match baseline.and_then(|b| b.staging_pull(host, vlan)) {
        Some(learned) => ((learned as f64 * d.volume.factor) as u64).max(d.volume.min_bytes),
        None => d.staging.min_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::{ipv4_text, Alert, Detector, Reason};
    use crate::Rules;
    use flowlib::{ConnRecord, ConnState, EndReason, Proto, Timestamp};
    use std::net::{IpAddr, Ipv4Addr};

    /// `secs` past 2026-03-02 00:00 UTC.
    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_micros(1_772_409_600 + secs, 0)
    }

    const RULES: &str = r#"
[defaults]
tz = "UTC"

[[enclaves]]
name = "cust-a"
kind = "customer"
networks = ["10.20.0.0/16"]

[[enclaves]]
name = "cust-b"
kind = "customer"
networks = ["10.30.0.0/16"]
"#;

    /// Source `i`'s start record to cust-b at `minute` (cross-customer).
    fn start(i: u32, minute: i64) -> ConnRecord {
        let ts = Timestamp::from_micros(1_772_409_600 + minute * 60, 0);
        let orig = Ipv4Addr::new(10, 20, (i / 250) as u8, (i % 250 + 1) as u8);
        tcp_start(
            format!("C{i}x{minute}"),
            orig,
            Ipv4Addr::new(10, 30, 0, 5),
            445,
            ts,
        )
    }

    /// The start record of a TCP connection attempt (one SYN) from `orig`
    /// to `resp`:`resp_p` at `ts`.
    pub(crate) fn tcp_start(
        uid: String,
        orig: Ipv4Addr,
        resp: Ipv4Addr,
        resp_p: u16,
        ts: Timestamp,
    ) -> ConnRecord {
        ConnRecord {
            ts,
            uid,
            orig_h: orig.into(),
            orig_p: 40000,
            resp_h: resp.into(),
            resp_p,
            proto: Proto::Tcp,
            service: None,
            duration: None,
            orig_bytes: None,
            resp_bytes: None,
            conn_state: ConnState::S0,
            local_orig: None,
            local_resp: None,
            missed_bytes: 0,
            history: "S".into(),
            orig_pkts: 1,
            orig_ip_bytes: 60,
            resp_pkts: 0,
            resp_ip_bytes: 0,
            tunnel_parents: vec![],
            vlan: None,
            inner_vlan: None,
            ip_proto: 6,
            community_id: String::new(),
            end_reason: EndReason::Start,
            emitted: ts,
            orig_enclave: None,
            resp_enclave: None,
            orig_host_group: None,
            resp_host_group: None,
        }
    }

    #[test]
    fn alerts_raised_once_are_forgotten_when_their_window_is_over() {
        // Dedup window: 1 h. 3000 sources alert at 01:00, the even ones
        // again at 01:30 (folded); 3000 other sources at 02:30 (the map
        // sweeps: the odd sources' alerts are over and were never
        // repeated); then the first 3000 again at 03:45.
        let mut d = Detector::new(Rules::from_str(RULES, "t.toml").expect("valid rules"));
        let mut out: Vec<Alert> = Vec::new();
        for i in 0..3000 {
            d.observe(&start(i, 60), &mut out);
        }
        for i in (0..3000).step_by(2) {
            d.observe(&start(i, 90), &mut out);
        }
        assert_eq!(out.len(), 3000);
        let first_ids: Vec<String> = out.iter().map(|a| a.alert_id.clone()).collect();
        for i in 3000..6000 {
            d.observe(&start(i, 150), &mut out);
        }
        assert_eq!(out.len(), 6000);
        assert!(out.iter().all(|a| a.event == "alert" && a.count == 1));
        assert!(
            d.dedup.len() <= 4500,
            "the 1500 alerts raised once at 01:00 are dropped: {} held",
            d.dedup.len()
        );
        out.clear();
        for i in 0..3000 {
            d.observe(&start(i, 225), &mut out);
        }
        // An even source: the update of its 01:00 alert (2 connections,
        // last at 01:30), then a new alert; an odd one: a new alert, as
        // if its old alert were still held.
        let mut lines = out.iter();
        for i in 0..3000u32 {
            if i % 2 == 0 {
                let u = lines.next().expect("an update");
                assert_eq!((u.event, u.count), ("update", 2), "source {i}");
                assert_eq!(u.alert_id, first_ids[i as usize]);
                assert_eq!(u.last_ts, start(i, 90).ts);
                assert_eq!(u.uid, start(i, 60).uid, "the first alert's connection");
            }
            let a = lines.next().expect("an alert");
            assert_eq!((a.event, a.count), ("alert", 1), "source {i}");
            assert_eq!(a.uid, start(i, 225).uid);
        }
        assert!(lines.next().is_none());
        out.clear();
        d.finish(&mut out);
        assert!(out.is_empty(), "nothing repeated since: {out:#?}");
    }

    #[test]
    fn a_full_dedup_map_writes_out_its_oldest_alerts_at_a_cost_of_the_alerts_it_finds() {
        // Dedup window: 1 h; the map holds at most 1000 alerts. Sources
        // 0-9 alert at 01:00 and again at 01:01; 2990 more sources alert
        // at 01:02, all within the window: every new alert past the
        // 1000th finds the map full of live alerts.
        let mut d = Detector::new(Rules::from_str(RULES, "t.toml").expect("valid rules"));
        d.dedup = super::AlertDedup::with_cap(1000);
        let mut out: Vec<Alert> = Vec::new();
        for minute in [60, 61] {
            for i in 0..10 {
                d.observe(&start(i, minute), &mut out);
            }
        }
        let first_ids: Vec<String> = out.iter().map(|a| a.alert_id.clone()).collect();
        for i in 10..3000 {
            d.observe(&start(i, 62), &mut out);
        }
        // Expiry looked at each alert a bounded number of times, not at the
        // whole map for every new alert (2 million entries).
        assert!(
            d.dedup.visited() <= 3 * 3000,
            "{} queue entries looked at",
            d.dedup.visited()
        );
        assert_eq!(d.dedup.len(), 1000);
        assert_eq!(d.stats().alerts_evicted, 2000);
        // The oldest alerts went first: sources 0-9, each with the update
        // line its expiry would have written.
        let updates: Vec<&Alert> = out.iter().filter(|a| a.event == "update").collect();
        assert_eq!(updates.len(), 10, "{updates:#?}");
        for (u, id) in updates.iter().zip(&first_ids) {
            assert_eq!((u.count, &u.alert_id), (2, id));
        }
        assert_eq!(out.iter().filter(|a| a.event == "alert").count(), 3000);
        // A repeat of an evicted alert raises a new one.
        out.clear();
        d.observe(&start(0, 63), &mut out);
        assert_eq!(
            out.iter().map(|a| (a.event, a.count)).collect::<Vec<_>>(),
            [("alert", 1)]
        );
    }

    /// A finished TCP connection from `orig` to `resp`:`port` at `secs`
    /// past 2026-03-02 00:00 UTC, with `bytes` each way.
    fn finished(
        orig: Ipv4Addr,
        resp: Ipv4Addr,
        port: u16,
        secs: i64,
        bytes: (u64, u64),
    ) -> ConnRecord {
        crate::test_records::tcp(
            &orig.to_string(),
            &resp.to_string(),
            port,
            1_772_409_600 + secs,
            bytes,
        )
    }

    /// The `n`-th of many addresses in cust-a.
    fn cust_a(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a14_0000 | n)
    }

    #[test]
    fn full_behaviour_tables_evict_the_least_useful_keys_and_still_find_what_comes_later() {
        // Each tracker holds at most 100 keys; 300 hosts' one-shot
        // connections fill it (all live) before the scan, the beacon and
        // the staging host start, and 50 more come every minute while they
        // run. A full table that refused new keys would miss all three.
        let mut d = Detector::new(Rules::from_str(RULES, "t.toml").expect("valid rules"));
        d.fan_out = super::FanOutTracker::with_cap(100);
        d.beacons = super::BeaconTracker::with_cap(100);
        d.staging = super::StagingTracker::with_cap(100);
        let mut out: Vec<Alert> = Vec::new();
        let server = Ipv4Addr::new(10, 20, 200, 1);
        let mut flood = 1000u32;
        let mut one_shots = |d: &mut Detector, n: u32, secs: i64, out: &mut Vec<Alert>| {
            for _ in 0..n {
                flood += 1;
                let mut r = finished(cust_a(flood), server, 443, secs, (100, 100));
                r.uid = format!("F{flood}");
                d.observe(&r, out);
                let mut s = r.clone();
                s.end_reason = EndReason::Start;
                d.observe(&s, out);
            }
        };
        one_shots(&mut d, 300, 0, &mut out);
        let (scanner, beacon, stager) = (cust_a(1), cust_a(2), cust_a(3));
        for minute in 1..=30i64 {
            let secs = 60 * minute;
            one_shots(&mut d, 50, secs, &mut out);
            // The scanner reaches 5 new hosts a minute for 4 minutes.
            if minute <= 4 {
                for k in 0..5 {
                    let host = Ipv4Addr::new(10, 20, 100, (minute * 5 + k) as u8);
                    let r = tcp_start(format!("S{minute}x{k}"), scanner, host, 22, ts(secs + k));
                    d.observe(&r, &mut out);
                }
            }
            // The beacon checks in every minute, half a minute after that
            // minute's one-shots: until its second check-in it is a key
            // seen once, like them, and its time alone must keep it from
            // the evictions they cause (at the same second, which of the
            // tied keys goes depends on the table's random order).
            d.observe(
                &finished(
                    beacon,
                    Ipv4Addr::new(192, 0, 2, 9),
                    8443,
                    secs + 30,
                    (300, 200),
                ),
                &mut out,
            );
            // The stager pulls 10 MB a minute from an internal server.
            d.observe(
                &finished(stager, server, 445, secs + 1, (1000, 10_000_000)),
                &mut out,
            );
        }
        // ...then uploads 200 MB out.
        d.observe(
            &finished(
                stager,
                Ipv4Addr::new(198, 51, 100, 7),
                443,
                31 * 60,
                (200_000_000, 1000),
            ),
            &mut out,
        );
        let found = |reason: &str, orig: Ipv4Addr| {
            out.iter().any(|a| {
                a.event == "alert" && a.primary.as_str() == reason && a.orig_h == IpAddr::from(orig)
            })
        };
        assert!(found("fan_out", scanner), "the scan");
        assert!(found("beacon", beacon), "the beacon");
        assert!(found("staging", stager), "the staging");
        let stats = d.stats();
        // 1800 one-shot hosts in all, at most 100 held.
        assert!(stats.fan_out_evicted >= 1700, "{stats:?}");
        assert!(stats.beacon_evicted >= 1700, "{stats:?}");
        assert!(stats.staging_evicted >= 1700, "{stats:?}");
    }

    #[test]
    fn long_sessions_are_held_while_they_run_within_a_cap() {
        // At most 2 running long sessions held; three run (session i's
        // interim records at 9 h + i min and 11 h + i min, past the dedup
        // window, then final records at 12 h).
        let mut d = Detector::new(Rules::from_str(RULES, "t.toml").expect("valid rules"));
        d.long_sessions = super::LongSessions::with_cap(2);
        let session = |i: u32, minutes: u64, end_reason: EndReason| {
            let mut r = finished(cust_a(i), Ipv4Addr::new(192, 0, 2, 9), 22, 0, (10, 10));
            r.uid = format!("CLong{i}");
            r.duration = Some(std::time::Duration::from_secs(minutes * 60));
            r.emitted = ts(minutes as i64 * 60);
            r.end_reason = end_reason;
            r
        };
        let reported = |d: &mut Detector, i: u32, minutes: u64, end: EndReason| {
            let mut out = Vec::new();
            d.observe(&session(i, minutes + u64::from(i), end), &mut out);
            out.iter().any(|a| a.primary == Reason::LongSession)
        };
        for i in 1..=3 {
            assert!(reported(&mut d, i, 540, EndReason::Active), "session {i}");
        }
        // Session 1 (the least recently seen) was forgotten for session 3.
        assert_eq!(d.stats().long_sessions_evicted, 1);
        assert_eq!(d.long_sessions.len(), 2);
        assert!(!reported(&mut d, 2, 660, EndReason::Active));
        assert!(!reported(&mut d, 3, 660, EndReason::Active));
        assert!(reported(&mut d, 1, 660, EndReason::Active), "forgotten");
        assert_eq!(d.stats().long_sessions_evicted, 2);
        for i in 1..=3 {
            d.observe(&session(i, 720, EndReason::Fin), &mut Vec::new());
        }
        assert_eq!(d.long_sessions.len(), 0, "final records forget them");
    }

    #[test]
    fn a_scan_stops_growing_its_sources_sets_once_reported() {
        // Fan-out defaults: 20 hosts or 25 ports on a host within 5 min.
        // One source tries 50 ports on each of 200 hosts in 4 min.
        let mut d = Detector::new(Rules::from_str(RULES, "t.toml").expect("valid rules"));
        let mut out: Vec<Alert> = Vec::new();
        let scanner = cust_a(9);
        for host in 0..200u32 {
            for port in 0..50u16 {
                let at = ts(i64::from(host) + i64::from(port) / 50);
                let to = Ipv4Addr::new(10, 20, 100 + (host / 250) as u8, (host % 250) as u8);
                let r = tcp_start(format!("S{host}x{port}"), scanner, to, 1000 + port, at);
                d.observe(&r, &mut out);
            }
        }
        let texts: Vec<&str> = out
            .iter()
            .flat_map(|a| a.reasons.iter())
            .filter(|h| h.reason == Reason::FanOut)
            .map(|h| h.detail.as_str())
            .collect();
        // The host fan-out, and every host's port sweep (the 20th host's
        // folds into the host fan-out). A host's ports are forgotten once
        // its sweep is reported, so the source holds its 200 hosts only.
        let ports = texts
            .iter()
            .filter(|t| t.contains("tried 25 ports on"))
            .count();
        assert!(texts.contains(&"10.20.0.9 reached 20 hosts within 5 min"));
        assert_eq!((texts.len(), ports), (200, 199), "{texts:#?}");
        assert_eq!(d.fan_out.entries(), 200, "not 200 + 10 000");
        assert_eq!(d.stats().fan_out_saturated, 0);
    }

    #[test]
    fn a_sources_fan_out_sets_stop_at_their_cap_and_count_it() {
        // A host fan-out needs as many hosts as a source's set holds (the
        // most a rule file may ask for).
        let rules = format!("{RULES}\n[detector]\nfan_out = {{ min_hosts = 4096 }}\n");
        let mut d = Detector::new(Rules::from_str(&rules, "t.toml").expect("valid rules"));
        let mut out: Vec<Alert> = Vec::new();
        for host in 0..5000u32 {
            let to = Ipv4Addr::from(0x0a14_8000 | host);
            let r = tcp_start(
                format!("S{host}"),
                cust_a(9),
                to,
                22,
                ts(i64::from(host / 50)),
            );
            d.observe(&r, &mut out);
        }
        assert_eq!(d.fan_out.entries(), 2 * 4096);
        assert_eq!(d.stats().fan_out_saturated, 1, "once a window");
        let found: Vec<&str> = out
            .iter()
            .flat_map(|a| a.reasons.iter())
            .filter(|h| h.reason == Reason::FanOut)
            .map(|h| h.detail.as_str())
            .collect();
        assert_eq!(found, ["10.20.0.9 reached 4096 hosts within 5 min"]);
    }

    #[test]
    fn ipv4_text_is_the_display_text() {
        for a in [0u8, 1, 9, 10, 42, 99, 100, 109, 110, 199, 200, 255] {
            for b in [0u8, 7, 10, 100, 255] {
                let v4 = Ipv4Addr::new(a, b, b.wrapping_add(a), 255 - a);
                let mut text = [0u8; 15];
                let n = ipv4_text(v4, &mut text);
                assert_eq!(&text[..n], v4.to_string().as_bytes());
            }
        }
    }
}
