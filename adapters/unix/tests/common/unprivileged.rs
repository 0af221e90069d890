//! Runs one test of this test binary as the unprivileged user `nobody` (uid and gid 65534),
//! from a copy of the binary in a fresh directory under `/tmp` that everyone may enter, so
//! that the run does not depend on where the checkout (and `target/`) lies or on its
//! permissions.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The uid and gid the test runs as.
pub(crate) const NOBODY: u32 = 65534;

/// Runs the test `name` of this binary (it must be `#[ignore]`d, and do its work only when
/// `env` is set) as [`NOBODY`] with the variables `env`, and returns what it printed.
pub(crate) fn run_as_nobody(name: &str, env: &[(&str, &str)]) -> Output {
    let dir = PathBuf::from(format!("/tmp/corowire-nobody-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&exe)
        .args(["--ignored", "--exact", name, "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .current_dir(&dir)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    out
}
