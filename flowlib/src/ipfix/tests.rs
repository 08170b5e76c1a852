//! The encoder's messages read back by a parser written here from RFC 7011
//! (not from the encoder's code): header, template sets, data sets with
//! variable-length fields and padding. Records come from real frames through
//! the flow meter.

use super::element::{REVERSE_PEN, TEMPLATE_IPV4, TEMPLATE_IPV6};
use super::*;
use crate::record::{ConnRecord, EndReason};
use crate::{FlowMeter, LinkType, TableConfig, Timestamp};
use etherparse::PacketBuilder;
use std::collections::HashMap;

/// A template field as read from the wire: (id, enterprise, length).
type WireField = (u16, Option<u32>, u16);

#[derive(Debug, Default)]
struct Parsed {
    version: u16,
    length: usize,
    sequence: u32,
    domain: u32,
    templates: Vec<(u16, Vec<WireField>)>,
    /// (template id, values of each field in order).
    records: Vec<(u16, Vec<Vec<u8>>)>,
    set_lengths: Vec<usize>,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses one message; `known` carries templates learnt from earlier ones.
fn parse(msg: &[u8], known: &mut HashMap<u16, Vec<WireField>>) -> Parsed {
    let mut p = Parsed {
        version: be16(&msg[0..]),
        length: be16(&msg[2..]) as usize,
        sequence: be32(&msg[8..]),
        domain: be32(&msg[12..]),
        ..Parsed::default()
    };
    assert_eq!(p.length, msg.len(), "header length is the message length");
    let mut at = 16;
    while at < msg.len() {
        let (id, len) = (be16(&msg[at..]), be16(&msg[at + 2..]) as usize);
        assert!(len >= 4 && at + len <= msg.len(), "set inside the message");
        p.set_lengths.push(len);
        let body = &msg[at + 4..at + len];
        if id == 2 {
            let mut t = 0;
            while t + 4 <= body.len() {
                let (tid, count) = (be16(&body[t..]), be16(&body[t + 2..]));
                t += 4;
                let mut fields = Vec::new();
                for _ in 0..count {
                    let (raw, flen) = (be16(&body[t..]), be16(&body[t + 2..]));
                    t += 4;
                    let pen = if raw & 0x8000 != 0 {
                        t += 4;
                        Some(be32(&body[t - 4..]))
                    } else {
                        None
                    };
                    fields.push((raw & 0x7FFF, pen, flen));
                }
                known.insert(tid, fields.clone());
                p.templates.push((tid, fields));
            }
        } else {
            let fields = known.get(&id).expect("template before data");
            // Shortest possible record: variable-length fields take 1 octet.
            let min: usize = fields
                .iter()
                .map(|f| if f.2 == 0xFFFF { 1 } else { f.2 as usize })
                .sum();
            let mut r = 0;
            while body.len() - r >= min {
                let mut values = Vec::new();
                for f in fields {
                    let n = if f.2 == 0xFFFF {
                        let first = body[r] as usize;
                        r += 1;
                        if first == 255 {
                            r += 2;
                            be16(&body[r - 2..]) as usize
                        } else {
                            first
                        }
                    } else {
                        f.2 as usize
                    };
                    values.push(body[r..r + n].to_vec());
                    r += n;
                }
                p.records.push((id, values));
            }
            assert!(body[r..].iter().all(|b| *b == 0), "padding is zeros");
        }
        at += len;
    }
    p
}

fn num(v: &[u8]) -> u64 {
    v.iter().fold(0, |a, b| a << 8 | u64::from(*b))
}

/// Field value of a record by (id, enterprise).
fn get<'a>(
    known: &HashMap<u16, Vec<WireField>>,
    rec: &'a (u16, Vec<Vec<u8>>),
    id: u16,
    pen: Option<u32>,
) -> &'a [u8] {
    let i = known[&rec.0]
        .iter()
        .position(|f| f.0 == id && f.1 == pen)
        .unwrap_or_else(|| panic!("no field {id}/{pen:?}"));
    &rec.1[i]
}

