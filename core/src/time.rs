//! The core's clock types and its one table of timers.
//!
//! The core never reads a clock: every input carries `now`. [`Instant`] is a
//! point on the adapter's monotonic clock, counted in nanoseconds from an
//! origin the adapter picks (for example the moment the client was built),
//! so the same core runs on `std::time`, an embedded tick counter or the
//! virtual clock of the simulation tests.

pub use core::time::Duration;

/// A point in time on the adapter's monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Self = Self(0);

    /// The instant `nanos` nanoseconds after the origin.
    #[must_use]
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the origin.
    #[must_use]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The instant `d` later, saturating at the end of time.
    #[must_use]
    pub const fn saturating_add(self, d: Duration) -> Self {
        let nanos = d.as_nanos();
        let nanos = if nanos > u64::MAX as u128 {
            u64::MAX
        } else {
            nanos as u64
        };
        Self(self.0.saturating_add(nanos))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    #[must_use]
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Self;

    fn add(self, d: Duration) -> Self {
        self.saturating_add(d)
    }
}

/// Every timer the core can arm. Each connection holds one deadline per kind
/// in a fixed table; the next deadline of the client is the smallest of all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// TCP connect + TLS + HELLO/AUTH/SELECT must finish by then.
    Handshake,
    /// The earliest response deadline of a request in flight.
    Response,
    /// A request timed out in flight and nothing has been received since:
    /// the connection is closed as stalled at this deadline.
    Stall,
}

impl Timer {
    /// Every timer, in table order.
    pub const ALL: [Self; 3] = [Self::Handshake, Self::Response, Self::Stall];

    const fn index(self) -> usize {
        self as usize
    }
}

/// One deadline per [`Timer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers([Option<Instant>; Timer::ALL.len()]);

impl Timers {
    pub(crate) const fn set(&mut self, timer: Timer, at: Instant) {
        self.0[timer.index()] = Some(at);
    }

    pub(crate) const fn clear(&mut self, timer: Timer) {
        self.0[timer.index()] = None;
    }

    pub(crate) const fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer.index()]
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// Whether `timer` is armed and due at `now`.
    pub(crate) fn due(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }
}
