//! A firmware for QEMU's `mps2-an386` (Cortex-M4) that is a corosync client: over UART0, through
//! `corowire gateway`, it reads `totem.cluster_name`, reads the quorum state (votequorum
//! getinfo), tracks the key prefix [`PREFIX`], and waits for one change under it. Each step is
//! reported through semihosting; the QEMU process exits with 0, or with the failing [`Step`]'s
//! status. Every wait is bounded on the SysTick clock. See the README for the run.

#![no_std]
#![no_main]

mod hw;

use core::cell::RefCell;
use core::fmt;
use core::mem::size_of;
use core::time::Duration;

use corowire::cmap::TrackType;
use corowire_embedded::{CmapClient, Link, Services, VotequorumClient};
use cortex_m_rt::entry;

use crate::hw::{report, Uart};

/// The key prefix the firmware tracks; the host changes a key under it.
const PREFIX: &str = "firmware.";
/// Each call's bound (and the UART's idle limit): a gateway or daemon that stops answering
/// fails the step instead of hanging the firmware.
const CALL_TIMEOUT_MS: u32 = 10_000;
/// How long the firmware waits for the host's change once it reports `tracking`.
const CHANGE_TIMEOUT_MS: u32 = 30_000;

/// The receive buffer of the link (the negotiated payload is at most `RX - 6` bytes) and its
/// four queues. corosync answers a GET with a reply as large as the value buffer the request
/// offers (the client offers the whole negotiated payload), so a queue must hold a frame of
/// the full payload plus its length: 512 bytes do not.
const RX: usize = 518;
const Q: usize = 1024;
/// Each client's buffers: a CMAP request with its 264-byte key field and a short value fits.
const BUF: usize = 512;

type FwLink = Link<Uart, RX, Q>;
/// One track, one request in flight, two events in 512 bytes.
type FwCmap<'l> = CmapClient<'l, Uart, RX, Q, BUF, 1, 1, 2, 512>;
/// One request in flight, two notifications in 512 bytes.
type FwVotequorum<'l> = VotequorumClient<'l, Uart, RX, Q, BUF, 1, 2, 512>;

/// The firmware's steps; a failing step is the QEMU process's exit status.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The hello to the gateway and its accept.
    Connect = 2,
    /// CMAP get of `totem.cluster_name`.
    ClusterName = 3,
    /// votequorum getinfo of the local node.
    Quorum = 4,
    /// CMAP track_add of [`PREFIX`].
    Track = 5,
    /// The change made on the host under [`PREFIX`].
    Change = 6,
}

/// Reports `step`'s failure and exits with its status.
fn fail(step: Step, error: impl fmt::Debug) -> ! {
    report(format_args!("FAILED {step:?} (exit {}): {error:?}", step as u32));
    hw::exit(step as u32)
}

#[entry]
fn main() -> ! {
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| fail(Step::Connect, "peripherals taken"));
    hw::start_systick(core.SYST);
    report(format_args!(
        "boot; RAM for one connection: link {} + cmap {} + votequorum {} bytes",
        size_of::<FwLink>(),
        size_of::<FwCmap<'_>>(),
        size_of::<FwVotequorum<'_>>()
    ));

    let timeout = Some(Duration::from_millis(CALL_TIMEOUT_MS.into()));
    let mut link = FwLink::new(Uart::new(CALL_TIMEOUT_MS), hw::now);
    // Sleep until the next SysTick (1 ms) or UART interrupt between readiness checks.
    link.set_idle(cortex_m::asm::wfi);
    let accepted = link.connect(Services::ALL, timeout).unwrap_or_else(|e| fail(Step::Connect, e));
    let link = RefCell::new(link);
    report(format_args!("connected; max payload {} bytes", accepted.max_payload));

    let mut cmap: FwCmap<'_> = CmapClient::new(&link, timeout).unwrap_or_else(|e| fail(Step::ClusterName, e));
    let mut name = [0u8; 64];
    let name =
        cmap.get_string("totem.cluster_name", &mut name).unwrap_or_else(|e| fail(Step::ClusterName, e));
    report(format_args!("cluster_name {name}"));

    let mut vq: FwVotequorum<'_> =
        VotequorumClient::new(&link, timeout).unwrap_or_else(|e| fail(Step::Quorum, e));
    let (nodeid, quorate, votes, expected, total, quorum) = vq
        .get_info(0, |i| (i.nodeid, i.is_quorate(), i.votes, i.expected_votes, i.total_votes, i.quorum))
        .unwrap_or_else(|e| fail(Step::Quorum, e));
    report(format_args!(
        "quorum nodeid {nodeid} quorate {quorate} votes {votes} expected {expected} total {total} quorum {quorum}"
    ));

    let track = TrackType::PREFIX | TrackType::ADD | TrackType::MODIFY | TrackType::DELETE;
    cmap.track_add(PREFIX, track, 1).unwrap_or_else(|e| fail(Step::Track, e));
    report(format_args!("tracking {PREFIX}"));

    // Calls wait at most CALL_TIMEOUT_MS each: retry timeouts until the change's own bound.
    let deadline = hw::now().saturating_add(Duration::from_millis(CHANGE_TIMEOUT_MS.into()));
    loop {
        let seen = cmap.next_event(|e| {
            let n = &e.notification;
            let mut key = [0u8; 64];
            let len = n.key.as_bytes().len().min(key.len());
            key[..len].copy_from_slice(&n.key.as_bytes()[..len]);
            report(format_args!(
                "change {} {:?} {:?}",
                core::str::from_utf8(&key[..len]).unwrap_or("<not utf-8>"),
                n.event,
                n.new_value
            ));
        });
        match seen {
            Ok(()) => break,
            Err(corowire_embedded::Error::Timeout) if hw::now() < deadline => {}
            Err(e) => fail(Step::Change, e),
        }
    }
    report(format_args!("done"));
    hw::exit(0)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    report(format_args!("panic: {info}"));
    hw::exit(101)
}
