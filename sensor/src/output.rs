//! Where records and alerts go: stdout or files (maybe rotated), as JSON
//! lines, Zeek TSV or Suricata EVE.
//!
//! Records and alerts are flushed at batch boundaries (each batch of
//! records the pipeline hands over), so a crash loses at most the batch
//! being written. The counts reported as written are the lines flushed;
//! any write error (a full disk, a reader that closed the pipe) ends the
//! run with [`SensorError::Write`], naming how many were written.

use crate::error::SensorError;
use crate::eve::{self, AlertFormat};
use crate::ipfix_export::{ExportStats, IpfixExporter};
use crate::metrics::{AlertCounts, ExportFailure, Metrics};
use crate::rotation::{LogFile, Rotation};
use flowlib::export::{JsonLinesWriter, RecordWriter, ZeekTsvWriter};
use flowlib::{ConnRecord, EndReason, Timestamp};
use rules::baseline::BaselineBuilder;
use rules::detector::{Alert, Detector, DetectorStats};
use rules::inventory::{Inventory, InventoryBuilder};
use std::collections::HashSet;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Record formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line, Zeek field names.
    Json,
    /// Zeek's tab-separated conn.log.
    Zeek,
    /// Suricata EVE `flow` events (the JSON record kept in `flowmon`).
    Eve,
}

/// Where lines go: standard output, or a file that may be rotated.
enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File(Box<LogFile>),
    Discard,
}

impl Sink {
    fn open(
        path: Option<&Path>,
        rotation: Rotation,
        what: &'static str,
    ) -> Result<Sink, SensorError> {
        match path {
            Some(p) => match LogFile::create(p, rotation) {
                Ok(f) => Ok(Sink::File(Box::new(f))),
                Err(source) => Err(SensorError::Write {
                    what,
                    dest: describe(path),
                    written: 0,
                    source,
                }),
            },
            None => Ok(Sink::Stdout(BufWriter::with_capacity(
                1 << 16,
                io::stdout(),
            ))),
        }
    }

    /// Whether an entry due at `t` starts a new file.
    fn due(&self, t: Timestamp) -> bool {
        match self {
            Sink::File(f) => f.due(t),
            _ => false,
        }
    }

    /// Notes the capture time of the entry about to be written.
    fn begin_entry(&mut self, t: Timestamp) {
        if let Sink::File(f) = self {
            f.begin_entry(t);
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.rotate(),
            _ => Ok(()),
        }
    }

    /// Flushes to the kernel (a batch boundary).
    fn commit(&mut self) -> io::Result<()> {
        self.flush()
    }

    /// Last flush, fsync, closed name.
    fn finish(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.finish(),
            other => other.flush(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(w) => w.write(buf),
            Sink::File(w) => w.write(buf),
            Sink::Discard => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(w) => w.flush(),
            Sink::File(w) => w.flush(),
            Sink::Discard => Ok(()),
        }
    }
}

/// A record writer of one of our formats.
enum Records {
    Json(JsonLinesWriter<Sink>),
    Zeek(ZeekTsvWriter<Sink>),
    Eve(Sink),
}

impl Records {
    fn new(format: Format, sink: Sink) -> Records {
        match format {
            Format::Json => Records::Json(JsonLinesWriter::new(sink)),
            Format::Zeek => Records::Zeek(ZeekTsvWriter::new(sink)),
            Format::Eve => Records::Eve(sink),
        }
    }

    fn sink(&mut self) -> &mut Sink {
        match self {
            Records::Json(w) => w.get_mut(),
            Records::Zeek(w) => w.get_mut(),
            Records::Eve(s) => s,
        }
    }

    fn write(&mut self, r: &ConnRecord, alerted: bool) -> io::Result<()> {
        match self {
            Records::Json(w) => w.write_record(r),
            Records::Zeek(w) => w.write_record(r),
            Records::Eve(s) => eve::write_flow(s, r, alerted),
        }
    }

    /// Writes the format's trailer (Zeek's `#close`) and flushes.
    fn end_file(&mut self) -> io::Result<()> {
        match self {
            Records::Json(w) => w.finish(),
            Records::Zeek(w) => w.finish(),
            Records::Eve(s) => s.flush(),
        }
    }

    /// The same format over the sink, starting a new file (Zeek: a new
    /// header).
    fn restart(self) -> Records {
        match self {
            Records::Json(w) => Records::Json(JsonLinesWriter::new(w.into_inner())),
            Records::Zeek(w) => Records::Zeek(ZeekTsvWriter::new(w.into_inner())),
            Records::Eve(s) => Records::Eve(s),
        }
    }
}

