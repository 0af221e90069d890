//! C-compatible formatting and parsing: what `printf("%f")`, `sscanf("%ld")`, `strtoll` and
//! `perror` do in glibc, so that the work-alike tools print and accept exactly the same.

use std::io;

use corowire::CsError;

/// `cs_strerror`: the error's C name, or `unknown error`.
pub(crate) fn cs_strerror(e: CsError) -> &'static str {
    e.name().unwrap_or("unknown error")
}

/// `corosync-cmapctl`'s escaping of a binary value: printable ASCII as is, `\` doubled, other
/// bytes as `\xNN`. The C code passes a (signed) `char` to `%02X`, so bytes from 0x80 up print
/// sign-extended, e.g. `\xFFFFFF80`; that is kept.
pub(crate) fn escape_binary(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{:02X}", i32::from(b as i8) as u32).as_bytes()),
        }
    }
}

/// The bytes of a C string: everything before the first NUL (`printf("%s")`).
pub(crate) fn c_str(bytes: &[u8]) -> &[u8] {
    bytes.iter().position(|&b| b == 0).map_or(bytes, |n| &bytes[..n])
}

/// glibc's `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Splits leading whitespace, an optional sign and the decimal digits off `s`:
/// `(negative, digits, rest)`.
fn split_decimal(s: &[u8]) -> (bool, &[u8], &[u8]) {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    let mut s = &s[start..];
    let mut negative = false;
    if let Some((&sign @ (b'+' | b'-'), rest)) = s.split_first() {
        negative = sign == b'-';
        s = rest;
    }
    let n = s.iter().position(|b| !b.is_ascii_digit()).unwrap_or(s.len());
    (negative, &s[..n], &s[n..])
}

/// The magnitude of a digit string, or `None` on overflow of `u64`.
fn magnitude(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// `strtoll(s, &end, 10)`: the value (clamped on overflow, with `overflow` set) and the rest.
/// `None` if no digits were found.
fn strtoll(s: &[u8]) -> Option<(i64, bool, &[u8])> {
    let (negative, digits, rest) = split_decimal(s);
    if digits.is_empty() {
        return None;
    }
    let (value, overflow) = match magnitude(digits) {
        Some(m) if negative && m <= i64::MAX as u64 + 1 => (0i64.wrapping_sub_unsigned(m), false),
        Some(m) if !negative && m <= i64::MAX as u64 => (m as i64, false),
        _ if negative => (i64::MIN, true),
        _ => (i64::MAX, true),
    };
    Some((value, overflow, rest))
}

/// `sscanf(s, "%" PRId64, &v) == 1`: leading whitespace and a sign allowed, trailing garbage
/// ignored, out-of-range values clamped.
pub(crate) fn scan_i64(s: &[u8]) -> Option<i64> {
    strtoll(s).map(|(v, ..)| v)
}

/// `sscanf(s, "%" PRIu64, &v) == 1`: as `strtoull`, so `-1` is `u64::MAX` and out-of-range
/// values are clamped to `u64::MAX`.
pub(crate) fn scan_u64(s: &[u8]) -> Option<u64> {
    let (negative, digits, _) = split_decimal(s);
    if digits.is_empty() {
        return None;
    }
    Some(match magnitude(digits) {
        None => u64::MAX,
        Some(m) if negative => m.wrapping_neg(),
        Some(m) => m,
    })
}

/// `util_strtonum` of the corosync tools: the whole string must be a decimal `long long` in
/// `min..=max`.
pub(crate) fn strtonum(s: &[u8], min: i64, max: i64) -> Option<i64> {
    match strtoll(s) {
        Some((v, false, rest)) if rest.is_empty() && (min..=max).contains(&v) => Some(v),
        _ => None,
    }
}

/// `sscanf(s, "%lf", &v) == 1` (with `%f` the result is then rounded to `f32` by the caller via
/// [`scan_f32`]). Accepts what glibc's scanf accepts: decimal with optional exponent, `inf`,
/// `infinity`, `nan`, `nan(...)` and hexadecimal floats; a dangling exponent (`1e`) is a
/// ignored, as in glibc.
pub(crate) fn scan_f64(s: &[u8]) -> Option<f64> {
    scan_float(s, |t| t.parse::<f64>().ok())
}

/// `sscanf(s, "%f", &v) == 1`, rounding directly to `f32` as `strtof` does.
pub(crate) fn scan_f32(s: &[u8]) -> Option<f32> {
    scan_float(s, |t| t.parse::<f32>().ok())
}

fn scan_float<T: Copy + core::ops::Neg<Output = T> + From<f32>>(
    s: &[u8],
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    let mut s = &s[start..];
    let mut negative = false;
    if let Some((&sign @ (b'+' | b'-'), rest)) = s.split_first() {
        negative = sign == b'-';
        s = rest;
    }
    let sign = |v: T| if negative { -v } else { v };
    let lower: Vec<u8> = s.iter().take(8).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"nan") {
        return Some(sign(T::from(f32::NAN)));
    }
    if lower.starts_with(b"inf") {
        return Some(sign(T::from(f32::INFINITY)));
    }
    if lower.starts_with(b"0x") {
        return scan_hex_float(&s[2..]).map(|v| sign(parse(&format!("{v:e}")).unwrap_or(T::from(0.0))));
    }
    let int_len = s.iter().position(|b| !b.is_ascii_digit()).unwrap_or(s.len());
    let (int, mut rest) = s.split_at(int_len);
    let mut frac: &[u8] = b"";
    if let Some((b'.', r)) = rest.split_first() {
        let n = r.iter().position(|b| !b.is_ascii_digit()).unwrap_or(r.len());
        frac = &r[..n];
        rest = &r[n..];
    }
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut exp = String::new();
    if let Some((b'e' | b'E', r)) = rest.split_first() {
        // A dangling exponent ("1e", "1e+") is ignored, as glibc's scanf does.
        let (eneg, digits, _) = split_decimal_no_space(r);
        if !digits.is_empty() {
            exp = format!("e{}{}", if eneg { "-" } else { "" }, String::from_utf8_lossy(digits));
        }
    }
    let text = format!(
        "{}.{}{}",
        if int.is_empty() { "0" } else { core::str::from_utf8(int).ok()? },
        if frac.is_empty() { "0" } else { core::str::from_utf8(frac).ok()? },
        exp
    );
    parse(&text).map(sign)
}

