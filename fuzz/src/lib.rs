//! Fuzz targets for the corowire decoders, the Unix adapter's shared-memory parsers and the
//! CLI's parsers of user bytes.
//!
//! The target bodies live in [`targets`], [`unix_targets`] and [`cli_targets`] as plain
//! functions, so that the committed seed corpus can be replayed by an ordinary test on stable
//! (`core/tests/corpus_replay.rs`, `adapters/unix/tests/corpus_replay.rs` and
//! `cli/tests/corpus_replay.rs` include the same files). The binaries in `fuzz_targets/` only
//! hand libFuzzer's input to them.

// The CLI is a binary crate: its parsers are included as files, at this crate's root.
#[allow(dead_code, unreachable_pub)]
#[path = "../../cli/src/cformat.rs"]
mod cformat;
#[allow(dead_code, unreachable_pub)]
#[path = "../../cli/src/loadfile.rs"]
mod loadfile;

pub mod cli_targets;
pub mod targets;
pub mod unix_targets;
