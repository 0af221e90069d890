//! Connection options shared by the CMAP and votequorum clients.

use core::time::Duration;
use std::borrow::Cow;

use corowire::cmap::Map;

use corowire::transport::Retry;

/// Connection options for [`Cmap::connect_with`](crate::cmap::Cmap::connect_with) and
/// [`Votequorum::connect_with`](crate::votequorum::Votequorum::connect_with).
///
/// `max_msg_size` sizes all three shared-memory rings, and ring size is the whole connect
/// trade-off: the default 64 KiB sets up about 5× faster than libcmap's 1 MiB and suits
/// short-lived calls, but its event ring holds only about 200 notifications; past that
/// corosync queues them in its own outq and delivers them slowly. Connections that track
/// keys should use [`Options::for_tracking`] (1 MiB).
///
/// A `max_msg_size` below [`NOTIFICATION_MAX_LEN`](corowire::cmap::NOTIFICATION_MAX_LEN) (33106 bytes: a notification of a
/// 16384-character string replaced by another) cannot receive every CMAP notification; see
/// [`Options::max_msg_size`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The maximum message size to ask for; it sizes the shared-memory rings. libcmap asks
    /// for 1 MiB; 64 KiB (the default) holds every CMAP message and sets up faster.
    ///
    /// The smallest size that holds every CMAP notification is [`NOTIFICATION_MAX_LEN`](corowire::cmap::NOTIFICATION_MAX_LEN)
    /// (33106 bytes = 336 + 2 × 16385: a 16384-character string replaced by another). Below
    /// it, a larger notification is never received: on shared memory corosync cannot put it
    /// into the event ring and keeps it (and every later event of the connection) queued,
    /// so events stop silently while calls still work; on sockets the dispatch that meets
    /// it fails with [`Error::MessageTooLarge`](crate::Error::MessageTooLarge) and the
    /// handle is unusable. Connections that only make calls may go lower.
    pub max_msg_size: u32,
    /// How long each call (and the connect) waits for its reply; `None` (the default) waits
    /// as long as the daemon is alive, as libcmap does.
    pub timeout: Option<Duration>,
    /// The map a CMAP connection reads and writes (`cmap_initialize_map`); votequorum
    /// ignores it.
    pub map: Map,
    /// Retry `CS_ERR_TRY_AGAIN` from the transport (flow control, full ring, daemon not
    /// ready at connect): `(attempts, backoff)`. `None` (the default) reports it at once.
    pub retry_try_again: Option<(u32, Duration)>,
    /// The libqb socket name to connect to instead of the service's standard one, e.g. a test
    /// server's private name. `None` (the default): `cmap` or `votequorum`, or
    /// `PREFIX-cmap` / `PREFIX-votequorum` if [`NAME_PREFIX_ENV`] is set (see
    /// [`Options::default`]).
    pub service_name: Option<String>,
    /// How long a call spins on the reply semaphore before it sleeps in the kernel. `None`
    /// (the default) adapts: about twice the recent reply latency, at most 30 µs, yielding
    /// the CPU after the first few µs, and no spinning after repeated misses until replies
    /// come fast again. `Some(Duration::ZERO)` never spins (as libcmap).
    pub spin: Option<Duration>,
    /// Opt-in resilience: wait for the daemon at connect, and after losing it reconnect with
    /// backoff and re-create the connection's tracking. `None` (the default) fails at once
    /// and leaves the handle unusable after a loss, as libcmap and libvotequorum do.
    ///
    /// With it:
    /// - connecting retries (with the backoff) while no daemon listens, it refuses with
    ///   `CS_ERR_TRY_AGAIN` or `CS_ERR_LIBRARY`, or goes away during the attempt, for at most
    ///   `start_wait`; then it fails with the last attempt's error;
    /// - a loss (the daemon killed or restarted, a hang-up, end of file on a socket, a
    ///   protocol break) fails the call that was waiting with
    ///   [`Error::Disconnected`](crate::Error::Disconnected) (it may or may not have been
    ///   applied), never a hang; a call made once the loss is seen (also a hang-up seen before
    ///   sending) first reconnects, waiting at most its [`Options::timeout`] (without one,
    ///   `start_wait`), else fails with the connect error;
    /// - after reconnecting, the handle switches to the map it used, re-adds every CMAP track
    ///   (the application keeps its `TrackHandle`s and callbacks) and restarts votequorum
    ///   tracking with the same context and flags; the next `dispatch` or `next_event` then
    ///   reports [`Error::Resync`](crate::Error::Resync) once: notifications of the time in
    ///   between are lost, re-read what you track. A waiting dispatch
    ///   ([`DispatchMode::One`](crate::DispatchMode::One),
    ///   [`DispatchMode::Blocking`](crate::DispatchMode::Blocking)) or a `next_event` that
    ///   meets the loss waits for the daemon within its own time limit (without one, until
    ///   it is back); [`DispatchMode::All`](crate::DispatchMode::All) and
    ///   [`DispatchMode::OneNonBlocking`](crate::DispatchMode::OneNonBlocking) never wait:
    ///   they try to connect once (within the [`Options::timeout`] of a connect). If the
    ///   daemon is not back they fail with the connect error, and the next dispatch tries
    ///   again (an application polling the fd should then poll with a timeout: the fd of a
    ///   lost connection stays readable);
    /// - if re-creating the tracking fails after reconnecting (say a `CS_ERR_TRY_AGAIN` or a
    ///   timeout from the new daemon), that error is returned and the connection counts as
    ///   lost: the next call or dispatch connects and re-creates everything again;
    /// - a daemon stopped (`SIGSTOP`) longer than the call timeout is no loss: the call fails
    ///   with [`Error::Timeout`](crate::Error::Timeout) and later calls work once it runs.
    pub reconnect: Option<Reconnect>,
}

