//! The cluster's shape: shards (a primary and its replicas), the nodes'
//! announced addresses, and which shard serves each hash slot.
//!
//! A [`Topology`] is read from a `CLUSTER SHARDS` reply
//! ([`Topology::from_shards`], Redis 7+), or from `CLUSTER SLOTS`
//! ([`Topology::from_slots`]) on older servers, in RESP2 or RESP3. It is
//! changed in two ways only: a `MOVED` moves one slot at once
//! ([`Topology::set_owner`]), and a refresh replaces everything
//! ([`Topology::update`]), saying which nodes left the cluster.
//!
//! # Invariants
//!
//! - **Every node name went through [`NodeKeys`]**: the parsers take the
//!   registry and never build a key otherwise (I4).
//! - **One place per node.** A node appears in at most one shard, in one
//!   role; a reply that lists a node twice is refused. So [`Topology::nodes`]
//!   lists every node once and its keys can key pools.
//! - **One owner per slot.** Each slot maps to at most one shard, whose
//!   primary is the slot's [`owner`](Topology::owner). A reply that assigns a
//!   slot twice is refused; since every slot is then written at most once, a
//!   parse costs O(slots + reply size) whatever the reply says.
//! - **Hostile replies are errors, never panics**: any frame, of any shape,
//!   gives a `Topology` or a [`TopologyError`].
//! - **A version that only grows.** [`Topology::version`] increases with
//!   every change (`set_owner` that moved a slot, every `update`), so a
//!   request can tell whether the map changed since it was routed.
//!
//! Which address each node is reached at is documented on [`Topology`].

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;

use super::node::{InvalidHost, NodeKey, NodeKeys};
use super::slot::SLOT_COUNT;
use crate::resp::Frame;

/// The slot map's mark for a slot no shard serves.
const UNASSIGNED: u16 = u16::MAX;

/// The nodes of the cluster and the owner of every slot.
///
/// # Which address a node is reached at
///
/// Following the `CLUSTER SHARDS` / `CLUSTER SLOTS` documentation and what
/// redis-server 7.0 sends:
///
/// | announced endpoint | meaning | key |
/// |---|---|---|
/// | an IP or a host name | the preferred endpoint | that endpoint |
/// | `?` | hostnames preferred but none configured | the `ip` field, else the node that answered |
/// | empty, or null (`CLUSTER SLOTS`) | unknown endpoint (behind a load balancer), or a node that does not know its own IP yet | the host of the node that answered |
///
/// and the port is `tls-port` when the client uses TLS and the node announces
/// one, `port` otherwise (`CLUSTER SLOTS` gives one port, which the server
/// picks for the connection's kind).
#[derive(Debug, Clone)]
pub struct Topology {
    shards: Vec<Shard>,
    /// The index in `shards` of the shard serving each slot, or
    /// [`UNASSIGNED`]; `SLOT_COUNT` entries.
    slots: Box<[u16]>,
    version: u64,
}

/// A primary and its replicas, serving the same slots.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The node that serves writes.
    pub primary: Node,
    /// The nodes replicating from it.
    pub replicas: Vec<Node>,
}

/// One node, as the cluster announced it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its key: where the client reaches it (see the module docs).
    pub key: NodeKey,
    /// The 40-character node id, when announced.
    pub id: Option<String>,
    /// The announced IP, verbatim (empty when the node does not know it).
    pub ip: Option<String>,
    /// The announced host name, verbatim.
    pub hostname: Option<String>,
    /// The announced plain TCP port.
    pub port: Option<u16>,
    /// The announced TLS port.
    pub tls_port: Option<u16>,
    /// Whether it serves traffic.
    pub health: Health,
    /// Its replication offset, when announced: the replica with the highest
    /// is the most up to date.
    pub replication_offset: Option<i64>,
}

impl Node {
    /// A node known only by its key (from a `MOVED`).
    fn known_only_by(key: NodeKey) -> Self {
        Self {
            key,
            id: None,
            ip: None,
            hostname: None,
            port: None,
            tls_port: None,
            health: Health::Unknown,
            replication_offset: None,
        }
    }
}

/// A node's health, as `CLUSTER SHARDS` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Serves traffic.
    Online,
    /// Marked failed by the cluster.
    Failed,
    /// Loading its data set: not serving yet, but will.
    Loading,
    /// Not reported (`CLUSTER SLOTS`, a node learnt from a `MOVED`) or a
    /// value this client does not know.
    Unknown,
}

/// Why a `CLUSTER SHARDS` / `CLUSTER SLOTS` reply gave no topology.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyError {
    /// The server answered with an error: the message (an older server
    /// without `CLUSTER SHARDS` says `ERR unknown subcommand`; fall back to
    /// `CLUSTER SLOTS`).
    Server(Bytes),
    /// The reply does not have the command's shape: the text says what was
    /// expected.
    Malformed(&'static str),
    /// A required field is missing.
    MissingField(&'static str),
    /// A slot range outside `0..16384`, or with its start after its end.
    SlotRange {
        /// The first slot of the range.
        start: i64,
        /// The last slot of the range.
        end: i64,
    },
    /// A slot assigned twice.
    SlotConflict(u16),
    /// A port outside `1..=65535`.
    Port(i64),
    /// An endpoint that is not a host.
    Host(InvalidHost),
    /// A shard without exactly one primary: how many it has.
    Primaries(usize),
    /// A node listed twice.
    DuplicateNode(NodeKey),
    /// More shards than the slot map can index.
    TooManyShards,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server(message) => match core::str::from_utf8(message) {
                Ok(text) => write!(f, "the server refused: {text}"),
                Err(_) => write!(f, "the server refused: {}", message.escape_ascii()),
            },
            Self::Malformed(expected) => write!(f, "malformed reply: expected {expected}"),
            Self::MissingField(field) => write!(f, "a node or shard has no `{field}`"),
            Self::SlotRange { start, end } => write!(f, "invalid slot range {start}-{end}"),
            Self::SlotConflict(slot) => write!(f, "slot {slot} is assigned twice"),
            Self::Port(port) => write!(f, "invalid port {port}"),
            Self::Host(e) => write!(f, "invalid endpoint: {e}"),
            Self::Primaries(n) => write!(f, "a shard has {n} primaries instead of one"),
            Self::DuplicateNode(node) => write!(f, "node {node} is listed twice"),
            Self::TooManyShards => f.write_str("too many shards"),
        }
    }
}

