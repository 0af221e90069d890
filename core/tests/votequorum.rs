//! votequorum codec: golden frames from docs/protocol.md §6, round trips, and
//! robustness against arbitrary input.

use corowire::votequorum::{
    InfoFlags, NodeEntry, NodeIds, NodeInfo, NodeList, NodeState, Notification, QdeviceName, Reply, Request,
    RequestKind, Response, RingId, TrackFlags, NOTIFY_EXPECTED_VOTES, NOTIFY_NODELIST, NOTIFY_QUORUM,
    QDEVICE_NAME_MAX_LEN, RESPONSE_GETINFO, RESPONSE_STATUS,
};
use corowire::{CsError, DecodeError, EncodeError};
use proptest::prelude::*;

fn put32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn get32(buf: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap())
}

fn get64(buf: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap())
}

/// A response header: id @0, size @8, error @16.
fn res_header(buf: &mut [u8], id: i32, error: i32) {
    put32(buf, 0, id as u32);
    put32(buf, 8, buf.len() as u32);
    put32(buf, 16, error as u32);
}

fn encode_request(req: &Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; req.encoded_len()];
    assert_eq!(req.encode(&mut buf), Ok(buf.len()));
    buf
}

fn encode_reply(reply: &Reply<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; reply.encoded_len()];
    assert_eq!(reply.encode(&mut buf), Ok(buf.len()));
    buf
}

fn encode_notification(n: &Notification<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; n.encoded_len()];
    assert_eq!(n.encode(&mut buf), Ok(buf.len()));
    buf
}

const CONTEXT: u64 = 0x1122_3344_5566_7788;

// ---------------------------------------------------------------------------------------------
// Golden frames

#[test]
fn golden_getinfo_request() {
    let mut golden = [0u8; 24];
    put32(&mut golden, 0, 0); // id GETINFO
    put32(&mut golden, 8, 24); // size
    put32(&mut golden, 16, 0); // nodeid 0 = local
    let req = Request::GetInfo { nodeid: 0 };
    assert_eq!(req.kind(), RequestKind::GetInfo);
    assert_eq!(req.kind().response_id(), RESPONSE_GETINFO);
    assert_eq!(encode_request(&req), golden);
    assert_eq!(Request::decode(&golden), Ok(req));

    // nodeid is an i32 on the wire: bit-cast both ways.
    let req = Request::GetInfo { nodeid: 0xFFFF_FFFE };
    let buf = encode_request(&req);
    assert_eq!(i32::from_ne_bytes(buf[16..20].try_into().unwrap()), -2);
    assert_eq!(Request::decode(&buf), Ok(req));
}

fn golden_getinfo_reply() -> [u8; 320] {
    let mut g = [0u8; 320];
    res_header(&mut g, 1, 1);
    for (off, v) in [(24, 1), (28, 1), (32, 1), (36, 1), (40, 1), (44, 1), (48, 1), (52, 2), (56, 0)] {
        put32(&mut g, off, v);
    }
    g
}

fn single_node_info() -> NodeInfo<'static> {
    NodeInfo {
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
    }
}

#[test]
fn golden_getinfo_reply_single_node() {
    let golden = golden_getinfo_reply();
    let reply = Reply { result: Ok(()), body: Response::GetInfo(single_node_info()) };
    let buf = encode_reply(&reply);
    assert_eq!(buf.len(), 320);
    assert_eq!(buf[..], golden[..]);
    // Field by field.
    assert_eq!(get32(&buf, 0), 1);
    assert_eq!(get32(&buf, 8), 320);
    assert_eq!(get32(&buf, 16), 1);
    assert_eq!(get32(&buf, 24), 1, "nodeid");
    assert_eq!(get32(&buf, 28), 1, "state");
    assert_eq!(get32(&buf, 52), 2, "flags");
    assert_eq!(get32(&buf, 56), 0, "qdevice_votes");
    assert!(buf[60..].iter().all(|&b| b == 0), "qdevice_name and padding");

    let decoded = Reply::decode(&golden).unwrap();
    assert_eq!(decoded, reply);
    let Response::GetInfo(info) = decoded.body else { panic!("not getinfo") };
    assert!(info.flags.contains(InfoFlags::QUORATE));
    assert!(!info.flags.contains(InfoFlags::TWONODE));
    assert_eq!(info.state, NodeState::MEMBER);
}

