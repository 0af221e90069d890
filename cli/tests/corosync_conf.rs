//! `corowire serve --corosync-conf FILE` against corosync 3.1.7 itself.
//!
//! For every file in `tests/corosync_conf/` (the harness's one-node config, three nodes with
//! names, `two_node`, comments with `logger_subsys` and `uidgid`, two knet links, `udpu` with
//! four unnamed nodes, `logging_daemon` / per-link settings / `resources` / an unknown
//! section, no `quorum` section, `token: 4294967295` with expected votes 2^32-1, two local
//! nodes of which corosync takes the one named `localhost`), the
//! listing `corosync-cmapctl` prints (`key (type) = value`) against a private corosync started
//! with that file (`tests/harness/with-corosync --conf FILE`) and against `corowire serve
//! --corosync-conf FILE` (in a private network namespace, under corosync's names) must be
//! the same, apart from live counters (`runtime.services.*`) and the keys other parts of
//! the server present (`runtime.votequorum.*`, `runtime.members.*`). Malformed files get
//! corosync's own error line (`corosync -t`), and so do files corosync parses but refuses to
//! start with (totem timeouts, knet node ids, unresolvable node addresses, mixed IP families,
//! crypto and its key file, transport, version, link mode); a FIFO, directory or device is refused at once. Those tests need root, corosync and `unshare`
//! (`tests/run-all` runs them); the error tests without corosync need nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The test configurations, in name order.
fn configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corosync_conf");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "test configurations missing in {}", dir.display());
    files
}

/// The listing without the keys this comparison leaves out.
fn masked(listing: &str) -> Vec<&str> {
    const LEFT_OUT: [&str; 3] = ["runtime.services.", "runtime.votequorum.", "runtime.members."];
    listing.lines().filter(|l| !LEFT_OUT.iter().any(|p| l.starts_with(p))).collect()
}

fn checked(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `corosync-cmapctl` against a private corosync started with `conf`.
fn corosync_listing(conf: &Path) -> String {
    let out = Command::new(repo().join("tests/harness/with-corosync"))
        .arg("--conf")
        .arg(conf)
        .args(["--", "corosync-cmapctl"])
        .output()
        .expect("run tests/harness/with-corosync");
    checked(&format!("corosync with {}", conf.display()), &out)
}

/// `corosync-cmapctl` against `corowire serve --corosync-conf conf`, in a network namespace
/// of its own (so it serves corosync's names without meeting any other daemon).
fn corowire_listing(conf: &Path) -> String {
    const SCRIPT: &str = r#"
        ip link set lo up
        "$1" serve --standard-names --corosync-conf "$2" >/dev/null &
        server=$!
        for _ in $(seq 200); do
            corosync-cmapctl -g totem.version >/dev/null 2>&1 && break
            kill -0 "$server" 2>/dev/null || exit 1
            sleep 0.05
        done
        corosync-cmapctl
        status=$?
        kill "$server"
        wait "$server"
        exit "$status"
    "#;
    let out = Command::new("unshare")
        .args(["--net", "--", "bash", "-c", SCRIPT, "corowire-listing", env!("CARGO_BIN_EXE_corowire")])
        .arg(conf)
        .output()
        .expect("run unshare");
    checked(&format!("corowire serve with {}", conf.display()), &out)
}

#[test]
#[ignore = "needs root, corosync and unshare (tests/run-all)"]
fn every_key_type_and_value_matches_corosync() {
    for conf in configs() {
        let (real, ours) = (corosync_listing(&conf), corowire_listing(&conf));
        let (real, ours) = (masked(&real), masked(&ours));
        assert!(real.len() > 50, "{}: corosync listed only {real:?}", conf.display());
        let missing: Vec<_> = real.iter().filter(|l| !ours.contains(l)).collect();
        let extra: Vec<_> = ours.iter().filter(|l| !real.contains(l)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{}: corosync only: {missing:#?}\ncorowire only: {extra:#?}",
            conf.display()
        );
    }
}

/// Malformed files and the line corosync's parser names for each.
const BAD_FILES: &[(&str, &str)] = &[
    ("unclosed", "totem {\n    version: 2\n"),
    ("no_colon", "totem {\n    version two\n}\n"),
    ("bad_integer", "quorum {\n    provider: corosync_votequorum\n    expected_votes: x\n}\n"),
    ("stray_brace", "# comment\n}\n"),
    ("extra_after_brace", "totem { version: 2\n}\n"),
    ("bad_choice", "system {\n    sched_rr: sometimes\n}\n"),
    ("crypto_model", "totem {\n    crypto_model: foo\n}\n"),
    ("compression_model", "totem {\n    knet_compression_model: none\n}\n"),
];

fn write_bad_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    std::fs::create_dir_all(dir).unwrap();
    BAD_FILES
        .iter()
        .map(|&(name, body)| {
            let path = dir.join(format!("{name}.conf"));
            std::fs::write(&path, body).unwrap();
            (path, body)
        })
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("corowire-conf-{name}-{}", std::process::id()))
}

