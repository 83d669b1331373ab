//! The fault schedule: what goes wrong, when, and for how long.
//!
//! A schedule is a list of [`Fault`]s drawn from the seed. Every fault heals
//! by the end of the fault window, so the world is healthy afterwards and
//! the recovery invariant (I5) can be checked. A schedule prints as one
//! line (`stall@1200+300;reset-all@2500`) and parses back exactly: a shrunk
//! schedule is replayed with `SIM_FAULTS`.
//!
//! Faults come in two shapes: instant ones act once at their start
//! (resets, garbage), lasting ones set a [`Conditions`] flag from their
//! start to their heal (refused connects, loading, protected mode, ...).
//! New kinds (cluster: slot migration, failover, node kill) are new
//! variants of [`FaultKind`].

use std::fmt;
use std::str::FromStr;

use redpoll_core::Duration;

use super::rng::Rng;

/// One fault: its kind, and its start as an offset from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Offset of the start from the start of the run.
    pub at: Duration,
    /// What happens.
    pub kind: FaultKind,
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The server resets every connection.
    ResetAll,
    /// The server resets one connection (`pick` modulo the open ones).
    ResetOne {
        /// Which connection.
        pick: u32,
    },
    /// The adapter reports a read error on one socket (`pick` modulo the
    /// open ones); the server hears of it only when the client closes.
    IoError {
        /// Which socket.
        pick: u32,
    },
    /// The server writes bytes that are not RESP on one connection.
    Garbage {
        /// Which connection.
        pick: u32,
    },
    /// Every open connection freezes: nothing moves either way until the
    /// heal, then everything held back arrives.
    Stall {
        /// How long.
        dur: Duration,
    },
    /// The server is unreachable: open connections are reset, connects
    /// are refused.
    Refuse {
        /// How long.
        dur: Duration,
    },
    /// Packets vanish into a black hole: connections freeze, connects hang
    /// (both resume at the heal).
    Blackhole {
        /// How long.
        dur: Duration,
    },
    /// Connects take `delay` to complete (possibly beyond the handshake
    /// deadline).
    SlowConnect {
        /// How long.
        dur: Duration,
        /// The connect time.
        delay: Duration,
    },
    /// The server loads its dataset: data commands answer `-LOADING`, and
    /// with `handshake` the handshake commands too.
    Loading {
        /// How long.
        dur: Duration,
        /// Whether `HELLO`/`AUTH` are refused too.
        handshake: bool,
    },
    /// The server restarts into protected mode: open connections are
    /// reset, new ones get `-DENIED` and are closed.
    Denied {
        /// How long.
        dur: Duration,
    },
    /// The server's password changes (`WRONGPASS`, or `NOAUTH` for a client
    /// without one); with `kill`, open connections are reset too.
    WrongPassword {
        /// How long.
        dur: Duration,
        /// Whether open connections are reset.
        kill: bool,
    },
    /// The server restarts: open connections are reset, connects are
    /// refused while it is down; with `lose`, the key space is lost (no
    /// persistence).
    Restart {
        /// How long it is down.
        dur: Duration,
        /// Whether the data is lost.
        lose: bool,
    },
}

impl Fault {
    /// How long the fault lasts (zero for instant ones).
    #[must_use]
    pub const fn duration(&self) -> Duration {
        match self.kind {
            FaultKind::ResetAll
            | FaultKind::ResetOne { .. }
            | FaultKind::IoError { .. }
            | FaultKind::Garbage { .. } => Duration::ZERO,
            FaultKind::Stall { dur }
            | FaultKind::Refuse { dur }
            | FaultKind::Blackhole { dur }
            | FaultKind::SlowConnect { dur, .. }
            | FaultKind::Loading { dur, .. }
            | FaultKind::Denied { dur }
            | FaultKind::WrongPassword { dur, .. }
            | FaultKind::Restart { dur, .. } => dur,
        }
    }

    /// The offset at which the fault has healed.
    #[must_use]
    pub fn heal(&self) -> Duration {
        self.at + self.duration()
    }

    /// Whether the fault is in effect at offset `t`.
    #[must_use]
    pub fn active(&self, t: Duration) -> bool {
        self.at <= t && t < self.heal()
    }
}

/// The state of the world the lasting faults make, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Connects are refused.
    pub refuse: bool,
    /// Connects hang until this offset.
    pub blackhole_until: Option<Duration>,
    /// Connects take this long.
    pub connect_delay: Option<Duration>,
    /// The server is loading: `Some(true)` refuses the handshake too.
    pub loading: Option<bool>,
    /// New connections are denied (protected mode).
    pub denied: bool,
    /// The server's password is not the client's.
    pub wrong_password: bool,
}

