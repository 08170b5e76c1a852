//! Writing packets to a classic pcap file with libpcap's savefile writer
//! (`pcap_dump`), so that Wireshark, tcpdump and every libpcap tool read
//! the result.
//!
//! The file keeps the input's link type and timestamps: nanosecond
//! resolution (magic `a1b23c4d`) when the input had it, else microseconds.
//! libpcap's dead handle stamps the header with a snapshot length of 65535;
//! a captured packet longer than that (GSO / BIG TCP captures reach 80 kB)
//! would be cut back to 65535 bytes by libpcap when reading the file, so
//! after closing, the header's snapshot length is raised to the longest
//! packet written.

use crate::error::SensorError;
use flowlib::{LinkType, Timestamp};
use pcap::{Capture, Linktype, Packet, PacketHeader, Precision, Savefile};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The snapshot length libpcap's dead handle writes in the header.
const DEAD_SNAPLEN: u32 = 65535;

/// A pcap file being written.
pub struct PcapOut {
    path: PathBuf,
    savefile: Savefile,
    link: LinkType,
    nanos: bool,
    packets: u64,
    longest: u32,
}

impl PcapOut {
    /// Creates (or truncates) `path` for packets of link type `link`, with
    /// nanosecond timestamps if `nanos`.
    pub fn create(path: &Path, link: LinkType, nanos: bool) -> Result<PcapOut, SensorError> {
        let err = |message: String| SensorError::WriteFile {
            path: path.to_owned(),
            message,
        };
        if path.to_str().is_none() {
            // libpcap takes a C string; the pcap crate needs UTF-8 for it.
            return Err(err("the path is not valid UTF-8".into()));
        }
        // LINKTYPE_RAW (101) is DLT_RAW (12) to libpcap, which writes it
        // back as 101; every other link type we decode has DLT = LINKTYPE.
        let dlt = if link == LinkType::RAW {
            12
        } else {
            link.0 as i32
        };
        let precision = if nanos {
            Precision::Nano
        } else {
            Precision::Micro
        };
        let dead = Capture::dead_with_precision(Linktype(dlt), precision)
            .map_err(|e| err(e.to_string()))?;
        let savefile = dead.savefile(path).map_err(|e| err(e.to_string()))?;
        Ok(PcapOut {
            path: path.to_owned(),
            savefile,
            link,
            nanos,
            packets: 0,
            longest: 0,
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
    pub fn write(&mut self, ts: Timestamp, data: &[u8], wire_len: u32) {
        let frac = if self.nanos {
            ts.subsec_nanos()
        } else {
            ts.subsec_nanos() / 1000
        };
        let header = PacketHeader {
            ts: libc::timeval {
                tv_sec: ts.secs() as libc::time_t,
                tv_usec: frac as libc::suseconds_t,
            },
            caplen: data.len() as u32,
            len: wire_len.max(data.len() as u32),
        };
        self.savefile.write(&Packet::new(&header, data));
        self.packets += 1;
        self.longest = self.longest.max(data.len() as u32);
    }

    /// Flushes and closes the file; returns the packets written.
    pub fn finish(mut self) -> Result<u64, SensorError> {
        let err = |message: String| SensorError::WriteFile {
            path: self.path.clone(),
            message,
        };
        self.savefile.flush().map_err(|e| err(e.to_string()))?;
        let (path, packets, longest) = (self.path.clone(), self.packets, self.longest);
        drop(self.savefile); // pcap_dump_close
        if longest > DEAD_SNAPLEN {
            raise_snaplen(&path, longest).map_err(|e| SensorError::WriteFile {
                path: path.clone(),
                message: format!("cannot set the snapshot length: {e}"),
            })?;
        }
        Ok(packets)
    }
}

/// Sets the snapshot length in a pcap file header (bytes 16..20, in the
/// byte order the magic number shows).
fn raise_snaplen(path: &Path, snaplen: u32) -> std::io::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)?;
    let bytes = match u32::from_le_bytes(magic) {
        0xa1b2_c3d4 | 0xa1b2_3c4d => snaplen.to_le_bytes(),
        _ => snaplen.to_be_bytes(),
    };
    f.seek(SeekFrom::Start(16))?;
    f.write_all(&bytes)?;
    f.sync_data()
}
