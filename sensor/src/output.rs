//! Where records and alerts go: stdout or files (maybe rotated), as JSON
//! lines, Zeek TSV or Suricata EVE.
//!
//! Records and alerts are flushed at batch boundaries (each batch of
//! records the pipeline hands over), so a crash loses at most the batch
//! being written, and whenever [`COMMIT_BYTES`] are waiting, so the buffer
//! never fills and flushes lines nobody counted. The counts reported as
//! written are the lines flushed;
//! any write error (a full disk, a reader that closed the pipe) ends the
//! run with [`SensorError::Write`], naming how many were written.

use crate::error::SensorError;
use crate::eve::{self, AlertFormat};
use crate::ipfix_export::{ExportStats, IpfixExporter};
use crate::metrics::{AlertCounts, ExportFailure, Metrics};
use crate::rotation::{LogFile, Rotation};
use crate::start::ConnStart;
use flowlib::export::{JsonLinesWriter, RecordWriter, ZeekTsvWriter};
use flowlib::{ConnRecord, EndReason, Timestamp};
use rules::baseline::BaselineBuilder;
use rules::detector::{Alert, Detector, DetectorStats};
use rules::inventory::{Inventory, InventoryBuilder};
use rules::Location;
use std::collections::HashSet;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use writer::WriterThread;

mod writer;

