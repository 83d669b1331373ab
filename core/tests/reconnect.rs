//! The reconnect policy on a virtual clock: phase-aware decisions, paced
//! attempts, recovery without restart (invariant I5), and the socket
//! accounting of invariant I1 across every attempt.

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use redpoll_core::conn::ConnConfig;
use redpoll_core::resp::Frame;
use redpoll_core::{
    Address, Client, ClientConfig, CloseReason, Duration, Effect, Error, Event, HandshakeErrorKind,
    Status,
};
use redpoll_testkit::peer::{Answer, Peer};
use redpoll_testkit::world::World;

/// The text redis-server 7 writes on accept in protected mode, then closes.
const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Healthy,
    Denied,
    WrongPass,
}

/// A world whose server behaves as `mode` says at each new connection.
fn world(mode: &Rc<Cell<Mode>>, configure: impl FnOnce(&mut ClientConfig)) -> World {
    let mut config = ClientConfig::new(ConnConfig::new(Address::tcp("10.0.0.1", 6379)));
    config.response_timeout = Some(Duration::from_secs(60));
    configure(&mut config);
    let mode = mode.clone();
    World::new(Client::new(config), move || match mode.get() {
        Mode::Healthy => Peer::plain(),
        Mode::Denied => {
            let mut p = Peer::plain().with_handler(|_| Some(Answer::Silence));
            p.answer(Answer::Raw(DENIED.as_bytes().to_vec()));
            p.answer(Answer::Close);
            p
        }
        Mode::WrongPass => Peer::plain().with_handler(|c| {
            (c[0].as_ref() == b"HELLO").then(|| {
                Answer::Reply(Frame::Error(Bytes::from_static(
                    b"WRONGPASS invalid username-password pair or user is disabled.",
                )))
            })
        }),
    })
}

