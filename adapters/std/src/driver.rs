//! The driver: the core behind one mutex, and the threads that move bytes.
//!
//! # What this module does (and does not decide)
//!
//! It carries out the core's effects and reports what the sockets did;
//! every decision (which connection, retry, close) is the core's.
//!
//! - **Whoever changes the core drains it**, still holding the lock
//!   ([`Shared::settle`]): every effect is carried out (connect, write,
//!   close), every reply is put where its caller finds it, every push is
//!   queued for the subscriptions that want it, and the waiters are woken.
//! - **One reader at a time per socket** ([`Reading`]): a blocking `read`
//!   whose timeout is the core's next deadline (at most [`MAX_READ_WAIT`]);
//!   it reports data, EOF, errors and passed deadlines, and wakes the
//!   waiters of the answers once it has let go of the lock. A caller whose
//!   requests went to a socket nobody reads (nothing else is out on it)
//!   reads their replies itself, as a blocking client without a driver
//!   would: no thread hop per reply (not for a cluster, whose requests
//!   move between sockets, nor for a write over [`CALLER_READS_UP_TO`]).
//!   Otherwise the socket's reader thread reads whenever the core expects
//!   bytes; when none are expected it leaves the socket unread for
//!   [`IDLE_HANDOVER`] (for the next caller), then watches it again for a
//!   close by the server.
//! - **One short-lived thread per connect**: it resolves, connects within
//!   the handshake timeout, then reports.
//! - **Writes are queued per socket and leave in batches.** A caller that
//!   sent requests writes whatever is queued for their sockets itself,
//!   outside the lock, then again whatever was queued meanwhile, until
//!   nothing is left; callers that come while a socket is being written
//!   only queue (many threads' requests leave in one write, and none holds
//!   the lock through a system call). Everyone else (readers, the timer,
//!   connects) writes under the lock, unless a caller is writing that
//!   socket already. Each write is bounded by the write timeout: a server
//!   that stops reading holds its writer up for that long at most, then
//!   the core hears of a timed-out write and closes the connection.
//! - **Waiters** ([`Shared::wait`]) sleep on the condition variable until
//!   what they wait for is there, and act on a passed deadline themselves:
//!   a deadline can pass while no socket exists to time a read by (a
//!   connect still under way).
//!
//! # Invariants
//!
//! - A socket the core closed is never reported on again: the reader and
//!   connect threads check that the core still knows it, under the lock,
//!   before every report.
//! - Every socket the core opens is shut down on its `Close`, which is
//!   what wakes its reader; the file descriptors go when both the writer
//!   half (in the socket table) and the reader's half are dropped.
//! - The threads hold the client weakly: a blocked read does not keep a
//!   dropped client alive.

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use redpoll_core::Status;
use redpoll_core::cmd::{PushMessage, SubscriptionKind};
use redpoll_core::command::Command;
use redpoll_core::resp::Frame;
use redpoll_core::{
    Address, CloseReason, Effect, Error as CoreError, Event, Instant, IoError, LeaseId, RequestId,
    SocketId,
};

/// The longest a reader blocks in `read` before it looks at the core's
/// deadlines again (a deadline armed while it was blocked).
const MAX_READ_WAIT: Duration = Duration::from_secs(1);
/// The shortest read timeout (zero means "none" to the operating system).
const MIN_READ_WAIT: Duration = Duration::from_millis(1);
/// The read buffer of each socket.
const READ_BUFFER: usize = 64 * 1024;
/// How long a socket nobody expects bytes on is left unread after its last
/// reply, for the next caller to read its own: then its reader thread
/// watches it again (for a close by the server).
const IDLE_HANDOVER: Duration = Duration::from_millis(50);
/// A caller that writes more than this (its requests, and what other
/// threads queued meanwhile) reads nothing itself: while a long write
/// blocks, the reader thread keeps the replies moving.
const CALLER_READS_UP_TO: usize = 64 * 1024;

/// What the client handles share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Notified after every change of the core.
    changed: Condvar,
}

/// The core and what the adapter keeps beside it.
pub(crate) struct State {
    pub(crate) core: redpoll_core::Machine,
    /// For the threads the driver starts.
    me: Weak<Shared>,
    /// The origin of the core's clock.
    origin: StdInstant,
    sockets: HashMap<SocketId, Socket>,
    /// Requests sent and not answered yet that someone will wait for, and
    /// the thread that waits: woken alone when its answer comes.
    waiting: HashMap<RequestId, thread::Thread>,
    /// Answers of waited-for requests, until their waiter takes them.
    done: HashMap<RequestId, Result<Frame, CoreError>>,
    /// Set by a reader (thread or caller) while it hands bytes to the
    /// core: the waiters of the answers are left in `unpark` and woken once
    /// it has let go of the lock (woken under it, each would only block on
    /// it).
    defer_unpark: bool,
    unpark: Vec<thread::Thread>,
    /// The sockets written to since [`Shared::settle_sent`] began: the one
    /// its caller's requests went to.
    sent_to: SentTo,
    /// Threads sleeping on the condition variable ([`Shared::wait`]): it
    /// is only notified when there are any.
    watchers: usize,
    pub(crate) subscribers: Vec<Subscriber>,
    next_subscriber: u64,
    threads: Vec<JoinHandle<()>>,
    write_timeout: Duration,
    pub(crate) shut_down: bool,
    /// Status events seen so far, and the last one.
    pub(crate) status_seq: u64,
    pub(crate) last_status: Option<Status>,
    /// The timer thread, and when it will look at the core next: it fires
    /// the deadlines no reader or waiter is there to fire (a reconnect
    /// while the client is idle).
    timer: Option<thread::Thread>,
    timer_wakes_at: Option<Instant>,
}

