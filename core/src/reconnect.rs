//! The reconnect policy: error classes, phases, capped jittered backoff.
//!
//! # What this module decides
//!
//! What the client does after its connection to a server ends: reconnect
//! after how long, fail the waiting requests at once, or give up. The
//! decision is a pure function of the error class, the client's phase and
//! the attempt number ([`decide`]), with the jitter drawn from a seeded
//! generator so that a schedule replays exactly.
//!
//! # Error classes
//!
//! Matched on the error's kind or code, never on free text alone:
//!
//! | class | close reasons |
//! |---|---|
//! | [`ErrorClass::Network`] | connect refused/unreachable, reset, EOF, handshake deadline, stalled |
//! | [`ErrorClass::NotReady`] | `LOADING`, `BUSY`, `MASTERDOWN`, `TRYAGAIN`, `CLUSTERDOWN` during the handshake |
//! | [`ErrorClass::SecurityOrConfig`] | `DENIED` (protected mode), `WRONGPASS`, `NOAUTH`, `NOPERM`, other handshake refusals (`SELECT` out of range, unknown command), TLS certificate and configuration errors |
//! | [`ErrorClass::Protocol`] | bytes that are not RESP, a reply nobody asked for, a TLS protocol error |
//! | [`ErrorClass::Command`] | errors that concern one command only; they never close a connection |
//!
//! # The decision table
//!
//! | class \ phase | never connected | established | shut down |
//! |---|---|---|---|
//! | security/config | fail fast (or reconnect, if `retry_before_established`) | reconnect with backoff | give up |
//! | network, not ready, protocol | reconnect with backoff | reconnect with backoff | give up |
//!
//! After the client has been established, every class leads to reconnect
//! attempts, forever unless `max_attempts` is set: a `DENIED` or a changed
//! password that a later fix of the server cures is recovered from without
//! a restart (invariant I5). Before it, a security or configuration error
//! fails fast with the server's words, since retrying a wrong password only
//! hides the mistake.
//!
//! # Backoff
//!
//! Capped exponential with full jitter: attempt `n` (from 0) waits a uniform
//! random time in `[0, min(cap, base * 2^n)]`. Every new connection to a
//! server is paced by it, whatever ended the previous one, including a
//! handshake refused after TCP connected fine: no reconnect storm.

use crate::error::{HandshakeErrorKind, TlsErrorKind};
use crate::io::CloseReason;
use crate::time::Duration;

/// What kind of failure ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The path to the server: refused, reset, EOF, timeouts.
    Network,
    /// The server is there but not ready: loading, busy, failing over.
    NotReady,
    /// The server or the client's configuration says no: protected mode,
    /// wrong password, missing permission, bad TLS setup.
    SecurityOrConfig,
    /// The byte stream cannot be trusted.
    Protocol,
    /// One command failed; the connection is fine.
    Command,
}

/// Where the client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// No handshake has completed since the client was built.
    NeverConnected,
    /// At least one handshake completed.
    Established,
    /// The application shut the client down.
    ShutDown,
}

/// What to do after a connection ended.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Open a new connection after this long.
    Reconnect {
        /// The backoff.
        after: Duration,
    },
    /// Fail the waiting requests with the error now; connect again only
    /// when a new request asks for it (still paced by the backoff).
    FailFast,
    /// Stop: the reconnect budget is spent, or the client is shut down.
    GiveUp,
}

/// The knobs of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The first backoff ceiling. Default: 50 ms.
    pub base: Duration,
    /// The largest backoff. Default: 5 s.
    pub cap: Duration,
    /// Reconnect attempts in a row before giving up; `None`: never give up
    /// (the default).
    pub max_attempts: Option<u32>,
    /// Whether a security or configuration error before the first
    /// successful handshake is retried too. Default: no, it fails fast.
    pub retry_before_established: bool,
    /// Whether requests sent while the client reconnects wait for the new
    /// connection (up to their own deadline: the default) or fail at once.
    pub hold_requests: bool,
    /// Seed of the jitter.
    pub seed: u64,
}

impl ReconnectPolicy {
    /// The seed of the default policy. Adapters replace it with one drawn
    /// from the clock, so that clients restarted together do not reconnect
    /// in step.
    pub const DEFAULT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

