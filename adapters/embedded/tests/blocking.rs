//! The blocking clients over an in-memory pipe to a gateway in front of the core's engines.

mod support;

use core::cell::RefCell;
use core::sync::atomic::{AtomicU64, Ordering};
use std::rc::Rc;

use corowire::cmap::{TrackType, Value};
use corowire::driver::Error;
use corowire::stream::{Frame, FrameError, Kind, Services};
use corowire::votequorum::{Notification, TrackFlags};
use corowire::{CsError, Duration, Instant};
use corowire_embedded::{no_clock, Channel, Clock, CmapClient, Link, LinkError, VotequorumClient};
use support::{Gateway, Pipe};

type TestLink = Link<Pipe, 1030, 1026>;

/// A link over a pipe to `gateway`, connected.
fn open<const RX: usize, const Q: usize>(
    gateway: &Rc<RefCell<Gateway>>,
    chunk: usize,
    clock: Clock,
) -> RefCell<Link<Pipe, RX, Q>> {
    let mut link = Link::new(Pipe::new(gateway, chunk), clock);
    link.connect(Services::ALL, None).unwrap();
    RefCell::new(link)
}

fn setup(offered: Services, chunk: usize) -> (Rc<RefCell<Gateway>>, RefCell<TestLink>) {
    let gateway = Rc::new(RefCell::new(Gateway::new(offered)));
    let link = open(&gateway, chunk, no_clock);
    (gateway, link)
}

#[test]
fn calls_at_every_chunk_size() {
    for chunk in [1, 2, 5, 4096] {
        let (gateway, link) = setup(Services::ALL, chunk);
        assert_eq!(link.borrow().accepted().unwrap().max_payload, 1024, "chunk {chunk}");
        let mut cmap: CmapClient<'_, Pipe, 1030, 1026> = CmapClient::new(&link, None).unwrap();
        let mut buf = [0u8; 32];
        assert_eq!(cmap.get_string("totem.cluster_name", &mut buf), Ok("embedded"));
        assert_eq!(cmap.get_u32("test.u32"), Ok(7));
        assert_eq!(cmap.get_u8("test.u32"), Err(Error::Cs(CsError::InvalidParam)));
        cmap.set_i64("test.i64", -5).unwrap();
        assert_eq!(cmap.get_i64("test.i64"), Ok(-5));
        let mut keys = Vec::new();
        cmap.iter(Some("test."), |k, _, len| {
            keys.push((k.to_owned(), len));
            true
        })
        .unwrap();
        assert_eq!(keys, [("test.i64".to_owned(), 8), ("test.u32".to_owned(), 4)]);
        cmap.delete("test.i64").unwrap();
        assert_eq!(cmap.get_i64("test.i64"), Err(Error::Cs(CsError::NotExist)));

        let mut vq: VotequorumClient<'_, Pipe, 1030, 1026> = VotequorumClient::new(&link, None).unwrap();
        let info = vq.get_info(0, |i| (i.nodeid, i.expected_votes, i.total_votes)).unwrap();
        assert_eq!(info, (1, 3, 2));
        assert_eq!(gateway.borrow().closed, None);
    }
}

