//! `corowire serve`: the built-in CMAP and votequorum server as a foreground daemon.
//!
//! ```text
//! corowire serve [--config FILE]... [--name-prefix PREFIX | --standard-names] [--socket] [--verbose]
//!                [--nodeid N] [--up N[,N..]] [--control PATH]
//! ```
//!
//! By default it listens on `corowire-cmap` and `corowire-votequorum` (`PREFIX-cmap` and
//! `PREFIX-votequorum` with `--name-prefix PREFIX`, or with `COROWIRE_NAME_PREFIX=PREFIX` in
//! the environment when the option is absent), so that it never collides with a corosync
//! running on the same machine. Clients reach it through `Options::service_name`, or by
//! setting `COROWIRE_NAME_PREFIX` to the same prefix (read by `Options::default`, hence by
//! `corowire cmap` and `corowire quorum`). The `quorum` and `cfg` services that
//! `corosync-quorumtool` also needs are served under the same prefix. `--standard-names` serves on corosync's own names (`cmap`, `votequorum`, `quorum`,
//! `cfg`), for a private network namespace (`unshare --net`) where the unmodified C tools and
//! libraries connect to it. `SIGINT` and `SIGTERM` stop it: the connections are closed, their
//! `/dev/shm` ring directories removed, and it exits with status 0.
//!
//! The configuration files hold CMAP keys, one `key type value` per line (see
//! `corowire_unix::server::config` and the CLI's README). Besides them the server allows the
//! user who runs it (`uidgid.uid.<uid>` and `uidgid.gid.<gid>`), as corosync allows root, and
//! sets `runtime.votequorum.this_node_id` as corosync does, so that `corowire quorum` works.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use corowire::value::OwnedValue;
use corowire_unix::server::{IpcType, Server, ServerConfig, ServerStartError};
use corowire_unix::NAME_PREFIX_ENV;

use crate::out;

const USAGE: &str = "\
usage: corowire serve [--config FILE]... [--name-prefix PREFIX | --standard-names] [--socket]
                      [--verbose]

Runs the built-in CMAP and votequorum server in the foreground until SIGINT or SIGTERM.

  --config FILE         add the CMAP keys of FILE (one `key type value` per line)
  --name-prefix PREFIX  serve as PREFIX-cmap, PREFIX-votequorum, PREFIX-quorum and PREFIX-cfg
                        (default: $COROWIRE_NAME_PREFIX if set, else corowire)
  --standard-names      serve as cmap and votequorum, corosync's own names (for a private
                        network namespace, where the corosync tools then connect to it)
  --socket              offer libqb's socket transport instead of shared memory (as corosync
                        with `qb_ipc_type: socket`)
  --verbose             log connections and faults to standard error
  --nodeid N            the node of the node list whose view is served (default: totem.nodeid
                        if listed, else the lowest node id)
  --up N[,N..]          the nodes of the node list up at start (default: all)
  --control PATH        take simulated-cluster commands (`corowire sim --control PATH ...`)
                        on a Unix socket at PATH (mode 0600, removed on exit)
";

/// The default name prefix: `corowire-cmap`, `corowire-votequorum`.
pub(crate) const DEFAULT_PREFIX: &str = "corowire";

/// The longest name prefix (libqb's socket names are at most 107 bytes).
const MAX_PREFIX: usize = 80;

/// What the command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    configs: Vec<PathBuf>,
    prefix: Option<String>,
    standard: bool,
    socket: bool,
    verbose: bool,
    nodeid: Option<u32>,
    up: Option<Vec<u32>>,
    control: Option<PathBuf>,
}

fn parse(args: &[OsString]) -> Result<Args, String> {
    let mut parsed = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(text) = arg.to_str() else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(OsString::from(v))),
            _ => (text, None),
        };
        let mut value = |name: &str| {
            inline.clone().or_else(|| it.next().cloned()).ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "--config" | "-c" => parsed.configs.push(PathBuf::from(value("--config")?)),
            "--name-prefix" => {
                let prefix = value("--name-prefix")?;
                let prefix = prefix.to_str().ok_or("--name-prefix: not valid UTF-8")?;
                parsed.prefix = Some(checked_prefix("--name-prefix", prefix)?);
            }
            "--standard-names" if inline.is_none() => parsed.standard = true,
            "--socket" if inline.is_none() => parsed.socket = true,
            "--verbose" | "-v" if inline.is_none() => parsed.verbose = true,
            "--nodeid" => parsed.nodeid = Some(node_id(&value("--nodeid")?)?),
            "--up" => {
                let list = value("--up")?;
                let ids = list.to_str().unwrap_or("").split(',').map(|n| node_id(OsStr::new(n)));
                parsed.up = Some(ids.collect::<Result<_, _>>()?);
            }
            "--control" => parsed.control = Some(PathBuf::from(value("--control")?)),
            _ => return Err(format!("unknown option {text:?}")),
        }
    }
    if parsed.standard && parsed.prefix.is_some() {
        return Err("--name-prefix and --standard-names exclude each other".into());
    }
    Ok(parsed)
}

