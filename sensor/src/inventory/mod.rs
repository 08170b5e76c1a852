//! `sensor inventory`: every observed relationship between enclaves and host
//! groups, from capture files (replayed through the normal pipeline) or from
//! a running sensor's JSON lines records; and `--diff OLD NEW`, the drift
//! between two inventories or baselines.

pub mod render;

use crate::cli::TableArgs;
use crate::enclaves;
use crate::error::{SensorError, EXIT_INPUT_ENDED_EARLY, EXIT_OK};
use crate::output::{write_text, Output};
use crate::record_json;
use crate::replay::{replay, ReplayConfig};
use clap::Args;
use render::TableFormat;
use rules::baseline::Baseline;
use rules::inventory::drift::{diff, DriftSettings, DEFAULT_VOLUME_FACTOR};
use rules::inventory::{Inventory, InventoryBuilder, Level};
use rules::Rules;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Relationship ends told apart by.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    /// Enclave and host group.
    HostGroup,
    /// Enclave only.
    Enclave,
}

impl From<LevelArg> for Level {
    fn from(l: LevelArg) -> Level {
        match l {
            LevelArg::HostGroup => Level::HostGroup,
            LevelArg::Enclave => Level::Enclave,
        }
    }
}

/// Arguments of `sensor inventory`.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Capture files (pcap, pcapng; need --rules), or JSON lines record
    /// files written by `sensor replay/live --rules`.
    #[arg(required_unless_present = "diff")]
    pub files: Vec<PathBuf>,
    /// Compare two inventories (JSON, from `--format json`) or baselines
    /// (from `sensor baseline learn`; need --rules): relationships that
    /// appeared, vanished, or changed services, hours or volume.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with = "files")]
    pub diff: Option<Vec<PathBuf>>,
    /// Rule file placing hosts in enclaves and host groups and deciding
    /// which relationships are allowed.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: TableFormat,
    /// Write to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// List relationships between host groups, or between enclaves only.
    #[arg(long, value_enum, default_value = "host-group")]
    pub level: LevelArg,
    /// With --diff: a relationship's volume per day changed when it grew or
    /// shrank by at least this factor.
    #[arg(long, value_name = "FACTOR", default_value_t = DEFAULT_VOLUME_FACTOR)]
    pub volume_factor: f64,
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

/// Runs `sensor inventory`; `Ok` carries the exit code.
pub fn run(args: InventoryArgs, shutdown: Arc<AtomicBool>) -> Result<u8, SensorError> {
    let rules = args.rules.as_deref().map(enclaves::load).transpose()?;
    if let Some(pair) = &args.diff {
        if args.volume_factor.is_nan() || args.volume_factor <= 1.0 {
            return Err(SensorError::Inventory(format!(
                "--volume-factor must be greater than 1 (got {})",
                args.volume_factor
            )));
        }
        let old = load_for_diff(&pair[0], rules.as_ref())?;
        let new = load_for_diff(&pair[1], rules.as_ref())?;
        let level = Level::from(args.level);
        let d = diff(
            &old.at_level(level),
            &new.at_level(level),
            &DriftSettings {
                volume_factor: args.volume_factor,
            },
        );
        write_text(args.output.as_deref(), &render::drift(&d, args.format))?;
        return Ok(EXIT_OK);
    }
    let (inventory, code) = build(&args, rules, shutdown)?;
    let inventory = inventory.at_level(args.level.into());
    write_text(
        args.output.as_deref(),
        &render::inventory(&inventory, args.format),
    )?;
    eprintln!(
        "inventory: {} relationships, {} connections across boundaries, {} inside one enclave{}",
        inventory.rows.len(),
        inventory.connections,
        inventory.internal_connections,
        if inventory.skipped.is_empty() {
            String::new()
        } else {
            format!(", skipped {:?}", inventory.skipped)
        }
    );
    Ok(code)
}

/// Builds the inventory of the input files.
fn build(
    args: &InventoryArgs,
    rules: Option<Rules>,
    shutdown: Arc<AtomicBool>,
) -> Result<(Inventory, u8), SensorError> {
    let mut json = 0;
    for f in &args.files {
        json += usize::from(record_json::is_json_lines(f)?);
    }
    if json == args.files.len() {
        let mut b = InventoryBuilder::new(rules, "records");
        for f in &args.files {
            record_json::read_records(f, |r| b.observe(r))?;
        }
        return Ok((b.finish(), EXIT_OK));
    }
    if json > 0 {
        return Err(SensorError::Inventory(
            "give either capture files or JSON lines record files, not both".into(),
        ));
    }
    let Some(rules) = rules else {
        return Err(SensorError::Inventory(
            "capture files need --rules (the enclaves and relationships to inventory)".into(),
        ));
    };
    let cfg = ReplayConfig {
        shutdown,
        files: args.files.clone(),
        bpf: None,
        table: args.table.to_config(),
        workers: args
            .workers
            .unwrap_or_else(crate::cli::default_workers)
            .max(1),
        progress: !args.no_progress,
        metrics: None,
    };
    let mut out = Output::discard().with_inventory(InventoryBuilder::new(Some(rules), "capture"));
    let outcome = replay(&cfg, &mut out)?;
    eprintln!("{}", outcome.summary);
    let code = match outcome.input_error {
        Some(e) => {
            eprintln!("sensor: {e}");
            EXIT_INPUT_ENDED_EARLY
        }
        None => EXIT_OK,
    };
    let inventory = out.take_inventory().expect("the inventory was attached");
    Ok((inventory, code))
}

/// An inventory file, or a baseline turned into an inventory with `rules`.
fn load_for_diff(path: &Path, rules: Option<&Rules>) -> Result<Inventory, SensorError> {
    let bytes = std::fs::read(path).map_err(|e| SensorError::Open {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let format = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) => value
            .get("format")
            .and_then(|f| f.as_str())
            .map(str::to_owned),
        // A JSON object cut short or damaged: say where.
        Err(e) if text.trim_start().starts_with('{') => {
            return Err(SensorError::Inventory(format!(
                "{}: damaged JSON: {e}",
                path.display()
            )))
        }
        Err(_) => None,
    };
    match format.as_deref() {
        Some(rules::inventory::FORMAT) => Inventory::from_json(&text)
            .map_err(|m| SensorError::Inventory(format!("{}: {m}", path.display()))),
        Some(rules::baseline::FORMAT) => {
            let Some(rules) = rules else {
                return Err(SensorError::Inventory(format!(
                    "{} is a baseline: comparing baselines needs --rules to place its hosts",
                    path.display()
                )));
            };
            let b = Baseline::load(path).map_err(|e| SensorError::Baseline(e.to_string()))?;
            Ok(Inventory::from_baseline(&b, rules))
        }
        _ => Err(SensorError::Inventory(format!(
            "{} is neither an inventory (sensor inventory --format json) nor a baseline (sensor baseline learn)",
            path.display()
        ))),
    }
}
