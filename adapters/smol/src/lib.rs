//! The async adapter of redpoll: drives [`redpoll_core`] over `async-io`.
//!
//! Works with any executor. One driver task per client carries out the
//! core's effects ([`Client::new`] runs it on a thread of its own;
//! [`Client::with_driver`] hands it to you to spawn). Requests from many
//! tasks share one pipelined connection and leave in one write; blocking
//! commands and transactions get dedicated connections; dropping a request
//! future cancels it without desynchronising the connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), redpoll_smol::Error> {
//! use redpoll_core::cmd;
//! let client = redpoll_smol::Client::open("redis://127.0.0.1:6379")?;
//! client.run(cmd::set("greeting", "hello")).await?;
//! let value: Option<String> = client.run(cmd::get("greeting").returning()).await?;
//! # Ok(()) }
//! ```

mod driver;
mod error;
mod shared;
#[cfg(unix)]
mod thread;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::Stream;
use redpoll_core::cluster::{ClusterConfig, ClusterFailure, ClusterScan, NodeKey};
use redpoll_core::cmd::{Cmd, FromFrame, FromReplies, Pipeline, PushMessage, ScanState, Script};
use redpoll_core::command::Command;
use redpoll_core::resp::{Frame, ToArg};
use redpoll_core::{ClientConfig, LeaseId, RequestId};

pub use driver::Driver;
pub use error::Error;
pub use redpoll_core as core;
use shared::{Shared, State, Subscriber, Waiter};

/// Ends the client when the last handle goes.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let now = state.now();
        state.shut_down = true;
        state.core.shutdown(now);
        state.wake_driver();
    }
}

/// An async Redis client. Cheap to clone: clones share the connections.
#[derive(Debug, Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