/// Bytes of complete lines that may wait in an output buffer (of twice
/// this size); once more do, they are flushed and counted as written.
pub const COMMIT_BYTES: usize = 32 * 1024;

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

    /// Whether [`COMMIT_BYTES`] or more wait in the buffer.
    fn commit_due(&self) -> bool {
        let waiting = match self {
            Sink::Stdout(w) => w.buffer().len(),
            Sink::File(f) => f.buffered(),
            Sink::Discard => 0,
        };
        waiting >= COMMIT_BYTES
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
///
/// A batch is handled in two passes: the scoring pass (where each end is,
/// the detector and its alerts, the inventory, the learner) and the writing
/// pass (annotation, IPFIX, the record lines). With
/// [`Output::with_writer_thread`] the writing pass runs on a thread of its
/// own, overlapping the next batch's scoring.
pub struct Output {
    /// The writing pass, when it runs on the caller's thread (always
    /// before the first batch and after [`Output::finish`]).
    log: Option<RecordLog>,
    /// The writing pass, when it runs on its own thread.
    writer: Option<WriterThread>,
    /// Start the writer thread with the first batch.
    want_writer_thread: bool,
    /// Records are written as EVE `flow` events, which say whether an
    /// alert named the connection.
    eve_flows: bool,
    rules: Option<rules::Rules>,
    alerts: Option<AlertSink>,
    learner: Option<(BaselineBuilder, PathBuf)>,
    /// What the learner wrote, once it has: a line for the summary.
    learned: Option<String>,
    inventory: Option<InventoryBuilder>,
    evidence: Option<crate::report::Evidence>,
    /// Uids of connections with an alert whose final record is not written
    /// yet (for EVE's `flow.alerted`).
    alerted: HashSet<String>,
    metrics: Option<Arc<Metrics>>,
    /// What the scoring pass found for each record of the batch.
    marks: Vec<Mark>,
    /// The record each compact start is scored as, rewritten for the next
    /// one ([`ConnStart::record_into`]: no allocation per start).
    start_record: Option<ConnRecord>,
    /// Batches handed to the writer thread.
    handed_over: u64,
}

/// What the scoring pass found out about a record for the writing pass.
#[derive(Clone, Copy, Debug)]
struct Mark {
    /// Where the originator and the responder are, when there are rules.
    ends: Option<(Location, Location)>,
    /// An alert named the connection (EVE's `flow.alerted`).
    alerted: bool,
}

/// The writing pass of an output: the record lines in their format,
/// the enclave annotation, the IPFIX export, and the counts written.
struct RecordLog {
    records: Option<Records>,
    dest: String,
    /// Records flushed.
    written: u64,
    /// Records handed to the writer since the last flush.
    unflushed: u64,
    /// The rules whose enclave and host group names annotate the records.
    rules: Option<rules::Rules>,
    ipfix: Option<IpfixExporter>,
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
    /// (alerts raised, lines written, outcomes of full tables) last
    /// published to the metrics.
    published: Option<(u64, u64, u64)>,
}

fn describe(path: Option<&Path>) -> String {
    path.map_or_else(|| "standard output".to_owned(), |p| p.display().to_string())
}

/// `s` as a record, written over the one `scratch` holds if it holds one.
fn start_record<'a>(scratch: &'a mut Option<ConnRecord>, s: &ConnStart) -> &'a ConnRecord {
    match scratch {
        Some(r) => {
            s.record_into(r);
            r
        }
        None => scratch.insert(s.record()),
    }
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
            eve_flows: matches!(records, Records::Eve(_)),
            log: Some(RecordLog {
                records: Some(records),
                dest,
                written: 0,
                unflushed: 0,
                rules: None,
                ipfix: None,
                metrics: None,
                names: crate::enclaves::NamePool::default(),
            }),
            writer: None,
            want_writer_thread: false,
            rules: None,
            alerts: None,
            learner: None,
            learned: None,
            inventory: None,
            evidence: None,
            alerted: HashSet::new(),
            metrics: None,
            marks: Vec::new(),
            start_record: None,
            handed_over: 0,
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
        if let Some(log) = &mut self.log {
            log.ipfix = exporter;
        }
        self
    }

    /// The IPFIX export's counters, when it runs (final after
    /// [`Output::finish`]; `None` while the writer thread holds them).
    pub fn ipfix_stats(&self) -> Option<&ExportStats> {
        self.log.as_ref()?.ipfix.as_ref().map(|x| x.stats())
    }

    /// Learns a baseline from every record; written to `path` at the end.
    pub fn with_learner(mut self, rules: rules::Rules, path: &Path) -> Output {
        self.learner = Some((BaselineBuilder::new(rules), path.to_owned()));
        self
    }

    /// A line saying what the learner wrote, once the output is finished
    /// (`baseline: N connections across boundaries, ... -> FILE`).
    pub fn learned(&self) -> Option<&str> {
        self.learned.as_deref()
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
        self.alerts = Some(AlertSink::new(
            &rules,
            baseline,
            format,
            out,
            describe(Some(path)),
        ));
        Ok(self.with_rules(Some(rules)))
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
    /// Records are annotated with enclaves and host groups. (The records
    /// are then written on the caller's thread, whatever
    /// [`Output::with_writer_thread`] asks.)
    pub fn with_evidence(
        mut self,
        rules: rules::Rules,
        baseline: Option<rules::baseline::Baseline>,
    ) -> Output {
        self.alerts = Some(AlertSink::new(
            &rules,
            baseline,
            AlertFormat::Json,
            Sink::Discard,
            "nowhere".to_owned(),
        ));
        self.evidence = Some(crate::report::Evidence::default());
        self.with_rules(Some(rules))
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
        if let Some(log) = &mut self.log {
            log.metrics.clone_from(&metrics);
        }
        self.metrics = metrics;
        self
    }

    /// Annotates every record with the enclave and host group of each side.
    /// ([`Output::with_detector`] and [`Output::with_evidence`] do it with
    /// the detector's rules, and the detector shares the lookups: do not
    /// replace those rules with others.)
    pub fn with_rules(mut self, rules: Option<rules::Rules>) -> Output {
        if let Some(log) = &mut self.log {
            log.rules.clone_from(&rules);
        }
        self.rules = rules;
        self
    }

    /// Writes the records on a thread of their own when `on` (from the
    /// first batch to [`Output::finish`]), so that writing one batch
    /// overlaps scoring the next: when the detector, the inventory or the
    /// learner runs (else there is nothing to overlap) and not for
    /// [`Output::with_evidence`]. Same lines, same order, same counts; a
    /// write error is reported by the next [`Output::write_all`] or by
    /// [`Output::finish`]. Worth it when there is a core to spare.
    pub fn with_writer_thread(mut self, on: bool) -> Output {
        self.want_writer_thread = on;
        self
    }

    /// Writes a batch of records (and the alerts they raise), then flushes
    /// both: a batch boundary.
    pub fn write_all(&mut self, records: &mut Vec<ConnRecord>) -> Result<(), SensorError> {
        self.write_released(records, &mut Vec::new())
    }

    /// [`Output::write_all`] for a batch released with its compact start
    /// records apart ([`RecordOrder::release_items_up_to`]): each start is
    /// scored in its place, before the record at its index (start records
    /// are never written). Clears both.
    ///
    /// [`RecordOrder::release_items_up_to`]: crate::order::RecordOrder::release_items_up_to
    pub fn write_released(
        &mut self,
        records: &mut Vec<ConnRecord>,
        starts: &mut Vec<(usize, ConnStart)>,
    ) -> Result<(), SensorError> {
        let result = self.write_batch(records, starts);
        records.clear();
        starts.clear();
        if let Err(e) = &result {
            self.count_failure(e);
            // Keep what can be kept: the other output's complete lines.
            if let Some(sink) = &mut self.alerts {
                let _ = sink.commit();
            }
            if let Some(rec) = self.log.as_mut().and_then(|l| l.records.as_mut()) {
                let _ = rec.sink().commit();
            }
        }
        self.publish_metrics(result.is_err());
        result
    }

    fn write_batch(
        &mut self,
        records: &mut Vec<ConnRecord>,
        starts: &[(usize, ConnStart)],
    ) -> Result<(), SensorError> {
        let scoring = self.alerts.is_some() || self.inventory.is_some() || self.learner.is_some();
        if self.want_writer_thread && scoring && self.evidence.is_none() && self.writer.is_none() {
            if let Some(log) = self.log.take() {
                self.writer = Some(WriterThread::start(log));
            }
        }
        let mut marks = std::mem::take(&mut self.marks);
        marks.clear();
        let result = self.score(records, starts, &mut marks).and_then(|()| {
            match (&mut self.writer, &mut self.log) {
                (Some(w), _) => {
                    self.handed_over += 1;
                    w.write(records, &mut marks)
                }
                (None, Some(log)) => log.write_batch(records, &marks, self.evidence.as_mut()),
                (None, None) => Err(SensorError::Write {
                    what: "records",
                    dest: "the record writer".to_owned(),
                    written: 0,
                    source: io::Error::other("output already failed"),
                }),
            }
        });
        self.marks = marks;
        result
    }

    /// The scoring pass over a batch: where each end is, the detector and
    /// its alerts (written and flushed), the inventory and the learner.
    fn score(
        &mut self,
        records: &[ConnRecord],
        starts: &[(usize, ConnStart)],
        marks: &mut Vec<Mark>,
    ) -> Result<(), SensorError> {
        let mut starts = starts.iter().peekable();
        let mut scratch = self.start_record.take();
        let mut scored = || {
            for (i, r) in records.iter().enumerate() {
                while let Some((_, s)) = starts.next_if(|(at, _)| *at <= i) {
                    self.score_one(start_record(&mut scratch, s))?;
                }
                let mark = self.score_one(r)?;
                marks.push(mark);
            }
            for (_, s) in starts.by_ref() {
                self.score_one(start_record(&mut scratch, s))?;
            }
            Ok::<(), SensorError>(())
        };
        let result = scored();
        self.start_record = scratch;
        result?;
        if let Some(sink) = &mut self.alerts {
            sink.commit()?;
        }
        Ok(())
    }

    /// Scores one record; what the writing pass needs to know of it.
    fn score_one(&mut self, r: &ConnRecord) -> Result<Mark, SensorError> {
        // Located once, for the detector and the annotation.
        let ends = self
            .rules
            .as_ref()
            .map(|rules| crate::enclaves::locate(rules, r));
        if let Some(sink) = &mut self.alerts {
            match ends {
                Some((o, d)) => sink.detector.observe_located(r, o, d, &mut sink.pending),
                None => sink.detector.observe(r, &mut sink.pending),
            }
            if let Some(ev) = &mut self.evidence {
                ev.note_alerts(&sink.pending);
            }
            if self.eve_flows {
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
            inventory.observe(r);
        }
        if let Some((learner, _)) = &mut self.learner {
            learner.observe(r);
        }
        let alerted = match r.end_reason {
            _ if self.alerted.is_empty() => false,
            EndReason::Start => false,
            EndReason::Active => self.alerted.contains(&r.uid),
            _ => self.alerted.remove(&r.uid),
        };
        Ok(Mark { ends, alerted })
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
    /// (The writer thread publishes its own count of records written.)
    fn publish_metrics(&mut self, force: bool) {
        let Some(m) = &self.metrics else { return };
        if let Some(log) = &self.log {
            m.publish_records(log.written);
        }
        if let Some(sink) = &mut self.alerts {
            let stats = sink.detector.stats();
            let raised: u64 = stats.alerts.values().sum();
            let full: u64 = stats.bounded().iter().map(|(_, _, n)| n).sum();
            if force || sink.published != Some((raised, sink.written, full)) {
                sink.published = Some((raised, sink.written, full));
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
                    full_tables: stats.bounded(),
                };
                m.publish_alerts(sink.written, counts);
            }
        }
    }

    /// Waits for the writer thread to write every batch handed to it,
    /// flushes, writes any trailer, closes (and with rotation renames) the
    /// files.
    pub fn finish(&mut self) -> Result<(), SensorError> {
        let result = self.join_writer().and_then(|()| self.finish_files());
        if let Err(e) = &result {
            self.count_failure(e);
        }
        self.publish_metrics(true);
        result
    }

    /// Takes the writing pass back from its thread, once it has written
    /// every batch; its write error, if it had one not reported yet.
    fn join_writer(&mut self) -> Result<(), SensorError> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        let (log, failure) = w.join();
        self.log = log;
        failure.map_or(Ok(()), Err)
    }

    fn finish_files(&mut self) -> Result<(), SensorError> {
        if let Some((learner, path)) = self.learner.take() {
            let baseline = learner.finish();
            baseline.save(&path).map_err(|e| match e {
                // A write that failed is exit 1, as for every output.
                rules::baseline::BaselineError::Io { source, .. } => {
                    SensorError::write_file(&path, &source)
                }
                e => SensorError::Baseline(e.to_string()),
            })?;
            self.learned = Some(format!(
                "baseline: {} connections across boundaries, {} host pairs ({} periodic) -> {}",
                baseline.connections,
                baseline.pairs.len(),
                baseline
                    .pairs
                    .values()
                    .filter(|p| !p.periodic_services.is_empty())
                    .count(),
                path.display()
            ));
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
        match &mut self.log {
            Some(log) => log.finish(),
            None => Ok(()),
        }
    }

    /// Records written and flushed (all of them after [`Output::finish`]).
    pub fn written(&self) -> u64 {
        self.log.as_ref().map_or(0, |l| l.written)
    }

    /// Ends a finished output ([`Output::finish`] returned `Ok`) without
    /// freeing what it holds, when the process exits next: with the
    /// detector on, its tables hold hundreds of thousands of small
    /// allocations (a beacon history per pair of hosts, alert dedup
    /// entries), and freeing them one by one took 60-70 ms at the end of
    /// the benchmark replay, after every line was written. The system takes
    /// the memory back at exit. Files, sockets and the writer thread are
    /// already flushed, closed or joined by `finish`; nothing else happens
    /// on drop.
    pub fn leave_to_exit(self) {
        std::mem::forget(self);
    }
}

impl RecordLog {
    /// The writing pass over a batch, with what the scoring pass found
    /// (`marks`, one per record); start records are for the detector only.
    /// Drains `records`.
    fn write_batch(
        &mut self,
        records: &mut Vec<ConnRecord>,
        marks: &[Mark],
        mut evidence: Option<&mut crate::report::Evidence>,
    ) -> Result<(), SensorError> {
        for (mut r, mark) in records.drain(..).zip(marks) {
            if r.end_reason == EndReason::Start {
                continue;
            }
            if let (Some(rules), Some((o, d))) = (&self.rules, mark.ends) {
                self.names.annotate(rules, &mut r, o, d);
            }
            if let Some(x) = &mut self.ipfix {
                x.export(&r);
            }
            if let Some(ev) = evidence.as_deref_mut() {
                ev.note_record(&r);
            }
            self.write_record(&r, mark.alerted)
                .map_err(|e| self.write_error(e))?;
            if let Some((o, d)) = mark.ends {
                self.names.reclaim(&mut r, o, d);
            }
        }
        if let Some(x) = &mut self.ipfix {
            x.flush();
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
        let commit = rec.sink().commit_due();
        self.records = Some(rec);
        result?;
        self.unflushed += 1;
        if commit {
            self.commit()?;
        }
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

    /// Stores the count written so far for the metrics endpoint.
    fn publish_written(&self) {
        if let Some(m) = &self.metrics {
            m.publish_records(self.written);
        }
    }

    /// Ends the IPFIX export and the record file (trailer, flush, close).
    fn finish(&mut self) -> Result<(), SensorError> {
        if let Some(x) = &mut self.ipfix {
            x.finish();
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
}

impl AlertSink {
    /// A detector for `rules` (and `baseline`) whose alerts go to `out`.
    fn new(
        rules: &rules::Rules,
        baseline: Option<rules::baseline::Baseline>,
        format: AlertFormat,
        out: Sink,
        dest: String,
    ) -> AlertSink {
        let detector = Detector::new(rules.clone());
        let detector = match baseline {
            Some(b) => detector.with_baseline(b),
            None => detector,
        };
        AlertSink {
            detector,
            format,
            out,
            dest,
            pending: Vec::new(),
            written: 0,
            unflushed: 0,
            published: None,
        }
    }

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
        if self.out.commit_due() {
            self.out.commit()?;
            self.written += self.unflushed;
            self.unflushed = 0;
        }
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

/// Writes `text` to `path` or standard output. A reader that closed
/// standard output early (`| head`) is not an error.
pub fn write_text(path: Option<&Path>, text: &str) -> Result<(), SensorError> {
    use std::io::Write;
    match path {
        Some(p) => std::fs::write(p, text).map_err(|e| SensorError::write_file(p, &e)),
        None => {
            let mut o = std::io::stdout().lock();
            match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other.map_err(SensorError::Output),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{replay, ReplayConfig};
    use flowbench::{Interleave, MixConfig, RealisticFlows};
    use flowlib::pcap_writer::{PcapWriter, Resolution};
    use flowlib::{LinkType, TableConfig};
    use std::sync::atomic::AtomicBool;

    /// A fresh directory for one test's files.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flowmon-output-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn repo(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
    }

    /// A generated capture of `packets` packets of users, resolver and
    /// internet traffic (the benchmark's mix and address plan): many
    /// batches, and many alerts with `rules/examples/bench.toml`.
    fn generated_capture(dir: &Path, packets: usize) -> PathBuf {
        let path = dir.join("mix.pcap");
        let file = io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut w = PcapWriter::new(file, Resolution::Micros, 65_535, LinkType::ETHERNET).unwrap();
        let mut frames = Interleave::new(RealisticFlows::new(MixConfig::new(11, 4_000)));
        let mut buf = Vec::new();
        for _ in 0..packets {
            let Some(ts) = frames.next_into(&mut buf) else {
                break;
            };
            w.write_packet(ts, &buf, buf.len() as u32).unwrap();
        }
        w.into_inner().unwrap().flush().unwrap();
        path
    }

    /// Replay of `capture` with 2 workers, start records on (as the
    /// detector needs).
    fn config(capture: &Path) -> ReplayConfig {
        ReplayConfig {
            files: vec![capture.to_owned()],
            bpf: None,
            table: TableConfig {
                report_starts: true,
                ..TableConfig::default()
            },
            workers: 2,
            progress: false,
            shutdown: Arc::new(AtomicBool::new(false)),
            metrics: None,
        }
    }

    struct Run {
        records: Vec<u8>,
        alerts: Vec<u8>,
        written: u64,
        handed_over: u64,
    }

    /// Replays `capture` with `rules` into `format` records and EVE alerts
    /// under `dir`, the writer thread on or off.
    fn run(dir: &Path, capture: &Path, rules: &str, format: Format, threaded: bool) -> Run {
        let rules = crate::enclaves::load(&repo(rules)).unwrap();
        let name = format!("{format:?}-{threaded}");
        let (records, alerts) = (dir.join(&name), dir.join(format!("{name}.alerts")));
        let mut out = Output::open(Some(&records), format, Rotation::default())
            .unwrap()
            .with_detector(rules, None, &alerts, AlertFormat::Eve, Rotation::default())
            .unwrap()
            .with_writer_thread(threaded);
        let outcome = replay(&config(capture), &mut out).unwrap(); // finishes the output
        assert!(outcome.input_error.is_none());
        Run {
            records: std::fs::read(&records).unwrap(),
            alerts: std::fs::read(&alerts).unwrap(),
            written: out.written(),
            handed_over: out.handed_over,
        }
    }

    #[test]
    fn the_writer_thread_writes_what_the_callers_thread_writes() {
        let dir = scratch("same");
        let generated = generated_capture(&dir, 60_000);
        let cases = [
            (repo("demo/msp-demo.pcap"), "rules/examples/demo.toml"),
            (generated, "rules/examples/bench.toml"),
        ];
        for (capture, rules) in &cases {
            for format in [Format::Json, Format::Zeek, Format::Eve] {
                let what = format!("{} as {format:?}", capture.display());
                let here = run(&dir, capture, rules, format, false);
                let there = run(&dir, capture, rules, format, true);
                assert_eq!(here.handed_over, 0, "{what}");
                assert!(there.handed_over > 0, "{what}: the thread wrote");
                assert!(here.written > 0 && !here.alerts.is_empty(), "{what}");
                assert_eq!(here.written, there.written, "{what}");
                assert!(here.records == there.records, "{what}: records differ");
                assert!(here.alerts == there.alerts, "{what}: alerts differ");
                if format == Format::Eve {
                    let text = String::from_utf8(there.records).unwrap();
                    assert!(text.contains("\"alerted\":true"), "{what}");
                }
            }
        }
        // The generated capture is many batches, and its last one (every
        // connection still open) is cut into several.
        let last = run(&dir, &cases[1].0, cases[1].1, Format::Json, true);
        assert!(last.handed_over > 10, "{} batches", last.handed_over);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_error_on_the_writer_thread_ends_the_run_with_the_error() {
        let dir = scratch("full");
        let capture = generated_capture(&dir, 30_000);
        let rules = crate::enclaves::load(&repo("rules/examples/bench.toml")).unwrap();
        let full = Path::new("/dev/full");
        let mut out = Output::open(Some(full), Format::Json, Rotation::default())
            .unwrap()
            .with_detector(
                rules,
                None,
                &dir.join("alerts"),
                AlertFormat::Json,
                Rotation::default(),
            )
            .unwrap()
            .with_writer_thread(true);
        let err = replay(&config(&capture), &mut out)
            .err()
            .expect("the records cannot be written");
        match err {
            SensorError::Write {
                what, dest, source, ..
            } => {
                assert_eq!((what, dest.as_str()), ("records", "/dev/full"));
                assert_eq!(source.raw_os_error(), Some(28), "{source}"); // ENOSPC
            }
            other => panic!("{other}"),
        }
        assert!(out.handed_over > 0);
        // Refused from then on, not dropped silently.
        let again = out.write_all(&mut Vec::new());
        assert!(again.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
