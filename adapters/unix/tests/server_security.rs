//! The built-in server against hostile local clients (issue 13, items 1 to 5): each test is
//! an attack that succeeded against the server before its fix.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;

use nix::sys::socket::{recv, sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use corowire::cmap::{Key, Request, Value};
use corowire::{Connection, CsError};
use corowire_unix::cmap::{self, Cmap, OwnedValue};
use corowire_unix::server::{IpcType, Limits, MAX_CONNECTIONS};
use corowire_unix::sys::sock::{
    abstract_addr, connect_setup, poll_readable, send_all, PollState, ABSTRACT_NAME_LEN,
};
use corowire_unix::transport::socket::channel_name;
use corowire_unix::transport::{handshake, ShmTransport};
use corowire_unix::Error;

// Shared with the `server` and `client` suites; this one uses part of it.
#[allow(dead_code)]
mod builtin;
use builtin::TestServer;
#[path = "common/unprivileged.rs"]
mod unprivileged;
use unprivileged::{run_as_nobody, TestCopy, NOBODY};

/// Set in the environment of the `child_*` tests when their parent test runs them.
const CHILD: &str = "COROWIRE_SECURITY_CHILD";

/// A server that lets `nobody` in (`uidgid.uid.65534 = 1`), as a config may.
fn server_allowing_nobody(tag: &str) -> TestServer {
    TestServer::start_with(tag, |cfg| cfg.initial.push(("uidgid.uid.65534".into(), OwnedValue::UInt8(1))))
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap()
}

/// Asserts that the child run printed `CHILD-DONE` and succeeded.
fn assert_child_done(out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-DONE"),
        "child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Item 1: a client that swaps a symbolic link in for a ring file while the server sets its
/// connection up cannot make a root-owned file its own (the server used to chown by path).
#[test]
#[ignore = "needs root (runs clients as uid 65534): tests/run-all runs it"]
fn as_root_swapped_in_symlinks_do_not_give_files_away() {
    let server = server_allowing_nobody("symlink");
    let victim = server.shm_dir.join("victim");
    std::fs::write(&victim, b"root's").unwrap();
    let shm_dir = server.shm_dir.to_string_lossy().into_owned();
    let out = run_as_nobody(
        "child_swaps_symlinks_in",
        &[
            (CHILD, "1"),
            ("SHM_DIR", &shm_dir),
            ("CMAP", &server.cmap_name),
            ("VICTIM", &victim.to_string_lossy()),
        ],
    );
    let meta = std::fs::metadata(&victim).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "the victim was given away");
    assert_child_done(&out);
}

/// The attacker of [`as_root_swapped_in_symlinks_do_not_give_files_away`], run as `nobody`: while it
/// connects again and again with large rings (a long setup), a thread replaces each file of
/// every connection directory it can write to by a link to the victim.
#[test]
#[ignore = "run as nobody by as_root_swapped_in_symlinks_do_not_give_files_away"]
fn child_swaps_symlinks_in() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let (shm_dir, service, victim) =
        (PathBuf::from(env("SHM_DIR")), env("CMAP"), PathBuf::from(env("VICTIM")));
    let names: Vec<String> = ["request", "response", "event"]
        .iter()
        .flat_map(|kind| ["header", "data"].map(|part| format!("qb-{kind}-{service}-{part}")))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let (stop, shm_dir, victim) = (Arc::clone(&stop), shm_dir.clone(), victim.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(entries) = std::fs::read_dir(&shm_dir) else { continue };
                for dir in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
                    for name in &names {
                        if std::fs::remove_file(dir.join(name)).is_ok() {
                            let _ = std::os::unix::fs::symlink(&victim, dir.join(name));
                        }
                    }
                }
            }
        })
    };
    let owned = || std::fs::metadata(&victim).map(|m| m.uid()).unwrap_or(0) == NOBODY;
    let options = |max_msg_size| cmap::Options {
        service_name: Some(service.clone()),
        timeout: Some(Duration::from_secs(10)),
        max_msg_size,
        ..cmap::Options::default()
    };
    for _ in 0..40 {
        let _ = Cmap::connect_with(options(16 << 20));
        if owned() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    assert!(!owned(), "nobody made the victim its own");
    // Unprivileged clients are still served.
    let mut cmap = Cmap::connect_with(options(65536)).unwrap();
    cmap.get("totem.cluster_name").unwrap();
    println!("CHILD-DONE");
}

