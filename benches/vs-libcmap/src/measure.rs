//! Measuring helpers: latency samples, the calling thread's CPU time, and the result table.

use core::fmt::Write as _;
use core::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};

/// Latency samples, in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<u64>);

impl Samples {
    /// An empty set with room for `n` samples.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Records one sample.
    pub fn push(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `p`-th percentile (0..=100, nearest rank), in microseconds.
    pub fn percentile_us(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort_unstable();
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1] as f64 / 1000.0
    }

    /// The mean, in microseconds.
    pub fn mean_us(&self) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.iter().map(|&n| n as f64).sum::<f64>() / self.0.len() as f64 / 1000.0
    }
}

/// The calling thread's resource usage (`getrusage(RUSAGE_THREAD)`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    /// User time.
    pub user: Duration,
    /// System time.
    pub sys: Duration,
    /// Voluntary context switches (sleeps in the kernel: futex, poll).
    pub voluntary_switches: i64,
    /// Involuntary context switches (preemptions).
    pub involuntary_switches: i64,
    /// Time spent runnable but waiting for a CPU (`/proc/thread-self/schedstat`, field 2):
    /// how much other load on the machine delayed the thread.
    pub run_delay: Duration,
}

impl Cpu {
    /// The calling thread's usage so far.
    ///
    /// # Panics
    /// If `getrusage` fails (it cannot for `RUSAGE_THREAD` on Linux).
    pub fn now() -> Self {
        let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage(RUSAGE_THREAD)");
        let tv = |t: nix::sys::time::TimeVal| {
            Duration::new(
                u64::try_from(t.tv_sec()).unwrap_or(0),
                u32::try_from(t.tv_usec()).unwrap_or(0) * 1000,
            )
        };
        Self {
            user: tv(u.user_time()),
            sys: tv(u.system_time()),
            voluntary_switches: u.voluntary_context_switches(),
            involuntary_switches: u.involuntary_context_switches(),
            run_delay: run_delay(),
        }
    }

    /// The usage between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            sys: self.sys.saturating_sub(earlier.sys),
            voluntary_switches: self.voluntary_switches - earlier.voluntary_switches,
            involuntary_switches: self.involuntary_switches - earlier.involuntary_switches,
            run_delay: self.run_delay.saturating_sub(earlier.run_delay),
        }
    }

    /// Adds `other` to `self`.
    pub fn accumulate(&mut self, other: &Self) {
        self.user += other.user;
        self.sys += other.sys;
        self.voluntary_switches += other.voluntary_switches;
        self.involuntary_switches += other.involuntary_switches;
        self.run_delay += other.run_delay;
    }

    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.sys
    }
}

/// The calling thread's run-queue wait so far (zero where schedstat is unavailable).
fn run_delay() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Which direction of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Latency, CPU: lower is better; the goal is a maximum ratio.
    Lower,
    /// Throughput: higher is better; the goal is a minimum ratio.
    Higher,
    /// Informational only (no direction).
    Info,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What is measured.
    pub name: String,
    /// The unit of both values.
    pub unit: &'static str,
    /// corowire's value.
    pub corowire: f64,
    /// libcmap's value.
    pub libcmap: f64,
    /// Which direction is better.
    pub better: Better,
    /// The goal for the ratio corowire/libcmap, if any.
    pub goal: Option<f64>,
}

impl Row {
    /// A row without a goal.
    pub fn new(
        name: impl Into<String>,
        unit: &'static str,
        corowire: f64,
        libcmap: f64,
        better: Better,
    ) -> Self {
        Self { name: name.into(), unit, corowire, libcmap, better, goal: None }
    }

    /// The same row with a goal on the ratio.
    pub fn goal(mut self, goal: f64) -> Self {
        self.goal = Some(goal);
        self
    }

    /// corowire / libcmap.
    pub fn ratio(&self) -> f64 {
        self.corowire / self.libcmap
    }

    /// Whether the goal is met (`None` without a goal).
    pub fn met(&self) -> Option<bool> {
        let goal = self.goal?;
        Some(match self.better {
            Better::Lower => self.ratio() <= goal,
            Better::Higher => self.ratio() >= goal,
            Better::Info => true,
        })
    }
}

fn number(v: f64) -> String {
    if !v.is_finite() {
        "-".to_owned()
    } else if v.abs() >= 100_000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders the table (Markdown, so that it can be pasted into the README as is).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| {:<44} | {:<10} | {:>12} | {:>12} | {:>8} | {:<7} | {:<9} |",
        "metric", "unit", "corowire", "libcmap", "cw/lc", "better", "goal"
    );
    let _ = writeln!(
        out,
        "|{:-<46}|{:-<12}|{:->14}|{:->14}|{:->10}|{:-<9}|{:-<11}|",
        "", "", ":", ":", ":", "", ""
    );
    for r in rows {
        let better = match r.better {
            Better::Lower => "lower",
            Better::Higher => "higher",
            Better::Info => "",
        };
        let goal = match (r.goal, r.met(), r.better) {
            (Some(g), Some(met), Better::Lower) => format!("≤{g} {}", if met { "ok" } else { "MISS" }),
            (Some(g), Some(met), _) => format!("≥{g} {}", if met { "ok" } else { "MISS" }),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {:<44} | {:<10} | {:>12} | {:>12} | {:>8.3} | {:<7} | {:<9} |",
            r.name,
            r.unit,
            number(r.corowire),
            number(r.libcmap),
            r.ratio(),
            better,
            goal
        );
    }
    out
}
