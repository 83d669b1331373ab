//! A client driven on a virtual clock against scripted peers, recording
//! every effect so tests can check the socket accounting (invariant I1):
//! every socket the core opens gets exactly one `Close`, and nothing is said
//! about a socket after its `Close`.

use std::collections::BTreeMap;

use bytes::Bytes;
use redpoll_core::{Client, CloseReason, Duration, Effect, Event, Instant, IoError, SocketId};

use crate::peer::Peer;

/// What happens when the client asks to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectMode {
    /// The connect succeeds at once.
    Accept,
    /// The connect is refused at once.
    Refuse,
    /// The connect never completes.
    Hang,
}

/// The client, its peers and the record of everything that happened.
pub struct World {
    /// The client under test.
    pub client: Client,
    /// The virtual clock.
    pub now: Instant,
    /// The peer of each open socket.
    pub peers: BTreeMap<SocketId, Peer>,
    /// Makes the peer of each new socket.
    pub make_peer: Box<dyn FnMut() -> Peer>,
    /// What connects do.
    pub connect_mode: ConnectMode,
    /// Whether peers' answers are delivered automatically.
    pub deliver: bool,
    /// `Connect` effects per socket.
    pub connects: BTreeMap<SocketId, usize>,
    /// `Close` effects per socket, with their reasons.
    pub closes: BTreeMap<SocketId, Vec<CloseReason>>,
    /// Effects that named a socket after its `Close` (must stay empty).
    pub after_close: Vec<Effect>,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Every effect, in order.
    pub effects: Vec<Effect>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("connects", &self.connects)
            .field("closes", &self.closes)
            .finish_non_exhaustive()
    }
}

impl World {
    /// A world where every socket leads to a peer made by `make_peer`.
    pub fn new(client: Client, make_peer: impl FnMut() -> Peer + 'static) -> Self {
        Self {
            client,
            now: Instant::from_nanos(1_000_000_000),
            peers: BTreeMap::new(),
            make_peer: Box::new(make_peer),
            connect_mode: ConnectMode::Accept,
            deliver: true,
            connects: BTreeMap::new(),
            closes: BTreeMap::new(),
            after_close: Vec::new(),
            events: Vec::new(),
            effects: Vec::new(),
        }
    }

    /// Carries out effects and delivers answers until nothing moves.
    ///
    /// # Panics
    ///
    /// When a peer finds the client's bytes invalid.
    pub fn run(&mut self) {
        loop {
            let mut moved = false;
            while let Some(effect) = self.client.poll_effect() {
                moved = true;
                self.carry_out(effect);
            }
            if self.deliver {
                let sockets: Vec<SocketId> = self.peers.keys().copied().collect();
                for socket in sockets {
                    moved |= self.deliver_from(socket);
                }
            }
            while let Some(event) = self.client.poll_event() {
                self.events.push(event);
            }
            if !moved {
                return;
            }
        }
    }

    /// Delivers what the peer of `socket` has written; reports its EOF.
    /// Returns whether anything was delivered.
    pub fn deliver_from(&mut self, socket: SocketId) -> bool {
        let Some(peer) = self.peers.get_mut(&socket) else {
            return false;
        };
        let bytes = peer.take_outbox();
        let closed = peer.closed;
        if !bytes.is_empty() {
            self.client.handle_data(self.now, socket, &bytes);
        }
        if closed {
            self.peers.remove(&socket);
            self.client.handle_eof(self.now, socket);
        }
        !bytes.is_empty() || closed
    }

    fn carry_out(&mut self, effect: Effect) {
        self.effects.push(effect.clone());
        let named = match &effect {
            Effect::Connect { socket, .. }
            | Effect::Send { socket, .. }
            | Effect::Close { socket, .. }
            | Effect::Probe { socket } => *socket,
        };
        if self.closes.contains_key(&named) {
            self.after_close.push(effect);
            return;
        }
        match effect {
            Effect::Connect { socket, .. } => {
                *self.connects.entry(socket).or_default() += 1;
                match self.connect_mode {
                    ConnectMode::Accept => {
                        self.peers.insert(socket, (self.make_peer)());
                        self.client.handle_connected(self.now, socket);
                    }
                    ConnectMode::Refuse => {
                        self.client
                            .handle_connect_failed(self.now, socket, IoError::Refused)
                    }
                    ConnectMode::Hang => {}
                }
            }
            Effect::Send { socket, data } => {
                if let Some(peer) = self.peers.get_mut(&socket) {
                    peer.receive(&data).expect("the client wrote valid bytes");
                }
            }
            Effect::Close { socket, reason } => {
                self.closes.entry(socket).or_default().push(reason);
                self.peers.remove(&socket);
            }
            // Like an adapter's non-blocking read: whatever is waiting is
            // delivered (an EOF included), then the probe is answered.
            Effect::Probe { socket } => {
                self.deliver_from(socket);
                if self.peers.contains_key(&socket) {
                    self.client.handle_probe_done(self.now, socket);
                }
            }
        }
    }

