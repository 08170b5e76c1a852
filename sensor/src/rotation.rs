//! Output files that log shippers can follow: written in batches, rotated by
//! size and/or capture time, closed files renamed and never overwritten.
//!
//! Naming: the file being written keeps the name given (`conn.json`). A
//! closed file is renamed `<name>.<stamp>.<n>`, where `<stamp>` is the
//! capture time (UTC, `YYYYMMDDTHHMMSSZ`) its period starts at — the
//! interval boundary with `--rotate-interval`, else the time of its first
//! entry — and `<n>` is the smallest number from 1 whose name is free.
//! Entries are not always written in capture-time order (a deduplicated
//! alert's final count carries the time the alert was raised), so a stamp
//! earlier than that of the file closed before it in the same run is
//! raised to that stamp, and a stamp equal to it takes a number above the
//! earlier file's. The closed name is made with a hard link, which fails
//! rather than replace an existing file, then the active name is removed:
//! no file is ever overwritten. Sorting the closed names of a run by
//! stamp, then by number, gives the order they were written in.
//!
//! Durability: the caller flushes at batch boundaries ([`LogFile::commit`]),
//! so a crash of the process loses at most the batch being written; a file
//! is flushed and fsynced before it is renamed. At the end of a run with
//! rotation the last file is closed the same way, so every complete file
//! has a closed name; a file left under the active name by a crash is moved
//! aside (named from its modification time) rather than truncated when the
//! next run starts.

use chrono::DateTime;
use flowlib::Timestamp;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// When to close the current file and start a new one.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Close a file once it holds at least this many bytes.
    pub max_bytes: Option<u64>,
    /// Close a file when an entry's capture time enters the next interval
    /// (intervals are aligned to multiples of this length since the epoch).
    pub interval: Option<Duration>,
}

impl Rotation {
    /// Whether files are rotated at all.
    pub fn enabled(&self) -> bool {
        self.max_bytes.is_some() || self.interval.is_some()
    }

    /// Start of the interval `t` falls in, in nanoseconds.
    fn period(&self, t: Timestamp) -> Option<i64> {
        let len = i64::try_from(self.interval?.as_nanos()).ok()?.max(1);
        Some(t.0.div_euclid(len) * len)
    }
}

/// One output file, maybe rotated. Entries are written through
/// [`Write`]; [`LogFile::before_entry`] rotates when the next entry is due
/// in a new file.
pub struct LogFile {
    path: PathBuf,
    rotation: Rotation,
    out: Option<BufWriter<File>>,
    regular: bool,
    bytes: u64,
    /// Capture time the current file's period starts at.
    stamp: Option<Timestamp>,
    /// Stamp (whole seconds) and number of the file this run closed last:
    /// the next closed name sorts after it.
    last: Option<(i64, u32)>,
    /// Files closed so far (their names are not kept: a run may rotate
    /// millions of times).
    closed: u64,
}

