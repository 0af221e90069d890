//! The command line refuses what it cannot honour, with a usage error (status 2).

mod common;

use std::process::Command;

use common::EXPORTER;

fn status(args: &[&str]) -> Option<i32> {
    Command::new(EXPORTER).args(args).output().expect("run the exporter").status.code()
}

#[test]
fn absurd_timeouts_are_refused() {
    for timeout in ["1e-9", "-1", "0", "61", "NaN", "soon"] {
        assert_eq!(status(&["--once", "--timeout", timeout]), Some(2), "--timeout {timeout}");
    }
}

#[test]
fn once_takes_no_listen_address() {
    assert_eq!(status(&["--once", "--listen", "127.0.0.1:0"]), Some(2));
}

#[test]
fn non_loopback_and_unresolvable_addresses_are_refused() {
    assert_eq!(status(&["--listen", "0.0.0.0:0"]), Some(2));
    assert_eq!(status(&["--listen", "no-such-host.invalid:9664"]), Some(2));
}
