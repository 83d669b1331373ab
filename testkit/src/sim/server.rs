//! The simulated standalone server, built from the project's own codec.
//!
//! It speaks RESP2 and RESP3 (`HELLO`, or a server without it), optionally
//! behind a real in-memory rustls server connection, and keeps an
//! in-memory key space with strings, counters and lists per database:
//! `GET SET DEL INCR MGET EXISTS PING ECHO`, `HELLO AUTH SELECT CLIENT`,
//! `MULTI EXEC DISCARD WATCH UNWATCH`, `SUBSCRIBE UNSUBSCRIBE PUBLISH`
//! (RESP3 pushes), `RPUSH BLPOP` (with blocking and its timeout).
//!
//! The lasting faults reach it as [`Conditions`]: `LOADING` (for data
//! commands, or for the handshake too), protected mode (`DENIED` on
//! accept, then close, as redis-server 7 does), a changed password
//! (`WRONGPASS`, `NOAUTH`). Restarts reset every connection and keep or
//! lose the key space.
//!
//! Like redis-server's `timeout`, it closes a connection that sent nothing
//! for [`ServerParams::idle_timeout`] ([`ServerAction::CloseIdle`]), unless
//! it is blocked or subscribed: the stale connections a pool must find out
//! before it hands them out (invariant I2).
//!
//! A cluster of simulated nodes is a new [`Backend`]: one of these per
//! node, plus slot ownership and redirections.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use redpoll_core::resp::{Decoder, Frame};
use redpoll_core::{Address, Duration, Instant, SocketId};

use super::fault::Conditions;
use super::rng::Rng;

/// What a server does to a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAction {
    /// Write these (already encrypted) bytes.
    Write(Bytes),
    /// Close the connection (FIN after what was written).
    Close,
    /// Close the connection because it sent nothing for the idle timeout
    /// (FIN after what was written): every command it sent was answered.
    CloseIdle,
}

/// The actions of a server call, for the network to carry out.
pub type ServerOut = Vec<(SocketId, ServerAction)>;

/// The simulated servers behind the addresses the client connects to.
/// The standalone server is one; a cluster of nodes will be another.
pub trait Backend {
    /// Whether a server listens at `address`.
    fn listens(&self, address: &Address) -> bool;
    /// The lasting faults in effect from now on.
    fn set_conditions(&mut self, cond: Conditions);
    /// A connection to `address` was accepted on `socket`.
    fn accept(&mut self, socket: SocketId, address: &Address, now: Instant, out: &mut ServerOut);
    /// Bytes from the client.
    ///
    /// # Errors
    ///
    /// When the client's bytes are not valid TLS or RESP commands (a
    /// client bug).
    fn data(
        &mut self,
        socket: SocketId,
        data: &[u8],
        now: Instant,
        out: &mut ServerOut,
    ) -> Result<(), String>;
    /// The connection is gone (client FIN, or reset).
    fn closed(&mut self, socket: SocketId);
    /// The next deadline of the server (blocked commands), if any.
    fn next_timer(&self) -> Option<Instant>;
    /// The time is `now`.
    ///
    /// # Errors
    ///
    /// As [`Backend::data`], for commands that waited behind a blocked one.
    fn on_timer(&mut self, now: Instant, out: &mut ServerOut) -> Result<(), String>;
    /// Writes bytes that are not RESP on the connection of `socket`.
    fn garbage(&mut self, socket: SocketId, out: &mut ServerOut);
    /// Loses every key (a restart without persistence).
    fn lose_data(&mut self);
}

/// How the server is set up for a run.
#[derive(Debug, Clone)]
pub struct ServerParams {
    /// TLS on every connection.
    pub tls: bool,
    /// `requirepass`, when set.
    pub password: Option<String>,
    /// A Redis 5: `HELLO` is unknown.
    pub no_hello: bool,
    /// Chance (percent) of an unsolicited RESP3 push after a reply.
    pub push_percent: u64,
    /// redis-server's `timeout`: a connection that sent nothing for this
    /// long is closed (blocked and subscribed ones excepted).
    pub idle_timeout: Option<Duration>,
}

/// The password the server switches to under a wrong-password fault.
const ROTATED: &str = "rotated-by-the-fault";
const DENIED: &str = crate::fake::DENIED;

