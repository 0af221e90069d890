//! libquorum and libcfg codecs: golden sizes and offsets (`ipc_quorum.h`, `ipc_cfg.h` of
//! corosync 3.1.7), round trips, and robustness against arbitrary input.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use corowire::cfg::{self, MixedFamilies, NodeAddrs};
use corowire::quorum::{self, NodeIds, Notification, TrackFlags};
use corowire::{CsError, DecodeError};
use proptest::prelude::*;

fn get32(buf: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap())
}

fn get64(buf: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap())
}

/// (id, size) of a request or response header, and a response's error.
fn header(buf: &[u8]) -> (u32, u32) {
    (get32(buf, 0), get32(buf, 8))
}

fn encode(f: impl Fn(&mut [u8]) -> Result<usize, corowire::EncodeError>) -> Vec<u8> {
    let mut buf = vec![0xAAu8; 512];
    let n = f(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

// ---------------------------------------------------------------------------------------------
// libquorum

#[test]
fn quorum_requests_have_corosyncs_sizes_and_ids() {
    let cases = [
        (quorum::Request::GetQuorate, 0, 16),
        (quorum::Request::TrackStart { flags: TrackFlags::CURRENT }, 1, 24),
        (quorum::Request::TrackStop, 2, 16),
        (quorum::Request::GetType, 3, 16),
    ];
    for (req, id, size) in cases {
        let buf = encode(|b| req.encode(b));
        assert_eq!(header(&buf), (id, size), "{req:?}");
        assert_eq!(req.encoded_len(), size as usize);
        assert_eq!(req.kind() as u32, id);
        assert_eq!(quorum::Request::decode(&buf), Ok(req));
    }
    let buf = encode(|b| quorum::Request::TrackStart { flags: TrackFlags(0x6) }.encode(b));
    assert_eq!(get32(&buf, 16), 6);
    assert_eq!(&buf[20..24], &[0; 4]);
}

#[test]
fn quorum_replies_have_corosyncs_sizes_and_ids() {
    let cases = [
        (quorum::Response::GetQuorate { quorate: true }, 0, 32, Some(1)),
        (quorum::Response::TrackStart, 1, 24, None),
        (quorum::Response::TrackStop, 2, 24, None),
        (quorum::Response::GetType { quorum_type: quorum::QUORUM_SET }, 4, 32, Some(1)),
    ];
    for (body, id, size, value) in cases {
        let reply = quorum::Reply { result: Ok(()), body };
        let buf = encode(|b| reply.encode(b));
        assert_eq!(header(&buf), (id, size), "{body:?}");
        assert_eq!(get32(&buf, 16), 1, "CS_OK");
        if let Some(v) = value {
            assert_eq!(get32(&buf, 24), v);
        }
        assert_eq!(reply.encoded_len(), size as usize);
        assert_eq!(quorum::Reply::decode(&buf), Ok(reply));
    }
    let reply = quorum::Reply { result: Err(CsError::Exist), body: quorum::Response::TrackStart };
    let buf = encode(|b| reply.encode(b));
    assert_eq!(get32(&buf, 16), 14, "CS_ERR_EXIST");
    assert_eq!(quorum::Reply::decode(&buf), Ok(reply));
}

#[test]
fn the_quorum_notification_puts_the_list_at_44_and_pads_4_bytes() {
    let ids = [1u32, 2, 7];
    let note = Notification { quorate: true, ring_seq: 0x1_0000_0005, members: NodeIds::from_slice(&ids) };
    let buf = encode(|b| note.encode(b));
    // sizeof(struct res_lib_quorum_notification) is 48; the list starts at 44.
    assert_eq!(header(&buf), (3, 48 + 4 * 3));
    assert_eq!(note.encoded_len(), buf.len());
    assert_eq!(get32(&buf, 24), 1);
    assert_eq!(get64(&buf, 32), 0x1_0000_0005);
    assert_eq!(get32(&buf, 40), 3);
    assert_eq!((get32(&buf, 44), get32(&buf, 48), get32(&buf, 52)), (1, 2, 7));
    assert_eq!(&buf[56..], &[0; 4]);
    let back = Notification::decode(&buf).unwrap();
    assert_eq!(back, note);
    assert_eq!(back.members.iter().collect::<Vec<_>>(), ids);

    let empty = Notification { quorate: false, ring_seq: 5, members: NodeIds::from_slice(&[]) };
    let buf = encode(|b| empty.encode(b));
    assert_eq!(header(&buf), (3, 48));
    assert_eq!(Notification::decode(&buf), Ok(empty));
}

#[test]
fn a_notification_without_its_padding_or_with_more_is_refused() {
    let ids = [1u32];
    let note = Notification { quorate: true, ring_seq: 5, members: NodeIds::from_slice(&ids) };
    let buf = encode(|b| note.encode(b));
    let mut short = buf[..buf.len() - 4].to_vec();
    let len = short.len() as u32;
    short[8..12].copy_from_slice(&len.to_ne_bytes());
    assert!(Notification::decode(&short).is_err());
    let mut long = buf.clone();
    long.extend_from_slice(&[0; 4]);
    let len = long.len() as u32;
    long[8..12].copy_from_slice(&len.to_ne_bytes());
    assert!(Notification::decode(&long).is_err());
}

#[test]
fn unknown_quorum_ids_are_reported() {
    let mut buf = encode(|b| quorum::Request::GetType.encode(b));
    buf[0..4].copy_from_slice(&4i32.to_ne_bytes());
    assert_eq!(quorum::Request::decode(&buf), Err(DecodeError::UnknownId { id: 4 }));
}

// ---------------------------------------------------------------------------------------------
// libcfg

#[test]
fn cfg_requests_have_corosyncs_sizes_and_ids() {
    let req = cfg::Request::GetNodeAddrs { nodeid: 0x0102_0304 };
    let buf = encode(|b| req.encode(b));
    assert_eq!(header(&buf), (5, 24));
    assert_eq!(get32(&buf, 16), 0x0102_0304);
    assert_eq!(cfg::Request::decode(&buf), Ok(req));

    let buf = encode(|b| cfg::Request::LocalGet.encode(b));
    assert_eq!(header(&buf), (6, 16));
    assert_eq!(cfg::Request::decode(&buf), Ok(cfg::Request::LocalGet));
}

#[test]
fn get_node_addrs_replies_hold_16_byte_addresses() {
    let addrs = [IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))];
    let reply = cfg::Reply {
        result: Ok(()),
        body: cfg::Response::GetNodeAddrs(NodeAddrs::from_slice(&addrs).unwrap()),
    };
    let buf = encode(|b| reply.encode(b));
    assert_eq!(header(&buf), (11, 32 + 2 * 16));
    assert_eq!(reply.encoded_len(), buf.len());
    assert_eq!((get32(&buf, 24), get32(&buf, 28)), (cfg::AF_INET, 2));
    assert_eq!(&buf[32..48], &[127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&buf[48..52], &[10, 1, 2, 3]);
    let back = cfg::Reply::decode(&buf).unwrap();
    assert_eq!(back, reply);
    let cfg::Response::GetNodeAddrs(list) = back.body else { panic!("{back:?}") };
    assert_eq!(list.iter().collect::<Vec<_>>(), addrs);

    let v6 = [IpAddr::V6(Ipv6Addr::LOCALHOST)];
    let reply =
        cfg::Reply { result: Ok(()), body: cfg::Response::GetNodeAddrs(NodeAddrs::from_slice(&v6).unwrap()) };
    let buf = encode(|b| reply.encode(b));
    assert_eq!((get32(&buf, 24), get32(&buf, 28)), (cfg::AF_INET6, 1));
    assert_eq!(buf[47], 1);
    assert_eq!(cfg::Reply::decode(&buf), Ok(reply));

    let none = cfg::Reply {
        result: Err(CsError::NotExist),
        body: cfg::Response::GetNodeAddrs(NodeAddrs::default()),
    };
    let buf = encode(|b| none.encode(b));
    assert_eq!(header(&buf), (11, 32));
    assert_eq!(get32(&buf, 16), 12, "CS_ERR_NOT_EXIST");
    assert_eq!(cfg::Reply::decode(&buf), Ok(none));
}

#[test]
fn mixed_families_cannot_be_listed() {
    let mixed = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    assert_eq!(NodeAddrs::from_slice(&mixed).err(), Some(MixedFamilies));
}

#[test]
fn local_get_reply() {
    let reply = cfg::Reply { result: Ok(()), body: cfg::Response::LocalGet { nodeid: 9 } };
    let buf = encode(|b| reply.encode(b));
    assert_eq!(header(&buf), (12, 32));
    assert_eq!(get32(&buf, 24), 9);
    assert_eq!(cfg::Reply::decode(&buf), Ok(reply));
}

#[test]
fn a_node_addrs_reply_must_hold_num_addrs_addresses() {
    let addrs = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let reply = cfg::Reply {
        result: Ok(()),
        body: cfg::Response::GetNodeAddrs(NodeAddrs::from_slice(&addrs).unwrap()),
    };
    let mut buf = encode(|b| reply.encode(b));
    buf[28..32].copy_from_slice(&2u32.to_ne_bytes());
    assert!(cfg::Reply::decode(&buf).is_err());
}

proptest! {
    // Miri interprets every case; a handful still exercises each decoder's checks.
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = quorum::Request::decode(&bytes);
        let _ = quorum::Reply::decode(&bytes);
        let _ = Notification::decode(&bytes);
        let _ = cfg::Request::decode(&bytes);
        let _ = cfg::Reply::decode(&bytes);
    }

    #[test]
    fn notifications_round_trip(quorate: bool, ring_seq: u64, ids in proptest::collection::vec(any::<u32>(), 0..32)) {
        let note = Notification { quorate, ring_seq, members: NodeIds::from_slice(&ids) };
        let buf = encode(|b| note.encode(b));
        prop_assert_eq!(Notification::decode(&buf), Ok(note));
    }

    #[test]
    fn node_addrs_round_trip(raw in proptest::collection::vec(any::<[u8; 4]>(), 0..8)) {
        let addrs: Vec<IpAddr> = raw.into_iter().map(|b| IpAddr::V4(Ipv4Addr::from(b))).collect();
        let reply = cfg::Reply { result: Ok(()), body: cfg::Response::GetNodeAddrs(NodeAddrs::from_slice(&addrs).unwrap()) };
        let buf = encode(|b| reply.encode(b));
        prop_assert_eq!(cfg::Reply::decode(&buf), Ok(reply));
    }
}

