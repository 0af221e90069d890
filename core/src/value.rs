//! How CMAP values read, and (with the `alloc` feature) the one owned CMAP value.
//!
//! - `Debug` of [`Value`] shows a string as text: `String("corowire")`, not
//!   `String([99, 111, …])`. Bytes that are not UTF-8 are written as `\xNN` escapes, so the
//!   output stays exact. Binaries stay byte lists.
//! - `Display` of [`Value`] prints the value as `corosync-cmapctl` prints it after `key (type) = `
//!   (`print_key` in corosync's `tools/corosync-cmapctl.c`): integers in decimal, `flt` and `dbl`
//!   as C's `%f` (six decimals, `inf`, `-inf`, `nan`, `-nan`), a string up to its first NUL. Two
//!   deliberate differences from the C tool, which writes raw bytes: bytes of a string that are
//!   not UTF-8 become U+FFFD, and a binary prints as `corosync-cmapctl -b` shows it (printable
//!   ASCII as is, `\` doubled, other bytes `\xNN`) but without the C tool's sign extension of bytes
//!   from 0x80 up (`\x80`, where the C tool prints `\xFFFFFF80`).
//! - `OwnedValue` (feature `alloc`) is the owned counterpart of [`Value`], shared by the
//!   blocking client (`corowire_unix::cmap::OwnedValue` re-exports it), the built-in server's
//!   configuration and the command-line tool. Its `Debug` and `Display` are [`Value`]'s.

use crate::cmap::Value;
use core::fmt::{self, Write as _};

#[cfg(feature = "alloc")]
pub use self::owned::OwnedValue;

/// Bytes shown as a Rust string literal: valid UTF-8 escaped as `str`'s `Debug` does, anything
/// else as `\xNN`.
struct DebugText<'a>(&'a [u8]);

impl fmt::Debug for DebugText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                // `'` needs no escape inside a string literal.
                match c {
                    '\'' => f.write_char(c)?,
                    _ => write!(f, "{}", c.escape_debug())?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_char('"')
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int8(v) => f.debug_tuple("Int8").field(v).finish(),
            Self::UInt8(v) => f.debug_tuple("UInt8").field(v).finish(),
            Self::Int16(v) => f.debug_tuple("Int16").field(v).finish(),
            Self::UInt16(v) => f.debug_tuple("UInt16").field(v).finish(),
            Self::Int32(v) => f.debug_tuple("Int32").field(v).finish(),
            Self::UInt32(v) => f.debug_tuple("UInt32").field(v).finish(),
            Self::Int64(v) => f.debug_tuple("Int64").field(v).finish(),
            Self::UInt64(v) => f.debug_tuple("UInt64").field(v).finish(),
            Self::Float(v) => f.debug_tuple("Float").field(v).finish(),
            Self::Double(v) => f.debug_tuple("Double").field(v).finish(),
            Self::String(s) => f.debug_tuple("String").field(&DebugText(s)).finish(),
            Self::Binary(b) => f.debug_tuple("Binary").field(b).finish(),
        }
    }
}

