//! Packing connection records into IPFIX messages (RFC 7011 section 3):
//! message header, template set, data sets, optional set padding, and the
//! per-session sequence number.

use super::element::{
    Field, Space, Value, IPV4_FIELDS, IPV6_FIELDS, REVERSE_PEN, TEMPLATE_IPV4, TEMPLATE_IPV6,
    VARIABLE_LENGTH,
};
use super::{derive, ExportConfig, IpfixError};
use crate::record::ConnRecord;
use std::net::IpAddr;

/// IPFIX version number in the message header.
pub const VERSION: u16 = 10;
/// Length of the message header.
pub const MESSAGE_HEADER_LEN: usize = 16;
/// Length of a set header.
pub const SET_HEADER_LEN: usize = 4;
/// Set id of template sets.
pub const TEMPLATE_SET_ID: u16 = 2;
/// The smallest message size limit accepted: a header, the template set and
/// one data record of ordinary size must fit.
pub const MIN_MESSAGE_LEN: usize = 512;

/// One finished IPFIX message, ready for the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The encoded message.
    pub bytes: Vec<u8>,
    /// Data records it carries.
    pub records: u32,
    /// Whether it starts with the template set.
    pub has_templates: bool,
}

/// Builds IPFIX messages from connection records for one transport session
/// and observation domain. It exports whatever it is given; start records
/// ([`crate::EndReason::Start`]) are for detectors and callers leave them out.
#[derive(Debug)]
pub struct Encoder {
    cfg: ExportConfig,
    /// Data records in messages finished so far in this session (mod 2^32).
    sequence: u32,
    buf: Vec<u8>,
    /// Template id and start offset of the open data set.
    open_set: Option<(u16, usize)>,
    records_in_message: u32,
    message_has_templates: bool,
    templates_due: bool,
    /// Resend the templates every this many messages (UDP), if set.
    template_every: Option<u32>,
    /// Messages finished since the last one with templates.
    since_templates: u32,
    scratch: Vec<u8>,
}