#[test]
fn getinfo_reply_with_name_and_padding_garbage() {
    let mut g = golden_getinfo_reply();
    g[60..60 + 6].copy_from_slice(b"Device");
    g[66] = 0;
    g[67..].fill(0xEE); // after the NUL: ignored
    g[4..8].fill(0xEE); // header padding
    let reply = Reply::decode(&g).unwrap();
    let Response::GetInfo(info) = reply.body else { panic!() };
    assert_eq!(info.qdevice_name, b"Device");
}

#[test]
fn getinfo_error_reply_with_uninitialised_body_decodes() {
    let mut g = [0xABu8; 320];
    res_header(&mut g, 1, 12);
    let reply = Reply::decode(&g).unwrap();
    assert_eq!(reply.result, Err(CsError::NotExist));
    let Response::GetInfo(info) = reply.body else { panic!() };
    assert_eq!(info.nodeid, 0xABAB_ABAB);
    assert_eq!(info.qdevice_name.len(), 255, "no NUL: the whole field");
    // And the same reply encodes back to the same body, padding cleared.
    let buf = encode_reply(&reply);
    assert_eq!((get32(&buf, 0), get32(&buf, 8), get32(&buf, 16)), (1, 320, 12));
    assert_eq!(buf[4..8], [0; 4]);
    assert_eq!(buf[24..315], g[24..315]);
    assert_eq!(buf[315..], [0; 5]);
}

fn golden_nodelist() -> [u8; 60] {
    let mut g = [0u8; 60];
    res_header(&mut g, 5, 1);
    put64(&mut g, 24, CONTEXT);
    put32(&mut g, 32, 1); // ring_id.nodeid
    put64(&mut g, 40, 5); // ring_id.seq
    put32(&mut g, 48, 1); // node_list_entries
    put32(&mut g, 56, 1); // node 1
    g
}

#[test]
fn golden_nodelist_notification() {
    let golden = golden_nodelist();
    let ids = [1u32];
    let n = Notification::NodeList {
        context: CONTEXT,
        ring_id: RingId { nodeid: 1, seq: 5 },
        nodes: NodeIds::from_slice(&ids),
    };
    assert_eq!(n.id(), NOTIFY_NODELIST);
    let buf = encode_notification(&n);
    assert_eq!(buf.len(), 60);
    assert_eq!(buf[..], golden[..]);
    assert_eq!(get32(&buf, 0), 5);
    assert_eq!(get32(&buf, 8), 60);
    assert_eq!(get32(&buf, 16), 1);
    assert_eq!(get64(&buf, 24), CONTEXT);
    assert_eq!(get32(&buf, 32), 1);
    assert_eq!(get64(&buf, 40), 5);
    assert_eq!(get32(&buf, 48), 1);
    assert_eq!(get32(&buf, 56), 1);

    // corosync does not clear padding; it must be ignored.
    let mut dirty = golden;
    dirty[36..40].fill(0xEE);
    dirty[52..56].fill(0xEE);
    let decoded = Notification::decode(&dirty).unwrap();
    assert_eq!(decoded, n);
    let Notification::NodeList { nodes, .. } = decoded else { panic!() };
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes.get(0), Some(1));
    assert_eq!(nodes.get(1), None);
    assert_eq!(nodes.iter().collect::<Vec<_>>(), [1]);
    assert_eq!(format!("{nodes:?}"), "[1]");
}

fn golden_quorum() -> [u8; 56] {
    let mut g = [0u8; 56];
    res_header(&mut g, 3, 1);
    put32(&mut g, 24, 1); // quorate
    put64(&mut g, 32, CONTEXT);
    put32(&mut g, 40, 1); // node_list_entries
    put32(&mut g, 48, 1); // nodeid
    put32(&mut g, 52, 1); // state MEMBER
    g
}

