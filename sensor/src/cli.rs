//! Command-line arguments, validated into configurations, and the
//! `main -> run -> exit code` wiring.

use crate::config::{parse_args, ArgsError, SensorConfig};
use crate::enclaves;
use crate::error::{SensorError, EXIT_FAILURE, EXIT_OK};
use crate::eve::AlertFormat;
use crate::extract_cmd::{self, ExtractArgs};
use crate::live::{self, list_interfaces, LiveConfig};
use crate::metrics::Telemetry;
use crate::output::{write_text, Format, Output};
use crate::replay::{replay, replay_opened, ReplayConfig, ReplayInputs};
use crate::rotation::Rotation;
use crate::summary::Summary;
use clap::{Args, Parser, Subcommand};
use flowlib::TableConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Network security monitor for the trust relationships between customers
/// and their IT service providers.
#[derive(Debug, Parser)]
#[command(name = "sensor", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay capture files (pcap or pcapng) into connection records.
    Replay(ReplayArgs),
    /// Capture from a network interface (a span port) until SIGINT/SIGTERM.
    Live(LiveArgs),
    /// List the interfaces live capture can use.
    Interfaces,
    /// Validate a rule file: print a summary, or every error with file, line and field.
    CheckRules {
        /// The rule file (TOML).
        file: PathBuf,
    },
    /// Baselines of normal traffic across the trust boundaries.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Every observed relationship between enclaves and host groups, or
    /// (--diff OLD NEW) what changed between two inventories or baselines.
    Inventory(crate::inventory::InventoryArgs),
    /// Write one self-contained HTML report of captures: enclave matrix,
    /// alert timeline, top relationships, inventory, alerts with evidence.
    Report(crate::report::ReportArgs),
    /// Write the packets of selected connections (by uid, Community ID or
    /// host) to a new pcap file.
    Extract(ExtractArgs),
    /// Sensor configuration files (every flag of replay and live as a key).
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `sensor config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file: print the effective settings of
    /// replay and live, or every error with file, line and key (exit 2).
    Check {
        /// The configuration file (TOML).
        file: PathBuf,
    },
}

/// The configuration file and the metrics endpoint (`replay` and `live`).
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Read settings from this TOML file (keys are the flags' long names
    /// with `_` for `-`); flags on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g.
    /// 127.0.0.1:9911; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// When the run ends, write the final metrics to FILE (Prometheus text
    /// format, replaced atomically, for node_exporter's textfile collector).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// `sensor baseline ...`
#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Learn a baseline from captures of a normal period.
    Learn(LearnArgs),
}

/// Arguments of `sensor baseline learn`.
#[derive(Debug, Args)]
pub struct LearnArgs {
    /// Capture files of the learning period, read as one timeline.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Rule file defining the enclaves (the boundaries to learn).
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// Where to write the baseline (JSON).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Shard workers, 1-256 (default: one per core).
    #[arg(short, long, value_name = "N", value_parser = parse_workers)]
    pub workers: Option<usize>,
    /// Do not show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Do not print the summary (nor progress) on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    /// Flow table settings.
    #[command(flatten)]
    pub table: TableArgs,
}

/// Output, rules and detector options shared by `replay` and `live`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    pub format: Format,
    /// Write records to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Rule file (enclaves, host groups, relationships): records gain the
    /// enclave and host group of each side. Validated before anything runs.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Run the detector and write its alerts to FILE as JSON lines
    /// (connection records keep going to the output). Needs --rules.
    #[arg(long, value_name = "FILE", requires = "rules")]
    pub alerts: Option<PathBuf>,
    /// Compare with a baseline learned by `sensor baseline learn` (first-seen
    /// pairs, services and hours; uploads out of line; known periodic pairs).
    #[arg(long, value_name = "FILE", requires = "alerts")]
    pub baseline: Option<PathBuf>,
    /// IPFIX export.
    #[command(flatten)]
    pub ipfix: crate::ipfix_export::IpfixArgs,
    /// Alert format: our JSON lines, or Suricata EVE `alert` events.
    #[arg(long, value_enum, default_value = "json", requires = "alerts")]
    pub alerts_format: AlertFormat,
    /// Rotate output files (records and alerts; never standard output) once
    /// they hold this many bytes (suffixes K, M, G: KiB, MiB, GiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub rotate_size: Option<u64>,
    /// Rotate output files when capture time enters the next interval of
    /// this length (aligned to the epoch; suffixes s, m, h, d).
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    pub rotate_interval: Option<Duration>,
}

impl OutputArgs {
    /// The file records go to: `None` for standard output (no `-o`, or
    /// `-o -` as tcpdump and tshark take it).
    pub fn records_file(&self) -> Option<&std::path::Path> {
        self.output.as_deref().filter(|p| p.as_os_str() != "-")
    }

    /// The rotation these arguments ask for.
    pub fn rotation(&self) -> Rotation {
        Rotation {
            max_bytes: self.rotate_size,
            interval: self.rotate_interval,
        }
    }
}

/// `100`, `64K`, `10M`, `1G` (binary multiples).
fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = split_unit(s);
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("unknown size unit {unit:?} (use K, M or G)")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a size"))?;
    n.checked_mul(mult)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} must be above 0 and below 2^64 bytes"))
}

/// Most shard workers: each is a thread, and in replay each opens every
/// input file.
pub const MAX_WORKERS: usize = 256;

/// A worker count, 1 to [`MAX_WORKERS`].
pub(crate) fn parse_workers(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) && s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            Ok(n)
        }
        _ => Err(format!("{s:?} is not a worker count (1-{MAX_WORKERS})")),
    }
}

/// `3600`, `90s`, `15m`, `1h`, `1d`.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let (digits, unit) = split_unit(s);
    let mult: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown time unit {unit:?} (use s, m, h or d)")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    n.checked_mul(mult)
        .filter(|n| *n > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} must be above 0"))
}

fn split_unit(s: &str) -> (&str, &str) {
    let s = s.trim();
    let at = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(at)
}

/// Arguments of `sensor live`.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Interface to capture on.
    #[arg(short, long, value_name = "IFACE")]
    pub interface: String,
    /// Bytes captured per packet.
    #[arg(long, default_value_t = 65535, value_name = "BYTES")]
    pub snaplen: i32,
    /// Only capture packets matching this BPF expression (applied in the kernel).
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,
    /// Kernel capture buffer size in MiB (libpcap's default if unset).
    #[arg(long, value_name = "MIB")]
    pub buffer_size: Option<u32>,
    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    pub no_promisc: bool,
    /// Shard workers, 1-256 (default: one per core).
    #[arg(short, long, value_name = "N", value_parser = parse_workers)]
    pub workers: Option<usize>,
    /// Where records and alerts go.
    #[command(flatten)]
    pub out: OutputArgs,
    /// Seconds between statistics log lines (shown with RUST_LOG=info).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub stats_interval: u64,
    /// Flow table settings.
    #[command(flatten)]
    pub table: TableArgs,
    /// Configuration file and metrics.
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// Arguments of `sensor replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture files, read as one timeline.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Where records and alerts go.
    #[command(flatten)]
    pub out: OutputArgs,
    /// Only process packets matching this BPF expression.
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,
    /// Shard workers, 1-256 (default: one per core).
    #[arg(short, long, value_name = "N", value_parser = parse_workers)]
    pub workers: Option<usize>,
    /// Do not show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Do not print the summary on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    /// Flow table settings.
    #[command(flatten)]
    pub table: TableArgs,
    /// Configuration file and metrics.
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// Flow table settings (Zeek's defaults).
#[derive(Debug, Args)]
pub struct TableArgs {
    /// Idle timeout of established TCP connections, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub tcp_idle: u64,
    /// Idle timeout of UDP flows (and TCP before the handshake), in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub udp_idle: u64,
    /// Idle timeout of ICMP and other flows, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub icmp_idle: u64,
    /// Emit interim records for flows running this long (0: never), in seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub active_timeout: u64,
    /// Most live flows; beyond it the flows nearest to expiry are evicted.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_flows: usize,
    /// Cap on the flow tables' memory, in MiB (all shards together): when
    /// full, half-open connections are evicted first, then the oldest.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_memory: Option<u64>,
    /// What a new bare SYN does while a flow table is full and at least
    /// half its connections are half-open (a SYN flood): `refuse` it and
    /// count it (emergency mode), or `evict` a half-open connection for it.
    #[arg(
        long,
        value_enum,
        default_value = "refuse",
        value_name = "refuse|evict"
    )]
    pub syn_when_full: SynWhenFull,
    /// Most timer entries a flow table expires per packet (0: all that are
    /// due), like Zeek's max_timer_expires; the rest expire with the next
    /// packets, with the same records.
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub max_timer_expires: usize,
}

