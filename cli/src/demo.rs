//! `corowire demo`: a guided tour of the cmap and votequorum clients.
//!
//! It sets keys of every type under `demo.`, reads them back, iterates the prefix, tracks it
//! while changing a key (printing the notifications as dispatch delivers them), deletes the
//! keys and reads the quorum state. Any failure ends it with exit status 1.
//!
//! # Backend
//!
//! If a daemon answers on corosync's standard `cmap` socket, the demo uses it. Otherwise (no
//! daemon, or it refuses us) it starts the built-in server on a thread of this process,
//! under private names (`corowire-demo-<pid>-cmap`, `corowire-demo-<pid>-votequorum`), runs
//! the same tour against it, stops it and checks that its `/dev/shm` ring directories are
//! gone. `--builtin` / `--corosync`, or `COROWIRE_DEMO_BACKEND=builtin|corosync|auto`, force
//! the choice (the option wins).

use core::sync::atomic::{AtomicBool, Ordering};
use std::ffi::OsString;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use corowire::cmap::{TrackType, Value};
use corowire::dispatch::DispatchMode;
use corowire::votequorum::{Notification, TrackFlags};
use corowire_unix::cmap::{Cmap, Options as CmapOptions};
use corowire_unix::server::{Server, ServerConfig};
use corowire_unix::votequorum::{Options as VotequorumOptions, Votequorum};
use corowire_unix::{ConnectError, Error, NAME_PREFIX_ENV};

use crate::cmapctl::key_line;
use crate::out;
use corowire::value::OwnedValue;

const PREFIX: &str = "demo.";

const USAGE: &str = "usage: corowire demo [--builtin | --corosync]\n";

/// The environment variable that picks the backend when no option does.
const BACKEND_VAR: &str = "COROWIRE_DEMO_BACKEND";

/// Which server the demo talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// A daemon on the standard names if one answers, else the built-in server.
    Auto,
    /// The built-in server, even if corosync runs.
    Builtin,
    /// The daemon on the standard names; fail without one.
    Daemon,
}

fn choice(args: &[OsString]) -> Result<Choice, String> {
    let mut choice = match std::env::var(BACKEND_VAR).as_deref() {
        Err(_) | Ok("" | "auto") => Choice::Auto,
        Ok("builtin") => Choice::Builtin,
        Ok("corosync") => Choice::Daemon,
        Ok(other) => return Err(format!("{BACKEND_VAR}={other:?}: want builtin, corosync or auto")),
    };
    for arg in args {
        choice = match arg.to_str() {
            Some("--builtin") => Choice::Builtin,
            Some("--corosync") => Choice::Daemon,
            _ => return Err(format!("unknown argument {arg:?}")),
        };
    }
    Ok(choice)
}

/// The built-in server, running on its own thread until dropped.
struct Builtin {
    cmap_name: String,
    votequorum_name: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Builtin {
    /// Binds the server under private names and starts serving on a thread.
    fn start() -> Result<Self, String> {
        let base = format!("corowire-demo-{}", std::process::id());
        let mut cfg = ServerConfig {
            cmap_name: format!("{base}-cmap"),
            votequorum_name: Some(format!("{base}-votequorum")),
            quorum_name: Some(format!("{base}-quorum")),
            cfg_name: Some(format!("{base}-cfg")),
            ..ServerConfig::default()
        };
        crate::serve::allow_own_user(&mut cfg);
        let (cmap_name, votequorum_name) = (format!("{base}-cmap"), format!("{base}-votequorum"));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (ready, bound) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("corowire-server".into())
            .stack_size(16 << 20)
            .spawn(move || {
                let mut server = match Server::bind(cfg) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                        return Ok(());
                    }
                };
                let _ = ready.send(Ok(()));
                let result = server.run_until(&flag).map_err(|e| e.to_string());
                drop(server);
                result
            })
            .map_err(|e| format!("start the built-in server: {e}"))?;
        let bound = bound.recv().unwrap_or_else(|_| Err("the server thread died".into()));
        let server = Self { cmap_name, votequorum_name, stop, thread: Some(thread) };
        bound.map_err(|e| format!("start the built-in server: {e}"))?;
        Ok(server)
    }

    /// Stops the server and waits for it to close its connections and remove their files.
    fn stop(mut self) -> Result<(), String> {
        self.halt()
    }

    fn halt(&mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(format!("built-in server: {e}")),
            Some(Err(_)) => Err("built-in server: its thread panicked".into()),
        }
    }
}

