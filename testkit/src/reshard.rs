//! Live resharding under load, shared by both adapters' cluster tests: a
//! model of every acknowledged write, the topology changes made while the
//! load runs, and the checks afterwards.
//!
//! # The load
//!
//! [`KeySpace`] spreads key indices over every slot, plus "hot" ones in the
//! slots that [`scenario`] moves (hash tags from [`hash_tag_for_slot`]).
//! Each index is three keys of one slot: a string, its mirror and a
//! counter, so that `MSET` and `MGET` over them are multi-key commands of
//! one slot (answered `-TRYAGAIN` while their keys are split by a
//! migration). Each [`Worker`] owns the indices equal to its own modulo the
//! number of workers, and is their only writer, with one command in
//! flight: so every reply can be checked exactly against the model (a
//! `GET` returns the last acknowledged `SET`, an `INCR` the last
//! acknowledged count plus one), and a lost or doubled write is seen the
//! moment it happens, not only at the end. The adapter test only runs
//! [`Op`]s and reports each outcome to [`Worker::done`].
//!
//! # The scenario
//!
//! [`scenario`], on the test thread while the workers run: the hot slots
//! move from one primary to another `MIGRATE` batch by batch, with load on
//! those slots between the batches (the source answers `-ASK` for the keys
//! already moved), each migration finished (`-MOVED` follows); then the
//! new owner fails over by `CLUSTER FAILOVER` on its replica; then the hot
//! slots move again, off the promoted replica; then the demoted primary
//! fails back. It ends with [`Progress::stop`].
//!
//! # The checks
//!
//! [`verify`] reads every key back through the client and straight from
//! the node that owns its slot, and compares both with the model: no
//! failed command, no lost write.

use std::collections::BTreeMap;
use std::io;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use redpoll_core::resp::Frame;

use crate::cluster::{Cluster, SLOTS, hash_tag_for_slot, key_slot};

/// Keys moved by one `MIGRATE` of the scenario: small, so that a slot takes
/// several batches, with load between them.
const BATCH: usize = 8;
/// Commands on the hot slots between two batches.
const HOT_OPS_BETWEEN: u64 = 150;
/// How long the load may take to make the progress waited for.
const STALL: Duration = Duration::from_secs(15);
/// `GET`s per pipeline when reading the nodes directly.
const PIPELINE: usize = 500;

/// `n` slots spread over the first range of the first primary: slots the
/// scenario can move together.
///
/// # Panics
///
/// When the cluster has no primary with slots, or that range has fewer
/// than `n` slots.
#[must_use]
pub fn hot_slots(cluster: &Cluster, n: usize) -> Vec<u16> {
    let range = cluster
        .primaries()
        .into_iter()
        .find_map(|p| p.slots.first().cloned())
        .expect("a primary with slots");
    let len = usize::from(range.end() - range.start()) + 1;
    assert!(len >= n, "{len} slots in {range:?}, {n} wanted");
    (0..n)
        .map(|k| range.start() + u16::try_from(k * len / n + len / (2 * n)).unwrap_or(0))
        .collect()
}

/// The keys of the load.
#[derive(Debug, Clone)]
pub struct KeySpace {
    /// The slots the scenario moves.
    pub hot_slots: Vec<u16>,
    /// One entry per key index: its hash tag, and whether it is hot.
    entries: Vec<(String, bool)>,
}

impl KeySpace {
    /// `spread` key indices over all slots, and `per_hot_slot` more in each
    /// of `hot_slots`; each index is a string key `{tag}:s<i>`, its mirror
    /// `{tag}:m<i>` and a counter `{tag}:c<i>`.
    #[must_use]
    pub fn new(spread: usize, hot_slots: &[u16], per_hot_slot: usize) -> Self {
        let mut entries = Vec::with_capacity(spread + hot_slots.len() * per_hot_slot);
        for i in 0..spread {
            let slot = u16::try_from(i * usize::from(SLOTS) / spread).unwrap_or(0);
            entries.push((hash_tag_for_slot(slot).to_owned(), false));
        }
        for _ in 0..per_hot_slot {
            for &slot in hot_slots {
                entries.push((hash_tag_for_slot(slot).to_owned(), true));
            }
        }
        Self {
            hot_slots: hot_slots.to_vec(),
            entries,
        }
    }

