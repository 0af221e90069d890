//! The test peer: a gateway in memory in front of the core's CMAP and votequorum engines,
//! speaking the stream framing through `corowire::stream::GatewaySession`, and a blocking
//! in-memory pipe to it that can deliver a few bytes at a time or end mid-frame.

#![allow(dead_code, unreachable_pub)]

use core::cell::RefCell;
use core::convert::Infallible;
use std::collections::VecDeque;
use std::rc::Rc;

use corowire::cmap::{Key, Request, Value};
use corowire::server::cmap::CmapEngine;
use corowire::server::store::BTreeStore;
use corowire::server::votequorum::{QuorumConfig, QuorumEngine};
use corowire::server::{ConnId, Engine};
use corowire::stream::{Channel, Frame, FromClient, GatewaySession, Kind, Services};
use corowire::votequorum::NodeState;

/// The stream client's connection id in both engines.
const CLIENT: ConnId = ConnId(0);
/// A second, local client of the CMAP engine (a `corosync-cmapctl` on the host).
const LOCAL: ConnId = ConnId(1);

/// A gateway whose upstream is two engines instead of corosync.
pub struct Gateway {
    session: GatewaySession,
    reader: corowire::stream::FrameReader<8192>,
    pub cmap: CmapEngine<BTreeStore>,
    pub votequorum: QuorumEngine,
    /// Bytes for the client.
    out: VecDeque<u8>,
    /// Why the gateway closed the client, if it did.
    pub closed: Option<String>,
    /// Requests relayed upstream.
    pub relayed: usize,
    /// Services whose upstream was lost: their requests are dropped, as a gateway does
    /// until the client reconnects.
    lost: Services,
    /// Services whose upstream is stopped (a SIGSTOPped corosync): their requests wait here
    /// until [`Gateway::resume`].
    stalled: Services,
    held: Vec<(Channel, Vec<u8>)>,
    /// A hello gets no answer (a gateway that does not answer).
    deaf: bool,
}

impl Gateway {
    pub fn new(offered: Services) -> Self {
        let mut cmap = CmapEngine::new(BTreeStore::new(), BTreeStore::new(), 1);
        cmap.set_initial(b"totem.cluster_name", Value::String(b"embedded")).unwrap();
        cmap.set_initial(b"test.u32", Value::UInt32(7)).unwrap();
        let mut votequorum = QuorumEngine::new(QuorumConfig { expected_votes: 3, ..QuorumConfig::default() });
        votequorum.add_node(2, 1, NodeState::MEMBER).unwrap();
        Self {
            session: GatewaySession::new(offered, 4096),
            reader: corowire::stream::FrameReader::new(),
            cmap,
            votequorum,
            out: VecDeque::new(),
            closed: None,
            relayed: 0,
            lost: Services::NONE,
            stalled: Services::NONE,
            held: Vec::new(),
            deaf: false,
        }
    }

    fn send(&mut self, frame: Frame<'_>) {
        let mut buf = vec![0u8; frame.encoded_len()];
        let n = frame.encode(&mut buf).unwrap();
        self.out.extend(&buf[..n]);
    }

    /// Bytes from the client.
    pub fn input(&mut self, mut bytes: &[u8]) {
        if self.deaf {
            return;
        }
        while !bytes.is_empty() && self.closed.is_none() {
            let space = self.reader.space();
            let n = space.len().min(bytes.len());
            space[..n].copy_from_slice(&bytes[..n]);
            self.reader.filled(n);
            bytes = &bytes[n..];
            if let Err(e) = self.pump() {
                self.closed = Some(e);
            }
        }
    }

    fn pump(&mut self) -> Result<(), String> {
        loop {
            self.reader.set_max_payload(self.session.max_payload());
            let frame = match self.reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            match self.session.handle_frame(frame).map_err(|e| e.to_string())? {
                FromClient::Accept(a) => {
                    if a.result.is_ok() {
                        self.cmap.connect(CLIENT).unwrap();
                        self.cmap.connect(LOCAL).unwrap();
                        self.votequorum.connect(CLIENT).unwrap();
                    }
                    self.send(Frame::Accept(a));
                }
                FromClient::Request { channel, .. } if self.lost.contains(channel) => {}
                FromClient::Request { channel, payload } if self.stalled.contains(channel) => {
                    self.held.push((channel, payload.to_vec()));
                }
                FromClient::Request { channel, payload } => {
                    let payload = payload.to_vec();
                    self.answer(channel, &payload)?;
                }
            }
        }
    }

