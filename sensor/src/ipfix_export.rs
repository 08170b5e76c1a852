//! `--ipfix`: connection records to an IPFIX collector over UDP or TCP,
//! next to the normal record output.
//!
//! Templates follow RFC 7011 section 8: over UDP they open the export and
//! are resent every `--ipfix-template-refresh` seconds and every
//! `--ipfix-template-every` messages, whichever comes first, so a
//! collector started (or restarted) later learns them; over TCP they are
//! sent once at the start of each connection, and again after a reconnect
//! (a new transport session, whose sequence numbers start at 0).
//!
//! Export never stops the sensor: a record that cannot be encoded or sent
//! is counted under a named reason and reported in the summary.

use crate::error::SensorError;
use clap::Args;
use flowlib::ipfix::{self, Encoder, ExportConfig, Message};
use flowlib::ConnRecord;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// After a TCP connection is lost, a reconnect is tried at most this often.
pub const TCP_RECONNECT_INTERVAL: Duration = Duration::from_secs(1);
/// Time allowed to connect to a TCP collector.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Transport to the collector.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// One message per datagram (default).
    Udp,
    /// A stream of messages on one connection.
    Tcp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// IPFIX export options (shared by `replay` and `live`).
#[derive(Debug, Args, Clone)]
pub struct IpfixArgs {
    /// Also export every record over IPFIX (RFC 7011, biflows per RFC 5103)
    /// to this collector: HOST:PORT, udp://HOST:PORT or tcp://HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub ipfix: Option<String>,
    /// Transport for --ipfix when the address has no udp:// or tcp:// prefix.
    #[arg(long, value_enum, value_name = "udp|tcp", requires = "ipfix")]
    pub ipfix_transport: Option<Transport>,
    /// Observation domain id in every IPFIX message.
    #[arg(long, default_value_t = 1, value_name = "ID")]
    pub ipfix_domain: u32,
    /// UDP: resend the templates at least this often, in seconds, 1 or
    /// more (the first message after a longer quiet spell carries them).
    #[arg(long, default_value_t = 60, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ipfix_template_refresh: u64,
    /// UDP: resend the templates at least every N messages, 1 or more.
    #[arg(long, default_value_t = 256, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ipfix_template_every: u32,
    /// Largest IPFIX message in octets: 512 to 65535 over TCP (default
    /// 65000), 512 to the largest UDP payload over UDP (65507 over IPv4,
    /// 65527 over IPv6; default 1400).
    #[arg(long, value_name = "OCTETS")]
    pub ipfix_message_size: Option<usize>,
    /// Private Enterprise Number of our own elements (conn_state, history,
    /// enclaves, community_id, uid); default 32473, IANA's documentation PEN.
    #[arg(long, default_value_t = ipfix::DEFAULT_ENTERPRISE_NUMBER, value_name = "PEN")]
    pub ipfix_pen: u32,
}

impl IpfixArgs {
    /// Opens the exporter when `--ipfix` is given.
    pub fn open(&self) -> Result<Option<IpfixExporter>, SensorError> {
        let Some(target) = &self.ipfix else {
            return Ok(None);
        };
        let (scheme, hostport) = match target.split_once("://") {
            Some(("udp", rest)) => (Some(Transport::Udp), rest),
            Some(("tcp", rest)) => (Some(Transport::Tcp), rest),
            Some((other, _)) => {
                return Err(SensorError::Ipfix(format!(
                    "{target}: unknown transport {other:?} (udp or tcp)"
                )))
            }
            None => (None, target.as_str()),
        };
        let transport = match (scheme, self.ipfix_transport) {
            (Some(a), Some(b)) if a != b => {
                return Err(SensorError::Ipfix(format!(
                    "{target} contradicts --ipfix-transport {}",
                    b.name()
                )))
            }
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => Transport::Udp,
        };
        let cfg = ExportConfig {
            observation_domain: self.ipfix_domain,
            max_message_len: self.ipfix_message_size.unwrap_or(match transport {
                Transport::Udp => ipfix::DEFAULT_UDP_MESSAGE_LEN,
                Transport::Tcp => ipfix::DEFAULT_TCP_MESSAGE_LEN,
            }),
            enterprise_number: self.ipfix_pen,
            pad_sets: false,
        };
        let refresh = TemplateRefresh {
            interval: Duration::from_secs(self.ipfix_template_refresh),
            messages: self.ipfix_template_every,
        };
        IpfixExporter::connect(hostport, transport, cfg, refresh).map(Some)
    }
}

/// When templates are resent over UDP (RFC 7011 section 8.4): after this
/// much time or this many messages since they were last sent.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TemplateRefresh {
    /// Longest time between two template messages.
    pub interval: Duration,
    /// Most messages without templates in between.
    pub messages: u32,
}

