//! The sans-IO server engines, driven with frames from the client codecs and answered through
//! the client decoders.

use corowire::cmap::{self, Key, Map, Notification, TrackEvent, TrackType, Value, ValueType};
use corowire::qb::ReplyHeader;
use corowire::server::cmap::{CmapEngine, COROSYNC_READ_ONLY, STAT_IPCS_ACTIVE, STAT_IPCS_CLOSED};
use corowire::server::store::{FixedStore, Store};
use corowire::server::votequorum::{ConfigError, ConfigNote, DeviceConfig, QuorumConfig, QuorumEngine};
use corowire::server::{ConnId, ServerError, MIN_REPLY_LEN};
use corowire::votequorum::{self as vq, NodeEntry, NodeState, RingId, TrackFlags};
use corowire::CsError;
use proptest::prelude::*;

const C1: ConnId = ConnId(1);
const C2: ConnId = ConnId(2);

type Engine = CmapEngine<FixedStore<64, 32768>, 4, 2, 4, 16, 65536>;

fn engine() -> Engine {
    let mut e = Engine::new(FixedStore::new(), FixedStore::new(), 0xC0FFEE);
    e.connect(C1).unwrap();
    e
}

fn key(k: &[u8]) -> Key<'_> {
    Key::new(k).unwrap()
}

/// The reply bytes and the notifications (connection, bytes) queued by one request, in the
/// order the adapter must send them: notifications first.
struct Out {
    reply: Vec<u8>,
    events: Vec<(ConnId, Vec<u8>)>,
}

impl Out {
    fn reply(&self) -> cmap::Reply<'_> {
        cmap::Reply::decode(&self.reply).unwrap()
    }

    fn result(&self) -> Result<(), CsError> {
        self.reply().result
    }

    fn header(&self) -> ReplyHeader {
        ReplyHeader::decode(&self.reply).unwrap()
    }

    fn event(&self, i: usize) -> Notification<'_> {
        Notification::decode(&self.events[i].1).unwrap()
    }
}

fn send_frame(e: &mut Engine, conn: ConnId, frame: &[u8]) -> Out {
    let mut out = vec![0u8; 65536];
    let n = e.handle_request(conn, frame, &mut out).unwrap();
    out.truncate(n);
    let mut events = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Some((c, m)) = e.poll_notification(&mut buf).unwrap() {
        events.push((c, buf[..m].to_vec()));
    }
    Out { reply: out, events }
}

fn send(e: &mut Engine, conn: ConnId, req: &cmap::Request<'_>) -> Out {
    let mut frame = vec![0u8; req.encoded_len()];
    let n = req.encode(&mut frame).unwrap();
    send_frame(e, conn, &frame[..n])
}

fn set(e: &mut Engine, conn: ConnId, k: &[u8], value: Value<'_>) -> Out {
    send(e, conn, &cmap::Request::Set { key: key(k), value })
}

/// A SET frame built by hand: any type, length field and value bytes.
fn raw_set(k: &[u8], raw_type: u8, value_len: u64, bytes: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 296 + bytes.len()];
    f[0..4].copy_from_slice(&0i32.to_ne_bytes());
    let size = f.len() as i32;
    f[8..12].copy_from_slice(&size.to_ne_bytes());
    f[16..18].copy_from_slice(&(k.len() as u16).to_ne_bytes());
    f[24..24 + k.len()].copy_from_slice(k);
    f[280..288].copy_from_slice(&value_len.to_ne_bytes());
    f[288] = raw_type;
    f[296..].copy_from_slice(bytes);
    f
}

fn get(e: &mut Engine, conn: ConnId, k: &[u8], value_len: u64) -> Out {
    send(e, conn, &cmap::Request::Get { key: key(k), value_len })
}

fn get_reply(out: &Out) -> cmap::GetReply<'_> {
    match out.reply().body {
        cmap::Response::Get(g) => g,
        other => panic!("not a GET reply: {other:?}"),
    }
}

fn get_value(e: &mut Engine, k: &[u8]) -> Vec<u8> {
    let out = get(e, C1, k, 1024);
    assert_eq!(out.result(), Ok(()));
    let g = get_reply(&out);
    g.value[..g.value_len as usize].to_vec()
}

// ---------------------------------------------------------------------------------------------
// SET / GET / DELETE

#[test]
fn set_then_get_roundtrip_and_get_buffer_rule() {
    let mut e = engine();
    assert_eq!(set(&mut e, C1, b"a.u32", Value::UInt32(0xdead_beef)).result(), Ok(()));
    assert_eq!(e.get(b"a.u32"), Some(Value::UInt32(0xdead_beef)));

    // value_len 0: 40 bytes with the length and the type only.
    let out = get(&mut e, C1, b"a.u32", 0);
    assert_eq!(out.reply.len(), 40);
    let g = get_reply(&out);
    assert_eq!((g.value_len, g.value_type, g.value), (4, Some(ValueType::UInt32), &[][..]));

    // A larger buffer: 40 + requested bytes, the value then zeros.
    let out = get(&mut e, C1, b"a.u32", 64);
    assert_eq!(out.reply.len(), 104);
    assert_eq!(out.header().size, 104);
    assert_eq!(&out.reply[40..44], &0xdead_beefu32.to_ne_bytes());
    assert!(out.reply[44..].iter().all(|&b| b == 0));

    // An exact buffer decodes to the typed value.
    let out = get(&mut e, C1, b"a.u32", 4);
    assert_eq!(get_reply(&out).typed(), Some(Value::UInt32(0xdead_beef)));

    // Too small a buffer: INVALID_PARAM in a 40-byte reply.
    let out = get(&mut e, C1, b"a.u32", 3);
    assert_eq!((out.result(), out.reply.len()), (Err(CsError::InvalidParam), 40));

    // Missing: NOT_EXIST, 40 bytes, zeroed fields.
    let out = get(&mut e, C1, b"no.such.key", 16);
    assert_eq!((out.result(), out.reply.len()), (Err(CsError::NotExist), 40));
    assert_eq!(get_reply(&out), cmap::GetReply::default());
}

#[test]
fn get_larger_than_the_reply_buffer_is_no_memory() {
    let mut e = engine();
    set(&mut e, C1, b"a.b", Value::UInt8(1));
    let mut frame = [0u8; 288];
    let n = cmap::Request::Get { key: key(b"a.b"), value_len: 1 << 40 }.encode(&mut frame).unwrap();
    let mut out = [0u8; 1024];
    let m = e.handle_request(C1, &frame[..n], &mut out).unwrap();
    assert_eq!(m, 40);
    assert_eq!(cmap::Reply::decode(&out[..m]).unwrap().result, Err(CsError::NoMemory));
}

#[test]
fn reply_buffer_must_hold_min_reply_len() {
    let mut e = engine();
    let mut frame = [0u8; 288];
    let n = cmap::Request::Get { key: key(b"a.b"), value_len: 0 }.encode(&mut frame).unwrap();
    let mut small = [0u8; MIN_REPLY_LEN - 1];
    assert_eq!(
        e.handle_request(C1, &frame[..n], &mut small),
        Err(ServerError::BufferTooSmall { required: MIN_REPLY_LEN, available: MIN_REPLY_LEN - 1 })
    );
    assert_eq!(
        e.handle_request(ConnId(9), &frame[..n], &mut [0u8; 512]),
        Err(ServerError::UnknownConnection(ConnId(9)))
    );
}

#[test]
fn set_checks_run_in_corosyncs_order() {
    let mut e = engine();
    e.set_initial(b"runtime.config.totem.token", Value::UInt32(1000)).unwrap();

    // 1. read-only wins over everything, even a malformed value.
    let r = send_frame(&mut e, C1, &raw_set(b"runtime.config.totem.token", 6, 2, &[1, 2])).result();
    assert_eq!(r, Err(CsError::Access));
    assert_eq!(
        set(&mut e, C1, b"runtime.config.totem.token", Value::UInt32(5)).result(),
        Err(CsError::Access)
    );
    // 2. value_len > 16384.
    let big = vec![7u8; 16385];
    assert_eq!(set(&mut e, C1, b"a.big", Value::Binary(&big)).result(), Err(CsError::InvalidParam));
    assert_eq!(set(&mut e, C1, b"a.big", Value::Binary(&big[..16384])).result(), Ok(()));
    // 3. a fixed-size type with another length (a 2-byte UINT32), before the name check.
    assert_eq!(
        send_frame(&mut e, C1, &raw_set(b"a.u32", 6, 2, &[1, 2])).result(),
        Err(CsError::InvalidParam)
    );
    assert_eq!(send_frame(&mut e, C1, &raw_set(b"x!", 6, 2, &[1, 2])).result(), Err(CsError::InvalidParam));
    // 4. a STRING longer than strlen + 1.
    assert_eq!(
        send_frame(&mut e, C1, &raw_set(b"a.s", 11, 5, b"he\0lo")).result(),
        Err(CsError::InvalidParam)
    );
    // 5. invalid new names: corosync-cmapctl -s x! u8 1 → CS_ERR_NAME_TOO_LONG (also "xy").
    for bad in [&b"x!"[..], b"xy", b"a b", b"caf\xc3\xa9"] {
        assert_eq!(set(&mut e, C1, bad, Value::UInt8(1)).result(), Err(CsError::NameTooLong), "{bad:?}");
    }
    assert_eq!(set(&mut e, C1, b"abc", Value::UInt8(1)).result(), Ok(()));
    let long = vec![b'k'; 255];
    assert_eq!(set(&mut e, C1, &long, Value::UInt8(1)).result(), Ok(()));
    // A value past the end of the frame.
    assert_eq!(send_frame(&mut e, C1, &raw_set(b"a.s", 12, 10, b"abc")).result(), Err(CsError::InvalidParam));
}

#[test]
fn read_only_rules_are_corosyncs_and_configurable() {
    let mut e = engine();
    for k in [
        &b"runtime.config.totem.token"[..],
        b"internal_configuration.service.0.name",
        b"runtime.services.cmap.service_id",
        b"nodelist.local_node_pos",
        b"nodelist.foo",
        b"totem.cluster_name",
        b"config.totemconfig_reload_in_progress",
        b"quorum.wait_for_all",
        b"runtime.totem.x",
    ] {
        assert!(e.is_read_only(k), "{k:?}");
        assert_eq!(set(&mut e, C1, k, Value::UInt8(1)).result(), Err(CsError::Access), "{k:?}");
    }
    // Writable in the daemon: totem.token, runtime.foo, resources.*, uidgid.uid.0, and stats.*
    // keys of the default map.
    for k in [
        &b"totem.token"[..],
        b"runtime.foo",
        b"resources.watchdog_timeout",
        b"uidgid.uid.0",
        STAT_IPCS_ACTIVE,
    ] {
        assert_eq!(set(&mut e, C1, k, Value::UInt32(5)).result(), Ok(()), "{k:?}");
    }
    e.set_initial(b"totem.cluster_name", Value::String(b"test")).unwrap();
    assert_eq!(
        send(&mut e, C1, &cmap::Request::Delete { key: key(b"totem.cluster_name") }).result(),
        Err(CsError::Access)
    );
    assert_eq!(
        send(&mut e, C1, &cmap::Request::AdjustInt { key: key(b"nodelist.local_node_pos"), step: 1 })
            .result(),
        Err(CsError::Access)
    );
    e.set_read_only(&[]);
    assert_eq!(set(&mut e, C1, b"totem.cluster_name", Value::String(b"other")).result(), Ok(()));
    e.set_read_only(COROSYNC_READ_ONLY);
    assert!(e.is_read_only(b"totem.cluster_name"));
}

