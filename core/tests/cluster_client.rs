//! The cluster machine on a virtual clock against simulated cluster nodes:
//! slot routing, every redirect case (a `MOVED` to a node outside the
//! topology, an `ASK` during a migration, a `MOVED` while a refresh is
//! pending, a refresh that removes the node a request waits on), waits,
//! the redirect limit, node identity across seed spellings (I4), and the
//! socket accounting of every test (I1).
//!
//! The harness: each `Connect`'s address (its port; any spelling of the
//! host) decides which simulated node answers. Every node is a testkit
//! [`Peer`] per connection whose handler reads one shared [`Sim`]: who owns
//! each slot, which slots migrate, the nodes' data.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use bytes::Bytes;
use redpoll_core::cluster::{
    ClusterClient, ClusterConfig, ClusterFailure, ClusterScan, InFlight, NodeKey, NodeKeys, slot,
};
use redpoll_core::conn::ConnConfig;
use redpoll_core::resp::Frame;
use redpoll_core::{
    Address, ClientConfig, CloseReason, Duration, Effect, Error, Event, Instant, IoError,
    RequestId, SocketId,
};
use redpoll_testkit::peer::{Answer, Peer};

// ---- the simulated cluster ------------------------------------------------

/// One node of the simulated cluster.
struct SimNode {
    id: String,
    data: HashMap<Bytes, Bytes>,
    /// Accepts connections.
    up: bool,
    /// Announced in `CLUSTER SHARDS` / `SLOTS`.
    member: bool,
    /// A replica of this primary (announced in its shard; `member` false).
    replica_of: Option<u16>,
    /// Announced with health `fail`.
    failed: bool,
    /// The SHA-1s of the scripts it has.
    scripts: BTreeSet<String>,
}

/// The shared state every simulated connection answers from.
#[derive(Default)]
struct Sim {
    nodes: BTreeMap<u16, SimNode>,
    /// The port serving each slot.
    owner: Vec<u16>,
    /// Slot → the port it migrates to (the owner answers `ASK` for keys it
    /// does not hold; the target serves them after `ASKING`).
    migrating: BTreeMap<u16, u16>,
    /// Key commands answered `TRYAGAIN` before any is served.
    tryagain: u32,
    /// Key commands answered `CLUSTERDOWN` before any is served.
    clusterdown: u32,
    /// `CLUSTER SHARDS` is unknown (a Redis 6 server).
    no_shards: bool,
    /// Every key command is answered `MOVED` to the next node.
    bounce: bool,
    /// `SCRIPT LOAD` answers a different SHA on each node.
    scripts_disagree: bool,
    /// This node refuses `CONFIG SET`.
    config_refused: Option<u16>,
    /// Key commands on these keys answer `WRONGTYPE`.
    wrong_type: BTreeSet<Bytes>,
    /// Every command (handshake aside): port, connection number, arguments.
    log: Vec<(u16, u64, Vec<String>)>,
}

const PORTS: [u16; 3] = [7000, 7001, 7002];

fn bulk(s: impl Into<Bytes>) -> Frame {
    Frame::Bulk(s.into())
}

fn simple(s: &'static str) -> Frame {
    Frame::Simple(Bytes::from_static(s.as_bytes()))
}

fn error(s: String) -> Answer {
    Answer::Reply(Frame::Error(Bytes::from(s)))
}

impl Sim {
    /// Three primaries on 7000-7002, the slots in thirds, and a spare node
    /// on 7003 that is up but not part of the cluster.
    fn three() -> Self {
        let mut sim = Self::default();
        for port in [7000, 7001, 7002, 7003] {
            sim.nodes.insert(
                port,
                SimNode {
                    id: format!("{port:040x}"),
                    data: HashMap::new(),
                    up: true,
                    member: port != 7003,
                    replica_of: None,
                    failed: false,
                    scripts: BTreeSet::new(),
                },
            );
        }
        sim.owner = (0..16384u32)
            .map(|s| match s {
                0..=5460 => 7000,
                5461..=10922 => 7001,
                _ => 7002,
            })
            .collect();
        sim
    }

    /// [`Sim::three`] with a replica of each primary: 7100 of 7000, ...
    fn with_replicas() -> Self {
        let mut sim = Self::three();
        for primary in PORTS {
            let port = primary + 100;
            sim.nodes.insert(
                port,
                SimNode {
                    id: format!("{port:040x}"),
                    data: HashMap::new(),
                    up: true,
                    member: false,
                    replica_of: Some(primary),
                    failed: false,
                    scripts: BTreeSet::new(),
                },
            );
        }
        sim
    }

    fn ranges(&self, port: u16) -> Vec<(i64, i64)> {
        let mut ranges = Vec::new();
        let mut s = 0;
        while s < self.owner.len() {
            if self.owner[s] == port {
                let start = s;
                while s < self.owner.len() && self.owner[s] == port {
                    s += 1;
                }
                ranges.push((start as i64, s as i64 - 1));
            } else {
                s += 1;
            }
        }
        ranges
    }