#[derive(Debug, Clone)]
enum Value {
    Str(Bytes),
    List(VecDeque<Bytes>),
}

type Key = (u32, Bytes);

#[derive(Debug)]
struct Blocked {
    socket: SocketId,
    keys: Vec<Key>,
    deadline: Option<Instant>,
}

struct SConn {
    tls: Option<rustls::ServerConnection>,
    decoder: Decoder,
    inbox: BytesMut,
    resp3: bool,
    authed: bool,
    db: u32,
    multi: Option<Vec<Vec<Bytes>>>,
    multi_failed: bool,
    watched: Vec<(Key, u64)>,
    subs: BTreeSet<Bytes>,
    blocked: bool,
    /// Protected mode: write `DENIED` once TLS is up, then close.
    deny: bool,
    closing: bool,
    /// When it last sent something or was unblocked (the idle timeout).
    last_active: Instant,
}

/// The standalone server.
pub struct StandaloneServer {
    params: ServerParams,
    tls: Option<Arc<rustls::ServerConfig>>,
    cond: Conditions,
    data: BTreeMap<Key, Value>,
    versions: BTreeMap<Key, u64>,
    /// Bumped when the key space is lost: every watch is then dirty.
    generation: u64,
    conns: BTreeMap<SocketId, SConn>,
    blocked: Vec<Blocked>,
    /// Connections unblocked, whose buffered commands must run.
    woken: Vec<SocketId>,
    rng: Rng,
    /// Commands executed (statistics).
    pub commands: u64,
}

impl std::fmt::Debug for StandaloneServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandaloneServer")
            .field("conns", &self.conns.len())
            .field("keys", &self.data.len())
            .finish_non_exhaustive()
    }
}

fn simple(s: &str) -> Frame {
    Frame::Simple(Bytes::copy_from_slice(s.as_bytes()))
}

fn err(s: &str) -> Frame {
    Frame::Error(Bytes::copy_from_slice(s.as_bytes()))
}

fn bulk(b: impl Into<Bytes>) -> Frame {
    Frame::Bulk(b.into())
}

/// The frame as a connection of this protocol receives it.
fn for_protocol(frame: Frame, resp3: bool) -> Frame {
    match frame {
        Frame::Null | Frame::NullBulk | Frame::NullArray if resp3 => Frame::Null,
        Frame::Null if !resp3 => Frame::NullBulk,
        Frame::Map(pairs) if !resp3 => Frame::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [for_protocol(k, false), for_protocol(v, false)])
                .collect(),
        ),
        Frame::Push(items) | Frame::Array(items) if !resp3 => {
            Frame::Array(items.into_iter().map(|i| for_protocol(i, false)).collect())
        }
        Frame::Array(items) => {
            Frame::Array(items.into_iter().map(|i| for_protocol(i, resp3)).collect())
        }
        other => other,
    }
}

const LOADING: &str = "LOADING Redis is loading the dataset in memory";
const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

impl SConn {
    /// Writes plaintext to the client (through TLS when on).
    fn write(&mut self, socket: SocketId, plain: &[u8], out: &mut ServerOut) {
        match &mut self.tls {
            Some(tls) => {
                tls.writer().write_all(plain).expect("buffered");
                flush_tls(tls, socket, out);
            }
            None => out.push((socket, ServerAction::Write(Bytes::copy_from_slice(plain)))),
        }
    }

    fn reply(&mut self, socket: SocketId, frame: Frame, out: &mut ServerOut) {
        let mut buf = BytesMut::new();
        for_protocol(frame, self.resp3).encode(&mut buf);
        self.write(socket, &buf, out);
    }
}

fn flush_tls(tls: &mut rustls::ServerConnection, socket: SocketId, out: &mut ServerOut) {
    let mut wire = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut wire).expect("vec write");
    }
    if !wire.is_empty() {
        out.push((socket, ServerAction::Write(Bytes::from(wire))));
    }
}

impl StandaloneServer {
    /// A server set up by `params`, drawing its pushes from `rng`.
    #[must_use]
    pub fn new(params: ServerParams, rng: Rng) -> Self {
        Self {
            tls: params.tls.then(super::tls::server_config),
            params,
            cond: Conditions::default(),
            data: BTreeMap::new(),
            versions: BTreeMap::new(),
            generation: 0,
            conns: BTreeMap::new(),
            blocked: Vec::new(),
            woken: Vec::new(),
            rng,
            commands: 0,
        }
    }

