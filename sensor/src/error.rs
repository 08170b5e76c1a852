//! The sensor's errors, each mapped to the exit code it ends the process with.

use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a runtime failure: records or alerts could not be written
/// (a full disk, a closed pipe on standard output, any other write error).
/// The message says how many had been written and flushed before.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad arguments or unusable input.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: an input ended early (truncated or corrupt capture).
pub const EXIT_INPUT_ENDED_EARLY: u8 = 3;

/// What can go wrong in the sensor.
#[derive(Debug, Error)]
pub enum SensorError {
    /// A capture file could not be opened or is not a capture.
    #[error("{}: cannot open capture: {message}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// No interface of that name.
    #[error(
        "no capture interface named {interface:?} (`sensor interfaces` lists them): {message}"
    )]
    NoInterface {
        /// The name given.
        interface: String,
        /// libpcap's message.
        message: String,
    },
    /// Capturing needs privileges the process lacks.
    #[error("not allowed to capture on {interface:?}: {message}. Live capture needs CAP_NET_RAW (and CAP_NET_ADMIN for promiscuous mode): run as root, or once: sudo setcap cap_net_raw,cap_net_admin=eip $(command -v sensor)")]
    Permission {
        /// The interface.
        interface: String,
        /// libpcap's message.
        message: String,
    },
    /// The capture's link type is not one the decoder understands.
    #[error("{}: unsupported link type {link}", path.display())]
    UnsupportedLink {
        /// The file.
        path: PathBuf,
        /// The link type, named where possible.
        link: String,
    },
    /// The BPF expression does not compile.
    #[error("invalid BPF filter {expr:?}: {message}")]
    Filter {
        /// The expression.
        expr: String,
        /// libpcap's complaint.
        message: String,
    },
    /// A capture ended inside a record or holds a corrupt record header.
    #[error("{}: capture ended early at record {record}{}: {message}", path.display(), offset.map(|o| format!(" (byte offset {o})")).unwrap_or_default())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// 1-based index of the record that could not be read.
        record: u64,
        /// Byte offset of that record's header (classic pcap only).
        offset: Option<u64>,
        /// libpcap's description.
        message: String,
    },
    /// A rule file failed validation; every error is listed.
    #[error("{} is not a valid rule file:\n{errors}", path.display())]
    Rules {
        /// The file.
        path: PathBuf,
        /// One error per line, each naming file, line and field.
        errors: String,
    },
    /// A baseline file could not be read, is of another version, or could
    /// not be written.
    #[error("baseline: {0}")]
    Baseline(String),
    /// The `--ipfix` options are unusable (bad address, unknown transport,
    /// message size out of range).
    #[error("--ipfix: {0}")]
    Ipfix(String),
    /// The IPFIX collector could not be reached at startup.
    #[error("cannot connect to the IPFIX collector {0}")]
    IpfixConnect(String),
    /// A JSON lines record file holds a line that is not a record.
    #[error("{}:{line}: not a connection record: {message}", path.display())]
    Records {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// An inventory could not be built, read or compared (bad input or
    /// arguments).
    #[error("inventory: {0}")]
    Inventory(String),
    /// A file could not be written (e.g. an extracted pcap).
    #[error("{}: cannot write: {message}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// `sensor extract` found no connection matching its selection.
    #[error("no connection matches {selection}; nothing written{}", input_error.as_ref().map(|e| format!(" (and an input ended early: {e})")).unwrap_or_default())]
    NothingSelected {
        /// The selection, as given.
        selection: String,
        /// An input that ended early, as a message.
        input_error: Option<String>,
    },
    /// Packets to extract into one pcap file have different link types (a
    /// pcap file holds one).
    #[error("{}: the selected packets have different link types ({first}, then {other}); a pcap file holds one link type: extract from the inputs of each link type separately", output.display())]
    MixedLinkTypes {
        /// The pcap being written (removed).
        output: PathBuf,
        /// The link type of the first selected packet.
        first: String,
        /// The other link type.
        other: String,
    },
    /// The metrics endpoint could not listen on its address.
    #[error("metrics endpoint: cannot listen on {addr}: {message}")]
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        message: String,
    },
    /// The final metrics could not be written to their file.
    #[error("cannot write the metrics file {}", path.display())]
    MetricsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A sensor configuration file is unreadable or invalid; every error
    /// is listed.
    #[error("{} is not a valid sensor configuration:\n{errors}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// One error per line, each naming file, line and key.
        errors: String,
    },
    /// More than one input could not be read to its end (cut short, or a
    /// later part unusable); each is listed. Like any input that stops
    /// part way (every record before was used), the exit status is 3.
    #[error("{} inputs could not be read to the end:{}", .0.len(), .0.iter().map(|e| format!("\n  {e}")).collect::<String>())]
    InputsEndedEarly(Vec<SensorError>),
    /// Flow table settings the flow table refuses.
    #[error("flow table settings: {0}")]
    TableConfig(#[from] flowlib::ConfigError),
    /// Writing output failed (the io error follows in the chain).
    #[error("cannot write output")]
    Output(#[source] io::Error),
    /// Writing records or alerts failed: a full disk, a reader that closed
    /// the pipe, any other write error. Nothing more is written; `written`
    /// lines had been written and flushed before the failure.
    #[error(
        "cannot write {what} to {dest}{} after {written} {what} were written and flushed",
        hint(source)
    )]
    Write {
        /// `records` or `alerts`.
        what: &'static str,
        /// The file, or `standard output`.
        dest: String,
        /// Lines written and flushed before the failure.
        written: u64,
        /// The write error.
        #[source]
        source: io::Error,
    },
}