    fn shards(&self) -> Frame {
        let shards = self
            .nodes
            .iter()
            .filter(|(_, n)| n.member)
            .map(|(&port, node)| {
                let slots = self
                    .ranges(port)
                    .into_iter()
                    .flat_map(|(a, b)| [Frame::Integer(a), Frame::Integer(b)])
                    .collect();
                let describe = |port: u16, node: &SimNode, role: &'static str| {
                    let health = if node.failed { "fail" } else { "online" };
                    Frame::Map(vec![
                        (bulk("id"), bulk(node.id.clone())),
                        (bulk("port"), Frame::Integer(i64::from(port))),
                        (bulk("ip"), bulk("127.0.0.1")),
                        (bulk("endpoint"), bulk("127.0.0.1")),
                        (bulk("role"), bulk(role)),
                        (bulk("replication-offset"), Frame::Integer(0)),
                        (bulk("health"), bulk(health)),
                    ])
                };
                let mut nodes = vec![describe(port, node, "master")];
                for (&r, replica) in &self.nodes {
                    if replica.replica_of == Some(port) {
                        nodes.push(describe(r, replica, "replica"));
                    }
                }
                Frame::Map(vec![
                    (bulk("slots"), Frame::Array(slots)),
                    (bulk("nodes"), Frame::Array(nodes)),
                ])
            })
            .collect();
        Frame::Array(shards)
    }

    fn slots(&self) -> Frame {
        let mut out = Vec::new();
        for (&port, node) in self.nodes.iter().filter(|(_, n)| n.member) {
            for (a, b) in self.ranges(port) {
                out.push(Frame::Array(vec![
                    Frame::Integer(a),
                    Frame::Integer(b),
                    Frame::Array(vec![
                        bulk("127.0.0.1"),
                        Frame::Integer(i64::from(port)),
                        bulk(node.id.clone()),
                    ]),
                ]));
            }
        }
        Frame::Array(out)
    }

    /// Moves every slot of `from` to `to` (a completed resharding).
    fn move_all(&mut self, from: u16, to: u16) {
        for owner in &mut self.owner {
            if *owner == from {
                *owner = to;
            }
        }
    }

    fn next_port(&self, port: u16) -> u16 {
        let members: Vec<u16> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.member)
            .map(|(&p, _)| p)
            .collect();
        let at = members.iter().position(|&p| p == port).unwrap_or(0);
        members[(at + 1) % members.len()]
    }

    /// The answer of node `port` on connection `conn`.
    fn answer(
        &mut self,
        port: u16,
        conn: u64,
        asking: &mut bool,
        readonly: &mut bool,
        args: &[Bytes],
    ) -> Option<Answer> {
        let words: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let name = words[0].to_ascii_uppercase();
        if matches!(name.as_str(), "HELLO" | "CLIENT") {
            return None;
        }
        self.log.push((port, conn, words.clone()));
        let was_asking = std::mem::take(asking);
        match name.as_str() {
            "ASKING" => {
                *asking = true;
                Some(Answer::Reply(simple("OK")))
            }
            "READONLY" => {
                *readonly = true;
                Some(Answer::Reply(simple("OK")))
            }
            "PING" => Some(Answer::Reply(simple("PONG"))),
            "CLUSTER" => Some(match words[1].to_ascii_uppercase().as_str() {
                "SHARDS" if self.no_shards => {
                    error("ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP.".into())
                }
                "SHARDS" => Answer::Reply(self.shards()),
                "SLOTS" => Answer::Reply(self.slots()),
                "MYID" => Answer::Reply(bulk(self.nodes[&port].id.clone())),
                other => error(format!("ERR unknown subcommand '{other}'")),
            }),
            "GET" | "SET" | "MGET" | "MSET" | "DEL" | "UNLINK" | "EXISTS" | "TOUCH" => {
                let keys: Vec<Bytes> = match name.as_str() {
                    "SET" => vec![args[1].clone()],
                    "MSET" => args[1..].iter().step_by(2).cloned().collect(),
                    _ => args[1..].to_vec(),
                };
                let slots: BTreeSet<u16> = keys.iter().map(|k| slot(k)).collect();
                if slots.len() > 1 {
                    return Some(error(
                        "CROSSSLOT Keys in request don't hash to the same slot".into(),
                    ));
                }
                let slot = slot(&keys[0]);
                if self.tryagain > 0 {
                    self.tryagain -= 1;
                    return Some(error(
                        "TRYAGAIN Multiple keys request during rehashing of slot".into(),
                    ));
                }
                if self.clusterdown > 0 {
                    self.clusterdown -= 1;
                    return Some(error("CLUSTERDOWN The cluster is down".into()));
                }
                if self.bounce {
                    let next = self.next_port(port);
                    return Some(error(format!("MOVED {slot} 127.0.0.1:{next}")));
                }
                let owner = self.owner[usize::from(slot)];
                let migrating_to = self.migrating.get(&slot).copied();
                // A replica serves reads of its primary's slots after
                // READONLY, from its primary's data.
                let mut data_port = port;
                if let Some(primary) = self.nodes[&port].replica_of {
                    let read = matches!(name.as_str(), "GET" | "MGET" | "EXISTS");
                    if !(*readonly && read && owner == primary) {
                        return Some(error(format!("MOVED {slot} 127.0.0.1:{owner}")));
                    }
                    data_port = primary;
                } else if owner == port {
                    let data = &self.nodes[&port].data;
                    if let Some(target) = migrating_to
                        && !keys.iter().any(|k| data.contains_key(k))
                    {
                        return Some(error(format!("ASK {slot} 127.0.0.1:{target}")));
                    }
                } else if !(was_asking && migrating_to == Some(port)) {
                    return Some(error(format!("MOVED {slot} 127.0.0.1:{owner}")));
                }
                if keys.iter().any(|k| self.wrong_type.contains(k)) {
                    return Some(error(
                        "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
                    ));
                }
                let data = &mut self.nodes.get_mut(&data_port).expect("a node").data;
                let value = |data: &HashMap<Bytes, Bytes>, key: &Bytes| {
                    data.get(key).cloned().map_or(Frame::Null, Frame::Bulk)
                };
                let count = |n: usize| Frame::Integer(i64::try_from(n).expect("small"));
                Some(Answer::Reply(match name.as_str() {
                    "GET" => value(data, &keys[0]),
                    "MGET" => Frame::Array(keys.iter().map(|k| value(data, k)).collect()),
                    "SET" | "MSET" => {
                        for pair in args[1..].chunks(2) {
                            data.insert(pair[0].clone(), pair[1].clone());
                        }
                        simple("OK")
                    }
                    "DEL" | "UNLINK" => {
                        count(keys.iter().filter(|k| data.remove(*k).is_some()).count())
                    }
                    _ => count(keys.iter().filter(|k| data.contains_key(*k)).count()),
                }))
            }
            "FLUSHALL" => {
                self.nodes.get_mut(&port).expect("a node").data.clear();
                Some(Answer::Reply(simple("OK")))
            }
            "DBSIZE" => {
                let n = self.nodes[&port].data.len();
                Some(Answer::Reply(Frame::Integer(
                    i64::try_from(n).expect("small"),
                )))
            }
            "KEYS" => {
                let keys = self.nodes[&port].data.keys().cloned().map(Frame::Bulk);
                Some(Answer::Reply(Frame::Array(keys.collect())))
            }
            "SCRIPT" if words[1].eq_ignore_ascii_case("EXISTS") => {
                let scripts = &self.nodes[&port].scripts;
                let flags = words[2..]
                    .iter()
                    .map(|sha| Frame::Integer(i64::from(scripts.contains(sha))));
                Some(Answer::Reply(Frame::Array(flags.collect())))
            }
            "SCRIPT" => {
                let sha = if self.scripts_disagree {
                    format!("sha-of-{port}")
                } else {
                    "sha".to_string()
                };
                let node = self.nodes.get_mut(&port).expect("a node");
                node.scripts.insert(sha.clone());
                Some(Answer::Reply(bulk(sha)))
            }
            "CONFIG" => Some(match words[1].to_ascii_uppercase().as_str() {
                "SET" if self.config_refused == Some(port) => {
                    error("ERR CONFIG SET failed (possibly related to argument 'x')".into())
                }
                "SET" | "RESETSTAT" => Answer::Reply(simple("OK")),
                _ => Answer::Reply(Frame::Array(vec![bulk(words[2].clone()), bulk("0")])),
            }),
            "SCAN" => {
                // The cursor is an index into the sorted keys; 3 a page.
                let mut keys: Vec<Bytes> = self.nodes[&port].data.keys().cloned().collect();
                keys.sort();
                let at: usize = words[1].parse().expect("a cursor");
                let end = (at + 3).min(keys.len());
                let next = if end == keys.len() { 0 } else { end };
                let page = keys[at.min(end)..end].iter().cloned().map(Frame::Bulk);
                Some(Answer::Reply(Frame::Array(vec![
                    bulk(next.to_string()),
                    Frame::Array(page.collect()),
                ])))
            }
            _ => Some(error(format!("ERR unknown command '{}'", words[0]))),
        }
    }

    /// Commands (by name, upper case) node `port` received.
    fn count(&self, port: u16, name: &str) -> usize {
        self.log
            .iter()
            .filter(|(p, _, w)| *p == port && w[0].eq_ignore_ascii_case(name))
            .count()
    }
}

// ---- the harness ------------------------------------------------------------

/// The cluster client, the simulated nodes, and the record of everything.
struct Net {
    client: ClusterClient,
    sim: Rc<RefCell<Sim>>,
    now: Instant,
    /// The node port and peer of each open socket.
    peers: BTreeMap<SocketId, (u16, Peer)>,
    /// Ports whose answers are held back (a slow node).
    paused: BTreeSet<u16>,
    /// Each socket's `Connect` address and count.
    connects: BTreeMap<SocketId, (Address, usize)>,
    closes: BTreeMap<SocketId, Vec<CloseReason>>,
    after_close: Vec<Effect>,
    events: Vec<Event>,
    next_conn: u64,
}

fn node_config() -> ClientConfig {
    let mut config = ClientConfig::new(ConnConfig::new(Address::tcp("template", 1)));
    config.response_timeout = Some(Duration::from_secs(5));
    config
}

fn tcp(host: &str, port: u16) -> Address {
    Address::tcp(host, port)
}

impl Net {
    fn new(sim: Sim, seeds: Vec<Address>) -> Self {
        Self::with_config(sim, ClusterConfig::new(seeds, node_config()))
    }

    fn with_config(sim: Sim, config: ClusterConfig) -> Self {
        Self {
            client: ClusterClient::new(config),
            sim: Rc::new(RefCell::new(sim)),
            now: Instant::from_nanos(1_000_000_000),
            peers: BTreeMap::new(),
            paused: BTreeSet::new(),
            connects: BTreeMap::new(),
            closes: BTreeMap::new(),
            after_close: Vec::new(),
            events: Vec::new(),
            next_conn: 0,
        }
    }

    /// Carries out effects and delivers answers until nothing moves.
    fn run(&mut self) {
        loop {
            let mut moved = false;
            while let Some(effect) = self.client.poll_effect() {
                moved = true;
                self.carry_out(effect);
            }
            let sockets: Vec<SocketId> = self.peers.keys().copied().collect();
            for socket in sockets {
                moved |= self.deliver_from(socket);
            }
            while let Some(event) = self.client.poll_event() {
                self.events.push(event);
            }
            if !moved {
                return;
            }
        }
    }

    fn deliver_from(&mut self, socket: SocketId) -> bool {
        let Some((port, peer)) = self.peers.get_mut(&socket) else {
            return false;
        };
        if self.paused.contains(port) {
            return false;
        }
        let bytes = peer.take_outbox();
        let closed = peer.closed;
        if !bytes.is_empty() {
            self.client.handle_data(self.now, socket, &bytes);
        }
        if closed {
            self.peers.remove(&socket);
            self.client.handle_eof(self.now, socket);
        }
        !bytes.is_empty() || closed
    }

