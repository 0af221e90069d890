//! `corowire gateway` in front of `corowire serve` (private names, no root, no corosync), with
//! `corowire-embedded`'s blocking client over a Unix stream as the test client, and raw frames
//! where a client must misbehave.

use core::cell::RefCell;
use core::time::Duration;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

#[path = "../../tests/support/corosync.rs"]
mod corosync;
#[path = "support/stream_io.rs"]
mod stream_io;
#[path = "../../adapters/unix/tests/common/unprivileged.rs"]
mod unprivileged;

use corowire::cmap::{TrackType, Value};
use corowire::driver::Error;
use corowire::stream::{decode, Channel, Frame, Hello, Kind, Services, VERSION};
use corowire::votequorum::Request as VqRequest;
use corowire::{CsError, Status};
use corowire_embedded::{no_clock, CmapClient, Link, LinkError, VotequorumClient};
use stream_io::{retrying, Io};

fn corowire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_corowire"))
}

/// A child process stopped with SIGTERM when dropped (`corowire serve` then removes its ring
/// files).
struct Proc(Child);

impl Proc {
    /// The threads the process runs (`/proc/PID/task`).
    fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.0.id())).map_or(0, Iterator::count)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// `corowire serve` under `prefix`, once it serves (its banner line).
fn serve(prefix: &str) -> Proc {
    let mut child = corowire()
        .args(["serve", "--name-prefix", prefix])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn corowire serve");
    let mut banner = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut banner).expect("banner");
    assert!(!banner.is_empty(), "corowire serve did not start");
    Proc(child)
}

/// A test: a private server, a gateway in front of it on a socket in a private directory.
struct Setup {
    dir: PathBuf,
    /// The private server's name prefix; `None`: the harness's corosync.
    prefix: Option<String>,
    /// Dropped before the server: its upstream connections close first.
    gateway: Proc,
    server: Option<Proc>,
}

impl Setup {
    /// A gateway in front of its own `corowire serve`.
    fn new(tag: &str, flags: &[&str]) -> Self {
        let prefix = format!("gwtest-{}-{tag}", std::process::id());
        let server = serve(&prefix);
        Self::start(tag, Some(prefix), Some(server), flags)
    }

    /// A gateway in front of corosync (the harness's).
    fn corosync(tag: &str, flags: &[&str]) -> Self {
        Self::start(tag, None, None, flags)
    }

    fn start(tag: &str, prefix: Option<String>, server: Option<Proc>, flags: &[&str]) -> Self {
        Self::start_at(tag, prefix, server, flags, |_| ())
    }

    /// A gateway in front of its own `corowire serve`, allowed `nofile` open files.
    fn start_limited(tag: &str, nofile: u32) -> Self {
        let prefix = format!("gwtest-{}-{tag}", std::process::id());
        let server = serve(&prefix);
        let exe = env!("CARGO_BIN_EXE_corowire");
        let mut gateway = Command::new("sh");
        gateway.args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""), exe, "gateway"]);
        gateway.args(["--max-clients", "100"]);
        Self::spawn(tag, Some(prefix), Some(server), gateway, |_| ())
    }

    /// As [`Setup::start`], with `prepare` run on the socket's path (in a new, empty private
    /// directory) before the gateway starts.
    fn start_at(
        tag: &str,
        prefix: Option<String>,
        server: Option<Proc>,
        flags: &[&str],
        prepare: impl FnOnce(&std::path::Path),
    ) -> Self {
        let mut gateway = corowire();
        gateway.arg("gateway").args(flags);
        Self::spawn(tag, prefix, server, gateway, prepare)
    }

    /// Runs `gateway` (a gateway's command line, without its `--listen`).
    fn spawn(
        tag: &str,
        prefix: Option<String>,
        server: Option<Proc>,
        mut gateway: Command,
        prepare: impl FnOnce(&std::path::Path),
    ) -> Self {
        let dir = tempdir(tag);
        let sock = dir.join("gw.sock");
        prepare(&sock);
        gateway.arg("--listen").arg(format!("unix:{}", sock.display()));
        match &prefix {
            Some(p) => gateway.env("COROWIRE_NAME_PREFIX", p),
            None => gateway.env_remove("COROWIRE_NAME_PREFIX"),
        };
        let gateway = gateway
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn corowire gateway");
        Self { dir, prefix, gateway: Proc(gateway), server }
    }

    /// A new stream to the gateway (waits for it to listen).
    fn stream(&self) -> UnixStream {
        let path = self.dir.join("gw.sock");
        for _ in 0..500 {
            if let Ok(s) = UnixStream::connect(&path) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the gateway does not listen on {}", path.display());
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

type TestLink = Link<Io, 4096, 4096>;

fn link(setup: &Setup) -> RefCell<TestLink> {
    let stream = setup.stream();
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut link = Link::new(Io::new(stream), no_clock);
    link.connect(Services::ALL, None).expect("hello");
    RefCell::new(link)
}

/// Sends `frames` raw and reads what comes back until the gateway closes the stream.
fn raw_exchange(stream: &mut UnixStream, bytes: &[u8]) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    stream.write_all(bytes).expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match retrying(|| stream.read(&mut buf)) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e} after {got:?}"),
        }
    }
}

