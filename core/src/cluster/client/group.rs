//! Requests made of parts: a cross-slot `MGET`, `MSET`, `DEL`, ... split
//! per slot, a keyless command sent to every primary, and commands sent to
//! one named node.
//!
//! Each part is an ordinary request of the cluster machine (its own
//! routing, redirects, waits and deadline) under an id the caller never
//! sees. The caller's id (the parent) gets one [`Event::Response`], from
//! [`Gather`], when every part has replied or as soon as one failed; the
//! other parts are then cancelled, so each part ends exactly once (replied,
//! failed or cancelled) and none outlives its parent. Cancelling the
//! parent cancels the parts. A group or part left behind shows in
//! [`ClusterClient::in_flight`].

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use bytes::Bytes;

use super::{ClusterClient, Pending, State};
use crate::cluster::keys::args;
use crate::cluster::node::NodeKey;
use crate::cluster::redirect::ClusterFailure;
use crate::cluster::split::{Gather, Gathered, Merge, split};
use crate::command::{Command, ReplyKind};
use crate::error::Error;
use crate::id::RequestId;
use crate::io::Event;
use crate::resp::Frame;
use crate::time::Instant;

/// The requests made of parts, and which request each part belongs to.
#[derive(Debug, Default)]
pub(super) struct Groups {
    groups: BTreeMap<RequestId, Group>,
    /// Part → its parent and its index among the parent's parts.
    part_of: BTreeMap<RequestId, (RequestId, usize)>,
}

#[derive(Debug)]
struct Group {
    parts: Vec<RequestId>,
    gather: Gather,
}

impl Groups {
    /// The groups, and the parts not ended yet.
    pub(super) fn len(&self) -> (usize, usize) {
        (self.groups.len(), self.part_of.len())
    }
}

impl ClusterClient {
    /// The primaries of the topology as the client knows it now (empty
    /// before the first refresh), for [`send_to_node`](Self::send_to_node):
    /// a `SCAN` over the whole cluster walks each of them.
    #[must_use]
    pub fn primaries(&self) -> Vec<NodeKey> {
        self.topology
            .shards()
            .iter()
            .map(|s| s.primary.key.clone())
            .collect()
    }

    /// Sends a command to one node of the cluster (one of
    /// [`primaries`](Self::primaries), say), whatever its keys; its
    /// outcome is one [`Event::Response`] with the returned id. Before the
    /// first topology it waits for the refresh; a node that is not in the
    /// topology then fails it with [`ClusterFailure::UnknownNode`]. A
    /// redirect the node answers is followed like any other.
    pub fn send_to_node<C: Command + ?Sized>(
        &mut self,
        now: Instant,
        node: &NodeKey,
        cmd: &C,
    ) -> RequestId {
        let (id, mut p) = match self.accept(now, cmd) {
            Ok(accepted) => accepted,
            Err(id) => return id,
        };
        p.node = Some(node.clone());
        self.admit(id, p);
        self.dispatch(now, id);
        self.pump(now);
        id
    }

    /// An application command taken in: its id and its request, encoded,
    /// routed by slot unless told otherwise; `Err(id)` after shutdown, its
    /// failure already reported.
    pub(super) fn accept<C: Command + ?Sized>(
        &mut self,
        now: Instant,
        cmd: &C,
    ) -> Result<(RequestId, Pending), RequestId> {
        self.now = now;
        let id = self.next_id();
        if self.shut_down {
            self.respond(id, Err(Error::Shutdown));
            return Err(id);
        }
        cmd.encode(&mut self.staging);
        let bytes = self.staging.split().freeze();
        Ok((
            id,
            self.pending(now, bytes, cmd.block_timeout(), cmd.reply_kind()),
        ))
    }

