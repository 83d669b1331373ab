//! Invariant I1 through the blocking adapter: a handshake that hits its
//! deadline fails with a timeout and leaves no socket open, with and
//! without TLS.
//!
//! A binary of its own with one test: it counts the process's file
//! descriptors, which tests running beside it would change.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use redpoll_std::core::conn::ConnConfig;
use redpoll_std::core::{Address, ClientConfig, CloseReason};
use redpoll_std::{Builder, Client, Error, cmd};
use redpoll_testkit::server::count_open_fds;

const CLIENTS: usize = 20;
const ATTEMPTS_EACH: usize = 10;
const DEADLINE: Duration = Duration::from_millis(50);

/// A server that accepts connections and never says a word; stopping it
/// closes everything it accepted.
struct Mute {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Vec<TcpStream>>,
}

impl Mute {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::spawn(move || {
            let mut accepted = Vec::new();
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                accepted.extend(stream);
            }
            accepted
        });
        Self { port, stop, thread }
    }

    /// Stops accepting; the number of connections it had accepted.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept.
        drop(TcpStream::connect(("127.0.0.1", self.port)));
        self.thread.join().unwrap().len()
    }
}

#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
fn attempts(port: u16, tls: bool) {
    let mut config = ClientConfig::new(ConnConfig::new(Address::tcp("127.0.0.1", port)));
    config.conn.handshake_timeout = DEADLINE;
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let builder = Builder::from_config(config.clone());
            #[cfg(feature = "tls")]
            let builder = if tls {
                builder.dangerous_skip_verification()
            } else {
                builder
            };
            let client: Client = builder.build().unwrap();
            thread::spawn(move || {
                for _ in 0..ATTEMPTS_EACH {
                    let e = client.run(cmd::ping()).unwrap_err();
                    assert_eq!(
                        e,
                        Error::Connection(redpoll_std::core::Error::Connection(
                            CloseReason::HandshakeDeadline
                        ))
                    );
                    assert!(e.is_timeout());
                }
                client.shutdown();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Ten deadlines one after the other per client, the clients side by side.
    let elapsed = started.elapsed();
    assert!(elapsed < DEADLINE * 10 * 4, "took {elapsed:?}");
}

#[test]
fn handshake_deadlines_leave_no_socket_open() {
    for tls in [false, cfg!(feature = "tls")] {
        let mute = Mute::start();
        let before = count_open_fds();
        attempts(mute.port, tls);
        let accepted = mute.stop();
        // The attempts reached the server: the deadline hit the handshake,
        // not the TCP connect.
        assert!(accepted > 0, "tls: {tls}");
        let after = count_open_fds();
        // The listener and everything it accepted are gone now.
        assert!(
            after < before,
            "tls: {tls}: {before} descriptors before, {after} after"
        );
    }
}
