//! Replies: converting a [`Frame`] to a Rust type ([`FromFrame`]), and the
//! server's error replies ([`ServerError`]). The conversion rules are in
//! the docs of [`FromFrame`], where users read them.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use core::str::FromStr;

use crate::resp::{Attributed, Frame};

/// A frame that is not what the reply type needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionError {
    /// What the type accepts, such as `"integer (u8)"` or `"array of 2 elements"`.
    pub expected: &'static str,
    /// What was there: the frame's type and a truncated preview of its
    /// content, such as `bulk string "hello"` or `array of 3 elements`.
    pub found: String,
}

impl ConversionError {
    /// The error for `found`, described by its type and a preview.
    #[must_use]
    pub fn new(expected: &'static str, found: &Frame) -> Self {
        Self {
            expected,
            found: describe(found),
        }
    }
}

impl fmt::Display for ConversionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, found {}", self.expected, self.found)
    }
}

impl core::error::Error for ConversionError {}

/// An error reply of the server, split into its code and message.
///
/// `-WRONGTYPE Operation against a key holding the wrong kind of value` has
/// the code `WRONGTYPE`; the code is the first word of the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerError {
    /// The first word of the error text (`ERR`, `MOVED`, `NOSCRIPT`, ...).
    pub code: String,
    /// The rest of the text, after the code and one space.
    pub message: String,
}

/// The error codes the client acts on or that callers commonly test for.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerErrorKind {
    /// `ERR`: the generic error (syntax, unknown command, bad argument).
    Err,
    /// `WRONGTYPE`: the key holds another kind of value.
    WrongType,
    /// `NOSCRIPT`: `EVALSHA` of a script the server does not have; send the
    /// `EVAL` instead ([`Script::fallback`](super::Script::fallback)).
    NoScript,
    /// `MOVED slot host:port`: the slot lives on another cluster node.
    Moved,
    /// `ASK slot host:port`: the slot is migrating; ask that node once.
    Ask,
    /// `TRYAGAIN`: a multi-key command during a slot migration; retry later.
    TryAgain,
    /// `CROSSSLOT`: the keys of one command hash to different slots.
    CrossSlot,
    /// `CLUSTERDOWN`: the cluster cannot serve the slot right now.
    ClusterDown,
    /// `LOADING`: the server is loading its dataset.
    Loading,
    /// `BUSY`: a script or function is running too long.
    Busy,
    /// `BUSYKEY`: the target key exists (`RESTORE`, `MIGRATE`).
    BusyKey,
    /// `MASTERDOWN`: a replica lost its primary and serves no stale data.
    MasterDown,
    /// `READONLY`: a write was sent to a replica.
    ReadOnly,
    /// `NOAUTH`: authentication is required.
    NoAuth,
    /// `WRONGPASS`: invalid username or password.
    WrongPass,
    /// `NOPERM`: the ACL user may not run this command or touch this key.
    NoPerm,
    /// `EXECABORT`: `EXEC` refused because a queued command was rejected.
    ExecAbort,
    /// `NOREPLICAS`: not enough replicas for `min-replicas-to-write`.
    NoReplicas,
    /// `OOM`: the command would exceed `maxmemory`.
    Oom,
    /// `MISCONF`: writes are refused because snapshots fail.
    Misconf,
    /// `UNBLOCKED`: a blocking command was unblocked by `CLIENT UNBLOCK` or
    /// because its key was deleted or changed type.
    Unblocked,
    /// Any other code.
    Other,
}

impl ServerError {
    /// Splits an error text into its code and message (invalid UTF-8 is
    /// replaced).
    #[must_use]
    pub fn parse(text: &[u8]) -> Self {
        let text = String::from_utf8_lossy(text);
        match text.split_once(' ') {
            Some((code, message)) => Self {
                code: code.into(),
                message: message.into(),
            },
            None => Self {
                code: text.into_owned(),
                message: String::new(),
            },
        }
    }

    /// The error of an error frame (`-` or `!`, attributes skipped); `None`
    /// for any other frame.
    #[must_use]
    pub fn from_frame(frame: &Frame) -> Option<Self> {
        match frame.without_attributes() {
            Frame::Error(text) | Frame::BulkError(text) => Some(Self::parse(text)),
            _ => None,
        }
    }

    /// The class of the error, by its code.
    #[must_use]
    pub fn kind(&self) -> ServerErrorKind {
        match self.code.as_str() {
            "ERR" => ServerErrorKind::Err,
            "WRONGTYPE" => ServerErrorKind::WrongType,
            "NOSCRIPT" => ServerErrorKind::NoScript,
            "MOVED" => ServerErrorKind::Moved,
            "ASK" => ServerErrorKind::Ask,
            "TRYAGAIN" => ServerErrorKind::TryAgain,
            "CROSSSLOT" => ServerErrorKind::CrossSlot,
            "CLUSTERDOWN" => ServerErrorKind::ClusterDown,
            "LOADING" => ServerErrorKind::Loading,
            "BUSY" => ServerErrorKind::Busy,
            "BUSYKEY" => ServerErrorKind::BusyKey,
            "MASTERDOWN" => ServerErrorKind::MasterDown,
            "READONLY" => ServerErrorKind::ReadOnly,
            "NOAUTH" => ServerErrorKind::NoAuth,
            "WRONGPASS" => ServerErrorKind::WrongPass,
            "NOPERM" => ServerErrorKind::NoPerm,
            "EXECABORT" => ServerErrorKind::ExecAbort,
            "NOREPLICAS" => ServerErrorKind::NoReplicas,
            "OOM" => ServerErrorKind::Oom,
            "MISCONF" => ServerErrorKind::Misconf,
            "UNBLOCKED" => ServerErrorKind::Unblocked,
            _ => ServerErrorKind::Other,
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{} {}", self.code, self.message)
        }
    }
}