#[test]
fn strings_are_stored_with_one_final_nul() {
    let mut e = engine();
    // libcmap sends strlen bytes without the NUL...
    assert_eq!(send_frame(&mut e, C1, &raw_set(b"a.s", 11, 5, b"hello")).result(), Ok(()));
    assert_eq!(get_value(&mut e, b"a.s"), b"hello\0");
    assert_eq!(get_reply(&get(&mut e, C1, b"a.s", 0)).value_len, 6);
    // ...and the NUL inside value_len gives the same value (so no event: identical).
    let id = track(&mut e, C1, Some(b"a.s"), TrackType::MODIFY, 77);
    let out = send_frame(&mut e, C1, &raw_set(b"a.s", 11, 6, b"hello\0"));
    assert_eq!((out.result(), out.events.len()), (Ok(()), 0));
    // A shorter value_len cuts the string and still ends it with a NUL.
    let out = send_frame(&mut e, C1, &raw_set(b"a.s", 11, 3, b"hello"));
    assert_eq!(out.result(), Ok(()));
    assert_eq!(get_value(&mut e, b"a.s"), b"hel\0");
    assert_eq!(out.event(0).new_value, Some(Value::String(b"hel")));
    assert_eq!(out.event(0).old_value, Some(Value::String(b"hello")));
    assert_eq!(&out.events[0].1[336..], b"hel\0hello\0");
    // The empty string is one NUL.
    assert_eq!(set(&mut e, C1, b"a.s", Value::String(b"")).result(), Ok(()));
    assert_eq!(get_value(&mut e, b"a.s"), b"\0");
    untrack(&mut e, C1, id);
    // corowire's form (value_len = strlen, the NUL after it) of the longest string corosync
    // accepts: stored as 16385 bytes. One more character is refused.
    let mut long = vec![b'l'; cmap::VALUE_MAX_LEN];
    assert_eq!(set(&mut e, C1, b"a.s", Value::String(&long)).result(), Ok(()));
    let g = get(&mut e, C1, b"a.s", cmap::STORED_MAX_LEN as u64);
    let r = get_reply(&g);
    assert_eq!(r.value_len, cmap::STORED_MAX_LEN as u64);
    assert_eq!(&r.value[..cmap::STORED_MAX_LEN], [&long[..], b"\0"].concat());
    long.push(b'l');
    assert_eq!(set(&mut e, C1, b"a.s", Value::String(&long)).result(), Err(CsError::InvalidParam));
}

#[test]
fn type_change_is_a_modify_and_identical_value_is_silent() {
    let mut e = engine();
    let _ = track(&mut e, C1, Some(b"a.u8"), TrackType::ALL, 1);
    let out = set(&mut e, C1, b"a.u8", Value::UInt8(255));
    assert_eq!(out.event(0).event, TrackEvent::Add);
    let out = set(&mut e, C1, b"a.u8", Value::UInt8(255));
    assert_eq!((out.result(), out.events.len()), (Ok(()), 0));
    // `corosync-cmapctl -s a.u8 u16 255` after `u8 255` changes the type.
    let out = set(&mut e, C1, b"a.u8", Value::UInt16(255));
    assert_eq!(out.events.len(), 1);
    let n = out.event(0);
    assert_eq!(
        (n.event, n.new_value, n.old_value),
        (TrackEvent::Modify, Some(Value::UInt16(255)), Some(Value::UInt8(255)))
    );
}

#[test]
fn delete_rules() {
    let mut e = engine();
    assert_eq!(
        send(&mut e, C1, &cmap::Request::Delete { key: key(b"no.such") }).result(),
        Err(CsError::NotExist)
    );
    set(&mut e, C1, b"a.b", Value::Int64(-3));
    let out = send(&mut e, C1, &cmap::Request::Delete { key: key(b"a.b") });
    assert_eq!((out.result(), out.reply.len()), (Ok(()), 24));
    assert_eq!(e.get(b"a.b"), None);
    assert_eq!(
        send(&mut e, C1, &cmap::Request::Delete { key: key(b"a.b") }).result(),
        Err(CsError::NotExist)
    );
}

// ---------------------------------------------------------------------------------------------
// ADJUST_INT

#[test]
fn adjust_int_wraps_on_every_integer_type() {
    let mut e = engine();
    let cases: [(Value<'static>, i32, Value<'static>); 9] = [
        (Value::UInt8(255), 1, Value::UInt8(0)),
        (Value::Int8(127), 1, Value::Int8(-128)),
        (Value::UInt16(0), -1, Value::UInt16(u16::MAX)),
        (Value::Int16(-32768), -1, Value::Int16(32767)),
        (Value::UInt32(u32::MAX), 2, Value::UInt32(1)),
        (Value::Int32(5), -10, Value::Int32(-5)),
        (Value::UInt64(0), -1, Value::UInt64(u64::MAX)),
        (Value::Int64(i64::MAX), 1, Value::Int64(i64::MIN)),
        (Value::UInt8(10), 300, Value::UInt8(54)),
    ];
    for (i, (start, step, end)) in cases.into_iter().enumerate() {
        let k = format!("adj.k{i}");
        set(&mut e, C1, k.as_bytes(), start);
        let out = send(&mut e, C1, &cmap::Request::AdjustInt { key: key(k.as_bytes()), step });
        assert_eq!((out.result(), out.reply.len(), out.header().id), (Ok(()), 24, 3));
        assert_eq!(e.get(k.as_bytes()), Some(end), "{k}");
    }
}

#[test]
fn adjust_int_errors_and_events() {
    let mut e = engine();
    let adj = |e: &mut Engine, k: &[u8]| send(e, C1, &cmap::Request::AdjustInt { key: key(k), step: 1 });
    assert_eq!(adj(&mut e, b"no.such").result(), Err(CsError::NotExist));
    for (k, v) in [
        (&b"a.f"[..], Value::Float(1.0)),
        (b"a.d", Value::Double(1.0)),
        (b"a.s", Value::String(b"1")),
        (b"a.bin", Value::Binary(b"\x01")),
    ] {
        set(&mut e, C1, k, v);
        assert_eq!(adj(&mut e, k).result(), Err(CsError::InvalidParam), "{k:?}");
    }
    set(&mut e, C1, b"a.n", Value::UInt32(41));
    let _ = track(&mut e, C1, Some(b"a.n"), TrackType::MODIFY, 5);
    let out = adj(&mut e, b"a.n");
    let n = out.event(0);
    assert_eq!(
        (n.event, n.new_value, n.old_value),
        (TrackEvent::Modify, Some(Value::UInt32(42)), Some(Value::UInt32(41)))
    );
    // A step of 0 leaves the value as it was: no event.
    let out = send(&mut e, C1, &cmap::Request::AdjustInt { key: key(b"a.n"), step: 0 });
    assert_eq!((out.result(), out.events.len()), (Ok(()), 0));
}

// ---------------------------------------------------------------------------------------------
// Iteration

fn iter_init(e: &mut Engine, conn: ConnId, prefix: Option<&[u8]>) -> (Result<(), CsError>, u64) {
    let out = send(e, conn, &cmap::Request::IterInit { prefix: prefix.map(key) });
    assert_eq!(out.reply.len(), 32);
    let r = out.reply();
    match r.body {
        cmap::Response::IterInit { iter_handle } => (r.result, iter_handle),
        other => panic!("{other:?}"),
    }
}

fn iter_all(e: &mut Engine, conn: ConnId, prefix: Option<&[u8]>) -> Vec<(Vec<u8>, u64, Option<ValueType>)> {
    let (r, h) = iter_init(e, conn, prefix);
    r.unwrap();
    let mut keys = Vec::new();
    loop {
        let out = send(e, conn, &cmap::Request::IterNext { iter_handle: h });
        assert_eq!(out.reply.len(), 304);
        let reply = out.reply();
        if reply.result == Err(CsError::NoSections) {
            assert!(out.reply[24..].iter().all(|&b| b == 0), "end reply is zeroed");
            break;
        }
        let cmap::Response::IterNext { key, value_len, value_type } = reply.body else { panic!() };
        keys.push((key.as_bytes().to_vec(), value_len, value_type));
    }
    assert_eq!(send(e, conn, &cmap::Request::IterFinalize { iter_handle: h }).result(), Ok(()));
    keys
}

#[test]
fn iteration_is_lexicographic_under_a_plain_prefix() {
    let mut e = engine();
    for k in [&b"abc"[..], b"a.u8", b"a.str", b"a.float", b"b.x", b"a.u8.sub", b"a-z"] {
        set(&mut e, C1, k, Value::UInt8(1));
    }
    set(&mut e, C1, b"a.str", Value::String(b"hey"));
    let keys: Vec<_> = iter_all(&mut e, C1, None).into_iter().map(|k| k.0).collect();
    let expected: Vec<&[u8]> = vec![b"a-z", b"a.float", b"a.str", b"a.u8", b"a.u8.sub", b"abc", b"b.x"];
    assert_eq!(keys, expected);
    // A plain string prefix: "a.u" matches "a.u8" and "a.u8.sub".
    let keys = iter_all(&mut e, C1, Some(b"a.u"));
    assert_eq!(keys.iter().map(|k| &k.0[..]).collect::<Vec<_>>(), vec![&b"a.u8"[..], b"a.u8.sub"]);
    let keys = iter_all(&mut e, C1, Some(b"a.s"));
    assert_eq!(keys, vec![(b"a.str".to_vec(), 4, Some(ValueType::String))]);
    assert!(iter_all(&mut e, C1, Some(b"zzz")).is_empty());
}

#[test]
fn iterator_handles_and_errors() {
    let mut e = engine();
    set(&mut e, C1, b"a.b", Value::UInt8(1));
    let (r, h) = iter_init(&mut e, C1, None);
    assert_eq!(r, Ok(()));
    assert_eq!(h & 0xffff_ffff, 0, "slot index in the low half");
    assert_ne!(h >> 32, 0, "random check in the high half");
    let next = |e: &mut Engine, conn, h| send(e, conn, &cmap::Request::IterNext { iter_handle: h });
    assert_eq!(next(&mut e, C1, h).result(), Ok(()));
    // The end, again and again.
    for _ in 0..2 {
        let out = next(&mut e, C1, h);
        assert_eq!((out.result(), out.reply.len(), out.header().id), (Err(CsError::NoSections), 304, 5));
    }
    // Unknown handles: wrong check, wrong slot, another connection's handle.
    e.connect(C2).unwrap();
    for bad in [h ^ (1 << 40), h + 1, 0] {
        let out = next(&mut e, C1, bad);
        assert_eq!((out.result(), out.reply.len()), (Err(CsError::BadHandle), 304));
    }
    assert_eq!(next(&mut e, C2, h).result(), Err(CsError::BadHandle));
    assert_eq!(
        send(&mut e, C2, &cmap::Request::IterFinalize { iter_handle: h }).result(),
        Err(CsError::BadHandle)
    );
    // Finalize, then the handle is stale.
    assert_eq!(send(&mut e, C1, &cmap::Request::IterFinalize { iter_handle: h }).result(), Ok(()));
    assert_eq!(next(&mut e, C1, h).result(), Err(CsError::BadHandle));
    assert_eq!(
        send(&mut e, C1, &cmap::Request::IterFinalize { iter_handle: h }).result(),
        Err(CsError::BadHandle)
    );
    // Slots are per connection; out of slots is NO_MEMORY with handle 0.
    let (_, h1) = iter_init(&mut e, C1, None);
    let (_, h2) = iter_init(&mut e, C1, None);
    assert_ne!(h1 >> 32, h2 >> 32);
    assert_eq!(iter_init(&mut e, C1, None), (Err(CsError::NoMemory), 0));
    assert_eq!(iter_init(&mut e, C2, None).0, Ok(()));
    assert_eq!(e.open_iterators(C1), 2);
}

