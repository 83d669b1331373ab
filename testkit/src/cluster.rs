//! A real Redis Cluster on loopback, for the integration tests.
//!
//! [`Cluster::start`] starts `primaries × (1 + replicas)` `redis-server`
//! processes through [`RedisServer`] (so each has its own directory, log
//! and parent-death signal, and is killed by pid when dropped), with
//! `cluster-enabled yes`, its own `nodes.conf`, a short
//! `cluster-node-timeout` and `cluster-announce-ip 127.0.0.1`, bound to
//! `127.0.0.1` and also `::1` when this host has IPv6 loopback. It then
//! runs `redis-cli --cluster create` and waits until the cluster is
//! [ready](Cluster::wait_ready). Dropping the [`Cluster`] kills every node.
//!
//! # Ready
//!
//! A cluster is ready when every node answers and:
//! - reports `cluster_state:ok` with all 16384 slots assigned and ok, and
//!   `cluster_known_nodes` equal to the number of members;
//! - sees, in `CLUSTER NODES`, the same table as every other node (ids,
//!   roles, primaries, slot ranges), every member `connected`, none
//!   flagged `fail`, `fail?`, `handshake` or `noaddr`, and no open
//!   (migrating or importing) slot;
//! - as a replica, has `master_link_status:up`; as a primary, has as many
//!   `connected_slaves` as the table gives it;
//! - and `redis-cli --cluster check` says "All nodes agree" and "All 16384
//!   slots covered", with no `[WARNING]` or `[ERR]`.
//!
//! Every topology change here ([`Migration::finish`], [`Cluster::reshard`],
//! [`Cluster::failover`], [`Cluster::restart_node`]) ends by waiting for
//! that, so a test never starts its next step on a half-converged cluster.
//! [`Cluster::nodes`] is the table of the last time the cluster was ready.
//!
//! # Ports
//!
//! The client port of a node is picked by [`RedisServer`]; its cluster bus
//! port is picked here (`cluster-port`, never `port + 10000`, which would
//! be past 65535 for high ephemeral ports) and remembered until the node is
//! dropped. A bus port taken by another process in between makes the start
//! fail with "Address already in use"; the node is then started again on
//! new ports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use redpoll_core::resp::{Decoder, Frame, ToArg, encode_command};
use rustls::pki_types::ServerName;

use crate::certs::Pki;
use crate::server::{ADMIN_NAME, RedisServer, ServerOptions};

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The connect, read and write timeout of [`RawConn`].
const CONN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `redis-cli --cluster create` / `check` may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `redis-cli --cluster reshard` may take.
const RESHARD_TIMEOUT: Duration = Duration::from_secs(300);
/// Between two readiness probes.
const POLL: Duration = Duration::from_millis(100);
/// A `CLUSTER FAILOVER` that has not swapped the roles by then is sent
/// again (the server gives up on its own after 5 s).
const FAILOVER_RETRY: Duration = Duration::from_secs(8);
/// The `MIGRATE` timeout, in milliseconds.
const MIGRATE_TIMEOUT_MS: &str = "10000";
/// Keys per `MIGRATE` when a migration is finished.
const MIGRATE_BATCH: usize = 100;
/// Starts of one node on new ports after "Address already in use".
const MAX_ATTEMPTS: u32 = 6;
/// Lines of each node's log quoted in errors.
const TAIL_LINES: usize = 15;

/// Whether this host can bind the IPv6 loopback address `::1`.
#[must_use]
pub fn ipv6_loopback_available() -> bool {
    TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0)).is_ok()
}

/// CRC16-CCITT (XMODEM), the cluster's key hash.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
        }
    }
    crc
}

/// The hash slot of `key`, by the cluster specification: CRC16 of the
/// hash tag (the bytes between the first `{` and the first `}` after it,
/// when there are any) or else of the whole key, modulo 16384.
///
/// This is the testkit's own implementation, kept independent of the
/// core's on purpose (the two are checked against the server's
/// `CLUSTER KEYSLOT` table, `core/tests/data/keyslot.txt`); use it to pick
/// keys for tests, not as the client's routing.
#[must_use]
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let len = rest.iter().position(|&b| b == b'}')?;
            (len > 0).then(|| &rest[..len])
        })
        .unwrap_or(key);
    crc16(hashed) & (SLOTS - 1)
}

/// A short hash tag (without braces) whose slot is `slot`: the keys
/// `{TAG}`, `{TAG}:1`, `{TAG}:anything` all live in `slot`. Deterministic.
///
/// # Panics
///
/// When `slot` is not below [`SLOTS`].
#[must_use]
pub fn hash_tag_for_slot(slot: u16) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    assert!(slot < SLOTS, "slot {slot} out of range");
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![String::new(); usize::from(SLOTS)];
        let mut missing = usize::from(SLOTS);
        let mut n: u32 = 0;
        while missing > 0 {
            let tag = format!("s{n}");
            let entry = &mut tags[usize::from(key_slot(tag.as_bytes()))];
            if entry.is_empty() {
                *entry = tag;
                missing -= 1;
            }
            n += 1;
        }
        tags
    });
    &tags[usize::from(slot)]
}

