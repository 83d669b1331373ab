//! The blocking adapter of redpoll: drives [`redpoll_core`] over `std::net`
//! with threads, for programs without an async runtime.
//!
//! A [`Client`] is cheap to clone and is shared by as many threads as you
//! like: their requests are pipelined on one connection and leave back to
//! back. Blocking commands (`BLPOP`, ...) and [transactions](Client::transaction)
//! get dedicated connections. The adapter only moves bytes, runs timers and
//! reports what happened: which connection serves a request, when one is
//! opened or closed and what a deadline means is decided by the core.
//!
//! ```no_run
//! # fn main() -> Result<(), redpoll_std::Error> {
//! use redpoll_std::{Client, cmd};
//!
//! let client = Client::open("redis://127.0.0.1:6379")?;
//! client.run(cmd::set("greeting", "hello"))?;
//! let value: Option<String> = client.run(cmd::get("greeting").returning())?;
//! assert_eq!(value.as_deref(), Some("hello"));
//! # Ok(()) }
//! ```
//!
//! # How it runs
//!
//! The core sits behind one mutex. Whoever changes it (a caller sending, a
//! thread reporting bytes) carries out its effects before letting go: opens
//! sockets (each connect on a short-lived thread, bounded by the handshake
//! timeout), writes (with a write timeout), closes. A caller that sent
//! writes outside the lock, and takes along what other threads queued for
//! the same socket meanwhile: their requests leave in one write. A caller
//! whose requests are the only ones on their socket reads the replies
//! itself, as a blocking client without a driver would; otherwise each
//! socket's reader thread reads whenever the core expects bytes, with the
//! core's next deadline as its read timeout, and watches an idle socket
//! for a close by the server. Callers sleep until their reply is there
//! (each woken alone), and act on a deadline that passes while no socket
//! could (a connect still under way).
//!
//! # Features
//!
//! - `tls` (default): `rediss://`, with TLS inside the core (rustls).
//! - `tracing`: a span per command, events for connects and closes.

