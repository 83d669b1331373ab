//! What the client was asked to do, what it answered, and whether the
//! answers are possible: the request invariants.
//!
//! - **Exactly once**: every request gets at most one response, none
//!   after it was cancelled, and (checked at the end) every request that
//!   was not cancelled got one.
//! - **Its own reply**: every reply has the shape of its request's reply,
//!   and carries its request's identity where the request has one
//!   (`ECHO` tokens, `SET` values that name their key, counters).
//! - **Typed errors are honest**: a timeout only at or after the
//!   request's deadline, `PoolExhausted` only for dedicated connections,
//!   `Unsupported` only for pub/sub over RESP2.
//! - **Linearizable per key** for a single client: a read returns a value
//!   some write that could have run wrote, and never one overwritten for
//!   sure (a write acknowledged before the read started, which started
//!   after the read value's write was acknowledged). Writes whose outcome
//!   the client never learned (timeout, connection lost, cancelled) are
//!   *in doubt*: they may have run, at any time after they were sent.
//!   Counters (`INCR`) never hand out a value twice and grow in real-time
//!   order; list elements (`RPUSH`/`BLPOP`) are popped at most once and
//!   only after they were pushed; pub/sub messages arrive at most once and
//!   only after they were published. A restart that loses the key space
//!   is a write of "nothing" to every key at that moment.
//!
//! Time here is a logical clock (`seq`), bumped by every send and every
//! response, so that "before" is exact even within one virtual instant.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use redpoll_core::cmd::Cmd;
use redpoll_core::resp::Frame;
use redpoll_core::{Error, Instant, LeaseId, RequestId};

/// One request, as the workload built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `GET key`.
    Get {
        /// The key.
        key: Bytes,
    },
    /// `SET key token`; the token names its key.
    Set {
        /// The key.
        key: Bytes,
        /// The unique value.
        token: Bytes,
    },
    /// `DEL key`.
    Del {
        /// The key.
        key: Bytes,
    },
    /// `INCR counter`.
    Incr {
        /// The counter.
        key: Bytes,
    },
    /// `MGET key...`.
    MGet {
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// `EXISTS key...`.
    Exists {
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// `ECHO token`: the reply must be the token.
    Echo {
        /// The unique token.
        token: Bytes,
    },
    /// `PING`.
    Ping,
    /// `RPUSH list token`.
    RPush {
        /// The list.
        key: Bytes,
        /// The unique element.
        token: Bytes,
    },
    /// `BLPOP list secs` (a dedicated connection).
    BLPop {
        /// The list.
        key: Bytes,
        /// The block time, in milliseconds.
        millis: u64,
    },
    /// `PUBLISH channel token`.
    Publish {
        /// The channel.
        channel: Bytes,
        /// The unique message.
        token: Bytes,
    },
    /// `SUBSCRIBE channel`.
    Subscribe {
        /// The channel.
        channel: Bytes,
    },
    /// `WATCH key`.
    Watch {
        /// The key.
        key: Bytes,
    },
    /// `MULTI`.
    Multi,
    /// `EXEC`.
    Exec,
    /// `DISCARD`.
    Discard,
    /// `UNWATCH`.
    Unwatch,
}

impl Op {
    /// The command to send.
    pub fn command(&self) -> Cmd {
        match self {
            Self::Get { key } => Cmd::new("GET").key(key),
            Self::Set { key, token } => Cmd::new("SET").key(key).arg(token),
            Self::Del { key } => Cmd::new("DEL").key(key),
            Self::Incr { key } => Cmd::new("INCR").key(key),
            Self::MGet { keys } => keys.iter().fold(Cmd::new("MGET"), |c, k| c.key(k)),
            Self::Exists { keys } => keys.iter().fold(Cmd::new("EXISTS"), |c, k| c.key(k)),
            Self::Echo { token } => Cmd::new("ECHO").arg(token),
            Self::Ping => Cmd::new("PING"),
            Self::RPush { key, token } => Cmd::new("RPUSH").key(key).arg(token),
            Self::BLPop { key, millis } => {
                Cmd::new("BLPOP")
                    .key(key)
                    .arg(format!("{}.{:03}", millis / 1000, millis % 1000))
            }
            Self::Publish { channel, token } => Cmd::new("PUBLISH").arg(channel).arg(token),
            Self::Subscribe { channel } => Cmd::new("SUBSCRIBE").arg(channel),
            Self::Watch { key } => Cmd::new("WATCH").key(key),
            Self::Multi => Cmd::new("MULTI"),
            Self::Exec => Cmd::new("EXEC"),
            Self::Discard => Cmd::new("DISCARD"),
            Self::Unwatch => Cmd::new("UNWATCH"),
        }
    }
}

/// Which connection a request was sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `Client::send`.
    Shared,
    /// `Client::send_leased`.
    Lease(LeaseId),
}

