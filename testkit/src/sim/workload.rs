//! The workload: what the application asks of the client, drawn from the
//! seed.
//!
//! Reads, writes, counters, list pushes and blocking pops, `ECHO`s with
//! unique tokens, pipelines (several sends before the outputs are
//! drained), transactions on the shared connection (`MULTI` ... `EXEC`
//! sent back to back, as an atomic pipeline is) and on leased connections
//! (`WATCH`, `GET`, `MULTI`, `SET`, `INCR`, `EXEC`, released when done or
//! early), pub/sub, cancels, spurious timer calls and explicit connects.
//!
//! Every value written is unique and names its key (`k3=117`), so a reply
//! that belongs to another request is recognised.

use bytes::Bytes;
use redpoll_core::Duration;

use super::model::Op;
use super::rng::Rng;

/// Register keys (`SET`/`GET`/`DEL`).
pub const REGISTERS: [&str; 5] = ["k0", "k1", "k2", "k3", "k4"];
/// Counter keys (`INCR`).
pub const COUNTERS: [&str; 2] = ["c0", "c1"];
/// List keys (`RPUSH`/`BLPOP`).
pub const LISTS: [&str; 2] = ["l0", "l1"];
/// The pub/sub channel.
pub const CHANNEL: &str = "news";

/// One thing the application does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Sends this many commands back to back.
    Burst(usize),
    /// `MULTI`, `SET`, `INCR`, `EXEC` on the shared connection.
    SharedTxn,
    /// Leases a connection and runs a script on it.
    Lease,
    /// A `BLPOP` (a dedicated connection).
    BlockingPop,
    /// `SUBSCRIBE` to the channel.
    Subscribe,
    /// Cancels a pending request.
    Cancel,
    /// `Client::connect`.
    Connect,
    /// A spurious `handle_timeout`.
    Tick,
    /// Sends on a lease already released (must fail at once).
    StaleLease,
}

/// A lease's script: steps of commands, each after a delay, and when to
/// give the connection back.
#[derive(Debug, Clone)]
pub struct Script {
    /// Delay before each step, and the step's commands; `true` marks the
    /// commands of the transaction (from `MULTI` to `EXEC`/`DISCARD`).
    pub steps: Vec<(Duration, Vec<(Op, bool)>)>,
    /// Release after this long, whatever is pending (an unclean release
    /// when replies are still due); `None`: once every reply came.
    pub release_after: Option<Duration>,
}

/// The workload generator.
#[derive(Debug)]
pub struct Workload {
    rng: Rng,
    next_token: u64,
    /// Whether pub/sub is part of the workload.
    pub pubsub: bool,
    /// Whether dedicated connections (leases, blocking commands) are.
    pub dedicated: bool,
    /// The largest gap between two actions.
    pub max_gap: Duration,
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

impl Workload {
    /// A workload drawing from `rng`.
    #[must_use]
    pub const fn new(rng: Rng, pubsub: bool, dedicated: bool, max_gap: Duration) -> Self {
        Self {
            rng,
            next_token: 0,
            pubsub,
            dedicated,
            max_gap,
        }
    }

    /// The time until the next action.
    pub fn gap(&mut self) -> Duration {
        if self.rng.chance(20) {
            return Duration::ZERO;
        }
        let max = self.max_gap;
        self.rng.duration(Duration::ZERO, max)
    }

    fn token(&mut self, prefix: &str) -> Bytes {
        self.next_token += 1;
        Bytes::from(format!("{prefix}={}", self.next_token))
    }

    fn pick(&mut self, keys: &[&str]) -> Bytes {
        b(keys[self.rng.below(keys.len() as u64) as usize])
    }

    /// A token for an `ECHO` probe.
    pub fn echo_token(&mut self) -> Bytes {
        self.token("probe")
    }

    /// A number in `[0, n)`.
    pub const fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    /// True with probability `percent` / 100.
    pub const fn chance(&mut self, percent: u64) -> bool {
        self.rng.chance(percent)
    }

    /// The next action.
    pub fn action(&mut self) -> Action {
        let action = self.rng.weighted(&[
            (60, Action::Burst(1)),
            (5, Action::SharedTxn),
            (if self.dedicated { 8 } else { 0 }, Action::Lease),
            (if self.dedicated { 4 } else { 0 }, Action::BlockingPop),
            (if self.pubsub { 2 } else { 0 }, Action::Subscribe),
            (6, Action::Cancel),
            (2, Action::Connect),
            (3, Action::Tick),
            (u64::from(self.dedicated), Action::StaleLease),
        ]);
        match action {
            Action::Burst(_) => Action::Burst(if self.rng.chance(30) {
                self.rng.range(2, 8) as usize
            } else {
                1
            }),
            other => other,
        }
    }

