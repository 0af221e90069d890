//! Raw `#[repr(C)]` layouts of every libqb, CMAP and votequorum structure, byte for byte.
//!
//! The fields use zerocopy's unaligned native-endian integers, so a layout can be read from any
//! `&[u8]` (a ring chunk starts on a 4-byte boundary only) and the padding corosync gets from
//! `__attribute__((aligned(8)))` is spelled out as `_pad` fields. Sizes and offsets are checked at
//! compile time against the tables of docs/protocol.md (§4–§6, §10, §11).
//!
//! The typed, validated meaning of these layouts lives in [`crate::qb`], [`crate::cmap`] and
//! [`crate::votequorum`]; most users never touch this module.

pub mod cfg;
pub mod cmap;
pub mod qb;
pub mod quorum;
pub mod ring;
pub mod socket;
pub mod votequorum;

use zerocopy::byteorder::NativeEndian;

/// An unaligned native-endian `u16`.
pub type U16 = zerocopy::byteorder::U16<NativeEndian>;
/// An unaligned native-endian `i32`.
pub type I32 = zerocopy::byteorder::I32<NativeEndian>;
/// An unaligned native-endian `u32`.
pub type U32 = zerocopy::byteorder::U32<NativeEndian>;
/// An unaligned native-endian `u64`.
pub type U64 = zerocopy::byteorder::U64<NativeEndian>;

/// Asserts at compile time that a layout has the size and field offsets of the C struct.
macro_rules! assert_layout {
    ($ty:ty, $size:expr $(, $field:ident @ $off:expr)* $(,)?) => {
        const _: () = {
            assert!(core::mem::size_of::<$ty>() == $size);
            $(assert!(core::mem::offset_of!($ty, $field) == $off);)*
        };
    };
}
pub(crate) use assert_layout;
