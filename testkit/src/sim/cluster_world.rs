//! The cluster simulation: a [`ClusterClient`] driven on a virtual clock
//! against a simulated network and the simulated cluster of
//! [`cluster`](super::cluster), with a seeded workload and a seeded schedule
//! of topology changes and faults, checking the invariants after every
//! step.
//!
//! # What a run is
//!
//! One `u64` seed decides everything ([`ClusterParams`]): the client's
//! configuration, the spellings of the seeds (`localhost:P`,
//! `LOCALHOST.:P`, `127.0.0.1:P`), the cluster (three primaries, replicas),
//! the schedule ([`Op`]: migrations, failovers, nodes joining and leaving,
//! restarts, stalls, dropped connections, `CLUSTERDOWN`), the workload
//! (`GET`, `SET`, two-key `MGET`, pipelines over keys in many slots) and the
//! network's latencies. A failure prints the one-line command that replays
//! it: `SIM_SEED=n cargo test --test sim_cluster -- replay --nocapture`.
//!
//! # The loop
//!
//! Drain the client's effects (each carried out on the network) and events
//! (checked against the model); run the checks; jump the clock to the next
//! thing due (a packet, a schedule action, the client's deadline, the next
//! workload action); do exactly one; repeat. After the workload's time the
//! schedule heals (migrations finish, failovers complete, stalls end), every
//! request must complete, a final read of every key must succeed with the
//! value the model allows, and after `shutdown` every socket must be closed.
//!
//! # Invariants (each failure names one)
//!
//! - `no panic`.
//! - `I1`: every `Connect` gets exactly one `Close`, nothing is sent on a
//!   socket after its `Close`, and none is left open after shutdown.
//! - `I3`: a redirect or cluster error never reaches the application (it
//!   is always resolved to a route), no request fails with a connection
//!   error unless a connection really broke (a refusal, an EOF, a stall)
//!   since it was sent, and no request fails for too many redirects or
//!   waits while the cluster has an owner for its slot.
//! - `I4`: the open sockets to each physical node, whatever spelling the
//!   `Connect` used, never exceed the pool limit (the shared connection
//!   plus the pool's `max_size`); nothing connects to an unknown host.
//! - `exactly once`: every request completes exactly once, with its own
//!   reply or an honest typed error (a timeout only at its deadline), and
//!   by its deadline.
//! - `linearizable`: per key (one writer, one operation in flight), every
//!   read returns the last acknowledged write or a write whose outcome is
//!   unknown (failed or timed out), never a lost or foreign value.
//! - `recovery`: after the schedule healed, every key reads back.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use bytes::Bytes;
use redpoll_core::client::ClientConfig;
use redpoll_core::cluster::{ClusterClient, ClusterConfig, slot};
use redpoll_core::conn::{ConnConfig, Protocol};
use redpoll_core::pool::{PoolConfig, RetryPolicy};
use redpoll_core::reconnect::ReconnectPolicy;
use redpoll_core::resp::Frame;
use redpoll_core::{
    Address, CloseReason, Duration, Effect, Error, Event, Instant, IoError, RequestId, SocketId,
};

use super::cluster::{Answers, Cluster, Migration};
use super::rng::Rng;
use crate::peer::Peer;

mod stream {
    pub(super) const PARAMS: u64 = 11;
    pub(super) const NET: u64 = 12;
    pub(super) const WORKLOAD: u64 = 13;
    pub(super) const SCHEDULE: u64 = 14;
    pub(super) const SERVER: u64 = 15;
}

/// The primaries the cluster starts with.
const PRIMARIES: usize = 3;
/// How long the world runs after the workload, at most, for every request
/// to complete.
const DRAIN: Duration = Duration::from_secs(60);

/// What one seed decides besides the schedule and the workload's choices.
#[derive(Debug, Clone)]
pub struct ClusterParams {
    /// The seed.
    pub seed: u64,
    /// The client's configuration (seeds in their spellings included).
    pub config: ClusterConfig,
    /// Which primaries have a replica.
    pub replicas: Vec<bool>,
    /// Redirects spell nodes `localhost` / `LOCALHOST.` too.
    pub spellings: bool,
    /// The nodes do not know `CLUSTER SHARDS`.
    pub no_shards: bool,
    /// The one-way latency of a message.
    pub latency: (Duration, Duration),
    /// How long the workload runs.
    pub run_for: Duration,
    /// The largest gap between two workload actions.
    pub max_gap: Duration,
    /// The keys the workload uses (pairs sharing a hash tag).
    pub keys: Vec<Bytes>,
}

/// How a host is spelled.
fn spell(r: &mut Rng) -> &'static str {
    match r.below(3) {
        0 => "localhost",
        1 => "LOCALHOST.",
        _ => super::cluster::IP,
    }
}

