//! End-to-end benchmarks against a real `redis-server` on loopback, started
//! by the testkit: redpoll-smol, redpoll-std and the `redis` crate (its
//! sync connection and its multiplexed async connection on tokio) in one
//! criterion run.
//!
//! Groups:
//!
//! - `e2e/get_set_depth_{1,16,64}`: one caller, one connection; each
//!   iteration sends `depth` commands together (a pipeline), half `SET`,
//!   half `GET`, on four keys, and waits for every reply. Depth 1 is a single
//!   command per iteration through the one-command API (`run` / `query`),
//!   `SET` and `GET` in turn. Throughput: commands per second.
//! - `e2e/concurrent_50`: 50 tasks (threads for redpoll-std) share one
//!   client and each issues single `GET`s, one at a time, 20 per iteration:
//!   1,000 commands per iteration.
//!
//! Implementations (ids):
//!
//! - `redpoll-smol`: `redpoll_smol::Client::new`, its driver on a thread of
//!   its own. Callers: the bench thread (`smol::block_on`) in the depth
//!   groups, tasks on a smol executor with one thread per core in
//!   `concurrent_50`.
//! - `redpoll-smol-local` (depth groups): `Client::with_driver`, the driver
//!   on a `LocalExecutor` run by the bench thread, which is also the caller.
//! - `redpoll-smol-spawned` (`concurrent_50`): `Client::with_driver`, the
//!   driver spawned on the tasks' executor.
//! - `redpoll-std`: `redpoll_std::Client`; in `concurrent_50`, 50 threads
//!   started once.
//! - `redis-sync` (depth groups): `redis::Client::get_connection`. Not in
//!   `concurrent_50`: one connection cannot be shared by 50 threads.
//! - `redis-multiplexed`: `get_multiplexed_async_connection` on a
//!   multi-thread tokio runtime with one worker per core; the bench thread
//!   calls `block_on` in the depth groups (the connection's task runs on the
//!   workers), tasks are spawned on the runtime in `concurrent_50`.
//! - `redis-multiplexed-ct` (depth groups): the same on a current-thread
//!   runtime: the caller and the connection's task share the bench thread.
//!
//! Run with `cargo bench --bench e2e`; see the "End to end" section of
//! BENCHMARKS.md for the setup and the latest figures. Without a
//! `redis-server` it prints "skipped: no redis-server (...)" to stderr and
//! exits 0 (stdout is criterion's, whose `--list` output cargo-nextest
//! parses: `cargo nextest run --all-targets` lists benches).

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use redpoll_core::cmd::{self, Pipeline};
use redpoll_core::resp::Frame;
use redpoll_testkit::server::{RedisServer, ServerOptions};

#[path = "support/smol_pool.rs"]
mod smol_pool;
#[path = "support/std_pool.rs"]
mod std_pool;
use smol_pool::SmolPool;
use std_pool::StdPool;

/// The keys the pipelines write and read.
const KEYS: [&str; 4] = ["e2e:k0", "e2e:k1", "e2e:k2", "e2e:k3"];
/// The key each client writes and reads back before measuring.
const CHECK_KEY: &str = "e2e:check";
/// The key every task of `concurrent_50` reads.
const CONCURRENT_KEY: &str = "e2e:c";
/// Pipeline depths (depth 1: one command per round trip).
const DEPTHS: [usize; 3] = [1, 16, 64];
/// Tasks (threads) of `concurrent_50`, and `GET`s per task per iteration.
const TASKS: usize = 50;
const GETS_PER_TASK: u64 = 20;

/// The 64-byte value stored under `key`.
fn value_of(key: &str) -> Vec<u8> {
    let mut v = format!("{key}:").into_bytes();
    v.resize(64, b'v');
    v
}

// ---------------------------------------------------------------------------
// The clients.

