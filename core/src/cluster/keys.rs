//! Which arguments of a command are keys, and so which slot it goes to.
//!
//! # What this module decides
//!
//! From a command's arguments alone (the name first), where its keys are
//! ([`keys`]) and the one slot they share ([`route_slot`], [`command_slot`]).
//! Commands are looked up, in any case, in a table of known commands that
//! reads like `COMMAND INFO`: a first key, a last key (negative: counted
//! from the end), a step; or a key count argument (`EVAL`, `ZUNIONSTORE`);
//! or the keyword `STREAMS` (`XREAD`); or a subcommand (`OBJECT ENCODING`,
//! `MEMORY USAGE`, `XINFO STREAM`, `XGROUP CREATE`).
//!
//! # Invariants
//!
//! - **Never a guess.** A command not in the table is [`Keys::Unknown`], and
//!   so is a known command whose key count cannot be read: the caller sends
//!   it to any node, which answers or redirects. Only the table says a
//!   command has no keys ([`Keys::None`]).
//! - **No allocation, no copy.** Key positions are two strides computed in
//!   one pass over the arguments; the arguments of an encoded command
//!   ([`args`]) are slices of the encoded bytes.
//! - **Cross-slot is a clear client-side error** ([`CrossSlot`]), raised
//!   before anything is sent. Splitting `MGET`, `DEL`, ... per slot is the
//!   client's business; [`KeyPositions`] tells it where the keys are.
//!
//! `SORT ... STORE dest` and `GEORADIUS ... STORE dest` are routed by their
//! first key only; the server refuses them with `CROSSSLOT` when the
//! destination is elsewhere.

use core::fmt;
use core::iter::StepBy;
use core::ops::Range;

use super::slot::slot;

/// Where a command's keys are.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// The command has no keys (`PING`, `INFO`, `CLUSTER ...`, `SCAN`): any
    /// node serves it, or the client sends it to all.
    None,
    /// The command is not in the table, or its arguments do not say where
    /// its keys are: send it to any node.
    Unknown,
    /// The keys are at these argument indices (the name is index 0).
    At(KeyPositions),
}

/// The indices of a command's keys among its arguments: at most two
/// strides, in increasing order (`ZUNIONSTORE dest 2 a b`: 1, then 3 and 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPositions {
    first: Stride,
    second: Stride,
}

/// `start, start + step, ...` below `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stride {
    start: usize,
    end: usize,
    step: usize,
}

impl Stride {
    const EMPTY: Self = Self {
        start: 0,
        end: 0,
        step: 1,
    };

    fn contains(&self, index: usize) -> bool {
        (self.start..self.end).contains(&index) && (index - self.start).is_multiple_of(self.step)
    }

    fn iter(self) -> StepBy<Range<usize>> {
        (self.start..self.end).step_by(self.step)
    }
}

impl KeyPositions {
    const fn one(first: Stride) -> Self {
        Self {
            first,
            second: Stride::EMPTY,
        }
    }

    /// Whether argument `index` is a key.
    #[must_use]
    pub fn contains(&self, index: usize) -> bool {
        self.first.contains(index) || self.second.contains(index)
    }

    /// The key indices, in increasing order.
    pub fn indices(&self) -> impl Iterator<Item = usize> + use<> {
        self.first.iter().chain(self.second.iter())
    }

    /// The keys among `args` (the same arguments the positions were
    /// computed from).
    pub fn select<'a, I>(self, args: I) -> impl Iterator<Item = &'a [u8]>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        args.into_iter()
            .enumerate()
            .filter(move |(index, _)| self.contains(*index))
            .map(|(_, arg)| arg)
    }
}

/// The keys of one command are in different slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CrossSlot {
    /// The slot of the first key.
    pub first: u16,
    /// The slot of the first key not in `first`.
    pub other: u16,
}

impl fmt::Display for CrossSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the command's keys are in different hash slots ({} and {}); \
             give them a common hash tag, like {{user1}}.a and {{user1}}.b",
            self.first, self.other
        )
    }
}

/// Where the keys of a command are, from its arguments (the command name
/// first, any case).
pub fn keys<'a, I>(args: I) -> Keys
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: Clone,
{
    let args = args.into_iter();
    let Some(spec) = args.clone().next().and_then(command_spec) else {
        return Keys::Unknown;
    };
    positions(spec, args)
}

