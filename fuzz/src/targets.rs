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

/// Entry point of a client reading the event channel: CMAP, votequorum, quorum and cfg
/// notifications.
pub fn client_notification(data: &[u8]) {
    show(&cmap::Notification::decode(data));
    show(&quorum::Notification::decode(data));
    show(&cfg::Notification::decode(data));
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
        cfg::Reply<'_>,
        cfg::Notification
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

pub use ops::ops;

/// The `ops` target: random operation sequences through two CMAP client connections and the
/// engine, joined by `corowire::testing::Pair`, checked against a model of the store.
mod ops {
    use arbitrary::{Arbitrary, Unstructured};
    use corowire::cmap::{
        Key, Notification, Request, Response, TrackEvent, TrackType, Value, ValueType, VALUE_MAX_LEN,
    };
    use corowire::conn::{Cmap, FailureReason, Polled, State, SubmitError, Token};
    use corowire::server::cmap::{CmapEngine, COROSYNC_READ_ONLY};
    use corowire::server::store::{BTreeStore, Store};
    use corowire::testing::{ClientId, Pair};
    use corowire::{CsError, Duration, Instant};
    use std::collections::{BTreeMap, VecDeque};

    /// Outstanding requests per connection.
    const PENDING: usize = 4;
    /// Tracks a client connection may hold.
    const CLIENT_TRACKS: usize = 8;
    /// Iterators and tracks the engine gives one connection.
    const ITERS: usize = 4;
    const TRACKS: usize = 8;
    /// The engine's notification outbox.
    const OUTBOX_EVENTS: usize = 32;
    const OUTBOX_BYTES: usize = 65536;
    /// Reply buffer (the pair's negotiated message size) and a GET reply's fixed part.
    const MAX_MSG: usize = 65536;
    const GET_FIXED: usize = 40;
    /// A notification without its values.
    const NOTIFY_FIXED: usize = 336;
    /// Operations per input.
    const MAX_OPS: usize = 200;

    type Engine = CmapEngine<BTreeStore, 4, ITERS, TRACKS, OUTBOX_EVENTS, OUTBOX_BYTES>;
    type OpsPair = Pair<Engine, Cmap<CLIENT_TRACKS>, PENDING, 16, 40960>;

    /// Key names: writable, nested, read-only (existing or not), too short, invalid, longest.
    const KEYS: [&[u8]; 10] = [
        b"test.a",
        b"test.b",
        b"test.c.d",
        b"tesu",
        b"totem.cluster_name",
        b"nodelist.node.0.nodeid",
        b"te",
        b"a b",
        b"runtime.x",
        &[b'k'; 255],
    ];

    #[derive(Arbitrary, Debug)]
    enum KeyChoice {
        Known(u8),
        Raw(Vec<u8>),
    }

    impl KeyChoice {
        fn bytes(&self) -> &[u8] {
            match self {
                Self::Known(i) => KEYS[usize::from(*i) % KEYS.len()],
                Self::Raw(b) => b,
            }
        }
    }

    #[derive(Arbitrary, Debug)]
    enum ValueChoice {
        I8(i8),
        U8(u8),
        I16(i16),
        U16(u16),
        I32(i32),
        U32(u32),
        I64(i64),
        U64(u64),
        F32(f32),
        F64(f64),
        Str(Vec<u8>),
        Bin(Vec<u8>),
        /// A string or binary of `len % 17000` bytes of `fill`: around the 16384-byte limit.
        Big {
            string: bool,
            len: u16,
            fill: u8,
        },
    }

    #[derive(Arbitrary, Debug)]
    enum GetLen {
        LengthOnly,
        Exact,
        Short,
        Buffer(u16),
        Huge,
    }

    #[derive(Arbitrary, Debug)]
    enum Op {
        Set {
            second: bool,
            key: KeyChoice,
            value: ValueChoice,
            timeout: Option<u8>,
        },
        Get {
            second: bool,
            key: KeyChoice,
            len: GetLen,
            timeout: Option<u8>,
        },
        Delete {
            second: bool,
            key: KeyChoice,
            timeout: Option<u8>,
        },
        Adjust {
            second: bool,
            key: KeyChoice,
            step: i32,
            timeout: Option<u8>,
        },
        IterInit {
            second: bool,
            prefix: Option<KeyChoice>,
            timeout: Option<u8>,
        },
        IterNext {
            second: bool,
            which: u8,
            timeout: Option<u8>,
        },
        IterFinalize {
            second: bool,
            which: u8,
        },
        /// ITER_NEXT with a handle whose slot index the engine never gives out.
        IterBogus {
            second: bool,
            check: u32,
        },
        TrackAdd {
            second: bool,
            key: Option<KeyChoice>,
            track_type: u8,
            context: u8,
            timeout: Option<u8>,
        },
        TrackDelete {
            second: bool,
            which: u8,
            timeout: Option<u8>,
        },
        /// Advance the clock by 10 ms units.
        Advance {
            ticks: u8,
        },
        Hold {
            second: bool,
            hold: bool,
        },
        Finalize {
            second: bool,
        },
        CloseByServer {
            second: bool,
        },
        Reconnect {
            second: bool,
        },
    }

    /// A stored value: its type and wire bytes (a string with its NUL).
    type Owned = (ValueType, Vec<u8>);

    fn owned(v: &Value<'_>) -> Owned {
        let mut bytes = vec![0u8; v.wire_len()];
        v.write_to(&mut bytes);
        (v.value_type(), bytes)
    }

    /// corosync's rule for a new key's name.
    fn valid_name(key: &[u8]) -> bool {
        (3..=255).contains(&key.len())
            && key.iter().all(|&c| c.is_ascii_alphanumeric() || b"._/:-".contains(&c))
    }

    fn read_only(key: &[u8]) -> bool {
        COROSYNC_READ_ONLY.iter().any(|r| r.covers(key))
    }

    /// `value + step` modulo 2^(8·width), on the value's native-endian bytes; `None` for
    /// non-integers.
    fn adjusted((ty, bytes): &Owned, step: i32) -> Option<Owned> {
        if !ty.is_integer() {
            return None;
        }
        // The value's bytes as the low-order end of a u64.
        let n = bytes.len();
        let low = if cfg!(target_endian = "little") { 0..n } else { 8 - n..8 };
        let mut raw = [0u8; 8];
        raw[low.clone()].copy_from_slice(bytes);
        let sum = u64::from_ne_bytes(raw).wrapping_add(i64::from(step) as u64).to_ne_bytes();
        Some((*ty, sum[low].to_vec()))
    }

    /// A notification as the model expects it.
    #[derive(Debug, PartialEq)]
    struct Note {
        cookie: u64,
        key: Vec<u8>,
        event: TrackEvent,
        new: Option<Owned>,
        old: Option<Owned>,
    }

    impl Note {
        fn of(n: &Notification<'_>) -> Self {
            Self {
                cookie: n.track_inst_handle,
                key: n.key.as_bytes().to_vec(),
                event: n.event,
                new: n.new_value.as_ref().map(owned),
                old: n.old_value.as_ref().map(owned),
            }
        }
    }

    /// What the model expects a request's reply to be.
    #[derive(Debug)]
    enum Expect {
        Status(Result<(), CsError>),
        Get {
            requested: u64,
            result: Result<Owned, CsError>,
        },
        /// ITER_INIT into iterator slot `Ok(slot)`.
        IterInit(Result<usize, CsError>),
        IterNext(Result<(Vec<u8>, Owned), CsError>),
        /// TRACK_ADD of `cookie` into track slot `Ok(slot)`.
        TrackAdd {
            cookie: u64,
            result: Result<usize, CsError>,
        },
        TrackDelete(Result<u64, CsError>),
    }

    #[derive(Debug)]
    struct Pending {
        token: Token,
        expect: Expect,
        deadline: Option<Instant>,
        timed_out: bool,
    }

    #[derive(Debug)]
    struct ServerIter {
        prefix: Vec<u8>,
        last: Option<Vec<u8>>,
        /// Known once the client has the reply.
        handle: Option<u64>,
    }

    #[derive(Debug)]
    struct ServerTrack {
        cookie: u64,
        key: Option<Vec<u8>>,
        track_type: TrackType,
        handle: Option<u64>,
    }

    impl ServerTrack {
        fn matches(&self, key: &[u8], event: TrackEvent) -> bool {
            if !self.track_type.contains(event.track_type()) {
                return false;
            }
            if self.track_type.contains(TrackType::PREFIX) {
                key.starts_with(self.key.as_deref().unwrap_or(b""))
            } else {
                self.key.as_deref() == Some(key)
            }
        }
    }

    /// A track in the client's table: its context and, once known, its server handle.
    #[derive(Debug)]
    struct ClientTrack {
        context: u64,
        handle: Option<u64>,
    }

    /// One client connection as the model sees it, both ends.
    #[derive(Debug)]
    struct Slot {
        id: ClientId,
        outstanding: VecDeque<Pending>,
        next_cookie: u64,
        client_tracks: BTreeMap<u64, ClientTrack>,
        iters: [Option<ServerIter>; ITERS],
        tracks: [Option<ServerTrack>; TRACKS],
        notes: VecDeque<Note>,
    }

    impl Slot {
        fn new(id: ClientId) -> Self {
            Self {
                id,
                outstanding: VecDeque::new(),
                next_cookie: 1,
                client_tracks: BTreeMap::new(),
                iters: Default::default(),
                tracks: Default::default(),
                notes: VecDeque::new(),
            }
        }
    }

    struct Run {
        pair: OpsPair,
        store: BTreeMap<Vec<u8>, Owned>,
        slots: [Slot; 2],
        /// For events taken from a connection.
        scratch: Vec<u8>,
    }

    fn timeout(t: Option<u8>) -> Option<Duration> {
        t.map(|t| Duration::from_millis(u64::from(t) * 10))
    }

    impl Run {
        fn new() -> Self {
            let mut engine = Engine::new(BTreeStore::new(), BTreeStore::new(), 0x5eed);
            let name = Value::String(b"fuzz");
            engine.set_initial(b"totem.cluster_name", name).unwrap();
            let mut pair = OpsPair::new(engine);
            let a = Slot::new(pair.connect().unwrap());
            let b = Slot::new(pair.connect().unwrap());
            let store = BTreeMap::from([(b"totem.cluster_name".to_vec(), owned(&name))]);
            Self { pair, store, slots: [a, b], scratch: vec![0; 40960] }
        }

        /// The submit error the connection must give, if any.
        fn refusal(&self, s: usize, track_add: bool) -> Option<SubmitError> {
            let slot = &self.slots[s];
            match self.pair.conn(slot.id).state() {
                State::Finalized => Some(SubmitError::Finalized),
                State::Closed => Some(SubmitError::Closed),
                _ if slot.outstanding.len() == PENDING => {
                    Some(SubmitError::PipelineFull { capacity: PENDING })
                }
                _ if track_add && slot.client_tracks.len() == CLIENT_TRACKS => {
                    Some(SubmitError::TooManyTracks { capacity: CLIENT_TRACKS })
                }
                _ => None,
            }
        }

        /// Submits through `f`, checks the refusal the model predicts, and on success lets the
        /// engine handle the request and records `expect` (computed now, as the engine
        /// handles the request before anything else happens).
        fn submit(
            &mut self,
            s: usize,
            track_add: bool,
            t: Option<u8>,
            f: impl FnOnce(&mut OpsPair, ClientId, Option<Duration>) -> Result<Token, SubmitError>,
            expect: impl FnOnce(&mut Self) -> Expect,
        ) {
            let refusal = self.refusal(s, track_add);
            let id = self.slots[s].id;
            let r = f(&mut self.pair, id, timeout(t));
            match (refusal, r) {
                (None, Ok(token)) => {
                    let deadline = timeout(t).map(|d| self.pair.now().saturating_add(d));
                    let expect = expect(self);
                    self.slots[s].outstanding.push_back(Pending {
                        token,
                        expect,
                        deadline,
                        timed_out: false,
                    });
                }
                (Some(e), r) => assert_eq!(r, Err(e), "submit on slot {s}"),
                (None, Err(e)) => panic!("submit on slot {s} refused: {e}"),
            }
        }

        /// [`Run::submit`] of a plain request.
        fn request(
            &mut self,
            s: usize,
            t: Option<u8>,
            req: &Request<'_>,
            expect: impl FnOnce(&mut Self) -> Expect,
        ) {
            self.submit(s, false, t, |p, c, d| p.submit(c, req, d), expect);
        }

        /// Queues the notifications of a change for every matching track; `false` when they
        /// could never fit into the engine's outbox (the change is refused).
        fn notify(
            &mut self,
            key: &[u8],
            event: TrackEvent,
            new: Option<&Owned>,
            old: Option<&Owned>,
        ) -> bool {
            let len = NOTIFY_FIXED + new.map_or(0, |v| v.1.len()) + old.map_or(0, |v| v.1.len());
            let count: usize = self
                .slots
                .iter()
                .map(|s| s.tracks.iter().flatten().filter(|t| t.matches(key, event)).count())
                .sum();
            if count > OUTBOX_EVENTS || count * len > OUTBOX_BYTES {
                return false;
            }
            for slot in &mut self.slots {
                for t in slot.tracks.iter().flatten().filter(|t| t.matches(key, event)) {
                    slot.notes.push_back(Note {
                        cookie: t.cookie,
                        key: key.to_vec(),
                        event,
                        new: new.cloned(),
                        old: old.cloned(),
                    });
                }
            }
            true
        }

        /// `icmap_set` as the engine applies it.
        fn apply_set(&mut self, key: &[u8], value: Owned) -> Result<(), CsError> {
            let old = self.store.get(key).cloned();
            match &old {
                Some(o) if *o == value => return Ok(()),
                None if !valid_name(key) => return Err(CsError::NameTooLong),
                _ => {}
            }
            let event = if old.is_some() { TrackEvent::Modify } else { TrackEvent::Add };
            if !self.notify(key, event, Some(&value), old.as_ref()) {
                return Err(CsError::NoResources);
            }
            self.store.insert(key.to_vec(), value);
            Ok(())
        }

        fn expect_set(&mut self, key: &[u8], value: &Value<'_>) -> Result<(), CsError> {
            if read_only(key) {
                return Err(CsError::Access);
            }
            if value.set_value_len() > VALUE_MAX_LEN {
                return Err(CsError::InvalidParam);
            }
            if matches!(value, Value::String(s) if s.contains(&0)) {
                return Err(CsError::InvalidParam);
            }
            self.apply_set(key, owned(value))
        }

        fn expect_delete(&mut self, key: &[u8]) -> Result<(), CsError> {
            if read_only(key) {
                return Err(CsError::Access);
            }
            let old = self.store.get(key).cloned().ok_or(CsError::NotExist)?;
            if !self.notify(key, TrackEvent::Delete, None, Some(&old)) {
                return Err(CsError::NoResources);
            }
            self.store.remove(key);
            Ok(())
        }

        fn expect_adjust(&mut self, key: &[u8], step: i32) -> Result<(), CsError> {
            if read_only(key) {
                return Err(CsError::Access);
            }
            let old = self.store.get(key).ok_or(CsError::NotExist)?;
            let new = adjusted(old, step).ok_or(CsError::InvalidParam)?;
            self.apply_set(key, new)
        }

        fn expect_get(&self, key: &[u8], requested: u64) -> Expect {
            let result = match self.store.get(key) {
                None => Err(CsError::NotExist),
                Some(_) if requested == 0 => self.store.get(key).cloned().ok_or(CsError::NotExist),
                Some(v) if requested < v.1.len() as u64 => Err(CsError::InvalidParam),
                Some(_) if requested > (MAX_MSG - GET_FIXED) as u64 => Err(CsError::NoMemory),
                Some(v) => Ok(v.clone()),
            };
            Expect::Get { requested, result }
        }

        fn expect_iter_next(&mut self, s: usize, slot_index: usize) -> Expect {
            let it = self.slots[s].iters[slot_index].as_mut().expect("open iterator");
            let next = self
                .store
                .iter()
                .find(|(k, _)| k.starts_with(&it.prefix) && it.last.as_ref().is_none_or(|l| *k > l));
            match next {
                Some((k, v)) => {
                    it.last = Some(k.clone());
                    Expect::IterNext(Ok((k.clone(), v.clone())))
                }
                None => Expect::IterNext(Err(CsError::NoSections)),
            }
        }

        fn op(&mut self, op: Op) {
            match op {
                Op::Set { second, key, value, timeout: t } => {
                    let big;
                    let value = match &value {
                        ValueChoice::I8(v) => Value::Int8(*v),
                        ValueChoice::U8(v) => Value::UInt8(*v),
                        ValueChoice::I16(v) => Value::Int16(*v),
                        ValueChoice::U16(v) => Value::UInt16(*v),
                        ValueChoice::I32(v) => Value::Int32(*v),
                        ValueChoice::U32(v) => Value::UInt32(*v),
                        ValueChoice::I64(v) => Value::Int64(*v),
                        ValueChoice::U64(v) => Value::UInt64(*v),
                        ValueChoice::F32(v) => Value::Float(*v),
                        ValueChoice::F64(v) => Value::Double(*v),
                        ValueChoice::Str(b) => Value::String(b),
                        ValueChoice::Bin(b) => Value::Binary(b),
                        ValueChoice::Big { string, len, fill } => {
                            big = vec![*fill; usize::from(*len) % 17000];
                            if *string {
                                Value::String(&big)
                            } else {
                                Value::Binary(&big)
                            }
                        }
                    };
                    let Ok(k) = Key::new(key.bytes()) else { return };
                    let req = Request::Set { key: k, value };
                    self.request(usize::from(second), t, &req, |m| {
                        Expect::Status(m.expect_set(k.as_bytes(), &value))
                    });
                }
                Op::Get { second, key, len, timeout: t } => {
                    let Ok(k) = Key::new(key.bytes()) else { return };
                    let actual = self.store.get(k.as_bytes()).map_or(0, |v| v.1.len() as u64);
                    let requested = match len {
                        GetLen::LengthOnly => 0,
                        GetLen::Exact => actual,
                        GetLen::Short => actual.saturating_sub(1),
                        GetLen::Buffer(n) => u64::from(n),
                        GetLen::Huge => u64::MAX,
                    };
                    let req = Request::Get { key: k, value_len: requested };
                    self.request(usize::from(second), t, &req, |m| m.expect_get(k.as_bytes(), requested));
                }
                Op::Delete { second, key, timeout: t } => {
                    let Ok(k) = Key::new(key.bytes()) else { return };
                    let req = Request::Delete { key: k };
                    self.request(usize::from(second), t, &req, |m| {
                        Expect::Status(m.expect_delete(k.as_bytes()))
                    });
                }
                Op::Adjust { second, key, step, timeout: t } => {
                    let Ok(k) = Key::new(key.bytes()) else { return };
                    let req = Request::AdjustInt { key: k, step };
                    self.request(usize::from(second), t, &req, |m| {
                        Expect::Status(m.expect_adjust(k.as_bytes(), step))
                    });
                }
                Op::IterInit { second, prefix, timeout: t } => {
                    let s = usize::from(second);
                    let Ok(prefix) = prefix.as_ref().map(|k| Key::new(k.bytes())).transpose() else { return };
                    let req = Request::IterInit { prefix };
                    self.request(s, t, &req, |m| {
                        let free = m.slots[s].iters.iter().position(Option::is_none);
                        if let Some(i) = free {
                            let prefix = prefix.map_or(Vec::new(), |k| k.as_bytes().to_vec());
                            m.slots[s].iters[i] = Some(ServerIter { prefix, last: None, handle: None });
                        }
                        Expect::IterInit(free.ok_or(CsError::NoMemory))
                    });
                }
                Op::IterNext { second, which, timeout: t } => {
                    let s = usize::from(second);
                    let Some((i, handle)) = self.known_iter(s, which) else { return };
                    let req = Request::IterNext { iter_handle: handle };
                    self.request(s, t, &req, |m| m.expect_iter_next(s, i));
                }
                Op::IterFinalize { second, which } => {
                    let s = usize::from(second);
                    let Some((i, handle)) = self.known_iter(s, which) else { return };
                    let req = Request::IterFinalize { iter_handle: handle };
                    self.request(s, None, &req, |m| {
                        m.slots[s].iters[i] = None;
                        Expect::Status(Ok(()))
                    });
                }
                Op::IterBogus { second, check } => {
                    let req = Request::IterNext { iter_handle: (u64::from(check) << 32) | 0xffff_fff0 };
                    self.request(usize::from(second), None, &req, |_| {
                        Expect::IterNext(Err(CsError::BadHandle))
                    });
                }
                Op::TrackAdd { second, key, track_type, context, timeout: t } => {
                    let s = usize::from(second);
                    let Ok(key) = key.as_ref().map(|k| Key::new(k.bytes())).transpose() else { return };
                    let track_type = TrackType(i32::from(track_type % 32));
                    let context = u64::from(context);
                    let add = |p: &mut OpsPair, c, d| {
                        p.submit_with(c, |conn, now, out| {
                            conn.track_add(key, track_type, context, now, d, out)
                        })
                    };
                    self.submit(s, true, t, add, |m| {
                        let slot = &mut m.slots[s];
                        let cookie = slot.next_cookie;
                        slot.next_cookie += 1;
                        slot.client_tracks.insert(cookie, ClientTrack { context, handle: None });
                        let free = slot.tracks.iter().position(Option::is_none);
                        let result = match free {
                            _ if !track_type.is_valid() => Err(CsError::InvalidParam),
                            None => Err(CsError::NoMemory),
                            Some(i) => {
                                let key = key.map(|k| k.as_bytes().to_vec()).filter(|k| !k.is_empty());
                                slot.tracks[i] = Some(ServerTrack { cookie, key, track_type, handle: None });
                                Ok(i)
                            }
                        };
                        Expect::TrackAdd { cookie, result }
                    });
                }
                Op::TrackDelete { second, which, timeout: t } => {
                    let s = usize::from(second);
                    let known: Vec<u64> =
                        self.slots[s].client_tracks.values().filter_map(|t| t.handle).collect();
                    let Some(&handle) = known.get(usize::from(which) % known.len().max(1)) else { return };
                    let del = |p: &mut OpsPair, c, d| {
                        p.submit_with(c, |conn, now, out| conn.track_delete(handle, now, d, out))
                    };
                    self.submit(s, false, t, del, |m| {
                        let tracks = &mut m.slots[s].tracks;
                        let found =
                            tracks.iter().position(|t| t.as_ref().is_some_and(|t| t.handle == Some(handle)));
                        Expect::TrackDelete(match found.and_then(|i| tracks[i].take()) {
                            Some(t) => Ok(t.cookie),
                            None => Err(CsError::BadHandle),
                        })
                    });
                }
                Op::Advance { ticks } => {
                    self.pair.advance(Duration::from_millis(u64::from(ticks) * 10));
                    let now = self.pair.now();
                    for slot in &mut self.slots {
                        let mut expected = Vec::new();
                        for p in slot.outstanding.iter_mut().filter(|p| !p.timed_out) {
                            if p.deadline.is_some_and(|d| d <= now) {
                                p.timed_out = true;
                                expected.push((p.token, FailureReason::TimedOut));
                            }
                        }
                        check_failures(&mut self.pair, slot.id, &expected);
                    }
                }
                Op::Hold { second, hold } => self.pair.hold_replies(self.slots[usize::from(second)].id, hold),
                Op::Finalize { second } => self.close(usize::from(second), true),
                Op::CloseByServer { second } => self.close(usize::from(second), false),
                Op::Reconnect { second } => {
                    let s = usize::from(second);
                    if self.pair.conn(self.slots[s].id).state() == State::Ready {
                        self.close(s, true);
                    }
                    self.slots[s] = Slot::new(self.pair.connect().expect("a free connection slot"));
                }
            }
            self.settle();
        }

        /// The `which`-th iterator of slot `s` whose handle the client knows.
        fn known_iter(&self, s: usize, which: u8) -> Option<(usize, u64)> {
            let known: Vec<(usize, u64)> = self.slots[s]
                .iters
                .iter()
                .enumerate()
                .filter_map(|(i, it)| Some((i, it.as_ref()?.handle?)))
                .collect();
            known.get(usize::from(which) % known.len().max(1)).copied()
        }

        /// Closes slot `s` from the client (`finalize`) or the server side.
        fn close(&mut self, s: usize, finalize: bool) {
            let slot = &mut self.slots[s];
            let was_ready = self.pair.conn(slot.id).state() == State::Ready;
            if finalize {
                self.pair.finalize(slot.id);
            } else {
                self.pair.close_by_server(slot.id);
            }
            let expected: Vec<_> = slot
                .outstanding
                .drain(..)
                .filter(|p| !p.timed_out)
                .map(|p| (p.token, FailureReason::ConnectionLost))
                .collect();
            check_failures(&mut self.pair, slot.id, if was_ready { &expected } else { &[] });
            slot.iters = Default::default();
            slot.tracks = Default::default();
            slot.notes.clear();
            let state = if finalize {
                State::Finalized
            } else if was_ready {
                State::Closed
            } else {
                self.pair.conn(slot.id).state()
            };
            assert_eq!(self.pair.conn(slot.id).state(), state);
        }

        /// Lets every frame move, then checks every reply and event against the model.
        fn settle(&mut self) {
            loop {
                self.pair.drive().expect("the pair moves frames without error");
                let mut moved = false;
                for s in 0..2 {
                    self.check_replies(s);
                    moved |= self.check_events(s);
                }
                if !moved {
                    break;
                }
            }
            for slot in &self.slots {
                assert_eq!(self.pair.in_flight(slot.id).2, 0, "events stuck on the wire");
                assert!(slot.notes.is_empty(), "expected notifications never came: {:?}", slot.notes);
            }
        }

        /// The replies handed in since the last check: the completions of the oldest
        /// outstanding requests (or, for timed-out ones, nothing).
        fn check_replies(&mut self, s: usize) {
            let id = self.slots[s].id;
            let gone = self.slots[s].outstanding.len() - self.pair.conn(id).outstanding();
            for _ in 0..gone {
                let p = self.slots[s].outstanding.pop_front().expect("outstanding");
                let done = self.pair.take_done(id, p.token);
                assert_eq!(done.is_some(), !p.timed_out, "completion of {:?}", p);
                let client = &mut self.slots[s].client_tracks;
                match (&p.expect, done) {
                    (Expect::TrackAdd { cookie, result }, done) => {
                        let handle = done.map(|d| match d.response() {
                            Ok(Response::TrackAdd { track_handle }) => Ok(track_handle),
                            Err(e) => Err(e),
                            Ok(r) => panic!("TRACK_ADD answered with {r:?}"),
                        });
                        match (result, handle) {
                            (Ok(i), Some(Ok(h))) => {
                                assert_eq!(h & 0xffff_ffff, *i as u64);
                                let t = self.slots[s].tracks[*i].as_mut().expect("server track");
                                t.handle = Some(h);
                                self.slots[s].client_tracks.get_mut(cookie).expect("client track").handle =
                                    Some(h);
                            }
                            (Err(e), Some(got)) => {
                                assert_eq!(got, Err(*e));
                                client.remove(cookie);
                            }
                            (_, None) => {
                                client.remove(cookie);
                            }
                            (Ok(_), Some(Err(e))) => panic!("TRACK_ADD failed: {e}"),
                        }
                    }
                    (Expect::TrackDelete(result), done) => {
                        if let Some(d) = done {
                            let got = d.response().map(|r| match r {
                                Response::TrackDelete { track_inst_handle } => track_inst_handle,
                                r => panic!("TRACK_DELETE answered with {r:?}"),
                            });
                            assert_eq!(got, *result);
                        }
                        if let Ok(cookie) = result {
                            client.remove(cookie);
                        }
                    }
                    (Expect::IterInit(result), Some(d)) => match (result, d.response()) {
                        (Ok(i), Ok(Response::IterInit { iter_handle })) => {
                            assert_eq!(iter_handle & 0xffff_ffff, *i as u64);
                            self.slots[s].iters[*i].as_mut().expect("server iterator").handle =
                                Some(iter_handle);
                        }
                        (Err(e), got) => assert_eq!(got.map(drop), Err(*e)),
                        (Ok(_), got) => panic!("ITER_INIT answered with {got:?}"),
                    },
                    (Expect::Status(result), Some(d)) => assert_eq!(d.status(), *result, "{:?}", p),
                    (Expect::IterNext(result), Some(d)) => {
                        let got = d.response().map(|r| match r {
                            Response::IterNext { key, value_len, value_type } => {
                                (key.as_bytes().to_vec(), value_len, value_type)
                            }
                            r => panic!("ITER_NEXT answered with {r:?}"),
                        });
                        let want = result.as_ref().map(|(k, v)| (k.clone(), v.1.len() as u64, Some(v.0)));
                        assert_eq!(got, want.map_err(|e| *e));
                    }
                    (Expect::Get { requested, result }, Some(d)) => {
                        let got = d.response().map(|r| match r {
                            Response::Get(g) => g,
                            r => panic!("GET answered with {r:?}"),
                        });
                        match (result, got) {
                            (Ok((ty, bytes)), Ok(g)) => {
                                assert_eq!((g.value_type, g.value_len), (Some(*ty), bytes.len() as u64));
                                let carried: &[u8] = if *requested == 0 { &[] } else { bytes };
                                assert_eq!((g.value, g.buffer_len), (carried, *requested));
                            }
                            (want, got) => assert_eq!(got.map(drop), want.as_ref().map(drop).map_err(|e| *e)),
                        }
                    }
                    (_, None) => {}
                }
            }
            assert!(self.pair.next_done(id).is_none(), "a completion the model did not expect");
        }

        /// Takes the events queued on slot `s` and checks each against the next expected
        /// notification and the client's track table. Returns whether any was taken.
        fn check_events(&mut self, s: usize) -> bool {
            let slot = &mut self.slots[s];
            let mut taken = false;
            while let Some(polled) = self.pair.conn_mut(slot.id).poll_event(&mut self.scratch) {
                taken = true;
                let want = slot.notes.pop_front().expect("an event the model did not expect");
                let routed = slot.client_tracks.get(&want.cookie);
                match polled.expect("the event fits the scratch buffer") {
                    Polled::Event(e) => {
                        assert_eq!(Note::of(&e.notification), want);
                        let t = routed.expect("an event for a track the client does not have");
                        assert_eq!((e.context, e.track_handle), (t.context, t.handle.unwrap_or(0)));
                    }
                    Polled::Skipped => assert!(routed.is_none(), "skipped an event for a known track"),
                    Polled::Invalid(e) => panic!("invalid event: {e}"),
                    Polled::Unknown { id } => panic!("poll_event skips unknown ids, yet gave {id}"),
                }
            }
            taken
        }

        /// Lets the held replies through, then checks the engine's store against the model.
        fn finish(mut self) {
            for s in 0..2 {
                self.pair.hold_replies(self.slots[s].id, false);
            }
            self.settle();
            let icmap = self.pair.engine.icmap();
            assert_eq!(icmap.len(), self.store.len());
            for (k, v) in &self.store {
                let stored = icmap.get(k).expect("a key the model has");
                let mut bytes = vec![0; stored.wire_len()];
                stored.write_to(&mut bytes);
                assert_eq!((stored.value_type(), &bytes[..]), (v.0, &v.1[..]));
            }
        }
    }

    /// The failures a connection reports now are exactly `expected`, in order.
    fn check_failures(pair: &mut OpsPair, id: ClientId, expected: &[(Token, FailureReason)]) {
        let got: Vec<_> =
            core::iter::from_fn(|| pair.conn_mut(id).poll_failure()).map(|f| (f.token, f.reason)).collect();
        assert_eq!(got, expected);
    }

    /// Runs the operations encoded in `data`.
    pub fn ops(data: &[u8]) {
        let mut u = Unstructured::new(data);
        let mut run = Run::new();
        for _ in 0..MAX_OPS {
            let Ok(op) = Op::arbitrary(&mut u) else { break };
            run.op(op);
        }
        run.finish();
    }
}

/// The maximum payload the first byte of a `stream` input picks: 64 to 1084 bytes, within the
/// reader's 1200.
pub fn stream_max_payload(pick: u8) -> usize {
    usize::from(pick) * 4 + usize::from(corowire::stream::MIN_MAX_PAYLOAD)
}

/// Entry point of either end of the stream framing (`corowire::stream`): the bytes as one
/// buffer through `stream::decode` (for every maximum payload the first byte picks), and the
/// same bytes through a `FrameReader` in chunks whose sizes the data picks. Both must see the
/// same frames and the same error; each decoded frame re-encodes to the bytes it came from.
pub fn stream(data: &[u8]) {
    use corowire::stream::{self, FrameReader};
    let Some((&pick, data)) = data.split_first() else { return };
    let max = stream_max_payload(pick);
    let mut at = 0;
    let mut frames = 0usize;
    let end = loop {
        let r = stream::decode(&data[at..], max);
        show(&r);
        match r {
            Ok(Status::Complete((frame, used))) => {
                let mut again = [0u8; 1200];
                assert_eq!(frame.encode(&mut again), Ok(used));
                assert_eq!(&again[..used], &data[at..at + used]);
                at += used;
                frames += 1;
            }
            Ok(Status::Partial { needed }) => break Ok(needed),
            Err(e) => break Err(e),
        }
    };
    let mut reader = FrameReader::<1200>::new();
    reader.set_max_payload(max);
    let (mut fed, mut seen) = (0, 0);
    let got = loop {
        match reader.next_frame() {
            Ok(Some(_)) => {
                seen += 1;
                continue;
            }
            Ok(None) if fed == data.len() => break Ok(()),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        let chunk = 1 + usize::from(data[fed]) % 7;
        let space = reader.space();
        let n = chunk.min(space.len()).min(data.len() - fed);
        space[..n].copy_from_slice(&data[fed..fed + n]);
        reader.filled(n);
        fed += n;
    };
    assert_eq!(seen, frames);
    assert_eq!(got.err(), end.err());
}

pub use engines::engines;

/// The `engines` target: sequences of connects, disconnects, request frames and notification
/// drains through all four server engines (CMAP, votequorum, libquorum, cfg), each observing
/// the cluster view the others publish, as the Unix server drives them.
mod engines {
    use corowire::frame_len;
    use corowire::server::cfg::CfgEngine;
    use corowire::server::cmap::CmapEngine;
    use corowire::server::quorum::QuorumLibEngine;
    use corowire::server::store::BTreeStore;
    use corowire::server::votequorum::{QuorumConfig, QuorumEngine};
    use corowire::server::{ClusterView, ConnId, Engine, ServerError, MIN_REPLY_LEN};
    use corowire::{Instant, Status};

    /// Connection ids the input picks from (a small set, so that ops meet each other).
    const CONNS: u32 = 4;
    /// Request frames are cut to this many bytes (above the largest valid request).
    const MAX_FRAME: usize = 20_000;
    /// Reply and notification buffer: the largest frame an engine writes.
    const OUT: usize = 70_000;

    /// Each operation is one byte `op`, then for requests a little-endian `u16` length and
    /// that many frame bytes. `op & 3` picks the engine, `(op >> 2) & 3` the connection and
    /// `op >> 4` the action: 0 connect, 1 disconnect, 2 drain the outbox, 3 a request into a
    /// buffer of only [`MIN_REPLY_LEN`] bytes, anything else a request. Each operation is one
    /// second on the cfg engine's clock, whose shutdown timeout (5 s) is applied when due and
    /// whose decided replies and events are taken ([`cfg_outputs`]).
    pub fn engines(mut data: &[u8]) {
        let mut cmap: CmapEngine<BTreeStore> = CmapEngine::new(BTreeStore::new(), BTreeStore::new(), 7);
        let mut vq: QuorumEngine = QuorumEngine::new(QuorumConfig::default());
        let mut quorum: QuorumLibEngine = QuorumLibEngine::new(true);
        let mut cfg: CfgEngine = CfgEngine::new(1);
        let mut out = vec![0u8; OUT];
        let mut clock = 0;
        while let Some((&op, rest)) = data.split_first() {
            data = rest;
            clock += 1000;
            cfg_outputs(&mut cfg, Instant::from_millis(clock), &mut out);
            let engines: [&mut dyn Engine; 4] = [&mut cmap, &mut vq, &mut quorum, &mut cfg];
            let mut view = ClusterView::default();
            engines.iter().for_each(|e| e.publish(&mut view));
            let engine = &mut *engines[usize::from(op & 3)];
            let conn = ConnId(u32::from(op >> 2) % CONNS);
            engine.observe(&view);
            match op >> 4 {
                0 => {
                    let _ = engine.connect(conn);
                }
                1 => engine.disconnect(conn),
                2 => drain(engine, &mut out),
                action => {
                    let Some((frame, rest)) = take_frame(data) else { return };
                    data = rest;
                    let len = if action == 3 { MIN_REPLY_LEN } else { OUT };
                    request(engine, conn, frame, &mut out, len);
                }
            }
        }
    }

    /// Sets the cfg engine's clock to `now`, applies its timeout if due (draining the outbox
    /// first, as the Unix server does; it then cannot fail), and takes its decided TRYSHUTDOWN
    /// replies and its events: a reply is a 24-byte frame.
    fn cfg_outputs(cfg: &mut CfgEngine, now: Instant, out: &mut [u8]) {
        cfg.set_clock(now);
        if cfg.poll_timeout().is_some_and(|at| at <= now) {
            drain(cfg, out);
            assert_eq!(cfg.handle_timeout(now), Ok(()), "cfg: timeout after a drain");
        }
        while let Some((_, n)) = cfg.poll_reply(out).expect("cfg: a reply fits") {
            assert_eq!((n, frame_len(&out[..n], 12)), (24, Ok(Status::Complete(24))), "cfg: reply");
        }
        while cfg.poll_event().is_some() {}
    }

    /// The next length-prefixed frame and what follows it, or `None` at the end of the input.
    fn take_frame(data: &[u8]) -> Option<(&[u8], &[u8])> {
        let (len, rest) = data.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_le_bytes(*len)).min(MAX_FRAME).min(rest.len());
        Some(rest.split_at(len))
    }

    /// Hands `frame` in with the first `len` bytes of `out` for the reply; a reply must fit
    /// and declare its own length, and the notifications it caused drain.
    fn request(engine: &mut dyn Engine, conn: ConnId, frame: &[u8], out: &mut [u8], len: usize) {
        let reply = &mut out[..len];
        match engine.handle_request(conn, frame, reply) {
            Ok(n) => {
                assert!(n <= len, "{}: reply of {n} bytes into {len}", engine.name());
                assert_eq!(
                    frame_len(&reply[..n], 12),
                    Ok(Status::Complete(n)),
                    "{}: reply size",
                    engine.name()
                );
            }
            Err(e) => {
                let _ = format!("{e} {e:?}");
                assert!(
                    !matches!(e, ServerError::BufferTooSmall { .. }) || len < OUT,
                    "{}: {e} with the largest buffer",
                    engine.name()
                );
            }
        }
        drain(engine, out);
    }

    /// Takes every queued notification; each must fit the buffer the engine announced.
    fn drain(engine: &mut dyn Engine, out: &mut [u8]) {
        while let Some(len) = engine.next_notification_len() {
            match engine.poll_notification(&mut out[..len]) {
                Ok(Some((_, n))) => {
                    assert_eq!(n, len, "{}: announced {len}, wrote {n}", engine.name());
                    assert_eq!(
                        frame_len(&out[..n], 12),
                        Ok(Status::Complete(n)),
                        "{}: event size",
                        engine.name()
                    );
                }
                other => panic!("{}: announced a {len}-byte notification, got {other:?}", engine.name()),
            }
        }
    }
}

pub use client_conn::client_conn;

/// The `client_conn` target: the client state machine (`corowire::Connection`, CMAP and
/// votequorum) fed arbitrary replies and events between requests it submitted, with time
/// passing, failures polled, closes and finalizes, as a transport would drive it.
mod client_conn {
    use corowire::codec::Message;
    use corowire::conn::Service;
    use corowire::qb::{ConnectResponse, ConnectionType, CONNECTION_RESPONSE_LEN};
    use corowire::{Cmap, Connection, Duration, Instant, Votequorum};

    /// Input: a selector byte (bit 0: CMAP or votequorum; the rest: the negotiated maximum
    /// message size in KiB), then operations: one byte `op`, and for the frame operations a
    /// little-endian `u16` length and the frame. `op % 10`: 0 submit the frame as a request
    /// (if it decodes as one), 1 a reply, 2 an event, 3 poll an event into a scratch buffer of
    /// `op` bytes times 16, 4 drop skipped events, 5 advance the clock by `op` ms and time
    /// out, 6 take the failures, 7 close, 8 finalize, 9 route the frame directly.
    pub fn client_conn(data: &[u8]) {
        let Some((&select, ops)) = data.split_first() else { return };
        let max = 1024 * (u32::from(select >> 1) + 1);
        if select & 1 == 0 {
            run::<Cmap>(max, ops);
        } else {
            run::<Votequorum>(max, ops);
        }
    }

    fn run<S: Service>(max: u32, mut data: &[u8]) {
        let mut conn: Connection<S> = Connection::new(max);
        let mut setup = [0u8; CONNECTION_RESPONSE_LEN];
        let response = ConnectResponse {
            connection_type: ConnectionType::Shm,
            max_msg_size: max,
            connection: 1,
            request: b"/dev/shm/x/request",
            response: b"/dev/shm/x/response",
            event: b"/dev/shm/x/event",
        };
        let n = response.encode(&mut setup).expect("a setup response");
        conn.handle_setup(&setup[..n]).expect("the setup is valid");
        let mut now = Instant::from_millis(0);
        let mut out = vec![0u8; max as usize];
        let mut scratch = vec![0u8; 4096];
        while let Some((&op, rest)) = data.split_first() {
            data = rest;
            let frame = if matches!(op % 10, 0..=2 | 9) {
                let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
                let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
                let (frame, rest) = rest.split_at(len);
                data = rest;
                frame
            } else {
                &[]
            };
            match op % 10 {
                0 => {
                    if let Ok(req) = S::Request::decode(frame) {
                        let timeout = (op & 0x80 != 0).then(|| Duration::from_millis(u64::from(op)));
                        if let Ok(sent) = conn.submit(&req, now, timeout, &mut out) {
                            assert!(sent.len <= out.len());
                        }
                    }
                }
                1 => {
                    let outstanding = conn.outstanding();
                    if conn.handle_response(frame).is_ok() {
                        assert_eq!(conn.outstanding() + 1, outstanding, "a reply completes one request");
                    }
                }
                2 => {
                    let _ = conn.handle_event(frame);
                }
                3 => {
                    let len = (usize::from(op) * 16).min(scratch.len());
                    let _ = conn.poll_event(&mut scratch[..len]).map(|r| r.map(drop));
                }
                4 => conn.drop_skipped_events(),
                5 => {
                    now = now.saturating_add(Duration::from_millis(u64::from(op)));
                    if conn.poll_timeout().is_some_and(|t| t <= now) {
                        conn.handle_timeout(now);
                    }
                }
                6 => while conn.poll_failure().is_some() {},
                7 => conn.handle_closed(),
                8 => conn.finalize(),
                _ => drop(conn.route(frame)),
            }
            let _ = (conn.state(), conn.queued_events(), conn.unknown_events());
        }
    }
}
