//! Threads sharing one redpoll-std client for the end-to-end benchmarks
//! (`e2e.rs`, `cluster.rs`): started once, then given GETs to do.

use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// `threads` threads, each with a clone of a redpoll-std client, until
/// dropped.
pub(crate) struct StdPool {
    jobs: Vec<mpsc::Sender<u64>>,
    done: mpsc::Receiver<()>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl StdPool {
    /// `get(client, t, i)` does the `i`-th request of thread `t` (`i`
    /// counts on across runs).
    pub(crate) fn new<F>(client: &redpoll_std::Client, threads: usize, get: F) -> Self
    where
        F: Fn(&redpoll_std::Client, usize, usize) + Send + Sync + 'static,
    {
        let get = Arc::new(get);
        let (done_tx, done) = mpsc::channel();
        let mut jobs = Vec::new();
        let mut handles = Vec::new();
        for t in 0..threads {
            let (tx, rx) = mpsc::channel::<u64>();
            let client = client.clone();
            let get = get.clone();
            let done_tx = done_tx.clone();
            handles.push(
                thread::Builder::new()
                    .name(format!("std-{t}"))
                    .spawn(move || {
                        let mut i = 0;
                        while let Ok(gets) = rx.recv() {
                            for _ in 0..gets {
                                get(&client, t, i);
                                i += 1;
                            }
                            done_tx.send(()).unwrap();
                        }
                    })
                    .expect("start a thread"),
            );
            jobs.push(tx);
        }
        Self {
            jobs,
            done,
            threads: handles,
        }
    }

    /// Every thread does `gets_per_thread` requests; the time until the
    /// last one is done.
    pub(crate) fn run(&self, gets_per_thread: u64) -> Duration {
        let start = Instant::now();
        for job in &self.jobs {
            job.send(gets_per_thread).unwrap();
        }
        for _ in 0..self.jobs.len() {
            self.done.recv().unwrap();
        }
        start.elapsed()
    }
}

impl Drop for StdPool {
    fn drop(&mut self) {
        self.jobs.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