/// The one slot of `keys`: `None` without keys.
///
/// # Errors
///
/// [`CrossSlot`] when two keys are in different slots.
pub fn route_slot<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<u16>, CrossSlot> {
    let mut keys = keys.into_iter();
    let Some(first) = keys.next().map(slot) else {
        return Ok(None);
    };
    match keys.map(slot).find(|&other| other != first) {
        Some(other) => Err(CrossSlot { first, other }),
        None => Ok(Some(first)),
    }
}

/// The slot a command goes to: `None` for a command without keys or not in
/// the table (any node).
///
/// # Errors
///
/// [`CrossSlot`] when two keys are in different slots.
pub fn command_slot<'a, I>(args: I) -> Result<Option<u16>, CrossSlot>
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: Clone,
{
    let args = args.into_iter();
    match keys(args.clone()) {
        Keys::None | Keys::Unknown => Ok(None),
        Keys::At(positions) => route_slot(positions.select(args)),
    }
}

/// The arguments of one encoded command, `*N\r\n` then `N` bulk strings
/// (`$L\r\n...\r\n`), as the command encoder writes it. `None` when
/// `encoded` is not exactly that.
#[must_use]
pub fn args(encoded: &[u8]) -> Option<Args<'_>> {
    let (count, rest) = header(encoded, b'*')?;
    let args = Args {
        rest,
        remaining: count,
    };
    // Check the whole command once, so that iterating cannot fail halfway.
    let mut check = args.clone();
    for _ in 0..count {
        check.next()?;
    }
    check.rest.is_empty().then_some(args)
}

/// The arguments of an encoded command: slices of the encoded bytes.
#[derive(Debug, Clone)]
pub struct Args<'a> {
    rest: &'a [u8],
    remaining: usize,
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.remaining = self.remaining.checked_sub(1)?;
        let (len, rest) = header(self.rest, b'$')?;
        let arg = rest.get(..len)?;
        self.rest = rest.get(len..)?.strip_prefix(b"\r\n")?;
        Some(arg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Args<'_> {}

/// `<kind><decimal>\r\n`: the number and what follows.
fn header(buf: &[u8], kind: u8) -> Option<(usize, &[u8])> {
    let buf = buf.strip_prefix(&[kind])?;
    let end = buf.iter().position(|&b| b == b'\r')?;
    let rest = buf[end..].strip_prefix(b"\r\n")?;
    Some((decimal(&buf[..end])?, rest))
}

/// A non-negative decimal without sign or spaces.
fn decimal(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(usize::from(d - b'0')))?
    })
}

/// How a command's keys are found, as in `COMMAND INFO`.
#[derive(Debug, Clone, Copy)]
enum Spec {
    /// No keys.
    Keyless,
    /// Keys at `first`, `first + step`, ... up to `last` included; a
    /// negative `last` counts from the end (-1: the last argument).
    Range { first: u8, last: i8, step: u8 },
    /// The number of keys at index `at`, the keys right after it; with
    /// `dest`, argument 1 is a key too (`ZUNIONSTORE dest numkeys ...`).
    NumKeys { at: u8, dest: bool },
    /// The first half of the arguments after `STREAMS`.
    Streams,
    /// By subcommand (argument 1), any case; others are unknown.
    Sub(&'static [(&'static [u8], Self)]),
}

const ONE: Spec = Spec::Range {
    first: 1,
    last: 1,
    step: 1,
};
const TWO: Spec = Spec::Range {
    first: 1,
    last: 2,
    step: 1,
};
const ALL: Spec = Spec::Range {
    first: 1,
    last: -1,
    step: 1,
};
const ALL_BUT_LAST: Spec = Spec::Range {
    first: 1,
    last: -2,
    step: 1,
};
const PAIRS: Spec = Spec::Range {
    first: 1,
    last: -1,
    step: 2,
};
/// The key after a subcommand (`OBJECT ENCODING key`).
const SUB_ONE: Spec = Spec::Range {
    first: 2,
    last: 2,
    step: 1,
};
const NUMKEYS_1: Spec = Spec::NumKeys { at: 1, dest: false };
const NUMKEYS_2: Spec = Spec::NumKeys { at: 2, dest: false };
const DEST_NUMKEYS: Spec = Spec::NumKeys { at: 2, dest: true };