    /// The password the server requires now.
    fn password(&self) -> Option<&str> {
        if self.cond.wrong_password {
            Some(ROTATED)
        } else {
            self.params.password.as_deref()
        }
    }

    fn version(&self, key: &Key) -> u64 {
        self.versions.get(key).copied().unwrap_or(0) + (self.generation << 40)
    }

    fn touch(&mut self, key: &Key) {
        *self.versions.entry(key.clone()).or_default() += 1;
    }

    /// Runs what the connection has buffered, and what unblocked
    /// connections have.
    fn pump(&mut self, socket: SocketId, now: Instant, out: &mut ServerOut) -> Result<(), String> {
        let mut todo = vec![socket];
        while let Some(socket) = todo.pop() {
            self.run_conn(socket, now, out)?;
            todo.append(&mut self.woken);
        }
        Ok(())
    }

    fn run_conn(
        &mut self,
        socket: SocketId,
        now: Instant,
        out: &mut ServerOut,
    ) -> Result<(), String> {
        let Some(mut conn) = self.conns.remove(&socket) else {
            return Ok(());
        };
        conn.last_active = now;
        let result = loop {
            if conn.blocked || conn.closing {
                break Ok(());
            }
            let frame = match conn.decoder.decode(&mut conn.inbox) {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(()),
                Err(e) => break Err(format!("the client sent invalid RESP: {e}")),
            };
            let Frame::Array(items) = frame else {
                break Err(format!("the client sent a non-command frame {frame:?}"));
            };
            let args: Result<Vec<Bytes>, String> = items
                .into_iter()
                .map(|f| match f {
                    Frame::Bulk(b) => Ok(b),
                    other => Err(format!("command argument {other:?} is not a bulk string")),
                })
                .collect();
            let args = match args {
                Ok(args) if !args.is_empty() => args,
                Ok(_) => break Err("the client sent an empty command".to_owned()),
                Err(e) => break Err(e),
            };
            self.commands += 1;
            self.command(&mut conn, socket, &args, now, out);
            if conn.resp3
                && conn.authed
                && !conn.blocked
                && self.rng.chance(self.params.push_percent)
            {
                let push = Frame::Push(vec![bulk("invalidate"), Frame::Array(vec![bulk("k0")])]);
                conn.reply(socket, push, out);
            }
        };
        self.conns.insert(socket, conn);
        result
    }

