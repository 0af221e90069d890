//! Reverse name lookup of an address (`getnameinfo(3)`), as `corosync-quorumtool` does for the
//! node addresses it shows.

use core::ffi::CStr;
use core::net::IpAddr;

/// Bytes of the host name buffer (glibc's `NI_MAXHOST`).
const NI_MAXHOST: usize = 1025;

/// The name `ip` resolves back to (`getnameinfo` with no flags, through NSS: `/etc/hosts`,
/// DNS, ...); without a name glibc gives the numeric form, as for the C tool. `None` when
/// the lookup fails.
pub fn name_of(ip: IpAddr) -> Option<String> {
    let mut host = [0u8; NI_MAXHOST];
    let rc = match ip {
        IpAddr::V4(a) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.octets()) },
                sin_zero: [0; 8],
            };
            lookup(&sa, &mut host)
        }
        IpAddr::V6(a) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: a.octets() },
                sin6_scope_id: 0,
            };
            lookup(&sa, &mut host)
        }
    };
    if rc != 0 {
        return None;
    }
    CStr::from_bytes_until_nul(&host).ok().map(|name| name.to_string_lossy().into_owned())
}

/// The two socket address types [`lookup`] takes.
trait Sockaddr {}
impl Sockaddr for libc::sockaddr_in {}
impl Sockaddr for libc::sockaddr_in6 {}

/// `getnameinfo(sa, sizeof *sa, host, ...)` without a service; its return code.
fn lookup<T: Sockaddr>(sa: &T, host: &mut [u8; NI_MAXHOST]) -> i32 {
    // SAFETY: `sa` is a live, initialised `sockaddr_in` or `sockaddr_in6` (the only
    // `Sockaddr` types) of `size_of::<T>()` bytes, which fits `socklen_t`, and its family
    // field says which; `host` is writable for its whole length;
    // the service buffer is null with length 0, which getnameinfo accepts (it then skips the
    // service). On success glibc writes a NUL-terminated string into `host`.
    unsafe {
        libc::getnameinfo(
            core::ptr::from_ref(sa).cast(),
            size_of::<T>() as libc::socklen_t,
            host.as_mut_ptr().cast(),
            NI_MAXHOST as libc::socklen_t,
            core::ptr::null_mut(),
            0,
            0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn loopback_has_a_name() {
        // Every Linux /etc/hosts names 127.0.0.1; the name is not the address itself.
        let name = name_of(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("127.0.0.1 resolves");
        assert!(!name.is_empty() && name.parse::<IpAddr>().is_err(), "{name}");
    }
}