/// The known commands, sorted by name (a test checks the order).
const COMMANDS: &[(&[u8], Spec)] = &[
    (b"ACL", Spec::Keyless),
    (b"APPEND", ONE),
    (b"ASKING", Spec::Keyless),
    (b"AUTH", Spec::Keyless),
    (b"BGREWRITEAOF", Spec::Keyless),
    (b"BGSAVE", Spec::Keyless),
    (b"BITCOUNT", ONE),
    (b"BITFIELD", ONE),
    (b"BITFIELD_RO", ONE),
    (
        b"BITOP",
        Spec::Range {
            first: 2,
            last: -1,
            step: 1,
        },
    ),
    (b"BITPOS", ONE),
    (b"BLMOVE", TWO),
    (b"BLMPOP", NUMKEYS_2),
    (b"BLPOP", ALL_BUT_LAST),
    (b"BRPOP", ALL_BUT_LAST),
    (b"BRPOPLPUSH", TWO),
    (b"BZMPOP", NUMKEYS_2),
    (b"BZPOPMAX", ALL_BUT_LAST),
    (b"BZPOPMIN", ALL_BUT_LAST),
    (b"CLIENT", Spec::Keyless),
    (b"CLUSTER", Spec::Keyless),
    (b"COMMAND", Spec::Keyless),
    (b"CONFIG", Spec::Keyless),
    (b"COPY", TWO),
    (b"DBSIZE", Spec::Keyless),
    (b"DECR", ONE),
    (b"DECRBY", ONE),
    (b"DEL", ALL),
    (b"DISCARD", Spec::Keyless),
    (b"DUMP", ONE),
    (b"ECHO", Spec::Keyless),
    (b"EVAL", NUMKEYS_2),
    (b"EVALSHA", NUMKEYS_2),
    (b"EVALSHA_RO", NUMKEYS_2),
    (b"EVAL_RO", NUMKEYS_2),
    (b"EXEC", Spec::Keyless),
    (b"EXISTS", ALL),
    (b"EXPIRE", ONE),
    (b"EXPIREAT", ONE),
    (b"EXPIRETIME", ONE),
    (b"FAILOVER", Spec::Keyless),
    (b"FCALL", NUMKEYS_2),
    (b"FCALL_RO", NUMKEYS_2),
    (b"FLUSHALL", Spec::Keyless),
    (b"FLUSHDB", Spec::Keyless),
    (b"FUNCTION", Spec::Keyless),
    (b"GEOADD", ONE),
    (b"GEODIST", ONE),
    (b"GEOHASH", ONE),
    (b"GEOPOS", ONE),
    (b"GEORADIUS", ONE),
    (b"GEORADIUSBYMEMBER", ONE),
    (b"GEORADIUSBYMEMBER_RO", ONE),
    (b"GEORADIUS_RO", ONE),
    (b"GEOSEARCH", ONE),
    (b"GEOSEARCHSTORE", TWO),
    (b"GET", ONE),
    (b"GETBIT", ONE),
    (b"GETDEL", ONE),
    (b"GETEX", ONE),
    (b"GETRANGE", ONE),
    (b"GETSET", ONE),
    (b"HDEL", ONE),
    (b"HELLO", Spec::Keyless),
    (b"HEXISTS", ONE),
    (b"HGET", ONE),
    (b"HGETALL", ONE),
    (b"HINCRBY", ONE),
    (b"HINCRBYFLOAT", ONE),
    (b"HKEYS", ONE),
    (b"HLEN", ONE),
    (b"HMGET", ONE),
    (b"HMSET", ONE),
    (b"HRANDFIELD", ONE),
    (b"HSCAN", ONE),
    (b"HSET", ONE),
    (b"HSETNX", ONE),
    (b"HSTRLEN", ONE),
    (b"HVALS", ONE),
    (b"INCR", ONE),
    (b"INCRBY", ONE),
    (b"INCRBYFLOAT", ONE),
    (b"INFO", Spec::Keyless),
    (b"KEYS", Spec::Keyless),
    (b"LASTSAVE", Spec::Keyless),
    (b"LATENCY", Spec::Keyless),
    (b"LCS", TWO),
    (b"LINDEX", ONE),
    (b"LINSERT", ONE),
    (b"LLEN", ONE),
    (b"LMOVE", TWO),
    (b"LMPOP", NUMKEYS_1),
    (b"LOLWUT", Spec::Keyless),
    (b"LPOP", ONE),
    (b"LPOS", ONE),
    (b"LPUSH", ONE),
    (b"LPUSHX", ONE),
    (b"LRANGE", ONE),
    (b"LREM", ONE),
    (b"LSET", ONE),
    (b"LTRIM", ONE),
    (
        b"MEMORY",
        Spec::Sub(&[
            (b"DOCTOR", Spec::Keyless),
            (b"HELP", Spec::Keyless),
            (b"MALLOC-STATS", Spec::Keyless),
            (b"PURGE", Spec::Keyless),
            (b"STATS", Spec::Keyless),
            (b"USAGE", SUB_ONE),
        ]),
    ),
    (b"MGET", ALL),
    (b"MODULE", Spec::Keyless),
    (b"MONITOR", Spec::Keyless),
    (b"MOVE", ONE),
    (b"MSET", PAIRS),
    (b"MSETNX", PAIRS),
    (b"MULTI", Spec::Keyless),
    (
        b"OBJECT",
        Spec::Sub(&[
            (b"ENCODING", SUB_ONE),
            (b"FREQ", SUB_ONE),
            (b"HELP", Spec::Keyless),
            (b"IDLETIME", SUB_ONE),
            (b"REFCOUNT", SUB_ONE),
        ]),
    ),
    (b"PERSIST", ONE),
    (b"PEXPIRE", ONE),
    (b"PEXPIREAT", ONE),
    (b"PEXPIRETIME", ONE),
    (b"PFADD", ONE),
    (b"PFCOUNT", ALL),
    (b"PFMERGE", ALL),
    (b"PING", Spec::Keyless),
    (b"PSETEX", ONE),
    (b"PSUBSCRIBE", Spec::Keyless),
    (b"PTTL", ONE),
    (b"PUBLISH", Spec::Keyless),
    (b"PUBSUB", Spec::Keyless),
    (b"PUNSUBSCRIBE", Spec::Keyless),
    (b"QUIT", Spec::Keyless),
    (b"RANDOMKEY", Spec::Keyless),
    (b"READONLY", Spec::Keyless),
    (b"READWRITE", Spec::Keyless),
    (b"RENAME", TWO),
    (b"RENAMENX", TWO),
    (b"REPLICAOF", Spec::Keyless),
    (b"RESET", Spec::Keyless),
    (b"RESTORE", ONE),
    (b"ROLE", Spec::Keyless),
    (b"RPOP", ONE),
    (b"RPOPLPUSH", TWO),
    (b"RPUSH", ONE),
    (b"RPUSHX", ONE),
    (b"SADD", ONE),
    (b"SAVE", Spec::Keyless),
    (b"SCAN", Spec::Keyless),
    (b"SCARD", ONE),
    (b"SCRIPT", Spec::Keyless),
    (b"SDIFF", ALL),
    (b"SDIFFSTORE", ALL),
    (b"SELECT", Spec::Keyless),
    (b"SET", ONE),
    (b"SETBIT", ONE),
    (b"SETEX", ONE),
    (b"SETNX", ONE),
    (b"SETRANGE", ONE),
    (b"SHUTDOWN", Spec::Keyless),
    (b"SINTER", ALL),
    (b"SINTERCARD", NUMKEYS_1),
    (b"SINTERSTORE", ALL),
    (b"SISMEMBER", ONE),
    (b"SLAVEOF", Spec::Keyless),
    (b"SLOWLOG", Spec::Keyless),
    (b"SMEMBERS", ONE),
    (b"SMISMEMBER", ONE),
    (b"SMOVE", TWO),
    (b"SORT", ONE),
    (b"SORT_RO", ONE),
    (b"SPOP", ONE),
    // Shard channels hash to slots like keys.
    (b"SPUBLISH", ONE),
    (b"SRANDMEMBER", ONE),
    (b"SREM", ONE),
    (b"SSCAN", ONE),
    (b"SSUBSCRIBE", ALL),
    (b"STRLEN", ONE),
    (b"SUBSCRIBE", Spec::Keyless),
    (b"SUBSTR", ONE),
    (b"SUNION", ALL),
    (b"SUNIONSTORE", ALL),
    (b"SUNSUBSCRIBE", ALL),
    (b"SWAPDB", Spec::Keyless),
    (b"TIME", Spec::Keyless),
    (b"TOUCH", ALL),
    (b"TTL", ONE),
    (b"TYPE", ONE),
    (b"UNLINK", ALL),
    (b"UNSUBSCRIBE", Spec::Keyless),
    (b"UNWATCH", Spec::Keyless),
    (b"WAIT", Spec::Keyless),
    (b"WAITAOF", Spec::Keyless),
    (b"WATCH", ALL),
    (b"XACK", ONE),
    (b"XADD", ONE),
    (b"XAUTOCLAIM", ONE),
    (b"XCLAIM", ONE),
    (b"XDEL", ONE),
    (
        b"XGROUP",
        Spec::Sub(&[
            (b"CREATE", SUB_ONE),
            (b"CREATECONSUMER", SUB_ONE),
            (b"DELCONSUMER", SUB_ONE),
            (b"DESTROY", SUB_ONE),
            (b"HELP", Spec::Keyless),
            (b"SETID", SUB_ONE),
        ]),
    ),
    (
        b"XINFO",
        Spec::Sub(&[
            (b"CONSUMERS", SUB_ONE),
            (b"GROUPS", SUB_ONE),
            (b"HELP", Spec::Keyless),
            (b"STREAM", SUB_ONE),
        ]),
    ),
    (b"XLEN", ONE),
    (b"XPENDING", ONE),
    (b"XRANGE", ONE),
    (b"XREAD", Spec::Streams),
    (b"XREADGROUP", Spec::Streams),
    (b"XREVRANGE", ONE),
    (b"XSETID", ONE),
    (b"XTRIM", ONE),
    (b"ZADD", ONE),
    (b"ZCARD", ONE),
    (b"ZCOUNT", ONE),
    (b"ZDIFF", NUMKEYS_1),
    (b"ZDIFFSTORE", DEST_NUMKEYS),
    (b"ZINCRBY", ONE),
    (b"ZINTER", NUMKEYS_1),
    (b"ZINTERCARD", NUMKEYS_1),
    (b"ZINTERSTORE", DEST_NUMKEYS),
    (b"ZLEXCOUNT", ONE),
    (b"ZMPOP", NUMKEYS_1),
    (b"ZMSCORE", ONE),
    (b"ZPOPMAX", ONE),
    (b"ZPOPMIN", ONE),
    (b"ZRANDMEMBER", ONE),
    (b"ZRANGE", ONE),
    (b"ZRANGEBYLEX", ONE),
    (b"ZRANGEBYSCORE", ONE),
    (b"ZRANGESTORE", TWO),
    (b"ZRANK", ONE),
    (b"ZREM", ONE),
    (b"ZREMRANGEBYLEX", ONE),
    (b"ZREMRANGEBYRANK", ONE),
    (b"ZREMRANGEBYSCORE", ONE),
    (b"ZREVRANGE", ONE),
    (b"ZREVRANGEBYLEX", ONE),
    (b"ZREVRANGEBYSCORE", ONE),
    (b"ZREVRANK", ONE),
    (b"ZSCAN", ONE),
    (b"ZSCORE", ONE),
    (b"ZUNION", NUMKEYS_1),
    (b"ZUNIONSTORE", DEST_NUMKEYS),
];

