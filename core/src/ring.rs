//! The libqb ring-buffer chunk format and its arithmetic, as pure functions.
//!
//! A ring's data area holds `W` 32-bit words. A chunk at word `p` is `size` (bytes, u32) at
//! `p`, a magic word at `(p + 1) % W`, then the payload from `(p + 2) % W`, wrapping at the end.
//! The shared-memory adapter reads and writes the words; this module only computes positions,
//! so every index it returns is already reduced modulo `W` and checked.
//!
//! ```
//! use corowire::ring::{Geometry, CHUNK_OVERHEAD};
//! let g = Geometry::new(4096).unwrap();           // 4096 words = 16 KiB
//! assert_eq!(g.next(0, 24).unwrap(), 8);           // 2 header words + 6 payload words
//! assert_eq!(g.free_bytes(0, 0, false), 16384);    // empty
//! assert!(g.fits(24, 0, 0, false));
//! assert_eq!(CHUNK_OVERHEAD, 12);
//! ```

use core::fmt;

pub use crate::wire::ring::{
    CHUNK_OVERHEAD, HEADER_FILE_LEN, MAGIC_ALLOC, MAGIC_DEAD, MAGIC_LIVE, REF_COUNT_OFFSET, SEM_OFFSET,
    SEM_PRIVATE_OFFSET, SEM_PRIVATE_PSHARED, USER_DATA_OFFSET,
};

/// Flow-control values the server writes into the request ring's user area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FlowControl {
    /// 0: send freely.
    Normal,
    /// 1 (`QB_IPCS_RATE_OFF`): do not send; the client reports `CS_ERR_TRY_AGAIN`.
    Off,
    /// 2 (`QB_IPCS_RATE_OFF_2`): libqb still sends; the request waits in the ring.
    Off2,
    /// Another value; treated as [`FlowControl::Normal`] by libqb.
    Other(i32),
}

impl FlowControl {
    /// The value for a raw number.
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            0 => Self::Normal,
            1 => Self::Off,
            2 => Self::Off2,
            n => Self::Other(n),
        }
    }

    /// Whether a client may send now (everything except [`FlowControl::Off`]).
    pub fn may_send(self) -> bool {
        self != Self::Off
    }
}

/// A ring position or size from shared memory that is out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RingError {
    /// `word_size` is zero or too large to address in bytes.
    BadWordSize {
        /// The value found.
        word_size: u32,
    },
    /// A read or write pointer is not below `word_size`.
    BadPosition {
        /// The pointer.
        position: u32,
        /// The ring's size in words.
        word_size: u32,
    },
    /// A chunk's size cannot fit in the ring.
    BadChunkSize {
        /// The size found.
        size: u32,
        /// The largest payload the ring can hold.
        max: usize,
    },
    /// A chunk's magic is not [`MAGIC_LIVE`] where a committed chunk was expected.
    BadMagic {
        /// The magic found.
        magic: u32,
        /// The chunk's word position.
        position: u32,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadWordSize { word_size } => write!(f, "ring word_size {word_size} is invalid"),
            Self::BadPosition { position, word_size } => {
                write!(f, "ring position {position} is outside the ring of {word_size} words")
            }
            Self::BadChunkSize { size, max } => {
                write!(f, "ring chunk size {size} exceeds the ring capacity of {max} bytes")
            }
            Self::BadMagic { magic, position } => {
                write!(f, "ring chunk at word {position} has magic {magic:#010x}, not LIVE")
            }
        }
    }
}

impl core::error::Error for RingError {}

/// The data-area size in bytes for a negotiated maximum message size:
/// `round_up(max_msg_size + 13, page_size)`. `page_size` must be a power of two.
pub fn data_bytes(max_msg_size: u32, page_size: usize) -> usize {
    let need = max_msg_size as usize + CHUNK_OVERHEAD + 1;
    need.div_ceil(page_size) * page_size
}

/// The size of a ring's data area in words, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Geometry {
    words: u32,
}