impl Client {
    /// A client whose driver runs on a thread of its own, until the last
    /// handle is dropped. Connects on first use.
    ///
    /// Which to choose: with one caller at a time (or a few), this one is
    /// as fast as any (a lone caller writes its own request; the thread
    /// only reads). With many concurrent tasks, [`Client::with_driver`]
    /// with the driver spawned on the tasks' own executor is faster: the
    /// replies then wake the tasks without crossing threads (50 tasks on a
    /// 2-thread executor: about 1.4x the throughput of the redis crate's
    /// multiplexed connection, against about 1.1x for this one; see
    /// BENCHMARKS.md, "End to end").
    ///
    /// # Panics
    ///
    /// When the operating system cannot start a thread.
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        Self::on_thread(Self::with_driver(config))
    }

    /// A client of a Redis Cluster ([`Builder::cluster`] builds one from
    /// URLs), whose driver runs on a thread of its own.
    ///
    /// # Panics
    ///
    /// When the operating system cannot start a thread.
    #[must_use]
    pub fn cluster(config: ClusterConfig) -> Self {
        Self::on_thread(Self::cluster_with_driver(config))
    }

    /// Runs the client's driver on a thread of its own: on unix the
    /// thread's own poller (see `thread.rs`), elsewhere `block_on`.
    fn on_thread((client, driver): (Self, Driver)) -> Self {
        #[cfg(unix)]
        thread::spawn(driver.into_shared()).expect("start the redpoll driver thread");
        #[cfg(not(unix))]
        std::thread::Builder::new()
            .name("redpoll-driver".into())
            .spawn(move || async_io::block_on(driver))
            .expect("start the redpoll driver thread");
        client
    }

    /// A cluster client and its driver, to spawn on the executor of your
    /// choice.
    pub fn cluster_with_driver(mut config: ClusterConfig) -> (Self, Driver) {
        config.node = seeded(config.node);
        Self::with_machine(redpoll_core::cluster::ClusterClient::new(config).into())
    }

    /// A client and its driver, to spawn on the executor of your choice
    /// (the one the client's callers run on is best: see [`Client::new`]).
    pub fn with_driver(config: ClientConfig) -> (Self, Driver) {
        let config = seeded(config);
        Self::with_machine(redpoll_core::Client::new(config).into())
    }

    fn with_machine(machine: redpoll_core::Machine) -> (Self, Driver) {
        let shared = Arc::new(Shared::new(machine));
        let driver = Driver::new(shared.clone());
        (
            Self {
                handle: Arc::new(Handle { shared }),
            },
            driver,
        )
    }

    /// A client configured by a URL (`redis://`, `unix://`; for `rediss://`
    /// see [`Builder`]).
    ///
    /// # Errors
    ///
    /// When the URL is invalid or asks for TLS without certificates.
    pub fn open(url: &str) -> Result<Self, Error> {
        Ok(Self::new(Builder::new(url)?.config()?))
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Whether the shared connection is up (its handshake done).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.shared().lock().core.is_connected()
    }

    /// What the pool holds (open, idle, in use, waiting) and has done
    /// (connections created and closed by reason, probes, retries).
    #[must_use]
    pub fn pool_stats(&self) -> redpoll_core::pool::PoolStats {
        self.shared().lock().core.pool_stats()
    }

    /// Connects now if not connected, and waits until the connection has
    /// finished its handshake.
    ///
    /// # Errors
    ///
    /// The reason the first connection failed (before the client was ever
    /// connected), or the terminal reason when the reconnect budget is
    /// spent. After the client has been connected once, it waits through
    /// reconnects.
    pub async fn wait_connected(&self) -> Result<(), Error> {
        let mut start = None;
        futures_lite::future::poll_fn(|cx| {
            let mut state = self.shared().lock();
            if state.core.is_connected() {
                return Poll::Ready(Ok(()));
            }
            let first = *start.get_or_insert(state.status_seq);
            if state.status_seq != first {
                let never =
                    state.core.reconnect_phase() == redpoll_core::reconnect::Phase::NeverConnected;
                match &state.last_status {
                    Some(redpoll_core::Status::GaveUp { reason }) => {
                        return Poll::Ready(Err(Error::Connection(
                            redpoll_core::Error::Connection(reason.clone()),
                        )));
                    }
                    Some(redpoll_core::Status::Disconnected { reason }) if never => {
                        return Poll::Ready(Err(Error::Connection(
                            redpoll_core::Error::Connection(reason.clone()),
                        )));
                    }
                    _ => {}
                }
            }
            let now = state.now();
            state.core.connect(now);
            state.status_waiters.push(cx.waker().clone());
            state.wake_driver();
            Poll::Pending
        })
        .await
    }

    /// Runs one command and converts its reply.
    ///
    /// # Errors
    ///
    /// A connection error, a timeout, a server error reply or a reply that
    /// does not convert to `T`.
    pub async fn run<T: FromFrame>(&self, cmd: Cmd<T>) -> Result<T, Error> {
        #[cfg(feature = "tracing")]
        {
            use tracing::Instrument as _;
            let span = tracing::debug_span!("command", name = %String::from_utf8_lossy(cmd.name()));
            self.run_inner(cmd).instrument(span).await
        }
        #[cfg(not(feature = "tracing"))]
        self.run_inner(cmd).await
    }

    async fn run_inner<T: FromFrame>(&self, cmd: Cmd<T>) -> Result<T, Error> {
        let frame = self.request(&cmd).await?;
        Ok(cmd.decode(frame)?)
    }

    /// Runs a pipeline: its commands leave in one write and its replies
    /// come back converted, in order.
    ///
    /// # Errors
    ///
    /// The first error among the replies, or a connection error.
    pub async fn pipeline<T: FromReplies>(&self, pipeline: Pipeline<T>) -> Result<T, Error> {
        run_pipeline(self.shared(), None, pipeline).await
    }

    /// A transaction: a connection of its own until the [`Transaction`] is
    /// dropped, for `WATCH` ... `MULTI` ... `EXEC`.
    ///
    /// # Errors
    ///
    /// When every dedicated connection is in use.
    pub fn transaction(&self) -> Result<Transaction, Error> {
        let mut state = self.shared().lock();
        let now = state.now();
        let lease = state.core.lease(now)?;
        state.wake_driver();
        Ok(Transaction {
            client: self.clone(),
            lease,
        })
    }

    /// Iterates over a `SCAN`-family command (`cmd::scan(0)`, `cmd::hscan`,
    /// ...), one page after the other, as a stream of items.
    ///
    /// On a cluster, `SCAN` walks every primary in turn, each with its own
    /// cursor ([`ClusterScan`]); `HSCAN`
    /// and the others go to the node of their key.
    pub fn scan<T: FromFrame + Unpin + Send + 'static>(
        &self,
        cmd: Cmd<(u64, Vec<T>)>,
    ) -> impl Stream<Item = Result<T, Error>> + Send + 'static {
        let client = self.clone();
        let walk =
            if self.shared().lock().core.is_cluster() && cmd.name().eq_ignore_ascii_case(b"SCAN") {
                Walk::Cluster(cmd, None)
            } else {
                Walk::One(ScanState::new(cmd))
            };
        let page: std::vec::IntoIter<T> = Vec::new().into_iter();
        futures_lite::stream::unfold(
            (client, walk, page, false),
            |(client, mut walk, mut page, failed)| async move {
                loop {
                    if failed {
                        return None;
                    }
                    if let Some(item) = page.next() {
                        return Some((Ok(item), (client, walk, page, false)));
                    }
                    match client.next_page(&mut walk).await? {
                        Ok(next) => page = next.into_iter(),
                        Err(e) => return Some((Err(e), (client, walk, page, true))),
                    }
                }
            },
        )
    }

    /// The next page of a scan, `None` once it is complete.
    async fn next_page<T: FromFrame>(&self, walk: &mut Walk<T>) -> Option<Result<Vec<T>, Error>> {
        match walk {
            Walk::One(state) => {
                let next = state.next_cmd()?;
                Some(self.run(next).await.map(|reply| state.feed(reply)))
            }
            Walk::Cluster(first, scan) => {
                if scan.is_none() {
                    match self.primaries().await {
                        Ok(nodes) => *scan = Some(Box::new(ClusterScan::new(first.clone(), nodes))),
                        Err(e) => return Some(Err(e)),
                    }
                }
                let scan = scan.as_mut()?;
                let (node, next) = scan.next_cmd()?;
                let node = node.clone();
                let frame = match self.request_to(&node, &next).await {
                    Ok(frame) => frame,
                    Err(e) => return Some(Err(e)),
                };
                Some(
                    next.decode(frame)
                        .map(|reply| scan.feed(reply))
                        .map_err(Error::from),
                )
            }
        }
    }

    /// The cluster's primaries, once its topology is known.
    async fn primaries(&self) -> Result<Vec<NodeKey>, Error> {
        let known = self.shared().lock().core.primaries();
        if !known.is_empty() {
            return Ok(known);
        }
        self.wait_connected().await?;
        let known = self.shared().lock().core.primaries();
        if known.is_empty() {
            return Err(Error::Connection(redpoll_core::Error::Cluster(
                ClusterFailure::ClusterDown,
            )));
        }
        Ok(known)
    }

    /// Runs a script by its SHA-1 (`EVALSHA`), sending the body (`EVAL`)
    /// when the server does not have it yet.
    ///
    /// # Errors
    ///
    /// As [`Client::run`].
    pub async fn eval<T: FromFrame, K: ToArg, A: ToArg>(
        &self,
        script: &Script,
        keys: impl IntoIterator<Item = K>,
        args: impl IntoIterator<Item = A>,
    ) -> Result<T, Error> {
        let cmd: Cmd<T> = script.invoke(keys, args);
        let frame = self.request(&cmd).await?;
        let frame = match script.fallback(&cmd, &frame) {
            Some(eval) => return self.run(eval).await,
            None => frame,
        };
        Ok(cmd.decode(frame)?)
    }

    /// Subscribes to channels; messages arrive on the returned
    /// [`Subscription`], in order. Needs RESP3 (the default protocol).
    ///
    /// # Errors
    ///
    /// When the server refuses the subscription.
    pub async fn subscribe<C: AsRef<[u8]>>(
        &self,
        channels: impl IntoIterator<Item = C>,
    ) -> Result<Subscription, Error> {
        self.subscribe_kind(Kind::Channel, channels).await
    }

    /// Subscribes to channel patterns (`PSUBSCRIBE`).
    ///
    /// # Errors
    ///
    /// When the server refuses the subscription.
    pub async fn psubscribe<C: AsRef<[u8]>>(
        &self,
        patterns: impl IntoIterator<Item = C>,
    ) -> Result<Subscription, Error> {
        self.subscribe_kind(Kind::Pattern, patterns).await
    }

    /// Subscribes to shard channels (`SSUBSCRIBE`).
    ///
    /// # Errors
    ///
    /// When the server refuses the subscription.
    pub async fn ssubscribe<C: AsRef<[u8]>>(
        &self,
        channels: impl IntoIterator<Item = C>,
    ) -> Result<Subscription, Error> {
        self.subscribe_kind(Kind::Shard, channels).await
    }

    async fn subscribe_kind<C: AsRef<[u8]>>(
        &self,
        kind: Kind,
        names: impl IntoIterator<Item = C>,
    ) -> Result<Subscription, Error> {
        let names: Vec<bytes::Bytes> = names
            .into_iter()
            .map(|c| bytes::Bytes::copy_from_slice(c.as_ref()))
            .collect();
        let (tx, rx) = async_channel::unbounded();
        let id = {
            let mut state = self.shared().lock();
            let id = state.next_subscriber;
            state.next_subscriber += 1;
            let mut subscriber = Subscriber {
                id,
                channels: Vec::new(),
                patterns: Vec::new(),
                shard_channels: Vec::new(),
                tx,
            };
            *kind.list(&mut subscriber) = names.clone();
            state.subscribers.push(subscriber);
            id
        };
        // Registered before the command leaves: no message can slip by.
        let subscription = Subscription {
            client: self.clone(),
            id,
            kind,
            names: names.clone(),
            rx: Box::pin(rx),
        };
        let cmd = match kind {
            Kind::Channel => redpoll_core::cmd::subscribe(&names),
            Kind::Pattern => redpoll_core::cmd::psubscribe(&names),
            Kind::Shard => redpoll_core::cmd::ssubscribe(&names),
        };
        self.run(cmd).await?;
        Ok(subscription)
    }

    /// Shuts the client down: every request fails, every socket closes.
    pub fn shutdown(&self) {
        let mut state = self.shared().lock();
        let now = state.now();
        state.shut_down = true;
        state.core.shutdown(now);
        state.wake_driver();
    }

    /// Sends any command and waits for its reply frame.
    fn request<'a, C: Command + ?Sized>(&'a self, cmd: &'a C) -> Request<'a, C> {
        Request {
            shared: self.shared(),
            cmd,
            lease: None,
            node: None,
            id: None,
        }
    }

    /// A request for one node of a cluster.
    fn request_to<'a, C: Command + ?Sized>(
        &'a self,
        node: &'a NodeKey,
        cmd: &'a C,
    ) -> Request<'a, C> {
        Request {
            node: Some(node),
            ..self.request(cmd)
        }
    }
}