// ---------------------------------------------------------------------------------------------
// The engines

mod engines {
    use super::*;
    use corowire::server::cfg::CfgEngine;
    use corowire::server::cmap::CmapEngine;
    use corowire::server::quorum::QuorumLibEngine;
    use corowire::server::store::FixedStore;
    use corowire::server::votequorum::{QuorumConfig, QuorumEngine};
    use corowire::server::{ClusterView, ConnId, Engine};

    const C: ConnId = ConnId(4);

    /// One request to the libquorum engine, after it observed the view `vq` publishes (as an
    /// adapter does before every request).
    fn quorum_call(engine: &mut QuorumLibEngine, vq: &QuorumEngine, frame: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut view = ClusterView::default();
        vq.publish(&mut view);
        engine.observe(&view);
        let mut out = [0u8; 320];
        let n = engine.handle_request(C, frame, &mut out).unwrap();
        let mut notes = Vec::new();
        let mut buf = [0u8; 256];
        while let Some((conn, len)) = engine.poll_notification(&mut buf).unwrap() {
            assert_eq!(conn, C);
            notes.push(buf[..len].to_vec());
        }
        (out[..n].to_vec(), notes)
    }

    #[test]
    fn the_quorum_engine_reads_the_votequorum_model() {
        let vq: QuorumEngine =
            QuorumEngine::new(QuorumConfig { expected_votes: 3, ..QuorumConfig::default() });
        let mut engine: QuorumLibEngine = QuorumLibEngine::new(true);
        engine.connect(C).unwrap();
        let req = |r: quorum::Request| encode(|b| r.encode(b));

        let (reply, notes) = quorum_call(&mut engine, &vq, &req(quorum::Request::GetType));
        let body = quorum::Response::GetType { quorum_type: quorum::QUORUM_SET };
        assert_eq!(
            (quorum::Reply::decode(&reply), notes.len()),
            (Ok(quorum::Reply { result: Ok(()), body }), 0)
        );

        let (reply, _) = quorum_call(&mut engine, &vq, &req(quorum::Request::GetQuorate));
        assert_eq!(
            quorum::Reply::decode(&reply).unwrap().body,
            quorum::Response::GetQuorate { quorate: false }
        );

        let (reply, notes) =
            quorum_call(&mut engine, &vq, &req(quorum::Request::TrackStart { flags: TrackFlags::CHANGES }));
        assert_eq!(quorum::Reply::decode(&reply).unwrap().result, Ok(()));
        assert!(engine.is_tracking(C));
        let note = Notification::decode(&notes[0]).unwrap();
        assert_eq!(
            (note.quorate, note.ring_seq, note.members.iter().collect::<Vec<_>>()),
            (false, 5, vec![1])
        );

        // Tracking already on: the state again, then CS_ERR_EXIST.
        let (reply, notes) =
            quorum_call(&mut engine, &vq, &req(quorum::Request::TrackStart { flags: TrackFlags::CURRENT }));
        assert_eq!((quorum::Reply::decode(&reply).unwrap().result, notes.len()), (Err(CsError::Exist), 1));

        // TRACKSTOP answers CS_OK, tracking or not (as corosync does).
        for _ in 0..2 {
            let (reply, _) = quorum_call(&mut engine, &vq, &req(quorum::Request::TrackStop));
            assert_eq!(quorum::Reply::decode(&reply).unwrap().result, Ok(()));
        }
        assert!(!engine.is_tracking(C));
        engine.disconnect(C);
        assert!(!engine.is_connected(C));
    }

