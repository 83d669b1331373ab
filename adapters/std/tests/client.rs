//! The blocking client against real `redis-server` processes: commands of
//! every family, pipelines, scans, scripts, pub/sub, transactions, many
//! threads, TLS and unix sockets.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redpoll_std::cmd::{self, Pipeline, PushMessage, ScanOptions, Script, SetOptions};
use redpoll_std::core::conn::ConnConfig;
use redpoll_std::core::{Address, ClientConfig, CloseReason, IoError};
use redpoll_std::{Client, Error};
#[cfg(feature = "tls")]
use redpoll_testkit::certs::Pki;
use redpoll_testkit::server::{RedisServer, ServerOptions};

fn server() -> RedisServer {
    RedisServer::start(ServerOptions::new()).expect("start redis-server")
}

fn client(server: &RedisServer) -> Client {
    Client::builder(&server.url())
        .unwrap()
        .response_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn strings_keys_and_expiry() {
    let server = server();
    let c = client(&server);
    c.run(cmd::set("s", "v1")).unwrap();
    assert_eq!(c.run(cmd::get("s")).unwrap(), Some(b("v1")));
    assert_eq!(c.run(cmd::get("missing")).unwrap(), None);
    let text: Option<String> = c.run(cmd::get("s").returning()).unwrap();
    assert_eq!(text.as_deref(), Some("v1"));
    assert!(
        !c.run(cmd::set_with("s", "v2", SetOptions::new().nx()))
            .unwrap()
    );
    assert_eq!(
        c.run(cmd::set_get("s", "v3", SetOptions::new())).unwrap(),
        Some(b("v1"))
    );
    assert_eq!(c.run(cmd::append("s", "!")).unwrap(), 3);
    assert_eq!(c.run(cmd::strlen("s")).unwrap(), 3);
    assert_eq!(c.run(cmd::incr("n")).unwrap(), 1);
    assert_eq!(c.run(cmd::incrby("n", 41)).unwrap(), 42);
    assert!((c.run(cmd::incrbyfloat("f", 1.5)).unwrap() - 1.5).abs() < f64::EPSILON);
    c.run(cmd::mset([("a", "1"), ("b", "2")])).unwrap();
    assert_eq!(
        c.run(cmd::mget(["a", "b", "zz"])).unwrap(),
        [Some(b("1")), Some(b("2")), None]
    );
    assert_eq!(c.run(cmd::exists(["a", "b", "zz"])).unwrap(), 2);
    assert_eq!(c.run(cmd::del(["a", "b"])).unwrap(), 2);
    assert_eq!(c.run(cmd::getdel("s")).unwrap(), Some(b("v3!")));
    assert_eq!(c.run(cmd::type_("n")).unwrap(), "string");

    // Expiry.
    assert_eq!(c.run(cmd::ttl("n")).unwrap(), -1);
    assert!(c.run(cmd::expire("n", 100)).unwrap());
    let ttl = c.run(cmd::ttl("n")).unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    assert!(c.run(cmd::persist("n")).unwrap());
    assert_eq!(c.run(cmd::ttl("n")).unwrap(), -1);
    assert!(c.run(cmd::pexpire("n", 50)).unwrap());
    thread::sleep(Duration::from_millis(120));
    assert_eq!(c.run(cmd::get("n")).unwrap(), None);
    assert_eq!(c.run(cmd::ttl("n")).unwrap(), -2);
    c.run(cmd::setex("e", 100, "x")).unwrap();
    assert!(c.run(cmd::pttl("e")).unwrap() > 90_000);
}

#[test]
fn errors_are_typed() {
    let server = server();
    let c = client(&server);
    c.run(cmd::set("s", "text")).unwrap();
    let e = c.run(cmd::incr("s")).unwrap_err();
    let Error::Server(e) = e else { panic!("{e:?}") };
    assert_eq!(e.code, "ERR");
    c.run(cmd::rpush("l", ["x"])).unwrap();
    let e = c.run(cmd::get("l")).unwrap_err();
    assert!(
        matches!(&e, Error::Server(s) if s.code == "WRONGTYPE"),
        "{e}"
    );
    let e = c.run(cmd::get("s").returning::<i64>()).unwrap_err();
    assert!(matches!(e, Error::Conversion(_)), "{e}");
    // The connection is still in sync after all that.
    assert_eq!(c.run(cmd::ping()).unwrap(), "PONG");
}

#[test]
fn hashes() {
    let server = server();
    let c = client(&server);
    assert_eq!(c.run(cmd::hset("h", [("a", "1"), ("b", "2")])).unwrap(), 2);
    assert_eq!(c.run(cmd::hget("h", "a")).unwrap(), Some(b("1")));
    assert_eq!(c.run(cmd::hincrby("h", "a", 9)).unwrap(), 10);
    assert!(c.run(cmd::hexists("h", "b")).unwrap());
    assert!(c.run(cmd::hsetnx("h", "c", "3")).unwrap());
    assert_eq!(c.run(cmd::hlen("h")).unwrap(), 3);
    let mut all = c.run(cmd::hgetall("h")).unwrap();
    all.sort();
    assert_eq!(all, [(b("a"), b("10")), (b("b"), b("2")), (b("c"), b("3"))]);
    let map: std::collections::HashMap<String, i64> = c.run(cmd::hgetall("h").returning()).unwrap();
    assert_eq!(map["a"], 10);
    assert_eq!(c.run(cmd::hdel("h", ["a", "zz"])).unwrap(), 1);
    let mut keys = c.run(cmd::hkeys("h")).unwrap();
    keys.sort();
    assert_eq!(keys, [b("b"), b("c")]);
}

#[test]
fn lists_and_blocking_pops() {
    let server =
        RedisServer::start(ServerOptions::new().debug_command()).expect("start redis-server");
    // A response deadline shorter than the block time: the block time is
    // added to it, so the BLPOP must not time out.
    let c = Client::builder(&server.url())
        .unwrap()
        .response_timeout(Some(Duration::from_millis(200)))
        .build()
        .unwrap();
    assert_eq!(c.run(cmd::rpush("l", ["a", "b", "c"])).unwrap(), 3);
    assert_eq!(c.run(cmd::lpush("l", ["z"])).unwrap(), 4);
    assert_eq!(
        c.run(cmd::lrange("l", 0, -1)).unwrap(),
        [b("z"), b("a"), b("b"), b("c")]
    );
    assert_eq!(c.run(cmd::lpop("l")).unwrap(), Some(b("z")));
    assert_eq!(c.run(cmd::rpop("l")).unwrap(), Some(b("c")));
    assert_eq!(c.run(cmd::llen("l")).unwrap(), 2);
    assert_eq!(c.run(cmd::lindex("l", 1)).unwrap(), Some(b("b")));

    let start = Instant::now();
    assert_eq!(c.run(cmd::blpop(["empty"], 1.0)).unwrap(), None);
    assert!(start.elapsed() >= Duration::from_millis(900));

    // A pop woken by a push from another thread, meanwhile the shared
    // connection keeps serving.
    let pusher = {
        let c = c.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            assert_eq!(c.run(cmd::ping()).unwrap(), "PONG");
            c.run(cmd::rpush("q", ["job"])).unwrap();
        })
    };
    assert_eq!(
        c.run(cmd::blpop(["q"], 5.0)).unwrap(),
        Some((b("q"), b("job")))
    );
    pusher.join().unwrap();

    // Too short a response deadline for a command that does not block;
    // its late reply is discarded and the connection stays in sync.
    let e = c.run(cmd::cmd("DEBUG").arg("SLEEP").arg(0.5)).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    // (The server sleeps on: it would not answer the next one in time.)
    thread::sleep(Duration::from_millis(400));
    assert_eq!(c.run(cmd::echo("after")).unwrap(), b("after"));
}

