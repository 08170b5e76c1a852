//! Capture files (pcap and pcapng), with the record index and, for classic
//! pcap, the byte offset of every record, so a truncated or corrupt file is
//! reported precisely.
//!
//! Classic pcap is read by flowlib's own [`PcapReader`] (large reads into one
//! buffer, packets borrowed from it: about a third of libpcap's cost per
//! packet); pcapng by libpcap when it accepts the file, else by flowlib's
//! [`PcapNgReader`]. BPF filters are always compiled and run by libpcap.

use crate::error::SensorError;
use flowlib::pcap_reader::{PcapError, PcapReader};
use flowlib::pcapng::{PcapNgError, PcapNgReader};
use flowlib::{LinkType, Timestamp};
use pcap::{Capture, Linktype, Offline, Precision};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// The container format of a capture file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Classic libpcap format (micro- or nanosecond).
    Pcap,
    /// pcapng.
    PcapNg,
}

/// One packet as read from a file: borrowed from the reader's buffer.
#[derive(Copy, Clone, Debug)]
pub struct RawPacket<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire.
    pub wire_len: u32,
    /// Link type of the interface it was captured on.
    pub link: LinkType,
    /// The packet matches the BPF filter (always true without one).
    pub selected: bool,
}

/// Bytes of a capture: a file, or a stream (standard input, a FIFO).
type Input = Box<dyn Read + Send>;

/// How a file is read.
enum Backend {
    /// flowlib's classic pcap reader.
    Pcap(PcapReader<Input>),
    /// libpcap: pcapng files libpcap accepts.
    Libpcap(Capture<Offline>),
    /// flowlib's own pcapng reader, for pcapng files libpcap refuses
    /// (libpcap 1.10 requires every interface to share one link type and
    /// snapshot length).
    PcapNg(PcapNgReader<BufReader<Input>>),
}

/// An open capture file.
pub struct CaptureFile {
    path: PathBuf,
    backend: Backend,
    /// BPF programs compiled per link type (pcapng files may mix them).
    bpf: Option<String>,
    link: LinkType,
    format: FileFormat,
    filter: Option<pcap::BpfProgram>,
    records: u64,
    /// Records the BPF filter left out.
    left_out: u64,
    offset: u64,
    size: u64,
    /// The current packet when libpcap read it (copied out of libpcap's
    /// buffer, so that a failure mid-file can switch readers).
    scratch: Vec<u8>,
}

/// The path that names standard input.
pub const STDIN: &str = "-";

