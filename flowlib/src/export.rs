//! Record writers over any `std::io::Write`: JSON lines, and Zeek's TSV
//! log format (with `#separator`, `#fields` and `#types` headers exactly as
//! Zeek writes them, so `zeek-cut` and Zeek log readers accept the output).

use crate::record::ConnRecord;
use crate::time::Timestamp;
use std::fmt;
use std::io::{self, Write};

mod json_line;
pub mod json_value;

/// Something that takes connection records.
pub trait RecordWriter {
    /// Writes one record.
    fn write_record(&mut self, r: &ConnRecord) -> io::Result<()>;
    /// Writes any trailer and flushes.
    fn finish(&mut self) -> io::Result<()>;
}

/// One JSON object per line, with Zeek's field names; absent values are left out.
///
/// Each line is serialized into a buffer of its own and handed to `out` in
/// one `write_all`: serde_json writes a record as some fifty small pieces,
/// and each piece going through the writer's layers (a rotating file over a
/// `BufWriter`) cost more than the serializing itself. The line is the
/// text serde_json writes for the record's `Serialize`, built directly
/// (constant keys, digits and plain strings copied).
pub struct JsonLinesWriter<W: Write> {
    out: W,
    line: Vec<u8>,
}

/// The writer's type, not its output.
impl<W: Write> fmt::Debug for JsonLinesWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesWriter").finish_non_exhaustive()
    }
}

impl<W: Write> JsonLinesWriter<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        JsonLinesWriter {
            out,
            line: Vec::with_capacity(1024),
        }
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// The underlying writer, e.g. to flush it at a batch boundary.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}

impl<W: Write> RecordWriter for JsonLinesWriter<W> {
    fn write_record(&mut self, r: &ConnRecord) -> io::Result<()> {
        self.line.clear();
        json_line::write_record(r, &mut self.line);
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The conn.log columns we write, in order, with their Zeek types.
pub const ZEEK_FIELDS: &[(&str, &str)] = &[
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("proto", "enum"),
    ("service", "string"),
    ("duration", "interval"),
    ("orig_bytes", "count"),
    ("resp_bytes", "count"),
    ("conn_state", "string"),
    ("local_orig", "bool"),
    ("local_resp", "bool"),
    ("missed_bytes", "count"),
    ("history", "string"),
    ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"),
    ("resp_pkts", "count"),
    ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
    ("vlan", "int"),
    ("inner_vlan", "int"),
    ("ip_proto", "count"),
    ("community_id", "string"),
    ("end_reason", "string"),
    ("orig_enclave", "string"),
    ("resp_enclave", "string"),
    ("orig_host_group", "string"),
    ("resp_host_group", "string"),
];

/// Zeek's TSV conn.log. The header is written with the first record (or at
/// [`RecordWriter::finish`] when there is none); `#open` and `#close` carry
/// capture time, so the same input always gives the same file.
pub struct ZeekTsvWriter<W: Write> {
    out: W,
    path: String,
    header_written: bool,
    last_ts: Option<Timestamp>,
    line: String,
}

/// The log's path and progress, not its output.
impl<W: Write> fmt::Debug for ZeekTsvWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZeekTsvWriter")
            .field("path", &self.path)
            .field("header_written", &self.header_written)
            .field("last_ts", &self.last_ts)
            .finish_non_exhaustive()
    }
}

impl<W: Write> ZeekTsvWriter<W> {
    /// Writes a log with `#path` `conn` to `out`.
    pub fn new(out: W) -> Self {
        Self::with_path(out, "conn")
    }

    /// Writes a log with the given `#path`.
    pub fn with_path(out: W, path: &str) -> Self {
        ZeekTsvWriter {
            out,
            path: path.to_owned(),
            header_written: false,
            last_ts: None,
            line: String::with_capacity(512),
        }
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// The underlying writer, e.g. to flush it at a batch boundary.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    fn header(&mut self, open: Option<Timestamp>) -> io::Result<()> {
        if self.header_written {
            return Ok(());
        }
        self.header_written = true;
        let mut h = String::new();
        h.push_str("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n");
        h.push_str(&format!("#path\t{}\n", self.path));
        h.push_str(&format!("#open\t{}\n", zeek_date(open)));
        h.push_str("#fields");
        for (name, _) in ZEEK_FIELDS {
            h.push('\t');
            h.push_str(name);
        }
        h.push_str("\n#types");
        for (_, ty) in ZEEK_FIELDS {
            h.push('\t');
            h.push_str(ty);
        }
        h.push('\n');
        self.out.write_all(h.as_bytes())
    }
}

