//! flowlib: zero-copy packet decoding and a capture-time-driven flow table.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod link;
pub mod pcap_writer;
pub mod time;

pub use link::LinkType;
pub use time::Timestamp;
pub mod decode;
pub mod weird;
pub use decode::PacketView;
pub use weird::{Weird, WeirdCounts};
