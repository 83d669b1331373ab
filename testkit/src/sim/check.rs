//! The invariants, and the checks that watch the client's effects and
//! events for them.
//!
//! Every check sees every effect (before the network carries it out),
//! every event, what the world does to the client's sockets
//! ([`WorldEvent`]), and the world after every step. The socket checks of
//! invariant I1 live here; the request invariants live in the
//! [model](super::model); the recovery invariant (I5) in the
//! world ([`Sim`](super::Sim)), which sends the probes it needs; the pool's
//! (I2) in [`liveness`](super::liveness). The cluster (I3, I4) checks are
//! further [`Check`]s handed to [`Sim::with_check`](super::Sim::with_check).

use std::collections::BTreeMap;
use std::fmt;

use redpoll_core::{Client, CloseReason, Effect, Event, Instant, SocketId};

use super::Params;
use super::net::{Net, ToClient};

/// The invariants, as failures name them.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// The core panicked.
    NoPanic,
    /// I1: every socket opened gets exactly one `Close`, nothing names a
    /// socket after its `Close` (or before its `Connect`).
    SocketAccounting,
    /// I1: a socket not ready when its handshake deadline passes is closed.
    HandshakeDeadline,
    /// Deadlines make progress: after `handle_timeout(now)` the client
    /// does not ask to be woken at `now` again and again.
    TimerProgress,
    /// What the client writes is valid TLS and RESP.
    ClientWire,
    /// Every request completes exactly once (none after a cancel, none
    /// never).
    ExactlyOnce,
    /// Every request gets its own reply, or an honest typed error.
    OwnReply,
    /// Every request with a deadline has completed by it.
    RequestDeadline,
    /// Per-key linearizability for a single client.
    Linearizable,
    /// Bounded resources: open sockets within the pool limit, no requests
    /// held beyond those pending.
    Bounded,
    /// I5: after the last fault heals, the client reconnects and serves a
    /// request within the backoff cap plus a handshake.
    Recovery,
    /// New connections after failed attempts are paced by the backoff: no
    /// reconnect storm.
    Backoff,
    /// I2: no request is handed a connection known to be dead (the pool).
    PoolLiveness,
    /// I2: discarding a stale connection never consumes a retry (the pool).
    PoolRetries,
    /// I3: redirect resolution always yields a route (the cluster).
    RedirectRoute,
    /// I4: open sockets per node never exceed the pool limit, whatever the
    /// spelling of its address (the cluster).
    NodeKey,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoPanic => "no panic",
            Self::SocketAccounting => {
                "I1 socket accounting (one Close per Connect, nothing after Close)"
            }
            Self::HandshakeDeadline => "I1 handshake deadline",
            Self::TimerProgress => "timer progress",
            Self::ClientWire => "valid client bytes",
            Self::ExactlyOnce => "every request completes exactly once",
            Self::OwnReply => "every request gets its own reply or an honest typed error",
            Self::RequestDeadline => "request deadlines",
            Self::Linearizable => "per-key linearizability",
            Self::Bounded => "bounded resources",
            Self::Recovery => "I5 recovery after the last fault heals",
            Self::Backoff => "reconnects paced by the backoff (no storm)",
            Self::PoolLiveness => "I2 no dead connection handed out",
            Self::PoolRetries => "I2 stale connections never consume retries",
            Self::RedirectRoute => "I3 redirect resolution yields a route",
            Self::NodeKey => "I4 connections per node within the pool limit",
        })
    }
}

/// A broken invariant and what broke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// What happened.
    pub message: String,
}

impl Violation {
    /// A violation of `invariant`.
    #[must_use]
    pub fn new(invariant: Invariant, message: impl Into<String>) -> Self {
        Self {
            invariant,
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant violated: {}: {}",
            self.invariant, self.message
        )
    }
}

/// What a socket went through.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketLife {
    /// When the core asked for it.
    pub opened: Instant,
    /// When it finished its handshake (`Event::Connected`).
    pub ready: Option<Instant>,
    /// When and why it was closed.
    pub closed: Option<(Instant, CloseReason)>,
}

/// What the checks see after a step.
#[derive(Debug)]
pub struct View<'a> {
    /// The virtual time.
    pub now: Instant,
    /// The client.
    pub client: &'a Client,
    /// The run's parameters.
    pub params: &'a Params,
    /// Every socket the client opened.
    pub sockets: &'a BTreeMap<SocketId, SocketLife>,
    /// Whether the step was a `handle_timeout` at `now`.
    pub timeout_step: bool,
    /// The network: what is on its way, what waits in a socket unreported.
    pub net: &'a Net,
}

