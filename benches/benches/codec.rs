//! Encode and decode costs of the messages a client handles most: one message per iteration
//! (`Throughput::Elements(1)`), so criterion reports the time per message.

#![allow(missing_docs)] // `criterion_group!` generates an undocumented public function.

use core::hint::black_box;
use corowire::cmap::{self, GetReply, Key, TrackEvent, Value, ValueType};
use corowire::votequorum::{self, InfoFlags, NodeEntry, NodeInfo, NodeList, NodeState};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn encoded(len: usize, f: impl FnOnce(&mut [u8]) -> Result<usize, corowire::EncodeError>) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    assert_eq!(f(&mut buf), Ok(len));
    buf
}

/// A GET reply carrying a 16-byte value (56 bytes).
fn get_reply_16() -> Vec<u8> {
    let r = cmap::Reply {
        result: Ok(()),
        body: cmap::Response::Get(GetReply {
            value_type: Some(ValueType::Binary),
            value_len: 16,
            value: b"0123456789abcdef",
            buffer_len: 16,
        }),
    };
    encoded(r.encoded_len(), |o| r.encode(o))
}

/// A MODIFY notification of `totem.cluster_name` with both string values (351 bytes).
fn cmap_notification() -> Vec<u8> {
    let n = cmap::Notification {
        track_inst_handle: 0xfeed,
        key: Key::new(b"totem.cluster_name").unwrap(),
        event: TrackEvent::Modify,
        new_value: Some(Value::String(b"new-name")),
        old_value: Some(Value::String(b"debian")),
    };
    encoded(n.encoded_len(), |o| n.encode(o))
}

/// A GETINFO reply (320 bytes).
fn getinfo_reply() -> Vec<u8> {
    let info = NodeInfo {
        nodeid: 1,
        state: NodeState::MEMBER,
        votes: 1,
        expected_votes: 16,
        highest_expected: 16,
        total_votes: 16,
        quorum: 9,
        flags: InfoFlags::QUORATE,
        qdevice_votes: 0,
        qdevice_name: b"",
    };
    let r = votequorum::Reply { result: Ok(()), body: votequorum::Response::GetInfo(info) };
    encoded(r.encoded_len(), |o| r.encode(o))
}

/// A quorum notification listing 16 nodes (176 bytes).
fn quorum_notification_16() -> Vec<u8> {
    let nodes: Vec<NodeEntry> =
        (1..=16).map(|nodeid| NodeEntry { nodeid, state: NodeState::MEMBER }).collect();
    let n =
        votequorum::Notification::Quorum { quorate: true, context: 42, nodes: NodeList::from_slice(&nodes) };
    encoded(n.encoded_len(), |o| n.encode(o))
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));

    let key = Key::new(b"totem.cluster_name").unwrap();
    let mut out = [0u8; 512];
    g.bench_function("cmap_get_request_encode", |b| {
        b.iter(|| {
            let req = cmap::Request::Get { key: black_box(key), value_len: black_box(64) };
            black_box(req.encode(black_box(&mut out)).unwrap())
        })
    });

    let frame = get_reply_16();
    g.bench_function("cmap_get_reply_decode_16b", |b| {
        b.iter(|| {
            let reply = cmap::Reply::decode(black_box(&frame)).unwrap();
            let cmap::Response::Get(get) = reply.body else { unreachable!() };
            black_box(get.typed())
        })
    });

    let frame = cmap_notification();
    g.bench_function("cmap_notification_decode", |b| {
        b.iter(|| black_box(cmap::Notification::decode(black_box(&frame)).unwrap()))
    });

    let frame = getinfo_reply();
    g.bench_function("votequorum_getinfo_decode", |b| {
        b.iter(|| black_box(votequorum::Reply::decode(black_box(&frame)).unwrap()))
    });

    let frame = quorum_notification_16();
    g.bench_function("votequorum_quorum_notification_16_decode", |b| {
        b.iter(|| black_box(votequorum::Notification::decode(black_box(&frame)).unwrap()))
    });
    g.bench_function("votequorum_quorum_notification_16_decode_and_walk", |b| {
        b.iter(|| {
            let n = votequorum::Notification::decode(black_box(&frame)).unwrap();
            let votequorum::Notification::Quorum { nodes, .. } = n else { unreachable!() };
            black_box(nodes.iter().map(|e| e.nodeid ^ e.state.0).fold(0, |a, x| a ^ x))
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
