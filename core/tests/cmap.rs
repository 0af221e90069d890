//! CMAP codec: golden frames and byte offsets from docs/protocol.md §5.2–§5.4, round
//! trips of every request, reply and notification, every value type with edge values,
//! encoding into short buffers, and robustness against arbitrary and mutated input.

use corowire::cmap::{
    encode_status, GetReply, Key, Map, Notification, Reply, Request, RequestKind, Response, TrackEvent,
    TrackType, Value, ValueType, KEY_MAX_LEN, NOTIFICATION_MAX_LEN, NOTIFY_ID, RESPONSE_SET_CURRENT_MAP,
    STORED_MAX_LEN, VALUE_MAX_LEN,
};
use corowire::{CsError, DecodeError, EncodeError};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 });
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

// --- helpers --------------------------------------------------------------------------------

/// A frame built field by field at the offsets of the tables in docs/protocol.md §5.
struct Frame(Vec<u8>);

impl Frame {
    /// A request frame: id @0, size @8.
    fn request(id: i32, size: usize) -> Self {
        let mut f = Self(vec![0; size]);
        f.i32(0, id).i32(8, size as i32);
        f
    }

    /// A response frame: id @0, size @8, error @16.
    fn response(id: i32, size: usize, error: i32) -> Self {
        let mut f = Self::request(id, size);
        f.i32(16, error);
        f
    }

    fn bytes(&mut self, off: usize, b: &[u8]) -> &mut Self {
        self.0[off..off + b.len()].copy_from_slice(b);
        self
    }

    fn i32(&mut self, off: usize, v: i32) -> &mut Self {
        self.bytes(off, &v.to_ne_bytes())
    }

    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.bytes(off, &v.to_ne_bytes())
    }

    /// A `mar_name_t` at `off`: length u16 @off, value @off+8.
    fn name(&mut self, off: usize, name: &[u8]) -> &mut Self {
        self.bytes(off, &(name.len() as u16).to_ne_bytes()).bytes(off + 8, name)
    }
}

fn encode_request(r: &Request<'_>) -> Vec<u8> {
    let mut buf = vec![0xa5; r.encoded_len() + 3];
    assert_eq!(r.encode(&mut buf), Ok(r.encoded_len()));
    assert_eq!(&buf[r.encoded_len()..], [0xa5; 3], "wrote past the message");
    buf.truncate(r.encoded_len());
    buf
}

fn encode_reply(r: &Reply<'_>) -> Vec<u8> {
    let mut buf = vec![0xa5; r.encoded_len() + 3];
    assert_eq!(r.encode(&mut buf), Ok(r.encoded_len()));
    assert_eq!(&buf[r.encoded_len()..], [0xa5; 3], "wrote past the message");
    buf.truncate(r.encoded_len());
    buf
}

fn encode_notification(n: &Notification<'_>) -> Vec<u8> {
    let mut buf = vec![0xa5; n.encoded_len() + 3];
    assert_eq!(n.encode(&mut buf), Ok(n.encoded_len()));
    assert_eq!(&buf[n.encoded_len()..], [0xa5; 3], "wrote past the message");
    buf.truncate(n.encoded_len());
    buf
}

fn key(name: &'static [u8]) -> Key<'static> {
    Key::new(name).unwrap()
}

/// Values are equal, floats by their bits (so NaN payloads count too).
fn same_value(a: Option<Value<'_>>, b: Option<Value<'_>>) -> bool {
    match (a, b) {
        (Some(Value::Float(x)), Some(Value::Float(y))) => x.to_bits() == y.to_bits(),
        (Some(Value::Double(x)), Some(Value::Double(y))) => x.to_bits() == y.to_bits(),
        (a, b) => a == b,
    }
}

fn same_request(a: &Request<'_>, b: &Request<'_>) -> bool {
    match (a, b) {
        (Request::Set { key: ka, value: va }, Request::Set { key: kb, value: vb }) => {
            ka == kb && same_value(Some(*va), Some(*vb))
        }
        _ => a == b,
    }
}

fn same_notification(a: &Notification<'_>, b: &Notification<'_>) -> bool {
    a.track_inst_handle == b.track_inst_handle
        && a.key == b.key
        && a.event == b.event
        && same_value(a.new_value, b.new_value)
        && same_value(a.old_value, b.old_value)
}

fn decode_request(b: &[u8]) -> Result<(), DecodeError> {
    Request::decode(b).map(drop)
}

fn decode_reply(b: &[u8]) -> Result<(), DecodeError> {
    Reply::decode(b).map(drop)
}

fn decode_notification(b: &[u8]) -> Result<(), DecodeError> {
    Notification::decode(b).map(drop)
}

/// Every proper prefix of a valid frame is `Incomplete` (never "malformed"), with `have` = its
/// length and, once the size field is there, `needed` = the whole frame. Appending bytes is
/// `TrailingBytes`.
fn assert_truncation_and_extension(frame: &[u8], decode: fn(&[u8]) -> Result<(), DecodeError>) {
    assert_eq!(decode(frame), Ok(()), "the untouched frame must decode");
    let step = if cfg!(miri) { 1 + frame.len() / 32 } else { 1 };
    for k in (0..frame.len()).step_by(step) {
        match decode(&frame[..k]) {
            Err(DecodeError::Incomplete { needed, have }) => {
                assert_eq!(have, k);
                if k >= 16 {
                    assert_eq!(needed, frame.len(), "prefix of {k} bytes");
                } else {
                    assert!(needed > k);
                }
            }
            other => panic!("prefix of {k} of {} bytes gave {other:?}", frame.len()),
        }
    }
    let mut long = frame.to_vec();
    long.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8]);
    for extra in [1, 4, 9] {
        assert_eq!(
            decode(&long[..frame.len() + extra]),
            Err(DecodeError::TrailingBytes { declared: frame.len(), actual: frame.len() + extra })
        );
    }
}

