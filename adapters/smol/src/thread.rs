//! The driver of [`Client::new`] and [`Client::cluster`]: a thread of its
//! own with a poller of its own.
//!
//! Running the async [`Driver`] under `async_io::block_on` on that thread
//! made every wake-up cross threads twice: async-io has one reactor per
//! process, and whichever thread holds it (an executor thread, the
//! "async-io" helper) takes the driver's socket events and then wakes the
//! driver thread (a futex), while each request woke the driver through
//! its waker even when it was already awake. Here the thread is the
//! sans-IO loop itself (str0m's shape):
//!
//! 1. under the client's lock, carry out the core's effects, fire the
//!    timer, hand events to their waiters, until nothing moves;
//! 2. without the lock, call the waiters' wakers (a task woken under the
//!    lock would only block on it), finish connects and write what the
//!    sockets take;
//! 3. sleep in the thread's own [`Poller`] (epoll on Linux and Android,
//!    the `polling` crate on other unix targets) until a socket is
//!    readable or writable, the next deadline, or a caller's notify;
//! 4. read the ready sockets (once, unless the read filled the buffer),
//!    handing the bytes to the core under the lock; back to 1.
//!
//! A lone caller does not need the thread to send: when its requests are
//! the only ones outstanding, it carries out the core's effects itself
//! under the lock ([`Direct`]): it writes to a socket the thread has
//! nothing queued for, and answers a probe by peeking. Anything else
//! (connects, closes, a write behind bytes the thread holds, a probe that
//! sees something) is left, in order, for the thread, which it then wakes;
//! so does a deadline earlier than the one the thread sleeps until. Many
//! callers at once still go through the thread, whose one `writev` per
//! round batches them.
//!
//! Invariants: a socket is read only when the poller reported it readable
//! (level-triggered, so data left unread is reported again) or the core
//! asked for a probe; the lock is never held across a socket call except a
//! probe and a lone caller's own write; a socket's bytes are written in
//! the core's order (a caller writes only while the thread holds none for
//! it, and leaves the rest of a short write to the thread); a caller
//! notifies the poller only when the thread sleeps or is about to (the
//! `pending` / `sleeping` pair below), so a burst of requests costs at most
//! one notify.
//!
//! Connects still use async-io (`Async::connect`, the resolver thread):
//! they are rare, and their wake-ups reach this thread through the same
//! waker. Once connected, the socket leaves async-io's reactor for this
//! thread's poller.
//!
//! [`Client::new`]: crate::Client::new
//! [`Client::cluster`]: crate::Client::cluster
//! [`Driver`]: crate::Driver

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant as StdInstant;

use bytes::{Buf, Bytes};
use redpoll_core::{Effect, Instant, IoError, Machine as Core, SocketId};

use crate::driver::{Connecting, Stream, connect, io_error, probe};
use crate::shared::{Shared, State};
use sys::{Poller, Ready};

/// Starts the driver thread of a client.
pub(crate) fn spawn(shared: Arc<Shared>) -> io::Result<()> {
    let notifier = Arc::new(Notifier {
        poller: Poller::new()?,
        pending: AtomicBool::new(false),
        sleeping: AtomicBool::new(false),
    });
    let waker = Waker::from(notifier.clone());
    {
        let mut state = shared.lock();
        state.driver = Some(waker.clone());
        state.direct = Some(Direct::default());
    }
    let driver = ThreadDriver {
        shared,
        notifier,
        waker,
        sockets: HashMap::new(),
        buf: vec![0; 64 * 1024].into_boxed_slice(),
        woken: Vec::new(),
    };
    std::thread::Builder::new()
        .name("redpoll-driver".into())
        .spawn(move || driver.run())?;
    Ok(())
}

/// How callers wake the thread: the client's driver waker.
///
/// `pending`: something changed since the thread last looked (set by every
/// wake, cleared only by the thread just before it sleeps). `sleeping`: the
/// thread is in, or about to enter, [`Poller::wait`]. A waker sets
/// `pending` then reads `sleeping`; the thread sets `sleeping` then clears
/// `pending`: with both sequentially consistent, either the thread sees the
/// wake and does not sleep, or the waker sees it asleep and notifies.
struct Notifier {
    poller: Poller,
    pending: AtomicBool,
    sleeping: AtomicBool,
}

