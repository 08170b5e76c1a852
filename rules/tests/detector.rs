//! The detector's reasons, one at a time, on a small rule set and
//! hand-built connection records.

use flowlib::{ConnRecord, ConnState, EndReason, Proto, Timestamp};
use rules::detector::{Alert, Detector};
use rules::Rules;
use std::time::Duration;

const RULES: &str = r#"
[defaults]
tz = "UTC"

[[enclaves]]
name = "provider"
kind = "provider"
networks = ["10.10.0.0/16"]

[[enclaves]]
name = "cust-a"
kind = "customer"
networks = ["10.20.0.0/16"]

[[enclaves]]
name = "cust-b"
kind = "customer"
networks = ["10.30.0.0/16"]

[[host_groups]]
name = "jump"
enclave = "provider"
hosts = ["10.10.1.10"]

[[relationships]]
name = "maint"
from = "jump"
to = "cust-a"
services = ["tcp/3389"]
windows = [{ days = "weekdays", start = "20:00", end = "22:00" }]

[[relationships]]
name = "backup"
from = "provider"
to = "cust-a"
services = ["tcp/445"]
max_bytes_per_day = 1000

[detector]
long_session = { min_duration = "1h" }
fan_out = { window = "5m", min_hosts = 5, min_ports = 100 }
"#;

/// 2026-03-02 is a Monday.
fn at(hour: u32, minute: u32) -> Timestamp {
    Timestamp::from_micros(
        1_772_409_600 + i64::from(hour) * 3600 + i64::from(minute) * 60,
        0,
    )
}

fn record(orig: &str, resp: &str, port: u16, ts: Timestamp, reason: EndReason) -> ConnRecord {
    ConnRecord {
        ts,
        uid: format!("C{}{}", orig.len(), port),
        orig_h: orig.parse().unwrap(),
        orig_p: 50000,
        resp_h: resp.parse().unwrap(),
        resp_p: port,
        proto: Proto::Tcp,
        service: None,
        duration: Some(Duration::from_secs(1)),
        orig_bytes: Some(100),
        resp_bytes: Some(100),
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
        community_id: "1:x".into(),
        end_reason: reason,
        emitted: ts,
        orig_enclave: None,
        resp_enclave: None,
        orig_host_group: None,
        resp_host_group: None,
    }
}

fn detector() -> Detector {
    Detector::new(Rules::from_str(RULES, "test.toml").expect("valid rules"))
}

fn reasons(a: &Alert) -> Vec<&'static str> {
    a.reasons.iter().map(|r| r.reason.as_str()).collect()
}

fn observe(d: &mut Detector, r: &ConnRecord) -> Vec<Alert> {
    let mut out = Vec::new();
    d.observe(r, &mut out);
    out
}

#[test]
fn jump_host_inside_its_window_is_allowed() {
    let mut d = detector();
    let a = observe(
        &mut d,
        &record(
            "10.10.1.10",
            "10.20.0.5",
            3389,
            at(20, 30),
            EndReason::Start,
        ),
    );
    assert!(a.is_empty(), "{a:#?}");
}

#[test]
fn allowed_pair_outside_its_window_alerts_on_the_first_packet() {
    let mut d = detector();
    let a = observe(
        &mut d,
        &record("10.10.1.10", "10.20.0.5", 3389, at(3, 0), EndReason::Start),
    );
    assert_eq!(a.len(), 1);
    assert_eq!(reasons(&a[0]), ["outside_window", "admin_protocol"]);
    assert_eq!(a[0].relationship.as_deref(), Some("maint"));
    assert!(a[0].techniques.contains(&"T1199") && a[0].techniques.contains(&"T1021.001"));
}

#[test]
fn host_outside_the_approved_group_is_flagged() {
    let mut d = detector();
    let a = observe(
        &mut d,
        &record("10.10.9.9", "10.20.0.5", 3389, at(20, 30), EndReason::Start),
    );
    assert_eq!(reasons(&a[0]), ["unapproved_host", "admin_protocol"]);
    assert_eq!(a[0].orig_enclave, "provider");
}

