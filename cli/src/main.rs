//! `corowire`: command-line tools built on the pure-Rust corosync client.
//!
//! ```text
//! corowire cmap   [corosync-cmapctl options] [--json]
//! corowire quorum [corosync-quorumtool options] [--json]
//! corowire demo  [--builtin | --corosync]
//! corowire serve [--config FILE]... [--name-prefix PREFIX | --standard-names] [--socket]
//!                [--verbose]
//! corowire exporter [--listen ADDR] [--allow-remote] [--timeout SECS] [--once [--openmetrics]]
//! ```
//!
//! `cmap` and `quorum` are work-alikes of corosync's `corosync-cmapctl` and
//! `corosync-quorumtool`: same options, same output, same exit codes (see `cmapctl.rs` and
//! `quorumtool.rs` for the documented differences). `--json` switches the read commands to a
//! machine-readable output (see `json.rs`). `demo` exercises the cmap and votequorum clients
//! against corosync, or against the built-in server when no corosync runs (`demo.rs`); `serve`
//! runs the built-in server as a foreground daemon (`serve.rs`).

mod cformat;
mod cmapctl;
mod demo;
mod getopt;
mod json;
mod out;
mod quorumtool;
mod serve;
mod time;

use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "\
usage: corowire <command> [options]

commands:
  cmap [options]     corosync-cmapctl work-alike (same options and output)
  quorum [options]   corosync-quorumtool work-alike (same options and output)
  demo [--builtin]   exercise the cmap and votequorum clients against corosync, or
                     against the built-in server when no corosync runs (or with --builtin)
  serve [options]    run the built-in cmap/votequorum server until SIGINT/SIGTERM
                     (`corowire serve --help` lists its options)
  exporter [options] Prometheus metrics for corosync (`corowire exporter --help`)
  help               show this text

`cmap` and `quorum` also take --json (before any `--`) for machine-readable output
of the commands that read: cmap list/-g/-t/-T, quorum -s/-l.
";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(command) = args.next() else {
        eprint!("{USAGE}");
        return ExitCode::from(1);
    };
    let rest: Vec<OsString> = args.collect();
    let code = match command.to_str() {
        Some("cmap") => cmapctl::run(rest),
        Some("quorum") => quorumtool::run(rest),
        Some("demo") => demo::run(&rest),
        Some("serve") => serve::run(&rest),
        Some("exporter") => corowire_exporter::cli::run("corowire exporter", rest),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            0
        }
        _ => {
            eprintln!("corowire: unknown command {command:?}");
            eprint!("{USAGE}");
            1
        }
    };
    out::flush();
    ExitCode::from(code)
}

/// Removes every `--json` that comes before a `--` terminator; whether there was one.
fn take_json_flag(args: &mut Vec<OsString>) -> bool {
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let before = args.len();
    let mut index = 0;
    args.retain(|a| {
        index += 1;
        !(index <= end && a == "--json")
    });
    args.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_flag_before_double_dash_only() {
        let mut args: Vec<OsString> =
            ["-g", "--json", "k", "--", "--json"].iter().map(OsString::from).collect();
        assert!(take_json_flag(&mut args));
        assert_eq!(args, ["-g", "k", "--", "--json"].map(OsString::from));
        let mut args: Vec<OsString> = vec!["--".into(), "--json".into()];
        assert!(!take_json_flag(&mut args));
    }
}
