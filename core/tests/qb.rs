//! The libqb handshake and framing: golden bytes from docs/protocol.md (§1.3, §1.4, §4.1,
//! §5.1), round trips, encoding into short buffers, and robustness against arbitrary and
//! mutated input (truncation is always `Incomplete`, never "malformed").

use corowire::qb::{
    encode_generic_reply, ConnectRequest, ConnectResponse, ConnectionType, ReplyHeader,
    CONNECTION_REQUEST_LEN, CONNECTION_RESPONSE_LEN, DEFAULT_MAX_MSG_SIZE,
};
use corowire::{cmap, frame_len, votequorum, CsError, DecodeError, EncodeError, SetupError, Status};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 });
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

/// The 24-byte AUTHENTICATE request of libcmap, as captured (§1.3).
const CONNECT_REQUEST_1M: [u8; 24] =
    [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0];

/// corosync's generic reject: id 0, size 24, error 7 (§5.1, §8.2).
const GENERIC_REJECT: [u8; 24] = [0, 0, 0, 0, 0, 0, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0];

const REQUEST_PATH: &[u8] = b"/dev/shm/qb-1234-5678-29-Ab3dEf/qb-request-cmap";
const RESPONSE_PATH: &[u8] = b"/dev/shm/qb-1234-5678-29-Ab3dEf/qb-response-cmap";
const EVENT_PATH: &[u8] = b"/dev/shm/qb-1234-5678-29-Ab3dEf/qb-event-cmap";

fn i32_at(buf: &[u8], off: usize) -> i32 {
    i32::from_ne_bytes(buf[off..off + 4].try_into().unwrap())
}

fn u32_at(buf: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap())
}

fn u64_at(buf: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap())
}

/// A NUL-terminated, zero-padded path field.
fn assert_path_field(field: &[u8], path: &[u8]) {
    assert_eq!(field.len(), 4096);
    assert_eq!(&field[..path.len()], path);
    assert!(field[path.len()..].iter().all(|&b| b == 0));
}

fn shm_response() -> ConnectResponse<'static> {
    ConnectResponse {
        connection_type: ConnectionType::Shm,
        max_msg_size: DEFAULT_MAX_MSG_SIZE,
        connection: 0x5555_dead_beef,
        request: REQUEST_PATH,
        response: RESPONSE_PATH,
        event: EVENT_PATH,
    }
}

fn encoded_response(r: &ConnectResponse<'_>) -> Vec<u8> {
    let mut buf = vec![0xa5; CONNECTION_RESPONSE_LEN + 7];
    assert_eq!(r.encode(&mut buf), Ok(CONNECTION_RESPONSE_LEN));
    assert!(buf[CONNECTION_RESPONSE_LEN..].iter().all(|&b| b == 0xa5), "wrote past the message");
    buf.truncate(CONNECTION_RESPONSE_LEN);
    buf
}

/// Every proper prefix of a valid frame is `Incomplete` with `have` = its length, and once the
/// header's size field is present, `needed` = the whole frame.
fn assert_truncations_incomplete(frame: &[u8], decode: impl Fn(&[u8]) -> Result<(), DecodeError>) {
    let step = if cfg!(miri) { 1 + frame.len() / 64 } else { 1 };
    for k in (0..frame.len()).step_by(step) {
        match decode(&frame[..k]) {
            Err(DecodeError::Incomplete { needed, have }) => {
                assert_eq!(have, k);
                if k >= 16 {
                    assert_eq!(needed, frame.len(), "prefix of {k} bytes");
                } else {
                    assert!(needed > k, "prefix of {k} bytes: needed {needed}");
                }
            }
            other => panic!("prefix of {k} of {} bytes gave {other:?}", frame.len()),
        }
    }
}

/// A valid frame with bytes appended is `TrailingBytes`, not accepted.
fn assert_extension_rejected(frame: &[u8], decode: impl Fn(&[u8]) -> Result<(), DecodeError>) {
    let mut long = frame.to_vec();
    long.extend_from_slice(&[0; 9]);
    for extra in [1, 8, 9] {
        assert_eq!(
            decode(&long[..frame.len() + extra]),
            Err(DecodeError::TrailingBytes { declared: frame.len(), actual: frame.len() + extra })
        );
    }
}

