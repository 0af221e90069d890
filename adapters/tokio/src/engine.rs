//! The connection thread: one per connection, owning the transport and the core's
//! [`corowire::driver::Driver`] (through corowire-unix's [`ClientDriver`]). Tasks hand it
//! [`Call`]s over a channel and wake it through a socket pair; it pipelines them, completes
//! each through its own closure (which sends on the caller's oneshot), delivers events to the
//! subscriptions ([`Hooks`]), and reconnects when the daemon goes away.

use core::future::Future;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::collections::VecDeque;
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use corowire::conn::{Service, Token};
use corowire::driver::{Error as DriverError, Flow};
use corowire::transport::{ErrorKind, Transport as _, TransportError as _};
use corowire::DispatchMode;
use corowire_unix::{ClientDriver, Error, Options};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Requests one connection keeps in flight, at most (the core connection's pipeline).
pub(crate) const PENDING: usize = 64;
/// Events the core connection queues while a dispatch delivers them.
const EVENTS: usize = 64;
/// Bytes of those queued events.
const EVENT_BYTES: usize = 65536;
/// Bytes of a ring kept free beyond the replies in flight (libqb's chunk margins).
const RING_MARGIN: usize = 256;
/// Pause before sending again when the daemon's flow control refuses a request and nothing
/// is in flight to wait for.
const FLOW_CONTROL_PAUSE: Duration = Duration::from_millis(1);
/// How long the thread waits at a time for a late reply of a timed-out request, when only
/// such requests hold the window and calls wait for a place: between two waits it takes new
/// calls and delivers events.
const LATE_REPLY_WAIT: Duration = Duration::from_millis(100);
/// The largest reply read into [`Engine::await_late`]'s buffer (the driver's bound: a CMAP
/// notification with two largest values is larger than any reply).
const REPLY_MAX: usize = corowire::cmap::NOTIFICATION_MAX_LEN.next_power_of_two();

/// The blocking client the connection thread drives.
pub(crate) type Conn<S> = ClientDriver<S, PENDING, EVENTS, EVENT_BYTES>;

/// Sends one request on the connection (without announcing it: the thread flushes a batch).
pub(crate) type Submit<S> = Box<dyn FnOnce(&mut Conn<S>) -> Result<Token, Error> + Send>;

/// Handles a request's reply (or its failure) on the connection thread.
pub(crate) type Complete<S, H> =
    Box<dyn for<'a> FnOnce(&mut H, Result<<S as Service>::Response<'a>, Error>) + Send>;

/// One request from a task.
pub(crate) struct Call<S: Service, H> {
    /// Encodes and writes it.
    pub(crate) submit: Submit<S>,
    /// Takes its reply.
    pub(crate) complete: Complete<S, H>,
    /// Whether the caller is gone (its future dropped before the request was sent): then it
    /// is not sent at all.
    pub(crate) cancelled: Option<Box<dyn Fn() -> bool + Send>>,
    /// Ring bytes it may take: the larger of its request and its reply, with their headers.
    pub(crate) weight: usize,
    /// The caller's place in the window, given back when the core's slot is free again.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    /// Whether nothing may be sent behind it until it is answered (votequorum
    /// QDEVICE_REGISTER, the core's `SubmitError::Barrier`).
    pub(crate) barrier: bool,
}

