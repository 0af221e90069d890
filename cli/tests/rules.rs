//! votequorum's rules, `runtime.votequorum.*` and run-time `quorum.*` changes, seen through
//! the unmodified C tools: each case runs the same shell script (`corosync-quorumtool -s`,
//! `corosync-cmapctl -b runtime.votequorum`, `corosync-cmapctl quorum.`, run-time
//! `corosync-cmapctl -s/-d`, `corosync-quorumtool -e`) against a real corosync 3.1.7
//! (`tests/harness/with-corosync --sections`) and against `corowire serve --standard-names
//! --config` with the same configuration as keys (in private network and mount namespaces),
//! and compares the output without the `Date:` line.
//!
//! It needs root, `unshare`, corosync and its tools, so it is `#[ignore]`d in a plain
//! `cargo test` and run by `tests/run-all`:
//!
//! ```sh
//! cargo test --locked -p corowire-cli --test rules -- --ignored
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shell functions every case script may use; `show` prints what is compared.
const PRELUDE: &str = r#"
show() {
    corosync-quorumtool -s | grep -v '^Date:'
    echo "quorumtool status ${PIPESTATUS[0]}"
    corosync-cmapctl -b runtime.votequorum
    corosync-cmapctl quorum.
}
set_key() { corosync-cmapctl -s "$@" >/dev/null; sleep 0.5; }
del_key() { corosync-cmapctl -d "$1" >/dev/null; sleep 0.5; }
set_expected() { corosync-quorumtool -e "$1" 2>&1; echo "quorumtool -e $1 status $?"; sleep 0.5; }
"#;

/// Runs the server in private namespaces with `keys` and `script` next to it.
const SERVE: &str = r#"
mount -t tmpfs none /dev/shm && ip link set lo up || exit 125
"$COROWIRE_BIN" serve --standard-names --config "$1" >/dev/null 2>&1 & pid=$!
for _ in $(seq 100); do corosync-cmapctl -g totem.cluster_name >/dev/null 2>&1 && break; sleep 0.1; done
bash "$2"; rc=$?
kill "$pid"; wait "$pid"
exit $rc
"#;

/// One node, `node1` on 127.0.0.1, with `quorum` lines (corosync.conf syntax) and the same
/// as `(key, type, value)`; then `steps` (shell, using the prelude's functions).
struct Case {
    name: &'static str,
    quorum: &'static [(&'static str, &'static str, &'static str)],
    steps: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "expected_votes set and deleted at run time",
        quorum: &[],
        steps: "show; set_key quorum.expected_votes u32 3; show; del_key quorum.expected_votes; show; \
                set_key quorum.expected_votes u32 1; show",
    },
    Case {
        name: "two_node switches wait_for_all on; off at run time",
        quorum: &[("two_node", "u8", "1")],
        steps: "show; set_key quorum.two_node u8 0; show",
    },
    Case {
        name: "auto_tie_breaker dropped on one node",
        quorum: &[("auto_tie_breaker", "u8", "1")],
        steps: "show",
    },
    Case {
        name: "last_man_standing with wait_for_all, cancel_wait_for_all",
        quorum: &[
            ("last_man_standing", "u8", "1"),
            ("last_man_standing_window", "u32", "2000"),
            ("wait_for_all", "u8", "1"),
        ],
        steps: "show; set_key quorum.cancel_wait_for_all u8 1; show",
    },
    Case { name: "allow_downscale", quorum: &[("allow_downscale", "u8", "1")], steps: "show" },
    Case {
        name: "expected_votes past 8 bits and 2^31 at run time (C's wrap-around, uint8_t quorum)",
        quorum: &[],
        steps: "for v in 1000 1000000000 2147483647 2147483648 4294967293 4294967295; do \
                set_key quorum.expected_votes u32 $v; show; done",
    },
    Case {
        name: "expected_votes 2^32-1 in the file, then quorumtool -e",
        quorum: &[("expected_votes", "u32", "4294967295")],
        steps: "show; set_expected 1; show; set_expected 2147483648; show; set_expected 4294967295; show",
    },
    Case {
        name: "quorumtool -e below the total votes (one node with 3 votes)",
        quorum: &[],
        steps: "set_key nodelist.node.0.quorum_votes u32 3; show; set_expected 1; set_expected 2; \
                set_expected 3; show; set_expected 4; show",
    },
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cmd`, returns (status code, stdout); stderr is shown on failure.
fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !matches!(out.status.code(), Some(0 | 2)) {
        eprintln!("{:?} failed: {}\n{stdout}", cmd, String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code().unwrap_or(-1), stdout)
}

#[test]
#[ignore = "needs root, unshare and corosync: run by tests/run-all"]
fn c_tools_see_the_same_votequorum_rules() {
    let dir = std::env::temp_dir().join(format!("corowire-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let file = |ext: &str| dir.join(format!("case{i}.{ext}"));
        let quorum: String = case.quorum.iter().map(|(k, _, v)| format!("    {k}: {v}\n")).collect();
        let sections = format!(
            "nodelist {{\n    node {{\n        nodeid: 1\n        name: node1\n        ring0_addr: 127.0.0.1\n    }}\n}}\n\
             quorum {{\n    provider: corosync_votequorum\n{quorum}}}\n"
        );
        let keys_extra: String =
            case.quorum.iter().map(|(k, t, v)| format!("quorum.{k} {t} {v}\n")).collect();
        let keys = format!(
            "totem.cluster_name str corowire-test\nnodelist.node.0.nodeid u32 1\nnodelist.node.0.name str node1\n\
             nodelist.node.0.ring0_addr str 127.0.0.1\nquorum.provider str corosync_votequorum\n{keys_extra}"
        );
        std::fs::write(file("sections"), sections).unwrap();
        std::fs::write(file("keys"), keys).unwrap();
        std::fs::write(file("sh"), format!("{PRELUDE}\n{}\n", case.steps)).unwrap();
        std::fs::write(file("serve"), SERVE).unwrap();
        let real = run(Command::new(repo().join("tests/harness/with-corosync"))
            .arg("--sections")
            .arg(file("sections"))
            .args(["--", "bash"])
            .arg(file("sh")));
        let ours = run(Command::new("unshare")
            .args(["--net", "--mount", "--fork", "--", "bash"])
            .arg(file("serve"))
            .arg(file("keys"))
            .arg(file("sh"))
            .env("COROWIRE_BIN", env!("CARGO_BIN_EXE_corowire")));
        assert!(!real.1.is_empty() && real.0 == 0, "case '{}': the real daemon's run failed", case.name);
        if real != ours {
            failures.push(format!(
                "case '{}':\n--- corosync\n{}\n--- corowire serve\n{}",
                case.name, real.1, ours.1
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
