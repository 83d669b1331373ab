//! Sets and sorted sets.
//!
//! Scores convert from RESP3 doubles and from the RESP2 bulk strings alike;
//! `(member, score)` lists from RESP2 flat arrays and RESP3 arrays of pairs
//! alike.

use alloc::vec::Vec;
use bytes::Bytes;

use super::builder::Cmd;
use crate::resp::ToArg;

/// `SADD key member...`: how many members were added.
pub fn sadd<M: ToArg>(key: impl ToArg, members: impl IntoIterator<Item = M>) -> Cmd<u64> {
    Cmd::named("SADD").key(key).args(members)
}

/// `SREM key member...`: how many members were removed.
pub fn srem<M: ToArg>(key: impl ToArg, members: impl IntoIterator<Item = M>) -> Cmd<u64> {
    Cmd::named("SREM").key(key).args(members)
}

/// `SMEMBERS key`: every member.
pub fn smembers(key: impl ToArg) -> Cmd<Vec<Bytes>> {
    Cmd::named("SMEMBERS").key(key).read_only()
}

/// `SISMEMBER key member`: whether it is a member.
pub fn sismember(key: impl ToArg, member: impl ToArg) -> Cmd<bool> {
    Cmd::named("SISMEMBER").key(key).arg(member).read_only()
}

/// `SCARD key`: the number of members.
pub fn scard(key: impl ToArg) -> Cmd<u64> {
    Cmd::named("SCARD").key(key).read_only()
}

/// `SPOP key`: a random member, removed; `None` when the set is empty.
pub fn spop(key: impl ToArg) -> Cmd<Option<Bytes>> {
    Cmd::named("SPOP").key(key)
}

/// `SPOP key count`: up to `count` random members, removed.
pub fn spop_count(key: impl ToArg, count: u64) -> Cmd<Vec<Bytes>> {
    Cmd::named("SPOP").key(key).arg(count)
}

/// `SRANDMEMBER key`: a random member; `None` when the set is empty.
pub fn srandmember(key: impl ToArg) -> Cmd<Option<Bytes>> {
    Cmd::named("SRANDMEMBER").key(key).read_only()
}

/// `SRANDMEMBER key count`: up to `count` distinct random members, or
/// exactly `-count` members, repetitions allowed, when `count` < 0.
pub fn srandmember_count(key: impl ToArg, count: i64) -> Cmd<Vec<Bytes>> {
    Cmd::named("SRANDMEMBER").key(key).arg(count).read_only()
}

/// `SUNION key...`: the members of any of the sets.
pub fn sunion<K: ToArg>(keys: impl IntoIterator<Item = K>) -> Cmd<Vec<Bytes>> {
    multi_key("SUNION", keys)
}

/// `SINTER key...`: the members of all of the sets.
pub fn sinter<K: ToArg>(keys: impl IntoIterator<Item = K>) -> Cmd<Vec<Bytes>> {
    multi_key("SINTER", keys)
}

/// `SDIFF key...`: the members of the first set that are in none of the
/// others.
pub fn sdiff<K: ToArg>(keys: impl IntoIterator<Item = K>) -> Cmd<Vec<Bytes>> {
    multi_key("SDIFF", keys)
}

fn multi_key<K: ToArg>(name: &'static str, keys: impl IntoIterator<Item = K>) -> Cmd<Vec<Bytes>> {
    let mut cmd = Cmd::named(name).read_only();
    cmd.push_keys(keys);
    cmd
}

/// `ZADD key score member...`: how many members were added (not updated).
/// A score is any number argument (`f64`, integers) or text such as `"+inf"`.
pub fn zadd<S: ToArg, M: ToArg>(
    key: impl ToArg,
    members: impl IntoIterator<Item = (S, M)>,
) -> Cmd<u64> {
    let mut cmd = Cmd::named("ZADD").key(key);
    for (score, member) in members {
        cmd = cmd.arg(score).arg(member);
    }
    cmd
}

/// `ZREM key member...`: how many members were removed.
pub fn zrem<M: ToArg>(key: impl ToArg, members: impl IntoIterator<Item = M>) -> Cmd<u64> {
    Cmd::named("ZREM").key(key).args(members)
}

/// `ZSCORE key member`: the score, `None` when not a member.
pub fn zscore(key: impl ToArg, member: impl ToArg) -> Cmd<Option<f64>> {
    Cmd::named("ZSCORE").key(key).arg(member).read_only()
}

/// `ZINCRBY key increment member`: the new score.
pub fn zincrby(key: impl ToArg, increment: f64, member: impl ToArg) -> Cmd<f64> {
    Cmd::named("ZINCRBY").key(key).arg(increment).arg(member)
}

/// `ZCARD key`: the number of members.
pub fn zcard(key: impl ToArg) -> Cmd<u64> {
    Cmd::named("ZCARD").key(key).read_only()
}

/// `ZRANK key member`: the rank by ascending score, `None` when not a
/// member.
pub fn zrank(key: impl ToArg, member: impl ToArg) -> Cmd<Option<u64>> {
    Cmd::named("ZRANK").key(key).arg(member).read_only()
}

