//! The connections to one node, and every decision about them.
//!
//! # What this module decides
//!
//! - **Checkout**: which connection a blocking command or a lease gets. An
//!   idle connection is first judged ([`checkout`]): too old or idle too
//!   long, it is evicted; quiet for at least [`PoolConfig::probe_after`], it
//!   is probed before anything is written to it; otherwise it is used at
//!   once. With no idle connection, a new one is opened while the pool is
//!   below [`PoolConfig::max_size`]; beyond, the caller waits in a bounded
//!   queue for [`PoolConfig::wait_timeout`], then fails with
//!   [`Error::PoolExhausted`].
//! - **Idle upkeep**: idle connections past their idle timeout or lifetime
//!   close; more idle than [`PoolConfig::max_idle`] close; fewer than
//!   [`PoolConfig::min_idle`] are opened ahead.
//! - **Retries** ([`RetryPolicy`]): which requests may be sent again after
//!   their connection failed.
//!
//! # Liveness is a transport fact (invariant I2)
//!
//! TLS lives in the core, so adapters hold raw sockets only, and a probe
//! ([`Effect::Probe`](crate::Effect::Probe)) is the same for TLS and plain
//! connections: the adapter reads the raw socket without blocking and
//! reports what it found: bytes (fed to the core like any other, never
//! thrown away), an EOF, an error, or nothing waiting
//! ([`Client::handle_probe_done`](crate::client::Client::handle_probe_done)).
//! The core decides: an EOF or a TLS `close_notify` means dead; TLS
//! housekeeping records (session tickets, key updates) mean alive; any
//! other application data on a connection nobody waits on means it is out
//! of sync, and it is closed.
//!
//! # Invariants
//!
//! - **No connection known dead is handed out**: while a probe is out,
//!   requests wait unwritten; a connection found dead is closed and its
//!   user moves to another connection with everything it had queued.
//! - **A stale connection never spends a retry**: a request counts against
//!   its retry budget only once written to a connection believed alive;
//!   requests never written (behind a handshake or a probe) move to the
//!   next connection for free.
//! - The pool never holds more than `max_size` connections, and its waiters
//!   queue never more than `max_waiters` callers.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::command::Command;
use crate::conn::{Conn, ConnConfig, Outputs, Phase, Queued};
use crate::error::Error;
use crate::id::{LeaseId, RequestId, SocketId};
use crate::io::{CloseReason, Effect, Event};
use crate::time::{Duration, Instant};

/// The knobs of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most dedicated connections (blocking commands and leases, idle ones
    /// included) open at once, besides the shared one. Default: 16.
    pub max_size: usize,
    /// Idle connections opened ahead and kept ready. Default: 0.
    pub min_idle: usize,
    /// Idle connections kept for reuse; more are closed. Default: 2.
    pub max_idle: usize,
    /// An idle connection unused for this long is closed. Default: 5 min.
    pub idle_timeout: Option<Duration>,
    /// A connection this old is closed instead of being handed out.
    /// Default: none.
    pub max_lifetime: Option<Duration>,
    /// A connection quiet for at least this long is probed before use (see
    /// the [module docs](self)); `None`: never. Default: zero, every quiet
    /// connection is probed, which costs one non-blocking read.
    pub probe_after: Option<Duration>,
    /// Callers waiting for a connection at most; beyond, they fail at once
    /// with [`Error::PoolExhausted`]. Default: 1024.
    pub max_waiters: usize,
    /// How long a caller waits for a connection. Default: 5 s.
    pub wait_timeout: Duration,
}

impl PoolConfig {
    /// The defaults, as documented on each field.
    pub const DEFAULT: Self = Self {
        max_size: 16,
        min_idle: 0,
        max_idle: 2,
        idle_timeout: Some(Duration::from_secs(300)),
        max_lifetime: None,
        probe_after: Some(Duration::ZERO),
        max_waiters: 1024,
        wait_timeout: Duration::from_secs(5),
    };
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which requests are sent again when the connection they were written to
/// fails (EOF, reset) before their reply.
///
/// Requests never written (queued behind a handshake or a probe) are not
/// retries: they always move to the next connection. Server error replies
/// are never retried. Reads ([`is_read_only`](crate::command::is_read_only))
/// are safe to send twice; writes only when `writes` is set, since the
/// server may have run them already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times a request may be sent again. Default: 0.
    pub attempts: u8,
    /// Whether writes are sent again too. Default: no.
    pub writes: bool,
}

