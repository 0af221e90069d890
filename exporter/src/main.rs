//! `corowire-exporter`: serves corosync's metrics at `http://127.0.0.1:9664/metrics`, or
//! prints them once (`--once`). See the crate documentation and `docs/metrics.md`.

use core::net::SocketAddr;
use core::time::Duration;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use corowire_exporter::http::Endpoint;
use corowire_exporter::render::{render, Format};
use corowire_exporter::scraper::{Outcome, Scraper};

/// Prometheus metrics for corosync, read natively over CMAP and votequorum.
#[derive(Parser, Debug)]
#[command(name = "corowire-exporter", version)]
struct Args {
    /// Address to listen on. Only loopback addresses are accepted without --allow-remote.
    #[arg(long, default_value = "127.0.0.1:9664")]
    listen: SocketAddr,
    /// Accept a --listen address that is not loopback (corosync's state is then open to the
    /// network).
    #[arg(long)]
    allow_remote: bool,
    /// The scrape bound, in seconds: a scrape that takes longer answers `corosync_up 0`.
    #[arg(long, default_value_t = 2.0, value_parser = parse_bound)]
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
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds in (0, 3600]")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bound = Duration::from_secs_f64(args.timeout);
    let scraper = match Scraper::start(bound) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("corowire-exporter: cannot start the scraper thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.once {
        let format = if args.openmetrics { Format::OpenMetrics } else { Format::Prometheus };
        let started = Instant::now();
        let scrape = scraper.scrape();
        print!("{}", render(&scrape, started.elapsed(), format));
        return match scrape.outcome {
            Outcome::Ok(_) => ExitCode::SUCCESS,
            Outcome::Failed(e) => {
                eprintln!("corowire-exporter: corosync did not answer: {e}");
                ExitCode::FAILURE
            }
            Outcome::TimedOut => {
                eprintln!("corowire-exporter: corosync did not answer within {}s", args.timeout);
                ExitCode::FAILURE
            }
        };
    }
    let endpoint = match Endpoint::bind(args.listen, args.allow_remote) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("corowire-exporter: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = endpoint.local_addr() {
        eprintln!("corowire-exporter: serving http://{addr}/metrics");
    }
    endpoint.serve(&scraper);
    ExitCode::SUCCESS
}