#[test]
fn cross_customer_traffic_is_the_sharpest_case() {
    let mut d = detector();
    let a = observe(
        &mut d,
        &record("10.20.0.5", "10.30.0.7", 445, at(12, 0), EndReason::Start),
    );
    assert_eq!(
        reasons(&a[0]),
        ["no_relationship", "cross_customer", "admin_protocol"]
    );
    assert_eq!((a[0].score, a[0].severity), (100, "critical"));
}

#[test]
fn repeats_are_folded_into_one_alert_and_reported_as_an_update() {
    let mut d = detector();
    let mut out = Vec::new();
    for i in 0..5 {
        d.observe(
            &record("10.20.0.5", "10.30.0.7", 445, at(12, i), EndReason::Start),
            &mut out,
        );
    }
    assert_eq!(out.len(), 1);
    d.finish(&mut out);
    assert_eq!(
        (out[1].event, out[1].count, &out[1].alert_id),
        ("update", 5, &out[0].alert_id)
    );
}

#[test]
fn an_update_line_is_the_first_alert_with_its_final_count_and_time() {
    // The dedup map keeps a compact copy of each alert; the update line
    // rebuilt from it must be the first alert, field for field, but for
    // the event, the times and the count.
    let mut d = detector();
    let mut out = Vec::new();
    for minute in [0u16, 10, 20] {
        let mut r = record(
            "10.10.1.10",
            "10.20.0.5",
            3389,
            at(3, u32::from(minute)),
            EndReason::Start,
        );
        r.orig_p = 50000 + minute;
        r.uid = format!("CRepeat{minute}");
        d.observe(&r, &mut out);
    }
    d.finish(&mut out);
    assert_eq!(out.len(), 2, "{out:#?}");
    let first = &out[0];
    assert_eq!(first.relationship.as_deref(), Some("maint"));
    assert_eq!(first.orig_host_group.as_deref(), Some("jump"));
    assert_eq!(reasons(first), ["outside_window", "admin_protocol"]);
    assert_eq!(first.techniques, ["T1199", "T1021.001"]);
    let mut expected = first.clone();
    expected.event = "update";
    expected.ts = at(3, 20);
    expected.last_ts = at(3, 20);
    expected.count = 3;
    assert_eq!(out[1], expected);
}

#[test]
fn volume_ceiling_of_a_relationship_is_checked_per_day() {
    let mut d = detector();
    let mut r = record("10.10.5.5", "10.20.0.5", 445, at(1, 0), EndReason::Fin);
    assert!(observe(&mut d, &r).is_empty(), "600 bytes so far");
    r.ts = at(2, 0);
    r.orig_bytes = Some(900);
    let a = observe(&mut d, &r);
    assert_eq!(reasons(&a[0]), ["admin_protocol", "over_volume"]);
    assert!(a[0].techniques.contains(&"T1048"));
}

#[test]
fn a_windowed_ceiling_counts_each_opening_of_its_window_across_local_midnight() {
    // Backups 23:00-03:00 at UTC+1, at most 5000 bytes a night.
    let rules = RULES.replace(
        "max_bytes_per_day = 1000",
        "max_bytes_per_day = 5000\nwindows = [{ days = \"all\", start = \"23:00\", end = \"03:00\", tz = \"+01:00\" }]",
    );
    let mut d = Detector::new(Rules::from_str(&rules, "test.toml").expect("valid rules"));
    let backup = |ts: Timestamp, bytes: u64| {
        let mut r = record("10.10.5.5", "10.20.0.5", 445, ts, EndReason::Fin);
        r.orig_bytes = Some(bytes);
        r.resp_bytes = Some(0);
        r
    };
    // Monday night's backup runs late: 3500 bytes at 01:24 local on
    // Tuesday (00:24 UTC). Tuesday night's starts at 23:05 local on
    // Tuesday: one local day, two nights.
    assert!(observe(&mut d, &backup(at(24, 24), 3500)).is_empty());
    let a = observe(&mut d, &backup(at(46, 5), 2000));
    assert!(a.is_empty(), "another night: {a:#?}");
    // Tuesday night's backup passes the ceiling after midnight.
    let a = observe(&mut d, &backup(at(48, 10), 3500));
    assert_eq!(reasons(&a[0]), ["admin_protocol", "over_volume"]);
    assert_eq!(
        a[0].reasons[1].detail,
        "backup carried 5500 bytes in its window opened on 2026-03-03, above its daily ceiling of 5000"
    );
}