/// A subscription's queue of messages.
pub(crate) struct Subscriber {
    pub(crate) id: u64,
    pub(crate) kind: SubscriptionKind,
    pub(crate) names: Vec<Bytes>,
    pub(crate) queue: VecDeque<PushMessage>,
}

enum Socket {
    /// A connect thread is under way.
    Connecting,
    /// Connected.
    Open(Open),
}

/// A connected socket's writer half (the reader thread has a clone), its
/// bytes waiting to be written, in order, and who reads it.
struct Open {
    stream: Arc<Stream>,
    out: Vec<Bytes>,
    /// A caller is writing it outside the lock: nobody else writes.
    writing: bool,
    /// Who reads it: one at a time, whoever holds this.
    reading: Reading,
    /// When it last went unread ([`Reading::Nobody`]).
    unread_since: StdInstant,
    /// The read timeout last set on it (its handles share one).
    armed: Duration,
    /// Its reader thread: woken when the socket becomes its to read, or
    /// is closed.
    reader: thread::Thread,
    /// The read buffer of the callers that read it.
    buf: Vec<u8>,
}

/// Who reads a socket.
///
/// A caller whose requests are the only ones on a socket nobody reads
/// reads their replies itself, as a blocking client without a driver
/// would: no thread hands them over. Whenever the core expects bytes on a
/// socket nobody else reads, its reader thread does ([`State::assign_readers`]);
/// when none are expected, nobody reads it for [`IDLE_HANDOVER`], and then
/// the reader thread watches it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Nobody: no bytes are expected.
    Nobody,
    /// The reader thread.
    Thread,
    /// A caller, for its own replies.
    Caller,
}

/// The sockets written to since a caller sent its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SentTo {
    None,
    One(SocketId),
    Many,
}

