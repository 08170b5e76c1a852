//! A streaming pcapng reader over any `std::io::Read`, without libpcap.
//!
//! It follows every interface's own link type and timestamp resolution, so
//! it reads files that libpcap 1.10 refuses (interfaces with different link
//! types or snapshot lengths, sections of different byte orders). Packet
//! data are read into one reusable buffer: no allocation per packet. It
//! always knows which block it is at and its byte offset, so a damaged file
//! is reported precisely.
//!
//! Checked, as libpcap checks them: the first block is a section header of
//! major version 1; every block is at least 12 bytes, a multiple of 4, at
//! most 16 MiB, and its trailing length repeats its leading one; a packet
//! names an interface its section described (each section starts with no
//! interfaces). Blocks of unknown types are skipped and counted
//! ([`PcapNgReader::skipped_blocks`]). Unlike libpcap, an enhanced (or
//! obsolete) packet block holding more than its interface's snapshot length
//! is kept whole (its captured length says what it holds); a simple packet
//! block, which has no captured length, is cut to the snapshot length, as
//! the pcapng specification says.

use crate::time::Timestamp;
use crate::LinkType;
use std::fmt;
use std::io::{self, Read};
use thiserror::Error;

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// Largest block accepted; larger lengths are treated as corruption.
const MAX_BLOCK: usize = 16 << 20;

/// Why a pcapng file could not be read further.
#[derive(Debug, Error)]
pub enum PcapNgError {
    /// Reading the underlying file failed.
    #[error("read error at byte offset {offset}: {source}")]
    Io {
        /// Offset of the block being read.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// The file ends inside a block.
    #[error("file ends inside block {block} (byte offset {offset})")]
    Truncated {
        /// 1-based block index.
        block: u64,
        /// Byte offset of the block.
        offset: u64,
    },
    /// A block is malformed.
    #[error("malformed block {block} at byte offset {offset}: {reason}")]
    Malformed {
        /// 1-based block index.
        block: u64,
        /// Byte offset of the block.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

#[derive(Copy, Clone, Debug)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    /// Timestamp units per second, as a power: 10^-n (decimal) or 2^-n.
    units_per_sec: u64,
    offset_secs: i64,
}

/// One packet read from a pcapng file.
#[derive(Copy, Clone, Debug)]
pub struct PcapNgPacket<'a> {
    /// Link type of the interface it was captured on.
    pub link: LinkType,
    /// Capture time.
    pub ts: Timestamp,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire.
    pub wire_len: u32,
}

/// Streaming pcapng reader.
pub struct PcapNgReader<R: Read> {
    input: R,
    big_endian: bool,
    interfaces: Vec<Interface>,
    buf: Vec<u8>,
    offset: u64,
    blocks: u64,
    packets: u64,
    skipped: u64,
    last_ts: Timestamp,
}

/// Where the reader is, not its input or buffer.
impl<R: Read> fmt::Debug for PcapNgReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapNgReader")
            .field("offset", &self.offset)
            .field("blocks", &self.blocks)
            .field("packets", &self.packets)
            .field("skipped", &self.skipped)
            .field("interfaces", &self.interfaces.len())
            .field("big_endian", &self.big_endian)
            .finish_non_exhaustive()
    }
}

impl<R: Read> PcapNgReader<R> {
    /// Starts reading; the first block must be a section header.
    pub fn new(input: R) -> PcapNgReader<R> {
        PcapNgReader {
            input,
            big_endian: false,
            interfaces: Vec::new(),
            buf: Vec::with_capacity(1 << 16),
            offset: 0,
            blocks: 0,
            packets: 0,
            skipped: 0,
            last_ts: Timestamp::default(),
        }
    }

    /// Byte offset of the next block.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Packets returned so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Blocks skipped so far: types this reader does not use (name
    /// resolution, statistics, custom and unknown blocks).
    pub fn skipped_blocks(&self) -> u64 {
        self.skipped
    }

    /// Checks that the block of `len` bytes whose body (from its byte 8)
    /// is in `buf` ends with its length repeated.
    fn check_trailer(&self, len: usize) -> Result<(), PcapNgError> {
        let t = self.u32_at(&self.buf, len - 12);
        if t as usize != len {
            return Err(self.malformed("block total length in header and trailer don't match"));
        }
        Ok(())
    }

