//! A small RESP server that can turn to protected mode and back, for the
//! reconnect tests of both adapters: it answers `HELLO` like redis 7, and
//! `CLIENT`, `PING`, `GET` and `SET`; in protected mode it writes the exact
//! `DENIED` text redis-server 7 sends on accept, then closes.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use redpoll_core::conn::ConnConfig;
use redpoll_core::resp::{Decoder, Frame};
use redpoll_core::{Address, ClientConfig};

/// The largest backoff of the clients of these tests.
pub const CAP: Duration = Duration::from_secs(1);
/// What a backoff may overrun the cap by: scheduling, a connect, a handshake.
pub const SLACK: Duration = Duration::from_millis(400);

/// The text redis-server 7 writes on accept in protected mode, then closes
/// (copied from core/tests/reconnect.rs).
pub const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

// ---- a small RESP server that can turn to protected mode ------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
/// What the server does with a connection.
pub enum Mode {
    /// Answers HELLO, CLIENT, PING, GET and SET.
    Serving,
    /// Writes [`DENIED`] on accept and closes, like redis-server 7.
    Denied,
}

struct Inner {
    mode: Mode,
    /// Every accepted connection: when, and in which mode.
    accepts: Vec<(Instant, Mode)>,
    /// When each `HELLO` was answered.
    hellos: Vec<Instant>,
    /// The serving connections, to close when turning to protected mode.
    open: Vec<TcpStream>,
    handlers: Vec<JoinHandle<()>>,
    data: HashMap<Bytes, Bytes>,
    next_id: i64,
}

struct FakeShared {
    stop: AtomicBool,
    inner: Mutex<Inner>,
}

impl FakeShared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A RESP3 server on `127.0.0.1` speaking just enough of redis 7 for the
/// client's handshake and GET/SET. Its threads end when it is dropped.
pub struct FakeRedis {
    port: u16,
    shared: Arc<FakeShared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeRedis {
    /// Starts a server in `mode` on a free loopback port.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    #[must_use]
    pub fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(FakeShared {
            stop: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                mode,
                accepts: Vec::new(),
                hellos: Vec::new(),
                open: Vec::new(),
                handlers: Vec::new(),
                data: HashMap::new(),
                next_id: 0,
            }),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::spawn(move || accept_loop(&listener, &shared))
        };
        Self {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// Switches the mode; turning to protected mode closes every open
    /// connection, as a restarted server would.
    pub fn set_mode(&self, mode: Mode) {
        let mut inner = self.shared.lock();
        inner.mode = mode;
        if mode == Mode::Denied {
            for stream in inner.open.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Connections accepted so far.
    #[must_use]
    pub fn accept_count(&self) -> usize {
        self.shared.lock().accepts.len()
    }

    /// When the connections accepted in `mode` from `since` on came.
    pub fn accepts_since(&self, since: Instant, mode: Mode) -> Vec<Instant> {
        self.shared
            .lock()
            .accepts
            .iter()
            .filter(|(at, m)| *at >= since && *m == mode)
            .map(|(at, _)| *at)
            .collect()
    }

    /// The first `HELLO` answered from `since` on.
    pub fn first_hello_since(&self, since: Instant) -> Option<Instant> {
        self.shared
            .lock()
            .hellos
            .iter()
            .copied()
            .find(|at| *at >= since)
    }
}

impl Drop for FakeRedis {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let (open, handlers) = {
            let mut inner = self.shared.lock();
            (
                std::mem::take(&mut inner.open),
                std::mem::take(&mut inner.handlers),
            )
        };
        for stream in open {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for handler in handlers {
            let _ = handler.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<FakeShared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        // Non-blocking: look at the stop flag every 2 ms.
        let Ok((mut stream, _)) = listener.accept() else {
            thread::sleep(Duration::from_millis(2));
            continue;
        };
        let _ = stream.set_nonblocking(false);
        let mut inner = shared.lock();
        let mode = inner.mode;
        inner.accepts.push((Instant::now(), mode));
        match mode {
            Mode::Denied => {
                drop(inner);
                // What redis-server 7 does in protected mode: the error
                // right after accept, then close.
                let _ = stream.write_all(DENIED.as_bytes());
                drop(stream);
            }
            Mode::Serving => {
                if let Ok(clone) = stream.try_clone() {
                    inner.open.push(clone);
                }
                let shared = shared.clone();
                inner
                    .handlers
                    .push(thread::spawn(move || serve(stream, &shared)));
            }
        }
    }
}

fn serve(mut stream: TcpStream, shared: &FakeShared) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut decoder = Decoder::new();
    let mut inbox = BytesMut::new();
    let mut buf = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        let n = match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        inbox.extend_from_slice(&buf[..n]);
        let mut out = BytesMut::new();
        loop {
            match decoder.decode(&mut inbox) {
                Ok(Some(frame)) => answer(shared, &frame).encode(&mut out),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

fn bulk(s: &'static str) -> Frame {
    Frame::Bulk(Bytes::from_static(s.as_bytes()))
}

fn answer(shared: &FakeShared, frame: &Frame) -> Frame {
    let ok = || Frame::Simple(Bytes::from_static(b"OK"));
    let Frame::Array(parts) = frame else {
        return Frame::Error(Bytes::from_static(b"ERR expected an array"));
    };
    let args: Vec<Bytes> = parts
        .iter()
        .filter_map(|p| match p {
            Frame::Bulk(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    let name = args
        .first()
        .map(|a| a.to_ascii_uppercase())
        .unwrap_or_default();
    let mut inner = shared.lock();
    match (name.as_slice(), args.len()) {
        (b"HELLO", _) => {
            inner.next_id += 1;
            inner.hellos.push(Instant::now());
            // What redis 7 answers to HELLO 3.
            Frame::Map(vec![
                (bulk("server"), bulk("redis")),
                (bulk("version"), bulk("7.2.4")),
                (bulk("proto"), Frame::Integer(3)),
                (bulk("id"), Frame::Integer(inner.next_id)),
                (bulk("mode"), bulk("standalone")),
                (bulk("role"), bulk("master")),
                (bulk("modules"), Frame::Array(Vec::new())),
            ])
        }
        (b"CLIENT", _) => ok(),
        (b"PING", 1) => Frame::Simple(Bytes::from_static(b"PONG")),
        (b"GET", 2) => inner
            .data
            .get(&args[1])
            .map_or(Frame::Null, |v| Frame::Bulk(v.clone())),
        (b"SET", 3) => {
            inner.data.insert(args[1].clone(), args[2].clone());
            ok()
        }
        _ => Frame::Error(Bytes::from_static(b"ERR unknown command")),
    }
}

// ---- helpers ----------------------------------------------------------------

/// A client configuration for a server on `port`: 10 s response
/// timeout, reconnect cap [`CAP`].
#[must_use]
pub fn config(port: u16) -> ClientConfig {
    let mut config = ClientConfig::new(ConnConfig::new(Address::tcp("127.0.0.1", port)));
    config.response_timeout = Some(Duration::from_secs(10));
    config.reconnect.cap = CAP;
    config
}
