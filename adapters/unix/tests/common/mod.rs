//! Helpers shared by the interop suites (`interop`, `interop_socket`), which run next to a
//! real corosync daemon.

use core::time::Duration;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use corowire::cmap::TrackEvent as Ev;
use corowire::dispatch::DispatchMode;
use corowire_unix::cmap::{Cmap, OwnedValue};

/// Runs `corosync-cmapctl` with `args` and returns its standard output; panics if it fails.
pub(crate) fn cmapctl(args: &[&str]) -> String {
    let out = Command::new("corosync-cmapctl").args(args).output().expect("run corosync-cmapctl");
    assert!(
        out.status.success(),
        "corosync-cmapctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs the test `child` of this test binary through `runner` (which starts this binary
/// with what it adds), with `COROWIRE_INTEROP_CHILD` set; panics unless it succeeds and
/// prints `CHILD-DONE`.
pub(crate) fn run_child(mut runner: Command, child: &str) {
    let out = runner
        .args(["--ignored", "--exact", child, "--nocapture", "--test-threads=1"])
        .env("COROWIRE_INTEROP_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-DONE"),
        "child {child} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// [`run_child`] next to its own daemon: a nested `tests/harness/with-corosync`, with
/// `harness_args` before its `--`.
pub(crate) fn run_child_with_own_daemon(harness_args: &[&str], child: &str) {
    let mut runner = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/harness/with-corosync"));
    runner.args(harness_args).arg("--").arg(std::env::current_exe().unwrap());
    run_child(runner, child);
}

/// A key unique to this process, so that reruns against one daemon do not collide.
pub(crate) fn k(name: &str) -> String {
    format!("corowire.test.{}.{name}", std::process::id())
}

/// The libqb entries in `/dev/shm` (connection directories, or control files), without
/// corosync's own blackbox.
pub(crate) fn ring_dirs() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("qb-corosync-") || !name.contains("-blackbox-"))
        .collect()
}

/// Waits up to 2 s for `check` to hold.
pub(crate) fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: still {:?} after 2 s", ring_dirs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Track events seen: (event, key, new value, old value).
pub(crate) type Seen = Arc<Mutex<Vec<(Ev, String, Option<OwnedValue>, Option<OwnedValue>)>>>;

/// A track callback that appends to `seen`.
pub(crate) fn recorder(
    seen: &Seen,
) -> impl FnMut(&corowire_unix::cmap::TrackNotification<'_>) + Send + 'static {
    let seen = Arc::clone(seen);
    move |e| {
        seen.lock().unwrap().push((
            e.event,
            e.key().into_owned(),
            e.new_value.map(OwnedValue::from),
            e.old_value.map(OwnedValue::from),
        ))
    }
}

/// Dispatches until `seen` holds `n` events, for at most 5 s.
pub(crate) fn dispatch_until(cmap: &mut Cmap, seen: &Seen, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "only {:?} after 5 s", seen.lock().unwrap());
        corowire_unix::sys::sock::poll_readable(&*cmap, Some(left)).unwrap();
        cmap.dispatch(DispatchMode::All).unwrap();
    }
}