#[test]
fn golden_quorum_notification() {
    let golden = golden_quorum();
    let entries = [NodeEntry { nodeid: 1, state: NodeState::MEMBER }];
    let n = Notification::Quorum { quorate: true, context: CONTEXT, nodes: NodeList::from_slice(&entries) };
    assert_eq!(n.id(), NOTIFY_QUORUM);
    let buf = encode_notification(&n);
    assert_eq!(buf.len(), 56);
    assert_eq!(buf[..], golden[..]);
    assert_eq!(get32(&buf, 0), 3);
    assert_eq!(get32(&buf, 8), 56);
    assert_eq!(get32(&buf, 16), 1);
    assert_eq!(get32(&buf, 24), 1);
    assert_eq!(get64(&buf, 32), CONTEXT);
    assert_eq!(get32(&buf, 40), 1);
    assert_eq!(get32(&buf, 48), 1);
    assert_eq!(get32(&buf, 52), 1);

    let mut dirty = golden;
    dirty[28..32].fill(0xEE);
    dirty[44..48].fill(0xEE);
    dirty[24] = 7; // any non-zero is quorate
    let decoded = Notification::decode(&dirty).unwrap();
    assert_eq!(decoded, n);
    let Notification::Quorum { nodes, .. } = decoded else { panic!() };
    assert_eq!(nodes.iter().len(), 1);
    assert_eq!(nodes.get(0), Some(entries[0]));
    assert_eq!(nodes.iter().rev().collect::<Vec<_>>(), entries);
}

#[test]
fn golden_expected_votes_notification() {
    let mut g = [0u8; 40];
    res_header(&mut g, 4, 1);
    put64(&mut g, 24, CONTEXT);
    put32(&mut g, 32, 3);
    let n = Notification::ExpectedVotes { context: CONTEXT, expected_votes: 3 };
    assert_eq!(n.id(), NOTIFY_EXPECTED_VOTES);
    assert_eq!(encode_notification(&n), g);
    assert_eq!(Notification::decode(&g), Ok(n));
}

#[test]
fn golden_status_reply() {
    let mut g = [0u8; 24];
    res_header(&mut g, 0, 14);
    let reply = Reply { result: Err(CsError::Exist), body: Response::Status };
    assert_eq!(reply.body.id(), RESPONSE_STATUS);
    assert_eq!(encode_reply(&reply), g);
    assert_eq!(Reply::decode(&g), Ok(reply));
}

#[test]
fn request_field_offsets() {
    let name = QdeviceName::new(b"Qdev").unwrap();
    let other = QdeviceName::new(b"New").unwrap();

    let buf = encode_request(&Request::SetVotes { nodeid: 7, votes: 3 });
    assert_eq!((buf.len(), get32(&buf, 0), get32(&buf, 8)), (24, 2, 24));
    assert_eq!((get32(&buf, 16), get32(&buf, 20)), (3, 7));

    let buf = encode_request(&Request::SetExpected { expected_votes: 9 });
    assert_eq!((buf.len(), get32(&buf, 0), get32(&buf, 16)), (24, 1, 9));

    let buf = encode_request(&Request::TrackStart {
        context: CONTEXT,
        flags: TrackFlags::CURRENT | TrackFlags::CHANGES,
    });
    assert_eq!((buf.len(), get32(&buf, 0), get64(&buf, 16), get32(&buf, 24)), (32, 3, CONTEXT, 3));

    let buf = encode_request(&Request::TrackStop);
    assert_eq!((buf.len(), get32(&buf, 0), get32(&buf, 8)), (16, 4, 16));

    for (req, id) in [(Request::QdeviceRegister { name }, 5), (Request::QdeviceUnregister { name }, 6)] {
        let buf = encode_request(&req);
        assert_eq!((buf.len(), get32(&buf, 0), get32(&buf, 8)), (272, id, 272));
        assert_eq!(&buf[16..21], b"Qdev\0");
    }

    let buf = encode_request(&Request::QdeviceUpdate { old_name: name, new_name: other });
    assert_eq!((buf.len(), get32(&buf, 0)), (528, 7));
    assert_eq!(&buf[16..21], b"Qdev\0");
    assert_eq!(&buf[271..275], b"New\0");

    let req = Request::QdevicePoll { name, cast_vote: true, ring_id: RingId { nodeid: 2, seq: 77 } };
    let buf = encode_request(&req);
    assert_eq!((buf.len(), get32(&buf, 0)), (296, 8));
    assert_eq!(&buf[16..21], b"Qdev\0");
    assert_eq!((get32(&buf, 272), get32(&buf, 280), get64(&buf, 288)), (1, 2, 77));

    let buf = encode_request(&Request::QdeviceMasterWins { name, allow: true });
    assert_eq!((buf.len(), get32(&buf, 0), get32(&buf, 272)), (280, 9, 1));

    // Any non-zero boolean decodes as true; padding is ignored.
    let mut poll = encode_request(&req);
    put32(&mut poll, 272, 0x8000_0000);
    poll[276..280].fill(0xEE);
    poll[284..288].fill(0xEE);
    assert_eq!(Request::decode(&poll), Ok(req));
}

