//! One socket's machine: connecting → (TLS) → server handshake → ready →
//! closed.
//!
//! # What this module decides
//!
//! When a connection may carry requests, which reply belongs to which
//! request, and when a connection can no longer be trusted and must close.
//!
//! # Invariants
//!
//! - **One deadline** (I1) covers TCP connect, the TLS handshake and the
//!   server handshake (`HELLO`/`AUTH`/`SETNAME`/`SELECT`). When it passes the
//!   connection emits `Close` (reason [`CloseReason::HandshakeDeadline`]),
//!   fails its waiters with a timeout, and says nothing more about the socket.
//! - **Exactly one `Close`** per socket, on every path: the connection's
//!   phase becomes `Closed` in one place, `Conn::close`, which is the only
//!   code that emits `Close` and does nothing when already closed.
//! - **Replies in FIFO order.** Every command written leaves one slot in a
//!   queue; every reply (other than a RESP3 push) fills the oldest slot. A
//!   reply with no slot waiting means the stream is out of sync: close.
//! - **No reply to the wrong request.** A request that times out or is
//!   cancelled in flight leaves its slot behind as a tombstone that swallows
//!   its late reply, so the requests behind it still get their own. The rule
//!   for trusting such a connection: Redis answers every command in order, so
//!   a late reply will come unless the server or the path to it is dead. The
//!   connection stays open while bytes keep arriving; if a request timed out
//!   and nothing at all arrives for the stall timeout after the last byte,
//!   the connection is closed as [`CloseReason::Stalled`]. A cancelled (not
//!   timed out) request never closes a connection.
//! - **Sticky failure.** A protocol error, TLS error or handshake refusal
//!   closes the connection; requests written on it fail with that reason and
//!   nothing else is ever written to it.
//! - **Handshake replies are checked.** A connection whose
//!   `HELLO`/`AUTH`/`SETNAME`/`SELECT` failed is never ready; only the
//!   optional `CLIENT SETINFO` may fail (older servers do not know it).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::command::{Command, ReplyKind, SubscriptionKind};
use crate::error::{Error, HandshakeError, HandshakeErrorKind, HandshakeStep};
use crate::id::{RequestId, SocketId};
use crate::io::{Address, CloseReason, Effect, Event};
use crate::pool::RetryPolicy;
use crate::resp::{CommandEncoder, Decoder, Frame, Limits, encode_command};
use crate::time::{Duration, Instant, Timer, Timers};

#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsConfigBuilder};

/// The RESP version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// RESP2: `AUTH` and `CLIENT SETNAME`, no push frames.
    Resp2,
    /// RESP3 through `HELLO 3`, falling back to RESP2 on servers without it.
    #[default]
    Resp3,
}

/// How to open and set up one connection.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Where the server is.
    pub address: Address,
    /// The protocol to ask for.
    pub protocol: Protocol,
    /// The ACL user name (`default` when only a password is set).
    pub username: Option<String>,
    /// The password.
    pub password: Option<String>,
    /// A name for `CLIENT SETNAME`.
    pub client_name: Option<String>,
    /// The database to `SELECT`, when not 0.
    pub database: u32,
    /// Whether to send `CLIENT SETINFO LIB-NAME/LIB-VER` (errors ignored).
    pub set_info: bool,
    /// Whether to send `READONLY` (errors ignored): a cluster replica then
    /// serves reads of its primary's slots on this connection. Set by the
    /// cluster client when it reads from replicas.
    pub readonly: bool,
    /// The one deadline for TCP connect + TLS + the server handshake.
    pub handshake_timeout: Duration,
    /// How long a connection may stay silent after a request timed out on it
    /// before it is closed as stalled. Default: 3 s.
    pub stall_timeout: Duration,
    /// Decoder limits.
    pub limits: Limits,
    /// TLS, when set.
    #[cfg(feature = "tls")]
    pub tls: Option<TlsConfig>,
}