impl LogFile {
    /// Creates (truncates) `path`. With rotation, a non-empty file already
    /// there (left by a crash) is first moved aside under a closed name.
    pub fn create(path: &Path, rotation: Rotation) -> io::Result<LogFile> {
        let mut closed = 0;
        if rotation.enabled() {
            if let Ok(meta) = fs::metadata(path) {
                if !meta.is_file() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "{} is not a regular file; rotation renames files",
                            path.display()
                        ),
                    ));
                }
                if meta.len() > 0 {
                    let mtime = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(Timestamp(0), |d| {
                            Timestamp::from_nanos(d.as_secs() as i64, d.subsec_nanos())
                        });
                    move_aside(path, mtime, 1)?;
                    closed += 1;
                }
            }
        }
        let file = File::create(path)?;
        let regular = file.metadata().map(|m| m.is_file()).unwrap_or(false);
        Ok(LogFile {
            path: path.to_owned(),
            rotation,
            out: Some(BufWriter::with_capacity(1 << 16, file)),
            regular,
            bytes: 0,
            stamp: None,
            last: None,
            closed,
        })
    }

    /// Whether an entry due at capture time `t` belongs in a new file: the
    /// current one reached the size limit, or `t` is in a later interval.
    /// An empty file is never rotated.
    pub fn due(&self, t: Timestamp) -> bool {
        if self.bytes == 0 {
            return false;
        }
        let full = self.rotation.max_bytes.is_some_and(|max| self.bytes >= max);
        let later = match (self.rotation.period(t), self.stamp) {
            (Some(now), Some(start)) => now > start.0,
            _ => false,
        };
        full || later
    }

    /// Notes the capture time of the entry about to be written (the first
    /// one names the file when it is closed, unless the file closed before
    /// it has a later stamp).
    pub fn begin_entry(&mut self, t: Timestamp) {
        if self.stamp.is_none() {
            self.stamp = Some(self.rotation.period(t).map_or(t, Timestamp));
        }
    }

    /// Closes the current file (flush, fsync, closed name) and starts a new
    /// one under the active name.
    pub fn rotate(&mut self) -> io::Result<()> {
        self.close_current()?;
        self.open_next()
    }

    /// [`LogFile::due`], [`LogFile::rotate`] when it is, then
    /// [`LogFile::begin_entry`]. Returns whether it rotated.
    pub fn before_entry(&mut self, t: Timestamp) -> io::Result<bool> {
        let rotate = self.due(t);
        if rotate {
            self.rotate()?;
        }
        self.begin_entry(t);
        Ok(rotate)
    }

    /// Hands everything written so far to the kernel (a batch boundary).
    pub fn commit(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    /// Ends the file: flushes and fsyncs it and, with rotation, gives it its
    /// closed name (an empty file is removed instead).
    pub fn finish(&mut self) -> io::Result<()> {
        if self.rotation.enabled() {
            if self.bytes == 0 {
                self.out = None;
                return fs::remove_file(&self.path);
            }
            self.close_current()
        } else {
            self.sync()
        }
    }

    /// How many files were closed so far (a file left by a crash and
    /// moved aside included).
    pub fn closed(&self) -> u64 {
        self.closed
    }

    /// Bytes in the current file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes written to the file's buffer and not yet handed to the kernel.
    pub fn buffered(&self) -> usize {
        self.out.as_ref().map_or(0, |o| o.buffer().len())
    }

    fn sync(&mut self) -> io::Result<()> {
        if let Some(out) = &mut self.out {
            out.flush()?;
            if self.regular {
                out.get_ref().sync_all()?;
            }
        }
        Ok(())
    }

    /// Flush, fsync, rename to the closed name: the stamp of the first
    /// entry, never earlier than the last closed file's, and a number above
    /// that file's when the stamps are the same.
    fn close_current(&mut self) -> io::Result<()> {
        self.sync()?;
        self.out = None;
        let mut stamp = self.stamp.take().unwrap_or_default();
        let mut first = 1;
        if let Some((secs, n)) = self.last {
            if stamp.secs() <= secs {
                stamp = Timestamp::from_nanos(secs, 0);
                first = n.saturating_add(1);
            }
        }
        let (_, n) = move_aside(&self.path, stamp, first)?;
        self.last = Some((stamp.secs(), n));
        self.closed += 1;
        Ok(())
    }

    fn open_next(&mut self) -> io::Result<()> {
        let file = File::create(&self.path)?;
        self.out = Some(BufWriter::with_capacity(1 << 16, file));
        self.bytes = 0;
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| io::Error::other("output file already closed"))?;
        let n = out.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.commit()
    }
}

/// `YYYYMMDDTHHMMSSZ` of a capture time.
pub fn stamp(t: Timestamp) -> String {
    DateTime::from_timestamp(t.secs(), 0)
        .map(|d| d.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|| "19700101T000000Z".to_owned())
}

