//! Where a command goes next: routing by slot, redirect resolution, and the
//! refresh schedule.
//!
//! # What this module decides
//!
//! Given a reply (or a slot to route, or a connection that failed), what
//! the client does with the command: deliver the reply, send the command to
//! a node (one it has a pool for, or a new one to connect to), send it once
//! with `ASKING`, hold it until the topology is refreshed, wait and retry,
//! or fail it with a named reason. And when the topology is refreshed.
//!
//! # Invariants
//!
//! - **Resolution is total** (I3). [`resolve`], [`route`] and
//!   [`connection_failed`] answer every input with a [`Resolution`], which always
//!   holds a [`Route`]: there is no "nothing" to return, and no "no
//!   connection": a node without a pool is a [`Target::Connect`] carrying
//!   its address, decided on the same state the client then acts on.
//! - **A redirect is not a failure.** Following `MOVED`/`ASK` is counted
//!   against [`RedirectPolicy::max_redirects`] only, never against the
//!   command's retry budget; `TRYAGAIN`, `CLUSTERDOWN` and `LOADING` waits
//!   against [`RedirectPolicy::max_waits`].
//! - **`MOVED` is applied at once**: its resolution carries the slot update
//!   (applied with [`Topology::set_owner`]) and asks for a refresh, even when
//!   the command fails for too many redirects: the news is true whatever
//!   happens to the command. **`ASK` never changes the slot map.**
//! - **Refreshes are coalesced and rate-limited** ([`RefreshSchedule`]): any
//!   number of requests before a refresh starts make one refresh; at most
//!   one starts per minimum interval; a request made while one is in flight
//!   makes one more afterwards (the reply in flight may predate the news).
//!
//! [`Topology::set_owner`]: super::Topology::set_owner

use core::fmt;

use super::keys::CrossSlot;
use super::node::{NodeKey, NodeKeys};
use super::slot::SLOT_COUNT;
use super::topology::Topology;
use crate::io::Address;
use crate::resp::Frame;
use crate::time::{Duration, Instant};

/// What an error reply means to cluster routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterReply<'a> {
    /// `MOVED <slot> <host>:<port>`: the slot is served elsewhere, for good.
    Moved(Redirect<'a>),
    /// `ASK <slot> <host>:<port>`: the slot is migrating; this one command
    /// goes to the target, preceded by `ASKING`.
    Ask(Redirect<'a>),
    /// A `MOVED` or `ASK` whose slot or endpoint cannot be read.
    BadRedirect,
    /// `TRYAGAIN`: a multi-key command during a slot migration; retry soon.
    TryAgain,
    /// `CLUSTERDOWN`: the cluster cannot serve the slot now (failover,
    /// uncovered slot).
    ClusterDown,
    /// `LOADING`: the node is loading its data set.
    Loading,
    /// Anything else: the command's own reply.
    Other,
}

/// Where a `MOVED` or `ASK` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirect<'a> {
    /// The slot.
    pub slot: u16,
    /// The host as sent: an IP, a name, an IPv6 address without brackets,
    /// or empty for "the node that answered".
    pub host: &'a str,
    /// The port.
    pub port: u16,
}

impl<'a> ClusterReply<'a> {
    /// Reads a reply. Only error replies (`-` and `!`) can be anything but
    /// [`ClusterReply::Other`]; the codes are matched exactly as the server
    /// sends them.
    #[must_use]
    pub fn of(reply: &'a Frame) -> Self {
        let message = match reply.without_attributes() {
            Frame::Error(message) | Frame::BulkError(message) => &message[..],
            _ => return Self::Other,
        };
        let mut words = message.split(|&b| b == b' ');
        match words.next() {
            Some(b"MOVED") => Redirect::parse(words).map_or(Self::BadRedirect, Self::Moved),
            Some(b"ASK") => Redirect::parse(words).map_or(Self::BadRedirect, Self::Ask),
            Some(b"TRYAGAIN") => Self::TryAgain,
            Some(b"CLUSTERDOWN") => Self::ClusterDown,
            Some(b"LOADING") => Self::Loading,
            _ => Self::Other,
        }
    }
}

impl<'a> Redirect<'a> {
    /// `<slot> <host>:<port>` and nothing more. The port follows the last
    /// colon, so IPv6 hosts (`::1:7000`) need no brackets.
    fn parse(mut words: impl Iterator<Item = &'a [u8]>) -> Option<Self> {
        let slot = decimal(words.next()?).filter(|&slot| slot < SLOT_COUNT)?;
        let endpoint = core::str::from_utf8(words.next()?).ok()?;
        if words.next().is_some() {
            return None;
        }
        let (host, port) = endpoint.rsplit_once(':')?;
        let port = decimal(port.as_bytes()).filter(|&port| port != 0)?;
        Some(Self { slot, host, port })
    }

