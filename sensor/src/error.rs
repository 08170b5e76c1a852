//! The sensor's errors, each mapped to the exit code it ends the process with.

use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a runtime failure (e.g. output could not be written).
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
    /// The metrics endpoint could not listen on its address.
    #[error("metrics endpoint: cannot listen on {addr}: {message}")]
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        message: String,
    },
    /// The final metrics could not be written to their file.
    #[error("cannot write the metrics file {}: {source}", path.display())]
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
    /// Writing records failed.
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
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
            | SensorError::Metrics { .. }
            | SensorError::Config { .. } => EXIT_USAGE,
            SensorError::Truncated { .. } => EXIT_INPUT_ENDED_EARLY,
            SensorError::Output(_) | SensorError::MetricsFile { .. } => EXIT_FAILURE,
        }
    }
}
