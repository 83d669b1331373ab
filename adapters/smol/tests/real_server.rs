//! redpoll-smol against real redis-server processes: every command family
//! over plain TCP, TLS and a unix socket, pub/sub order, a WATCH conflict,
//! blocking commands beyond the response timeout, and cancellation.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{StreamExt, future};
use redpoll_core::cmd::{self, Pipeline, PushMessage, Script};
use redpoll_smol::{Builder, Client, Error};
use redpoll_testkit::certs::Pki;
use redpoll_testkit::server::{RedisServer, ServerOptions};

fn plain() -> (RedisServer, Client) {
    let server = RedisServer::start(ServerOptions::new().debug_command()).expect("redis-server");
    let client = Client::open(&server.url()).expect("client");
    (server, client)
}

/// Every family of the command API, through one client.
async fn exercise(client: &Client) {
    // strings and counters
    client.run(cmd::set("s:k", "hello")).await.unwrap();
    assert_eq!(
        client
            .run(cmd::get("s:k").returning::<Option<String>>())
            .await
            .unwrap()
            .as_deref(),
        Some("hello")
    );
    assert_eq!(client.run(cmd::append("s:k", " world")).await.unwrap(), 11);
    assert_eq!(client.run(cmd::strlen("s:k")).await.unwrap(), 11);
    assert_eq!(client.run(cmd::incr("s:n")).await.unwrap(), 1);
    assert_eq!(client.run(cmd::incrby("s:n", 41)).await.unwrap(), 42);
    client
        .run(cmd::mset([("s:a", "1"), ("s:b", "2")]))
        .await
        .unwrap();
    let values: Vec<Option<String>> = client
        .run(cmd::mget(["s:a", "s:b", "s:none"]).returning())
        .await
        .unwrap();
    assert_eq!(values, [Some("1".into()), Some("2".into()), None]);
    // keys and expiry
    assert!(client.run(cmd::expire("s:k", 100)).await.unwrap());
    let ttl = client.run(cmd::ttl("s:k")).await.unwrap();
    assert!((1..=100).contains(&ttl), "ttl {ttl}");
    assert!(client.run(cmd::persist("s:k")).await.unwrap());
    assert_eq!(
        client
            .run(cmd::exists(["s:k", "s:a", "nope"]))
            .await
            .unwrap(),
        2
    );
    assert_eq!(client.run(cmd::type_("s:k")).await.unwrap(), "string");
    assert_eq!(client.run(cmd::del(["s:a", "s:b"])).await.unwrap(), 2);
    // hashes
    client
        .run(cmd::hset("h", [("f1", "v1"), ("f2", "v2")]))
        .await
        .unwrap();
    assert_eq!(
        client
            .run(cmd::hget("h", "f1").returning::<Option<String>>())
            .await
            .unwrap()
            .as_deref(),
        Some("v1")
    );
    let all: BTreeMap<String, String> = client.run(cmd::hgetall("h").returning()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(client.run(cmd::hincrby("h", "n", 5)).await.unwrap(), 5);
    assert_eq!(client.run(cmd::hlen("h")).await.unwrap(), 3);
    // lists
    client.run(cmd::rpush("l", ["a", "b", "c"])).await.unwrap();
    let range: Vec<String> = client
        .run(cmd::lrange("l", 0, -1).returning())
        .await
        .unwrap();
    assert_eq!(range, ["a", "b", "c"]);
    assert_eq!(
        client
            .run(cmd::lpop("l").returning::<Option<String>>())
            .await
            .unwrap()
            .as_deref(),
        Some("a")
    );
    assert_eq!(client.run(cmd::llen("l")).await.unwrap(), 2);
    let popped = client
        .run(cmd::blpop(["l"], 1.0).returning::<Option<(String, String)>>())
        .await
        .unwrap();
    assert_eq!(popped, Some(("l".into(), "b".into())));
    // sets
    assert_eq!(
        client.run(cmd::sadd("set", ["x", "y", "z"])).await.unwrap(),
        3
    );
    assert!(client.run(cmd::sismember("set", "y")).await.unwrap());
    let members: std::collections::BTreeSet<String> =
        client.run(cmd::smembers("set").returning()).await.unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(client.run(cmd::scard("set")).await.unwrap(), 3);
    // sorted sets
    client
        .run(cmd::zadd("z", [(1.0, "one"), (2.0, "two")]))
        .await
        .unwrap();
    assert_eq!(
        client.run(cmd::zscore("z", "two")).await.unwrap(),
        Some(2.0)
    );
    assert_eq!(
        client.run(cmd::zincrby("z", 2.5, "one")).await.unwrap(),
        3.5
    );
    let ordered: Vec<String> = client
        .run(cmd::zrange("z", 0, -1).returning())
        .await
        .unwrap();
    assert_eq!(ordered, ["two", "one"]);
    assert_eq!(client.run(cmd::zrank("z", "one")).await.unwrap(), Some(1));
    // scanning, as a stream
    for i in 0..120 {
        client.run(cmd::set(format!("scan:{i}"), i)).await.unwrap();
    }
    let opts = cmd::ScanOptions::new().match_("scan:*").count(10);
    let mut keys: Vec<String> = client
        .scan(cmd::scan_with(0, opts).returning())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 120);
    // scripting, with the EVAL fallback after SCRIPT FLUSH
    client.run(cmd::script_flush()).await.unwrap();
    let script = Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let v: i64 = client.eval(&script, ["script:n"], [7]).await.unwrap();
    assert_eq!(v, 7);
    let v: i64 = client.eval(&script, ["script:n"], [1]).await.unwrap();
    assert_eq!(v, 8, "the second call runs by its SHA-1");
    // typed pipelines
    let (a, b, c): ((), Option<String>, i64) = client
        .pipeline(
            Pipeline::new()
                .add(cmd::set("p", "v"))
                .add(cmd::get("p").returning())
                .add(cmd::incr("p:n")),
        )
        .await
        .unwrap();
    assert_eq!((a, b.as_deref(), c), ((), Some("v"), 1));
    // a server error is typed
    let err = client.run(cmd::incr("s:k")).await.unwrap_err();
    assert!(matches!(err, Error::Server(_)), "{err}");
    // the escape hatch
    let pong: String = client.run(cmd::cmd("PING").returning()).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn every_family_over_plain_tcp() {
    let (_server, client) = plain();
    smol::block_on(exercise(&client));
}

#[test]
fn every_family_over_tls() {
    let pki = Pki::generate();
    let server = RedisServer::start(ServerOptions::new().tls(pki.clone())).expect("redis-server");
    let client = Builder::new(&server.url())
        .unwrap()
        .tls_root_pem(pki.ca_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    smol::block_on(exercise(&client));
}

#[test]
fn every_family_over_mutual_tls() {
    let pki = Pki::generate();
    let server = RedisServer::start(ServerOptions::new().tls(pki.clone()).client_auth(true))
        .expect("redis-server");
    let client = Builder::new(&server.url())
        .unwrap()
        .tls_root_pem(pki.ca_pem.as_bytes())
        .unwrap()
        .tls_client_auth_pem(
            pki.client_cert_pem.as_bytes(),
            pki.client_key_pem.as_bytes(),
        )
        .unwrap()
        .build()
        .unwrap();
    smol::block_on(async {
        let pong: String = client.run(cmd::ping()).await.unwrap();
        assert_eq!(pong, "PONG");
    });
}

#[test]
fn every_family_over_a_unix_socket() {
    let server =
        RedisServer::start(ServerOptions::new().unix_socket().no_tcp()).expect("redis-server");
    let path = server.unix_path().unwrap().display().to_string();
    let client = Client::open(&format!("unix://{path}")).unwrap();
    smol::block_on(exercise(&client));
}

#[test]
fn pub_sub_delivers_messages_in_order() {
    let (_server, client) = plain();
    let publisher = client.clone();
    smol::block_on(async {
        let sub = client.subscribe(["news"]).await.unwrap();
        let psub = client.psubscribe(["n*"]).await.unwrap();
        for i in 0..100 {
            publisher
                .run(cmd::publish("news", format!("m{i}")))
                .await
                .unwrap();
        }
        for i in 0..100 {
            match sub.next().await {
                Some(PushMessage::Message { channel, payload }) => {
                    assert_eq!(channel, Bytes::from_static(b"news"));
                    assert_eq!(payload, Bytes::from(format!("m{i}")));
                }
                other => panic!("message {i}: {other:?}"),
            }
            assert!(matches!(
                psub.next().await,
                Some(PushMessage::PMessage { .. })
            ));
        }
        drop(sub);
        // After unsubscribing, the pattern subscription still gets messages.
        publisher.run(cmd::publish("news", "late")).await.unwrap();
        assert!(
            matches!(psub.next().await, Some(PushMessage::PMessage { payload, .. }) if payload == "late")
        );
    });
}

#[test]
fn a_watch_conflict_aborts_the_transaction() {
    let (_server, client) = plain();
    let other = Client::open(&_server.url()).unwrap();
    smol::block_on(async {
        client.run(cmd::set("balance", 10)).await.unwrap();
        let tx = client.transaction().unwrap();
        tx.run(cmd::watch(["balance"])).await.unwrap();
        let balance: i64 = tx.run(cmd::get("balance").returning()).await.unwrap();
        // Another client changes the watched key before EXEC.
        other.run(cmd::set("balance", 0)).await.unwrap();
        let result = tx
            .pipeline(
                Pipeline::new()
                    .add(cmd::set("balance", balance - 5))
                    .atomic(),
            )
            .await;
        assert_eq!(result, Err(Error::Aborted));
        drop(tx);
        let balance: i64 = client.run(cmd::get("balance").returning()).await.unwrap();
        assert_eq!(balance, 0, "the aborted transaction wrote nothing");
        // And without a conflict it commits.
        let tx = client.transaction().unwrap();
        tx.run(cmd::watch(["balance"])).await.unwrap();
        tx.pipeline(Pipeline::new().add(cmd::incrby("balance", 3)).atomic())
            .await
            .unwrap();
        drop(tx);
        assert_eq!(
            client
                .run(cmd::get("balance").returning::<i64>())
                .await
                .unwrap(),
            3
        );
    });
}

#[test]
fn a_blocking_command_outlives_the_response_timeout() {
    let server = RedisServer::start(ServerOptions::new()).expect("redis-server");
    let client = Builder::new(&server.url())
        .unwrap()
        .response_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let pusher = client.clone();
    smol::block_on(async {
        // Nothing arrives for 1 s: the 200 ms response timeout must not cut it.
        let start = std::time::Instant::now();
        let none = client.run(cmd::blpop(["jobs"], 1.0)).await.unwrap();
        assert_eq!(none, None);
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
        // A value pushed while it waits is delivered.
        let waiter = smol::spawn({
            let client = client.clone();
            async move {
                client
                    .run(cmd::blpop(["jobs"], 2.0).returning::<Option<(String, String)>>())
                    .await
            }
        });
        async_io::Timer::after(Duration::from_millis(300)).await;
        pusher.run(cmd::rpush("jobs", ["job-1"])).await.unwrap();
        assert_eq!(waiter.await.unwrap(), Some(("jobs".into(), "job-1".into())));
        // Meanwhile ordinary commands still have their 200 ms.
        let pong: String = client.run(cmd::ping()).await.unwrap();
        assert_eq!(pong, "PONG");
    });
}

#[test]
fn dropped_futures_never_receive_or_steal_a_reply() {
    let (server, client) = plain();
    smol::block_on(async {
        for i in 0..200 {
            client.run(cmd::set(format!("c:{i}"), i)).await.unwrap();
        }
        // The server sleeps 100 ms, so every GET below is in flight when it
        // is dropped (half of them) or awaited (the other half).
        let sleeper = smol::spawn({
            let client = client.clone();
            async move { client.run(cmd::cmd("DEBUG").arg("SLEEP").arg("0.1")).await }
        });
        async_io::Timer::after(Duration::from_millis(20)).await;
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let client = client.clone();
                smol::spawn(async move {
                    let get = client.run(cmd::get(format!("c:{i}")).returning::<Option<i64>>());
                    if i % 2 == 0 {
                        let cancel = async {
                            async_io::Timer::after(Duration::from_millis(10)).await;
                            None
                        };
                        future::or(async { Some(get.await) }, cancel).await
                    } else {
                        Some(get.await)
                    }
                })
            })
            .collect();
        let mut completed = 0;
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await {
                Some(Ok(Some(v))) => {
                    assert_eq!(v, i as i64, "request {i} got another request's reply");
                    completed += 1;
                }
                None => assert_eq!(i % 2, 0, "only the dropped ones have no result"),
                other => panic!("request {i}: {other:?}"),
            }
        }
        assert_eq!(completed, 100);
        sleeper.await.unwrap();
        // The connection is still in sync.
        for i in 0..50 {
            assert_eq!(
                client
                    .run(cmd::get(format!("c:{i}")).returning::<Option<i64>>())
                    .await
                    .unwrap(),
                Some(i)
            );
        }
    });
    drop(server);
}

