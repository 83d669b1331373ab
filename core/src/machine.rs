//! One type for adapters to drive: the client of one server, or of a
//! Redis Cluster.
//!
//! Both machines follow the same driving contract (see the [crate
//! docs](crate)), so an adapter holds a [`Machine`] and never needs to know
//! which one it drives; the command API on top is the same.

use alloc::boxed::Box;

use crate::client::Client;
use alloc::vec::Vec;

use crate::cluster::{ClusterClient, NodeKey};
use crate::command::Command;
use crate::error::Error;
use crate::id::{LeaseId, RequestId, SocketId};
use crate::io::{Effect, Event, IoError};
use crate::pool::PoolStats;
use crate::reconnect::Phase;
use crate::time::{Duration, Instant};

/// A client machine: of one server ([`Client`]) or of a cluster.
// The single-server client stays inline (the common case, on the hot path
// of every call); the cluster client, far larger, is boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Machine {
    /// One server.
    Node(Client),
    /// A Redis Cluster (boxed: its slot map is large, and a single-server
    /// client should not carry that size).
    Cluster(Box<ClusterClient>),
}

impl From<Client> for Machine {
    fn from(client: Client) -> Self {
        Self::Node(client)
    }
}

impl From<ClusterClient> for Machine {
    fn from(client: ClusterClient) -> Self {
        Self::Cluster(Box::new(client))
    }
}

/// Forwards methods to whichever machine this is: `mut` ones take
/// `&mut self`, `ref` ones `&self`.
macro_rules! forward {
    ($(
        $(#[$doc:meta])*
        $kind:ident fn $name:ident $(<$g:ident: $bound:path>)? ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;
    )*) => {$(
        forward!(@one $kind $(#[$doc])* $name [$($g: $bound)?] ($($arg: $ty),*) $(-> $ret)?);
    )*};
    (@one mut $(#[$doc:meta])* $name:ident [$($g:ident: $bound:path)?] ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        $(#[$doc])*
        #[inline]
        pub fn $name $(<$g: $bound + ?Sized>)? (&mut self $(, $arg: $ty)*) $(-> $ret)? {
            match self {
                Self::Node(m) => m.$name($($arg),*),
                Self::Cluster(m) => m.$name($($arg),*),
            }
        }
    };
    (@one ref $(#[$doc:meta])* $name:ident [$($g:ident: $bound:path)?] ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        $(#[$doc])*
        #[inline]
        #[must_use]
        pub fn $name $(<$g: $bound + ?Sized>)? (&self $(, $arg: $ty)*) $(-> $ret)? {
            match self {
                Self::Node(m) => m.$name($($arg),*),
                Self::Cluster(m) => m.$name($($arg),*),
            }
        }
    };
}

impl Machine {
    /// Whether this is the client of a cluster.
    #[must_use]
    pub const fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// [`ClusterClient::primaries`]; empty for one server.
    #[must_use]
    pub fn primaries(&self) -> Vec<NodeKey> {
        match self {
            Self::Node(_) => Vec::new(),
            Self::Cluster(m) => m.primaries(),
        }
    }

    /// [`ClusterClient::send_to_node`]; one server is the only node there
    /// is, so it gets the command as from [`send`](Self::send).
    pub fn send_to_node<C: Command + ?Sized>(
        &mut self,
        now: Instant,
        node: &NodeKey,
        cmd: &C,
    ) -> RequestId {
        match self {
            Self::Node(m) => m.send(now, cmd),
            Self::Cluster(m) => m.send_to_node(now, node, cmd),
        }
    }

    forward! {
        /// [`Client::send`].
        mut fn send<C: Command>(now: Instant, cmd: &C) -> RequestId;
        /// [`Client::cancel`].
        mut fn cancel(id: RequestId);
        /// [`Client::shutdown`].
        mut fn shutdown(now: Instant);
        /// [`Client::connect`].
        mut fn connect(now: Instant);
        /// [`Client::is_connected`].
        ref fn is_connected() -> bool;
        /// [`Client::expects_data`].
        ref fn expects_data(socket: SocketId) -> bool;
        /// [`Client::lease`].
        mut fn lease(now: Instant) -> Result<LeaseId, Error>;
        /// [`Client::send_leased`].
        mut fn send_leased<C: Command>(now: Instant, lease: LeaseId, cmd: &C) -> RequestId;
        /// [`Client::release`].
        mut fn release(now: Instant, lease: LeaseId);
        /// [`Client::handle_connected`].
        mut fn handle_connected(now: Instant, socket: SocketId);
        /// [`Client::handle_connect_failed`].
        mut fn handle_connect_failed(now: Instant, socket: SocketId, error: IoError);
        /// [`Client::handle_data`].
        mut fn handle_data(now: Instant, socket: SocketId, data: &[u8]);
        /// [`Client::handle_eof`].
        mut fn handle_eof(now: Instant, socket: SocketId);
        /// [`Client::handle_io_error`].
        mut fn handle_io_error(now: Instant, socket: SocketId, error: IoError);
        /// [`Client::handle_probe_done`].
        mut fn handle_probe_done(now: Instant, socket: SocketId);
        /// [`Client::handle_timeout`].
        mut fn handle_timeout(now: Instant);
        /// [`Client::poll_effect`].
        mut fn poll_effect() -> Option<Effect>;
        /// [`Client::poll_event`].
        mut fn poll_event() -> Option<Event>;
        /// [`Client::poll_timeout`].
        ref fn poll_timeout() -> Option<Instant>;
        /// [`Client::pool_stats`].
        ref fn pool_stats() -> PoolStats;
        /// [`Client::reconnect_phase`].
        ref fn reconnect_phase() -> Phase;
        /// [`Client::handshake_timeout`].
        ref fn handshake_timeout() -> Duration;
    }
}