/// C's `printf("%f", x)`: six decimals; `inf`, `nan` and their signed forms.
fn c_float(x: f64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x.is_nan() {
        write!(f, "{sign}nan")
    } else if x.is_infinite() {
        write!(f, "{sign}inf")
    } else {
        // Rust rounds the exact binary value half to even, as glibc does.
        write!(f, "{x:.6}")
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Int8(v) => write!(f, "{v}"),
            Self::UInt8(v) => write!(f, "{v}"),
            Self::Int16(v) => write!(f, "{v}"),
            Self::UInt16(v) => write!(f, "{v}"),
            Self::Int32(v) => write!(f, "{v}"),
            Self::UInt32(v) => write!(f, "{v}"),
            Self::Int64(v) => write!(f, "{v}"),
            Self::UInt64(v) => write!(f, "{v}"),
            Self::Float(v) => c_float(v.into(), f),
            Self::Double(v) => c_float(v, f),
            Self::String(s) => {
                let text = s.iter().position(|&b| b == 0).map_or(s, |n| &s[..n]);
                for chunk in text.utf8_chunks() {
                    f.write_str(chunk.valid())?;
                    if !chunk.invalid().is_empty() {
                        f.write_char(char::REPLACEMENT_CHARACTER)?;
                    }
                }
                Ok(())
            }
            Self::Binary(b) => {
                for &byte in b {
                    match byte {
                        b'\\' => f.write_str("\\\\")?,
                        0x20..=0x7e => f.write_char(char::from(byte))?,
                        _ => write!(f, "\\x{byte:02X}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(feature = "alloc")]
mod owned {
    extern crate alloc;

    use crate::cmap::{Value, ValueType};
    use alloc::vec::Vec;
    use core::fmt;

    /// A CMAP value that owns its bytes: what a GET returns, what a configuration file sets.
    ///
    /// The variants mirror `cmap_value_types_t` (`CMAP_VALUETYPE_*` in corosync's
    /// `include/corosync/cmap.h`) and [`Value`]'s. Convert with [`OwnedValue::as_value`] and
    /// `From<Value<'_>>`.
    ///
    /// ```
    /// use corowire::cmap::{Value, ValueType};
    /// use corowire::value::OwnedValue;
    /// let v = OwnedValue::from(Value::String(b"corowire"));
    /// assert_eq!(v.as_str(), Some("corowire"));
    /// assert_eq!(v.value_type(), ValueType::String);
    /// assert_eq!(format!("{v:?} {v}"), r#"String("corowire") corowire"#);
    /// ```
    #[derive(Clone, PartialEq)]
    pub enum OwnedValue {
        /// `CMAP_VALUETYPE_INT8` (1).
        Int8(i8),
        /// `CMAP_VALUETYPE_UINT8` (2).
        UInt8(u8),
        /// `CMAP_VALUETYPE_INT16` (3).
        Int16(i16),
        /// `CMAP_VALUETYPE_UINT16` (4).
        UInt16(u16),
        /// `CMAP_VALUETYPE_INT32` (5).
        Int32(i32),
        /// `CMAP_VALUETYPE_UINT32` (6).
        UInt32(u32),
        /// `CMAP_VALUETYPE_INT64` (7).
        Int64(i64),
        /// `CMAP_VALUETYPE_UINT64` (8).
        UInt64(u64),
        /// `CMAP_VALUETYPE_FLOAT` (9).
        Float(f32),
        /// `CMAP_VALUETYPE_DOUBLE` (10).
        Double(f64),
        /// `CMAP_VALUETYPE_STRING` (11): the bytes as corosync stores them (not necessarily
        /// UTF-8), without the trailing NUL. [`OwnedValue::as_str`] reads it as UTF-8.
        String(Vec<u8>),
        /// `CMAP_VALUETYPE_BINARY` (12).
        Binary(Vec<u8>),
    }

    impl OwnedValue {
        /// The value's type.
        pub fn value_type(&self) -> ValueType {
            self.as_value().value_type()
        }

        /// A string value as `&str`: `None` for another type or for bytes that are not UTF-8
        /// (the bytes are in [`OwnedValue::String`]).
        pub fn as_str(&self) -> Option<&str> {
            match self {
                Self::String(b) => core::str::from_utf8(b).ok(),
                _ => None,
            }
        }

        /// The value borrowed as the codec's [`Value`] (e.g. to SET it).
        pub fn as_value(&self) -> Value<'_> {
            match self {
                Self::Int8(v) => Value::Int8(*v),
                Self::UInt8(v) => Value::UInt8(*v),
                Self::Int16(v) => Value::Int16(*v),
                Self::UInt16(v) => Value::UInt16(*v),
                Self::Int32(v) => Value::Int32(*v),
                Self::UInt32(v) => Value::UInt32(*v),
                Self::Int64(v) => Value::Int64(*v),
                Self::UInt64(v) => Value::UInt64(*v),
                Self::Float(v) => Value::Float(*v),
                Self::Double(v) => Value::Double(*v),
                Self::String(s) => Value::String(s),
                Self::Binary(b) => Value::Binary(b),
            }
        }
    }

    impl From<Value<'_>> for OwnedValue {
        fn from(v: Value<'_>) -> Self {
            match v {
                Value::Int8(v) => Self::Int8(v),
                Value::UInt8(v) => Self::UInt8(v),
                Value::Int16(v) => Self::Int16(v),
                Value::UInt16(v) => Self::UInt16(v),
                Value::Int32(v) => Self::Int32(v),
                Value::UInt32(v) => Self::UInt32(v),
                Value::Int64(v) => Self::Int64(v),
                Value::UInt64(v) => Self::UInt64(v),
                Value::Float(v) => Self::Float(v),
                Value::Double(v) => Self::Double(v),
                Value::String(s) => Self::String(s.to_vec()),
                Value::Binary(b) => Self::Binary(b.to_vec()),
            }
        }
    }

    impl fmt::Debug for OwnedValue {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Debug::fmt(&self.as_value(), f)
        }
    }

    impl fmt::Display for OwnedValue {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(&self.as_value(), f)
        }
    }
}