#[test]
fn fan_out_to_many_hosts_is_a_scan() {
    let mut d = detector();
    let mut fired = Vec::new();
    for i in 1..=5 {
        let r = record(
            "10.20.0.5",
            &format!("10.20.1.{i}"),
            22,
            at(12, 0),
            EndReason::Start,
        );
        fired.extend(observe(&mut d, &r));
    }
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(reasons(&fired[0]), ["fan_out"]);
    assert!(fired[0].techniques.contains(&"T1046"));
}

#[test]
fn a_sweep_is_counted_whole_whatever_connection_came_before_it() {
    // Fan-out of 5 hosts within 5 min. An unrelated connection at 12:00,
    // then 5 hosts a minute apart from 12:03 to 12:07: all within 4 min,
    // though a window opened at 12:00 would split them 2 + 3.
    let mut d = detector();
    let mut fired = observe(
        &mut d,
        &record("10.20.0.5", "10.20.9.9", 80, at(12, 0), EndReason::Start),
    );
    for i in 0..5 {
        let r = record(
            "10.20.0.5",
            &format!("10.20.1.{i}"),
            445,
            at(12, 3 + i),
            EndReason::Start,
        );
        fired.extend(observe(&mut d, &r));
    }
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(reasons(&fired[0]), ["fan_out"]);
    // A slow sweep, 1 host every 2 min (5 hosts over 8 min), is none.
    let mut slow = Vec::new();
    for i in 0..5 {
        let r = record(
            "10.20.0.6",
            &format!("10.20.1.{i}"),
            445,
            at(13, 2 * i),
            EndReason::Start,
        );
        slow.extend(observe(&mut d, &r));
    }
    assert!(slow.is_empty(), "{slow:#?}");
}

#[test]
fn long_sessions_across_the_boundary_are_reported() {
    let mut d = detector();
    let mut r = record("10.10.1.10", "10.20.0.5", 3389, at(20, 0), EndReason::Fin);
    r.duration = Some(Duration::from_secs(2 * 3600));
    // Allowed and long: 20 (admin) + 20 (long session) reaches the threshold of 40.
    let a = observe(&mut d, &r);
    assert!(reasons(&a[0]).contains(&"long_session"), "{a:#?}");
}

#[test]
fn a_long_allowed_session_inside_its_window_is_not_reported_but_one_running_past_it_is() {
    // maint allows the jump host's RDP 20:00-22:00 on weekdays (long
    // sessions from 1 h): 20:05-21:50 stays inside the window.
    let mut d = detector();
    let mut r = record("10.10.1.10", "10.20.0.5", 3389, at(20, 5), EndReason::Fin);
    r.duration = Some(Duration::from_secs(105 * 60));
    assert!(observe(&mut d, &r).is_empty());
    // Its interim record at 21:35 neither.
    r.end_reason = EndReason::Active;
    r.duration = Some(Duration::from_secs(90 * 60));
    assert!(observe(&mut d, &r).is_empty());
    // 20:05-22:35 runs past the window's close.
    let mut r = record("10.10.1.10", "10.20.0.6", 3389, at(20, 5), EndReason::Fin);
    r.duration = Some(Duration::from_secs(150 * 60));
    let a = observe(&mut d, &r);
    assert!(
        a.iter().any(|a| reasons(a).contains(&"long_session")),
        "{a:#?}"
    );
}

