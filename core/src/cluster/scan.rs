//! A `SCAN` over a whole cluster: every primary in turn, each with its own
//! cursor, as one walk.
//!
//! A node's `SCAN` sees only the keys of its slots, and its cursor means
//! nothing to another node, so the walk is a [`ScanState`] per primary:
//! send each [`ClusterScan::next_cmd`] to the node it names
//! ([`ClusterClient::send_to_node`](super::ClusterClient::send_to_node)),
//! [`feed`](ClusterScan::feed) the reply, until `next_cmd` says `None`.
//!
//! The guarantee is the server's, node by node: a key present on the same
//! node for the whole walk is returned at least once. A slot that moves
//! between primaries during the walk may have its keys returned twice or
//! missed; a primary that left fails its page
//! ([`ClusterFailure::UnknownNode`](super::ClusterFailure::UnknownNode)).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::node::NodeKey;
use crate::cmd::{Cmd, ScanState};

/// The state of a `SCAN` over every primary of a cluster.
///
/// ```
/// use redpoll_core::cluster::{ClusterScan, NodeKeys};
/// use redpoll_core::cmd;
///
/// let keys = NodeKeys::new();
/// let nodes = vec![keys.key("127.0.0.1", 7000)?, keys.key("127.0.0.1", 7001)?];
/// let mut scan = ClusterScan::new(cmd::scan(0), nodes);
/// while let Some((node, cmd)) = scan.next_cmd() {
///     // Send `cmd` to `node`, convert its reply with `cmd.decode(frame)?`...
///     # let _ = (node, cmd);
///     let reply = (0, vec![bytes::Bytes::from_static(b"user:1")]);
///     for key in scan.feed(reply) {
///         // ...and use the page.
///         # let _ = key;
///     }
/// }
/// assert!(scan.is_done());
/// # Ok::<(), redpoll_core::cluster::InvalidHost>(())
/// ```
#[derive(Debug)]
pub struct ClusterScan<T> {
    /// The command each node's walk starts with.
    first: Cmd<(u64, Vec<T>)>,
    /// The node being walked first, then those after it.
    nodes: VecDeque<NodeKey>,
    state: ScanState<T>,
}

impl<T> ClusterScan<T> {
    /// A walk of `nodes` (the cluster's primaries), each starting with
    /// `cmd` (`cmd::scan(0)`, `cmd::scan_with(0, options)`).
    pub fn new(cmd: Cmd<(u64, Vec<T>)>, nodes: Vec<NodeKey>) -> Self {
        Self {
            state: ScanState::new(cmd.clone()),
            first: cmd,
            nodes: nodes.into(),
        }
    }

    /// The node to send to and the command to send next, `None` when every
    /// node has been walked.
    #[must_use]
    // The same shape as `ScanState::next_cmd`, with the node.
    #[allow(clippy::type_complexity)]
    pub fn next_cmd(&self) -> Option<(&NodeKey, Cmd<(u64, Vec<T>)>)> {
        let node = self.nodes.front()?;
        Some((node, self.state.next_cmd()?))
    }

    /// Takes the reply to the last command: gives back its page, and moves
    /// on to the next node when this one's cursor came back 0.
    pub fn feed(&mut self, reply: (u64, Vec<T>)) -> Vec<T> {
        let page = self.state.feed(reply);
        if self.state.is_done() {
            self.nodes.pop_front();
            self.state = ScanState::new(self.first.clone());
        }
        page
    }

    /// The nodes not walked to the end yet.
    #[must_use]
    pub fn nodes_left(&self) -> usize {
        self.nodes.len()
    }

    /// Whether every node has been walked.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::{String, ToString};
    use alloc::vec;

    use super::*;
    use crate::cluster::NodeKeys;
    use crate::cmd::{self, ScanOptions};

    fn argv<T>(cmd: &Cmd<T>) -> Vec<String> {
        cmd.argv()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn walks_each_node_with_its_own_cursor() {
        let keys = NodeKeys::new();
        let a = keys.key("127.0.0.1", 7000).expect("a key");
        let b = keys.key("127.0.0.1", 7001).expect("a key");
        let start =
            cmd::scan_with(0, ScanOptions::new().count(10)).returning::<(u64, Vec<String>)>();
        let mut scan = ClusterScan::new(start, vec![a.clone(), b.clone()]);
        let mut seen = Vec::new();
        // a: cursor 5, then 0; b: 0 at once.
        let replies = [(5, "a1"), (0, "a2"), (0, "b1")];
        for (cursor, item) in replies {
            let (node, next) = scan.next_cmd().expect("more");
            seen.push((node.to_string(), argv(&next)));
            let page = scan.feed((cursor, vec![item.to_string()]));
            assert_eq!(page, [item]);
        }
        assert!(scan.is_done());
        assert!(scan.next_cmd().is_none());
        let want = |node: &NodeKey, cursor: &str| {
            (
                node.to_string(),
                ["SCAN", cursor, "COUNT", "10"].map(String::from).to_vec(),
            )
        };
        assert_eq!(seen, [want(&a, "0"), want(&a, "5"), want(&b, "0")]);
    }

    #[test]
    fn no_nodes_is_an_empty_walk() {
        let scan: ClusterScan<String> = ClusterScan::new(cmd::scan(0).returning(), Vec::new());
        assert!(scan.is_done());
        assert_eq!(scan.nodes_left(), 0);
        assert!(scan.next_cmd().is_none());
    }
}