impl ClusterParams {
    /// The parameters of `seed`.
    #[must_use]
    pub fn draw(seed: u64) -> Self {
        let mut r = Rng::new(seed).fork(stream::PARAMS);
        // The first seed is a host name, so its alias is learnt from the
        // first refresh (`CLUSTER MYID`) and every later `localhost` spelling
        // names the node the topology calls 127.0.0.1.
        let first = if r.chance(50) {
            "localhost"
        } else {
            "LOCALHOST."
        };
        let offset = r.below(PRIMARIES as u64) as u16;
        let seeds: Vec<Address> = (0..PRIMARIES as u16)
            .map(|i| {
                let host = if i == 0 { first } else { spell(&mut r) };
                Address::tcp(host, 7000 + (offset + i) % PRIMARIES as u16)
            })
            .collect();
        let mut conn = ConnConfig::new(Address::tcp("template", 1));
        conn.protocol = Protocol::Resp3;
        conn.client_name = r.chance(50).then(|| "sim".to_owned());
        conn.set_info = r.chance(50);
        conn.handshake_timeout = r.millis(100, 2000);
        conn.stall_timeout = r.millis(200, 3000);
        let mut node = ClientConfig::new(conn);
        node.response_timeout = (!r.chance(25)).then(|| r.millis(150, 3000));
        node.pool = PoolConfig {
            max_size: r.range(1, 2) as usize,
            min_idle: 0,
            max_idle: r.range(0, 2) as usize,
            idle_timeout: r.chance(50).then(|| r.millis(200, 5000)),
            max_lifetime: None,
            probe_after: None,
            max_waiters: 64,
            wait_timeout: r.millis(20, 2000),
        };
        node.retry = if r.chance(50) {
            RetryPolicy::NONE
        } else {
            RetryPolicy {
                attempts: r.range(1, 2) as u8,
                writes: r.chance(30),
            }
        };
        let base = r.millis(5, 100);
        node.reconnect = ReconnectPolicy {
            base,
            cap: r.millis(100, 2000).max(base),
            max_attempts: None,
            retry_before_established: r.chance(30),
            hold_requests: r.chance(80),
            seed: r.next_u64(),
        };
        let mut config = ClusterConfig::new(seeds, node);
        config.refresh_min_interval = r.millis(10, 200);
        let replicas = (0..PRIMARIES).map(|_| r.chance(60)).collect();
        let lo = r.duration(Duration::from_micros(50), Duration::from_millis(1));
        let hi = r.duration(lo, Duration::from_millis(4));
        let pairs = r.range(8, 24);
        let keys = (0..pairs)
            .flat_map(|i| [format!("{{u{i}}}a"), format!("{{u{i}}}b")])
            .map(Bytes::from)
            .collect();
        Self {
            seed,
            config,
            replicas,
            spellings: r.chance(70),
            no_shards: r.chance(15),
            latency: (lo, hi),
            run_for: r.millis(1000, 3000),
            max_gap: r.millis(2, 30),
            keys,
        }
    }

    /// The pool limit per node: the shared connection and the pool.
    #[must_use]
    pub const fn socket_limit(&self) -> usize {
        1 + self.config.node.pool.max_size
    }
}

/// A scheduled change of the cluster or fault. Node choices are indices
/// taken modulo the candidates when the change starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The slots of `keys` workload keys (from the owner of the `key`th)
    /// move to another primary, in `steps` steps.
    Migrate {
        /// The first key.
        key: u64,
        /// How many keys' slots.
        keys: u64,
        /// Which other primary.
        to: u64,
        /// Key-moving steps before the finish.
        steps: u64,
    },
    /// A primary with a replica dies; the replica takes over.
    Failover {
        /// Which primary.
        node: u64,
    },
    /// A new primary joins, loads, and takes some slots.
    AddNode {
        /// Which key's slot it takes first.
        key: u64,
    },
    /// A primary hands all its slots to another and leaves.
    RemoveNode {
        /// Which primary.
        node: u64,
    },
    /// A node closes every connection, refuses for a while, then loads.
    Restart {
        /// Which node.
        node: u64,
        /// Down for this many milliseconds.
        ms: u64,
    },
    /// A node's network stalls both ways.
    Stall {
        /// Which node.
        node: u64,
        /// For this many milliseconds.
        ms: u64,
    },
    /// A node closes every client connection (`CLIENT KILL`).
    DropConnections {
        /// Which node.
        node: u64,
    },
    /// Every node answers `CLUSTERDOWN` for a while.
    ClusterDown {
        /// For this many milliseconds.
        ms: u64,
    },
}

/// The seed's schedule: `(offset from the start, op)`.
#[must_use]
pub fn schedule(params: &ClusterParams) -> Vec<(Duration, Op)> {
    let mut r = Rng::new(params.seed).fork(stream::SCHEDULE);
    let count = r.range(1, 8);
    let end = params.run_for.as_millis() as u64 - 300;
    let mut out: Vec<(Duration, Op)> = (0..count)
        .map(|_| {
            let at = Duration::from_millis(r.range(50, end));
            let op = match r.below(20) {
                0..=6 => Op::Migrate {
                    key: r.next_u64(),
                    keys: if r.chance(70) { 1 } else { r.range(2, 6) },
                    to: r.next_u64(),
                    steps: r.range(0, 4),
                },
                7..=8 => Op::Failover { node: r.next_u64() },
                9..=10 => Op::AddNode { key: r.next_u64() },
                11 => Op::RemoveNode { node: r.next_u64() },
                12..=13 => Op::Restart {
                    node: r.next_u64(),
                    ms: r.range(10, 400),
                },
                14..=15 => Op::Stall {
                    node: r.next_u64(),
                    ms: r.range(5, 600),
                },
                16..=18 => Op::DropConnections { node: r.next_u64() },
                _ => Op::ClusterDown {
                    ms: r.range(10, 300),
                },
            };
            (at, op)
        })
        .collect();
    out.sort_by_key(|(at, _)| *at);
    out
}

/// A step of a change in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Start(Op),
    MoveKeys,
    FinishMigration,
    /// The primary died; its replica is promoted.
    Promote(usize),
    /// The node's slots are gone: it leaves the topology, then goes down.
    Leave(usize),
    GoDown(usize),
    Up(usize),
    Unstall(usize),
    /// A change of the topology finished: the next may start.
    Idle,
}

/// A broken invariant.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// Which invariant.
    pub invariant: &'static str,
    /// What happened.
    pub message: String,
    /// When, from the start.
    pub at: Duration,
    /// The last lines of the trace, when traced.
    pub trace: Vec<String>,
}

impl Failure {
    /// The one-line command that replays this failure.
    #[must_use]
    pub fn replay_command(&self) -> String {
        format!(
            "SIM_SEED={} cargo test --test sim_cluster -- replay --nocapture",
            self.seed
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cluster simulation seed {} broke \"{}\" at t={:?}: {}",
            self.seed, self.invariant, self.at, self.message
        )?;
        write!(f, "  replay: {}", self.replay_command())
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Requests sent.
    pub requests: u64,
    /// Replies.
    pub ok: u64,
    /// Typed errors.
    pub errors: u64,
    /// Sockets opened.
    pub sockets: u64,
    /// Steps taken.
    pub steps: u64,
    /// Virtual time, in milliseconds.
    pub virtual_ms: u64,
    /// Migrations finished.
    pub migrations: u64,
    /// Failovers.
    pub failovers: u64,
    /// What the nodes answered.
    pub moved: u64,
    /// `ASK` replies.
    pub ask: u64,
    /// `TRYAGAIN`, `CLUSTERDOWN` and `LOADING` replies.
    pub waits: u64,
    /// Topology replies.
    pub refreshes: u64,
}

impl std::ops::AddAssign for ClusterStats {
    fn add_assign(&mut self, o: Self) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.errors += o.errors;
        self.sockets += o.sockets;
        self.steps += o.steps;
        self.virtual_ms += o.virtual_ms;
        self.migrations += o.migrations;
        self.failovers += o.failovers;
        self.moved += o.moved;
        self.ask += o.ask;
        self.waits += o.waits;
        self.refreshes += o.refreshes;
    }
}

