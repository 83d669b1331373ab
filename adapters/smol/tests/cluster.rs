//! redpoll-smol against a real Redis Cluster on loopback (3 primaries with
//! a replica each): node identity whatever the seeds' spelling (I4), every
//! command served across all slots, multi-key commands split per slot,
//! keyless commands sent to every primary, `SCAN` over every primary, and
//! reads from replicas.

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use futures_lite::future::block_on;
use redpoll_core::cmd::{self, Cmd};
use redpoll_core::resp::Frame;
use redpoll_smol::{Builder, Client};
use redpoll_testkit::cluster::{Cluster, ClusterOptions, hash_tag_for_slot};

/// Waits (up to 10 s) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn seeds_in_any_spelling_give_one_connection_per_node() {
    let cluster = Cluster::start(ClusterOptions::new()).expect("a cluster");
    let ports: Vec<u16> = cluster.primaries().iter().map(|n| n.port).collect();
    // The cluster announces 127.0.0.1; the seeds say otherwise.
    let first = format!("redis://localhost:{}", ports[0]);
    let mut more = vec![
        format!("redis://LOCALHOST:{}", ports[1]),
        format!("redis://127.0.0.1:{}", ports[2]),
        format!("redis://localhost.:{}", ports[0]),
    ];
    if cluster.ipv6() {
        more.push(format!("redis://[::1]:{}", ports[1]));
    }
    let more: Vec<&str> = more.iter().map(String::as_str).collect();
    let client = Builder::new(&first)
        .unwrap()
        .response_timeout(Duration::from_secs(5))
        .cluster(&more)
        .unwrap()
        .build()
        .unwrap();

    // 10,000 commands over every slot.
    block_on(async {
        for i in 0..10_000u32 {
            let slot = u16::try_from(i * 16_384 / 10_000).unwrap();
            let key = format!("{{{}}}:{i}", hash_tag_for_slot(slot));
            client.run(cmd::set(&key, i)).await.unwrap();
        }
        for i in (0..10_000u32).step_by(97) {
            let slot = u16::try_from(i * 16_384 / 10_000).unwrap();
            let key = format!("{{{}}}:{i}", hash_tag_for_slot(slot));
            let value: Option<String> = client.run(cmd::get(&key).returning()).await.unwrap();
            assert_eq!(value, Some(i.to_string()), "{key}");
        }
    });

    // Exactly one connection per primary, however the seeds spelled it
    // (a seed that could not be matched to a node is closed). Replication
    // links (flags=S) are not clients of ours.
    for port in &ports {
        wait_until("one connection per primary", || {
            let clients = cluster.server(*port).client_list().unwrap();
            clients.iter().filter(|c| c.contains(" flags=N ")).count() == 1
        });
    }
    let stats = client.pool_stats();
    assert_eq!(stats.open, ports.len(), "{stats:?}");

    // The same cluster, emptied: the commands the client splits or fans out.
    block_on(split_and_fanned_out_commands(&client));
    block_on(scan_walks_every_primary(&client));
    reads_from_replicas(&cluster, &first);
}

/// `n` keys spread over the slots (no hash tag).
fn spread(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}

async fn dbsize(client: &Client) -> u64 {
    client.run(cmd::dbsize()).await.unwrap()
}

