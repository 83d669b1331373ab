//! Driving `redpoll-core` with a hand-written blocking loop over `std::net`,
//! for people embedding the core in their own runtime.
//!
//! ```text
//! cargo run --example embed -- 127.0.0.1:6379
//! ```
//!
//! The loop is the one of the crate docs: drain effects, drain events, wait
//! for a socket or the next deadline (mapped onto the socket's read
//! timeout), report what happened, repeat.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration as StdDuration;

use redpoll_core::conn::ConnConfig;
use redpoll_core::{Address, Client, ClientConfig, Effect, Event, Instant, IoError};

/// The core's clock: nanoseconds since the program started.
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

fn io_error(e: &std::io::Error) -> IoError {
    match e.kind() {
        ErrorKind::ConnectionRefused => IoError::Refused,
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => IoError::Reset,
        ErrorKind::TimedOut => IoError::TimedOut,
        ErrorKind::NotFound => IoError::NotFound,
        _ => IoError::Other,
    }
}

fn main() {
    let target = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6379".into());
    let (host, port) = target.rsplit_once(':').expect("HOST:PORT");
    let address = Address::tcp(host.trim_matches(['[', ']']), port.parse().expect("port"));
    let clock = Clock(std::time::Instant::now());
    let mut config = ClientConfig::new(ConnConfig::new(address));
    config.response_timeout = Some(std::time::Duration::from_secs(2));
    let mut client = Client::new(config);
    let mut sockets: HashMap<_, TcpStream> = HashMap::new();

    // 1. Application commands.
    let mut waiting = vec![
        client.send(
            clock.now(),
            &["SET", "redpoll:embed", "hello from a hand-written loop"],
        ),
        client.send(clock.now(), &["GET", "redpoll:embed"]),
        client.send(clock.now(), &["INCR", "redpoll:embed:runs"]),
    ];

    let mut buf = vec![0u8; 16 * 1024];
    while !waiting.is_empty() {
        // 2. Carry out every effect, in order.
        while let Some(effect) = client.poll_effect() {
            match effect {
                Effect::Connect { socket, address } => {
                    let Address::Tcp { host, port } = &address else {
                        client.handle_connect_failed(clock.now(), socket, IoError::Other);
                        continue;
                    };
                    let connected = (host.as_str(), *port)
                        .to_socket_addrs()
                        .and_then(|mut addrs| {
                            addrs.next().ok_or_else(|| ErrorKind::NotFound.into())
                        })
                        .and_then(|addr| {
                            TcpStream::connect_timeout(&addr, StdDuration::from_secs(5))
                        });
                    match connected {
                        Ok(stream) => {
                            stream.set_nodelay(true).ok();
                            sockets.insert(socket, stream);
                            client.handle_connected(clock.now(), socket);
                        }
                        Err(e) => client.handle_connect_failed(clock.now(), socket, io_error(&e)),
                    }
                }
                Effect::Send { socket, data } => {
                    if let Some(stream) = sockets.get_mut(&socket)
                        && let Err(e) = stream.write_all(&data)
                    {
                        client.handle_io_error(clock.now(), socket, io_error(&e));
                    }
                }
                Effect::Close { socket, reason } => {
                    println!("closing {socket}: {reason}");
                    sockets.remove(&socket);
                }
                // Look at the socket without blocking: report what waits
                // there (bytes, EOF, error), or that nothing does.
                Effect::Probe { socket } => {
                    let Some(stream) = sockets.get_mut(&socket) else {
                        continue;
                    };
                    stream.set_nonblocking(true).ok();
                    let outcome = stream.read(&mut buf);
                    stream.set_nonblocking(false).ok();
                    match outcome {
                        Ok(0) => client.handle_eof(clock.now(), socket),
                        // The core asks again when bytes were waiting.
                        Ok(n) => client.handle_data(clock.now(), socket, &buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            client.handle_probe_done(clock.now(), socket);
                        }
                        Err(e) => client.handle_io_error(clock.now(), socket, io_error(&e)),
                    }
                }
            }
        }
        // 3. Hand out every event.
        while let Some(event) = client.poll_event() {
            match event {
                Event::Response { id, result } => {
                    match result {
                        Ok(frame) => println!("{id}: {frame:?}"),
                        Err(e) => println!("{id}: error: {e}"),
                    }
                    waiting.retain(|w| *w != id);
                }
                Event::Connected { socket, protocol } => println!("{socket} ready ({protocol:?})"),
                Event::Disconnected { socket, reason } => println!("{socket} gone: {reason}"),
                Event::Push { frame, .. } => println!("push: {frame:?}"),
                Event::Status(status) => println!("status: {status:?}"),
            }
        }
        if waiting.is_empty() {
            break;
        }
        // 4. Wait for the socket or the next deadline, 5. report it.
        let deadline = client.poll_timeout();
        let now = clock.now();
        let wait = deadline.map(|d| d.saturating_duration_since(now));
        if wait == Some(StdDuration::ZERO) {
            client.handle_timeout(now);
            continue;
        }
        let Some((&socket, stream)) = sockets.iter_mut().next() else {
            client.handle_timeout(now);
            continue;
        };
        stream.set_read_timeout(wait).expect("non-zero timeout");
        match stream.read(&mut buf) {
            Ok(0) => client.handle_eof(clock.now(), socket),
            Ok(n) => client.handle_data(clock.now(), socket, &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                client.handle_timeout(clock.now());
            }
            Err(e) => client.handle_io_error(clock.now(), socket, io_error(&e)),
        }
    }

    // Shut down and carry out the last effects: every socket gets its Close.
    client.shutdown(clock.now());
    while let Some(effect) = client.poll_effect() {
        if let Effect::Close { socket, .. } = effect {
            sockets.remove(&socket);
        }
    }
    assert!(sockets.is_empty(), "every socket was closed");
}
