//! A server stopped for good: commands fail with a clear connection error
//! within their deadline, and the pool holds no socket afterwards (file
//! descriptors counted; a binary of its own, so that no other test opens
//! descriptors meanwhile).

use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use redpoll_core::cmd;
use redpoll_core::pool::PoolConfig;
use redpoll_core::{CloseReason, Error as CoreError};
use redpoll_smol::{Builder, Error};
use redpoll_testkit::server::{RedisServer, ServerOptions, count_open_fds};

#[test]
fn a_server_gone_for_good_fails_commands_in_time_and_leaves_no_socket() {
    let mut server = RedisServer::start(ServerOptions::new()).unwrap();
    // What the process keeps for good (the async-io reactor) first.
    drop(block_on(async_io::Async::<std::net::TcpStream>::connect(
        server.socket_addr(),
    )));
    let at_start = count_open_fds();
    let deadline = Duration::from_millis(500);
    let client = Builder::new(&server.url())
        .unwrap()
        .pool(PoolConfig {
            min_idle: 4,
            ..PoolConfig::default()
        })
        .response_timeout(deadline)
        .build()
        .unwrap();
    // The driver thread's own poller (epoll, eventfd, timerfd) lives as
    // long as the client: count sockets from here.
    let before = count_open_fds();
    block_on(client.wait_connected()).unwrap();
    block_on(client.run(cmd::set("k", "v"))).unwrap();
    server.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let result = block_on(client.run(cmd::get("k")));
        let took = started.elapsed();
        match &result {
            Err(Error::Connection(CoreError::Connection(
                CloseReason::Eof | CloseReason::ConnectFailed(_) | CloseReason::Io(_),
            ))) => {}
            other => panic!("expected a connection error, got {other:?}"),
        }
        assert!(
            result.unwrap_err().to_string().contains("connection"),
            "the message says what failed"
        );
        assert!(took < deadline + Duration::from_millis(300), "{took:?}");
    }
    let stats = client.pool_stats();
    // No pooled connection; at most the shared one's reconnect attempt.
    assert_eq!(stats.idle, 0, "{stats:?}");
    assert!(stats.open <= 1, "{stats:?}");
    // At most the one reconnect attempt under way holds a descriptor.
    let during = count_open_fds();
    assert!(
        during <= before + 1,
        "{before} descriptors before, {during} now"
    );
    drop(client);
    let end = Instant::now() + Duration::from_secs(5);
    while count_open_fds() > at_start {
        assert!(Instant::now() < end, "descriptors left after the client");
        std::thread::sleep(Duration::from_millis(10));
    }
}
