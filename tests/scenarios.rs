//! Scenario tests of the detector: labelled multi-day captures of a managed
//! service provider written by `flowbench::scenario`, run through the real
//! binary.
//!
//! For each parameterisation (address plan, time zone of the windows,
//! volumes): `sensor baseline learn` on the benign learning capture, then
//! `sensor replay --baseline` on the detection capture. Every injected
//! episode must be alerted with the expected reason and ATT&CK technique;
//! no allowed look-alike (large backup in its window, jump-host RDP inside
//! the maintenance window, the periodic update check, monitoring polls,
//! ...) may raise an alert. Precision and recall per behaviour are printed
//! (`cargo test -p sensor --test scenarios -- --nocapture`); the files of
//! a failing scenario are kept for a look (of every scenario with
//! `FLOWMON_SCENARIOS_KEEP=1`).

use flowbench::scenario::{AddressPlan, Label, Scenario, ScenarioConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sensor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("flowmon-scenarios-{}", std::process::id()))
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&Path]) -> String {
    let o = sensor().args(args).output().expect("sensor runs");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "sensor {args:?} failed:\n{stderr}");
    stderr
}

fn strs(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    x.get("reason")
                        .and_then(Value::as_str)
                        .or(x.as_str())
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn reasons(a: &Value) -> Vec<String> {
    strs(a, "reasons")
}

fn techniques(a: &Value) -> Vec<String> {
    strs(a, "techniques")
}

/// Detector problems this suite found and reported, not fixed yet: a
/// look-alike of `kind` alerted with `reason` (and nothing else above the
/// informational reasons). Such an alert is printed as KNOWN instead of
/// failing the test; where a problem is listed as `expected_in` a scenario
/// and no longer occurs there, the test fails asking for the entry to be
/// removed, so the list only shrinks. `FLOWMON_SCENARIOS_STRICT=1` ignores
/// the list (the tests then fail until the detector is fixed).
struct Known {
    kind: &'static str,
    reason: &'static str,
    expected_in: &'static [&'static str],
    why: &'static str,
}

const KNOWN_DETECTOR_PROBLEMS: &[Known] = &[];

/// Reasons that are informational on their own: they never make an alert
/// of a look-alike a known problem's instead of a new one.
const INFORMATIONAL: &[&str] = &["admin_protocol", "new_pair", "new_service", "new_hour"];

fn strict() -> bool {
    std::env::var_os("FLOWMON_SCENARIOS_STRICT").is_some_and(|v| v != "0")
}

/// Behavioural alerts are raised when the evidence is complete: when the
/// connection's record is written, which can be an idle timeout after its
/// last packet.
const SLACK_SECS: f64 = 3600.0;

fn matches(l: &Label, a: &Value) -> bool {
    let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
    let ts = a["ts"].as_f64().unwrap_or(0.0);
    s("id.orig_h") == l.src.to_string()
        && l.dsts.iter().any(|d| s("id.resp_h") == d.to_string())
        && s("orig_enclave") == l.src_enclave
        && s("resp_enclave") == l.dst_enclave
        && s("proto") == l.proto
        && (l.ports.is_empty()
            || a["id.resp_p"]
                .as_u64()
                .is_some_and(|p| l.ports.contains(&(p as u16))))
        && ts >= l.start - 1.0
        && ts <= l.end + SLACK_SECS
}

fn short(a: &Value) -> String {
    format!(
        "{} {}:{} -> {}:{} ({} -> {}) score {} reasons {:?} techniques {:?}",
        a["ts"],
        a["id.orig_h"].as_str().unwrap_or("?"),
        a["id.orig_p"],
        a["id.resp_h"].as_str().unwrap_or("?"),
        a["id.resp_p"],
        a["orig_enclave"].as_str().unwrap_or("?"),
        a["resp_enclave"].as_str().unwrap_or("?"),
        a["score"],
        reasons(a),
        techniques(a)
    )
}

