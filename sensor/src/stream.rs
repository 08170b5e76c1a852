//! Reading a stream (standard input, a FIFO) that a stop request can
//! interrupt.
//!
//! A read from a quiet pipe blocks, and the signal handlers restart it: a
//! SIGINT or SIGTERM would wait for the writer's next bytes or its end.
//! [`StreamInput`] waits for the stream to be readable with `poll(2)` and
//! a timeout before each read: when a stop has been requested
//! ([`watch_stop`]) it ends with a [`Stopped`] error, which the capture
//! reader takes as the end of the input. The bytes go straight from the
//! pipe into the reader's buffer: no thread, no copy.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// How often a reader waiting for the stream looks at the stop flag.
const POLL: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 100_000_000,
};

/// The process's stop flag, once signals are handled.
static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Makes every [`StreamInput`] end when `flag` is set (by SIGINT or
/// SIGTERM). The first flag given stays.
pub fn watch_stop(flag: &Arc<AtomicBool>) {
    let _ = STOP.set(Arc::clone(flag));
}

/// The error a [`StreamInput`] ends with when a stop was requested while
/// it waited for the stream.
#[derive(Debug, thiserror::Error)]
#[error("stopped while waiting for input")]
pub struct Stopped;

/// Whether `e` is a [`StreamInput`]'s [`Stopped`].
pub fn is_stopped(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Stopped>())
}

/// A stream read only once it is readable; see the module docs.
pub struct StreamInput {
    file: File,
    /// The stop flag in force when it was made.
    stop: Option<Arc<AtomicBool>>,
}

impl StreamInput {
    /// Reads `file` (a pipe, a FIFO); it ends early when the process's
    /// stop flag ([`watch_stop`]) is set.
    pub fn new(file: File) -> StreamInput {
        StreamInput::with_stop(file, STOP.get().cloned())
    }

    /// Standard input, read through a descriptor of its own (unbuffered:
    /// bytes in a buffer would be invisible to `poll`).
    pub fn stdin() -> io::Result<StreamInput> {
        let fd = io::stdin().as_fd().try_clone_to_owned()?;
        Ok(StreamInput::new(File::from(fd)))
    }

    /// [`StreamInput::new`] watching `stop` instead.
    fn with_stop(file: File, stop: Option<Arc<AtomicBool>>) -> StreamInput {
        StreamInput { file, stop }
    }

    fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

impl Read for StreamInput {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut fds = [PollFd::new(&self.file, PollFlags::IN)];
            match poll(&mut fds, Some(&POLL)) {
                // Readable, at its end (hang-up) or failed: the read says
                // which.
                Ok(n) if n > 0 => return self.file.read(out),
                Ok(_) | Err(Errno::INTR) if self.stop_requested() => {
                    return Err(io::Error::other(Stopped));
                }
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// A pipe whose writer is `cat`'s standard output, fed by the test.
    fn pipe() -> (std::process::Child, StreamInput) {
        let mut cat = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = cat.stdout.take().unwrap();
        let file = File::from(std::os::fd::OwnedFd::from(out));
        (cat, StreamInput::with_stop(file, None))
    }

    #[test]
    fn bytes_come_through_whole_and_in_order_then_the_end() {
        let (mut cat, mut input) = pipe();
        let data: Vec<u8> = (0..3 * 65_536 + 17).map(|i| (i % 251) as u8).collect();
        let mut writer = cat.stdin.take().unwrap();
        let sent = data.clone();
        let feeder = std::thread::spawn(move || writer.write_all(&sent).unwrap());
        let mut got = Vec::new();
        input.read_to_end(&mut got).unwrap();
        feeder.join().unwrap();
        assert_eq!(got, data);
        cat.wait().unwrap();
    }

    #[test]
    fn a_stop_ends_a_wait_on_a_quiet_stream() {
        let (mut cat, mut input) = pipe();
        let stop = Arc::new(AtomicBool::new(false));
        input.stop = Some(Arc::clone(&stop));
        let mut writer = cat.stdin.take().unwrap();
        writer.write_all(&[7; 10]).unwrap();
        let mut buf = [0u8; 10];
        input.read_exact(&mut buf).unwrap();
        assert_eq!(buf, [7; 10]);
        // The writer is still there, silent; the read ends anyway.
        stop.store(true, Ordering::Relaxed);
        let e = input.read(&mut buf).unwrap_err();
        assert!(is_stopped(&e), "{e}");
        drop(writer);
        cat.wait().unwrap();
    }
}