/// What to start: a builder for [`Cluster::start`].
///
/// The default is 3 primaries with 1 replica each, plain TCP,
/// `cluster-node-timeout 2000`, also on `::1` when available.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    primaries: usize,
    replicas: usize,
    tls: Option<Pki>,
    node_timeout: Duration,
    ipv6: bool,
    binary: Option<PathBuf>,
    cli: Option<PathBuf>,
    args: Vec<String>,
    ready_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterOptions {
    /// 3 primaries with 1 replica each.
    #[must_use]
    pub fn new() -> Self {
        Self {
            primaries: 3,
            replicas: 1,
            tls: None,
            node_timeout: Duration::from_millis(2000),
            ipv6: true,
            binary: None,
            cli: None,
            args: Vec::new(),
            ready_timeout: Duration::from_secs(60),
        }
    }

    /// The number of primaries (at least 3, `redis-cli`'s minimum).
    #[must_use]
    pub const fn primaries(mut self, n: usize) -> Self {
        self.primaries = n;
        self
    }

    /// The number of replicas of each primary.
    #[must_use]
    pub const fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// TLS only, with this PKI's server certificate, for clients, the
    /// cluster bus and replication (`tls-cluster yes`,
    /// `tls-replication yes`); the nodes announce their TLS ports.
    #[must_use]
    pub fn tls(mut self, pki: Pki) -> Self {
        self.tls = Some(pki);
        self
    }

    /// `cluster-node-timeout` (2 s by default): how long a node may be
    /// unreachable before it is flagged failing.
    #[must_use]
    pub const fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// Whether the nodes also listen on `::1` when this host has it (the
    /// default); they announce `127.0.0.1` either way.
    #[must_use]
    pub const fn ipv6(mut self, enabled: bool) -> Self {
        self.ipv6 = enabled;
        self
    }

    /// The server binary, as [`ServerOptions::binary`].
    #[must_use]
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// The `redis-cli` binary. The default is `$REDPOLL_REDIS_CLI`, else
    /// `redis-cli` from `PATH`.
    #[must_use]
    pub fn cli(mut self, path: impl Into<PathBuf>) -> Self {
        self.cli = Some(path.into());
        self
    }

    /// One configuration directive for every node, as
    /// [`ServerOptions::config`]; it comes after the cluster's own, so it
    /// overrides them.
    #[must_use]
    pub fn config(mut self, name: &str, value: &str) -> Self {
        self.args.push(format!("--{name}"));
        self.args.push(value.to_owned());
        self
    }

    /// Raw command-line arguments for every node, as
    /// [`ServerOptions::args`].
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// How long the cluster may take to become ready, at the start and
    /// after each topology change (60 s by default).
    #[must_use]
    pub const fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    fn validate(&self) -> io::Result<()> {
        if self.primaries < 3 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} primaries: redis-cli --cluster create needs at least 3",
                    self.primaries
                ),
            ));
        }
        Ok(())
    }

    fn server_options(&self, bind: &[IpAddr], bus_port: u16) -> ServerOptions {
        let mut options = ServerOptions::new()
            .bind(bind)
            .config("cluster-enabled", "yes")
            // Relative to the node's own directory (its working directory).
            .config("cluster-config-file", "nodes.conf")
            .config(
                "cluster-node-timeout",
                &self.node_timeout.as_millis().to_string(),
            )
            .config("cluster-announce-ip", "127.0.0.1")
            .config("cluster-port", &bus_port.to_string())
            // A replica's first sync would otherwise wait 5 s for others.
            .config("repl-diskless-sync-delay", "0");
        if let Some(pki) = &self.tls {
            options = options
                .tls(pki.clone())
                .config("tls-cluster", "yes")
                .config("tls-replication", "yes");
        }
        if let Some(binary) = &self.binary {
            options = options.binary(binary.clone());
        }
        options.args(self.args.iter().cloned())
    }
}

/// Bus ports handed out to the nodes of this process and not dropped yet.
fn bus_ports() -> MutexGuard<'static, BTreeSet<u16>> {
    static RESERVED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    RESERVED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A port free on every bind address and not reserved by another node of
/// this process; it is reserved on return.
fn pick_bus_port(bind: &[IpAddr]) -> io::Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind(SocketAddr::new(bind[0], 0))?
            .local_addr()?
            .port();
        let free = bind
            .iter()
            .all(|ip| TcpListener::bind(SocketAddr::new(*ip, port)).is_ok());
        if free && bus_ports().insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free cluster bus port found",
    ))
}

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A primary (`master` in `CLUSTER NODES`).
    Primary,
    /// A replica of a primary (`slave`).
    Replica,
}

/// One node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The port clients connect to (the TLS port of a TLS cluster).
    pub port: u16,
    /// The node id (40 hex digits).
    pub id: String,
    /// Primary or replica.
    pub role: Role,
    /// For a replica, the id of its primary.
    pub primary_id: Option<String>,
    /// For a primary, the slots it serves, as sorted ranges.
    pub slots: Vec<RangeInclusive<u16>>,
}

impl Node {
    /// `127.0.0.1:PORT`, the address the node announces.
    #[must_use]
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The number of slots it serves.
    #[must_use]
    pub fn slot_count(&self) -> usize {
        self.slots.iter().map(|r| r.clone().count()).sum()
    }

    /// Whether it serves `slot`.
    #[must_use]
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|r| r.contains(&slot))
    }
}

/// The `MOVED` and `ASK` replies a node has sent, from `INFO errorstats`
/// (since its start or the last [`Cluster::reset_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redirects {
    /// `errorstat_MOVED`.
    pub moved: u64,
    /// `errorstat_ASK`.
    pub ask: u64,
}

impl core::ops::Add for Redirects {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            moved: self.moved + other.moved,
            ask: self.ask + other.ask,
        }
    }
}

/// One member process.
#[derive(Debug)]
struct Member {
    port: u16,
    bus_port: u16,
    id: String,
    server: Mutex<RedisServer>,
}

impl Member {
    fn server(&self) -> MutexGuard<'_, RedisServer> {
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // Killed before its bus port is given back.
        self.server
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .stop();
        bus_ports().remove(&self.bus_port);
    }
}

/// A running Redis Cluster of `redis-server` child processes; every node
/// is killed when it is dropped (also while a failing test unwinds, when
/// each node prints the tail of its log and keeps its directory).
///
/// All methods take `&self`, so a test can change the topology on one
/// thread while others run load.
#[derive(Debug)]
pub struct Cluster {
    options: ClusterOptions,
    ipv6: bool,
    members: Vec<Member>,
    /// The table of the last time the cluster was ready.
    topology: Mutex<Vec<Node>>,
}

