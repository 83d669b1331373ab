//! The pool's decisions on a virtual clock, against scripted peers (plain,
//! and a real rustls server in memory): idle expiry, lifetime expiry, probe
//! outcomes, waiters, eviction reasons, and retries that stale connections
//! never spend (invariant I2). Every test checks the socket accounting (I1).

use bytes::Bytes;
use redpoll_core::conn::{ConnConfig, TlsConfig};
use redpoll_core::pool::RetryPolicy;
use redpoll_core::resp::Frame;
use redpoll_core::{
    Address, Client, ClientConfig, CloseReason, Duration, Effect, Error, LeaseId, RequestId,
    SocketId,
};
use redpoll_testkit::certs::Pki;
use redpoll_testkit::peer::{Answer, Peer};
use redpoll_testkit::world::World;

fn config() -> ClientConfig {
    let mut config = ClientConfig::new(ConnConfig::new(Address::tcp("127.0.0.1", 6379)));
    config.response_timeout = Some(Duration::from_secs(2));
    config
}

fn world(config: ClientConfig) -> World {
    World::new(Client::new(config), Peer::plain)
}

fn bulk(s: &'static str) -> Frame {
    Frame::Bulk(Bytes::from_static(s.as_bytes()))
}

fn ok() -> Frame {
    Frame::Simple(Bytes::from_static(b"OK"))
}

fn lease(w: &mut World) -> LeaseId {
    let lease = w.client.lease(w.now).expect("a lease");
    w.run();
    lease
}

fn send_leased(w: &mut World, lease: LeaseId, args: &[&str]) -> RequestId {
    let id = w.client.send_leased(w.now, lease, args);
    w.run();
    id
}

fn release(w: &mut World, lease: LeaseId) {
    w.client.release(w.now, lease);
    w.run();
}

/// The socket of the last `Connect`.
fn last_socket(w: &World) -> SocketId {
    *w.sockets().last().expect("a socket")
}

/// Probes asked for on `socket`, so far.
fn probes(w: &World, socket: SocketId) -> usize {
    w.effects
        .iter()
        .filter(|e| matches!(e, Effect::Probe { socket: s } if *s == socket))
        .count()
}

/// Closes the peer of `socket` without the client hearing of it yet: the
/// EOF waits in the socket, as after `CLIENT KILL` or a server restart.
fn kill_quietly(w: &mut World, socket: SocketId) {
    let peer = w.peers.get_mut(&socket).expect("a live peer");
    peer.answer(Answer::Close);
}

/// A dedicated connection, used once and given back idle.
fn warm_dedicated(w: &mut World) -> SocketId {
    let l = lease(w);
    let id = send_leased(w, l, &["SET", "k", "v"]);
    assert_eq!(w.reply(id), ok());
    release(w, l);
    let socket = last_socket(w);
    assert_eq!(w.client.pool_stats().idle, 1);
    socket
}

#[test]
fn an_idle_connection_expires_after_the_idle_timeout() {
    let mut cfg = config();
    cfg.pool.idle_timeout = Some(Duration::from_secs(60));
    let mut w = world(cfg);
    let socket = warm_dedicated(&mut w);
    w.advance(Duration::from_secs(59));
    assert_eq!(w.close_reason(socket), None);
    // The client's next deadline is the expiry: nobody has to ask.
    assert!(w.client.poll_timeout().is_some());
    w.advance(Duration::from_secs(1));
    assert_eq!(w.close_reason(socket), Some(&CloseReason::IdleTimeout));
    let stats = w.client.pool_stats();
    assert_eq!((stats.idle, stats.closed.idle_timeout), (0, 1));
    w.shutdown_and_check();
}

#[test]
fn a_connection_past_its_lifetime_is_evicted_at_checkout() {
    let mut cfg = config();
    cfg.pool.max_lifetime = Some(Duration::from_secs(30));
    cfg.pool.idle_timeout = None;
    let mut w = world(cfg);
    let old = warm_dedicated(&mut w);
    w.advance(Duration::from_secs(29));
    assert_eq!(w.close_reason(old), None, "not yet");
    w.now = w.now + Duration::from_secs(1);
    let l = lease(&mut w);
    let id = send_leased(&mut w, l, &["GET", "k"]);
    assert_eq!(w.close_reason(old), Some(&CloseReason::Lifetime));
    let new = last_socket(&w);
    assert_ne!(new, old);
    assert_eq!(w.reply(id), Frame::Null, "served by a new connection");
    assert_eq!(w.client.pool_stats().closed.lifetime, 1);
    release(&mut w, l);
    w.shutdown_and_check();
}

