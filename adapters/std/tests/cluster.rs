//! redpoll-std against a real Redis Cluster on loopback (3 primaries with a
//! replica each), in one test on one cluster (the suite's time budget),
//! three phases with one client:
//!
//! 1. **Node identity** (I4): seeds spelled `localhost`, `LOCALHOST`,
//!    `localhost.`, `127.0.0.1` and `[::1]` while the cluster announces
//!    `127.0.0.1`; after 10,000 commands over every slot (and blocking
//!    ones, on dedicated connections), exactly one connection per primary
//!    per pool slot in use (counted by the servers, by client name).
//! 2. **Commands over every slot and node**, before the topology changes
//!    (a fan-out asks the primaries the client knows, which may be stale
//!    right after a failover), with keys of their own prefix:
//!    `MSET`/`MGET`/`EXISTS`/`DEL` across slots (split per slot,
//!    reassembled in the caller's order), `DBSIZE` and `KEYS` sent to
//!    every primary, [`Client::scan`] over every primary (each key exactly
//!    once), `SCRIPT EXISTS` true only where every primary has the
//!    script, `CONFIG SET` and `CONFIG RESETSTAT` on every primary, and a
//!    second client built with `read_from_replicas(true)` whose reads
//!    every replica serves (counted by the replicas' `INFO commandstats`).
//! 3. **Live resharding under load** ([`reshard::scenario`]): threads run
//!    a bounded load of reads and writes, single- and multi-key, while
//!    slots move (`SETSLOT` + `MIGRATE`, so `ASK` is really exercised) and
//!    a primary fails over and back (`CLUSTER FAILOVER`): no failed
//!    command, no lost write, `ASK` and `MOVED` counted by the servers, and
//!    still one connection per node. The client has no retries: a
//!    redirect is not a failure.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use redpoll_std::{Client, cmd};
use redpoll_testkit::cluster::{Cluster, ClusterOptions, hash_tag_for_slot};
use redpoll_testkit::reshard::{self, KeySpace, Op, Progress, Reply, Worker};

/// Concurrent threads, each the only writer of its keys.
const WORKERS: usize = 12;
/// The client's connection name, to count its connections on each node.
const NAME: &str = "redpoll-std-cluster";

fn run(client: &Client, op: Op) -> Result<Reply, String> {
    let outcome = match op {
        Op::Set { key, value } => client.run(cmd::set(&key, &value)).map(|()| Reply::Ok),
        Op::MSet { keys, value } => client
            .run(cmd::mset(keys.iter().map(|k| (k, &value))))
            .map(|()| Reply::Ok),
        Op::Incr { key } => client.run(cmd::incr(&key)).map(Reply::Int),
        Op::Get { key } => client
            .run(cmd::get(&key).returning::<Option<String>>())
            .map(Reply::Value),
        Op::MGet { keys } => client
            .run(cmd::mget(&keys).returning::<Vec<Option<String>>>())
            .map(Reply::Values),
    };
    outcome.map_err(|e| e.to_string())
}

fn work(client: &Client, mut worker: Worker, progress: &Progress) -> Worker {
    while !progress.stopped() {
        let op = worker.next_op();
        let outcome = run(client, op);
        worker.done(progress, outcome);
    }
    worker
}

/// The key of command `i` of 10,000 spread over every slot.
fn spread_key(i: u32) -> String {
    let slot = u16::try_from(i * 16_384 / 10_000).unwrap();
    format!("{{{}}}:id{i}", hash_tag_for_slot(slot))
}

/// Phase 1: seeds in any spelling, one connection per node.
fn node_identity(cluster: &Cluster) -> Client {
    let ports: Vec<u16> = cluster.primaries().iter().map(|n| n.port).collect();
    // The cluster announces 127.0.0.1; the seeds say otherwise. One URL
    // lists them all: with several hosts it makes a cluster client.
    let mut seeds = vec![
        format!("localhost:{}", ports[0]),
        format!("LOCALHOST:{}", ports[1]),
        format!("127.0.0.1:{}", ports[2]),
        format!("localhost.:{}", ports[0]),
    ];
    if cluster.ipv6() {
        seeds.push(format!("[::1]:{}", ports[1]));
    }
    let url = format!("redis://{}?name={NAME}", seeds.join(","));
    let client = Client::builder(&url)
        .unwrap()
        .response_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();

    // 10,000 commands over every slot, from 4 threads at once, and a
    // blocking command on every 50th slot from a fifth: those use one
    // dedicated connection per node (one at a time, reused).
    thread::scope(|scope| {
        for t in 0..4u32 {
            let client = &client;
            scope.spawn(move || {
                for i in (t..10_000).step_by(4) {
                    client.run(cmd::set(spread_key(i), i)).unwrap();
                }
            });
        }
        let client = &client;
        scope.spawn(move || {
            for i in (0..10_000u32).step_by(50) {
                let list = format!("{}:list", spread_key(i));
                client.run(cmd::rpush(&list, [i])).unwrap();
                let popped = client.run(cmd::blpop([&list], 5.0)).unwrap();
                assert_eq!(popped.map(|(_, v)| v), Some(i.to_string().into()));
            }
        });
    });
    for i in (0..10_000u32).step_by(97) {
        let value: Option<String> = client.run(cmd::get(spread_key(i)).returning()).unwrap();
        assert_eq!(value, Some(i.to_string()), "{}", spread_key(i));
    }

    // Exactly one connection per primary per pool slot in use (the shared
    // one, one dedicated), none to a replica, however the seeds spelled
    // them (a seed that could not be matched to a node is closed).
    let counts = reshard::wait_for_connections(cluster, NAME, 2..=2, 0..=0).unwrap();
    assert_eq!(counts, Ok(()), "connections per node");
    let stats = client.pool_stats();
    assert_eq!(stats.open, 2 * ports.len(), "{stats:?}");
    client
}

