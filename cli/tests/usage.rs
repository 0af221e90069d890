//! `corowire --version` and `corowire --help`: the top-level help names every command, every
//! option each command's own help documents, `--json` and the environment variables.

use std::process::{Command, Output};

fn corowire(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corowire")).args(args).output().expect("run corowire")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn version_prints_name_and_version() {
    for flag in ["--version", "-V"] {
        let out = corowire(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert_eq!(stdout(&out), format!("corowire {}\n", env!("CARGO_PKG_VERSION")), "{flag}");
        assert!(out.stderr.is_empty(), "{flag}");
    }
}

/// The options a help text mentions: `-x` and `--word` tokens.
fn options_in(text: &str) -> Vec<String> {
    let mut found: Vec<String> = text
        .split(|c: char| c.is_whitespace() || "[]|(),=".contains(c))
        .map(|t| t.trim_end_matches(['.', ':']))
        .filter(|t| {
            let long = t
                .strip_prefix("--")
                .is_some_and(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
            let short = t.len() == 2 && t.starts_with('-') && t.as_bytes()[1].is_ascii_alphabetic();
            long || short
        })
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn help_lists_every_command_option_and_variable() {
    let help = corowire(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = stdout(&help);
    assert_eq!(stdout(&corowire(&["help"])), help);
    let words: Vec<&str> = help.split(|c: char| c.is_whitespace() || "[]|,".contains(c)).collect();
    for expected in [
        "cmap",
        "quorum",
        "demo",
        "serve",
        "--json",
        "--version",
        "COROWIRE_NAME_PREFIX=P",
        "COROWIRE_DEMO_BACKEND",
        "COROWIRE_TIMEOUT=SECS",
    ] {
        assert!(words.contains(&expected), "{expected:?} missing from:\n{help}");
    }
    // Every option a command's own help documents is in the top-level help.
    for (command, own_help) in [
        ("cmap", &["cmap", "-h"][..]),
        ("quorum", &["quorum", "-h"]),
        ("serve", &["serve", "--help"]),
        ("demo", &["demo", "--help"]),
    ] {
        let own = corowire(own_help);
        let own = format!("{}{}", stdout(&own), String::from_utf8_lossy(&own.stderr));
        let options = options_in(&own);
        assert!(options.len() >= 2, "{command}: no options found in:\n{own}");
        for option in options {
            assert!(words.contains(&option.as_str()), "{command} {option} missing from:\n{help}");
        }
    }
}

#[test]
fn no_command_says_one_is_missing() {
    let out = corowire(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("corowire: a command is missing"), "{stderr}");
    assert!(stderr.contains("usage: corowire <command>"), "{stderr}");
}

#[test]
fn help_names_every_demo_backend() {
    let help = stdout(&corowire(&["--help"]));
    let line = help.split("COROWIRE_DEMO_BACKEND").nth(1).expect("the variable is documented");
    for backend in ["builtin", "corosync", "auto"] {
        assert!(line.contains(backend), "{backend} missing from:\n{help}");
    }
}

#[test]
fn serve_says_which_node_it_serves_and_what_failed() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corosync_conf/three_nodes.conf");
    // The simulated cluster is built before anything listens: nothing is served.
    // A private prefix: should a check be lost, no standard name is taken.
    let prefix = format!("corowire-usage-{}", std::process::id());
    let out =
        corowire(&["serve", "--name-prefix", &prefix, "--corosync-conf", conf, "--nodeid", "2", "--up", "9"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("corowire serve: serving node 2, as --nodeid says\n"), "{err}");
    assert!(err.contains("corowire serve: simulated cluster: node 9 is not in the node list"), "{err}");
    assert!(!err.contains("configuration refused"), "{err}");
    // A quorum configuration corosync refuses: its message, once.
    let keys = std::env::temp_dir().join(format!("corowire-usage-{}.keys", std::process::id()));
    let text = "nodelist.node.0.nodeid u32 1\nquorum.provider str corosync_votequorum\n\
                quorum.auto_tie_breaker u8 1\nquorum.last_man_standing u8 1\n";
    std::fs::write(&keys, text).unwrap();
    let out = corowire(&["serve", "--name-prefix", &prefix, "--config", keys.to_str().unwrap()]);
    std::fs::remove_file(&keys).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let want = "corowire serve: configuration error: auto_tie_breaker & last_man_standing not available";
    assert!(out.status.code() == Some(1) && err.starts_with(want), "{err}");
}
