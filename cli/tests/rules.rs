//! votequorum's rules, `runtime.votequorum.*` and run-time `quorum.*` changes, seen through
//! the unmodified C tools: each case runs the same shell script (`corosync-quorumtool -s`,
//! `corosync-cmapctl -b runtime.votequorum`, `corosync-cmapctl quorum.`, run-time
//! `corosync-cmapctl -s/-d`, `corosync-quorumtool -e`; for the quorum device `tests/cluster/fake-qdevice.c`, a
//! libvotequorum device driven by commands, and `tests/cluster/vq-notify.c`, which prints the
//! libvotequorum and, with `--libquorum`, the libquorum notifications) against a real corosync 3.1.7 (`tests/harness/with-corosync --sections`) and
//! against `corowire serve --standard-names --up 1 --config` with the same configuration as keys
//! (in private network and mount namespaces), and compares the output without the `Date:`
//! line. Node 1 is the local node; the others of a case's nodelist are down (unreachable
//! addresses).
//!
//! It needs root, `unshare`, corosync and its tools, so it is `#[ignore]`d in a plain
//! `cargo test` and run by `tests/run-all`:
//!
//! ```sh
//! cargo test --locked -p corowire-cli --test rules -- --ignored
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/c_helpers.rs"]
mod c_helpers;

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
# qdev CMD...: one fake-qdevice session running the commands (each argument one line).
qdev() { printf '%s\n' "$@" | "$FAKE_QDEVICE"; sleep 0.3; }
# notify_start / notify_stop: vq-notify's lines (libvotequorum, then libquorum) between them.
notify_start() {
    mkfifo "$TMPDIR/vq.in" "$TMPDIR/q.in"
    "$VQ_NOTIFY" <"$TMPDIR/vq.in" >"$TMPDIR/vq.out" & "$VQ_NOTIFY" --libquorum <"$TMPDIR/q.in" >"$TMPDIR/q.out" &
    exec 3>"$TMPDIR/vq.in" 4>"$TMPDIR/q.in"; sleep 0.3
}
notify_stop() { exec 3>&- 4>&-; wait; cat "$TMPDIR/vq.out" "$TMPDIR/q.out"; }
"#;

/// Runs the server in private namespaces with `keys` and `script` next to it.
const SERVE: &str = r#"
mount -t tmpfs none /dev/shm && ip link set lo up || exit 125
"$COROWIRE_BIN" serve --standard-names --up 1 --config "$1" >/dev/null 2>&1 & pid=$!
for _ in $(seq 100); do corosync-cmapctl -g totem.cluster_name >/dev/null 2>&1 && break; sleep 0.1; done
bash "$2"; rc=$?
kill "$pid"; wait "$pid"
exit $rc
"#;

/// `nodes` nodes with `votes`, `node1` on 127.0.0.1 and the others down, with `quorum` keys as `(key
/// under quorum., type, value)` (keys under `device.` go into its `device { }` section); then
/// `steps` (shell, using the prelude's functions).
struct Case {
    name: &'static str,
    nodes: u32,
    /// Each node's `quorum_votes` in node order (as many as given; the others have none).
    votes: &'static [u32],
    quorum: &'static [(&'static str, &'static str, &'static str)],
    steps: &'static str,
}

/// A quorum device (votes computed) with a 2-second poll timeout.
const DEVICE: [(&str, &str, &str); 2] = [("device.model", "str", "net"), ("device.timeout", "u32", "2000")];

/// A device's life on node 1 alone of three: registered, casting its vote, master_wins,
/// silent past its timeout, unregistered; a registration refused under another name.
const DEVICE_LIFE: &str = "notify_start; show; qdev 'register qd' 'poll 1'; show; \
    qdev 'register other' 'register qd' 'poll 1' 'master_wins 1'; show; sleep 2.5; show; \
    qdev 'register qd' 'poll 0' 'unregister' 'unregister'; show; notify_stop";

