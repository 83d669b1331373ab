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
//! - Dedicated connections come from the [pool](crate::pool), which
//!   decides when a connection is probed before use, evicted, or waited
//!   for; the shared connection is probed by the same rule when a request
//!   finds it quiet, so a connection the server dropped is found out before
//!   anything is written to it.
//! - A request written to a connection that then fails (EOF, reset) is
//!   sent again when the [`RetryPolicy`] allows it; requests never written
//!   move to the next connection without spending a retry.
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

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::command::{Command, ReplyKind, SubscriptionKind};
use crate::conn::{Conn, ConnConfig, Outputs, Phase as ConnPhase, Queued, command_name};
use crate::error::Error;
use crate::id::{LeaseId, RequestId, SocketId};
use crate::io::{CloseReason, Effect, Event, IoError};
use crate::pool::{self, Ctx, Pool, PoolConfig, PoolStats, RetryPolicy, Use, Verdict};
use crate::reconnect::{self, Decision, Jitter, Phase, ReconnectPolicy};
use crate::resp::{Decoder, Frame};
use crate::time::{Duration, Instant};

/// The pool's view of the client's fields, borrowed apart from `pool`.
macro_rules! ctx {
    ($self:ident, $now:expr) => {
        Ctx {
            conn: &$self.config.conn,
            pool: &$self.config.pool,
            next_socket: &mut $self.next_socket,
            out: &mut $self.out,
            stats: &mut $self.stats,
            now: $now,
            backoff: $self
                .reconnect_at
                .filter(|at| $now < *at)
                .and($self.last_failure.as_ref()),
        }
    };
}

/// Everything a [`Client`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How to open and set up each connection.
    pub conn: ConnConfig,
    /// Deadline of each request, from the call that sends it to its reply;
    /// blocking commands get their block time on top. `None`: no deadline.
    pub response_timeout: Option<Duration>,
    /// The dedicated connections (blocking commands and leases) and the
    /// liveness rules of every connection.
    pub pool: PoolConfig,
    /// Which requests are sent again after their connection failed.
    pub retry: RetryPolicy,
    /// What to do when the connection to the server ends.
    pub reconnect: ReconnectPolicy,
}

impl ClientConfig {
    /// A client of the server `conn` describes, with no response deadline.
    #[must_use]
    pub const fn new(conn: ConnConfig) -> Self {
        Self {
            conn,
            response_timeout: None,
            pool: PoolConfig::DEFAULT,
            retry: RetryPolicy::NONE,
            reconnect: ReconnectPolicy {
                base: Duration::from_millis(50),
                cap: Duration::from_secs(5),
                max_attempts: None,
                retry_before_established: false,
                hold_requests: true,
                seed: ReconnectPolicy::DEFAULT_SEED,
            },
        }
    }
}

/// The client machine. See the [crate docs](crate) for how to drive it.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    shared: Option<Conn>,
    /// When the shared connection was opened (its lifetime).
    shared_created: Instant,
    pool: Pool,
    stats: PoolStats,
    out: Outputs,
    next_socket: u64,
    next_request: u64,
    next_lease: u64,
    shut_down: bool,
    // The reconnect machine of the shared connection.
    jitter: Jitter,
    phase: Phase,
    /// Failed connection attempts in a row.
    attempt: u32,
    /// No new shared connection before then (the backoff).
    reconnect_at: Option<Instant>,
    /// Whether to reconnect when `reconnect_at` passes, requests or not.
    reconnect_wanted: bool,
    /// Requests waiting for the next shared connection.
    held: VecDeque<Queued>,
    /// Staging for held requests' commands.
    staging: BytesMut,
    /// The shared connection whose readiness was reported.
    connected: Option<SocketId>,
    /// Set when the reconnect budget is spent: the terminal state.
    gave_up: Option<CloseReason>,
    /// Before the first handshake, why the last attempt failed: requests
    /// during the backoff fail with it at once instead of waiting.
    failing: Option<CloseReason>,
    /// Why the last connection ended or attempt failed, until a connection
    /// is ready again: a held request whose deadline passes meanwhile fails
    /// with it, which says more than "timed out".
    last_failure: Option<CloseReason>,
    /// The pub/sub subscriptions of the shared connection, to renew on
    /// every new connection: a reconnect must not silently end them.
    subscriptions: Vec<(SubscriptionKind, Bytes)>,
}

