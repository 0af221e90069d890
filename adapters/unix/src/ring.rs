//! One libqb shared-memory ring, opened as the client (docs/protocol.md §2).
//!
//! A ring is two files the server created: `<base>-header` (write/read pointers, `word_size`,
//! the data file's path, `ref_count`, a glibc semaphore and a user area) and the data file it
//! names. [`ShmRing`] maps both without resizing them, validates every value it reads from
//! shared memory with `corowire::ring::Geometry`, and implements libqb's chunk commit and
//! reclaim orders. A corrupt pointer, size or magic is reported as [`ShmError::Ring`]; it never
//! causes a panic, an out-of-bounds access or an endless loop.

use core::fmt;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicI32, AtomicU32};
use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use corowire::ring::{data_bytes, FlowControl, Geometry, RingError};
use corowire::wire::qb::PATH_MAX;
use corowire::wire::ring::{
    CHUNK_OVERHEAD, DATA_PATH_OFFSET, HDR_PATH_OFFSET, HEADER_FILE_LEN, HEADER_STRUCT_LEN, MAGIC_ALLOC,
    MAGIC_DEAD, MAGIC_LIVE, READ_PT_OFFSET, REF_COUNT_OFFSET, SEM_OFFSET, USER_DATA_OFFSET, WORD_SIZE_OFFSET,
    WRITE_PT_OFFSET,
};
use nix::errno::Errno;
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::sem::{GlibcSem, SemError};
use crate::sys::shm::{Owner, SharedMapping};

/// Why a ring operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShmError {
    /// A system call failed (opening or mapping a file, a futex call).
    Io(Errno),
    /// The header file is malformed: too small, an unterminated or foreign `data_path`, or a
    /// data file whose size disagrees with `word_size`.
    Header(&'static str),
    /// A pointer, chunk size or magic read from shared memory is out of range.
    Ring(RingError),
    /// The ring has no room for the chunk now (libqb: `EAGAIN`).
    Full {
        /// Bytes the chunk needs, with its 12 bytes of overhead.
        needed: usize,
        /// Bytes free.
        free: usize,
    },
    /// A chunk is larger than the buffer it was to be read into; it was left in the ring.
    BufferTooSmall {
        /// Payload length.
        len: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// The chunk can never fit in this ring.
    TooLarge {
        /// Payload length.
        len: usize,
        /// Largest payload the ring holds.
        max: usize,
    },
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(_) => f.write_str("ring system call failed"),
            Self::Header(what) => write!(f, "malformed ring header: {what}"),
            Self::Ring(_) => f.write_str("corrupt ring"),
            Self::Full { needed, free } => {
                write!(f, "ring full: {needed} bytes needed, {free} free")
            }
            Self::TooLarge { len, max } => {
                write!(f, "chunk of {len} bytes exceeds the ring's maximum of {max}")
            }
            Self::BufferTooSmall { len, available } => {
                write!(f, "chunk of {len} bytes does not fit a {available}-byte buffer")
            }
        }
    }
}