    /// The target's key: the node that answered for an empty host.
    fn target(&self, from: &NodeKey, keys: &NodeKeys) -> Option<NodeKey> {
        if self.host.is_empty() {
            Some(from.with_port(self.port))
        } else {
            keys.key(self.host, self.port).ok()
        }
    }
}

/// A `u16` in plain decimal digits.
fn decimal(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(n).ok()
}

/// The limits of following redirects and waiting out a busy cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectPolicy {
    /// `MOVED`/`ASK` replies followed for one command before it fails with
    /// [`ClusterFailure::TooManyRedirects`]. Default: 16.
    pub max_redirects: u32,
    /// `TRYAGAIN`/`CLUSTERDOWN`/`LOADING` waits for one command before it
    /// fails. Default: 20.
    pub max_waits: u32,
    /// The first wait; each next one doubles. Default: 20 ms.
    pub wait_base: Duration,
    /// The longest wait. Default: 1 s. With the other defaults a command
    /// waits about 16 s in all, past a default `cluster-node-timeout` (15 s),
    /// so an automatic failover is waited out.
    pub wait_cap: Duration,
}

impl Default for RedirectPolicy {
    fn default() -> Self {
        Self {
            max_redirects: 16,
            max_waits: 20,
            wait_base: Duration::from_millis(20),
            wait_cap: Duration::from_secs(1),
        }
    }
}

impl RedirectPolicy {
    /// The wait before retry number `waits` (from 0): `wait_base * 2^waits`,
    /// capped at `wait_cap`.
    #[must_use]
    pub fn wait(&self, waits: u32) -> Duration {
        let factor = 1u32.checked_shl(waits).unwrap_or(u32::MAX);
        self.wait_base.saturating_mul(factor).min(self.wait_cap)
    }
}

/// What the client knows about the command whose reply is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt<'a> {
    /// The node that sent the reply.
    pub node: &'a NodeKey,
    /// `MOVED`/`ASK` replies followed so far for this command.
    pub redirects: u32,
    /// `TRYAGAIN`/`CLUSTERDOWN`/`LOADING` waits so far for this command.
    pub waits: u32,
}

/// The outcome of a routing decision: always a route, plus what to change
/// on the side.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// What to do with the command.
    pub route: Route,
    /// A `MOVED`'s news, to apply at once with
    /// [`Topology::set_owner`](super::Topology::set_owner).
    pub slot_update: Option<(u16, NodeKey)>,
    /// Whether to ask the [`RefreshSchedule`] for a refresh.
    pub refresh: bool,
}

impl Resolution {
    const fn only(route: Route) -> Self {
        Self {
            route,
            slot_update: None,
            refresh: false,
        }
    }

    const fn and_refresh(route: Route) -> Self {
        Self {
            route,
            slot_update: None,
            refresh: true,
        }
    }
}

/// What to do with a command.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The reply is the command's answer (a value, or an error of its own):
    /// hand it to the caller.
    Deliver,
    /// Send the command to the target (again: a redirect counts one more
    /// in [`Attempt::redirects`]).
    Send(Target),
    /// Send `ASKING` then the command, once, to the target, without
    /// changing the slot map (a redirect).
    Ask(Target),
    /// Hold the command until the next refresh completes, then route it by
    /// its slot again ([`route`]).
    AfterRefresh,
    /// Wait this long, then route the command by its slot again (a wait, in
    /// [`Attempt::waits`]).
    Backoff(Duration),
    /// Fail the command.
    Fail(ClusterFailure),
}

/// A node to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A node the client has a pool for.
    Pooled(NodeKey),
    /// A node the client has no pool for: make one, connecting to `address`.
    Connect {
        /// The node.
        node: NodeKey,
        /// Where to connect.
        address: Address,
    },
}

impl Target {
    fn of(node: NodeKey, keys: &NodeKeys, pooled: impl Fn(&NodeKey) -> bool) -> Self {
        if pooled(&node) {
            Self::Pooled(node)
        } else {
            let address = keys.address(&node);
            Self::Connect { node, address }
        }
    }

    /// The node, pooled or not.
    #[must_use]
    pub const fn node(&self) -> &NodeKey {
        match self {
            Self::Pooled(node) | Self::Connect { node, .. } => node,
        }
    }
}

