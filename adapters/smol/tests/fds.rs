//! Invariant I1 end to end, in a binary of its own so that no other test
//! opens descriptors meanwhile: a listener accepts TCP and never answers;
//! 200 connection attempts with a 50 ms handshake deadline each fail with a
//! timeout, and afterwards the process holds no more file descriptors than
//! before. With and without TLS.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redpoll_core::conn::ConnConfig;
use redpoll_core::{Address, ClientConfig, cmd};
use redpoll_smol::{Builder, Client, Error};
use redpoll_testkit::certs::Pki;
use redpoll_testkit::server::count_open_fds;

fn attempts(port: u16, tls: Option<&Pki>) {
    let mut conn = ConnConfig::new(Address::tcp("127.0.0.1", port));
    conn.handshake_timeout = Duration::from_millis(50);
    let mut builder = Builder::from_config(ClientConfig::new(conn));
    if let Some(pki) = tls {
        builder = builder.tls_root_pem(pki.ca_pem.as_bytes()).unwrap();
    }
    let config = builder.config().unwrap();
    for attempt in 0..200 {
        smol::block_on(async {
            let (client, driver) = Client::with_driver(config.clone());
            let driver = smol::spawn(driver);
            let result = client.run(cmd::ping()).await;
            assert!(
                matches!(&result, Err(Error::Connection(e)) if e.is_timeout()),
                "attempt {attempt}: {result:?}"
            );
            drop(client);
            // The driver ends once every socket it was told to open is
            // closed; a socket without its Close would keep it alive.
            let deadline = async {
                async_io::Timer::after(Duration::from_secs(5)).await;
                panic!("attempt {attempt}: the driver still holds a socket");
            };
            futures_lite::future::or(driver, deadline).await;
        });
    }
}

#[test]
fn two_hundred_silent_handshakes_leak_no_descriptor() {
    let pki = Pki::generate();
    // Warm up what the process keeps for good (the async-io reactor).
    let warm = TcpListener::bind("127.0.0.1:0").unwrap();
    attempts_once(warm.local_addr().unwrap().port());
    drop(warm);

    for tls in [None, Some(&pki)] {
        let before = count_open_fds();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and holds every connection, answering nothing.
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut held = Vec::new();
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    held.push(stream.unwrap());
                }
                held.len()
            }
        });
        attempts(port, tls);
        stop.store(true, Ordering::SeqCst);
        drop(TcpStream::connect(("127.0.0.1", port)));
        // The listener's side of every connection belongs to this process
        // too: it is closed with the acceptor.
        let held = acceptor.join().unwrap();
        assert_eq!(held, 200, "every attempt reached the listener");
        let after = count_open_fds();
        assert!(
            after <= before,
            "tls={}: {before} descriptors before, {after} after",
            tls.is_some()
        );
    }
}

fn attempts_once(port: u16) {
    let mut conn = ConnConfig::new(Address::tcp("127.0.0.1", port));
    conn.handshake_timeout = Duration::from_millis(50);
    smol::block_on(async {
        let (client, driver) = Client::with_driver(ClientConfig::new(conn));
        let driver = smol::spawn(driver);
        let _ = client.run(cmd::ping()).await;
        drop(client);
        driver.await;
    });
}
