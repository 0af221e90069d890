//! The harness of the `vs_libcmap` bench (`cargo bench -p corowire-vs-libcmap`), which measures
//! corowire-unix and corosync's libcmap side by side, in one process, against one daemon.
//!
//! - [`libcmap`]: a hand-declared FFI binding of the few libcmap calls the bench uses (the
//!   crate's only `unsafe` code), linked by `build.rs`;
//! - [`measure`]: latency percentiles, per-thread CPU time, the result table.
//!
//! Not a product crate: nothing else in the workspace may depend on it.

pub mod libcmap;
pub mod measure;
