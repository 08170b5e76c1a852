//! The basic embedder loop: a classic pcap file through [`PcapReader`] and a
//! [`FlowMeter`], its connection records written as JSON lines to standard
//! output, the counters to standard error.
//!
//! ```text
//! cargo run -p flowlib --example pcap_to_json -- capture.pcap > conn.json
//! ```
//!
//! A meter hands out records in the order their connections end (timers
//! fire second by second; the end of input flushes the rest by start
//! time), not in the sensor's order. This example keeps them all, then sorts
//! them as the sensor writes them, by the capture time they became due
//! ([`ConnRecord::emitted`]), then uid, then end reason, so the same capture
//! always gives the same output. (A long capture would rather release
//! records as the capture clock passes them.)
//!
//! Exit codes: 0 done, 1 the records could not be written, 2 bad usage or
//! not a readable pcap file, 3 the capture ended early (the records of
//! every packet before the damage are still written).

use flowlib::export::{JsonLinesWriter, RecordWriter};
use flowlib::meter::MeterStats;
use flowlib::pcap_reader::{PcapError, PcapReader};
use flowlib::table::TableStats;
use flowlib::{ConfigError, ConnRecord, FlowMeter, TableConfig};
use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;
use std::{env, fs};

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The capture file could not be opened.
    #[error("cannot open: {0}")]
    Open(#[source] io::Error),
    /// The input is not a pcap file we can read.
    #[error("not a readable pcap file: {0}")]
    Capture(#[from] PcapError),
    /// The flow table settings were refused.
    #[error("flow table settings: {0}")]
    Config(#[from] ConfigError),
    /// The records could not be written.
    #[error("cannot write records: {0}")]
    Write(#[source] io::Error),
}

/// What a conversion did.
#[derive(Debug)]
pub struct Summary {
    /// Records written.
    pub records: usize,
    /// Packet counters.
    pub meter: MeterStats,
    /// Flow table counters.
    pub table: TableStats,
    /// The capture ended early: records of every packet before were still
    /// written.
    pub input_error: Option<PcapError>,
}

/// Reads the pcap file `input`, meters its packets with Zeek's default
/// timeouts and writes every record to `out` as a JSON line, in the order
/// (emitted, uid, end reason).
pub fn convert(input: impl Read, out: impl Write) -> Result<Summary, Error> {
    let mut reader = PcapReader::new(input)?;
    let link = reader.header().link;
    let mut meter = FlowMeter::new(TableConfig::default())?;
    let mut records: Vec<ConnRecord> = Vec::new();
    let input_error = loop {
        match reader.next_packet() {
            Ok(Some(p)) => meter.process(p.data, link, p.ts, p.wire_len, &mut records),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    meter.finish(&mut records);
    records
        .sort_by(|a, b| (a.emitted, &a.uid, a.end_reason).cmp(&(b.emitted, &b.uid, b.end_reason)));
    let mut writer = JsonLinesWriter::new(out);
    for r in &records {
        writer.write_record(r).map_err(Error::Write)?;
    }
    writer.finish().map_err(Error::Write)?;
    Ok(Summary {
        records: records.len(),
        meter: meter.stats().clone(),
        table: meter.table_stats().clone(),
        input_error,
    })
}

/// Opens `path` and converts it to standard output.
fn run(path: &str) -> Result<Summary, Error> {
    let file = fs::File::open(path).map_err(Error::Open)?;
    let stdout = io::stdout().lock();
    convert(io::BufReader::new(file), BufWriter::new(stdout))
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let [path] = &args[..] else {
        eprintln!("usage: pcap_to_json CAPTURE.pcap");
        return ExitCode::from(2);
    };
    match run(path) {
        Ok(s) => {
            eprintln!(
                "packets {}, decoded {}, weird {}, connections {}, records {}",
                s.meter.packets,
                s.meter.decoded,
                s.meter.weirds.total(),
                s.table.created,
                s.records
            );
            match s.input_error {
                Some(e) => {
                    eprintln!("pcap_to_json: {path}: capture ended early: {e}");
                    ExitCode::from(3)
                }
                None => ExitCode::SUCCESS,
            }
        }
        // A reader that closed the pipe (`| head`) wants no more.
        Err(Error::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e @ Error::Write(_)) => {
            eprintln!("pcap_to_json: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("pcap_to_json: {path}: {e}");
            ExitCode::from(2)
        }
    }
}