/// A node id of `--nodeid` or `--up`: a decimal `u32`.
fn node_id(text: &OsStr) -> Result<u32, String> {
    let text = text.to_str().unwrap_or("");
    text.parse().map_err(|_| format!("{text:?} is not a node id (a decimal number)"))
}

/// `prefix` if it makes valid libqb names; `what` names its source in the error.
fn checked_prefix(what: &str, prefix: &str) -> Result<String, String> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX || prefix.contains(['/', '\0']) {
        return Err(format!("{what} {prefix:?}: want 1 to {MAX_PREFIX} bytes, without '/'"));
    }
    Ok(prefix.to_owned())
}

/// The prefix to serve under: `--name-prefix`, else a non-empty `COROWIRE_NAME_PREFIX` (the
/// variable the clients read), else [`DEFAULT_PREFIX`]; `None` with `--standard-names`.
fn prefix(args: &Args, env: Option<&str>) -> Result<Option<String>, String> {
    if args.standard {
        return Ok(None);
    }
    match (&args.prefix, env.filter(|p| !p.is_empty())) {
        (Some(p), _) => Ok(Some(p.clone())),
        (None, Some(p)) => checked_prefix(NAME_PREFIX_ENV, p).map(Some),
        (None, None) => Ok(Some(DEFAULT_PREFIX.to_owned())),
    }
}

/// The CMAP and votequorum names for `prefix` (`None`: corosync's standard names).
pub(crate) fn service_names(prefix: Option<&str>) -> (String, String) {
    match prefix {
        None => ("cmap".into(), "votequorum".into()),
        Some(p) => (format!("{p}-cmap"), format!("{p}-votequorum")),
    }
}

/// Lets the user running the server connect to it (corosync lets only root in unless a
/// `uidgid` entry allows more).
pub(crate) fn allow_own_user(cfg: &mut ServerConfig) {
    // SAFETY: getuid and getgid take no arguments, cannot fail and touch no memory of ours.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    cfg.initial.push((format!("uidgid.uid.{uid}"), OwnedValue::UInt8(1)));
    cfg.initial.push((format!("uidgid.gid.{gid}"), OwnedValue::UInt8(1)));
}

/// Blocks `SIGINT` and `SIGTERM` in this (the main) thread, so that one arriving between
/// binding and [`Server::run_until_signal`] waits to be read instead of killing the process
/// before it cleaned up. Threads started later inherit the mask.
fn block_stop_signals() -> Result<(), String> {
    // SAFETY: `set` is a local sigset_t, initialised by sigemptyset before it is used; the
    // calls only read and write it, and pthread_sigmask accepts a null old-set pointer.
    let rc = unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("cannot block SIGINT/SIGTERM: {}", std::io::Error::from_raw_os_error(rc)))
    }
}

/// The message for a failed bind, explaining a taken name.
fn bind_error(e: &ServerStartError, standard: bool) -> String {
    match e {
        ServerStartError::Listen { name, errno } if *errno as i32 == libc::EADDRINUSE => {
            if standard {
                format!(
                    "the libqb name '{name}' is already taken in this network namespace: corosync \
                     (or another server) is running here. Run without --standard-names to serve \
                     under corowire's own names, or start it in a private network namespace \
                     (e.g. `unshare --net --mount`)."
                )
            } else {
                format!(
                    "the libqb name '{name}' is already taken: another `corowire serve` with the \
                     same prefix is running. Choose another one with --name-prefix."
                )
            }
        }
        _ => e.to_string(),
    }
}

