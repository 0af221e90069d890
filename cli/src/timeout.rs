//! `COROWIRE_TIMEOUT`: an opt-in bound on every wait of `corowire cmap` and `corowire quorum`
//! for the daemon (the connect and each call), since the drop-in flags must stay the C
//! tools' flags. Unset or empty, a call waits as long as the daemon lives, as the C tools
//! do. When a call runs out of time the command prints what it had, one line saying so on
//! stderr, and exits with status 1: a stopped (`SIGSTOP`) daemon no longer hangs it.

use core::time::Duration;
use std::sync::OnceLock;

use corowire::CsError;
use corowire_unix::transport::TransportError;
use corowire_unix::{ConnectError, Error};

use crate::out;

/// The environment variable: seconds, a positive decimal number (`5`, `0.5`).
pub(crate) const ENV: &str = "COROWIRE_TIMEOUT";

/// The bound `COROWIRE_TIMEOUT` sets, `None` when unset or empty. An invalid value is
/// refused on stderr with exit status 1 (before anything is sent to the daemon).
pub(crate) fn get() -> Option<Duration> {
    static TIMEOUT: OnceLock<Option<Duration>> = OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        let raw = std::env::var_os(ENV)?;
        let text = raw.to_string_lossy();
        if text.is_empty() {
            return None;
        }
        match parse(&text) {
            Some(t) => Some(t),
            None => {
                out::eprint(&format!("corowire: {ENV} must be a positive number of seconds, not '{text}'\n"));
                out::flush();
                std::process::exit(1);
            }
        }
    })
}

/// Seconds as `COROWIRE_TIMEOUT` takes them: a positive, finite decimal number.
fn parse(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && secs > 0.0).then(|| Duration::try_from_secs_f64(secs).ok()).flatten()
}

/// The `cs_error_t` the C tools would print for `e`; if `e` is the end of the
/// `COROWIRE_TIMEOUT` bound, the command ends here instead (see the module docs).
pub(crate) fn cs(e: &Error) -> CsError {
    let timed_out = matches!(
        e,
        Error::Timeout | Error::Connect { reason: ConnectError::Transport(TransportError::Timeout), .. }
    );
    if timed_out {
        let secs = get().map_or(0.0, |t| t.as_secs_f64());
        out::flush();
        out::eprint(&format!("corowire: the daemon did not answer within {secs} s ({ENV})\n"));
        std::process::exit(1);
    }
    e.cs_error()
}

/// `r` as an `Option`, for the calls whose errors the C tools ignore; the end of the
/// `COROWIRE_TIMEOUT` bound still ends the command (see [`cs`]).
pub(crate) fn ok<T>(r: Result<T, Error>) -> Option<T> {
    r.map_err(|e| cs(&e)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_positive_decimal_numbers() {
        assert_eq!(parse("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse("0.25"), Some(Duration::from_millis(250)));
        for bad in ["0", "-1", "x", "inf", "NaN", "1e30"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
