//! `sensor report`: one self-contained HTML file an analyst can read — the
//! enclave-to-enclave matrix as heat maps, a timeline of alerts by
//! severity, the top relationships by volume, the inventory with a search
//! box, and every alert with its reasons and the connection records behind
//! it. Inline CSS and script, SVG drawn here: the page fetches nothing.

mod evidence;
pub mod html;
mod svg;

pub use evidence::{Evidence, MAX_RECORDS_PER_ALERT};

use crate::cli::TableArgs;
use crate::enclaves;
use crate::error::{SensorError, EXIT_INPUT_ENDED_EARLY, EXIT_OK};
use crate::output::Output;
use crate::replay::{replay, ReplayConfig};
use clap::Args;
use rules::inventory::InventoryBuilder;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Arguments of `sensor report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Capture files, read as one timeline.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Rule file (enclaves, host groups, relationships, detector settings).
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// Compare with a baseline learned by `sensor baseline learn`.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// The HTML file to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Title of the report (default: the capture files' names).
    #[arg(long)]
    pub title: Option<String>,
    /// Shard workers, 1-256 (default: one per core).
    #[arg(short, long, value_name = "N", value_parser = crate::cli::parse_workers)]
    pub workers: Option<usize>,
    /// Do not show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Flow table settings.
    #[command(flatten)]
    pub table: TableArgs,
}

/// Runs `sensor report`; `Ok` carries the exit code.
pub fn run(args: ReportArgs, shutdown: Arc<AtomicBool>) -> Result<u8, SensorError> {
    let rules = enclaves::load(&args.rules)?;
    let baseline = args
        .baseline
        .as_deref()
        .map(|p| {
            rules::baseline::Baseline::load(p).map_err(|e| SensorError::Baseline(e.to_string()))
        })
        .transpose()?;
    let mut table = args.table.to_config();
    table.report_starts = true; // policy alerts on a connection's first packet
    let cfg = ReplayConfig {
        shutdown,
        files: args.files.clone(),
        bpf: None,
        table,
        workers: args
            .workers
            .unwrap_or_else(crate::cli::default_workers)
            .max(1),
        progress: !args.no_progress,
        metrics: None,
    };
    let mut out = Output::discard()
        .with_inventory(InventoryBuilder::new(Some(rules.clone()), "capture"))
        .with_evidence(rules.clone(), baseline);
    let outcome = replay(&cfg, &mut out)?; // finishes the output
    eprintln!("{}", outcome.summary);
    let inventory = out.take_inventory().expect("the inventory was attached");
    let evidence = out.take_evidence().expect("the detector was attached");
    let names: Vec<String> = args
        .files
        .iter()
        .map(|f| {
            f.file_name()
                .map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into())
        })
        .collect();
    let page = html::render(&html::ReportInput {
        title: args
            .title
            .clone()
            .unwrap_or_else(|| format!("flowmon report: {}", names.join(", "))),
        files: names,
        rules: &rules,
        baseline: args.baseline.as_ref().map(|p| p.display().to_string()),
        inventory: &inventory,
        evidence: &evidence,
        summary: outcome.summary.to_string(),
    });
    std::fs::write(&args.output, page).map_err(|e| SensorError::write_file(&args.output, &e))?;
    eprintln!(
        "report: {} relationships, {} alerts -> {}",
        inventory.rows.len(),
        evidence.alerts.len(),
        args.output.display()
    );
    match outcome.input_error {
        Some(e) => {
            eprintln!("sensor: {e}");
            Ok(EXIT_INPUT_ENDED_EARLY)
        }
        None => Ok(EXIT_OK),
    }
}