/// Item 2: on the socket transport another user's datagrams sent into a client's request
/// socket (an abstract name anyone can reach) are not heard: before the fix, `nobody` could
/// set keys (such as `uidgid.*`) through root's connection.
#[test]
#[ignore = "needs root (runs clients as uid 65534): tests/run-all runs it"]
fn as_root_foreign_datagrams_are_not_heard() {
    let server = TestServer::start_with("foreign", |cfg| cfg.transport = IpcType::Socket);
    let mut victim = server.cmap();
    let dirs: Vec<PathBuf> = std::fs::read_dir(&server.shm_dir).unwrap().map(|e| e.unwrap().path()).collect();
    let [dir] = dirs.as_slice() else { panic!("one connection directory expected: {dirs:?}") };
    let base = dir.join(format!("qb-{}", server.cmap_name));
    let out = run_as_nobody(
        "child_sends_into_a_request_socket",
        &[(CHILD, "1"), ("BASE", &base.to_string_lossy())],
    );
    assert_child_done(&out);
    // The victim's connection still works, and in order: its next reply is its own.
    assert_eq!(victim.get("totem.cluster_name").unwrap(), OwnedValue::String("corowire".into()));
    assert!(server.cmap().get(FOREIGN_KEY).is_err(), "the foreign request was served");
}

/// Item 2, the breaker's way round it: a datagram carrying a descriptor (`SCM_RIGHTS`) sent
/// into a client's request socket is discarded and its descriptor closed; the connection lives
/// (before, the truncated control data made the server close the victim's connection). Any
/// sender will do, so this one is the test itself.
#[test]
fn datagrams_carrying_descriptors_are_discarded() {
    let server = TestServer::start_with("rights", |cfg| cfg.transport = IpcType::Socket);
    let mut victim = server.cmap();
    let dirs: Vec<PathBuf> = std::fs::read_dir(&server.shm_dir).unwrap().map(|e| e.unwrap().path()).collect();
    let [dir] = dirs.as_slice() else { panic!("one connection directory expected: {dirs:?}") };
    let name = channel_name(&dir.join(format!("qb-{}", server.cmap_name)), "request");
    let (pipe_r, pipe_w) = nix::unistd::pipe().unwrap();
    let sock = UnixDatagram::unbound().unwrap();
    let fds = [pipe_r.as_raw_fd()];
    let rights = [ControlMessage::ScmRights(&fds)];
    let addr = abstract_addr(&name).unwrap();
    let payload = [0u8; 16];
    sendmsg(sock.as_raw_fd(), &[IoSlice::new(&payload)], &rights, MsgFlags::empty(), Some(&addr)).unwrap();
    drop(pipe_r);
    assert_eq!(victim.get("totem.cluster_name").unwrap(), OwnedValue::String("corowire".into()));
    // The server has read the datagram (it answered a later request) and closed the read end
    // it was given: the pipe has no reader left.
    assert_eq!(nix::unistd::write(&pipe_w, b"x"), Err(nix::errno::Errno::EPIPE));
}

/// The key [`child_sends_into_a_request_socket`] tries to set.
const FOREIGN_KEY: &str = "uidgid.uid.65534";