/// `ZRANGE key start stop`: the members between two ranks (both included,
/// negative from the end), by ascending score.
pub fn zrange(key: impl ToArg, start: i64, stop: i64) -> Cmd<Vec<Bytes>> {
    Cmd::named("ZRANGE")
        .key(key)
        .arg(start)
        .arg(stop)
        .read_only()
}

/// `ZRANGE key start stop WITHSCORES`: the members with their scores.
pub fn zrange_withscores(key: impl ToArg, start: i64, stop: i64) -> Cmd<Vec<(Bytes, f64)>> {
    zrange(key, start, stop).arg("WITHSCORES").returning()
}

/// `ZRANGEBYSCORE key min max`: the members with a score in the range. The
/// bounds are numbers or text: `"-inf"`, `"+inf"`, `"(1.5"` (exclusive).
pub fn zrangebyscore(key: impl ToArg, min: impl ToArg, max: impl ToArg) -> Cmd<Vec<Bytes>> {
    Cmd::named("ZRANGEBYSCORE")
        .key(key)
        .arg(min)
        .arg(max)
        .read_only()
}

/// `ZCOUNT key min max`: how many members have a score in the range
/// (bounds as for [`zrangebyscore`]).
pub fn zcount(key: impl ToArg, min: impl ToArg, max: impl ToArg) -> Cmd<u64> {
    Cmd::named("ZCOUNT").key(key).arg(min).arg(max).read_only()
}

/// `ZPOPMIN key count`: up to `count` members with the lowest scores,
/// removed, with their scores.
pub fn zpopmin(key: impl ToArg, count: u64) -> Cmd<Vec<(Bytes, f64)>> {
    Cmd::named("ZPOPMIN").key(key).arg(count)
}

/// `ZPOPMAX key count`: up to `count` members with the highest scores,
/// removed, with their scores.
pub fn zpopmax(key: impl ToArg, count: u64) -> Cmd<Vec<(Bytes, f64)>> {
    Cmd::named("ZPOPMAX").key(key).arg(count)
}

/// `BZPOPMIN key... timeout`: the key, member and score popped; `None` when
/// the timeout (seconds, 0 for forever) passed.
pub fn bzpopmin<K: ToArg>(
    keys: impl IntoIterator<Item = K>,
    timeout_secs: f64,
) -> Cmd<Option<(Bytes, Bytes, f64)>> {
    let mut cmd = Cmd::named("BZPOPMIN");
    cmd.push_keys(keys);
    cmd.arg(timeout_secs)
}

