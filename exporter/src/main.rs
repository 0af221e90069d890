//! `corowire-exporter`: serves corosync's metrics at `http://127.0.0.1:9664/metrics`, or
//! prints them once (`--once`). See the crate documentation and `docs/metrics.md`.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(corowire_exporter::cli::run("corowire-exporter", std::env::args_os().skip(1)))
}
