//! The bodies of the fuzz targets over `corowire-unix`'s shared-memory parsers, as plain
//! functions over `&[u8]`: a libqb ring and a glibc semaphore whose bytes the peer wrote.
//!
//! Shared like `targets.rs`: the cargo-fuzz binaries use it through this crate's library, and
//! `adapters/unix/tests/corpus_replay.rs` includes it with `#[path]` to replay the committed
//! seeds in `cargo test`. The "fake mapping" is a pair of real files in a private directory
//! under `/dev/shm` (tmpfs, as the peer's would be), written from the input and mapped by the
//! same code that maps a server's rings.

use core::fmt::{self, Debug};
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;
use std::path::{Path, PathBuf};

use corowire::wire::qb::PATH_MAX;
use corowire::wire::ring::{
    DATA_PATH_OFFSET, HDR_PATH_OFFSET, HEADER_FILE_LEN, READ_PT_OFFSET, REF_COUNT_OFFSET, SEM_OFFSET,
    SEM_SIZE, WORD_SIZE_OFFSET, WRITE_PT_OFFSET,
};
use corowire_unix::ring::{ShmError, ShmRing};
use corowire_unix::sem::{GlibcSem, SemError};
use corowire_unix::sys::shm::SharedMapping;

/// A fresh directory under `/dev/shm` for one run, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/dev/shm/corowire-fuzz-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).expect("scratch directory in /dev/shm");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Takes `N` bytes from the front of `data` (zero-padded at the end of the input).
fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(data.len());
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