/// The state of the client's connection to its server, as reported by
/// [`Event::Status`].
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// A connection finished its handshake.
    Connected,
    /// The connection ended.
    Disconnected {
        /// Why.
        reason: CloseReason,
    },
    /// A new connection will be tried at `at` (attempt `attempt`, from 1).
    Reconnecting {
        /// The attempt number.
        attempt: u32,
        /// When.
        at: Instant,
    },
    /// The reconnect budget is spent: every request fails from now on.
    GaveUp {
        /// The last failure.
        reason: CloseReason,
    },
}

impl Client {
    /// A client; it opens no connection until the first request.
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        Self {
            shared: None,
            shared_created: Instant::ZERO,
            pool: Pool::default(),
            stats: PoolStats::default(),
            out: Outputs::default(),
            next_socket: 0,
            next_request: 0,
            next_lease: 0,
            shut_down: false,
            jitter: Jitter::new(config.reconnect.seed),
            phase: Phase::NeverConnected,
            attempt: 0,
            reconnect_at: None,
            reconnect_wanted: false,
            held: VecDeque::new(),
            staging: BytesMut::new(),
            connected: None,
            gave_up: None,
            failing: None,
            last_failure: None,
            subscriptions: Vec::new(),
            config,
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
    #[inline]
    pub fn send<C: Command + ?Sized>(&mut self, now: Instant, cmd: &C) -> RequestId {
        let id = self.next_id();
        let deadline = self.deadline(now, cmd);
        // The common case first: an ordinary command, a shared connection
        // busy with others (so evidently alive), no retries to keep.
        if let Some(conn) = &mut self.shared
            && !conn.is_quiet()
            && self.config.retry.attempts == 0
            && cmd.block_timeout().is_none()
            && cmd.reply_kind() == ReplyKind::Reply
        {
            conn.send(id, cmd, deadline, &mut self.out);
            return id;
        }
        self.send_other(now, id, cmd, deadline);
        id
    }

    /// `send` for everything but the common case.
    #[inline(never)]
    fn send_other<C: Command + ?Sized>(
        &mut self,
        now: Instant,
        id: RequestId,
        cmd: &C,
        deadline: Option<Instant>,
    ) {
        if cmd.block_timeout().is_some() {
            if self.shut_down {
                return self.fail(id, Error::Shutdown);
            }
            let use_ = Use::Blocking(id);
            return match self.pool.checkout(use_, &mut ctx!(self, now)) {
                Ok(_) => self.pool.send(use_, id, cmd, deadline, &mut self.out),
                Err(error) => self.fail(id, error),
            };
        }
        if cmd.reply_kind() != ReplyKind::Reply {
            self.track_subscriptions(cmd);
        }
        if self.shared.as_ref().is_some_and(Conn::is_quiet) {
            self.check_shared(now);
        }
        match &mut self.shared {
            Some(conn) => send_on(conn, &self.config.retry, id, cmd, deadline, &mut self.out),
            None => self.send_without_connection(now, id, cmd, deadline),
        }
    }

    /// The checkout rule for the shared connection when a request finds it
    /// quiet: past its lifetime it is replaced at once (no backoff: nothing
    /// failed); quiet for long enough, it is probed first.
    #[inline]
    fn check_shared(&mut self, now: Instant) {
        let Some(conn) = &mut self.shared else {
            return;
        };
        let facts = pool::ConnFacts {
            created: self.shared_created,
            quiet_since: conn.last_rx(),
        };
        match pool::checkout_shared(&self.config.pool, facts, now) {
            Verdict::Use => {}
            Verdict::ProbeFirst => {
                if conn.phase() == ConnPhase::Ready && !conn.is_probing() {
                    self.stats.probes += 1;
                    conn.probe(&mut self.out);
                }
            }
            Verdict::Evict(evict) if conn.phase() == ConnPhase::Ready => {
                // A planned replacement: its successor renews the
                // subscriptions (`settle` sees a new socket get ready).
                conn.close(evict.into(), &mut self.out);
                self.shared = None;
                if let Ok(conn) = self.open(now) {
                    self.shared = Some(conn);
                }
            }
            Verdict::Evict(_) => {}
        }
    }

    /// `send` when there is no shared connection: fail, wait for the
    /// backoff, or open one.
    #[cold]
    fn send_without_connection<C: Command + ?Sized>(
        &mut self,
        now: Instant,
        id: RequestId,
        cmd: &C,
        deadline: Option<Instant>,
    ) {
        if self.shut_down {
            return self.fail(id, Error::Shutdown);
        }
        if let Some(reason) = &self.gave_up {
            let error = Error::Connection(reason.clone());
            return self.fail(id, error);
        }
        if self.reconnect_at.is_some_and(|at| now < at) {
            if let Some(reason) = &self.failing {
                let error = Error::Connection(reason.clone());
                return self.fail(id, error);
            }
            // Paced by the backoff: wait for the next connection.
            cmd.encode(&mut self.staging);
            let cmd_bytes = self.staging.split().freeze();
            let retries = command_name(&cmd_bytes).map_or(0, |n| self.config.retry.retries_for(n));
            self.held.push_back(Queued {
                id,
                cmd: cmd_bytes,
                deadline,
                kind: cmd.reply_kind(),
                retries,
            });
            return;
        }
        match self.open(now) {
            Ok(conn) => send_on(
                self.shared.insert(conn),
                &self.config.retry,
                id,
                cmd,
                deadline,
                &mut self.out,
            ),
            Err(reason) => self.fail(id, Error::Connection(reason)),
        }
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
        self.pool
            .checkout(Use::Leased(lease), &mut ctx!(self, now))?;
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
        if self.pool.has_lease(lease) {
            self.pool
                .send(Use::Leased(lease), id, cmd, deadline, &mut self.out);
        } else {
            self.fail(id, Error::Shutdown);
        }
        id
    }

    /// Gives a leased connection back. It is kept for reuse only when it
    /// is clean: no transaction open (`MULTI`/`WATCH` without
    /// `EXEC`/`DISCARD`/`UNWATCH`) and no reply still due.
    pub fn release(&mut self, now: Instant, lease: LeaseId) {
        let refill = self.may_refill();
        let mut ctx = ctx!(self, now);
        self.pool.release(lease, &mut ctx);
        self.pool.settle(&mut ctx, refill);
    }

    /// Forgets a request: no event will be reported for it. Its reply, if
    /// it was written already, is read and discarded.
    pub fn cancel(&mut self, id: RequestId) {
        self.held.retain(|q| q.id != id);
        let cancelled = self.shared.as_mut().is_some_and(|c| c.cancel(id));
        if !cancelled {
            self.pool.cancel(id);
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
        self.phase = Phase::ShutDown;
        self.reconnect_at = None;
        let mut unwritten = core::mem::take(&mut self.held);
        if let Some(mut conn) = self.shared.take() {
            conn.close(CloseReason::Shutdown, &mut self.out);
            unwritten.extend(conn.take_unwritten());
            unwritten.extend(conn.take_retries());
        }
        unwritten.extend(self.pool.shutdown(&mut self.out));
        for q in unwritten {
            self.fail(q.id, Error::Shutdown);
        }
    }

    /// Opens the shared connection now if there is none (and the backoff
    /// allows), without a request: for adapters that wait until the client
    /// is connected. The outcome is reported as an [`Event::Status`].
    pub fn connect(&mut self, now: Instant) {
        if self.shut_down || self.gave_up.is_some() || self.shared.is_some() {
            return;
        }
        if self.reconnect_at.is_some_and(|at| now < at) {
            self.reconnect_wanted = true;
            return;
        }
        match self.open(now) {
            Ok(conn) => self.shared = Some(conn),
            Err(reason) => self
                .out
                .events
                .push_back(Event::Status(Status::Disconnected { reason })),
        }
    }

    /// Whether the shared connection has finished its handshake.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|c| c.phase() == ConnPhase::Ready)
    }

    /// The one deadline of TCP connect + TLS + the server handshake.
    #[must_use]
    pub const fn handshake_timeout(&self) -> Duration {
        self.config.conn.handshake_timeout
    }

    /// The phase of the reconnect machine.
    #[must_use]
    pub const fn reconnect_phase(&self) -> Phase {
        self.phase
    }

    // ---- inputs from the adapter ---------------------------------------

    /// The socket connected.
    pub fn handle_connected(&mut self, now: Instant, socket: SocketId) {
        if let Some(conn) = find(&mut self.shared, &mut self.pool, socket) {
            conn.on_connected(now, &self.config.conn, &mut self.out);
        }
        self.settle(now);
    }

    /// The socket could not connect.
    pub fn handle_connect_failed(&mut self, now: Instant, socket: SocketId, error: IoError) {
        if let Some(conn) = find(&mut self.shared, &mut self.pool, socket) {
            conn.close(CloseReason::ConnectFailed(error), &mut self.out);
        }
        self.settle(now);
    }

    /// Bytes arrived on the socket.
    pub fn handle_data(&mut self, now: Instant, socket: SocketId, data: &[u8]) {
        if let Some(conn) = find(&mut self.shared, &mut self.pool, socket) {
            conn.on_data(now, data, &self.config.conn, &mut self.out);
        }
        self.settle(now);
    }

    /// The peer closed the socket (a read returned 0 bytes).
    pub fn handle_eof(&mut self, now: Instant, socket: SocketId) {
        if let Some(conn) = find(&mut self.shared, &mut self.pool, socket) {
            conn.close(CloseReason::Eof, &mut self.out);
        }
        self.settle(now);
    }

    /// A read or write on the socket failed.
    pub fn handle_io_error(&mut self, now: Instant, socket: SocketId, error: IoError) {
        if let Some(conn) = find(&mut self.shared, &mut self.pool, socket) {
            conn.close(CloseReason::Io(error), &mut self.out);
        }
        self.settle(now);
    }

    /// A probe ([`Effect::Probe`]) found nothing waiting on the socket:
    /// what was read meanwhile was reported with `handle_data`, an EOF or an
    /// error with `handle_eof` or `handle_io_error`.
    pub fn handle_probe_done(&mut self, _now: Instant, socket: SocketId) {
        if let Some(conn) = find(&mut self.shared, &mut self.pool, socket)
            && conn.on_probe_done()
        {
            self.stats.probes_alive += 1;
        }
        // Nothing to settle: a probe that found nothing changes no state
        // but the connection's own (what waited is now written).
    }

    /// The time is `now`. Calling it early or repeatedly is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(conn) = &mut self.shared {
            conn.on_timeout(now, &mut self.out);
        }
        self.pool.on_timeout(&mut ctx!(self, now));
        let out = &mut self.out;
        let error = self
            .last_failure
            .clone()
            .map_or(Error::Timeout, Error::Connection);
        self.held.retain(|q| {
            let expired = q.deadline.is_some_and(|at| at <= now);
            if expired {
                out.events.push_back(Event::Response {
                    id: q.id,
                    result: Err(error.clone()),
                });
            }
            !expired
        });
        if self.reconnect_at.is_some_and(|at| at <= now) {
            self.reconnect_at = None;
            if self.shared.is_none()
                && (self.reconnect_wanted || !self.held.is_empty())
                && !self.shut_down
            {
                self.reconnect_wanted = false;
                match self.open(now) {
                    Ok(conn) => self.shared = Some(conn),
                    Err(reason) => self.fail_held(&reason),
                }
            }
        }
        self.settle(now);
    }

    // ---- outputs --------------------------------------------------------

    /// The next thing the adapter must do. Call until `None` after every
    /// input and every application command.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        if let Some(effect) = self.out.effects.pop_front() {
            return Some(effect);
        }
        let conns = self.shared.iter_mut().chain(self.pool.conns_mut());
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
        let conns = self.shared.iter();
        let held = self.held.iter().filter_map(|q| q.deadline);
        // The backoff only wakes the client when something waits for it.
        let reconnect = self
            .reconnect_at
            .filter(|_| self.reconnect_wanted || !self.held.is_empty());
        conns
            .filter_map(Conn::next_timeout)
            .chain(held)
            .chain(reconnect)
            .chain(self.pool.next_timeout(&self.config.pool))
            .min()
    }

    // ---- getters ----------------------------------------------------------

    /// The phase of the shared connection, if there is one.
    #[must_use]
    pub fn phase(&self) -> Option<ConnPhase> {
        self.shared.as_ref().map(Conn::phase)
    }

    /// Requests awaiting their reply on the shared connection (written or
    /// waiting for its handshake).
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.shared.as_ref().map_or(0, Conn::in_flight)
    }

    /// Whether the client expects bytes on `socket`: its connection is
    /// still opening (TCP, TLS, handshake), has requests outstanding
    /// (cancelled ones included, their replies must be read and dropped),
    /// is being probed (bytes a probe found wait to be read), or carries
    /// the subscriptions. An adapter that reads a socket only
    /// while this holds still serves every request and push; reading at
    /// other times only notices a peer's close early (the liveness probe
    /// before the next write notices it too). `false` for a socket the
    /// client no longer knows.
    #[must_use]
    pub fn expects_data(&self, socket: SocketId) -> bool {
        let expects = |conn: &Conn, subscribed: bool| match conn.phase() {
            ConnPhase::Connecting | ConnPhase::Tls | ConnPhase::Handshake => true,
            ConnPhase::Ready => !conn.is_quiet() || conn.is_probing() || subscribed,
            ConnPhase::Closed => false,
        };
        if let Some(conn) = self.shared.as_ref().filter(|c| c.socket() == socket) {
            return expects(conn, !self.subscriptions.is_empty());
        }
        self.pool
            .conns()
            .find(|c| c.socket() == socket)
            .is_some_and(|c| expects(c, false))
    }

    /// When the dedicated connection of `socket` was handed to its current
    /// user (a lease or a blocking command): the instant of its checkout
    /// decision, whose probe rule covers everything the user then writes
    /// to it (a held lease is not checked again). `None` for the shared
    /// connection and for idle ones. For diagnostics and the simulation's
    /// liveness check.
    #[must_use]
    pub fn checked_out_at(&self, socket: SocketId) -> Option<Instant> {
        self.pool.checked_out_at(socket)
    }

    /// Open dedicated connections (blocking commands and leases).
    #[must_use]
    pub fn dedicated_connections(&self) -> usize {
        self.pool
            .conns()
            .filter(|c| c.phase() != ConnPhase::Closed)
            .count()
    }

    /// What the pool holds and has done.
    #[must_use]
    pub fn pool_stats(&self) -> PoolStats {
        let (open, idle, in_use, waiters) = self.pool.counts();
        let shared = usize::from(
            self.shared
                .as_ref()
                .is_some_and(|c| c.phase() != ConnPhase::Closed),
        );
        PoolStats {
            open: open + shared,
            idle,
            in_use: in_use + shared,
            waiters,
            closed: self.out.closed.clone(),
            ..self.stats.clone()
        }
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

    /// Opens the shared connection.
    fn open(&mut self, now: Instant) -> Result<Conn, CloseReason> {
        self.failing = None;
        self.shared_created = now;
        ctx!(self, now).open()
    }

    /// Whether the pool may open idle connections ahead: only while the
    /// server is known to answer, never during a backoff.
    fn may_refill(&self) -> bool {
        self.phase == Phase::Established
            && self.reconnect_at.is_none()
            && self.gave_up.is_none()
            && !self.shut_down
            && self.is_connected()
    }

    /// After every input: moves held requests onto a connection that became
    /// ready, decides what follows a closed shared connection (the
    /// reconnect policy), and lets the pool settle its connections.
    fn settle(&mut self, now: Instant) {
        if let Some(conn) = &mut self.shared {
            match conn.phase() {
                ConnPhase::Ready if self.connected != Some(conn.socket()) => {
                    let renewed = self.connected.is_some();
                    self.connected = Some(conn.socket());
                    self.last_failure = None;
                    self.phase = Phase::Established;
                    self.attempt = 0;
                    if renewed {
                        renew_subscriptions(
                            conn,
                            &self.subscriptions,
                            &mut self.next_request,
                            &mut self.out,
                        );
                    }
                    // Mutation check (scripts/mutants.sh): held requests lost.
                    #[cfg(redpoll_mutant = "drop_held_on_reconnect")]
                    self.held.clear();
                    for q in self.held.drain(..) {
                        conn.requeue(q);
                    }
                    self.pool.resume();
                    self.out.events.push_back(Event::Status(Status::Connected));
                }
                ConnPhase::Closed => self.shared_closed(now),
                _ => {}
            }
        }
        if !self.pool.is_empty() || self.config.pool.min_idle > 0 {
            let refill = self.may_refill();
            self.pool.settle(&mut ctx!(self, now), refill);
        }
    }

    /// The shared connection closed: the reconnect decision.
    fn shared_closed(&mut self, now: Instant) {
        let Some(mut conn) = self.shared.take() else {
            return;
        };
        let reason = conn
            .close_reason()
            .cloned()
            .unwrap_or(CloseReason::Shutdown);
        if conn.is_probing() {
            self.stats.probes_dead += 1;
        }
        self.last_failure = Some(reason.clone());
        // Written requests that may go again first, then the never written
        // (neither spent anything on a stale connection).
        let retries = conn.take_retries();
        self.stats.retries += retries.len() as u64;
        let unwritten = conn.take_unwritten();
        let held = core::mem::take(&mut self.held);
        self.held.extend(retries);
        self.held.extend(unwritten);
        self.held.extend(held);
        let Some(class) = reconnect::classify(&reason) else {
            self.fail_held(&reason);
            return;
        };
        self.out
            .events
            .push_back(Event::Status(Status::Disconnected {
                reason: reason.clone(),
            }));
        match reconnect::decide(
            &self.config.reconnect,
            class,
            self.phase,
            self.attempt,
            &mut self.jitter,
        ) {
            Decision::Reconnect { after } => {
                self.attempt += 1;
                let at = now.saturating_add(after);
                self.reconnect_at = Some(at);
                // Once established, the client reconnects on its own and
                // holds requests meanwhile (up to their deadlines); before,
                // it reconnects when asked, and its callers learn why the
                // first connection failed.
                self.reconnect_wanted = self.phase == Phase::Established;
                if !(self.reconnect_wanted && self.config.reconnect.hold_requests) {
                    self.fail_held(&reason);
                }
                if !self.reconnect_wanted {
                    self.failing = Some(reason.clone());
                }
                if self.reconnect_wanted {
                    self.out
                        .events
                        .push_back(Event::Status(Status::Reconnecting {
                            attempt: self.attempt,
                            at,
                        }));
                }
            }
            Decision::FailFast => {
                self.fail_held(&reason);
                self.failing = Some(reason.clone());
                // A new request may try again, but not before the backoff.
                let after =
                    reconnect::backoff(&self.config.reconnect, self.attempt, &mut self.jitter);
                self.attempt += 1;
                self.reconnect_at = Some(now.saturating_add(after));
                self.reconnect_wanted = false;
            }
            Decision::GiveUp => {
                self.fail_held(&reason);
                self.reconnect_at = None;
                self.out.events.push_back(Event::Status(Status::GaveUp {
                    reason: reason.clone(),
                }));
                self.gave_up = Some(reason);
            }
        }
    }

    /// Keeps the channels of a (P|S)SUBSCRIBE, forgets those of an
    /// (P|S)UNSUBSCRIBE (all of its kind without arguments).
    fn track_subscriptions<C: Command + ?Sized>(&mut self, cmd: &C) {
        let (subscribe, kind) = match cmd.reply_kind() {
            ReplyKind::Reply => return,
            ReplyKind::Subscribe(kind) => (true, kind),
            ReplyKind::Unsubscribe(kind) => (false, kind),
        };
        let start = self.staging.len();
        cmd.encode(&mut self.staging);
        let mut encoded = self.staging.split_off(start);
        let Ok(Some(Frame::Array(args))) = Decoder::new().decode(&mut encoded) else {
            return;
        };
        let names: Vec<Bytes> = args
            .into_iter()
            .skip(1)
            .filter_map(|a| match a {
                Frame::Bulk(b) => Some(b),
                _ => None,
            })
            .collect();
        if subscribe {
            for name in names {
                if !self
                    .subscriptions
                    .iter()
                    .any(|(k, n)| *k == kind && *n == name)
                {
                    self.subscriptions.push((kind, name));
                }
            }
        } else if names.is_empty() {
            self.subscriptions.retain(|(k, _)| *k != kind);
        } else {
            self.subscriptions
                .retain(|(k, n)| *k != kind || !names.contains(n));
        }
    }

    fn fail_held(&mut self, reason: &CloseReason) {
        for q in core::mem::take(&mut self.held) {
            self.fail(q.id, Error::Connection(reason.clone()));
        }
    }
}

