//! Scrapes bounded in time, over connections that outlive them.
//!
//! A worker thread owns the [`Corosync`] connections. [`Scraper::scrape`] hands it a request
//! and waits at most the bound for the answer; past the bound it reports
//! [`Outcome::TimedOut`] and the scrape answers `corosync_up 0`. The worker's own calls wait
//! at most the bound each, so a stopped daemon (SIGSTOP) holds it for a while, never forever.
//! After any error the worker drops the connections; the next scrape connects anew, which is
//! how a restarted corosync is picked up. A scrape whose reused connections fail tries once
//! more over fresh ones, so the first scrape after a restart already sees the new daemon.

use core::time::Duration;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::thread;

use corowire_unix::Error;

use crate::snapshot::{Corosync, Snapshot};

/// How a scrape ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Corosync answered.
    Ok(Snapshot),
    /// Corosync did not answer: the error (not running, refused, connection lost).
    Failed(String),
    /// No answer within the bound (corosync stopped or overloaded, or the worker was still
    /// busy with an earlier scrape that timed out).
    TimedOut,
}

/// A finished scrape: its outcome and the worker's connect count so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// What the scrape read.
    pub outcome: Outcome,
    /// Successful connects (CMAP and votequorum together count as one) since the exporter
    /// started, as of this scrape; `None` when the worker did not answer in time.
    pub connects: Option<u64>,
}

type Reply = (Result<Snapshot, Error>, u64);

/// The handle scrapes go through; the worker thread ends when it is dropped.
#[derive(Debug)]
pub struct Scraper {
    requests: SyncSender<Sender<Reply>>,
    bound: Duration,
}

impl Scraper {
    /// Starts the worker. It connects at the first scrape; every call to corosync (and the
    /// connect) waits at most `bound`, and so does [`Scraper::scrape`].
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start(bound: Duration) -> std::io::Result<Self> {
        // One queued request at most: a scrape that finds the queue full while the worker is
        // stuck answers at once.
        let (requests, inbox) = mpsc::sync_channel(1);
        thread::Builder::new().name("corosync-scraper".into()).spawn(move || worker(&inbox, bound))?;
        Ok(Self { requests, bound })
    }

    /// Reads a snapshot, waiting at most the bound.
    pub fn scrape(&self) -> Scrape {
        let (reply_to, reply) = mpsc::channel();
        match self.requests.try_send(reply_to) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Scrape { outcome: Outcome::TimedOut, connects: None },
            Err(TrySendError::Disconnected(_)) => {
                return Scrape { outcome: Outcome::Failed("the scraper thread ended".into()), connects: None }
            }
        }
        match reply.recv_timeout(self.bound) {
            Ok((Ok(snapshot), connects)) => {
                Scrape { outcome: Outcome::Ok(snapshot), connects: Some(connects) }
            }
            Ok((Err(e), connects)) => {
                Scrape { outcome: Outcome::Failed(e.report().to_string()), connects: Some(connects) }
            }
            Err(RecvTimeoutError::Timeout) => Scrape { outcome: Outcome::TimedOut, connects: None },
            Err(RecvTimeoutError::Disconnected) => {
                Scrape { outcome: Outcome::Failed("the scraper thread ended".into()), connects: None }
            }
        }
    }
}

fn worker(inbox: &Receiver<Sender<Reply>>, bound: Duration) {
    let mut conn: Option<Corosync> = None;
    let mut connects = 0u64;
    for reply_to in inbox {
        let reused = conn.is_some();
        let mut result = read(&mut conn, &mut connects, bound);
        if result.is_err() && reused {
            result = read(&mut conn, &mut connects, bound);
        }
        // The requester may have given up (timed out); nothing to do then.
        let _ = reply_to.send((result, connects));
    }
}

/// One snapshot over `conn`, connecting first if needed; drops the connections on error.
fn read(conn: &mut Option<Corosync>, connects: &mut u64, bound: Duration) -> Result<Snapshot, Error> {
    let c = match conn {
        Some(c) => c,
        None => {
            let c = Corosync::connect(bound)?;
            *connects += 1;
            conn.insert(c)
        }
    };
    let result = c.snapshot();
    if result.is_err() {
        *conn = None;
    }
    result
}