    /// The number of key indices (each is three keys).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn string_key(&self, i: usize) -> String {
        format!("{{{}}}:s{i}", self.entries[i].0)
    }

    fn counter_key(&self, i: usize) -> String {
        format!("{{{}}}:c{i}", self.entries[i].0)
    }

    fn mirror_key(&self, i: usize) -> String {
        format!("{{{}}}:m{i}", self.entries[i].0)
    }

    /// The workers: worker `w` of `n` owns the indices `i` with `i % n == w`.
    #[must_use]
    pub fn workers(&self, n: usize) -> Vec<Worker> {
        (0..n)
            .map(|w| Worker {
                id: w,
                keys: (w..self.len())
                    .step_by(n)
                    .map(|i| Entry {
                        string: self.string_key(i),
                        counter: self.counter_key(i),
                        mirror: self.mirror_key(i),
                        hot: self.entries[i].1,
                        value: None,
                        mirrored: None,
                        count: 0,
                        uncertain: false,
                    })
                    .collect(),
                populated: 0,
                rng: 0x9e37_79b9_7f4a_7c15 ^ (w as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
                pending: None,
                seq: 0,
                ops: 0,
                failures: Vec::new(),
                hot: (0..self.len())
                    .skip(w)
                    .step_by(n)
                    .enumerate()
                    .filter(|(_, i)| self.entries[*i].1)
                    .map(|(k, _)| k)
                    .collect(),
            })
            .collect()
    }
}

/// One key index of a worker, and what it knows was acknowledged.
#[derive(Debug, Clone)]
struct Entry {
    string: String,
    counter: String,
    mirror: String,
    hot: bool,
    /// The last acknowledged `SET` (or `MSET`) of the string key.
    value: Option<String>,
    /// The last acknowledged `MSET` of the mirror key.
    mirrored: Option<String>,
    /// The counter's acknowledged value.
    count: i64,
    /// A command on it failed: whether it ran is unknown.
    uncertain: bool,
}

impl Entry {
    /// The counter as `GET` reads it.
    fn expected_count(&self) -> Option<String> {
        (self.count != 0).then(|| self.count.to_string())
    }
}

/// A command for the adapter to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `SET key value`; report [`Reply::Ok`].
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// `MSET key value key value` (keys of one slot); report [`Reply::Ok`].
    MSet {
        /// The keys.
        keys: [String; 2],
        /// The value of both.
        value: String,
    },
    /// `INCR key`; report [`Reply::Int`].
    Incr {
        /// The key.
        key: String,
    },
    /// `GET key`; report [`Reply::Value`].
    Get {
        /// The key.
        key: String,
    },
    /// `MGET key key key` (keys of one slot); report [`Reply::Values`].
    MGet {
        /// The keys.
        keys: [String; 3],
    },
}

/// What a command answered, as the adapter decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `SET` succeeded.
    Ok,
    /// `INCR`'s new value.
    Int(i64),
    /// `GET`'s value.
    Value(Option<String>),
    /// `MGET`'s values.
    Values(Vec<Option<String>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Set,
    MSet,
    Incr,
    Get,
    MGet,
}

/// A single writer of its keys, with one command in flight.
#[derive(Debug)]
pub struct Worker {
    id: usize,
    keys: Vec<Entry>,
    /// Commands of the first pass (a `SET` and an `INCR` of every key)
    /// issued so far.
    populated: usize,
    rng: u64,
    pending: Option<(usize, Kind, Option<String>)>,
    seq: u64,
    ops: u64,
    failures: Vec<String>,
    /// The indices into `keys` of the hot ones.
    hot: Vec<usize>,
}