/// As [`crate::Error`]: [`ShmError::Io`] and [`ShmError::Ring`] give their cause as the
/// `source()`.
impl core::error::Error for ShmError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Ring(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RingError> for ShmError {
    fn from(e: RingError) -> Self {
        Self::Ring(e)
    }
}

impl From<SemError> for ShmError {
    fn from(e: SemError) -> Self {
        match e {
            SemError::Futex(e) => Self::Io(e),
            SemError::TimedOut => Self::Io(Errno::ETIMEDOUT),
            SemError::Overflow => Self::Io(Errno::EOVERFLOW),
        }
    }
}

/// A libqb ring opened by the client: header and data mappings. Dropping it releases the
/// reference taken on open and unmaps both files (the server unlinks them).
///
/// A ring has one writer and one reader (libqb's single-producer, single-consumer chunk
/// protocol), so writing and reading a chunk take `&mut self`: a `&ShmRing` shared between
/// threads allows only the calls that change no chunk (the queries, the semaphore,
/// [`ShmRing::mark_closed`]), and two threads cannot write or read the ring at once:
///
/// ```compile_fail
/// fn shared(ring: &corowire_unix::ring::ShmRing) {
///     let _ = ring.write_chunk(b"request");
/// }
/// ```
///
/// ```
/// fn exclusive(ring: &mut corowire_unix::ring::ShmRing) {
///     let _ = ring.write_chunk(b"request");
/// }
/// ```
#[derive(Debug)]
pub struct ShmRing {
    header: SharedMapping,
    data: SharedMapping,
    geometry: Geometry,
    /// Whether this value added 1 to `ref_count` (and so must subtract it on drop).
    referenced: bool,
}

impl ShmRing {
    /// Opens the ring at `base` (the path from the setup response): maps `<base>-header` at
    /// its actual size, validates `word_size`, opens the data file named in the header (which
    /// must be in the same directory and exactly `word_size * 4` bytes), and adds 1 to
    /// `ref_count`.
    ///
    /// # Errors
    /// [`ShmError::Io`] if a file cannot be opened or mapped; [`ShmError::Header`] or
    /// [`ShmError::Ring`] if the header is malformed.
    pub fn open(base: &Path) -> Result<Self, ShmError> {
        let header_path = ring_file(base, "-header");
        let header = SharedMapping::open(&header_path).map_err(ShmError::Io)?;
        if header.len() < HEADER_STRUCT_LEN {
            return Err(ShmError::Header("header file is smaller than the ring header struct"));
        }
        let word_size = header
            .atomic_u32(WORD_SIZE_OFFSET)
            .ok_or(ShmError::Header("word_size out of bounds"))?
            .load(Acquire);
        let geometry = Geometry::new(word_size)?;

        let mut raw = vec![0u8; PATH_MAX];
        header
            .read_bytes(DATA_PATH_OFFSET, &mut raw)
            .map_err(|_| ShmError::Header("data_path out of bounds"))?;
        let end = raw.iter().position(|&b| b == 0).ok_or(ShmError::Header("data_path is not terminated"))?;
        let data_path = PathBuf::from(OsStr::from_bytes(&raw[..end]));
        // The server writes the data file next to the header; anything else is not a ring of
        // this connection, and mapping it read/write would be dangerous.
        if data_path.parent() != header_path.parent() || data_path.file_name().is_none() {
            return Err(ShmError::Header("data_path is not in the ring's directory"));
        }
        let data = SharedMapping::open(&data_path).map_err(ShmError::Io)?;
        if data.len() != geometry.bytes() {
            return Err(ShmError::Header("data file size is not word_size * 4"));
        }
        let mut ring = Self { header, data, geometry, referenced: false };
        // Check the pointers now, so that a corrupt ring fails at connect time.
        ring.geometry.position(ring.write_pt()?)?;
        ring.geometry.position(ring.read_pt()?)?;
        ring.sem()?;
        ring.ref_count_word()?.fetch_add(1, AcqRel);
        ring.referenced = true;
        Ok(ring)
    }

    /// Creates the ring at `base` as a libqb server does (docs/protocol.md §2.1–§2.3): `<base>-header`
    /// (8252 bytes: pointers 0, `word_size`, both paths, `ref_count` 1, a process-shared
    /// semaphore at 0, flow control 0) and `<base>-data` (`word_size * 4` zero bytes, where
    /// `word_size = round_up(max_msg_size + 13, page_size) / 4`). `dir` is the directory
    /// `base` names a file in: both files are created in it through that descriptor
    /// ([`SharedMapping::create_at`]: `O_EXCL | O_NOFOLLOW`, mode 0600, given to `owner`
    /// through their descriptors), so no path another user could change is followed. The
    /// creator holds no reference to drop: a server ends the ring with
    /// [`ShmRing::mark_closed`].
    ///
    /// # Errors
    /// [`ShmError::Io`] if a file cannot be created (nothing is left behind then);
    /// [`ShmError::Header`] if a path does not fit `PATH_MAX` or `base` names no file;
    /// [`ShmError::Ring`] for a `max_msg_size` too large for a ring.
    pub fn create(
        dir: BorrowedFd<'_>,
        base: &Path,
        max_msg_size: u32,
        page_size: usize,
        owner: Owner,
    ) -> Result<Self, ShmError> {
        let bytes = data_bytes(max_msg_size, page_size);
        let words = u32::try_from(bytes / 4).map_err(|_| RingError::BadWordSize { word_size: u32::MAX })?;
        let geometry = Geometry::new(words)?;
        let header_path = ring_file(base, "-header");
        let data_path = ring_file(base, "-data");
        let (hdr_raw, data_raw) = (header_path.as_os_str().as_bytes(), data_path.as_os_str().as_bytes());
        if hdr_raw.len().max(data_raw.len()) >= PATH_MAX {
            return Err(ShmError::Header("ring path longer than PATH_MAX"));
        }
        let (header_name, data_name) = (file_name(&header_path)?, file_name(&data_path)?);
        let header =
            SharedMapping::create_at(dir, header_name, HEADER_FILE_LEN, owner).map_err(ShmError::Io)?;
        let data = SharedMapping::create_at(dir, data_name, geometry.bytes(), owner).map_err(|e| {
            // Best effort: the creation error matters more than a failed cleanup.
            let _ = unlinkat(dir, header_name, UnlinkatFlags::NoRemoveDir);
            ShmError::Io(e)
        })?;
        let ring = Self { header, data, geometry, referenced: false };
        let layout = || -> Option<()> {
            ring.header.atomic_u32(WORD_SIZE_OFFSET)?.store(words, Relaxed);
            ring.header.write_bytes(HDR_PATH_OFFSET, hdr_raw).ok()?;
            ring.header.write_bytes(DATA_PATH_OFFSET, data_raw).ok()?;
            GlibcSem::new(&ring.header, SEM_OFFSET)?.init();
            ring.header.atomic_i32(REF_COUNT_OFFSET)?.store(1, Release);
            Some(())
        };
        // Cannot fail: the header file has the fixed libqb size that holds every field.
        layout().ok_or(ShmError::Header("header file too small"))?;
        Ok(ring)
    }

    /// Server side of a disconnect: sets `ref_count` to 0, so a client that still has the
    /// ring mapped sees the server gone (`ref_count != 2`) before its next send.
    pub fn mark_closed(&self) {
        if let Ok(w) = self.ref_count_word() {
            w.store(0, Release);
        }
    }

    /// Whether one of the ring's files was truncated under the server's mapping
    /// ([`SharedMapping::truncated`]): the peer is to be dropped.
    pub fn truncated(&self) -> bool {
        self.header.truncated() || self.data.truncated()
    }

    /// The ring's size.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn header_u32(&self, offset: usize) -> Result<&AtomicU32, ShmError> {
        self.header.atomic_u32(offset).ok_or(ShmError::Header("field out of bounds"))
    }

    fn data_u32(&self, word: u32) -> Result<&AtomicU32, ShmError> {
        self.data.atomic_u32(word as usize * 4).ok_or(ShmError::Header("data word out of bounds"))
    }

    fn ref_count_word(&self) -> Result<&AtomicI32, ShmError> {
        self.header.atomic_i32(REF_COUNT_OFFSET).ok_or(ShmError::Header("ref_count out of bounds"))
    }

    fn write_pt(&self) -> Result<u32, ShmError> {
        Ok(self.header_u32(WRITE_PT_OFFSET)?.load(Acquire))
    }

    fn read_pt(&self) -> Result<u32, ShmError> {
        Ok(self.header_u32(READ_PT_OFFSET)?.load(Acquire))
    }

    /// The ring's semaphore (count of committed, unread chunks).
    ///
    /// # Errors
    /// [`ShmError::Header`] if the header cannot hold it (checked at open).
    pub fn sem(&self) -> Result<GlibcSem<'_>, ShmError> {
        GlibcSem::new(&self.header, SEM_OFFSET).ok_or(ShmError::Header("semaphore out of bounds"))
    }

    /// The current `ref_count`: 2 while both the server and this client have the ring open.
    pub fn ref_count(&self) -> i32 {
        self.ref_count_word().map_or(0, |w| w.load(Acquire))
    }

    /// The flow-control value the server keeps in the user area (meaningful on the request
    /// ring only).
    pub fn flow_control(&self) -> FlowControl {
        let raw = self.header.atomic_i32(USER_DATA_OFFSET).map_or(0, |w| w.load(Acquire));
        FlowControl::from_raw(raw)
    }

    /// Checks that a chunk of `len` payload bytes can be written now (docs/protocol.md §2.6): it must fit
    /// the ring at all, and the free space (with the semaphore deciding whether equal pointers
    /// mean empty or full) must hold it plus 12 bytes.
    ///
    /// # Errors
    /// [`ShmError::TooLarge`], [`ShmError::Full`], or [`ShmError::Ring`] for corrupt pointers.
    pub fn check_space(&self, len: usize) -> Result<(), ShmError> {
        let max = self.geometry.max_chunk();
        if len > max {
            return Err(ShmError::TooLarge { len, max });
        }
        let w = self.geometry.position(self.write_pt()?)?;
        let r = self.geometry.position(self.read_pt()?)?;
        let sem_nonzero = self.sem()?.value() > 0;
        if !self.geometry.fits(len, w, r, sem_nonzero) {
            let free = self.geometry.free_bytes(w, r, sem_nonzero);
            return Err(ShmError::Full { needed: len + CHUNK_OVERHEAD, free });
        }
        Ok(())
    }

    /// Writes and commits one chunk, then posts the semaphore (docs/protocol.md §2.6): size 0, magic
    /// ALLOC, payload (wrapping), size, `write_pt`, magic LIVE (release), post. The setup-socket
    /// doorbell byte is the caller's job.
    ///
    /// # Errors
    /// As [`ShmRing::check_space`]; [`ShmError::Io`] if the wake-up fails.
    pub fn write_chunk(&mut self, payload: &[u8]) -> Result<(), ShmError> {
        self.check_space(payload.len())?;
        let p = self.geometry.position(self.write_pt()?)?;
        let next = self.geometry.next(p, payload.len())?;
        let size = u32::try_from(payload.len())
            .map_err(|_| ShmError::TooLarge { len: payload.len(), max: self.geometry.max_chunk() })?;
        let size_word = self.data_u32(p)?;
        let magic_word = self.data_u32(self.geometry.magic_word(p))?;
        size_word.store(0, Relaxed);
        magic_word.store(MAGIC_ALLOC, Relaxed);
        let [first, second] = self.geometry.payload_ranges(p, payload.len());
        let (a, b) = payload.split_at(first.len());
        self.data.write_bytes(first.start, a).map_err(|_| ShmError::Header("payload out of bounds"))?;
        self.data.write_bytes(second.start, b).map_err(|_| ShmError::Header("payload out of bounds"))?;
        size_word.store(size, Relaxed);
        self.header_u32(WRITE_PT_OFFSET)?.store(next, Release);
        magic_word.store(MAGIC_LIVE, Release);
        self.sem()?.post()?;
        Ok(())
    }

    /// Reads the oldest chunk into `out` (replacing its contents) and reclaims it: size 0, magic
    /// DEAD (release), `read_pt` advanced. The caller must already have taken one token from
    /// the ring's semaphore for it.
    ///
    /// # Errors
    /// [`ShmError::Ring`] if the chunk is not LIVE or its size or position is out of range;
    /// the ring is then unusable.
    pub fn read_chunk(&mut self, out: &mut Vec<u8>) -> Result<(), ShmError> {
        let (p, len) = self.front()?;
        out.clear();
        out.resize(len, 0);
        self.take(p, out)
    }

    /// [`ShmRing::read_chunk`] into the start of `out`, returning the chunk's length.
    ///
    /// # Errors
    /// As [`ShmRing::read_chunk`]; [`ShmError::BufferTooSmall`] for a chunk larger than
    /// `out`, which is then left in the ring.
    pub fn read_chunk_into(&mut self, out: &mut [u8]) -> Result<usize, ShmError> {
        let (p, len) = self.front()?;
        let available = out.len();
        let dst = out.get_mut(..len).ok_or(ShmError::BufferTooSmall { len, available })?;
        self.take(p, dst)?;
        Ok(len)
    }

    /// The oldest chunk's position and payload length, once its magic is LIVE.
    fn front(&self) -> Result<(u32, usize), ShmError> {
        let p = self.geometry.position(self.read_pt()?)?;
        let magic = self.data_u32(self.geometry.magic_word(p))?.load(Acquire);
        if magic != MAGIC_LIVE {
            return Err(RingError::BadMagic { magic, position: p }.into());
        }
        let len = self.geometry.chunk_size(self.data_u32(p)?.load(Relaxed))?;
        Ok((p, len))
    }

    /// Copies the chunk at `p` (of `out.len()` bytes, as [`ShmRing::front`] found) into `out`
    /// and reclaims it.
    fn take(&mut self, p: u32, out: &mut [u8]) -> Result<(), ShmError> {
        let len = out.len();
        let magic_word = self.data_u32(self.geometry.magic_word(p))?;
        let size_word = self.data_u32(p)?;
        let next = self.geometry.next(p, len)?;
        let [first, second] = self.geometry.payload_ranges(p, len);
        let (a, b) = out.split_at_mut(first.len());
        self.data.read_bytes(first.start, a).map_err(|_| ShmError::Header("payload out of bounds"))?;
        self.data.read_bytes(second.start, b).map_err(|_| ShmError::Header("payload out of bounds"))?;
        size_word.store(0, Relaxed);
        magic_word.store(MAGIC_DEAD, Release);
        self.header_u32(READ_PT_OFFSET)?.store(next, Release);
        Ok(())
    }
}

