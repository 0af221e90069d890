#![doc = include_str!("../README.md")]
//!
//! ## The crate
//!
//! The pieces, in the order a scrape goes through them:
//! - [`snapshot`]: one scrape's worth of data read from corosync over long-lived connections
//!   ([`snapshot::Corosync`]): a few CMAP dumps and pipelined gets (`nodelist.`,
//!   `runtime.members.`, `totem.*`, and the knet, srp, pg, schedmiss and global IPC stats)
//!   and votequorum `getinfo` calls, plus the ring id and member list that votequorum
//!   tracking keeps current. Nothing is written to CMAP.
//! - [`scraper`]: a worker thread that owns the connections, reconnects when corosync
//!   restarts, and a [`scraper::Scraper::scrape`] that waits at most a bound for it (a scrape
//!   that takes longer answers `corosync_up 0` instead of hanging); concurrent scrapes share
//!   one collection.
//! - [`render`]: the snapshot as metrics (the `ha_cluster_corosync_*` family of ClusterLabs'
//!   ha_cluster_exporter, and the native `corosync_*` metrics), encoded with
//!   `prometheus-client` as the Prometheus text format or OpenMetrics.
//! - [`http`]: the `/metrics` endpoint (hyper, HTTP/1.1), with content negotiation, bound
//!   to loopback unless told otherwise, defended against clients that misbehave.
//!
//! - [`cli`]: the command line, shared by the `corowire-exporter` binary and
//!   `corowire exporter`.
//!
//! `docs/metrics.md` lists every metric.

pub mod cli;
pub mod http;
pub mod render;
pub mod scraper;
pub mod snapshot;
