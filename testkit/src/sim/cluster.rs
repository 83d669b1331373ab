//! Simulated Redis Cluster nodes for the cluster simulation
//! ([`cluster_world`](super::cluster_world)): slot ownership, `MOVED`,
//! `ASK` during a migration, `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`,
//! failover, nodes joining and leaving, and gossip lag.
//!
//! Each connection is a testkit [`Peer`](crate::peer::Peer) (the project's
//! own decoder and encoder) whose handler asks [`Cluster::answer`]; the
//! handshake (`HELLO`, `CLIENT`, `SELECT`) is the peer's default.
//!
//! # The model
//!
//! - One **authoritative owner** per slot ([`Cluster::owner`]); only it
//!   serves the slot's keys, except the importing node of a migration, for
//!   a command right after `ASKING`. So the data of a key is in exactly one
//!   node's key space at any time, and every acknowledged write is there.
//! - Each node has a **view**: the authoritative map, except for slots it
//!   still believes served by their old owner (gossip lag, until
//!   [`NodeState::lag_until`]). A lagging node answers `MOVED` to the old
//!   owner and describes the old map in `CLUSTER SHARDS` / `SLOTS`; the old
//!   owner knows better and answers `MOVED` to the new one.
//! - A **migration** moves a set of slots from one primary to another:
//!   the source serves keys it still holds, answers `ASK` for keys it no
//!   longer holds and `TRYAGAIN` for multi-key commands split between the
//!   two; the target serves after `ASKING`, answers `MOVED` (to the source)
//!   otherwise. Keys move in steps; the finish moves the rest and changes
//!   the owner.
//! - **Failover** gives a replica the slots and the data of its primary
//!   (replication is synchronous here, so no acknowledged write is lost).
//! - Redirects name the target as `127.0.0.1`, or, when
//!   [`Cluster::spellings`] is on, sometimes as `localhost` or
//!   `LOCALHOST.`: every spelling of the node (I4).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use redpoll_core::Instant;
use redpoll_core::cluster::{SLOT_COUNT, slot};
use redpoll_core::resp::Frame;

use super::rng::Rng;
use crate::peer::Answer;

/// The host every node announces.
pub const IP: &str = "127.0.0.1";

/// One node.
#[derive(Debug, Clone)]
pub struct NodeState {
    /// Its port (its identity on the simulated network).
    pub port: u16,
    /// Its 40-character node id.
    pub id: String,
    /// Its key space (a replica's is empty: it takes its primary's at
    /// failover).
    pub data: HashMap<Bytes, Bytes>,
    /// Accepts connections.
    pub up: bool,
    /// Announced by `CLUSTER SHARDS` / `SLOTS`.
    pub member: bool,
    /// `None` for a primary; the index of its primary for a replica.
    pub replica_of: Option<usize>,
    /// Key commands are answered `LOADING` until then.
    pub loading_until: Option<Instant>,
    /// Slots this node still believes served by an old owner.
    pub stale: BTreeMap<u16, usize>,
    /// Until when [`stale`](Self::stale) holds.
    pub lag_until: Instant,
}

/// A slot migration in progress.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The slots moving.
    pub slots: BTreeSet<u16>,
    /// The source (`MIGRATING`).
    pub from: usize,
    /// The target (`IMPORTING`).
    pub to: usize,
}

/// What the nodes answered, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answers {
    /// `MOVED` replies.
    pub moved: u64,
    /// `ASK` replies.
    pub ask: u64,
    /// `TRYAGAIN` replies.
    pub tryagain: u64,
    /// `CLUSTERDOWN` replies.
    pub clusterdown: u64,
    /// `LOADING` replies.
    pub loading: u64,
    /// `CLUSTER SHARDS` / `SLOTS` served.
    pub topology: u64,
    /// Key commands served.
    pub served: u64,
}

/// The whole simulated cluster, shared by every connection.
#[derive(Debug)]
pub struct Cluster {
    /// Every node ever, by index (nodes are never removed from here).
    pub nodes: Vec<NodeState>,
    /// The authoritative owner of each slot (a node index).
    pub owner: Vec<usize>,
    /// The migration in progress.
    pub migration: Option<Migration>,
    /// Every key command is answered `CLUSTERDOWN` until then.
    pub down_until: Option<Instant>,
    /// `CLUSTER SHARDS` is unknown (a Redis 6 node).
    pub no_shards: bool,
    /// Redirects sometimes spell the node `localhost` / `LOCALHOST.`.
    pub spellings: bool,
    /// The time, set by the world before each delivery.
    pub now: Instant,
    /// What was answered.
    pub answers: Answers,
    rng: Rng,
}

