//! Commands the cluster client splits per slot or sends to every primary,
//! and how the parts' replies become the caller's one reply.
//!
//! # What this module decides
//!
//! - **Which multi-key commands are split** when their keys are in
//!   different slots ([`split`]): `MGET`, `MSET`, `DEL`, `EXISTS`,
//!   `UNLINK`, `TOUCH`. Each becomes one command per slot (never per node:
//!   during a migration one node may serve a slot only after `ASKING`, and
//!   a real server refuses keys of several slots with `CROSSSLOT` even when
//!   it owns them all). Every other cross-slot command stays a client-side
//!   error: `MSETNX`, `RENAME`, `SUNIONSTORE`, ... would lose their
//!   atomicity if split.
//! - **Which keyless commands go to every primary** ([`fan_out`]):
//!   `FLUSHALL`, `FLUSHDB`, `SCRIPT LOAD`/`FLUSH`, `FUNCTION
//!   LOAD`/`FLUSH`/`DELETE`/`RESTORE` (the nodes' replies must agree),
//!   `CONFIG SET`/`RESETSTAT` (every node must say `OK`), `DBSIZE`
//!   (summed), `KEYS` (concatenated), `SCRIPT EXISTS` (a script exists
//!   only if every primary has it: `EVALSHA` may go to any of them).
//!   Other keyless commands go to one primary.
//! - **How the parts' replies merge** ([`Merge`], [`Gather`]).
//!
//! # Invariants
//!
//! - **One outcome, the first failure wins.** A part that fails (an
//!   [`Error`] or a server error reply) decides the outcome at once; the
//!   caller then cancels the other parts. Otherwise the merge runs when
//!   every part has replied, exactly once.
//! - **Order is the caller's**: `MGET`'s values come back in the order of
//!   its keys, duplicates included.
//! - **A reply of the wrong shape is a typed error**
//!   ([`ClusterFailure::BadPartReply`]), never a panic or a guess.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::keys::Args;
use super::redirect::ClusterFailure;
use super::slot::slot;
use crate::error::Error;
use crate::resp::{Frame, encode_command};

/// How the replies of a command's parts become one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    /// `MGET`: the parts' arrays, back in the caller's key order.
    InOrder,
    /// `MSET`, `CONFIG SET`: `OK` once every part said `OK`.
    AllOk,
    /// `DEL`, `EXISTS`, `UNLINK`, `TOUCH`, `DBSIZE`: the integers summed.
    Sum,
    /// `FLUSHALL`, `SCRIPT LOAD`, ...: the one reply every node gave.
    Agree,
    /// `KEYS`: the arrays concatenated.
    Concat,
    /// `SCRIPT EXISTS`: the arrays of 0/1, element by element, 1 only
    /// where every part said 1.
    All,
}

/// A cross-slot command, split per slot.
#[derive(Debug)]
pub(crate) struct Split {
    pub(crate) merge: Merge,
    /// Each part: its slot and its encoded command.
    pub(crate) parts: Vec<(u16, Bytes)>,
    /// Each part's keys: their positions among the caller's keys.
    pub(crate) order: Vec<Vec<usize>>,
}

/// The commands split per slot: name, arguments per key (the key, and its
/// value for `MSET`), merge.
const SPLIT: &[(&[u8], usize, Merge)] = &[
    (b"DEL", 1, Merge::Sum),
    (b"EXISTS", 1, Merge::Sum),
    (b"MGET", 1, Merge::InOrder),
    (b"MSET", 2, Merge::AllOk),
    (b"TOUCH", 1, Merge::Sum),
    (b"UNLINK", 1, Merge::Sum),
];

/// A command name, or the subcommands concerned.
type Names = &'static [&'static [u8]];

