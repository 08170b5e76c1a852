//! Several capture files read as one timeline: packets merged by capture
//! time, ties to the earlier file. The common case, one file, hands packets
//! straight from the reader's buffer; several files cost one copy per packet
//! (into recycled buffers).

use crate::error::SensorError;
use crate::pipeline::Packet;
use crate::progress::{Progress, UPDATE_EVERY};
use crate::source::CaptureFile;
use flowlib::{LinkType, Timestamp};
use std::ops::ControlFlow;
use std::path::PathBuf;

/// Open capture files, read as one timeline.
pub struct Timeline {
    files: Vec<CaptureFile>,
}

/// One file's next packet, copied out of its reader so files can be merged.
struct Pending {
    ts: Timestamp,
    wire_len: u32,
    link: LinkType,
    data: Vec<u8>,
}

impl Timeline {
    /// Opens every file (all before reading any), with an optional BPF
    /// filter.
    pub fn open(paths: &[PathBuf], bpf: Option<&str>) -> Result<Timeline, SensorError> {
        let files = paths
            .iter()
            .map(|p| CaptureFile::open(p, bpf))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Timeline { files })
    }

    /// The open files.
    pub fn files(&self) -> &[CaptureFile] {
        &self.files
    }

    /// Whether every file can be opened and read again (a file on disk,
    /// not standard input or a pipe).
    pub fn rereadable(&self) -> bool {
        self.files.iter().all(CaptureFile::rereadable)
    }

    /// Total size of the files in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size()).sum()
    }

    /// Bytes consumed so far over all files.
    pub fn position(&self) -> u64 {
        self.files.iter().map(|f| f.position()).sum()
    }

    /// Hands every selected packet to `f` in capture-time order until the
    /// files end or `f` breaks, updating `progress` as it goes. A read
    /// error ends that file (the others go on); every file's error is
    /// returned ([`SensorError::of_inputs`]).
    pub fn for_each<F>(&mut self, progress: &Progress, mut f: F) -> Option<SensorError>
    where
        F: FnMut(Packet<'_>) -> ControlFlow<()>,
    {
        let result = if let [file] = self.files.as_mut_slice() {
            one(file, progress, &mut f)
        } else {
            merged(&mut self.files, progress, &mut f)
        };
        progress.update(self.read(), self.position());
        result
    }

    /// Records read so far over all files (including filtered-out ones).
    pub fn read(&self) -> u64 {
        self.files.iter().map(|f| f.records()).sum()
    }

    /// Records read so far that the BPF filter left out.
    pub fn left_out(&self) -> u64 {
        self.files.iter().map(|f| f.left_out()).sum()
    }
}

/// One file: packets go from the reader's buffer straight to `f`.
fn one<F>(file: &mut CaptureFile, progress: &Progress, f: &mut F) -> Option<SensorError>
where
    F: FnMut(Packet<'_>) -> ControlFlow<()>,
{
    let mut since_progress = 0u32;
    loop {
        match file.next_packet() {
            Ok(Some(p)) => {
                if p.selected {
                    let packet = Packet {
                        ts: p.ts,
                        data: p.data,
                        wire_len: p.wire_len,
                        link: p.link,
                    };
                    if f(packet).is_break() {
                        return None;
                    }
                }
            }
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
        since_progress += 1;
        if since_progress == UPDATE_EVERY {
            since_progress = 0;
            progress.update(file.records(), file.position());
        }
    }
}

/// Several files, merged by capture time.
fn merged<F>(files: &mut [CaptureFile], progress: &Progress, f: &mut F) -> Option<SensorError>
where
    F: FnMut(Packet<'_>) -> ControlFlow<()>,
{
    let mut input_errors = Vec::new();
    let mut since_progress = 0u32;
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut pending: Vec<Option<Pending>> = Vec::with_capacity(files.len());
    for i in 0..files.len() {
        let p = fetch(files, i, &mut spare, &mut input_errors);
        pending.push(p);
    }
    loop {
        // Earliest pending packet; ties go to the earlier file.
        let next = pending
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (p.ts, i)))
            .min();
        let Some((_, i)) = next else { break };
        let Some(p) = pending[i].take() else { break };
        let packet = Packet {
            ts: p.ts,
            data: &p.data,
            wire_len: p.wire_len,
            link: p.link,
        };
        if f(packet).is_break() {
            break;
        }
        spare.push(p.data);
        pending[i] = fetch(files, i, &mut spare, &mut input_errors);
        since_progress += 1;
        if since_progress == UPDATE_EVERY {
            since_progress = 0;
            progress.update(
                files.iter().map(|f| f.records()).sum(),
                files.iter().map(|f| f.position()).sum(),
            );
        }
    }
    SensorError::of_inputs(input_errors)
}

/// Reads file `i`'s next selected packet into a recycled buffer. A read
/// error ends that file and joins `input_errors`.
fn fetch(
    files: &mut [CaptureFile],
    i: usize,
    spare: &mut Vec<Vec<u8>>,
    input_errors: &mut Vec<SensorError>,
) -> Option<Pending> {
    loop {
        match files[i].next_packet() {
            Ok(Some(p)) if !p.selected => continue,
            Ok(Some(p)) => {
                let mut data = spare.pop().unwrap_or_default();
                data.clear();
                data.extend_from_slice(p.data);
                return Some(Pending {
                    ts: p.ts,
                    wire_len: p.wire_len,
                    link: p.link,
                    data,
                });
            }
            Ok(None) => return None,
            Err(e) => {
                input_errors.push(e);
                return None;
            }
        }
    }
}
