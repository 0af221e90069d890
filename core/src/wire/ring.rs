//! The libqb shared-memory ring: the header file's layout (`struct qb_ringbuffer_shared_s`,
//! libqb `lib/ringbuffer_int.h`), the chunk magics, and the layout of the glibc `sem_t` that
//! libqb keeps in the header (glibc `sysdeps/nptl/internaltypes.h`, `struct new_sem`, 64-bit).
//!
//! The header is shared memory that both sides change with atomics, so it is never read as one
//! zerocopy struct: [`RingHeader`] pins the offsets, and the adapter accesses each field
//! at its `*_OFFSET` with an atomic of the field's width.

use super::{assert_layout, qb::PATH_MAX, I32, U32, U64};
use core::mem::offset_of;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `struct qb_ringbuffer_shared_s` up to the user area: the ring header file (8248 bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RingHeader {
    /// Word index of the next chunk to write.
    pub write_pt: U32,
    /// Word index of the oldest unread chunk.
    pub read_pt: U32,
    /// Data area size in 32-bit words.
    pub word_size: U32,
    /// Absolute path of the header file, NUL-terminated.
    pub hdr_path: [u8; PATH_MAX],
    /// Absolute path of the data file, NUL-terminated.
    pub data_path: [u8; PATH_MAX],
    /// Number of processes that have the ring open.
    pub ref_count: I32,
    /// glibc `sem_t`: `data` (value | nwaiters << 32).
    pub sem_data: U64,
    /// glibc `sem_t`: `private` (128 when process-shared).
    pub sem_private: U32,
    /// glibc `sem_t`: unused tail.
    pub _sem_pad: [u8; 20],
    /// Start of the user area: on the request ring, the server's flow-control value.
    pub user_data: I32,
    /// Padding to the struct's 8-byte alignment (the file has 4 more user bytes after it).
    pub _pad: [u8; 4],
}
assert_layout!(
    RingHeader,
    8248,
    write_pt @ 0,
    read_pt @ 4,
    word_size @ 8,
    hdr_path @ 12,
    data_path @ 4108,
    ref_count @ 8204,
    sem_data @ 8208,
    sem_private @ 8216,
    user_data @ 8240,
);

/// Byte offset of `write_pt` in the ring header.
pub const WRITE_PT_OFFSET: usize = offset_of!(RingHeader, write_pt);
/// Byte offset of `read_pt`.
pub const READ_PT_OFFSET: usize = offset_of!(RingHeader, read_pt);
/// Byte offset of `word_size`.
pub const WORD_SIZE_OFFSET: usize = offset_of!(RingHeader, word_size);
/// Byte offset of `hdr_path` (`char[PATH_MAX]`).
pub const HDR_PATH_OFFSET: usize = offset_of!(RingHeader, hdr_path);
/// Byte offset of `data_path` (`char[PATH_MAX]`).
pub const DATA_PATH_OFFSET: usize = offset_of!(RingHeader, data_path);
/// Byte offset of `ref_count`.
pub const REF_COUNT_OFFSET: usize = offset_of!(RingHeader, ref_count);
/// Byte offset of the glibc semaphore's 64-bit `data` word.
pub const SEM_OFFSET: usize = offset_of!(RingHeader, sem_data);
/// Byte offset of the semaphore's `private` word.
pub const SEM_PRIVATE_OFFSET: usize = offset_of!(RingHeader, sem_private);
/// Byte offset of the user area; on the request ring, the flow-control value.
pub const USER_DATA_OFFSET: usize = offset_of!(RingHeader, user_data);
/// `sizeof(struct qb_ringbuffer_shared_s)`: the smallest header file a client can use.
pub const HEADER_STRUCT_LEN: usize = size_of::<RingHeader>();
/// Size of the header file the server creates: `sizeof` the struct plus 4 bytes of user data
/// (libqb passes `sizeof(int32_t)` as the user-data size).
pub const HEADER_FILE_LEN: usize = HEADER_STRUCT_LEN + 4;

/// Magic of a committed, readable chunk.
pub const MAGIC_LIVE: u32 = 0xA1A1_A1A1;
/// Magic of a chunk reclaimed by the reader.
pub const MAGIC_DEAD: u32 = 0xD0D0_D0D0;
/// Magic of a chunk being written.
pub const MAGIC_ALLOC: u32 = 0xA110_CED0;
/// Bytes a chunk needs beyond its payload for the writer's free-space test: the size and
/// magic words, and one more word that keeps a full ring distinguishable from an empty one.
pub const CHUNK_OVERHEAD: usize = 12;

/// Size of glibc's `sem_t` on 64-bit targets.
pub const SEM_SIZE: usize = 32;
/// Offset, inside the `sem_t`, of the `u32` value half of its first `u64` (the futex word);
/// the other half counts registered waiters.
pub const SEM_VALUE_FIELD: usize = if cfg!(target_endian = "little") { 0 } else { 4 };
/// Bit position of the waiter count in the semaphore's first `u64`.
pub const SEM_NWAITERS_SHIFT: u32 = 32;
/// Offset, inside the `sem_t`, of glibc's `private` field.
pub const SEM_PRIVATE_FIELD: usize = 8;
/// `private` value of a process-shared glibc semaphore (glibc uses shared futexes for it).
pub const SEM_PRIVATE_PSHARED: u32 = 128;
/// glibc's `SEM_VALUE_MAX` (`INT_MAX`).
pub const SEM_VALUE_MAX: u32 = 0x7fff_ffff;

const _: () = {
    assert!(SEM_OFFSET + SEM_PRIVATE_FIELD == SEM_PRIVATE_OFFSET);
    assert!(USER_DATA_OFFSET - SEM_OFFSET == SEM_SIZE);
};
