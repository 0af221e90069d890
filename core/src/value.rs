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
//!   configuration and the command-line tool. Both are [`TypedValue`], so they share their
//!   methods, `Debug` and `Display`.

use crate::cmap::TypedValue;
#[cfg(doc)]
use crate::cmap::Value;
use core::fmt::{self, Write as _};

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

impl<B: AsRef<[u8]>> fmt::Debug for TypedValue<B> {
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
            Self::String(s) => f.debug_tuple("String").field(&DebugText(s.as_ref())).finish(),
            Self::Binary(b) => f.debug_tuple("Binary").field(&b.as_ref()).finish(),
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

impl<B: AsRef<[u8]>> fmt::Display for TypedValue<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_value() {
            TypedValue::Int8(v) => write!(f, "{v}"),
            TypedValue::UInt8(v) => write!(f, "{v}"),
            TypedValue::Int16(v) => write!(f, "{v}"),
            TypedValue::UInt16(v) => write!(f, "{v}"),
            TypedValue::Int32(v) => write!(f, "{v}"),
            TypedValue::UInt32(v) => write!(f, "{v}"),
            TypedValue::Int64(v) => write!(f, "{v}"),
            TypedValue::UInt64(v) => write!(f, "{v}"),
            TypedValue::Float(v) => c_float(v.into(), f),
            TypedValue::Double(v) => c_float(v, f),
            TypedValue::String(s) => {
                let text = s.iter().position(|&b| b == 0).map_or(s, |n| &s[..n]);
                for chunk in text.utf8_chunks() {
                    f.write_str(chunk.valid())?;
                    if !chunk.invalid().is_empty() {
                        f.write_char(char::REPLACEMENT_CHARACTER)?;
                    }
                }
                Ok(())
            }
            TypedValue::Binary(b) => {
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
extern crate alloc;

/// A CMAP value that owns its bytes: what a GET returns, what a configuration file sets.
///
/// It is [`TypedValue`] with `Vec<u8>` bytes, so it has `Value`'s variants and
/// methods.
/// Convert with [`TypedValue::as_value`] and `From<Value<'_>>`.
///
/// ```
/// use corowire::cmap::{Value, ValueType};
/// use corowire::value::OwnedValue;
/// let v = OwnedValue::from(Value::String(b"corowire"));
/// assert_eq!(v.as_str(), Some("corowire"));
/// assert_eq!(v.value_type(), ValueType::String);
/// assert_eq!(format!("{v:?} {v}"), r#"String("corowire") corowire"#);
/// ```
#[cfg(feature = "alloc")]
pub type OwnedValue = TypedValue<alloc::vec::Vec<u8>>;

#[cfg(feature = "alloc")]
impl From<TypedValue<&[u8]>> for OwnedValue {
    fn from(v: TypedValue<&[u8]>) -> Self {
        v.map_bytes(|b| b.to_vec())
    }
}
