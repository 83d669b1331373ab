//! The simulated network: one link per socket the client opened, two
//! directions per link, each a FIFO of packets with delivery times.
//!
//! What it models, and what it keeps:
//!
//! - **Delays**: every link has its own latency, every packet a jitter on
//!   top; links with different latencies reorder traffic *across* sockets.
//! - **Never reorders within one direction of one socket**: delivery times
//!   of a direction are monotone and ties are broken by a sequence number,
//!   as TCP guarantees.
//! - **Splits**: bytes are cut into random chunks, each delivered on its
//!   own (the decoders must cope with any split).
//! - **Stalls**: a frozen link delivers nothing until it thaws, then
//!   everything held back, in order.
//! - **Resets**: a reset link drops what is in flight both ways; the client
//!   hears of it (an I/O error) after the link's latency.
//! - **A peer's close is noticed late**: an EOF or a read error reaches the
//!   client's socket after the link's latency, but the adapter reports it
//!   only [`NetParams::eof_lag`] later (a reader busy elsewhere, a pooled
//!   socket nobody reads), while a non-blocking read (a probe,
//!   [`Net::pop_due_to_client`]) sees it as soon as it arrived: the window
//!   in which only a probe tells a dead connection from a live one.
//! - **Connects** are accepted, refused or hang, each after a delay.
//! - A socket the client closed still delivers what was already written
//!   to the server (TCP sends what it has, then the FIN): a write the
//!   client gave up on may still run, which the linearizability model
//!   counts as "in doubt".

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use redpoll_core::{Address, Duration, Instant, IoError, SocketId};

use super::rng::Rng;

/// What reaches the server side of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToServer {
    /// The connection was accepted.
    Accept,
    /// Bytes from the client.
    Data(Bytes),
    /// The client closed its end.
    Eof,
}

/// What reaches the client side of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToClient {
    /// The connect completed.
    Connected,
    /// The connect failed.
    ConnectFailed(IoError),
    /// Bytes from the server.
    Data(Bytes),
    /// The server closed its end.
    Eof,
    /// A read failed.
    Error(IoError),
}

/// A packet on its way.
#[derive(Debug, Clone)]
struct Packet<T> {
    at: Instant,
    seq: u64,
    what: T,
}

/// What happens to a connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// Accepted after the link's latency plus this.
    Accept {
        /// Extra connect time.
        delay: Duration,
    },
    /// Refused after the link's latency.
    Refuse,
    /// Nothing happens until `until`; then it is accepted.
    Hang {
        /// When the black hole ends.
        until: Instant,
    },
}

/// The server side of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerSide {
    /// The accept is on its way.
    Pending,
    /// The server holds a connection for the link.
    Open,
    /// The server forgot the link (closed, reset, or never accepted).
    Gone,
}

/// One socket's two directions.
#[derive(Debug)]
struct Link {
    address: Address,
    latency: Duration,
    to_server: VecDeque<Packet<ToServer>>,
    to_client: VecDeque<Packet<ToClient>>,
    last_to_server: Instant,
    last_to_client: Instant,
    frozen_until: Option<Instant>,
    client_closed: bool,
    server: ServerSide,
    /// Reset: nothing more goes through either way.
    broken: bool,
}

impl Link {
    fn effective(&self, at: Instant) -> Instant {
        self.frozen_until.map_or(at, |until| at.max(until))
    }

    /// When the adapter reports the packet at the head of the client's
    /// side: an EOF or an error `lag` after it arrived.
    fn reported(&self, p: &Packet<ToClient>, lag: Duration) -> Instant {
        let arrived = self.effective(p.at);
        match p.what {
            ToClient::Eof | ToClient::Error(_) => arrived + lag,
            _ => arrived,
        }
    }

    fn finished(&self) -> bool {
        self.client_closed && self.server == ServerSide::Gone && self.to_server.is_empty()
    }
}

/// A packet due, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// To the server side of the socket.
    Server(SocketId, ToServer),
    /// To the client side of the socket.
    Client(SocketId, ToClient),
}

/// The knobs of the network, drawn per run.
#[derive(Debug, Clone, Copy)]
pub struct NetParams {
    /// Smallest link latency.
    pub latency_min: Duration,
    /// Largest link latency.
    pub latency_max: Duration,
    /// Largest extra delay of one packet.
    pub jitter_max: Duration,
    /// Chance (percent) that a write is cut into several chunks.
    pub split_percent: u64,
    /// How long after an EOF or a read error arrived the adapter reports
    /// it (a probe sees it at once).
    pub eof_lag: Duration,
}

