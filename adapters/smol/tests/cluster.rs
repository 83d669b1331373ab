//! redpoll-smol against a real Redis Cluster on loopback (3 primaries with
//! a replica each): node identity whatever the seeds' spelling (I4), and
//! every command served across all slots.

use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use redpoll_core::cmd;
use redpoll_smol::Builder;
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
}
