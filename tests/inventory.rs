//! `sensor inventory` end to end, through the real binary.
//!
//! - A labelled MSP scenario (`flowbench::scenario`): the inventory of its
//!   detection capture must agree exactly with an independent aggregation
//!   of the connection records `sensor replay --rules` writes for the same
//!   capture (connections, bytes each way, services, first/last seen,
//!   hours of the week per relationship), the inventory built from those
//!   JSON lines records must agree with the one built from the capture, and
//!   every labelled episode must be in it with its service, allowed (the
//!   look-alikes) or not (the policy episodes).
//! - Drift: two captures written here with flowbench that differ in known
//!   ways (one relationship appeared, one vanished, one with a new service,
//!   one active at a new hour, one with ten times the volume, two
//!   unchanged); `--diff` must report exactly those, from inventories and
//!   — for appeared and vanished — from baselines learned on the same
//!   captures.

use flowbench::scenario::{AddressPlan, Scenario, ScenarioConfig};
use flowbench::{Conversation, TrafficMix};
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{LinkType, Timestamp};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

fn sensor(args: &[&str]) -> (String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(args)
        .output()
        .expect("sensor runs");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "sensor {args:?} failed:\n{stderr}");
    (stdout, stderr)
}

fn workdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("inventory-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn side(enclave: &Value, group: &Value) -> String {
    match group.as_str() {
        Some(g) => format!("{}/{g}", enclave.as_str().unwrap()),
        None => enclave.as_str().unwrap().to_owned(),
    }
}

fn row_key(row: &Value) -> (String, String) {
    (
        side(&row["orig"]["enclave"], &row["orig"]["host_group"]),
        side(&row["resp"]["enclave"], &row["resp"]["host_group"]),
    )
}

fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| match x.as_str() {
            Some(s) => s.to_owned(),
            None => x.to_string(),
        })
        .collect()
}

/// What the test expects of one relationship, aggregated from records.
#[derive(Debug, Default, PartialEq)]
struct Agg {
    connections: u64,
    orig_bytes: u64,
    resp_bytes: u64,
    services: BTreeSet<String>,
    hours: BTreeSet<String>,
    first: f64,
    last: f64,
}

/// Aggregates `sensor replay --rules` JSON records per (orig side, resp
/// side), skipping connections inside one enclave touching no host group.
fn aggregate(records: &str) -> (BTreeMap<(String, String), Agg>, u64) {
    let mut out: BTreeMap<(String, String), Agg> = BTreeMap::new();
    let mut internal = 0;
    for line in records.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        if matches!(r["end_reason"].as_str(), Some("start" | "active")) {
            continue;
        }
        let (o, d) = (
            side(&r["orig_enclave"], &r["orig_host_group"]),
            side(&r["resp_enclave"], &r["resp_host_group"]),
        );
        if r["orig_enclave"] == r["resp_enclave"]
            && r["orig_host_group"].is_null()
            && r["resp_host_group"].is_null()
        {
            internal += 1;
            continue;
        }
        let a = out.entry((o, d)).or_insert_with(|| Agg {
            first: f64::INFINITY,
            last: f64::NEG_INFINITY,
            ..Agg::default()
        });
        let ts = r["ts"].as_f64().unwrap();
        let end = ts + r["duration"].as_f64().unwrap_or(0.0);
        a.connections += 1;
        a.orig_bytes += r["orig_bytes"].as_u64().unwrap_or(0);
        a.resp_bytes += r["resp_bytes"].as_u64().unwrap_or(0);
        a.services.insert(match r["proto"].as_str().unwrap() {
            "icmp" => "icmp".to_owned(),
            p => format!("{p}/{}", r["id.resp_p"]),
        });
        // Hour of the week, Monday 00:00 UTC = 0 (1970-01-01 was a Thursday).
        let secs = ts.floor() as i64;
        let how =
            ((secs.div_euclid(86_400) + 3).rem_euclid(7)) * 24 + secs.rem_euclid(86_400) / 3600;
        a.hours.insert(how.to_string());
        a.first = a.first.min(ts);
        a.last = a.last.max(end);
    }
    (out, internal)
}