/// The record output, the detector and its alerts, and the baseline
/// learner.
pub struct Output {
    records: Option<Records>,
    dest: String,
    /// Records flushed.
    written: u64,
    /// Records handed to the writer since the last flush.
    unflushed: u64,
    rules: Option<rules::Rules>,
    alerts: Option<AlertSink>,
    learner: Option<(BaselineBuilder, PathBuf)>,
    ipfix: Option<IpfixExporter>,
    inventory: Option<InventoryBuilder>,
    evidence: Option<crate::report::Evidence>,
    /// Uids of connections with an alert whose final record is not written
    /// yet (for EVE's `flow.alerted`).
    alerted: HashSet<String>,
    metrics: Option<Arc<Metrics>>,
    /// Enclave and host group names reused across records.
    names: crate::enclaves::NamePool,
}

/// The detector and where its alerts go (nowhere when they are only kept
/// in memory: see [`Output::with_evidence`]).
struct AlertSink {
    detector: Detector,
    format: AlertFormat,
    out: Sink,
    dest: String,
    pending: Vec<Alert>,
    written: u64,
    unflushed: u64,
    /// (alerts raised, lines written) last published to the metrics.
    published: Option<(u64, u64)>,
}

fn describe(path: Option<&Path>) -> String {
    path.map_or_else(|| "standard output".to_owned(), |p| p.display().to_string())
}

impl Output {
    /// Opens `path` (or stdout when `None`) for `format`; with `rotation`
    /// (files only) the file is rotated.
    pub fn open(
        path: Option<&Path>,
        format: Format,
        rotation: Rotation,
    ) -> Result<Output, SensorError> {
        let sink = Sink::open(path, rotation, "records")?;
        Ok(Output::over(Records::new(format, sink), describe(path)))
    }

    fn over(records: Records, dest: String) -> Output {
        Output {
            records: Some(records),
            dest,
            written: 0,
            unflushed: 0,
            rules: None,
            alerts: None,
            learner: None,
            ipfix: None,
            inventory: None,
            evidence: None,
            alerted: HashSet::new(),
            metrics: None,
            names: crate::enclaves::NamePool::default(),
        }
    }

    /// An output that writes no records (e.g. while learning a baseline).
    pub fn discard() -> Output {
        Output::over(
            Records::new(Format::Json, Sink::Discard),
            "nowhere".to_owned(),
        )
    }

    /// Also exports every record (not start records) over IPFIX.
    pub fn with_ipfix(mut self, exporter: Option<IpfixExporter>) -> Output {
        self.ipfix = exporter;
        self
    }

    /// The IPFIX export's counters, when it runs.
    pub fn ipfix_stats(&self) -> Option<&ExportStats> {
        self.ipfix.as_ref().map(|x| x.stats())
    }

    /// Learns a baseline from every record; written to `path` at the end.
    pub fn with_learner(mut self, rules: rules::Rules, path: &Path) -> Output {
        self.learner = Some((BaselineBuilder::new(rules), path.to_owned()));
        self
    }

    /// Runs the detector over every record, writing alerts in `format` to
    /// `path` (rotated like the records with `rotation`). The flow table
    /// must report start records ([`flowlib::TableConfig::report_starts`])
    /// for policy alerts to be raised on a connection's first packet.
    pub fn with_detector(
        mut self,
        rules: rules::Rules,
        baseline: Option<rules::baseline::Baseline>,
        path: &Path,
        format: AlertFormat,
        rotation: Rotation,
    ) -> Result<Output, SensorError> {
        let out = Sink::open(Some(path), rotation, "alerts")?;
        self.rules = Some(rules.clone());
        let detector = Detector::new(rules);
        let detector = match baseline {
            Some(b) => detector.with_baseline(b),
            None => detector,
        };
        self.alerts = Some(AlertSink {
            detector,
            format,
            out,
            dest: describe(Some(path)),
            pending: Vec::new(),
            written: 0,
            unflushed: 0,
            published: None,
        });
        Ok(self)
    }

    /// Adds every record to a relationship inventory (see
    /// [`Output::take_inventory`]).
    pub fn with_inventory(mut self, builder: InventoryBuilder) -> Output {
        self.inventory = Some(builder);
        self
    }

    /// The inventory built so far, if one is being built.
    pub fn take_inventory(&mut self) -> Option<Inventory> {
        self.inventory.take().map(InventoryBuilder::finish)
    }

    /// Runs the detector over every record and keeps its alerts, with the
    /// connection records behind them, in memory (for `sensor report`).
    /// Records are annotated with enclaves and host groups.
    pub fn with_evidence(
        mut self,
        rules: rules::Rules,
        baseline: Option<rules::baseline::Baseline>,
    ) -> Output {
        self.rules = Some(rules.clone());
        let detector = Detector::new(rules);
        let detector = match baseline {
            Some(b) => detector.with_baseline(b),
            None => detector,
        };
        self.alerts = Some(AlertSink {
            detector,
            format: AlertFormat::Json,
            out: Sink::Discard,
            dest: "nowhere".to_owned(),
            pending: Vec::new(),
            written: 0,
            unflushed: 0,
            published: None,
        });
        self.evidence = Some(crate::report::Evidence::default());
        self
    }

