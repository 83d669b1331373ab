//! Building commands: anything that can write itself as a RESP command.
//!
//! Commands are encoded straight into the connection's output buffer (or,
//! while no connection is ready, into one shared buffer the queued requests
//! are sliced from): no per-command allocation on the write path.

use alloc::vec::Vec;
use bytes::BytesMut;

use crate::resp::{ToArg, encode_command};
use crate::time::Duration;

/// A command that can encode itself as a RESP array of bulk strings.
///
/// Besides its bytes, a command tells the client how it will be answered:
/// blocking commands go to a connection of their own with a response
/// deadline extended by their block time, and subscription commands are
/// answered by push confirmations instead of a reply.
pub trait Command {
    /// Appends the encoded command to `dst`.
    fn encode(&self, dst: &mut BytesMut);

    /// How long the server may block before answering (`BLPOP ... 5`: five
    /// seconds); `Some(Duration::MAX)` for ever. `None` for commands that do
    /// not block.
    fn block_timeout(&self) -> Option<Duration> {
        None
    }

    /// How the server answers.
    fn reply_kind(&self) -> ReplyKind {
        ReplyKind::Reply
    }
}

/// How the server answers a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// One reply, in order with the other commands of the connection.
    Reply,
    /// `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`: no reply; each channel is
    /// confirmed by a `subscribe` push (RESP3) or message (RESP2, where the
    /// connection then only takes subscription commands).
    Subscribe(SubscriptionKind),
    /// `UNSUBSCRIBE`, `PUNSUBSCRIBE`, `SUNSUBSCRIBE`: no reply; each channel
    /// left is confirmed by an `unsubscribe` push. Without arguments, one
    /// confirmation per channel subscribed, or a single one with a null
    /// channel when there was none.
    Unsubscribe(SubscriptionKind),
}

/// The three kinds of pub/sub subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionKind {
    /// A channel (`SUBSCRIBE`, `message`).
    Channel,
    /// A glob pattern over channel names (`PSUBSCRIBE`, `pmessage`).
    Pattern,
    /// A shard channel, hashed to a cluster slot like a key (`SSUBSCRIBE`,
    /// `smessage`).
    Shard,
}

impl<A: ToArg> Command for [A] {
    #[inline]
    fn encode(&self, dst: &mut BytesMut) {
        encode_command(dst, self);
    }
}

impl<A: ToArg, const N: usize> Command for [A; N] {
    #[inline]
    fn encode(&self, dst: &mut BytesMut) {
        encode_command(dst, self);
    }
}

impl<A: ToArg> Command for Vec<A> {
    #[inline]
    fn encode(&self, dst: &mut BytesMut) {
        encode_command(dst, self);
    }
}

impl<C: Command + ?Sized> Command for &C {
    fn encode(&self, dst: &mut BytesMut) {
        (**self).encode(dst);
    }

    fn block_timeout(&self) -> Option<Duration> {
        (**self).block_timeout()
    }

    fn reply_kind(&self) -> ReplyKind {
        (**self).reply_kind()
    }
}

/// Whether the command named `name` (any case) only reads: sending it again
/// after its connection failed cannot change anything. Unknown commands are
/// taken as writes.
#[must_use]
pub fn is_read_only(name: &[u8]) -> bool {
    let mut upper = [0u8; 24];
    let Some(buf) = upper.get_mut(..name.len()) else {
        return false;
    };
    for (dst, src) in buf.iter_mut().zip(name) {
        *dst = src.to_ascii_uppercase();
    }
    READ_ONLY.binary_search(&&*buf).is_ok()
}

/// Read-only commands, sorted (a test checks the order).
const READ_ONLY: &[&[u8]] = &[
    b"BITCOUNT",
    b"BITPOS",
    b"DBSIZE",
    b"DUMP",
    b"ECHO",
    b"EXISTS",
    b"EXPIRETIME",
    b"GEODIST",
    b"GEOHASH",
    b"GEOPOS",
    b"GEOSEARCH",
    b"GET",
    b"GETBIT",
    b"GETRANGE",
    b"HEXISTS",
    b"HGET",
    b"HGETALL",
    b"HKEYS",
    b"HLEN",
    b"HMGET",
    b"HRANDFIELD",
    b"HSCAN",
    b"HSTRLEN",
    b"HVALS",
    b"KEYS",
    b"LCS",
    b"LINDEX",
    b"LLEN",
    b"LPOS",
    b"LRANGE",
    b"MGET",
    b"PEXPIRETIME",
    b"PFCOUNT",
    b"PING",
    b"PTTL",
    b"RANDOMKEY",
    b"SCAN",
    b"SCARD",
    b"SDIFF",
    b"SINTER",
    b"SINTERCARD",
    b"SISMEMBER",
    b"SMEMBERS",
    b"SMISMEMBER",
    b"SRANDMEMBER",
    b"SSCAN",
    b"STRLEN",
    b"SUBSTR",
    b"SUNION",
    b"TTL",
    b"TYPE",
    b"XLEN",
    b"XPENDING",
    b"XRANGE",
    b"XREVRANGE",
    b"ZCARD",
    b"ZCOUNT",
    b"ZDIFF",
    b"ZINTER",
    b"ZINTERCARD",
    b"ZLEXCOUNT",
    b"ZMSCORE",
    b"ZRANDMEMBER",
    b"ZRANGE",
    b"ZRANGEBYLEX",
    b"ZRANGEBYSCORE",
    b"ZRANK",
    b"ZREVRANGE",
    b"ZREVRANGEBYLEX",
    b"ZREVRANGEBYSCORE",
    b"ZREVRANK",
    b"ZSCAN",
    b"ZSCORE",
    b"ZUNION",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_only_table_is_sorted_and_matched_in_any_case() {
        assert!(READ_ONLY.windows(2).all(|w| w[0] < w[1]));
        assert!(is_read_only(b"get"));
        assert!(is_read_only(b"ZRevRangeByScore"));
        assert!(!is_read_only(b"SET"));
        assert!(!is_read_only(b"INCR"));
        assert!(!is_read_only(b"EVAL"));
        assert!(!is_read_only(b"a-command-name-longer-than-the-buffer"));
        assert!(!is_read_only(b""));
    }
}
