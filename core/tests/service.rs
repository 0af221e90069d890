//! The `Service` plug-in contract of the two built-in client services: `encoded_len` is
//! exactly what `encode` writes, for every request kind (and, by proptest, for CMAP values and
//! qdevice names of every length), and every message implements `codec::Message`.

use corowire::cmap::{self, Key, Map, TrackType, Value};
use corowire::codec::Message;
use corowire::conn::{Cmap, Service, Votequorum};
use corowire::votequorum::{self as vq, QdeviceName, RingId, TrackFlags};
use corowire::{cfg, quorum, CsError};
use proptest::prelude::*;

/// Encodes `req` through the service into a buffer one byte larger than `encoded_len` says,
/// and checks the length encode reports, and that nothing was written after it.
fn check_len<S: Service>(req: &S::Request<'_>) -> usize {
    let len = S::encoded_len(req);
    let mut buf = vec![0xa5; len + 1];
    assert_eq!(S::encode(req, &mut buf), Ok(len));
    assert_eq!(buf[len], 0xa5, "wrote past encoded_len");
    len
}

fn cmap_requests<'a>(key: Key<'a>, value: Value<'a>) -> Vec<cmap::Request<'a>> {
    use cmap::Request::*;
    vec![
        Set { key, value },
        Delete { key },
        Get { key, value_len: 7 },
        AdjustInt { key, step: -1 },
        IterInit { prefix: None },
        IterNext { iter_handle: 1 },
        IterFinalize { iter_handle: 1 },
        TrackAdd { key: Some(key), track_type: TrackType::ALL, track_inst_handle: 3 },
        TrackDelete { track_handle: 4 },
        SetCurrentMap { map: Map::Stats },
    ]
}

fn votequorum_requests<'a>(name: QdeviceName<'a>) -> Vec<vq::Request<'a>> {
    use vq::Request::*;
    vec![
        GetInfo { nodeid: 1 },
        SetExpected { expected_votes: 2 },
        SetVotes { nodeid: 3, votes: 4 },
        TrackStart { context: 5, flags: TrackFlags::CHANGES },
        TrackStop,
        QdeviceRegister { name },
        QdeviceUnregister { name },
        QdeviceUpdate { old_name: name, new_name: name },
        QdevicePoll { name, cast_vote: true, ring_id: RingId { nodeid: 1, seq: 2 } },
        QdeviceMasterWins { name, allow: false },
    ]
}

#[test]
fn encoded_len_is_exact_for_every_request_kind() {
    let reqs = cmap_requests(Key::new(b"a.key").unwrap(), Value::String(b"value"));
    let kinds: Vec<i32> = reqs.iter().map(|r| <Cmap as Service>::kind(r) as i32).collect();
    assert_eq!(kinds, (0..10).collect::<Vec<_>>(), "every CMAP request kind, once");
    for r in &reqs {
        check_len::<Cmap>(r);
    }
    let reqs = votequorum_requests(QdeviceName::new(b"Qdev").unwrap());
    let kinds: Vec<i32> = reqs.iter().map(|r| Votequorum::kind(r) as i32).collect();
    assert_eq!(kinds, (0..10).collect::<Vec<_>>(), "every votequorum request kind, once");
    for r in &reqs {
        check_len::<Votequorum>(r);
    }
}

/// Fewer cases under miri, which runs each about a thousand times slower.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 });
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cmap_encoded_len_is_exact(
        name in proptest::collection::vec(1u8..=255, 1..=cmap::KEY_MAX_LEN),
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        wide in any::<u64>(),
    ) {
        let key = Key::new(&name).unwrap();
        for value in [Value::Binary(&bytes), Value::String(&bytes), Value::UInt64(wide), Value::Int8(wide as i8)] {
            for r in cmap_requests(key, value) {
                check_len::<Cmap>(&r);
            }
        }
    }

    #[test]
    fn votequorum_encoded_len_is_exact(name in proptest::collection::vec(1u8..=255, 1..=vq::QDEVICE_NAME_MAX_LEN)) {
        for r in votequorum_requests(QdeviceName::new(&name).unwrap()) {
            check_len::<Votequorum>(&r);
        }
    }
}

/// `Message` of one message: `encoded_len` is what `encode` writes, `id` is the id in the
/// written header, and decoding gives the message back.
fn check_message<'a, M: Message<'a> + PartialEq + core::fmt::Debug>(m: &M, buf: &'a mut Vec<u8>) {
    buf.resize(m.encoded_len() + 1, 0xa5);
    assert_eq!(m.encode(buf), Ok(m.encoded_len()));
    assert_eq!(buf[m.encoded_len()], 0xa5, "wrote past encoded_len");
    buf.truncate(m.encoded_len());
    assert_eq!(i32::from_ne_bytes(buf[..4].try_into().unwrap()), m.id());
    assert_eq!(M::decode(buf).as_ref(), Ok(m));
}

#[test]
fn every_reply_and_notification_is_a_message() {
    let key = Key::new(b"a.key").unwrap();
    let cmap_reply =
        cmap::Reply { result: Err(CsError::NotExist), body: cmap::Response::TrackAdd { track_handle: 9 } };
    check_message(&cmap_reply, &mut Vec::new());
    let note = cmap::Notification {
        track_inst_handle: 1,
        key,
        event: cmap::TrackEvent::Add,
        new_value: Some(Value::UInt8(1)),
        old_value: None,
    };
    check_message(&note, &mut Vec::new());
    check_message(&vq::Reply { result: Ok(()), body: vq::Response::Status }, &mut Vec::new());
    check_message(&vq::Notification::ExpectedVotes { context: 3, expected_votes: 2 }, &mut Vec::new());
    let members = [1, 2];
    let qnote =
        quorum::Notification { quorate: true, ring_seq: 4, members: quorum::NodeIds::from_slice(&members) };
    check_message(&qnote, &mut Vec::new());
    check_message(&quorum::Reply { result: Ok(()), body: quorum::Response::TrackStop }, &mut Vec::new());
    check_message(
        &cfg::Reply { result: Ok(()), body: cfg::Response::LocalGet { nodeid: 1 } },
        &mut Vec::new(),
    );
    check_message(&cfg::Request::LocalGet, &mut Vec::new());
}
