//! The simulated cluster with the unmodified C tools: `corowire serve --control PATH` under
//! corosync's standard names, changed by `corowire sim`, and read by `corosync-quorumtool`,
//! `corosync-cmapctl` (a listing and a `-T` tracker) and `tests/cluster/vq-notify.c
//! --libquorum` (libquorum's notifications).
//!
//! The C libraries connect to the standard names only, so the test re-runs itself inside
//! private network and mount namespaces (`unshare --net --mount`, as root), where the server
//! takes those names without touching a corosync of the host, and `/dev/shm` is a private
//! tmpfs. It needs root, `unshare`, `setpriv`, `stdbuf`, `corosync-quorumtool`,
//! `corosync-cmapctl`, `cc` and corosync's libvotequorum and libquorum headers, so it is
//! `#[ignore]`d in a plain `cargo test` and run by `tests/run-all`, where a missing
//! requirement fails it.

use core::time::Duration;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};

use corowire_unix::votequorum::{OwnedNotification, RingId, TrackFlags, Votequorum};

#[path = "support/c_helpers.rs"]
mod c_helpers;

const INNER: &str = "COROWIRE_SIM_INNER";
const TEST: &str = "simulated_cluster_seen_by_the_c_tools";
/// A bound on waits for something that must happen (not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(20);

const NODELIST: &str = "\
nodelist.node.0.nodeid u32 1
nodelist.node.0.ring0_addr str 127.0.0.1
nodelist.node.0.name str node1
nodelist.node.1.nodeid u32 2
nodelist.node.1.ring0_addr str 192.0.2.2
nodelist.node.1.name str node2
nodelist.node.2.nodeid u32 3
nodelist.node.2.ring0_addr str 192.0.2.3
nodelist.node.2.name str node3
";

#[test]
#[ignore = "needs root, unshare, setpriv and the corosync tools: run by tests/run-all"]
fn simulated_cluster_seen_by_the_c_tools() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    assert!(nix::unistd::geteuid().is_root(), "{TEST} needs root");
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--fork", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--ignored", "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .output()
        .expect("unshare runs");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && log.contains("SIM OK"), "inner run failed:\n{log}");
}

/// `cmd args`: (exit status, stdout, stderr).
fn run(cmd: &str, args: &[&str]) -> (i32, String, String) {
    let out =
        Command::new(cmd).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn sim(control: &Path, command: &[&str]) -> (i32, String, String) {
    let mut args = vec!["sim", "--control", control.to_str().unwrap()];
    args.extend_from_slice(command);
    run(env!("CARGO_BIN_EXE_corowire"), &args)
}

/// `corowire sim` that must be applied.
fn apply(control: &Path, command: &[&str]) -> String {
    let (code, out, err) = sim(control, command);
    assert_eq!(code, 0, "corowire sim {command:?}: {out}{err}");
    out
}

/// `corosync-quorumtool -s`: (exit status, the `Nodes`, `Ring ID` and `Quorate` values).
fn quorum_status() -> (i32, String, String, String) {
    let (code, out, err) = run("corosync-quorumtool", &["-s"]);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {name} in corosync-quorumtool -s: {out}{err}"))
    };
    (code, field("Nodes:"), field("Ring ID:"), field("Quorate:"))
}

/// The node ids `corosync-quorumtool -l` lists.
fn listed_nodes() -> Vec<String> {
    let (code, out, err) = run("corosync-quorumtool", &["-l"]);
    assert!(code == 0 || code == 2, "corosync-quorumtool -l: {out}{err}");
    let rows = out.lines().skip_while(|l| !l.trim_start().starts_with("Nodeid")).skip(1);
    rows.filter_map(|l| l.split_whitespace().next().map(str::to_owned)).collect()
}

fn members() -> String {
    let (code, out, err) = run("corosync-cmapctl", &["-b", "runtime.members."]);
    assert_eq!(code, 0, "corosync-cmapctl -b runtime.members.: {err}");
    out
}

