//! Redis Cluster: hash slots, node identity, topology, routing and
//! redirects, as pure functions and small values the client machine owns.
//!
//! # What this module decides
//!
//! - Which slot a key is in ([`slot`]) and which arguments of a command are
//!   keys ([`keys()`], [`command_slot`]).
//! - What a node is called ([`NodeKey`], made only by [`NodeKeys`]).
//! - What the cluster looks like ([`Topology`], from `CLUSTER SHARDS` or
//!   `CLUSTER SLOTS`).
//! - Where a command goes, first ([`route`]) and after each reply
//!   ([`resolve`]) or failed connection ([`connection_failed`]), and when the
//!   topology is refreshed ([`RefreshSchedule`]).
//!
//! Nothing here does I/O, reads a clock or keeps a connection: the client
//! machine holds one [`NodeKeys`], one [`Topology`] and one
//! [`RefreshSchedule`], feeds them what it learns, and carries out the
//! [`Resolution`]s. Because that machine is the single owner of all three,
//! a topology change and the routing decision that reads it can never
//! interleave.
//!
//! # Invariants
//!
//! - **I3: redirect resolution is total.** Every reply, slot or failure
//!   resolves to a [`Route`]; a node without a pool is routed as
//!   [`Target::Connect`] with its address, never reported as "no
//!   connection". A redirect never spends the command's retry budget.
//! - **I4: one name per node.** [`NodeKey`] cannot be built from a string
//!   except through [`NodeKeys::key`], which canonicalizes case, trailing
//!   dot, IPv6 form and brackets, and learnt aliases (`localhost` →
//!   `127.0.0.1`). Every key in a [`Topology`] and every redirect target
//!   went through it.
//! - **Hostile input is an error, never a panic**: topology replies and
//!   redirect messages of any shape, and encoded commands for [`args`].
//!
//! Each file states its own rules in more detail: `slot` (the hash tag
//! rule), `node` (canonical forms, the alias rule), `topology` (endpoint
//! choice, one owner per slot), `redirect` (the decision table, refresh
//! coalescing), `keys` (the command table), `split` (the commands split
//! per slot or sent to every primary, and how their replies merge),
//! `scan` (a `SCAN` over every primary).

mod client;
mod keys;
mod node;
mod redirect;
mod scan;
mod slot;
mod split;
mod topology;

pub use client::{ClusterClient, ClusterConfig, InFlight};
pub use keys::{Args, CrossSlot, KeyPositions, Keys, args, command_slot, keys, route_slot};
pub use node::{InvalidHost, Learnt, NodeKey, NodeKeys};
pub use redirect::{
    Attempt, ClusterFailure, ClusterReply, Redirect, RedirectPolicy, RefreshSchedule, Resolution,
    Route, Target, connection_failed, resolve, route,
};
pub use scan::ClusterScan;
pub use slot::{SLOT_COUNT, slot};
pub use topology::{Health, Node, Shard, Topology, TopologyError};