    /// One command of a burst.
    pub fn simple_op(&mut self) -> Op {
        #[derive(Clone, Copy)]
        enum K {
            Get,
            Set,
            Del,
            Incr,
            MGet,
            Exists,
            Echo,
            Ping,
            RPush,
            Publish,
        }
        match self.rng.weighted(&[
            (20, K::Get),
            (20, K::Set),
            (3, K::Del),
            (10, K::Incr),
            (5, K::MGet),
            (3, K::Exists),
            (15, K::Echo),
            (3, K::Ping),
            (5, K::RPush),
            (if self.pubsub { 4 } else { 0 }, K::Publish),
        ]) {
            K::Get => Op::Get {
                key: self.pick(&REGISTERS),
            },
            K::Set => {
                let key = self.pick(&REGISTERS);
                let token = self.token(&String::from_utf8_lossy(&key));
                Op::Set { key, token }
            }
            K::Del => Op::Del {
                key: self.pick(&REGISTERS),
            },
            K::Incr => Op::Incr {
                key: self.pick(&COUNTERS),
            },
            K::MGet => Op::MGet {
                keys: (0..self.rng.range(1, 3))
                    .map(|_| self.pick(&REGISTERS))
                    .collect(),
            },
            K::Exists => Op::Exists {
                keys: (0..self.rng.range(1, 3))
                    .map(|_| self.pick(&REGISTERS))
                    .collect(),
            },
            K::Echo => Op::Echo {
                token: self.token("echo"),
            },
            K::Ping => Op::Ping,
            K::RPush => {
                let key = self.pick(&LISTS);
                let token = self.token(&String::from_utf8_lossy(&key));
                Op::RPush { key, token }
            }
            K::Publish => Op::Publish {
                channel: b(CHANNEL),
                token: self.token("msg"),
            },
        }
    }

    /// `MULTI`, `SET`, `INCR`, `EXEC`.
    pub fn transaction(&mut self) -> Vec<Op> {
        let key = self.pick(&REGISTERS);
        let token = self.token(&String::from_utf8_lossy(&key));
        vec![
            Op::Multi,
            Op::Set { key, token },
            Op::Incr {
                key: self.pick(&COUNTERS),
            },
            Op::Exec,
        ]
    }

    /// A `BLPOP` on a list, blocking for up to half a second.
    pub fn blocking_pop(&mut self) -> Op {
        Op::BLPop {
            key: self.pick(&LISTS),
            millis: self.rng.range(10, 500),
        }
    }

    /// `SUBSCRIBE` to the channel.
    #[must_use]
    pub fn subscribe(&self) -> Op {
        Op::Subscribe {
            channel: b(CHANNEL),
        }
    }

    /// The script of a new lease.
    pub fn script(&mut self) -> Script {
        let key = self.pick(&REGISTERS);
        let token = self.token(&String::from_utf8_lossy(&key));
        let counter = self.pick(&COUNTERS);
        let set = Op::Set {
            key: key.clone(),
            token,
        };
        let watch = Op::Watch { key: key.clone() };
        let get = Op::Get { key: key.clone() };
        let later = if self.rng.chance(50) {
            Duration::ZERO
        } else {
            self.rng.millis(1, 200)
        };
        let txn = |ops: Vec<Op>| ops.into_iter().map(|op| (op, true)).collect::<Vec<_>>();
        let plain = |ops: Vec<Op>| ops.into_iter().map(|op| (op, false)).collect::<Vec<_>>();
        let steps = match self.rng.below(10) {
            0..=3 => vec![
                (Duration::ZERO, plain(vec![watch, get])),
                (
                    later,
                    txn(vec![Op::Multi, set, Op::Incr { key: counter }, Op::Exec]),
                ),
            ],
            4 | 5 => vec![
                (Duration::ZERO, plain(vec![watch])),
                (later, txn(vec![Op::Multi, set, Op::Discard])),
            ],
            6 | 7 => vec![(
                Duration::ZERO,
                plain(vec![
                    get,
                    Op::Echo {
                        token: self.token("echo"),
                    },
                ]),
            )],
            8 => vec![(Duration::ZERO, txn(vec![Op::Multi, set, Op::Exec]))],
            _ => vec![
                (Duration::ZERO, plain(vec![watch])),
                (later, plain(vec![Op::Unwatch])),
            ],
        };
        let release_after = self.rng.chance(25).then(|| self.rng.millis(0, 300));
        Script {
            steps,
            release_after,
        }
    }
}