/// The last component of `path` (a ring file's name in its directory).
fn file_name(path: &Path) -> Result<&Path, ShmError> {
    path.file_name().map(Path::new).ok_or(ShmError::Header("ring base names no file"))
}

/// `<base><suffix>`: one of a ring's two files.
fn ring_file(base: &Path, suffix: &str) -> PathBuf {
    let mut path = base.as_os_str().to_owned();
    path.push(suffix);
    PathBuf::from(path)
}

impl Drop for ShmRing {
    fn drop(&mut self) {
        if self.referenced {
            if let Ok(w) = self.ref_count_word() {
                w.fetch_sub(1, AcqRel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::Mode;

    /// A ring as a server would create it, in a private directory removed on drop.
    struct FakeServer {
        dir: PathBuf,
        base: PathBuf,
        header: SharedMapping,
        data: SharedMapping,
    }

    impl FakeServer {
        fn new(tag: &str, words: u32) -> Self {
            let dir = PathBuf::from(format!("/dev/shm/corowire-ring-test-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap();
            let base = dir.join("qb-request-test");
            let rw = Mode::S_IRUSR | Mode::S_IWUSR;
            let header =
                SharedMapping::create(&dir.join("qb-request-test-header"), HEADER_FILE_LEN, rw).unwrap();
            let data_path = dir.join("qb-request-test-data");
            let data = SharedMapping::create(&data_path, words as usize * 4, rw).unwrap();
            header.atomic_u32(WORD_SIZE_OFFSET).unwrap().store(words, Relaxed);
            header.write_bytes(DATA_PATH_OFFSET, data_path.as_os_str().as_bytes()).unwrap();
            header.atomic_i32(REF_COUNT_OFFSET).unwrap().store(1, Relaxed);
            GlibcSem::new(&header, SEM_OFFSET).unwrap().init();
            Self { dir, base, header, data }
        }

        fn set(&self, offset: usize, value: u32) {
            self.header.atomic_u32(offset).unwrap().store(value, Relaxed);
        }

        fn ref_count(&self) -> i32 {
            self.header.atomic_i32(REF_COUNT_OFFSET).unwrap().load(Relaxed)
        }
    }

    impl Drop for FakeServer {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn open_takes_and_drop_releases_a_reference() {
        let server = FakeServer::new("ref", 1024);
        let ring = ShmRing::open(&server.base).unwrap();
        assert_eq!(ring.ref_count(), 2);
        assert_eq!(ring.geometry().words(), 1024);
        assert_eq!(ring.flow_control(), FlowControl::Normal);
        server.set(USER_DATA_OFFSET, 1);
        assert_eq!(ring.flow_control(), FlowControl::Off);
        drop(ring);
        assert_eq!(server.ref_count(), 1);
    }

    #[test]
    fn malformed_headers_are_rejected() {
        let server = FakeServer::new("bad", 1024);
        server.set(WORD_SIZE_OFFSET, 0);
        assert!(matches!(ShmRing::open(&server.base), Err(ShmError::Ring(RingError::BadWordSize { .. }))));
        server.set(WORD_SIZE_OFFSET, 2048);
        assert_eq!(
            ShmRing::open(&server.base).unwrap_err(),
            ShmError::Header("data file size is not word_size * 4")
        );
        server.set(WORD_SIZE_OFFSET, 1024);
        server.set(READ_PT_OFFSET, 1024);
        assert!(matches!(ShmRing::open(&server.base), Err(ShmError::Ring(RingError::BadPosition { .. }))));
        server.set(READ_PT_OFFSET, 0);
        server.header.write_bytes(DATA_PATH_OFFSET, b"/etc/passwd\0").unwrap();
        assert_eq!(
            ShmRing::open(&server.base).unwrap_err(),
            ShmError::Header("data_path is not in the ring's directory")
        );
        server.header.write_bytes(DATA_PATH_OFFSET, &[b'x'; PATH_MAX]).unwrap();
        assert_eq!(ShmRing::open(&server.base).unwrap_err(), ShmError::Header("data_path is not terminated"));
        assert_eq!(server.ref_count(), 1, "failed opens take no reference");
        assert_eq!(ShmRing::open(&server.dir.join("missing")).unwrap_err(), ShmError::Io(Errno::ENOENT));
    }

    #[test]
    fn chunks_round_trip_across_the_wrap() {
        let server = FakeServer::new("wrap", 64);
        let mut writer = ShmRing::open(&server.base).unwrap();
        let mut reader = ShmRing::open(&server.base).unwrap();
        // Start near the end so the payload wraps.
        server.set(WRITE_PT_OFFSET, 60);
        server.set(READ_PT_OFFSET, 60);
        let msg: Vec<u8> = (0..50u8).collect();
        writer.write_chunk(&msg).unwrap();
        assert_eq!(writer.sem().unwrap().value(), 1);
        assert_eq!(server.header.atomic_u32(WRITE_PT_OFFSET).unwrap().load(Relaxed), (60 + 2 + 13) % 64);
        assert!(reader.sem().unwrap().try_wait());
        let mut out = Vec::new();
        reader.read_chunk(&mut out).unwrap();
        assert_eq!(out, msg);
        assert_eq!(server.header.atomic_u32(READ_PT_OFFSET).unwrap().load(Relaxed), 11);
        assert_eq!(server.data.atomic_u32(61 * 4).unwrap().load(Relaxed), MAGIC_DEAD);
        // Fill the ring: 64 words = 256 bytes, minus one word, 12 bytes overhead per chunk.
        let mut sent = 0;
        while writer.write_chunk(&[7u8; 20]).is_ok() {
            sent += 1;
        }
        assert_eq!(sent, 8, "a 7-word chunk needs 8 free words (libqb: len + 12 bytes)");
        assert!(matches!(writer.write_chunk(&[0; 20]), Err(ShmError::Full { .. })));
        assert!(matches!(writer.write_chunk(&[0; 245]), Err(ShmError::TooLarge { len: 245, max: 244 })));
        for _ in 0..sent {
            assert!(reader.sem().unwrap().try_wait());
            reader.read_chunk(&mut out).unwrap();
            assert_eq!(out, [7u8; 20]);
        }
        assert!(!reader.sem().unwrap().try_wait());
        writer.check_space(244).unwrap();
    }

    #[test]
    fn corrupt_chunks_are_errors() {
        let server = FakeServer::new("corrupt", 64);
        let mut ring = ShmRing::open(&server.base).unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            ring.read_chunk(&mut out),
            Err(ShmError::Ring(RingError::BadMagic { magic: 0, position: 0 }))
        ));
        ring.write_chunk(b"hello").unwrap();
        server.data.atomic_u32(0).unwrap().store(u32::MAX, Relaxed);
        assert!(matches!(ring.read_chunk(&mut out), Err(ShmError::Ring(RingError::BadChunkSize { .. }))));
        server.set(READ_PT_OFFSET, 64);
        assert!(matches!(ring.read_chunk(&mut out), Err(ShmError::Ring(RingError::BadPosition { .. }))));
        server.set(WRITE_PT_OFFSET, u32::MAX);
        assert!(matches!(ring.write_chunk(b"x"), Err(ShmError::Ring(RingError::BadPosition { .. }))));
    }
}