impl Encoder {
    /// An encoder for a new transport session; its first message carries
    /// the templates.
    pub fn new(cfg: ExportConfig) -> Result<Encoder, IpfixError> {
        if cfg.max_message_len < MIN_MESSAGE_LEN || cfg.max_message_len > usize::from(u16::MAX) {
            return Err(IpfixError::MessageLimit {
                limit: cfg.max_message_len,
                min: MIN_MESSAGE_LEN,
            });
        }
        Ok(Encoder {
            cfg,
            sequence: 0,
            buf: Vec::with_capacity(cfg.max_message_len),
            open_set: None,
            records_in_message: 0,
            message_has_templates: false,
            templates_due: true,
            template_every: None,
            since_templates: 0,
            scratch: Vec::with_capacity(256),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ExportConfig {
        &self.cfg
    }

    /// Starts a new transport session (e.g. after a TCP reconnect): the
    /// sequence number starts again at 0 and the next message carries the
    /// templates. A message being built is discarded; flush first.
    pub fn new_session(&mut self) {
        self.sequence = 0;
        self.buf.clear();
        self.open_set = None;
        self.records_in_message = 0;
        self.message_has_templates = false;
        self.templates_due = true;
        self.since_templates = 0;
    }

    /// Puts the templates in every `n`-th message (the first of a session,
    /// then each one after `n - 1` without): RFC 7011 section 8.4's
    /// refresh by message count for UDP. `None`: only when asked.
    pub fn set_template_every(&mut self, n: Option<u32>) {
        self.template_every = n.map(|n| n.max(1));
    }

    /// Asks for the templates to be sent again at the start of the next
    /// message (UDP template refresh, RFC 7011 section 8.4).
    pub fn refresh_templates(&mut self) {
        self.templates_due = true;
    }

    /// The sequence number the next message will carry: data records
    /// finished so far in this session, modulo 2^32.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// Data records in the message being built.
    pub fn pending_records(&self) -> u32 {
        self.records_in_message
    }

    /// Adds a record. When it does not fit in the message being built, that
    /// message is finished into `out` and the record starts the next one.
    /// When the templates are due but do not fit beside the record, they go
    /// first in a message of their own. Only a record too large for a
    /// message of its own (header, set header, record), or one whose
    /// addresses are of different families (no template holds it), is
    /// refused, with an error, and it leaves the encoder as it was.
    pub fn push(
        &mut self,
        r: &ConnRecord,
        export_time: u32,
        out: &mut Vec<Message>,
    ) -> Result<(), IpfixError> {
        let (template, fields) = match (r.orig_h, r.resp_h) {
            (IpAddr::V4(_), IpAddr::V4(_)) => (TEMPLATE_IPV4, &IPV4_FIELDS[..]),
            (IpAddr::V6(_), IpAddr::V6(_)) => (TEMPLATE_IPV6, &IPV6_FIELDS[..]),
            _ => return Err(IpfixError::MixedFamilies { uid: r.uid.clone() }),
        };
        self.scratch.clear();
        encode_record(r, fields, &mut self.scratch)?;
        // The record alone in a message: header, set header, record and
        // the set's padding. The templates, when due, may go ahead in a
        // message of their own, so they are not part of this bound.
        let alone = MESSAGE_HEADER_LEN
            + SET_HEADER_LEN
            + self.scratch.len()
            + self.padding(self.scratch.len());
        if alone > self.cfg.max_message_len {
            return Err(IpfixError::RecordTooLarge {
                uid: r.uid.clone(),
                len: self.scratch.len(),
                need: alone,
                limit: self.cfg.max_message_len,
            });
        }
        if !self.buf.is_empty() {
            let mut need = self.scratch.len() + 3; // + worst-case padding
            if self.open_set.map(|(t, _)| t) != Some(template) {
                need += SET_HEADER_LEN + 3;
            }
            if self.buf.len() + need > self.cfg.max_message_len {
                out.push(self.finish(export_time));
            }
        }
        if self.buf.is_empty() {
            let templates = self.templates_due_next();
            if templates && alone + template_set_len() > self.cfg.max_message_len {
                // The record fits only without the templates: they go
                // first, in a message of their own.
                self.start_message(true);
                out.push(self.finish(export_time));
                self.start_message(false);
            } else {
                self.start_message(templates);
            }
        }
        if self.open_set.map(|(t, _)| t) != Some(template) {
            self.close_set();
            self.open_set = Some((template, self.buf.len()));
            self.buf.extend_from_slice(&template.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
        }
        self.buf.extend_from_slice(&self.scratch);
        self.records_in_message += 1;
        Ok(())
    }

    /// Finishes the message being built, if it holds any record, into `out`.
    pub fn flush(&mut self, export_time: u32, out: &mut Vec<Message>) {
        if self.records_in_message > 0 {
            out.push(self.finish(export_time));
        }
    }

    /// Finishes the message being built (if any), then adds a message
    /// holding only the template set (e.g. to open a session before any
    /// record is due), both into `out`.
    pub fn template_message(&mut self, export_time: u32, out: &mut Vec<Message>) {
        self.flush(export_time, out);
        self.start_message(true);
        out.push(self.finish(export_time));
    }

    /// Whether the next message must carry the templates: asked for, or
    /// the message count since the last ones says so.
    fn templates_due_next(&self) -> bool {
        self.templates_due
            || self
                .template_every
                .is_some_and(|n| self.since_templates + 1 >= n)
    }

    /// Starts a message, with the template set when `templates`.
    fn start_message(&mut self, templates: bool) {
        self.buf.clear();
        self.buf.resize(MESSAGE_HEADER_LEN, 0);
        self.message_has_templates = templates;
        if templates {
            write_template_set(self.cfg.enterprise_number, &mut self.buf);
            self.templates_due = false;
        }
    }

    /// Padding that closes a data set holding `len` octets of records.
    fn padding(&self, len: usize) -> usize {
        if self.cfg.pad_sets {
            (4 - (SET_HEADER_LEN + len) % 4) % 4
        } else {
            0
        }
    }

    /// Writes the open set's length, padding it to a 4-octet boundary when
    /// configured (RFC 7011 section 3.3.1: padding is zero octets, fewer
    /// than the shortest record of the set, counted in the set length).
    fn close_set(&mut self) {
        if let Some((_, start)) = self.open_set.take() {
            let pad = self.padding(self.buf.len() - start - SET_HEADER_LEN);
            self.buf.extend(std::iter::repeat_n(0u8, pad));
            let len = (self.buf.len() - start) as u16;
            self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    fn finish(&mut self, export_time: u32) -> Message {
        self.close_set();
        let len = self.buf.len() as u16;
        let h = &mut self.buf[..MESSAGE_HEADER_LEN];
        h[0..2].copy_from_slice(&VERSION.to_be_bytes());
        h[2..4].copy_from_slice(&len.to_be_bytes());
        h[4..8].copy_from_slice(&export_time.to_be_bytes());
        h[8..12].copy_from_slice(&self.sequence.to_be_bytes());
        h[12..16].copy_from_slice(&self.cfg.observation_domain.to_be_bytes());
        if self.message_has_templates {
            self.since_templates = 0;
        } else {
            self.since_templates += 1;
        }
        let records = self.records_in_message;
        self.sequence = self.sequence.wrapping_add(records);
        self.records_in_message = 0;
        let bytes = std::mem::replace(&mut self.buf, Vec::with_capacity(self.cfg.max_message_len));
        Message {
            bytes,
            records,
            has_templates: std::mem::take(&mut self.message_has_templates),
        }
    }
}

/// Length of the template set holding both templates.
pub fn template_set_len() -> usize {
    let mut v = Vec::new();
    write_template_set(0, &mut v);
    v.len()
}

/// Appends the template set (set id 2) with the IPv4 and IPv6 templates.
fn write_template_set(pen: u32, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&TEMPLATE_SET_ID.to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
    for (id, fields) in [(TEMPLATE_IPV4, &IPV4_FIELDS), (TEMPLATE_IPV6, &IPV6_FIELDS)] {
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for f in fields.iter() {
            let enterprise = match f.space {
                Space::Iana => None,
                Space::Reverse => Some(REVERSE_PEN),
                Space::Ours => Some(pen),
            };
            let id = if enterprise.is_some() {
                f.id | 0x8000
            } else {
                f.id
            };
            buf.extend_from_slice(&id.to_be_bytes());
            buf.extend_from_slice(&f.length.to_be_bytes());
            if let Some(pen) = enterprise {
                buf.extend_from_slice(&pen.to_be_bytes());
            }
        }
    }
    let len = (buf.len() - start) as u16;
    buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends one data record laid out as `fields` says.
fn encode_record(r: &ConnRecord, fields: &[Field], buf: &mut Vec<u8>) -> Result<(), IpfixError> {
    let (sport, dport, icmp) = derive::ports_and_icmp(r);
    let (start, end) = derive::start_end_millis(r);
    let (orig_flags, resp_flags) = derive::tcp_flags(r);
    let none = "";
    for f in fields {
        match f.value {
            Value::SourceAddress => put_addr(r.orig_h, buf),
            Value::DestinationAddress => put_addr(r.resp_h, buf),
            Value::SourcePort => buf.extend_from_slice(&sport.to_be_bytes()),
            Value::DestinationPort => buf.extend_from_slice(&dport.to_be_bytes()),
            Value::Protocol => buf.push(r.ip_proto),
            Value::IcmpTypeCode => buf.extend_from_slice(&icmp.to_be_bytes()),
            Value::Vlan => buf.extend_from_slice(&r.vlan.unwrap_or(0).to_be_bytes()),
            Value::InnerVlan => buf.extend_from_slice(&r.inner_vlan.unwrap_or(0).to_be_bytes()),
            Value::StartMillis => buf.extend_from_slice(&start.to_be_bytes()),
            Value::EndMillis => buf.extend_from_slice(&end.to_be_bytes()),
            Value::OrigPackets => buf.extend_from_slice(&r.orig_pkts.to_be_bytes()),
            Value::OrigOctets => buf.extend_from_slice(&r.orig_ip_bytes.to_be_bytes()),
            Value::RespPackets => buf.extend_from_slice(&r.resp_pkts.to_be_bytes()),
            Value::RespOctets => buf.extend_from_slice(&r.resp_ip_bytes.to_be_bytes()),
            // Reduced-size encoding: the derived flags fit in one octet.
            Value::OrigTcpFlags => buf.push(orig_flags as u8),
            Value::RespTcpFlags => buf.push(resp_flags as u8),
            Value::EndReason => buf.push(derive::flow_end_reason(r.end_reason)),
            // initiator: the originator as Zeek's rules determine it.
            Value::BiflowDirection => buf.push(1),
            Value::ConnState => put_string(r.conn_state.name(), &r.uid, buf)?,
            Value::History => put_string(&r.history, &r.uid, buf)?,
            Value::OrigEnclave => {
                put_string(r.orig_enclave.as_deref().unwrap_or(none), &r.uid, buf)?
            }
            Value::RespEnclave => {
                put_string(r.resp_enclave.as_deref().unwrap_or(none), &r.uid, buf)?
            }
            Value::CommunityId => put_string(&r.computed_community_id(), &r.uid, buf)?,
            Value::Uid => put_string(&r.uid, &r.uid, buf)?,
        }
        debug_assert!(f.length == VARIABLE_LENGTH || f.length > 0);
    }
    Ok(())
}

fn put_addr(a: IpAddr, buf: &mut Vec<u8>) {
    match a {
        IpAddr::V4(a) => buf.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => buf.extend_from_slice(&a.octets()),
    }
}

/// A variable-length field (RFC 7011 section 7): one length octet below
/// 255, else 255 and a two-octet length.
fn put_string(s: &str, uid: &str, buf: &mut Vec<u8>) -> Result<(), IpfixError> {
    let b = s.as_bytes();
    if b.len() < 255 {
        buf.push(b.len() as u8);
    } else if b.len() <= usize::from(u16::MAX) - 3 {
        buf.push(255);
        buf.extend_from_slice(&(b.len() as u16).to_be_bytes());
    } else {
        return Err(IpfixError::FieldTooLong {
            uid: uid.to_owned(),
            len: b.len(),
        });
    }
    buf.extend_from_slice(b);
    Ok(())
}