/// What a new bare SYN does while the flow table is full of half-open
/// connections ([`TableConfig::refuse_syns_when_full`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SynWhenFull {
    /// Refuse and count it: the flood's SYNs leave no record.
    Refuse,
    /// Evict the oldest half-open connection for it (one record per SYN).
    Evict,
}

impl TableArgs {
    /// The flow table configuration these arguments describe.
    pub fn to_config(&self) -> TableConfig {
        let secs = Duration::from_secs;
        TableConfig {
            tcp_idle: secs(self.tcp_idle),
            udp_idle: secs(self.udp_idle),
            icmp_idle: secs(self.icmp_idle),
            other_idle: secs(self.icmp_idle),
            active_timeout: (self.active_timeout > 0).then(|| secs(self.active_timeout)),
            max_flows: self.max_flows.max(1),
            max_memory: self
                .max_memory
                .map(|mib| (mib as usize).saturating_mul(1 << 20)),
            refuse_syns_when_full: self.syn_when_full == SynWhenFull::Refuse,
            max_timer_expires: self.max_timer_expires,
            ..TableConfig::default()
        }
    }
}

/// Parses arguments, runs, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match parse_args(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(ArgsError::Clap(e)) => e.exit(),
        Err(ArgsError::Config(e)) => {
            eprintln!("sensor: {}", error_chain(&e));
            return ExitCode::from(e.exit_code());
        }
    };
    if let Some((kind, message)) = combination_error(&cli.command) {
        use clap::CommandFactory;
        Cli::command().error(kind, message).exit();
    }
    init_tracing();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("sensor: {}", error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs a parsed command; `Ok` carries the exit code.
pub fn run(cli: Cli) -> Result<u8, SensorError> {
    let shutdown = Arc::new(AtomicBool::new(false));
    match cli.command {
        Command::Interfaces => {
            write_text(None, &list_interfaces()?)?;
            Ok(EXIT_OK)
        }
        Command::Baseline(BaselineCommand::Learn(args)) => {
            register_signals(&shutdown);
            let rules = enclaves::load(&args.rules)?;
            let cfg = ReplayConfig {
                shutdown: shutdown.clone(),
                files: args.files,
                bpf: None,
                table: args.table.to_config(),
                workers: args.workers.unwrap_or_else(default_workers).max(1),
                progress: !args.no_progress && !args.quiet,
                metrics: None,
            };
            let mut out = Output::discard().with_learner(rules, &args.output);
            let outcome = replay(&cfg, &mut out)?;
            if !args.quiet {
                eprintln!("{}", outcome.summary);
                if let Some(learned) = out.learned() {
                    eprintln!("{learned}");
                }
            }
            match outcome.input_error {
                Some(e) => {
                    eprintln!("sensor: {}", error_chain(&e));
                    Ok(e.exit_code())
                }
                None => Ok(EXIT_OK),
            }
        }
        Command::Inventory(args) => {
            register_signals(&shutdown);
            crate::inventory::run(args, shutdown)
        }
        Command::Report(args) => {
            register_signals(&shutdown);
            crate::report::run(args, shutdown)
        }
        Command::Extract(args) => match extract_cmd::run(&args)? {
            Some(e) => {
                eprintln!("sensor: {}", error_chain(&e));
                Ok(e.exit_code())
            }
            None => Ok(EXIT_OK),
        },
        Command::Config(ConfigCommand::Check { file }) => {
            let cfg = SensorConfig::load(&file)?;
            let text = format!(
                "# {}: valid; effective settings:\n{}",
                file.display(),
                cfg.describe()
            );
            write_text(None, &text)?;
            Ok(EXIT_OK)
        }
        Command::CheckRules { file } => {
            let rules = enclaves::load(&file)?;
            write_text(None, &format!("{}\n", rules.summary()))?;
            Ok(EXIT_OK)
        }
        Command::Live(args) => {
            register_signals(&shutdown);
            let workers = args.workers.unwrap_or_else(default_workers).max(1);
            let telemetry = start_telemetry(&args.service, workers)?;
            let cfg = LiveConfig {
                interface: args.interface,
                snaplen: args.snaplen.max(64),
                bpf: args.bpf,
                buffer_size: args.buffer_size.map(|mib| (mib.min(2047) as i32) << 20),
                promisc: !args.no_promisc,
                workers,
                table: args.table.to_config(),
                stats_interval: Duration::from_secs(args.stats_interval.max(1)),
                shutdown: shutdown.clone(),
                metrics: telemetry.metrics(),
            };
            let rules = args.out.rules.as_deref().map(enclaves::load).transpose()?;
            let baseline = load_baseline(args.out.baseline.as_deref())?;
            let mut cfg = cfg;
            cfg.table.report_starts = args.out.alerts.is_some();
            let cap = live::open(&cfg)?;
            let mut out = open_output(&args.out, rules, baseline, &telemetry)?;
            let o = live::live(&cfg, cap, &mut out);
            telemetry.finish()?;
            let o = o?;
            let summary = Summary::new(
                format!("interface {}", cfg.interface),
                o.meter,
                o.table,
                o.records,
                o.elapsed,
            );
            eprintln!("{summary}\n{}", o.drops);
            print_alert_summary(&out);
            print_ipfix_summary(&out);
            out.leave_to_exit();
            if let Some(e) = &o.capture_error {
                // Exit 1, so that a supervisor (systemd's
                // Restart=on-failure) starts the sensor again.
                eprintln!(
                    "sensor: capture on {} failed: {e}; every open flow flushed",
                    cfg.interface
                );
                return Ok(EXIT_FAILURE);
            }
            eprintln!(
                "sensor: {} on {}; every open flow flushed",
                if o.interrupted {
                    "stopped by signal"
                } else {
                    "capture ended"
                },
                cfg.interface
            );
            Ok(EXIT_OK)
        }
        Command::Replay(args) => {
            register_signals(&shutdown);
            let workers = args.workers.unwrap_or_else(default_workers).max(1);
            let telemetry = start_telemetry(&args.service, workers)?;
            let cfg = ReplayConfig {
                shutdown: shutdown.clone(),
                files: args.files,
                bpf: args.bpf,
                table: args.table.to_config(),
                workers,
                progress: !args.no_progress && !args.quiet,
                metrics: telemetry.metrics(),
            };
            let rules = args.out.rules.as_deref().map(enclaves::load).transpose()?;
            let baseline = load_baseline(args.out.baseline.as_deref())?;
            let mut cfg = cfg;
            cfg.table.report_starts = args.out.alerts.is_some();
            // Inputs before outputs: nothing is created for a run that
            // cannot read its inputs.
            let inputs = ReplayInputs::open(&cfg)?;
            let mut out = open_output(&args.out, rules, baseline, &telemetry)?;
            let outcome = replay_opened(inputs, &cfg, &mut out);
            telemetry.finish()?;
            let outcome = outcome?;
            if !args.quiet {
                eprintln!("{}", outcome.summary);
                print_alert_summary(&out);
            }
            if args.quiet {
                print_ipfix_failures(&out);
            } else {
                print_ipfix_summary(&out);
            }
            out.leave_to_exit();
            match outcome.input_error {
                Some(e) => {
                    eprintln!("sensor: {}", error_chain(&e));
                    Ok(e.exit_code())
                }
                None => Ok(EXIT_OK),
            }
        }
    }
}

/// The output options of a command that writes records.
fn output_args(command: &Command) -> Option<&OutputArgs> {
    match command {
        Command::Replay(a) => Some(&a.out),
        Command::Live(a) => Some(&a.out),
        _ => None,
    }
}

/// What is wrong with a combination of options clap's own rules cannot
/// express: rotation without a file to rotate, an output that is another
/// output or an input. Checked before anything runs, and by `sensor config
/// check` on a configuration file.
pub(crate) fn combination_error(command: &Command) -> Option<(clap::error::ErrorKind, String)> {
    if let Some(out) = output_args(command) {
        if out.rotation().enabled() && out.records_file().is_none() && out.alerts.is_none() {
            return Some((
                clap::error::ErrorKind::MissingRequiredArgument,
                "--rotate-size and --rotate-interval rotate files: give -o FILE and/or \
                 --alerts FILE (standard output is never rotated)"
                    .to_owned(),
            ));
        }
    }
    if let Some(m) = stdin_twice(command) {
        return Some((clap::error::ErrorKind::ArgumentConflict, m));
    }
    output_clash(command).map(|m| (clap::error::ErrorKind::ArgumentConflict, m))
}

/// A message when `-` (standard input, which can be read only once) is
/// among the capture files more than once.
fn stdin_twice(command: &Command) -> Option<String> {
    let files: &[PathBuf] = match command {
        Command::Replay(a) => &a.files,
        Command::Baseline(BaselineCommand::Learn(a)) => &a.files,
        Command::Extract(a) => &a.files,
        Command::Report(a) => &a.files,
        Command::Inventory(a) => &a.files,
        _ => return None,
    };
    (files.iter().filter(|f| f.as_os_str() == "-").count() > 1).then(|| {
        "`-` (standard input) is given more than once: it can be read only once".to_owned()
    })
}

/// A message when one of the files `command` would write is another of
/// its outputs or one of its inputs (see [`crate::paths`]).
fn output_clash(command: &Command) -> Option<String> {
    use crate::paths::{clash, NamedPath as N};
    fn captures(files: &[PathBuf]) -> Vec<N<'_>> {
        // `-` reads standard input.
        files
            .iter()
            .filter(|f| f.as_os_str() != "-")
            .map(|f| N::new("input file", f))
            .collect()
    }
    let (outputs, inputs): (Vec<Option<N<'_>>>, Vec<N<'_>>) = match command {
        Command::Replay(ReplayArgs {
            files,
            out,
            service,
            ..
        }) => recording_paths(captures(files), out, service),
        Command::Live(LiveArgs { out, service, .. }) => recording_paths(vec![], out, service),
        Command::Baseline(BaselineCommand::Learn(a)) => (
            vec![Some(N::new("-o", &a.output))],
            [captures(&a.files), vec![N::new("--rules", &a.rules)]].concat(),
        ),
        Command::Extract(a) => (vec![Some(N::new("-o", &a.output))], captures(&a.files)),
        Command::Report(a) => {
            let mut inputs = captures(&a.files);
            inputs.push(N::new("--rules", &a.rules));
            inputs.extend(N::of("--baseline", a.baseline.as_deref()));
            (vec![Some(N::new("-o", &a.output))], inputs)
        }
        Command::Inventory(a) => {
            let mut inputs = captures(&a.files);
            inputs.extend(N::of("--rules", a.rules.as_deref()));
            inputs.extend(a.diff.iter().flatten().map(|f| N::new("--diff file", f)));
            (vec![N::of("-o", a.output.as_deref())], inputs)
        }
        _ => return None,
    };
    let outputs: Vec<N<'_>> = outputs.into_iter().flatten().collect();
    clash(&outputs, &inputs)
}