    fn command(
        &mut self,
        conn: &mut SConn,
        socket: SocketId,
        args: &[Bytes],
        now: Instant,
        out: &mut ServerOut,
    ) {
        let name = args[0].to_ascii_uppercase();
        let name = name.as_slice();
        let handshake = matches!(name, b"HELLO" | b"AUTH");
        // As a real server: `MULTI`, `EXEC` and `DISCARD` carry the
        // `loading` flag (allowed while loading), so a transaction always
        // ends; refusing `EXEC` would leave the connection inside `MULTI`,
        // its next commands answered `QUEUED` (seed 8673).
        if self.cond.loading == Some(true)
            && !matches!(name, b"QUIT" | b"MULTI" | b"EXEC" | b"DISCARD")
        {
            if conn.multi.is_some() {
                conn.multi_failed = true;
            }
            return conn.reply(socket, err(LOADING), out);
        }
        if handshake {
            return self.auth_command(conn, socket, args, out);
        }
        if self.password().is_some() && !conn.authed {
            return conn.reply(socket, err(NOAUTH), out);
        }
        let data_command = !matches!(
            name,
            b"CLIENT"
                | b"SELECT"
                | b"MULTI"
                | b"DISCARD"
                | b"UNWATCH"
                | b"SUBSCRIBE"
                | b"UNSUBSCRIBE"
                | b"PUBLISH"
                | b"EXEC"
        );
        if self.cond.loading.is_some() && data_command {
            if conn.multi.is_some() {
                conn.multi_failed = true;
            }
            return conn.reply(socket, err(LOADING), out);
        }
        match name {
            b"MULTI" => {
                let reply = if conn.multi.is_some() {
                    err("ERR MULTI calls can not be nested")
                } else {
                    conn.multi = Some(Vec::new());
                    conn.multi_failed = false;
                    simple("OK")
                };
                return conn.reply(socket, reply, out);
            }
            b"EXEC" => {
                let Some(queued) = conn.multi.take() else {
                    return conn.reply(socket, err("ERR EXEC without MULTI"), out);
                };
                let watched = std::mem::take(&mut conn.watched);
                if std::mem::take(&mut conn.multi_failed) {
                    let e = err("EXECABORT Transaction discarded because of previous errors.");
                    return conn.reply(socket, e, out);
                }
                if watched.iter().any(|(key, v)| self.version(key) != *v) {
                    return conn.reply(socket, Frame::NullArray, out);
                }
                let replies = queued
                    .iter()
                    .map(|args| self.execute(conn, socket, args, now, true, out))
                    .collect::<Vec<_>>();
                let replies = replies
                    .into_iter()
                    .map(|r| r.unwrap_or(Frame::Null))
                    .collect();
                return conn.reply(socket, Frame::Array(replies), out);
            }
            b"DISCARD" => {
                let reply = if conn.multi.take().is_some() {
                    conn.watched.clear();
                    conn.multi_failed = false;
                    simple("OK")
                } else {
                    err("ERR DISCARD without MULTI")
                };
                return conn.reply(socket, reply, out);
            }
            b"WATCH" if conn.multi.is_some() => {
                return conn.reply(socket, err("ERR WATCH inside MULTI is not allowed"), out);
            }
            _ => {}
        }
        if let Some(queued) = &mut conn.multi {
            if !known(name) {
                conn.multi_failed = true;
                return conn.reply(socket, unknown(&args[0]), out);
            }
            queued.push(args.to_vec());
            return conn.reply(socket, simple("QUEUED"), out);
        }
        if let Some(reply) = self.execute(conn, socket, args, now, false, out) {
            conn.reply(socket, reply, out);
        }
    }

