//! Matching our connection records to Zeek's and comparing their fields.
//!
//! Matching: a Zeek record and one of ours are *candidates* when every key
//! column the Zeek log has agrees, with the endpoints taken as an unordered
//! pair (so a direction flip still matches and is reported as the field
//! `direction`):
//! - `proto` (when Zeek's is `unknown_transport` we compare `ip_proto`
//!   instead, and ignore ports: Zeek logs 0/0 there, while we may parse ports,
//!   e.g. for SCTP);
//! - `id.orig_h`, `id.orig_p`, `id.resp_h`, `id.resp_p` (ICMP type/code are
//!   mapped to ports by both sides);
//! - `vlan`/`inner_vlan`, only if Zeek's log has VLAN columns.
//!
//! Zeek may log several connections with the same 5-tuple (a new connection
//! after a RST, see tunnel-teredo), and we may split what Zeek merged (VLANs).
//! So candidates are paired greedily, best first, by how many compared fields
//! agree; ties go to the earlier Zeek record and our earliest record. Zeek
//! records left over are "missing in ours", records of ours left over are
//! "extra in ours".

use super::zeek::{infer_ip_proto, ZeekLog};
use super::Conn;

/// A compared field. Only fields whose columns the Zeek log has are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    /// orig_pkts / resp_pkts.
    Packets,
    /// orig_ip_bytes / resp_ip_bytes.
    IpBytes,
    /// orig_bytes / resp_bytes (payload; `-` when Zeek's duration is 0).
    PayloadBytes,
    ConnState,
    History,
    /// Within [`DURATION_TOLERANCE`].
    Duration,
    /// Number of tunnel parents only: uids are random on both sides.
    TunnelParents,
    /// Our orig/resp are Zeek's resp/orig.
    Direction,
    /// `proto` string (e.g. Zeek logs SCTP as `unknown_transport`).
    Proto,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::Packets,
        Field::IpBytes,
        Field::PayloadBytes,
        Field::ConnState,
        Field::History,
        Field::Duration,
        Field::TunnelParents,
        Field::Direction,
        Field::Proto,
    ];

    /// Name used in reports and in known-differences.toml.
    pub fn name(self) -> &'static str {
        match self {
            Field::Packets => "packets",
            Field::IpBytes => "ip_bytes",
            Field::PayloadBytes => "payload_bytes",
            Field::ConnState => "conn_state",
            Field::History => "history",
            Field::Duration => "duration",
            Field::TunnelParents => "tunnel_parents",
            Field::Direction => "direction",
            Field::Proto => "proto",
        }
    }

    /// Short column header for the summary table.
    pub fn short(self) -> &'static str {
        match self {
            Field::Packets => "pkts",
            Field::IpBytes => "ipB",
            Field::PayloadBytes => "payB",
            Field::ConnState => "state",
            Field::History => "hist",
            Field::Duration => "dur",
            Field::TunnelParents => "tunP",
            Field::Direction => "dir",
            Field::Proto => "proto",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Durations are equal if within 1 µs (Zeek prints 6 decimals) plus a hair
/// for float rounding.
pub const DURATION_TOLERANCE: f64 = 1e-6 + 1e-9;

/// Zeek leaves `duration` (and `orig_bytes`/`resp_bytes`) unset (`-`) when the
/// duration is 0, i.e. for single-packet connections. Our JSON omits them in
/// the same case, so absent vs 0 is a real difference, not an equivalence.
pub const ABSENT_DURATION_EQUALS_ZERO: bool = false;

/// One Zeek record paired with one of ours.
#[derive(Debug, Clone)]
pub struct Pair {
    pub zeek: usize,
    pub ours: usize,
    /// Our orig is Zeek's resp.
    pub reversed: bool,
    /// Differing fields with a `ours=... zeek=...` description.
    pub mismatches: Vec<(Field, String)>,
}

impl Pair {
    pub fn differs(&self, field: Field) -> bool {
        self.mismatches.iter().any(|(f, _)| *f == field)
    }

    /// Same direction and identical packet and IP-byte counts (the columns the
    /// log has) in both directions.
    pub fn counts_agree(&self) -> bool {
        ![Field::Direction, Field::Packets, Field::IpBytes]
            .iter()
            .any(|f| self.differs(*f))
    }

    /// [`Pair::counts_agree`] and identical conn_state and history.
    pub fn counts_and_state_agree(&self) -> bool {
        self.counts_agree() && !self.differs(Field::ConnState) && !self.differs(Field::History)
    }
}

/// The comparison of one capture.
#[derive(Debug, Clone)]
pub struct CaptureComparison {
    pub pairs: Vec<Pair>,
    /// Indices of Zeek records without a partner.
    pub missing: Vec<usize>,
    /// Indices of our records without a partner.
    pub extra: Vec<usize>,
    /// Fields this log lets us compare.
    pub compared: Vec<Field>,
}

/// Matches and compares one capture's records.
pub fn compare(log: &ZeekLog, ours: &[Conn]) -> CaptureComparison {
    let compared: Vec<Field> = Field::ALL
        .into_iter()
        .filter(|f| field_available(log, *f))
        .collect();

    // All candidate pairs with their agreement score.
    let mut candidates = Vec::new();
    for (zi, z) in log.records.iter().enumerate() {
        for (oi, o) in ours.iter().enumerate() {
            if let Some(reversed) = candidate(log, z, o) {
                let mismatches = mismatches(log, z, o, reversed, &compared);
                let score = compared.len() - mismatches.len();
                candidates.push((score, zi, oi, reversed, mismatches));
            }
        }
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));

    let mut zeek_used = vec![false; log.records.len()];
    let mut ours_used = vec![false; ours.len()];
    let mut pairs = Vec::new();
    for (_, zi, oi, reversed, mismatches) in candidates {
        if zeek_used[zi] || ours_used[oi] {
            continue;
        }
        zeek_used[zi] = true;
        ours_used[oi] = true;
        pairs.push(Pair {
            zeek: zi,
            ours: oi,
            reversed,
            mismatches,
        });
    }
    pairs.sort_by_key(|p| p.zeek);
    let unused = |used: &[bool]| {
        used.iter()
            .enumerate()
            .filter(|(_, u)| !**u)
            .map(|(i, _)| i)
            .collect()
    };
    CaptureComparison {
        pairs,
        missing: unused(&zeek_used),
        extra: unused(&ours_used),
        compared,
    }
}

