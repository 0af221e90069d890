//! Setup-socket helpers: libqb's padded abstract names and a connect/accept round trip with
//! kernel-passed credentials.

use core::time::Duration;
use std::io::ErrorKind;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};

use corowire_unix::sys::sock::{
    abstract_addr, accept_with_passcred, connect_setup, listen_abstract, poll_readable,
    recv_exact_with_creds, send_all, set_passcred, PeerCred, PollState, ABSTRACT_NAME_LEN,
};
use nix::errno::Errno;
use nix::sys::socket::SockaddrLike;
use nix::unistd::{getgid, getpid, getuid};

/// A service name no other test (or process) uses.
fn unique_name(tag: &str) -> String {
    format!("corowire-unix-test-{}-{tag}", std::process::id())
}

#[test]
fn abstract_addr_pads_sun_path_to_108_bytes() {
    let addr = abstract_addr(b"cmap").unwrap();
    assert_eq!(addr.len(), 110);
    let mut expected = [0u8; ABSTRACT_NAME_LEN];
    expected[..4].copy_from_slice(b"cmap");
    assert_eq!(addr.as_abstract(), Some(&expected[..]));

    assert!(abstract_addr(&[b'x'; ABSTRACT_NAME_LEN]).is_ok());
    assert_eq!(abstract_addr(&[b'x'; ABSTRACT_NAME_LEN + 1]).unwrap_err(), Errno::ENAMETOOLONG);
}

#[test]
fn kernel_lists_the_padded_name() {
    let name = unique_name("proc");
    let _listener = listen_abstract(name.as_bytes()).unwrap();
    let shown = format!("@{name}{}", "@".repeat(ABSTRACT_NAME_LEN - name.len()));
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    assert!(table.lines().any(|line| line.ends_with(&shown)), "{shown} not in /proc/net/unix");
}

#[test]
fn std_short_abstract_name_is_another_socket() {
    let name = unique_name("std");
    let _listener = listen_abstract(name.as_bytes()).unwrap();
    let short = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let err = UnixStream::connect_addr(&short).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn setup_round_trip_passes_credentials_both_ways() {
    let name = unique_name("roundtrip");
    let listener = listen_abstract(name.as_bytes()).unwrap();
    let client = connect_setup(&name).unwrap();
    let me = PeerCred { pid: getpid().as_raw(), uid: getuid().as_raw(), gid: getgid().as_raw() };

    set_passcred(&client, true).unwrap();
    assert_eq!(poll_readable(&client, Some(Duration::from_millis(1))), Ok(PollState::Timeout));
    let request: Vec<u8> = (0..24).collect();
    send_all(&client, &request).unwrap();

    let server = accept_with_passcred(&listener).unwrap();
    let mut got = [0u8; 24];
    assert_eq!(recv_exact_with_creds(&server, &mut got), Ok(Some(me)));
    assert_eq!(got[..], request[..]);

    let response: Vec<u8> = (0..12328u32).map(|i| i.to_le_bytes()[0]).collect();
    send_all(&server, &response).unwrap();
    assert_eq!(poll_readable(&client, None), Ok(PollState::Readable));
    let mut got = vec![0u8; response.len()];
    assert_eq!(recv_exact_with_creds(&client, &mut got), Ok(Some(me)));
    assert_eq!(got, response);
    set_passcred(&client, false).unwrap();

    drop(server);
    assert_eq!(poll_readable(&client, None), Ok(PollState::Hup));
    assert_eq!(recv_exact_with_creds(&client, &mut [0u8; 1]), Err(Errno::ENOTCONN));
}
