//! The HTTP side of the metrics: `GET /metrics` on a thread of its own.
//!
//! The listening socket is bound before capture starts, so a port in use
//! or an address that is not ours is an error up front, not a surprise
//! later. Other paths get 404, other methods 405.

use super::exposition::CONTENT_TYPE;
use super::Metrics;
use crate::error::SensorError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use tiny_http::{Header, Method, Response, Server};

/// A running metrics endpoint; stops when dropped.
pub struct MetricsServer {
    server: Arc<Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port) and serves `metrics`.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<MetricsServer, SensorError> {
        let err = |message: String| SensorError::Metrics { addr, message };
        let server = Server::http(addr).map_err(|e| err(e.to_string()))?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| err("not an IP socket".into()))?;
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&serving, &metrics))
            .map_err(|e| err(e.to_string()))?;
        Ok(MetricsServer {
            server,
            addr: bound,
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: &Server, metrics: &Metrics) {
    for req in server.incoming_requests() {
        let path = req.url().split('?').next().unwrap_or("");
        let response = match (req.method(), path) {
            (Method::Get | Method::Head, "/metrics") => Response::from_string(metrics.render())
                .with_header(header("Content-Type", CONTENT_TYPE)),
            (_, "/metrics") => Response::from_string("only GET\n")
                .with_status_code(405)
                .with_header(header("Allow", "GET, HEAD")),
            _ => {
                Response::from_string("not found; metrics are at /metrics\n").with_status_code(404)
            }
        };
        if let Err(e) = req.respond(response) {
            tracing::debug!("metrics: could not answer a scrape: {e}");
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}
