//! [`Pipeline`]: commands sent together, their replies decoded together.
//!
//! A pipeline is sans-IO like the rest: it holds the commands and decodes
//! the replies. The adapter sends each of [`Pipeline::commands`] in order
//! (one write), collects exactly one reply frame for each, and hands them
//! to [`Pipeline::decode`].

use alloc::format;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use super::builder::Cmd;
use super::reply::{ConversionError, FromFrame, ReplyError};
use super::server::{exec, multi};
use crate::resp::Frame;

/// Commands sent together, with typed results.
///
/// A pipeline built with [`Pipeline::new`] and [`Pipeline::add`] tracks the
/// reply types of its commands as a tuple (up to 12 commands):
///
/// ```
/// use bytes::Bytes;
/// use redpoll_core::cmd::{self, Pipeline};
/// use redpoll_core::resp::Frame;
///
/// let pipe = Pipeline::new().add(cmd::set("k", "v")).add(cmd::incr("n"));
/// let replies = vec![Frame::Simple(Bytes::from_static(b"OK")), Frame::Integer(1)];
/// let ((), n): ((), i64) = pipe.decode(replies).unwrap();
/// assert_eq!(n, 1);
/// ```
///
/// A pipeline built with [`Pipeline::dynamic`] and [`Pipeline::push`] takes
/// any number of commands and gives their replies as frames, error replies
/// included, one per command.
///
/// [`Pipeline::atomic`] wraps the commands in `MULTI` / `EXEC`: they run as
/// one transaction, and the results are read from the `EXEC` reply.
#[must_use = "a pipeline does nothing until it is sent"]
pub struct Pipeline<T = ()> {
    cmds: Vec<Cmd>,
    /// `MULTI` and `EXEC`, for an atomic pipeline.
    transaction: Option<(Cmd, Cmd)>,
    results: PhantomData<fn() -> T>,
}

impl Pipeline {
    /// An empty pipeline with typed results.
    pub const fn new() -> Self {
        Self {
            cmds: Vec::new(),
            transaction: None,
            results: PhantomData,
        }
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipeline<Vec<Frame>> {
    /// An empty pipeline whose results are the reply frames.
    pub const fn dynamic() -> Self {
        Self {
            cmds: Vec::new(),
            transaction: None,
            results: PhantomData,
        }
    }

    /// Adds a command; its reply will be one frame of the results.
    pub fn push<U>(&mut self, cmd: Cmd<U>) {
        self.cmds.push(cmd.returning());
    }
}

impl<T> Pipeline<T> {
    /// Adds a command; its reply, converted, is the next element of the
    /// results tuple.
    #[expect(
        clippy::should_implement_trait,
        reason = "a builder step that changes the type, not `+`"
    )]
    pub fn add<U>(self, cmd: Cmd<U>) -> Pipeline<T::Output>
    where
        T: TupleAppend<U>,
    {
        let mut cmds = self.cmds;
        cmds.push(cmd.returning());
        Pipeline {
            cmds,
            transaction: self.transaction,
            results: PhantomData,
        }
    }

    /// Makes the pipeline a transaction: `MULTI`, the commands, `EXEC`.
    pub fn atomic(mut self) -> Self {
        self.transaction = Some((multi().returning(), exec().returning()));
        self
    }

    /// Whether the pipeline is a transaction.
    #[must_use]
    pub const fn is_atomic(&self) -> bool {
        self.transaction.is_some()
    }

