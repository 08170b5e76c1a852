//! Reading back connection records the sensor wrote as JSON lines
//! (`sensor replay/live -f json`), e.g. to build an inventory from a
//! running sensor's output. A line that is not such a record is an error
//! naming the file and line; nothing is skipped silently.

use crate::error::SensorError;
use flowlib::{ConnRecord, ConnState, EndReason, Proto, Timestamp};
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

const STATES: [ConnState; 13] = [
    ConnState::S0,
    ConnState::S1,
    ConnState::SF,
    ConnState::REJ,
    ConnState::S2,
    ConnState::S3,
    ConnState::RSTO,
    ConnState::RSTR,
    ConnState::RSTOS0,
    ConnState::RSTRH,
    ConnState::SH,
    ConnState::SHR,
    ConnState::OTH,
];

/// Whether `path` looks like JSON lines (its first non-blank byte is `{`)
/// rather than a capture file.
pub fn is_json_lines(path: &Path) -> Result<bool, SensorError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| SensorError::Open {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut buf = [0u8; 64];
    let n = f.read(&mut buf).map_err(|e| SensorError::Open {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(buf[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{'))
}

/// Calls `each` with every record of a JSON lines file, in file order.
pub fn read_records(path: &Path, mut each: impl FnMut(&ConnRecord)) -> Result<u64, SensorError> {
    let f = std::fs::File::open(path).map_err(|e| SensorError::Open {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut n = 0;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let bad = |message: String| SensorError::Records {
            path: path.to_owned(),
            line: i as u64 + 1,
            message,
        };
        let line = line.map_err(|e| bad(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let r = parse_record(&line).map_err(bad)?;
        each(&r);
        n += 1;
    }
    Ok(n)
}

/// Parses one JSON line written by the sensor's JSON record writer.
pub fn parse_record(line: &str) -> Result<ConnRecord, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let u = |k: &str| v.get(k).and_then(Value::as_u64);
    let need_s = |k: &str| s(k).ok_or_else(|| format!("no {k:?} field"));
    let need_u = |k: &str| u(k).ok_or_else(|| format!("no {k:?} field"));
    let port = |k: &str| -> Result<u16, String> {
        u16::try_from(need_u(k)?).map_err(|_| format!("{k:?} is not a port"))
    };
    let addr = |k: &str| -> Result<std::net::IpAddr, String> {
        need_s(k)?
            .parse()
            .map_err(|_| format!("{k:?} is not an address"))
    };
    let ts = v
        .get("ts")
        .and_then(Value::as_f64)
        .ok_or("no \"ts\" field")?;
    let ip_proto = u8::try_from(need_u("ip_proto")?).map_err(|_| "bad \"ip_proto\"")?;
    let conn_state_name = need_s("conn_state")?;
    let conn_state = STATES
        .into_iter()
        .find(|c| c.name() == conn_state_name)
        .ok_or_else(|| format!("unknown conn_state {conn_state_name:?}"))?;
    let end_name = need_s("end_reason")?;
    let end_reason = EndReason::ALL
        .into_iter()
        .find(|e| e.name() == end_name)
        .ok_or_else(|| format!("unknown end_reason {end_name:?}"))?;
    let duration = v
        .get("duration")
        .and_then(Value::as_f64)
        .map(|d| Duration::from_secs_f64(d.max(0.0)));
    let ts = secs_to_ts(ts);
    Ok(ConnRecord {
        ts,
        uid: need_s("uid")?,
        orig_h: addr("id.orig_h")?,
        orig_p: port("id.orig_p")?,
        resp_h: addr("id.resp_h")?,
        resp_p: port("id.resp_p")?,
        proto: Proto::from_ip_proto(ip_proto),
        service: s("service"),
        duration,
        orig_bytes: u("orig_bytes"),
        resp_bytes: u("resp_bytes"),
        conn_state,
        local_orig: v.get("local_orig").and_then(Value::as_bool),
        local_resp: v.get("local_resp").and_then(Value::as_bool),
        missed_bytes: u("missed_bytes").unwrap_or(0),
        history: s("history").unwrap_or_default(),
        orig_pkts: u("orig_pkts").unwrap_or(0),
        orig_ip_bytes: u("orig_ip_bytes").unwrap_or(0),
        resp_pkts: u("resp_pkts").unwrap_or(0),
        resp_ip_bytes: u("resp_ip_bytes").unwrap_or(0),
        tunnel_parents: v
            .get("tunnel_parents")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        vlan: u("vlan").and_then(|x| u16::try_from(x).ok()),
        inner_vlan: u("inner_vlan").and_then(|x| u16::try_from(x).ok()),
        ip_proto,
        community_id: s("community_id").unwrap_or_default(),
        end_reason,
        emitted: duration.map_or(ts, |d| ts.plus(d)),
        orig_enclave: s("orig_enclave"),
        resp_enclave: s("resp_enclave"),
        orig_host_group: s("orig_host_group"),
        resp_host_group: s("resp_host_group"),
    })
}

/// Seconds (as the JSON writer prints them, microsecond precision) to a
/// capture time.
fn secs_to_ts(t: f64) -> Timestamp {
    let secs = t.floor();
    let micros = ((t - secs) * 1e6).round() as u32;
    if micros >= 1_000_000 {
        Timestamp::from_micros(secs as i64 + 1, 0)
    } else {
        Timestamp::from_micros(secs as i64, micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_record_reads_back() {
        let line = r#"{"ts":1772438400.25,"uid":"CoYq","id.orig_h":"10.10.2.20","id.orig_p":49441,"id.resp_h":"10.20.10.5","id.resp_p":161,"proto":"udp","duration":0.5,"orig_bytes":47,"resp_bytes":124,"conn_state":"SF","missed_bytes":0,"history":"Dd","orig_pkts":1,"orig_ip_bytes":75,"resp_pkts":1,"resp_ip_bytes":152,"vlan":30,"ip_proto":17,"community_id":"1:x","end_reason":"idle","orig_enclave":"provider-mgmt","resp_enclave":"customer-a","orig_host_group":"monitoring"}"#;
        let r = parse_record(line).unwrap();
        assert_eq!(r.ts, Timestamp::from_micros(1_772_438_400, 250_000));
        assert_eq!(r.proto, Proto::Udp);
        assert_eq!((r.resp_p, r.orig_bytes, r.vlan), (161, Some(47), Some(30)));
        assert_eq!(r.end_reason, EndReason::Idle);
        assert_eq!(r.orig_host_group.as_deref(), Some("monitoring"));
        assert_eq!(r.resp_host_group, None);
        // What our own writer writes reads back as the same record.
        let mut out = Vec::new();
        {
            use flowlib::export::{JsonLinesWriter, RecordWriter};
            let mut w = JsonLinesWriter::new(&mut out);
            w.write_record(&r).unwrap();
            w.finish().unwrap();
        }
        let again = parse_record(std::str::from_utf8(&out).unwrap().trim()).unwrap();
        assert_eq!(again, r);
        assert!(parse_record(r#"{"ts":1}"#)
            .unwrap_err()
            .contains("ip_proto"));
        assert!(parse_record("not json").is_err());
    }
}
