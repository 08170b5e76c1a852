//! A SYN flood against a memory-capped flow table (see [`flowbench::flood`]):
//! prints the memory, survival, eviction and throughput numbers the README
//! quotes.
//!
//! ```text
//! cargo run --release -p flowbench --example flood -- [SYNS] [CAP_MIB]
//! ```
//! Defaults: 10 000 000 SYNs, 64 MiB, the table's default SYN flood
//! emergency mode (`FLOOD_EVICT=1`: every SYN evicts a half-open
//! connection instead; `FLOOD_REFERENCE=1`: also time an uncapped table).

use flowbench::flood::{run, FloodConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let syns: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let cap_mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let reference = std::env::var_os("FLOOD_REFERENCE").is_some();
    let cfg = FloodConfig {
        reference,
        refuse_syns_when_full: std::env::var_os("FLOOD_EVICT").is_none(),
        ..FloodConfig::new(syns, cap_mib << 20)
    };
    let mut violations = 0u64;
    let r = run(&cfg, |m| {
        let s = m.table_stats();
        if s.created != m.live_flows() as u64 + s.finished()
            || m.table_memory_bytes() > cfg.max_memory
        {
            violations += 1;
        }
    });
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flood: {e}");
            std::process::exit(2);
        }
    };
    let mib = |b: f64| b / f64::from(1u32 << 20);
    println!(
        "syns: {} packets: {} cap: {cap_mib} MiB flow limit: {}",
        r.syns, r.packets, r.flow_limit
    );
    println!(
        "table memory: peak after a batch {:.1} MiB, peak stat {:.1} MiB",
        mib(r.peak_table_bytes as f64),
        mib(r.peak_memory_stat as f64)
    );
    if let Some(g) = r.rss_growth {
        println!("RSS growth: {:.1} MiB", mib(g as f64));
    }
    println!(
        "established survived: {}/{} ({:.2}%)",
        r.established - r.established_evicted,
        r.established,
        r.survival() * 100.0
    );
    println!(
        "created {} evicted half-open {} evicted oldest {} refused {}",
        r.created, r.evicted_half_open, r.evicted_oldest, r.refused
    );
    println!(
        "throughput: quiet {:.0} pps, below cap {:.0} pps, at cap {:.0} pps",
        r.quiet_pps, r.below_cap_pps, r.flood_pps
    );
    println!(
        "ratios: at cap / quiet {:.2}, at cap / below cap {:.2}",
        r.throughput_ratio(),
        r.at_cap_ratio()
    );
    if reference {
        println!(
            "steady state: capped {:.0} pps, uncapped reference {:.0} pps, ratio {:.2}",
            r.steady_capped_pps,
            r.steady_reference_pps,
            r.reference_ratio()
        );
    }
    println!(
        "checks: {} batches, {violations} violations of conservation or the cap",
        r.conservation_checks
    );
}
