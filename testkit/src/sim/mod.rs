//! The deterministic simulation of the whole client: the core driven on a
//! virtual clock against a simulated network and server, with faults, over
//! many seeds, checking the invariants after every step.
//!
//! # What a run is
//!
//! One `u64` seed decides everything: the client's configuration
//! ([`Params`]), the fault schedule ([`fault`]), the workload
//! ([`workload`]), the network's latencies and splits ([`net`]) and the
//! server's unsolicited pushes ([`server`]). The same seed replays the
//! same run exactly, and a failure prints the one-line command that does
//! so.
//!
//! ```text
//!  workload ──send/lease/cancel──▶ Client ──effects──▶ Net ──▶ Backend (server)
//!      ▲                             │  ▲                 ◀──        │
//!      └──────── events ◀────────────┘  └── handle_* ◀── Net ◀───────┘
//!                   │                         virtual clock: jumps to the
//!                   ▼                         next deadline of anyone
//!            Model + Checks (after every step)
//! ```
//!
//! # Invariants
//!
//! See [`Invariant`]: no panic; I1 (one `Close` per `Connect`, nothing after
//! it, the handshake deadline); timers make progress; the client writes
//! valid TLS and RESP; every request completes exactly once with its own
//! reply or an honest typed error, by its deadline; per-key
//! linearizability; bounded resources (sockets within the pool limit, no
//! requests held beyond those pending, reconnects paced by the backoff);
//! I2 (no request handed a connection known dead or stale by the probe
//! rule, no retry spent on a stale connection: [`liveness`]); I5
//! (recovery after the last fault heals). Each failure names the seed and
//! the invariant.
//!
//! # Extension points
//!
//! - A [`Check`] sees every effect, every event, what the world does to
//!   the client's sockets ([`WorldEvent`]) and the world after every step:
//!   the cluster's I3/I4 checks plug in with [`Sim::with_check`];
//!   [`Invariant`] already names them.
//! - A [`Backend`] is what listens behind the addresses: the standalone
//!   [`StandaloneServer`] now, a cluster of nodes (slots, `MOVED`/`ASK`,
//!   failover) later.
//! - [`FaultKind`] grows variants (node kill, slot migration); a
//!   [`Profile`] selects what a run exercises.
//!
//! # Use
//!
//! ```no_run
//! use redpoll_testkit::sim;
//! for seed in 0..100 {
//!     if let Err(failure) = sim::run(seed, sim::Profile::Full) {
//!         let minimal = sim::shrink(&failure);
//!         panic!("{failure}\n{minimal}");
//!     }
//! }
//! ```

pub mod check;
pub mod cluster;
pub mod cluster_world;
pub mod fault;
pub mod liveness;
pub mod model;
pub mod net;
pub mod rng;
pub mod server;
pub mod tls;
pub mod workload;
mod world;

use std::fmt;

use redpoll_core::client::ClientConfig;
use redpoll_core::conn::{ConnConfig, Protocol};
use redpoll_core::pool::{PoolConfig, RetryPolicy};
use redpoll_core::reconnect::ReconnectPolicy;
use redpoll_core::{Address, Duration};

pub use check::{Check, Invariant, SocketLife, View, Violation, WorldEvent};
pub use fault::{Fault, FaultKind};
pub use server::{Backend, ServerParams, StandaloneServer};
pub use world::{Sim, Stats};

use fault::ScheduleParams;
use net::NetParams;
use rng::Rng;

/// The streams forked off a seed, one per purpose.
mod stream {
    pub(super) const PARAMS: u64 = 1;
    pub(super) const NET: u64 = 2;
    pub(super) const WORKLOAD: u64 = 3;
    pub(super) const FAULTS: u64 = 4;
    pub(super) const SERVER: u64 = 5;
    pub(super) const ADAPTER: u64 = 6;
}

/// Which parts of the client a run exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Everything: the shared connection, the pool's dedicated connections
    /// (leases, blocking commands, idle upkeep), pub/sub.
    #[default]
    Full,
    /// The shared connection only: no leases, no blocking commands, no idle
    /// connections kept ahead. What the standalone invariants need, and
    /// what runs clean while a pool bug is open.
    Shared,
}