/// A workload operation.
#[derive(Debug, Clone)]
enum Cmd {
    Get(usize),
    Set(usize, Bytes),
    MGet(usize, usize),
}

#[derive(Debug)]
struct Outstanding {
    cmd: Cmd,
    sent: Instant,
    /// The count of connection disruptions when it was sent.
    disruptions: u64,
    final_read: bool,
}

/// Per key: the last acknowledged value and every value whose write has
/// an unknown outcome.
#[derive(Debug, Default)]
struct KeyModel {
    acked: Option<Bytes>,
    unknown: BTreeSet<Bytes>,
    busy: bool,
}

#[derive(Debug)]
struct Sock {
    node: Option<usize>,
    peer: Option<Peer>,
    to_server: VecDeque<(Instant, Vec<u8>)>,
    /// `None`: EOF.
    to_client: VecDeque<(Instant, Option<Vec<u8>>)>,
    connected: bool,
    closed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wake {
    Connect(SocketId),
    ToServer(SocketId),
    ToClient(SocketId),
}

struct Violation(&'static str, String);

/// One run.
pub struct ClusterSim {
    params: ClusterParams,
    client: ClusterClient,
    cluster: Rc<RefCell<Cluster>>,
    start: Instant,
    now: Instant,
    net_rng: Rng,
    work_rng: Rng,
    server_rng: Rng,
    wakes: BTreeSet<(Instant, u64, Wake)>,
    seq: u64,
    sockets: BTreeMap<SocketId, Sock>,
    stalled: BTreeMap<usize, Instant>,
    actions: BTreeSet<(Instant, u64, ActionKey)>,
    action_of: BTreeMap<u64, Action>,
    busy_topology: bool,
    /// Primaries on their way out: no slots go to them.
    leaving: BTreeSet<usize>,
    keys: Vec<KeyModel>,
    outstanding: BTreeMap<RequestId, Outstanding>,
    completed: BTreeSet<RequestId>,
    disruptions: u64,
    last_disruption: Option<Instant>,
    next_action: Instant,
    workload_over: bool,
    /// After the workload: run on until then before the final reads.
    settle: Option<Instant>,
    shut_down: bool,
    value_counter: u64,
    stats: ClusterStats,
    trace: Option<(usize, VecDeque<String>)>,
}

type ActionKey = u64;

impl ClusterSim {
    /// The run of `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let params = ClusterParams::draw(seed);
        let root = Rng::new(seed);
        let mut cluster = Cluster::new(PRIMARIES, &params.replicas, root.fork(stream::SERVER));
        cluster.spellings = params.spellings;
        cluster.no_shards = params.no_shards;
        let start = Instant::from_nanos(1_000_000_000);
        cluster.now = start;
        let keys = params.keys.iter().map(|_| KeyModel::default()).collect();
        let mut sim = Self {
            client: ClusterClient::new(params.config.clone()),
            cluster: Rc::new(RefCell::new(cluster)),
            start,
            now: start,
            net_rng: root.fork(stream::NET),
            work_rng: root.fork(stream::WORKLOAD),
            server_rng: root.fork(stream::SERVER).fork(1),
            wakes: BTreeSet::new(),
            seq: 0,
            sockets: BTreeMap::new(),
            stalled: BTreeMap::new(),
            actions: BTreeSet::new(),
            action_of: BTreeMap::new(),
            busy_topology: false,
            leaving: BTreeSet::new(),
            keys,
            outstanding: BTreeMap::new(),
            completed: BTreeSet::new(),
            disruptions: 0,
            last_disruption: None,
            next_action: start,
            workload_over: false,
            settle: None,
            shut_down: false,
            value_counter: 0,
            stats: ClusterStats::default(),
            trace: None,
            params,
        };
        for (at, op) in schedule(&sim.params) {
            sim.at(start + at, Action::Start(op));
        }
        sim
    }

    /// Keeps the last `lines` lines of a trace, reported on failure.
    #[must_use]
    pub fn traced(mut self, lines: usize) -> Self {
        self.trace = Some((lines, VecDeque::new()));
        self
    }

    /// The seed's parameters.
    #[must_use]
    pub const fn params(&self) -> &ClusterParams {
        &self.params
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some((max, lines)) = &mut self.trace {
            let at = self.now.saturating_duration_since(self.start);
            lines.push_back(format!("{:>10.3?} {}", at, line()));
            if lines.len() > *max {
                lines.pop_front();
            }
        }
    }

    /// A connection broke (a refusal, an EOF, a stall).
    const fn disrupted(&mut self) {
        self.disruptions += 1;
        self.last_disruption = Some(self.now);
    }

    /// How long a broken connection may still explain a connection error:
    /// the longest reconnect backoff, a handshake and a stall.
    fn lookback(&self) -> Duration {
        let node = &self.params.config.node;
        node.reconnect.cap + node.conn.handshake_timeout + node.conn.stall_timeout
    }

    fn at(&mut self, at: Instant, action: Action) {
        self.seq += 1;
        self.action_of.insert(self.seq, action);
        self.actions.insert((at, self.seq, self.seq));
    }

    fn wake(&mut self, at: Instant, wake: Wake) {
        self.seq += 1;
        self.wakes.insert((at, self.seq, wake));
    }

    fn latency(&mut self) -> Duration {
        let (lo, hi) = self.params.latency;
        self.net_rng.duration(lo, hi)
    }

    /// Runs the seed to the end.
    ///
    /// # Errors
    ///
    /// The first invariant the run broke.
    pub fn run(mut self) -> Result<ClusterStats, Failure> {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.run_inner()));
        let violation = match outcome {
            Ok(Ok(())) => {
                let answers: Answers = self.cluster.borrow().answers;
                self.stats.moved = answers.moved;
                self.stats.ask = answers.ask;
                self.stats.waits = answers.tryagain + answers.clusterdown + answers.loading;
                self.stats.refreshes = answers.topology;
                self.stats.virtual_ms =
                    self.now.saturating_duration_since(self.start).as_millis() as u64;
                return Ok(self.stats);
            }
            Ok(Err(v)) => v,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                Violation("no panic", message)
            }
        };
        Err(Failure {
            seed: self.params.seed,
            invariant: violation.0,
            message: violation.1,
            at: self.now.saturating_duration_since(self.start),
            trace: self.trace.take().map(|(_, t)| t.into()).unwrap_or_default(),
        })
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        let end = self.start + self.params.run_for;
        loop {
            self.drain()?;
            if !self.workload_over && self.now >= end {
                self.workload_over = true;
                self.heal();
                self.drain()?;
            }
            if self.workload_over && self.outstanding.is_empty() && self.actions.is_empty() {
                break;
            }
            if self.now > end + DRAIN {
                let ids: Vec<_> = self.outstanding.keys().take(8).collect();
                return Err(Violation(
                    "exactly once",
                    format!("requests never completed: {ids:?}"),
                ));
            }
            self.step()?;
        }
        // The client settles (its refreshes, its reconnects) before the
        // final reads.
        let settle = self.now + Duration::from_secs(1);
        self.settle = Some(settle);
        while self.now < settle {
            self.drain()?;
            self.step()?;
        }
        self.final_reads()?;
        self.client.shutdown(self.now);
        self.shut_down = true;
        loop {
            self.drain()?;
            if self.wakes.is_empty() {
                break;
            }
            self.step()?;
        }
        self.drain()?;
        if let Some((id, _)) = self.sockets.iter().find(|(_, s)| !s.closed) {
            return Err(Violation("I1", format!("{id} left open after shutdown")));
        }
        if let Some(id) = self.outstanding.keys().next() {
            return Err(Violation(
                "exactly once",
                format!("{id} never completed, even at shutdown"),
            ));
        }
        Ok(())
    }

    /// Does the next thing due.
    fn step(&mut self) -> Result<(), Violation> {
        self.stats.steps += 1;
        let wake = self.wakes.first().map(|w| w.0);
        let action = self.actions.first().map(|a| a.0);
        let timer = self.client.poll_timeout();
        let work = if self.workload_over {
            self.settle.filter(|&t| t > self.now)
        } else {
            Some(self.next_action)
        };
        let Some(next) = [wake, action, timer, work].into_iter().flatten().min() else {
            return Ok(());
        };
        self.now = self.now.max(next);
        self.cluster.borrow_mut().now = self.now;
        if wake == Some(next) {
            let (at, s, w) = self.wakes.pop_first().expect("a wake");
            let _ = (at, s);
            self.deliver(w);
        } else if action == Some(next) {
            let (_, _, key) = self.actions.pop_first().expect("an action");
            let action = self.action_of.remove(&key).expect("an action");
            self.act(action);
        } else if timer == Some(next) {
            self.client.handle_timeout(self.now);
        } else if !self.workload_over {
            self.workload();
        }
        Ok(())
    }

    // ---- the network ------------------------------------------------------

    /// The physical node `address` reaches: any spelling of the loopback
    /// host, the port of a node.
    fn node_of(&self, address: &Address) -> Result<Option<usize>, String> {
        let Address::Tcp { host, port } = address else {
            return Err(format!("connect to a non-TCP address {address}"));
        };
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if name != "localhost" && name != super::cluster::IP {
            return Err(format!("connect to unknown host {address}"));
        }
        Ok(self.cluster.borrow().by_port(*port))
    }

    fn carry_out(&mut self, effect: Effect) -> Result<(), Violation> {
        let socket = match &effect {
            Effect::Connect { socket, .. }
            | Effect::Send { socket, .. }
            | Effect::Close { socket, .. }
            | Effect::Probe { socket } => *socket,
        };
        if self.sockets.get(&socket).is_some_and(|s| s.closed) {
            return Err(Violation(
                "I1",
                format!("{effect:?} after the Close of {socket}"),
            ));
        }
        match effect {
            Effect::Connect { socket, address } => {
                if self.sockets.contains_key(&socket) {
                    return Err(Violation("I1", format!("{socket} connected twice")));
                }
                let node = self.node_of(&address).map_err(|m| Violation("I4", m))?;
                self.log(|| format!("connect {socket} {address} -> node {node:?}"));
                self.stats.sockets += 1;
                self.sockets.insert(
                    socket,
                    Sock {
                        node,
                        peer: None,
                        to_server: VecDeque::new(),
                        to_client: VecDeque::new(),
                        connected: false,
                        closed: false,
                    },
                );
                let at = self.now + self.latency();
                self.wake(at, Wake::Connect(socket));
                self.check_socket_limit()?;
            }
            Effect::Send { socket, data } => {
                let Some(s) = self.sockets.get_mut(&socket) else {
                    return Err(Violation("I1", format!("send on unknown {socket}")));
                };
                if !s.connected {
                    return Err(Violation(
                        "I1",
                        format!("send on {socket} before connected"),
                    ));
                }
                let lat = self.latency();
                let s = self.sockets.get_mut(&socket).expect("a socket");
                let at = (self.now + lat).max(s.to_server.back().map_or(self.now, |b| b.0));
                s.to_server.push_back((at, data.to_vec()));
                self.wake(at, Wake::ToServer(socket));
            }
            Effect::Close { socket, reason } => {
                self.log(|| format!("close {socket} {reason:?}"));
                let Some(s) = self.sockets.get_mut(&socket) else {
                    return Err(Violation("I1", format!("close of unknown {socket}")));
                };
                s.closed = true;
                s.peer = None;
                s.to_server.clear();
                s.to_client.clear();
                if matches!(
                    reason,
                    CloseReason::Stalled | CloseReason::HandshakeDeadline
                ) {
                    self.disrupted();
                }
            }
            Effect::Probe { socket } => {
                self.client.handle_probe_done(self.now, socket);
            }
        }
        Ok(())
    }

    fn check_socket_limit(&self) -> Result<(), Violation> {
        let mut open: BTreeMap<usize, Vec<SocketId>> = BTreeMap::new();
        for (id, s) in &self.sockets {
            if let (false, Some(node)) = (s.closed, s.node) {
                open.entry(node).or_default().push(*id);
            }
        }
        let limit = self.params.socket_limit();
        for (node, ids) in open {
            if ids.len() > limit {
                let port = self.cluster.borrow().nodes[node].port;
                return Err(Violation(
                    "I4",
                    format!(
                        "{} sockets open to the node on port {port} (limit {limit}): {ids:?}; client's view: {:?}",
                        ids.len(),
                        self.client.connections_per_node()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn stalled(&self, node: Option<usize>) -> Option<Instant> {
        node.and_then(|n| self.stalled.get(&n).copied())
            .filter(|&t| t > self.now)
    }

    fn deliver(&mut self, wake: Wake) {
        match wake {
            Wake::Connect(socket) => {
                let Some(s) = self.sockets.get(&socket) else {
                    return;
                };
                if s.closed {
                    return;
                }
                if let Some(until) = self.stalled(s.node) {
                    return self.wake(until, wake);
                }
                let node = s.node;
                let up = node.is_some_and(|n| self.cluster.borrow().nodes[n].up);
                if up {
                    let n = node.expect("a node");
                    let cluster = self.cluster.clone();
                    let mut asking = false;
                    let peer = Peer::plain().with_handler(move |args| {
                        cluster.borrow_mut().answer(n, &mut asking, args)
                    });
                    let s = self.sockets.get_mut(&socket).expect("a socket");
                    s.peer = Some(peer);
                    s.connected = true;
                    self.log(|| format!("connected {socket}"));
                    self.client.handle_connected(self.now, socket);
                } else {
                    self.disrupted();
                    self.log(|| format!("refused {socket}"));
                    self.client
                        .handle_connect_failed(self.now, socket, IoError::Refused);
                }
            }
            Wake::ToServer(socket) => {
                let now = self.now;
                let Some(s) = self.sockets.get(&socket) else {
                    return;
                };
                if let Some(until) = self.stalled(s.node) {
                    return self.wake(until, wake);
                }
                let s = self.sockets.get_mut(&socket).expect("a socket");
                let mut out = Vec::new();
                let mut seen = Vec::new();
                while s.to_server.front().is_some_and(|m| m.0 <= now) {
                    let (_, bytes) = s.to_server.pop_front().expect("a message");
                    if let Some(peer) = &mut s.peer {
                        peer.receive(&bytes).expect("the client writes valid RESP");
                        out.extend(peer.take_outbox());
                        seen.extend(bytes);
                    }
                }
                let node = s.node;
                self.log(|| {
                    let text = |b: &[u8]| {
                        let t = String::from_utf8_lossy(b).replace("\r\n", " ");
                        t.chars().take(160).collect::<String>()
                    };
                    format!("{socket} node {node:?}: {} => {}", text(&seen), text(&out))
                });
                if !out.is_empty() {
                    let lat = self.latency();
                    let s = self.sockets.get_mut(&socket).expect("a socket");
                    let at = (now + lat).max(s.to_client.back().map_or(now, |b| b.0));
                    s.to_client.push_back((at, Some(out)));
                    self.wake(at, Wake::ToClient(socket));
                }
            }
            Wake::ToClient(socket) => {
                let now = self.now;
                let Some(s) = self.sockets.get(&socket) else {
                    return;
                };
                if let Some(until) = self.stalled(s.node) {
                    return self.wake(until, wake);
                }
                let s = self.sockets.get_mut(&socket).expect("a socket");
                let mut data = Vec::new();
                let mut eof = false;
                while s.to_client.front().is_some_and(|m| m.0 <= now) {
                    match s.to_client.pop_front().expect("a message").1 {
                        Some(bytes) => data.extend(bytes),
                        None => {
                            eof = true;
                            s.to_client.clear();
                        }
                    }
                }
                if !data.is_empty() {
                    self.client.handle_data(now, socket, &data);
                }
                if eof && self.sockets.get(&socket).is_some_and(|s| !s.closed) {
                    self.log(|| format!("eof {socket}"));
                    self.disrupted();
                    self.client.handle_eof(now, socket);
                }
            }
        }
    }

    /// Node `n` closes every connection (EOF after what it already sent).
    fn close_all(&mut self, n: usize) {
        let ids: Vec<SocketId> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.node == Some(n) && s.connected && !s.closed)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let lat = self.latency();
            let now = self.now;
            let s = self.sockets.get_mut(&id).expect("a socket");
            if s.peer.take().is_none() {
                continue;
            }
            s.to_server.clear();
            let at = (now + lat).max(s.to_client.back().map_or(now, |b| b.0));
            s.to_client.push_back((at, None));
            self.wake(at, Wake::ToClient(id));
        }
    }

    // ---- the schedule -------------------------------------------------------

    fn pick(candidates: &[usize], choice: u64) -> Option<usize> {
        (!candidates.is_empty()).then(|| candidates[(choice % candidates.len() as u64) as usize])
    }

    fn key_index(&self, choice: u64) -> usize {
        (choice % self.keys.len() as u64) as usize
    }

    fn lag(&mut self) -> (Vec<usize>, Instant) {
        let nodes = self.cluster.borrow().nodes.len();
        let lagging = (0..nodes).filter(|_| self.server_rng.chance(50)).collect();
        let until = self.now + self.server_rng.millis(0, 400);
        (lagging, until)
    }

    fn act(&mut self, action: Action) {
        self.log(|| format!("schedule: {action:?}"));
        let structural = matches!(
            action,
            Action::Start(
                Op::Migrate { .. }
                    | Op::Failover { .. }
                    | Op::AddNode { .. }
                    | Op::RemoveNode { .. }
            )
        );
        if structural && self.busy_topology {
            // One change of the topology at a time.
            let at = self.now + Duration::from_millis(50);
            return self.at(at, action);
        }
        match action {
            Action::Start(op) => self.start(op),
            Action::MoveKeys => {
                let mut cluster = self.cluster.borrow_mut();
                if let Some(Migration { slots, from, to }) = cluster.migration.clone() {
                    let rng = &mut self.server_rng;
                    cluster.move_keys(from, to, &slots, || rng.chance(40));
                }
            }
            Action::FinishMigration => {
                let (lagging, until) = self.lag();
                self.cluster.borrow_mut().finish_migration(&lagging, until);
                self.stats.migrations += 1;
                self.at(self.now, Action::Idle);
            }
            Action::Promote(r) => {
                self.cluster.borrow_mut().promote(r);
                self.stats.failovers += 1;
                self.at(self.now, Action::Idle);
            }
            Action::Leave(n) => {
                self.cluster.borrow_mut().nodes[n].member = false;
                let at = self.now + self.server_rng.millis(0, 300);
                self.at(at, Action::GoDown(n));
            }
            Action::GoDown(n) => {
                self.cluster.borrow_mut().nodes[n].up = false;
                self.close_all(n);
            }
            Action::Up(n) => {
                let loading = self.server_rng.millis(0, 300);
                let mut cluster = self.cluster.borrow_mut();
                cluster.nodes[n].up = true;
                cluster.nodes[n].loading_until = Some(self.now + loading);
            }
            Action::Unstall(n) => {
                self.stalled.remove(&n);
            }
            Action::Idle => self.busy_topology = false,
        }
    }

    fn start(&mut self, op: Op) {
        let live: Vec<usize> = {
            let c = self.cluster.borrow();
            (0..c.nodes.len())
                .filter(|&i| c.nodes[i].up && c.nodes[i].member)
                .collect()
        };
        match op {
            Op::Migrate {
                key,
                keys,
                to,
                steps,
            } => {
                let first = self.key_index(key);
                let s = slot(&self.params.keys[first]);
                let (from, slots, target) = {
                    let c = self.cluster.borrow();
                    let from = c.owner[usize::from(s)];
                    let slots: BTreeSet<u16> = (0..keys)
                        .map(|i| slot(&self.params.keys[self.key_index(key.wrapping_add(i * 7))]))
                        .filter(|&t| c.owner[usize::from(t)] == from)
                        .collect();
                    let others: Vec<usize> = c
                        .primaries()
                        .into_iter()
                        .filter(|&p| p != from && c.nodes[p].up && !self.leaving.contains(&p))
                        .collect();
                    (from, slots, Self::pick(&others, to))
                };
                if let Some(to) = target {
                    self.migrate(from, to, slots, steps);
                }
            }
            Op::Failover { node } => {
                let candidates: Vec<usize> = {
                    let c = self.cluster.borrow();
                    c.primaries()
                        .into_iter()
                        .filter(|&p| {
                            c.nodes[p].up
                                && c.nodes
                                    .iter()
                                    .any(|r| r.member && r.up && r.replica_of == Some(p))
                        })
                        .collect()
                };
                let Some(p) = Self::pick(&candidates, node) else {
                    return;
                };
                self.busy_topology = true;
                let r = {
                    let mut c = self.cluster.borrow_mut();
                    c.nodes[p].up = false;
                    (0..c.nodes.len())
                        .find(|&r| c.nodes[r].member && c.nodes[r].replica_of == Some(p))
                        .expect("a replica")
                };
                self.close_all(p);
                // Detection, then the cluster is down until the promotion.
                let detect = self.server_rng.millis(0, 300);
                let down = self.server_rng.millis(0, 300);
                if self.server_rng.chance(50) {
                    let mut c = self.cluster.borrow_mut();
                    let until = self.now + detect + down;
                    c.down_until = Some(c.down_until.map_or(until, |t| t.max(until)));
                }
                self.at(self.now + detect + down, Action::Promote(r));
            }
            Op::AddNode { key } => {
                let port = {
                    let c = self.cluster.borrow();
                    7003 + c
                        .nodes
                        .iter()
                        .filter(|n| n.port >= 7003 && n.port < 7100)
                        .count() as u16
                };
                let n = self.cluster.borrow_mut().add_node(port, None);
                let loading = self.server_rng.millis(0, 300);
                self.cluster.borrow_mut().nodes[n].loading_until = Some(self.now + loading);
                let s = slot(&self.params.keys[self.key_index(key)]);
                let from = self.cluster.borrow().owner[usize::from(s)];
                let steps = self.server_rng.range(0, 3);
                self.migrate(from, n, BTreeSet::from([s]), steps);
            }
            Op::RemoveNode { node } => {
                let (candidates, primaries) = {
                    let c = self.cluster.borrow();
                    let primaries: Vec<usize> = c
                        .primaries()
                        .into_iter()
                        .filter(|&p| c.nodes[p].up && !self.leaving.contains(&p))
                        .collect();
                    let candidates: Vec<usize> = primaries
                        .iter()
                        .copied()
                        .filter(|&p| !c.nodes.iter().any(|r| r.member && r.replica_of == Some(p)))
                        .collect();
                    (candidates, primaries)
                };
                if primaries.len() <= 2 {
                    return;
                }
                let Some(p) = Self::pick(&candidates, node) else {
                    return;
                };
                self.leaving.insert(p);
                let others: Vec<usize> = primaries
                    .into_iter()
                    .filter(|&o| o != p && !self.leaving.contains(&o))
                    .collect();
                let to = Self::pick(&others, node / 7).expect("another primary");
                let slots = self.cluster.borrow().slots_of(p);
                let steps = self.server_rng.range(0, 3);
                self.migrate(p, to, slots, steps);
                let leave = self.next_free_after_migration();
                self.at(leave, Action::Leave(p));
            }
            Op::Restart { node, ms } => {
                let Some(n) = Self::pick(&live, node) else {
                    return;
                };
                self.cluster.borrow_mut().nodes[n].up = false;
                self.close_all(n);
                self.at(self.now + Duration::from_millis(ms), Action::Up(n));
            }
            Op::Stall { node, ms } => {
                let Some(n) = Self::pick(&live, node) else {
                    return;
                };
                self.disrupted();
                let until = self.now + Duration::from_millis(ms);
                let was = self.stalled.get(&n).copied().unwrap_or(until);
                self.stalled.insert(n, was.max(until));
                self.at(was.max(until), Action::Unstall(n));
            }
            Op::DropConnections { node } => {
                if let Some(n) = Self::pick(&live, node) {
                    self.close_all(n);
                }
            }
            Op::ClusterDown { ms } => {
                let until = self.now + Duration::from_millis(ms);
                let mut c = self.cluster.borrow_mut();
                c.down_until = Some(c.down_until.map_or(until, |t| t.max(until)));
            }
        }
    }

    /// When the migration just scheduled finishes (the last action queued).
    fn next_free_after_migration(&self) -> Instant {
        self.actions
            .iter()
            .filter(|(_, _, k)| self.action_of.get(k) == Some(&Action::FinishMigration))
            .map(|(at, _, _)| *at)
            .max()
            .unwrap_or(self.now)
            + Duration::from_millis(1)
    }

    fn migrate(&mut self, from: usize, to: usize, slots: BTreeSet<u16>, steps: u64) {
        if slots.is_empty() || from == to {
            return;
        }
        self.busy_topology = true;
        self.cluster.borrow_mut().migration = Some(Migration { slots, from, to });
        let mut at = self.now;
        for _ in 0..steps {
            at = at + self.server_rng.millis(1, 150);
            self.at(at, Action::MoveKeys);
        }
        at = at + self.server_rng.millis(1, 150);
        self.at(at, Action::FinishMigration);
    }

    /// The workload's time is up: every change in progress completes now,
    /// stalls end, nodes that restart come back.
    fn heal(&mut self) {
        self.log(|| "heal".to_owned());
        self.stalled.clear();
        let pending: Vec<Action> = std::mem::take(&mut self.action_of).into_values().collect();
        self.actions.clear();
        for action in pending {
            match action {
                Action::Start(_) | Action::MoveKeys | Action::Unstall(_) | Action::Idle => {}
                other => self.at(self.now, other),
            }
        }
        let mut c = self.cluster.borrow_mut();
        c.down_until = None;
        for node in &mut c.nodes {
            node.loading_until = None;
            node.lag_until = Instant::ZERO;
        }
    }

    // ---- the workload and the model -----------------------------------------

    fn workload(&mut self) {
        let gap = self.work_rng.duration(Duration::ZERO, self.params.max_gap);
        self.next_action = self.now + gap;
        let burst = if self.work_rng.chance(10) {
            self.work_rng.range(2, 6)
        } else {
            1
        };
        for _ in 0..burst {
            let k = self.work_rng.below(self.keys.len() as u64) as usize;
            if self.keys[k].busy {
                continue;
            }
            let cmd = match self.work_rng.below(10) {
                0..=4 => Cmd::Get(k),
                5..=8 => {
                    self.value_counter += 1;
                    let value = format!(
                        "{}={}",
                        String::from_utf8_lossy(&self.params.keys[k]),
                        self.value_counter
                    );
                    Cmd::Set(k, Bytes::from(value))
                }
                _ => {
                    let pair = k ^ 1;
                    if self.keys[pair].busy {
                        continue;
                    }
                    Cmd::MGet(k & !1, k | 1)
                }
            };
            self.send(cmd, false);
        }
    }

    fn send(&mut self, cmd: Cmd, final_read: bool) {
        let key = |i: usize| self.params.keys[i].clone();
        let args: Vec<Bytes> = match &cmd {
            Cmd::Get(k) => vec![Bytes::from_static(b"GET"), key(*k)],
            Cmd::Set(k, v) => vec![Bytes::from_static(b"SET"), key(*k), v.clone()],
            Cmd::MGet(a, b) => vec![Bytes::from_static(b"MGET"), key(*a), key(*b)],
        };
        let words: Vec<&[u8]> = args.iter().map(AsRef::as_ref).collect();
        match &cmd {
            Cmd::Get(k) | Cmd::Set(k, _) => self.keys[*k].busy = true,
            Cmd::MGet(a, b) => {
                self.keys[*a].busy = true;
                self.keys[*b].busy = true;
            }
        }
        let id = self.client.send(self.now, words.as_slice());
        self.log(|| format!("send {id} {cmd:?}"));
        self.stats.requests += 1;
        self.outstanding.insert(
            id,
            Outstanding {
                cmd,
                sent: self.now,
                disruptions: self.disruptions,
                final_read,
            },
        );
    }

    /// Drains effects and events, checking each; then the step checks.
    fn drain(&mut self) -> Result<(), Violation> {
        loop {
            let mut moved = false;
            while let Some(effect) = self.client.poll_effect() {
                moved = true;
                self.carry_out(effect)?;
            }
            while let Some(event) = self.client.poll_event() {
                moved = true;
                if let Event::Response { id, result } = event {
                    self.on_response(id, result)?;
                }
            }
            if !moved {
                break;
            }
        }
        self.check_socket_limit()?;
        if let Some(timeout) = self.params.config.node.response_timeout {
            let grace = Duration::from_millis(5);
            if let Some((id, o)) = self
                .outstanding
                .iter()
                .find(|(_, o)| o.sent + timeout + grace < self.now)
            {
                return Err(Violation(
                    "exactly once",
                    format!(
                        "{id} ({:?}, sent at {:?}) not completed by its deadline ({timeout:?})",
                        o.cmd,
                        o.sent.saturating_duration_since(self.start)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn on_response(
        &mut self,
        id: RequestId,
        result: Result<Frame, Error>,
    ) -> Result<(), Violation> {
        self.log(|| format!("response {id} {result:?}"));
        let Some(o) = self.outstanding.remove(&id) else {
            let again = self.completed.contains(&id);
            return Err(Violation(
                "exactly once",
                format!(
                    "{id} {} with {result:?}",
                    if again {
                        "completed twice"
                    } else {
                        "completed but never sent"
                    }
                ),
            ));
        };
        self.completed.insert(id);
        match &o.cmd {
            Cmd::Get(k) | Cmd::Set(k, _) => self.keys[*k].busy = false,
            Cmd::MGet(a, b) => {
                self.keys[*a].busy = false;
                self.keys[*b].busy = false;
            }
        }
        match result {
            Ok(frame) => {
                self.stats.ok += 1;
                self.check_reply(id, &o, &frame)
            }
            Err(error) => {
                self.stats.errors += 1;
                if o.final_read {
                    let primaries: Vec<String> = self
                        .client
                        .topology()
                        .shards()
                        .iter()
                        .map(|s| s.primary.key.to_string())
                        .collect();
                    return Err(Violation(
                        "recovery",
                        format!(
                            "the final read {id} {:?} failed: {error:?}; the client's primaries: {primaries:?}, its connections: {:?}",
                            o.cmd,
                            self.client.connections_per_node()
                        ),
                    ));
                }
                if let Cmd::Set(k, v) = &o.cmd {
                    self.keys[*k].unknown.insert(v.clone());
                }
                self.check_error(id, &o, &error)
            }
        }
    }

    fn check_value(&self, k: usize, got: &Frame) -> Result<(), String> {
        let model = &self.keys[k];
        let ok = match got {
            Frame::Null | Frame::NullBulk => model.acked.is_none(),
            Frame::Bulk(v) => model.acked.as_ref() == Some(v) || model.unknown.contains(v),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "key {} read {got:?}; acknowledged {:?}, unknown outcome {:?}",
                String::from_utf8_lossy(&self.params.keys[k]),
                model.acked,
                model.unknown
            ))
        }
    }

    fn check_reply(
        &mut self,
        id: RequestId,
        o: &Outstanding,
        frame: &Frame,
    ) -> Result<(), Violation> {
        if let Frame::Error(e) | Frame::BulkError(e) = frame {
            return Err(Violation(
                "I3",
                format!(
                    "{id} {:?}: the server's error reached the application: {}",
                    o.cmd,
                    String::from_utf8_lossy(e)
                ),
            ));
        }
        let own = |m: String| Violation("exactly once", format!("{id} {:?}: {m}", o.cmd));
        match &o.cmd {
            Cmd::Get(k) => self
                .check_value(*k, frame)
                .map_err(|m| Violation("linearizable", format!("{id}: {m}"))),
            Cmd::Set(k, v) => {
                if !matches!(frame, Frame::Simple(s) if s.as_ref() == b"OK") {
                    return Err(own(format!("not its own reply: {frame:?}")));
                }
                self.keys[*k].acked = Some(v.clone());
                Ok(())
            }
            Cmd::MGet(a, b) => {
                let Frame::Array(items) = frame else {
                    return Err(own(format!("not its own reply: {frame:?}")));
                };
                if items.len() != 2 {
                    return Err(own(format!("not its own reply: {frame:?}")));
                }
                self.check_value(*a, &items[0])
                    .and_then(|()| self.check_value(*b, &items[1]))
                    .map_err(|m| Violation("linearizable", format!("{id}: {m}")))
            }
        }
    }

    fn check_error(&self, id: RequestId, o: &Outstanding, error: &Error) -> Result<(), Violation> {
        let key = match &o.cmd {
            Cmd::Get(k) | Cmd::Set(k, _) | Cmd::MGet(k, _) => *k,
        };
        let slot = slot(&self.params.keys[key]);
        match error {
            Error::Timeout => match self.params.config.node.response_timeout {
                Some(t) if o.sent + t <= self.now => Ok(()),
                _ => Err(Violation(
                    "exactly once",
                    format!("{id} {:?} timed out before its deadline", o.cmd),
                )),
            },
            Error::Connection(_) if self.disruptions > o.disruptions => Ok(()),
            // A node that refused or dropped connections shortly before
            // (its client is still in its reconnect backoff, or waits out
            // the refusals) honestly fails a request sent meanwhile.
            Error::Connection(_)
                if self
                    .last_disruption
                    .is_some_and(|at| at + self.lookback() >= o.sent) =>
            {
                Ok(())
            }
            Error::Connection(reason) => Err(Violation(
                "I3",
                format!(
                    "{id} {:?} (slot {slot}) failed with a connection error ({reason:?}) though no connection broke since it was sent",
                    o.cmd
                ),
            )),
            Error::Shutdown if self.shut_down => Ok(()),
            Error::Cluster(failure) => Err(Violation(
                "I3",
                format!(
                    "{id} {:?} (slot {slot}, served by port {}) failed: {failure}",
                    o.cmd,
                    self.cluster.borrow().nodes[self.cluster.borrow().owner[usize::from(slot)]]
                        .port
                ),
            )),
            other => Err(Violation(
                "exactly once",
                format!("{id} {:?}: not an honest error: {other:?}", o.cmd),
            )),
        }
    }

    /// After the schedule healed: every key reads back what the model
    /// allows.
    fn final_reads(&mut self) -> Result<(), Violation> {
        for k in 0..self.keys.len() {
            self.send(Cmd::Get(k), true);
        }
        let deadline = self.now + DRAIN;
        loop {
            self.drain()?;
            if self.outstanding.is_empty() {
                return Ok(());
            }
            if self.now > deadline {
                return Err(Violation(
                    "recovery",
                    format!(
                        "final reads never completed: {:?}",
                        self.outstanding.keys().take(8).collect::<Vec<_>>()
                    ),
                ));
            }
            self.step()?;
        }
    }
}

/// Runs `seed`.
///
/// # Errors
///
/// The first invariant the run broke.
pub fn run(seed: u64) -> Result<ClusterStats, Failure> {
    ClusterSim::new(seed).run()
}

/// The outcome of many seeds of the cluster simulation.
pub type Sweep = super::Sweep<ClusterStats, Failure>;

/// Runs the seeds `start..start + count` on `threads` threads; with
/// `stop_at_first`, stops once the lowest failing seed is known.
#[must_use]
pub fn sweep(start: u64, count: u64, threads: usize, stop_at_first: bool) -> Sweep {
    super::seeds_in_parallel(start, count, threads, stop_at_first, run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::FailureLine;

    /// The cluster simulation's [`sweep_from_env`](crate::sim::sweep_from_env),
    /// for `scripts/mutants.sh` and `scripts/soak.sh`.
    #[test]
    #[ignore = "run by scripts/mutants.sh"]
    fn cluster_sweep_from_env() {
        let sweep = crate::sim::sweep_from_env(sweep, |f: &Failure| FailureLine {
            seed: f.seed,
            invariant: f.invariant.to_owned(),
            at: f.at,
            message: f.message.clone(),
        });
        if let Some(first) = sweep.failures.first() {
            panic!("{first}");
        }
    }
}