/// Runs `corowire serve`; returns the exit status.
pub(crate) fn run(args: &[OsString]) -> u8 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        out::print(USAGE);
        return 0;
    }
    let args = match parse(args) {
        Ok(a) => a,
        Err(msg) => {
            out::eprint(&format!("corowire serve: {msg}\n{USAGE}"));
            return 1;
        }
    };
    match serve(&args) {
        Ok(()) => 0,
        Err(msg) => {
            out::flush();
            out::eprint(&format!("corowire serve: {msg}\n"));
            1
        }
    }
}

fn serve(args: &Args) -> Result<(), String> {
    let mut cfg = ServerConfig::default();
    let env = std::env::var(NAME_PREFIX_ENV).ok();
    let prefix = prefix(args, env.as_deref())?;
    let prefix = prefix.as_deref();
    let (cmap_name, votequorum_name) = service_names(prefix);
    cfg.cmap_name = cmap_name.clone();
    cfg.votequorum_name = Some(votequorum_name.clone());
    // corosync-quorumtool also needs libquorum and libcfg, under the same prefix.
    let name = |service: &str| prefix.map_or_else(|| service.to_owned(), |p| format!("{p}-{service}"));
    let (quorum_name, cfg_name) = (name("quorum"), name("cfg"));
    cfg.quorum_name = Some(quorum_name.clone());
    cfg.cfg_name = Some(cfg_name.clone());
    cfg.verbose = args.verbose;
    if args.socket {
        cfg.transport = IpcType::Socket;
    }
    cfg.nodeid = args.nodeid;
    cfg.up.clone_from(&args.up);
    cfg.control.clone_from(&args.control);
    allow_own_user(&mut cfg);
    for path in &args.configs {
        cfg.load_file(path).map_err(|e| format!("config {}: {e}", path.display()))?;
    }
    block_stop_signals()?;
    let mut server = Server::bind(cfg).map_err(|e| bind_error(&e, args.standard))?;
    out::print(&format!(
        "corowire serve: serving cmap as '{cmap_name}', votequorum as '{votequorum_name}', \
         quorum as '{quorum_name}' and cfg as '{cfg_name}' (pid {}); SIGINT or SIGTERM stops it\n",
        std::process::id()
    ));
    out::flush();
    let signal = server.run_until_signal().map_err(|e| e.to_string())?;
    let open = server.connections();
    drop(server);
    out::print(&format!("corowire serve: stopped by {signal}; closed {open} connection(s)\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_options() {
        let a = parse(&args(&["--config", "a.conf", "--config=b.conf", "--name-prefix", "x", "-v"])).unwrap();
        assert_eq!(a.configs, [PathBuf::from("a.conf"), PathBuf::from("b.conf")]);
        assert_eq!(a.prefix.as_deref(), Some("x"));
        assert!(a.verbose && !a.standard);
        assert!(parse(&args(&["--standard-names"])).unwrap().standard);
        assert!(parse(&args(&["--socket"])).unwrap().socket);
        assert!(parse(&args(&["--standard-names", "--name-prefix", "x"])).is_err());
        assert!(parse(&args(&["--name-prefix", "a/b"])).is_err());
        assert!(parse(&args(&["--name-prefix"])).is_err());
        assert!(parse(&args(&["--bogus"])).is_err());
        let sim = parse(&args(&["--nodeid", "2", "--up=1,2", "--control", "/tmp/c"])).unwrap();
        assert_eq!(
            (sim.nodeid, sim.up, sim.control),
            (Some(2), Some(vec![1, 2]), Some(PathBuf::from("/tmp/c")))
        );
        assert!(parse(&args(&["--up", "1,x"])).is_err());
        assert!(parse(&args(&["--nodeid", "-1"])).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(service_names(None), ("cmap".into(), "votequorum".into()));
        let named = Args { prefix: Some("a".into()), ..Args::default() };
        assert_eq!(prefix(&named, Some("env")), Ok(Some("a".into())));
        assert_eq!(prefix(&Args::default(), Some("env")), Ok(Some("env".into())));
        assert_eq!(prefix(&Args::default(), Some("")), Ok(Some(DEFAULT_PREFIX.into())));
        assert_eq!(prefix(&Args::default(), None), Ok(Some(DEFAULT_PREFIX.into())));
        assert!(prefix(&Args::default(), Some("a/b")).is_err());
        let standard = Args { standard: true, ..Args::default() };
        assert_eq!(prefix(&standard, Some("env")), Ok(None));
        assert_eq!(service_names(Some("t")), ("t-cmap".into(), "t-votequorum".into()));
    }
}