/// The files `replay` and `live` write, and those they read besides
/// `captures`.
fn recording_paths<'a>(
    captures: Vec<crate::paths::NamedPath<'a>>,
    out: &'a OutputArgs,
    service: &'a ServiceArgs,
) -> (
    Vec<Option<crate::paths::NamedPath<'a>>>,
    Vec<crate::paths::NamedPath<'a>>,
) {
    use crate::paths::NamedPath as N;
    let mut inputs = captures;
    inputs.extend(N::of("--rules", out.rules.as_deref()));
    inputs.extend(N::of("--baseline", out.baseline.as_deref()));
    inputs.extend(N::of("--config", service.config.as_deref()));
    (
        vec![
            // `-o -` writes standard output.
            N::of("-o", out.records_file()),
            N::of("--alerts", out.alerts.as_deref()),
            N::of("--metrics-file", service.metrics_file.as_deref()),
        ],
        inputs,
    )
}

/// Binds the metrics endpoint (before anything is captured) and says
/// where it listens.
fn start_telemetry(args: &ServiceArgs, workers: usize) -> Result<Telemetry, SensorError> {
    let telemetry = Telemetry::start(args.metrics, args.metrics_file.clone(), workers)?;
    if let Some(addr) = telemetry.addr() {
        eprintln!("sensor: metrics at http://{addr}/metrics");
    }
    Ok(telemetry)
}

