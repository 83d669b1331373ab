//! Invariant I2, checked from the world's side: no request is handed a
//! connection known dead, and stale connections never consume retries.
//!
//! The world knows what the client cannot: when a peer's close reached a
//! socket (the adapter reports it only [`eof_lag`](super::net::NetParams)
//! later, a probe sees it at once), why the server closed a connection, and
//! what it fed the client. [`Liveness`] holds the core to what it could
//! have known:
//!
//! - **Known dead** ([`Invariant::PoolLiveness`]): nothing is written to a
//!   socket after the client was told of its EOF or read error (directly,
//!   or by a probe's answer).
//! - **Gated by a probe** ([`Invariant::PoolLiveness`]): nothing is written
//!   to a socket while a probe of it is out (from the `Probe` effect until
//!   the adapter reports "nothing waiting", or the socket's `Close`), save
//!   a TLS `close_notify` directly before a `Close` for shutdown.
//! - **Stale by the probe rule** ([`Invariant::PoolLiveness`]): the server
//!   closed a ready connection because it was idle (its `timeout`: it had
//!   answered every command, and no byte of the client was lost with the
//!   close); its EOF has reached the client's socket, unreported; the
//!   client reads nothing after it and writes nothing between the close and
//!   its first write; that write comes when the connection has been quiet
//!   (nothing read) for at least [`PoolConfig::probe_after`]. Then the
//!   core's own rule asked for a probe before the write, and the probe
//!   would have found the EOF: the write hands a request a dead
//!   connection. The rule is applied at the checkout: for the shared
//!   connection the write itself, for a dedicated one the moment it was
//!   handed to its lease or blocking command
//!   ([`Client::checked_out_at`](redpoll_core::Client::checked_out_at)):
//!   a held lease is not re-checked, by design, so a connection the server
//!   closed after its checkout died in its user's hands (a lease whose
//!   first request was cancelled while it waited for the connection
//!   writes only when its user sends again, however late). A probe that
//!   found nothing also covers the first write after it.
//! - **Stale connections never consume retries** ([`Invariant::PoolRetries`]):
//!   while a probe of a socket is out, everything queued on it is gated,
//!   never written; so whatever the world then reports on that socket (an
//!   EOF, an error, bytes: a probe's answer or a late delivery) moves those
//!   requests on for free: the pool's `retries` count (requests sent again
//!   after their connection failed, [`PoolStats::retries`]) does not grow
//!   while the client handles it. A retry is spent only by a request
//!   written to a connection believed alive, and the rule above makes sure
//!   no request is written to one known stale.
//!
//! [`PoolConfig::probe_after`]: redpoll_core::pool::PoolConfig::probe_after
//! [`PoolStats::retries`]: redpoll_core::pool::PoolStats::retries

use std::collections::BTreeMap;

use redpoll_core::{CloseReason, Effect, Event, Instant, SocketId};

use super::check::{Check, Invariant, View, Violation, WorldEvent};
use super::net::ToClient;

/// What the world knows of one socket of the client.
#[derive(Debug, Clone, Copy)]
struct Sock {
    /// When the client was told it is dead (EOF, read error).
    dead: Option<Instant>,
    /// A probe is out.
    probing: bool,
    /// When the server closed it for idleness, with nothing of the client
    /// lost, until the client's first write after.
    idle_closed: Option<Instant>,
    /// When the client last read something on it (or connected): the
    /// core's "quiet since".
    last_rx: Instant,
    /// A probe found nothing and nothing was written since: the next write
    /// is the one that probe checked out.
    probed_clean: bool,
}

/// The I2 checks (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct Liveness {
    socks: BTreeMap<SocketId, Sock>,
    /// A write that breaks I2 unless the next effect closes its socket for
    /// shutdown (then it is the TLS `close_notify`).
    suspect: Option<(SocketId, Violation)>,
    /// The pool's `retries` before the client handled an input on a socket
    /// with a probe out.
    retries_before: Option<(SocketId, u64, &'static str)>,
}