impl Drop for Builtin {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// Where the clients connect: `None` is the service's standard name.
#[derive(Debug, Clone, Default)]
struct Target {
    cmap: Option<String>,
    votequorum: Option<String>,
}

/// Runs the demo; returns the exit status.
pub(crate) fn run(args: &[OsString]) -> u8 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        out::print(USAGE);
        return 0;
    }
    match choice(args).and_then(with_backend) {
        Ok(backend) => {
            out::print(&format!("\nDemo finished: every step succeeded (backend: {backend}).\n"));
            0
        }
        Err(msg) => {
            out::flush();
            if msg.starts_with("unknown argument") {
                out::eprint(&format!("corowire demo: {msg}\n{USAGE}"));
            } else {
                out::eprint(&format!("corowire demo: {msg}\n"));
            }
            1
        }
    }
}

/// Picks the backend, runs the tour against it; the backend's description.
fn with_backend(choice: Choice) -> Result<String, String> {
    step("Choosing a backend");
    let daemon = match choice {
        Choice::Builtin => {
            out::print("the built-in server was asked for (--builtin or COROWIRE_DEMO_BACKEND)\n");
            None
        }
        Choice::Daemon => Some(Cmap::connect().map_err(|e| failed("connect to cmap", &e))?),
        Choice::Auto => match Cmap::connect() {
            Ok(cmap) => Some(cmap),
            Err(Error::Connect { service, reason: ConnectError::NoDaemon(_) }) => {
                out::print(&format!("no server answers on the libqb socket `{service}`\n"));
                None
            }
            Err(Error::Connect { service, reason: reason @ ConnectError::Refused(_) }) => {
                out::print(&format!("the server on the libqb socket `{service}` refused us ({reason})\n"));
                None
            }
            Err(e) => return Err(failed("connect to cmap", &e)),
        },
    };
    if let Some(mut cmap) = daemon {
        let backend = describe_daemon(&mut cmap)?;
        out::print(&format!("backend: {backend}\n"));
        demo(cmap, &Target::default())?;
        return Ok(backend);
    }
    let server = Builtin::start()?;
    out::print(
        "backend: built-in server (started on a thread of this process, serving cmap and \
         votequorum under private names corowire-demo-<pid>-*)\n",
    );
    let target =
        Target { cmap: Some(server.cmap_name.clone()), votequorum: Some(server.votequorum_name.clone()) };
    let cmap =
        Cmap::connect_with(CmapOptions { service_name: target.cmap.clone(), ..CmapOptions::default() })
            .map_err(|e| failed("connect to the built-in server's cmap", &e))?;
    let result = demo(cmap, &target);
    step("Stopping the built-in server");
    server.stop()?;
    result?;
    let left = ring_dirs_left()?;
    if !left.is_empty() {
        return Err(format!("the built-in server left ring directories in /dev/shm: {}", left.join(", ")));
    }
    out::print("stopped; no ring directories are left in /dev/shm\n");
    Ok("built-in server".into())
}

/// The `/dev/shm` ring directories of connections this process served (libqb's
/// `qb-<server pid>-<client pid>-...`).
fn ring_dirs_left() -> Result<Vec<String>, String> {
    let mine = format!("qb-{}-", std::process::id());
    let entries = match std::fs::read_dir("/dev/shm") {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("read /dev/shm: {e}")),
    };
    Ok(entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&mine))
        .collect())
}

/// What answers on the name `cmap` connected to: corosync (it has `runtime.config.` keys) or
/// another server (such as `corowire serve --standard-names` or `--name-prefix`).
fn describe_daemon(cmap: &mut Cmap) -> Result<String, String> {
    let cluster = cmap.get_string("totem.cluster_name").map_err(|e| failed("get totem.cluster_name", &e))?;
    let runtime = cmap
        .iter(Some("runtime.config."))
        .map_err(|e| failed("iterate runtime.config.", &e))?
        .next()
        .is_some();
    Ok(if runtime {
        format!("corosync (cluster {cluster:?})")
    } else {
        format!("a cmap server on `{}`, not corosync (cluster {cluster:?})", cmap.service_name())
    })
}