    /// Relays one request to its engine and sends the reply.
    fn answer(&mut self, channel: Channel, payload: &[u8]) -> Result<(), String> {
        self.relayed += 1;
        let mut reply = vec![0u8; 8192];
        let engine: &mut dyn Engine = match channel {
            Channel::Cmap => &mut self.cmap,
            Channel::Votequorum => &mut self.votequorum,
        };
        let n = engine.handle_request(CLIENT, payload, &mut reply).map_err(|e| e.to_string())?;
        self.drain(channel);
        self.send(Frame::Message { channel, kind: Kind::Reply, payload: &reply[..n] });
        Ok(())
    }

    /// The gateway reads nothing from now on (a silent gateway, a dead line).
    pub fn stall_hello(&mut self) {
        self.deaf = true;
    }

    /// corosync is back after a reset: the next hello starts a new session (as
    /// `corowire gateway` does after a reset).
    pub fn restart(&mut self) {
        self.session = GatewaySession::new(Services::ALL, 4096);
        self.lost = Services::NONE;
        self.cmap.disconnect(CLIENT);
        self.cmap.disconnect(LOCAL);
        self.votequorum.disconnect(CLIENT);
    }

    /// The upstream of `services` stops answering (SIGSTOP): requests are held.
    pub fn stall(&mut self, services: Services) {
        self.stalled = self.stalled.union(services);
    }

    /// The stopped upstream runs again (SIGCONT): the held requests are answered, late.
    pub fn resume(&mut self) {
        self.stalled = Services::NONE;
        for (channel, payload) in core::mem::take(&mut self.held) {
            self.answer(channel, &payload).unwrap();
        }
    }

    /// Moves the engine's notifications for the stream client onto the stream.
    fn drain(&mut self, channel: Channel) {
        let mut note = vec![0u8; 8192];
        loop {
            let engine: &mut dyn Engine = match channel {
                Channel::Cmap => &mut self.cmap,
                Channel::Votequorum => &mut self.votequorum,
            };
            match engine.poll_notification(&mut note).unwrap() {
                Some((CLIENT, n)) => {
                    self.send(Frame::Message { channel, kind: Kind::Event, payload: &note[..n] })
                }
                Some(_) => {}
                None => return,
            }
        }
    }

    /// A change made by a local tool, through the CMAP engine (notifies the stream client's
    /// tracks).
    pub fn local_set(&mut self, key: &str, value: Value<'_>) {
        let req = Request::Set { key: Key::new(key.as_bytes()).unwrap(), value };
        let mut frame = vec![0u8; req.encoded_len()];
        req.encode(&mut frame).unwrap();
        let mut reply = vec![0u8; 8192];
        self.cmap.handle_request(LOCAL, &frame, &mut reply).unwrap();
        self.drain(Channel::Cmap);
    }

    /// The upstream of `services` is lost.
    pub fn reset(&mut self, services: Services) {
        self.mute(services);
        self.send(Frame::Reset(services));
    }

    /// Requests of `services` get no answer from now on (a stalled upstream).
    pub fn mute(&mut self, services: Services) {
        self.lost = self.lost.union(services);
    }

    /// Raw bytes for the client (garbage).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend(bytes);
    }

    /// Takes up to `max` bytes for the client.
    pub fn output(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.out.len());
        self.out.drain(..n).collect()
    }

    pub fn pending(&self) -> usize {
        self.out.len()
    }
}

/// A blocking pipe to a shared [`Gateway`]: reads give at most `chunk` bytes; after `budget`
/// bytes the stream ends (a line cut mid-frame). A read with nothing to give is the end of
/// the stream too (nothing else could ever write to it in a single-threaded test).
pub struct Pipe {
    pub gateway: Rc<RefCell<Gateway>>,
    pub chunk: usize,
    pub budget: usize,
}

impl Pipe {
    pub fn new(gateway: &Rc<RefCell<Gateway>>, chunk: usize) -> Self {
        Self { gateway: Rc::clone(gateway), chunk, budget: usize::MAX }
    }
}

impl embedded_io::ErrorType for Pipe {
    type Error = Infallible;
}

impl embedded_io::Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let bytes = self.gateway.borrow_mut().output(self.chunk.min(buf.len()).min(self.budget));
        self.budget -= bytes.len();
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }
}

impl embedded_io::ReadReady for Pipe {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.budget > 0 && self.gateway.borrow().pending() > 0)
    }
}

impl embedded_io::Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.gateway.borrow_mut().input(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}
