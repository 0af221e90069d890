//! `corowire`: command-line tools built on the pure-Rust corosync client.
//!
//! ```text
//! corowire cmap   [corosync-cmapctl options] [--json]
//! corowire quorum [corosync-quorumtool options] [--json]
//! corowire demo  [--builtin | --corosync]
//! corowire serve [--corosync-conf FILE] [--config FILE]... [--nodeid N] [--up N[,N..]]
//!                [--control PATH] [--name-prefix PREFIX | --standard-names] [--socket]
//!                [--verbose]
//! corowire sim --control PATH CMD [ARGS...]
//! corowire gateway --listen unix:PATH|tcp:ADDR:PORT|serial:DEVICE [policy and limit options]
//! corowire exporter [--listen ADDR] [--allow-remote] [--timeout SECS] [--once [--openmetrics]]
//! corowire --help | --version
//! ```
//!
//! `cmap` and `quorum` are work-alikes of corosync's `corosync-cmapctl` and
//! `corosync-quorumtool`: same options, same output, same exit codes (see `cmapctl.rs` and
//! `quorumtool.rs` for the documented differences). `--json` switches the read commands to a
//! machine-readable output (see `json.rs`). `demo` exercises the cmap and votequorum clients
//! against corosync, or against the built-in server when no corosync runs (`demo.rs`); `serve`
//! runs the built-in server as a foreground daemon (`serve.rs`), and `sim` changes the
//! cluster it simulates (`sim.rs`). `COROWIRE_NAME_PREFIX=P`
//! points every client at a server under the names `P-cmap`, `P-votequorum` (the names
//! `corowire serve --name-prefix P` serves); `corowire --help` lists every command, option
//! and environment variable.

mod cformat;
mod cmapctl;
mod demo;
mod gateway;
mod getopt;
mod json;
mod loadfile;
mod out;
mod quorumtool;
mod serve;
mod sim;
mod time;
mod timeout;

use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "\
usage: corowire <command> [options]
       corowire --help | --version

