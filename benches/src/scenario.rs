//! A labelled scenario of a managed service provider (MSP) over several
//! days, for testing the detector end to end.
//!
//! The network: the provider's management enclave (jump hosts, a
//! monitoring server, a backup server and an administrator's workstation
//! that is *not* an approved jump host), shared services (a DNS resolver),
//! N customers (each with a gateway, a Windows server, a Linux server, a
//! file server and users; two customers may reuse the same private range on
//! different VLANs) and the internet.
//!
//! The period: a **learning** period of benign traffic only (monitoring polls
//! and pings, nightly backups in their window, maintenance RDP/SSH from the
//! jump hosts inside the weekday maintenance window, customers' web, DNS and
//! file-server use, an hourly update check from every customer server to an
//! internet host), then a **detection** period with the same benign traffic
//! plus injected episodes of each suspicious behaviour and allowed
//! look-alikes, every one labelled ([`Label`]) with where, when, and the
//! reason and ATT&CK technique the detector should give.
//!
//! Windows (maintenance, backups, business hours) are in the local time of
//! the customers, a fixed UTC offset ([`ScenarioConfig::tz_offset_minutes`]);
//! the rule file written with the scenario ([`Scenario::rules`]) states them
//! in that offset.
//!
//! Large transfers (backups, staging, exfiltration) are written the way a
//! capture with losses shows them: the handshake, a few hundred sampled data
//! segments spread over the transfer, acknowledgements of everything (so
//! the byte counts come from sequence numbers, as Zeek counts them), and the
//! close. A multi-gigabyte backup costs a few hundred packets, and packets
//! are stored cut to [`SNAPLEN`] bytes, so a multi-day capture stays at a few
//! megabytes.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use etherparse::{PacketBuilder, TcpOptionElement, VlanId};
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{LinkType, Timestamp};

use crate::rng::{mix, SplitMix64};
use crate::{Close, Conversation, TrafficMix};

/// Bytes of each packet stored in the captures (headers and a little payload).
pub const SNAPLEN: u32 = 96;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// One customer's network: a /16 and, when the range is shared with another
/// customer, the VLAN that tells them apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerNet {
    /// Enclave name in the rule file.
    pub name: String,
    /// First two octets of the customer's /16.
    pub net: [u8; 2],
    /// VLAN every frame of this customer carries (scopes the enclave).
    pub vlan: Option<u16>,
}

/// Where everything lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPlan {
    /// First two octets of the provider's management /16.
    pub provider: [u8; 2],
    /// First three octets of the shared-services /24.
    pub shared: [u8; 3],
    /// The customers (at least two).
    pub customers: Vec<CustomerNet>,
    /// Internet /24s (first three octets) for web servers, the update host
    /// and the attackers' hosts (at least one).
    pub internet: Vec<[u8; 3]>,
    /// Review extension: write every address as IPv6 (`a.b.c.d` becomes
    /// `fd00:a:b:c::d` inside, `2001:db8:a:b:c::d` on the internet; a /16
    /// becomes a /48, a /24 a /64).
    pub ipv6: bool,
}

impl AddressPlan {
    /// `n` customers on 10.20/16, 10.21/16, ...; the provider on 10.10/16,
    /// shared services on 10.40.0/24; the internet in documentation ranges.
    /// With `n >= 4` the last two customers share 10.50/16 on VLANs 110 and 120.
    pub fn ten_net(n: usize) -> AddressPlan {
        let mut customers: Vec<CustomerNet> = (0..n)
            .map(|i| CustomerNet {
                name: format!("cust-{}", (b'a' + i as u8) as char),
                net: [10, 20 + i as u8],
                vlan: None,
            })
            .collect();
        if n >= 4 {
            customers[n - 2].net = [10, 50];
            customers[n - 2].vlan = Some(110);
            customers[n - 1].net = [10, 50];
            customers[n - 1].vlan = Some(120);
        }
        AddressPlan {
            provider: [10, 10],
            shared: [10, 40, 0],
            customers,
            internet: vec![[192, 0, 2], [198, 51, 100], [203, 0, 113]],
            ipv6: false,
        }
    }

    /// `n` customers on 172.16/16, 172.17/16, ... except the first two,
    /// which both use 192.168/16 (VLANs 210 and 220); the provider on
    /// 172.31/16, shared services on 172.30.5/24; the internet in other
    /// public-looking ranges.
    pub fn mixed(n: usize) -> AddressPlan {
        let customers = (0..n)
            .map(|i| match i {
                0 | 1 => CustomerNet {
                    name: format!("tenant{}", i + 1),
                    net: [192, 168],
                    vlan: Some(210 + 10 * i as u16),
                },
                _ => CustomerNet {
                    name: format!("tenant{}", i + 1),
                    net: [172, 14 + i as u8],
                    vlan: None,
                },
            })
            .collect();
        AddressPlan {
            provider: [172, 31],
            shared: [172, 30, 5],
            customers,
            internet: vec![[45, 33, 12], [81, 2, 69], [185, 199, 108], [151, 101, 1]],
            ipv6: false,
        }
    }
}

/// Parameters of a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioConfig {
    /// Seed: the same config always gives the same captures.
    pub seed: u64,
    /// Unix time (seconds, UTC midnight) the learning period starts.
    pub start_day: i64,
    /// Days of benign learning traffic.
    pub learning_days: u32,
    /// Days of detection traffic after it.
    pub detection_days: u32,
    /// Networks.
    pub plan: AddressPlan,
    /// Offset of the customers' local time from UTC, in minutes (the time
    /// zone of the maintenance, backup and business-hours windows).
    pub tz_offset_minutes: i32,
    /// Weekday maintenance window, local hours `[start, end)`; `end <= start`
    /// runs past midnight.
    pub maintenance_hours: (u32, u32),
    /// Daily backup window, local hours.
    pub backup_hours: (u32, u32),
    /// Users' business hours, local.
    pub business_hours: (u32, u32),
    /// Monitoring poll interval.
    pub poll_interval_secs: u64,
    /// Typical nightly backup per file server (bytes; each night's is 50-100 % of it).
    pub backup_bytes: u64,
    /// Daily volume ceiling of each backup relationship.
    pub backup_ceiling: u64,
    /// Bytes the staging host pulls in total (then uploads about 80 % of).
    pub staging_bytes: u64,
    /// Mean period of the injected beacon (60-300 s).
    pub beacon_period_secs: u64,
    /// Web visits per customer per business hour.
    pub web_per_hour: u32,
    /// Review extension: an IANA time zone for the windows (with its DST
    /// rules) instead of the fixed `tz_offset_minutes`.
    pub tz_name: Option<String>,
    /// Review extension: the staging upload split into this many
    /// connections (1 = one upload).
    pub exfil_chunks: u32,
    /// Review extension: extra jump-host RDP episodes this many minutes
    /// before the maintenance window opens and after it closes (outside_window).
    pub rdp_near_window_mins: Option<u32>,
    /// Review extension: the beacon's jitter, percent of its period (+-).
    pub beacon_jitter_pct: u64,
}

