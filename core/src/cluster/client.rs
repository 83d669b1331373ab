//! The cluster machine: one [`Client`] per node, requests routed by hash
//! slot, redirects followed, the topology refreshed, all inside one owner.
//!
//! # What this module decides
//!
//! - **Which node** a request goes to: the owner of its slot
//!   ([`command_slot`] over the encoded arguments, then [`route`]); a
//!   keyless or unknown command goes to the primaries in turn, but for
//!   those sent to every primary (`FLUSHALL`, `SCRIPT LOAD`, `SCRIPT
//!   EXISTS`, `CONFIG SET`, `DBSIZE`, `KEYS`: the `split` module's table); `MGET`, `MSET`, `DEL`, `EXISTS`,
//!   `UNLINK` and `TOUCH` across slots are split per slot, any other
//!   command whose keys are in different slots fails at once with
//!   [`ClusterFailure::CrossSlot`]. The parts of a split or fanned-out
//!   command are requests of their own, under one caller's id (`group`).
//! - **What a reply means** ([`resolve`]): the caller's answer, a `MOVED`
//!   (the slot map changes at once, a refresh is asked for, the command
//!   goes to the new owner), an `ASK` (`ASKING` then the command to the
//!   target, back to back on its shared connection, the slot map
//!   unchanged), a wait (`TRYAGAIN`, `CLUSTERDOWN`, `LOADING`: a timer,
//!   then routed again by slot) or a failure ([`Error::Cluster`]).
//! - **When the topology is refreshed** ([`RefreshSchedule`]: coalesced,
//!   rate-limited by [`ClusterConfig::refresh_min_interval`]), from which
//!   node (a connected node of the topology, else a primary, else a
//!   replica, else a seed),
//!   and what follows: nodes that left are retired, requests parked for
//!   the refresh are routed again, requests stranded on a node whose
//!   connection is down are moved to the slot's new owner.
//! - **Which node a seed is**: a seed named by a host name is asked
//!   `CLUSTER MYID` before `CLUSTER SHARDS`; the id found in the topology
//!   gives the announced IP, which [`NodeKeys::learn`] records as the
//!   name's alias, and the seed's client moves under the canonical key.
//!
//! Everything of a single node is the node's [`Client`]: its shared
//! connection, pool, probes, handshake deadline, reconnect policy, retries
//! and TLS. The cluster machine translates socket ids both ways (it
//! allocates the ids the adapter sees) and request ids both ways.
//!
//! # Invariants
//!
//! - **I3: redirect resolution always yields a route.** Every reply, slot
//!   and failure goes through [`resolve`] / [`route`] to a [`Route`], and
//!   every route is carried out here: a node without a client gets one
//!   ([`Target::Connect`]), a request waiting for a refresh is parked, never
//!   dropped, and a refresh that removes the node a request waits on
//!   moves the request (or lets the node answer it, when its connection is
//!   up). Topology changes (`MOVED`'s slot update, a refresh) are applied
//!   inside this single owner, between two inputs, so no routing decision
//!   can read a half-applied topology. There is no "no connection"
//!   outcome.
//! - **I4: one client per node.** Clients are stored and looked up by
//!   [`NodeKey`] only (made by the one canonicalizer, [`NodeKeys`]): every
//!   spelling of a node (`localhost`, `LOCALHOST.`, `127.0.0.1`, the name
//!   of a seed once its identity is learnt) finds the same client, so the
//!   connections to a node never exceed its pool limit. A client whose key
//!   stops being canonical (a learnt alias) is re-keyed, or retired when
//!   the canonical key already has one.
//! - **I1, kept through the translation**: every inner `Connect` gets an
//!   outer socket id and every inner `Close` is passed on, including those
//!   of retired clients, which are kept until they have nothing left to
//!   say. Each request completes exactly once, and leaves nothing behind:
//!   [`ClusterClient::in_flight`] counts every table that holds a request
//!   (requests, groups and their parts, parked requests, timers, inner
//!   requests), all zero once every request has ended.
//! - **A redirect is not a failure**: `MOVED`/`ASK` are counted against
//!   [`RedirectPolicy::max_redirects`] only, and each hop is a fresh send
//!   on the target node's client, with the retry budget of the
//!   [`RetryPolicy`](crate::pool::RetryPolicy) for that hop.
//!
//! # Limits
//!
//! - Leases ([`ClusterClient::lease`]) are refused: a transaction in a
//!   cluster must stay on the node of one slot, and the lease API does not
//!   name one yet.
//! - Multi-key commands across slots are split only when that keeps
//!   their meaning (not `MSETNX`, `RENAME`, `SUNIONSTORE`, ...), per slot
//!   and not per node.
//! - A blocking command answered with `ASK` waits (as for `TRYAGAIN`)
//!   instead of following: its dedicated connection is not the one an
//!   `ASKING` could be sent on.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::net::IpAddr;

use super::keys::{args, command_slot};
use super::node::{NodeKey, NodeKeys};
use super::redirect::{
    Attempt, ClusterFailure, ClusterReply, RedirectPolicy, RefreshSchedule, Resolution, Route,
    resolve, route,
};
use super::split::{Merge, fan_out};
use super::topology::{Topology, TopologyError};
use crate::client::{Client, ClientConfig, Status};
use crate::command::{Command, ReplyKind};
use crate::error::Error;
use crate::id::{LeaseId, RequestId, SocketId};
use crate::io::{Address, CloseReason, Effect, Event, IoError};
use crate::pool::{ClosedCounts, PoolStats};
use crate::reconnect::Phase;
use crate::resp::Frame;
use crate::time::{Duration, Instant};

mod group;
mod replicas;

/// Why leases are refused by the cluster client.
const NO_LEASES: &str =
    "leases (transactions) need a hash slot to pick a node: not supported by the cluster client";
/// Why requests fail when no seed can be used.
const NO_SEEDS: &str = "the cluster client has no seed with a TCP host and port";
/// Why requests fail when no seed describes a cluster.
const NOT_A_CLUSTER: &str = "no seed described a cluster (CLUSTER SHARDS and CLUSTER SLOTS failed): is cluster mode enabled?";

/// Everything a [`ClusterClient`] needs.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where to ask for the topology first: any nodes of the cluster, in
    /// any spelling (`localhost:7000`, `[::1]:7000`, `127.0.0.1:7000`).
    pub seeds: Vec<Address>,
    /// The template of every node's client: its connection settings (the
    /// address is replaced by the node's), pool, retries, reconnect policy
    /// and response deadline.
    pub node: ClientConfig,
    /// How many redirects and waits one command may take.
    pub redirects: RedirectPolicy,
    /// At most one topology refresh starts per this interval. Default:
    /// 100 ms.
    pub refresh_min_interval: Duration,
    /// Read-only commands ([`is_read_only`](crate::command::is_read_only))
    /// go to a replica of their slot's shard, in turn, when it has one
    /// that is not failed or loading; every node connection then sends
    /// `READONLY` in its handshake. A replica may lag its primary: a read
    /// may miss the latest writes. Default: off.
    pub read_from_replicas: bool,
}

