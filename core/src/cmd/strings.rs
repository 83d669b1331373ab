//! Strings, counters, keys and expiry.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;

use super::builder::Cmd;
use crate::resp::ToArg;

/// When a key expires (`SET`, `GETEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// `EX`: in this many seconds.
    Ex(u64),
    /// `PX`: in this many milliseconds.
    Px(u64),
    /// `EXAT`: at this Unix time, in seconds.
    ExAt(u64),
    /// `PXAT`: at this Unix time, in milliseconds.
    PxAt(u64),
}

impl Expiry {
    fn write<T>(self, cmd: Cmd<T>) -> Cmd<T> {
        match self {
            Self::Ex(n) => cmd.arg("EX").arg(n),
            Self::Px(n) => cmd.arg("PX").arg(n),
            Self::ExAt(n) => cmd.arg("EXAT").arg(n),
            Self::PxAt(n) => cmd.arg("PXAT").arg(n),
        }
    }
}

/// The options of `SET`, for [`set_with`] and [`set_get`].
///
/// ```
/// use redpoll_core::cmd::{self, SetOptions};
///
/// // SET lock token PX 30000 NX: true when the lock was taken.
/// let take = cmd::set_with("lock", "token", SetOptions::new().px(30_000).nx());
/// # let _ = take;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[must_use]
pub struct SetOptions {
    ttl: Option<Ttl>,
    condition: Option<Condition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ttl {
    Expiry(Expiry),
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Condition {
    Nx,
    Xx,
}

impl SetOptions {
    /// No options: set unconditionally, drop any TTL.
    pub const fn new() -> Self {
        Self {
            ttl: None,
            condition: None,
        }
    }

    /// Expire as `expiry` says.
    pub const fn expiry(mut self, expiry: Expiry) -> Self {
        self.ttl = Some(Ttl::Expiry(expiry));
        self
    }

    /// `EX`: expire in `seconds`.
    pub const fn ex(self, seconds: u64) -> Self {
        self.expiry(Expiry::Ex(seconds))
    }

    /// `PX`: expire in `millis` milliseconds.
    pub const fn px(self, millis: u64) -> Self {
        self.expiry(Expiry::Px(millis))
    }

    /// `KEEPTTL`: keep the key's current time to live.
    pub const fn keep_ttl(mut self) -> Self {
        self.ttl = Some(Ttl::Keep);
        self
    }

    /// `NX`: only set the key if it does not exist.
    pub const fn nx(mut self) -> Self {
        self.condition = Some(Condition::Nx);
        self
    }

    /// `XX`: only set the key if it exists.
    pub const fn xx(mut self) -> Self {
        self.condition = Some(Condition::Xx);
        self
    }

    fn write<T>(self, mut cmd: Cmd<T>) -> Cmd<T> {
        match self.condition {
            Some(Condition::Nx) => cmd = cmd.arg("NX"),
            Some(Condition::Xx) => cmd = cmd.arg("XX"),
            None => {}
        }
        match self.ttl {
            Some(Ttl::Expiry(expiry)) => expiry.write(cmd),
            Some(Ttl::Keep) => cmd.arg("KEEPTTL"),
            None => cmd,
        }
    }
}

/// `GET key`: the value, `None` when the key does not exist.
pub fn get(key: impl ToArg) -> Cmd<Option<Bytes>> {
    Cmd::named("GET").key(key).read_only()
}

/// `SET key value`.
pub fn set(key: impl ToArg, value: impl ToArg) -> Cmd<()> {
    Cmd::named("SET").key(key).arg(value)
}

/// `SET key value [NX|XX] [EX|PX|EXAT|PXAT|KEEPTTL]`: whether the key was
/// set (`false` when `NX`/`XX` prevented it).
pub fn set_with(key: impl ToArg, value: impl ToArg, options: SetOptions) -> Cmd<bool> {
    options.write(set(key, value).returning())
}

/// `SET key value [options] GET`: the previous value, `None` when there was
/// none.
pub fn set_get(key: impl ToArg, value: impl ToArg, options: SetOptions) -> Cmd<Option<Bytes>> {
    options.write(set(key, value).returning()).arg("GET")
}

/// `GETDEL key`: the value, deleting the key.
pub fn getdel(key: impl ToArg) -> Cmd<Option<Bytes>> {
    Cmd::named("GETDEL").key(key)
}

/// `GETEX key EX|PX|EXAT|PXAT n`: the value, setting the key's expiry.
pub fn getex(key: impl ToArg, expiry: Expiry) -> Cmd<Option<Bytes>> {
    expiry.write(Cmd::named("GETEX").key(key))
}

/// `GETEX key PERSIST`: the value, removing the key's expiry.
pub fn getex_persist(key: impl ToArg) -> Cmd<Option<Bytes>> {
    Cmd::named("GETEX").key(key).arg("PERSIST")
}

/// `MGET key...`: the values, `None` for missing keys.
pub fn mget<K: ToArg>(keys: impl IntoIterator<Item = K>) -> Cmd<Vec<Option<Bytes>>> {
    let mut cmd = Cmd::named("MGET").read_only();
    cmd.push_keys(keys);
    cmd
}

/// `MSET key value...`.
pub fn mset<K: ToArg, V: ToArg>(pairs: impl IntoIterator<Item = (K, V)>) -> Cmd<()> {
    key_value_pairs(Cmd::named("MSET"), pairs)
}

/// `MSETNX key value...`: whether the keys were set (none of them existed).
pub fn msetnx<K: ToArg, V: ToArg>(pairs: impl IntoIterator<Item = (K, V)>) -> Cmd<bool> {
    key_value_pairs(Cmd::named("MSETNX"), pairs)
}

fn key_value_pairs<T, K: ToArg, V: ToArg>(
    mut cmd: Cmd<T>,
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Cmd<T> {
    for (key, value) in pairs {
        cmd = cmd.key(key).arg(value);
    }
    cmd
}

/// `SETNX key value`: whether the key was set (it did not exist).
pub fn setnx(key: impl ToArg, value: impl ToArg) -> Cmd<bool> {
    Cmd::named("SETNX").key(key).arg(value)
}

/// `SETEX key seconds value`.
pub fn setex(key: impl ToArg, seconds: u64, value: impl ToArg) -> Cmd<()> {
    Cmd::named("SETEX").key(key).arg(seconds).arg(value)
}

/// `INCR key`: the new value.
pub fn incr(key: impl ToArg) -> Cmd<i64> {
    Cmd::named("INCR").key(key)
}

/// `INCRBY key n`: the new value.
pub fn incrby(key: impl ToArg, n: i64) -> Cmd<i64> {
    Cmd::named("INCRBY").key(key).arg(n)
}

/// `INCRBYFLOAT key x`: the new value.
pub fn incrbyfloat(key: impl ToArg, x: f64) -> Cmd<f64> {
    Cmd::named("INCRBYFLOAT").key(key).arg(x)
}

/// `DECR key`: the new value.
pub fn decr(key: impl ToArg) -> Cmd<i64> {
    Cmd::named("DECR").key(key)
}

/// `DECRBY key n`: the new value.
pub fn decrby(key: impl ToArg, n: i64) -> Cmd<i64> {
    Cmd::named("DECRBY").key(key).arg(n)
}

/// `APPEND key value`: the new length.
pub fn append(key: impl ToArg, value: impl ToArg) -> Cmd<u64> {
    Cmd::named("APPEND").key(key).arg(value)
}

/// `STRLEN key`: the length of the value (0 when missing).
pub fn strlen(key: impl ToArg) -> Cmd<u64> {
    Cmd::named("STRLEN").key(key).read_only()
}

/// `GETRANGE key start end`: the substring (both ends included, negative
/// from the end).
pub fn getrange(key: impl ToArg, start: i64, end: i64) -> Cmd<Bytes> {
    Cmd::named("GETRANGE")
        .key(key)
        .arg(start)
        .arg(end)
        .read_only()
}

/// `SETRANGE key offset value`: the new length.
pub fn setrange(key: impl ToArg, offset: u64, value: impl ToArg) -> Cmd<u64> {
    Cmd::named("SETRANGE").key(key).arg(offset).arg(value)
}

/// `DEL key...`: how many keys were deleted.
pub fn del<K: ToArg>(keys: impl IntoIterator<Item = K>) -> Cmd<u64> {
    let mut cmd = Cmd::named("DEL");
    cmd.push_keys(keys);
    cmd
}

/// `UNLINK key...`: how many keys were unlinked (their memory is freed in
/// the background).
pub fn unlink<K: ToArg>(keys: impl IntoIterator<Item = K>) -> Cmd<u64> {
    let mut cmd = Cmd::named("UNLINK");
    cmd.push_keys(keys);
    cmd
}

/// `EXISTS key...`: how many of the keys exist (a key given twice counts
/// twice).
pub fn exists<K: ToArg>(keys: impl IntoIterator<Item = K>) -> Cmd<u64> {
    let mut cmd = Cmd::named("EXISTS").read_only();
    cmd.push_keys(keys);
    cmd
}

/// `EXPIRE key seconds`: whether the timeout was set (the key exists).
pub fn expire(key: impl ToArg, seconds: i64) -> Cmd<bool> {
    Cmd::named("EXPIRE").key(key).arg(seconds)
}

/// `PEXPIRE key millis`: whether the timeout was set.
pub fn pexpire(key: impl ToArg, millis: i64) -> Cmd<bool> {
    Cmd::named("PEXPIRE").key(key).arg(millis)
}

/// `EXPIREAT key unix_seconds`: whether the timeout was set.
pub fn expireat(key: impl ToArg, unix_seconds: i64) -> Cmd<bool> {
    Cmd::named("EXPIREAT").key(key).arg(unix_seconds)
}

/// `PEXPIREAT key unix_millis`: whether the timeout was set.
pub fn pexpireat(key: impl ToArg, unix_millis: i64) -> Cmd<bool> {
    Cmd::named("PEXPIREAT").key(key).arg(unix_millis)
}

/// `TTL key`: the seconds left; -1 without expiry, -2 when missing.
pub fn ttl(key: impl ToArg) -> Cmd<i64> {
    Cmd::named("TTL").key(key).read_only()
}

/// `PTTL key`: the milliseconds left; -1 without expiry, -2 when missing.
pub fn pttl(key: impl ToArg) -> Cmd<i64> {
    Cmd::named("PTTL").key(key).read_only()
}

/// `PERSIST key`: whether a timeout was removed.
pub fn persist(key: impl ToArg) -> Cmd<bool> {
    Cmd::named("PERSIST").key(key)
}

/// `TYPE key`: `string`, `list`, `set`, `zset`, `hash`, `stream`, or `none`.
pub fn type_(key: impl ToArg) -> Cmd<String> {
    Cmd::named("TYPE").key(key).read_only()
}

/// `RENAME key newkey`.
pub fn rename(key: impl ToArg, new_key: impl ToArg) -> Cmd<()> {
    Cmd::named("RENAME").key(key).key(new_key)
}

/// `KEYS pattern`: every key matching the glob pattern. It blocks the
/// server while it walks the whole keyspace: prefer [`scan`](super::scan).
pub fn keys(pattern: impl ToArg) -> Cmd<Vec<Bytes>> {
    Cmd::named("KEYS").arg(pattern).read_only()
}

/// `TOUCH key...`: how many of the keys exist (their access time is
/// updated).
pub fn touch<K: ToArg>(keys: impl IntoIterator<Item = K>) -> Cmd<u64> {
    let mut cmd = Cmd::named("TOUCH").read_only();
    cmd.push_keys(keys);
    cmd
}

/// `DBSIZE`: the number of keys in the database.
pub fn dbsize() -> Cmd<u64> {
    Cmd::named("DBSIZE").read_only()
}

/// `FLUSHDB`: deletes every key of the database.
pub fn flushdb() -> Cmd<()> {
    Cmd::named("FLUSHDB")
}

#[cfg(test)]
pub(super) mod tests {
    use alloc::vec::Vec;
    use bytes::BytesMut;

    use super::*;
    use crate::command::Command;

    /// The RESP bytes of a command, checked against its own length.
    pub(in crate::cmd) fn wire<T>(cmd: &Cmd<T>) -> Vec<u8> {
        let mut buf = BytesMut::new();
        cmd.encode(&mut buf);
        assert_eq!(buf.len(), cmd.encoded_len());
        buf.to_vec()
    }

    /// The arguments of a command, as text.
    pub(in crate::cmd) fn argv<T>(cmd: &Cmd<T>) -> Vec<String> {
        cmd.argv()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    /// The keys of a command, as text.
    pub(in crate::cmd) fn keys_of<T>(cmd: &Cmd<T>) -> Vec<String> {
        cmd.keys()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn get_and_set_encode_exactly() {
        assert_eq!(wire(&get("k")), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(
            wire(&set("k", "v")),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
        );
        assert_eq!(
            wire(&set_with("k", 1, SetOptions::new().ex(10).nx())),
            b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$2\r\nNX\r\n$2\r\nEX\r\n$2\r\n10\r\n"
        );
    }

    #[test]
    fn set_options() {
        assert_eq!(
            argv(&set_with("k", "v", SetOptions::new())),
            ["SET", "k", "v"]
        );
        assert_eq!(
            argv(&set_with("k", "v", SetOptions::new().px(5).xx())),
            ["SET", "k", "v", "XX", "PX", "5"]
        );
        assert_eq!(
            argv(&set_with("k", "v", SetOptions::new().keep_ttl())),
            ["SET", "k", "v", "KEEPTTL"]
        );
        assert_eq!(
            argv(&set_with(
                "k",
                "v",
                SetOptions::new().expiry(Expiry::ExAt(9))
            )),
            ["SET", "k", "v", "EXAT", "9"]
        );
        assert_eq!(
            argv(&set_get(
                "k",
                "v",
                SetOptions::new().expiry(Expiry::PxAt(9))
            )),
            ["SET", "k", "v", "PXAT", "9", "GET"]
        );
        assert_eq!(SetOptions::default(), SetOptions::new());
    }

    #[test]
    fn string_commands() {
        assert_eq!(argv(&getdel("k")), ["GETDEL", "k"]);
        assert_eq!(argv(&getex("k", Expiry::Ex(3))), ["GETEX", "k", "EX", "3"]);
        assert_eq!(argv(&getex("k", Expiry::Px(3))), ["GETEX", "k", "PX", "3"]);
        assert_eq!(argv(&getex_persist("k")), ["GETEX", "k", "PERSIST"]);
        assert_eq!(argv(&mget(["a", "b"])), ["MGET", "a", "b"]);
        assert_eq!(
            argv(&mset([("a", 1), ("b", 2)])),
            ["MSET", "a", "1", "b", "2"]
        );
        assert_eq!(keys_of(&mset([("a", 1), ("b", 2)])), ["a", "b"]);
        assert_eq!(argv(&msetnx([("a", "x")])), ["MSETNX", "a", "x"]);
        assert_eq!(argv(&setnx("k", "v")), ["SETNX", "k", "v"]);
        assert_eq!(argv(&setex("k", 5, "v")), ["SETEX", "k", "5", "v"]);
        assert_eq!(argv(&incr("k")), ["INCR", "k"]);
        assert_eq!(argv(&incrby("k", -2)), ["INCRBY", "k", "-2"]);
        assert_eq!(argv(&incrbyfloat("k", 0.5)), ["INCRBYFLOAT", "k", "0.5"]);
        assert_eq!(argv(&decr("k")), ["DECR", "k"]);
        assert_eq!(argv(&decrby("k", 2)), ["DECRBY", "k", "2"]);
        assert_eq!(argv(&append("k", "v")), ["APPEND", "k", "v"]);
        assert_eq!(argv(&strlen("k")), ["STRLEN", "k"]);
        assert_eq!(argv(&getrange("k", 0, -1)), ["GETRANGE", "k", "0", "-1"]);
        assert_eq!(argv(&setrange("k", 3, "v")), ["SETRANGE", "k", "3", "v"]);
    }

    #[test]
    fn key_commands() {
        assert_eq!(
            wire(&del(["a", "b"])),
            b"*3\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        assert_eq!(argv(&unlink(["a"])), ["UNLINK", "a"]);
        assert_eq!(argv(&exists(["a", "a"])), ["EXISTS", "a", "a"]);
        assert_eq!(argv(&expire("k", 10)), ["EXPIRE", "k", "10"]);
        assert_eq!(argv(&pexpire("k", 10)), ["PEXPIRE", "k", "10"]);
        assert_eq!(argv(&expireat("k", 10)), ["EXPIREAT", "k", "10"]);
        assert_eq!(argv(&pexpireat("k", 10)), ["PEXPIREAT", "k", "10"]);
        assert_eq!(argv(&ttl("k")), ["TTL", "k"]);
        assert_eq!(argv(&pttl("k")), ["PTTL", "k"]);
        assert_eq!(argv(&persist("k")), ["PERSIST", "k"]);
        assert_eq!(argv(&type_("k")), ["TYPE", "k"]);
        assert_eq!(argv(&rename("a", "b")), ["RENAME", "a", "b"]);
        assert_eq!(keys_of(&rename("a", "b")), ["a", "b"]);
        assert_eq!(argv(&keys("user:*")), ["KEYS", "user:*"]);
        assert!(
            keys_of(&keys("user:*")).is_empty(),
            "a pattern is not a key"
        );
        assert_eq!(argv(&touch(["a"])), ["TOUCH", "a"]);
        assert_eq!(argv(&dbsize()), ["DBSIZE"]);
        assert_eq!(argv(&flushdb()), ["FLUSHDB"]);
    }

    #[test]
    fn keys_are_recorded() {
        assert_eq!(keys_of(&get("k")), ["k"]);
        assert_eq!(keys_of(&set("k", "v")), ["k"]);
        assert_eq!(keys_of(&mget(["a", "b", "c"])), ["a", "b", "c"]);
        assert_eq!(keys_of(&del(Vec::<&str>::new())), Vec::<String>::new());
        assert_eq!(keys_of(&setex("k", 1, "v")), ["k"]);
        assert!(keys_of(&dbsize()).is_empty());
    }

    #[test]
    fn read_only_flags() {
        for ro in [
            get("k").returning::<()>(),
            mget(["k"]).returning(),
            strlen("k").returning(),
            getrange("k", 0, 1).returning(),
            exists(["k"]).returning(),
            ttl("k").returning(),
            pttl("k").returning(),
            type_("k").returning(),
            keys("*").returning(),
            touch(["k"]).returning(),
            dbsize().returning(),
        ] {
            assert!(ro.is_read_only(), "{ro:?}");
        }
        for rw in [
            set("k", "v"),
            set_with("k", "v", SetOptions::new()).returning(),
            getdel("k").returning(),
            getex("k", Expiry::Ex(1)).returning(),
            incr("k").returning(),
            del(["k"]).returning(),
            expire("k", 1).returning(),
            rename("a", "b"),
            flushdb(),
        ] {
            assert!(!rw.is_read_only(), "{rw:?}");
            assert!(!rw.is_blocking(), "{rw:?}");
        }
    }
}