/// Generates, learns, replays and checks one parameterisation; returns the
/// problems found (empty when every assertion holds).
fn check(name: &str, cfg: ScenarioConfig) -> Vec<String> {
    let t0 = std::time::Instant::now();
    let dir = workdir(name);
    let mut scenario = Scenario::generate(&cfg);
    let files = scenario.write(&dir).expect("scenario written");
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    println!(
        "\n=== {name}: {} customers, windows at UTC{:+} min, learning {} days ({} packets, {} kB), detection {} days ({} packets, {} kB), generated in {:.1} s",
        cfg.plan.customers.len(),
        cfg.tz_offset_minutes,
        cfg.learning_days,
        files.packets.0,
        size(&files.learning) / 1000,
        cfg.detection_days,
        files.packets.1,
        size(&files.detection) / 1000,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        size(&files.learning) < 32_000_000 && size(&files.detection) < 32_000_000,
        "captures stay small"
    );

    let baseline = dir.join("baseline.json");
    let alerts_path = dir.join("alerts.json");
    let records = dir.join("records.json");
    let learn = run(&[
        Path::new("baseline"),
        Path::new("learn"),
        Path::new("--rules"),
        &files.rules,
        Path::new("-o"),
        &baseline,
        &files.learning,
    ]);
    println!("{}", learn.trim());
    let replay = run(&[
        Path::new("replay"),
        Path::new("-q"),
        Path::new("--rules"),
        &files.rules,
        Path::new("--baseline"),
        &baseline,
        Path::new("--alerts"),
        &alerts_path,
        Path::new("-o"),
        &records,
        &files.detection,
    ]);
    if !replay.trim().is_empty() {
        println!("{}", replay.trim());
    }
    let alerts: Vec<Value> = std::fs::read_to_string(&alerts_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each alert is a JSON object"))
        .collect();
    let raised: Vec<&Value> = alerts.iter().filter(|a| a["event"] == "alert").collect();

    let mut problems = Vec::new();

    // Recall per behaviour: every injected episode alerted with its reason
    // and technique.
    let mut recall: BTreeMap<&str, (usize, usize, &str, &str)> = BTreeMap::new();
    for l in scenario.labels.iter().filter(|l| l.injected) {
        let (reason, technique) = (l.reason.unwrap(), l.technique.unwrap());
        let hit = raised.iter().any(|a| {
            matches(l, a)
                && reasons(a).iter().any(|r| r == reason)
                && techniques(a).iter().any(|t| t == technique)
        });
        let e = recall.entry(l.kind).or_insert((0, 0, reason, technique));
        e.0 += 1;
        if hit {
            e.1 += 1;
        } else {
            let near: Vec<String> = raised
                .iter()
                .filter(|a| matches(l, a))
                .map(|a| short(a))
                .collect();
            problems.push(format!(
                "{name}: missed {} ({}: {} -> {:?} {} {:?}, {:.0}-{:.0}): expected {reason} + {technique}; alerts on it: {near:#?}",
                l.kind, l.description, l.src, l.dsts.first(), l.proto, l.ports.first(), l.start, l.end
            ));
        }
    }

    // Precision per behaviour: of the alerts carrying a behaviour's reason,
    // how many belong to an injected episode.
    println!(
        "{:<18} {:<16} {:<10} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9}",
        "behaviour",
        "reason",
        "technique",
        "episodes",
        "detected",
        "recall",
        "alerts",
        "of which TP",
        "precision"
    );
    for (kind, (episodes, detected, reason, technique)) in &recall {
        let carrying: Vec<&&Value> = raised
            .iter()
            .filter(|a| reasons(a).iter().any(|r| r == reason))
            .collect();
        let tp = carrying
            .iter()
            .filter(|a| scenario.labels.iter().any(|l| l.injected && matches(l, a)))
            .count();
        let precision = if carrying.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.2}", tp as f64 / carrying.len() as f64)
        };
        println!(
            "{kind:<18} {reason:<16} {technique:<10} {episodes:>8} {detected:>8} {:>7.2} {:>7} {tp:>11} {precision:>9}",
            *detected as f64 / *episodes as f64,
            carrying.len(),
        );
    }

    // Look-alikes: no alert at all.
    let mut looks: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut known_seen = vec![false; KNOWN_DETECTOR_PROBLEMS.len()];
    for l in scenario.labels.iter().filter(|l| !l.injected) {
        let flagged: Vec<&&Value> = raised.iter().filter(|a| matches(l, a)).collect();
        let e = looks.entry(l.kind).or_default();
        e.0 += 1;
        if flagged.is_empty() {
            continue;
        }
        e.1 += 1;
        let known = KNOWN_DETECTOR_PROBLEMS.iter().position(|k| {
            k.kind == l.kind
                && flagged.iter().all(|a| {
                    reasons(a)
                        .iter()
                        .all(|r| r == k.reason || INFORMATIONAL.contains(&r.as_str()))
                })
        });
        let line = format!(
            "look-alike {} ({}: {} -> {:?}) raised {} alert(s), first: {}",
            l.kind,
            l.description,
            l.src,
            l.dsts.first(),
            flagged.len(),
            short(flagged[0])
        );
        match known {
            Some(i) if !strict() => {
                known_seen[i] = true;
                println!("KNOWN DETECTOR PROBLEM: {line}");
            }
            _ => problems.push(format!("{name}: {line}")),
        }
    }
    if !strict() {
        for (k, seen) in KNOWN_DETECTOR_PROBLEMS.iter().zip(&known_seen) {
            if *seen {
                println!("  known: {} on {}: {}", k.reason, k.kind, k.why);
            } else if k.expected_in.contains(&name) {
                problems.push(format!(
                    "{name}: the known detector problem ({} on {}) no longer occurs: remove it from KNOWN_DETECTOR_PROBLEMS",
                    k.reason, k.kind
                ));
            }
        }
    }
    println!(
        "{:<24} {:>8} {:>8}",
        "allowed look-alike", "count", "alerted"
    );
    for (kind, (n, flagged)) in &looks {
        println!("{kind:<24} {n:>8} {flagged:>8}");
    }

    // Alerts that belong to no label (benign background raising alerts).
    let unlabelled: Vec<&&Value> = raised
        .iter()
        .filter(|a| !scenario.labels.iter().any(|l| matches(l, a)))
        .collect();
    println!(
        "alerts: {} raised, {} on no labelled episode or look-alike",
        raised.len(),
        unlabelled.len()
    );
    for a in unlabelled.iter().take(10) {
        println!("  unlabelled: {}", short(a));
    }
    for a in &unlabelled {
        problems.push(format!("{name}: alert on benign background: {}", short(a)));
    }
    println!("({name} took {:.1} s)", t0.elapsed().as_secs_f64());
    if problems.is_empty() && std::env::var_os("FLOWMON_SCENARIOS_KEEP").is_none() {
        // Keep the files of a failing run for a look; drop the rest.
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("files kept in {}", dir.display());
    }
    problems
}

