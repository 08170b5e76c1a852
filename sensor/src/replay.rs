//! `sensor replay`: capture files through the sharded pipeline into records.
//!
//! Several files form one timeline: packets are merged by capture time
//! across files (the common case, files in order, costs no copying of
//! packet data beyond one buffer per file).

use crate::error::SensorError;
use crate::metrics::Metrics;
use crate::output::Output;
use crate::pipeline::{self, Dispatcher, Packet, PipelineConfig};
use crate::source::CaptureFile;
use crate::summary::Summary;
use flowlib::{EndReason, LinkType, TableConfig, Timestamp};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// What to replay and how.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// Capture files, in any order.
    pub files: Vec<PathBuf>,
    /// Optional BPF expression.
    pub bpf: Option<String>,
    /// Flow table settings.
    pub table: TableConfig,
    /// Shard workers.
    pub workers: usize,
    /// Show a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// Set by SIGINT/SIGTERM: stop reading and flush.
    pub shutdown: Arc<AtomicBool>,
    /// Counters for the metrics endpoint, when one runs.
    pub metrics: Option<Arc<Metrics>>,
}

/// The outcome of a replay: counters, and the first input error if any.
pub struct ReplayOutcome {
    /// Counters for the summary.
    pub summary: Summary,
    /// An input that ended early (every complete record was still processed).
    pub input_error: Option<SensorError>,
}

/// One file's next packet, copied out of libpcap so files can be merged.
struct Pending {
    ts: Timestamp,
    wire_len: u32,
    link: LinkType,
    data: Vec<u8>,
}

/// Replays every file through the sharded pipeline into `out`.
pub fn replay(cfg: &ReplayConfig, out: &mut Output) -> Result<ReplayOutcome, SensorError> {
    let mut files = Vec::with_capacity(cfg.files.len());
    for path in &cfg.files {
        files.push(CaptureFile::open(path, cfg.bpf.as_deref())?);
    }
    let total: u64 = files.iter().map(|f| f.size()).sum();
    let bar = progress_bar(cfg.progress, total);
    let started = Instant::now();
    let pipeline = PipelineConfig {
        workers: cfg.workers,
        table: cfg.table.clone(),
        final_reason: EndReason::Eof,
        lossy: false,
        shutdown: cfg.shutdown.clone(),
        metrics: cfg.metrics.clone(),
    };
    let n_files = files.len();
    let (stats, input_error) =
        pipeline::run(&pipeline, out, |d| feed(&mut files, d, bar.as_ref()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(ReplayOutcome {
        summary: Summary::new(
            format!("{n_files} file{}", if n_files == 1 { "" } else { "s" }),
            stats.meter,
            stats.table,
            stats.records,
            started.elapsed(),
        ),
        input_error,
    })
}

/// Reads the files as one timeline (merged by capture time) into the
/// dispatcher; returns the first input error.
fn feed(
    files: &mut [CaptureFile],
    d: &mut Dispatcher<'_>,
    bar: Option<&ProgressBar>,
) -> Option<SensorError> {
    if let [file] = files {
        return feed_one(file, d, bar);
    }
    let mut input_error = None;
    let mut since_progress = 0u32;
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut pending: Vec<Option<Pending>> = Vec::with_capacity(files.len());
    for i in 0..files.len() {
        let p = fetch(files, i, &mut spare, &mut input_error);
        pending.push(p);
    }
    loop {
        // Earliest pending packet; ties go to the earlier file.
        let next = pending
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (p.ts, i)))
            .min();
        let Some((_, i)) = next else { break };
        let p = pending[i].take().expect("selected above");
        let packet = Packet {
            ts: p.ts,
            data: &p.data,
            wire_len: p.wire_len,
            link: p.link,
        };
        if d.dispatch(packet).is_err() {
            break; // the output went away
        }
        spare.push(p.data);
        pending[i] = fetch(files, i, &mut spare, &mut input_error);
        since_progress += 1;
        if since_progress == 8192 {
            since_progress = 0;
            if let Some(bar) = bar {
                bar.set_position(files.iter().map(|f| f.position()).sum());
            }
        }
    }
    input_error
}

/// One file: packets go from libpcap's buffer straight to the dispatcher.
fn feed_one(
    file: &mut CaptureFile,
    d: &mut Dispatcher<'_>,
    bar: Option<&ProgressBar>,
) -> Option<SensorError> {
    let mut since_progress = 0u32;
    loop {
        let position = file.position();
        match file.next_packet() {
            Ok(Some(p)) => {
                if p.selected {
                    let packet = Packet {
                        ts: p.ts,
                        data: p.data,
                        wire_len: p.wire_len,
                        link: p.link,
                    };
                    if d.dispatch(packet).is_err() {
                        return None; // the output went away
                    }
                }
            }
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
        since_progress += 1;
        if since_progress == 8192 {
            since_progress = 0;
            if let Some(bar) = bar {
                bar.set_position(position);
            }
        }
    }
}

/// Reads file `i`'s next selected packet into a recycled buffer. A read
/// error ends that file; the first such error is kept for the exit status.
fn fetch(
    files: &mut [CaptureFile],
    i: usize,
    spare: &mut Vec<Vec<u8>>,
    input_error: &mut Option<SensorError>,
) -> Option<Pending> {
    loop {
        match files[i].next_packet() {
            Ok(Some(p)) if !p.selected => continue,
            Ok(Some(p)) => {
                let mut data = spare.pop().unwrap_or_default();
                data.clear();
                data.extend_from_slice(p.data);
                return Some(Pending {
                    ts: p.ts,
                    wire_len: p.wire_len,
                    link: p.link,
                    data,
                });
            }
            Ok(None) => return None,
            Err(e) => {
                if input_error.is_none() {
                    *input_error = Some(e);
                }
                return None;
            }
        }
    }
}

fn progress_bar(enabled: bool, total: u64) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}