impl NetParams {
    /// The longest one-way trip a packet can take on a healthy link.
    #[must_use]
    pub fn max_one_way(&self) -> Duration {
        self.latency_max + self.jitter_max
    }
}

/// Every link.
#[derive(Debug)]
pub struct Net {
    links: BTreeMap<SocketId, Link>,
    seq: u64,
    rng: Rng,
    params: NetParams,
}

impl Net {
    /// A network drawing from `rng`.
    #[must_use]
    pub const fn new(params: NetParams, rng: Rng) -> Self {
        Self {
            links: BTreeMap::new(),
            seq: 0,
            rng,
            params,
        }
    }

    /// The parameters.
    #[must_use]
    pub const fn params(&self) -> &NetParams {
        &self.params
    }

    const fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn jitter(&mut self) -> Duration {
        let max = self.params.jitter_max;
        self.rng.duration(Duration::ZERO, max)
    }

    /// The client asked to connect `socket` to `address`.
    pub fn connect(
        &mut self,
        socket: SocketId,
        address: Address,
        now: Instant,
        outcome: ConnectOutcome,
    ) {
        let latency = self
            .rng
            .duration(self.params.latency_min, self.params.latency_max);
        let mut link = Link {
            address,
            latency,
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            last_to_server: now,
            last_to_client: now,
            frozen_until: None,
            client_closed: false,
            server: ServerSide::Gone,
            broken: false,
        };
        let round_trip = latency + latency;
        match outcome {
            ConnectOutcome::Accept { delay } => self.accept_at(&mut link, now + round_trip + delay),
            ConnectOutcome::Hang { until } => {
                link.frozen_until = Some(until);
                self.accept_at(&mut link, now + round_trip);
            }
            ConnectOutcome::Refuse => {
                let seq = self.next_seq();
                link.to_client.push_back(Packet {
                    at: now + round_trip,
                    seq,
                    what: ToClient::ConnectFailed(IoError::Refused),
                });
            }
        }
        self.links.insert(socket, link);
    }

    fn accept_at(&mut self, link: &mut Link, at: Instant) {
        link.server = ServerSide::Pending;
        let seq = self.next_seq();
        link.to_server.push_back(Packet {
            at,
            seq,
            what: ToServer::Accept,
        });
        link.last_to_server = at;
        let seq = self.next_seq();
        link.to_client.push_back(Packet {
            at,
            seq,
            what: ToClient::Connected,
        });
        link.last_to_client = at;
    }

    /// The address `socket` was opened to.
    #[must_use]
    pub fn address(&self, socket: SocketId) -> Option<&Address> {
        self.links.get(&socket).map(|l| &l.address)
    }

    /// Cuts `data` into chunks, each with its delivery time after `after`.
    fn chunks(
        &mut self,
        data: &Bytes,
        now: Instant,
        latency: Duration,
        after: Instant,
    ) -> Vec<(Instant, Bytes)> {
        let mut pieces = Vec::new();
        if data.len() > 1 && self.rng.chance(self.params.split_percent) {
            let cuts = self.rng.range(1, 4.min(data.len() as u64 - 1));
            let mut points: Vec<usize> = (0..cuts)
                .map(|_| self.rng.range(1, data.len() as u64 - 1) as usize)
                .collect();
            points.sort_unstable();
            points.dedup();
            let mut start = 0;
            for p in points {
                pieces.push(data.slice(start..p));
                start = p;
            }
            pieces.push(data.slice(start..));
        } else {
            pieces.push(data.clone());
        }
        let mut last = after;
        pieces
            .into_iter()
            .map(|piece| {
                let at = (now + latency + self.jitter()).max(last);
                last = at;
                (at, piece)
            })
            .collect()
    }

    /// The client wrote `data` on `socket`.
    pub fn client_send(&mut self, socket: SocketId, data: &Bytes, now: Instant) {
        let Some(link) = self.links.get(&socket) else {
            return;
        };
        if link.broken || link.client_closed || link.server == ServerSide::Gone {
            return;
        }
        let (latency, after) = (link.latency, link.last_to_server);
        let chunks = self.chunks(data, now, latency, after);
        for (at, piece) in chunks {
            let seq = self.next_seq();
            let link = self.links.get_mut(&socket).expect("link");
            link.to_server.push_back(Packet {
                at,
                seq,
                what: ToServer::Data(piece),
            });
            link.last_to_server = at;
        }
    }

