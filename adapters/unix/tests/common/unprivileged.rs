//! Runs tests of this test binary as unprivileged users (such as `nobody`, uid and gid
//! 65534), from a copy of the binary in a fresh directory under `/tmp` that everyone may
//! enter, so that the run does not depend on where the checkout (and `target/`) lies or on
//! its permissions.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The uid and gid of `nobody`.
pub(crate) const NOBODY: u32 = 65534;

/// A world-readable copy of this test binary; removed on drop.
pub(crate) struct TestCopy {
    dir: PathBuf,
}

impl TestCopy {
    /// Copies the binary to `/tmp/corowire-unprivileged-<pid>-<tag>/test`.
    pub(crate) fn new(tag: &str) -> Self {
        let dir = PathBuf::from(format!("/tmp/corowire-unprivileged-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let copy = Self { dir };
        std::fs::set_permissions(&copy.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(std::env::current_exe().unwrap(), copy.exe()).unwrap();
        std::fs::set_permissions(copy.exe(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // A process another test thread forks while the copy is written holds the copy open
        // for writing until it execs, and executing the copy fails (`ETXTBSY`) until then.
        for _ in 0..1000 {
            match Command::new(copy.exe()).arg("--list").output() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(core::time::Duration::from_millis(5));
                }
                done => {
                    done.unwrap();
                    break;
                }
            }
        }
        copy
    }

    fn exe(&self) -> PathBuf {
        self.dir.join("test")
    }

    /// A command running the test `name` (it must be `#[ignore]`d, and do its work only
    /// when `env` is set) as user and group `id`, with the variables `env`.
    pub(crate) fn command(&self, id: u32, name: &str, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(self.exe());
        cmd.args(["--ignored", "--exact", name, "--nocapture", "--test-threads=1"])
            .envs(env.iter().copied())
            .current_dir(&self.dir)
            .uid(id)
            .gid(id);
        cmd
    }
}

impl Drop for TestCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the test `name` as [`NOBODY`] (see [`TestCopy::command`]) and returns its output.
pub(crate) fn run_as_nobody(name: &str, env: &[(&str, &str)]) -> Output {
    TestCopy::new(name).command(NOBODY, name, env).output().unwrap()
}