/// Sends a command on first poll, then waits for its reply. Dropping it
/// cancels the request: the core discards its reply when it comes.
struct Request<'a, C: ?Sized> {
    shared: &'a Arc<Shared>,
    cmd: &'a C,
    lease: Option<LeaseId>,
    /// The node of a cluster it goes to, whatever its keys.
    node: Option<&'a NodeKey>,
    id: Option<RequestId>,
}

impl<C: Command + ?Sized> Future for Request<'_, C> {
    type Output = Result<Frame, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.shared.lock();
        let Some(id) = self.id else {
            let now = state.now();
            let id = match (self.lease, self.node) {
                (Some(lease), _) => state.core.send_leased(now, lease, self.cmd),
                (None, Some(node)) => state.core.send_to_node(now, node, self.cmd),
                (None, None) => state.core.send(now, self.cmd),
            };
            state.waiters.insert(
                id,
                Waiter {
                    result: None,
                    waker: Some(cx.waker().clone()),
                },
            );
            // The result may already be there (a shut-down client answers at
            // once); the driver delivers it either way.
            state.sent(1);
            state.deliver_events();
            let done = take_result(&mut state, id, cx);
            drop(state);
            self.id = Some(id);
            return done;
        };
        take_result(&mut state, id, cx)
    }
}

