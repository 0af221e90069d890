//! Safe access to a `MAP_SHARED` mapping of a file that other processes modify concurrently.

use core::fmt;
use core::mem::size_of;
use core::num::NonZeroUsize;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::sys::sigbus::Guard;
use nix::errno::Errno;
use nix::fcntl::{open, openat, posix_fallocate, OFlag};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::sys::stat::{fchmod, fstat, Mode};
use nix::unistd::{fchown, ftruncate, unlink, unlinkat, Gid, Uid, UnlinkatFlags};

/// The user and group a created file is given to (`None`: left as created).
pub type Owner = (Option<Uid>, Option<Gid>);

/// An access that does not fit inside the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds;

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("access outside the shared mapping")
    }
}

impl core::error::Error for OutOfBounds {}

/// The atomic types that may be placed on shared memory: interior mutability, no invalid bit
/// patterns, and alignment equal to their size.
trait SharedAtomic {}
impl SharedAtomic for AtomicU32 {}
impl SharedAtomic for AtomicI32 {}
impl SharedAtomic for AtomicU64 {}

/// A whole file mapped read/write and `MAP_SHARED`; unmapped on drop.
///
/// Any byte may be changed at any time by another process, so this type never hands out
/// `&[u8]` or `&mut [u8]` into the mapping. Bytes are copied in and out
/// ([`read_bytes`](Self::read_bytes), [`write_bytes`](Self::write_bytes)), and words shared
/// with the peer are reached as atomics ([`atomic_u32`](Self::atomic_u32) and friends).
///
/// If another process shrinks the file, touching a page past its new end raises `SIGBUS`, as
/// with any file mapping. The libqb peers never shrink a file below a page it uses.
#[derive(Debug)]
pub struct SharedMapping {
    base: NonNull<u8>,
    len: usize,
    /// Set for the files a server creates ([`SharedMapping::create_at`]): a `SIGBUS` in the
    /// mapping is survived (see [`SharedMapping::truncated`]).
    guard: Option<Guard>,
}

// SAFETY: the mapping is process-wide memory owned by this value, not tied to a thread.
unsafe impl Send for SharedMapping {}
// SAFETY: `&self` methods only perform atomic accesses or raw copies, which are written to
// tolerate concurrent modification of the mapped bytes (see `read_bytes`).
unsafe impl Sync for SharedMapping {}