/// A `tracing` debug event, or nothing without the `tracing` feature.
macro_rules! trace {
    ($($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        tracing::debug!($($arg)*);
    };
}

mod builder;
mod driver;
mod error;
mod pubsub;

use std::sync::Arc;
use std::vec;

use redpoll_core::ClientConfig;
use redpoll_core::cluster::{ClusterFailure, ClusterScan, NodeKey};
use redpoll_core::cmd::{Cmd, FromFrame, FromReplies, Pipeline, ScanState, Script};
use redpoll_core::resp::{Frame, ToArg};

pub use builder::Builder;
pub use error::Error;
pub use pubsub::Subscription;
pub use redpoll_core as core;
pub use redpoll_core::cmd;

use driver::Shared;

/// A blocking Redis client. Cheap to clone: clones share the connections.
///
/// Dropping the last clone (subscriptions, transactions and scans hold
/// one) shuts the client down like [`Client::shutdown`].
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server `config` describes. It connects on first use.
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        Builder::from_config(config).client()
    }

    /// A client configured by a URL: `redis://`, `unix://`. For `rediss://`,
    /// which needs certificates, see [`Client::builder`].
    ///
    /// # Errors
    ///
    /// [`Error::Url`] for an invalid URL, [`Error::Tls`] for a `rediss://`
    /// URL (no trusted roots).
    pub fn open(url: &str) -> Result<Self, Error> {
        Builder::new(url)?.build()
    }

    /// A builder from a URL, for what URLs do not carry: certificates,
    /// pool sizes, deadlines.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), redpoll_std::Error> {
    /// use std::time::Duration;
    /// let client = redpoll_std::Client::builder("redis://localhost/2")?
    ///     .response_timeout(Some(Duration::from_secs(1)))
    ///     .max_dedicated(4)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Url`] for an invalid URL.
    pub fn builder(url: &str) -> Result<Builder, Error> {
        Builder::new(url)
    }

    /// Connects now if not connected, and waits until the connection has
    /// finished its handshake, or `timeout` passes.
    ///
    /// # Errors
    ///
    /// The reason the first connection failed (before the client was ever
    /// connected), [`Error::Connection`] with a timeout, or the terminal
    /// reason when the reconnect budget is spent.
    pub fn wait_connected(&self, timeout: std::time::Duration) -> Result<(), Error> {
        let shared = &self.shared;
        let mut state = shared.lock();
        let now = state.now();
        let start = state.status_seq;
        state.core.connect(now);
        shared.settle(&mut state);
        let until = std::time::Instant::now() + timeout;
        let (_state, outcome) = shared.wait(state, Some(until), |state| {
            if state.core.is_connected() {
                return Some(Ok(()));
            }
            if state.status_seq == start {
                return None;
            }
            match &state.last_status {
                Some(redpoll_core::Status::GaveUp { reason }) => Some(Err(Error::Connection(
                    redpoll_core::Error::Connection(reason.clone()),
                ))),
                Some(redpoll_core::Status::Disconnected { reason })
                    if state.core.reconnect_phase()
                        == redpoll_core::reconnect::Phase::NeverConnected =>
                {
                    Some(Err(Error::Connection(redpoll_core::Error::Connection(
                        reason.clone(),
                    ))))
                }
                _ => None,
            }
        });
        outcome.unwrap_or(Err(Error::Connection(redpoll_core::Error::Timeout)))
    }

    /// Runs one command and converts its reply.
    ///
    /// # Errors
    ///
    /// [`Error::Connection`] (connection failure, timeout, shutdown),
    /// [`Error::Server`] for an error reply, [`Error::Conversion`] for a
    /// reply that does not convert to `T`.
    pub fn run<T: FromFrame>(&self, cmd: Cmd<T>) -> Result<T, Error> {
        #[cfg(feature = "tracing")]
        let _span = command_span(&cmd).entered();
        let frame = self.shared.request(None, &cmd)?;
        Ok(cmd.decode(frame)?)
    }

    /// Runs a pipeline: its commands leave in one write, its replies come
    /// back converted, in order. An atomic pipeline ([`Pipeline::atomic`])
    /// runs as `MULTI` ... `EXEC`.
    ///
    /// # Errors
    ///
    /// The first connection error, else as [`Pipeline::decode`].
    pub fn pipeline<T: FromReplies>(&self, pipeline: Pipeline<T>) -> Result<T, Error> {
        run_pipeline(&self.shared, None, &pipeline)
    }

    /// A connection of one's own until the [`Transaction`] is dropped, for
    /// `WATCH` ... `MULTI` ... `EXEC`.
    ///
    /// # Errors
    ///
    /// When every dedicated connection is in use, or after shutdown.
    pub fn transaction(&self) -> Result<Transaction, Error> {
        let mut state = self.shared.lock();
        let now = state.now();
        let lease = state.core.lease(now);
        self.shared.settle(&mut state);
        Ok(Transaction {
            lease: lease?,
            client: self.clone(),
        })
    }

    /// Walks a `SCAN`-family command (`cmd::scan(0)`, `cmd::hscan(key, 0)`,
    /// their `_with` forms, ...) page after page, as an iterator of items.
    /// An item may come more than once; the iterator ends after an error.
    ///
    /// On a cluster, `SCAN` walks every primary in turn, each with its own
    /// cursor ([`ClusterScan`]); `HSCAN` and the others go to the node of
    /// their key.
    pub fn scan<T: FromFrame>(&self, cmd: Cmd<(u64, Vec<T>)>) -> Scan<T> {
        let cluster = self.shared.lock().core.is_cluster();
        let walk = if cluster && cmd.name().eq_ignore_ascii_case(b"SCAN") {
            Walk::Cluster(cmd, None)
        } else {
            Walk::One(ScanState::new(cmd))
        };
        Scan {
            client: self.clone(),
            walk,
            page: Vec::new().into_iter(),
            failed: false,
        }
    }

    /// The cluster's primaries, once its topology is known: a `PING` waits
    /// for it, as any request does.
    fn primaries(&self) -> Result<Vec<NodeKey>, Error> {
        let known = self.shared.lock().core.primaries();
        if !known.is_empty() {
            return Ok(known);
        }
        self.run(cmd::ping())?;
        let known = self.shared.lock().core.primaries();
        if known.is_empty() {
            return Err(Error::Connection(redpoll_core::Error::Cluster(
                ClusterFailure::ClusterDown,
            )));
        }
        Ok(known)
    }

    /// Runs a script by its SHA-1 (`EVALSHA`), and sends its body (`EVAL`)
    /// when the server does not have it yet.
    ///
    /// # Errors
    ///
    /// As [`Client::run`].
    pub fn eval<T: FromFrame, K: ToArg, A: ToArg>(
        &self,
        script: &Script,
        keys: impl IntoIterator<Item = K>,
        args: impl IntoIterator<Item = A>,
    ) -> Result<T, Error> {
        let cmd: Cmd<T> = script.invoke(keys, args);
        #[cfg(feature = "tracing")]
        let _span = command_span(&cmd).entered();
        let frame = self.shared.request(None, &cmd)?;
        match script.fallback(&cmd, &frame) {
            Some(eval) => self.run(eval),
            None => Ok(cmd.decode(frame)?),
        }
    }

    /// Subscribes to channels (`SUBSCRIBE`): their messages arrive on the
    /// returned [`Subscription`], in order. Needs RESP3 (the default).
    ///
    /// # Errors
    ///
    /// As [`Client::run`].
    pub fn subscribe<C: AsRef<[u8]>>(
        &self,
        channels: impl IntoIterator<Item = C>,
    ) -> Result<Subscription, Error> {
        Subscription::start(self, cmd::SubscriptionKind::Channel, channels)
    }

    /// Subscribes to channel patterns (`PSUBSCRIBE`).
    ///
    /// # Errors
    ///
    /// As [`Client::run`].
    pub fn psubscribe<P: AsRef<[u8]>>(
        &self,
        patterns: impl IntoIterator<Item = P>,
    ) -> Result<Subscription, Error> {
        Subscription::start(self, cmd::SubscriptionKind::Pattern, patterns)
    }

    /// Subscribes to shard channels (`SSUBSCRIBE`).
    ///
    /// # Errors
    ///
    /// As [`Client::run`].
    pub fn ssubscribe<C: AsRef<[u8]>>(
        &self,
        channels: impl IntoIterator<Item = C>,
    ) -> Result<Subscription, Error> {
        Subscription::start(self, cmd::SubscriptionKind::Shard, channels)
    }

    /// Shuts the client down: every request fails, every socket closes,
    /// and the driver's threads have ended when it returns (a connect under
    /// way is waited for, up to the handshake timeout). Later requests fail
    /// with [`redpoll_core::Error::Shutdown`].
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }

    /// What the pool holds (open, idle, in use, waiting) and has done
    /// (connections created and closed by reason, probes, retries).
    #[must_use]
    pub fn pool_stats(&self) -> redpoll_core::pool::PoolStats {
        self.shared.lock().core.pool_stats()
    }
}

