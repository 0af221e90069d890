//! `ServerConfig::load_corosync_conf`: the server serves what a corosync.conf file says, as
//! the node the caller picks or the one whose address is local, through this crate's clients
//! (the files are `cli/tests/corosync_conf/`, whose key listings `cli/tests/corosync_conf.rs`
//! compares with corosync's own).

use std::path::PathBuf;

use corowire_unix::server::corosync_conf::ConfErrorKind;
use corowire_unix::server::{IpcType, ServerConfig};

#[allow(dead_code, reason = "shared support; this suite starts every server with a file")]
mod builtin;
use builtin::TestServer;

fn conf(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../cli/tests/corosync_conf").join(name)
}

#[test]
fn nodeid_makes_that_node_of_the_nodelist_the_local_one() {
    let server = TestServer::start_with("conf-node2", |cfg| {
        cfg.load_corosync_conf(&conf("three_nodes.conf"), Some(2)).unwrap();
    });
    let mut cmap = server.cmap();
    assert_eq!(cmap.get_u32("nodelist.local_node_pos").unwrap(), 1);
    assert_eq!(cmap.get_string("totem.interface.0.bindnetaddr").unwrap(), "127.0.0.2");
    assert_eq!(cmap.get_u32("runtime.votequorum.this_node_id").unwrap(), 2);
    // token 1000 and token_coefficient 0 for three nodes.
    assert_eq!(cmap.get_u32("runtime.config.totem.token").unwrap(), 1000);
    let info = server.votequorum().get_info(0).unwrap();
    // Node 2 ("beta") has quorum_votes: 2; the three nodes have four votes.
    assert_eq!((info.nodeid, info.votes, info.total_votes), (2, 2, 4));
}

#[test]
fn by_default_the_node_with_a_local_address_is_local() {
    let server = TestServer::start_with("conf-local", |cfg| {
        cfg.load_corosync_conf(&conf("links.conf"), None).unwrap();
    });
    let mut cmap = server.cmap();
    assert_eq!(cmap.get_u32("nodelist.local_node_pos").unwrap(), 0);
    assert_eq!(cmap.get_string("totem.interface.1.bindnetaddr").unwrap(), "127.0.1.1");
    assert_eq!(cmap.get_string("totem.cluster_name").unwrap(), "linked");
    assert_eq!(server.votequorum().get_info(0).unwrap().nodeid, 1);
}

#[test]
fn a_file_without_quorum_provider_serves_no_votequorum() {
    let mut cfg = ServerConfig::default();
    cfg.load_corosync_conf(&conf("no_quorum.conf"), None).unwrap();
    assert_eq!(cfg.votequorum_name, None);
    assert!(!cfg.initial.iter().any(|(k, _)| k.starts_with("quorum.")));
    let mut cfg = ServerConfig::default();
    cfg.load_corosync_conf(&conf("two_node.conf"), None).unwrap();
    assert!(cfg.votequorum_name.is_some());
}

#[test]
fn qb_ipc_type_chooses_the_transport() {
    let dir = std::env::temp_dir().join(format!("corowire-conf-ipc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("socket.conf");
    let nodelist = "nodelist {\n    node {\n        nodeid: 1\n        ring0_addr: 127.0.0.1\n    }\n}\n";
    let text = format!("totem {{\n    version: 2\n}}\n{nodelist}system {{\n    qb_ipc_type: socket\n}}\n");
    std::fs::write(&file, text).unwrap();
    let mut cfg = ServerConfig::default();
    cfg.load_corosync_conf(&file, None).unwrap();
    assert_eq!(cfg.transport, IpcType::Socket);
    cfg.load_corosync_conf(&conf("comments.conf"), None).unwrap();
    assert_eq!(cfg.transport, IpcType::Shm, "qb_ipc_type: native");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_nodeid_or_file_is_refused() {
    let mut cfg = ServerConfig::default();
    let err = cfg.load_corosync_conf(&conf("three_nodes.conf"), Some(9)).unwrap_err();
    assert_eq!((err.line, err.kind), (0, ConfErrorKind::UnknownNode(9)));
    let err = cfg.load_corosync_conf(&conf("absent.conf"), None).unwrap_err();
    assert!(matches!(err.kind, ConfErrorKind::Read(_)), "{err}");
}