    #[test]
    fn every_engine_names_its_service_and_only_votequorum_publishes() {
        let mut cmap: CmapEngine<FixedStore<4, 256>> =
            CmapEngine::new(FixedStore::default(), FixedStore::default(), 1);
        let mut vq: QuorumEngine = QuorumEngine::new(QuorumConfig::default());
        let mut lib: QuorumLibEngine = QuorumLibEngine::new(true);
        let mut cfg: CfgEngine = CfgEngine::new(1);
        let engines: [&mut dyn Engine; 4] = [&mut cmap, &mut vq, &mut lib, &mut cfg];
        let names: Vec<&str> = engines.iter().map(|e| e.name()).collect();
        assert_eq!(names, ["cmap", "votequorum", "quorum", "cfg"]);
        let mut view = ClusterView::default();
        for (i, e) in engines.iter().enumerate() {
            e.publish(&mut view);
            let published = view != ClusterView::default();
            assert_eq!(published, i >= 1, "after {}", e.name());
        }
        assert_eq!((view.quorate, view.ring_id.seq, &view.members[..]), (true, 5, &[1][..]));
    }

    /// Without a quorum provider corosync's libquorum says quorate, with no members and ring
    /// sequence number 0, whatever votequorum's model would say (here: inquorate).
    #[test]
    fn without_a_provider_the_quorum_engine_is_quorate_with_no_members() {
        let vq: QuorumEngine =
            QuorumEngine::new(QuorumConfig { expected_votes: 3, ..QuorumConfig::default() });
        let mut engine: QuorumLibEngine = QuorumLibEngine::new(false);
        engine.connect(C).unwrap();
        let req = |r: quorum::Request| encode(|b| r.encode(b));
        let (reply, _) = quorum_call(&mut engine, &vq, &req(quorum::Request::GetQuorate));
        assert_eq!(
            quorum::Reply::decode(&reply).unwrap().body,
            quorum::Response::GetQuorate { quorate: true }
        );
        let (reply, notes) =
            quorum_call(&mut engine, &vq, &req(quorum::Request::TrackStart { flags: TrackFlags::CURRENT }));
        assert_eq!(quorum::Reply::decode(&reply).unwrap().result, Ok(()));
        let note = Notification::decode(&notes[0]).unwrap();
        assert_eq!((note.quorate, note.ring_seq, note.members.len()), (true, 0, 0));
    }