impl Wake for Notifier {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Already pending: the thread has not slept since, and will look.
        if self.pending.swap(true, Ordering::SeqCst) {
            return;
        }
        if self.sleeping.load(Ordering::SeqCst) {
            // Only fails if the eventfd is gone, i.e. the thread ended.
            let _ = self.poller.notify();
        }
    }
}

/// What callers may do without the thread (see the [module docs](self)),
/// kept in the client's state and used under its lock.
#[derive(Debug, Default)]
pub(crate) struct Direct {
    /// The open sockets.
    socks: HashMap<SocketId, DirectSock>,
    /// Effects a caller left for the thread, in the core's order: the
    /// thread carries them out before any newer one.
    deferred: VecDeque<Effect>,
    /// The deadline the thread sleeps until (the core's clock).
    deadline: Option<Instant>,
}

#[derive(Debug, Clone)]
struct DirectSock {
    raw: Arc<Raw>,
    /// The thread holds no bytes for it (none queued, none being written):
    /// a caller may write.
    clear: Arc<AtomicBool>,
}

impl Direct {
    /// Carries out the core's effects for a caller whose requests are the
    /// only ones outstanding: writes and probes itself where it can, the
    /// rest left for the thread. Whether the thread has nothing to do for
    /// them (else the caller wakes it).
    pub(crate) fn carry_out(&mut self, core: &mut Core, now: Instant) -> bool {
        while let Some(effect) = core.poll_effect() {
            if !self.deferred.is_empty() {
                self.deferred.push_back(effect);
                continue;
            }
            match effect {
                Effect::Send { socket, data } => match self.socks.get(&socket) {
                    Some(sock) if sock.clear.load(Ordering::SeqCst) => {
                        match write_now(&sock.raw, &data) {
                            Ok(n) if n == data.len() => {}
                            // The rest after what the socket took, by the
                            // thread when it becomes writable.
                            Ok(n) => {
                                sock.clear.store(false, Ordering::SeqCst);
                                self.deferred.push_back(Effect::Send {
                                    socket,
                                    data: data.slice(n..),
                                });
                            }
                            Err(e) => core.handle_io_error(now, socket, io_error(&e)),
                        }
                    }
                    _ => self.deferred.push_back(Effect::Send { socket, data }),
                },
                Effect::Probe { socket } => match self.socks.get(&socket) {
                    Some(sock) if sock.raw.nothing_waiting() => {
                        core.handle_probe_done(now, socket);
                    }
                    // Something is there: the thread reads it.
                    _ => self.deferred.push_back(Effect::Probe { socket }),
                },
                effect => self.deferred.push_back(effect),
            }
        }
        let earlier = core
            .poll_timeout()
            .is_some_and(|at| self.deadline.is_none_or(|d| at < d));
        self.deferred.is_empty() && !earlier
    }
}

/// One write that does not wait (the socket is non-blocking): how much the
/// socket took, 0 if none.
fn write_now(raw: &Raw, data: &[u8]) -> io::Result<usize> {
    loop {
        match raw.write_vectored(&[io::IoSlice::new(data)]) {
            Ok(0) if !data.is_empty() => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        }
    }
}

/// A connected socket, out of async-io's reactor.
#[derive(Debug)]
enum Raw {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Raw {
    fn from_stream(stream: Stream) -> io::Result<Self> {
        Ok(match stream {
            Stream::Tcp(s) => Self::Tcp(s.into_inner()?),
            Stream::Unix(s) => Self::Unix(s.into_inner()?),
        })
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => (&*s).read(buf),
            Self::Unix(s) => (&*s).read(buf),
        }
    }

