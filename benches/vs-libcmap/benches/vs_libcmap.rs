//! corowire-unix vs libcmap, side by side in one process against one corosync daemon.
//!
//! Run it next to a private daemon:
//! `tests/harness/with-corosync -- cargo bench -p corowire-vs-libcmap --offline`.
//! Arguments that do not start with `-` select metrics by name (`get`, `set`, `connect`,
//! `batch`, `dump`, `notify`, `cpu`); `COROWIRE_BENCH_SCALE` (default 1) scales every
//! iteration count. The two clients are measured in alternating rounds, so that drift of the
//! machine or the daemon hits both alike. The table reports each metric for both clients and
//! the ratio corowire/libcmap.
//!
//! corosync runs as a `SCHED_RR` task, so where it runs relative to the client decides most
//! results. `COROWIRE_BENCH_PLACEMENT` (default `split,shared`) lists the CPU placements to
//! measure, one table each: `split` pins the bench to CPU 0 and the daemon to CPU 1, `shared`
//! pins both to CPU 0, `free` leaves the scheduler alone.

use core::hint::black_box;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;
use std::ffi::CString;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use corowire::cmap::TrackType;
use corowire::dispatch::DispatchMode;
use corowire_unix::cmap::{Cmap, Options};
use corowire_vs_libcmap::libcmap::{LibCmap, KEY_BUFFER};
use corowire_vs_libcmap::measure::{table, Better, Cpu, Row, Samples};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;

type Result<T> = core::result::Result<T, Box<dyn core::error::Error>>;

/// Rounds per metric; each round measures corowire, then libcmap.
const ROUNDS: usize = 4;
/// The `u32` key of the get and CPU measurements.
const GET_KEY: &str = "corowire.bench.u32";
/// The `u32` key of the set measurement.
const SET_KEY: &str = "corowire.bench.set";
/// Keys of the batch measurement: `corowire.bench.batch.000` and on.
const BATCH_KEYS: usize = 100;
/// The prefix the notification measurement tracks.
const NOTIFY_PREFIX: &str = "corowire.bench.notify.";
/// Keys under [`NOTIFY_PREFIX`] the setter cycles through.
const NOTIFY_KEYS: usize = 16;
/// The longest a notification round may take before the bench gives up.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(20);

/// Distinct values for the set and notification rounds: corosync does not notify a set that
/// leaves the value unchanged.
static SEQ: AtomicU32 = AtomicU32::new(1);

fn next_value() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

struct Config {
    scale: f64,
    filters: Vec<String>,
    placements: Vec<Placement>,
}

/// Where the bench's threads and the daemon run (`COROWIRE_BENCH_PLACEMENT`).
///
/// corosync runs as a `SCHED_RR` task, so on a wake-up it preempts a client on its own CPU
/// rather than move: left alone, the round trip flips between "daemon on the client's CPU"
/// (the client is preempted, never waits) and "daemon on another CPU" (the client spins or
/// sleeps) from run to run. Pinning makes the scenario explicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// The bench on CPU 0, every daemon thread on CPU 1 (the first default).
    Split,
    /// The bench and the daemon both on CPU 0 (the second default).
    Shared,
    /// No pinning.
    Free,
}

impl Placement {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "split" => Some(Self::Split),
            "shared" => Some(Self::Shared),
            "free" => Some(Self::Free),
            _ => None,
        }
    }

    /// Pins this process (before it starts any thread) and the daemon's threads.
    fn apply(self) -> Result<&'static str> {
        let (bench, daemon) = match self {
            Self::Free => return Ok("free (no pinning)"),
            Self::Split if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 => {
                return Ok("free (split needs 2 CPUs)");
            }
            Self::Split => (0, 1),
            Self::Shared => (0, 0),
        };
        let pid: i32 = std::env::var("COROWIRE_COROSYNC_PID")
            .map_err(|_| "COROWIRE_COROSYNC_PID is not set (placement needs the daemon's pid)")?
            .parse()?;
        let set = |cpu: usize| -> Result<CpuSet> {
            let mut s = CpuSet::new();
            s.set(cpu)?;
            Ok(s)
        };
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let tid: i32 = task?.file_name().to_string_lossy().parse()?;
            sched_setaffinity(Pid::from_raw(tid), &set(daemon)?)?;
        }
        sched_setaffinity(Pid::from_raw(0), &set(bench)?)?;
        Ok(match self {
            Self::Split => "split (bench on CPU 0, daemon on CPU 1)",
            _ => "shared (bench and daemon on CPU 0)",
        })
    }
}

