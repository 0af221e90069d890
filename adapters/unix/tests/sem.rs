//! `GlibcSem` between threads, between processes, and against glibc's own `sem_*` functions on
//! the same shared file.

use core::ffi::c_void;
use core::num::NonZeroUsize;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use corowire_unix::sem::{GlibcSem, SemError, SEM_SIZE};
use corowire_unix::sys::shm::SharedMapping;
use nix::fcntl::{open, OFlag};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use nix::unistd::unlink;

/// Generous bound for things that must happen "soon"; only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(60);
/// Environment variable naming the shared file for the child process.
const CHILD_ENV: &str = "COROWIRE_UNIX_SEM_CHILD";

/// A fresh 64-byte `/dev/shm` file (room for two semaphores), unlinked on drop.
struct ShmFile(PathBuf);

impl ShmFile {
    fn new(tag: &str) -> (Self, SharedMapping) {
        let path = PathBuf::from(format!("/dev/shm/corowire-unix-sem-{}-{tag}", std::process::id()));
        let map = SharedMapping::create(&path, 2 * SEM_SIZE, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
        (Self(path), map)
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
    }
}

fn sem_at(map: &SharedMapping, offset: usize) -> GlibcSem<'_> {
    let sem = GlibcSem::new(map, offset).unwrap();
    sem.init();
    sem
}

/// Polls `cond` until it holds; panics if it does not within [`PATIENCE`].
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn tokens_are_counted() {
    let (_file, map) = ShmFile::new("count");
    let sem = sem_at(&map, 0);
    assert_eq!(sem.value(), 0);
    assert!(!sem.try_wait());
    sem.post().unwrap();
    sem.post().unwrap();
    assert_eq!(sem.value(), 2);
    assert_eq!(sem.wait(Some(Duration::ZERO)), Ok(()));
    assert!(sem.try_wait());
    assert!(!sem.try_wait());
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn new_checks_room_and_alignment() {
    let (_file, map) = ShmFile::new("new");
    assert!(GlibcSem::new(&map, SEM_SIZE).is_some());
    assert!(GlibcSem::new(&map, SEM_SIZE + 8).is_none(), "sem_t would not fit");
    assert!(GlibcSem::new(&map, 4).is_none(), "misaligned");
}

#[test]
fn timeout_unregisters_the_waiter() {
    let (_file, map) = ShmFile::new("timeout");
    let sem = sem_at(&map, 0);
    assert_eq!(sem.wait(Some(Duration::from_millis(5))), Err(SemError::TimedOut));
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.value(), 0);
}

#[test]
fn post_refuses_to_overflow() {
    let (_file, map) = ShmFile::new("overflow");
    let sem = sem_at(&map, 0);
    map.atomic_u64(0).unwrap().store(0x7fff_ffff, Ordering::Relaxed);
    assert_eq!(sem.post(), Err(SemError::Overflow));
    assert_eq!(sem.value(), 0x7fff_ffff);
}

#[test]
fn post_wakes_a_waiting_thread() {
    let (_file, map) = ShmFile::new("threads");
    let sem = sem_at(&map, 0);
    thread::scope(|s| {
        let waiter = s.spawn(|| sem.wait(Some(PATIENCE)));
        eventually("waiter registered", || sem.waiters() == 1);
        sem.post().unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(()));
    });
    assert_eq!((sem.value(), sem.waiters()), (0, 0));
}

/// Parent half: a child process waits on semaphore 0 and answers on semaphore 1.
#[test]
fn post_wakes_a_waiter_in_another_process() {
    let (file, map) = ShmFile::new("process");
    let (to_child, to_parent) = (sem_at(&map, 0), sem_at(&map, SEM_SIZE));
    let child = thread::spawn({
        let path = file.0.clone();
        move || {
            Command::new(env::current_exe().unwrap())
                .args(["child_waits_then_posts", "--exact", "--ignored"])
                .env(CHILD_ENV, path)
                .output()
                .unwrap()
        }
    });
    eventually("child registered", || to_child.waiters() == 1);
    to_child.post().unwrap();
    assert_eq!(to_parent.wait(Some(PATIENCE)), Ok(()));
    let out = child.join().unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    assert_eq!((to_child.value(), to_child.waiters()), (0, 0));
}

/// Child half of [`post_wakes_a_waiter_in_another_process`]; does nothing when run directly.
#[test]
#[ignore = "entry point of the child process of post_wakes_a_waiter_in_another_process"]
fn child_waits_then_posts() {
    let Ok(path) = env::var(CHILD_ENV) else {
        return;
    };
    let map = SharedMapping::open(Path::new(&path)).unwrap();
    let to_child = GlibcSem::new(&map, 0).unwrap();
    let to_parent = GlibcSem::new(&map, SEM_SIZE).unwrap();
    assert_eq!(to_child.wait(Some(PATIENCE)), Ok(()));
    to_parent.post().unwrap();
}

