//! Replays the committed seed corpus of the fuzz targets over the CLI's parsers
//! (`fuzz/corpus/cli_load/`, `fuzz/corpus/cli_value/`) through the same target functions the
//! fuzzer runs. The CLI is a binary crate, so this test includes the parser files at its own
//! root, as the fuzz crate does, and then the targets from `fuzz/src/cli_targets.rs`.

#[allow(dead_code, unreachable_pub)]
#[path = "../src/cformat.rs"]
mod cformat;
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/cli_targets.rs"]
mod cli_targets;
#[allow(dead_code, unreachable_pub)]
#[path = "../src/loadfile.rs"]
mod loadfile;

use std::path::Path;

/// A fuzz target's body.
type Target = fn(&[u8]);

#[test]
fn replay_seed_corpus() {
    let targets: [(&str, Target); 2] =
        [("cli_load", cli_targets::cli_load), ("cli_value", cli_targets::cli_value)];
    for (target, run) in targets {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
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
