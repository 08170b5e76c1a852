//! Criterion benchmark of the detector alone, on the records of the
//! capture `benches/compare.sh` times the whole sensor on.
//!
//! - `detector/bench.toml`: [`Detector::observe`] (enclave lookup, policy,
//!   every behaviour tracker, deduplication, alerts built) per record, with
//!   `rules/examples/bench.toml` and no baseline.
//! - `detector/bench.toml+baseline`: the same with a baseline learned from
//!   the same records first (every pair known: the novelty checks find
//!   what they look for).
//!
//! The records are made once, before anything is timed: the benchmark mix
//! of `examples/make_bench_capture.rs` (its seed, arrival rate and round
//! trips; its 3 500 000 packets, so about 189 000 connections) played through a
//! [`FlowMeter`] that also reports each connection's start, as the sensor's
//! table does when rules are given, then put in the order the sensor's
//! output scores them: by the time they became due, uid, then the start
//! before the connection's other records. Each benchmark iteration scores
//! one record, so criterion's "time" is the detector's cost per record;
//! a fresh detector starts over whenever every record has been scored
//! (outside the timed region). The whole-process share of the detector on
//! two cores is measured by `compare.sh`; this is its single-core cost,
//! which is far less noisy on a shared machine.
//!
//! ```text
//! cargo bench -p flowbench --bench detector
//! ```

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use flowbench::{Interleave, MixConfig, RealisticFlows};
use flowlib::{ConnRecord, EndReason, FlowMeter, LinkType, TableConfig};
use rules::baseline::{Baseline, BaselineBuilder};
use rules::detector::{Alert, Detector};
use rules::Rules;

/// Packets of the benchmark mix played to make the records.
const PACKETS: usize = 3_500_000;
/// The seed `make_bench_capture` uses by default.
const SEED: u64 = 0x0062_656e_6368;

/// The records of the first [`PACKETS`] packets of the benchmark mix, starts
/// included, in the order the sensor scores them.
fn bench_records() -> Vec<ConnRecord> {
    // As make_bench_capture's defaults: flows from packets / 17.5.
    let flows = (PACKETS as f64 / 17.5) as usize;
    let cfg = MixConfig::benchmark(SEED, flows);
    let mut frames = Interleave::new(RealisticFlows::new(cfg));
    let mut meter = FlowMeter::new(TableConfig {
        report_starts: true,
        ..TableConfig::default()
    })
    .expect("the default table config is valid");
    let (mut buf, mut records) = (Vec::new(), Vec::new());
    for _ in 0..PACKETS {
        let Some(ts) = frames.next_into(&mut buf) else {
            break;
        };
        meter.process(&buf, LinkType::ETHERNET, ts, buf.len() as u32, &mut records);
    }
    meter.finish(&mut records);
    // The sensor's output order (sensor::order): a start before the other
    // records of its connection due at the same instant.
    let rank = |r: &ConnRecord| match r.end_reason {
        EndReason::Start => 0,
        other => other as u8 + 1,
    };
    records.sort_by(|a, b| (a.emitted, &a.uid, rank(a)).cmp(&(b.emitted, &b.uid, rank(b))));
    records
}

/// Scores `records` over and over with detectors made by `make`.
struct Scoring<'a, F: Fn() -> Detector> {
    records: &'a [ConnRecord],
    make: F,
    detector: Detector,
    pos: usize,
    alerts: Vec<Alert>,
    raised: u64,
    /// Times every record was scored.
    passes: u64,
}

impl<'a, F: Fn() -> Detector> Scoring<'a, F> {
    fn new(records: &'a [ConnRecord], make: F) -> Self {
        let detector = make();
        Scoring {
            records,
            make,
            detector,
            pos: 0,
            alerts: Vec::new(),
            raised: 0,
            passes: 0,
        }
    }

    /// Scores the next `n` records; the time spent scoring.
    fn run(&mut self, n: u64) -> Duration {
        let mut left = n as usize;
        let mut spent = Duration::ZERO;
        while left > 0 {
            if self.pos == self.records.len() {
                self.detector = (self.make)();
                self.pos = 0;
                self.passes += 1;
            }
            let k = left.min(self.records.len() - self.pos);
            let start = Instant::now();
            for r in &self.records[self.pos..self.pos + k] {
                self.detector.observe(r, &mut self.alerts);
                self.raised += self.alerts.len() as u64;
                self.alerts.clear();
            }
            spent += start.elapsed();
            self.pos += k;
            left -= k;
        }
        spent
    }
}

fn detector(c: &mut Criterion) {
    let rules_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/examples/bench.toml");
    let rules = Rules::load(&rules_file).expect("rules/examples/bench.toml is valid");
    let records = bench_records();
    let starts = records
        .iter()
        .filter(|r| r.end_reason == EndReason::Start)
        .count();
    eprintln!(
        "detector: {} records ({starts} starts) from {PACKETS} packets of the benchmark mix",
        records.len()
    );
    let mut learner = BaselineBuilder::new(rules.clone());
    for r in &records {
        learner.observe(r);
    }
    let baseline: Baseline = learner.finish();

    let mut g = c.benchmark_group("detector");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(6));
    for (name, baseline) in [
        ("bench.toml", None),
        ("bench.toml+baseline", Some(&baseline)),
    ] {
        let make = || {
            let detector = Detector::new(rules.clone());
            match baseline {
                Some(b) => detector.with_baseline(b.clone()),
                None => detector,
            }
        };
        let mut scoring = Scoring::new(&records, make);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| scoring.run(iters));
        });
        eprintln!(
            "detector/{name}: {} alerts and reports over {} whole passes and part of another",
            black_box(scoring.raised),
            scoring.passes
        );
    }
    g.finish();
}

// What `criterion_group!` / `criterion_main!` expand to, written out so the
// generated functions do not trip the workspace's `missing_docs` lint.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    detector(&mut c);
    c.final_summary();
}