impl Worker {
    /// The next command. First an `MSET` and an `INCR` of every index it
    /// owns (after which it counts in [`Progress::populated`]), then random
    /// commands, half of them on hot keys.
    ///
    /// # Panics
    ///
    /// When the previous command was not reported to [`done`](Self::done).
    pub fn next_op(&mut self) -> Op {
        assert!(self.pending.is_none(), "one command in flight per worker");
        let (index, kind) = if self.populated < 2 * self.keys.len() {
            let n = self.populated;
            self.populated += 1;
            (
                n / 2,
                if n.is_multiple_of(2) {
                    Kind::MSet
                } else {
                    Kind::Incr
                },
            )
        } else {
            let r = self.random();
            let pool_hot = !self.hot.is_empty() && r & 1 == 0;
            let index = if pool_hot {
                self.hot[(r >> 8) as usize % self.hot.len()]
            } else {
                (r >> 8) as usize % self.keys.len()
            };
            let kind = match (r >> 40) % 5 {
                0 => Kind::Set,
                1 => Kind::MSet,
                2 => Kind::Incr,
                3 => Kind::Get,
                _ => Kind::MGet,
            };
            (index, kind)
        };
        let entry = &self.keys[index];
        let (op, value) = match kind {
            Kind::Set | Kind::MSet => {
                self.seq += 1;
                let value = format!("w{}-{}", self.id, self.seq);
                let op = if kind == Kind::Set {
                    Op::Set {
                        key: entry.string.clone(),
                        value: value.clone(),
                    }
                } else {
                    Op::MSet {
                        keys: [entry.string.clone(), entry.mirror.clone()],
                        value: value.clone(),
                    }
                };
                (op, Some(value))
            }
            Kind::Incr => (
                Op::Incr {
                    key: entry.counter.clone(),
                },
                None,
            ),
            Kind::Get => (
                Op::Get {
                    key: entry.string.clone(),
                },
                None,
            ),
            Kind::MGet => (
                Op::MGet {
                    keys: [
                        entry.string.clone(),
                        entry.mirror.clone(),
                        entry.counter.clone(),
                    ],
                },
                None,
            ),
        };
        self.pending = Some((index, kind, value));
        op
    }

    /// The outcome of the command of [`next_op`](Self::next_op), checked against
    /// what was acknowledged before; `progress` counts it.
    pub fn done(&mut self, progress: &Progress, outcome: Result<Reply, String>) {
        let Some((index, kind, value)) = self.pending.take() else {
            return;
        };
        self.ops += 1;
        if self.populated == 2 * self.keys.len() {
            // Counted once: `populated` goes one past when it is.
            self.populated += 1;
            progress.populated.fetch_add(1, Ordering::Relaxed);
        }
        let entry = &mut self.keys[index];
        progress.ops.fetch_add(1, Ordering::Relaxed);
        if entry.hot {
            progress.hot_ops.fetch_add(1, Ordering::Relaxed);
        }
        let key = match kind {
            Kind::Incr => &entry.counter,
            Kind::Set | Kind::MSet | Kind::Get | Kind::MGet => &entry.string,
        };
        let problem = match (kind, outcome) {
            (_, Err(error)) => {
                entry.uncertain = true;
                Some(format!("{kind:?} {key} failed: {error}"))
            }
            (Kind::Set, Ok(Reply::Ok)) => {
                entry.value = value;
                None
            }
            (Kind::MSet, Ok(Reply::Ok)) => {
                entry.mirrored.clone_from(&value);
                entry.value = value;
                None
            }
            (Kind::Incr, Ok(Reply::Int(n))) => {
                let expected = entry.count + 1;
                entry.count = n;
                (n != expected && !entry.uncertain)
                    .then(|| format!("INCR {key} gave {n}, acknowledged before: {expected} - 1"))
            }
            (Kind::Get, Ok(Reply::Value(got))) => {
                (got != entry.value && !entry.uncertain).then(|| {
                    format!(
                        "GET {key} gave {got:?}, last acknowledged SET: {:?}",
                        entry.value
                    )
                })
            }
            (Kind::MGet, Ok(Reply::Values(got))) => {
                let expected = vec![
                    entry.value.clone(),
                    entry.mirrored.clone(),
                    entry.expected_count(),
                ];
                (got != expected && !entry.uncertain).then(|| {
                    format!("MGET {key} (string, mirror, counter) gave {got:?}, acknowledged: {expected:?}")
                })
            }
            (kind, Ok(other)) => Some(format!("{kind:?} {key}: unexpected reply {other:?}")),
        };
        if let Some(problem) = problem {
            progress.failures.fetch_add(1, Ordering::Relaxed);
            if self.failures.len() < 20 {
                self.failures.push(problem);
            }
        }
    }

