//! Safe wrappers over the Linux calls the libqb IPC transport needs.
//!
//! `unsafe` code is allowed only in [`shm`] (mmap), [`futex`] (the futex syscall),
//! [`dns`] (`getnameinfo`) and [`sigbus`] (the `SIGBUS` handler).

#[allow(unsafe_code)]
pub mod dns;
#[allow(unsafe_code)]
pub mod futex;
#[allow(unsafe_code)]
pub mod shm;
#[allow(unsafe_code)]
pub mod sigbus;
pub mod sock;

use core::time::Duration;
use std::time::Instant;

/// The moment a wait gives up, measured on the monotonic clock; `None` never expires.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// A deadline `timeout` from now (`None`, or a timeout too large to represent, means never).
    pub(crate) fn after(timeout: Option<Duration>) -> Self {
        Self(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    /// Time left until the deadline (zero once it has passed); `None` means no limit.
    pub(crate) fn remaining(self) -> Option<Duration> {
        self.0.map(|at| at.saturating_duration_since(Instant::now()))
    }
}