/// Every client measured, connected to one server.
struct Clients {
    /// `redpoll_smol::Client::new`: the driver on a thread of its own.
    smol: redpoll_smol::Client,
    /// `redpoll_smol::Client::with_driver`, the driver spawned on `pool`.
    smol_spawned: redpoll_smol::Client,
    /// `redpoll_smol::Client::with_driver`, the driver spawned on `local`:
    /// the caller and the driver share the bench thread.
    smol_local: redpoll_smol::Client,
    local: smol::LocalExecutor<'static>,
    std: redpoll_std::Client,
    redis_sync: redis::Connection,
    redis_async: redis::aio::MultiplexedConnection,
    /// A multiplexed connection made on `tokio_ct`.
    redis_async_ct: redis::aio::MultiplexedConnection,
    /// The executor of redpoll-smol's tasks (and of `smol_spawned`'s driver).
    pool: SmolPool,
    /// The runtime of the redis crate's tasks and connection driver.
    tokio: tokio::runtime::Runtime,
    /// A current-thread runtime: the caller and the connection's driver task
    /// share the bench thread.
    tokio_ct: tokio::runtime::Runtime,
}

impl Clients {
    fn connect(url: &str, threads: usize) -> Self {
        let config = || {
            redpoll_smol::Builder::new(url)
                .and_then(redpoll_smol::Builder::config)
                .expect("redpoll config")
        };
        let pool = SmolPool::new(threads);
        let smol = redpoll_smol::Client::new(config());
        let (smol_spawned, driver) = redpoll_smol::Client::with_driver(config());
        pool.ex.spawn(driver).detach();
        let (smol_local, driver) = redpoll_smol::Client::with_driver(config());
        let local = smol::LocalExecutor::new();
        local.spawn(driver).detach();
        let std = redpoll_std::Client::open(url).expect("redpoll-std client");

        let redis_client = redis::Client::open(url).expect("redis client");
        let redis_sync = redis_client
            .get_connection()
            .expect("redis sync connection");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let redis_async = tokio
            .block_on(redis_client.get_multiplexed_async_connection())
            .expect("redis multiplexed connection");
        let tokio_ct = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio current-thread runtime");
        let redis_async_ct = tokio_ct
            .block_on(redis_client.get_multiplexed_async_connection())
            .expect("redis multiplexed connection (current thread)");
        Self {
            smol,
            smol_spawned,
            smol_local,
            local,
            std,
            redis_sync,
            redis_async,
            redis_async_ct,
            pool,
            tokio,
            tokio_ct,
        }
    }
}

// ---------------------------------------------------------------------------
// The pipelines: command `i` is a SET when `i` is even, else a GET of the key
// just set, on KEYS[(i / 2) % 4].

fn key_of(i: usize) -> &'static str {
    KEYS[(i / 2) % KEYS.len()]
}

fn redpoll_pipeline(depth: usize, values: &[Vec<u8>]) -> Pipeline<Vec<Frame>> {
    let mut p = Pipeline::dynamic();
    for i in 0..depth {
        if i.is_multiple_of(2) {
            p.push(cmd::set(key_of(i), &values[(i / 2) % KEYS.len()][..]));
        } else {
            p.push(cmd::get(key_of(i)));
        }
    }
    p
}

fn redis_pipeline(depth: usize, values: &[Vec<u8>]) -> redis::Pipeline {
    let mut p = redis::pipe();
    for i in 0..depth {
        if i.is_multiple_of(2) {
            p.cmd("SET")
                .arg(key_of(i))
                .arg(&values[(i / 2) % KEYS.len()][..]);
        } else {
            p.cmd("GET").arg(key_of(i));
        }
    }
    p
}

/// Checks the replies of a redpoll pipeline: `OK` for each SET, the value
/// for each GET.
fn check_redpoll_replies(depth: usize, values: &[Vec<u8>], frames: &[Frame]) {
    assert_eq!(frames.len(), depth, "one reply per command");
    for (i, f) in frames.iter().enumerate() {
        if i.is_multiple_of(2) {
            assert!(
                matches!(f, Frame::Simple(s) if s == "OK"),
                "SET #{i}: {f:?}"
            );
        } else {
            let want = &values[(i / 2) % KEYS.len()];
            assert!(matches!(f, Frame::Bulk(b) if b == want), "GET #{i}: {f:?}");
        }
    }
}