/// The connection of `socket`, if it is still the client's.
fn find<'a>(
    shared: &'a mut Option<Conn>,
    pool: &'a mut Pool,
    socket: SocketId,
) -> Option<&'a mut Conn> {
    if let Some(conn) = shared.as_mut().filter(|c| c.socket() == socket) {
        return Some(conn);
    }
    pool.find(socket)
}

/// Sends on the shared connection, keeping the command for a retry when
/// the policy has any.
#[inline]
fn send_on<C: Command + ?Sized>(
    conn: &mut Conn,
    retry: &RetryPolicy,
    id: RequestId,
    cmd: &C,
    deadline: Option<Instant>,
    out: &mut Outputs,
) {
    if retry.attempts == 0 {
        conn.send(id, cmd, deadline, out);
    } else {
        conn.send_retriable(id, cmd, deadline, retry, out);
    }
}

/// Subscribes a new shared connection to everything the previous one was
/// subscribed to. Nobody waits for these requests: they are cancelled at
/// once, and their confirmations are swallowed by their tombstones or
/// reach the application as pushes.
fn renew_subscriptions(
    conn: &mut Conn,
    subscriptions: &[(SubscriptionKind, Bytes)],
    next_request: &mut u64,
    out: &mut Outputs,
) {
    for kind in [
        SubscriptionKind::Channel,
        SubscriptionKind::Pattern,
        SubscriptionKind::Shard,
    ] {
        let names: Vec<&Bytes> = subscriptions
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n)
            .collect();
        if names.is_empty() {
            continue;
        }
        let cmd = match kind {
            SubscriptionKind::Channel => crate::cmd::subscribe(names),
            SubscriptionKind::Pattern => crate::cmd::psubscribe(names),
            SubscriptionKind::Shard => crate::cmd::ssubscribe(names),
        };
        let id = RequestId(*next_request);
        *next_request += 1;
        conn.send(id, &cmd, None, out);
        conn.cancel(id);
    }
}
