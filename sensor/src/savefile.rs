//! Writing packets to a classic pcap file (flowlib's
//! [`PcapWriter`], the libpcap "tcpdump"
//! format), so that Wireshark, tcpdump and every libpcap tool read the
//! result.
//!
//! The file keeps the input's link type and timestamps: nanosecond
//! resolution (magic `a1b23c4d`) when the input had it, else microseconds.
//! The header's snapshot length is libpcap's maximum, 262144 bytes (what
//! tcpdump writes): captured packets longer than 64 KiB (GSO / BIG TCP
//! captures reach 80 kB) are read back whole.
//!
//! Every write is checked: a full disk or any other write error ends the
//! extraction with an error naming the file, never a short file and exit 0.

use crate::error::SensorError;
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{LinkType, Timestamp};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The snapshot length in the header: libpcap's `MAXIMUM_SNAPLEN`, the
/// most any libpcap reader accepts.
const SNAPLEN: u32 = 262_144;

/// A pcap file being written.
pub struct PcapOut {
    path: PathBuf,
    writer: PcapWriter<BufWriter<File>>,
    link: LinkType,
    packets: u64,
}

impl PcapOut {
    /// Creates (or truncates) `path` for packets of link type `link`, with
    /// nanosecond timestamps if `nanos`.
    pub fn create(path: &Path, link: LinkType, nanos: bool) -> Result<PcapOut, SensorError> {
        let resolution = if nanos {
            Resolution::Nanos
        } else {
            Resolution::Micros
        };
        let writer = File::create(path)
            .and_then(|f| PcapWriter::new(BufWriter::new(f), resolution, SNAPLEN, link))
            .map_err(|e| SensorError::write_file(path, &e))?;
        Ok(PcapOut {
            path: path.to_owned(),
            writer,
            link,
            packets: 0,
        })
    }

    /// The link type every packet of this file has.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Appends one packet: its capture time, captured bytes and length on
    /// the wire, unchanged.
    pub fn write(&mut self, ts: Timestamp, data: &[u8], wire_len: u32) -> Result<(), SensorError> {
        self.writer
            .write_packet(ts, data, wire_len)
            .map_err(|e| SensorError::write_file(&self.path, &e))?;
        self.packets += 1;
        Ok(())
    }

    /// Flushes and closes the file (its data reaches the disk); returns the
    /// packets written.
    pub fn finish(self) -> Result<u64, SensorError> {
        let path = self.path;
        let mut out = self
            .writer
            .into_inner()
            .map_err(|e| SensorError::write_file(&path, &e))?;
        out.flush()
            .map_err(|e| SensorError::write_file(&path, &e))?;
        let file = out
            .into_inner()
            .map_err(|e| SensorError::write_file(&path, e.error()))?;
        // A regular file's data is on the disk before we say it is written
        // (a device such as /dev/null has nothing to sync).
        if file.metadata().is_ok_and(|m| m.is_file()) {
            file.sync_all()
                .map_err(|e| SensorError::write_file(&path, &e))?;
        }
        Ok(self.packets)
    }
}

/// Removes a partly written output after a failure, if it is a regular
/// file (never a device such as /dev/null or /dev/full).
pub fn remove_partial(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file()) {
        let _ = std::fs::remove_file(path);
    }
}