// ---------------------------------------------------------------------------------------------
// Validation and errors

#[test]
fn qdevice_name_validation() {
    assert_eq!(QdeviceName::new(b""), Err(EncodeError::EmptyName));
    assert_eq!(QdeviceName::new(&[b'x'; 255]), Err(EncodeError::NameTooLong { len: 255, max: 254 }));
    assert_eq!(QdeviceName::new(b"a\0b"), Err(EncodeError::NulInName));
    let longest = [b'x'; QDEVICE_NAME_MAX_LEN];
    let name = QdeviceName::new(&longest).unwrap();
    assert_eq!(name.len(), 254);
    assert_eq!(QdeviceName::new(b"qd").unwrap().as_str(), Some("qd"));
    let buf = encode_request(&Request::QdeviceRegister { name });
    assert_eq!(buf[16 + 254], 0);
    assert_eq!(Request::decode(&buf), Ok(Request::QdeviceRegister { name }));
}

#[test]
fn unterminated_and_empty_request_names() {
    let name = QdeviceName::new(b"Qdev").unwrap();
    let mut buf = encode_request(&Request::QdeviceUpdate { old_name: name, new_name: name });
    buf[271..526].fill(b'x');
    assert_eq!(Request::decode(&buf), Err(DecodeError::Unterminated { field: "newname", offset: 271 }));
    buf[16..271].fill(b'x');
    assert_eq!(Request::decode(&buf), Err(DecodeError::Unterminated { field: "oldname", offset: 16 }));

    // corosync does not reject an empty name, and neither does the server-side decoder.
    let mut buf = encode_request(&Request::QdeviceUnregister { name });
    buf[16..20].fill(0);
    let Ok(Request::QdeviceUnregister { name }) = Request::decode(&buf) else { panic!() };
    assert!(name.is_empty());
}

#[test]
fn getinfo_reply_name_checks() {
    let long = [b'n'; 256];
    let mut info = single_node_info();
    info.qdevice_name = &long;
    let mut buf = [0x5Au8; 320];
    let reply = Reply { result: Ok(()), body: Response::GetInfo(info) };
    assert_eq!(reply.encode(&mut buf), Err(EncodeError::NameTooLong { len: 256, max: 255 }));
    info.qdevice_name = b"a\0";
    let reply = Reply { result: Ok(()), body: Response::GetInfo(info) };
    assert_eq!(reply.encode(&mut buf), Err(EncodeError::NulInName));
    assert!(buf.iter().all(|&b| b == 0x5A));
    // 255 bytes fill the field without a NUL and decode back whole.
    info.qdevice_name = &long[..255];
    let reply = Reply { result: Ok(()), body: Response::GetInfo(info) };
    assert_eq!(Reply::decode(&encode_reply(&reply)), Ok(reply));
}