impl Shared {
    pub(crate) fn new(core: redpoll_core::Machine, write_timeout: Duration) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            state: Mutex::new(State {
                core,
                me: me.clone(),
                origin: StdInstant::now(),
                sockets: HashMap::new(),
                waiting: HashMap::new(),
                done: HashMap::new(),
                defer_unpark: false,
                unpark: Vec::new(),
                sent_to: SentTo::None,
                watchers: 0,
                subscribers: Vec::new(),
                next_subscriber: 0,
                threads: Vec::new(),
                write_timeout,
                shut_down: false,
                status_seq: 0,
                last_status: None,
                timer: None,
                timer_wakes_at: None,
            }),
            changed: Condvar::new(),
        })
        .start_timer()
    }

    fn start_timer(self: Arc<Self>) -> Arc<Self> {
        let me = Arc::downgrade(&self);
        let spawned = thread::Builder::new()
            .name("redpoll-timer".into())
            .spawn(move || timer_thread(&me));
        let mut state = self.lock();
        match spawned {
            Ok(handle) => {
                state.timer = Some(handle.thread().clone());
                state.threads.push(handle);
            }
            // Without it, deadlines are still fired by readers and waiters.
            Err(_) => state.timer = None,
        }
        drop(state);
        self
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under the lock. Should the driver or the core
        // panic under it, the callers carry on with the state as it is
        // rather than all panicking in turn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After any change of the core: carries out its effects (queued
    /// writes included, under the lock), hands out its events, wakes the
    /// waiters (each reply's waiter alone, in [`State::drain`]; the
    /// condition variable's only when there are any).
    pub(crate) fn settle(&self, state: &mut State) {
        state.drain();
        self.announce(state);
    }

    /// [`Shared::settle`] for a caller that has just sent requests: their
    /// bytes (and whatever else is queued for a socket nobody is writing)
    /// are written by this thread outside the lock, until nothing is left.
    /// When they went to one socket that nobody reads, the caller takes
    /// its reading over: returned, for [`Shared::wait_reply`] and
    /// [`Shared::finish_reading`].
    fn settle_sent<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
    ) -> (MutexGuard<'a, State>, Option<SocketId>) {
        state.sent_to = SentTo::None;
        state.drain_effects_and_events();
        let mut reads = state.claim_reading();
        self.announce(&mut state);
        while let Some((socket, stream, mut out)) = state.take_unwritten() {
            if reads == Some(socket)
                && out.iter().map(Bytes::len).sum::<usize>() > CALLER_READS_UP_TO
            {
                // A long write (its own bytes, or what others queued): the
                // reader thread keeps the replies moving meanwhile.
                state.stop_reading(socket);
                reads = None;
            }
            drop(state);
            let result = stream.write_all_bufs(&mut out);
            state = self.lock();
            if let Some(Socket::Open(open)) = state.sockets.get_mut(&socket) {
                open.writing = false;
                if let Err(e) = result {
                    let now = state.now();
                    state.core.handle_io_error(now, socket, io_error(&e));
                    self.settle(&mut state);
                }
            }
        }
        (state, reads)
    }

    /// Wakes whoever waits on a change: the condition variable's waiters,
    /// the timer thread when the next deadline moved earlier.
    fn announce(&self, state: &mut State) {
        state.assign_readers();
        if state.watchers > 0 {
            self.changed.notify_all();
        }
        // Wake the timer thread when the next deadline moved earlier than
        // what it sleeps for.
        if let Some(next) = state.core.poll_timeout()
            && state.timer_wakes_at.is_none_or(|at| next < at)
            && let Some(timer) = &state.timer
        {
            timer.unpark();
        }
    }

    /// Sends commands back to back (they leave in one write) and waits for
    /// every reply, in order.
    pub(crate) fn request_all<'c, C: Command + 'c>(
        &self,
        lease: Option<LeaseId>,
        cmds: impl IntoIterator<Item = &'c C>,
    ) -> Vec<Result<Frame, CoreError>> {
        let mut state = self.lock();
        let ids: Vec<RequestId> = cmds
            .into_iter()
            .map(|cmd| state.send(lease, cmd, true))
            .collect();
        let (mut state, mut reads) = self.settle_sent(state);
        let mut results = Vec::with_capacity(ids.len());
        for id in ids {
            let (next, result) = self.wait_reply(state, id, &mut reads);
            state = next;
            results.push(result);
        }
        self.finish_reading(state, reads);
        results
    }

    /// Waits for the answer of a request sent with `wait` by this thread,
    /// acting on the core's deadlines meanwhile: reads the socket itself
    /// while it `reads` one, else parks. Parks rather than sleeping on the
    /// condition variable: a reply wakes its own waiter only, not every
    /// thread that waits (50 threads each waiting for one reply woke each
    /// other 50 times over).
    fn wait_reply<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        id: RequestId,
        reads: &mut Option<SocketId>,
    ) -> (MutexGuard<'a, State>, Result<Frame, CoreError>) {
        loop {
            if let Some(result) = state.done.remove(&id) {
                return (state, result);
            }
            if !state.waiting.contains_key(&id) {
                // Neither answered nor waited for: never, since every
                // request is answered exactly once; fail it rather than
                // sleep for ever.
                return (state, Err(CoreError::Shutdown));
            }
            let Some(wait) = self.fire_due(&mut state) else {
                continue;
            };
            if let Some(socket) = *reads {
                (state, *reads) = self.read_for_caller(state, socket, wait);
                continue;
            }
            self.unlock(state);
            // An unpark between the unlock and the park is not lost: it
            // leaves the token that makes `park` return at once.
            match wait {
                Some(wait) => thread::park_timeout(wait),
                None => thread::park(),
            }
            state = self.lock();
        }
    }

    /// One read of `socket` by the caller that reads it, at most until the
    /// core's next deadline (`wait`), reported to the core like the reader
    /// thread's. Returns whether the caller still reads it (not when the
    /// core closed it meanwhile).
    fn read_for_caller<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        socket: SocketId,
        wait: Option<Duration>,
    ) -> (MutexGuard<'a, State>, Option<SocketId>) {
        let timeout = wait
            .unwrap_or(MAX_READ_WAIT)
            .clamp(MIN_READ_WAIT, MAX_READ_WAIT);
        let Some(Socket::Open(open)) = state.sockets.get_mut(&socket) else {
            return (state, None);
        };
        let stream = open.stream.clone();
        let mut buf = std::mem::take(&mut open.buf);
        buf.resize(READ_BUFFER, 0);
        let rearm = open.armed != timeout;
        open.armed = timeout;
        self.unlock(state);
        let read = (|| {
            if rearm {
                stream.set_read_timeout(timeout)?;
            }
            stream.read_shared(&mut buf)
        })();
        let mut state = self.lock();
        if !matches!(state.sockets.get(&socket), Some(Socket::Open(_))) {
            // Closed meanwhile (which is what ended the read): not a word
            // more about it to the core.
            return (state, None);
        }
        let now = state.now();
        state.defer_unpark = true;
        match read {
            Ok(0) => state.core.handle_eof(now, socket),
            Ok(n) => state.core.handle_data(now, socket, &buf[..n]),
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => state.core.handle_io_error(now, socket, io_error(&e)),
        }
        if let Some(Socket::Open(open)) = state.sockets.get_mut(&socket) {
            open.buf = buf;
        }
        self.settle(&mut state);
        state.defer_unpark = false;
        // Its own replies' waiter is this thread, which is not parked.
        let me = thread::current().id();
        state.unpark.retain(|t| t.id() != me);
        let still = matches!(
            state.sockets.get(&socket),
            Some(Socket::Open(open)) if open.reading == Reading::Caller
        );
        (state, still.then_some(socket))
    }

    /// The end of a caller's reading: the socket goes back to nobody, or
    /// to its reader thread when the core still expects bytes on it (other
    /// callers' replies). Wakes the waiters of what the caller read.
    fn finish_reading(&self, mut state: MutexGuard<'_, State>, reads: Option<SocketId>) {
        if let Some(socket) = reads {
            state.stop_reading(socket);
        }
        self.unlock(state);
    }

    /// Lets go of the lock, then wakes the threads a caller's reads left
    /// to wake.
    fn unlock(&self, mut state: MutexGuard<'_, State>) {
        let woken = std::mem::take(&mut state.unpark);
        drop(state);
        woken.into_iter().for_each(|t| t.unpark());
    }

    /// A waiter's look at the core's deadline: fired when it has passed
    /// (`None`: look again at what the waiter waits for), else how long
    /// until it (`Some(None)`: no deadline).
    fn fire_due(&self, state: &mut State) -> Option<Option<Duration>> {
        let now = state.now();
        let deadline = state.core.poll_timeout();
        if deadline.is_some_and(|at| at <= now) {
            state.core.handle_timeout(now);
            self.settle(state);
            return None;
        }
        Some(deadline.map(|at| at.saturating_duration_since(now)))
    }

    /// Sends one command and waits for its reply.
    pub(crate) fn request<C: Command>(
        &self,
        lease: Option<LeaseId>,
        cmd: &C,
    ) -> Result<Frame, CoreError> {
        self.request_all(lease, [cmd])
            .pop()
            .unwrap_or(Err(CoreError::Shutdown))
    }

    /// Sends one command to one node of a cluster and waits for its reply.
    pub(crate) fn request_to<C: Command>(
        &self,
        node: &redpoll_core::cluster::NodeKey,
        cmd: &C,
    ) -> Result<Frame, CoreError> {
        let mut state = self.lock();
        let now = state.now();
        let id = state.core.send_to_node(now, node, cmd);
        state.waiting.insert(id, thread::current());
        let (state, mut reads) = self.settle_sent(state);
        let (state, result) = self.wait_reply(state, id, &mut reads);
        self.finish_reading(state, reads);
        result
    }

    /// Waits until `ready` has something, or until `until` passes (then
    /// `None`). Acts on the core's deadlines meanwhile.
    pub(crate) fn wait<'a, R>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        until: Option<StdInstant>,
        mut ready: impl FnMut(&mut State) -> Option<R>,
    ) -> (MutexGuard<'a, State>, Option<R>) {
        loop {
            if let Some(r) = ready(&mut state) {
                return (state, Some(r));
            }
            let Some(mut wait) = self.fire_due(&mut state) else {
                continue;
            };
            if let Some(until) = until {
                let left = until.saturating_duration_since(StdInstant::now());
                if left.is_zero() {
                    return (state, None);
                }
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            state.watchers += 1;
            state = match wait {
                Some(wait) => {
                    self.changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
            state.watchers -= 1;
        }
    }

    /// Shuts the core down, closes every socket and waits for the threads
    /// of the driver to end (a connect under way: up to its timeout).
    pub(crate) fn shutdown(&self) {
        let threads = {
            let mut state = self.lock();
            state.shutdown();
            self.changed.notify_all();
            if let Some(timer) = &state.timer {
                timer.unpark();
            }
            std::mem::take(&mut state.threads)
        };
        join(threads);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        state.shutdown();
        if let Some(timer) = &state.timer {
            timer.unpark();
        }
        join(std::mem::take(&mut state.threads));
    }
}

/// Waits for the threads to end, but the current one: shutdown may run on
/// a driver thread (which held the last handle for a moment).
fn join(threads: Vec<JoinHandle<()>>) {
    let me = thread::current().id();
    for handle in threads {
        if handle.thread().id() != me {
            let _ = handle.join();
        }
    }
}

impl State {
    /// The core's clock: nanoseconds since the client was made.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Sends a command, on the lease if one is given. With `wait`, the
    /// reply is kept for a waiter; without, it is dropped when it comes.
    ///
    /// Never [`redpoll_core::Client::cancel`] instead: a cancelled
    /// subscription command would leave a slot behind that its push
    /// confirmation never fills.
    pub(crate) fn send<C: Command + ?Sized>(
        &mut self,
        lease: Option<LeaseId>,
        cmd: &C,
        wait: bool,
    ) -> RequestId {
        let now = self.now();
        let id = match lease {
            Some(lease) => self.core.send_leased(now, lease, cmd),
            None => self.core.send(now, cmd),
        };
        if wait {
            self.waiting.insert(id, thread::current());
        }
        id
    }

    /// Every request fails, every socket gets its `Close` (TLS
    /// connections their close_notify first), which ends its reader.
    fn shutdown(&mut self) {
        let now = self.now();
        self.shut_down = true;
        self.core.shutdown(now);
        self.drain();
    }

    /// Registers a subscription queue.
    pub(crate) fn subscribe(&mut self, kind: SubscriptionKind, names: Vec<Bytes>) -> u64 {
        let id = self.next_subscriber;
        self.next_subscriber += 1;
        self.subscribers.push(Subscriber {
            id,
            kind,
            names,
            queue: VecDeque::new(),
        });
        id
    }

    /// Carries out every effect, writes included, then hands out every
    /// event.
    fn drain(&mut self) {
        self.drain_effects_and_events();
        self.flush_here();
    }

    /// Carries out every effect (writes only queued: see
    /// [`Shared::settle`]), then hands out every event.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn drain_effects_and_events(&mut self) {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Connect { socket, address } => self.connect(socket, address),
                Effect::Send { socket, data } => self.write(socket, data),
                Effect::Close { socket, reason } => self.close(socket, &reason),
                Effect::Probe { socket } => self.probe(socket),
            }
        }
        while let Some(event) = self.core.poll_event() {
            match event {
                Event::Response { id, result } => {
                    if let Some(waiter) = self.waiting.remove(&id) {
                        self.done.insert(id, result);
                        if self.defer_unpark {
                            self.unpark.push(waiter);
                        } else {
                            waiter.unpark();
                        }
                    }
                }
                Event::Push { frame, .. } => self.route(PushMessage::parse(frame)),
                Event::Connected { socket, protocol } => {
                    trace!(%socket, ?protocol, "connected");
                }
                Event::Disconnected { socket, reason } => {
                    trace!(%socket, %reason, "disconnected");
                }
                Event::Status(status) => {
                    trace!(?status, "status");
                    self.status_seq += 1;
                    self.last_status = Some(status);
                }
            }
        }
    }

    /// Queues a message for every subscription of its channel or pattern.
    /// Confirmations and other pushes have no subscriber.
    fn route(&mut self, message: PushMessage) {
        let (kind, name) = match &message {
            PushMessage::Message { channel, .. } => (SubscriptionKind::Channel, channel),
            PushMessage::PMessage { pattern, .. } => (SubscriptionKind::Pattern, pattern),
            PushMessage::SMessage { channel, .. } => (SubscriptionKind::Shard, channel),
            _ => return,
        };
        for s in &mut self.subscribers {
            if s.kind == kind && s.names.contains(name) {
                s.queue.push_back(message.clone());
            }
        }
    }

    fn connect(&mut self, socket: SocketId, address: Address) {
        trace!(%socket, %address, "connecting");
        self.sockets.insert(socket, Socket::Connecting);
        let me = self.me.clone();
        // The core enforces the handshake deadline; this only bounds the
        // thread.
        let timeout = self.core.handshake_timeout();
        let write_timeout = self.write_timeout;
        let spawned = thread::Builder::new()
            .name("redpoll-connect".into())
            .spawn(move || connect_thread(&me, socket, &address, timeout, write_timeout));
        match spawned {
            Ok(handle) => self.track(handle),
            Err(e) => {
                let now = self.now();
                self.core.handle_connect_failed(now, socket, io_error(&e));
            }
        }
    }

    fn write(&mut self, socket: SocketId, data: Bytes) {
        if let Some(Socket::Open(open)) = self.sockets.get_mut(&socket) {
            open.out.push(data);
            self.sent_to = match self.sent_to {
                SentTo::None => SentTo::One(socket),
                SentTo::One(s) if s == socket => SentTo::One(s),
                _ => SentTo::Many,
            };
        }
    }

    /// Whether callers may read their own replies. Not a cluster's, whose
    /// requests move between sockets (`MOVED`, `ASK`, a refresh): a caller
    /// would sit in a read of the socket its request left, while its reply
    /// is delivered on another.
    fn callers_read(&self) -> bool {
        !self.core.is_cluster()
    }

    /// After a caller's requests were handed to the core: the socket they
    /// went to becomes the caller's to read when nobody reads it (so no
    /// other requests are out on it) and [`State::callers_read`].
    fn claim_reading(&mut self) -> Option<SocketId> {
        let SentTo::One(socket) = self.sent_to else {
            return None;
        };
        if !self.callers_read() {
            return None;
        }
        let Some(Socket::Open(open)) = self.sockets.get_mut(&socket) else {
            return None;
        };
        if open.reading != Reading::Nobody {
            return None;
        }
        open.reading = Reading::Caller;
        Some(socket)
    }

    /// A caller stops reading `socket`: it goes back to nobody, or to its
    /// reader thread when the core still expects bytes on it.
    fn stop_reading(&mut self, socket: SocketId) {
        if let Some(Socket::Open(open)) = self.sockets.get_mut(&socket)
            && open.reading == Reading::Caller
        {
            open.reading = Reading::Nobody;
            open.unread_since = StdInstant::now();
            self.assign_readers();
        }
    }

    /// Every socket the core expects bytes on that nobody reads becomes
    /// its reader thread's, which is woken (once the lock is let go, when
    /// wake-ups are deferred).
    fn assign_readers(&mut self) {
        for (&socket, s) in &mut self.sockets {
            if let Socket::Open(open) = s
                && open.reading == Reading::Nobody
                && self.core.expects_data(socket)
            {
                open.reading = Reading::Thread;
                if self.defer_unpark {
                    self.unpark.push(open.reader.clone());
                } else {
                    open.reader.unpark();
                }
            }
        }
    }

    /// The reader thread's next step, after it reported what it read
    /// (`heard`: bytes) and settled: read (setting the read timeout
    /// first when it changed), or park while a caller reads or nobody
    /// needs to. `watching`: it reads a socket nobody expects bytes on,
    /// for a close, and keeps at it through read timeouts.
    fn reader_next(
        &mut self,
        socket: SocketId,
        heard: bool,
        watching: &mut bool,
        timeout: Duration,
    ) -> Next {
        let expects = self.core.expects_data(socket);
        // Where callers never read, a quiet socket has nobody to be handed
        // over to: it keeps its reader in `read`.
        let keep = !self.callers_read();
        let Some(Socket::Open(open)) = self.sockets.get_mut(&socket) else {
            return Next::Exit;
        };
        let now = StdInstant::now();
        match open.reading {
            Reading::Thread if expects || keep || (*watching && !heard) => {}
            Reading::Thread => {
                open.reading = Reading::Nobody;
                open.unread_since = now;
                *watching = false;
                return Next::Park(IDLE_HANDOVER);
            }
            Reading::Nobody => {
                let unread = now.saturating_duration_since(open.unread_since);
                if !expects && unread < IDLE_HANDOVER {
                    return Next::Park(IDLE_HANDOVER.saturating_sub(unread));
                }
                open.reading = Reading::Thread;
            }
            Reading::Caller => return Next::Park(IDLE_HANDOVER),
        }
        *watching = !expects;
        let rearm = open.armed != timeout;
        open.armed = timeout;
        Next::Read { rearm }
    }

    /// Writes, under the lock, what is queued for sockets nobody is writing.
    fn flush_here(&mut self) {
        loop {
            let Some((&socket, open)) = self.sockets.iter_mut().find_map(|(id, s)| match s {
                Socket::Open(open) if !open.writing && !open.out.is_empty() => Some((id, open)),
                _ => None,
            }) else {
                return;
            };
            let mut out = std::mem::take(&mut open.out);
            let result = open.stream.write_all_bufs(&mut out);
            if let Err(e) = result {
                let now = self.now();
                self.core.handle_io_error(now, socket, io_error(&e));
                self.drain_effects_and_events();
            }
        }
    }

    /// A socket with bytes queued that nobody is writing: taken for
    /// writing outside the lock.
    fn take_unwritten(&mut self) -> Option<(SocketId, Arc<Stream>, Vec<Bytes>)> {
        self.sockets.iter_mut().find_map(|(&id, s)| match s {
            Socket::Open(open) if !open.writing && !open.out.is_empty() => {
                open.writing = true;
                Some((id, open.stream.clone(), std::mem::take(&mut open.out)))
            }
            _ => None,
        })
    }

    /// Peeks at the socket without blocking (its reader thread may be in
    /// `read` on it). Bytes waiting are left to the reader, which feeds
    /// them to the core; the core then asks again.
    fn probe(&mut self, socket: SocketId) {
        let Some(Socket::Open(open)) = self.sockets.get(&socket) else {
            return;
        };
        let now = self.now();
        match open.stream.peek_nonblocking() {
            Ok(0) => self.core.handle_eof(now, socket),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.core.handle_probe_done(now, socket);
            }
            Err(e) => self.core.handle_io_error(now, socket, io_error(&e)),
        }
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn close(&mut self, socket: SocketId, reason: &CloseReason) {
        trace!(%socket, %reason, "closing");
        // A socket still connecting is dropped by its connect thread.
        if let Some(Socket::Open(mut open)) = self.sockets.remove(&socket) {
            // What it was sent last (a TLS close_notify) goes first, unless
            // a caller is writing it right now.
            if !open.writing && !open.out.is_empty() {
                let _ = open.stream.write_all_bufs(&mut open.out);
            }
            // Wakes whoever reads it (and a caller writing it), who then
            // sees the socket is gone; the reader thread, parked or not.
            let _ = open.stream.shutdown();
            open.reader.unpark();
        }
    }

    fn track(&mut self, handle: JoinHandle<()>) {
        self.threads.retain(|t| !t.is_finished());
        self.threads.push(handle);
    }

    /// Acts on a passed deadline; the read timeout until the next one.
    fn read_timeout(&mut self) -> Duration {
        let now = self.now();
        if self.core.poll_timeout().is_some_and(|at| at <= now) {
            self.core.handle_timeout(now);
        }
        self.core
            .poll_timeout()
            .map_or(MAX_READ_WAIT, |at| at.saturating_duration_since(now))
            .clamp(MIN_READ_WAIT, MAX_READ_WAIT)
    }
}