impl ConnConfig {
    /// Defaults for a server at `address`: RESP3, no auth, database 0,
    /// `CLIENT SETINFO` on, a 5 s handshake deadline.
    #[must_use]
    pub fn new(address: Address) -> Self {
        Self {
            address,
            protocol: Protocol::Resp3,
            username: None,
            password: None,
            client_name: None,
            database: 0,
            set_info: true,
            readonly: false,
            handshake_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(3),
            limits: Limits::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// TCP connect asked for, not reported yet.
    Connecting,
    /// TLS handshake under way.
    Tls,
    /// `HELLO`/`AUTH`/`SELECT` sent, replies awaited.
    Handshake,
    /// Serving requests.
    Ready,
    /// `Close` emitted; nothing more will be said about the socket.
    Closed,
}

/// What a reply slot is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A handshake step.
    Handshake(Step),
    /// A request; its deadline, if any, and how it is answered.
    Request {
        id: RequestId,
        deadline: Option<Instant>,
        kind: ReplyKind,
    },
    /// A request nobody waits for any more; its reply is discarded.
    ///
    /// It keeps the reply kind of its request: a cancelled `SUBSCRIBE` is
    /// answered by a push confirmation, which it must swallow, not the next
    /// reply.
    Tombstone { timed_out: bool, kind: ReplyKind },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Required(HandshakeStep),
    /// `CLIENT SETINFO`: errors are ignored.
    Optional,
    /// A step pipelined behind a `HELLO` the server did not know; its reply
    /// is discarded and the step is sent again after `AUTH`.
    Superseded,
}

/// Room the staging buffer keeps for the next queued command, and how much
/// it grows by when it has less.
const STAGING_MIN: usize = 256;
const STAGING_CHUNK: usize = 8 * 1024;

const PUBSUB_NEEDS_RESP3: &str =
    "pub/sub needs RESP3 (the server answered HELLO 3 with an error, or RESP2 is configured)";

/// A request not written yet: waiting for a connection's handshake, or for
/// the client's next connection.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) id: RequestId,
    pub(crate) cmd: Bytes,
    pub(crate) deadline: Option<Instant>,
    pub(crate) kind: ReplyKind,
    /// How many more times the request may be sent again if the connection
    /// it was written to fails before its reply.
    pub(crate) retries: u8,
}

/// The command of a written request, kept so that it can be sent again.
#[derive(Debug)]
struct Retained {
    id: RequestId,
    cmd: Bytes,
    deadline: Option<Instant>,
    kind: ReplyKind,
    retries: u8,
}

/// The queued outputs of the machines, drained by the client's polls.
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    pub(crate) effects: VecDeque<Effect>,
    pub(crate) events: VecDeque<Event>,
    /// Every `Close` emitted, counted by reason (the pool's statistics).
    pub(crate) closed: crate::pool::ClosedCounts,
}

/// One socket and everything in flight on it.
pub(crate) struct Conn {
    socket: SocketId,
    phase: Phase,
    protocol: Protocol,
    decoder: Decoder,
    /// Plaintext received and not decoded yet.
    rx: BytesMut,
    /// Bytes to send, encrypted when TLS is on.
    tx: BytesMut,
    slots: VecDeque<Slot>,
    /// Requests waiting for the handshake: never written to a connection
    /// that could still fail authentication or `SELECT`.
    queue: VecDeque<Queued>,
    /// Staging for the commands of queued requests and for TLS writes.
    staging: BytesMut,
    /// `MULTI` or `WATCH` sent and not yet ended by `EXEC`/`DISCARD`/`UNWATCH`:
    /// such a connection must not be handed to anyone else.
    in_transaction: bool,
    /// Slots of handshake steps still awaited.
    handshake_left: usize,
    /// Tombstones left by timeouts, which the stall rule watches.
    timed_out: usize,
    /// A liveness probe is out: requests are encoded into `gated`, not
    /// `tx`, until the adapter reports what it found. Every slot is then a
    /// gated request (a probe starts only on a quiet connection).
    probing: bool,
    gated: BytesMut,
    /// Requests written so far.
    written: u64,
    /// Whether the handshake ever finished (a stale connection, rather than
    /// one that never worked).
    was_ready: bool,
    /// Written requests that may be sent again, in the order of `slots`.
    retained: VecDeque<Retained>,
    last_rx: Instant,
    stall_timeout: Duration,
    timers: Timers,
    close_reason: Option<CloseReason>,
    #[cfg(feature = "tls")]
    tls: Option<tls::Session>,
}