impl<S: Service, H> Call<S, H> {
    /// A request that answers a oneshot with `convert`'s result; skipped if the receiver is
    /// gone before it is sent.
    pub(crate) fn answering<R: Send + 'static>(
        weight: usize,
        submit: Submit<S>,
        convert: impl for<'a> FnOnce(&mut H, Result<S::Response<'a>, Error>) -> Result<R, Error> + Send + 'static,
    ) -> (Self, oneshot::Receiver<Result<R, Error>>) {
        let (tx, rx) = oneshot::channel();
        let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
        let probe = tx.clone();
        let cancelled =
            move || probe.lock().map_or(true, |t| t.as_ref().is_none_or(oneshot::Sender::is_closed));
        let complete = move |hooks: &mut H, r: Result<S::Response<'_>, Error>| {
            let out = convert(hooks, r);
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(out);
            }
        };
        let call = Self {
            submit,
            complete: Box::new(complete),
            cancelled: Some(Box::new(cancelled)),
            weight,
            permit: None,
            barrier: false,
        };
        (call, rx)
    }

    /// The same call, marked as a barrier: later calls wait until it is answered.
    pub(crate) fn barrier(self) -> Self {
        Self { barrier: true, ..self }
    }

    /// A request whose answer nobody waits for (e.g. a TRACK_DELETE for a dropped stream).
    pub(crate) fn detached(weight: usize, submit: Submit<S>) -> Self {
        Self { submit, complete: Box::new(|_, _| {}), cancelled: None, weight, permit: None, barrier: false }
    }
}

/// A message to the connection thread, in the order the tasks sent them.
pub(crate) enum Msg<S: Service, H> {
    /// A request.
    Call(Call<S, H>),
    /// A stream was dropped: end its subscription before any request sent after the drop
    /// (a TRACK_START right after dropping the tracking's stream must not meet `CS_ERR_EXIST`).
    /// Or a stream read its buffer empty and is owed a marker: send it.
    Sweep,
}

/// Tells the connection thread that a stream was dropped or is owed a marker ([`Msg::Sweep`]).
pub(crate) type Closer = Arc<dyn Fn() + Send + Sync>;

/// What a service adds to the connection thread: its subscriptions.
pub(crate) trait Hooks<S: Service>: Send + Sized + 'static {
    /// Hands an event to its subscription.
    fn deliver(&mut self, event: S::Event<'_>);
    /// Requests that end subscriptions whose stream was dropped (TRACK_DELETE, TRACK_STOP);
    /// the other streams get the markers they are owed.
    fn sweep(&mut self, out: &mut Vec<Call<S, Self>>);
    /// After a reconnect: registers every subscription again on `conn` (blocking) and owes
    /// each a resync marker.
    ///
    /// # Errors
    /// The connection's; the thread then tries the next connection.
    fn restore(&mut self, conn: &mut Conn<S>) -> Result<(), Error>;
    /// The connection just broke: every stream gets a loss marker.
    fn disconnected(&mut self);
    /// Whether no subscription is open.
    fn is_idle(&self) -> bool;
    /// The connection is gone for good: ends every subscription's stream.
    fn close(&mut self);
}

/// Wakes the connection thread: a byte on a socket pair, at most one per sleep.
#[derive(Debug)]
pub(crate) struct Wake {
    tx: UnixStream,
    armed: AtomicBool,
}

impl Wake {
    /// Wakes the thread if it may be asleep.
    pub(crate) fn wake(&self) {
        if !self.armed.swap(true, Ordering::AcqRel) {
            // A full socket already holds a wake-up byte.
            let _ = (&self.tx).write(&[1]);
        }
    }
}

/// Counters of one connection thread, for tests and the crate's idle proof.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Rounds of the thread's loop (each after a wake-up, a reply, an event or a pause):
    /// none while the connection is idle.
    pub(crate) rounds: AtomicU64,
    /// The most requests in flight at once.
    pub(crate) peak_in_flight: AtomicU64,
}

/// The tasks' side of a connection: the request channel, the wake-up, the window.
pub(crate) struct Handle<S: Service, H> {
    tx: mpsc::Sender<Msg<S, H>>,
    wake: Arc<Wake>,
    window: Arc<Semaphore>,
    pub(crate) timeout: Option<Duration>,
    #[cfg_attr(
        not(feature = "testing"),
        expect(dead_code, reason = "read by the `testing` feature's counters")
    )]
    pub(crate) stats: Arc<Stats>,
}

impl<S: Service, H> Drop for Handle<S, H> {
    fn drop(&mut self) {
        // The thread ends once the last handle and stream are gone; tell it to look.
        let (tx, _) = mpsc::channel();
        drop(core::mem::replace(&mut self.tx, tx));
        self.wake.wake();
    }
}