impl core::error::Error for ServerError {}

/// Why a reply did not give a value of the requested type.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The server answered with an error.
    Server(ServerError),
    /// The reply does not convert to the requested type.
    Conversion(ConversionError),
    /// An atomic pipeline was not executed: a key it `WATCH`ed changed, and
    /// `EXEC` replied null. Nothing was written; run it again.
    Aborted,
}

impl ReplyError {
    /// The server's error, if it was one.
    #[must_use]
    pub const fn server(&self) -> Option<&ServerError> {
        match self {
            Self::Server(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ServerError> for ReplyError {
    fn from(e: ServerError) -> Self {
        Self::Server(e)
    }
}

impl From<ConversionError> for ReplyError {
    fn from(e: ConversionError) -> Self {
        Self::Conversion(e)
    }
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server(e) => write!(f, "server error: {e}"),
            Self::Conversion(e) => write!(f, "unexpected reply: {e}"),
            Self::Aborted => f.write_str("transaction aborted: a watched key changed"),
        }
    }
}

impl core::error::Error for ReplyError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Server(e) => Some(e),
            Self::Conversion(e) => Some(e),
            Self::Aborted => None,
        }
    }
}

/// Converts a reply frame to `T`.
///
/// ```
/// use bytes::Bytes;
/// use redpoll_core::cmd::{reply, ReplyError, ServerErrorKind};
/// use redpoll_core::resp::Frame;
///
/// assert_eq!(reply::<i64>(Frame::Bulk(Bytes::from_static(b"42"))), Ok(42));
/// assert_eq!(reply::<Option<String>>(Frame::NullBulk), Ok(None));
/// let err = reply::<i64>(Frame::Error(Bytes::from_static(b"WRONGTYPE no"))).unwrap_err();
/// assert_eq!(err.server().unwrap().kind(), ServerErrorKind::WrongType);
/// ```
///
/// # Errors
///
/// [`ReplyError::Server`] for an error reply (see the rules of [`FromFrame`]),
/// [`ReplyError::Conversion`] for a frame `T` does not accept.
pub fn reply<T: FromFrame>(frame: Frame) -> Result<T, ReplyError> {
    T::from_frame(frame)
}

/// A type a reply frame converts to.
///
/// Only [`FromFrame::from_frame`] is required; the other methods let a type
/// choose how a whole aggregate of its values is read (pairs read flat
/// arrays, bytes read a bulk string as a `Vec<u8>`), and have defaults.
///
/// # Rules
///
/// - An error reply (`-ERR ...`, `!...`) is never "converted": every
///   [`FromFrame`] impl answers it with [`ReplyError::Server`], at the top
///   level and inside aggregates (an `EXEC` array holding the error of one
///   command), with two exceptions that keep it as data:
///   - `Vec<Frame>` (and so `Option<Vec<Frame>>`, the `EXEC` reply) keeps
///     error elements as frames, so the caller sees which command failed;
///   - `Result<T, ServerError>` turns an error reply into `Ok(Err(..))`.
/// - RESP3 attributes are skipped: an attributed frame converts as the
///   frame it describes (only `Frame` itself keeps them).
/// - The three nulls (`_`, `$-1`, `*-1`) are `None` for `Option<T>`, `false`
///   for `bool`, accepted by `()` and `Frame`, and an error for every other
///   type (`Vec<T>` included: a null list is `Option<Vec<T>>`).
/// - RESP2 and RESP3 shapes of the same reply convert alike: maps from a
///   RESP3 map or a RESP2 flat array (`HGETALL`, `CONFIG GET`), pairs from
///   flat arrays or arrays of 2-element arrays (`ZRANGE ... WITHSCORES`),
///   numbers from integers, doubles or their text in bulk strings.
pub trait FromFrame: Sized {
    /// Converts one frame.
    ///
    /// # Errors
    ///
    /// [`ReplyError::Server`] for an error reply, [`ReplyError::Conversion`]
    /// for a frame of the wrong shape.
    fn from_frame(frame: Frame) -> Result<Self, ReplyError>;

    /// Converts the elements of an array, set or push into a `Vec<Self>`:
    /// one by one by default.
    ///
    /// # Errors
    ///
    /// As [`FromFrame::from_frame`].
    fn from_list(items: Vec<Frame>) -> Result<Vec<Self>, ReplyError> {
        items.into_iter().map(Self::from_frame).collect()
    }

    /// Converts a map into a `Vec<Self>`: by default flattened to key,
    /// value, key, value and read with [`FromFrame::from_list`].
    ///
    /// # Errors
    ///
    /// As [`FromFrame::from_frame`].
    fn from_map(pairs: Vec<(Frame, Frame)>) -> Result<Vec<Self>, ReplyError> {
        let mut flat = Vec::with_capacity(pairs.len() * 2);
        for (key, value) in pairs {
            flat.push(key);
            flat.push(value);
        }
        Self::from_list(flat)
    }

