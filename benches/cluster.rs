//! Cluster throughput against a real Redis Cluster on loopback (3 primaries
//! with a replica each, started by the testkit): redpoll-smol, redpoll-std
//! and the `redis` crate's cluster clients (sync and async on tokio) in one
//! criterion run, on the same workload.
//!
//! The keys: one per hash slot, 16,384 in all (`{TAG}:bench`, `TAG` from
//! `hash_tag_for_slot`), visited in a scattered order (slot `n * 6389 mod
//! 16384` for the `n`-th key), so consecutive commands go to different
//! nodes and every slot is used. Each value is 64 bytes. Every key is set
//! before anything is measured; the keys per primary are printed then, and
//! the `MOVED` / `ASK` replies the nodes sent while measuring at the end
//! (0 expected: every client routes by slot).
//!
//! Groups:
//!
//! - `cluster/get_set_batch_{64,256}`: one caller; each iteration sends a
//!   batch of `n` commands together, `n / 2` pairs of `SET k v` then `GET
//!   k`, on the next `n / 2` keys of the order (a counter kept across
//!   samples, so all slots are visited), and waits for every reply.
//!   Throughput: commands per second.
//! - `cluster/concurrent_50`: 50 tasks (threads for redpoll-std) share one
//!   client and each issues single `GET`s one after the other, 20 per
//!   iteration (1,000 per iteration), task `t` walking the key order from
//!   position `t * 331`. The tasks are started once per criterion
//!   measurement, as in `benches/e2e.rs`.
//!
//! Implementations (ids):
//!
//! - `redpoll-smol`: `Builder::cluster(..).build()` (the driver on a thread
//!   of its own). In the batch groups a `Pipeline` through
//!   `Client::pipeline` (the cluster machine routes each command by slot and
//!   each node's commands leave together), the caller on the bench thread.
//! - `redpoll-smol-join` (batch groups): the same client, the batch as `n`
//!   concurrent `Client::run` futures awaited with `join_all`.
//! - `redpoll-smol-spawned`: `Client::cluster_with_driver`, the driver
//!   spawned on the smol executor that runs the tasks of `concurrent_50`.
//! - `redpoll-std`: `redpoll_std::Builder::cluster(..).build()`; the batch
//!   as a `Pipeline` (routed per command as for smol); 50 threads started
//!   once in `concurrent_50`.
//! - `redis-cluster-sync` (batch groups): `redis::cluster::ClusterConnection`
//!   and a `cluster_pipe()`: it splits the pipeline by node, writes each
//!   node's part, then reads the replies node by node.
//! - `redis-cluster-async`: `redis::cluster_async::ClusterConnection`
//!   (`ClusterClient::get_async_connection`) on a multi-thread tokio runtime
//!   with one worker per core. Its pipelines must stay on one slot
//!   ("Received crossed slots in pipeline"), so the batch is `n` concurrent
//!   `query_async` futures awaited with `join_all`, the caller in
//!   `block_on` on the bench thread; tasks spawned on the runtime in
//!   `concurrent_50`.
//!
//! Run with `cargo bench --bench cluster`; see the "Cluster" section of
//! BENCHMARKS.md for the figures. Without `redis-server` or `redis-cli` it
//! prints "skipped: ..." and exits 0. Everything it prints itself goes to
//! stderr: stdout is criterion's, whose `--list` output cargo-nextest
//! parses line by line (`cargo nextest run --all-targets` lists benches).

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use futures_util::future::join_all;
use redis::AsyncCommands as _;
use redpoll_core::cmd::{self, Cmd, Pipeline};
use redpoll_core::resp::Frame;
use redpoll_testkit::cluster::{Cluster, ClusterOptions, SLOTS, hash_tag_for_slot};

#[path = "support/smol_pool.rs"]
mod smol_pool;
#[path = "support/std_pool.rs"]
mod std_pool;
use smol_pool::SmolPool;
use std_pool::StdPool;

/// Batch sizes (commands per batch: half `SET`, half `GET`).
const BATCHES: [usize; 2] = [64, 256];
/// The step through the slots between consecutive keys: odd, so the walk
/// visits all 16,384 slots before it repeats.
const STRIDE: usize = 6389;
/// Tasks (threads) of `concurrent_50`, and `GET`s per task per iteration.
const TASKS: usize = 50;
const GETS_PER_TASK: u64 = 20;
/// How far apart the tasks of `concurrent_50` start in the key order.
const TASK_SPREAD: usize = 331;

