//! The built-in server against this crate's own clients and against raw, hostile frames.
//!
//! Every test runs its own server under private names (`corowire-test-<pid>-<tag>-cmap`), with
//! its ring directories in a private folder under `/dev/shm`, so the tests run in parallel,
//! on any Linux machine, next to a real corosync or not.

use core::sync::atomic::Ordering;
use core::time::Duration;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use corowire::cmap::{Key, Request, TrackEvent as Ev, TrackType, Value, ValueType};
use corowire::dispatch::DispatchMode;
use corowire::votequorum::{Notification, TrackFlags};
use corowire::{Connection, CsError};
use corowire_unix::cmap::{self, Cmap, OwnedValue};
use corowire_unix::server::{IpcType, Server, ServerConfig};
use corowire_unix::sys::shm::SharedMapping;
use corowire_unix::sys::sock::{poll_readable, send_all, PollState};
use corowire_unix::transport::{handshake, ShmTransport};
use corowire_unix::votequorum::{self, Votequorum};
use corowire_unix::Error;

mod builtin;
use builtin::TestServer;

impl TestServer {
    /// A raw connection to the CMAP service asking for `max` bytes.
    fn raw(&self, max: u32) -> Raw {
        let mut conn = Connection::<corowire::Cmap>::new(max);
        let mut request = [0u8; 64];
        let n = conn.encode_setup(&mut request).unwrap();
        let (sock, response) =
            handshake::exchange(&self.cmap_name, &request[..n], Some(Duration::from_secs(10))).unwrap();
        let names = conn.handle_setup(&response).unwrap();
        assert_eq!(names.connection_type, corowire::qb::ConnectionType::Shm);
        let path = |b: &[u8]| PathBuf::from(core::str::from_utf8(b).unwrap());
        let transport =
            ShmTransport::open(sock, &path(names.request), &path(names.response), &path(names.event))
                .unwrap();
        Raw { transport }
    }

    /// The connection directories that exist now.
    fn dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.shm_dir).unwrap().map(|e| e.unwrap().path()).collect()
    }

    /// Waits (at most 5 s) until there are `n` connection directories.
    fn wait_dirs(&self, n: usize) -> Vec<PathBuf> {
        wait_until(|| self.dirs().len() == n, || format!("{:?}", self.dirs()));
        self.dirs()
    }
}

