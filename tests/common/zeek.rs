//! Parser for the Zeek `conn.log` baselines in `expected/*.zeek-conn.log`.
//!
//! Three shapes occur in the corpus (see its MANIFEST.md):
//! - full TSV logs with `#fields` / `#types` headers, `-` for unset values,
//!   `(empty)` for empty sets and `ts` masked as `XXXXXXXXXX.XXXXXX`;
//! - `zeek-cut -m` subsets, whose first non-`#` line holds the column names;
//! - `zeek-cut` subsets without `-m`, which have no header line at all. Their
//!   columns come from the zeek-cut command in MANIFEST.md's provenance table
//!   (see [`HEADERLESS_COLUMNS`]).
//!
//! A column name can also be blank: `zeek-cut` prints an empty name and empty
//! values for a field that the log does not have. In
//! `vlan-same-5tuple-different-vlans` the blank columns are `id.ctx.vlan` and
//! `id.ctx.inner_vlan` (per the zeek-cut command in the manifest); every value
//! in them is empty, i.e. Zeek logged no VLAN for that flow. Blank columns are
//! therefore ignored.

use super::Conn;
use std::collections::BTreeSet;

/// Columns of the header-less zeek-cut baselines, from the `zeek-cut ...`
/// commands in MANIFEST.md's provenance table.
pub const HEADERLESS_COLUMNS: &[(&str, &[&str])] = &[(
    "tcp-handshake-reordered.pcap.zeek-conn.log",
    &[
        "id.orig_h",
        "id.orig_p",
        "id.resp_h",
        "id.resp_p",
        "proto",
        "service",
        "community_id",
    ],
)];

/// Every conn.log column name this parser knows. A first line made only of
/// these (or blanks) is a zeek-cut header; anything else is data.
const KNOWN_COLUMNS: &[&str] = &[
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
    "ip_proto",
    "vlan",
    "inner_vlan",
    "id.ctx.vlan",
    "id.ctx.inner_vlan",
    "community_id",
];

/// A parsed Zeek conn log.
#[derive(Debug, Clone)]
pub struct ZeekLog {
    /// Non-blank column names, in file order.
    pub columns: Vec<String>,
    /// True for a zeek-cut subset (no `#fields` header).
    pub is_cut: bool,
    pub records: Vec<Conn>,
}

impl ZeekLog {
    /// Whether the log has this column (a zeek-cut subset may not). Accepts
    /// both the plain and the `id.ctx.` spelling of the VLAN columns.
    pub fn has(&self, column: &str) -> bool {
        let alias = match column {
            "vlan" => "id.ctx.vlan",
            "inner_vlan" => "id.ctx.inner_vlan",
            other => other,
        };
        self.columns.iter().any(|c| c == column || c == alias)
    }

    /// Whether Zeek keyed this log's flows by VLAN (it logged VLAN columns).
    pub fn has_vlan(&self) -> bool {
        self.has("vlan")
    }
}