#[test]
fn a_probe_that_finds_nothing_lets_the_request_through() {
    let mut w = world(config());
    let socket = warm_dedicated(&mut w);
    let l = lease(&mut w);
    assert_eq!(probes(&w, socket), 1, "a quiet connection is probed first");
    let probe_at = w
        .effects
        .iter()
        .rposition(|e| matches!(e, Effect::Probe { .. }))
        .expect("a probe");
    let id = send_leased(&mut w, l, &["GET", "k"]);
    assert_eq!(w.reply(id), bulk("v"));
    let sent_at = w
        .effects
        .iter()
        .rposition(|e| matches!(e, Effect::Send { socket: s, .. } if *s == socket))
        .expect("a send");
    assert!(
        sent_at > probe_at,
        "nothing written before the probe's answer"
    );
    let stats = w.client.pool_stats();
    assert_eq!((stats.probes_alive, stats.probes_dead), (1, 0));
    assert_eq!(stats.created, 1, "the same connection, reused");
    release(&mut w, l);
    w.shutdown_and_check();
}

#[test]
fn requests_wait_unwritten_while_the_probe_is_out() {
    let mut w = world(config());
    let socket = warm_dedicated(&mut w);
    let written_before = w.sent(socket).len();
    // An adapter that answers probes later: hold the effects.
    let l = w.client.lease(w.now).expect("a lease");
    let id = w.client.send_leased(w.now, l, &["GET", "k"]);
    let mut effects = Vec::new();
    while let Some(e) = w.client.poll_effect() {
        effects.push(e);
    }
    assert_eq!(effects, [Effect::Probe { socket }], "only the probe");
    w.client.handle_probe_done(w.now, socket);
    w.run();
    assert!(w.sent(socket).len() > written_before);
    assert_eq!(w.reply(id), bulk("v"));
    release(&mut w, l);
    w.shutdown_and_check();
}

#[test]
fn a_dead_idle_connection_is_evicted_and_the_lease_moves_on_for_free() {
    let mut cfg = config();
    cfg.retry = RetryPolicy::NONE;
    let mut w = world(cfg);
    let dead = warm_dedicated(&mut w);
    kill_quietly(&mut w, dead);
    let l = lease(&mut w);
    let id = send_leased(&mut w, l, &["SET", "k", "w"]);
    assert_eq!(w.close_reason(dead), Some(&CloseReason::Eof));
    assert_eq!(w.reply(id), ok(), "no failure, with no retries allowed");
    assert!(
        !w.sent(dead).windows(3).any(|b| b == b"\r\nw"),
        "the write never went to the dead connection"
    );
    let stats = w.client.pool_stats();
    assert_eq!((stats.probes_dead, stats.retries), (1, 0));
    release(&mut w, l);
    w.shutdown_and_check();
}

#[test]
fn stray_data_on_an_idle_connection_means_out_of_sync() {
    let mut w = world(config());
    let socket = warm_dedicated(&mut w);
    w.peers
        .get_mut(&socket)
        .expect("peer")
        .answer(Answer::Raw(b"+OK\r\n".to_vec()));
    let l = lease(&mut w);
    let id = send_leased(&mut w, l, &["GET", "k"]);
    assert_eq!(w.close_reason(socket), Some(&CloseReason::UnexpectedReply));
    assert_eq!(w.reply(id), Frame::Null, "served by a new connection");
    assert_eq!(w.client.pool_stats().probes_dead, 1);
    release(&mut w, l);
    w.shutdown_and_check();
}

fn tls_world(pki: &Pki) -> World {
    let mut cfg = config();
    cfg.conn.tls = Some(
        TlsConfig::builder()
            .add_root_pem(pki.ca_pem.as_bytes())
            .expect("CA")
            .build()
            .expect("TLS config"),
    );
    cfg.conn.address = Address::tcp("localhost", 6380);
    let server = pki.server_config(false);
    World::new(Client::new(cfg), move || Peer::tls(server.clone()))
}

#[test]
fn tls_records_on_an_idle_connection_are_housekeeping_not_death() {
    let pki = Pki::generate();
    let mut w = tls_world(&pki);
    let socket = warm_dedicated(&mut w);
    // Key updates (and the session tickets of the handshake) arrive while
    // the connection is idle; hold them in the socket until the probe.
    w.deliver = false;
    for _ in 0..3 {
        w.peers.get_mut(&socket).expect("peer").key_update();
    }
    let l = lease(&mut w);
    w.deliver = true;
    let id = send_leased(&mut w, l, &["GET", "k"]);
    assert_eq!(w.close_reason(socket), None, "not evicted");
    assert_eq!(w.reply(id), bulk("v"), "the session still decrypts");
    assert!(probes(&w, socket) >= 2, "asked again after the records");
    let stats = w.client.pool_stats();
    assert_eq!((stats.created, stats.probes_dead), (1, 0));
    assert_eq!(stats.probes_alive, 1);
    release(&mut w, l);
    // A later probe still finds it alive and usable.
    let l = lease(&mut w);
    let id = send_leased(&mut w, l, &["SET", "k", "x"]);
    assert_eq!(w.reply(id), ok());
    assert_eq!(w.client.pool_stats().probes_alive, 2);
    release(&mut w, l);
    w.shutdown_and_check();
}