/// The sender of [`as_root_foreign_datagrams_are_not_heard`], run as `nobody`: a CMAP set request
/// into `\0<BASE>-request`.
#[test]
#[ignore = "run as nobody by as_root_foreign_datagrams_are_not_heard"]
fn child_sends_into_a_request_socket() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let name = channel_name(Path::new(&env("BASE")), "request");
    let mut frame = vec![0u8; 512];
    let set = Request::Set { key: Key::new(FOREIGN_KEY.as_bytes()).unwrap(), value: Value::UInt8(1) };
    let n = set.encode(&mut frame).unwrap();
    let sock = UnixDatagram::unbound().unwrap();
    let mut padded = [0u8; ABSTRACT_NAME_LEN];
    padded[..name.len()].copy_from_slice(&name);
    sock.send_to_addr(&frame[..n], &SocketAddr::from_abstract_name(padded).unwrap()).unwrap();
    println!("CHILD-DONE");
}

/// Another user allowed by [`as_root_one_user_holding_its_quota_locks_nobody_out`].
const OTHER: u32 = 65533;

/// Item 4: one user holding all the connections it may hold does not lock out another user
/// or root (before the fix, 128 connections of one user locked out everyone). Here a user
/// may hold 8 and non-root users 9 together: `nobody` holds its 8 (the 9th is refused), the
/// other user gets the last non-root one (its second is refused), and root still gets in.
#[test]
#[ignore = "needs root (runs clients as uid 65534): tests/run-all runs it"]
fn as_root_one_user_holding_its_quota_locks_nobody_out() {
    let server = TestServer::start_with("quota", |cfg| {
        for uid in [NOBODY, OTHER] {
            cfg.initial.push((format!("uidgid.uid.{uid}"), OwnedValue::UInt8(1)));
        }
        cfg.limits =
            Limits { per_uid: 8, per_pid: 8, reserved_for_root: MAX_CONNECTIONS - 9, ..Limits::default() };
    });
    nobody_holds_other_joins_root_gets_in(&server, "quota", "child_holds_connections", &[], ["8", "1"]);
}

/// Item 4 of the breaker: one user's rings cannot fill the shared memory root needs. Here
/// a user may have the ring files of 2 connections and all non-root users of 3: `nobody`
/// holds 2 (its 3rd is refused with `CS_ERR_NO_MEMORY`), the other user gets the last
/// (its second is refused), and root still gets in (before, only the connection counts
/// bounded them: 32 connections of 64 MiB rings per service and user).
#[test]
#[ignore = "needs root (runs clients as uid 65534): tests/run-all runs it"]
fn as_root_one_user_filling_shared_memory_locks_nobody_out() {
    let max = 1 << 20;
    let conn = 3 * (corowire::wire::ring::HEADER_FILE_LEN + corowire::ring::data_bytes(max, 1 << 16));
    let server = TestServer::start_with("shmquota", |cfg| {
        for uid in [NOBODY, OTHER] {
            cfg.initial.push((format!("uidgid.uid.{uid}"), OwnedValue::UInt8(1)));
        }
        // Every client gets `max` (none asks for more); a page is at most 64 KiB.
        cfg.max_msg_size_floor = max;
        cfg.max_msg_size_limit = max;
        cfg.limits = Limits { shm_per_uid: 2 * conn, shm_total: 3 * conn, ..Limits::default() };
    });
    nobody_holds_other_joins_root_gets_in(
        &server,
        "shmquota",
        "child_holds_connections",
        &[("NOMEM", "1")],
        ["2", "1"],
    );
}

/// The course of the `as_root_*_locks_nobody_out` tests: `nobody` runs `child` (with `env`
/// and `CONNECT` = `connect[0]`) until it holds what it may, then user [`OTHER`] runs it
/// (`CONNECT` = `connect[1]`) to the end, then root's client is served, then `nobody`'s
/// run ends well.
fn nobody_holds_other_joins_root_gets_in(
    server: &TestServer,
    tag: &str,
    child: &str,
    env: &[(&str, &str)],
    connect: [&str; 2],
) {
    let copy = TestCopy::new(tag);
    let run_env = |n| {
        let mut all = vec![(CHILD, "1"), ("CMAP", server.cmap_name.as_str()), ("CONNECT", n)];
        all.extend_from_slice(env);
        all
    };
    let mut holder = copy
        .command(NOBODY, child, &run_env(connect[0]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l.ends_with("HOLDING")), "the holder was refused");
    let other = copy.command(OTHER, child, &run_env(connect[1])).stdin(Stdio::null()).output().unwrap();
    assert_child_done(&other);
    assert_eq!(server.cmap().get("totem.cluster_name").unwrap(), OwnedValue::String("corowire".into()));
    drop(holder.stdin.take());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(holder.wait().unwrap().success() && rest.iter().any(|l| l.ends_with("CHILD-DONE")), "{rest:?}");
}

