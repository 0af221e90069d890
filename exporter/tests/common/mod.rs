//! Helpers of the exporter's tests: running the exporter, HTTP GETs, and parsing the
//! Prometheus text format into samples.

#![allow(dead_code, unreachable_pub)] // each test binary uses a part

use core::time::Duration;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// The exporter binary.
pub const EXPORTER: &str = env!("CARGO_BIN_EXE_corowire-exporter");

/// A running exporter; killed on drop.
pub struct Exporter {
    child: Child,
    /// The port it serves on.
    pub port: u16,
}

impl Exporter {
    /// Starts the exporter on a port the system picks (127.0.0.1:0) with `args` added, and
    /// reads the port from its "serving" line.
    pub fn start(args: &[&str]) -> Self {
        Self::start_in(&[], args)
    }

    /// As [`Exporter::start`], run through `wrapper` (a command and its arguments that run
    /// the rest, e.g. `cluster-ctl exec 1`).
    pub fn start_in(wrapper: &[&str], args: &[&str]) -> Self {
        let (program, wrapper_args) = match wrapper.split_first() {
            Some((program, rest)) => (*program, rest),
            None => (EXPORTER, &[][..]),
        };
        let exporter = if wrapper.is_empty() { None } else { Some(EXPORTER) };
        let mut child = Command::new(program)
            .args(wrapper_args)
            .args(exporter)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the exporter");
        let mut line = String::new();
        let stderr = child.stderr.take().expect("piped stderr");
        BufReader::new(stderr).read_line(&mut line).expect("read the exporter's first line");
        let port = line
            .trim()
            .strip_prefix("corowire-exporter: serving http://127.0.0.1:")
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Self { child, port }
    }

    /// `GET /metrics` in the Prometheus text format.
    pub fn scrape(&self) -> String {
        get(self.port, "/metrics", None).1
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on 127.0.0.1:`port` with an optional `Accept`; (head, body).
pub fn get(port: u16, path: &str, accept: Option<&str>) -> (String, String) {
    try_get(port, path, accept).expect("an HTTP response")
}

/// As [`get`]; `None` if nothing listens yet or the answer is not HTTP.
pub fn try_get(port: u16, path: &str, accept: Option<&str>) -> Option<(String, String)> {
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    let response =
        exchange(port, format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{accept}\r\n").as_bytes())?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((head.to_owned(), body.to_owned()))
}

/// Sends `request` to 127.0.0.1:`port` and reads until the server closes (30 s at most);
/// `None` if nothing listens, the connection fails or the answer is not UTF-8.
pub fn exchange(port: u16, request: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    stream.write_all(request).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// One sample's identity: the metric name and its labels (sorted).
pub type SampleKey = (String, BTreeMap<String, String>);

/// The samples of a Prometheus text exposition (comments skipped). Label values must not
/// contain `,` or `}` (ours and ha_cluster_exporter's do not).
pub fn parse(text: &str) -> BTreeMap<SampleKey, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let labels = inner
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label=value");
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.insert((name, labels), value.parse().expect("a number"));
    }
    samples
}

/// The value of the sample `name` with exactly `labels`.
pub fn value(samples: &BTreeMap<SampleKey, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    samples.get(&(name.to_owned(), labels)).copied()
}

/// Runs `corowire-exporter --once` with `args`; its stdout and whether it exited 0.
pub fn once(args: &[&str]) -> (String, bool) {
    let out = Command::new(EXPORTER).arg("--once").args(args).output().expect("run --once");
    (String::from_utf8(out.stdout).expect("UTF-8"), out.status.success())
}
