//! The bodies of the fuzz targets, as plain functions over `&[u8]`.
//!
//! This one file is used twice: by the cargo-fuzz binaries (through this crate's library) and
//! by `core/tests/corpus_replay.rs`, which includes it with `#[path]` and replays the
//! committed seed corpus on stable. Each function feeds the bytes to every decoder of its
//! entry point and asserts only that nothing panics; `roundtrip` also asserts that what
//! decodes re-encodes to something that decodes to the same value.

use core::fmt::{self, Debug, Write};
use corowire::{cfg, cmap, frame_len, qb, quorum, votequorum, Status};

/// A `fmt::Write` that discards everything: formatting is exercised without allocating.
struct Sink;

impl Write for Sink {
    fn write_str(&mut self, _: &str) -> fmt::Result {
        Ok(())
    }
}

/// Formats a decode result both ways, so that `Display` and `Debug` of every error and
/// message are exercised too.
fn show<T: Debug, E: Debug + fmt::Display>(r: &Result<T, E>) {
    let _ = match r {
        Ok(v) => write!(Sink, "{v:?}"),
        Err(e) => write!(Sink, "{e} {e:?}"),
    };
}

/// Entry point of a client reading the response channel: CMAP, votequorum, quorum and cfg
/// replies.
pub fn client_response(data: &[u8]) {
    let r = cmap::Reply::decode(data);
    show(&r);
    if let Ok(cmap::Reply { body: cmap::Response::Get(get), .. }) = r {
        let _ = get.typed();
    }
    show(&votequorum::Reply::decode(data));
    show(&quorum::Reply::decode(data));
    show(&cfg::Reply::decode(data));
    show(&qb::ReplyHeader::decode(data));
}

/// Entry point of a client reading the event channel: CMAP, votequorum and quorum
/// notifications.
pub fn client_notification(data: &[u8]) {
    show(&cmap::Notification::decode(data));
    show(&quorum::Notification::decode(data));
    let n = votequorum::Notification::decode(data);
    show(&n);
    match n {
        Ok(votequorum::Notification::Quorum { nodes, .. }) => {
            let forward = nodes.iter().count();
            let backward = nodes.iter().rev().count();
            assert_eq!(forward, nodes.len());
            assert_eq!(backward, nodes.len());
        }
        Ok(votequorum::Notification::NodeList { nodes, .. }) => {
            assert_eq!(nodes.iter().count(), nodes.len());
            assert_eq!(nodes.iter().rev().count(), nodes.len());
        }
        _ => {}
    }
}

/// Entry point of a client reading the setup socket: the connection response, and the
/// stream framing.
pub fn setup_response(data: &[u8]) {
    match qb::ConnectResponse::decode(data) {
        Ok(Ok(r)) => show::<_, corowire::DecodeError>(&Ok(r)),
        Ok(Err(e)) => {
            let _ = write!(Sink, "{e} {:?} {}", e.cs_error(), e.meaning());
        }
        Err(e) => show::<(), _>(&Err(e)),
    }
    for min in [16, 24, qb::CONNECTION_RESPONSE_LEN] {
        let r = frame_len(data, min);
        show(&r);
        if let Ok(Status::Complete(n)) = r {
            assert!(n >= min);
        }
    }
}

/// Entry point of a server reading requests: the connection request, then CMAP,
/// votequorum, quorum and cfg requests.
pub fn server_request(data: &[u8]) {
    show(&qb::ConnectRequest::decode(data));
    show(&cmap::Request::decode(data));
    show(&votequorum::Request::decode(data));
    show(&quorum::Request::decode(data));
    show(&cfg::Request::decode(data));
}

/// Equal values, or (for floats, where NaN != NaN) the same printed form.
fn assert_same<T: PartialEq + Debug>(a: &T, b: &T) {
    if a != b {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}

/// Encodes `msg` into a buffer of exactly `len` bytes and checks the length it reports.
fn encode(len: usize, f: impl FnOnce(&mut [u8]) -> Result<usize, corowire::EncodeError>) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    assert_eq!(f(&mut buf), Ok(len), "encoded_len disagrees with encode");
    buf
}

/// Whatever decodes re-encodes, and the re-encoded frame decodes to the same value and
/// re-encodes to the same bytes.
pub fn roundtrip(data: &[u8]) {
    // Decode, re-encode, decode again: the same value, and the same bytes a second time.
    macro_rules! round_trip {
        ($($ty:ty),*) => {$(
            if let Ok(a) = <$ty>::decode(data) {
                let bytes = encode(a.encoded_len(), |o| a.encode(o));
                let b = <$ty>::decode(&bytes).expect(concat!("re-encoded ", stringify!($ty)));
                assert_same(&a, &b);
                assert_eq!(encode(b.encoded_len(), |o| b.encode(o)), bytes);
            }
        )*};
    }
    round_trip!(
        cmap::Request<'_>,
        cmap::Reply<'_>,
        cmap::Notification<'_>,
        votequorum::Request<'_>,
        votequorum::Reply<'_>,
        votequorum::Notification<'_>,
        quorum::Request,
        quorum::Reply,
        quorum::Notification<'_>,
        cfg::Request,
        cfg::Reply<'_>
    );
    if let Ok(a) = qb::ConnectRequest::decode(data) {
        let bytes = encode(qb::CONNECTION_REQUEST_LEN, |o| a.encode(o));
        assert_eq!(qb::ConnectRequest::decode(&bytes), Ok(a));
    }
    match qb::ConnectResponse::decode(data) {
        Ok(Ok(a)) => {
            let bytes = encode(qb::CONNECTION_RESPONSE_LEN, |o| a.encode(o));
            assert_eq!(qb::ConnectResponse::decode(&bytes), Ok(Ok(a)));
        }
        Ok(Err(e)) => {
            let bytes = encode(qb::CONNECTION_RESPONSE_LEN, |o| qb::ConnectResponse::encode_error(e, o));
            assert_eq!(qb::ConnectResponse::decode(&bytes), Ok(Err(e)));
        }
        Err(_) => {}
    }
}
