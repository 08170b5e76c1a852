//! Counters of a running sensor, exposed in Prometheus' text format.
//!
//! The hot path never takes a lock and never shares a cache line between
//! threads: every shard worker owns its flow table and, once per batch,
//! *stores* its running totals into its own [`ShardCounters`] (relaxed
//! atomic stores of values it already keeps). The dispatcher, the capture
//! loop and the output thread do the same with their own counters. A
//! scrape reads every slot and adds them up, so the numbers of different
//! shards may be a batch apart, and each is exact at the end.
//!
//! [`server`] serves [`Metrics::render`] at `GET /metrics`; at the end of a
//! run the same text can be written to a file for node_exporter's textfile
//! collector ([`Metrics::write_textfile`]), the usual way to keep the final
//! numbers of a batch job such as a replay.

pub mod exposition;
pub mod server;

use crate::error::SensorError;
use exposition::{Exposition, Kind};
use flowlib::table::TableStats;
use flowlib::{EndReason, MeterStats, Weird};
use server::MetricsServer;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The totals one shard (or the dispatcher) publishes.
#[derive(Debug)]
pub struct ShardCounters {
    packets: AtomicU64,
    wire_bytes: AtomicU64,
    decoded: AtomicU64,
    truncated: AtomicU64,
    weirds: [AtomicU64; Weird::COUNT],
    clock_backwards: AtomicU64,
    clock_leaps: AtomicU64,
    created: AtomicU64,
    ended: [AtomicU64; EndReason::ALL.len()],
    live: AtomicU64,
}

impl Default for ShardCounters {
    fn default() -> Self {
        ShardCounters {
            packets: AtomicU64::new(0),
            wire_bytes: AtomicU64::new(0),
            decoded: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            weirds: std::array::from_fn(|_| AtomicU64::new(0)),
            clock_backwards: AtomicU64::new(0),
            clock_leaps: AtomicU64::new(0),
            created: AtomicU64::new(0),
            ended: std::array::from_fn(|_| AtomicU64::new(0)),
            live: AtomicU64::new(0),
        }
    }
}

impl ShardCounters {
    /// Stores the shard's running totals (its only writer calls this).
    pub fn publish(&self, meter: &MeterStats, table: &TableStats, live_flows: usize) {
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&self.packets, meter.packets);
        set(&self.wire_bytes, meter.wire_bytes);
        set(&self.decoded, meter.decoded);
        set(&self.truncated, meter.truncated);
        for (slot, w) in self.weirds.iter().zip(Weird::ALL) {
            set(slot, meter.weirds.get(*w));
        }
        set(&self.clock_backwards, meter.clock_backwards);
        set(&self.clock_leaps, meter.clock_leaps);
        set(&self.created, table.created);
        for (slot, n) in self.ended.iter().zip(table.ended.iter()) {
            set(slot, *n);
        }
        set(&self.live, live_flows as u64);
    }
}

/// Why records did not reach an exporter's destination.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExportFailure {
    /// A write failed (the run then ends with an error).
    WriteError,
    /// The reader closed the pipe; the records after it were not written.
    OutputClosed,
}

impl ExportFailure {
    fn name(self) -> &'static str {
        match self {
            ExportFailure::WriteError => "write_error",
            ExportFailure::OutputClosed => "output_closed",
        }
    }
}

/// Records written and failures of one exporter.
#[derive(Debug, Default)]
struct ExporterCounters {
    exported: AtomicU64,
    write_error: AtomicU64,
    output_closed: AtomicU64,
}

/// Every counter of one run.
#[derive(Debug)]
pub struct Metrics {
    shards: Vec<ShardCounters>,
    dispatcher: ShardCounters,
    shard_queue_drops: AtomicU64,
    /// Live capture only: libpcap's counters, folded into 64 bits.
    live: AtomicBool,
    kernel_received: AtomicU64,
    kernel_drops: AtomicU64,
    interface_drops: AtomicU64,
    conn: ExporterCounters,
    alerts: ExporterCounters,
    detector: Mutex<Option<AlertCounts>>,
}

/// Alerts raised by the detector, by primary reason and by severity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertCounts {
    /// By primary reason.
    pub by_reason: BTreeMap<String, u64>,
    /// By severity.
    pub by_severity: BTreeMap<String, u64>,
    /// What the detector's bounded tables did when full: (table, outcome,
    /// count), as `DetectorStats::bounded` gives them.
    pub full_tables: Vec<(&'static str, &'static str, u64)>,
}