    #[test]
    fn the_quorum_engine_refuses_what_it_does_not_know() {
        let vq: QuorumEngine = QuorumEngine::new(QuorumConfig::default());
        let mut engine: QuorumLibEngine = QuorumLibEngine::new(false);
        engine.connect(C).unwrap();
        let mut frame = encode(|b| quorum::Request::GetType.encode(b));
        let (reply, _) = quorum_call(&mut engine, &vq, &frame);
        assert_eq!(
            quorum::Reply::decode(&reply).unwrap().body,
            quorum::Response::GetType { quorum_type: quorum::QUORUM_FREE }
        );
        // MODEL_GETTYPE: the generic 24-byte reply.
        frame[0..4].copy_from_slice(&4i32.to_ne_bytes());
        let (reply, _) = quorum_call(&mut engine, &vq, &frame);
        assert_eq!((header(&reply), get32(&reply, 16)), ((0, 24), 7), "CS_ERR_INVALID_PARAM");
        // A TRACKSTART without its flags: its own reply shape.
        frame[0..4].copy_from_slice(&1i32.to_ne_bytes());
        let (reply, notes) = quorum_call(&mut engine, &vq, &frame);
        assert_eq!((header(&reply), get32(&reply, 16), notes.len()), ((1, 24), 7, 0));
    }

