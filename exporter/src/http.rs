//! The HTTP endpoint: `GET /metrics` (content-negotiated), a small index page at `/`, 404
//! elsewhere. One request at a time: a scrape is short and bounded.

use core::net::SocketAddr;
use std::time::Instant;

use tiny_http::{Header, Method, Request, Response, Server};

use crate::render::{render, Format};
use crate::scraper::Scraper;

/// Why the endpoint could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The address is not a loopback one and remote access was not allowed.
    NotLoopback(SocketAddr),
    /// Binding the address failed.
    Bind(SocketAddr, String),
}

impl core::fmt::Display for ServeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotLoopback(a) => write!(
                f,
                "{a} is not a loopback address: corosync's state would be open to the network; \
                 pass --allow-remote to listen there anyway"
            ),
            Self::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
        }
    }
}

impl core::error::Error for ServeError {}

/// The format a client asked for in its `Accept` header: OpenMetrics if it weighs
/// `application/openmetrics-text` above `text/plain` (as Prometheus does), else the
/// Prometheus text format.
pub fn negotiate(accept: Option<&str>) -> Format {
    let (mut openmetrics, mut plain) = (0.0f64, 0.0f64);
    for range in accept.unwrap_or("").split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0;
        for param in parts {
            if let Some(v) = param.strip_prefix("q=") {
                q = v.parse().unwrap_or(0.0);
            }
        }
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => plain = plain.max(q),
            _ => {}
        }
    }
    if openmetrics > plain {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

/// A bound, not yet serving, endpoint.
pub struct Endpoint {
    server: Server,
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint").field("addr", &self.server.server_addr().to_ip()).finish()
    }
}

impl Endpoint {
    /// Binds `addr`. Unless `allow_remote`, only loopback addresses are accepted.
    ///
    /// # Errors
    /// [`ServeError::NotLoopback`], [`ServeError::Bind`].
    pub fn bind(addr: SocketAddr, allow_remote: bool) -> Result<Self, ServeError> {
        if !allow_remote && !addr.ip().is_loopback() {
            return Err(ServeError::NotLoopback(addr));
        }
        let server = Server::http(addr).map_err(|e| ServeError::Bind(addr, e.to_string()))?;
        Ok(Self { server })
    }

    /// The address bound (with the port the system chose for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.server_addr().to_ip()
    }

    /// Answers requests until the process ends.
    pub fn serve(&self, scraper: &Scraper) {
        for request in self.server.incoming_requests() {
            answer(request, scraper);
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII constants or our own content types: always valid.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|()| unreachable!("valid header"))
}

const INDEX: &str = "<html><head><title>corowire exporter</title></head><body>\
<h1>corowire exporter</h1><p>corosync metrics: <a href=\"/metrics\">/metrics</a></p></body></html>\n";

fn answer(request: Request, scraper: &Scraper) {
    let path = request.url().split('?').next().unwrap_or("");
    let response = match (request.method(), path) {
        (Method::Get | Method::Head, "/metrics") => {
            let accept = request.headers().iter().find(|h| h.field.equiv("Accept")).map(|h| h.value.as_str());
            let format = negotiate(accept);
            let started = Instant::now();
            let scrape = scraper.scrape();
            let body = render(&scrape, started.elapsed(), format);
            Response::from_string(body).with_header(header("Content-Type", format.content_type()))
        }
        (Method::Get | Method::Head, "/") => {
            Response::from_string(INDEX).with_header(header("Content-Type", "text/html; charset=utf-8"))
        }
        _ => Response::from_string("not found\n").with_status_code(404),
    };
    // A client that went away is no concern of ours.
    let _ = request.respond(response);
}
