//! The top machine: what adapters drive.
//!
//! # What this module decides
//!
//! Which connection carries each request, when to open one, and what
//! happens to requests when one fails:
//!
//! - Ordinary requests share one pipelined connection: requests from many
//!   callers are written back to back and answered in order.
//! - Blocking commands (`BLPOP`, `XREAD BLOCK`, `WAIT`, ...) get a dedicated
//!   connection each, so they never hold up the shared one, and a response
//!   deadline extended by their own block time.
//! - A lease ([`Client::lease`]) hands one dedicated connection to one user
//!   until [`Client::release`]: what `WATCH`/`MULTI`/`EXEC` need. A
//!   connection released in the middle of a transaction, or with replies
//!   still due, is closed rather than handed to someone else.
//!
//! # Invariants
//!
//! - **Every request completes exactly once**: one [`Event::Response`] per
//!   [`RequestId`], with its reply or a typed error; a cancelled request
//!   gets none.
//! - Requests wait for the handshake of their connection; they are never
//!   written to a connection that could still fail authentication or
//!   `SELECT` (a write must not land in the wrong database).
//! - A connection that fails before it is ready fails the requests waiting
//!   for it with the same reason (wrong password, handshake deadline, ...).
//! - A dedicated connection is reused only once nothing is awaited on it:
//!   a blocking command that timed out on the client still blocks on the
//!   server, and its connection stays out of use until the reply comes.

use alloc::vec::Vec;

use crate::command::Command;
use crate::conn::{Conn, ConnConfig, Outputs, Phase};
use crate::error::Error;
use crate::id::{LeaseId, RequestId, SocketId};
use crate::io::{CloseReason, Effect, Event, IoError};
use crate::time::{Duration, Instant};

/// Everything a [`Client`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How to open and set up each connection.
    pub conn: ConnConfig,
    /// Deadline of each request, from the call that sends it to its reply;
    /// blocking commands get their block time on top. `None`: no deadline.
    pub response_timeout: Option<Duration>,
    /// Most dedicated connections (blocking commands and leases) open at
    /// once, besides the shared one. Default: 16.
    pub max_dedicated: usize,
    /// Idle dedicated connections kept open for reuse. Default: 2.
    pub max_idle_dedicated: usize,
}

impl ClientConfig {
    /// A client of the server `conn` describes, with no response deadline.
    #[must_use]
    pub const fn new(conn: ConnConfig) -> Self {
        Self {
            conn,
            response_timeout: None,
            max_dedicated: 16,
            max_idle_dedicated: 2,
        }
    }
}

/// What a dedicated connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Idle,
    Blocking,
    Leased(LeaseId),
}

#[derive(Debug)]
struct Dedicated {
    conn: Conn,
    use_: Use,
}

/// The client machine. See the [crate docs](crate) for how to drive it.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    shared: Option<Conn>,
    dedicated: Vec<Dedicated>,
    out: Outputs,
    next_socket: u64,
    next_request: u64,
    next_lease: u64,
    shut_down: bool,
}

impl Client {
    /// A client; it opens no connection until the first request.
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            shared: None,
            dedicated: Vec::new(),
            out: Outputs::default(),
            next_socket: 0,
            next_request: 0,
            next_lease: 0,
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
    /// returned id. Blocking commands go to a dedicated connection.
    pub fn send<C: Command + ?Sized>(&mut self, now: Instant, cmd: &C) -> RequestId {
        let id = self.next_id();
        if self.shut_down {
            self.fail(id, Error::Shutdown);
            return id;
        }
        let deadline = self.deadline(now, cmd);
        if cmd.block_timeout().is_none() {
            let conn = match &mut self.shared {
                Some(conn) => conn,
                None => match self.open(now) {
                    Ok(conn) => self.shared.insert(conn),
                    Err(reason) => {
                        self.fail(id, Error::Connection(reason));
                        return id;
                    }
                },
            };
            conn.send(id, cmd, deadline, &mut self.out);
            return id;
        }
        match self.dedicated(now, Use::Blocking) {
            Ok(i) => self.dedicated[i]
                .conn
                .send(id, cmd, deadline, &mut self.out),
            Err(error) => self.fail(id, error),
        }
        id
    }

    /// Hands a dedicated connection to one user until [`Client::release`]:
    /// for `WATCH`/`MULTI`/`EXEC` and anything else that needs a connection
    /// of its own. Send on it with [`Client::send_leased`].
    ///
    /// # Errors
    ///
    /// [`Error::PoolExhausted`] when `max_dedicated` connections are in use,
    /// [`Error::Shutdown`] after shutdown, or the reason a new connection
    /// could not even be asked for (a TLS configuration error).
    pub fn lease(&mut self, now: Instant) -> Result<LeaseId, Error> {
        if self.shut_down {
            return Err(Error::Shutdown);
        }
        let lease = LeaseId(self.next_lease);
        self.next_lease += 1;
        self.dedicated(now, Use::Leased(lease))?;
        Ok(lease)
    }

