//! The libcfg (`cfg` service) server engine, sans IO: the node-identity part of corosync
//! 3.1.7's `exec/cfg.c` that `corosync-quorumtool` uses.
//!
//! The engine knows the local node id and the link addresses of each node (corosync gets
//! them from totem; an adapter takes them from the node list, `nodelist.node.N.ring0_addr`).
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use corowire::cfg::{Reply, Request, Response};
//! use corowire::server::cfg::CfgEngine;
//! use corowire::server::ConnId;
//!
//! let mut engine: CfgEngine = CfgEngine::new(1);
//! engine.add_addr(1, IpAddr::V4(Ipv4Addr::LOCALHOST))?;
//! engine.connect(ConnId(3))?;
//! let (mut req, mut out) = ([0u8; 32], [0u8; 320]);
//! let n = Request::GetNodeAddrs { nodeid: 0 }.encode(&mut req)?;
//! let m = engine.handle_request(ConnId(3), &req[..n], &mut out)?;
//! let Response::GetNodeAddrs(addrs) = Reply::decode(&out[..m])?.body else { unreachable!() };
//! assert_eq!(addrs.get(0), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
//!
//! # Behaviour
//!
//! - GET_NODE_ADDRS: node 0 is the local node; the node's addresses in the order they were
//!   added; a node without addresses → `CS_ERR_NOT_EXIST` in a 32-byte reply.
//! - LOCAL_GET: the local node id.
//! - A malformed frame of a known id gets its reply shape with `CS_ERR_INVALID_PARAM`.
//!
//! # Not reproduced
//!
//! The other cfg requests (ring status, reload, shutdown, kill node, node status, tracking):
//! they get the generic 24-byte reply with `CS_ERR_INVALID_PARAM` (7), as unknown ids do.
//! `corosync-cfgtool` then prints the error and still exits 0: `-s` prints `Local node ID 1,
//! transport knet` and `Could not get the node status for nodeid 1, the error is: 7` where
//! corosync prints each link's status; `-H` (with or without `--force`) prints `Could not
//! shutdown (error = 7)` and `Shutting down corosync`, and the server keeps running where
//! corosync would stop (stop the server with SIGTERM; a clean stop of a simulated node is
//! the cluster model's `leave`).

use super::session::{handle_request_method, Sessions};
use super::{forward_engine_methods, ConnId, Engine, Served, ServerError};
use crate::cfg::{NodeAddrs, Reply, Request, RequestKind, Response};
use crate::error::CsError;
use core::net::IpAddr;
use heapless::Vec;

/// Addresses per node (knet's `KNET_MAX_LINK`).
pub const MAX_LINKS: usize = 8;

/// The libcfg engine: `CONNS` connections, `ADDRS` (node id, address) pairs in all.
#[derive(Debug)]
pub struct CfgEngine<const CONNS: usize = 16, const ADDRS: usize = 64> {
    nodeid: u32,
    addrs: Vec<(u32, IpAddr), ADDRS>,
    conns: Sessions<(), CONNS>,
}

impl<const CONNS: usize, const ADDRS: usize> CfgEngine<CONNS, ADDRS> {
    /// An engine for the local node `nodeid`, without addresses yet.
    pub fn new(nodeid: u32) -> Self {
        Self { nodeid, addrs: Vec::new(), conns: Sessions::new() }
    }

    /// The local node id.
    pub fn nodeid(&self) -> u32 {
        self.nodeid
    }

    /// Adds a link address of `nodeid` (after the ones it has).
    ///
    /// # Errors
    /// `CS_ERR_INVALID_PARAM` when the node has addresses of the other IP family (one reply
    /// carries one family), `CS_ERR_NO_SPACE` when the node has [`MAX_LINKS`] addresses,
    /// `CS_ERR_NO_MEMORY` when the table is full.
    pub fn add_addr(&mut self, nodeid: u32, addr: IpAddr) -> Result<(), CsError> {
        let mut of_node = self.addrs.iter().filter(|(n, _)| *n == nodeid);
        if of_node.clone().any(|(_, a)| a.is_ipv4() != addr.is_ipv4()) {
            return Err(CsError::InvalidParam);
        }
        if of_node.nth(MAX_LINKS - 1).is_some() {
            return Err(CsError::NoSpace);
        }
        self.addrs.push((nodeid, addr)).map_err(|_| CsError::NoMemory)
    }

    /// The addresses of `nodeid` (0: the local node), in order.
    pub fn addrs(&self, nodeid: u32) -> Vec<IpAddr, MAX_LINKS> {
        let nodeid = if nodeid == 0 { self.nodeid } else { nodeid };
        self.addrs.iter().filter(|(n, _)| *n == nodeid).map(|(_, a)| *a).take(MAX_LINKS).collect()
    }

    /// Registers a new connection.
    pub fn connect(&mut self, conn: ConnId) -> Result<(), ServerError> {
        self.conns.connect(conn, ()).map(drop)
    }

    /// Forgets a connection.
    pub fn disconnect(&mut self, conn: ConnId) {
        self.conns.disconnect(conn);
    }

    /// Whether `conn` is connected.
    pub fn is_connected(&self, conn: ConnId) -> bool {
        self.conns.is_connected(conn)
    }

    /// Length of the next queued notification: always `None` (this engine sends none).
    pub fn next_notification_len(&self) -> Option<usize> {
        None
    }

    /// Moves the oldest queued notification into `out`: always `None` (this engine sends
    /// none).
    pub fn poll_notification(&mut self, _out: &mut [u8]) -> Result<Option<(ConnId, usize)>, ServerError> {
        Ok(None)
    }

    handle_request_method! {
        /// Handles one request frame from `conn` and writes the reply into `out` (at least
        /// [`super::MIN_REPLY_LEN`] bytes); returns the reply's length.
        => serve
    }

    fn serve(&mut self, _ci: usize, kind: RequestKind, frame: &[u8], out: &mut [u8]) -> Served {
        let none = NodeAddrs::default();
        let reply = match (Request::decode(frame), kind) {
            (Err(_), RequestKind::GetNodeAddrs) => {
                Reply { result: Err(CsError::InvalidParam), body: Response::GetNodeAddrs(none) }
            }
            (Err(_), RequestKind::LocalGet) => {
                Reply { result: Err(CsError::InvalidParam), body: Response::LocalGet { nodeid: 0 } }
            }
            (Ok(Request::LocalGet), _) => {
                Reply { result: Ok(()), body: Response::LocalGet { nodeid: self.nodeid } }
            }
            (Ok(Request::GetNodeAddrs { nodeid }), _) => {
                let addrs = self.addrs(nodeid);
                // `add_addr` keeps each node's addresses of one family.
                let list = NodeAddrs::from_slice(&addrs).unwrap_or(none);
                let result = if list.is_empty() { Err(CsError::NotExist) } else { Ok(()) };
                return Ok(Reply { result, body: Response::GetNodeAddrs(list) }.encode(out)?);
            }
        };
        Ok(reply.encode(out)?)
    }
}

impl<const CONNS: usize, const ADDRS: usize> Engine for CfgEngine<CONNS, ADDRS> {
    fn name(&self) -> &'static str {
        crate::cfg::SERVICE_NAME
    }

    forward_engine_methods!();
}
