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

/// The environment variable: seconds, a decimal number from 0.001 on (`5`, `0.5`).
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
            Ok(t) => Some(t),
            Err(why) => {
                out::eprint(&format!("corowire: {ENV} {why}, not '{text}'\n"));
                out::flush();
                std::process::exit(1);
            }
        }
    })
}

/// The least bound `COROWIRE_TIMEOUT` takes: below a millisecond no answer could arrive.
const LEAST: Duration = Duration::from_millis(1);

/// Seconds as `COROWIRE_TIMEOUT` takes them: a finite decimal number from [`LEAST`] on that
/// fits a [`Duration`]; else what is wrong with it.
fn parse(text: &str) -> Result<Duration, &'static str> {
    const NOT_A_NUMBER: &str = "must be a positive number of seconds";
    let secs: f64 = text.trim().parse().map_err(|_| NOT_A_NUMBER)?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(NOT_A_NUMBER);
    }
    let t = Duration::try_from_secs_f64(secs).map_err(|_| "is too large")?;
    if t < LEAST {
        return Err("must be at least 0.001 seconds");
    }
    Ok(t)
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
        assert_eq!(parse("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0.001"), Ok(LEAST));
        for bad in ["0", "-1", "x", "inf", "NaN"] {
            assert_eq!(parse(bad), Err("must be a positive number of seconds"), "{bad}");
        }
        for big in ["1e30", "1e20", "99999999999999999999", "18446744073709551616"] {
            assert_eq!(parse(big), Err("is too large"), "{big}");
        }
        for tiny in ["1e-9", "0.0009"] {
            assert_eq!(parse(tiny), Err("must be at least 0.001 seconds"), "{tiny}");
        }
    }
}