    fn write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => (&*s).write_vectored(bufs),
            Self::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    /// A probe that takes nothing: whether nothing (no data, no EOF, no
    /// error) waits to be read. Where a Unix socket cannot be peeked at
    /// (std has no stable `peek` for it; rustix serves Linux), it says
    /// "something" and the thread reads it.
    fn nothing_waiting(&self) -> bool {
        match self {
            Self::Tcp(s) => loop {
                match s.peek(&mut [0]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
                    Ok(_) => return false,
                }
            },
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Self::Unix(s) => {
                use rustix::io::Errno;
                use rustix::net::{RecvFlags, recv};
                loop {
                    match recv(s, &mut [0u8], RecvFlags::PEEK | RecvFlags::DONTWAIT) {
                        Err(Errno::INTR) => {}
                        Err(e) => return e == Errno::AGAIN,
                        Ok(_) => return false,
                    }
                }
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Self::Unix(_) => false,
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Tcp(s) => s.as_fd(),
            Self::Unix(s) => s.as_fd(),
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Self::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Self::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

struct Open {
    raw: Arc<Raw>,
    /// Shared with callers ([`DirectSock::clear`]).
    clear: Arc<AtomicBool>,
    /// Bytes the socket has not taken yet, in order.
    out: VecDeque<Bytes>,
    /// In the poller (removed after EOF or an error: the core will close it,
    /// and a level-triggered EOF would be reported on every wait).
    registered: bool,
    /// The poller also watches for writable: a write would have blocked.
    want_write: bool,
}

enum Socket {
    Connecting(Connecting),
    Open(Open),
}

struct ThreadDriver {
    shared: Arc<Shared>,
    notifier: Arc<Notifier>,
    waker: Waker,
    sockets: HashMap<SocketId, Socket>,
    buf: Box<[u8]>,
    /// Wakers taken from the state, called after the lock is released.
    woken: Vec<Waker>,
}

/// The poller key of a socket.
fn key(id: SocketId) -> usize {
    // Socket ids are a counter: truncation on 32-bit targets only matters
    // after 4 billion sockets, and then keys merely collide with closed ones.
    #[allow(clippy::cast_possible_truncation)]
    let key = id.get() as usize;
    key
}

/// What a socket call outside the lock found, for the core.
enum Input {
    Data(SocketId, usize),
    Eof(SocketId),
    Error(SocketId, IoError),
    Connected(SocketId, DirectSock),
    ConnectFailed(SocketId, IoError),
}

impl ThreadDriver {
    fn run(mut self) {
        let mut events = Vec::new();
        let mut buffer = sys::buffer();
        let mut inputs = Vec::new();
        let shared = self.shared.clone();
        loop {
            let deadline = {
                let mut state = shared.lock();
                self.settle(&mut state);
                let deadline = state.core.poll_timeout();
                if let Some(direct) = state.direct.as_mut() {
                    direct.deadline = deadline;
                }
                if state.shut_down && self.sockets.is_empty() {
                    state.driver = None;
                    state.take_woken(&mut self.woken);
                    drop(state);
                    self.woken.drain(..).for_each(Waker::wake);
                    return;
                }
                state.take_woken(&mut self.woken);
                deadline.map(|at| state.instant(at))
            };
            self.connect_and_write(&mut inputs);
            self.woken.drain(..).for_each(Waker::wake);
            if !inputs.is_empty() {
                self.hand_over(&mut inputs);
                continue;
            }
            events.clear();
            self.notifier.sleeping.store(true, Ordering::SeqCst);
            if !self.notifier.pending.swap(false, Ordering::SeqCst) {
                let timeout = deadline.map(|at| at.saturating_duration_since(StdInstant::now()));
                if let Err(e) = self.notifier.poller.wait(&mut buffer, &mut events, timeout) {
                    // The wait only fails on a bad descriptor or buffer:
                    // not expected. Keep the client alive, polling every
                    // 10 ms (deadlines still fire), rather than end the
                    // thread and leave every request waiting for good.
                    #[cfg(feature = "tracing")]
                    tracing::error!(error = %e, "redpoll driver poller failed");
                    let _ = e;
                    let nap = std::time::Duration::from_millis(10);
                    std::thread::sleep(timeout.map_or(nap, |t| t.min(nap)));
                    // Without readiness reports, try every socket.
                    events.extend(self.sockets.iter().filter_map(|(&id, s)| match s {
                        Socket::Open(open) if open.registered => Some(Ready {
                            key: key(id),
                            readable: true,
                        }),
                        _ => None,
                    }));
                }
            }
            self.notifier.sleeping.store(false, Ordering::SeqCst);
            for &event in &events {
                self.read_ready(event, &mut inputs);
            }
        }
    }

    /// Runs the core until nothing moves: effects, timer, events.
    fn settle(&mut self, state: &mut State) {
        loop {
            let mut moved = self.carry_out_effects(state);
            moved |= state.deliver_events_deferred();
            if let Some(at) = state.core.poll_timeout()
                && at <= state.now()
            {
                state.core.handle_timeout(state.now());
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    /// The effects callers left first, then the core's.
    fn carry_out_effects(&mut self, state: &mut State) -> bool {
        let mut moved = false;
        while let Some(effect) = state
            .direct
            .as_mut()
            .and_then(|d| d.deferred.pop_front())
            .or_else(|| state.core.poll_effect())
        {
            moved = true;
            self.carry_out(state, effect);
        }
        moved
    }

    fn carry_out(&mut self, state: &mut State, effect: Effect) {
        match effect {
            Effect::Connect { socket, address } => {
                state.trace_connect(socket, &address);
                self.sockets
                    .insert(socket, Socket::Connecting(connect(address)));
            }
            Effect::Send { socket, data } => {
                if let Some(Socket::Open(open)) = self.sockets.get_mut(&socket) {
                    open.clear.store(false, Ordering::SeqCst);
                    open.out.push_back(data);
                }
            }
            Effect::Close { socket, reason } => {
                state.trace_close(socket, &reason);
                if let Some(direct) = state.direct.as_mut() {
                    direct.socks.remove(&socket);
                }
                if let Some(Socket::Open(open)) = self.sockets.remove(&socket) {
                    self.deregister(&open);
                    open.raw.shutdown();
                }
            }
            // Sockets are read when readable, but a request may come
            // before the thread has read an EOF already there: look now.
            Effect::Probe { socket } => {
                if let Some(Socket::Open(open)) = self.sockets.get_mut(&socket)
                    && open.registered
                {
                    let raw = &open.raw;
                    if probe(|buf| raw.read(buf), &mut self.buf, state, socket) {
                        open.registered = false;
                        let _ = self.notifier.poller.delete(open.raw.fd());
                    }
                }
            }
        }
    }

    fn deregister(&self, open: &Open) {
        if open.registered {
            let _ = self.notifier.poller.delete(open.raw.fd());
        }
    }

    /// Polls connects and writes what each socket takes, without the lock.
    fn connect_and_write(&mut self, inputs: &mut Vec<Input>) {
        let mut cx = Context::from_waker(&self.waker);
        for (&id, socket) in &mut self.sockets {
            match socket {
                Socket::Connecting(fut) => match fut.as_mut().poll(&mut cx) {
                    Poll::Ready(Ok(stream)) => match Raw::from_stream(stream) {
                        Ok(raw) => match self.notifier.poller.add(raw.fd(), key(id)) {
                            Ok(()) => {
                                let direct = DirectSock {
                                    raw: Arc::new(raw),
                                    clear: Arc::new(AtomicBool::new(true)),
                                };
                                *socket = Socket::Open(Open {
                                    raw: direct.raw.clone(),
                                    clear: direct.clear.clone(),
                                    out: VecDeque::new(),
                                    registered: true,
                                    want_write: false,
                                });
                                inputs.push(Input::Connected(id, direct));
                            }
                            Err(e) => inputs.push(Input::ConnectFailed(id, io_error(&e))),
                        },
                        Err(e) => inputs.push(Input::ConnectFailed(id, io_error(&e))),
                    },
                    Poll::Ready(Err(e)) => inputs.push(Input::ConnectFailed(id, io_error(&e))),
                    Poll::Pending => {}
                },
                Socket::Open(open) => {
                    if !open.registered || (open.out.is_empty() && !open.want_write) {
                        continue;
                    }
                    if let Err(e) = flush(open) {
                        open.registered = false;
                        let _ = self.notifier.poller.delete(open.raw.fd());
                        inputs.push(Input::Error(id, io_error(&e)));
                        continue;
                    }
                    let want_write = !open.out.is_empty();
                    if !want_write {
                        // Everything written: callers may write again.
                        open.clear.store(true, Ordering::SeqCst);
                    }
                    if want_write != open.want_write {
                        open.want_write = want_write;
                        let _ =
                            self.notifier
                                .poller
                                .watch_write(open.raw.fd(), key(id), want_write);
                    }
                }
            }
        }
    }

    /// Reads a socket the poller reported: once, or on while reads fill the
    /// buffer; each read is handed to the core at once (the buffer is
    /// reused).
    fn read_ready(&mut self, event: Ready, inputs: &mut Vec<Input>) {
        if !event.readable {
            // Writable only: the next round writes.
            return;
        }
        let Some((&id, Socket::Open(open))) = self
            .sockets
            .iter_mut()
            .find(|(id, _)| key(**id) == event.key)
        else {
            return;
        };
        if !open.registered {
            return;
        }
        loop {
            match open.raw.read(&mut self.buf) {
                Ok(0) => inputs.push(Input::Eof(id)),
                Ok(n) => {
                    inputs.push(Input::Data(id, n));
                    let full = n == self.buf.len();
                    hand_over(&self.shared, &self.buf, inputs);
                    if full {
                        continue;
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => inputs.push(Input::Error(id, io_error(&e))),
            }
            // EOF or error: the core closes it; stop watching it.
            open.registered = false;
            let _ = self.notifier.poller.delete(open.raw.fd());
            hand_over(&self.shared, &self.buf, inputs);
            return;
        }
    }

    fn hand_over(&self, inputs: &mut Vec<Input>) {
        hand_over(&self.shared, &self.buf, inputs);
    }
}

/// Gives the core what the socket calls found (data: the first `n` bytes of
/// `buf`), under the lock.
fn hand_over(shared: &Shared, buf: &[u8], inputs: &mut Vec<Input>) {
    let mut state = shared.lock();
    for input in inputs.drain(..) {
        let now = state.now();
        match input {
            Input::Data(id, n) => state.core.handle_data(now, id, &buf[..n]),
            Input::Eof(id) => state.core.handle_eof(now, id),
            Input::Error(id, e) => state.core.handle_io_error(now, id, e),
            Input::Connected(id, sock) => {
                if let Some(direct) = state.direct.as_mut() {
                    direct.socks.insert(id, sock);
                }
                state.core.handle_connected(now, id);
            }
            Input::ConnectFailed(id, e) => state.core.handle_connect_failed(now, id, e),
        }
    }
}

/// Writes queued bytes until the socket would block or nothing is left.
fn flush(open: &mut Open) -> io::Result<()> {
    const MAX_SLICES: usize = 64;
    while !open.out.is_empty() {
        let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
        let count = open.out.len().min(MAX_SLICES);
        for (slice, bytes) in slices.iter_mut().zip(open.out.iter()) {
            *slice = io::IoSlice::new(bytes);
        }
        match open.raw.write_vectored(&slices[..count]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                while n > 0 {
                    let Some(front) = open.out.front_mut() else {
                        break;
                    };
                    let take = n.min(front.len());
                    front.advance(take);
                    n -= take;
                    if front.is_empty() {
                        open.out.pop_front();
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The thread's poller: level-triggered readiness of its sockets, a
/// deadline, and a notify for other threads. On Linux plain epoll, so that a
/// wait costs one `epoll_pwait` (the `polling` crate re-arms its timerfd and
/// its notifier around every wait: four more system calls), the eventfd
/// read only when it was written, the timeout in milliseconds (rounded up:
/// the core's deadlines are timeouts, early by nothing).
#[cfg(any(target_os = "linux", target_os = "android"))]
mod sys {
    use std::io;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::time::Duration;

    use rustix::event::{EventfdFlags, Timespec, epoll, eventfd};

    /// The eventfd's key: socket keys are socket ids, far below.
    const NOTIFY: u64 = u64::MAX;

    /// A readiness report: the socket's key, whether it can be read (data,
    /// EOF or an error: a read will tell which).
    #[derive(Clone, Copy)]
    pub(super) struct Ready {
        pub(super) key: usize,
        pub(super) readable: bool,
    }

    pub(super) struct Poller {
        epoll: OwnedFd,
        eventfd: OwnedFd,
    }

    /// The kernel's reports, kept by the waiting thread (not `Send`).
    pub(super) type Buffer = Vec<epoll::Event>;

    pub(super) fn buffer() -> Buffer {
        Vec::with_capacity(64)
    }

    impl Poller {
        pub(super) fn new() -> io::Result<Self> {
            let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
            let eventfd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
            epoll::add(
                &epoll,
                &eventfd,
                epoll::EventData::new_u64(NOTIFY),
                epoll::EventFlags::IN,
            )?;
            Ok(Self { epoll, eventfd })
        }

        pub(super) fn add(&self, fd: BorrowedFd<'_>, key: usize) -> io::Result<()> {
            Ok(epoll::add(
                &self.epoll,
                fd,
                epoll::EventData::new_u64(key as u64),
                epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
            )?)
        }

        pub(super) fn watch_write(
            &self,
            fd: BorrowedFd<'_>,
            key: usize,
            write: bool,
        ) -> io::Result<()> {
            let mut flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
            if write {
                flags |= epoll::EventFlags::OUT;
            }
            Ok(epoll::modify(
                &self.epoll,
                fd,
                epoll::EventData::new_u64(key as u64),
                flags,
            )?)
        }

        pub(super) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
            Ok(epoll::delete(&self.epoll, fd)?)
        }

        pub(super) fn notify(&self) -> io::Result<()> {
            match rustix::io::write(&self.eventfd, &1u64.to_ne_bytes()) {
                // The counter is full: a wake-up is pending anyway.
                Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }

        /// Waits for readiness, the timeout or a notify; `out` gets the
        /// sockets' reports (none for a notify or the timeout).
        pub(super) fn wait(
            &self,
            events: &mut Buffer,
            out: &mut Vec<Ready>,
            timeout: Option<Duration>,
        ) -> io::Result<usize> {
            let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(events),
                timeout.as_ref(),
            ) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            for event in events.iter() {
                let key = event.data.u64();
                if key == NOTIFY {
                    let mut buf = [0; 8];
                    let _ = rustix::io::read(self.eventfd.as_fd(), &mut buf);
                    continue;
                }
                let flags = event.flags;
                #[allow(clippy::cast_possible_truncation)]
                out.push(Ready {
                    key: key as usize,
                    readable: flags.intersects(
                        epoll::EventFlags::IN
                            | epoll::EventFlags::RDHUP
                            | epoll::EventFlags::HUP
                            | epoll::EventFlags::ERR,
                    ),
                });
            }
            Ok(out.len())
        }
    }
}

/// The thread's poller elsewhere: the `polling` crate, level-triggered.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod sys {
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::time::Duration;

    use polling::{Event, Events, PollMode};

    #[derive(Clone, Copy)]
    pub(super) struct Ready {
        pub(super) key: usize,
        pub(super) readable: bool,
    }

    pub(super) struct Poller {
        poller: polling::Poller,
    }

    pub(super) type Buffer = Events;

    pub(super) fn buffer() -> Buffer {
        Events::new()
    }

    impl Poller {
        pub(super) fn new() -> io::Result<Self> {
            Ok(Self {
                poller: polling::Poller::new()?,
            })
        }

        pub(super) fn add(&self, fd: BorrowedFd<'_>, key: usize) -> io::Result<()> {
            // SAFETY: the driver deletes the fd from the poller before the
            // socket is dropped (on close, and after EOF or an error).
            unsafe {
                self.poller
                    .add_with_mode(fd.as_raw_fd(), Event::readable(key), PollMode::Level)
            }
        }

        pub(super) fn watch_write(
            &self,
            fd: BorrowedFd<'_>,
            key: usize,
            write: bool,
        ) -> io::Result<()> {
            let interest = if write {
                Event::all(key)
            } else {
                Event::readable(key)
            };
            self.poller.modify_with_mode(fd, interest, PollMode::Level)
        }

        pub(super) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
            self.poller.delete(fd)
        }

        pub(super) fn notify(&self) -> io::Result<()> {
            self.poller.notify()
        }

        pub(super) fn wait(
            &self,
            events: &mut Buffer,
            out: &mut Vec<Ready>,
            timeout: Option<Duration>,
        ) -> io::Result<usize> {
            events.clear();
            self.poller.wait(events, timeout)?;
            out.extend(events.iter().map(|e| Ready {
                key: e.key,
                readable: e.readable,
            }));
            Ok(out.len())
        }
    }
}
