//! The async clients over a tokio duplex stream to a gateway in front of the core's engines.

mod support;

use core::cell::RefCell;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Waker};

use corowire::cmap::{TrackType, Value};
use corowire::driver::Error;
use corowire::stream::Services;
use corowire::votequorum::TrackFlags;
use corowire::CsError;
use corowire_embedded::{AsyncCmapClient, AsyncLink, AsyncVotequorumClient, LinkError};
use embedded_io::ErrorKind;
use support::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// The client's end of the duplex, as an `embedded_io_async` stream.
struct Duplex(DuplexStream);

fn kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => ErrorKind::BrokenPipe,
        _ => ErrorKind::Other,
    }
}

impl embedded_io_async::ErrorType for Duplex {
    type Error = ErrorKind;
}

impl embedded_io_async::Read for Duplex {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.0.read(buf).await.map_err(|e| kind(&e))
    }
}

impl embedded_io_async::Write for Duplex {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.0.write(buf).await.map_err(|e| kind(&e))
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        self.0.flush().await.map_err(|e| kind(&e))
    }
}

/// Runs the gateway on its end of the duplex until the client hangs up, or until it has
/// sent `cut` bytes (then it drops the stream, mid-frame). It reads and writes at once, as a
/// gateway must: a client may be writing a request while a notification is on its way.
async fn serve(end: DuplexStream, gateway: &RefCell<Gateway>, cut: usize) {
    let (mut rd, mut wr) = tokio::io::split(end);
    let (mut buf, mut pending, mut sent) = ([0u8; 512], Vec::new(), 0);
    loop {
        pending.extend(gateway.borrow_mut().output(usize::MAX));
        let allowed = pending.len().min(cut - sent);
        if allowed == 0 && sent == cut {
            return;
        }
        tokio::select! {
            read = rd.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => gateway.borrow_mut().input(&buf[..n]),
            },
            written = wr.write(&pending[..allowed]), if allowed > 0 => match written {
                Ok(n) => {
                    pending.drain(..n);
                    sent += n;
                }
                Err(_) => return,
            },
        }
    }
}

/// The client's link over its end of the duplex.
async fn connect(end: DuplexStream) -> AsyncLink<Duplex, 518, 1024> {
    let mut link = AsyncLink::new(Duplex(end));
    link.connect(Services::ALL).await.unwrap();
    link
}

type Cmap = AsyncCmapClient<512>;
type Vq = AsyncVotequorumClient<512>;

#[tokio::test(flavor = "current_thread")]
async fn calls_and_tracks_one_byte_at_a_time() {
    let gateway = RefCell::new(Gateway::new(Services::ALL));
    // A one-byte duplex: every read of either side gets at most one byte.
    let (client_end, gateway_end) = tokio::io::duplex(1);
    let client = async {
        let mut link = connect(client_end).await;
        let mut cmap = Cmap::new(&link).unwrap();
        let mut vq = Vq::new(&link).unwrap();
        let name = cmap.get(&mut link, "totem.cluster_name", |v| v == Value::String(b"embedded")).await;
        assert_eq!(name, Ok(true));
        cmap.set(&mut link, "test.u32", Value::UInt32(9)).await.unwrap();
        assert_eq!(cmap.get(&mut link, "test.u32", |v| v == Value::UInt32(9)).await, Ok(true));
        assert_eq!(cmap.get(&mut link, "test.none", |_| ()).await, Err(Error::Cs(CsError::NotExist)));
        let expected = vq.get_info(&mut link, 0, |i| i.expected_votes).await;
        assert_eq!(expected, Ok(3));

        let track =
            cmap.track_add(&mut link, "test.", TrackType::PREFIX | TrackType::MODIFY, 5).await.unwrap();
        gateway.borrow_mut().local_set("test.u32", Value::UInt32(10));
        // The change went out with the reply to this next request, ahead of it.
        vq.track_start(&mut link, 6, TrackFlags::CHANGES).await.unwrap();
        let change = cmap
            .next_change(&mut link, |e| {
                (e.track_handle, e.context, e.notification.new_value == Some(Value::UInt32(10)))
            })
            .await;
        assert_eq!(change, Ok((track, 5, true)));
    };
    tokio::join!(client, serve(gateway_end, &gateway, usize::MAX));
    assert_eq!(gateway.borrow().closed, None);
}

#[tokio::test(flavor = "current_thread")]
async fn a_stream_dropped_mid_frame_fails_the_call() {
    let gateway = RefCell::new(Gateway::new(Services::ALL));
    let (client_end, gateway_end) = tokio::io::duplex(64);
    let client = async {
        let mut link = connect(client_end).await;
        let mut cmap = Cmap::new(&link).unwrap();
        // The accept is 14 bytes; the gateway stops 10 bytes into the GET's reply.
        assert_eq!(cmap.get(&mut link, "test.u32", |_| ()).await, Err(Error::Disconnected));
        assert_eq!(
            cmap.get(&mut link, "test.u32", |_| ()).await,
            Err(Error::Submit(corowire::conn::SubmitError::Closed))
        );
    };
    tokio::join!(client, serve(gateway_end, &gateway, 14 + 10));
}

/// Polls `call` once, with a waker that does nothing, and drops it: `true` if it was still
/// pending, i.e. a call cancelled at the `.await` where it stopped.
fn poll_once_and_drop(call: impl Future) -> bool {
    pin!(call).as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending()
}