impl Cluster {
    /// Starts the nodes, creates the cluster with `redis-cli --cluster
    /// create` and waits until it is ready.
    ///
    /// # Errors
    ///
    /// Invalid options, a node that does not start, a failing
    /// `redis-cli`, or a cluster not ready within the ready timeout; the
    /// message then says what was missing and quotes each node's log.
    pub fn start(options: ClusterOptions) -> io::Result<Self> {
        options.validate()?;
        let ipv6 = options.ipv6 && ipv6_loopback_available();
        let mut bind = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        if ipv6 {
            bind.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
        }
        let count = options.primaries * (1 + options.replicas);
        let started: Vec<io::Result<Member>> = thread::scope(|scope| {
            let handles: Vec<_> = (0..count)
                .map(|_| scope.spawn(|| start_member(&options, &bind)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a node start thread panicked"))
                .collect()
        });
        let members = started.into_iter().collect::<io::Result<Vec<_>>>()?;
        let cluster = Self {
            options,
            ipv6,
            members,
            topology: Mutex::new(Vec::new()),
        };
        cluster.create()?;
        cluster.wait_ready()?;
        Ok(cluster)
    }

    fn create(&self) -> io::Result<()> {
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(self.members.iter().map(|m| format!("127.0.0.1:{}", m.port)));
        args.extend([
            "--cluster-replicas".to_owned(),
            self.options.replicas.to_string(),
            "--cluster-yes".to_owned(),
        ]);
        let (status, output) = self.run_cli(&args, CLI_TIMEOUT)?;
        if !status.success() || !output.contains("All 16384 slots covered") {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed ({status}):\n{output}{}",
                self.log_tails()
            )));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- getters

    /// The nodes, primaries first, each group by port, as of the last time
    /// the cluster was ready (the start, [`wait_ready`](Self::wait_ready)
    /// and every topology change of this type update it).
    #[must_use]
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes = self.topology().clone();
        nodes.sort_by_key(|n| (n.role, n.port));
        nodes
    }

    /// The primaries, by port.
    #[must_use]
    pub fn primaries(&self) -> Vec<Node> {
        self.nodes()
            .into_iter()
            .filter(|n| n.role == Role::Primary)
            .collect()
    }

    /// The replicas, by port.
    #[must_use]
    pub fn replicas(&self) -> Vec<Node> {
        self.nodes()
            .into_iter()
            .filter(|n| n.role == Role::Replica)
            .collect()
    }

    /// The replicas of the primary `primary_id`, by port.
    #[must_use]
    pub fn replicas_of(&self, primary_id: &str) -> Vec<Node> {
        self.nodes()
            .into_iter()
            .filter(|n| n.primary_id.as_deref() == Some(primary_id))
            .collect()
    }

    /// The node on `port`.
    ///
    /// # Panics
    ///
    /// When no node of this cluster has that port.
    #[must_use]
    pub fn node(&self, port: u16) -> Node {
        self.topology()
            .iter()
            .find(|n| n.port == port)
            .cloned()
            .unwrap_or_else(|| panic!("no node of this cluster on port {port}"))
    }

    /// The node with id `id`, if it is a member.
    #[must_use]
    pub fn node_by_id(&self, id: &str) -> Option<Node> {
        self.topology().iter().find(|n| n.id == id).cloned()
    }

    /// The primary serving `slot`.
    ///
    /// # Panics
    ///
    /// When `slot` is not below [`SLOTS`].
    #[must_use]
    pub fn node_for_slot(&self, slot: u16) -> Node {
        assert!(slot < SLOTS, "slot {slot} out of range");
        self.topology()
            .iter()
            .find(|n| n.serves(slot))
            .cloned()
            .expect("a ready cluster covers every slot")
    }

    /// The primary serving `key`'s slot.
    #[must_use]
    pub fn node_for_key(&self, key: &[u8]) -> Node {
        self.node_for_slot(key_slot(key))
    }

    /// Every node's client port, in start order (the order given to
    /// `redis-cli --cluster create`).
    #[must_use]
    pub fn ports(&self) -> Vec<u16> {
        self.members.iter().map(|m| m.port).collect()
    }