impl core::fmt::Debug for Conn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Conn")
            .field("socket", &self.socket)
            .field("phase", &self.phase)
            .field("in_flight", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection about to connect; the caller emits `Connect`.
    pub(crate) fn new(
        socket: SocketId,
        config: &ConnConfig,
        now: Instant,
    ) -> Result<Self, CloseReason> {
        #[cfg(feature = "tls")]
        let tls = match &config.tls {
            Some(tls) => {
                Some(tls::Session::new(tls, config.address.host()).map_err(CloseReason::Tls)?)
            }
            None => None,
        };
        let mut timers = Timers::default();
        timers.set(Timer::Handshake, now + config.handshake_timeout);
        Ok(Self {
            socket,
            phase: Phase::Connecting,
            protocol: config.protocol,
            decoder: Decoder::with_limits(config.limits),
            rx: BytesMut::new(),
            tx: BytesMut::new(),
            slots: VecDeque::new(),
            queue: VecDeque::new(),
            staging: BytesMut::new(),
            in_transaction: false,
            handshake_left: 0,
            timed_out: 0,
            probing: false,
            gated: BytesMut::new(),
            written: 0,
            was_ready: false,
            retained: VecDeque::new(),
            last_rx: now,
            stall_timeout: config.stall_timeout,
            timers,
            close_reason: None,
            #[cfg(feature = "tls")]
            tls,
        })
    }

    pub(crate) const fn socket(&self) -> SocketId {
        self.socket
    }

    pub(crate) const fn phase(&self) -> Phase {
        self.phase
    }

    /// Requests (not tombstones or handshake steps) awaiting a reply,
    /// written or queued for the handshake.
    pub(crate) fn in_flight(&self) -> usize {
        let written = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Request { .. }));
        self.queue.len() + written.count()
    }

    /// Whether nothing at all is awaited on the connection (no request, no
    /// tombstone): it can be handed to someone else.
    pub(crate) fn is_quiet(&self) -> bool {
        self.queue.is_empty() && self.slots.is_empty()
    }

    /// Requests written to the socket so far.
    pub(crate) const fn written(&self) -> u64 {
        self.written
    }

    /// Whether the connection was ever ready.
    pub(crate) const fn was_ready(&self) -> bool {
        self.was_ready
    }

    /// Whether a liveness probe is out.
    pub(crate) const fn is_probing(&self) -> bool {
        self.probing
    }

    /// Since when nothing has been heard from the server (or, for a quiet
    /// connection, since when it has been quiet).
    pub(crate) const fn last_rx(&self) -> Instant {
        self.last_rx
    }

    /// Asks the adapter to look at the socket before anything more is
    /// written: requests wait, unwritten, until [`Conn::on_probe_done`] or
    /// the EOF or error the probe found. Only a ready, quiet connection is
    /// probed.
    #[inline]
    pub(crate) fn probe(&mut self, out: &mut Outputs) {
        if self.phase != Phase::Ready || self.probing || !self.is_quiet() {
            return;
        }
        self.probing = true;
        if self.gated.capacity() - self.gated.len() < STAGING_MIN {
            self.gated.reserve(STAGING_CHUNK);
        }
        out.effects.push_back(Effect::Probe {
            socket: self.socket,
        });
    }

    /// The probe found nothing waiting: the connection is alive; write what
    /// waited for it.
    pub(crate) fn on_probe_done(&mut self) -> bool {
        if !self.probing || self.phase != Phase::Ready {
            return false;
        }
        self.probing = false;
        self.written += self.slots.len() as u64;
        let batch = self.gated.split();
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            tls.write(&batch);
            tls.flush(&mut self.tx);
            return true;
        }
        // O(1) when nothing else waits to be sent, the usual case.
        self.tx.unsplit(batch);
        true
    }

    /// The probe found the connection dead: the requests gated behind it
    /// were never written; they go back to the queue, whole, with their
    /// retries unspent. (`probing` stays set: the pool counts the probe as
    /// one that found a dead connection.)
    fn ungate(&mut self) {
        let mut bytes = self.gated.split().freeze();
        for slot in core::mem::take(&mut self.slots) {
            let len = command_len(&bytes).unwrap_or(bytes.len());
            let cmd = bytes.split_to(len);
            match slot {
                Slot::Request { id, deadline, kind } => {
                    let retries = match self.retained.iter().position(|r| r.id == id) {
                        Some(i) => self.retained.remove(i).map_or(0, |r| r.retries),
                        None => 0,
                    };
                    self.queue.push_back(Queued {
                        id,
                        cmd,
                        deadline,
                        kind,
                        retries,
                    });
                }
                Slot::Tombstone { timed_out, .. } => {
                    self.timed_out -= usize::from(timed_out);
                }
                Slot::Handshake(_) => {}
            }
        }
    }

    /// Whether a `MULTI` or `WATCH` is still open on the connection.
    pub(crate) const fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The bytes waiting to be sent, if any.
    pub(crate) fn take_tx(&mut self) -> Option<Bytes> {
        (!self.tx.is_empty()).then(|| self.tx.split().freeze())
    }

    /// The adapter connected the socket.
    pub(crate) fn on_connected(&mut self, now: Instant, config: &ConnConfig, out: &mut Outputs) {
        if self.phase != Phase::Connecting {
            return;
        }
        self.last_rx = now;
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            self.phase = Phase::Tls;
            tls.flush(&mut self.tx);
            return;
        }
        self.start_handshake(config, out);
    }

    /// Bytes arrived on the socket.
    pub(crate) fn on_data(
        &mut self,
        now: Instant,
        data: &[u8],
        config: &ConnConfig,
        out: &mut Outputs,
    ) {
        match self.phase {
            Phase::Closed => return,
            // Bytes before the connect report: the socket is evidently connected.
            Phase::Connecting => self.on_connected(now, config, out),
            _ => {}
        }
        self.last_rx = now;
        if self.timed_out > 0 {
            self.arm_stall();
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            let fed = tls.feed(data, &mut self.rx);
            tls.flush(&mut self.tx);
            let closed = match fed {
                Ok(tls::Fed::Open) => false,
                Ok(tls::Fed::Closed) => true,
                Err(err) => return self.close(CloseReason::Tls(err), out),
            };
            if self.phase == Phase::Tls && !tls.is_handshaking() {
                self.start_handshake(config, out);
            }
            self.decode(config, out);
            if closed {
                self.close(CloseReason::Eof, out);
            }
            self.probe_again(out);
            return;
        }
        self.rx.extend_from_slice(data);
        self.decode(config, out);
        self.probe_again(out);
    }

    /// Bytes arrived while a probe is out (TLS records, a push): the probe
    /// is answered only once nothing more is waiting, so ask again.
    fn probe_again(&mut self, out: &mut Outputs) {
        if self.probing && self.phase == Phase::Ready {
            out.effects.push_back(Effect::Probe {
                socket: self.socket,
            });
        }
    }

    /// Sends a request (queued until the handshake is done); its outcome
    /// will be reported as one `Event::Response`.
    pub(crate) fn send<C: Command + ?Sized>(
        &mut self,
        id: RequestId,
        cmd: &C,
        deadline: Option<Instant>,
        out: &mut Outputs,
    ) {
        // Sticky failure: a closed connection answers every later request
        // with the reason it closed.
        if let Some(reason) = &self.close_reason {
            out.events.push_back(Event::Response {
                id,
                result: Err(request_error(reason)),
            });
            return;
        }
        let kind = cmd.reply_kind();
        if self.phase == Phase::Ready && !self.supports(kind) {
            out.events.push_back(Event::Response {
                id,
                result: Err(Error::Unsupported(PUBSUB_NEEDS_RESP3)),
            });
            return;
        }
        if let Some(at) = deadline {
            self.arm_response(at);
        }
        if self.phase != Phase::Ready {
            let cmd = self.stage(cmd);
            self.queue.push_back(Queued {
                id,
                cmd,
                deadline,
                kind,
                retries: 0,
            });
            return;
        }
        if self.probing {
            cmd.encode(&mut self.gated);
            self.slots.push_back(Slot::Request { id, deadline, kind });
            return;
        }
        self.written += 1;
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            cmd.encode(&mut self.staging);
            tls.write(&self.staging);
            self.staging.clear();
            tls.flush(&mut self.tx);
            self.slots.push_back(Slot::Request { id, deadline, kind });
            return;
        }
        cmd.encode(&mut self.tx);
        self.slots.push_back(Slot::Request { id, deadline, kind });
    }

    /// Encodes a command that must wait, as a slice of one shared staging
    /// buffer: the requests queued behind a handshake or a probe share a
    /// few allocations instead of making one each.
    fn stage<C: Command + ?Sized>(&mut self, cmd: &C) -> Bytes {
        if self.staging.capacity() - self.staging.len() < STAGING_MIN {
            self.staging.reserve(STAGING_CHUNK);
        }
        cmd.encode(&mut self.staging);
        self.staging.split().freeze()
    }

    /// Sends a request on a connection handed to one user (a lease), whose
    /// transaction state the connection keeps track of.
    pub(crate) fn send_tracked<C: Command + ?Sized>(
        &mut self,
        id: RequestId,
        cmd: &C,
        deadline: Option<Instant>,
        out: &mut Outputs,
    ) {
        let start = self.staging.len();
        cmd.encode(&mut self.staging);
        let name = command_name(&self.staging[start..]).map(<[u8]>::to_ascii_uppercase);
        self.track_transaction(name.as_deref());
        self.staging.truncate(start);
        self.send(id, cmd, deadline, out);
    }

    /// Queues a request taken from elsewhere on a connection handed to one
    /// user, keeping track of its transaction state.
    pub(crate) fn requeue_tracked(&mut self, q: Queued) {
        let name = command_name(&q.cmd).map(<[u8]>::to_ascii_uppercase);
        self.track_transaction(name.as_deref());
        self.requeue(q);
    }

    fn track_transaction(&mut self, name: Option<&[u8]>) {
        match name {
            Some(b"MULTI" | b"WATCH") => self.in_transaction = true,
            Some(b"EXEC" | b"DISCARD" | b"UNWATCH" | b"RESET") => self.in_transaction = false,
            _ => {}
        }
    }

    /// Whether the connection can carry a command answered that way: pub/sub
    /// over RESP2 turns the connection into a subscriber-only one whose
    /// messages are indistinguishable from replies, so it needs RESP3.
    fn supports(&self, kind: ReplyKind) -> bool {
        kind == ReplyKind::Reply || self.protocol == Protocol::Resp3
    }

    fn arm_response(&mut self, at: Instant) {
        match self.timers.get(Timer::Response) {
            Some(current) if current <= at => {}
            _ => self.timers.set(Timer::Response, at),
        }
    }

    fn write_raw(&mut self, bytes: &[u8]) {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            tls.write(bytes);
            tls.flush(&mut self.tx);
            return;
        }
        self.tx.extend_from_slice(bytes);
    }

    /// Why the connection closed, once it has.
    pub(crate) const fn close_reason(&self) -> Option<&CloseReason> {
        self.close_reason.as_ref()
    }

    /// The requests never written, once the connection is closed.
    pub(crate) fn take_unwritten(&mut self) -> VecDeque<Queued> {
        core::mem::take(&mut self.queue)
    }

    /// Queues a request taken from another connection.
    pub(crate) fn requeue(&mut self, q: Queued) {
        if let Some(at) = q.deadline {
            self.arm_response(at);
        }
        if self.phase == Phase::Ready {
            self.write_queued(q);
        } else {
            self.queue.push_back(q);
        }
    }

    /// Writes a request that waited, keeping its command when it may be
    /// sent again.
    fn write_queued(&mut self, q: Queued) {
        if self.probing {
            self.gated.extend_from_slice(&q.cmd);
        } else {
            self.write_raw(&q.cmd);
            self.written += 1;
        }
        self.slots.push_back(Slot::Request {
            id: q.id,
            deadline: q.deadline,
            kind: q.kind,
        });
        if q.retries > 0 {
            self.retained.push_back(Retained {
                id: q.id,
                cmd: q.cmd,
                deadline: q.deadline,
                kind: q.kind,
                retries: q.retries,
            });
        }
    }

    /// Sends a request that may be sent again, as many times as `policy`
    /// gives its command, if the connection fails after writing it (see
    /// [`Conn::take_retries`]).
    pub(crate) fn send_retriable<C: Command + ?Sized>(
        &mut self,
        id: RequestId,
        cmd: &C,
        deadline: Option<Instant>,
        policy: &RetryPolicy,
        out: &mut Outputs,
    ) {
        if self.close_reason.is_some() {
            return self.send(id, cmd, deadline, out);
        }
        let cmd_bytes = self.stage(cmd);
        let retries = command_name(&cmd_bytes).map_or(0, |n| policy.retries_for(n));
        let q = Queued {
            id,
            cmd: cmd_bytes,
            deadline,
            kind: cmd.reply_kind(),
            retries,
        };
        if self.phase == Phase::Ready && !self.supports(q.kind) {
            out.events.push_back(Event::Response {
                id,
                result: Err(Error::Unsupported(PUBSUB_NEEDS_RESP3)),
            });
            return;
        }
        self.requeue(q);
    }

    /// Once closed by a transport failure (EOF, reset), the written
    /// requests that may be sent again, each with one retry spent: they
    /// were not failed by `close`.
    pub(crate) fn take_retries(&mut self) -> VecDeque<Queued> {
        let mut again = VecDeque::new();
        for r in self.retained.drain(..) {
            again.push_back(Queued {
                id: r.id,
                cmd: r.cmd,
                deadline: r.deadline,
                kind: r.kind,
                retries: r.retries - 1,
            });
        }
        again
    }

    /// Forgets a request: its reply, when it comes, is discarded.
    pub(crate) fn cancel(&mut self, id: RequestId) -> bool {
        if let Some(i) = self.queue.iter().position(|q| q.id == id) {
            self.queue.remove(i);
            return true;
        }
        self.forget_retained(id);
        for slot in &mut self.slots {
            if let Slot::Request { id: r, kind, .. } = *slot
                && r == id
            {
                *slot = Slot::Tombstone {
                    timed_out: false,
                    kind,
                };
                return true;
            }
        }
        false
    }

    /// Deadlines.
    pub(crate) fn on_timeout(&mut self, now: Instant, out: &mut Outputs) {
        if self.phase == Phase::Closed {
            return;
        }
        // Mutation check (scripts/mutants.sh): the deadline passes, no Close.
        #[cfg(redpoll_mutant = "skip_close_on_handshake_deadline")]
        if self.phase != Phase::Ready && self.timers.due(Timer::Handshake, now) {
            return self.timers.clear(Timer::Handshake);
        }
        if self.phase != Phase::Ready && self.timers.due(Timer::Handshake, now) {
            return self.close(CloseReason::HandshakeDeadline, out);
        }
        if self.timers.due(Timer::Response, now) {
            self.expire_requests(now, out);
        }
        if self.timers.due(Timer::Stall, now) {
            self.timers.clear(Timer::Stall);
            if self.timed_out > 0 {
                self.close(CloseReason::Stalled, out);
            }
        }
    }

    fn expire_requests(&mut self, now: Instant, out: &mut Outputs) {
        let mut next: Option<Instant> = None;
        self.queue.retain(|q| match q.deadline {
            Some(at) if at <= now => {
                out.events.push_back(Event::Response {
                    id: q.id,
                    result: Err(Error::Timeout),
                });
                false
            }
            Some(at) => {
                next = Some(next.map_or(at, |n| n.min(at)));
                true
            }
            None => true,
        });
        for slot in &mut self.slots {
            if let Slot::Request {
                id,
                deadline: Some(at),
                kind,
            } = *slot
            {
                if at <= now {
                    if !self.retained.is_empty() {
                        self.retained.retain(|r| r.id != id);
                    }
                    out.events.push_back(Event::Response {
                        id,
                        result: Err(Error::Timeout),
                    });
                    *slot = Slot::Tombstone {
                        timed_out: true,
                        kind,
                    };
                    self.timed_out += 1;
                } else {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        }
        // Mutation check (scripts/mutants.sh): no tombstone, so the late
        // reply goes to the next request.
        #[cfg(redpoll_mutant = "no_tombstone_on_timeout")]
        {
            self.slots.retain(|s| {
                !matches!(
                    s,
                    Slot::Tombstone {
                        timed_out: true,
                        ..
                    }
                )
            });
            self.timed_out = 0;
        }
        match next {
            Some(at) => self.timers.set(Timer::Response, at),
            None => self.timers.clear(Timer::Response),
        }
        if self.timed_out > 0 && self.timers.get(Timer::Stall).is_none() {
            self.arm_stall_from(now);
        }
    }

    fn arm_stall(&mut self) {
        self.arm_stall_from(self.last_rx);
    }

    fn arm_stall_from(&mut self, from: Instant) {
        self.timers
            .set(Timer::Stall, from.max(self.last_rx) + self.stall_timeout);
    }

    /// Closes the connection: fails everything in flight with `reason`,
    /// emits the socket's one `Close`.
    pub(crate) fn close(&mut self, reason: CloseReason, out: &mut Outputs) {
        if self.phase == Phase::Closed {
            return;
        }
        #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
        let was_ready = self.phase == Phase::Ready;
        // Mutation check (scripts/mutants.sh): the requests gated behind a
        // probe that found the connection dead count as written: each
        // spends a retry, or fails (I2).
        #[cfg(not(redpoll_mutant = "spend_retry_on_stale"))]
        if self.probing {
            self.ungate();
        }
        self.phase = Phase::Closed;
        self.timers = Timers::default();
        // Written requests fail: whether the server ran them is unknown.
        // Requests never written stay in the queue: the client decides
        // whether they wait for the next connection (`take_unwritten`).
        // Requests kept for a retry are not failed: the client sends them
        // again (`take_retries`), but only after a transport failure.
        let error = request_error(&reason);
        if !matches!(reason, CloseReason::Eof | CloseReason::Io(_)) {
            self.retained.clear();
        }
        let mut retained = self.retained.iter().map(|r| r.id).peekable();
        for slot in self.slots.drain(..) {
            if let Slot::Request { id, .. } = slot {
                if retained.next_if_eq(&id).is_some() {
                    continue;
                }
                out.events.push_back(Event::Response {
                    id,
                    result: Err(error.clone()),
                });
            }
        }
        self.tx.clear();
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            // A clean shutdown says goodbye; a failed connection does not.
            if was_ready && reason == CloseReason::Shutdown {
                tls.close_notify();
                tls.flush(&mut self.tx);
            }
        }
        if let Some(data) = self.take_tx() {
            out.effects.push_back(Effect::Send {
                socket: self.socket,
                data,
            });
        }
        out.closed.record(&reason);
        out.effects.push_back(Effect::Close {
            socket: self.socket,
            reason: reason.clone(),
        });
        out.events.push_back(Event::Disconnected {
            socket: self.socket,
            reason: reason.clone(),
        });
        self.close_reason = Some(reason);
    }

    fn start_handshake(&mut self, config: &ConnConfig, out: &mut Outputs) {
        self.phase = Phase::Handshake;
        let mut cmd = BytesMut::new();
        match config.protocol {
            Protocol::Resp3 => {
                let mut args: Vec<&str> = alloc::vec!["HELLO", "3"];
                let user = config.username.as_deref().unwrap_or("default");
                if let Some(password) = &config.password {
                    args.extend(["AUTH", user, password]);
                }
                if let Some(name) = &config.client_name {
                    args.extend(["SETNAME", name]);
                }
                encode_command(&mut cmd, &args);
                self.handshake_slot(Step::Required(HandshakeStep::Hello));
            }
            Protocol::Resp2 => self.legacy_auth(config, &mut cmd),
        }
        self.common_steps(config, &mut cmd);
        self.write_raw(&cmd);
        if self.handshake_left == 0 {
            self.become_ready(out);
        }
    }

    /// `AUTH` and `CLIENT SETNAME`: RESP2, or a server without `HELLO`.
    fn legacy_auth(&mut self, config: &ConnConfig, cmd: &mut BytesMut) {
        if let Some(password) = &config.password {
            match &config.username {
                Some(user) => encode_command(cmd, &["AUTH", user, password]),
                None => encode_command(cmd, &["AUTH", password]),
            }
            self.handshake_slot(Step::Required(HandshakeStep::Auth));
        }
        if let Some(name) = &config.client_name {
            encode_command(cmd, &["CLIENT", "SETNAME", name]);
            self.handshake_slot(Step::Required(HandshakeStep::SetName));
        }
    }

    /// `SELECT`, `READONLY` and `CLIENT SETINFO`, after authentication.
    fn common_steps(&mut self, config: &ConnConfig, cmd: &mut BytesMut) {
        if config.database != 0 {
            // Two arguments declared, two written: finish cannot fail.
            let _ = CommandEncoder::new(cmd, 2)
                .arg("SELECT")
                .arg(config.database)
                .finish();
            self.handshake_slot(Step::Required(HandshakeStep::Select));
        }
        if config.readonly {
            encode_command(cmd, &["READONLY"]);
            self.handshake_slot(Step::Optional);
        }
        if config.set_info {
            encode_command(cmd, &["CLIENT", "SETINFO", "LIB-NAME", "redpoll"]);
            encode_command(
                cmd,
                &["CLIENT", "SETINFO", "LIB-VER", env!("CARGO_PKG_VERSION")],
            );
            self.handshake_slot(Step::Optional);
            self.handshake_slot(Step::Optional);
        }
    }

    fn handshake_slot(&mut self, step: Step) {
        self.slots.push_back(Slot::Handshake(step));
        self.handshake_left += 1;
    }

    fn become_ready(&mut self, out: &mut Outputs) {
        self.phase = Phase::Ready;
        self.was_ready = true;
        self.timers.clear(Timer::Handshake);
        self.flush_queue(out);
        out.events.push_back(Event::Connected {
            socket: self.socket,
            protocol: self.protocol,
        });
    }

    /// Writes the requests that waited for the handshake or a probe.
    fn flush_queue(&mut self, out: &mut Outputs) {
        while let Some(q) = self.queue.pop_front() {
            if !self.supports(q.kind) {
                out.events.push_back(Event::Response {
                    id: q.id,
                    result: Err(Error::Unsupported(PUBSUB_NEEDS_RESP3)),
                });
                continue;
            }
            self.write_queued(q);
        }
    }

    /// A written request got its reply, timed out or was cancelled: its
    /// command is not needed any more.
    #[inline]
    fn forget_retained(&mut self, id: RequestId) {
        if !self.retained.is_empty() {
            self.forget_retained_slow(id);
        }
    }

    #[cold]
    fn forget_retained_slow(&mut self, id: RequestId) {
        if self.retained.front().is_some_and(|r| r.id == id) {
            self.retained.pop_front();
        } else {
            self.retained.retain(|r| r.id != id);
        }
    }

    /// While a probe is out nothing was written: no reply is due.
    #[cold]
    fn dispatch_probing(&mut self, frame: Frame, out: &mut Outputs) {
        match frame.without_attributes() {
            Frame::Push(_) => out.events.push_back(Event::Push {
                socket: self.socket,
                frame,
            }),
            _ => self.close(CloseReason::UnexpectedReply, out),
        }
    }

    fn decode(&mut self, config: &ConnConfig, out: &mut Outputs) {
        while self.phase != Phase::Closed {
            match self.decoder.decode(&mut self.rx) {
                Ok(Some(frame)) => self.dispatch(frame, config, out),
                Ok(None) => return,
                Err(err) => return self.close(CloseReason::Protocol(err), out),
            }
        }
    }

    fn dispatch(&mut self, frame: Frame, config: &ConnConfig, out: &mut Outputs) {
        // Subscription commands are answered by their first push
        // confirmation; every other push goes to the application.
        if self.probing {
            return self.dispatch_probing(frame, out);
        }
        if matches!(frame, Frame::Push(_) | Frame::Attributed(_))
            && let Frame::Push(items) = frame.without_attributes()
        {
            let confirmation = match self.slots.front() {
                Some(Slot::Request { kind, .. } | Slot::Tombstone { kind, .. }) => {
                    confirms(*kind, items)
                }
                _ => false,
            };
            if !confirmation {
                out.events.push_back(Event::Push {
                    socket: self.socket,
                    frame,
                });
                return;
            }
        }
        match self.slots.pop_front() {
            Some(Slot::Request { id, .. }) => {
                self.forget_retained(id);
                out.events.push_back(Event::Response {
                    id,
                    result: Ok(frame),
                });
            }
            Some(Slot::Tombstone { timed_out, .. }) => {
                if timed_out {
                    self.timed_out -= 1;
                    if self.timed_out == 0 {
                        self.timers.clear(Timer::Stall);
                    }
                }
            }
            Some(Slot::Handshake(step)) => {
                self.handshake_left -= 1;
                self.handshake_reply(step, &frame, config, out);
            }
            None => self.close(CloseReason::UnexpectedReply, out),
        }
    }

    fn handshake_reply(
        &mut self,
        step: Step,
        frame: &Frame,
        config: &ConnConfig,
        out: &mut Outputs,
    ) {
        let text = match frame.without_attributes() {
            Frame::Error(text) | Frame::BulkError(text) => Some(text.clone()),
            _ => None,
        };
        match (step, text) {
            (Step::Required(HandshakeStep::Hello), None) => self.protocol = Protocol::Resp3,
            (Step::Required(HandshakeStep::Hello), Some(text)) => {
                let kind = HandshakeErrorKind::from_reply(&text);
                if matches!(
                    kind,
                    HandshakeErrorKind::UnknownCommand | HandshakeErrorKind::NoProto
                ) {
                    self.fall_back_to_resp2(config);
                } else {
                    return self.refused(HandshakeStep::Hello, kind, &text, out);
                }
            }
            (Step::Required(step), Some(text)) => {
                let kind = HandshakeErrorKind::from_reply(&text);
                return self.refused(step, kind, &text, out);
            }
            (Step::Required(_) | Step::Optional | Step::Superseded, _) => {}
        }
        if self.handshake_left == 0 && self.phase == Phase::Handshake {
            self.become_ready(out);
        }
    }

    fn refused(
        &mut self,
        step: HandshakeStep,
        kind: HandshakeErrorKind,
        text: &[u8],
        out: &mut Outputs,
    ) {
        let message = String::from_utf8_lossy(text).into_owned();
        self.close(
            CloseReason::Handshake(HandshakeError {
                step,
                kind,
                message,
            }),
            out,
        );
    }

    /// The server does not know `HELLO 3`: speak RESP2, authenticate with
    /// `AUTH`, and send again the steps pipelined behind the `HELLO`
    /// (they ran unauthenticated).
    fn fall_back_to_resp2(&mut self, config: &ConnConfig) {
        self.protocol = Protocol::Resp2;
        for slot in &mut self.slots {
            if let Slot::Handshake(step) = slot {
                *step = Step::Superseded;
            }
        }
        let mut cmd = BytesMut::new();
        self.legacy_auth(config, &mut cmd);
        self.common_steps(config, &mut cmd);
        self.write_raw(&cmd);
    }
}

