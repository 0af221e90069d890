//! Opt-in resilience ([`Options::reconnect`]): waiting for the daemon at connect, and after
//! losing it, reconnecting with backoff so that the handle can restore its tracking.
//!
//! A handle with a [`Resilience`] checks before each call and dispatch whether its
//! connection was lost ([`Resilience::revive`]); if so it connects again (with backoff, within
//! a bound), has the handle re-create its tracks, and flags a resync, which the next dispatch
//! or `next_event` reports as [`Error::Resync`].

use core::time::Duration;
use std::time::Instant;

use corowire::conn::{Service, State};
use corowire::{CsError, DispatchMode};

use crate::client::{connect, Client};
use crate::error::{Error, Result};
use crate::options::{Options, Reconnect};
use crate::transport::TransportError;

/// What a resilient handle keeps to come back after a loss.
#[derive(Debug)]
pub(crate) struct Resilience {
    /// The options the handle connected with.
    options: Options,
    /// The policy of `options.reconnect`.
    policy: Reconnect,
    /// A reconnect happened that the application has not been told about.
    resync: bool,
    /// The last reconnect could not restore the tracking: the connection is live but
    /// incomplete, and is replaced as if lost.
    broken: bool,
}

/// Connects with `options`; with [`Options::reconnect`] set, waits for the daemon up to its
/// `start_wait`. Also gives the handle's [`Resilience`] (`None` without the option).
pub(crate) fn connect_resilient<S: Service, const P: usize, const E: usize, const EB: usize>(
    options: &Options,
) -> Result<(Client<S, P, E, EB>, String, Option<Resilience>)> {
    let Some(policy) = options.reconnect.clone() else {
        let (client, service) = connect(options)?;
        return Ok((client, service, None));
    };
    let (client, service) = connect_until(options, &policy, Some(policy.start_wait))?;
    Ok((client, service, Some(Resilience { options: options.clone(), policy, resync: false, broken: false })))
}

/// Whether a connection attempt failed in a way worth retrying: no daemon (yet), a daemon
/// not ready (`CS_ERR_TRY_AGAIN`), or one that went away during the attempt
/// (`CS_ERR_LIBRARY`).
fn worth_retrying(e: &Error) -> bool {
    matches!(e.cs_error(), CsError::Library | CsError::TryAgain)
}