    /// Reads a string payload as a `Vec<Self>`; `None` (the default) when
    /// the type does not: only `u8` does, so that `Vec<u8>` reads strings.
    fn from_bytes(bytes: &Bytes) -> Option<Vec<Self>> {
        let _ = bytes;
        None
    }
}

/// Skips attributes and turns error frames into [`ReplyError::Server`]:
/// the prologue of every conversion.
fn prepare(mut frame: Frame) -> Result<Frame, ReplyError> {
    while let Frame::Attributed(attributed) = frame {
        let Attributed { frame: inner, .. } = *attributed;
        frame = inner;
    }
    match frame {
        Frame::Error(text) | Frame::BulkError(text) => Err(ServerError::parse(&text).into()),
        other => Ok(other),
    }
}

/// The payload of a frame carrying text: simple, bulk, verbatim strings and
/// big numbers.
const fn text(frame: &Frame) -> Option<&Bytes> {
    match frame {
        Frame::Simple(t)
        | Frame::Bulk(t)
        | Frame::BigNumber(t)
        | Frame::Verbatim { text: t, .. } => Some(t),
        _ => None,
    }
}

fn mismatch<T>(expected: &'static str, found: &Frame) -> Result<T, ReplyError> {
    Err(ConversionError::new(expected, found).into())
}

/// How many bytes of a payload an error message shows.
const PREVIEW: usize = 32;

/// A short description of a frame for error messages: its type and a
/// truncated, escaped preview of its content.
fn describe(frame: &Frame) -> String {
    fn preview(bytes: &[u8]) -> String {
        if bytes.len() <= PREVIEW {
            format!("\"{}\"", bytes.escape_ascii())
        } else {
            format!(
                "\"{}\"... ({} bytes)",
                bytes[..PREVIEW].escape_ascii(),
                bytes.len()
            )
        }
    }
    match frame {
        Frame::Simple(s) => format!("simple string {}", preview(s)),
        Frame::Error(s) | Frame::BulkError(s) => format!("error {}", preview(s)),
        Frame::Integer(n) => format!("integer {n}"),
        Frame::Bulk(b) => format!("bulk string {}", preview(b)),
        Frame::NullBulk => "null bulk string".into(),
        Frame::NullArray => "null array".into(),
        Frame::Null => "null".into(),
        Frame::Boolean(b) => format!("boolean {b}"),
        Frame::Double(d) => format!("double {d}"),
        Frame::BigNumber(n) => format!("big number {}", preview(n)),
        Frame::Verbatim { text, .. } => format!("verbatim string {}", preview(text)),
        Frame::Array(items) => format!("array of {} elements", items.len()),
        Frame::Set(items) => format!("set of {} elements", items.len()),
        Frame::Push(items) => format!("push of {} elements", items.len()),
        Frame::Map(pairs) => format!("map of {} pairs", pairs.len()),
        Frame::Attributed(a) => describe(&a.frame),
    }
}

impl FromFrame for Frame {
    /// The frame itself, attributes included; an error reply is still
    /// [`ReplyError::Server`].
    fn from_frame(frame: Self) -> Result<Self, ReplyError> {
        match ServerError::from_frame(&frame) {
            Some(e) => Err(e.into()),
            None => Ok(frame),
        }
    }

    /// The elements as they are, error replies included.
    fn from_list(items: Vec<Self>) -> Result<Vec<Self>, ReplyError> {
        Ok(items)
    }
}

impl<T: FromFrame> FromFrame for Result<T, ServerError> {
    /// `Ok(Err(e))` for an error reply, instead of failing: one command of
    /// a pipeline or transaction may fail without failing the others.
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        match ServerError::from_frame(&frame) {
            Some(e) => Ok(Err(e)),
            None => T::from_frame(frame).map(Ok),
        }
    }
}

impl FromFrame for () {
    /// Accepts any reply but an error.
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        prepare(frame).map(drop)
    }
}

impl<T: FromFrame> FromFrame for Option<T> {
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        let frame = prepare(frame)?;
        if frame.is_null() {
            Ok(None)
        } else {
            T::from_frame(frame).map(Some)
        }
    }
}

impl FromFrame for bool {
    /// `#t`/`#f`, the integers 1 and 0, `+OK` (true) and a null (false):
    /// `SET ... NX` answers `+OK` when it set the key and null when not.
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        let frame = prepare(frame)?;
        match &frame {
            Frame::Boolean(b) => Ok(*b),
            Frame::Integer(0) => Ok(false),
            Frame::Integer(1) => Ok(true),
            Frame::Simple(s) if s[..] == *b"OK" => Ok(true),
            f if f.is_null() => Ok(false),
            _ => mismatch("boolean (#t/#f, 0/1, OK or null)", &frame),
        }
    }
}

impl FromFrame for String {
    /// UTF-8 text of a simple, bulk or verbatim string or a big number; an
    /// integer as its decimal text.
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        let frame = prepare(frame)?;
        if let Frame::Integer(n) = frame {
            return Ok(n.to_string());
        }
        match text(&frame).map(|t| core::str::from_utf8(t)) {
            Some(Ok(s)) => Ok(s.into()),
            Some(Err(_)) => mismatch("UTF-8 string", &frame),
            None => mismatch("string", &frame),
        }
    }
}

impl FromFrame for Bytes {
    /// The payload of a simple, bulk or verbatim string or a big number (a
    /// slice of the frame's buffer, no copy); an integer as its decimal text.
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        match prepare(frame)? {
            Frame::Simple(t)
            | Frame::Bulk(t)
            | Frame::BigNumber(t)
            | Frame::Verbatim { text: t, .. } => Ok(t),
            Frame::Integer(n) => Ok(Self::from(n.to_string())),
            other => mismatch("string", &other),
        }
    }
}

