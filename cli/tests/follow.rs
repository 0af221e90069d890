//! `--follow`: `corowire cmap -t/-T` and `corowire quorum -m` survive a corosync restart,
//! print the resync line, and otherwise print what the C tools print. The tests kill and
//! restart the daemon, so they run next to a private one of their own:
//!
//! ```sh
//! cargo test --workspace --no-run --locked
//! tests/harness/with-corosync -- cargo test --locked --offline -p corowire-cli --test follow \
//!     -- --ignored --test-threads=1
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

#[path = "../../tests/support/corosync.rs"]
mod corosync;
use corosync::{corosync_pid, ensure_corosync, eventually, signal};

const CMAP_RESYNC: &str = "resync> reconnected to corosync, changes in between were not seen";
const QUORUM_RESYNC: &str = "Resync: reconnected to corosync, changes in between were not seen";

/// A running tool whose stdout and stderr lines are collected as they come.
struct Tool {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
}

/// The lines `from` gives, collected on a thread until its end of file.
fn collect(from: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl Tool {
    /// Starts `program` with `args`, stdin, stdout and stderr piped.
    fn spawn(program: &str, args: &[&str]) -> Self {
        Self::start(Command::new(program).args(args))
    }

    /// Starts `command`, stdin, stdout and stderr piped.
    fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let lines = collect(child.stdout.take().expect("stdout"));
        let errors = collect(child.stderr.take().expect("stderr"));
        Self { child, lines, errors }
    }

    /// Ours: `corowire TOOL ARGS`.
    fn ours(args: &[&str]) -> Self {
        Self::spawn(env!("CARGO_BIN_EXE_corowire"), args)
    }

    /// Ours with `COROWIRE_TIMEOUT=1`.
    fn ours_within_1s(args: &[&str]) -> Self {
        Self::start(Command::new(env!("CARGO_BIN_EXE_corowire")).args(args).env("COROWIRE_TIMEOUT", "1"))
    }

    /// Whether it ends within 10 s (a bound on the wait, not a timing assertion); its status.
    fn ends(&mut self) -> Option<std::process::ExitStatus> {
        let mut status = None;
        eventually(50, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status
    }

    /// The C tool, its stdout line-buffered.
    fn c(args: &[&str]) -> Self {
        let mut all = vec!["-oL"];
        all.extend_from_slice(args);
        Self::spawn("stdbuf", &all)
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (at most 30 s) until the lines satisfy `check`; they then.
    fn wait_for(&self, what: &str, mut check: impl FnMut(&[String]) -> bool) -> Vec<String> {
        assert!(eventually(150, || check(&self.lines())), "{what}: got {:?}", self.lines());
        self.lines()
    }

    /// Ends it: "q" for a tracker, a kill for a monitor; its lines.
    fn stop(mut self) -> Vec<String> {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"q\n");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread ends at end of file; take what it has.
        std::thread::sleep(core::time::Duration::from_millis(100));
        self.lines()
    }
}

fn set_c(key: &str, ty: &str, value: &str) {
    let ok = Command::new("corosync-cmapctl")
        .args(["-s", "--", key, ty, value])
        .status()
        .expect("run corosync-cmapctl");
    assert!(ok.success(), "corosync-cmapctl -s {key} {ty} {value}");
}

fn kill_corosync() {
    let pid = corosync_pid().expect("corosync runs");
    signal("-KILL", &pid);
    assert!(eventually(100, || corosync_pid().is_none()), "corosync did not die");
}

fn kill_and_restart_corosync() {
    kill_corosync();
    ensure_corosync();
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn cmap_track_follows_a_restart() {
    ensure_corosync();
    let prefix = format!("follow.{}.", std::process::id());
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    let header = |l: &[String]| l.first().is_some_and(|h| h == "Type \"q\" to finish");
    let ours = Tool::ours(&["cmap", "--follow", "-T", &prefix]);
    let before = Tool::c(&["corosync-cmapctl", "-T", &prefix]);
    ours.wait_for("our tracker starts", header);
    before.wait_for("the C tracker starts", header);
    set_c(&a, "u32", "1");
    set_c(&b, "str", "x");
    let expected_before = before.wait_for("the C tracker sees both", |l| l.len() == 3);
    ours.wait_for("our tracker sees both", |l| l.len() == 3);

    kill_and_restart_corosync();
    ours.wait_for("the resync line", |l| l.len() == 4);
    let after = Tool::c(&["corosync-cmapctl", "-T", &prefix]);
    after.wait_for("the second C tracker starts", header);
    set_c(&a, "u32", "2");
    set_c(&a, "u32", "3");
    set_c(&b, "i8", "-1");
    let expected_after = after.wait_for("the second C tracker sees all", |l| l.len() == 4);
    ours.wait_for("our tracker sees all", |l| l.len() == 7);

    let got = ours.stop();
    after.stop();
    before.stop();
    let mut expected = expected_before;
    expected.push(CMAP_RESYNC.to_owned());
    expected.extend_from_slice(&expected_after[1..]);
    assert_eq!(got, expected);
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn cmap_track_json_follows_a_restart() {
    ensure_corosync();
    let key = format!("follow.{}.json", std::process::id());
    let ours = Tool::ours(&["cmap", "--json", "--follow", "-t", &key]);
    // Tracking is on once the first change shows (the daemon reports only real changes).
    let mut value = 0;
    ours.wait_for("our tracker starts", |l| {
        value += 1;
        set_c(&key, "u32", &value.to_string());
        !l.is_empty()
    });
    kill_and_restart_corosync();
    ours.wait_for("the resync line", |l| l.iter().any(|l| l == r#"{"event":"resync"}"#));
    set_c(&key, "u32", "5");
    let lines =
        ours.wait_for("a change after the resync", |l| l.last().is_some_and(|l| l.contains("\"value\":5")));
    ours.stop();
    let resync = lines.iter().position(|l| l == r#"{"event":"resync"}"#).unwrap();
    assert_eq!(lines.iter().filter(|l| l.contains("resync")).count(), 1, "{lines:?}");
    assert!(lines[resync + 1..].iter().all(|l| l.starts_with("{\"event\":\"create\"")), "{lines:?}");
}

/// The lines of a monitor's last status block (from its last "Quorum information"), without
/// the date; `None` until it is complete (its membership table ended with a blank line).
fn last_block(lines: &[String]) -> Option<Vec<String>> {
    let start = lines.iter().rposition(|l| l == "Quorum information")?;
    let block = &lines[start..];
    let table = block.iter().position(|l| l == "Membership information")?;
    let end = table + block[table..].iter().position(String::is_empty)?;
    Some(block[..end].iter().filter(|l| !l.starts_with("Date:")).cloned().collect())
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn quorum_monitor_follows_a_restart() {
    ensure_corosync();
    let quorate = |l: &[String]| {
        last_block(l).is_some_and(|b| b.iter().any(|l| l.starts_with("Quorate:") && l.ends_with("Yes")))
    };
    let ours = Tool::ours(&["quorum", "--follow", "-m"]);
    ours.wait_for("our first status", quorate);
    kill_and_restart_corosync();
    let c = Tool::c(&["corosync-quorumtool", "-m"]);
    let expected = last_block(&c.wait_for("the C tool's status", quorate));
    assert!(expected.is_some());
    let lines = ours.wait_for("our status after the resync", |l| {
        l.iter().position(|l| l == QUORUM_RESYNC).is_some_and(|at| quorate(&l[at + 1..]))
    });
    c.stop();
    ours.stop();
    assert_eq!(lines.iter().filter(|l| l.contains("Resync")).count(), 1, "{lines:?}");
    // The status printed after the resync is the one the C tool prints against the new daemon.
    assert_eq!(last_block(&lines), expected);
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn quorum_monitor_json_follows_a_restart() {
    ensure_corosync();
    let resync = r#"{"event":"resync"}"#;
    let ours = Tool::ours(&["quorum", "--json", "--follow", "-m"]);
    ours.wait_for("our first status", |l| !l.is_empty());
    kill_and_restart_corosync();
    let lines = ours.wait_for("a status after the resync", |l| {
        l.iter().position(|l| l == resync).is_some_and(|at| l.len() > at + 1)
    });
    ours.stop();
    let at = lines.iter().position(|l| l == resync).unwrap();
    assert_eq!(lines.iter().filter(|l| l.contains("resync")).count(), 1, "{lines:?}");
    // Status documents on both sides of the marker, the one after it from the new daemon.
    for line in lines.iter().take(at).chain(&lines[at + 1..]) {
        let doc: serde_json::Value = serde_json::from_str(line).expect("one JSON document per line");
        assert_eq!(doc["quorum_provider"], "corosync_votequorum", "{line}");
        assert!(doc["quorate"].is_boolean(), "{line}");
    }
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn cmap_track_ends_on_q_while_corosync_is_down() {
    ensure_corosync();
    let prefix = format!("follow.{}.down.", std::process::id());
    let mut ours = Tool::ours(&["cmap", "--follow", "-T", &prefix]);
    ours.wait_for("our tracker starts", |l| !l.is_empty());
    kill_corosync();
    let lost = "corowire: lost corosync, waiting for it to come back";
    let said = eventually(150, || ours.errors.lock().unwrap().iter().any(|l| l == lost));
    ours.child.stdin.as_mut().expect("stdin").write_all(b"q\n").unwrap();
    let status = ours.ends();
    ensure_corosync();
    assert!(said, "the loss is told on stderr: {:?}", ours.errors.lock().unwrap());
    assert!(status.is_some_and(|s| s.success()), "q ends it while corosync is down: {status:?}");
    ours.stop();
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn follow_waits_for_corosync_at_most_corowire_timeout() {
    ensure_corosync();
    kill_corosync();
    let mut quorum = Tool::ours_within_1s(&["quorum", "--follow", "-m"]);
    let mut cmap = Tool::ours_within_1s(&["cmap", "--follow", "-T", "follow.start."]);
    let (quorum_status, cmap_status) = (quorum.ends(), cmap.ends());
    ensure_corosync();
    assert_eq!(quorum_status.and_then(|s| s.code()), Some(1), "quorum: {:?}", quorum.stop());
    assert_eq!(cmap_status.and_then(|s| s.code()), Some(1), "cmap: {:?}", cmap.stop());
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn quorum_monitor_removes_the_files_of_a_lost_corosync() {
    ensure_corosync();
    let ours = Tool::ours(&["quorum", "--follow", "-m"]);
    ours.wait_for("our first status", |l| l.iter().any(String::is_empty));
    let dead = corosync_pid().expect("corosync runs");
    kill_corosync();
    let lost = "corowire: lost corosync, waiting for it to come back";
    let said = eventually(150, || ours.errors.lock().unwrap().iter().any(|l| l == lost));
    // libqb's names: qb-SERVERPID-CLIENTPID-...
    let ours_of_dead = format!("qb-{dead}-{}-", ours.child.id());
    let left = || -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(&ours_of_dead))
            .collect()
    };
    let clean = eventually(50, || left().is_empty());
    let (still_there, errors) = (left(), ours.errors.lock().unwrap().clone());
    ours.stop();
    ensure_corosync();
    assert!(clean, "files of the dead corosync stay: {still_there:?}");
    assert!(said, "the loss is told on stderr: {errors:?}");
}