// --- connection request ---------------------------------------------------------------------

#[test]
fn connection_request_golden_bytes() {
    assert_eq!(CONNECTION_REQUEST_LEN, 24);
    let mut buf = [0xa5u8; 24];
    assert_eq!(ConnectRequest::new(DEFAULT_MAX_MSG_SIZE).encode(&mut buf), Ok(24));
    assert_eq!(buf, CONNECT_REQUEST_1M);
    assert_eq!(ConnectRequest::decode(&CONNECT_REQUEST_1M), Ok(ConnectRequest { max_msg_size: 1_048_576 }));
}

#[test]
fn connection_request_is_raised_to_the_response_size() {
    // A libqb client asking for 8192 sent 12328 (§1.3).
    assert_eq!(ConnectRequest::new(8192).max_msg_size, 12_328);
    assert_eq!(ConnectRequest::new(0).max_msg_size, 12_328);
    assert_eq!(ConnectRequest::new(12_329).max_msg_size, 12_329);
    let mut buf = [0u8; 24];
    ConnectRequest::new(8192).encode(&mut buf).unwrap();
    assert_eq!(u32_at(&buf, 16), 12_328);
}

#[test]
fn connection_request_rejects_other_ids_and_sizes() {
    for id in [0i32, -2, -3, 1] {
        let mut frame = CONNECT_REQUEST_1M;
        frame[..4].copy_from_slice(&id.to_ne_bytes());
        assert_eq!(ConnectRequest::decode(&frame), Err(DecodeError::UnknownId { id }));
    }
    let mut frame = CONNECT_REQUEST_1M;
    frame[8] = 0x10; // size 16: a bare header where 24 bytes are needed
    assert!(matches!(ConnectRequest::decode(&frame[..16]), Err(DecodeError::BadSize { .. })));
    let mut frame = CONNECT_REQUEST_1M;
    frame[8..12].copy_from_slice(&(-24i32).to_ne_bytes());
    assert!(matches!(ConnectRequest::decode(&frame), Err(DecodeError::BadSize { declared: -24, .. })));
    assert_truncations_incomplete(&CONNECT_REQUEST_1M, |b| ConnectRequest::decode(b).map(drop));
    assert_extension_rejected(&CONNECT_REQUEST_1M, |b| ConnectRequest::decode(b).map(drop));
}

// --- connection response --------------------------------------------------------------------

#[test]
fn connection_response_fields_at_their_offsets() {
    assert_eq!(CONNECTION_RESPONSE_LEN, 12_328);
    let buf = encoded_response(&shm_response());
    assert_eq!(i32_at(&buf, 0), -1);
    assert_eq!(i32_at(&buf, 4), 0);
    assert_eq!(i32_at(&buf, 8), 12_328);
    assert_eq!(i32_at(&buf, 16), 0);
    assert_eq!(i32_at(&buf, 24), 1, "connection_type SHM");
    assert_eq!(u32_at(&buf, 28), 1_048_576);
    assert_eq!(u64_at(&buf, 32), 0x5555_dead_beef);
    assert_path_field(&buf[40..4136], REQUEST_PATH);
    assert_path_field(&buf[4136..8232], RESPONSE_PATH);
    assert_path_field(&buf[8232..12_328], EVENT_PATH);
    assert_eq!(ConnectResponse::decode(&buf), Ok(Ok(shm_response())));
}

#[test]
fn connection_response_built_by_hand_decodes() {
    // The bytes as libqb lays them out, built field by field rather than by the encoder.
    let mut buf = vec![0u8; 12_328];
    buf[..4].copy_from_slice(&(-1i32).to_ne_bytes());
    buf[8..12].copy_from_slice(&12_328i32.to_ne_bytes());
    buf[24..28].copy_from_slice(&0i32.to_ne_bytes());
    buf[28..32].copy_from_slice(&12_328u32.to_ne_bytes());
    buf[40..45].copy_from_slice(b"/ctl\0");
    buf[4136..4140].copy_from_slice(b"/rs\0");
    let r = ConnectResponse::decode(&buf).unwrap().unwrap();
    assert_eq!(r.connection_type, ConnectionType::Socket);
    assert_eq!(r.max_msg_size, 12_328);
    assert_eq!((r.request, r.response, r.event), (&b"/ctl"[..], &b"/rs"[..], &b""[..]));
}