/// A tracker printing one line per notification: its stdin is held open (`q` and EOF end
/// it), its lines arrive on a channel.
struct Tracker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Tracker {
    /// `corosync-cmapctl -T runtime.members.`
    fn members() -> Self {
        // cmapctl writes its events through stdio: line-buffer it.
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "corosync-cmapctl", "-T", "runtime.members."]);
        // cmapctl prints this once its track is registered.
        Self::start(cmd, "Type \"q\" to finish")
    }

    /// `vq-notify --libquorum` (`tests/cluster/vq-notify.c` built at `bin`): libquorum's
    /// notifications, the current state first.
    fn libquorum(bin: &Path) -> Self {
        let mut cmd = Command::new(bin);
        cmd.arg("--libquorum");
        Self::start(cmd, "ready")
    }

    /// Starts `cmd` and waits for its line `ready`.
    fn start(mut cmd: Command, ready: &str) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let tracker = Self { child, stdin, lines };
        tracker.expect(&[ready]);
        tracker
    }

    /// The next lines are `want`.
    #[track_caller]
    fn expect(&self, want: &[&str]) {
        for w in want {
            let got = self.lines.recv_timeout(PATIENCE).unwrap_or_else(|e| panic!("tracker: no {w:?}: {e}"));
            assert_eq!(got, *w);
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"q\n");
        }
        let _ = self.child.wait();
    }
}

/// Runs `corowire serve` until dropped (SIGTERM, then waits).
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