#[test]
fn iteration_sees_changes_after_its_position() {
    let mut e = engine();
    set(&mut e, C1, b"k.1", Value::UInt8(1));
    set(&mut e, C1, b"k.3", Value::UInt8(3));
    let (_, h) = iter_init(&mut e, C1, Some(b"k."));
    let next = |e: &mut Engine| {
        let out = send(e, C1, &cmap::Request::IterNext { iter_handle: h });
        match out.reply().body {
            cmap::Response::IterNext { key, .. } if out.result().is_ok() => Some(key.as_bytes().to_vec()),
            _ => None,
        }
    };
    assert_eq!(next(&mut e), Some(b"k.1".to_vec()));
    send(&mut e, C1, &cmap::Request::Delete { key: key(b"k.1") });
    set(&mut e, C1, b"k.2", Value::UInt8(2));
    assert_eq!(next(&mut e), Some(b"k.2".to_vec()));
    assert_eq!(next(&mut e), Some(b"k.3".to_vec()));
    assert_eq!(next(&mut e), None);
}

// ---------------------------------------------------------------------------------------------
// Tracking

fn track(e: &mut Engine, conn: ConnId, k: Option<&[u8]>, track_type: TrackType, cookie: u64) -> u64 {
    let out =
        send(e, conn, &cmap::Request::TrackAdd { key: k.map(key), track_type, track_inst_handle: cookie });
    assert_eq!(out.reply.len(), 32);
    assert_eq!(out.result(), Ok(()));
    match out.reply().body {
        cmap::Response::TrackAdd { track_handle } => track_handle,
        other => panic!("{other:?}"),
    }
}

fn untrack(e: &mut Engine, conn: ConnId, handle: u64) -> Out {
    send(e, conn, &cmap::Request::TrackDelete { track_handle: handle })
}

#[test]
fn track_events_carry_the_cookie_and_old_new_values() {
    let mut e = engine();
    let h = track(&mut e, C1, Some(b"a.b"), TrackType::ADD | TrackType::MODIFY | TrackType::DELETE, 0xABCD);
    assert_ne!(h, 0);

    let out = set(&mut e, C1, b"a.b", Value::UInt32(1));
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].0, C1);
    let n = out.event(0);
    assert_eq!(n.track_inst_handle, 0xABCD);
    assert_eq!(n.key.as_bytes(), b"a.b");
    assert_eq!((n.event, n.new_value, n.old_value), (TrackEvent::Add, Some(Value::UInt32(1)), None));
    assert_eq!(out.events[0].1.len(), 336 + 4);
    // Type 0 and length 0 for the missing old value.
    assert_eq!((out.events[0].1[312], &out.events[0].1[328..336]), (0, &[0u8; 8][..]));

    let out = set(&mut e, C1, b"a.b", Value::UInt32(2));
    let n = out.event(0);
    assert_eq!(
        (n.event, n.new_value, n.old_value),
        (TrackEvent::Modify, Some(Value::UInt32(2)), Some(Value::UInt32(1)))
    );

    let out = send(&mut e, C1, &cmap::Request::Delete { key: key(b"a.b") });
    let n = out.event(0);
    assert_eq!((n.event, n.new_value, n.old_value), (TrackEvent::Delete, None, Some(Value::UInt32(2))));

    // Other keys (even ones that start with the tracked key) are not reported without PREFIX.
    assert!(set(&mut e, C1, b"a.bc", Value::UInt8(1)).events.is_empty());

    // TRACK_DELETE returns the cookie; events stop.
    let out = untrack(&mut e, C1, h);
    assert_eq!((out.result(), out.reply.len()), (Ok(()), 32));
    assert_eq!(out.reply().body, cmap::Response::TrackDelete { track_inst_handle: 0xABCD });
    assert!(set(&mut e, C1, b"a.b", Value::UInt32(3)).events.is_empty());
    let out = untrack(&mut e, C1, h);
    assert_eq!(
        (out.result(), out.reply().body),
        (Err(CsError::BadHandle), cmap::Response::TrackDelete { track_inst_handle: 0 })
    );
}

#[test]
fn track_masks_prefixes_and_the_root() {
    let mut e = engine();
    e.connect(C2).unwrap();
    // Only MODIFY: an add is not reported.
    let _ = track(&mut e, C1, Some(b"m.x"), TrackType::MODIFY, 1);
    // A prefix tracks every key under it, including a key equal to the prefix.
    let _ = track(&mut e, C1, Some(b"p."), TrackType::ALL, 2);
    // The root (no key) with PREFIX tracks all keys, for another connection.
    let _ = track(&mut e, C2, None, TrackType::ADD | TrackType::PREFIX, 3);

    let out = set(&mut e, C1, b"m.x", Value::UInt8(1));
    assert_eq!(out.events.iter().map(|(c, _)| *c).collect::<Vec<_>>(), vec![C2]);
    let out = set(&mut e, C1, b"m.x", Value::UInt8(2));
    assert_eq!(out.events.len(), 1);
    assert_eq!((out.events[0].0, out.event(0).track_inst_handle), (C1, 1));

    let out = set(&mut e, C1, b"p.deep.key", Value::UInt8(1));
    let cookies: Vec<_> =
        (0..out.events.len()).map(|i| (out.events[i].0, out.event(i).track_inst_handle)).collect();
    assert_eq!(cookies, vec![(C1, 2), (C2, 3)]);
    for i in 0..2 {
        assert_eq!(out.event(i).event, TrackEvent::Add, "the PREFIX bit is never set in events");
    }
    // A root track without PREFIX never fires.
    let _ = track(&mut e, C1, None, TrackType::ADD, 4);
    let out = set(&mut e, C1, b"q.r", Value::UInt8(1));
    assert_eq!(out.events.iter().map(|(c, _)| *c).collect::<Vec<_>>(), vec![C2]);
}

#[test]
fn track_add_errors() {
    let mut e = engine();
    for bad in [16, 1 << 30, -1] {
        let out = send(
            &mut e,
            C1,
            &cmap::Request::TrackAdd { key: None, track_type: TrackType(bad), track_inst_handle: 9 },
        );
        assert_eq!((out.result(), out.reply.len()), (Err(CsError::InvalidParam), 32));
        assert_eq!(out.reply().body, cmap::Response::TrackAdd { track_handle: 0 });
    }
    for i in 0..4 {
        let _ = track(&mut e, C1, Some(b"a.b"), TrackType::ADD, i);
    }
    let out = send(
        &mut e,
        C1,
        &cmap::Request::TrackAdd { key: None, track_type: TrackType::ADD, track_inst_handle: 9 },
    );
    assert_eq!(
        (out.result(), out.reply().body),
        (Err(CsError::NoMemory), cmap::Response::TrackAdd { track_handle: 0 })
    );
}

#[test]
fn events_are_queued_before_the_reply_is_returned() {
    // The adapter writes what poll_notification yields before the reply; here: after
    // handle_request returns, the events are already waiting.
    let mut e = engine();
    let _ = track(&mut e, C1, Some(b"a."), TrackType::ALL, 1);
    let mut frame = [0u8; 300];
    let n = cmap::Request::Set { key: key(b"a.b"), value: Value::UInt8(1) }.encode(&mut frame).unwrap();
    let mut reply = [0u8; 512];
    let m = e.handle_request(C1, &frame[..n], &mut reply).unwrap();
    assert_eq!(m, 24);
    assert_eq!(e.pending_notifications(), 1);
    assert_eq!(e.next_notification_len(), Some(337));
    let mut small = [0u8; 100];
    assert_eq!(
        e.poll_notification(&mut small),
        Err(ServerError::BufferTooSmall { required: 337, available: 100 })
    );
    let mut buf = [0u8; 400];
    assert_eq!(e.poll_notification(&mut buf), Ok(Some((C1, 337))));
    assert_eq!(e.poll_notification(&mut buf), Ok(None));
}

#[test]
fn a_full_outbox_refuses_without_changing_anything() {
    // Room for 2 events of a 1-byte value.
    let mut e: CmapEngine<FixedStore<16, 1024>, 2, 1, 4, 2, 700> =
        CmapEngine::new(FixedStore::new(), FixedStore::new(), 1);
    e.connect(C1).unwrap();
    let mut out = [0u8; 512];
    let mut frame = [0u8; 400];
    let mut call = |e: &mut CmapEngine<FixedStore<16, 1024>, 2, 1, 4, 2, 700>, req: cmap::Request<'_>| {
        let n = req.encode(&mut frame).unwrap();
        e.handle_request(C1, &frame[..n], &mut out).map(|m| cmap::Reply::decode(&out[..m]).unwrap().result)
    };
    for i in 0..2 {
        let r = call(
            &mut e,
            cmap::Request::TrackAdd { key: None, track_type: TrackType::ALL, track_inst_handle: i },
        );
        assert_eq!(r, Ok(Ok(())));
    }
    assert_eq!(call(&mut e, cmap::Request::Set { key: key(b"a.1"), value: Value::UInt8(1) }), Ok(Ok(())));
    assert_eq!(e.pending_notifications(), 2);
    // Two more do not fit next to the queued ones: nothing changes, the adapter drains and retries.
    assert_eq!(
        call(&mut e, cmap::Request::Set { key: key(b"a.2"), value: Value::UInt8(2) }),
        Err(ServerError::OutboxFull)
    );
    assert_eq!(e.get(b"a.2"), None);
    let mut buf = [0u8; 512];
    while e.poll_notification(&mut buf).unwrap().is_some() {}
    assert_eq!(call(&mut e, cmap::Request::Set { key: key(b"a.2"), value: Value::UInt8(2) }), Ok(Ok(())));
    while e.poll_notification(&mut buf).unwrap().is_some() {}
    // Events that could never fit: NO_RESOURCES, nothing changed.
    let r = call(&mut e, cmap::Request::Set { key: key(b"a.3"), value: Value::Binary(&[0; 100]) });
    assert_eq!(r, Ok(Err(CsError::NoResources)));
    assert_eq!((e.get(b"a.3"), e.pending_notifications()), (None, 0));
}