#[test]
fn internal_traffic_in_one_enclave_is_not_scored() {
    let mut d = detector();
    assert!(observe(
        &mut d,
        &record("10.20.0.5", "10.20.0.6", 445, at(12, 0), EndReason::Start)
    )
    .is_empty());
}

#[test]
fn an_ignored_host_group_covers_the_hosts_of_groups_nested_in_it() {
    let rules = RULES.replace(
        "[detector]\n",
        "[[host_groups]]\nname = \"admins\"\nenclave = \"provider\"\nhosts = [\"10.10.1.0/24\"]\n\n\
         [detector]\nignore = { host_groups = [\"admins\"] }\n",
    );
    let mut d = Detector::new(Rules::from_str(&rules, "nested.toml").expect("valid rules"));
    // 10.10.1.10 is in "jump" (the most specific group) and so in "admins".
    let nested = observe(
        &mut d,
        &record("10.10.1.10", "10.20.0.5", 22, at(3, 0), EndReason::Start),
    );
    assert!(nested.is_empty(), "{nested:#?}");
    let direct = observe(
        &mut d,
        &record("10.10.1.11", "10.30.0.5", 22, at(3, 0), EndReason::Start),
    );
    assert!(direct.is_empty(), "{direct:#?}");
    // Outside the ignored group the same connection is scored.
    let outside = observe(
        &mut d,
        &record("10.10.2.11", "10.30.0.5", 22, at(3, 0), EndReason::Start),
    );
    assert_eq!(outside.len(), 1, "{outside:#?}");
}

#[test]
fn an_ignored_reason_never_names_the_alert() {
    // cross_customer (90) outweighs no_relationship (60); ignored, it must
    // neither score, nor name the alert, nor key its deduplication.
    let rules = RULES.replace(
        "[detector]\n",
        "[detector]\nignore = { reasons = [\"cross_customer\"] }\n",
    );
    let mut d = Detector::new(Rules::from_str(&rules, "ignore.toml").expect("valid rules"));
    let a = observe(
        &mut d,
        &record("10.20.0.5", "10.30.0.7", 8080, at(12, 0), EndReason::Start),
    );
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(reasons(&a[0]), ["no_relationship"]);
    assert_eq!((a[0].primary.as_str(), a[0].score), ("no_relationship", 60));
    assert_eq!(d.stats().alerts.get("no_relationship"), Some(&1));
    assert_eq!(d.stats().alerts.get("cross_customer"), None);
}

#[test]
fn ipv4_mapped_ipv6_addresses_are_where_their_ipv4_addresses_are() {
    let mut d = detector();
    let a = observe(
        &mut d,
        &record(
            "::ffff:10.20.0.5",
            "::ffff:10.30.0.7",
            445,
            at(12, 0),
            EndReason::Start,
        ),
    );
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(
        (a[0].orig_enclave.as_str(), a[0].resp_enclave.as_str()),
        ("cust-a", "cust-b")
    );
    assert!(reasons(&a[0]).contains(&"cross_customer"), "{a:#?}");
}

#[test]
fn a_repeat_that_scores_higher_is_raised_not_folded() {
    let mut d = detector();
    let mut out = Vec::new();
    for (minute, port) in [(0, 8080), (10, 3389), (20, 8080)] {
        d.observe(
            &record(
                "10.20.0.5",
                "192.0.2.7",
                port,
                at(12, minute),
                EndReason::Start,
            ),
            &mut out,
        );
    }
    d.finish(&mut out);
    let seen: Vec<_> = out
        .iter()
        .map(|a| (a.event, a.resp_p, a.score, a.severity, a.count))
        .collect();
    // The RDP connection adds admin_protocol (and T1021.001) to the web
    // port's no_relationship; the later web connection folds into it.
    assert_eq!(
        seen,
        [
            ("alert", 8080, 60, "medium", 1),
            ("alert", 3389, 80, "high", 1),
            ("update", 3389, 80, "high", 2),
        ],
        "{out:#?}"
    );
    assert!(out[1].techniques.contains(&"T1021.001"), "{out:#?}");
}