impl ScenarioConfig {
    /// A small MSP: three days of learning from Monday 2026-03-02, two days
    /// of detection, `customers` customers on [`AddressPlan::ten_net`],
    /// maintenance 20:00-23:00 and backups 01:00-05:00 local at `tz_offset_minutes`.
    pub fn new(seed: u64, customers: usize, tz_offset_minutes: i32) -> ScenarioConfig {
        ScenarioConfig {
            seed,
            start_day: 1_772_409_600,
            learning_days: 3,
            detection_days: 2,
            plan: AddressPlan::ten_net(customers),
            tz_offset_minutes,
            maintenance_hours: (20, 23),
            backup_hours: (1, 5),
            business_hours: (8, 18),
            poll_interval_secs: 600,
            backup_bytes: 2_000_000_000,
            backup_ceiling: 5_000_000_000,
            staging_bytes: 600_000_000,
            beacon_period_secs: 120,
            web_per_hour: 4,
            tz_name: None,
            exfil_chunks: 1,
            rdp_near_window_mins: None,
            beacon_jitter_pct: 10,
        }
    }
}

/// One labelled piece of the detection period: an injected episode the
/// detector must alert on, or an allowed look-alike it must stay quiet on.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// Behaviour, e.g. `cross_customer`, `fan_out_hosts`, `backup_in_window`.
    pub kind: &'static str,
    /// What happens, for messages.
    pub description: String,
    /// True for an injected episode; false for an allowed look-alike.
    pub injected: bool,
    /// Originator.
    pub src: IpAddr,
    /// Responders (a scan has many).
    pub dsts: Vec<IpAddr>,
    /// Enclave names of the originator and responder (they disambiguate
    /// customers that share a range).
    pub src_enclave: String,
    /// See `src_enclave`.
    pub dst_enclave: String,
    /// `tcp`, `udp` or `icmp`.
    pub proto: &'static str,
    /// Responder ports; empty means any.
    pub ports: Vec<u16>,
    /// The reason the detector should give (injected episodes).
    pub reason: Option<&'static str>,
    /// The ATT&CK technique the alert should carry (injected episodes).
    pub technique: Option<&'static str>,
    /// Capture time of the first packet (Unix seconds).
    pub start: f64,
    /// Capture time of the last packet (Unix seconds).
    pub end: f64,
}

/// An address and the VLAN its frames carry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Host {
    ip: IpAddr,
    vlan: Option<u16>,
    /// Index into the enclave names (provider, shared, customers..., internet).
    enclave: usize,
}

/// A large TCP transfer written with sampled data segments.
#[derive(Clone, Debug)]
struct Bulk {
    client: Host,
    client_port: u16,
    server: Host,
    server_port: u16,
    start: Timestamp,
    duration: Duration,
    client_bytes: u64,
    server_bytes: u64,
}

/// Traffic of one capture.
#[derive(Default)]
struct Traffic {
    mix: TrafficMix,
    bulk: Vec<Bulk>,
}

/// A generated scenario: its traffic, rule file and labels.
pub struct Scenario {
    /// The parameters it was made from.
    pub config: ScenarioConfig,
    /// The rule file (TOML) describing the network and what is allowed.
    pub rules: String,
    /// The labelled episodes and look-alikes of the detection period.
    pub labels: Vec<Label>,
    learning: Traffic,
    detection: Traffic,
}

/// Where [`Scenario::write`] put the files.
#[derive(Clone, Debug)]
pub struct ScenarioFiles {
    /// The learning capture.
    pub learning: PathBuf,
    /// The detection capture.
    pub detection: PathBuf,
    /// The rule file.
    pub rules: PathBuf,
    /// Packets in each capture (learning, detection).
    pub packets: (u64, u64),
}

struct Gen<'a> {
    cfg: &'a ScenarioConfig,
    rng: SplitMix64,
    port: u16,
    enclaves: Vec<String>,
    learning: Traffic,
    detection: Traffic,
    labels: Vec<Label>,
    boundary: i64,
    end: i64,
    over_volume_night: i64,
}

fn v4(o: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(o))
}

/// An address of the plan: IPv4, or its IPv6 image when the plan is IPv6.
fn addr(plan: &AddressPlan, o: [u8; 4], internet: bool) -> IpAddr {
    if !plan.ipv6 {
        return v4(o);
    }
    let [a, b, c, d] = o.map(u16::from);
    IpAddr::V6(if internet {
        std::net::Ipv6Addr::new(0x2001, 0xdb8, a, b, c, 0, 0, d)
    } else {
        std::net::Ipv6Addr::new(0xfd00, a, b, c, 0, 0, 0, d)
    })
}

/// A network or host of the plan as the rule file writes it: `o` with its
/// first `octets` octets significant (2: a /16, 3: a /24, 4: a host).
fn net_text(plan: &AddressPlan, o: [u8; 4], octets: usize) -> String {
    if !plan.ipv6 {
        return match octets {
            2 => format!("{}.{}.0.0/16", o[0], o[1]),
            3 => format!("{}.{}.{}.0/24", o[0], o[1], o[2]),
            _ => format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]),
        };
    }
    match octets {
        2 => format!("fd00:{:x}:{:x}::/48", o[0], o[1]),
        3 => format!("fd00:{:x}:{:x}:{:x}::/64", o[0], o[1], o[2]),
        _ => format!("fd00:{:x}:{:x}:{:x}::{:x}", o[0], o[1], o[2], o[3]),
    }
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_micros(secs, 0)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn tag(c: Conversation, a: Host, b: Host) -> Conversation {
    match b.vlan.or(a.vlan) {
        Some(v) => c.vlan(v),
        None => c,
    }
}

/// Provider enclave index.
const PROVIDER: usize = 0;
/// Shared-services enclave index.
const SHARED: usize = 1;

