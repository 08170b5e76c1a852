//! Connection records built by hand for the crate's unit tests.

use flowlib::{ConnRecord, ConnState, EndReason, Proto, Timestamp};
use std::time::Duration;

/// A finished (FIN) TCP connection record from `orig` to `resp`:`port`,
/// starting at `ts` seconds and lasting 10 s, with `bytes` of payload each
/// way.
pub(crate) fn tcp(orig: &str, resp: &str, port: u16, ts: i64, bytes: (u64, u64)) -> ConnRecord {
    ConnRecord {
        ts: Timestamp::from_micros(ts, 0),
        uid: format!("C{ts}"),
        orig_h: orig.parse().unwrap(),
        orig_p: 50_000,
        resp_h: resp.parse().unwrap(),
        resp_p: port,
        proto: Proto::Tcp,
        service: None,
        duration: Some(Duration::from_secs(10)),
        orig_bytes: Some(bytes.0),
        resp_bytes: Some(bytes.1),
        conn_state: ConnState::SF,
        local_orig: None,
        local_resp: None,
        missed_bytes: 0,
        history: "ShADadFf".into(),
        orig_pkts: 5,
        orig_ip_bytes: 300,
        resp_pkts: 5,
        resp_ip_bytes: 300,
        tunnel_parents: vec![],
        vlan: None,
        inner_vlan: None,
        ip_proto: 6,
        community_id: String::new(),
        end_reason: EndReason::Fin,
        emitted: Timestamp::from_micros(ts + 10, 0),
        orig_enclave: None,
        resp_enclave: None,
        orig_host_group: None,
        resp_host_group: None,
    }
}
