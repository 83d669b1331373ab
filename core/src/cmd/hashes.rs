//! Hashes.

use alloc::vec::Vec;
use bytes::Bytes;

use super::builder::Cmd;
use crate::resp::ToArg;

/// `HSET key field value...`: how many fields were added (not updated).
pub fn hset<F: ToArg, V: ToArg>(
    key: impl ToArg,
    fields: impl IntoIterator<Item = (F, V)>,
) -> Cmd<u64> {
    let mut cmd = Cmd::named("HSET").key(key);
    for (field, value) in fields {
        cmd = cmd.arg(field).arg(value);
    }
    cmd
}

/// `HGET key field`: the value, `None` when the field or key is missing.
pub fn hget(key: impl ToArg, field: impl ToArg) -> Cmd<Option<Bytes>> {
    Cmd::named("HGET").key(key).arg(field).read_only()
}

/// `HMGET key field...`: the values, `None` for missing fields.
pub fn hmget<F: ToArg>(
    key: impl ToArg,
    fields: impl IntoIterator<Item = F>,
) -> Cmd<Vec<Option<Bytes>>> {
    Cmd::named("HMGET").key(key).args(fields).read_only()
}

/// `HGETALL key`: the fields and values, in the server's order.
///
/// The reply is a RESP3 map or a RESP2 flat array; either converts to any
/// map type too: `.returning::<BTreeMap<String, String>>()`, or a
/// `HashMap` with the `std` feature.
pub fn hgetall(key: impl ToArg) -> Cmd<Vec<(Bytes, Bytes)>> {
    Cmd::named("HGETALL").key(key).read_only()
}

/// `HDEL key field...`: how many fields were removed.
pub fn hdel<F: ToArg>(key: impl ToArg, fields: impl IntoIterator<Item = F>) -> Cmd<u64> {
    Cmd::named("HDEL").key(key).args(fields)
}

/// `HEXISTS key field`: whether the field exists.
pub fn hexists(key: impl ToArg, field: impl ToArg) -> Cmd<bool> {
    Cmd::named("HEXISTS").key(key).arg(field).read_only()
}

/// `HINCRBY key field n`: the new value.
pub fn hincrby(key: impl ToArg, field: impl ToArg, n: i64) -> Cmd<i64> {
    Cmd::named("HINCRBY").key(key).arg(field).arg(n)
}

/// `HINCRBYFLOAT key field x`: the new value.
pub fn hincrbyfloat(key: impl ToArg, field: impl ToArg, x: f64) -> Cmd<f64> {
    Cmd::named("HINCRBYFLOAT").key(key).arg(field).arg(x)
}

/// `HKEYS key`: the field names.
pub fn hkeys(key: impl ToArg) -> Cmd<Vec<Bytes>> {
    Cmd::named("HKEYS").key(key).read_only()
}

/// `HVALS key`: the values.
pub fn hvals(key: impl ToArg) -> Cmd<Vec<Bytes>> {
    Cmd::named("HVALS").key(key).read_only()
}

/// `HLEN key`: the number of fields.
pub fn hlen(key: impl ToArg) -> Cmd<u64> {
    Cmd::named("HLEN").key(key).read_only()
}

/// `HSETNX key field value`: whether the field was set (it did not exist).
pub fn hsetnx(key: impl ToArg, field: impl ToArg, value: impl ToArg) -> Cmd<bool> {
    Cmd::named("HSETNX").key(key).arg(field).arg(value)
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeMap;
    use alloc::string::String;
    use alloc::vec;

    use super::*;
    use crate::cmd::strings::tests::{argv, keys_of, wire};
    use crate::resp::Frame;

    #[test]
    fn encodes() {
        assert_eq!(
            wire(&hset("h", [("f", "v"), ("g", "w")])),
            b"*6\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\ng\r\n$1\r\nw\r\n"
        );
        assert_eq!(argv(&hget("h", "f")), ["HGET", "h", "f"]);
        assert_eq!(argv(&hmget("h", ["f", "g"])), ["HMGET", "h", "f", "g"]);
        assert_eq!(argv(&hgetall("h")), ["HGETALL", "h"]);
        assert_eq!(argv(&hdel("h", ["f"])), ["HDEL", "h", "f"]);
        assert_eq!(argv(&hexists("h", "f")), ["HEXISTS", "h", "f"]);
        assert_eq!(argv(&hincrby("h", "f", 2)), ["HINCRBY", "h", "f", "2"]);
        assert_eq!(
            argv(&hincrbyfloat("h", "f", 2.5)),
            ["HINCRBYFLOAT", "h", "f", "2.5"]
        );
        assert_eq!(argv(&hkeys("h")), ["HKEYS", "h"]);
        assert_eq!(argv(&hvals("h")), ["HVALS", "h"]);
        assert_eq!(argv(&hlen("h")), ["HLEN", "h"]);
        assert_eq!(argv(&hsetnx("h", "f", 1)), ["HSETNX", "h", "f", "1"]);
    }

    #[test]
    fn only_the_hash_is_a_key() {
        assert_eq!(keys_of(&hset("h", [("f", "v")])), ["h"]);
        assert_eq!(keys_of(&hmget("h", ["f", "g"])), ["h"]);
    }

    #[test]
    fn read_only_flags() {
        assert!(hget("h", "f").is_read_only());
        assert!(hmget("h", ["f"]).is_read_only());
        assert!(hgetall("h").is_read_only());
        assert!(hexists("h", "f").is_read_only());
        assert!(hkeys("h").is_read_only());
        assert!(hvals("h").is_read_only());
        assert!(hlen("h").is_read_only());
        assert!(!hset("h", [("f", "v")]).is_read_only());
        assert!(!hdel("h", ["f"]).is_read_only());
        assert!(!hincrby("h", "f", 1).is_read_only());
        assert!(!hsetnx("h", "f", 1).is_read_only());
    }

    #[test]
    fn hgetall_reads_resp2_and_resp3() {
        let b = |s: &'static str| Frame::Bulk(Bytes::from_static(s.as_bytes()));
        let resp2 = Frame::Array(vec![b("f"), b("1"), b("g"), b("2")]);
        let resp3 = Frame::Map(vec![(b("f"), b("1")), (b("g"), b("2"))]);
        let want = vec![
            (Bytes::from_static(b"f"), Bytes::from_static(b"1")),
            (Bytes::from_static(b"g"), Bytes::from_static(b"2")),
        ];
        assert_eq!(hgetall("h").decode(resp2.clone()), Ok(want.clone()));
        assert_eq!(hgetall("h").decode(resp3), Ok(want));
        let map = hgetall("h")
            .returning::<BTreeMap<String, i64>>()
            .decode(resp2)
            .unwrap();
        assert_eq!(map["g"], 2);
    }
}