#[test]
fn a_full_store_is_no_memory() {
    let mut e: CmapEngine<FixedStore<3, 64>> = CmapEngine::new(FixedStore::new(), FixedStore::new(), 1);
    e.connect(C1).unwrap();
    let mut out = [0u8; 512];
    let mut frame = [0u8; 400];
    let mut set = |e: &mut CmapEngine<FixedStore<3, 64>>, k: &[u8], v: Value<'_>| {
        let n = cmap::Request::Set { key: key(k), value: v }.encode(&mut frame).unwrap();
        let m = e.handle_request(C1, &frame[..n], &mut out).unwrap();
        cmap::Reply::decode(&out[..m]).unwrap().result
    };
    assert_eq!(set(&mut e, b"k.1", Value::UInt64(1)), Ok(()));
    assert_eq!(set(&mut e, b"k.2", Value::UInt64(1)), Ok(()));
    assert_eq!(set(&mut e, b"k.3", Value::Binary(&[1; 40])), Err(CsError::NoMemory));
    assert_eq!(set(&mut e, b"k.3", Value::UInt64(1)), Ok(()));
    assert_eq!(set(&mut e, b"k.4", Value::UInt8(1)), Err(CsError::NoMemory));
    // Replacing a value with a larger one that does not fit leaves the old one.
    assert_eq!(set(&mut e, b"k.1", Value::Binary(&[1; 60])), Err(CsError::NoMemory));
    assert_eq!(e.get(b"k.1"), Some(Value::UInt64(1)));
    assert_eq!(e.set_initial(b"k.5", Value::UInt8(1)), Err(CsError::NoMemory));
    assert_eq!(e.set_initial(b"x!", Value::UInt8(1)), Err(CsError::NameTooLong));
}

// ---------------------------------------------------------------------------------------------
// Maps

#[test]
fn set_current_map_rules() {
    let mut e = engine();
    let setmap = |e: &mut Engine, map| {
        let out = send(e, C1, &cmap::Request::SetCurrentMap { map });
        assert_eq!((out.reply.len(), out.header().id), (24, 10));
        out.result()
    };
    assert_eq!(setmap(&mut e, Map::Other(2)), Err(CsError::NotExist));
    assert_eq!(setmap(&mut e, Map::Other(-1)), Err(CsError::NotExist));
    let (_, h) = iter_init(&mut e, C1, None);
    assert_eq!(setmap(&mut e, Map::Stats), Err(CsError::Busy));
    assert_eq!(setmap(&mut e, Map::Other(7)), Err(CsError::Busy), "busy is checked first");
    send(&mut e, C1, &cmap::Request::IterFinalize { iter_handle: h });
    let t = track(&mut e, C1, None, TrackType::ADD, 1);
    assert_eq!(setmap(&mut e, Map::Stats), Err(CsError::Busy));
    untrack(&mut e, C1, t);
    assert_eq!(setmap(&mut e, Map::Stats), Ok(()));
    assert_eq!(e.current_map(C1), Some(Map::Stats));
    assert_eq!(setmap(&mut e, Map::Default), Ok(()));
    assert_eq!(e.current_map(C1), Some(Map::Default));
}

#[test]
fn the_stats_map_is_read_only_except_clear() {
    let mut e = engine();
    e.connect(C2).unwrap();
    assert_eq!(send(&mut e, C1, &cmap::Request::SetCurrentMap { map: Map::Stats }).result(), Ok(()));
    let active = get(&mut e, C1, STAT_IPCS_ACTIVE, 8);
    assert_eq!(get_reply(&active).typed(), Some(Value::UInt64(2)));
    // Every write but stats.clear.* is ACCESS, also for keys that do not exist.
    for k in [STAT_IPCS_ACTIVE, b"stats.foo.bar", b"x!"] {
        assert_eq!(set(&mut e, C1, k, Value::UInt64(5)).result(), Err(CsError::Access), "{k:?}");
        assert_eq!(send(&mut e, C1, &cmap::Request::Delete { key: key(k) }).result(), Err(CsError::Access));
        let adj = send(&mut e, C1, &cmap::Request::AdjustInt { key: key(k), step: 1 });
        assert_eq!(adj.result(), Err(CsError::Access));
    }
    // stats.clear.*: the known targets succeed (any value, prefix match), others are NOT_SUPPORTED.
    e.disconnect(C2);
    assert_eq!(e.stat(STAT_IPCS_CLOSED), Some(Value::UInt64(1)));
    for k in [
        &b"stats.clear.all"[..],
        b"stats.clear.ipc",
        b"stats.clear.knet",
        b"stats.clear.totem",
        b"stats.clear.schedmiss",
        b"stats.clear.allx",
    ] {
        assert_eq!(set(&mut e, C1, k, Value::UInt8(1)).result(), Ok(()), "{k:?}");
    }
    assert_eq!(send_frame(&mut e, C1, &raw_set(b"stats.clear.all", 6, 1, &[1])).result(), Ok(()));
    assert_eq!(set(&mut e, C1, b"stats.clear.foo", Value::UInt8(1)).result(), Err(CsError::NotSupported));
    assert_eq!(
        send(&mut e, C1, &cmap::Request::Delete { key: key(b"stats.clear.all") }).result(),
        Err(CsError::NotSupported)
    );
    let adj = send(&mut e, C1, &cmap::Request::AdjustInt { key: key(b"stats.clear.all"), step: 1 });
    assert_eq!(adj.result(), Err(CsError::NotSupported));
    // Clearing ipc statistics zeroes the global counters (corosync memsets them, active too).
    assert_eq!(
        (e.stat(STAT_IPCS_ACTIVE), e.stat(STAT_IPCS_CLOSED)),
        (Some(Value::UInt64(0)), Some(Value::UInt64(0)))
    );
    // stats.clear.* are not keys of the map.
    assert_eq!(get(&mut e, C1, b"stats.clear.all", 8).result(), Err(CsError::NotExist));
    // Iteration and GET read the statistics map.
    e.set_stat(b"stats.srp.mcast_tx", Value::UInt64(9)).unwrap();
    let keys = iter_all(&mut e, C1, Some(b"stats."));
    let names: Vec<_> = keys.iter().map(|k| k.0.as_slice()).collect();
    assert_eq!(names, vec![STAT_IPCS_ACTIVE, STAT_IPCS_CLOSED, b"stats.srp.mcast_tx"]);
    assert!(keys.iter().all(|k| k.1 == 8 && k.2 == Some(ValueType::UInt64)));
    // The default map is unaffected by the statistics map and vice versa.
    assert_eq!(e.get(b"stats.srp.mcast_tx"), None);
}

