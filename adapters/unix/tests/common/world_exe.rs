//! A copy of the running test binary that any user can execute, for tests that re-execute
//! themselves under another uid (`Command::uid`): the checkout, and so the binary under
//! `target/`, may sit in a folder other users cannot enter (a clone made under a 0700
//! directory), where the re-executed child would fail with `Permission denied`.
//!
//! Include it with `#[path = "common/world_exe.rs"] mod world_exe;`.

use core::sync::atomic::{AtomicU32, Ordering};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A fresh directory under `/tmp` (mode 0755) holding a copy of the current executable
/// (mode 0755); both are removed on drop.
pub(crate) struct WorldExe {
    dir: PathBuf,
    exe: PathBuf,
}

impl WorldExe {
    /// Copies [`std::env::current_exe`] into a new directory `/tmp/corowire-exe.<pid>.<n>`;
    /// panics (the test fails) if it cannot. `/tmp` rather than `TMPDIR`, which may be as
    /// private as the checkout.
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = Path::new("/tmp").join(format!("corowire-exe.{}.{n}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o755).create(&dir).expect("create the binary's directory");
        // The umask may have removed bits that `mode` asked for.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod the directory");
        let src = std::env::current_exe().expect("current_exe");
        let exe = dir.join(src.file_name().expect("the executable has a file name"));
        std::fs::copy(&src, &exe).expect("copy the test binary");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod the copy");
        Self { dir, exe }
    }

    /// The path of the copy.
    pub(crate) fn path(&self) -> &Path {
        &self.exe
    }
}

impl Drop for WorldExe {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