#[test]
fn tracks_on_both_channels_of_one_stream() {
    let (gateway, link) = setup(Services::ALL, 3);
    let mut cmap: CmapClient<'_, Pipe, 1030, 1026> = CmapClient::new(&link, None).unwrap();
    let mut vq: VotequorumClient<'_, Pipe, 1030, 1026> = VotequorumClient::new(&link, None).unwrap();
    let track = cmap.track_add("test.", TrackType::PREFIX | TrackType::MODIFY | TrackType::ADD, 77).unwrap();
    // The votequorum track's current state arrives while CMAP is idle; the CMAP change made
    // by a local tool arrives between votequorum frames. Each waits in its channel's queue.
    vq.track_start(9, TrackFlags::CURRENT | TrackFlags::CHANGES).unwrap();
    gateway.borrow_mut().local_set("test.u32", Value::UInt32(8));
    let mut kinds = Vec::new();
    let quorate = loop {
        let seen = vq
            .next_event(|n| match n {
                Notification::Quorum { quorate, context, .. } => Some((*quorate, *context)),
                other => {
                    kinds.push(format!("{other:?}"));
                    None
                }
            })
            .unwrap();
        if seen.is_some() || kinds.len() > 2 {
            break seen;
        }
    };
    assert_eq!(quorate, Some((true, 9)), "{kinds:?}");
    assert!(kinds.len() == 1 && kinds[0].starts_with("NodeList"), "{kinds:?}");
    let change = cmap
        .next_event(|e| {
            let key = e.notification.key.as_bytes().to_vec();
            (e.track_handle, e.context, key, e.notification.new_value == Some(Value::UInt32(8)))
        })
        .unwrap();
    assert_eq!(change, (track, 77, b"test.u32".to_vec(), true));
    cmap.track_delete(track).unwrap();
}

#[test]
fn a_stream_cut_mid_frame_fails_the_call_and_every_later_one() {
    let (gateway, link) = setup(Services::ALL, 4);
    let mut cmap: CmapClient<'_, Pipe, 1030, 1026> = CmapClient::new(&link, None).unwrap();
    // The reply to the next GET is 40 + 9 value bytes + 6 framing: cut it after 20.
    link.borrow_mut().io_mut().budget = 20;
    assert_eq!(cmap.get_u32("test.u32"), Err(Error::Disconnected));
    assert_eq!(cmap.get_u32("test.u32"), Err(Error::Disconnected));
    assert_eq!(gateway.borrow().relayed, 1);
}

#[test]
fn garbage_from_the_gateway_is_a_typed_error_not_a_hang() {
    let (gateway, link) = setup(Services::ALL, 1);
    let mut cmap: CmapClient<'_, Pipe, 1030, 1026> = CmapClient::new(&link, None).unwrap();
    gateway.borrow_mut().raw(b"\x00garbage");
    assert_eq!(
        cmap.get_u32("test.u32"),
        Err(Error::Transport(LinkError::Frame(FrameError::BadSync { found: 0 })))
    );
    // A length over the negotiated maximum is refused from the header alone.
    let (gateway, link) = setup(Services::ALL, 1);
    let mut cmap: CmapClient<'_, Pipe, 1030, 1026> = CmapClient::new(&link, None).unwrap();
    gateway.borrow_mut().raw(&[0xC5, 0x11, 0xff, 0xff]);
    assert_eq!(
        cmap.get_u32("test.u32"),
        Err(Error::Transport(LinkError::Frame(FrameError::TooLarge { len: 0xffff, max: 1024 })))
    );
}

#[test]
fn refused_services_and_resets() {
    let gateway = Rc::new(RefCell::new(Gateway::new(Services::NONE)));
    let mut link = Link::<Pipe, 1030, 1026>::new(Pipe::new(&gateway, 7), no_clock);
    assert_eq!(link.connect(Services::ALL, None), Err(LinkError::Refused(CsError::NotExist)));
    assert_eq!(link.accepted(), None);

    let (gateway, link) = setup(Channel::Cmap.services(), 4096);
    let vq = VotequorumClient::<'_, Pipe, 1030, 1026>::new(&link, None);
    assert_eq!(vq.err(), Some(Error::Transport(LinkError::Refused(CsError::NotExist))));
    let mut cmap: CmapClient<'_, Pipe, 1030, 1026> = CmapClient::new(&link, None).unwrap();
    assert_eq!(cmap.get_u32("test.u32"), Ok(7));
    gateway.borrow_mut().reset(Channel::Cmap.services());
    assert_eq!(cmap.get_u32("test.u32"), Err(Error::Transport(LinkError::Reset)));
    // The request after the reset was written (the client had not read the reset yet) and
    // dropped by the gateway.
    assert_eq!(gateway.borrow().relayed, 1);
    assert_eq!(cmap.get_u32("test.u32"), Err(Error::Transport(LinkError::Reset)));
}