fn wait_until(mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out; state: {}", what());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A connection driven by hand: frames go straight into the request ring.
struct Raw {
    transport: ShmTransport,
}

impl Raw {
    /// Commits `frame` and rings the doorbell.
    fn send(&mut self, frame: &[u8]) {
        self.transport.request_ring_mut().write_chunk(frame).unwrap();
        send_all(&self.transport, &[frame.len() as u8]).unwrap();
    }

    fn recv(&mut self) -> Vec<u8> {
        let mut out = vec![0; 65536];
        let n =
            self.transport.recv_response(Some(Instant::now() + Duration::from_secs(5)), &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// Whether the server closed the connection (within 5 s).
    fn closed(&self) -> bool {
        matches!(poll_readable(&self.transport, Some(Duration::from_secs(5))), Ok(PollState::Hup))
            || self.transport.check_alive().is_err()
    }
}

fn get_request(key: &str, value_len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; 512];
    let n = Request::Get { key: Key::new(key.as_bytes()).unwrap(), value_len }.encode(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// A 16-byte request header with `id` and `size`, then `extra` zero bytes.
fn raw_frame(id: i32, size: i32, extra: usize) -> Vec<u8> {
    let mut f = vec![0u8; 16 + extra];
    f[..4].copy_from_slice(&id.to_ne_bytes());
    f[8..12].copy_from_slice(&size.to_ne_bytes());
    f
}

fn i32_at(b: &[u8], off: usize) -> i32 {
    i32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

#[test]
fn set_get_every_type() {
    let server = TestServer::start("types");
    let mut cmap = server.cmap();
    // The extremes of every fixed-size type, and strings and binaries up to the 16 KiB limit.
    let big: Vec<u8> = (0..16384u32).map(|i| (i * 7) as u8).collect();
    let values: Vec<Value<'_>> = ValueType::ALL
        .into_iter()
        .flat_map(|ty| match ty {
            ValueType::Int8 => vec![Value::Int8(i8::MIN), Value::Int8(i8::MAX)],
            ValueType::UInt8 => vec![Value::UInt8(u8::MAX)],
            ValueType::Int16 => vec![Value::Int16(i16::MIN)],
            ValueType::UInt16 => vec![Value::UInt16(u16::MAX)],
            ValueType::Int32 => vec![Value::Int32(i32::MIN)],
            ValueType::UInt32 => vec![Value::UInt32(u32::MAX)],
            ValueType::Int64 => vec![Value::Int64(i64::MIN)],
            ValueType::UInt64 => vec![Value::UInt64(u64::MAX)],
            ValueType::Float => vec![Value::Float(-1.5e-7)],
            ValueType::Double => vec![Value::Double(core::f64::consts::PI)],
            ValueType::String => vec![Value::String("héllo wörld".as_bytes()), Value::String(b"")],
            ValueType::Binary => vec![Value::Binary(&big), Value::Binary(b"\0\x01\xff")],
        })
        .collect();
    for (i, v) in values.iter().enumerate() {
        let key = format!("test.types.{i}");
        cmap.set(&key, *v).unwrap();
        assert_eq!(cmap.get(&key).unwrap(), OwnedValue::from(*v), "{key}");
    }
    assert_eq!(cmap.get_type("test.types.11").unwrap(), (ValueType::String, 14), "with the NUL");
    assert_eq!(cmap.get_string("totem.cluster_name").unwrap(), "corowire");
    assert_eq!(cmap.get("test.no.such.key").unwrap_err().cs_error(), CsError::NotExist);
    assert_eq!(cmap.set_u32("totem.cluster_name", 1).unwrap_err().cs_error(), CsError::Access);
    cmap.inc("test.types.6").unwrap();
    assert_eq!(cmap.get_u32("test.types.6").unwrap(), 0, "wraps");
}

#[test]
fn iterate_and_delete() {
    let server = TestServer::start("iter");
    let mut cmap = server.cmap();
    for i in 0..20u32 {
        cmap.set_u32(&format!("test.iter.{i:02}"), i).unwrap();
    }
    let keys: Vec<String> = cmap.iter(Some("test.iter.")).unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(keys, (0..20).map(|i| format!("test.iter.{i:02}")).collect::<Vec<_>>());
    for i in (0..20).step_by(2) {
        cmap.delete(&format!("test.iter.{i:02}")).unwrap();
    }
    assert_eq!(cmap.delete("test.iter.00").unwrap_err().cs_error(), CsError::NotExist);
    let left = cmap.iter(Some("test.iter.")).unwrap().count();
    assert_eq!(left, 10);
    let all: Vec<String> = cmap.iter(None).unwrap().map(|r| r.unwrap().0).collect();
    assert!(all.contains(&"quorum.provider".to_owned()), "{all:?}");
}

type Seen = Arc<Mutex<Vec<(Ev, String, Option<OwnedValue>)>>>;

/// A track callback that appends (event, key, new value) to `seen`.
fn recorder(seen: &Seen) -> impl FnMut(&cmap::TrackNotification<'_>) + Send + 'static {
    let seen = Arc::clone(seen);
    move |e| seen.lock().unwrap().push((e.event, e.key().into_owned(), e.new_value.map(OwnedValue::from)))
}

fn dispatch_until(cmap: &mut Cmap, seen: &Seen, n: usize) {
    wait_until(
        || {
            let _ = poll_readable(&*cmap, Some(Duration::from_millis(20)));
            cmap.dispatch(DispatchMode::All).unwrap();
            seen.lock().unwrap().len() >= n
        },
        || format!("{:?}", seen.lock().unwrap()),
    );
}

#[test]
fn tracking_delivers_notifications() {
    let server = TestServer::start("track");
    let mut tracker = server.cmap();
    let seen: Seen = Arc::default();
    tracker.track_add(Some("test.track."), TrackType::ALL, recorder(&seen)).unwrap();
    let mut writer = server.cmap();
    writer.set_u32("test.track.a", 1).unwrap();
    writer.set_u32("test.track.a", 2).unwrap();
    writer.set_u32("test.other", 2).unwrap();
    writer.delete("test.track.a").unwrap();
    // A change by the tracker itself: its event precedes its reply.
    tracker.set_string("test.track.b", "x").unwrap();
    assert_eq!(tracker.dispatch(DispatchMode::OneNonBlocking), Ok(()));
    dispatch_until(&mut tracker, &seen, 4);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (Ev::Add, "test.track.a".into(), Some(OwnedValue::UInt32(1))),
            (Ev::Modify, "test.track.a".into(), Some(OwnedValue::UInt32(2))),
            (Ev::Delete, "test.track.a".into(), None),
            (Ev::Add, "test.track.b".into(), Some(OwnedValue::String("x".into()))),
        ]
    );
}

/// The socket transport (`qb_ipc_type: socket`): requests, replies and events as datagrams,
/// the control file's counters, and cleanup after disconnect.
#[test]
fn socket_transport_serves_requests_and_events() {
    let server = TestServer::start_with("sock", |cfg| cfg.transport = IpcType::Socket);
    let mut tracker = server.cmap();
    let seen: Seen = Arc::default();
    tracker.track_add(Some("test.sock."), TrackType::ALL, recorder(&seen)).unwrap();
    let dirs = server.wait_dirs(1);
    let mut files: Vec<String> = std::fs::read_dir(&dirs[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, vec![format!("qb-control-{}", server.cmap_name)]);
    let control = SharedMapping::open(&dirs[0].join(&files[0])).unwrap();
    assert_eq!(control.len(), 24);
    let mut writer = server.cmap();
    writer.set_u32("test.sock.a", 1).unwrap();
    assert_eq!(writer.get_u32("test.sock.a").unwrap(), 1);
    writer.set_string("test.sock.b", "x").unwrap();
    writer.delete("test.sock.a").unwrap();
    // Far more events than the event socket holds at once, while the tracker reads none.
    let n = 2000u32;
    for i in 0..n {
        writer.set_u32("test.sock.k", i).unwrap();
    }
    dispatch_until(&mut tracker, &seen, 3 + n as usize);
    let got = seen.lock().unwrap().clone();
    assert_eq!(
        got[..3],
        [
            (Ev::Add, "test.sock.a".into(), Some(OwnedValue::UInt32(1))),
            (Ev::Add, "test.sock.b".into(), Some(OwnedValue::String("x".into()))),
            (Ev::Delete, "test.sock.a".into(), None),
        ]
    );
    let values: Vec<Option<OwnedValue>> = got[3..].iter().map(|e| e.2.clone()).collect();
    assert_eq!(values, (0..n).map(|i| Some(OwnedValue::UInt32(i))).collect::<Vec<_>>());
    // Every datagram sent was counted, and uncounted when read.
    let sent: Vec<i32> =
        [0, 8, 16].iter().map(|&o| control.atomic_i32(o).unwrap().load(Ordering::Acquire)).collect();
    assert_eq!(sent, vec![0, 0, 0]);
    // Pipelined requests.
    let names: Vec<String> = (0..100).map(|i| format!("test.sock.many.{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        writer.set_u64(name, i as u64).unwrap();
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let values = writer.get_many(&refs).unwrap();
    assert!(values.iter().enumerate().all(|(i, v)| *v == Ok(OwnedValue::UInt64(i as u64))), "{values:?}");
    assert_eq!(writer.dump(Some("test.sock.many.")).unwrap().len(), 100);
    let mut vq = server.votequorum();
    assert!(vq.get_info(0).unwrap().is_quorate());
    drop((tracker, writer, vq, control));
    server.wait_dirs(0);
}

/// The tracker does not read its events while far more arrive than its event ring holds:
/// they wait in the server and all arrive, in order.
#[test]
fn full_event_ring_keeps_events() {
    let server = TestServer::start("evfull");
    let mut tracker = server.cmap_with(cmap::Options { max_msg_size: 8192, ..cmap::Options::default() });
    let seen: Seen = Arc::default();
    tracker.track_add(Some("test.flood."), TrackType::ALL, recorder(&seen)).unwrap();
    let mut writer = server.cmap();
    let n = 300u32; // ~350 bytes each: about seven times the 16 KiB event ring
    for i in 0..n {
        writer.set_u32("test.flood.k", i).unwrap();
    }
    dispatch_until(&mut tracker, &seen, n as usize);
    let values: Vec<Option<OwnedValue>> = seen.lock().unwrap().iter().map(|e| e.2.clone()).collect();
    assert_eq!(values, (0..n).map(|i| Some(OwnedValue::UInt32(i))).collect::<Vec<_>>());
    assert_eq!(writer.get_u32("test.flood.k").unwrap(), n - 1);
}

#[test]
fn pipelined_get_many() {
    let server = TestServer::start("many");
    let mut cmap = server.cmap();
    let names: Vec<String> = (0..200).map(|i| format!("test.many.{i}")).collect();
    for (i, name) in names.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
        cmap.set_u64(name, i as u64).unwrap();
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let results = cmap.get_many(&refs).unwrap();
    for (i, r) in results.into_iter().enumerate() {
        if i % 3 == 0 {
            assert_eq!(r.map_err(|e| e.cs_error()), Err(CsError::NotExist));
        } else {
            assert_eq!(r, Ok(OwnedValue::UInt64(i as u64)));
        }
    }
}

/// More pipelined requests than the response ring holds replies: the server keeps the
/// reply that does not fit, stops reading requests, and resumes as the client reads.
#[test]
fn full_response_ring_holds_replies() {
    let server = TestServer::start("respfull");
    server.cmap().set_string("test.resp", "v").unwrap();
    let mut raw = server.raw(8192);
    // 50 requests fit the 16 KiB request ring; their 1040-byte replies are three times the
    // 16 KiB response ring.
    let n = 50;
    for _ in 0..n {
        raw.send(&get_request("test.resp", 1000));
    }
    for _ in 0..n {
        let reply = raw.recv();
        assert_eq!(reply.len(), 1040);
        assert_eq!((i32_at(&reply, 0), i32_at(&reply, 16)), (2, 1), "GET reply, CS_OK");
        assert_eq!(&reply[40..42], b"v\0");
    }
}

#[test]
fn votequorum_getinfo_and_tracking() {
    let server = TestServer::start_with("vq", |cfg| {
        cfg.initial.push(("quorum.expected_votes".into(), OwnedValue::UInt32(2)));
        cfg.nodes.push((2, 1, corowire::votequorum::NodeState::MEMBER));
    });
    let mut vq = server.votequorum();
    let info = vq.get_info(0).unwrap();
    assert_eq!((info.nodeid, info.votes, info.expected_votes, info.total_votes), (1, 1, 2, 2));
    assert!(info.is_quorate());
    assert_eq!(vq.get_info(2).unwrap().nodeid, 2);
    assert_eq!(vq.get_info(9).unwrap_err().cs_error(), CsError::NotExist);
    let seen: Arc<Mutex<Vec<i32>>> = Arc::default();
    let record = Arc::clone(&seen);
    vq.set_callback(move |n: &Notification<'_>| record.lock().unwrap().push(n.id()));
    vq.track_start(7, TrackFlags::CHANGES).unwrap();
    vq.dispatch(DispatchMode::All).unwrap();
    // TRACKSTART with CHANGES sends the node list and the quorum state first.
    assert_eq!(*seen.lock().unwrap(), vec![5, 3]);
    vq.set_expected(3).unwrap();
    wait_until(
        || {
            vq.dispatch(DispatchMode::All).unwrap();
            seen.lock().unwrap().len() >= 3
        },
        || format!("{:?}", seen.lock().unwrap()),
    );
    assert_eq!(seen.lock().unwrap()[2], 4, "EXPECTEDVOTES notification");
    vq.track_stop().unwrap();
}

#[test]
fn malformed_frames_only_hurt_their_sender() {
    let server = TestServer::start("hostile");
    let mut good = server.cmap();
    good.set_u32("test.good", 1).unwrap();

    // Unknown id: corosync's generic reply (id 0, 24 bytes, CS_ERR_INVALID_PARAM); the
    // connection stays up.
    let mut survivor = server.raw(16384);
    survivor.send(&raw_frame(99, 16, 0));
    let reply = survivor.recv();
    assert_eq!((reply.len(), i32_at(&reply, 0), i32_at(&reply, 16)), (24, 0, 7));
    // A known id with a malformed body: that request's reply shape with INVALID_PARAM.
    survivor.send(&raw_frame(1, 20, 4));
    assert_eq!(i32_at(&survivor.recv(), 16), 7);
    // A doorbell byte without a request is ignored.
    send_all(&survivor.transport, &[0]).unwrap();
    survivor.send(&get_request("test.good", 4));
    assert_eq!(i32_at(&survivor.recv(), 16), 1);

    // Each of these drops its connection.
    let bad_size = |size: i32| raw_frame(2, size, 0);
    for (what, frame) in [
        ("hdr.size 0", bad_size(0)),
        ("negative hdr.size", bad_size(-5)),
        ("hdr.size above max", bad_size(16385)),
        ("shorter than a header", vec![1u8; 8]),
        // libqb's QB_IPC_MSG_DISCONNECT: closed as libqb closes it, without a reply.
        ("DISCONNECT request", raw_frame(-3, 16, 0)),
    ] {
        let mut raw = server.raw(16384);
        raw.send(&frame);
        assert!(raw.closed(), "{what}: connection not closed");
    }
    // A chunk whose magic is not LIVE.
    let before = server.dirs();
    let mut raw = server.raw(16384);
    let dir = server.dirs().into_iter().find(|d| !before.contains(d)).unwrap();
    raw.transport.request_ring_mut().write_chunk(&get_request("test.good", 4)).unwrap();
    let data = dir.join(format!("qb-request-{}-data", server.cmap_name));
    SharedMapping::open(&data).unwrap().atomic_u32(4).unwrap().store(0xDEAD_BEEF, Ordering::Release);
    send_all(&raw.transport, &[1]).unwrap();
    assert!(raw.closed(), "bad magic: connection not closed");

    // The well-behaved client never noticed.
    good.inc("test.good").unwrap();
    assert_eq!(good.get_u32("test.good").unwrap(), 2);
    survivor.send(&get_request("test.good", 4));
    assert_eq!(i32_at(&survivor.recv(), 16), 1);
    drop((good, raw, survivor));
    server.wait_dirs(0);
}

#[test]
fn bad_setup_requests_are_closed() {
    let server = TestServer::start("setup");
    // An id other than −1: closed without a reply.
    let sock = corowire_unix::sys::sock::connect_setup(&server.cmap_name).unwrap();
    send_all(&sock, &raw_frame(5, 24, 8)).unwrap();
    let mut buf = [0u8; 16];
    let n = nix::sys::socket::recv(sock.as_raw_fd(), &mut buf, nix::sys::socket::MsgFlags::empty()).unwrap();
    assert_eq!(n, 0, "no reply, end of file");
    // A size above the server's limit: refused with -ENOMEM.
    let big = TestServer::start_with("setup-limit", |cfg| cfg.max_msg_size_limit = 1 << 20);
    let err = Cmap::connect_with(cmap::Options {
        service_name: Some(big.cmap_name.clone()),
        max_msg_size: 2 << 20,
        ..cmap::Options::default()
    })
    .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    // A size without room for a request header: refused with -EINVAL (libqb clients never ask
    // for less than 12328 bytes; a hand-made request can).
    let mut tiny = [0u8; 24];
    let n = corowire::qb::ConnectRequest { max_msg_size: 15 }.encode(&mut tiny).unwrap();
    let (_sock, response) =
        handshake::exchange(&server.cmap_name, &tiny[..n], Some(Duration::from_secs(10))).unwrap();
    let refused = corowire::qb::ConnectResponse::decode(&response).unwrap().map(|r| r.max_msg_size);
    assert_eq!(refused, Err(corowire::error::SetupError { errno: 22 }));
    // The server's floor raises a smaller request.
    let floored = TestServer::start_with("setup-floor", |cfg| cfg.max_msg_size_floor = 65536 + 1000);
    let small = floored.cmap_with(cmap::Options { max_msg_size: 8192, ..cmap::Options::default() });
    assert_eq!(small.max_msg_size(), 66536);
    // Silence on the setup socket does not block other clients.
    let _silent = corowire_unix::sys::sock::connect_setup(&server.cmap_name).unwrap();
    server.cmap().set_u8("test.after", 1).unwrap();
    server.wait_dirs(0);
}

#[test]
fn files_are_laid_out_as_libqb_and_removed_after_disconnect() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let server = TestServer::start("cleanup");
    let cmap = server.cmap();
    let vq = server.votequorum();
    let dirs = server.wait_dirs(2);
    let pid = std::process::id();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(&format!("qb-{pid}-{pid}-")), "{name}");
        assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777, 0o770);
        let mut files: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        let service = if files[0].ends_with(&format!("{}-data", server.cmap_name)) {
            &server.cmap_name
        } else {
            &server.vq_name
        };
        let expected: Vec<String> = ["event", "request", "response"]
            .iter()
            .flat_map(|kind| ["data", "header"].map(|f| format!("qb-{kind}-{service}-{f}")))
            .collect();
        assert_eq!(files, expected);
        for file in &files {
            let meta = std::fs::metadata(dir.join(file)).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o600, "{file}");
            // 64 KiB asked for: round_up(65536 + 13, 4096) bytes of data.
            assert_eq!(meta.len(), if file.ends_with("header") { 8252 } else { 69632 }, "{file}");
        }
        let header = SharedMapping::open(&dir.join(&files[3])).unwrap();
        let word = |off| header.atomic_u32(off).unwrap().load(Ordering::Acquire);
        assert_eq!(word(8), 69632 / 4, "word_size");
        assert_eq!(word(8204), 2, "ref_count: server and client");
        assert_eq!(word(8216), 128, "process-shared semaphore");
        assert_eq!(word(8240), 0, "flow control");
        let mut path = vec![0u8; 4096];
        header.read_bytes(4108, &mut path).unwrap();
        let data_path = dir.join(&files[2]);
        assert_eq!(
            &path[..path.iter().position(|&b| b == 0).unwrap()],
            data_path.as_os_str().as_encoded_bytes()
        );
    }
    drop(cmap);
    server.wait_dirs(1);
    drop(vq);
    server.wait_dirs(0);
}

#[test]
fn killed_client_is_cleaned_up() {
    if let Ok(name) = std::env::var("COROWIRE_SERVER_TEST_CHILD") {
        // The child: connect, say so, and wait to be killed.
        let _cmap =
            Cmap::connect_with(cmap::Options { service_name: Some(name), ..cmap::Options::default() })
                .unwrap();
        println!("connected");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let server = TestServer::start("sigkill");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "killed_client_is_cleaned_up", "--nocapture", "--test-threads=1"])
        .env("COROWIRE_SERVER_TEST_CHILD", &server.cmap_name)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    server.wait_dirs(1);
    child.kill().unwrap();
    child.wait().unwrap();
    server.wait_dirs(0);
    server.cmap().set_u8("test.alive", 1).unwrap();
}

#[test]
fn many_clients_at_once() {
    let server = TestServer::start("crowd");
    let name = server.cmap_name.clone();
    let threads: Vec<_> = (0..24)
        .map(|t| {
            let name = name.clone();
            std::thread::spawn(move || {
                let mut cmap = Cmap::connect_with(cmap::Options {
                    service_name: Some(name),
                    ..cmap::Options::default()
                })
                .unwrap();
                for i in 0..50u32 {
                    let key = format!("test.crowd.{t}.{i}");
                    cmap.set_u32(&key, i * t).unwrap();
                    assert_eq!(cmap.get_u32(&key).unwrap(), i * t);
                }
                cmap.iter(Some(&format!("test.crowd.{t}."))).unwrap().count()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 50);
    }
    let total = server.cmap().iter(Some("test.crowd.")).unwrap().count();
    assert_eq!(total, 24 * 50);
    server.wait_dirs(0);
}

/// Random frames of every request id, with a correct `hdr.size`: each gets a reply (an error
/// reply, mostly), the server survives, and a normal client is not disturbed.
#[test]
fn random_frames_get_replies() {
    let server = TestServer::start("random");
    let mut good = server.cmap();
    let mut raw = server.raw(16384);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..2000 {
        let len = 16 + (next() % 600) as usize;
        let mut frame: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let id = (next() % 14) as i32 - 1;
        frame[..4].copy_from_slice(&id.to_ne_bytes());
        frame[8..12].copy_from_slice(&(len as i32).to_ne_bytes());
        raw.send(&frame);
        let reply = raw.recv();
        assert!(reply.len() >= 24, "round {round}: {} bytes", reply.len());
        if round % 100 == 0 {
            good.set_u32("test.random.alive", round).unwrap();
        }
    }
    assert_eq!(good.get_u32("test.random.alive").unwrap(), 1900);
}

/// A server that goes away closes its connections: clients see the disconnect, and the
/// files are gone.
#[test]
fn stopping_the_server_disconnects_clients() {
    let mut server = TestServer::start("stop");
    let mut cmap = server.cmap();
    cmap.set_u8("test.stop", 1).unwrap();
    assert_eq!(server.dirs().len(), 1);
    server.stop();
    assert_eq!(server.dirs(), Vec::<PathBuf>::new());
    assert_eq!(cmap.get_u8("test.stop").unwrap_err(), Error::Disconnected);
}

/// `run_until_signal` returns on SIGTERM; dropping the server then cleans up.
#[test]
fn sigterm_stops_run_until_signal() {
    use std::os::unix::thread::JoinHandleExt;
    let base = format!("corowire-test-{}-signal", std::process::id());
    let shm_dir = PathBuf::from(format!("/dev/shm/{base}"));
    let _ = std::fs::remove_dir_all(&shm_dir);
    std::fs::create_dir(&shm_dir).unwrap();
    let cfg = ServerConfig {
        cmap_name: format!("{base}-cmap"),
        votequorum_name: None,
        quorum_name: None,
        cfg_name: None,
        shm_dir: shm_dir.clone(),
        ..ServerConfig::default()
    };
    let name = cfg.cmap_name.clone();
    let mut server = Server::bind(cfg).unwrap();
    let thread = std::thread::spawn(move || server.run_until_signal().unwrap());
    let mut cmap =
        Cmap::connect_with(cmap::Options { service_name: Some(name), ..cmap::Options::default() }).unwrap();
    cmap.set_u8("test.signal", 1).unwrap();
    // Thread-directed: the server thread blocks SIGTERM and reads it from its signalfd.
    nix::sys::pthread::pthread_kill(thread.as_pthread_t(), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(
        thread.join().unwrap(),
        corowire_unix::server::Stop::Signal(nix::sys::signal::Signal::SIGTERM)
    );
    assert_eq!(std::fs::read_dir(&shm_dir).unwrap().count(), 0, "files removed");
    assert_eq!(cmap.get_u8("test.signal").unwrap_err(), Error::Disconnected);
    std::fs::remove_dir(&shm_dir).unwrap();
}

/// A configuration file sets CMAP keys and, through corosync's keys, the quorum model.
#[test]
fn config_file_sets_keys_and_quorum() {
    let file = std::env::temp_dir().join(format!("corowire-test-{}.conf", std::process::id()));
    std::fs::write(
        &file,
        "# a three-node cluster seen from node 2\n\
         totem.cluster_name str three nodes\n\
         totem.nodeid u32 2\n\
         quorum.expected_votes u32 4\n\
         nodelist.node.0.nodeid u32 1\n\
         nodelist.node.1.nodeid u32 2\n\
         nodelist.node.1.quorum_votes u32 2\n\
         nodelist.node.2.nodeid u32 3\n\
         uidgid.uid.4242 u8 1\n\
         quorum.provider str corosync_votequorum\n",
    )
    .unwrap();
    let server = TestServer::start_with("conffile", |cfg| {
        cfg.initial.clear();
        cfg.load_file(&file).unwrap();
    });
    std::fs::remove_file(&file).unwrap();
    let mut cmap = server.cmap();
    assert_eq!(cmap.get_string("totem.cluster_name").unwrap(), "three nodes");
    assert_eq!(cmap.get_u8("uidgid.uid.4242").unwrap(), 1);
    let info = server.votequorum().get_info(0).unwrap();
    assert_eq!((info.nodeid, info.votes, info.expected_votes, info.total_votes), (2, 2, 4, 4));
    assert_eq!((info.quorum, info.is_quorate()), (3, true));
    assert_eq!(server.votequorum().get_info(3).unwrap().votes, 1);
}

/// Without `quorum.provider` (corosync without a quorum section) there is no votequorum: no
/// service to connect to and no `runtime.votequorum.*` key.
#[test]
fn no_quorum_provider_no_votequorum() {
    let server =
        TestServer::start_with("noquorum", |cfg| cfg.initial.retain(|(k, _)| k != "quorum.provider"));
    let mut cmap = server.cmap();
    assert!(cmap.get_u32("runtime.votequorum.this_node_id").is_err());
    let vq = Votequorum::connect_with(votequorum::Options {
        service_name: Some(server.vq_name.clone()),
        ..votequorum::Options::default()
    });
    assert!(vq.is_err(), "votequorum served without a quorum provider");
}
