//! Flow table settings, with Zeek's defaults.

use std::time::Duration;
use thiserror::Error;

/// Shortest [`TableConfig::active_timeout`] accepted: the timer wheel's
/// resolution, so each interim record of a connection is due in a later
/// second than the one before.
pub const MIN_ACTIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Smallest [`TableConfig::max_flows`] accepted.
pub const MIN_MAX_FLOWS: usize = 1;

/// Smallest [`TableConfig::max_memory`] accepted, in bytes: every cap from
/// this one up leaves room for a TCP and a UDP connection (smaller ones
/// may leave room for none, and every packet would be refused).
pub const MIN_MAX_MEMORY: usize = 4096;

/// A [`TableConfig`] setting out of range ([`TableConfig::validate`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Error)]
pub enum ConfigError {
    /// [`TableConfig::active_timeout`] is shorter than
    /// [`MIN_ACTIVE_TIMEOUT`]: a connection would report an interim record
    /// again and again within one second (forever, for zero).
    #[error("active_timeout of {value:?} is below the minimum of {min:?} (None disables interim records)")]
    ActiveTimeoutTooShort {
        /// The timeout asked for.
        value: Duration,
        /// [`MIN_ACTIVE_TIMEOUT`].
        min: Duration,
    },
    /// [`TableConfig::max_flows`] is below [`MIN_MAX_FLOWS`]: the table
    /// could hold no connection.
    #[error("max_flows of {value} is below the minimum of {min}")]
    MaxFlowsTooSmall {
        /// The cap asked for.
        value: usize,
        /// [`MIN_MAX_FLOWS`].
        min: usize,
    },
    /// [`TableConfig::max_memory`] is below [`MIN_MAX_MEMORY`]: the table
    /// might hold no connection.
    #[error("max_memory of {value} bytes is below the minimum of {min} bytes")]
    MaxMemoryTooSmall {
        /// The cap asked for, in bytes.
        value: usize,
        /// [`MIN_MAX_MEMORY`].
        min: usize,
    },
}

