//! Criterion benchmarks of flowlib over flowbench's realistic generated traffic.
//!
//! - `decode`: [`PacketView::parse`] alone, ns per packet.
//! - `decode+table/{1k,100k,1M}`: [`FlowMeter::process`] (decode, fragment
//!   attribution, flow table update, timers, records) with about that many
//!   flows live in the table, ns per packet.
//! - Before the timed cases, the memory a live flow costs is printed: flowlib's
//!   own estimate ([`flowlib::table::bytes_per_flow`]) and the resident set
//!   growth of filling a table with one million flows, divided by one million,
//!   with the table's own breakdown ([`FlowMeter::table_memory`]); then the
//!   breakdown again for the realistic mix played through whole lifecycles
//!   (handshakes, data, FIN / RST, anomalies), where some connections carry
//!   side slots.
//!
//! Frames are generated before they are timed: the decode case walks one
//! in-memory buffer; the table cases replay a buffer of frames that is
//! refilled from a lazy [`Interleave`] outside the timed region, so a million
//! live flows never need their whole capture in memory. Every benchmark
//! iteration is one packet, so criterion's "time" is the cost per packet.
//!
//! ```text
//! cargo bench -p flowbench
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use flowbench::{Interleave, MixConfig, RealisticFlows, TrafficMix};
use flowlib::{ConnRecord, FlowMeter, LinkType, PacketView, TableConfig, Timestamp};

/// Captured frames stored back to back in one buffer, with their timestamps.
#[derive(Default)]
struct Frames {
    data: Vec<u8>,
    ends: Vec<usize>,
    ts: Vec<Timestamp>,
}

impl Frames {
    fn push(&mut self, ts: Timestamp, frame: &[u8]) {
        self.data.extend_from_slice(frame);
        self.ends.push(self.data.len());
        self.ts.push(ts);
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.ts.clear();
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> (Timestamp, &[u8]) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (self.ts[i], &self.data[start..self.ends[i]])
    }
}

/// A table config with Zeek's timeouts and room for every flow the case
/// keeps live, so nothing is evicted.
fn table_config() -> TableConfig {
    TableConfig {
        max_flows: 4_000_000,
        ..TableConfig::default()
    }
}

/// Resident set size of this process in bytes, from `/proc/self/statm`.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Prints the memory cost of a live flow: flowlib's estimate, and the RSS
/// growth of a table holding one million flows.
fn memory_per_flow() {
    const N: usize = 1_000_000;
    // The first frame of each of N distinct conversations, all within one
    // second: every one starts a flow and none is old enough to time out.
    // Built before the RSS baseline is read.
    let mut firsts = Frames::default();
    let cfg = MixConfig {
        arrival_window: Duration::from_secs(1),
        ..MixConfig::new(11, N)
    };
    for conv in RealisticFlows::new(cfg) {
        let mut frames = conv.frames();
        let mut buf = Vec::new();
        if let Some(ts) = frames.next_into(&mut buf) {
            firsts.push(ts, &buf);
        }
    }
    let mut meter = FlowMeter::new(table_config()).unwrap();
    let mut out = Vec::new();
    let before = rss_bytes();
    for i in 0..firsts.len() {
        let (ts, frame) = firsts.get(i);
        meter.process(frame, LinkType::ETHERNET, ts, frame.len() as u32, &mut out);
    }
    let after = rss_bytes();
    let live = meter.live_flows();
    eprintln!(
        "memory per flow: flowlib::table::bytes_per_flow() = {} bytes",
        flowlib::table::bytes_per_flow()
    );
    match (before, after) {
        (Some(b), Some(a)) => eprintln!(
            "memory per flow: RSS grew {:.1} MiB for {live} live flows = {:.0} bytes/flow \
             (hash map spare capacity and timer wheel included; {} records emitted on the way)",
            a.saturating_sub(b) as f64 / (1 << 20) as f64,
            a.saturating_sub(b) as f64 / live.max(1) as f64,
            out.len()
        ),
        _ => eprintln!("memory per flow: /proc/self/statm unavailable"),
    }
    eprintln!("memory per flow: {}", meter.table_memory());
    black_box((meter.stats().packets, out.len()));
}

/// Prints the table's memory breakdown after `frames` of whole
/// conversations, at the instant the most flows are live.
fn memory_in_lifecycle(frames: &Frames) {
    let mut meter = FlowMeter::new(table_config()).unwrap();
    let mut out = Vec::new();
    let mut peak = None;
    for i in 0..frames.len() {
        let (ts, frame) = frames.get(i);
        meter.process(frame, LinkType::ETHERNET, ts, frame.len() as u32, &mut out);
        out.clear();
        if i % 1000 == 0
            && peak
                .as_ref()
                .is_none_or(|(live, _)| meter.live_flows() > *live)
        {
            peak = Some((meter.live_flows(), meter.table_memory()));
        }
    }
    if let Some((_, memory)) = peak {
        eprintln!("memory per flow, realistic mix at its peak of live flows: {memory}");
    }
}

fn decode(c: &mut Criterion) {
    memory_per_flow();

    let mut frames = Frames::default();
    let mut buf = Vec::new();
    let mut mix = TrafficMix::realistic(1, 20_000);
    let mut it = mix.frames();
    while frames.len() < 250_000 {
        match it.next_into(&mut buf) {
            Some(ts) => frames.push(ts, &buf),
            None => break,
        }
    }
    eprintln!(
        "decode: {} frames, {:.0} bytes each on average",
        frames.len(),
        frames.data.len() as f64 / frames.len() as f64
    );
    memory_in_lifecycle(&frames);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("realistic", |b| {
        let mut i = 0;
        b.iter(|| {
            let (ts, frame) = frames.get(i);
            i += 1;
            if i == frames.len() {
                i = 0;
            }
            let view =
                PacketView::parse(black_box(frame), LinkType::ETHERNET, ts, frame.len() as u32);
            black_box(view.is_ok())
        });
    });
    g.finish();
}

