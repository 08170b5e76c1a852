//! Writes the bundled demo capture: a day in the life of a managed service
//! provider (MSP) and two of its customers, with a few suspicious stories
//! hidden in ordinary traffic.
//!
//! ```text
//! cargo run -p flowbench --example make_demo_capture -- demo/msp-demo.pcap
//! ```
//!
//! Address plan (all private or documentation ranges):
//! - provider management enclave 10.10.0.0/16: jump hosts 10.10.1.10-11,
//!   monitoring 10.10.2.20, backup server 10.10.3.30
//! - customer A 10.20.0.0/16 (servers 10.20.10.x, users 10.20.30.x)
//! - customer B 10.30.0.0/16 (servers 10.30.10.x, users 10.30.30.x), on
//!   802.1Q VLAN 30
//! - shared services 10.40.0.0/24 (DNS resolver 10.40.0.53)
//! - internet: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32
//!
//! The day starts 2026-03-02 08:00 UTC and runs 24 hours. The agreed
//! maintenance window is 20:00-22:00 UTC.
//!
//! Stories to find:
//! 1. Cloud Hopper: customer A server 10.20.10.5 (reached through the
//!    provider) opens SMB and RDP into customer B at 14:20.
//! 2. Off-hours RDP from jump host 10.10.1.11 to 10.20.10.5 at 03:00.
//! 3. Scan: 10.20.30.44 sends SYNs to 60 ports on 10.30.10.9 and to tcp/445
//!    on 24 customer B hosts at 11:15 (REJ and S0).
//! 4. Beacon: 10.20.30.77 calls 203.0.113.66:443 every 60 s (±1 s), 12:00-13:00.
//! 5. Staging then exfiltration: 10.20.30.77 pulls 120 kB over SMB from
//!    10.20.10.20 at 23:10, then uploads 150 kB to 198.51.100.99:443 at 23:40.

use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use flowbench::{Close, Conversation, SplitMix64, TrafficMix};
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{LinkType, Timestamp};

/// 2026-03-02 08:00:00 UTC.
const DAY_START: i64 = 1_772_438_400;