#[test]
fn a_request_over_the_negotiated_size_is_not_sent() {
    let gateway = Rc::new(RefCell::new(Gateway::new(Services::ALL)));
    let link = open::<518, 2048>(&gateway, 4096, no_clock);
    let mut cmap: CmapClient<'_, Pipe, 518, 2048, 512> = CmapClient::new(&link, None).unwrap();
    assert_eq!(cmap.max_msg_size(), 512);
    let big = [b'x'; 600];
    assert!(matches!(cmap.set("test.big", Value::Binary(&big)), Err(Error::TooBig { max: 512, .. })));
    assert_eq!(gateway.borrow().relayed, 0);
    assert_eq!(cmap.get_u32("test.u32"), Ok(7));
}

#[test]
fn the_gateway_closes_a_client_that_sends_garbage() {
    let mut gateway = Gateway::new(Services::ALL);
    let request = Frame::Message { channel: Channel::Cmap, kind: Kind::Request, payload: &[] };
    let mut bytes = [0u8; 6];
    request.encode(&mut bytes).unwrap();
    gateway.input(&bytes);
    assert_eq!(gateway.closed.as_deref(), Some("frame 0x10 is out of place from a client"));
    let mut gateway = Gateway::new(Services::ALL);
    gateway.input(b"\xC5\x00\x40\x00");
    assert!(gateway.closed.as_deref().is_some_and(|e| e.contains("over the maximum of 4")));
    assert_eq!(gateway.relayed, 0);
}

/// A fake clock: every reading is a millisecond later than the one before.
fn ticking() -> Instant {
    static NOW: AtomicU64 = AtomicU64::new(0);
    Instant::from_millis(NOW.fetch_add(1, Ordering::Relaxed))
}

#[test]
fn a_call_to_a_silent_gateway_times_out_on_the_link_clock() {
    let gateway = Rc::new(RefCell::new(Gateway::new(Services::ALL)));
    let link = open::<1030, 1026>(&gateway, 64, ticking);
    let timeout = Some(Duration::from_millis(50));
    let mut cmap: CmapClient<'_, Pipe, 1030, 1026> = CmapClient::new(&link, timeout).unwrap();
    assert_eq!(cmap.get_u32("test.u32"), Ok(7));
    gateway.borrow_mut().mute(Channel::Cmap.services());
    assert_eq!(cmap.get_u32("test.u32"), Err(Error::Timeout));
}

#[test]
fn the_default_sizes_take_a_full_size_get_reply() {
    // corosync answers a GET with 40 bytes and the whole value buffer the request offers,
    // which the client sizes to the negotiated payload: the largest reply there is.
    let gateway = Rc::new(RefCell::new(Gateway::new(Services::ALL)));
    let link = open::<1030, 1026>(&gateway, 4096, no_clock);
    let mut cmap: CmapClient<'_, Pipe> = CmapClient::new(&link, None).unwrap();
    let mut vq: VotequorumClient<'_, Pipe> = VotequorumClient::new(&link, None).unwrap();
    for _ in 0..3 {
        assert_eq!(cmap.get_u32("test.u32"), Ok(7));
        assert_eq!(vq.get_info(0, |i| i.nodeid), Ok(1));
    }
    assert_eq!(gateway.borrow().closed, None);
}

#[test]
fn late_replies_of_timed_out_calls_are_thrown_away() {
    let gateway = Rc::new(RefCell::new(Gateway::new(Services::ALL)));
    let link = open::<1030, 1026>(&gateway, 64, ticking);
    let mut cmap: CmapClient<'_, Pipe> = CmapClient::new(&link, Some(Duration::from_millis(20))).unwrap();
    gateway.borrow_mut().stall(Services::ALL);
    // More timeouts than requests may be in flight (2).
    for _ in 0..3 {
        assert_eq!(cmap.get_u32("test.u32"), Err(Error::Timeout));
    }
    gateway.borrow_mut().resume();
    cmap.set_u32("test.u32", 8).unwrap();
    assert_eq!(cmap.get_u32("test.u32"), Ok(8));
    assert_eq!(cmap.driver().connection().outstanding(), 0);
}