    /// The alerts and records kept by [`Output::with_evidence`].
    pub fn take_evidence(&mut self) -> Option<crate::report::Evidence> {
        self.evidence.take()
    }

    /// The detector's counters and alerts written, when it runs.
    pub fn detector_stats(&self) -> Option<(&DetectorStats, u64)> {
        self.alerts
            .as_ref()
            .map(|a| (a.detector.stats(), a.written))
    }

    /// Publishes records and alerts written, export failures and the
    /// detector's counts to `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Output {
        self.metrics = metrics;
        self
    }

    /// Annotates every record with the enclave and host group of each side.
    /// ([`Output::with_detector`] and [`Output::with_evidence`] do it with
    /// the detector's rules, and the detector shares the lookups: do not
    /// replace those rules with others.)
    pub fn with_rules(mut self, rules: Option<rules::Rules>) -> Output {
        self.rules = rules;
        self
    }

    /// Writes a batch of records (and the alerts they raise), then flushes
    /// both: a batch boundary.
    pub fn write_all(&mut self, records: &mut Vec<ConnRecord>) -> Result<(), SensorError> {
        let result = self.write_batch(records);
        records.clear();
        if let Err(e) = &result {
            self.count_failure(e);
            // Keep what can be kept: the other output's complete lines.
            if let Some(sink) = &mut self.alerts {
                let _ = sink.commit();
            }
            if let Some(rec) = &mut self.records {
                let _ = rec.sink().commit();
            }
        }
        self.publish_metrics(result.is_err());
        result
    }

    fn write_batch(&mut self, records: &mut Vec<ConnRecord>) -> Result<(), SensorError> {
        let eve_flows = matches!(self.records, Some(Records::Eve(_)));
        for mut r in records.drain(..) {
            // Located once, for the detector and the annotation.
            let ends = self
                .rules
                .as_ref()
                .map(|rules| crate::enclaves::locate(rules, &r));
            if let Some(sink) = &mut self.alerts {
                match ends {
                    Some((o, d)) => sink.detector.observe_located(&r, o, d, &mut sink.pending),
                    None => sink.detector.observe(&r, &mut sink.pending),
                }
                if let Some(ev) = &mut self.evidence {
                    ev.note_alerts(&sink.pending);
                }
                if eve_flows {
                    self.alerted.extend(
                        sink.pending
                            .iter()
                            .filter(|a| a.event == "alert")
                            .map(|a| a.uid.clone()),
                    );
                }
                sink.flush()?;
            }
            if let Some(inventory) = &mut self.inventory {
                inventory.observe(&r);
            }
            if let Some((learner, _)) = &mut self.learner {
                learner.observe(&r);
            }
            if r.end_reason == EndReason::Start {
                continue; // for the detector only
            }
            if let (Some(rules), Some((o, d))) = (&self.rules, ends) {
                self.names.annotate(rules, &mut r, o, d);
            }
            if let Some(x) = &mut self.ipfix {
                x.export(&r);
            }
            if let Some(ev) = &mut self.evidence {
                ev.note_record(&r);
            }
            let alerted = if r.end_reason == EndReason::Active {
                self.alerted.contains(&r.uid)
            } else {
                self.alerted.remove(&r.uid)
            };
            self.write_record(&r, alerted)
                .map_err(|e| self.write_error(e))?;
            if let Some((o, d)) = ends {
                self.names.reclaim(&mut r, o, d);
            }
        }
        if let Some(x) = &mut self.ipfix {
            x.flush();
        }
        if let Some(sink) = &mut self.alerts {
            sink.commit()?;
        }
        self.commit().map_err(|e| self.write_error(e))
    }

    fn write_record(&mut self, r: &ConnRecord, alerted: bool) -> io::Result<()> {
        let Some(mut rec) = self.records.take() else {
            return Err(io::Error::other("output already failed"));
        };
        if rec.sink().due(r.emitted) {
            if let Err(e) = rec.end_file().and_then(|()| rec.sink().rotate()) {
                self.records = Some(rec);
                return Err(e);
            }
            // Everything before is in the closed, fsynced file.
            self.written += self.unflushed;
            self.unflushed = 0;
            rec = rec.restart();
        }
        rec.sink().begin_entry(r.emitted);
        let result = rec.write(r, alerted);
        self.records = Some(rec);
        result?;
        self.unflushed += 1;
        Ok(())
    }

    fn commit(&mut self) -> io::Result<()> {
        if let Some(rec) = &mut self.records {
            rec.sink().commit()?;
        }
        self.written += self.unflushed;
        self.unflushed = 0;
        Ok(())
    }

    fn write_error(&self, source: io::Error) -> SensorError {
        SensorError::Write {
            what: "records",
            dest: self.dest.clone(),
            written: self.written,
            source,
        }
    }

    /// Counts a failed write in the metrics: `output_closed` when the reader
    /// closed the pipe, `write_error` for anything else.
    fn count_failure(&self, e: &SensorError) {
        let Some(m) = &self.metrics else { return };
        let SensorError::Write { what, source, .. } = e else {
            return;
        };
        let failure = if source.kind() == io::ErrorKind::BrokenPipe {
            ExportFailure::OutputClosed
        } else {
            ExportFailure::WriteError
        };
        if *what == "alerts" {
            m.alert_failure(failure, 1);
        } else {
            m.conn_failure(failure, 1);
        }
    }

    /// Stores the counts so far for the metrics endpoint; the detector's
    /// maps are copied only when an alert was raised since the last time.
    fn publish_metrics(&mut self, force: bool) {
        let Some(m) = &self.metrics else { return };
        m.publish_records(self.written);
        if let Some(sink) = &mut self.alerts {
            let stats = sink.detector.stats();
            let raised: u64 = stats.alerts.values().sum();
            if force || sink.published != Some((raised, sink.written)) {
                sink.published = Some((raised, sink.written));
                let counts = AlertCounts {
                    by_reason: stats
                        .alerts
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), *v))
                        .collect(),
                    by_severity: stats
                        .severities
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), *v))
                        .collect(),
                };
                m.publish_alerts(sink.written, counts);
            }
        }
    }

    /// Flushes, writes any trailer, closes (and with rotation renames) the
    /// files.
    pub fn finish(&mut self) -> Result<(), SensorError> {
        let result = self.finish_files();
        if let Err(e) = &result {
            self.count_failure(e);
        }
        self.publish_metrics(true);
        result
    }

    fn finish_files(&mut self) -> Result<(), SensorError> {
        if let Some(x) = &mut self.ipfix {
            x.finish();
        }
        if let Some((learner, path)) = self.learner.take() {
            let baseline = learner.finish();
            baseline
                .save(&path)
                .map_err(|e| SensorError::Baseline(e.to_string()))?;
            eprintln!(
                "baseline: {} connections across boundaries, {} host pairs ({} periodic) -> {}",
                baseline.connections,
                baseline.pairs.len(),
                baseline
                    .pairs
                    .values()
                    .filter(|p| !p.periodic_services.is_empty())
                    .count(),
                path.display()
            );
        }
        if let Some(sink) = &mut self.alerts {
            sink.detector.finish(&mut sink.pending);
            if let Some(ev) = &mut self.evidence {
                ev.note_alerts(&sink.pending);
            }
            sink.flush()?;
            sink.commit()?;
            let r = sink.out.finish();
            r.map_err(|e| sink.error(e))?;
        }
        let finished = match &mut self.records {
            Some(rec) => rec.end_file().and_then(|()| rec.sink().finish()),
            None => Ok(()),
        };
        finished.map_err(|e| self.write_error(e))?;
        self.written += self.unflushed;
        self.unflushed = 0;
        Ok(())
    }

    /// Records written and flushed.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl AlertSink {
    /// Writes the pending alerts into the buffer.
    fn flush(&mut self) -> Result<(), SensorError> {
        let mut pending = std::mem::take(&mut self.pending);
        let mut result = Ok(());
        for a in pending.drain(..) {
            if let Err(e) = self.write(&a) {
                result = Err(self.error(e));
                break;
            }
        }
        self.pending = pending; // keeps its allocation
        self.pending.clear();
        result
    }

    fn write(&mut self, a: &Alert) -> io::Result<()> {
        if self.out.due(a.ts) {
            self.out.rotate()?;
            self.written += self.unflushed;
            self.unflushed = 0;
        }
        self.out.begin_entry(a.ts);
        self.format.write(&mut self.out, a)?;
        self.unflushed += 1;
        Ok(())
    }

    /// Flushes to the kernel: a batch boundary.
    fn commit(&mut self) -> Result<(), SensorError> {
        self.out.commit().map_err(|e| self.error(e))?;
        self.written += self.unflushed;
        self.unflushed = 0;
        Ok(())
    }

    fn error(&self, source: io::Error) -> SensorError {
        SensorError::Write {
            what: "alerts",
            dest: self.dest.clone(),
            written: self.written,
            source,
        }
    }
}