/// How many frames are generated at a time for the table cases.
const CHUNK: usize = 200_000;

/// A meter fed by a lazily generated stream in which about `flows`
/// connections are live at once.
///
/// All `flows` conversations start within one second of capture time and
/// their packet spacing is stretched 100x (a packet every ~0.2-4 s per
/// flow), so once they have all started every one of them is live and stays
/// live for many more packets. A case replays only the next `4 * flows`
/// packets before starting over with a fresh meter (untimed), so the live
/// count stays near `flows` while it is timed.
struct LiveTable {
    flows: usize,
    seed: u64,
    meter: FlowMeter,
    source: Interleave<RealisticFlows>,
    chunk: Frames,
    pos: usize,
    /// Packets replayed since the meter was warmed.
    replayed: usize,
    buf: Vec<u8>,
    out: Vec<ConnRecord>,
    /// Live flows right after each warm-up, and the least seen at a refill.
    live_after_warmup: usize,
    live_min: usize,
    rebuilds: u32,
}

impl LiveTable {
    fn new(flows: usize) -> LiveTable {
        let mut t = LiveTable {
            flows,
            seed: 0,
            meter: FlowMeter::new(table_config()).unwrap(),
            source: Interleave::new(RealisticFlows::new(MixConfig::new(0, 0))),
            chunk: Frames::default(),
            pos: 0,
            replayed: 0,
            buf: Vec::new(),
            out: Vec::new(),
            live_after_warmup: 0,
            live_min: usize::MAX,
            rebuilds: 0,
        };
        t.rebuild();
        t
    }

    /// A fresh meter and stream, fed (untimed) until every conversation has
    /// started.
    fn rebuild(&mut self) {
        self.seed += 1;
        self.rebuilds += 1;
        let cfg = MixConfig {
            arrival_window: Duration::from_secs(1),
            spacing_percent: 10_000,
            ..MixConfig::new(self.seed, self.flows)
        };
        self.meter = FlowMeter::new(table_config()).unwrap();
        self.source = Interleave::new(RealisticFlows::new(cfg));
        while (self.source.conversations_started() as usize) < self.flows {
            let Some(ts) = self.source.next_into(&mut self.buf) else {
                break;
            };
            let len = self.buf.len() as u32;
            self.meter
                .process(&self.buf, LinkType::ETHERNET, ts, len, &mut self.out);
            self.out.clear();
        }
        self.live_after_warmup = self.meter.live_flows();
        self.chunk.clear();
        self.pos = 0;
        self.replayed = 0;
    }

    /// Generates the next chunk of frames (untimed); starts over when the
    /// case has replayed its share of this stream or the stream ended.
    fn refill(&mut self) {
        self.live_min = self.live_min.min(self.meter.live_flows());
        if self.replayed >= 4 * self.flows {
            self.rebuild();
        }
        self.chunk.clear();
        self.pos = 0;
        let want = CHUNK.min(4 * self.flows - self.replayed);
        while self.chunk.len() < want {
            match self.source.next_into(&mut self.buf) {
                Some(ts) => self.chunk.push(ts, &self.buf),
                None => break,
            }
        }
        if self.chunk.len() == 0 {
            self.rebuild();
            self.refill();
        }
    }

    /// Processes the next `iters` packets; returns the time spent in
    /// `FlowMeter::process` only.
    fn run(&mut self, iters: u64) -> Duration {
        let mut left = iters as usize;
        let mut spent = Duration::ZERO;
        while left > 0 {
            if self.pos == self.chunk.len() {
                self.refill();
            }
            let n = left.min(self.chunk.len() - self.pos);
            let start = Instant::now();
            for i in self.pos..self.pos + n {
                let (ts, frame) = self.chunk.get(i);
                self.meter.process(
                    frame,
                    LinkType::ETHERNET,
                    ts,
                    frame.len() as u32,
                    &mut self.out,
                );
                self.out.clear();
            }
            spent += start.elapsed();
            self.pos += n;
            self.replayed += n;
            left -= n;
        }
        spent
    }
}

fn decode_and_table(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode+table");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    for (name, flows, measure) in [
        ("1k", 1_000usize, 3u64),
        ("100k", 100_000, 5),
        ("1M", 1_000_000, 8),
    ] {
        let mut table = LiveTable::new(flows);
        eprintln!(
            "decode+table/{name}: {} live flows after warm-up ({} packets in so far)",
            table.live_after_warmup,
            table.meter.stats().packets
        );
        g.warm_up_time(Duration::from_secs(2));
        g.measurement_time(Duration::from_secs(measure));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| table.run(iters));
        });
        eprintln!(
            "decode+table/{name}: live flows stayed between {} and {} \
             ({} warm-ups); {} decode weirds",
            table.live_min.min(table.meter.live_flows()),
            table.live_after_warmup.max(table.meter.live_flows()),
            table.rebuilds,
            table.meter.stats().weirds.total()
        );
    }
    g.finish();
}

// What `criterion_group!` / `criterion_main!` expand to, written out so the
// generated functions do not trip the workspace's `missing_docs` lint.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    decode(&mut c);
    decode_and_table(&mut c);
    c.final_summary();
}