/// Names of the exporters in the `exporter` label.
const CONN: &str = "conn";
const ALERTS: &str = "alerts";

impl Metrics {
    /// Counters for a pipeline of `shards` shard workers.
    pub fn new(shards: usize) -> Metrics {
        Metrics {
            shards: (0..shards.max(1))
                .map(|_| ShardCounters::default())
                .collect(),
            dispatcher: ShardCounters::default(),
            shard_queue_drops: AtomicU64::new(0),
            live: AtomicBool::new(false),
            kernel_received: AtomicU64::new(0),
            kernel_drops: AtomicU64::new(0),
            interface_drops: AtomicU64::new(0),
            conn: ExporterCounters::default(),
            alerts: ExporterCounters::default(),
            detector: Mutex::new(None),
        }
    }

    /// The slot of shard `i` (0-based; the pipeline has as many shards as
    /// these counters were made for).
    pub fn shard(&self, i: usize) -> &ShardCounters {
        &self.shards[i]
    }

    /// How many shard slots there are.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The dispatcher's own slot (packets it could not decode) and its
    /// shard-queue drops.
    pub fn publish_dispatcher(&self, meter: &MeterStats, queue_drops: u64) {
        self.dispatcher.publish(meter, &TableStats::default(), 0);
        self.shard_queue_drops.store(queue_drops, Ordering::Relaxed);
    }

    /// Live capture: libpcap's counters (already folded into 64 bits).
    pub fn publish_capture(&self, received: u64, kernel_drops: u64, interface_drops: u64) {
        self.live.store(true, Ordering::Relaxed);
        self.kernel_received.store(received, Ordering::Relaxed);
        self.kernel_drops.store(kernel_drops, Ordering::Relaxed);
        self.interface_drops
            .store(interface_drops, Ordering::Relaxed);
    }

    /// Connection records written so far.
    pub fn publish_records(&self, written: u64) {
        self.conn.exported.store(written, Ordering::Relaxed);
    }

    /// Alert lines written so far, and the detector's counts.
    pub fn publish_alerts(&self, written: u64, counts: AlertCounts) {
        self.alerts.exported.store(written, Ordering::Relaxed);
        let mut d = self.detector.lock().unwrap_or_else(|e| e.into_inner());
        *d = Some(counts);
    }