#[test]
fn sets_and_sorted_sets() {
    let server = server();
    let c = client(&server);
    assert_eq!(c.run(cmd::sadd("s", ["a", "b", "c"])).unwrap(), 3);
    assert!(c.run(cmd::sismember("s", "a")).unwrap());
    assert!(!c.run(cmd::sismember("s", "x")).unwrap());
    assert_eq!(c.run(cmd::srem("s", ["a"])).unwrap(), 1);
    assert_eq!(c.run(cmd::scard("s")).unwrap(), 2);
    let members: BTreeSet<String> = c.run(cmd::smembers("s").returning()).unwrap();
    assert_eq!(members, BTreeSet::from(["b".into(), "c".into()]));
    c.run(cmd::sadd("t", ["c", "d"])).unwrap();
    assert_eq!(c.run(cmd::sinter(["s", "t"])).unwrap(), [b("c")]);

    assert_eq!(
        c.run(cmd::zadd("z", [(1.0, "one"), (2.0, "two"), (3.0, "three")]))
            .unwrap(),
        3
    );
    assert_eq!(c.run(cmd::zscore("z", "two")).unwrap(), Some(2.0));
    assert_eq!(c.run(cmd::zincrby("z", 10.0, "one")).unwrap(), 11.0);
    assert_eq!(c.run(cmd::zrank("z", "one")).unwrap(), Some(2));
    assert_eq!(c.run(cmd::zcard("z")).unwrap(), 3);
    assert_eq!(c.run(cmd::zcount("z", 2, 3)).unwrap(), 2);
    assert_eq!(
        c.run(cmd::zrange_withscores("z", 0, -1)).unwrap(),
        [(b("two"), 2.0), (b("three"), 3.0), (b("one"), 11.0)]
    );
    assert_eq!(c.run(cmd::zpopmin("z", 1)).unwrap(), [(b("two"), 2.0)]);
    assert_eq!(
        c.run(cmd::zrangebyscore("z", "-inf", "+inf")).unwrap(),
        [b("three"), b("one")]
    );
}