/// `BZPOPMAX key... timeout`: the key, member and score popped; `None` when
/// the timeout (seconds, 0 for forever) passed.
pub fn bzpopmax<K: ToArg>(
    keys: impl IntoIterator<Item = K>,
    timeout_secs: f64,
) -> Cmd<Option<(Bytes, Bytes, f64)>> {
    let mut cmd = Cmd::named("BZPOPMAX");
    cmd.push_keys(keys);
    cmd.arg(timeout_secs)
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::cmd::strings::tests::{argv, keys_of, wire};
    use crate::resp::Frame;
    use crate::time::Duration;

    fn b(s: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn encodes_sets() {
        assert_eq!(
            wire(&sadd("s", ["a", "b"])),
            b"*4\r\n$4\r\nSADD\r\n$1\r\ns\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        assert_eq!(argv(&srem("s", ["a"])), ["SREM", "s", "a"]);
        assert_eq!(argv(&smembers("s")), ["SMEMBERS", "s"]);
        assert_eq!(argv(&sismember("s", "a")), ["SISMEMBER", "s", "a"]);
        assert_eq!(argv(&scard("s")), ["SCARD", "s"]);
        assert_eq!(argv(&spop("s")), ["SPOP", "s"]);
        assert_eq!(argv(&spop_count("s", 3)), ["SPOP", "s", "3"]);
        assert_eq!(argv(&srandmember("s")), ["SRANDMEMBER", "s"]);
        assert_eq!(
            argv(&srandmember_count("s", -3)),
            ["SRANDMEMBER", "s", "-3"]
        );
        assert_eq!(argv(&sunion(["a", "b"])), ["SUNION", "a", "b"]);
        assert_eq!(argv(&sinter(["a", "b"])), ["SINTER", "a", "b"]);
        assert_eq!(argv(&sdiff(["a", "b"])), ["SDIFF", "a", "b"]);
        assert_eq!(keys_of(&sinter(["a", "b"])), ["a", "b"]);
        assert_eq!(keys_of(&sadd("s", ["a", "b"])), ["s"]);
    }

    #[test]
    fn encodes_sorted_sets() {
        assert_eq!(
            wire(&zadd("z", [(1.5, "a"), (2.0, "b")])),
            b"*6\r\n$4\r\nZADD\r\n$1\r\nz\r\n$3\r\n1.5\r\n$1\r\na\r\n$3\r\n2.0\r\n$1\r\nb\r\n"
        );
        assert_eq!(
            argv(&zadd("z", [("+inf", "a")])),
            ["ZADD", "z", "+inf", "a"]
        );
        assert_eq!(argv(&zrem("z", ["a"])), ["ZREM", "z", "a"]);
        assert_eq!(argv(&zscore("z", "a")), ["ZSCORE", "z", "a"]);
        assert_eq!(argv(&zincrby("z", 2.5, "a")), ["ZINCRBY", "z", "2.5", "a"]);
        assert_eq!(argv(&zcard("z")), ["ZCARD", "z"]);
        assert_eq!(argv(&zrank("z", "a")), ["ZRANK", "z", "a"]);
        assert_eq!(argv(&zrange("z", 0, -1)), ["ZRANGE", "z", "0", "-1"]);
        assert_eq!(
            argv(&zrange_withscores("z", 0, -1)),
            ["ZRANGE", "z", "0", "-1", "WITHSCORES"]
        );
        assert_eq!(
            argv(&zrangebyscore("z", "-inf", "(5")),
            ["ZRANGEBYSCORE", "z", "-inf", "(5"]
        );
        assert_eq!(argv(&zcount("z", 1, 2)), ["ZCOUNT", "z", "1", "2"]);
        assert_eq!(argv(&zpopmin("z", 1)), ["ZPOPMIN", "z", "1"]);
        assert_eq!(argv(&zpopmax("z", 2)), ["ZPOPMAX", "z", "2"]);
        assert_eq!(
            argv(&bzpopmin(["a", "b"], 0.5)),
            ["BZPOPMIN", "a", "b", "0.5"]
        );
        assert_eq!(argv(&bzpopmax(["a"], 1.0)), ["BZPOPMAX", "a", "1.0"]);
        assert_eq!(keys_of(&bzpopmax(["a", "b"], 1.0)), ["a", "b"]);
        assert_eq!(keys_of(&zadd("z", [(1, "a")])), ["z"]);
    }

    #[test]
    fn block_timeouts() {
        assert_eq!(
            bzpopmin(["a"], 0.5).block_timeout(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            bzpopmax(["a"], 0.0).block_timeout(),
            Some(crate::cmd::BLOCK_FOREVER)
        );
        assert_eq!(zpopmin("a", 1).block_timeout(), None);
    }

    #[test]
    fn read_only_flags() {
        for ro in [
            smembers("s").returning::<()>(),
            sismember("s", "a").returning(),
            scard("s").returning(),
            srandmember("s").returning(),
            srandmember_count("s", 2).returning(),
            sunion(["a"]).returning(),
            sinter(["a"]).returning(),
            sdiff(["a"]).returning(),
            zscore("z", "a").returning(),
            zcard("z").returning(),
            zrank("z", "a").returning(),
            zrange("z", 0, 1).returning(),
            zrange_withscores("z", 0, 1).returning(),
            zrangebyscore("z", 0, 1).returning(),
            zcount("z", 0, 1).returning(),
        ] {
            assert!(ro.is_read_only(), "{ro:?}");
        }
        for rw in [
            sadd("s", ["a"]).returning::<()>(),
            srem("s", ["a"]).returning(),
            spop("s").returning(),
            zadd("z", [(1, "a")]).returning(),
            zincrby("z", 1.0, "a").returning(),
            zpopmin("z", 1).returning(),
            bzpopmin(["z"], 1.0).returning(),
        ] {
            assert!(!rw.is_read_only(), "{rw:?}");
        }
    }

    #[test]
    fn scores_in_both_protocols() {
        let resp2 = Frame::Array(vec![b("a"), b("1.5"), b("b"), b("inf")]);
        let resp3 = Frame::Array(vec![
            Frame::Array(vec![b("a"), Frame::Double(1.5)]),
            Frame::Array(vec![b("b"), Frame::Double(f64::INFINITY)]),
        ]);
        let want = vec![
            (Bytes::from_static(b"a"), 1.5),
            (Bytes::from_static(b"b"), f64::INFINITY),
        ];
        assert_eq!(
            zrange_withscores("z", 0, -1).decode(resp2),
            Ok(want.clone())
        );
        assert_eq!(zrange_withscores("z", 0, -1).decode(resp3), Ok(want));
        // ZPOPMIN with a count of 1: flat in both protocols.
        assert_eq!(
            zpopmin("z", 1).decode(Frame::Array(vec![b("a"), Frame::Double(1.0)])),
            Ok(vec![(Bytes::from_static(b"a"), 1.0)])
        );
        assert_eq!(zscore("z", "a").decode(b("2.5")), Ok(Some(2.5)));
        assert_eq!(zscore("z", "a").decode(Frame::Null), Ok(None));
        assert_eq!(
            bzpopmin(["z"], 1.0).decode(Frame::Array(vec![b("z"), b("a"), b("3")])),
            Ok(Some((
                Bytes::from_static(b"z"),
                Bytes::from_static(b"a"),
                3.0
            )))
        );
    }
}