#[test]
fn wrong_node_counts_are_rejected() {
    // Quorum: 48 + 8n.
    let mut g = golden_quorum();
    put32(&mut g, 40, 2);
    assert_eq!(
        Notification::decode(&g),
        Err(DecodeError::LengthOutOfBounds { field: "node_list_entries", offset: 40, len: 16, available: 8 })
    );
    put32(&mut g, 40, u32::MAX);
    assert_eq!(
        Notification::decode(&g),
        Err(DecodeError::LengthOutOfBounds {
            field: "node_list_entries",
            offset: 40,
            len: u64::from(u32::MAX) * 8,
            available: 8
        })
    );
    put32(&mut g, 40, 0);
    assert_eq!(Notification::decode(&g), Err(DecodeError::BadSize { id: 3, declared: 56, min: 48, max: 48 }));

    // Node list: 56 + 4n.
    let mut g = golden_nodelist();
    put32(&mut g, 48, 2);
    assert_eq!(
        Notification::decode(&g),
        Err(DecodeError::LengthOutOfBounds { field: "node_list_entries", offset: 48, len: 8, available: 4 })
    );
    put32(&mut g, 48, u32::MAX);
    assert!(matches!(
        Notification::decode(&g),
        Err(DecodeError::LengthOutOfBounds { field: "node_list_entries", offset: 48, .. })
    ));
    put32(&mut g, 48, 0);
    assert_eq!(Notification::decode(&g), Err(DecodeError::BadSize { id: 5, declared: 60, min: 56, max: 56 }));

    // A frame that ends inside a node entry.
    let mut g = [0u8; 52];
    res_header(&mut g, 3, 1);
    put32(&mut g, 40, 1);
    assert_eq!(
        Notification::decode(&g),
        Err(DecodeError::LengthOutOfBounds { field: "node_list_entries", offset: 40, len: 8, available: 4 })
    );
}

#[test]
fn ids_and_sizes() {
    // Notifications are not replies and vice versa.
    for id in [2, 3, 4, 5, 6, -1] {
        let mut g = [0u8; 24];
        res_header(&mut g, id, 1);
        assert_eq!(Reply::decode(&g), Err(DecodeError::UnknownId { id }));
    }
    for id in [0, 1, 2, 6] {
        let mut g = [0u8; 56];
        res_header(&mut g, id, 1);
        assert_eq!(Notification::decode(&g), Err(DecodeError::UnknownId { id }));
    }
    let mut g = [0u8; 16];
    put32(&mut g, 0, 10);
    put32(&mut g, 8, 16);
    assert_eq!(Request::decode(&g), Err(DecodeError::UnknownId { id: 10 }));
    assert_eq!(RequestKind::from_id(10), None);
    assert_eq!(RequestKind::from_id(-1), None);
    assert_eq!(RequestKind::from_id(9), Some(RequestKind::QdeviceMasterWins));
    for id in 1..10 {
        assert_eq!(RequestKind::from_id(id).unwrap().response_id(), RESPONSE_STATUS);
    }

    // GETINFO reply of the wrong size; status reply of the wrong size.
    let mut g = [0u8; 24];
    res_header(&mut g, 1, 1);
    assert_eq!(Reply::decode(&g), Err(DecodeError::BadSize { id: 1, declared: 24, min: 320, max: 320 }));
    let mut g = [0u8; 32];
    res_header(&mut g, 0, 1);
    assert_eq!(Reply::decode(&g), Err(DecodeError::BadSize { id: 0, declared: 32, min: 24, max: 24 }));
    // A request frame of the wrong size.
    let mut g = [0u8; 32];
    put32(&mut g, 0, 0);
    put32(&mut g, 8, 32);
    assert_eq!(Request::decode(&g), Err(DecodeError::BadSize { id: 0, declared: 32, min: 24, max: 24 }));
    // Truncated and over-long input.
    let golden = golden_quorum();
    assert!(matches!(Notification::decode(&golden[..50]), Err(DecodeError::Incomplete { needed: 56, .. })));
    let mut long = golden.to_vec();
    long.push(0);
    assert_eq!(Notification::decode(&long), Err(DecodeError::TrailingBytes { declared: 56, actual: 57 }));
}