fn check_redis_replies(depth: usize, values: &[Vec<u8>], replies: &[redis::Value]) {
    assert_eq!(replies.len(), depth, "one reply per command");
    for (i, v) in replies.iter().enumerate() {
        if i.is_multiple_of(2) {
            assert!(matches!(v, redis::Value::Okay), "SET #{i}: {v:?}");
        } else {
            let want = &values[(i / 2) % KEYS.len()];
            assert!(
                matches!(v, redis::Value::BulkString(b) if b == want),
                "GET #{i}: {v:?}"
            );
        }
    }
}

/// Before measuring, for a redpoll-smol client: reads back what it wrote,
/// alone and in pipelines, and sees the value `concurrent_50` reads.
async fn validate_smol(client: &redpoll_smol::Client, who: &str, values: &[Vec<u8>]) {
    let v = format!("written by {who}");
    client.run(cmd::set(CHECK_KEY, v.as_str())).await.unwrap();
    let got = client.run(cmd::get(CHECK_KEY)).await.unwrap();
    assert_eq!(got.as_deref(), Some(v.as_bytes()), "{who}: GET after SET");
    for depth in DEPTHS {
        let frames = client
            .pipeline(redpoll_pipeline(depth, values))
            .await
            .unwrap();
        check_redpoll_replies(depth, values, &frames);
    }
    let got = client.run(cmd::get(CONCURRENT_KEY)).await.unwrap();
    assert_eq!(got.as_deref(), Some(&value_of(CONCURRENT_KEY)[..]), "{who}");
}

/// The same for the redis crate's multiplexed connection.
async fn validate_redis_async(
    con: &mut redis::aio::MultiplexedConnection,
    who: &str,
    values: &[Vec<u8>],
) {
    let v = format!("written by {who}");
    redis::cmd("SET")
        .arg(CHECK_KEY)
        .arg(&v)
        .query_async::<()>(con)
        .await
        .unwrap();
    let got: Option<Vec<u8>> = redis::cmd("GET")
        .arg(CHECK_KEY)
        .query_async(con)
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some(v.as_bytes()), "{who}: GET after SET");
    for depth in DEPTHS {
        let replies: Vec<redis::Value> = redis_pipeline(depth, values)
            .query_async(con)
            .await
            .unwrap();
        check_redis_replies(depth, values, &replies);
    }
    let got: Option<Vec<u8>> = redis::cmd("GET")
        .arg(CONCURRENT_KEY)
        .query_async(con)
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some(&value_of(CONCURRENT_KEY)[..]), "{who}");
}

/// Checks every client before anything is measured.
fn validate(c: &mut Clients, values: &[Vec<u8>]) {
    smol::block_on(validate_smol(&c.smol, "redpoll-smol", values));
    smol::block_on(validate_smol(
        &c.smol_spawned,
        "redpoll-smol-spawned",
        values,
    ));
    smol::block_on(
        c.local
            .run(validate_smol(&c.smol_local, "redpoll-smol-local", values)),
    );

    let v = "written by redpoll-std";
    c.std.run(cmd::set(CHECK_KEY, v)).unwrap();
    let got = c.std.run(cmd::get(CHECK_KEY)).unwrap();
    assert_eq!(
        got.as_deref(),
        Some(v.as_bytes()),
        "redpoll-std: GET after SET"
    );
    for depth in DEPTHS {
        let frames = c.std.pipeline(redpoll_pipeline(depth, values)).unwrap();
        check_redpoll_replies(depth, values, &frames);
    }
    let got = c.std.run(cmd::get(CONCURRENT_KEY)).unwrap();
    assert_eq!(got.as_deref(), Some(&value_of(CONCURRENT_KEY)[..]));

    let v = "written by redis-sync";
    let con = &mut c.redis_sync;
    redis::cmd("SET")
        .arg(CHECK_KEY)
        .arg(v)
        .query::<()>(con)
        .unwrap();
    let got: Option<Vec<u8>> = redis::cmd("GET").arg(CHECK_KEY).query(con).unwrap();
    assert_eq!(
        got.as_deref(),
        Some(v.as_bytes()),
        "redis-sync: GET after SET"
    );
    for depth in DEPTHS {
        let replies: Vec<redis::Value> = redis_pipeline(depth, values).query(con).unwrap();
        check_redis_replies(depth, values, &replies);
    }

    let mut con = c.redis_async.clone();
    c.tokio
        .block_on(validate_redis_async(&mut con, "redis-multiplexed", values));
    let mut con = c.redis_async_ct.clone();
    c.tokio_ct.block_on(validate_redis_async(
        &mut con,
        "redis-multiplexed-ct",
        values,
    ));
}

