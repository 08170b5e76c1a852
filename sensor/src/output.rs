//! Where records go: stdout or a file, as JSON lines or Zeek TSV.

use crate::error::SensorError;
use crate::ipfix_export::{ExportStats, IpfixExporter};
use flowlib::export::{JsonLinesWriter, RecordWriter, ZeekTsvWriter};
use flowlib::{ConnRecord, EndReason};
use rules::baseline::BaselineBuilder;
use rules::detector::{Alert, Detector, DetectorStats};
use rules::inventory::{Inventory, InventoryBuilder};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::path::PathBuf;

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
    ipfix: Option<IpfixExporter>,
    inventory: Option<InventoryBuilder>,
    evidence: Option<crate::report::Evidence>,
}

/// The detector and where its alerts go (JSON lines).
struct AlertSink {
    detector: Detector,
    /// `None`: alerts are only kept in memory (see [`Output::with_evidence`]).
    out: Option<BufWriter<File>>,
    pending: Vec<Alert>,
    written: u64,
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
            ipfix: None,
            inventory: None,
            evidence: None,
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
            ipfix: None,
            inventory: None,
            evidence: None,
        }
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
            out: Some(BufWriter::new(f)),
            pending: Vec::new(),
            written: 0,
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
            out: None,
            pending: Vec::new(),
            written: 0,
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

    /// Annotates every record with the enclave and host group of each side.
    /// ([`Output::with_detector`] and [`Output::with_evidence`] do it with
    /// the detector's rules, and the detector shares the lookups: do not
    /// replace those rules with others.)
    pub fn with_rules(mut self, rules: Option<rules::Rules>) -> Output {
        self.rules = rules;
        self
    }

    /// Writes records; after the reader went away (broken pipe) records are
    /// dropped silently and [`Output::is_closed`] turns true.
    pub fn write_all(&mut self, records: &mut Vec<ConnRecord>) -> Result<(), SensorError> {
        for mut r in records.drain(..) {
            if self.closed {
                continue;
            }
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
                crate::enclaves::annotate_located(rules, &mut r, o, d);
            }
            if let Some(x) = &mut self.ipfix {
                x.export(&r);
            }
            if let Some(ev) = &mut self.evidence {
                ev.note_record(&r);
            }
            match self.writer.write_record(&r) {
                Ok(()) => self.written += 1,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.closed = true,
                Err(e) => return Err(SensorError::Output(e)),
            }
        }
        if let Some(x) = &mut self.ipfix {
            x.flush();
        }
        Ok(())
    }

    /// Flushes and writes any trailer.
    pub fn finish(&mut self) -> Result<(), SensorError> {
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
            if let Some(out) = &mut sink.out {
                out.flush().map_err(SensorError::Output)?;
            }
        }
        if self.closed {
            return Ok(());
        }
        match self.writer.finish() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other.map_err(SensorError::Output),
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
            if let Some(out) = &mut self.out {
                serde_json::to_writer(&mut *out, &a).map_err(|e| SensorError::Output(e.into()))?;
                out.write_all(b"\n").map_err(SensorError::Output)?;
            }
            self.written += 1;
        }
        Ok(())
    }
}
