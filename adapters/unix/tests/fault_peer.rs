//! A fault-injecting peer for the blocking client: an in-process libqb server (shared memory,
//! or the socket transport), built from this crate's ring, socket and setup-socket code and
//! the core's CMAP engine, that misbehaves on purpose (issue 13). For each fault the client
//! must not panic, must return within its `Options::timeout` (a watchdog fails the test if a
//! call hangs), and must report the fault as a clear error.

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc;

use corowire::qb::{
    ConnectRequest, ConnectResponse, ConnectionType, CONNECTION_REQUEST_LEN, CONNECTION_RESPONSE_LEN,
};
use corowire::server::cmap::CmapEngine;
use corowire::server::store::BTreeStore;
use corowire::server::ConnId;
use corowire::wire::ring::{MAGIC_LIVE, READ_PT_OFFSET, WRITE_PT_OFFSET};
use corowire_unix::ring::ShmRing;
use corowire_unix::sys::sock::{
    accept_with_passcred, bind_dgram, connect_dgram, listen_abstract, poll_readable, recv_dgram,
    recv_exact_with_creds, send_dgram, PollState,
};
use corowire_unix::transport::socket::channel_name;
use corowire_unix::transport::TransportError;
use corowire_unix::{CheckError, Cmap, ConnectError, Error, Options};

/// What the fake server does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Accepts the setup connection and never answers it.
    SetupSilent,
    /// Sends half the setup response, then closes.
    SetupHalf,
    /// Sends the setup response one byte per `send`, then serves correctly.
    SetupByteByByte,
    /// Never answers a request.
    Silent,
    /// Writes the reply into the ring but never posts the ring's semaphore.
    NoPost,
    /// Replies with a message id no request has.
    UnknownId,
    /// Replies with a header whose size field is smaller than a reply header.
    SizeLie,
    /// Sends a reply to a request the client never made before the real one.
    OutOfOrder,
    /// Posts the semaphore with the response ring's read pointer out of the ring.
    RingHeaderLie,
    /// Posts a chunk whose size word is larger than the ring.
    ChunkSizeLie,
    /// Closes the connection and its rings after reading a request, without a reply.
    CloseMidway,
    /// Answers the first ITER_NEXT request of an iteration, closes at the second.
    CloseInIteration,
    /// Socket transport: sends each reply as datagrams of one byte each.
    SocketByteByByte,
    /// Socket transport: the control file says flow control is on (stop sending) forever.
    SocketFlowControlOff,
}