fn field_available(log: &ZeekLog, field: Field) -> bool {
    let any = |cols: &[&str]| cols.iter().any(|c| log.has(c));
    match field {
        Field::Packets => any(&["orig_pkts", "resp_pkts"]),
        Field::IpBytes => any(&["orig_ip_bytes", "resp_ip_bytes"]),
        Field::PayloadBytes => any(&["orig_bytes", "resp_bytes"]),
        Field::ConnState => log.has("conn_state"),
        Field::History => log.has("history"),
        Field::Duration => log.has("duration"),
        Field::TunnelParents => log.has("tunnel_parents"),
        Field::Direction => any(&["id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"]),
        Field::Proto => log.has("proto"),
    }
}

fn is_unknown_transport(z: &Conn) -> bool {
    z.proto.as_deref() == Some("unknown_transport")
}

/// `Some(reversed)` if `o` can be Zeek's record `z`, else `None`.
fn candidate(log: &ZeekLog, z: &Conn, o: &Conn) -> Option<bool> {
    let unknown = is_unknown_transport(z);
    if unknown {
        if infer_ip_proto(z) != o.ip_proto {
            return None;
        }
    } else if log.has("proto") && z.proto != o.proto {
        return None;
    }
    if log.has_vlan() && (z.vlan != o.vlan || z.inner_vlan != o.inner_vlan) {
        return None;
    }
    // A Zeek column that is absent from a zeek-cut subset is None: no constraint.
    let side = |zh: Option<std::net::IpAddr>, zp: Option<u16>, oh, op| {
        zh.is_none_or(|h| Some(h) == oh) && (unknown || zp.is_none_or(|p| Some(p) == op))
    };
    if side(z.orig_h, z.orig_p, o.orig_h, o.orig_p) && side(z.resp_h, z.resp_p, o.resp_h, o.resp_p)
    {
        Some(false)
    } else if side(z.orig_h, z.orig_p, o.resp_h, o.resp_p)
        && side(z.resp_h, z.resp_p, o.orig_h, o.orig_p)
    {
        Some(true)
    } else {
        None
    }
}

