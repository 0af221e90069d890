//! The `corosync-cmapctl -p FILE` load-file format, as pure functions over the file's bytes
//! (corosync's `tools/corosync-cmapctl.c`, `read_in_config_file`): the file is read as
//! successive `fgets` calls into a 1024-byte buffer, and each piece is one line. Shared with
//! the fuzz crate, which includes this file (and `cformat.rs`) with `#[path]`.

use crate::cformat;

/// `fgets`'s buffer size in `read_in_config_file`.
pub(crate) const LINE_BUF: usize = 1024;

/// What one piece of a load file asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoadLine<'a> {
    /// A comment or blank line: nothing to do.
    Comment,
    /// `^key`: delete `key`.
    Delete(&'a [u8]),
    /// `^^prefix`: delete every key starting with `prefix`.
    DeletePrefix(&'a [u8]),
    /// `key type value`: set `key`.
    Set {
        /// The key.
        key: &'a [u8],
        /// The type name, as written (`u32`, `str`, ...).
        ty: &'a [u8],
        /// The value's text (one word).
        value: &'a [u8],
    },
    /// A key without a type or value (`None`: the line has no key at all, printed by the C
    /// tool as `(null)`); the C tool stops with an error.
    Incomplete(Option<&'a [u8]>),
}

/// Splits `data` as successive `fgets(buf, size, f)` calls would: pieces of at most
/// `size - 1` bytes, each ending after a newline if one comes first. `size` must be at
/// least 2.
pub(crate) fn fgets_chunks(data: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let max = rest.len().min(size - 1);
        let end = rest[..max].iter().position(|&b| b == b'\n').map_or(max, |n| n + 1);
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

/// Parses one piece `fgets` returned. Blanks are skipped; `#` or a newline make the line a
/// comment, anything else starts it (including a NUL, which yields an empty line, as in C);
/// the line ends at its first NUL and splits into words at spaces and newlines.
pub(crate) fn parse_line(chunk: &[u8]) -> LoadLine<'_> {
    let start = chunk.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(chunk.len());
    if matches!(chunk.get(start), Some(b'#' | b'\n')) {
        return LoadLine::Comment;
    }
    let line = cformat::c_str(&chunk[start..]);
    let mut tokens = line.split(|&b| b == b' ' || b == b'\n').filter(|t| !t.is_empty());
    let key = tokens.next();
    match key {
        Some(k) if k.first() == Some(&b'^') => match k.strip_prefix(b"^^") {
            Some(prefix) => LoadLine::DeletePrefix(prefix),
            None => LoadLine::Delete(&k[1..]),
        },
        _ => match (key, tokens.next(), tokens.next()) {
            (Some(key), Some(ty), Some(value)) => LoadLine::Set { key, ty, value },
            _ => LoadLine::Incomplete(key),
        },
    }
}

/// The lines of a whole load file.
pub(crate) fn lines(data: &[u8]) -> impl Iterator<Item = LoadLine<'_>> {
    fgets_chunks(data, LINE_BUF).map(parse_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fgets_splits() {
        let chunks: Vec<&[u8]> = fgets_chunks(b"ab\ncdefg\nh", 4).collect();
        assert_eq!(chunks, vec![&b"ab\n"[..], b"cde", b"fg\n", b"h"]);
    }

    #[test]
    fn lines_parse() {
        let parsed: Vec<LoadLine<'_>> =
            lines(b"  # c\n\n^a.b\n^^a.\nk u8 1 extra\n\tk\n\0x u8 1\nk\tu8 1\nk  str  v\n").collect();
        assert_eq!(
            parsed,
            [
                LoadLine::Comment,
                LoadLine::Comment,
                LoadLine::Delete(b"a.b"),
                LoadLine::DeletePrefix(b"a."),
                LoadLine::Set { key: b"k", ty: b"u8", value: b"1" },
                LoadLine::Incomplete(Some(b"k")),
                LoadLine::Incomplete(None),
                // Blanks before the key are skipped, but only spaces split words.
                LoadLine::Incomplete(Some(b"k\tu8")),
                LoadLine::Set { key: b"k", ty: b"str", value: b"v" },
            ]
        );
    }
}