/// Sends a pipeline's commands back to back and decodes the replies.
fn run_pipeline<T: FromReplies>(
    shared: &Shared,
    lease: Option<redpoll_core::LeaseId>,
    pipeline: &Pipeline<T>,
) -> Result<T, Error> {
    #[cfg(feature = "tracing")]
    let _span = tracing::debug_span!("pipeline", commands = pipeline.reply_count()).entered();
    let frames = shared
        .request_all(lease, pipeline.commands())
        .into_iter()
        .collect::<Result<Vec<Frame>, _>>()?;
    Ok(pipeline.decode(frames)?)
}

#[cfg(feature = "tracing")]
fn command_span<T>(cmd: &Cmd<T>) -> tracing::Span {
    tracing::debug_span!("command", name = %String::from_utf8_lossy(cmd.name()))
}

/// A connection of one's own, for `WATCH`/`MULTI`/`EXEC`. Dropping it gives
/// the connection back; the core closes it instead if a transaction was
/// left open.
///
/// ```no_run
/// # fn main() -> Result<(), redpoll_std::Error> {
/// use redpoll_std::cmd::{self, Pipeline};
/// # let client = redpoll_std::Client::open("redis://127.0.0.1")?;
/// let tx = client.transaction()?;
/// tx.run(cmd::watch(["balance"]))?;
/// let balance: i64 = tx.run(cmd::get("balance").returning::<Option<i64>>())?.unwrap_or(0);
/// // Err(Error::Aborted) if someone changed `balance` meanwhile.
/// tx.exec(Pipeline::new().add(cmd::set("balance", balance + 10)))?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Transaction {
    client: Client,
    lease: redpoll_core::LeaseId,
}

