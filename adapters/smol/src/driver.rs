//! The driver: the one task per client that carries out the core's effects.
//!
//! Each poll runs the core's loop until nothing moves: carry out effects
//! (connect, queue writes, close), flush writes (keeping what a socket would
//! not take), feed reads, fire the timer, hand events to their waiters. All
//! of it under the client's lock, which callers only take to hand the core a
//! request; requests from many tasks therefore leave in one write.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use async_io::{Async, Timer};
use bytes::{Buf, Bytes};
use futures_lite::{AsyncRead, AsyncWrite};
use redpoll_core::{Address, Effect, Event, IoError, SocketId};

use crate::shared::{Shared, State};

/// A connect in progress.
pub(crate) type Connecting = Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>>;

/// A connected transport socket: TLS, when on, is the core's business.
pub(crate) enum Stream {
    Tcp(Async<TcpStream>),
    #[cfg(unix)]
    Unix(Async<UnixStream>),
}

enum Socket {
    Connecting(Connecting),
    Open {
        stream: Stream,
        /// Bytes the socket has not taken yet, in order.
        out: VecDeque<Bytes>,
        /// Set after EOF or an error was reported: the core will close it.
        done: bool,
        /// A read returned Pending during this poll: the reactor will wake
        /// the driver when there is more, so reading again in this poll is
        /// a wasted system call.
        read_blocked: bool,
    },
}

/// The future that drives one client. It ends once the client is shut
/// down (every handle dropped, or [`Client::shutdown`]) and every socket is
/// closed.
///
/// [`Client::shutdown`]: crate::Client::shutdown
#[must_use = "the client does nothing unless its driver runs"]
pub struct Driver {
    shared: Arc<Shared>,
    sockets: HashMap<SocketId, Socket>,
    timer: Option<Timer>,
    buf: Box<[u8]>,
    /// Wakers taken from the state, called after the lock is released.
    woken: Vec<Waker>,
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            sockets: HashMap::new(),
            timer: None,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            woken: Vec::new(),
        }
    }
}

pub(crate) fn io_error(e: &io::Error) -> IoError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => IoError::Refused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => IoError::Reset,
        io::ErrorKind::TimedOut => IoError::TimedOut,
        io::ErrorKind::NotFound => IoError::NotFound,
        io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::AddrNotAvailable => IoError::Unreachable,
        _ => IoError::Other,
    }
}

