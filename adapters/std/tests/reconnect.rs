//! The reconnect acceptance of redpoll-std, over real sockets: a server
//! that turns to protected mode (`DENIED`) and back, `DENIED` on the very
//! first connection, a real redis-server whose password changes at runtime,
//! and one stopped for 5 s and restarted on the same port. The reconnect
//! cap is 1 s ([`CAP`]) to keep the tests short; the base stays at its
//! default (50 ms).

use std::thread::{self};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redpoll_std::cmd;
use redpoll_std::core::resp::Frame;
use redpoll_std::core::{CloseReason, Error as CoreError, HandshakeErrorKind};
use redpoll_std::{Client, Error};
use redpoll_testkit::server::{RedisServer, ServerOptions};

use redpoll_testkit::fake::{CAP, FakeRedis, Mode, SLACK, config};

fn assert_protected_mode(err: &Error) {
    match err {
        Error::Connection(CoreError::Connection(CloseReason::Handshake(e)))
            if e.kind == HandshakeErrorKind::ProtectedMode =>
        {
            assert!(err.to_string().contains("protected mode"), "{err}");
        }
        other => panic!("expected the DENIED handshake error, got {other:?}"),
    }
}

/// The longest stretch without a connection attempt between `from` and `to`.
fn longest_gap(from: Instant, attempts: &[Instant], to: Instant) -> Duration {
    let mut points = vec![from];
    points.extend_from_slice(attempts);
    points.push(to);
    points
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

/// A field of `INFO stats`, read with `password`.
fn info_stat(server: &RedisServer, password: &str, field: &str) -> u64 {
    let info = match server.cmd_as(Some(password), &["INFO", "stats"]) {
        Ok(Frame::Bulk(b) | Frame::Verbatim { text: b, .. }) => {
            String::from_utf8_lossy(&b).into_owned()
        }
        other => panic!("INFO stats: {other:?}"),
    };
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO stats"))
}

/// Whether `wait_connected` waited its whole `timeout` in vain.
fn not_connected_for(client: &Client, timeout: Duration) -> bool {
    matches!(
        client.wait_connected(timeout),
        Err(Error::Connection(CoreError::Timeout))
    )
}

// ---- the tests ----------------------------------------------------------------

#[test]
fn denied_after_being_connected_keeps_reconnecting_paced_and_recovers_by_itself() {
    let server = FakeRedis::start(Mode::Serving);
    let client = Client::new(config(server.port()));
    client
        .wait_connected(Duration::from_secs(5))
        .expect("connected");
    client.run(cmd::set("before", "1")).unwrap();
    assert_eq!(
        client.run(cmd::get("before")).unwrap(),
        Some(Bytes::from_static(b"1"))
    );

    // Protected mode: the connection is closed, every new one DENIED.
    let denied_at = Instant::now();
    server.set_mode(Mode::Denied);
    // Nobody asks anything for a while: the client retries on its own.
    thread::sleep(Duration::from_millis(1500));
    let idle = server.accepts_since(denied_at, Mode::Denied);
    assert!(
        idle.len() >= 2,
        "kept reconnecting while idle: {} attempts in 1.5 s",
        idle.len()
    );
    assert!(
        not_connected_for(&client, Duration::from_millis(200)),
        "not connected while every connection is DENIED"
    );
    // Requests sent meanwhile wait for a connection (their deadline is
    // 10 s), none fails or panics.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let client = client.clone();
            thread::spawn(move || client.run(cmd::set(format!("during:{i}"), i)))
        })
        .collect();
    thread::sleep(Duration::from_millis(1500));
    assert!(
        tasks.iter().all(|t| !t.is_finished()),
        "requests wait while DENIED"
    );

    // The server is fixed.
    let fixed_at = Instant::now();
    server.set_mode(Mode::Serving);
    let attempts = server.accepts_since(denied_at, Mode::Denied);
    let window = fixed_at - denied_at;
    let rate = attempts.len() as f64 / window.as_secs_f64();
    let gap = longest_gap(denied_at, &attempts, fixed_at);
    eprintln!(
        "std DENIED: {} attempts in {window:?} ({rate:.1}/s), longest gap {gap:?}",
        attempts.len()
    );
    assert!(attempts.len() >= 4, "kept reconnecting: {}", attempts.len());
    assert!(rate <= 10.0, "paced, not a storm: {rate:.1} attempts/s");
    assert!(
        gap <= CAP + SLACK,
        "an attempt at least every cap: longest gap {gap:?}"
    );

    // It recovers by itself, within one cap.
    let deadline = fixed_at + CAP + Duration::from_secs(3);
    let hello = loop {
        if let Some(at) = server.first_hello_since(fixed_at) {
            break at;
        }
        assert!(Instant::now() < deadline, "no reconnection after the fix");
        thread::sleep(Duration::from_millis(5));
    };
    let recovery = hello - fixed_at;
    eprintln!("std DENIED: recovered {recovery:?} after the fix (cap {CAP:?})");
    assert!(recovery <= CAP + SLACK, "recovered after {recovery:?}");
    for (i, task) in tasks.into_iter().enumerate() {
        task.join()
            .expect("no panic")
            .unwrap_or_else(|e| panic!("request {i} sent while DENIED: {e}"));
    }
    for i in 0..10 {
        let v = client
            .run(cmd::get(format!("during:{i}")).returning::<Option<i64>>())
            .unwrap();
        assert_eq!(v, Some(i), "during:{i}");
    }
    assert_eq!(client.run(cmd::ping()).unwrap(), "PONG");
}

