//! The command API: typed commands, reply conversion, pipelines, scans,
//! scripts and pub/sub messages. Both adapters use it as it is.
//!
//! # What this module decides
//!
//! - How a command is encoded, once, when it is built ([`Cmd`]): its
//!   arguments are kept as RESP bulk strings, so sending it is one header
//!   and one copy.
//! - What its reply converts to: the `T` of [`Cmd<T>`], through
//!   [`FromFrame`]; and how a reply that does not fit is reported
//!   ([`ReplyError`]: the server's error, or a [`ConversionError`] naming
//!   what was expected and what came).
//! - The facts about a command that the layers above act on: its keys
//!   (cluster routing), its block timeout (response deadlines), whether it
//!   is read-only (retries), and whether pushes answer it (pub/sub).
//! - The sans-IO parts of the multi-step operations: [`ScanState`] (the
//!   cursor loop), [`Script::fallback`] (`NOSCRIPT` → `EVAL`),
//!   [`Pipeline::decode`] (one reply per command, `MULTI` / `EXEC`).
//!
//! # Invariants
//!
//! - **One reply type per builder.** Each builder function returns a
//!   `Cmd<T>` whose `T` reads every shape the server may answer with, in
//!   RESP2 and RESP3 alike; options that change the reply are separate
//!   builders (`set` → `()`, [`set_with`] → `bool`, [`set_get`] → the old
//!   value), and options are plain values (`SetOptions`, `ScanOptions`).
//! - **Errors are never data by accident.** An error reply becomes
//!   [`ReplyError::Server`] for every `T`, unless `T` asks to keep it
//!   (`Result<U, ServerError>`, or `Vec<Frame>` elements): see
//!   [`FromFrame`].
//! - **Metadata is read from the arguments where it can be**: the block
//!   timeout and the reply kind come from the encoded arguments, so commands
//!   built by hand ([`Cmd::new`]) report them too. Keys and the read-only
//!   flag are recorded by the builders ([`Cmd::key`], [`Cmd::read_only`]).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use redpoll_core::cmd::{self, SetOptions};
//! use redpoll_core::resp::Frame;
//!
//! let set = cmd::set_with("session", "abc", SetOptions::new().ex(60).nx());
//! assert_eq!(set.keys().collect::<Vec<_>>(), [b"session"]);
//! // The adapter sends it (it implements `Command`), then decodes the reply:
//! assert_eq!(set.decode(Frame::Simple(Bytes::from_static(b"OK"))), Ok(true));
//! assert_eq!(set.decode(Frame::Null), Ok(false));
//! ```

mod builder;
mod hashes;
mod lists;
mod pipeline;
mod pubsub;
mod reply;
mod scan;
mod script;
mod server;
mod sets;
mod strings;

pub use builder::{BLOCK_FOREVER, Cmd, ReplyKind, SubscriptionKind};
pub use hashes::*;
pub use lists::*;
pub use pipeline::{FromReplies, Pipeline, TupleAppend};
pub use pubsub::*;
pub use reply::{ConversionError, FromFrame, ReplyError, ServerError, ServerErrorKind, reply};
pub use scan::*;
pub use script::*;
pub use server::*;
pub use sets::*;
pub use strings::*;

use crate::resp::ToArg;

/// Any command by name: the escape hatch, same as [`Cmd::new`]. Its reply
/// is a [`Frame`](crate::resp::Frame) until [`Cmd::returning`] says
/// otherwise.
///
/// ```
/// use redpoll_core::cmd;
///
/// let c = cmd::cmd("OBJECT").arg("FREQ").key("k").read_only().returning::<i64>();
/// assert_eq!(c.keys().collect::<Vec<_>>(), [b"k"]);
/// ```
pub fn cmd(name: impl ToArg) -> Cmd {
    Cmd::new(name)
}