#[test]
fn a_long_session_is_reported_once_not_on_every_interim_record() {
    // One UDP flow to the internet for 3 days: an interim record every
    // 65 min (past the 1 h dedup window, so dedup would not fold them),
    // then its final record. Long from 1 h on: one alert, on the first
    // record that finds it long.
    let mut d = detector();
    let mut out = Vec::new();
    let start = at(0, 0);
    let flow = |end: u32, reason: EndReason| {
        let mut r = record("10.20.0.5", "203.0.113.9", 6666, start, reason);
        r.uid = "CLongFlow".into();
        r.proto = Proto::Udp;
        r.ip_proto = 17;
        r.duration = Some(Duration::from_secs(u64::from(end) * 60));
        r.emitted = Timestamp(start.0 + i64::from(end) * 60_000_000_000);
        r
    };
    for k in 1..=66 {
        d.observe(&flow(65 * k, EndReason::Active), &mut out);
    }
    d.observe(&flow(3 * 24 * 60, EndReason::Idle), &mut out);
    d.finish(&mut out);
    let seen: Vec<_> = out.iter().map(|a| (a.event, a.primary.as_str())).collect();
    assert_eq!(seen, [("alert", "long_session")], "{out:#?}");
    assert!(
        out[0].reasons[1].detail.contains("running 65 min"),
        "{out:#?}"
    );
    // Another connection of the pair is another session.
    out.clear();
    let mut other = flow(4 * 24 * 60, EndReason::Idle);
    other.uid = "CLongFlow2".into();
    other.ts = at(2, 0);
    d.observe(&other, &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(d.stats().long_sessions_evicted, 0);
}

/// A finished connection of `orig` to `resp` at `ts` that carried `sent`
/// bytes out and `received` bytes back.
fn transfer(orig: &str, resp: &str, ts: Timestamp, sent: u64, received: u64) -> ConnRecord {
    let mut r = record(orig, resp, 445, ts, EndReason::Fin);
    r.orig_bytes = Some(sent);
    r.resp_bytes = Some(received);
    r
}

/// The staging alerts among `out`.
fn staging(out: &[Alert]) -> Vec<&Alert> {
    out.iter()
        .filter(|a| a.primary.as_str() == "staging")
        .collect()
}

#[test]
fn staging_counts_what_was_pulled_within_one_window_not_since_the_first_pull() {
    // Staging: 100 MB pulled within 2 h, then an upload of half of it.
    let mut d = detector();
    let mut out = Vec::new();
    // 15 MB an hour for 10 h, never an hour apart: 150 MB in all, never
    // more than 30 MB within 2 h.
    for h in 0..10 {
        d.observe(
            &transfer("10.20.0.7", "10.20.10.10", at(h, 0), 100, 15_000_000),
            &mut out,
        );
    }
    d.observe(
        &transfer("10.20.0.7", "203.0.113.5", at(10, 10), 84_000_000, 1000),
        &mut out,
    );
    assert!(staging(&out).is_empty(), "{out:#?}");
    // The same 150 MB within an hour, from another server.
    for k in 0..10 {
        d.observe(
            &transfer("10.20.0.7", "10.20.10.11", at(12, 6 * k), 100, 15_000_000),
            &mut out,
        );
    }
    d.observe(
        &transfer("10.20.0.7", "203.0.113.5", at(13, 10), 84_000_000, 1000),
        &mut out,
    );
    let found = staging(&out);
    assert_eq!(found.len(), 1, "{out:#?}");
    assert!(
        found[0].reasons.iter().any(|r| r.detail
            == "10.20.0.7 pulled 150000000 bytes from 1 internal host(s) in 3240 s, then uploaded 84000000 bytes in 1 connection(s)"),
        "{:#?}",
        found[0]
    );
}

#[test]
fn a_staged_collection_uploaded_hours_after_it_was_pulled_is_staging_within_the_hold() {
    // 600 MB pulled from three servers 09:00-09:20; uploaded at 12:30,
    // more than the 2 h window later (within the 24 h hold).
    let mut d = detector();
    let mut out = Vec::new();
    for (host, k) in [("10.20.0.7", 0u32), ("10.20.0.8", 0)] {
        for s in 0..3 {
            d.observe(
                &transfer(
                    host,
                    &format!("10.20.10.{}", 10 + s),
                    at(9, 10 * (s + k)),
                    100,
                    200_000_000,
                ),
                &mut out,
            );
        }
    }
    d.observe(
        &transfer("10.20.0.7", "203.0.113.5", at(12, 30), 480_000_000, 1000),
        &mut out,
    );
    let found = staging(&out);
    assert_eq!(found.len(), 1, "{out:#?}");
    assert!(
        found[0].reasons.iter().any(|r| r.detail
            == "10.20.0.7 pulled 600000000 bytes from 3 internal host(s) in 1200 s, then uploaded 480000000 bytes in 1 connection(s)"),
        "{:#?}",
        found[0]
    );
    // Past the hold (the next day, 09:30 + 24 h), the other host's upload
    // is no staging.
    let next_day = flowlib::Timestamp(at(9, 30).0 + 24 * 3600 * 1_000_000_000 + 1);
    d.observe(
        &transfer("10.20.0.8", "203.0.113.5", next_day, 480_000_000, 1000),
        &mut out,
    );
    assert_eq!(staging(&out).len(), 1, "{out:#?}");
}

#[test]
fn staging_adds_up_a_collection_uploaded_in_several_connections_after_it_was_pulled() {
    let mut d = detector();
    let mut out = Vec::new();
    // A 200 MB upload before any collection counts for nothing.
    d.observe(
        &transfer("10.20.0.7", "10.20.10.9", at(9, 0), 100, 1_000),
        &mut out,
    );
    d.observe(
        &transfer("10.20.0.7", "203.0.113.5", at(9, 5), 200_000_000, 1000),
        &mut out,
    );
    // 150 MB pulled from three servers within the hour.
    for (k, server) in ["10.20.10.10", "10.20.10.11", "10.20.10.12"]
        .iter()
        .enumerate()
    {
        d.observe(
            &transfer("10.20.0.7", server, at(10, 10 * k as u32), 100, 50_000_000),
            &mut out,
        );
    }
    // Then out in four connections of 20 MB: the fourth makes 80 MB,
    // more than half of what was pulled.
    for k in 0..4 {
        d.observe(
            &transfer(
                "10.20.0.7",
                "203.0.113.5",
                at(10, 30 + 5 * k),
                20_000_000,
                1000,
            ),
            &mut out,
        );
        let found = staging(&out);
        assert_eq!(
            found.len(),
            usize::from(k == 3),
            "after upload {k}: {out:#?}"
        );
    }
    let found = staging(&out);
    assert!(
        found[0].reasons.iter().any(|r| r.detail
            == "10.20.0.7 pulled 150001000 bytes from 4 internal host(s) in 4800 s, then uploaded 80000000 bytes in 4 connection(s)"),
        "{:#?}",
        found[0]
    );
    assert_eq!(found[0].ts, at(10, 45));
}

#[test]
fn with_a_baseline_staging_is_a_collection_out_of_line_with_what_the_host_pulled_while_learning() {
    use rules::baseline::BaselineBuilder;
    let rules = || Rules::from_str(RULES, "test.toml").expect("valid rules");
    // Learning (Monday): 10.20.0.8 pulls 30 MB from a server every
    // morning; 10.20.0.7 only browses.
    let mut learner = BaselineBuilder::new(rules());
    learner.observe(&transfer(
        "10.20.0.8",
        "10.20.10.10",
        at(9, 0),
        100,
        30_000_000,
    ));
    learner.observe(&transfer("10.20.0.7", "10.20.10.10", at(9, 0), 100, 20_000));
    let baseline = learner.finish();
    let pulls = baseline.staging_pulls.as_ref().expect("pulls learned");
    assert_eq!(pulls.get("10.20.0.8"), Some(&30_000_000));
    assert_eq!(pulls.get("10.20.10.10"), Some(&200), "what it received");
    // Tuesday: both pull 40 MB from two servers, then upload 30 MB.
    let tuesday = |d: &mut Detector| {
        let mut out = Vec::new();
        for host in ["10.20.0.7", "10.20.0.8"] {
            for (k, server) in ["10.20.10.10", "10.20.10.11"].iter().enumerate() {
                d.observe(
                    &transfer(host, server, at(34, 10 * k as u32), 100, 20_000_000),
                    &mut out,
                );
            }
            d.observe(
                &transfer(host, "203.0.113.5", at(34, 40), 30_000_000, 1000),
                &mut out,
            );
        }
        out
    };
    // Against the baseline: out of line for 10.20.0.7 (at least the
    // volume section's 10 MB), not for 10.20.0.8 (10 x 30 MB).
    let mut d = Detector::new(rules()).with_baseline(baseline.clone());
    let out = tuesday(&mut d);
    let found: Vec<_> = staging(&out).iter().map(|a| a.orig_h.to_string()).collect();
    assert_eq!(found, ["10.20.0.7"], "{out:#?}");
    // Without a baseline, or with one learned before it kept pulls:
    // [detector.staging] min_bytes (100 MB).
    let mut old = baseline;
    old.staging_pulls = None;
    for mut d in [
        Detector::new(rules()),
        Detector::new(rules()).with_baseline(old),
    ] {
        let out = tuesday(&mut d);
        assert!(staging(&out).is_empty(), "{out:#?}");
    }
}

#[test]
fn staging_lists_new_sources_again_once_the_earlier_ones_left_the_window() {
    // 64 sources (a full list) at 09:00-09:31, then 60 others at
    // 12:00-12:29, when the first 64 are out of the 2 h window.
    let mut d = detector();
    let mut out = Vec::new();
    for (hour, net, n) in [(9, 10, 64), (12, 11, 60)] {
        for i in 0..n {
            let from = format!("10.20.{net}.{}", i + 1);
            d.observe(
                &transfer("10.20.0.7", &from, at(hour, i / 2), 100, 2_000_000),
                &mut out,
            );
        }
    }
    d.observe(
        &transfer("10.20.0.7", "203.0.113.5", at(12, 40), 100_000_000, 1000),
        &mut out,
    );
    assert_eq!(d.stats().staging_sources_rejected, 0);
    let found = staging(&out);
    assert_eq!(found.len(), 1, "{out:#?}");
    assert!(
        found[0].reasons.iter().any(|r| r.detail
            == "10.20.0.7 pulled 120000000 bytes from 60 internal host(s) in 1740 s, then uploaded 100000000 bytes in 1 connection(s)"),
        "{:#?}",
        found[0]
    );
}

#[test]
fn staging_remembers_64_sources_a_window_and_counts_the_rest() {
    let mut d = detector();
    let mut out = Vec::new();
    for i in 0..70 {
        d.observe(
            &transfer(
                "10.20.0.7",
                &format!("10.20.10.{}", i + 1),
                at(12, i / 2),
                100,
                2_000_000,
            ),
            &mut out,
        );
    }
    d.observe(
        &transfer("10.20.0.7", "203.0.113.5", at(12, 40), 100_000_000, 1000),
        &mut out,
    );
    assert_eq!(d.stats().staging_sources_rejected, 6);
    let found = staging(&out);
    assert_eq!(found.len(), 1, "{out:#?}");
    assert!(
        found[0].reasons.iter().any(|r| r.detail
            == "10.20.0.7 pulled 140000000 bytes from more than 64 internal host(s) in 2040 s, then uploaded 100000000 bytes in 1 connection(s)"),
        "{:#?}",
        found[0]
    );
}
