//! Flow table settings, with Zeek's defaults.

use std::time::Duration;

/// Timeouts and limits of a [`crate::table::FlowTable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// Idle timeout of established TCP connections (Zeek `tcp_inactivity_timeout`, 5 min).
    pub tcp_idle: Duration,
    /// Idle timeout of UDP flows, and of TCP before its handshake completes
    /// (Zeek `udp_inactivity_timeout`, 1 min).
    pub udp_idle: Duration,
    /// Idle timeout of UDP flows on DNS ports (53, 137, 5353, 5355): Zeek's
    /// DNS analyzer ends them after `dns_session_timeout`, 10 s.
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
    pub active_timeout: Option<Duration>,
    /// Hard cap on live flows; beyond it the flows nearest to expiry are
    /// evicted (end reason `evicted`).
    pub max_flows: usize,
    /// Cap on the table's own memory in bytes (slabs, hash index, timer
    /// wheel, half-open queue, side slabs), `None` for no cap. When a new
    /// connection would need more, half-open connections (an unanswered
    /// SYN) are evicted first, then the connection nearest to expiry; when
    /// nothing can be evicted the packet is refused and counted.
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
