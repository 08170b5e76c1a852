//! Where records go: stdout or a file, as JSON lines or Zeek TSV.

use crate::error::SensorError;
use crate::metrics::{AlertCounts, ExportFailure, Metrics};
use flowlib::export::{JsonLinesWriter, RecordWriter, ZeekTsvWriter};
use flowlib::{ConnRecord, EndReason};
use rules::baseline::BaselineBuilder;
use rules::detector::{Alert, Detector, DetectorStats};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

/// Record formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line, Zeek field names.
    Json,
    /// Zeek's tab-separated conn.log.
    Zeek,
}

/// The record output, which treats a closed pipe as a request to stop.
pub struct Output {
    writer: Box<dyn RecordWriter>,
    closed: bool,
    written: u64,
    rules: Option<rules::Rules>,
    alerts: Option<AlertSink>,
    learner: Option<(BaselineBuilder, PathBuf)>,
    metrics: Option<Arc<Metrics>>,
}

/// The detector and where its alerts go (JSON lines).
struct AlertSink {
    detector: Detector,
    out: BufWriter<File>,
    pending: Vec<Alert>,
    written: u64,
    /// (alerts raised, lines written) last published to the metrics.
    published: Option<(u64, u64)>,
}

impl Output {
    /// Opens `path` (or stdout when `None`) for `format`.
    pub fn open(path: Option<&Path>, format: Format) -> Result<Output, SensorError> {
        let sink: Box<dyn Write> = match path {
            Some(p) => Box::new(BufWriter::with_capacity(
                1 << 16,
                File::create(p).map_err(SensorError::Output)?,
            )),
            None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout())),
        };
        let writer: Box<dyn RecordWriter> = match format {
            Format::Json => Box::new(JsonLinesWriter::new(sink)),
            Format::Zeek => Box::new(ZeekTsvWriter::new(sink)),
        };
        Ok(Output {
            writer,
            closed: false,
            written: 0,
            rules: None,
            alerts: None,
            learner: None,
            metrics: None,
        })
    }

    /// An output that writes no records (e.g. while learning a baseline).
    pub fn discard() -> Output {
        Output {
            writer: Box::new(JsonLinesWriter::new(io::sink())),
            closed: false,
            written: 0,
            rules: None,
            alerts: None,
            learner: None,
            metrics: None,
        }
    }

    /// Learns a baseline from every record; written to `path` at the end.
    pub fn with_learner(mut self, rules: rules::Rules, path: &Path) -> Output {
        self.learner = Some((BaselineBuilder::new(rules), path.to_owned()));
        self
    }

    /// Runs the detector over every record, writing alerts as JSON lines
    /// to `path`. The flow table must report start records
    /// ([`flowlib::TableConfig::report_starts`]) for policy alerts to be
    /// raised on a connection's first packet.
    pub fn with_detector(
        mut self,
        rules: rules::Rules,
        baseline: Option<rules::baseline::Baseline>,
        path: &Path,
    ) -> Result<Output, SensorError> {
        let f = File::create(path).map_err(SensorError::Output)?;
        self.rules = Some(rules.clone());
        let detector = Detector::new(rules);
        let detector = match baseline {
            Some(b) => detector.with_baseline(b),
            None => detector,
        };
        self.alerts = Some(AlertSink {
            detector,
            out: BufWriter::new(f),
            pending: Vec::new(),
            written: 0,
            published: None,
        });
        Ok(self)
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
    pub fn with_rules(mut self, rules: Option<rules::Rules>) -> Output {
        self.rules = rules;
        self
    }

    /// Writes records; after the reader went away (broken pipe) records are
    /// dropped silently and [`Output::is_closed`] turns true.
    pub fn write_all(&mut self, records: &mut Vec<ConnRecord>) -> Result<(), SensorError> {
        let result = self.write_records(records);
        self.publish_metrics(result.is_err());
        result
    }

    fn write_records(&mut self, records: &mut Vec<ConnRecord>) -> Result<(), SensorError> {
        for mut r in records.drain(..) {
            if self.closed {
                if r.end_reason != EndReason::Start {
                    if let Some(m) = &self.metrics {
                        m.conn_failure(ExportFailure::OutputClosed, 1);
                    }
                }
                continue;
            }
            if let Some(sink) = &mut self.alerts {
                sink.detector.observe(&r, &mut sink.pending);
                if let Err(e) = sink.flush() {
                    if let Some(m) = &self.metrics {
                        m.alert_failure(ExportFailure::WriteError, 1);
                    }
                    return Err(e);
                }
            }
            if let Some((learner, _)) = &mut self.learner {
                learner.observe(&r);
            }
            if r.end_reason == EndReason::Start {
                continue; // for the detector only
            }
            if let Some(rules) = &self.rules {
                crate::enclaves::annotate(rules, &mut r);
            }
            match self.writer.write_record(&r) {
                Ok(()) => self.written += 1,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    self.closed = true;
                    if let Some(m) = &self.metrics {
                        m.conn_failure(ExportFailure::OutputClosed, 1);
                    }
                }
                Err(e) => {
                    if let Some(m) = &self.metrics {
                        m.conn_failure(ExportFailure::WriteError, 1);
                    }
                    return Err(SensorError::Output(e));
                }
            }
        }
        Ok(())
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

    /// Flushes and writes any trailer.
    pub fn finish(&mut self) -> Result<(), SensorError> {
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
            let flushed = sink
                .flush()
                .and_then(|()| sink.out.flush().map_err(SensorError::Output));
            if flushed.is_err() {
                if let Some(m) = &self.metrics {
                    m.alert_failure(ExportFailure::WriteError, 1);
                }
            }
            self.publish_metrics(true);
            flushed?;
        }
        if self.closed {
            return Ok(());
        }
        match self.writer.finish() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => {
                if let Some(m) = &self.metrics {
                    m.conn_failure(ExportFailure::WriteError, 1);
                }
                Err(SensorError::Output(e))
            }
            Ok(()) => Ok(()),
        }
    }

    /// The reader closed the pipe.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Records written.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl AlertSink {
    fn flush(&mut self) -> Result<(), SensorError> {
        for a in self.pending.drain(..) {
            serde_json::to_writer(&mut self.out, &a).map_err(|e| SensorError::Output(e.into()))?;
            self.out.write_all(b"\n").map_err(SensorError::Output)?;
            self.written += 1;
        }
        Ok(())
    }
}
