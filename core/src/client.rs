//! The top machine: what adapters drive.
//!
//! # What this module decides
//!
//! When to open a connection, which requests wait for it, and what happens to
//! them when it fails. For now a client talks to one server over one
//! pipelined connection, opened when the first request needs it and again
//! when a request arrives after it closed. (The pool, cluster routing and the
//! reconnect policy build on this.)
//!
//! # Invariants
//!
//! - **Every request completes exactly once**: one [`Event::Response`] per
//!   [`RequestId`], with its reply or a typed error; a cancelled request
//!   gets none.
//! - Requests wait in the client's queue until a connection has finished its
//!   handshake; they are never written to a connection that could still fail
//!   authentication or `SELECT` (a write must not land in the wrong database).
//! - A connection that fails before it is ready fails the requests waiting
//!   for it with the same reason (wrong password, handshake deadline, ...).

use alloc::collections::VecDeque;
use bytes::{Bytes, BytesMut};

use crate::command::Command;
use crate::conn::{Conn, ConnConfig, Outputs, Phase};
use crate::error::Error;
use crate::id::{RequestId, SocketId};
use crate::io::{CloseReason, Effect, Event, IoError};
use crate::time::{Duration, Instant};

/// Everything a [`Client`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How to open and set up each connection.
    pub conn: ConnConfig,
    /// Deadline of each request, from the call that sends it to its reply.
    /// `None`: no deadline.
    pub response_timeout: Option<Duration>,
}

impl ClientConfig {
    /// A client of the server `conn` describes, with no response deadline.
    #[must_use]
    pub const fn new(conn: ConnConfig) -> Self {
        Self {
            conn,
            response_timeout: None,
        }
    }
}

/// A request waiting for a ready connection.
#[derive(Debug)]
struct Queued {
    id: RequestId,
    cmd: Bytes,
    deadline: Option<Instant>,
}

/// The client machine. See the [crate docs](crate) for how to drive it.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    conn: Option<Conn>,
    queue: VecDeque<Queued>,
    /// Staging for the commands of queued requests; each is split off as
    /// its own `Bytes`.
    staging: BytesMut,
    out: Outputs,
    next_socket: u64,
    next_request: u64,
    shut_down: bool,
}

