//! The example rule files load, and say what their comments say about the
//! networks they describe.

use std::net::IpAddr;
use std::path::Path;

use flowlib::Timestamp;
use rules::enclave::EnclaveKind;
use rules::relationship::Endpoint;
use rules::{Location, Rules};

fn load(name: &str) -> Rules {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    Rules::load(&path).unwrap_or_else(|e| panic!("{name}:\n{e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Capture time on the demo day: `h:m` UTC on 2026-03-02 (a Monday), hours
/// past 23 rolling into the next day, as in `make_demo_capture`.
fn demo_at(h: i64, m: i64) -> Timestamp {
    const MIDNIGHT: i64 = 1_772_438_400 - 8 * 3600;
    Timestamp::from_micros(MIDNIGHT + h * 3600 + m * 60, 0)
}

/// Names of the relationships that allow originator `src` to reach
/// responder `dst` on (`proto`, `port`) at `ts`.
fn allowed_by(
    r: &Rules,
    (src, sv): (&str, Option<u16>),
    (dst, dv): (&str, Option<u16>),
    proto: u8,
    port: u16,
    ts: Timestamp,
) -> Vec<String> {
    let (s, d) = (ip(src), ip(dst));
    let (ls, ld) = (r.locate(s, sv), r.locate(d, dv));
    r.relationships()
        .iter()
        .filter(|rel| {
            r.endpoint_contains(rel.from(), s, ls)
                && r.endpoint_contains(rel.to(), d, ld)
                && rel.allows_service(proto, port)
                && rel.allows_time(ts)
        })
        .map(|rel| rel.name().to_string())
        .collect()
}

fn names(r: &Rules, loc: Location) -> (String, Option<String>) {
    (
        r.enclave(loc.enclave).name().to_string(),
        loc.host_group.map(|g| r.host_group(g).name().to_string()),
    )
}

#[test]
fn the_demo_rules_place_every_host_of_the_demo_capture() {
    let r = load("demo.toml");
    let at = |a: &str, v: Option<u16>| names(&r, r.locate(ip(a), v));
    let e = |s: &str| s.to_string();
    assert_eq!(
        at("10.10.1.10", None),
        (e("provider-mgmt"), Some(e("jump-hosts")))
    );
    assert_eq!(
        at("10.10.1.11", None),
        (e("provider-mgmt"), Some(e("jump-hosts")))
    );
    assert_eq!(
        at("10.10.2.20", None),
        (e("provider-mgmt"), Some(e("monitoring")))
    );
    assert_eq!(
        at("10.10.3.30", None),
        (e("provider-mgmt"), Some(e("backup")))
    );
    assert_eq!(
        at("10.40.0.53", None),
        (e("shared-services"), Some(e("dns-resolvers")))
    );
    assert_eq!(
        at("10.20.10.5", None),
        (e("customer-a"), Some(e("a-servers")))
    );
    assert_eq!(
        at("10.20.10.20", None),
        (e("customer-a"), Some(e("a-file-servers")))
    );
    assert_eq!(at("10.20.30.77", None), (e("customer-a"), None));
    assert_eq!(at("2001:db8:a:30::10", None), (e("customer-a"), None));
    // Customer B is seen both on VLAN 30 and untagged.
    assert_eq!(at("10.30.30.12", Some(30)), (e("customer-b"), None));
    assert_eq!(
        at("10.30.10.5", None),
        (e("customer-b"), Some(e("b-servers")))
    );
    assert_eq!(
        at("10.30.10.20", Some(30)),
        (e("customer-b"), Some(e("b-file-servers")))
    );
    for outside in [
        "203.0.113.66",
        "198.51.100.99",
        "192.0.2.1",
        "2001:db8:ffff::1",
    ] {
        assert_eq!(at(outside, None), (e("internet"), None), "{outside}");
    }
    let internet = r.enclave(r.default_enclave());
    assert_eq!(internet.kind(), EnclaveKind::External);
}

#[test]
fn the_demo_rules_allow_the_ordinary_day_and_none_of_the_stories() {
    let r = load("demo.toml");
    let (tcp, udp, icmp) = (6, 17, 1);
    // Allowed: maintenance at 20:05 and 20:40, monitoring, backups at 01:00,
    // DNS and the web.
    assert_eq!(
        allowed_by(
            &r,
            ("10.10.1.10", None),
            ("10.20.10.5", None),
            tcp,
            3389,
            demo_at(20, 5)
        ),
        ["maintenance-a"]
    );
    assert_eq!(
        allowed_by(
            &r,
            ("10.10.1.11", None),
            ("10.30.10.7", None),
            tcp,
            22,
            demo_at(20, 40)
        ),
        ["maintenance-b"]
    );
    assert_eq!(
        allowed_by(
            &r,
            ("10.10.2.20", None),
            ("10.30.10.5", None),
            udp,
            161,
            demo_at(3, 30)
        ),
        ["monitoring-b"]
    );
    assert_eq!(
        allowed_by(
            &r,
            ("10.10.2.20", None),
            ("10.20.0.1", None),
            icmp,
            0,
            demo_at(9, 0)
        ),
        ["monitoring-a"]
    );
    assert_eq!(
        allowed_by(
            &r,
            ("10.10.3.30", None),
            ("10.30.10.20", None),
            tcp,
            445,
            demo_at(25, 20)
        ),
        ["backup-b"]
    );
    assert_eq!(
        allowed_by(
            &r,
            ("10.30.30.12", Some(30)),
            ("10.40.0.53", Some(30)),
            udp,
            53,
            demo_at(9, 0)
        ),
        ["dns-b"]
    );
    assert_eq!(
        allowed_by(
            &r,
            ("2001:db8:a:30::10", None),
            ("2001:db8:ffff::1", None),
            tcp,
            443,
            demo_at(9, 0)
        ),
        ["web-a"]
    );
    // Story 1: customer A into customer B, SMB and RDP: no relationship.
    assert!(allowed_by(
        &r,
        ("10.20.10.5", None),
        ("10.30.10.20", None),
        tcp,
        445,
        demo_at(14, 20)
    )
    .is_empty());
    assert!(allowed_by(
        &r,
        ("10.20.10.5", None),
        ("10.30.10.5", None),
        tcp,
        3389,
        demo_at(14, 24)
    )
    .is_empty());
    // Story 2: RDP from a jump host at 03:00, outside the window.
    assert!(allowed_by(
        &r,
        ("10.10.1.11", None),
        ("10.20.10.5", None),
        tcp,
        3389,
        demo_at(27, 0)
    )
    .is_empty());
    let maint = &r.relationships()[0];
    assert!(maint.allows_service(tcp, 3389) && !maint.allows_time(demo_at(27, 0)));
    // Story 3: the scan of customer B from customer A.
    assert!(allowed_by(
        &r,
        ("10.20.30.44", None),
        ("10.30.10.9", None),
        tcp,
        445,
        demo_at(11, 15)
    )
    .is_empty());
}

#[test]
fn the_msp_example_tells_globex_and_initech_apart_by_vlan() {
    let r = load("msp.toml");
    let at = |a: &str, v: Option<u16>| names(&r, r.locate(ip(a), v));
    let e = |s: &str| s.to_string();
    assert_eq!(
        at("10.0.10.5", Some(110)),
        (e("globex"), Some(e("globex-servers")))
    );
    assert_eq!(
        at("10.0.10.5", Some(120)),
        (e("initech"), Some(e("initech-servers")))
    );
    assert_eq!(at("10.0.20.5", Some(120)), (e("initech"), None));
    assert_eq!(
        at("10.0.10.5", None),
        (e("internet"), None),
        "untagged: neither customer"
    );
    assert_eq!(
        at("10.10.1.10", Some(110)),
        (e("msp-mgmt"), Some(e("jump-hosts")))
    );
    assert_eq!(
        at("2001:db8:10:1::10", None),
        (e("msp-mgmt"), Some(e("jump-hosts")))
    );
    assert_eq!(at("203.0.113.10", None), (e("offsite-backup"), None));
    assert_eq!(at("203.0.113.70", None), (e("internet"), None));
}

#[test]
fn the_msp_maintenance_window_is_berlin_time_in_winter_and_summer() {
    let r = load("msp.toml");
    let utc = |y, mo, d, h, mi| {
        let t = chrono_free_utc(y, mo, d, h, mi);
        Timestamp::from_micros(t, 0)
    };
    let jump = ("10.10.1.10", None);
    let globex = ("10.0.10.5", Some(110));
    // Monday 2 March 2026, CET (UTC+1): 20:00-22:00 Berlin is 19:00-21:00 UTC.
    assert_eq!(
        allowed_by(&r, jump, globex, 6, 3389, utc(2026, 3, 2, 19, 30)),
        ["admin-globex"]
    );
    assert!(allowed_by(&r, jump, globex, 6, 3389, utc(2026, 3, 2, 21, 30)).is_empty());
    // Monday 6 July 2026, CEST (UTC+2): 18:00-20:00 UTC.
    assert_eq!(
        allowed_by(&r, jump, globex, 6, 3389, utc(2026, 7, 6, 18, 30)),
        ["admin-globex"]
    );
    assert!(allowed_by(&r, jump, globex, 6, 3389, utc(2026, 7, 6, 20, 30)).is_empty());
    // Not from a monitoring server, not SMB.
    assert!(allowed_by(
        &r,
        ("10.10.2.20", None),
        globex,
        6,
        3389,
        utc(2026, 3, 2, 19, 30)
    )
    .is_empty());
    assert!(allowed_by(&r, jump, globex, 6, 445, utc(2026, 3, 2, 19, 30)).is_empty());
    // Initech's Friday-night window runs into Saturday: Sat 7 March 01:30 CET.
    let initech = ("10.0.10.5", Some(120));
    assert_eq!(
        allowed_by(&r, jump, initech, 6, 22, utc(2026, 3, 7, 0, 30)),
        ["admin-initech"]
    );
    assert!(
        allowed_by(&r, jump, initech, 6, 22, utc(2026, 3, 8, 0, 30)).is_empty(),
        "Sunday 01:30"
    );
}

/// Seconds since the epoch for a UTC civil date (days-from-civil).
fn chrono_free_utc(y: i64, m: i64, d: i64, h: i64, mi: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + h * 3600 + mi * 60
}

#[test]
fn the_msp_example_reads_its_detector_table() {
    let r = load("msp.toml");
    let det = r.detector();
    assert_eq!(
        det.weights
            .get(rules::config::detector::Reason::CrossCustomer),
        95
    );
    assert_eq!(
        det.weights.get(rules::config::detector::Reason::Beacon),
        50,
        "default kept"
    );
    assert_eq!(det.volume.min_bytes, 50_000_000);
    assert_eq!(det.ignore.services.len(), 1);
    let backup = r
        .relationships()
        .iter()
        .find(|x| x.name() == "backup-offsite")
        .unwrap();
    assert_eq!(backup.max_bytes_per_day(), Some(2_000_000_000_000));
    assert!(matches!(backup.to(), Endpoint::Enclave(_)));
}

#[test]
fn summaries_count_what_the_files_define() {
    let s = load("msp.toml").summary();
    assert_eq!(s.enclaves, 7, "six defined plus the implicit internet");
    assert_eq!(s.by_kind.iter().map(|(_, n)| n).sum::<usize>(), 7);
    assert_eq!(s.vlan_scoped, 2);
    assert_eq!(s.host_groups, 10);
    assert_eq!(s.relationships, 17);
    assert!(s.default_implicit);
    let text = s.to_string();
    assert!(
        text.contains("unknown addresses -> internet (external, implicit)"),
        "{text}"
    );
}

#[test]
fn a_minimal_file_gets_an_implicit_internet_and_default_settings() {
    let r = Rules::from_str(
        "[[enclaves]]\nname = \"lan\"\nkind = \"customer\"\nnetworks = [\"192.168.0.0/16\"]\n\n\
         [[relationships]]\nname = \"out\"\nfrom = \"lan\"\nto = \"internet\"\nservices = [\"any\"]\n",
        "mini.toml",
    )
    .unwrap();
    assert_eq!(r.enclaves().len(), 2);
    assert!(r.enclave(r.default_enclave()).is_implicit());
    assert_eq!(*r.detector(), rules::config::DetectorSettings::default());
    assert_eq!(r.locate(ip("8.8.8.8"), None).enclave, r.default_enclave());
}

#[test]
fn defaults_unknown_names_the_catch_all_enclave() {
    let r = Rules::from_str(
        "[defaults]\nunknown = \"corp\"\n\n[[enclaves]]\nname = \"corp\"\nkind = \"customer\"\nnetworks = []\n\n\
         [[enclaves]]\nname = \"dmz\"\nkind = \"external\"\nnetworks = [\"192.0.2.0/24\"]\n",
        "corp.toml",
    )
    .unwrap();
    assert_eq!(r.enclaves().len(), 2, "no implicit internet");
    assert_eq!(
        r.enclave(r.locate(ip("8.8.8.8"), None).enclave).name(),
        "corp"
    );
    assert_eq!(
        r.enclave(r.locate(ip("192.0.2.9"), None).enclave).name(),
        "dmz"
    );
}