/// Adds enclave annotation and, with an alerts file, the detector.
fn attach_rules(
    out: Output,
    rules: Option<rules::Rules>,
    baseline: Option<rules::baseline::Baseline>,
    args: &OutputArgs,
) -> Result<Output, SensorError> {
    match (rules, args.alerts.as_deref()) {
        (Some(rules), Some(path)) => {
            out.with_detector(rules, baseline, path, args.alerts_format, args.rotation())
        }
        (rules, _) => Ok(out.with_rules(rules)),
    }
}

/// The record output `out` asks for: the records file (or stdout), the
/// enclave annotation and detector when there are rules, IPFIX export and
/// the metrics. The rules and baseline are loaded (and checked) before, so
/// a bad one leaves every output file untouched.
fn open_output(
    out: &OutputArgs,
    rules: Option<rules::Rules>,
    baseline: Option<rules::baseline::Baseline>,
    telemetry: &Telemetry,
) -> Result<Output, SensorError> {
    let records = Output::open(out.records_file(), out.format, out.rotation())?;
    Ok(attach_rules(records, rules, baseline, out)?
        .with_ipfix(out.ipfix.open()?)
        .with_metrics(telemetry.metrics())
        // Scoring and writing overlap when there is a core to spare.
        .with_writer_thread(default_workers() >= 2))
}