/// Why a command failed in the cluster.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterFailure {
    /// The command was redirected more than the policy allows.
    TooManyRedirects {
        /// The limit.
        limit: u32,
    },
    /// The cluster stayed down through every wait.
    ClusterDown,
    /// The server kept answering `TRYAGAIN` through every wait.
    TryAgain,
    /// The node kept loading its data set through every wait.
    Loading,
    /// The command's keys are in different slots.
    CrossSlot(CrossSlot),
    /// A part of a split or fanned-out command (`MGET` per slot, `DBSIZE`
    /// on every primary) replied with a shape that cannot be merged.
    BadPartReply,
    /// The primaries gave different replies to a command sent to all of
    /// them (`SCRIPT LOAD`, `FLUSHALL`), which must agree.
    Disagreement,
    /// The node a command was sent to is not in the cluster's topology.
    UnknownNode,
}

impl fmt::Display for ClusterFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyRedirects { limit } => {
                write!(f, "more than {limit} cluster redirects (MOVED/ASK)")
            }
            Self::ClusterDown => f.write_str("the cluster is down (CLUSTERDOWN)"),
            Self::TryAgain => f.write_str("the slot stayed unavailable (TRYAGAIN)"),
            Self::Loading => f.write_str("the node stayed loading its data set (LOADING)"),
            Self::CrossSlot(e) => write!(f, "{e}"),
            Self::BadPartReply => {
                f.write_str("a part of a split command replied with an unexpected shape")
            }
            Self::Disagreement => {
                f.write_str("the primaries gave different replies to a command sent to all")
            }
            Self::UnknownNode => f.write_str("the node is not in the cluster's topology"),
        }
    }
}

impl From<CrossSlot> for ClusterFailure {
    fn from(e: CrossSlot) -> Self {
        Self::CrossSlot(e)
    }
}

/// Routes a command by its slot: to the slot's owner, or, when no shard is
/// known to serve it (no topology yet, or a refresh left it unassigned),
/// after a refresh.
///
/// `pooled` says whether the client has a pool for a node.
pub fn route(
    slot: u16,
    topology: &Topology,
    keys: &NodeKeys,
    pooled: impl Fn(&NodeKey) -> bool,
) -> Resolution {
    match topology.owner(slot) {
        Some(owner) => Resolution::only(Route::Send(Target::of(owner.clone(), keys, pooled))),
        None => Resolution::and_refresh(Route::AfterRefresh),
    }
}

/// Resolves the reply to a command, by this table:
///
/// | reply | route | slot update | refresh |
/// |---|---|---|---|
/// | not a cluster error | `Deliver` | | |
/// | `MOVED` | `Send` to the target | yes | yes |
/// | `ASK` | `Ask` the target | | |
/// | `MOVED`/`ASK` beyond `max_redirects` | `Fail(TooManyRedirects)` | `MOVED`: yes | `MOVED`: yes |
/// | `MOVED`/`ASK` to an unreadable target | `AfterRefresh` | | yes |
/// | `TRYAGAIN`, `LOADING` | `Backoff` | | |
/// | `CLUSTERDOWN` | `Backoff` | | yes |
/// | those beyond `max_waits` | `Fail(TryAgain / Loading / ClusterDown)` | | as above |
///
/// `pooled` says whether the client has a pool for a node.
pub fn resolve(
    reply: &Frame,
    attempt: Attempt<'_>,
    keys: &NodeKeys,
    pooled: impl Fn(&NodeKey) -> bool,
    policy: &RedirectPolicy,
) -> Resolution {
    let too_many = attempt.redirects >= policy.max_redirects;
    let give_up = Route::Fail(ClusterFailure::TooManyRedirects {
        limit: policy.max_redirects,
    });
    match ClusterReply::of(reply) {
        ClusterReply::Other => Resolution::only(Route::Deliver),
        ClusterReply::Moved(redirect) => match redirect.target(attempt.node, keys) {
            Some(node) => Resolution {
                slot_update: Some((redirect.slot, node.clone())),
                refresh: true,
                route: if too_many {
                    give_up
                } else {
                    Route::Send(Target::of(node, keys, pooled))
                },
            },
            None => unfollowable(too_many, give_up),
        },
        ClusterReply::Ask(redirect) => match redirect.target(attempt.node, keys) {
            Some(_) if too_many => Resolution::only(give_up),
            Some(node) => Resolution::only(Route::Ask(Target::of(node, keys, pooled))),
            None => unfollowable(too_many, give_up),
        },
        ClusterReply::BadRedirect => unfollowable(too_many, give_up),
        ClusterReply::TryAgain => wait(attempt, policy, ClusterFailure::TryAgain, false),
        ClusterReply::Loading => wait(attempt, policy, ClusterFailure::Loading, false),
        ClusterReply::ClusterDown => wait(attempt, policy, ClusterFailure::ClusterDown, true),
    }
}

