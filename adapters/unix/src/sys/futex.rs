//! Shared (inter-process) futex wait and wake on a 32-bit word.
//!
//! The futexes are *shared*: no `FUTEX_PRIVATE_FLAG`, so the kernel keys them by the backing
//! file page and a waiter in one process is woken by `FUTEX_WAKE` from another process (or
//! from glibc's `sem_post` on a process-shared semaphore), even at a different address.

use core::ptr;
use core::sync::atomic::AtomicU32;
use core::time::Duration;

use nix::errno::Errno;

/// How [`futex_wait`] returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken by `FUTEX_WAKE`, interrupted by a signal, or the word did not hold the expected
    /// value. Spurious wake-ups are possible too, so the caller must re-check the word.
    Woken,
    /// The timeout elapsed.
    TimedOut,
}

/// Sleeps while `word` holds `expected` (`FUTEX_WAIT`), for at most `timeout` (a relative time
/// on the monotonic clock; `None` waits forever).
///
/// # Errors
/// Any failure of the syscall other than `EAGAIN`, `EINTR` and `ETIMEDOUT`, which are
/// reported as [`WaitResult`]s.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Result<WaitResult, Errno> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos()),
    });
    let ts_ptr = ts.as_ref().map_or(ptr::null(), ptr::from_ref);
    // SAFETY: FUTEX_WAIT reads the 4-byte word at `word.as_ptr()`, which is valid and aligned
    // because it comes from a live `&AtomicU32`, and reads the timeout at `ts_ptr`, which is
    // null or points to `ts`, alive until the end of this function. It writes no memory.
    let rc = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, ts_ptr) };
    match Errno::result(rc) {
        Ok(_) | Err(Errno::EAGAIN | Errno::EINTR) => Ok(WaitResult::Woken),
        Err(Errno::ETIMEDOUT) => Ok(WaitResult::TimedOut),
        Err(e) => Err(e),
    }
}

/// Wakes at most `n` waiters sleeping on `word` (`FUTEX_WAKE`).
///
/// # Errors
/// Any failure of the syscall (only possible for an invalid address or operation).
pub fn futex_wake(word: &AtomicU32, n: i32) -> Result<(), Errno> {
    // SAFETY: FUTEX_WAKE uses the address only as the key of the wait queue and accesses no
    // memory; the address comes from a live `&AtomicU32`, so it is valid and aligned.
    let rc = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;
    use std::thread;

    #[test]
    fn mismatch_returns_at_once() {
        let word = AtomicU32::new(1);
        assert_eq!(futex_wait(&word, 0, None), Ok(WaitResult::Woken));
    }

    #[test]
    fn timeout_is_reported() {
        let word = AtomicU32::new(0);
        assert_eq!(futex_wait(&word, 0, Some(Duration::from_millis(1))), Ok(WaitResult::TimedOut));
    }

    #[test]
    fn wake_releases_a_waiter() {
        let word = AtomicU32::new(0);
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                while word.load(Ordering::Acquire) == 0 {
                    let outcome = futex_wait(&word, 0, Some(Duration::from_secs(60)));
                    assert_eq!(outcome, Ok(WaitResult::Woken));
                }
            });
            word.store(1, Ordering::Release);
            futex_wake(&word, 1).unwrap();
            waiter.join().unwrap();
        });
    }
}
