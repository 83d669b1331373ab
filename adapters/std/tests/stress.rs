//! Many threads on one client, mixed operations (single commands,
//! pipelines, transactions on leased connections, blocking pops, a slow
//! command), with pauses around the moment an idle socket goes back to its
//! reader thread, once as is and once with the server dropping every
//! connection now and then. No response timeout: a reply that nobody
//! reads or a waiter nobody wakes would hang its thread for ever, which
//! the watchdog below turns into a failure.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use redpoll_std::Client;
use redpoll_std::cmd::{self, Pipeline};
use redpoll_testkit::server::{RedisServer, ServerOptions};

const THREADS: usize = 12;
/// Each test's run, in seconds: 3, or `STRESS_SECS` for a long soak.
fn run_for() -> Duration {
    let secs = std::env::var("STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    Duration::from_secs(secs.unwrap_or(3))
}
/// Longer than any operation here may take, kills included.
const HANG: Duration = Duration::from_secs(10);

/// xorshift64.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// One random operation; with `exact`, checks its reply.
fn operation(c: &Client, t: usize, n: u64, r: u64, exact: bool) {
    match (r >> 8) % 10 {
        0..=4 => {
            let v: Result<Option<String>, _> = c.run(cmd::get("k").returning());
            if exact {
                assert_eq!(v.unwrap().as_deref(), Some("v"));
            }
        }
        5 => {
            let r: Result<(i64, i64), _> =
                c.pipeline(Pipeline::new().add(cmd::incr("p")).add(cmd::incr("p")));
            if exact {
                let (a, b) = r.unwrap();
                assert_eq!(b, a + 1, "a pipeline's replies in order");
            }
        }
        6 => match c.transaction() {
            Ok(tx) => {
                let set = tx.run(cmd::set(format!("x{t}"), n));
                let get: Result<Option<u64>, _> = tx.run(cmd::get(format!("x{t}")).returning());
                if exact {
                    set.unwrap();
                    assert_eq!(get.unwrap(), Some(n));
                }
            }
            Err(e) => assert!(!exact, "lease: {e}"),
        },
        7 => {
            let popped = c.run(cmd::blpop([format!("l{t}")], 0.1));
            if exact {
                assert_eq!(popped.unwrap(), None);
            }
        }
        8 if t == 0 => {
            let slept = c.run(cmd::cmd("DEBUG").arg("SLEEP").arg(0.15));
            if exact {
                slept.unwrap();
            }
        }
        _ => {
            let set = c.run(cmd::set(format!("t{t}"), n));
            if exact {
                set.unwrap();
            }
        }
    }
}

fn stress(kills: bool) {
    let server =
        Arc::new(RedisServer::start(ServerOptions::new().debug_command()).expect("redis-server"));
    let c = Client::builder(&server.url())
        .unwrap()
        .response_timeout(None)
        .build()
        .unwrap();
    c.run(cmd::set("k", "v")).unwrap();
    let run_for = run_for();
    let until = Instant::now() + run_for;
    // Since when each thread is in its current operation: the watchdog's
    // report. The threads are not scoped: a stuck one must not keep the
    // test from failing.
    let busy = Arc::new(Mutex::new(vec![None::<Instant>; THREADS]));
    let killer = kills.then(|| {
        let server = server.clone();
        thread::spawn(move || {
            let mut seed = 12_345;
            while Instant::now() < until {
                thread::sleep(Duration::from_millis(50 + next(&mut seed) % 300));
                // The admin connection is not the client's.
                let _ = server.cmd(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
            }
        })
    });
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (c, busy) = (c.clone(), busy.clone());
            thread::spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 7919);
                let mut n = 0;
                while Instant::now() < until {
                    let r = next(&mut seed);
                    // Around the 50 ms handover of an idle socket, too.
                    let pause = match r % 4 {
                        0 => 0,
                        1 => r % 10,
                        2 => 40 + r % 20,
                        _ => r % 120,
                    };
                    thread::sleep(Duration::from_millis(pause));
                    busy.lock().unwrap()[t] = Some(Instant::now());
                    operation(&c, t, n, r, !kills);
                    busy.lock().unwrap()[t] = None;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let watchdog = until + HANG;
    while workers.iter().any(|w| !w.is_finished()) {
        if Instant::now() > watchdog {
            let stuck: Vec<_> = busy
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .filter_map(|(t, since)| since.map(|at| (t, at.elapsed())))
                .collect();
            panic!("threads stuck in an operation (thread, for): {stuck:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let done: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(done > 100, "only {done} operations in {run_for:?}");
    if let Some(killer) = killer {
        killer.join().unwrap();
    } else {
        // No connection left behind: the server sees the client's open
        // ones (the shared one included), once the closes of surplus ones
        // have reached it.
        let open = c.pool_stats().open;
        let settled = Instant::now() + Duration::from_secs(2);
        while server.client_count().unwrap() != open {
            assert!(
                Instant::now() < settled,
                "{} at the server, {open} open",
                server.client_count().unwrap()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn mixed_operations_from_many_threads_never_hang() {
    stress(false);
}

#[test]
fn mixed_operations_never_hang_while_the_server_drops_connections() {
    stress(true);
}
