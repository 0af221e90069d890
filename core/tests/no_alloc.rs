//! The codecs never allocate: a counting global allocator sees zero allocations on this
//! thread while messages of every kind are encoded and decoded.
//!
//! The count is per thread, so the test harness's own threads do not disturb it. Frames are
//! built (with allocations) before counting starts; only the codec calls are counted.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::hint::black_box;
use corowire::cmap::{self, GetReply, Key, Map, TrackEvent, TrackType, Value, ValueType};
use corowire::qb::{self, ConnectRequest, ConnectResponse, ConnectionType};
use corowire::votequorum::{
    self, InfoFlags, NodeEntry, NodeIds, NodeInfo, NodeList, NodeState, QdeviceName, RingId, TrackFlags,
};
use corowire::{frame_len, ring, CsError, SetupError};
use std::alloc::System;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the allocator may run while this thread's locals are being torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is exactly `System`'s; counting touches only a thread-local `Cell`
// and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; `ptr` came from `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[track_caller]
fn assert_no_alloc(what: &str, f: impl FnOnce()) {
    assert_eq!(allocations(f), 0, "{what} allocated");
}

#[test]
fn the_counter_counts() {
    // Guard against a test that passes because nothing is counted.
    assert!(allocations(|| drop(black_box(vec![1u8; 16]))) >= 1);
    assert!(allocations(|| drop(black_box(format!("{}", black_box(7))))) >= 1);
}

/// A 16-node quorum notification, as a client would receive it.
fn quorum_notification_16() -> Vec<u8> {
    let nodes: Vec<NodeEntry> = (1..=16).map(|i| NodeEntry { nodeid: i, state: NodeState::MEMBER }).collect();
    let n =
        votequorum::Notification::Quorum { quorate: true, context: 42, nodes: NodeList::from_slice(&nodes) };
    let mut buf = vec![0; n.encoded_len()];
    n.encode(&mut buf).unwrap();
    assert_eq!(buf.len(), 48 + 16 * 8);
    buf
}

fn getinfo_reply() -> Vec<u8> {
    let info = NodeInfo {
        nodeid: 1,
        state: NodeState::MEMBER,
        votes: 1,
        expected_votes: 3,
        highest_expected: 3,
        total_votes: 3,
        quorum: 2,
        flags: InfoFlags::QUORATE,
        qdevice_votes: 0,
        qdevice_name: b"",
    };
    let r = votequorum::Reply { result: Ok(()), body: votequorum::Response::GetInfo(info) };
    let mut buf = vec![0; r.encoded_len()];
    r.encode(&mut buf).unwrap();
    assert_eq!(buf.len(), 320);
    buf
}

fn get_reply_16() -> Vec<u8> {
    let r = cmap::Reply {
        result: Ok(()),
        body: cmap::Response::Get(GetReply {
            value_type: Some(ValueType::Binary),
            value_len: 16,
            value: &[0xab; 16],
            buffer_len: 16,
        }),
    };
    let mut buf = vec![0; r.encoded_len()];
    r.encode(&mut buf).unwrap();
    buf
}

fn cmap_notification() -> Vec<u8> {
    let n = cmap::Notification {
        track_inst_handle: 9,
        key: Key::new(b"totem.cluster_name").unwrap(),
        event: TrackEvent::Modify,
        new_value: Some(Value::String(b"new-name")),
        old_value: Some(Value::String(b"debian")),
    };
    let mut buf = vec![0; n.encoded_len()];
    n.encode(&mut buf).unwrap();
    buf
}