/// The clients of [`as_root_one_user_holding_its_quota_locks_nobody_out`] and
/// [`as_root_one_user_filling_shared_memory_locks_nobody_out`]: `CONNECT` connections, each
/// served, then one more, refused with `CS_ERR_BUSY` (`CS_ERR_NO_MEMORY` if `NOMEM` is
/// set); it holds them until its standard input closes.
#[test]
#[ignore = "run as other users by as_root_one_user_holding_its_quota_locks_nobody_out"]
fn child_holds_connections() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let n: usize = env("CONNECT").parse().unwrap();
    let options = || cmap::Options {
        service_name: Some(env("CMAP")),
        timeout: Some(Duration::from_secs(10)),
        ..cmap::Options::default()
    };
    let mut held: Vec<Cmap> = (0..n).map(|_| Cmap::connect_with(options()).unwrap()).collect();
    for cmap in &mut held {
        cmap.get("totem.cluster_name").unwrap();
    }
    let refusal = if std::env::var_os("NOMEM").is_some() { CsError::NoMemory } else { CsError::Busy };
    match Cmap::connect_with(options()) {
        Err(e @ Error::Connect { .. }) if e.cs_error() == refusal => {}
        other => panic!("connection {} beyond the quota: {:?}", n + 1, other.map(|_| "accepted")),
    }
    println!("HOLDING");
    let _ = std::io::stdin().read_line(&mut String::new());
    println!("CHILD-DONE");
}

/// Breaker item 2: users that connect and never send a setup request cannot keep root out.
/// Here a user may have 3 connections in setup and all non-root users 5: `nobody`'s 4th is
/// closed while its first 3 wait, the other user's 3rd likewise, and root still gets in
/// (before, nothing bounded them until the 10 s setup timeout: enough of them made `accept`
/// run out of descriptors).
#[test]
#[ignore = "needs root (runs clients as uid 65534): tests/run-all runs it"]
fn as_root_silent_connections_lock_nobody_out() {
    let server = TestServer::start_with("silent", |cfg| {
        cfg.limits = Limits { setup_per_uid: 3, setup_total: 5, ..Limits::default() };
    });
    nobody_holds_other_joins_root_gets_in(
        &server,
        "silent",
        "child_holds_silent_connections",
        &[],
        ["3", "2"],
    );
}

/// The clients of [`as_root_silent_connections_lock_nobody_out`]: `CONNECT` connections that
/// send nothing, then one more, which the server closes while the others still wait; it
/// holds them until its standard input closes.
#[test]
#[ignore = "run as other users by as_root_silent_connections_lock_nobody_out"]
fn child_holds_silent_connections() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let n: usize = env("CONNECT").parse().unwrap();
    let held: Vec<_> = (0..n).map(|_| connect_setup(&env("CMAP")).unwrap()).collect();
    let extra = connect_setup(&env("CMAP")).unwrap();
    assert_ne!(poll_readable(&extra, None).unwrap(), PollState::Timeout);
    assert_eq!(
        recv(extra.as_raw_fd(), &mut [0u8; 1], MsgFlags::empty()),
        Ok(0),
        "the extra one was not closed"
    );
    for fd in &held {
        assert_eq!(
            poll_readable(fd, Some(Duration::ZERO)).unwrap(),
            PollState::Timeout,
            "a waiting one was closed"
        );
    }
    println!("HOLDING");
    let _ = std::io::stdin().read_line(&mut String::new());
    println!("CHILD-DONE");
}