/// The message for a failed step (with a clear one when no daemon runs).
fn failed(step: &str, e: &Error) -> String {
    match e {
        Error::Connect { service, reason: ConnectError::NoDaemon(_) } => format!(
            "{step}: no server listens on the libqb socket `{service}`; start corosync, run \
             `corowire demo --builtin` to use the built-in server, or for `corowire serve \
             --name-prefix P` set {NAME_PREFIX_ENV}=P"
        ),
        _ => format!("{step}: {} ({})", e.report(), crate::cformat::cs_strerror(e.cs_error())),
    }
}

fn line(key: &str, v: &OwnedValue) -> String {
    String::from_utf8_lossy(&key_line(key.as_bytes(), v.value_type(), Some(v), false, true)).into_owned()
}

/// `VALUE (TYPE)`, the value printed as `corosync-cmapctl -q -b` does.
fn value_text(v: &OwnedValue) -> String {
    let quiet = key_line(b"", v.value_type(), Some(v), true, true);
    let text = String::from_utf8_lossy(&quiet);
    let text = text.trim_end_matches('\n');
    let text = text.strip_prefix("bin) = ").unwrap_or(text);
    format!("{text} ({})", v.value_type().cmapctl_name())
}

fn step(title: &str) {
    out::print(&format!("\n== {title}\n"));
}