impl From<InvalidHost> for TopologyError {
    fn from(e: InvalidHost) -> Self {
        Self::Host(e)
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

impl Topology {
    /// No shards, no slot served: what a client knows before its first
    /// refresh.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shards: Vec::new(),
            slots: vec![UNASSIGNED; usize::from(SLOT_COUNT)].into_boxed_slice(),
            version: 0,
        }
    }

    /// The topology a `CLUSTER SHARDS` reply describes.
    ///
    /// `from` is the node that answered (the host of endpoints announced as
    /// unknown); `tls` whether the client connects with TLS (which port to
    /// use).
    ///
    /// # Errors
    ///
    /// A [`TopologyError`] when the reply is an error or not a valid
    /// description of a cluster.
    pub fn from_shards(
        reply: &Frame,
        from: &NodeKey,
        tls: bool,
        keys: &NodeKeys,
    ) -> Result<Self, TopologyError> {
        let mut builder = Builder::new();
        for shard in items(server_reply(reply)?, "an array of shards")? {
            let mut slots = None;
            let mut nodes = None;
            for_each_field(shard, "a shard map", |name, value| {
                match name {
                    b"slots" => slots = Some(items(value, "an array of slots")?),
                    b"nodes" => nodes = Some(items(value, "an array of nodes")?),
                    _ => {}
                }
                Ok(())
            })?;
            let slots = slots.ok_or(TopologyError::MissingField("slots"))?;
            let nodes = nodes.ok_or(TopologyError::MissingField("nodes"))?;

            let mut primaries = Vec::new();
            let mut replicas = Vec::new();
            for node in nodes {
                let (node, role) = shard_node(node, from, tls, keys)?;
                match role {
                    Role::Primary => primaries.push(node),
                    Role::Replica => replicas.push(node),
                }
            }
            let primary = match <[Node; 1]>::try_from(primaries) {
                Ok([primary]) => primary,
                Err(primaries) => return Err(TopologyError::Primaries(primaries.len())),
            };
            let shard = builder.add_shard(Shard { primary, replicas })?;

            if !slots.len().is_multiple_of(2) {
                return Err(TopologyError::Malformed("slot ranges as start/end pairs"));
            }
            for range in slots.chunks_exact(2) {
                builder.assign(&range[0], &range[1], shard)?;
            }
        }
        Ok(builder.finish())
    }

    /// The topology a `CLUSTER SLOTS` reply describes: the fallback for
    /// servers before Redis 7. Nodes have [`Health::Unknown`] (the reply
    /// leaves failed nodes out).
    ///
    /// `from` is the node that answered (the host of endpoints announced as
    /// unknown).
    ///
    /// # Errors
    ///
    /// A [`TopologyError`] when the reply is an error or not a valid
    /// description of a cluster.
    pub fn from_slots(
        reply: &Frame,
        from: &NodeKey,
        keys: &NodeKeys,
    ) -> Result<Self, TopologyError> {
        let mut builder = Builder::new();
        for range in items(server_reply(reply)?, "an array of slot ranges")? {
            let range = items(range, "a slot range entry")?;
            let [start, end, primary, replicas @ ..] = range else {
                return Err(TopologyError::Malformed("start, end and a primary"));
            };
            let primary = slots_node(primary, from, keys)?;
            let shard = match builder.shard_of(&primary.key) {
                Some(shard) if builder.is_primary(shard, &primary.key) => shard,
                Some(_) => return Err(TopologyError::DuplicateNode(primary.key)),
                None => builder.add_shard(Shard {
                    primary,
                    replicas: Vec::new(),
                })?,
            };
            for replica in replicas {
                builder.add_replica(shard, slots_node(replica, from, keys)?)?;
            }
            builder.assign(start, end, shard)?;
        }
        Ok(builder.finish())
    }

    /// How many times the topology changed: grows with every slot moved by
    /// [`set_owner`](Self::set_owner) and every [`update`](Self::update).
    #[must_use]
    pub const fn version(&self) -> u64 {
        self.version
    }

    /// The primary serving `slot`, if any shard does.
    #[must_use]
    pub fn owner(&self, slot: u16) -> Option<&NodeKey> {
        self.shard(slot).map(|shard| &shard.primary.key)
    }

    /// The replicas of the shard serving `slot` (empty when none does).
    #[must_use]
    pub fn replicas(&self, slot: u16) -> &[Node] {
        self.shard(slot).map_or(&[], |shard| &shard.replicas)
    }

    /// The shard serving `slot`, if any.
    #[must_use]
    pub fn shard(&self, slot: u16) -> Option<&Shard> {
        let index = *self.slots.get(usize::from(slot))?;
        self.shards.get(usize::from(index))
    }

