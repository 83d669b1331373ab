//! The connection machine without a network: a scripted peer (plain, or a
//! real rustls server connection in memory) on a virtual clock. Every test
//! checks the open/close accounting of invariant I1.

use bytes::Bytes;
use redpoll_core::conn::{ConnConfig, Phase, Protocol, TlsConfig};
use redpoll_core::resp::Frame;
use redpoll_core::{
    Address, Client, ClientConfig, CloseReason, Duration, Effect, Error, Event, HandshakeErrorKind,
    HandshakeStep, IoError, TlsErrorKind,
};
use redpoll_testkit::certs::Pki;
use redpoll_testkit::peer::{Answer, Peer};
use redpoll_testkit::world::{ConnectMode, World};

fn config() -> ConnConfig {
    ConnConfig::new(Address::tcp("127.0.0.1", 6379))
}

fn world(conn: ConnConfig, make_peer: impl FnMut() -> Peer + 'static) -> World {
    World::new(Client::new(ClientConfig::new(conn)), make_peer)
}

fn bulk(s: &'static str) -> Frame {
    Frame::Bulk(Bytes::from_static(s.as_bytes()))
}

fn handshake_error(w: &World, id: redpoll_core::RequestId) -> (HandshakeStep, HandshakeErrorKind) {
    match w.response(id) {
        Some(Err(Error::Connection(CloseReason::Handshake(e)))) => (e.step, e.kind),
        other => panic!("expected a handshake error, got {other:?}"),
    }
}

#[test]
fn resp3_happy_path_with_auth_name_and_db() {
    let mut conn = config();
    conn.username = Some("app".into());
    conn.password = Some("secret".into());
    conn.client_name = Some("worker-1".into());
    conn.database = 2;
    let mut w = world(conn, || {
        let mut p = Peer::plain();
        p.password = Some("secret".into());
        p
    });
    let set = w.send(&["SET", "k", "v"]);
    let get = w.send(&["GET", "k"]);
    assert_eq!(w.reply(set), Frame::Simple("OK".into()));
    assert_eq!(w.reply(get), bulk("v"));
    let socket = w.sockets()[0];
    assert_eq!(
        w.received(socket)[..4],
        [
            vec!["HELLO", "3", "AUTH", "app", "secret", "SETNAME", "worker-1"],
            vec!["SELECT", "2"],
            vec!["CLIENT", "SETINFO", "LIB-NAME", "redpoll"],
            vec!["CLIENT", "SETINFO", "LIB-VER", env!("CARGO_PKG_VERSION")],
        ]
        .map(|c| c.into_iter().map(String::from).collect::<Vec<_>>())
    );
    assert!(w.events.iter().any(|e| matches!(
        e,
        Event::Connected {
            protocol: Protocol::Resp3,
            ..
        }
    )));
    w.check_accounting();
    w.shutdown_and_check();
    assert_eq!(w.close_reason(socket), Some(&CloseReason::Shutdown));
}

#[test]
fn requests_wait_for_the_handshake_and_are_pipelined_in_order() {
    let mut w = world(config(), Peer::plain);
    // Hold the peer's answers: the requests are queued until HELLO is answered.
    w.deliver = false;
    let ids: Vec<_> = (0..16)
        .map(|i| {
            w.client
                .send(w.now, &["SET", &format!("k{i}"), &format!("v{i}")])
        })
        .collect();
    w.run();
    let socket = w.sockets()[0];
    assert_eq!(
        w.received(socket).len(),
        3,
        "only the handshake is written before it succeeds"
    );
    assert_eq!(w.client.in_flight(), 16, "queued for the handshake");
    w.deliver = true;
    w.run();
    assert_eq!(w.received(socket).len(), 3 + 16);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(w.reply(*id), Frame::Simple("OK".into()), "request {i}");
    }
    let gets: Vec<_> = (0..16)
        .map(|i| w.client.send(w.now, &["GET", &format!("k{i}")]))
        .collect();
    w.run();
    for (i, id) in gets.iter().enumerate() {
        assert_eq!(
            w.reply(*id),
            Frame::Bulk(format!("v{i}").into()),
            "each reply goes to its own request"
        );
    }
    w.shutdown_and_check();
}