#[test]
fn pipelines() {
    let server = server();
    let c = client(&server);
    let ((), n, v): ((), i64, Option<Bytes>) = c
        .pipeline(
            Pipeline::new()
                .add(cmd::set("k", "v"))
                .add(cmd::incr("n"))
                .add(cmd::get("k")),
        )
        .unwrap();
    assert_eq!((n, v), (1, Some(b("v"))));

    let mut dynamic = Pipeline::dynamic();
    for i in 0..1000 {
        dynamic.push(cmd::incr("counter"));
        dynamic.push(cmd::set(format!("k{i}"), i));
    }
    let frames = c.pipeline(dynamic).unwrap();
    assert_eq!(frames.len(), 2000);
    assert_eq!(c.run(cmd::get("counter").returning::<i64>()).unwrap(), 1000);

    // Atomic, outside a transaction.
    let (a, b_): (i64, i64) = c
        .pipeline(
            Pipeline::new()
                .add(cmd::incr("x"))
                .add(cmd::incr("x"))
                .atomic(),
        )
        .unwrap();
    assert_eq!((a, b_), (1, 2));

    // A server error inside a typed pipeline is the pipeline's error.
    let e = c
        .pipeline(Pipeline::new().add(cmd::incr("k")).add(cmd::ping()))
        .unwrap_err();
    assert!(matches!(e, Error::Server(_)), "{e}");
}

