//! The clients and the CLI when the daemon dies or stops under them, against a real corosync
//! that the tests kill, pause and start again:
//!
//! ```sh
//! cargo test -p corowire-cli --test daemon --no-run
//! tests/harness/with-corosync -- cargo test --offline -p corowire-cli --test daemon -- --ignored --test-threads=1
//! ```
//!
//! Every test first checks `COROWIRE_DAEMON` (set by the harness) and starts corosync again
//! if an earlier test left it dead, and leaves it running.

#[path = "../../tests/support/corosync.rs"]
mod corosync;

use corosync::{corosync_pid, ensure_corosync, eventually, signal};
use corowire_unix::{Cmap, DispatchMode};

fn require_daemon() {
    assert!(
        std::env::var("COROWIRE_DAEMON").is_ok(),
        "COROWIRE_DAEMON is not set: run these tests via tests/harness/with-corosync"
    );
    ensure_corosync();
}

/// SIGKILLs corosync and waits until it is [`gone`].
fn kill_corosync() {
    let pid = corosync_pid().expect("corosync runs");
    signal("-KILL", &pid);
    assert!(eventually(100, || gone(&pid)), "corosync did not die");
}

/// What /dev/shm (private to the harness) holds of this process's connections: the
/// per-connection directories `qb-<server pid>-<client pid>-...` and whatever is in them.
fn our_shm_files() -> Vec<String> {
    let infix = format!("-{}-", std::process::id());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/dev/shm").expect("read /dev/shm").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("qb-") else { continue };
        // qb-<server pid>-<client pid>-<fd>-XXXXXX
        if rest.split_once('-').is_some_and(|(_, tail)| tail.starts_with(&infix[1..])) {
            if let Ok(files) = std::fs::read_dir(entry.path()) {
                found.extend(files.flatten().map(|f| format!("{name}/{}", f.file_name().to_string_lossy())));
            }
            found.push(name);
        }
    }
    found
}

#[test]
#[ignore = "needs corosync (tests/harness/with-corosync)"]
fn a_killed_daemon_leaves_none_of_our_files_in_dev_shm() {
    /// How the client meets the dead daemon before it is dropped.
    #[derive(Debug, Clone, Copy)]
    enum Path {
        Call,
        Dispatch,
        DropOnly,
    }
    for path in [Path::Call, Path::Dispatch, Path::DropOnly] {
        require_daemon();
        let mut cmap = Cmap::connect().expect("connect");
        assert!(cmap.get("totem.cluster_name").is_ok());
        assert_eq!(our_shm_files().iter().filter(|f| f.contains('/')).count(), 6, "{:?}", our_shm_files());
        kill_corosync();
        let failed = match path {
            Path::Call => cmap.get("totem.cluster_name").is_err(),
            Path::Dispatch => cmap.dispatch(DispatchMode::All).is_err(),
            Path::DropOnly => true,
        };
        assert!(failed, "{path:?}: the dead daemon went unnoticed");
        if !matches!(path, Path::DropOnly) {
            assert_eq!(our_shm_files(), Vec::<String>::new(), "{path:?}: left behind before the drop");
        }
        drop(cmap);
        assert_eq!(our_shm_files(), Vec::<String>::new(), "{path:?}: left behind after the drop");
    }
    ensure_corosync();
}

/// A stopped (`SIGSTOP`) corosync, continued on drop.
struct Stopped(String);