fn bulk(s: impl Into<Bytes>) -> Frame {
    Frame::Bulk(s.into())
}

fn error(s: impl Into<String>) -> Answer {
    Answer::Reply(Frame::Error(Bytes::from(s.into())))
}

impl Cluster {
    /// `primaries` primaries on ports 7000.., the slots split evenly, a
    /// replica (ports 7100..) for each primary in `replicas`.
    #[must_use]
    pub fn new(primaries: usize, replicas: &[bool], rng: Rng) -> Self {
        let mut nodes: Vec<NodeState> = (0..primaries)
            .map(|i| node(7000 + i as u16, None))
            .collect();
        for (i, _) in replicas.iter().enumerate().filter(|(_, r)| **r) {
            nodes.push(node(7100 + i as u16, Some(i)));
        }
        let per = usize::from(SLOT_COUNT).div_ceil(primaries);
        let owner = (0..usize::from(SLOT_COUNT)).map(|s| s / per).collect();
        Self {
            nodes,
            owner,
            migration: None,
            down_until: None,
            no_shards: false,
            spellings: false,
            now: Instant::ZERO,
            answers: Answers::default(),
            rng,
        }
    }

    /// Adds a node (a primary without slots, or a replica of `replica_of`),
    /// returning its index.
    pub fn add_node(&mut self, port: u16, replica_of: Option<usize>) -> usize {
        self.nodes.push(node(port, replica_of));
        self.nodes.len() - 1
    }

