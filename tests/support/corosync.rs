//! Helpers for tests that stop, kill or pause the corosync that `tests/harness/with-corosync`
//! started, and start it again: shared by test suites of several crates, each of which
//! includes this file with `#[path = "../../tests/support/corosync.rs"] mod corosync;`.
//! Inside the harness's namespaces the only corosync is the harness's own.

use core::time::Duration;
use std::process::{Command, Stdio};
use std::thread::sleep;

/// Polls `check` every 200 ms, at most `tries` times; whether it came true. A bound on the
/// wait, not a timing assertion.
pub(crate) fn eventually(tries: u32, mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if check() {
            return true;
        }
        sleep(Duration::from_millis(200));
    }
    false
}

/// The pid of the running corosync, if one runs.
pub(crate) fn corosync_pid() -> Option<String> {
    let out = Command::new("pidof").arg("corosync").output().ok()?;
    let pid = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!pid.is_empty()).then_some(pid)
}

/// Whether corosync answers and its node is quorate (`corosync-quorumtool -s` exits 0).
pub(crate) fn quorate() -> bool {
    Command::new("corosync-quorumtool")
        .arg("-s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts corosync again (after a test stopped or killed it) if it is not running, and waits
/// until it serves.
pub(crate) fn ensure_corosync() {
    if corosync_pid().is_none() {
        let conf = std::env::var("COROWIRE_COROSYNC_CONF").expect("run inside tests/harness/with-corosync");
        // Without -f corosync forks into the background once it is set up.
        let started = Command::new("corosync").args(["-c", &conf]).status().expect("start corosync");
        assert!(started.success(), "corosync did not start");
    }
    assert!(eventually(150, quorate), "corosync is not serving");
}

/// Sends `sig` (as `kill` takes it: `-STOP`, `-KILL`, ...) to `pid`.
pub(crate) fn signal(sig: &str, pid: &str) {
    assert!(Command::new("kill").args([sig, pid]).status().expect("kill").success());
}
