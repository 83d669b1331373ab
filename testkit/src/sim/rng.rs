//! The simulation's one source of randomness: SplitMix64 from the seed.
//!
//! Every random choice of a run (the network's latencies and splits, the
//! workload, the fault schedule, the server's unsolicited pushes) is drawn
//! from a stream forked off the run's seed, each purpose from its own
//! stream: removing a fault while shrinking leaves the workload's choices
//! as they were.

use redpoll_core::Duration;

/// SplitMix64: tiny, fast, and good enough to drive a simulation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub const fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An independent generator for one purpose, named by `stream`.
    #[must_use]
    pub const fn fork(&self, stream: u64) -> Self {
        let mut r = Self(self.0 ^ stream.wrapping_mul(0xd6e8_feb8_6659_fd93));
        Self(r.next_u64())
    }

    /// A value in `[0, n)`; 0 when `n` is 0.
    pub const fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.next_u64() % n
    }

    /// A value in `[lo, hi]`.
    pub const fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub const fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A duration in `[lo, hi]`, at microsecond resolution.
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        let lo = u64::try_from(lo.as_micros()).unwrap_or(u64::MAX);
        let hi = u64::try_from(hi.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.range(lo, hi))
    }

    /// A duration in `[lo_ms, hi_ms]` milliseconds, in whole milliseconds (so
    /// that fault schedules print and parse back exactly).
    pub const fn millis(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(self.range(lo_ms, hi_ms))
    }

    /// One of `items`, by weight: `(weight, item)`.
    ///
    /// # Panics
    ///
    /// When every weight is 0.
    pub fn weighted<T: Copy>(&mut self, items: &[(u64, T)]) -> T {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut pick = self.below(total);
        for (w, item) in items {
            if pick < *w {
                return *item;
            }
            pick -= w;
        }
        panic!("weighted pick over nothing")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_replay_and_differ() {
        let root = Rng::new(7);
        let mut a = root.fork(1);
        let mut b = root.fork(1);
        let mut c = root.fork(2);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert!((0..1000).all(|_| a.range(3, 5) >= 3 && a.range(3, 5) <= 5));
    }
}