    /// Every key whose commands all succeeded, with the value a `GET` must
    /// read now (`None`: the key must not exist).
    pub fn expected(&self) -> impl Iterator<Item = (String, Option<String>)> + '_ {
        self.keys.iter().filter(|e| !e.uncertain).flat_map(|e| {
            [
                (e.string.clone(), e.value.clone()),
                (e.mirror.clone(), e.mirrored.clone()),
                (e.counter.clone(), e.expected_count()),
            ]
        })
    }

    /// The commands it ran.
    #[must_use]
    pub const fn ops(&self) -> u64 {
        self.ops
    }

    /// xorshift64*: deterministic per worker.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// What the workers have done, shared with the scenario, and the signal to
/// stop.
#[derive(Debug, Default)]
pub struct Progress {
    ops: AtomicU64,
    hot_ops: AtomicU64,
    failures: AtomicU64,
    populated: AtomicUsize,
    stop: AtomicBool,
}

impl Progress {
    /// A new, shared, tracker.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the workers should stop (after the command in flight).
    #[must_use]
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Tells the workers to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Commands completed.
    #[must_use]
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    /// Commands completed on hot keys.
    #[must_use]
    pub fn hot_ops(&self) -> u64 {
        self.hot_ops.load(Ordering::Relaxed)
    }

    /// Failed or wrong commands so far.
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Workers done with their first pass.
    #[must_use]
    pub fn populated(&self) -> usize {
        self.populated.load(Ordering::Relaxed)
    }