#[test]
fn a_reply_with_no_request_outstanding_ends_the_link() {
    let (gateway, link) = setup(Services::ALL, 4096);
    let mut cmap: CmapClient<'_, Pipe, 1030, 1026> = CmapClient::new(&link, None).unwrap();
    let mut vq: VotequorumClient<'_, Pipe, 1030, 1026> = VotequorumClient::new(&link, None).unwrap();
    assert_eq!(cmap.get_u32("test.u32"), Ok(7));
    // A reply nobody asked for, as if to a GET of 99.
    let (mut reply, mut frame) = ([0u8; 64], [0u8; 80]);
    let nine = 99u32.to_ne_bytes();
    let get = corowire::cmap::GetReply {
        value_type: Some(corowire::cmap::ValueType::UInt32),
        value_len: 4,
        value: &nine,
        buffer_len: 4,
    };
    let n = corowire::cmap::Reply { result: Ok(()), body: corowire::cmap::Response::Get(get) }
        .encode(&mut reply)
        .unwrap();
    let n = Frame::Message { channel: Channel::Cmap, kind: Kind::Reply, payload: &reply[..n] }
        .encode(&mut frame)
        .unwrap();
    gateway.borrow_mut().raw(&frame[..n]);
    let unsolicited = || Error::Transport(LinkError::UnsolicitedReply { channel: Channel::Cmap });
    assert_eq!(cmap.get_u32("test.u32"), Err(unsolicited()));
    assert_eq!(vq.get_info(0, |i| i.nodeid), Err(unsolicited()));
    assert_eq!(cmap.get_u32("test.u32"), Err(unsolicited()));
}

