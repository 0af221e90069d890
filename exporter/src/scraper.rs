//! Scrapes bounded in time, over connections that outlive them.
//!
//! A worker thread owns the [`Corosync`] connections and runs one collection at a time.
//! [`Scraper::scrape`] asks it for one and waits at most a bound for the answer; past the
//! bound it reports [`Outcome::TimedOut`] and the scrape answers `corosync_up 0`. Scrapes
//! that arrive while a collection is in progress share it instead of queueing behind it,
//! so a stalled corosync costs every concurrent scraper at most its own bound, once.
//! The worker's own calls wait at most the exporter's bound each, so a stopped daemon
//! (SIGSTOP) holds it for a while, never forever. After any error the worker drops the
//! connections; the next collection connects anew, which is how a restarted corosync is
//! picked up. A collection whose reused connections fail tries once more over fresh ones,
//! so the first scrape after a restart already sees the new daemon.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use crate::snapshot::{Corosync, Snapshot};

/// How a scrape ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// Corosync answered.
    Ok(Snapshot),
    /// Corosync did not answer: the error (not running, refused, connection lost).
    Failed(String),
    /// No answer within the bound (corosync stopped or overloaded).
    TimedOut,
}

/// A finished scrape: its outcome and the worker's connect count so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// What the scrape read.
    pub outcome: Outcome,
    /// Successful connects (CMAP and votequorum together count as one) since the exporter
    /// started, as of the last collection that finished.
    pub connects: u64,
}

/// One collection: what a source returns (a snapshot, or why there is none).
pub type Collected = Result<Snapshot, String>;

/// One collection in progress; every scrape that joined it waits on it.
#[derive(Default)]
struct Pending {
    result: Mutex<Option<Collected>>,
    done: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pending {
    fn finished(&self) -> bool {
        lock(&self.result).is_some()
    }

    fn finish(&self, result: Collected) {
        *lock(&self.result) = Some(result);
        self.done.notify_all();
    }

    /// The result, if it comes within `bound`.
    fn wait(&self, bound: Duration) -> Option<Collected> {
        let guard = lock(&self.result);
        let (guard, _) = self
            .done
            .wait_timeout_while(guard, bound, |r| r.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        guard.clone()
    }
}

/// The handle scrapes go through; the worker thread ends when it is dropped.
pub struct Scraper {
    requests: SyncSender<Arc<Pending>>,
    current: Mutex<Option<Arc<Pending>>>,
    connects: Arc<AtomicU64>,
    bound: Duration,
}

impl core::fmt::Debug for Scraper {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Scraper").field("bound", &self.bound).finish_non_exhaustive()
    }
}

impl Scraper {
    /// Starts the worker over corosync. It connects at the first scrape; every call to
    /// corosync (and the connect) waits at most `bound`, and so does [`Scraper::scrape`].
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start(bound: Duration) -> std::io::Result<Self> {
        let mut conn: Option<Corosync> = None;
        Self::with_source(bound, move |connects| {
            let reused = conn.is_some();
            let mut result = read(&mut conn, connects, bound);
            if result.is_err() && reused {
                result = read(&mut conn, connects, bound);
            }
            result.map_err(|e| e.report().to_string())
        })
    }

    /// Starts the worker over `source`, which runs one collection per call and counts its
    /// successful connects in its argument (what [`Scrape::connects`] reports). Scrapes wait
    /// at most `bound` unless [`Scraper::scrape_within`] says otherwise.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn with_source(
        bound: Duration,
        source: impl FnMut(&AtomicU64) -> Collected + Send + 'static,
    ) -> std::io::Result<Self> {
        // A request is only sent when none is in progress, so one slot is enough.
        let (requests, inbox) = mpsc::sync_channel(1);
        let connects = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connects);
        thread::Builder::new()
            .name("corosync-scraper".into())
            .spawn(move || worker(&inbox, &counter, source))?;
        Ok(Self { requests, current: Mutex::new(None), connects, bound })
    }

    /// The bound [`Scraper::scrape`] waits at most.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// Reads a snapshot, waiting at most the bound.
    pub fn scrape(&self) -> Scrape {
        self.scrape_within(self.bound)
    }

    /// Reads a snapshot, waiting at most `bound`: joins the collection in progress if there
    /// is one, else starts one.
    pub fn scrape_within(&self, bound: Duration) -> Scrape {
        let outcome = match self.join().wait(bound) {
            Some(Ok(snapshot)) => Outcome::Ok(snapshot),
            Some(Err(e)) => Outcome::Failed(e),
            None => Outcome::TimedOut,
        };
        Scrape { outcome, connects: self.connects.load(Ordering::Relaxed) }
    }

    /// The collection in progress, or a new one handed to the worker (one that never
    /// finishes if the worker cannot take it, already failed if the worker is gone).
    fn join(&self) -> Arc<Pending> {
        let mut current = lock(&self.current);
        if let Some(pending) = current.as_ref().filter(|p| !p.finished()) {
            return Arc::clone(pending);
        }
        let pending = Arc::new(Pending::default());
        match self.requests.try_send(Arc::clone(&pending)) {
            Ok(()) => *current = Some(Arc::clone(&pending)),
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => pending.finish(Err("the scraper thread ended".into())),
        }
        pending
    }
}

fn worker(
    inbox: &Receiver<Arc<Pending>>,
    connects: &AtomicU64,
    mut source: impl FnMut(&AtomicU64) -> Collected,
) {
    for pending in inbox {
        pending.finish(source(connects));
    }
}

/// One snapshot over `conn`, connecting first if needed; drops the connections on error.
fn read(
    conn: &mut Option<Corosync>,
    connects: &AtomicU64,
    bound: Duration,
) -> Result<Snapshot, corowire_unix::Error> {
    let c = match conn {
        Some(c) => c,
        None => {
            let c = Corosync::connect(bound)?;
            connects.fetch_add(1, Ordering::Relaxed);
            conn.insert(c)
        }
    };
    let result = c.snapshot();
    if result.is_err() {
        *conn = None;
    }
    result
}