impl RetryPolicy {
    /// No retries.
    pub const NONE: Self = Self {
        attempts: 0,
        writes: false,
    };

    /// How many retries the command named `name` gets.
    #[must_use]
    pub fn retries_for(&self, name: &[u8]) -> u8 {
        if self.attempts == 0 || !(self.writes || crate::command::is_read_only(name)) {
            return 0;
        }
        self.attempts
    }
}

/// What a connection looks like to the checkout decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnFacts {
    /// When it was opened.
    pub created: Instant,
    /// When it last heard from the server; for an idle connection, since
    /// when it has been idle.
    pub quiet_since: Instant,
}

/// The checkout decision for an idle connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it out.
    Use,
    /// Probe it first; requests wait unwritten for the outcome.
    ProbeFirst,
    /// Close it; try the next one.
    Evict(Evict),
}

/// Why the pool closed a connection on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Evict {
    /// Idle for longer than [`PoolConfig::idle_timeout`].
    IdleTimeout,
    /// Older than [`PoolConfig::max_lifetime`].
    Lifetime,
}

impl From<Evict> for CloseReason {
    fn from(evict: Evict) -> Self {
        match evict {
            Evict::IdleTimeout => Self::IdleTimeout,
            Evict::Lifetime => Self::Lifetime,
        }
    }
}

/// The checkout decision: what to do with an idle connection before it is
/// handed out at `now`.
#[must_use]
pub fn checkout(config: &PoolConfig, facts: ConnFacts, now: Instant) -> Verdict {
    match expired(config, facts, now) {
        Some(evict) => Verdict::Evict(evict),
        None => probe_rule(config, facts, now),
    }
}

/// Use at once, or probe first: quiet for at least `probe_after`.
fn probe_rule(config: &PoolConfig, facts: ConnFacts, now: Instant) -> Verdict {
    // Mutation check (scripts/mutants.sh): no probe, a quiet connection is
    // handed out as it is (I2).
    #[cfg(redpoll_mutant = "skip_probe")]
    let config = &PoolConfig {
        probe_after: None,
        ..config.clone()
    };
    match config.probe_after {
        Some(after) if now.saturating_duration_since(facts.quiet_since) >= after => {
            Verdict::ProbeFirst
        }
        _ => Verdict::Use,
    }
}

/// The checkout decision for the shared connection, when a request finds
/// it quiet: only its lifetime and the probe rule apply (it is the client's
/// link, not an idle spare, so the idle timeout does not).
#[must_use]
pub fn checkout_shared(config: &PoolConfig, facts: ConnFacts, now: Instant) -> Verdict {
    let aged = config
        .max_lifetime
        .is_some_and(|d| facts.created.saturating_add(d) <= now);
    if aged {
        return Verdict::Evict(Evict::Lifetime);
    }
    probe_rule(config, facts, now)
}

/// Whether an idle connection must go at `now`, and why.
#[must_use]
pub fn expired(config: &PoolConfig, facts: ConnFacts, now: Instant) -> Option<Evict> {
    match expiry(config, facts) {
        Some((at, evict)) if at <= now => Some(evict),
        _ => None,
    }
}

/// When an idle connection expires, and why: the earlier of its lifetime
/// and its idle timeout.
#[must_use]
pub fn expiry(config: &PoolConfig, facts: ConnFacts) -> Option<(Instant, Evict)> {
    let lifetime = config
        .max_lifetime
        .map(|d| (facts.created.saturating_add(d), Evict::Lifetime));
    let idle = config
        .idle_timeout
        .map(|d| (facts.quiet_since.saturating_add(d), Evict::IdleTimeout));
    match (lifetime, idle) {
        (Some(l), Some(i)) => Some(if l.0 <= i.0 { l } else { i }),
        (l, i) => l.or(i),
    }
}

