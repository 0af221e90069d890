//! The server's configuration file: CMAP keys in `corosync-cmapctl -p` form, some of which
//! also configure the quorum model.
//!
//! # Format
//!
//! One entry per line; blank lines and lines starting with `#` are ignored:
//!
//! ```text
//! # key                      type  value
//! totem.cluster_name         str   demo cluster
//! totem.nodeid               u32   1
//! quorum.expected_votes      u32   3
//! quorum.two_node            u8    0
//! uidgid.uid.1000            u8    1
//! ```
//!
//! - `type` is a `corosync-cmapctl` type name: `i8`, `u8`, `i16`, `u16`, `i32`, `u32`, `i64`,
//!   `u64`, `flt`, `dbl` or `str`. Fields are separated by blanks (spaces or
//!   tabs, any number, so columns may be aligned); a `str` value is the rest of the line
//!   after the blanks that follow the type (it may contain spaces; it may be empty).
//! - Every entry becomes a key of the default CMAP map (configuration keys may be read-only
//!   for clients, as in corosync).
//! - The `quorum.*`, `totem.nodeid` and `nodelist.node.<i>.*` keys also configure the quorum
//!   model, as corosync reads them ([`super::sync::quorum_setup`]).
//!
//! Unlike `corosync-cmapctl -p`, whose `str` value is a single word, a `str` value here is
//! the rest of the line, and there are no `^key` deletions.

use core::fmt;
use std::path::Path;

use corowire::cmap::ValueType;

use corowire::value::OwnedValue;

/// A configuration line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number (0: the file could not be read).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl core::error::Error for ConfigError {}

/// Parses one value of type `ty` from `text`.
fn parse_value(ty: ValueType, text: &str) -> Result<OwnedValue, String> {
    fn num<T: core::str::FromStr>(text: &str, ty: ValueType) -> Result<T, String> {
        text.trim().parse().map_err(|_| format!("'{text}' is not a valid {} value", ty.cmapctl_name()))
    }
    Ok(match ty {
        ValueType::Int8 => OwnedValue::Int8(num(text, ty)?),
        ValueType::UInt8 => OwnedValue::UInt8(num(text, ty)?),
        ValueType::Int16 => OwnedValue::Int16(num(text, ty)?),
        ValueType::UInt16 => OwnedValue::UInt16(num(text, ty)?),
        ValueType::Int32 => OwnedValue::Int32(num(text, ty)?),
        ValueType::UInt32 => OwnedValue::UInt32(num(text, ty)?),
        ValueType::Int64 => OwnedValue::Int64(num(text, ty)?),
        ValueType::UInt64 => OwnedValue::UInt64(num(text, ty)?),
        ValueType::Float => OwnedValue::Float(num(text, ty)?),
        ValueType::Double => OwnedValue::Double(num(text, ty)?),
        ValueType::String => OwnedValue::String(text.into()),
        ValueType::Binary => return Err("binary values cannot be configured".into()),
    })
}

/// Parses configuration text (see the [module documentation](self)) into CMAP keys.
///
/// # Errors
/// The first malformed line.
pub fn parse_keys(text: &str) -> Result<Vec<(String, OwnedValue)>, ConfigError> {
    let mut keys = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |reason: String| ConfigError { line: i + 1, reason };
        let (key, rest) = split_word(line);
        let (ty, value) = split_word(rest);
        if key.is_empty() || ty.is_empty() {
            return Err(error("expected 'key type value'".into()));
        }
        let ty = ValueType::ALL
            .into_iter()
            .find(|t| t.cmapctl_name() == ty)
            .ok_or_else(|| error(format!("unknown type '{ty}'")))?;
        // The value is the rest of the line after the type and the blanks that follow it.
        let value = parse_value(ty, value.trim_end_matches(['\r', '\n'])).map_err(error)?;
        keys.push((key.to_owned(), value));
    }
    Ok(keys)
}

/// Splits off the first blank-separated word of `s`; the rest starts after the blanks.
fn split_word(s: &str) -> (&str, &str) {
    s.split_once([' ', '\t']).map_or((s, ""), |(word, rest)| (word, rest.trim_start_matches([' ', '\t'])))
}

/// The largest configuration file [`load_keys`] reads: 1 MiB, as `--corosync-conf`'s
/// ([`super::corosync_conf::MAX_FILE_LEN`]).
pub const MAX_KEYS_FILE_LEN: usize = super::corosync_conf::MAX_FILE_LEN;