/// A connection to a command's target could not be made or broke: the slot
/// map may point at a node that left, so refresh, and route the command
/// again after it. (This is a failure of the command's attempt, counted by
/// the client's retry budget, not a redirect.)
pub const fn connection_failed() -> Resolution {
    Resolution::and_refresh(Route::AfterRefresh)
}

/// A redirect that says the slot is elsewhere without saying usably where:
/// learn where from a refresh.
fn unfollowable(too_many: bool, give_up: Route) -> Resolution {
    Resolution::and_refresh(if too_many {
        give_up
    } else {
        Route::AfterRefresh
    })
}

fn wait(
    attempt: Attempt<'_>,
    policy: &RedirectPolicy,
    failure: ClusterFailure,
    refresh: bool,
) -> Resolution {
    let route = if attempt.waits >= policy.max_waits {
        Route::Fail(failure)
    } else {
        Route::Backoff(policy.wait(attempt.waits))
    };
    Resolution {
        route,
        slot_update: None,
        refresh,
    }
}

/// When to refresh the topology: coalesced requests, at most one refresh
/// started per minimum interval, one in flight at a time. Runs on the
/// core's clock ([`Instant`]); the interval is measured between starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSchedule {
    min_interval: Duration,
    /// A refresh is wanted that has not started.
    wanted: bool,
    in_flight: bool,
    last_start: Option<Instant>,
}