/// What a pool has done and holds, for both adapters to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Sockets open or opening, the shared connection included.
    pub open: usize,
    /// Dedicated connections idle.
    pub idle: usize,
    /// Connections serving a user: the shared one, blocking commands, leases.
    pub in_use: usize,
    /// Callers waiting for a dedicated connection.
    pub waiters: usize,
    /// Connections opened so far.
    pub created: u64,
    /// Connections closed so far, by reason.
    pub closed: ClosedCounts,
    /// Probes asked for.
    pub probes: u64,
    /// Probes that found the connection alive.
    pub probes_alive: u64,
    /// Probes that found the connection dead (EOF, error, stray data).
    pub probes_dead: u64,
    /// Callers that gave up waiting for a connection.
    pub wait_timeouts: u64,
    /// Requests sent again after their connection failed.
    pub retries: u64,
}

/// Connections closed, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClosedCounts {
    /// By the server (EOF, TLS close_notify).
    pub eof: u64,
    /// By a transport error (reset, refused, ...).
    pub io: u64,
    /// Idle for too long.
    pub idle_timeout: u64,
    /// Older than the maximum lifetime.
    pub lifetime: u64,
    /// Idle beyond the number kept.
    pub surplus: u64,
    /// Given back in an unknown state.
    pub unclean: u64,
    /// Silent after a request timed out.
    pub stalled: u64,
    /// The handshake failed or passed its deadline.
    pub handshake: u64,
    /// Shut down.
    pub shutdown: u64,
    /// Any other reason (protocol, TLS, out of sync).
    pub other: u64,
}

impl ClosedCounts {
    /// Counts one close.
    pub(crate) fn record(&mut self, reason: &CloseReason) {
        let counter = match reason {
            CloseReason::Eof => &mut self.eof,
            CloseReason::Io(_) | CloseReason::ConnectFailed(_) => &mut self.io,
            CloseReason::IdleTimeout => &mut self.idle_timeout,
            CloseReason::Lifetime => &mut self.lifetime,
            CloseReason::Surplus => &mut self.surplus,
            CloseReason::Unclean => &mut self.unclean,
            CloseReason::Stalled => &mut self.stalled,
            CloseReason::HandshakeDeadline | CloseReason::Handshake(_) => &mut self.handshake,
            CloseReason::Shutdown => &mut self.shutdown,
            _ => &mut self.other,
        };
        *counter += 1;
    }

    /// Every close counted.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.eof
            + self.io
            + self.idle_timeout
            + self.lifetime
            + self.surplus
            + self.unclean
            + self.stalled
            + self.handshake
            + self.shutdown
            + self.other
    }
}

// ---- the pool of dedicated connections -------------------------------------

/// What a dedicated connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Idle,
    /// A blocking command (its request): back to idle once answered.
    Blocking(RequestId),
    Leased(LeaseId),
}

#[derive(Debug)]
struct Pooled {
    conn: Conn,
    use_: Use,
    created: Instant,
    /// `conn.written()` when it was handed to its user: if it fails with
    /// nothing more written, the user moves on to another connection.
    written_at_checkout: u64,
    /// When it was handed to its user (the checkout decision's instant).
    checked_out_at: Instant,
}

impl Pooled {
    fn facts(&self) -> ConnFacts {
        ConnFacts {
            created: self.created,
            quiet_since: self.conn.last_rx(),
        }
    }
}

/// A caller waiting for a connection, with what it sent meanwhile.
#[derive(Debug)]
struct Waiter {
    use_: Use,
    deadline: Instant,
    queue: VecDeque<Queued>,
    /// Gave up waiting; kept (leases only) so that later sends fail with the
    /// same reason until the lease is released.
    expired: bool,
}

