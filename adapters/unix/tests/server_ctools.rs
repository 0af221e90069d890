//! The proof with the unmodified C tools: `corosync-cmapctl`, a libcmap program and a
//! libvotequorum program (`tests/server_ctools/*.c`) against the built-in server.
//!
//! The stock libraries connect to the standard names `cmap` and `votequorum` only, so the test
//! re-runs itself inside private network and mount namespaces (`unshare --net --mount`, as
//! root): there the server takes the standard names without touching a corosync that may run
//! on the host, and `/dev/shm` is a private tmpfs. It runs once with each transport the server
//! offers: shared memory, then sockets (`qb_ipc_type: socket`).
//!
//! It needs root, `unshare`, `corosync-cmapctl`, `cc` and corosync's headers, so it is
//! `#[ignore]`d in a plain `cargo test` and run by `tests/run-all` (which CI runs as root):
//! there a missing requirement fails it, never skips it.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use corowire_unix::cmap::OwnedValue;
use corowire_unix::server::{IpcType, Server, ServerConfig};

const INNER: &str = "COROWIRE_CTOOLS_INNER";
const TEST: &str = "c_tools_against_the_builtin_server";

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
#[ignore = "needs root, unshare, corosync-cmapctl, cc and libcmap-dev: run by tests/run-all"]
fn c_tools_against_the_builtin_server() {
    if let Some(transport) = std::env::var_os(INNER) {
        inner(if transport == "socket" { IpcType::Socket } else { IpcType::Shm });
        return;
    }
    let missing: Vec<&str> = [
        (!nix::unistd::geteuid().is_root()).then_some("root"),
        (!have("unshare")).then_some("unshare"),
        (!have("corosync-cmapctl")).then_some("corosync-cmapctl"),
        (!run("unshare", &["--net", "--mount", "--", "true"]).0).then_some("permission to unshare"),
        (!have("cc")).then_some("cc"),
        (!Path::new("/usr/include/corosync/cmap.h").exists()).then_some("libcmap-dev"),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(missing.is_empty(), "{TEST} needs {missing:?}");
    // Once with each transport the server can offer.
    for transport in ["shm", "socket"] {
        let out = Command::new("unshare")
            .args(["--net", "--mount", "--fork", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--ignored", "--nocapture", "--test-threads=1"])
            .env(INNER, transport)
            .output()
            .unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && log.contains("C TOOLS OK"), "inner run ({transport}) failed:\n{log}");
        eprintln!("{log}");
    }
}

/// Runs `cmd args`: (success, stdout, stderr).
fn run(cmd: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn cmapctl(args: &[&str]) -> String {
    let (ok, out, err) = run("corosync-cmapctl", args);
    assert!(ok, "corosync-cmapctl {args:?} failed: {out}{err}");
    out
}

fn cmapctl_fails(args: &[&str]) -> String {
    let (ok, out, err) = run("corosync-cmapctl", args);
    assert!(!ok, "corosync-cmapctl {args:?} succeeded: {out}");
    err
}

fn mount_tmpfs(dir: &str) {
    let (ok, out, err) = run("mount", &["-n", "-t", "tmpfs", "corowire-test", dir]);
    assert!(ok, "mount {dir}: {out}{err}");
}

/// Serves with `transport` in the private namespaces and runs every check against it.
fn inner(transport: IpcType) {
    // Private /dev/shm (and /tmp, where libqb's filesystem sockets would go).
    mount_tmpfs("/dev/shm");
    if Path::new(corowire_unix::sys::sock::FORCE_FILESYSTEM_SOCKETS).exists() {
        mount_tmpfs("/tmp");
    }
    let mut cfg = ServerConfig { transport, ..ServerConfig::default() };
    cfg.initial.push(("quorum.expected_votes".into(), OwnedValue::UInt32(2)));
    cfg.nodes.push((2, 1, corowire::votequorum::NodeState::MEMBER));
    let mut server = Server::bind(cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::spawn(move || server.run_until(&flag).unwrap());

    cmapctl_checks();
    tracking_checks();
    uidgid_checks();
    c_program_checks();

    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    quorumtool_checks();
    let left: Vec<PathBuf> = std::fs::read_dir("/dev/shm").unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    println!("C TOOLS OK ({transport:?})");
}

fn cmapctl_checks() {
    for (ty, value, shown) in [
        ("i8", "-3", "-3"),
        ("u8", "255", "255"),
        ("i16", "-300", "-300"),
        ("u16", "65535", "65535"),
        ("i32", "-70000", "-70000"),
        ("u32", "5", "5"),
        ("i64", "-5000000000", "-5000000000"),
        ("u64", "18446744073709551615", "18446744073709551615"),
        ("flt", "1.5", "1.500000"),
        ("dbl", "-2.25", "-2.250000"),
        ("str", "hello world", "hello world"),
    ] {
        let key = format!("test.{ty}");
        // `--` lets a negative value through cmapctl's getopt.
        assert_eq!(cmapctl(&["-s", &key, ty, "--", value]), "");
        assert_eq!(cmapctl(&["-g", &key]), format!("{key} ({ty}) = {shown}\n"));
    }
    let listed = cmapctl(&["test.u"]);
    assert_eq!(listed, "test.u16 (u16) = 65535\ntest.u32 (u32) = 5\ntest.u64 (u64) = 18446744073709551615\ntest.u8 (u8) = 255\n");
    let all = cmapctl(&[]);
    assert!(
        all.contains("quorum.provider (str) = corosync_votequorum\n") && all.contains("test.str"),
        "{all}"
    );

    assert_eq!(cmapctl(&["-d", "test.u32"]), "");
    assert_eq!(cmapctl_fails(&["-g", "test.u32"]), "Can't get key test.u32. Error CS_ERR_NOT_EXIST\n");
    assert_eq!(
        cmapctl_fails(&["-s", "totem.cluster_name", "str", "x"]),
        "Failed to set key totem.cluster_name. Error CS_ERR_ACCESS\n"
    );
    assert_eq!(cmapctl(&["-D", "test."]), "");
    // Nothing left under the prefix: no output (and, as with corosync, exit status 1).
    assert_eq!(run("corosync-cmapctl", &["test."]), (false, String::new(), String::new()));

    let file = "/dev/shm/corowire-keys";
    std::fs::write(file, "test.p.a u32 7\ntest.p.b str word\n").unwrap();
    cmapctl(&["-p", file]);
    std::fs::remove_file(file).unwrap();
    assert_eq!(cmapctl(&["test.p."]), "test.p.a (u32) = 7\ntest.p.b (str) = word\n");

    let stats = cmapctl(&["-m", "stats"]);
    assert!(stats.contains("stats.ipcs.global.active (u64) = 1\n"), "{stats}");
}

/// `corosync-cmapctl -t KEY` and `-T PREFIX` print the changes others make.
fn tracking_checks() {
    let spawn = |args: &[&str]| {
        Command::new("corosync-cmapctl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    cmapctl(&["-s", "test.t.key", "u32", "1"]);
    let trackers = [spawn(&["-t", "test.t.key"]), spawn(&["-T", "test.t."])];
    // Let them register their tracks (their prompt is buffered in the pipe until they exit).
    std::thread::sleep(Duration::from_millis(500));
    cmapctl(&["-s", "test.t.key", "u32", "2"]);
    cmapctl(&["-s", "test.t.other", "str", "abc"]);
    cmapctl(&["-d", "test.t.key"]);
    std::thread::sleep(Duration::from_millis(300));
    let outputs: Vec<String> = trackers
        .into_iter()
        .map(|mut child| {
            child.stdin.take().unwrap().write_all(b"q\n").unwrap();
            for _ in 0..100 {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    let prompt = "Type \"q\" to finish\n";
    assert_eq!(outputs[0], format!("{prompt}modify> test.t.key (u32) = 2\ndelete> test.t.key (u32) = 2\n"));
    assert_eq!(
        outputs[1],
        format!(
            "{prompt}modify> test.t.key (u32) = 2\ncreate> test.t.other (str) = abc\n\
             delete> test.t.key (u32) = 2\n"
        )
    );
    cmapctl(&["-d", "test.t.other"]);
}

/// A client that is neither root user nor root group needs a `uidgid` key.
fn uidgid_checks() {
    if !have("setpriv") {
        println!("note: setpriv missing, uidgid checks skipped");
        return;
    }
    let as_nobody =
        ["--reuid=65534", "--regid=65534", "--clear-groups", "corosync-cmapctl", "-g", "totem.cluster_name"];
    let (ok, _, err) = run("setpriv", &as_nobody);
    assert!(!ok && err.contains("CS_ERR_ACCESS"), "{err}");
    cmapctl(&["-s", "uidgid.uid.65534", "u8", "1"]);
    let (ok, out, err) = run("setpriv", &as_nobody);
    assert!(ok, "{out}{err}");
    assert_eq!(out, "totem.cluster_name (str) = corowire\n");
    cmapctl(&["-d", "uidgid.uid.65534"]);
}

/// The test harness's corosync (`tests/harness/README.md`): node 1 `node1` on 127.0.0.1,
/// alone, expected votes 1, ring 1.5.
const QUORUMTOOL_S: &str = "Quorum information
------------------
Date:             DATE
Quorum provider:  corosync_votequorum
Nodes:            1
Node ID:          1
Ring ID:          1.5
Quorate:          Yes

Votequorum information
----------------------
Expected votes:   1
Highest expected: 1
Total votes:      1
Quorum:           1  
Flags:            Quorate 
";
const QUORUMTOOL_L: &str = "
Membership information
----------------------
    Nodeid      Votes Name
         1          1 node1 (local)
";
const QUORUMTOOL_LP: &str = "
Membership information
----------------------
    Nodeid      Votes    Qdevice Name
         1          1         NR node1 (local)
";

/// `corosync-quorumtool` (which uses the `cmap`, `quorum`, `cfg` and `votequorum` services)
/// prints what it prints against the harness's corosync, on a server configured like it.
fn quorumtool_checks() {
    let mut cfg = ServerConfig::default();
    cfg.initial.extend([
        ("nodelist.node.0.name".into(), OwnedValue::String("node1".into())),
        ("nodelist.node.0.nodeid".into(), OwnedValue::UInt32(1)),
        ("nodelist.node.0.ring0_addr".into(), OwnedValue::String("127.0.0.1".into())),
        ("quorum.expected_votes".into(), OwnedValue::UInt32(1)),
    ]);
    let mut server = Server::bind(cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::spawn(move || server.run_until(&flag).unwrap());

    let quorumtool = |args: &[&str]| {
        let out = Command::new("corosync-quorumtool").args(args).stdin(Stdio::null()).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // Only the date changes from run to run.
        let masked: String = stdout
            .split_inclusive('\n')
            .map(|l| if l.starts_with("Date:") { "Date:             DATE\n" } else { l })
            .collect();
        (out.status.code(), masked, stderr)
    };
    let status = format!("{QUORUMTOOL_S}{QUORUMTOOL_L}");
    assert_eq!(quorumtool(&["-s"]), (Some(0), status, String::new()));
    assert_eq!(quorumtool(&["-l"]), (Some(0), QUORUMTOOL_L.into(), String::new()));
    // A bare `-p` is `-s -p`: a Qdevice column.
    assert_eq!(quorumtool(&["-p"]), (Some(0), format!("{QUORUMTOOL_S}{QUORUMTOOL_LP}"), String::new()));
    assert_eq!(quorumtool(&["-l", "-p"]), (Some(0), QUORUMTOOL_LP.into(), String::new()));
    // `-i`: the address from cfg's GET_NODE_ADDRS instead of the node list's name.
    let (code, out, err) = quorumtool(&["-l", "-i"]);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert!(out.ends_with("         1          1 127.0.0.1 (local)\n"), "{out}");

    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}

/// Compiles `tests/server_ctools/NAME.c` against LIB.
fn compile(name: &str, lib: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/server_ctools/{name}.c"));
    let exe = PathBuf::from(format!("/dev/shm/{name}"));
    let (ok, out, err) = run("cc", &["-Wall", "-o", exe.to_str().unwrap(), src.to_str().unwrap(), lib]);
    assert!(ok, "compiling {name}: {out}{err}");
    exe
}

fn c_program_checks() {
    {
        let exe = compile("cmap_client", "-lcmap");
        let (ok, out, err) = run(exe.to_str().unwrap(), &[]);
        std::fs::remove_file(&exe).unwrap();
        assert!(ok, "{out}{err}");
        assert_eq!(
            out,
            "u32 43\ni64 -5\ndbl 2.5\nstr hello\nmissing 12\n\
             iter ctest.dbl 8 10\niter ctest.i64 8 7\niter ctest.str 6 11\niter ctest.u32 4 6\niter end 27\n\
             event 4 ctest.new new_len 1\nevent 1 ctest.new new_len 0\nactive 2\ndone\n"
        );
    }
    {
        let exe = compile("votequorum_client", "-lvotequorum");
        let (ok, out, err) = run(exe.to_str().unwrap(), &["3"]);
        std::fs::remove_file(&exe).unwrap();
        assert!(ok, "{out}{err}");
        assert_eq!(
            out,
            "node 1 votes 1 expected 2 total 2 quorum 2 quorate 1\n\
             nodelist context 42 ring 1.9 nodes 2\nquorum context 42 quorate 1 nodes 2\n\
             expected context 42 votes 3\ndone\n"
        );
    }
}