fn inventory_rows(inv: &Value) -> BTreeMap<(String, String), Value> {
    inv["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (row_key(r), r.clone()))
        .collect()
}

#[test]
fn inventory_of_a_scenario_agrees_with_its_records_and_labels() {
    let dir = workdir("scenario");
    // Three customers, two of them on the same 192.168/16 told apart by
    // VLAN (210, 220): the inventory must place them VLAN-aware.
    let mut cfg = ScenarioConfig::new(7, 3, 60);
    cfg.plan = AddressPlan::mixed(3);
    cfg.learning_days = 1;
    let mut scenario = Scenario::generate(&cfg);
    let files = scenario.write(&dir).expect("scenario written");
    let (det, rules) = (s(&files.detection), s(&files.rules));
    let records = dir.join("records.json");
    let inv_path = dir.join("inventory.json");
    let from_records = dir.join("from-records.json");
    sensor(&["replay", det, "--rules", rules, "-o", s(&records), "-q"]);
    let (_, stderr) = sensor(&[
        "inventory",
        det,
        "--rules",
        rules,
        "-f",
        "json",
        "-o",
        s(&inv_path),
        "--no-progress",
    ]);
    assert!(stderr.contains("inventory: "), "{stderr}");
    sensor(&[
        "inventory",
        s(&records),
        "-f",
        "json",
        "-o",
        s(&from_records),
    ]);

    let inv = read_json(&inv_path);
    assert_eq!(inv["format"], "flowmon-inventory");
    let rows = inventory_rows(&inv);
    let (expected, internal) = aggregate(&std::fs::read_to_string(&records).unwrap());
    assert!(
        expected.len() >= 10,
        "a scenario has many relationships: {expected:?}"
    );
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the inventory lists exactly the relationships in the records"
    );
    assert_eq!(inv["internal_connections"].as_u64(), Some(internal));
    for (key, want) in &expected {
        let row = &rows[key];
        let got = Agg {
            connections: row["connections"].as_u64().unwrap(),
            orig_bytes: row["orig_bytes"].as_u64().unwrap(),
            resp_bytes: row["resp_bytes"].as_u64().unwrap(),
            services: set(&row["services"]),
            hours: set(&row["hours"]),
            first: row["first_seen"].as_f64().unwrap(),
            last: row["last_seen"].as_f64().unwrap(),
        };
        assert_eq!(got.connections, want.connections, "{key:?}");
        assert_eq!(
            (got.orig_bytes, got.resp_bytes),
            (want.orig_bytes, want.resp_bytes),
            "{key:?}"
        );
        assert_eq!(got.services, want.services, "{key:?}");
        assert_eq!(got.hours, want.hours, "{key:?}");
        assert!((got.first - want.first).abs() < 1e-5, "{key:?}");
        assert!((got.last - want.last).abs() < 1e-5, "{key:?}");
        let allowed = row["allowed_connections"].as_u64().unwrap();
        assert!(allowed <= got.connections);
    }

    // The two tenants sharing an address range are two enclaves, each on
    // its own VLAN.
    for (tenant, vlan) in [("tenant1", "210"), ("tenant2", "220")] {
        let tagged: Vec<&Value> = rows
            .values()
            .filter(|r| r["orig"]["enclave"] == tenant || r["resp"]["enclave"] == tenant)
            .filter(|r| !r["vlans"].as_array().unwrap().is_empty())
            .collect();
        assert!(tagged.len() >= 3, "{tenant} has tagged relationships");
        for r in tagged {
            assert_eq!(set(&r["vlans"]), BTreeSet::from([vlan.to_owned()]), "{r}");
        }
    }

    // The inventory of a running sensor's records (no rules: the enclave
    // columns place the hosts) lists the same relationships with the same
    // counts; "allowed" is unknown there.
    let rec_rows = inventory_rows(&read_json(&from_records));
    assert_eq!(rec_rows.len(), rows.len());
    for (key, row) in &rows {
        let other = &rec_rows[key];
        for field in [
            "connections",
            "orig_bytes",
            "resp_bytes",
            "services",
            "hours",
            "first_seen",
            "last_seen",
            "vlans",
        ] {
            assert_eq!(row[field], other[field], "{key:?} {field}");
        }
        assert!(other["allowed_connections"].is_null());
    }

    // Every labelled episode is in the inventory with its service: the
    // policy episodes not allowed, the allowed look-alikes allowed.
    let recs: Vec<Value> = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut checked = 0;
    for label in &scenario.labels {
        let policy = matches!(
            label.reason,
            Some("cross_customer" | "unapproved_host" | "outside_window")
        );
        let lookalike = matches!(label.kind, "maintenance_in_window" | "monitoring_polls");
        if !(policy || lookalike) {
            continue;
        }
        let service = |port: u16| match label.proto {
            "icmp" => "icmp".to_owned(),
            p => format!("{p}/{port}"),
        };
        // The records of the episode give the host groups of its ends (the
        // enclaves tell apart tenants reusing the same addresses).
        let mine: Vec<&Value> = recs
            .iter()
            .filter(|r| {
                r["orig_enclave"].as_str() == Some(label.src_enclave.as_str())
                    && r["resp_enclave"].as_str() == Some(label.dst_enclave.as_str())
                    && r["id.orig_h"].as_str() == Some(&label.src.to_string())
                    && label
                        .dsts
                        .iter()
                        .any(|d| r["id.resp_h"].as_str() == Some(&d.to_string()))
                    && (label.proto == "icmp"
                        || label
                            .ports
                            .iter()
                            .any(|p| r["id.resp_p"].as_u64() == Some(u64::from(*p))))
                    && r["ts"].as_f64().unwrap() >= label.start - 1.0
                    && r["ts"].as_f64().unwrap() <= label.end + 1.0
            })
            .collect();
        assert!(!mine.is_empty(), "no records of {label:?}");
        for r in mine {
            let key = (
                side(&r["orig_enclave"], &r["orig_host_group"]),
                side(&r["resp_enclave"], &r["resp_host_group"]),
            );
            let row = rows
                .get(&key)
                .unwrap_or_else(|| panic!("{} {key:?} not in the inventory", label.kind));
            let svc = match label.proto {
                "icmp" => service(0),
                _ => service(r["id.resp_p"].as_u64().unwrap() as u16),
            };
            assert!(
                set(&row["services"]).contains(&svc),
                "{} {key:?} {svc}",
                label.kind
            );
            let not_allowed = set(&row["not_allowed_services"]).contains(&svc);
            if policy {
                assert!(
                    not_allowed,
                    "{}: {key:?} {svc} should be not allowed",
                    label.kind
                );
                assert!(row["allowed_connections"].as_u64() < row["connections"].as_u64());
            } else {
                assert!(
                    row["allowed_connections"].as_u64().unwrap() > 0,
                    "{} {key:?}",
                    label.kind
                );
                assert!(
                    !set(&row["relationships"]).is_empty(),
                    "{} {key:?}",
                    label.kind
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "labelled connections checked: {checked}");

    // The terminal table and CSV show the same relationships.
    let (table, _) = sensor(&["inventory", det, "--rules", rules, "--no-progress"]);
    let (csv, _) = sensor(&[
        "inventory",
        det,
        "--rules",
        rules,
        "-f",
        "csv",
        "--no-progress",
    ]);
    assert!(
        table.starts_with(&format!("{} relationships,", rows.len())),
        "{table}"
    );
    assert_eq!(csv.lines().count(), rows.len() + 1);
    assert!(csv.starts_with("from,to,services,verdict,"));
    for (o, d) in rows.keys() {
        assert!(csv.contains(&format!("\n{o},{d},")), "{o} {d} in CSV");
        assert!(table.contains(o) && table.contains(d));
    }
}

// --- drift ------------------------------------------------------------------

/// 2026-03-02, a Monday, 00:00 UTC.
const MONDAY: i64 = 1_772_409_600;

fn at(h: i64, m: i64) -> Timestamp {
    Timestamp::from_micros(MONDAY + h * 3600 + m * 60, 0)
}

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port)
}

/// Which of the known differences a capture has.
#[derive(Clone, Copy)]
struct Variant {
    new: bool,
}

/// A day of traffic between the demo rule file's enclaves; the `new`
/// variant differs in five known ways.
fn day(v: Variant) -> TrafficMix {
    let mut mix = TrafficMix::new();
    let mut port = 50_000;
    let mut next = || {
        port += 1;
        port
    };
    // Unchanged: a customer-A user's DNS at both ends of the day (so both
    // captures span the same period) and a nightly backup.
    for t in [at(0, 5), at(23, 55)] {
        mix.push(
            Conversation::udp(sock("10.20.30.10", next()), sock("10.40.0.53", 53), t)
                .bytes(40, 120),
        );
    }
    mix.push(
        Conversation::tcp(
            sock("10.10.3.30", next()),
            sock("10.20.10.20", 445),
            at(1, 0),
        )
        .bytes(1_000_000, 10_000),
    );
    // Jump host RDP in the window; the new day adds SSH (a new service).
    mix.push(
        Conversation::tcp(
            sock("10.10.1.10", next()),
            sock("10.20.10.5", 3389),
            at(20, 30),
        )
        .bytes(20_000, 200_000),
    );
    if v.new {
        mix.push(
            Conversation::tcp(
                sock("10.10.1.10", next()),
                sock("10.20.10.5", 22),
                at(20, 40),
            )
            .bytes(1_000, 1_000),
        );
    }
    // Monitoring polls every hour 08-21; the new day also polls at 03:00
    // (a new hour of the week).
    let mut hours: Vec<i64> = (8..22).collect();
    if v.new {
        hours.push(3);
    }
    for h in hours {
        mix.push(
            Conversation::udp(
                sock("10.10.2.20", next()),
                sock("10.20.10.5", 161),
                at(h, 1),
            )
            .bytes(47, 124),
        );
    }
    // Web use at 10:00; ten times the bytes on the new day (volume).
    let k = if v.new { 10 } else { 1 };
    for i in 0..10 {
        mix.push(
            Conversation::tcp(
                sock("10.20.30.10", next()),
                sock("192.0.2.80", 443),
                at(10, i * 5),
            )
            .bytes(2_000 * k, 20_000 * k),
        );
    }
    if v.new {
        // Appeared: customer A's server into customer B's file server.
        mix.push(
            Conversation::tcp(
                sock("10.20.10.5", next()),
                sock("10.30.10.20", 445),
                at(14, 20),
            )
            .bytes(6_000, 40_000),
        );
    } else {
        // Vanished: customer B's DNS (only on the old day).
        mix.push(
            Conversation::udp(
                sock("10.30.30.10", next()),
                sock("10.40.0.53", 53),
                at(12, 0),
            )
            .bytes(40, 120),
        );
    }
    mix
}

fn write_capture(mut mix: TrafficMix, path: &Path) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = PcapWriter::new(file, Resolution::Micros, 65_535, LinkType::ETHERNET).unwrap();
    let mut frames = mix.frames();
    let mut buf = Vec::new();
    while let Some(ts) = frames.next_into(&mut buf) {
        w.write_packet(ts, &buf, buf.len() as u32).unwrap();
    }
    w.into_inner().unwrap();
}

