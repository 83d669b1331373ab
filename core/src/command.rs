//! Building commands: anything that can write itself as a RESP command.
//!
//! Commands are encoded straight into the connection's output buffer (or,
//! while no connection is ready, into one shared buffer the queued requests
//! are sliced from): no per-command allocation on the write path.

use alloc::vec::Vec;
use bytes::BytesMut;

use crate::resp::{ToArg, encode_command};
use crate::time::Duration;

/// A command that can encode itself as a RESP array of bulk strings.
///
/// Besides its bytes, a command tells the client how it will be answered:
/// blocking commands go to a connection of their own with a response
/// deadline extended by their block time, and subscription commands are
/// answered by push confirmations instead of a reply.
pub trait Command {
    /// Appends the encoded command to `dst`.
    fn encode(&self, dst: &mut BytesMut);

    /// How long the server may block before answering (`BLPOP ... 5`: five
    /// seconds); `Some(Duration::MAX)` for ever. `None` for commands that do
    /// not block.
    fn block_timeout(&self) -> Option<Duration> {
        None
    }

    /// How the server answers.
    fn reply_kind(&self) -> ReplyKind {
        ReplyKind::Reply
    }
}

/// How the server answers a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// One reply, in order with the other commands of the connection.
    Reply,
    /// `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`: no reply; each channel is
    /// confirmed by a `subscribe` push (RESP3) or message (RESP2, where the
    /// connection then only takes subscription commands).
    Subscribe(SubscriptionKind),
    /// `UNSUBSCRIBE`, `PUNSUBSCRIBE`, `SUNSUBSCRIBE`: no reply; each channel
    /// left is confirmed by an `unsubscribe` push. Without arguments, one
    /// confirmation per channel subscribed, or a single one with a null
    /// channel when there was none.
    Unsubscribe(SubscriptionKind),
}

/// The three kinds of pub/sub subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionKind {
    /// A channel (`SUBSCRIBE`, `message`).
    Channel,
    /// A glob pattern over channel names (`PSUBSCRIBE`, `pmessage`).
    Pattern,
    /// A shard channel, hashed to a cluster slot like a key (`SSUBSCRIBE`,
    /// `smessage`).
    Shard,
}

impl<A: ToArg> Command for [A] {
    #[inline]
    fn encode(&self, dst: &mut BytesMut) {
        encode_command(dst, self);
    }
}

impl<A: ToArg, const N: usize> Command for [A; N] {
    #[inline]
    fn encode(&self, dst: &mut BytesMut) {
        encode_command(dst, self);
    }
}

impl<A: ToArg> Command for Vec<A> {
    #[inline]
    fn encode(&self, dst: &mut BytesMut) {
        encode_command(dst, self);
    }
}

impl<C: Command + ?Sized> Command for &C {
    fn encode(&self, dst: &mut BytesMut) {
        (**self).encode(dst);
    }

    fn block_timeout(&self) -> Option<Duration> {
        (**self).block_timeout()
    }

    fn reply_kind(&self) -> ReplyKind {
        (**self).reply_kind()
    }
}