    fn u16_at(&self, b: &[u8], at: usize) -> u16 {
        let v = [b[at], b[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }

    /// Fills `buf` with exactly `n` bytes; `Ok(false)` on a clean end of
    /// file before the first byte.
    fn fill(&mut self, n: usize, at_start: bool) -> Result<bool, PcapNgError> {
        self.buf.resize(n, 0);
        let mut got = 0;
        while got < n {
            match self.input.read(&mut self.buf[got..n]) {
                Ok(0) if got == 0 && at_start => return Ok(false),
                Ok(0) => {
                    return Err(PcapNgError::Truncated {
                        block: self.blocks + 1,
                        offset: self.offset,
                    })
                }
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(PcapNgError::Io {
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
        Ok(true)
    }

    fn malformed(&self, reason: &'static str) -> PcapNgError {
        PcapNgError::Malformed {
            block: self.blocks + 1,
            offset: self.offset,
            reason,
        }
    }

    /// The next packet; `Ok(None)` at the end of the file.
    pub fn next_packet(&mut self) -> Result<Option<PcapNgPacket<'_>>, PcapNgError> {
        loop {
            if !self.fill(8, true)? {
                return Ok(None);
            }
            let raw_type = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            if raw_type == SHB {
                // The byte-order magic follows the length; peek it first.
                let head = [self.buf[4], self.buf[5], self.buf[6], self.buf[7]];
                let mut bom = [0u8; 4];
                self.input.read_exact(&mut bom).map_err(|source| {
                    if source.kind() == io::ErrorKind::UnexpectedEof {
                        PcapNgError::Truncated {
                            block: self.blocks + 1,
                            offset: self.offset,
                        }
                    } else {
                        PcapNgError::Io {
                            offset: self.offset,
                            source,
                        }
                    }
                })?;
                self.big_endian = match u32::from_le_bytes(bom) {
                    BYTE_ORDER_MAGIC => false,
                    m if m.swap_bytes() == BYTE_ORDER_MAGIC => true,
                    _ => return Err(self.malformed("bad byte-order magic")),
                };
                let len = self.u32_at(&head, 0) as usize;
                if !(28..=MAX_BLOCK).contains(&len) || len % 4 != 0 {
                    return Err(self.malformed("bad section header length"));
                }
                self.fill(len - 12, false)?;
                // After the byte-order magic: versions, section length,
                // options, then the trailing length.
                let major = self.u16_at(&self.buf, 0);
                if major != 1 {
                    return Err(
                        self.malformed("unsupported pcapng version (major version is not 1)")
                    );
                }
                let trailer = self.u32_at(&self.buf, len - 16) as usize;
                if trailer != len {
                    return Err(
                        self.malformed("block total length in header and trailer don't match")
                    );
                }
                self.interfaces.clear();
                self.blocks += 1;
                self.offset += len as u64;
                continue;
            }
            if self.blocks == 0 {
                return Err(self.malformed("file does not start with a section header"));
            }
            let btype = self.u32_at(&self.buf, 0);
            let len = self.u32_at(&self.buf, 4) as usize;
            if len < 12 {
                return Err(self.malformed("block length is less than 12 bytes"));
            }
            if len % 4 != 0 {
                return Err(self.malformed("block length is not a multiple of 4"));
            }
            if len > MAX_BLOCK {
                return Err(self.malformed("block length is over the 16 MiB maximum"));
            }
            self.fill(len - 8, false)?;
            self.check_trailer(len)?;
            let block_offset = self.offset;
            self.blocks += 1;
            self.offset += len as u64;
            let body_len = len - 12;
            match btype {
                IDB => self.interface(body_len, block_offset)?,
                EPB | PB => {
                    if body_len < 20 {
                        return Err(self.malformed_at(block_offset, "packet block too short"));
                    }
                    let b = &self.buf;
                    let iface = if btype == EPB {
                        self.u32_at(b, 0) as usize
                    } else {
                        usize::from(self.u16_at(b, 0))
                    };
                    let ts_raw =
                        (u64::from(self.u32_at(b, 4)) << 32) | u64::from(self.u32_at(b, 8));
                    let caplen = self.u32_at(b, 12) as usize;
                    let wire_len = self.u32_at(b, 16);
                    if caplen > body_len - 20 {
                        return Err(
                            self.malformed_at(block_offset, "captured length exceeds block")
                        );
                    }
                    let Some(i) = self.interfaces.get(iface).copied() else {
                        return Err(self.malformed_at(
                            block_offset,
                            if self.interfaces.is_empty() {
                                "packet block before any interface description block"
                            } else {
                                "packet names an interface its section did not describe"
                            },
                        ));
                    };
                    let ts = ts_from_units(ts_raw, i.units_per_sec, i.offset_secs);
                    self.last_ts = ts;
                    self.packets += 1;
                    return Ok(Some(PcapNgPacket {
                        link: i.link,
                        ts,
                        data: &self.buf[20..20 + caplen],
                        wire_len,
                    }));
                }
                SPB => {
                    if body_len < 4 {
                        return Err(
                            self.malformed_at(block_offset, "simple packet block too short")
                        );
                    }
                    let Some(i) = self.interfaces.first().copied() else {
                        return Err(self.malformed_at(
                            block_offset,
                            "packet block before any interface description block",
                        ));
                    };
                    let wire_len = self.u32_at(&self.buf, 0);
                    let mut caplen = (wire_len as usize).min(body_len - 4);
                    if i.snaplen > 0 {
                        caplen = caplen.min(i.snaplen as usize);
                    }
                    self.packets += 1;
                    return Ok(Some(PcapNgPacket {
                        link: i.link,
                        ts: self.last_ts,
                        data: &self.buf[4..4 + caplen],
                        wire_len,
                    }));
                }
                // Name resolution, statistics, custom and unknown blocks.
                _ => self.skipped += 1,
            }
        }
    }

    fn malformed_at(&self, offset: u64, reason: &'static str) -> PcapNgError {
        PcapNgError::Malformed {
            block: self.blocks,
            offset,
            reason,
        }
    }

    fn interface(&mut self, body_len: usize, block_offset: u64) -> Result<(), PcapNgError> {
        if body_len < 8 {
            return Err(self.malformed_at(block_offset, "interface block too short"));
        }
        let b = &self.buf;
        let link = LinkType(u32::from(self.u16_at(b, 0)));
        let snaplen = self.u32_at(b, 4);
        let mut units_per_sec = 1_000_000u64;
        let mut offset_secs = 0i64;
        let mut at = 8;
        while at + 4 <= body_len {
            let code = self.u16_at(b, at);
            let olen = usize::from(self.u16_at(b, at + 2));
            let val = at + 4;
            if code == 0 || val + olen > body_len {
                break;
            }
            match (code, olen) {
                (9, 1) => {
                    let r = b[val];
                    units_per_sec = if r & 0x80 == 0 {
                        10u64.checked_pow(u32::from(r)).unwrap_or(0)
                    } else {
                        1u64.checked_shl(u32::from(r & 0x7f)).unwrap_or(0)
                    };
                    if units_per_sec == 0 {
                        return Err(
                            self.malformed_at(block_offset, "unusable timestamp resolution")
                        );
                    }
                }
                (14, 8) => {
                    let v = (
                        u64::from(self.u32_at(b, val)),
                        u64::from(self.u32_at(b, val + 4)),
                    );
                    let raw = if self.big_endian {
                        v.0 << 32 | v.1
                    } else {
                        v.1 << 32 | v.0
                    };
                    offset_secs = raw as i64;
                }
                _ => {}
            }
            at = val + olen.div_ceil(4) * 4;
        }
        self.interfaces.push(Interface {
            link,
            snaplen,
            units_per_sec,
            offset_secs,
        });
        Ok(())
    }
}

/// Converts a raw pcapng timestamp in `units` per second to nanoseconds.
fn ts_from_units(raw: u64, units: u64, offset_secs: i64) -> Timestamp {
    let secs = raw / units;
    let frac = raw % units;
    let nanos = (u128::from(frac) * 1_000_000_000 / u128::from(units)) as u32;
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    Timestamp::from_nanos(offset_secs.saturating_add(secs), nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(t: u32, body: &[u8]) -> Vec<u8> {
        let len = (12 + body.len()) as u32;
        let mut v = t.to_le_bytes().to_vec();
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(body);
        v.extend_from_slice(&len.to_le_bytes());
        v
    }

    fn file(link: u16, tsresol: u8) -> Vec<u8> {
        let mut shb = BYTE_ORDER_MAGIC.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut f = block(SHB, &shb);
        let mut idb = link.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&65535u32.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 1, 0, tsresol, 0, 0, 0, 0, 0, 0, 0]);
        f.extend(block(IDB, &idb));
        f
    }

    fn epb(iface: u32, ts: u64, data: &[u8]) -> Vec<u8> {
        let mut b = iface.to_le_bytes().to_vec();
        b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(ts as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        block(EPB, &b)
    }

    #[test]
    fn reads_packets_with_interface_resolution() {
        let mut f = file(1, 9);
        f.extend(epb(0, 1_500_000_000_123_456_789, &[1, 2, 3]));
        let mut r = PcapNgReader::new(&f[..]);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.link, LinkType::ETHERNET);
        assert_eq!(p.data, &[1, 2, 3]);
        assert_eq!(p.ts, Timestamp(1_500_000_000_123_456_789));
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn debug_shows_the_position_not_the_buffer() {
        let mut f = file(1, 6);
        f.extend(epb(0, 1, &[0; 1500]));
        let mut r = PcapNgReader::new(&f[..]);
        r.next_packet().unwrap().unwrap();
        let debug = format!("{r:?}");
        assert_eq!(
            debug,
            format!(
                "PcapNgReader {{ offset: {}, blocks: 3, packets: 1, skipped: 0, \
                 interfaces: 1, big_endian: false, .. }}",
                f.len()
            )
        );
    }

    /// What the module docs say: an enhanced packet block longer than its
    /// interface's snapshot length is kept whole, a simple packet block is
    /// cut to it (its wire length kept).
    #[test]
    fn enhanced_packets_over_the_snaplen_are_kept_whole_simple_ones_cut() {
        let mut f = file(1, 6);
        // A second section whose interface has a snapshot length of 64.
        let mut shb = BYTE_ORDER_MAGIC.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        f.extend(block(SHB, &shb));
        let mut idb = 1u16.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&64u32.to_le_bytes());
        f.extend(block(IDB, &idb));
        let data: Vec<u8> = (0..100u8).collect();
        f.extend(epb(0, 1, &data));
        let mut spb = 100u32.to_le_bytes().to_vec();
        spb.extend_from_slice(&data);
        f.extend(block(SPB, &spb));
        let mut r = PcapNgReader::new(&f[..]);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.data, p.wire_len), (&data[..], 100));
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.data, p.wire_len), (&data[..64], 100));
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn truncated_file_names_block_and_offset() {
        let mut f = file(1, 6);
        let good = f.len() as u64;
        f.extend(epb(0, 1, &[0; 40]));
        f.truncate(f.len() - 10);
        let mut r = PcapNgReader::new(&f[..]);
        match r.next_packet() {
            Err(PcapNgError::Truncated { block, offset }) => {
                assert_eq!(block, 3);
                assert_eq!(offset, good);
            }
            other => panic!("expected truncation, got {other:?}"),
        }
    }

    /// Hands out `data`, then fails with a non-EOF error from byte `fail_at`.
    struct FailingAt<'a> {
        data: &'a [u8],
        at: usize,
        fail_at: usize,
    }