/// `corowire serve`'s message for `path`, without its `corowire serve: ` prefix.
/// A file the server accepts fails the test (status 124 from `timeout`) instead of leaving it
/// waiting on a server that serves.
fn serve_error(path: &Path) -> String {
    let out = Command::new("timeout")
        .args(["20", env!("CARGO_BIN_EXE_corowire")])
        .args(["serve", "--name-prefix", &format!("conf-err-{}", std::process::id()), "--corosync-conf"])
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}: {}", path.display(), text(&out.stderr));
    let stderr = text(&out.stderr);
    stderr.lines().next().unwrap_or_default().trim_start_matches("corowire serve: ").to_owned()
}

#[test]
fn malformed_files_are_refused_with_their_line() {
    let dir = scratch("bad");
    let expected = [
        "unclosed.conf:2: Missing closing brace",
        "no_colon.conf:2: Line is not opening or closing section or key value",
        "bad_integer.conf:3: Value of key \"quorum.expected_votes\" is expected to be integer in range (0..4294967295), but \"x\" was given",
        "stray_brace.conf:2: Unexpected closing brace",
        "extra_after_brace.conf:1: Extra characters after opening bracket '{'",
        "bad_choice.conf:2: Invalid system.sched_rr value",
        "crypto_model.conf:2: Invalid crypto model. Should be nss or openssl",
        "compression_model.conf:2: Invalid compression model. Should be zlib, lz4, lz4hc, lzo2, lzma, bzip2 or zstd",
    ];
    for ((path, _), want) in write_bad_files(&dir).iter().zip(expected) {
        let message = serve_error(path);
        assert_eq!(message, format!("parser error: {}/{want}", dir.display()));
    }
    let missing = dir.join("absent.conf");
    assert!(serve_error(&missing).starts_with(&format!("Can't read file {}: ", missing.display())));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What `corosync -t -c path` prints on stderr; it must refuse the file.
fn corosync_refusal(path: &Path) -> String {
    let out = Command::new("corosync").arg("-t").arg("-c").arg(path).output().expect("run corosync -t");
    assert!(!out.status.success(), "corosync -t accepted {}", path.display());
    text(&out.stderr)
}

#[test]
#[ignore = "needs corosync (tests/run-all)"]
fn malformed_files_get_corosyncs_own_words() {
    let dir = scratch("corosync-t");
    for (path, body) in write_bad_files(&dir) {
        let theirs = corosync_refusal(&path);
        let theirs = theirs.lines().find(|l| l.starts_with("parser error: ")).unwrap_or_default();
        assert_eq!(serve_error(&path), theirs, "for {body:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Files corosync parses but refuses to start with (totemconfig.c, votequorum.c): (name,
/// extra `totem` lines, the local node's `nodeid` and extra lines, other nodes, the message
/// both give).
/// `KEYDIR` is replaced by the scratch directory, which holds `short.key` (16 bytes) and
/// `good.key` (128 bytes).
const STARTUP_REFUSALS: &[(&str, &str, &str, &str, &str)] = &[
    ("token", "token: 10", "nodeid: 1", "", "parse error in config: The token timeout parameter (10 ms) may not be less than (30 ms)."),
    ("consensus", "consensus: 10", "nodeid: 1", "", "parse error in config: The consensus timeout parameter (10 ms) may not be less than (30 ms)."),
    ("join", "join: 99999", "nodeid: 1", "", "parse error in config: The consensus timeout parameter (3600 ms) may not be less than join timeout (99999 ms)."),
    ("hold", "hold: 5", "nodeid: 1", "", "parse error in config: The token hold timeout parameter (5 ms) may not be less than (14 ms)."),
    ("retransmits", "token_retransmits_before_loss_const: 200", "nodeid: 1", "", "parse error in config: Not appropriate token or token_retransmits_before_loss_const value set"),
    ("token_retransmit", "token_retransmit: 10", "nodeid: 1", "", "parse error in config: The token retransmit timeout parameter (10 ms) may not be less than (30 ms)."),
    ("downcheck", "downcheck: 5", "nodeid: 1", "", "parse error in config: The downcheck timeout parameter (5 ms) may not be less than (30 ms)."),
    ("merge", "merge: 5", "nodeid: 1", "", "parse error in config: The merge timeout parameter (5 ms) may not be less than (30 ms)."),
    ("delay", "max_network_delay: 5", "nodeid: 1", "", "parse error in config: The max_network_delay parameter (5 ms) may not be less than (30 ms)."),
    ("warning", "token_warning: 200", "nodeid: 1", "", "parse error in config: The token warning parameter (200%) must be between 0 (disabled) and 100."),
    ("version", "version: 1", "nodeid: 1", "", "parse error in config: This totem parser can only parse version 2 configurations."),
    ("link_mode", "link_mode: foo", "nodeid: 1", "", "parse error in config: The Knet link mode \"foo\" specified is invalid.  It must be active, passive or rr."),
    ("transport", "transport: foo", "nodeid: 1", "", "Invalid transport type. Should be udpu, udp or knet"),
    ("cipher", "crypto_cipher: aes256", "nodeid: 1", "", "crypto_cipher requires crypto_hash with value other than none"),
    ("no_key", "crypto_hash: sha256\n    keyfile: KEYDIR/absent.key", "nodeid: 1", "", "Could not open KEYDIR/absent.key: No such file or directory"),
    ("short_key", "crypto_hash: sha256\n    keyfile: KEYDIR/short.key", "nodeid: 1", "", "Could only read 128 bits of minimum 1024 bits from KEYDIR/short.key."),
    ("udpu_crypto", "transport: udpu\n    crypto_hash: sha1\n    keyfile: KEYDIR/good.key", "nodeid: 1", "", "parse error in config: crypto_cipher & crypto_hash are only valid for the Knet transport."),
    ("nodeid_0", "", "nodeid: 0", "", "Knet requires an explicit nodeid for the local node"),
    ("nodeid_65536", "", "nodeid: 65536", "", "Knet requires nodeid to be less than 65536 for address '127.0.0.1'."),
    ("other_nodeid", "", "nodeid: 1", "    node {\n        ring0_addr: 192.0.2.2\n    }\n", "Knet requires an explicit nodeid to be specified for address '192.0.2.2'."),
    ("unresolvable", "", "nodeid: 1", "    node {\n        nodeid: 2\n        ring0_addr: nosuchhost.invalid\n    }\n", "failed to parse node address 'nosuchhost.invalid'"),
    ("ip_families", "", "nodeid: 1", "    node {\n        nodeid: 2\n        ring0_addr: 2001:db8::2\n    }\n", "parse error in config: Nodes for link 0 have different IP families (compared 2001:db8::2 with 127.0.0.1)"),
    ("multi_link", "", "nodeid: 1\n        ring1_addr: 127.0.1.1", "    node {\n        nodeid: 2\n        ring0_addr: 192.0.2.2\n        ring1_addr: 192.0.3.2\n    }\n", "parse error in config: for a multi-link configuration, all nodes must have a 'name' attribute"),
];

/// Writes the [`STARTUP_REFUSALS`] files into `dir` (logging to stderr, for `corosync -t`).
fn write_startup_files(dir: &Path) -> Vec<(PathBuf, String)> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("short.key"), [7u8; 16]).unwrap();
    std::fs::write(dir.join("good.key"), [7u8; 128]).unwrap();
    let keydir = dir.display().to_string();
    STARTUP_REFUSALS
        .iter()
        .map(|&(name, totem, node1, nodes, message)| {
            let text = format!(
                "totem {{\n    version: 2\n    cluster_name: refused\n    {totem}\n}}\n\
                 nodelist {{\n    node {{\n        {node1}\n        name: node1\n        ring0_addr: 127.0.0.1\n    }}\n{nodes}}}\n\
                 quorum {{\n    provider: corosync_votequorum\n}}\nlogging {{\n    to_stderr: yes\n    to_syslog: no\n}}\n"
            );
            let path = dir.join(format!("{name}.conf"));
            std::fs::write(&path, text.replace("KEYDIR", &keydir)).unwrap();
            (path, message.replace("KEYDIR", &keydir))
        })
        .collect()
}

#[test]
fn files_corosync_refuses_at_start_are_refused_with_its_message() {
    let dir = scratch("startup");
    for (path, message) in write_startup_files(&dir) {
        assert_eq!(serve_error(&path), message, "{}", path.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs corosync (tests/run-all)"]
fn start_up_refusals_are_corosyncs_own() {
    let dir = scratch("startup-t");
    for (path, _) in write_startup_files(&dir) {
        let theirs = corosync_refusal(&path);
        // `DATE error   [MAIN  ] MESSAGE`, before `Corosync Cluster Engine exiting ...`.
        let theirs = theirs
            .lines()
            .filter(|l| !l.contains("Corosync Cluster Engine exiting"))
            .find_map(|l| l.split_once("] ").map(|(_, m)| m.trim_end()))
            .unwrap_or_default();
        assert_eq!(serve_error(&path), theirs, "{}", path.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_fifo_directory_or_device_is_refused_without_waiting() {
    let dir = scratch("special");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo.conf");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // corosync blocks on the FIFO until a writer comes; nothing writes to this one.
    for (path, kind) in [
        (fifo.as_path(), "a FIFO"),
        (dir.as_path(), "a directory"),
        (Path::new("/dev/null"), "a character device"),
    ] {
        assert_eq!(
            serve_error(path),
            format!("Can't read file {}: it is {kind}, not a regular file", path.display())
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
