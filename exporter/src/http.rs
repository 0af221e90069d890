//! The HTTP endpoint: `GET /metrics` (content-negotiated), a small index page at `/`, 405 for
//! other methods there, 404 elsewhere.
//!
//! HTTP/1.1 with hyper on a current-thread tokio runtime; the collection over corosync stays
//! on the scraper's thread and each request asks it with a bound. The server defends itself
//! ([`Limits`]): at most so many connections at a time (more wait to be accepted), a deadline for a request's headers (idle keep-alive connections included), a cap
//! on their size, and a deadline for every write, so a client that stops reading loses its
//! connection instead of holding anyone else up. Failed accepts (out of file descriptors)
//! are logged and retried after a short pause; the server never stops on its own.

use core::convert::Infallible;
use core::future::Future;
use core::net::SocketAddr;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::io::{self, Write as _};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use crate::render::{render, Format};
use crate::scraper::{Scrape, Scraper};

/// Why the endpoint could not start, or stopped serving.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// An address the listen address resolved to is not a loopback one and remote access
    /// was not allowed.
    NotLoopback(SocketAddr),
    /// The listen address did not resolve (or resolved to nothing): the address and why.
    Resolve(String, String),
    /// Binding the address failed: the address and why.
    Bind(String, String),
    /// The listening socket failed in a way retrying cannot cure (or the runtime could
    /// not be set up): what failed.
    Listen(String),
}

impl core::fmt::Display for ServeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotLoopback(a) => write!(
                f,
                "{a} is not a loopback address: corosync's state would be open to the network; \
                 pass --allow-remote to listen there anyway"
            ),
            Self::Resolve(a, e) => write!(f, "cannot resolve the listen address {a}: {e}"),
            Self::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
            Self::Listen(e) => write!(f, "cannot serve any more: {e}"),
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

/// How long a scrape may take when the scraper sent `X-Prometheus-Scrape-Timeout-Seconds`
/// (`header`, seconds): `bound`, or less so the answer reaches the scraper before it gives
/// up (a tenth of its timeout, at least 50 ms, is left for the rest of the round trip;
/// never below 10 ms). An absent or unreadable header leaves `bound`.
pub fn scrape_bound(bound: Duration, header: Option<&str>) -> Duration {
    let Some(secs) = header.and_then(|h| h.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s > 0.0)
    else {
        return bound;
    };
    let margin = (secs / 10.0).max(0.05);
    let theirs = Duration::from_secs_f64((secs - margin).clamp(0.01, 3600.0));
    bound.min(theirs)
}

/// The server's defences; [`Limits::default`] is what the exporter uses.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Limits {
    /// Connections served at a time; at the cap, accepting pauses (new connections wait in
    /// the kernel's backlog) until one ends.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, counted from when the
    /// server starts waiting for them (so an idle keep-alive connection is closed after it).
    pub header_timeout: Duration,
    /// Bytes a request's start line and headers may take; more is answered 431 and closed.
    pub max_header_bytes: usize,
    /// How long one write to a client may stay blocked (it is not reading) before the
    /// connection is closed.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            write_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// `self` with `max_connections` connections at most.
    #[must_use]
    pub fn with_max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// `self` with `header_timeout` for a request's headers.
    #[must_use]
    pub fn with_header_timeout(mut self, header_timeout: Duration) -> Self {
        self.header_timeout = header_timeout;
        self
    }

    /// `self` with `write_timeout` for a blocked write.
    #[must_use]
    pub fn with_write_timeout(mut self, write_timeout: Duration) -> Self {
        self.write_timeout = write_timeout;
        self
    }
}

/// Where scrapes come from: the [`Scraper`], or a stand-in in tests.
pub trait Collect: Send + Sync + 'static {
    /// One scrape, waiting at most `bound` for corosync.
    fn collect(&self, bound: Duration) -> Scrape;
    /// The bound a scrape waits at most unless the scraper asks for less.
    fn bound(&self) -> Duration;
}

impl Collect for Scraper {
    fn collect(&self, bound: Duration) -> Scrape {
        self.scrape_within(bound)
    }

    fn bound(&self) -> Duration {
        Self::bound(self)
    }
}

/// A bound, not yet serving, endpoint.
#[derive(Debug)]
pub struct Endpoint {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    limits: Limits,
}

