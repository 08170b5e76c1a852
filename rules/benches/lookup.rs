//! Enclave lookup speed: longest-prefix match over 10 k and 100 k random
//! prefixes (IPv4 /8-/32 and some IPv6), for random addresses (mostly
//! misses, as for internet traffic) and for addresses inside the prefixes
//! (hits, as for internal traffic), through the bare [`PrefixTable`] and
//! through [`EnclaveMap::locate`] with and without VLAN scopes.
//!
//! Each measurement does 1024 lookups; criterion's throughput line gives
//! lookups per second (ns per lookup = 1e9 / that).
//!
//! ```text
//! cargo bench -p rules --bench lookup
//! ```

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rules::enclave::{Enclave, EnclaveId, EnclaveKind, EnclaveMap, VlanTag};
use rules::lookup::PrefixTable;

const BATCH: usize = 1024;

/// SplitMix64: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` random prefixes: 90 % IPv4 with lengths /8-/32 (weighted towards
/// /16-/28, as in real plans and routing tables), 10 % IPv6 /32-/128 inside
/// 2000::/4.
fn prefixes(n: usize, seed: u64) -> Vec<IpNet> {
    let mut r = Rng(seed);
    (0..n)
        .map(|_| {
            if r.below(10) == 0 {
                let a = (2u128 << 124) | (u128::from(r.next()) << 60 >> 4) | u128::from(r.next());
                let len = [32, 40, 48, 56, 64, 64, 64, 128][r.below(8) as usize];
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len).unwrap().trunc())
            } else {
                let len = match r.below(10) {
                    0 => 8 + r.below(8) as u8,
                    1..=7 => 16 + r.below(13) as u8,
                    _ => 29 + r.below(4) as u8,
                };
                let a = Ipv4Addr::from(r.next() as u32);
                IpNet::V4(Ipv4Net::new(a, len).unwrap().trunc())
            }
        })
        .collect()
}

/// Random addresses: 90 % IPv4 anywhere, 10 % IPv6 in 2000::/4.
fn random_addrs(seed: u64) -> Vec<IpAddr> {
    let mut r = Rng(seed);
    (0..BATCH)
        .map(|_| {
            if r.below(10) == 0 {
                let a = (2u128 << 124) | (u128::from(r.next()) << 60 >> 4) | u128::from(r.next());
                IpAddr::V6(Ipv6Addr::from(a))
            } else {
                IpAddr::V4(Ipv4Addr::from(r.next() as u32))
            }
        })
        .collect()
}

/// Addresses inside randomly chosen prefixes.
fn hit_addrs(nets: &[IpNet], seed: u64) -> Vec<IpAddr> {
    let mut r = Rng(seed);
    (0..BATCH)
        .map(|_| match nets[r.below(nets.len() as u64) as usize] {
            IpNet::V4(n) => {
                let host = (r.next() as u32) & !u32::from(n.netmask());
                IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | host))
            }
            IpNet::V6(n) => {
                let rand = (u128::from(r.next()) << 64) | u128::from(r.next());
                let host = rand & !u128::from(n.netmask());
                IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
            }
        })
        .collect()
}

fn prefix_table(c: &mut Criterion) {
    let mut g = c.benchmark_group("prefix_table");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in [10_000usize, 100_000] {
        let nets = prefixes(n, 7);
        let table = PrefixTable::new(nets.iter().enumerate().map(|(i, &p)| (p, i as u32)));
        let (v4, v6) = table.intervals();
        eprintln!("{n} prefixes -> {v4} IPv4 + {v6} IPv6 intervals");
        for (label, addrs) in [("random", random_addrs(11)), ("hits", hit_addrs(&nets, 13))] {
            g.bench_with_input(BenchmarkId::new(label, n), &addrs, |b, addrs| {
                b.iter(|| {
                    let mut found = 0u32;
                    for &a in addrs {
                        found = found.wrapping_add(table.get(black_box(a)).unwrap_or(0));
                    }
                    found
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("prefix_table_build");
    g.sample_size(10);
    for n in [10_000usize, 100_000] {
        let nets = prefixes(n, 7);
        g.bench_with_input(BenchmarkId::from_parameter(n), &nets, |b, nets| {
            b.iter(|| PrefixTable::new(nets.iter().enumerate().map(|(i, &p)| (p, i as u32))))
        });
    }
    g.finish();
}

/// 100 k prefixes spread over 1000 enclaves of 100 networks, the last 100
/// enclaves scoped to VLANs 100-199 (one each).
fn enclave_map(c: &mut Criterion) {
    let nets = prefixes(100_000, 21);
    let mut enclaves = vec![Enclave::new(
        "internet",
        EnclaveKind::External,
        vec![],
        None,
    )];
    for (k, chunk) in nets.chunks(100).enumerate() {
        let vlans = (k >= 900).then(|| vec![VlanTag::Id(100 + (k - 900) as u16)]);
        enclaves.push(Enclave::new(
            format!("e{k}"),
            EnclaveKind::Customer,
            chunk.to_vec(),
            vlans,
        ));
    }
    let map = EnclaveMap::new(&enclaves, &[], EnclaveId::new(0));
    let mut g = c.benchmark_group("enclave_map_100k");
    g.throughput(Throughput::Elements(BATCH as u64));
    let hits = hit_addrs(&nets[..90_000], 5);
    let mut r = Rng(3);
    let vlans: Vec<Option<u16>> = (0..BATCH)
        .map(|_| Some(100 + r.below(100) as u16))
        .collect();
    // Baseline: the bare table over the same unscoped networks, payload
    // the enclave number, as `locate` sees it.
    let bare = PrefixTable::new(
        nets[..90_000]
            .iter()
            .enumerate()
            .map(|(i, &p)| (p, (i / 100 + 1) as u32)),
    );
    g.bench_function("bare_table", |b| {
        b.iter(|| {
            let mut x = 0u32;
            for &a in &hits {
                x ^= bare.get(black_box(a)).unwrap_or(0);
            }
            x
        })
    });
    g.bench_function("untagged", |b| {
        b.iter(|| {
            let mut x = 0usize;
            for &a in &hits {
                x ^= map.locate(black_box(a), None).enclave.index();
            }
            x
        })
    });
    // On a scoped VLAN, to that VLAN's own enclave: one (small) table.
    let mut r = Rng(9);
    let own: Vec<(IpAddr, Option<u16>)> = (0..BATCH)
        .map(|_| {
            let k = r.below(100) as usize;
            let chunk = &nets[90_000 + k * 100..90_000 + (k + 1) * 100];
            (hit_addrs(chunk, r.next())[0], Some(100 + k as u16))
        })
        .collect();
    g.bench_function("vlan_scoped_own", |b| {
        b.iter(|| {
            let mut x = 0usize;
            for &(a, v) in &own {
                x ^= map.locate(black_box(a), v).enclave.index();
            }
            x
        })
    });
    // On a scoped VLAN, to an unscoped network: the scoped table misses,
    // then the global one answers (the worst case: two lookups, and the
    // scoped table is a different one each time).
    g.bench_function("vlan_scoped_fallthrough", |b| {
        b.iter(|| {
            let mut x = 0usize;
            for (&a, &v) in hits.iter().zip(&vlans) {
                x ^= map.locate(black_box(a), v).enclave.index();
            }
            x
        })
    });
    g.finish();
}

// What `criterion_group!` / `criterion_main!` expand to, written out so the
// generated functions do not trip the workspace's `missing_docs` lint.
fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    prefix_table(&mut c);
    enclave_map(&mut c);
    c.final_summary();
}