    /// `127.0.0.1:PORT` of every node, in start order.
    #[must_use]
    pub fn seed_addrs(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect()
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` for TLS) of every node, in
    /// start order.
    #[must_use]
    pub fn seed_urls(&self) -> Vec<String> {
        let scheme = if self.options.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        self.seed_addrs()
            .into_iter()
            .map(|addr| format!("{scheme}://{addr}"))
            .collect()
    }

    /// Whether the nodes also listen on `[::1]` (same ports).
    #[must_use]
    pub const fn ipv6(&self) -> bool {
        self.ipv6
    }

    /// The PKI of a TLS cluster.
    #[must_use]
    pub const fn pki(&self) -> Option<&Pki> {
        self.options.tls.as_ref()
    }

    /// The options the cluster was started with.
    #[must_use]
    pub const fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// The server process of the node on `port` (its log, pid, clients...).
    /// Hold the guard briefly: the cluster's own calls on that node wait
    /// for it.
    ///
    /// # Panics
    ///
    /// When no node of this cluster has that port.
    pub fn server(&self, port: u16) -> MutexGuard<'_, RedisServer> {
        self.member(port).server()
    }

    fn member(&self, port: u16) -> &Member {
        self.members
            .iter()
            .find(|m| m.port == port)
            .unwrap_or_else(|| panic!("no node of this cluster on port {port}"))
    }

    fn topology(&self) -> MutexGuard<'_, Vec<Node>> {
        self.topology.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // --------------------------------------------------------------- commands

    /// One command to the node on `port` over a fresh admin connection, as
    /// [`RedisServer::cmd`]; error replies are returned as frames.
    ///
    /// # Errors
    ///
    /// Connection and protocol failures.
    ///
    /// # Panics
    ///
    /// When no node of this cluster has that port.
    pub fn cmd(&self, port: u16, args: &[&str]) -> io::Result<Frame> {
        self.server(port).cmd(args)
    }

    /// [`cmd`](Self::cmd) for a string or integer reply, as text.
    ///
    /// # Errors
    ///
    /// As [`cmd`](Self::cmd); also an error reply.
    ///
    /// # Panics
    ///
    /// When no node of this cluster has that port.
    pub fn cmd_text(&self, port: u16, args: &[&str]) -> io::Result<String> {
        self.server(port).cmd_text(args)
    }

    /// A new connection of its own to the node on `port` (over `127.0.0.1`,
    /// TLS for a TLS cluster), that sends exactly what it is given: no
    /// `ASKING`, no redirect following.
    ///
    /// # Errors
    ///
    /// Connection failures.
    pub fn connect(&self, port: u16) -> io::Result<RawConn> {
        RawConn::connect(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            self.options.tls.as_ref(),
        )
    }

    /// A connection named like the testkit's admin connections.
    fn admin(&self, port: u16) -> io::Result<RawConn> {
        let mut conn = self.connect(port)?;
        expect_ok(
            &conn.cmd(&["CLIENT", "SETNAME", ADMIN_NAME])?,
            "CLIENT SETNAME",
        )?;
        Ok(conn)
    }

    /// The `MOVED` and `ASK` replies the node on `port` has sent.
    ///
    /// # Errors
    ///
    /// As [`cmd_text`](Self::cmd_text).
    ///
    /// # Panics
    ///
    /// When no node of this cluster has that port.
    pub fn errorstats(&self, port: u16) -> io::Result<Redirects> {
        let info = self.cmd_text(port, &["INFO", "errorstats"])?;
        let count = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix(":count="))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(Redirects {
            moved: count("errorstat_MOVED"),
            ask: count("errorstat_ASK"),
        })
    }

    /// The sum of [`errorstats`](Self::errorstats) over every node.
    ///
    /// # Errors
    ///
    /// As [`errorstats`](Self::errorstats).
    pub fn total_redirects(&self) -> io::Result<Redirects> {
        self.members
            .iter()
            .try_fold(Redirects::default(), |sum, m| {
                Ok(sum + self.errorstats(m.port)?)
            })
    }

    /// `CONFIG RESETSTAT` on every node: error counts start from 0.
    ///
    /// # Errors
    ///
    /// As [`cmd`](Self::cmd); also an error reply.
    pub fn reset_stats(&self) -> io::Result<()> {
        for member in &self.members {
            expect_ok(
                &self.cmd(member.port, &["CONFIG", "RESETSTAT"])?,
                "RESETSTAT",
            )?;
        }
        Ok(())
    }

    // -------------------------------------------------------------- readiness

    /// Waits until the cluster is ready (see the module docs), within the
    /// ready timeout, and updates [`nodes`](Self::nodes).
    ///
    /// # Errors
    ///
    /// `TimedOut`, saying which condition was last unmet and quoting each
    /// node's log; a stopped node fails at once.
    pub fn wait_ready(&self) -> io::Result<()> {
        self.wait_ready_within(self.options.ready_timeout)
    }

    /// Waits until no primary's `CLUSTER SHARDS` calls a replica `loading`.
    /// A young cluster reports its replicas `loading` until their
    /// replication offsets have been gossiped, and a client reading from
    /// replicas rightly skips those: call this before testing replica
    /// reads.
    ///
    /// # Errors
    ///
    /// A command that fails, or replicas still `loading` after `timeout`.
    pub fn wait_replicas_online(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut loading = false;
            for node in self.primaries() {
                let shards = self.cmd(node.port, &["CLUSTER", "SHARDS"])?;
                loading |= format!("{shards:?}").contains("b\"loading\"");
            }
            if !loading {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "replicas still loading",
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`wait_ready`](Self::wait_ready) with a timeout of its own.
    ///
    /// # Errors
    ///
    /// As [`wait_ready`](Self::wait_ready).
    pub fn wait_ready_within(&self, timeout: Duration) -> io::Result<()> {
        self.wait_until(timeout, "ready", |_| true)
    }

    /// Waits until the cluster is ready and `done` holds for its table.
    fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Node]) -> bool,
    ) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.observe() {
                Ok(nodes) if !done(&nodes) => format!("not {what} yet: {nodes:?}"),
                Ok(nodes) => match self.cli_check() {
                    Ok(()) => {
                        *self.topology() = nodes;
                        return Ok(());
                    }
                    Err(e) => e,
                },
                Err(Unready::Stopped(port)) => {
                    return Err(io::Error::other(format!(
                        "node :{port} is stopped: the cluster cannot be {what}"
                    )));
                }
                Err(Unready::Not(why)) => why,
            };
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "cluster not {what} after {timeout:?}; last: {last}{}",
                        self.log_tails()
                    ),
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// One look at every node: the agreed table, or why it is not ready.
    fn observe(&self) -> Result<Vec<Node>, Unready> {
        let ids: BTreeMap<&str, u16> = self
            .members
            .iter()
            .map(|m| (m.id.as_str(), m.port))
            .collect();
        let mut agreed: Option<(u16, Vec<Node>)> = None;
        let mut links = Vec::with_capacity(self.members.len());
        for member in &self.members {
            let port = member.port;
            if !member.server().is_running() {
                return Err(Unready::Stopped(port));
            }
            let not = |why: String| Unready::Not(format!("node :{port}: {why}"));
            let replies = self
                .admin(port)
                .and_then(|mut conn| {
                    conn.pipeline(&[
                        &["CLUSTER", "INFO"][..],
                        &["INFO", "replication"][..],
                        &["CLUSTER", "NODES"][..],
                    ])
                })
                .map_err(|e| not(e.to_string()))?;
            let texts = replies
                .iter()
                .map(frame_text)
                .collect::<io::Result<Vec<_>>>()
                .map_err(|e| not(e.to_string()))?;
            let (cluster, replication, table) = (&texts[0], &texts[1], &texts[2]);
            let members = self.members.len().to_string();
            for (field, want) in [
                ("cluster_state", "ok"),
                ("cluster_slots_assigned", "16384"),
                ("cluster_slots_ok", "16384"),
                ("cluster_known_nodes", members.as_str()),
            ] {
                let got = info_field(cluster, field);
                if got != Some(want) {
                    return Err(not(format!("{field} is {got:?}, not {want}")));
                }
            }
            let nodes = parse_nodes(table, &ids).map_err(not)?;
            links.push((port, replication.clone()));
            match &agreed {
                None => agreed = Some((port, nodes)),
                Some((first, seen)) if *seen != nodes => {
                    return Err(not(format!(
                        "sees {nodes:?}, but node :{first} sees {seen:?}"
                    )));
                }
                Some(_) => {}
            }
        }
        let (_, nodes) = agreed.expect("a cluster has members");
        for (port, replication) in &links {
            let node = nodes.iter().find(|n| n.port == *port).expect("a member");
            let replicas = nodes
                .iter()
                .filter(|n| n.primary_id.as_ref() == Some(&node.id))
                .count()
                .to_string();
            let (field, want) = match node.role {
                Role::Replica => ("master_link_status", "up"),
                Role::Primary => ("connected_slaves", replicas.as_str()),
            };
            let got = info_field(replication, field);
            if got != Some(want) {
                return Err(Unready::Not(format!(
                    "node :{port}: {field} is {got:?}, not {want}"
                )));
            }
        }
        Ok(nodes)
    }

    /// `redis-cli --cluster check`: `Err` with the reason when not clean.
    fn cli_check(&self) -> Result<(), String> {
        let args = [
            "--cluster".to_owned(),
            "check".to_owned(),
            format!("127.0.0.1:{}", self.members[0].port),
        ];
        let (_, output) = self
            .run_cli(&args, CLI_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let clean = output.contains("All nodes agree about slots configuration")
            && output.contains("All 16384 slots covered")
            && !output.contains("[WARNING]")
            && !output.contains("[ERR]");
        if clean {
            Ok(())
        } else {
            Err(format!("redis-cli --cluster check:\n{output}"))
        }
    }

    /// Runs `redis-cli` (with the TLS options of a TLS cluster); its exit
    /// status and its stdout and stderr, without colour codes. A run that
    /// takes longer than `timeout` is killed.
    fn run_cli(&self, args: &[String], timeout: Duration) -> io::Result<(ExitStatus, String)> {
        let cli = self
            .options
            .cli
            .clone()
            .or_else(|| std::env::var_os("REDPOLL_REDIS_CLI").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("redis-cli"));
        let mut command = Command::new(&cli);
        if self.options.tls.is_some() {
            let ca = self.members[0].server().dir().join("ca.crt");
            command.arg("--tls").arg("--cacert").arg(ca);
        }
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", cli.display())))?;
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            thread::spawn(move || {
                let mut text = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut text);
                }
                text
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Ok(status);
            }
            if Instant::now() >= deadline {
                // Our own child, by its pid.
                let _ = child.kill();
                let _ = child.wait();
                break Err(());
            }
            thread::sleep(Duration::from_millis(20));
        };
        let mut bytes = stdout.join().unwrap_or_default();
        bytes.extend(stderr.join().unwrap_or_default());
        let output = strip_ansi(&String::from_utf8_lossy(&bytes));
        match status {
            Ok(status) => Ok((status, output)),
            Err(()) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "redis-cli {} took more than {timeout:?}:\n{output}",
                    args.join(" ")
                ),
            )),
        }
    }

    /// The tail of every node's log, for error messages.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for member in &self.members {
            let server = member.server();
            let _ = write!(
                out,
                "\n--- node :{} {} (pid {}, {}) redis.log (tail) ---\n{}",
                member.port,
                member.id,
                server.pid(),
                server.dir().display(),
                server.log_tail(TAIL_LINES)
            );
        }
        out
    }

    // ------------------------------------------------------- topology changes

    /// Moves `slot` from the primary on `from` to the primary on `to` the
    /// way `redis-cli` does, step by step: `CLUSTER SETSLOT IMPORTING` on
    /// the target, `MIGRATING` on the source, then the keys in batches
    /// (`CLUSTER GETKEYSINSLOT` + `MIGRATE`), and [`Migration::finish`].
    /// Returns at once after the two `SETSLOT`s: from then on, the source
    /// answers `-ASK` for the keys already moved and for new keys.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when `from` does not serve `slot` or `to` is not
    /// another primary; an error reply to a `SETSLOT`.
    ///
    /// # Panics
    ///
    /// When a port is not a node of this cluster.
    pub fn begin_migration(&self, slot: u16, from: u16, to: u16) -> io::Result<Migration<'_>> {
        let source = self.node(from);
        let target = self.node(to);
        if !source.serves(slot) || target.role != Role::Primary || from == to {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot migrate slot {slot} from {source:?} to {target:?}"),
            ));
        }
        let slot_arg = slot.to_string();
        let mut target_conn = self.admin(to)?;
        let mut source_conn = self.admin(from)?;
        expect_ok(
            &target_conn.cmd(&["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &source.id])?,
            "CLUSTER SETSLOT IMPORTING",
        )?;
        expect_ok(
            &source_conn.cmd(&["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &target.id])?,
            "CLUSTER SETSLOT MIGRATING",
        )?;
        Ok(Migration {
            cluster: self,
            slot,
            from,
            to,
            to_id: target.id,
            source: source_conn,
            moved: 0,
        })
    }

    /// [`begin_migration`](Self::begin_migration) then
    /// [`finish`](Migration::finish): the number of keys moved.
    ///
    /// # Errors
    ///
    /// As those two.
    pub fn migrate_slot(&self, slot: u16, from: u16, to: u16) -> io::Result<usize> {
        self.begin_migration(slot, from, to)?.finish()
    }

    /// `redis-cli --cluster reshard`: moves `count` slots from the primary
    /// on `from` to the primary on `to`, then waits until ready.
    ///
    /// # Errors
    ///
    /// A failing `redis-cli` (its output is quoted), or a cluster not ready
    /// afterwards.
    ///
    /// # Panics
    ///
    /// When a port is not a node of this cluster.
    pub fn reshard(&self, count: usize, from: u16, to: u16) -> io::Result<()> {
        let source = self.node(from);
        let target = self.node(to);
        let args = [
            "--cluster".to_owned(),
            "reshard".to_owned(),
            source.addr(),
            "--cluster-from".to_owned(),
            source.id,
            "--cluster-to".to_owned(),
            target.id,
            "--cluster-slots".to_owned(),
            count.to_string(),
            "--cluster-yes".to_owned(),
        ];
        let (status, output) = self.run_cli(&args, RESHARD_TIMEOUT)?;
        if !status.success() || output.contains("[ERR]") {
            return Err(io::Error::other(format!(
                "redis-cli --cluster reshard failed ({status}):\n{output}"
            )));
        }
        self.wait_ready()
    }

    /// A manual failover: `CLUSTER FAILOVER` on the replica on `replica`
    /// (sent again if the roles have not swapped after 8 s), then waits
    /// until every node sees it as the primary and its old primary as its
    /// replica, and the cluster is ready.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the node is not a replica; an error reply to
    /// `CLUSTER FAILOVER`; a failover not done within the ready timeout.
    ///
    /// # Panics
    ///
    /// When `replica` is not a node of this cluster.
    pub fn failover(&self, replica: u16) -> io::Result<()> {
        let node = self.node(replica);
        let Some(old_primary) = node.primary_id.clone() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("node :{replica} is not a replica: {node:?}"),
            ));
        };
        let deadline = Instant::now() + self.options.ready_timeout;
        loop {
            expect_ok(
                &self.cmd(replica, &["CLUSTER", "FAILOVER"])?,
                "CLUSTER FAILOVER",
            )?;
            let retry = Instant::now() + FAILOVER_RETRY;
            while Instant::now() < retry.min(deadline) && !self.is_primary(replica) {
                thread::sleep(POLL);
            }
            if self.is_primary(replica) || Instant::now() >= deadline {
                break;
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.wait_until(remaining, "failed over", |nodes| {
            let role_of = |id: &str| nodes.iter().find(|n| n.id == id).map(|n| n.role);
            role_of(&node.id) == Some(Role::Primary)
                && nodes
                    .iter()
                    .any(|n| n.id == old_primary && n.primary_id.as_ref() == Some(&node.id))
        })
    }

    /// Whether the node on `port` sees itself as a primary.
    fn is_primary(&self, port: u16) -> bool {
        self.cmd_text(port, &["CLUSTER", "NODES"])
            .is_ok_and(|table| {
                table
                    .lines()
                    .filter_map(|line| line.split(' ').nth(2))
                    .find(|flags| flags.split(',').any(|f| f == "myself"))
                    .is_some_and(|flags| flags.split(',').any(|f| f == "master"))
            })
    }

    /// Kills the node on `port` (`SIGKILL`, by pid). The cluster is not
    /// ready until it is [restarted](Self::restart_node); with a short
    /// node timeout, the replica of a killed primary takes over on its own.
    ///
    /// # Panics
    ///
    /// When `port` is not a node of this cluster.
    pub fn stop_node(&self, port: u16) {
        self.server(port).stop();
    }

    /// Restarts the node on `port` (stopping it first if it runs) on the
    /// same ports and with its `nodes.conf`, so it rejoins with its id and
    /// role; then waits until the cluster is ready. Nothing is persisted:
    /// a restarted primary comes back empty (and its replicas follow it)
    /// unless a replica took over meanwhile.
    ///
    /// # Errors
    ///
    /// As [`RedisServer::restart`] and [`wait_ready`](Self::wait_ready).
    ///
    /// # Panics
    ///
    /// When `port` is not a node of this cluster.
    pub fn restart_node(&self, port: u16) -> io::Result<()> {
        self.server(port).restart()?;
        self.wait_ready()
    }
}

/// Why [`Cluster::observe`] did not see a ready cluster.
enum Unready {
    /// The node on this port is stopped: waiting will not help.
    Stopped(u16),
    /// Some condition is not met (yet).
    Not(String),
}

fn start_member(options: &ClusterOptions, bind: &[IpAddr]) -> io::Result<Member> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let bus_port = pick_bus_port(bind)?;
        match RedisServer::start(options.server_options(bind, bus_port)) {
            Ok(server) => {
                let id = match server.cmd_text(&["CLUSTER", "MYID"]) {
                    Ok(id) => id,
                    Err(e) => {
                        drop(server);
                        bus_ports().remove(&bus_port);
                        return Err(e);
                    }
                };
                return Ok(Member {
                    port: server.port(),
                    bus_port,
                    id,
                    server: Mutex::new(server),
                });
            }
            Err(e) => {
                bus_ports().remove(&bus_port);
                if e.kind() != io::ErrorKind::AddrInUse || attempt >= MAX_ATTEMPTS {
                    return Err(e);
                }
            }
        }
    }
}

/// A field of an `INFO` section.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The table of `CLUSTER NODES`, sorted, checked: every member listed once
/// under its id, connected and healthy, no open slot.
fn parse_nodes(table: &str, ids: &BTreeMap<&str, u16>) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 8 {
            return Err(format!("short CLUSTER NODES line {line:?}"));
        }
        let (id, addr, flags, primary, link) =
            (fields[0], fields[1], fields[2], fields[3], fields[7]);
        let Some(&port) = ids.get(id) else {
            return Err(format!("an unknown node in CLUSTER NODES: {line:?}"));
        };
        let announced = addr
            .split(['@', ','])
            .next()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok());
        if announced != Some(port) {
            return Err(format!("node {id} announces {addr}, not port {port}"));
        }
        let flags: Vec<&str> = flags.split(',').collect();
        if let Some(bad) = flags
            .iter()
            .find(|f| matches!(**f, "fail" | "fail?" | "handshake" | "noaddr"))
        {
            return Err(format!("node :{port} is flagged {bad}"));
        }
        if link != "connected" {
            return Err(format!("node :{port} is {link}"));
        }
        let role = if flags.contains(&"master") {
            Role::Primary
        } else if flags.contains(&"slave") {
            Role::Replica
        } else {
            return Err(format!("node :{port} has no role: {line:?}"));
        };
        let mut slots = Vec::new();
        for field in &fields[8..] {
            if field.starts_with('[') {
                return Err(format!("node :{port} has an open slot {field}"));
            }
            let range = match field.split_once('-') {
                Some((a, b)) => a.parse().ok().zip(b.parse().ok()),
                None => field.parse().ok().map(|s| (s, s)),
            };
            let Some((start, end)) = range else {
                return Err(format!("a bad slot range {field:?} in {line:?}"));
            };
            slots.push(start..=end);
        }
        slots.sort_by_key(|r| *r.start());
        nodes.push(Node {
            port,
            id: id.to_owned(),
            role,
            primary_id: (role == Role::Replica && primary != "-").then(|| primary.to_owned()),
            slots,
        });
    }
    if nodes.len() != ids.len() {
        return Err(format!("{} nodes listed, not {}", nodes.len(), ids.len()));
    }
    nodes.sort_by_key(|n| n.port);
    Ok(nodes)
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The text of a string-like or integer reply; an error reply is an error.
fn frame_text(frame: &Frame) -> io::Result<String> {
    match frame.without_attributes() {
        Frame::Simple(b)
        | Frame::Bulk(b)
        | Frame::BigNumber(b)
        | Frame::Verbatim { text: b, .. } => Ok(String::from_utf8_lossy(b).into_owned()),
        Frame::Integer(i) => Ok(i.to_string()),
        Frame::Error(b) | Frame::BulkError(b) => Err(io::Error::other(format!(
            "the server replied with an error: {}",
            String::from_utf8_lossy(b)
        ))),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a text reply: {other:?}"),
        )),
    }
}

/// `Ok` for `+OK`, else an error naming `what`.
fn expect_ok(frame: &Frame, what: &str) -> io::Result<()> {
    match frame.without_attributes() {
        Frame::Simple(b) if &b[..] == b"OK" => Ok(()),
        other => Err(io::Error::other(format!("{what} answered {other:?}"))),
    }
}

/// A slot being moved between two primaries, one step at a time, so that
/// a test can run load (and see `-ASK`) between the steps. Made by
/// [`Cluster::begin_migration`].
///
/// Dropped without [`finish`](Self::finish), it leaves the slot open
/// (`MIGRATING` / `IMPORTING`) and the cluster not ready.
#[derive(Debug)]
#[must_use = "a migration left unfinished keeps its slot open"]
pub struct Migration<'a> {
    cluster: &'a Cluster,
    slot: u16,
    from: u16,
    to: u16,
    to_id: String,
    source: RawConn,
    moved: usize,
}

impl Migration<'_> {
    /// The slot being moved.
    #[must_use]
    pub const fn slot(&self) -> u16 {
        self.slot
    }

    /// The source primary's port.
    #[must_use]
    pub const fn from(&self) -> u16 {
        self.from
    }

    /// The target primary's port.
    #[must_use]
    pub const fn to(&self) -> u16 {
        self.to
    }

    /// The keys moved so far.
    #[must_use]
    pub const fn moved(&self) -> usize {
        self.moved
    }

    /// The keys of the slot still on the source (`CLUSTER
    /// COUNTKEYSINSLOT`).
    ///
    /// # Errors
    ///
    /// Connection failures, an error reply.
    pub fn keys_left(&mut self) -> io::Result<usize> {
        let slot = self.slot.to_string();
        let count = frame_text(&self.source.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &slot])?)?;
        count.parse().map_err(io::Error::other)
    }

    /// Moves up to `n` keys of the slot to the target (`CLUSTER
    /// GETKEYSINSLOT` + one `MIGRATE ... KEYS`); the number moved, 0 once
    /// the source holds no key of the slot.
    ///
    /// # Errors
    ///
    /// Connection failures, an error reply (such as `BUSYKEY` when the
    /// target already has one of the keys).
    pub fn move_keys(&mut self, n: usize) -> io::Result<usize> {
        let slot = self.slot.to_string();
        let count = n.to_string();
        let reply =
            self.source
                .cmd(&["CLUSTER", "GETKEYSINSLOT", slot.as_str(), count.as_str()])?;
        let keys: Vec<bytes::Bytes> = match reply.without_attributes() {
            Frame::Array(items) => items
                .iter()
                .map(|item| match item.without_attributes() {
                    Frame::Bulk(key) => Ok(key.clone()),
                    other => Err(io::Error::other(format!("GETKEYSINSLOT gave {other:?}"))),
                })
                .collect::<io::Result<_>>()?,
            other => {
                return Err(io::Error::other(format!(
                    "CLUSTER GETKEYSINSLOT answered {other:?}"
                )));
            }
        };
        if keys.is_empty() {
            return Ok(0);
        }
        let port = self.to.to_string();
        let mut args: Vec<&[u8]> = vec![
            &b"MIGRATE"[..],
            &b"127.0.0.1"[..],
            port.as_bytes(),
            &b""[..],
            &b"0"[..],
            MIGRATE_TIMEOUT_MS.as_bytes(),
            &b"KEYS"[..],
        ];
        args.extend(keys.iter().map(|k| &k[..]));
        match self.source.cmd(&args)?.without_attributes() {
            // NOKEY: every key expired or was deleted meanwhile.
            Frame::Simple(b) if &b[..] == b"OK" || &b[..] == b"NOKEY" => {}
            other => return Err(io::Error::other(format!("MIGRATE answered {other:?}"))),
        }
        self.moved += keys.len();
        Ok(keys.len())
    }

    /// Moves the keys left, assigns the slot to the target (`CLUSTER
    /// SETSLOT NODE` on the target, the source, then the other primaries),
    /// and waits until the cluster is ready; the number of keys moved by
    /// this migration in all.
    ///
    /// # Errors
    ///
    /// As [`move_keys`](Self::move_keys), an error reply to a `SETSLOT`,
    /// or a cluster not ready afterwards.
    pub fn finish(mut self) -> io::Result<usize> {
        let slot = self.slot.to_string();
        let to_id = self.to_id.clone();
        let assign = ["CLUSTER", "SETSLOT", slot.as_str(), "NODE", to_id.as_str()];
        // Drained first: once the target owns the slot, it answers for
        // every key of it. Nothing refills the source meanwhile: it sends
        // new keys to the target by -ASK.
        while self.move_keys(MIGRATE_BATCH)? > 0 {}
        expect_ok(
            &self.cluster.admin(self.to)?.cmd(&assign)?,
            "SETSLOT NODE (target)",
        )?;
        expect_ok(&self.source.cmd(&assign)?, "SETSLOT NODE (source)")?;
        for primary in self.cluster.primaries() {
            if primary.port != self.from && primary.port != self.to {
                expect_ok(
                    &self.cluster.admin(primary.port)?.cmd(&assign)?,
                    "SETSLOT NODE (other primary)",
                )?;
            }
        }
        let (slot, to) = (self.slot, self.to);
        self.cluster
            .wait_until(self.cluster.options.ready_timeout, "migrated", |nodes| {
                nodes.iter().any(|n| n.port == to && n.serves(slot))
            })?;
        Ok(self.moved)
    }
}