fn inner() {
    let (code, _, err) = run("mount", &["-n", "-t", "tmpfs", "corowire-sim", "/dev/shm"]);
    assert_eq!(code, 0, "mount /dev/shm: {err}");
    let dir = std::env::temp_dir().join(format!("corowire-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.join("three.conf");
    std::fs::write(&config, NODELIST).unwrap();
    let control = dir.join("control");
    let server = Command::new(env!("CARGO_BIN_EXE_corowire"))
        .args(["serve", "--standard-names", "--config"])
        .arg(&config)
        .arg("--control")
        .arg(&control)
        // A cold start of two of the three nodes.
        .args(["--up", "1,2"])
        .stdout(Stdio::null())
        .spawn()
        .expect("corowire serve starts");
    let server = Serve(server);
    wait_for(&control);
    assert_eq!(std::fs::metadata(&control).unwrap().permissions().mode() & 0o777, 0o600);
    let vq_notify = c_helpers::build(&dir, "vq-notify", &["-lvotequorum", "-lquorum"]);
    checks(&control, &vq_notify);
    drop(server);
    assert!(!control.exists(), "the control socket is removed on exit");
    std::fs::remove_dir_all(&dir).unwrap();
    println!("SIM OK");
}

fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !path.exists() || sim(path, &["show"]).0 != 0 {
        assert!(std::time::Instant::now() < deadline, "no control socket at {}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn checks(control: &Path, vq_notify: &Path) {
    let (code, nodes, _, quorate) = quorum_status();
    assert_eq!((code, nodes.as_str(), quorate.as_str()), (0, "2", "Yes"));
    assert!(!members().contains("runtime.members.3."), "node 3 was never a member");
    let tracker = Tracker::members();

    // The third node comes: its keys are created in corosync's order.
    apply(control, &["up", "3"]);
    tracker.expect(&[
        "create> runtime.members.3.ip (str) = r(0) ip(192.0.2.3) ",
        "create> runtime.members.3.join_count (u32) = 1",
        "create> runtime.members.3.status (str) = joined",
        "create> runtime.members.3.config_version (u64) = 0",
    ]);
    let (code, nodes, ring0, quorate) = quorum_status();
    assert_eq!((code, nodes.as_str(), quorate.as_str()), (0, "3", "Yes"));

    // One node of three lost: still quorate, a new ring, node 3 left.
    apply(control, &["down", "3"]);
    tracker.expect(&["modify> runtime.members.3.status (str) = left"]);
    let (code, nodes, ring1, quorate) = quorum_status();
    assert_eq!((code, nodes.as_str(), quorate.as_str()), (0, "2", "Yes"));
    assert_ne!(ring1, ring0);
    assert!(ring1.starts_with("1."), "the lowest member represents the ring: {ring1}");
    assert_eq!(listed_nodes(), ["1", "2"]);

    // The second: quorum lost (exit status 2, as corosync-quorumtool against corosync).
    apply(control, &["split", "1:2"]);
    tracker.expect(&["modify> runtime.members.2.status (str) = left"]);
    let (code, nodes, _, quorate) = quorum_status();
    assert_eq!((code, nodes.as_str(), quorate.as_str()), (2, "1", "No"));
    let show = apply(control, &["show"]);
    let want = "node 3: down\npartition 0: nodes [1], quorate no\npartition 1: nodes [2], quorate no\n";
    assert!(show.ends_with(want), "{show}");

    // Refused commands change nothing and say why.
    for cmd in ["down", "leave"] {
        let (code, _, err) = sim(control, &[cmd, "1"]);
        assert!(code == 1 && err.contains("local node"), "{cmd} 1: {code} {err}");
    }
    for bad in [&["up", "9"][..], &["join", "0", "7"], &["join", "0", "1", "1"]] {
        let (code, _, err) = sim(control, bad);
        assert!(code == 1 && !err.is_empty(), "{bad:?}: {code} {err}");
    }
    // Bad usage is refused before it is sent, with exit status 2.
    for bad in [&["reboot"][..], &["down", "x"], &["leave"], &["join", "0"], &["up", "2,,3"]] {
        let (code, _, err) = sim(control, bad);
        assert!(code == 2 && err.contains("usage:"), "{bad:?}: {code} {err}");
    }
    assert_eq!(quorum_status().1, "1");

    // A node started alone in a partition of its own has 1 of 3 votes: not quorate.
    apply(control, &["up", "2:3"]);
    let show = apply(control, &["show"]);
    assert!(show.contains("partition 2: nodes [3], quorate no\n"), "{show}");
    apply(control, &["down", "3"]);

    // Back together: node 3 joins for the second time, node 2 too.
    apply(control, &["up", "3"]);
    tracker.expect(&[
        "modify> runtime.members.3.join_count (u32) = 2",
        "modify> runtime.members.3.status (str) = joined",
    ]);
    apply(control, &["join", "0", "1"]);
    tracker.expect(&[
        "modify> runtime.members.2.join_count (u32) = 2",
        "modify> runtime.members.2.status (str) = joined",
    ]);
    let (code, nodes, _, quorate) = quorum_status();
    assert_eq!((code, nodes.as_str(), quorate.as_str()), (0, "3", "Yes"));
    assert_eq!(listed_nodes(), ["1", "2", "3"]);
    // Expected votes below the three votes present: refused, as on a real 3-node corosync
    // 3.1.7 cluster (tests/harness/with-cluster, all up: `-e 1` and `-e 2` print this and
    // exit 1; votequorum.c refuses `expected_votes < total_votes`).
    for votes in ["1", "2"] {
        let (code, out, err) = run("corosync-quorumtool", &["-e", votes]);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (1, "", "Unable to set expected votes: CS_ERR_INVALID_PARAM\n"),
            "-e {votes}"
        );
    }
    assert!(members().contains("runtime.members.2.join_count (u32) = 2\n"));
    let show = apply(control, &["show"]);
    assert!(
        show.contains("node 1: up, partition 0, ring 1.")
            && show.ends_with("partition 0: nodes [1 2 3], quorate yes\n"),
        "{show}"
    );
    drop(tracker);

    // A quorum device configured at run time (its votes computed: 2, expected votes 5): node
    // 1 alone is quorate with the simulated device's vote only, and `sim show` marks it.
    let (code, _, err) = run("corosync-cmapctl", &["-s", "quorum.device.model", "str", "net"]);
    assert_eq!(code, 0, "{err}");
    apply(control, &["split", "1:2,3"]);
    assert_eq!(quorum_status().0, 2);
    apply(control, &["qdevice", "on", "1"]);
    let (code, nodes, _, quorate) = quorum_status();
    assert_eq!((code, nodes.as_str(), quorate.as_str()), (0, "1", "Yes"));
    let (_, status, _) = run("corosync-quorumtool", &["-s"]);
    assert!(status.contains("Total votes:      3\n") && status.contains(" VQsim_qdevice\n"), "{status}");
    let show = apply(control, &["show"]);
    assert!(show.contains(", qdevice, local\n") && show.contains("nodes [1], quorate yes"), "{show}");
    // `corosync-quorumtool -f` unregisters it: `sim show` no longer marks it, and `qdevice
    // on` registers it again.
    let (code, _, err) = run("corosync-quorumtool", &["-f"]);
    assert_eq!(code, 0, "{err}");
    let show = apply(control, &["show"]);
    assert!(!show.contains(", qdevice") && show.contains("nodes [1], quorate no"), "{show}");
    apply(control, &["qdevice", "on", "1"]);
    assert!(apply(control, &["show"]).contains(", qdevice, local\n"));
    // Off: polled once without a vote, then silent; the device stays registered.
    apply(control, &["qdevice", "off", "1"]);
    let (code, _, _, quorate) = quorum_status();
    assert_eq!((code, quorate.as_str()), (2, "No"));
    // Unregistered: alive and silent, it would hold the next change back until
    // quorum.device.sync_timeout (30 s), as corosync's would.
    let (code, _, err) = run("corosync-quorumtool", &["-f"]);
    assert_eq!(code, 0, "{err}");
    apply(control, &["join", "0", "1"]);

    // Another user may not drive the simulation, even where the socket's mode would let it.
    std::fs::set_permissions(control, std::fs::Permissions::from_mode(0o666)).unwrap();
    let sim_bin = env!("CARGO_BIN_EXE_corowire");
    let (code, _, err) = run(
        "setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sim_bin,
            "sim",
            "--control",
            control.to_str().unwrap(),
            "down",
            "3",
        ],
    );
    // Closed unanswered: the client fails on the socket (a broken pipe or no answer), not
    // with a refusal from the model.
    assert!(code == 1 && err.contains("control socket"), "another uid: {code} {err}");
    assert_eq!(quorum_status().1, "3", "another uid changed the cluster");
    device_holds_the_sync(control, vq_notify);
}

/// The next node-list notification's ring id on `device`'s tracking connection.
fn next_ring(device: &mut Votequorum) -> RingId {
    loop {
        match device.next_event(Some(PATIENCE)).unwrap().expect("a node-list notification") {
            OwnedNotification::NodeList { ring_id, .. } => return ring_id,
            _ => continue,
        }
    }
}

/// A client's quorum device on node 1 (3 nodes, its votes computed: 2) holds a membership
/// change back until it polls with the new ring id, as corosync 3.1.7's does
/// (`quorum.device.sync_timeout`): `corosync-quorumtool -s` waits, then shows the device's
/// vote when it polled (node 3 lost: Total votes 4, Quorate), and without it after the
/// timeout (node 2 lost too: Total votes 1, Activity blocked; on a real 3-node cluster with
/// node 3 lost and no poll: Total votes 2, Quorum 3, Activity blocked).
///
/// A libquorum tracker (`vq-notify --libquorum`) is told of each change once, at the end of
/// the wait, as corosync 3.1.7 tells it (seen on a real 3-node cluster, device votes 2,
/// node 3 killed: nothing when the sync starts; `quorate=yes members=1,2` right after the
/// device's poll, or `quorate=no members=1,2` when `sync_timeout` passed, never the
/// `quorate=yes` the device's vote gave during the wait).
fn device_holds_the_sync(control: &Path, vq_notify: &Path) {
    // Long enough that the first wait can only end with the poll.
    let (code, _, err) = run("corosync-cmapctl", &["-s", "quorum.device.sync_timeout", "u32", "600000"]);
    assert_eq!(code, 0, "{err}");
    let mut device = Votequorum::connect().unwrap();
    device.track_start(0, TrackFlags::CHANGES).unwrap();
    let ring = next_ring(&mut device);
    device.qdevice_register("qd").unwrap();
    device.qdevice_poll("qd", true, ring).unwrap();
    assert_eq!(quorum_status().3, "Yes");
    let libquorum = Tracker::libquorum(vq_notify);
    libquorum.expect(&["libquorum quorate=yes members=1,2,3"]);
    apply(control, &["down", "3"]);
    let status = Command::new("corosync-quorumtool").arg("-s").stdout(Stdio::piped()).spawn().unwrap();
    let ring = next_ring(&mut device);
    device.qdevice_poll("qd", true, ring).unwrap();
    let out = status.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("Total votes:      4\n") && out.contains("Quorate:          Yes\n"), "{out}");
    // Quorate-ness did not change: one notification, at the end of the wait.
    libquorum.expect(&["libquorum quorate=yes members=1,2"]);
    // Silent: the change completes at the timeout, without the device's vote.
    let (code, _, err) = run("corosync-cmapctl", &["-s", "quorum.device.sync_timeout", "u32", "500"]);
    assert_eq!(code, 0, "{err}");
    apply(control, &["down", "2"]);
    let (code, out, _) = run("corosync-quorumtool", &["-s"]);
    assert!(code == 2 && out.contains("Total votes:      1\n") && out.contains("Activity blocked"), "{out}");
    let (_, out, _) = run("corosync-quorumtool", &["-l"]);
    assert!(out.contains(" qd (votes 2)\n"), "{out}");
    // The next notification is the end of the wait's: during it the device's vote kept node
    // 1 quorate (3 of 3), and corosync tells libquorum nothing then.
    libquorum.expect(&["libquorum quorate=no members=1"]);
    // The device is no longer alive: the next change is not held, and is told at once.
    apply(control, &["up", "2,3"]);
    libquorum.expect(&["libquorum quorate=yes members=1,2,3"]);
}