/// An integer from an integer frame or from text (Redis sends many numbers
/// as bulk strings), range-checked.
fn integer<T: TryFrom<i64> + FromStr>(
    frame: Frame,
    expected: &'static str,
) -> Result<T, ReplyError> {
    let frame = prepare(frame)?;
    let value = match &frame {
        Frame::Integer(n) => T::try_from(*n).ok(),
        f => text(f)
            .and_then(|t| core::str::from_utf8(t).ok())
            .and_then(|s| s.parse().ok()),
    };
    match value {
        Some(v) => Ok(v),
        None => mismatch(expected, &frame),
    }
}

macro_rules! from_frame_int {
    ($($t:ty),*) => {$(
        impl FromFrame for $t {
            /// From an integer, or a string holding one; range-checked.
            fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
                integer(frame, concat!("integer (", stringify!($t), ")"))
            }
        }
    )*};
}
from_frame_int!(i8, i16, i32, i64, i128, isize, u16, u32, u64, u128, usize);

impl FromFrame for u8 {
    /// From an integer, or a string holding one; range-checked.
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        integer(frame, "integer (u8)")
    }

    /// A string's bytes: `Vec<u8>` reads strings.
    fn from_bytes(bytes: &Bytes) -> Option<Vec<Self>> {
        Some(bytes.to_vec())
    }
}

impl FromFrame for f64 {
    /// From a double, an integer, or a string holding a number (`inf`,
    /// `-inf` and `nan` included).
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        let frame = prepare(frame)?;
        let value = match &frame {
            Frame::Double(d) => Some(*d),
            Frame::Integer(n) => Some(*n as Self),
            f => text(f)
                .and_then(|t| core::str::from_utf8(t).ok())
                .and_then(|s| s.parse().ok()),
        };
        match value {
            Some(v) => Ok(v),
            None => mismatch("number", &frame),
        }
    }
}

impl FromFrame for f32 {
    /// As `f64`, rounded to the nearest `f32`.
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        f64::from_frame(frame).map(|v| v as Self)
    }
}

impl<T: FromFrame> FromFrame for Vec<T> {
    /// From an array, a set or a push; a map as key, value, key, value
    /// (pairs `(K, V)` read it as pairs). A null is an error: use
    /// `Option<Vec<T>>`. `Vec<u8>` reads strings instead.
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        match prepare(frame)? {
            Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => T::from_list(items),
            Frame::Map(pairs) => T::from_map(pairs),
            Frame::Integer(n) => T::from_bytes(&Bytes::from(n.to_string()))
                .map_or_else(|| mismatch("array", &Frame::Integer(n)), Ok),
            other => match text(&other).and_then(T::from_bytes) {
                Some(v) => Ok(v),
                None => mismatch("array", &other),
            },
        }
    }
}

impl<T: FromFrame + Ord> FromFrame for BTreeSet<T> {
    /// From a set, an array or a push.
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        Ok(members(frame)?.into_iter().collect())
    }
}

fn members<T: FromFrame>(frame: Frame) -> Result<Vec<T>, ReplyError> {
    match prepare(frame)? {
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => T::from_list(items),
        other => mismatch("set or array", &other),
    }
}

impl<K: FromFrame + Ord, V: FromFrame> FromFrame for BTreeMap<K, V> {
    /// From a map, or an array of pairs (flat `k, v, k, v` as RESP2 sends
    /// `HGETALL`, or of 2-element arrays).
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        Ok(pairs::<K, V>(frame)?.into_iter().collect())
    }
}

fn pairs<K: FromFrame, V: FromFrame>(frame: Frame) -> Result<Vec<(K, V)>, ReplyError> {
    match prepare(frame)? {
        Frame::Map(pairs) => <(K, V)>::from_map(pairs),
        Frame::Array(items) => <(K, V)>::from_list(items),
        other => mismatch("map or array of pairs", &other),
    }
}

#[cfg(feature = "std")]
impl<K, V, S> FromFrame for std::collections::HashMap<K, V, S>
where
    K: FromFrame + Eq + core::hash::Hash,
    V: FromFrame,
    S: core::hash::BuildHasher + Default,
{
    /// From a map, or an array of pairs (flat `k, v, k, v` as RESP2 sends
    /// `HGETALL`, or of 2-element arrays).
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        Ok(pairs::<K, V>(frame)?.into_iter().collect())
    }
}

#[cfg(feature = "std")]
impl<T, S> FromFrame for std::collections::HashSet<T, S>
where
    T: FromFrame + Eq + core::hash::Hash,
    S: core::hash::BuildHasher + Default,
{
    /// From a set, an array or a push.
    fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
        Ok(members(frame)?.into_iter().collect())
    }
}

/// Whether a frame is a 2-element array or set: one pair of a RESP3
/// `ZRANGE ... WITHSCORES`.
fn is_pair(frame: &Frame) -> bool {
    matches!(frame.without_attributes(), Frame::Array(v) | Frame::Set(v) if v.len() == 2)
}

/// Takes the next element of an aggregate whose length was checked.
fn next(items: &mut alloc::vec::IntoIter<Frame>) -> Frame {
    items.next().unwrap_or(Frame::Null)
}

