//! The generic client driver over a scripted transport: batched announcements, completions of
//! pipelined requests, `TRY_AGAIN` retries, call timeouts, client-side size checks, and
//! dispatches that callbacks stop or finalize, or that a deadline ends. No I/O, no sleeps.

use std::collections::VecDeque;

use corowire::conn::{Connection, Votequorum};
use corowire::driver::{Buffers, Driver, Error, Flow};
use corowire::qb::{ConnectResponse, ConnectionType};
use corowire::transport::{ErrorKind, Retry, Transport, TransportError};
use corowire::votequorum::{Notification, Reply, Request, Response};
use corowire::{CsError, DispatchMode, Duration, Instant, Wait};

/// A transport error of a given kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault(ErrorKind);

impl TransportError for Fault {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

/// Replies and events handed out in order; everything the driver does is recorded.
#[derive(Debug, Default)]
struct Script {
    now: Instant,
    /// `check_send` answers `TryAgain` this many times first.
    busy: u32,
    replies: VecDeque<Vec<u8>>,
    events: VecDeque<Vec<u8>>,
    written: Vec<Vec<u8>>,
    flushes: Vec<usize>,
    pauses: Vec<Duration>,
}

impl Transport for Script {
    type Error = Fault;

    fn now(&self) -> Instant {
        self.now
    }

    fn check_send(&mut self, _len: usize) -> Result<(), Fault> {
        if self.busy > 0 {
            self.busy -= 1;
            return Err(Fault(ErrorKind::TryAgain));
        }
        Ok(())
    }

    fn write_request(&mut self, request: &[u8]) -> Result<(), Fault> {
        self.written.push(request.to_vec());
        Ok(())
    }

    fn flush(&mut self, written: usize) -> Result<(), Fault> {
        self.flushes.push(written);
        Ok(())
    }

    fn recv_response(&mut self, deadline: Option<Instant>, out: &mut [u8]) -> Result<usize, Fault> {
        match self.replies.pop_front() {
            Some(r) => Ok(copy(&r, out)),
            // Nothing will come: time runs out (or, without a deadline, the peer is gone).
            None => match deadline {
                Some(d) => {
                    self.now = d;
                    Err(Fault(ErrorKind::Timeout))
                }
                None => Err(Fault(ErrorKind::Disconnected)),
            },
        }
    }

    fn recv_event(&mut self, wait: Wait, out: &mut [u8]) -> Result<Option<usize>, Fault> {
        match (self.events.pop_front(), wait) {
            (Some(e), _) => Ok(Some(copy(&e, out))),
            (None, Wait::Never) => Ok(None),
            (None, Wait::Forever) => Err(Fault(ErrorKind::Disconnected)),
        }
    }

    fn wait_event(&mut self, deadline: Instant) -> Result<bool, Fault> {
        if self.events.is_empty() {
            self.now = deadline;
            return Ok(false);
        }
        Ok(true)
    }

    fn settle_events(&mut self) {}