    /// The client closed `socket`: the server gets what was written, then
    /// the FIN; nothing more reaches the client.
    pub fn client_close(&mut self, socket: SocketId, now: Instant) {
        let seq = self.next_seq();
        let Some(link) = self.links.get_mut(&socket) else {
            return;
        };
        link.client_closed = true;
        link.to_client.clear();
        if !link.broken && link.server != ServerSide::Gone {
            let at = (now + link.latency).max(link.last_to_server);
            link.to_server.push_back(Packet {
                at,
                seq,
                what: ToServer::Eof,
            });
            link.last_to_server = at;
        } else {
            link.to_server.clear();
        }
        if link.finished() {
            self.links.remove(&socket);
        }
    }

    /// The server wrote `data` on `socket`.
    pub fn server_send(&mut self, socket: SocketId, data: &Bytes, now: Instant) {
        let Some(link) = self.links.get(&socket) else {
            return;
        };
        if link.broken || link.client_closed || data.is_empty() {
            return;
        }
        let (latency, after) = (link.latency, link.last_to_client);
        let chunks = self.chunks(data, now, latency, after);
        for (at, piece) in chunks {
            let seq = self.next_seq();
            let link = self.links.get_mut(&socket).expect("link");
            link.to_client.push_back(Packet {
                at,
                seq,
                what: ToClient::Data(piece),
            });
            link.last_to_client = at;
        }
    }

    /// The server closed `socket` (FIN after what it wrote).
    pub fn server_close(&mut self, socket: SocketId, now: Instant) {
        let seq = self.next_seq();
        let Some(link) = self.links.get_mut(&socket) else {
            return;
        };
        link.server = ServerSide::Gone;
        link.to_server.clear();
        if !link.client_closed && !link.broken {
            let at = (now + link.latency).max(link.last_to_client);
            link.to_client.push_back(Packet {
                at,
                seq,
                what: ToClient::Eof,
            });
            link.last_to_client = at;
        }
        if link.finished() {
            self.links.remove(&socket);
        }
    }

    /// The link of `socket` is reset: everything in flight is lost, the
    /// client hears `error` after the latency (unless it closed already).
    pub fn reset(&mut self, socket: SocketId, now: Instant, error: IoError) {
        let seq = self.next_seq();
        let Some(link) = self.links.get_mut(&socket) else {
            return;
        };
        let accepting = link.server == ServerSide::Pending;
        link.broken = true;
        link.server = ServerSide::Gone;
        link.to_server.clear();
        link.to_client.clear();
        if link.client_closed {
            self.links.remove(&socket);
            return;
        }
        let at = (now + link.latency).max(link.last_to_client);
        link.to_client.push_back(Packet {
            at,
            seq,
            what: if accepting {
                ToClient::ConnectFailed(IoError::Refused)
            } else {
                ToClient::Error(error)
            },
        });
        link.last_to_client = at;
    }

    /// The adapter's read on `socket` fails now (after what already arrived).
    pub fn client_error(&mut self, socket: SocketId, now: Instant, error: IoError) {
        let seq = self.next_seq();
        let Some(link) = self.links.get_mut(&socket) else {
            return;
        };
        if link.client_closed {
            return;
        }
        let at = now.max(link.last_to_client);
        link.to_client.push_back(Packet {
            at,
            seq,
            what: ToClient::Error(error),
        });
        link.last_to_client = at;
    }

    /// Freezes every link until `until`.
    pub fn freeze_all(&mut self, until: Instant) {
        for link in self.links.values_mut() {
            link.frozen_until = Some(link.frozen_until.map_or(until, |u| u.max(until)));
        }
    }

    /// Sockets whose server side is open and whose client has not closed
    /// them: the targets of faults that pick one connection.
    #[must_use]
    pub fn open_sockets(&self) -> Vec<SocketId> {
        self.links
            .iter()
            .filter(|(_, l)| !l.client_closed && !l.broken && l.server == ServerSide::Open)
            .map(|(s, _)| *s)
            .collect()
    }