#[test]
fn flags() {
    let f = TrackFlags::CURRENT | TrackFlags::CHANGES_ONLY;
    assert_eq!(f, TrackFlags(5));
    assert!(f.contains(TrackFlags::CURRENT));
    assert!(!f.contains(TrackFlags::CHANGES));
    let i = InfoFlags::QDEVICE_REGISTERED | InfoFlags::QDEVICE_MASTER_WINS;
    assert_eq!(i.0, 576);
    assert!(i.contains(InfoFlags::QDEVICE_MASTER_WINS) && !i.contains(InfoFlags::QDEVICE_ALIVE));
    assert_eq!((NodeState::MEMBER.0, NodeState::DEAD.0, NodeState::LEAVING.0), (1, 2, 3));
}

fn all_requests<'a>(name: QdeviceName<'a>, other: QdeviceName<'a>) -> Vec<Request<'a>> {
    vec![
        Request::GetInfo { nodeid: 1 },
        Request::SetExpected { expected_votes: 2 },
        Request::SetVotes { nodeid: 3, votes: 4 },
        Request::TrackStart { context: 5, flags: TrackFlags::CHANGES },
        Request::TrackStop,
        Request::QdeviceRegister { name },
        Request::QdeviceUnregister { name },
        Request::QdeviceUpdate { old_name: name, new_name: other },
        Request::QdevicePoll { name, cast_vote: false, ring_id: RingId { nodeid: 1, seq: 2 } },
        Request::QdeviceMasterWins { name, allow: true },
    ]
}

/// An encode call with its message bound.
type Encoder<'a> = Box<dyn Fn(&mut [u8]) -> Result<usize, EncodeError> + 'a>;

#[test]
fn too_small_buffers_are_untouched() {
    let name = QdeviceName::new(b"Qdev").unwrap();
    let other = QdeviceName::new(b"Other").unwrap();
    let entries = [NodeEntry { nodeid: 1, state: NodeState::MEMBER }; 3];
    let ids = [1, 2, 3];
    let mut cases: Vec<(usize, Encoder<'_>)> = Vec::new();
    for req in all_requests(name, other) {
        cases.push((req.encoded_len(), Box::new(move |b: &mut [u8]| req.encode(b))));
    }
    for reply in [
        Reply { result: Ok(()), body: Response::Status },
        Reply { result: Ok(()), body: Response::GetInfo(single_node_info()) },
    ] {
        cases.push((reply.encoded_len(), Box::new(move |b: &mut [u8]| reply.encode(b))));
    }
    for n in [
        Notification::Quorum { quorate: true, context: 1, nodes: NodeList::from_slice(&entries) },
        Notification::NodeList { context: 1, ring_id: RingId::default(), nodes: NodeIds::from_slice(&ids) },
        Notification::ExpectedVotes { context: 1, expected_votes: 2 },
    ] {
        cases.push((n.encoded_len(), Box::new(move |b: &mut [u8]| n.encode(b))));
    }
    for (len, encode) in &cases {
        for short in [0, 1, len / 2, len - 1] {
            let mut buf = vec![0x5Au8; short];
            assert_eq!(
                encode(&mut buf),
                Err(EncodeError::BufferTooSmall { required: *len, available: short })
            );
            assert!(buf.iter().all(|&b| b == 0x5A), "buffer of {short} touched");
        }
        // A larger buffer: only the message's bytes are written.
        let mut buf = vec![0x5Au8; len + 8];
        assert_eq!(encode(&mut buf), Ok(*len));
        assert!(buf[*len..].iter().all(|&b| b == 0x5A));
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests

fn name_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 1..=QDEVICE_NAME_MAX_LEN)
}

fn build_request<'a>(
    kind: u8,
    a: u32,
    b: u32,
    c: u64,
    flag: bool,
    n1: &'a [u8],
    n2: &'a [u8],
) -> Request<'a> {
    let name = QdeviceName::new(n1).unwrap();
    let other = QdeviceName::new(n2).unwrap();
    match kind {
        0 => Request::GetInfo { nodeid: a },
        1 => Request::SetExpected { expected_votes: a },
        2 => Request::SetVotes { nodeid: a, votes: b },
        3 => Request::TrackStart { context: c, flags: TrackFlags(a) },
        4 => Request::TrackStop,
        5 => Request::QdeviceRegister { name },
        6 => Request::QdeviceUnregister { name },
        7 => Request::QdeviceUpdate { old_name: name, new_name: other },
        8 => Request::QdevicePoll { name, cast_vote: flag, ring_id: RingId { nodeid: b, seq: c } },
        _ => Request::QdeviceMasterWins { name, allow: flag },
    }
}