/// Phase 3: the load, the topology changes, the checks.
fn live_resharding(cluster: &Cluster, client: &Client) {
    let started = Instant::now();
    let keys = KeySpace::new(1500, &reshard::hot_slots(cluster, 3), 24);
    let progress = Arc::new(Progress::new());
    cluster.reset_stats().unwrap();
    let (workers, timeline) = thread::scope(|scope| {
        let threads: Vec<_> = keys
            .workers(WORKERS)
            .into_iter()
            .map(|w| {
                let progress = &progress;
                scope.spawn(move || work(client, w, progress))
            })
            .collect();
        let timeline = reshard::scenario(cluster, &progress, &keys, WORKERS);
        let workers: Vec<Worker> = threads
            .into_iter()
            .map(|t| t.join().expect("a load thread"))
            .collect();
        (workers, timeline)
    });
    let timeline = timeline.expect("the topology changes");

    let verdict = reshard::verify(cluster, &progress, &workers, |key| {
        client
            .run(cmd::get(key).returning::<Option<String>>())
            .map_err(|e| e.to_string())
    })
    .unwrap();
    let redirects = cluster.total_redirects().unwrap();
    let tryagain = reshard::error_count(cluster, "TRYAGAIN").unwrap();
    eprintln!(
        "{} commands, {} keys checked, {} keys migrated, {redirects:?}, {tryagain} TRYAGAIN, {:?}; steps: {:?}",
        verdict.ops,
        verdict.keys,
        timeline.keys_migrated,
        started.elapsed(),
        timeline.steps
    );
    assert_eq!(verdict.failure_count, 0, "{:#?}", verdict.failures);
    assert!(verdict.lost.is_empty(), "{:#?}", verdict.lost);
    assert!(redirects.ask > 0, "no ASK was exercised: {redirects:?}");
    assert!(redirects.moved > 0, "no MOVED was exercised: {redirects:?}");
    // Redirects and waits spent no retry (there are none to spend).
    assert_eq!(client.pool_stats().retries, 0);
    // Still the shared connection per primary and at most the dedicated one
    // of phase 1 besides, whatever moved (I4).
    let counts = reshard::wait_for_connections(cluster, NAME, 1..=2, 0..=2).unwrap();
    assert_eq!(counts, Ok(()), "connections per node");
}

/// Keys of phase 2: spread over the slots (no hash tag), a prefix no
/// other phase uses.
fn phase2_keys() -> Vec<String> {
    (0..500).map(|i| format!("std2:{i}")).collect()
}

fn dbsize(client: &Client) -> u64 {
    client.run(cmd::dbsize()).unwrap()
}