#[test]
fn the_client_recovers_by_itself_after_the_server_restarts() {
    let mut server = RedisServer::start(ServerOptions::new()).expect("redis-server");
    let client = Builder::new(&server.url())
        .unwrap()
        .response_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    smol::block_on(async {
        client.wait_connected().await.unwrap();
        client.run(cmd::set("before", 1)).await.unwrap();
        server.stop();
        // A request written before the client learns of the close fails with
        // a typed error (it may or may not have run: never retried). Once
        // the client knows, requests wait for the next connection.
        let stopped = std::time::Instant::now();
        while client.is_connected() {
            assert!(
                stopped.elapsed() < Duration::from_secs(5),
                "the client never saw the close"
            );
            async_io::Timer::after(Duration::from_millis(5)).await;
        }
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let client = client.clone();
                smol::spawn(async move { client.run(cmd::set(format!("during:{i}"), i)).await })
            })
            .collect();
        async_io::Timer::after(Duration::from_secs(5)).await;
        let restarted = std::time::Instant::now();
        server.restart().expect("restart on the same port");
        for (i, task) in tasks.into_iter().enumerate() {
            task.await
                .unwrap_or_else(|e| panic!("request {i} sent during the outage: {e}"));
        }
        let recovered = restarted.elapsed();
        // Within one backoff cap (5 s) of the fix, plus the server's start.
        assert!(
            recovered < Duration::from_secs(7),
            "recovered after {recovered:?}"
        );
        for i in 0..20 {
            let v: Option<i64> = client
                .run(cmd::get(format!("during:{i}")).returning())
                .await
                .unwrap();
            assert_eq!(v, Some(i), "during:{i} was written exactly as sent");
        }
        eprintln!("recovered {recovered:?} after the restart");
    });
}