    /// Sends a command on a leased connection. If the connection has failed
    /// meanwhile, the request fails with the reason at once.
    pub fn send_leased<C: Command + ?Sized>(
        &mut self,
        now: Instant,
        lease: LeaseId,
        cmd: &C,
    ) -> RequestId {
        let id = self.next_id();
        let deadline = self.deadline(now, cmd);
        match self
            .dedicated
            .iter_mut()
            .find(|d| d.use_ == Use::Leased(lease))
        {
            Some(d) => d.conn.send_tracked(id, cmd, deadline, &mut self.out),
            None => self.fail(id, Error::Shutdown),
        }
        id
    }

    /// Gives a leased connection back. It is kept for reuse only when it
    /// is clean: no transaction open (`MULTI`/`WATCH` without
    /// `EXEC`/`DISCARD`/`UNWATCH`) and no reply still due.
    pub fn release(&mut self, _now: Instant, lease: LeaseId) {
        let Some(i) = self
            .dedicated
            .iter()
            .position(|d| d.use_ == Use::Leased(lease))
        else {
            return;
        };
        let d = &mut self.dedicated[i];
        if d.conn.phase() == Phase::Closed {
            self.dedicated.swap_remove(i);
            return;
        }
        if d.conn.in_transaction() || !d.conn.is_quiet() {
            d.conn.close(CloseReason::Unclean, &mut self.out);
            self.dedicated.swap_remove(i);
            return;
        }
        d.use_ = Use::Idle;
        self.trim_idle();
    }

