//! The `sensor extract` command line: arguments validated into an
//! [`ExtractConfig`], the run, and its summary on standard error.

use crate::cli::TableArgs;
use crate::error::SensorError;
use crate::extract::{extract, Criterion, ExtractConfig, ExtractOutcome, Selection};
use crate::window::TimeWindow;
use clap::{ArgGroup, Args};
use std::net::IpAddr;
use std::path::PathBuf;

/// Connections listed one per line in the summary; beyond, a count.
const LISTED: usize = 20;

/// Arguments of `sensor extract`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").required(true).args(["uid", "community_id", "host"])))]
pub struct ExtractArgs {
    /// Capture files, read as one timeline (as `sensor replay` reads them).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The connection with this uid (from a record or an alert).
    #[arg(long, value_name = "UID")]
    pub uid: Option<String>,
    /// Every connection with this Community ID (e.g. from Zeek or Suricata).
    #[arg(long, value_name = "ID")]
    pub community_id: Option<String>,
    /// Every connection with this address on either side.
    #[arg(long, value_name = "IP")]
    pub host: Option<IpAddr>,
    /// Only connections active in this window of capture time: FROM..TO,
    /// FROM.. or ..TO, each RFC 3339 (2026-03-02T08:00:00Z) or epoch seconds.
    #[arg(long, value_name = "FROM..TO")]
    pub time: Option<TimeWindow>,
    /// The pcap file to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Do not show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Do not print the summary on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    /// Flow table settings: give the same as to the replay whose records
    /// named the connections.
    #[command(flatten)]
    pub table: TableArgs,
}

impl ExtractArgs {
    /// The configuration these arguments describe.
    pub fn to_config(&self) -> ExtractConfig {
        let criterion = match (&self.uid, &self.community_id, &self.host) {
            (Some(uid), _, _) => Criterion::Uid(uid.clone()),
            (_, Some(id), _) => Criterion::CommunityId(id.clone()),
            (_, _, Some(ip)) => Criterion::Host(*ip),
            // clap's required group rules this out; an empty uid matches nothing.
            (None, None, None) => Criterion::Uid(String::new()),
        };
        ExtractConfig {
            files: self.files.clone(),
            selection: Selection {
                criterion,
                window: self.time,
            },
            output: self.output.clone(),
            table: self.table.to_config(),
            progress: !self.no_progress && !self.quiet,
        }
    }
}

/// Runs `sensor extract`; `Ok` carries the input error, if an input ended
/// early (what was complete was still extracted).
pub fn run(args: &ExtractArgs) -> Result<Option<SensorError>, SensorError> {
    let cfg = args.to_config();
    let outcome = extract(&cfg)?;
    if !args.quiet {
        eprint!("{}", summary(&cfg, &outcome));
    }
    Ok(outcome.input_error)
}

/// The summary: the selected connections, then what was written.
fn summary(cfg: &ExtractConfig, o: &ExtractOutcome) -> String {
    let mut s = String::new();
    for r in o.connections.values().take(LISTED) {
        s.push_str(&format!(
            "  {} {} {} {} -> {} {}, {} packets, {}\n",
            r.uid,
            r.ts.as_secs_f64(),
            r.proto.name(),
            endpoint(r.orig_h, r.orig_p),
            endpoint(r.resp_h, r.resp_p),
            r.conn_state.name(),
            r.orig_pkts + r.resp_pkts,
            r.end_reason.name(),
        ));
    }
    if o.connections.len() > LISTED {
        s.push_str(&format!(
            "  ... and {} more\n",
            o.connections.len() - LISTED
        ));
    }
    s.push_str(&format!(
        "extract: {} connection{} selected by {}; {} of {} packets written to {} ({}, {} timestamps)\n",
        o.connections.len(),
        if o.connections.len() == 1 { "" } else { "s" },
        cfg.selection,
        o.packets_written,
        o.packets_read,
        cfg.output.display(),
        o.link,
        if o.nanos { "nanosecond" } else { "microsecond" },
    ));
    s
}

fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}
