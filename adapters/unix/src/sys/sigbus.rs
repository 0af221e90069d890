//! Surviving a peer that shrinks a file this process has mapped shared (issue 13): touching
//! a page past the file's new end raises `SIGBUS`, which would kill the process. A mapping
//! registered here ([`Guard::register`]) is instead replaced, by the `SIGBUS` handler, with
//! anonymous zero pages at the same address (`MAP_FIXED`), the faulting access is repeated
//! on them, and the mapping is marked truncated ([`Guard::truncated`]) so that its owner
//! drops the peer. This is what Wayland compositors do for a client's shared-memory pool.
//! A `SIGBUS` at any other address gets the handler that was installed before (by default:
//! the process dies), as without this module.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Mappings that can be registered at once: more than the server's 4 services × 128
/// connections × 6 ring files.
const SLOTS: usize = 4096;

/// One registered mapping; `base == 0` means free.
struct Slot {
    base: AtomicUsize,
    len: AtomicUsize,
    truncated: AtomicBool,
}

static REGISTRY: [Slot; SLOTS] = [const {
    Slot { base: AtomicUsize::new(0), len: AtomicUsize::new(0), truncated: AtomicBool::new(false) }
}; SLOTS];

/// The `SIGBUS` action before ours, or why ours could not be installed.
static PREVIOUS: OnceLock<Result<SigAction, Errno>> = OnceLock::new();

/// A registered mapping; unregistered on drop (before the mapping is unmapped).
#[derive(Debug)]
pub struct Guard {
    slot: usize,
}

impl Guard {
    /// Registers the mapping `base..base + len` (installing the handler on first use).
    ///
    /// # Errors
    /// `ENOMEM` when all slots are taken; `sigaction` failures.
    pub fn register(base: usize, len: usize) -> Result<Self, Errno> {
        PREVIOUS.get_or_init(install).as_ref().map_err(|e| *e)?;
        for (slot, entry) in REGISTRY.iter().enumerate() {
            // Claim with a marker no mapping has, then publish the real range.
            if entry.base.compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                entry.truncated.store(false, Ordering::Relaxed);
                entry.len.store(len, Ordering::Relaxed);
                entry.base.store(base, Ordering::Release);
                return Ok(Self { slot });
            }
        }
        Err(Errno::ENOMEM)
    }

    /// Whether a `SIGBUS` in the mapping replaced it by zero pages: the file was truncated
    /// by someone else and what the mapping holds is no longer shared.
    pub fn truncated(&self) -> bool {
        REGISTRY[self.slot].truncated.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let entry = &REGISTRY[self.slot];
        entry.len.store(0, Ordering::Relaxed);
        entry.base.store(0, Ordering::Release);
    }
}

/// Installs [`on_sigbus`], returning the action it replaces.
fn install() -> Result<SigAction, Errno> {
    let action = SigAction::new(
        SigHandler::SigAction(on_sigbus),
        SaFlags::SA_SIGINFO | SaFlags::SA_ONSTACK,
        SigSet::empty(),
    );
    // SAFETY: `on_sigbus` only performs async-signal-safe operations: atomic loads and
    // stores on statics, `mmap` and `sigaction` system calls.
    unsafe { sigaction(Signal::SIGBUS, &action) }
}

/// The `SIGBUS` handler: see the [module documentation](self).
extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO` handler; for
    // `SIGBUS` its `si_addr` field is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    for entry in &REGISTRY {
        let base = entry.base.load(Ordering::Acquire);
        let len = entry.len.load(Ordering::Relaxed);
        if base == 0 || base == usize::MAX || addr < base || addr - base >= len {
            continue;
        }
        // SAFETY: `base..base + len` is a live mapping this process made and registered
        // (it is unregistered before it is unmapped), so replacing it affects no other
        // object; nothing holds a Rust reference into its bytes except atomics, for which
        // zero pages are valid values. MAP_FIXED replaces it atomically.
        let remapped = unsafe {
            libc::mmap(
                base as *mut c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if remapped != libc::MAP_FAILED {
            entry.truncated.store(true, Ordering::Release);
            return;
        }
    }
    // Not ours (or the remap failed): put the previous action back; the access faults again
    // and gets it.
    if let Some(Ok(previous)) = PREVIOUS.get() {
        // SAFETY: restoring an action that was installed before ours.
        let _ = unsafe { sigaction(Signal::SIGBUS, previous) };
    }
}
