//! `sensor extract`: the packets of selected connections into a new pcap.
//!
//! Two passes over the inputs (read as one timeline, as replay reads them),
//! each through a real [`FlowMeter`] with the replay's table settings, so a
//! packet belongs to exactly the connection whose record the replay shows:
//!
//! 1. **Select**: meter every packet into connection records and keep those
//!    matching the [`Selection`] (uid, Community ID or host, and optionally
//!    a time window). Nothing is written when nothing matches.
//! 2. **Write**: meter again, now asking the table which connections each
//!    packet updated ([`FlowMeter::process_attributed`]); a packet is written
//!    when one of them is selected. Uids are derived from a connection's key
//!    and first packet's time, so the same uid names the same connection in
//!    both passes, and a 5-tuple reused later (a new SYN, or traffic after an
//!    idle timeout) is another connection with another uid.
//!
//! Tunnelled packets are attributed as the table attributes them: to the
//! inner connection and to each UDP tunnel around it (VXLAN, Geneve, GTP-U,
//! Teredo, AYIYA), so selecting an inner connection writes its encapsulated
//! packets, and selecting a tunnel writes everything it carried. Non-first
//! IP fragments go with their datagram's connection.

use crate::clock::CaptureClock;
use crate::error::SensorError;
use crate::pipeline::Packet;
use crate::progress::Progress;
use crate::savefile::PcapOut;
use crate::timeline::Timeline;
use crate::window::TimeWindow;
use flowlib::{ConnRecord, ConnRef, FlowMeter, TableConfig, Timestamp};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;

/// Which connections to extract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Criterion {
    /// The connection with this uid (every record of it: interim and final).
    Uid(String),
    /// Every connection with this Community ID (a reused 5-tuple has one
    /// Community ID for all its connections).
    CommunityId(String),
    /// Every connection with this address on either side (inner addresses
    /// for tunnelled connections; outer ones for the tunnels themselves).
    Host(IpAddr),
}

/// A criterion, optionally narrowed to connections active in a time window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// What a connection must match.
    pub criterion: Criterion,
    /// Only connections whose first-to-last packet span overlaps this window.
    pub window: Option<TimeWindow>,
}

impl Selection {
    /// Whether the connection of record `r` is selected.
    pub fn matches(&self, r: &ConnRecord) -> bool {
        let hit = match &self.criterion {
            Criterion::Uid(uid) => r.uid == *uid,
            Criterion::CommunityId(id) => r.computed_community_id() == *id,
            Criterion::Host(ip) => r.orig_h == *ip || r.resp_h == *ip,
        };
        hit && self.window.is_none_or(|w| {
            let last = r.duration.map_or(r.ts, |d| r.ts.plus(d));
            w.overlaps(r.ts, last)
        })
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.criterion {
            Criterion::Uid(uid) => write!(f, "uid {uid}")?,
            Criterion::CommunityId(id) => write!(f, "community id {id}")?,
            Criterion::Host(ip) => write!(f, "host {ip}")?,
        }
        if let Some(w) = &self.window {
            write!(f, " in {w}")?;
        }
        Ok(())
    }
}

/// What to extract, from where, to where.
#[derive(Clone, Debug)]
pub struct ExtractConfig {
    /// Capture files, read as one timeline.
    pub files: Vec<PathBuf>,
    /// The connections wanted.
    pub selection: Selection,
    /// The pcap to write.
    pub output: PathBuf,
    /// Flow table settings: the same as the replay whose records named the
    /// connections, so that connection boundaries agree.
    pub table: TableConfig,
    /// Show progress ([`Progress`]).
    pub progress: bool,
}

/// What an extraction did.
#[derive(Debug)]
pub struct ExtractOutcome {
    /// The selected connections' final records, by uid.
    pub connections: BTreeMap<String, ConnRecord>,
    /// Packets read per pass.
    pub packets_read: u64,
    /// Packets written to the output.
    pub packets_written: u64,
    /// Link type of the output.
    pub link: flowlib::LinkType,
    /// Timestamps written with nanosecond resolution.
    pub nanos: bool,
    /// An input ended early: every complete record before the damage was
    /// still used, in both passes.
    pub input_error: Option<SensorError>,
}