/// What opening a connection needs from the client.
pub(crate) struct Ctx<'a> {
    pub(crate) conn: &'a ConnConfig,
    pub(crate) pool: &'a PoolConfig,
    pub(crate) next_socket: &'a mut u64,
    pub(crate) out: &'a mut Outputs,
    pub(crate) stats: &'a mut PoolStats,
    pub(crate) now: Instant,
    /// Set while the client waits out its reconnect backoff: why its
    /// connection failed. No new connection is opened meanwhile.
    pub(crate) backoff: Option<&'a CloseReason>,
}

impl Ctx<'_> {
    /// A new connection; its `Connect` is emitted.
    pub(crate) fn open(&mut self) -> Result<Conn, CloseReason> {
        let socket = SocketId(*self.next_socket);
        *self.next_socket += 1;
        let conn = Conn::new(socket, self.conn, self.now)?;
        self.stats.created += 1;
        self.out.effects.push_back(Effect::Connect {
            socket,
            address: self.conn.address.clone(),
        });
        Ok(conn)
    }

    fn probe(&mut self, conn: &mut Conn) {
        if conn.phase() == Phase::Ready && !conn.is_probing() {
            self.stats.probes += 1;
            conn.probe(self.out);
        }
    }
}

/// The dedicated connections of one node: blocking commands and leases.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    conns: Vec<Pooled>,
    waiters: VecDeque<Waiter>,
    /// After a connection failed before its handshake finished: until
    /// when no new connection is opened, and why (callers that would need
    /// one fail with it at once: no reconnect storm).
    paused: Option<(Instant, CloseReason)>,
}

/// How long the pool opens no connection after one failed before it ever
/// worked.
const PAUSE: Duration = Duration::from_secs(1);

impl Pool {
    /// Puts a connection to `use_`: an idle one (after the checkout
    /// decision), a new one, or a place in the waiters queue (`Ok(false)`).
    pub(crate) fn checkout(&mut self, use_: Use, ctx: &mut Ctx<'_>) -> Result<bool, Error> {
        // The most recently used idle connection first: the others age out.
        while let Some(i) = self.conns.iter().rposition(|p| p.use_ == Use::Idle) {
            let pooled = &mut self.conns[i];
            match checkout(ctx.pool, pooled.facts(), ctx.now) {
                Verdict::Evict(evict) => {
                    pooled.conn.close(evict.into(), ctx.out);
                    self.conns.swap_remove(i);
                }
                verdict => {
                    if verdict == Verdict::ProbeFirst {
                        ctx.probe(&mut pooled.conn);
                    }
                    pooled.use_ = use_;
                    pooled.written_at_checkout = pooled.conn.written();
                    pooled.checked_out_at = ctx.now;
                    return Ok(true);
                }
            }
        }
        let paused = self.pause(ctx);
        if self.conns.len() < ctx.pool.max_size && paused.is_none() {
            self.open(use_, ctx).map_err(Error::Connection)?;
            return Ok(true);
        }
        // Full, or no new connection for now: wait for one.
        if self.waiters.len() >= ctx.pool.max_waiters {
            return Err(paused.map_or(Error::PoolExhausted, Error::Connection));
        }
        self.waiters.push_back(Waiter {
            use_,
            deadline: ctx.now.saturating_add(ctx.pool.wait_timeout),
            queue: VecDeque::new(),
            expired: false,
        });
        Ok(false)
    }

    /// Why no connection may be opened now, if so: the client's backoff
    /// after its own connection failed, or the pool's pause.
    fn pause(&mut self, ctx: &Ctx<'_>) -> Option<CloseReason> {
        if let Some(reason) = ctx.backoff {
            return Some(reason.clone());
        }
        match &self.paused {
            Some((until, reason)) if ctx.now < *until => Some(reason.clone()),
            _ => {
                self.paused = None;
                None
            }
        }
    }

    fn open(&mut self, use_: Use, ctx: &mut Ctx<'_>) -> Result<(), CloseReason> {
        let conn = ctx.open()?;
        self.conns.push(Pooled {
            written_at_checkout: conn.written(),
            conn,
            use_,
            created: ctx.now,
            checked_out_at: ctx.now,
        });
        Ok(())
    }