impl Geometry {
    /// Validates a `word_size` read from a ring header: non-zero, and small enough that byte
    /// offsets fit in `u32` arithmetic.
    pub fn new(word_size: u32) -> Result<Self, RingError> {
        if !(3..=u32::MAX / 4).contains(&word_size) {
            return Err(RingError::BadWordSize { word_size });
        }
        Ok(Self { words: word_size })
    }

    /// Size in words.
    pub fn words(self) -> u32 {
        self.words
    }

    /// Size in bytes.
    pub fn bytes(self) -> usize {
        self.words as usize * 4
    }

    /// Checks a read or write pointer from shared memory.
    pub fn position(self, p: u32) -> Result<u32, RingError> {
        if p < self.words {
            Ok(p)
        } else {
            Err(RingError::BadPosition { position: p, word_size: self.words })
        }
    }

    /// Word index `k` words after `p`, wrapped.
    pub fn advance(self, p: u32, k: u32) -> u32 {
        ((u64::from(p) + u64::from(k)) % u64::from(self.words)) as u32
    }

    /// The largest payload a chunk may carry in this ring.
    pub fn max_chunk(self) -> usize {
        self.bytes() - CHUNK_OVERHEAD
    }

    /// Checks a chunk size read from shared memory.
    pub fn chunk_size(self, size: u32) -> Result<usize, RingError> {
        let max = self.max_chunk();
        if (size as usize) <= max {
            Ok(size as usize)
        } else {
            Err(RingError::BadChunkSize { size, max })
        }
    }

    /// Words a chunk of `len` payload bytes occupies: 2 header words plus the payload rounded
    /// up to whole words.
    pub fn chunk_words(len: usize) -> usize {
        2 + len.div_ceil(4)
    }

    /// Position of the chunk after the one at `p` with `len` payload bytes.
    pub fn next(self, p: u32, len: usize) -> Result<u32, RingError> {
        let p = self.position(p)?;
        let size = u32::try_from(len)
            .map_err(|_| RingError::BadChunkSize { size: u32::MAX, max: self.max_chunk() })?;
        self.chunk_size(size)?;
        Ok(self.advance(p, Self::chunk_words(len) as u32))
    }

    /// Word index of the magic of the chunk at `p`.
    pub fn magic_word(self, p: u32) -> u32 {
        self.advance(p, 1)
    }

    /// Word index where the payload of the chunk at `p` begins.
    pub fn payload_word(self, p: u32) -> u32 {
        self.advance(p, 2)
    }

    /// The payload of `len` bytes at the chunk at `p`, as at most two byte ranges of the data
    /// area: up to the end, then from the start after a wrap.
    /// `len` is clamped to [`Geometry::max_chunk`], so the ranges always lie inside the area.
    pub fn payload_ranges(self, p: u32, len: usize) -> [core::ops::Range<usize>; 2] {
        let len = len.min(self.max_chunk());
        let start = self.payload_word(p) as usize * 4;
        let first = len.min(self.bytes() - start);
        [start..start + first, 0..len - first]
    }

    /// Free words for the writer (libqb's rule). `sem_nonzero` decides the ambiguous
    /// `write_pt == read_pt`: full if the semaphore holds tokens, empty otherwise.
    pub fn free_words(self, write_pt: u32, read_pt: u32, sem_nonzero: bool) -> usize {
        let (w, r, n) = (write_pt as usize, read_pt as usize, self.words as usize);
        match w.cmp(&r) {
            core::cmp::Ordering::Greater => n.saturating_sub(w - r).saturating_sub(1),
            core::cmp::Ordering::Less => (r - w - 1).min(n),
            core::cmp::Ordering::Equal if sem_nonzero => 0,
            core::cmp::Ordering::Equal => n,
        }
    }

    /// Free bytes for the writer.
    pub fn free_bytes(self, write_pt: u32, read_pt: u32, sem_nonzero: bool) -> usize {
        self.free_words(write_pt, read_pt, sem_nonzero) * 4
    }

    /// Whether a chunk of `len` payload bytes may be written now.
    pub fn fits(self, len: usize, write_pt: u32, read_pt: u32, sem_nonzero: bool) -> bool {
        self.free_bytes(write_pt, read_pt, sem_nonzero) >= len.saturating_add(CHUNK_OVERHEAD)
    }
}