    fn pause(&mut self, duration: Duration) {
        self.pauses.push(duration);
    }
}

fn copy(frame: &[u8], out: &mut [u8]) -> usize {
    out[..frame.len()].copy_from_slice(frame);
    frame.len()
}

type VqDriver = Driver<Votequorum, Script, Vec<u8>, 8, 8, 4096>;

fn driver(script: Script, timeout: Option<Duration>, retry: Option<Retry>) -> VqDriver {
    driver_max(script, timeout, retry, 8192)
}

/// A driver whose server negotiated `max_msg_size`.
fn driver_max(
    script: Script,
    timeout: Option<Duration>,
    retry: Option<Retry>,
    max_msg_size: u32,
) -> VqDriver {
    let mut conn = Connection::new(8192);
    let mut setup = vec![0u8; 12328];
    let n = ConnectResponse {
        connection_type: ConnectionType::Shm,
        max_msg_size,
        connection: 1,
        request: b"/dev/shm/q/request",
        response: b"/dev/shm/q/response",
        event: b"/dev/shm/q/event",
    }
    .encode(&mut setup)
    .unwrap();
    conn.handle_setup(&setup[..n]).unwrap();
    let buffers = Buffers {
        request: vec![0; 8192],
        reply: vec![0; 8192],
        event: vec![0; 8192],
        scratch: vec![0; 8192],
    };
    Driver::new(conn, script, buffers, timeout, retry)
}

fn status(result: Result<(), CsError>) -> Vec<u8> {
    let r = Reply { result, body: Response::Status };
    let mut buf = vec![0u8; r.encoded_len()];
    r.encode(&mut buf).unwrap();
    buf
}

fn expected_votes(expected_votes: u32) -> Vec<u8> {
    let n = Notification::ExpectedVotes { context: 9, expected_votes };
    let mut buf = vec![0u8; n.encoded_len()];
    n.encode(&mut buf).unwrap();
    buf
}

const SET: Request<'static> = Request::SetExpected { expected_votes: 3 };

#[test]
fn a_batch_is_announced_once_and_every_completion_is_handed_over() {
    let replies = [status(Ok(())), status(Err(CsError::InvalidParam)), status(Ok(()))].into();
    let mut d = driver(Script { replies, ..Script::default() }, None, None);
    let tokens: Vec<_> = (0..3).map(|_| d.submit_deferred(&SET).unwrap()).collect();
    assert_eq!(d.transport().written.len(), 3);
    assert!(d.transport().flushes.is_empty(), "nothing announced before the collect");
    let mut seen = Vec::new();
    d.collect(tokens[2], |t, r| seen.push((t, r.map(|_| ())))).unwrap();
    assert_eq!(d.transport().flushes, [3], "one announcement for the batch");
    assert_eq!(
        seen,
        [(tokens[0], Ok(())), (tokens[1], Err(Error::Cs(CsError::InvalidParam))), (tokens[2], Ok(()))]
    );
}

#[test]
fn try_again_is_retried_with_pauses_until_the_policy_is_spent() {
    let retry = Retry { attempts: 2, backoff: Duration::from_millis(5) };
    let mut d =
        driver(Script { busy: 2, replies: [status(Ok(()))].into(), ..Script::default() }, None, Some(retry));
    d.call(&SET, |_| Ok::<_, Error<Fault>>(())).unwrap();
    assert_eq!(d.transport().pauses, [retry.backoff; 2]);

    let mut d = driver(Script { busy: 3, ..Script::default() }, None, Some(retry));
    let e = d.submit(&SET).unwrap_err();
    assert_eq!(e, Error::Transport(Fault(ErrorKind::TryAgain)));
    assert_eq!(d.transport().pauses.len(), 2);
    assert!(d.transport().written.is_empty());
}

#[test]
fn a_call_times_out_on_the_transport_clock() {
    let mut d = driver(Script::default(), Some(Duration::from_secs(1)), None);
    let e = d.call(&SET, |_| Ok::<_, Error<Fault>>(())).unwrap_err();
    assert_eq!(e, Error::Timeout);
    assert_eq!(d.transport().now, Instant::from_millis(1000));
}

#[test]
fn a_request_over_the_negotiated_size_is_refused_unsent() {
    // A server that negotiated less than the 24-byte SETEXPECTED request.
    let mut d = driver_max(Script::default(), None, None, 20);
    let e = d.submit(&SET).unwrap_err();
    assert_eq!(e, Error::TooBig { len: SET.encoded_len(), max: 20 });
    assert!(d.transport().written.is_empty());
}

#[test]
fn a_callback_stops_or_finalizes_a_blocking_dispatch() {
    let events = [expected_votes(1), expected_votes(2), expected_votes(3)].into();
    let mut d = driver(Script { events, ..Script::default() }, None, None);
    let mut seen = Vec::new();
    let mut record = |n: Notification<'_>, flow| {
        if let Notification::ExpectedVotes { expected_votes, .. } = n {
            seen.push(expected_votes);
        }
        flow
    };
    d.dispatch(DispatchMode::Blocking, None, |n| record(n, Flow::Stop)).unwrap();
    assert_eq!(
        d.dispatch(DispatchMode::Blocking, None, |n| record(n, Flow::Finalize)),
        Err(Error::Cs(CsError::BadHandle))
    );
    assert_eq!(seen, [1, 2]);
    assert_eq!(d.dispatch(DispatchMode::All, None, |_| Flow::Continue), Err(Error::Cs(CsError::BadHandle)));
    assert_eq!(d.submit(&SET).unwrap_err(), Error::Submit(corowire::conn::SubmitError::Finalized));
}

#[test]
fn a_dispatch_deadline_ends_the_wait() {
    let mut d = driver(Script::default(), None, None);
    let deadline = Instant::from_millis(20);
    assert_eq!(d.dispatch(DispatchMode::Blocking, Some(deadline), |_| Flow::Continue), Err(Error::Timeout));
    assert_eq!(d.transport().now, deadline);
    // Without one, a waiting dispatch reads on (and here meets the closed peer).
    assert_eq!(d.dispatch(DispatchMode::One, None, |_| Flow::Continue), Err(Error::Disconnected));
}
