//! corowire-tokio against libcmap and the blocking corowire-unix client, side by side in one
//! process against one corosync daemon (issue 9's benchmarks):
//!
//! - GET throughput: async gets from 1, 10 and 100 tasks on one connection, against
//!   libcmap's sequential `cmap_get` and the blocking client's pipelined `get_many`;
//! - CPU per notification received (a track of a prefix, a setter on another thread whose
//!   own CPU is subtracted), async stream against the blocking callback;
//! - memory per connection (resident set growth over 50 connections), async against blocking.
//!
//! Run it next to a private daemon:
//! `tests/harness/with-corosync -- cargo bench -p corowire-vs-libcmap --bench async_gets --offline`;
//! `COROWIRE_BENCH_SCALE` (default 1) scales the iteration counts. No CPU pinning.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::ffi::CString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use corowire::cmap::TrackType;
use corowire::dispatch::DispatchMode;
use corowire_vs_libcmap::libcmap::LibCmap;
use corowire_vs_libcmap::measure::Cpu;
use nix::sys::resource::{getrusage, UsageWho};

type Result<T> = core::result::Result<T, Box<dyn core::error::Error>>;

/// Rounds per metric; the best round is reported.
const ROUNDS: usize = 3;
/// Keys the GETs cycle through.
const KEYS: usize = 100;
/// GETs per client per round, before scaling.
const GETS: usize = 20_000;
/// Notifications per client per round, before scaling.
const NOTIFICATIONS: usize = 5_000;
/// Connections opened for the memory measurement.
const CONNECTIONS: usize = 50;
/// How long the idle measurement waits.
const IDLE: Duration = Duration::from_secs(2);
/// The prefix the notification measurement tracks.
const PREFIX: &str = "corowire.bench.async.notify.";

/// Distinct values for the setter.
static SEQ: AtomicU64 = AtomicU64::new(1);

fn key(i: usize) -> String {
    format!("corowire.bench.async.{:03}", i % KEYS)
}

/// The whole process's CPU time so far (the async client works on two threads).
fn process_cpu() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage(RUSAGE_SELF)");
    let d = |t: nix::sys::time::TimeVal| {
        Duration::new(u64::try_from(t.tv_sec()).unwrap_or(0), u32::try_from(t.tv_usec()).unwrap_or(0) * 1000)
    };
    d(u.user_time()) + d(u.system_time())
}