    /// The number of commands added (`MULTI` and `EXEC` not counted).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.cmds.len()
    }

    /// Whether no command was added.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// The commands to send, in order, `MULTI` and `EXEC` included for an
    /// atomic pipeline. Each gets exactly one reply.
    pub fn commands(&self) -> impl Iterator<Item = &Cmd> + '_ {
        let (multi, exec) = match &self.transaction {
            Some((multi, exec)) => (Some(multi), Some(exec)),
            None => (None, None),
        };
        multi.into_iter().chain(&self.cmds).chain(exec)
    }

    /// The number of reply frames [`Pipeline::decode`] takes: one per
    /// command of [`Pipeline::commands`].
    #[must_use]
    pub const fn reply_count(&self) -> usize {
        self.cmds.len() + if self.transaction.is_some() { 2 } else { 0 }
    }

    /// Converts the replies, one per command of [`Pipeline::commands`] in
    /// the same order, to the results.
    ///
    /// # Errors
    ///
    /// - [`ReplyError::Conversion`] when the number of frames is not
    ///   [`Pipeline::reply_count`] (or the `EXEC` reply holds a different
    ///   number of results), or a reply does not convert.
    /// - [`ReplyError::Server`] for the first error reply among the
    ///   results (typed pipelines; ask for `Result<T, ServerError>` with
    ///   [`Cmd::returning`] to get it as a value instead), or, in an atomic
    ///   pipeline, when `MULTI` failed, a command was refused when queued
    ///   (its error rather than the `EXECABORT` that follows), or `EXEC`
    ///   failed.
    /// - [`ReplyError::Aborted`]: a `WATCH`ed key changed; nothing ran.
    pub fn decode(&self, frames: Vec<Frame>) -> Result<T, ReplyError>
    where
        T: FromReplies,
    {
        check_count(frames.len(), self.reply_count())?;
        if self.transaction.is_none() {
            return T::from_replies(frames);
        }
        let mut frames = frames.into_iter();
        // MULTI's +OK, then one +QUEUED per command.
        for frame in frames.by_ref().take(1 + self.cmds.len()) {
            <()>::from_frame(frame)?;
        }
        let exec = frames.next().unwrap_or(Frame::Null);
        match Option::<Vec<Frame>>::from_frame(exec)? {
            Some(results) => {
                check_count(results.len(), self.cmds.len())?;
                T::from_replies(results)
            }
            None => Err(ReplyError::Aborted),
        }
    }
}

impl<T> Clone for Pipeline<T> {
    fn clone(&self) -> Self {
        Self {
            cmds: self.cmds.clone(),
            transaction: self.transaction.clone(),
            results: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Pipeline<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("atomic", &self.is_atomic())
            .field("cmds", &self.cmds)
            .finish()
    }
}

fn check_count(got: usize, want: usize) -> Result<(), ReplyError> {
    if got == want {
        Ok(())
    } else {
        Err(ConversionError {
            expected: "one reply per command",
            found: format!("{got} replies for {want} commands"),
        }
        .into())
    }
}

/// The results of a pipeline, read from one reply frame per command.
///
/// Implemented for tuples of up to 12 [`FromFrame`] types (a typed
/// pipeline) and for `Vec<Frame>` (a dynamic one).
pub trait FromReplies: Sized {
    /// Converts the replies, one per command.
    ///
    /// # Errors
    ///
    /// A count that does not match, or a reply that does not convert.
    fn from_replies(frames: Vec<Frame>) -> Result<Self, ReplyError>;
}

impl FromReplies for Vec<Frame> {
    /// The frames as they are, error replies included.
    fn from_replies(frames: Vec<Frame>) -> Result<Self, ReplyError> {
        Ok(frames)
    }
}

impl FromReplies for () {
    fn from_replies(frames: Vec<Frame>) -> Result<Self, ReplyError> {
        check_count(frames.len(), 0)
    }
}

/// A tuple type with one more element `U` at its end: how a typed
/// [`Pipeline`] grows with each [`Pipeline::add`]. Implemented for tuples
/// of up to 11 elements.
pub trait TupleAppend<U> {
    /// The tuple with `U` appended.
    type Output;
}

macro_rules! tuples {
    ($($n:literal: ($($t:ident),+);)*) => {$(
        impl<$($t: FromFrame),+> FromReplies for ($($t,)+) {
            fn from_replies(frames: Vec<Frame>) -> Result<Self, ReplyError> {
                check_count(frames.len(), $n)?;
                let mut frames = frames.into_iter();
                Ok(($($t::from_frame(frames.next().unwrap_or(Frame::Null))?,)+))
            }
        }
    )*};
}

tuples! {
    1: (A);
    2: (A, B);
    3: (A, B, C);
    4: (A, B, C, D);
    5: (A, B, C, D, E);
    6: (A, B, C, D, E, F);
    7: (A, B, C, D, E, F, G);
    8: (A, B, C, D, E, F, G, H);
    9: (A, B, C, D, E, F, G, H, I);
    10: (A, B, C, D, E, F, G, H, I, J);
    11: (A, B, C, D, E, F, G, H, I, J, K);
    12: (A, B, C, D, E, F, G, H, I, J, K, L);
}

macro_rules! appends {
    ($(($($t:ident),*);)*) => {$(
        impl<$($t,)* U> TupleAppend<U> for ($($t,)*) {
            type Output = ($($t,)* U,);
        }
    )*};
}

appends! {
    ();
    (A);
    (A, B);
    (A, B, C);
    (A, B, C, D);
    (A, B, C, D, E);
    (A, B, C, D, E, F);
    (A, B, C, D, E, F, G);
    (A, B, C, D, E, F, G, H);
    (A, B, C, D, E, F, G, H, I);
    (A, B, C, D, E, F, G, H, I, J);
    (A, B, C, D, E, F, G, H, I, J, K);
}

#[cfg(test)]
mod tests {
    use alloc::string::{String, ToString};
    use alloc::vec;
    use bytes::Bytes;