impl ClusterConfig {
    /// A cluster reached through `seeds`, each node's client made from
    /// `node`, with the default redirect policy.
    #[must_use]
    pub fn new(seeds: Vec<Address>, node: ClientConfig) -> Self {
        Self {
            seeds,
            node,
            redirects: RedirectPolicy::default(),
            refresh_min_interval: Duration::from_millis(100),
            read_from_replicas: false,
        }
    }
}

/// The bookkeeping of a [`ClusterClient`] for requests not yet answered
/// ([`ClusterClient::in_flight`]). Each field counts entries of one table;
/// a request answered or cancelled leaves none behind, so every field is
/// zero when no request is under way ([`is_idle`](Self::is_idle)). A
/// topology refresh in flight is not counted: it belongs to no request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InFlight {
    /// Requests not answered yet: the application's, and the parts of
    /// split and fanned-out ones (each its own request).
    pub requests: usize,
    /// Requests made of parts ([`send`](ClusterClient::send) of a
    /// cross-slot `MGET`, a `DBSIZE` sent to every primary, ...) whose
    /// outcome is not decided yet.
    pub groups: usize,
    /// Parts not ended yet (replied, failed or cancelled).
    pub parts: usize,
    /// Requests parked until the next topology refresh.
    pub after_refresh: usize,
    /// Requests waiting for a timer (`TRYAGAIN`, `CLUSTERDOWN`, ...)
    /// before they are routed again.
    pub backoffs: usize,
    /// Requests' response deadlines still armed.
    pub deadlines: usize,
    /// Requests on nodes' clients (commands and their `ASKING`).
    pub inner: usize,
}

impl InFlight {
    /// Whether nothing is held for any request.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        *self == Self::default()
    }
}

/// A node's client, under a handle that survives re-keying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Handle(u64);

/// One node's client.
#[derive(Debug)]
struct Member {
    /// The node's key (its last one, once retired).
    key: NodeKey,
    client: Client,
    /// No longer in [`ClusterClient::nodes`]: it finishes what it was given,
    /// then is shut down and dropped once its sockets are closed.
    retiring: bool,
    /// `shutdown` was called.
    shut: bool,
    /// Inner requests whose reply is awaited (commands, `ASKING`, refresh).
    inflight: usize,
    /// Sockets between their `Connect` and their `Close`.
    sockets: usize,
}

/// What an inner request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The application's request.
    Request(RequestId),
    /// The `ASKING` before a command: its reply is dropped.
    Asking,
    /// `CLUSTER SHARDS` or `CLUSTER SLOTS`.
    Refresh,
    /// `CLUSTER MYID`, to learn which node a seed is.
    MyId,
}

/// Where an application request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Being routed.
    New,
    /// On a node's client.
    Sent {
        member: Handle,
        inner: RequestId,
        /// The `ASKING` sent just before it, still unanswered.
        asking: Option<RequestId>,
        /// When this hop was sent.
        at: Instant,
    },
    /// Waiting for the next topology refresh.
    AfterRefresh,
    /// Waiting until then, to be routed again.
    Backoff(Instant),
}

/// An application request, encoded once.
#[derive(Debug)]
struct Pending {
    cmd: Bytes,
    block: Option<Duration>,
    kind: ReplyKind,
    slot: Option<u16>,
    /// Sent to this node, whatever its keys ([`ClusterClient::send_to_node`],
    /// the parts of a command sent to every primary).
    node: Option<NodeKey>,
    /// A keyless command for every primary, split into one part each once
    /// the topology is known.
    fan_out: Option<Merge>,
    created: Instant,
    deadline: Option<Instant>,
    redirects: u32,
    waits: u32,
    /// The node the last `MOVED`/`ASK` sent it to: the word of the node
    /// that gave the slot away, which a refresh from a node whose view
    /// lags must not undo while the request waits there (see
    /// `reroute_stranded`).
    redirected_to: Option<NodeKey>,
    state: State,
}

/// A command resent from its encoded bytes, keeping how it is answered.
struct Encoded<'a> {
    bytes: &'a [u8],
    block: Option<Duration>,
    kind: ReplyKind,
}

impl Command for Encoded<'_> {
    fn encode(&self, dst: &mut BytesMut) {
        dst.extend_from_slice(self.bytes);
    }

    fn block_timeout(&self) -> Option<Duration> {
        self.block
    }

    fn reply_kind(&self) -> ReplyKind {
        self.kind
    }
}

/// The refresh in flight.
#[derive(Debug)]
struct Refresh {
    member: Handle,
    /// The `CLUSTER SHARDS` (or `SLOTS`) request.
    inner: RequestId,
    /// The `CLUSTER MYID` before it, for a node named by a host name.
    myid: Option<RequestId>,
    /// Whether this is the `CLUSTER SLOTS` fallback.
    slots: bool,
    /// The answering node's id, from `CLUSTER MYID`.
    node_id: Option<String>,
    deadline: Instant,
}

/// The cluster machine. It is driven exactly like a [`Client`] (see the
/// [crate docs](crate)): the same application commands, inputs and polls,
/// with the same meaning; the module docs say what it decides.
#[derive(Debug)]
pub struct ClusterClient {
    config: ClusterConfig,
    keys: NodeKeys,
    topology: Topology,
    schedule: RefreshSchedule,
    refresh: Option<Refresh>,
    /// Refresh attempts failed in a row within the current round of
    /// candidates.
    round_failures: usize,
    members: BTreeMap<Handle, Member>,
    /// The one client of each node (I4).
    nodes: BTreeMap<NodeKey, Handle>,
    next_handle: u64,
    /// Outer socket → its client and the client's socket.
    inner_of: BTreeMap<SocketId, (Handle, SocketId)>,
    /// The reverse.
    outer_of: BTreeMap<(Handle, SocketId), SocketId>,
    next_socket: u64,
    requests: BTreeMap<RequestId, Pending>,
    /// Requests made of parts (split per slot, sent to every primary).
    groups: group::Groups,
    purposes: BTreeMap<(Handle, RequestId), Purpose>,
    next_request: u64,
    /// Requests parked until the next refresh, in order.
    after_refresh: VecDeque<RequestId>,
    backoffs: BTreeSet<(Instant, RequestId)>,
    deadlines: BTreeSet<(Instant, RequestId)>,
    /// Clients that may have effects to pass on.
    dirty: BTreeSet<Handle>,
    /// Clients that may have events to process.
    touched: Vec<Handle>,
    events: VecDeque<Event>,
    staging: BytesMut,
    /// The next primary for keyless commands.
    round_robin: usize,
    /// The next replica for reads ([`ClusterConfig::read_from_replicas`]).
    replica_turn: usize,
    /// Whether any node connection finished its handshake.
    established: bool,
    /// `connect` was called: connect to every primary once the topology is
    /// known.
    connect_wanted: bool,
    shut_down: bool,
    /// The latest `now` seen, for calls that take none (`cancel`).
    now: Instant,
    /// The statistics of dropped clients.
    retired_stats: PoolStats,
}