impl RefreshSchedule {
    /// A schedule starting at most one refresh per `min_interval`.
    #[must_use]
    pub const fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            wanted: false,
            in_flight: false,
            last_start: None,
        }
    }

    /// Asks for a refresh. Requests coalesce: many before a start make one
    /// refresh; any during a refresh in flight make one more after it.
    pub const fn request(&mut self) {
        self.wanted = true;
    }

    /// Whether a refresh should start at `now`.
    #[must_use]
    pub fn due(&self, now: Instant) -> bool {
        self.next_deadline().is_some_and(|at| at <= now)
    }

    /// When the wanted refresh may start (possibly already past); `None`
    /// when none is wanted or one is in flight.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.wanted || self.in_flight {
            return None;
        }
        Some(
            self.last_start
                .map_or(Instant::ZERO, |at| at + self.min_interval),
        )
    }

    /// A refresh started at `now` (call it when [`due`](Self::due) said so).
    pub const fn started(&mut self, now: Instant) {
        self.wanted = false;
        self.in_flight = true;
        self.last_start = Some(now);
    }

    /// The refresh in flight completed; its result is applied.
    pub const fn completed(&mut self) {
        self.in_flight = false;
    }

    /// The refresh in flight failed: another is wanted, after the interval.
    pub const fn failed(&mut self) {
        self.in_flight = false;
        self.wanted = true;
    }

    /// Whether a refresh is in flight.
    #[must_use]
    pub const fn in_flight(&self) -> bool {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::topology::tests::{cluster, key, map, shard, shards_node};
    use alloc::collections::BTreeSet;
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;
    use bytes::Bytes;

    fn error(message: &str) -> Frame {
        Frame::Error(Bytes::copy_from_slice(message.as_bytes()))
    }

    fn first(node: &NodeKey) -> Attempt<'_> {
        Attempt {
            node,
            redirects: 0,
            waits: 0,
        }
    }

    #[test]
    fn cluster_errors_are_read_exactly() {
        let cases = [
            (
                "MOVED 3999 127.0.0.1:6381",
                ClusterReply::Moved(Redirect {
                    slot: 3999,
                    host: "127.0.0.1",
                    port: 6381,
                }),
            ),
            (
                "ASK 3999 127.0.0.1:6381",
                ClusterReply::Ask(Redirect {
                    slot: 3999,
                    host: "127.0.0.1",
                    port: 6381,
                }),
            ),
            (
                "MOVED 0 :7000",
                ClusterReply::Moved(Redirect {
                    slot: 0,
                    host: "",
                    port: 7000,
                }),
            ),
            (
                "MOVED 16383 ::1:7000",
                ClusterReply::Moved(Redirect {
                    slot: 16383,
                    host: "::1",
                    port: 7000,
                }),
            ),
            (
                "ASK 1 redis-1.example:7000",
                ClusterReply::Ask(Redirect {
                    slot: 1,
                    host: "redis-1.example",
                    port: 7000,
                }),
            ),
            ("MOVED 16384 127.0.0.1:7000", ClusterReply::BadRedirect),
            ("MOVED -1 127.0.0.1:7000", ClusterReply::BadRedirect),
            ("MOVED 1 127.0.0.1", ClusterReply::BadRedirect),
            ("MOVED 1 127.0.0.1:0", ClusterReply::BadRedirect),
            ("MOVED 1 127.0.0.1:65536", ClusterReply::BadRedirect),
            ("MOVED 1 127.0.0.1:7000 extra", ClusterReply::BadRedirect),
            ("MOVED 1", ClusterReply::BadRedirect),
            ("MOVED", ClusterReply::BadRedirect),
            ("ASK x 127.0.0.1:1", ClusterReply::BadRedirect),
            (
                "TRYAGAIN Multiple keys request during rehashing of slot",
                ClusterReply::TryAgain,
            ),
            ("CLUSTERDOWN The cluster is down", ClusterReply::ClusterDown),
            (
                "CLUSTERDOWN Hash slot not served",
                ClusterReply::ClusterDown,
            ),
            (
                "LOADING Redis is loading the dataset in memory",
                ClusterReply::Loading,
            ),
            ("ERR unknown command", ClusterReply::Other),
            ("moved 1 127.0.0.1:1", ClusterReply::Other),
            ("MOVEDX 1 127.0.0.1:1", ClusterReply::Other),
            ("", ClusterReply::Other),
        ];
        for (message, expected) in cases {
            assert_eq!(ClusterReply::of(&error(message)), expected, "{message}");
        }
        let bulk_error = Frame::BulkError(Bytes::from_static(b"ASK 7 10.0.0.1:7000"));
        assert!(matches!(
            ClusterReply::of(&bulk_error),
            ClusterReply::Ask(_)
        ));
        let not_an_error = Frame::Simple(Bytes::from_static(b"MOVED 1 127.0.0.1:1"));
        assert_eq!(ClusterReply::of(&not_an_error), ClusterReply::Other);
        let invalid_utf8 = Frame::Error(Bytes::from_static(b"MOVED 1 \xff:7000"));
        assert_eq!(ClusterReply::of(&invalid_utf8), ClusterReply::BadRedirect);
    }

    #[test]
    fn a_reply_that_is_not_a_redirect_is_delivered() {
        let keys = NodeKeys::new();
        let from = key(&keys, "127.0.0.1", 7000);
        let policy = RedirectPolicy::default();
        for reply in [
            Frame::Simple(Bytes::from_static(b"OK")),
            Frame::Null,
            error("ERR wrong number of arguments"),
            error("WRONGTYPE Operation against a key holding the wrong kind of value"),
            error("CROSSSLOT Keys in request don't hash to the same slot"),
        ] {
            assert_eq!(
                resolve(&reply, first(&from), &keys, |_| true, &policy),
                Resolution::only(Route::Deliver),
            );
        }
    }

    #[test]
    fn moved_to_a_pooled_node_updates_the_slot_at_once_and_refreshes() {
        let keys = NodeKeys::new();
        let mut topology = cluster(&keys);
        let from = key(&keys, "127.0.0.1", 7000);
        let to = key(&keys, "127.0.0.1", 7001);
        let moved = error("MOVED 42 127.0.0.1:7001");

        let resolution = resolve(
            &moved,
            first(&from),
            &keys,
            |_| true,
            &RedirectPolicy::default(),
        );
        assert_eq!(
            resolution,
            Resolution {
                route: Route::Send(Target::Pooled(to.clone())),
                slot_update: Some((42, to.clone())),
                refresh: true,
            }
        );
        let (slot, owner) = resolution.slot_update.unwrap();
        assert!(topology.set_owner(slot, owner));
        assert_eq!(topology.owner(42), Some(&to));
        // The next command for the slot goes straight there.
        assert_eq!(
            route(42, &topology, &keys, |_| true).route,
            Route::Send(Target::Pooled(to))
        );
    }

    #[test]
    fn moved_to_a_node_not_in_the_topology_connects_to_it() {
        let mut keys = NodeKeys::new();
        let _ = keys.learn("localhost", "127.0.0.1".parse().unwrap());
        let topology = cluster(&keys);
        let from = key(&keys, "127.0.0.1", 7000);
        let moved = error("MOVED 42 LOCALHOST.:7010");
        let pools: BTreeSet<NodeKey> = topology.nodes().map(|n| n.key.clone()).collect();
        let pooled = |node: &NodeKey| pools.contains(node);

        let resolution = resolve(
            &moved,
            first(&from),
            &keys,
            pooled,
            &RedirectPolicy::default(),
        );
        let new = key(&keys, "127.0.0.1", 7010);
        assert!(topology.node(&new).is_none());
        assert_eq!(
            resolution,
            Resolution {
                route: Route::Send(Target::Connect {
                    node: new.clone(),
                    address: Address::tcp("127.0.0.1", 7010),
                }),
                slot_update: Some((42, new)),
                refresh: true,
            }
        );
    }

    #[test]
    fn moved_with_an_empty_host_means_the_node_that_answered() {
        let keys = NodeKeys::new();
        let from = key(&keys, "[::1]", 7000);
        let resolution = resolve(
            &error("MOVED 5 :7002"),
            first(&from),
            &keys,
            |_| false,
            &RedirectPolicy::default(),
        );
        let to = key(&keys, "::1", 7002);
        assert_eq!(
            resolution.route,
            Route::Send(Target::Connect {
                node: to.clone(),
                address: Address::tcp("::1", 7002),
            })
        );
        assert_eq!(resolution.slot_update, Some((5, to)));
    }

    #[test]
    fn ask_during_a_migration_leaves_the_slot_map_alone() {
        let keys = NodeKeys::new();
        let topology = cluster(&keys);
        let from = key(&keys, "127.0.0.1", 7000);
        let importing = key(&keys, "127.0.0.1", 7001);
        let ask = error("ASK 42 127.0.0.1:7001");

        let resolution = resolve(
            &ask,
            first(&from),
            &keys,
            |_| true,
            &RedirectPolicy::default(),
        );
        assert_eq!(
            resolution,
            Resolution::only(Route::Ask(Target::Pooled(importing)))
        );
        // The slot still belongs to the migrating node.
        assert_eq!(topology.owner(42), Some(&from));
        assert_eq!(
            resolve(
                &ask,
                first(&from),
                &keys,
                |_| false,
                &RedirectPolicy::default()
            )
            .route,
            Route::Ask(Target::Connect {
                node: key(&keys, "127.0.0.1", 7001),
                address: Address::tcp("127.0.0.1", 7001),
            })
        );
    }

    #[test]
    fn moved_while_a_refresh_is_pending_is_followed_and_coalesced() {
        let keys = NodeKeys::new();
        let from = key(&keys, "127.0.0.1", 7000);
        let mut schedule = RefreshSchedule::new(Duration::from_millis(100));
        let t0 = Instant::from_nanos(1_000_000_000);

        schedule.request();
        assert!(schedule.due(t0));
        schedule.started(t0);

        // A MOVED arrives while the refresh is in flight: the command goes
        // to the target at once, not after the refresh.
        let resolution = resolve(
            &error("MOVED 42 127.0.0.1:7001"),
            first(&from),
            &keys,
            |_| true,
            &RedirectPolicy::default(),
        );
        assert_eq!(
            resolution.route,
            Route::Send(Target::Pooled(key(&keys, "127.0.0.1", 7001)))
        );
        assert!(resolution.refresh);
        // Many MOVEDs ask many times; one more refresh follows, after the
        // interval, since the one in flight may predate the move.
        for _ in 0..1000 {
            schedule.request();
        }
        assert!(!schedule.due(t0 + Duration::from_secs(10)));
        assert_eq!(schedule.next_deadline(), None);
        schedule.completed();
        assert_eq!(
            schedule.next_deadline(),
            Some(t0 + Duration::from_millis(100))
        );
        assert!(!schedule.due(t0 + Duration::from_millis(99)));
        assert!(schedule.due(t0 + Duration::from_millis(100)));
        schedule.started(t0 + Duration::from_millis(100));
        schedule.completed();
        assert!(!schedule.due(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn a_refresh_that_removed_the_target_reroutes_by_slot() {
        let keys = NodeKeys::new();
        let mut topology = cluster(&keys);
        let from = key(&keys, "127.0.0.1", 7000);
        let leaving = key(&keys, "127.0.0.1", 7001);
        let mut pools: BTreeSet<NodeKey> = topology.nodes().map(|n| n.key.clone()).collect();

        // MOVED to 7001, and the command waits for its connection to 7001.
        let resolution = resolve(
            &error("MOVED 42 127.0.0.1:7001"),
            first(&from),
            &keys,
            |node| pools.contains(node),
            &RedirectPolicy::default(),
        );
        assert_eq!(
            resolution.route,
            Route::Send(Target::Pooled(leaving.clone()))
        );
        let (slot, owner) = resolution.slot_update.unwrap();
        let _ = topology.set_owner(slot, owner);

        // A refresh then shows 7001 gone (scaled down): slot 42 is back
        // with 7000, the slots of 7001's shard are not served yet.
        let ip = "127.0.0.1";
        let shrunk = Frame::Array(vec![
            shard(
                &[(0, 5460)],
                vec![
                    shards_node(ip, 7000, "master", "online"),
                    shards_node(ip, 7003, "replica", "online"),
                ],
                map,
            ),
            shard(
                &[(10923, 16383)],
                vec![
                    shards_node(ip, 7002, "master", "online"),
                    shards_node(ip, 7005, "replica", "online"),
                ],
                map,
            ),
        ]);
        let shrunk = Topology::from_shards(&shrunk, &from, false, &keys).unwrap();
        for node in topology.update(shrunk) {
            pools.remove(&node);
        }
        assert!(!pools.contains(&leaving));

        // The waiting command is routed again by its slot: a node that
        // exists, never "no connection".
        let again = route(42, &topology, &keys, |node| pools.contains(node));
        assert_eq!(again.route, Route::Send(Target::Pooled(from.clone())));
        // A slot the refresh left unserved waits for the next refresh.
        let unserved = route(6000, &topology, &keys, |node| pools.contains(node));
        assert_eq!(unserved, Resolution::and_refresh(Route::AfterRefresh));
    }

    #[test]
    fn too_many_redirects_fail_but_keep_the_news() {
        let keys = NodeKeys::new();
        let from = key(&keys, "127.0.0.1", 7000);
        let to = key(&keys, "127.0.0.1", 7001);
        let policy = RedirectPolicy {
            max_redirects: 3,
            ..RedirectPolicy::default()
        };
        let attempt = |redirects| Attempt {
            node: &from,
            redirects,
            waits: 0,
        };
        let moved = error("MOVED 42 127.0.0.1:7001");
        assert_eq!(
            resolve(&moved, attempt(2), &keys, |_| true, &policy).route,
            Route::Send(Target::Pooled(to.clone()))
        );
        assert_eq!(
            resolve(&moved, attempt(3), &keys, |_| true, &policy),
            Resolution {
                route: Route::Fail(ClusterFailure::TooManyRedirects { limit: 3 }),
                slot_update: Some((42, to)),
                refresh: true,
            }
        );
        let ask = error("ASK 42 127.0.0.1:7001");
        assert_eq!(
            resolve(&ask, attempt(3), &keys, |_| true, &policy),
            Resolution::only(Route::Fail(ClusterFailure::TooManyRedirects { limit: 3 }))
        );
        assert_eq!(
            ClusterFailure::TooManyRedirects { limit: 3 }.to_string(),
            "more than 3 cluster redirects (MOVED/ASK)"
        );
    }

    #[test]
    fn unfollowable_redirects_wait_for_a_refresh() {
        let keys = NodeKeys::new();
        let from = key(&keys, "127.0.0.1", 7000);
        let policy = RedirectPolicy::default();
        // `?`: the server prefers hostnames but has none configured.
        for message in [
            "MOVED 42 ?:7001",
            "ASK 42 ?:7001",
            "MOVED 42 nonsense",
            "ASK",
        ] {
            assert_eq!(
                resolve(&error(message), first(&from), &keys, |_| true, &policy),
                Resolution::and_refresh(Route::AfterRefresh),
                "{message}"
            );
        }
        let exhausted = Attempt {
            node: &from,
            redirects: policy.max_redirects,
            waits: 0,
        };
        assert_eq!(
            resolve(
                &error("MOVED 42 ?:7001"),
                exhausted,
                &keys,
                |_| true,
                &policy
            )
            .route,
            Route::Fail(ClusterFailure::TooManyRedirects {
                limit: policy.max_redirects
            })
        );
    }

    #[test]
    fn tryagain_backs_off_then_fails() {
        let keys = NodeKeys::new();
        let from = key(&keys, "127.0.0.1", 7000);
        let policy = RedirectPolicy::default();
        let reply = error("TRYAGAIN Multiple keys request during rehashing of slot");
        let waits: Vec<Route> = (0..=policy.max_waits)
            .map(|waits| {
                let attempt = Attempt {
                    node: &from,
                    redirects: 0,
                    waits,
                };
                let resolution = resolve(&reply, attempt, &keys, |_| true, &policy);
                assert_eq!(resolution.slot_update, None);
                assert!(!resolution.refresh);
                resolution.route
            })
            .collect();
        assert_eq!(waits[0], Route::Backoff(Duration::from_millis(20)));
        assert_eq!(waits[1], Route::Backoff(Duration::from_millis(40)));
        assert_eq!(waits[5], Route::Backoff(Duration::from_millis(640)));
        assert_eq!(waits[6], Route::Backoff(Duration::from_secs(1)));
        assert_eq!(waits[19], Route::Backoff(Duration::from_secs(1)));
        assert_eq!(waits[20], Route::Fail(ClusterFailure::TryAgain));
        // The documented total outlasts a default cluster-node-timeout.
        let total: Duration = (0..policy.max_waits).map(|n| policy.wait(n)).sum();
        assert!(total > Duration::from_secs(15), "{total:?}");
    }

    #[test]
    fn clusterdown_backs_off_and_refreshes_then_fails() {
        let keys = NodeKeys::new();
        let from = key(&keys, "127.0.0.1", 7000);
        let policy = RedirectPolicy {
            max_waits: 2,
            ..RedirectPolicy::default()
        };
        let reply = error("CLUSTERDOWN Hash slot not served");
        let attempt = |waits| Attempt {
            node: &from,
            redirects: 0,
            waits,
        };
        assert_eq!(
            resolve(&reply, attempt(1), &keys, |_| true, &policy),
            Resolution::and_refresh(Route::Backoff(Duration::from_millis(40)))
        );
        assert_eq!(
            resolve(&reply, attempt(2), &keys, |_| true, &policy),
            Resolution::and_refresh(Route::Fail(ClusterFailure::ClusterDown))
        );
        let loading = error("LOADING Redis is loading the dataset in memory");
        assert_eq!(
            resolve(&loading, attempt(2), &keys, |_| true, &policy),
            Resolution::only(Route::Fail(ClusterFailure::Loading))
        );
    }

    #[test]
    fn waits_never_overflow() {
        let policy = RedirectPolicy {
            wait_base: Duration::MAX,
            wait_cap: Duration::MAX,
            ..RedirectPolicy::default()
        };
        assert_eq!(policy.wait(u32::MAX), Duration::MAX);
        assert_eq!(
            RedirectPolicy::default().wait(u32::MAX),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn routing_by_slot_before_any_topology_waits_for_a_refresh() {
        let keys = NodeKeys::new();
        let empty = Topology::new();
        assert_eq!(
            route(0, &empty, &keys, |_| true),
            Resolution::and_refresh(Route::AfterRefresh)
        );
        let topology = cluster(&keys);
        assert_eq!(
            route(16383, &topology, &keys, |_| false).route,
            Route::Send(Target::Connect {
                node: key(&keys, "127.0.0.1", 7002),
                address: Address::tcp("127.0.0.1", 7002),
            })
        );
    }

    #[test]
    fn an_unreachable_node_triggers_a_refresh() {
        assert_eq!(
            connection_failed(),
            Resolution::and_refresh(Route::AfterRefresh)
        );
    }

    #[test]
    fn refresh_schedule_rate_limits_and_retries_failures() {
        let mut schedule = RefreshSchedule::new(Duration::from_secs(1));
        let t = |ms: u64| Instant::from_nanos(ms * 1_000_000);
        assert!(!schedule.due(t(0)));
        assert_eq!(schedule.next_deadline(), None);

        // The first request is due at once.
        schedule.request();
        schedule.request();
        assert_eq!(schedule.next_deadline(), Some(Instant::ZERO));
        assert!(schedule.due(t(5)));
        schedule.started(t(5));
        assert!(schedule.in_flight());
        assert!(!schedule.due(t(5000)));

        // A failure asks again, after the interval from the last start.
        schedule.failed();
        assert!(!schedule.due(t(1004)));
        assert!(schedule.due(t(1005)));
        schedule.started(t(2000));
        schedule.completed();
        assert!(!schedule.in_flight());
        assert_eq!(schedule.next_deadline(), None);

        // A request soon after waits for the interval.
        schedule.request();
        assert_eq!(schedule.next_deadline(), Some(t(3000)));
        assert!(!schedule.due(t(2999)));
        assert!(schedule.due(t(3000)));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::cluster::topology::tests::key;
    use alloc::vec::Vec;
    use bytes::Bytes;
    use proptest::prelude::*;

    proptest! {
        /// Any error message resolves to a route, without panicking (I3).
        #[test]
        fn any_error_resolves(message in proptest::collection::vec(any::<u8>(), 0..40), moved: bool) {
            let keys = NodeKeys::new();
            let from = key(&keys, "127.0.0.1", 7000);
            let mut text = Vec::from(if moved { &b"MOVED "[..] } else { b"ASK " });
            text.extend_from_slice(&message);
            for reply in [Frame::Error(Bytes::from(message)), Frame::Error(Bytes::from(text))] {
                let attempt = Attempt { node: &from, redirects: 0, waits: 0 };
                let _ = resolve(&reply, attempt, &keys, |_| false, &RedirectPolicy::default());
            }
        }
    }
}