    /// Moves the clock by `d`, fires due timers, runs.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.client.handle_timeout(self.now);
        self.run();
    }

    /// Sends a command and runs.
    pub fn send(&mut self, args: &[&str]) -> redpoll_core::RequestId {
        let id = self.client.send(self.now, args);
        self.run();
        id
    }

    /// The outcome of request `id`, if it has one. Panics if it has several.
    #[must_use]
    pub fn response(
        &self,
        id: redpoll_core::RequestId,
    ) -> Option<&Result<redpoll_core::resp::Frame, redpoll_core::Error>> {
        let mut found = self.events.iter().filter_map(|e| match e {
            Event::Response { id: r, result } if *r == id => Some(result),
            _ => None,
        });
        let first = found.next();
        assert!(
            found.next().is_none(),
            "request {id} completed more than once"
        );
        first
    }

    /// The reply frame of request `id`. Panics when it has none or failed.
    #[must_use]
    pub fn reply(&self, id: redpoll_core::RequestId) -> redpoll_core::resp::Frame {
        match self.response(id) {
            Some(Ok(frame)) => frame.clone(),
            other => panic!("request {id}: expected a reply, got {other:?}"),
        }
    }

    /// The commands the peer of `socket` received, as strings.
    #[must_use]
    pub fn received(&self, socket: SocketId) -> Vec<Vec<String>> {
        self.peers.get(&socket).map_or_else(Vec::new, |p| {
            p.received
                .iter()
                .map(|c| {
                    c.iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect()
                })
                .collect()
        })
    }

    /// The accounting check of invariant I1, valid at any moment: no socket
    /// was connected twice or closed twice, and nothing named a socket after
    /// its `Close`.
    ///
    /// # Panics
    ///
    /// When the accounting is off.
    pub fn check_accounting(&self) {
        for (socket, n) in &self.connects {
            assert_eq!(*n, 1, "{socket} connected {n} times");
        }
        for (socket, reasons) in &self.closes {
            assert_eq!(
                reasons.len(),
                1,
                "{socket} closed {} times: {reasons:?}",
                reasons.len()
            );
            assert!(
                self.connects.contains_key(socket),
                "{socket} closed but never opened"
            );
        }
        assert!(
            self.after_close.is_empty(),
            "effects after Close: {:?}",
            self.after_close
        );
    }

    /// Shuts the client down and checks that every socket it ever opened got
    /// exactly one `Close`.
    ///
    /// # Panics
    ///
    /// When a socket was leaked or closed twice.
    pub fn shutdown_and_check(&mut self) {
        self.client.shutdown(self.now);
        self.run();
        self.check_accounting();
        for socket in self.connects.keys() {
            assert!(
                self.closes.contains_key(socket),
                "{socket} was never closed: leaked"
            );
        }
    }

    /// The one close reason of `socket`.
    #[must_use]
    pub fn close_reason(&self, socket: SocketId) -> Option<&CloseReason> {
        self.closes.get(&socket).and_then(|r| r.first())
    }

    /// The sockets in the order they were opened.
    #[must_use]
    pub fn sockets(&self) -> Vec<SocketId> {
        self.connects.keys().copied().collect()
    }

    /// Bytes the client sent on `socket`, concatenated.
    #[must_use]
    pub fn sent(&self, socket: SocketId) -> Vec<u8> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { socket: s, data } if *s == socket => Some(data.clone()),
                _ => None,
            })
            .fold(Vec::new(), |mut acc, b: Bytes| {
                acc.extend_from_slice(&b);
                acc
            })
    }
}