    /// Counts `n` connection records that were not written.
    pub fn conn_failure(&self, why: ExportFailure, n: u64) {
        self.conn.failure(why).fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` alert lines that were not written.
    pub fn alert_failure(&self, why: ExportFailure, n: u64) {
        self.alerts.failure(why).fetch_add(n, Ordering::Relaxed);
    }

    /// Every metric in Prometheus' text format.
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let slots = || self.shards.iter().chain(std::iter::once(&self.dispatcher));
        let sum =
            |f: &dyn Fn(&ShardCounters) -> &AtomicU64| slots().map(|s| get(f(s))).sum::<u64>();
        let mut e = Exposition::new();
        e.family(
            "flowmon_packets_total",
            Kind::Counter,
            "Packets read from the capture source and handed to the flow meter.",
        )
        .sample(&[], sum(&|s| &s.packets));
        e.family(
            "flowmon_bytes_total",
            Kind::Counter,
            "Bytes on the wire of those packets.",
        )
        .sample(&[], sum(&|s| &s.wire_bytes));
        e.family(
            "flowmon_packets_decoded_total",
            Kind::Counter,
            "Packets that updated at least one flow.",
        )
        .sample(&[], sum(&|s| &s.decoded));
        e.family(
            "flowmon_packets_truncated_total",
            Kind::Counter,
            "Packets cut short by the snapshot length (decoded anyway).",
        )
        .sample(&[], sum(&|s| &s.truncated));
        let mut f = e.family(
            "flowmon_weirds_total",
            Kind::Counter,
            "Packets that did not become a flow update, by reason.",
        );
        for (i, w) in Weird::ALL.iter().enumerate() {
            f.sample(&[("reason", w.name())], sum(&|s| &s.weirds[i]));
        }
        let mut f = e.family(
            "flowmon_clock_packets_total",
            Kind::Counter,
            "Packets applied at the capture clock instead of their own stamp: earlier than a packet \
             before them, or far ahead of the packets after them.",
        );
        f.sample(&[("kind", "earlier")], sum(&|s| &s.clock_backwards));
        f.sample(&[("kind", "far_ahead")], sum(&|s| &s.clock_leaps));
        let mut f = e.family(
            "flowmon_drops_total",
            Kind::Counter,
            "Packets lost before the flow meter, by stage and reason.",
        );
        f.sample(
            &[("stage", "dispatcher"), ("reason", "shard_queue_full")],
            get(&self.shard_queue_drops),
        );
        if self.live.load(Ordering::Relaxed) {
            f.sample(
                &[("stage", "kernel"), ("reason", "buffer_full")],
                get(&self.kernel_drops),
            );
            f.sample(
                &[("stage", "interface"), ("reason", "interface_drop")],
                get(&self.interface_drops),
            );
            e.family(
                "flowmon_capture_received_total",
                Kind::Counter,
                "Packets the kernel received for the capture (libpcap ps_recv).",
            )
            .sample(&[], get(&self.kernel_received));
        }
        e.family(
            "flowmon_flows_live",
            Kind::Gauge,
            "Flows currently in the flow tables.",
        )
        .sample(&[], sum(&|s| &s.live));
        e.family(
            "flowmon_flows_created_total",
            Kind::Counter,
            "Flows created.",
        )
        .sample(&[], sum(&|s| &s.created));
        let mut f = e.family(
            "flowmon_flows_ended_total",
            Kind::Counter,
            "Connection records emitted, by end reason (active: interim records of running flows).",
        );
        for (i, r) in EndReason::ALL.iter().enumerate() {
            if *r != EndReason::Start {
                f.sample(&[("reason", r.name())], sum(&|s| &s.ended[i]));
            }
        }
        let detector = self
            .detector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(d) = detector {
            let mut f = e.family(
                "flowmon_alerts_total",
                Kind::Counter,
                "Alerts raised by the detector, by primary reason.",
            );
            for (reason, n) in &d.by_reason {
                f.sample(&[("reason", reason)], *n);
            }
            let mut f = e.family(
                "flowmon_alerts_by_severity_total",
                Kind::Counter,
                "Alerts raised by the detector, by severity.",
            );
            for (severity, n) in &d.by_severity {
                f.sample(&[("severity", severity)], *n);
            }
            let mut f = e.family(
                "flowmon_detector_full_table_total",
                Kind::Counter,
                "What the detector's bounded tables did when full, by table and outcome (evicted: live entries forgotten to make room; rejected: new entries not kept; saturated: sets that stopped growing).",
            );
            for (table, outcome, n) in &d.full_tables {
                f.sample(&[("table", table), ("outcome", outcome)], *n);
            }
        }
        let exporters = [(CONN, &self.conn), (ALERTS, &self.alerts)];
        let mut f = e.family(
            "flowmon_records_exported_total",
            Kind::Counter,
            "Records written, by exporter (conn: connection records, alerts: alert lines).",
        );
        for (name, c) in exporters {
            f.sample(&[("exporter", name)], get(&c.exported));
        }
        let mut f = e.family(
            "flowmon_export_failures_total",
            Kind::Counter,
            "Failed writes, by exporter and reason (write_error: a write failed; output_closed: the reader went away). Either ends the run; the records written are those in flowmon_records_exported_total.",
        );
        for (name, c) in exporters {
            for why in [ExportFailure::WriteError, ExportFailure::OutputClosed] {
                f.sample(
                    &[("exporter", name), ("reason", why.name())],
                    get(c.failure(why)),
                );
            }
        }
        e.into_string()
    }

    /// Writes [`Metrics::render`] to `path` atomically (a temporary file
    /// beside it, then a rename), as node_exporter's textfile collector
    /// expects.
    pub fn write_textfile(&self, path: &Path) -> io::Result<()> {
        let tmp = textfile_tmp(path)?;
        let mut f = std::fs::File::create(&tmp)?;
        let written = f
            .write_all(self.render().as_bytes())
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

/// The file the textfile is written to before it is renamed over `path`.
fn textfile_tmp(path: &Path) -> io::Result<PathBuf> {
    let mut name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?
        .to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    Ok(path.with_file_name(name))
}

/// Whether the textfile can be written where it goes (its directory
/// exists and takes new files): checked before a run, not after it.
fn probe_textfile(path: &Path) -> io::Result<()> {
    let tmp = textfile_tmp(path)?;
    std::fs::File::create(&tmp)?;
    std::fs::remove_file(&tmp)
}

/// The metrics of one run: the counters, the endpoint serving them and
/// the file the final numbers go to, each only when asked for.
pub struct Telemetry {
    metrics: Option<Arc<Metrics>>,
    server: Option<MetricsServer>,
    textfile: Option<PathBuf>,
}

impl Telemetry {
    /// Binds the endpoint at `addr` (if any) and checks that `textfile`
    /// can be written before anything runs; keeps counters when there is
    /// an endpoint or a `textfile`.
    pub fn start(
        addr: Option<SocketAddr>,
        textfile: Option<PathBuf>,
        shards: usize,
    ) -> Result<Telemetry, SensorError> {
        if let Some(path) = &textfile {
            probe_textfile(path).map_err(|source| SensorError::MetricsFile {
                path: path.clone(),
                source,
            })?;
        }
        let metrics =
            (addr.is_some() || textfile.is_some()).then(|| Arc::new(Metrics::new(shards)));
        let server = match (addr, &metrics) {
            (Some(addr), Some(m)) => Some(MetricsServer::start(addr, Arc::clone(m))?),
            _ => None,
        };
        Ok(Telemetry {
            metrics,
            server,
            textfile,
        })
    }

    /// The counters, for the pipeline and the output.
    pub fn metrics(&self) -> Option<Arc<Metrics>> {
        self.metrics.clone()
    }

    /// Where the endpoint listens.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(MetricsServer::addr)
    }

    /// The run is over: writes the final numbers to the textfile and stops
    /// the endpoint.
    pub fn finish(self) -> Result<(), SensorError> {
        if let (Some(path), Some(m)) = (&self.textfile, &self.metrics) {
            m.write_textfile(path)
                .map_err(|source| SensorError::MetricsFile {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

impl ExporterCounters {
    fn failure(&self, why: ExportFailure) -> &AtomicU64 {
        match why {
            ExportFailure::WriteError => &self.write_error,
            ExportFailure::OutputClosed => &self.output_closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_adds_up_every_shard_and_the_dispatcher() {
        let m = Metrics::new(2);
        let mut meter = MeterStats {
            packets: 10,
            wire_bytes: 1000,
            ..MeterStats::default()
        };
        meter.weirds.add(Weird::ALL[0]);
        let mut table = TableStats {
            created: 4,
            ..TableStats::default()
        };
        table.ended[EndReason::Fin as usize] = 3;
        m.shard(0).publish(&meter, &table, 1);
        m.shard(1).publish(&meter, &table, 1);
        let clocked = MeterStats {
            clock_backwards: 4,
            clock_leaps: 1,
            ..meter.clone()
        };
        m.publish_dispatcher(&clocked, 5);
        let text = m.render();
        assert!(
            text.contains("\nflowmon_clock_packets_total{kind=\"earlier\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("\nflowmon_clock_packets_total{kind=\"far_ahead\"} 1\n"));
        assert!(text.contains("\nflowmon_packets_total 30\n"), "{text}");
        assert!(text.contains("\nflowmon_bytes_total 3000\n"), "{text}");
        assert!(text.contains("\nflowmon_flows_created_total 8\n"), "{text}");
        assert!(text.contains("\nflowmon_flows_live 2\n"), "{text}");
        assert!(text.contains("\nflowmon_flows_ended_total{reason=\"fin\"} 6\n"));
        assert!(text.contains(&format!(
            "\nflowmon_weirds_total{{reason=\"{}\"}} 3\n",
            Weird::ALL[0].name()
        )));
        assert!(text.contains(
            "\nflowmon_drops_total{stage=\"dispatcher\",reason=\"shard_queue_full\"} 5\n"
        ));
        assert!(!text.contains("reason=\"start\""));
        assert!(!text.contains("flowmon_alerts_total"));
    }

    #[test]
    fn what_the_detectors_full_tables_did_is_exported_by_table_and_outcome() {
        let m = Metrics::new(1);
        m.publish_alerts(
            3,
            AlertCounts {
                full_tables: vec![("dedup", "evicted", 7), ("beacon", "evicted", 0)],
                ..AlertCounts::default()
            },
        );
        let text = m.render();
        assert!(text.contains(
            "\nflowmon_detector_full_table_total{table=\"dedup\",outcome=\"evicted\"} 7\n"
        ));
        assert!(text.contains(
            "\nflowmon_detector_full_table_total{table=\"beacon\",outcome=\"evicted\"} 0\n"
        ));
    }

    #[test]
    fn the_textfile_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("flowmon-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sensor.prom");
        let m = Metrics::new(1);
        m.publish_records(42);
        m.write_textfile(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("flowmon_records_exported_total{exporter=\"conn\"} 42\n"));
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
