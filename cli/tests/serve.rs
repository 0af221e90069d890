//! `corowire demo` against the built-in server and `corowire serve` as a child process.
//!
//! These need no root and no corosync: the demo is forced onto the built-in server
//! (`COROWIRE_DEMO_BACKEND=builtin` / `--builtin`), and `serve` runs under private names
//! (`--name-prefix`, or `COROWIRE_NAME_PREFIX`), which the Rust clients reach with
//! `Options::service_name` and the CLI with `COROWIRE_NAME_PREFIX`.

use core::time::Duration;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::Instant;

use corowire_unix::cmap::{Cmap, Options as CmapOptions};
use corowire_unix::votequorum::{Options as VotequorumOptions, Votequorum};

fn corowire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_corowire"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_lines(stdout: &str, lines: &[&str]) {
    for line in lines {
        assert!(stdout.lines().any(|l| l == *line), "missing line {line:?} in:\n{stdout}");
    }
}

/// The demo's lines that do not depend on the backend, and the built-in backend's.
const DEMO_LINES: &[&str] = &[
    "== Choosing a backend",
    "connected; cluster name is \"corowire\"",
    "set  demo.i8 (i8) = -8",
    "get  demo.u64 (u64) = 6464646464",
    "get  demo.str (str) = hello from corowire",
    "iter demo.u32 (u32) 4 bytes",
    "notification: modify demo.u32 new: 42 (u32) old: 323232 (u32)",
    "notification: modify demo.u32 new: 43 (u32) old: 42 (u32)",
    "notification: create demo.added new: new key (str) old: -",
    "deleted demo.added",
    "node 1: votes 1, expected 1, total 1, quorum 1, quorate: yes",
    "quorum notification: quorate true, 1 node(s)",
    "== Stopping the built-in server",
    "stopped; no ring directories are left in /dev/shm",
    "Demo finished: every step succeeded (backend: built-in server).",
];

fn demo(args: &[&str], backend: Option<&str>) -> Output {
    let mut cmd = corowire();
    cmd.arg("demo").args(args);
    match backend {
        Some(b) => cmd.env("COROWIRE_DEMO_BACKEND", b),
        None => cmd.env_remove("COROWIRE_DEMO_BACKEND"),
    };
    cmd.output().expect("run corowire demo")
}