/// Gives `path` the first free closed name for `t` numbered from `first`;
/// returns it and its number. Hard link, then unlink: an existing name is
/// never replaced.
fn move_aside(path: &Path, t: Timestamp, first: u32) -> io::Result<(PathBuf, u32)> {
    let base = format!("{}.{}", path.display(), stamp(t));
    for n in first.. {
        let target = PathBuf::from(format!("{base}.{n}"));
        match fs::hard_link(path, &target) {
            Ok(()) => {
                fs::remove_file(path)?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    // Make the rename itself durable; not every file system
                    // lets a directory be fsynced, and the data already is.
                    let _ = File::open(dir).and_then(|d| d.sync_all());
                }
                return Ok((target, n));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free name for a closed file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed files of `path`, sorted by name (which is write order).
    fn closed_files(path: &Path) -> Vec<PathBuf> {
        let prefix = format!("{}.", path.file_name().unwrap().to_string_lossy());
        let mut files: Vec<PathBuf> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .collect();
        files.sort();
        files
    }

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("flowmon-rotation-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn closed_names_never_replace_an_existing_file() {
        let d = dir("names");
        let path = d.join("a.json");
        let t = Timestamp::from_micros(1_772_438_400, 0);
        for text in ["one\n", "two\n"] {
            fs::write(&path, text).unwrap();
            move_aside(&path, t, 1).unwrap();
        }
        let one = d.join("a.json.20260302T080000Z.1");
        let two = d.join("a.json.20260302T080000Z.2");
        assert_eq!(fs::read_to_string(one).unwrap(), "one\n");
        assert_eq!(fs::read_to_string(two).unwrap(), "two\n");
        assert!(!path.exists());
    }

    #[test]
    fn closed_names_sort_in_write_order_when_entries_go_back_in_time() {
        let d = dir("back");
        let path = d.join("a.json");
        // Rotated before every entry but the first.
        let rotation = Rotation {
            max_bytes: Some(1),
            interval: None,
        };
        let mut f = LogFile::create(&path, rotation).unwrap();
        let t = |s: i64| Timestamp::from_micros(1_772_438_400 + s, 0);
        for (s, line) in [
            (60, "a\n"),
            (0, "b\n"),
            (60, "c\n"),
            (120, "d\n"),
            (1, "e\n"),
        ] {
            f.before_entry(t(s)).unwrap();
            f.write_all(line.as_bytes()).unwrap();
        }
        f.finish().unwrap();
        assert_eq!(f.closed(), 5);
        let names: Vec<String> = closed_files(&path)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "a.json.20260302T080100Z.1",
                "a.json.20260302T080100Z.2",
                "a.json.20260302T080100Z.3",
                "a.json.20260302T080200Z.1",
                "a.json.20260302T080200Z.2",
            ]
        );
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
    }

    #[test]
    fn a_file_left_by_a_crash_is_moved_aside_not_truncated() {
        let d = dir("crash");
        let path = d.join("a.json");
        fs::write(&path, "left over\n").unwrap();
        let rotation = Rotation {
            max_bytes: Some(10),
            interval: None,
        };
        let mut f = LogFile::create(&path, rotation).unwrap();
        assert_eq!(f.closed(), 1);
        let aside = closed_files(&path);
        assert_eq!(aside.len(), 1);
        assert_eq!(fs::read_to_string(&aside[0]).unwrap(), "left over\n");
        f.before_entry(Timestamp(0)).unwrap();
        f.write_all(b"new\n").unwrap();
        f.finish().unwrap();
        assert_eq!(f.closed(), 2);
        let contents: Vec<String> = closed_files(&path)
            .iter()
            .map(|p| fs::read_to_string(p).unwrap())
            .collect();
        assert!(contents.contains(&"new\n".to_owned()), "{contents:?}");
        assert_eq!(contents.len(), 2);
    }

    #[test]
    fn time_rotation_follows_interval_boundaries_of_capture_time() {
        let d = dir("time");
        let path = d.join("a.log");
        let rotation = Rotation {
            max_bytes: None,
            interval: Some(Duration::from_secs(3600)),
        };
        let mut f = LogFile::create(&path, rotation).unwrap();
        let h = |s: i64| Timestamp::from_micros(1_772_438_400 + s, 0);
        for (t, line) in [
            (h(10), "a\n"),
            (h(3599), "b\n"),
            (h(3600), "c\n"),
            (h(9000), "d\n"),
        ] {
            f.before_entry(t).unwrap();
            f.write_all(line.as_bytes()).unwrap();
        }
        f.finish().unwrap();
        let closed = closed_files(&path);
        let names: Vec<String> = closed
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "a.log.20260302T080000Z.1",
                "a.log.20260302T090000Z.1",
                "a.log.20260302T100000Z.1"
            ]
        );
        assert_eq!(fs::read_to_string(&closed[0]).unwrap(), "a\nb\n");
        assert!(!path.exists());
    }
}
