//! The command line: `corowire-exporter [OPTIONS]` (and `corowire exporter [OPTIONS]`).

use core::time::Duration;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;

use crate::http::Endpoint;
use crate::render::{render, Format};
use crate::scraper::{Outcome, Scraper};

/// Prometheus metrics for corosync, read natively over CMAP and votequorum.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on, `host:port` (the host an IP address or a name). Only loopback
    /// addresses are accepted without --allow-remote. 9664 is ha_cluster_exporter's port
    /// too: pick another to run both on one node.
    #[arg(long, default_value = "127.0.0.1:9664", conflicts_with = "once")]
    listen: String,
    /// Accept a --listen address that is not loopback (corosync's state is then open to the
    /// network).
    #[arg(long)]
    allow_remote: bool,
    /// The scrape bound, in seconds (0.01 to 60): a scrape that takes longer answers
    /// `corosync_up 0`. A Prometheus scrape that sends a shorter
    /// X-Prometheus-Scrape-Timeout-Seconds is bounded below that instead.
    #[arg(long, default_value_t = 2.0, value_parser = parse_bound, allow_negative_numbers = true)]
    timeout: f64,
    /// Print the metrics once to stdout and exit (status 1 if corosync did not answer).
    #[arg(long)]
    once: bool,
    /// With --once: print OpenMetrics instead of the Prometheus text format.
    #[arg(long, requires = "once")]
    openmetrics: bool,
}

fn parse_bound(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.01..=60.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds from 0.01 to 60")),
    }
}

/// Runs the exporter with the command line `args` (without the program name), as
/// `corowire-exporter` and `corowire exporter` do; `name` is the name usage and messages
/// show. Returns the exit status: 0, 1 if `--once` found corosync not answering, the
/// scraper thread could not start or the server could not serve any more, 2 for a usage
/// error or an address that cannot be served.
pub fn run(name: &str, args: impl IntoIterator<Item = OsString>) -> u8 {
    let command = core::iter::once(OsString::from(name)).chain(args);
    let args = match Args::try_parse_from(command) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let bound = Duration::from_secs_f64(args.timeout);
    let scraper = match Scraper::start(bound) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: cannot start the scraper thread: {e}");
            return 1;
        }
    };
    if args.once {
        let format = if args.openmetrics { Format::OpenMetrics } else { Format::Prometheus };
        let started = Instant::now();
        let scrape = scraper.scrape();
        print!("{}", render(&scrape, started.elapsed(), format));
        return match scrape.outcome {
            Outcome::Ok(_) => 0,
            Outcome::Failed(e) => {
                eprintln!("{name}: corosync did not answer: {e}");
                1
            }
            Outcome::TimedOut => {
                eprintln!("{name}: corosync did not answer within {}s", args.timeout);
                1
            }
        };
    }
    let endpoint = match Endpoint::bind(&args.listen, args.allow_remote) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{name}: {e}");
            return 2;
        }
    };
    eprintln!("{name}: serving http://{}/metrics", endpoint.local_addr());
    let stopped = endpoint.serve(Arc::new(scraper));
    eprintln!("{name}: {stopped}");
    1
}