    /// Sends a request for the user `use_` (a blocking command just checked
    /// out, or a lease): on its connection, or queued with its waiter.
    pub(crate) fn send<C: Command + ?Sized>(
        &mut self,
        use_: Use,
        id: RequestId,
        cmd: &C,
        deadline: Option<Instant>,
        out: &mut Outputs,
    ) {
        if let Some(p) = self.conns.iter_mut().find(|p| p.use_ == use_) {
            return match use_ {
                Use::Leased(_) => p.conn.send_tracked(id, cmd, deadline, out),
                _ => p.conn.send(id, cmd, deadline, out),
            };
        }
        let Some(w) = self.waiters.iter_mut().find(|w| w.use_ == use_) else {
            return fail(out, id, Error::PoolExhausted);
        };
        if w.expired {
            return fail(out, id, Error::PoolExhausted);
        }
        let mut buf = bytes::BytesMut::new();
        cmd.encode(&mut buf);
        w.queue.push_back(Queued {
            id,
            cmd: buf.freeze(),
            deadline,
            kind: cmd.reply_kind(),
            retries: 0,
        });
    }

    /// Whether the pool holds no connection and no waiter.
    pub(crate) fn is_empty(&self) -> bool {
        self.conns.is_empty() && self.waiters.is_empty()
    }

    /// Whether `lease` is known (on a connection or waiting).
    pub(crate) fn has_lease(&self, lease: LeaseId) -> bool {
        let use_ = Use::Leased(lease);
        self.conns.iter().any(|p| p.use_ == use_) || self.waiters.iter().any(|w| w.use_ == use_)
    }

    /// Gives a leased connection back: kept only when clean.
    pub(crate) fn release(&mut self, lease: LeaseId, ctx: &mut Ctx<'_>) {
        let use_ = Use::Leased(lease);
        if let Some(i) = self.waiters.iter().position(|w| w.use_ == use_) {
            for q in self.waiters.remove(i).into_iter().flat_map(|w| w.queue) {
                fail(ctx.out, q.id, Error::Connection(CloseReason::Unclean));
            }
            return;
        }
        let Some(i) = self.conns.iter().position(|p| p.use_ == use_) else {
            return;
        };
        let p = &mut self.conns[i];
        if p.conn.phase() == Phase::Closed {
            self.conns.swap_remove(i);
        } else if p.conn.in_transaction() || !p.conn.is_quiet() {
            // Its requests still waiting (behind a handshake or a probe)
            // end too: every request completes once.
            p.conn.close(CloseReason::Unclean, ctx.out);
            for q in p.conn.take_unwritten() {
                fail(ctx.out, q.id, Error::Connection(CloseReason::Unclean));
            }
            self.conns.swap_remove(i);
        } else {
            p.use_ = Use::Idle;
        }
    }

    /// When the connection of `socket` was handed to its current user;
    /// `None` when it is idle or not in the pool.
    pub(crate) fn checked_out_at(&self, socket: SocketId) -> Option<Instant> {
        self.conns
            .iter()
            .find(|p| p.conn.socket() == socket && p.use_ != Use::Idle)
            .map(|p| p.checked_out_at)
    }

    /// The connection of `socket`.
    pub(crate) fn find(&mut self, socket: SocketId) -> Option<&mut Conn> {
        self.conns
            .iter_mut()
            .map(|p| &mut p.conn)
            .find(|c| c.socket() == socket)
    }

    /// Every connection.
    pub(crate) fn conns_mut(&mut self) -> impl Iterator<Item = &mut Conn> {
        self.conns.iter_mut().map(|p| &mut p.conn)
    }

    /// Every connection.
    pub(crate) fn conns(&self) -> impl Iterator<Item = &Conn> {
        self.conns.iter().map(|p| &p.conn)
    }

