//! Reads from replicas
//! ([`ClusterConfig::read_from_replicas`](super::ClusterConfig::read_from_replicas)): which
//! replica serves a read-only command.
//!
//! Only a command's first hop goes to a replica: a redirect is followed to
//! where it points (the slot moved, so its replicas are not known yet), and
//! a command that had to wait (its replica refused the connection, say) is
//! read from the primary, so a dead replica the cluster has not marked
//! failed yet costs one wait, not the read. A replica that is failed or
//! loading is skipped; a shard without a usable replica is read from its
//! primary.

use super::ClusterClient;
use crate::cluster::keys::args;
use crate::cluster::node::NodeKey;
use crate::cluster::topology::Health;
use crate::command::is_read_only;
use crate::id::RequestId;

impl ClusterClient {
    /// The replica that serves request `id` for `slot`, if it goes to one.
    pub(super) fn replica_for(&mut self, id: RequestId, slot: u16) -> Option<NodeKey> {
        if !self.config.read_from_replicas {
            return None;
        }
        let p = self.requests.get(&id)?;
        let read = args(&p.cmd)
            .and_then(|mut a| a.next())
            .is_some_and(is_read_only);
        if !read || p.redirects > 0 || p.waits > 0 || p.block.is_some() {
            return None;
        }
        let usable: alloc::vec::Vec<&NodeKey> = self
            .topology
            .replicas(slot)
            .iter()
            .filter(|n| matches!(n.health, Health::Online | Health::Unknown))
            .map(|n| &n.key)
            .collect();
        if usable.is_empty() {
            return None;
        }
        let key = usable[self.replica_turn % usable.len()].clone();
        self.replica_turn = self.replica_turn.wrapping_add(1);
        Some(key)
    }
}
