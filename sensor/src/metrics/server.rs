//! The HTTP side of the metrics: `GET /metrics` on threads of their own.
//!
//! The listening socket is bound before capture starts, so a port in use
//! or an address that is not ours is an error up front, not a surprise
//! later. Other paths get 404, other methods 405.
//!
//! A client cannot hold the endpoint or the sensor up. Each connection gets
//! one answer and is closed (`Connection: close`; requests pipelined after
//! the first are not read), on one of [`WORKERS`] threads. The request must
//! arrive within [`REQUEST_TIME`] and the answer be taken within
//! [`ANSWER_TIME`], or the connection is dropped. When every thread is busy
//! a few connections wait ([`QUEUED`]); past that, new ones are closed at
//! once. Stopping the endpoint waits at most [`STOP_TIME`] for answers
//! under way, so a client that does not read never delays the end of a
//! run.

use super::exposition::CONTENT_TYPE;
use super::Metrics;
use crate::error::SensorError;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Threads answering scrapes.
pub const WORKERS: usize = 4;
/// Connections accepted while every worker is busy; more are closed unanswered.
pub const QUEUED: usize = 16;
/// How long a client has to send its request (line and headers).
pub const REQUEST_TIME: Duration = Duration::from_secs(5);
/// How long a client has to take the whole answer.
pub const ANSWER_TIME: Duration = Duration::from_secs(5);
/// How long stopping the endpoint waits for answers under way.
pub const STOP_TIME: Duration = Duration::from_secs(1);
/// The longest request head read; a longer one gets 431.
const MAX_HEAD: usize = 8 * 1024;
/// How long, and how much, is read after an answer before closing.
const LINGER_TIME: Duration = Duration::from_millis(250);
const LINGER_BYTES: usize = 64 * 1024;

/// A running metrics endpoint; stops when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    /// Disconnected once every worker has returned.
    workers_done: Receiver<()>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port) and serves `metrics`.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<MetricsServer, SensorError> {
        let err = |message: String| SensorError::Metrics { addr, message };
        let listener = TcpListener::bind(addr).map_err(|e| err(e.to_string()))?;
        let bound = listener.local_addr().map_err(|e| err(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (queue, queued) = crossbeam_channel::bounded::<TcpStream>(QUEUED);
        let (done_tx, workers_done) = crossbeam_channel::bounded::<()>(0);
        for n in 0..WORKERS {
            let (queued, metrics, stop, done) = (
                queued.clone(),
                Arc::clone(&metrics),
                Arc::clone(&stop),
                done_tx.clone(),
            );
            std::thread::Builder::new()
                .name(format!("metrics-{n}"))
                .spawn(move || {
                    work(&queued, &metrics, &stop);
                    drop(done);
                })
                .map_err(|e| err(e.to_string()))?;
        }
        let accepting = Arc::clone(&stop);
        let acceptor = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || accept(&listener, &queue, &accepting))
            .map_err(|e| err(e.to_string()))?;
        Ok(MetricsServer {
            addr: bound,
            stop,
            acceptor: Some(acceptor),
            workers_done,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    /// Stops accepting, then waits up to [`STOP_TIME`] for the answers
    /// under way; workers still held by a client are left to their own
    /// timeouts (or to the end of the process).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor out of `accept` with a connection of our own.
        if TcpStream::connect_timeout(&reachable(self.addr), STOP_TIME).is_ok() {
            if let Some(t) = self.acceptor.take() {
                let _ = t.join();
            }
        }
        let deadline = Instant::now() + STOP_TIME;
        loop {
            match self.workers_done.recv_deadline(deadline) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    tracing::debug!("metrics: a client still holds a scrape; not waiting for it");
                    break;
                }
            }
        }
    }
}

/// Where to connect to reach a listener bound to `addr` (the loopback
/// address of its family when bound to every address).
fn reachable(addr: SocketAddr) -> SocketAddr {
    let mut to = addr;
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => to.set_ip(Ipv4Addr::LOCALHOST.into()),
        SocketAddr::V6(a) if a.ip().is_unspecified() => to.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    to
}