/// Like [`split_decimal`] but without skipping whitespace (for exponents).
fn split_decimal_no_space(s: &[u8]) -> (bool, &[u8], &[u8]) {
    match s.first() {
        Some(b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') => (false, b"", s),
        _ => split_decimal(s),
    }
}

/// A hexadecimal float after its `0x`: `h.hhhp[+-]d` (the exponent is optional).
fn scan_hex_float(s: &[u8]) -> Option<f64> {
    let mut mantissa = 0f64;
    let mut scale = 0i32;
    let mut any = false;
    let mut seen_dot = false;
    let mut rest = s;
    while let Some((&b, r)) = rest.split_first() {
        if b == b'.' && !seen_dot {
            seen_dot = true;
        } else if let Some(d) = char::from(b).to_digit(16) {
            any = true;
            mantissa = mantissa * 16.0 + f64::from(d);
            if seen_dot {
                scale -= 4;
            }
        } else {
            break;
        }
        rest = r;
    }
    if !any {
        // glibc's scanf fails on a "0x" without digits.
        return None;
    }
    if let Some((b'p' | b'P', r)) = rest.split_first() {
        let (neg, digits, _) = split_decimal_no_space(r);
        if digits.is_empty() {
            return Some(mantissa * 2f64.powi(scale));
        }
        let e = magnitude(digits).map_or(i32::MAX, |m| i32::try_from(m).unwrap_or(i32::MAX));
        scale = scale.saturating_add(if neg { -e } else { e });
    }
    Some(mantissa * 2f64.powi(scale))
}

/// The text `perror` prints for an I/O error (glibc's `strerror`, without Rust's
/// ` (os error N)` suffix).
pub(crate) fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text).to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_escapes() {
        let mut out = Vec::new();
        escape_binary(b"a\\\x01\x7f\x80\xff", &mut out);
        assert_eq!(out, b"a\\\\\\x01\\x7F\\xFFFFFF80\\xFFFFFFFF");
    }

    #[test]
    fn integers_scan_like_sscanf() {
        assert_eq!(scan_i64(b"  -12abc"), Some(-12));
        assert_eq!(scan_i64(b"+7"), Some(7));
        assert_eq!(scan_i64(b"-"), None);
        assert_eq!(scan_i64(b""), None);
        assert_eq!(scan_i64(b"99999999999999999999"), Some(i64::MAX));
        assert_eq!(scan_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(scan_u64(b"-1"), Some(u64::MAX));
        assert_eq!(scan_u64(b"18446744073709551616"), Some(u64::MAX));
        assert_eq!(strtonum(b"3", 1, 10), Some(3));
        assert_eq!(strtonum(b" 3", 1, 10), Some(3));
        assert_eq!(strtonum(b"3 ", 1, 10), None);
        assert_eq!(strtonum(b"0", 1, 10), None);
    }

    #[test]
    fn floats_scan_like_sscanf() {
        assert_eq!(scan_f64(b"1.5xyz"), Some(1.5));
        assert_eq!(scan_f64(b".5"), Some(0.5));
        assert_eq!(scan_f64(b"5."), Some(5.0));
        assert_eq!(scan_f64(b"1e3"), Some(1000.0));
        assert_eq!(scan_f64(b"1e"), Some(1.0));
        assert_eq!(scan_f64(b"1.e+"), Some(1.0));
        assert_eq!(scan_f64(b"0x"), None);
        assert_eq!(scan_f64(b"0x1p"), Some(1.0));
        assert_eq!(scan_f64(b"0x1.8p1"), Some(3.0));
        assert_eq!(scan_f64(b"in"), None);
        assert_eq!(scan_f64(b"."), None);
        assert_eq!(scan_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert!(scan_f64(b"nan").is_some_and(f64::is_nan));
        assert_eq!(scan_f64(b"0x1p3"), Some(8.0));
        assert_eq!(scan_f32(b"2.71"), Some(2.71f32));
    }
}