#[test]
fn stats_map_tracking_rules() {
    let mut e = engine();
    send(&mut e, C1, &cmap::Request::SetCurrentMap { map: Map::Stats });
    let add = |e: &mut Engine, t: TrackType| {
        send(
            e,
            C1,
            &cmap::Request::TrackAdd { key: Some(key(b"stats.")), track_type: t, track_inst_handle: 1 },
        )
        .result()
    };
    assert_eq!(add(&mut e, TrackType::PREFIX | TrackType::ADD), Err(CsError::NotSupported));
    assert_eq!(
        add(&mut e, TrackType::PREFIX | TrackType::DELETE | TrackType::MODIFY),
        Err(CsError::NotSupported)
    );
    assert_eq!(add(&mut e, TrackType::PREFIX | TrackType::ADD | TrackType::DELETE), Ok(()));
    assert_eq!(add(&mut e, TrackType::MODIFY), Ok(()));
    // corosync's stats map does not check the other bits.
    assert_eq!(add(&mut e, TrackType(16)), Ok(()));
    // Default-map changes do not reach statistics-map trackers.
    e.connect(C2).unwrap();
    assert!(set(&mut e, C2, b"stats.x", Value::UInt8(1)).events.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Malformed frames

#[test]
fn unknown_ids_get_the_generic_reply() {
    let mut e = engine();
    for id in [10i32, 11, 100, -1, -2, i32::MIN, i32::MAX] {
        let mut f = [0u8; 24];
        f[0..4].copy_from_slice(&id.to_ne_bytes());
        f[8..12].copy_from_slice(&24i32.to_ne_bytes());
        let out = send_frame(&mut e, C1, &f);
        assert_eq!(out.reply.len(), 24);
        let h = out.header();
        assert_eq!((h.id, h.size, h.error), (0, 24, 7), "id {id}");
    }
    // Shorter than a request header.
    for len in [0, 4, 15] {
        let out = send_frame(&mut e, C1, &[0u8; 16][..len]);
        assert_eq!((out.header().id, out.header().error), (0, 7));
    }
}

#[test]
fn malformed_known_requests_get_their_reply_shape() {
    let mut e = engine();
    set(&mut e, C1, b"a.b", Value::UInt8(1));
    let frame = |req: cmap::Request<'_>| {
        let mut f = vec![0u8; req.encoded_len()];
        req.encode(&mut f).unwrap();
        f
    };
    let cases: Vec<(Vec<u8>, usize, i32)> = vec![
        // A GET with a trailing byte (and its size field agreeing).
        (
            {
                let mut f = frame(cmap::Request::Get { key: key(b"a.b"), value_len: 0 });
                f.push(0);
                f[8..12].copy_from_slice(&289i32.to_ne_bytes());
                f
            },
            40,
            2,
        ),
        // A truncated ITER_NEXT, TRACK_ADD, TRACK_DELETE, ITER_INIT, SET_CURRENT_MAP, DELETE.
        (frame(cmap::Request::IterNext { iter_handle: 1 })[..20].to_vec(), 304, 5),
        (
            frame(cmap::Request::TrackAdd { key: None, track_type: TrackType::ADD, track_inst_handle: 1 })
                [..200]
                .to_vec(),
            32,
            7,
        ),
        (frame(cmap::Request::TrackDelete { track_handle: 1 })[..17].to_vec(), 32, 8),
        (frame(cmap::Request::IterInit { prefix: None })[..17].to_vec(), 32, 4),
        (frame(cmap::Request::SetCurrentMap { map: Map::Stats })[..17].to_vec(), 24, 10),
        (frame(cmap::Request::Delete { key: key(b"a.b") })[..100].to_vec(), 24, 1),
        (frame(cmap::Request::AdjustInt { key: key(b"a.b"), step: 1 })[..100].to_vec(), 24, 3),
        // A SET too short for its fixed part, and one with a key without a NUL.
        (frame(cmap::Request::Set { key: key(b"a.b"), value: Value::UInt8(1) })[..100].to_vec(), 24, 0),
        (
            {
                let mut f = frame(cmap::Request::Set { key: key(b"a.b"), value: Value::UInt8(1) });
                f[24..280].fill(b'a');
                f
            },
            24,
            0,
        ),
        // A DELETE whose key has no NUL.
        (
            {
                let mut f = frame(cmap::Request::Delete { key: key(b"a.b") });
                f[24..280].fill(b'a');
                f
            },
            24,
            1,
        ),
    ];
    for (i, (f, len, id)) in cases.into_iter().enumerate() {
        let out = send_frame(&mut e, C1, &f);
        assert_eq!((out.reply.len(), out.header().id, out.header().error), (len, id, 7), "case {i}");
    }
    // Nothing changed.
    assert_eq!(e.get(b"a.b"), Some(Value::UInt8(1)));
}

// ---------------------------------------------------------------------------------------------
// Connections

#[test]
fn connections_are_independent_and_freed_on_disconnect() {
    let mut e = engine();
    e.connect(C2).unwrap();
    assert_eq!(e.connect(C2), Err(ServerError::AlreadyConnected(C2)));
    let _ = track(&mut e, C2, Some(b"a."), TrackType::ALL | TrackType::PREFIX, 2);
    let (_, _h) = iter_init(&mut e, C2, None);
    send(&mut e, C2, &cmap::Request::SetCurrentMap { map: Map::Stats });
    assert_eq!(e.current_map(C1), Some(Map::Default));
    // C1's change queues C2's event; C2 goes away before it is sent: the event is dropped.
    let mut frame = [0u8; 300];
    let n = cmap::Request::Set { key: key(b"a.b"), value: Value::UInt8(1) }.encode(&mut frame).unwrap();
    e.handle_request(C1, &frame[..n], &mut [0u8; 512]).unwrap();
    assert_eq!(e.pending_notifications(), 1);
    assert_eq!(e.stat(STAT_IPCS_ACTIVE), Some(Value::UInt64(2)));
    e.disconnect(C2);
    assert_eq!(e.pending_notifications(), 0);
    assert_eq!((e.open_tracks(C2), e.open_iterators(C2)), (0, 0));
    assert!(!e.is_connected(C2));
    assert_eq!(e.stat(STAT_IPCS_ACTIVE), Some(Value::UInt64(1)));
    assert_eq!(e.stat(STAT_IPCS_CLOSED), Some(Value::UInt64(1)));
    // Reconnecting starts afresh.
    e.connect(C2).unwrap();
    assert_eq!(e.current_map(C2), Some(Map::Default));
    assert!(set(&mut e, C1, b"a.c", Value::UInt8(1)).events.is_empty());
    // The table is full at 4 connections.
    e.connect(ConnId(3)).unwrap();
    e.connect(ConnId(4)).unwrap();
    assert_eq!(e.connect(ConnId(5)), Err(ServerError::TooManyConnections));
}

#[test]
fn queued_events_of_other_connections_survive_a_disconnect() {
    let mut e = engine();
    e.connect(C2).unwrap();
    e.connect(ConnId(3)).unwrap();
    let _ = track(&mut e, C1, None, TrackType::ADD | TrackType::PREFIX, 1);
    let _ = track(&mut e, C2, None, TrackType::ADD | TrackType::PREFIX, 2);
    let _ = track(&mut e, ConnId(3), None, TrackType::ADD | TrackType::PREFIX, 3);
    let mut frame = [0u8; 400];
    for k in [&b"a.1"[..], b"a.22"] {
        let n = cmap::Request::Set { key: key(k), value: Value::String(k) }.encode(&mut frame).unwrap();
        e.handle_request(C1, &frame[..n], &mut [0u8; 512]).unwrap();
    }
    e.disconnect(C2);
    let mut buf = [0u8; 1024];
    let mut seen = Vec::new();
    while let Some((c, n)) = e.poll_notification(&mut buf).unwrap() {
        let note = Notification::decode(&buf[..n]).unwrap();
        assert_eq!(note.new_value, Some(Value::String(note.key.as_bytes())));
        seen.push((c, note.track_inst_handle));
    }
    assert_eq!(seen, vec![(C1, 1), (ConnId(3), 3), (C1, 1), (ConnId(3), 3)]);
}

// ---------------------------------------------------------------------------------------------
// Stores

fn store_contract<S: Store>(mut s: S) {
    assert!(s.is_empty());
    s.insert(b"b.2", Value::UInt8(2)).unwrap();
    s.insert(b"a.1", Value::String(b"x")).unwrap();
    s.insert(b"b.1", Value::Binary(b"\0\x01")).unwrap();
    s.insert(b"c", Value::Double(1.5)).unwrap();
    assert_eq!(s.len(), 4);
    assert_eq!(s.get(b"a.1"), Some(Value::String(b"x")));
    assert_eq!(s.get(b"a.1").unwrap().wire_len(), 2);
    assert_eq!(s.get(b"b.1"), Some(Value::Binary(b"\0\x01")));
    let mut keys = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    while let Some((k, _)) = s.next_after(b"b.", after.as_deref()) {
        keys.push(k.to_vec());
        after = Some(k.to_vec());
    }
    assert_eq!(keys, vec![b"b.1".to_vec(), b"b.2".to_vec()]);
    // A cursor before the prefix starts at the prefix.
    assert_eq!(s.next_after(b"b.", Some(b"a")).unwrap().0, b"b.1");
    s.insert(b"b.1", Value::UInt64(7)).unwrap();
    assert_eq!(s.get(b"b.1"), Some(Value::UInt64(7)));
    assert!(s.remove(b"b.1"));
    assert!(!s.remove(b"b.1"));
    assert_eq!(s.get(b"b.2"), Some(Value::UInt8(2)));
    assert_eq!(s.get(b"c"), Some(Value::Double(1.5)));
    assert_eq!(s.len(), 3);
}

#[test]
fn fixed_store_contract() {
    store_contract(FixedStore::<8, 256>::new());
    let mut s = FixedStore::<8, 256>::new();
    s.insert(b"k", Value::Binary(&[1; 100])).unwrap();
    s.insert(b"j", Value::Binary(&[2; 100])).unwrap();
    assert!(s.remove(b"k"));
    assert_eq!(s.bytes_used(), 101);
    assert_eq!(s.get(b"j"), Some(Value::Binary(&[2; 100])));
}

#[cfg(feature = "alloc")]
#[test]
fn btree_store_contract() {
    store_contract(corowire::server::store::BTreeStore::new());
}

// ---------------------------------------------------------------------------------------------
// votequorum

type Quorum = QuorumEngine<4, 8, 8, 1024>;

struct VqOut {
    reply: Vec<u8>,
    events: Vec<(ConnId, Vec<u8>)>,
}

impl VqOut {
    fn result(&self) -> Result<(), CsError> {
        vq::Reply::decode(&self.reply).unwrap().result
    }

    fn event(&self, i: usize) -> vq::Notification<'_> {
        vq::Notification::decode(&self.events[i].1).unwrap()
    }
}

fn vq_frame(q: &mut Quorum, conn: ConnId, frame: &[u8]) -> VqOut {
    let mut out = vec![0u8; 1024];
    let n = q.handle_request(conn, frame, &mut out).unwrap();
    out.truncate(n);
    let mut events = Vec::new();
    let mut buf = vec![0u8; 1024];
    while let Some((c, m)) = q.poll_notification(&mut buf).unwrap() {
        events.push((c, buf[..m].to_vec()));
    }
    VqOut { reply: out, events }
}

fn vq_send(q: &mut Quorum, conn: ConnId, req: vq::Request<'_>) -> VqOut {
    let mut f = [0u8; 600];
    let n = req.encode(&mut f).unwrap();
    vq_frame(q, conn, &f[..n])
}

fn quorum(cfg: QuorumConfig) -> Quorum {
    let mut q = Quorum::new(cfg);
    q.connect(C1).unwrap();
    q
}

fn name(n: &[u8]) -> vq::QdeviceName<'_> {
    vq::QdeviceName::new(n).unwrap()
}

#[test]
fn getinfo_matches_the_daemon() {
    let mut q = quorum(QuorumConfig::default());
    let out = vq_send(&mut q, C1, vq::Request::GetInfo { nodeid: 0 });
    assert_eq!(out.reply.len(), 320);
    let r = vq::Reply::decode(&out.reply).unwrap();
    let vq::Response::GetInfo(i) = r.body else { panic!() };
    // Verified on the harness's daemon: nodeid 1, state 1, votes 1, expected 1, highest 1,
    // total 1, quorum 1, flags 0x2, qdevice_votes 0, name "".
    assert_eq!(
        (
            i.nodeid,
            i.state,
            i.votes,
            i.expected_votes,
            i.highest_expected,
            i.total_votes,
            i.quorum,
            i.flags.0
        ),
        (1, NodeState::MEMBER, 1, 1, 1, 1, 1, 2)
    );
    assert_eq!((i.qdevice_votes, i.qdevice_name), (0, &b""[..]));
    assert_eq!(vq_send(&mut q, C1, vq::Request::GetInfo { nodeid: 1 }).reply, out.reply);
    let out = vq_send(&mut q, C1, vq::Request::GetInfo { nodeid: 5 });
    assert_eq!((out.result(), out.reply.len()), (Err(CsError::NotExist), 320));
}

#[test]
fn trackstart_sends_nodelist_then_quorum_before_the_reply() {
    let mut q = quorum(QuorumConfig::default());
    let out = vq_send(
        &mut q,
        C1,
        vq::Request::TrackStart { context: 0x55, flags: TrackFlags::CURRENT | TrackFlags::CHANGES },
    );
    assert_eq!((out.result(), out.reply.len()), (Ok(()), 24));
    assert_eq!(out.events.len(), 2);
    // The daemon's single-node answer: NODELIST of 60 bytes, ring (1,5), nodes [1]; QUORUM of 56.
    assert_eq!((out.events[0].1.len(), out.events[1].1.len()), (60, 56));
    let vq::Notification::NodeList { context, ring_id, nodes } = out.event(0) else { panic!() };
    assert_eq!(
        (context, ring_id, nodes.iter().collect::<Vec<_>>()),
        (0x55, RingId { nodeid: 1, seq: 5 }, vec![1])
    );
    let vq::Notification::Quorum { quorate, context, nodes } = out.event(1) else { panic!() };
    assert!(quorate);
    assert_eq!(
        (context, nodes.iter().collect::<Vec<_>>()),
        (0x55, vec![NodeEntry { nodeid: 1, state: NodeState::MEMBER }])
    );
    assert_eq!(q.tracking(C1), Some(0x55));
    // Already tracking: EXIST, and the initial notifications are still sent, with the new context.
    let out = vq_send(&mut q, C1, vq::Request::TrackStart { context: 0x66, flags: TrackFlags::CURRENT });
    assert_eq!((out.result(), out.events.len()), (Err(CsError::Exist), 2));
    assert!(matches!(out.event(0), vq::Notification::NodeList { context: 0x66, .. }));
    assert_eq!(q.tracking(C1), Some(0x55));
    // CHANGES_ONLY while tracking: EXIST without notifications.
    let out = vq_send(&mut q, C1, vq::Request::TrackStart { context: 1, flags: TrackFlags::CHANGES_ONLY });
    assert_eq!((out.result(), out.events.len()), (Err(CsError::Exist), 0));
    // TRACKSTOP, twice.
    assert_eq!(vq_send(&mut q, C1, vq::Request::TrackStop).result(), Ok(()));
    assert_eq!(vq_send(&mut q, C1, vq::Request::TrackStop).result(), Err(CsError::NotExist));
    // CURRENT alone: notifications but no tracking.
    let out = vq_send(&mut q, C1, vq::Request::TrackStart { context: 2, flags: TrackFlags::CURRENT });
    assert_eq!((out.result(), out.events.len(), q.tracking(C1)), (Ok(()), 2, None));
    // CHANGES_ONLY: tracking without initial notifications.
    let out = vq_send(&mut q, C1, vq::Request::TrackStart { context: 3, flags: TrackFlags::CHANGES_ONLY });
    assert_eq!((out.result(), out.events.len(), q.tracking(C1)), (Ok(()), 0, Some(3)));
}