    /// Forgets a request; whether it was found.
    pub(crate) fn cancel(&mut self, id: RequestId) -> bool {
        for w in &mut self.waiters {
            if let Some(i) = w.queue.iter().position(|q| q.id == id) {
                w.queue.remove(i);
                return true;
            }
        }
        self.conns.iter_mut().any(|p| p.conn.cancel(id))
    }

    /// Closes everything; the requests never written are returned.
    pub(crate) fn shutdown(&mut self, out: &mut Outputs) -> Vec<Queued> {
        let mut unwritten = Vec::new();
        for mut p in self.conns.drain(..) {
            p.conn.close(CloseReason::Shutdown, out);
            unwritten.extend(p.conn.take_unwritten());
        }
        for w in self.waiters.drain(..) {
            unwritten.extend(w.queue);
        }
        unwritten
    }

    /// Deadlines: of the connections, of the waiters, of idle connections.
    /// The client settles the pool afterwards.
    pub(crate) fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        if self.paused.as_ref().is_some_and(|(until, _)| *until <= now) {
            self.paused = None;
        }
        for p in &mut self.conns {
            p.conn.on_timeout(now, ctx.out);
            if p.use_ == Use::Idle
                && p.conn.phase() == Phase::Ready
                && let Some(evict) = expired(ctx.pool, p.facts(), now)
            {
                p.conn.close(evict.into(), ctx.out);
            }
        }
        for w in &mut self.waiters {
            // Requests fail by their own deadline while they wait.
            w.queue.retain(|q| {
                let due = q.deadline.is_some_and(|at| at <= now);
                if due {
                    fail(ctx.out, q.id, Error::Timeout);
                }
                !due
            });
            if !w.expired && w.deadline <= now {
                w.expired = true;
                ctx.stats.wait_timeouts += 1;
                for q in w.queue.drain(..) {
                    fail(ctx.out, q.id, Error::PoolExhausted);
                }
            }
        }
        // A blocking command that gave up waiting is done; a lease stays
        // (expired) until released.
        self.waiters
            .retain(|w| !(w.expired && matches!(w.use_, Use::Blocking(_))));
    }

    /// The next deadline of the pool.
    pub(crate) fn next_timeout(&self, config: &PoolConfig) -> Option<Instant> {
        let conns = self.conns.iter().filter_map(|p| p.conn.next_timeout());
        let idle = self
            .conns
            .iter()
            .filter(|p| p.use_ == Use::Idle && p.conn.phase() == Phase::Ready)
            .filter_map(|p| expiry(config, p.facts()).map(|(at, _)| at));
        let waiters = self.waiters.iter().filter(|w| !w.expired).flat_map(|w| {
            let requests = w.queue.iter().filter_map(|q| q.deadline);
            core::iter::once(w.deadline).chain(requests)
        });
        // The end of a pause, to serve the waiters it held up.
        let pause = self
            .paused
            .as_ref()
            .filter(|_| !self.waiters.is_empty())
            .map(|(until, _)| *until);
        conns.chain(idle).chain(waiters).chain(pause).min()
    }

    /// A connection to the node finished its handshake: the node answers,
    /// the pause is over.
    pub(crate) fn resume(&mut self) {
        self.paused = None;
    }

    /// After every input: forgets closed connections (moving their users on
    /// when nothing of theirs was written), frees the connections of
    /// finished blocking commands, hands free connections to waiters, trims
    /// and refills the idle ones (`refill`: opening is allowed now).
    pub(crate) fn settle(&mut self, ctx: &mut Ctx<'_>, refill: bool) {
        let mut moved: Vec<(Use, VecDeque<Queued>)> = Vec::new();
        self.conns.retain_mut(|p| {
            if p.conn.phase() != Phase::Closed {
                if matches!(p.use_, Use::Blocking(_)) && p.conn.is_quiet() {
                    p.use_ = Use::Idle;
                }
                return true;
            }
            if p.conn.is_probing() {
                ctx.stats.probes_dead += 1;
            }
            let mut queued = p.conn.take_unwritten();
            let retries = p.conn.take_retries();
            ctx.stats.retries += retries.len() as u64;
            queued.extend(retries);
            let untouched = p.conn.written() == p.written_at_checkout;
            if !p.conn.was_ready() {
                // Never worked (refused, handshake refused or too slow):
                // no new connection for a while, and its user hears why
                // rather than trying again at once (no storm).
                let reason = p.conn.close_reason().cloned();
                self.paused = reason.map(|r| (ctx.now.saturating_add(PAUSE), r));
            }
            match p.use_ {
                Use::Idle => false,
                // Nothing of the user was written to a connection that had
                // worked: a stale one, found out in time. The user moves
                // on, no retry spent.
                use_ if untouched && p.conn.was_ready() => {
                    moved.push((use_, queued));
                    false
                }
                use_ => {
                    let error = Error::Connection(
                        p.conn
                            .close_reason()
                            .cloned()
                            .unwrap_or(CloseReason::Shutdown),
                    );
                    for q in queued {
                        fail(ctx.out, q.id, error.clone());
                    }
                    // A leased one stays until released: later sends on it
                    // fail with its reason.
                    matches!(use_, Use::Leased(_))
                }
            }
        });
        for (use_, queued) in moved {
            self.rehome(use_, queued, ctx);
        }
        self.serve_waiters(ctx);
        self.trim_idle(ctx);
        if refill {
            self.refill(ctx);
        }
    }

    /// Gives the requests of a user whose connection was found dead to
    /// another connection (or the waiters queue).
    fn rehome(&mut self, use_: Use, queued: VecDeque<Queued>, ctx: &mut Ctx<'_>) {
        match self.checkout(use_, ctx) {
            Ok(true) => {
                let p = self
                    .conns
                    .iter_mut()
                    .find(|p| p.use_ == use_)
                    .expect("checked out just now");
                for q in queued {
                    p.conn.requeue_tracked(q);
                }
            }
            Ok(false) => {
                let w = self.waiters.back_mut().expect("queued just now");
                w.queue.extend(queued);
            }
            Err(error) => {
                for q in queued {
                    fail(ctx.out, q.id, error.clone());
                }
            }
        }
    }

    /// Hands idle connections to waiters, oldest waiter first.
    fn serve_waiters(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(i) = self.waiters.iter().position(|w| !w.expired) {
            let has_idle = self.conns.iter().any(|p| p.use_ == Use::Idle);
            if !has_idle && (self.conns.len() >= ctx.pool.max_size || self.pause(ctx).is_some()) {
                return;
            }
            let Some(w) = self.waiters.remove(i) else {
                return;
            };
            match self.checkout(w.use_, ctx) {
                Ok(true) => {
                    let p = self
                        .conns
                        .iter_mut()
                        .find(|p| p.use_ == w.use_)
                        .expect("checked out just now");
                    for q in w.queue {
                        p.conn.requeue_tracked(q);
                    }
                }
                // Cannot happen (a connection was free), but never lose
                // the waiter: back where it was.
                Ok(false) => {
                    let back = self.waiters.pop_back().expect("queued just now");
                    self.waiters.insert(
                        i,
                        Waiter {
                            queue: w.queue,
                            ..back
                        },
                    );
                    return;
                }
                Err(error) => {
                    for q in w.queue {
                        fail(ctx.out, q.id, error.clone());
                    }
                }
            }
        }
    }

    /// Closes idle connections beyond `max_idle`, the least recently used
    /// first.
    fn trim_idle(&mut self, ctx: &mut Ctx<'_>) {
        let mut idle = self.conns.iter().filter(|p| p.use_ == Use::Idle).count();
        while idle > ctx.pool.max_idle.max(ctx.pool.min_idle) {
            let Some(i) = self.conns.iter().position(|p| p.use_ == Use::Idle) else {
                return;
            };
            self.conns[i].conn.close(CloseReason::Surplus, ctx.out);
            self.conns.remove(i);
            idle -= 1;
        }
    }

    /// Opens idle connections up to `min_idle`.
    fn refill(&mut self, ctx: &mut Ctx<'_>) {
        if self.pause(ctx).is_some() {
            return;
        }
        let idle = self.conns.iter().filter(|p| p.use_ == Use::Idle).count();
        let room = ctx.pool.max_size.saturating_sub(self.conns.len());
        for _ in 0..ctx.pool.min_idle.saturating_sub(idle).min(room) {
            if self.open(Use::Idle, ctx).is_err() {
                return;
            }
        }
    }

    /// Counts for [`PoolStats`]: (open, idle, in use, waiting).
    pub(crate) fn counts(&self) -> (usize, usize, usize, usize) {
        let open = self
            .conns
            .iter()
            .filter(|p| p.conn.phase() != Phase::Closed)
            .count();
        let idle = self.conns.iter().filter(|p| p.use_ == Use::Idle).count();
        let waiting = self.waiters.iter().filter(|w| !w.expired).count();
        (open, idle, open - idle.min(open), waiting)
    }
}