/// The longest command name in the table.
const MAX_NAME_LEN: usize = 24;

fn command_spec(name: &[u8]) -> Option<Spec> {
    let mut upper = [0u8; MAX_NAME_LEN];
    let upper = upper.get_mut(..name.len())?;
    for (dst, src) in upper.iter_mut().zip(name) {
        *dst = src.to_ascii_uppercase();
    }
    let at = COMMANDS
        .binary_search_by(|(known, _)| (*known).cmp(upper))
        .ok()?;
    Some(COMMANDS[at].1)
}

fn positions<'a>(spec: Spec, args: impl Iterator<Item = &'a [u8]> + Clone) -> Keys {
    let count = args.clone().count();
    match spec {
        Spec::Keyless => Keys::None,
        Spec::Range { first, last, step } => {
            let first = usize::from(first);
            // `last` counts from the end when negative; a short command
            // gets the keys it has (the server refuses it anyway).
            let end = match usize::try_from(last) {
                Ok(last) => (last + 1).min(count),
                Err(_) => (count + 1).saturating_sub(usize::from(last.unsigned_abs())),
            };
            Keys::At(KeyPositions::one(Stride {
                start: first,
                end: end.max(first),
                step: usize::from(step),
            }))
        }
        Spec::NumKeys { at, dest } => {
            let at = usize::from(at);
            let Some(numkeys) = args.clone().nth(at).and_then(decimal) else {
                return Keys::Unknown;
            };
            let end = match (at + 1).checked_add(numkeys) {
                Some(end) if end <= count => end,
                _ => return Keys::Unknown,
            };
            let numbered = Stride {
                start: at + 1,
                end,
                step: 1,
            };
            Keys::At(if dest {
                KeyPositions {
                    first: Stride {
                        start: 1,
                        end: 2,
                        step: 1,
                    },
                    second: numbered,
                }
            } else {
                KeyPositions::one(numbered)
            })
        }
        Spec::Streams => streams(args, count),
        Spec::Sub(subcommands) => {
            let Some(sub) = args.clone().nth(1) else {
                return Keys::Unknown;
            };
            match subcommands
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(sub))
            {
                Some(&(_, spec)) => positions(spec, args),
                None => Keys::Unknown,
            }
        }
    }
}