/// The keyless commands sent to every primary: name, the subcommands
/// concerned (empty: all), merge.
const FAN_OUT: &[(&[u8], Names, Merge)] = &[
    (b"CONFIG", &[b"RESETSTAT", b"SET"], Merge::AllOk),
    (b"DBSIZE", &[], Merge::Sum),
    (b"FLUSHALL", &[], Merge::Agree),
    (b"FLUSHDB", &[], Merge::Agree),
    (
        b"FUNCTION",
        &[b"DELETE", b"FLUSH", b"LOAD", b"RESTORE"],
        Merge::Agree,
    ),
    (b"KEYS", &[], Merge::Concat),
    (b"SCRIPT", &[b"FLUSH", b"LOAD"], Merge::Agree),
    (b"SCRIPT", &[b"EXISTS"], Merge::All),
];

/// The split of a command whose keys are in different slots: `None` when
/// it is not one the client splits (or its arguments are not whole
/// key/value pairs).
pub(crate) fn split(mut args: Args<'_>) -> Option<Split> {
    let name = args.next()?;
    let &(_, width, merge) = SPLIT.iter().find(|(n, ..)| n.eq_ignore_ascii_case(name))?;
    let rest: Vec<&[u8]> = args.collect();
    if rest.is_empty() || !rest.len().is_multiple_of(width) {
        return None;
    }
    // Slot → part, in the order the slots first appear.
    let mut index: BTreeMap<u16, usize> = BTreeMap::new();
    let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
    for (n, key) in rest.chunks(width).map(|c| c[0]).enumerate() {
        let s = slot(key);
        let at = *index.entry(s).or_insert_with(|| {
            groups.push((s, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(n);
    }
    let mut buf = BytesMut::new();
    let mut parts = Vec::with_capacity(groups.len());
    let mut order = Vec::with_capacity(groups.len());
    for (s, keys) in groups {
        let mut argv: Vec<&[u8]> = Vec::with_capacity(1 + keys.len() * width);
        argv.push(name);
        for &n in &keys {
            argv.extend_from_slice(&rest[n * width..(n + 1) * width]);
        }
        encode_command(&mut buf, &argv);
        parts.push((s, buf.split().freeze()));
        order.push(keys);
    }
    Some(Split {
        merge,
        parts,
        order,
    })
}

/// How a keyless command's replies merge when it goes to every primary:
/// `None` for a command that goes to one node.
pub(crate) fn fan_out(mut args: Args<'_>) -> Option<Merge> {
    let name = args.next()?;
    let sub = args.next();
    FAN_OUT
        .iter()
        .filter(|(n, ..)| n.eq_ignore_ascii_case(name))
        .find_map(|&(_, subcommands, merge)| {
            let concerned = subcommands.is_empty()
                || sub.is_some_and(|sub| subcommands.iter().any(|s| s.eq_ignore_ascii_case(sub)));
            concerned.then_some(merge)
        })
}

/// Collects the replies of a request's parts.
#[derive(Debug)]
pub(crate) struct Gather {
    merge: Merge,
    /// For [`Merge::InOrder`]: each part's keys among the caller's.
    order: Vec<Vec<usize>>,
    replies: Vec<Option<Frame>>,
    left: usize,
}

/// Where a [`Gather`] is after a part's outcome.
#[derive(Debug)]
pub(crate) enum Gathered {
    /// More parts to come.
    Waiting,
    /// The caller's outcome: the other parts are no longer needed.
    Done(Result<Frame, Error>),
}

impl Gather {
    /// Replies of `parts` parts, merged by `merge`; `order` as in
    /// [`Split::order`] (empty unless [`Merge::InOrder`]).
    pub(crate) fn new(merge: Merge, parts: usize, order: Vec<Vec<usize>>) -> Self {
        Self {
            merge,
            order,
            replies: vec![None; parts],
            left: parts,
        }
    }

    /// Part `part` completed. A second outcome of one part is ignored.
    pub(crate) fn add(&mut self, part: usize, result: Result<Frame, Error>) -> Gathered {
        let frame = match result {
            Err(error) => return Gathered::Done(Err(error)),
            Ok(frame) => frame,
        };
        if matches!(frame.without_attributes(), Frame::Error(_)) {
            return Gathered::Done(Ok(frame));
        }
        let Some(slot @ None) = self.replies.get_mut(part) else {
            return Gathered::Waiting;
        };
        *slot = Some(frame);
        self.left -= 1;
        if self.left > 0 {
            return Gathered::Waiting;
        }
        let replies: Vec<Frame> = self.replies.iter_mut().filter_map(Option::take).collect();
        Gathered::Done(merge(self.merge, &self.order, replies).map_err(Error::Cluster))
    }
}

/// The items of an array reply (a RESP3 set too).
fn items(frame: Frame) -> Option<Vec<Frame>> {
    match frame {
        Frame::Array(items) | Frame::Set(items) => Some(items),
        Frame::Attributed(a) => items(a.frame),
        _ => None,
    }
}

fn merge(merge: Merge, order: &[Vec<usize>], replies: Vec<Frame>) -> Result<Frame, ClusterFailure> {
    let bad = ClusterFailure::BadPartReply;
    match merge {
        Merge::InOrder => {
            let total = order.iter().map(Vec::len).sum();
            let mut out: Vec<Option<Frame>> = vec![None; total];
            for (reply, keys) in replies.into_iter().zip(order) {
                let values = items(reply).ok_or(bad)?;
                if values.len() != keys.len() {
                    return Err(bad);
                }
                for (value, &n) in values.into_iter().zip(keys) {
                    *out.get_mut(n).ok_or(bad)? = Some(value);
                }
            }
            out.into_iter()
                .collect::<Option<Vec<Frame>>>()
                .map(Frame::Array)
                .ok_or(bad)
        }
        Merge::Sum => replies
            .iter()
            .try_fold(0i64, |sum, reply| match reply.without_attributes() {
                Frame::Integer(n) => sum.checked_add(*n),
                _ => None,
            })
            .map(Frame::Integer)
            .ok_or(bad),
        Merge::AllOk | Merge::Agree => {
            let mut replies = replies.into_iter();
            let first = replies.next().ok_or(bad)?;
            if merge == Merge::Agree
                && replies.any(|r| r.without_attributes() != first.without_attributes())
            {
                return Err(ClusterFailure::Disagreement);
            }
            Ok(first)
        }
        Merge::Concat => {
            let mut all = Vec::new();
            for reply in replies {
                all.extend(items(reply).ok_or(bad)?);
            }
            Ok(Frame::Array(all))
        }
        Merge::All => {
            let mut all: Option<Vec<bool>> = None;
            for reply in replies {
                let flags = items(reply)
                    .ok_or(bad)?
                    .iter()
                    .map(|f| match f.without_attributes() {
                        Frame::Integer(0) | Frame::Boolean(false) => Some(false),
                        Frame::Integer(1) | Frame::Boolean(true) => Some(true),
                        _ => None,
                    })
                    .collect::<Option<Vec<bool>>>()
                    .ok_or(bad)?;
                match &mut all {
                    None => all = Some(flags),
                    Some(all) if all.len() == flags.len() => {
                        for (a, f) in all.iter_mut().zip(flags) {
                            *a &= f;
                        }
                    }
                    Some(_) => return Err(bad),
                }
            }
            let all = all.ok_or(bad)?;
            Ok(Frame::Array(
                all.into_iter()
                    .map(|a| Frame::Integer(i64::from(a)))
                    .collect(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::String;

    use super::*;
    use crate::cluster::args;

    fn encoded(words: &[&str]) -> Bytes {
        let mut buf = BytesMut::new();
        encode_command(&mut buf, words);
        buf.freeze()
    }

    fn words(bytes: &[u8]) -> Vec<String> {
        args(bytes)
            .expect("encoded")
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    fn bulk(s: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn mset_splits_into_pairs_per_slot_in_first_seen_order() {
        // `a` and `{a}x` share a slot; `b` is elsewhere.
        let cmd = encoded(&["mset", "a", "1", "b", "2", "{a}x", "3"]);
        let split = split(args(&cmd).expect("encoded")).expect("split");
        assert_eq!(split.merge, Merge::AllOk);
        let parts: Vec<(u16, Vec<String>)> =
            split.parts.iter().map(|(s, b)| (*s, words(b))).collect();
        assert_eq!(
            parts,
            [
                (
                    slot(b"a"),
                    ["mset", "a", "1", "{a}x", "3"].map(String::from).to_vec()
                ),
                (slot(b"b"), ["mset", "b", "2"].map(String::from).to_vec()),
            ]
        );
        assert_eq!(split.order, [vec![0, 2], vec![1]]);
    }

    #[test]
    fn only_the_listed_commands_split() {
        for words in [
            &["MSETNX", "a", "1", "b", "2"][..],
            &["RENAME", "a", "b"],
            &["MSET", "a", "1", "b"],
            &["MGET"],
        ] {
            let cmd = encoded(words);
            assert!(split(args(&cmd).expect("encoded")).is_none(), "{words:?}");
        }
        let cmd = encoded(&["Unlink", "a", "b", "c"]);
        let split = split(args(&cmd).expect("encoded")).expect("split");
        assert_eq!(split.merge, Merge::Sum);
        let keys: usize = split.order.iter().map(Vec::len).sum();
        assert_eq!(keys, 3);
    }

    #[test]
    fn fan_out_table() {
        let merge = |w: &[&str]| fan_out(args(&encoded(w)).expect("encoded"));
        assert_eq!(merge(&["flushall"]), Some(Merge::Agree));
        assert_eq!(merge(&["FLUSHDB", "ASYNC"]), Some(Merge::Agree));
        assert_eq!(merge(&["script", "load", "return 1"]), Some(Merge::Agree));
        assert_eq!(merge(&["SCRIPT", "EXISTS", "abc"]), Some(Merge::All));
        assert_eq!(merge(&["script", "flush"]), Some(Merge::Agree));
        assert_eq!(merge(&["CONFIG", "SET", "a", "b"]), Some(Merge::AllOk));
        assert_eq!(merge(&["config", "resetstat"]), Some(Merge::AllOk));
        assert_eq!(merge(&["CONFIG", "GET", "a"]), None);
        assert_eq!(merge(&["FUNCTION", "LOAD", "code"]), Some(Merge::Agree));
        assert_eq!(merge(&["FUNCTION", "LIST"]), None);
        assert_eq!(merge(&["DBSIZE"]), Some(Merge::Sum));
        assert_eq!(merge(&["KEYS", "*"]), Some(Merge::Concat));
        assert_eq!(merge(&["PING"]), None);
        assert_eq!(merge(&["SCRIPT"]), None);
    }

    #[test]
    fn mget_values_come_back_in_the_callers_order() {
        let mut gather = Gather::new(Merge::InOrder, 2, vec![vec![0, 2], vec![1]]);
        let second = Frame::Array(vec![bulk("b")]);
        assert!(matches!(gather.add(1, Ok(second)), Gathered::Waiting));
        let first = Frame::Array(vec![bulk("a"), Frame::Null]);
        let Gathered::Done(Ok(frame)) = gather.add(0, Ok(first)) else {
            panic!("done");
        };
        assert_eq!(frame, Frame::Array(vec![bulk("a"), bulk("b"), Frame::Null]));
    }

    #[test]
    fn a_short_array_is_a_typed_error() {
        let mut gather = Gather::new(Merge::InOrder, 1, vec![vec![0, 1]]);
        let Gathered::Done(result) = gather.add(0, Ok(Frame::Array(vec![bulk("a")]))) else {
            panic!("done");
        };
        assert_eq!(result, Err(Error::Cluster(ClusterFailure::BadPartReply)));
    }

    #[test]
    fn sums_and_their_overflow() {
        let mut gather = Gather::new(Merge::Sum, 3, Vec::new());
        assert!(matches!(
            gather.add(0, Ok(Frame::Integer(2))),
            Gathered::Waiting
        ));
        assert!(matches!(
            gather.add(0, Ok(Frame::Integer(9))),
            Gathered::Waiting
        ));
        assert!(matches!(
            gather.add(2, Ok(Frame::Integer(0))),
            Gathered::Waiting
        ));
        let Gathered::Done(result) = gather.add(1, Ok(Frame::Integer(5))) else {
            panic!("done");
        };
        assert_eq!(result, Ok(Frame::Integer(7)));
        let mut gather = Gather::new(Merge::Sum, 2, Vec::new());
        let _ = gather.add(0, Ok(Frame::Integer(i64::MAX)));
        let Gathered::Done(result) = gather.add(1, Ok(Frame::Integer(1))) else {
            panic!("done");
        };
        assert_eq!(result, Err(Error::Cluster(ClusterFailure::BadPartReply)));
    }

    #[test]
    fn the_first_failure_decides_at_once() {
        let mut gather = Gather::new(Merge::AllOk, 3, Vec::new());
        let ok = Frame::Simple(Bytes::from_static(b"OK"));
        assert!(matches!(gather.add(0, Ok(ok)), Gathered::Waiting));
        let oom = Frame::Error(Bytes::from_static(b"OOM no memory"));
        let Gathered::Done(result) = gather.add(2, Ok(oom.clone())) else {
            panic!("done");
        };
        assert_eq!(result, Ok(oom));
        let mut gather = Gather::new(Merge::Concat, 2, Vec::new());
        let Gathered::Done(result) = gather.add(1, Err(Error::Timeout)) else {
            panic!("done");
        };
        assert_eq!(result, Err(Error::Timeout));
    }

    #[test]
    fn agreeing_replies_and_a_disagreement() {
        let mut gather = Gather::new(Merge::Agree, 2, Vec::new());
        let _ = gather.add(0, Ok(bulk("sha")));
        let Gathered::Done(result) = gather.add(1, Ok(bulk("sha"))) else {
            panic!("done");
        };
        assert_eq!(result, Ok(bulk("sha")));
        let mut gather = Gather::new(Merge::Agree, 2, Vec::new());
        let _ = gather.add(0, Ok(bulk("sha")));
        let Gathered::Done(result) = gather.add(1, Ok(bulk("other"))) else {
            panic!("done");
        };
        assert_eq!(result, Err(Error::Cluster(ClusterFailure::Disagreement)));
    }

    #[test]
    fn script_exists_is_one_only_where_every_primary_has_the_script() {
        let flags = |f: &[i64]| Frame::Array(f.iter().map(|&n| Frame::Integer(n)).collect());
        let mut gather = Gather::new(Merge::All, 3, Vec::new());
        let _ = gather.add(0, Ok(flags(&[1, 1, 0])));
        let resp3 = Frame::Array(vec![
            Frame::Boolean(true),
            Frame::Boolean(false),
            Frame::Boolean(false),
        ]);
        let _ = gather.add(1, Ok(resp3));
        let Gathered::Done(result) = gather.add(2, Ok(flags(&[1, 1, 1]))) else {
            panic!("done");
        };
        assert_eq!(result, Ok(flags(&[1, 0, 0])));
        // Arrays of different lengths, or not 0/1: the shape is wrong.
        for odd in [flags(&[1]), flags(&[1, 2]), bulk("1")] {
            let mut gather = Gather::new(Merge::All, 2, Vec::new());
            let _ = gather.add(0, Ok(flags(&[1, 1])));
            let Gathered::Done(result) = gather.add(1, Ok(odd)) else {
                panic!("done");
            };
            assert_eq!(result, Err(Error::Cluster(ClusterFailure::BadPartReply)));
        }
    }

    #[test]
    fn keys_concatenate() {
        let mut gather = Gather::new(Merge::Concat, 2, Vec::new());
        let _ = gather.add(0, Ok(Frame::Array(vec![bulk("a")])));
        let Gathered::Done(result) = gather.add(1, Ok(Frame::Array(vec![bulk("b"), bulk("c")])))
        else {
            panic!("done");
        };
        assert_eq!(
            result,
            Ok(Frame::Array(vec![bulk("a"), bulk("b"), bulk("c")]))
        );
    }
}