impl Config {
    /// `base` iterations per round, scaled.
    fn n(&self, base: usize) -> usize {
        ((base as f64 * self.scale).round() as usize).max(1)
    }

    fn selected(&self, metric: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| metric.contains(f.as_str()))
    }
}

fn c(s: &str) -> CString {
    CString::new(s).expect("key without NUL")
}

fn batch_key(i: usize) -> String {
    format!("corowire.bench.batch.{i:03}")
}

fn notify_key(i: usize) -> String {
    format!("{NOTIFY_PREFIX}{:02}", i % NOTIFY_KEYS)
}

fn main() -> ExitCode {
    if std::env::var_os("COROWIRE_DAEMON").is_none() {
        eprintln!(
            "corowire-vs-libcmap: COROWIRE_DAEMON is not set. This bench needs a running corosync; \
             run it next to a private daemon with\n  \
             tests/harness/with-corosync -- cargo bench -p corowire-vs-libcmap --offline"
        );
        return ExitCode::from(2);
    }
    if std::env::var("COROWIRE_QB_IPC_TYPE").is_ok_and(|t| t == "socket") {
        eprintln!("corowire-vs-libcmap: corowire speaks libqb's shm transport only; run without --qb-ipc-type socket");
        return ExitCode::from(2);
    }
    let scale = match std::env::var("COROWIRE_BENCH_SCALE") {
        Ok(s) => match s.parse::<f64>() {
            Ok(v) if v > 0.0 => v,
            _ => {
                eprintln!("corowire-vs-libcmap: COROWIRE_BENCH_SCALE must be a positive number, not {s:?}");
                return ExitCode::from(2);
            }
        },
        Err(_) => 1.0,
    };
    // `cargo bench` passes `--bench`; anything else not starting with '-' is a filter.
    let filters = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let placement = std::env::var("COROWIRE_BENCH_PLACEMENT").unwrap_or_else(|_| "split,shared".into());
    let Some(placements) =
        placement.split(',').map(|p| Placement::parse(p.trim())).collect::<Option<Vec<_>>>()
    else {
        eprintln!(
            "corowire-vs-libcmap: COROWIRE_BENCH_PLACEMENT must list split, shared or free (comma-separated), not {placement:?}"
        );
        return ExitCode::from(2);
    };
    let cfg = Config { scale, filters, placements };
    match run(&cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corowire-vs-libcmap: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cfg: &Config) -> Result<()> {
    let start = Instant::now();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    setup()?;
    for &placement in &cfg.placements {
        let placement = placement.apply()?;
        println!(
            "corowire-unix vs libcmap (corosync {}), {cpus} CPUs, placement {placement}, \
             {ROUNDS} alternating rounds per metric, scale {}, load average {}",
            corosync_version(),
            cfg.scale,
            load_average()
        );
        let rows = run_metrics(cfg)?;
        println!();
        print!("{}", table(&rows));
        println!();
        let missed: Vec<&str> =
            rows.iter().filter(|r| r.met() == Some(false)).map(|r| r.name.as_str()).collect();
        if !missed.is_empty() {
            println!("goals missed: {}", missed.join("; "));
        }
        println!();
    }
    println!("ratio = corowire / libcmap; latency and CPU: lower is better; throughput: higher is better.");
    println!("total time {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Runs the selected metrics.
fn run_metrics(cfg: &Config) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    type Metric = fn(&Config) -> Result<Vec<Row>>;
    let metrics: [(&str, Metric); 7] = [
        ("get", get_latency),
        ("set", set_latency),
        ("connect", connect_finalize),
        ("batch", batch_get),
        ("dump", full_dump),
        ("notify", notifications),
        ("cpu", cpu_per_get),
    ];
    for (name, metric) in metrics {
        if cfg.selected(name) {
            let t = Instant::now();
            rows.extend(metric(cfg)?);
            eprintln!("  {name}: {:.1} s", t.elapsed().as_secs_f64());
        }
    }
    Ok(rows)
}

/// The daemon's version, from `corosync -v` ("Corosync Cluster Engine, version '3.1.7'").
fn corosync_version() -> String {
    std::process::Command::new("corosync")
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).split('\'').nth(1).map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The 1-minute load average (other work on the machine skews every number).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The daemon's main (IPC) thread's voluntary context switches: how often it went back to
/// sleep in `epoll_wait`. 0 when the pid is unknown.
fn daemon_sleeps() -> u64 {
    let Ok(pid) = std::env::var("COROWIRE_COROSYNC_PID") else { return 0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Creates the keys the metrics use.
fn setup() -> Result<()> {
    let mut cmap = Cmap::connect()?;
    cmap.set_u32(GET_KEY, 42)?;
    cmap.set_u32(SET_KEY, 0)?;
    for i in 0..BATCH_KEYS {
        cmap.set_u32(&batch_key(i), i as u32)?;
    }
    for i in 0..NOTIFY_KEYS {
        cmap.set_u32(&notify_key(i), 0)?;
    }
    Ok(())
}

/// Runs `cw` and then `lc` for `ROUNDS` rounds.
fn alternate(mut cw: impl FnMut() -> Result<()>, mut lc: impl FnMut() -> Result<()>) -> Result<()> {
    for _ in 0..ROUNDS {
        cw()?;
        lc()?;
    }
    Ok(())
}

/// Metric 1: Round trip of one sequential get of a `u32` key.
fn get_latency(cfg: &Config) -> Result<Vec<Row>> {
    let n = cfg.n(5000);
    let mut cw = Cmap::connect()?;
    let mut lc = LibCmap::initialize()?;
    let key = c(GET_KEY);
    for _ in 0..n / 10 {
        black_box(cw.get_u32(GET_KEY)?);
        black_box(lc.get_u32(&key)?);
    }
    let (mut a, mut b) = (Samples::with_capacity(n * ROUNDS), Samples::with_capacity(n * ROUNDS));
    alternate(
        || {
            for _ in 0..n {
                let t = Instant::now();
                black_box(cw.get_u32(black_box(GET_KEY))?);
                a.push(t.elapsed());
            }
            Ok(())
        },
        || {
            for _ in 0..n {
                let t = Instant::now();
                black_box(lc.get_u32(black_box(&key))?);
                b.push(t.elapsed());
            }
            Ok(())
        },
    )?;
    Ok(vec![
        Row::new("get u32 latency p50", "µs", a.percentile_us(50.0), b.percentile_us(50.0), Better::Lower)
            .goal(0.5),
        Row::new("get u32 latency p99", "µs", a.percentile_us(99.0), b.percentile_us(99.0), Better::Lower),
        Row::new("get u32 latency mean", "µs", a.mean_us(), b.mean_us(), Better::Lower),
    ])
}

/// Metric 2: Round trip of one sequential set of a `u32` key (a new value each time).
fn set_latency(cfg: &Config) -> Result<Vec<Row>> {
    let n = cfg.n(5000);
    let mut cw = Cmap::connect()?;
    let mut lc = LibCmap::initialize()?;
    let key = c(SET_KEY);
    for _ in 0..n / 10 {
        cw.set_u32(SET_KEY, next_value())?;
        lc.set_u32(&key, next_value())?;
    }
    let (mut a, mut b) = (Samples::with_capacity(n * ROUNDS), Samples::with_capacity(n * ROUNDS));
    alternate(
        || {
            for _ in 0..n {
                let v = next_value();
                let t = Instant::now();
                cw.set_u32(SET_KEY, v)?;
                a.push(t.elapsed());
            }
            Ok(())
        },
        || {
            for _ in 0..n {
                let v = next_value();
                let t = Instant::now();
                lc.set_u32(&key, v)?;
                b.push(t.elapsed());
            }
            Ok(())
        },
    )?;
    Ok(vec![
        Row::new("set u32 latency p50", "µs", a.percentile_us(50.0), b.percentile_us(50.0), Better::Lower),
        Row::new("set u32 latency p99", "µs", a.percentile_us(99.0), b.percentile_us(99.0), Better::Lower),
    ])
}

/// Metric 3: Connect (handshake, ring mapping) and finalize (close), back to back.
fn connect_finalize(cfg: &Config) -> Result<Vec<Row>> {
    let n = cfg.n(50);
    for _ in 0..5 {
        drop(Cmap::connect()?);
        drop(LibCmap::initialize()?);
    }
    let (mut a, mut b) = (Samples::with_capacity(n * ROUNDS), Samples::with_capacity(n * ROUNDS));
    alternate(
        || {
            for _ in 0..n {
                let t = Instant::now();
                drop(black_box(Cmap::connect()?));
                a.push(t.elapsed());
            }
            Ok(())
        },
        || {
            for _ in 0..n {
                let t = Instant::now();
                drop(black_box(LibCmap::initialize()?));
                b.push(t.elapsed());
            }
            Ok(())
        },
    )?;
    // For the ring-size trade-off: corowire asking for libcmap's 1 MiB rings.
    let big = Options { max_msg_size: 1 << 20, ..Options::default() };
    let mut c = Samples::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        drop(black_box(Cmap::connect_with(big.clone())?));
        c.push(t.elapsed());
    }
    Ok(vec![
        Row::new("connect+finalize p50", "µs", a.percentile_us(50.0), b.percentile_us(50.0), Better::Lower)
            .goal(0.25),
        Row::new("connect+finalize mean", "µs", a.mean_us(), b.mean_us(), Better::Lower),
        Row::new(
            "  p50, corowire with 1 MiB rings",
            "µs",
            c.percentile_us(50.0),
            b.percentile_us(50.0),
            Better::Lower,
        ),
    ])
}

/// Metric 4: A batch of `BATCH_KEYS` `u32` gets: corowire's pipelined `get_many` vs libcmap's
/// sequential gets.
fn batch_get(cfg: &Config) -> Result<Vec<Row>> {
    let reps = cfg.n(20);
    let names: Vec<String> = (0..BATCH_KEYS).map(batch_key).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let keys: Vec<CString> = names.iter().map(|k| c(k)).collect();
    let mut cw = Cmap::connect()?;
    let mut lc = LibCmap::initialize()?;
    let (mut ta, mut tb) = (Duration::ZERO, Duration::ZERO);
    let (mut na, mut nb) = (0usize, 0usize);
    let cw_batch = |cw: &mut Cmap| -> Result<usize> {
        let values = cw.get_many(black_box(&refs))?;
        for v in &values {
            if let Err(e) = v {
                return Err(format!("get_many: {e}").into());
            }
        }
        Ok(values.len())
    };
    let lc_batch = |lc: &mut LibCmap| -> Result<usize> {
        for k in &keys {
            black_box(lc.get_u32(k)?);
        }
        Ok(keys.len())
    };
    cw_batch(&mut cw)?;
    lc_batch(&mut lc)?;
    let (mut wa, mut wb) = (0u64, 0u64);
    alternate(
        || {
            let (t, w) = (Instant::now(), daemon_sleeps());
            for _ in 0..reps {
                na += cw_batch(&mut cw)?;
            }
            ta += t.elapsed();
            wa += daemon_sleeps() - w;
            Ok(())
        },
        || {
            let (t, w) = (Instant::now(), daemon_sleeps());
            for _ in 0..reps {
                nb += lc_batch(&mut lc)?;
            }
            tb += t.elapsed();
            wb += daemon_sleeps() - w;
            Ok(())
        },
    )?;
    let (ra, rb) = (na as f64 / ta.as_secs_f64(), nb as f64 / tb.as_secs_f64());
    Ok(vec![
        Row::new(format!("batch get of {BATCH_KEYS} keys"), "keys/s", ra, rb, Better::Higher).goal(5.0),
        Row::new(
            "  daemon sleeps per key (batching)",
            "",
            wa as f64 / na as f64,
            wb as f64 / nb as f64,
            Better::Info,
        ),
    ])
}

/// corowire's dump: `Cmap::dump` (pipelined ITER_NEXT, then pipelined GETs of the exact
/// lengths). Returns the number of values read (a key that vanished in between is left out).
fn dump_corowire(cw: &mut Cmap) -> Result<usize> {
    Ok(cw.dump(None)?.len())
}

/// libcmap's dump, as a C tool does it: iterate, and get each key's value with a buffer of
/// the length the iteration reported.
fn dump_libcmap(lc: &mut LibCmap, value: &mut [u8]) -> Result<usize> {
    let iter = lc.iter_init(None)?;
    let mut key = [0u8; KEY_BUFFER];
    let mut count = 0;
    while let Some((len, _)) = lc.iter_next(iter, &mut key)? {
        let name = core::ffi::CStr::from_bytes_until_nul(&key)?;
        let want = len.min(value.len());
        match lc.get_into(name, &mut value[..want]) {
            Ok(_) => count += 1,
            // The value grew in between: ask again with the largest buffer.
            Err(e) if e.0 == 7 => count += usize::from(lc.get_into(name, value).is_ok()),
            // It was deleted in between.
            Err(e) if e.0 == 12 => {}
            Err(e) => return Err(e.into()),
        }
    }
    lc.iter_finalize(iter)?;
    Ok(count)
}

/// Metric 5: A full dump of the default map: every key with its value.
fn full_dump(cfg: &Config) -> Result<Vec<Row>> {
    let reps = cfg.n(5);
    let mut cw = Cmap::connect()?;
    let mut lc = LibCmap::initialize()?;
    let mut value = vec![0u8; 16384];
    let keys = (dump_corowire(&mut cw)?, dump_libcmap(&mut lc, &mut value)?);
    let (mut ta, mut tb) = (Duration::ZERO, Duration::ZERO);
    let (mut na, mut nb) = (0usize, 0usize);
    alternate(
        || {
            let t = Instant::now();
            for _ in 0..reps {
                na += dump_corowire(&mut cw)?;
            }
            ta += t.elapsed();
            Ok(())
        },
        || {
            let t = Instant::now();
            for _ in 0..reps {
                nb += dump_libcmap(&mut lc, &mut value)?;
            }
            tb += t.elapsed();
            Ok(())
        },
    )?;
    let (ra, rb) = (na as f64 / ta.as_secs_f64(), nb as f64 / tb.as_secs_f64());
    Ok(vec![
        Row::new(format!("full dump ({}/{} keys)", keys.0, keys.1), "keys/s", ra, rb, Better::Higher)
            .goal(5.0),
        Row::new(
            "full dump time",
            "µs",
            ta.as_secs_f64() * 1e6 / (reps * ROUNDS) as f64,
            tb.as_secs_f64() * 1e6 / (reps * ROUNDS) as f64,
            Better::Lower,
        ),
    ])
}

/// The receiving side of the notification measurement.
enum Receiver {
    Corowire(Box<Cmap>),
    Libcmap(LibCmap),
}

impl Receiver {
    /// Waits up to 100 ms for the connection's fd to become readable, then dispatches every
    /// pending notification: the poll-loop idiom of both libraries.
    fn poll_dispatch(&mut self) -> Result<()> {
        let ready = {
            let fd = match self {
                Self::Corowire(c) => std::os::fd::AsFd::as_fd(&**c),
                Self::Libcmap(l) => l.fd()?,
            };
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(100u16))? > 0
        };
        if ready {
            match self {
                Self::Corowire(c) => c.dispatch(DispatchMode::All)?,
                Self::Libcmap(l) => l.dispatch_all()?,
            }
        }
        Ok(())
    }
}

/// One notification round: a libcmap connection on another thread sets `k` keys under the
/// tracked prefix as fast as it can; `receiver` counts the notifications. Returns the wall
/// time until the last one arrived and the receiving thread's CPU usage.
fn notify_round(mut receiver: Receiver, k: usize, backlog: bool) -> Result<(Duration, Cpu)> {
    let counter = match &mut receiver {
        Receiver::Corowire(c) => {
            let counter = Arc::new(AtomicU64::new(0));
            let cb = Arc::clone(&counter);
            c.track_add(Some(NOTIFY_PREFIX), TrackType::ALL, move |_| {
                cb.fetch_add(1, Ordering::Relaxed);
            })?;
            counter
        }
        Receiver::Libcmap(l) => l.track_prefix_counter(&c(NOTIFY_PREFIX))?,
    };
    let keys: Vec<CString> = (0..NOTIFY_KEYS).map(|i| c(&notify_key(i))).collect();
    if backlog {
        // Queue all k notifications before the receiver reads any, then time the drain.
        let mut s = LibCmap::initialize()?;
        for i in 0..k {
            s.set_u32(&keys[i % NOTIFY_KEYS], next_value())?;
        }
        return drain(&mut receiver, &counter, k);
    }
    let barrier = Arc::new(Barrier::new(2));
    let go = Arc::clone(&barrier);
    let setter = std::thread::spawn(move || -> core::result::Result<(), String> {
        let mut s = LibCmap::initialize().map_err(|e| e.to_string())?;
        go.wait();
        for i in 0..k {
            s.set_u32(&keys[i % NOTIFY_KEYS], next_value()).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    barrier.wait();
    let result = drain(&mut receiver, &counter, k);
    setter.join().map_err(|_| "setter panicked")??;
    result
}

/// Dispatches until `counter` reaches `k`: the wall time and the thread's CPU usage.
fn drain(receiver: &mut Receiver, counter: &AtomicU64, k: usize) -> Result<(Duration, Cpu)> {
    let cpu = Cpu::now();
    let t = Instant::now();
    let want = k as u64;
    while counter.load(Ordering::Relaxed) < want {
        if t.elapsed() > NOTIFY_TIMEOUT {
            return Err(
                format!("only {} of {k} notifications arrived", counter.load(Ordering::Relaxed)).into()
            );
        }
        receiver.poll_dispatch()?;
    }
    let elapsed = t.elapsed();
    let cpu = Cpu::now().since(&cpu);
    if counter.load(Ordering::Relaxed) != want {
        return Err(format!("{} notifications for {k} sets", counter.load(Ordering::Relaxed)).into());
    }
    Ok((elapsed, cpu))
}

/// Metric 6: notification delivery. Live: another connection (libcmap, the same for both)
/// sets tracked keys as fast as it can while the receiver dispatches; notifications per second
/// of wall time. Backlog: the sets are all done before the receiver reads; the time to
/// deliver them. corowire is measured twice: with its default 64 KiB rings and with libcmap's
/// 1 MiB (a full event ring sends corosync into its slower queued-event path).
fn notifications(cfg: &Config) -> Result<Vec<Row>> {
    let k = cfg.n(2500);
    let backlog = cfg.n(1000);
    let big = Options { max_msg_size: 1 << 20, ..Options::default() };
    let receivers = || -> Result<[Receiver; 3]> {
        Ok([
            Receiver::Corowire(Box::new(Cmap::connect()?)),
            Receiver::Corowire(Box::new(Cmap::connect_with(big.clone())?)),
            Receiver::Libcmap(LibCmap::initialize()?),
        ])
    };
    let mut t = [Duration::ZERO; 3];
    let mut cpu = [Cpu::default(); 3];
    let mut tb = [Duration::ZERO; 3];
    for _ in 0..ROUNDS {
        for (i, receiver) in receivers()?.into_iter().enumerate() {
            let (elapsed, used) = notify_round(receiver, k, false)?;
            t[i] += elapsed;
            cpu[i].accumulate(&used);
        }
        for (i, receiver) in receivers()?.into_iter().enumerate() {
            tb[i] += notify_round(receiver, backlog, true)?.0;
        }
    }
    let rate = |n: usize, t: Duration| (n * ROUNDS) as f64 / t.as_secs_f64();
    let per = |c: &Cpu| c.total().as_secs_f64() * 1e6 / (k * ROUNDS) as f64;
    Ok(vec![
        Row::new(
            "notifications, live (libcmap setter)",
            "notif/s",
            rate(k, t[0]),
            rate(k, t[2]),
            Better::Higher,
        ),
        Row::new(
            "  live, corowire with 1 MiB rings",
            "notif/s",
            rate(k, t[1]),
            rate(k, t[2]),
            Better::Higher,
        ),
        Row::new(
            format!("notifications, backlog of {backlog} drained"),
            "notif/s",
            rate(backlog, tb[0]),
            rate(backlog, tb[2]),
            Better::Higher,
        ),
        Row::new(
            "  backlog, corowire with 1 MiB rings",
            "notif/s",
            rate(backlog, tb[1]),
            rate(backlog, tb[2]),
            Better::Higher,
        ),
        Row::new("receiver CPU per notification (live)", "µs", per(&cpu[0]), per(&cpu[2]), Better::Lower),
        Row::new("  CPU, corowire with 1 MiB rings", "µs", per(&cpu[1]), per(&cpu[2]), Better::Lower),
    ])
}

/// Metric 7: The calling thread's CPU time per sequential get (`getrusage(RUSAGE_THREAD)`).
fn cpu_per_get(cfg: &Config) -> Result<Vec<Row>> {
    let n = cfg.n(5000);
    let mut cw = Cmap::connect()?;
    let mut lc = LibCmap::initialize()?;
    let key = c(GET_KEY);
    for _ in 0..n / 10 {
        black_box(cw.get_u32(GET_KEY)?);
        black_box(lc.get_u32(&key)?);
    }
    let (mut ca, mut cb) = (Cpu::default(), Cpu::default());
    let (mut wa, mut wb) = (Duration::ZERO, Duration::ZERO);
    alternate(
        || {
            let (cpu, t) = (Cpu::now(), Instant::now());
            for _ in 0..n {
                black_box(cw.get_u32(black_box(GET_KEY))?);
            }
            wa += t.elapsed();
            ca.accumulate(&Cpu::now().since(&cpu));
            Ok(())
        },
        || {
            let (cpu, t) = (Cpu::now(), Instant::now());
            for _ in 0..n {
                black_box(lc.get_u32(black_box(&key))?);
            }
            wb += t.elapsed();
            cb.accumulate(&Cpu::now().since(&cpu));
            Ok(())
        },
    )?;
    let calls = (n * ROUNDS) as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / calls;
    let busy = |cpu: &Cpu, wall: Duration| 100.0 * cpu.total().as_secs_f64() / wall.as_secs_f64();
    Ok(vec![
        Row::new("client CPU per get (user+sys)", "µs", us(ca.total()), us(cb.total()), Better::Lower)
            .goal(0.6),
        Row::new("  of which user", "µs", us(ca.user), us(cb.user), Better::Info),
        Row::new("  of which sys", "µs", us(ca.sys), us(cb.sys), Better::Info),
        Row::new("  wall time per get (same loop)", "µs", us(wa), us(wb), Better::Lower),
        Row::new("  CPU busy while waiting (CPU/wall)", "%", busy(&ca, wa), busy(&cb, wb), Better::Info),
        Row::new(
            "  gets that slept (voluntary ctx switches)",
            "%",
            100.0 * ca.voluntary_switches as f64 / calls,
            100.0 * cb.voluntary_switches as f64 / calls,
            Better::Info,
        ),
        Row::new(
            "  gets preempted (involuntary ctx switches)",
            "%",
            100.0 * ca.involuntary_switches as f64 / calls,
            100.0 * cb.involuntary_switches as f64 / calls,
            Better::Info,
        ),
        Row::new(
            "  run-queue wait per get (machine load)",
            "µs",
            us(ca.run_delay),
            us(cb.run_delay),
            Better::Info,
        ),
    ])
}