impl SharedMapping {
    /// Opens an existing file `O_RDWR` and maps its current size. The file is never resized.
    ///
    /// # Errors
    /// `open`, `fstat` or `mmap` failures; `EINVAL` for an empty file.
    pub fn open(path: &Path) -> Result<Self, Errno> {
        let fd = open(path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
        let len = usize::try_from(fstat(&fd)?.st_size).map_err(|_| Errno::EINVAL)?;
        Self::map(&fd, len)
    }

    /// Opens the existing file `name` in the directory `dir` `O_RDWR | O_NOFOLLOW` (a symbolic
    /// link is never followed) and maps its current size; gives the mapping and the uid that
    /// owns the opened file (`fstat` on its descriptor, so a file swapped in after the check
    /// cannot be the one mapped). A client opens the socket transport's control file this way.
    ///
    /// # Errors
    /// `openat` (`ELOOP` for a symbolic link), `fstat` or `mmap` failures; `EINVAL` for an
    /// empty file.
    pub fn open_at(dir: BorrowedFd<'_>, name: &Path) -> Result<(Self, Uid), Errno> {
        let fd = openat(dir, name, OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?;
        let stat = fstat(&fd)?;
        let len = usize::try_from(stat.st_size).map_err(|_| Errno::EINVAL)?;
        Ok((Self::map(&fd, len)?, Uid::from_raw(stat.st_uid)))
    }

    /// Creates a new file (`O_CREAT | O_EXCL`, permission bits `mode` minus the umask), sizes it
    /// to `len` zero bytes with `ftruncate` and `posix_fallocate`, and maps it. On failure
    /// after the file was created it is unlinked. A server creates its files with
    /// [`create_at`](Self::create_at) instead, which no other user can redirect.
    ///
    /// # Errors
    /// `EEXIST` if `path` exists; `EINVAL` for `len == 0`; other `open`, `ftruncate`,
    /// `posix_fallocate` or `mmap` failures.
    pub fn create(path: &Path, len: usize, mode: Mode) -> Result<Self, Errno> {
        let fd = open(path, OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC, mode)?;
        Self::size_and_map(&fd, len).inspect_err(|_| {
            // Best effort: the error being returned matters more than a failed cleanup.
            let _ = unlink(path);
        })
    }

    /// Creates the file `name` in the directory `dir` (`openat` with `O_CREAT | O_EXCL |
    /// O_NOFOLLOW`, so neither an existing file nor a symbolic link is ever opened), then,
    /// all through its descriptor, gives it to `owner` (`fchown`; a failure is ignored as
    /// libqb does: a server that is not root can only serve its own user), sets its mode to
    /// exactly 0600 (`fchmod`, whatever the umask), sizes it to `len` zero bytes and maps it.
    /// The server creates the ring files and the control file this way (issue 13): no path a
    /// client could change is ever followed, and a client that truncates the file cannot
    /// kill the server with `SIGBUS` ([`truncated`](Self::truncated)). On failure after the file was created it is
    /// removed (`unlinkat` in `dir`).
    ///
    /// # Errors
    /// `EEXIST` if `name` exists (as a file or a link); `EINVAL` for `len == 0`; `ENOMEM`
    /// when too many such mappings exist; other `openat`, `fchmod`, `ftruncate`,
    /// `posix_fallocate`, `mmap` or `sigaction` failures.
    pub fn create_at(dir: BorrowedFd<'_>, name: &Path, len: usize, owner: Owner) -> Result<Self, Errno> {
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(dir, name, flags, Mode::S_IRUSR | Mode::S_IWUSR)?;
        let _ = fchown(&fd, owner.0, owner.1);
        let guarded = fchmod(&fd, Mode::S_IRUSR | Mode::S_IWUSR)
            .and_then(|()| Self::size_and_map(&fd, len))
            .and_then(|mut map| {
                map.guard = Some(Guard::register(map.base.as_ptr() as usize, map.len)?);
                Ok(map)
            });
        guarded.inspect_err(|_| {
            // Best effort, as in `create`.
            let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
        })
    }

    /// Sizes the new file `fd` to `len` zero bytes and maps it.
    fn size_and_map(fd: &OwnedFd, len: usize) -> Result<Self, Errno> {
        let size = libc::off_t::try_from(len).map_err(|_| Errno::EFBIG)?;
        ftruncate(fd, size)?;
        posix_fallocate(fd, 0, size)?;
        Self::map(fd, len)
    }

    fn map(fd: impl AsFd, len: usize) -> Result<Self, Errno> {
        let size = NonZeroUsize::new(len).ok_or(Errno::EINVAL)?;
        // SAFETY: without MAP_FIXED the kernel picks an unused address range, so the new
        // mapping cannot overlap any existing Rust object; `fd` is open for the whole call.
        let base = unsafe {
            mmap(None, size, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED, fd, 0)
        }?;
        Ok(Self { base: base.cast(), len, guard: None })
    }

    /// Whether the file was truncated under a mapping made by
    /// [`create_at`](Self::create_at): an access past its new end raised `SIGBUS`, and the
    /// mapping now holds private zero pages instead (see [`crate::sys::sigbus`]). The peer
    /// that did it is to be dropped. Always `false` for other mappings.
    pub fn truncated(&self) -> bool {
        self.guard.as_ref().is_some_and(Guard::truncated)
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never true: empty files cannot be mapped).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pointer to `offset`, if `offset..offset + len` lies inside the mapping.
    fn span(&self, offset: usize, len: usize) -> Result<*mut u8, OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(self.base.as_ptr().wrapping_add(offset)),
            _ => Err(OutOfBounds),
        }
    }