/// Counters of an export, for the summary.
#[derive(Clone, Debug, Default)]
pub struct ExportStats {
    /// Where records went, e.g. `udp://127.0.0.1:9995`.
    pub target: String,
    /// Records sent in messages the transport accepted.
    pub records: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages that carried the templates.
    pub template_messages: u64,
    /// Records not exported, by reason.
    pub failed: BTreeMap<String, u64>,
    /// TCP reconnects after a lost connection.
    pub reconnects: u64,
}

impl ExportStats {
    /// Records not exported.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    fn fail(&mut self, reason: &str, records: u64) {
        if records > 0 {
            *self.failed.entry(reason.to_owned()).or_default() += records;
        }
    }
}

impl fmt::Display for ExportStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ipfix: {} records in {} messages ({} with templates) to {}, {} failed",
            self.records,
            self.messages,
            self.template_messages,
            self.target,
            self.failed_total()
        )?;
        if !self.failed.is_empty() {
            let by: Vec<String> = self
                .failed
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            write!(f, " ({})", by.join(", "))?;
        }
        if self.reconnects > 0 {
            write!(f, ", {} reconnects", self.reconnects)?;
        }
        Ok(())
    }
}

enum Link {
    Udp(UdpSocket),
    Tcp {
        stream: Option<TcpStream>,
        last_attempt: Instant,
    },
}

/// Sends records to one collector.
pub struct IpfixExporter {
    addr: SocketAddr,
    link: Link,
    encoder: Encoder,
    ready: Vec<Message>,
    stats: ExportStats,
    refresh: TemplateRefresh,
    templates_sent_at: Instant,
}