/// Loads a baseline before anything runs.
fn load_baseline(
    path: Option<&std::path::Path>,
) -> Result<Option<rules::baseline::Baseline>, SensorError> {
    path.map(|p| {
        rules::baseline::Baseline::load(p).map_err(|e| SensorError::Baseline(e.to_string()))
    })
    .transpose()
}

/// One line of alert counts on stderr, when the detector ran.
fn print_alert_summary(out: &Output) {
    if let Some((stats, written)) = out.detector_stats() {
        let mut by: Vec<String> = stats
            .alerts
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        by.sort();
        let mut sev: Vec<String> = stats
            .severities
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        sev.sort();
        // What full tables did, when they did anything.
        let full: Vec<String> = stats
            .bounded()
            .into_iter()
            .filter(|(_, _, n)| *n > 0)
            .map(|(table, outcome, n)| format!("{table} {outcome} {n}"))
            .collect();
        let full = if full.is_empty() {
            String::new()
        } else {
            format!("; tables full: {}", full.join(", "))
        };
        eprintln!(
            "alerts: {} raised ({}), severities ({}), {} repeats folded, {} lines written{}",
            stats.alerts.values().sum::<u64>(),
            by.join(", "),
            sev.join(", "),
            stats.suppressed,
            written,
            full
        );
    }
}

