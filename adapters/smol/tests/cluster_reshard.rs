//! redpoll-smol against a real Redis Cluster (3 primaries with a replica
//! each) whose slots move (`SETSLOT` + `MIGRATE`) and whose primary fails
//! over and back (`CLUSTER FAILOVER`) while tasks run a bounded load of
//! reads and writes, single- and multi-key: no failed command, no lost
//! write, with `ASK` and `MOVED` really exercised (counted by the
//! servers), and still one connection per node. The client has no
//! retries: a redirect is not a failure. The steps are
//! [`reshard::scenario`]'s.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use redpoll_core::cmd;
use redpoll_smol::{Builder, Client};
use redpoll_testkit::cluster::{Cluster, ClusterOptions};
use redpoll_testkit::reshard::{self, KeySpace, Op, Progress, Reply, Worker};

/// Concurrent tasks, each the only writer of its keys.
const WORKERS: usize = 12;
/// The client's connection name, to count its connections on each node.
const NAME: &str = "redpoll-smol-reshard";

async fn run(client: &Client, op: Op) -> Result<Reply, String> {
    let outcome = match op {
        Op::Set { key, value } => client.run(cmd::set(&key, &value)).await.map(|()| Reply::Ok),
        Op::MSet { keys, value } => client
            .run(cmd::mset(keys.iter().map(|k| (k, &value))))
            .await
            .map(|()| Reply::Ok),
        Op::Incr { key } => client.run(cmd::incr(&key)).await.map(Reply::Int),
        Op::Get { key } => client
            .run(cmd::get(&key).returning::<Option<String>>())
            .await
            .map(Reply::Value),
        Op::MGet { keys } => client
            .run(cmd::mget(&keys).returning::<Vec<Option<String>>>())
            .await
            .map(Reply::Values),
    };
    outcome.map_err(|e| e.to_string())
}

async fn work(client: Client, mut worker: Worker, progress: Arc<Progress>) -> Worker {
    while !progress.stopped() {
        let op = worker.next_op();
        let outcome = run(&client, op).await;
        worker.done(&progress, outcome);
    }
    worker
}

#[test]
fn live_resharding_and_failover_under_load_lose_nothing() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions::new()).expect("a cluster");
    let seeds = cluster.seed_urls();
    let more: Vec<&str> = seeds[1..].iter().map(String::as_str).collect();
    let client = Builder::new(&format!("{}?name={NAME}", seeds[0]))
        .unwrap()
        .response_timeout(Duration::from_secs(10))
        .cluster(&more)
        .unwrap()
        .build()
        .unwrap();
    let keys = KeySpace::new(1500, &reshard::hot_slots(&cluster, 3), 24);
    let progress = Arc::new(Progress::new());
    cluster.reset_stats().unwrap();

    let load = {
        let (client, progress) = (client.clone(), progress.clone());
        let workers = keys.workers(WORKERS);
        thread::spawn(move || {
            let ex = smol::LocalExecutor::new();
            let tasks: Vec<_> = workers
                .into_iter()
                .map(|w| ex.spawn(work(client.clone(), w, progress.clone())))
                .collect();
            block_on(ex.run(async {
                let mut done = Vec::new();
                for task in tasks {
                    done.push(task.await);
                }
                done
            }))
        })
    };
    let timeline = reshard::scenario(&cluster, &progress, &keys, WORKERS);
    let workers = load.join().expect("the load thread");
    let timeline = timeline.expect("the topology changes");

    let verdict = reshard::verify(&cluster, &progress, &workers, |key| {
        block_on(client.run(cmd::get(key).returning::<Option<String>>())).map_err(|e| e.to_string())
    })
    .unwrap();
    let redirects = cluster.total_redirects().unwrap();
    let tryagain = reshard::error_count(&cluster, "TRYAGAIN").unwrap();
    eprintln!(
        "{} commands, {} keys checked, {} keys migrated, {redirects:?}, {tryagain} TRYAGAIN, {:?} in all; steps: {:?}",
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
    // Still one connection per primary, at most one per replica (a
    // demoted primary's), whatever moved (I4).
    let counts = reshard::wait_for_connections(&cluster, NAME, 1..=1, 0..=1).unwrap();
    assert_eq!(counts, Ok(()), "connections per node");
}