/// Phase 2: split and fanned-out commands, a cluster `SCAN`, replica reads.
fn commands_over_every_node(cluster: &Cluster, client: &Client) {
    let keys = phase2_keys();
    let mut expected = keys.clone();
    expected.sort();
    let before = dbsize(client);
    client
        .run(cmd::mset(
            keys.iter().map(|k| (k.as_str(), format!("v-{k}"))),
        ))
        .unwrap();
    assert_eq!(dbsize(client), before + 500, "DBSIZE sums every primary");
    let mut found: Vec<String> = client
        .run(cmd::keys("std2:*"))
        .unwrap()
        .into_iter()
        .map(|key| String::from_utf8(key.to_vec()).unwrap())
        .collect();
    found.sort();
    assert_eq!(found, expected, "KEYS over every primary");

    let mut scanned: Vec<String> = client
        .scan(cmd::scan_with(
            0,
            cmd::ScanOptions::new().match_("std2:*").count(100),
        ))
        .map(|key| String::from_utf8(key.unwrap().to_vec()).unwrap())
        .collect();
    scanned.sort();
    assert_eq!(scanned, expected, "SCAN: every key exactly once");

    // Missing keys and a duplicate, in the caller's order.
    let mut asked: Vec<String> = keys.iter().step_by(3).cloned().collect();
    asked.insert(5, "std2-missing:1".into());
    asked.push(keys[0].clone());
    let values = client.run(cmd::mget(&asked)).unwrap();
    let values: Vec<Option<String>> = values
        .into_iter()
        .map(|v| v.map(|v| String::from_utf8(v.to_vec()).unwrap()))
        .collect();
    let want: Vec<Option<String>> = asked
        .iter()
        .map(|k| (!k.contains("missing")).then(|| format!("v-{k}")))
        .collect();
    assert_eq!(values, want, "MGET in the caller's order");
    assert_eq!(client.run(cmd::exists(&asked)).unwrap(), 168);
    assert_eq!(client.run(cmd::del(&keys[..100])).unwrap(), 100);
    assert_eq!(client.run(cmd::exists(&keys)).unwrap(), 400);
    assert_eq!(dbsize(client), before + 400);

    // A script exists only where every primary has it.
    let sha = client.run(cmd::script_load("return 3")).unwrap();
    let exists = |client: &Client| client.run(cmd::script_exists([&sha])).unwrap();
    assert_eq!(exists(client), [true]);
    let flushed = cluster.primaries()[1].port;
    cluster.cmd(flushed, &["SCRIPT", "FLUSH"]).unwrap();
    // Three times: a command sent to one primary would meet one that has
    // it.
    for _ in 0..3 {
        assert_eq!(exists(client), [false], "flushed on {flushed} only");
    }

    // Every primary is configured, and its statistics reset.
    client
        .run(
            cmd::Cmd::new("CONFIG")
                .arg("SET")
                .arg("slowlog-max-len")
                .arg(129)
                .returning::<()>(),
        )
        .unwrap();
    client
        .run(cmd::Cmd::new("CONFIG").arg("RESETSTAT").returning::<()>())
        .unwrap();
    for node in cluster.primaries() {
        let config = cluster
            .cmd(node.port, &["CONFIG", "GET", "slowlog-max-len"])
            .unwrap();
        assert!(format!("{config:?}").contains("b\"129\""), "{config:?}");
        let stats = cluster
            .cmd_text(node.port, &["INFO", "commandstats"])
            .unwrap();
        assert!(!stats.contains("cmdstat_mset"), "{}: {stats}", node.port);
    }

    reads_from_replicas(cluster, &keys[100..]);
}

/// The `GET` calls each replica has served.
fn replica_gets(cluster: &Cluster) -> Vec<u64> {
    cluster
        .replicas()
        .iter()
        .map(|n| {
            let stats = cluster.cmd_text(n.port, &["INFO", "commandstats"]).unwrap();
            stats
                .lines()
                .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
                .and_then(|rest| rest.split(',').next())
                .map_or(0, |n| n.parse().unwrap())
        })
        .collect()
}

/// `keys` (values `v-{key}`) read through a client that reads from
/// replicas: every replica serves some, and they converge to the
/// primaries' values (replication is asynchronous: a read may lag).
fn reads_from_replicas(cluster: &Cluster, keys: &[String]) {
    // The client skips replicas a young cluster still calls `loading`.
    cluster
        .wait_replicas_online(Duration::from_secs(10))
        .expect("replicas online");
    let seed = format!("redis://127.0.0.1:{}", cluster.primaries()[0].port);
    let client = Client::builder(&seed)
        .unwrap()
        .response_timeout(Some(Duration::from_secs(10)))
        .cluster(&[])
        .unwrap()
        .read_from_replicas(true)
        .build()
        .unwrap();
    let before = replica_gets(cluster);
    for key in keys {
        let want = format!("v-{key}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let value: Option<String> = client.run(cmd::get(key).returning()).unwrap();
            if value.as_deref() == Some(want.as_str()) {
                break;
            }
            assert!(Instant::now() < deadline, "{key} never replicated");
        }
    }
    let after = replica_gets(cluster);
    assert_eq!(before.len(), 3, "a replica per primary");
    for (b, a) in before.iter().zip(&after) {
        assert!(a > b, "every replica served reads: {before:?} -> {after:?}");
    }
    let served: u64 = after.iter().sum::<u64>() - before.iter().sum::<u64>();
    assert!(served >= keys.len() as u64, "{served}");
}

#[test]
fn one_connection_per_node_then_live_resharding_and_failover_under_load() {
    let cluster = Cluster::start(ClusterOptions::new()).expect("a cluster");
    let client = node_identity(&cluster);
    let started = Instant::now();
    commands_over_every_node(&cluster, &client);
    eprintln!("phase 2: {:?}", started.elapsed());
    live_resharding(&cluster, &client);
}