pub(crate) fn connect(address: Address) -> Connecting {
    Box::pin(async move {
        match address {
            Address::Tcp { host, port } => {
                // Resolution blocks: keep it off the driver.
                let addrs: Vec<_> = blocking_resolve(host, port).await?;
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
                for addr in addrs {
                    match Async::<TcpStream>::connect(addr).await {
                        Ok(stream) => {
                            stream.get_ref().set_nodelay(true)?;
                            return Ok(Stream::Tcp(stream));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            #[cfg(unix)]
            Address::Unix(path) => Ok(Stream::Unix(Async::<UnixStream>::connect(path).await?)),
            #[cfg(not(unix))]
            Address::Unix(_) => Err(io::Error::new(io::ErrorKind::Unsupported, "unix sockets")),
        }
    })
}

/// Resolves a host without blocking the driver: literal addresses at once,
/// names on a helper thread.
async fn blocking_resolve(host: String, port: u16) -> io::Result<Vec<std::net::SocketAddr>> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![(ip, port).into()]);
    }
    let (tx, rx) = async_channel::bounded(1);
    std::thread::Builder::new()
        .name("redpoll-resolve".into())
        .spawn(move || {
            let _ = tx.send_blocking(
                (host.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect),
            );
        })?;
    rx.recv()
        .await
        .unwrap_or_else(|_| Err(io::Error::other("resolver thread failed")))
}

/// Reads a socket (`read`, which must not block) until nothing is waiting,
/// feeding the core; whether the socket is done (EOF or error reported).
pub(crate) fn probe(
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    buf: &mut [u8],
    state: &mut State,
    socket: SocketId,
) -> bool {
    loop {
        match read(buf) {
            Ok(0) => {
                state.core.handle_eof(state.now(), socket);
                return true;
            }
            Ok(n) => state.core.handle_data(state.now(), socket, &buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                state.core.handle_probe_done(state.now(), socket);
                return false;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                state
                    .core
                    .handle_io_error(state.now(), socket, io_error(&e));
                return true;
            }
        }
    }
}

impl Stream {
    /// A read that does not wait: the socket is non-blocking.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Read;
        match self {
            Self::Tcp(s) => s.get_ref().read(buf),
            #[cfg(unix)]
            Self::Unix(s) => s.get_ref().read(buf),
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(unix)]
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(unix)]
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Self::Tcp(s) => s.get_ref().shutdown(std::net::Shutdown::Both),
            #[cfg(unix)]
            Self::Unix(s) => s.get_ref().shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut state = shared.lock();
        state.driver = Some(cx.waker().clone());
        for socket in this.sockets.values_mut() {
            if let Socket::Open { read_blocked, .. } = socket {
                *read_blocked = false;
            }
        }
        loop {
            let mut moved = this.carry_out_effects(&mut state);
            moved |= state.deliver_events_deferred();
            moved |= this.poll_sockets(&mut state, cx);
            moved |= this.poll_timer(&mut state, cx);
            if !moved {
                break;
            }
        }
        let done = state.shut_down && this.sockets.is_empty();
        if done {
            state.driver = None;
        }
        state.take_woken(&mut this.woken);
        drop(state);
        for waker in this.woken.drain(..) {
            waker.wake();
        }
        if done {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Driver {
    fn carry_out_effects(&mut self, state: &mut State) -> bool {
        let mut moved = false;
        while let Some(effect) = state.core.poll_effect() {
            moved = true;
            match effect {
                Effect::Connect { socket, address } => {
                    state.trace_connect(socket, &address);
                    self.sockets
                        .insert(socket, Socket::Connecting(connect(address)));
                }
                Effect::Send { socket, data } => {
                    if let Some(Socket::Open { out, .. }) = self.sockets.get_mut(&socket) {
                        out.push_back(data);
                    }
                }
                Effect::Close { socket, reason } => {
                    state.trace_close(socket, &reason);
                    if let Some(Socket::Open { stream, .. }) = self.sockets.remove(&socket) {
                        stream.shutdown();
                    }
                }
                // Sockets are read continuously, but a request may come
                // before the driver has read an EOF already there: look now.
                Effect::Probe { socket } => {
                    if let Some(Socket::Open { stream, done, .. }) = self.sockets.get_mut(&socket)
                        && !*done
                    {
                        *done = probe(
                            |buf| stream.try_read(buf),
                            &mut self.buf,
                            &mut *state,
                            socket,
                        );
                    }
                }
            }
        }
        moved
    }

    fn poll_sockets(&mut self, state: &mut State, cx: &mut Context<'_>) -> bool {
        let mut moved = false;
        for (&id, socket) in &mut self.sockets {
            match socket {
                Socket::Connecting(fut) => match fut.as_mut().poll(cx) {
                    Poll::Ready(Ok(stream)) => {
                        *socket = Socket::Open {
                            stream,
                            out: VecDeque::new(),
                            done: false,
                            read_blocked: false,
                        };
                        state.core.handle_connected(state.now(), id);
                        moved = true;
                    }
                    Poll::Ready(Err(e)) => {
                        state
                            .core
                            .handle_connect_failed(state.now(), id, io_error(&e));
                        moved = true;
                    }
                    Poll::Pending => {}
                },
                Socket::Open {
                    stream,
                    out,
                    done,
                    read_blocked,
                } => {
                    if *done {
                        continue;
                    }
                    while let Some(front) = out.front_mut() {
                        match stream.poll_write(cx, front) {
                            Poll::Ready(Ok(n)) => {
                                front.advance(n);
                                if front.is_empty() {
                                    out.pop_front();
                                }
                            }
                            Poll::Ready(Err(e)) => {
                                state.core.handle_io_error(state.now(), id, io_error(&e));
                                *done = true;
                                moved = true;
                                break;
                            }
                            Poll::Pending => break,
                        }
                    }
                    while !*done && !*read_blocked {
                        match stream.poll_read(cx, &mut self.buf) {
                            Poll::Ready(Ok(0)) => {
                                state.core.handle_eof(state.now(), id);
                                *done = true;
                            }
                            Poll::Ready(Ok(n)) => {
                                state.core.handle_data(state.now(), id, &self.buf[..n])
                            }
                            Poll::Ready(Err(e)) => {
                                state.core.handle_io_error(state.now(), id, io_error(&e));
                                *done = true;
                            }
                            Poll::Pending => {
                                *read_blocked = true;
                                break;
                            }
                        }
                        moved = true;
                    }
                }
            }
        }
        moved
    }

    fn poll_timer(&mut self, state: &mut State, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = state.core.poll_timeout() else {
            self.timer = None;
            return false;
        };
        let at = state.instant(deadline);
        let timer = self.timer.get_or_insert_with(|| Timer::at(at));
        timer.set_at(at);
        if Pin::new(timer).poll(cx).is_ready() {
            state.core.handle_timeout(state.now());
            return true;
        }
        false
    }
}

impl State {
    /// Hands every event to its waiter or subscriber, and wakes them (under
    /// the lock: for callers other than the drivers, which defer).
    pub(crate) fn deliver_events(&mut self) -> bool {
        let moved = self.deliver_events_deferred();
        for waker in self.woken.drain(..) {
            waker.wake();
        }
        moved
    }

    /// Hands every event to its waiter or subscriber; their wakers are left
    /// in `woken` for the caller to call once the lock is released.
    pub(crate) fn deliver_events_deferred(&mut self) -> bool {
        let mut moved = false;
        while let Some(event) = self.core.poll_event() {
            moved = true;
            match event {
                Event::Response { id, result } => self.complete(id, result),
                Event::Push { frame, .. } => self.route_push(frame),
                Event::Connected { socket, .. } => self.trace_connected(socket),
                Event::Disconnected { .. } => {}
                Event::Status(status) => self.status_changed(status),
            }
        }
        moved
    }
}

impl Driver {
    /// The client's state, for a driver of another shape (`thread.rs`);
    /// valid only before the driver was first polled.
    #[cfg(unix)]
    pub(crate) fn into_shared(self) -> Arc<Shared> {
        self.shared
    }
}
