//! A scripted server: decodes the commands a client writes (through an
//! in-memory rustls server connection for TLS) and answers them like a small
//! Redis, unless a test's handler answers first.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use redpoll_core::resp::{Decoder, Frame};

/// How the peer answers one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Reply with this frame.
    Reply(Frame),
    /// Send these bytes as they are (garbage, partial replies, ...).
    Raw(Vec<u8>),
    /// Say nothing.
    Silence,
    /// Close the connection (EOF) after anything queued before.
    Close,
}

/// A test's override: `Some(answer)` to answer a command itself, `None` for
/// the default behaviour.
pub type Handler = Box<dyn FnMut(&[Bytes]) -> Option<Answer>>;

/// One server-side connection.
pub struct Peer {
    decoder: Decoder,
    inbox: BytesMut,
    outbox: Vec<u8>,
    tls: Option<rustls::ServerConnection>,
    /// Every command received, in order.
    pub received: Vec<Vec<Bytes>>,
    /// The password the server requires (`requirepass`), if any.
    pub password: Option<String>,
    /// Whether `HELLO` is unknown (a Redis 5 server).
    pub no_hello: bool,
    /// The key space.
    pub data: HashMap<Bytes, Bytes>,
    /// The test's override.
    pub handler: Option<Handler>,
    /// Set once the peer decided to close.
    pub closed: bool,
    /// Reads whatever arrives, understands none of it, answers nothing (a
    /// listener that accepts TCP and never speaks).
    pub mute: bool,
    authenticated: bool,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("received", &self.received.len())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

fn simple(s: &'static str) -> Frame {
    Frame::Simple(Bytes::from_static(s.as_bytes()))
}

fn error(s: impl Into<String>) -> Frame {
    Frame::Error(Bytes::from(s.into()))
}

fn bulk(s: impl Into<Bytes>) -> Frame {
    Frame::Bulk(s.into())
}

impl Peer {
    /// A plain-text peer.
    #[must_use]
    pub fn plain() -> Self {
        Self {
            decoder: Decoder::new(),
            inbox: BytesMut::new(),
            outbox: Vec::new(),
            tls: None,
            received: Vec::new(),
            password: None,
            no_hello: false,
            data: HashMap::new(),
            handler: None,
            closed: false,
            mute: false,
            authenticated: false,
        }
    }

    /// A peer behind an in-memory rustls server connection.
    #[must_use]
    pub fn tls(config: Arc<rustls::ServerConfig>) -> Self {
        let mut peer = Self::plain();
        peer.tls = Some(rustls::ServerConnection::new(config).expect("server connection"));
        peer
    }

    /// A peer that accepts and never says a word, TLS or RESP.
    #[must_use]
    pub fn mute() -> Self {
        let mut peer = Self::plain();
        peer.mute = true;
        peer
    }

    /// With a handler answering first.
    #[must_use]
    pub fn with_handler(
        mut self,
        handler: impl FnMut(&[Bytes]) -> Option<Answer> + 'static,
    ) -> Self {
        self.handler = Some(Box::new(handler));
        self
    }

