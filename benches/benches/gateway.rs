//! A CMAP get through `corowire gateway` (a Unix stream client, `corowire-embedded`'s blocking
//! client) against a direct shared-memory get (`corowire_unix::Cmap`), and the gateway's CPU
//! per relayed request, as ratios. Started by `benches/gateway/run`, which runs the gateway and
//! passes `COROWIRE_GATEWAY_SOCK`, `COROWIRE_GATEWAY_PID` and `CLK_TCK`; without them it says so
//! and does nothing.

#[path = "../../cli/tests/support/stream_io.rs"]
mod stream_io;

use core::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use corowire::stream::Services;
use corowire_embedded::{no_clock, CmapClient, Link};
use stream_io::Io;

const KEY: &str = "totem.cluster_name";

/// The gateway's user + system CPU time in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the gateway's /proc stat");
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn main() {
    let (Ok(sock), Ok(pid), Ok(tck)) = (
        std::env::var("COROWIRE_GATEWAY_SOCK"),
        std::env::var("COROWIRE_GATEWAY_PID"),
        std::env::var("CLK_TCK"),
    ) else {
        eprintln!("the gateway bench runs from benches/gateway/run (it starts the gateway); skipped");
        return;
    };
    let tck: f64 = tck.parse().expect("CLK_TCK");
    let n: u32 = std::env::var("COROWIRE_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);

    let mut direct = corowire_unix::Cmap::connect().expect("connect to cmap");
    let stream = UnixStream::connect(&sock).expect("connect to the gateway");
    let mut link: Link<Io> = Link::new(Io::new(stream), no_clock);
    link.connect(Services::ALL, None).expect("hello");
    let link = RefCell::new(link);
    let mut via: CmapClient<'_, Io> = CmapClient::new(&link, None).expect("cmap over the gateway");
    let mut buf = [0u8; 256];
    let expected = direct.get(KEY).expect("direct get");
    let name = via.get_string(KEY, &mut buf).expect("get through the gateway");
    assert!(format!("{expected:?}").contains(name), "{expected:?} against {name:?}");

    println!("{n} gets of {KEY} per figure");
    for round in 1..=3 {
        let start = Instant::now();
        for _ in 0..n {
            direct.get(KEY).expect("direct get");
        }
        let direct_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);

        let ticks = cpu_ticks(&pid);
        let start = Instant::now();
        for _ in 0..n {
            via.get_string(KEY, &mut buf).expect("get through the gateway");
        }
        let via_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let cpu_us = (cpu_ticks(&pid) - ticks) as f64 / tck * 1e6 / f64::from(n);
        println!(
            "round {round}: direct shm {direct_us:.1} µs, via gateway {via_us:.1} µs (ratio {:.2}); \
             gateway CPU {cpu_us:.1} µs per request ({:.2} of a direct round trip)",
            via_us / direct_us,
            cpu_us / direct_us
        );
    }
}