/// Puts `bytes` at `offset` of `buf`.
fn put(buf: &mut [u8], offset: usize, bytes: &[u8]) {
    buf[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// The `shm_ring` target: a client opening and using a ring whose header and data the server
/// wrote. Input: a flags byte; `write_pt`, `read_pt`, `word_size` (`u32` each); the 8-byte
/// semaphore word; `ref_count`; a count and that many operation bytes; the data file's bytes
/// (repeated to its size). Unless flag bit 0 is set, `word_size` is reduced to at most 16384
/// and the data file has its size; unless bit 1 is set, the header's `data_path` names the
/// data file (else the input's next 16 bytes follow the directory). Every operation of a
/// client is tried on what opens: reads into short and long buffers, space checks, writes,
/// the semaphore.
pub fn shm_ring(mut data: &[u8]) {
    let [flags] = take::<1>(&mut data);
    let [write_pt, read_pt, mut word_size] = [0; 3].map(|_: u8| u32::from_ne_bytes(take::<4>(&mut data)));
    let sem = take::<8>(&mut data);
    let ref_count = take::<4>(&mut data);
    let [count] = take::<1>(&mut data);
    let ops = take::<64>(&mut data);
    let ops = &ops[..usize::from(count % 65)];
    let data_len = if flags & 1 == 0 {
        word_size = word_size % 16384 + 1;
        word_size as usize * 4
    } else {
        usize::from(u16::from_ne_bytes(take::<2>(&mut data)))
    };

    let scratch = Scratch::new();
    let base = scratch.0.join("r");
    let header_path = scratch.0.join("r-header");
    let mut data_path = scratch.0.join("r-data");
    let mut header = vec![0u8; HEADER_FILE_LEN];
    put(&mut header, WRITE_PT_OFFSET, &write_pt.to_ne_bytes());
    put(&mut header, READ_PT_OFFSET, &read_pt.to_ne_bytes());
    put(&mut header, WORD_SIZE_OFFSET, &word_size.to_ne_bytes());
    put(&mut header, SEM_OFFSET, &sem);
    put(&mut header, REF_COUNT_OFFSET, &ref_count);
    if flags & 2 != 0 {
        let name = take::<16>(&mut data);
        let mut raw = scratch.0.clone().into_os_string().into_encoded_bytes();
        raw.push(b'/');
        raw.extend(name.iter().take_while(|&&b| b != 0));
        // A path the peer chose (possibly unterminated within PATH_MAX).
        data_path = PathBuf::from(String::from_utf8_lossy(&raw).into_owned());
    }
    let path_bytes = data_path.as_os_str().as_encoded_bytes();
    put(&mut header, HDR_PATH_OFFSET, header_path.as_os_str().as_encoded_bytes());
    put(&mut header, DATA_PATH_OFFSET, &path_bytes[..path_bytes.len().min(PATH_MAX)]);
    std::fs::write(&header_path, &header).expect("header file");
    let fill: Vec<u8> = if data.is_empty() {
        vec![0; data_len]
    } else {
        data.iter().copied().cycle().take(data_len).collect()
    };
    std::fs::write(scratch.0.join("r-data"), &fill).expect("data file");

    let Ok(mut ring) = ShmRing::open(&base) else { return };
    let mut short = [0u8; 64];
    let mut long = Vec::new();
    for &op in ops {
        match op % 8 {
            0 => show(&ring.read_chunk_into(&mut short)),
            1 => show(&ring.read_chunk(&mut long)),
            2 => show(&ring.check_space(usize::from(op) * 64)),
            3 => show(&ring.write_chunk(&short[..usize::from(op >> 3)])),
            4 => show(&ring.sem().map(|s| s.try_wait())),
            5 => show(&ring.sem().map(|s| s.post())),
            6 => show(&ring.sem().map(|s| s.wait(Some(Duration::ZERO)))),
            _ => show(&Ok::<_, ShmError>((ring.flow_control(), ring.ref_count(), ring.geometry()))),
        }
    }
}

/// Formats a result both ways, so that `Display` and `Debug` of every error are exercised.
fn show<T: Debug, E: Debug + fmt::Display>(r: &Result<T, E>) {
    let _ = match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("{e} {e:?}"),
    };
}

/// The `sem_word` target: a glibc `sem_t` whose 32 bytes the peer wrote (the first bytes of
/// the input, zero-padded), then one semaphore operation per remaining byte. No operation
/// may panic, and none may block: waits have a zero timeout.
pub fn sem_word(mut data: &[u8]) {
    let word = take::<SEM_SIZE>(&mut data);
    let scratch = Scratch::new();
    let path: &Path = &scratch.0.join("sem");
    std::fs::write(path, word).expect("semaphore file");
    let map = SharedMapping::open(path).expect("map the semaphore");
    let Some(sem) = GlibcSem::new(&map, 0) else { panic!("a 32-byte semaphore at 0 fits") };
    for &op in data.iter().take(256) {
        match op % 5 {
            0 => show(&Ok::<_, SemError>(sem.try_wait())),
            1 => show(&sem.post()),
            2 => show(&sem.wait(Some(Duration::ZERO))),
            3 => show(&sem.wait(Some(Duration::from_nanos(u64::from(op))))),
            _ => show(&Ok::<_, SemError>((sem.value(), sem.waiters()))),
        }
    }
}

/// The `serve_config` target: `corowire serve --config` text (lossily UTF-8) through the
/// server's parser, then what `Server::bind` does with the keys: the quorum settings, the node
/// list, a votequorum engine on that configuration, and every key into a CMAP engine.
pub fn serve_config(data: &[u8]) {
    use corowire::server::cmap::CmapEngine;
    use corowire::server::store::BTreeStore;
    use corowire::server::votequorum::{QuorumConfig, QuorumEngine};
    use corowire::server::{ClusterView, Engine};
    use corowire_unix::server::config::parse_keys;
    use corowire_unix::server::sync::{owned_keys, quorum_setup};

    let text = String::from_utf8_lossy(data);
    let keys = match parse_keys(&text) {
        Ok(keys) => keys,
        Err(e) => {
            assert!(e.line >= 1 && e.line <= text.lines().count(), "{e}: no such line");
            return show::<(), _>(&Err(e));
        }
    };
    let (cfg, nodes) = quorum_setup(owned_keys(&keys), QuorumConfig::default());
    let quorum: QuorumEngine = QuorumEngine::new(cfg);
    let configured = QuorumEngine::<8, 16, 32, 4096>::configure(cfg, &nodes, &mut |_| {}).map(drop);
    let mut view = ClusterView::default();
    quorum.publish(&mut view);
    let mut cmap: CmapEngine<BTreeStore> = CmapEngine::new(BTreeStore::new(), BTreeStore::new(), 1);
    for (key, value) in &keys {
        show(&cmap.set_initial(key.as_bytes(), value.as_value()));
    }
    let _ = format!("{nodes:?} {view:?} {configured:?}");
}