/// Compares a directional pair of counts, only for the columns the log has.
fn counts(
    log: &ZeekLog,
    (orig_col, resp_col): (&str, &str),
    zeek: (Option<u64>, Option<u64>),
    ours: (Option<u64>, Option<u64>),
) -> Option<String> {
    let orig_differs = log.has(orig_col) && zeek.0 != ours.0;
    let resp_differs = log.has(resp_col) && zeek.1 != ours.1;
    (orig_differs || resp_differs).then(|| {
        format!(
            "orig/resp ours={}/{} zeek={}/{}",
            show(&ours.0),
            show(&ours.1),
            show(&zeek.0),
            show(&zeek.1)
        )
    })
}

/// Zeek's notation: `-` for unset.
pub fn show<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "-".to_owned(), T::to_string)
}

fn mismatches(
    log: &ZeekLog,
    z: &Conn,
    o: &Conn,
    reversed: bool,
    compared: &[Field],
) -> Vec<(Field, String)> {
    // Our per-direction values in Zeek's orientation, so a direction flip is
    // reported once (as `direction`) rather than as every count differing.
    let align = |orig: Option<u64>, resp: Option<u64>| {
        if reversed {
            (resp, orig)
        } else {
            (orig, resp)
        }
    };
    let text = |zeek: &Option<String>, ours: &Option<String>| {
        (zeek != ours).then(|| format!("ours={} zeek={}", show(ours), show(zeek)))
    };
    let mut out = Vec::new();
    for &field in compared {
        let difference = match field {
            Field::Packets => counts(
                log,
                ("orig_pkts", "resp_pkts"),
                (z.orig_pkts, z.resp_pkts),
                align(o.orig_pkts, o.resp_pkts),
            ),
            Field::IpBytes => counts(
                log,
                ("orig_ip_bytes", "resp_ip_bytes"),
                (z.orig_ip_bytes, z.resp_ip_bytes),
                align(o.orig_ip_bytes, o.resp_ip_bytes),
            ),
            Field::PayloadBytes => counts(
                log,
                ("orig_bytes", "resp_bytes"),
                (z.orig_bytes, z.resp_bytes),
                align(o.orig_bytes, o.resp_bytes),
            ),
            Field::ConnState => text(&z.conn_state, &o.conn_state),
            Field::History => text(&z.history, &o.history),
            Field::Duration => {
                let equal = match (z.duration, o.duration) {
                    (Some(a), Some(b)) => (a - b).abs() <= DURATION_TOLERANCE,
                    (None, None) => true,
                    (None, Some(d)) | (Some(d), None) => ABSENT_DURATION_EQUALS_ZERO && d == 0.0,
                };
                (!equal).then(|| {
                    format!(
                        "ours={} zeek={}",
                        o.duration.map_or("-".to_owned(), |d| format!("{d:.6}")),
                        z.duration.map_or("-".to_owned(), |d| format!("{d:.6}"))
                    )
                })
            }
            Field::TunnelParents => (z.tunnel_parents.len() != o.tunnel_parents.len()).then(|| {
                format!(
                    "count ours={} zeek={}",
                    o.tunnel_parents.len(),
                    z.tunnel_parents.len()
                )
            }),
            Field::Direction => reversed.then(|| {
                format!(
                    "ours orig={}:{} zeek orig={}:{}",
                    show(&o.orig_h),
                    show(&o.orig_p),
                    show(&z.orig_h),
                    show(&z.orig_p)
                )
            }),
            Field::Proto => text(&z.proto, &o.proto),
        };
        if let Some(detail) = difference {
            out.push((field, detail));
        }
    }
    out
}