    /// Polls until `done` holds; `TimedOut` naming `what` after [`STALL`].
    fn wait(&self, what: &str, done: impl Fn(&Self) -> bool) -> io::Result<()> {
        let deadline = Instant::now() + STALL;
        while !done(self) {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the load stalled waiting for {what}: {} commands, {} hot, {} failures",
                        self.ops(),
                        self.hot_ops(),
                        self.failures()
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Waits until `n` more commands on hot keys completed.
    fn hot_ops_more(&self, n: u64, what: &str) -> io::Result<()> {
        let target = self.hot_ops() + n;
        self.wait(what, |p| p.hot_ops() >= target)
    }
}

/// What [`scenario`] did.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// `(step, time since the start)`.
    pub steps: Vec<(String, Duration)>,
    /// Keys moved by `MIGRATE`.
    pub keys_migrated: usize,
}

/// Moves each hot slot from `from` to `to`, a batch of keys at a time with
/// load on the hot slots between batches, each slot finished before the
/// next (the cluster is not ready while a slot is open).
fn migrate_under_load(
    cluster: &Cluster,
    progress: &Progress,
    slots: &[u16],
    from: u16,
    to: u16,
) -> io::Result<usize> {
    let mut moved = 0;
    for &slot in slots {
        let mut migration = cluster.begin_migration(slot, from, to)?;
        // Open, nothing moved yet: the source still serves every key.
        progress.hot_ops_more(HOT_OPS_BETWEEN, "load on an open slot")?;
        // The keys moved so far are answered -ASK (and multi-key commands
        // over moved and unmoved keys -TRYAGAIN).
        while migration.move_keys(BATCH)? > 0 {
            progress.hot_ops_more(HOT_OPS_BETWEEN, "load between MIGRATE batches")?;
        }
        moved += migration.finish()?;
        // The client still maps the slot to the source: -MOVED.
        progress.hot_ops_more(HOT_OPS_BETWEEN, "load after a migration")?;
    }
    Ok(moved)
}

/// The topology changes of the test, while the workers run; stops them at
/// the end (also on an error).
///
/// 1. waits until every one of `workers` populated its keys;
/// 2. moves the hot slots from their primary to the next one under load;
/// 3. fails that one over (`CLUSTER FAILOVER` on its replica), under load;
/// 4. moves the hot slots off the promoted replica to a third primary;
/// 5. fails back (`CLUSTER FAILOVER` on the demoted primary), under load.
///
/// # Errors
///
/// A topology change that fails, or a load that stalls (no progress for
/// 15 s).
///
/// # Panics
///
/// When the hot slots are not all served by one primary, or the cluster
/// has fewer than 3 primaries or no replica for that primary.
pub fn scenario(
    cluster: &Cluster,
    progress: &Progress,
    keys: &KeySpace,
    workers: usize,
) -> io::Result<Timeline> {
    struct StopOnDrop<'a>(&'a Progress);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.stop();
        }
    }
    let _stop = StopOnDrop(progress);
    let start = Instant::now();
    let mut timeline = Timeline::default();
    let step = |timeline: &mut Timeline, what: &str| {
        timeline.steps.push((what.to_owned(), start.elapsed()));
    };
    let slots = &keys.hot_slots;
    let first = cluster.node_for_slot(slots[0]);
    assert!(
        slots.iter().all(|&s| first.serves(s)),
        "the hot slots are served by one primary"
    );
    let primaries: Vec<u16> = cluster.primaries().iter().map(|n| n.port).collect();
    assert!(primaries.len() >= 3, "3 primaries at least");
    let at = primaries.iter().position(|&p| p == first.port).unwrap_or(0);
    let second = primaries[(at + 1) % primaries.len()];
    let third = primaries[(at + 2) % primaries.len()];

    progress.wait("every worker's first pass", |p| p.populated() >= workers)?;
    step(&mut timeline, "populated");
    timeline.keys_migrated += migrate_under_load(cluster, progress, slots, first.port, second)?;
    step(&mut timeline, "migrated (1)");

    let second_id = cluster.node(second).id;
    let replica = cluster
        .replicas_of(&second_id)
        .first()
        .map(|n| n.port)
        .expect("the primary has a replica");
    cluster.failover(replica)?;
    step(&mut timeline, "failed over");
    progress.hot_ops_more(HOT_OPS_BETWEEN, "load after the failover")?;

    timeline.keys_migrated += migrate_under_load(cluster, progress, slots, replica, third)?;
    step(&mut timeline, "migrated (2)");
    let ops_before_failback = progress.ops();
    cluster.failover(second)?;
    step(&mut timeline, "failed back");
    progress.wait("load after the failback", |p| {
        p.ops() >= ops_before_failback + 2000
    })?;
    progress.stop();
    Ok(timeline)
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Commands the workers ran.
    pub ops: u64,
    /// Keys checked (each read through the client and from its node).
    pub keys: usize,
    /// Failed commands and wrong replies seen during the load (the first
    /// of each worker).
    pub failures: Vec<String>,
    /// Their count.
    pub failure_count: u64,
    /// Acknowledged writes not read back.
    pub lost: Vec<String>,
}