    /// Takes bytes the client wrote; answers every complete command.
    ///
    /// # Errors
    ///
    /// When the client's bytes are not valid TLS or RESP: a client bug.
    pub fn receive(&mut self, mut wire: &[u8]) -> Result<(), String> {
        if self.closed || self.mute {
            return Ok(());
        }
        if let Some(tls) = &mut self.tls {
            while !wire.is_empty() {
                tls.read_tls(&mut wire).map_err(|e| e.to_string())?;
                let state = tls
                    .process_new_packets()
                    .map_err(|e| format!("server TLS: {e}"))?;
                let n = state.plaintext_bytes_to_read();
                let mut plain = vec![0; n];
                tls.reader()
                    .read_exact(&mut plain)
                    .map_err(|e| e.to_string())?;
                self.inbox.extend_from_slice(&plain);
            }
            self.flush_tls();
        } else {
            self.inbox.extend_from_slice(wire);
        }
        loop {
            let frame = match self.decoder.decode(&mut self.inbox) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("client sent invalid RESP: {e}")),
            };
            let Frame::Array(items) = frame else {
                return Err(format!("client sent a non-command frame {frame:?}"));
            };
            let args: Vec<Bytes> = items
                .into_iter()
                .map(|f| match f {
                    Frame::Bulk(b) => Ok(b),
                    other => Err(format!("command argument {other:?} is no bulk string")),
                })
                .collect::<Result<_, _>>()?;
            self.received.push(args.clone());
            let answer = match &mut self.handler {
                Some(handler) => handler(&args),
                None => None,
            };
            let answer = answer.unwrap_or_else(|| Answer::Reply(self.respond(&args)));
            self.answer(answer);
            if self.closed {
                return Ok(());
            }
        }
    }

    /// Sends an answer now (also usable unprompted, e.g. a push frame).
    pub fn answer(&mut self, answer: Answer) {
        match answer {
            Answer::Reply(frame) => {
                let mut buf = BytesMut::new();
                frame.encode(&mut buf);
                self.write_plain(&buf);
            }
            Answer::Raw(bytes) => self.write_plain(&bytes),
            Answer::Silence => {}
            Answer::Close => {
                if let Some(tls) = &mut self.tls {
                    tls.send_close_notify();
                }
                self.flush_tls();
                self.closed = true;
            }
        }
    }

    /// Sends a TLS 1.3 `KeyUpdate`: a record with no application data, as
    /// a server may send on an idle connection (plain peers: nothing).
    ///
    /// # Panics
    ///
    /// When rustls refuses (the handshake is not done).
    pub fn key_update(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.refresh_traffic_keys().expect("key update");
        }
        self.flush_tls();
    }

    fn write_plain(&mut self, bytes: &[u8]) {
        match &mut self.tls {
            Some(tls) => {
                tls.writer().write_all(bytes).expect("buffered");
                self.flush_tls();
            }
            None => self.outbox.extend_from_slice(bytes),
        }
    }

    fn flush_tls(&mut self) {
        if let Some(tls) = &mut self.tls {
            while tls.wants_write() {
                tls.write_tls(&mut self.outbox).expect("vec write");
            }
        }
    }

    /// Bytes to deliver to the client.
    pub fn take_outbox(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbox)
    }

    /// Whether the TLS handshake is done (always true for plain peers).
    #[must_use]
    pub fn tls_ready(&self) -> bool {
        self.tls.as_ref().is_none_or(|t| !t.is_handshaking())
    }

    /// The default behaviour: a small Redis.
    pub fn respond(&mut self, args: &[Bytes]) -> Frame {
        let name = args[0].to_ascii_uppercase();
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        let needs_auth = self.password.is_some() && !self.authenticated;
        match name.as_slice() {
            b"HELLO" if self.no_hello => {
                error("ERR unknown command 'HELLO', with args beginning with: '3' ")
            }
            b"HELLO" => {
                if let Some(i) = args.iter().position(|a| a.eq_ignore_ascii_case(b"AUTH")) {
                    if Some(arg(i + 2)) != self.password.as_ref().map(|p| Bytes::from(p.clone())) {
                        return error(
                            "WRONGPASS invalid username-password pair or user is disabled.",
                        );
                    }
                    self.authenticated = true;
                } else if needs_auth {
                    return error(
                        "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
                    );
                }
                Frame::Map(vec![
                    (bulk("server"), bulk("redis")),
                    (bulk("version"), bulk("7.0.15")),
                    (bulk("proto"), Frame::Integer(3)),
                    (bulk("id"), Frame::Integer(7)),
                    (bulk("mode"), bulk("standalone")),
                    (bulk("role"), bulk("master")),
                    (bulk("modules"), Frame::Array(vec![])),
                ])
            }
            b"AUTH" => {
                let given = arg(args.len() - 1);
                match &self.password {
                    None => error(
                        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                    ),
                    Some(p) if p.as_bytes() == given.as_ref() => {
                        self.authenticated = true;
                        simple("OK")
                    }
                    Some(_) => {
                        error("WRONGPASS invalid username-password pair or user is disabled.")
                    }
                }
            }
            _ if needs_auth => error("NOAUTH Authentication required."),
            b"CLIENT" | b"SELECT" => simple("OK"),
            b"PING" => simple("PONG"),
            b"ECHO" => bulk(arg(1)),
            b"GET" => self
                .data
                .get(&arg(1))
                .cloned()
                .map_or(Frame::Null, Frame::Bulk),
            b"SET" => {
                self.data.insert(arg(1), arg(2));
                simple("OK")
            }
            b"DEL" => Frame::Integer(i64::from(self.data.remove(&arg(1)).is_some())),
            _ => error(format!(
                "ERR unknown command '{}', with args beginning with: ",
                String::from_utf8_lossy(&args[0])
            )),
        }
    }
}
