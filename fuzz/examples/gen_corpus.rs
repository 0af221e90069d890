//! Writes the seed corpus: valid frames of every kind, one file each, under
//! `corpus/<target>/<name>.bin`. Run it from `fuzz/` with `cargo run --example gen_corpus`;
//! it replaces the files it owns and leaves any others alone. The output is deterministic.

use core::net::{IpAddr, Ipv4Addr};
use corowire::cmap::{self, GetReply, Key, Map, TrackEvent, TrackType, Value, ValueType};
use corowire::qb::{self, ConnectRequest, ConnectResponse, ConnectionType};
use corowire::votequorum::{
    self, InfoFlags, NodeEntry, NodeIds, NodeInfo, NodeList, NodeState, QdeviceName, RingId, TrackFlags,
};
use corowire::{cfg, quorum};
use corowire::{CsError, EncodeError, SetupError};
use std::path::Path;

type Seed = (&'static str, Vec<u8>);

fn enc(len: usize, f: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    assert_eq!(f(&mut buf), Ok(len));
    buf
}

fn key(k: &'static [u8]) -> Key<'static> {
    Key::new(k).unwrap()
}

fn cmap_reply(result: Result<(), CsError>, body: cmap::Response<'_>) -> Vec<u8> {
    let r = cmap::Reply { result, body };
    enc(r.encoded_len(), |o| r.encode(o))
}

fn client_responses() -> Vec<Seed> {
    let get = |value_type, value_len, value: &'static [u8], buffer_len| {
        cmap::Response::Get(GetReply { value_type, value_len, value, buffer_len })
    };
    let k = key(b"totem.cluster_name");
    let info = NodeInfo {
        nodeid: 1,
        state: NodeState::MEMBER,
        votes: 1,
        expected_votes: 1,
        highest_expected: 1,
        total_votes: 1,
        quorum: 1,
        flags: InfoFlags::QUORATE,
        qdevice_votes: 0,
        qdevice_name: b"",
    };
    let qinfo = NodeInfo {
        flags: InfoFlags::QUORATE | InfoFlags::QDEVICE_REGISTERED | InfoFlags::QDEVICE_ALIVE,
        qdevice_votes: 1,
        qdevice_name: b"Qdevice",
        ..info
    };
    let vq = |r: votequorum::Reply<'_>| enc(r.encoded_len(), |o| r.encode(o));
    vec![
        ("cmap_set_ok", cmap_reply(Ok(()), cmap::Response::Set)),
        ("cmap_get_len_only", cmap_reply(Ok(()), get(Some(ValueType::String), 7, b"", 0))),
        ("cmap_get_debian", cmap_reply(Ok(()), get(Some(ValueType::String), 7, b"debian\0", 64))),
        ("cmap_get_u32", cmap_reply(Ok(()), get(Some(ValueType::UInt32), 4, &[0xb8, 0x0b, 0, 0], 4))),
        ("cmap_get_not_exist", cmap_reply(Err(CsError::NotExist), get(None, 0, b"", 0))),
        ("cmap_delete_access", cmap_reply(Err(CsError::Access), cmap::Response::Delete)),
        ("cmap_adjust_ok", cmap_reply(Ok(()), cmap::Response::AdjustInt)),
        (
            "cmap_iter_init",
            cmap_reply(Ok(()), cmap::Response::IterInit { iter_handle: 0x1682_9a12_0000_0000 }),
        ),
        (
            "cmap_iter_next",
            cmap_reply(
                Ok(()),
                cmap::Response::IterNext { key: k, value_len: 7, value_type: Some(ValueType::String) },
            ),
        ),
        (
            "cmap_iter_next_end",
            cmap_reply(
                Err(CsError::NoSections),
                cmap::Response::IterNext { key: key(b""), value_len: 0, value_type: None },
            ),
        ),
        ("cmap_iter_finalize", cmap_reply(Ok(()), cmap::Response::IterFinalize)),
        ("cmap_track_add", cmap_reply(Ok(()), cmap::Response::TrackAdd { track_handle: 1 })),
        ("cmap_track_delete", cmap_reply(Ok(()), cmap::Response::TrackDelete { track_inst_handle: 0xfeed })),
        ("cmap_set_current_map_busy", cmap_reply(Err(CsError::Busy), cmap::Response::SetCurrentMap)),
        ("generic_reject", enc(24, |o| qb::encode_generic_reply(CsError::InvalidParam, o))),
        ("vq_status_ok", vq(votequorum::Reply { result: Ok(()), body: votequorum::Response::Status })),
        ("vq_getinfo", vq(votequorum::Reply { result: Ok(()), body: votequorum::Response::GetInfo(info) })),
        (
            "vq_getinfo_qdevice",
            vq(votequorum::Reply { result: Ok(()), body: votequorum::Response::GetInfo(qinfo) }),
        ),
    ]
}

fn client_notifications() -> Vec<Seed> {
    let cmap_n = |event, new_value, old_value| {
        let n = cmap::Notification {
            track_inst_handle: 0xfeed,
            key: key(b"totem.cluster_name"),
            event,
            new_value,
            old_value,
        };
        enc(n.encoded_len(), |o| n.encode(o))
    };
    let vq = |n: votequorum::Notification<'_>| enc(n.encoded_len(), |o| n.encode(o));
    let nodes: Vec<NodeEntry> =
        (1..=16).map(|nodeid| NodeEntry { nodeid, state: NodeState::MEMBER }).collect();
    let one = [NodeEntry { nodeid: 1, state: NodeState::MEMBER }];
    let ids: Vec<u32> = (1..=16).collect();
    vec![
        ("cmap_add", cmap_n(TrackEvent::Add, Some(Value::String(b"debian")), None)),
        (
            "cmap_modify_unaligned",
            cmap_n(TrackEvent::Modify, Some(Value::UInt8(7)), Some(Value::UInt64(3000))),
        ),
        (
            "cmap_modify_strings",
            cmap_n(TrackEvent::Modify, Some(Value::String(b"abc")), Some(Value::String(b"debian"))),
        ),
        ("cmap_delete", cmap_n(TrackEvent::Delete, None, Some(Value::Double(-0.5)))),
        (
            "vq_quorum_1",
            vq(votequorum::Notification::Quorum {
                quorate: true,
                context: 0,
                nodes: NodeList::from_slice(&one),
            }),
        ),
        (
            "vq_quorum_16",
            vq(votequorum::Notification::Quorum {
                quorate: true,
                context: 42,
                nodes: NodeList::from_slice(&nodes),
            }),
        ),
        (
            "vq_nodelist",
            vq(votequorum::Notification::NodeList {
                context: 42,
                ring_id: RingId { nodeid: 1, seq: 5 },
                nodes: NodeIds::from_slice(&ids[..3]),
            }),
        ),
        ("vq_expected_votes", vq(votequorum::Notification::ExpectedVotes { context: 42, expected_votes: 3 })),
    ]
}

fn setup_responses() -> Vec<Seed> {
    let ok = ConnectResponse {
        connection_type: ConnectionType::Shm,
        max_msg_size: qb::DEFAULT_MAX_MSG_SIZE,
        connection: 0x5555_0000_1000,
        request: b"/dev/shm/qb-1234-5678-29-Ab3dEf/qb-request-cmap",
        response: b"/dev/shm/qb-1234-5678-29-Ab3dEf/qb-response-cmap",
        event: b"/dev/shm/qb-1234-5678-29-Ab3dEf/qb-event-cmap",
    };
    let socket = ConnectResponse {
        connection_type: ConnectionType::Socket,
        max_msg_size: 12_328,
        connection: 0,
        request: b"/dev/shm/qb-1-2-3-xyzxyz/qb-control-votequorum",
        response: b"/dev/shm/qb-1-2-3-xyzxyz/qb-votequorum",
        event: b"",
    };
    let len = qb::CONNECTION_RESPONSE_LEN;
    vec![
        ("connect_shm", enc(len, |o| ok.encode(o))),
        ("connect_socket", enc(len, |o| socket.encode(o))),
        ("connect_eacces", enc(len, |o| ConnectResponse::encode_error(SetupError { errno: 13 }, o))),
        (
            "connect_header_only",
            enc(len, |o| ConnectResponse::encode_error(SetupError { errno: 11 }, o))[..24].to_vec(),
        ),
    ]
}

fn server_requests() -> Vec<Seed> {
    let k = key(b"totem.cluster_name");
    let cm = |r: cmap::Request<'_>| enc(r.encoded_len(), |o| r.encode(o));
    let vq = |r: votequorum::Request<'_>| enc(r.encoded_len(), |o| r.encode(o));
    let name = QdeviceName::new(b"Qdevice").unwrap();
    vec![
        ("connect_request_1m", enc(24, |o| ConnectRequest::new(qb::DEFAULT_MAX_MSG_SIZE).encode(o))),
        ("cmap_set_string", cm(cmap::Request::Set { key: k, value: Value::String(b"debian") })),
        ("cmap_set_u32", cm(cmap::Request::Set { key: key(b"totem.token"), value: Value::UInt32(3000) })),
        (
            "cmap_set_binary",
            cm(cmap::Request::Set { key: key(b"test.bin"), value: Value::Binary(&[0, 1, 2]) }),
        ),
        ("cmap_delete", cm(cmap::Request::Delete { key: k })),
        ("cmap_get", cm(cmap::Request::Get { key: k, value_len: 64 })),
        ("cmap_adjust_int", cm(cmap::Request::AdjustInt { key: key(b"test.counter"), step: -1 })),
        ("cmap_iter_init", cm(cmap::Request::IterInit { prefix: Some(key(b"totem.")) })),
        ("cmap_iter_init_all", cm(cmap::Request::IterInit { prefix: None })),
        ("cmap_iter_next", cm(cmap::Request::IterNext { iter_handle: 0x1682_9a12_0000_0000 })),
        ("cmap_iter_finalize", cm(cmap::Request::IterFinalize { iter_handle: 0x1682_9a12_0000_0000 })),
        (
            "cmap_track_add",
            cm(cmap::Request::TrackAdd {
                key: Some(key(b"totem.")),
                track_type: TrackType::ADD | TrackType::MODIFY | TrackType::DELETE | TrackType::PREFIX,
                track_inst_handle: 0xfeed,
            }),
        ),
        ("cmap_track_delete", cm(cmap::Request::TrackDelete { track_handle: 1 })),
        ("cmap_set_current_map", cm(cmap::Request::SetCurrentMap { map: Map::Stats })),
        ("vq_getinfo", vq(votequorum::Request::GetInfo { nodeid: 0 })),
        ("vq_setexpected", vq(votequorum::Request::SetExpected { expected_votes: 3 })),
        ("vq_setvotes", vq(votequorum::Request::SetVotes { nodeid: 2, votes: 1 })),
        (
            "vq_trackstart",
            vq(votequorum::Request::TrackStart {
                context: 42,
                flags: TrackFlags::CURRENT | TrackFlags::CHANGES,
            }),
        ),
        ("vq_trackstop", vq(votequorum::Request::TrackStop)),
        ("vq_qdevice_register", vq(votequorum::Request::QdeviceRegister { name })),
        ("vq_qdevice_unregister", vq(votequorum::Request::QdeviceUnregister { name })),
        (
            "vq_qdevice_update",
            vq(votequorum::Request::QdeviceUpdate {
                old_name: name,
                new_name: QdeviceName::new(b"Qnew").unwrap(),
            }),
        ),
        (
            "vq_qdevice_poll",
            vq(votequorum::Request::QdevicePoll {
                name,
                cast_vote: true,
                ring_id: RingId { nodeid: 1, seq: 5 },
            }),
        ),
        ("vq_qdevice_master_wins", vq(votequorum::Request::QdeviceMasterWins { name, allow: true })),
    ]
}

/// Replies of the quorum and cfg services (what corosync-quorumtool reads).
fn quorum_cfg_replies() -> Vec<Seed> {
    let q = |body| {
        let r = quorum::Reply { result: Ok(()), body };
        enc(r.encoded_len(), |o| r.encode(o))
    };
    let addrs = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let c = |result, body| {
        let r = cfg::Reply { result, body };
        enc(r.encoded_len(), |o| r.encode(o))
    };
    vec![
        ("quorum_getquorate", q(quorum::Response::GetQuorate { quorate: true })),
        ("quorum_gettype", q(quorum::Response::GetType { quorum_type: 1 })),
        ("quorum_trackstart", q(quorum::Response::TrackStart)),
        (
            "cfg_node_addrs",
            c(Ok(()), cfg::Response::GetNodeAddrs(cfg::NodeAddrs::from_slice(&addrs).unwrap())),
        ),
        ("cfg_local_get", c(Ok(()), cfg::Response::LocalGet { nodeid: 1 })),
        ("cfg_tryshutdown_busy", c(Err(CsError::Busy), cfg::Response::TryShutdown)),
    ]
}

/// The quorum service's view-list notification.
fn quorum_notifications() -> Vec<Seed> {
    let ids = [1, 2, 3];
    let n = quorum::Notification { quorate: true, ring_seq: 5, members: NodeIds::from_slice(&ids) };
    let t = cfg::Notification { status: Ok(()), flags: cfg::SHUTDOWN_FLAG_REGARDLESS };
    vec![
        ("quorum_view_3", enc(n.encoded_len(), |o| n.encode(o))),
        ("cfg_testshutdown", enc(t.encoded_len(), |o| t.encode(o))),
    ]
}

/// Requests of the quorum and cfg services.
fn quorum_cfg_requests() -> Vec<Seed> {
    let q = |r: quorum::Request| enc(r.encoded_len(), |o| r.encode(o));
    let c = |r: cfg::Request| enc(r.encoded_len(), |o| r.encode(o));
    vec![
        ("quorum_gettype", q(quorum::Request::GetType)),
        ("quorum_trackstart", q(quorum::Request::TrackStart { flags: TrackFlags::CURRENT })),
        ("cfg_get_node_addrs", c(cfg::Request::GetNodeAddrs { nodeid: 1 })),
        ("cfg_trackstart", c(cfg::Request::TrackStart { flags: 0 })),
        ("cfg_tryshutdown", c(cfg::Request::TryShutdown { flags: cfg::SHUTDOWN_FLAG_REQUEST })),
        ("cfg_replytoshutdown", c(cfg::Request::ReplyToShutdown { response: 1 })),
    ]
}

/// The round-trip target gets one frame of each family.
fn roundtrips() -> Vec<Seed> {
    let pick = |seeds: Vec<Seed>, names: &[&str]| -> Vec<Seed> {
        seeds.into_iter().filter(|(n, _)| names.contains(n)).collect()
    };
    let mut seeds = pick(
        server_requests(),
        &["connect_request_1m", "cmap_set_string", "cmap_track_add", "vq_qdevice_poll"],
    );
    seeds.extend(pick(client_responses(), &["cmap_get_debian", "cmap_iter_next", "vq_getinfo"]));
    seeds.extend(pick(client_notifications(), &["cmap_modify_unaligned", "vq_quorum_16", "vq_nodelist"]));
    seeds.extend(pick(setup_responses(), &["connect_shm", "connect_eacces"]));
    seeds.extend(pick(quorum_cfg_replies(), &["quorum_getquorate", "cfg_node_addrs"]));
    seeds.extend(quorum_notifications());
    seeds.extend(pick(quorum_cfg_requests(), &["quorum_trackstart", "cfg_get_node_addrs"]));
    seeds
}

/// Stream framing seeds: a first byte that picks the maximum payload (`stream` target), then
/// a conversation of frames as each side sends it.
fn streams() -> Vec<Seed> {
    use corowire::stream::{Accept, Channel, Frame, Hello, Kind, Services, VERSION};
    let frames = |pick: u8, frames: &[Frame<'_>]| {
        let mut out = vec![pick];
        for f in frames {
            out.extend(enc(f.encoded_len(), |o| f.encode(o)));
        }
        out
    };
    let msg = |channel, kind, payload| Frame::Message { channel, kind, payload };
    let hello = Frame::Hello(Hello { version: VERSION, services: Services::ALL, max_payload: 1024 });
    let accept = Frame::Accept(Accept {
        version: VERSION,
        services: Services::ALL,
        max_payload: 1024,
        result: Ok(()),
    });
    let get = server_requests().into_iter().find(|(n, _)| *n == "cmap_get").expect("cmap_get seed").1;
    let reply = client_responses().into_iter().find(|(n, _)| *n == "cmap_get_debian").expect("reply seed").1;
    let note = client_notifications();
    let (event, vq_event) = (&note[0].1, &note[note.len() - 1].1);
    vec![
        ("client_side", frames(255, &[hello, msg(Channel::Cmap, Kind::Request, &get)])),
        (
            "gateway_side",
            frames(
                255,
                &[
                    accept,
                    msg(Channel::Cmap, Kind::Event, event),
                    msg(Channel::Cmap, Kind::Reply, &reply),
                    msg(Channel::Votequorum, Kind::Event, vq_event),
                    Frame::Reset(Channel::Votequorum.services()),
                ],
            ),
        ),
        (
            "refused",
            frames(
                0,
                &[Frame::Accept(Accept {
                    version: VERSION,
                    services: Services::NONE,
                    max_payload: 64,
                    result: Err(CsError::NotExist),
                })],
            ),
        ),
    ]
}

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let targets: [(&str, Vec<Seed>); 6] = [
        ("client_response", [client_responses(), quorum_cfg_replies()].concat()),
        ("client_notification", [client_notifications(), quorum_notifications()].concat()),
        ("setup_response", setup_responses()),
        ("server_request", [server_requests(), quorum_cfg_requests()].concat()),
        ("roundtrip", roundtrips()),
        ("stream", streams()),
    ];
    let mut total = 0;
    for (target, seeds) in targets {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(format!("{name}.bin")), bytes)?;
        }
        println!("{target}: {} seeds", seeds.len());
        total += seeds.len();
    }
    println!("{total} seeds in {}", root.display());
    Ok(())
}