#[test]
fn setexpected_rules_and_notification() {
    let mut q = quorum(QuorumConfig::default());
    q.connect(C2).unwrap();
    vq_send(&mut q, C2, vq::Request::TrackStart { context: 9, flags: TrackFlags::CHANGES_ONLY });
    // 0 is below the total votes; 3 would make the quorate cluster inquorate.
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::SetExpected { expected_votes: 0 }).result(),
        Err(CsError::InvalidParam)
    );
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::SetExpected { expected_votes: 3 }).result(),
        Err(CsError::InvalidParam)
    );
    let out = vq_send(&mut q, C1, vq::Request::SetExpected { expected_votes: 1 });
    assert_eq!(out.result(), Ok(()));
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].0, C2);
    assert_eq!(out.event(0), vq::Notification::ExpectedVotes { context: 9, expected_votes: 1 });

    // Two members of one vote each, expected 2: lowering expected to 1 is fine, and quorum
    // stays (never decreasing below total/2 + 1).
    let mut q = quorum(QuorumConfig { expected_votes: 2, ..QuorumConfig::default() });
    q.add_node(2, 1, NodeState::MEMBER).unwrap();
    assert_eq!((q.is_quorate(), q.quorum()), (true, 2));
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::SetExpected { expected_votes: 1 }).result(),
        Err(CsError::InvalidParam)
    );
    assert_eq!(vq_send(&mut q, C1, vq::Request::SetExpected { expected_votes: 2 }).result(), Ok(()));
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::SetExpected { expected_votes: 4 }).result(),
        Err(CsError::InvalidParam)
    );
    assert_eq!(q.expected_votes(), 2);
}

#[test]
fn setvotes_rules() {
    let mut q = quorum(QuorumConfig { expected_votes: 2, ..QuorumConfig::default() });
    q.add_node(2, 1, NodeState::MEMBER).unwrap();
    vq_send(&mut q, C1, vq::Request::TrackStart { context: 4, flags: TrackFlags::CHANGES_ONLY });
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::SetVotes { nodeid: 999, votes: 1 }).result(),
        Err(CsError::NameNotFound)
    );
    // Node 2 to 0 votes: quorum 2 of a total of 1.
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::SetVotes { nodeid: 2, votes: 0 }).result(),
        Err(CsError::InvalidParam)
    );
    assert_eq!(q.votes(2), Some(1));
    // Node 1 to 3 votes: total 4 raises expected votes to 4 (a notification), quorum 3.
    let out = vq_send(&mut q, C1, vq::Request::SetVotes { nodeid: 1, votes: 3 });
    assert_eq!(out.result(), Ok(()));
    assert_eq!(out.event(0), vq::Notification::ExpectedVotes { context: 4, expected_votes: 4 });
    assert_eq!((q.votes(1), q.expected_votes(), q.quorum(), q.is_quorate()), (Some(3), 4, 3, true));

    // `corosync-quorumtool -v 2` on the harness's single node: expected votes 2, quorum 2.
    let mut q = quorum(QuorumConfig::default());
    assert_eq!(vq_send(&mut q, C1, vq::Request::SetVotes { nodeid: 1, votes: 2 }).result(), Ok(()));
    assert_eq!((q.expected_votes(), q.quorum(), q.is_quorate()), (2, 2, true));
    // `corosync-quorumtool -e 5` there: INVALID_PARAM.
    let mut q = quorum(QuorumConfig::default());
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::SetExpected { expected_votes: 5 }).result(),
        Err(CsError::InvalidParam)
    );
}

#[test]
fn qdevice_life_cycle_and_errors() {
    let device = DeviceConfig { votes: Some(1), ..DeviceConfig::default() };
    let cfg = QuorumConfig { expected_votes: 3, device: Some(device), ..QuorumConfig::default() };
    let mut q = quorum(cfg);
    q.add_node(2, 1, NodeState::DEAD).unwrap();
    assert!(!q.is_quorate());
    vq_send(&mut q, C1, vq::Request::TrackStart { context: 8, flags: TrackFlags::CHANGES_ONLY });
    let ring = RingId { nodeid: 1, seq: 5 };
    let poll = |q: &mut Quorum, n: &[u8], cast_vote, ring_id| {
        let mut f = [0u8; 600];
        let len = vq::Request::QdevicePoll { name: name(n), cast_vote, ring_id }.encode(&mut f).unwrap();
        vq_frame(q, C1, &f[..len])
    };
    // Not registered.
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::QdeviceUnregister { name: name(b"qd") }).result(),
        Err(CsError::NotExist)
    );
    assert_eq!(poll(&mut q, b"qd", true, ring).result(), Err(CsError::NotExist));
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::QdeviceMasterWins { name: name(b"qd"), allow: true }).result(),
        Err(CsError::NotExist)
    );
    let update = vq::Request::QdeviceUpdate { old_name: name(b"qd"), new_name: name(b"qe") };
    assert_eq!(vq_send(&mut q, C1, update).result(), Err(CsError::NotExist));
    // Register; again with the same name; with another.
    assert_eq!(vq_send(&mut q, C1, vq::Request::QdeviceRegister { name: name(b"qd") }).result(), Ok(()));
    assert_eq!(vq_send(&mut q, C1, vq::Request::QdeviceRegister { name: name(b"qd") }).result(), Ok(()));
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::QdeviceRegister { name: name(b"other") }).result(),
        Err(CsError::Exist)
    );
    assert_eq!(q.qdevice_name(), Some(&b"qd"[..]));
    // POLL: another ring id, then another name.
    assert_eq!(poll(&mut q, b"qd", true, RingId { nodeid: 1, seq: 6 }).result(), Err(CsError::MessageError));
    assert_eq!(poll(&mut q, b"xx", true, ring).result(), Err(CsError::InvalidParam));
    // Casting its vote makes the cluster quorate: a QUORUM notification with the device as node 0.
    let out = poll(&mut q, b"qd", true, ring);
    assert_eq!(out.result(), Ok(()));
    assert_eq!(out.events.len(), 1);
    let vq::Notification::Quorum { quorate, context, nodes } = out.event(0) else { panic!() };
    assert_eq!((quorate, context), (true, 8));
    let entries: Vec<_> = nodes.iter().map(|n| (n.nodeid, n.state)).collect();
    // corosync never sets the device's node state: 0.
    assert_eq!(entries, vec![(2, NodeState::DEAD), (1, NodeState::MEMBER), (0, NodeState(0))]);
    let out = vq_send(&mut q, C1, vq::Request::GetInfo { nodeid: 0 });
    let vq::Response::GetInfo(info) = vq::Reply::decode(&out.reply).unwrap().body else { panic!() };
    assert_eq!(info.flags.0, 2 | 64 | 128 | 256);
    assert_eq!((info.qdevice_name, info.qdevice_votes, info.total_votes), (&b"qd"[..], 1, 2));
    // Withdrawing the vote: inquorate again.
    let out = poll(&mut q, b"qd", false, ring);
    assert!(matches!(out.event(0), vq::Notification::Quorum { quorate: false, .. }));
    // MASTER_WINS, UPDATE, UNREGISTER with their name checks.
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::QdeviceMasterWins { name: name(b"xx"), allow: true }).result(),
        Err(CsError::InvalidParam)
    );
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::QdeviceMasterWins { name: name(b"qd"), allow: true }).result(),
        Ok(())
    );
    let bad_update = vq::Request::QdeviceUpdate { old_name: name(b"xx"), new_name: name(b"qe") };
    assert_eq!(vq_send(&mut q, C1, bad_update).result(), Err(CsError::InvalidParam));
    assert_eq!(vq_send(&mut q, C1, update).result(), Ok(()));
    assert_eq!(q.qdevice_name(), Some(&b"qe"[..]));
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::QdeviceUnregister { name: name(b"qd") }).result(),
        Err(CsError::InvalidParam)
    );
    assert_eq!(vq_send(&mut q, C1, vq::Request::QdeviceUnregister { name: name(b"qe") }).result(), Ok(()));
    assert_eq!(q.qdevice_name(), None);
    // A new device may register under another name now.
    assert_eq!(vq_send(&mut q, C1, vq::Request::QdeviceRegister { name: name(b"new") }).result(), Ok(()));
}

#[test]
fn qdevice_disabled_by_configuration() {
    // At run time, two_node and a device while none is registered: two_node stays, the device
    // may no longer operate.
    let mut q = quorum(QuorumConfig::default());
    let cfg = QuorumConfig {
        expected_votes: 0,
        two_node: true,
        device: Some(DeviceConfig::default()),
        ..QuorumConfig::default()
    };
    let mut notes = Vec::new();
    q.reconfigure(cfg, &[(1, 1)], &mut |n| notes.push(n)).unwrap();
    assert_eq!(notes, [ConfigNote::DeviceTwoNodeKept]);
    let keys: Vec<_> = q.runtime_keys().filter(|k| k.0.contains("qdevice")).collect();
    assert_eq!(keys, [("runtime.votequorum.qdevice_can_operate", Value::UInt8(0))]);
    assert_eq!(
        QuorumEngine::<8, 16>::configure(cfg, &[(1, 1)], &mut |_| {}).err(),
        Some(ConfigError::TwoNodeWithDevice)
    );
    let ring = RingId { nodeid: 1, seq: 5 };
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::QdeviceRegister { name: name(b"qd") }).result(),
        Err(CsError::Access)
    );
    let out =
        vq_send(&mut q, C1, vq::Request::QdevicePoll { name: name(b"qd"), cast_vote: true, ring_id: ring });
    assert_eq!(out.result(), Err(CsError::Access));
    let out = vq_send(&mut q, C1, vq::Request::QdeviceMasterWins { name: name(b"qd"), allow: true });
    assert_eq!(out.result(), Err(CsError::Access));
    // UNREGISTER has no such check in corosync: not registered.
    assert_eq!(
        vq_send(&mut q, C1, vq::Request::QdeviceUnregister { name: name(b"qd") }).result(),
        Err(CsError::NotExist)
    );
}

#[test]
fn votequorum_malformed_and_unknown_requests() {
    let mut q = quorum(QuorumConfig::default());
    for id in [10i32, 11, -1, 1000] {
        let mut f = [0u8; 24];
        f[0..4].copy_from_slice(&id.to_ne_bytes());
        f[8..12].copy_from_slice(&24i32.to_ne_bytes());
        let out = vq_frame(&mut q, C1, &f);
        let h = ReplyHeader::decode(&out.reply).unwrap();
        assert_eq!((h.id, h.size, h.error), (0, 24, 7));
    }
    // A GETINFO with a wrong size: the 320-byte shape with INVALID_PARAM.
    let mut f = [0u8; 32];
    vq::Request::GetInfo { nodeid: 0 }.encode(&mut f).unwrap();
    f[8..12].copy_from_slice(&32i32.to_ne_bytes());
    let out = vq_frame(&mut q, C1, &f);
    assert_eq!((out.reply.len(), out.result()), (320, Err(CsError::InvalidParam)));
    // A register without a NUL in the name field.
    let mut f = [0u8; 272];
    let n = vq::Request::QdeviceRegister { name: name(b"qd") }.encode(&mut f).unwrap();
    f[16..271].fill(b'a');
    let out = vq_frame(&mut q, C1, &f[..n]);
    assert_eq!((out.reply.len(), out.result()), (24, Err(CsError::InvalidParam)));
    assert_eq!(q.qdevice_name(), None);
}