/// What the world does to the client's sockets, as the checks hear it.
#[derive(Debug, Clone, Copy)]
pub enum WorldEvent<'a> {
    /// The adapter is about to report `what` on `socket` to the client
    /// (`handle_data`, `handle_eof`, ...); `probe`: a probe found it.
    Fed {
        /// The socket.
        socket: SocketId,
        /// What arrived.
        what: &'a ToClient,
        /// Whether the adapter found it answering a probe.
        probe: bool,
    },
    /// A probe of `socket` found nothing waiting: the adapter is about to
    /// call `handle_probe_done`.
    ProbeNothing {
        /// The socket.
        socket: SocketId,
    },
    /// The server closed `socket` because it was idle (its `timeout`):
    /// it had answered every command it received.
    ServerClosedIdle {
        /// The socket.
        socket: SocketId,
        /// Whether bytes of the client were still on their way to the
        /// server (lost with the close).
        lost: bool,
    },
}

/// A check run on the client's outputs and after every step. The default
/// methods accept everything.
pub trait Check {
    /// An effect, before the network carries it out.
    ///
    /// # Errors
    ///
    /// The violation it shows.
    fn effect(&mut self, _view: &View<'_>, _effect: &Effect) -> Result<(), Violation> {
        Ok(())
    }

    /// Something the world does to the client's sockets.
    ///
    /// # Errors
    ///
    /// The violation it shows.
    fn world(&mut self, _view: &View<'_>, _event: &WorldEvent<'_>) -> Result<(), Violation> {
        Ok(())
    }

    /// An event.
    ///
    /// # Errors
    ///
    /// The violation it shows.
    fn event(&mut self, _view: &View<'_>, _event: &Event) -> Result<(), Violation> {
        Ok(())
    }

    /// After every step, once the outputs are drained.
    ///
    /// # Errors
    ///
    /// The violation it shows.
    fn step(&mut self, _view: &View<'_>) -> Result<(), Violation> {
        Ok(())
    }

    /// After the client was shut down and everything settled.
    ///
    /// # Errors
    ///
    /// The violation it shows.
    fn end(&mut self, _view: &View<'_>) -> Result<(), Violation> {
        Ok(())
    }
}

/// I1: one `Close` per `Connect`, nothing after `Close`, the handshake
/// deadline; the number of open sockets within the pool's limit; and no
/// reconnect storm.
///
/// The storm rule: every connection slot (the shared one and each of the
/// pool's) waits a backoff drawn uniformly from `[0, min(cap, base *
/// 2^n)]` after its `n`-th failed attempt in a row, so within any window
/// of `cap` one slot makes at most `log2(cap / base)` attempts while the
/// ceiling grows, plus the attempts at full ceiling, whose backoffs sum to
/// less than `cap` with probability `1 / k!` for `k` of them. With `k = 12`
/// a healthy client never trips it (1 in 479 million); a client that does
/// not back off at all trips it within one window.
#[derive(Debug, Default)]
pub struct Sockets {
    /// When attempts that failed before their handshake completed were
    /// closed, oldest first.
    failed: std::collections::VecDeque<Instant>,
}

/// Attempts at full backoff ceiling allowed per slot and window.
const FULL_CEILING_ATTEMPTS: u64 = 12;

impl Sockets {
    fn storm(
        &mut self,
        view: &View<'_>,
        socket: SocketId,
        reason: &CloseReason,
    ) -> Result<(), Violation> {
        let policy = &view.params.reconnect;
        let window = policy.cap;
        while self.failed.front().is_some_and(|&t| t + window <= view.now) {
            self.failed.pop_front();
        }
        self.failed.push_back(view.now);
        let ratio = (policy.cap.as_nanos() / policy.base.as_nanos().max(1)).max(1);
        let growing = u64::from(128 - ratio.leading_zeros());
        let slots = view.params.pool.max_size as u64 + 1;
        let limit = slots * (growing + FULL_CEILING_ATTEMPTS);
        if self.failed.len() as u64 > limit {
            let reason: String = reason.to_string().chars().take(100).collect();
            return Err(Violation::new(
                Invariant::Backoff,
                format!(
                    "{} connection attempts failed within {window:?} (the backoff cap), the last {socket} ({reason}); with base {:?} at most {limit} are expected for {slots} connection slots",
                    self.failed.len(),
                    policy.base
                ),
            ));
        }
        Ok(())
    }
}

