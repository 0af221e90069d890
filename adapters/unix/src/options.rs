//! Connection options shared by the CMAP and votequorum clients.

use core::time::Duration;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The maximum message size to ask for; it sizes the shared-memory rings. libcmap asks
    /// for 1 MiB; 64 KiB (the default) holds every CMAP message and sets up faster.
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
    /// The libqb socket name to connect to instead of the service's standard one (`None`, the
    /// default), e.g. a test server's private name.
    pub service_name: Option<String>,
    /// How long a call spins on the reply semaphore before it sleeps in the kernel. `None`
    /// (the default) adapts: about twice the recent reply latency, at most 30 µs, yielding
    /// the CPU after the first few µs, and no spinning after repeated misses until replies
    /// come fast again. `Some(Duration::ZERO)` never spins (as libcmap).
    pub spin: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_msg_size: 65536,
            timeout: None,
            map: Map::Default,
            retry_try_again: None,
            service_name: None,
            spin: None,
        }
    }
}

impl Options {
    /// Options for a connection that tracks keys: 1 MiB rings (as libcmap), so that a burst
    /// of notifications fits the event ring instead of backing up in corosync (with 64 KiB
    /// rings about 200 `u32` notifications fit). Connecting costs about as much as
    /// libcmap's.
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