/// Connects, retrying with `policy`'s backoff for at most `wait` (`None`: until it works);
/// the last attempt's error once the wait is over.
fn connect_until<S: Service, const P: usize, const E: usize, const EB: usize>(
    options: &Options,
    policy: &Reconnect,
    wait: Option<Duration>,
) -> Result<(Client<S, P, E, EB>, String)> {
    let deadline = wait.map(|w| Instant::now() + w);
    let mut pause = policy.backoff_min;
    loop {
        match connect(options) {
            Ok(connected) => return Ok(connected),
            Err(e) if worth_retrying(&e) => {
                if deadline.is_some_and(|d| Instant::now() + pause > d) {
                    return Err(e);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(policy.backoff_max.max(policy.backoff_min));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether the daemon went away: the connection is closed (not finalized by the
/// application), or the transport's liveness check fails (a hang-up or end of file on the
/// setup socket, the shared-memory ring no longer referenced by the daemon), as when the
/// daemon died before a call noticed.
fn lost<S: Service, const P: usize, const E: usize, const EB: usize>(client: &Client<S, P, E, EB>) -> bool {
    client.connection().state() == State::Closed
        || matches!(client.transport().check_alive(), Err(TransportError::Disconnected))
}

impl Resilience {
    /// How long a call waits for a lost daemon to come back: its timeout
    /// ([`Options::timeout`]), or without one the policy's `start_wait`.
    pub(crate) fn call_wait(&self) -> Option<Duration> {
        Some(self.options.timeout.unwrap_or(self.policy.start_wait))
    }

    /// If `client`'s daemon went away, or the last restore failed: connects again, waiting
    /// at most `wait` (`None`: until the daemon is back), then runs `restore` on the new
    /// connection (re-creating the handle's tracking) and flags a resync. Nothing happens on
    /// a live, restored connection.
    ///
    /// # Errors
    /// The last connection attempt's error once `wait` is over; `restore`'s error (then the
    /// connection counts as lost: the next call or dispatch connects and restores again, so
    /// that no track is left on the old daemon's handles).
    pub(crate) fn revive<S: Service, const P: usize, const E: usize, const EB: usize>(
        &mut self,
        client: &mut Client<S, P, E, EB>,
        wait: Option<Duration>,
        restore: impl FnOnce(&mut Client<S, P, E, EB>) -> Result<()>,
    ) -> Result<()> {
        if !self.broken && !lost(client) {
            return Ok(());
        }
        // The old connection (its rings and sockets) is dropped once the new one is up; until
        // then it stays closed, so that the next call tries again.
        let (fresh, _) = connect_until(&self.options, &self.policy, wait)?;
        *client = fresh;
        self.broken = true;
        restore(client)?;
        self.broken = false;
        self.resync = true;
        Ok(())
    }

    /// [`Error::Resync`] once after each reconnect, for the next dispatch or `next_event`.
    pub(crate) fn take_resync(&mut self) -> Result<()> {
        if core::mem::take(&mut self.resync) {
            return Err(Error::Resync);
        }
        Ok(())
    }
}

/// How long a dispatch in `mode` with time limit `timeout` waits for a lost daemon to come
/// back: the modes that never wait for events ([`DispatchMode::All`],
/// [`DispatchMode::OneNonBlocking`]) try to connect once and fail at once if it is down (the
/// next dispatch tries again); the waiting ones wait within their time limit.
pub(crate) fn dispatch_wait(mode: DispatchMode, timeout: Option<Duration>) -> Option<Duration> {
    match mode {
        DispatchMode::One | DispatchMode::Blocking => timeout,
        DispatchMode::All | DispatchMode::OneNonBlocking => Some(Duration::ZERO),
    }
}

/// A handle that may carry a [`Resilience`]: the CMAP and votequorum clients.
pub(crate) trait Resilient {
    /// The handle's resilience, if it was connected with [`Options::reconnect`].
    fn resilience(&mut self) -> Option<&mut Resilience>;

    /// [`Resilience::revive`] with the handle's own restore; `Ok` without resilience.
    fn revive(&mut self, wait: Option<Duration>) -> Result<()>;

    /// Revives a lost connection within the call's bound ([`Resilience::call_wait`]), before
    /// a call.
    fn ready(&mut self) -> Result<()> {
        let wait = match self.resilience() {
            Some(r) => r.call_wait(),
            None => return Ok(()),
        };
        self.revive(wait)
    }

    /// Runs `run`, a dispatch or `next_event` that waits at most `wait`, on a live connection:
    /// a lost one is revived first, and one lost during `run` after it; a reconnect (before or
    /// after) is reported as [`Error::Resync`].
    fn watched<T>(&mut self, wait: Option<Duration>, run: impl FnOnce(&mut Self) -> Result<T>) -> Result<T>
    where
        Self: Sized,
    {
        self.revive(wait)?;
        self.take_resync()?;
        let r = run(self);
        if r.is_err() {
            self.revive(wait)?;
            self.take_resync()?;
        }
        r
    }

    /// [`Resilience::take_resync`]; `Ok` without resilience.
    fn take_resync(&mut self) -> Result<()> {
        self.resilience().map_or(Ok(()), Resilience::take_resync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicBool, Ordering};
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::thread::JoinHandle;

    use corowire::conn::Votequorum as Vq;

    use crate::server::{Server, ServerConfig};

    type Conn = Client<Vq, 8, 16, 65536>;

    /// The built-in server, serving votequorum as `NAME-vq` with its rings under `shm_dir`,
    /// on a thread until `stop`.
    fn serve(name: &str, shm_dir: &Path, stop: &Arc<AtomicBool>) -> JoinHandle<()> {
        let cfg = ServerConfig {
            cmap_name: format!("{name}-cmap"),
            votequorum_name: Some(format!("{name}-vq")),
            quorum_name: None,
            cfg_name: None,
            shm_dir: shm_dir.to_path_buf(),
            ..ServerConfig::default()
        };
        let mut server = Server::bind(cfg).unwrap();
        let flag = Arc::clone(stop);
        std::thread::spawn(move || server.run_until(&flag).unwrap())
    }

    #[test]
    fn a_failed_restore_counts_as_a_loss_and_is_tried_again() {
        let name = format!("corowire-unit-{}-restore", std::process::id());
        let shm_dir = PathBuf::from(format!("/dev/shm/{name}"));
        let _ = std::fs::remove_dir_all(&shm_dir);
        std::fs::create_dir(&shm_dir).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let first = serve(&name, &shm_dir, &stop);
        let wait = Some(Duration::from_secs(10));
        let options = Options {
            service_name: Some(format!("{name}-vq")),
            timeout: wait,
            reconnect: Some(Reconnect::default()),
            ..Options::default()
        };
        let (mut client, _, resilience) = connect_resilient::<Vq, 8, 16, 65536>(&options).unwrap();
        let mut r = resilience.expect("resilient");
        stop.store(true, Ordering::Relaxed);
        first.join().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let second = serve(&name, &shm_dir, &stop);

        let restores = &core::cell::Cell::new(0);
        let restore = |ok: bool| {
            move |_: &mut Conn| {
                restores.set(restores.get() + 1);
                if ok {
                    Ok(())
                } else {
                    Err(Error::Timeout)
                }
            }
        };
        assert_eq!(r.revive(&mut client, wait, restore(false)), Err(Error::Timeout));
        // No resync over a half-restored connection; the next revive connects and restores
        // again.
        assert_eq!(r.take_resync(), Ok(()));
        assert_eq!(r.revive(&mut client, wait, restore(true)), Ok(()));
        assert_eq!(r.take_resync(), Err(Error::Resync));
        // Restored: nothing more to do.
        assert_eq!(r.revive(&mut client, wait, restore(false)), Ok(()));
        assert_eq!(restores.get(), 2);

        drop(client);
        stop.store(true, Ordering::Relaxed);
        second.join().unwrap();
        let _ = std::fs::remove_dir_all(&shm_dir);
    }
}