/// Encoding into every buffer shorter than the message fails with `BufferTooSmall` and
/// leaves the buffer as it was.
fn assert_short_buffers(len: usize, encode: impl Fn(&mut [u8]) -> Result<usize, EncodeError>) {
    let step = if cfg!(miri) { 1 + len / 16 } else { 1 };
    let mut lens: Vec<usize> = (0..len).step_by(step).collect();
    lens.push(len - 1);
    for short in lens {
        let mut buf = vec![0x5a; short];
        assert_eq!(encode(&mut buf), Err(EncodeError::BufferTooSmall { required: len, available: short }));
        assert!(buf.iter().all(|&b| b == 0x5a), "buffer of {short} touched");
    }
    let mut buf = vec![0x5a; len];
    assert_eq!(encode(&mut buf), Ok(len));
}

// --- golden GET replies (§5.3) --------------------------------------------------------------

/// GET of `totem.cluster_name` with value_len 0, as captured from corosync 3.1.7.
const GET_REPLY_LEN_ONLY: [u8; 40] = [
    0x02, 0, 0, 0, 0, 0, 0, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x07, 0, 0, 0, 0, 0, 0,
    0, 0x0b, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn get_reply_length_only_golden() {
    let reply = Reply::decode(&GET_REPLY_LEN_ONLY).unwrap();
    let expected = Reply {
        result: Ok(()),
        body: Response::Get(GetReply {
            value_type: Some(ValueType::String),
            value_len: 7,
            value: b"",
            buffer_len: 0,
        }),
    };
    assert_eq!(reply, expected);
    let Response::Get(get) = reply.body else { unreachable!() };
    assert_eq!(get.typed(), None, "a length-only reply carries no value");
    assert_eq!(encode_reply(&expected), GET_REPLY_LEN_ONLY);
    assert_truncation_and_extension(&GET_REPLY_LEN_ONLY, decode_reply);
}

#[test]
fn get_reply_with_value_golden() {
    // value_len 64 asked: 104 bytes, actual length 7, "debian\0", zero padding.
    let mut f = Frame::response(2, 104, 1);
    f.u64(24, 7).bytes(32, &[11]).bytes(40, b"debian\0");
    let bytes = f.0;
    assert_eq!(bytes.len(), 104);
    assert_eq!(&bytes[..24], &[2, 0, 0, 0, 0, 0, 0, 0, 104, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    let reply = Reply::decode(&bytes).unwrap();
    let get =
        GetReply { value_type: Some(ValueType::String), value_len: 7, value: b"debian\0", buffer_len: 64 };
    assert_eq!(reply, Reply { result: Ok(()), body: Response::Get(get) });
    assert_eq!(get.typed(), Some(Value::String(b"debian")));
    assert_eq!(encode_reply(&reply), bytes);
    assert_truncation_and_extension(&bytes, decode_reply);
}

#[test]
fn get_reply_error_is_40_bytes() {
    // "On error it is exactly 40 bytes with value_len 0 and type 0."
    let f = Frame::response(2, 40, 12);
    let reply = Reply::decode(&f.0).unwrap();
    assert_eq!(
        reply,
        Reply {
            result: Err(CsError::NotExist),
            body: Response::Get(GetReply { value_type: None, value_len: 0, value: b"", buffer_len: 0 })
        }
    );
    assert_eq!(encode_reply(&reply), f.0);
}

#[test]
fn get_reply_longer_than_its_buffer() {
    // corosync 3.1.7 answers a GET of stats.ipcs.*.procname (ITER_NEXT length 0) with the stored
    // length and only as many bytes as the buffer asked for; libcmap copies those.
    let mut f = Frame::response(2, 48, 1);
    f.u64(24, 9).bytes(32, &[12]).bytes(40, b"corosync");
    let reply = Reply::decode(&f.0).expect("a short buffer is not malformed");
    let Response::Get(g) = reply.body else { panic!("not a GET reply: {reply:?}") };
    assert_eq!((g.value, g.value_len, g.buffer_len), (&b"corosync"[..], 9, 8));
    assert!(g.is_truncated());
    assert_eq!(g.typed(), None);
}

#[test]
fn get_reply_malformed() {
    // A type byte outside 0..=12.
    let mut f = Frame::response(2, 40, 1);
    f.bytes(32, &[13]);
    assert_eq!(Reply::decode(&f.0), Err(DecodeError::BadField { field: "type", offset: 32, value: 13 }));
    // Shorter than the fixed part.
    let f = Frame::response(2, 32, 1);
    assert!(matches!(Reply::decode(&f.0), Err(DecodeError::BadSize { id: 2, min: 40, .. })));
}

#[test]
fn get_reply_encode_checks_the_buffer_length() {
    let get = GetReply { value_type: Some(ValueType::Binary), value_len: 5, value: b"12345", buffer_len: 4 };
    let mut out = [0x5au8; 64];
    assert_eq!(
        Reply { result: Ok(()), body: Response::Get(get) }.encode(&mut out),
        Err(EncodeError::ValueTooLarge { len: 5, max: 4 })
    );
    assert!(out.iter().all(|&b| b == 0x5a));
    // A buffer length no message can have is refused, not overflowed.
    let huge = Reply { result: Ok(()), body: Response::Get(GetReply { buffer_len: u64::MAX, ..get }) };
    assert_eq!(huge.encoded_len(), usize::MAX);
    assert!(matches!(huge.encode(&mut out), Err(EncodeError::MessageTooLarge { .. })));
}

// --- requests: every field at its offset (§5.2) ---------------------------------------------

#[test]
fn request_layouts_byte_by_byte() {
    let k = b"totem.cluster_name";
    let cases: Vec<(Request<'_>, Vec<u8>)> = vec![
        (Request::Delete { key: key(k) }, Frame::request(1, 280).name(16, k).0.clone()),
        (
            Request::Get { key: key(k), value_len: 64 },
            Frame::request(2, 288).name(16, k).u64(280, 64).0.clone(),
        ),
        (Request::Get { key: key(k), value_len: 0 }, Frame::request(2, 288).name(16, k).0.clone()),
        (
            Request::AdjustInt { key: key(k), step: -1 },
            Frame::request(3, 288).name(16, k).i32(280, -1).0.clone(),
        ),
        (
            Request::AdjustInt { key: key(k), step: 1 },
            Frame::request(3, 288).name(16, k).i32(280, 1).0.clone(),
        ),
        (
            Request::IterInit { prefix: Some(key(b"totem.")) },
            Frame::request(4, 280).name(16, b"totem.").0.clone(),
        ),
        (Request::IterInit { prefix: None }, Frame::request(4, 280).0),
        (Request::IterNext { iter_handle: 0x1682_9a12_0000_0000 }, {
            Frame::request(5, 24).u64(16, 0x1682_9a12_0000_0000).0.clone()
        }),
        (Request::IterFinalize { iter_handle: 7 }, Frame::request(6, 24).u64(16, 7).0.clone()),
        (
            Request::TrackAdd {
                key: Some(key(b"totem.")),
                track_type: TrackType::ADD | TrackType::DELETE | TrackType::MODIFY | TrackType::PREFIX,
                track_inst_handle: 0xfeed_f00d,
            },
            Frame::request(7, 296).name(16, b"totem.").i32(280, 15).u64(288, 0xfeed_f00d).0.clone(),
        ),
        (
            Request::TrackAdd {
                key: None,
                track_type: TrackType::PREFIX | TrackType::ADD,
                track_inst_handle: 1,
            },
            Frame::request(7, 296).i32(280, 12).u64(288, 1).0.clone(),
        ),
        (Request::TrackDelete { track_handle: u64::MAX }, Frame::request(8, 24).u64(16, u64::MAX).0.clone()),
        (Request::SetCurrentMap { map: Map::Default }, Frame::request(9, 24).0),
        (Request::SetCurrentMap { map: Map::Stats }, Frame::request(9, 24).i32(16, 1).0.clone()),
        (Request::SetCurrentMap { map: Map::Other(-5) }, Frame::request(9, 24).i32(16, -5).0.clone()),
    ];
    for (req, expected) in cases {
        let bytes = encode_request(&req);
        assert_eq!(bytes, expected, "{req:?}");
        assert_eq!(bytes.len(), req.encoded_len());
        assert_eq!(Request::decode(&bytes), Ok(req));
        assert_eq!(i32::from_ne_bytes(bytes[..4].try_into().unwrap()), req.kind() as i32);
        assert_truncation_and_extension(&bytes, decode_request);
        assert_short_buffers(bytes.len(), |out| req.encode(out));
    }
}

#[test]
fn get_request_header_bytes() {
    let bytes = encode_request(&Request::Get { key: key(b"totem.cluster_name"), value_len: 64 });
    assert_eq!(&bytes[..16], &[2, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x01, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&bytes[16..24], &[18, 0, 0, 0, 0, 0, 0, 0], "mar_name_t length and padding");
    assert_eq!(&bytes[24..42], b"totem.cluster_name");
    assert!(bytes[42..280].iter().all(|&b| b == 0), "NUL-padded name");
    assert_eq!(&bytes[280..288], &[64, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn set_requests_are_296_plus_value() {
    let k = b"test.key";
    // Strings: value_len = strlen, as libcmap's cmap_set_string sends it, and the NUL after it
    // in the frame.
    let req = Request::Set { key: key(k), value: Value::String(b"debian") };
    let bytes = encode_request(&req);
    let mut f = Frame::request(0, 303);
    f.name(16, k).u64(280, 6).bytes(288, &[11]).bytes(296, b"debian\0");
    assert_eq!(bytes, f.0);
    assert_eq!(Request::decode(&bytes), Ok(req));
    // Every fixed type: length from §5.4, native bytes at 296.
    let fixed: [(Value<'_>, u8, Vec<u8>); 10] = [
        (Value::Int8(-2), 1, (-2i8).to_ne_bytes().to_vec()),
        (Value::UInt8(200), 2, vec![200]),
        (Value::Int16(-300), 3, (-300i16).to_ne_bytes().to_vec()),
        (Value::UInt16(60_000), 4, 60_000u16.to_ne_bytes().to_vec()),
        (Value::Int32(-70_000), 5, (-70_000i32).to_ne_bytes().to_vec()),
        (Value::UInt32(3000), 6, 3000u32.to_ne_bytes().to_vec()),
        (Value::Int64(i64::MIN), 7, i64::MIN.to_ne_bytes().to_vec()),
        (Value::UInt64(u64::MAX), 8, u64::MAX.to_ne_bytes().to_vec()),
        (Value::Float(1.5), 9, 1.5f32.to_ne_bytes().to_vec()),
        (Value::Double(-0.25), 10, (-0.25f64).to_ne_bytes().to_vec()),
    ];
    for (value, ty, wire) in fixed {
        let req = Request::Set { key: key(k), value };
        let bytes = encode_request(&req);
        let mut f = Frame::request(0, 296 + wire.len());
        f.name(16, k).u64(280, wire.len() as u64).bytes(288, &[ty]).bytes(296, &wire);
        assert_eq!(bytes, f.0, "{value:?}");
        assert_eq!(Some(wire.len()), value.value_type().fixed_len());
        assert_eq!(Request::decode(&bytes), Ok(req));
        assert_truncation_and_extension(&bytes, decode_request);
        assert_short_buffers(bytes.len(), |out| req.encode(out));
    }
    let req = Request::Set { key: key(k), value: Value::Binary(&[0, 1, 0, 2]) };
    let bytes = encode_request(&req);
    assert_eq!(bytes.len(), 300);
    assert_eq!(&bytes[296..], &[0, 1, 0, 2]);
    assert_eq!(bytes[288], 12);
    // An empty string is one NUL; an empty binary is nothing.
    assert_eq!(encode_request(&Request::Set { key: key(k), value: Value::String(b"") }).len(), 297);
    assert_eq!(encode_request(&Request::Set { key: key(k), value: Value::Binary(b"") }).len(), 296);
    // The largest value corosync stores.
    let big = vec![0x42u8; VALUE_MAX_LEN];
    let req = Request::Set { key: key(k), value: Value::Binary(&big) };
    let bytes = encode_request(&req);
    assert_eq!(bytes.len(), 296 + 16_384);
    assert_eq!(Request::decode(&bytes), Ok(req));
    // The longest string corosync accepts: value_len 16384, 16385 bytes stored.
    let long = vec![b'x'; VALUE_MAX_LEN];
    let req = Request::Set { key: key(k), value: Value::String(&long) };
    let bytes = encode_request(&req);
    assert_eq!(bytes.len(), 296 + STORED_MAX_LEN);
    assert_eq!(&bytes[280..288], &(VALUE_MAX_LEN as u64).to_ne_bytes());
    assert_eq!(bytes.last(), Some(&0));
    assert_eq!(Request::decode(&bytes), Ok(req));
    // Replacing it with another such string is the longest notification.
    let n = Notification {
        track_inst_handle: 1,
        key: key(k),
        event: TrackEvent::Modify,
        new_value: Some(Value::String(&long)),
        old_value: Some(Value::String(&long)),
    };
    assert_eq!(encode_notification(&n).len(), NOTIFICATION_MAX_LEN);
    assert_eq!(NOTIFICATION_MAX_LEN, 33_106);
}

#[test]
fn set_request_as_libcmap_sends_strings() {
    // libcmap sends a string without its NUL; the decoder takes it as it is.
    let mut f = Frame::request(0, 301);
    f.name(16, b"a.b").u64(280, 5).bytes(288, &[11]).bytes(296, b"hello");
    assert_eq!(Request::decode(&f.0), Ok(Request::Set { key: key(b"a.b"), value: Value::String(b"hello") }));
}

#[test]
fn request_decode_errors() {
    for id in [10, 11, -1, -3, i32::MIN, i32::MAX] {
        let f = Frame::request(id, 24);
        assert_eq!(Request::decode(&f.0), Err(DecodeError::UnknownId { id }));
    }
    // SET: type 0 is no value at all, and cannot carry bytes.
    let mut f = Frame::request(0, 296);
    f.name(16, b"a.b");
    assert_eq!(Request::decode(&f.0), Err(DecodeError::BadField { field: "type", offset: 288, value: 0 }));
    let mut f = Frame::request(0, 297);
    f.name(16, b"a.b").u64(280, 1).bytes(296, b"x");
    assert_eq!(
        Request::decode(&f.0),
        Err(DecodeError::BadField { field: "value_len", offset: 280, value: 1 })
    );
    // SET: a fixed type of the wrong length.
    let mut f = Frame::request(0, 298);
    f.name(16, b"a.b").u64(280, 2).bytes(288, &[6]);
    assert_eq!(
        Request::decode(&f.0),
        Err(DecodeError::BadField { field: "value_len", offset: 280, value: 2 })
    );
    // SET: value_len past the frame, or short of it.
    let mut f = Frame::request(0, 300);
    f.name(16, b"a.b").u64(280, 5).bytes(288, &[12]);
    assert_eq!(
        Request::decode(&f.0),
        Err(DecodeError::LengthOutOfBounds { field: "value_len", offset: 280, len: 5, available: 4 })
    );
    f.u64(280, u64::MAX);
    assert!(matches!(Request::decode(&f.0), Err(DecodeError::LengthOutOfBounds { len: u64::MAX, .. })));
    f.u64(280, 3);
    assert!(matches!(Request::decode(&f.0), Err(DecodeError::BadSize { id: 0, declared: 300, .. })));
    // SET: unknown type.
    f.u64(280, 4).bytes(288, &[99]);
    assert_eq!(Request::decode(&f.0), Err(DecodeError::BadField { field: "type", offset: 288, value: 99 }));
    // A key without its NUL within 256 bytes.
    let mut f = Frame::request(1, 280);
    f.bytes(16, &[255, 0]).bytes(24, &[b'k'; 256]);
    assert_eq!(Request::decode(&f.0), Err(DecodeError::Unterminated { field: "key_name.value", offset: 24 }));
    // Fixed-size requests with a size that disagrees with their layout.
    for (id, size) in [(1, 288), (2, 280), (5, 32), (9, 16), (7, 288)] {
        let f = Frame::request(id, size);
        assert!(matches!(Request::decode(&f.0), Err(DecodeError::BadSize { .. })), "id {id} size {size}");
    }
}

#[test]
fn key_limits() {
    let long = [b'k'; 256];
    assert_eq!(Key::new(&long), Err(EncodeError::NameTooLong { len: 256, max: 255 }));
    assert_eq!(Key::new(&long[..255]).unwrap().as_bytes().len(), KEY_MAX_LEN);
    assert_eq!(Key::new(b"a\0b"), Err(EncodeError::NulInName));
    // The longest key round-trips and still has its NUL on the wire.
    let req = Request::Delete { key: Key::new(&long[..255]).unwrap() };
    let bytes = encode_request(&req);
    assert_eq!(bytes[24 + 255], 0);
    assert_eq!(Request::decode(&bytes), Ok(req));
    assert!(key(b"totem.cluster_name").is_valid_server_name());
    assert!(!key(b"x!").is_valid_server_name());
    assert!(!key(b"ab").is_valid_server_name());
    assert_eq!(key(b"a.b").as_str(), Some("a.b"));
    assert_eq!(format!("{:?}", key(b"a\x01")), "Key(\"a\\x01\")");
}

#[test]
fn value_types_and_track_events_display_as_corosync_cmapctl() {
    assert_eq!(ValueType::UInt32.to_string(), "u32");
    assert_eq!(ValueType::String.to_string(), "str");
    assert_eq!(ValueType::Double.to_string(), ValueType::Double.cmapctl_name());
    assert_eq!(TrackEvent::Add.to_string(), "create");
    assert_eq!(TrackEvent::Modify.to_string(), "modify");
    assert_eq!(TrackEvent::Delete.to_string(), "delete");
}

#[test]
fn an_empty_optional_key_is_none() {
    // `Some(empty)` cannot be told apart from `None` on the wire (length 0), and a frame with
    // a non-zero length but an empty name decodes as `None` too, so decoding is stable.
    let req = Request::IterInit { prefix: Some(key(b"")) };
    let bytes = encode_request(&req);
    assert_eq!(Request::decode(&bytes), Ok(Request::IterInit { prefix: None }));
    let mut f = Frame::request(4, 280);
    f.bytes(16, &[5]);
    assert_eq!(Request::decode(&f.0), Ok(Request::IterInit { prefix: None }));
    let mut f = Frame::request(7, 296);
    f.bytes(16, &[3]);
    assert!(matches!(Request::decode(&f.0), Ok(Request::TrackAdd { key: None, .. })));
}

// --- replies (§5.1, §5.3) -------------------------------------------------------------------

#[test]
fn reply_layouts_byte_by_byte() {
    let ok = Ok(());
    let cases: Vec<(Reply<'_>, Vec<u8>)> = vec![
        (Reply { result: ok, body: Response::Set }, Frame::response(0, 24, 1).0),
        (Reply { result: Err(CsError::Access), body: Response::Set }, Frame::response(0, 24, 11).0),
        (Reply { result: Err(CsError::NotExist), body: Response::Delete }, Frame::response(1, 24, 12).0),
        (Reply { result: ok, body: Response::AdjustInt }, Frame::response(3, 24, 1).0),
        (Reply { result: ok, body: Response::IterInit { iter_handle: 0x1682_9a12_0000_0000 } }, {
            Frame::response(4, 32, 1).u64(24, 0x1682_9a12_0000_0000).0.clone()
        }),
        (
            Reply {
                result: ok,
                body: Response::IterNext {
                    key: key(b"totem.token"),
                    value_len: 4,
                    value_type: Some(ValueType::UInt32),
                },
            },
            Frame::response(5, 304, 1).name(24, b"totem.token").u64(288, 4).bytes(296, &[6]).0.clone(),
        ),
        (
            // The end of an iteration: a full 304-byte reply with zeroed fields.
            Reply {
                result: Err(CsError::NoSections),
                body: Response::IterNext { key: key(b""), value_len: 0, value_type: None },
            },
            Frame::response(5, 304, 27).0,
        ),
        (
            Reply { result: Err(CsError::BadHandle), body: Response::IterFinalize },
            Frame::response(6, 24, 9).0,
        ),
        (Reply { result: ok, body: Response::TrackAdd { track_handle: 42 } }, {
            Frame::response(7, 32, 1).u64(24, 42).0.clone()
        }),
        (Reply { result: ok, body: Response::TrackDelete { track_inst_handle: 0xfeed_f00d } }, {
            Frame::response(8, 32, 1).u64(24, 0xfeed_f00d).0.clone()
        }),
        (Reply { result: Err(CsError::Busy), body: Response::SetCurrentMap }, Frame::response(10, 24, 10).0),
    ];
    for (reply, expected) in cases {
        let bytes = encode_reply(&reply);
        assert_eq!(bytes, expected, "{reply:?}");
        assert_eq!(Reply::decode(&bytes), Ok(reply));
        assert_eq!(reply.body.id(), i32::from_ne_bytes(bytes[..4].try_into().unwrap()));
        assert_truncation_and_extension(&bytes, decode_reply);
        assert_short_buffers(bytes.len(), |out| reply.encode(out));
    }
}

#[test]
fn response_ids() {
    // SET_CURRENT_MAP (9) is answered with 10; 9 is the notification.
    assert_eq!(RequestKind::SetCurrentMap.response_id(), RESPONSE_SET_CURRENT_MAP);
    assert_eq!(RESPONSE_SET_CURRENT_MAP, 10);
    assert_eq!(NOTIFY_ID, 9);
    for id in 0..9 {
        assert_eq!(RequestKind::from_id(id).unwrap().response_id(), id);
    }
    assert_eq!(RequestKind::from_id(10), None);
    assert_eq!(RequestKind::from_id(-1), None);
    // A notification is not a reply, and a reply is not a notification.
    let n = encode_notification(&Notification {
        track_inst_handle: 1,
        key: key(b"a.b"),
        event: TrackEvent::Delete,
        new_value: None,
        old_value: Some(Value::UInt8(1)),
    });
    assert_eq!(Reply::decode(&n), Err(DecodeError::UnknownId { id: 9 }));
    assert_eq!(Notification::decode(&GET_REPLY_LEN_ONLY), Err(DecodeError::UnknownId { id: 2 }));
    for id in [11, -1, 100] {
        let f = Frame::response(id, 24, 1);
        assert_eq!(Reply::decode(&f.0), Err(DecodeError::UnknownId { id }));
    }
    let mut buf = [0u8; 24];
    assert_eq!(encode_status(&mut buf, 0, 7), Ok(24));
    assert_eq!(Reply::decode(&buf).unwrap().result, Err(CsError::InvalidParam));
}

// --- notifications (§5.3, §5.5) -------------------------------------------------------------

#[test]
fn notification_layout_with_unaligned_values() {
    // MODIFY with a 1-byte new value: the old value starts at 337, not on any alignment.
    let n = Notification {
        track_inst_handle: 0x1122_3344_5566_7788,
        key: key(b"totem.token"),
        event: TrackEvent::Modify,
        new_value: Some(Value::UInt8(7)),
        old_value: Some(Value::UInt64(0x0102_0304_0506_0708)),
    };
    let bytes = encode_notification(&n);
    let mut f = Frame::response(9, 345, 1);
    f.u64(24, 0x1122_3344_5566_7788)
        .name(32, b"totem.token")
        .i32(296, 2)
        .bytes(304, &[2])
        .bytes(312, &[8])
        .u64(320, 1)
        .u64(328, 8)
        .bytes(336, &[7])
        .u64(337, 0x0102_0304_0506_0708);
    assert_eq!(bytes, f.0);
    assert_eq!(bytes.len(), 336 + 1 + 8);
    assert_eq!(Notification::decode(&bytes), Ok(n));
    assert_truncation_and_extension(&bytes, decode_notification);
    assert_short_buffers(bytes.len(), |out| n.encode(out));
}

#[test]
fn notification_events_and_values() {
    // ADD: new value, old type 0 and length 0.
    let add = Notification {
        track_inst_handle: 5,
        key: key(b"a.new.key"),
        event: TrackEvent::Add,
        new_value: Some(Value::String(b"hello")),
        old_value: None,
    };
    let bytes = encode_notification(&add);
    assert_eq!(bytes.len(), 336 + 6);
    assert_eq!((bytes[304], bytes[312]), (11, 0));
    assert_eq!(&bytes[320..336], &[6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&bytes[336..], b"hello\0");
    assert_eq!(Notification::decode(&bytes), Ok(add));
    // DELETE: new type 0 and length 0, old value.
    let del = Notification {
        track_inst_handle: 5,
        key: key(b"a.new.key"),
        event: TrackEvent::Delete,
        new_value: None,
        old_value: Some(Value::Binary(b"\x00\xff\x00")),
    };
    let bytes = encode_notification(&del);
    assert_eq!(bytes.len(), 339);
    assert_eq!((bytes[304], bytes[312]), (0, 12));
    assert_eq!(&bytes[336..], b"\x00\xff\x00");
    assert_eq!(Notification::decode(&bytes), Ok(del));
    // Two strings back to back: the old one starts at 336 + n.
    let modify = Notification {
        track_inst_handle: 0,
        key: key(b"totem.cluster_name"),
        event: TrackEvent::Modify,
        new_value: Some(Value::String(b"abc")),
        old_value: Some(Value::String(b"debian")),
    };
    let bytes = encode_notification(&modify);
    assert_eq!(&bytes[336..], b"abc\0debian\0");
    assert_eq!(i32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 336 + 4 + 7);
    assert_eq!(Notification::decode(&bytes), Ok(modify));
}

#[test]
fn notification_decode_errors() {
    let mut f = Frame::response(9, 336, 1);
    f.name(32, b"a.b");
    // Only 1, 2 and 4 are events; PREFIX (8) never appears.
    for event in [0, 3, 8, 12, -1] {
        f.i32(296, event);
        assert_eq!(
            Notification::decode(&f.0),
            Err(DecodeError::BadField { field: "event", offset: 296, value: event as u64 })
        );
    }
    f.i32(296, 4);
    assert!(Notification::decode(&f.0).is_ok());
    // A type with no value, a value with no type, bad type, lengths past the frame.
    f.bytes(304, &[6]);
    assert_eq!(
        Notification::decode(&f.0),
        Err(DecodeError::BadField { field: "value_len", offset: 320, value: 0 })
    );
    f.bytes(304, &[13]);
    assert_eq!(
        Notification::decode(&f.0),
        Err(DecodeError::BadField { field: "new_value_type", offset: 304, value: 13 })
    );
    f.bytes(304, &[0]).bytes(312, &[200]);
    assert_eq!(
        Notification::decode(&f.0),
        Err(DecodeError::BadField { field: "old_value_type", offset: 312, value: 200 })
    );
    f.bytes(312, &[0]).u64(320, 1);
    assert_eq!(
        Notification::decode(&f.0),
        Err(DecodeError::LengthOutOfBounds { field: "new_value_len", offset: 320, len: 1, available: 0 })
    );
    f.u64(320, 0).u64(328, u64::MAX);
    assert!(matches!(
        Notification::decode(&f.0),
        Err(DecodeError::LengthOutOfBounds { field: "old_value_len", offset: 328, .. })
    ));
    // Bytes past both values.
    let mut f = Frame::response(9, 340, 1);
    f.name(32, b"a.b").i32(296, 4);
    assert!(matches!(Notification::decode(&f.0), Err(DecodeError::BadSize { id: 9, .. })));
    // A value with no type (type 0 but a length).
    f.u64(320, 4);
    assert_eq!(
        Notification::decode(&f.0),
        Err(DecodeError::BadField { field: "value_len", offset: 320, value: 4 })
    );
}

// --- value types (§5.4) ---------------------------------------------------------------------

#[test]
fn all_value_types_with_edge_values() {
    let strings: [&[u8]; 4] = [b"", b"\0", b"a\0b", b"\xff\xfe"];
    let mut values: Vec<Value<'_>> = vec![
        Value::Int8(i8::MIN),
        Value::Int8(i8::MAX),
        Value::Int8(0),
        Value::UInt8(u8::MAX),
        Value::UInt8(0),
        Value::Int16(i16::MIN),
        Value::Int16(i16::MAX),
        Value::UInt16(u16::MAX),
        Value::Int32(i32::MIN),
        Value::Int32(i32::MAX),
        Value::UInt32(u32::MAX),
        Value::Int64(i64::MIN),
        Value::Int64(i64::MAX),
        Value::UInt64(u64::MAX),
        Value::UInt64(0),
        Value::Float(f32::MIN),
        Value::Float(f32::MAX),
        Value::Float(f32::MIN_POSITIVE / 2.0),
        Value::Float(-0.0),
        Value::Float(f32::INFINITY),
        Value::Float(f32::NEG_INFINITY),
        Value::Float(f32::NAN),
        Value::Float(f32::from_bits(0x7f80_0001)),
        Value::Double(f64::MIN),
        Value::Double(f64::MAX),
        Value::Double(f64::MIN_POSITIVE / 2.0),
        Value::Double(-0.0),
        Value::Double(f64::NEG_INFINITY),
        Value::Double(f64::from_bits(0xfff8_0000_0000_0001)),
        Value::Binary(b""),
        Value::Binary(&[0; 3]),
    ];
    values.extend(strings.iter().map(|s| Value::String(s)));
    let big = vec![b'x'; VALUE_MAX_LEN - 1];
    values.push(Value::String(&big));
    values.push(Value::Binary(&big));
    for ty in ValueType::ALL {
        assert_eq!(ValueType::from_raw(ty as u8), Some(ty));
        assert!(values.iter().any(|v| v.value_type() == ty), "no edge value for {ty:?}");
    }
    assert_eq!(ValueType::from_raw(0), None);
    assert_eq!(ValueType::from_raw(13), None);
    for v in values {
        let ty = v.value_type();
        let mut wire = vec![0u8; v.wire_len()];
        assert_eq!(v.write_to(&mut wire), Some(wire.len()));
        if let Some(n) = ty.fixed_len() {
            assert_eq!(wire.len(), n);
        }
        if let Value::String(s) = v {
            assert_eq!(wire.len(), s.len() + 1, "a string's wire length counts its NUL");
            assert_eq!(wire.last(), Some(&0));
        }
        assert!(same_value(Value::from_wire(ty, &wire), Some(v)), "{v:?}");
        // Through every message that carries a value.
        let set = Request::Set { key: key(b"k.v"), value: v };
        let bytes = encode_request(&set);
        assert!(same_request(&Request::decode(&bytes).unwrap(), &set), "{v:?}");
        let n = Notification {
            track_inst_handle: 1,
            key: key(b"k.v"),
            event: TrackEvent::Modify,
            new_value: Some(v),
            old_value: Some(v),
        };
        let bytes = encode_notification(&n);
        assert!(same_notification(&Notification::decode(&bytes).unwrap(), &n));
        let get =
            GetReply { value_type: Some(ty), value_len: wire.len() as u64, value: &wire, buffer_len: 64 };
        let get = GetReply { buffer_len: get.buffer_len.max(wire.len() as u64), ..get };
        let reply = Reply { result: Ok(()), body: Response::Get(get) };
        let bytes = encode_reply(&reply);
        let Response::Get(back) = Reply::decode(&bytes).unwrap().body else { panic!() };
        assert!(same_value(back.typed(), Some(v)), "{v:?}");
    }
    // Fixed types need their exact length.
    assert_eq!(Value::from_wire(ValueType::UInt32, &[0, 0]), None);
    assert_eq!(Value::from_wire(ValueType::Int8, &[]), None);
    assert_eq!(Value::from_wire(ValueType::Double, &[0; 9]), None);
    assert_eq!(Value::from_wire(ValueType::String, b"abc"), Some(Value::String(b"abc")));
    assert_eq!(Value::UInt64(u64::MAX).as_i64(), None);
    assert_eq!(Value::Int8(-1).as_i64(), Some(-1));
    assert_eq!(Value::Float(1.0).as_i64(), None);
    let mut short = [0u8; 3];
    assert_eq!(Value::UInt32(1).write_to(&mut short), None);
}

#[test]
fn value_type_metadata() {
    let names = ["i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "flt", "dbl", "str", "bin"];
    for (i, (ty, name)) in ValueType::ALL.into_iter().zip(names).enumerate() {
        assert_eq!(ty as u8 as usize, i + 1);
        assert_eq!(ty.cmapctl_name(), name);
        assert_eq!(ty.is_integer(), i < 8);
    }
    assert!(TrackType::ALL.is_valid());
    assert!(!TrackType(16).is_valid());
    assert!(TrackType::ALL.contains(TrackType::PREFIX));
    assert_eq!(TrackEvent::Add.track_type(), TrackType::ADD);
    for raw in [1, 2, 4] {
        assert_eq!(TrackEvent::from_raw(raw).unwrap() as i32, raw);
    }
    assert_eq!(Map::from_raw(1), Map::Stats);
    assert_eq!(Map::Other(3).to_raw(), 3);
}

// --- property tests -------------------------------------------------------------------------

fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 0..=KEY_MAX_LEN)
}

fn some_key_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(1u8..=255, 1..=KEY_MAX_LEN))
}

/// A value of any type; floats from any bits, NaNs included; strings and binaries from any
/// bytes (a string may hold NULs).
#[derive(Clone, Debug)]
enum OwnedValue {
    Fixed(ValueType, [u8; 8]),
    Bytes(ValueType, Vec<u8>),
}

impl OwnedValue {
    fn value(&self) -> Value<'_> {
        match self {
            Self::Fixed(ty, raw) => Value::from_wire(*ty, &raw[..ty.fixed_len().unwrap()]).unwrap(),
            Self::Bytes(ValueType::String, b) => Value::String(b),
            Self::Bytes(_, b) => Value::Binary(b),
        }
    }
}

fn owned_value() -> impl Strategy<Value = OwnedValue> {
    let max = if cfg!(miri) { 32 } else { 600 };
    prop_oneof![
        (0usize..10, any::<[u8; 8]>()).prop_map(|(i, raw)| OwnedValue::Fixed(ValueType::ALL[i], raw)),
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..max)).prop_map(|(s, b)| {
            OwnedValue::Bytes(if s { ValueType::String } else { ValueType::Binary }, b)
        }),
    ]
}

fn value_type() -> impl Strategy<Value = Option<ValueType>> {
    proptest::option::of((0usize..12).prop_map(|i| ValueType::ALL[i]))
}

fn result() -> impl Strategy<Value = Result<(), CsError>> {
    prop_oneof![
        Just(Ok(())),
        any::<i32>().prop_filter("CS_OK", |r| *r != 1).prop_map(|r| Err(CsError::from_raw(r)))
    ]
}

fn frame_bytes() -> impl Strategy<Value = Vec<u8>> {
    let max = if cfg!(miri) { 400 } else { 1200 };
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Bytes with a plausible header: an id near the valid range and `size` equal to the length,
/// so that decoders get past framing and into the bodies.
fn framed_bytes() -> impl Strategy<Value = Vec<u8>> {
    (-2i32..12, any::<i32>(), frame_bytes(), 0usize..4).prop_map(|(id, error, mut body, pad)| {
        let len = body.len().max(24) + pad;
        body.resize(len, 0);
        body[..4].copy_from_slice(&id.to_ne_bytes());
        body[8..12].copy_from_slice(&(len as i32).to_ne_bytes());
        body[16..20].copy_from_slice(&error.to_ne_bytes());
        body
    })
}

fn decode_all(data: &[u8]) {
    let _ = Request::decode(data);
    if let Ok(r) = Reply::decode(data) {
        if let Response::Get(g) = r.body {
            let _ = g.typed();
        }
    }
    let _ = Notification::decode(data);
}

/// One valid frame of every CMAP message kind.
fn valid_frames() -> Vec<Vec<u8>> {
    let k = key(b"totem.cluster_name");
    let requests = [
        Request::Set { key: k, value: Value::String(b"debian") },
        Request::Set { key: k, value: Value::UInt64(9) },
        Request::Delete { key: k },
        Request::Get { key: k, value_len: 64 },
        Request::AdjustInt { key: k, step: 1 },
        Request::IterInit { prefix: Some(k) },
        Request::IterNext { iter_handle: 1 },
        Request::IterFinalize { iter_handle: 1 },
        Request::TrackAdd { key: Some(k), track_type: TrackType::ALL, track_inst_handle: 2 },
        Request::TrackDelete { track_handle: 3 },
        Request::SetCurrentMap { map: Map::Stats },
    ];
    let replies = [
        Reply { result: Ok(()), body: Response::Set },
        Reply {
            result: Ok(()),
            body: Response::Get(GetReply {
                value_type: Some(ValueType::String),
                value_len: 7,
                value: b"debian\0",
                buffer_len: 16,
            }),
        },
        Reply { result: Ok(()), body: Response::IterInit { iter_handle: 4 } },
        Reply {
            result: Ok(()),
            body: Response::IterNext { key: k, value_len: 7, value_type: Some(ValueType::String) },
        },
        Reply { result: Ok(()), body: Response::TrackAdd { track_handle: 5 } },
        Reply { result: Ok(()), body: Response::TrackDelete { track_inst_handle: 6 } },
        Reply { result: Err(CsError::Busy), body: Response::SetCurrentMap },
    ];
    let notification = Notification {
        track_inst_handle: 7,
        key: k,
        event: TrackEvent::Modify,
        new_value: Some(Value::String(b"abc")),
        old_value: Some(Value::UInt16(3)),
    };
    let mut frames: Vec<Vec<u8>> = requests.iter().map(encode_request).collect();
    frames.extend(replies.iter().map(encode_reply));
    frames.push(encode_notification(&notification));
    frames
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_round_trip(
        which in 0usize..10,
        k in key_bytes(),
        opt in some_key_bytes(),
        v in owned_value(),
        a in any::<u64>(),
        b in any::<i32>(),
    ) {
        let key = Key::new(&k).unwrap();
        let opt = opt.as_deref().map(|o| Key::new(o).unwrap());
        let req = match which {
            0 => Request::Set { key, value: v.value() },
            1 => Request::Delete { key },
            2 => Request::Get { key, value_len: a },
            3 => Request::AdjustInt { key, step: b },
            4 => Request::IterInit { prefix: opt },
            5 => Request::IterNext { iter_handle: a },
            6 => Request::IterFinalize { iter_handle: a },
            7 => Request::TrackAdd { key: opt, track_type: TrackType(b), track_inst_handle: a },
            8 => Request::TrackDelete { track_handle: a },
            _ => Request::SetCurrentMap { map: Map::from_raw(b) },
        };
        let bytes = encode_request(&req);
        prop_assert_eq!(bytes.len(), req.encoded_len());
        let decoded = Request::decode(&bytes).unwrap();
        prop_assert!(same_request(&decoded, &req), "{:?} != {:?}", decoded, req);
        prop_assert_eq!(encode_request(&decoded), bytes);
    }

    #[test]
    fn reply_round_trip(
        which in 0usize..10,
        result in result(),
        k in key_bytes(),
        a in any::<u64>(),
        ty in value_type(),
        value in proptest::collection::vec(any::<u8>(), 0..64),
        spare in 0u64..64,
        length_only in any::<bool>(),
    ) {
        let get = if length_only {
            GetReply { value_type: ty, value_len: a, value: b"", buffer_len: 0 }
        } else {
            GetReply { value_type: ty, value_len: value.len() as u64, value: &value, buffer_len: value.len() as u64 + spare }
        };
        let body = match which {
            0 => Response::Set,
            1 => Response::Delete,
            2 => Response::Get(get),
            3 => Response::AdjustInt,
            4 => Response::IterInit { iter_handle: a },
            5 => Response::IterNext { key: Key::new(&k).unwrap(), value_len: a, value_type: ty },
            6 => Response::IterFinalize,
            7 => Response::TrackAdd { track_handle: a },
            8 => Response::TrackDelete { track_inst_handle: a },
            _ => Response::SetCurrentMap,
        };
        let reply = Reply { result, body };
        let bytes = encode_reply(&reply);
        prop_assert_eq!(Reply::decode(&bytes), Ok(reply));
        prop_assert_eq!(CsError::raw_of(result), i32::from_ne_bytes(bytes[16..20].try_into().unwrap()));
    }

    #[test]
    fn notification_round_trip(
        handle in any::<u64>(),
        k in key_bytes(),
        event in prop_oneof![Just(TrackEvent::Add), Just(TrackEvent::Modify), Just(TrackEvent::Delete)],
        new in proptest::option::of(owned_value()),
        old in proptest::option::of(owned_value()),
    ) {
        let n = Notification {
            track_inst_handle: handle,
            key: Key::new(&k).unwrap(),
            event,
            new_value: new.as_ref().map(OwnedValue::value),
            old_value: old.as_ref().map(OwnedValue::value),
        };
        let bytes = encode_notification(&n);
        let new_len = n.new_value.map_or(0, |v| v.wire_len());
        let old_len = n.old_value.map_or(0, |v| v.wire_len());
        prop_assert_eq!(bytes.len(), 336 + new_len + old_len);
        let decoded = Notification::decode(&bytes).unwrap();
        prop_assert!(same_notification(&decoded, &n), "{:?} != {:?}", decoded, n);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in frame_bytes()) {
        decode_all(&data);
    }

    #[test]
    fn framed_garbage_never_panics(data in framed_bytes()) {
        decode_all(&data);
        // A well-framed message that fails is malformed, not incomplete.
        for r in [
            Request::decode(&data).map(drop),
            Reply::decode(&data).map(drop),
            Notification::decode(&data).map(drop),
        ] {
            if let Err(e) = r {
                prop_assert!(!matches!(e, DecodeError::Incomplete { .. }), "{:?}", e);
            }
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        which in any::<usize>(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
        tail in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        let frames = valid_frames();
        let mut frame = frames[which % frames.len()].clone();
        let len = frame.len();
        // Truncated: always Incomplete.
        let cut = cut % len;
        for e in [
            Request::decode(&frame[..cut]).map(drop),
            Reply::decode(&frame[..cut]).map(drop),
            Notification::decode(&frame[..cut]).map(drop),
        ] {
            prop_assert!(matches!(e, Err(DecodeError::Incomplete { have, .. }) if have == cut), "{:?}", e);
        }
        // Extended: never accepted as the same frame.
        frame.extend_from_slice(&tail);
        decode_all(&frame);
        prop_assert!(Request::decode(&frame).is_err() && Reply::decode(&frame).is_err());
        frame.truncate(len);
        // Flipped bytes anywhere, including the header.
        for (at, x) in flips {
            frame[at % len] ^= x;
        }
        decode_all(&frame);
        let cut2 = cut % frame.len();
        decode_all(&frame[..cut2]);
    }
}