commands:
  cmap [options] [--json] [params...]
        corosync-cmapctl work-alike: same options, output and exit statuses
          -b             show binary values
          -q             quiet: print values only (with -g)
          -g KEY...      get keys
          -s KEY TYPE VALUE
                         set a key; TYPE is i8 u8 i16 u16 i32 u32 i64 u64 flt dbl str bin
                         (for bin, VALUE is a file name, or - for stdin)
          -d KEY...      delete keys
          -D PREFIX...   delete the keys under each prefix
          -t KEY         track changes of a key (type q and Enter to finish)
          -T PREFIX      track changes of the keys under a prefix
          -p FILE        load settings from FILE ([^[^]]key[ type value] lines)
          -m MAP         use map icmap (default) or stats
          -C WHAT        clear statistics: knet, ipc, totem, schedmiss or all
          -h             corosync-cmapctl's own help
          PREFIX...      without an action: list the keys (all, or under each prefix)
  quorum [options] [--json]
        corosync-quorumtool work-alike: same options, output and exit statuses
          -s             show quorum status
          -m             monitor quorum status
          -l             list nodes
          -a             show all names or addresses of each node
          -p             machine-parsable output (with -s or -l)
          -v VOTES       change the votes of a node (with -n NODEID, else this node)
          -n NODEID      the node for -v
          -e EXPECTED    change the expected votes of the cluster
          -H             node ids in hexadecimal
          -i             show node IP addresses instead of names
          -o a|n|i       order by IP address (default), name or node id
          -f             forcefully unregister a quorum device (dangerous)
          -h             corosync-quorumtool's own help
          -V             show the version
  demo [--builtin | --corosync]
        a tour of the cmap and votequorum clients: against corosync when one answers,
        else (or with --builtin) against the built-in server; --corosync fails without one
  serve [--corosync-conf FILE] [--config FILE]... [--nodeid N] [--up N[,N..]] [--control PATH]
        [--name-prefix PREFIX | --standard-names] [--socket] [--verbose]
        run the built-in cmap/votequorum/quorum/cfg server until SIGINT, SIGTERM or corosync-cfgtool -H; without
        --corosync-conf or --config it looks like a one-node corosync on loopback (node1, 127.0.0.1)
          --corosync-conf FILE  present the keys corosync presents for corosync.conf FILE
          --config FILE         add the CMAP keys of FILE (`key type value` lines)
          --name-prefix PREFIX  serve as PREFIX-cmap, PREFIX-votequorum, PREFIX-quorum and
                                PREFIX-cfg (default: $COROWIRE_NAME_PREFIX, else corosync's names)
          --standard-names      serve as cmap, votequorum, quorum and cfg (corosync's names,
                                the default); fails at once if a daemon holds them
          --socket              offer libqb's socket transport instead of shared memory
          --verbose             log connections and faults to standard error
          --nodeid N            the node of the node list whose view is served (default:
                                with --corosync-conf the one whose address is local)
          --up N[,N..]          the nodes up at start (default: all of the node list)
          --control PATH        take `corowire sim` commands on a Unix socket at PATH
  sim --control PATH CMD [ARGS...]
        change the simulated cluster of `corowire serve --control PATH` with corosync-vqsim's
        commands: up N[,N..], down N[,N..], split P:N[,N..]..., join P P..., qdevice on|off
        [P:]N[,N..], leave N[,N..] (a clean stop), show; exits 0 once every client's notifications are queued
  gateway --listen unix:PATH | tcp:ADDR:PORT | serial:DEVICE [options]
        relay stream-framed clients (corowire-embedded) to the local cmap and votequorum
        services (`corowire gateway --help` for details)
          --listen SPEC            unix:PATH, tcp:ADDR:PORT (loopback only unless
                                   --allow-remote) or serial:DEVICE (a tty or pty)
          --allow-remote           accept a non-loopback TCP address
          --allow-write PREFIX     allow CMAP set/delete/adjust under PREFIX (repeatable;
                                   default: read-only)
          --allow-votequorum-write allow setting expected votes and node votes
          --allow-qdevice          allow the quorum device calls
          --max-clients N, --max-tracks N, --max-in-flight N, --max-frame BYTES,
          --stall-timeout SECS     limits (defaults 16, 16, 32, 16448, 10)
          --verbose                log sessions to standard error
  exporter [--listen ADDR] [--allow-remote] [--timeout SECS] [--once [--openmetrics]]
        Prometheus metrics for corosync over /metrics (`corowire exporter --help` for details)
  help, --help, -h    show this text
  --version, -V       print `corowire <version>`

--json (cmap and quorum, anywhere before a `--`) switches the reading commands to one-line
JSON documents: cmap listing, -g, -t, -T; quorum -s, -l.

--follow (cmap -t, -T and quorum -m, anywhere before a `--`) survives a corosync restart:
the command waits up to 30 s (at most COROWIRE_TIMEOUT) for corosync at start; after
losing it, it says so once on stderr (`corowire: lost corosync, waiting for it to come
back`) and waits until it is back (cmap -t and -T still end on `q` or end of input), then
tracks again and prints one line, `resync> reconnected to corosync, changes in between
were not seen` (cmap) or `Resync: reconnected to corosync, changes in between were not
seen` (quorum), or `{\"event\":\"resync\"}` with --json; the other output is the C tool's.

environment:
  COROWIRE_NAME_PREFIX=P   cmap, quorum and demo connect to P-cmap and P-votequorum (the
                           names `corowire serve --name-prefix P` serves) instead of
                           corosync's cmap and votequorum; serve's default prefix
  COROWIRE_DEMO_BACKEND    demo's backend when no option picks one: builtin,
                           corosync, or auto (the default: corosync if it
                           answers, else builtin)
  COROWIRE_TIMEOUT=SECS    cmap and quorum wait at most SECS seconds (a decimal
                           number, at least 0.001) for each answer of the daemon, the
                           connect included; then they print what they had and
                           one error line, and exit with status 1. Unset or
                           empty: wait as long as the daemon lives, as the C
                           tools do. Tracking (-t, -T, -m) still waits for
                           events as long as it runs.
";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(command) = args.next() else {
        eprintln!("corowire: a command is missing (cmap, quorum, demo, serve, sim or help)");
        eprint!("{USAGE}");
        return ExitCode::from(1);
    };
    let rest: Vec<OsString> = args.collect();
    let code = match command.to_str() {
        Some("cmap") => cmapctl::run(rest),
        Some("quorum") => quorumtool::run(rest),
        Some("demo") => demo::run(&rest),
        Some("serve") => serve::run(&rest),
        Some("sim") => sim::run(&rest),
        Some("gateway") => gateway::run(&rest),
        Some("exporter") => corowire_exporter::cli::run("corowire exporter", rest),
        Some("help" | "-h" | "--help") => {
            out::print(USAGE);
            0
        }
        Some("--version" | "-V") => {
            out::print(&format!("corowire {}\n", env!("CARGO_PKG_VERSION")));
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
    take_flag(args, "--json")
}

/// Removes every `flag` that comes before a `--` terminator; whether there was one.
fn take_flag(args: &mut Vec<OsString>, flag: &str) -> bool {
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let before = args.len();
    let mut index = 0;
    args.retain(|a| {
        index += 1;
        !(index <= end && a == flag)
    });
    args.len() != before
}

/// What `--follow` prints after reconnecting, after a label (`resync> `, `Resync: `).
const RESYNC: &str = "reconnected to corosync, changes in between were not seen";

/// The resilience `--follow` asks for: wait 30 s for corosync at start (at most
/// `COROWIRE_TIMEOUT` when that is less), then come back after every loss.
fn follow_reconnect() -> corowire_unix::Reconnect {
    let mut reconnect = corowire_unix::Reconnect::default();
    if let Some(t) = timeout::get() {
        reconnect.start_wait = reconnect.start_wait.min(t);
    }
    reconnect
}

/// Prints the `--follow` resync line: `LABEL` and [`RESYNC`], or `{"event":"resync"}` for
/// `--json`.
fn print_resync(label: &str, json: bool) {
    if json {
        json::print_line(&serde_json::json!({"event": "resync"}));
    } else {
        out::print(&format!("{label}{RESYNC}\n"));
    }
    out::flush();
}

/// Prints on stderr that `--follow` lost corosync and waits for it to come back.
fn print_lost() {
    out::flush();
    out::eprint("corowire: lost corosync, waiting for it to come back\n");
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
