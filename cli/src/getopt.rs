//! A small re-implementation of glibc's `getopt(3)` (short options only), so that the
//! `cmap` and `quorum` commands accept exactly what the C tools accept and fail the same way.
//!
//! Behaviour mirrored from glibc:
//! - options may be grouped (`-bg`), and an option's argument may be attached (`-mstats`) or be
//!   the next word (`-m stats`), even if that word starts with `-`;
//! - operands may come before, between or after options (GNU permutation), unless
//!   `POSIXLY_CORRECT` is set, in which case the first operand ends the options;
//! - `--` ends the options; a lone `-` is an operand;
//! - errors are printed on stderr as `PROG: invalid option -- 'c'` and
//!   `PROG: option requires an argument -- 'c'`.

use std::ffi::OsString;

/// One item produced by [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Opt {
    /// An option character, with its argument if the option takes one.
    Flag(char, Option<OsString>),
    /// An unknown option or a missing argument: the message has already been printed, and the
    /// C tools stop parsing here (what they do next is up to the caller).
    Error,
}

/// The options (in order, stopping after the first error) and the operands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Options in command-line order.
    pub(crate) opts: Vec<Opt>,
    /// The operands, in command-line order.
    pub(crate) operands: Vec<OsString>,
}

/// How `optstring` declares `c`: `None` if unknown, `Some(true)` if it takes an argument.
fn lookup(optstring: &str, c: char) -> Option<bool> {
    if c == ':' {
        return None;
    }
    let pos = optstring.find(c)?;
    Some(optstring[pos + c.len_utf8()..].starts_with(':'))
}

/// Parses `args` (without the program name) against `optstring` as glibc's `getopt` does,
/// printing errors with `prog` as the program name.
pub(crate) fn parse(prog: &str, optstring: &str, args: &[OsString]) -> Parsed {
    let posix = std::env::var_os("POSIXLY_CORRECT").is_some();
    let mut opts = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_encoded_bytes();
        i += 1;
        if arg == b"--" {
            operands.extend(args[i..].iter().cloned());
            break;
        }
        if arg.len() < 2 || arg[0] != b'-' {
            operands.push(args[i - 1].clone());
            if posix {
                operands.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        }
        let mut pos = 1;
        while pos < arg.len() {
            let c = char::from(arg[pos]);
            pos += 1;
            match lookup(optstring, c).filter(|_| arg[pos - 1].is_ascii()) {
                None => {
                    invalid_option(prog, arg[pos - 1]);
                    opts.push(Opt::Error);
                    return Parsed { opts, operands };
                }
                Some(false) => opts.push(Opt::Flag(c, None)),
                Some(true) => {
                    let value = if pos < arg.len() {
                        Some(bytes_to_os(&arg[pos..]))
                    } else if i < args.len() {
                        i += 1;
                        Some(args[i - 1].clone())
                    } else {
                        eprintln!("{prog}: option requires an argument -- '{c}'");
                        opts.push(Opt::Error);
                        return Parsed { opts, operands };
                    };
                    opts.push(Opt::Flag(c, value));
                    break;
                }
            }
        }
    }
    Parsed { opts, operands }
}

/// Prints glibc's message for an unknown option byte (the raw byte, as `%c` does).
fn invalid_option(prog: &str, b: u8) {
    use std::io::Write;
    let mut msg = format!("{prog}: invalid option -- '").into_bytes();
    msg.push(b);
    msg.extend_from_slice(b"'\n");
    let _ = std::io::stderr().write_all(&msg);
}

/// Rebuilds an `OsString` from the bytes of an argument's tail.
fn bytes_to_os(bytes: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes).to_os_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn groups_attached_and_permuted() {
        let p = parse("t", "m:hqgb", &os(&["key", "-bg", "-mstats", "k2", "-m", "-x"]));
        assert_eq!(
            p.opts,
            vec![
                Opt::Flag('b', None),
                Opt::Flag('g', None),
                Opt::Flag('m', Some("stats".into())),
                Opt::Flag('m', Some("-x".into())),
            ]
        );
        assert_eq!(p.operands, os(&["key", "k2"]));
    }

    #[test]
    fn double_dash_and_errors() {
        let p = parse("t", "g", &os(&["-g", "--", "-x", "y"]));
        assert_eq!(p.operands, os(&["-x", "y"]));
        let p = parse("t", "gm:", &os(&["-g", "-z", "-m"]));
        assert_eq!(p.opts, vec![Opt::Flag('g', None), Opt::Error]);
        let p = parse("t", "gm:", &os(&["-m"]));
        assert_eq!(p.opts, vec![Opt::Error]);
        let p = parse("t", "g", &os(&["-", "-:"]));
        assert_eq!(p.operands, os(&["-"]));
        assert_eq!(p.opts, vec![Opt::Error]);
    }
}
