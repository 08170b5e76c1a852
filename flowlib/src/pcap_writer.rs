//! A writer for classic pcap files (the libpcap "tcpdump" format), with no
//! dependency on libpcap.
//!
//! The file starts with a 24-byte global header: magic number (`0xa1b2c3d4`
//! for microsecond timestamps, `0xa1b23c4d` for nanosecond timestamps),
//! version 2.4, a zero time zone offset and zero accuracy, the snapshot length
//! and the link type. Each packet follows as a 16-byte record header
//! (seconds, sub-second part, captured length, original length) and the
//! captured bytes. Every header field is written in little-endian byte order,
//! whatever the host's byte order.
//!
//! Packets longer than the snapshot length are truncated to it, while the
//! record keeps the original length, exactly as a capture with `-s SNAPLEN`
//! would have stored them. The snapshot length is at most
//! [`MAX_CAPLEN`] (262144, where tcpdump caps `-s` too): a larger one is
//! stored as [`MAX_CAPLEN`], so every file written here is one
//! [`PcapReader`](crate::pcap_reader::PcapReader) reads.
//!
//! # Example
//!
//! ```
//! use flowlib::pcap_writer::{PcapWriter, Resolution};
//! use flowlib::{LinkType, Timestamp};
//!
//! # fn main() -> std::io::Result<()> {
//! let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET)?;
//! let frame = [0u8; 60];
//! w.write_packet(Timestamp::from_micros(1_772_438_400, 250), &frame, 60)?;
//! let bytes = w.into_inner()?;
//! assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes());
//! assert_eq!(bytes.len(), 24 + 16 + 60);
//! # Ok(())
//! # }
//! ```

use std::io::{self, Write};

use crate::pcap_reader::MAX_CAPLEN;
use crate::{LinkType, Timestamp};

/// Magic number of a pcap file with microsecond timestamps.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Magic number of a pcap file with nanosecond timestamps.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Length of the pcap global (file) header in bytes.
pub const FILE_HEADER_LEN: usize = 24;
/// Length of a pcap per-packet record header in bytes.
pub const RECORD_HEADER_LEN: usize = 16;

/// The resolution of the timestamps stored in the file, which also selects the
/// magic number.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// Microsecond timestamps (magic `0xa1b2c3d4`); what most tools write.
    Micros,
    /// Nanosecond timestamps (magic `0xa1b23c4d`).
    Nanos,
}

impl Resolution {
    /// The magic number a file of this resolution starts with.
    pub fn magic(self) -> u32 {
        match self {
            Resolution::Micros => MAGIC_MICROS,
            Resolution::Nanos => MAGIC_NANOS,
        }
    }
}

