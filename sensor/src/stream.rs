//! Reading a stream (standard input, a FIFO) that a stop request can
//! interrupt.
//!
//! A read from a quiet pipe blocks, and the signal handlers restart it: a
//! SIGINT or SIGTERM would wait for the writer's next bytes or its end.
//! [`StreamInput`] reads the stream on a thread of its own, in chunks
//! passed over a channel (recycled, not allocated per read), and waits for
//! them with a timeout: when a stop has been requested ([`watch_stop`]) it
//! ends with a [`Stopped`] error, which the capture reader takes as the
//! end of the input.

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Bytes per chunk read from the stream.
const CHUNK: usize = 256 * 1024;

/// Chunks in flight between the reading thread and the reader.
const DEPTH: usize = 4;

/// How often a reader waiting for the stream looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

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

enum Chunk {
    Data(Vec<u8>),
    Failed(io::Error),
}

/// A stream read on a thread of its own; see the module docs.
pub struct StreamInput {
    /// The stop flag in force when it was made.
    stop: Option<Arc<AtomicBool>>,
    chunks: Receiver<Chunk>,
    spare: Sender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl StreamInput {
    /// Starts reading `source` on a new thread; it ends early when the
    /// process's stop flag ([`watch_stop`]) is set.
    pub fn new(source: impl Read + Send + 'static) -> io::Result<StreamInput> {
        StreamInput::with_stop(source, STOP.get().cloned())
    }

    /// [`StreamInput::new`] watching `stop` instead.
    fn with_stop(
        source: impl Read + Send + 'static,
        stop: Option<Arc<AtomicBool>>,
    ) -> io::Result<StreamInput> {
        let (chunk_tx, chunks) = bounded(DEPTH);
        let (spare, spare_rx) = bounded(DEPTH + 1);
        std::thread::Builder::new()
            .name("stream-reader".into())
            .spawn(move || pump(source, &chunk_tx, &spare_rx))?;
        Ok(StreamInput {
            stop,
            chunks,
            spare,
            current: Vec::new(),
            at: 0,
        })
    }
}

/// The reading thread: chunks until the end of the stream, an error, or
/// the reader going away.
fn pump(mut source: impl Read, chunks: &Sender<Chunk>, spare: &Receiver<Vec<u8>>) {
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let n = match source.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = chunks.send(Chunk::Failed(e));
                return;
            }
        };
        buf.truncate(n);
        if chunks.send(Chunk::Data(buf)).is_err() {
            return;
        }
    }
}

impl Read for StreamInput {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.recv_timeout(POLL) {
                Ok(Chunk::Data(next)) => {
                    let used = std::mem::replace(&mut self.current, next);
                    let _ = self.spare.try_send(used);
                    self.at = 0;
                }
                Ok(Chunk::Failed(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout)
                    if self
                        .stop
                        .as_ref()
                        .is_some_and(|f| f.load(Ordering::Relaxed)) =>
                {
                    return Err(io::Error::other(Stopped));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.at);
        out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that gives its bytes, then blocks until `release` is set.
    struct Quiet {
        data: io::Cursor<Vec<u8>>,
        release: Arc<AtomicBool>,
    }

    impl Read for Quiet {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.data.read(out)?;
            if n > 0 {
                return Ok(n);
            }
            while !self.release.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(0)
        }
    }

    #[test]
    fn bytes_come_through_whole_and_in_order_then_the_end() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let mut input = StreamInput::with_stop(io::Cursor::new(data.clone()), None).unwrap();
        let mut got = Vec::new();
        input.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn a_stop_ends_a_wait_on_a_quiet_stream() {
        let release = Arc::new(AtomicBool::new(false));
        let quiet = Quiet {
            data: io::Cursor::new(vec![7; 10]),
            release: Arc::clone(&release),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut input = StreamInput::with_stop(quiet, Some(Arc::clone(&stop))).unwrap();
        let mut buf = [0u8; 10];
        input.read_exact(&mut buf).unwrap();
        assert_eq!(buf, [7; 10]);
        // The stream's writer is still there; the read ends anyway.
        stop.store(true, Ordering::Relaxed);
        let e = input.read(&mut buf).unwrap_err();
        assert!(is_stopped(&e), "{e}");
        release.store(true, Ordering::Relaxed);
    }
}
