//! A minimal, hand-declared binding of corosync's libcmap (`/usr/include/corosync/cmap.h`,
//! corosync 3.1.7), wrapped in a safe [`LibCmap`] handle.
//!
//! Only the calls the benchmark needs are declared. This module holds all of the crate's
//! `unsafe` code.

use core::ffi::{c_char, c_int, c_void, CStr};
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use std::os::fd::BorrowedFd;
use std::sync::Arc;

/// `cmap_handle_t`, `cmap_iter_handle_t`, `cmap_track_handle_t`.
type Handle = u64;
/// `cs_error_t` (a C enum: `int`).
type CsErrorT = c_int;

/// `CS_OK`.
const CS_OK: CsErrorT = 1;
/// `CS_ERR_NO_SECTIONS`: the end of an iteration.
const CS_ERR_NO_SECTIONS: CsErrorT = 27;
/// `CS_DISPATCH_ALL`.
const CS_DISPATCH_ALL: c_int = 2;
/// `CMAP_VALUETYPE_UINT32`.
const CMAP_VALUETYPE_UINT32: c_int = 6;
/// `CMAP_TRACK_ADD | CMAP_TRACK_DELETE | CMAP_TRACK_MODIFY | CMAP_TRACK_PREFIX`.
const CMAP_TRACK_ALL_PREFIX: i32 = 4 | 1 | 2 | 8;
/// `CMAP_KEYNAME_MAXLEN + 1`: the key buffer `cmap_iter_next` fills.
pub const KEY_BUFFER: usize = 256;

/// `struct cmap_notify_value`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct NotifyValue {
    value_type: c_int,
    len: usize,
    data: *const c_void,
}

/// `cmap_notify_fn_t`.
type NotifyFn = extern "C" fn(
    cmap_handle: Handle,
    track_handle: Handle,
    event: i32,
    key_name: *const c_char,
    new_value: NotifyValue,
    old_value: NotifyValue,
    user_data: *mut c_void,
);

// Linked by build.rs (`cargo:rustc-link-lib=cmap`).
unsafe extern "C" {
    fn cmap_initialize(handle: *mut Handle) -> CsErrorT;
    fn cmap_finalize(handle: Handle) -> CsErrorT;
    fn cmap_fd_get(handle: Handle, fd: *mut c_int) -> CsErrorT;
    fn cmap_dispatch(handle: Handle, dispatch_types: c_int) -> CsErrorT;
    fn cmap_get(
        handle: Handle,
        key_name: *const c_char,
        value: *mut c_void,
        value_len: *mut usize,
        value_type: *mut c_int,
    ) -> CsErrorT;
    fn cmap_set(
        handle: Handle,
        key_name: *const c_char,
        value: *const c_void,
        value_len: usize,
        value_type: c_int,
    ) -> CsErrorT;
    fn cmap_iter_init(handle: Handle, prefix: *const c_char, iter_handle: *mut Handle) -> CsErrorT;
    fn cmap_iter_next(
        handle: Handle,
        iter_handle: Handle,
        key_name: *mut c_char,
        value_len: *mut usize,
        value_type: *mut c_int,
    ) -> CsErrorT;
    fn cmap_iter_finalize(handle: Handle, iter_handle: Handle) -> CsErrorT;
    fn cmap_track_add(
        handle: Handle,
        key_name: *const c_char,
        track_type: i32,
        notify_fn: NotifyFn,
        user_data: *mut c_void,
        track_handle: *mut Handle,
    ) -> CsErrorT;
}

/// A `cs_error_t` other than `CS_OK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsErr(pub i32);

impl fmt::Display for CsErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "libcmap error cs_error_t {}", self.0)
    }
}

impl core::error::Error for CsErr {}

fn check(e: CsErrorT) -> Result<(), CsErr> {
    if e == CS_OK {
        Ok(())
    } else {
        Err(CsErr(e))
    }
}

/// An open iteration ([`LibCmap::iter_init`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IterHandle(Handle);