impl Endpoint {
    /// Binds `addr`, a `host:port` whose host is an IP address or a name (every address a
    /// name resolves to must be loopback unless `allow_remote`; the first that binds is
    /// used), with the default [`Limits`].
    ///
    /// # Errors
    /// [`ServeError::Resolve`], [`ServeError::NotLoopback`], [`ServeError::Bind`].
    pub fn bind(addr: &str, allow_remote: bool) -> Result<Self, ServeError> {
        let resolve = |e: String| ServeError::Resolve(addr.to_owned(), e);
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(|e| resolve(e.to_string()))?.collect();
        if addrs.is_empty() {
            return Err(resolve("no addresses".into()));
        }
        if let Some(a) = addrs.iter().find(|a| !allow_remote && !a.ip().is_loopback()) {
            return Err(ServeError::NotLoopback(*a));
        }
        let bind = |e: io::Error| ServeError::Bind(addr.to_owned(), e.to_string());
        let listener = std::net::TcpListener::bind(&addrs[..]).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        Ok(Self { listener, addr, limits: Limits::default() })
    }

    /// `self` with other [`Limits`].
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The address bound (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers requests with scrapes from `collector`, until the listening socket fails in a
    /// way retrying cannot cure; returns why (the process should then exit non-zero).
    pub fn serve(self, collector: Arc<dyn Collect>) -> ServeError {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(self.limits.max_connections.max(1))
            .build()
        {
            Ok(r) => r,
            Err(e) => return ServeError::Listen(format!("cannot start the runtime: {e}")),
        };
        let Self { listener, limits, .. } = self;
        runtime.block_on(async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => accept_loop(listener, limits, collector).await,
                Err(e) => ServeError::Listen(e.to_string()),
            }
        })
    }
}

/// Whether a failed `accept` may work later: anything but a broken listening socket.
fn transient(e: &io::Error) -> bool {
    !matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP | libc::EFAULT)
    )
}

async fn accept_loop(listener: TcpListener, limits: Limits, collector: Arc<dyn Collect>) -> ServeError {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    // half_close: a client that shuts its write side after the request still gets the answer.
    http.timer(TokioTimer::new())
        .half_close(true)
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let http = Arc::new(http);
    let mut pause = Duration::from_millis(10);
    loop {
        // At the cap, accepting pauses: new connections wait in the kernel's backlog.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return ServeError::Listen("the connection slots were closed".into());
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                pause = Duration::from_millis(10);
                stream
            }
            Err(e) if transient(&e) => {
                // Logging must not fail the server (stderr may be closed).
                let _ = writeln!(
                    io::stderr(),
                    "corowire-exporter: cannot accept a connection ({e}); retrying in {pause:?}"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(e) => return ServeError::Listen(format!("accepting connections failed: {e}")),
        };
        let (http, collector) = (Arc::clone(&http), Arc::clone(&collector));
        tokio::spawn(async move {
            let io = TokioIo::new(WriteDeadline::new(stream, limits.write_timeout));
            let service = hyper::service::service_fn(move |request| answer(request, Arc::clone(&collector)));
            // A client that misbehaves or goes away is no concern of ours.
            let _ = http.serve_connection(io, service).await;
            drop(slot);
        });
    }
}

const INDEX: &str = "<html><head><title>corowire exporter</title></head><body>\
<h1>corowire exporter</h1><p>corosync metrics: <a href=\"/metrics\">/metrics</a></p></body></html>\n";

fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn header(request: &Request<Incoming>, name: impl hyper::header::AsHeaderName) -> Option<&str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn answer(
    request: Request<Incoming>,
    collector: Arc<dyn Collect>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    let response = match request.uri().path() {
        "/metrics" | "/" if !readable => {
            let mut r =
                response(StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "method not allowed\n");
            r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        "/metrics" => {
            let format = negotiate(header(&request, ACCEPT));
            let bound =
                scrape_bound(collector.bound(), header(&request, "x-prometheus-scrape-timeout-seconds"));
            let started = Instant::now();
            match tokio::task::spawn_blocking(move || collector.collect(bound)).await {
                Ok(scrape) => response(
                    StatusCode::OK,
                    format.content_type(),
                    render(&scrape, started.elapsed(), format),
                ),
                Err(_) => response(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "the scrape failed\n"),
            }
        }
        "/" => response(StatusCode::OK, "text/html; charset=utf-8", INDEX),
        _ => response(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n"),
    };
    Ok(response)
}

/// A TCP stream whose writes fail with [`io::ErrorKind::TimedOut`] once one has been blocked
/// (the peer not reading) for longer than the deadline.
struct WriteDeadline {
    stream: TcpStream,
    limit: Duration,
    blocked: Option<Pin<Box<Sleep>>>,
}

impl WriteDeadline {
    fn new(stream: TcpStream, limit: Duration) -> Self {
        Self { stream, limit, blocked: None }
    }

    /// `poll` on the stream, with the deadline armed while it is pending.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll(Pin::new(&mut self.stream), cx) {
            Poll::Ready(r) => {
                self.blocked = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let sleep = self.blocked.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.guard(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard(cx, AsyncWrite::poll_flush)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard(cx, AsyncWrite::poll_shutdown)
    }
}
