//! Inventories and drift as a terminal table, CSV or JSON.

use rules::inventory::drift::{hours_text, human_bytes, ChangeKind, Drift};
use rules::inventory::{period as period_of, Inventory, Row};

/// Output formats of `sensor inventory`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    /// Aligned columns for the terminal.
    Table,
    /// Comma-separated values with a header line (RFC 4180 quoting).
    Csv,
    /// One JSON document (the inventory file format `--diff` reads back).
    Json,
}

/// The period an inventory covers, for a heading: "FROM to TO UTC", or
/// "no connections".
pub fn period(inv: &Inventory) -> String {
    span(inv.period())
}

/// "FROM to TO UTC", or "no connections".
fn span(period: Option<(f64, f64)>) -> String {
    match period {
        Some((from, to)) => format!("{} to {} UTC", utc(from), utc(to)),
        None => "no connections".to_owned(),
    }
}

/// A capture time as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn utc(secs: f64) -> String {
    if !secs.is_finite() {
        return "-".to_owned();
    }
    let t = secs.floor() as i64;
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn join<'a>(items: impl IntoIterator<Item = &'a String>, sep: &str) -> String {
    items
        .into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(sep)
}

/// A row's services, with a `!` after those some connection of which no
/// relationship allowed.
pub fn services_text(r: &Row) -> String {
    let mut s: Vec<String> = r
        .services
        .iter()
        .map(|x| {
            if r.not_allowed_services.contains(x) {
                format!("{x}!")
            } else {
                x.clone()
            }
        })
        .collect();
    s.extend(r.app_services.iter().map(|a| format!("({a})")));
    s.join(" ")
}

fn resp_bytes_text(r: &Row, human: bool) -> String {
    match r.resp_bytes {
        Some(b) if human => human_bytes(b as f64),
        Some(b) => b.to_string(),
        None => "-".to_owned(),
    }
}

fn allowed_text(r: &Row) -> String {
    match r.allowed_connections {
        Some(a) => a.to_string(),
        None => "-".to_owned(),
    }
}

const INVENTORY_HEADER: [&str; 13] = [
    "from",
    "to",
    "services",
    "verdict",
    "relationships",
    "connections",
    "allowed",
    "bytes_out",
    "bytes_back",
    "first_seen",
    "last_seen",
    "hours",
    "vlans",
];

/// At most this many services are listed per row in the terminal table
/// (CSV and JSON list all).
const TABLE_SERVICES: usize = 8;

fn inventory_cells(r: &Row, human: bool) -> Vec<String> {
    let bytes = |b: u64| {
        if human {
            human_bytes(b as f64)
        } else {
            b.to_string()
        }
    };
    vec![
        r.orig.to_string(),
        r.resp.to_string(),
        if human && r.services.len() > TABLE_SERVICES {
            let all = services_text(r);
            let first: Vec<&str> = all.split(' ').take(TABLE_SERVICES).collect();
            format!(
                "{} (+{} more)",
                first.join(" "),
                r.services.len() - TABLE_SERVICES
            )
        } else {
            services_text(r)
        },
        r.verdict().as_str().to_owned(),
        join(&r.relationships, " "),
        r.connections.to_string(),
        allowed_text(r),
        bytes(r.orig_bytes),
        resp_bytes_text(r, human),
        utc(r.first_seen),
        utc(r.last_seen),
        hours_text(&r.hours),
        r.vlans
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    ]
}

/// An inventory in `format`.
pub fn inventory(inv: &Inventory, format: TableFormat) -> String {
    match format {
        TableFormat::Json => inv.to_json() + "\n",
        TableFormat::Csv => csv(
            &INVENTORY_HEADER,
            inv.rows.iter().map(|r| inventory_cells(r, false)),
        ),
        TableFormat::Table => {
            let mut out = format!(
                "{} relationships, {} connections across boundaries ({} inside one enclave not listed), {}{}\n\n",
                inv.rows.len(),
                inv.connections,
                inv.internal_connections,
                period(inv),
                match &inv.rules_file {
                    Some(f) => format!(", rules {f}"),
                    None => String::new(),
                }
            );
            out.push_str(&table(
                &INVENTORY_HEADER.map(|h| h.replace('_', " ").to_uppercase()),
                inv.rows.iter().map(|r| inventory_cells(r, true)),
            ));
            if !inv.skipped.is_empty() {
                out.push_str(&format!("\nskipped records: {:?}\n", inv.skipped));
            }
            out.push_str(
                "\n! = some connections on this service were not allowed by any relationship\n",
            );
            out
        }
    }
}

const DRIFT_HEADER: [&str; 8] = [
    "change",
    "from",
    "to",
    "what_changed",
    "old_connections",
    "new_connections",
    "verdict",
    "hours_removed",
];

/// A drift comparison in `format`.
pub fn drift(d: &Drift, format: TableFormat) -> String {
    let cells = |e: &rules::inventory::drift::DriftEntry| {
        vec![
            e.change.as_str().to_owned(),
            e.orig.to_string(),
            e.resp.to_string(),
            match e.change {
                ChangeKind::Changed => e.summary(),
                ChangeKind::Appeared => format!(
                    "new: {}",
                    e.services_added
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                ChangeKind::Vanished => format!(
                    "gone: {}",
                    e.services_removed
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            },
            e.connections.0.to_string(),
            e.connections.1.to_string(),
            e.verdict.to_owned(),
            if e.change == ChangeKind::Changed {
                hours_text(&e.hours_removed)
            } else {
                String::new()
            },
        ]
    };
    match format {
        TableFormat::Json => serde_json::to_string_pretty(d).expect("drift serialises") + "\n",
        TableFormat::Csv => csv(&DRIFT_HEADER, d.entries.iter().map(cells)),
        TableFormat::Table => {
            let count = |k| d.of(k).count();
            let mut out = format!(
                "drift: old {} ({}) -> new {} ({})\n{} appeared, {} vanished, {} changed, {} unchanged (volume per day changed by a factor of {} or more; hours: new hours of the week count)\n\n",
                span(period_of(d.old_period.0, d.old_period.1)),
                d.old_period.2,
                span(period_of(d.new_period.0, d.new_period.1)),
                d.new_period.2,
                count(ChangeKind::Appeared),
                count(ChangeKind::Vanished),
                count(ChangeKind::Changed),
                d.unchanged,
                d.settings.volume_factor
            );
            out.push_str(&table(
                &DRIFT_HEADER.map(|h| h.replace('_', " ").to_uppercase()),
                d.entries.iter().map(cells),
            ));
            out
        }
    }
}

/// Quotes a CSV field when needed (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut out = header.join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

fn table(header: &[String], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&width).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header);
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_capture_times() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_772_461_200.5), "2026-03-02 14:20:00");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
