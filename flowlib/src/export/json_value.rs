//! JSON values written straight into a byte buffer, as the text
//! `serde_json` writes for the same values: for writers of JSON lines that
//! build each line by hand (constant keys, then these values) instead of
//! going through `Serialize`, at a fraction of the cost. Integers and IPv4
//! addresses are turned into digits here and strings that need no escaping
//! are copied as they are; floats, IPv6 addresses and strings that do need
//! escaping take serde_json's and the standard library's own paths, so
//! their text cannot differ.
//!
//! ```
//! use flowlib::export::json_value::{string, uint};
//!
//! let mut line = b"{\"name\":".to_vec();
//! string(&mut line, "a \"quoted\" word");
//! line.extend_from_slice(b",\"count\":");
//! uint(&mut line, 42);
//! line.push(b'}');
//! assert_eq!(line, br#"{"name":"a \"quoted\" word","count":42}"#);
//! ```

use crate::record::micros_f64;
use crate::time::Timestamp;
use std::io::Write as _;
use std::net::IpAddr;

/// `key` and `value` when there is a value (absent values are left out).
pub fn optional<T>(out: &mut Vec<u8>, key: &[u8], value: Option<T>, write: fn(&mut Vec<u8>, T)) {
    if let Some(v) = value {
        out.extend_from_slice(key);
        write(out, v);
    }
}

/// A JSON string: copied between quotes when nothing in it needs escaping
/// (JSON escapes `"`, `\` and control characters), else serde_json's text.
pub fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a vector cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// serde_json's text of a float (the shortest that reads back the same).
pub fn float(out: &mut Vec<u8>, v: f64) {
    let _ = serde_json::to_writer(&mut *out, &v);
}

/// A capture time as seconds rounded to whole microseconds, as Zeek logs
/// times (the text [`crate::record::ts_secs`] serializes).
pub fn timestamp(out: &mut Vec<u8>, ts: Timestamp) {
    float(out, micros_f64(ts.0));
}

/// The decimal digits of `n`.
pub fn uint(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A JSON array of `items`, each written by `write`.
pub fn array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// `true` or `false`.
pub fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// An address as a JSON string: IPv4 as a dotted quad built here, IPv6 as
/// its standard text (what serde writes for both).
pub fn addr(out: &mut Vec<u8>, a: IpAddr) {
    out.push(b'"');
    match a {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                uint(out, octet.into());
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}