    fn carry_out(&mut self, effect: Effect) {
        let named = match &effect {
            Effect::Connect { socket, .. }
            | Effect::Send { socket, .. }
            | Effect::Close { socket, .. }
            | Effect::Probe { socket } => *socket,
        };
        if self.closes.contains_key(&named) {
            self.after_close.push(effect);
            return;
        }
        match effect {
            Effect::Connect { socket, address } => {
                let Address::Tcp { host, port } = &address else {
                    panic!("cluster nodes are TCP: {address}");
                };
                assert!(
                    ["127.0.0.1", "localhost", "::1"].contains(&host.as_str()),
                    "connect to {address}"
                );
                let port = *port;
                self.connects.entry(socket).or_insert((address, 0)).1 += 1;
                let up = self.sim.borrow().nodes.get(&port).is_some_and(|n| n.up);
                if up {
                    let sim = self.sim.clone();
                    let conn = self.next_conn;
                    self.next_conn += 1;
                    let mut asking = false;
                    let mut readonly = false;
                    let peer = Peer::plain().with_handler(move |args| {
                        sim.borrow_mut()
                            .answer(port, conn, &mut asking, &mut readonly, args)
                    });
                    self.peers.insert(socket, (port, peer));
                    self.client.handle_connected(self.now, socket);
                } else {
                    self.client
                        .handle_connect_failed(self.now, socket, IoError::Refused);
                }
            }
            Effect::Send { socket, data } => {
                if let Some((_, peer)) = self.peers.get_mut(&socket) {
                    peer.receive(&data).expect("the client wrote valid RESP");
                }
            }
            Effect::Close { socket, reason } => {
                self.closes.entry(socket).or_default().push(reason);
                self.peers.remove(&socket);
            }
            Effect::Probe { socket } => {
                self.deliver_from(socket);
                if self.peers.contains_key(&socket) {
                    self.client.handle_probe_done(self.now, socket);
                }
            }
        }
    }

    fn send(&mut self, args: &[&str]) -> RequestId {
        let id = self.client.send(self.now, args);
        self.run();
        id
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.client.handle_timeout(self.now);
        self.run();
    }

    /// Follows the client's timers until `id` has its outcome (at most
    /// `limit` of virtual time).
    fn until_done(&mut self, id: RequestId, limit: Duration) {
        let end = self.now + limit;
        while self.response(id).is_none() {
            let Some(at) = self.client.poll_timeout() else {
                return;
            };
            if at > end {
                return;
            }
            self.now = self.now.max(at);
            self.client.handle_timeout(self.now);
            self.run();
        }
    }

    fn response(&self, id: RequestId) -> Option<&Result<Frame, Error>> {
        let mut found = self.events.iter().filter_map(|e| match e {
            Event::Response { id: r, result } if *r == id => Some(result),
            _ => None,
        });
        let first = found.next();
        assert!(found.next().is_none(), "{id} completed more than once");
        first
    }

    fn reply(&self, id: RequestId) -> Frame {
        match self.response(id) {
            Some(Ok(frame)) => frame.clone(),
            other => panic!("{id}: expected a reply, got {other:?}"),
        }
    }

    /// Node `port` dies: its connections close, new ones are refused.
    fn kill(&mut self, port: u16) {
        self.sim
            .borrow_mut()
            .nodes
            .get_mut(&port)
            .expect("a node")
            .up = false;
        for (p, peer) in self.peers.values_mut() {
            if *p == port {
                peer.answer(Answer::Close);
            }
        }
        self.run();
    }

    fn open_sockets(&self) -> usize {
        self.connects
            .keys()
            .filter(|s| !self.closes.contains_key(s))
            .count()
    }

    /// I1: no socket connected or closed twice, nothing after a `Close`.
    fn check_accounting(&self) {
        for (socket, (_, n)) in &self.connects {
            assert_eq!(*n, 1, "{socket} connected {n} times");
        }
        for (socket, reasons) in &self.closes {
            assert_eq!(reasons.len(), 1, "{socket} closed: {reasons:?}");
            assert!(self.connects.contains_key(socket), "{socket} never opened");
        }
        assert!(self.after_close.is_empty(), "{:?}", self.after_close);
    }

    /// Nothing is held for any request: every part, group, timer and
    /// parked request ended with its request.
    fn assert_idle(&self) {
        assert_eq!(self.client.in_flight(), InFlight::default(), "a leak");
        assert!(self.client.in_flight().is_idle());
    }

    fn shutdown_and_check(&mut self) {
        self.client.shutdown(self.now);
        self.run();
        self.assert_idle();
        self.check_accounting();
        for socket in self.connects.keys() {
            assert!(self.closes.contains_key(socket), "{socket} leaked");
        }
        assert_eq!(self.client.poll_effect(), None);
    }
}

/// A key whose slot node `port` serves in [`Sim::three`], the `n`th such.
fn key_on(port: u16, n: usize) -> String {
    let range = match port {
        7000 => 0..=5460,
        7001 => 5461..=10922,
        _ => 10923..=16383,
    };
    (0..)
        .map(|i| format!("key:{i}"))
        .filter(|k| range.contains(&slot(k.as_bytes())))
        .nth(n)
        .expect("a key")
}

fn ok() -> Frame {
    simple("OK")
}

fn seeds() -> Vec<Address> {
    vec![tcp("127.0.0.1", 7000)]
}

/// A client that has its topology and a connection to every primary.
fn warmed_up() -> Net {
    let mut net = Net::new(Sim::three(), seeds());
    for port in PORTS {
        let id = net.send(&["SET", &key_on(port, 0), "v"]);
        assert_eq!(net.reply(id), ok());
    }
    net
}