    #[test]
    fn the_cfg_engine_answers_node_addresses_and_the_local_node() {
        let mut engine: CfgEngine = CfgEngine::new(1);
        engine.add_addr(1, IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        engine.add_addr(2, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))).unwrap();
        engine.add_addr(2, IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2))).unwrap();
        assert_eq!(engine.add_addr(2, IpAddr::V6(Ipv6Addr::LOCALHOST)), Err(CsError::InvalidParam));
        engine.connect(C).unwrap();
        let mut call = |r: cfg::Request| {
            let frame = encode(|b| r.encode(b));
            let mut out = [0u8; 320];
            let n = engine.handle_request(C, &frame, &mut out).unwrap();
            out[..n].to_vec()
        };
        let addrs_of = |buf: &[u8]| match cfg::Reply::decode(buf).unwrap() {
            cfg::Reply { result, body: cfg::Response::GetNodeAddrs(a) } => {
                (result, a.iter().collect::<Vec<_>>())
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            addrs_of(&call(cfg::Request::GetNodeAddrs { nodeid: 0 })),
            (Ok(()), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)])
        );
        let two = addrs_of(&call(cfg::Request::GetNodeAddrs { nodeid: 2 }));
        assert_eq!(two.1, [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2))]);
        let missing = call(cfg::Request::GetNodeAddrs { nodeid: 3 });
        assert_eq!((header(&missing), addrs_of(&missing)), ((11, 32), (Err(CsError::NotExist), vec![])));
        let local = call(cfg::Request::LocalGet);
        assert_eq!(cfg::Reply::decode(&local).unwrap().body, cfg::Response::LocalGet { nodeid: 1 });
    }
}

#[test]
fn the_generic_reply_to_an_unknown_request_decodes() {
    // What corosync (and our engines) answer to a cfg request they do not know: 24 bytes, id
    // 0, CS_ERR_INVALID_PARAM. It used to be refused as `UnknownId { id: 0 }`.
    let mut buf = [0u8; 24];
    let n = corowire::qb::encode_generic_reply(CsError::InvalidParam, &mut buf).unwrap();
    let reply = cfg::Reply::decode(&buf[..n]).unwrap();
    assert_eq!(reply, cfg::Reply { result: Err(CsError::InvalidParam), body: cfg::Response::Generic });
    let mut again = [0u8; 24];
    assert_eq!(reply.encode(&mut again), Ok(24));
    assert_eq!(again, buf);
    // Only the bare header: a longer id-0 frame is malformed.
    let mut long = [0u8; 28];
    long[..24].copy_from_slice(&buf);
    long[4..8].copy_from_slice(&28i32.to_ne_bytes());
    assert!(cfg::Reply::decode(&long).is_err());
}