/// Resident set size, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Gets per second of `f`, which does `n` gets.
fn rate(n: usize, f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    f()?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The best of [`ROUNDS`] rounds of `f` (the highest value).
fn best(mut f: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut top = 0.0f64;
    for _ in 0..ROUNDS {
        top = top.max(f()?);
    }
    Ok(top)
}

/// Async GETs from `tasks` tasks on one connection, `n` in all.
fn async_gets(
    rt: &tokio::runtime::Runtime,
    cmap: &corowire_tokio::Cmap,
    tasks: usize,
    n: usize,
) -> Result<f64> {
    rate(n, || {
        rt.block_on(async {
            let handles: Vec<_> = (0..tasks)
                .map(|t| {
                    let cmap = cmap.clone();
                    tokio::spawn(async move {
                        for i in 0..n / tasks {
                            cmap.get_u32(&key(t + i)).await?;
                        }
                        Ok::<_, corowire_tokio::Error>(())
                    })
                })
                .collect();
            for h in handles {
                h.await??;
            }
            Ok(())
        })
    })
}

/// Receiver-side CPU per notification: `receive` gets `n` notifications while a setter
/// thread makes them; the setter's own CPU is subtracted.
fn cpu_per_notification(n: usize, receive: impl FnOnce(usize) -> Result<()>) -> Result<Duration> {
    let before = process_cpu();
    let setter = std::thread::spawn(move || -> core::result::Result<Duration, corowire_unix::Error> {
        let start = Cpu::now();
        let mut c = corowire_unix::Cmap::connect()?;
        for i in 0..n {
            // Values never repeat: corosync does not notify a set that changes nothing.
            c.set_u64(&format!("{PREFIX}{:02}", i % 16), SEQ.fetch_add(1, Ordering::Relaxed))?;
        }
        Ok(Cpu::now().since(&start).total())
    });
    receive(n)?;
    let setter_cpu = setter.join().map_err(|_| "the setter panicked")??;
    Ok((process_cpu() - before).saturating_sub(setter_cpu) / u32::try_from(n)?)
}

fn run(scale: f64) -> Result<()> {
    let n = |base: usize| ((base as f64 * scale) as usize).max(100);
    let mut lib = LibCmap::initialize().map_err(|e| format!("cmap_initialize: {e:?}"))?;
    let mut blocking = corowire_unix::Cmap::connect()?;
    for i in 0..KEYS {
        blocking.set_u32(&key(i), u32::try_from(i)?)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_time().build()?;
    let cmap = rt.block_on(corowire_tokio::Cmap::connect())?;
    let gets = n(GETS);
    let ckeys: Vec<CString> =
        (0..KEYS).map(|i| CString::new(key(i))).collect::<core::result::Result<_, _>>()?;

    let libcmap = best(|| {
        rate(gets, || {
            for i in 0..gets {
                lib.get_u32(&ckeys[i % KEYS]).map_err(|e| format!("cmap_get: {e:?}"))?;
            }
            Ok(())
        })
    })?;
    let names: Vec<String> = (0..KEYS).map(key).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let get_many = best(|| {
        rate(gets, || {
            for _ in 0..gets / KEYS {
                for v in blocking.get_many(&names)? {
                    v?;
                }
            }
            Ok(())
        })
    })?;
    println!("| GETs | gets/s | ratio to libcmap `cmap_get` | ratio to blocking `get_many` |");
    println!("|---|--:|--:|--:|");
    println!("| libcmap sequential `cmap_get` | {libcmap:.0} | 1.00 | {:.2} |", libcmap / get_many);
    println!("| blocking `get_many` (100 keys) | {get_many:.0} | {:.2} | 1.00 |", get_many / libcmap);
    for tasks in [1, 10, 100] {
        let r = best(|| async_gets(&rt, &cmap, tasks, gets))?;
        println!("| async, {tasks} task(s) | {r:.0} | {:.2} | {:.2} |", r / libcmap, r / get_many);
    }

    let notes = n(NOTIFICATIONS);
    let mut async_cpu = Duration::MAX;
    let mut blocking_cpu = Duration::MAX;
    for _ in 0..ROUNDS {
        let mut stream = rt.block_on(cmap.track(Some(PREFIX), TrackType::ALL | TrackType::PREFIX))?;
        async_cpu = async_cpu.min(cpu_per_notification(notes, |n| {
            rt.block_on(async {
                let mut seen = 0;
                while seen < n {
                    match stream.next().await.ok_or("the stream ended")? {
                        corowire_tokio::Tracked::Event(_) => seen += 1,
                        corowire_tokio::Tracked::Lagged(k) => seen += usize::try_from(k)?,
                        _ => {}
                    }
                }
                Ok(())
            })
        })?);
        drop(stream);
        let mut receiver = corowire_unix::Cmap::connect_with(corowire_unix::Options::for_tracking())?;
        let count = Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        receiver.track_add(Some(PREFIX), TrackType::ALL | TrackType::PREFIX, move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        })?;
        blocking_cpu = blocking_cpu.min(cpu_per_notification(notes, |n| {
            while count.load(Ordering::Relaxed) < n as u64 {
                receiver.dispatch_timeout(DispatchMode::One, Duration::from_secs(20))?;
                receiver.dispatch(DispatchMode::All)?;
            }
            Ok(())
        })?);
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!();
    println!("| per connection | async | blocking | ratio async/blocking |");
    println!("|---|--:|--:|--:|");
    println!(
        "| CPU per notification received (µs) | {:.2} | {:.2} | {:.2} |",
        us(async_cpu),
        us(blocking_cpu),
        us(async_cpu) / us(blocking_cpu)
    );

    // An idle connection with a track open: what its thread costs while nothing happens.
    let idle_stream = rt.block_on(cmap.track(Some(PREFIX), TrackType::ALL | TrackType::PREFIX))?;
    let before = process_cpu();
    std::thread::sleep(IDLE);
    let idle = process_cpu() - before;
    drop(idle_stream);
    println!(
        "| CPU of the whole process over {} s idle, a track open (µs) | {:.0} | - | - |",
        IDLE.as_secs(),
        us(idle)
    );

    let base = rss();
    let many: Vec<_> = (0..CONNECTIONS)
        .map(|_| rt.block_on(corowire_tokio::Cmap::connect()))
        .collect::<core::result::Result<_, _>>()?;
    let async_mem = rss().saturating_sub(base) / CONNECTIONS as u64;
    drop(many);
    let base = rss();
    let many: Vec<_> =
        (0..CONNECTIONS).map(|_| corowire_unix::Cmap::connect()).collect::<core::result::Result<_, _>>()?;
    let blocking_mem = rss().saturating_sub(base) / CONNECTIONS as u64;
    drop(many);
    println!(
        "| resident memory per connection (KiB, default 64 KiB rings) | {} | {} | {:.2} |",
        async_mem / 1024,
        blocking_mem / 1024,
        async_mem as f64 / blocking_mem as f64
    );
    Ok(())
}

fn main() -> ExitCode {
    if std::env::var_os("COROWIRE_DAEMON").is_none() {
        eprintln!("async_gets: needs a running corosync: tests/harness/with-corosync -- cargo bench -p corowire-vs-libcmap --bench async_gets --offline");
        return ExitCode::from(2);
    }
    let scale = std::env::var("COROWIRE_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    match run(scale) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("async_gets: {e}");
            ExitCode::FAILURE
        }
    }
}
