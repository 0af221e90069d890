//! The client against a hostile server of another user (issue 13, item 6): it maps and
//! removes nothing outside the connection's own directory. Each `as_root_*` test is an attack
//! that removed a root-owned file before the fix; `tests/run-all` runs them as root.

use core::time::Duration;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use corowire::qb::{
    ConnectRequest, ConnectResponse, ConnectionType, CONNECTION_REQUEST_LEN, CONNECTION_RESPONSE_LEN,
};
use corowire_unix::cmap::{self, Cmap};
use corowire_unix::sys::sock::{
    accept_with_passcred, bind_dgram, listen_abstract, poll_readable, recv_exact_with_creds, send_all,
};
use corowire_unix::transport::socket::channel_name;
use corowire_unix::transport::{TransportError, Untrusted};
use corowire_unix::{ConnectError, Error};

// Shared with the `server_security` suite; this one uses part of it.
#[allow(dead_code)]
#[path = "common/unprivileged.rs"]
mod unprivileged;
use unprivileged::{TestCopy, NOBODY};

/// Set in the environment of the `child_*` tests when their parent test runs them.
const CHILD: &str = "COROWIRE_CLEANUP_CHILD";

const PRECIOUS: &[u8] = b"root's own precious bytes, not a control file\n";

fn env(name: &str) -> String {
    std::env::var(name).unwrap()
}

/// A child process, killed (and waited for) on drop, also when the test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the test `name` of this binary as `nobody` with `env` and waits for it to print
/// `READY`.
fn start_as_nobody(copy: &TestCopy, name: &str, env: &[(&str, &str)]) -> Killed {
    let mut child = Killed(copy.command(NOBODY, name, env).stdout(Stdio::piped()).spawn().unwrap());
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l.ends_with("READY")), "{name} did not start");
    // Read the rest, so that the child's test harness can print to the end.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Connects to the CMAP service `service` with a short timeout.
fn connect(service: &str) -> Result<Cmap, Error> {
    Cmap::connect_with(cmap::Options {
        service_name: Some(service.to_owned()),
        timeout: Some(Duration::from_secs(5)),
        ..cmap::Options::default()
    })
}

/// Asserts that `result` is the refusal of a server running as `nobody`.
fn assert_refused_as_nobody(result: Result<(), Error>) {
    match result {
        Err(Error::Connect {
            reason: ConnectError::Transport(TransportError::Untrusted(Untrusted::ServerUser { uid })),
            ..
        }) => assert_eq!(uid, NOBODY),
        other => panic!("a server of uid {NOBODY} was not refused: {other:?}"),
    }
}

/// A root-only directory `/tmp/corowire-victim-<pid>-<tag>` with root's file `precious`.
fn victim_dir(tag: &str) -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/corowire-victim-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("precious"), PRECIOUS).unwrap();
    dir
}

/// Item 6, socket transport: a server run by `nobody` names root's file as the control file;
/// the client used to map it read/write and unlink it when it closed.
#[test]
#[ignore = "needs root (runs a server as uid 65534): tests/run-all runs it"]
fn as_root_foreign_control_file_is_neither_mapped_nor_removed() {
    let victim = victim_dir("control").join("precious");
    let service = format!("corowire-cleanup-{}-control", std::process::id());
    let copy = TestCopy::new("control");
    let env = [(CHILD, "1"), ("SERVICE", service.as_str()), ("VICTIM", &victim.to_string_lossy())];
    let _server = start_as_nobody(&copy, "child_names_a_foreign_control_file", &env);
    // Closed at once: before the fix, the close unlinked the "control file".
    let result = connect(&service).map(drop);
    assert_eq!(std::fs::read(&victim).ok().as_deref(), Some(PRECIOUS), "the victim was changed or removed");
    assert_refused_as_nobody(result);
    std::fs::remove_dir_all(victim.parent().unwrap()).unwrap();
}