impl Liveness {
    /// Settles what the previous input and write left open.
    fn settle(&mut self, view: &View<'_>, effect: Option<&Effect>) -> Result<(), Violation> {
        if let Some((socket, before, what)) = self.retries_before.take() {
            let after = view.client.pool_stats().retries;
            if after > before {
                return Err(Violation::new(
                    Invariant::PoolRetries,
                    format!(
                        "{} retries spent when {what} on {socket} while a probe of it was out: only requests gated behind the probe, never written, were on it",
                        after - before
                    ),
                ));
            }
        }
        if let Some((socket, violation)) = self.suspect.take() {
            let shutdown = matches!(
                effect,
                Some(Effect::Close { socket: s, reason: CloseReason::Shutdown }) if *s == socket
            );
            if !shutdown {
                return Err(violation);
            }
        }
        Ok(())
    }

    fn write(&mut self, view: &View<'_>, socket: SocketId, len: usize) -> Result<(), Violation> {
        let Some(sock) = self.socks.get_mut(&socket) else {
            return Ok(());
        };
        let now = view.now;
        let broken = |m: String| Err(Violation::new(Invariant::PoolLiveness, m));
        if let Some(at) = sock.dead {
            return broken(format!(
                "{len} bytes written to {socket}, known dead since {at:?} (EOF or error reported)"
            ));
        }
        if sock.probing {
            let v = Violation::new(
                Invariant::PoolLiveness,
                format!("{len} bytes written to {socket} while a probe of it was out"),
            );
            self.suspect = Some((socket, v));
            return Ok(());
        }
        let probed_clean = core::mem::take(&mut sock.probed_clean);
        let Some(closed) = sock.idle_closed.take() else {
            return Ok(());
        };
        if probed_clean {
            return Ok(());
        }
        let Some(after) = view.params.pool.probe_after else {
            return Ok(());
        };
        // The probe rule is the checkout's: the shared connection's is this
        // write, a dedicated connection's the moment it was handed to its
        // lease (or blocking command). Closed by the server after that, it
        // died in its user's hands: the core could not have known.
        let checkout = view.client.checked_out_at(socket).unwrap_or(now);
        if closed > checkout {
            return Ok(());
        }
        let quiet = checkout.saturating_duration_since(sock.last_rx);
        if quiet >= after && view.net.peer_close_arrived(socket, checkout) {
            let v = Violation::new(
                Invariant::PoolLiveness,
                format!(
                    "{len} bytes written to {socket}, quiet since {:?} ({quiet:?} >= probe_after {after:?}), which the server closed as idle at {closed:?}: its EOF was waiting in the socket, where the probe the rule asks for would have found it",
                    sock.last_rx
                ),
            );
            self.suspect = Some((socket, v));
        }
        Ok(())
    }
}

impl Check for Liveness {
    fn effect(&mut self, view: &View<'_>, effect: &Effect) -> Result<(), Violation> {
        self.settle(view, Some(effect))?;
        match effect {
            Effect::Connect { socket, .. } => {
                self.socks.insert(
                    *socket,
                    Sock {
                        dead: None,
                        probing: false,
                        idle_closed: None,
                        last_rx: view.now,
                        probed_clean: false,
                    },
                );
                Ok(())
            }
            Effect::Send { socket, data } => self.write(view, *socket, data.len()),
            Effect::Probe { socket } => {
                if let Some(sock) = self.socks.get_mut(socket) {
                    sock.probing = true;
                }
                Ok(())
            }
            Effect::Close { socket, .. } => {
                self.socks.remove(socket);
                Ok(())
            }
        }
    }