impl<S: Service + 'static, H: Hooks<S>> Handle<S, H>
where
    Conn<S>: Send,
{
    /// Starts a connection thread: connects (waiting for the daemon per
    /// `options.reconnect`), and answers with the handle once connected.
    pub(crate) async fn start(options: Options, hooks: H) -> Result<Self, Error> {
        let (wake_tx, wake_rx) = UnixStream::pair().map_err(io_error)?;
        wake_tx.set_nonblocking(true).map_err(io_error)?;
        wake_rx.set_nonblocking(true).map_err(io_error)?;
        let wake = Arc::new(Wake { tx: wake_tx, armed: AtomicBool::new(false) });
        let window = Arc::new(Semaphore::new(PENDING));
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let timeout = options.timeout;
        let engine = Engine {
            conn: None,
            options,
            rx,
            rx_open: true,
            wake: wake.clone(),
            wake_rx,
            window: window.clone(),
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            inflight_weight: 0,
            late_reply: Vec::new(),
            hooks,
            stats: stats.clone(),
        };
        std::thread::Builder::new()
            .name("corowire-tokio".into())
            .spawn(move || engine.run(ready_tx))
            .map_err(io_error)?;
        ready_rx.await.map_err(|_| Error::Disconnected)??;
        Ok(Self { tx, wake, window, timeout, stats })
    }

    /// Sends `call` and waits for its answer, within the connection's timeout. Waits for a
    /// place in the window first (back-pressure); a dropped future leaves the connection in
    /// step (an unsent call is skipped, a sent one's reply discarded).
    pub(crate) async fn request<R>(
        &self,
        make: impl FnOnce() -> (Call<S, H>, oneshot::Receiver<Result<R, Error>>),
    ) -> Result<R, Error> {
        self.within(async { answer(self.enqueue(make).await?).await }).await
    }

    /// Waits for a place in the window, then sends the call `make` builds; its answer comes
    /// on the receiver ([`answer`]).
    pub(crate) async fn enqueue<R>(
        &self,
        make: impl FnOnce() -> (Call<S, H>, oneshot::Receiver<Result<R, Error>>),
    ) -> Result<oneshot::Receiver<Result<R, Error>>, Error> {
        let permit = self.window.clone().acquire_owned().await.map_err(|_| Error::Disconnected)?;
        let (mut call, rx) = make();
        call.permit = Some(permit);
        self.send(call);
        Ok(rx)
    }

    /// `step` within the connection's timeout (`Error::Timeout` after it).
    pub(crate) async fn within<R>(&self, step: impl Future<Output = Result<R, Error>>) -> Result<R, Error> {
        match self.timeout {
            Some(t) => tokio::time::timeout(t, step).await.map_err(|_| Error::Timeout)?,
            None => step.await,
        }
    }

    /// Queues `call` without waiting for a place in the window.
    pub(crate) fn send(&self, call: Call<S, H>) {
        // A closed channel drops the call, and its oneshot with it: the caller sees
        // `Disconnected`.
        let _ = self.tx.send(Msg::Call(call));
        self.wake.wake();
    }

    /// What a stream calls when it is dropped.
    pub(crate) fn closer(&self) -> Closer
    where
        S: 'static,
        H: 'static,
    {
        let (tx, wake) = (self.tx.clone(), self.wake.clone());
        Arc::new(move || {
            let _ = tx.send(Msg::Sweep);
            wake.wake();
        })
    }
}

/// The answer of a call sent with [`Handle::enqueue`].
pub(crate) async fn answer<R>(rx: oneshot::Receiver<Result<R, Error>>) -> Result<R, Error> {
    rx.await.map_err(|_| Error::Disconnected)?
}