#[test]
fn a_tls_close_notify_on_an_idle_connection_means_dead() {
    let pki = Pki::generate();
    let mut w = tls_world(&pki);
    let socket = warm_dedicated(&mut w);
    kill_quietly(&mut w, socket);
    let l = lease(&mut w);
    let id = send_leased(&mut w, l, &["GET", "k"]);
    assert_eq!(w.close_reason(socket), Some(&CloseReason::Eof));
    assert_eq!(w.reply(id), Frame::Null, "served by a new connection");
    release(&mut w, l);
    w.shutdown_and_check();
}

#[test]
fn a_waiter_gets_the_next_free_connection_or_gives_up_with_a_clear_error() {
    let mut cfg = config();
    cfg.pool.max_size = 1;
    cfg.pool.wait_timeout = Duration::from_secs(1);
    let mut w = world(cfg);
    let first = lease(&mut w);
    // The second waits; what it sends waits with it.
    let second = lease(&mut w);
    let queued = send_leased(&mut w, second, &["SET", "k", "2"]);
    assert_eq!(w.response(queued), None);
    assert_eq!(w.client.pool_stats().waiters, 1);
    release(&mut w, first);
    assert_eq!(w.reply(queued), ok(), "served once the first was released");
    assert_eq!(w.client.pool_stats().created, 1);
    // A third waits for longer than the wait timeout.
    let third = lease(&mut w);
    let late = send_leased(&mut w, third, &["GET", "k"]);
    w.advance(Duration::from_secs(1));
    assert_eq!(w.response(late), Some(&Err(Error::PoolExhausted)));
    let after = send_leased(&mut w, third, &["GET", "k"]);
    assert_eq!(w.response(after), Some(&Err(Error::PoolExhausted)));
    assert_eq!(w.client.pool_stats().wait_timeouts, 1);
    release(&mut w, third);
    release(&mut w, second);
    w.shutdown_and_check();
}

#[test]
fn the_waiters_queue_is_bounded() {
    let mut cfg = config();
    cfg.pool.max_size = 1;
    cfg.pool.max_waiters = 1;
    let mut w = world(cfg);
    let _holder = lease(&mut w);
    let _waiting = lease(&mut w);
    assert_eq!(w.client.lease(w.now), Err(Error::PoolExhausted));
    let blocking = w.client.send(w.now, &redpoll_core::cmd::blpop(["q"], 1.0));
    w.run();
    assert_eq!(w.response(blocking), Some(&Err(Error::PoolExhausted)));
    w.shutdown_and_check();
}

#[test]
fn eviction_reasons_surplus_and_unclean() {
    let mut cfg = config();
    cfg.pool.max_idle = 1;
    let mut w = world(cfg);
    let a = lease(&mut w);
    let b = lease(&mut w);
    let c = lease(&mut w);
    let multi = send_leased(&mut w, c, &["MULTI"]);
    let _ = w.response(multi);
    release(&mut w, a);
    release(&mut w, b);
    release(&mut w, c);
    let stats = w.client.pool_stats();
    assert_eq!(stats.closed.surplus, 1, "one idle kept, one surplus");
    assert_eq!(stats.closed.unclean, 1, "released mid-transaction");
    assert_eq!(stats.idle, 1);
    w.shutdown_and_check();
}

#[test]
fn min_idle_connections_are_opened_ahead_once_the_server_answers() {
    let mut cfg = config();
    cfg.pool.min_idle = 3;
    let mut w = world(cfg);
    assert!(
        w.sockets().is_empty(),
        "nothing before the first connection"
    );
    w.client.connect(w.now);
    w.run();
    let stats = w.client.pool_stats();
    assert_eq!(
        (stats.open, stats.idle),
        (4, 3),
        "the shared one and 3 idle"
    );
    w.shutdown_and_check();
}