impl<W: Write> RecordWriter for ZeekTsvWriter<W> {
    fn write_record(&mut self, r: &ConnRecord) -> io::Result<()> {
        self.header(Some(r.ts))?;
        let end = r.duration.map_or(r.ts, |d| r.ts.plus(d));
        self.last_ts = Some(self.last_ts.map_or(end, |t| t.max(end)));
        let l = &mut self.line;
        l.clear();
        use std::fmt::Write as _;
        let opt = |l: &mut String, v: Option<String>| match v {
            Some(s) => l.push_str(&s),
            None => l.push('-'),
        };
        let _ = write!(l, "{}\t", r.ts);
        push_str_field(l, &r.uid);
        let _ = write!(
            l,
            "\t{}\t{}\t{}\t{}\t{}\t",
            r.orig_h, r.orig_p, r.resp_h, r.resp_p, r.proto
        );
        match &r.service {
            Some(s) => push_str_field(l, s),
            None => l.push('-'),
        }
        l.push('\t');
        opt(
            l,
            r.duration
                .map(|d| format!("{}", Timestamp(d.as_nanos() as i64))),
        );
        l.push('\t');
        opt(l, r.orig_bytes.map(|v| v.to_string()));
        l.push('\t');
        opt(l, r.resp_bytes.map(|v| v.to_string()));
        let _ = write!(l, "\t{}\t", r.conn_state);
        opt(
            l,
            r.local_orig.map(|b| if b { "T" } else { "F" }.to_owned()),
        );
        l.push('\t');
        opt(
            l,
            r.local_resp.map(|b| if b { "T" } else { "F" }.to_owned()),
        );
        let _ = write!(l, "\t{}\t", r.missed_bytes);
        if r.history.is_empty() {
            l.push('-');
        } else {
            push_str_field(l, &r.history);
        }
        let _ = write!(
            l,
            "\t{}\t{}\t{}\t{}\t",
            r.orig_pkts, r.orig_ip_bytes, r.resp_pkts, r.resp_ip_bytes
        );
        if r.tunnel_parents.is_empty() {
            l.push('-');
        } else {
            for (i, t) in r.tunnel_parents.iter().enumerate() {
                if i > 0 {
                    l.push(',');
                }
                push_str_field(l, t);
            }
        }
        l.push('\t');
        opt(l, r.vlan.map(|v| v.to_string()));
        l.push('\t');
        opt(l, r.inner_vlan.map(|v| v.to_string()));
        let _ = write!(l, "\t{}\t", r.ip_proto);
        push_str_field(l, &r.community_id);
        let _ = write!(l, "\t{}\t", r.end_reason);
        match &r.orig_enclave {
            Some(s) => push_str_field(l, s),
            None => l.push('-'),
        }
        l.push('\t');
        for v in [&r.resp_enclave, &r.orig_host_group, &r.resp_host_group] {
            match v {
                Some(s) => push_str_field(l, s),
                None => l.push('-'),
            }
            l.push('\t');
        }
        l.pop();
        l.push('\n');
        self.out.write_all(self.line.as_bytes())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.header(None)?;
        let close = format!("#close\t{}\n", zeek_date(self.last_ts));
        self.out.write_all(close.as_bytes())?;
        self.out.flush()
    }
}

/// Appends a string field, escaping what Zeek's ASCII writer escapes:
/// the separators, backslashes and non-printable bytes (as `\xNN`), and a
/// value that would read as the unset or empty marker.
fn push_str_field(l: &mut String, s: &str) {
    if s.is_empty() {
        l.push_str("(empty)");
        return;
    }
    if s == "-" {
        l.push_str("\\x2d");
        return;
    }
    for b in s.bytes() {
        if b == b'\t' || b == b',' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            l.push_str(&format!("\\x{:02x}", b));
        } else {
            l.push(char::from(b));
        }
    }
}

/// `YYYY-MM-DD-HH-MM-SS` in UTC, as Zeek's `#open`/`#close`; `-` when unknown.
fn zeek_date(ts: Option<Timestamp>) -> String {
    let Some(ts) = ts else {
        return "-".to_owned();
    };
    let secs = ts.secs();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:04}-{:02}-{:02}-{:02}-{:02}-{:02}",
        y,
        m,
        d,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writers print their state, not their output (a `Vec` here,
    /// which is `Debug`; a socket or a file need not be).
    #[test]
    fn writers_debug_without_their_output() {
        let json = JsonLinesWriter::new(vec![b'x'; 4096]);
        assert_eq!(format!("{json:?}"), "JsonLinesWriter { .. }");
        let tsv = ZeekTsvWriter::with_path(vec![b'x'; 4096], "conn_long");
        assert_eq!(
            format!("{tsv:?}"),
            "ZeekTsvWriter { path: \"conn_long\", header_written: false, last_ts: None, .. }"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_514), (2026, 3, 2));
        assert_eq!(
            zeek_date(Some(Timestamp::from_micros(1_772_438_400, 0))),
            "2026-03-02-08-00-00"
        );
    }

    #[test]
    fn string_fields_are_escaped_like_zeek() {
        let mut l = String::new();
        push_str_field(&mut l, "a\tb,c");
        assert_eq!(l, "a\\x09b\\x2cc");
    }
}