fn encode(frame: Frame<'_>) -> Vec<u8> {
    let mut out = vec![0u8; frame.encoded_len()];
    let n = frame.encode(&mut out).expect("encode");
    out.truncate(n);
    out
}

/// The frames in `bytes` (all complete), as (tag, payload).
fn frames(mut bytes: &[u8]) -> Vec<Frame<'_>> {
    let mut all = Vec::new();
    while !bytes.is_empty() {
        let Ok(Status::Complete((frame, used))) = decode(bytes, usize::from(u16::MAX)) else {
            panic!("undecodable frames from the gateway: {bytes:?}");
        };
        all.push(frame);
        bytes = &bytes[used..];
    }
    all
}

const HELLO: Hello = Hello { version: VERSION, services: Services::ALL, max_payload: 4096 };

#[test]
fn reads_pass_writes_only_under_the_allowed_prefix() {
    let setup = Setup::new("policy", &["--allow-write", "test."]);
    let link = link(&setup);
    let mut cmap: CmapClient<'_, Io, 4096, 4096, 4090> = CmapClient::new(&link, None).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(cmap.get_string("totem.cluster_name", &mut buf), Ok("corowire"));
    cmap.set_u32("test.allowed", 5).unwrap();
    assert_eq!(cmap.get_u32("test.allowed"), Ok(5));
    assert_eq!(cmap.set_u32("other.key", 5), Err(Error::Cs(CsError::Access)));
    assert_eq!(cmap.delete("totem.cluster_name"), Err(Error::Cs(CsError::Access)));
    assert_eq!(cmap.set("tes", Value::UInt8(1)), Err(Error::Cs(CsError::Access)));
    assert_eq!(cmap.get_string("totem.cluster_name", &mut buf), Ok("corowire"));
    assert_eq!(cmap.get_u32("other.key"), Err(Error::Cs(CsError::NotExist)));
    cmap.delete("test.allowed").unwrap();

    let mut vq: VotequorumClient<'_, Io, 4096, 4096, 4090> = VotequorumClient::new(&link, None).unwrap();
    assert_eq!(vq.get_info(0, |i| i.nodeid), Ok(1));
}

#[test]
fn votequorum_writes_need_their_flag() {
    for (flags, expected) in
        [(&[][..], CsError::Access), (&["--allow-votequorum-write"][..], CsError::InvalidParam)]
    {
        let setup = Setup::new(if flags.is_empty() { "vq-ro" } else { "vq-rw" }, flags);
        let mut request = vec![0u8; 64];
        let n = VqRequest::SetExpected { expected_votes: 0 }.encode(&mut request).unwrap();
        let mut bytes = encode(Frame::Hello(HELLO));
        bytes.extend(encode(Frame::Message {
            channel: Channel::Votequorum,
            kind: Kind::Request,
            payload: &request[..n],
        }));
        let mut stream = setup.stream();
        stream.write_all(&bytes).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let got = raw_exchange(&mut stream, &[]);
        let got = frames(&got);
        assert!(matches!(got[0], Frame::Accept(a) if a.result.is_ok()), "{got:?}");
        let Frame::Message { channel: Channel::Votequorum, kind: Kind::Reply, payload } = got[1] else {
            panic!("{got:?}");
        };
        let reply = corowire::votequorum::Reply::decode(payload).unwrap();
        // Expected votes 0 reaches the server only with the flag, which refuses it itself.
        assert_eq!(reply.result, Err(expected), "{flags:?}");
    }
}