/// Accepts connections and queues them for the workers until `stop`.
fn accept(listener: &TcpListener, queue: &Sender<TcpStream>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match conn {
            Ok(conn) => match queue.try_send(conn) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::debug!("metrics: every worker busy; a connection closed unanswered");
                }
                Err(TrySendError::Disconnected(_)) => return,
            },
            Err(e) => {
                // Out of file descriptors, say: try again a little later.
                tracing::debug!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Answers queued connections, one request each, until the acceptor stops.
fn work(queued: &Receiver<TcpStream>, metrics: &Metrics, stop: &AtomicBool) {
    for conn in queued {
        if stop.load(Ordering::SeqCst) {
            continue; // closed unanswered: the run is over
        }
        if let Err(e) = answer(conn, metrics) {
            tracing::debug!("metrics: could not answer a scrape: {e}");
        }
    }
}

/// Reads one request from `conn` and writes its answer, each within its
/// time limit.
fn answer(mut conn: TcpStream, metrics: &Metrics) -> io::Result<()> {
    let head = read_head(&mut conn, Instant::now() + REQUEST_TIME)?;
    let response = match head {
        Some(head) => respond(&head, metrics),
        None => Response::text(431, "Request Header Fields Too Large", "request too long\n"),
    };
    write_within(&mut conn, &response.bytes(), Instant::now() + ANSWER_TIME)?;
    conn.shutdown(Shutdown::Write)?;
    linger(&mut conn);
    Ok(())
}

/// Reads what the client still sends (briefly, and not much) before the
/// connection is closed: closing with unread bytes makes the kernel reset
/// the connection, which can cost a client that pipelined its answer.
fn linger(conn: &mut TcpStream) {
    let deadline = Instant::now() + LINGER_TIME;
    let (mut buf, mut read) = ([0u8; 4096], 0);
    while read < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => read += n,
        }
    }
}

/// The request line and headers (up to the blank line), or `None` when
/// they are longer than [`MAX_HEAD`].
fn read_head(conn: &mut TcpStream, deadline: Instant) -> io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        conn.set_read_timeout(Some(left))?;
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n").or_else(|| find(&head, b"\n\n")) {
            head.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Writes all of `bytes`, failing once `deadline` passes.
fn write_within(conn: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        conn.set_write_timeout(Some(left))?;
        match conn.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The answer to a request whose head is `head`.
fn respond(head: &str, metrics: &Metrics) -> Response {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = origin_path(target);
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Response {
            head_only: method == "HEAD",
            content_type: CONTENT_TYPE,
            ..Response::text(200, "OK", &metrics.render())
        },
        (_, "/metrics") => Response {
            allow: true,
            ..Response::text(405, "Method Not Allowed", "only GET\n")
        },
        _ => Response::text(404, "Not Found", "not found; metrics are at /metrics\n"),
    }
}

/// The path of a request target without its query, in origin form (`/metrics`) or in the
/// absolute form a proxy sends (`http://host:9100/metrics`, which RFC 9112 section 3.2.2 says a
/// server must accept).
fn origin_path(target: &str) -> &str {
    let target = match target.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        _ => target,
    };
    target.split('?').next().unwrap_or("")
}

/// An HTTP/1.1 answer, always with `Connection: close`.
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    allow: bool,
    head_only: bool,
    body: String,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: &str) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            allow: false,
            head_only: false,
            body: body.to_owned(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        if !self.head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_method_and_path() {
        let m = Metrics::new(1);
        let get = respond("GET /metrics?x=1 HTTP/1.1\r\nHost: a", &m);
        assert_eq!((get.status, get.content_type), (200, CONTENT_TYPE));
        assert!(get.body.contains("flowmon_packets_total 0\n"));
        let head = respond("HEAD /metrics HTTP/1.0", &m).bytes();
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"));
        assert!(head.contains(&format!("Content-Length: {}\r\n", get.body.len())));
        let post = String::from_utf8(respond("POST /metrics HTTP/1.1", &m).bytes()).unwrap();
        assert!(post.starts_with("HTTP/1.1 405 ") && post.contains("\r\nAllow: GET, HEAD\r\n"));
        assert_eq!(respond("GET /other HTTP/1.1", &m).status, 404);
        assert_eq!(respond("", &m).status, 404);
    }

    #[test]
    fn absolute_form_targets_are_routed_by_their_path() {
        let m = Metrics::new(1);
        let proxied = respond("GET http://sensor:9100/metrics?x=1 HTTP/1.1", &m);
        assert_eq!(proxied.status, 200);
        assert_eq!(
            respond("GET HTTP://sensor/metrics HTTP/1.1", &m).status,
            200
        );
        assert_eq!(respond("GET http://sensor HTTP/1.1", &m).status, 404);
        assert_eq!(respond("GET http://sensor/other HTTP/1.1", &m).status, 404);
        assert_eq!(respond("GET ftp://sensor/metrics HTTP/1.1", &m).status, 404);
    }
}
