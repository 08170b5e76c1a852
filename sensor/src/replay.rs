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

/// Replays every file through the sharded pipeline into `out`.
pub fn replay(cfg: &ReplayConfig, out: &mut Output) -> Result<ReplayOutcome, SensorError> {
    let mut timeline = Timeline::open(&cfg.files, cfg.bpf.as_deref())?;
    let progress = Progress::new("replay", timeline.size(), cfg.progress);
    let started = Instant::now();
    let pipeline = PipelineConfig {
        workers: cfg.workers,
        table: cfg.table.clone(),
        final_reason: EndReason::Eof,
        lossy: false,
        shutdown: cfg.shutdown.clone(),
        metrics: cfg.metrics.clone(),
    };
    let n_files = timeline.files().len();
    let (stats, input_error) = if cfg.workers > 1 && timeline.rereadable() {
        // Files on disk: every shard reads them itself (no dispatcher).
        drop(timeline);
        let (stats, errors) = scan::run(&pipeline, out, |shard| {
            let hidden = Progress::hidden();
            let progress = if shard.shard() == 0 {
                &progress
            } else {
                &hidden
            };
            let mut timeline = match Timeline::open(&cfg.files, cfg.bpf.as_deref()) {
                Ok(t) => t,
                Err(e) => return Some(e),
            };
            timeline.for_each(progress, |p| match shard.offer(p) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()), // the output went away
            })
        })?;
        // Every shard reads the same bytes, so they fail alike; a shard
        // whose own reading failed (a reopen, an I/O error) is reported too.
        (stats, errors.into_iter().flatten().next())
    } else {
        pipeline::run(&pipeline, out, |d| {
            timeline.for_each(&progress, |p| match d.dispatch(p) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()), // the output went away
            })
        })?
    };
    progress.finish();
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