impl Profile {
    /// The profile named by `SIM_PROFILE` (`full`, the default, or
    /// `shared`).
    ///
    /// # Panics
    ///
    /// On any other name.
    #[must_use]
    pub fn from_env() -> Self {
        match std::env::var("SIM_PROFILE").as_deref() {
            Err(_) | Ok("" | "full") => Self::Full,
            Ok("shared") => Self::Shared,
            Ok(other) => panic!("SIM_PROFILE={other}: expected full or shared"),
        }
    }
}

/// Everything a seed decides besides the faults and the workload's
/// choices.
#[derive(Debug, Clone)]
pub struct Params {
    /// The seed.
    pub seed: u64,
    /// What the run exercises.
    pub profile: Profile,
    /// The connection configuration (TLS, protocol, auth, deadlines).
    pub conn: ConnConfig,
    /// The response deadline.
    pub response_timeout: Option<Duration>,
    /// The pool.
    pub pool: PoolConfig,
    /// Retries.
    pub retry: RetryPolicy,
    /// The reconnect policy.
    pub reconnect: ReconnectPolicy,
    /// The server.
    pub server: ServerParams,
    /// The network.
    pub net: NetParams,
    /// How long the workload runs.
    pub run_for: Duration,
    /// Where faults may fall.
    pub schedule: ScheduleParams,
    /// The largest gap between two workload actions.
    pub max_gap: Duration,
    /// Shut the client down at this offset, in the middle of things.
    pub shutdown_at: Option<Duration>,
    /// Chance (percent) that the adapter answers a probe later rather than
    /// at once.
    pub probe_defer_percent: u64,
    /// Whether pub/sub is part of the workload.
    pub pubsub: bool,
}

/// The host of the simulated server.
pub const HOST: &str = tls::SERVER_NAME;
/// The password of the simulated server, when it has one.
pub const PASSWORD: &str = "sim-secret";