    /// Every shard, including shards that serve no slot.
    #[must_use]
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Every node, each once: each shard's primary, then its replicas.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.shards
            .iter()
            .flat_map(|shard| core::iter::once(&shard.primary).chain(&shard.replicas))
    }

    /// The node with this key, if it is part of the topology.
    #[must_use]
    pub fn node(&self, key: &NodeKey) -> Option<&Node> {
        self.nodes().find(|node| node.key == *key)
    }

    /// Whether every slot is served.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.slots.iter().all(|&shard| shard != UNASSIGNED)
    }

    /// Makes `node` the owner of `slot`, as a `MOVED` says: at once, without
    /// waiting for a refresh. A node that was a replica is taken out of its
    /// shard (a failover promoted it); a node the topology does not know
    /// becomes the primary of a new shard. Returns whether anything changed
    /// (not for a slot out of range or an owner already in place).
    pub fn set_owner(&mut self, slot: u16, node: NodeKey) -> bool {
        if slot >= SLOT_COUNT || self.owner(slot) == Some(&node) {
            return false;
        }
        let Some(shard) = self.shard_led_by(node) else {
            return false;
        };
        self.slots[usize::from(slot)] = shard;
        self.version += 1;
        true
    }

    /// The index of the shard `node` is the primary of, making one when
    /// there is none (taking the node out of a replica list if it is in
    /// one); `None` when the slot map cannot index another shard.
    fn shard_led_by(&mut self, node: NodeKey) -> Option<u16> {
        if let Some(index) = self.shards.iter().position(|s| s.primary.key == node) {
            return u16::try_from(index).ok();
        }
        let index = u16::try_from(self.shards.len())
            .ok()
            .filter(|&index| index != UNASSIGNED)?;
        let promoted = self.shards.iter_mut().find_map(|shard| {
            let at = shard.replicas.iter().position(|r| r.key == node)?;
            Some(shard.replicas.remove(at))
        });
        self.shards.push(Shard {
            primary: promoted.unwrap_or_else(|| Node::known_only_by(node)),
            replicas: Vec::new(),
        });
        Some(index)
    }

    /// Replaces this topology with a refreshed one, keeping the version
    /// growing. Returns the nodes that left: the client forgets them and
    /// closes their connections.
    pub fn update(&mut self, fresh: Self) -> Vec<NodeKey> {
        let staying: BTreeSet<&NodeKey> = fresh.nodes().map(|node| &node.key).collect();
        let left = self
            .nodes()
            .filter(|node| !staying.contains(&node.key))
            .map(|node| node.key.clone())
            .collect();
        let version = self.version + 1;
        *self = fresh;
        self.version = version;
        left
    }
}

/// A topology under construction, enforcing the invariants as it goes.
struct Builder {
    topology: Topology,
    /// Which shard each node is in.
    homes: BTreeMap<NodeKey, u16>,
}

impl Builder {
    fn new() -> Self {
        Self {
            topology: Topology::new(),
            homes: BTreeMap::new(),
        }
    }

    fn add_shard(&mut self, shard: Shard) -> Result<u16, TopologyError> {
        let index = u16::try_from(self.topology.shards.len())
            .ok()
            .filter(|&index| index != UNASSIGNED)
            .ok_or(TopologyError::TooManyShards)?;
        for node in core::iter::once(&shard.primary).chain(&shard.replicas) {
            self.claim(&node.key, index)?;
        }
        self.topology.shards.push(shard);
        Ok(index)
    }

    /// Adds a replica to a shard; listing it again in the same shard (as
    /// `CLUSTER SLOTS` does for each range of a primary) is no change.
    fn add_replica(&mut self, shard: u16, node: Node) -> Result<(), TopologyError> {
        if self.homes.get(&node.key) == Some(&shard) && !self.is_primary(shard, &node.key) {
            return Ok(());
        }
        self.claim(&node.key, shard)?;
        self.topology.shards[usize::from(shard)].replicas.push(node);
        Ok(())
    }

    fn claim(&mut self, key: &NodeKey, shard: u16) -> Result<(), TopologyError> {
        if self.homes.insert(key.clone(), shard).is_some() {
            return Err(TopologyError::DuplicateNode(key.clone()));
        }
        Ok(())
    }

    fn shard_of(&self, key: &NodeKey) -> Option<u16> {
        self.homes.get(key).copied()
    }

    fn is_primary(&self, shard: u16, key: &NodeKey) -> bool {
        self.topology.shards[usize::from(shard)].primary.key == *key
    }

    /// Assigns the inclusive range `start..=end` to `shard`.
    fn assign(&mut self, start: &Frame, end: &Frame, shard: u16) -> Result<(), TopologyError> {
        let start = integer(start, "a slot number")?;
        let end = integer(end, "a slot number")?;
        let range = u16::try_from(start)
            .ok()
            .zip(u16::try_from(end).ok())
            .filter(|&(s, e)| s <= e && e < SLOT_COUNT)
            .ok_or(TopologyError::SlotRange { start, end })?;
        for slot in range.0..=range.1 {
            let entry = &mut self.topology.slots[usize::from(slot)];
            if *entry != UNASSIGNED {
                return Err(TopologyError::SlotConflict(slot));
            }
            *entry = shard;
        }
        Ok(())
    }

    fn finish(self) -> Topology {
        self.topology
    }
}

enum Role {
    Primary,
    Replica,
}

/// One node of a `CLUSTER SHARDS` shard, and its role.
fn shard_node(
    frame: &Frame,
    from: &NodeKey,
    tls: bool,
    keys: &NodeKeys,
) -> Result<(Node, Role), TopologyError> {
    let mut id = None;
    let mut ip = None;
    let mut endpoint = None;
    let mut hostname = None;
    let mut port = None;
    let mut tls_port = None;
    let mut role = None;
    let mut health = Health::Unknown;
    let mut replication_offset = None;
    for_each_field(frame, "a node map", |name, value| {
        match name {
            b"id" => id = Some(string(value, "a node id")?),
            b"ip" => ip = Some(string(value, "an IP")?),
            b"endpoint" => endpoint = Some(string(value, "an endpoint")?),
            b"hostname" => hostname = Some(string(value, "a host name")?),
            b"port" => port = Some(port_number(value)?),
            b"tls-port" => tls_port = Some(port_number(value)?),
            b"role" => {
                role = Some(match text(value) {
                    Some(b"master" | b"primary") => Role::Primary,
                    Some(b"slave" | b"replica") => Role::Replica,
                    _ => return Err(TopologyError::Malformed("a role")),
                });
            }
            b"health" => {
                health = match text(value) {
                    Some(b"online") => Health::Online,
                    Some(b"failed" | b"fail") => Health::Failed,
                    Some(b"loading") => Health::Loading,
                    Some(_) => Health::Unknown,
                    None => return Err(TopologyError::Malformed("a health")),
                };
            }
            b"replication-offset" => {
                replication_offset = Some(integer(value, "a replication offset")?);
            }
            _ => {}
        }
        Ok(())
    })?;
    let role = role.ok_or(TopologyError::MissingField("role"))?;
    let chosen = if tls { tls_port.or(port) } else { port };
    let chosen = chosen.ok_or(TopologyError::MissingField(if tls {
        "tls-port"
    } else {
        "port"
    }))?;
    let key = endpoint_key(endpoint.as_deref(), ip.as_deref(), chosen, from, keys)?;
    let node = Node {
        key,
        id,
        ip,
        hostname,
        port,
        tls_port,
        health,
        replication_offset,
    };
    Ok((node, role))
}