fn result_of(raw: i32) -> Result<(), CsError> {
    CsError::check(raw)
}

/// Every kind of valid frame, for mutation.
fn valid_frames() -> Vec<Vec<u8>> {
    let name = QdeviceName::new(b"Qdev").unwrap();
    let other = QdeviceName::new(b"Other").unwrap();
    let mut frames: Vec<Vec<u8>> = all_requests(name, other).iter().map(encode_request).collect();
    frames.push(encode_reply(&Reply { result: Ok(()), body: Response::Status }));
    frames.push(golden_getinfo_reply().to_vec());
    frames.push(golden_quorum().to_vec());
    frames.push(golden_nodelist().to_vec());
    frames.push(encode_notification(&Notification::ExpectedVotes { context: 1, expected_votes: 2 }));
    frames
}

fn decode_all(buf: &[u8]) {
    let _ = Request::decode(buf);
    let _ = Reply::decode(buf);
    if let Ok(n) = Notification::decode(buf) {
        // Whatever decodes re-encodes to a frame of the same length that decodes the same.
        let out = encode_notification(&n);
        assert_eq!(out.len(), buf.len());
        assert_eq!(Notification::decode(&out), Ok(n));
        match n {
            Notification::Quorum { nodes, .. } => assert_eq!(nodes.iter().count(), nodes.len()),
            Notification::NodeList { nodes, .. } => assert_eq!(nodes.iter().count(), nodes.len()),
            Notification::ExpectedVotes { .. } => {}
        }
    }
}