impl ClusterClient {
    /// A cluster client; it opens no connection until the first request
    /// (or [`connect`](Self::connect)).
    #[must_use]
    pub fn new(config: ClusterConfig) -> Self {
        Self {
            keys: NodeKeys::new(),
            topology: Topology::new(),
            schedule: RefreshSchedule::new(config.refresh_min_interval),
            refresh: None,
            round_failures: 0,
            members: BTreeMap::new(),
            nodes: BTreeMap::new(),
            next_handle: 0,
            inner_of: BTreeMap::new(),
            outer_of: BTreeMap::new(),
            next_socket: 0,
            requests: BTreeMap::new(),
            groups: group::Groups::default(),
            purposes: BTreeMap::new(),
            next_request: 0,
            after_refresh: VecDeque::new(),
            backoffs: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            dirty: BTreeSet::new(),
            touched: Vec::new(),
            events: VecDeque::new(),
            staging: BytesMut::new(),
            round_robin: 0,
            replica_turn: 0,
            established: false,
            connect_wanted: false,
            shut_down: false,
            now: Instant::ZERO,
            retired_stats: PoolStats::default(),
            config,
        }
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &ClusterConfig {
        &self.config
    }

    // ---- application commands -------------------------------------------

    /// Sends a command to the node serving its keys; its outcome is one
    /// [`Event::Response`] with the returned id, after any redirects.
    pub fn send<C: Command + ?Sized>(&mut self, now: Instant, cmd: &C) -> RequestId {
        let (id, mut p) = match self.accept(now, cmd) {
            Ok(accepted) => accepted,
            Err(id) => return id,
        };
        match args(&p.cmd).map(command_slot) {
            Some(Ok(Some(slot))) => p.slot = Some(slot),
            Some(Ok(None)) => p.fan_out = args(&p.cmd).and_then(fan_out),
            None => {}
            Some(Err(cross)) => {
                if !self.send_split(now, id, &p) {
                    let error = Error::Cluster(ClusterFailure::CrossSlot(cross));
                    self.respond(id, Err(error));
                }
                self.pump(now);
                return id;
            }
        }
        self.admit(id, p);
        self.dispatch(now, id);
        self.pump(now);
        id
    }

    /// Forgets a request: no event will be reported for it. A reply still
    /// due is read and discarded by its node's client.
    pub fn cancel(&mut self, id: RequestId) {
        let _ = self.forget(id);
        self.cancel_group(id);
        self.events
            .retain(|e| !matches!(e, Event::Response { id: r, .. } if *r == id));
        let now = self.now;
        self.pump(now);
    }

    /// Shuts every node's client down: every request fails with
    /// [`Error::Shutdown`], every socket is closed. Carry out the effects
    /// before dropping the client.
    pub fn shutdown(&mut self, now: Instant) {
        self.now = now;
        self.shut_down = true;
        self.refresh = None;
        let parked: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, p)| !matches!(p.state, State::Sent { .. }))
            .map(|(id, _)| *id)
            .collect();
        for id in parked {
            self.finish(id, Err(Error::Shutdown));
        }
        self.nodes.clear();
        let handles: Vec<Handle> = self.members.keys().copied().collect();
        for h in handles {
            if let Some(m) = self.members.get_mut(&h) {
                m.retiring = true;
                if !m.shut {
                    m.shut = true;
                    m.client.shutdown(now);
                }
            }
            self.touch(h);
        }
        self.pump(now);
    }

    /// Asks for the topology now if there is none, and connects every
    /// known node's client, without a request: for adapters that wait
    /// until the client is connected. The outcome is reported as
    /// [`Event::Status`].
    pub fn connect(&mut self, now: Instant) {
        self.now = now;
        if self.shut_down {
            return;
        }
        if self.topology.shards().is_empty() {
            self.connect_wanted = true;
            self.schedule.request();
        }
        let handles: Vec<Handle> = self.nodes.values().copied().collect();
        for h in handles {
            if let Some(m) = self.members.get_mut(&h) {
                m.client.connect(now);
            }
            self.touch(h);
        }
        self.pump(now);
    }

    /// Whether a node's shared connection has finished its handshake.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.nodes
            .values()
            .filter_map(|h| self.members.get(h))
            .any(|m| m.client.is_connected())
    }

    /// Refused: a transaction in a cluster must stay on the node serving
    /// one slot, and a lease does not name a slot.
    ///
    /// # Errors
    ///
    /// Always [`Error::Unsupported`] (or [`Error::Shutdown`] after
    /// shutdown).
    pub fn lease(&mut self, now: Instant) -> Result<LeaseId, Error> {
        self.now = now;
        if self.shut_down {
            return Err(Error::Shutdown);
        }
        Err(Error::Unsupported(NO_LEASES))
    }

    /// Fails the request with [`Error::Unsupported`]: there are no leases
    /// (see [`lease`](Self::lease)).
    pub fn send_leased<C: Command + ?Sized>(
        &mut self,
        now: Instant,
        _lease: LeaseId,
        _cmd: &C,
    ) -> RequestId {
        self.now = now;
        let id = self.next_id();
        self.respond(id, Err(Error::Unsupported(NO_LEASES)));
        id
    }

    /// Does nothing: there are no leases (see [`lease`](Self::lease)).
    pub fn release(&mut self, now: Instant, _lease: LeaseId) {
        self.now = now;
    }

    // ---- inputs from the adapter ---------------------------------------

    /// The socket connected.
    pub fn handle_connected(&mut self, now: Instant, socket: SocketId) {
        self.input(now, socket, |c, s| c.handle_connected(now, s));
    }

    /// The socket could not connect.
    pub fn handle_connect_failed(&mut self, now: Instant, socket: SocketId, error: IoError) {
        self.input(now, socket, |c, s| c.handle_connect_failed(now, s, error));
    }

    /// [`Client::expects_data`] for the node client that owns `socket`.
    #[must_use]
    pub fn expects_data(&self, socket: SocketId) -> bool {
        self.inner_of.get(&socket).is_some_and(|&(h, inner)| {
            self.members
                .get(&h)
                .is_some_and(|m| m.client.expects_data(inner))
        })
    }

    /// Bytes arrived on the socket.
    pub fn handle_data(&mut self, now: Instant, socket: SocketId, data: &[u8]) {
        self.input(now, socket, |c, s| c.handle_data(now, s, data));
    }

    /// The peer closed the socket (a read returned 0 bytes).
    pub fn handle_eof(&mut self, now: Instant, socket: SocketId) {
        self.input(now, socket, |c, s| c.handle_eof(now, s));
    }

    /// A read or write on the socket failed.
    pub fn handle_io_error(&mut self, now: Instant, socket: SocketId, error: IoError) {
        self.input(now, socket, |c, s| c.handle_io_error(now, s, error));
    }

    /// A probe ([`Effect::Probe`]) found nothing waiting on the socket.
    pub fn handle_probe_done(&mut self, now: Instant, socket: SocketId) {
        self.input(now, socket, |c, s| c.handle_probe_done(now, s));
    }

    /// The time is `now`. Calling it early or repeatedly is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, id));
            let Some(p) = self.requests.get(&id) else {
                continue;
            };
            // On its first hop, sent when it was made, the request has the
            // same deadline in its node's client, which reports it (and
            // watches the connection for a stall).
            let first_hop = matches!(p.state, State::Sent { at, .. } if at == p.created);
            if !first_hop {
                self.finish(id, Err(Error::Timeout));
            }
        }
        if self.refresh.as_ref().is_some_and(|r| r.deadline <= now)
            && let Some(r) = self.refresh.take()
        {
            self.abandon_refresh(&r);
            self.refresh_failed(now, Error::Timeout);
        }
        while let Some(&(at, id)) = self.backoffs.first() {
            if at > now {
                break;
            }
            self.backoffs.remove(&(at, id));
            if let Some(p) = self.requests.get_mut(&id)
                && p.state == State::Backoff(at)
            {
                p.state = State::New;
                self.dispatch(now, id);
            }
        }
        let handles: Vec<Handle> = self.members.keys().copied().collect();
        for h in handles {
            if let Some(m) = self.members.get_mut(&h) {
                m.client.handle_timeout(now);
            }
            self.touch(h);
        }
        self.pump(now);
    }

    // ---- outputs --------------------------------------------------------

    /// The next thing the adapter must do. Call until `None` after every
    /// input and every application command.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        while let Some(&h) = self.dirty.first() {
            let Some(m) = self.members.get_mut(&h) else {
                self.dirty.remove(&h);
                continue;
            };
            match m.client.poll_effect() {
                Some(effect) => {
                    if let Some(effect) = self.translate(h, effect) {
                        return Some(effect);
                    }
                }
                None => {
                    self.dirty.remove(&h);
                    if m.shut && m.sockets == 0 {
                        // Nothing left to say: its sockets are all closed.
                        let stats = m.client.pool_stats();
                        add_stats(&mut self.retired_stats, &stats);
                        self.members.remove(&h);
                    }
                }
            }
        }
        None
    }

    /// The next thing the application must hear about.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let refresh = if self.shut_down {
            None
        } else {
            self.schedule.next_deadline()
        };
        self.members
            .values()
            .filter_map(|m| m.client.poll_timeout())
            .chain(self.deadlines.first().map(|&(at, _)| at))
            .chain(self.backoffs.first().map(|&(at, _)| at))
            .chain(refresh)
            .chain(self.refresh.as_ref().map(|r| r.deadline))
            .min()
    }

    // ---- getters ----------------------------------------------------------

    /// What the pools of every node hold and have done, summed (clients of
    /// nodes that left included).
    #[must_use]
    pub fn pool_stats(&self) -> PoolStats {
        let mut stats = self.retired_stats.clone();
        for m in self.members.values() {
            add_stats(&mut stats, &m.client.pool_stats());
        }
        stats
    }

    /// [`Phase::Established`] once any node's connection finished its
    /// handshake, [`Phase::ShutDown`] after [`shutdown`](Self::shutdown).
    #[must_use]
    pub const fn reconnect_phase(&self) -> Phase {
        if self.shut_down {
            Phase::ShutDown
        } else if self.established {
            Phase::Established
        } else {
            Phase::NeverConnected
        }
    }

    /// The handshake deadline of every node's connections.
    #[must_use]
    pub const fn handshake_timeout(&self) -> Duration {
        self.config.node.conn.handshake_timeout
    }

    /// The nodes with a client (one each).
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The open sockets (from `Connect` to `Close`) of each node's clients,
    /// retiring ones included.
    #[must_use]
    pub fn connections_per_node(&self) -> Vec<(NodeKey, usize)> {
        let mut counts: BTreeMap<&NodeKey, usize> = BTreeMap::new();
        for m in self.members.values() {
            if !m.retiring || m.sockets > 0 {
                *counts.entry(&m.key).or_default() += m.sockets;
            }
        }
        counts.into_iter().map(|(k, n)| (k.clone(), n)).collect()
    }

    /// The topology as the client knows it now.
    #[must_use]
    pub const fn topology(&self) -> &Topology {
        &self.topology
    }

    /// What the machine holds for requests not yet answered (see
    /// [`InFlight`]): all zero once every request has been answered or
    /// cancelled, so a test can check that nothing leaked.
    #[must_use]
    pub fn in_flight(&self) -> InFlight {
        let (groups, parts) = self.groups.len();
        InFlight {
            requests: self.requests.len(),
            groups,
            parts,
            after_refresh: self.after_refresh.len(),
            backoffs: self.backoffs.len(),
            deadlines: self.deadlines.len(),
            inner: self
                .purposes
                .values()
                .filter(|p| matches!(p, Purpose::Request(_) | Purpose::Asking))
                .count(),
        }
    }

    // ---- internals: plumbing ---------------------------------------------

    const fn next_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    fn respond(&mut self, id: RequestId, result: Result<Frame, Error>) {
        if let Some(result) = self.part_ended(id, result) {
            self.events.push_back(Event::Response { id, result });
        }
    }

    /// A client was called: it may have effects and events.
    fn touch(&mut self, h: Handle) {
        self.dirty.insert(h);
        if self.touched.last() != Some(&h) {
            self.touched.push(h);
        }
    }

    /// An input for an outer socket, handed to its client.
    fn input(&mut self, now: Instant, socket: SocketId, f: impl FnOnce(&mut Client, SocketId)) {
        self.now = now;
        let Some(&(h, inner)) = self.inner_of.get(&socket) else {
            return;
        };
        if let Some(m) = self.members.get_mut(&h) {
            f(&mut m.client, inner);
            self.touch(h);
        }
        self.pump(now);
    }

    /// Processes the events of every touched client, and starts a refresh
    /// when one is due, until nothing moves.
    fn pump(&mut self, now: Instant) {
        loop {
            while let Some(h) = self.touched.pop() {
                while let Some(event) = self.members.get_mut(&h).and_then(|m| m.client.poll_event())
                {
                    self.on_event(now, h, event);
                }
            }
            if !self.maybe_refresh(now) {
                return;
            }
        }
    }

    /// An inner effect, with the outer socket id.
    fn translate(&mut self, h: Handle, effect: Effect) -> Option<Effect> {
        Some(match effect {
            Effect::Connect { socket, address } => {
                let outer = SocketId(self.next_socket);
                self.next_socket += 1;
                self.inner_of.insert(outer, (h, socket));
                self.outer_of.insert((h, socket), outer);
                if let Some(m) = self.members.get_mut(&h) {
                    m.sockets += 1;
                }
                Effect::Connect {
                    socket: outer,
                    address,
                }
            }
            Effect::Send { socket, data } => Effect::Send {
                socket: *self.outer_of.get(&(h, socket))?,
                data,
            },
            Effect::Probe { socket } => Effect::Probe {
                socket: *self.outer_of.get(&(h, socket))?,
            },
            Effect::Close { socket, reason } => {
                let outer = self.outer_of.remove(&(h, socket))?;
                self.inner_of.remove(&outer);
                if let Some(m) = self.members.get_mut(&h) {
                    m.sockets -= 1;
                }
                Effect::Close {
                    socket: outer,
                    reason,
                }
            }
        })
    }

    fn outer(&self, h: Handle, socket: SocketId) -> Option<SocketId> {
        self.outer_of.get(&(h, socket)).copied()
    }

    fn add_purpose(&mut self, h: Handle, inner: RequestId, purpose: Purpose) {
        self.purposes.insert((h, inner), purpose);
        if let Some(m) = self.members.get_mut(&h) {
            m.inflight += 1;
        }
    }

    fn take_purpose(&mut self, h: Handle, inner: RequestId) -> Option<Purpose> {
        let purpose = self.purposes.remove(&(h, inner))?;
        if let Some(m) = self.members.get_mut(&h) {
            m.inflight -= 1;
        }
        Some(purpose)
    }

    /// Cancels an inner request and forgets what it was for.
    fn cancel_inner(&mut self, h: Handle, inner: RequestId) {
        if self.take_purpose(h, inner).is_some()
            && let Some(m) = self.members.get_mut(&h)
        {
            m.client.cancel(inner);
        }
    }

    /// The client of `key`, made from the template when the node has none.
    fn member_for(&mut self, key: &NodeKey) -> Handle {
        if let Some(&h) = self.nodes.get(key) {
            return h;
        }
        let h = Handle(self.next_handle);
        self.next_handle += 1;
        let mut config = self.config.node.clone();
        config.conn.address = self.keys.address(key);
        // Harmless on a primary, and a node's role can change.
        config.conn.readonly |= self.config.read_from_replicas;
        // Decorrelates the nodes' reconnect jitter, deterministically.
        config.reconnect.seed ^= (h.0 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.members.insert(
            h,
            Member {
                key: key.clone(),
                client: Client::new(config),
                retiring: false,
                shut: false,
                inflight: 0,
                sockets: 0,
            },
        );
        self.nodes.insert(key.clone(), h);
        h
    }

    // ---- internals: requests ---------------------------------------------

    /// Removes a request everywhere: its inner request, its timers.
    fn forget(&mut self, id: RequestId) -> Option<Pending> {
        self.withdraw(id);
        let p = self.requests.remove(&id)?;
        if let Some(at) = p.deadline {
            self.deadlines.remove(&(at, id));
        }
        match p.state {
            State::Backoff(at) => {
                self.backoffs.remove(&(at, id));
            }
            // Exact, so that `in_flight` can tell a leak from a stale id.
            State::AfterRefresh => self.after_refresh.retain(|&r| r != id),
            State::New | State::Sent { .. } => {}
        }
        Some(p)
    }

    fn finish(&mut self, id: RequestId, result: Result<Frame, Error>) {
        if self.forget(id).is_some() {
            self.respond(id, result);
        }
    }

    /// Takes a request off its node's client (cancelled there), to route it
    /// again.
    fn withdraw(&mut self, id: RequestId) {
        let Some(p) = self.requests.get_mut(&id) else {
            return;
        };
        let State::Sent {
            member,
            inner,
            asking,
            ..
        } = p.state
        else {
            return;
        };
        p.state = State::New;
        self.cancel_inner(member, inner);
        if let Some(asking) = asking {
            self.cancel_inner(member, asking);
        }
        self.touch(member);
        let now = self.now;
        self.maybe_shut(now, member);
    }

    /// Routes a request by its slot (keyless: the next primary).
    fn dispatch(&mut self, now: Instant, id: RequestId) {
        let Some(p) = self.requests.get(&id) else {
            return;
        };
        if self.topology.shards().is_empty() {
            self.schedule.request();
            return self.park_for_refresh(id);
        }
        if let Some(merge) = p.fan_out {
            return self.expand_fan_out(now, id, merge);
        }
        match (p.slot, &p.node) {
            (Some(slot), _) => {
                if let Some(replica) = self.replica_for(id, slot) {
                    return self.send_to(now, id, &replica, false);
                }
                let nodes = &self.nodes;
                let resolution = route(slot, &self.topology, &self.keys, |k| nodes.contains_key(k));
                self.follow(now, id, resolution, None, false);
            }
            (None, Some(node)) => {
                let node = node.clone();
                if self.topology.node(&node).is_some() {
                    self.send_to(now, id, &node, false);
                } else {
                    self.finish(id, Err(Error::Cluster(ClusterFailure::UnknownNode)));
                }
            }
            (None, None) => {
                let shards = self.topology.shards();
                let key = shards[self.round_robin % shards.len()].primary.key.clone();
                self.round_robin = self.round_robin.wrapping_add(1);
                self.send_to(now, id, &key, false);
            }
        }
    }

    /// Carries out a routing decision. `reply` is the reply resolved (for
    /// [`Route::Deliver`]); `redirect` whether it was a `MOVED`/`ASK`.
    fn follow(
        &mut self,
        now: Instant,
        id: RequestId,
        resolution: Resolution,
        reply: Option<Frame>,
        redirect: bool,
    ) {
        if let Some((slot, node)) = resolution.slot_update {
            let _ = self.topology.set_owner(slot, node);
        }
        if resolution.refresh {
            self.schedule.request();
        }
        let policy = self.config.redirects;
        // Mutant for the simulation (scripts/mutants.sh): a redirect that
        // races a refresh resolves to nothing, and the request is dropped
        // (I3).
        #[cfg(redpoll_mutant = "redirect_race_to_nothing")]
        if redirect && self.refresh.is_some() {
            let _ = self.forget(id);
            return;
        }
        let Some(p) = self.requests.get_mut(&id) else {
            return;
        };
        if redirect {
            p.redirects += 1;
            p.redirected_to = match &resolution.route {
                Route::Send(target) | Route::Ask(target) => Some(target.node().clone()),
                _ => None,
            };
        }
        // A request whose first hop outlived its deadline (its node's
        // client reported it) goes nowhere else.
        let expired = p.deadline.is_some_and(|at| at <= now);
        if expired && !matches!(resolution.route, Route::Deliver | Route::Fail(_)) {
            return self.finish(id, Err(Error::Timeout));
        }
        match resolution.route {
            Route::Deliver => match reply {
                Some(frame) => self.finish(id, Ok(frame)),
                // Only `resolve` delivers, and it always has a reply.
                None => self.park_for_refresh(id),
            },
            Route::Send(target) => self.send_to(now, id, target.node(), false),
            // `ASKING` is per connection: a blocking command's dedicated
            // connection cannot carry it, so it waits for the migration.
            Route::Ask(_) if p.block.is_some() => {
                self.schedule.request();
                self.wait(now, id, ClusterFailure::TryAgain);
            }
            Route::Ask(target) => self.send_to(now, id, target.node(), true),
            Route::AfterRefresh if reply.is_none() => {
                // No shard serves the slot: like the server's
                // `CLUSTERDOWN Hash slot not served`, a bounded wait.
                if p.waits >= policy.max_waits {
                    return self.finish(id, Err(Error::Cluster(ClusterFailure::ClusterDown)));
                }
                p.waits += 1;
                self.park_for_refresh(id);
            }
            Route::AfterRefresh => self.park_for_refresh(id),
            Route::Backoff(after) => {
                p.waits += 1;
                self.park_until(id, now.saturating_add(after));
            }
            Route::Fail(failure) => self.finish(id, Err(Error::Cluster(failure))),
        }
    }

    /// A wait counted in the request's waits, failing with `failure` when
    /// they are spent.
    fn wait(&mut self, now: Instant, id: RequestId, failure: ClusterFailure) {
        let policy = self.config.redirects;
        let Some(p) = self.requests.get_mut(&id) else {
            return;
        };
        if p.waits >= policy.max_waits {
            return self.finish(id, Err(Error::Cluster(failure)));
        }
        let after = policy.wait(p.waits);
        p.waits += 1;
        self.park_until(id, now.saturating_add(after));
    }

    fn park_for_refresh(&mut self, id: RequestId) {
        if let Some(p) = self.requests.get_mut(&id)
            && p.state != State::AfterRefresh
        {
            p.state = State::AfterRefresh;
            self.after_refresh.push_back(id);
        }
    }

    fn park_until(&mut self, id: RequestId, at: Instant) {
        if let Some(p) = self.requests.get_mut(&id) {
            p.state = State::Backoff(at);
            self.backoffs.insert((at, id));
        }
    }

    /// Sends a request to a node (preceded by `ASKING` when `asking`).
    fn send_to(&mut self, now: Instant, id: RequestId, key: &NodeKey, asking: bool) {
        let h = self.member_for(key);
        let Some(p) = self.requests.get_mut(&id) else {
            return;
        };
        let Some(m) = self.members.get_mut(&h) else {
            return;
        };
        // Back to back on the shared connection, in order: `ASKING` applies
        // to the command right after it.
        let asking = asking.then(|| m.client.send(now, &["ASKING"]));
        let cmd = Encoded {
            bytes: &p.cmd,
            block: p.block,
            kind: p.kind,
        };
        let inner = m.client.send(now, &cmd);
        p.state = State::Sent {
            member: h,
            inner,
            asking,
            at: now,
        };
        if let Some(asking) = asking {
            self.add_purpose(h, asking, Purpose::Asking);
        }
        self.add_purpose(h, inner, Purpose::Request(id));
        self.touch(h);
    }

    // ---- internals: what the node clients report -------------------------

    fn on_event(&mut self, now: Instant, h: Handle, event: Event) {
        match event {
            Event::Response { id: inner, result } => {
                match self.take_purpose(h, inner) {
                    None | Some(Purpose::Asking) => {}
                    Some(Purpose::Request(id)) => self.on_reply(now, h, id, result),
                    Some(Purpose::Refresh) => self.on_refresh_reply(now, h, inner, result),
                    Some(Purpose::MyId) => self.on_myid(h, inner, &result),
                }
                self.maybe_shut(now, h);
            }
            Event::Push { socket, frame } => {
                if let Some(socket) = self.outer(h, socket) {
                    self.events.push_back(Event::Push { socket, frame });
                }
            }
            Event::Connected { socket, protocol } => {
                self.established = true;
                if let Some(socket) = self.outer(h, socket) {
                    self.events.push_back(Event::Connected { socket, protocol });
                }
            }
            Event::Disconnected { socket, reason } => {
                if let Some(socket) = self.outer(h, socket) {
                    self.events
                        .push_back(Event::Disconnected { socket, reason });
                }
            }
            Event::Status(status) => self.on_status(now, h, status),
        }
    }

    /// A node's client reported its connection status.
    fn on_status(&mut self, now: Instant, h: Handle, status: Status) {
        match status {
            Status::Connected => {
                self.established = true;
                self.events.push_back(Event::Status(Status::Connected));
            }
            Status::Disconnected { reason } => {
                // The node may have left or failed over.
                self.schedule.request();
                // A refresh waiting on this node would wait out its whole
                // deadline (the node's client holds it while it reconnects,
                // to a node that may be gone for good): ask the next
                // candidate now.
                if self.refresh.as_ref().is_some_and(|r| r.member == h)
                    && let Some(r) = self.refresh.take()
                {
                    self.abandon_refresh(&r);
                    self.refresh_failed(now, Error::Connection(reason.clone()));
                }
                if self.members.get(&h).is_some_and(|m| m.retiring) {
                    self.reroute_member(now, h);
                    self.maybe_shut(now, h);
                }
                if self.established {
                    self.events
                        .push_back(Event::Status(Status::Disconnected { reason }));
                }
            }
            Status::Reconnecting { attempt, at } => {
                if self.established {
                    self.events
                        .push_back(Event::Status(Status::Reconnecting { attempt, at }));
                }
            }
            // One node giving up is not the cluster giving up: its client
            // is replaced by a new one when a request routes there again.
            Status::GaveUp { reason } => {
                self.schedule.request();
                self.retire(now, h);
                if self.established {
                    self.events
                        .push_back(Event::Status(Status::Disconnected { reason }));
                }
            }
        }
    }

    /// The reply (or failure) of an application request from node `h`.
    fn on_reply(&mut self, now: Instant, h: Handle, id: RequestId, result: Result<Frame, Error>) {
        let Some(p) = self.requests.get_mut(&id) else {
            return;
        };
        p.state = State::New;
        p.redirected_to = None;
        let (redirects, waits, kind) = (p.redirects, p.waits, p.kind);
        let expired = p.deadline.is_some_and(|at| at <= now);
        match result {
            Ok(frame) => {
                let Some(node) = self.members.get(&h).map(|m| &m.key) else {
                    return self.finish(id, Ok(frame));
                };
                let attempt = Attempt {
                    node,
                    redirects,
                    waits,
                };
                let nodes = &self.nodes;
                let resolution = resolve(
                    &frame,
                    attempt,
                    &self.keys,
                    |k| nodes.contains_key(k),
                    &self.config.redirects,
                );
                let redirect = matches!(
                    ClusterReply::of(&frame),
                    ClusterReply::Moved(_) | ClusterReply::Ask(_) | ClusterReply::BadRedirect
                );
                self.follow(now, id, resolution, Some(frame), redirect);
            }
            Err(Error::Connection(reason)) => {
                // The slot map may point at a node that left.
                self.schedule.request();
                if never_written(&reason) && kind == ReplyKind::Reply && !expired {
                    if waits >= self.config.redirects.max_waits {
                        return self.finish(id, Err(Error::Connection(reason)));
                    }
                    // Paced like a busy cluster's wait rather than by the
                    // refresh alone: a node that stays in the topology
                    // while it refuses (before its failover) is retried
                    // at the wait's pace, within the wait budget.
                    self.wait(now, id, ClusterFailure::ClusterDown);
                } else {
                    self.finish(id, Err(Error::Connection(reason)));
                }
            }
            Err(error) => self.finish(id, Err(error)),
        }
    }

    // ---- internals: retiring clients -------------------------------------

    /// Takes a node's client out of the cluster: no new requests; it
    /// finishes those it has (or they move, when its connection is down),
    /// then it is shut down.
    fn retire(&mut self, now: Instant, h: Handle) {
        let Some(m) = self.members.get_mut(&h) else {
            return;
        };
        if m.retiring {
            return;
        }
        m.retiring = true;
        if self.nodes.get(&m.key) == Some(&h) {
            self.nodes.remove(&m.key);
        }
        self.reroute_member(now, h);
        self.maybe_shut(now, h);
    }

    /// Moves the requests of a retiring client whose connection is down
    /// to where their slot is served now. None of them is written on a live
    /// connection: it has none, so moving them cannot run one twice.
    fn reroute_member(&mut self, now: Instant, h: Handle) {
        if self.members.get(&h).is_none_or(|m| m.client.is_connected()) {
            return;
        }
        let moving: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, p)| {
                movable(p) && matches!(p.state, State::Sent { member, .. } if member == h)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in moving {
            self.withdraw(id);
            self.dispatch(now, id);
        }
    }

    /// Shuts a retiring client down once nothing is awaited from it.
    fn maybe_shut(&mut self, now: Instant, h: Handle) {
        let Some(m) = self.members.get_mut(&h) else {
            return;
        };
        if m.retiring && !m.shut && m.inflight == 0 {
            m.shut = true;
            m.client.shutdown(now);
            self.touch(h);
        }
    }

    // ---- internals: the topology -----------------------------------------

    /// Starts the wanted refresh when it is due. Returns whether it did.
    fn maybe_refresh(&mut self, now: Instant) -> bool {
        if self.shut_down || self.refresh.is_some() || !self.schedule.due(now) {
            return false;
        }
        self.schedule.started(now);
        self.refresh_from_next(now);
        true
    }

    /// Where to ask for the topology: connected nodes of the topology
    /// first (no new connection), then its primaries, then its replicas,
    /// then the seeds.
    fn refresh_candidates(&self) -> Vec<NodeKey> {
        let mut out: Vec<NodeKey> = Vec::new();
        for (key, h) in &self.nodes {
            let connected = self.members.get(h).is_some_and(|m| m.client.is_connected());
            if connected && self.topology.node(key).is_some() {
                out.push(key.clone());
            }
        }
        for shard in self.topology.shards() {
            if !out.contains(&shard.primary.key) {
                out.push(shard.primary.key.clone());
            }
        }
        // Then its replicas: when every primary it knows is gone (died,
        // failed over, left), a promoted replica may be the only node left
        // that knows the cluster as it is now.
        for shard in self.topology.shards() {
            for replica in &shard.replicas {
                if !out.contains(&replica.key) {
                    out.push(replica.key.clone());
                }
            }
        }
        for seed in &self.config.seeds {
            if let Address::Tcp { host, port } = seed
                && let Ok(key) = self.keys.key(host, *port)
                && !out.contains(&key)
            {
                out.push(key);
            }
        }
        out
    }

    /// Sends the refresh to the next candidate of the round.
    fn refresh_from_next(&mut self, now: Instant) {
        let candidates = self.refresh_candidates();
        if candidates.is_empty() {
            self.schedule.completed();
            self.fail_parked(&Error::Unsupported(NO_SEEDS));
            return;
        }
        let key = &candidates[self.round_failures % candidates.len()];
        let h = self.member_for(key);
        self.start_refresh(now, h, false, None);
    }

    fn start_refresh(&mut self, now: Instant, h: Handle, slots: bool, node_id: Option<String>) {
        let Some(m) = self.members.get_mut(&h) else {
            return;
        };
        // A node named by a host name says which node it is, so that the
        // name can be learnt as an alias of its announced IP (I4).
        let myid = (!slots && node_id.is_none() && m.key.ip().is_none())
            .then(|| m.client.send(now, &["CLUSTER", "MYID"]));
        let command = if slots { "SLOTS" } else { "SHARDS" };
        let inner = m.client.send(now, &["CLUSTER", command]);
        if let Some(myid) = myid {
            self.add_purpose(h, myid, Purpose::MyId);
        }
        self.add_purpose(h, inner, Purpose::Refresh);
        let config = &self.config.node;
        let answer = config
            .response_timeout
            .unwrap_or(config.conn.handshake_timeout);
        self.refresh = Some(Refresh {
            member: h,
            inner,
            myid,
            slots,
            node_id,
            deadline: now
                .saturating_add(config.conn.handshake_timeout)
                .saturating_add(answer),
        });
        self.touch(h);
    }

    /// Cancels what a refresh still awaits.
    fn abandon_refresh(&mut self, r: &Refresh) {
        self.cancel_inner(r.member, r.inner);
        if let Some(myid) = r.myid {
            self.cancel_inner(r.member, myid);
        }
        self.touch(r.member);
    }

    fn on_myid(&mut self, h: Handle, inner: RequestId, result: &Result<Frame, Error>) {
        let Some(r) = self.refresh.as_mut() else {
            return;
        };
        if r.member != h || r.myid != Some(inner) {
            return;
        }
        r.myid = None;
        if let Ok(Frame::Bulk(id) | Frame::Simple(id) | Frame::Verbatim { text: id, .. }) =
            result.as_ref().map(Frame::without_attributes)
        {
            r.node_id = core::str::from_utf8(id).ok().map(String::from);
        }
    }

    fn on_refresh_reply(
        &mut self,
        now: Instant,
        h: Handle,
        inner: RequestId,
        result: Result<Frame, Error>,
    ) {
        if self
            .refresh
            .as_ref()
            .is_none_or(|r| r.member != h || r.inner != inner)
        {
            return;
        }
        let Some(r) = self.refresh.take() else {
            return;
        };
        self.abandon_refresh(&r);
        let frame = match result {
            Ok(frame) => frame,
            Err(error) => return self.refresh_failed(now, error),
        };
        let Some(from) = self.members.get(&h).map(|m| m.key.clone()) else {
            return self.refresh_failed(now, Error::Shutdown);
        };
        match self.parse(&frame, &from, r.slots) {
            // An older server without `CLUSTER SHARDS`: the same node,
            // `CLUSTER SLOTS`.
            Err(TopologyError::Server(_)) if !r.slots => {
                self.start_refresh(now, h, true, r.node_id);
            }
            Ok(fresh) if !fresh.shards().is_empty() => {
                let fresh = match self.identify(&from, r.node_id.as_deref(), &fresh) {
                    Some(canonical) => self.parse(&frame, &canonical, r.slots).unwrap_or(fresh),
                    None => fresh,
                };
                self.apply_topology(now, fresh);
            }
            Ok(_) | Err(_) => self.refresh_failed(now, Error::Unsupported(NOT_A_CLUSTER)),
        }
    }

    fn parse(&self, frame: &Frame, from: &NodeKey, slots: bool) -> Result<Topology, TopologyError> {
        if slots {
            Topology::from_slots(frame, from, &self.keys)
        } else {
            Topology::from_shards(frame, from, self.tls(), &self.keys)
        }
    }

    /// Learns which node answered, when it was named by a host name: the
    /// node with its id in `fresh` gives the IP the name stands for.
    /// Returns the canonical key of `from` when an alias was learnt (the
    /// reply is parsed again with it).
    fn identify(&mut self, from: &NodeKey, id: Option<&str>, fresh: &Topology) -> Option<NodeKey> {
        if from.ip().is_some() {
            return None;
        }
        let id = id?;
        let node = fresh.nodes().find(|n| n.id.as_deref() == Some(id))?;
        let ip = node
            .ip
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .or_else(|| node.key.ip())?;
        let Address::Tcp { host, .. } = self.keys.address(from) else {
            return None;
        };
        match self.keys.learn(&host, ip) {
            super::node::Learnt::Unchanged => None,
            _ => Some(self.keys.canonical(from)),
        }
    }

    #[cfg(feature = "tls")]
    const fn tls(&self) -> bool {
        self.config.node.conn.tls.is_some()
    }

    #[cfg(not(feature = "tls"))]
    #[allow(clippy::unused_self)]
    const fn tls(&self) -> bool {
        false
    }

    /// The refresh failed: the next candidate at once, until a whole round
    /// failed; then the schedule waits its interval. Before any topology,
    /// a failed round fails the parked requests with the reason (as a
    /// single client does before its first connection).
    fn refresh_failed(&mut self, now: Instant, error: Error) {
        self.refresh = None;
        if self.shut_down {
            return;
        }
        self.round_failures += 1;
        if self.round_failures < self.refresh_candidates().len() {
            return self.refresh_from_next(now);
        }
        self.round_failures = 0;
        self.schedule.failed();
        if self.topology.shards().is_empty() {
            self.fail_parked(&error);
            if !self.established
                && let Error::Connection(reason) = error
            {
                self.events
                    .push_back(Event::Status(Status::Disconnected { reason }));
            }
            // Nothing waits any more: the next request asks again, paced
            // by the interval from now.
            self.schedule.started(now);
            self.schedule.completed();
        }
    }

    fn fail_parked(&mut self, error: &Error) {
        for id in core::mem::take(&mut self.after_refresh) {
            if self
                .requests
                .get(&id)
                .is_some_and(|p| p.state == State::AfterRefresh)
            {
                self.finish(id, Err(error.clone()));
            }
        }
    }

    /// A refresh succeeded: the new topology replaces the old one, clients
    /// are re-keyed or retired, and waiting requests are routed.
    fn apply_topology(&mut self, now: Instant, fresh: Topology) {
        self.round_failures = 0;
        self.schedule.completed();
        let _left = self.topology.update(fresh);
        self.rekey(now);
        // Nodes that left, and seeds that are not nodes under their key.
        let gone: Vec<Handle> = self
            .nodes
            .iter()
            .filter(|(key, _)| self.topology.node(key).is_none())
            .map(|(_, h)| *h)
            .collect();
        for h in gone {
            self.retire(now, h);
        }
        if core::mem::take(&mut self.connect_wanted) {
            let primaries: Vec<NodeKey> = self
                .topology
                .shards()
                .iter()
                .map(|s| s.primary.key.clone())
                .collect();
            for key in primaries {
                let h = self.member_for(&key);
                if let Some(m) = self.members.get_mut(&h) {
                    m.client.connect(now);
                }
                self.touch(h);
            }
        }
        self.reroute_stranded(now);
        for id in core::mem::take(&mut self.after_refresh) {
            if let Some(p) = self.requests.get_mut(&id)
                && p.state == State::AfterRefresh
            {
                p.state = State::New;
                self.dispatch(now, id);
            }
        }
    }

    /// Clients whose key stopped being canonical (a learnt alias) move
    /// under the canonical key, or retire when it has a client already.
    fn rekey(&mut self, now: Instant) {
        let renamed: Vec<(NodeKey, NodeKey, Handle)> = self
            .nodes
            .iter()
            .filter_map(|(key, h)| {
                let canonical = self.keys.canonical(key);
                (canonical != *key).then(|| (key.clone(), canonical, *h))
            })
            .collect();
        for (old, new, h) in renamed {
            if self.nodes.contains_key(&new) {
                self.retire(now, h);
                continue;
            }
            self.nodes.remove(&old);
            self.nodes.insert(new.clone(), h);
            if let Some(m) = self.members.get_mut(&h) {
                m.key = new;
            }
        }
    }

    /// Requests held by a client whose connection is down, for a slot now
    /// served elsewhere (a failover, a node that left), move there.
    fn reroute_stranded(&mut self, now: Instant) {
        let stranded: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, p)| {
                let State::Sent { member, .. } = p.state else {
                    return false;
                };
                let Some(m) = self.members.get(&member) else {
                    return false;
                };
                // A client still connecting is not down: a refresh from a
                // node whose view lags must not pull its requests back to
                // the old owner, whose `MOVED` sends them here again (each
                // round trip a redirect, until the budget is spent). If
                // the connection fails, the request is routed again then.
                // The same holds for a client in its reconnect backoff
                // that a `MOVED` or `ASK` sent the request to: the node
                // that redirected it knows better than a lagging view.
                movable(p)
                    && !m.client.is_connected()
                    && (m.retiring
                        || (m.client.phase().is_none()
                            && p.redirected_to.as_ref() != Some(&m.key)
                            && p.slot
                                .is_none_or(|slot| self.topology.owner(slot) != Some(&m.key))))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stranded {
            self.withdraw(id);
            // Mutant for the simulation (scripts/mutants.sh): a refresh
            // that moved the node a request waits on drops the request
            // (I3).
            #[cfg(redpoll_mutant = "redirect_race_to_nothing")]
            let _ = self.forget(id);
            #[cfg(not(redpoll_mutant = "redirect_race_to_nothing"))]
            self.dispatch(now, id);
        }
    }
}