#[test]
fn connection_response_errors_are_negative_errno() {
    for errno in [13, 11, 38, 24, 12, 36] {
        let mut buf = vec![0xa5u8; CONNECTION_RESPONSE_LEN];
        assert_eq!(ConnectResponse::encode_error(SetupError { errno }, &mut buf), Ok(12_328));
        assert_eq!(i32_at(&buf, 0), -1);
        assert_eq!(i32_at(&buf, 8), 12_328);
        assert_eq!(i32_at(&buf, 16), -errno);
        // "On error only the header is meaningful (type, max size and pointer are 0, paths empty)".
        assert!(buf[20..].iter().all(|&b| b == 0));
        assert!(buf[4..8].iter().chain(&buf[12..16]).all(|&b| b == 0));
        assert_eq!(ConnectResponse::decode(&buf), Ok(Err(SetupError { errno })));
    }
    // An error response keeps the refusal even with garbage after the header.
    let mut buf = vec![0xffu8; CONNECTION_RESPONSE_LEN];
    buf[..24].fill(0);
    buf[..4].copy_from_slice(&(-1i32).to_ne_bytes());
    buf[8..12].copy_from_slice(&12_328i32.to_ne_bytes());
    buf[16..20].copy_from_slice(&(-13i32).to_ne_bytes());
    assert_eq!(ConnectResponse::decode(&buf), Ok(Err(SetupError { errno: 13 })));
    // The most negative error value does not overflow on the way back out.
    buf[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
    let err = ConnectResponse::decode(&buf).unwrap().unwrap_err();
    let mut out = vec![0u8; CONNECTION_RESPONSE_LEN];
    ConnectResponse::encode_error(err, &mut out).unwrap();
    assert_eq!(ConnectResponse::decode(&out), Ok(Err(err)));
}

#[test]
fn connection_response_malformed() {
    let good = encoded_response(&shm_response());
    // Unterminated path fields name their offset.
    for (start, field) in [(40, "request"), (4136, "response"), (8232, "event")] {
        let mut bad = good.clone();
        bad[start..start + 4096].fill(b'x');
        assert_eq!(ConnectResponse::decode(&bad), Err(DecodeError::Unterminated { field, offset: start }));
    }
    let mut bad = good.clone();
    bad[..4].copy_from_slice(&0i32.to_ne_bytes());
    assert_eq!(ConnectResponse::decode(&bad), Err(DecodeError::UnknownId { id: 0 }));
    // A 24-byte header claiming to be the whole response is too short for the struct.
    let mut short = good[..24].to_vec();
    short[8..12].copy_from_slice(&24i32.to_ne_bytes());
    assert!(matches!(ConnectResponse::decode(&short), Err(DecodeError::BadSize { id: -1, .. })));
    assert_truncations_incomplete(&good, |b| ConnectResponse::decode(b).map(drop));
    assert_extension_rejected(&good, |b| ConnectResponse::decode(b).map(drop));
}

#[test]
fn connection_type_values() {
    for (raw, t) in [(0, ConnectionType::Socket), (1, ConnectionType::Shm), (4, ConnectionType::Other(4))] {
        assert_eq!(ConnectionType::from_raw(raw), t);
        assert_eq!(t.to_raw(), raw);
    }
    assert_eq!(ConnectionType::from_raw(-7).to_raw(), -7);
}

#[test]
fn connection_response_path_limits() {
    let long = vec![b'p'; 4095];
    let ok = ConnectResponse { request: &long, ..shm_response() };
    let buf = encoded_response(&ok);
    assert_eq!(ConnectResponse::decode(&buf).unwrap().unwrap().request, &long[..]);
    let too_long = vec![b'p'; 4096];
    let mut out = vec![0xa5u8; CONNECTION_RESPONSE_LEN];
    for r in [
        ConnectResponse { request: &too_long, ..shm_response() },
        ConnectResponse { response: &too_long, ..shm_response() },
        ConnectResponse { event: &too_long, ..shm_response() },
    ] {
        assert_eq!(r.encode(&mut out), Err(EncodeError::NameTooLong { len: 4096, max: 4095 }));
    }
    let r = ConnectResponse { event: b"/a\0b", ..shm_response() };
    assert_eq!(r.encode(&mut out), Err(EncodeError::NulInName));
    assert!(out.iter().all(|&b| b == 0xa5), "a failed encode wrote to the buffer");
}

// --- generic reply, reply header, frame_len ---------------------------------------------------

#[test]
fn generic_reject_golden_bytes() {
    let mut buf = [0xa5u8; 24];
    assert_eq!(encode_generic_reply(CsError::InvalidParam, &mut buf), Ok(24));
    assert_eq!(buf, GENERIC_REJECT);
    assert_eq!(ReplyHeader::decode(&GENERIC_REJECT), Ok(ReplyHeader { id: 0, size: 24, error: 7 }));
    // CMAP reads it as a failed SET (same shape), votequorum as a failed STATUS.
    assert_eq!(
        cmap::Reply::decode(&GENERIC_REJECT),
        Ok(cmap::Reply { result: Err(CsError::InvalidParam), body: cmap::Response::Set })
    );
    assert_eq!(
        votequorum::Reply::decode(&GENERIC_REJECT),
        Ok(votequorum::Reply { result: Err(CsError::InvalidParam), body: votequorum::Response::Status })
    );
    // Overload would give error 6.
    encode_generic_reply(CsError::TryAgain, &mut buf).unwrap();
    assert_eq!(buf[16], 6);
    assert_truncations_incomplete(&GENERIC_REJECT, |b| ReplyHeader::decode(b).map(drop));
    assert_extension_rejected(&GENERIC_REJECT, |b| ReplyHeader::decode(b).map(drop));
}

#[test]
fn frame_len_reads_the_size_field() {
    assert_eq!(frame_len(&CONNECT_REQUEST_1M, 16), Ok(Status::Complete(24)));
    assert_eq!(frame_len(&CONNECT_REQUEST_1M[..16], 16), Ok(Status::Complete(24)));
    assert_eq!(frame_len(&GENERIC_REJECT, 24), Ok(Status::Complete(24)));
    for k in 0..16 {
        assert_eq!(frame_len(&CONNECT_REQUEST_1M[..k], 16), Ok(Status::Partial { needed: 16 }));
        assert_eq!(frame_len(&GENERIC_REJECT[..k], 24), Ok(Status::Partial { needed: 24 }));
    }
    // A stream holding several frames: only the first one's size counts.
    let mut stream = CONNECT_REQUEST_1M.to_vec();
    stream.extend_from_slice(&GENERIC_REJECT);
    assert_eq!(frame_len(&stream, 16), Ok(Status::Complete(24)));
    // A size below the header, or negative, is malformed: more bytes will not help.
    let mut bad = GENERIC_REJECT;
    bad[8] = 16;
    assert_eq!(
        frame_len(&bad, 24),
        Err(DecodeError::BadSize { id: 0, declared: 16, min: 24, max: i32::MAX as usize })
    );
    bad[8..12].copy_from_slice(&(-1i32).to_ne_bytes());
    assert!(matches!(frame_len(&bad, 16), Err(DecodeError::BadSize { declared: -1, .. })));
}

// --- short buffers --------------------------------------------------------------------------

#[test]
fn encoding_into_a_short_buffer_leaves_it_untouched() {
    let resp = shm_response();
    for len in [0, 1, 23, 24, 12_327] {
        let mut buf = vec![0x5au8; len];
        assert_eq!(
            resp.encode(&mut buf),
            Err(EncodeError::BufferTooSmall { required: 12_328, available: len })
        );
        assert_eq!(
            ConnectResponse::encode_error(SetupError { errno: 13 }, &mut buf),
            Err(EncodeError::BufferTooSmall { required: 12_328, available: len })
        );
        assert!(buf.iter().all(|&b| b == 0x5a));
    }
    for len in 0..24 {
        let mut buf = vec![0x5au8; len];
        assert_eq!(
            ConnectRequest::new(1).encode(&mut buf),
            Err(EncodeError::BufferTooSmall { required: 24, available: len })
        );
        assert_eq!(
            encode_generic_reply(CsError::InvalidParam, &mut buf),
            Err(EncodeError::BufferTooSmall { required: 24, available: len })
        );
        assert!(buf.iter().all(|&b| b == 0x5a));
    }
}

// --- properties -----------------------------------------------------------------------------

fn path() -> impl Strategy<Value = Vec<u8>> {
    let max = if cfg!(miri) { 64 } else { 4095 };
    prop_oneof![proptest::collection::vec(1u8..=255, 0..=max), Just(vec![b'/'; 4095]), Just(Vec::new()),]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn connect_request_round_trip(max in any::<u32>()) {
        let req = ConnectRequest { max_msg_size: max };
        let mut buf = [0u8; 24];
        prop_assert_eq!(req.encode(&mut buf), Ok(24));
        prop_assert_eq!(ConnectRequest::decode(&buf), Ok(req));
        prop_assert_eq!(ConnectRequest::new(max).max_msg_size, max.max(12_328));
    }

    #[test]
    fn connect_response_round_trip(
        connection_type in any::<i32>(),
        max_msg_size in any::<u32>(),
        connection in any::<u64>(),
        request in path(),
        response in path(),
        event in path(),
    ) {
        let r = ConnectResponse {
            connection_type: ConnectionType::from_raw(connection_type),
            max_msg_size,
            connection,
            request: &request,
            response: &response,
            event: &event,
        };
        let buf = encoded_response(&r);
        prop_assert_eq!(ConnectResponse::decode(&buf), Ok(Ok(r)));
    }

    #[test]
    fn connect_response_error_round_trip(errno in any::<i32>().prop_filter("0 means success", |e| *e != 0)) {
        let mut buf = vec![0u8; CONNECTION_RESPONSE_LEN];
        ConnectResponse::encode_error(SetupError { errno }, &mut buf).unwrap();
        let decoded = ConnectResponse::decode(&buf).unwrap().unwrap_err();
        // The wire keeps only -errno; the magnitude comes back.
        prop_assert_eq!(decoded.errno, errno.unsigned_abs() as i32);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64), min in any::<usize>()) {
        let _ = ConnectRequest::decode(&data);
        let _ = ConnectResponse::decode(&data);
        let _ = ReplyHeader::decode(&data);
        let _ = frame_len(&data, min);
        let _ = frame_len(&data, 16);
        let _ = frame_len(&data, 24);
    }

    #[test]
    fn headers_with_any_size_never_panic(id in any::<i32>(), size in any::<i32>(), error in any::<i32>(), len in 0usize..64) {
        let mut data = vec![0u8; len.max(24)];
        data[..4].copy_from_slice(&id.to_ne_bytes());
        data[8..12].copy_from_slice(&size.to_ne_bytes());
        data[16..20].copy_from_slice(&error.to_ne_bytes());
        data.truncate(len);
        let _ = ConnectRequest::decode(&data);
        let _ = ConnectResponse::decode(&data);
        let _ = ReplyHeader::decode(&data);
        if let Ok(Status::Complete(n)) = frame_len(&data, 16) {
            prop_assert_eq!(n as i64, i64::from(size));
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
        which in 0usize..3,
    ) {
        let mut frame = match which {
            0 => CONNECT_REQUEST_1M.to_vec(),
            1 => GENERIC_REJECT.to_vec(),
            _ => encoded_response(&shm_response()),
        };
        for (at, x) in flips {
            let i = at % frame.len();
            frame[i] ^= x;
        }
        let _ = ConnectRequest::decode(&frame);
        let _ = ConnectResponse::decode(&frame);
        let _ = ReplyHeader::decode(&frame);
        let cut = cut % (frame.len() + 1);
        let _ = ConnectRequest::decode(&frame[..cut]);
        let _ = ConnectResponse::decode(&frame[..cut]);
        let _ = ReplyHeader::decode(&frame[..cut]);
        frame.extend_from_slice(&[0xee; 5]);
        let _ = ConnectResponse::decode(&frame);
        let _ = ConnectRequest::decode(&frame);
    }
}