#[test]
fn a_subscription_survives_a_server_restart() {
    let mut server = RedisServer::start(ServerOptions::new()).expect("redis-server");
    let client = Builder::new(&server.url()).unwrap().build().unwrap();
    smol::block_on(async {
        let sub = client.subscribe(["alerts"]).await.unwrap();
        server.restart().expect("restart on the same port");
        // The client reconnects by itself and subscribes the new connection.
        let publisher = Client::open(&server.url()).unwrap();
        let started = std::time::Instant::now();
        loop {
            // PUBLISH answers how many subscribers got the message.
            if publisher
                .run(cmd::publish("alerts", "after restart"))
                .await
                .unwrap()
                == 1
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never resubscribed"
            );
            async_io::Timer::after(Duration::from_millis(20)).await;
        }
        match sub.next().await {
            Some(PushMessage::Message { payload, .. }) => assert_eq!(payload, "after restart"),
            other => panic!("{other:?}"),
        }
    });
}

/// A lone caller writes its own requests (the driver thread of
/// `Client::new` is not woken for them); a write the socket takes only in
/// part leaves the rest to the thread, and requests sent meanwhile, alone
/// or from many tasks, must still reach the socket after it, in order.
/// Values of 8 MiB make the socket take each one in part.
#[test]
fn lone_and_crowded_callers_share_one_socket_in_order() {
    let (server, client) = plain();
    let value =
        |i: usize, len: usize| -> Vec<u8> { (0..len).map(|j| (i * 31 + j * 7) as u8).collect() };
    smol::block_on(async {
        // Alone: every request written by the caller, the large ones in part.
        for i in 0..16 {
            let len = if i % 4 == 0 { 8 << 20 } else { 100 };
            client
                .run(cmd::set(format!("lone:{i}"), value(i, len)))
                .await
                .unwrap();
            let back: Vec<u8> = client
                .run(cmd::get(format!("lone:{i}")).returning())
                .await
                .unwrap();
            assert!(back == value(i, len), "lone:{i} read back as written");
        }
        // Alone, pipelines: the caller's N requests are the only ones.
        // Alone again right after a request whose future was dropped once
        // sent: the thread still holds the rest of its bytes.
        for i in 0..4_i64 {
            let key = format!("dropped:{i}");
            let sent =
                future::poll_once(client.run(cmd::set(key.as_str(), value(i as usize, 8 << 20))));
            assert!(sent.await.is_none(), "an 8 MiB SET is not answered at once");
            let n: i64 = client.run(cmd::incr("after:dropped")).await.unwrap();
            assert_eq!(n, i + 1);
            let back: Vec<u8> = client.run(cmd::get(key).returning()).await.unwrap();
            assert!(
                back == value(i as usize, 8 << 20),
                "dropped:{i} was written whole"
            );
        }
        for i in 0..8_i64 {
            let p = Pipeline::new()
                .add(cmd::set(format!("pipe:{i}"), value(i as usize, 4 << 20)))
                .add(cmd::get(format!("pipe:{i}")).returning::<Vec<u8>>())
                .add(cmd::incr("pipe:n"));
            let ((), back, n): ((), Vec<u8>, i64) = client.pipeline(p).await.unwrap();
            assert!(
                back == value(i as usize, 4 << 20),
                "pipe:{i} read back as written"
            );
            assert_eq!(n, i + 1);
        }
        // Crowded: a large writer and small callers at once.
        let big = smol::spawn({
            let client = client.clone();
            async move {
                for i in 0..4 {
                    client
                        .run(cmd::set(format!("big:{i}"), value(i, 8 << 20)))
                        .await
                        .unwrap();
                    let back: Vec<u8> = client
                        .run(cmd::get(format!("big:{i}")).returning())
                        .await
                        .unwrap();
                    assert!(back == value(i, 8 << 20), "big:{i} read back as written");
                }
            }
        });
        let small: Vec<_> = (0..16)
            .map(|t| {
                let client = client.clone();
                smol::spawn(async move {
                    for n in 1..=150_i64 {
                        let got: i64 = client.run(cmd::incr(format!("small:{t}"))).await.unwrap();
                        assert_eq!(got, n, "small:{t} counts its own increments");
                    }
                })
            })
            .collect();
        big.await;
        for task in small {
            task.await;
        }
    });
    drop(server);
}