impl Conditions {
    /// The conditions at offset `t`.
    #[must_use]
    pub fn at(faults: &[Fault], t: Duration) -> Self {
        let mut c = Self::default();
        for f in faults.iter().filter(|f| f.active(t)) {
            match f.kind {
                FaultKind::Refuse { .. } | FaultKind::Restart { .. } => c.refuse = true,
                FaultKind::Blackhole { .. } => {
                    c.blackhole_until =
                        Some(c.blackhole_until.map_or(f.heal(), |u| u.max(f.heal())));
                }
                FaultKind::SlowConnect { delay, .. } => {
                    c.connect_delay = Some(c.connect_delay.map_or(delay, |d| d.max(delay)));
                }
                FaultKind::Loading { handshake, .. } => {
                    c.loading = Some(c.loading.unwrap_or(false) || handshake);
                }
                FaultKind::Denied { .. } => c.denied = true,
                FaultKind::WrongPassword { .. } => c.wrong_password = true,
                FaultKind::ResetAll
                | FaultKind::ResetOne { .. }
                | FaultKind::IoError { .. }
                | FaultKind::Garbage { .. }
                | FaultKind::Stall { .. } => {}
            }
        }
        c
    }
}

/// The knobs of the schedule generator.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleParams {
    /// No fault starts before this offset.
    pub start: Duration,
    /// Every fault has healed by this offset.
    pub end: Duration,
    /// At most this many faults.
    pub max_faults: u64,
}

/// A schedule drawn from `rng`, sorted by start.
#[must_use]
pub fn generate(rng: &mut Rng, params: &ScheduleParams) -> Vec<Fault> {
    #[derive(Clone, Copy)]
    enum K {
        ResetAll,
        ResetOne,
        IoError,
        Garbage,
        Stall,
        Refuse,
        Blackhole,
        SlowConnect,
        Loading,
        Denied,
        WrongPassword,
        Restart,
    }
    let n = rng.weighted(&[
        (10, 0),
        (15, 1),
        (25, 2),
        (25, 3),
        (15, 4),
        (10, params.max_faults),
    ]);
    let n = n.min(params.max_faults);
    let start = params.start.as_millis() as u64;
    let end = params.end.as_millis() as u64;
    let mut faults = Vec::new();
    for _ in 0..n {
        let kind = rng.weighted(&[
            (10, K::ResetAll),
            (10, K::ResetOne),
            (5, K::IoError),
            (4, K::Garbage),
            (10, K::Stall),
            (8, K::Refuse),
            (6, K::Blackhole),
            (6, K::SlowConnect),
            (7, K::Loading),
            (8, K::Denied),
            (7, K::WrongPassword),
            (9, K::Restart),
        ]);
        let dur = match rng.below(4) {
            0 => rng.millis(5, 60),
            1 | 2 => rng.millis(50, 800),
            _ => rng.millis(500, 2500),
        };
        let dur_ms = (dur.as_millis() as u64)
            .min(end.saturating_sub(start + 1))
            .max(1);
        let dur = Duration::from_millis(dur_ms);
        let pick = rng.below(16) as u32;
        let kind = match kind {
            K::ResetAll => FaultKind::ResetAll,
            K::ResetOne => FaultKind::ResetOne { pick },
            K::IoError => FaultKind::IoError { pick },
            K::Garbage => FaultKind::Garbage { pick },
            K::Stall => FaultKind::Stall { dur },
            K::Refuse => FaultKind::Refuse { dur },
            K::Blackhole => FaultKind::Blackhole { dur },
            K::SlowConnect => FaultKind::SlowConnect {
                dur,
                delay: rng.millis(1, 3000),
            },
            K::Loading => FaultKind::Loading {
                dur,
                handshake: rng.chance(50),
            },
            K::Denied => FaultKind::Denied { dur },
            K::WrongPassword => FaultKind::WrongPassword {
                dur,
                kill: rng.chance(50),
            },
            K::Restart => FaultKind::Restart {
                dur: Duration::from_millis(rng.range(1, dur_ms.min(1500))),
                lose: rng.chance(30),
            },
        };
        let probe = Fault {
            at: Duration::ZERO,
            kind,
        };
        let len = probe.duration().as_millis() as u64;
        let at = rng.range(start, end.saturating_sub(len).max(start));
        faults.push(Fault {
            at: Duration::from_millis(at),
            kind,
        });
    }
    faults.sort_by_key(|f| f.at);
    faults
}

/// The offset at which the last fault has healed (zero for no faults).
#[must_use]
pub fn healed_at(faults: &[Fault]) -> Duration {
    faults
        .iter()
        .map(Fault::heal)
        .max()
        .unwrap_or(Duration::ZERO)
}

/// The one-line form of a schedule (`-` for no faults).
#[must_use]
pub fn format_schedule(faults: &[Fault]) -> String {
    if faults.is_empty() {
        return "-".to_owned();
    }
    faults
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(";")
}