/// A second, independent mapping of a file, for handing raw `sem_t` pointers to glibc. Being a
/// different mapping (other address, same pages) it also proves the futexes are shared ones.
struct RawMap {
    base: NonNull<c_void>,
    len: usize,
}

impl RawMap {
    fn new(path: &Path, len: usize) -> Self {
        let fd = open(path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
        // SAFETY: a fresh mapping at a kernel-chosen address overlaps no Rust object.
        let base = unsafe {
            mmap(
                None,
                NonZeroUsize::new(len).unwrap(),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }
        .unwrap();
        Self { base, len }
    }

    /// glibc's view of the `sem_t` at `offset`.
    fn sem(&self, offset: usize) -> *mut libc::sem_t {
        assert!(offset + SEM_SIZE <= self.len);
        self.base.as_ptr().cast::<u8>().wrapping_add(offset).cast()
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are the mapping made in `new`; no pointer from `sem` outlives
        // the tests' use of this value.
        unsafe { munmap(self.base, self.len) }.unwrap();
    }
}

#[test]
fn init_writes_the_same_bytes_as_glibc_sem_init() {
    let (file, map) = ShmFile::new("layout");
    map.write_bytes(0, &[0xAA; 2 * SEM_SIZE]).unwrap();
    let raw = RawMap::new(&file.0, map.len());
    // SAFETY: `raw.sem(0)` points to 32 writable, 8-aligned bytes that nothing else uses.
    assert_eq!(unsafe { libc::sem_init(raw.sem(0), 1, 0) }, 0);
    sem_at(&map, SEM_SIZE);

    let (mut glibc, mut ours) = ([0u8; 16], [0u8; 16]);
    map.read_bytes(0, &mut glibc).unwrap();
    map.read_bytes(SEM_SIZE, &mut ours).unwrap();
    // data (u64) and private (u32); glibc's trailing 4-byte pad is not part of the protocol.
    assert_eq!(glibc[..12], ours[..12]);
    assert_eq!(&ours[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 128, 0, 0, 0]);
}

#[test]
fn glibc_sem_post_wakes_our_wait() {
    let (file, map) = ShmFile::new("glibc-post");
    let sem = sem_at(&map, 0);
    let raw = RawMap::new(&file.0, map.len());
    thread::scope(|s| {
        let waiter = s.spawn(|| sem.wait(Some(PATIENCE)));
        eventually("our waiter registered", || sem.waiters() == 1);
        // SAFETY: `raw.sem(0)` is an initialised process-shared semaphore, mapped until the
        // end of the test.
        assert_eq!(unsafe { libc::sem_post(raw.sem(0)) }, 0);
        assert_eq!(waiter.join().unwrap(), Ok(()));
    });
    assert_eq!((sem.value(), sem.waiters()), (0, 0));
}

#[test]
fn our_post_wakes_glibc_sem_timedwait() {
    let (file, map) = ShmFile::new("glibc-wait");
    let sem = sem_at(&map, 0);
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            let raw = RawMap::new(&file.0, map.len());
            let until = (SystemTime::now() + PATIENCE).duration_since(UNIX_EPOCH).unwrap();
            let abstime = libc::timespec {
                tv_sec: libc::time_t::try_from(until.as_secs()).unwrap(),
                tv_nsec: libc::c_long::from(until.subsec_nanos()),
            };
            // SAFETY: `raw.sem(0)` is an initialised process-shared semaphore, mapped for the
            // whole call; `abstime` is a valid timespec.
            unsafe { libc::sem_timedwait(raw.sem(0), &abstime) }
        });
        eventually("glibc waiter registered", || sem.waiters() == 1);
        sem.post().unwrap();
        assert_eq!(waiter.join().unwrap(), 0);
    });
    assert_eq!((sem.value(), sem.waiters()), (0, 0));
}

#[test]
fn glibc_and_we_agree_on_the_value() {
    let (file, map) = ShmFile::new("glibc-value");
    let sem = sem_at(&map, 0);
    let raw = RawMap::new(&file.0, map.len());
    for _ in 0..3 {
        sem.post().unwrap();
    }
    let mut value = 0;
    // SAFETY: `raw.sem(0)` is an initialised semaphore; `value` is a valid out-pointer.
    assert_eq!(unsafe { libc::sem_getvalue(raw.sem(0), &mut value) }, 0);
    assert_eq!(value, 3);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::sem_trywait(raw.sem(0)) }, 0);
    assert_eq!(sem.value(), 2);
}