/// Whether a push frame confirms a subscription command of `kind`.
fn confirms(kind: ReplyKind, items: &[Frame]) -> bool {
    let (subscribe, kind) = match kind {
        ReplyKind::Reply => return false,
        ReplyKind::Subscribe(k) => (true, k),
        ReplyKind::Unsubscribe(k) => (false, k),
    };
    let Some(Frame::Bulk(name) | Frame::Simple(name)) = items.first() else {
        return false;
    };
    let expected: &[u8] = match (subscribe, kind) {
        (true, SubscriptionKind::Channel) => b"subscribe",
        (true, SubscriptionKind::Pattern) => b"psubscribe",
        (true, SubscriptionKind::Shard) => b"ssubscribe",
        (false, SubscriptionKind::Channel) => b"unsubscribe",
        (false, SubscriptionKind::Pattern) => b"punsubscribe",
        (false, SubscriptionKind::Shard) => b"sunsubscribe",
    };
    name.eq_ignore_ascii_case(expected)
}

/// The name of an encoded command: its first bulk string.
pub(crate) fn command_name(encoded: &[u8]) -> Option<&[u8]> {
    // `*N\r\n$L\r\nNAME\r\n`
    let first = encoded.iter().position(|&b| b == b'\n')? + 1;
    let rest = encoded.get(first..)?;
    let header = rest.iter().position(|&b| b == b'\n')?;
    let len: usize = core::str::from_utf8(rest.get(1..header.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()?;
    rest.get(header + 1..header + 1 + len)
}

/// The length of the first encoded command in `buf` (an array of bulk
/// strings, as the encoder writes them).
fn command_len(buf: &[u8]) -> Option<usize> {
    fn line(buf: &[u8], at: usize, tag: u8) -> Option<(usize, usize)> {
        if *buf.get(at)? != tag {
            return None;
        }
        let end = at + buf.get(at..)?.iter().position(|&b| b == b'\n')?;
        let digits = core::str::from_utf8(buf.get(at + 1..end.checked_sub(1)?)?).ok()?;
        Some((digits.parse().ok()?, end + 1))
    }
    let (count, mut at) = line(buf, 0, b'*')?;
    for _ in 0..count {
        let (len, start): (usize, usize) = line(buf, at, b'$')?;
        at = start.checked_add(len)?.checked_add(2)?;
    }
    (at <= buf.len()).then_some(at)
}

/// The error of requests on a connection closed for `reason`.
fn request_error(reason: &CloseReason) -> Error {
    match reason {
        CloseReason::Shutdown => Error::Shutdown,
        other => Error::Connection(other.clone()),
    }
}