    use super::*;
    use crate::cmd::reply::{ServerError, ServerErrorKind};
    use crate::cmd::strings::tests::argv;
    use crate::cmd::{get, incr, set};

    fn ok() -> Frame {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    fn queued() -> Frame {
        Frame::Simple(Bytes::from_static(b"QUEUED"))
    }

    fn b(s: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(s.as_bytes()))
    }

    fn err(s: &'static str) -> Frame {
        Frame::Error(Bytes::from_static(s.as_bytes()))
    }

    fn names<T>(pipe: &Pipeline<T>) -> Vec<String> {
        pipe.commands().map(|c| argv(c).join(" ")).collect()
    }

    #[test]
    fn typed_results() {
        let pipe = Pipeline::new()
            .add(set("k", "v"))
            .add(get("k"))
            .add(incr("n"));
        assert_eq!(pipe.len(), 3);
        assert!(!pipe.is_empty());
        assert_eq!(pipe.reply_count(), 3);
        assert_eq!(names(&pipe), ["SET k v", "GET k", "INCR n"]);
        let got = pipe.decode(vec![ok(), b("v"), Frame::Integer(7)]);
        assert_eq!(got, Ok(((), Some(Bytes::from_static(b"v")), 7)));
    }

    #[test]
    fn commands_keep_their_metadata() {
        let pipe = Pipeline::new().add(get("k"));
        let cmd = pipe.commands().next().unwrap();
        assert!(cmd.is_read_only());
        assert_eq!(cmd.keys().collect::<Vec<_>>(), [b"k"]);
    }

