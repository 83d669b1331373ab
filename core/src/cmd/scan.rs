//! The `SCAN` family, and [`ScanState`]: the cursor loop, sans-IO.
//!
//! A scan is a series of commands, each with the cursor the previous reply
//! returned, until the server returns cursor 0. Adapters turn a
//! [`ScanState`] into an iterator (std) or a stream (smol).

use alloc::vec::Vec;
use bytes::Bytes;

use super::builder::Cmd;
use crate::resp::ToArg;

/// The options of the scan commands, for [`scan_with`], [`hscan_with`],
/// [`sscan_with`] and [`zscan_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[must_use]
pub struct ScanOptions<'a> {
    pattern: Option<&'a [u8]>,
    count: Option<u64>,
    type_: Option<&'a [u8]>,
}

impl<'a> ScanOptions<'a> {
    /// No options.
    pub const fn new() -> Self {
        Self {
            pattern: None,
            count: None,
            type_: None,
        }
    }

    /// `MATCH pattern`: only elements matching the glob pattern (filtered
    /// after the walk: a page may be empty while the scan is not done).
    pub fn match_<P: AsRef<[u8]> + ?Sized>(mut self, pattern: &'a P) -> Self {
        self.pattern = Some(pattern.as_ref());
        self
    }

    /// `COUNT n`: how much work each call does (a hint, not a page size).
    pub const fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }

    /// `TYPE type`: only keys of this type (`string`, `hash`, ...). `SCAN`
    /// only.
    pub fn type_<P: AsRef<[u8]> + ?Sized>(mut self, type_: &'a P) -> Self {
        self.type_ = Some(type_.as_ref());
        self
    }

    fn write<T>(self, mut cmd: Cmd<T>) -> Cmd<T> {
        if let Some(pattern) = self.pattern {
            cmd = cmd.arg("MATCH").arg(pattern);
        }
        if let Some(count) = self.count {
            cmd = cmd.arg("COUNT").arg(count);
        }
        if let Some(type_) = self.type_ {
            cmd = cmd.arg("TYPE").arg(type_);
        }
        cmd
    }
}

