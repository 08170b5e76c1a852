//! A streaming reader for classic pcap files (the libpcap "tcpdump" format)
//! over any `std::io::Read`, without libpcap.
//!
//! The input is read in large chunks into one reusable buffer and packets
//! are handed out as slices borrowed from it: no allocation and no copy per
//! packet, one `read()` for many records. The reader always knows the index
//! and byte offset of the record it is at, so a damaged file is reported
//! precisely: every complete record is returned first, then the error names
//! the record that could not be read and where its header starts.
//!
//! Understood: micro- and nanosecond magic numbers, in either byte order.
//! Like libpcap, a record that claims more captured bytes than the file's
//! snapshot length (but no more than [`MAX_CAPLEN`]) is salvaged: its first
//! snaplen bytes are the packet and the rest is skipped
//! ([`PcapPacket::clipped`]). A captured length above [`MAX_CAPLEN`] can only
//! be corruption and ends the file with [`PcapError::CorruptRecord`].
//!
//! Timestamps: the seconds are unsigned 32-bit (1970..2106); a sub-second
//! field of a second or more (invalid) is clamped to the last nanosecond of
//! its second, as libpcap-based readers do.
//!
//! ```
//! use flowlib::pcap_reader::PcapReader;
//! use flowlib::pcap_writer::{PcapWriter, Resolution};
//! use flowlib::{LinkType, Timestamp};
//!
//! let mut w = PcapWriter::new(Vec::new(), Resolution::Nanos, 65535, LinkType::ETHERNET).unwrap();
//! w.write_packet(Timestamp::from_nanos(1_772_438_400, 7), &[0xab; 60], 60).unwrap();
//! let file = w.into_inner().unwrap();
//!
//! let mut r = PcapReader::new(&file[..]).unwrap();
//! assert_eq!(r.header().link, LinkType::ETHERNET);
//! let p = r.next_packet().unwrap().unwrap();
//! assert_eq!((p.ts, p.data.len(), p.record, p.offset), (Timestamp::from_nanos(1_772_438_400, 7), 60, 1, 24));
//! assert!(r.next_packet().unwrap().is_none());
//! ```

use crate::time::Timestamp;
use crate::LinkType;
use std::fmt;
use std::io::{self, Read};
use thiserror::Error;

/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest captured length accepted (libpcap's limit for every common link
/// type); larger values are treated as a corrupt record header.
pub const MAX_CAPLEN: u32 = 256 * 1024;
/// Default buffer size: many records per `read()`.
pub const DEFAULT_BUFFER: usize = 1 << 20;
/// Largest buffer [`PcapReader::with_capacity`] allocates (64 MiB): a
/// larger one makes no read faster.
pub const MAX_BUFFER: usize = 64 << 20;
/// Smallest usable buffer: one record of the largest size.
const MIN_BUFFER: usize = RECORD_HEADER_LEN + MAX_CAPLEN as usize;

/// Why a pcap file could not be read (further).
#[derive(Debug, Error)]
pub enum PcapError {
    /// Reading the underlying input failed.
    #[error("read error at byte offset {offset}: {source}")]
    Io {
        /// Byte offset of the record (or header) being read.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// The file header is missing, cut short or not a pcap header.
    #[error("not a usable pcap file: {reason}")]
    BadFileHeader {
        /// What is wrong.
        reason: &'static str,
    },
    /// The file ends inside a record.
    #[error(
        "file ends inside record {record} (byte offset {offset}): {got} of {needed} bytes present"
    )]
    Truncated {
        /// 1-based index of the incomplete record.
        record: u64,
        /// Byte offset of its record header.
        offset: u64,
        /// Bytes the record needs (header and data).
        needed: u64,
        /// Bytes the file still holds.
        got: u64,
    },
    /// A record header states an impossible captured length.
    #[error("corrupt header of record {record} (byte offset {offset}): captured length {caplen} exceeds the limit of {limit}")]
    CorruptRecord {
        /// 1-based index of the record.
        record: u64,
        /// Byte offset of its record header.
        offset: u64,
        /// The captured length it states.
        caplen: u32,
        /// The largest acceptable captured length.
        limit: u32,
    },
}

