//! `corowire serve --corosync-conf FILE` against corosync 3.1.7 itself.
//!
//! For every file in `tests/corosync_conf/` (the harness's one-node config, three nodes with
//! names, `two_node`, comments with `logger_subsys` and `uidgid`, two knet links, `udpu` with
//! four unnamed nodes, `logging_daemon` / per-link settings / `resources` / an unknown
//! section, no `quorum` section), the
//! listing `corosync-cmapctl` prints (`key (type) = value`) against a private corosync started
//! with that file (`tests/harness/with-corosync --conf FILE`) and against `corowire serve
//! --corosync-conf FILE` (in a private network namespace, under corosync's names) must be
//! the same, apart from live counters (`runtime.services.*`) and the keys other parts of
//! the server present (`runtime.votequorum.*`, `runtime.members.*`). Malformed files get
//! corosync's own error line (`corosync -t`). Those tests need root, corosync and `unshare`
//! (`tests/run-all` runs them); the error tests without corosync need nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corowire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_corowire"))
}

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
fn serve_error(path: &Path) -> String {
    let out = corowire()
        .args(["serve", "--name-prefix", &format!("conf-err-{}", std::process::id()), "--corosync-conf"])
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}: {}", path.display(), text(&out.stdout));
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
    ];
    for ((path, _), want) in write_bad_files(&dir).iter().zip(expected) {
        let message = serve_error(path);
        assert_eq!(message, format!("parser error: {}/{want}", dir.display()));
    }
    let missing = dir.join("absent.conf");
    assert!(serve_error(&missing).starts_with(&format!("Can't read file {}: ", missing.display())));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs corosync (tests/run-all)"]
fn malformed_files_get_corosyncs_own_words() {
    let dir = scratch("corosync-t");
    for (path, body) in write_bad_files(&dir) {
        let out = Command::new("corosync").arg("-t").arg("-c").arg(&path).output().expect("run corosync -t");
        assert!(!out.status.success(), "corosync -t accepted {body:?}");
        let theirs = text(&out.stderr);
        let theirs = theirs.lines().find(|l| l.starts_with("parser error: ")).unwrap_or_default();
        assert_eq!(serve_error(&path), theirs, "for {body:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