/// Where a request is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Sent, not answered.
    Pending,
    /// Answered.
    Done {
        /// Logical time of the response.
        seq: u64,
        /// Virtual time of the response.
        at: Instant,
        /// The response.
        result: Result<Frame, Error>,
    },
    /// Cancelled before any response.
    Cancelled,
}

/// One request and what became of it.
#[derive(Debug, Clone)]
pub struct Req {
    /// What it asked.
    pub op: Op,
    /// Where it was sent.
    pub via: Via,
    /// The transaction it belongs to (between `MULTI` and `EXEC`).
    pub txn: Option<usize>,
    /// Logical time of the send.
    pub sent: u64,
    /// Virtual time of the send.
    pub sent_at: Instant,
    /// Its response deadline.
    pub deadline: Option<Instant>,
    /// Its state.
    pub state: State,
}

/// A `MULTI` ... `EXEC`/`DISCARD` group.
#[derive(Debug, Clone, Default)]
pub struct Txn {
    /// The commands queued between `MULTI` and the end, in order.
    pub members: Vec<RequestId>,
    /// The `EXEC`, if the transaction ends with one.
    pub exec: Option<RequestId>,
    /// Every request of the transaction, `MULTI` to the end.
    pub all: Vec<RequestId>,
}

/// The increments of one counter.
#[derive(Debug, Default)]
struct Counter {
    /// Sent.
    sent: u64,
    /// Surely not run.
    rejected: u64,
    /// Acknowledged: (acknowledged at, invoked at), in acknowledgement order.
    acked: Vec<(u64, u64)>,
    /// (epoch, value) -> the increment that got it.
    seen: BTreeMap<(usize, i64), RequestId>,
    /// Increments whose fate was recorded.
    resolved: BTreeSet<RequestId>,
}

/// The fate of a write.
#[derive(Debug, Clone, PartialEq)]
enum Fate {
    /// Not answered yet.
    Pending,
    /// It ran, and the client learned so at `seq`, with this reply.
    Acked(u64, Frame),
    /// It surely did not run.
    Rejected,
    /// It may or may not have run.
    InDoubt,
}

/// A violated request invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// Exactly once.
    ExactlyOnce(String),
    /// Its own reply, honest typed errors.
    OwnReply(String),
    /// Linearizability.
    Linearizable(String),
}