/// One node of a `CLUSTER SLOTS` range: endpoint, port, then optionally the
/// id and a metadata map (`ip`, `hostname`).
fn slots_node(frame: &Frame, from: &NodeKey, keys: &NodeKeys) -> Result<Node, TopologyError> {
    let [endpoint, port, rest @ ..] = items(frame, "a node array")? else {
        return Err(TopologyError::Malformed("an endpoint and a port"));
    };
    let endpoint = match endpoint.without_attributes() {
        frame if frame.is_null() => None,
        frame => Some(string(frame, "an endpoint")?),
    };
    let port = port_number(port)?;
    let id = match rest.first() {
        Some(id) => Some(string(id, "a node id")?),
        None => None,
    };
    let mut ip = None;
    let mut hostname = None;
    if let Some(metadata) = rest.get(1) {
        for_each_field(metadata, "a metadata map", |name, value| {
            match name {
                b"ip" => ip = Some(string(value, "an IP")?),
                b"hostname" => hostname = Some(string(value, "a host name")?),
                _ => {}
            }
            Ok(())
        })?;
    }
    let key = endpoint_key(endpoint.as_deref(), ip.as_deref(), port, from, keys)?;
    Ok(Node {
        key,
        id,
        ip,
        hostname,
        port: Some(port),
        tls_port: None,
        health: Health::Unknown,
        replication_offset: None,
    })
}

/// The key of a node from its announced endpoint and IP: the table of the
/// module docs.
fn endpoint_key(
    endpoint: Option<&str>,
    ip: Option<&str>,
    port: u16,
    from: &NodeKey,
    keys: &NodeKeys,
) -> Result<NodeKey, TopologyError> {
    let host = match endpoint {
        Some("?") => ip.filter(|ip| !ip.is_empty() && *ip != "?"),
        Some("") | None => None,
        Some(endpoint) => Some(endpoint),
    };
    match host {
        Some(host) => Ok(keys.key(host, port)?),
        None => Ok(from.with_port(port)),
    }
}

/// The reply, unless it is an error.
fn server_reply(reply: &Frame) -> Result<&Frame, TopologyError> {
    match reply.without_attributes() {
        Frame::Error(message) | Frame::BulkError(message) => {
            Err(TopologyError::Server(message.clone()))
        }
        frame => Ok(frame),
    }
}

fn items<'a>(frame: &'a Frame, expected: &'static str) -> Result<&'a [Frame], TopologyError> {
    match frame.without_attributes() {
        Frame::Array(items) | Frame::Set(items) => Ok(items),
        _ => Err(TopologyError::Malformed(expected)),
    }
}

/// Calls `f` with each field of a RESP3 map or of a RESP2 array of
/// alternating names and values. Names that are not strings are refused.
fn for_each_field<'a>(
    frame: &'a Frame,
    expected: &'static str,
    mut f: impl FnMut(&'a [u8], &'a Frame) -> Result<(), TopologyError>,
) -> Result<(), TopologyError> {
    let name = |frame: &'a Frame| text(frame).ok_or(TopologyError::Malformed(expected));
    match frame.without_attributes() {
        Frame::Map(pairs) => pairs.iter().try_for_each(|(k, v)| f(name(k)?, v)),
        Frame::Array(items) if items.len().is_multiple_of(2) => items
            .chunks_exact(2)
            .try_for_each(|pair| f(name(&pair[0])?, &pair[1])),
        _ => Err(TopologyError::Malformed(expected)),
    }
}

fn text(frame: &Frame) -> Option<&[u8]> {
    match frame.without_attributes() {
        Frame::Bulk(bytes) | Frame::Simple(bytes) => Some(bytes),
        Frame::Verbatim { text, .. } => Some(text),
        _ => None,
    }
}

fn string(frame: &Frame, expected: &'static str) -> Result<String, TopologyError> {
    text(frame)
        .and_then(|bytes| core::str::from_utf8(bytes).ok())
        .map(String::from)
        .ok_or(TopologyError::Malformed(expected))
}

fn integer(frame: &Frame, expected: &'static str) -> Result<i64, TopologyError> {
    match frame.without_attributes() {
        Frame::Integer(n) => Ok(*n),
        _ => Err(TopologyError::Malformed(expected)),
    }
}