macro_rules! from_frame_tuple {
    ($n:literal: $($t:ident),+ $(; $($extra:item)*)?) => {
        impl<$($t: FromFrame),+> FromFrame for ($($t,)+) {
            /// From an array (or set, or push) of exactly as many elements.
            fn from_frame(frame: Frame) -> Result<Self, ReplyError> {
                match prepare(frame)? {
                    Frame::Array(items) | Frame::Set(items) | Frame::Push(items)
                        if items.len() == $n =>
                    {
                        let mut items = items.into_iter();
                        Ok(($($t::from_frame(next(&mut items))?,)+))
                    }
                    other => mismatch(concat!("array of ", $n, " elements"), &other),
                }
            }
            $($($extra)*)?
        }
    };
}

from_frame_tuple!(1: A);
from_frame_tuple!(2: A, B;
    /// Pairs from a flat array (`k, v, k, v`, as RESP2 sends maps and
    /// scores) or from an array of 2-element arrays (as RESP3 sends
    /// `ZRANGE ... WITHSCORES`). A flat array whose keys and values are all
    /// themselves 2-element arrays is read as the latter.
    fn from_list(items: Vec<Frame>) -> Result<Vec<Self>, ReplyError> {
        if !items.is_empty() && items.iter().all(is_pair) {
            return items.into_iter().map(Self::from_frame).collect();
        }
        if !items.len().is_multiple_of(2) {
            return Err(ConversionError {
                expected: "key/value pairs (an even number of elements)",
                found: format!("array of {} elements", items.len()),
            }
            .into());
        }
        let mut out = Vec::with_capacity(items.len() / 2);
        let mut items = items.into_iter();
        while let (Some(a), Some(b)) = (items.next(), items.next()) {
            out.push((A::from_frame(a)?, B::from_frame(b)?));
        }
        Ok(out)
    }

    /// One pair per map entry.
    fn from_map(pairs: Vec<(Frame, Frame)>) -> Result<Vec<Self>, ReplyError> {
        pairs
            .into_iter()
            .map(|(a, b)| Ok((A::from_frame(a)?, B::from_frame(b)?)))
            .collect()
    }
);
from_frame_tuple!(3: A, B, C);
from_frame_tuple!(4: A, B, C, D);
from_frame_tuple!(5: A, B, C, D, E);
from_frame_tuple!(6: A, B, C, D, E, F);
from_frame_tuple!(7: A, B, C, D, E, F, G);
from_frame_tuple!(8: A, B, C, D, E, F, G, H);
from_frame_tuple!(9: A, B, C, D, E, F, G, H, I);
from_frame_tuple!(10: A, B, C, D, E, F, G, H, I, J);
from_frame_tuple!(11: A, B, C, D, E, F, G, H, I, J, K);
from_frame_tuple!(12: A, B, C, D, E, F, G, H, I, J, K, L);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec;

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn simple(s: &str) -> Frame {
        Frame::Simple(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn err(s: &str) -> Frame {
        Frame::Error(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn conversion<T: FromFrame + fmt::Debug>(frame: Frame) -> ConversionError {
        match reply::<T>(frame) {
            Err(ReplyError::Conversion(e)) => e,
            other => panic!("expected a conversion error, got {other:?}"),
        }
    }

    fn attributed(frame: Frame) -> Frame {
        Frame::Attributed(Box::new(Attributed {
            attributes: vec![(bulk("ttl"), Frame::Integer(3))],
            frame,
        }))
    }

    #[test]
    fn server_errors_are_parsed() {
        let e = ServerError::parse(b"MOVED 3999 127.0.0.1:6381");
        assert_eq!(e.code, "MOVED");
        assert_eq!(e.message, "3999 127.0.0.1:6381");
        assert_eq!(e.kind(), ServerErrorKind::Moved);
        assert_eq!(e.to_string(), "MOVED 3999 127.0.0.1:6381");
        let e = ServerError::parse(b"OOM");
        assert_eq!((e.code.as_str(), e.message.as_str()), ("OOM", ""));
        assert_eq!(e.kind(), ServerErrorKind::Oom);
        assert_eq!(e.to_string(), "OOM");
        for (code, kind) in [
            ("ERR", ServerErrorKind::Err),
            ("WRONGTYPE", ServerErrorKind::WrongType),
            ("NOSCRIPT", ServerErrorKind::NoScript),
            ("ASK", ServerErrorKind::Ask),
            ("TRYAGAIN", ServerErrorKind::TryAgain),
            ("CROSSSLOT", ServerErrorKind::CrossSlot),
            ("CLUSTERDOWN", ServerErrorKind::ClusterDown),
            ("LOADING", ServerErrorKind::Loading),
            ("BUSY", ServerErrorKind::Busy),
            ("BUSYKEY", ServerErrorKind::BusyKey),
            ("MASTERDOWN", ServerErrorKind::MasterDown),
            ("READONLY", ServerErrorKind::ReadOnly),
            ("NOAUTH", ServerErrorKind::NoAuth),
            ("WRONGPASS", ServerErrorKind::WrongPass),
            ("NOPERM", ServerErrorKind::NoPerm),
            ("EXECABORT", ServerErrorKind::ExecAbort),
            ("NOREPLICAS", ServerErrorKind::NoReplicas),
            ("MISCONF", ServerErrorKind::Misconf),
            ("UNBLOCKED", ServerErrorKind::Unblocked),
            ("whatever", ServerErrorKind::Other),
        ] {
            assert_eq!(ServerError::parse(code.as_bytes()).kind(), kind, "{code}");
        }
        let bulk_error = Frame::BulkError(Bytes::from_static(b"SYNTAX bad\xff"));
        let e = ServerError::from_frame(&bulk_error).unwrap();
        assert_eq!(e.message, "bad\u{fffd}");
        assert_eq!(ServerError::from_frame(&simple("OK")), None);
    }

    #[test]
    fn error_replies_are_server_errors_for_every_type() {
        let e = ServerError::parse(b"WRONGTYPE Operation against a key");
        let server = ReplyError::Server(e.clone());
        assert_eq!(
            reply::<i64>(err("WRONGTYPE Operation against a key")),
            Err(server.clone())
        );
        assert_eq!(
            reply::<()>(err("WRONGTYPE Operation against a key")),
            Err(server.clone())
        );
        assert_eq!(
            reply::<Frame>(err("WRONGTYPE Operation against a key")),
            Err(server.clone())
        );
        assert_eq!(
            reply::<Option<Bytes>>(attributed(err("WRONGTYPE Operation against a key"))),
            Err(server.clone())
        );
        assert_eq!(
            reply::<Result<i64, ServerError>>(err("WRONGTYPE Operation against a key")),
            Ok(Err(e))
        );
        assert_eq!(
            reply::<Result<i64, ServerError>>(Frame::Integer(1)),
            Ok(Ok(1))
        );
        // Inside aggregates too, except for `Vec<Frame>`.
        let exec = Frame::Array(vec![simple("OK"), err("WRONGTYPE Operation against a key")]);
        assert_eq!(reply::<Vec<String>>(exec.clone()), Err(server.clone()));
        assert_eq!(reply::<(Frame, Frame)>(exec.clone()), Err(server));
        assert_eq!(
            reply::<Option<Vec<Frame>>>(exec.clone()),
            Ok(Some(vec![
                simple("OK"),
                err("WRONGTYPE Operation against a key")
            ]))
        );
        let (ok, failed) = reply::<(String, Result<String, ServerError>)>(exec).unwrap();
        assert_eq!(ok, "OK");
        assert_eq!(failed.unwrap_err().kind(), ServerErrorKind::WrongType);
    }

    #[test]
    fn reply_error_display_and_source() {
        use core::error::Error as _;
        let e = ReplyError::from(ServerError::parse(b"ERR no"));
        assert_eq!(e.to_string(), "server error: ERR no");
        assert!(e.source().is_some());
        let e = ReplyError::from(ConversionError::new("integer (i64)", &bulk("x")));
        assert_eq!(
            e.to_string(),
            r#"unexpected reply: expected integer (i64), found bulk string "x""#
        );
        assert_eq!(e.server(), None);
        assert!(ReplyError::Aborted.source().is_none());
        assert_eq!(
            ReplyError::Aborted.to_string(),
            "transaction aborted: a watched key changed"
        );
    }

    #[test]
    fn frame_is_identity_and_keeps_attributes() {
        let f = attributed(Frame::Array(vec![Frame::Integer(1)]));
        assert_eq!(reply::<Frame>(f.clone()), Ok(f));
        assert_eq!(
            reply::<Vec<Frame>>(Frame::Map(vec![(bulk("a"), bulk("b"))])),
            Ok(vec![bulk("a"), bulk("b")])
        );
    }

    #[test]
    fn unit_accepts_anything_but_errors() {
        for f in [
            simple("OK"),
            Frame::Null,
            Frame::Integer(3),
            Frame::Array(vec![]),
            attributed(simple("OK")),
        ] {
            assert_eq!(reply::<()>(f), Ok(()));
        }
    }

    #[test]
    fn strings_and_bytes() {
        assert_eq!(reply::<String>(simple("OK")), Ok("OK".into()));
        assert_eq!(reply::<String>(bulk("héllo")), Ok("héllo".into()));
        assert_eq!(
            reply::<String>(Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from_static(b"# Server")
            }),
            Ok("# Server".into())
        );
        assert_eq!(reply::<String>(Frame::Integer(-7)), Ok("-7".into()));
        assert_eq!(
            reply::<String>(Frame::BigNumber(Bytes::from_static(b"123"))),
            Ok("123".into())
        );
        let e = conversion::<String>(Frame::Bulk(Bytes::from_static(b"\xff\xfe")));
        assert_eq!(
            e.to_string(),
            r#"expected UTF-8 string, found bulk string "\xff\xfe""#
        );
        assert_eq!(
            conversion::<String>(Frame::Array(vec![])).to_string(),
            "expected string, found array of 0 elements"
        );

        let payload = Bytes::from_static(b"payload");
        let got = reply::<Bytes>(Frame::Bulk(payload.clone())).unwrap();
        assert_eq!(got.as_ptr(), payload.as_ptr(), "no copy");
        assert_eq!(
            reply::<Bytes>(Frame::Integer(5)),
            Ok(Bytes::from_static(b"5"))
        );
        assert_eq!(
            conversion::<Bytes>(Frame::Null).to_string(),
            "expected string, found null"
        );

        assert_eq!(reply::<Vec<u8>>(bulk("ab")), Ok(b"ab".to_vec()));
        assert_eq!(reply::<Vec<u8>>(Frame::Integer(12)), Ok(b"12".to_vec()));
        assert_eq!(
            reply::<Vec<u8>>(Frame::Array(vec![Frame::Integer(1), bulk("2")])),
            Ok(vec![1, 2])
        );
        assert_eq!(
            conversion::<Vec<i64>>(bulk("ab")).to_string(),
            r#"expected array, found bulk string "ab""#
        );
        assert_eq!(
            conversion::<Vec<i64>>(Frame::Integer(1)).to_string(),
            "expected array, found integer 1"
        );
    }

    #[test]
    fn long_previews_are_truncated() {
        let long = "x".repeat(100);
        assert_eq!(
            conversion::<i64>(bulk(&long)).found,
            format!("bulk string \"{}\"... (100 bytes)", "x".repeat(PREVIEW))
        );
    }

    #[test]
    fn describes_every_frame_type() {
        let cases = [
            (simple("OK"), r#"simple string "OK""#),
            (err("ERR x"), r#"error "ERR x""#),
            (Frame::Integer(-1), "integer -1"),
            (Frame::NullBulk, "null bulk string"),
            (Frame::NullArray, "null array"),
            (Frame::Null, "null"),
            (Frame::Boolean(true), "boolean true"),
            (Frame::Double(1.5), "double 1.5"),
            (
                Frame::BigNumber(Bytes::from_static(b"1")),
                r#"big number "1""#,
            ),
            (
                Frame::Verbatim {
                    format: *b"txt",
                    text: Bytes::from_static(b"t"),
                },
                r#"verbatim string "t""#,
            ),
            (Frame::Set(vec![]), "set of 0 elements"),
            (Frame::Push(vec![Frame::Null]), "push of 1 elements"),
            (Frame::Map(vec![]), "map of 0 pairs"),
            (attributed(Frame::Integer(2)), "integer 2"),
        ];
        for (frame, text) in cases {
            assert_eq!(describe(&frame), text);
        }
    }

    #[test]
    fn integers() {
        assert_eq!(reply::<i64>(Frame::Integer(-5)), Ok(-5));
        assert_eq!(reply::<u64>(bulk("18446744073709551615")), Ok(u64::MAX));
        assert_eq!(
            reply::<i128>(Frame::BigNumber(Bytes::from_static(
                b"-170141183460469231731687303715884105728"
            ))),
            Ok(i128::MIN)
        );
        assert_eq!(reply::<u16>(simple("80")), Ok(80));
        assert_eq!(reply::<usize>(attributed(Frame::Integer(7))), Ok(7));
        assert_eq!(reply::<i8>(Frame::Integer(-128)), Ok(-128));
        assert_eq!(reply::<i32>(bulk("-2147483648")), Ok(i32::MIN));
        assert_eq!(reply::<isize>(Frame::Integer(1)), Ok(1));
        assert_eq!(
            reply::<u32>(Frame::Integer(4_000_000_000)),
            Ok(4_000_000_000)
        );
        assert_eq!(reply::<u128>(bulk("1")), Ok(1));
        assert_eq!(reply::<i16>(Frame::Integer(300)), Ok(300));
        assert_eq!(
            conversion::<u8>(Frame::Integer(300)).to_string(),
            "expected integer (u8), found integer 300"
        );
        assert_eq!(
            conversion::<u64>(Frame::Integer(-1)).to_string(),
            "expected integer (u64), found integer -1"
        );
        assert_eq!(
            conversion::<i64>(bulk("1.5")).to_string(),
            r#"expected integer (i64), found bulk string "1.5""#
        );
        assert_eq!(
            conversion::<i64>(Frame::Double(1.0)).to_string(),
            "expected integer (i64), found double 1"
        );
        assert_eq!(conversion::<i64>(Frame::Null).expected, "integer (i64)");
    }

    #[test]
    fn floats() {
        assert_eq!(reply::<f64>(Frame::Double(1.5)), Ok(1.5));
        assert_eq!(reply::<f64>(Frame::Integer(3)), Ok(3.0));
        assert_eq!(reply::<f64>(bulk("3.25")), Ok(3.25));
        assert_eq!(reply::<f64>(bulk("inf")), Ok(f64::INFINITY));
        assert_eq!(reply::<f64>(bulk("-inf")), Ok(f64::NEG_INFINITY));
        assert!(reply::<f64>(bulk("nan")).unwrap().is_nan());
        assert_eq!(reply::<f32>(simple("0.5")), Ok(0.5));
        assert_eq!(
            conversion::<f64>(bulk("abc")).to_string(),
            r#"expected number, found bulk string "abc""#
        );
        assert_eq!(
            conversion::<f32>(Frame::Boolean(true)).to_string(),
            "expected number, found boolean true"
        );
    }

    #[test]
    fn booleans() {
        assert_eq!(reply::<bool>(Frame::Boolean(true)), Ok(true));
        assert_eq!(reply::<bool>(Frame::Boolean(false)), Ok(false));
        assert_eq!(reply::<bool>(Frame::Integer(1)), Ok(true));
        assert_eq!(reply::<bool>(Frame::Integer(0)), Ok(false));
        assert_eq!(reply::<bool>(simple("OK")), Ok(true));
        assert_eq!(reply::<bool>(Frame::NullBulk), Ok(false));
        assert_eq!(
            conversion::<bool>(Frame::Integer(2)).to_string(),
            "expected boolean (#t/#f, 0/1, OK or null), found integer 2"
        );
        assert_eq!(
            conversion::<bool>(simple("QUEUED")).found,
            r#"simple string "QUEUED""#
        );
    }

    #[test]
    fn options_and_nulls() {
        for null in [
            Frame::Null,
            Frame::NullBulk,
            Frame::NullArray,
            attributed(Frame::Null),
        ] {
            assert_eq!(reply::<Option<i64>>(null.clone()), Ok(None));
            assert_eq!(reply::<Option<Vec<Bytes>>>(null.clone()), Ok(None));
            assert!(matches!(
                reply::<Vec<Bytes>>(null.clone()),
                Err(ReplyError::Conversion(_))
            ));
            assert!(matches!(
                reply::<String>(null),
                Err(ReplyError::Conversion(_))
            ));
        }
        assert_eq!(reply::<Option<i64>>(Frame::Integer(1)), Ok(Some(1)));
        assert_eq!(
            reply::<Vec<Option<Bytes>>>(Frame::Array(vec![bulk("a"), Frame::NullBulk])),
            Ok(vec![Some(Bytes::from_static(b"a")), None])
        );
        assert_eq!(
            conversion::<Option<i64>>(bulk("x")).expected,
            "integer (i64)"
        );
    }

    #[test]
    fn vectors() {
        let list = Frame::Array(vec![bulk("1"), Frame::Integer(2)]);
        assert_eq!(reply::<Vec<i64>>(list.clone()), Ok(vec![1, 2]));
        assert_eq!(
            reply::<Vec<i64>>(Frame::Set(vec![Frame::Integer(3)])),
            Ok(vec![3])
        );
        assert_eq!(
            reply::<Vec<i64>>(Frame::Push(vec![Frame::Integer(4)])),
            Ok(vec![4])
        );
        assert_eq!(
            reply::<Vec<String>>(Frame::Map(vec![(bulk("k"), bulk("v"))])),
            Ok(vec!["k".into(), "v".into()])
        );
        assert_eq!(
            conversion::<Vec<i64>>(Frame::Array(vec![bulk("x")])).found,
            r#"bulk string "x""#
        );
    }

    #[test]
    fn pairs_from_every_shape() {
        let flat = Frame::Array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")]);
        let nested = Frame::Array(vec![
            Frame::Array(vec![bulk("a"), Frame::Double(1.0)]),
            Frame::Array(vec![bulk("b"), Frame::Double(2.0)]),
        ]);
        let map = Frame::Map(vec![(bulk("a"), bulk("1")), (bulk("b"), Frame::Integer(2))]);
        let want: Vec<(String, f64)> = vec![("a".into(), 1.0), ("b".into(), 2.0)];
        for f in [flat.clone(), nested, map.clone()] {
            assert_eq!(reply::<Vec<(String, f64)>>(f), Ok(want.clone()));
        }
        assert_eq!(
            reply::<Vec<(String, f64)>>(Frame::Array(vec![])),
            Ok(vec![])
        );
        let e = conversion::<Vec<(String, String)>>(Frame::Array(vec![bulk("a")]));
        assert_eq!(
            e.to_string(),
            "expected key/value pairs (an even number of elements), found array of 1 elements"
        );

        let btree = reply::<BTreeMap<String, i64>>(flat).unwrap();
        assert_eq!(btree.get("b"), Some(&2));
        assert_eq!(reply::<BTreeMap<String, i64>>(map).unwrap().len(), 2);
        assert_eq!(
            conversion::<BTreeMap<String, i64>>(Frame::Integer(1)).to_string(),
            "expected map or array of pairs, found integer 1"
        );
    }

    #[cfg(feature = "std")]
    #[test]
    fn hash_maps_and_sets() {
        use std::collections::{HashMap, HashSet};
        let flat = Frame::Array(vec![bulk("f"), bulk("v")]);
        let map: HashMap<String, String> = reply(flat).unwrap();
        assert_eq!(map["f"], "v");
        let resp3: HashMap<Bytes, i64> =
            reply(Frame::Map(vec![(bulk("n"), Frame::Integer(1))])).unwrap();
        assert_eq!(resp3[&Bytes::from_static(b"n")], 1);
        let set: HashSet<i64> = reply(Frame::Set(vec![
            Frame::Integer(1),
            bulk("1"),
            Frame::Integer(2),
        ]))
        .unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(
            conversion::<HashSet<i64>>(Frame::Map(vec![])).to_string(),
            "expected set or array, found map of 0 pairs"
        );
    }

    #[test]
    fn btree_sets() {
        let set: BTreeSet<String> =
            reply(Frame::Array(vec![bulk("b"), bulk("a"), bulk("b")])).unwrap();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(conversion::<BTreeSet<i64>>(Frame::Null).found, "null");
    }

    #[test]
    fn tuples_need_the_exact_length() {
        let three = Frame::Array(vec![bulk("k"), bulk("m"), Frame::Double(1.5)]);
        assert_eq!(
            reply::<(String, String, f64)>(three.clone()),
            Ok(("k".into(), "m".into(), 1.5))
        );
        assert_eq!(
            conversion::<(String, String)>(three).to_string(),
            "expected array of 2 elements, found array of 3 elements"
        );
        assert_eq!(
            reply::<(i64,)>(Frame::Set(vec![Frame::Integer(1)])),
            Ok((1,))
        );
        let twelve = Frame::Array((0..12).map(Frame::Integer).collect());
        assert_eq!(
            reply::<(u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8)>(twelve),
            Ok((0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11))
        );
        assert_eq!(
            conversion::<(i64, i64)>(Frame::Map(vec![])).expected,
            "array of 2 elements"
        );
    }
}