#[test]
fn a_garbage_client_is_closed_and_a_good_one_is_not() {
    let setup = Setup::new("garbage", &[]);
    let link = link(&setup);
    let mut cmap: CmapClient<'_, Io, 4096, 4096, 4090> = CmapClient::new(&link, None).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(cmap.get_string("totem.cluster_name", &mut buf), Ok("corowire"));

    // Not a frame at all: closed without an answer.
    assert_eq!(raw_exchange(&mut setup.stream(), b"GET / HTTP/1.0\r\n\r\n"), b"");
    // A valid hello, then a CMAP request frame whose libqb message is garbage: accepted, then
    // closed; the request never reaches the server.
    let mut bytes = encode(Frame::Hello(HELLO));
    bytes.extend(encode(Frame::Message {
        channel: Channel::Cmap,
        kind: Kind::Request,
        payload: &[0xFF; 40],
    }));
    let got = raw_exchange(&mut setup.stream(), &bytes);
    assert!(matches!(frames(&got)[..], [Frame::Accept(a)] if a.result.is_ok()), "{got:?}");
    // A frame with a wrong CRC after the hello.
    let mut bad = encode(Frame::Message { channel: Channel::Cmap, kind: Kind::Request, payload: &[0; 24] });
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut bytes = encode(Frame::Hello(HELLO));
    bytes.extend(bad);
    let got = raw_exchange(&mut setup.stream(), &bytes);
    assert_eq!(frames(&got).len(), 1, "{got:?}");

    assert_eq!(cmap.get_string("totem.cluster_name", &mut buf), Ok("corowire"));
}

/// A client speaking raw frames: a hello, then one request at a time.
struct RawClient {
    stream: UnixStream,
    got: Vec<u8>,
}

impl RawClient {
    /// Sends the hello and checks the accept.
    fn new(stream: UnixStream) -> Self {
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let mut client = Self { stream, got: Vec::new() };
        client.stream.write_all(&encode(Frame::Hello(HELLO))).expect("write");
        let accept = client.next_frame();
        assert!(
            matches!(decode(&accept, 1 << 16), Ok(Status::Complete((Frame::Accept(a), _))) if a.result.is_ok())
        );
        client
    }

    /// The next frame's bytes.
    fn next_frame(&mut self) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(Status::Complete((_, used))) = decode(&self.got, usize::from(u16::MAX)) {
                return self.got.drain(..used).collect();
            }
            let n = retrying(|| self.stream.read(&mut buf))
                .unwrap_or_else(|e| panic!("read: {e} after {:?}", self.got));
            assert!(n > 0, "closed after {:?}", self.got);
            self.got.extend_from_slice(&buf[..n]);
        }
    }

    /// Sends `request` on `channel`; the reply's payload.
    fn call(&mut self, channel: Channel, request: &[u8]) -> Vec<u8> {
        let frame = encode(Frame::Message { channel, kind: Kind::Request, payload: request });
        self.stream.write_all(&frame).expect("write");
        let reply = self.next_frame();
        match decode(&reply, usize::from(u16::MAX)) {
            Ok(Status::Complete((Frame::Message { channel: c, kind: Kind::Reply, payload }, _)))
                if c == channel =>
            {
                payload.to_vec()
            }
            other => panic!("{other:?}"),
        }
    }

    /// Sends a CMAP `request`; the reply's status.
    fn cmap(&mut self, request: corowire::cmap::Request<'_>) -> Result<(), CsError> {
        let mut buf = vec![0u8; request.encoded_len()];
        let n = request.encode(&mut buf).unwrap();
        let reply = self.call(Channel::Cmap, &buf[..n]);
        corowire::cmap::Reply::decode(&reply).unwrap().result
    }

    /// Sends a votequorum `request`; the reply's status.
    fn votequorum(&mut self, request: VqRequest<'_>) -> Result<(), CsError> {
        let mut buf = vec![0u8; request.encoded_len()];
        let n = request.encode(&mut buf).unwrap();
        let reply = self.call(Channel::Votequorum, &buf[..n]);
        corowire::votequorum::Reply::decode(&reply).unwrap().result
    }
}

#[test]
fn the_track_limit_counts_what_the_daemon_holds() {
    use corowire::cmap::Request as Cmap;
    let setup = Setup::new("tracks", &["--max-tracks", "2"]);
    let mut client = RawClient::new(setup.stream());
    let add = |cookie| Cmap::TrackAdd { key: None, track_type: TrackType::ADD, track_inst_handle: cookie };
    assert_eq!(client.cmap(add(1)), Ok(()));
    assert_eq!(client.cmap(add(2)), Ok(()));
    assert_eq!(client.cmap(add(3)), Err(CsError::NoResources));
    // Neither a delete the daemon refuses nor votequorum track stops free a CMAP track.
    assert_eq!(client.cmap(Cmap::TrackDelete { track_handle: 0xdead }), Err(CsError::BadHandle));
    for _ in 0..20 {
        // Not tracking: the daemon says so.
        assert_eq!(client.votequorum(VqRequest::TrackStop), Err(CsError::NotExist));
    }
    assert_eq!(client.cmap(add(4)), Err(CsError::NoResources));
}