/// How a resilient connection waits for the daemon and comes back after losing it
/// (see [`Options::reconnect`]). Nothing in the C libraries mirrors it: every corosync
/// application (sbd, pacemaker, corosync-notifyd) writes this loop by hand.
///
/// Backoff between attempts starts at `backoff_min` and doubles up to `backoff_max`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconnect {
    /// How long the first connect waits for the daemon to come up before it fails.
    pub start_wait: Duration,
    /// The first pause between two connection attempts.
    pub backoff_min: Duration,
    /// The longest pause between two connection attempts.
    pub backoff_max: Duration,
}

impl Default for Reconnect {
    /// Wait up to 30 s at start; retry after 50 ms, doubling up to 2 s.
    fn default() -> Self {
        Self {
            start_wait: Duration::from_secs(30),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }
}

/// The environment variable that points clients at a server under other names:
/// `COROWIRE_NAME_PREFIX=P` makes a client whose [`Options::service_name`] is `None` connect
/// to `P-cmap` or `P-votequorum`, the names `corowire serve --name-prefix P` serves (it also
/// serves `P-quorum` and `P-cfg`). Unset or empty: corosync's standard names.
pub const NAME_PREFIX_ENV: &str = "COROWIRE_NAME_PREFIX";

/// The libqb name to connect to for `service` (`"cmap"`, `"votequorum"`): `explicit` if given,
/// else `$COROWIRE_NAME_PREFIX-service`, else `service`.
pub(crate) fn service_name<'a>(explicit: Option<&'a str>, service: &'a str) -> Cow<'a, str> {
    match (explicit, std::env::var(NAME_PREFIX_ENV)) {
        (Some(name), _) => Cow::Borrowed(name),
        (None, Ok(prefix)) if !prefix.is_empty() => Cow::Owned(format!("{prefix}-{service}")),
        (None, _) => Cow::Borrowed(service),
    }
}

impl Default for Options {
    /// 64 KiB rings, no timeout, the default map, no retries, adaptive spinning, no
    /// reconnecting, and
    /// `service_name: None`: the standard service name, or the one [`NAME_PREFIX_ENV`]
    /// (`COROWIRE_NAME_PREFIX`) gives when set, read at connect time.
    fn default() -> Self {
        Self {
            max_msg_size: 65536,
            timeout: None,
            map: Map::Default,
            retry_try_again: None,
            service_name: None,
            spin: None,
            reconnect: None,
        }
    }
}

impl Options {
    /// Options for a connection that tracks keys: 1 MiB rings (as libcmap), so that a burst
    /// of notifications fits the event ring instead of backing up in corosync (with 64 KiB
    /// rings about 200 `u32` notifications fit). Connecting costs about as much as
    /// libcmap's. Keep `max_msg_size` at least [`NOTIFICATION_MAX_LEN`](corowire::cmap::NOTIFICATION_MAX_LEN) if you change it,
    /// or the largest notifications are never received (see [`Options::max_msg_size`]).
    pub fn for_tracking() -> Self {
        Self { max_msg_size: 1 << 20, ..Self::default() }
    }
}

impl Options {
    /// The retry policy for `CS_ERR_TRY_AGAIN`, if any.
    pub(crate) fn retry(&self) -> Option<Retry> {
        self.retry_try_again.map(|(attempts, backoff)| Retry { attempts, backoff })
    }
}