/// A lone caller writes its own request without waking the driver thread,
/// but its response deadline is the driver's to keep: a server that stops
/// answering (`CLIENT PAUSE`) must still fail the request on time, once
/// after an idle spell (the driver asleep with no deadline at all) and once
/// right after another request (the driver asleep until a later one).
#[test]
fn a_lone_callers_request_still_times_out_on_time() {
    let server = RedisServer::start(ServerOptions::new()).expect("redis-server");
    let timeout = Duration::from_millis(300);
    let client = Builder::new(&server.url())
        .unwrap()
        .response_timeout(timeout)
        .build()
        .unwrap();
    smol::block_on(async {
        for round in 0..2 {
            client.run(cmd::set("k", "v")).await.unwrap();
            if round == 0 {
                // Every deadline of the last request has passed: the driver
                // sleeps without one.
                async_io::Timer::after(Duration::from_millis(400)).await;
            }
            server
                .cmd(&["CLIENT", "PAUSE", "2000", "ALL"])
                .expect("CLIENT PAUSE");
            let started = std::time::Instant::now();
            let result = client
                .run(cmd::get("k").returning::<Option<String>>())
                .await;
            let took = started.elapsed();
            assert!(
                matches!(result, Err(Error::Connection(redpoll_core::Error::Timeout))),
                "round {round}: expected a response timeout, got {result:?}"
            );
            assert!(
                took < timeout + Duration::from_millis(500),
                "round {round}: timed out after {took:?}"
            );
            server.cmd(&["CLIENT", "UNPAUSE"]).expect("CLIENT UNPAUSE");
            client.wait_connected().await.unwrap();
        }
    });
}