proptest! {
    // Miri interprets every case; a handful still exercises each decoder's checks.
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

    #[test]
    fn request_round_trip(
        kind in 0u8..10,
        a in any::<u32>(),
        b in any::<u32>(),
        c in any::<u64>(),
        flag in any::<bool>(),
        n1 in name_bytes(),
        n2 in name_bytes(),
    ) {
        let req = build_request(kind, a, b, c, flag, &n1, &n2);
        prop_assert_eq!(req.kind() as u8, kind);
        let buf = encode_request(&req);
        prop_assert_eq!(get32(&buf, 8) as usize, buf.len());
        prop_assert_eq!(Request::decode(&buf), Ok(req));
    }

    #[test]
    fn reply_round_trip(
        raw_error in any::<i32>(),
        getinfo in any::<bool>(),
        fields in proptest::array::uniform9(any::<u32>()),
        name in proptest::collection::vec(1u8..=255, 0..=255),
    ) {
        let body = if getinfo {
            Response::GetInfo(NodeInfo {
                nodeid: fields[0],
                state: NodeState(fields[1]),
                votes: fields[2],
                expected_votes: fields[3],
                highest_expected: fields[4],
                total_votes: fields[5],
                quorum: fields[6],
                flags: InfoFlags(fields[7]),
                qdevice_votes: fields[8],
                qdevice_name: &name,
            })
        } else {
            Response::Status
        };
        let reply = Reply { result: result_of(raw_error), body };
        let buf = encode_reply(&reply);
        prop_assert_eq!(get32(&buf, 16) as i32, raw_error);
        prop_assert_eq!(Reply::decode(&buf), Ok(reply));
    }

    #[test]
    fn notification_round_trip(
        which in 0u8..3,
        flag in any::<bool>(),
        context in any::<u64>(),
        a in any::<u32>(),
        seq in any::<u64>(),
        entries in proptest::collection::vec((any::<u32>(), any::<u32>()), 0..64),
        ids in proptest::collection::vec(any::<u32>(), 0..64),
    ) {
        let entries: Vec<NodeEntry> =
            entries.into_iter().map(|(nodeid, s)| NodeEntry { nodeid, state: NodeState(s) }).collect();
        let n = match which {
            0 => Notification::Quorum { quorate: flag, context, nodes: NodeList::from_slice(&entries) },
            1 => Notification::NodeList {
                context,
                ring_id: RingId { nodeid: a, seq },
                nodes: NodeIds::from_slice(&ids),
            },
            _ => Notification::ExpectedVotes { context, expected_votes: a },
        };
        let buf = encode_notification(&n);
        let decoded = Notification::decode(&buf).unwrap();
        prop_assert_eq!(decoded, n);
        match decoded {
            Notification::Quorum { nodes, .. } => {
                prop_assert_eq!(buf.len(), 48 + 8 * entries.len());
                prop_assert_eq!(nodes.iter().collect::<Vec<_>>(), entries.clone());
                prop_assert_eq!(nodes.iter().rev().collect::<Vec<_>>(), entries.iter().rev().copied().collect::<Vec<_>>());
            }
            Notification::NodeList { nodes, .. } => {
                prop_assert_eq!(buf.len(), 56 + 4 * ids.len());
                prop_assert_eq!(nodes.iter().collect::<Vec<_>>(), ids.clone());
                prop_assert_eq!(nodes.iter().len(), ids.len());
            }
            Notification::ExpectedVotes { .. } => prop_assert_eq!(buf.len(), 40),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        decode_all(&bytes);
    }

    #[test]
    fn arbitrary_bytes_with_consistent_size_never_panic(
        id in -2i32..12,
        mut bytes in proptest::collection::vec(any::<u8>(), 24..700),
    ) {
        // Get past the framing checks so the body decoders see random contents.
        let len = bytes.len() as u32;
        put32(&mut bytes, 0, id as u32);
        put32(&mut bytes, 8, len);
        decode_all(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        resize in proptest::option::of(0usize..700),
        fix_size in any::<bool>(),
    ) {
        let frames = valid_frames();
        let mut buf = frames[pick.index(frames.len())].clone();
        for (at, byte) in edits {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        if let Some(len) = resize {
            buf.resize(len, 0xA5);
        }
        if fix_size && buf.len() >= 12 {
            let len = buf.len() as u32;
            put32(&mut buf, 8, len);
        }
        decode_all(&buf);
    }
}

#[test]
fn node_state_and_flags_read_as_corosync_quorumtool() {
    use corowire::votequorum::{InfoFlags, NodeState};
    assert_eq!(NodeState::MEMBER.to_string(), "Member");
    assert_eq!(NodeState::DEAD.to_string(), "Dead");
    assert_eq!(NodeState::LEAVING.to_string(), "Leaving");
    assert_eq!(NodeState(9).to_string(), "9");
    assert_eq!((InfoFlags::QUORATE | InfoFlags::WAIT_FOR_ALL).to_string(), "Quorate WaitForAll");
    assert_eq!(InfoFlags(0).to_string(), "");
    assert_eq!(
        InfoFlags(0x7ff).to_string(),
        "2Node Quorate WaitForAll LastManStanding AutoTieBreaker AllowDownscale Qdevice \
         QdeviceAlive QdeviceCastVote QdeviceMasterWins 0x400"
    );
    assert_eq!(InfoFlags(0x1000).to_string(), "0x1000");
    assert_eq!(InfoFlags::TWONODE.words().collect::<Vec<_>>(), ["2Node"]);
}

#[test]
fn debug_of_states_flags_and_ring_ids_is_readable() {
    use corowire::votequorum::{InfoFlags, NodeState, RingId};
    assert_eq!(format!("{:?}", NodeState::MEMBER), "Member");
    assert_eq!(format!("{:?}", NodeState(9)), "NodeState(9)");
    assert_eq!(format!("{:?}", InfoFlags::QUORATE | InfoFlags::WAIT_FOR_ALL), "Quorate|WaitForAll");
    assert_eq!(format!("{:?}", InfoFlags(0x402)), "Quorate|0x400");
    assert_eq!(format!("{:?}", InfoFlags(0)), "(empty)");
    // As corosync-quorumtool's `Ring ID:` line (CS_PRI_RING_ID, hex).
    assert_eq!(RingId { nodeid: 1, seq: 0x2c }.to_string(), "1.2c");
    assert_eq!(RingId { nodeid: 255, seq: 16 }.to_string(), "ff.10");
}
