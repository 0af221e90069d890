//! Replays committed seeds through target functions, for the tests that include this file
//! with `#[path]` (`adapters/unix/tests/corpus_replay.rs`, `cli/tests/corpus_replay.rs`); not
//! part of the fuzz crate's library.

use std::path::Path;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Runs every seed in `corpus/<target>/` under the fuzz crate's directory `fuzz_dir`, and
/// every prefix of it (the targets read their fields in order, so each cut is another
/// input), through its target; panics if a target has no seeds.
pub fn replay(fuzz_dir: &Path, targets: &[(&str, Target)]) {
    for &(target, run) in targets {
        let dir = fuzz_dir.join("corpus").join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds for {target}");
        for file in &files {
            let data = std::fs::read(file).unwrap();
            for k in 0..=data.len() {
                run(&data[..k]);
            }
        }
    }
}