/// One line of IPFIX export counts on stderr, when exporting.
fn print_ipfix_summary(out: &Output) {
    if let Some(stats) = out.ipfix_stats() {
        eprintln!("{stats}");
    }
}

/// Even with `--quiet`, records that could not be exported are reported.
fn print_ipfix_failures(out: &Output) {
    if let Some(stats) = out.ipfix_stats().filter(|s| s.failed_total() > 0) {
        eprintln!("sensor: warning: {stats}");
    }
}

/// A signal this long after the first one ends the process at once.
const FORCE_AFTER: Duration = Duration::from_secs(1);

/// SIGINT and SIGTERM set `flag` (the pipeline then stops reading, also
/// from a quiet stream, and flushes every open flow). Another signal at
/// least [`FORCE_AFTER`] later ends the process at once with exit 130: a
/// stuck shutdown can be cut short, but one stop request delivered twice
/// (`timeout` signals the child, then its process group) is one stop.
fn register_signals(flag: &Arc<AtomicBool>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    crate::stream::watch_stop(flag);
    for sig in [SIGINT, SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(flag));
    }
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut first = None;
            for _ in signals.forever() {
                match first {
                    None => first = Some(std::time::Instant::now()),
                    Some(at) if at.elapsed() >= FORCE_AFTER => {
                        eprintln!("sensor: stopped again: exiting without flushing");
                        std::process::exit(130);
                    }
                    Some(_) => {}
                }
            }
        });
}

/// One worker per available core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Logs go to stderr; `RUST_LOG` selects the level (default: warnings).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("10X").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn intervals_take_time_suffixes() {
        assert_eq!(parse_interval("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_interval("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_interval("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_interval("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_interval("0h").is_err());
        assert!(parse_interval("1w").is_err());
    }
}
