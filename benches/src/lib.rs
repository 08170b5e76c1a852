//! flowbench: synthetic but protocol-correct traffic for benchmarks and tests.
//!
//! - [`Conversation`] describes one TCP session, UDP exchange or ICMP echo
//!   (addresses, ports, bytes each way, timing, close style, VLAN) and
//!   generates its Ethernet frames with etherparse's `PacketBuilder`: real
//!   3-way handshakes, continuous sequence and acknowledgement numbers,
//!   MSS-sized segments, ACKs every second segment, FIN or RST closes,
//!   rejected and unanswered SYNs. [`Conversation::expected`] gives the Zeek
//!   conn.log ground truth (packets, bytes, `conn_state`, `history`).
//! - [`Interleave`] merges many conversations by timestamp, generating frames
//!   lazily; [`TrafficMix`] owns a set of conversations and
//!   [`RealisticFlows`] produces an enterprise-link mix of any size.
//! - Everything is deterministic from a seed ([`SplitMix64`]).
//!
//! ```
//! use flowbench::{Close, Conversation};
//! use flowlib::Timestamp;
//!
//! let c = Conversation::tcp(
//!     "10.20.30.40:50000".parse().unwrap(),
//!     "203.0.113.5:443".parse().unwrap(),
//!     Timestamp::from_micros(1_772_438_400, 0),
//! )
//! .bytes(3000, 500)
//! .close(Close::Fin);
//! let frames = flowbench::packets(&c);
//! let truth = c.expected();
//! assert_eq!(truth.conn_state, "SF");
//! assert_eq!(truth.history, "ShADadFf");
//! assert_eq!(frames.len() as u64, truth.orig_pkts + truth.resp_pkts);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conversation;
pub mod flood;
mod mix;
mod rng;
pub mod scenario;

pub use conversation::{packets, Close, Conversation, Expected, Frames, Protocol};
pub use mix::{Interleave, MixConfig, RealisticFlows, TrafficMix, DEFAULT_START};
pub use rng::{mix as mix64, SplitMix64};

#[cfg(test)]
mod tests;