/// A link whose hello the test's gateway answered by hand; the gateway's end is returned
/// unread beyond the hello.
async fn accepted(
    gateway: &RefCell<Gateway>,
    capacity: usize,
) -> (AsyncLink<Duplex, 518, 1024>, DuplexStream) {
    let (client_end, mut gateway_end) = tokio::io::duplex(capacity);
    let accept = async {
        let mut hello = [0u8; 10];
        gateway_end.read_exact(&mut hello).await.unwrap();
        gateway.borrow_mut().input(&hello);
        let accept = gateway.borrow_mut().output(usize::MAX);
        gateway_end.write_all(&accept).await.unwrap();
    };
    let (link, ()) = tokio::join!(connect(client_end), accept);
    (link, gateway_end)
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_dropped_mid_write_fails_every_later_call_out_of_step() {
    let gateway = RefCell::new(Gateway::new(Services::ALL));
    // 16 bytes of duplex, which the gateway does not read: a GET frame does not fit.
    let (mut link, gateway_end) = accepted(&gateway, 16).await;
    let mut cmap = Cmap::new(&link).unwrap();
    let mut vq = Vq::new(&link).unwrap();
    assert!(poll_once_and_drop(cmap.get(&mut link, "totem.cluster_name", |_| ())));
    // Part of a frame is on the stream: nothing more is written or read, by either client.
    let client = async {
        let out_of_step = || Error::Transport(LinkError::OutOfStep);
        assert_eq!(cmap.get(&mut link, "totem.cluster_name", |_| ()).await, Err(out_of_step()));
        assert_eq!(vq.get_info(&mut link, 0, |_| ()).await, Err(out_of_step()));
        assert_eq!(cmap.next_change(&mut link, |_| ()).await, Err(out_of_step()));
        let said = out_of_step().to_string();
        assert!(said.contains("half-written"), "{said}");
        drop(link);
    };
    tokio::join!(client, serve(gateway_end, &gateway, usize::MAX));
    // The gateway saw 16 bytes of a frame and nothing after them.
    assert_eq!(gateway.borrow().closed, None);
    assert_eq!(gateway.borrow().pending(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_dropped_while_waiting_for_its_reply_leaves_the_link_in_step() {
    let gateway = RefCell::new(Gateway::new(Services::ALL));
    let (mut link, gateway_end) = accepted(&gateway, 4096).await;
    let mut cmap = Cmap::new(&link).unwrap();
    // The request is written whole; no reply has come yet.
    assert!(poll_once_and_drop(cmap.get(&mut link, "test.none", |_| ())));
    let client = async {
        // The next call discards the dropped call's reply (NOT_EXIST) and gets its own.
        let name = cmap.get(&mut link, "totem.cluster_name", |v| v == Value::String(b"embedded")).await;
        assert_eq!(name, Ok(true));
        drop(link);
    };
    tokio::join!(client, serve(gateway_end, &gateway, usize::MAX));
    assert_eq!(gateway.borrow().closed, None);
}

#[tokio::test(flavor = "current_thread")]
async fn more_dropped_calls_than_requests_in_flight_leave_the_link_usable() {
    let gateway = RefCell::new(Gateway::new(Services::ALL));
    let (mut link, gateway_end) = accepted(&gateway, 4096).await;
    let mut cmap = Cmap::new(&link).unwrap();
    // Two calls (the pipeline, P = 2) dropped while waiting for their replies, and a third
    // dropped while it waits for the first late reply to make room.
    for _ in 0..3 {
        assert!(poll_once_and_drop(cmap.get(&mut link, "test.none", |_| ())));
    }
    let client = async {
        let name = cmap.get(&mut link, "totem.cluster_name", |v| v == Value::String(b"embedded")).await;
        assert_eq!(name, Ok(true));
        assert_eq!(cmap.connection().outstanding(), 0);
        drop(link);
    };
    tokio::join!(client, serve(gateway_end, &gateway, usize::MAX));
    assert_eq!(gateway.borrow().closed, None);
}

#[tokio::test(flavor = "current_thread")]
async fn the_rest_of_the_async_calls() {
    let gateway = RefCell::new(Gateway::new(Services::ALL));
    let (client_end, gateway_end) = tokio::io::duplex(256);
    let client = async {
        let mut link = connect(client_end).await;
        let mut cmap = Cmap::new(&link).unwrap();
        let mut vq = Vq::new(&link).unwrap();
        assert_eq!(cmap.get_u32(&mut link, "test.u32").await, Ok(7));
        assert_eq!(cmap.get_u8(&mut link, "test.u32").await, Err(Error::Cs(CsError::InvalidParam)));
        let mut buf = [0u8; 16];
        assert_eq!(cmap.get_string(&mut link, "totem.cluster_name", &mut buf).await, Ok("embedded"));
        assert_eq!(cmap.get_type(&mut link, "test.u32").await, Ok((corowire_embedded::ValueType::UInt32, 4)));
        cmap.delete(&mut link, "test.u32").await.unwrap();
        assert_eq!(cmap.get_u32(&mut link, "test.u32").await, Err(Error::Cs(CsError::NotExist)));
        let track = cmap.track_add(&mut link, "test.", TrackType::PREFIX | TrackType::ADD, 1).await.unwrap();
        cmap.track_delete(&mut link, track).await.unwrap();
        vq.track_start(&mut link, 2, TrackFlags::CHANGES).await.unwrap();
        vq.track_stop(&mut link).await.unwrap();
        drop(link);
    };
    tokio::join!(client, serve(gateway_end, &gateway, usize::MAX));
    assert_eq!(gateway.borrow().closed, None);
}
