//! `corowire serve`: the built-in CMAP and votequorum server as a foreground daemon.
//!
//! ```text
//! corowire serve [--corosync-conf FILE] [--config FILE]... [--nodeid N] [--up N[,N..]]
//!                [--control PATH] [--name-prefix PREFIX | --standard-names] [--socket] [--verbose]
//! ```
//!
//! By default it serves corosync's own names (`cmap`, `votequorum`, `quorum`, `cfg`), so that
//! the unmodified C tools and libraries reach it as they reach corosync; if one of them is
//! taken (corosync or another server answers in this network namespace) it fails at once
//! with a message saying so. With `--name-prefix PREFIX` (or `COROWIRE_NAME_PREFIX=PREFIX` in
//! the environment when no naming option is given) it serves `PREFIX-cmap`,
//! `PREFIX-votequorum`, `PREFIX-quorum` and `PREFIX-cfg` instead, beside a running corosync;
//! corowire's clients reach it through `Options::service_name`, or by setting
//! `COROWIRE_NAME_PREFIX` to the same prefix (read by `Options::default`, hence by
//! `corowire cmap` and `corowire quorum`). `--standard-names` (the default) is accepted and
//! overrides the variable. `SIGINT` and `SIGTERM` stop it: the connections are closed, their
//! `/dev/shm` ring directories removed, and it exits with status 0.
//!
//! Without `--corosync-conf` or `--config` it looks like corosync 3.1.7 started with a minimal
//! one-node configuration on loopback ([`one_node_keys`]: node `node1`, id 1, address
//! `127.0.0.1`, votequorum with one expected vote).
//! `--corosync-conf FILE` reads corosync's own configuration file and presents the keys
//! corosync 3.1.7 presents for it (`corowire_unix::server::corosync_conf`), as the node whose
//! address is local (or the node `--nodeid` names); `--config` files add keys after it.
//! The configuration files hold CMAP keys, one `key type value` per line (see
//! `corowire_unix::server::config` and the CLI's README). Besides them the server allows the
//! user who runs it (`uidgid.uid.<uid>` and `uidgid.gid.<gid>`), as corosync allows root, and
//! sets `runtime.votequorum.this_node_id` as corosync does, so that `corowire quorum` works.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use corowire::value::OwnedValue;
use corowire_unix::server::corosync_conf::CorosyncConf;
use corowire_unix::server::{IpcType, Server, ServerConfig, ServerStartError};
use corowire_unix::NAME_PREFIX_ENV;

use crate::out;

const USAGE: &str = "\
usage: corowire serve [--corosync-conf FILE] [--config FILE]... [--nodeid N] [--up N[,N..]]
                      [--control PATH] [--name-prefix PREFIX | --standard-names] [--socket]
                      [--verbose]

Runs the built-in CMAP and votequorum server in the foreground until SIGINT, SIGTERM or a cfg shutdown (corosync-cfgtool -H).
Without --corosync-conf or --config it looks like a one-node corosync on loopback (node1, 127.0.0.1).

  --corosync-conf FILE  read corosync.conf FILE and present the keys corosync presents for it
  --config FILE         add the CMAP keys of FILE (one `key type value` per line)
  --name-prefix PREFIX  serve as PREFIX-cmap, PREFIX-votequorum, PREFIX-quorum and PREFIX-cfg
                        (default: $COROWIRE_NAME_PREFIX if set, else corosync's own names)
  --standard-names      serve as cmap, votequorum, quorum and cfg, corosync's own names, where
                        the corosync tools connect (the default, unless $COROWIRE_NAME_PREFIX
                        is set); fails at once if corosync or another server holds them
  --socket              offer libqb's socket transport instead of shared memory (as corosync
                        with `qb_ipc_type: socket`)
  --verbose             log connections and faults to standard error (corosync's
                        configuration warnings are printed always)
  --nodeid N            the node of the node list whose view is served (default: with
                        --corosync-conf the node corosync takes as local: by host name,
                        a local address's name or address, or a name resolving to one;
                        or when none is (corosync would refuse) the lowest node id, as said on
                        standard error; else totem.nodeid if listed; else the lowest node id)
  --up N[,N..]          the nodes of the node list up at start (default: all)
  --control PATH        take simulated-cluster commands (`corowire sim --control PATH ...`)
                        on a Unix socket at PATH (mode 0600, removed on exit)
