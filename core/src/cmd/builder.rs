//! [`Cmd`]: one command with its arguments already encoded, and the type its
//! reply converts to.

use alloc::vec::Vec;
use bytes::BytesMut;
use core::fmt;
use core::marker::PhantomData;
use core::ops::Range;

use super::reply::{FromFrame, ReplyError};
use crate::command::Command;
use crate::resp::{Frame, ToArg, decimal_len, write_header};
use crate::time::Duration;

/// What [`Cmd::block_timeout`] answers for a blocking command whose timeout
/// is 0 ("block forever"), or unreadable (the server then refuses the
/// command at once, so no client-side deadline should fire first).
///
/// Adapters add it to `now` with a saturating addition
/// ([`Instant::saturating_add`](crate::Instant::saturating_add) does).
pub const BLOCK_FOREVER: Duration = Duration::MAX;

/// A command that knows the type of its reply.
///
/// The arguments are kept already encoded as RESP bulk strings, so writing
/// the command into a connection's buffer is one array header and one copy.
/// `T` only names what the reply converts to ([`FromFrame`]); it is not
/// stored. Build one with a typed builder of [`cmd`](super) (`cmd::get`,
/// `cmd::hset`, ...) or, for any other command, with [`Cmd::new`] (or
/// [`cmd::cmd`](super::cmd)) and [`Cmd::arg`] / [`Cmd::key`].
///
/// ```
/// use redpoll_core::cmd::{self, Cmd};
/// use redpoll_core::command::Command;
///
/// let get = cmd::get("user:1");
/// assert_eq!(get.name(), b"GET");
/// assert_eq!(get.keys().collect::<Vec<_>>(), [b"user:1"]);
/// assert!(get.is_read_only());
///
/// let raw = Cmd::new("OBJECT").arg("ENCODING").key("user:1").returning::<String>();
/// let mut buf = bytes::BytesMut::new();
/// raw.encode(&mut buf);
/// assert_eq!(&buf[..], b"*3\r\n$6\r\nOBJECT\r\n$8\r\nENCODING\r\n$6\r\nuser:1\r\n");
/// ```
///
/// # What the metadata is for
///
/// - [`Cmd::keys`]: the cluster router hashes them to a slot.
/// - [`Cmd::block_timeout`]: a blocking command's response deadline must be
///   extended by its block time.
/// - [`Cmd::is_read_only`]: whether a retry after a lost reply is harmless.
/// - [`Cmd::reply_kind`]: subscription commands are confirmed by push
///   frames, not by replies.
#[must_use = "a command does nothing until it is sent"]
pub struct Cmd<T = Frame> {
    /// The arguments, the name first, each as `$len\r\npayload\r\n`.
    args: BytesMut,
    argc: usize,
    /// Where the payloads of the key arguments are in `args`.
    keys: Spans,
    read_only: bool,
    reply: PhantomData<fn() -> T>,
}

/// The byte ranges of the key arguments. Nearly every command has at most
/// one key, so the first is held inline and only more keys allocate.
#[derive(Debug, Clone, Default)]
struct Spans {
    first: Option<Range<usize>>,
    more: Vec<Range<usize>>,
}

impl Spans {
    fn push(&mut self, span: Range<usize>) {
        if self.first.is_none() {
            self.first = Some(span);
        } else {
            self.more.push(span);
        }
    }

    fn iter(&self) -> impl Iterator<Item = Range<usize>> + Clone + '_ {
        self.first.iter().chain(&self.more).cloned()
    }
}

pub use crate::command::{ReplyKind, SubscriptionKind};

impl Cmd {
    /// A command named `name`, with no arguments yet, whose reply is kept as
    /// a [`Frame`] (change it with [`Cmd::returning`]).
    ///
    /// This is the escape hatch for commands without a typed builder: mark
    /// its key arguments with [`Cmd::key`], and with [`Cmd::read_only`] a
    /// command that writes nothing, or the cluster router and the retry
    /// decision will not know.
    pub fn new(name: impl ToArg) -> Self {
        Self::named(name)
    }
}

impl<T> Cmd<T> {
    /// A command named `name` replying with `T`.
    pub(super) fn named(name: impl ToArg) -> Self {
        let mut args = BytesMut::with_capacity(64);
        name.write_arg(&mut args);
        Self {
            args,
            argc: 1,
            keys: Spans::default(),
            read_only: false,
            reply: PhantomData,
        }
    }

