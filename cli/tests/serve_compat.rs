//! The unmodified C tools against a real corosync 3.1.7 and against the built-in server, side
//! by side (issue 11, items 1, 2 and 6): `corosync-quorumtool -s`, `-l`, `-l -i` and `-e 2`,
//! `corosync-cmapctl` (the configuration's keys and `runtime.votequorum.this_node_id`) and a
//! libquorum / libvotequorum program (`serve_compat/quorum_probe.c`) must print the same, after
//! masking the date, the ring id and the cluster name.
//!
//! ```sh
//! cargo test -p corowire-cli --test serve_compat --no-run
//! tests/harness/with-corosync -- \
//!     cargo test --offline -p corowire-cli --test serve_compat -- --ignored one_node
//! tests/harness/with-corosync --config cli/tests/serve_compat/noquorum.conf -- \
//!     cargo test --offline -p corowire-cli --test serve_compat -- --ignored no_quorum
//! tests/harness/with-corosync --config cli/tests/serve_compat/hostname.conf -- \
//!     cargo test --offline -p corowire-cli --test serve_compat -- --ignored host_name
//! ```
//!
//! Each test first checks that it runs next to the daemon it expects (the harness's, with or
//! without a quorum section) and panics otherwise, so it never passes without one. It runs the
//! tools against that daemon, then runs itself again inside fresh network and mount namespaces
//! (`unshare --net --mount`, needs root), where the server takes corosync's standard names
//! without touching the daemon, runs the same tools there and hands back what they printed.

use core::sync::atomic::{AtomicBool, Ordering};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use corowire_unix::server::{Server, ServerConfig};

/// Set in the environment of the run inside the namespaces: the output file.
const INNER_OUT: &str = "COROWIRE_SERVE_COMPAT_OUT";
/// The compiled `quorum_probe.c`, for both runs.
const PROBE: &str = "COROWIRE_SERVE_COMPAT_PROBE";

/// corosync's one-node configuration of the harness, and `corowire serve` without options:
/// the standard names, node `node1` at 127.0.0.1, votequorum. With corosync holding the names,
/// `corowire serve` fails at once and says how to serve beside it.
#[test]
#[ignore = "needs root and the harness's corosync: run by tests/run-all"]
fn one_node_default_config() {
    if let Some((out, probe)) = inner_run() {
        return serve_and_collect(&[], &out, &probe);
    }
    require_daemon(&[("quorum.provider", Some("corosync_votequorum")), (RING0, Some("127.0.0.1"))]);
    // `timeout`: should it serve after all, it must not hang the test (status 124 then).
    let taken = Command::new("timeout")
        .args(["10", env!("CARGO_BIN_EXE_corowire"), "serve"])
        .env_remove("COROWIRE_NAME_PREFIX")
        .stdin(Stdio::null())
        .output()
        .expect("run corowire serve");
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert_eq!(taken.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the libqb name 'cmap' is already taken") && stderr.contains("--name-prefix PREFIX"),
        "{stderr}"
    );
    compare("one_node_default_config");
}

/// corosync without a quorum section, and the server without `quorum.provider`: no votequorum
/// (`corosync-quorumtool -s` fails with `CS_ERR_BAD_HANDLE`, libvotequorum gets
/// `CS_ERR_LIBRARY`), libquorum says quorate with no members.
#[test]
#[ignore = "needs root and the harness's corosync with cli/tests/serve_compat/noquorum.conf: run by tests/run-all"]
fn no_quorum_section() {
    if let Some((out, probe)) = inner_run() {
        let mut cfg = ServerConfig::default();
        cfg.initial.clear();
        cfg.load_file(&data("noquorum.keys")).expect("noquorum.keys");
        let mut server = Server::bind(cfg).expect("bind the standard names");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || server.run_until(&flag).expect("serve"));
        let report = collect(&probe);
        stop.store(true, Ordering::Relaxed);
        thread.join().expect("server thread");
        std::fs::write(out, report).expect("write the report");
        return;
    }
    require_daemon(&[("quorum.provider", None)]);
    compare("no_quorum_section");
}

/// A node list whose `ring0_addr` is a host name (`localhost`): corosync resolves it, and so
/// does `corowire serve --config` for the cfg service (`corosync-quorumtool -l -i`).
#[test]
#[ignore = "needs root and the harness's corosync with cli/tests/serve_compat/hostname.conf: run by tests/run-all"]
fn host_name_addresses() {
    if let Some((out, probe)) = inner_run() {
        let keys = data("hostname.keys");
        return serve_and_collect(&["--config", keys.to_str().expect("a UTF-8 path")], &out, &probe);
    }
    require_daemon(&[("quorum.provider", Some("corosync_votequorum")), (RING0, Some("localhost"))]);
    compare("host_name_addresses");
}

/// The first node's first address, which tells the harness's configurations apart.
const RING0: &str = "nodelist.node.0.ring0_addr";