fn demo(mut cmap: Cmap, target: &Target) -> Result<(), String> {
    step("Connecting to the cmap service");
    let cluster = cmap.get_string("totem.cluster_name").map_err(|e| failed("get totem.cluster_name", &e))?;
    out::print(&format!("connected; cluster name is {cluster:?}\n"));

    // Leftovers from an interrupted run would confuse the tour.
    let stale: Vec<String> = cmap
        .iter(Some(PREFIX))
        .map_err(|e| failed("iterate demo.", &e))?
        .map_while(Result::ok)
        .map(|(k, ..)| k)
        .collect();
    for k in stale {
        cmap.delete(&k).map_err(|e| failed(&format!("delete stale {k}"), &e))?;
    }

    step("Setting one key of each type under demo.");
    let samples: Vec<(&str, Value<'_>)> = vec![
        ("demo.i8", Value::Int8(-8)),
        ("demo.u8", Value::UInt8(8)),
        ("demo.i16", Value::Int16(-1616)),
        ("demo.u16", Value::UInt16(1616)),
        ("demo.i32", Value::Int32(-323_232)),
        ("demo.u32", Value::UInt32(323_232)),
        ("demo.i64", Value::Int64(-6_464_646_464)),
        ("demo.u64", Value::UInt64(6_464_646_464)),
        ("demo.flt", Value::Float(1.5)),
        ("demo.dbl", Value::Double(-2.25)),
        ("demo.str", Value::String(b"hello from corowire")),
        ("demo.bin", Value::Binary(b"\x00\x01\x02bin\xff")),
    ];
    for (key, value) in &samples {
        cmap.set(key, *value).map_err(|e| failed(&format!("set {key}"), &e))?;
        out::print(&format!("set  {}", line(key, &OwnedValue::from(*value))));
    }

    step("Reading them back");
    for (key, value) in &samples {
        let got = cmap.get(key).map_err(|e| failed(&format!("get {key}"), &e))?;
        if got != OwnedValue::from(*value) {
            return Err(format!("get {key}: read back {got:?}, expected {value:?}"));
        }
        out::print(&format!("get  {}", line(key, &got)));
    }

    step("Iterating the prefix demo.");
    let listed: Vec<(String, corowire::cmap::ValueType, u64)> = cmap
        .iter(Some(PREFIX))
        .map_err(|e| failed("iterate demo.", &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| failed("iterate demo.", &e))?;
    for (key, ty, len) in &listed {
        out::print(&format!("iter {key} ({}) {len} bytes\n", ty.cmapctl_name()));
    }
    if listed.len() != samples.len() {
        return Err(format!("iterate demo.: found {} keys, expected {}", listed.len(), samples.len()));
    }

    step("Tracking demo. while changing keys");
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&events);
    let track = cmap
        .track_add(Some(PREFIX), TrackType(TrackType::ALL.0), move |e| {
            let show = |v: Option<Value<'_>>| v.map_or("-".to_owned(), |v| value_text(&OwnedValue::from(v)));
            let text = format!(
                "notification: {} {} new: {} old: {}\n",
                e.event,
                e.key(),
                show(e.new_value),
                show(e.old_value)
            );
            if let Ok(mut q) = sink.lock() {
                q.push(text);
            }
        })
        .map_err(|e| failed("track demo.", &e))?;
    out::print("tracking demo. (creations, changes and deletions)\n");
    cmap.set_u32("demo.u32", 42).map_err(|e| failed("set demo.u32", &e))?;
    out::print("changed demo.u32 to 42\n");
    cmap.inc("demo.u32").map_err(|e| failed("inc demo.u32", &e))?;
    out::print("incremented demo.u32\n");
    cmap.set_string("demo.added", "new key").map_err(|e| failed("set demo.added", &e))?;
    out::print("added demo.added\n");
    let want = 3;
    let mut seen = 0;
    let deadline = std::time::Instant::now() + core::time::Duration::from_secs(5);
    while seen < want {
        match cmap.dispatch(DispatchMode::OneNonBlocking) {
            Ok(()) => {}
            Err(e) if e.cs_error() == corowire::CsError::TryAgain => {
                if std::time::Instant::now() > deadline {
                    return Err(format!("dispatch: only {seen} of {want} notifications arrived"));
                }
                std::thread::sleep(core::time::Duration::from_millis(10));
            }
            Err(e) => return Err(failed("dispatch", &e)),
        }
        let batch: Vec<String> = events.lock().map(|mut q| q.drain(..).collect()).unwrap_or_default();
        seen += batch.len();
        for text in batch {
            out::print(&text);
        }
    }
    let value = cmap.get_u32("demo.u32").map_err(|e| failed("get demo.u32", &e))?;
    if value != 43 {
        return Err(format!("demo.u32 is {value}, expected 43"));
    }
    cmap.track_delete(track).map_err(|e| failed("track delete", &e))?;
    out::print("stopped tracking\n");

    step("Deleting the demo. keys");
    let keys: Vec<String> = cmap
        .iter(Some(PREFIX))
        .map_err(|e| failed("iterate demo.", &e))?
        .map_while(Result::ok)
        .map(|(k, ..)| k)
        .collect();
    for key in &keys {
        cmap.delete(key).map_err(|e| failed(&format!("delete {key}"), &e))?;
        out::print(&format!("deleted {key}\n"));
    }
    if cmap.iter(Some(PREFIX)).map_err(|e| failed("iterate demo.", &e))?.next().is_some() {
        return Err("delete: keys are left under demo.".into());
    }

    step("Reading the quorum state from votequorum");
    let options =
        VotequorumOptions { service_name: target.votequorum.clone(), ..VotequorumOptions::default() };
    let mut vq = Votequorum::connect_with(options).map_err(|e| failed("connect to votequorum", &e))?;
    let info = vq.get_info(0).map_err(|e| failed("votequorum getinfo", &e))?;
    out::print(&format!(
        "node {}: votes {}, expected {}, total {}, quorum {}, quorate: {}\n",
        info.nodeid,
        info.votes,
        info.expected_votes,
        info.total_votes,
        info.quorum,
        if info.is_quorate() { "yes" } else { "no" }
    ));
    let notes: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&notes);
    vq.set_callback(move |n| {
        let text = match n {
            Notification::Quorum { quorate, nodes, .. } => {
                format!("quorum notification: quorate {quorate}, {} node(s)\n", nodes.len())
            }
            Notification::NodeList { ring_id, nodes, .. } => format!(
                "node list notification: ring {:x}.{:x}, members {:?}\n",
                ring_id.nodeid,
                ring_id.seq,
                nodes.iter().collect::<Vec<_>>()
            ),
            Notification::ExpectedVotes { expected_votes, .. } => {
                format!("expected votes notification: {expected_votes}\n")
            }
        };
        if let Ok(mut q) = sink.lock() {
            q.push(text);
        }
    });
    vq.track_start(0, TrackFlags::CURRENT).map_err(|e| failed("votequorum trackstart", &e))?;
    while notes.lock().map_or(0, |q| q.len()) < 2 {
        vq.dispatch(DispatchMode::One).map_err(|e| failed("votequorum dispatch", &e))?;
    }
    for text in notes.lock().map(|mut q| q.drain(..).collect::<Vec<_>>()).unwrap_or_default() {
        out::print(&text);
    }
    Ok(())
}