/// `VmHWM` (peak) or `VmRSS` of process `pid`, in KiB, from `/proc/<pid>/status`.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Item 5: many trackers that never read, with a writer flooding them, keep the server's
/// peak RSS under a bound (before, each could queue 64 MiB); a large request's scratch
/// buffers are given back. The server runs in its own process to measure its memory.
#[test]
fn memory_stays_bounded_with_slow_consumers() {
    let base = format!("corowire-test-{}-rss", std::process::id());
    let shm_dir = PathBuf::from(format!("/dev/shm/{base}"));
    let _ = std::fs::remove_dir_all(&shm_dir);
    std::fs::create_dir(&shm_dir).unwrap();
    let cmap_name = format!("{base}-cmap");
    let mut server = Killed(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "child_serves", "--nocapture", "--test-threads=1"])
            .envs([(CHILD, "1"), ("CMAP", &cmap_name), ("SHM_DIR", &shm_dir.to_string_lossy())])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let server_pid = server.0.id();
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l.ends_with("READY")), "the server did not start");
    let options = |max_msg_size| cmap::Options {
        service_name: Some(cmap_name.clone()),
        timeout: Some(Duration::from_secs(30)),
        max_msg_size,
        ..cmap::Options::default()
    };
    let mut trackers: Vec<Cmap> = (0..8).map(|_| Cmap::connect_with(options(65536)).unwrap()).collect();
    for t in &mut trackers {
        t.track_add(Some("test.flood."), cmap::TrackType::MODIFY | cmap::TrackType::PREFIX, |_| {}).unwrap();
    }
    let mut writer = Cmap::connect_with(options(65536)).unwrap();
    let mut value = vec![7u8; 8 << 10];
    // 8 trackers × 1280 × 16 KiB (old and new value): 160 MiB of events nobody reads.
    for i in 0..1280u32 {
        value[..4].copy_from_slice(&i.to_ne_bytes());
        writer.set("test.flood.k", Value::Binary(&value)).unwrap();
    }
    let peak_mib = memory_kib(server_pid, "VmHWM:") / 1024;
    // The server's bound is 16 MiB; its code, engines and rings need some more.
    assert!(peak_mib < 80, "peak RSS {peak_mib} MiB");
    // The trackers that did not read when the bound was reached were dropped (the last ones
    // may stay within it).
    let dropped = trackers.iter_mut().map(|t| t.get("totem.cluster_name")).filter(Result::is_err).count();
    assert!(dropped > 0, "no slow tracker was dropped");
    // One request with a 48 MiB reply buffer; the server gives it back after.
    let before_mib = memory_kib(server_pid, "VmRSS:") / 1024;
    let mut large = Cmap::connect_with(options(48 << 20)).unwrap();
    large.get("totem.cluster_name").unwrap();
    writer.get("totem.cluster_name").unwrap();
    let after_mib = memory_kib(server_pid, "VmRSS:") / 1024;
    assert!(
        after_mib < before_mib + 16,
        "RSS {before_mib} MiB before a large request, {after_mib} MiB after"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&shm_dir);
}

/// A child process killed (and waited for) on drop, also when the test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server of [`memory_stays_bounded_with_slow_consumers`], with 16 MiB for all queued
/// events; runs until killed.
#[test]
#[ignore = "run by memory_stays_bounded_with_slow_consumers"]
fn child_serves() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let mut cfg = corowire_unix::server::ServerConfig {
        cmap_name: env("CMAP"),
        votequorum_name: None,
        quorum_name: None,
        cfg_name: None,
        shm_dir: PathBuf::from(env("SHM_DIR")),
        ..corowire_unix::server::ServerConfig::default()
    };
    cfg.limits.queued_event_bytes = 16 << 20;
    let mut server = corowire_unix::server::Server::bind(cfg).unwrap();
    println!("READY");
    server.run().unwrap();
}