impl Client {
    /// A client; it opens no connection until the first request.
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            conn: None,
            queue: VecDeque::new(),
            staging: BytesMut::new(),
            out: Outputs::default(),
            next_socket: 0,
            next_request: 0,
            shut_down: false,
        }
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &ClientConfig {
        &self.config
    }

    // ---- application commands -------------------------------------------

    /// Sends a command; its outcome is one [`Event::Response`] with the
    /// returned id.
    pub fn send<C: Command + ?Sized>(&mut self, now: Instant, cmd: &C) -> RequestId {
        let timeout = self.config.response_timeout;
        self.send_with_timeout(now, cmd, timeout)
    }

    /// Sends a command with its own response deadline (blocking commands
    /// extend it by their block time).
    pub fn send_with_timeout<C: Command + ?Sized>(
        &mut self,
        now: Instant,
        cmd: &C,
        timeout: Option<Duration>,
    ) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        if self.shut_down {
            self.out.events.push_back(Event::Response {
                id,
                result: Err(Error::Shutdown),
            });
            return id;
        }
        let deadline = timeout.map(|t| now + t);
        match &mut self.conn {
            Some(conn) if conn.is_ready() && self.queue.is_empty() => conn.send(id, cmd, deadline),
            _ => {
                cmd.encode(&mut self.staging);
                let cmd = self.staging.split().freeze();
                self.queue.push_back(Queued { id, cmd, deadline });
                if self.conn.is_none() {
                    self.open(now);
                }
            }
        }
        id
    }

    /// Forgets a request: no event will be reported for it. Its reply, if
    /// it was written already, is read and discarded.
    pub fn cancel(&mut self, id: RequestId) {
        if let Some(i) = self.queue.iter().position(|q| q.id == id) {
            self.queue.remove(i);
            return;
        }
        if let Some(conn) = &mut self.conn {
            conn.cancel(id);
        }
        self.out
            .events
            .retain(|e| !matches!(e, Event::Response { id: r, .. } if *r == id));
    }

    /// Shuts the client down: fails every request, closes every socket (TLS
    /// connections say close_notify first). Call it before dropping a client
    /// whose sockets are open, then carry out the effects.
    pub fn shutdown(&mut self, _now: Instant) {
        self.shut_down = true;
        for q in self.queue.drain(..) {
            self.out.events.push_back(Event::Response {
                id: q.id,
                result: Err(Error::Shutdown),
            });
        }
        if let Some(mut conn) = self.conn.take() {
            conn.close(CloseReason::Shutdown, &mut self.out);
        }
    }

    // ---- inputs from the adapter ---------------------------------------

    /// The socket connected.
    pub fn handle_connected(&mut self, now: Instant, socket: SocketId) {
        if let Some(conn) = find(&mut self.conn, socket) {
            conn.on_connected(now, &self.config.conn, &mut self.out);
        }
        self.after_input();
    }

    /// The socket could not connect.
    pub fn handle_connect_failed(&mut self, _now: Instant, socket: SocketId, error: IoError) {
        if let Some(conn) = find(&mut self.conn, socket) {
            conn.close(CloseReason::ConnectFailed(error), &mut self.out);
        }
        self.after_input();
    }

    /// Bytes arrived on the socket.
    pub fn handle_data(&mut self, now: Instant, socket: SocketId, data: &[u8]) {
        if let Some(conn) = find(&mut self.conn, socket) {
            conn.on_data(now, data, &self.config.conn, &mut self.out);
        }
        self.after_input();
    }

    /// The peer closed the socket (a read returned 0 bytes).
    pub fn handle_eof(&mut self, _now: Instant, socket: SocketId) {
        if let Some(conn) = find(&mut self.conn, socket) {
            conn.close(CloseReason::Eof, &mut self.out);
        }
        self.after_input();
    }

    /// A read or write on the socket failed.
    pub fn handle_io_error(&mut self, _now: Instant, socket: SocketId, error: IoError) {
        if let Some(conn) = find(&mut self.conn, socket) {
            conn.close(CloseReason::Io(error), &mut self.out);
        }
        self.after_input();
    }

    /// The time is `now`. Calling it early or repeatedly is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(conn) = &mut self.conn {
            conn.on_timeout(now, &mut self.out);
        }
        let out = &mut self.out;
        self.queue.retain(|q| {
            let expired = q.deadline.is_some_and(|at| at <= now);
            if expired {
                out.events.push_back(Event::Response {
                    id: q.id,
                    result: Err(Error::Timeout),
                });
            }
            !expired
        });
        self.after_input();
    }

    // ---- outputs --------------------------------------------------------

    /// The next thing the adapter must do. Call until `None` after every
    /// input and every application command.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        if let Some(effect) = self.out.effects.pop_front() {
            return Some(effect);
        }
        let conn = self.conn.as_mut()?;
        let data = conn.take_tx()?;
        Some(Effect::Send {
            socket: conn.socket(),
            data,
        })
    }

    /// The next thing the application must hear about.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// When to call [`Client::handle_timeout`] next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.conn.as_ref().and_then(Conn::next_timeout);
        let queue = self.queue.iter().filter_map(|q| q.deadline).min();
        match (conn, queue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- getters ----------------------------------------------------------

    /// The phase of the current connection, if there is one.
    #[must_use]
    pub fn phase(&self) -> Option<Phase> {
        self.conn.as_ref().map(Conn::phase)
    }

    /// Requests written and awaiting their reply.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.conn.as_ref().map_or(0, Conn::in_flight)
    }

    /// Requests waiting for a ready connection.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    // ---- internals --------------------------------------------------------

    fn open(&mut self, now: Instant) {
        let socket = SocketId(self.next_socket);
        self.next_socket += 1;
        match Conn::new(socket, &self.config.conn, now) {
            Ok(conn) => {
                self.out.effects.push_back(Effect::Connect {
                    socket,
                    address: self.config.conn.address.clone(),
                });
                self.conn = Some(conn);
            }
            // No socket was asked for, so there is none to close.
            Err(reason) => self.fail_queue(&reason),
        }
    }

    fn fail_queue(&mut self, reason: &CloseReason) {
        for q in self.queue.drain(..) {
            self.out.events.push_back(Event::Response {
                id: q.id,
                result: Err(Error::Connection(reason.clone())),
            });
        }
    }

    /// Moves queued requests onto a ready connection; settles a closed one.
    fn after_input(&mut self) {
        let Some(conn) = &mut self.conn else {
            return;
        };
        if conn.is_ready() {
            while let Some(q) = self.queue.pop_front() {
                conn.send_encoded(q.id, &q.cmd, q.deadline);
            }
            return;
        }
        let Some(reason) = conn.close_reason().cloned() else {
            return;
        };
        self.conn = None;
        // Requests still queued never had a ready connection: this one
        // failed before its handshake finished, and they fail with it.
        self.fail_queue(&reason);
    }
}

/// The connection of `socket`, if it is still the client's.
fn find(conn: &mut Option<Conn>, socket: SocketId) -> Option<&mut Conn> {
    conn.as_mut().filter(|c| c.socket() == socket)
}