impl Params {
    /// The parameters of `seed` in `profile`.
    #[must_use]
    pub fn draw(seed: u64, profile: Profile) -> Self {
        let mut r = Rng::new(seed).fork(stream::PARAMS);
        let tls = r.chance(20);
        let protocol = if r.chance(80) {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        let no_hello = r.chance(10);
        let password = r.chance(40).then(|| PASSWORD.to_owned());
        let mut conn = ConnConfig::new(Address::tcp(HOST, 6379));
        conn.protocol = protocol;
        conn.username = (password.is_some() && r.chance(50)).then(|| "default".to_owned());
        conn.password.clone_from(&password);
        conn.client_name = r.chance(50).then(|| "sim".to_owned());
        conn.database = if r.chance(60) {
            0
        } else {
            r.range(1, 3) as u32
        };
        conn.set_info = r.chance(70);
        conn.handshake_timeout = r.millis(100, 2000);
        conn.stall_timeout = r.millis(200, 3000);
        if tls {
            conn.tls = Some(tls::client_config());
        }
        let response_timeout = (!r.chance(20)).then(|| r.millis(50, 3000));
        let max_size = r.range(1, 4) as usize;
        let min_idle = r.range(0, 1).min(max_size as u64) as usize;
        let pool = PoolConfig {
            max_size,
            min_idle: if profile == Profile::Shared {
                0
            } else {
                min_idle
            },
            max_idle: r.range(0, 2) as usize,
            idle_timeout: r.chance(70).then(|| r.millis(200, 5000)),
            max_lifetime: r.chance(20).then(|| r.millis(500, 8000)),
            probe_after: match r.below(10) {
                0 | 1 => None,
                2..=6 => Some(Duration::ZERO),
                _ => Some(r.millis(1, 500)),
            },
            max_waiters: r.range(0, 8) as usize,
            wait_timeout: r.millis(20, 2000),
        };
        let retry = if r.chance(50) {
            RetryPolicy::NONE
        } else {
            RetryPolicy {
                attempts: r.range(1, 2) as u8,
                writes: r.chance(30),
            }
        };
        let base = r.millis(5, 100);
        let reconnect = ReconnectPolicy {
            base,
            cap: r.millis(100, 2000).max(base),
            max_attempts: None,
            retry_before_established: r.chance(30),
            hold_requests: r.chance(80),
            seed: r.next_u64(),
        };
        let latency_min = r.duration(Duration::from_micros(50), Duration::from_millis(1));
        let net = NetParams {
            latency_min,
            latency_max: r.duration(latency_min, Duration::from_millis(5)),
            jitter_max: r.duration(Duration::ZERO, Duration::from_millis(2)),
            split_percent: r.range(0, 60),
            // Drawn last, below: the streams of the older knobs stay put.
            eof_lag: Duration::ZERO,
        };
        let run_for = r.millis(2000, 6000);
        let schedule = ScheduleParams {
            start: Duration::from_millis(50),
            end: run_for.saturating_sub(Duration::from_millis(500)),
            max_faults: 6,
        };
        let server = ServerParams {
            tls,
            password,
            no_hello,
            push_percent: if r.chance(30) { r.range(1, 5) } else { 0 },
            idle_timeout: None,
        };
        let resp2 = protocol == Protocol::Resp2 || no_hello;
        let mut params = Self {
            seed,
            profile,
            conn,
            response_timeout,
            pool,
            retry,
            reconnect,
            server,
            net,
            run_for,
            schedule,
            max_gap: r.millis(1, 40),
            shutdown_at: r
                .chance(3)
                .then(|| r.millis(100, run_for.as_millis() as u64)),
            probe_defer_percent: r.range(0, 30),
            pubsub: !resp2 && r.chance(40),
        };
        // The stale connections of invariant I2: the adapter notices a
        // peer's close late (a probe at once), and the server closes idle
        // connections. Its timeout stays above the longest pause of a lease
        // script (200 ms), so that only idle connections go stale.
        params.net.eof_lag = match r.below(10) {
            0..=2 => Duration::ZERO,
            3..=6 => r.millis(1, 30),
            _ => r.millis(30, 300),
        };
        params.server.idle_timeout = r.chance(40).then(|| r.millis(300, 1500));
        params
    }

    /// The client configuration.
    #[must_use]
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.conn.clone());
        config.response_timeout = self.response_timeout;
        config.pool = self.pool.clone();
        config.retry = self.retry;
        config.reconnect = self.reconnect;
        config
    }

    /// Whether connections end up on RESP2.
    #[must_use]
    pub fn resp2(&self) -> bool {
        self.conn.protocol == Protocol::Resp2 || self.server.no_hello
    }

    /// The seed's own fault schedule.
    #[must_use]
    pub fn faults(&self) -> Vec<Fault> {
        let mut r = Rng::new(self.seed).fork(stream::FAULTS);
        fault::generate(&mut r, &self.schedule)
    }
}

/// A run that broke an invariant.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The profile.
    pub profile: Profile,
    /// What broke.
    pub violation: Violation,
    /// When, from the start of the run.
    pub at: Duration,
    /// The fault schedule of the run.
    pub faults: Vec<Fault>,
    /// Whether the schedule is not the seed's own (a shrunk or given one).
    pub custom_faults: bool,
    /// The last lines of the trace, when the run was traced.
    pub trace: Vec<String>,
}

impl Failure {
    /// The one-line command that replays this failure exactly.
    #[must_use]
    pub fn replay_command(&self) -> String {
        let faults = if self.custom_faults {
            format!("SIM_FAULTS='{}' ", fault::format_schedule(&self.faults))
        } else {
            String::new()
        };
        let profile = match self.profile {
            Profile::Full => "",
            Profile::Shared => "SIM_PROFILE=shared ",
        };
        format!(
            "SIM_SEED={} {profile}{faults}cargo test --test sim -- replay --nocapture",
            self.seed
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation seed {} broke \"{}\" at t={:?}: {}",
            self.seed, self.violation.invariant, self.at, self.violation.message
        )?;
        writeln!(f, "  faults: {}", fault::format_schedule(&self.faults))?;
        write!(f, "  replay: {}", self.replay_command())
    }
}

/// Runs `seed` with its own fault schedule.
///
/// # Errors
///
/// The first invariant the run broke.
pub fn run(seed: u64, profile: Profile) -> Result<Stats, Failure> {
    Sim::new(seed, profile).run()
}