impl PcapError {
    /// 1-based index of the record that could not be read, if the error is
    /// about a record.
    pub fn record(&self) -> Option<u64> {
        match self {
            PcapError::Truncated { record, .. } | PcapError::CorruptRecord { record, .. } => {
                Some(*record)
            }
            _ => None,
        }
    }

    /// Byte offset where the failed read started, if known.
    pub fn offset(&self) -> Option<u64> {
        match self {
            PcapError::Io { offset, .. }
            | PcapError::Truncated { offset, .. }
            | PcapError::CorruptRecord { offset, .. } => Some(*offset),
            PcapError::BadFileHeader { .. } => None,
        }
    }
}

/// What the file header says.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PcapHeader {
    /// Link type of every packet (`LINKTYPE_*`, FCS bits removed).
    pub link: LinkType,
    /// Snapshot length as stored (0 and values above [`MAX_CAPLEN`] are
    /// read as [`MAX_CAPLEN`]).
    pub snaplen: u32,
    /// Timestamps are in nanoseconds (magic `0xa1b23c4d`), not microseconds.
    pub nanos: bool,
    /// The file was written in big-endian byte order.
    pub big_endian: bool,
    /// Format version (major, minor).
    pub version: (u16, u16),
}

/// One packet, borrowed from the reader's buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PcapPacket<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire, as stored.
    pub wire_len: u32,
    /// 1-based record index.
    pub record: u64,
    /// Byte offset of the record header.
    pub offset: u64,
    /// The record held more than the snapshot length; `data` is its first
    /// snaplen bytes.
    pub clipped: bool,
}

/// Streaming classic-pcap reader. See the module docs.
pub struct PcapReader<R: Read> {
    input: R,
    header: PcapHeader,
    /// Effective snapshot length (0 and oversized values mapped to the max).
    snaplen: u32,
    buf: Vec<u8>,
    /// First unconsumed byte in `buf`.
    start: usize,
    /// End of the valid bytes in `buf`.
    end: usize,
    eof: bool,
    /// Byte offset (in the file) of `buf[start]`.
    offset: u64,
    records: u64,
    clipped: u64,
}