impl SensorError {
    /// [`SensorError::WriteFile`] for `path`, saying what `e` means in the
    /// common cases (a full disk).
    pub fn write_file(path: &std::path::Path, e: &io::Error) -> SensorError {
        SensorError::WriteFile {
            path: path.to_owned(),
            message: format!("{e}{}", hint(e)),
        }
    }

    /// One error for what went wrong reading several inputs: none, the one,
    /// or [`SensorError::InputsEndedEarly`] listing them all.
    pub fn of_inputs(mut errors: Vec<SensorError>) -> Option<SensorError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(SensorError::InputsEndedEarly(errors)),
        }
    }
}

/// What a write error means, for the common cases.
fn hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::BrokenPipe => " (the reader closed the pipe)",
        io::ErrorKind::StorageFull => " (no space left on the device)",
        _ => "",
    }
}

impl SensorError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            SensorError::Open { .. }
            | SensorError::UnsupportedLink { .. }
            | SensorError::Filter { .. }
            | SensorError::NoInterface { .. }
            | SensorError::Permission { .. }
            | SensorError::Rules { .. }
            | SensorError::Baseline(_)
            | SensorError::Ipfix(_)
            | SensorError::Records { .. }
            | SensorError::Inventory(_)
            | SensorError::MixedLinkTypes { .. }
            | SensorError::Metrics { .. }
            | SensorError::Config { .. }
            | SensorError::TableConfig(_) => EXIT_USAGE,
            SensorError::Truncated { .. } => EXIT_INPUT_ENDED_EARLY,
            // An input that stopped on a usage error (a filter that cannot
            // apply to a link type met mid-stream) is that usage error.
            SensorError::InputsEndedEarly(errors) => errors
                .iter()
                .map(SensorError::exit_code)
                .find(|&c| c == EXIT_USAGE)
                .unwrap_or(EXIT_INPUT_ENDED_EARLY),
            SensorError::Output(_)
            | SensorError::IpfixConnect(_)
            | SensorError::Write { .. }
            | SensorError::WriteFile { .. }
            | SensorError::MetricsFile { .. }
            | SensorError::NothingSelected { .. } => EXIT_FAILURE,
        }
    }
}