async fn split_and_fanned_out_commands(client: &Client) {
    client
        .run(Cmd::new("FLUSHALL").returning::<()>())
        .await
        .unwrap();
    assert_eq!(dbsize(client).await, 0, "FLUSHALL reached every primary");
    let keys = spread("split", 300);
    client
        .run(cmd::mset(
            keys.iter().map(|k| (k.as_str(), format!("v-{k}"))),
        ))
        .await
        .unwrap();
    assert_eq!(dbsize(client).await, 300, "the sum over the primaries");
    // Missing keys and a duplicate, in the caller's order.
    let mut asked: Vec<String> = keys.iter().step_by(3).cloned().collect();
    asked.insert(7, "missing:1".into());
    asked.push(keys[0].clone());
    let values = client.run(cmd::mget(&asked)).await.unwrap();
    assert_eq!(values.len(), asked.len());
    for (key, value) in asked.iter().zip(&values) {
        let expected = (!key.starts_with("missing")).then(|| format!("v-{key}"));
        let value = value
            .as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned());
        assert_eq!(value, expected, "{key}");
    }
    assert_eq!(client.run(cmd::exists(&asked)).await.unwrap(), 101);
    assert_eq!(client.run(cmd::touch(&keys[..50])).await.unwrap(), 50);
    assert_eq!(client.run(cmd::del(&keys[..100])).await.unwrap(), 100);
    let mut gone = keys[50..150].to_vec();
    gone.push("missing:2".into());
    assert_eq!(client.run(cmd::unlink(&gone)).await.unwrap(), 50);
    assert_eq!(dbsize(client).await, 150);
    let found = client.run(cmd::keys("split:*")).await.unwrap();
    assert_eq!(found.len(), 150, "KEYS over every primary");
    // Every primary has the script: EVALSHA by any key finds it.
    let sha = client.run(cmd::script_load("return 7")).await.unwrap();
    for key in &keys[..20] {
        let seven: i64 = client
            .run(Cmd::new("EVALSHA").arg(&sha).arg(1).arg(key).returning())
            .await
            .unwrap();
        assert_eq!(seven, 7);
    }
    // A command the client cannot split is still refused, untouched.
    let refused = client
        .run(
            Cmd::new("MSETNX")
                .arg(&keys[0])
                .arg(1)
                .arg(&keys[1])
                .arg(2)
                .returning::<Frame>(),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(redpoll_smol::Error::Connection(
                redpoll_core::Error::Cluster(redpoll_core::cluster::ClusterFailure::CrossSlot(_))
            ))
        ),
        "{refused:?}"
    );
}

async fn scan_walks_every_primary(client: &Client) {
    client
        .run(Cmd::new("FLUSHALL").returning::<()>())
        .await
        .unwrap();
    let keys = spread("scan", 500);
    client
        .run(cmd::mset(keys.iter().map(|k| (k.as_str(), "v"))))
        .await
        .unwrap();
    let mut found: Vec<String> = client
        .scan(cmd::scan_with(0, cmd::ScanOptions::new().count(50)))
        .map(|key| String::from_utf8(key.unwrap().to_vec()).unwrap())
        .collect()
        .await;
    found.sort();
    let mut expected = keys;
    expected.sort();
    assert_eq!(found, expected, "every key exactly once");
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

/// The keys of `scan_walks_every_primary`, read through a client that
/// reads from replicas: every replica serves some, and they converge to
/// the primaries' values (replication is asynchronous: a read may lag).
fn reads_from_replicas(cluster: &Cluster, seed: &str) {
    // The client skips replicas a young cluster still calls `loading`.
    cluster
        .wait_replicas_online(Duration::from_secs(10))
        .expect("replicas online");
    let before = replica_gets(cluster);
    let client = Builder::new(seed)
        .unwrap()
        .response_timeout(Duration::from_secs(5))
        .cluster(&[])
        .unwrap()
        .read_from_replicas(true)
        .build()
        .unwrap();
    let keys = spread("scan", 500);
    block_on(async {
        for key in &keys {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let value: Option<String> = client.run(cmd::get(key).returning()).await.unwrap();
                if value.as_deref() == Some("v") {
                    break;
                }
                assert!(Instant::now() < deadline, "{key} never replicated");
            }
        }
    });
    let after = replica_gets(cluster);
    assert_eq!(before.len(), 3, "a replica per primary");
    for (b, a) in before.iter().zip(&after) {
        assert!(a > b, "every replica served reads: {before:?} -> {after:?}");
    }
    let served: u64 = after.iter().sum::<u64>() - before.iter().sum::<u64>();
    assert!(served >= 500, "{served}");
}
