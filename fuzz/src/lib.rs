//! Fuzz targets for the corowire decoders and the Unix adapter's shared-memory parsers.
//!
//! The target bodies live in [`targets`] and [`unix_targets`] as plain functions, so that the
//! committed seed corpus can be replayed by an ordinary test on stable
//! (`core/tests/corpus_replay.rs` and `adapters/unix/tests/corpus_replay.rs` include the same
//! files). The binaries in `fuzz_targets/` only hand libFuzzer's input to them.

pub mod targets;
pub mod unix_targets;