#[test]
fn a_client_whose_buffers_cannot_hold_the_negotiated_payload_is_refused() {
    // Else an event as large as the negotiated payload would not fit its buffers.
    let gateway = Rc::new(RefCell::new(Gateway::new(Services::ALL)));
    let link = open::<2048, 2048>(&gateway, 4096, no_clock);
    let small = CmapClient::<'_, Pipe, 2048, 2048, 512>::new(&link, None);
    let too_small =
        LinkError::BufferTooSmall(corowire::transport::BufferTooSmall { needed: 2042, available: 512 });
    assert_eq!(small.err(), Some(Error::Transport(too_small)));
    assert!(CmapClient::<'_, Pipe, 2048, 2048, 2042>::new(&link, None).is_ok());
}

#[test]
fn unread_events_of_one_service_fail_only_its_client() {
    let (gateway, link) = setup(Services::ALL, 4096);
    let mut cmap: CmapClient<'_, Pipe, 1030, 1026> = CmapClient::new(&link, None).unwrap();
    let mut vq: VotequorumClient<'_, Pipe, 1030, 1026> = VotequorumClient::new(&link, None).unwrap();
    cmap.track_add("test.", TrackType::PREFIX | TrackType::MODIFY, 1).unwrap();
    for i in 0..40 {
        gateway.borrow_mut().local_set("test.u32", Value::UInt32(i));
    }
    // The CMAP events overflow their queue while votequorum calls read the stream.
    for _ in 0..3 {
        assert_eq!(vq.get_info(0, |i| i.nodeid), Ok(1));
    }
    let failed = cmap.next_event(|_| ()).unwrap_err();
    assert!(
        matches!(
            failed,
            Error::Transport(LinkError::QueueFull { channel: Channel::Cmap, kind: Kind::Event, .. })
        ),
        "{failed:?}"
    );
    assert!(failed.to_string().contains("does not take its frames"), "{failed}");
    assert_eq!(vq.get_info(0, |i| i.nodeid), Ok(1));
}

#[test]
fn next_event_waits_at_most_the_clients_timeout() {
    let gateway = Rc::new(RefCell::new(Gateway::new(Services::ALL)));
    let link = open::<1030, 1026>(&gateway, 64, ticking);
    let mut cmap: CmapClient<'_, Pipe> = CmapClient::new(&link, Some(Duration::from_millis(20))).unwrap();
    cmap.track_add("test.", TrackType::PREFIX | TrackType::MODIFY, 1).unwrap();
    assert_eq!(cmap.next_event(|_| ()), Err(Error::Timeout));
    gateway.borrow_mut().local_set("test.u32", Value::UInt32(3));
    assert_eq!(cmap.next_event(|e| e.context), Ok(1));
}

#[test]
fn a_silent_gateway_times_out_the_connect_and_the_stream_stays() {
    let gateway = Rc::new(RefCell::new(Gateway::new(Services::ALL)));
    gateway.borrow_mut().stall_hello();
    let mut link = Link::<Pipe>::new(Pipe::new(&gateway, 64), ticking);
    let idle = || IDLE.with(|n| n.set(n.get() + 1));
    link.set_idle(idle);
    assert_eq!(link.connect(Services::ALL, Some(Duration::from_millis(20))), Err(LinkError::Timeout));
    assert!(IDLE.with(core::cell::Cell::get) > 0, "the idle hook ran between readiness checks");
    assert_eq!(link.into_inner().budget, usize::MAX);
}

thread_local! {
    static IDLE: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
}

#[test]
fn after_a_reset_a_new_hello_on_the_same_stream_recovers() {
    let (gateway, link) = setup(Services::ALL, 4096);
    {
        let mut cmap: CmapClient<'_, Pipe, 1030, 1026> = CmapClient::new(&link, None).unwrap();
        assert_eq!(cmap.get_u32("test.u32"), Ok(7));
        gateway.borrow_mut().reset(Services::ALL);
        assert_eq!(cmap.get_u32("test.u32"), Err(Error::Transport(LinkError::Reset)));
    }
    // corosync is back: the gateway answers a new hello on the same stream.
    gateway.borrow_mut().restart();
    let accepted = link.borrow_mut().connect(Services::ALL, None).unwrap();
    assert_eq!(accepted.services, Services::ALL);
    let mut cmap: CmapClient<'_, Pipe, 1030, 1026> = CmapClient::new(&link, None).unwrap();
    assert_eq!(cmap.get_u32("test.u32"), Ok(7));
}

#[test]
fn the_rest_of_the_blocking_calls() {
    let (_gateway, link) = setup(Services::ALL, 4096);
    let mut cmap: CmapClient<'_, Pipe> = CmapClient::new(&link, None).unwrap();
    cmap.inc("test.u32").unwrap();
    cmap.inc("test.u32").unwrap();
    cmap.dec("test.u32").unwrap();
    assert_eq!(cmap.get_u32("test.u32"), Ok(8));
    assert_eq!(cmap.get_type("test.u32"), Ok((corowire_embedded::ValueType::UInt32, 4)));
    cmap.set_string("test.s", "abc").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(cmap.get_string("test.s", &mut buf), Ok("abc"));
    cmap.set_binary("test.b", &[1, 2]).unwrap();
    assert_eq!(cmap.get_type("test.b"), Ok((corowire_embedded::ValueType::Binary, 2)));

    let mut vq: VotequorumClient<'_, Pipe> = VotequorumClient::new(&link, None).unwrap();
    // corosync's checks answer: 4 expected votes would make the quorate cluster lose quorum.
    assert_eq!(vq.set_expected(4), Err(Error::Cs(CsError::InvalidParam)));
    vq.set_expected(2).unwrap();
    assert_eq!(vq.get_info(0, |i| i.expected_votes), Ok(2));
    vq.set_votes(1, 1).unwrap();
}