/// A libcmap connection (`cmap_initialize`), finalized on drop.
#[derive(Debug)]
pub struct LibCmap {
    handle: Handle,
    /// The counters the tracks' callbacks increment; they outlive the handle (dropped after
    /// `cmap_finalize` in [`Drop`]).
    counters: Vec<Arc<AtomicU64>>,
}

/// The callback of [`LibCmap::track_prefix_counter`]: counts the notification.
extern "C" fn count_notification(
    _cmap_handle: Handle,
    _track_handle: Handle,
    _event: i32,
    _key_name: *const c_char,
    _new_value: NotifyValue,
    _old_value: NotifyValue,
    user_data: *mut c_void,
) {
    // SAFETY: `user_data` is the `Arc::as_ptr` of a counter that `LibCmap::counters` keeps
    // alive until after `cmap_finalize`, and libcmap calls this only from `cmap_dispatch` on
    // that handle, so the pointer is valid and points to an `AtomicU64` (only shared access).
    let counter = unsafe { &*(user_data as *const AtomicU64) };
    counter.fetch_add(1, Ordering::Relaxed);
}

impl LibCmap {
    /// `cmap_initialize`: connects to the daemon (libcmap asks for 1 MiB rings).
    ///
    /// # Errors
    /// The `cs_error_t` (`CS_ERR_LIBRARY` when no daemon runs).
    pub fn initialize() -> Result<Self, CsErr> {
        let mut handle: Handle = 0;
        // SAFETY: `handle` is a valid out-pointer for the call's duration.
        check(unsafe { cmap_initialize(&mut handle) })?;
        Ok(Self { handle, counters: Vec::new() })
    }

    /// `cmap_get` of a `u32` value (what `cmap_get_uint32` does: a 4-byte buffer).
    ///
    /// # Errors
    /// The `cs_error_t`; `CS_ERR_INVALID_PARAM` (7) for a value of another type.
    pub fn get_u32(&mut self, key: &CStr) -> Result<u32, CsErr> {
        let mut value = 0u32;
        let mut len = size_of::<u32>();
        let mut value_type: c_int = 0;
        // SAFETY: `key` is NUL-terminated; `value` has room for `len` (4) bytes; `len` and
        // `value_type` are valid out-pointers for the call's duration.
        check(unsafe {
            cmap_get(self.handle, key.as_ptr(), (&raw mut value).cast(), &mut len, &mut value_type)
        })?;
        if value_type != CMAP_VALUETYPE_UINT32 || len != size_of::<u32>() {
            return Err(CsErr(7));
        }
        Ok(value)
    }

    /// `cmap_get` into `buf` (its length is the buffer size asked for): the value's length and
    /// type.
    ///
    /// # Errors
    /// The `cs_error_t`.
    pub fn get_into(&mut self, key: &CStr, buf: &mut [u8]) -> Result<(usize, i32), CsErr> {
        let mut len = buf.len();
        let mut value_type: c_int = 0;
        // SAFETY: `key` is NUL-terminated; `buf` has room for `len` bytes and libcmap writes
        // at most `len`; the out-pointers are valid for the call's duration.
        check(unsafe {
            cmap_get(self.handle, key.as_ptr(), buf.as_mut_ptr().cast(), &mut len, &mut value_type)
        })?;
        Ok((len, value_type))
    }

    /// `cmap_set` of a `u32` value.
    ///
    /// # Errors
    /// The `cs_error_t`.
    pub fn set_u32(&mut self, key: &CStr, value: u32) -> Result<(), CsErr> {
        // SAFETY: `key` is NUL-terminated; `value` is 4 readable bytes for the call's duration.
        check(unsafe {
            cmap_set(self.handle, key.as_ptr(), (&raw const value).cast(), 4, CMAP_VALUETYPE_UINT32)
        })
    }

    /// `cmap_iter_init` (`None`: every key).
    ///
    /// # Errors
    /// The `cs_error_t`.
    pub fn iter_init(&mut self, prefix: Option<&CStr>) -> Result<IterHandle, CsErr> {
        let mut iter: Handle = 0;
        let prefix = prefix.map_or(core::ptr::null(), CStr::as_ptr);
        // SAFETY: `prefix` is NULL or NUL-terminated; `iter` is a valid out-pointer.
        check(unsafe { cmap_iter_init(self.handle, prefix, &mut iter) })?;
        Ok(IterHandle(iter))
    }