    /// Replaces the default seed with `entropy` (from the adapter's clock);
    /// a seed the application chose stays.
    pub const fn seed_unless_chosen(&mut self, entropy: u64) {
        if self.seed == Self::DEFAULT_SEED {
            self.seed = entropy;
        }
    }
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(5),
            max_attempts: None,
            retry_before_established: false,
            hold_requests: true,
            seed: Self::DEFAULT_SEED,
        }
    }
}

/// The class of a close reason; `None` for closes that are not failures
/// (shutdown, a pooled connection the pool closed).
#[must_use]
pub const fn classify(reason: &CloseReason) -> Option<ErrorClass> {
    Some(match reason {
        CloseReason::Shutdown
        | CloseReason::Surplus
        | CloseReason::Unclean
        | CloseReason::IdleTimeout
        | CloseReason::Lifetime => return None,
        CloseReason::ConnectFailed(_)
        | CloseReason::Io(_)
        | CloseReason::Eof
        | CloseReason::HandshakeDeadline
        | CloseReason::Stalled => ErrorClass::Network,
        CloseReason::Handshake(e) => match e.kind {
            HandshakeErrorKind::Loading
            | HandshakeErrorKind::Busy
            | HandshakeErrorKind::MasterDown
            | HandshakeErrorKind::TryAgain
            | HandshakeErrorKind::ClusterDown => ErrorClass::NotReady,
            _ => ErrorClass::SecurityOrConfig,
        },
        CloseReason::Tls(e) => match e.kind {
            TlsErrorKind::Protocol => ErrorClass::Protocol,
            _ => ErrorClass::SecurityOrConfig,
        },
        CloseReason::Protocol(_) | CloseReason::UnexpectedReply => ErrorClass::Protocol,
    })
}

/// The decision for a connection that ended with `class`, in `phase`, after
/// `attempt` failed attempts in a row (0 for the first failure).
pub fn decide(
    policy: &ReconnectPolicy,
    class: ErrorClass,
    phase: Phase,
    attempt: u32,
    jitter: &mut Jitter,
) -> Decision {
    if phase == Phase::ShutDown || policy.max_attempts.is_some_and(|max| attempt >= max) {
        return Decision::GiveUp;
    }
    // Mutation check (scripts/mutants.sh): the bug of invariant I5.
    #[cfg(redpoll_mutant = "give_up_after_denied")]
    if class == ErrorClass::SecurityOrConfig {
        return Decision::GiveUp;
    }
    if phase == Phase::NeverConnected
        && class == ErrorClass::SecurityOrConfig
        && !policy.retry_before_established
    {
        return Decision::FailFast;
    }
    Decision::Reconnect {
        after: backoff(policy, attempt, jitter),
    }
}

/// The backoff of attempt `attempt`: uniform in `[0, min(cap, base * 2^attempt)]`.
#[must_use]
pub fn backoff(policy: &ReconnectPolicy, attempt: u32, jitter: &mut Jitter) -> Duration {
    let ceiling = policy
        .base
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(policy.cap)
        .min(policy.cap);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(jitter.below_or_equal(nanos))
}

