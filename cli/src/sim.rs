//! `corowire sim`: sends one simulated-cluster command to a `corowire serve --control PATH`.
//!
//! ```text
//! corowire sim --control PATH CMD [ARGS...]
//! ```
//!
//! The command's words are joined by spaces and sent as one line on the control socket
//! (`corowire_unix::server`'s control module describes it); corosync-vqsim's commands: `up
//! N[,N..]`, `down N[,N..]` (a crash), `split P:N[,N..]...` (or `move`), `join P P...`,
//! `qdevice on|off [P:]N[,N..]`, `show`; and `leave N[,N..]`, a clean stop vqsim does not have. The command's shape is checked here (`corowire::server::cluster::Command::parse`)
//! before it is sent. The server answers after every connected client's notifications for the
//! change are queued. Output lines are printed (its notes on standard error, prefixed); exit
//! status 0 when the command was applied, 1 with the server's message on standard error when
//! it was refused or the server could not be reached, 2 on bad usage (the command line, an
//! unknown command, wrong arguments).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use corowire::server::cluster::Command;

use crate::out;

const USAGE: &str = "\
usage: corowire sim --control PATH CMD [ARGS...]

Changes the cluster that `corowire serve --control PATH` simulates, with corosync-vqsim's
commands (and `leave`), and returns once every connected client's notifications are queued:

  up [P:]N[,N..]...        start nodes (in partition P, default 0)
  down N[,N..]             crash nodes (SIGKILL, power loss: they tell nothing;
                           not the local node)
  leave N[,N..]            stop nodes cleanly (SIGTERM, corosync-cfgtool -H): with
                           quorum.allow_downscale the others lower their expected
                           votes first (not a corosync-vqsim command)
  split P:N[,N..]...       move running nodes to partition P (also: move)
  join P Q...              merge partitions Q... into P
  qdevice on|off [P:]N[,N..]...
                           a simulated quorum device on nodes, as corosync-vqsim's:
                           on registers it (VQsim_qdevice) and casts its vote
                           (quorum.device.votes, or the votes corosync computes
                           when it is not set), off withdraws the vote (dead
                           after quorum.device.timeout); refused on the local
                           node while a client's device of another name is
                           registered
  show                     print every node, the partitions and the local node's quorum

Exit status: 0 applied, 1 refused or no server, 2 bad usage (options, an unknown
command, wrong arguments).
";

/// Runs `corowire sim`; returns the exit status.
pub(crate) fn run(args: &[OsString]) -> u8 {
    if args.first().is_some_and(|a| a == "--help" || a == "-h") {
        out::print(USAGE);
        return 0;
    }
    let (path, words) = match parse(args) {
        Ok(parsed) => parsed,
        Err(msg) => {
            out::eprint(&format!("corowire sim: {msg}\n{USAGE}"));
            return 2;
        }
    };
    match send(&path, &words.join(" ")) {
        Ok(()) => 0,
        Err(msg) => {
            out::flush();
            out::eprint(&format!("corowire sim: {msg}\n"));
            1
        }
    }
}

fn parse(args: &[OsString]) -> Result<(PathBuf, Vec<String>), String> {
    let mut it = args.iter();
    let path = match it.next().and_then(|a| a.to_str()) {
        Some("--control") => PathBuf::from(it.next().ok_or("--control needs a value")?),
        Some(a) if a.starts_with("--control=") => PathBuf::from(&a["--control=".len()..]),
        _ => return Err("--control PATH comes first".into()),
    };
    let words = it
        .map(|a| a.to_str().map(str::to_owned).ok_or_else(|| format!("argument {a:?} is not UTF-8")))
        .collect::<Result<Vec<_>, _>>()?;
    if words.is_empty() {
        return Err("a command is missing".into());
    }
    if words.iter().any(|w| w.contains('\n')) {
        return Err("a command is one line".into());
    }
    Command::parse(&words.join(" ")).map_err(|e| e.to_string())?;
    Ok((path, words))
}

/// Sends `line`, prints the output lines, and turns the status line into the result.
fn send(path: &PathBuf, line: &str) -> Result<(), String> {
    let where_ = || format!("control socket {}", path.display());
    let mut sock = UnixStream::connect(path).map_err(|e| format!("{}: {e}", where_()))?;
    sock.write_all(format!("{line}\n").as_bytes()).map_err(|e| format!("{}: {e}", where_()))?;
    sock.shutdown(std::net::Shutdown::Write).map_err(|e| format!("{}: {e}", where_()))?;
    for reply in BufReader::new(sock).lines() {
        let reply = reply.map_err(|e| format!("{}: {e}", where_()))?;
        if reply == "ok" {
            return Ok(());
        }
        if let Some(msg) = reply.strip_prefix("error: ") {
            return Err(msg.to_owned());
        }
        if reply.starts_with("note: ") {
            out::eprint(&format!("corowire sim: {reply}\n"));
        } else {
            out::print(&format!("{reply}\n"));
        }
    }
    Err(format!("{}: the server closed without an answer", where_()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_the_control_path_then_the_command() {
        let (path, words) = parse(&args(&["--control", "/tmp/c", "down", "3"])).unwrap();
        assert_eq!((path, words), (PathBuf::from("/tmp/c"), vec!["down".to_owned(), "3".to_owned()]));
        assert_eq!(parse(&args(&["--control=/x", "show"])).unwrap().0, PathBuf::from("/x"));
        assert!(parse(&args(&["down", "3"])).is_err());
        assert!(parse(&args(&["--control", "/x"])).is_err());
        assert!(parse(&args(&["--control", "/x", "down\n3"])).is_err());
        for bad in [
            &["frob"][..],
            &["join", "0"],
            &["split"],
            &["up"],
            &["show", "extra"],
            &["qdevice", "maybe", "2"],
            &["up", "0x2"],
            &["up", "2,,3"],
        ] {
            let mut line = vec!["--control", "/x"];
            line.extend_from_slice(bad);
            assert!(parse(&args(&line)).is_err(), "{bad:?}");
        }
    }
}
