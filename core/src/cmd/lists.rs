//! Lists, blocking pops included.
//!
//! The blocking commands take their timeout in seconds (fractions allowed,
//! 0 for "forever") and report it through
//! [`Cmd::block_timeout`](super::Cmd::block_timeout).

use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::builder::Cmd;
use crate::resp::ToArg;

/// An end of a list, for `LMOVE` and `BLMOVE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// `LEFT`: the head.
    Left,
    /// `RIGHT`: the tail.
    Right,
}

impl ToArg for Side {
    fn write_arg(&self, dst: &mut BytesMut) {
        match self {
            Self::Left => "LEFT".write_arg(dst),
            Self::Right => "RIGHT".write_arg(dst),
        }
    }
}

/// `LPUSH key value...`: the new length.
pub fn lpush<V: ToArg>(key: impl ToArg, values: impl IntoIterator<Item = V>) -> Cmd<u64> {
    Cmd::named("LPUSH").key(key).args(values)
}

/// `RPUSH key value...`: the new length.
pub fn rpush<V: ToArg>(key: impl ToArg, values: impl IntoIterator<Item = V>) -> Cmd<u64> {
    Cmd::named("RPUSH").key(key).args(values)
}

/// `LPOP key`: the first element, `None` when the list is empty.
pub fn lpop(key: impl ToArg) -> Cmd<Option<Bytes>> {
    Cmd::named("LPOP").key(key)
}

/// `RPOP key`: the last element, `None` when the list is empty.
pub fn rpop(key: impl ToArg) -> Cmd<Option<Bytes>> {
    Cmd::named("RPOP").key(key)
}

/// `LPOP key count`: up to `count` elements from the head, `None` when the
/// list is empty.
pub fn lpop_count(key: impl ToArg, count: u64) -> Cmd<Option<Vec<Bytes>>> {
    Cmd::named("LPOP").key(key).arg(count)
}

/// `RPOP key count`: up to `count` elements from the tail, `None` when the
/// list is empty.
pub fn rpop_count(key: impl ToArg, count: u64) -> Cmd<Option<Vec<Bytes>>> {
    Cmd::named("RPOP").key(key).arg(count)
}

/// `LLEN key`: the length.
pub fn llen(key: impl ToArg) -> Cmd<u64> {
    Cmd::named("LLEN").key(key).read_only()
}

/// `LRANGE key start stop`: the elements between the two indexes (both
/// included, negative from the end).
pub fn lrange(key: impl ToArg, start: i64, stop: i64) -> Cmd<Vec<Bytes>> {
    Cmd::named("LRANGE")
        .key(key)
        .arg(start)
        .arg(stop)
        .read_only()
}

/// `LINDEX key index`: the element, `None` when out of range.
pub fn lindex(key: impl ToArg, index: i64) -> Cmd<Option<Bytes>> {
    Cmd::named("LINDEX").key(key).arg(index).read_only()
}

/// `LSET key index value`.
pub fn lset(key: impl ToArg, index: i64, value: impl ToArg) -> Cmd<()> {
    Cmd::named("LSET").key(key).arg(index).arg(value)
}

/// `LREM key count value`: how many were removed (`count` > 0: the first
/// ones from the head, < 0: from the tail, 0: all).
pub fn lrem(key: impl ToArg, count: i64, value: impl ToArg) -> Cmd<u64> {
    Cmd::named("LREM").key(key).arg(count).arg(value)
}

