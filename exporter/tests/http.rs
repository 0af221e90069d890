//! The HTTP front end under misbehaving clients, over a stand-in collector (no daemon):
//! every test asserts that other clients are still answered, never how fast.

mod common;

use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use common::{exchange, Exporter};
use corowire_exporter::http::{scrape_bound, Collect, Endpoint, Limits};
use corowire_exporter::scraper::{Outcome, Scrape, Scraper};

/// Answers every scrape at once with "corosync did not answer", noting the bounds asked for.
#[derive(Default)]
struct Fake {
    bounds: Mutex<Vec<Duration>>,
}

impl Collect for Fake {
    fn collect(&self, bound: Duration) -> Scrape {
        self.bounds.lock().expect("lock").push(bound);
        Scrape { outcome: Outcome::Failed("fake".into()), connects: 0 }
    }

    fn bound(&self) -> Duration {
        Duration::from_secs(2)
    }
}

/// Serves `fake` with `limits` on a thread; the port.
fn serve(limits: Limits, fake: Arc<Fake>) -> u16 {
    let endpoint = Endpoint::bind("127.0.0.1:0", false).expect("bind").with_limits(limits);
    let port = endpoint.local_addr().port();
    thread::spawn(move || endpoint.serve(fake));
    port
}

const GET: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Whether a plain scrape is answered 200 within a generous minute (retrying while the
/// server frees what misbehaving clients held).
fn answered(port: u16) -> bool {
    let give_up = Instant::now() + Duration::from_secs(60);
    while Instant::now() < give_up {
        if exchange(port, GET).is_some_and(|r| r.starts_with("HTTP/1.1 200") && r.contains("corosync_up 0")) {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Reads until the server closes the connection (a minute at most): true if it did.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn http2_request_lines_free_their_connection() {
    let port = serve(Limits::default().with_max_connections(4), Arc::default());
    for _ in 0..40 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"GET /metrics HTTP/2.0\r\n\r\n").expect("write");
    }
    // With 4 slots, 40 leaked connections would leave none for this one.
    assert!(answered(port));
}

#[test]
fn idle_connections_are_capped_and_closed() {
    let limits = Limits::default().with_max_connections(3).with_header_timeout(Duration::from_millis(500));
    let port = serve(limits, Arc::default());
    let mut idle: Vec<TcpStream> =
        (0..3).map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect")).collect();
    // Beyond the cap, or once their header deadline passes, the server ends them.
    let mut extra = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    assert!(closed_by_server(&mut extra));
    for s in &mut idle {
        assert!(closed_by_server(s));
    }
    assert!(answered(port));
}

#[test]
fn a_client_that_never_reads_blocks_nobody() {
    let limits = Limits::default().with_write_timeout(Duration::from_secs(1));
    let port = serve(limits, Arc::default());
    let mut stuck = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (written, pipelined) = mpsc::channel();
    let mut writer = stuck.try_clone().expect("clone");
    thread::spawn(move || {
        // Far more answers than the socket buffers hold; the writes block once the
        // server stops reading, and fail once it closes the connection.
        let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
        let mut sent = 0;
        while sent < 1000 && writer.write_all(&request).is_ok() {
            sent += 1;
        }
        let _ = written.send(sent);
    });
    assert!(answered(port), "another client is answered while the stuck one holds its connection");
    // The server gives up on the stuck one: its writes end, and so does the connection.
    assert!(pipelined.recv_timeout(Duration::from_secs(120)).is_ok_and(|sent| sent < 1000));
    assert!(closed_by_server(&mut stuck));
}

#[test]
fn oversized_headers_are_refused() {
    let port = serve(Limits::default(), Arc::default());
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Big: ");
    let chunk = vec![b'a'; 64 * 1024];
    // The server stops reading (and closes) long before 200 MB.
    let mut sent = 0usize;
    while sent < 200 << 20 && s.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    assert!(sent < 200 << 20, "the server read a 200 MB header");
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    assert!(
        response.is_empty() || response.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&response)
    );
    assert!(answered(port));
}

#[test]
fn methods_and_paths() {
    let port = serve(Limits::default(), Arc::default());
    let status =
        |request: &str| exchange(port, request.as_bytes()).and_then(|r| r.get(..12).map(str::to_owned));
    assert_eq!(status("POST /metrics HTTP/1.0\r\n\r\n").as_deref(), Some("HTTP/1.0 405"));
    assert_eq!(status("DELETE / HTTP/1.0\r\n\r\n").as_deref(), Some("HTTP/1.0 405"));
    assert_eq!(status("GET /nope HTTP/1.0\r\n\r\n").as_deref(), Some("HTTP/1.0 404"));
    assert_eq!(status("GET / HTTP/1.0\r\n\r\n").as_deref(), Some("HTTP/1.0 200"));
    let head = exchange(port, b"HEAD /metrics HTTP/1.0\r\n\r\n").expect("answer");
    assert!(head.starts_with("HTTP/1.0 200") && head.ends_with("\r\n\r\n"), "{head:?}");
}

#[test]
fn prometheus_scrape_timeout_bounds_the_scrape() {
    let fake = Arc::new(Fake::default());
    let port = serve(Limits::default(), Arc::clone(&fake));
    let request = "GET /metrics HTTP/1.0\r\nX-Prometheus-Scrape-Timeout-Seconds: 1\r\n\r\n";
    assert!(exchange(port, request.as_bytes()).is_some_and(|r| r.starts_with("HTTP/1.0 200")));
    assert!(exchange(port, GET).is_some());
    let bounds = fake.bounds.lock().expect("lock").clone();
    assert_eq!(bounds, [Duration::from_millis(900), Duration::from_secs(2)]);
}

#[test]
fn scrape_bounds() {
    let two = Duration::from_secs(2);
    assert_eq!(scrape_bound(two, None), two);
    assert_eq!(scrape_bound(two, Some("soon")), two);
    assert_eq!(scrape_bound(two, Some("-1")), two);
    assert_eq!(scrape_bound(two, Some("10")), two);
    assert_eq!(scrape_bound(two, Some("1")), Duration::from_millis(900));
    assert_eq!(scrape_bound(two, Some("0.2")), Duration::from_millis(150));
    assert_eq!(scrape_bound(two, Some("0.01")), Duration::from_millis(10));
}

#[test]
fn concurrent_scrapes_share_one_stalled_collection() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (release, stalled) = mpsc::channel::<()>();
    let counted = Arc::clone(&calls);
    let scraper = Scraper::with_source(Duration::from_secs(60), move |_| {
        // Only the first collection stalls.
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            let _ = stalled.recv();
        }
        Err("answered".into())
    })
    .expect("start");
    let scraper = Arc::new(scraper);
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&scraper);
            thread::spawn(move || s.scrape_within(Duration::from_millis(200)).outcome)
        })
        .collect();
    for w in waiters {
        assert_eq!(w.join().expect("join"), Outcome::TimedOut);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one collection for all four");
    release.send(()).expect("release");
    // The stalled collection's answer, or (if it finished first) a new one.
    assert_eq!(scraper.scrape().outcome, Outcome::Failed("answered".into()));
}

#[test]
fn running_out_of_file_descriptors_does_not_end_the_server() {
    let exporter = Exporter::start_in(&["sh", "-c", "ulimit -n 32; exec \"$0\" \"$@\""], &[]);
    let idle: Vec<TcpStream> =
        (0..40).filter_map(|_| TcpStream::connect(("127.0.0.1", exporter.port)).ok()).collect();
    assert!(idle.len() > 32, "the test needs more connections than descriptors");
    drop(idle);
    assert!(answered(exporter.port));
}

#[test]
fn a_client_that_shuts_its_write_side_still_gets_the_answer() {
    let port = serve(Limits::default(), Arc::default());
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    s.write_all(GET).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200") && response.contains("corosync_up 0"), "{response:?}");
}