impl CaptureFile {
    /// Opens `path`; with `bpf`, only matching packets are returned (records
    /// are still counted, so reported positions stay exact). `-` is standard
    /// input; it, FIFOs and other files that are not regular files are read
    /// once, front to back, by flowlib's readers (libpcap is not involved).
    pub fn open(path: &Path, bpf: Option<&str>) -> Result<CaptureFile, SensorError> {
        let open_err = |message: String| SensorError::Open {
            path: path.to_owned(),
            message,
        };
        let mut magic = [0u8; 4];
        let stdin = path.as_os_str() == STDIN;
        let meta = std::fs::metadata(path).ok().filter(|_| !stdin);
        let regular = meta.as_ref().is_some_and(|m| m.is_file());
        let size = meta.map_or(0, |m| if m.is_file() { m.len() } else { 0 });
        // A stream (standard input, a FIFO) is read only when readable, so
        // that a stop request ends a wait for a quiet writer
        // (`crate::stream`).
        let mut f: Input = if stdin {
            Box::new(crate::stream::StreamInput::stdin().map_err(|e| open_err(e.to_string()))?)
        } else {
            let file = File::open(path).map_err(|e| open_err(e.to_string()))?;
            if regular {
                Box::new(file)
            } else {
                Box::new(crate::stream::StreamInput::new(file))
            }
        };
        f.read_exact(&mut magic).map_err(|e| {
            open_err(match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "file is too short to be a capture".into(),
                // e.g. a directory: "Is a directory (os error 21)".
                _ => e.to_string(),
            })
        })?;
        let format = match u32::from_le_bytes(magic) {
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => FileFormat::Pcap,
            0x0a0d_0d0a => FileFormat::PcapNg,
            _ => return Err(open_err("not a pcap or pcapng file".into())),
        };
        if !regular {
            // A stream cannot be reopened: put the magic back in front.
            let stream: Input = Box::new(std::io::Cursor::new(magic).chain(f));
            return match format {
                FileFormat::Pcap => Self::pcap_from(path, stream, bpf, 0),
                FileFormat::PcapNg => Self::pcapng_from(path, stream, bpf, 0),
            };
        }
        if format == FileFormat::Pcap {
            return Self::open_pcap(path, bpf, size);
        }
        let cap = match Capture::from_file_with_precision(path, Precision::Nano) {
            Ok(cap) => cap,
            Err(_) if format == FileFormat::PcapNg => return Self::open_pcapng(path, bpf, size),
            Err(e) => return Err(open_err(e.to_string())),
        };
        let link = LinkType::from_dlt(cap.get_datalink().0 as u32);
        if !link.is_supported() {
            return Err(unsupported_link(path, link));
        }
        let filter = match bpf {
            Some(expr) => Some(cap.compile(expr, true).map_err(|e| SensorError::Filter {
                expr: expr.to_owned(),
                message: e.to_string(),
            })?),
            None => None,
        };
        let mut file = CaptureFile {
            path: path.to_owned(),
            backend: Backend::Libpcap(cap),
            bpf: bpf.map(str::to_owned),
            link,
            format,
            filter,
            records: 0,
            left_out: 0,
            offset: 0,
            size,
            scratch: Vec::new(),
        };
        // libpcap reads pcapng interface blocks lazily and refuses mixed
        // interfaces only at the first packet: probe, then reopen.
        if let Backend::Libpcap(cap) = &mut file.backend {
            if let Err(e) = cap.next_packet() {
                if e != pcap::Error::NoMorePackets {
                    tracing::debug!(
                        "libpcap refused {}: {e}; using flowlib's pcapng reader",
                        path.display()
                    );
                    return Self::open_pcapng(path, bpf, size);
                }
            }
        }
        let cap = Capture::from_file_with_precision(path, Precision::Nano)
            .map_err(|e| open_err(e.to_string()))?;
        file.backend = Backend::Libpcap(cap);
        Ok(file)
    }

    fn open_pcap(path: &Path, bpf: Option<&str>, size: u64) -> Result<CaptureFile, SensorError> {
        let f = File::open(path).map_err(|e| SensorError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::pcap_from(path, Box::new(f), bpf, size)
    }

    fn pcap_from(
        path: &Path,
        input: Input,
        bpf: Option<&str>,
        size: u64,
    ) -> Result<CaptureFile, SensorError> {
        let open_err = |message: String| SensorError::Open {
            path: path.to_owned(),
            message,
        };
        let reader = PcapReader::new(input).map_err(|e| open_err(e.to_string()))?;
        let link = reader.header().link;
        if !link.is_supported() {
            return Err(unsupported_link(path, link));
        }
        let filter = match bpf {
            Some(expr) => Some(compile_for(link, expr)?),
            None => None,
        };
        Ok(CaptureFile {
            path: path.to_owned(),
            backend: Backend::Pcap(reader),
            bpf: bpf.map(str::to_owned),
            link,
            format: FileFormat::Pcap,
            filter,
            records: 0,
            left_out: 0,
            offset: 0,
            size,
            scratch: Vec::new(),
        })
    }

    fn open_pcapng(path: &Path, bpf: Option<&str>, size: u64) -> Result<CaptureFile, SensorError> {
        let f = File::open(path).map_err(|e| SensorError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::pcapng_from(path, Box::new(f), bpf, size)
    }

    fn pcapng_from(
        path: &Path,
        f: Input,
        bpf: Option<&str>,
        size: u64,
    ) -> Result<CaptureFile, SensorError> {
        if let Some(expr) = bpf {
            // Validate the expression up front, against Ethernet; each
            // interface's link type is checked at its first packet.
            compile_check(LinkType::ETHERNET, expr)?;
        }
        Ok(CaptureFile {
            path: path.to_owned(),
            backend: Backend::PcapNg(PcapNgReader::new(BufReader::with_capacity(1 << 16, f))),
            bpf: bpf.map(str::to_owned),
            link: LinkType::ETHERNET,
            format: FileFormat::PcapNg,
            filter: None,
            records: 0,
            left_out: 0,
            offset: 0,
            size,
            scratch: Vec::new(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The file's format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// Whether timestamps have nanosecond resolution (nanosecond pcap, and
    /// pcapng, whose interfaces may declare any resolution).
    pub fn nanosecond(&self) -> bool {
        match &self.backend {
            Backend::Pcap(reader) => reader.header().nanos,
            Backend::Libpcap(_) | Backend::PcapNg(_) => true,
        }
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes consumed so far (exact for pcap, estimated for pcapng).
    pub fn position(&self) -> u64 {
        match &self.backend {
            Backend::Pcap(reader) => reader.offset(),
            _ => self.offset,
        }
        .min(self.size)
    }

    /// Records read so far (including filtered-out ones).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Whether the file can be opened and read again (a file on disk, not
    /// standard input or a pipe).
    pub fn rereadable(&self) -> bool {
        self.path.as_os_str() != STDIN && std::fs::metadata(&self.path).is_ok_and(|m| m.is_file())
    }

    /// Records read so far that the BPF filter left out.
    pub fn left_out(&self) -> u64 {
        self.left_out
    }

    /// The next record; `Ok(None)` at the end of the file. Records that
    /// fail the BPF filter are returned too, with `selected` false, so that
    /// record positions stay exact.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, SensorError> {
        if matches!(self.backend, Backend::Libpcap(_)) {
            return self.next_libpcap();
        }
        match &mut self.backend {
            Backend::Pcap(reader) => match reader.next_packet() {
                Ok(Some(p)) => {
                    self.records = p.record;
                    let selected = self.filter.as_ref().is_none_or(|f| f.filter(p.data));
                    self.left_out += u64::from(!selected);
                    Ok(Some(RawPacket {
                        ts: p.ts,
                        data: p.data,
                        wire_len: p.wire_len,
                        link: self.link,
                        selected,
                    }))
                }
                Ok(None) => Ok(None),
                // A stop request while waiting for a stream: its end.
                Err(PcapError::Io { ref source, .. }) if crate::stream::is_stopped(source) => {
                    Ok(None)
                }
                Err(e) => Err(SensorError::Truncated {
                    path: self.path.clone(),
                    record: e.record().unwrap_or(self.records + 1),
                    offset: e.offset(),
                    message: match e {
                        PcapError::Truncated { needed, got, .. } => {
                            format!("the file ends inside this record ({got} of its {needed} bytes are there)")
                        }
                        PcapError::CorruptRecord { caplen, limit, .. } => format!(
                            "corrupt record header: captured length {caplen} is over the limit of {limit}"
                        ),
                        PcapError::Io { source, .. } => format!("read error: {source}"),
                        PcapError::BadFileHeader { reason } => reason.to_owned(),
                    },
                }),
            },
            Backend::Libpcap(_) => unreachable!("handled above"),
            Backend::PcapNg(reader) => {
                let records = self.records;
                let before = reader.offset();
                match reader.next_packet() {
                    Ok(Some(p)) => {
                        self.records += 1;
                        // Enhanced packet block overhead: 32 bytes, data padded to 4.
                        self.offset = before + 32 + p.data.len().div_ceil(4) as u64 * 4;
                        if !p.link.is_supported() {
                            return Err(SensorError::UnsupportedLink {
                                path: self.path.clone(),
                                link: p.link.to_string(),
                            });
                        }
                        let selected = match &self.bpf {
                            Some(expr) => {
                                if self.filter.is_none() || self.link != p.link {
                                    self.filter = Some(compile_for(p.link, expr)?);
                                    self.link = p.link;
                                }
                                self.filter.as_ref().is_none_or(|f| f.filter(p.data))
                            }
                            None => true,
                        };
                        self.left_out += u64::from(!selected);
                        Ok(Some(RawPacket {
                            ts: p.ts,
                            data: p.data,
                            wire_len: p.wire_len,
                            link: p.link,
                            selected,
                        }))
                    }
                    Ok(None) => Ok(None),
                    Err(PcapNgError::Io { ref source, .. })
                        if crate::stream::is_stopped(source) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(SensorError::Truncated {
                        path: self.path.clone(),
                        record: records + 1,
                        offset: match e {
                            PcapNgError::Truncated { offset, .. }
                            | PcapNgError::Malformed { offset, .. } => Some(offset),
                            PcapNgError::Io { offset, .. } => Some(offset),
                        },
                        message: e.to_string(),
                    }),
                }
            }
        }
    }
}

impl CaptureFile {
    /// [`CaptureFile::next_packet`] for a file libpcap reads. If libpcap
    /// fails inside a pcapng file (a later section or interface it does not
    /// support, a damaged block), the file is reopened with flowlib's
    /// pcapng reader, which skips the packets already read and goes on, or
    /// reports the damage with its block and byte offset.
    fn next_libpcap(&mut self) -> Result<Option<RawPacket<'_>>, SensorError> {
        let Backend::Libpcap(cap) = &mut self.backend else {
            unreachable!("called for libpcap files only");
        };
        let failure = match cap.next_packet() {
            Ok(p) => {
                self.records += 1;
                // Estimated: an enhanced packet block per packet.
                self.offset += 32 + u64::from(p.header.caplen).div_ceil(4) * 4;
                self.scratch.clear();
                self.scratch.extend_from_slice(p.data);
                let tv = p.header.ts;
                // With nanosecond precision, tv_usec holds nanoseconds.
                let ts = Timestamp::from_nanos(tv.tv_sec, tv.tv_usec.clamp(0, 999_999_999) as u32);
                let wire_len = p.header.len;
                let selected = self.filter.as_ref().is_none_or(|f| f.filter(&self.scratch));
                self.left_out += u64::from(!selected);
                return Ok(Some(RawPacket {
                    ts,
                    data: &self.scratch,
                    wire_len,
                    link: self.link,
                    selected,
                }));
            }
            Err(pcap::Error::NoMorePackets) => return Ok(None),
            Err(e) => e,
        };
        if self.format == FileFormat::PcapNg {
            tracing::debug!(
                "libpcap failed in {} after {} packets: {failure}; using flowlib's pcapng reader",
                self.path.display(),
                self.records
            );
            let f = File::open(&self.path).map_err(|e| SensorError::Open {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
            let input: Input = Box::new(f);
            let mut reader = PcapNgReader::new(BufReader::with_capacity(1 << 16, input));
            let mut skipped = 0;
            while skipped < self.records {
                match reader.next_packet() {
                    Ok(Some(_)) => skipped += 1,
                    // Our reader disagrees about what came before: report
                    // libpcap's failure.
                    _ => break,
                }
            }
            if skipped == self.records {
                self.offset = reader.offset();
                self.backend = Backend::PcapNg(reader);
                return self.next_packet();
            }
        }
        Err(SensorError::Truncated {
            path: self.path.clone(),
            record: self.records + 1,
            offset: None,
            message: failure.to_string(),
        })
    }
}

/// The error for a capture whose link type we do not decode, naming it.
fn unsupported_link(path: &Path, link: LinkType) -> SensorError {
    let name = Linktype(link.0 as i32)
        .get_name()
        .map(|n| format!("{n} ({})", link.0))
        .unwrap_or_else(|_| link.to_string());
    SensorError::UnsupportedLink {
        path: path.to_owned(),
        link: name,
    }
}

/// Checks that `expr` compiles for a live capture on link type `link`.
pub fn compile_check(link: LinkType, expr: &str) -> Result<(), SensorError> {
    compile_dead(link, expr).map(|_| ())
}

/// Compiles `expr` for the packets of a capture file of link type `link`.
fn compile_for(link: LinkType, expr: &str) -> Result<pcap::BpfProgram, SensorError> {
    let program = compile_dead(link, expr)?;
    if reads_socket_metadata(&program) {
        // libpcap compiles these for a live Linux socket; on a file's
        // packets the program would match nothing (tcpdump -r refuses).
        return Err(SensorError::Filter {
            expr: expr.to_owned(),
            message: format!(
                "it reads what only a live capture knows (direction, interface, offloaded \
                 VLAN tag), which capture files of link type {link} do not have"
            ),
        });
    }
    Ok(program)
}

/// Compiles `expr` for link type `link`, as libpcap would for a live
/// capture.
fn compile_dead(link: LinkType, expr: &str) -> Result<pcap::BpfProgram, SensorError> {
    let dlt = if link == LinkType::RAW {
        12
    } else {
        link.0 as i32
    };
    let dead = Capture::dead(Linktype(dlt)).map_err(|e| SensorError::Filter {
        expr: expr.to_owned(),
        message: e.to_string(),
    })?;
    dead.compile(expr, true).map_err(|e| SensorError::Filter {
        expr: expr.to_owned(),
        message: e.to_string(),
    })
}

/// Linux's ancillary data area (`SKF_AD_OFF`, -0x1000): a BPF load from
/// an offset here reads the socket's metadata about the packet.
const SKF_AD_OFF: u32 = 0xffff_f000;

/// Whether `program` loads socket metadata (`inbound`, `ifindex`, ...).
fn reads_socket_metadata(program: &pcap::BpfProgram) -> bool {
    program.get_instructions().iter().any(|insn| {
        // The pcap crate shows an instruction as "code jt jf k".
        let text = insn.to_string();
        let fields: Vec<u32> = text.split(' ').filter_map(|f| f.parse().ok()).collect();
        let [code, _, _, k] = fields[..] else {
            return false;
        };
        let (class, mode) = (code & 0x07, code & 0xe0);
        // BPF_LD or BPF_LDX, BPF_ABS, at an ancillary offset.
        class <= 0x01 && mode == 0x20 && k >= SKF_AD_OFF
    })
}