";

/// The longest name prefix (libqb's socket names are at most 107 bytes).
const MAX_PREFIX: usize = 80;

/// What the command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    corosync_conf: Option<PathBuf>,
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
            "--corosync-conf" => parsed.corosync_conf = Some(PathBuf::from(value("--corosync-conf")?)),
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
/// variable the clients read); `None` (corosync's names) without either or with
/// `--standard-names`.
fn prefix(args: &Args, env: Option<&str>) -> Result<Option<String>, String> {
    if args.standard {
        return Ok(None);
    }
    match (&args.prefix, env.filter(|p| !p.is_empty())) {
        (Some(p), _) => Ok(Some(p.clone())),
        (None, Some(p)) => checked_prefix(NAME_PREFIX_ENV, p).map(Some),
        (None, None) => Ok(None),
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
/// `uidgid` entry allows more): adds `uidgid.uid.<uid>` and `uidgid.gid.<gid>` unless they
/// are root's (0), who needs none, so that root's server shows corosync's keys.
pub(crate) fn allow_own_user(cfg: &mut ServerConfig) {
    // SAFETY: getuid and getgid take no arguments, cannot fail and touch no memory of ours.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    for (kind, id) in [("uid", uid), ("gid", gid)] {
        if id != 0 {
            cfg.initial.push((format!("uidgid.{kind}.{id}"), OwnedValue::UInt8(1)));
        }
    }
}

/// The keys corosync 3.1.7 shows (`corosync-cmapctl`) when started with a minimal one-node
/// configuration on loopback (the harness's `tests/harness/with-corosync`: knet without crypto,
/// node `node1` with id 1 at `127.0.0.1`, votequorum expecting one vote), except the
/// cluster name (`corowire`), its live statistics, service table and logging keys. The
/// server adds `runtime.votequorum.this_node_id` (`Server::bind`), and the cfg service
/// answers `127.0.0.1` for node 1, so `corosync-quorumtool -l` prints `node1 (local)`.
pub(crate) fn one_node_keys() -> Vec<(String, OwnedValue)> {
    let s = |v: &str| OwnedValue::String(v.into());
    [
        ("nodelist.local_node_pos", OwnedValue::UInt32(0)),
        ("nodelist.node.0.name", s("node1")),
        ("nodelist.node.0.nodeid", OwnedValue::UInt32(1)),
        ("nodelist.node.0.ring0_addr", s("127.0.0.1")),
        ("quorum.expected_votes", OwnedValue::UInt32(1)),
        ("quorum.provider", s("corosync_votequorum")),
        ("totem.cluster_name", s("corowire")),
        ("totem.crypto_cipher", s("none")),
        ("totem.crypto_hash", s("none")),
        ("totem.interface.0.bindnetaddr", s("127.0.0.1")),
        ("totem.transport", s("knet")),
        ("totem.version", OwnedValue::UInt32(2)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
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

/// The message for a failed bind, explaining a taken name (`prefixed`: under a name prefix).
fn bind_error(e: &ServerStartError, prefixed: bool) -> String {
    match e {
        ServerStartError::Listen { name, errno } if *errno as i32 == libc::EADDRINUSE => {
            if prefixed {
                format!(
                    "the libqb name '{name}' is already taken: another `corowire serve` with the \
                     same prefix is running. Choose another one with --name-prefix."
                )
            } else {
                format!(
                    "the libqb name '{name}' is already taken in this network namespace: corosync \
                     (or another `corowire serve`) is running here. Serve beside it under other \
                     names with --name-prefix PREFIX (corowire's clients then need \
                     {NAME_PREFIX_ENV}=PREFIX; the corosync tools only reach the standard names), \
                     or start it in a private network namespace (e.g. `unshare --net --mount`)."
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

/// Why `corowire serve --corosync-conf path` serves the node it does.
fn node_reason(path: &Path, nodeid: Option<u32>) -> &'static str {
    if nodeid.is_some() {
        return "as --nodeid says";
    }
    match CorosyncConf::load(path).map(|conf| conf.local_address_pos()) {
        Ok(Some(_)) => "the node whose name or address is local, as corosync finds it",
        _ => "the lowest node id: no node's name or address is local (corosync would refuse to start)",
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
    if let Some(path) = &args.corosync_conf {
        cfg.load_corosync_conf(path, args.nodeid).map_err(|e| match e.line {
            // corosync's words: `parser error: FILE:LINE: WHAT`.
            0 => e.kind.to_string(),
            line => format!("parser error: {}:{line}: {}", path.display(), e.kind),
        })?;
        if let Some(nodeid) = cfg.nodeid {
            out::eprint(&format!(
                "corowire serve: serving node {nodeid}, {}\n",
                node_reason(path, args.nodeid)
            ));
        }
    }
    // After the file, whose `system.qb_ipc_type` chooses too.
    if args.socket {
        cfg.transport = IpcType::Socket;
    }
    if args.configs.is_empty() && args.corosync_conf.is_none() {
        cfg.initial = one_node_keys();
    }
    // `--corosync-conf` chose the node whose address is local, unless `--nodeid` says.
    cfg.nodeid = args.nodeid.or(cfg.nodeid);
    cfg.up.clone_from(&args.up);
    cfg.control.clone_from(&args.control);
    allow_own_user(&mut cfg);
    for path in &args.configs {
        cfg.load_file(path).map_err(|e| format!("config {}: {e}", path.display()))?;
    }
    // Without a quorum provider there is no votequorum service (as in corosync).
    let votequorum = if cfg.has_quorum_provider() {
        format!("votequorum as '{votequorum_name}'")
    } else {
        "no votequorum (no quorum.provider)".to_owned()
    };
    block_stop_signals()?;
    let mut server = Server::bind(cfg).map_err(|e| bind_error(&e, prefix.is_some()))?;
    out::print(&format!(
        "corowire serve: serving cmap as '{cmap_name}', {votequorum}, quorum as '{quorum_name}' \
         and cfg as '{cfg_name}' (pid {}); SIGINT, SIGTERM or corosync-cfgtool -H stops it\n",
        std::process::id()
    ));
    out::flush();
    let stop = server.run_until_signal().map_err(|e| e.to_string())?;
    let open = server.connections();
    drop(server);
    out::print(&format!("corowire serve: stopped by {stop}; closed {open} connection(s)\n"));
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
        assert_eq!((a.corosync_conf.as_ref(), a.nodeid), (None, None));
        let c = parse(&args(&["--corosync-conf", "c.conf", "--nodeid=3"])).unwrap();
        assert_eq!((c.corosync_conf, c.nodeid), (Some(PathBuf::from("c.conf")), Some(3)));
        assert!(parse(&args(&["--corosync-conf", "c.conf", "--nodeid", "x"])).is_err());
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
        assert_eq!(prefix(&Args::default(), Some("")), Ok(None));
        assert_eq!(prefix(&Args::default(), None), Ok(None));
        assert!(prefix(&Args::default(), Some("a/b")).is_err());
        let standard = Args { standard: true, ..Args::default() };
        assert_eq!(prefix(&standard, Some("env")), Ok(None));
        assert_eq!(service_names(Some("t")), ("t-cmap".into(), "t-votequorum".into()));
    }
}