/// Reads every key of `workers` back through `read` (the client) and
/// straight from the primary that owns its slot now, and compares with the
/// model. Keys with a failed command are skipped (the failure is reported).
///
/// # Errors
///
/// Connection failures to the nodes.
pub fn verify(
    cluster: &Cluster,
    progress: &Progress,
    workers: &[Worker],
    mut read: impl FnMut(&str) -> Result<Option<String>, String>,
) -> io::Result<Verdict> {
    let mut verdict = Verdict {
        ops: workers.iter().map(|w| w.ops).sum(),
        failure_count: progress.failures(),
        failures: workers.iter().flat_map(|w| w.failures.clone()).collect(),
        ..Verdict::default()
    };
    // key -> expected value, by node.
    let mut by_node: BTreeMap<u16, Vec<(String, Option<String>)>> = BTreeMap::new();
    for (key, expected) in workers.iter().flat_map(Worker::expected) {
        verdict.keys += 1;
        match read(&key) {
            Ok(got) if got == expected => {}
            Ok(got) => verdict.lost.push(format!(
                "{key}: the client reads {got:?}, acknowledged {expected:?}"
            )),
            Err(error) => verdict
                .lost
                .push(format!("{key}: the client's GET failed: {error}")),
        }
        let port = cluster.node_for_slot(key_slot(key.as_bytes())).port;
        by_node.entry(port).or_default().push((key, expected));
    }
    for (port, keys) in by_node {
        let mut conn = cluster.connect(port)?;
        for chunk in keys.chunks(PIPELINE) {
            let gets: Vec<[&str; 2]> = chunk.iter().map(|(k, _)| ["GET", k.as_str()]).collect();
            for ((key, expected), frame) in chunk.iter().zip(conn.pipeline(&gets)?) {
                let got = match frame.without_attributes() {
                    Frame::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    Frame::NullBulk | Frame::Null => None,
                    other => Some(format!("{other:?}")),
                };
                if got != *expected {
                    verdict.lost.push(format!(
                        "{key}: node :{port} holds {got:?}, acknowledged {expected:?}"
                    ));
                }
            }
        }
    }
    Ok(verdict)
}

/// How many replies with this error code (`TRYAGAIN`, `CLUSTERDOWN`...)
/// the nodes have sent, from `INFO errorstats`.
///
/// # Errors
///
/// Connection failures to the nodes.
pub fn error_count(cluster: &Cluster, code: &str) -> io::Result<u64> {
    let prefix = format!("errorstat_{code}:count=");
    cluster.ports().into_iter().try_fold(0, |sum, port| {
        let info = cluster.cmd_text(port, &["INFO", "errorstats"])?;
        let count = info
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(sum + count)
    })
}

/// The connections named `name` (`CLIENT SETNAME`, the client's
/// `?name=` URL option) that each node of the cluster has, by port.
///
/// # Errors
///
/// Connection failures to the nodes.
pub fn named_connections(cluster: &Cluster, name: &str) -> io::Result<BTreeMap<u16, usize>> {
    let tag = format!(" name={name} ");
    cluster
        .ports()
        .into_iter()
        .map(|port| {
            let clients = cluster.server(port).client_list()?;
            Ok((port, clients.iter().filter(|c| c.contains(&tag)).count()))
        })
        .collect()
}