/// Item 3: a client that truncates one of its ring files (each of the six in turn) before
/// the server touches it does not kill the server with `SIGBUS`: that client is dropped and
/// the others are served. Before the fix the whole test process died of `SIGBUS`.
#[test]
fn truncated_ring_files_do_not_kill_the_server() {
    let server = TestServer::start("truncate");
    for kind in ["request", "response", "event"] {
        for part in ["header", "data"] {
            let file = format!("{kind}-{part}");
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "child_truncates_a_ring_file",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .envs([(CHILD, "1"), ("CMAP", server.cmap_name.as_str()), ("FILE", &file)])
                .output()
                .unwrap();
            assert_child_done(&out);
            let value = server.cmap().get("totem.cluster_name").unwrap();
            assert_eq!(value, OwnedValue::String("corowire".into()), "after truncating {file}");
        }
    }
}

/// The client of [`truncated_ring_files_do_not_kill_the_server`]: tracks a key, writes a
/// request setting it (so that the server reads the request ring and writes the event and
/// response rings), truncates its ring file `FILE` to 0 bytes, rings the doorbell, and
/// waits until the server drops it.
#[test]
#[ignore = "run by truncated_ring_files_do_not_kill_the_server"]
fn child_truncates_a_ring_file() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let timeout = Some(Duration::from_secs(10));
    let mut conn = Connection::<corowire::Cmap>::new(65536);
    let mut setup = [0u8; 64];
    let n = conn.encode_setup(&mut setup).unwrap();
    let (sock, response) = handshake::exchange(&env("CMAP"), &setup[..n], timeout).unwrap();
    let names = conn.handle_setup(&response).unwrap();
    let path = |b: &[u8]| PathBuf::from(core::str::from_utf8(b).unwrap());
    let bases = [path(names.request), path(names.response), path(names.event)];
    let mut transport = ShmTransport::open(sock, &bases[0], &bases[1], &bases[2]).unwrap();
    let file = env("FILE");
    // A new key each time, so that the set adds it and makes an event.
    let name = format!("test.truncate.{file}");
    let key = Key::new(name.as_bytes()).unwrap();
    let mut frame = vec![0u8; 512];
    let track = Request::TrackAdd { key: Some(key), track_type: cmap::TrackType::ADD, track_inst_handle: 0 };
    let n = track.encode(&mut frame).unwrap();
    transport.request_ring_mut().write_chunk(&frame[..n]).unwrap();
    send_all(&transport, &[0]).unwrap();
    let mut reply = vec![0u8; 65536];
    transport.recv_response(Some(Instant::now() + Duration::from_secs(10)), &mut reply).unwrap();
    let n = Request::Set { key, value: Value::UInt8(1) }.encode(&mut frame).unwrap();
    transport.request_ring_mut().write_chunk(&frame[..n]).unwrap();
    let (kind, part) = file.split_once('-').unwrap();
    let base = &bases[["request", "response", "event"].iter().position(|k| *k == kind).unwrap()];
    let mut target = base.clone().into_os_string();
    target.push(format!("-{part}"));
    std::fs::OpenOptions::new().write(true).open(&target).unwrap().set_len(0).unwrap();
    send_all(&transport, &[0]).unwrap();
    // The client must not touch its truncated rings either: the setup socket tells.
    let mut byte = [0u8; 1];
    loop {
        match poll_readable(&transport, Some(Duration::from_secs(10))).unwrap() {
            PollState::Hup => break,
            PollState::Readable
                if recv(transport.as_raw_fd(), &mut byte, MsgFlags::empty()).unwrap_or(0) == 0 =>
            {
                break
            }
            PollState::Readable => {} // an event's doorbell byte
            PollState::Timeout => panic!("the server did not drop the client after {file} was truncated"),
        }
    }
    // Its drop would touch the truncated ring (the client dies of SIGBUS there).
    core::mem::forget(transport);
    println!("CHILD-DONE");
}