// ---------------------------------------------------------------------------
// Pipelines on one connection. Iteration `i` at depth 1 is a SET of KEYS[0]
// when `i` is even, else a GET of it; deeper, it is one whole pipeline.

async fn round_smol(client: &redpoll_smol::Client, depth: usize, i: u64, values: &[Vec<u8>]) {
    if depth == 1 {
        if i.is_multiple_of(2) {
            client.run(cmd::set(KEYS[0], &values[0][..])).await.unwrap();
        } else {
            let v = client.run(cmd::get(KEYS[0])).await.unwrap();
            assert!(black_box(v).is_some());
        }
    } else {
        let frames = client
            .pipeline(redpoll_pipeline(depth, values))
            .await
            .unwrap();
        assert_eq!(black_box(frames).len(), depth);
    }
}

fn round_std(client: &redpoll_std::Client, depth: usize, i: u64, values: &[Vec<u8>]) {
    if depth == 1 {
        if i.is_multiple_of(2) {
            client.run(cmd::set(KEYS[0], &values[0][..])).unwrap();
        } else {
            let v = client.run(cmd::get(KEYS[0])).unwrap();
            assert!(black_box(v).is_some());
        }
    } else {
        let frames = client.pipeline(redpoll_pipeline(depth, values)).unwrap();
        assert_eq!(black_box(frames).len(), depth);
    }
}

fn round_redis_sync(con: &mut redis::Connection, depth: usize, i: u64, values: &[Vec<u8>]) {
    if depth == 1 {
        if i.is_multiple_of(2) {
            redis::cmd("SET")
                .arg(KEYS[0])
                .arg(&values[0][..])
                .query::<()>(con)
                .unwrap();
        } else {
            let v: Option<Vec<u8>> = redis::cmd("GET").arg(KEYS[0]).query(con).unwrap();
            assert!(black_box(v).is_some());
        }
    } else {
        let replies: Vec<redis::Value> = redis_pipeline(depth, values).query(con).unwrap();
        assert_eq!(black_box(replies).len(), depth);
    }
}

async fn round_redis_async(
    con: &mut redis::aio::MultiplexedConnection,
    depth: usize,
    i: u64,
    values: &[Vec<u8>],
) {
    if depth == 1 {
        if i.is_multiple_of(2) {
            redis::cmd("SET")
                .arg(KEYS[0])
                .arg(&values[0][..])
                .query_async::<()>(con)
                .await
                .unwrap();
        } else {
            let v: Option<Vec<u8>> = redis::cmd("GET")
                .arg(KEYS[0])
                .query_async(con)
                .await
                .unwrap();
            assert!(black_box(v).is_some());
        }
    } else {
        let replies: Vec<redis::Value> = redis_pipeline(depth, values)
            .query_async(con)
            .await
            .unwrap();
        assert_eq!(black_box(replies).len(), depth);
    }
}