impl<'a> Gen<'a> {
    fn new(cfg: &'a ScenarioConfig) -> Gen<'a> {
        let mut enclaves = vec!["provider-mgmt".to_owned(), "shared-services".to_owned()];
        enclaves.extend(cfg.plan.customers.iter().map(|c| c.name.clone()));
        enclaves.push("internet".to_owned());
        let boundary = cfg.start_day + i64::from(cfg.learning_days) * DAY;
        Gen {
            cfg,
            rng: SplitMix64::new(mix(cfg.seed ^ 0x5343_454e_4152_494f)),
            port: 49_152,
            enclaves,
            learning: Traffic::default(),
            detection: Traffic::default(),
            labels: Vec::new(),
            boundary,
            end: boundary + i64::from(cfg.detection_days) * DAY,
            over_volume_night: 0,
        }
    }

    fn internet_enclave(&self) -> usize {
        self.enclaves.len() - 1
    }

    fn eport(&mut self) -> u16 {
        self.port = if self.port >= 60_999 {
            49_152
        } else {
            self.port + 1
        };
        self.port
    }

    // --- hosts -------------------------------------------------------------

    fn provider(&self, c: u8, d: u8) -> Host {
        let [a, b] = self.cfg.plan.provider;
        Host {
            ip: addr(&self.cfg.plan, [a, b, c, d], false),
            vlan: None,
            enclave: PROVIDER,
        }
    }
    fn jump(&self, i: usize) -> Host {
        self.provider(1, 10 + i as u8)
    }
    fn monitoring(&self) -> Host {
        self.provider(2, 20)
    }
    fn backup(&self) -> Host {
        self.provider(3, 30)
    }
    /// An administrator's workstation: provider enclave, not a jump host.
    fn admin_workstation(&self) -> Host {
        self.provider(5, 50)
    }
    fn dns(&self) -> Host {
        let [a, b, c] = self.cfg.plan.shared;
        Host {
            ip: addr(&self.cfg.plan, [a, b, c, 53], false),
            vlan: None,
            enclave: SHARED,
        }
    }
    fn cust(&self, i: usize, c: u8, d: u8) -> Host {
        let n = &self.cfg.plan.customers[i];
        Host {
            ip: addr(&self.cfg.plan, [n.net[0], n.net[1], c, d], false),
            vlan: n.vlan,
            enclave: 2 + i,
        }
    }
    fn gateway(&self, i: usize) -> Host {
        self.cust(i, 0, 1)
    }
    fn win_server(&self, i: usize) -> Host {
        self.cust(i, 10, 5)
    }
    fn linux_server(&self, i: usize) -> Host {
        self.cust(i, 10, 6)
    }
    fn file_server(&self, i: usize) -> Host {
        self.cust(i, 10, 20)
    }
    fn user(&self, i: usize, k: u8) -> Host {
        self.cust(i, 30, 10 + k)
    }
    fn net(&self, k: usize, d: u8) -> Host {
        let nets = &self.cfg.plan.internet;
        let [a, b, c] = nets[k % nets.len()];
        Host {
            ip: addr(&self.cfg.plan, [a, b, c, d], true),
            vlan: None,
            enclave: self.internet_enclave(),
        }
    }
    fn update_host(&self) -> Host {
        self.net(0, 10)
    }
    fn web_host(&mut self) -> Host {
        let k = self.rng.below(self.cfg.plan.internet.len() as u64) as usize;
        let d = self.rng.range(100, 250) as u8;
        self.net(k, d)
    }

    // --- time --------------------------------------------------------------

    fn offset(&self) -> i64 {
        i64::from(self.cfg.tz_offset_minutes) * 60
    }

    /// UTC seconds of local time `h:m` on local day `d` (day 0 is the local
    /// date of `start_day`).
    fn local(&self, d: i64, h: i64, m: i64) -> i64 {
        let naive = self.cfg.start_day + d * DAY + h * HOUR + m * 60;
        if let Some(name) = &self.cfg.tz_name {
            use chrono::{Offset, TimeZone};
            let tz: chrono_tz::Tz = name.parse().expect("a known IANA zone");
            let utc = chrono::DateTime::from_timestamp(naive, 0)
                .expect("in range")
                .naive_utc();
            // A local time in a DST gap: the offset before the gap.
            let off = match tz.offset_from_local_datetime(&utc).earliest() {
                Some(o) => o.fix().local_minus_utc(),
                None => tz
                    .offset_from_utc_datetime(&(utc - chrono::Duration::hours(3)))
                    .fix()
                    .local_minus_utc(),
            };
            return naive - i64::from(off);
        }
        naive - self.offset()
    }

    /// Local weekday of local day `d` (0 = Monday).
    fn weekday(&self, d: i64) -> i64 {
        (self.cfg.start_day.div_euclid(DAY) + d + 3).rem_euclid(7)
    }

    fn window_len(h: (u32, u32)) -> i64 {
        let (s, e) = (i64::from(h.0), i64::from(h.1));
        if e > s {
            (e - s) * HOUR
        } else {
            (24 - s + e) * HOUR
        }
    }

    /// Local days whose windows may touch the whole period.
    fn days(&self) -> std::ops::Range<i64> {
        -1..i64::from(self.cfg.learning_days + self.cfg.detection_days) + 1
    }

    /// Local days of the detection period (whose noon falls in it).
    fn detection_days(&self) -> Vec<i64> {
        self.days()
            .filter(|&d| {
                let noon = self.local(d, 12, 0);
                noon >= self.boundary && noon < self.end
            })
            .collect()
    }

    fn in_period(&self, t: i64) -> bool {
        t >= self.cfg.start_day && t < self.end
    }

    // --- emitting ----------------------------------------------------------

    fn traffic(&mut self, t: Timestamp) -> &mut Traffic {
        if t.secs() < self.boundary {
            &mut self.learning
        } else {
            &mut self.detection
        }
    }

    fn add(&mut self, c: Conversation, a: Host, b: Host) {
        if !self.in_period(c.start.secs()) {
            return;
        }
        let c = tag(c, a, b);
        self.traffic(c.start).mix.push(c);
    }

    fn add_bulk(&mut self, b: Bulk) {
        if !self.in_period(b.start.secs()) {
            return;
        }
        self.traffic(b.start).bulk.push(b);
    }

    #[allow(clippy::too_many_arguments)]
    fn label(
        &mut self,
        kind: &'static str,
        description: String,
        injected: bool,
        src: Host,
        dsts: &[Host],
        proto: &'static str,
        ports: &[u16],
        expect: Option<(&'static str, &'static str)>,
        start: Timestamp,
        end: Timestamp,
    ) {
        // Review fix: traffic starting outside the capture is not written
        // (see `add`), so it gets no label either (windows far from UTC put
        // some of the last local day's episodes past the capture's end).
        if !self.in_period(start.secs()) {
            return;
        }
        self.labels.push(Label {
            kind,
            description,
            injected,
            src: src.ip,
            dsts: dsts.iter().map(|h| h.ip).collect(),
            src_enclave: self.enclaves[src.enclave].clone(),
            dst_enclave: self.enclaves[dsts[0].enclave].clone(),
            proto,
            ports: ports.to_vec(),
            reason: expect.map(|e| e.0),
            technique: expect.map(|e| e.1),
            start: start.as_secs_f64(),
            end: end.as_secs_f64(),
        });
    }

    /// A jump host's RDP session to `target` at `t0`, outside the
    /// maintenance window, labelled `kind` (expected: `outside_window`).
    fn rdp_outside_window(
        &mut self,
        kind: &'static str,
        description: String,
        jump: Host,
        target: Host,
        t0: Timestamp,
    ) {
        let (_, end) = self.session(jump, target, 3389, t0, (15_000, 50_000), 20, ms(1_500));
        self.label(
            kind,
            description,
            true,
            jump,
            &[target],
            "tcp",
            &[3389],
            Some(("outside_window", "T1199")),
            t0,
            end,
        );
    }

    /// A TCP session and its end time.
    #[allow(clippy::too_many_arguments)]
    fn session(
        &mut self,
        a: Host,
        b: Host,
        port: u16,
        t: Timestamp,
        bytes: (u64, u64),
        rounds: u32,
        spacing: Duration,
    ) -> (Conversation, Timestamp) {
        let c = Conversation::tcp(
            SocketAddr::new(a.ip, self.eport()),
            SocketAddr::new(b.ip, port),
            t,
        )
        .bytes(bytes.0, bytes.1)
        .rounds(rounds)
        .spacing(spacing);
        let end = c.expected().last_ts;
        self.add(c.clone(), a, b);
        (c, end)
    }

    fn bulk(
        &mut self,
        a: Host,
        b: Host,
        port: u16,
        t: Timestamp,
        duration: Duration,
        bytes: (u64, u64),
    ) -> Timestamp {
        let b = Bulk {
            client: a,
            client_port: self.eport(),
            server: b,
            server_port: port,
            start: t,
            duration,
            client_bytes: bytes.0,
            server_bytes: bytes.1,
        };
        self.add_bulk(b);
        t.plus(duration).plus(ms(10))
    }

    // --- benign traffic ----------------------------------------------------

    fn monitoring_polls(&mut self) {
        let nms = self.monitoring();
        let n = self.cfg.plan.customers.len();
        let step = self.cfg.poll_interval_secs.max(60) as i64;
        let mut t = self.cfg.start_day + 7;
        let mut slot = 0u16;
        while t < self.end {
            let mut k = 0u64;
            for i in 0..n {
                for target in [self.win_server(i), self.file_server(i)] {
                    let c = Conversation::udp(
                        SocketAddr::new(nms.ip, self.eport()),
                        SocketAddr::new(target.ip, 161),
                        ts(t).plus(ms(k * 150 + self.rng.below(40))),
                    )
                    .bytes(self.rng.range(43, 47), self.rng.range(95, 120))
                    .spacing(ms(3));
                    self.add(c, nms, target);
                    k += 1;
                }
                // Reachability: ping the gateway and the Windows server.
                for target in [self.gateway(i), self.win_server(i)] {
                    let c = Conversation::icmp_echo(
                        nms.ip,
                        target.ip,
                        0x0200 + slot,
                        ts(t).plus(ms(20_000 + k * 100 + self.rng.below(40))),
                    )
                    .spacing(ms(2));
                    self.add(c, nms, target);
                    k += 1;
                }
            }
            slot = slot.wrapping_add(1);
            t += step;
        }
        let mut targets = Vec::new();
        for i in 0..n {
            targets.extend([self.win_server(i), self.file_server(i)]);
        }
        let mut pinged = Vec::new();
        for i in 0..n {
            pinged.extend([self.gateway(i), self.win_server(i)]);
        }
        let (b, e) = (ts(self.boundary), ts(self.end));
        // One label per customer enclave, so shared ranges stay apart.
        for i in 0..n {
            let snmp: Vec<Host> = targets
                .iter()
                .copied()
                .filter(|h| h.enclave == 2 + i)
                .collect();
            let ping: Vec<Host> = pinged
                .iter()
                .copied()
                .filter(|h| h.enclave == 2 + i)
                .collect();
            self.label(
                "monitoring_polls",
                format!("SNMP polls of {} every {step} s", self.enclaves[2 + i]),
                false,
                nms,
                &snmp,
                "udp",
                &[161],
                None,
                b,
                e,
            );
            self.label(
                "monitoring_polls",
                format!("pings of {} every {step} s", self.enclaves[2 + i]),
                false,
                nms,
                &ping,
                "icmp",
                &[],
                None,
                b,
                e,
            );
        }
    }

    fn update_checks(&mut self) {
        let host = self.update_host();
        let n = self.cfg.plan.customers.len();
        for i in 0..n {
            let srv = self.win_server(i);
            let mut t = self.cfg.start_day + 60 * (3 + 7 * i as i64);
            while t < self.end {
                let start = ts(t).plus(ms(self.rng.below(4000)));
                let c = Conversation::tcp(
                    SocketAddr::new(srv.ip, self.eport()),
                    SocketAddr::new(host.ip, 443),
                    start,
                )
                .bytes(self.rng.range(610, 640), self.rng.range(3900, 3990))
                .spacing(ms(30));
                self.add(c, srv, host);
                t += HOUR;
            }
            self.label(
                "update_check",
                format!("hourly update check from {}", self.enclaves[2 + i]),
                false,
                srv,
                &[host],
                "tcp",
                &[443],
                None,
                ts(self.boundary),
                ts(self.end),
            );
        }
    }

    fn maintenance(&mut self) {
        let (ws, _) = self.cfg.maintenance_hours;
        let len = Self::window_len(self.cfg.maintenance_hours);
        let n = self.cfg.plan.customers.len();
        for d in self.days() {
            if self.weekday(d) >= 5 {
                continue;
            }
            let open = self.local(d, i64::from(ws), 0);
            for i in 0..n {
                let j = (d + i as i64).rem_euclid(2) as usize;
                // RDP to the Windows server, SSH to the Linux server, each
                // well inside the window.
                for (k, (target, port)) in [(self.win_server(i), 3389), (self.linux_server(i), 22)]
                    .into_iter()
                    .enumerate()
                {
                    let jump = self.jump((j + k) % 2);
                    let t0 = open + 300 + self.rng.below((len / 2) as u64) as i64;
                    let bytes = (
                        self.rng.range(8_000, 30_000),
                        self.rng.range(30_000, 120_000),
                    );
                    let rounds = self.rng.range(40, 80) as u32;
                    let spacing = ms(self.rng.range(3_000, 6_000));
                    let (_, end) = self.session(jump, target, port, ts(t0), bytes, rounds, spacing);
                    if t0 >= self.boundary && t0 < self.end {
                        self.label(
                            "maintenance_in_window",
                            format!("maintenance tcp/{port} from a jump host inside the window"),
                            false,
                            jump,
                            &[target],
                            "tcp",
                            &[port],
                            None,
                            ts(t0),
                            end,
                        );
                    }
                }
            }
        }
    }

    fn backups(&mut self, skip: Option<(i64, usize)>, large: Option<(i64, usize)>) {
        let (bs, _) = self.cfg.backup_hours;
        let n = self.cfg.plan.customers.len();
        let bk = self.backup();
        for d in self.days() {
            let open = self.local(d, i64::from(bs), 0);
            for i in 0..n {
                if skip == Some((d, i)) {
                    continue;
                }
                let files = self.file_server(i);
                let blen = Self::window_len(self.cfg.backup_hours);
                let (bytes, t0) = if large == Some((d, i)) {
                    // Large but under the ceiling, queued late in the window.
                    (self.cfg.backup_ceiling * 7 / 10, open + blen * 6 / 10)
                } else if large == Some((d - 1, i)) {
                    // The next night's backup of the same server, a full one,
                    // early in the window: both fall on one UTC day when the
                    // window straddles midnight UTC, not on one local day.
                    (self.cfg.backup_bytes, open + 300)
                } else {
                    let b = self.cfg.backup_bytes / 2 + self.rng.below(self.cfg.backup_bytes / 2);
                    (b, open + 120 + 600 * i as i64 + self.rng.below(900) as i64)
                };
                let dur = Duration::from_secs(900 + self.rng.below(1500));
                let end = self.bulk(bk, files, 445, ts(t0), dur, (40_000, bytes));
                if t0 >= self.boundary && t0 < self.end {
                    let kind = if large == Some((d, i)) {
                        "large_backup_in_window"
                    } else {
                        "backup_in_window"
                    };
                    self.label(
                        kind,
                        format!("backup of {bytes} bytes inside its window"),
                        false,
                        bk,
                        &[files],
                        "tcp",
                        &[445],
                        None,
                        ts(t0),
                        end,
                    );
                }
            }
        }
    }

    fn users(&mut self) {
        let (bh0, bh1) = self.cfg.business_hours;
        let n = self.cfg.plan.customers.len();
        let dns = self.dns();
        for d in self.days() {
            let weekend = self.weekday(d) >= 5;
            for i in 0..n {
                let files = self.file_server(i);
                for h in bh0..bh1 {
                    let visits = if weekend {
                        self.cfg.web_per_hour / 4
                    } else {
                        self.cfg.web_per_hour
                    };
                    for _ in 0..visits {
                        let k = self.rng.below(30) as u8;
                        let user = self.user(i, k);
                        let t0 = self.local(d, i64::from(h), 0) + self.rng.below(3600) as i64;
                        let q = Conversation::udp(
                            SocketAddr::new(user.ip, self.eport()),
                            SocketAddr::new(dns.ip, 53),
                            ts(t0),
                        )
                        .bytes(self.rng.range(30, 45), self.rng.range(80, 180))
                        .spacing(ms(self.rng.range(2, 12)));
                        self.add(q, user, dns);
                        let web = self.web_host();
                        let port = if self.rng.permille(150) { 80 } else { 443 };
                        let c = Conversation::tcp(
                            SocketAddr::new(user.ip, self.eport()),
                            SocketAddr::new(web.ip, port),
                            ts(t0).plus(ms(40)),
                        )
                        .bytes(self.rng.range(400, 2000), self.rng.range(1_500, 12_000))
                        .rounds(self.rng.range(1, 3) as u32)
                        .spacing(ms(self.rng.range(8, 40)))
                        .close(if self.rng.permille(50) {
                            Close::RstByClient
                        } else {
                            Close::Fin
                        });
                        self.add(c, user, web);
                    }
                    if !weekend && h % 2 == 0 {
                        // Opening documents on the file server.
                        let k = self.rng.below(30) as u8;
                        let user = self.user(i, k);
                        let t0 = self.local(d, i64::from(h), 0) + self.rng.below(3600) as i64;
                        let bytes = (self.rng.range(1_000, 4_000), self.rng.range(8_000, 60_000));
                        let rounds = self.rng.range(2, 6) as u32;
                        self.session(user, files, 445, ts(t0), bytes, rounds, ms(5));
                    }
                }
            }
        }
    }

    // --- injected episodes --------------------------------------------------

    /// The first detection day that is a weekday (else the first day).
    fn detection_weekday(&self, nth: usize) -> i64 {
        let days = self.detection_days();
        let weekdays: Vec<i64> = days
            .iter()
            .copied()
            .filter(|&d| self.weekday(d) < 5)
            .collect();
        weekdays
            .get(nth.min(weekdays.len().saturating_sub(1)))
            .copied()
            .unwrap_or(days[0])
    }

    fn episodes(&mut self) {
        let n = self.cfg.plan.customers.len();
        let days = self.detection_days();
        let (d0, d1) = (days[0], days[days.len().min(2) - 1]);
        let wd = self.detection_weekday(0);
        let (ms_h, _) = self.cfg.maintenance_hours;
        let mlen = Self::window_len(self.cfg.maintenance_hours);
        let (bs, _) = self.cfg.backup_hours;
        let blen = Self::window_len(self.cfg.backup_hours);

        // 1. Cloud Hopper: customer 0's Windows server into another customer
        //    over SMB and RDP (T1199 + T1021.002 / T1021.001). Customers that
        //    share customer 0's range are skipped: between them the same
        //    addresses on two VLANs cannot be routed without NAT.
        let from = 0;
        let to = (1..n)
            .find(|&i| self.cfg.plan.customers[i].net != self.cfg.plan.customers[0].net)
            .unwrap_or(1);
        let hopper = self.win_server(from);
        let t = ts(self.local(d0, 14, 20));
        for (target, port, wait) in [
            (self.file_server(to), 445, 0),
            (self.win_server(to), 3389, 300),
        ] {
            let t0 = t.plus(Duration::from_secs(wait));
            let (_, end) = self.session(hopper, target, port, t0, (12_000, 60_000), 10, ms(400));
            self.label(
                "cross_customer",
                format!(
                    "{} server into {} on tcp/{port}",
                    self.enclaves[2 + from],
                    self.enclaves[2 + to]
                ),
                true,
                hopper,
                &[target],
                "tcp",
                &[port],
                Some(("cross_customer", "T1199")),
                t0,
                end,
            );
        }

        // 2. RDP from a provider host outside the jump-host group, inside the
        //    maintenance window (T1199 + T1021.001).
        let c = 2 % n;
        let admin = self.admin_workstation();
        let target = self.win_server(c);
        let t0 = ts(self.local(wd, i64::from(ms_h), 0) + mlen / 2);
        let (_, end) = self.session(admin, target, 3389, t0, (20_000, 80_000), 30, ms(2_000));
        self.label(
            "unapproved_host",
            "RDP from the provider's admin workstation, not a jump host".to_owned(),
            true,
            admin,
            &[target],
            "tcp",
            &[3389],
            Some(("unapproved_host", "T1199")),
            t0,
            end,
        );

        // 3. A jump host's RDP outside the window: 03:30 local on a detection
        //    day, and inside the window's hours on a weekend day if there is one.
        let c = 1 % n;
        let jump = self.jump(1);
        let target = self.win_server(c);
        let mut off_hours = vec![ts(self.local(d1, 3, 30))];
        if let Some(&we) = days.iter().find(|&&d| self.weekday(d) >= 5) {
            off_hours.push(ts(self.local(we, i64::from(ms_h), 0) + 1800));
        }
        for t0 in off_hours {
            let text = "jump-host RDP outside the maintenance window".to_owned();
            self.rdp_outside_window("outside_window", text, jump, target, t0);
        }

        // 4. Scans from a compromised user of the last customer: tcp/445 on
        //    30 hosts of its network, then 60 ports on its file server (T1046).
        let c = n - 1;
        let scanner = self.user(c, 44);
        let t0 = ts(self.local(d1, 11, 15));
        let mut hosts = Vec::new();
        for h in 0..30u8 {
            let target = self.cust(c, 30, 100 + h);
            hosts.push(target);
            let conv = Conversation::tcp(
                SocketAddr::new(scanner.ip, 41_000 + u16::from(h)),
                SocketAddr::new(target.ip, 445),
                t0.plus(ms(u64::from(h) * 60)),
            )
            .close(if h % 4 == 0 {
                Close::Rejected
            } else {
                Close::NoAnswer
            })
            .syn_attempts(2)
            .spacing(ms(1));
            self.add(conv, scanner, target);
        }
        self.label(
            "fan_out_hosts",
            "tcp/445 sweep of 30 hosts".to_owned(),
            true,
            scanner,
            &hosts,
            "tcp",
            &[445],
            Some(("fan_out", "T1046")),
            t0,
            t0.plus(Duration::from_secs(10)),
        );
        let scan_ports = [
            21u16, 22, 23, 25, 53, 80, 81, 88, 110, 111, 135, 139, 143, 389, 443, 445, 465, 587,
            636, 993, 995, 1080, 1433, 1521, 1723, 2049, 2375, 3000, 3128, 3306, 3389, 4444, 5000,
            5432, 5601, 5900, 5985, 5986, 6379, 7001, 8000, 8008, 8080, 8081, 8443, 8888, 9000,
            9090, 9200, 9300, 10000, 11211, 27017, 50000, 50070, 6443, 2379, 9092, 15672, 49152,
        ];
        let target = self.file_server(c);
        let t1 = t0.plus(Duration::from_secs(600));
        for (k, &port) in scan_ports.iter().enumerate() {
            let conv = Conversation::tcp(
                SocketAddr::new(scanner.ip, 42_000 + k as u16),
                SocketAddr::new(target.ip, port),
                t1.plus(ms(k as u64 * 35)),
            )
            .close(if k % 3 == 0 {
                Close::NoAnswer
            } else {
                Close::Rejected
            })
            .syn_attempts(1)
            .spacing(ms(1));
            self.add(conv, scanner, target);
        }
        self.label(
            "fan_out_ports",
            "60-port scan of one file server".to_owned(),
            true,
            scanner,
            &[target],
            "tcp",
            &scan_ports,
            Some(("fan_out", "T1046")),
            t1,
            t1.plus(Duration::from_secs(10)),
        );

        // 5. A beacon from a user of customer 1 to a new internet host:
        //    small, regular, the configured period with +-10 % jitter (T1071).
        let implant = self.user(1 % n, 77);
        let c2 = self.net(self.cfg.plan.internet.len() - 1, 66);
        let period = self.cfg.beacon_period_secs.clamp(5, 86_400);
        let count = (4 * 3600 / period).max(40);
        let first = ts(self.local(d0, 9, 0));
        let mut t = first;
        let mut last = first;
        for _ in 0..count {
            let conv = Conversation::tcp(
                SocketAddr::new(implant.ip, self.eport()),
                SocketAddr::new(c2.ip, 443),
                t,
            )
            .bytes(300 + self.rng.below(12), 170 + self.rng.below(12))
            .spacing(ms(45));
            last = conv.expected().last_ts;
            self.add(conv, implant, c2);
            let j = self.cfg.beacon_jitter_pct.min(90);
            let jitter = self.rng.below(period * 20 * j) as i64 - (period * 10 * j) as i64;
            t = Timestamp(t.0 + (period as i64 * 1000 + jitter) * 1_000_000);
        }
        self.label(
            "beacon",
            format!("beacon every {period} s +-{} %", self.cfg.beacon_jitter_pct),
            true,
            implant,
            &[c2],
            "tcp",
            &[443],
            Some(("beacon", "T1071")),
            first,
            last,
        );

        // 6. Staging: a user of customer 0 pulls large volumes over SMB from
        //    three internal hosts, then uploads a comparable amount (T1074).
        let c = 0;
        let stager = self.user(c, 99);
        let mut t = ts(self.local(d1, 21, 10));
        let share = self.cfg.staging_bytes / 3;
        for src in [
            self.file_server(c),
            self.win_server(c),
            self.linux_server(c),
        ] {
            t = self.bulk(
                stager,
                src,
                445,
                t,
                Duration::from_secs(600),
                (30_000, share),
            );
            t = t.plus(Duration::from_secs(120));
        }
        let drop = self.net(1, 99);
        let t0 = t.plus(Duration::from_secs(900));
        let up = self.cfg.staging_bytes * 4 / 5;
        let chunks = u64::from(self.cfg.exfil_chunks.max(1));
        let mut end = t0;
        for k in 0..chunks {
            // Back to back, as one 20-minute upload would be.
            let at = t0.plus(Duration::from_secs(k * (1200 / chunks + 60)));
            end = self.bulk(
                stager,
                drop,
                443,
                at,
                Duration::from_secs(1200 / chunks),
                (up / chunks, 20_000),
            );
        }
        self.label(
            "staging",
            format!(
                "pulled {} bytes from 3 hosts, then uploaded {up}",
                share * 3
            ),
            true,
            stager,
            &[drop],
            "tcp",
            &[443],
            Some(("staging", "T1074")),
            t0,
            end,
        );

        // 7. A backup above its relationship's daily ceiling, in its window
        //    (T1048), replacing that night's ordinary backup of customer 1.
        let c = 1 % n;
        let night = self.over_volume_night;
        let bk = self.backup();
        let files = self.file_server(c);
        let t0 = ts(self.local(night, i64::from(bs), 0) + 300);
        let big = self.cfg.backup_ceiling + self.cfg.backup_ceiling / 3;
        let end = self.bulk(
            bk,
            files,
            445,
            t0,
            Duration::from_secs((blen / 2) as u64),
            (60_000, big),
        );
        self.label(
            "over_volume",
            format!("backup of {big} bytes, ceiling {}", self.cfg.backup_ceiling),
            true,
            bk,
            &[files],
            "tcp",
            &[445],
            Some(("over_volume", "T1048")),
            t0,
            end,
        );

        // Review extension: jump-host RDP a few minutes before the
        // maintenance window opens and after it closes, on a weekday.
        if let Some(mins) = self.cfg.rdp_near_window_mins {
            let c = 0;
            let jump = self.jump(0);
            let target = self.win_server(c);
            let wd2 = self.detection_weekday(1);
            let open = self.local(wd2, i64::from(ms_h), 0);
            for t0 in [
                open - 60 * i64::from(mins),
                open + mlen + 60 * i64::from(mins),
            ] {
                let text = format!("jump-host RDP {mins} min outside the maintenance window");
                self.rdp_outside_window("outside_window_near", text, jump, target, ts(t0));
            }
        }

        // 8. A very long session across the boundary: a jump host's RDP
        //    session opened inside the window and left running for 10 hours.
        let c = 0;
        let jump = self.jump(0);
        let target = self.win_server(c);
        let t0 = ts(self.local(wd, i64::from(ms_h), 0) + 600);
        let (_, end) = self.session(
            jump,
            target,
            3389,
            t0,
            (200_000, 900_000),
            1_200,
            ms(15_000),
        );
        self.label(
            "long_session",
            "jump-host RDP session running 10 hours".to_owned(),
            true,
            jump,
            &[target],
            "tcp",
            &[3389],
            Some(("long_session", "T1021.001")),
            t0,
            end,
        );

        // 9. A new service on a known pair: the monitoring server, which only
        //    ever polled SNMP, opens WinRM to a customer server (T1199).
        let c = 2 % n;
        let nms = self.monitoring();
        let target = self.win_server(c);
        let t0 = ts(self.local(d0, 15, 40));
        let (_, end) = self.session(nms, target, 5985, t0, (6_000, 9_000), 4, ms(200));
        self.label(
            "new_service",
            "monitoring server opens WinRM to a server it only polled".to_owned(),
            true,
            nms,
            &[target],
            "tcp",
            &[5985],
            Some(("new_service", "T1199")),
            t0,
            end,
        );
    }
}

impl Scenario {
    /// Generates the scenario (no files yet).
    pub fn generate(cfg: &ScenarioConfig) -> Scenario {
        assert!(
            cfg.plan.customers.len() >= 2,
            "a scenario needs two customers"
        );
        assert!(cfg.learning_days >= 1 && cfg.detection_days >= 1);
        let mut g = Gen::new(cfg);
        let n = cfg.plan.customers.len();
        // Nights whose backup window opens inside the detection period: the
        // first holds the large look-alike, the last the over-volume backup.
        let blen = Gen::window_len(cfg.backup_hours);
        let nights: Vec<i64> = g
            .days()
            .filter(|&d| {
                let open = g.local(d, i64::from(cfg.backup_hours.0), 0);
                open >= g.boundary && open + blen < g.end
            })
            .collect();
        let (first_night, last_night) = (nights[0], nights[nights.len() - 1]);
        g.over_volume_night = last_night;
        g.monitoring_polls();
        g.update_checks();
        g.maintenance();
        // The over-volume backup replaces customer 1's ordinary backup on the
        // second detection night; customer 0's backup on the first is large
        // but under its ceiling.
        g.backups(Some((last_night, 1 % n)), Some((first_night, 0)));
        g.users();
        g.episodes();
        let rules = rules_text(cfg, &g.enclaves);
        Scenario {
            config: cfg.clone(),
            rules,
            labels: g.labels,
            learning: g.learning,
            detection: g.detection,
        }
    }

