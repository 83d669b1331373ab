//! The loop shared by the machine benchmark and its callgrind count: a
//! client with one ready connection, 16 GETs in flight per round.

use redpoll_core::conn::ConnConfig;
use redpoll_core::resp::Frame;
use redpoll_core::{Address, Client, ClientConfig, Effect, Event, Instant, SocketId};

/// Requests in flight per round.
pub(crate) const DEPTH: usize = 16;

/// A client whose connection finished its handshake, and the bytes of 16
/// replies (bulk strings of 32 bytes, a typical small GET).
pub(crate) struct Bench {
    client: Client,
    socket: SocketId,
    replies: Vec<u8>,
    now: Instant,
}

impl Bench {
    /// Connects the client through a scripted handshake.
    pub(crate) fn new() -> Self {
        let mut conn = ConnConfig::new(Address::tcp("127.0.0.1", 6379));
        conn.set_info = false;
        let mut client = Client::new(ClientConfig::new(conn));
        let now = Instant::from_nanos(1);
        client.send(now, &["PING"]);
        let socket = match client.poll_effect() {
            Some(Effect::Connect { socket, .. }) => socket,
            other => panic!("expected Connect, got {other:?}"),
        };
        client.handle_connected(now, socket);
        while client.poll_effect().is_some() {}
        client.handle_data(now, socket, b"%1\r\n$5\r\nproto\r\n:3\r\n");
        while client.poll_effect().is_some() {}
        client.handle_data(now, socket, b"+PONG\r\n");
        let mut connected = false;
        while let Some(event) = client.poll_event() {
            connected |= matches!(event, Event::Connected { .. });
        }
        assert!(connected, "handshake done");
        let mut replies = Vec::new();
        for _ in 0..DEPTH {
            replies.extend_from_slice(b"$32\r\n0123456789abcdef0123456789abcdef\r\n");
        }
        Self {
            client,
            socket,
            replies,
            now,
        }
    }

    /// One round: 16 GETs out, 16 replies in. Returns the bytes written and
    /// the replies received, so nothing is optimised away.
    #[inline(never)]
    pub(crate) fn round(&mut self) -> (usize, usize) {
        for _ in 0..DEPTH {
            let _ = self.client.send(self.now, &["GET", "key:000000001"]);
        }
        let mut written = 0;
        while let Some(effect) = self.client.poll_effect() {
            match effect {
                Effect::Send { data, .. } => written += data.len(),
                // The first GET of a round finds the connection quiet: it is
                // probed (an adapter answers with one non-blocking read).
                Effect::Probe { socket } => self.client.handle_probe_done(self.now, socket),
                _ => {}
            }
        }
        self.client
            .handle_data(self.now, self.socket, &self.replies);
        let mut replies = 0;
        while let Some(event) = self.client.poll_event() {
            if let Event::Response {
                result: Ok(Frame::Bulk(data)),
                ..
            } = event
            {
                replies += data.len();
            }
        }
        assert_eq!(replies, DEPTH * 32);
        (written, replies)
    }
}