#[test]
fn headline_paths_do_not_allocate() {
    let mut out = [0u8; 2048];
    let get_reply = get_reply_16();
    let notification = cmap_notification();
    let getinfo = getinfo_reply();
    let quorum = quorum_notification_16();

    assert_no_alloc("GET request encode", || {
        let req = cmap::Request::Get { key: Key::new(b"totem.cluster_name").unwrap(), value_len: 64 };
        black_box(req.encode(black_box(&mut out)).unwrap());
    });
    assert_no_alloc("GET reply decode", || {
        let r = cmap::Reply::decode(black_box(&get_reply)).unwrap();
        let cmap::Response::Get(g) = r.body else { panic!() };
        black_box(g.typed());
    });
    assert_no_alloc("CMAP notification decode", || {
        black_box(cmap::Notification::decode(black_box(&notification)).unwrap());
    });
    assert_no_alloc("votequorum GETINFO reply decode", || {
        black_box(votequorum::Reply::decode(black_box(&getinfo)).unwrap());
    });
    assert_no_alloc("16-node quorum notification decode", || {
        let n = votequorum::Notification::decode(black_box(&quorum)).unwrap();
        let votequorum::Notification::Quorum { nodes, .. } = n else { panic!() };
        assert_eq!(nodes.len(), 16);
        let sum: u32 = nodes.iter().map(|e| e.nodeid).sum();
        assert_eq!(sum, (1..=16).sum());
        black_box(nodes.iter().next_back());
    });
}

#[test]
fn every_cmap_message_is_allocation_free() {
    let k = Key::new(b"totem.cluster_name").unwrap();
    let requests = [
        cmap::Request::Set { key: k, value: Value::String(b"debian") },
        cmap::Request::Set { key: k, value: Value::Double(1.5) },
        cmap::Request::Delete { key: k },
        cmap::Request::Get { key: k, value_len: 0 },
        cmap::Request::AdjustInt { key: k, step: -1 },
        cmap::Request::IterInit { prefix: None },
        cmap::Request::IterNext { iter_handle: 1 },
        cmap::Request::IterFinalize { iter_handle: 1 },
        cmap::Request::TrackAdd { key: Some(k), track_type: TrackType::ALL, track_inst_handle: 2 },
        cmap::Request::TrackDelete { track_handle: 3 },
        cmap::Request::SetCurrentMap { map: Map::Stats },
    ];
    let replies = [
        cmap::Reply { result: Ok(()), body: cmap::Response::Set },
        cmap::Reply { result: Err(CsError::NotExist), body: cmap::Response::Delete },
        cmap::Reply { result: Ok(()), body: cmap::Response::IterInit { iter_handle: 4 } },
        cmap::Reply {
            result: Ok(()),
            body: cmap::Response::IterNext { key: k, value_len: 4, value_type: Some(ValueType::UInt32) },
        },
        cmap::Reply { result: Ok(()), body: cmap::Response::TrackAdd { track_handle: 5 } },
        cmap::Reply { result: Ok(()), body: cmap::Response::TrackDelete { track_inst_handle: 6 } },
        cmap::Reply { result: Err(CsError::Busy), body: cmap::Response::SetCurrentMap },
    ];
    let mut out = [0u8; 1024];
    for req in requests {
        let mut n = 0;
        assert_no_alloc("CMAP request encode", || n = req.encode(&mut out).unwrap());
        assert_no_alloc("CMAP request decode", || {
            black_box(cmap::Request::decode(&out[..n]).unwrap());
        });
    }
    for reply in replies {
        let mut n = 0;
        assert_no_alloc("CMAP reply encode", || n = reply.encode(&mut out).unwrap());
        assert_no_alloc("CMAP reply decode", || {
            black_box(cmap::Reply::decode(&out[..n]).unwrap());
        });
    }
    let notification = cmap_notification();
    assert_no_alloc("CMAP notification encode", || {
        let n = cmap::Notification::decode(&notification).unwrap();
        black_box(n.encode(&mut out).unwrap());
    });
    // Errors too: a failed decode or encode builds no message strings.
    assert_no_alloc("CMAP decode errors", || {
        black_box(cmap::Request::decode(&notification[..100]).unwrap_err());
        black_box(cmap::Reply::decode(&notification).unwrap_err());
        black_box(cmap::Notification::decode(&[0u8; 7]).unwrap_err());
        black_box(cmap::Request::Delete { key: k }.encode(&mut [0u8; 8]).unwrap_err());
    });
}