/// Where the reader is, not its input or buffer.
impl<R: Read> fmt::Debug for PcapReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapReader")
            .field("header", &self.header)
            .field("offset", &self.offset)
            .field("records", &self.records)
            .field("clipped", &self.clipped)
            .field("buffered", &(self.end - self.start))
            .field("buffer_len", &self.buf.len())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads and checks the file header; the reader then stands before the
    /// first record.
    pub fn new(input: R) -> Result<PcapReader<R>, PcapError> {
        Self::with_capacity(DEFAULT_BUFFER, input)
    }

    /// Like [`PcapReader::new`] with a buffer of `capacity` bytes, raised to
    /// hold at least one record of [`MAX_CAPLEN`] bytes and capped at
    /// [`MAX_BUFFER`] (so any `capacity`, `usize::MAX` included, is
    /// usable).
    pub fn with_capacity(capacity: usize, input: R) -> Result<PcapReader<R>, PcapError> {
        let mut r = PcapReader {
            input,
            header: PcapHeader {
                link: LinkType(0),
                snaplen: 0,
                nanos: false,
                big_endian: false,
                version: (0, 0),
            },
            snaplen: MAX_CAPLEN,
            buf: vec![0; capacity.clamp(MIN_BUFFER, MAX_BUFFER)],
            start: 0,
            end: 0,
            eof: false,
            offset: 0,
            records: 0,
            clipped: 0,
        };
        if r.fill(FILE_HEADER_LEN)? < FILE_HEADER_LEN {
            return Err(PcapError::BadFileHeader {
                reason: "file is shorter than a pcap file header",
            });
        }
        let h = &r.buf[..FILE_HEADER_LEN];
        let (big_endian, nanos) = match [h[0], h[1], h[2], h[3]] {
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
            _ => {
                return Err(PcapError::BadFileHeader {
                    reason: "unknown magic number",
                })
            }
        };
        let u16_at = |at: usize| {
            let v = [h[at], h[at + 1]];
            if big_endian {
                u16::from_be_bytes(v)
            } else {
                u16::from_le_bytes(v)
            }
        };
        let u32_at = |at: usize| read_u32(h, at, big_endian);
        let version = (u16_at(4), u16_at(6));
        if version.0 != 2 {
            return Err(PcapError::BadFileHeader {
                reason: "unsupported pcap format version (major version is not 2)",
            });
        }
        let snaplen = u32_at(16);
        // The top bits of the link type field carry FCS information.
        let link = LinkType(u32_at(20) & 0x03ff_ffff);
        r.header = PcapHeader {
            link,
            snaplen,
            nanos,
            big_endian,
            version,
        };
        r.snaplen = if snaplen == 0 || snaplen > MAX_CAPLEN {
            MAX_CAPLEN
        } else {
            snaplen
        };
        r.start = FILE_HEADER_LEN;
        r.offset = FILE_HEADER_LEN as u64;
        Ok(r)
    }

    /// The file header.
    pub fn header(&self) -> &PcapHeader {
        &self.header
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Records returned so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Records so far that held more than the snapshot length and were
    /// clipped to it.
    pub fn clipped(&self) -> u64 {
        self.clipped
    }

    /// Makes at least `need` unconsumed bytes available if the input has
    /// them; returns how many are available (fewer only at end of input).
    /// `need` must not exceed the buffer size.
    fn fill(&mut self, need: usize) -> Result<usize, PcapError> {
        if self.end - self.start >= need || self.eof {
            return Ok(self.end - self.start);
        }
        if self.start + need > self.buf.len() {
            // Move the partial record to the front to make room.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < need {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(PcapError::Io {
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
        Ok(self.end - self.start)
    }

    /// The next packet; `Ok(None)` at the end of the file. After an error,
    /// the reader stays where it was.
    #[inline]
    pub fn next_packet(&mut self) -> Result<Option<PcapPacket<'_>>, PcapError> {
        let record = self.records + 1;
        let available = self.fill(RECORD_HEADER_LEN)?;
        if available == 0 {
            return Ok(None);
        }
        if available < RECORD_HEADER_LEN {
            return Err(self.truncated(RECORD_HEADER_LEN, available));
        }
        let be = self.header.big_endian;
        let h = &self.buf[self.start..self.start + RECORD_HEADER_LEN];
        let secs = read_u32(h, 0, be);
        let frac = read_u32(h, 4, be);
        let caplen = read_u32(h, 8, be);
        let wire_len = read_u32(h, 12, be);
        if caplen > MAX_CAPLEN {
            return Err(PcapError::CorruptRecord {
                record,
                offset: self.offset,
                caplen,
                limit: MAX_CAPLEN,
            });
        }
        let needed = RECORD_HEADER_LEN + caplen as usize;
        let available = self.fill(needed)?;
        if available < needed {
            return Err(self.truncated(needed, available));
        }
        let nanos = if self.header.nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1_000
        };
        let ts = Timestamp::from_nanos(i64::from(secs), nanos.min(999_999_999) as u32);
        let clipped = caplen > self.snaplen;
        let kept = caplen.min(self.snaplen) as usize;
        let data_start = self.start + RECORD_HEADER_LEN;
        let offset = self.offset;
        self.start += needed;
        self.offset += needed as u64;
        self.records = record;
        if clipped {
            self.clipped += 1;
        }
        Ok(Some(PcapPacket {
            ts,
            data: &self.buf[data_start..data_start + kept],
            wire_len,
            record,
            offset,
            clipped,
        }))
    }

    fn truncated(&self, needed: usize, got: usize) -> PcapError {
        PcapError::Truncated {
            record: self.records + 1,
            offset: self.offset,
            needed: needed as u64,
            got: got as u64,
        }
    }
}