/// Whether a request may move to another node while its client holds it
/// unwritten: ordinary commands only (a blocking command's dedicated
/// connection and a subscription's state stay with their client).
fn movable(p: &Pending) -> bool {
    p.block.is_none() && p.kind == ReplyKind::Reply
}

/// Whether a request that failed for `reason` was certainly never written:
/// its connection never got ready.
const fn never_written(reason: &CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::ConnectFailed(_) | CloseReason::HandshakeDeadline
    )
}

fn add_stats(sum: &mut PoolStats, more: &PoolStats) {
    sum.open += more.open;
    sum.idle += more.idle;
    sum.in_use += more.in_use;
    sum.waiters += more.waiters;
    sum.created += more.created;
    add_closed(&mut sum.closed, &more.closed);
    sum.probes += more.probes;
    sum.probes_alive += more.probes_alive;
    sum.probes_dead += more.probes_dead;
    sum.wait_timeouts += more.wait_timeouts;
    sum.retries += more.retries;
}

fn add_closed(sum: &mut ClosedCounts, more: &ClosedCounts) {
    sum.eof += more.eof;
    sum.io += more.io;
    sum.idle_timeout += more.idle_timeout;
    sum.lifetime += more.lifetime;
    sum.surplus += more.surplus;
    sum.unclean += more.unclean;
    sum.stalled += more.stalled;
    sum.handshake += more.handshake;
    sum.shutdown += more.shutdown;
    sum.other += more.other;
}