fn assert_clean(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Four customers on 10/8 (the last two sharing 10.50/16 on VLANs 110 and
/// 120), windows at UTC+1 (the nightly backup window, 00:00-04:00 local,
/// straddles midnight UTC), multi-gigabyte backups, a 120 s beacon,
/// learning Monday to Wednesday, detection Thursday and Friday.
#[test]
fn msp_ten_net_windows_at_utc_plus_1() {
    let mut cfg = ScenarioConfig::new(0x5eed_0001, 4, 60);
    cfg.backup_hours = (0, 4);
    assert_clean(check("ten-net-utc+1", cfg));
}

/// Five tenants on 172.16/12 with the first two both on 192.168/16 (VLANs
/// 210, 220), windows at UTC+9 with the maintenance window running past
/// midnight, smaller volumes and a slower beacon, learning Tuesday to
/// Thursday, detection Friday and Saturday.
#[test]
fn msp_mixed_plan_windows_at_utc_plus_9() {
    let mut cfg = ScenarioConfig::new(0x5eed_0002, 5, 9 * 60);
    cfg.plan = AddressPlan::mixed(5);
    cfg.start_day = 1_772_409_600 + 8 * 86_400; // Tuesday 2026-03-10
    cfg.maintenance_hours = (22, 2);
    cfg.backup_hours = (2, 6);
    cfg.business_hours = (9, 19);
    cfg.poll_interval_secs = 420;
    cfg.backup_bytes = 300_000_000;
    cfg.backup_ceiling = 1_000_000_000;
    cfg.staging_bytes = 240_000_000;
    cfg.beacon_period_secs = 290;
    cfg.web_per_hour = 3;
    assert_clean(check("mixed-utc+9", cfg));
}

// Parameterisations beyond the two above, each probing whether the
// detector generalises: other seeds and sizes, half-hour and 45-minute
// offsets, IANA zones across a DST change, IPv6 address plans, volumes
// scaled 10x up and down, short and long learning, beacon periods from
// 10 s to 90 min with jitter, a split exfiltration, RDP just outside the
// maintenance window, a backup window across local midnight.

const TUE_2026_03_03: i64 = 1_772_409_600 + 86_400;
const TUE_2026_03_24: i64 = 1_772_409_600 + 22 * 86_400;

#[test]
fn other_seed_six_customers_utc() {
    assert_clean(check(
        "seed-6cust-utc",
        ScenarioConfig::new(0xfeed_0006, 6, 0),
    ));
}

#[test]
fn two_customers_utc_minus_5() {
    assert_clean(check(
        "2cust-utc-5",
        ScenarioConfig::new(0xfeed_0002, 2, -300),
    ));
}

#[test]
fn nepal_plus_5_45() {
    assert_clean(check(
        "nepal+5:45",
        ScenarioConfig::new(0xfeed_0545, 4, 345),
    ));
}

#[test]
fn india_plus_5_30() {
    assert_clean(check(
        "india+5:30",
        ScenarioConfig::new(0xfeed_0530, 5, 330),
    ));
}

#[test]
fn marquesas_minus_9_30_maintenance_past_midnight() {
    let mut cfg = ScenarioConfig::new(0xfeed_0930, 4, -570);
    cfg.maintenance_hours = (22, 2);
    assert_clean(check("marquesas-9:30", cfg));
}

#[test]
fn chatham_plus_12_45() {
    assert_clean(check(
        "chatham+12:45",
        ScenarioConfig::new(0xfeed_1245, 4, 765),
    ));
}

/// America/New_York: learning Tue 3 - Fri 6 March 2026 (EST), detection
/// Sat 7 - Tue 10 March (DST from Sunday 8 March, EDT).
#[test]
fn new_york_across_dst() {
    let mut cfg = ScenarioConfig::new(0xfeed_0d57, 4, -300);
    cfg.tz_name = Some("America/New_York".into());
    cfg.start_day = TUE_2026_03_03;
    cfg.learning_days = 4;
    cfg.detection_days = 4;
    assert_clean(check("new-york-dst", cfg));
}

/// Europe/London: learning Tue 24 - Fri 27 March 2026 (GMT), detection
/// Sat 28 - Tue 31 March (BST from Sunday 29 March).
#[test]
fn london_across_dst() {
    let mut cfg = ScenarioConfig::new(0xfeed_1d57, 4, 0);
    cfg.tz_name = Some("Europe/London".into());
    cfg.start_day = TUE_2026_03_24;
    cfg.learning_days = 4;
    cfg.detection_days = 4;
    cfg.backup_hours = (0, 4);
    assert_clean(check("london-dst", cfg));
}

#[test]
fn ipv6_ten_net_with_vlan_overlap() {
    let mut cfg = ScenarioConfig::new(0xfeed_0006, 4, 60);
    cfg.plan.ipv6 = true;
    assert_clean(check("ipv6-ten-net", cfg));
}

#[test]
fn ipv6_mixed_plan() {
    let mut cfg = ScenarioConfig::new(0xfeed_0066, 5, 9 * 60);
    cfg.plan = AddressPlan::mixed(5);
    cfg.plan.ipv6 = true;
    assert_clean(check("ipv6-mixed", cfg));
}

#[test]
fn volumes_ten_times_up() {
    let mut cfg = ScenarioConfig::new(0xfeed_0010, 4, 60);
    cfg.backup_bytes = 20_000_000_000;
    cfg.backup_ceiling = 50_000_000_000;
    cfg.staging_bytes = 6_000_000_000;
    assert_clean(check("volume-x10", cfg));
}

#[test]
fn volumes_ten_times_down() {
    let mut cfg = ScenarioConfig::new(0xfeed_0001, 4, 60);
    cfg.backup_bytes = 200_000_000;
    cfg.backup_ceiling = 500_000_000;
    cfg.staging_bytes = 60_000_000;
    assert_clean(check("volume-x0.1", cfg));
}

#[test]
fn busy_network_ten_times_the_connections() {
    let mut cfg = ScenarioConfig::new(0xfeed_0b05, 4, 60);
    cfg.web_per_hour = 40;
    cfg.poll_interval_secs = 60;
    assert_clean(check("busy-x10", cfg));
}

#[test]
fn quiet_network() {
    let mut cfg = ScenarioConfig::new(0xfeed_0b06, 3, 60);
    cfg.web_per_hour = 1;
    cfg.poll_interval_secs = 3600;
    assert_clean(check("quiet", cfg));
}

#[test]
fn two_weeks_of_learning() {
    let mut cfg = ScenarioConfig::new(0xfeed_0014, 4, 60);
    cfg.learning_days = 14;
    assert_clean(check("learn-14d", cfg));
}

#[test]
fn one_day_of_learning() {
    let mut cfg = ScenarioConfig::new(0xfeed_0015, 4, 60);
    cfg.learning_days = 1;
    assert_clean(check("learn-1d", cfg));
}

#[test]
fn beacon_every_30_s() {
    let mut cfg = ScenarioConfig::new(0xfeed_0030, 4, 60);
    cfg.beacon_period_secs = 30;
    assert_clean(check("beacon-30s", cfg));
}

#[test]
fn beacon_every_15_min() {
    let mut cfg = ScenarioConfig::new(0xfeed_0900, 4, 60);
    cfg.beacon_period_secs = 900;
    assert_clean(check("beacon-900s", cfg));
}

#[test]
fn beacon_every_hour() {
    let mut cfg = ScenarioConfig::new(0xfeed_3600, 4, 60);
    cfg.beacon_period_secs = 3600;
    assert_clean(check("beacon-3600s", cfg));
}

/// The exfiltration split into 4 back-to-back uploads.
#[test]
fn exfil_split_in_four() {
    let mut cfg = ScenarioConfig::new(0xfeed_0004, 4, 60);
    cfg.exfil_chunks = 4;
    assert_clean(check("exfil-split-4", cfg));
}

#[test]
fn rdp_ten_minutes_outside_the_window() {
    let mut cfg = ScenarioConfig::new(0xfeed_0010, 4, 60);
    cfg.rdp_near_window_mins = Some(10);
    assert_clean(check("rdp-near-window", cfg));
}

/// Backups 23:00-03:00 local: one night's backup can start after local
/// midnight and the next night's before it, on one local day.
#[test]
fn backup_window_across_local_midnight() {
    let mut cfg = ScenarioConfig::new(0xfeed_2303, 4, 60);
    cfg.backup_hours = (23, 3);
    assert_clean(check("backup-23-03", cfg));
}

/// A beacon every 90 minutes over three detection days (an hourly-plus
/// check-in is common): 16 check-ins in any 24 h.
#[test]
fn beacon_every_90_min() {
    let mut cfg = ScenarioConfig::new(0xfeed_5400, 4, 60);
    cfg.beacon_period_secs = 5400;
    cfg.detection_days = 3;
    assert_clean(check("beacon-5400s", cfg));
}

#[test]
fn beacon_every_10_s() {
    let mut cfg = ScenarioConfig::new(0xfeed_0010, 4, 60);
    cfg.beacon_period_secs = 10;
    assert_clean(check("beacon-10s", cfg));
}

/// Cobalt-Strike-style jitter: +-50 % of a 60 s sleep.
#[test]
fn beacon_with_50_percent_jitter() {
    let mut cfg = ScenarioConfig::new(0xfeed_5050, 4, 60);
    cfg.beacon_period_secs = 60;
    cfg.beacon_jitter_pct = 50;
    assert_clean(check("beacon-jitter50", cfg));
}

#[test]
fn beacon_with_30_percent_jitter() {
    let mut cfg = ScenarioConfig::new(0xfeed_3030, 4, 60);
    cfg.beacon_period_secs = 300;
    cfg.beacon_jitter_pct = 30;
    assert_clean(check("beacon-jitter30", cfg));
}

/// The exfiltration split into 8 back-to-back uploads.
#[test]
fn exfil_split_in_eight() {
    let mut cfg = ScenarioConfig::new(0xfeed_0008, 4, 60);
    cfg.exfil_chunks = 8;
    assert_clean(check("exfil-split-8", cfg));
}

/// UTC-5 (the staging and weekend episodes fall late on the last local day).
#[test]
fn three_customers_utc_minus_8_ipv6() {
    let mut cfg = ScenarioConfig::new(0xfeed_0808, 3, -480);
    cfg.plan = AddressPlan::ten_net(3);
    cfg.plan.ipv6 = true;
    assert_clean(check("ipv6-utc-8", cfg));
}