#[test]
fn votequorum_outbox_full_and_disconnect() {
    let mut q: QuorumEngine<4, 8, 2, 1024> = QuorumEngine::new(QuorumConfig::default());
    q.connect(C1).unwrap();
    let mut f = [0u8; 64];
    let n = vq::Request::TrackStart { context: 1, flags: TrackFlags::CURRENT }.encode(&mut f).unwrap();
    let mut out = [0u8; 320];
    q.handle_request(C1, &f[..n], &mut out).unwrap();
    assert_eq!(q.pending_notifications(), 2);
    assert_eq!(q.handle_request(C1, &f[..n], &mut out), Err(ServerError::OutboxFull));
    q.disconnect(C1);
    assert_eq!(q.pending_notifications(), 0);
    assert_eq!(q.handle_request(C1, &f[..n], &mut out), Err(ServerError::UnknownConnection(C1)));
    q.connect(C1).unwrap();
    assert_eq!(q.handle_request(C1, &f[..n], &mut out), Ok(24));
}

// ---------------------------------------------------------------------------------------------
// Arbitrary input never panics, and every reply is one well-formed response frame.

/// A frame with a plausible header: a chosen id and a correct size, then arbitrary bytes.
fn framed(id: i32, body: Vec<u8>, size_right: bool) -> Vec<u8> {
    let mut f = vec![0u8; 16];
    f.extend(body);
    f[0..4].copy_from_slice(&id.to_ne_bytes());
    let size = if size_right { f.len() as i32 } else { 16 };
    f[8..12].copy_from_slice(&size.to_ne_bytes());
    f
}

fn check_reply(reply: &[u8]) {
    let h = ReplyHeader::decode(reply).expect("reply is one frame");
    assert_eq!(h.size, reply.len());
    assert_ne!(h.error, 0);
}