/// Fires the core's deadlines when nothing else would: sleeps until the
/// next one (at most [`MAX_READ_WAIT`]), holding no reference to the client
/// meanwhile, so that dropping the last handle is never delayed by it.
fn timer_thread(me: &Weak<Shared>) {
    loop {
        let wait = {
            let Some(shared) = me.upgrade() else {
                return;
            };
            let mut state = shared.lock();
            if state.shut_down {
                return;
            }
            let now = state.now();
            if state.core.poll_timeout().is_some_and(|at| at <= now) {
                state.core.handle_timeout(now);
                shared.settle(&mut state);
            }
            let wait = state
                .core
                .poll_timeout()
                .map_or(MAX_READ_WAIT, |at| at.saturating_duration_since(now))
                .min(MAX_READ_WAIT);
            state.timer_wakes_at = Some(now.saturating_add(wait));
            wait
        };
        thread::park_timeout(wait);
    }
}

fn connect_thread(
    me: &Weak<Shared>,
    socket: SocketId,
    address: &Address,
    timeout: Duration,
    write_timeout: Duration,
) {
    let opened = open(address, timeout).and_then(|stream| {
        stream.set_write_timeout(write_timeout)?;
        let reader = stream.try_clone()?;
        Ok((stream, reader))
    });
    let Some(shared) = me.upgrade() else {
        return;
    };
    let mut state = shared.lock();
    if !matches!(state.sockets.get(&socket), Some(Socket::Connecting)) {
        // The core gave up on it (handshake deadline, shutdown): the
        // stream closes here, unreported.
        return;
    }
    let now = state.now();
    match opened {
        Ok((stream, reader)) => {
            // It waits for the lock until the socket is in the table.
            let me = me.clone();
            let spawned = thread::Builder::new()
                .name("redpoll-read".into())
                .spawn(move || reader_thread(&me, socket, reader));
            match spawned {
                Ok(handle) => {
                    state.sockets.insert(
                        socket,
                        Socket::Open(Open {
                            stream: Arc::new(stream),
                            out: Vec::new(),
                            writing: false,
                            // The handshake's replies are expected.
                            reading: Reading::Thread,
                            unread_since: StdInstant::now(),
                            armed: Duration::ZERO,
                            reader: handle.thread().clone(),
                            buf: Vec::new(),
                        }),
                    );
                    state.track(handle);
                    state.core.handle_connected(now, socket);
                }
                // The stream closes here; the core closes the socket.
                Err(e) => state.core.handle_io_error(now, socket, io_error(&e)),
            }
        }
        Err(e) => state.core.handle_connect_failed(now, socket, io_error(&e)),
    }
    shared.settle(&mut state);
}