    /// Copies `buf.len()` bytes starting at `offset` out of the mapping into `buf`.
    ///
    /// # Errors
    /// [`OutOfBounds`] if the range does not fit; nothing is copied then.
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<(), OutOfBounds> {
        let src = self.span(offset, buf.len())?;
        // SAFETY: `span` checked that the source range lies inside the live mapping, and `buf`
        // is private Rust memory, so the ranges are valid and cannot overlap. Another process
        // may store to the source bytes during the copy. The mapping is not a Rust allocation
        // and no reference to its bytes ever exists, so the compiler assumes nothing about
        // them; such a race can only leave unspecified values in `buf`, and every bit pattern
        // is a valid `u8`. Callers validate the private copy, never the shared original, and
        // the protocol orders the copy against the peer with acquire/release atomics.
        unsafe { ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `data` into the mapping starting at `offset`.
    ///
    /// # Errors
    /// [`OutOfBounds`] if the range does not fit; nothing is copied then.
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<(), OutOfBounds> {
        let dst = self.span(offset, data.len())?;
        // SAFETY: as in `read_bytes`: the destination range lies inside the live, writable
        // mapping and cannot overlap the private `data`. No reference to the mapped bytes
        // exists, so a concurrent access by another process can only observe or leave
        // unspecified byte values, which the protocol's atomics rule out for correct peers.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    fn atomic<T: SharedAtomic>(&self, offset: usize) -> Option<&T> {
        let ptr = self.span(offset, size_of::<T>()).ok()?.cast::<T>();
        if !ptr.is_aligned() {
            return None;
        }
        // SAFETY: the pointer is in bounds and aligned for `T`, and the mapping outlives the
        // returned borrow of `self` (it is unmapped only in `drop`, which needs `&mut self`).
        // `T` is an atomic integer: it permits mutation through `&T` (by us and by other
        // processes) and every bit pattern is a valid value.
        Some(unsafe { &*ptr })
    }

    /// The 4-byte word at `offset` as an atomic, or `None` if out of range or not 4-aligned.
    pub fn atomic_u32(&self, offset: usize) -> Option<&AtomicU32> {
        self.atomic(offset)
    }

    /// The 4-byte word at `offset` as a signed atomic, or `None` if out of range or not
    /// 4-aligned.
    pub fn atomic_i32(&self, offset: usize) -> Option<&AtomicI32> {
        self.atomic(offset)
    }

    /// The 8-byte word at `offset` as an atomic, or `None` if out of range or not 8-aligned.
    pub fn atomic_u64(&self, offset: usize) -> Option<&AtomicU64> {
        self.atomic(offset)
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // Unregistered first: the SIGBUS handler must never remap a range once unmapped.
        drop(self.guard.take());
        // SAFETY: `base` and `len` describe the mapping made in `map`, and `&mut self` proves
        // that no reference returned by the `atomic_*` accessors is still alive.
        // munmap can only fail for arguments that `map` never produces.
        let _ = unsafe { munmap(self.base.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;
    use std::path::PathBuf;

    /// A unique `/dev/shm` path, unlinked on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(tag: &str) -> Self {
            Self(PathBuf::from(format!("/dev/shm/corowire-unix-shm-{}-{tag}", std::process::id())))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = unlink(&self.0);
        }
    }

    fn rw() -> Mode {
        Mode::S_IRUSR | Mode::S_IWUSR
    }

    #[test]
    fn create_then_open_share_bytes() {
        let path = TempPath::new("share");
        let created = SharedMapping::create(&path.0, 100, rw()).unwrap();
        assert_eq!(created.len(), 100);
        assert!(!created.is_empty());
        created.write_bytes(96, b"tail").unwrap();

        let opened = SharedMapping::open(&path.0).unwrap();
        assert_eq!(opened.len(), 100);
        let mut buf = [0u8; 6];
        opened.read_bytes(94, &mut buf).unwrap();
        assert_eq!(&buf, b"\0\0tail");

        opened.atomic_u32(8).unwrap().store(0xA1A1_A1A1, Ordering::Release);
        assert_eq!(created.atomic_u32(8).unwrap().load(Ordering::Acquire), 0xA1A1_A1A1);
        assert_eq!(created.atomic_i32(8).unwrap().load(Ordering::Relaxed), {
            i32::from_ne_bytes(0xA1A1_A1A1_u32.to_ne_bytes())
        });
    }

    #[test]
    fn create_refuses_existing_file() {
        let path = TempPath::new("excl");
        let _first = SharedMapping::create(&path.0, 8, rw()).unwrap();
        assert_eq!(SharedMapping::create(&path.0, 8, rw()).unwrap_err(), Errno::EEXIST);
    }

    #[test]
    fn empty_sizes_are_rejected() {
        let path = TempPath::new("empty");
        assert_eq!(SharedMapping::create(&path.0, 0, rw()).unwrap_err(), Errno::EINVAL);
        assert!(!path.0.exists(), "a failed create removes its file");
        std::fs::write(&path.0, b"").unwrap();
        assert_eq!(SharedMapping::open(&path.0).unwrap_err(), Errno::EINVAL);
    }

    #[test]
    fn accesses_are_bounds_checked() {
        let path = TempPath::new("bounds");
        let map = SharedMapping::create(&path.0, 64, rw()).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(map.read_bytes(57, &mut buf), Err(OutOfBounds));
        assert_eq!(map.write_bytes(usize::MAX, &buf), Err(OutOfBounds));
        assert_eq!(map.read_bytes(56, &mut buf), Ok(()));
        assert_eq!(map.write_bytes(64, &[]), Ok(()));

        assert!(map.atomic_u64(56).is_some());
        assert!(map.atomic_u64(60).is_none(), "misaligned");
        assert!(map.atomic_u64(64).is_none(), "out of range");
        assert!(map.atomic_u32(60).is_some());
        assert!(map.atomic_u32(2).is_none(), "misaligned");
        assert!(map.atomic_i32(usize::MAX - 3).is_none(), "overflowing offset");
    }
}
