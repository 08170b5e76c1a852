//! The sensor: capture sources, the replay pipeline and outputs, wired to a
//! command line. The binary is a thin `main` over [`cli::main`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod enclaves;
pub mod error;
pub mod eve;
pub mod extract;
pub mod extract_cmd;
pub mod inventory;
pub mod ipfix_export;
pub mod live;
pub mod metrics;
pub mod order;
pub mod output;
pub mod paths;
pub mod pipeline;
pub mod progress;
pub mod record_json;
pub mod replay;
pub mod report;
pub mod rotation;
pub mod savefile;
pub mod scan;
pub mod source;
pub mod start;
pub mod stream;
pub mod summary;
#[cfg(test)]
mod test_captures;
pub mod timeline;
pub mod window;