fn node_key(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

// ---- the tests ------------------------------------------------------------

#[test]
fn commands_go_to_the_owner_of_their_slot() {
    let mut net = Net::new(Sim::three(), seeds());
    let mut ids = Vec::new();
    for n in 0..30 {
        let port = PORTS[n % 3];
        let key = key_on(port, n);
        ids.push((net.send(&["SET", &key, &format!("v{n}")]), port, key));
    }
    for (id, port, key) in &ids {
        assert_eq!(net.reply(*id), ok(), "SET {key}");
        let sim = net.sim.borrow();
        let (served, ..) = sim
            .log
            .iter()
            .find(|(_, _, w)| w[0] == "SET" && w[1] == *key)
            .expect("served");
        assert_eq!(served, port, "{key} went to its slot's owner");
    }
    // One refresh, no redirect: the slot map was right from the start.
    let log = net.sim.borrow().log.clone();
    assert_eq!(log.iter().filter(|(_, _, w)| w[0] == "CLUSTER").count(), 1);
    assert_eq!(net.sim.borrow().count(7000, "SET"), 10);
    let id = net.send(&["GET", &key_on(7002, 2)]);
    assert_eq!(net.reply(id), bulk("v2"));
    assert_eq!(net.client.node_count(), 3);
    assert!(net.client.is_connected());
    assert_eq!(
        net.client.reconnect_phase(),
        redpoll_core::reconnect::Phase::Established
    );
    assert_eq!(net.client.pool_stats().open, 3);
    net.shutdown_and_check();
}

#[test]
fn requests_before_the_topology_wait_for_it_and_keyless_commands_go_to_a_primary() {
    let mut net = Net::new(Sim::three(), seeds());
    // Sent back to back before any reply: all park for the one refresh.
    let a = net.client.send(net.now, &["SET", "a", "1"]);
    let b = net.client.send(net.now, &["PING"]);
    let c = net.client.send(net.now, &["GET", "a"]);
    net.run();
    assert_eq!(net.reply(a), ok());
    assert_eq!(net.reply(b), simple("PONG"));
    assert_eq!(net.reply(c), bulk("1"));
    let refreshes = net
        .sim
        .borrow()
        .log
        .iter()
        .filter(|(_, _, w)| w[0] == "CLUSTER")
        .count();
    assert_eq!(refreshes, 1);
    net.shutdown_and_check();
}

#[test]
fn a_cross_slot_command_fails_at_once() {
    let mut net = Net::new(Sim::three(), seeds());
    // MSETNX is all or nothing: the client cannot split it.
    let id = net.send(&["MSETNX", "a", "1", "b", "2"]);
    assert!(
        matches!(
            net.response(id),
            Some(Err(Error::Cluster(ClusterFailure::CrossSlot(_))))
        ),
        "{:?}",
        net.response(id)
    );
    assert!(net.connects.is_empty(), "nothing was sent");
    // A common hash tag is one slot.
    assert!(net.client.poll_timeout().is_none());
    net.shutdown_and_check();
}

#[test]
fn a_moved_to_a_node_outside_the_topology_is_followed_and_applied_at_once() {
    let mut net = warmed_up();
    let key = key_on(7001, 5);
    let slot_of_key = slot(key.as_bytes());
    // The slot moved to 7003, which the client has never heard of.
    net.sim.borrow_mut().owner[usize::from(slot_of_key)] = 7003;
    net.sim
        .borrow_mut()
        .nodes
        .get_mut(&7003)
        .expect("spare")
        .data
        .insert(Bytes::from(key.clone()), Bytes::from_static(b"moved"));
    let id = net.send(&["GET", &key]);
    assert_eq!(net.reply(id), bulk("moved"));
    assert_eq!(net.sim.borrow().count(7001, "GET"), 1, "MOVED from 7001");
    assert_eq!(net.sim.borrow().count(7003, "GET"), 1, "then 7003");
    // The slot map changed at once, before any refresh.
    let owner = net
        .client
        .topology()
        .owner(slot_of_key)
        .map(|k| k.to_string());
    assert_eq!(owner.as_deref(), Some("127.0.0.1:7003"));
    // The next command for the slot goes straight there.
    let id = net.send(&["GET", &key]);
    assert_eq!(net.reply(id), bulk("moved"));
    assert_eq!(net.sim.borrow().count(7001, "GET"), 1);
    assert_eq!(net.sim.borrow().count(7003, "GET"), 2);
    net.shutdown_and_check();
}

#[test]
fn an_ask_sends_asking_then_the_command_and_leaves_the_slot_map() {
    let mut net = warmed_up();
    let key = key_on(7000, 7);
    let slot_of_key = slot(key.as_bytes());
    {
        let mut sim = net.sim.borrow_mut();
        sim.migrating.insert(slot_of_key, 7001);
        sim.nodes
            .get_mut(&7001)
            .expect("target")
            .data
            .insert(Bytes::from(key.clone()), Bytes::from_static(b"migrated"));
    }
    for round in 1..=2 {
        let id = net.send(&["GET", &key]);
        assert_eq!(net.reply(id), bulk("migrated"), "round {round}");
        // Every time to the owner first: ASK does not change the map.
        assert_eq!(net.sim.borrow().count(7000, "GET"), round);
        assert_eq!(net.sim.borrow().count(7001, "GET"), round);
    }
    let owner = net
        .client
        .topology()
        .owner(slot_of_key)
        .map(|k| k.to_string());
    assert_eq!(owner.as_deref(), Some("127.0.0.1:7000"));
    // On the target, each GET came right after an ASKING, on the same
    // connection.
    let sim = net.sim.borrow();
    let on_target: Vec<&(u16, u64, Vec<String>)> =
        sim.log.iter().filter(|(p, ..)| *p == 7001).collect();
    for (i, (_, conn, words)) in on_target.iter().enumerate() {
        if words[0] == "GET" {
            let (_, before_conn, before) = on_target[i - 1];
            assert_eq!(before[0], "ASKING");
            assert_eq!(before_conn, conn);
        }
    }
    // An ASK asks for no refresh.
    assert_eq!(
        sim.log.iter().filter(|(_, _, w)| w[0] == "CLUSTER").count(),
        1
    );
    drop(sim);
    net.shutdown_and_check();
}

#[test]
fn a_moved_while_a_refresh_is_pending_is_followed_and_the_map_converges() {
    let mut net = warmed_up();
    // Past the refresh interval: the next MOVED starts a refresh at once.
    net.advance(Duration::from_millis(200));
    let first = key_on(7001, 1);
    let second = key_on(7001, 2);
    let first_slot = slot(first.as_bytes());
    let second_slot = slot(second.as_bytes());
    net.sim.borrow_mut().owner[usize::from(first_slot)] = 7002;
    // The refresh goes to a connected node of the topology: 7000, which
    // is slow to answer.
    net.paused.insert(7000);
    let a = net.send(&["SET", &first, "1"]);
    assert_eq!(net.reply(a), ok());
    assert_eq!(
        net.sim.borrow().count(7000, "CLUSTER"),
        2,
        "refresh pending"
    );
    // A second move, after the pending refresh's reply was made (stale).
    net.sim.borrow_mut().owner[usize::from(second_slot)] = 7002;
    let b = net.send(&["SET", &second, "2"]);
    assert_eq!(net.reply(b), ok(), "a MOVED during a pending refresh");
    let owner = |net: &Net, slot| net.client.topology().owner(slot).map(ToString::to_string);
    assert_eq!(owner(&net, second_slot).as_deref(), Some("127.0.0.1:7002"));
    // The stale reply arrives: it predates the second move.
    net.paused.clear();
    net.run();
    // Whatever the stale reply said, commands still land, and the refresh
    // asked for meanwhile brings the map up to date.
    let c = net.send(&["GET", &second]);
    assert_eq!(net.reply(c), bulk("2"));
    net.advance(Duration::from_millis(200));
    assert_eq!(owner(&net, first_slot).as_deref(), Some("127.0.0.1:7002"));
    assert_eq!(owner(&net, second_slot).as_deref(), Some("127.0.0.1:7002"));
    let d = net.send(&["GET", &first]);
    assert_eq!(net.reply(d), bulk("1"));
    net.shutdown_and_check();
}

#[test]
fn a_refresh_that_removes_a_dead_node_moves_the_request_waiting_on_it() {
    let mut net = warmed_up();
    let key = key_on(7002, 3);
    // 7002 dies and its slots go to 7001 (a failover / resharding).
    {
        let mut sim = net.sim.borrow_mut();
        sim.move_all(7002, 7001);
        sim.nodes.get_mut(&7002).expect("node").member = false;
    }
    net.kill(7002);
    // The client still maps the slot to 7002: the request waits there.
    let id = net.send(&["SET", &key, "x"]);
    net.until_done(id, Duration::from_secs(5));
    assert_eq!(net.reply(id), ok(), "no 'no connection' outcome");
    assert_eq!(net.sim.borrow().count(7001, "SET"), 2);
    let owner = net
        .client
        .topology()
        .owner(slot(key.as_bytes()))
        .map(ToString::to_string);
    assert_eq!(owner.as_deref(), Some("127.0.0.1:7001"));
    // The dead node's client is gone, its sockets closed.
    net.advance(Duration::from_secs(1));
    assert_eq!(net.client.node_count(), 2);
    assert!(
        net.client
            .connections_per_node()
            .iter()
            .all(|(k, _)| k.to_string() != node_key(7002))
    );
    net.shutdown_and_check();
}

#[test]
fn with_every_known_primary_gone_a_refresh_asks_the_replicas() {
    let mut net = Net::new(Sim::with_replicas(), seeds());
    for port in PORTS {
        let id = net.send(&["SET", &key_on(port, 0), "v"]);
        assert_eq!(net.reply(id), ok());
    }
    // Every primary (the seed among them) dies; its replica takes over.
    {
        let mut sim = net.sim.borrow_mut();
        for port in PORTS {
            sim.move_all(port, port + 100);
            sim.nodes.get_mut(&port).expect("node").member = false;
            let replica = sim.nodes.get_mut(&(port + 100)).expect("replica");
            replica.member = true;
            replica.replica_of = None;
        }
    }
    for port in PORTS {
        net.kill(port);
    }
    // Only the replicas the topology listed know the cluster now.
    let id = net.send(&["SET", &key_on(7000, 1), "x"]);
    net.until_done(id, Duration::from_secs(5));
    assert_eq!(net.reply(id), ok());
    assert_eq!(net.sim.borrow().count(7100, "SET"), 1);
    net.shutdown_and_check();
}

#[test]
fn a_refresh_that_removes_a_live_node_lets_it_answer_the_request_in_flight() {
    let mut net = warmed_up();
    let key = key_on(7002, 4);
    // 7002 leaves: its slots go to 7001. The client does not know yet.
    {
        let mut sim = net.sim.borrow_mut();
        sim.move_all(7002, 7001);
        sim.nodes.get_mut(&7002).expect("node").member = false;
        sim.nodes
            .get_mut(&7001)
            .expect("node")
            .data
            .insert(Bytes::from(key.clone()), Bytes::from_static(b"here"));
    }
    // 7002 is slow: the request is written and awaits its reply.
    net.paused.insert(7002);
    let id = net.send(&["GET", &key]);
    // A MOVED elsewhere starts a refresh, which drops 7002.
    net.advance(Duration::from_millis(200));
    let other = key_on(7000, 9);
    net.sim.borrow_mut().owner[usize::from(slot(other.as_bytes()))] = 7001;
    let other_id = net.send(&["GET", &other]);
    assert_eq!(net.reply(other_id), Frame::Null);
    assert_eq!(net.client.node_count(), 2, "7002 retired");
    assert!(net.response(id).is_none(), "still in flight on 7002");
    // 7002 answers at last (MOVED, it has left): the request follows.
    net.paused.clear();
    net.run();
    assert_eq!(net.reply(id), bulk("here"));
    // Its client, drained, was shut down and its socket closed.
    assert!(
        net.client
            .connections_per_node()
            .iter()
            .all(|(k, _)| k.to_string() != node_key(7002))
    );
    let closed_7002 = net
        .connects
        .iter()
        .filter(|(_, (a, _))| matches!(a, Address::Tcp { port: 7002, .. }))
        .all(|(s, _)| net.closes.contains_key(s));
    assert!(closed_7002);
    net.shutdown_and_check();
}

#[test]
fn tryagain_and_clusterdown_back_off_then_succeed() {
    let mut net = warmed_up();
    {
        let mut sim = net.sim.borrow_mut();
        sim.tryagain = 2;
        sim.clusterdown = 1;
    }
    let key = key_on(7001, 3);
    let id = net.send(&["SET", &key, "1"]);
    assert!(net.response(id).is_none(), "waiting");
    // 20 ms, 40 ms, 80 ms: not done before their sum.
    net.advance(Duration::from_millis(100));
    assert!(net.response(id).is_none(), "still waiting");
    net.until_done(id, Duration::from_secs(1));
    assert_eq!(net.reply(id), ok());
    assert_eq!(net.sim.borrow().count(7001, "SET"), 5);
    net.shutdown_and_check();
}

#[test]
fn too_many_redirects_fail_with_a_cluster_error() {
    let mut config = ClusterConfig::new(seeds(), node_config());
    config.redirects.max_redirects = 3;
    let mut net = Net::with_config(Sim::three(), config);
    let warm = net.send(&["SET", "warm", "1"]);
    assert_eq!(net.reply(warm), ok());
    net.sim.borrow_mut().bounce = true;
    let id = net.send(&["GET", "k"]);
    net.until_done(id, Duration::from_secs(1));
    assert_eq!(
        net.response(id),
        Some(&Err(Error::Cluster(ClusterFailure::TooManyRedirects {
            limit: 3
        })))
    );
    let gets: usize = PORTS
        .iter()
        .map(|&p| net.sim.borrow().count(p, "GET"))
        .sum();
    assert_eq!(gets, 4, "the first attempt and three redirects");
    let text = Error::Cluster(ClusterFailure::TooManyRedirects { limit: 3 }).to_string();
    assert!(text.contains("redirects"), "{text}");
    net.shutdown_and_check();
}

#[test]
fn every_spelling_of_a_seed_is_one_client_and_one_socket_per_node() {
    let seeds = vec![
        tcp("localhost", 7000),
        tcp("LOCALHOST.", 7000),
        tcp("127.0.0.1", 7000),
        tcp("LocalHost", 7001),
    ];
    let mut net = Net::new(Sim::three(), seeds);
    for n in 0..1_000 {
        let key = format!("user:{n}");
        let id = if n % 2 == 0 {
            net.send(&["SET", &key, "v"])
        } else {
            net.send(&["GET", &format!("user:{}", n - 1)])
        };
        let expected = if n % 2 == 0 { ok() } else { bulk("v") };
        assert_eq!(net.reply(id), expected, "command {n}");
    }
    // The seed was asked which node it is, and `localhost` became
    // 127.0.0.1 (the cluster's announced IP).
    assert_eq!(net.sim.borrow().count(7000, "CLUSTER"), 2, "MYID + SHARDS");
    assert_eq!(net.client.node_count(), 3);
    let per_node: Vec<(String, usize)> = net
        .client
        .connections_per_node()
        .into_iter()
        .map(|(k, n): (NodeKey, usize)| (k.to_string(), n))
        .collect();
    assert_eq!(
        per_node,
        PORTS.map(|p| (node_key(p), 1)).to_vec(),
        "one socket per node"
    );
    assert_eq!(net.connects.len(), 3, "the seed's socket is the node's");
    assert_eq!(net.open_sockets(), 3);
    net.shutdown_and_check();
}

#[test]
fn an_ip_seed_the_cluster_announces_differently_is_retired() {
    // `[::1]` reaches node 7000, announced as 127.0.0.1: two keys, but the
    // seed's client is retired after the first refresh.
    let mut net = Net::new(Sim::three(), vec![tcp("[::1]", 7000)]);
    for n in 0..300 {
        let id = net.send(&["SET", &format!("k{n}"), "v"]);
        assert_eq!(net.reply(id), ok());
    }
    assert_eq!(net.client.node_count(), 3);
    let per_node: Vec<usize> = net
        .client
        .connections_per_node()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(per_node, [1, 1, 1]);
    assert_eq!(net.open_sockets(), 3);
    let seed_socket = *net.connects.keys().next().expect("the seed's socket");
    assert_eq!(net.closes[&seed_socket], [CloseReason::Shutdown]);
    net.shutdown_and_check();
}

#[test]
fn cluster_slots_is_the_fallback_of_older_servers() {
    let mut sim = Sim::three();
    sim.no_shards = true;
    let mut net = Net::new(sim, seeds());
    for port in PORTS {
        let id = net.send(&["SET", &key_on(port, 1), "v"]);
        assert_eq!(net.reply(id), ok());
        assert_eq!(net.sim.borrow().count(port, "SET"), 1);
    }
    let sim = net.sim.borrow();
    let cluster: Vec<&Vec<String>> = sim
        .log
        .iter()
        .filter(|(_, _, w)| w[0] == "CLUSTER")
        .map(|(_, _, w)| w)
        .collect();
    assert_eq!(cluster, [&["CLUSTER", "SHARDS"], &["CLUSTER", "SLOTS"]]);
    drop(sim);
    net.shutdown_and_check();
}

#[test]
fn a_seed_that_refuses_is_skipped() {
    let mut net = Net::new(
        Sim::three(),
        vec![tcp("127.0.0.1", 7009), tcp("127.0.0.1", 7001)],
    );
    let id = net.send(&["SET", &key_on(7002, 0), "v"]);
    net.until_done(id, Duration::from_secs(1));
    assert_eq!(net.reply(id), ok());
    net.shutdown_and_check();
}

#[test]
fn with_every_seed_down_requests_fail_with_the_reason() {
    let mut net = Net::new(Sim::three(), vec![tcp("127.0.0.1", 7009)]);
    let id = net.send(&["GET", "k"]);
    net.until_done(id, Duration::from_secs(1));
    assert_eq!(
        net.response(id),
        Some(&Err(Error::Connection(CloseReason::ConnectFailed(
            IoError::Refused
        ))))
    );
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, Event::Status(redpoll_core::Status::Disconnected { .. }))),
        "adapters waiting to connect hear why"
    );
    assert_eq!(
        net.client.reconnect_phase(),
        redpoll_core::reconnect::Phase::NeverConnected
    );
    net.shutdown_and_check();
}