impl Transaction {
    /// Runs one command on the transaction's connection.
    ///
    /// # Errors
    ///
    /// As [`Client::run`].
    pub fn run<T: FromFrame>(&self, cmd: Cmd<T>) -> Result<T, Error> {
        #[cfg(feature = "tracing")]
        let _span = command_span(&cmd).entered();
        let frame = self.client.shared.request(Some(self.lease), &cmd)?;
        Ok(cmd.decode(frame)?)
    }

    /// Runs a pipeline on the transaction's connection, as it is.
    ///
    /// # Errors
    ///
    /// As [`Client::pipeline`].
    pub fn pipeline<T: FromReplies>(&self, pipeline: Pipeline<T>) -> Result<T, Error> {
        run_pipeline(&self.client.shared, Some(self.lease), &pipeline)
    }

    /// Runs a pipeline as `MULTI` ... `EXEC` (made [atomic](Pipeline::atomic)
    /// if it is not yet).
    ///
    /// # Errors
    ///
    /// [`Error::Aborted`] when a `WATCH`ed key changed (nothing ran), else
    /// as [`Client::pipeline`].
    pub fn exec<T: FromReplies>(&self, pipeline: Pipeline<T>) -> Result<T, Error> {
        self.pipeline(pipeline.atomic())
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let shared = &self.client.shared;
        let mut state = shared.lock();
        let now = state.now();
        state.core.release(now, self.lease);
        shared.settle(&mut state);
    }
}

/// The items of a scan, fetched a page at a time ([`Client::scan`]).
pub struct Scan<T> {
    client: Client,
    walk: Walk<T>,
    page: vec::IntoIter<T>,
    failed: bool,
}

/// Where a scan is: one cursor, or a walk of a cluster's primaries (made
/// on the first page, once the topology is known).
enum Walk<T> {
    One(ScanState<T>),
    Cluster(Cmd<(u64, Vec<T>)>, Option<Box<ClusterScan<T>>>),
}

impl<T: FromFrame> Scan<T> {
    /// The next page, `None` once the scan is complete.
    fn next_page(&mut self) -> Option<Result<Vec<T>, Error>> {
        match &mut self.walk {
            Walk::One(state) => {
                let cmd = state.next_cmd()?;
                Some(self.client.run(cmd).map(|reply| state.feed(reply)))
            }
            Walk::Cluster(first, scan) => {
                if scan.is_none() {
                    match self.client.primaries() {
                        Ok(nodes) => *scan = Some(Box::new(ClusterScan::new(first.clone(), nodes))),
                        Err(e) => return Some(Err(e)),
                    }
                }
                let scan = scan.as_mut()?;
                let (node, cmd) = scan.next_cmd()?;
                let node = node.clone();
                let frame = match self.client.shared.request_to(&node, &cmd) {
                    Ok(frame) => frame,
                    Err(e) => return Some(Err(e.into())),
                };
                Some(
                    cmd.decode(frame)
                        .map(|reply| scan.feed(reply))
                        .map_err(Error::from),
                )
            }
        }
    }
}

impl<T: FromFrame> Iterator for Scan<T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.page.next() {
                return Some(Ok(item));
            }
            if self.failed {
                return None;
            }
            match self.next_page()? {
                Ok(page) => self.page = page.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl<T> std::fmt::Debug for Scan<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("Scan");
        match &self.walk {
            Walk::One(state) => f
                .field("cursor", &state.cursor())
                .field("done", &state.is_done()),
            Walk::Cluster(_, scan) => f.field("nodes_left", &scan.as_ref().map(|s| s.nodes_left())),
        };
        f.finish_non_exhaustive()
    }
}