// ---------------------------------------------------------------------------
// The keys and the batches.

/// One key per slot in the scattered order, and its 64-byte value.
struct Keys {
    keys: Vec<String>,
    values: Vec<Vec<u8>>,
}

impl Keys {
    fn new() -> Self {
        let keys: Vec<String> = (0..usize::from(SLOTS))
            .map(|n| {
                let slot = u16::try_from(n * STRIDE % usize::from(SLOTS)).expect("a slot");
                format!("{{{}}}:bench", hash_tag_for_slot(slot))
            })
            .collect();
        let values = keys
            .iter()
            .map(|k| {
                let mut v = format!("{k}:").into_bytes();
                v.resize(64, b'v');
                v
            })
            .collect();
        Self { keys, values }
    }

    fn key(&self, n: usize) -> &str {
        &self.keys[n % self.keys.len()]
    }

    fn value(&self, n: usize) -> &[u8] {
        &self.values[n % self.values.len()]
    }

    /// The key positions of batch number `batch` of `size` commands:
    /// command `i` uses position `first + i / 2`.
    fn first_of(batch: u64, size: usize) -> usize {
        (batch as usize).wrapping_mul(size / 2) % usize::from(SLOTS)
    }

    /// Command `i` of a batch starting at key position `first`: `SET` when
    /// `i` is even, else `GET` of the key just set.
    fn redpoll_cmd(&self, first: usize, i: usize) -> Cmd<Frame> {
        let n = first + i / 2;
        if i.is_multiple_of(2) {
            cmd::set(self.key(n), self.value(n)).returning()
        } else {
            cmd::get(self.key(n)).returning()
        }
    }

    fn redpoll_pipeline(&self, first: usize, size: usize) -> Pipeline<Vec<Frame>> {
        let mut p = Pipeline::dynamic();
        for i in 0..size {
            p.push(self.redpoll_cmd(first, i));
        }
        p
    }

    fn redis_cmd(&self, first: usize, i: usize) -> redis::Cmd {
        let n = first + i / 2;
        if i.is_multiple_of(2) {
            redis::cmd("SET")
                .arg(self.key(n))
                .arg(self.value(n))
                .clone()
        } else {
            redis::cmd("GET").arg(self.key(n)).clone()
        }
    }

    fn redis_pipeline(&self, first: usize, size: usize) -> redis::cluster::ClusterPipeline {
        let mut p = redis::cluster::cluster_pipe();
        for i in 0..size {
            p.add_command(self.redis_cmd(first, i));
        }
        p
    }

    /// Checks a batch's replies: `OK` for each `SET`, the value for each
    /// `GET`.
    fn check_redpoll(&self, first: usize, size: usize, frames: &[Frame], who: &str) {
        assert_eq!(frames.len(), size, "{who}: one reply per command");
        for (i, f) in frames.iter().enumerate() {
            if i.is_multiple_of(2) {
                assert!(
                    matches!(f, Frame::Simple(s) if s == "OK"),
                    "{who}: SET #{i}: {f:?}"
                );
            } else {
                let want = self.value(first + i / 2);
                assert!(
                    matches!(f, Frame::Bulk(b) if b == want),
                    "{who}: GET #{i}: {f:?}"
                );
            }
        }
    }