/// Runs `seed` with the fault schedule `faults` instead of its own.
///
/// # Errors
///
/// The first invariant the run broke.
pub fn run_with_faults(seed: u64, profile: Profile, faults: Vec<Fault>) -> Result<Stats, Failure> {
    Sim::with_faults(seed, profile, faults).run()
}

/// The smallest fault schedule (removing halves, then single faults) with
/// which the seed still breaks the same invariant, as a failure that
/// replays it.
#[must_use]
pub fn shrink(failure: &Failure) -> Failure {
    let breaks =
        |faults: &[Fault]| match run_with_faults(failure.seed, failure.profile, faults.to_vec()) {
            Err(f) if f.violation.invariant == failure.violation.invariant => Some(f),
            _ => None,
        };
    let mut best = failure.clone();
    let mut chunk = best.faults.len().div_ceil(2).max(1);
    while !best.faults.is_empty() {
        let mut shrunk = false;
        let mut start = 0;
        while start < best.faults.len() {
            let mut candidate = best.faults.clone();
            candidate.drain(start..(start + chunk).min(candidate.len()));
            match breaks(&candidate) {
                Some(f) => {
                    best = f;
                    shrunk = true;
                }
                None => start += chunk,
            }
        }
        if chunk == 1 && !shrunk {
            break;
        }
        if !shrunk {
            chunk = chunk.div_ceil(2);
        }
    }
    best.custom_faults = best.faults != Params::draw(best.seed, best.profile).faults();
    best
}

/// The outcome of many seeds (of the standalone simulation by default;
/// the cluster simulation's statistics and failures otherwise).
#[derive(Debug)]
pub struct Sweep<S = Stats, F = Failure> {
    /// Seeds run.
    pub ran: u64,
    /// Their statistics, summed.
    pub stats: S,
    /// The failures, by seed.
    pub failures: Vec<F>,
}

impl<S: Default, F> Default for Sweep<S, F> {
    fn default() -> Self {
        Self {
            ran: 0,
            stats: S::default(),
            failures: Vec::new(),
        }
    }
}

/// Runs `seeds` one after the other, stopping after `max_failures`.
#[must_use]
pub fn sweep(seeds: impl IntoIterator<Item = u64>, profile: Profile, max_failures: usize) -> Sweep {
    let mut out = Sweep::default();
    for seed in seeds {
        out.ran += 1;
        match run(seed, profile) {
            Ok(stats) => out.stats += stats,
            Err(failure) => {
                out.failures.push(failure);
                if out.failures.len() >= max_failures {
                    break;
                }
            }
        }
    }
    out
}

/// Runs the seeds `start..start + count` on `threads` threads. With
/// `stop_at_first`, it stops once the lowest failing seed is known (the
/// first of [`Sweep::failures`]); otherwise it runs every seed.
#[must_use]
pub fn sweep_parallel(
    start: u64,
    count: u64,
    profile: Profile,
    threads: usize,
    stop_at_first: bool,
) -> Sweep {
    seeds_in_parallel(start, count, threads, stop_at_first, |seed| {
        run(seed, profile)
    })
}

