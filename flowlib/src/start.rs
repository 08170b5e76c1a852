//! The start of a connection in a compact form.
//!
//! With [`TableConfig::report_starts`](crate::TableConfig::report_starts)
//! the flow table reports every connection's first packet as a start record
//! ([`EndReason::Start`]), so a detector can act when a session starts. A
//! start record is made for every connection and usually only looked at
//! once: as a whole [`ConnRecord`] (about 400 bytes, a uid and a history on
//! the heap) it costs as much as the records that are written. A
//! [`ConnStart`] holds what a start record has in a third of the size,
//! nothing on the heap, and gives the same record back
//! ([`ConnStart::record`]). With
//! [`TableConfig::compact_starts`](crate::TableConfig::compact_starts) the
//! table makes them directly ([`FlowMeter::take_starts`](crate::FlowMeter::take_starts)).
//!
//! ```
//! use flowlib::start::ConnStart;
//! use flowlib::{FlowMeter, TableConfig};
//! # use flowlib::{LinkType, Timestamp};
//! # fn syn() -> Vec<u8> {
//! #     let mut f = vec![0u8; 54];
//! #     f[12] = 0x08; // IPv4
//! #     f[14] = 0x45; f[16] = 0; f[17] = 40; f[22] = 64; f[23] = 6;
//! #     f[26..30].copy_from_slice(&[10, 0, 0, 1]);
//! #     f[30..34].copy_from_slice(&[10, 0, 0, 2]);
//! #     f[34..36].copy_from_slice(&40000u16.to_be_bytes());
//! #     f[36..38].copy_from_slice(&22u16.to_be_bytes());
//! #     f[46] = 0x50; f[47] = 0x02; // SYN
//! #     f[48] = 0xff; f[49] = 0xff; // window
//! #     f
//! # }
//!
//! let mut meter = FlowMeter::new(TableConfig {
//!     report_starts: true,
//!     compact_starts: true,
//!     ..TableConfig::default()
//! }).unwrap();
//! let (mut records, mut starts) = (Vec::new(), Vec::new());
//! meter.process(&syn(), LinkType::ETHERNET, Timestamp::from_nanos(1_772_438_400, 0), 54, &mut records);
//! meter.take_starts(&mut starts);
//! assert!(records.is_empty());
//! let start = starts[0].record();
//! assert_eq!((start.resp_p, start.history.as_str()), (22, "S"));
//! ```

use crate::record::{ConnRecord, ConnState, EndReason, Proto};
use crate::time::Timestamp;
use std::net::IpAddr;

/// Longest uid a [`ConnStart`] holds (connection uids are 18 bytes).
pub const UID_BYTES: usize = 24;
/// Longest history a [`ConnStart`] holds (a first packet's is 1 or 2).
pub const HISTORY_BYTES: usize = 14;

/// A start record without its heap parts: made by the flow table
/// ([`TableConfig::compact_starts`](crate::TableConfig::compact_starts)) or
/// from a start record ([`ConnStart::compact`]); either way it gives back
/// the same record ([`ConnStart::record`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ConnStart {
    pub(crate) ts: Timestamp,
    pub(crate) emitted: Timestamp,
    pub(crate) orig_h: IpAddr,
    pub(crate) resp_h: IpAddr,
    pub(crate) orig_pkts: u64,
    pub(crate) orig_ip_bytes: u64,
    pub(crate) resp_pkts: u64,
    pub(crate) resp_ip_bytes: u64,
    pub(crate) orig_p: u16,
    pub(crate) resp_p: u16,
    pub(crate) vlan: Option<u16>,
    pub(crate) inner_vlan: Option<u16>,
    pub(crate) proto: Proto,
    pub(crate) conn_state: ConnState,
    pub(crate) ip_proto: u8,
    pub(crate) uid_len: u8,
    pub(crate) history_len: u8,
    pub(crate) uid: [u8; UID_BYTES],
    pub(crate) history: [u8; HISTORY_BYTES],
}

