//! A short tour of redpoll: the async (smol) and blocking clients, typed
//! commands, pipelines, transactions, pub/sub, scans, scripts, blocking
//! commands, and TLS.
//!
//! ```text
//! scripts/demo.sh                      # starts throwaway servers on loopback
//! REDIS_URL=redis://127.0.0.1:6379 scripts/demo.sh   # or uses yours
//! ```
//!
//! The TLS part always runs against a throwaway TLS server with a CA
//! generated on the spot (it needs `redis-server` installed).

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use redpoll::core::cmd::{self, Pipeline, PushMessage, Script};
use redpoll_testkit::certs::Pki;
use redpoll_testkit::server::{RedisServer, ServerOptions};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    // A throwaway server unless REDIS_URL says where yours is.
    let (url, _plain) = match std::env::var("REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = RedisServer::start(ServerOptions::new())?;
            println!("started a throwaway redis-server on {}", server.addr());
            (server.url(), Some(server))
        }
    };
    println!("connecting to {url}\n");
    smol::block_on(tour_async(&url))?;
    tour_blocking(&url)?;
    tour_tls()?;
    println!("\ndone: every socket closed, throwaway servers stopped");
    Ok(())
}

async fn tour_async(url: &str) -> Result<()> {
    println!("== redpoll-smol: the async client");
    let client = redpoll::smol::Client::open(url)?;

    // Typed commands know their reply type; `returning` picks another.
    client
        .run(cmd::set("demo:greeting", "hello from redpoll"))
        .await?;
    let greeting: Option<String> = client.run(cmd::get("demo:greeting").returning()).await?;
    println!("GET demo:greeting      -> {greeting:?}");
    let visits = client.run(cmd::incr("demo:visits")).await?;
    println!("INCR demo:visits       -> {visits}");

    // A pipeline: one write, typed results.
    let (_, len, members): ((), u64, Vec<String>) = client
        .pipeline(
            Pipeline::new()
                .add(cmd::del(["demo:langs"]).returning::<()>())
                .add(cmd::rpush("demo:langs", ["rust", "zig", "ocaml"]))
                .add(cmd::lrange("demo:langs", 0, -1).returning()),
        )
        .await?;
    println!("pipeline (DEL, RPUSH, LRANGE) -> {len} items: {members:?}");

    // Many tasks share one pipelined connection.
    let start = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|t| {
            let client = client.clone();
            smol::spawn(async move {
                for i in 0..200 {
                    client.run(cmd::set(format!("demo:task:{t}"), i)).await?;
                }
                Ok::<_, redpoll::smol::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    println!(
        "50 tasks x 200 SETs over one connection in {:?}",
        start.elapsed()
    );

    // A transaction with WATCH, on a connection of its own.
    client.run(cmd::set("demo:balance", 100)).await?;
    let tx = client.transaction()?;
    tx.run(cmd::watch(["demo:balance"])).await?;
    let balance: i64 = tx.run(cmd::get("demo:balance").returning()).await?;
    let (new_balance,): (i64,) = tx
        .pipeline(
            Pipeline::new()
                .add(cmd::decrby("demo:balance", 30))
                .atomic(),
        )
        .await?;
    drop(tx);
    println!("WATCH/MULTI/EXEC       -> balance {balance} -> {new_balance}");

    // A blocking command: its own connection, its block time on top of the
    // response deadline.
    let pusher = client.clone();
    smol::spawn(async move {
        async_io::Timer::after(Duration::from_millis(200)).await;
        let _ = pusher.run(cmd::rpush("demo:jobs", ["job-42"])).await;
    })
    .detach();
    let job = client
        .run(cmd::blpop(["demo:jobs"], 2.0).returning::<Option<(String, String)>>())
        .await?;
    println!("BLPOP demo:jobs 2      -> {job:?} (pushed 200 ms later)");

    // Pub/sub over RESP3 push frames.
    let subscription = client.subscribe(["demo:news"]).await?;
    for headline in ["redpoll 0.1", "sans-IO all the way"] {
        client.run(cmd::publish("demo:news", headline)).await?;
    }
    for _ in 0..2 {
        if let Some(PushMessage::Message { channel, payload }) = subscription.next().await {
            println!(
                "message on {}: {}",
                String::from_utf8_lossy(&channel),
                String::from_utf8_lossy(&payload)
            );
        }
    }
    drop(subscription);

    // SCAN as a stream.
    let keys: Vec<String> = client
        .scan(
            cmd::scan_with(0, cmd::ScanOptions::new().match_("demo:task:*").count(100)).returning(),
        )
        .try_collect()
        .await?;
    println!("SCAN demo:task:*       -> {} keys", keys.len());

    // A script: EVALSHA, with EVAL sent once when the server lacks it.
    let script = Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let total: i64 = client.eval(&script, ["demo:visits"], [10]).await?;
    println!("EVALSHA (INCRBY 10)    -> {total}");

    // Server errors are typed.
    match client.run(cmd::incr("demo:greeting")).await {
        Err(redpoll::smol::Error::Server(e)) => println!(
            "INCR on a string       -> server error {}: {}",
            e.code, e.message
        ),
        other => println!("INCR on a string       -> {other:?}"),
    }
    Ok(())
}

fn tour_blocking(url: &str) -> Result<()> {
    println!("\n== redpoll-std: the blocking client, shared by threads");
    let client = redpoll::blocking::Client::open(url)?;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..4 {
            let client = client.clone();
            s.spawn(move || {
                for i in 0..500 {
                    client
                        .run(cmd::set(format!("demo:thread:{t}"), i))
                        .expect("SET");
                }
            });
        }
    });
    let last: Vec<Option<i64>> =
        client.run(cmd::mget((0..4).map(|t| format!("demo:thread:{t}"))).returning())?;
    println!(
        "4 threads x 500 SETs in {:?}; MGET -> {last:?}",
        start.elapsed()
    );
    Ok(())
}

fn tour_tls() -> Result<()> {
    println!("\n== TLS inside the core (rustls), certificates generated now");
    let pki = Pki::generate();
    let server = RedisServer::start(ServerOptions::new().tls(pki.clone()))?;
    let url = server.url();
    let client = redpoll::smol::Builder::new(&url)?
        .tls_root_pem(pki.ca_pem.as_bytes())?
        .build()?;
    smol::block_on(async {
        client
            .run(cmd::set("demo:tls", "encrypted in the core"))
            .await?;
        let value: Option<String> = client.run(cmd::get("demo:tls").returning()).await?;
        println!("{url}: GET demo:tls -> {value:?}");
        Ok::<_, redpoll::smol::Error>(())
    })?;
    Ok(())
}
