//! Pool liveness (invariant I2) against real servers, plain and TLS: a
//! pool of 10 warm connections, every connection then dropped by the server
//! (`CLIENT KILL TYPE normal`, a restart on the same port, the server's
//! idle `timeout`), then 100 commands with retries set to 0: none may fail.
//! And TLS 1.3 housekeeping (the session tickets a TLS server sends after
//! the handshake) never evicts an idle connection.

use std::time::{Duration, Instant};

use redpoll_std::core::pool::{PoolConfig, RetryPolicy};
use redpoll_std::{Client, cmd};
use redpoll_testkit::certs::Pki;
use redpoll_testkit::server::{RedisServer, ServerOptions};

const WARM: usize = 10;

fn client(server: &RedisServer, pki: Option<&Pki>) -> Client {
    let pool = PoolConfig {
        min_idle: WARM,
        max_idle: WARM,
        max_size: WARM,
        ..PoolConfig::default()
    };
    let mut builder = Client::builder(&server.url())
        .unwrap()
        .pool(pool)
        .retry(RetryPolicy::NONE)
        .response_timeout(Some(Duration::from_secs(5)));
    if let Some(pki) = pki {
        builder = builder.tls_root_pem(pki.ca_pem.as_bytes()).unwrap();
    }
    builder.build().unwrap()
}

/// Waits (up to 10 s) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Connected, with `WARM` idle connections open on the server.
fn warm(client: &Client, server: &RedisServer) {
    client.wait_connected(Duration::from_secs(5)).unwrap();
    wait_until("a warm pool", || {
        let stats = client.pool_stats();
        stats.idle == WARM && stats.open == WARM + 1
    });
    // Every one of them checked out once, so that each is known to work.
    let leases: Vec<_> = (0..WARM).map(|_| client.transaction().unwrap()).collect();
    for tx in &leases {
        tx.run(cmd::ping()).unwrap();
    }
    drop(leases);
    wait_until("the server sees them all", || {
        server.client_count().unwrap() == WARM + 1
    });
}

/// 100 commands, half on the shared connection and half in transactions
/// on pooled ones; the failures.
fn hundred_commands(client: &Client, round: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for i in 0..100 {
        let key = format!("{round}:{i}");
        let outcome = if i % 2 == 0 {
            client.run(cmd::set(&key, i)).map(drop)
        } else {
            client
                .transaction()
                .and_then(|tx| tx.run(cmd::incr(&key)).map(drop))
        };
        if let Err(e) = outcome {
            failures.push(format!("{key}: {e}"));
        }
    }
    failures
}

fn every_connection_dropped_then_100_commands(pki: Option<&Pki>) {
    let mut options = ServerOptions::new();
    if let Some(pki) = pki {
        options = options.tls(pki.clone());
    }
    let mut server = RedisServer::start(options).unwrap();
    let client = client(&server, pki);

    // CLIENT KILL TYPE normal: every connection of the client at once.
    warm(&client, &server);
    let killed = server
        .cmd_text(&["CLIENT", "KILL", "TYPE", "normal"])
        .unwrap();
    assert!(killed.parse::<usize>().unwrap() > WARM, "killed {killed}");
    assert_eq!(hundred_commands(&client, "kill"), Vec::<String>::new());

    // A full restart on the same port.
    warm(&client, &server);
    server.restart().unwrap();
    assert_eq!(hundred_commands(&client, "restart"), Vec::<String>::new());

    // The server's idle timeout closes them. (It is switched off again
    // before the commands: a connection the server closes at the very
    // moment a command is written to it is a race no client can win with
    // zero retries.)
    warm(&client, &server);
    let closed_before = client.pool_stats().closed.total();
    server.cmd(&["CONFIG", "SET", "timeout", "1"]).unwrap();
    wait_until("the server's idle timeout", || {
        client.pool_stats().closed.total() > closed_before + WARM as u64
    });
    server.cmd(&["CONFIG", "SET", "timeout", "0"]).unwrap();
    assert_eq!(hundred_commands(&client, "timeout"), Vec::<String>::new());

    let stats = client.pool_stats();
    assert_eq!(stats.retries, 0);
    assert!(
        stats.closed.eof + stats.closed.io > 3 * WARM as u64,
        "{stats:?}"
    );
}

#[test]
fn plain_every_connection_dropped_then_100_commands_with_no_retries() {
    every_connection_dropped_then_100_commands(None);
}

#[test]
fn tls_every_connection_dropped_then_100_commands_with_no_retries() {
    every_connection_dropped_then_100_commands(Some(&Pki::generate()));
}

#[test]
fn tls_session_tickets_on_idle_connections_are_not_death() {
    let pki = Pki::generate();
    let server = RedisServer::start(ServerOptions::new().tls(pki.clone())).unwrap();
    let client = client(&server, Some(&pki));
    client.wait_connected(Duration::from_secs(5)).unwrap();
    wait_until("a warm pool", || client.pool_stats().idle == WARM);
    // Whatever the server sent after its handshakes (TLS 1.3 session
    // tickets) waits on the idle connections; each is then probed.
    std::thread::sleep(Duration::from_millis(100));
    let leases: Vec<_> = (0..WARM).map(|_| client.transaction().unwrap()).collect();
    for (i, tx) in leases.iter().enumerate() {
        tx.run(cmd::set(format!("t{i}"), i)).unwrap();
    }
    drop(leases);
    let stats = client.pool_stats();
    assert_eq!(stats.created, WARM as u64 + 1, "no connection replaced");
    assert_eq!(stats.closed.total(), 0, "{stats:?}");
    assert_eq!(stats.probes_dead, 0);
    assert!(stats.probes_alive >= WARM as u64, "{stats:?}");
}
