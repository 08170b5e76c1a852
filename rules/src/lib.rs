#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! The enclave model: who may talk to whom across a trust boundary.
//!
//! A managed service provider's network is a set of **enclaves** (the
//! provider's management network, each customer's networks, shared
//! services, the internet), **host groups** inside them (jump hosts,
//! monitoring, backup servers), and **relationships** that say which traffic
//! between them is expected: from where, to where, on which services, in
//! which time windows, up to what volume. Everything else that crosses a
//! boundary is for the detector to score.
//!
//! - [`config`]: the TOML rule file, its complete validation, and the
//!   validated [`Rules`] (the file format is documented there and in the
//!   crate's README).
//! - [`enclave`]: [`Enclave`](enclave::Enclave), its kind, VLAN scopes, and
//!   the [`EnclaveMap`](enclave::EnclaveMap) that locates every address.
//! - [`hostgroup`]: named sets of hosts inside an enclave.
//! - [`relationship`]: services, time windows (IANA time zones with their
//!   daylight-saving rules, or fixed offsets) and relationships.
//! - [`lookup`]: the longest-prefix matcher under the enclave map.
//! - [`inventory`]: every observed relationship between enclaves and host
//!   groups, and the drift between two inventories.
//! - [`error`]: errors that name file, line and field.
//!
//! ```
//! use rules::Rules;
//!
//! let rules = Rules::from_str(r#"
//!     [[enclaves]]
//!     name = "provider"
//!     kind = "provider"
//!     networks = ["10.10.0.0/16"]
//!
//!     [[enclaves]]
//!     name = "customer-a"
//!     kind = "customer"
//!     networks = ["10.20.0.0/16"]
//!
//!     [[host_groups]]
//!     name = "jump-hosts"
//!     enclave = "provider"
//!     hosts = ["10.10.1.10"]
//!
//!     [[relationships]]
//!     name = "maintenance"
//!     from = "jump-hosts"
//!     to = "customer-a"
//!     services = ["tcp/3389"]
//!     windows = [{ days = "weekdays", start = "20:00", end = "22:00", tz = "Europe/Berlin" }]
//! "#, "example.toml").unwrap();
//!
//! let jump = rules.locate("10.10.1.10".parse().unwrap(), None);
//! assert_eq!(rules.enclave(jump.enclave).name(), "provider");
//! assert_eq!(rules.host_group(jump.host_group.unwrap()).name(), "jump-hosts");
//! let outside = rules.locate("192.0.2.1".parse().unwrap(), None);
//! assert_eq!(rules.enclave(outside.enclave).name(), "internet");
//!
//! let bad = Rules::from_str("[[enclaves]]\nname = \"x\"\nkind = \"customer\"\nnetworks = [\"10.0.0.0/33\"]\n", "bad.toml")
//!     .unwrap_err();
//! assert_eq!(
//!     bad.to_string(),
//!     "bad.toml:4: enclaves[0].networks[0]: \"10.0.0.0/33\" is not a valid network (prefix length 33 > 32)"
//! );
//! ```
//!
//! Nothing here reads the wall clock: windows are checked against capture
//! time ([`flowlib::Timestamp`]). Nothing here prints.

pub mod baseline;
pub mod config;
pub mod detector;
pub mod enclave;
pub mod error;
pub mod hostgroup;
pub mod inventory;
pub mod lookup;
pub mod relationship;
#[cfg(test)]
mod test_records;

pub use config::{Rules, Summary};
pub use enclave::Location;
pub use error::{RuleError, RuleErrors};