impl Stopped {
    fn new() -> Self {
        let pid = corosync_pid().expect("corosync runs");
        signal("-STOP", &pid);
        Self(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

/// What a run gave: exit status, stdout, stderr.
type Outcome = (Option<i32>, String, String);

fn outcome(out: std::process::Output) -> Outcome {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `corowire TOOL ARGS` with `COROWIRE_TIMEOUT=timeout`.
fn corowire_within(timeout: &str, args: &[&str]) -> Outcome {
    let cmd = std::process::Command::new(env!("CARGO_BIN_EXE_corowire"))
        .args(args)
        .env("COROWIRE_TIMEOUT", timeout)
        .stdin(std::process::Stdio::null())
        .output();
    outcome(cmd.expect("run corowire"))
}

#[test]
#[ignore = "needs corosync (tests/harness/with-corosync)"]
fn every_command_gives_up_on_a_stopped_daemon_within_corowire_timeout() {
    require_daemon();
    // With the daemon running the bound changes nothing.
    let (code, stdout, _) = corowire_within("5", &["cmap", "-g", "totem.cluster_name"]);
    assert_eq!((code, stdout.as_str()), (Some(0), "totem.cluster_name (str) = corowire-test\n"));
    let stopped = Stopped::new();
    for args in [
        &["cmap", "-g", "totem.cluster_name"][..],
        &["cmap", "totem."],
        &["cmap", "-s", "corowire.test.timeout", "u8", "1"],
        &["quorum", "-s"],
        &["quorum", "-l"],
    ] {
        let (code, _, stderr) = corowire_within("0.5", args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().last(),
            Some("corowire: the daemon did not answer within 0.5 s (COROWIRE_TIMEOUT)"),
            "{args:?}"
        );
    }
    drop(stopped);
    assert!(eventually(50, corosync::quorate), "corosync did not come back");
    let _ = corowire_within("5", &["cmap", "-d", "corowire.test.timeout"]);
}

#[test]
fn an_invalid_corowire_timeout_is_refused() {
    for bad in ["0", "-2", "soon"] {
        let (code, stdout, stderr) = corowire_within(bad, &["cmap", "-g", "totem.cluster_name"]);
        assert_eq!((code, stdout.as_str()), (Some(1), ""), "{bad}");
        assert_eq!(
            stderr,
            format!("corowire: COROWIRE_TIMEOUT must be a positive number of seconds, not '{bad}'\n")
        );
    }
}

/// Checks what a listing killed by the daemon's death printed: a prefix of the whole
/// listing `full`, then at most one error line, the C tool's line for the next key (or, for
/// a death before the listing began, one setup or iteration error).
fn check_interrupted(tool: &str, full: &str, (code, stdout, stderr): &Outcome) {
    assert!(full.starts_with(stdout.as_str()), "{tool}: printed something that is not in the listing");
    assert!(stdout.is_empty() || stdout.ends_with('\n'), "{tool}: a line cut short");
    let errors: Vec<&str> = stderr.lines().collect();
    assert!(errors.len() <= 1, "{tool}: {} error lines, first {:?}", errors.len(), errors.first());
    match errors.first() {
        None => assert_eq!(*code, Some(0), "{tool}"),
        Some(line) if line.starts_with("Can't get value of ") => {
            let next = full[stdout.len()..].split(" (").next().unwrap_or_default();
            assert_eq!(*line, format!("Can't get value of {next}. Error CS_ERR_LIBRARY"), "{tool}");
        }
        Some(line) => {
            let known = ["Failed to initialize the cmap API", "Failed to initialize iteration"];
            assert!(known.iter().any(|k| line.starts_with(k)), "{tool}: {line}");
            assert_eq!((*code, stdout.as_str()), (Some(1), ""), "{tool}");
        }
    }
}

#[test]
#[ignore = "needs corosync (tests/harness/with-corosync)"]
fn a_listing_cut_by_the_daemons_death_prints_what_it_had_and_one_error_line() {
    require_daemon();
    // 50,000 keys, so that the C tool's listing takes a while.
    let dir = std::env::temp_dir().join(format!("corowire-daemon-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let load = dir.join("bulk.conf");
    let lines: String = (0..50_000).map(|i| format!("corowire.bulk.k{i:05} u32 {i}\n")).collect();
    std::fs::write(&load, lines).expect("write the load file");
    let (code, _, stderr) = corowire_within("60", &["cmap", "-p", load.to_str().expect("utf-8 path")]);
    assert_eq!(code, Some(0), "{stderr}");
    let full = std::process::Command::new("corosync-cmapctl").output().expect("run corosync-cmapctl");
    let full = String::from_utf8_lossy(&full.stdout).into_owned();
    assert!(full.lines().count() > 50_000);

    // Both tools list, the daemon dies under them (whenever that is, what they print must
    // have the C tool's shape).
    let spawn = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let c_tool = spawn("corosync-cmapctl", &[]);
    let ours = spawn(env!("CARGO_BIN_EXE_corowire"), &["cmap"]);
    // More listings started one after another, so that the death also meets some while they
    // read the key names (issue 13, item 7: they used to print only `Failed to initialize
    // iteration` and exit with 1).
    let later: Vec<_> = (0..6)
        .map(|_| {
            std::thread::sleep(core::time::Duration::from_millis(50));
            spawn(env!("CARGO_BIN_EXE_corowire"), &["cmap"])
        })
        .collect();
    kill_corosync();
    let result = |child: std::process::Child| outcome(child.wait_with_output().expect("wait"));
    check_interrupted("corosync-cmapctl", &full, &result(c_tool));
    check_interrupted("corowire cmap", &full, &result(ours));
    for child in later {
        check_interrupted("a later corowire cmap", &full, &result(child));
    }
    let _ = std::fs::remove_dir_all(&dir);
    ensure_corosync();
}

/// Whether process `pid` is gone: reaped, or a zombie with no thread left (whose descriptors
/// are closed; `pidof` stops listing a dying process, and its main thread turns zombie,
/// while other threads still hold them).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) && threads <= 1
        }
        Err(_) => true,
    }
}

/// Stops corosync with SIGTERM and waits until it is gone.
fn stop_corosync() {
    if let Some(pid) = corosync_pid() {
        signal("-TERM", &pid);
        assert!(eventually(150, || gone(&pid)), "corosync did not stop");
    }
}

/// Runs `check` against a corosync started from the harness's configuration as `edit`
/// changes it, then goes back to the harness's own.
/// `quorate`: whether to wait for a quorate membership (with a votequorum configuration).
fn with_config(name: &str, quorate: bool, edit: impl Fn(&str) -> String, check: impl FnOnce()) {
    require_daemon();
    let conf = std::env::var("COROWIRE_COROSYNC_CONF").expect("run inside tests/harness/with-corosync");
    let edited = edit(&std::fs::read_to_string(&conf).expect("read the harness's corosync.conf"));
    let path = std::env::temp_dir().join(format!("corowire-{name}-{}.conf", std::process::id()));
    std::fs::write(&path, edited).expect("write the edited configuration");
    stop_corosync();
    let started =
        std::process::Command::new("corosync").arg("-c").arg(&path).status().expect("start corosync");
    assert!(started.success(), "corosync refused the {name} configuration");
    let serving = || {
        std::process::Command::new("corosync-cmapctl")
            .args(["-g", "runtime.services.cmap.service_id"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(eventually(150, serving), "corosync with the {name} configuration does not serve");
    assert!(
        !quorate || eventually(150, corosync::quorate),
        "corosync with the {name} configuration is not quorate"
    );
    check();
    stop_corosync();
    let _ = std::fs::remove_file(&path);
    ensure_corosync();
}

/// `corosync-quorumtool ARGS` and `corowire quorum ARGS` give the same output and status.
fn same_quorum(args: &[&str]) {
    let run = |program: &str, pre: &[&str]| {
        let cmd = std::process::Command::new(program)
            .args(pre)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output();
        outcome(cmd.expect("run"))
    };
    // The `Date:` line is the second each tool ran in (a failed name lookup can take one).
    let undated = |(code, out, err): Outcome| {
        let out: Vec<String> = out.lines().filter(|l| !l.starts_with("Date:")).map(str::to_owned).collect();
        (code, out, err)
    };
    let c = undated(run("corosync-quorumtool", &[]));
    let ours = undated(run(env!("CARGO_BIN_EXE_corowire"), &["quorum"]));
    assert_eq!(ours, c, "corowire quorum {args:?} differs from corosync-quorumtool");
}

#[test]
#[ignore = "needs corosync (tests/harness/with-corosync)"]
fn without_a_nodelist_name_nodes_are_shown_by_the_name_their_address_resolves_to() {
    let unnamed =
        |conf: &str| conf.lines().filter(|l| !l.contains("name: node1")).map(|l| format!("{l}\n")).collect();
    with_config("unnamed", true, unnamed, || {
        for args in [&["-l"][..], &["-l", "-a"], &["-l", "-i"], &["-s"], &["-l", "-p"], &["-l", "-o", "n"]] {
            same_quorum(args);
        }
        // The loopback address resolves (through /etc/hosts) to a name, not to itself.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_corowire")).args(["quorum", "-l"]).output();
        let text = String::from_utf8_lossy(&out.expect("run").stdout).into_owned();
        assert!(!text.contains("127.0.0.1"), "{text}");
    });
    // Several links need names; the second address is looked up as well.
    let two_links = |conf: &str| {
        conf.replace("ring0_addr: 127.0.0.1", "ring0_addr: 127.0.0.1\n        ring1_addr: 127.0.0.2")
    };
    with_config("two-links", true, two_links, || {
        for args in [&["-l", "-a"][..], &["-l", "-a", "-i"], &["-s", "-a"]] {
            same_quorum(args);
        }
    });
}

#[test]
#[ignore = "needs corosync (tests/harness/with-corosync)"]
fn without_a_quorum_section_each_command_answers_as_the_c_tool() {
    let no_quorum = |conf: &str| {
        let mut out = String::new();
        let mut skipping = false;
        for line in conf.lines() {
            skipping |= line.starts_with("quorum {");
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
            skipping &= line != "}";
        }
        out
    };
    with_config("no-quorum", false, no_quorum, || {
        for args in [
            &["-s"][..],
            &[],
            &["-l"],
            &["-l", "-p"],
            &["-l", "-H"],
            &["-e", "2"],
            &["-v", "2"],
            &["-f"],
            &["-m"],
        ] {
            same_quorum(args);
        }
    });
}