fn read_u32(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big_endian {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap_writer::{PcapWriter, Resolution};

    fn packets() -> Vec<(Timestamp, Vec<u8>, u32)> {
        (0..5u8)
            .map(|i| {
                let len = 20 + usize::from(i) * 7;
                let ts = Timestamp::from_nanos(1_700_000_000 + i64::from(i), 123_456_000);
                (ts, vec![i; len], len as u32 + u32::from(i))
            })
            .collect()
    }

    fn file(resolution: Resolution, snaplen: u32) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), resolution, snaplen, LinkType::ETHERNET).unwrap();
        for (ts, data, len) in packets() {
            w.write_packet(ts, &data, len).unwrap();
        }
        w.into_inner().unwrap()
    }

    /// The file with every 32-bit field of the headers byte-swapped.
    fn big_endian(le: &[u8]) -> Vec<u8> {
        let mut out = le.to_vec();
        let swap32 = |b: &mut [u8], at: usize| b[at..at + 4].reverse();
        let swap16 = |b: &mut [u8], at: usize| b[at..at + 2].reverse();
        swap32(&mut out, 0);
        swap16(&mut out, 4);
        swap16(&mut out, 6);
        for at in [8, 12, 16, 20] {
            swap32(&mut out, at);
        }
        let mut off = FILE_HEADER_LEN;
        while off < out.len() {
            let caplen = read_u32(le, off + 8, false) as usize;
            for f in 0..4 {
                swap32(&mut out, off + 4 * f);
            }
            off += RECORD_HEADER_LEN + caplen;
        }
        out
    }

    /// (ts, data, wire_len, record, offset) of each packet read.
    type Got = (Timestamp, Vec<u8>, u32, u64, u64);

    fn read_all(bytes: &[u8]) -> (Vec<Got>, Option<PcapError>) {
        let mut r = PcapReader::with_capacity(0, bytes).unwrap();
        let mut got = Vec::new();
        loop {
            match r.next_packet() {
                Ok(Some(p)) => got.push((p.ts, p.data.to_vec(), p.wire_len, p.record, p.offset)),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e)),
            }
        }
    }

    /// Record start offsets of `file(..)`'s records, and the file length.
    fn record_offsets() -> Vec<u64> {
        let mut offsets = vec![FILE_HEADER_LEN as u64];
        for (_, data, _) in packets() {
            let last = *offsets.last().unwrap();
            offsets.push(last + (RECORD_HEADER_LEN + data.len()) as u64);
        }
        offsets
    }

    #[test]
    fn reads_what_the_writer_wrote_in_both_resolutions_and_byte_orders() {
        for resolution in [Resolution::Micros, Resolution::Nanos] {
            let le = file(resolution, 65535);
            for bytes in [le.clone(), big_endian(&le)] {
                let r = PcapReader::new(&bytes[..]).unwrap();
                assert_eq!(r.header().nanos, resolution == Resolution::Nanos);
                assert_eq!(r.header().link, LinkType::ETHERNET);
                assert_eq!(r.header().version, (2, 4));
                let (got, err) = read_all(&bytes);
                assert!(err.is_none());
                let offsets = record_offsets();
                for (i, (want, got)) in packets().iter().zip(&got).enumerate() {
                    assert_eq!((&want.0, &want.1, want.2), (&got.0, &got.1, got.2));
                    assert_eq!((got.3, got.4), (i as u64 + 1, offsets[i]));
                }
                assert_eq!(got.len(), 5);
            }
        }
    }

    #[test]
    fn nanosecond_timestamps_keep_their_nanoseconds() {
        let mut w = PcapWriter::new(Vec::new(), Resolution::Nanos, 0, LinkType::RAW).unwrap();
        let ts = Timestamp::from_nanos(1_500_000_000, 123_456_789);
        w.write_packet(ts, &[0x45; 20], 20).unwrap();
        let bytes = w.into_inner().unwrap();
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(r.header().link, LinkType::RAW);
        assert_eq!(r.next_packet().unwrap().unwrap().ts, ts);
    }

    #[test]
    fn invalid_subsecond_fields_are_clamped_within_their_second() {
        for (nanos, frac, want) in [
            (true, 1_000_000_000, 999_999_999),
            (true, u32::MAX, 999_999_999),
            (false, 1_000_000, 999_999_999),
            (false, 999_999, 999_999_000),
        ] {
            let mut bytes = file(
                if nanos {
                    Resolution::Nanos
                } else {
                    Resolution::Micros
                },
                65535,
            );
            bytes[FILE_HEADER_LEN + 4..FILE_HEADER_LEN + 8].copy_from_slice(&frac.to_le_bytes());
            let mut r = PcapReader::new(&bytes[..]).unwrap();
            let p = r.next_packet().unwrap().unwrap();
            assert_eq!(p.ts, Timestamp::from_nanos(1_700_000_000, want), "{frac}");
        }
    }

    #[test]
    fn seconds_are_unsigned_up_to_2106() {
        let mut bytes = file(Resolution::Micros, 65535);
        bytes[FILE_HEADER_LEN..FILE_HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(
            r.next_packet().unwrap().unwrap().ts.secs(),
            i64::from(u32::MAX)
        );
    }

    #[test]
    fn truncation_at_every_byte_returns_complete_records_then_names_the_cut_one() {
        let bytes = file(Resolution::Micros, 65535);
        let offsets = record_offsets();
        for cut in 0..bytes.len() {
            let slice = &bytes[..cut];
            if cut < FILE_HEADER_LEN {
                assert!(matches!(
                    PcapReader::new(slice),
                    Err(PcapError::BadFileHeader { .. })
                ));
                continue;
            }
            let (got, err) = read_all(slice);
            let complete = offsets.iter().filter(|&&o| o <= cut as u64).count() - 1;
            assert_eq!(got.len(), complete, "cut at {cut}");
            if offsets.contains(&(cut as u64)) {
                assert!(
                    err.is_none(),
                    "cut at a record boundary ({cut}) is a clean end"
                );
                continue;
            }
            match err {
                Some(PcapError::Truncated {
                    record,
                    offset,
                    needed,
                    got,
                }) => {
                    assert_eq!(record, complete as u64 + 1, "cut at {cut}");
                    assert_eq!(offset, offsets[complete], "cut at {cut}");
                    assert_eq!(got, cut as u64 - offset, "cut at {cut}");
                    assert!(needed > got);
                }
                other => panic!("cut at {cut}: expected truncation, got {other:?}"),
            }
        }
    }

    #[test]
    fn truncation_in_a_small_buffer_and_a_dribbling_input_is_found_the_same() {
        /// Hands out one byte per read.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match (self.0.split_first(), buf.first_mut()) {
                    (Some((b, rest)), Some(slot)) => {
                        *slot = *b;
                        self.0 = rest;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        let bytes = file(Resolution::Nanos, 65535);
        let cut = bytes.len() - 3;
        let mut r = PcapReader::new(Dribble(&bytes[..cut])).unwrap();
        let mut n = 0;
        let err = loop {
            match r.next_packet() {
                Ok(Some(_)) => n += 1,
                Ok(None) => panic!("expected an error"),
                Err(e) => break e,
            }
        };
        assert_eq!(n, 4);
        assert_eq!(err.record(), Some(5));
        assert_eq!(err.offset(), Some(record_offsets()[4]));
    }

    #[test]
    fn records_straddling_buffer_refills_come_out_whole() {
        let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 0, LinkType::ETHERNET).unwrap();
        let mut want = Vec::new();
        for i in 0..400u32 {
            let len = (i * 7919 % 9000 + 1) as usize;
            let data: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
            w.write_packet(Timestamp::from_micros(i64::from(i), i), &data, len as u32)
                .unwrap();
            want.push(data);
        }
        let bytes = w.into_inner().unwrap();
        assert!(bytes.len() > 3 * MIN_BUFFER);
        let (got, err) = read_all(&bytes);
        assert!(err.is_none());
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(&g.1, w);
        }
    }

    #[test]
    fn corrupt_record_length_is_an_error_after_the_good_records() {
        let mut bytes = file(Resolution::Micros, 65535);
        let offsets = record_offsets();
        let at = offsets[2] as usize + 8;
        bytes[at..at + 4].copy_from_slice(&0x5400_0000u32.to_le_bytes());
        let (got, err) = read_all(&bytes);
        assert_eq!(got.len(), 2);
        match err {
            Some(PcapError::CorruptRecord {
                record,
                offset,
                caplen,
                limit,
            }) => {
                assert_eq!((record, offset), (3, offsets[2]));
                assert_eq!((caplen, limit), (0x5400_0000, MAX_CAPLEN));
            }
            other => panic!("expected a corrupt record, got {other:?}"),
        }
        let msg = read_all(&bytes).1.unwrap().to_string();
        assert!(msg.contains("record 3") && msg.contains(&format!("byte offset {}", offsets[2])));
    }

    #[test]
    fn record_longer_than_the_snaplen_is_clipped_like_libpcap_does() {
        // Written with a large snaplen, then the header's snaplen lowered.
        let mut bytes = file(Resolution::Micros, 65535);
        bytes[16..20].copy_from_slice(&30u32.to_le_bytes());
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let mut lens = Vec::new();
        while let Some(p) = r.next_packet().unwrap() {
            lens.push((p.data.len(), p.clipped));
        }
        assert_eq!(
            lens,
            [(20, false), (27, false), (30, true), (30, true), (30, true)]
        );
        assert_eq!(r.clipped(), 3);
        assert_eq!(
            r.offset(),
            bytes.len() as u64,
            "the clipped bytes are skipped"
        );
    }

    #[test]
    fn bad_magic_and_version_are_refused() {
        let mut bytes = file(Resolution::Micros, 65535);
        bytes[4] = 1;
        assert!(matches!(
            PcapReader::new(&bytes[..]),
            Err(PcapError::BadFileHeader { .. })
        ));
        assert!(matches!(
            PcapReader::new(&b"\x0a\x0d\x0d\x0a and some more bytes here"[..]),
            Err(PcapError::BadFileHeader { .. })
        ));
    }

    /// Regression: `with_capacity(usize::MAX, ..)` panicked (capacity
    /// overflow); the buffer is capped at [`MAX_BUFFER`].
    #[test]
    fn any_capacity_is_usable_and_debug_shows_the_position_not_the_buffer() {
        let bytes = file(Resolution::Micros, 65535);
        for capacity in [0, DEFAULT_BUFFER, MAX_BUFFER + 1, usize::MAX] {
            let mut r = PcapReader::with_capacity(capacity, &bytes[..]).unwrap();
            assert_eq!(r.buf.len(), capacity.clamp(MIN_BUFFER, MAX_BUFFER));
            while r.next_packet().unwrap().is_some() {}
            assert_eq!(r.records(), 5);
            let debug = format!("{r:?}");
            assert!(
                debug.starts_with("PcapReader { header: PcapHeader {"),
                "{debug}"
            );
            assert!(debug.contains("records: 5"), "{debug}");
            assert!(debug.len() < 400, "{debug}");
        }
    }

    #[test]
    fn empty_capture_ends_cleanly() {
        let w = PcapWriter::new(Vec::new(), Resolution::Micros, 0, LinkType::ETHERNET).unwrap();
        let bytes = w.into_inner().unwrap();
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert!(r.next_packet().unwrap().is_none());
        assert!(r.next_packet().unwrap().is_none());
        assert_eq!(r.records(), 0);
    }
}