#[test]
fn denied_on_the_very_first_connection_fails_fast() {
    let server = FakeRedis::start(Mode::Denied);
    let client = Client::new(config(server.port()));
    let start = Instant::now();
    let err = client
        .wait_connected(Duration::from_secs(5))
        .expect_err("DENIED");
    let took = start.elapsed();
    eprintln!("std first DENIED: wait_connected failed after {took:?}");
    assert_protected_mode(&err);
    assert!(took < Duration::from_secs(1), "fails fast: {took:?}");
    let err = client.run(cmd::ping()).expect_err("DENIED");
    assert_protected_mode(&err);
    let attempts = server.accept_count();
    assert!((1..=2).contains(&attempts), "{attempts} connections");
    // Never connected: no attempts on its own, even after two caps.
    thread::sleep(2 * CAP);
    assert_eq!(
        server.accept_count(),
        attempts,
        "no connection on its own before ever being connected"
    );
}

#[test]
fn a_password_changed_at_runtime_is_retried_until_it_is_restored() {
    const OLD: &str = "oldpass";
    const NEW: &str = "newpass";
    let server = RedisServer::start(ServerOptions::new().password(OLD)).expect("redis-server");
    let mut config = config(server.port());
    config.conn.password = Some(OLD.into());
    config.response_timeout = Some(Duration::from_secs(1));
    let client = Client::new(config);
    client
        .wait_connected(Duration::from_secs(5))
        .expect("connected");
    for i in 0..50 {
        client.run(cmd::set(format!("pw:{i}"), i)).unwrap();
    }

    // The password changes and the client's connection is closed.
    let reply = server.cmd(&["CONFIG", "SET", "requirepass", NEW]).unwrap();
    assert_eq!(reply, Frame::Simple("OK".into()));
    // Connections the server accepted; each admin command (cmd_as) opens
    // one of its own, subtracted below.
    let conns0 = info_stat(&server, NEW, "total_connections_received");
    // (kill_clients() authenticates with the start password: it cannot be
    // used once the password changed.)
    let killed = server
        .cmd_as(Some(NEW), &["CLIENT", "KILL", "TYPE", "normal"])
        .unwrap();
    assert!(
        matches!(killed, Frame::Integer(n) if n >= 1),
        "killed {killed:?}"
    );
    let changed_at = Instant::now();
    // (A request written before the client saw the close would fail with
    // that close, EOF: it may have run. Give it time to see it.)
    thread::sleep(Duration::from_millis(100));

    // A request meanwhile fails, typed: it waits for a connection that
    // cannot authenticate, until its deadline.
    let result = client.run(cmd::get("pw:1"));
    match &result {
        Err(e) if e.is_timeout() => {}
        Err(Error::Connection(CoreError::Connection(CloseReason::Handshake(h))))
            if h.kind == HandshakeErrorKind::WrongPassword => {}
        other => panic!("expected a timeout or WRONGPASS, got {other:?}"),
    }
    assert!(
        not_connected_for(&client, Duration::from_millis(200)),
        "not connected while the password is wrong"
    );
    // Attempts while the request waited: minus CLIENT KILL's and this
    // INFO's own connections.
    let conns1 = info_stat(&server, NEW, "total_connections_received");
    let waiting = conns1 - conns0 - 2;
    // Nothing waits now: the client keeps retrying on its own.
    thread::sleep(Duration::from_millis(1500));
    let conns2 = info_stat(&server, NEW, "total_connections_received");
    let idle = conns2 - conns1 - 1;
    let window = changed_at.elapsed();
    let rate = (waiting + idle) as f64 / window.as_secs_f64();
    eprintln!(
        "std WRONGPASS: {} attempts in {window:?} ({rate:.1}/s), {idle} while idle",
        waiting + idle,
    );
    assert!(waiting >= 1, "retried while a request waited");
    assert!(idle >= 1, "retried while idle");
    assert!(rate <= 10.0, "paced: {rate:.1} attempts/s");

    // The old password is back: the client recovers by itself.
    let reply = server
        .cmd_as(Some(NEW), &["CONFIG", "SET", "requirepass", OLD])
        .unwrap();
    assert_eq!(reply, Frame::Simple("OK".into()));
    let restored_at = Instant::now();
    let deadline = restored_at + CAP + Duration::from_secs(3);
    // A client connection that passed HELLO 3 (resp=3) is the recovery.
    loop {
        let clients = server.client_list().unwrap();
        if clients.iter().any(|c| c.contains(" resp=3")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after the restore: {clients:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let recovery = restored_at.elapsed();
    eprintln!("std WRONGPASS: recovered {recovery:?} after the restore (cap {CAP:?})");
    assert!(recovery <= CAP + SLACK, "recovered after {recovery:?}");
    for i in 0..50 {
        let v = client
            .run(cmd::get(format!("pw:{i}")).returning::<Option<i64>>())
            .unwrap();
        assert_eq!(v, Some(i));
    }
}

#[test]
fn the_client_recovers_by_itself_after_the_server_restarts() {
    let mut server = RedisServer::start(ServerOptions::new()).expect("redis-server");
    let mut config = config(server.port());
    config.response_timeout = Some(Duration::from_secs(30));
    let client = Client::new(config);
    client
        .wait_connected(Duration::from_secs(5))
        .expect("connected");
    client.run(cmd::set("before", 1)).unwrap();
    server.stop();
    // (A request written before the client saw the connection close fails
    // with that close, a reset: it may have run. Give it time to see it.)
    thread::sleep(Duration::from_millis(200));
    // Requests sent during the outage wait for the next connection; each
    // adds its own amount to its own counter and sets its own value.
    let tasks: Vec<_> = (0..20_i64)
        .map(|i| {
            let client = client.clone();
            thread::spawn(move || {
                let added = client.run(cmd::incrby(format!("once:{i}"), i + 1));
                let set = client.run(cmd::set(format!("during:{i}"), i));
                (added, set)
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(5));
    assert!(
        tasks.iter().all(|t| !t.is_finished()),
        "requests wait during the outage"
    );
    let restarted = Instant::now();
    server.restart().expect("restart on the same port");
    let started = restarted.elapsed();
    for (i, task) in (0_i64..).zip(tasks) {
        let (added, set) = task.join().expect("no panic");
        let added = added.unwrap_or_else(|e| panic!("request {i} sent during the outage: {e}"));
        assert_eq!(added, i + 1, "request {i} got its own reply");
        set.unwrap_or_else(|e| panic!("SET {i} after the outage: {e}"));
    }
    let recovered = restarted.elapsed();
    eprintln!(
        "std restart: recovered {recovered:?} after the restart began ({started:?} of it the server's start, cap {CAP:?})"
    );
    assert!(
        recovered <= started + CAP + SLACK,
        "recovered after {recovered:?}"
    );
    for i in 0..20_i64 {
        let once: Option<i64> = client
            .run(cmd::get(format!("once:{i}")).returning())
            .unwrap();
        assert_eq!(once, Some(i + 1), "once:{i} was incremented exactly once");
        let during: Option<i64> = client
            .run(cmd::get(format!("during:{i}")).returning())
            .unwrap();
        assert_eq!(during, Some(i), "during:{i} was written exactly as sent");
    }
    // The data from before the restart is gone (nothing is persisted):
    // the client talks to the new server.
    assert_eq!(client.run(cmd::get("before")).unwrap(), None);
}