fn demo_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/examples/demo.toml")
}

fn entries(drift: &Value, change: &str) -> Vec<String> {
    drift["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["change"] == change)
        .map(|e| {
            format!(
                "{} -> {}",
                side(&e["orig"]["enclave"], &e["orig"]["host_group"]),
                side(&e["resp"]["enclave"], &e["resp"]["host_group"])
            )
        })
        .collect()
}

#[test]
fn drift_between_two_days_reports_exactly_the_known_differences() {
    let dir = workdir("drift");
    let rules = demo_rules();
    let (old_pcap, new_pcap) = (dir.join("old.pcap"), dir.join("new.pcap"));
    write_capture(day(Variant { new: false }), &old_pcap);
    write_capture(day(Variant { new: true }), &new_pcap);
    let (old_inv, new_inv) = (dir.join("old.json"), dir.join("new.json"));
    for (pcap, inv) in [(&old_pcap, &old_inv), (&new_pcap, &new_inv)] {
        sensor(&[
            "inventory",
            s(pcap),
            "--rules",
            s(&rules),
            "-f",
            "json",
            "-o",
            s(inv),
            "--no-progress",
        ]);
    }
    let (json, _) = sensor(&[
        "inventory",
        "--diff",
        s(&old_inv),
        s(&new_inv),
        "-f",
        "json",
    ]);
    let drift: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        entries(&drift, "appeared"),
        ["customer-a/a-servers -> customer-b/b-file-servers"]
    );
    assert_eq!(
        entries(&drift, "vanished"),
        ["customer-b -> shared-services/dns-resolvers"]
    );
    assert_eq!(
        entries(&drift, "changed"),
        [
            "customer-a -> internet",
            "provider-mgmt/jump-hosts -> customer-a/a-servers",
            "provider-mgmt/monitoring -> customer-a/a-servers",
        ]
    );
    assert_eq!(drift["unchanged"], 2);
    let changed: Vec<&Value> = drift["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["change"] == "changed")
        .collect();
    // What changed in each, and nothing else.
    let web = changed[0];
    assert_eq!(web["volume_changed"], true);
    assert!(set(&web["services_added"]).is_empty() && set(&web["hours_added"]).is_empty());
    let ratio =
        web["new_bytes_per_day"].as_f64().unwrap() / web["old_bytes_per_day"].as_f64().unwrap();
    assert!((ratio - 10.0).abs() < 0.01, "{ratio}");
    let jump = changed[1];
    assert_eq!(
        set(&jump["services_added"]),
        BTreeSet::from(["tcp/22".to_owned()])
    );
    assert_eq!(jump["volume_changed"], false);
    assert!(set(&jump["hours_added"]).is_empty());
    let polls = changed[2];
    assert_eq!(set(&polls["hours_added"]), BTreeSet::from(["3".to_owned()]));
    assert!(set(&polls["services_added"]).is_empty());
    assert_eq!(polls["volume_changed"], false);
    let appeared = &drift["entries"][0];
    assert_eq!(appeared["verdict"], "not allowed");
    assert_eq!(
        set(&appeared["services_added"]),
        BTreeSet::from(["tcp/445".to_owned()])
    );

    // The table for the auditor says the same in words.
    let (table, _) = sensor(&["inventory", "--diff", s(&old_inv), s(&new_inv)]);
    assert!(
        table.contains("1 appeared, 1 vanished, 3 changed, 2 unchanged"),
        "{table}"
    );
    assert!(table.contains("services +tcp/22"), "{table}");
    assert!(table.contains("new hours mon 03"), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("changed")
            && l.contains("customer-a ")
            && l.contains("kB/day -> ")
            && l.contains("MB/day")),
        "{table}"
    );
    // A higher threshold no longer calls a tenfold volume a change.
    let (json, _) = sensor(&[
        "inventory",
        "--diff",
        s(&old_inv),
        s(&new_inv),
        "-f",
        "json",
        "--volume-factor",
        "20",
    ]);
    let lenient: Value = serde_json::from_str(&json).unwrap();
    assert!(!entries(&lenient, "changed").contains(&"customer-a -> internet".to_owned()));

    // Baselines learned from the same days drift the same way (baselines
    // keep only host pairs across boundaries; --rules places them).
    let (old_b, new_b) = (dir.join("old-baseline.json"), dir.join("new-baseline.json"));
    for (pcap, b) in [(&old_pcap, &old_b), (&new_pcap, &new_b)] {
        sensor(&[
            "baseline",
            "learn",
            "--rules",
            s(&rules),
            "-o",
            s(b),
            s(pcap),
        ]);
    }
    let (json, _) = sensor(&[
        "inventory",
        "--diff",
        s(&old_b),
        s(&new_b),
        "--rules",
        s(&rules),
        "-f",
        "json",
    ]);
    let from_baselines: Value = serde_json::from_str(&json).unwrap();
    for change in ["appeared", "vanished", "changed"] {
        assert_eq!(
            entries(&from_baselines, change),
            entries(&drift, change),
            "{change} from baselines"
        );
    }
    // A baseline without --rules is refused with a clear error.
    let o = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["inventory", "--diff", s(&old_b), s(&new_b)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs --rules"));
    // So is a file that is neither.
    let o = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["inventory", "--diff", s(&old_pcap), s(&new_inv)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("neither an inventory"));
}

#[test]
fn a_record_file_with_a_bad_line_is_an_error_naming_the_line() {
    let dir = workdir("bad-records");
    let path = dir.join("records.json");
    std::fs::write(
        &path,
        "{\"ts\":1.0,\"uid\":\"C1\",\"id.orig_h\":\"10.0.0.1\",\"id.orig_p\":1,\"id.resp_h\":\"10.0.0.2\",\"id.resp_p\":2,\"proto\":\"tcp\",\"conn_state\":\"SF\",\"ip_proto\":6,\"end_reason\":\"fin\"}\n{\"ts\": \"yesterday\"}\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["inventory", s(&path)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("records.json:2: not a connection record"),
        "{err}"
    );
}

/// A damaged inventory given to `--diff` is reported with the JSON error
/// (line and column), not as "neither an inventory nor a baseline"; and a
/// baseline that cannot be written is a failed write (exit 1).
#[test]
fn damaged_diff_inputs_and_unwritable_baselines_say_what_is_wrong() {
    let dir = workdir("damaged");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/msp-demo.pcap");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/examples/demo.toml");
    let inv = dir.join("inv.json");
    sensor(&[
        "inventory",
        s(&demo),
        "--rules",
        s(&rules),
        "-f",
        "json",
        "-o",
        s(&inv),
    ]);
    let whole = std::fs::read(&inv).unwrap();
    let cut = dir.join("cut.json");
    std::fs::write(&cut, &whole[..500]).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["inventory", "--diff", s(&cut), s(&inv)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("EOF while parsing"), "{err}");
    assert!(err.contains("line "), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args([
            "baseline",
            "learn",
            s(&demo),
            "--rules",
            s(&rules),
            "-o",
            "/dev/full",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("/dev/full"), "{err}");
}

/// An input without connections has no period: the inventory and its
/// drift say so instead of showing 1970.
#[test]
fn an_input_without_connections_has_no_period() {
    let dir = workdir("no-connections");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/examples/demo.toml");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/msp-demo.pcap");
    // A capture file with its header and no packets.
    let empty = dir.join("empty.pcap");
    let mut header = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    header.extend_from_slice(&[
        2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ]);
    std::fs::write(&empty, header).unwrap();
    let (old, new) = (dir.join("old.json"), dir.join("new.json"));
    let (table, _) = sensor(&["inventory", s(&empty), "--rules", s(&rules)]);
    assert!(table.contains("no connections"), "{table}");
    assert!(!table.contains("1970"), "{table}");
    sensor(&[
        "inventory",
        s(&empty),
        "--rules",
        s(&rules),
        "-f",
        "json",
        "-o",
        s(&old),
    ]);
    sensor(&[
        "inventory",
        s(&demo),
        "--rules",
        s(&rules),
        "-f",
        "json",
        "-o",
        s(&new),
    ]);
    let (drift, _) = sensor(&["inventory", "--diff", s(&old), s(&new)]);
    assert!(
        drift.starts_with("drift: old no connections (capture) -> new 2026-"),
        "{drift}"
    );
}