    /// `HELLO` and `AUTH`.
    fn auth_command(
        &mut self,
        conn: &mut SConn,
        socket: SocketId,
        args: &[Bytes],
        out: &mut ServerOut,
    ) {
        let name = args[0].to_ascii_uppercase();
        let password = self.password().map(str::to_owned);
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        if name == b"AUTH" {
            let reply = match &password {
                None => err(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ),
                Some(p) if p.as_bytes() == arg(args.len() - 1).as_ref() => {
                    conn.authed = true;
                    simple("OK")
                }
                Some(_) => err(WRONGPASS),
            };
            return conn.reply(socket, reply, out);
        }
        if self.params.no_hello {
            let e = err("ERR unknown command 'HELLO', with args beginning with: '3' ");
            return conn.reply(socket, e, out);
        }
        let version = match args.get(1).map(|v| v.as_ref()) {
            None => i64::from(if conn.resp3 { 3 } else { 2 }),
            Some(b"2") => 2,
            Some(b"3") => 3,
            Some(_) => {
                let e = err("NOPROTO unsupported protocol version");
                return conn.reply(socket, e, out);
            }
        };
        if let Some(i) = args.iter().position(|a| a.eq_ignore_ascii_case(b"AUTH")) {
            match &password {
                Some(p) if p.as_bytes() != arg(i + 2).as_ref() => {
                    return conn.reply(socket, err(WRONGPASS), out);
                }
                _ => conn.authed = true,
            }
        } else if password.is_some() && !conn.authed {
            let e = err(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
            return conn.reply(socket, e, out);
        }
        if password.is_none() {
            conn.authed = true;
        }
        conn.resp3 = version == 3;
        let hello = Frame::Map(vec![
            (bulk("server"), bulk("redis")),
            (bulk("version"), bulk("7.2.4")),
            (bulk("proto"), Frame::Integer(version)),
            (
                bulk("id"),
                Frame::Integer(i64::try_from(socket.get()).unwrap_or(0)),
            ),
            (bulk("mode"), bulk("standalone")),
            (bulk("role"), bulk("master")),
            (bulk("modules"), Frame::Array(vec![])),
        ]);
        conn.reply(socket, hello, out);
    }

    /// Runs one command; `None` when the reply comes later (a blocked
    /// `BLPOP`).
    fn execute(
        &mut self,
        conn: &mut SConn,
        socket: SocketId,
        args: &[Bytes],
        now: Instant,
        in_exec: bool,
        out: &mut ServerOut,
    ) -> Option<Frame> {
        let name = args[0].to_ascii_uppercase();
        let db = conn.db;
        let key = |i: usize| -> Key { (db, args.get(i).cloned().unwrap_or_default()) };
        let wrongtype = || err("WRONGTYPE Operation against a key holding the wrong kind of value");
        let arity = |n: usize| args.len() >= n;
        if !arity(min_arity(&name)) {
            return Some(err(&format!(
                "ERR wrong number of arguments for '{}' command",
                String::from_utf8_lossy(&args[0]).to_lowercase()
            )));
        }
        Some(match name.as_slice() {
            b"UNWATCH" => {
                conn.watched.clear();
                simple("OK")
            }
            b"CLIENT" => simple("OK"),
            b"SELECT" => match std::str::from_utf8(&args[1])
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
            {
                Some(n) if n < 16 => {
                    conn.db = n;
                    simple("OK")
                }
                _ => err("ERR DB index is out of range"),
            },
            b"PING" => match args.get(1) {
                Some(msg) => bulk(msg.clone()),
                None => simple("PONG"),
            },
            b"ECHO" => bulk(args[1].clone()),
            b"GET" => match self.data.get(&key(1)) {
                None => Frame::Null,
                Some(Value::Str(v)) => bulk(v.clone()),
                Some(Value::List(_)) => wrongtype(),
            },
            b"SET" => {
                let k = key(1);
                self.data.insert(k.clone(), Value::Str(args[2].clone()));
                self.touch(&k);
                simple("OK")
            }
            b"DEL" => {
                let mut n = 0;
                for i in 1..args.len() {
                    let k = key(i);
                    if self.data.remove(&k).is_some() {
                        self.touch(&k);
                        n += 1;
                    }
                }
                Frame::Integer(n)
            }
            b"EXISTS" => {
                let n = (1..args.len())
                    .filter(|&i| self.data.contains_key(&key(i)))
                    .count();
                Frame::Integer(n as i64)
            }
            b"MGET" => Frame::Array(
                (1..args.len())
                    .map(|i| match self.data.get(&key(i)) {
                        Some(Value::Str(v)) => bulk(v.clone()),
                        _ => Frame::Null,
                    })
                    .collect(),
            ),
            b"INCR" => {
                let k = key(1);
                let current = match self.data.get(&k) {
                    None => 0,
                    Some(Value::Str(v)) => match std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        Some(n) => n,
                        None => return Some(err("ERR value is not an integer or out of range")),
                    },
                    Some(Value::List(_)) => return Some(wrongtype()),
                };
                let n = current + 1;
                self.data
                    .insert(k.clone(), Value::Str(Bytes::from(n.to_string())));
                self.touch(&k);
                Frame::Integer(n)
            }
            b"RPUSH" => {
                let k = key(1);
                let list = match self
                    .data
                    .entry(k.clone())
                    .or_insert_with(|| Value::List(VecDeque::new()))
                {
                    Value::List(list) => list,
                    Value::Str(_) => return Some(wrongtype()),
                };
                list.extend(args[2..].iter().cloned());
                let len = list.len() as i64;
                self.touch(&k);
                self.serve_blocked(&k, out);
                Frame::Integer(len)
            }
            b"BLPOP" => {
                let keys: Vec<Key> = (1..args.len() - 1).map(key).collect();
                for k in &keys {
                    if let Some(item) = self.pop(k) {
                        return Some(Frame::Array(vec![bulk(k.1.clone()), bulk(item)]));
                    }
                }
                if in_exec {
                    return Some(Frame::NullArray);
                }
                let secs: f64 = std::str::from_utf8(&args[args.len() - 1])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0.0);
                let deadline = (secs > 0.0).then(|| now + Duration::from_secs_f64(secs));
                conn.blocked = true;
                self.blocked.push(Blocked {
                    socket,
                    keys,
                    deadline,
                });
                return None;
            }
            b"WATCH" => {
                for i in 1..args.len() {
                    let k = key(i);
                    let v = self.version(&k);
                    conn.watched.push((k, v));
                }
                simple("OK")
            }
            b"SUBSCRIBE" => {
                for channel in &args[1..] {
                    conn.subs.insert(channel.clone());
                    let push = Frame::Push(vec![
                        bulk("subscribe"),
                        bulk(channel.clone()),
                        Frame::Integer(conn.subs.len() as i64),
                    ]);
                    conn.reply(socket, push, out);
                }
                return None;
            }
            b"UNSUBSCRIBE" => {
                let channels: Vec<Bytes> = if args.len() > 1 {
                    args[1..].to_vec()
                } else {
                    conn.subs.iter().cloned().collect()
                };
                if channels.is_empty() {
                    let push =
                        Frame::Push(vec![bulk("unsubscribe"), Frame::Null, Frame::Integer(0)]);
                    conn.reply(socket, push, out);
                }
                for channel in channels {
                    conn.subs.remove(&channel);
                    let push = Frame::Push(vec![
                        bulk("unsubscribe"),
                        bulk(channel),
                        Frame::Integer(conn.subs.len() as i64),
                    ]);
                    conn.reply(socket, push, out);
                }
                return None;
            }
            b"PUBLISH" => {
                let (channel, message) = (&args[1], &args[2]);
                let push = Frame::Push(vec![
                    bulk("message"),
                    bulk(channel.clone()),
                    bulk(message.clone()),
                ]);
                let mut n = 0;
                if conn.subs.contains(channel) {
                    conn.reply(socket, push.clone(), out);
                    n += 1;
                }
                for (s, other) in &mut self.conns {
                    if other.subs.contains(channel) && !other.closing {
                        other.reply(*s, push.clone(), out);
                        n += 1;
                    }
                }
                Frame::Integer(n)
            }
            _ => unknown(&args[0]),
        })
    }

    fn pop(&mut self, key: &Key) -> Option<Bytes> {
        let Some(Value::List(list)) = self.data.get_mut(key) else {
            return None;
        };
        let item = list.pop_front()?;
        if list.is_empty() {
            self.data.remove(key);
        }
        self.touch(key);
        Some(item)
    }

    /// Hands elements pushed to `key` to the connections blocked on it, in
    /// the order they blocked.
    fn serve_blocked(&mut self, key: &Key, out: &mut ServerOut) {
        let mut i = 0;
        while i < self.blocked.len() {
            if !self.blocked[i].keys.contains(key) {
                i += 1;
                continue;
            }
            let Some(item) = self.pop(key) else {
                return;
            };
            let b = self.blocked.remove(i);
            if let Some(conn) = self.conns.get_mut(&b.socket) {
                conn.blocked = false;
                conn.reply(
                    b.socket,
                    Frame::Array(vec![bulk(key.1.clone()), bulk(item)]),
                    out,
                );
                self.woken.push(b.socket);
            }
        }
    }

    /// When each connection the idle timeout applies to is closed.
    fn idle_deadlines(&self) -> impl Iterator<Item = (Instant, SocketId)> + '_ {
        let timeout = self.params.idle_timeout;
        self.conns.iter().filter_map(move |(socket, c)| {
            let eligible = !c.blocked && !c.closing && c.subs.is_empty();
            timeout
                .filter(|_| eligible)
                .map(|t| (c.last_active + t, *socket))
        })
    }

    fn deny(conn: &mut SConn, socket: SocketId, out: &mut ServerOut) {
        conn.write(socket, DENIED.as_bytes(), out);
        if let Some(tls) = &mut conn.tls {
            tls.send_close_notify();
            flush_tls(tls, socket, out);
        }
        conn.closing = true;
        out.push((socket, ServerAction::Close));
    }
}