/// A fresh private service name and ring directory base for one fake server.
fn unique(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("corowire-fault-{}-{}-{what}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// When the fake server's thread ends, even by a panic: removes its ring directory, then
/// tells the test.
struct Ended {
    dir: PathBuf,
    done: mpsc::Sender<()>,
}

impl Drop for Ended {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = self.done.send(());
    }
}

/// Starts a fake server with `fault` on its own thread and returns the name to connect to
/// and a receiver that gets a message when the server has ended (once the client closed).
fn fake_server(fault: Fault) -> (String, mpsc::Receiver<()>) {
    let name = unique("cmap");
    let listener = listen_abstract(name.as_bytes()).expect("listen");
    let (done, ended) = mpsc::channel();
    // Named as a libqb connection directory: clients refuse rings anywhere else.
    let guard = Ended { dir: PathBuf::from("/dev/shm").join(format!("qb-{name}")), done };
    std::thread::spawn(move || {
        let sock = accept_with_passcred(&listener).expect("accept");
        let mut request = [0u8; CONNECTION_REQUEST_LEN];
        recv_exact_with_creds(&sock, &mut request).expect("setup request");
        let max = ConnectRequest::decode(&request).expect("a setup request").max_msg_size;
        serve(fault, &sock, &guard.dir, max);
    });
    (name, ended)
}

/// The three rings of one connection, in `dir`.
struct Rings {
    request: ShmRing,
    response: ShmRing,
    _event: ShmRing,
    bases: [PathBuf; 3],
}

fn create_rings(dir: &std::path::Path, max: u32) -> Rings {
    std::fs::create_dir(dir).expect("ring directory");
    let dir_fd = std::fs::File::open(dir).expect("open the ring directory");
    let bases = ["request", "response", "event"].map(|kind| dir.join(format!("qb-{kind}-cmap")));
    let [request, response, event] =
        bases.each_ref().map(|b| ShmRing::create(dir_fd.as_fd(), b, max, 4096, (None, None)).expect("ring"));
    Rings { request, response, _event: event, bases }
}

fn send(sock: &OwnedFd, bytes: &[u8]) {
    let mut file = std::fs::File::from(sock.try_clone().expect("dup"));
    // The client may be gone already (it gave up): not the server's failure.
    let _ = file.write_all(bytes);
}

/// Waits until the client closes its end (so that the rings outlive its calls).
fn wait_for_close(sock: &OwnedFd) {
    let mut byte = [0u8; 1];
    while recv_exact_with_creds(sock, &mut byte).is_ok() {}
}

fn serve(fault: Fault, sock: &OwnedFd, dir: &std::path::Path, max: u32) {
    if fault == Fault::SetupSilent {
        return wait_for_close(sock);
    }
    if matches!(fault, Fault::SocketByteByByte | Fault::SocketFlowControlOff) {
        return serve_socket(fault, sock, dir, max);
    }
    let rings = create_rings(dir, max);
    let mut out = vec![0u8; CONNECTION_RESPONSE_LEN];
    let [request, response, event] = rings.bases.each_ref().map(|p| p.as_os_str().as_encoded_bytes());
    let n = ConnectResponse {
        connection_type: ConnectionType::Shm,
        max_msg_size: max,
        connection: 1,
        request,
        response,
        event,
    }
    .encode(&mut out)
    .expect("setup response");
    match fault {
        Fault::SetupHalf => return send(sock, &out[..n / 2]),
        Fault::SetupByteByByte => out[..n].iter().for_each(|b| send(sock, &[*b])),
        _ => send(sock, &out[..n]),
    }
    serve_requests(fault, sock, rings, max);
}

/// Answers requests through a CMAP engine, with `fault` applied to the replies.
fn serve_requests(fault: Fault, sock: &OwnedFd, mut rings: Rings, max: u32) {
    let mut engine: CmapEngine<BTreeStore> = CmapEngine::new(BTreeStore::new(), BTreeStore::new(), 1);
    engine.connect(ConnId(1)).expect("engine connect");
    let mut frame = Vec::new();
    let mut reply = vec![0u8; max as usize];
    let mut doorbell = [0u8; 1];
    let mut iter_next = 0;
    while recv_exact_with_creds(sock, &mut doorbell).is_ok() {
        let sem = rings.request.sem().expect("request sem");
        if !sem.try_wait() || rings.request.read_chunk(&mut frame).is_err() {
            continue;
        }
        if frame.get(..4) == Some(&ITER_NEXT_ID.to_ne_bytes()[..]) {
            iter_next += 1;
            if fault == Fault::CloseInIteration && iter_next == 2 {
                return;
            }
        }
        let n = engine.handle_request(ConnId(1), &frame, &mut reply).expect("engine reply");
        while engine.poll_notification(&mut reply[n..]).expect("notification").is_some() {}
        let reply = &mut reply[..n];
        match fault {
            Fault::Silent => continue,
            Fault::CloseMidway => return,
            Fault::UnknownId => reply[..4].copy_from_slice(&0x7777i32.to_ne_bytes()),
            Fault::SizeLie => reply[4..8].copy_from_slice(&8i32.to_ne_bytes()),
            Fault::OutOfOrder => {
                // A DELETE's reply (id 2) before the real one.
                let mut stale = reply.to_vec();
                stale[..4].copy_from_slice(&2i32.to_ne_bytes());
                rings.response.write_chunk(&stale).expect("write reply");
            }
            _ => {}
        }
        let chunk = Chunk::write(&rings.response, &rings.bases[1], reply);
        match fault {
            Fault::NoPost => continue,
            Fault::RingHeaderLie => chunk.header.write_all_at(&u32::MAX.to_ne_bytes(), READ_PT_OFFSET as u64),
            Fault::ChunkSizeLie => chunk.data.write_all_at(&0x7fff_fff0u32.to_ne_bytes(), chunk.size_at),
            _ => Ok(()),
        }
        .expect("lie");
        rings.response.sem().expect("response sem").post().expect("post");
    }
}

/// The socket transport (docs/protocol.md §3): a 24-byte control file and datagram sockets
/// on abstract names under `dir`, with `fault` applied.
fn serve_socket(fault: Fault, sock: &OwnedFd, dir: &std::path::Path, max: u32) {
    std::fs::create_dir(dir).expect("directory");
    let control = dir.join("qb-control-cmap");
    let mut words = [0u8; 24];
    if fault == Fault::SocketFlowControlOff {
        // request.flow_control = 1: the client must not send.
        words[4..8].copy_from_slice(&1i32.to_ne_bytes());
    }
    std::fs::write(&control, words).expect("control file");
    let base = dir.join("qb-cmap");
    let request = bind_dgram(&channel_name(&base, "request"), max as usize).expect("bind request");
    let _event = bind_dgram(&channel_name(&base, "event-tx"), max as usize).expect("bind event");
    let mut out = vec![0u8; CONNECTION_RESPONSE_LEN];
    let n = ConnectResponse {
        connection_type: ConnectionType::Socket,
        max_msg_size: max,
        connection: 1,
        request: control.as_os_str().as_encoded_bytes(),
        response: base.as_os_str().as_encoded_bytes(),
        event: b"",
    }
    .encode(&mut out)
    .expect("setup response");
    send(sock, &out[..n]);
    let mut engine: CmapEngine<BTreeStore> = CmapEngine::new(BTreeStore::new(), BTreeStore::new(), 1);
    engine.connect(ConnId(1)).expect("engine connect");
    let (mut frame, mut reply) = (Vec::new(), vec![0u8; max as usize]);
    let mut connected = false;
    loop {
        // The client is gone once the setup socket hangs up.
        if !matches!(poll_readable(sock, Some(Duration::ZERO)), Ok(PollState::Timeout)) {
            return;
        }
        if !matches!(poll_readable(&request, Some(Duration::from_millis(20))), Ok(PollState::Readable)) {
            continue;
        }
        if recv_dgram(&request, &mut frame).is_err() {
            continue;
        }
        let n = engine.handle_request(ConnId(1), &frame, &mut reply).expect("engine reply");
        if !connected {
            connect_dgram(&request, &channel_name(&base, "response")).expect("connect response");
            connected = true;
        }
        for byte in &reply[..n] {
            let _ = send_dgram(&request, core::slice::from_ref(byte));
        }
    }
}

/// A chunk committed to a ring through its files, without the semaphore post
/// `ShmRing::write_chunk` makes, so that a fault can be applied before the client may look.
struct Chunk {
    header: std::fs::File,
    data: std::fs::File,
    /// Byte offset of the chunk's size word in the data file.
    size_at: u64,
}

impl Chunk {
    /// libqb's commit order (docs/protocol.md §2.6): payload, size, `write_pt`, magic LIVE.
    fn write(ring: &ShmRing, base: &std::path::Path, payload: &[u8]) -> Self {
        let (header, data) = (ring_file(base, "-header"), ring_file(base, "-data"));
        let geometry = ring.geometry();
        let mut word = [0u8; 4];
        header.read_exact_at(&mut word, WRITE_PT_OFFSET as u64).expect("write_pt");
        let p = geometry.position(u32::from_ne_bytes(word)).expect("write_pt in the ring");
        let [first, second] = geometry.payload_ranges(p, payload.len());
        let (a, b) = payload.split_at(first.len());
        data.write_all_at(a, first.start as u64).expect("payload");
        data.write_all_at(b, second.start as u64).expect("payload");
        let size_at = u64::from(p) * 4;
        data.write_all_at(&(payload.len() as u32).to_ne_bytes(), size_at).expect("size");
        let next = geometry.next(p, payload.len()).expect("next");
        header.write_all_at(&next.to_ne_bytes(), WRITE_PT_OFFSET as u64).expect("write_pt");
        data.write_all_at(&MAGIC_LIVE.to_ne_bytes(), u64::from(geometry.magic_word(p)) * 4).expect("magic");
        Self { header, data, size_at }
    }
}

fn ring_file(base: &std::path::Path, suffix: &str) -> std::fs::File {
    let mut path = base.as_os_str().to_owned();
    path.push(suffix);
    std::fs::OpenOptions::new().read(true).write(true).open(path).expect("ring file")
}

/// The client's timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(300);
/// How long the watchdog waits for a call that must end after [`TIMEOUT`]: far longer, so
/// that a loaded machine does not fail the test, but finite, so that a hang does.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Connects to a fake server with `fault` and does one SET and one GET; returns the first
/// error, from a thread the watchdog abandons (failing the test) if it hangs. Returns after
/// the fake server ended, so that no ring directory outlives the test.
fn run(fault: Fault) -> Result<(), Error> {
    let (name, server_ended) = fake_server(fault);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = (|| -> Result<(), Error> {
            let options = Options { service_name: Some(name), timeout: Some(TIMEOUT), ..Options::default() };
            let mut cmap = Cmap::connect_with(options)?;
            cmap.set_u32("fault.key", 7)?;
            assert_eq!(cmap.get_u32("fault.key")?, 7);
            Ok(())
        })();
        let _ = tx.send(result);
    });
    let result =
        rx.recv_timeout(WATCHDOG).unwrap_or_else(|_| panic!("{fault:?}: the client hung or panicked"));
    // The client is gone: the server sees its socket closed and removes the ring directory.
    server_ended.recv_timeout(WATCHDOG).unwrap_or_else(|_| panic!("{fault:?}: the fake server did not end"));
    if let Err(e) = &result {
        // Every error says what went wrong.
        assert!(!e.to_string().is_empty(), "{fault:?}: {e:?}");
    }
    result
}