    /// `cmap_iter_next`: fills `key` with the next NUL-terminated key name and returns its
    /// value's length and type, or `None` at the end (`CS_ERR_NO_SECTIONS`).
    ///
    /// # Errors
    /// The `cs_error_t`.
    pub fn iter_next(
        &mut self,
        iter: IterHandle,
        key: &mut [u8; KEY_BUFFER],
    ) -> Result<Option<(usize, i32)>, CsErr> {
        let mut len = 0usize;
        let mut value_type: c_int = 0;
        // SAFETY: `key` is a `char[CMAP_KEYNAME_MAXLEN + 1]`, the size libcmap writes (it
        // copies at most that many bytes, NUL included); the out-pointers are valid.
        let e = unsafe {
            cmap_iter_next(self.handle, iter.0, key.as_mut_ptr().cast(), &mut len, &mut value_type)
        };
        match e {
            CS_ERR_NO_SECTIONS => Ok(None),
            e => check(e).map(|()| Some((len, value_type))),
        }
    }

    /// `cmap_iter_finalize`.
    ///
    /// # Errors
    /// The `cs_error_t`.
    pub fn iter_finalize(&mut self, iter: IterHandle) -> Result<(), CsErr> {
        // SAFETY: plain values; libcmap validates both handles.
        check(unsafe { cmap_iter_finalize(self.handle, iter.0) })
    }

    /// `cmap_track_add` of every change under `prefix`, with a callback that increments the
    /// returned counter (from [`LibCmap::dispatch_all`]).
    ///
    /// # Errors
    /// The `cs_error_t`.
    pub fn track_prefix_counter(&mut self, prefix: &CStr) -> Result<Arc<AtomicU64>, CsErr> {
        let counter = Arc::new(AtomicU64::new(0));
        let mut track: Handle = 0;
        // SAFETY: `prefix` is NUL-terminated; `track` is a valid out-pointer; `user_data` is a
        // pointer to an `AtomicU64` that `self.counters` keeps alive for as long as the
        // handle exists (it is dropped after `cmap_finalize`), which is what
        // `count_notification` requires.
        check(unsafe {
            cmap_track_add(
                self.handle,
                prefix.as_ptr(),
                CMAP_TRACK_ALL_PREFIX,
                count_notification,
                Arc::as_ptr(&counter).cast_mut().cast(),
                &mut track,
            )
        })?;
        self.counters.push(Arc::clone(&counter));
        Ok(counter)
    }

    /// The connection's file descriptor to poll (`cmap_fd_get`), borrowed from the handle.
    ///
    /// # Errors
    /// The `cs_error_t`.
    pub fn fd(&self) -> Result<BorrowedFd<'_>, CsErr> {
        let mut fd: c_int = -1;
        // SAFETY: `fd` is a valid out-pointer.
        check(unsafe { cmap_fd_get(self.handle, &mut fd) })?;
        if fd < 0 {
            return Err(CsErr(2));
        }
        // SAFETY: libcmap owns the descriptor and keeps it open until `cmap_finalize`, which
        // only `Drop` calls; the borrow is tied to `&self`, so it cannot outlive the handle.
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// `cmap_dispatch(CS_DISPATCH_ALL)`: runs the callbacks of every pending notification.
    ///
    /// # Errors
    /// The `cs_error_t`.
    pub fn dispatch_all(&mut self) -> Result<(), CsErr> {
        // SAFETY: plain values; the callbacks' `user_data` are kept alive by `self.counters`.
        check(unsafe { cmap_dispatch(self.handle, CS_DISPATCH_ALL) })
    }
}

impl Drop for LibCmap {
    fn drop(&mut self) {
        // SAFETY: the handle came from `cmap_initialize` and is finalized once, here; the
        // counters (callback data) are dropped only after this returns.
        let _ = unsafe { cmap_finalize(self.handle) };
    }
}