/// `LTRIM key start stop`: keeps only the elements in the range.
pub fn ltrim(key: impl ToArg, start: i64, stop: i64) -> Cmd<()> {
    Cmd::named("LTRIM").key(key).arg(start).arg(stop)
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`: the element moved,
/// `None` when the source is empty.
pub fn lmove(
    source: impl ToArg,
    destination: impl ToArg,
    from: Side,
    to: Side,
) -> Cmd<Option<Bytes>> {
    Cmd::named("LMOVE")
        .key(source)
        .key(destination)
        .arg(from)
        .arg(to)
}

/// `BLPOP key... timeout`: the key and the element popped, `None` when the
/// timeout passed.
pub fn blpop<K: ToArg>(
    keys: impl IntoIterator<Item = K>,
    timeout_secs: f64,
) -> Cmd<Option<(Bytes, Bytes)>> {
    let mut cmd = Cmd::named("BLPOP");
    cmd.push_keys(keys);
    cmd.arg(timeout_secs)
}

/// `BRPOP key... timeout`: the key and the element popped, `None` when the
/// timeout passed.
pub fn brpop<K: ToArg>(
    keys: impl IntoIterator<Item = K>,
    timeout_secs: f64,
) -> Cmd<Option<(Bytes, Bytes)>> {
    let mut cmd = Cmd::named("BRPOP");
    cmd.push_keys(keys);
    cmd.arg(timeout_secs)
}

/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout`: the element
/// moved, `None` when the timeout passed.
pub fn blmove(
    source: impl ToArg,
    destination: impl ToArg,
    from: Side,
    to: Side,
    timeout_secs: f64,
) -> Cmd<Option<Bytes>> {
    Cmd::named("BLMOVE")
        .key(source)
        .key(destination)
        .arg(from)
        .arg(to)
        .arg(timeout_secs)
}

/// `BRPOPLPUSH source destination timeout`: the element moved, `None` when
/// the timeout passed. Deprecated by the server in favour of [`blmove`].
pub fn brpoplpush(
    source: impl ToArg,
    destination: impl ToArg,
    timeout_secs: f64,
) -> Cmd<Option<Bytes>> {
    Cmd::named("BRPOPLPUSH")
        .key(source)
        .key(destination)
        .arg(timeout_secs)
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::cmd::BLOCK_FOREVER;
    use crate::cmd::strings::tests::{argv, keys_of, wire};
    use crate::resp::Frame;
    use crate::time::Duration;

    #[test]
    fn encodes() {
        assert_eq!(
            wire(&lpush("l", ["a", "b"])),
            b"*4\r\n$5\r\nLPUSH\r\n$1\r\nl\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        assert_eq!(argv(&rpush("l", [1, 2])), ["RPUSH", "l", "1", "2"]);
        assert_eq!(argv(&lpop("l")), ["LPOP", "l"]);
        assert_eq!(argv(&rpop("l")), ["RPOP", "l"]);
        assert_eq!(argv(&lpop_count("l", 2)), ["LPOP", "l", "2"]);
        assert_eq!(argv(&rpop_count("l", 2)), ["RPOP", "l", "2"]);
        assert_eq!(argv(&llen("l")), ["LLEN", "l"]);
        assert_eq!(argv(&lrange("l", 0, -1)), ["LRANGE", "l", "0", "-1"]);
        assert_eq!(argv(&lindex("l", -1)), ["LINDEX", "l", "-1"]);
        assert_eq!(argv(&lset("l", 0, "x")), ["LSET", "l", "0", "x"]);
        assert_eq!(argv(&lrem("l", -2, "x")), ["LREM", "l", "-2", "x"]);
        assert_eq!(argv(&ltrim("l", 1, 5)), ["LTRIM", "l", "1", "5"]);
        assert_eq!(
            argv(&lmove("a", "b", Side::Left, Side::Right)),
            ["LMOVE", "a", "b", "LEFT", "RIGHT"]
        );
        assert_eq!(
            wire(&blpop(["a", "b"], 1.5)),
            b"*4\r\n$5\r\nBLPOP\r\n$1\r\na\r\n$1\r\nb\r\n$3\r\n1.5\r\n"
        );
        assert_eq!(argv(&brpop(["a"], 0.0)), ["BRPOP", "a", "0.0"]);
        assert_eq!(
            argv(&blmove("a", "b", Side::Right, Side::Left, 2.0)),
            ["BLMOVE", "a", "b", "RIGHT", "LEFT", "2.0"]
        );
        assert_eq!(
            argv(&brpoplpush("a", "b", 0.1)),
            ["BRPOPLPUSH", "a", "b", "0.1"]
        );
    }

    #[test]
    fn keys() {
        assert_eq!(keys_of(&lpush("l", ["a", "b"])), ["l"]);
        assert_eq!(
            keys_of(&lmove("a", "b", Side::Left, Side::Left)),
            ["a", "b"]
        );
        assert_eq!(keys_of(&blpop(["a", "b"], 1.0)), ["a", "b"]);
        assert_eq!(
            keys_of(&blmove("a", "b", Side::Left, Side::Left, 1.0)),
            ["a", "b"]
        );
        assert_eq!(keys_of(&brpoplpush("a", "b", 1.0)), ["a", "b"]);
    }

    #[test]
    fn block_timeouts() {
        assert_eq!(
            blpop(["a", "b"], 1.5).block_timeout(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(brpop(["a"], 0.0).block_timeout(), Some(BLOCK_FOREVER));
        assert_eq!(
            blmove("a", "b", Side::Left, Side::Right, 0.25).block_timeout(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            brpoplpush("a", "b", 3.0).block_timeout(),
            Some(Duration::from_secs(3))
        );
        assert!(blpop(["a"], 1.0).is_blocking());
        assert!(!lpop("a").is_blocking());
        assert!(!lmove("a", "b", Side::Left, Side::Left).is_blocking());
    }

    #[test]
    fn read_only_flags() {
        assert!(llen("l").is_read_only());
        assert!(lrange("l", 0, 1).is_read_only());
        assert!(lindex("l", 0).is_read_only());
        assert!(!lpush("l", ["a"]).is_read_only());
        assert!(!lpop("l").is_read_only());
        assert!(!blpop(["l"], 1.0).is_read_only());
        assert!(!lset("l", 0, "x").is_read_only());
    }

    #[test]
    fn blocking_pop_replies() {
        let b = |s: &'static str| Frame::Bulk(Bytes::from_static(s.as_bytes()));
        let cmd = blpop(["a"], 1.0);
        assert_eq!(cmd.decode(Frame::NullArray), Ok(None));
        assert_eq!(
            cmd.decode(Frame::Array(vec![b("a"), b("x")])),
            Ok(Some((Bytes::from_static(b"a"), Bytes::from_static(b"x"))))
        );
        assert_eq!(lpop_count("a", 2).decode(Frame::Null), Ok(None));
    }
}