/// Parses [`format_schedule`]'s output.
///
/// # Errors
///
/// When a fault does not parse.
pub fn parse_schedule(s: &str) -> Result<Vec<Fault>, String> {
    let s = s.trim();
    if s.is_empty() || s == "-" {
        return Ok(Vec::new());
    }
    let mut faults = s
        .split(';')
        .map(str::parse)
        .collect::<Result<Vec<Fault>, _>>()?;
    faults.sort_by_key(|f| f.at);
    Ok(faults)
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = ms(self.at);
        match self.kind {
            FaultKind::ResetAll => write!(f, "reset-all@{at}"),
            FaultKind::ResetOne { pick } => write!(f, "reset-one@{at}:{pick}"),
            FaultKind::IoError { pick } => write!(f, "io-error@{at}:{pick}"),
            FaultKind::Garbage { pick } => write!(f, "garbage@{at}:{pick}"),
            FaultKind::Stall { dur } => write!(f, "stall@{at}+{}", ms(dur)),
            FaultKind::Refuse { dur } => write!(f, "refuse@{at}+{}", ms(dur)),
            FaultKind::Blackhole { dur } => write!(f, "blackhole@{at}+{}", ms(dur)),
            FaultKind::SlowConnect { dur, delay } => {
                write!(f, "slow-connect@{at}+{}:{}", ms(dur), ms(delay))
            }
            FaultKind::Loading { dur, handshake } => {
                write!(f, "loading@{at}+{}", ms(dur))?;
                if handshake {
                    f.write_str(":handshake")?;
                }
                Ok(())
            }
            FaultKind::Denied { dur } => write!(f, "denied@{at}+{}", ms(dur)),
            FaultKind::WrongPassword { dur, kill } => {
                write!(f, "wrong-password@{at}+{}", ms(dur))?;
                if kill {
                    f.write_str(":kill")?;
                }
                Ok(())
            }
            FaultKind::Restart { dur, lose } => {
                write!(f, "restart@{at}+{}", ms(dur))?;
                if lose {
                    f.write_str(":lose")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad fault {s:?} (expected kind@start_ms[+dur_ms][:option])");
        let (name, rest) = s.trim().split_once('@').ok_or_else(bad)?;
        let (times, option) = match rest.split_once(':') {
            Some((t, o)) => (t, Some(o)),
            None => (rest, None),
        };
        let (at, dur) = match times.split_once('+') {
            Some((a, d)) => (a, Some(d)),
            None => (times, None),
        };
        let num = |t: &str| t.parse::<u64>().map_err(|_| bad());
        let at = Duration::from_millis(num(at)?);
        let dur = || dur.ok_or_else(bad).and_then(num).map(Duration::from_millis);
        let pick = || option.ok_or_else(bad).and_then(num).map(|p| p as u32);
        let flag = |word: &str| match option {
            None => Ok(false),
            Some(o) if o == word => Ok(true),
            Some(_) => Err(bad()),
        };
        let kind = match name {
            "reset-all" => FaultKind::ResetAll,
            "reset-one" => FaultKind::ResetOne { pick: pick()? },
            "io-error" => FaultKind::IoError { pick: pick()? },
            "garbage" => FaultKind::Garbage { pick: pick()? },
            "stall" => FaultKind::Stall { dur: dur()? },
            "refuse" => FaultKind::Refuse { dur: dur()? },
            "blackhole" => FaultKind::Blackhole { dur: dur()? },
            "slow-connect" => FaultKind::SlowConnect {
                dur: dur()?,
                delay: Duration::from_millis(option.ok_or_else(bad).and_then(num)?),
            },
            "loading" => FaultKind::Loading {
                dur: dur()?,
                handshake: flag("handshake")?,
            },
            "denied" => FaultKind::Denied { dur: dur()? },
            "wrong-password" => FaultKind::WrongPassword {
                dur: dur()?,
                kill: flag("kill")?,
            },
            "restart" => FaultKind::Restart {
                dur: dur()?,
                lose: flag("lose")?,
            },
            _ => return Err(bad()),
        };
        Ok(Self { at, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_print_and_parse_back() {
        let params = ScheduleParams {
            start: Duration::from_millis(100),
            end: Duration::from_secs(6),
            max_faults: 8,
        };
        for seed in 0..200 {
            let faults = generate(&mut Rng::new(seed), &params);
            let line = format_schedule(&faults);
            assert_eq!(parse_schedule(&line).unwrap(), faults, "{line}");
            assert!(healed_at(&faults) <= params.end, "{line}");
        }
        assert!(parse_schedule("stall@12").is_err());
        assert!(parse_schedule("nonsense").is_err());
    }
}