#[test]
fn falls_back_to_resp2_when_the_server_has_no_hello() {
    let mut conn = config();
    conn.password = Some("pw".into());
    conn.client_name = Some("n".into());
    conn.database = 1;
    let mut w = world(conn, || {
        let mut p = Peer::plain();
        p.no_hello = true;
        p.password = Some("pw".into());
        p
    });
    let id = w.send(&["PING"]);
    assert_eq!(w.reply(id), Frame::Simple("PONG".into()));
    let socket = w.sockets()[0];
    let names: Vec<String> = w
        .received(socket)
        .iter()
        .map(|c| c[..2.min(c.len())].join(" "))
        .collect();
    assert_eq!(
        names,
        [
            "HELLO 3",
            "SELECT 1",
            "CLIENT SETINFO",
            "CLIENT SETINFO", // pipelined, superseded
            "AUTH pw",
            "CLIENT SETNAME",
            "SELECT 1",
            "CLIENT SETINFO",
            "CLIENT SETINFO",
            "PING",
        ]
    );
    assert!(w.events.iter().any(|e| matches!(
        e,
        Event::Connected {
            protocol: Protocol::Resp2,
            ..
        }
    )));
    w.shutdown_and_check();
}

#[test]
fn an_explicit_resp2_setting_never_sends_hello() {
    let mut conn = config();
    conn.protocol = Protocol::Resp2;
    conn.set_info = false;
    conn.password = Some("pw".into());
    let mut w = world(conn, || {
        let mut p = Peer::plain();
        p.password = Some("pw".into());
        p
    });
    let id = w.send(&["PING"]);
    assert_eq!(w.reply(id), Frame::Simple("PONG".into()));
    let socket = w.sockets()[0];
    assert_eq!(w.received(socket)[0], ["AUTH", "pw"]);
    assert_eq!(w.received(socket).len(), 2);
    w.shutdown_and_check();
}

#[test]
fn setinfo_errors_are_ignored() {
    let mut w = world(config(), || {
        Peer::plain().with_handler(|cmd| {
            (cmd[0].as_ref() == b"CLIENT").then(|| {
                Answer::Reply(Frame::Error(
                    "ERR unknown subcommand 'SETINFO'. Try CLIENT HELP.".into(),
                ))
            })
        })
    });
    let id = w.send(&["PING"]);
    assert_eq!(w.reply(id), Frame::Simple("PONG".into()));
    w.shutdown_and_check();
}

/// A peer answering one command (by name) with an error reply.
fn refusing(command: &'static str, reply: &'static str) -> impl FnMut() -> Peer {
    move || {
        Peer::plain().with_handler(move |cmd| {
            cmd[0]
                .eq_ignore_ascii_case(command.as_bytes())
                .then(|| Answer::Reply(Frame::Error(Bytes::from_static(reply.as_bytes()))))
        })
    }
}