/// A small seeded generator (xorshift64*) for the jitter: deterministic for
/// a seed, so that tests and simulations replay exactly.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator from `seed` (0 is replaced by a fixed non-zero value).
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x2545_f491_4f6c_dd1d
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `[0, max]`.
    pub fn below_or_equal(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(range) => self.next() % range,
            None => self.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{HandshakeError, HandshakeStep, TlsError};
    use crate::io::IoError;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn handshake(kind: HandshakeErrorKind) -> CloseReason {
        CloseReason::Handshake(HandshakeError {
            step: HandshakeStep::Hello,
            kind,
            message: String::from("refused"),
        })
    }

    #[test]
    fn every_close_reason_has_its_class() {
        use ErrorClass::*;
        let cases = [
            (CloseReason::ConnectFailed(IoError::Refused), Some(Network)),
            (CloseReason::Io(IoError::Reset), Some(Network)),
            (CloseReason::Eof, Some(Network)),
            (CloseReason::HandshakeDeadline, Some(Network)),
            (CloseReason::Stalled, Some(Network)),
            (handshake(HandshakeErrorKind::Loading), Some(NotReady)),
            (handshake(HandshakeErrorKind::Busy), Some(NotReady)),
            (handshake(HandshakeErrorKind::MasterDown), Some(NotReady)),
            (handshake(HandshakeErrorKind::TryAgain), Some(NotReady)),
            (handshake(HandshakeErrorKind::ClusterDown), Some(NotReady)),
            (
                handshake(HandshakeErrorKind::ProtectedMode),
                Some(SecurityOrConfig),
            ),
            (
                handshake(HandshakeErrorKind::WrongPassword),
                Some(SecurityOrConfig),
            ),
            (
                handshake(HandshakeErrorKind::AuthRequired),
                Some(SecurityOrConfig),
            ),
            (
                handshake(HandshakeErrorKind::NoPermission),
                Some(SecurityOrConfig),
            ),
            (handshake(HandshakeErrorKind::Other), Some(SecurityOrConfig)),
            (
                CloseReason::Tls(TlsError {
                    kind: TlsErrorKind::Certificate,
                    message: String::new(),
                }),
                Some(SecurityOrConfig),
            ),
            (
                CloseReason::Tls(TlsError {
                    kind: TlsErrorKind::Protocol,
                    message: String::new(),
                }),
                Some(Protocol),
            ),
            (CloseReason::UnexpectedReply, Some(Protocol)),
            (CloseReason::Shutdown, None),
            (CloseReason::Surplus, None),
            (CloseReason::Unclean, None),
            (CloseReason::IdleTimeout, None),
            (CloseReason::Lifetime, None),
        ];
        for (reason, class) in cases {
            assert_eq!(classify(&reason), class, "{reason:?}");
        }
    }

    #[test]
    fn every_cell_of_the_decision_table() {
        use ErrorClass::*;
        let policy = ReconnectPolicy::default();
        let mut jitter = Jitter::new(7);
        for class in [Network, NotReady, SecurityOrConfig, Protocol] {
            let before = decide(&policy, class, Phase::NeverConnected, 0, &mut jitter);
            if class == SecurityOrConfig {
                assert_eq!(before, Decision::FailFast);
            } else {
                assert!(matches!(before, Decision::Reconnect { .. }), "{class:?}");
            }
            let after = decide(&policy, class, Phase::Established, 0, &mut jitter);
            assert!(
                matches!(after, Decision::Reconnect { .. }),
                "{class:?} after established"
            );
            // An hour of attempts later, still reconnecting.
            let late = decide(&policy, class, Phase::Established, 10_000, &mut jitter);
            assert!(
                matches!(late, Decision::Reconnect { after } if after <= policy.cap),
                "{class:?}"
            );
            assert_eq!(
                decide(&policy, class, Phase::ShutDown, 0, &mut jitter),
                Decision::GiveUp
            );
        }
        let retrying = ReconnectPolicy {
            retry_before_established: true,
            ..policy
        };
        assert!(matches!(
            decide(
                &retrying,
                SecurityOrConfig,
                Phase::NeverConnected,
                0,
                &mut jitter
            ),
            Decision::Reconnect { .. }
        ));
        let bounded = ReconnectPolicy {
            max_attempts: Some(3),
            ..policy
        };
        assert!(matches!(
            decide(&bounded, Network, Phase::Established, 2, &mut jitter),
            Decision::Reconnect { .. }
        ));
        assert_eq!(
            decide(&bounded, Network, Phase::Established, 3, &mut jitter),
            Decision::GiveUp
        );
    }

    #[test]
    fn backoff_is_capped_jittered_and_reproducible() {
        let policy = ReconnectPolicy::default();
        let draw = |seed| {
            let mut jitter = Jitter::new(seed);
            (0..40)
                .map(|n| backoff(&policy, n, &mut jitter))
                .collect::<Vec<_>>()
        };
        let a = draw(42);
        assert_eq!(a, draw(42), "the same seed gives the same schedule");
        assert_ne!(a, draw(43), "another seed gives another schedule");
        for (n, d) in a.iter().enumerate() {
            let ceiling = policy.base.saturating_mul(1 << n.min(31)).min(policy.cap);
            assert!(*d <= ceiling, "attempt {n}: {d:?} > {ceiling:?}");
        }
        // Full jitter spreads: late attempts are not all at the cap.
        let late: Vec<_> = a[20..].to_vec();
        assert!(late.iter().any(|d| *d < policy.cap / 2));
        assert!(late.iter().any(|d| *d > policy.cap / 2));
    }
}