/// `SCAN cursor`: the next cursor and a page of keys.
pub fn scan(cursor: u64) -> Cmd<(u64, Vec<Bytes>)> {
    scan_with(cursor, ScanOptions::new())
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`.
pub fn scan_with(cursor: u64, options: ScanOptions<'_>) -> Cmd<(u64, Vec<Bytes>)> {
    options.write(Cmd::named("SCAN").arg(cursor).read_only())
}

/// `HSCAN key cursor`: the next cursor and a page of fields and values.
pub fn hscan(key: impl ToArg, cursor: u64) -> Cmd<(u64, Vec<(Bytes, Bytes)>)> {
    hscan_with(key, cursor, ScanOptions::new())
}

/// `HSCAN key cursor [MATCH pattern] [COUNT n]`.
pub fn hscan_with(
    key: impl ToArg,
    cursor: u64,
    options: ScanOptions<'_>,
) -> Cmd<(u64, Vec<(Bytes, Bytes)>)> {
    options.write(Cmd::named("HSCAN").key(key).arg(cursor).read_only())
}

/// `SSCAN key cursor`: the next cursor and a page of members.
pub fn sscan(key: impl ToArg, cursor: u64) -> Cmd<(u64, Vec<Bytes>)> {
    sscan_with(key, cursor, ScanOptions::new())
}

/// `SSCAN key cursor [MATCH pattern] [COUNT n]`.
pub fn sscan_with(
    key: impl ToArg,
    cursor: u64,
    options: ScanOptions<'_>,
) -> Cmd<(u64, Vec<Bytes>)> {
    options.write(Cmd::named("SSCAN").key(key).arg(cursor).read_only())
}

/// `ZSCAN key cursor`: the next cursor and a page of members and scores.
pub fn zscan(key: impl ToArg, cursor: u64) -> Cmd<(u64, Vec<(Bytes, f64)>)> {
    zscan_with(key, cursor, ScanOptions::new())
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT n]`.
pub fn zscan_with(
    key: impl ToArg,
    cursor: u64,
    options: ScanOptions<'_>,
) -> Cmd<(u64, Vec<(Bytes, f64)>)> {
    options.write(Cmd::named("ZSCAN").key(key).arg(cursor).read_only())
}

/// The state of a scan: its command and the cursor to send next.
///
/// Built from any scan command (`SCAN`, `HSCAN`, `SSCAN`, `ZSCAN`, typed or
/// [`Cmd::new`]): the cursor is the argument after the name (`SCAN`) or
/// after the key (the others), and every other argument is kept as is.
/// The loop: ask [`ScanState::next_cmd`], send it, [`ScanState::feed`] the
/// converted reply, until `next_cmd` says `None`. Elements may come more
/// than once (the server only promises that every element present for the
/// whole scan comes at least once).
///
/// ```
/// use redpoll_core::cmd::{self, ScanOptions, ScanState};
///
/// let mut scan = ScanState::new(cmd::scan_with(0, ScanOptions::new().match_("user:*")));
/// while let Some(cmd) = scan.next_cmd() {
///     // Send `cmd`, convert its reply with `cmd.decode(frame)?`...
///     let reply = (0, vec![bytes::Bytes::from_static(b"user:1")]);
///     for key in scan.feed(reply) {
///         // ...and use the page.
///         # let _ = key;
///     }
/// }
/// assert!(scan.is_done());
/// ```
#[derive(Debug, Clone)]
pub struct ScanState<T> {
    /// The arguments before the cursor: the name and, but for `SCAN`, the key.
    head: Cmd<(u64, Vec<T>)>,
    /// The arguments after the cursor: the options.
    tail: Cmd<(u64, Vec<T>)>,
    cursor: u64,
    done: bool,
}

impl<T> ScanState<T> {
    /// A scan starting with `cmd` (and its cursor, normally 0).
    pub fn new(cmd: Cmd<(u64, Vec<T>)>) -> Self {
        let at = if cmd.name().eq_ignore_ascii_case(b"SCAN") {
            1
        } else {
            2
        };
        let cursor = cmd
            .argv()
            .nth(at)
            .and_then(|c| core::str::from_utf8(c).ok())
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Self {
            head: cmd.head(at),
            tail: cmd.tail(at + 1),
            cursor,
            done: false,
        }
    }

    /// The command to send next, `None` when the scan is complete.
    #[must_use]
    pub fn next_cmd(&self) -> Option<Cmd<(u64, Vec<T>)>> {
        if self.done {
            return None;
        }
        Some(self.head.clone().arg(self.cursor).append(&self.tail))
    }

    /// Takes the reply to the last command: keeps its cursor and gives back
    /// its page. A cursor of 0 completes the scan.
    pub fn feed(&mut self, reply: (u64, Vec<T>)) -> Vec<T> {
        let (cursor, page) = reply;
        self.cursor = cursor;
        self.done = cursor == 0;
        page
    }

    /// The cursor the next command will carry.
    #[must_use]
    pub const fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Whether the server returned cursor 0: the scan is complete.
    #[must_use]
    pub const fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::cmd::strings::tests::{argv, keys_of, wire};
    use crate::resp::Frame;

    fn b(s: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn encodes() {
        assert_eq!(wire(&scan(0)), b"*2\r\n$4\r\nSCAN\r\n$1\r\n0\r\n");
        assert_eq!(
            argv(&scan_with(
                7,
                ScanOptions::new().match_("u:*").count(100).type_("hash")
            )),
            ["SCAN", "7", "MATCH", "u:*", "COUNT", "100", "TYPE", "hash"]
        );
        assert_eq!(argv(&hscan("h", 0)), ["HSCAN", "h", "0"]);
        assert_eq!(
            argv(&hscan_with("h", 3, ScanOptions::new().match_(b"f*"))),
            ["HSCAN", "h", "3", "MATCH", "f*"]
        );
        assert_eq!(argv(&sscan("s", 0)), ["SSCAN", "s", "0"]);
        assert_eq!(
            argv(&sscan_with("s", 0, ScanOptions::new().count(5))),
            ["SSCAN", "s", "0", "COUNT", "5"]
        );
        assert_eq!(argv(&zscan("z", 0)), ["ZSCAN", "z", "0"]);
        assert_eq!(
            argv(&zscan_with("z", 1, ScanOptions::default())),
            ["ZSCAN", "z", "1"]
        );
    }

    #[test]
    fn keys_and_flags() {
        assert!(keys_of(&scan(0)).is_empty());
        assert_eq!(keys_of(&hscan("h", 0)), ["h"]);
        assert_eq!(keys_of(&sscan("s", 0)), ["s"]);
        assert_eq!(keys_of(&zscan("z", 0)), ["z"]);
        assert!(scan(0).is_read_only());
        assert!(hscan("h", 0).is_read_only());
        assert!(sscan("s", 0).is_read_only());
        assert!(zscan("z", 0).is_read_only());
    }

    #[test]
    fn replies_convert() {
        let reply = Frame::Array(vec![b("17"), Frame::Array(vec![b("f"), b("v")])]);
        assert_eq!(
            hscan("h", 0).decode(reply.clone()),
            Ok((
                17,
                vec![(Bytes::from_static(b"f"), Bytes::from_static(b"v"))]
            ))
        );
        assert_eq!(
            scan(0).decode(reply),
            Ok((17, vec![Bytes::from_static(b"f"), Bytes::from_static(b"v")]))
        );
        assert_eq!(
            zscan("z", 0).decode(Frame::Array(vec![
                b("0"),
                Frame::Array(vec![b("m"), b("1.5")])
            ])),
            Ok((0, vec![(Bytes::from_static(b"m"), 1.5)]))
        );
    }

    #[test]
    fn state_walks_the_cursor_and_keeps_options() {
        let mut state = ScanState::new(scan_with(0, ScanOptions::new().match_("k*").count(10)));
        let first = state.next_cmd().unwrap();
        assert_eq!(argv(&first), ["SCAN", "0", "MATCH", "k*", "COUNT", "10"]);
        assert!(first.is_read_only());
        assert_eq!(
            state.feed((42, vec![Bytes::from_static(b"k1")])),
            [Bytes::from_static(b"k1")]
        );
        assert_eq!(state.cursor(), 42);
        assert!(!state.is_done());
        let second = state.next_cmd().unwrap();
        assert_eq!(argv(&second), ["SCAN", "42", "MATCH", "k*", "COUNT", "10"]);
        assert_eq!(
            wire(&second),
            b"*6\r\n$4\r\nSCAN\r\n$2\r\n42\r\n$5\r\nMATCH\r\n$2\r\nk*\r\n$5\r\nCOUNT\r\n$2\r\n10\r\n"
        );
        assert!(state.feed((0, vec![])).is_empty());
        assert!(state.is_done());
        assert!(state.next_cmd().is_none());
    }

    #[test]
    fn state_of_a_keyed_scan_keeps_the_key() {
        let mut state = ScanState::new(hscan_with("h", 0, ScanOptions::new().count(2)));
        state.feed((9, vec![]));
        let next = state.next_cmd().unwrap();
        assert_eq!(argv(&next), ["HSCAN", "h", "9", "COUNT", "2"]);
        assert_eq!(keys_of(&next), ["h"]);
    }

    #[test]
    fn state_starts_from_the_given_cursor_and_from_raw_commands() {
        let state = ScanState::new(sscan("s", 5));
        assert_eq!(state.cursor(), 5);
        let raw = Cmd::new("scan")
            .arg(3)
            .arg("COUNT")
            .arg(1)
            .returning::<(u64, Vec<Bytes>)>();
        let state = ScanState::new(raw);
        assert_eq!(
            argv(&state.next_cmd().unwrap()),
            ["scan", "3", "COUNT", "1"]
        );
        // No cursor at all: one is put where it belongs.
        let state = ScanState::new(Cmd::new("SCAN").returning::<(u64, Vec<Bytes>)>());
        assert_eq!(argv(&state.next_cmd().unwrap()), ["SCAN", "0"]);
    }
}
