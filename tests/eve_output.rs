//! Suricata EVE output: every alert and flow line of real replays validated
//! against JSON schemas written from Suricata's EVE documentation
//! (`tests/schema/`), and checked against the plain JSON output of the same
//! replay: same alerts, same records, flow_id shared by an alert and its
//! connection's flow event.

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus() -> PathBuf {
    std::env::var_os("FLOWMON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/corpus"))
        .join("pcaps")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowmon-eve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
        .collect()
}

fn sensor(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(args)
        .output()
        .expect("sensor runs");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The schemas in tests/schema, compiled with format checks on.
struct Schemas {
    alert: jsonschema::Validator,
    flow: jsonschema::Validator,
}

impl Schemas {
    fn load() -> Schemas {
        let dir = repo().join("tests/schema");
        let read = |name: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
        };
        let registry = jsonschema::Registry::new()
            .add("urn:flowmon:eve-common", read("eve-common.schema.json"))
            .unwrap()
            .prepare()
            .unwrap();
        let build = |name: &str| {
            jsonschema::options()
                .with_registry(&registry)
                .should_validate_formats(true)
                .build(&read(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        Schemas {
            alert: build("eve-alert.schema.json"),
            flow: build("eve-flow.schema.json"),
        }
    }

    fn check(v: &jsonschema::Validator, line: &Value) {
        let errors: Vec<String> = v.iter_errors(line).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {line}");
    }
}

#[test]
fn schemas_reject_lines_that_break_the_documented_types() {
    let s = Schemas::load();
    let good: Value = serde_json::json!({
        "timestamp": "2026-03-02T08:00:00.000000+0000", "flow_id": 12, "event_type": "flow",
        "src_ip": "10.0.0.1", "src_port": 1, "dest_ip": "10.0.0.2", "dest_port": 2, "proto": "TCP",
        "community_id": "1:i0JHOH3XYzcKVvLwGiKph4k6Su8=",
        "flow": {"pkts_toserver": 1, "pkts_toclient": 0, "bytes_toserver": 60, "bytes_toclient": 0,
                 "start": "2026-03-02T08:00:00.000000+0000", "end": "2026-03-02T08:00:00.000000+0000",
                 "age": 0, "state": "new", "reason": "timeout", "alerted": false}
    });
    assert!(s.flow.is_valid(&good));
    for (pointer, bad) in [
        ("/timestamp", serde_json::json!(1772438400.0)),
        ("/flow_id", serde_json::json!("12")),
        ("/src_ip", serde_json::json!("10.0.0.300")),
        ("/vlan", serde_json::json!(10)),
        ("/flow/state", serde_json::json!("idle")),
        ("/flow/alerted", serde_json::json!("false")),
    ] {
        let mut v = good.clone();
        match v.pointer_mut(pointer) {
            Some(slot) => *slot = bad,
            None => {
                v.as_object_mut()
                    .unwrap()
                    .insert(pointer[1..].to_owned(), bad);
            }
        }
        assert!(!s.flow.is_valid(&v), "{pointer} accepted: {v}");
    }
}

#[test]
fn demo_eve_alerts_and_flows_follow_suricatas_schema_and_match_the_json_output() {
    let demo = repo().join("demo/msp-demo.pcap");
    let rules = repo().join("rules/examples/demo.toml");
    let (json_alerts, json_records) = (tmp("alerts.json"), tmp("records.json"));
    let (eve_alerts, eve_flows) = (tmp("alerts.eve.json"), tmp("flows.eve.json"));
    let base = [
        "replay",
        "-q",
        demo.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ];
    let mut plain = base.to_vec();
    plain.extend([
        "--alerts",
        json_alerts.to_str().unwrap(),
        "-o",
        json_records.to_str().unwrap(),
    ]);
    sensor(&plain);
    let mut eve = base.to_vec();
    eve.extend([
        "--alerts",
        eve_alerts.to_str().unwrap(),
        "--alerts-format",
        "eve",
        "-f",
        "eve",
        "-o",
        eve_flows.to_str().unwrap(),
    ]);
    sensor(&eve);

    let schemas = Schemas::load();
    let (plain_alerts, alerts) = (lines(&json_alerts), lines(&eve_alerts));
    let (plain_records, flows) = (lines(&json_records), lines(&eve_flows));

    // Same alerts, line for line, our alert kept whole in `flowmon`.
    assert_eq!(alerts.len(), plain_alerts.len());
    let raised =
        |v: &[Value], field: &str, value: &str| v.iter().filter(|a| a[field] == value).count();
    assert_eq!(raised(&plain_alerts, "event", "alert"), 35);
    assert_eq!(raised(&alerts, "event_type", "alert"), 35);
    assert_eq!(
        raised(&alerts, "event_type", "alert_update"),
        raised(&plain_alerts, "event", "update")
    );
    for (a, p) in alerts.iter().zip(&plain_alerts) {
        Schemas::check(&schemas.alert, a);
        assert_eq!(&a["flowmon"], p);
        assert_eq!(a["src_ip"], p["id.orig_h"]);
        if p["proto"] == "icmp" {
            assert_eq!(a["icmp_type"], p["id.orig_p"]);
        } else {
            assert_eq!(a["dest_port"], p["id.resp_p"]);
        }
        assert_eq!(a["community_id"], p["community_id"]);
        let meta = &a["alert"]["metadata"];
        assert_eq!(meta["flowmon_score"][0], p["score"].to_string());
        assert_eq!(meta["flowmon_severity"][0], p["severity"]);
        let severity = match p["severity"].as_str().unwrap() {
            "critical" | "high" => 1,
            "medium" => 2,
            _ => 3,
        };
        assert_eq!(a["alert"]["severity"], severity);
    }
    // The Cloud Hopper hop is named by its signature.
    assert!(alerts
        .iter()
        .any(|a| a["alert"]["signature_id"] == 1_200_002
            && a["alert"]["category"] == "Potential Corporate Privacy Violation"
            && a["dest_port"] == 445));
    // Beacons by theirs.
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a["event_type"] == "alert" && a["alert"]["signature_id"] == 1_200_011)
            .count(),
        7
    );

    // Same records, one flow event each.
    assert_eq!(flows.len(), plain_records.len());
    assert_eq!(flows.len(), 633);
    let mut flow_ids: HashMap<String, u64> = HashMap::new();
    let mut last_logged = String::new();
    for (f, r) in flows.iter().zip(&plain_records) {
        Schemas::check(&schemas.flow, f);
        // Logged (as Suricata) when the record was due: after the flow's
        // last packet, and in order through the file.
        let logged = f["timestamp"].as_str().unwrap();
        assert!(logged >= f["flow"]["end"].as_str().unwrap(), "{f}");
        assert!(logged >= last_logged.as_str(), "{f}");
        last_logged = logged.to_owned();
        assert_eq!(&f["flowmon"], r);
        assert_eq!(f["flow"]["pkts_toserver"], r["orig_pkts"]);
        assert_eq!(f["flow"]["pkts_toclient"], r["resp_pkts"]);
        assert_eq!(f["flow"]["bytes_toserver"], r["orig_ip_bytes"]);
        assert_eq!(f["flow"]["bytes_toclient"], r["resp_ip_bytes"]);
        assert_eq!(f["tcp"].is_object(), r["proto"] == "tcp", "{f}");
        if r["conn_state"] == "SF" && r["proto"] == "tcp" {
            assert_eq!(f["flow"]["state"], "closed");
        }
        let uid = r["uid"].as_str().unwrap().to_owned();
        let id = f["flow_id"].as_u64().unwrap();
        assert_eq!(*flow_ids.entry(uid).or_insert(id), id);
    }
    // An alert and its connection's flow event share the flow_id, and
    // exactly the connections that raised an alert are flagged.
    let mut alerted = HashSet::new();
    for a in alerts.iter().filter(|a| a["event_type"] == "alert") {
        let uid = a["flowmon"]["uid"].as_str().unwrap();
        assert_eq!(
            Some(&a["flow_id"].as_u64().unwrap()),
            flow_ids.get(uid),
            "{a}"
        );
        alerted.insert(uid.to_owned());
    }
    for f in &flows {
        let uid = f["flowmon"]["uid"].as_str().unwrap();
        assert_eq!(f["flow"]["alerted"], alerted.contains(uid), "{f}");
    }
}

#[test]
fn corpus_flows_with_icmp_ipv6_vlans_and_tunnels_follow_suricatas_schema() {
    let schemas = Schemas::load();
    let mut seen = HashSet::new();
    for name in [
        "icmp-echo-pings.pcap",
        "icmp-dest-unreach-quoting-udp.pcap",
        "icmp6-nd-echo-mixed.pcap",
        "ipv6-tcp-ftp-with-data-conns.pcap",
        "qinq-8021ad-double-tagged.pcap",
        "vlan-same-5tuple-different-vlans.pcap",
        "tunnel-gre-ipv4-dns-ssh.pcap",
        "sctp-association.pcap",
    ] {
        let pcap = corpus().join(name);
        let out = tmp(&format!("{name}.eve"));
        sensor(&[
            "replay",
            "-q",
            "-f",
            "eve",
            "-o",
            out.to_str().unwrap(),
            pcap.to_str().unwrap(),
        ]);
        let flows = lines(&out);
        assert!(!flows.is_empty(), "{name}");
        for f in &flows {
            Schemas::check(&schemas.flow, f);
            seen.insert(f["proto"].as_str().unwrap().to_owned());
            if f["flowmon"]["vlan"].is_number() {
                assert_eq!(f["vlan"][0], f["flowmon"]["vlan"]);
                seen.insert("vlan".to_owned());
            }
            if f["flowmon"]["inner_vlan"].is_number() {
                assert_eq!(f["vlan"][1], f["flowmon"]["inner_vlan"]);
                seen.insert("inner_vlan".to_owned());
            }
            if f["proto"] == "ICMP" || f["proto"] == "IPv6-ICMP" {
                assert_eq!(f["icmp_type"], f["flowmon"]["id.orig_p"]);
                assert!(f.get("src_port").is_none());
            }
        }
    }
    for kind in [
        "TCP",
        "UDP",
        "ICMP",
        "IPv6-ICMP",
        "SCTP",
        "vlan",
        "inner_vlan",
    ] {
        assert!(seen.contains(kind), "no {kind} flow in {seen:?}");
    }
}

/// An IP protocol Zeek calls `unknown_transport` (253, for experiments)
/// crossing from one customer to another: the EVE alert names the
/// protocol as the EVE flow event does, by its number.
#[test]
fn alerts_on_other_ip_protocols_name_them_as_the_flow_events_do() {
    use flowlib::pcap_writer::{PcapWriter, Resolution};
    use flowlib::{LinkType, Timestamp};
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
    for (i, (src, dst)) in [
        ([10, 20, 0, 5], [10, 30, 0, 7]),
        ([10, 30, 0, 7], [10, 20, 0, 5]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(src, dst, 64)
            .write(&mut frame, etherparse::IpNumber(253), &[0u8; 40])
            .unwrap();
        let ts = Timestamp::from_micros(1_772_438_400 + i as i64, 0);
        w.write_packet(ts, &frame, frame.len() as u32).unwrap();
    }
    let pcap = tmp("proto253.pcap");
    std::fs::write(&pcap, w.into_inner().unwrap()).unwrap();
    let (alerts, flows) = (tmp("proto253.alerts.json"), tmp("proto253.flows.json"));
    sensor(&[
        "replay",
        "-q",
        pcap.to_str().unwrap(),
        "--rules",
        repo().join("rules/examples/demo.toml").to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
        "--alerts-format",
        "eve",
        "-f",
        "eve",
        "-o",
        flows.to_str().unwrap(),
    ]);
    let (alerts, flows) = (lines(&alerts), lines(&flows));
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert_eq!(flows[0]["proto"], "253");
    assert!(!alerts.is_empty(), "customer to customer raises an alert");
    for a in &alerts {
        assert_eq!(a["proto"], flows[0]["proto"], "{a}");
        assert_eq!(a["flow_id"], flows[0]["flow_id"], "{a}");
        assert_eq!(a["flowmon"]["proto"], "unknown_transport", "{a}");
    }
}

/// Regression: an EVE alert on a QinQ connection listed only the outer
/// VLAN (`[13]`) where its flow event listed both (`[13,10]`), as Suricata
/// writes them in both. Two customers in one double-tagged capture from
/// the corpus: every alert's `vlan` is its flow event's.
#[test]
fn alerts_on_qinq_connections_list_both_vlans_as_the_flow_events_do() {
    let pcap = corpus().join("qinq-8021ad-double-tagged.pcap");
    if !pcap.exists() {
        eprintln!("SKIPPED: no corpus at {}", pcap.display());
        return;
    }
    let rules = tmp("qinq.toml");
    std::fs::write(
        &rules,
        r#"version = 1

[defaults]
unknown = "internet"

[[enclaves]]
name = "internet"
kind = "external"
networks = []

[[enclaves]]
name = "customer-x"
kind = "customer"
networks = ["172.19.51.37/32"]

[[enclaves]]
name = "customer-y"
kind = "customer"
networks = ["172.19.51.63/32"]
"#,
    )
    .unwrap();
    let (alerts, flows) = (tmp("qinq.alerts.json"), tmp("qinq.flows.json"));
    sensor(&[
        "replay",
        "-q",
        pcap.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
        "--alerts-format",
        "eve",
        "-f",
        "eve",
        "-o",
        flows.to_str().unwrap(),
    ]);
    let (alerts, flows) = (lines(&alerts), lines(&flows));
    let vlan_of: HashMap<&Value, &Value> =
        flows.iter().map(|f| (&f["flow_id"], &f["vlan"])).collect();
    assert!(!alerts.is_empty(), "customer to customer raises an alert");
    for a in &alerts {
        let flow_vlan = vlan_of
            .get(&a["flow_id"])
            .unwrap_or_else(|| panic!("no flow event for {a}"));
        assert_eq!(&a["vlan"], *flow_vlan, "{a}");
        assert_eq!(a["vlan"].as_array().map(Vec::len), Some(2), "{a}");
    }
}
