//! A connection nobody uses is still watched: when the server closes it,
//! the client notices without being given a command and closes its side,
//! and the next command reconnects.
//!
//! Replies are read by the caller that waits for them while it is the only
//! one (no thread hands them over), and an idle socket is left unread for
//! a moment after its last reply, for the next caller; this checks that
//! its reader thread then takes the watch back.
//!
//! A binary of its own with one test: it looks at the process's file
//! descriptors, which tests running beside it would change.

use std::collections::BTreeSet;
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use redpoll_std::{Client, cmd};
use redpoll_testkit::server::{RedisServer, ServerOptions};

/// The sockets this process holds open (`socket:[inode]`).
fn open_sockets() -> BTreeSet<String> {
    fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd (Linux only)")
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with("socket:"))
        .collect()
}

#[test]
fn an_idle_connection_the_server_closed_is_closed_here_too() {
    let server = RedisServer::start(ServerOptions::new()).expect("redis-server");
    let before = open_sockets();
    let client = Client::open(&server.url()).unwrap();
    client.run(cmd::set("k", "v")).unwrap();
    let ours: BTreeSet<String> = open_sockets().difference(&before).cloned().collect();
    assert!(!ours.is_empty(), "the client's connection is open");

    server
        .cmd(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
        .expect("CLIENT KILL");
    let killed = Instant::now();
    while open_sockets().intersection(&ours).next().is_some() {
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "the client still holds the connection the server closed"
        );
        thread::sleep(Duration::from_millis(10));
    }
    eprintln!("closed here {:?} after the server did", killed.elapsed());

    let value: Option<String> = client.run(cmd::get("k").returning()).unwrap();
    assert_eq!(value.as_deref(), Some("v"));
}