#[test]
fn demo_on_the_builtin_server_via_env() {
    let out = demo(&[], Some("builtin"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", text(&out.stderr));
    assert_lines(&stdout, DEMO_LINES);
    assert!(stdout.contains("backend: built-in server ("), "{stdout}");
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
}

#[test]
fn demo_on_the_builtin_server_via_option() {
    // The option wins over the environment.
    let out = demo(&["--builtin"], Some("corosync"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", text(&out.stderr));
    assert_lines(&stdout, DEMO_LINES);
}

#[test]
fn demo_rejects_bad_arguments() {
    let out = demo(&["--bogus"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("usage: corowire demo"), "{}", text(&out.stderr));
    let out = demo(&[], Some("nonsense"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("COROWIRE_DEMO_BACKEND"), "{}", text(&out.stderr));
}

/// A `corowire serve` child, killed if the test fails before it stops it.
struct Served {
    child: Child,
    stdout: BufReader<ChildStdout>,
    banner: String,
}

impl Served {
    fn start(args: &[&str]) -> Self {
        Self::start_with(args, None)
    }

    /// As [`Served::start`], with `COROWIRE_NAME_PREFIX` set to `prefix_var` if given.
    fn start_with(args: &[&str], prefix_var: Option<&str>) -> Self {
        let mut command = corowire();
        if let Some(p) = prefix_var {
            command.env("COROWIRE_NAME_PREFIX", p);
        }
        let mut child = command
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn corowire serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut banner = String::new();
        stdout.read_line(&mut banner).expect("read the banner");
        let mut served = Self { child, stdout, banner };
        if served.banner.is_empty() {
            let status = served.wait(Duration::from_secs(10));
            panic!("corowire serve {args:?} exited ({status:?}) before serving: {}", served.stderr());
        }
        served
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid");
        // SAFETY: kill takes plain integers; the pid is our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "corowire serve did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    fn rest_of_stdout(&mut self) -> String {
        let mut s = String::new();
        let _ = self.stdout.read_to_string(&mut s);
        s
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `/dev/shm` ring directories of a server process (`qb-<server pid>-...`).
fn ring_dirs(server_pid: u32) -> Vec<String> {
    let prefix = format!("qb-{server_pid}-");
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn cmap_at(name: &str) -> Cmap {
    let options = CmapOptions {
        service_name: Some(name.into()),
        timeout: Some(Duration::from_secs(10)),
        ..CmapOptions::default()
    };
    Cmap::connect_with(options).expect("connect to the served cmap")
}

fn votequorum_at(name: &str) -> Votequorum {
    let options = VotequorumOptions {
        service_name: Some(name.into()),
        timeout: Some(Duration::from_secs(10)),
        ..VotequorumOptions::default()
    };
    Votequorum::connect_with(options).expect("connect to the served votequorum")
}

#[test]
fn serve_under_a_prefix_then_sigterm() {
    let prefix = format!("test-{}-a", std::process::id());
    let mut served = Served::start(&["--name-prefix", &prefix]);
    assert!(
        served.banner.contains(&format!(
            "serving cmap as '{prefix}-cmap', votequorum as '{prefix}-votequorum', quorum as \
                 '{prefix}-quorum' and cfg as '{prefix}-cfg'"
        )),
        "{}",
        served.banner
    );

    let mut cmap = cmap_at(&format!("{prefix}-cmap"));
    assert_eq!(cmap.get_string("totem.cluster_name").expect("cluster name"), "corowire");
    cmap.set_u32("test.serve.counter", 41).expect("set");
    cmap.inc("test.serve.counter").expect("inc");
    assert_eq!(cmap.get_u32("test.serve.counter").expect("get"), 42);
    cmap.set_string("test.serve.text", "hello").expect("set str");
    assert_eq!(cmap.get_string("test.serve.text").expect("get str"), "hello");
    let mut vq = votequorum_at(&format!("{prefix}-votequorum"));
    let info = vq.get_info(0).expect("getinfo");
    assert!(info.is_quorate(), "{info:?}");

    // The connections' rings exist while they are open (when /dev/shm is where they go).
    if std::path::Path::new("/dev/shm").is_dir() {
        assert_eq!(ring_dirs(served.pid()).len(), 2, "one ring directory per connection");
    }

    served.signal(libc::SIGTERM);
    let status = served.wait(Duration::from_secs(10));
    let stderr = served.stderr();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    let rest = served.rest_of_stdout();
    assert!(rest.contains("stopped by SIGTERM; closed 2 connection(s)"), "stdout: {rest}");
    assert_eq!(ring_dirs(served.pid()), Vec::<String>::new(), "ring directories left behind");
    // The clients see the server gone.
    assert!(cmap.get_u32("test.serve.counter").is_err());
    drop((cmap, vq));
}

#[test]
fn serve_with_a_config_file_and_sigint() {
    let prefix = format!("test-{}-b", std::process::id());
    let dir = std::env::temp_dir().join(format!("corowire-serve-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf = dir.join("corowire.conf");
    // The example of cli/README.md.
    std::fs::write(
        &conf,
        "# key type value (one space between the fields; a str value is the rest of the line)\n\
         totem.cluster_name str demo cluster\n\
         totem.nodeid u32 1\n\
         quorum.expected_votes u32 3\n\
         nodelist.node.0.nodeid u32 1\n\
         nodelist.node.1.nodeid u32 2\n\
         nodelist.node.2.nodeid u32 3\n\
         app.greeting str hello, world\n",
    )
    .expect("write config");
    let mut served =
        Served::start(&["--config", conf.to_str().expect("utf-8 path"), "--name-prefix", &prefix]);
    let mut cmap = cmap_at(&format!("{prefix}-cmap"));
    assert_eq!(cmap.get_string("totem.cluster_name").expect("cluster name"), "demo cluster");
    assert_eq!(cmap.get_string("app.greeting").expect("greeting"), "hello, world");
    let mut vq = votequorum_at(&format!("{prefix}-votequorum"));
    let info = vq.get_info(0).expect("getinfo");
    assert_eq!((info.nodeid, info.expected_votes, info.total_votes), (1, 3, 3), "{info:?}");
    assert!(info.is_quorate(), "{info:?}");
    drop((cmap, vq));

    served.signal(libc::SIGINT);
    let status = served.wait(Duration::from_secs(10));
    let stderr = served.stderr();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(ring_dirs(served.pid()), Vec::<String>::new(), "ring directories left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_reports_a_taken_name() {
    let prefix = format!("test-{}-c", std::process::id());
    let mut first = Served::start(&["--name-prefix", &prefix]);
    let second = corowire().args(["serve", "--name-prefix", &prefix]).output().expect("run the second serve");
    assert_eq!(second.status.code(), Some(1));
    let stderr = text(&second.stderr);
    assert!(stderr.contains(&format!("the libqb name '{prefix}-cmap' is already taken")), "{stderr}");
    first.signal(libc::SIGTERM);
    assert_eq!(first.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn serve_rejects_bad_options() {
    for args in
        [&["--standard-names", "--name-prefix", "x"][..], &["--bogus"], &["--config", "/nonexistent/x.conf"]]
    {
        let out = corowire().arg("serve").args(args).output().expect("run serve");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).starts_with("corowire serve: "), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn the_name_prefix_variable_points_the_clients_and_serve_at_the_same_names() {
    let prefix = format!("test-{}-d", std::process::id());
    // serve takes its default prefix from the variable the clients read.
    let mut served = Served::start_with(&[], Some(&prefix));
    assert!(served.banner.contains(&format!("serving cmap as '{prefix}-cmap'")), "{}", served.banner);

    // `corowire cmap` (Options::default) and `corowire quorum` (cmap and votequorum) follow it.
    let cmap = corowire()
        .args(["cmap", "-g", "totem.cluster_name"])
        .env("COROWIRE_NAME_PREFIX", &prefix)
        .output()
        .expect("run corowire cmap");
    assert_eq!(text(&cmap.stdout), "totem.cluster_name (str) = corowire\n", "{}", text(&cmap.stderr));
    let quorum =
        corowire().args(["quorum", "-s"]).env("COROWIRE_NAME_PREFIX", &prefix).output().expect("run quorum");
    assert_eq!(quorum.status.code(), Some(0), "{}{}", text(&quorum.stdout), text(&quorum.stderr));
    assert!(text(&quorum.stdout).contains("Quorate:          Yes"), "{}", text(&quorum.stdout));
    // `corowire demo` too, and names the socket it used.
    let demo = corowire()
        .args(["demo", "--corosync"])
        .env("COROWIRE_NAME_PREFIX", &prefix)
        .output()
        .expect("run demo");
    assert_eq!(demo.status.code(), Some(0), "{}{}", text(&demo.stdout), text(&demo.stderr));
    let backend = format!("backend: a cmap server on `{prefix}-cmap`, not corosync");
    assert!(text(&demo.stdout).contains(&backend), "{}", text(&demo.stdout));

    // A prefix nobody serves: the client reports that nothing listens there.
    let nobody = corowire()
        .args(["cmap", "-g", "totem.cluster_name"])
        .env("COROWIRE_NAME_PREFIX", format!("{prefix}-nobody"))
        .output()
        .expect("run corowire cmap");
    assert_eq!(nobody.status.code(), Some(1));
    assert!(nobody.stdout.is_empty());

    served.signal(libc::SIGTERM);
    assert_eq!(served.wait(Duration::from_secs(10)).code(), Some(0), "{}", served.stderr());
}

/// Writes a corosync.conf into a scratch directory named after `what`: node 1 at 127.0.0.1,
/// then the other `nodes` sections, and `quorum` lines; returns (directory, file).
fn corosync_conf(what: &str, nodes: &str, quorum: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("corowire-serve-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf = dir.join("corosync.conf");
    let text = format!(
        "totem {{\n  version: 2\n  cluster_name: {what}\n}}\nnodelist {{\n  node {{\n    nodeid: 1\n    \
         ring0_addr: 127.0.0.1\n  }}\n{nodes}}}\nquorum {{\n  provider: corosync_votequorum\n{quorum}}}\n"
    );
    std::fs::write(&conf, text).expect("write corosync.conf");
    (dir, conf)
}

#[test]
fn corosyncs_configuration_warnings_are_printed_without_verbose() {
    // auto_tie_breaker on three nodes without wait_for_all: corosync logs at crit that it
    // switches it off (votequorum.c), whatever its log level; so does the server.
    let nodes = "  node {\n    nodeid: 2\n    ring0_addr: 192.0.2.2\n  }\n  \
                 node {\n    nodeid: 3\n    ring0_addr: 192.0.2.3\n  }\n";
    let (dir, conf) = corosync_conf("atb", nodes, "  auto_tie_breaker: 1\n");
    let prefix = format!("test-{}-atb", std::process::id());
    let mut served =
        Served::start(&["--corosync-conf", conf.to_str().expect("utf-8 path"), "--name-prefix", &prefix]);
    served.signal(libc::SIGTERM);
    assert_eq!(served.wait(Duration::from_secs(10)).code(), Some(0));
    let stderr = served.stderr();
    let warning = "corowire serve: votequorum: auto_tie_breaker is set and the cluster has an odd number of nodes.\n\
                   corowire serve: votequorum: wait_for_all needs to be set for this configuration but it is missing\n\
                   corowire serve: votequorum: Therefore auto_tie_breaker has been disabled. Please fix your corosync.conf\n";
    assert!(stderr.contains(warning), "{stderr}");
    assert!(stderr.contains("serving node 1, the node whose name or address is local"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_node_without_an_address_never_joins() {
    // corosync 3.1.7 starts with node 2 lacking ring0_addr, and never sees it join.
    let (dir, conf) = corosync_conf("noaddr", "  node {\n    nodeid: 2\n  }\n", "");
    let conf = conf.to_str().expect("utf-8 path");
    let control = dir.join("sim");
    let prefix = format!("test-{}-noaddr", std::process::id());
    let refused = corowire()
        .args(["serve", "--name-prefix", &prefix, "--corosync-conf", conf, "--up", "1,2"])
        .output()
        .expect("run serve");
    let never = "node 2 has no ring0_addr in the node list: corosync can never reach it, it never joins";
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains(never), "{}", text(&refused.stderr));
    let control_arg = control.to_str().expect("utf-8 path");
    let mut served =
        Served::start(&["--corosync-conf", conf, "--name-prefix", &prefix, "--control", control_arg]);
    let sim = |cmd: &str| corowire().args(["sim", "--control", control_arg, cmd]).output().expect("run sim");
    let up = corowire().args(["sim", "--control", control_arg, "up", "2"]).output().expect("run sim");
    assert_eq!(up.status.code(), Some(1));
    assert!(text(&up.stderr).contains(never), "{}", text(&up.stderr));
    let show = text(&sim("show").stdout);
    assert!(show.contains("node 2: down\n"), "{show}");
    let mut vq = votequorum_at(&format!("{prefix}-votequorum"));
    let info = vq.get_info(0).expect("getinfo");
    assert_eq!((info.expected_votes, info.total_votes), (2, 1), "{info:?}");
    drop(vq);
    served.signal(libc::SIGTERM);
    assert_eq!(served.wait(Duration::from_secs(10)).code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