/// A plain blocking RESP connection to one node (TCP, or TLS verified
/// against the test CA), sending exactly what it is given. For tests that
/// look at raw replies such as `-ASK` and `-MOVED`.
pub struct RawConn {
    stream: Stream,
    decoder: Decoder,
    inbox: BytesMut,
    addr: SocketAddr,
}

impl core::fmt::Debug for RawConn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawConn")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl RawConn {
    /// Connects to `addr`, over TLS with `pki`'s CA (no client certificate)
    /// when given; 10 s connect, read and write timeouts.
    ///
    /// # Errors
    ///
    /// Connection and TLS setup failures.
    pub fn connect(addr: SocketAddr, tls: Option<&Pki>) -> io::Result<Self> {
        let tcp = TcpStream::connect_timeout(&addr, CONN_TIMEOUT)?;
        tcp.set_read_timeout(Some(CONN_TIMEOUT))?;
        tcp.set_write_timeout(Some(CONN_TIMEOUT))?;
        tcp.set_nodelay(true)?;
        let stream = match tls {
            None => Stream::Tcp(tcp),
            Some(pki) => {
                let conn = rustls::ClientConnection::new(
                    pki.client_config(false),
                    ServerName::from(addr.ip()),
                )
                .map_err(io::Error::other)?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
        };
        Ok(Self {
            stream,
            decoder: Decoder::new(),
            inbox: BytesMut::new(),
            addr,
        })
    }

    /// The address connected to.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one command and reads its reply; an error reply is a frame.
    ///
    /// # Errors
    ///
    /// Connection and protocol failures.
    pub fn cmd<A: ToArg>(&mut self, args: &[A]) -> io::Result<Frame> {
        Ok(self.pipeline(&[args])?.remove(0))
    }

    /// Sends the commands in one write and reads their replies in order.
    ///
    /// # Errors
    ///
    /// Connection and protocol failures.
    pub fn pipeline<A: ToArg, C: AsRef<[A]>>(&mut self, commands: &[C]) -> io::Result<Vec<Frame>> {
        let mut out = BytesMut::new();
        for command in commands {
            encode_command(&mut out, command.as_ref());
        }
        self.write_all(&out)?;
        (0..commands.len()).map(|_| self.read_reply()).collect()
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Tcp(s) => s.write_all(bytes).and_then(|()| s.flush()),
            Stream::Tls(s) => s.write_all(bytes).and_then(|()| s.flush()),
        }
    }

    fn read_reply(&mut self) -> io::Result<Frame> {
        let mut chunk = [0; 16 * 1024];
        loop {
            if let Some(frame) = self
                .decoder
                .decode(&mut self.inbox)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            {
                return Ok(frame);
            }
            let n = match &mut self.stream {
                Stream::Tcp(s) => s.read(&mut chunk)?,
                Stream::Tls(s) => s.read(&mut chunk)?,
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            self.inbox.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_by_the_spec() {
        // The spec's test vector: CRC16("123456789") = 0x31C3.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"123456789"), 0x31C3 & 0x3FFF);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") & 0x3FFF);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        for slot in [0, 1, 5460, 5461, 16383] {
            let tag = hash_tag_for_slot(slot);
            assert_eq!(key_slot(format!("{{{tag}}}:x").as_bytes()), slot);
        }
    }

    #[test]
    fn cluster_nodes_table() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let ids: BTreeMap<&str, u16> = [(a.as_str(), 7000), (b.as_str(), 7001)].into();
        let table = format!(
            "{a} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 5461-16383 0-5460\n\
             {b} 127.0.0.1:7001@17001,host slave {a} 0 1 1 connected\n"
        );
        let nodes = parse_nodes(&table, &ids).unwrap();
        assert_eq!(nodes[0].slots, vec![0..=5460, 5461..=16383]);
        assert_eq!(nodes[0].slot_count(), 16384);
        assert_eq!(nodes[1].primary_id.as_deref(), Some(a.as_str()));
        let open = table.replace("0-5460", "0-5460 [5->-bbbb]");
        assert!(parse_nodes(&open, &ids).unwrap_err().contains("open slot"));
        let failing = table.replace("slave", "slave,fail?");
        assert!(parse_nodes(&failing, &ids).unwrap_err().contains("fail?"));
        assert_eq!(
            info_field("# Cluster\r\ncluster_state:ok\r\n", "cluster_state"),
            Some("ok")
        );
        assert_eq!(strip_ansi("\u{1b}[32;1m[OK] x\u{1b}[0m"), "[OK] x");
    }
}