fn take_result(state: &mut State, id: RequestId, cx: &Context<'_>) -> Poll<Result<Frame, Error>> {
    let Some(waiter) = state.waiters.get_mut(&id) else {
        return Poll::Ready(Err(Error::Connection(redpoll_core::Error::Shutdown)));
    };
    match waiter.result.take() {
        Some(result) => {
            state.waiters.remove(&id);
            Poll::Ready(result.map_err(Error::Connection))
        }
        None => {
            waiter.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

impl<C: ?Sized> Drop for Request<'_, C> {
    fn drop(&mut self) {
        let Some(id) = self.id else {
            return;
        };
        let mut state = self.shared.lock();
        if state
            .waiters
            .remove(&id)
            .is_some_and(|w| w.result.is_none())
        {
            state.core.cancel(id);
        }
    }
}

/// Sends a pipeline's commands back to back (one write), on a lease if one
/// is given, and converts the replies in order.
async fn run_pipeline<T: FromReplies>(
    shared: &Arc<Shared>,
    lease: Option<LeaseId>,
    pipeline: Pipeline<T>,
) -> Result<T, Error> {
    let ids: Vec<RequestId> = {
        let mut state = shared.lock();
        let now = state.now();
        let ids = pipeline
            .commands()
            .map(|c| match lease {
                Some(lease) => state.core.send_leased(now, lease, c),
                None => state.core.send(now, c),
            })
            .collect::<Vec<_>>();
        for id in &ids {
            state.waiters.insert(*id, Waiter::default());
        }
        state.sent(ids.len());
        ids
    };
    let mut frames = Vec::with_capacity(ids.len());
    let mut pending = Pending::new(shared.clone(), ids);
    while let Some(result) = pending.next().await {
        frames.push(result?);
    }
    Ok(pipeline.decode(frames)?)
}

/// Waits for several requests in order (the replies of a pipeline).
struct Pending {
    shared: Arc<Shared>,
    ids: std::collections::VecDeque<RequestId>,
}

impl Pending {
    fn new(shared: Arc<Shared>, ids: Vec<RequestId>) -> Self {
        Self {
            shared,
            ids: ids.into(),
        }
    }

    async fn next(&mut self) -> Option<Result<Frame, Error>> {
        let id = *self.ids.front()?;
        let shared = self.shared.clone();
        let result =
            futures_lite::future::poll_fn(|cx| take_result(&mut shared.lock(), id, cx)).await;
        self.ids.pop_front();
        Some(result)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        for id in self.ids.drain(..) {
            if state
                .waiters
                .remove(&id)
                .is_some_and(|w| w.result.is_none())
            {
                state.core.cancel(id);
            }
        }
    }
}

/// Where a scan is: one cursor, or a walk of a cluster's primaries (made
/// on the first page, once the topology is known).
enum Walk<T> {
    One(ScanState<T>),
    Cluster(Cmd<(u64, Vec<T>)>, Option<Box<ClusterScan<T>>>),
}

/// A connection of one's own, for `WATCH`/`MULTI`/`EXEC`. Dropping it gives
/// the connection back (closed instead if a transaction is left open).
#[derive(Debug)]
pub struct Transaction {
    client: Client,
    lease: LeaseId,
}

impl Transaction {
    /// Runs one command on the transaction's connection.
    ///
    /// # Errors
    ///
    /// As [`Client::run`].
    pub async fn run<T: FromFrame>(&self, cmd: Cmd<T>) -> Result<T, Error> {
        let frame = Request {
            shared: self.client.shared(),
            cmd: &cmd,
            lease: Some(self.lease),
            node: None,
            id: None,
        }
        .await?;
        Ok(cmd.decode(frame)?)
    }

    /// Runs a pipeline on the transaction's connection (use
    /// [`Pipeline::atomic`] for `MULTI`/`EXEC`). A `WATCH` conflict gives
    /// [`Error::Aborted`].
    ///
    /// # Errors
    ///
    /// The first error among the replies, or a connection error.
    pub async fn pipeline<T: FromReplies>(&self, pipeline: Pipeline<T>) -> Result<T, Error> {
        run_pipeline(self.client.shared(), Some(self.lease), pipeline).await
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let mut state = self.client.shared().lock();
        let now = state.now();
        state.core.release(now, self.lease);
        state.wake_driver();
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn list(self, s: &mut Subscriber) -> &mut Vec<bytes::Bytes> {
        match self {
            Self::Channel => &mut s.channels,
            Self::Pattern => &mut s.patterns,
            Self::Shard => &mut s.shard_channels,
        }
    }
}

/// Messages of subscribed channels, in order. Dropping it unsubscribes
/// from the channels no other subscription wants.
#[derive(Debug)]
pub struct Subscription {
    client: Client,
    id: u64,
    kind: Kind,
    names: Vec<bytes::Bytes>,
    rx: Pin<Box<async_channel::Receiver<PushMessage>>>,
}

impl Subscription {
    /// The next message; `None` once the client is gone.
    pub async fn next(&self) -> Option<PushMessage> {
        self.rx.recv().await.ok()
    }
}

impl Stream for Subscription {
    type Item = PushMessage;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PushMessage>> {
        self.get_mut().rx.as_mut().poll_next(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.client.shared().lock();
        state.subscribers.retain(|s| s.id != self.id);
        let kind = self.kind;
        let still_wanted: Vec<bytes::Bytes> = state
            .subscribers
            .iter_mut()
            .flat_map(|s| kind.list(s).clone())
            .collect();
        let unwanted: Vec<&bytes::Bytes> = self
            .names
            .iter()
            .filter(|n| !still_wanted.contains(n))
            .collect();
        if unwanted.is_empty() || state.shut_down {
            return;
        }
        let cmd = match kind {
            Kind::Channel => redpoll_core::cmd::unsubscribe(unwanted),
            Kind::Pattern => redpoll_core::cmd::punsubscribe(unwanted),
            Kind::Shard => redpoll_core::cmd::sunsubscribe(unwanted),
        };
        let now = state.now();
        // Nobody waits for the confirmation: cancel it at once.
        let id = state.core.send(now, &cmd);
        state.core.cancel(id);
        state.wake_driver();
    }
}

/// Builds a client from a URL and what URLs do not carry: certificates,
/// pool sizes, deadlines.
///
/// ```no_run
/// # fn demo(ca_pem: &[u8]) -> Result<(), redpoll_smol::Error> {
/// let client = redpoll_smol::Builder::new("rediss://cache.internal:6380/2?client_name=worker")?
///     .tls_root_pem(ca_pem)?
///     .response_timeout(std::time::Duration::from_secs(2))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Builder {
    config: ClientConfig,
    /// Set for a cluster client: its seed nodes.
    seeds: Option<Vec<redpoll_core::Address>>,
    /// A cluster client's reads go to replicas.
    read_from_replicas: bool,
    #[cfg(feature = "tls")]
    tls: Option<redpoll_core::conn::TlsConfigBuilder>,
}

impl Builder {
    /// Starts from a URL: `redis://[user:pass@]host[:port][/db][?options]`,
    /// `rediss://...` for TLS, `unix:///path/to/socket`; a URL with several
    /// hosts (`redis://h1:7000,h2:7001`) makes a cluster client seeded with
    /// them.
    ///
    /// # Errors
    ///
    /// When the URL is invalid.
    pub fn new(url: &str) -> Result<Self, Error> {
        let url = redpoll_core::url::parse(url)?;
        #[cfg(not(feature = "tls"))]
        if url.tls {
            return Err(Error::Tls(redpoll_core::TlsError {
                kind: redpoll_core::TlsErrorKind::Config,
                message: "rediss:// needs the tls feature of redpoll-smol".into(),
            }));
        }
        Ok(Self {
            config: url.client_config(),
            seeds: redpoll_core::url::cluster_seeds(&url),
            read_from_replicas: false,
            #[cfg(feature = "tls")]
            tls: url.tls_builder(),
        })
    }

    /// Starts from a configuration.
    #[must_use]
    pub const fn from_config(config: ClientConfig) -> Self {
        Self {
            config,
            seeds: None,
            read_from_replicas: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Trusts the CA certificates in `pem` (and turns TLS on).
    ///
    /// # Errors
    ///
    /// When the PEM holds no usable certificate.
    #[cfg(feature = "tls")]
    pub fn tls_root_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let tls = self
            .tls
            .take()
            .unwrap_or_else(redpoll_core::conn::TlsConfig::builder);
        self.tls = Some(tls.add_root_pem(pem)?);
        Ok(self)
    }

    /// Presents this certificate chain and key to the server (mutual TLS).
    ///
    /// # Errors
    ///
    /// When either PEM does not parse.
    #[cfg(feature = "tls")]
    pub fn tls_client_auth_pem(mut self, cert_chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        let tls = self
            .tls
            .take()
            .unwrap_or_else(redpoll_core::conn::TlsConfig::builder);
        self.tls = Some(tls.client_auth_pem(cert_chain, key)?);
        Ok(self)
    }

    /// Accepts any server certificate. For tests only.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn dangerous_skip_verification(mut self) -> Self {
        let tls = self
            .tls
            .take()
            .unwrap_or_else(redpoll_core::conn::TlsConfig::builder);
        self.tls = Some(tls.dangerous_skip_verification());
        self
    }

    /// The deadline of each request (blocking commands get their block
    /// time on top).
    #[must_use]
    pub const fn response_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.config.response_timeout = Some(timeout);
        self
    }

    /// The one deadline of TCP connect + TLS + the server handshake.
    #[must_use]
    pub const fn handshake_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.config.conn.handshake_timeout = timeout;
        self
    }

    /// Most dedicated connections (blocking commands, transactions).
    #[must_use]
    pub const fn max_dedicated(mut self, n: usize) -> Self {
        self.config.pool.max_size = n;
        self
    }

    /// The pool of dedicated connections and the liveness rules of every
    /// connection: sizes, idle timeout, lifetime, probes, waiters.
    #[must_use]
    pub fn pool(mut self, pool: redpoll_core::pool::PoolConfig) -> Self {
        self.config.pool = pool;
        self
    }

    /// Which requests are sent again after their connection failed
    /// (default: none).
    #[must_use]
    pub const fn retry(mut self, retry: redpoll_core::pool::RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// The configuration to build the client with.
    ///
    /// # Errors
    ///
    /// When the TLS configuration is unusable.
    pub fn config(self) -> Result<ClientConfig, Error> {
        #[allow(unused_mut)]
        let mut config = self.config;
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls {
            config.conn.tls = Some(tls.build()?);
        }
        Ok(config)
    }

    /// Builds the client (its driver on a thread of its own).
    ///
    /// # Errors
    ///
    /// When the TLS configuration is unusable.
    pub fn build(mut self) -> Result<Client, Error> {
        let seeds = self.seeds.take();
        let replicas = self.read_from_replicas;
        let config = self.config()?;
        Ok(match seeds {
            Some(seeds) => {
                let mut cluster = ClusterConfig::new(seeds, config);
                cluster.read_from_replicas = replicas;
                Client::cluster(cluster)
            }
            None => Client::new(config),
        })
    }

    /// Makes the client a Redis Cluster client: the builder's URL names one
    /// seed node, `more` names others (URLs such as `redis://localhost:7001`;
    /// any spelling of an address: the client keys nodes by one canonical
    /// name). Every other setting is the template of each node's
    /// connections.
    ///
    /// # Errors
    ///
    /// [`Error::Url`] for an invalid seed URL.
    pub fn cluster(mut self, more: &[&str]) -> Result<Self, Error> {
        let mut seeds = self
            .seeds
            .take()
            .unwrap_or_else(|| vec![self.config.conn.address.clone()]);
        for url in more {
            seeds.push(redpoll_core::url::parse(url)?.address);
        }
        self.seeds = Some(seeds);
        Ok(self)
    }

    /// A cluster client sends read-only commands to replicas of their
    /// slot's shard, which may lag their primary (see
    /// [`ClusterConfig::read_from_replicas`]). Default: off.
    #[must_use]
    pub const fn read_from_replicas(mut self, on: bool) -> Self {
        self.read_from_replicas = on;
        self
    }
}

/// Draws the reconnect jitter's seed from the clock unless one was chosen.
fn seeded(mut config: ClientConfig) -> ClientConfig {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    config
        .reconnect
        .seed_unless_chosen(nanos ^ u64::from(std::process::id()).rotate_left(32));
    config
}