/// Timeouts and limits of a [`crate::table::FlowTable`].
///
/// [`crate::table::FlowTable::new`] and [`crate::FlowMeter::new`] refuse a
/// configuration that [`TableConfig::validate`] refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// Idle timeout of established TCP connections (Zeek `tcp_inactivity_timeout`, 5 min).
    pub tcp_idle: Duration,
    /// Idle timeout of UDP flows, and of TCP before its handshake completes
    /// (Zeek `udp_inactivity_timeout`, 1 min).
    pub udp_idle: Duration,
    /// Zeek's `dns_session_timeout` (10 s), for UDP flows whose responder
    /// port is a DNS port (53, 137, 5353, 5355): Zeek's DNS analyzer checks
    /// them this long after their start and every this long after that, and
    /// ends them at the first check that finds them silent for this long
    /// minus one second (the UDP idle timeout applies too).
    pub dns_idle: Duration,
    /// Idle timeout of ICMP flows (Zeek `icmp_inactivity_timeout`, 1 min).
    pub icmp_idle: Duration,
    /// Idle timeout of other IP protocols (Zeek `unknown_ip_inactivity_timeout`, 1 min).
    pub other_idle: Duration,
    /// How long a closed TCP connection lingers to absorb late packets
    /// before its record is emitted (Zeek `tcp_close_delay`, 5 s).
    pub tcp_close_delay: Duration,
    /// How long an unanswered SYN waits for an answer (Zeek `tcp_attempt_delay`, 5 s).
    pub tcp_attempt_delay: Duration,
    /// Emit an interim record (end reason `active`) for flows running this
    /// long, and again every such period; `None` disables interim records.
    /// At least [`MIN_ACTIVE_TIMEOUT`] (1 s): each firing of a connection's
    /// timer then emits one interim record and files the next one in a
    /// later second, and between two packets of a connection at most its
    /// idle timeout / `active_timeout` interim records come.
    pub active_timeout: Option<Duration>,
    /// Hard cap on live flows; beyond it the flows nearest to expiry are
    /// evicted (end reason `evicted`). At least [`MIN_MAX_FLOWS`] (1).
    pub max_flows: usize,
    /// Cap on the table's own memory in bytes (slabs, hash index, timer
    /// wheel, half-open queue, side slabs), `None` for no cap. When a new
    /// connection would need more, half-open connections (an unanswered
    /// SYN) are evicted first, then the connection nearest to expiry; when
    /// nothing can be evicted the packet is refused and counted. At least
    /// [`MIN_MAX_MEMORY`] (4 KiB).
    pub max_memory: Option<usize>,
    /// Emergency mode for SYN floods (on by default; Suricata enters its
    /// emergency mode by itself at its memcap too): while the table is full
    /// (flow cap or memory cap) and at least half its live connections are
    /// half-open (unanswered SYNs), a bare SYN that would start a
    /// connection is refused and counted
    /// ([`crate::table::TableStats::refused_syn_when_full`]) instead of
    /// evicting another half-open connection and writing its record. New
    /// connections still enter from their SYN-ACK, other new flows still
    /// evict half-open connections first, and a full table that is not
    /// mostly half-open evicts for SYNs as for any new flow. `false`: every
    /// SYN evicts (each flood SYN then costs a record).
    pub refuse_syns_when_full: bool,
    /// Most timer-wheel entries one call to
    /// [`crate::table::FlowTable::advance`] (so one packet) fires, like
    /// Zeek's `max_timer_expires` (300); 0 fires every due entry. Entries
    /// left over form a backlog drained by the next calls; a packet for a
    /// connection in the backlog ends it first, a new connection that needs
    /// room drains the backlog before evicting anything, and a flush drains
    /// it all, so the records are the same as with no bound. It bounds the
    /// work of one packet after a jump of the capture clock.
    pub max_timer_expires: usize,
    /// Cap on tracked IP fragment trains (for attributing non-first fragments).
    pub max_fragment_trains: usize,
    /// Cap on the fragment tracker's memory in bytes (its map's allocation).
    pub max_fragment_bytes: usize,
    /// How long a fragment train is remembered.
    pub fragment_timeout: Duration,
    /// Also emit a record with end reason `start` when a connection's first
    /// packet is seen (for detectors that act at once).
    pub report_starts: bool,
    /// With [`TableConfig::report_starts`]: keep each start record in its
    /// compact form ([`ConnStart`](crate::start::ConnStart), nothing
    /// allocated) until the caller takes it
    /// ([`FlowMeter::take_starts`](crate::FlowMeter::take_starts)) instead
    /// of putting it among the records. A start a `ConnStart` cannot hold
    /// (a tunnelled connection) is still a record.
    pub compact_starts: bool,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            tcp_idle: Duration::from_secs(300),
            udp_idle: Duration::from_secs(60),
            dns_idle: Duration::from_secs(10),
            icmp_idle: Duration::from_secs(60),
            other_idle: Duration::from_secs(60),
            tcp_close_delay: Duration::from_secs(5),
            tcp_attempt_delay: Duration::from_secs(5),
            active_timeout: Some(Duration::from_secs(3600)),
            max_flows: 1_000_000,
            max_memory: None,
            refuse_syns_when_full: true,
            max_timer_expires: 300,
            max_fragment_trains: 65_536,
            max_fragment_bytes: 8 << 20,
            fragment_timeout: Duration::from_secs(30),
            report_starts: false,
            compact_starts: false,
        }
    }
}