#[test]
fn connect_opens_every_primary_without_a_request() {
    let mut net = Net::new(Sim::three(), vec![tcp("localhost", 7001)]);
    net.client.connect(net.now);
    net.run();
    assert!(net.client.is_connected());
    assert_eq!(net.client.node_count(), 3);
    assert_eq!(net.open_sockets(), 3);
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, Event::Status(redpoll_core::Status::Connected)))
    );
    net.shutdown_and_check();
}

#[test]
fn leases_are_unsupported() {
    let mut net = warmed_up();
    assert!(matches!(
        net.client.lease(net.now),
        Err(Error::Unsupported(_))
    ));
    net.shutdown_and_check();
}

#[test]
fn a_parked_request_times_out_and_a_cancelled_one_is_never_answered() {
    let mut config = ClusterConfig::new(seeds(), node_config());
    config.node.response_timeout = Some(Duration::from_millis(300));
    let mut net = Net::with_config(Sim::three(), config);
    let warm = net.send(&["SET", "warm", "1"]);
    assert_eq!(net.reply(warm), ok());
    // The cluster stays down beyond the deadline.
    net.sim.borrow_mut().clusterdown = 1_000;
    let id = net.send(&["GET", "k"]);
    let cancelled = net.send(&["GET", "other"]);
    net.client.cancel(cancelled);
    net.until_done(id, Duration::from_secs(2));
    assert_eq!(net.response(id), Some(&Err(Error::Timeout)));
    net.advance(Duration::from_secs(1));
    assert!(net.response(cancelled).is_none());
    net.shutdown_and_check();
}