/// Capture time `h:m:s` UTC on the demo day (hours past 23 roll into the next
/// day, so 27:00 is 03:00 on 2026-03-03).
fn at(h: i64, m: i64, s: i64) -> Timestamp {
    let since_midnight = h * 3600 + m * 60 + s;
    Timestamp::from_micros(DAY_START - 8 * 3600 + since_midnight, 0)
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn sock(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Next ephemeral port, deterministic.
struct Ports(u16);

impl Ports {
    fn next(&mut self) -> u16 {
        self.0 = if self.0 >= 60_999 { 49_152 } else { self.0 + 1 };
        self.0
    }
}

/// Customer B lives on VLAN 30: tag everything a 10.30/16 host originates or
/// receives, except the cross-customer traffic routed in from customer A.
fn tag(c: Conversation) -> Conversation {
    let in_b = |ip: IpAddr| matches!(ip, IpAddr::V4(a) if a.octets()[..2] == [10, 30]);
    if in_b(c.client.ip()) {
        c.vlan(30)
    } else {
        c
    }
}

fn build() -> TrafficMix {
    let mut r = SplitMix64::new(0x4d53_5044_454d_4f21);
    let mut ports = Ports(49_200);
    let mut mix = TrafficMix::new();
    let add = |mix: &mut TrafficMix, c: Conversation| mix.push(tag(c));

    let jump1 = v4(10, 10, 1, 10);
    let jump2 = v4(10, 10, 1, 11);
    let nms = v4(10, 10, 2, 20);
    let backup = v4(10, 10, 3, 30);
    let dns = v4(10, 40, 0, 53);
    let a_srv = v4(10, 20, 10, 5);
    let a_files = v4(10, 20, 10, 20);
    let b_srv = v4(10, 30, 10, 5);
    let b_ssh = v4(10, 30, 10, 7);
    let b_files = v4(10, 30, 10, 20);
    let b_scanned = v4(10, 30, 10, 9);
    let internet = |r: &mut SplitMix64| -> IpAddr {
        match r.below(3) {
            0 => v4(192, 0, 2, 1 + r.below(250) as u8),
            1 => v4(198, 51, 100, 1 + r.below(250) as u8),
            _ => v4(203, 0, 113, 1 + r.below(60) as u8),
        }
    };

    // Business hours: users browse the web (after a DNS lookup), 08:00-18:00.
    for i in 0..110 {
        let user = if i % 3 == 2 {
            v4(10, 30, 30, 10 + r.below(40) as u8)
        } else {
            v4(10, 20, 30, 10 + r.below(60) as u8)
        };
        let t = at(8, 0, 0).plus(Duration::from_secs(r.below(10 * 3600)));
        let server = internet(&mut r);
        add(
            &mut mix,
            Conversation::udp(sock(user, ports.next()), sock(dns, 53), t)
                .bytes(r.range(30, 45), r.range(80, 180))
                .spacing(ms(r.range(2, 12))),
        );
        let close = match r.below(20) {
            0 => Close::RstByClient,
            1 => Close::RstByServer,
            _ => Close::Fin,
        };
        let port = if r.permille(150) { 80 } else { 443 };
        add(
            &mut mix,
            Conversation::tcp(sock(user, ports.next()), sock(server, port), t.plus(ms(30)))
                .bytes(r.range(400, 1800), r.range(1200, 5000))
                .rounds(r.range(1, 3) as u32)
                .spacing(ms(r.range(8, 40)))
                .close(close),
        );
    }
    // Some IPv6 browsing from customer A.
    for i in 0..20u16 {
        let user = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0x30, 0, 0, 0, 0x10 + i));
        let server = IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xffff,
            0,
            0,
            0,
            0,
            1 + r.below(9) as u16,
        ));
        let t = at(9, 0, 0).plus(Duration::from_secs(r.below(8 * 3600)));
        add(
            &mut mix,
            Conversation::tcp(sock(user, ports.next()), sock(server, 443), t)
                .bytes(r.range(400, 1500), r.range(1200, 5000))
                .spacing(ms(r.range(10, 40))),
        );
    }

    // Monitoring from the provider, all day: SNMP polls every 30 min, pings hourly.
    let monitored = [a_srv, a_files, b_srv, b_files];
    for slot in 0..48 {
        let t = at(8, 0, 0).plus(Duration::from_secs(slot * 1800));
        for (k, &target) in monitored.iter().enumerate() {
            add(
                &mut mix,
                Conversation::udp(
                    sock(nms, ports.next()),
                    sock(target, 161),
                    t.plus(ms(k as u64 * 200)),
                )
                .bytes(r.range(43, 48), r.range(90, 125))
                .spacing(ms(3)),
            );
        }
        if slot % 2 == 0 {
            for (k, gw) in [v4(10, 20, 0, 1), v4(10, 30, 0, 1)].into_iter().enumerate() {
                add(
                    &mut mix,
                    Conversation::icmp_echo(
                        nms,
                        gw,
                        0x0100 + slot as u16,
                        t.plus(ms(900 + k as u64 * 50)),
                    )
                    .spacing(ms(2)),
                );
            }
        }
    }

    // Maintenance window 20:00-22:00: RDP to customer A, SSH to customer B.
    add(
        &mut mix,
        Conversation::tcp(sock(jump1, ports.next()), sock(a_srv, 3389), at(20, 5, 0))
            .bytes(25_000, 80_000)
            .rounds(30)
            .spacing(ms(900)),
    );
    add(
        &mut mix,
        Conversation::tcp(sock(jump2, ports.next()), sock(b_ssh, 22), at(20, 40, 0))
            .bytes(8_000, 30_000)
            .rounds(25)
            .spacing(ms(1500)),
    );

    // Nightly backups at 01:00: the provider's backup server pulls over SMB.
    for (k, files) in [a_files, b_files].into_iter().enumerate() {
        add(
            &mut mix,
            Conversation::tcp(
                sock(backup, ports.next()),
                sock(files, 445),
                at(25, k as i64 * 20, 0),
            )
            .bytes(5_000, 150_000)
            .rounds(8)
            .spacing(ms(2)),
        );
    }

    // Story 1, Cloud Hopper: customer A server into customer B over SMB and RDP.
    add(
        &mut mix,
        Conversation::tcp(sock(a_srv, ports.next()), sock(b_files, 445), at(14, 20, 0))
            .bytes(6_000, 40_000)
            .rounds(6)
            .spacing(ms(15)),
    );
    add(
        &mut mix,
        Conversation::tcp(sock(a_srv, ports.next()), sock(b_srv, 3389), at(14, 24, 30))
            .bytes(12_000, 40_000)
            .rounds(15)
            .spacing(ms(400)),
    );

    // Story 2, off-hours RDP at 03:00 from an approved jump host.
    add(
        &mut mix,
        Conversation::tcp(sock(jump2, ports.next()), sock(a_srv, 3389), at(27, 0, 0))
            .bytes(10_000, 30_000)
            .rounds(12)
            .spacing(ms(700)),
    );

    // Story 3, scan: many ports on one host, then tcp/445 across a subnet.
    let scanner = v4(10, 20, 30, 44);
    let scan_ports = [
        21u16, 22, 23, 25, 53, 80, 81, 88, 110, 111, 135, 139, 143, 389, 443, 445, 465, 587, 636,
        993, 995, 1080, 1433, 1521, 1723, 2049, 2375, 3000, 3128, 3306, 3389, 4444, 5000, 5432,
        5601, 5900, 5985, 5986, 6379, 7001, 8000, 8008, 8080, 8081, 8443, 8888, 9000, 9090, 9200,
        9300, 10000, 11211, 27017, 50000, 50070, 6443, 2379, 9092, 15672, 49152,
    ];
    let t = at(11, 15, 0);
    for (k, &port) in scan_ports.iter().enumerate() {
        let close = if matches!(port, 22 | 80 | 443 | 3389) || k % 3 != 0 {
            Close::Rejected
        } else {
            Close::NoAnswer
        };
        add(
            &mut mix,
            Conversation::tcp(
                sock(scanner, 40_000 + k as u16),
                sock(b_scanned, port),
                t.plus(ms(k as u64 * 35)),
            )
            .close(close)
            .syn_attempts(1)
            .spacing(ms(1)),
        );
    }
    for h in 0..24u8 {
        let target = v4(10, 30, 10, 30 + h);
        add(
            &mut mix,
            Conversation::tcp(
                sock(scanner, 41_000 + u16::from(h)),
                sock(target, 445),
                at(11, 16, 0).plus(ms(u64::from(h) * 50)),
            )
            .close(if h % 4 == 0 {
                Close::Rejected
            } else {
                Close::NoAnswer
            })
            .syn_attempts(2)
            .spacing(ms(1)),
        );
    }

    // Story 4, beacon: every 60 s with ±1 s jitter, small and regular.
    let implant = v4(10, 20, 30, 77);
    let c2 = v4(203, 0, 113, 66);
    for k in 0..60u64 {
        let jitter = r.below(2000);
        let t = at(12, 0, 0)
            .plus(Duration::from_secs(60 * k))
            .plus(ms(jitter));
        add(
            &mut mix,
            Conversation::tcp(sock(implant, ports.next()), sock(c2, 443), t)
                .bytes(310 + r.below(8), 180 + r.below(8))
                .spacing(ms(45)),
        );
    }

    // Story 5, staging then exfiltration.
    add(
        &mut mix,
        Conversation::tcp(
            sock(implant, ports.next()),
            sock(a_files, 445),
            at(23, 10, 0),
        )
        .bytes(4_000, 120_000)
        .rounds(10)
        .spacing(ms(3)),
    );
    add(
        &mut mix,
        Conversation::tcp(
            sock(implant, ports.next()),
            sock(v4(198, 51, 100, 99), 443),
            at(23, 40, 0),
        )
        .bytes(150_000, 3_000)
        .rounds(4)
        .spacing(ms(20)),
    );

    mix
}

fn run(path: &str) -> std::io::Result<(u64, usize, u64)> {
    let mut mix = build();
    let conversations = mix.len();
    let file = BufWriter::new(File::create(path)?);
    let mut w = PcapWriter::new(file, Resolution::Micros, 65_535, LinkType::ETHERNET)?;
    let mut frames = mix.frames();
    let mut buf = Vec::new();
    let mut bytes = 0u64;
    while let Some(ts) = frames.next_into(&mut buf) {
        w.write_packet(ts, &buf, buf.len() as u32)?;
        bytes += buf.len() as u64;
    }
    let packets = w.packets();
    w.into_inner()?;
    Ok((packets, conversations, bytes))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, path] = args.as_slice() else {
        eprintln!("usage: make_demo_capture OUTPUT.pcap");
        return ExitCode::from(2);
    };
    match run(path) {
        Ok((packets, conversations, bytes)) => {
            println!("{path}: {packets} packets, {conversations} conversations, {bytes} bytes of frames, 2026-03-02 08:00 to 2026-03-03 08:00 UTC");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: writing {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