    #[test]
    fn wrong_number_of_replies() {
        let pipe = Pipeline::new().add(set("k", "v")).add(get("k"));
        let e = pipe.decode(vec![ok()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unexpected reply: expected one reply per command, found 1 replies for 2 commands"
        );
        assert!(matches!(
            pipe.decode(vec![ok(), ok(), ok()]),
            Err(ReplyError::Conversion(_))
        ));
    }

    #[test]
    fn server_error_in_the_middle() {
        let pipe = Pipeline::new()
            .add(set("k", "v"))
            .add(incr("k"))
            .add(get("k"));
        let replies = vec![ok(), err("ERR value is not an integer"), b("v")];
        assert_eq!(
            pipe.decode(replies.clone()),
            Err(ReplyError::Server(ServerError::parse(
                b"ERR value is not an integer"
            )))
        );
        // Asked for as a value, the error does not fail the others.
        let pipe = Pipeline::new()
            .add(set("k", "v"))
            .add(incr("k").returning::<Result<i64, ServerError>>())
            .add(get("k"));
        let ((), n, v) = pipe.decode(replies).unwrap();
        assert_eq!(n.unwrap_err().kind(), ServerErrorKind::Err);
        assert_eq!(v, Some(Bytes::from_static(b"v")));
    }

    #[test]
    fn conversion_error_in_the_middle() {
        let pipe = Pipeline::new().add(get("k")).add(incr("n"));
        let e = pipe.decode(vec![b("v"), b("x")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unexpected reply: expected integer (i64), found bulk string "x""#
        );
    }

    #[test]
    fn twelve_commands() {
        let pipe = Pipeline::new()
            .add(incr("a"))
            .add(incr("b"))
            .add(incr("c"))
            .add(incr("d"))
            .add(incr("e"))
            .add(incr("f"))
            .add(incr("g"))
            .add(incr("h"))
            .add(incr("i"))
            .add(incr("j"))
            .add(incr("k"))
            .add(get("l"));
        let mut replies: Vec<Frame> = (1..=11).map(Frame::Integer).collect();
        replies.push(Frame::NullBulk);
        let got = pipe.decode(replies).unwrap();
        assert_eq!(got.0, 1);
        assert_eq!(got.10, 11);
        assert_eq!(got.11, None);
    }

    #[test]
    fn empty_pipelines() {
        assert_eq!(Pipeline::new().decode(vec![]), Ok(()));
        assert_eq!(Pipeline::default().reply_count(), 0);
        assert!(matches!(
            Pipeline::new().decode(vec![ok()]),
            Err(ReplyError::Conversion(_))
        ));
        let atomic = Pipeline::new().atomic();
        assert_eq!(names(&atomic), ["MULTI", "EXEC"]);
        assert_eq!(atomic.decode(vec![ok(), Frame::Array(vec![])]), Ok(()));
    }

    #[test]
    fn atomic_results_come_from_exec() {
        let pipe = Pipeline::new().add(set("k", "v")).add(get("k")).atomic();
        assert!(pipe.is_atomic());
        assert_eq!(pipe.len(), 2);
        assert_eq!(pipe.reply_count(), 4);
        assert_eq!(names(&pipe), ["MULTI", "SET k v", "GET k", "EXEC"]);
        let replies = vec![ok(), queued(), queued(), Frame::Array(vec![ok(), b("v")])];
        assert_eq!(
            pipe.decode(replies),
            Ok(((), Some(Bytes::from_static(b"v"))))
        );
    }

    #[test]
    fn atomic_failures() {
        let pipe = Pipeline::new().add(set("k", "v")).add(incr("k")).atomic();
        // A watched key changed.
        assert_eq!(
            pipe.decode(vec![ok(), queued(), queued(), Frame::NullArray]),
            Err(ReplyError::Aborted)
        );
        // A command refused when queued: its error, not EXECABORT.
        let refused = vec![
            ok(),
            queued(),
            err("ERR wrong number of arguments"),
            err("EXECABORT Transaction discarded"),
        ];
        assert_eq!(
            pipe.decode(refused).unwrap_err().server().unwrap().message,
            "wrong number of arguments"
        );
        // MULTI itself refused (nested MULTI).
        let nested = vec![
            err("ERR MULTI calls can not be nested"),
            queued(),
            queued(),
            Frame::Array(vec![]),
        ];
        assert!(matches!(pipe.decode(nested), Err(ReplyError::Server(_))));
        // A command failing while it runs.
        let failed = vec![
            ok(),
            queued(),
            queued(),
            Frame::Array(vec![ok(), err("ERR not an integer")]),
        ];
        assert_eq!(
            pipe.decode(failed).unwrap_err().server().unwrap().code,
            "ERR"
        );
        // EXEC with the wrong number of results.
        let short = vec![ok(), queued(), queued(), Frame::Array(vec![ok()])];
        assert!(matches!(pipe.decode(short), Err(ReplyError::Conversion(_))));
        // EXEC answered with something that is not a list of results.
        let odd = vec![ok(), queued(), queued(), Frame::Integer(1)];
        assert_eq!(
            pipe.decode(odd).unwrap_err().to_string(),
            "unexpected reply: expected array, found integer 1"
        );
    }

    #[test]
    fn dynamic_pipeline_keeps_every_reply() {
        let mut pipe = Pipeline::dynamic();
        pipe.push(set("k", "v"));
        pipe.push(incr("k"));
        pipe.push(Cmd::new("PING"));
        assert_eq!(pipe.len(), 3);
        assert_eq!(names(&pipe), ["SET k v", "INCR k", "PING"]);
        let replies = vec![
            ok(),
            err("ERR not an integer"),
            Frame::Simple(Bytes::from_static(b"PONG")),
        ];
        assert_eq!(pipe.decode(replies.clone()), Ok(replies));
        assert!(matches!(
            pipe.decode(vec![ok()]),
            Err(ReplyError::Conversion(_))
        ));

        let atomic = pipe.clone().atomic();
        let exec = Frame::Array(vec![ok(), err("ERR not an integer"), ok()]);
        assert_eq!(
            atomic.decode(vec![ok(), queued(), queued(), queued(), exec]),
            Ok(vec![ok(), err("ERR not an integer"), ok()])
        );
        assert_eq!(
            alloc::format!("{:?}", Pipeline::new().add(get("k"))),
            r#"Pipeline { atomic: false, cmds: [Cmd(["GET", "k"])] }"#
        );
    }
}