#[test]
fn a_request_to_a_node_that_stays_down_ends_at_its_deadline() {
    let mut config = ClusterConfig::new(seeds(), node_config());
    config.node.response_timeout = Some(Duration::from_millis(500));
    let mut net = Net::with_config(Sim::three(), config);
    for port in PORTS {
        let id = net.send(&["SET", &key_on(port, 0), "v"]);
        assert_eq!(net.reply(id), ok());
    }
    // 7002 dies but the cluster still lists it (no failover yet).
    net.kill(7002);
    let id = net.send(&["GET", &key_on(7002, 1)]);
    let sent = net.now;
    net.until_done(id, Duration::from_secs(10));
    assert!(
        matches!(net.response(id), Some(Err(e)) if e.is_timeout() || matches!(e, Error::Connection(_))),
        "{:?}",
        net.response(id)
    );
    assert!(net.now.saturating_duration_since(sent) <= Duration::from_millis(500));
    // Nothing keeps the request alive past its deadline.
    net.advance(Duration::from_secs(5));
    net.shutdown_and_check();
}

// ---- split and fanned-out commands ------------------------------------------

/// Keys on each primary, each in a slot of its own: `per_node` per port,
/// interleaved (7000, 7001, 7002, 7000, ...).
fn spread_keys(per_node: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut slots = BTreeSet::new();
    let mut next = [0usize; 3];
    for i in 0..per_node * 3 {
        let port_at = i % 3;
        let key = loop {
            let key = key_on(PORTS[port_at], next[port_at]);
            next[port_at] += 1;
            if slots.insert(slot(key.as_bytes())) {
                break key;
            }
        };
        keys.push(key);
    }
    keys
}

fn set_all(net: &mut Net, keys: &[String]) {
    for key in keys {
        let id = net.send(&["SET", key, &format!("v-{key}")]);
        assert_eq!(net.reply(id), ok());
    }
}