    /// A new request for `cmd`, with its deadline; routed by slot unless
    /// told otherwise.
    pub(super) fn pending(
        &self,
        now: Instant,
        cmd: Bytes,
        block: Option<crate::time::Duration>,
        kind: ReplyKind,
    ) -> Pending {
        let deadline = self.config.node.response_timeout.map(|timeout| {
            let timeout = block.map_or(timeout, |b| timeout.saturating_add(b));
            now.saturating_add(timeout)
        });
        Pending {
            cmd,
            block,
            kind,
            slot: None,
            node: None,
            fan_out: None,
            created: now,
            deadline,
            redirects: 0,
            waits: 0,
            redirected_to: None,
            state: State::New,
        }
    }

    /// Records a request and its deadline.
    pub(super) fn admit(&mut self, id: RequestId, p: Pending) {
        if let Some(at) = p.deadline {
            self.deadlines.insert((at, id));
        }
        self.requests.insert(id, p);
    }

    /// Splits a cross-slot command per slot, when it is one the client
    /// splits; returns whether it did (its parts are on their way).
    pub(super) fn send_split(&mut self, now: Instant, id: RequestId, p: &Pending) -> bool {
        let Some(split) = args(&p.cmd).and_then(split) else {
            return false;
        };
        let gather = Gather::new(split.merge, split.parts.len(), split.order);
        let parts = split
            .parts
            .into_iter()
            .map(|(slot, cmd)| Pending {
                cmd,
                slot: Some(slot),
                ..self.pending(now, Bytes::new(), p.block, p.kind)
            })
            .collect();
        self.start_group(now, id, parts, gather);
        true
    }

    /// Sends a keyless command to every primary of the topology (known by
    /// now): the request `id` becomes one part per primary.
    pub(super) fn expand_fan_out(&mut self, now: Instant, id: RequestId, merge: Merge) {
        let Some(p) = self.forget(id) else {
            return;
        };
        let primaries = self.primaries();
        let gather = Gather::new(merge, primaries.len(), Vec::new());
        let parts = primaries
            .into_iter()
            .map(|node| Pending {
                cmd: p.cmd.clone(),
                node: Some(node),
                // The parent's clock: a part sent later than its parent was
                // made is timed by this machine, not by its node's client.
                created: p.created,
                deadline: p.deadline,
                ..self.pending(now, Bytes::new(), p.block, p.kind)
            })
            .collect();
        self.start_group(now, id, parts, gather);
    }

    /// Records the group before any part is routed (a part may end while
    /// routing the next), then routes them.
    fn start_group(
        &mut self,
        now: Instant,
        parent: RequestId,
        parts: Vec<Pending>,
        gather: Gather,
    ) {
        let mut ids = Vec::with_capacity(parts.len());
        for (index, part) in parts.into_iter().enumerate() {
            let id = self.next_id();
            self.groups.part_of.insert(id, (parent, index));
            self.admit(id, part);
            ids.push(id);
        }
        if ids.is_empty() {
            // No primary: nothing can answer.
            return self.respond(parent, Err(Error::Cluster(ClusterFailure::ClusterDown)));
        }
        self.groups.groups.insert(
            parent,
            Group {
                parts: ids.clone(),
                gather,
            },
        );
        for id in ids {
            self.dispatch(now, id);
        }
    }

    /// A request ended: a part goes to its group (`None` returned), any
    /// other request's outcome is given back.
    pub(super) fn part_ended(
        &mut self,
        id: RequestId,
        result: Result<Frame, Error>,
    ) -> Option<Result<Frame, Error>> {
        let Some((parent, index)) = self.groups.part_of.remove(&id) else {
            return Some(result);
        };
        let group = self.groups.groups.get_mut(&parent)?;
        if let Gathered::Done(outcome) = group.gather.add(index, result) {
            self.cancel_group(parent);
            self.events.push_back(Event::Response {
                id: parent,
                result: outcome,
            });
        }
        None
    }

    /// Forgets a group and cancels its parts still under way.
    pub(super) fn cancel_group(&mut self, parent: RequestId) {
        let Some(group) = self.groups.groups.remove(&parent) else {
            return;
        };
        for part in group.parts {
            if self.groups.part_of.remove(&part).is_some() {
                let _ = self.forget(part);
            }
        }
    }
}