proptest! {
    // Miri interprets every case: a handful there, thousands natively.
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 2000 }, ..ProptestConfig::default() })]

    #[test]
    fn cmap_engine_never_panics(
        frames in proptest::collection::vec(
            (-2i32..12, proptest::collection::vec(any::<u8>(), 0..400), any::<bool>(), any::<bool>()),
            1..12,
        ),
    ) {
        let mut e: CmapEngine<FixedStore<8, 512>, 2, 2, 2, 4, 2048> =
            CmapEngine::new(FixedStore::new(), FixedStore::new(), 7);
        e.connect(C1).unwrap();
        e.connect(C2).unwrap();
        let mut out = vec![0u8; 4096];
        let mut buf = vec![0u8; 4096];
        for (id, body, size_right, second) in frames {
            let conn = if second { C2 } else { C1 };
            let f = framed(id, body.clone(), size_right);
            for frame in [&f[..], &body[..]] {
                match e.handle_request(conn, frame, &mut out) {
                    Ok(n) => check_reply(&out[..n]),
                    Err(ServerError::OutboxFull) => {}
                    Err(other) => panic!("{other:?}"),
                }
                while let Some((_, n)) = e.poll_notification(&mut buf).unwrap() {
                    Notification::decode(&buf[..n]).unwrap();
                }
            }
        }
    }

    #[test]
    fn cmap_engine_handles_valid_requests_of_random_content(
        ops in proptest::collection::vec((0u8..10, 0u8..4, any::<u64>(), any::<i32>(), 0u8..13), 1..40),
    ) {
        let mut e: CmapEngine<FixedStore<4, 256>, 2, 2, 2, 8, 4096> =
            CmapEngine::new(FixedStore::new(), FixedStore::new(), 3);
        e.connect(C1).unwrap();
        let keys: [&[u8]; 4] = [b"a.b", b"a.c", b"runtime.config.x", b"x!"];
        let mut out = vec![0u8; 4096];
        let mut frame = vec![0u8; 4096];
        let mut buf = vec![0u8; 4096];
        let mut handles = vec![0u64];
        for (op, k, n, step, ty) in ops {
            let k = key(keys[usize::from(k)]);
            let h = handles[n as usize % handles.len()];
            let bytes = n.to_ne_bytes();
            let value = match ValueType::from_raw(ty) {
                Some(t) => Value::from_wire(t, &bytes[..t.fixed_len().unwrap_or(n as usize % 9)]).unwrap(),
                None => Value::String(b"str"),
            };
            let req = match op {
                0 => cmap::Request::Set { key: k, value },
                1 => cmap::Request::Delete { key: k },
                2 => cmap::Request::Get { key: k, value_len: n % 64 },
                3 => cmap::Request::AdjustInt { key: k, step },
                4 => cmap::Request::IterInit { prefix: (n % 2 == 0).then_some(k) },
                5 => cmap::Request::IterNext { iter_handle: h },
                6 => cmap::Request::IterFinalize { iter_handle: h },
                7 => cmap::Request::TrackAdd { key: Some(k), track_type: TrackType(step & 31), track_inst_handle: n },
                8 => cmap::Request::TrackDelete { track_handle: h },
                _ => cmap::Request::SetCurrentMap { map: Map::from_raw(step % 3) },
            };
            let len = req.encode(&mut frame).unwrap();
            let m = e.handle_request(C1, &frame[..len], &mut out).unwrap();
            let reply = cmap::Reply::decode(&out[..m]).unwrap();
            prop_assert_eq!(reply.body.kind(), req.kind());
            match reply.body {
                cmap::Response::IterInit { iter_handle } | cmap::Response::TrackAdd { track_handle: iter_handle } => {
                    handles.push(iter_handle)
                }
                _ => {}
            }
            while let Some((_, n)) = e.poll_notification(&mut buf).unwrap() {
                Notification::decode(&buf[..n]).unwrap();
            }
        }
    }

    #[test]
    fn quorum_engine_never_panics(
        frames in proptest::collection::vec(
            (-2i32..12, proptest::collection::vec(any::<u8>(), 0..600), any::<bool>()),
            1..12,
        ),
    ) {
        let mut q: QuorumEngine<2, 4, 4, 512> = QuorumEngine::new(QuorumConfig::default());
        q.connect(C1).unwrap();
        let mut out = vec![0u8; 1024];
        let mut buf = vec![0u8; 1024];
        for (id, body, size_right) in frames {
            let f = framed(id, body.clone(), size_right);
            for frame in [&f[..], &body[..]] {
                match q.handle_request(C1, frame, &mut out) {
                    Ok(n) => check_reply(&out[..n]),
                    Err(ServerError::OutboxFull) => {}
                    Err(other) => panic!("{other:?}"),
                }
                while let Some((_, n)) = q.poll_notification(&mut buf).unwrap() {
                    vq::Notification::decode(&buf[..n]).unwrap();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sequences checked against corosync 3.1.7 (a libcmap/libvotequorum C probe run under
// tests/harness/with-corosync); the expected values below are the daemon's answers.

/// (event, key, new value length, old value length) of a notification.
type EventSummary = (i32, Vec<u8>, Option<usize>, Option<usize>);

#[test]
fn libcmap_probe_sequence_matches_the_daemon() {
    let mut e = engine();
    e.set_initial(b"runtime.config.totem.token", Value::UInt32(1000)).unwrap();
    let big = vec![1u8; 16385];
    assert_eq!(
        send_frame(&mut e, C1, &raw_set(b"a.big", 12, 16385, &big)).result(),
        Err(CsError::InvalidParam)
    );
    assert_eq!(send_frame(&mut e, C1, &raw_set(b"a.big", 12, 16384, &big[..16384])).result(), Ok(()));
    assert_eq!(
        send_frame(&mut e, C1, &raw_set(b"a.u32", 6, 2, &[1, 0])).result(),
        Err(CsError::InvalidParam)
    );
    assert_eq!(send_frame(&mut e, C1, &raw_set(b"x!", 6, 2, &[1, 0])).result(), Err(CsError::InvalidParam));
    let r = send_frame(&mut e, C1, &raw_set(b"runtime.config.totem.token", 6, 2, &[1, 0])).result();
    assert_eq!(r, Err(CsError::Access));
    assert_eq!(
        send_frame(&mut e, C1, &raw_set(b"a.s", 11, 5, b"he\0lo")).result(),
        Err(CsError::InvalidParam)
    );
    assert_eq!(send_frame(&mut e, C1, &raw_set(b"a.s", 11, 5, b"hello")).result(), Ok(()));
    assert_eq!(get_value(&mut e, b"a.s"), b"hello\0");
    assert_eq!(send_frame(&mut e, C1, &raw_set(b"a.s", 11, 3, b"hello")).result(), Ok(()));
    assert_eq!(get_value(&mut e, b"a.s"), b"hel\0");
    assert_eq!(get(&mut e, C1, b"a.s", 2).result(), Err(CsError::InvalidParam));
    set(&mut e, C1, b"a.f", Value::Float(1.5));
    let inc =
        |e: &mut Engine, k: &[u8]| send(e, C1, &cmap::Request::AdjustInt { key: key(k), step: 1 }).result();
    assert_eq!(inc(&mut e, b"a.f"), Err(CsError::InvalidParam));
    assert_eq!(inc(&mut e, b"a.missing"), Err(CsError::NotExist));
    set(&mut e, C1, b"a.u8", Value::UInt8(255));
    assert_eq!(inc(&mut e, b"a.u8"), Ok(()));
    assert_eq!(e.get(b"a.u8"), Some(Value::UInt8(0)));
    let bad = send(
        &mut e,
        C1,
        &cmap::Request::TrackAdd { key: Some(key(b"a.")), track_type: TrackType(16), track_inst_handle: 1 },
    );
    assert_eq!(bad.result(), Err(CsError::InvalidParam));
    let th = track(&mut e, C1, Some(b"a.t"), TrackType::ALL, 1);
    assert_eq!(th & 0xffff_ffff, 0);

    // The daemon's five events, in order:
    // 4 a.t.x new u32 1 / old none; 2 a.t.x 2 / 1; 4 a.t.s 'abc' / none; 2 a.t.x 3 / 2;
    // 1 a.t.x none / 3.
    let mut events = Vec::new();
    events.extend(set(&mut e, C1, b"a.t.x", Value::UInt32(1)).events);
    events.extend(set(&mut e, C1, b"a.t.x", Value::UInt32(1)).events);
    events.extend(set(&mut e, C1, b"a.t.x", Value::UInt32(2)).events);
    events.extend(set(&mut e, C1, b"a.t.s", Value::String(b"abc")).events);
    events.extend(send(&mut e, C1, &cmap::Request::AdjustInt { key: key(b"a.t.x"), step: 1 }).events);
    events.extend(send(&mut e, C1, &cmap::Request::Delete { key: key(b"a.t.x") }).events);
    let got: Vec<_> = events
        .iter()
        .map(|(_, b)| {
            let n = Notification::decode(b).unwrap();
            (
                n.event as i32,
                n.key.as_bytes().to_vec(),
                n.new_value.map(|v| v.wire_len()),
                n.old_value.map(|v| v.wire_len()),
            )
        })
        .collect();
    let want: Vec<EventSummary> = vec![
        (4, b"a.t.x".to_vec(), Some(4), None),
        (2, b"a.t.x".to_vec(), Some(4), Some(4)),
        (4, b"a.t.s".to_vec(), Some(4), None),
        (2, b"a.t.x".to_vec(), Some(4), Some(4)),
        (1, b"a.t.x".to_vec(), None, Some(4)),
    ];
    assert_eq!(got, want);

    // Iteration under "a.": the daemon listed a.big 16384/12, a.f 4/9, a.s 4/11, a.t.s 4/11,
    // a.u8 1/2 (a.u32 and x! were refused).
    let keys = iter_all(&mut e, C1, Some(b"a."));
    let want: Vec<(Vec<u8>, u64, Option<ValueType>)> = vec![
        (b"a.big".to_vec(), 16384, Some(ValueType::Binary)),
        (b"a.f".to_vec(), 4, Some(ValueType::Float)),
        (b"a.s".to_vec(), 4, Some(ValueType::String)),
        (b"a.t.s".to_vec(), 4, Some(ValueType::String)),
        (b"a.u8".to_vec(), 1, Some(ValueType::UInt8)),
    ];
    assert_eq!(keys, want);

    // The statistics map: inc of stats.clear.all 19, of a counter 11; a PREFIX|ADD track 19; a
    // track with bit 16 OK; a SET of stats.clear.all with a malformed UINT32 OK; map 2 → 12.
    e.connect(C2).unwrap();
    assert_eq!(send(&mut e, C2, &cmap::Request::SetCurrentMap { map: Map::Stats }).result(), Ok(()));
    let inc2 =
        |e: &mut Engine, k: &[u8]| send(e, C2, &cmap::Request::AdjustInt { key: key(k), step: 1 }).result();
    assert_eq!(inc2(&mut e, b"stats.clear.all"), Err(CsError::NotSupported));
    assert_eq!(inc2(&mut e, STAT_IPCS_ACTIVE), Err(CsError::Access));
    let t = |e: &mut Engine, k: &[u8], tt| {
        send(e, C2, &cmap::Request::TrackAdd { key: Some(key(k)), track_type: tt, track_inst_handle: 1 })
            .result()
    };
    assert_eq!(t(&mut e, b"stats.", TrackType::PREFIX | TrackType::ADD), Err(CsError::NotSupported));
    assert_eq!(t(&mut e, b"stats.x", TrackType(16)), Ok(()));
    assert_eq!(send_frame(&mut e, C2, &raw_set(b"stats.clear.all", 6, 2, &[1, 0])).result(), Ok(()));
    e.connect(ConnId(3)).unwrap();
    assert_eq!(
        send(&mut e, ConnId(3), &cmap::Request::SetCurrentMap { map: Map::Other(2) }).result(),
        Err(CsError::NotExist)
    );
}

#[test]
fn libvotequorum_probe_sequence_matches_the_daemon() {
    let mut q = quorum(QuorumConfig::default());
    let r = |q: &mut Quorum, req| vq_send(q, C1, req).result();
    assert_eq!(r(&mut q, vq::Request::GetInfo { nodeid: 5 }), Err(CsError::NotExist));
    assert_eq!(r(&mut q, vq::Request::TrackStop), Err(CsError::NotExist));
    assert_eq!(r(&mut q, vq::Request::TrackStart { context: 1, flags: TrackFlags::CHANGES_ONLY }), Ok(()));
    assert_eq!(
        r(&mut q, vq::Request::TrackStart { context: 1, flags: TrackFlags::CHANGES_ONLY }),
        Err(CsError::Exist)
    );
    assert_eq!(r(&mut q, vq::Request::SetExpected { expected_votes: 0 }), Err(CsError::InvalidParam));
    assert_eq!(r(&mut q, vq::Request::QdeviceUnregister { name: name(b"qd") }), Err(CsError::NotExist));
    let poll = |n, seq| vq::Request::QdevicePoll {
        name: name(n),
        cast_vote: true,
        ring_id: RingId { nodeid: 1, seq },
    };
    assert_eq!(r(&mut q, poll(b"qd", 5)), Err(CsError::NotExist));
    let update = |old, new| vq::Request::QdeviceUpdate { old_name: name(old), new_name: name(new) };
    assert_eq!(r(&mut q, update(b"qd", b"qe")), Err(CsError::NotExist));
    assert_eq!(
        r(&mut q, vq::Request::QdeviceMasterWins { name: name(b"qd"), allow: true }),
        Err(CsError::NotExist)
    );
    assert_eq!(r(&mut q, vq::Request::QdeviceRegister { name: name(b"qd") }), Ok(()));
    assert_eq!(r(&mut q, vq::Request::QdeviceRegister { name: name(b"qd") }), Ok(()));
    assert_eq!(r(&mut q, vq::Request::QdeviceRegister { name: name(b"other") }), Err(CsError::Exist));
    assert_eq!(r(&mut q, poll(b"qd", 6)), Err(CsError::MessageError));
    assert_eq!(r(&mut q, poll(b"xx", 5)), Err(CsError::InvalidParam));
    assert_eq!(r(&mut q, poll(b"qd", 5)), Ok(()));
    // The daemon: flags 0x1c2, qdevice_votes 0, total 1, quorum 1, name "qd".
    let out = vq_send(&mut q, C1, vq::Request::GetInfo { nodeid: 0 });
    let vq::Response::GetInfo(info) = vq::Reply::decode(&out.reply).unwrap().body else { panic!() };
    assert_eq!((info.flags.0, info.qdevice_votes, info.total_votes, info.quorum), (0x1c2, 0, 1, 1));
    assert_eq!(info.qdevice_name, b"qd");
    assert_eq!(r(&mut q, update(b"xx", b"qe")), Err(CsError::InvalidParam));
    assert_eq!(r(&mut q, update(b"qd", b"qe")), Ok(()));
    assert_eq!(r(&mut q, vq::Request::QdeviceUnregister { name: name(b"qd") }), Err(CsError::InvalidParam));
    assert_eq!(r(&mut q, vq::Request::QdeviceUnregister { name: name(b"qe") }), Ok(()));
}

#[test]
fn daemon_side_updates_notify_trackers() {
    let mut e = engine();
    let _ = track(&mut e, C1, Some(b"runtime."), TrackType::ALL | TrackType::PREFIX, 11);
    // Read-only keys can change from the daemon's side, and trackers see it.
    assert_eq!(e.update(b"runtime.config.totem.token", Value::UInt32(3000)), Ok(Ok(())));
    assert_eq!(e.update(b"runtime.config.totem.token", Value::UInt32(3000)), Ok(Ok(())));
    assert_eq!(e.update(b"runtime.x!", Value::UInt8(1)), Ok(Err(CsError::NameTooLong)));
    assert_eq!(e.update(b"runtime.s", Value::String(b"a\0b")), Ok(Err(CsError::InvalidParam)));
    assert_eq!(e.remove(b"runtime.config.totem.token"), Ok(Ok(())));
    assert_eq!(e.remove(b"runtime.config.totem.token"), Ok(Err(CsError::NotExist)));
    let mut buf = [0u8; 512];
    let mut events = Vec::new();
    while let Some((c, n)) = e.poll_notification(&mut buf).unwrap() {
        let note = Notification::decode(&buf[..n]).unwrap();
        events.push((
            c,
            note.event,
            note.new_value.and_then(|v| v.as_i64()),
            note.old_value.and_then(|v| v.as_i64()),
        ));
    }
    assert_eq!(
        events,
        vec![(C1, TrackEvent::Add, Some(3000), None), (C1, TrackEvent::Delete, None, Some(3000)),]
    );
}

#[test]
fn a_disconnect_request_closes_the_connection_of_every_engine_without_a_reply() {
    use corowire::server::cfg::CfgEngine;
    use corowire::server::quorum::QuorumLibEngine;
    // QB_IPC_MSG_DISCONNECT: a bare 16-byte header with id -3.
    let mut frame = [0u8; 16];
    frame[..4].copy_from_slice(&(-3i32).to_ne_bytes());
    frame[8..12].copy_from_slice(&16i32.to_ne_bytes());
    let mut cmap = engine();
    let mut votequorum: QuorumEngine<4, 8, 2, 1024> = QuorumEngine::new(QuorumConfig::default());
    let mut quorum: QuorumLibEngine<4, 8, 1024> = QuorumLibEngine::new(true);
    let mut cfg: CfgEngine<4, 2> = CfgEngine::new(1);
    let engines: [&mut dyn corowire::server::Engine; 4] = [&mut cmap, &mut votequorum, &mut quorum, &mut cfg];
    for e in engines {
        let _ = e.connect(C2);
        let mut out = [0u8; MIN_REPLY_LEN];
        assert_eq!(e.handle_request(C2, &frame, &mut out), Err(ServerError::Disconnect), "{}", e.name());
        // Any other unknown id still gets corosync's generic reply.
        frame[..4].copy_from_slice(&(-4i32).to_ne_bytes());
        assert_eq!(e.handle_request(C2, &frame, &mut out), Ok(24), "{}", e.name());
        frame[..4].copy_from_slice(&(-3i32).to_ne_bytes());
    }
}

#[test]
fn setup_grants_the_floor_and_refuses_sizes_without_room_for_a_request() {
    use corowire::server::{grant_max_msg_size, MIN_MAX_MSG_SIZE};
    assert_eq!(grant_max_msg_size(12328, 0, 1 << 20), Ok(12328));
    assert_eq!(grant_max_msg_size(8192, 65536, 1 << 20), Ok(65536));
    assert_eq!(grant_max_msg_size(2 << 20, 0, 1 << 20).map_err(|e| e.errno), Err(12));
    assert_eq!(grant_max_msg_size(MIN_MAX_MSG_SIZE, 0, 1 << 20), Ok(16));
    for tiny in [0, 1, MIN_MAX_MSG_SIZE - 1] {
        assert_eq!(grant_max_msg_size(tiny, 0, 1 << 20).map_err(|e| e.errno), Err(22), "{tiny}");
    }
}

#[test]
fn add_nodes_adds_a_list_at_once_and_stops_at_a_full_table() {
    let mut q = quorum(QuorumConfig { expected_votes: 5, ..QuorumConfig::default() });
    q.add_nodes([(2, 1), (3, 1)], NodeState::MEMBER).unwrap();
    assert!(q.is_quorate());
    // A node given again is updated, not added twice.
    q.add_nodes([(3, 1), (2, 1), (3, 1)], NodeState::DEAD).unwrap();
    assert!(!q.is_quorate());
    assert_eq!(q.member_ids().as_slice(), &[1]);
    // 8 slots, one kept for the quorum device: nodes 4..7 fit, 8 does not.
    assert_eq!(q.add_nodes((4..10).map(|id| (id, 1)), NodeState::MEMBER), Err(CsError::NoMemory));
    assert_eq!(q.member_ids().as_slice(), &[1, 4, 5, 6, 7]);
    assert!(q.is_quorate());
}