#[test]
fn a_get_whose_reply_cannot_fit_is_refused_and_leaves_nothing_behind() {
    let setup = Setup::new("toobig", &[]);
    // Listening: its threads at rest.
    drop(setup.stream());
    let idle = setup.gateway.threads();
    let key = corowire::cmap::Key::new(b"totem.cluster_name").unwrap();
    let get = |value_len| corowire::cmap::Request::Get { key, value_len };
    for value_len in (0..60).map(|i| if i % 2 == 0 { 200_000 } else { 4096 - 39 }) {
        assert_eq!(RawClient::new(setup.stream()).cmap(get(value_len)), Err(CsError::TooBig), "{value_len}");
    }
    // A GET that fits passes.
    assert_eq!(RawClient::new(setup.stream()).cmap(get(4096 - 40)), Ok(()));
    // Every client's threads (and with them its upstream connections) end: a bound, not a
    // timing.
    for _ in 0..2000 {
        if setup.gateway.threads() <= idle {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(setup.gateway.threads(), idle);
}

#[test]
fn a_client_stalled_mid_frame_is_closed() {
    let setup = Setup::new("stall", &["--stall-timeout", "1"]);
    let hello = encode(Frame::Hello(HELLO));
    // Half a hello, then silence: the gateway closes the stream without an answer.
    assert_eq!(raw_exchange(&mut setup.stream(), &hello[..3]), b"");
}

#[test]
fn idle_and_trickling_clients_are_closed_at_the_deadline() {
    let setup = Setup::new("deadline", &["--stall-timeout", "1", "--max-clients", "2"]);
    // Two clients that never say hello hold both slots, until their deadline.
    let idle = [setup.stream(), setup.stream()];
    let link = link(&setup);
    let mut cmap: CmapClient<'_, Io, 4096, 4096, 4090> = CmapClient::new(&link, None).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(cmap.get_string("totem.cluster_name", &mut buf), Ok("corowire"));
    drop(idle);
    // A hello a byte at a time, each within the stall timeout: the whole frame's deadline
    // closes it before it completes.
    let mut stream = setup.stream();
    let mut writer = stream.try_clone().expect("clone");
    let trickle = std::thread::spawn(move || {
        for byte in encode(Frame::Hello(HELLO)) {
            if writer.write_all(&[byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(400));
        }
    });
    assert_eq!(raw_exchange(&mut stream, &[]), b"");
    trickle.join().expect("trickle");
}

#[test]
fn a_stopped_server_resets_the_session_and_a_hello_is_answered_try_again() {
    let setup = Setup::new("stopped", &["--stall-timeout", "1"]);
    let pid = setup.server.as_ref().expect("server").0.id().to_string();
    /// Lets the server run again when dropped (a panic included): a stopped one never stops.
    struct Cont<'a>(&'a str);
    impl Drop for Cont<'_> {
        fn drop(&mut self) {
            corosync::signal("-CONT", self.0);
        }
    }
    let mut client = RawClient::new(setup.stream());
    corosync::signal("-STOP", &pid);
    let cont = Cont(&pid);
    // A request the stopped server never answers: the session ends with a reset.
    let key = corowire::cmap::Key::new(b"totem.cluster_name").unwrap();
    let mut get = vec![0u8; 300];
    let n = corowire::cmap::Request::Get { key, value_len: 64 }.encode(&mut get).unwrap();
    client
        .stream
        .write_all(&encode(Frame::Message {
            channel: Channel::Cmap,
            kind: Kind::Request,
            payload: &get[..n],
        }))
        .unwrap();
    let reset = client.next_frame();
    assert!(matches!(frames(&reset)[..], [Frame::Reset(_)]), "{reset:?}");
    let got = raw_exchange(&mut setup.stream(), &encode(Frame::Hello(HELLO)));
    drop(cont);
    assert!(matches!(frames(&got)[..], [Frame::Accept(a)] if a.result == Err(CsError::TryAgain)), "{got:?}");
}

#[test]
fn running_out_of_file_descriptors_does_not_end_the_gateway() {
    // Each held client costs the gateway two descriptors: of two limits in a row, one makes
    // accept itself fail (EMFILE) rather than what follows it.
    for limit in [40, 41] {
        let tag = format!("emfile-{limit}");
        let setup = Setup::start_limited(&tag, limit);
        let held: Vec<UnixStream> = (0..30).map(|_| setup.stream()).collect();
        drop(held);
        // The gateway closes the held clients as it gets to them: a client may be dropped
        // until it has (a bound, not a timing).
        let served = (0..200).any(|_| {
            let stream = setup.stream();
            stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
            let mut link: TestLink = Link::new(Io::new(stream), no_clock);
            if link.connect(Services::ALL, None).is_err() {
                std::thread::sleep(Duration::from_millis(10));
                return false;
            }
            let link = RefCell::new(link);
            let mut cmap: CmapClient<'_, Io, 4096, 4096, 4090> = CmapClient::new(&link, None).unwrap();
            let mut buf = [0u8; 64];
            cmap.get_string("totem.cluster_name", &mut buf) == Ok("corowire")
        });
        assert!(served, "limit {limit}: the gateway serves no more");
    }
}

#[test]
fn a_server_restart_resets_the_client_which_starts_over() {
    let mut setup = Setup::new("restart", &[]);
    let link1 = link(&setup);
    let mut cmap: CmapClient<'_, Io, 4096, 4096, 4090> = CmapClient::new(&link1, None).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(cmap.get_string("totem.cluster_name", &mut buf), Ok("corowire"));

    drop(setup.server.take());
    // The gateway notices and sends a reset (the stream stays open); the client's next call
    // fails with the typed reset.
    assert_eq!(cmap.get_string("totem.cluster_name", &mut buf), Err(Error::Transport(LinkError::Reset)));

    setup.server = setup.prefix.as_deref().map(serve);
    let link2 = link(&setup);
    let mut cmap2: CmapClient<'_, Io, 4096, 4096, 4090> = CmapClient::new(&link2, None).unwrap();
    assert_eq!(cmap2.get_string("totem.cluster_name", &mut buf), Ok("corowire"));
}

#[test]
fn a_non_loopback_tcp_bind_is_refused_without_the_flag() {
    let out = corowire().args(["gateway", "--listen", "tcp:0.0.0.0:0"]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address") && stderr.contains("--allow-remote"), "{stderr}");
    // One line, not the whole usage.
    assert!(stderr.lines().count() == 1 && stderr.contains("see corowire gateway --help"), "{stderr}");
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn corosync_restart_under_a_tracking_client() {
    corosync::ensure_corosync();
    let setup = Setup::corosync("corosync", &[]);
    let link1 = link(&setup);
    let mut cmap: CmapClient<'_, Io, 4096, 4096, 4090> = CmapClient::new(&link1, None).unwrap();
    let prefix = format!("gateway.{}.", std::process::id());
    let key = format!("{prefix}a");
    cmap.track_add(&prefix, TrackType::PREFIX | TrackType::ADD | TrackType::MODIFY, 5).unwrap();
    let set = |value: &str| {
        let ok = Command::new("corosync-cmapctl").args(["-s", &key, "u32", value]).status().expect("cmapctl");
        assert!(ok.success());
    };
    set("1");
    let seen = cmap.next_event(|e| (e.context, e.notification.key.as_bytes().to_vec())).unwrap();
    assert_eq!(seen, (5, key.as_bytes().to_vec()));

    let pid = corosync::corosync_pid().expect("corosync runs");
    corosync::signal("-KILL", &pid);
    // The reset reaches the tracking client while it waits for events.
    assert_eq!(cmap.next_event(|_| ()), Err(Error::Transport(LinkError::Reset)));
    corosync::ensure_corosync();

    // A new stream, a new track: changes reach it again.
    let link2 = link(&setup);
    let mut cmap2: CmapClient<'_, Io, 4096, 4096, 4090> = CmapClient::new(&link2, None).unwrap();
    cmap2.track_add(&prefix, TrackType::PREFIX | TrackType::ADD | TrackType::MODIFY, 6).unwrap();
    set("2");
    let seen = cmap2.next_event(|e| e.notification.new_value == Some(Value::UInt32(2))).unwrap();
    assert!(seen);
}

/// A gateway serving a pty (in front of its own `corowire serve`), its log lines, and the
/// pty's other end.
struct PtyGateway {
    /// `None` once the test closed it.
    line: Option<std::fs::File>,
    /// Kept open: the gateway's end stays a pty until the test closes `line`.
    _slave: std::fs::File,
    log: std::sync::mpsc::Receiver<String>,
    gateway: Proc,
    _server: Proc,
    /// The server's name prefix.
    prefix: String,
}

impl PtyGateway {
    fn new(tag: &str, flags: &[&str]) -> Self {
        let prefix = format!("gwtest-{}-{tag}", std::process::id());
        let server = serve(&prefix);
        // Close-on-exec (unlike openpty's), so that no child of this test (another test's
        // gateway) holds the test's end open.
        use nix::fcntl::OFlag;
        let master =
            nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).expect("openpt");
        nix::pty::grantpt(&master).and(nix::pty::unlockpt(&master)).expect("unlock the pty");
        let slave = nix::pty::ptsname_r(&master).expect("the pty's name");
        let slave_fd = std::fs::OpenOptions::new().read(true).write(true).open(&slave).expect("open the pty");
        let mut child = corowire()
            .arg("gateway")
            .arg("--listen")
            .arg(format!("serial:{slave}"))
            .args(flags)
            .env("COROWIRE_NAME_PREFIX", &prefix)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn corowire gateway");
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || stderr.lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
        let gw = Self {
            line: Some(std::fs::File::from(std::os::fd::OwnedFd::from(master))),
            _slave: slave_fd,
            log,
            gateway: Proc(child),
            _server: server,
            prefix,
        };
        // Until the gateway has set the line to raw mode, the pty's line discipline would
        // hold the bytes for a newline and echo them: wait for its banner.
        gw.wait_log("serving serial:");
        gw
    }

    /// Waits (at most 20 s, a bound, not a timing) for a log line containing `text`.
    fn wait_log(&self, text: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.log.recv_timeout(Duration::from_secs(20)) {
                Ok(l) if l.contains(text) => return l,
                Ok(l) => seen.push(l),
                Err(e) => panic!("no log line with {text:?} ({e}) in {seen:?}"),
            }
        }
    }

    fn line(&mut self) -> &mut std::fs::File {
        self.line.as_mut().expect("the line is open")
    }

    /// Discards what the line holds for the test (an old session's frames).
    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        while corowire_unix::sys::sock::poll_readable(self.line(), Some(Duration::ZERO))
            == Ok(corowire_unix::sys::sock::PollState::Readable)
        {
            let _ = self.line().read(&mut buf);
        }
    }

    /// Writes `bytes` to the line.
    fn send(&mut self, bytes: &[u8]) {
        self.line().write_all(bytes).expect("write the pty");
    }

    /// Sends a hello and a GET of `totem.cluster_name`; asserts the accept and the reply.
    fn hello_and_get(&mut self) {
        let key = corowire::cmap::Key::new(b"totem.cluster_name").unwrap();
        self.send(&hello_and(corowire::cmap::Request::Get { key, value_len: 64 }));
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while frames_in(&got) < 2 {
            let ready = corowire_unix::sys::sock::poll_readable(self.line(), Some(Duration::from_secs(20)));
            assert_eq!(ready, Ok(corowire_unix::sys::sock::PollState::Readable), "after {got:?}");
            let n = self.line().read(&mut buf).expect("read the pty");
            got.extend_from_slice(&buf[..n]);
        }
        let got = frames(&got);
        assert!(matches!(got[0], Frame::Accept(a) if a.result.is_ok()), "{got:?}");
        let Frame::Message { channel: Channel::Cmap, kind: Kind::Reply, payload } = got[1] else {
            panic!("{got:?}");
        };
        let reply = corowire::cmap::Reply::decode(payload).unwrap();
        assert_eq!(reply.result, Ok(()), "{reply:?}");
    }
}