impl IpfixExporter {
    /// Resolves `hostport` and opens the transport; a TCP collector must
    /// accept the connection now.
    pub fn connect(
        hostport: &str,
        transport: Transport,
        cfg: ExportConfig,
        refresh: TemplateRefresh,
    ) -> Result<IpfixExporter, SensorError> {
        let mut encoder =
            Encoder::new(cfg).map_err(|e| SensorError::Ipfix(format!("{hostport}: {e}")))?;
        if transport == Transport::Udp {
            encoder.set_template_every(Some(refresh.messages));
        }
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| SensorError::Ipfix(format!("{hostport}: {e}")))?
            .next()
            .ok_or_else(|| SensorError::Ipfix(format!("{hostport}: no address")))?;
        let link = match transport {
            Transport::Udp => {
                let most = if addr.is_ipv4() {
                    ipfix::MAX_UDP_MESSAGE_LEN_V4
                } else {
                    ipfix::MAX_UDP_MESSAGE_LEN_V6
                };
                let asked = encoder.config().max_message_len;
                if asked > most {
                    return Err(SensorError::Ipfix(format!(
                        "udp://{addr}: message size {asked} is more than a UDP datagram \
                         over IPv{} carries ({most} octets); use at most {most}, or tcp://",
                        if addr.is_ipv4() { 4 } else { 6 }
                    )));
                }
                let local: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                let s = UdpSocket::bind(local)
                    .and_then(|s| s.connect(addr).map(|()| s))
                    .map_err(|e| SensorError::IpfixConnect(format!("udp://{addr}: {e}")))?;
                Link::Udp(s)
            }
            Transport::Tcp => {
                let s = TcpStream::connect_timeout(&addr, TCP_CONNECT_TIMEOUT)
                    .map_err(|e| SensorError::IpfixConnect(format!("tcp://{addr}: {e}")))?;
                let _ = s.set_nodelay(true);
                Link::Tcp {
                    stream: Some(s),
                    last_attempt: Instant::now(),
                }
            }
        };
        Ok(IpfixExporter {
            addr,
            link,
            encoder,
            ready: Vec::new(),
            stats: ExportStats {
                target: format!("{}://{addr}", transport.name()),
                ..ExportStats::default()
            },
            refresh,
            templates_sent_at: Instant::now(),
        })
    }

    /// Queues one record; full messages are sent at once.
    pub fn export(&mut self, r: &ConnRecord) {
        if !self.ensure_connected() {
            self.stats.fail("collector_unreachable", 1);
            return;
        }
        self.refresh_if_due();
        if let Err(e) = self.encoder.push(r, export_time(), &mut self.ready) {
            self.stats.fail(e.reason(), 1);
        }
        self.send_ready();
    }

    /// Sends the message being built, so no record waits for the next batch.
    pub fn flush(&mut self) {
        self.encoder.flush(export_time(), &mut self.ready);
        self.send_ready();
    }

    /// The counters so far.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// Sends what is pending and closes a TCP connection cleanly.
    pub fn finish(&mut self) {
        self.flush();
        if let Link::Tcp {
            stream: Some(s), ..
        } = &mut self.link
        {
            let _ = s.flush();
            let _ = s.shutdown(std::net::Shutdown::Write);
            // Wait for the collector to close its side, so that everything
            // sent is read before the process ends.
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = io::copy(s, &mut io::sink());
        }
    }

    /// TCP: reconnects (rate-limited) after a lost connection, starting a
    /// new transport session. UDP is always "connected".
    fn ensure_connected(&mut self) -> bool {
        let Link::Tcp {
            stream,
            last_attempt,
        } = &mut self.link
        else {
            return true;
        };
        if stream.is_some() {
            return true;
        }
        if last_attempt.elapsed() < TCP_RECONNECT_INTERVAL {
            return false;
        }
        *last_attempt = Instant::now();
        match TcpStream::connect_timeout(&self.addr, TCP_CONNECT_TIMEOUT) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                *stream = Some(s);
                self.encoder.new_session();
                self.stats.reconnects += 1;
                true
            }
            Err(_) => false,
        }
    }

    fn send_ready(&mut self) {
        if self.ready.is_empty() {
            return;
        }
        let mut ready = std::mem::take(&mut self.ready);
        for m in ready.drain(..) {
            self.send(m);
        }
        self.ready = ready;
    }

    /// UDP template refresh by time (RFC 7011 section 8.4), checked before
    /// a record is queued: once the interval has passed since templates
    /// last went out, the next message started carries them, however long
    /// the export was quiet. (A message already started when the interval
    /// runs out is the batch being written, sent within the batch; the
    /// encoder refreshes by message count itself.) The clock restarts when
    /// a message with templates is sent.
    fn refresh_if_due(&mut self) {
        if matches!(self.link, Link::Udp(_))
            && self.templates_sent_at.elapsed() >= self.refresh.interval
        {
            self.encoder.refresh_templates();
        }
    }

    fn send(&mut self, m: Message) {
        let result = match &mut self.link {
            Link::Udp(s) => s.send(&m.bytes).and_then(|n| {
                if n == m.bytes.len() {
                    Ok(())
                } else {
                    Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"))
                }
            }),
            Link::Tcp { stream, .. } => match stream {
                Some(s) => s.write_all(&m.bytes),
                None => Err(io::Error::from(io::ErrorKind::NotConnected)),
            },
        };
        match result {
            Ok(()) => {
                self.stats.records += u64::from(m.records);
                self.stats.messages += 1;
                if m.has_templates {
                    self.stats.template_messages += 1;
                    self.templates_sent_at = Instant::now();
                }
            }
            Err(e) => {
                let reason = format!(
                    "{}_send_{}",
                    self.stats.target.split(':').next().unwrap_or("ipfix"),
                    error_name(&e)
                );
                self.stats.fail(&reason, u64::from(m.records));
                if let Link::Tcp {
                    stream,
                    last_attempt,
                } = &mut self.link
                {
                    // The connection is gone: the message being built
                    // belongs to it too. The first reconnect is tried at
                    // once, later ones at most every TCP_RECONNECT_INTERVAL.
                    *stream = None;
                    *last_attempt = Instant::now()
                        .checked_sub(TCP_RECONNECT_INTERVAL)
                        .unwrap_or_else(Instant::now);
                    let lost = u64::from(self.encoder.pending_records());
                    self.stats.fail(&reason, lost);
                    self.encoder.new_session();
                }
            }
        }
    }
}

/// Seconds since the epoch (the header's export time), from the wall clock:
/// the time the message leaves, not capture time.
fn export_time() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// `EMSGSIZE` on Linux, which the standard library leaves uncategorized.
const EMSGSIZE: i32 = 90;

/// A stable snake_case name for an I/O error kind (`message_too_large`
/// for a datagram larger than the socket sends).
fn error_name(e: &io::Error) -> String {
    if cfg!(target_os = "linux") && e.raw_os_error() == Some(EMSGSIZE) {
        return "message_too_large".to_owned();
    }
    let debug = format!("{:?}", e.kind());
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a datagram too large for UDP failed with `EMSGSIZE`,
    /// which the standard library does not categorize, and was counted
    /// as `udp_send_uncategorized`.
    #[test]
    fn a_datagram_too_large_for_udp_is_named_message_too_large() {
        let to = UdpSocket::bind("127.0.0.1:0").unwrap();
        let from = UdpSocket::bind("127.0.0.1:0").unwrap();
        from.connect(to.local_addr().unwrap()).unwrap();
        let big = vec![0u8; ipfix::MAX_UDP_MESSAGE_LEN_V4 + 1];
        let e = from.send(&big).unwrap_err();
        assert_eq!(error_name(&e), "message_too_large", "{e:?}");
        // The largest one goes.
        assert_eq!(from.send(&big[1..]).unwrap(), big.len() - 1);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(error_name(&refused), "connection_refused");
    }
}