/// Extracts the packets of the selected connections into `cfg.output`.
pub fn extract(cfg: &ExtractConfig) -> Result<ExtractOutcome, SensorError> {
    let meter = FlowMeter::new(cfg.table.clone())?;
    let mut timeline = Timeline::open(&cfg.files, None)?;
    if let Some(stream) = timeline.files().iter().find(|f| !f.rereadable()) {
        return Err(SensorError::Open {
            path: stream.path().to_owned(),
            message: "extract reads its inputs twice (to find the connections, then to \
                      write their packets): give a capture file on disk, not standard input \
                      or a FIFO"
                .into(),
        });
    }
    let nanos = timeline.files().iter().any(|f| f.nanosecond());
    let progress = Progress::new("extract", 2 * timeline.size(), cfg.progress);
    progress.set_phase("selecting");
    let (connections, input_error) = select(meter, &mut timeline, cfg, &progress);
    if connections.is_empty() {
        progress.finish();
        return Err(SensorError::NothingSelected {
            selection: cfg.selection.to_string(),
            input_error: input_error.map(|e| e.to_string()),
        });
    }
    progress.next_pass("writing");
    let mut timeline = Timeline::open(&cfg.files, None)?;
    let written = write(&mut timeline, cfg, &connections, nanos, &progress);
    progress.finish();
    let (out, packets_read) = written?;
    let link = out.link();
    let packets_written = out.finish().inspect_err(|_| {
        crate::savefile::remove_partial(&cfg.output);
    })?;
    Ok(ExtractOutcome {
        connections,
        packets_read,
        packets_written,
        link,
        nanos,
        input_error,
    })
}

/// Pass 1: the final record of every selected connection.
fn select(
    mut meter: FlowMeter,
    timeline: &mut Timeline,
    cfg: &ExtractConfig,
    progress: &Progress,
) -> (BTreeMap<String, ConnRecord>, Option<SensorError>) {
    let mut records = Vec::new();
    let mut selected = BTreeMap::new();
    let mut keep = |records: &mut Vec<ConnRecord>| {
        for r in records.drain(..) {
            if cfg.selection.matches(&r) {
                // Interim records come before the final one, which wins.
                selected.insert(r.uid.clone(), r);
            }
        }
    };
    // The replay's capture clock, so connections (and uids) are the ones
    // the replay shows.
    let mut clock = CaptureClock::new();
    let mut apply = |p: &Packet<'_>, at: Timestamp| -> ControlFlow<()> {
        meter.process(p.data, p.link, at, p.wire_len, &mut records);
        keep(&mut records);
        ControlFlow::Continue(())
    };
    let input_error = timeline.for_each(progress, |p| clock.feed(p, &mut apply));
    let _ = clock.finish_with(&mut apply);
    meter.finish(&mut records);
    keep(&mut records);
    (selected, input_error)
}

/// Pass 2: every packet attributed to a selected connection, written in
/// input order. Returns the open output (created at the first such packet)
/// and the packets read.
fn write(
    timeline: &mut Timeline,
    cfg: &ExtractConfig,
    connections: &BTreeMap<String, ConnRecord>,
    nanos: bool,
    progress: &Progress,
) -> Result<(PcapOut, u64), SensorError> {
    let uids: HashSet<&str> = connections.keys().map(String::as_str).collect();
    let mut meter = FlowMeter::new(cfg.table.clone())?;
    let (mut records, mut conns) = (Vec::new(), Vec::new());
    // The connection of the previous packet and whether it is selected:
    // consecutive packets of one connection are the common case.
    let mut last: Option<(ConnRef, bool)> = None;
    let mut out: Option<PcapOut> = None;
    let mut failure = None;
    let mut read = 0u64;
    let mut clock = CaptureClock::new();
    let mut apply = |p: &Packet<'_>, at: Timestamp| {
        if failure.is_some() {
            return ControlFlow::Break(());
        }
        meter.process_attributed(p.data, p.link, at, p.wire_len, &mut records, &mut conns);
        records.clear();
        let wanted = conns.iter().any(|c| match last {
            Some((l, w)) if l == *c => w,
            _ => {
                let w = uids.contains(c.uid().as_str());
                last = Some((*c, w));
                w
            }
        });
        if !wanted {
            return ControlFlow::Continue(());
        }
        let file = match &mut out {
            Some(file) => file,
            None => match PcapOut::create(&cfg.output, p.link, nanos) {
                Ok(file) => out.insert(file),
                Err(e) => {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            },
        };
        if file.link() != p.link {
            failure = Some(SensorError::MixedLinkTypes {
                output: cfg.output.clone(),
                first: file.link().to_string(),
                other: p.link.to_string(),
            });
            return ControlFlow::Break(());
        }
        match file.write(p.ts, p.data, p.wire_len) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        }
    };
    // Input errors were reported by the first pass.
    let _ = timeline.for_each(progress, |p| {
        read += 1;
        clock.feed(p, &mut apply)
    });
    let _ = clock.finish_with(&mut apply);
    if let Some(e) = failure {
        if out.is_some() {
            // Only a file this run created (a failed create leaves what
            // was there alone).
            crate::savefile::remove_partial(&cfg.output);
        }
        return Err(e);
    }
    // Pass 1 selected connections, so pass 2 met their packets.
    let out = out.ok_or_else(|| SensorError::NothingSelected {
        selection: cfg.selection.to_string(),
        input_error: None,
    })?;
    Ok((out, read))
}