    /// A command with no arguments at all, not even a name: only meant to
    /// be [`appended`](Self::append) to another command.
    pub(super) fn empty() -> Self {
        Self {
            args: BytesMut::new(),
            argc: 0,
            keys: Spans::default(),
            read_only: false,
            reply: PhantomData,
        }
    }

    /// Appends an argument.
    pub fn arg(mut self, arg: impl ToArg) -> Self {
        self.push_arg(arg);
        self
    }

    /// Appends every argument of `args`.
    pub fn args<A: ToArg>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        for arg in args {
            self.push_arg(arg);
        }
        self
    }

    /// Appends an argument that is a key (see [`Cmd::keys`]).
    pub fn key(mut self, key: impl ToArg) -> Self {
        self.push_key(key);
        self
    }

    /// Marks the command as read-only (see [`Cmd::is_read_only`]).
    pub const fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The same command, with its reply converted to `U` instead.
    pub fn returning<U>(self) -> Cmd<U> {
        Cmd {
            args: self.args,
            argc: self.argc,
            keys: self.keys,
            read_only: self.read_only,
            reply: PhantomData,
        }
    }

    /// Converts a reply frame of this command to `T`: [`reply`](super::reply)
    /// with the command's reply type.
    ///
    /// # Errors
    ///
    /// As [`reply`](super::reply): the server's error reply, or a frame that
    /// does not convert to `T`.
    pub fn decode(&self, frame: Frame) -> Result<T, ReplyError>
    where
        T: FromFrame,
    {
        T::from_frame(frame)
    }

    /// The command name, as it was given (case preserved).
    #[must_use]
    pub fn name(&self) -> &[u8] {
        self.argv().next().unwrap_or_default()
    }

    /// The number of arguments, the name included.
    #[must_use]
    pub const fn argc(&self) -> usize {
        self.argc
    }

    /// The arguments, the name first.
    pub fn argv(&self) -> impl Iterator<Item = &[u8]> + Clone + '_ {
        let mut at = 0;
        (0..self.argc).map_while(move |_| {
            let (payload, next) = bulk_at(&self.args, at)?;
            at = next;
            Some(&self.args[payload])
        })
    }

    /// The key arguments, in order: what the cluster router hashes.
    ///
    /// The typed builders record them; a command built with [`Cmd::new`]
    /// has the keys added with [`Cmd::key`].
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> + Clone + '_ {
        self.keys.iter().map(|span| &self.args[span])
    }

    /// Whether the command changes nothing on the server (`GET`, `HGETALL`,
    /// `SCAN`, `PING`, ...): retrying it after its reply was lost is
    /// harmless, and it may be served by a replica.
    ///
    /// Set by the typed builders; [`Cmd::read_only`] sets it on any command.
    #[must_use]
    pub const fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// How long the server may hold the reply back, for the blocking
    /// commands: `BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH`, `BLMPOP`,
    /// `BZPOPMIN`, `BZPOPMAX`, `BZMPOP`, `XREAD` and `XREADGROUP` with
    /// `BLOCK`, `WAIT`, `WAITAOF`. `None` for every other command.
    ///
    /// It is read from the command's own arguments (so commands built with
    /// [`Cmd::new`] are covered too). A timeout of 0, meaning "block
    /// forever", is [`BLOCK_FOREVER`].
    #[must_use]
    pub fn block_timeout(&self) -> Option<Duration> {
        let mut argv = self.argv();
        let name = argv.next()?;
        // Asked for every command sent: most are rejected by their first
        // letter.
        if !matches!(
            name.first().map(u8::to_ascii_uppercase),
            Some(b'B' | b'W' | b'X')
        ) {
            return None;
        }
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if is(b"BLPOP")
            || is(b"BRPOP")
            || is(b"BZPOPMIN")
            || is(b"BZPOPMAX")
            || is(b"BLMOVE")
            || is(b"BRPOPLPUSH")
        {
            Some(seconds(argv.last()))
        } else if is(b"BLMPOP") || is(b"BZMPOP") {
            Some(seconds(argv.next()))
        } else if is(b"WAIT") {
            Some(millis(argv.nth(1)))
        } else if is(b"WAITAOF") {
            Some(millis(argv.nth(2)))
        } else if is(b"XREAD") || is(b"XREADGROUP") {
            // Options come before STREAMS; what follows it are keys and ids,
            // and a key may well be named BLOCK.
            while let Some(arg) = argv.next() {
                let is_opt = |n: &[u8]| arg.eq_ignore_ascii_case(n);
                if is_opt(b"STREAMS") {
                    break;
                } else if is_opt(b"BLOCK") {
                    return Some(millis(argv.next()));
                } else if is_opt(b"COUNT") {
                    argv.next();
                } else if is_opt(b"GROUP") {
                    argv.nth(1);
                }
            }
            None
        } else {
            None
        }
    }

    /// Whether this is a blocking command ([`Cmd::block_timeout`] is set).
    #[must_use]
    pub fn is_blocking(&self) -> bool {
        self.block_timeout().is_some()
    }

    /// Whether the command is answered by a reply or by pub/sub
    /// confirmations; read from its name.
    #[must_use]
    pub fn reply_kind(&self) -> ReplyKind {
        let name = self.name();
        if !matches!(
            name.first().map(u8::to_ascii_uppercase),
            Some(b'S' | b'P' | b'U')
        ) {
            return ReplyKind::Reply;
        }
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if is(b"SUBSCRIBE") {
            ReplyKind::Subscribe(SubscriptionKind::Channel)
        } else if is(b"PSUBSCRIBE") {
            ReplyKind::Subscribe(SubscriptionKind::Pattern)
        } else if is(b"SSUBSCRIBE") {
            ReplyKind::Subscribe(SubscriptionKind::Shard)
        } else if is(b"UNSUBSCRIBE") {
            ReplyKind::Unsubscribe(SubscriptionKind::Channel)
        } else if is(b"PUNSUBSCRIBE") {
            ReplyKind::Unsubscribe(SubscriptionKind::Pattern)
        } else if is(b"SUNSUBSCRIBE") {
            ReplyKind::Unsubscribe(SubscriptionKind::Shard)
        } else {
            ReplyKind::Reply
        }
    }

    /// The number of bytes [`Command::encode`] writes.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        1 + decimal_len(self.argc as u64) + 2 + self.args.len()
    }

    fn push_arg(&mut self, arg: impl ToArg) -> usize {
        let start = self.args.len();
        arg.write_arg(&mut self.args);
        self.argc += 1;
        start
    }

    pub(super) fn push_key(&mut self, key: impl ToArg) {
        let start = self.push_arg(key);
        // A `ToArg` that wrote something else than one bulk string has
        // broken the command anyway; it simply records no key.
        if let Some((payload, _)) = bulk_at(&self.args, start) {
            self.keys.push(payload);
        }
    }

    pub(super) fn push_keys<K: ToArg>(&mut self, keys: impl IntoIterator<Item = K>) {
        for key in keys {
            self.push_key(key);
        }
    }

    /// Appends the arguments of `other`, its keys included.
    pub(super) fn append<U>(mut self, other: &Cmd<U>) -> Self {
        let shift = self.args.len();
        self.args.extend_from_slice(&other.args);
        self.argc += other.argc;
        for span in other.keys.iter() {
            self.keys.push(span.start + shift..span.end + shift);
        }
        self
    }

    /// The arguments `from..` (by index, the name being 0) as a command of
    /// their own, their keys included. Its first argument is not a name: it
    /// is only meant to be [`appended`](Self::append) to another command.
    pub(super) fn tail(&self, from: usize) -> Self {
        let offset = self.arg_offset(from);
        let mut tail = Self {
            args: BytesMut::from(&self.args[offset..]),
            argc: self.argc.saturating_sub(from),
            keys: Spans::default(),
            read_only: self.read_only,
            reply: PhantomData,
        };
        for span in self.keys.iter().filter(|s| s.start >= offset) {
            tail.keys.push(span.start - offset..span.end - offset);
        }
        tail
    }

    /// The first `n` arguments as a command of their own, keys included.
    pub(super) fn head(&self, n: usize) -> Self {
        let offset = self.arg_offset(n);
        let mut head = Self {
            args: BytesMut::from(&self.args[..offset]),
            argc: n.min(self.argc),
            keys: Spans::default(),
            read_only: self.read_only,
            reply: PhantomData,
        };
        for span in self.keys.iter().filter(|s| s.end <= offset) {
            head.keys.push(span);
        }
        head
    }

    /// Where argument `index` starts in `args` (the end when there are not
    /// that many).
    fn arg_offset(&self, index: usize) -> usize {
        let mut at = 0;
        for _ in 0..index {
            match bulk_at(&self.args, at) {
                Some((_, next)) => at = next,
                None => return self.args.len(),
            }
        }
        at
    }
}

