//! Linux OS layer for `corowire`: the parts of corosync's libqb IPC that need the kernel.
//!
//! - [`sys::shm`]: safe, bounds-checked access to `MAP_SHARED` file mappings (the ring files);
//! - [`sys::futex`]: shared futex wait/wake;
//! - [`sem`]: glibc's process-shared `sem_t` algorithm, which is part of the wire format;
//! - [`sys::sock`]: the setup socket (libqb's padded abstract names, credentials, polling).
//!
//! All `unsafe` code lives in `sys::shm` and `sys::futex`.
//!
//! Only 64-bit Linux is supported: the glibc `sem_t` layout used on the wire is the 64-bit one.

#![deny(unsafe_code)]

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
compile_error!("corowire-unix supports 64-bit Linux only");

pub mod sem;
pub mod sys;