/// The server of [`as_root_foreign_control_file_is_neither_mapped_nor_removed`], run as
/// `nobody`: answers one setup request with a socket transport whose control file is
/// `VICTIM`, binds the datagram sockets, and waits for the client to go.
#[test]
#[ignore = "run as nobody by as_root_foreign_control_file_is_neither_mapped_nor_removed"]
fn child_names_a_foreign_control_file() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let (service, victim) = (env("SERVICE"), env("VICTIM"));
    let listener = listen_abstract(service.as_bytes()).unwrap();
    let base = PathBuf::from(format!("{service}-base"));
    let _request = bind_dgram(&channel_name(&base, "request"), 65536).unwrap();
    let _event = bind_dgram(&channel_name(&base, "event-tx"), 65536).unwrap();
    println!("READY");
    let sock = accept_with_passcred(&listener).unwrap();
    let mut request = [0u8; CONNECTION_REQUEST_LEN];
    recv_exact_with_creds(&sock, &mut request).unwrap();
    let max_msg_size = ConnectRequest::decode(&request).unwrap().max_msg_size;
    let mut out = [0u8; CONNECTION_RESPONSE_LEN];
    let n = ConnectResponse {
        connection_type: ConnectionType::Socket,
        max_msg_size,
        connection: 1,
        request: victim.as_bytes(),
        response: base.as_os_str().as_encoded_bytes(),
        event: b"",
    }
    .encode(&mut out)
    .unwrap();
    send_all(&sock, &out[..n]).unwrap();
    // Until the client hangs up.
    let _ = poll_readable(&sock, Some(Duration::from_secs(10)));
}

/// Item 6, shared memory: after a server run by `nobody` dies, its connection directory has
/// been swapped for a link to root's directory holding files of the rings' names; the client
/// used to remove the ring files by path, through the link.
#[test]
#[ignore = "needs root (runs a server as uid 65534): tests/run-all runs it"]
fn as_root_swapped_connection_dir_redirects_no_removal() {
    let tag = format!("corowire-cleanup-{}-shm", std::process::id());
    let shm_dir = PathBuf::from(format!("/dev/shm/{tag}"));
    let _ = std::fs::remove_dir_all(&shm_dir);
    std::fs::create_dir(&shm_dir).unwrap();
    nix::unistd::chown(&shm_dir, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    let service = format!("{tag}-cmap");
    let victims = victim_dir("shm");
    let names: Vec<String> = ["request", "response", "event"]
        .iter()
        .flat_map(|kind| ["header", "data"].map(|part| format!("qb-{kind}-{service}-{part}")))
        .collect();
    for name in &names {
        std::fs::write(victims.join(name), PRECIOUS).unwrap();
    }
    let copy = TestCopy::new("shm");
    let env = [(CHILD, "1"), ("SERVICE", service.as_str()), ("SHM_DIR", &shm_dir.to_string_lossy())];
    let mut server = start_as_nobody(&copy, "child_serves_shm", &env);
    let connected = connect(&service);
    if let Ok(mut cmap) = connected {
        // Before the fix: swap the directory for a link, as its owner `nobody` may, kill the
        // server, and let the client find it gone.
        let dir = connection_dir(&shm_dir);
        std::fs::rename(&dir, dir.with_extension("old")).unwrap();
        std::os::unix::fs::symlink(&victims, &dir).unwrap();
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        assert!(cmap.get("totem.cluster_name").is_err());
        drop(cmap);
        for name in &names {
            assert_eq!(
                std::fs::read(victims.join(name)).ok().as_deref(),
                Some(PRECIOUS),
                "{name} was removed"
            );
        }
        panic!("a server of uid {NOBODY} was trusted");
    }
    assert_refused_as_nobody(connected.map(drop));
    for name in &names {
        assert_eq!(std::fs::read(victims.join(name)).unwrap(), PRECIOUS);
    }
    drop(server);
    std::fs::remove_dir_all(&victims).unwrap();
    std::fs::remove_dir_all(&shm_dir).unwrap();
}

/// The one `qb-*` connection directory in `shm_dir`.
fn connection_dir(shm_dir: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(shm_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n.as_encoded_bytes().starts_with(b"qb-")))
        .collect();
    assert_eq!(dirs.len(), 1, "connection directories: {dirs:?}");
    dirs[0].clone()
}

/// The server of [`as_root_swapped_connection_dir_redirects_no_removal`], run as `nobody`:
/// the built-in server's CMAP service `SERVICE` on shared memory in `SHM_DIR`, until killed.
#[test]
#[ignore = "run as nobody by as_root_swapped_connection_dir_redirects_no_removal"]
fn child_serves_shm() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let cfg = corowire_unix::server::ServerConfig {
        cmap_name: env("SERVICE"),
        votequorum_name: None,
        quorum_name: None,
        cfg_name: None,
        shm_dir: PathBuf::from(env("SHM_DIR")),
        ..corowire_unix::server::ServerConfig::default()
    };
    let mut server = corowire_unix::server::Server::bind(cfg).unwrap();
    println!("READY");
    server.run().unwrap();
}