#[test]
fn a_client_on_a_pty_gets_replies() {
    PtyGateway::new("pty", &[]).hello_and_get();
}

#[test]
fn serial_faults_close_the_session_and_the_line_is_served_again() {
    let mut gw = PtyGateway::new("pty-faults", &["--stall-timeout", "1"]);
    // Garbage: that session ends, the line is served again.
    gw.send(b"GET / HTTP/1.0\r\n\r\n");
    gw.wait_log("malformed frame");
    gw.hello_and_get();
    // A second hello (the device rebooted) starts a new session at once.
    gw.hello_and_get();
    // Half a frame, then silence: closed after --stall-timeout.
    gw.send(&encode(Frame::Hello(HELLO))[..3]);
    gw.wait_log("stalled in the middle of a frame");
    gw.hello_and_get();
    // A session tracking keys whose events nobody reads: closed once a write stalls, and the
    // line is served again.
    gw.send(&hello_and(corowire::cmap::Request::TrackAdd {
        key: Some(corowire::cmap::Key::new(b"flood.").unwrap()),
        track_type: TrackType::PREFIX | TrackType::ADD | TrackType::MODIFY,
        track_inst_handle: 1,
    }));
    let options = corowire_unix::Options {
        service_name: Some(format!("{}-cmap", gw.prefix)),
        ..corowire_unix::Options::default()
    };
    let mut cmap = corowire_unix::cmap::Cmap::connect_with(options).expect("connect the server");
    let flooded = (0..100_000u32).any(|i| {
        cmap.set(&format!("flood.{}", i % 64), Value::UInt32(i)).expect("set");
        gw.log.try_recv().is_ok_and(|l| l.contains("stopped reading"))
    });
    // (That log line also says the line is served again.)
    assert!(flooded, "the gateway never gave up on the unread line");
    gw.drain();
    gw.hello_and_get();
    // The other end closes: the gateway waits for the line to come back, it does not exit.
    drop(gw.line.take());
    gw.wait_log("trying again every second");
    assert!(gw.gateway.0.try_wait().expect("wait").is_none(), "the gateway exited");
}