/// Every request of a run, and the writes and pushes they imply.
#[derive(Debug, Default)]
pub struct Model {
    reqs: BTreeMap<RequestId, Req>,
    /// Logical clock.
    seq: u64,
    /// Per register key: (acknowledged at, the latest invocation of a
    /// write acknowledged by then), in acknowledgement order.
    registers: BTreeMap<Bytes, Vec<(u64, u64)>>,
    /// Token -> the `SET` of it.
    tokens: BTreeMap<Bytes, RequestId>,
    /// Per key, its `DEL`s.
    deletes: BTreeMap<Bytes, Vec<RequestId>>,
    /// Per counter key, its increments.
    counters: BTreeMap<Bytes, Counter>,
    /// How many times one write may run (retried writes): one `INCR`
    /// counts that often, one `RPUSH` pushes and one `PUBLISH` publishes
    /// that often, and an error reply no longer proves a write did not run.
    pub incr_weight: u64,
    /// Token -> the acknowledged `BLPOP`s that popped it.
    pops: BTreeMap<Bytes, Vec<RequestId>>,
    /// Token -> the `RPUSH` of it.
    pushed: BTreeMap<Bytes, RequestId>,
    /// Token -> the `PUBLISH` of it.
    published: BTreeMap<Bytes, RequestId>,
    /// Messages received, and how often.
    delivered: BTreeMap<Bytes, u64>,
    /// Logical times at which the key space was lost.
    losses: Vec<u64>,
    /// Reads to re-check at the end, when every write's fate is known.
    reads: Vec<RequestId>,
    /// Requests without a response yet.
    pending: BTreeSet<RequestId>,
    /// Their deadlines.
    deadlines: BTreeSet<(Instant, RequestId)>,
    pub(crate) txns: Vec<Txn>,
    /// Whether the client was shut down.
    pub shut_down: bool,
    /// Whether the connection speaks RESP2 (pub/sub unsupported).
    pub resp2: bool,
    /// Count of responses by outcome, for the statistics.
    pub ok: u64,
    /// Count of error responses.
    pub errors: u64,
}

fn is(frame: &Frame, s: &str) -> bool {
    matches!(frame, Frame::Simple(b) if b == s.as_bytes())
}

fn is_error(frame: &Frame) -> bool {
    frame.without_attributes().is_error()
}

/// The key a token was written for (`key=...`).
fn token_key(token: &[u8]) -> &[u8] {
    token
        .iter()
        .position(|&b| b == b'=')
        .map_or(token, |i| &token[..i])
}

impl Model {
    /// A model with no requests.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    const fn tick(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The request `id`.
    #[must_use]
    pub fn req(&self, id: RequestId) -> Option<&Req> {
        self.reqs.get(&id)
    }

    /// Every request.
    pub fn reqs(&self) -> impl Iterator<Item = (&RequestId, &Req)> {
        self.reqs.iter()
    }

    /// Starts a transaction; its index.
    pub fn begin_txn(&mut self) -> usize {
        self.txns.push(Txn::default());
        self.txns.len() - 1
    }

    /// A request was sent.
    ///
    /// # Errors
    ///
    /// When the client handed out an id twice.
    pub fn sent(
        &mut self,
        id: RequestId,
        op: Op,
        via: Via,
        txn: Option<usize>,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Result<(), Broken> {
        if self.reqs.contains_key(&id) {
            return Err(Broken::ExactlyOnce(format!("{id} handed out twice")));
        }
        let sent = self.tick();
        self.pending.insert(id);
        if let Some(d) = deadline {
            self.deadlines.insert((d, id));
        }
        if let Some(t) = txn {
            self.txns[t].all.push(id);
            if !matches!(op, Op::Multi | Op::Exec | Op::Discard) {
                self.txns[t].members.push(id);
            }
        }
        match &op {
            Op::Set { token, .. } => {
                self.tokens.insert(token.clone(), id);
            }
            Op::Del { key } => {
                self.deletes.entry(key.clone()).or_default().push(id);
            }
            Op::Incr { key } => {
                self.counters.entry(key.clone()).or_default().sent += 1;
            }
            Op::RPush { token, .. } => {
                self.pushed.insert(token.clone(), id);
            }
            Op::Publish { token, .. } => {
                self.published.insert(token.clone(), id);
            }
            Op::Exec => {
                if let Some(t) = txn {
                    self.txns[t].exec = Some(id);
                }
            }
            _ => {}
        }
        self.reqs.insert(
            id,
            Req {
                op,
                via,
                txn,
                sent,
                sent_at: now,
                deadline,
                state: State::Pending,
            },
        );
        Ok(())
    }

    /// The application cancelled `id`.
    pub fn cancelled(&mut self, id: RequestId) {
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        if req.state != State::Pending {
            return;
        }
        req.state = State::Cancelled;
        let deadline = req.deadline;
        self.pending.remove(&id);
        if let Some(d) = deadline {
            self.deadlines.remove(&(d, id));
        }
    }

    /// The earliest deadline of a pending request.
    #[must_use]
    pub fn next_deadline(&self) -> Option<(Instant, RequestId)> {
        self.deadlines.first().copied()
    }

    /// How many requests wait for their response.
    #[must_use]
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The requests waiting for their response, oldest first.
    pub fn pending_ids(&self) -> impl Iterator<Item = RequestId> + '_ {
        self.pending.iter().copied()
    }

