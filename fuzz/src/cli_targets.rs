//! The bodies of the fuzz targets over the CLI's parsers of user bytes (`corowire cmap -p`
//! load files and the value scanners of `-p` and `-s`), as plain functions over `&[u8]`.
//!
//! The CLI is a binary crate: this crate includes its `cformat.rs` and `loadfile.rs` with
//! `#[path]` at its root (so their `crate::cformat` resolves), and so does
//! `cli/tests/corpus_replay.rs`, which replays the committed seeds in `cargo test`.

use crate::cformat;
use crate::loadfile::{self, LoadLine};

/// The `cli_load` target: a whole `-p` load file. The `fgets` pieces must cover the input
/// exactly, none longer than the C tool's buffer allows; every value of a `key type value`
/// line goes through every scanner `set_key` may pick, and every `bin` file name and string
/// through the escaping the listing uses.
pub fn cli_load(data: &[u8]) {
    let mut covered = 0;
    for piece in loadfile::fgets_chunks(data, loadfile::LINE_BUF) {
        assert!(!piece.is_empty() && piece.len() < loadfile::LINE_BUF, "piece of {} bytes", piece.len());
        assert_eq!(piece, &data[covered..covered + piece.len()], "pieces out of order");
        covered += piece.len();
        match loadfile::parse_line(piece) {
            LoadLine::Set { key, ty, value } => {
                for word in [key, ty, value] {
                    assert!(!word.is_empty() && !word.contains(&b' ') && !word.contains(&0), "{word:?}");
                }
                values(value);
            }
            LoadLine::Delete(k) | LoadLine::DeletePrefix(k) => assert!(!k.contains(&0)),
            LoadLine::Incomplete(_) | LoadLine::Comment => {}
        }
    }
    assert_eq!(covered, data.len(), "pieces do not cover the input");
}

/// The `cli_value` target: one value text through every scanner (`i8`..`u64` via the
/// 64-bit ones, `flt`, `dbl`), `strtonum` over a few ranges, and the binary escaping.
pub fn cli_value(data: &[u8]) {
    values(data);
    for (min, max) in [(0, 255), (i64::MIN, i64::MAX), (-1, 1), (1, 0)] {
        if let Some(n) = cformat::strtonum(data, min, max) {
            assert!((min..=max).contains(&n), "strtonum gave {n} outside {min}..={max}");
        }
    }
}

/// Every scanner on `text`, the escaping and the C-string cut; none may panic.
fn values(text: &[u8]) {
    let mut escaped = Vec::new();
    cformat::escape_binary(text, &mut escaped);
    let _ = cformat::c_str(text);
    let _ = (cformat::scan_i64(text), cformat::scan_u64(text));
    let _ = (cformat::scan_f32(text).map(|f| f.to_string()), cformat::scan_f64(text).map(|f| f.to_string()));
}