#[test]
fn every_handshake_error_is_typed_and_closes_the_socket() {
    let cases = [
        (
            "HELLO",
            "WRONGPASS invalid username-password pair or user is disabled.",
            HandshakeStep::Hello,
            HandshakeErrorKind::WrongPassword,
        ),
        (
            "HELLO",
            "NOAUTH HELLO must be called with the client already authenticated",
            HandshakeStep::Hello,
            HandshakeErrorKind::AuthRequired,
        ),
        (
            "HELLO",
            "NOPERM this user has no permissions to run the 'hello' command",
            HandshakeStep::Hello,
            HandshakeErrorKind::NoPermission,
        ),
        (
            "HELLO",
            "LOADING Redis is loading the dataset in memory",
            HandshakeStep::Hello,
            HandshakeErrorKind::Loading,
        ),
        (
            "HELLO",
            "DENIED Redis is running in protected mode because protected mode is enabled",
            HandshakeStep::Hello,
            HandshakeErrorKind::ProtectedMode,
        ),
        (
            "HELLO",
            "ERR something else",
            HandshakeStep::Hello,
            HandshakeErrorKind::Other,
        ),
        (
            "SELECT",
            "ERR DB index is out of range",
            HandshakeStep::Select,
            HandshakeErrorKind::Other,
        ),
        (
            "SELECT",
            "NOPERM this user has no permissions to run the 'select' command",
            HandshakeStep::Select,
            HandshakeErrorKind::NoPermission,
        ),
        (
            "SELECT",
            "ERR unknown command 'SELECT'",
            HandshakeStep::Select,
            HandshakeErrorKind::UnknownCommand,
        ),
    ];
    for (command, reply, step, kind) in cases {
        let mut conn = config();
        conn.database = 3;
        let mut w = world(conn, refusing(command, reply));
        let first = w.send(&["SET", "k", "v"]);
        let second = w.send(&["GET", "k"]);
        assert_eq!(handshake_error(&w, first), (step, kind), "{reply}");
        assert_eq!(handshake_error(&w, second), (step, kind), "{reply}");
        let socket = w.sockets()[0];
        // The requests were never written to the refused connection.
        assert!(
            w.received(socket)
                .iter()
                .all(|c| c[0] != "SET" && c[0] != "GET")
        );
        assert!(
            matches!(w.close_reason(socket), Some(CloseReason::Handshake(e)) if e.kind == kind)
        );
        let message = match w.response(first) {
            Some(Err(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(
            message.contains(reply),
            "the server's words are kept: {message}"
        );
        w.check_accounting();
        w.shutdown_and_check();
    }
}

#[test]
fn the_real_protected_mode_text_sent_on_accept_is_a_typed_error() {
    // redis-server writes -DENIED right after accepting, then closes.
    let mut w = world(config(), || {
        let mut p = Peer::plain().with_handler(|_| Some(Answer::Silence));
        p.answer(Answer::Raw(b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user.\r\n".to_vec()));
        p.answer(Answer::Close);
        p
    });
    let id = w.send(&["PING"]);
    assert_eq!(
        handshake_error(&w, id),
        (HandshakeStep::Hello, HandshakeErrorKind::ProtectedMode)
    );
    w.shutdown_and_check();
}

#[test]
fn deadline_during_tcp_connect() {
    let mut w = world(config(), Peer::plain);
    w.connect_mode = ConnectMode::Hang;
    let id = w.send(&["PING"]);
    assert_eq!(w.response(id), None);
    w.advance(Duration::from_millis(4_999));
    assert_eq!(w.response(id), None);
    w.advance(Duration::from_millis(1));
    assert!(matches!(w.response(id), Some(Err(e)) if e.is_timeout()));
    let socket = w.sockets()[0];
    assert_eq!(
        w.close_reason(socket),
        Some(&CloseReason::HandshakeDeadline)
    );
    // The adapter reports the connect late: the core says nothing more.
    w.client.handle_connected(w.now, socket);
    w.client.handle_data(w.now, socket, b"+OK\r\n");
    w.run();
    assert_eq!(
        w.client.poll_timeout(),
        None,
        "no timer left once everything is closed"
    );
    w.shutdown_and_check();
}

#[test]
fn deadline_during_the_tls_handshake() {
    let pki = Pki::generate();
    let mut conn = config();
    conn.tls = Some(
        TlsConfig::builder()
            .add_root_pem(pki.ca_pem.as_bytes())
            .unwrap()
            .build()
            .unwrap(),
    );
    // A peer that accepts TCP and never says a TLS word.
    let mut w = world(conn, Peer::mute);
    let id = w.send(&["PING"]);
    let socket = w.sockets()[0];
    assert_eq!(w.client.phase(), Some(Phase::Tls));
    assert!(!w.sent(socket).is_empty(), "the ClientHello was sent");
    w.advance(Duration::from_secs(5));
    assert!(matches!(w.response(id), Some(Err(e)) if e.is_timeout()));
    assert_eq!(
        w.close_reason(socket),
        Some(&CloseReason::HandshakeDeadline)
    );
    w.shutdown_and_check();
}

#[test]
fn deadline_during_hello() {
    let mut w = world(config(), || {
        Peer::plain().with_handler(|_| Some(Answer::Silence))
    });
    let id = w.send(&["PING"]);
    assert_eq!(w.client.phase(), Some(Phase::Handshake));
    w.advance(Duration::from_secs(5));
    assert_eq!(
        w.response(id),
        Some(&Err(Error::Connection(CloseReason::HandshakeDeadline)))
    );
    w.shutdown_and_check();
}

#[test]
fn the_deadline_covers_the_whole_handshake_not_each_step() {
    // Connect takes 3 s, the server then answers nothing: the deadline is 5 s
    // after the connect was asked for, not 5 s after TCP connected.
    let mut w = world(config(), || {
        Peer::plain().with_handler(|_| Some(Answer::Silence))
    });
    w.connect_mode = ConnectMode::Hang;
    let id = w.send(&["PING"]);
    let socket = w.sockets()[0];
    w.advance(Duration::from_secs(3));
    w.peers.insert(
        socket,
        Peer::plain().with_handler(|_| Some(Answer::Silence)),
    );
    w.client.handle_connected(w.now, socket);
    w.run();
    w.advance(Duration::from_millis(1_999));
    assert_eq!(w.response(id), None);
    w.advance(Duration::from_millis(1));
    assert!(matches!(w.response(id), Some(Err(e)) if e.is_timeout()));
    w.shutdown_and_check();
}

#[test]
fn connect_refused() {
    let mut w = world(config(), Peer::plain);
    w.connect_mode = ConnectMode::Refuse;
    let id = w.send(&["PING"]);
    assert_eq!(
        w.response(id),
        Some(&Err(Error::Connection(CloseReason::ConnectFailed(
            IoError::Refused
        ))))
    );
    assert_eq!(w.closes.len(), 1);
    w.shutdown_and_check();
}

#[test]
fn garbage_from_the_server_is_a_sticky_protocol_error() {
    let mut w = world(config(), || {
        Peer::plain().with_handler(|cmd| {
            (cmd[0].as_ref() == b"GET").then(|| Answer::Raw(b"?garbage\r\n".to_vec()))
        })
    });
    let ok = w.send(&["SET", "k", "v"]);
    assert_eq!(w.reply(ok), Frame::Simple("OK".into()));
    w.deliver = false;
    let a = w.client.send(w.now, &["GET", "k"]);
    let b = w.client.send(w.now, &["PING"]);
    w.run();
    let socket = w.sockets()[0];
    w.deliver_from(socket);
    w.run();
    for id in [a, b] {
        assert!(
            matches!(
                w.response(id),
                Some(Err(Error::Connection(CloseReason::Protocol(_))))
            ),
            "{:?}",
            w.response(id)
        );
    }
    assert!(matches!(
        w.close_reason(socket),
        Some(CloseReason::Protocol(_))
    ));
    // Nothing more is read from or written to that socket.
    w.client.handle_data(w.now, socket, b"+OK\r\n");
    w.run();
    w.check_accounting();
    // The client reconnects by itself after a short backoff, and a request
    // sent meanwhile waits for the new connection.
    w.deliver = true;
    let c = w.send(&["PING"]);
    w.advance(Duration::from_millis(50));
    assert_eq!(w.reply(c), Frame::Simple("PONG".into()));
    assert_eq!(w.sockets().len(), 2);
    w.shutdown_and_check();
}

#[test]
fn server_closes_mid_reply() {
    let mut w = world(config(), || {
        Peer::plain().with_handler(|cmd| {
            (cmd[0].as_ref() == b"GET").then(|| Answer::Raw(b"$10\r\nhalf".to_vec()))
        })
    });
    w.send(&["PING"]);
    let get = w.send(&["GET", "k"]);
    let socket = w.sockets()[0];
    assert_eq!(w.response(get), None);
    w.client.handle_eof(w.now, socket);
    w.run();
    assert_eq!(
        w.response(get),
        Some(&Err(Error::Connection(CloseReason::Eof)))
    );
    assert_eq!(w.close_reason(socket), Some(&CloseReason::Eof));
    w.shutdown_and_check();
}

#[test]
fn a_push_frame_between_replies_is_routed_apart() {
    let mut w = world(config(), || {
        Peer::plain().with_handler(|cmd| {
            (cmd[0].as_ref() == b"ECHO").then(|| {
                let mut raw = Vec::new();
                raw.extend_from_slice(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
                raw.extend_from_slice(b"$4\r\necho\r\n");
                Answer::Raw(raw)
            })
        })
    });
    let a = w.send(&["ECHO", "echo"]);
    let b = w.send(&["PING"]);
    assert_eq!(w.reply(a), bulk("echo"));
    assert_eq!(w.reply(b), Frame::Simple("PONG".into()));
    let pushes: Vec<_> = w
        .events
        .iter()
        .filter(|e| matches!(e, Event::Push { .. }))
        .collect();
    assert_eq!(pushes.len(), 1);
    w.shutdown_and_check();
}

#[test]
fn a_reply_nobody_asked_for_closes_the_connection() {
    let mut w = world(config(), Peer::plain);
    w.send(&["PING"]);
    let socket = w.sockets()[0];
    w.client.handle_data(w.now, socket, b"+SURPRISE\r\n");
    w.run();
    assert_eq!(w.close_reason(socket), Some(&CloseReason::UnexpectedReply));
    w.shutdown_and_check();
}

#[test]
fn a_timed_out_request_leaves_a_tombstone_that_swallows_its_late_reply() {
    let mut cfg = ClientConfig::new(config());
    cfg.response_timeout = Some(Duration::from_millis(100));
    let mut w = World::new(Client::new(cfg), Peer::plain);
    w.send(&["SET", "k", "v"]);
    w.deliver = false;
    let slow = w.client.send(w.now, &["GET", "k"]);
    w.run();
    w.advance(Duration::from_millis(100));
    assert_eq!(w.response(slow), Some(&Err(Error::Timeout)));
    // A new request behind it; then the late reply and the new one arrive.
    w.send(&["ECHO", "mine"]);
    let mine = w.client.send(w.now, &["ECHO", "mine"]);
    w.run();
    w.deliver = true;
    w.run();
    assert_eq!(
        w.reply(mine),
        bulk("mine"),
        "the late reply of GET was not handed to ECHO"
    );
    assert_eq!(
        w.response(slow),
        Some(&Err(Error::Timeout)),
        "completed exactly once"
    );
    let socket = w.sockets()[0];
    assert_eq!(w.close_reason(socket), None, "the connection stays open");
    w.shutdown_and_check();
}

#[test]
fn a_connection_silent_after_a_timeout_is_closed_as_stalled() {
    let mut conn = config();
    conn.stall_timeout = Duration::from_secs(1);
    let mut cfg = ClientConfig::new(conn);
    cfg.response_timeout = Some(Duration::from_millis(100));
    let mut w = World::new(Client::new(cfg), Peer::plain);
    w.send(&["PING"]);
    w.deliver = false;
    let a = w.client.send(w.now, &["GET", "k"]);
    w.run();
    w.advance(Duration::from_millis(100));
    assert_eq!(w.response(a), Some(&Err(Error::Timeout)));
    let b = w.client.send(w.now, &["GET", "k"]);
    w.run();
    w.advance(Duration::from_millis(999));
    let socket = w.sockets()[0];
    assert_eq!(w.close_reason(socket), None);
    w.advance(Duration::from_millis(1));
    assert_eq!(w.close_reason(socket), Some(&CloseReason::Stalled));
    assert_eq!(
        w.response(b),
        Some(&Err(Error::Timeout)),
        "b timed out on its own first"
    );
    w.shutdown_and_check();
}

#[test]
fn a_cancelled_request_gets_no_event_and_its_reply_is_discarded() {
    let mut w = world(config(), Peer::plain);
    w.send(&["SET", "k", "v"]);
    w.deliver = false;
    let cancelled = w.client.send(w.now, &["GET", "k"]);
    let next = w.client.send(w.now, &["ECHO", "x"]);
    w.run();
    w.client.cancel(cancelled);
    w.deliver = true;
    w.run();
    assert_eq!(w.response(cancelled), None);
    assert_eq!(w.reply(next), bulk("x"));
    // Cancelling a request still queued for the handshake works too.
    w.shutdown_and_check();
}

#[test]
fn shutdown_fails_waiting_requests_and_later_ones() {
    let mut w = world(config(), Peer::plain);
    w.connect_mode = ConnectMode::Hang;
    let queued = w.send(&["PING"]);
    w.client.shutdown(w.now);
    w.run();
    assert_eq!(w.response(queued), Some(&Err(Error::Shutdown)));
    let after = w.send(&["PING"]);
    assert_eq!(w.response(after), Some(&Err(Error::Shutdown)));
    w.shutdown_and_check();
}

fn tls_config(pki: &Pki) -> TlsConfig {
    TlsConfig::builder()
        .add_root_pem(pki.ca_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap()
}

#[test]
fn tls_happy_path_resp3_and_resp2() {
    let pki = Pki::generate();
    for protocol in [Protocol::Resp3, Protocol::Resp2] {
        let mut conn = ConnConfig::new(Address::tcp("localhost", 6380));
        conn.protocol = protocol;
        conn.tls = Some(tls_config(&pki));
        let server = pki.server_config(false);
        let mut w = world(conn, move || Peer::tls(server.clone()));
        let set = w.send(&["SET", "k", "over tls"]);
        let get = w.send(&["GET", "k"]);
        assert_eq!(w.reply(set), Frame::Simple("OK".into()));
        assert_eq!(w.reply(get), bulk("over tls"));
        assert!(
            w.events
                .iter()
                .any(|e| matches!(e, Event::Connected { protocol: p, .. } if *p == protocol))
        );
        let socket = w.sockets()[0];
        w.shutdown_and_check();
        // A clean shutdown sends close_notify before the Close.
        let last_two: Vec<_> = w.effects.iter().rev().take(2).collect();
        assert!(
            matches!(last_two[0], Effect::Close { socket: s, reason: CloseReason::Shutdown } if *s == socket)
        );
        assert!(matches!(last_two[1], Effect::Send { socket: s, .. } if *s == socket));
    }
}

#[test]
fn tls_by_ip_address_and_mutual_tls() {
    let pki = Pki::generate();
    let mut conn = ConnConfig::new(Address::tcp("127.0.0.1", 6380));
    conn.tls = Some(
        TlsConfig::builder()
            .add_root_pem(pki.ca_pem.as_bytes())
            .unwrap()
            .client_auth_pem(
                pki.client_cert_pem.as_bytes(),
                pki.client_key_pem.as_bytes(),
            )
            .unwrap()
            .build()
            .unwrap(),
    );
    let server = pki.server_config(true);
    let mut w = world(conn, move || Peer::tls(server.clone()));
    let id = w.send(&["PING"]);
    assert_eq!(w.reply(id), Frame::Simple("PONG".into()));
    w.shutdown_and_check();
}

#[test]
fn tls_with_an_untrusted_certificate_fails_with_a_certificate_error() {
    let pki = Pki::generate();
    let other = Pki::generate();
    let mut conn = ConnConfig::new(Address::tcp("localhost", 6380));
    conn.tls = Some(tls_config(&other));
    let server = pki.server_config(false);
    let mut w = world(conn, move || Peer::tls(server.clone()));
    let id = w.send(&["PING"]);
    match w.response(id) {
        Some(Err(Error::Connection(CloseReason::Tls(e)))) => {
            assert_eq!(e.kind, TlsErrorKind::Certificate, "{e}")
        }
        other => panic!("{other:?}"),
    }
    w.shutdown_and_check();
}

#[test]
fn tls_wrong_name_fails_and_skip_verification_accepts_it() {
    let pki = Pki::generate();
    let make = |skip: bool| {
        let mut conn = ConnConfig::new(Address::tcp("localhost", 6380));
        let builder = TlsConfig::builder()
            .add_root_pem(pki.ca_pem.as_bytes())
            .unwrap()
            .server_name("not-the-server.example");
        let builder = if skip {
            builder.dangerous_skip_verification()
        } else {
            builder
        };
        conn.tls = Some(builder.build().unwrap());
        let server = pki.server_config(false);
        world(conn, move || Peer::tls(server.clone()))
    };
    let mut strict = make(false);
    let id = strict.send(&["PING"]);
    assert!(
        matches!(strict.response(id), Some(Err(Error::Connection(CloseReason::Tls(e)))) if e.kind == TlsErrorKind::Certificate)
    );
    strict.shutdown_and_check();
    let mut lax = make(true);
    let id = lax.send(&["PING"]);
    assert_eq!(lax.reply(id), Frame::Simple("PONG".into()));
    lax.shutdown_and_check();
}

#[test]
fn tls_server_close_notify_is_an_eof() {
    let pki = Pki::generate();
    let mut conn = ConnConfig::new(Address::tcp("localhost", 6380));
    conn.tls = Some(tls_config(&pki));
    let server = pki.server_config(false);
    let mut w = world(conn, move || {
        Peer::tls(server.clone())
            .with_handler(|cmd| (cmd[0].as_ref() == b"QUIT").then_some(Answer::Close))
    });
    w.send(&["PING"]);
    let quit = w.send(&["QUIT"]);
    let socket = w.sockets()[0];
    assert_eq!(w.close_reason(socket), Some(&CloseReason::Eof));
    assert_eq!(
        w.response(quit),
        Some(&Err(Error::Connection(CloseReason::Eof)))
    );
    w.shutdown_and_check();
}

#[test]
fn tls_garbage_instead_of_records_is_a_tls_error() {
    let pki = Pki::generate();
    let mut conn = ConnConfig::new(Address::tcp("localhost", 6380));
    conn.tls = Some(tls_config(&pki));
    let mut w = world(conn, Peer::mute);
    let id = w.send(&["PING"]);
    let socket = w.sockets()[0];
    w.client
        .handle_data(w.now, socket, b"+OK\r\n this is not TLS at all");
    w.run();
    assert!(
        matches!(
            w.response(id),
            Some(Err(Error::Connection(CloseReason::Tls(_))))
        ),
        "{:?}",
        w.response(id)
    );
    w.shutdown_and_check();
}

// ---- dedicated connections: blocking commands, leases, subscriptions -------

use redpoll_core::cmd;

/// A peer on which BLPOP blocks (answers nothing) and MULTI/EXEC/WATCH work.
fn blocking_peer() -> Peer {
    Peer::plain().with_handler(|c| match c[0].to_ascii_uppercase().as_slice() {
        b"BLPOP" => Some(Answer::Silence),
        b"WATCH" | b"MULTI" | b"UNWATCH" | b"DISCARD" => {
            Some(Answer::Reply(Frame::Simple("OK".into())))
        }
        b"EXEC" => Some(Answer::Reply(Frame::Array(vec![Frame::Simple(
            "OK".into(),
        )]))),
        _ => None,
    })
}

#[test]
fn a_blocking_command_gets_its_own_connection_and_its_block_time_on_top() {
    let mut cfg = ClientConfig::new(config());
    cfg.response_timeout = Some(Duration::from_millis(100));
    let mut w = World::new(Client::new(cfg), blocking_peer);
    w.send(&["PING"]);
    let blpop = w.client.send(w.now, &cmd::blpop(["queue"], 5.0));
    w.run();
    assert_eq!(w.sockets().len(), 2, "BLPOP went to a dedicated connection");
    let dedicated = w.sockets()[1];
    // The shared connection is not held up by the blocked one.
    let ping = w.send(&["PING"]);
    assert_eq!(w.reply(ping), Frame::Simple("PONG".into()));
    // 5 s of block time + 100 ms of response time.
    w.advance(Duration::from_millis(5_099));
    assert_eq!(w.response(blpop), None, "still within its block time");
    w.peers
        .get_mut(&dedicated)
        .unwrap()
        .answer(Answer::Reply(Frame::Array(vec![
            bulk("queue"),
            bulk("job"),
        ])));
    w.run();
    assert_eq!(
        w.reply(blpop),
        Frame::Array(vec![bulk("queue"), bulk("job")])
    );
    // The next blocking command reuses the connection, now idle.
    let again = w.client.send(w.now, &cmd::blpop(["queue"], 1.0));
    w.run();
    assert_eq!(w.sockets().len(), 2);
    w.advance(Duration::from_millis(1_100));
    assert_eq!(w.response(again), Some(&Err(Error::Timeout)));
    // Timed out on the client, still blocked on the server: not reused.
    let third = w.client.send(w.now, &cmd::blpop(["queue"], 1.0));
    w.run();
    assert_eq!(w.sockets().len(), 3, "a busy connection is never shared");
    assert_eq!(w.client.dedicated_connections(), 2);
    let _ = third;
    w.shutdown_and_check();
}

#[test]
fn a_lease_carries_a_transaction_and_is_reused_when_clean() {
    let mut w = world(config(), blocking_peer);
    let lease = w.client.lease(w.now).unwrap();
    let ids: Vec<_> = [
        w.client.send_leased(w.now, lease, &cmd::watch(["k"])),
        w.client.send_leased(w.now, lease, &cmd::multi()),
        w.client.send_leased(w.now, lease, &cmd::set("k", "v")),
        w.client.send_leased(w.now, lease, &cmd::exec()),
    ]
    .to_vec();
    w.run();
    assert!(ids.iter().all(|id| matches!(w.response(*id), Some(Ok(_)))));
    w.client.release(w.now, lease);
    w.run();
    let again = w.client.lease(w.now).unwrap();
    let ping = w.client.send_leased(w.now, again, &cmd::ping());
    w.run();
    assert_eq!(w.reply(ping), Frame::Simple("PONG".into()));
    assert_eq!(w.sockets().len(), 1, "the clean connection was reused");
    w.client.release(w.now, again);
    w.shutdown_and_check();
}

#[test]
fn a_lease_released_mid_transaction_is_closed_not_reused() {
    let mut w = world(config(), blocking_peer);
    let lease = w.client.lease(w.now).unwrap();
    w.client.send_leased(w.now, lease, &cmd::multi());
    w.run();
    w.client.release(w.now, lease);
    w.run();
    let first = w.sockets()[0];
    assert_eq!(w.close_reason(first), Some(&CloseReason::Unclean));
    let next = w.client.lease(w.now).unwrap();
    w.run();
    assert_eq!(
        w.sockets().len(),
        2,
        "a fresh connection for the next lease"
    );
    w.client.release(w.now, next);
    w.shutdown_and_check();
}

#[test]
fn a_lease_whose_connection_died_fails_every_later_send_with_the_reason() {
    let mut w = world(config(), blocking_peer);
    let lease = w.client.lease(w.now).unwrap();
    w.client.send_leased(w.now, lease, &cmd::watch(["k"]));
    w.run();
    let socket = w.sockets()[0];
    w.client.handle_eof(w.now, socket);
    w.run();
    let late = w.client.send_leased(w.now, lease, &cmd::multi());
    w.run();
    assert_eq!(
        w.response(late),
        Some(&Err(Error::Connection(CloseReason::Eof)))
    );
    w.client.release(w.now, lease);
    w.shutdown_and_check();
}

#[test]
fn the_pool_of_dedicated_connections_is_bounded() {
    let mut cfg = ClientConfig::new(config());
    cfg.pool.max_size = 2;
    cfg.pool.max_waiters = 0;
    let mut w = World::new(Client::new(cfg), blocking_peer);
    let a = w.client.send(w.now, &cmd::blpop(["q"], 0.0));
    let b = w.client.send(w.now, &cmd::blpop(["q"], 0.0));
    let c = w.client.send(w.now, &cmd::blpop(["q"], 0.0));
    w.run();
    assert_eq!(w.response(a), None);
    assert_eq!(w.response(b), None);
    assert_eq!(w.response(c), Some(&Err(Error::PoolExhausted)));
    assert_eq!(w.client.lease(w.now), Err(Error::PoolExhausted));
    w.shutdown_and_check();
}

/// A peer that confirms `SUBSCRIBE` with its RESP3 push, as a server does.
fn subscribing_peer() -> Peer {
    Peer::plain().with_handler(|c| {
        (c[0].as_ref() == b"SUBSCRIBE").then(|| {
            Answer::Reply(Frame::Push(vec![
                bulk("subscribe"),
                Frame::Bulk(c[1].clone()),
                Frame::Integer(1),
            ]))
        })
    })
}

#[test]
fn subscribe_is_answered_by_its_push_confirmation() {
    let mut w = world(config(), subscribing_peer);
    let sub = w.client.send(w.now, &cmd::subscribe(["news"]));
    let ping = w.client.send(w.now, &cmd::ping());
    w.run();
    assert!(matches!(w.response(sub), Some(Ok(Frame::Push(_)))));
    assert_eq!(w.reply(ping), Frame::Simple("PONG".into()));
    let socket = w.sockets()[0];
    w.peers
        .get_mut(&socket)
        .unwrap()
        .answer(Answer::Reply(Frame::Push(vec![
            bulk("message"),
            bulk("news"),
            bulk("hello"),
        ])));
    w.run();
    let pushes: Vec<_> = w
        .events
        .iter()
        .filter(|e| matches!(e, Event::Push { .. }))
        .collect();
    assert_eq!(pushes.len(), 1, "the message is a push event, not a reply");
    w.shutdown_and_check();
}

#[test]
fn a_cancelled_subscribe_swallows_its_confirmation_not_the_next_reply() {
    let mut w = world(config(), subscribing_peer);
    w.send(&["PING"]);
    w.deliver = false;
    let sub = w.client.send(w.now, &cmd::subscribe(["news"]));
    let ping = w.client.send(w.now, &cmd::ping());
    w.run();
    w.client.cancel(sub);
    w.deliver = true;
    w.run();
    assert_eq!(w.response(sub), None);
    assert_eq!(
        w.reply(ping),
        Frame::Simple("PONG".into()),
        "PING got its own reply"
    );
    w.shutdown_and_check();
}

#[test]
fn pub_sub_over_resp2_is_refused_not_desynchronised() {
    let mut conn = config();
    conn.protocol = Protocol::Resp2;
    let mut w = world(conn, Peer::plain);
    let sub = w.send(&["PING"]);
    let _ = sub;
    let refused = w.client.send(w.now, &cmd::subscribe(["news"]));
    w.run();
    assert!(matches!(
        w.response(refused),
        Some(Err(Error::Unsupported(_)))
    ));
    let ping = w.send(&["PING"]);
    assert_eq!(w.reply(ping), Frame::Simple("PONG".into()));
    w.shutdown_and_check();
}

#[test]
fn the_client_says_which_sockets_it_expects_bytes_on() {
    let mut w = world(config(), subscribing_peer);
    w.deliver = false;
    let get = w.client.send(w.now, &["GET", "k"]);
    w.run();
    let socket = w.sockets()[0];
    assert!(w.client.expects_data(socket), "the handshake is under way");
    w.deliver = true;
    w.run();
    assert_eq!(w.reply(get), Frame::Null);
    assert!(!w.client.expects_data(socket), "ready and quiet");

    // A request in flight, then cancelled: its reply must still be read.
    w.deliver = false;
    let get = w.client.send(w.now, &["GET", "k"]);
    w.run();
    assert!(w.client.expects_data(socket), "a request in flight");
    w.client.cancel(get);
    assert!(w.client.expects_data(socket), "a cancelled request's reply");
    w.deliver = true;
    w.run();
    assert!(!w.client.expects_data(socket), "the tombstone's reply came");

    // A dedicated connection, in use and then idle.
    let lease = w.client.lease(w.now).expect("a lease");
    w.run();
    w.deliver = false;
    let set = w.client.send_leased(w.now, lease, &["SET", "k", "v"]);
    w.run();
    let dedicated = *w.sockets().last().expect("a dedicated socket");
    assert_ne!(dedicated, socket);
    assert!(w.client.expects_data(dedicated));
    assert!(!w.client.expects_data(socket), "the shared one is quiet");
    w.deliver = true;
    w.run();
    assert_eq!(w.reply(set), Frame::Simple("OK".into()));
    w.client.release(w.now, lease);
    w.run();
    assert!(!w.client.expects_data(dedicated), "idle in the pool");

    // Subscriptions: pushes may come at any time.
    let sub = w.client.send(w.now, &cmd::subscribe(["news"]));
    w.run();
    assert!(matches!(w.response(sub), Some(Ok(Frame::Push(_)))));
    assert!(w.client.expects_data(socket), "subscribed");

    w.shutdown_and_check();
    assert!(!w.client.expects_data(socket), "closed");
    assert!(!w.client.expects_data(dedicated), "closed");
}