    /// The key space was lost now.
    pub fn lost(&mut self) {
        let seq = self.tick();
        self.losses.push(seq);
    }

    /// Requests still waiting for their response.
    pub fn pending(&self) -> impl Iterator<Item = (&RequestId, &Req)> {
        self.pending
            .iter()
            .filter_map(|id| self.reqs.get_key_value(id))
    }

    /// A response arrived.
    ///
    /// # Errors
    ///
    /// When it breaks a request invariant.
    pub fn response(
        &mut self,
        id: RequestId,
        result: Result<Frame, Error>,
        now: Instant,
    ) -> Result<(), Broken> {
        let seq = self.tick();
        let Some(req) = self.reqs.get_mut(&id) else {
            return Err(Broken::ExactlyOnce(format!(
                "a response for {id}, which was never sent (or is internal): {result:?}"
            )));
        };
        match &req.state {
            State::Pending => {}
            State::Done { result: first, .. } => {
                return Err(Broken::ExactlyOnce(format!(
                    "{id} ({:?}) completed twice: first {first:?}, then {result:?}",
                    req.op
                )));
            }
            State::Cancelled => {
                return Err(Broken::ExactlyOnce(format!(
                    "{id} ({:?}) was cancelled, then completed with {result:?}",
                    req.op
                )));
            }
        }
        req.state = State::Done {
            seq,
            at: now,
            result: result.clone(),
        };
        let req = req.clone();
        if let Some(d) = req.deadline {
            self.deadlines.remove(&(d, id));
        }
        self.pending.remove(&id);
        match &result {
            Ok(f) if !is_error(f) => self.ok += 1,
            _ => self.errors += 1,
        }
        match &result {
            Ok(frame) => self.check_reply(id, &req, frame)?,
            Err(error) => self.check_error(id, &req, error, now)?,
        }
        if let (Op::BLPop { key, .. }, Ok(Frame::Array(items))) = (&req.op, &result)
            && let Some(Frame::Bulk(token)) = items.get(1)
        {
            // A retried `RPUSH` may push its element more than once.
            let pops = self.pops.entry(token.clone()).or_default();
            pops.push(id);
            if pops.len() as u64 > self.incr_weight.max(1) {
                return Err(Broken::Linearizable(format!(
                    "element {token:?} of {key:?} popped more often than it was pushed: by {pops:?}"
                )));
            }
            self.check_pop(id, key, token)?;
        }
        if matches!(req.op, Op::Get { .. } | Op::MGet { .. }) {
            self.reads.push(id);
            self.check_read(id)?;
        }
        match (&req.op, req.txn) {
            (Op::Set { .. } | Op::Del { .. }, _) => self.acked_writes(&[id], seq),
            (Op::Exec, Some(t)) => {
                let members = self.txns[t].members.clone();
                self.acked_writes(&members, seq);
            }
            _ => {}
        }
        match (&req.op, req.txn) {
            (Op::Incr { key }, _) => self.resolve_incr(key, id)?,
            (Op::Exec, Some(t)) => {
                for member in self.txns[t].members.clone() {
                    if let Some(Op::Incr { key }) = self.reqs.get(&member).map(|r| r.op.clone()) {
                        self.resolve_incr(&key, member)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A push frame arrived.
    ///
    /// # Errors
    ///
    /// When a message was never published, or arrives twice.
    pub fn push(&mut self, frame: &Frame) -> Result<(), Broken> {
        let Frame::Push(items) = frame.without_attributes() else {
            return Err(Broken::OwnReply(format!(
                "a push that is no push frame: {frame:?}"
            )));
        };
        let kind = match items.first() {
            Some(Frame::Bulk(k) | Frame::Simple(k)) => k.as_ref(),
            _ => {
                return Err(Broken::OwnReply(format!(
                    "a push without a kind: {frame:?}"
                )));
            }
        };
        match kind {
            b"message" => {
                let Some(Frame::Bulk(token)) = items.get(2) else {
                    return Err(Broken::OwnReply(format!(
                        "a message push without payload: {frame:?}"
                    )));
                };
                if !self.published.contains_key(token) {
                    return Err(Broken::Linearizable(format!(
                        "message {token:?} delivered but never published"
                    )));
                }
                // A retried `PUBLISH` may publish its message more than once.
                let n = self.delivered.entry(token.clone()).or_default();
                *n += 1;
                if *n > self.incr_weight.max(1) {
                    return Err(Broken::Linearizable(format!(
                        "message {token:?} delivered {n} times, published at most {} times",
                        self.incr_weight.max(1)
                    )));
                }
                Ok(())
            }
            b"subscribe" | b"unsubscribe" | b"invalidate" => Ok(()),
            other => Err(Broken::OwnReply(format!(
                "an unexpected push {:?}: {frame:?}",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    fn check_error(
        &self,
        id: RequestId,
        req: &Req,
        error: &Error,
        now: Instant,
    ) -> Result<(), Broken> {
        let bad = |why: &str| {
            Err(Broken::OwnReply(format!(
                "{id} ({:?}, sent at {:?}) failed with {error:?}: {why}",
                req.op, req.sent_at
            )))
        };
        match error {
            Error::Timeout => match req.deadline {
                None => bad("it has no deadline"),
                Some(d) if now < d => bad(&format!("its deadline is {d:?}, the time is {now:?}")),
                Some(_) => Ok(()),
            },
            Error::Shutdown if !self.shut_down && req.via == Via::Shared => {
                bad("the client was not shut down")
            }
            Error::PoolExhausted
                if !matches!(req.op, Op::BLPop { .. }) && req.via == Via::Shared =>
            {
                bad("only dedicated connections are pooled")
            }
            Error::Unsupported(_) if !(self.resp2 && matches!(req.op, Op::Subscribe { .. })) => {
                bad("only pub/sub over RESP2 is unsupported")
            }
            _ => Ok(()),
        }
    }

    /// The shape and identity of a reply.
    fn check_reply(&self, id: RequestId, req: &Req, frame: &Frame) -> Result<(), Broken> {
        let f = frame.without_attributes();
        if is_error(f) {
            return Ok(());
        }
        if req.txn.is_some()
            && !matches!(req.op, Op::Multi | Op::Exec | Op::Discard)
            && is(f, "QUEUED")
        {
            return Ok(());
        }
        let ok = match &req.op {
            Op::Exec => return self.check_exec(id, req, f),
            _ => shape_ok(&req.op, f),
        };
        if ok {
            Ok(())
        } else {
            Err(Broken::OwnReply(format!(
                "{id} ({:?}) got a reply that is not its own: {frame:?}",
                req.op
            )))
        }
    }

    fn check_exec(&self, id: RequestId, req: &Req, f: &Frame) -> Result<(), Broken> {
        let Some(t) = req.txn else {
            return Ok(());
        };
        if f.is_null() {
            return Ok(());
        }
        let Frame::Array(items) = f else {
            return Err(Broken::OwnReply(format!("{id} (EXEC) got {f:?}")));
        };
        let queued: Vec<&Req> = self.txns[t]
            .members
            .iter()
            .filter_map(|m| self.reqs.get(m))
            .filter(|r| matches!(&r.state, State::Done { result: Ok(q), .. } if is(q, "QUEUED")))
            .collect();
        if queued.len() != items.len() {
            return Err(Broken::OwnReply(format!(
                "{id} (EXEC) returned {} replies for {} queued commands: {f:?}",
                items.len(),
                queued.len()
            )));
        }
        for (member, item) in queued.iter().zip(items) {
            if !is_error(item) && !shape_ok(&member.op, item) {
                return Err(Broken::OwnReply(format!(
                    "{id} (EXEC): {:?} got a reply that is not its own: {item:?}",
                    member.op
                )));
            }
        }
        Ok(())
    }

    /// The fate of the write request `id`.
    fn fate(&self, id: RequestId) -> Fate {
        let Some(req) = self.reqs.get(&id) else {
            return Fate::InDoubt;
        };
        let (seq, result) = match &req.state {
            State::Pending => return Fate::Pending,
            State::Cancelled => return Fate::InDoubt,
            State::Done { seq, result, .. } => (*seq, result),
        };
        // With writes retried, an error reply may answer a second attempt
        // whose first one ran before its connection failed.
        let refused = if self.incr_weight > 1 {
            Fate::InDoubt
        } else {
            Fate::Rejected
        };
        let frame = match result {
            Err(Error::PoolExhausted | Error::Unsupported(_)) => return Fate::Rejected,
            Err(_) => return Fate::InDoubt,
            Ok(frame) => frame.without_attributes(),
        };
        if is_error(frame) {
            return refused;
        }
        if !(req.txn.is_some() && is(frame, "QUEUED")) {
            return Fate::Acked(seq, frame.clone());
        }
        // Queued in a transaction: the EXEC decides.
        let txn = &self.txns[req.txn.unwrap_or_default()];
        let Some(exec) = txn.exec.and_then(|e| self.reqs.get(&e)) else {
            return Fate::Rejected;
        };
        match &exec.state {
            State::Pending => Fate::Pending,
            State::Cancelled => Fate::InDoubt,
            State::Done { seq, result, .. } => match result {
                Err(_) => Fate::InDoubt,
                Ok(Frame::Array(items)) => {
                    let index = txn
                        .members
                        .iter()
                        .filter(|m| {
                            matches!(self.reqs.get(m).map(|r| &r.state),
                                Some(State::Done { result: Ok(q), .. }) if is(q, "QUEUED"))
                        })
                        .position(|m| *m == id);
                    match index.and_then(|i| items.get(i)) {
                        Some(item) if !is_error(item) => Fate::Acked(*seq, item.clone()),
                        _ => refused,
                    }
                }
                Ok(_) => refused,
            },
        }
    }

    /// Records the acknowledgement (at `seq`) of the register writes among
    /// `ids`: the index the staleness rule reads.
    fn acked_writes(&mut self, ids: &[RequestId], seq: u64) {
        for id in ids {
            let Some(req) = self.reqs.get(id) else {
                continue;
            };
            let (Op::Set { key, .. } | Op::Del { key }) = &req.op else {
                continue;
            };
            if !matches!(self.fate(*id), Fate::Acked(..)) {
                continue;
            }
            let register = self.registers.entry(key.clone()).or_default();
            let floor = register.last().map_or(0, |&(_, f)| f).max(req.sent);
            register.push((seq, floor));
        }
    }

    /// The latest invocation of a write to `key` acknowledged before
    /// `inv`: any write acknowledged before that invocation is overwritten
    /// for a read invoked at `inv`.
    fn floor(&self, key: &[u8], inv: u64) -> u64 {
        let acked = self.registers.get(key).map_or(&[][..], Vec::as_slice);
        let i = acked.partition_point(|&(ack, _)| ack < inv);
        let writes = if i == 0 { 0 } else { acked[i - 1].1 };
        let losses = self
            .losses
            .iter()
            .filter(|&&l| l < inv)
            .max()
            .copied()
            .unwrap_or(0);
        writes.max(losses)
    }

    /// A read of `key` that returned `value` between `inv` and `resp`.
    fn check_register(
        &self,
        id: RequestId,
        key: &Bytes,
        value: Option<&Bytes>,
        inv: u64,
        resp: u64,
    ) -> Result<(), Broken> {
        // Candidates: (invoked, acknowledged) of writes that could have
        // written `value` before the read answered.
        let mut candidates: Vec<(u64, Option<u64>)> = Vec::new();
        let mut consider = |w: RequestId| {
            let Some(req) = self.reqs.get(&w) else {
                return;
            };
            if req.sent >= resp {
                return;
            }
            match self.fate(w) {
                Fate::Rejected => {}
                Fate::Acked(seq, _) => candidates.push((req.sent, Some(seq))),
                Fate::Pending | Fate::InDoubt => candidates.push((req.sent, None)),
            }
        };
        match value {
            Some(token) => {
                if let Some(&w) = self.tokens.get(token)
                    && matches!(&self.reqs[&w].op, Op::Set { key: k, .. } if k == key)
                {
                    consider(w);
                }
            }
            None => {
                for &w in self.deletes.get(key).into_iter().flatten() {
                    consider(w);
                }
                candidates.push((0, Some(0)));
                candidates.extend(self.losses.iter().map(|&l| (l, Some(l))));
            }
        }
        if candidates.is_empty() {
            return Err(Broken::Linearizable(format!(
                "{id} read {value:?} from {key:?}, which no write that could have run wrote"
            )));
        }
        let floor = self.floor(key, inv);
        if candidates
            .iter()
            .any(|&(i, acked)| acked.is_none_or(|a| a >= floor) || i == floor)
        {
            Ok(())
        } else {
            Err(Broken::Linearizable(format!(
                "{id} read {value:?} from {key:?}: a stale value, overwritten by a write acknowledged before the read began"
            )))
        }
    }

    fn check_read(&self, id: RequestId) -> Result<(), Broken> {
        let req = &self.reqs[&id];
        let State::Done {
            seq: resp,
            result: Ok(frame),
            ..
        } = &req.state
        else {
            return Ok(());
        };
        let inv = req.sent;
        let frame = frame.without_attributes();
        match (&req.op, frame) {
            (Op::Get { key }, f) if f.is_null() => self.check_register(id, key, None, inv, *resp),
            (Op::Get { key }, Frame::Bulk(v)) => self.check_register(id, key, Some(v), inv, *resp),
            (Op::MGet { keys }, Frame::Array(items)) => {
                for (key, item) in keys.iter().zip(items) {
                    match item {
                        f if f.is_null() => self.check_register(id, key, None, inv, *resp)?,
                        Frame::Bulk(v) => self.check_register(id, key, Some(v), inv, *resp)?,
                        _ => {}
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn epoch(&self, seq: u64) -> usize {
        self.losses.iter().filter(|&&l| l < seq).count()
    }

    /// Counters: unique values, growing in real-time order, within bounds.
    /// Called when the fate of the increment `id` becomes known.
    ///
    /// A restart that loses the key space resets every counter. It also
    /// resets every connection, dropping replies in flight, so a reply
    /// that arrives after a loss comes from an increment that ran after it.
    fn resolve_incr(&mut self, key: &Bytes, id: RequestId) -> Result<(), Broken> {
        let inv = self.reqs[&id].sent;
        let fate = self.fate(id);
        if matches!(fate, Fate::Acked(..) | Fate::Rejected)
            && !self
                .counters
                .entry(key.clone())
                .or_default()
                .resolved
                .insert(id)
        {
            return Ok(());
        }
        let (ack, n) = match fate {
            Fate::Acked(seq, Frame::Integer(n)) => (seq, n),
            Fate::Rejected => {
                self.counters.entry(key.clone()).or_default().rejected += 1;
                return Ok(());
            }
            Fate::Acked(..) | Fate::Pending | Fate::InDoubt => return Ok(()),
        };
        let epoch = self.epoch(ack);
        let start = if epoch == 0 {
            0
        } else {
            self.losses[epoch - 1]
        };
        let weight = self.incr_weight.max(1);
        let counter = self.counters.entry(key.clone()).or_default();
        if let Some(other) = counter.seen.insert((epoch, n), id) {
            return Err(Broken::Linearizable(format!(
                "counter {key:?} handed out {n} twice: to {other} and {id}"
            )));
        }
        // Every increment sent so far could have run, but those rejected and
        // those acknowledged before the epoch began (they ran in an earlier
        // one); each may run up to `weight` times (retried writes).
        let old = counter.acked.partition_point(|&(a, _)| a <= start) as u64;
        let possible = (counter.sent - counter.rejected - old) * weight;
        // Those acknowledged in this epoch before `id` was sent ran first.
        let lo = counter.acked.partition_point(|&(a, _)| a <= start);
        let hi = counter.acked.partition_point(|&(a, _)| a < inv);
        let before = hi.saturating_sub(lo) as u64;
        counter.acked.push((ack, inv));
        let n = u64::try_from(n).unwrap_or(0);
        if n > possible || n <= before {
            return Err(Broken::Linearizable(format!(
                "counter {key:?}: {id} got {n}, but with {before} increments surely before it and {possible} that could have run by its reply, it must be in ({before}, {possible}]"
            )));
        }
        Ok(())
    }

    fn check_pop(&self, id: RequestId, key: &Bytes, token: &Bytes) -> Result<(), Broken> {
        let req = &self.reqs[&id];
        let State::Done { seq: resp, .. } = req.state else {
            return Ok(());
        };
        match self.pushed.get(token) {
            Some(push) => {
                let p = &self.reqs[push];
                let right_list = matches!(&p.op, Op::RPush { key: k, .. } if k == key);
                if !right_list || p.sent > resp || self.fate(*push) == Fate::Rejected {
                    return Err(Broken::Linearizable(format!(
                        "{id} popped {token:?} from {key:?}, which no push that could have run pushed there"
                    )));
                }
                Ok(())
            }
            None => Err(Broken::Linearizable(format!(
                "{id} popped {token:?} from {key:?}, which was never pushed"
            ))),
        }
    }

    /// Checks what only the end can tell: every request completed, every
    /// read against the writes' final fates.
    ///
    /// # Errors
    ///
    /// The first invariant broken.
    pub fn check_end(&self) -> Result<(), Broken> {
        if let Some((id, req)) = self.pending().next() {
            return Err(Broken::ExactlyOnce(format!(
                "{id} ({:?}, sent at {:?}, deadline {:?}) never completed",
                req.op, req.sent_at, req.deadline
            )));
        }
        for id in &self.reads {
            self.check_read(*id)?;
        }
        Ok(())
    }
}

/// Whether `f` (not an error) has the shape of `op`'s reply.
fn shape_ok(op: &Op, f: &Frame) -> bool {
    let token_of = |key: &[u8], f: &Frame| match f {
        f if f.is_null() => true,
        Frame::Bulk(v) => token_key(v) == key,
        _ => false,
    };
    match op {
        Op::Get { key } => token_of(key, f),
        Op::Set { .. } | Op::Watch { .. } | Op::Multi | Op::Discard | Op::Unwatch => is(f, "OK"),
        Op::Del { .. } => matches!(f, Frame::Integer(0 | 1)),
        Op::Incr { .. } => matches!(f, Frame::Integer(n) if *n >= 1),
        Op::MGet { keys } => {
            matches!(f, Frame::Array(items) if items.len() == keys.len()
                && keys.iter().zip(items).all(|(k, i)| token_of(k, i)))
        }
        Op::Exists { keys } => {
            matches!(f, Frame::Integer(n) if *n >= 0 && *n as usize <= keys.len())
        }
        Op::Echo { token } => matches!(f, Frame::Bulk(v) if v == token),
        Op::Ping => is(f, "PONG"),
        Op::RPush { .. } => matches!(f, Frame::Integer(n) if *n >= 1),
        Op::BLPop { key, .. } => {
            f.is_null()
                || matches!(f, Frame::Array(items) if items.len() == 2
                    && items[0] == Frame::Bulk(key.clone())
                    && matches!(&items[1], Frame::Bulk(t) if token_key(t) == key.as_ref()))
        }
        Op::Publish { .. } => matches!(f, Frame::Integer(n) if *n >= 0),
        Op::Subscribe { channel } => matches!(f, Frame::Push(items) if items.len() == 3
            && matches!(&items[0], Frame::Bulk(k) if k.as_ref() == b"subscribe")
            && items[1] == Frame::Bulk(channel.clone())),
        Op::Exec => matches!(f, Frame::Array(_)) || f.is_null(),
    }
}