/// In the namespaces: runs `corowire serve ARGS` on the standard names, the tools against it,
/// and writes their report to `out`.
fn serve_and_collect(args: &[&str], out: &Path, probe: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corowire"))
        .arg("serve")
        .args(args)
        .env_remove("COROWIRE_NAME_PREFIX")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn corowire serve");
    let mut banner = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut banner).expect("banner");
    assert!(banner.contains("serving cmap as 'cmap', votequorum as 'votequorum'"), "{banner:?}");
    let report = collect(probe);
    stop(child);
    std::fs::write(out, report).expect("write the report");
}

/// A file of this test's data directory.
fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve_compat").join(name)
}

/// Panics unless the harness's daemon runs here with `keys`: each `(key, Some(value))` a
/// `str` key of that value, each `(key, None)` absent.
fn require_daemon(keys: &[(&str, Option<&str>)]) {
    assert!(
        std::env::var("COROWIRE_DAEMON").is_ok(),
        "COROWIRE_DAEMON is not set: run these tests via tests/harness/with-corosync"
    );
    for &(key, value) in keys {
        let out = Command::new("corosync-cmapctl")
            .args(["-g", key])
            .stdin(Stdio::null())
            .output()
            .expect("run corosync-cmapctl");
        let want = value.map(|v| format!("{key} (str) = {v}\n"));
        let got = out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned());
        assert_eq!(
            got, want,
            "the daemon's configuration is not the one this test needs (see the module doc)"
        );
    }
}

/// In the run inside the namespaces: mounts a private `/dev/shm` and returns the output file
/// and the probe.
fn inner_run() -> Option<(PathBuf, PathBuf)> {
    let out = PathBuf::from(std::env::var_os(INNER_OUT)?);
    let probe = PathBuf::from(std::env::var_os(PROBE).expect("the probe's path"));
    let mounted = Command::new("mount")
        .args(["-n", "-t", "tmpfs", "corowire-test", "/dev/shm"])
        .status()
        .expect("run mount");
    assert!(mounted.success(), "mount a private /dev/shm");
    Some((out, probe))
}

/// Runs the tools against the daemon here, then runs the test `name` inside fresh network and
/// mount namespaces (where it serves and runs them again), and compares the two reports.
fn compare(name: &str) {
    let dir = std::env::temp_dir().join(format!("corowire-serve-compat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let probe = dir.join("quorum_probe");
    let src = data("quorum_probe.c");
    let cc = Command::new("cc")
        .args(["-Wall", "-Werror", "-o"])
        .args([&probe, &src])
        .args(["-lquorum", "-lvotequorum"])
        .output()
        .expect("run cc");
    assert!(cc.status.success(), "compiling quorum_probe.c: {}", String::from_utf8_lossy(&cc.stderr));
    let corosync = collect(&probe);

    let out = dir.join("report");
    let inner = Command::new("unshare")
        .args(["--net", "--mount", "--fork", "--"])
        .arg(std::env::current_exe().expect("test executable"))
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
        .env(INNER_OUT, &out)
        .env(PROBE, &probe)
        .output()
        .expect("run unshare");
    let log = format!("{}{}", String::from_utf8_lossy(&inner.stdout), String::from_utf8_lossy(&inner.stderr));
    assert!(inner.status.success(), "the run against the server failed:\n{log}");
    let server = std::fs::read_to_string(&out).expect("the server's report");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(server, corosync, "the server (left) and corosync (right) differ");
}

/// What the C tools (and the compiled `probe`) print against whatever serves the standard
/// names here, masked.
fn collect(probe: &Path) -> String {
    let mut report = String::new();
    for args in [&["-s"][..], &["-l"], &["-l", "-i"], &["-e", "2"]] {
        report += &tool("corosync-quorumtool", args, |_| true);
    }
    report += &tool("corosync-cmapctl", &["-g", "runtime.votequorum.this_node_id"], |_| true);
    // The configuration's keys (live statistics, services and runtime keys are other slices'
    // or not reproduced), and the uidgid keys that would let non-root users in.
    let configured = |line: &str| {
        ["nodelist.", "quorum.", "totem.", "uidgid."].iter().any(|p| line.starts_with(p))
            && !line.starts_with("totem.cluster_name ")
    };
    report += &tool("corosync-cmapctl", &[], configured);
    report + &tool(probe.to_str().expect("a UTF-8 path"), &[], |_| true)
}

/// `cmd args`: its exit status, and its stdout lines that `keep` accepts and its stderr, with
/// the date and the ring id masked.
fn tool(cmd: &str, args: &[&str], keep: impl Fn(&str) -> bool) -> String {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().expect("run a C tool");
    let mask = |text: &[u8]| {
        String::from_utf8_lossy(text)
            .split_inclusive('\n')
            .filter(|l| keep(l))
            .map(|l| match l.split_once(':') {
                Some(("Date" | "Ring ID", _)) => "(masked)\n",
                _ => l,
            })
            .collect::<String>()
    };
    let name = Path::new(cmd).file_name().map_or(cmd.into(), |n| n.to_string_lossy());
    format!(
        "$ {name} {}\nexit {:?}\n{}-- stderr --\n{}\n",
        args.join(" "),
        out.status.code(),
        mask(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Stops a `corowire serve` child with SIGTERM and checks it exits 0.
fn stop(mut child: Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill takes plain integers; `pid` is our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(child.wait().expect("wait for corowire serve").success());
}