/// Polls (up to 10 s) until every primary has a number of connections
/// named `name` in `primary` and every replica one in `replica` (closed
/// connections take a moment to leave the servers' lists). The counts of
/// the last look otherwise.
///
/// # Errors
///
/// Connection failures to the nodes.
pub fn wait_for_connections(
    cluster: &Cluster,
    name: &str,
    primary: RangeInclusive<usize>,
    replica: RangeInclusive<usize>,
) -> io::Result<Result<(), BTreeMap<u16, usize>>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counts = named_connections(cluster, name)?;
        let primaries: Vec<u16> = cluster.primaries().iter().map(|n| n.port).collect();
        let ok = counts.iter().all(|(port, n)| {
            if primaries.contains(port) {
                primary.contains(n)
            } else {
                replica.contains(n)
            }
        });
        if ok {
            return Ok(Ok(()));
        }
        if Instant::now() >= deadline {
            return Ok(Err(counts));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `ops` commands of every worker against an in-memory store;
    /// `lose` is told each write and returns whether the store drops it.
    fn run(
        ops: usize,
        mut lose: impl FnMut(&str) -> bool,
    ) -> (Progress, Vec<Worker>, BTreeMap<String, String>) {
        let keys = KeySpace::new(40, &[100, 200], 5);
        let progress = Progress::new();
        let mut workers = keys.workers(3);
        let mut store: BTreeMap<String, String> = BTreeMap::new();
        for _ in 0..ops {
            for worker in &mut workers {
                let reply = match worker.next_op() {
                    Op::Set { key, value } => {
                        if !lose(&key) {
                            store.insert(key, value);
                        }
                        Reply::Ok
                    }
                    Op::MSet { keys, value } => {
                        for key in keys {
                            if !lose(&key) {
                                store.insert(key, value.clone());
                            }
                        }
                        Reply::Ok
                    }
                    Op::Incr { key } => {
                        let n = store.get(&key).map_or(0, |v| v.parse::<i64>().unwrap()) + 1;
                        if !lose(&key) {
                            store.insert(key, n.to_string());
                        }
                        Reply::Int(n)
                    }
                    Op::Get { key } => Reply::Value(store.get(&key).cloned()),
                    Op::MGet { keys } => {
                        Reply::Values(keys.iter().map(|k| store.get(k).cloned()).collect())
                    }
                };
                worker.done(&progress, Ok(reply));
            }
        }
        (progress, workers, store)
    }

    /// The keys whose value in `store` is not what the workers expect.
    fn lost(workers: &[Worker], store: &BTreeMap<String, String>) -> Vec<String> {
        workers
            .iter()
            .flat_map(Worker::expected)
            .filter(|(key, expected)| store.get(key) != expected.as_ref())
            .map(|(key, _)| key)
            .collect()
    }

    #[test]
    fn a_faithful_store_passes_and_every_worker_populates() {
        let (progress, workers, store) = run(400, |_| false);
        assert_eq!(progress.failures(), 0, "{:?}", workers[0].failures);
        assert_eq!(lost(&workers, &store), Vec::<String>::new());
        assert_eq!(workers.iter().flat_map(Worker::expected).count(), 150);
        assert_eq!(progress.populated(), 3);
        assert_eq!(progress.ops(), 1200);
        assert!(progress.hot_ops() > 0);
    }

    #[test]
    fn a_lost_write_is_seen() {
        let mut total = 0;
        let _ = run(400, |_| {
            total += 1;
            false
        });
        // The last write is never overwritten: the final check sees it; the
        // others are read (or written over) later in the (deterministic)
        // run.
        // Each write dropped in turn: unless a later `SET` hides it (no
        // one could tell), a read or the final check sees it.
        let (mut checked, mut unnoticed) = (0, Vec::new());
        for lost_write in 1..=total {
            let (mut writes, mut dropped, mut hidden) = (0, None::<String>, false);
            let (progress, workers, store) = run(400, |key| {
                writes += 1;
                if dropped.as_deref() == Some(key) && !key.contains(":c") {
                    hidden = true;
                }
                if writes == lost_write {
                    dropped = Some(key.to_owned());
                }
                writes == lost_write
            });
            if hidden {
                continue;
            }
            checked += 1;
            if progress.failures() == 0 && lost(&workers, &store).is_empty() {
                unnoticed.push(lost_write);
            }
        }
        assert!(unnoticed.is_empty(), "unnoticed of {total}: {unnoticed:?}");
        assert!(checked > total / 4, "{checked} of {total} checked");
    }

    #[test]
    fn a_failed_command_is_a_failure() {
        let keys = KeySpace::new(4, &[], 0);
        let progress = Progress::new();
        let mut worker = keys.workers(1).remove(0);
        let _ = worker.next_op();
        worker.done(&progress, Err("connection reset".into()));
        assert_eq!(progress.failures(), 1);
        assert!(worker.failures[0].contains("connection reset"));
    }
}