#[test]
fn a_stale_shared_connection_is_found_out_before_a_request_is_written() {
    let mut cfg = config();
    cfg.retry = RetryPolicy::NONE;
    let mut w = world(cfg);
    let set = w.send(&["SET", "k", "v"]);
    assert_eq!(w.reply(set), ok());
    let stale = last_socket(&w);
    kill_quietly(&mut w, stale);
    let get = w.send(&["GET", "k"]);
    assert_eq!(w.close_reason(stale), Some(&CloseReason::Eof));
    // Held for the reconnect (paced by the backoff), then served.
    w.advance(Duration::from_millis(100));
    assert!(
        matches!(w.response(get), Some(Ok(_))),
        "{:?}",
        w.response(get)
    );
    let stats = w.client.pool_stats();
    assert_eq!((stats.probes_dead, stats.retries), (1, 0));
    w.shutdown_and_check();
}

#[test]
fn a_read_written_to_a_connection_that_then_fails_spends_a_retry() {
    for (retry, command, expect_ok) in [
        (
            RetryPolicy {
                attempts: 1,
                writes: false,
            },
            ["GET", "k", ""],
            true,
        ),
        (RetryPolicy::NONE, ["GET", "k", ""], false),
        (
            RetryPolicy {
                attempts: 1,
                writes: false,
            },
            ["SET", "k", "v"],
            false,
        ),
        (
            RetryPolicy {
                attempts: 1,
                writes: true,
            },
            ["SET", "k", "v"],
            true,
        ),
    ] {
        let mut cfg = config();
        cfg.retry = retry;
        let mut w = world(cfg);
        let ping = w.send(&["PING"]);
        let _ = w.reply(ping);
        let socket = last_socket(&w);
        // The server dies after the request was written, before its reply.
        w.deliver = false;
        let args: Vec<&str> = command.iter().copied().filter(|a| !a.is_empty()).collect();
        let id = w.send(&args);
        assert!(w.peers[&socket].received.len() >= 2, "{command:?}: written");
        let peer = w.peers.get_mut(&socket).expect("peer");
        peer.take_outbox();
        peer.answer(Answer::Close);
        w.deliver = true;
        w.run();
        w.advance(Duration::from_millis(100));
        let outcome = w.response(id).cloned();
        assert_eq!(
            matches!(outcome, Some(Ok(_))),
            expect_ok,
            "{retry:?} {command:?}: {outcome:?}"
        );
        if !expect_ok {
            assert_eq!(outcome, Some(Err(Error::Connection(CloseReason::Eof))));
        }
        assert_eq!(w.client.pool_stats().retries, u64::from(expect_ok));
        w.shutdown_and_check();
    }
}

#[test]
fn a_retry_budget_is_spent_only_once_per_written_failure() {
    let mut cfg = config();
    cfg.retry = RetryPolicy {
        attempts: 1,
        writes: false,
    };
    // Every connection dies on the first GET it receives.
    let mut w = World::new(Client::new(cfg), || {
        Peer::plain().with_handler(|args| {
            args[0]
                .eq_ignore_ascii_case(b"GET")
                .then_some(Answer::Close)
        })
    });
    let id = w.send(&["GET", "k"]);
    for _ in 0..10 {
        w.advance(Duration::from_millis(100));
    }
    assert_eq!(
        w.response(id),
        Some(&Err(Error::Connection(CloseReason::Eof))),
        "written twice, failed twice: the budget of one retry is spent"
    );
    assert_eq!(w.client.pool_stats().retries, 1);
    w.shutdown_and_check();
}

#[test]
fn a_large_batch_written_after_a_probe_arrives_whole_over_tls() {
    let pki = Pki::generate();
    let mut w = tls_world(&pki);
    let ping = w.send(&["PING"]);
    let _ = w.reply(ping);
    // 200 commands of 1 KB queue behind the probe of the quiet connection:
    // far more than rustls buffers by default.
    let value = "x".repeat(1000);
    let ids: Vec<RequestId> = (0..200)
        .map(|i| {
            w.client
                .send(w.now, &["SET", &format!("k{i}"), value.as_str()])
        })
        .collect();
    w.run();
    for id in ids {
        assert_eq!(w.reply(id), ok());
    }
    assert_eq!(w.client.pool_stats().probes_alive, 1);
    w.shutdown_and_check();
}

#[test]
fn a_connection_being_probed_expects_bytes() {
    let mut w = world(config());
    let socket = warm_dedicated(&mut w);
    assert!(!w.client.expects_data(socket), "idle in the pool");
    let l = w.client.lease(w.now).expect("a lease");
    // The checkout's probe is out and not answered yet: bytes it finds
    // (an EOF, a TLS session ticket) are for a reader to hand over.
    assert!(w.client.expects_data(socket), "probing");
    w.run();
    assert_eq!(probes(&w, socket), 1);
    assert!(!w.client.expects_data(socket), "probed clean, nothing sent");
    release(&mut w, l);
    w.shutdown_and_check();
}