    /// Writes `learning.pcap`, `detection.pcap` and `rules.toml` into `dir`.
    pub fn write(&mut self, dir: &Path) -> io::Result<ScenarioFiles> {
        std::fs::create_dir_all(dir)?;
        let files = ScenarioFiles {
            learning: dir.join("learning.pcap"),
            detection: dir.join("detection.pcap"),
            rules: dir.join("rules.toml"),
            packets: (0, 0),
        };
        std::fs::write(&files.rules, &self.rules)?;
        let a = write_capture(&mut self.learning, &files.learning)?;
        let b = write_capture(&mut self.detection, &files.detection)?;
        Ok(ScenarioFiles {
            packets: (a, b),
            ..files
        })
    }
}

fn write_capture(t: &mut Traffic, path: &Path) -> io::Result<u64> {
    let mut bulk: Vec<(Timestamp, Vec<u8>)> = t.bulk.iter().flat_map(bulk_frames).collect();
    bulk.sort_by_key(|f| f.0);
    let mut bulk = bulk.into_iter().peekable();
    let file = BufWriter::new(std::fs::File::create(path)?);
    let mut w = PcapWriter::new(file, Resolution::Micros, SNAPLEN, LinkType::ETHERNET)?;
    let mut frames = t.mix.frames();
    let mut buf = Vec::new();
    let mut next = frames.next_into(&mut buf);
    loop {
        let take_bulk = match (next, bulk.peek()) {
            (None, None) => break,
            (Some(a), Some(b)) => b.0 < a,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        if take_bulk {
            if let Some((ts, f)) = bulk.next() {
                w.write_packet(ts, &f, f.len() as u32)?;
            }
        } else if let Some(ts) = next {
            w.write_packet(ts, &buf, buf.len() as u32)?;
            next = frames.next_into(&mut buf);
        }
    }
    let n = w.packets();
    w.into_inner()?.flush()?;
    Ok(n)
}

fn mac(ip: IpAddr) -> [u8; 6] {
    let h = match ip {
        IpAddr::V4(a) => mix(u64::from(u32::from(a))),
        IpAddr::V6(a) => mix(u128::from(a) as u64),
    }
    .to_be_bytes();
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const MSS: u64 = 1460;

/// One TCP frame of a bulk transfer.
fn tcp_frame(b: &Bulk, from_client: bool, flags: u8, seq: u32, ack: u32, len: u64) -> Vec<u8> {
    let (src, sport, dst, dport) = if from_client {
        (b.client.ip, b.client_port, b.server.ip, b.server_port)
    } else {
        (b.server.ip, b.server_port, b.client.ip, b.client_port)
    };
    let eth = PacketBuilder::ethernet2(mac(src), mac(dst));
    let vlan = b
        .server
        .vlan
        .or(b.client.vlan)
        .and_then(|v| VlanId::try_new(v).ok());
    let ttl = if from_client { 64 } else { 57 };
    let ip = match (src, dst, vlan) {
        (IpAddr::V4(s), IpAddr::V4(d), Some(v)) => {
            eth.single_vlan(v).ipv4(s.octets(), d.octets(), ttl)
        }
        (IpAddr::V4(s), IpAddr::V4(d), None) => eth.ipv4(s.octets(), d.octets(), ttl),
        (IpAddr::V6(s), IpAddr::V6(d), Some(v)) => {
            eth.single_vlan(v).ipv6(s.octets(), d.octets(), ttl)
        }
        (IpAddr::V6(s), IpAddr::V6(d), None) => eth.ipv6(s.octets(), d.octets(), ttl),
        _ => unreachable!("both ends of one family"),
    };
    let mut t = ip.tcp(sport, dport, seq, 64_240);
    if flags & SYN != 0 {
        t = t.syn();
    }
    if flags & FIN != 0 {
        t = t.fin();
    }
    if flags & PSH != 0 {
        t = t.psh();
    }
    if flags & ACK != 0 {
        t = t.ack(ack);
    }
    if flags & SYN != 0 {
        t = t
            .options(&[TcpOptionElement::MaximumSegmentSize(MSS as u16)])
            .expect("an MSS option fits");
    }
    let payload = vec![b'x'; len as usize];
    let mut out = Vec::with_capacity(len as usize + 64);
    if let Err(e) = t.write(&mut out, &payload) {
        unreachable!("building a bulk frame failed: {e}");
    }
    out
}

/// Frames of a bulk transfer: handshake, the client's data, the server's
/// data (each sampled to at most a few hundred segments, every one
/// acknowledged up to its end), FIN from both sides.
fn bulk_frames(b: &Bulk) -> Vec<(Timestamp, Vec<u8>)> {
    const MAX_SAMPLES: u64 = 150;
    let mut out = Vec::new();
    let seed = mix(b.start.0 as u64 ^ u64::from(b.client_port));
    let isn = [(seed >> 32) as u32, seed as u32];
    let mut next = [isn[0].wrapping_add(1), isn[1].wrapping_add(1)];
    let rtt = ms(2);
    let mut t = b.start;
    out.push((t, tcp_frame(b, true, SYN, isn[0], 0, 0)));
    t = t.plus(rtt);
    out.push((t, tcp_frame(b, false, SYN | ACK, isn[1], next[0], 0)));
    t = t.plus(rtt);
    out.push((t, tcp_frame(b, true, ACK, next[0], next[1], 0)));
    let phases = [(true, b.client_bytes), (false, b.server_bytes)];
    let total_segments: u64 = phases
        .iter()
        .map(|p| p.1.div_ceil(MSS).clamp(1, MAX_SAMPLES))
        .sum();
    let step = b.duration / (2 * total_segments as u32 + 4);
    for (from_client, bytes) in phases {
        if bytes == 0 {
            continue;
        }
        let me = usize::from(!from_client);
        let segments = bytes.div_ceil(MSS);
        let samples = segments.min(MAX_SAMPLES);
        for k in 0..samples {
            // Segment index: every one when few, else spread evenly with
            // the first and the last always included.
            let seg = if samples == segments || samples == 1 {
                k
            } else {
                k * (segments - 1) / (samples - 1)
            };
            let off = seg * MSS;
            let len = (bytes - off).min(MSS);
            let seq = next[me].wrapping_add(off as u32);
            let flags = if off + len == bytes { ACK | PSH } else { ACK };
            t = t.plus(step);
            out.push((t, tcp_frame(b, from_client, flags, seq, next[1 - me], len)));
            t = t.plus(step);
            let acked = next[me].wrapping_add((off + len) as u32);
            out.push((t, tcp_frame(b, !from_client, ACK, next[1 - me], acked, 0)));
        }
        next[me] = next[me].wrapping_add(bytes as u32);
    }
    t = t.plus(step);
    out.push((t, tcp_frame(b, true, FIN | ACK, next[0], next[1], 0)));
    t = t.plus(rtt);
    out.push((
        t,
        tcp_frame(b, false, FIN | ACK, next[1], next[0].wrapping_add(1), 0),
    ));
    t = t.plus(rtt);
    out.push((
        t,
        tcp_frame(
            b,
            true,
            ACK,
            next[0].wrapping_add(1),
            next[1].wrapping_add(1),
            0,
        ),
    ));
    out
}

fn hhmm(h: u32) -> String {
    format!("{:02}:00", h % 24)
}

fn tz_name(minutes: i32) -> String {
    if minutes == 0 {
        "UTC".to_owned()
    } else {
        let sign = if minutes < 0 { '-' } else { '+' };
        let m = minutes.unsigned_abs();
        format!("{sign}{:02}:{:02}", m / 60, m % 60)
    }
}

/// The rule file of a scenario, in the format of `rules/examples/demo.toml`.
fn rules_text(cfg: &ScenarioConfig, enclaves: &[String]) -> String {
    let p = &cfg.plan;
    let tz = cfg
        .tz_name
        .clone()
        .unwrap_or_else(|| tz_name(cfg.tz_offset_minutes));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Generated by flowbench::scenario (seed {}): an MSP, {} customers.\n\
         version = 1\n\n[defaults]\nunknown = \"internet\"\ntz = \"{tz}\"\n",
        cfg.seed,
        p.customers.len()
    );
    let _ = writeln!(
        s,
        "[[enclaves]]\nname = \"internet\"\nkind = \"external\"\nnetworks = []\n"
    );
    let [a, b] = p.provider;
    let _ = writeln!(
        s,
        "[[enclaves]]\nname = \"{}\"\nkind = \"provider\"\nnetworks = [\"{}\"]\n",
        enclaves[PROVIDER],
        net_text(p, [a, b, 0, 0], 2)
    );
    let [x, y, z] = p.shared;
    let _ = writeln!(
        s,
        "[[enclaves]]\nname = \"{}\"\nkind = \"provider\"\nnetworks = [\"{}\"]\n",
        enclaves[SHARED],
        net_text(p, [x, y, z, 0], 3)
    );
    for c in &p.customers {
        let [a, b] = c.net;
        let _ = writeln!(
            s,
            "[[enclaves]]\nname = \"{}\"\nkind = \"customer\"\nnetworks = [\"{}\"]",
            c.name,
            net_text(p, [a, b, 0, 0], 2)
        );
        if let Some(v) = c.vlan {
            let _ = writeln!(s, "vlans = [{v}]");
        }
        s.push('\n');
    }
    let [a, b] = p.provider;
    for (name, hosts) in [
        (
            "jump-hosts",
            format!(
                "\"{}\", \"{}\"",
                net_text(p, [a, b, 1, 10], 4),
                net_text(p, [a, b, 1, 11], 4)
            ),
        ),
        (
            "monitoring",
            format!("\"{}\"", net_text(p, [a, b, 2, 20], 4)),
        ),
        ("backup", format!("\"{}\"", net_text(p, [a, b, 3, 30], 4))),
    ] {
        let _ = writeln!(
            s,
            "[[host_groups]]\nname = \"{name}\"\nenclave = \"{}\"\nhosts = [{hosts}]\n",
            enclaves[PROVIDER]
        );
    }
    let _ = writeln!(
        s,
        "[[host_groups]]\nname = \"dns-resolvers\"\nenclave = \"{}\"\nhosts = [\"{}\"]\n",
        enclaves[SHARED],
        net_text(p, [x, y, z, 53], 4)
    );
    for c in &p.customers {
        let [a, b] = c.net;
        let _ = writeln!(
            s,
            "[[host_groups]]\nname = \"{n}-servers\"\nenclave = \"{n}\"\nhosts = [\"{}\"]\n\n\
             [[host_groups]]\nname = \"{n}-file-servers\"\nenclave = \"{n}\"\nhosts = [\"{}\"]\n",
            net_text(p, [a, b, 10, 0], 3),
            net_text(p, [a, b, 10, 20], 4),
            n = c.name
        );
    }
    let (m0, m1) = cfg.maintenance_hours;
    let (b0, b1) = cfg.backup_hours;
    let ceiling = cfg.backup_ceiling;
    for c in &p.customers {
        let n = &c.name;
        let _ = writeln!(
            s,
            "[[relationships]]\nname = \"maintenance-{n}\"\nfrom = \"jump-hosts\"\nto = \"{n}-servers\"\n\
             services = [\"tcp/3389\", \"tcp/22\"]\n\
             windows = [{{ days = \"weekdays\", start = \"{}\", end = \"{}\" }}]\n\n\
             [[relationships]]\nname = \"monitoring-{n}\"\nfrom = \"monitoring\"\nto = \"{n}\"\n\
             services = [\"udp/161\", \"icmp\"]\n\n\
             [[relationships]]\nname = \"backup-{n}\"\nfrom = \"backup\"\nto = \"{n}-file-servers\"\n\
             services = [\"tcp/445\"]\n\
             windows = [{{ days = \"daily\", start = \"{}\", end = \"{}\" }}]\n\
             max_bytes_per_day = {ceiling}\n\n\
             [[relationships]]\nname = \"dns-{n}\"\nfrom = \"{n}\"\nto = \"dns-resolvers\"\n\
             services = [\"udp/53\", \"tcp/53\"]\n\n\
             [[relationships]]\nname = \"web-{n}\"\nfrom = \"{n}\"\nto = \"internet\"\n\
             services = [\"tcp/80\", \"tcp/443\"]\n",
            hhmm(m0),
            hhmm(m1),
            hhmm(b0),
            hhmm(b1),
        );
    }
    s
}
