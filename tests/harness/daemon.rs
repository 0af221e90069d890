//! Controlling the private corosync of `tests/harness/with-corosync` from a Rust test: find
//! it, signal it, start it again after a test stopped it. Included by the test crates that
//! restart the daemon (`#[path = ".../tests/harness/daemon.rs"] mod daemon;`).

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

/// The daemon's pid, if one runs (the harness's private PID namespace holds only it).
pub(crate) fn corosync_pid() -> Option<String> {
    let out = Command::new("pidof").arg("corosync").output().ok()?;
    let pid = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!pid.is_empty()).then_some(pid)
}

/// Whether the daemon answers and the node is quorate (`corosync-quorumtool -s`).
pub(crate) fn quorate() -> bool {
    Command::new("corosync-quorumtool")
        .arg("-s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts corosync again (after a test stopped it) if it is not running, and waits (at most
/// 30 s) until it serves.
pub(crate) fn ensure_corosync() {
    if corosync_pid().is_none() {
        let conf = std::env::var("COROWIRE_COROSYNC_CONF").expect("run inside tests/harness/with-corosync");
        // Without -f corosync forks into the background once it is set up.
        let started = Command::new("corosync").args(["-c", &conf]).status().expect("start corosync");
        assert!(started.success(), "corosync did not start");
    }
    assert!(eventually(150, quorate), "corosync is not serving");
}

/// Sends `sig` (as `kill` spells it: `-STOP`) to `pid`.
pub(crate) fn signal(sig: &str, pid: &str) {
    assert!(Command::new("kill").args([sig, pid]).status().expect("kill").success());
}