    /// The node listening on `port`.
    #[must_use]
    pub fn by_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port == port)
    }

    /// The primaries announced now.
    #[must_use]
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].member && self.nodes[i].replica_of.is_none())
            .collect()
    }

    /// Who node `n` believes serves `slot`.
    #[must_use]
    pub fn view_owner(&self, n: usize, slot: u16) -> usize {
        let node = &self.nodes[n];
        let owner = self.owner[usize::from(slot)];
        // A node always knows its own slots: only others' news lags.
        if owner != n
            && node.lag_until > self.now
            && let Some(&old) = node.stale.get(&slot)
            && old != n
        {
            return old;
        }
        owner
    }

    fn spelled(&mut self, n: usize) -> String {
        let host = if self.spellings {
            match self.rng.below(10) {
                0 | 1 => "localhost",
                2 | 3 => "LOCALHOST.",
                _ => IP,
            }
        } else {
            IP
        };
        format!("{host}:{}", self.nodes[n].port)
    }

    fn moved(&mut self, slot: u16, to: usize) -> Answer {
        self.answers.moved += 1;
        let at = self.spelled(to);
        error(format!("MOVED {slot} {at}"))
    }

    /// The answer of node `n` to `args`, on a connection whose `ASKING`
    /// flag is `asking`; `None` for the peer's default (the handshake).
    pub fn answer(&mut self, n: usize, asking: &mut bool, args: &[Bytes]) -> Option<Answer> {
        let name = args[0].to_ascii_uppercase();
        let was_asking = std::mem::take(asking);
        match name.as_slice() {
            b"HELLO" | b"CLIENT" | b"SELECT" | b"AUTH" => None,
            b"ASKING" => {
                *asking = true;
                Some(Answer::Reply(Frame::Simple(Bytes::from_static(b"OK"))))
            }
            b"PING" => Some(Answer::Reply(Frame::Simple(Bytes::from_static(b"PONG")))),
            b"CLUSTER" => Some(self.cluster(n, args)),
            b"GET" | b"SET" | b"MGET" => Some(self.key_command(n, was_asking, &name, args)),
            _ => Some(error(format!(
                "ERR unknown command '{}'",
                String::from_utf8_lossy(&args[0])
            ))),
        }
    }

    fn cluster(&mut self, n: usize, args: &[Bytes]) -> Answer {
        let sub = args
            .get(1)
            .map(|a| a.to_ascii_uppercase())
            .unwrap_or_default();
        match sub.as_slice() {
            b"SHARDS" if self.no_shards => {
                error("ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP.")
            }
            b"SHARDS" => {
                self.answers.topology += 1;
                Answer::Reply(self.shards(n))
            }
            b"SLOTS" => {
                self.answers.topology += 1;
                Answer::Reply(self.slots(n))
            }
            b"MYID" => Answer::Reply(bulk(self.nodes[n].id.clone())),
            _ => error("ERR unknown subcommand"),
        }
    }

    fn key_command(&mut self, n: usize, asking: bool, name: &[u8], args: &[Bytes]) -> Answer {
        let keys: Vec<&Bytes> = match name {
            b"MGET" => args[1..].iter().collect(),
            _ => args.get(1).into_iter().collect(),
        };
        let Some(first) = keys.first() else {
            return error("ERR wrong number of arguments");
        };
        let s = slot(first);
        if keys.iter().any(|k| slot(k) != s) {
            return error("CROSSSLOT Keys in request don't hash to the same slot");
        }
        if self.nodes[n].loading_until.is_some_and(|t| t > self.now) {
            self.answers.loading += 1;
            return error("LOADING Redis is loading the dataset in memory");
        }
        if let Some(primary) = self.nodes[n].replica_of {
            let owner = self.view_owner(primary, s);
            return self.moved(s, owner);
        }
        if self.down_until.is_some_and(|t| t > self.now) {
            self.answers.clusterdown += 1;
            return error("CLUSTERDOWN The cluster is down");
        }
        let migrating = self
            .migration
            .as_ref()
            .filter(|m| m.slots.contains(&s))
            .map(|m| (m.from, m.to));
        let present = keys
            .iter()
            .filter(|k| self.nodes[n].data.contains_key(**k))
            .count();
        match migrating {
            Some((from, to)) if n == from => {
                if present == 0 {
                    self.answers.ask += 1;
                    let at = self.spelled(to);
                    return error(format!("ASK {s} {at}"));
                }
                if present < keys.len() {
                    self.answers.tryagain += 1;
                    return error("TRYAGAIN Multiple keys request during rehashing of slot");
                }
            }
            Some((from, to)) if n == to => {
                if !asking {
                    return self.moved(s, from);
                }
                if keys.len() > 1 && present < keys.len() {
                    self.answers.tryagain += 1;
                    return error("TRYAGAIN Multiple keys request during rehashing of slot");
                }
            }
            _ => {
                let owner = self.view_owner(n, s);
                if owner != n {
                    return self.moved(s, owner);
                }
            }
        }
        self.answers.served += 1;
        let data = &mut self.nodes[n].data;
        Answer::Reply(match name {
            b"GET" => data
                .get(first.as_ref())
                .cloned()
                .map_or(Frame::Null, Frame::Bulk),
            b"SET" => {
                let value = args.get(2).cloned().unwrap_or_default();
                data.insert((*first).clone(), value);
                Frame::Simple(Bytes::from_static(b"OK"))
            }
            _ => Frame::Array(
                keys.iter()
                    .map(|k| {
                        data.get(k.as_ref())
                            .cloned()
                            .map_or(Frame::Null, Frame::Bulk)
                    })
                    .collect(),
            ),
        })
    }

    /// The slot ranges node `n` believes each node serves.
    fn ranges(&self, n: usize) -> BTreeMap<usize, Vec<(i64, i64)>> {
        let mut out: BTreeMap<usize, Vec<(i64, i64)>> = BTreeMap::new();
        for s in 0..SLOT_COUNT {
            let ranges = out.entry(self.view_owner(n, s)).or_default();
            let s = i64::from(s);
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == s => *end = s,
                _ => ranges.push((s, s)),
            }
        }
        out
    }

    /// The shards as node `n` sees them: the announced primaries, and any
    /// node it believes still serves slots.
    fn shard_primaries(&self, n: usize) -> Vec<usize> {
        let mut out = self.primaries();
        if self.nodes[n].lag_until > self.now {
            for &old in self.nodes[n].stale.values() {
                if !out.contains(&old) {
                    out.push(old);
                }
            }
        }
        out
    }

    fn replicas_of(&self, p: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].member && self.nodes[i].replica_of == Some(p))
            .collect()
    }

    fn health(&self, n: usize) -> &'static str {
        if self.nodes[n].up { "online" } else { "fail" }
    }

    fn shards(&self, n: usize) -> Frame {
        let describe = |i: usize, role: &str| {
            Frame::Map(vec![
                (bulk("id"), bulk(self.nodes[i].id.clone())),
                (bulk("port"), Frame::Integer(i64::from(self.nodes[i].port))),
                (bulk("ip"), bulk(IP)),
                (bulk("endpoint"), bulk(IP)),
                (bulk("role"), bulk(role.to_owned())),
                (bulk("replication-offset"), Frame::Integer(0)),
                (bulk("health"), bulk(self.health(i))),
            ])
        };
        let mut ranges = self.ranges(n);
        Frame::Array(
            self.shard_primaries(n)
                .into_iter()
                .map(|p| {
                    let slots = ranges
                        .remove(&p)
                        .unwrap_or_default()
                        .into_iter()
                        .flat_map(|(a, b)| [Frame::Integer(a), Frame::Integer(b)])
                        .collect();
                    let nodes = std::iter::once(describe(p, "master"))
                        .chain(
                            self.replicas_of(p)
                                .into_iter()
                                .map(|r| describe(r, "replica")),
                        )
                        .collect();
                    Frame::Map(vec![
                        (bulk("slots"), Frame::Array(slots)),
                        (bulk("nodes"), Frame::Array(nodes)),
                    ])
                })
                .collect(),
        )
    }

    fn slots(&self, n: usize) -> Frame {
        let endpoint = |i: usize| {
            Frame::Array(vec![
                bulk(IP),
                Frame::Integer(i64::from(self.nodes[i].port)),
                bulk(self.nodes[i].id.clone()),
            ])
        };
        let mut out = Vec::new();
        let mut ranges = self.ranges(n);
        for p in self.shard_primaries(n) {
            for (a, b) in ranges.remove(&p).unwrap_or_default() {
                let mut entry = vec![Frame::Integer(a), Frame::Integer(b), endpoint(p)];
                entry.extend(self.replicas_of(p).into_iter().map(endpoint));
                out.push(Frame::Array(entry));
            }
        }
        Frame::Array(out)
    }

    /// Moves the keys of `slots` held by `from` that `pick` selects to `to`
    /// (a `MIGRATE`: atomic per key).
    pub fn move_keys(
        &mut self,
        from: usize,
        to: usize,
        slots: &BTreeSet<u16>,
        mut pick: impl FnMut() -> bool,
    ) {
        let mut moving: Vec<Bytes> = self.nodes[from]
            .data
            .keys()
            .filter(|k| slots.contains(&slot(k)))
            .cloned()
            .collect();
        moving.sort();
        for key in moving {
            if pick()
                && let Some(value) = self.nodes[from].data.remove(&key)
            {
                self.nodes[to].data.insert(key, value);
            }
        }
    }

    /// Finishes the migration: the rest of the keys move, the slots change
    /// owner, and the nodes in `lagging` keep the old map until `lag_until`.
    pub fn finish_migration(&mut self, lagging: &[usize], lag_until: Instant) {
        let Some(m) = self.migration.take() else {
            return;
        };
        self.move_keys(m.from, m.to, &m.slots, || true);
        for &s in &m.slots {
            self.owner[usize::from(s)] = m.to;
        }
        for &n in lagging {
            if n == m.from || n == m.to {
                continue;
            }
            let node = &mut self.nodes[n];
            if node.lag_until <= self.now {
                node.stale.clear();
            }
            for &s in &m.slots {
                node.stale.entry(s).or_insert(m.from);
            }
            node.lag_until = node.lag_until.max(lag_until);
        }
    }

    /// The slots `p` owns.
    #[must_use]
    pub fn slots_of(&self, p: usize) -> BTreeSet<u16> {
        (0..SLOT_COUNT)
            .filter(|&s| self.owner[usize::from(s)] == p)
            .collect()
    }

    /// Replica `r` takes over its primary's slots and data.
    pub fn promote(&mut self, r: usize) {
        let Some(p) = self.nodes[r].replica_of else {
            return;
        };
        self.nodes[r].data = std::mem::take(&mut self.nodes[p].data);
        self.nodes[r].replica_of = None;
        self.nodes[r].stale.clear();
        for owner in &mut self.owner {
            if *owner == p {
                *owner = r;
            }
        }
        for node in &mut self.nodes {
            if node.replica_of == Some(p) {
                node.replica_of = Some(r);
            }
            for old in node.stale.values_mut() {
                if *old == p {
                    *old = r;
                }
            }
        }
        self.nodes[p].member = false;
    }
}

fn node(port: u16, replica_of: Option<usize>) -> NodeState {
    NodeState {
        port,
        id: format!("{:040x}", u64::from(port) * 0x1_0000_0001),
        data: HashMap::new(),
        up: true,
        member: true,
        replica_of,
        loading_until: None,
        stale: BTreeMap::new(),
        lag_until: Instant::ZERO,
    }
}