fn fail(out: &mut Outputs, id: RequestId, error: Error) {
    out.events.push_back(Event::Response {
        id,
        result: Err(error),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::from_nanos(secs * 1_000_000_000)
    }

    fn facts(created: u64, quiet_since: u64) -> ConnFacts {
        ConnFacts {
            created: at(created),
            quiet_since: at(quiet_since),
        }
    }

    #[test]
    fn the_checkout_decision() {
        let config = PoolConfig {
            idle_timeout: Some(Duration::from_secs(60)),
            max_lifetime: Some(Duration::from_secs(600)),
            probe_after: Some(Duration::from_secs(1)),
            ..PoolConfig::default()
        };
        // Busy a moment ago: used at once.
        assert_eq!(checkout(&config, facts(0, 100), at(100)), Verdict::Use);
        // Quiet for the probe threshold: probed first.
        assert_eq!(
            checkout(&config, facts(0, 100), at(101)),
            Verdict::ProbeFirst
        );
        // Idle for the idle timeout: evicted.
        assert_eq!(
            checkout(&config, facts(0, 100), at(160)),
            Verdict::Evict(Evict::IdleTimeout)
        );
        // Past its lifetime, however fresh: evicted.
        assert_eq!(
            checkout(&config, facts(0, 600), at(600)),
            Verdict::Evict(Evict::Lifetime)
        );
        // The earlier expiry wins.
        assert_eq!(
            expiry(&config, facts(0, 580)),
            Some((at(600), Evict::Lifetime))
        );
        assert_eq!(
            expiry(&config, facts(0, 100)),
            Some((at(160), Evict::IdleTimeout))
        );
        let never = PoolConfig {
            idle_timeout: None,
            max_lifetime: None,
            probe_after: None,
            ..PoolConfig::default()
        };
        assert_eq!(checkout(&never, facts(0, 0), at(1_000_000)), Verdict::Use);
        assert_eq!(expiry(&never, facts(0, 0)), None);
    }

    #[test]
    fn the_default_probes_every_quiet_connection() {
        let config = PoolConfig::default();
        assert_eq!(checkout(&config, facts(5, 5), at(5)), Verdict::ProbeFirst);
    }

    #[test]
    fn only_reads_are_retried_unless_writes_are_allowed() {
        let reads = RetryPolicy {
            attempts: 2,
            writes: false,
        };
        assert_eq!(reads.retries_for(b"GET"), 2);
        assert_eq!(reads.retries_for(b"set"), 0);
        let all = RetryPolicy {
            attempts: 1,
            writes: true,
        };
        assert_eq!(all.retries_for(b"INCR"), 1);
        assert_eq!(RetryPolicy::NONE.retries_for(b"GET"), 0);
    }

    #[test]
    fn every_close_is_counted_once_under_its_reason() {
        let mut counts = ClosedCounts::default();
        counts.record(&CloseReason::Eof);
        counts.record(&CloseReason::IdleTimeout);
        counts.record(&CloseReason::UnexpectedReply);
        assert_eq!((counts.eof, counts.idle_timeout, counts.other), (1, 1, 1));
        assert_eq!(counts.total(), 3);
    }
}