#[test]
fn scan_iterators() {
    let server = server();
    let c = client(&server);
    let mut pipe = Pipeline::dynamic();
    for i in 0..500 {
        pipe.push(cmd::set(format!("user:{i}"), i));
    }
    pipe.push(cmd::set("other", 0));
    c.pipeline(pipe).unwrap();
    let keys: BTreeSet<String> = c
        .scan::<String>(
            cmd::scan_with(0, ScanOptions::new().match_("user:*").count(50)).returning(),
        )
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keys.len(), 500);
    assert!(keys.contains("user:499") && !keys.contains("other"));

    let fields: Vec<(String, String)> =
        (0..300).map(|i| (format!("f{i}"), i.to_string())).collect();
    c.run(cmd::hset(
        "h",
        fields.iter().map(|(f, v)| (f.as_str(), v.as_str())),
    ))
    .unwrap();
    let got: BTreeSet<(Bytes, Bytes)> = c
        .scan(cmd::hscan("h", 0))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got.len(), 300);

    c.run(cmd::sadd("s", (0..200).map(|i| i.to_string())))
        .unwrap();
    assert_eq!(c.scan(cmd::sscan("s", 0)).count(), 200);
    c.run(cmd::zadd(
        "z",
        (0..150).map(|i| (f64::from(i), i.to_string())),
    ))
    .unwrap();
    let scores: Vec<f64> = c.scan(cmd::zscan("z", 0)).map(|r| r.unwrap().1).collect();
    assert_eq!(scores.len(), 150);

    // A failing page ends the iteration with the error.
    let mut wrong = c.scan(cmd::sscan("h", 0));
    assert!(matches!(wrong.next(), Some(Err(Error::Server(_)))));
    assert!(wrong.next().is_none());
}

#[test]
fn scripts_fall_back_to_eval() {
    let server = server();
    let c = client(&server);
    c.run(cmd::script_flush()).unwrap();
    let script =
        Script::new("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[1])");
    assert_eq!(c.run(cmd::script_exists([script.sha1()])).unwrap(), [false]);
    let n: i64 = c.eval(&script, ["k"], [41]).unwrap();
    assert_eq!(n, 42);
    // Cached by the EVAL: this time EVALSHA answers.
    assert_eq!(c.run(cmd::script_exists([script.sha1()])).unwrap(), [true]);
    let n: i64 = c.eval(&script, ["k"], [1]).unwrap();
    assert_eq!(n, 2);
    let e = c
        .eval::<i64, _, _>(&Script::new("return redis.call('NOPE')"), [""; 0], [""; 0])
        .unwrap_err();
    assert!(matches!(e, Error::Server(_)), "{e}");
}

#[test]
fn pubsub_keeps_order_and_routes_by_channel() {
    let server = server();
    let c = client(&server);
    let publisher = client(&server);
    let mut news = c.subscribe(["news"]).unwrap();
    let mut patterns = c.psubscribe(["sport.*"]).unwrap();
    let mut both = c.subscribe(["news", "weather"]).unwrap();
    assert_eq!(both.channels(), [b("news"), b("weather")]);

    let sender = thread::spawn(move || {
        for i in 0..100 {
            assert_eq!(publisher.run(cmd::publish("news", i)).unwrap(), 1);
        }
        publisher.run(cmd::publish("sport.tennis", "ace")).unwrap();
        publisher.run(cmd::publish("weather", "rain")).unwrap();
        publisher
    });
    for i in 0..100 {
        let message = news.next().unwrap();
        assert_eq!(
            message,
            PushMessage::Message {
                channel: b("news"),
                payload: b(&i.to_string())
            }
        );
    }
    assert_eq!(
        patterns.next_timeout(Duration::from_secs(5)),
        Some(PushMessage::PMessage {
            pattern: b("sport.*"),
            channel: b("sport.tennis"),
            payload: b("ace")
        })
    );
    for i in 0..100 {
        assert!(
            matches!(both.next(), Some(PushMessage::Message { payload, .. }) if payload == i.to_string())
        );
    }
    assert!(
        matches!(both.next(), Some(PushMessage::Message { channel, .. }) if channel == "weather")
    );
    assert_eq!(news.next_timeout(Duration::from_millis(50)), None);
    let publisher = sender.join().unwrap();

    // The connection still answers ordinary commands.
    assert_eq!(c.run(cmd::ping()).unwrap(), "PONG");

    // "news" is still wanted by `both`: dropping `news` keeps it.
    drop(news);
    assert_eq!(publisher.run(cmd::publish("news", "x")).unwrap(), 1);
    drop(both);
    drop(patterns);
    // The UNSUBSCRIBE is on its way before drop returns; a command behind
    // it on the same connection proves it was processed.
    assert_eq!(c.run(cmd::ping()).unwrap(), "PONG");
    assert_eq!(publisher.run(cmd::publish("news", "x")).unwrap(), 0);
    assert_eq!(publisher.run(cmd::publish("sport.x", "x")).unwrap(), 0);
}

