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
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/replay.rs"]
mod replay;

#[test]
fn replay_seed_corpus() {
    replay::replay(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz"),
        &[("cli_load", cli_targets::cli_load), ("cli_value", cli_targets::cli_value)],
    );
}