impl ConnStart {
    /// The compact form of a start record, or the record back when it has
    /// something a `ConnStart` does not hold (not a start record, a long
    /// uid, tunnel parents, a service, enclave names...).
    #[allow(clippy::result_large_err)] // the record itself, handed back
    pub fn compact(r: ConnRecord) -> Result<ConnStart, ConnRecord> {
        let plain = r.end_reason == EndReason::Start
            && r.uid.len() <= UID_BYTES
            && r.history.len() <= HISTORY_BYTES
            && r.service.is_none()
            && r.duration.is_none()
            && r.orig_bytes.is_none()
            && r.resp_bytes.is_none()
            && r.local_orig.is_none()
            && r.local_resp.is_none()
            && r.missed_bytes == 0
            && r.tunnel_parents.is_empty()
            && r.community_id.is_empty()
            && r.orig_enclave.is_none()
            && r.resp_enclave.is_none()
            && r.orig_host_group.is_none()
            && r.resp_host_group.is_none();
        if !plain {
            return Err(r);
        }
        let mut uid = [0u8; UID_BYTES];
        uid[..r.uid.len()].copy_from_slice(r.uid.as_bytes());
        let mut history = [0u8; HISTORY_BYTES];
        history[..r.history.len()].copy_from_slice(r.history.as_bytes());
        Ok(ConnStart {
            ts: r.ts,
            emitted: r.emitted,
            orig_h: r.orig_h,
            resp_h: r.resp_h,
            orig_pkts: r.orig_pkts,
            orig_ip_bytes: r.orig_ip_bytes,
            resp_pkts: r.resp_pkts,
            resp_ip_bytes: r.resp_ip_bytes,
            orig_p: r.orig_p,
            resp_p: r.resp_p,
            vlan: r.vlan,
            inner_vlan: r.inner_vlan,
            proto: r.proto,
            conn_state: r.conn_state,
            ip_proto: r.ip_proto,
            uid_len: r.uid.len() as u8,
            history_len: r.history.len() as u8,
            uid,
            history,
        })
    }

    /// The connection's uid.
    pub fn uid(&self) -> &str {
        // Copied from a `String` whole: always UTF-8.
        std::str::from_utf8(&self.uid[..usize::from(self.uid_len)]).unwrap_or_default()
    }

    /// When the record became due: the connection's first packet.
    pub fn emitted(&self) -> Timestamp {
        self.emitted
    }

    /// The start record this was made from.
    pub fn record(&self) -> ConnRecord {
        let history = &self.history[..usize::from(self.history_len)];
        ConnRecord {
            uid: self.uid().to_owned(),
            history: std::str::from_utf8(history).unwrap_or_default().to_owned(),
            ..self.record_without_heap()
        }
    }

    /// [`ConnStart::record`] written over `r`, whatever it held: the same
    /// record, made with the room `r`'s strings and lists already have
    /// (a caller that looks at starts one at a time allocates nothing).
    pub fn record_into(&self, r: &mut ConnRecord) {
        let mut uid = std::mem::take(&mut r.uid);
        uid.clear();
        uid.push_str(self.uid());
        let mut history = std::mem::take(&mut r.history);
        history.clear();
        let h = &self.history[..usize::from(self.history_len)];
        history.push_str(std::str::from_utf8(h).unwrap_or_default());
        let mut tunnel_parents = std::mem::take(&mut r.tunnel_parents);
        tunnel_parents.clear();
        let mut community_id = std::mem::take(&mut r.community_id);
        community_id.clear();
        *r = ConnRecord {
            uid,
            history,
            tunnel_parents,
            community_id,
            ..self.record_without_heap()
        };
    }

    /// [`ConnStart::record`] with empty strings (nothing allocated).
    fn record_without_heap(&self) -> ConnRecord {
        ConnRecord {
            ts: self.ts,
            uid: String::new(),
            orig_h: self.orig_h,
            orig_p: self.orig_p,
            resp_h: self.resp_h,
            resp_p: self.resp_p,
            proto: self.proto,
            service: None,
            duration: None,
            orig_bytes: None,
            resp_bytes: None,
            conn_state: self.conn_state,
            local_orig: None,
            local_resp: None,
            missed_bytes: 0,
            history: String::new(),
            orig_pkts: self.orig_pkts,
            orig_ip_bytes: self.orig_ip_bytes,
            resp_pkts: self.resp_pkts,
            resp_ip_bytes: self.resp_ip_bytes,
            tunnel_parents: Vec::new(),
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            ip_proto: self.ip_proto,
            community_id: String::new(),
            end_reason: EndReason::Start,
            emitted: self.emitted,
            orig_enclave: None,
            resp_enclave: None,
            orig_host_group: None,
            resp_host_group: None,
        }
    }
}