fn known(name: &[u8]) -> bool {
    matches!(
        name,
        b"CLIENT"
            | b"SELECT"
            | b"PING"
            | b"ECHO"
            | b"GET"
            | b"SET"
            | b"DEL"
            | b"EXISTS"
            | b"MGET"
            | b"INCR"
            | b"RPUSH"
            | b"BLPOP"
            | b"WATCH"
            | b"UNWATCH"
            | b"SUBSCRIBE"
            | b"UNSUBSCRIBE"
            | b"PUBLISH"
    )
}

fn min_arity(name: &[u8]) -> usize {
    match name {
        b"SET" | b"RPUSH" | b"PUBLISH" => 3,
        b"BLPOP" => 3,
        b"SELECT" | b"ECHO" | b"GET" | b"DEL" | b"EXISTS" | b"MGET" | b"INCR" | b"WATCH"
        | b"SUBSCRIBE" => 2,
        _ => 1,
    }
}

fn unknown(name: &Bytes) -> Frame {
    err(&format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(name)
    ))
}

impl Backend for StandaloneServer {
    fn listens(&self, _address: &Address) -> bool {
        true
    }

    fn set_conditions(&mut self, cond: Conditions) {
        self.cond = cond;
    }

    fn accept(&mut self, socket: SocketId, _address: &Address, now: Instant, out: &mut ServerOut) {
        let tls = self
            .tls
            .as_ref()
            .map(|c| rustls::ServerConnection::new(c.clone()).expect("server connection"));
        let mut conn = SConn {
            tls,
            decoder: Decoder::new(),
            inbox: BytesMut::new(),
            resp3: false,
            // Without a password, the default user is logged in at once;
            // a password set later does not log existing connections out.
            authed: self.password().is_none(),
            db: 0,
            multi: None,
            multi_failed: false,
            watched: Vec::new(),
            subs: BTreeSet::new(),
            blocked: false,
            deny: self.cond.denied,
            closing: false,
            last_active: now,
        };
        if conn.deny && conn.tls.is_none() {
            Self::deny(&mut conn, socket, out);
        }
        self.conns.insert(socket, conn);
    }

