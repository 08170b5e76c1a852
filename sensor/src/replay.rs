//! `sensor replay`: capture files through the sharded pipeline into records.
//!
//! Several files form one timeline ([`Timeline`]): packets are merged by
//! capture time across files. Progress is shown with [`Progress`].

use crate::error::SensorError;
use crate::metrics::Metrics;
use crate::output::Output;
use crate::pipeline::{self, PipelineConfig};
use crate::progress::Progress;
use crate::scan;
use crate::summary::Summary;
use crate::timeline::Timeline;
use flowlib::{EndReason, TableConfig};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
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
    /// Show progress: a bar when stderr is a terminal, else a summary
    /// line at the end ([`Progress`]).
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

/// The inputs of a replay, opened: one timeline, or one per shard when
/// every shard reads the files itself.
pub struct ReplayInputs {
    timelines: Vec<Timeline>,
}

impl ReplayInputs {
    /// Opens the inputs of `cfg`. With several workers and files on disk,
    /// every shard's copy is opened now: a shard that could not open them
    /// (too many open files) stops the run before any output is created,
    /// instead of leaving its share of the flows out.
    pub fn open(cfg: &ReplayConfig) -> Result<ReplayInputs, SensorError> {
        let first = Timeline::open(&cfg.files, cfg.bpf.as_deref())?;
        let copies = if cfg.workers > 1 && first.rereadable() {
            cfg.workers
        } else {
            1
        };
        let mut timelines = vec![first];
        for _ in 1..copies {
            let t = Timeline::open(&cfg.files, cfg.bpf.as_deref()).map_err(|e| match e {
                SensorError::Open { path, message } => SensorError::Open {
                    path,
                    message: format!(
                        "{message} (each of the {copies} workers opens every input; try fewer --workers)"
                    ),
                },
                e => e,
            })?;
            timelines.push(t);
        }
        Ok(ReplayInputs { timelines })
    }
}

/// Replays every file through the sharded pipeline into `out`.
pub fn replay(cfg: &ReplayConfig, out: &mut Output) -> Result<ReplayOutcome, SensorError> {
    replay_opened(ReplayInputs::open(cfg)?, cfg, out)
}

/// [`replay`] of inputs already opened (by [`ReplayInputs::open`] with the
/// same `cfg`).
pub fn replay_opened(
    inputs: ReplayInputs,
    cfg: &ReplayConfig,
    out: &mut Output,
) -> Result<ReplayOutcome, SensorError> {
    let mut timelines = inputs.timelines;
    let progress = Progress::new("replay", timelines[0].size(), cfg.progress);
    let started = Instant::now();
    let pipeline = PipelineConfig {
        workers: cfg.workers,
        table: cfg.table.clone(),
        final_reason: EndReason::Eof,
        lossy: false,
        shutdown: cfg.shutdown.clone(),
        metrics: cfg.metrics.clone(),
    };
    let n_files = timelines[0].files().len();
    // Records read from the files and those the filter left out (with
    // shards reading the files, shard 0's count: every shard reads every
    // record).
    let read;
    let (stats, input_error) = if timelines.len() > 1 {
        // Files on disk: every shard reads them itself (no dispatcher).
        let opened = timelines.into_iter().map(Some);
        let opened: Vec<Mutex<Option<Timeline>>> = opened.map(Mutex::new).collect();
        let (stats, errors) = scan::run(&pipeline, out, |shard| {
            let hidden = Progress::hidden();
            let progress = if shard.shard() == 0 {
                &progress
            } else {
                &hidden
            };
            let Some(mut timeline) = opened
                .get(shard.shard())
                .and_then(|t| t.lock().ok()?.take())
            else {
                return (None, (0, 0));
            };
            let error = timeline.for_each(progress, |p| match shard.offer(p) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()), // the output went away
            });
            (error, (timeline.read(), timeline.left_out()))
        })?;
        read = errors.first().map_or((0, 0), |e| e.1);
        // Every shard reads the same bytes, so they fail alike; a shard
        // whose own reading failed (an I/O error) is reported too.
        (stats, errors.into_iter().find_map(|e| e.0))
    } else {
        let mut timeline = timelines.swap_remove(0);
        let run = pipeline::run(&pipeline, out, |d| {
            timeline.for_each(&progress, |p| match d.dispatch(p) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()), // the output went away
            })
        })?;
        read = (timeline.read(), timeline.left_out());
        run
    };
    progress.finish();
    let mut summary = Summary::new(
        format!("{n_files} file{}", if n_files == 1 { "" } else { "s" }),
        stats.meter,
        stats.table,
        stats.records,
        started.elapsed(),
    );
    if cfg.bpf.is_some() {
        summary = summary.with_filtered(read.0, read.1);
    }
    Ok(ReplayOutcome {
        summary,
        input_error,
    })
}