/// A request sent whose slot in the core's pending table is still held: until its reply is
/// read, also after it failed with `Timeout` (libqb replies carry no sequence number: the late
/// reply must be read and discarded before the next one is the next request's).
struct InFlight<S: Service, H> {
    token: Token,
    /// `None` once the caller has its answer (a timed-out request waiting for its late reply).
    complete: Option<Complete<S, H>>,
    weight: usize,
    barrier: bool,
    _permit: Option<OwnedSemaphorePermit>,
}

struct Engine<S: Service, H> {
    conn: Option<Conn<S>>,
    options: Options,
    rx: mpsc::Receiver<Msg<S, H>>,
    /// Whether a handle may still send.
    rx_open: bool,
    wake: Arc<Wake>,
    wake_rx: UnixStream,
    window: Arc<Semaphore>,
    /// Calls received and not yet sent.
    queue: VecDeque<Call<S, H>>,
    /// In the order of the core's pending table, which it mirrors entry for entry.
    inflight: VecDeque<InFlight<S, H>>,
    inflight_weight: usize,
    /// Where a late reply is read when no request waits for one ([`Engine::await_late`]);
    /// allocated at the first use.
    late_reply: Vec<u8>,
    hooks: H,
    stats: Arc<Stats>,
}

impl<S: Service, H: Hooks<S>> Engine<S, H> {
    fn run(mut self, mut ready: oneshot::Sender<Result<(), Error>>) {
        match self.connect_first(&mut ready) {
            Ok(conn) => self.conn = Some(conn),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
        if ready.send(Ok(())).is_err() {
            return;
        }
        loop {
            self.stats.rounds.fetch_add(1, Ordering::Relaxed);
            // Drain, then re-arm, then look for calls: a wake-up after the re-arm leaves its
            // byte for the next sleep, and the calls sent before one that found the flag still
            // armed are seen (the swap acquires its release). Re-arming before the drain lost
            // wake-ups: the drain ate the byte of a wake-up that had armed the flag again, the
            // next one wrote none, and the thread slept with calls (and all the window's
            // permits) in the channel.
            self.drain_wake();
            self.wake.armed.swap(false, Ordering::AcqRel);
            self.take_calls();
            self.sweep();
            if self.conn.is_none() && !self.reconnect() {
                self.shut_down();
                return;
            }
            self.submit_ready();
            // Wait for the whole batch in flight: each reply completes its task at once, and
            // what the tasks send meanwhile goes out as the next batch, with one doorbell.
            // Late replies of timed-out requests before it are read and discarded on the way.
            if let Some(newest) = self.inflight.iter().rev().find(|f| f.complete.is_some()).map(|f| f.token) {
                self.collect(newest);
                self.dispatch();
                continue;
            }
            if !self.rx_open && self.queue.is_empty() && self.hooks.is_idle() {
                return;
            }
            self.dispatch();
            if self.conn.is_none() {
                continue;
            }
            if !self.inflight.is_empty() && (!self.queue.is_empty() || self.inflight.len() >= PENDING) {
                // Only timed-out requests are in flight, and calls wait for their places (in
                // the queue, or for the window, which they fill): their late replies free them.
                self.await_late();
                continue;
            }
            if !self.queue.is_empty() {
                // Nothing in flight, yet the next request was not sent: flow control refused
                // it. Try again shortly.
                std::thread::sleep(FLOW_CONTROL_PAUSE);
                continue;
            }
            self.sleep();
        }
    }

    /// The first connection: at once, or with `options.reconnect` for up to its
    /// `start_wait` in all (handshakes included), retrying with backoff; gives up early when
    /// the connecting future is dropped.
    fn connect_first(&mut self, ready: &mut oneshot::Sender<Result<(), Error>>) -> Result<Conn<S>, Error> {
        let Some(policy) = self.options.reconnect.clone() else { return self.open(None) };
        let give_up = Instant::now() + policy.start_wait;
        let mut backoff = policy.backoff_min;
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            match self.open(Some(left)) {
                Ok(conn) => return Ok(conn),
                Err(e) if Instant::now() + backoff >= give_up || ready.is_closed() => return Err(e),
                Err(_) => {}
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(policy.backoff_max);
        }
    }

    /// One connection attempt, its handshake bounded by `bound` as well as by the call
    /// timeout (which the connection's calls keep).
    fn open(&self, bound: Option<Duration>) -> Result<Conn<S>, Error> {
        let handshake = match (self.options.timeout, bound) {
            (Some(t), Some(b)) => Some(t.min(b)),
            (t, b) => t.or(b),
        };
        let options = Options { timeout: handshake, ..self.options.clone() };
        let (mut conn, _name) = corowire_unix::connect_driver(&options)?;
        conn.set_timeout(self.options.timeout);
        Ok(conn)
    }

    /// After a loss: reconnects with backoff (if `options.reconnect`) until it succeeds or
    /// nobody is left to use the connection; `false` if it gave up.
    fn reconnect(&mut self) -> bool {
        let Some(policy) = self.options.reconnect.clone() else { return false };
        let mut backoff = policy.backoff_min;
        loop {
            // A daemon that accepts and does not answer (stopped) holds an attempt up to
            // `start_wait`, not for ever.
            if let Ok(mut conn) = self.open(Some(policy.start_wait)) {
                if self.hooks.restore(&mut conn).is_ok() {
                    self.conn = Some(conn);
                    return true;
                }
            }
            self.take_calls();
            if !self.rx_open && self.hooks.is_idle() {
                return false;
            }
            // The whole pause, whatever the tasks send meanwhile: no connect storm.
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(policy.backoff_max);
        }
    }

    /// The connection is gone for good: every queued and later call fails with
    /// `Disconnected`, every stream ends.
    fn shut_down(&mut self) {
        self.window.close();
        self.hooks.close();
        for call in self.queue.drain(..) {
            (call.complete)(&mut self.hooks, Err(Error::Disconnected));
        }
    }

    /// Ends the subscriptions whose stream was dropped: on the daemon if connected (with no
    /// connection, the next one is made without them).
    fn sweep(&mut self) {
        let mut swept = Vec::new();
        self.hooks.sweep(&mut swept);
        if self.conn.is_some() {
            self.queue.extend(swept);
        }
    }

    fn drain_wake(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.wake_rx.read(&mut buf), Ok(n) if n > 0) {}
    }