    /// Sockets the server side holds (including client-closed ones still
    /// draining): what a server restart resets.
    #[must_use]
    pub fn server_sockets(&self) -> Vec<SocketId> {
        self.links
            .iter()
            .filter(|(_, l)| l.server != ServerSide::Gone)
            .map(|(s, _)| *s)
            .collect()
    }

    /// Sockets the server closed while bytes it wrote are still on their
    /// way to the client (which has not closed them).
    #[must_use]
    pub fn closed_by_server_in_flight(&self) -> Vec<SocketId> {
        self.links
            .iter()
            .filter(|(_, l)| {
                l.server == ServerSide::Gone
                    && !l.client_closed
                    && !l.broken
                    && l.to_client
                        .iter()
                        .any(|p| matches!(p.what, ToClient::Data(_)))
            })
            .map(|(s, _)| *s)
            .collect()
    }

    /// Sockets the client has not closed.
    #[must_use]
    pub fn client_sockets(&self) -> Vec<SocketId> {
        self.links
            .iter()
            .filter(|(_, l)| !l.client_closed)
            .map(|(s, _)| *s)
            .collect()
    }

    /// When the next packet is due, if any.
    #[must_use]
    pub fn next_due(&self) -> Option<Instant> {
        let lag = self.params.eof_lag;
        self.links
            .values()
            .flat_map(|l| {
                let s = l.to_server.front().map(|p| l.effective(p.at));
                let c = l.to_client.front().map(|p| l.reported(p, lag));
                s.into_iter().chain(c)
            })
            .min()
    }

    /// Whether nothing is in flight.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.links
            .values()
            .all(|l| l.to_server.is_empty() && l.to_client.is_empty())
    }

    /// Whether the peer's close (an EOF or a read error) has reached the
    /// client's side of `socket` by `now` and waits there, unreported: what
    /// a non-blocking read would find next.
    #[must_use]
    pub fn peer_close_arrived(&self, socket: SocketId, now: Instant) -> bool {
        self.links.get(&socket).is_some_and(|l| {
            l.to_client.front().is_some_and(|p| {
                matches!(p.what, ToClient::Eof | ToClient::Error(_)) && l.effective(p.at) <= now
            })
        })
    }

    /// Whether bytes of the client are on their way to the server of
    /// `socket`.
    #[must_use]
    pub fn to_server_in_flight(&self, socket: SocketId) -> bool {
        self.links.get(&socket).is_some_and(|l| {
            l.to_server
                .iter()
                .any(|p| matches!(p.what, ToServer::Data(_)))
        })
    }

    /// The next packet to the client of `socket`, if it is due at `now`
    /// (what a non-blocking read finds).
    pub fn pop_due_to_client(&mut self, socket: SocketId, now: Instant) -> Option<ToClient> {
        let link = self.links.get_mut(&socket)?;
        let at = link.effective(link.to_client.front()?.at);
        if at > now {
            return None;
        }
        link.to_client.pop_front().map(|p| p.what)
    }

    /// The earliest packet due at `now`, taken off its queue.
    pub fn pop_due(&mut self, now: Instant) -> Option<Delivery> {
        let lag = self.params.eof_lag;
        let mut best: Option<(Instant, u64, SocketId, bool)> = None;
        for (socket, l) in &self.links {
            let heads = [
                l.to_server
                    .front()
                    .map(|p| (l.effective(p.at), p.seq, true)),
                l.to_client
                    .front()
                    .map(|p| (l.reported(p, lag), p.seq, false)),
            ];
            for (at, seq, to_server) in heads.into_iter().flatten() {
                if at <= now && best.is_none_or(|(a, s, _, _)| (at, seq) < (a, s)) {
                    best = Some((at, seq, *socket, to_server));
                }
            }
        }
        let (_, _, socket, to_server) = best?;
        let link = self.links.get_mut(&socket)?;
        if to_server {
            let packet = link.to_server.pop_front()?;
            match packet.what {
                ToServer::Accept => link.server = ServerSide::Open,
                ToServer::Eof => link.server = ServerSide::Gone,
                ToServer::Data(_) => {}
            }
            if link.finished() {
                self.links.remove(&socket);
            }
            Some(Delivery::Server(socket, packet.what))
        } else {
            let packet = link.to_client.pop_front()?;
            Some(Delivery::Client(socket, packet.what))
        }
    }
}