fn frame_tcp(from_client: bool, seq: u32, ack: u32, flags: &str, payload: &[u8]) -> Vec<u8> {
    let (client, server) = ([10, 20, 0, 5], [10, 10, 1, 10]);
    let (src, dst, sp, dp) = if from_client {
        (client, server, 50000, 3389)
    } else {
        (server, client, 3389, 50000)
    };
    let mut b = PacketBuilder::ethernet2([2; 6], [4; 6])
        .single_vlan(7.try_into().unwrap())
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(ack);
    }
    if flags.contains('F') {
        b = b.fin();
    }
    let mut f = Vec::new();
    b.write(&mut f, payload).unwrap();
    f
}

fn frame_udp6(reply: bool, payload: &[u8]) -> Vec<u8> {
    let (a, b) = ([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], {
        let mut x = [0u8; 16];
        x[0] = 0x20;
        x[1] = 1;
        x[15] = 0x53;
        x
    });
    let (src, dst, sp, dp) = if reply {
        (b, a, 53, 40000)
    } else {
        (a, b, 40000, 53)
    };
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv6(src, dst, 64)
        .udp(sp, dp)
        .write(&mut f, payload)
        .unwrap();
    f
}

fn frame_ping(reply: bool) -> Vec<u8> {
    let (a, b) = ([192, 0, 2, 1], [192, 0, 2, 2]);
    let (src, dst) = if reply { (b, a) } else { (a, b) };
    let mut f = Vec::new();
    let builder = PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(src, dst, 64);
    let builder = if reply {
        builder.icmpv4_echo_reply(1, 1)
    } else {
        builder.icmpv4_echo_request(1, 1)
    };
    builder.write(&mut f, b"ping").unwrap();
    f
}

/// Real records: a TCP session on VLAN 7, a DNS exchange over IPv6, a ping.
fn records() -> Vec<ConnRecord> {
    let frames = [
        frame_tcp(true, 100, 0, "S", b""),
        frame_tcp(false, 900, 101, "SA", b""),
        frame_tcp(true, 101, 901, "A", b""),
        frame_tcp(true, 101, 901, "A", b"hello"),
        frame_tcp(true, 106, 901, "FA", b""),
        frame_tcp(false, 901, 107, "FA", b""),
        frame_tcp(true, 107, 902, "A", b""),
        frame_udp6(false, b"query"),
        frame_udp6(true, b"answer!"),
        frame_ping(false),
        frame_ping(true),
    ];
    let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let ts = Timestamp::from_micros(1_772_438_400, i as u32 * 1500);
        meter.process(f, LinkType::ETHERNET, ts, f.len() as u32, &mut out);
    }
    meter.finish(&mut out);
    out.sort_by_key(|r| r.ip_proto);
    assert_eq!(out.len(), 3);
    out
}

fn encode_all(enc: &mut Encoder, recs: &[ConnRecord]) -> Vec<Message> {
    let mut out = Vec::new();
    for r in recs {
        enc.push(r, 1_800_000_000, &mut out).unwrap();
    }
    enc.flush(1_800_000_000, &mut out);
    out
}