impl<T> Command for Cmd<T> {
    fn block_timeout(&self) -> Option<Duration> {
        Self::block_timeout(self)
    }

    fn reply_kind(&self) -> ReplyKind {
        Self::reply_kind(self)
    }

    fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        write_header(dst, b'*', self.argc);
        dst.extend_from_slice(&self.args);
    }
}

impl<T> Clone for Cmd<T> {
    fn clone(&self) -> Self {
        Self {
            args: self.args.clone(),
            argc: self.argc,
            keys: self.keys.clone(),
            read_only: self.read_only,
            reply: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Cmd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Arg<'a>(&'a [u8]);
        impl fmt::Debug for Arg<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "\"{}\"", self.0.escape_ascii())
            }
        }
        f.debug_tuple("Cmd")
            .field(&DebugList(self.argv().map(Arg)))
            .finish()
    }
}

/// Debug-prints an iterator as a list, without collecting it.
struct DebugList<I>(I);

impl<I: Iterator<Item = D> + Clone, D: fmt::Debug> fmt::Debug for DebugList<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.clone()).finish()
    }
}

/// Parses the bulk string `$len\r\npayload\r\n` at `at`: the payload's range
/// and where the next argument starts. `None` when there is none there.
fn bulk_at(buf: &[u8], at: usize) -> Option<(Range<usize>, usize)> {
    let rest = buf.get(at..)?;
    if rest.first() != Some(&b'$') {
        return None;
    }
    let digits = rest.get(1..)?;
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let mut len = 0usize;
    for &d in &digits[..n] {
        len = len.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
    }
    let start = at + 1 + n + 2;
    let end = start.checked_add(len)?;
    if buf.get(at + 1 + n..start)? != b"\r\n" || buf.get(end..end + 2)? != b"\r\n" {
        return None;
    }
    Some((start..end, end + 2))
}