fn depth_group(g: &mut BenchmarkGroup<'_, WallTime>, c: &mut Clients, depth: usize) {
    let values: Vec<Vec<u8>> = KEYS.iter().map(|k| value_of(k)).collect();
    let values = &values[..];

    // The caller on the bench thread (block_on), the driver on its own
    // thread (`Client::new`).
    g.bench_function("redpoll-smol", |b| {
        b.iter_custom(|iters| {
            smol::block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    round_smol(&c.smol, depth, i, values).await;
                }
                start.elapsed()
            })
        });
    });

    // The caller and the driver on the bench thread.
    g.bench_function("redpoll-smol-local", |b| {
        b.iter_custom(|iters| {
            smol::block_on(c.local.run(async {
                let start = Instant::now();
                for i in 0..iters {
                    round_smol(&c.smol_local, depth, i, values).await;
                }
                start.elapsed()
            }))
        });
    });

    g.bench_function("redpoll-std", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                round_std(&c.std, depth, i, values);
            }
            start.elapsed()
        });
    });

    let con = &mut c.redis_sync;
    g.bench_function("redis-sync", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                round_redis_sync(con, depth, i, values);
            }
            start.elapsed()
        });
    });

    // The caller on the bench thread (block_on), the connection's driver
    // task on the multi-thread runtime's workers.
    g.bench_function("redis-multiplexed", |b| {
        b.iter_custom(|iters| {
            let mut con = c.redis_async.clone();
            c.tokio.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    round_redis_async(&mut con, depth, i, values).await;
                }
                start.elapsed()
            })
        });
    });

    // The caller and the connection's driver task on the bench thread.
    g.bench_function("redis-multiplexed-ct", |b| {
        b.iter_custom(|iters| {
            let mut con = c.redis_async_ct.clone();
            c.tokio_ct.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    round_redis_async(&mut con, depth, i, values).await;
                }
                start.elapsed()
            })
        });
    });
}

// ---------------------------------------------------------------------------
// 50 concurrent tasks, single GETs.
//
// criterion hands `iters` to each measurement; the 50 tasks are spawned once
// per measurement and each does `iters * 20` GETs, so one iteration is 1,000
// GETs and the spawn / join is shared by all the iterations of a sample.

fn concurrent_group(g: &mut BenchmarkGroup<'_, WallTime>, c: &Clients) {
    for (id, client) in [
        ("redpoll-smol", &c.smol),
        ("redpoll-smol-spawned", &c.smol_spawned),
    ] {
        let ex = &c.pool.ex;
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let client = client.clone();
                        ex.spawn(async move {
                            for _ in 0..iters * GETS_PER_TASK {
                                let v = client.run(cmd::get(CONCURRENT_KEY)).await.unwrap();
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

    let pool = StdPool::new(&c.std, TASKS, |client, _, _| {
        let v = client.run(cmd::get(CONCURRENT_KEY)).unwrap();
        assert!(black_box(v).is_some());
    });
    g.bench_function("redpoll-std", |b| {
        b.iter_custom(|iters| pool.run(iters * GETS_PER_TASK));
    });
    drop(pool);

    let con = &c.redis_async;
    g.bench_function("redis-multiplexed", |b| {
        b.iter_custom(|iters| {
            c.tokio.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let mut con = con.clone();
                        tokio::spawn(async move {
                            for _ in 0..iters * GETS_PER_TASK {
                                let v: Option<Vec<u8>> = redis::cmd("GET")
                                    .arg(CONCURRENT_KEY)
                                    .query_async(&mut con)
                                    .await
                                    .unwrap();
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

fn main() {
    let server = match RedisServer::start(ServerOptions::new()) {
        Ok(server) => server,
        Err(e) => {
            let first = e.to_string();
            let first = first.lines().next().unwrap_or("");
            eprintln!("skipped: no redis-server ({first})");
            return;
        }
    };
    let threads = thread::available_parallelism().map_or(2, usize::from);
    let mut clients = Clients::connect(&server.url(), threads);

    let values: Vec<Vec<u8>> = KEYS.iter().map(|k| value_of(k)).collect();
    server
        .cmd(&[
            "SET",
            CONCURRENT_KEY,
            std::str::from_utf8(&value_of(CONCURRENT_KEY)).unwrap(),
        ])
        .expect("SET the key of concurrent_50");
    validate(&mut clients, &values);

    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();

    for depth in DEPTHS {
        let mut g = criterion.benchmark_group(format!("e2e/get_set_depth_{depth}"));
        g.throughput(Throughput::Elements(depth as u64));
        depth_group(&mut g, &mut clients, depth);
        g.finish();
    }

    let mut g = criterion.benchmark_group(format!("e2e/concurrent_{TASKS}"));
    g.throughput(Throughput::Elements(TASKS as u64 * GETS_PER_TASK));
    concurrent_group(&mut g, &clients);
    g.finish();

    criterion.final_summary();
    drop(clients);
    drop(server);
}
