//! glibc's process-shared POSIX semaphore (`sem_t`), which libqb keeps in each ring header.
//!
//! The semaphore is part of the wire format (docs/protocol.md §2.5): the peer runs glibc's `sem_post` and
//! `sem_timedwait` on the same memory, so this module follows glibc's 64-bit algorithm exactly.
//! The 32-byte `sem_t` starts with a `u64` whose low 32 bits are the value and whose high 32
//! bits count the registered waiters; the futex word is the value half; the `u32` after it is
//! glibc's `private` field, 128 for a process-shared semaphore.

use core::fmt;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicU32, AtomicU64};
use core::time::Duration;

use nix::errno::Errno;

use corowire::wire::ring::{
    SEM_NWAITERS_SHIFT, SEM_PRIVATE_FIELD, SEM_PRIVATE_PSHARED, SEM_VALUE_FIELD, SEM_VALUE_MAX,
};

use crate::sys::futex::{futex_wait, futex_wake, WaitResult};
use crate::sys::shm::SharedMapping;
use crate::sys::Deadline;

/// Size of glibc's `sem_t` on 64-bit targets (the layout is in `corowire::wire::ring`).
pub use corowire::wire::ring::SEM_SIZE;

const VALUE_MASK: u64 = 0xffff_ffff;
const ONE_WAITER: u64 = 1 << SEM_NWAITERS_SHIFT;

/// Why a semaphore operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemError {
    /// [`GlibcSem::wait`] timed out (glibc: `ETIMEDOUT`).
    TimedOut,
    /// [`GlibcSem::post`] would raise the value above `i32::MAX` (glibc: `EOVERFLOW`).
    Overflow,
    /// The futex syscall failed.
    Futex(Errno),
}

impl fmt::Display for SemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => f.write_str("semaphore wait timed out"),
            Self::Overflow => f.write_str("semaphore value would overflow"),
            Self::Futex(_) => f.write_str("futex call failed"),
        }
    }
}

/// As [`crate::Error`]: [`SemError::Futex`] gives the errno as the `source()`.
impl core::error::Error for SemError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Futex(e) => Some(e),
            _ => None,
        }
    }
}

/// A glibc process-shared `sem_t` living in a [`SharedMapping`].
#[derive(Debug, Clone, Copy)]
pub struct GlibcSem<'a> {
    /// Value (low half) and number of waiters (high half).
    data: &'a AtomicU64,
    /// The value half, used only as the futex address (never loaded from Rust, so there are no
    /// mixed-size atomic accesses).
    futex: &'a AtomicU32,
    /// glibc's `private` field.
    private: &'a AtomicU32,
}

impl<'a> GlibcSem<'a> {
    /// The semaphore at `offset` in `map` (8208 in a libqb ring header). `None` if the 32-byte
    /// `sem_t` does not fit or `offset` is not 8-aligned.
    pub fn new(map: &'a SharedMapping, offset: usize) -> Option<Self> {
        if offset.checked_add(SEM_SIZE)? > map.len() {
            return None;
        }
        Some(Self {
            data: map.atomic_u64(offset)?,
            futex: map.atomic_u32(offset + SEM_VALUE_FIELD)?,
            private: map.atomic_u32(offset + SEM_PRIVATE_FIELD)?,
        })
    }

    /// Initialises the semaphore as `sem_init(sem, 1, 0)` does: value 0, no waiters,
    /// process-shared. Only the creator (the server) does this, before the peer maps the file.
    pub fn init(&self) {
        self.data.store(0, Relaxed);
        self.private.store(SEM_PRIVATE_PSHARED, Relaxed);
    }

    /// Current value (number of available tokens), like `sem_getvalue`.
    pub fn value(&self) -> u32 {
        (self.data.load(Relaxed) & VALUE_MASK) as u32
    }

    /// Number of registered waiters, which `post` must wake.
    pub fn waiters(&self) -> u32 {
        (self.data.load(Relaxed) >> SEM_NWAITERS_SHIFT) as u32
    }

    /// Adds one token (release ordering) and wakes one waiter if any is registered, like
    /// `sem_post`.
    ///
    /// # Errors
    /// [`SemError::Overflow`] if the value is already `i32::MAX` (nothing changes then);
    /// [`SemError::Futex`] if the wake-up fails (the token was added).
    pub fn post(&self) -> Result<(), SemError> {
        let mut d = self.data.load(Relaxed);
        loop {
            if d & VALUE_MASK >= u64::from(SEM_VALUE_MAX) {
                return Err(SemError::Overflow);
            }
            match self.data.compare_exchange_weak(d, d + 1, Release, Relaxed) {
                Ok(_) => break,
                Err(now) => d = now,
            }
        }
        if d >> SEM_NWAITERS_SHIFT != 0 {
            futex_wake(self.futex, 1).map_err(SemError::Futex)?;
        }
        Ok(())
    }

    /// Takes a token (acquire ordering) if one is available, like `sem_trywait`.
    pub fn try_wait(&self) -> bool {
        let mut d = self.data.load(Relaxed);
        while d & VALUE_MASK != 0 {
            match self.data.compare_exchange_weak(d, d - 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(now) => d = now,
            }
        }
        false
    }

    /// Takes a token, sleeping for at most `timeout` (`None`: forever) until one is posted,
    /// like `sem_timedwait`. While sleeping the caller is registered in the waiter count, so
    /// glibc's `sem_post` wakes it; it unregisters when it takes a token or gives up.
    ///
    /// # Errors
    /// [`SemError::TimedOut`] when the timeout elapses first; [`SemError::Futex`] if the
    /// futex syscall fails.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<(), SemError> {
        if self.try_wait() {
            return Ok(());
        }
        let deadline = Deadline::after(timeout);
        // Wrapping: the peer controls these bits, so never panic on them.
        let mut d = self.data.fetch_add(ONE_WAITER, Relaxed).wrapping_add(ONE_WAITER);
        loop {
            if d & VALUE_MASK == 0 {
                let error = match futex_wait(self.futex, 0, deadline.remaining()) {
                    Ok(WaitResult::Woken) => {
                        d = self.data.load(Relaxed);
                        continue;
                    }
                    Ok(WaitResult::TimedOut) => SemError::TimedOut,
                    Err(e) => SemError::Futex(e),
                };
                self.data.fetch_sub(ONE_WAITER, Relaxed);
                return Err(error);
            } else {
                let taken = d.wrapping_sub(1 + ONE_WAITER);
                match self.data.compare_exchange_weak(d, taken, Acquire, Relaxed) {
                    Ok(_) => return Ok(()),
                    Err(now) => d = now,
                }
            }
        }
    }
}