    impl Read for FailingAt<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at >= self.fail_at {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, "disk gone"));
            }
            let end = self.data.len().min(self.fail_at).min(self.at + buf.len());
            let n = end - self.at;
            buf[..n].copy_from_slice(&self.data[self.at..end]);
            self.at = end;
            Ok(n)
        }
    }

    /// Regression: a read error while peeking a section header's byte-order
    /// magic was reported as "file ends inside block 1", whatever it was.
    #[test]
    fn a_read_error_in_a_section_header_is_an_io_error_and_its_end_is_truncation() {
        let mut f = file(1, 6);
        let second_section = f.len();
        f.extend(file(1, 6));
        // In the first section header, and in a later one (no packet
        // before it: the error comes from the first call).
        for at in [0, second_section] {
            let mut r = PcapNgReader::new(FailingAt {
                data: &f,
                at: 0,
                fail_at: at + 8,
            });
            match r.next_packet() {
                Err(PcapNgError::Io { offset, source }) => {
                    assert_eq!(offset, at as u64);
                    assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
                }
                other => panic!("at {at}: expected an I/O error, got {other:?}"),
            }
        }
        // The file itself ending there is truncation.
        let mut r = PcapNgReader::new(&f[..8]);
        assert!(matches!(
            r.next_packet(),
            Err(PcapNgError::Truncated {
                block: 1,
                offset: 0
            })
        ));
    }

    #[test]
    fn packet_on_undefined_interface_is_malformed() {
        let mut f = file(1, 6);
        f.extend(epb(5, 1, &[0; 4]));
        assert!(matches!(
            PcapNgReader::new(&f[..]).next_packet(),
            Err(PcapNgError::Malformed { .. })
        ));
    }
}