fn port_number(frame: &Frame) -> Result<u16, TopologyError> {
    let port = integer(frame, "a port number")?;
    u16::try_from(port)
        .ok()
        .filter(|&port| port != 0)
        .ok_or(TopologyError::Port(port))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::resp::Decoder;
    use alloc::format;
    use alloc::string::ToString;
    use bytes::BytesMut;

    /// Decodes one RESP frame.
    pub(crate) fn frame(wire: &[u8]) -> Frame {
        let mut buf = BytesMut::from(wire);
        let mut decoder = Decoder::default();
        decoder
            .decode(&mut buf)
            .expect("valid RESP")
            .expect("a whole frame")
    }

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// A RESP3 map frame from field names and values.
    pub(crate) fn map(fields: Vec<(&str, Frame)>) -> Frame {
        Frame::Map(fields.into_iter().map(|(k, v)| (bulk(k), v)).collect())
    }

    /// The same fields as a RESP2 flat array.
    fn flat(fields: Vec<(&str, Frame)>) -> Frame {
        Frame::Array(fields.into_iter().flat_map(|(k, v)| [bulk(k), v]).collect())
    }

    pub(crate) fn shards_node(
        ip: &str,
        port: i64,
        role: &str,
        health: &str,
    ) -> Vec<(&'static str, Frame)> {
        vec![
            ("id", bulk(&format!("{port:040}"))),
            ("port", Frame::Integer(port)),
            ("ip", bulk(ip)),
            ("endpoint", bulk(ip)),
            ("role", bulk(role)),
            ("replication-offset", Frame::Integer(72156)),
            ("health", bulk(health)),
        ]
    }

    pub(crate) fn shard(
        ranges: &[(i64, i64)],
        nodes: Vec<Vec<(&'static str, Frame)>>,
        encode: fn(Vec<(&str, Frame)>) -> Frame,
    ) -> Frame {
        let slots = ranges
            .iter()
            .flat_map(|&(s, e)| [Frame::Integer(s), Frame::Integer(e)])
            .collect();
        encode(vec![
            ("slots", Frame::Array(slots)),
            (
                "nodes",
                Frame::Array(nodes.into_iter().map(encode).collect()),
            ),
        ])
    }

    /// Three primaries with one replica each, on 127.0.0.1:7000..7005.
    pub(crate) fn three_shards(encode: fn(Vec<(&str, Frame)>) -> Frame) -> Frame {
        let ip = "127.0.0.1";
        Frame::Array(vec![
            shard(
                &[(0, 5460)],
                vec![
                    shards_node(ip, 7000, "master", "online"),
                    shards_node(ip, 7003, "replica", "online"),
                ],
                encode,
            ),
            shard(
                &[(5461, 10922)],
                vec![
                    shards_node(ip, 7004, "replica", "loading"),
                    shards_node(ip, 7001, "master", "online"),
                ],
                encode,
            ),
            shard(
                &[(10923, 16383)],
                vec![
                    shards_node(ip, 7002, "master", "online"),
                    shards_node(ip, 7005, "replica", "failed"),
                ],
                encode,
            ),
        ])
    }

    pub(crate) fn key(keys: &NodeKeys, host: &str, port: u16) -> NodeKey {
        keys.key(host, port).expect("a valid host")
    }

    pub(crate) fn cluster(keys: &NodeKeys) -> Topology {
        let from = key(keys, "127.0.0.1", 7000);
        Topology::from_shards(&three_shards(map), &from, false, keys).expect("a valid reply")
    }

    #[test]
    fn cluster_shards_in_resp2_and_resp3() {
        let keys = NodeKeys::new();
        let from = key(&keys, "127.0.0.1", 7000);
        for reply in [three_shards(map), three_shards(flat)] {
            let topology = Topology::from_shards(&reply, &from, false, &keys).unwrap();
            assert!(topology.is_complete());
            assert_eq!(topology.shards().len(), 3);
            assert_eq!(topology.owner(0), Some(&key(&keys, "127.0.0.1", 7000)));
            assert_eq!(topology.owner(5460), Some(&key(&keys, "127.0.0.1", 7000)));
            assert_eq!(topology.owner(5461), Some(&key(&keys, "127.0.0.1", 7001)));
            assert_eq!(topology.owner(16383), Some(&key(&keys, "127.0.0.1", 7002)));
            assert_eq!(topology.owner(16384), None);

            let replicas = topology.replicas(6000);
            assert_eq!(replicas.len(), 1);
            assert_eq!(replicas[0].key, key(&keys, "127.0.0.1", 7004));
            assert_eq!(replicas[0].health, Health::Loading);
            assert_eq!(topology.replicas(16000)[0].health, Health::Failed);

            let primary = &topology.shard(0).unwrap().primary;
            assert_eq!(
                primary.id.as_deref(),
                Some("0000000000000000000000000000000000007000")
            );
            assert_eq!(primary.ip.as_deref(), Some("127.0.0.1"));
            assert_eq!(primary.port, Some(7000));
            assert_eq!(primary.tls_port, None);
            assert_eq!(primary.health, Health::Online);
            assert_eq!(primary.replication_offset, Some(72156));
            assert_eq!(topology.nodes().count(), 6);
        }
    }

    #[test]
    fn a_real_single_node_reply_uses_the_address_that_answered() {
        // redis-server 7.0.15, one node that does not know its own IP yet:
        // `ip` and `endpoint` are empty.
        let resp2 = frame(
            b"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n*14\r\n\
              $2\r\nid\r\n$40\r\nd4de3bdbe6bd2cd45bca0805898f1ac80e8e57d8\r\n\
              $4\r\nport\r\n:27711\r\n$2\r\nip\r\n$0\r\n\r\n$8\r\nendpoint\r\n$0\r\n\r\n\
              $4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:0\r\n\
              $6\r\nhealth\r\n$6\r\nonline\r\n",
        );
        let resp3 = frame(
            b"*1\r\n%2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n%7\r\n\
              $2\r\nid\r\n$40\r\nd4de3bdbe6bd2cd45bca0805898f1ac80e8e57d8\r\n\
              $4\r\nport\r\n:27711\r\n$2\r\nip\r\n$0\r\n\r\n$8\r\nendpoint\r\n$0\r\n\r\n\
              $4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:0\r\n\
              $6\r\nhealth\r\n$6\r\nonline\r\n",
        );
        let mut keys = NodeKeys::new();
        let _ = keys.learn("localhost", "127.0.0.1".parse().unwrap());
        let from = key(&keys, "LOCALHOST", 27711);
        for reply in [resp2, resp3] {
            let topology = Topology::from_shards(&reply, &from, false, &keys).unwrap();
            assert!(topology.is_complete());
            assert_eq!(topology.owner(42), Some(&key(&keys, "127.0.0.1", 27711)));
            assert_eq!(topology.shards()[0].primary.ip.as_deref(), Some(""));
        }
    }

    #[test]
    fn real_cluster_slots_replies() {
        let keys = NodeKeys::new();
        let from = key(&keys, "10.0.0.9", 27711);
        // redis-server 7.0.15: endpoint type `ip` (IP unknown yet), RESP2.
        let unknown_ip = frame(
            b"*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$0\r\n\r\n:27711\r\n\
              $40\r\nd4de3bdbe6bd2cd45bca0805898f1ac80e8e57d8\r\n*0\r\n",
        );
        // Endpoint type `unknown-endpoint`: a null endpoint.
        let unknown_endpoint = frame(
            b"*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$-1\r\n:27711\r\n\
              $40\r\nd4de3bdbe6bd2cd45bca0805898f1ac80e8e57d8\r\n*2\r\n$2\r\nip\r\n$0\r\n\r\n",
        );
        for reply in [unknown_ip, unknown_endpoint] {
            let topology = Topology::from_slots(&reply, &from, &keys).unwrap();
            assert_eq!(topology.owner(0), Some(&key(&keys, "10.0.0.9", 27711)));
            let primary = &topology.shards()[0].primary;
            assert_eq!(
                primary.id.as_deref(),
                Some("d4de3bdbe6bd2cd45bca0805898f1ac80e8e57d8")
            );
            assert_eq!(primary.health, Health::Unknown);
        }
        // Endpoint type `hostname` with a hostname set, RESP3 metadata map.
        let hostname = frame(
            b"*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$15\r\nNode-A.example.\r\n:27711\r\n\
              $40\r\nd4de3bdbe6bd2cd45bca0805898f1ac80e8e57d8\r\n%1\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n",
        );
        let topology = Topology::from_slots(&hostname, &from, &keys).unwrap();
        assert_eq!(
            topology.owner(0).unwrap().to_string(),
            "node-a.example:27711"
        );
        assert_eq!(
            topology.shards()[0].primary.ip.as_deref(),
            Some("127.0.0.1")
        );
        // Endpoint type `hostname` without one: `?`, the IP is used.
        let question = frame(
            b"*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$1\r\n?\r\n:27711\r\n\
              $40\r\nd4de3bdbe6bd2cd45bca0805898f1ac80e8e57d8\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.2\r\n",
        );
        let topology = Topology::from_slots(&question, &from, &keys).unwrap();
        assert_eq!(topology.owner(0).unwrap().to_string(), "127.0.0.2:27711");
    }

    #[test]
    fn cluster_slots_merges_ranges_of_one_primary() {
        let keys = NodeKeys::new();
        let from = key(&keys, "127.0.0.1", 7000);
        let node = |port: i64| {
            Frame::Array(vec![
                bulk("127.0.0.1"),
                Frame::Integer(port),
                bulk(&format!("{port:040}")),
            ])
        };
        let range = |start: i64, end: i64, nodes: Vec<Frame>| {
            let mut entry = vec![Frame::Integer(start), Frame::Integer(end)];
            entry.extend(nodes);
            Frame::Array(entry)
        };
        let reply = Frame::Array(vec![
            range(0, 99, vec![node(7000), node(7003)]),
            range(100, 199, vec![node(7001)]),
            range(200, 16383, vec![node(7000), node(7003)]),
        ]);
        let topology = Topology::from_slots(&reply, &from, &keys).unwrap();
        assert!(topology.is_complete());
        assert_eq!(topology.shards().len(), 2);
        assert_eq!(topology.owner(150), Some(&key(&keys, "127.0.0.1", 7001)));
        assert_eq!(topology.owner(5000), Some(&key(&keys, "127.0.0.1", 7000)));
        assert_eq!(topology.replicas(5000).len(), 1);
        assert_eq!(topology.nodes().count(), 3);

        // A primary listed as another primary's replica is a duplicate.
        let reply = Frame::Array(vec![
            range(0, 99, vec![node(7000), node(7001)]),
            range(100, 199, vec![node(7001)]),
        ]);
        assert_eq!(
            Topology::from_slots(&reply, &from, &keys).unwrap_err(),
            TopologyError::DuplicateNode(key(&keys, "127.0.0.1", 7001))
        );
    }

    #[test]
    fn endpoints_follow_the_documented_table() {
        let mut keys = NodeKeys::new();
        let from = key(&keys, "10.9.9.9", 7000);
        let reply = |endpoint: &str, ip: &str| {
            Frame::Array(vec![map(vec![
                ("slots", Frame::Array(vec![])),
                (
                    "nodes",
                    Frame::Array(vec![map(vec![
                        ("port", Frame::Integer(7001)),
                        ("tls-port", Frame::Integer(8001)),
                        ("ip", bulk(ip)),
                        ("endpoint", bulk(endpoint)),
                        ("role", bulk("master")),
                    ])]),
                ),
            ])])
        };
        let owner = |keys: &NodeKeys, endpoint: &str, ip: &str, tls: bool| {
            let topology = Topology::from_shards(&reply(endpoint, ip), &from, tls, keys).unwrap();
            topology.shards()[0].primary.key.to_string()
        };
        assert_eq!(owner(&keys, "10.0.0.1", "10.0.0.1", false), "10.0.0.1:7001");
        assert_eq!(owner(&keys, "10.0.0.1", "10.0.0.1", true), "10.0.0.1:8001");
        assert_eq!(
            owner(&keys, "Redis-1.Example.", "10.0.0.1", false),
            "redis-1.example:7001"
        );
        assert_eq!(owner(&keys, "?", "10.0.0.1", false), "10.0.0.1:7001");
        assert_eq!(owner(&keys, "?", "", false), "10.9.9.9:7001");
        assert_eq!(owner(&keys, "", "10.0.0.1", false), "10.9.9.9:7001");
        assert_eq!(owner(&keys, "", "", false), "10.9.9.9:7001");
        assert_eq!(owner(&keys, "::1", "::1", false), "[::1]:7001");
        // Names go through the registry's aliases.
        let _ = keys.learn("redis-1.example", "10.0.0.1".parse().unwrap());
        assert_eq!(
            owner(&keys, "redis-1.example", "10.0.0.1", false),
            "10.0.0.1:7001"
        );
    }

    #[test]
    fn tls_falls_back_to_the_plain_port_only_when_no_tls_port_is_announced() {
        let keys = NodeKeys::new();
        let from = key(&keys, "10.0.0.1", 7000);
        let reply = |fields: Vec<(&str, Frame)>| {
            Frame::Array(vec![map(vec![
                ("slots", Frame::Array(vec![])),
                ("nodes", Frame::Array(vec![map(fields)])),
            ])])
        };
        let plain_only = reply(vec![
            ("port", Frame::Integer(7001)),
            ("endpoint", bulk("10.0.0.1")),
            ("role", bulk("master")),
        ]);
        let topology = Topology::from_shards(&plain_only, &from, true, &keys).unwrap();
        assert_eq!(topology.shards()[0].primary.key.port(), 7001);
        let tls_only = reply(vec![
            ("tls-port", Frame::Integer(8001)),
            ("endpoint", bulk("10.0.0.1")),
            ("role", bulk("master")),
        ]);
        assert_eq!(
            Topology::from_shards(&tls_only, &from, false, &keys).unwrap_err(),
            TopologyError::MissingField("port")
        );
    }

    #[test]
    fn invalid_descriptions_are_typed_errors() {
        let keys = NodeKeys::new();
        let from = key(&keys, "127.0.0.1", 7000);
        let shards = |ranges: &[(i64, i64)], roles: &[(&str, i64)]| {
            let nodes = roles
                .iter()
                .map(|&(role, port)| shards_node("127.0.0.1", port, role, "online"))
                .collect();
            Frame::Array(vec![shard(ranges, nodes, map)])
        };
        let parse = |reply: &Frame| Topology::from_shards(reply, &from, false, &keys).unwrap_err();

        assert_eq!(
            parse(&shards(&[(0, 16384)], &[("master", 1)])),
            TopologyError::SlotRange {
                start: 0,
                end: 16384
            }
        );
        assert_eq!(
            parse(&shards(&[(10, 9)], &[("master", 1)])),
            TopologyError::SlotRange { start: 10, end: 9 }
        );
        assert_eq!(
            parse(&shards(&[(-1, 9)], &[("master", 1)])),
            TopologyError::SlotRange { start: -1, end: 9 }
        );
        assert_eq!(
            parse(&shards(&[(0, 10), (10, 20)], &[("master", 1)])),
            TopologyError::SlotConflict(10)
        );
        assert_eq!(
            parse(&shards(&[], &[("replica", 1)])),
            TopologyError::Primaries(0)
        );
        assert_eq!(
            parse(&shards(&[], &[("master", 1), ("master", 2)])),
            TopologyError::Primaries(2)
        );
        assert_eq!(
            parse(&shards(&[], &[("master", 1), ("replica", 1)])),
            TopologyError::DuplicateNode(key(&keys, "127.0.0.1", 1))
        );
        assert_eq!(
            parse(&shards(&[], &[("master", 0)])),
            TopologyError::Port(0)
        );
        assert_eq!(
            parse(&shards(&[], &[("master", 65536)])),
            TopologyError::Port(65536)
        );
        assert_eq!(
            parse(&shards(&[], &[("leader", 1)])),
            TopologyError::Malformed("a role")
        );

        // Two shards claiming one slot.
        let two = Frame::Array(vec![
            shard(
                &[(0, 100)],
                vec![shards_node("127.0.0.1", 1, "master", "online")],
                map,
            ),
            shard(
                &[(50, 60)],
                vec![shards_node("127.0.0.1", 2, "master", "online")],
                map,
            ),
        ]);
        assert_eq!(parse(&two), TopologyError::SlotConflict(50));

        let error = Frame::Error(Bytes::from_static(b"ERR unknown subcommand 'shards'"));
        assert_eq!(
            parse(&error),
            TopologyError::Server(Bytes::from_static(b"ERR unknown subcommand 'shards'"))
        );
        assert_eq!(
            Topology::from_slots(&error, &from, &keys)
                .unwrap_err()
                .to_string(),
            "the server refused: ERR unknown subcommand 'shards'"
        );
        let bad_host = Frame::Array(vec![shard(
            &[],
            vec![vec![
                ("port", Frame::Integer(1)),
                ("endpoint", bulk("no such host")),
                ("role", bulk("master")),
            ]],
            map,
        )]);
        assert_eq!(parse(&bad_host), TopologyError::Host(InvalidHost));
    }

    #[test]
    fn hostile_frames_never_panic() {
        let keys = NodeKeys::new();
        let from = key(&keys, "127.0.0.1", 7000);
        let int = Frame::Integer;
        let garbage = [
            Frame::Null,
            Frame::NullArray,
            Frame::Integer(3),
            bulk("slots"),
            Frame::Array(vec![Frame::Null]),
            Frame::Array(vec![Frame::Array(vec![bulk("slots")])]),
            Frame::Array(vec![Frame::Array(vec![int(1), int(2)])]),
            Frame::Array(vec![Frame::Array(vec![int(1), int(2), Frame::Null])]),
            Frame::Array(vec![Frame::Array(vec![
                int(1),
                int(2),
                Frame::Array(vec![]),
            ])]),
            Frame::Array(vec![Frame::Array(vec![
                int(1),
                int(2),
                Frame::Array(vec![bulk("h"), bulk("p")]),
            ])]),
            Frame::Array(vec![Frame::Array(vec![
                int(1),
                int(2),
                Frame::Array(vec![bulk("h"), int(1), int(5), int(6)]),
            ])]),
            Frame::Array(vec![Frame::Array(vec![
                bulk("1"),
                int(2),
                Frame::Array(vec![bulk("h"), int(1)]),
            ])]),
            Frame::Array(vec![map(vec![("slots", int(1)), ("nodes", int(2))])]),
            Frame::Array(vec![map(vec![("slots", Frame::Array(vec![int(0)]))])]),
            Frame::Array(vec![map(vec![
                ("slots", Frame::Array(vec![int(0), int(1)])),
                ("nodes", Frame::Array(vec![Frame::Array(vec![bulk("odd")])])),
            ])]),
            Frame::Array(vec![map(vec![
                ("slots", Frame::Array(vec![])),
                ("nodes", Frame::Array(vec![map(vec![("role", int(1))])])),
            ])]),
            Frame::Array(vec![map(vec![
                ("slots", Frame::Array(vec![])),
                (
                    "nodes",
                    Frame::Array(vec![map(vec![(
                        "id",
                        Frame::Bulk(Bytes::from_static(b"\xff")),
                    )])]),
                ),
            ])]),
            Frame::Array(vec![Frame::Map(vec![(int(1), int(2))])]),
            Frame::Map(vec![]),
            Frame::Double(f64::NAN),
            Frame::Push(vec![]),
        ];
        for reply in &garbage {
            assert!(
                Topology::from_shards(reply, &from, false, &keys).is_err(),
                "{reply:?}"
            );
            assert!(
                Topology::from_slots(reply, &from, &keys).is_err(),
                "{reply:?}"
            );
        }
        // An empty array is a cluster that serves nothing yet, not an error.
        let empty = Topology::from_shards(&Frame::Array(vec![]), &from, false, &keys).unwrap();
        assert!(!empty.is_complete());
        assert_eq!(empty.owner(0), None);
    }

    #[test]
    fn repeated_full_ranges_cost_one_pass() {
        // A reply claiming every slot many times fails at the second claim,
        // not after many passes over the slot map.
        let keys = NodeKeys::new();
        let from = key(&keys, "127.0.0.1", 7000);
        let ranges = vec![(0, 16383); 10_000];
        let reply = Frame::Array(vec![shard(
            &ranges,
            vec![shards_node("127.0.0.1", 7000, "master", "online")],
            map,
        )]);
        assert_eq!(
            Topology::from_shards(&reply, &from, false, &keys).unwrap_err(),
            TopologyError::SlotConflict(0)
        );
    }

    #[test]
    fn set_owner_moves_one_slot_at_once() {
        let keys = NodeKeys::new();
        let mut topology = cluster(&keys);
        let a = key(&keys, "127.0.0.1", 7000);
        let b = key(&keys, "127.0.0.1", 7001);
        let v = topology.version();

        assert!(topology.set_owner(100, b.clone()));
        assert_eq!(topology.owner(100), Some(&b));
        assert_eq!(topology.owner(101), Some(&a));
        assert_eq!(topology.version(), v + 1);
        // Already in place, or out of range: no change, same version.
        assert!(!topology.set_owner(100, b.clone()));
        assert!(!topology.set_owner(16384, b));
        assert_eq!(topology.version(), v + 1);
        assert_eq!(topology.shards().len(), 3);
    }

    #[test]
    fn set_owner_to_an_unknown_node_makes_a_shard() {
        let keys = NodeKeys::new();
        let mut topology = cluster(&keys);
        let new = key(&keys, "127.0.0.1", 7006);
        assert!(topology.set_owner(5, new.clone()));
        assert!(topology.set_owner(6, new.clone()));
        assert_eq!(topology.owner(5), Some(&new));
        assert_eq!(topology.shards().len(), 4);
        assert_eq!(topology.node(&new).unwrap().health, Health::Unknown);
        assert_eq!(topology.replicas(5), &[]);
    }

    #[test]
    fn set_owner_to_a_replica_promotes_it() {
        let keys = NodeKeys::new();
        let mut topology = cluster(&keys);
        let replica = key(&keys, "127.0.0.1", 7003);
        assert!(topology.set_owner(0, replica.clone()));
        assert_eq!(topology.owner(0), Some(&replica));
        // Still listed once, now as a primary with its announced details.
        assert_eq!(topology.nodes().filter(|n| n.key == replica).count(), 1);
        assert_eq!(topology.node(&replica).unwrap().health, Health::Online);
        assert_eq!(topology.replicas(1), &[]);
    }

    #[test]
    fn update_replaces_everything_and_names_the_nodes_that_left() {
        let keys = NodeKeys::new();
        let mut topology = cluster(&keys);
        let _ = topology.set_owner(0, key(&keys, "127.0.0.1", 7001));
        let v = topology.version();

        let from = key(&keys, "127.0.0.1", 7000);
        let fresh = Frame::Array(vec![shard(
            &[(0, 16383)],
            vec![
                shards_node("127.0.0.1", 7000, "master", "online"),
                shards_node("127.0.0.1", 7003, "replica", "online"),
            ],
            map,
        )]);
        let fresh = Topology::from_shards(&fresh, &from, false, &keys).unwrap();
        let left = topology.update(fresh);
        let left: Vec<String> = left.iter().map(ToString::to_string).collect();
        assert_eq!(
            left,
            [
                "127.0.0.1:7001",
                "127.0.0.1:7004",
                "127.0.0.1:7002",
                "127.0.0.1:7005"
            ]
        );
        assert_eq!(topology.owner(0), Some(&from));
        assert_eq!(topology.owner(16383), Some(&from));
        assert!(topology.version() > v);
    }
}