/// The `Response` events, by id: nothing but the caller's requests (the
/// parts' ids never surface), each once.
fn response_ids(net: &Net) -> Vec<RequestId> {
    net.events
        .iter()
        .filter_map(|e| match e {
            Event::Response { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn mget(keys: &[String]) -> Vec<&str> {
    std::iter::once("MGET")
        .chain(keys.iter().map(String::as_str))
        .collect()
}

#[test]
fn a_cross_slot_mget_is_split_per_slot_and_reassembled_in_order() {
    let mut net = warmed_up();
    let keys = spread_keys(3);
    set_all(&mut net, &keys[..8]);
    let before = response_ids(&net).len();
    // The last key is missing, and one key is asked twice.
    let mut asked = keys.clone();
    asked.insert(4, keys[1].clone());
    let id = net.send(&mget(&asked));
    let expected: Vec<Frame> = asked
        .iter()
        .map(|k| {
            if *k == keys[8] {
                Frame::Null
            } else {
                bulk(format!("v-{k}"))
            }
        })
        .collect();
    assert_eq!(net.reply(id), Frame::Array(expected));
    // One MGET per slot, each to the slot's owner.
    let sim = net.sim.borrow();
    let mgets: Vec<&(u16, u64, Vec<String>)> =
        sim.log.iter().filter(|(_, _, w)| w[0] == "MGET").collect();
    assert_eq!(mgets.len(), 9, "{mgets:?}");
    for (port, _, words) in &mgets {
        let slots: BTreeSet<u16> = words[1..].iter().map(|k| slot(k.as_bytes())).collect();
        assert_eq!(slots.len(), 1, "{words:?}");
        let owner = sim.owner[usize::from(*slots.first().expect("a slot"))];
        assert_eq!(owner, *port);
    }
    drop(sim);
    assert_eq!(response_ids(&net)[before..], [id], "one response");
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn the_parts_follow_moved_and_ask_on_their_own() {
    let mut net = warmed_up();
    let keys = spread_keys(2);
    set_all(&mut net, &keys);
    // keys[0] (7000): its slot moved to 7003. keys[1] (7001): its slot
    // migrates to 7002, which holds it already.
    let moved = slot(keys[0].as_bytes());
    let asked = slot(keys[1].as_bytes());
    {
        let mut sim = net.sim.borrow_mut();
        sim.owner[usize::from(moved)] = 7003;
        let value = sim
            .nodes
            .get_mut(&7000)
            .expect("node")
            .data
            .remove(&Bytes::from(keys[0].clone()));
        sim.nodes
            .get_mut(&7003)
            .expect("node")
            .data
            .insert(Bytes::from(keys[0].clone()), value.expect("set"));
        sim.migrating.insert(asked, 7002);
        let value = sim
            .nodes
            .get_mut(&7001)
            .expect("node")
            .data
            .remove(&Bytes::from(keys[1].clone()));
        sim.nodes
            .get_mut(&7002)
            .expect("node")
            .data
            .insert(Bytes::from(keys[1].clone()), value.expect("set"));
    }
    let id = net.send(&mget(&keys));
    let expected: Vec<Frame> = keys.iter().map(|k| bulk(format!("v-{k}"))).collect();
    assert_eq!(net.reply(id), Frame::Array(expected));
    let sim = net.sim.borrow();
    assert_eq!(sim.count(7003, "MGET"), 1, "the MOVED part went to 7003");
    assert_eq!(sim.count(7002, "ASKING"), 1, "the ASK part was asked for");
    // 7000 and 7001 were each asked for their two slots; 7002 for its own
    // two and the migrating one.
    assert_eq!(sim.count(7000, "MGET"), 2);
    assert_eq!(sim.count(7001, "MGET"), 2);
    assert_eq!(sim.count(7002, "MGET"), 3);
    drop(sim);
    let owner = net.client.topology().owner(moved).map(ToString::to_string);
    assert_eq!(owner.as_deref(), Some("127.0.0.1:7003"));
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn a_part_whose_node_fails_fails_the_request_once() {
    let mut net = warmed_up();
    let keys = spread_keys(2);
    set_all(&mut net, &keys);
    let before = response_ids(&net).len();
    // 7002 is down (no failover); 7001 is slow: its parts are still
    // awaited when 7002's fails.
    net.kill(7002);
    net.paused.insert(7001);
    let id = net.send(&mget(&keys));
    net.until_done(id, Duration::from_secs(10));
    assert!(
        matches!(net.response(id), Some(Err(e)) if e.is_timeout() || matches!(e, Error::Connection(_))),
        "{:?}",
        net.response(id)
    );
    assert_eq!(
        net.sim.borrow().count(7001, "MGET"),
        2,
        "7001's parts were sent"
    );
    // The outcome cancelled 7001's parts at once.
    net.assert_idle();
    // 7001 answers late: its parts were cancelled, their replies dropped.
    net.paused.clear();
    net.run();
    net.advance(Duration::from_secs(6));
    assert_eq!(
        response_ids(&net)[before..],
        [id],
        "one response, no part's"
    );
    // The other nodes still serve.
    let other = net.send(&["GET", &keys[0]]);
    assert_eq!(net.reply(other), bulk(format!("v-{}", keys[0])));
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn cancelling_a_split_request_cancels_its_parts() {
    let mut net = warmed_up();
    let keys = spread_keys(2);
    set_all(&mut net, &keys);
    let before = response_ids(&net).len();
    net.paused.insert(7001);
    let id = net.send(&mget(&keys));
    assert_eq!(net.sim.borrow().count(7001, "MGET"), 2, "sent, unanswered");
    net.client.cancel(id);
    net.assert_idle();
    net.paused.clear();
    net.run();
    net.advance(Duration::from_secs(6));
    assert!(net.response(id).is_none());
    assert_eq!(response_ids(&net).len(), before, "no part surfaced");
    // 7001's late replies were read and dropped: its connection serves on.
    let next = net.send(&["GET", &keys[1]]);
    assert_eq!(net.reply(next), bulk(format!("v-{}", keys[1])));
    assert_eq!(net.client.pool_stats().open, 3);
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn mset_del_exists_unlink_and_touch_across_slots() {
    let mut net = warmed_up();
    let keys = spread_keys(3);
    let mut mset = vec!["MSET".to_string()];
    for key in &keys {
        mset.extend([key.clone(), format!("m-{key}")]);
    }
    let mset: Vec<&str> = mset.iter().map(String::as_str).collect();
    let id = net.send(&mset);
    assert_eq!(net.reply(id), ok());
    for key in &keys {
        let id = net.send(&["GET", key]);
        assert_eq!(net.reply(id), bulk(format!("m-{key}")), "{key}");
    }
    let with = |name: &'static str, keys: &[String]| -> Vec<String> {
        std::iter::once(name.to_string())
            .chain(keys.iter().cloned())
            .collect()
    };
    let run = |net: &mut Net, words: Vec<String>| {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let id = net.send(&words);
        net.reply(id)
    };
    // A key twice counts twice, as on one server.
    let mut twice = keys.clone();
    twice.push(keys[0].clone());
    assert_eq!(run(&mut net, with("EXISTS", &twice)), Frame::Integer(10));
    assert_eq!(run(&mut net, with("TOUCH", &keys)), Frame::Integer(9));
    assert_eq!(run(&mut net, with("DEL", &keys[..4])), Frame::Integer(4));
    let mut missing = keys[..6].to_vec();
    missing.push("never-set".into());
    assert_eq!(run(&mut net, with("UNLINK", &missing)), Frame::Integer(2));
    assert_eq!(run(&mut net, with("EXISTS", &keys)), Frame::Integer(3));
    // MSETNX would lose its atomicity: still refused.
    let id = net.send(&["MSETNX", &keys[0], "1", &keys[1], "2"]);
    assert!(matches!(
        net.response(id),
        Some(Err(Error::Cluster(ClusterFailure::CrossSlot(_))))
    ));
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn a_part_answered_with_an_error_reply_is_the_reply() {
    let mut net = warmed_up();
    let keys = spread_keys(2);
    set_all(&mut net, &keys);
    let before = response_ids(&net).len();
    net.sim
        .borrow_mut()
        .wrong_type
        .insert(Bytes::from(keys[4].clone()));
    let id = net.send(&mget(&keys));
    let Some(Ok(Frame::Error(message))) = net.response(id) else {
        panic!("{:?}", net.response(id));
    };
    assert!(message.starts_with(b"WRONGTYPE"), "{message:?}");
    assert_eq!(response_ids(&net)[before..], [id]);
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn flushall_dbsize_and_keys_go_to_every_primary() {
    // Sent before the topology is known: they wait for it, then fan out.
    let mut net = Net::new(Sim::three(), seeds());
    let size = net.client.send(net.now, &["DBSIZE"]);
    net.run();
    assert_eq!(net.reply(size), Frame::Integer(0));
    let keys = spread_keys(4);
    set_all(&mut net, &keys);
    let id = net.send(&["DBSIZE"]);
    assert_eq!(net.reply(id), Frame::Integer(12));
    let id = net.send(&["KEYS", "*"]);
    let Frame::Array(found) = net.reply(id) else {
        panic!("an array");
    };
    let mut found: Vec<Frame> = found;
    found.sort_by_key(|f| format!("{f:?}"));
    let mut expected: Vec<Frame> = keys.iter().map(|k| bulk(k.clone())).collect();
    expected.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(found, expected);
    let id = net.send(&["FLUSHALL"]);
    assert_eq!(net.reply(id), ok());
    for port in PORTS {
        assert_eq!(net.sim.borrow().count(port, "FLUSHALL"), 1, "{port}");
        assert_eq!(net.sim.borrow().count(port, "DBSIZE"), 2, "{port}");
    }
    assert_eq!(net.sim.borrow().count(7003, "FLUSHALL"), 0, "not a member");
    let id = net.send(&["DBSIZE"]);
    assert_eq!(net.reply(id), Frame::Integer(0));
    // PING still goes to one primary.
    let pings = || {
        PORTS
            .iter()
            .map(|&p| net.sim.borrow().count(p, "PING"))
            .sum::<usize>()
    };
    assert_eq!(pings(), 0);
    let id = net.send(&["PING"]);
    assert_eq!(net.reply(id), simple("PONG"));
    let pings: usize = PORTS
        .iter()
        .map(|&p| net.sim.borrow().count(p, "PING"))
        .sum();
    assert_eq!(pings, 1);
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn script_load_must_agree_on_every_primary() {
    let mut net = warmed_up();
    let id = net.send(&["SCRIPT", "LOAD", "return 1"]);
    assert_eq!(net.reply(id), bulk("sha"));
    net.sim.borrow_mut().scripts_disagree = true;
    let id = net.send(&["SCRIPT", "LOAD", "return 1"]);
    assert_eq!(
        net.response(id),
        Some(&Err(Error::Cluster(ClusterFailure::Disagreement)))
    );
    for port in PORTS {
        assert_eq!(net.sim.borrow().count(port, "SCRIPT"), 2, "{port}");
    }
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn script_exists_says_1_only_where_every_primary_has_the_script() {
    let mut net = warmed_up();
    let id = net.send(&["SCRIPT", "LOAD", "return 1"]);
    assert_eq!(net.reply(id), bulk("sha"));
    // A script some primaries lack (one restarted since it was loaded):
    // EVALSHA of it may reach one of those.
    for port in [7000, 7001] {
        let mut sim = net.sim.borrow_mut();
        let node = sim.nodes.get_mut(&port).expect("a node");
        node.scripts.insert("partial".into());
    }
    let id = net.send(&["SCRIPT", "EXISTS", "sha", "partial", "none", "sha"]);
    let flags = [1, 0, 0, 1].map(Frame::Integer).to_vec();
    assert_eq!(net.reply(id), Frame::Array(flags));
    for port in PORTS {
        assert_eq!(net.sim.borrow().count(port, "SCRIPT"), 2, "{port}");
    }
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn config_set_and_resetstat_go_to_every_primary() {
    let mut net = warmed_up();
    let id = net.send(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    assert_eq!(net.reply(id), ok());
    let id = net.send(&["CONFIG", "RESETSTAT"]);
    assert_eq!(net.reply(id), ok());
    for port in PORTS {
        assert_eq!(net.sim.borrow().count(port, "CONFIG"), 2, "{port}");
    }
    // CONFIG GET asks one primary.
    let id = net.send(&["CONFIG", "GET", "maxmemory"]);
    assert_eq!(
        net.reply(id),
        Frame::Array(vec![bulk("maxmemory"), bulk("0")])
    );
    let total: usize = PORTS
        .iter()
        .map(|&p| net.sim.borrow().count(p, "CONFIG"))
        .sum();
    assert_eq!(total, 7);
    // One primary refusing is the reply: the setting is not everywhere.
    net.sim.borrow_mut().config_refused = Some(7001);
    let id = net.send(&["CONFIG", "SET", "x", "1"]);
    let Frame::Error(message) = net.reply(id) else {
        panic!("{:?}", net.response(id));
    };
    assert!(message.starts_with(b"ERR CONFIG SET failed"), "{message:?}");
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn a_scan_walks_every_primary_with_its_own_cursor() {
    let mut net = warmed_up();
    let keys = spread_keys(5);
    set_all(&mut net, &keys);
    let primaries = net.client.primaries();
    let names: Vec<String> = primaries.iter().map(ToString::to_string).collect();
    assert_eq!(names, PORTS.map(node_key));
    let mut scan = ClusterScan::new(redpoll_core::cmd::scan(0), primaries);
    let mut found: Vec<Bytes> = Vec::new();
    while let Some((node, cmd)) = scan.next_cmd() {
        let node = node.clone();
        let id = net.client.send_to_node(net.now, &node, &cmd);
        net.run();
        let reply = cmd.decode(net.reply(id)).expect("a scan reply");
        found.extend(scan.feed(reply));
    }
    // The warm-up keys too, each once.
    let mut expected: BTreeSet<Bytes> = keys.iter().map(|k| Bytes::from(k.clone())).collect();
    expected.extend(PORTS.map(|p| Bytes::from(key_on(p, 0))));
    found.sort();
    assert_eq!(found, expected.into_iter().collect::<Vec<_>>());
    // 5 keys a node or more, 3 a page: at least 2 pages each.
    for port in PORTS {
        assert!(net.sim.borrow().count(port, "SCAN") >= 2, "{port}");
    }
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn a_command_for_a_node_outside_the_topology_fails() {
    let mut net = warmed_up();
    let spare = NodeKeys::new().key("127.0.0.1", 7003).expect("a key");
    let id = net.client.send_to_node(net.now, &spare, &["DBSIZE"]);
    net.run();
    assert_eq!(
        net.response(id),
        Some(&Err(Error::Cluster(ClusterFailure::UnknownNode)))
    );
    assert_eq!(net.sim.borrow().count(7003, "DBSIZE"), 0);
    let member = NodeKeys::new().key("127.0.0.1", 7001).expect("a key");
    let id = net.client.send_to_node(net.now, &member, &["DBSIZE"]);
    net.run();
    assert_eq!(net.reply(id), Frame::Integer(1));
    assert_eq!(net.sim.borrow().count(7001, "DBSIZE"), 1);
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn a_command_for_every_primary_fails_once_when_one_is_down() {
    let mut config = ClusterConfig::new(seeds(), node_config());
    config.node.response_timeout = Some(Duration::from_millis(500));
    let mut net = Net::with_config(Sim::three(), config);
    for port in PORTS {
        let id = net.send(&["SET", &key_on(port, 0), "v"]);
        assert_eq!(net.reply(id), ok());
    }
    let before = response_ids(&net).len();
    // 7002 is down but still listed (no failover yet).
    net.kill(7002);
    let id = net.send(&["FLUSHALL"]);
    net.until_done(id, Duration::from_secs(5));
    assert!(
        matches!(net.response(id), Some(Err(e)) if e.is_timeout() || matches!(e, Error::Connection(_))),
        "{:?}",
        net.response(id)
    );
    // The live primaries did flush: a fan-out is not a transaction.
    for port in [7000, 7001] {
        assert_eq!(net.sim.borrow().count(port, "FLUSHALL"), 1, "{port}");
    }
    net.advance(Duration::from_secs(5));
    assert_eq!(response_ids(&net)[before..], [id]);
    net.assert_idle();
    net.shutdown_and_check();
}

#[test]
fn a_fan_out_waiting_for_a_topology_that_never_comes_fails_with_the_reason() {
    let mut net = Net::new(Sim::three(), vec![tcp("127.0.0.1", 7009)]);
    let id = net.send(&["DBSIZE"]);
    net.until_done(id, Duration::from_secs(1));
    assert_eq!(
        net.response(id),
        Some(&Err(Error::Connection(CloseReason::ConnectFailed(
            IoError::Refused
        ))))
    );
    assert_eq!(response_ids(&net), [id]);
    net.assert_idle();
    net.shutdown_and_check();
}

// ---- reads from replicas ------------------------------------------------------

fn replica_reads() -> Net {
    let mut config = ClusterConfig::new(seeds(), node_config());
    config.read_from_replicas = true;
    Net::with_config(Sim::with_replicas(), config)
}

#[test]
fn reads_go_to_replicas_after_readonly_and_writes_to_primaries() {
    let mut net = replica_reads();
    let keys = spread_keys(2);
    set_all(&mut net, &keys);
    for key in &keys {
        let id = net.send(&["GET", key]);
        assert_eq!(net.reply(id), bulk(format!("v-{key}")), "{key}");
    }
    let id = net.send(&mget(&keys));
    let values: Vec<Frame> = keys.iter().map(|k| bulk(format!("v-{k}"))).collect();
    assert_eq!(net.reply(id), Frame::Array(values));
    let sim = net.sim.borrow();
    for primary in PORTS {
        let replica = primary + 100;
        assert_eq!(sim.count(primary, "SET"), 2, "{primary}");
        assert_eq!(sim.count(primary, "GET"), 0, "{primary}");
        assert_eq!(sim.count(replica, "GET"), 2, "{replica}");
        assert_eq!(sim.count(replica, "MGET"), 2, "{replica}");
        assert_eq!(sim.count(replica, "SET"), 0, "{replica}");
        // Every replica connection said READONLY first.
        for (_, conn, words) in sim.log.iter().filter(|(p, ..)| *p == replica) {
            let first = sim
                .log
                .iter()
                .find(|(p, c, _)| *p == replica && c == conn)
                .map(|(_, _, w)| w[0].as_str());
            assert_eq!(first, Some("READONLY"), "{words:?}");
        }
    }
    drop(sim);
    net.shutdown_and_check();
}

#[test]
fn a_failed_replica_is_skipped_and_a_moved_slot_read_follows_the_redirect() {
    let mut sim = Sim::with_replicas();
    sim.nodes.get_mut(&7101).expect("replica").failed = true;
    let mut net = Net::with_config(sim, {
        let mut config = ClusterConfig::new(seeds(), node_config());
        config.read_from_replicas = true;
        config
    });
    let key = key_on(7001, 0);
    set_all(&mut net, std::slice::from_ref(&key));
    let id = net.send(&["GET", &key]);
    assert_eq!(net.reply(id), bulk(format!("v-{key}")));
    assert_eq!(
        net.sim.borrow().count(7001, "GET"),
        1,
        "read from the primary"
    );
    assert_eq!(net.sim.borrow().count(7101, "GET"), 0);
    // A slot of 7000 moves to 7002: 7000's replica redirects the read.
    let key = key_on(7000, 1);
    set_all(&mut net, std::slice::from_ref(&key));
    {
        let mut sim = net.sim.borrow_mut();
        let at = usize::from(slot(key.as_bytes()));
        sim.owner[at] = 7002;
        let value = sim
            .nodes
            .get_mut(&7000)
            .expect("node")
            .data
            .remove(key.as_bytes());
        sim.nodes
            .get_mut(&7002)
            .expect("node")
            .data
            .insert(Bytes::from(key.clone()), value.expect("set"));
    }
    let id = net.send(&["GET", &key]);
    assert_eq!(net.reply(id), bulk(format!("v-{key}")));
    assert_eq!(
        net.sim.borrow().count(7100, "GET"),
        1,
        "MOVED from the replica"
    );
    assert_eq!(net.sim.borrow().count(7002, "GET"), 1, "then the new owner");
    net.shutdown_and_check();
}

#[test]
fn without_the_option_replicas_get_nothing() {
    let mut net = Net::new(Sim::with_replicas(), seeds());
    let keys = spread_keys(1);
    set_all(&mut net, &keys);
    let id = net.send(&mget(&keys));
    assert!(matches!(net.reply(id), Frame::Array(_)));
    let sim = net.sim.borrow();
    assert!(sim.log.iter().all(|(p, ..)| *p < 7100), "{:?}", sim.log);
    drop(sim);
    net.shutdown_and_check();
}

#[test]
fn a_read_whose_replica_is_down_goes_to_the_primary() {
    let mut net = replica_reads();
    let key = key_on(7002, 0);
    set_all(&mut net, std::slice::from_ref(&key));
    // 7102 is down, and still announced online.
    net.kill(7102);
    let id = net.send(&["GET", &key]);
    net.until_done(id, Duration::from_secs(2));
    assert_eq!(net.reply(id), bulk(format!("v-{key}")));
    assert_eq!(net.sim.borrow().count(7002, "GET"), 1, "from the primary");
    assert_eq!(net.sim.borrow().count(7102, "GET"), 0);
    net.shutdown_and_check();
}

#[test]
fn when_every_primary_and_seed_died_the_refresh_asks_the_promoted_replicas() {
    // No deadline: only a refresh that reaches a live node moves the
    // request off the dead primary's reconnecting client.
    let mut config = ClusterConfig::new(seeds(), node_config());
    config.node.response_timeout = None;
    let mut net = Net::with_config(Sim::with_replicas(), config);
    for port in PORTS {
        let id = net.send(&["SET", &key_on(port, 0), "v"]);
        assert_eq!(net.reply(id), ok());
    }
    // Every primary (the seed among them) dies; each replica is promoted.
    for port in PORTS {
        {
            let mut sim = net.sim.borrow_mut();
            sim.move_all(port, port + 100);
            sim.nodes.get_mut(&port).expect("node").member = false;
            let replica = sim.nodes.get_mut(&(port + 100)).expect("replica");
            replica.replica_of = None;
            replica.member = true;
        }
        net.kill(port);
    }
    let id = net.send(&["SET", &key_on(7000, 1), "x"]);
    net.until_done(id, Duration::from_secs(10));
    assert_eq!(net.reply(id), ok(), "the topology was refreshed from 7100");
    let owner = net
        .client
        .topology()
        .owner(slot(key_on(7000, 1).as_bytes()))
        .map(ToString::to_string);
    assert_eq!(owner.as_deref(), Some("127.0.0.1:7100"));
    net.shutdown_and_check();
}

#[test]
fn the_cluster_client_says_which_sockets_it_expects_bytes_on() {
    let mut net = warmed_up();
    let sockets: Vec<(SocketId, u16)> = net.peers.iter().map(|(s, (p, _))| (*s, *p)).collect();
    assert_eq!(sockets.len(), 3, "one connection per node");
    for (socket, port) in &sockets {
        assert!(!net.client.expects_data(*socket), "{port}: quiet");
    }
    net.paused.insert(7001);
    let id = net.send(&["GET", &key_on(7001, 0)]);
    for (socket, port) in &sockets {
        assert_eq!(
            net.client.expects_data(*socket),
            *port == 7001,
            "{port}: only the node with the request in flight"
        );
    }
    net.paused.remove(&7001);
    net.run();
    assert_eq!(net.reply(id), bulk("v"));
    for (socket, port) in &sockets {
        assert!(!net.client.expects_data(*socket), "{port}: quiet again");
    }
    net.shutdown_and_check();
    for (socket, port) in &sockets {
        assert!(!net.client.expects_data(*socket), "{port}: closed");
    }
}
