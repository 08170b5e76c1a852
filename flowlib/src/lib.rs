//! flowlib: zero-copy packet decoding and a capture-time-driven flow table.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod conn;
pub mod decode;
pub mod export;
pub mod fragment;
pub mod key;
pub mod link;
pub mod meter;
pub mod pcap_writer;
pub mod pcapng;
pub mod record;
pub mod table;
pub mod time;
pub mod weird;

pub use config::TableConfig;
pub use decode::PacketView;
pub use key::FlowKey;
pub use link::LinkType;
pub use meter::{FlowMeter, MeterStats};
pub use record::{ConnRecord, ConnState, EndReason, Proto};
pub use table::FlowTable;
pub use time::Timestamp;
pub use weird::{Weird, WeirdCounts};
