//! The state shared by the client handles and the driver: the core, the
//! waiters of requests, the subscribers of pub/sub channels.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant as StdInstant;

use bytes::Bytes;
use redpoll_core::cmd::PushMessage;
use redpoll_core::resp::Frame;
use redpoll_core::{Instant, Machine as Core, RequestId};

/// Hashes request ids, which are distinct counters: a multiply spreads
/// them well enough, and costs far less than the default SipHash on every
/// request.
#[derive(Debug, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// What a request future waits for.
#[derive(Debug, Default)]
pub(crate) struct Waiter {
    pub(crate) result: Option<Result<Frame, redpoll_core::Error>>,
    pub(crate) waker: Option<Waker>,
}

/// One subscription handle's channels and its queue.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) id: u64,
    pub(crate) channels: Vec<Bytes>,
    pub(crate) patterns: Vec<Bytes>,
    pub(crate) shard_channels: Vec<Bytes>,
    pub(crate) tx: async_channel::Sender<PushMessage>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) core: Core,
    origin: StdInstant,
    pub(crate) waiters: HashMap<RequestId, Waiter, BuildHasherDefault<IdHasher>>,
    pub(crate) subscribers: Vec<Subscriber>,
    pub(crate) next_subscriber: u64,
    /// The driver's waker, to call after handing the core a request.
    pub(crate) driver: Option<Waker>,
    /// Set by the driver thread of `Client::new`: a lone caller carries out
    /// its own writes.
    #[cfg(unix)]
    pub(crate) direct: Option<crate::thread::Direct>,
    pub(crate) shut_down: bool,
    /// Status events seen so far, the last one, and who waits for the next.
    pub(crate) status_seq: u64,
    pub(crate) last_status: Option<redpoll_core::Status>,
    pub(crate) status_waiters: Vec<Waker>,
    /// Wakers due, left by [`State::deliver_events_deferred`] for the
    /// driver to call once it has released the lock (a task woken under
    /// the lock would only block on it). Empty whenever the lock is free.
    pub(crate) woken: Vec<Waker>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(core: Core) -> Self {
        Self {
            state: Mutex::new(State {
                core,
                origin: StdInstant::now(),
                waiters: HashMap::default(),
                subscribers: Vec::new(),
                next_subscriber: 0,
                driver: None,
                #[cfg(unix)]
                direct: None,
                shut_down: false,
                status_seq: 0,
                last_status: None,
                status_waiters: Vec::new(),
                woken: Vec::new(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the core half-updated
        // in a way later calls could not cope with: keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    /// The core's clock: nanoseconds since the client was built.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The std instant of a core instant.
    pub(crate) fn instant(&self, at: Instant) -> StdInstant {
        self.origin + std::time::Duration::from_nanos(at.as_nanos())
    }

    /// Hands the wakers due to `into` (empty, to keep the capacity of both),
    /// for calling after the lock is released.
    pub(crate) fn take_woken(&mut self, into: &mut Vec<Waker>) {
        std::mem::swap(&mut self.woken, into);
    }

    /// After a caller handed the core `mine` requests, just now: when they
    /// are the only ones outstanding and the driver is a thread, the caller
    /// writes them itself (see `thread.rs`); else, or for whatever it could
    /// not do, the driver is woken.
    pub(crate) fn sent(&mut self, mine: usize) {
        #[cfg(unix)]
        if self.waiters.len() <= mine {
            let now = self.now();
            if let Some(direct) = self.direct.as_mut()
                && direct.carry_out(&mut self.core, now)
            {
                return;
            }
        }
        let _ = mine;
        self.wake_driver();
    }

    /// Lets the driver carry out what the core now wants.
    pub(crate) fn wake_driver(&self) {
        if let Some(driver) = &self.driver {
            driver.wake_by_ref();
        }
    }

    pub(crate) fn complete(&mut self, id: RequestId, result: Result<Frame, redpoll_core::Error>) {
        // No waiter: the request was cancelled and its late result is dropped.
        if let Some(waiter) = self.waiters.get_mut(&id) {
            waiter.result = Some(result);
            if let Some(waker) = waiter.waker.take() {
                self.woken.push(waker);
            }
        }
    }

    pub(crate) fn status_changed(&mut self, status: redpoll_core::Status) {
        #[cfg(feature = "tracing")]
        tracing::debug!(?status, "status");
        self.status_seq += 1;
        self.last_status = Some(status);
        self.woken.append(&mut self.status_waiters);
    }

    pub(crate) fn route_push(&mut self, frame: Frame) {
        let message = PushMessage::parse(frame);
        let wants = |s: &Subscriber| match &message {
            PushMessage::Message { channel, .. } => s.channels.contains(channel),
            PushMessage::PMessage { pattern, .. } => s.patterns.contains(pattern),
            PushMessage::SMessage { channel, .. } => s.shard_channels.contains(channel),
            _ => false,
        };
        for s in self.subscribers.iter().filter(|s| wants(s)) {
            // Unbounded: a slow subscriber holds memory, never the connection.
            let _ = s.tx.try_send(message.clone());
        }
    }

    #[allow(clippy::unused_self)]
    pub(crate) fn trace_connect(
        &self,
        _socket: redpoll_core::SocketId,
        _address: &redpoll_core::Address,
    ) {
        #[cfg(feature = "tracing")]
        tracing::debug!(socket = _socket.get(), address = %_address, "connect");
    }

    #[allow(clippy::unused_self)]
    pub(crate) fn trace_connected(&self, _socket: redpoll_core::SocketId) {
        #[cfg(feature = "tracing")]
        tracing::debug!(socket = _socket.get(), "connected");
    }

    #[allow(clippy::unused_self)]
    pub(crate) fn trace_close(
        &self,
        _socket: redpoll_core::SocketId,
        _reason: &redpoll_core::CloseReason,
    ) {
        #[cfg(feature = "tracing")]
        tracing::debug!(socket = _socket.get(), reason = %_reason, "close");
    }
}