#[test]
fn every_field_reads_back_as_the_record_says() {
    let recs = records();
    let cfg = ExportConfig {
        observation_domain: 77,
        ..ExportConfig::default()
    };
    let mut enc = Encoder::new(cfg).unwrap();
    let msgs = encode_all(&mut enc, &recs);
    assert_eq!(msgs.len(), 1);
    let mut known = HashMap::new();
    let p = parse(&msgs[0].bytes, &mut known);
    assert_eq!((p.version, p.sequence, p.domain), (10, 0, 77));
    let ids: Vec<u16> = p.templates.iter().map(|t| t.0).collect();
    assert_eq!(ids, [TEMPLATE_IPV4, TEMPLATE_IPV6]);
    assert_eq!(p.records.len(), 3);
    // Records come out in the order pushed: ICMP, TCP, UDP.
    let [icmp, tcp, udp] = [&p.records[0], &p.records[1], &p.records[2]];
    assert_eq!(
        (icmp.0, tcp.0, udp.0),
        (TEMPLATE_IPV4, TEMPLATE_IPV4, TEMPLATE_IPV6)
    );
    let g = |rec, id, pen| num(get(&known, rec, id, pen));
    let ours = Some(DEFAULT_ENTERPRISE_NUMBER);
    let rev = Some(REVERSE_PEN);
    for (rec, r) in [icmp, tcp, udp].into_iter().zip(&recs) {
        assert_eq!(g(rec, 4, None), u64::from(r.ip_proto));
        assert_eq!(g(rec, 86, None), r.orig_pkts);
        assert_eq!(g(rec, 85, None), r.orig_ip_bytes);
        assert_eq!(g(rec, 86, rev), r.resp_pkts);
        assert_eq!(g(rec, 85, rev), r.resp_ip_bytes);
        assert_eq!(g(rec, 152, None), (r.ts.0 / 1_000_000) as u64);
        let end = r.ts.plus(r.duration.unwrap_or_default()).0 / 1_000_000;
        assert_eq!(g(rec, 153, None), end as u64);
        assert_eq!(g(rec, 239, None), 1);
        let s = |id| String::from_utf8(get(&known, rec, id, ours).to_vec()).unwrap();
        assert_eq!(s(1), r.conn_state.name());
        assert_eq!(s(2), r.history);
        assert_eq!(s(3), "");
        assert_eq!(s(5), r.community_id);
        assert_eq!(s(6), r.uid);
    }
    // TCP: ports, VLAN, flags per direction, end reason.
    assert_eq!((g(tcp, 7, None), g(tcp, 11, None)), (50000, 3389));
    assert_eq!((g(tcp, 58, None), g(tcp, 245, None)), (7, 0));
    assert_eq!(recs[1].history, "ShADFf");
    assert_eq!(g(tcp, 6, None), 0x02 | 0x10 | 0x01); // S, A, F
    assert_eq!(g(tcp, 6, rev), 0x12 | 0x01); // h (SYN+ACK), f
    assert_eq!(g(tcp, 136, None), 3); // fin: end of flow detected
    assert_eq!(get(&known, tcp, 8, None), [10, 20, 0, 5]);
    // ICMP echo: no ports, type 8 code 0.
    assert_eq!((g(icmp, 7, None), g(icmp, 11, None)), (0, 0));
    assert_eq!(g(icmp, 32, None), 8 << 8);
    assert_eq!(g(icmp, 6, None), 0);
    // IPv6 addresses, 16 octets.
    assert_eq!(get(&known, udp, 27, None).len(), 16);
    assert_eq!(get(&known, udp, 28, None)[15], 0x53);
    assert_eq!(g(udp, 136, None), 4); // eof: forced end
}

#[test]
fn long_strings_take_the_three_octet_length_prefix() {
    let mut recs = records();
    let long = "e".repeat(300);
    recs[1].orig_enclave = Some(long.clone());
    recs[1].resp_enclave = Some("x".repeat(254));
    let mut enc = Encoder::new(ExportConfig::default()).unwrap();
    let msgs = encode_all(&mut enc, &recs);
    let mut known = HashMap::new();
    let p = parse(&msgs[0].bytes, &mut known);
    let ours = Some(DEFAULT_ENTERPRISE_NUMBER);
    assert_eq!(get(&known, &p.records[1], 3, ours), long.as_bytes());
    assert_eq!(get(&known, &p.records[1], 4, ours).len(), 254);
    assert!(
        msgs[0].bytes.windows(3).any(|w| w == [255, 1, 44]),
        "255, then 300"
    );
}

#[test]
fn messages_stay_within_the_limit_and_sequence_numbers_count_data_records() {
    let base = records();
    let recs: Vec<ConnRecord> = (0..500).map(|i| base[i % 3].clone()).collect();
    let cfg = ExportConfig {
        max_message_len: 512,
        ..ExportConfig::default()
    };
    let mut enc = Encoder::new(cfg).unwrap();
    enc.set_template_every(Some(4));
    let msgs = encode_all(&mut enc, &recs);
    let mut known = HashMap::new();
    let mut seq = 0u32;
    for (i, m) in msgs.iter().enumerate() {
        assert!(m.bytes.len() <= 512, "message {i}: {}", m.bytes.len());
        let p = parse(&m.bytes, &mut known);
        assert_eq!(p.sequence, seq, "message {i}");
        assert_eq!(m.has_templates, i % 4 == 0, "message {i}");
        assert_eq!(!p.templates.is_empty(), m.has_templates);
        assert_eq!(p.records.len() as u32, m.records);
        seq += m.records;
    }
    assert_eq!(seq, 500);
    assert_eq!(enc.sequence(), 500);
    // A new transport session starts over, with templates.
    enc.new_session();
    let again = encode_all(&mut enc, &base);
    let p = parse(&again[0].bytes, &mut known);
    assert_eq!(p.sequence, 0);
    assert!(again[0].has_templates);
}