impl Check for Sockets {
    fn effect(&mut self, view: &View<'_>, effect: &Effect) -> Result<(), Violation> {
        let broken = |m: String| Err(Violation::new(Invariant::SocketAccounting, m));
        match effect {
            Effect::Connect { socket, .. } => {
                if view.sockets.contains_key(socket) {
                    return broken(format!("{socket} connected twice"));
                }
                let open = view.sockets.values().filter(|s| s.closed.is_none()).count();
                // The shared connection and the pool's.
                let limit = view.params.pool.max_size + 1;
                if open + 1 > limit {
                    return Err(Violation::new(
                        Invariant::Bounded,
                        format!(
                            "{socket} would be open socket number {} (pool max_size {} + the shared one)",
                            open + 1,
                            view.params.pool.max_size
                        ),
                    ));
                }
                Ok(())
            }
            Effect::Send { socket, data } => match view.sockets.get(socket) {
                None => broken(format!(
                    "{} bytes sent on {socket}, never opened",
                    data.len()
                )),
                Some(SocketLife {
                    closed: Some((at, reason)),
                    ..
                }) => broken(format!(
                    "{} bytes sent on {socket} after its Close ({reason} at {at:?})",
                    data.len()
                )),
                Some(_) => Ok(()),
            },
            Effect::Close { socket, reason } => match view.sockets.get(socket) {
                None => broken(format!("{socket} closed ({reason}) but never opened")),
                Some(SocketLife {
                    closed: Some((at, first)),
                    ..
                }) => broken(format!(
                    "{socket} closed twice: {first} at {at:?}, then {reason}"
                )),
                Some(life) => {
                    let failed =
                        life.ready.is_none() && redpoll_core::reconnect::classify(reason).is_some();
                    if failed {
                        self.storm(view, *socket, reason)?;
                    }
                    Ok(())
                }
            },
            Effect::Probe { socket } => match view.sockets.get(socket) {
                None => broken(format!("probe of {socket}, never opened")),
                Some(SocketLife {
                    closed: Some((at, reason)),
                    ..
                }) => broken(format!(
                    "probe of {socket} after its Close ({reason} at {at:?})"
                )),
                Some(_) => Ok(()),
            },
        }
    }

    fn event(&mut self, view: &View<'_>, event: &Event) -> Result<(), Violation> {
        match event {
            // Events are drained after effects: a connection that became
            // ready and closed within one input has its `Close` seen first.
            Event::Connected { socket, .. } => match view.sockets.get(socket) {
                Some(SocketLife { ready: None, .. }) => Ok(()),
                other => Err(Violation::new(
                    Invariant::SocketAccounting,
                    format!("Connected reported for {socket}, which is {other:?}"),
                )),
            },
            Event::Disconnected { socket, .. } => match view.sockets.get(socket) {
                Some(SocketLife {
                    closed: Some(_), ..
                }) => Ok(()),
                other => Err(Violation::new(
                    Invariant::SocketAccounting,
                    format!("Disconnected reported for {socket} before its Close: {other:?}"),
                )),
            },
            _ => Ok(()),
        }
    }

    fn step(&mut self, view: &View<'_>) -> Result<(), Violation> {
        let limit = view.params.conn.handshake_timeout;
        for (socket, life) in view.sockets {
            if life.ready.is_some() || life.closed.is_some() {
                continue;
            }
            let deadline = life.opened + limit;
            // At the deadline instant itself, only once the client was
            // told the time: other inputs of that instant come first.
            if view.now > deadline || (view.timeout_step && view.now >= deadline) {
                return Err(Violation::new(
                    Invariant::HandshakeDeadline,
                    format!(
                        "{socket}, opened at {:?}, is neither ready nor closed at {:?}, past its handshake deadline {deadline:?}",
                        life.opened, view.now
                    ),
                ));
            }
        }
        Ok(())
    }

    fn end(&mut self, view: &View<'_>) -> Result<(), Violation> {
        for (socket, life) in view.sockets {
            if life.closed.is_none() {
                return Err(Violation::new(
                    Invariant::SocketAccounting,
                    format!(
                        "{socket} (opened at {:?}) never closed after shutdown: leaked",
                        life.opened
                    ),
                ));
            }
        }
        Ok(())
    }
}