/// The reader thread's next step.
enum Next {
    /// Read, after setting the read timeout when `rearm`.
    Read { rearm: bool },
    /// Park, for at most this long.
    Park(Duration),
    /// The socket is gone.
    Exit,
}

fn reader_thread(me: &Weak<Shared>, socket: SocketId, mut stream: Stream) {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut read: Option<io::Result<usize>> = None;
    let mut watching = false;
    let mut woken = Vec::new();
    loop {
        let Some(shared) = me.upgrade() else {
            return;
        };
        let mut state = shared.lock();
        if !state.sockets.contains_key(&socket) {
            return;
        }
        state.defer_unpark = true;
        let now = state.now();
        let mut heard = false;
        let ended = match read.take() {
            None => false,
            Some(Ok(0)) => {
                state.core.handle_eof(now, socket);
                true
            }
            Some(Ok(n)) => {
                state.core.handle_data(now, socket, &buf[..n]);
                heard = true;
                false
            }
            Some(Err(e)) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => false,
            Some(Err(e)) => {
                state.core.handle_io_error(now, socket, io_error(&e));
                true
            }
        };
        let timeout = state.read_timeout();
        shared.settle(&mut state);
        state.defer_unpark = false;
        let next = if ended {
            Next::Exit
        } else {
            state.reader_next(socket, heard, &mut watching, timeout)
        };
        std::mem::swap(&mut state.unpark, &mut woken);
        drop(state);
        woken.drain(..).for_each(|t| t.unpark());
        drop(shared);
        match next {
            Next::Exit => return,
            Next::Park(wait) => thread::park_timeout(wait),
            Next::Read { rearm } => {
                if rearm && let Err(e) = stream.set_read_timeout(timeout) {
                    read = Some(Err(e));
                    continue;
                }
                read = Some(stream.read(&mut buf));
            }
        }
    }
}