/// Reads a configuration file with [`parse_keys`]: a regular file (or a symlink to one) of at
/// most [`MAX_KEYS_FILE_LEN`] bytes of UTF-8.
///
/// # Errors
/// The file cannot be read, is not a regular file (a FIFO, directory, device or socket is
/// refused at once, without waiting for a writer), is larger than [`MAX_KEYS_FILE_LEN`], is
/// not UTF-8, or a line is malformed (line 0 for the file-level errors).
pub fn load_keys(path: &Path) -> Result<Vec<(String, OwnedValue)>, ConfigError> {
    let error = |why: String| ConfigError { line: 0, reason: format!("{}: {why}", path.display()) };
    let bytes = read_regular_file(path, MAX_KEYS_FILE_LEN).map_err(|e| error(e.to_string()))?;
    if bytes.len() > MAX_KEYS_FILE_LEN {
        return Err(error(format!("larger than {MAX_KEYS_FILE_LEN} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|e| error(e.to_string()))?;
    parse_keys(&text)
}

/// Why [`read_regular_file`] read nothing.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum FileError {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// It is not a regular file: `kind` says what it is ("a FIFO", "a directory", ...).
    NotAFile {
        /// What it is.
        kind: &'static str,
    },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::NotAFile { kind } => write!(f, "it is {kind}, not a regular file"),
        }
    }
}

impl core::error::Error for FileError {}

/// Reads at most `limit + 1` bytes of the regular file at `path` (one more than the limit,
/// so the caller can tell a file that is too large). The file is opened with `O_NONBLOCK`, so
/// a FIFO does not wait for a writer, and what it is is checked on the opened file (a swap
/// between a check and the open cannot matter).
///
/// # Errors
/// [`FileError::Io`], or [`FileError::NotAFile`] for a FIFO, directory, device or socket.
pub(crate) fn read_regular_file(path: &Path, limit: usize) -> Result<Vec<u8>, FileError> {
    use std::io::Read as _;
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(FileError::Io)?;
    let file_type = file.metadata().map_err(FileError::Io)?.file_type();
    if !file_type.is_file() {
        let kind = if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_dir() {
            "a directory"
        } else if file_type.is_char_device() {
            "a character device"
        } else if file_type.is_block_device() {
            "a block device"
        } else {
            "a socket"
        };
        return Err(FileError::NotAFile { kind });
    }
    let mut bytes = Vec::new();
    let limit = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit).read_to_end(&mut bytes).map_err(FileError::Io)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--config /dev/zero` grew without bound, and a FIFO blocked for a writer.
    #[test]
    fn only_bounded_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("corowire-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let big = dir.join("big");
        std::fs::write(&big, vec![b'#'; MAX_KEYS_FILE_LEN + 1]).unwrap();
        let why = |path: &Path| load_keys(path).unwrap_err().reason;
        assert!(why(&fifo).ends_with("it is a FIFO, not a regular file"), "{}", why(&fifo));
        assert!(why(Path::new("/dev/zero")).ends_with("it is a character device, not a regular file"));
        assert!(why(&dir).ends_with("it is a directory, not a regular file"));
        assert!(why(&big).ends_with(&format!("larger than {MAX_KEYS_FILE_LEN} bytes")));
        std::fs::write(&big, "quorum.expected_votes u32 3\n").unwrap();
        assert_eq!(load_keys(&big).unwrap(), [("quorum.expected_votes".to_owned(), OwnedValue::UInt32(3))]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_documented_example_with_aligned_columns_parses() {
        let text = "# key   type value\ntotem.cluster_name         str   demo cluster\n\
                    quorum.expected_votes\tu32\t3\n";
        let keys = parse_keys(text).unwrap();
        assert_eq!(keys[0], ("totem.cluster_name".to_owned(), OwnedValue::String("demo cluster".into())));
        assert_eq!(keys[1], ("quorum.expected_votes".to_owned(), OwnedValue::UInt32(3)));
    }

    #[test]
    fn lines_parse_like_cmapctl_p() {
        let keys = parse_keys(
            "# comment\n\ntotem.cluster_name str my cluster \nquorum.expected_votes u32 3\n\
             x.f flt 1.5\nx.e str\nquorum.two_node\tu8\t1\n",
        )
        .unwrap();
        assert_eq!(
            keys,
            vec![
                ("totem.cluster_name".into(), OwnedValue::String("my cluster ".into())),
                ("quorum.expected_votes".into(), OwnedValue::UInt32(3)),
                ("x.f".into(), OwnedValue::Float(1.5)),
                ("x.e".into(), OwnedValue::String(Vec::new())),
                ("quorum.two_node".into(), OwnedValue::UInt8(1)),
            ]
        );
    }

    #[test]
    fn bad_lines_name_their_line() {
        assert_eq!(parse_keys("a.b u32 x").unwrap_err().line, 1);
        assert_eq!(parse_keys("\na.b").unwrap_err().line, 2);
        assert!(parse_keys("a.b u8 256").unwrap_err().reason.contains("u8"));
        assert!(parse_keys("a.b wat 1").unwrap_err().reason.contains("unknown type"));
        assert!(parse_keys("a.b bin 00").is_err());
    }
}
