//! Fuzz targets for the corowire decoders.
//!
//! The target bodies live in [`targets`] as plain functions, so that the committed seed corpus
//! can be replayed by an ordinary test on stable (`core/tests/corpus_replay.rs` includes the
//! same file). The binaries in `fuzz_targets/` only hand libFuzzer's input to them.

pub mod targets;
