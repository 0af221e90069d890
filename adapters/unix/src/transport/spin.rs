//! The adaptive reply-wait spin of the shared-memory transport: how long a call spins on the
//! response ring's semaphore before it sleeps in the kernel.

use core::time::Duration;
use std::time::Instant;

use crate::sem::GlibcSem;

/// The longest a reply wait spins on the semaphore before it sleeps in the kernel.
const SPIN_MAX: Duration = Duration::from_micros(30);
/// The shortest adaptive spin, so that a reply already on its way is still caught despite
/// jitter.
const SPIN_MIN: Duration = Duration::from_micros(10);
/// How long a spin runs before it also yields the CPU on every round (a daemon that shares
/// the CPU and is not real-time gets to run).
const SPIN_YIELD_AFTER: Duration = Duration::from_micros(1);
/// Consecutive spins that ran out before the adaptive spin stops spinning.
const SPIN_MISSES_OFF: u32 = 4;
/// Replies, while the adaptive spin is off, that came within the spin limit before it turns
/// back on.
const SPIN_HITS_ON: u32 = 2;
/// While the adaptive spin is off, every this many waits spin anyway (a probe): a reply caught
/// turns it back on. A sleeping wait's latency includes the client's own wake-up, which on
/// some machines alone exceeds [`SPIN_MAX`], so without probes the spin could stay off for
/// good even when the daemon answers within a few microseconds.
const SPIN_PROBE_EVERY: u32 = 16;

/// The reply-wait spin: fixed, or adaptive (the default).
///
/// Adaptive: the limit is about twice the moving average of recent reply latencies, between
/// [`SPIN_MIN`] and [`SPIN_MAX`]; after [`SPIN_MISSES_OFF`] consecutive spins that ran out it
/// stops spinning, and it turns back on after [`SPIN_HITS_ON`] replies that came within the
/// limit while it was off, or when one of the probes it makes every [`SPIN_PROBE_EVERY`] waits
/// while off catches the reply.
///
/// Plain counters, updated through `&mut self`: the transport that owns it is driven by one
/// owner at a time, so no update can be lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spin {
    /// A fixed limit (`Options::spin`); `None` is adaptive.
    fixed: Option<Duration>,
    /// Moving average of reply latencies, in ns.
    avg_ns: u64,
    /// Consecutive misses while on; at [`SPIN_MISSES_OFF`] the spin is off.
    misses: u32,
    /// Hits counted while off.
    hits: u32,
    /// Waits since the spin went off or since its last probe.
    since_probe: u32,
}

impl Spin {
    pub(crate) fn new(fixed: Option<Duration>) -> Self {
        Self { fixed, avg_ns: SPIN_MAX.as_nanos() as u64 / 2, misses: 0, hits: 0, since_probe: 0 }
    }

    /// The limit of the next spin; zero when off, except for a probe every
    /// [`SPIN_PROBE_EVERY`] waits.
    pub(crate) fn limit(&mut self) -> Duration {
        if let Some(d) = self.fixed {
            return d;
        }
        if self.misses >= SPIN_MISSES_OFF {
            self.since_probe += 1;
            if self.since_probe < SPIN_PROBE_EVERY {
                return Duration::ZERO;
            }
            self.since_probe = 0;
        }
        self.adaptive_limit()
    }

    fn adaptive_limit(&self) -> Duration {
        Duration::from_nanos(self.avg_ns.saturating_mul(2)).clamp(SPIN_MIN, SPIN_MAX)
    }

    /// Records a reply that took `latency`; `spun` says whether it came during a spin.
    pub(crate) fn record(&mut self, latency: Duration, spun: bool) {
        if self.fixed.is_some() {
            return;
        }
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).min(SPIN_MAX.as_nanos() as u64 * 4);
        self.avg_ns = self.avg_ns - self.avg_ns / 8 + ns / 8;
        let off = self.misses >= SPIN_MISSES_OFF;
        if spun {
            self.misses = 0;
        } else if off {
            // Would a spin have caught it?
            if latency <= self.adaptive_limit() {
                self.hits += 1;
                if self.hits >= SPIN_HITS_ON {
                    self.hits = 0;
                    self.misses = 0;
                }
            } else {
                self.hits = 0;
            }
        } else {
            self.misses += 1;
        }
    }
}

/// Takes a token by spinning from `start` for at most `limit`, yielding the CPU on every round
/// after [`SPIN_YIELD_AFTER`]; `false` if none came.
pub(crate) fn spin_take(sem: &GlibcSem<'_>, start: Instant, limit: Duration) -> bool {
    loop {
        for _ in 0..64 {
            if sem.try_wait() {
                return true;
            }
            core::hint::spin_loop();
        }
        let spent = start.elapsed();
        if spent >= limit {
            return false;
        }
        if spent >= SPIN_YIELD_AFTER {
            // `sched_yield()` on Linux.
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_turn_the_spin_off_and_fast_replies_turn_it_back_on() {
        let mut spin = Spin::new(None);
        assert!(!spin.limit().is_zero());
        for _ in 0..SPIN_MISSES_OFF {
            spin.record(Duration::from_millis(1), false);
        }
        assert_eq!(spin.limit(), Duration::ZERO);
        for _ in 0..SPIN_HITS_ON {
            spin.record(Duration::from_micros(1), false);
        }
        assert!(!spin.limit().is_zero());
    }

    #[test]
    fn while_off_a_probe_spins_and_a_caught_reply_turns_it_back_on() {
        let mut spin = Spin::new(None);
        for _ in 0..SPIN_MISSES_OFF {
            spin.record(Duration::from_millis(1), false);
        }
        // Sleeping waits whose latency is the client's own slow wake-up never turn it on ...
        let limits: Vec<Duration> = (0..SPIN_PROBE_EVERY)
            .map(|_| {
                let limit = spin.limit();
                spin.record(Duration::from_micros(90), false);
                limit
            })
            .collect();
        let probes = limits.iter().filter(|l| !l.is_zero()).count();
        assert_eq!(probes, 1, "one probe in {SPIN_PROBE_EVERY} waits: {limits:?}");
        // ... but a probe that catches the reply does.
        while spin.limit().is_zero() {
            spin.record(Duration::from_micros(90), false);
        }
        spin.record(Duration::from_micros(3), true);
        assert!(!spin.limit().is_zero());
    }

    #[test]
    fn a_fixed_spin_never_adapts() {
        let mut spin = Spin::new(Some(Duration::ZERO));
        spin.record(Duration::from_micros(1), true);
        assert_eq!(spin, Spin::new(Some(Duration::ZERO)));
    }
}