    fn world(&mut self, view: &View<'_>, event: &WorldEvent<'_>) -> Result<(), Violation> {
        self.settle(view, None)?;
        match *event {
            WorldEvent::Fed {
                socket,
                what,
                probe,
            } => {
                let Some(sock) = self.socks.get_mut(&socket) else {
                    return Ok(());
                };
                if sock.probing {
                    let what = match (what, probe) {
                        (ToClient::Eof, true) => "a probe found an EOF",
                        (ToClient::Error(_), true) => "a probe found an error",
                        (_, true) => "a probe found bytes",
                        (ToClient::Eof, false) => "an EOF arrived",
                        (ToClient::Error(_), false) => "an error arrived",
                        (_, false) => "bytes arrived",
                    };
                    self.retries_before = Some((socket, view.client.pool_stats().retries, what));
                }
                match what {
                    ToClient::Eof | ToClient::Error(_) => sock.dead = Some(view.now),
                    ToClient::Connected | ToClient::Data(_) => sock.last_rx = view.now,
                    ToClient::ConnectFailed(_) => {}
                }
            }
            WorldEvent::ProbeNothing { socket } => {
                if let Some(sock) = self.socks.get_mut(&socket) {
                    sock.probing = false;
                    sock.probed_clean = true;
                }
            }
            WorldEvent::ServerClosedIdle { socket, lost } => {
                let ready = view.sockets.get(&socket).is_some_and(|l| l.ready.is_some());
                if let Some(sock) = self.socks.get_mut(&socket)
                    && ready
                    && !lost
                {
                    sock.idle_closed = Some(view.now);
                }
            }
        }
        Ok(())
    }

    fn event(&mut self, view: &View<'_>, _event: &Event) -> Result<(), Violation> {
        self.settle(view, None)
    }

    fn step(&mut self, view: &View<'_>) -> Result<(), Violation> {
        self.settle(view, None)
    }

    fn end(&mut self, view: &View<'_>) -> Result<(), Violation> {
        self.settle(view, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::net::Net;
    use crate::sim::rng::Rng;
    use crate::sim::{Params, Profile};
    use bytes::Bytes;
    use redpoll_core::Client;

    /// Runs `script` (effects and world events, in order) through a fresh
    /// check, then a step; the first violation.
    fn run(script: &[Result<Effect, WorldEvent<'_>>]) -> Result<(), Violation> {
        let params = Params::draw(0, Profile::Full);
        let client = Client::new(params.client_config());
        let net = Net::new(params.net, Rng::new(0));
        let sockets = BTreeMap::new();
        let view = View {
            now: Instant::from_nanos(1_000),
            client: &client,
            params: &params,
            sockets: &sockets,
            timeout_step: false,
            net: &net,
        };
        let mut check = Liveness::default();
        for item in script {
            match item {
                Ok(effect) => check.effect(&view, effect)?,
                Err(event) => check.world(&view, event)?,
            }
        }
        check.step(&view)
    }

    /// The `Connect` of a client's first socket (ids are the core's to
    /// make).
    fn connect() -> Result<Effect, WorldEvent<'static>> {
        let mut client = Client::new(Params::draw(0, Profile::Full).client_config());
        let _ = client.send(Instant::from_nanos(1), &redpoll_core::cmd::Cmd::new("PING"));
        Ok(client.poll_effect().expect("a Connect"))
    }

    fn socket() -> SocketId {
        match connect() {
            Ok(Effect::Connect { socket, .. }) => socket,
            other => panic!("expected a Connect, got {other:?}"),
        }
    }

    fn send() -> Result<Effect, WorldEvent<'static>> {
        Ok(Effect::Send {
            socket: socket(),
            data: Bytes::from_static(b"*1\r\n$4\r\nPING\r\n"),
        })
    }

    #[test]
    fn a_write_under_a_probe_is_caught_unless_it_is_the_goodbye() {
        let probe = Ok(Effect::Probe { socket: socket() });
        let err = run(&[connect(), probe.clone(), send()]).unwrap_err();
        assert_eq!(err.invariant, Invariant::PoolLiveness);
        let shutdown = Ok(Effect::Close {
            socket: socket(),
            reason: CloseReason::Shutdown,
        });
        run(&[connect(), probe.clone(), send(), shutdown]).unwrap();
        let nothing = Err(WorldEvent::ProbeNothing { socket: socket() });
        run(&[connect(), probe, nothing, send()]).unwrap();
    }

    #[test]
    fn a_write_after_the_eof_was_reported_is_caught() {
        let eof = Err(WorldEvent::Fed {
            socket: socket(),
            what: &ToClient::Eof,
            probe: false,
        });
        let err = run(&[connect(), eof, send()]).unwrap_err();
        assert_eq!(err.invariant, Invariant::PoolLiveness);
        run(&[connect(), send()]).unwrap();
    }
}