/// Writes packets to a classic pcap file.
///
/// The global header is written by [`PcapWriter::new`]; every
/// [`PcapWriter::write_packet`] appends one record. Wrap a file in a
/// [`std::io::BufWriter`]: each packet is written with two `write_all` calls.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    resolution: Resolution,
    snaplen: u32,
    link_type: LinkType,
    packets: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header to `out` and returns a writer ready for packets.
    ///
    /// A `snaplen` of 0 is stored as 65535, one above [`MAX_CAPLEN`] as
    /// [`MAX_CAPLEN`] (and packets are truncated to that).
    pub fn new(
        mut out: W,
        resolution: Resolution,
        snaplen: u32,
        link_type: LinkType,
    ) -> io::Result<Self> {
        let snaplen = if snaplen == 0 {
            65_535
        } else {
            snaplen.min(MAX_CAPLEN)
        };
        let mut header = [0u8; FILE_HEADER_LEN];
        header[0..4].copy_from_slice(&resolution.magic().to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone (8..12) and sigfigs (12..16) stay zero.
        header[16..20].copy_from_slice(&snaplen.to_le_bytes());
        header[20..24].copy_from_slice(&link_type.0.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter {
            out,
            resolution,
            snaplen,
            link_type,
            packets: 0,
        })
    }

    /// Appends one packet captured at `ts`.
    ///
    /// `data` is what was captured and `orig_len` the packet's length on the
    /// wire. At most `snaplen` bytes of `data` are stored; `orig_len` is
    /// stored as given, but never smaller than the captured length.
    ///
    /// Timestamps before 1970 or after 2106 cannot be represented in the file
    /// and are rejected with [`io::ErrorKind::InvalidInput`].
    pub fn write_packet(&mut self, ts: Timestamp, data: &[u8], orig_len: u32) -> io::Result<()> {
        let secs = u32::try_from(ts.secs()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("timestamp {ts} does not fit a pcap record (1970..2106)"),
            )
        })?;
        let frac = match self.resolution {
            Resolution::Micros => ts.subsec_nanos() / 1_000,
            Resolution::Nanos => ts.subsec_nanos(),
        };
        let caplen = data.len().min(self.snaplen as usize);
        // caplen <= snaplen, which is a u32.
        let caplen_u32 = caplen as u32;
        let orig_len = orig_len.max(caplen_u32);
        let mut rec = [0u8; RECORD_HEADER_LEN];
        rec[0..4].copy_from_slice(&secs.to_le_bytes());
        rec[4..8].copy_from_slice(&frac.to_le_bytes());
        rec[8..12].copy_from_slice(&caplen_u32.to_le_bytes());
        rec[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&data[..caplen])?;
        self.packets += 1;
        Ok(())
    }

    /// Number of packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The snapshot length stored in the header.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// The link type stored in the header.
    pub fn link_type(&self) -> LinkType {
        self.link_type
    }

    /// The timestamp resolution chosen at construction.
    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap_reader::PcapReader;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
    }

    #[test]
    fn global_header_fields_micros() {
        let w = PcapWriter::new(Vec::new(), Resolution::Micros, 1500, LinkType::ETHERNET).unwrap();
        let b = w.into_inner().unwrap();
        assert_eq!(b.len(), FILE_HEADER_LEN);
        assert_eq!(u32_at(&b, 0), 0xa1b2_c3d4);
        assert_eq!(u16_at(&b, 4), 2);
        assert_eq!(u16_at(&b, 6), 4);
        assert_eq!(u32_at(&b, 8), 0);
        assert_eq!(u32_at(&b, 12), 0);
        assert_eq!(u32_at(&b, 16), 1500);
        assert_eq!(u32_at(&b, 20), 1);
    }

    #[test]
    fn global_header_fields_nanos_and_link_type() {
        let w = PcapWriter::new(Vec::new(), Resolution::Nanos, 262_144, LinkType::RAW).unwrap();
        let b = w.into_inner().unwrap();
        assert_eq!(u32_at(&b, 0), 0xa1b2_3c4d);
        assert_eq!(u32_at(&b, 16), 262_144);
        assert_eq!(u32_at(&b, 20), 101);
    }

    #[test]
    fn zero_snaplen_is_stored_as_65535() {
        let w = PcapWriter::new(Vec::new(), Resolution::Micros, 0, LinkType::ETHERNET).unwrap();
        assert_eq!(w.snaplen(), 65_535);
        let b = w.into_inner().unwrap();
        assert_eq!(u32_at(&b, 16), 65_535);
    }

    #[test]
    fn record_header_micros_rounds_down_to_microseconds() {
        let mut w =
            PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
        let ts = Timestamp::from_nanos(1_772_438_400, 123_456_789);
        let data: Vec<u8> = (0..100u8).collect();
        w.write_packet(ts, &data, 100).unwrap();
        assert_eq!(w.packets(), 1);
        let b = w.into_inner().unwrap();
        let r = FILE_HEADER_LEN;
        assert_eq!(u32_at(&b, r), 1_772_438_400);
        assert_eq!(u32_at(&b, r + 4), 123_456);
        assert_eq!(u32_at(&b, r + 8), 100);
        assert_eq!(u32_at(&b, r + 12), 100);
        assert_eq!(&b[r + RECORD_HEADER_LEN..], &data[..]);
    }

    #[test]
    fn record_header_nanos_keeps_nanoseconds() {
        let mut w =
            PcapWriter::new(Vec::new(), Resolution::Nanos, 65535, LinkType::ETHERNET).unwrap();
        let ts = Timestamp::from_nanos(1_772_438_400, 123_456_789);
        w.write_packet(ts, &[1, 2, 3], 3).unwrap();
        let b = w.into_inner().unwrap();
        assert_eq!(u32_at(&b, FILE_HEADER_LEN + 4), 123_456_789);
    }

    #[test]
    fn packets_longer_than_snaplen_are_truncated_keeping_orig_len() {
        let mut w =
            PcapWriter::new(Vec::new(), Resolution::Micros, 64, LinkType::ETHERNET).unwrap();
        let data = vec![0xabu8; 1514];
        w.write_packet(Timestamp::from_micros(10, 0), &data, 1514)
            .unwrap();
        w.write_packet(Timestamp::from_micros(11, 5), &data[..40], 40)
            .unwrap();
        let b = w.into_inner().unwrap();
        let r1 = FILE_HEADER_LEN;
        assert_eq!(u32_at(&b, r1 + 8), 64);
        assert_eq!(u32_at(&b, r1 + 12), 1514);
        let r2 = r1 + RECORD_HEADER_LEN + 64;
        assert_eq!(u32_at(&b, r2), 11);
        assert_eq!(u32_at(&b, r2 + 4), 5);
        assert_eq!(u32_at(&b, r2 + 8), 40);
        assert_eq!(u32_at(&b, r2 + 12), 40);
        assert_eq!(b.len(), r2 + RECORD_HEADER_LEN + 40);
    }

    /// Regression: a snaplen of 1 MiB was stored as given and a
    /// 300000-byte packet written whole, which our own reader then refused
    /// ("captured length 300000 exceeds the limit of 262144").
    #[test]
    fn a_snaplen_over_max_caplen_is_capped_and_the_file_reads_back() {
        let mut w =
            PcapWriter::new(Vec::new(), Resolution::Micros, 1 << 20, LinkType::ETHERNET).unwrap();
        assert_eq!(w.snaplen(), MAX_CAPLEN);
        let data: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let ts = Timestamp::from_micros(1_772_438_400, 5);
        w.write_packet(ts, &data, 300_000).unwrap();
        let b = w.into_inner().unwrap();
        assert_eq!(u32_at(&b, 16), MAX_CAPLEN);
        let mut r = PcapReader::new(&b[..]).unwrap();
        assert_eq!(r.header().snaplen, MAX_CAPLEN);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.data, &data[..MAX_CAPLEN as usize]);
        assert_eq!((p.wire_len, p.clipped), (300_000, false));
        assert!(r.next_packet().unwrap().is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever the writer is given, the reader reads back what it
        /// stored: the first snaplen bytes, the wire length (never below
        /// them), the time at the file's resolution.
        #[test]
        fn what_the_writer_writes_the_reader_reads(
            snaplen in proptest::prop_oneof![0u32..2000, 0u32..=u32::MAX, 250_000u32..300_000],
            nanos in proptest::prelude::any::<bool>(),
            packets in proptest::collection::vec(
                (0usize..300_000, 0u32..400_000, 0u32..u32::MAX, 0u32..1_000_000_000),
                0..4,
            ),
        ) {
            let resolution = if nanos { Resolution::Nanos } else { Resolution::Micros };
            let mut w = PcapWriter::new(Vec::new(), resolution, snaplen, LinkType::RAW).unwrap();
            let stored = w.snaplen();
            let mut want = Vec::new();
            for (i, &(len, orig_len, secs, ns)) in packets.iter().enumerate() {
                let data: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
                let ts = Timestamp::from_nanos(i64::from(secs), ns);
                w.write_packet(ts, &data, orig_len).unwrap();
                let kept = len.min(stored as usize);
                let ns = if nanos { ns } else { ns / 1000 * 1000 };
                let wire = orig_len.max(kept as u32);
                want.push((Timestamp::from_nanos(i64::from(secs), ns), data[..kept].to_vec(), wire));
            }
            let bytes = w.into_inner().unwrap();
            let mut r = PcapReader::new(&bytes[..]).unwrap();
            proptest::prop_assert_eq!(r.header().snaplen, stored);
            proptest::prop_assert!(stored <= MAX_CAPLEN);
            for (ts, data, wire) in want {
                let p = r.next_packet().unwrap().unwrap();
                proptest::prop_assert_eq!((p.ts, p.data, p.wire_len, p.clipped), (ts, &data[..], wire, false));
            }
            proptest::prop_assert!(r.next_packet().unwrap().is_none());
        }
    }

    #[test]
    fn orig_len_is_never_below_caplen() {
        let mut w =
            PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
        w.write_packet(Timestamp::from_micros(1, 0), &[0; 60], 0)
            .unwrap();
        let b = w.into_inner().unwrap();
        assert_eq!(u32_at(&b, FILE_HEADER_LEN + 12), 60);
    }

    #[test]
    fn timestamps_outside_u32_seconds_are_rejected() {
        let mut w =
            PcapWriter::new(Vec::new(), Resolution::Micros, 65535, LinkType::ETHERNET).unwrap();
        let err = w
            .write_packet(Timestamp::from_micros(-1, 0), &[0; 4], 4)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(w.packets(), 0);
    }
}