/// A hello and a CMAP `request`, framed.
fn hello_and(request: corowire::cmap::Request<'_>) -> Vec<u8> {
    let mut payload = vec![0u8; request.encoded_len()];
    let n = request.encode(&mut payload).unwrap();
    let mut bytes = encode(Frame::Hello(HELLO));
    bytes.extend(encode(Frame::Message {
        channel: Channel::Cmap,
        kind: Kind::Request,
        payload: &payload[..n],
    }));
    bytes
}

/// How many complete frames `bytes` starts with.
fn frames_in(mut bytes: &[u8]) -> usize {
    let mut count = 0;
    while let Ok(Status::Complete((_, used))) = decode(bytes, usize::from(u16::MAX)) {
        count += 1;
        bytes = &bytes[used..];
    }
    count
}

/// Runs a gateway listening at `path`, which must refuse to start; its standard error. A
/// gateway that starts anyway is killed after 20 s (a bound, not a timing) and fails the test.
fn refused_listen(path: &std::path::Path) -> String {
    let mut child = corowire()
        .arg("gateway")
        .arg("--listen")
        .arg(format!("unix:{}", path.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corowire gateway");
    for _ in 0..2000 {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
            assert_eq!(status.code(), Some(1), "{stderr}");
            return stderr;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    panic!("the gateway listens at {} anyway", path.display());
}

/// A socket file nobody listens on, as a gateway killed with SIGKILL leaves it (std's
/// listener does not remove its file when dropped).
fn stale_socket(path: &std::path::Path) {
    drop(std::os::unix::net::UnixListener::bind(path).expect("bind"));
}

#[test]
fn a_stale_socket_is_replaced() {
    let prefix = format!("gwtest-{}-stale", std::process::id());
    let server = serve(&prefix);
    let setup = Setup::start_at("stale", Some(prefix), Some(server), &[], stale_socket);
    let link = link(&setup);
    let mut cmap: CmapClient<'_, Io, 4096, 4096, 4090> = CmapClient::new(&link, None).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(cmap.get_string("totem.cluster_name", &mut buf), Ok("corowire"));
}

#[test]
fn a_live_listener_is_left_alone() {
    let dir = tempdir("live");
    let path = dir.join("gw.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let stderr = refused_listen(&path);
    assert!(stderr.contains("a listener is there"), "{stderr}");
    // Still ours: a client reaches it.
    let _client = UnixStream::connect(&path).expect("connect");
    listener.accept().expect("accept");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_or_a_symlink_is_never_removed() {
    let dir = tempdir("notsock");
    let file = dir.join("file");
    std::fs::write(&file, b"precious").expect("write");
    let stderr = refused_listen(&file);
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert_eq!(std::fs::read(&file).expect("the file is kept"), b"precious");

    // A symlink to a stale socket: neither the link nor its target is removed or followed.
    let target = dir.join("target.sock");
    stale_socket(&target);
    let link = dir.join("link.sock");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let stderr = refused_listen(&link);
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert!(std::fs::symlink_metadata(&link).expect("the link is kept").file_type().is_symlink());
    assert!(std::os::unix::fs::FileTypeExt::is_socket(
        &std::fs::symlink_metadata(&target).expect("the target is kept").file_type()
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A new, empty private directory for a test.
fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gwtest-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn tcp_get_and_track_against_corosync() {
    use std::net::TcpStream;
    corosync::ensure_corosync();
    let mut child = corowire()
        .args(["gateway", "--listen", "tcp:127.0.0.1:0"])
        .env_remove("COROWIRE_NAME_PREFIX")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corowire gateway");
    // Its first line names the bound address; the rest is drained, so that its logging never
    // blocks or fails.
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let _gateway = Proc(child);
    let mut banner = String::new();
    stderr.read_line(&mut banner).expect("banner");
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let addr = banner.trim().rsplit_once("listening on tcp:").map(|(_, a)| a.to_owned());
    let addr = addr.unwrap_or_else(|| panic!("no address in {banner:?}"));
    assert!(!addr.ends_with(":0"), "{addr}");

    let stream = TcpStream::connect(&addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut link: Link<Io<TcpStream>, 4096, 4096> = Link::new(Io::new(stream), no_clock);
    link.connect(Services::ALL, None).expect("hello");
    let link = RefCell::new(link);
    let mut cmap: CmapClient<'_, Io<TcpStream>, 4096, 4096, 4090> = CmapClient::new(&link, None).unwrap();
    let mut buf = [0u8; 64];
    let name = cmap.get_string("totem.cluster_name", &mut buf).expect("get").to_owned();
    let out = Command::new("corosync-cmapctl").args(["-g", "totem.cluster_name"]).output().expect("cmapctl");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("= {name}")), "{out:?}");

    let prefix = format!("gateway.tcp.{}.", std::process::id());
    let key = format!("{prefix}a");
    cmap.track_add(&prefix, TrackType::PREFIX | TrackType::ADD | TrackType::MODIFY, 9).unwrap();
    let ok = Command::new("corosync-cmapctl").args(["-s", &key, "u32", "7"]).status().expect("cmapctl");
    assert!(ok.success());
    let seen = cmap
        .next_event(|e| {
            let value = e.notification.new_value == Some(Value::UInt32(7));
            (e.context, e.notification.key.as_bytes().to_vec(), value)
        })
        .unwrap();
    assert_eq!(seen, (9, key.as_bytes().to_vec(), true));
}

#[test]
fn the_unix_socket_is_owner_only_unless_told() {
    use std::os::unix::fs::PermissionsExt;
    for (tag, flags, mode) in [("mode", &[][..], 0o600), ("mode-rw", &["--socket-mode", "0666"][..], 0o666)] {
        let setup = Setup::new(tag, flags);
        drop(setup.stream());
        let meta = std::fs::metadata(setup.dir.join("gw.sock")).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{flags:?}");
    }
}

/// The socket path [`child_says_hello`] connects to.
const CHILD_SOCKET: &str = "GWTEST_SOCKET";

#[test]
#[ignore = "needs root (runs a client as uid 65534): tests/run-all runs it"]
fn as_root_other_users_need_allow_uid() {
    use std::os::unix::fs::PermissionsExt;
    for (tag, flags, expected) in [
        ("uid-refused", &["--socket-mode", "0666"][..], "REFUSED"),
        ("uid-allowed", &["--socket-mode", "0666", "--allow-uid", "65534"][..], "ACCEPTED"),
    ] {
        let setup = Setup::new(tag, flags);
        drop(setup.stream());
        std::fs::set_permissions(&setup.dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = setup.dir.join("gw.sock");
        let out = unprivileged::run_as_nobody("child_says_hello", &[(CHILD_SOCKET, path.to_str().unwrap())]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains(expected), "{flags:?}: {out:?}");
    }
}

/// The client of [`as_root_other_users_need_allow_uid`], run as `nobody`: a hello, then
/// `ACCEPTED` if the gateway accepts it, `REFUSED` if it closes the stream without a word.
#[test]
#[ignore = "run as nobody by as_root_other_users_need_allow_uid"]
fn child_says_hello() {
    let Some(path) = std::env::var_os(CHILD_SOCKET) else { return };
    let mut stream = UnixStream::connect(path).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    // The gateway may have closed a refused stream already: the write's error says nothing.
    let _ = stream.write_all(&encode(Frame::Hello(HELLO)));
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    match frames(&got)[..] {
        [Frame::Accept(a)] if a.result.is_ok() => println!("ACCEPTED"),
        [] => println!("REFUSED"),
        ref other => panic!("{other:?}"),
    }
}