fn statuses(w: &World) -> Vec<Status> {
    w.events
        .iter()
        .filter_map(|e| match e {
            Event::Status(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn connect_times(w: &World) -> usize {
    w.effects
        .iter()
        .filter(|e| matches!(e, Effect::Connect { .. }))
        .count()
}

#[test]
fn denied_on_the_very_first_connection_fails_fast_with_a_clear_message() {
    let mode = Rc::new(Cell::new(Mode::Denied));
    let mut w = world(&mode, |_| {});
    let id = w.send(&["PING"]);
    let message = match w.response(id) {
        Some(Err(Error::Connection(CloseReason::Handshake(e)))) => {
            assert_eq!(e.kind, HandshakeErrorKind::ProtectedMode);
            e.to_string()
        }
        other => panic!("{other:?}"),
    };
    assert!(message.contains("protected mode"), "{message}");
    assert!(
        message.contains("protected-mode no"),
        "says what to check: {message}"
    );
    // It does not keep trying on its own before ever having connected...
    w.advance(Duration::from_secs(60));
    assert_eq!(connect_times(&w), 1);
    // ...and a request right away fails with the same reason, without a
    // new connection (no storm), while a later one tries again.
    let again = w.send(&["PING"]);
    assert!(matches!(
        w.response(again),
        Some(Err(Error::Connection(CloseReason::Handshake(_))))
    ));
    w.check_accounting();
    w.shutdown_and_check();
}

#[test]
fn denied_after_an_hour_of_traffic_keeps_reconnecting_and_recovers_when_fixed() {
    let mode = Rc::new(Cell::new(Mode::Healthy));
    let policy_cap = Duration::from_secs(5);
    let mut w = world(&mode, |c| c.reconnect.cap = policy_cap);
    // An hour of healthy traffic.
    for minute in 0..60 {
        let id = w.send(&["SET", "k", &minute.to_string()]);
        assert_eq!(w.reply(id), Frame::Simple("OK".into()));
        w.advance(Duration::from_secs(60));
    }
    // The server turns to protected mode and drops the connection.
    mode.set(Mode::Denied);
    let socket = *w.sockets().last().unwrap();
    w.peers.get_mut(&socket).unwrap().answer(Answer::Close);
    w.run();
    let waiting = w.client.send(w.now, &["GET", "k"]);
    w.run();
    // Ten minutes of DENIED: the client keeps trying, paced by the backoff.
    let before = connect_times(&w);
    for _ in 0..600 {
        w.advance(Duration::from_secs(1));
    }
    let attempts = connect_times(&w) - before;
    assert!(
        attempts >= 100,
        "kept trying: {attempts} attempts in 10 minutes"
    );
    assert!(
        attempts <= 600,
        "paced, not a storm: {attempts} attempts in 10 minutes"
    );
    assert!(
        !statuses(&w)
            .iter()
            .any(|s| matches!(s, Status::GaveUp { .. }))
    );
    // The request sent meanwhile waited (its deadline is 60 s): it failed
    // when its deadline passed, not by giving up, and says why.
    assert!(
        matches!(
            w.response(waiting),
            Some(Err(Error::Connection(CloseReason::Handshake(e))))
                if e.kind == HandshakeErrorKind::ProtectedMode
        ),
        "{:?}",
        w.response(waiting)
    );
    // The server is fixed: the client recovers by itself within one cap.
    mode.set(Mode::Healthy);
    let fixed_at = w.now;
    while !w.client.is_connected() {
        w.advance(Duration::from_millis(10));
        assert!(
            w.now.saturating_duration_since(fixed_at) <= policy_cap,
            "recovered within the cap"
        );
    }
    let id = w.send(&["PING"]);
    assert_eq!(w.reply(id), Frame::Simple("PONG".into()));
    assert!(matches!(statuses(&w).last(), Some(Status::Connected)));
    w.check_accounting();
    w.shutdown_and_check();
}

#[test]
fn a_server_that_rejects_every_handshake_is_not_hammered() {
    let mode = Rc::new(Cell::new(Mode::Healthy));
    let mut w = world(&mode, |_| {});
    let id = w.send(&["PING"]);
    assert_eq!(w.reply(id), Frame::Simple("PONG".into()));
    mode.set(Mode::WrongPass);
    let socket = w.sockets()[0];
    w.peers.get_mut(&socket).unwrap().answer(Answer::Close);
    w.run();
    // A minute in small steps, as a busy event loop would call in.
    for _ in 0..6_000 {
        w.advance(Duration::from_millis(10));
    }
    let attempts = connect_times(&w) - 1;
    // Backoff from 50 ms doubling to a 5 s cap, full jitter: a few dozen
    // attempts a minute, not thousands.
    assert!(
        (5..=80).contains(&attempts),
        "{attempts} connection attempts in a minute"
    );
    // Every handshake reply was checked: never reported connected.
    let connected = statuses(&w)
        .iter()
        .filter(|s| matches!(s, Status::Connected))
        .count();
    assert_eq!(connected, 1, "only the first, healthy connection");
    w.check_accounting();
    w.shutdown_and_check();
}

#[test]
fn a_bounded_budget_ends_in_a_clear_terminal_state() {
    let mode = Rc::new(Cell::new(Mode::Healthy));
    let mut w = world(&mode, |c| c.reconnect.max_attempts = Some(3));
    let id = w.send(&["PING"]);
    assert_eq!(w.reply(id), Frame::Simple("PONG".into()));
    mode.set(Mode::WrongPass);
    let socket = w.sockets()[0];
    w.peers.get_mut(&socket).unwrap().answer(Answer::Close);
    w.run();
    for _ in 0..60 {
        w.advance(Duration::from_secs(1));
    }
    assert!(
        matches!(statuses(&w).last(), Some(Status::GaveUp { .. })),
        "{:?}",
        statuses(&w)
    );
    assert_eq!(
        connect_times(&w),
        4,
        "the first connection and three attempts"
    );
    let late = w.send(&["PING"]);
    assert!(matches!(w.response(late), Some(Err(Error::Connection(_)))));
    w.check_accounting();
    w.shutdown_and_check();
}

#[test]
fn status_events_tell_disconnected_reconnecting_at_and_connected() {
    let mode = Rc::new(Cell::new(Mode::Healthy));
    let mut w = world(&mode, |_| {});
    let id = w.send(&["PING"]);
    assert_eq!(w.reply(id), Frame::Simple("PONG".into()));
    let socket = w.sockets()[0];
    w.peers.get_mut(&socket).unwrap().answer(Answer::Close);
    w.run();
    let s = statuses(&w);
    assert!(matches!(s[0], Status::Connected));
    assert!(matches!(
        s[1],
        Status::Disconnected {
            reason: CloseReason::Eof
        }
    ));
    let Status::Reconnecting { attempt: 1, at } = s[2] else {
        panic!("{s:?}")
    };
    assert!(
        at >= w.now && at <= w.now + Duration::from_millis(50),
        "first backoff within the base"
    );
    assert!(!w.client.is_connected());
    w.advance(at.saturating_duration_since(w.now));
    assert!(w.client.is_connected());
    assert!(matches!(statuses(&w).last(), Some(Status::Connected)));
    w.shutdown_and_check();
}

#[test]
fn requests_sent_while_reconnecting_wait_for_the_new_connection() {
    let mode = Rc::new(Cell::new(Mode::Healthy));
    let mut w = world(&mode, |_| {});
    let id = w.send(&["SET", "k", "v"]);
    assert_eq!(w.reply(id), Frame::Simple("OK".into()));
    let socket = w.sockets()[0];
    w.peers.get_mut(&socket).unwrap().answer(Answer::Close);
    w.run();
    let held = w.send(&["PING"]);
    assert_eq!(w.response(held), None, "held, not failed");
    w.advance(Duration::from_millis(50));
    assert_eq!(w.reply(held), Frame::Simple("PONG".into()));
    w.shutdown_and_check();
}

#[test]
fn subscriptions_are_renewed_on_the_new_connection_after_a_reconnect() {
    let mut config = ClientConfig::new(ConnConfig::new(Address::tcp("10.0.0.1", 6379)));
    config.response_timeout = Some(Duration::from_secs(60));
    let mut w = World::new(Client::new(config), || {
        Peer::plain().with_handler(|c| {
            let name = c[0].to_ascii_lowercase();
            (name == b"subscribe" || name == b"psubscribe" || name == b"unsubscribe").then(|| {
                let mut raw = Vec::new();
                for channel in &c[1..] {
                    let mut buf = bytes::BytesMut::new();
                    Frame::Push(vec![
                        Frame::Bulk(name.clone().into()),
                        Frame::Bulk(channel.clone()),
                        Frame::Integer(1),
                    ])
                    .encode(&mut buf);
                    raw.extend_from_slice(&buf);
                }
                Answer::Raw(raw)
            })
        })
    });
    let a = w
        .client
        .send(w.now, &redpoll_core::cmd::subscribe(["news", "sport"]));
    let b = w
        .client
        .send(w.now, &redpoll_core::cmd::psubscribe(["log.*"]));
    let c = w
        .client
        .send(w.now, &redpoll_core::cmd::unsubscribe(["sport"]));
    w.run();
    assert!(matches!(w.response(a), Some(Ok(Frame::Push(_)))));
    assert!(matches!(w.response(b), Some(Ok(Frame::Push(_)))));
    assert!(matches!(w.response(c), Some(Ok(Frame::Push(_)))));
    let first = w.sockets()[0];
    w.peers.get_mut(&first).unwrap().answer(Answer::Close);
    w.run();
    w.advance(Duration::from_millis(50));
    assert!(w.client.is_connected());
    let second = w.sockets()[1];
    let renewed: Vec<Vec<String>> = w
        .received(second)
        .into_iter()
        .filter(|cmd| cmd[0].ends_with("SUBSCRIBE"))
        .collect();
    assert_eq!(
        renewed,
        [vec!["SUBSCRIBE", "news"], vec!["PSUBSCRIBE", "log.*"]]
    );
    // Ordinary requests still get their own replies after the renewal.
    let ping = w.send(&["PING"]);
    assert_eq!(w.reply(ping), Frame::Simple("PONG".into()));
    w.shutdown_and_check();
}