/// Resolves and connects, within `timeout` for all the addresses a name
/// resolves to.
fn open(address: &Address, timeout: Duration) -> io::Result<Stream> {
    match address {
        Address::Tcp { host, port } => {
            let until = StdInstant::now() + timeout;
            let addrs = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| io::Error::new(ErrorKind::NotFound, e))?;
            let mut last = io::Error::new(ErrorKind::NotFound, "no address");
            for addr in addrs {
                let left = until.saturating_duration_since(StdInstant::now());
                if left.is_zero() {
                    return Err(ErrorKind::TimedOut.into());
                }
                match TcpStream::connect_timeout(&addr, left) {
                    Ok(stream) => {
                        stream.set_nodelay(true)?;
                        return Ok(Stream::Tcp(stream));
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        #[cfg(unix)]
        Address::Unix(path) => std::os::unix::net::UnixStream::connect(path).map(Stream::Unix),
        #[cfg(not(unix))]
        Address::Unix(_) => Err(ErrorKind::Unsupported.into()),
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn io_error(e: &io::Error) -> IoError {
    match e.kind() {
        ErrorKind::ConnectionRefused => IoError::Refused,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            IoError::Reset
        }
        ErrorKind::TimedOut | ErrorKind::WouldBlock => IoError::TimedOut,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable | ErrorKind::NetworkDown => {
            IoError::Unreachable
        }
        ErrorKind::NotFound => IoError::NotFound,
        _ => IoError::Other,
    }
}

/// A TCP or Unix stream.
enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

impl Stream {
    fn try_clone(&self) -> io::Result<Self> {
        match self {
            Self::Tcp(s) => s.try_clone().map(Self::Tcp),
            #[cfg(unix)]
            Self::Unix(s) => s.try_clone().map(Self::Unix),
        }
    }

    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(Some(timeout)),
            #[cfg(unix)]
            Self::Unix(s) => s.set_read_timeout(Some(timeout)),
        }
    }

    fn set_write_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_write_timeout(Some(timeout)),
            #[cfg(unix)]
            Self::Unix(s) => s.set_write_timeout(Some(timeout)),
        }
    }

    /// How many bytes wait on the socket (0: EOF), without taking them and
    /// without blocking: `WouldBlock` when none.
    #[cfg(unix)]
    fn peek_nonblocking(&self) -> io::Result<usize> {
        use rustix::net::{RecvFlags, recv};
        let mut byte = [0u8; 1];
        let flags = RecvFlags::PEEK | RecvFlags::DONTWAIT;
        let peeked = match self {
            Self::Tcp(s) => recv(s, &mut byte, flags),
            Self::Unix(s) => recv(s, &mut byte, flags),
        };
        peeked.map(|(n, _)| n).map_err(io::Error::from)
    }

    /// Without a non-blocking peek, a probe finds nothing.
    #[cfg(not(unix))]
    fn peek_nonblocking(&self) -> io::Result<usize> {
        Err(ErrorKind::WouldBlock.into())
    }

    /// Writes every buffer of `out`, in order, emptying it; blocks up to
    /// the write timeout per write.
    fn write_all_bufs(&self, out: &mut Vec<Bytes>) -> io::Result<()> {
        use bytes::Buf;
        const MAX_SLICES: usize = 64;
        let mut first = 0;
        loop {
            while out.get(first).is_some_and(Bytes::is_empty) {
                first += 1;
            }
            if first == out.len() {
                break;
            }
            let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
            let count = (out.len() - first).min(MAX_SLICES);
            for (slice, bytes) in slices.iter_mut().zip(&out[first..]) {
                *slice = io::IoSlice::new(bytes);
            }
            let written = match self {
                Self::Tcp(s) => (&*s).write_vectored(&slices[..count]),
                #[cfg(unix)]
                Self::Unix(s) => (&*s).write_vectored(&slices[..count]),
            };
            match written {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    while n > 0 {
                        let front = &mut out[first];
                        let take = n.min(front.len());
                        front.advance(take);
                        n -= take;
                        if front.is_empty() {
                            first += 1;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.clear();
        Ok(())
    }

    /// A read through a shared handle (a caller's, while it reads).
    fn read_shared(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => (&*s).read(buf),
            #[cfg(unix)]
            Self::Unix(s) => (&*s).read(buf),
        }
    }

    fn shutdown(&self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(Shutdown::Both),
            #[cfg(unix)]
            Self::Unix(s) => s.shutdown(Shutdown::Both),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Self::Unix(s) => s.read(buf),
        }
    }
}