#[test]
fn a_correct_peer_is_served() {
    run(Fault::SetupByteByByte).expect("a setup response sent byte by byte is still one response");
}

/// The transport error a connect to a fake server with `fault` fails with.
fn setup_error(fault: Fault) -> TransportError {
    match run(fault) {
        Err(Error::Connect { reason: ConnectError::Transport(e), .. }) => e,
        other => panic!("{fault:?}: {other:?}"),
    }
}

#[test]
fn silent_setup_times_out() {
    assert!(matches!(setup_error(Fault::SetupSilent), TransportError::Timeout));
}

#[test]
fn half_a_setup_response_is_a_disconnect() {
    assert!(matches!(setup_error(Fault::SetupHalf), TransportError::Disconnected));
}

#[test]
fn silent_server_times_out() {
    assert!(matches!(run(Fault::Silent), Err(Error::Timeout)));
}

#[test]
fn missing_semaphore_post_times_out() {
    assert!(matches!(run(Fault::NoPost), Err(Error::Timeout)));
}

/// A reply with an id no request has, and a reply to a request never made ahead of the real
/// one.
#[test]
fn unknown_and_stale_replies_are_reported() {
    for fault in [Fault::UnknownId, Fault::OutOfOrder] {
        let e = run(fault).unwrap_err();
        assert!(matches!(e, Error::UnexpectedReply { .. } | Error::Protocol(_)), "{fault:?}: {e:?}");
    }
}