    fn check_redis(&self, first: usize, size: usize, replies: &[redis::Value], who: &str) {
        assert_eq!(replies.len(), size, "{who}: one reply per command");
        for (i, v) in replies.iter().enumerate() {
            if i.is_multiple_of(2) {
                assert!(matches!(v, redis::Value::Okay), "{who}: SET #{i}: {v:?}");
            } else {
                let want = self.value(first + i / 2);
                assert!(
                    matches!(v, redis::Value::BulkString(b) if b == want),
                    "{who}: GET #{i}: {v:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The clients.

/// Every client measured, connected to one cluster.
struct Clients {
    /// `Builder::cluster(..).build()`: the driver on a thread of its own.
    smol: redpoll_smol::Client,
    /// `Client::cluster_with_driver`, the driver spawned on `pool`.
    smol_spawned: redpoll_smol::Client,
    std: redpoll_std::Client,
    redis_sync: redis::cluster::ClusterConnection,
    redis_async: redis::cluster_async::ClusterConnection,
    /// The executor of redpoll-smol's tasks (and of `smol_spawned`'s driver).
    pool: SmolPool,
    /// The runtime of the redis crate's tasks and connection drivers.
    tokio: tokio::runtime::Runtime,
}

impl Clients {
    fn connect(seeds: &[String], threads: usize) -> Self {
        let more: Vec<&str> = seeds[1..].iter().map(String::as_str).collect();
        let smol_builder = || redpoll_smol::Builder::new(&seeds[0]).expect("redpoll-smol builder");
        let smol = smol_builder()
            .cluster(&more)
            .and_then(redpoll_smol::Builder::build)
            .expect("redpoll-smol cluster client");
        let pool = SmolPool::new(threads);
        let addresses = seeds
            .iter()
            .map(|url| redpoll_core::url::parse(url).map(|u| u.address))
            .collect::<Result<Vec<_>, _>>()
            .expect("seed URLs");
        let node = smol_builder().config().expect("redpoll-smol config");
        let (smol_spawned, driver) = redpoll_smol::Client::cluster_with_driver(
            redpoll_core::cluster::ClusterConfig::new(addresses, node),
        );
        pool.ex.spawn(driver).detach();
        let std = redpoll_std::Client::builder(&seeds[0])
            .expect("redpoll-std builder")
            .cluster(&more)
            .and_then(redpoll_std::Builder::build)
            .expect("redpoll-std cluster client");

        let redis_client = redis::cluster::ClusterClient::new(seeds.iter().map(String::as_str))
            .expect("redis cluster client");
        let redis_sync = redis_client
            .get_connection()
            .expect("redis sync cluster connection");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let redis_async = tokio
            .block_on(redis_client.get_async_connection())
            .expect("redis async cluster connection");
        Self {
            smol,
            smol_spawned,
            std,
            redis_sync,
            redis_async,
            pool,
            tokio,
        }
    }
}

/// Sets every key (through redpoll-std, in pipelines of 1,024 commands).
fn populate(client: &redpoll_std::Client, keys: &Keys) {
    for chunk in (0..keys.keys.len()).collect::<Vec<_>>().chunks(1024) {
        let mut p = Pipeline::dynamic();
        for &n in chunk {
            p.push(cmd::set(keys.key(n), keys.value(n)));
        }
        let replies: Vec<Frame> = client.pipeline(p).expect("populate the keys");
        assert_eq!(replies.len(), chunk.len());
    }
}

/// Before measuring: every client runs one batch of each size over keys of
/// every primary (checked reply by reply) and reads one key alone.
fn validate(c: &mut Clients, keys: &Keys) {
    for size in BATCHES {
        let first = Keys::first_of(7, size);
        for (who, client) in [
            ("redpoll-smol", &c.smol),
            ("redpoll-smol-spawned", &c.smol_spawned),
        ] {
            let frames =
                smol::block_on(client.pipeline(keys.redpoll_pipeline(first, size))).unwrap();
            keys.check_redpoll(first, size, &frames, who);
        }
        let frames = smol::block_on(join_all(
            (0..size).map(|i| c.smol.run(keys.redpoll_cmd(first, i))),
        ))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
        keys.check_redpoll(first, size, &frames, "redpoll-smol-join");
        let frames = c.std.pipeline(keys.redpoll_pipeline(first, size)).unwrap();
        keys.check_redpoll(first, size, &frames, "redpoll-std");

        let replies: Vec<redis::Value> = keys
            .redis_pipeline(first, size)
            .query(&mut c.redis_sync)
            .unwrap();
        keys.check_redis(first, size, &replies, "redis-cluster-sync");
        let replies = c
            .tokio
            .block_on(redis_async_batch(&c.redis_async, keys, first, size));
        keys.check_redis(first, size, &replies, "redis-cluster-async");
    }
    let want = Some(keys.value(3).to_vec());
    for client in [&c.smol, &c.smol_spawned] {
        let got = smol::block_on(client.run(cmd::get(keys.key(3)))).unwrap();
        assert_eq!(got.map(|b| b.to_vec()), want);
    }
    let got = c.std.run(cmd::get(keys.key(3))).unwrap();
    assert_eq!(got.map(|b| b.to_vec()), want);
    let mut con = c.redis_async.clone();
    let got: Option<Vec<u8>> = c.tokio.block_on(con.get(keys.key(3))).unwrap();
    assert_eq!(got, want);
}

// ---------------------------------------------------------------------------
// Batches over all slots.

/// A batch through the redis crate's async cluster connection: `size`
/// concurrent requests (its pipelines may not cross slots).
async fn redis_async_batch(
    con: &redis::cluster_async::ClusterConnection,
    keys: &Keys,
    first: usize,
    size: usize,
) -> Vec<redis::Value> {
    join_all((0..size).map(|i| {
        let mut con = con.clone();
        let cmd = keys.redis_cmd(first, i);
        async move { cmd.query_async::<redis::Value>(&mut con).await }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .unwrap()
}

fn batch_group(g: &mut BenchmarkGroup<'_, WallTime>, c: &mut Clients, keys: &Keys, size: usize) {
    // A counter per implementation, kept across samples: every slot is
    // visited, whatever criterion's iteration counts.
    let batches = |next: &mut u64, iters: u64| {
        let start = *next;
        *next += iters;
        start..start + iters
    };

    for (id, client) in [
        ("redpoll-smol", &c.smol),
        ("redpoll-smol-spawned", &c.smol_spawned),
    ] {
        let mut next = 0;
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let range = batches(&mut next, iters);
                smol::block_on(async {
                    let start = Instant::now();
                    for batch in range {
                        let first = Keys::first_of(batch, size);
                        let frames = client
                            .pipeline(keys.redpoll_pipeline(first, size))
                            .await
                            .unwrap();
                        assert_eq!(black_box(frames).len(), size);
                    }
                    start.elapsed()
                })
            });
        });
    }

    let mut next = 0;
    g.bench_function("redpoll-smol-join", |b| {
        b.iter_custom(|iters| {
            let range = batches(&mut next, iters);
            smol::block_on(async {
                let start = Instant::now();
                for batch in range {
                    let first = Keys::first_of(batch, size);
                    let replies =
                        join_all((0..size).map(|i| c.smol.run(keys.redpoll_cmd(first, i)))).await;
                    for r in black_box(replies) {
                        r.unwrap();
                    }
                }
                start.elapsed()
            })
        });
    });

    let mut next = 0;
    g.bench_function("redpoll-std", |b| {
        b.iter_custom(|iters| {
            let range = batches(&mut next, iters);
            let start = Instant::now();
            for batch in range {
                let first = Keys::first_of(batch, size);
                let frames = c.std.pipeline(keys.redpoll_pipeline(first, size)).unwrap();
                assert_eq!(black_box(frames).len(), size);
            }
            start.elapsed()
        });
    });

    let mut next = 0;
    let con = &mut c.redis_sync;
    g.bench_function("redis-cluster-sync", |b| {
        b.iter_custom(|iters| {
            let range = batches(&mut next, iters);
            let start = Instant::now();
            for batch in range {
                let first = Keys::first_of(batch, size);
                let replies: Vec<redis::Value> =
                    keys.redis_pipeline(first, size).query(con).unwrap();
                assert_eq!(black_box(replies).len(), size);
            }
            start.elapsed()
        });
    });

    let mut next = 0;
    let con = &c.redis_async;
    g.bench_function("redis-cluster-async", |b| {
        b.iter_custom(|iters| {
            let range = batches(&mut next, iters);
            c.tokio.block_on(async {
                let start = Instant::now();
                for batch in range {
                    let first = Keys::first_of(batch, size);
                    let replies = redis_async_batch(con, keys, first, size).await;
                    assert_eq!(black_box(replies).len(), size);
                }
                start.elapsed()
            })
        });
    });
}

// ---------------------------------------------------------------------------
// 50 concurrent tasks, single GETs over all slots.

fn concurrent_group(g: &mut BenchmarkGroup<'_, WallTime>, c: &Clients, keys: &Arc<Keys>) {
    for (id, client) in [
        ("redpoll-smol", &c.smol),
        ("redpoll-smol-spawned", &c.smol_spawned),
    ] {
        let ex = &c.pool.ex;
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        let client = client.clone();
                        let keys = keys.clone();
                        ex.spawn(async move {
                            for n in 0..(iters * GETS_PER_TASK) as usize {
                                let key = keys.key(t * TASK_SPREAD + n);
                                let v = client.run(cmd::get(key)).await.unwrap();
                                assert!(black_box(v).is_some());
                            }
                        })
                    })
                    .collect();
                smol::block_on(async {
                    for t in tasks {
                        t.await;
                    }
                });
                start.elapsed()
            });
        });
    }

    let pool = StdPool::new(&c.std, TASKS, {
        let keys = keys.clone();
        move |client, t, i| {
            let v = client.run(cmd::get(keys.key(t * TASK_SPREAD + i))).unwrap();
            assert!(black_box(v).is_some());
        }
    });
    g.bench_function("redpoll-std", |b| {
        b.iter_custom(|iters| pool.run(iters * GETS_PER_TASK));
    });
    drop(pool);

    let con = &c.redis_async;
    g.bench_function("redis-cluster-async", |b| {
        b.iter_custom(|iters| {
            c.tokio.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        let mut con = con.clone();
                        let keys = keys.clone();
                        tokio::spawn(async move {
                            for n in 0..(iters * GETS_PER_TASK) as usize {
                                let key = keys.key(t * TASK_SPREAD + n);
                                let v: Option<Vec<u8>> = con.get(key).await.unwrap();
                                assert!(black_box(v).is_some());
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                start.elapsed()
            })
        });
    });
}