impl TableConfig {
    /// Checks the settings a table cannot work with: an
    /// [`active_timeout`](TableConfig::active_timeout) under
    /// [`MIN_ACTIVE_TIMEOUT`], a [`max_flows`](TableConfig::max_flows) under
    /// [`MIN_MAX_FLOWS`], a [`max_memory`](TableConfig::max_memory) under
    /// [`MIN_MAX_MEMORY`]. Every other value is usable (a zero idle timeout
    /// ends a flow in the second after its last packet; a
    /// [`max_timer_expires`](TableConfig::max_timer_expires) of 0 means no
    /// bound).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(value) = self.active_timeout.filter(|&d| d < MIN_ACTIVE_TIMEOUT) {
            return Err(ConfigError::ActiveTimeoutTooShort {
                value,
                min: MIN_ACTIVE_TIMEOUT,
            });
        }
        if self.max_flows < MIN_MAX_FLOWS {
            return Err(ConfigError::MaxFlowsTooSmall {
                value: self.max_flows,
                min: MIN_MAX_FLOWS,
            });
        }
        if let Some(value) = self.max_memory.filter(|&m| m < MIN_MAX_MEMORY) {
            return Err(ConfigError::MaxMemoryTooSmall {
                value,
                min: MIN_MAX_MEMORY,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::FlowTable;

    #[test]
    fn defaults_and_the_minimums_are_accepted() {
        assert_eq!(TableConfig::default().validate(), Ok(()));
        let least = TableConfig {
            active_timeout: Some(MIN_ACTIVE_TIMEOUT),
            max_flows: MIN_MAX_FLOWS,
            max_memory: Some(MIN_MAX_MEMORY),
            ..TableConfig::default()
        };
        assert_eq!(least.validate(), Ok(()));
        let off = TableConfig {
            active_timeout: None,
            max_memory: None,
            ..TableConfig::default()
        };
        assert_eq!(off.validate(), Ok(()));
    }

    /// Regression: `max_flows: 0` made a table that refused every
    /// connection (counted as refused for memory).
    #[test]
    fn a_zero_flow_cap_is_refused() {
        let cfg = TableConfig {
            max_flows: 0,
            ..TableConfig::default()
        };
        let err = FlowTable::new(cfg).map(|_| ()).unwrap_err();
        assert_eq!(err, ConfigError::MaxFlowsTooSmall { value: 0, min: 1 });
        assert_eq!(err.to_string(), "max_flows of 0 is below the minimum of 1");
    }

    #[test]
    fn active_timeout_errors_name_the_field_and_the_limit() {
        let cfg = TableConfig {
            active_timeout: Some(Duration::from_millis(1)),
            ..TableConfig::default()
        };
        assert_eq!(
            cfg.validate().unwrap_err().to_string(),
            "active_timeout of 1ms is below the minimum of 1s (None disables interim records)"
        );
    }

    /// A memory cap too small for one connection made a table that refused
    /// every packet; from [`MIN_MAX_MEMORY`] up, every cap holds a TCP and
    /// a UDP connection.
    #[test]
    fn memory_caps_below_the_minimum_are_refused_and_those_above_hold_connections() {
        for cap in [0, 1, 700, MIN_MAX_MEMORY - 1] {
            let cfg = TableConfig {
                max_memory: Some(cap),
                ..TableConfig::default()
            };
            assert_eq!(
                cfg.validate(),
                Err(ConfigError::MaxMemoryTooSmall {
                    value: cap,
                    min: MIN_MAX_MEMORY
                })
            );
        }
        let frame = |tcp: bool| {
            let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64);
            let mut v = Vec::new();
            if tcp {
                b.tcp(40000, 22, 1, 1000).syn().write(&mut v, &[]).unwrap();
            } else {
                b.udp(40000, 53).write(&mut v, &[0; 20]).unwrap();
            }
            v
        };
        let frames = [frame(true), frame(false)];
        for cap in (MIN_MAX_MEMORY..=64 << 10).step_by(7) {
            let mut m = crate::FlowMeter::new(TableConfig {
                max_memory: Some(cap),
                ..TableConfig::default()
            })
            .unwrap();
            let mut out = Vec::new();
            for f in &frames {
                let ts = crate::Timestamp::from_micros(1, 0);
                m.process(f, crate::LinkType::RAW, ts, f.len() as u32, &mut out);
            }
            assert_eq!(m.live_flows(), 2, "cap {cap}");
        }
    }
}