#[test]
fn every_votequorum_message_is_allocation_free() {
    let name = QdeviceName::new(b"qdevice").unwrap();
    let ring_id = RingId { nodeid: 1, seq: 5 };
    let requests = [
        votequorum::Request::GetInfo { nodeid: 0 },
        votequorum::Request::SetExpected { expected_votes: 3 },
        votequorum::Request::SetVotes { nodeid: 2, votes: 1 },
        votequorum::Request::TrackStart { context: 7, flags: TrackFlags::CURRENT | TrackFlags::CHANGES },
        votequorum::Request::TrackStop,
        votequorum::Request::QdeviceRegister { name },
        votequorum::Request::QdeviceUnregister { name },
        votequorum::Request::QdeviceUpdate { old_name: name, new_name: name },
        votequorum::Request::QdevicePoll { name, cast_vote: true, ring_id },
        votequorum::Request::QdeviceMasterWins { name, allow: false },
    ];
    let mut out = [0u8; 1024];
    for req in requests {
        let mut n = 0;
        assert_no_alloc("votequorum request encode", || n = req.encode(&mut out).unwrap());
        assert_no_alloc("votequorum request decode", || {
            black_box(votequorum::Request::decode(&out[..n]).unwrap());
        });
    }
    let getinfo = getinfo_reply();
    assert_no_alloc("votequorum reply encode", || {
        let r = votequorum::Reply::decode(&getinfo).unwrap();
        black_box(r.encode(&mut out).unwrap());
        let s = votequorum::Reply { result: Err(CsError::Exist), body: votequorum::Response::Status };
        black_box(s.encode(&mut out).unwrap());
    });
    let ids: Vec<u32> = (1..=16).collect();
    let nodes: Vec<NodeEntry> =
        ids.iter().map(|&nodeid| NodeEntry { nodeid, state: NodeState::DEAD }).collect();
    let notifications = [
        votequorum::Notification::Quorum { quorate: false, context: 1, nodes: NodeList::from_slice(&nodes) },
        votequorum::Notification::NodeList { context: 1, ring_id, nodes: NodeIds::from_slice(&ids) },
        votequorum::Notification::ExpectedVotes { context: 1, expected_votes: 3 },
    ];
    for n in notifications {
        let mut len = 0;
        assert_no_alloc("votequorum notification encode", || len = n.encode(&mut out).unwrap());
        assert_no_alloc("votequorum notification decode", || {
            let d = votequorum::Notification::decode(&out[..len]).unwrap();
            assert_eq!(d, n);
        });
    }
}

#[test]
fn handshake_and_ring_arithmetic_are_allocation_free() {
    let mut out = vec![0u8; qb::CONNECTION_RESPONSE_LEN];
    assert_no_alloc("connection request", || {
        let n = ConnectRequest::new(qb::DEFAULT_MAX_MSG_SIZE).encode(&mut out).unwrap();
        black_box(ConnectRequest::decode(&out[..n]).unwrap());
        black_box(frame_len(&out[..n], 16).unwrap());
    });
    assert_no_alloc("connection response", || {
        let r = ConnectResponse {
            connection_type: ConnectionType::Shm,
            max_msg_size: 1 << 20,
            connection: 1,
            request: b"/dev/shm/qb-1-2-3-abcdef/qb-request-cmap",
            response: b"/dev/shm/qb-1-2-3-abcdef/qb-response-cmap",
            event: b"/dev/shm/qb-1-2-3-abcdef/qb-event-cmap",
        };
        r.encode(&mut out).unwrap();
        assert_eq!(ConnectResponse::decode(&out).unwrap(), Ok(r));
        ConnectResponse::encode_error(SetupError { errno: 13 }, &mut out).unwrap();
        black_box(ConnectResponse::decode(&out).unwrap().unwrap_err());
        black_box(qb::encode_generic_reply(CsError::InvalidParam, &mut out).unwrap());
    });
    assert_no_alloc("ring arithmetic", || {
        let g = ring::Geometry::new((ring::data_bytes(1 << 20, 4096) / 4) as u32).unwrap();
        let p = g.next(black_box(263_160), 288).unwrap();
        black_box(g.payload_ranges(p, 288));
        black_box(g.fits(288, p, 3, false));
    });
}