    fn take_calls(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Call(call)) => self.queue.push_back(call),
                Ok(Msg::Sweep) => self.sweep(),
                Err(mpsc::TryRecvError::Empty) => return,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.rx_open = false;
                    return;
                }
            }
        }
    }

    /// Sends queued calls while the window and the rings have room.
    fn submit_ready(&mut self) {
        let Some(conn) = self.conn.as_mut() else { return };
        let budget = conn.transport().reply_budget().saturating_sub(RING_MARGIN);
        while let Some(call) = self.queue.front() {
            if call.cancelled.as_ref().is_some_and(|c| c()) {
                self.queue.pop_front();
                continue;
            }
            // The core's table holds the timed-out requests too, until their late replies.
            let fits = conn.connection().outstanding() < PENDING
                && !self.inflight.iter().any(|f| f.barrier)
                && (self.inflight.is_empty() || self.inflight_weight + call.weight <= budget);
            // A full window, a barrier, flow control or a full request ring: wait (for the
            // replies in flight, or a moment), never fail the call.
            if !fits || !conn.can_send(call.weight.min(conn.transport().max_request_len())) {
                break;
            }
            let Some(call) = self.queue.pop_front() else { break };
            match (call.submit)(conn) {
                Ok(token) => {
                    self.inflight_weight += call.weight;
                    self.inflight.push_back(InFlight {
                        token,
                        complete: Some(call.complete),
                        weight: call.weight,
                        barrier: call.barrier,
                        _permit: call.permit,
                    });
                }
                Err(e) => {
                    let broken = matches!(e, Error::Disconnected | Error::Io(_) | Error::Ring(_));
                    (call.complete)(&mut self.hooks, Err(e));
                    if broken {
                        self.lost();
                        return;
                    }
                }
            }
        }
        self.stats.peak_in_flight.fetch_max(self.inflight.len() as u64, Ordering::Relaxed);
        if conn.flush().is_err() {
            self.lost();
        }
    }

    /// Reads replies until `until` (the newest request in flight still awaited) is answered
    /// or fails. A request that times out keeps its place until its late reply is read.
    fn collect(&mut self, until: Token) {
        let Some(conn) = self.conn.as_mut() else { return };
        let (inflight, hooks) = (&mut self.inflight, &mut self.hooks);
        let r = conn.collect(until, |token, result| {
            if let Some(complete) =
                inflight.iter_mut().find(|f| f.token == token).and_then(|f| f.complete.take())
            {
                complete(hooks, result.map_err(Error::from));
            }
        });
        self.release_answered();
        if r.is_err() {
            self.lost();
        }
    }

    /// Waits a moment for a late reply of a timed-out request (none of the requests in flight
    /// is awaited, and they hold the window): reads it and lets the core discard it. On a
    /// daemon that is stopped (SIGSTOP) this waits in slices until it answers again, or its
    /// hang-up shows.
    fn await_late(&mut self) {
        let Some(conn) = self.conn.as_mut() else { return };
        if self.late_reply.is_empty() {
            self.late_reply = vec![0; conn.transport().max_response_len().min(REPLY_MAX)];
        }
        let deadline = conn.transport().now().saturating_add(LATE_REPLY_WAIT);
        let broken = match conn.transport_mut().recv_response(Some(deadline), &mut self.late_reply) {
            Ok(n) => conn.connection_mut().handle_response(&self.late_reply[..n]).is_err(),
            Err(e) => e.kind() != ErrorKind::Timeout,
        };
        self.release_answered();
        if broken {
            self.lost();
        }
    }

    /// Frees the places of the requests the core no longer holds: the oldest ones, as replies
    /// come in order (a late reply the core discarded is answered without a completion).
    fn release_answered(&mut self) {
        let held = self.conn.as_ref().map_or(0, |c| c.connection().outstanding());
        while self.inflight.len() > held {
            let Some(f) = self.inflight.pop_front() else { break };
            self.inflight_weight -= f.weight;
            if let Some(complete) = f.complete {
                complete(&mut self.hooks, Err(Error::Disconnected));
            }
        }
    }

    /// Delivers the pending events, without waiting.
    fn dispatch(&mut self) {
        let Some(conn) = self.conn.as_mut() else { return };
        let hooks = &mut self.hooks;
        let r = conn.dispatch(DispatchMode::All, None, |e| {
            hooks.deliver(e);
            Flow::Continue
        });
        match r {
            // A malformed or unknown event ends the dispatch, not the connection.
            Ok(()) | Err(DriverError::Cs(_)) => {}
            Err(_) => self.lost(),
        }
    }

    /// The connection broke: its requests in flight fail with `Disconnected`.
    fn lost(&mut self) {
        self.conn = None;
        self.hooks.disconnected();
        // Requests nobody waits for (a dropped stream's TRACK_DELETE or TRACK_STOP) name the
        // lost connection's tracks: the next connection never has them.
        self.queue.retain(|c| c.cancelled.is_some());
        self.release_answered();
    }

    /// Sleeps until an event, a hang-up or a wake-up: no timer, no CPU.
    fn sleep(&mut self) {
        if let Some(conn) = self.conn.as_ref() {
            let wake = PollFd::new(self.wake_rx.as_fd(), PollFlags::POLLIN);
            let events = PollFd::new(conn.transport().as_fd(), PollFlags::POLLIN);
            // EINTR and the like: the loop looks again.
            let _ = poll(&mut [wake, events], PollTimeout::NONE);
        }
    }
}

fn io_error(e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(n) => Error::Io(nix::errno::Errno::from_raw(n)),
        None if e.kind() == IoErrorKind::WouldBlock => Error::Io(nix::errno::Errno::EAGAIN),
        None => Error::Io(nix::errno::Errno::EIO),
    }
}