    fn data(
        &mut self,
        socket: SocketId,
        mut data: &[u8],
        now: Instant,
        out: &mut ServerOut,
    ) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(&socket) else {
            return Ok(());
        };
        if conn.closing {
            return Ok(());
        }
        if let Some(tls) = &mut conn.tls {
            while !data.is_empty() {
                tls.read_tls(&mut data)
                    .map_err(|e| format!("server TLS read: {e}"))?;
                let state = tls
                    .process_new_packets()
                    .map_err(|e| format!("server TLS: {e}"))?;
                let n = state.plaintext_bytes_to_read();
                let mut plain = vec![0; n];
                tls.reader()
                    .read_exact(&mut plain)
                    .map_err(|e| format!("server TLS plaintext: {e}"))?;
                conn.inbox.extend_from_slice(&plain);
            }
            flush_tls(tls, socket, out);
            if conn.deny && !tls.is_handshaking() {
                Self::deny(conn, socket, out);
                return Ok(());
            }
        } else {
            conn.inbox.extend_from_slice(data);
        }
        self.pump(socket, now, out)
    }

    fn closed(&mut self, socket: SocketId) {
        self.conns.remove(&socket);
        self.blocked.retain(|b| b.socket != socket);
    }

    fn next_timer(&self) -> Option<Instant> {
        let blocked = self.blocked.iter().filter_map(|b| b.deadline);
        blocked.chain(self.idle_deadlines().map(|(at, _)| at)).min()
    }

    fn on_timer(&mut self, now: Instant, out: &mut ServerOut) -> Result<(), String> {
        let mut expired = Vec::new();
        self.blocked.retain(|b| {
            let due = b.deadline.is_some_and(|d| d <= now);
            if due {
                expired.push(b.socket);
            }
            !due
        });
        for socket in expired {
            if let Some(conn) = self.conns.get_mut(&socket) {
                conn.blocked = false;
                conn.reply(socket, Frame::NullArray, out);
            }
            self.pump(socket, now, out)?;
        }
        let idle: Vec<SocketId> = self
            .idle_deadlines()
            .filter(|(at, _)| *at <= now)
            .map(|(_, socket)| socket)
            .collect();
        for socket in idle {
            if let Some(conn) = self.conns.get_mut(&socket) {
                conn.closing = true;
                out.push((socket, ServerAction::CloseIdle));
            }
        }
        Ok(())
    }

    fn garbage(&mut self, socket: SocketId, out: &mut ServerOut) {
        if let Some(conn) = self.conns.get_mut(&socket) {
            conn.write(socket, b"?this is not RESP\r\n", out);
        }
    }

    fn lose_data(&mut self) {
        self.data.clear();
        self.versions.clear();
        self.generation += 1;
    }
}
