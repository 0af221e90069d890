//! The C helpers of `tests/cluster` (`vq-notify.c`, `fake-qdevice.c`), built with `cc` as
//! `tests/cluster/diff` builds them (`cli/tests/rules.rs`, `cli/tests/sim.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `tests/cluster/NAME.c` into `dir/NAME`, linked with `libs` (`-lvotequorum`, ...);
/// returns the program's path. Panics when `cc` fails.
pub(crate) fn build(dir: &Path, name: &str, libs: &[&str]) -> PathBuf {
    let bin = dir.join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/cluster/{name}.c"));
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&bin)
        .arg(source)
        .args(libs)
        .status()
        .unwrap_or_else(|e| panic!("cc: {e}"));
    assert!(status.success(), "cannot build {name}");
    bin
}