/// Runs `run` for the seeds `start..start + count` on `threads` threads,
/// summing the statistics and keeping the failures, lowest seed first.
/// With `stop_at_first`, a thread stops at a seed above the lowest failing
/// one found so far. Both simulations' sweeps are this.
pub(crate) fn seeds_in_parallel<S, F>(
    start: u64,
    count: u64,
    threads: usize,
    stop_at_first: bool,
    run: impl Fn(u64) -> Result<S, F> + Sync,
) -> Sweep<S, F>
where
    S: Default + std::ops::AddAssign + Send,
    F: Send,
{
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    let threads = threads.max(1) as u64;
    let lowest_failure = AtomicU64::new(u64::MAX);
    let total = Mutex::new(Sweep::<S, Vec<(u64, F)>>::default());
    let run = &run;
    std::thread::scope(|scope| {
        for worker in 0..threads {
            let (lowest_failure, total) = (&lowest_failure, &total);
            scope.spawn(move || {
                let mut mine = Sweep::<S, (u64, F)>::default();
                let mut seed = start + worker;
                while seed < start + count {
                    if stop_at_first && seed > lowest_failure.load(Ordering::Relaxed) {
                        break;
                    }
                    mine.ran += 1;
                    match run(seed) {
                        Ok(stats) => mine.stats += stats,
                        Err(failure) => {
                            lowest_failure.fetch_min(seed, Ordering::Relaxed);
                            mine.failures.push((seed, failure));
                        }
                    }
                    seed += threads;
                }
                let mut total = total
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                total.ran += mine.ran;
                total.stats += mine.stats;
                total.failures.push(mine.failures);
            });
        }
    });
    let total = total
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut failures: Vec<(u64, F)> = total.failures.into_iter().flatten().collect();
    failures.sort_by_key(|&(seed, _)| seed);
    Sweep {
        ran: total.ran,
        stats: total.stats,
        failures: failures.into_iter().map(|(_, f)| f).collect(),
    }
}

/// What a sweep's report says of one failure: its seed, the name of the
/// invariant it broke, when, and the message.
#[cfg(test)]
pub(crate) struct FailureLine {
    pub(crate) seed: u64,
    pub(crate) invariant: String,
    pub(crate) at: Duration,
    pub(crate) message: String,
}

/// The engine of `scripts/soak.sh` and `scripts/mutants.sh` (tests run
/// with `--ignored`): `sweep` runs the seeds `SIM_START..SIM_START +
/// SIM_SEEDS` on `SIM_THREADS` threads, stopping at the lowest failing
/// seed with `SIM_STOP_AT_FIRST=1`. Prints one `SIM_RESULT` line (the
/// scripts read it), the statistics, and one `SIM_FAILURE` line per
/// failing seed; returns the sweep.
#[cfg(test)]
pub(crate) fn sweep_from_env<S: fmt::Debug, F>(
    sweep: impl FnOnce(u64, u64, usize, bool) -> Sweep<S, F>,
    line: impl Fn(&F) -> FailureLine,
) -> Sweep<S, F> {
    fn env(name: &str, default: u64) -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
    let start = env("SIM_START", 0);
    let count = env("SIM_SEEDS", 2000);
    let threads = env(
        "SIM_THREADS",
        std::thread::available_parallelism().map_or(2, |n| n.get() as u64),
    ) as usize;
    let stop_at_first = env("SIM_STOP_AT_FIRST", 0) == 1;
    let clock = std::time::Instant::now();
    let sweep = sweep(start, count, threads, stop_at_first);
    let first = sweep.failures.first().map(&line);
    println!(
        "SIM_RESULT ran={} failures={} first_failing_seed={} invariant={:?} seconds={:.1}",
        sweep.ran,
        sweep.failures.len(),
        first
            .as_ref()
            .map_or_else(|| "none".to_owned(), |f| f.seed.to_string()),
        first.map(|f| f.invariant),
        clock.elapsed().as_secs_f64()
    );
    println!("{:#?}", sweep.stats);
    for f in sweep.failures.iter().map(&line) {
        println!(
            "SIM_FAILURE seed={} invariant={:?} at={:?}: {}",
            f.seed,
            f.invariant,
            f.at,
            f.message.chars().take(300).collect::<String>()
        );
    }
    sweep
}

#[cfg(test)]
mod tests {
    use super::*;

    /// See [`sweep_from_env`], in the profile `SIM_PROFILE`.
    #[test]
    #[ignore = "run by scripts/soak.sh and scripts/mutants.sh"]
    fn sweep_from_env() {
        let profile = Profile::from_env();
        let sweep = super::sweep_from_env(
            |start, count, threads, stop_at_first| {
                sweep_parallel(start, count, profile, threads, stop_at_first)
            },
            |f: &Failure| FailureLine {
                seed: f.seed,
                invariant: f.violation.invariant.to_string(),
                at: f.at,
                message: f.violation.message.clone(),
            },
        );
        if let Some(first) = sweep.failures.first() {
            panic!("{first}\nshrunk:\n{}", shrink(first));
        }
    }
}