    /// Forgets a request: no event will be reported for it. Its reply, if
    /// it was written already, is read and discarded.
    pub fn cancel(&mut self, id: RequestId) {
        let conns = self
            .shared
            .iter_mut()
            .chain(self.dedicated.iter_mut().map(|d| &mut d.conn));
        for conn in conns {
            if conn.cancel(id) {
                break;
            }
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
        if let Some(mut conn) = self.shared.take() {
            conn.close(CloseReason::Shutdown, &mut self.out);
        }
        for mut d in self.dedicated.drain(..) {
            d.conn.close(CloseReason::Shutdown, &mut self.out);
        }
    }

    // ---- inputs from the adapter ---------------------------------------

    /// The socket connected.
    pub fn handle_connected(&mut self, now: Instant, socket: SocketId) {
        if let Some(conn) = find(&mut self.shared, &mut self.dedicated, socket) {
            conn.on_connected(now, &self.config.conn, &mut self.out);
        }
        self.settle();
    }

    /// The socket could not connect.
    pub fn handle_connect_failed(&mut self, _now: Instant, socket: SocketId, error: IoError) {
        if let Some(conn) = find(&mut self.shared, &mut self.dedicated, socket) {
            conn.close(CloseReason::ConnectFailed(error), &mut self.out);
        }
        self.settle();
    }

    /// Bytes arrived on the socket.
    pub fn handle_data(&mut self, now: Instant, socket: SocketId, data: &[u8]) {
        if let Some(conn) = find(&mut self.shared, &mut self.dedicated, socket) {
            conn.on_data(now, data, &self.config.conn, &mut self.out);
        }
        self.settle();
    }

    /// The peer closed the socket (a read returned 0 bytes).
    pub fn handle_eof(&mut self, _now: Instant, socket: SocketId) {
        if let Some(conn) = find(&mut self.shared, &mut self.dedicated, socket) {
            conn.close(CloseReason::Eof, &mut self.out);
        }
        self.settle();
    }

    /// A read or write on the socket failed.
    pub fn handle_io_error(&mut self, _now: Instant, socket: SocketId, error: IoError) {
        if let Some(conn) = find(&mut self.shared, &mut self.dedicated, socket) {
            conn.close(CloseReason::Io(error), &mut self.out);
        }
        self.settle();
    }

    /// The time is `now`. Calling it early or repeatedly is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(conn) = &mut self.shared {
            conn.on_timeout(now, &mut self.out);
        }
        for d in &mut self.dedicated {
            d.conn.on_timeout(now, &mut self.out);
        }
        self.settle();
    }

    // ---- outputs --------------------------------------------------------

    /// The next thing the adapter must do. Call until `None` after every
    /// input and every application command.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        if let Some(effect) = self.out.effects.pop_front() {
            return Some(effect);
        }
        let conns = self
            .shared
            .iter_mut()
            .chain(self.dedicated.iter_mut().map(|d| &mut d.conn));
        for conn in conns {
            if let Some(data) = conn.take_tx() {
                return Some(Effect::Send {
                    socket: conn.socket(),
                    data,
                });
            }
        }
        None
    }

    /// The next thing the application must hear about.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// When to call [`Client::handle_timeout`] next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conns = self
            .shared
            .iter()
            .chain(self.dedicated.iter().map(|d| &d.conn));
        conns.filter_map(Conn::next_timeout).min()
    }

    // ---- getters ----------------------------------------------------------

    /// The phase of the shared connection, if there is one.
    #[must_use]
    pub fn phase(&self) -> Option<Phase> {
        self.shared.as_ref().map(Conn::phase)
    }

    /// Requests awaiting their reply on the shared connection (written or
    /// waiting for its handshake).
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.shared.as_ref().map_or(0, Conn::in_flight)
    }

    /// Open dedicated connections (blocking commands and leases).
    #[must_use]
    pub fn dedicated_connections(&self) -> usize {
        self.dedicated
            .iter()
            .filter(|d| d.conn.phase() != Phase::Closed)
            .count()
    }

    // ---- internals --------------------------------------------------------

    const fn next_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    fn fail(&mut self, id: RequestId, error: Error) {
        self.out.events.push_back(Event::Response {
            id,
            result: Err(error),
        });
    }

    fn deadline<C: Command + ?Sized>(&self, now: Instant, cmd: &C) -> Option<Instant> {
        let timeout = self.config.response_timeout?;
        // A blocking command may legitimately stay silent for its block time.
        let timeout = match cmd.block_timeout() {
            Some(block) => timeout.saturating_add(block),
            None => timeout,
        };
        Some(now.saturating_add(timeout))
    }

    fn open(&mut self, now: Instant) -> Result<Conn, CloseReason> {
        let socket = SocketId(self.next_socket);
        self.next_socket += 1;
        let conn = Conn::new(socket, &self.config.conn, now)?;
        self.out.effects.push_back(Effect::Connect {
            socket,
            address: self.config.conn.address.clone(),
        });
        Ok(conn)
    }

    /// A dedicated connection put to `use_`: an idle one, or a new one.
    fn dedicated(&mut self, now: Instant, use_: Use) -> Result<usize, Error> {
        if let Some(i) = self.dedicated.iter().position(|d| d.use_ == Use::Idle) {
            self.dedicated[i].use_ = use_;
            return Ok(i);
        }
        if self.dedicated.len() >= self.config.max_dedicated {
            return Err(Error::PoolExhausted);
        }
        let conn = self.open(now).map_err(Error::Connection)?;
        self.dedicated.push(Dedicated { conn, use_ });
        Ok(self.dedicated.len() - 1)
    }

    /// After every input: forgets closed connections (a closed leased one
    /// stays until released, so that sends on it fail with its reason), and
    /// returns dedicated connections whose blocking command is done.
    fn settle(&mut self) {
        if self
            .shared
            .as_ref()
            .is_some_and(|c| c.phase() == Phase::Closed)
        {
            self.shared = None;
        }
        let mut freed = false;
        self.dedicated.retain_mut(|d| {
            let closed = d.conn.phase() == Phase::Closed;
            if d.use_ == Use::Blocking && !closed && d.conn.is_quiet() {
                d.use_ = Use::Idle;
                freed = true;
            }
            !closed || matches!(d.use_, Use::Leased(_))
        });
        if freed {
            self.trim_idle();
        }
    }

    /// Closes idle dedicated connections beyond the configured number.
    fn trim_idle(&mut self) {
        let mut idle = 0;
        let max = self.config.max_idle_dedicated;
        let out = &mut self.out;
        self.dedicated.retain_mut(|d| {
            if d.use_ != Use::Idle {
                return true;
            }
            idle += 1;
            if idle <= max {
                return true;
            }
            d.conn.close(CloseReason::Surplus, out);
            false
        });
    }
}

/// The connection of `socket`, if it is still the client's.
fn find<'a>(
    shared: &'a mut Option<Conn>,
    dedicated: &'a mut [Dedicated],
    socket: SocketId,
) -> Option<&'a mut Conn> {
    if let Some(conn) = shared.as_mut().filter(|c| c.socket() == socket) {
        return Some(conn);
    }
    dedicated
        .iter_mut()
        .map(|d| &mut d.conn)
        .find(|c| c.socket() == socket)
}
