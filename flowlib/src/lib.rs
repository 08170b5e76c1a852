//! flowlib: zero-copy packet decoding and a capture-time-driven flow table
//! that emits bidirectional connection records with Zeek conn.log's fields
//! and meanings.
//!
//! The pieces, in the order a packet meets them:
//! - [`decode::PacketView::parse`] borrows the captured bytes and decodes link
//!   layers, VLANs, MPLS, PPPoE, IPv4/IPv6, transports and tunnels without
//!   allocating; what it cannot decode is a named [`Weird`].
//! - [`key::FlowKey`] is the canonical bidirectional key (VLAN ids included)
//!   with a symmetric, stable hash for sharding.
//! - [`table::FlowTable`] runs Zeek's connection state machine per flow,
//!   driven by capture time only.
//! - [`record::ConnRecord`] is what comes out; [`export`] writes JSON lines or
//!   Zeek TSV.
//!
//! [`FlowMeter`] strings them together for one thread; it is all an embedder
//! needs. No libpcap, no threads, no global state.
//!
//! ```
//! use etherparse::PacketBuilder;
//! use flowlib::{ConnState, EndReason, FlowMeter, LinkType, TableConfig, Timestamp};
//!
//! // A TCP connection: handshake, one request, orderly close.
//! let (client, server) = ([10, 20, 0, 5], [10, 10, 1, 10]);
//! let tcp = |from_client: bool, seq: u32, ack: u32, flags: &str, payload: &[u8]| {
//!     let (src, dst, sp, dp) = if from_client {
//!         (client, server, 50000, 3389)
//!     } else {
//!         (server, client, 3389, 50000)
//!     };
//!     let mut b = PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(src, dst, 64).tcp(sp, dp, seq, 64240);
//!     if flags.contains('S') { b = b.syn(); }
//!     if flags.contains('A') { b = b.ack(ack); }
//!     if flags.contains('F') { b = b.fin(); }
//!     let mut frame = Vec::new();
//!     b.write(&mut frame, payload).unwrap();
//!     frame
//! };
//! let frames = [
//!     tcp(true, 100, 0, "S", b""),
//!     tcp(false, 900, 101, "SA", b""),
//!     tcp(true, 101, 901, "A", b""),
//!     tcp(true, 101, 901, "A", b"hello"),
//!     tcp(true, 106, 901, "FA", b""),
//!     tcp(false, 901, 107, "FA", b""),
//!     tcp(true, 107, 902, "A", b""),
//! ];
//!
//! let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
//! let mut records = Vec::new();
//! for (i, f) in frames.iter().enumerate() {
//!     let ts = Timestamp::from_micros(1_772_438_400, i as u32 * 1000);
//!     meter.process(f, LinkType::ETHERNET, ts, f.len() as u32, &mut records);
//! }
//! meter.finish(&mut records);
//!
//! let r = &records[0];
//! assert_eq!((r.orig_p, r.resp_p), (50000, 3389));
//! assert_eq!(r.conn_state, ConnState::SF);
//! assert_eq!(r.history, "ShADFf");
//! assert_eq!((r.orig_bytes, r.resp_bytes), (Some(5), Some(0)));
//! assert_eq!((r.orig_pkts, r.resp_pkts), (5, 2));
//! assert_eq!(r.end_reason, EndReason::Fin);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chunked;
pub mod config;
pub mod conn;
pub mod decode;
pub mod export;
pub mod fragment;
pub mod ipfix;
pub mod key;
pub mod link;
pub mod meter;
pub mod pcap_reader;
pub mod pcap_writer;
pub mod pcapng;
pub mod record;
pub mod start;
pub mod table;
pub mod table_memory;
pub mod time;
pub mod weird;

pub use config::{ConfigError, TableConfig};
pub use decode::PacketView;
pub use key::FlowKey;
pub use link::LinkType;
pub use meter::{ConnRef, FlowMeter, MeterStats};
pub use record::{ConnRecord, ConnState, EndReason, Proto};
pub use table::FlowTable;
pub use time::Timestamp;
pub use weird::{Weird, WeirdCounts};