/// Why `program` cannot be used (`program --version` fails), or `None`;
/// `env` names the variable the testkit reads its path from.
fn missing(env: &str, program: &str) -> Option<String> {
    let path = std::env::var_os(env).unwrap_or_else(|| program.into());
    let ran = Command::new(&path)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match ran {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!("{} --version: {status}", path.to_string_lossy())),
        Err(e) => Some(format!("{}: {e}", path.to_string_lossy())),
    }
}

fn main() {
    let missing: Vec<String> = [
        ("REDPOLL_REDIS_SERVER", "redis-server"),
        ("REDPOLL_REDIS_CLI", "redis-cli"),
    ]
    .into_iter()
    .filter_map(|(env, program)| missing(env, program))
    .collect();
    if !missing.is_empty() {
        eprintln!(
            "skipped: a real cluster needs redis-server and redis-cli ({})",
            missing.join("; ")
        );
        return;
    }
    let cluster = Cluster::start(ClusterOptions::new()).expect("start a 3 x 2 node cluster");
    let threads = thread::available_parallelism().map_or(2, usize::from);
    let mut clients = Clients::connect(&cluster.seed_urls(), threads);
    let keys = Arc::new(Keys::new());
    populate(&clients.std, &keys);
    validate(&mut clients, &keys);
    let spread: Vec<String> = cluster
        .primaries()
        .iter()
        .map(|n| {
            let keys = match cluster.cmd(n.port, &["DBSIZE"]).expect("DBSIZE") {
                Frame::Integer(n) => n,
                other => panic!("DBSIZE: {other:?}"),
            };
            format!("{}: {} slots, {keys} keys", n.port, n.slot_count())
        })
        .collect();
    eprintln!("primaries: {}", spread.join("; "));
    cluster.reset_stats().expect("reset the error counts");

    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();

    for size in BATCHES {
        let mut g = criterion.benchmark_group(format!("cluster/get_set_batch_{size}"));
        g.throughput(Throughput::Elements(size as u64));
        batch_group(&mut g, &mut clients, &keys, size);
        g.finish();
    }

    let mut g = criterion.benchmark_group(format!("cluster/concurrent_{TASKS}"));
    g.throughput(Throughput::Elements(TASKS as u64 * GETS_PER_TASK));
    concurrent_group(&mut g, &clients, &keys);
    g.finish();

    criterion.final_summary();
    // Every command should have gone straight to its slot's owner.
    let redirects = cluster.total_redirects().expect("the error counts");
    eprintln!(
        "redirects while measuring: {} MOVED, {} ASK",
        redirects.moved, redirects.ask
    );
    drop(clients);
    drop(cluster);
}