#[test]
fn transactions_abort_on_watch_conflicts() {
    let server = server();
    let c = client(&server);
    let other = client(&server);
    c.run(cmd::set("balance", 10)).unwrap();

    // Unchallenged.
    let tx = c.transaction().unwrap();
    tx.run(cmd::watch(["balance"])).unwrap();
    let balance: i64 = tx.run(cmd::get("balance").returning()).unwrap();
    let (set, n): ((), i64) = tx
        .exec(
            Pipeline::new()
                .add(cmd::set("balance", balance + 5))
                .add(cmd::incr("tx-count")),
        )
        .unwrap();
    assert_eq!((set, n), ((), 1));
    drop(tx);
    assert_eq!(c.run(cmd::get("balance").returning::<i64>()).unwrap(), 15);

    // Another client changes the watched key between WATCH and EXEC.
    let tx = c.transaction().unwrap();
    tx.run(cmd::watch(["balance"])).unwrap();
    other.run(cmd::set("balance", 100)).unwrap();
    let e = tx
        .exec(Pipeline::new().add(cmd::set("balance", 0)))
        .unwrap_err();
    assert_eq!(e, Error::Aborted);
    drop(tx);
    assert_eq!(c.run(cmd::get("balance").returning::<i64>()).unwrap(), 100);

    // MULTI ... EXEC by hand: an aborted EXEC is a null reply.
    let tx = c.transaction().unwrap();
    tx.run(cmd::watch(["balance"])).unwrap();
    other.run(cmd::incr("balance")).unwrap();
    tx.run(cmd::multi()).unwrap();
    tx.run(cmd::set("balance", 0).returning::<String>())
        .unwrap();
    assert_eq!(tx.run(cmd::exec()).unwrap(), None);
    drop(tx);

    // A transaction left open is closed, not reused.
    let tx = c.transaction().unwrap();
    tx.run(cmd::multi()).unwrap();
    drop(tx);
    let tx = c.transaction().unwrap();
    assert_eq!(tx.run(cmd::incr("fresh")).unwrap(), 1);
}