/// A timeout argument in seconds (`BLPOP`, ...), 0 meaning forever.
fn seconds(arg: Option<&[u8]>) -> Duration {
    arg.and_then(|a| core::str::from_utf8(a).ok())
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|&s| s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(BLOCK_FOREVER)
}

/// A timeout argument in milliseconds (`WAIT`, `XREAD BLOCK`), 0 meaning
/// forever.
fn millis(arg: Option<&[u8]>) -> Duration {
    arg.and_then(|a| core::str::from_utf8(a).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map_or(BLOCK_FOREVER, Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;

    fn encoded<T>(cmd: &Cmd<T>) -> Vec<u8> {
        let mut buf = BytesMut::new();
        cmd.encode(&mut buf);
        assert_eq!(buf.len(), cmd.encoded_len());
        buf.to_vec()
    }

    #[test]
    fn encodes_header_and_arguments() {
        let cmd = Cmd::new("SET")
            .key("k")
            .arg(b"v")
            .arg(10u64)
            .arg(-1i64)
            .arg(1.5f64);
        assert_eq!(
            encoded(&cmd),
            b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\n10\r\n$2\r\n-1\r\n$3\r\n1.5\r\n"
        );
        assert_eq!(cmd.argc(), 6);
        assert_eq!(cmd.name(), b"SET");
    }

    #[test]
    fn encodes_many_arguments() {
        let cmd = Cmd::new("DEL").args((0..120).map(|i| format!("k{i}")));
        let bytes = encoded(&cmd);
        assert!(bytes.starts_with(b"*121\r\n$3\r\nDEL\r\n$2\r\nk0\r\n"));
        assert_eq!(cmd.argv().count(), 121);
    }

    #[test]
    fn argv_and_keys() {
        let cmd = Cmd::new("RENAME").key("from").key(b"to\r\n").arg("x");
        assert_eq!(
            cmd.argv().collect::<Vec<_>>(),
            [&b"RENAME"[..], b"from", b"to\r\n", b"x"]
        );
        assert_eq!(cmd.keys().collect::<Vec<_>>(), [&b"from"[..], b"to\r\n"]);
        assert_eq!(Cmd::new("PING").keys().count(), 0);
    }

    #[test]
    fn returning_and_read_only_keep_the_arguments() {
        let cmd = Cmd::new("GET").key("k").read_only().returning::<i64>();
        assert!(cmd.is_read_only());
        assert_eq!(cmd.keys().collect::<Vec<_>>(), [b"k"]);
        assert_eq!(cmd.decode(Frame::Integer(3)), Ok(3));
        assert!(!Cmd::new("SET").is_read_only());
    }

    #[test]
    fn head_tail_and_append_move_keys() {
        let cmd = Cmd::new("X").key("a").arg("b").key("c");
        let head = cmd.head(2);
        let tail = cmd.tail(2);
        assert_eq!(head.argv().collect::<Vec<_>>(), [&b"X"[..], b"a"]);
        assert_eq!(head.keys().collect::<Vec<_>>(), [b"a"]);
        assert_eq!(tail.argv().collect::<Vec<_>>(), [&b"b"[..], b"c"]);
        assert_eq!(tail.keys().collect::<Vec<_>>(), [b"c"]);
        let joined = head.arg("z").append(&tail);
        assert_eq!(
            joined.argv().collect::<Vec<_>>(),
            [&b"X"[..], b"a", b"z", b"b", b"c"]
        );
        assert_eq!(joined.keys().collect::<Vec<_>>(), [b"a", b"c"]);
        assert_eq!(cmd.tail(9).argc(), 0);
        assert_eq!(cmd.head(9).argc(), 4);
    }

    #[test]
    fn block_timeouts_of_escape_hatch_commands() {
        let t = |cmd: Cmd| cmd.block_timeout();
        assert_eq!(
            t(Cmd::new("blpop").key("a").key("b").arg(1.5)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(t(Cmd::new("BRPOP").key("a").arg(0)), Some(BLOCK_FOREVER));
        assert_eq!(
            t(Cmd::new("BLPOP").key("a").arg("soon")),
            Some(BLOCK_FOREVER)
        );
        assert_eq!(t(Cmd::new("BLPOP").key("a").arg(-1)), Some(BLOCK_FOREVER));
        assert_eq!(
            t(Cmd::new("BLMPOP").arg(2).arg(1).key("l").arg("LEFT")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            t(Cmd::new("BZMPOP").arg(0.25).arg(1).key("z").arg("MIN")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            t(Cmd::new("WAIT").arg(1).arg(100)),
            Some(Duration::from_millis(100))
        );
        assert_eq!(t(Cmd::new("WAIT").arg(1).arg(0)), Some(BLOCK_FOREVER));
        assert_eq!(
            t(Cmd::new("WAITAOF").arg(1).arg(0).arg(70)),
            Some(Duration::from_millis(70))
        );
        assert_eq!(
            t(Cmd::new("XREAD")
                .arg("COUNT")
                .arg(5)
                .arg("BLOCK")
                .arg(300)
                .arg("STREAMS")
                .key("s")
                .arg("$")),
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            t(Cmd::new("XREADGROUP")
                .arg("GROUP")
                .arg("BLOCK")
                .arg("COUNT")
                .arg("BLOCK")
                .arg(0)
                .arg("STREAMS")
                .key("s")
                .arg(">")),
            Some(BLOCK_FOREVER)
        );
        // A stream key named BLOCK is not the option.
        assert_eq!(
            t(Cmd::new("XREAD").arg("STREAMS").key("BLOCK").arg(5)),
            None
        );
        assert_eq!(t(Cmd::new("GET").key("k")), None);
        assert!(!Cmd::new("LPOP").key("k").is_blocking());
        assert!(Cmd::new("BLPOP").key("k").arg(1).is_blocking());
    }

    #[test]
    fn reply_kinds() {
        assert_eq!(Cmd::new("GET").reply_kind(), ReplyKind::Reply);
        assert_eq!(
            Cmd::new("subscribe").arg("c").reply_kind(),
            ReplyKind::Subscribe(SubscriptionKind::Channel)
        );
        assert_eq!(
            Cmd::new("PUNSUBSCRIBE").reply_kind(),
            ReplyKind::Unsubscribe(SubscriptionKind::Pattern)
        );
        assert_eq!(
            Cmd::new("SSUBSCRIBE").reply_kind(),
            ReplyKind::Subscribe(SubscriptionKind::Shard)
        );
    }

    #[test]
    fn malformed_to_arg_records_no_key_and_never_panics() {
        struct Two;
        impl ToArg for Two {
            fn write_arg(&self, dst: &mut BytesMut) {
                dst.extend_from_slice(b"+not a bulk\r\n");
            }
        }
        let cmd = Cmd::new("X").key(Two).arg("y");
        assert_eq!(cmd.keys().count(), 0);
        assert_eq!(cmd.argv().collect::<Vec<_>>(), vec![&b"X"[..]]);
        assert_eq!(cmd.block_timeout(), None);
        assert_eq!(cmd.tail(1).argc(), 2);
        assert_eq!(bulk_at(b"$99999999999999999999999\r\n", 0), None);
        assert_eq!(bulk_at(b"$3\r\nab", 0), None);
    }

    #[test]
    fn debug_shows_the_arguments() {
        let cmd = Cmd::new("SET").key("k").arg(b"\x00v");
        assert_eq!(format!("{cmd:?}"), r#"Cmd(["SET", "k", "\x00v"])"#);
    }
}