/// Parses a conn log. `file_name` (the expected file's name) is only used
/// to find the columns of header-less zeek-cut output and in error messages.
pub fn parse_conn_log(text: &str, file_name: &str) -> Result<ZeekLog, String> {
    let mut fields: Option<Vec<String>> = None;
    let mut is_cut = false;
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.starts_with('#') {
            if let Some(names) = line.strip_prefix("#fields\t") {
                fields = Some(names.split('\t').map(str::to_owned).collect());
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let values: Vec<&str> = line.split('\t').collect();
        let columns = match &fields {
            Some(columns) => columns,
            None => {
                // zeek-cut output: the first line is either a header or data.
                is_cut = true;
                let looks_like_header = values
                    .iter()
                    .all(|v| v.is_empty() || KNOWN_COLUMNS.contains(v));
                if looks_like_header {
                    fields = Some(values.iter().map(|v| (*v).to_owned()).collect());
                    continue;
                }
                let known = HEADERLESS_COLUMNS
                    .iter()
                    .find(|(name, _)| *name == file_name)
                    .ok_or_else(|| {
                        format!(
                            "{file_name}:{line_no}: no #fields and no column-name line; \
                             add its columns to HEADERLESS_COLUMNS"
                        )
                    })?;
                fields.insert(known.1.iter().map(|c| (*c).to_owned()).collect())
            }
        };
        if values.len() != columns.len() {
            return Err(format!(
                "{file_name}:{line_no}: {} values for {} columns",
                values.len(),
                columns.len()
            ));
        }
        let mut conn = Conn::default();
        for (column, value) in columns.iter().zip(&values) {
            set_field(&mut conn, column, value)
                .map_err(|e| format!("{file_name}:{line_no}: column {column}: {e}"))?;
        }
        records.push(conn);
    }
    let columns: Vec<String> = fields
        .ok_or_else(|| format!("{file_name}: no columns found"))?
        .into_iter()
        .filter(|c| !c.is_empty())
        .collect();
    let unique: BTreeSet<&String> = columns.iter().collect();
    if unique.len() != columns.len() {
        return Err(format!("{file_name}: duplicate column names {columns:?}"));
    }
    Ok(ZeekLog {
        columns,
        is_cut,
        records,
    })
}

/// Stores one TSV value into the record. `-` (unset) stays `None`.
fn set_field(conn: &mut Conn, column: &str, value: &str) -> Result<(), String> {
    // Blank values only occur in the blank (non-existent) zeek-cut columns.
    if value == "-" || value.is_empty() {
        return Ok(());
    }
    fn num<T: std::str::FromStr>(value: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        value
            .parse()
            .map(Some)
            .map_err(|e| format!("bad number {value:?}: {e}"))
    }
    fn addr(value: &str) -> Result<Option<std::net::IpAddr>, String> {
        value
            .parse()
            .map(Some)
            .map_err(|e| format!("bad address {value:?}: {e}"))
    }
    let text = || Some(value.to_owned());
    match column {
        // The btest canonifier masks ts; keep real values (ppp-link-quic has some).
        "ts" => conn.ts = value.parse().ok(),
        "uid" => conn.uid = text(),
        "id.orig_h" => conn.orig_h = addr(value)?,
        "id.orig_p" => conn.orig_p = num(value)?,
        "id.resp_h" => conn.resp_h = addr(value)?,
        "id.resp_p" => conn.resp_p = num(value)?,
        "proto" => conn.proto = text(),
        "service" => conn.service = text(),
        "duration" => conn.duration = num(value)?,
        "orig_bytes" => conn.orig_bytes = num(value)?,
        "resp_bytes" => conn.resp_bytes = num(value)?,
        "conn_state" => conn.conn_state = text(),
        "missed_bytes" => conn.missed_bytes = num(value)?,
        "history" => conn.history = text(),
        "orig_pkts" => conn.orig_pkts = num(value)?,
        "orig_ip_bytes" => conn.orig_ip_bytes = num(value)?,
        "resp_pkts" => conn.resp_pkts = num(value)?,
        "resp_ip_bytes" => conn.resp_ip_bytes = num(value)?,
        "tunnel_parents" if value == "(empty)" => {}
        "tunnel_parents" => conn.tunnel_parents = value.split(',').map(str::to_owned).collect(),
        "ip_proto" => conn.ip_proto = num(value)?,
        "vlan" | "id.ctx.vlan" => conn.vlan = num(value)?,
        "inner_vlan" | "id.ctx.inner_vlan" => conn.inner_vlan = num(value)?,
        // Not compared: local_orig/local_resp depend on Zeek's site config,
        // community_id is checked by flowlib's own tests.
        "local_orig" | "local_resp" | "community_id" => {}
        "" => return Err(format!("value {value:?} in a blank-named column")),
        other => return Err(format!("unknown column {other:?}")),
    }
    Ok(())
}

/// Fills in `ip_proto` from `proto` (and the address family, for ICMP) for
/// zeek-cut subsets that lack the `ip_proto` column.
pub fn infer_ip_proto(conn: &Conn) -> Option<u8> {
    conn.ip_proto.or(match conn.proto.as_deref()? {
        "tcp" => Some(6),
        "udp" => Some(17),
        "sctp" => Some(132),
        "icmp" => match conn.orig_h.or(conn.resp_h)? {
            std::net::IpAddr::V4(_) => Some(1),
            std::net::IpAddr::V6(_) => Some(58),
        },
        _ => None,
    })
}