const CASES: &[Case] = &[
    Case {
        name: "expected_votes set and deleted at run time",
        nodes: 1,
        votes: &[],
        quorum: &[],
        steps: "show; set_key quorum.expected_votes u32 3; show; del_key quorum.expected_votes; show; \
                set_key quorum.expected_votes u32 1; show",
    },
    Case {
        name: "two_node switches wait_for_all on; off and on again at run time",
        nodes: 1,
        votes: &[],
        quorum: &[("two_node", "u8", "1")],
        steps: "show; set_key quorum.two_node u8 0; show; set_key quorum.two_node u8 1; show",
    },
    Case {
        name: "auto_tie_breaker dropped on one node",
        nodes: 1,
        votes: &[],
        quorum: &[("auto_tie_breaker", "u8", "1")],
        steps: "show",
    },
    Case {
        name: "last_man_standing with wait_for_all, cancel_wait_for_all",
        nodes: 1,
        votes: &[],
        quorum: &[
            ("last_man_standing", "u8", "1"),
            ("last_man_standing_window", "u32", "2000"),
            ("wait_for_all", "u8", "1"),
        ],
        steps: "show; set_key quorum.cancel_wait_for_all u8 1; show",
    },
    Case {
        name: "allow_downscale",
        nodes: 1,
        votes: &[],
        quorum: &[("allow_downscale", "u8", "1")],
        steps: "show",
    },
    Case {
        name: "a quorum device's life, votes computed",
        nodes: 3,
        votes: &[],
        quorum: &DEVICE,
        steps: DEVICE_LIFE,
    },
    Case {
        name: "a quorum device with votes set",
        nodes: 3,
        votes: &[],
        quorum: &[("device.model", "str", "net"), ("device.votes", "u32", "1")],
        steps: "show; qdev 'register qd' 'poll 1'; show; corosync-quorumtool -f; echo \"-f status $?\"; show",
    },
    Case {
        name: "a quorum device on one node with votes set",
        nodes: 1,
        votes: &[],
        quorum: &[("device.model", "str", "net"), ("device.votes", "u32", "1")],
        steps: "show; qdev 'register qd' 'poll 1'; show",
    },
    Case {
        name: "a quorum device configured at run time, then two_node",
        nodes: 1,
        votes: &[],
        quorum: &[],
        steps: "qdev 'register early' 'poll 1'; show; set_key quorum.device.model str net; show; \
                set_key quorum.two_node u8 1; show",
    },
    Case {
        name: "expected_votes past 8 bits and 2^31 at run time (C's wrap-around, uint8_t quorum)",
        nodes: 1,
        votes: &[],
        quorum: &[],
        steps: "for v in 1000 1000000000 2147483647 2147483648 4294967293 4294967295; do \
                set_key quorum.expected_votes u32 $v; show; done",
    },
    Case {
        name: "expected_votes 2^32-1 in the file, then quorumtool -e",
        nodes: 1,
        votes: &[],
        quorum: &[("expected_votes", "u32", "4294967295")],
        steps: "show; set_expected 1; show; set_expected 2147483648; show; set_expected 4294967295; show",
    },
    Case {
        name: "every node with 0 votes (expected votes 0)",
        nodes: 2,
        votes: &[0, 0],
        quorum: &[],
        steps: "show",
    },
    Case {
        name: "node votes summing to 2^32 (expected votes wrap to 0)",
        nodes: 2,
        votes: &[1, 4294967295],
        quorum: &[],
        steps: "show",
    },
    Case {
        name: "quorumtool -e below the total votes (one node with 3 votes)",
        nodes: 1,
        votes: &[],
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
    c_helpers::build(&dir, "fake-qdevice", &["-lvotequorum", "-lcorosync_common"]);
    c_helpers::build(&dir, "vq-notify", &["-lvotequorum", "-lquorum"]);
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let file = |ext: &str| dir.join(format!("case{i}.{ext}"));
        let line = |(k, _, v): &&(&str, &str, &str)| format!("    {k}: {v}\n");
        let (device, quorum): (Vec<_>, Vec<_>) =
            case.quorum.iter().partition(|(k, _, _)| k.starts_with("device."));
        let quorum: String = quorum.iter().map(line).collect();
        let device: String = device.iter().map(|(k, t, v)| line(&&(&k["device.".len()..], *t, *v))).collect();
        let device = if device.is_empty() { device } else { format!("    device {{\n    {device}    }}\n") };
        let vote = |id: u32| usize::try_from(id - 1).ok().and_then(|i| case.votes.get(i));
        let addr = |id: u32| if id == 1 { "127.0.0.1".to_string() } else { format!("192.0.2.{id}") };
        let nodes: String = (1..=case.nodes)
            .map(|id| {
                let addr = addr(id);
                let votes = vote(id).map(|v| format!("        quorum_votes: {v}\n")).unwrap_or_default();
                format!("    node {{\n        nodeid: {id}\n        name: node{id}\n        ring0_addr: {addr}\n{votes}    }}\n")
            })
            .collect();
        let sections = format!(
            "nodelist {{\n{nodes}}}\nquorum {{\n    provider: corosync_votequorum\n{quorum}{device}}}\n"
        );
        let keys_extra: String =
            case.quorum.iter().map(|(k, t, v)| format!("quorum.{k} {t} {v}\n")).collect();
        let node_keys: String = (1..=case.nodes)
            .map(|id| {
                let (i, addr) = (id - 1, addr(id));
                let votes =
                    vote(id).map(|v| format!("nodelist.node.{i}.quorum_votes u32 {v}\n")).unwrap_or_default();
                format!(
                    "nodelist.node.{i}.nodeid u32 {id}\nnodelist.node.{i}.name str node{id}\n\
                     nodelist.node.{i}.ring0_addr str {addr}\n{votes}"
                )
            })
            .collect();
        let keys = format!(
            "totem.cluster_name str corowire-test\n{node_keys}quorum.provider str corosync_votequorum\n{keys_extra}"
        );
        std::fs::write(file("sections"), sections).unwrap();
        std::fs::write(file("keys"), keys).unwrap();
        std::fs::write(file("sh"), format!("{PRELUDE}\n{}\n", case.steps)).unwrap();
        std::fs::write(file("serve"), SERVE).unwrap();
        // Each side's scratch directory (the prelude's TMPDIR) and the helpers.
        let env = |cmd: &mut Command, side: &str| {
            let tmp = file(side);
            std::fs::create_dir_all(&tmp).unwrap();
            cmd.env("TMPDIR", tmp)
                .env("FAKE_QDEVICE", dir.join("fake-qdevice"))
                .env("VQ_NOTIFY", dir.join("vq-notify"));
        };
        let mut real = Command::new(repo().join("tests/harness/with-corosync"));
        real.arg("--sections").arg(file("sections")).args(["--", "bash"]).arg(file("sh"));
        env(&mut real, "real");
        let real = run(&mut real);
        let mut ours = Command::new("unshare");
        ours.args(["--net", "--mount", "--fork", "--", "bash"])
            .arg(file("serve"))
            .arg(file("keys"))
            .arg(file("sh"))
            .env("COROWIRE_BIN", env!("CARGO_BIN_EXE_corowire"));
        env(&mut ours, "ours");
        let ours = run(&mut ours);
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