#[test]
fn padded_sets_are_multiples_of_four_and_read_back_the_same() {
    let recs = records();
    let mut plain = Encoder::new(ExportConfig::default()).unwrap();
    let mut padded = Encoder::new(ExportConfig {
        pad_sets: true,
        ..ExportConfig::default()
    })
    .unwrap();
    let (a, b) = (
        encode_all(&mut plain, &recs),
        encode_all(&mut padded, &recs),
    );
    let (mut ka, mut kb) = (HashMap::new(), HashMap::new());
    let (pa, pb) = (parse(&a[0].bytes, &mut ka), parse(&b[0].bytes, &mut kb));
    assert!(
        pb.set_lengths.iter().skip(1).all(|l| l % 4 == 0),
        "{:?}",
        pb.set_lengths
    );
    assert!(
        pa.set_lengths.iter().any(|l| l % 4 != 0),
        "padding was needed"
    );
    assert_eq!(pa.records, pb.records);
}

#[test]
fn a_record_too_large_for_any_message_is_refused_and_the_encoder_goes_on() {
    let mut recs = records();
    recs[1].orig_enclave = Some("e".repeat(600));
    let mut enc = Encoder::new(ExportConfig {
        max_message_len: 512,
        ..ExportConfig::default()
    })
    .unwrap();
    let mut out = Vec::new();
    enc.push(&recs[0], 0, &mut out).unwrap();
    let err = enc.push(&recs[1], 0, &mut out).unwrap_err();
    assert_eq!(err.reason(), "record_too_large");
    let text = err.to_string();
    assert!(text.contains(&recs[1].uid), "{text}");
    // On its own: 16 (header) + 4 (set header) + the record.
    let IpfixError::RecordTooLarge { len, need, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(need, 16 + 4 + len);
    assert!(
        text.contains(&format!("needs a message of {need} octets on its own")),
        "{text}"
    );
    enc.push(&recs[2], 0, &mut out).unwrap();
    enc.flush(0, &mut out);
    let mut known = HashMap::new();
    let sent: usize = out
        .iter()
        .map(|m| parse(&m.bytes, &mut known).records.len())
        .sum();
    assert_eq!(sent, 2);
    assert_eq!(enc.sequence(), 2, "the refused record is not counted");
    recs[1].orig_enclave = Some("e".repeat(70_000));
    let err = enc.push(&recs[1], 0, &mut out).unwrap_err();
    assert_eq!(err.reason(), "field_too_long");
}

/// Regression: a record whose addresses were of different families was
/// encoded under the template of its originator's: an IPv4 source and a
/// 16-octet destination under the IPv4 template, a corrupt record.
#[test]
fn a_record_with_addresses_of_different_families_is_refused_and_the_encoder_goes_on() {
    // A flow table given a hand-built packet makes such a record.
    let frame = frame_ping(false);
    let ts = Timestamp::from_micros(1_772_438_400, 0);
    let view =
        crate::PacketView::parse(&frame, LinkType::ETHERNET, ts, frame.len() as u32).unwrap();
    let mut p = view.inner;
    p.ip.dst = "2001:db8::2".parse().unwrap();
    let mut table = crate::FlowTable::new(TableConfig::default()).unwrap();
    let mut mixed = Vec::new();
    table.update(&p, ts, true, &mut mixed).unwrap();
    table.flush(EndReason::Eof, &mut mixed);
    assert_eq!(mixed.len(), 1);
    let mut backwards = records()[2].clone();
    backwards.resp_h = "192.0.2.9".parse().unwrap();
    assert!(backwards.orig_h.is_ipv6(), "the DNS record over IPv6");
    mixed.push(backwards);

    let recs = records();
    let mut enc = Encoder::new(ExportConfig::default()).unwrap();
    let mut out = Vec::new();
    enc.push(&recs[0], 0, &mut out).unwrap();
    for r in &mixed {
        let err = enc.push(r, 0, &mut out).unwrap_err();
        assert_eq!(err, IpfixError::MixedFamilies { uid: r.uid.clone() });
        assert_eq!(err.reason(), "mixed_families");
    }
    enc.push(&recs[2], 0, &mut out).unwrap();
    enc.flush(0, &mut out);
    let mut known = HashMap::new();
    let sent: usize = out
        .iter()
        .map(|m| parse(&m.bytes, &mut known).records.len())
        .sum();
    assert_eq!(sent, 2);
    assert_eq!(enc.sequence(), 2, "the refused records are not counted");
}

/// Regression: at a 512-octet limit, records with long enclave names (64
/// characters are valid) were refused as `record_too_large` because room
/// for the template set was always reserved, though they fit in a message
/// of their own; the templates now go ahead in a message of their own.
#[test]
fn a_record_that_fits_without_the_templates_is_sent_after_them_not_refused() {
    let base = records();
    let recs: Vec<ConnRecord> = (0..12)
        .map(|i| {
            let mut r = base[i % 3].clone();
            r.orig_enclave = Some(format!("customer-{i:02}-").repeat(5) + "origin");
            r.resp_enclave = Some("r".repeat(64));
            r
        })
        .collect();
    let limit = 512;
    let mut enc = Encoder::new(ExportConfig {
        max_message_len: limit,
        ..ExportConfig::default()
    })
    .unwrap();
    enc.set_template_every(Some(4));
    let mut out = Vec::new();
    for r in &recs {
        enc.push(r, 7, &mut out).unwrap();
    }
    enc.flush(7, &mut out);
    let mut known = HashMap::new();
    let mut exported = Vec::new();
    let mut seq = 0;
    for (i, m) in out.iter().enumerate() {
        assert!(m.bytes.len() <= limit, "message {i}: {}", m.bytes.len());
        let p = parse(&m.bytes, &mut known);
        assert_eq!(p.sequence, seq, "message {i}");
        assert_eq!(!p.templates.is_empty(), m.has_templates, "message {i}");
        // Templates and a record do not fit together here.
        assert!(
            p.templates.is_empty() || p.records.is_empty(),
            "message {i}"
        );
        seq += m.records;
        exported.extend(p.records.iter().map(|rec| {
            let uid = get(&known, rec, 6, Some(DEFAULT_ENTERPRISE_NUMBER));
            String::from_utf8(uid.to_vec()).unwrap()
        }));
    }
    // Every record, in order, each one too large to share a message with
    // the templates, none too large for a message of its own.
    let uids: Vec<&str> = recs.iter().map(|r| r.uid.as_str()).collect();
    assert_eq!(exported, uids);
    let longest = out
        .iter()
        .filter(|m| m.records > 0)
        .map(|m| m.bytes.len())
        .max();
    assert!(
        longest.unwrap() + encoder::template_set_len() > limit,
        "{longest:?}"
    );
    // The first message is the templates, and they come back every fourth.
    assert!(out[0].has_templates && out[0].records == 0);
    let with_templates: Vec<usize> = (0..out.len()).filter(|i| out[*i].has_templates).collect();
    assert!(with_templates.len() > 1, "{with_templates:?}");
    for w in with_templates.windows(2) {
        assert_eq!(w[1] - w[0], 4, "{with_templates:?}");
    }
}

#[test]
fn message_limits_out_of_range_are_refused() {
    for limit in [0, 100, 511, 65_536] {
        let cfg = ExportConfig {
            max_message_len: limit,
            ..ExportConfig::default()
        };
        assert!(matches!(
            Encoder::new(cfg),
            Err(IpfixError::MessageLimit { .. })
        ));
    }
}

#[test]
fn end_reasons_map_to_flow_end_reason() {
    use derive::flow_end_reason as f;
    assert_eq!(f(EndReason::Idle), 1);
    assert_eq!(f(EndReason::Active), 2);
    assert_eq!(
        [f(EndReason::Fin), f(EndReason::Rst), f(EndReason::Reuse)],
        [3; 3]
    );
    assert_eq!([f(EndReason::Eof), f(EndReason::Shutdown)], [4; 2]);
    assert_eq!(f(EndReason::Evicted), 5);
}