/// `XREAD [COUNT n] [BLOCK ms] STREAMS k1 k2 id1 id2` and `XREADGROUP GROUP
/// g c [COUNT n] [BLOCK ms] [NOACK] STREAMS ...`: the options are skipped by
/// their arity, so a group or consumer named `streams` is not the keyword.
fn streams<'a>(args: impl Iterator<Item = &'a [u8]>, count: usize) -> Keys {
    let mut args = args.enumerate().skip(1);
    let keyword = loop {
        let Some((index, arg)) = args.next() else {
            return Keys::Unknown;
        };
        let skip = match arg {
            a if a.eq_ignore_ascii_case(b"STREAMS") => break index,
            a if a.eq_ignore_ascii_case(b"COUNT") || a.eq_ignore_ascii_case(b"BLOCK") => 1,
            a if a.eq_ignore_ascii_case(b"GROUP") => 2,
            a if a.eq_ignore_ascii_case(b"NOACK") => 0,
            _ => return Keys::Unknown,
        };
        for _ in 0..skip {
            args.next();
        }
    };
    let rest = count - keyword - 1;
    if rest == 0 || !rest.is_multiple_of(2) {
        return Keys::Unknown;
    }
    Keys::At(KeyPositions::one(Stride {
        start: keyword + 1,
        end: keyword + 1 + rest / 2,
        step: 1,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;
    use bytes::BytesMut;

    /// The key arguments of a command written as words.
    fn keys_of(command: &str) -> Option<Vec<&str>> {
        let args: Vec<&[u8]> = command.split(' ').map(str::as_bytes).collect();
        match keys(args.iter().copied()) {
            Keys::None => Some(Vec::new()),
            Keys::Unknown => None,
            Keys::At(positions) => Some(
                positions
                    .select(args.iter().copied())
                    .map(|key| core::str::from_utf8(key).unwrap())
                    .collect(),
            ),
        }
    }

    #[test]
    fn the_table_is_sorted_and_fits_the_name_buffer() {
        assert!(COMMANDS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(COMMANDS.iter().all(|(name, _)| name.len() <= MAX_NAME_LEN));
        for (_, spec) in COMMANDS {
            if let Spec::Sub(subs) = spec {
                assert!(subs.windows(2).all(|w| w[0].0 < w[1].0));
            }
        }
    }

    #[test]
    fn single_key_commands_in_any_case() {
        assert_eq!(keys_of("GET k"), Some(vec!["k"]));
        assert_eq!(keys_of("get k"), Some(vec!["k"]));
        assert_eq!(keys_of("SeT k v EX 10"), Some(vec!["k"]));
        assert_eq!(keys_of("HSET h f v f2 v2"), Some(vec!["h"]));
        assert_eq!(keys_of("ZADD z 1 m"), Some(vec!["z"]));
        assert_eq!(keys_of("EXPIRE k 10"), Some(vec!["k"]));
        assert_eq!(keys_of("LPUSH l a b c"), Some(vec!["l"]));
        assert_eq!(keys_of("INCR n"), Some(vec!["n"]));
        // Too short: the keys it has; the server answers with an error.
        assert_eq!(keys_of("GET"), Some(vec![]));
    }

    #[test]
    fn multi_key_commands() {
        assert_eq!(keys_of("MGET a b c"), Some(vec!["a", "b", "c"]));
        assert_eq!(keys_of("DEL a b"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("EXISTS a"), Some(vec!["a"]));
        assert_eq!(keys_of("UNLINK a b"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("TOUCH a b"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("MSET a 1 b 2"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("MSETNX a 1 b 2 c 3"), Some(vec!["a", "b", "c"]));
        assert_eq!(keys_of("BLPOP a b 0"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("BRPOP a 1.5"), Some(vec!["a"]));
        assert_eq!(keys_of("BZPOPMIN a b 0"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("BLMOVE a b LEFT RIGHT 0"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("LMOVE a b LEFT RIGHT"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("RPOPLPUSH a b"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("SMOVE a b m"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("BITOP AND dest a b"), Some(vec!["dest", "a", "b"]));
    }

    #[test]
    fn numkeys_commands() {
        assert_eq!(keys_of("EVAL s 2 a b x y"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("EVALSHA s 1 a x"), Some(vec!["a"]));
        assert_eq!(keys_of("EVAL s 0 x"), Some(vec![]));
        assert_eq!(keys_of("FCALL f 1 a x"), Some(vec!["a"]));
        assert_eq!(
            keys_of("ZUNIONSTORE d 2 a b WEIGHTS 1 2"),
            Some(vec!["d", "a", "b"])
        );
        assert_eq!(keys_of("ZINTERSTORE d 1 a"), Some(vec!["d", "a"]));
        assert_eq!(keys_of("ZUNION 2 a b"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("SINTERCARD 2 a b LIMIT 5"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("LMPOP 2 a b LEFT"), Some(vec!["a", "b"]));
        assert_eq!(keys_of("BLMPOP 0 2 a b LEFT"), Some(vec!["a", "b"]));
        // A count that cannot be read, or more keys than arguments.
        assert_eq!(keys_of("EVAL s x a"), None);
        assert_eq!(keys_of("EVAL s -1 a"), None);
        assert_eq!(keys_of("EVAL s 3 a b"), None);
        assert_eq!(keys_of("EVAL s 99999999999999999999999 a"), None);
        assert_eq!(keys_of("EVAL s"), None);
    }

    #[test]
    fn stream_reads() {
        assert_eq!(keys_of("XREAD STREAMS a b 0 0"), Some(vec!["a", "b"]));
        assert_eq!(
            keys_of("XREAD COUNT 2 BLOCK 0 streams a 0"),
            Some(vec!["a"])
        );
        assert_eq!(
            keys_of("XREADGROUP GROUP streams STREAMS COUNT 1 NOACK STREAMS a b > >"),
            Some(vec!["a", "b"])
        );
        assert_eq!(keys_of("XREAD STREAMS a b 0"), None);
        assert_eq!(keys_of("XREAD STREAMS"), None);
        assert_eq!(keys_of("XREAD COUNT"), None);
        assert_eq!(keys_of("XREAD FOO STREAMS a 0"), None);
    }

    #[test]
    fn subcommands() {
        assert_eq!(keys_of("OBJECT ENCODING k"), Some(vec!["k"]));
        assert_eq!(keys_of("object freq k"), Some(vec!["k"]));
        assert_eq!(keys_of("OBJECT HELP"), Some(vec![]));
        assert_eq!(keys_of("MEMORY USAGE k SAMPLES 5"), Some(vec!["k"]));
        assert_eq!(keys_of("MEMORY STATS"), Some(vec![]));
        assert_eq!(keys_of("XINFO STREAM s FULL"), Some(vec!["s"]));
        assert_eq!(keys_of("XGROUP CREATE s g $"), Some(vec!["s"]));
        assert_eq!(keys_of("OBJECT NEWTHING k"), None);
        assert_eq!(keys_of("MEMORY"), None);
    }

    #[test]
    fn keyless_and_unknown_commands() {
        for command in [
            "PING",
            "INFO",
            "FLUSHALL",
            "SCRIPT LOAD s",
            "KEYS *",
            "SCAN 0",
            "DBSIZE",
            "CLUSTER SHARDS",
            "CLUSTER KEYSLOT k",
            "CONFIG GET x",
            "PUBLISH ch m",
        ] {
            assert_eq!(keys_of(command), Some(vec![]), "{command}");
        }
        for command in ["FOO k", "", "GETX k", "A-COMMAND-NAME-LONGER-THAN-ANY k"] {
            assert_eq!(keys_of(command), None, "{command}");
        }
        assert_eq!(keys(core::iter::empty::<&[u8]>()), Keys::Unknown);
    }

    #[test]
    fn positions_are_increasing_strides() {
        let args: [&[u8]; 7] = [b"ZUNIONSTORE", b"d", b"3", b"a", b"b", b"c", b"AGGREGATE"];
        let Keys::At(positions) = keys(args) else {
            panic!("ZUNIONSTORE has keys");
        };
        assert_eq!(positions.indices().collect::<Vec<_>>(), [1, 3, 4, 5]);
        assert!(positions.contains(3));
        assert!(!positions.contains(2));
        assert!(!positions.contains(6));
        let args: [&[u8]; 5] = [b"MSET", b"a", b"1", b"b", b"2"];
        let Keys::At(positions) = keys(args) else {
            panic!("MSET has keys");
        };
        assert_eq!(positions.indices().collect::<Vec<_>>(), [1, 3]);
        assert!(!positions.contains(2));
    }

    #[test]
    fn one_slot_or_a_cross_slot_error() {
        let tagged: [&[u8]; 3] = [b"{user1}.a", b"{user1}.b", b"user1"];
        assert_eq!(route_slot(tagged), Ok(Some(slot(b"user1"))));
        assert_eq!(route_slot(core::iter::empty()), Ok(None));
        let spread: [&[u8]; 3] = [b"foo", b"foo", b"bar"];
        let error = route_slot(spread).unwrap_err();
        assert_eq!(
            error,
            CrossSlot {
                first: 12182,
                other: 5061
            }
        );
        assert!(
            error
                .to_string()
                .starts_with("the command's keys are in different hash slots (12182 and 5061)")
        );

        let cmd = |words: &'static str| words.split(' ').map(str::as_bytes);
        assert_eq!(command_slot(cmd("GET foo")), Ok(Some(12182)));
        assert_eq!(
            command_slot(cmd("MSET {t}a 1 {t}b 2")),
            Ok(Some(slot(b"t")))
        );
        assert!(command_slot(cmd("MGET foo bar")).is_err());
        // Values are not keys: MSET's values may hash anywhere.
        assert_eq!(command_slot(cmd("MSET foo bar")), Ok(Some(12182)));
        assert_eq!(command_slot(cmd("PING")), Ok(None));
        assert_eq!(command_slot(cmd("NOSUCHCOMMAND foo bar")), Ok(None));
    }

    #[test]
    fn encoded_commands_are_read_in_place() {
        let mut buf = BytesMut::new();
        crate::resp::encode_command(&mut buf, &["MSET", "a", "1", "{a}b", ""]);
        let encoded = buf.freeze();
        let parsed = args(&encoded).unwrap();
        assert_eq!(parsed.len(), 5);
        let all: Vec<&[u8]> = parsed.clone().collect();
        assert_eq!(all, [&b"MSET"[..], b"a", b"1", b"{a}b", b""]);
        // Slices of the encoded bytes, not copies.
        assert!(encoded.as_ptr_range().contains(&all[1].as_ptr()));
        assert_eq!(command_slot(parsed), Ok(Some(slot(b"a"))));

        let binary = b"*2\r\n$3\r\nGET\r\n$4\r\n\r\n\x00\xff\r\n";
        let parsed: Vec<&[u8]> = args(binary).unwrap().collect();
        assert_eq!(parsed, [&b"GET"[..], b"\r\n\x00\xff"]);
        assert_eq!(args(b"*0\r\n").unwrap().count(), 0);
    }

    #[test]
    fn malformed_encodings_are_refused() {
        let bad: [&[u8]; 14] = [
            b"",
            b"*",
            b"*1\r\n",
            b"*1\r\n$3\r\nGET",
            b"*1\r\n$3\r\nGET\r",
            b"*1\r\n$3\r\nGE\r\n",
            b"*1\r\n$4\r\nGET\r\n",
            b"*1\r\n$3\r\nGET\r\n$3\r\nfoo\r\n",
            b"*2\r\n$3\r\nGET\r\n",
            b"*-1\r\n",
            b"*1\r\n$-1\r\n",
            b"+OK\r\n",
            b"*1\n$3\nGET\n",
            b"*99999999999999999999999\r\n",
        ];
        for encoded in bad {
            assert!(args(encoded).is_none(), "{}", encoded.escape_ascii());
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use alloc::vec::Vec;
    use bytes::BytesMut;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes: `args` answers without panicking, and what it reads
        /// can be routed.
        #[test]
        fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(args) = args(&bytes) {
                let _ = command_slot(args);
            }
        }

        /// Whatever the encoder writes, `args` reads back.
        #[test]
        fn encoded_commands_read_back(
            command in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 0..8),
        ) {
            let mut buf = BytesMut::new();
            crate::resp::encode_command(&mut buf, &command);
            let read: Vec<Vec<u8>> = args(&buf).expect("encoded").map(<[u8]>::to_vec).collect();
            prop_assert_eq!(read, command);
        }
    }
}