/// The chunk's length is what counts, as for libqb's `qb_ipcc_recv` and libcmap, which
/// never read a reply header's size field: a lie there changes nothing.
#[test]
fn lying_reply_size_field_is_not_trusted() {
    run(Fault::SizeLie).expect("the ring chunk's length is authoritative");
}

#[test]
fn lying_ring_header_is_reported() {
    let e = run(Fault::RingHeaderLie).unwrap_err();
    assert!(e.to_string().contains("ring"), "{e}");
}

#[test]
fn lying_chunk_size_is_reported() {
    let e = run(Fault::ChunkSizeLie).unwrap_err();
    assert!(e.to_string().contains("ring") || e.to_string().contains("chunk"), "{e}");
}

/// On the socket transport a datagram is a whole message: one-byte datagrams are truncated
/// replies.
#[test]
fn socket_reply_in_one_byte_datagrams_is_reported() {
    let e = run(Fault::SocketByteByByte).unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
}

/// libqb's client gives up at once (`EAGAIN`) while the server asks it to back off.
#[test]
fn socket_flow_control_off_is_busy() {
    let e = run(Fault::SocketFlowControlOff).unwrap_err();
    assert!(matches!(e, Error::Check(CheckError::Busy)), "{e:?}");
}

/// The id of CMAP's ITER_NEXT request (corosync's `MESSAGE_REQ_CMAP_ITER_NEXT`).
const ITER_NEXT_ID: i32 = 5;

/// Issue 13, item 7: a connection lost while a dump reads the key names keeps the names it
/// read, each holding the loss (before, the dump failed and they were lost), so that
/// `corowire cmap` can end as `corosync-cmapctl` does.
#[test]
fn a_dump_cut_while_reading_names_keeps_the_names_read() {
    let (name, server_ended) = fake_server(Fault::CloseInIteration);
    let options = Options { service_name: Some(name), timeout: Some(TIMEOUT), ..Options::default() };
    let mut cmap = Cmap::connect_with(options).expect("connect");
    cmap.set_u32("fault.a", 1).expect("set");
    cmap.set_u32("fault.b", 2).expect("set");
    let entries = cmap.dump(Some("fault.")).expect("a dump with the names read");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, "fault.a");
    assert!(matches!(entries[0].1, Err(Error::Disconnected)), "{entries:?}");
    drop(cmap);
    server_ended.recv_timeout(WATCHDOG).expect("the fake server did not end");
}

#[test]
fn close_mid_conversation_is_a_disconnect() {
    assert!(matches!(run(Fault::CloseMidway), Err(Error::Disconnected)));
}