#[test]
fn many_threads_share_one_client() {
    let server = server();
    let c = client(&server);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = c.clone();
            thread::spawn(move || {
                for i in 0..500 {
                    let key = format!("t{t}:k{i}");
                    c.run(cmd::set(&key, i)).unwrap();
                    assert_eq!(c.run(cmd::get(&key).returning::<i64>()).unwrap(), i);
                    c.run(cmd::incr("total")).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(c.run(cmd::get("total").returning::<i64>()).unwrap(), 4000);
    assert_eq!(c.run(cmd::dbsize()).unwrap(), 4001);
    // All of it over the one shared connection.
    assert_eq!(server.client_count().unwrap(), 1);
}

/// Threads queue their requests while another thread writes the socket
/// outside the lock; the writer then writes what they queued, in order.
/// Values of 8 MiB make writes last and the socket take them in parts.
#[test]
fn large_writes_and_many_small_requests_keep_their_order() {
    let server = server();
    let c = client(&server);
    let value = |i: usize| -> Vec<u8> { (0..8 << 20).map(|j| (i * 31 + j * 7) as u8).collect() };
    let big = {
        let c = c.clone();
        thread::spawn(move || {
            for i in 0..4 {
                c.run(cmd::set(format!("big:{i}"), value(i))).unwrap();
                let back: Vec<u8> = c.run(cmd::get(format!("big:{i}")).returning()).unwrap();
                assert!(back == value(i), "big:{i} read back as written");
            }
        })
    };
    let small: Vec<_> = (0..16)
        .map(|t| {
            let c = c.clone();
            thread::spawn(move || {
                for n in 1..=150_i64 {
                    let got: i64 = c.run(cmd::incr(format!("small:{t}"))).unwrap();
                    assert_eq!(got, n, "small:{t} counts its own increments");
                    if n % 25 == 0 {
                        let p = Pipeline::new()
                            .add(cmd::incr(format!("pipe:{t}")))
                            .add(cmd::get(format!("small:{t}")).returning::<i64>());
                        let (m, back): (i64, i64) = c.pipeline(p).unwrap();
                        assert_eq!((m, back), (n / 25, n));
                    }
                }
            })
        })
        .collect();
    big.join().unwrap();
    for t in small {
        t.join().unwrap();
    }
    assert_eq!(server.client_count().unwrap(), 1);
}

#[cfg(feature = "tls")]
#[test]
fn tls_with_roots_client_certificates_or_no_verification() {
    let pki = Pki::generate();
    let server = RedisServer::start(ServerOptions::new().tls(pki.clone())).expect("TLS server");
    let url = server.url();
    assert!(url.starts_with("rediss://"));

    // No default roots: a rediss:// URL alone is refused.
    assert!(matches!(Client::open(&url), Err(Error::Tls(_))));

    let c = Client::builder(&url)
        .unwrap()
        .tls_root_pem(pki.ca_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    c.run(cmd::set("k", "over tls")).unwrap();
    assert_eq!(c.run(cmd::get("k")).unwrap(), Some(b("over tls")));
    let mut pipe = Pipeline::dynamic();
    for i in 0..500 {
        pipe.push(cmd::set(format!("k{i}"), "x".repeat(1000)));
    }
    assert_eq!(c.pipeline(pipe).unwrap().len(), 500);

    let insecure = Client::builder(&url)
        .unwrap()
        .dangerous_skip_verification()
        .build()
        .unwrap();
    assert_eq!(insecure.run(cmd::get("k")).unwrap(), Some(b("over tls")));

    // A CA that did not sign the server's certificate.
    let stranger = Pki::generate();
    let wrong = Client::builder(&url)
        .unwrap()
        .tls_root_pem(stranger.ca_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let e = wrong.run(cmd::ping()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Connection(redpoll_std::core::Error::Connection(CloseReason::Tls(_)))
        ),
        "{e}"
    );
}

#[cfg(feature = "tls")]
#[test]
fn mutual_tls() {
    let pki = Pki::generate();
    let server = RedisServer::start(ServerOptions::new().tls(pki.clone()).client_auth(true))
        .expect("TLS server");
    let without = Client::builder(&server.url())
        .unwrap()
        .tls_root_pem(pki.ca_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    assert!(without.run(cmd::ping()).is_err());
    let with = Client::builder(&server.url())
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
    assert_eq!(with.run(cmd::ping()).unwrap(), "PONG");
}

#[test]
fn unix_socket() {
    let server = RedisServer::start(ServerOptions::new().unix_socket().no_tcp())
        .expect("unix socket server");
    let url = server.url();
    assert!(url.starts_with("unix://"), "{url}");
    let c = Client::open(&url).unwrap();
    c.run(cmd::set("k", "over a unix socket")).unwrap();
    assert_eq!(c.run(cmd::get("k")).unwrap(), Some(b("over a unix socket")));
    assert_eq!(c.run(cmd::blpop(["none"], 0.1)).unwrap(), None);
}

#[test]
fn connection_failures_and_shutdown() {
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::new(ClientConfig::new(ConnConfig::new(Address::tcp(
        "127.0.0.1",
        port,
    ))));
    let e = c.run(cmd::ping()).unwrap_err();
    assert_eq!(
        e,
        Error::Connection(redpoll_std::core::Error::Connection(
            CloseReason::ConnectFailed(IoError::Refused)
        ))
    );
    assert!(matches!(Client::open("localhost:6379"), Err(Error::Url(_))));

    let server = server();
    let c = client(&server);
    assert_eq!(c.run(cmd::ping()).unwrap(), "PONG");
    let mut sub = c.subscribe(["ch"]).unwrap();
    let waiter = {
        let c = c.clone();
        thread::spawn(move || c.run(cmd::blpop(["never"], 0.0)))
    };
    // The subscriber blocks until shutdown ends it.
    let reader = thread::spawn(move || sub.next());
    while server
        .cmd_text(&["CLIENT", "LIST"])
        .unwrap()
        .lines()
        .all(|l| !l.contains("cmd=blpop"))
    {
        thread::yield_now();
    }
    c.shutdown();
    assert_eq!(
        waiter.join().unwrap(),
        Err(Error::Connection(redpoll_std::core::Error::Shutdown))
    );
    assert_eq!(reader.join().unwrap(), None);
    assert_eq!(
        c.run(cmd::ping()),
        Err(Error::Connection(redpoll_std::core::Error::Shutdown))
    );
    assert!(matches!(
        c.transaction(),
        Err(Error::Connection(redpoll_std::core::Error::Shutdown))
    ));
}

#[test]
fn dropping_the_last_handle_closes_the_connections() {
    let server = server();
    let c = client(&server);
    let shared = Arc::new(c.clone());
    assert_eq!(shared.run(cmd::ping()).unwrap(), "PONG");
    let tx = c.transaction().unwrap();
    tx.run(cmd::ping()).unwrap();
    drop(tx);
    assert_eq!(server.client_count().unwrap(), 2);
    drop(shared);
    drop(c);
    let until = Instant::now() + Duration::from_secs(5);
    while server.client_count().unwrap() > 0 {
        assert!(Instant::now() < until, "connections left open");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_subscription_survives_a_server_restart() {
    let mut server = RedisServer::start(ServerOptions::new()).expect("redis-server");
    let client = Client::open(&server.url()).unwrap();
    let mut sub = client.subscribe(["alerts"]).unwrap();
    server.restart().expect("restart on the same port");
    // The client reconnects by itself and subscribes the new connection.
    let publisher = Client::open(&server.url()).unwrap();
    let started = Instant::now();
    // PUBLISH answers how many subscribers got the message.
    while publisher
        .run(cmd::publish("alerts", "after restart"))
        .unwrap()
        != 1
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never resubscribed"
        );
        thread::sleep(Duration::from_millis(20));
    }
    match sub.next_timeout(Duration::from_secs(5)) {
        Some(PushMessage::Message { payload, .. }) => assert_eq!(payload, "after restart"),
        other => panic!("{other:?}"),
    }
}

/// A caller that reads its own reply still gets its timeout on time: its
/// read is bounded by the core's deadline. Once after an idle spell, once
/// right after another request.
#[test]
fn a_lone_callers_request_times_out_on_time() {
    let server = server();
    let timeout = Duration::from_millis(300);
    let client = Client::builder(&server.url())
        .unwrap()
        .response_timeout(Some(timeout))
        .build()
        .unwrap();
    for round in 0..2 {
        client.run(cmd::set("k", "v")).unwrap();
        if round == 0 {
            // Past the last request's deadlines and the idle handover.
            thread::sleep(Duration::from_millis(400));
        }
        server
            .cmd(&["CLIENT", "PAUSE", "2000", "ALL"])
            .expect("CLIENT PAUSE");
        let started = Instant::now();
        let result = client.run(cmd::get("k").returning::<Option<String>>());
        let took = started.elapsed();
        assert!(
            matches!(
                result,
                Err(Error::Connection(redpoll_std::core::Error::Timeout))
            ),
            "round {round}: expected a response timeout, got {result:?}"
        );
        assert!(
            took < timeout + Duration::from_millis(500),
            "round {round}: timed out after {took:?}"
        );
        server.cmd(&["CLIENT", "UNPAUSE"]).expect("CLIENT UNPAUSE");
        client.wait_connected(Duration::from_secs(5)).unwrap();
    }
}
