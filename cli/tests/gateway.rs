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

use corowire::cmap::{TrackType, Value};
use corowire::driver::Error;
use corowire::stream::{decode, Channel, Frame, Hello, Kind, Services, VERSION};
use corowire::votequorum::Request as VqRequest;
use corowire::{CsError, Status};
use corowire_embedded::{no_clock, CmapClient, Link, LinkError, VotequorumClient};
use stream_io::Io;

fn corowire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_corowire"))
}

/// A child process stopped with SIGTERM when dropped (`corowire serve` then removes its ring
/// files).
struct Proc(Child);

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
    _gateway: Proc,
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

    /// As [`Setup::start`], with `prepare` run on the socket's path (in a new, empty private
    /// directory) before the gateway starts.
    fn start_at(
        tag: &str,
        prefix: Option<String>,
        server: Option<Proc>,
        flags: &[&str],
        prepare: impl FnOnce(&std::path::Path),
    ) -> Self {
        let dir = tempdir(tag);
        let sock = dir.join("gw.sock");
        prepare(&sock);
        let mut gateway = corowire();
        gateway.arg("gateway").arg("--listen").arg(format!("unix:{}", sock.display())).args(flags);
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
        Self { dir, prefix, _gateway: Proc(gateway), server }
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
        match stream.read(&mut buf) {
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

#[test]
fn a_client_stalled_mid_frame_is_closed() {
    let setup = Setup::new("stall", &["--stall-timeout", "1"]);
    let hello = encode(Frame::Hello(HELLO));
    // Half a hello, then silence: the gateway closes the stream without an answer.
    assert_eq!(raw_exchange(&mut setup.stream(), &hello[..3]), b"");
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

#[test]
fn a_client_on_a_pty_gets_replies() {
    let prefix = format!("gwtest-{}-pty", std::process::id());
    let _server = serve(&prefix);
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&pty.slave)))
        .expect("the pty's name");
    let _gateway = Proc(
        corowire()
            .arg("gateway")
            .arg("--listen")
            .arg(format!("serial:{}", slave.display()))
            .env("COROWIRE_NAME_PREFIX", &prefix)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn corowire gateway"),
    );
    let mut line = std::fs::File::from(pty.master.try_clone().expect("dup"));
    let mut request = vec![0u8; 300];
    let key = corowire::cmap::Key::new(b"totem.cluster_name").unwrap();
    let n = corowire::cmap::Request::Get { key, value_len: 64 }.encode(&mut request).unwrap();
    let mut bytes = encode(Frame::Hello(HELLO));
    bytes.extend(encode(Frame::Message {
        channel: Channel::Cmap,
        kind: Kind::Request,
        payload: &request[..n],
    }));
    // Until the gateway has set the line to raw mode, the pty's line discipline would hold
    // the bytes for a newline and echo them: wait for it (a bound, not a timing).
    let raw = || {
        nix::sys::termios::tcgetattr(&pty.slave)
            .is_ok_and(|t| !t.local_flags.contains(nix::sys::termios::LocalFlags::ICANON))
    };
    for _ in 0..500 {
        if raw() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(raw(), "the gateway did not set the pty to raw mode");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    line.write_all(&bytes).expect("write");
    while frames_in(&got) < 2 {
        let n = line.read(&mut buf).expect("read the pty");
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
