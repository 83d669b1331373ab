//! Pub/sub: publishing, the subscription commands, and [`PushMessage`], the
//! parsed form of what a subscribed connection receives.
//!
//! The subscription commands get no reply of their own: the server confirms
//! each channel with a push frame (RESP3; in RESP2 an array, on a connection
//! that then takes only subscription commands). Their
//! [`Cmd::reply_kind`](super::Cmd::reply_kind) says so, for the connection
//! layer to route those frames apart from replies.
//!
//! Shard channels (`SPUBLISH`, `SSUBSCRIBE`, `SUNSUBSCRIBE`) are hashed to a
//! cluster slot like keys, so the builders record them as the command's
//! keys.

use alloc::vec::Vec;
use bytes::Bytes;

use super::builder::{Cmd, SubscriptionKind};
use crate::resp::{Frame, ToArg};

/// `PUBLISH channel message`: how many subscribers received it (on this
/// node).
pub fn publish(channel: impl ToArg, message: impl ToArg) -> Cmd<u64> {
    Cmd::named("PUBLISH").arg(channel).arg(message)
}

/// `SPUBLISH shardchannel message`: how many subscribers received it.
pub fn spublish(channel: impl ToArg, message: impl ToArg) -> Cmd<u64> {
    Cmd::named("SPUBLISH").key(channel).arg(message)
}

/// `SUBSCRIBE channel...`: confirmed by one `subscribe` push per channel.
pub fn subscribe<C: ToArg>(channels: impl IntoIterator<Item = C>) -> Cmd<()> {
    Cmd::named("SUBSCRIBE").args(channels)
}

/// `PSUBSCRIBE pattern...`: confirmed by one `psubscribe` push per pattern.
pub fn psubscribe<P: ToArg>(patterns: impl IntoIterator<Item = P>) -> Cmd<()> {
    Cmd::named("PSUBSCRIBE").args(patterns)
}

/// `SSUBSCRIBE shardchannel...`: confirmed by one `ssubscribe` push per
/// channel. The channels of one call must hash to one slot.
pub fn ssubscribe<C: ToArg>(channels: impl IntoIterator<Item = C>) -> Cmd<()> {
    let mut cmd = Cmd::named("SSUBSCRIBE");
    cmd.push_keys(channels);
    cmd
}

/// `UNSUBSCRIBE channel...`, or from every channel when there are none.
pub fn unsubscribe<C: ToArg>(channels: impl IntoIterator<Item = C>) -> Cmd<()> {
    Cmd::named("UNSUBSCRIBE").args(channels)
}

/// `PUNSUBSCRIBE pattern...`, or from every pattern when there are none.
pub fn punsubscribe<P: ToArg>(patterns: impl IntoIterator<Item = P>) -> Cmd<()> {
    Cmd::named("PUNSUBSCRIBE").args(patterns)
}

/// `SUNSUBSCRIBE shardchannel...`, or from every shard channel when there
/// are none.
pub fn sunsubscribe<C: ToArg>(channels: impl IntoIterator<Item = C>) -> Cmd<()> {
    let mut cmd = Cmd::named("SUNSUBSCRIBE");
    cmd.push_keys(channels);
    cmd
}

/// What a push frame (or, in RESP2, an array received while subscribed)
/// says.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum PushMessage {
    /// `message`: published to a channel this connection subscribed to.
    Message {
        /// The channel.
        channel: Bytes,
        /// The message.
        payload: Bytes,
    },
    /// `pmessage`: published to a channel matching a subscribed pattern.
    PMessage {
        /// The pattern that matched.
        pattern: Bytes,
        /// The channel.
        channel: Bytes,
        /// The message.
        payload: Bytes,
    },
    /// `smessage`: published to a subscribed shard channel.
    SMessage {
        /// The shard channel.
        channel: Bytes,
        /// The message.
        payload: Bytes,
    },
    /// `subscribe`, `psubscribe`, `ssubscribe`: a subscription confirmed.
    Subscribe {
        /// Which command it confirms.
        kind: SubscriptionKind,
        /// The channel or pattern.
        channel: Bytes,
        /// How many subscriptions the connection now has (of this kind for
        /// shard channels, of channels and patterns together otherwise).
        count: u64,
    },
    /// `unsubscribe`, `punsubscribe`, `sunsubscribe`: a subscription ended,
    /// by request or, for shard channels, because the slot moved.
    Unsubscribe {
        /// Which command it confirms.
        kind: SubscriptionKind,
        /// The channel or pattern; `None` when there was no subscription
        /// to end.
        channel: Option<Bytes>,
        /// How many subscriptions remain.
        count: u64,
    },
    /// `invalidate`: client-side caching says these keys changed.
    Invalidate {
        /// The keys; `None` when every key is invalid (`FLUSHALL`,
        /// `FLUSHDB`).
        keys: Option<Vec<Bytes>>,
    },
    /// Anything else (a `pong` on a RESP2 subscribed connection, a push of
    /// a newer server or a module), or a known kind of an unexpected shape.
    Other(Frame),
}

impl PushMessage {
    /// Reads a push frame or array. Never fails: what it does not know is
    /// [`PushMessage::Other`], with the frame unchanged.
    #[must_use]
    pub fn parse(frame: Frame) -> Self {
        Self::read(&frame).unwrap_or(Self::Other(frame))
    }

    fn read(frame: &Frame) -> Option<Self> {
        let (Frame::Push(items) | Frame::Array(items)) = frame.without_attributes() else {
            return None;
        };
        let (kind, rest) = items.split_first()?;
        let kind = string(kind)?;
        let is = |name: &[u8]| kind.eq_ignore_ascii_case(name);
        let message = match rest {
            [channel, payload] if is(b"message") => Self::Message {
                channel: string(channel)?.clone(),
                payload: string(payload)?.clone(),
            },
            [channel, payload] if is(b"smessage") => Self::SMessage {
                channel: string(channel)?.clone(),
                payload: string(payload)?.clone(),
            },
            [pattern, channel, payload] if is(b"pmessage") => Self::PMessage {
                pattern: string(pattern)?.clone(),
                channel: string(channel)?.clone(),
                payload: string(payload)?.clone(),
            },
            [channel, count] => {
                let count = u64::try_from(integer(count)?).ok()?;
                if let Some(kind) = subscription(kind, b"subscribe") {
                    Self::Subscribe {
                        kind,
                        channel: string(channel)?.clone(),
                        count,
                    }
                } else if let Some(kind) = subscription(kind, b"unsubscribe") {
                    let channel = match channel.without_attributes() {
                        f if f.is_null() => None,
                        f => Some(string(f)?.clone()),
                    };
                    Self::Unsubscribe {
                        kind,
                        channel,
                        count,
                    }
                } else {
                    return None;
                }
            }
            [keys] if is(b"invalidate") => Self::Invalidate {
                keys: match keys.without_attributes() {
                    f if f.is_null() => None,
                    Frame::Array(keys) | Frame::Set(keys) => Some(
                        keys.iter()
                            .map(|k| string(k).cloned())
                            .collect::<Option<_>>()?,
                    ),
                    _ => return None,
                },
            },
            _ => return None,
        };
        Some(message)
    }
}

/// The kind of `subscribe` / `unsubscribe` (`base`) with its prefix: none,
/// `p` or `s`.
fn subscription(name: &[u8], base: &[u8]) -> Option<SubscriptionKind> {
    let (prefix, rest) = match name.len().checked_sub(base.len())? {
        0 => (None, name),
        1 => (Some(name[0].to_ascii_lowercase()), &name[1..]),
        _ => return None,
    };
    if !rest.eq_ignore_ascii_case(base) {
        return None;
    }
    match prefix {
        None => Some(SubscriptionKind::Channel),
        Some(b'p') => Some(SubscriptionKind::Pattern),
        Some(b's') => Some(SubscriptionKind::Shard),
        Some(_) => None,
    }
}

fn string(frame: &Frame) -> Option<&Bytes> {
    match frame.without_attributes() {
        Frame::Bulk(b) | Frame::Simple(b) | Frame::Verbatim { text: b, .. } => Some(b),
        _ => None,
    }
}

fn integer(frame: &Frame) -> Option<i64> {
    match frame.without_attributes() {
        Frame::Integer(n) => Some(*n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::vec;

    use super::*;
    use crate::cmd::ReplyKind;
    use crate::cmd::strings::tests::{argv, keys_of, wire};
    use crate::resp::Attributed;

    fn b(s: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(s.as_bytes()))
    }

    fn bytes(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn encodes() {
        assert_eq!(
            wire(&publish("news", "hi")),
            b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(argv(&spublish("s", "m")), ["SPUBLISH", "s", "m"]);
        assert_eq!(argv(&subscribe(["a", "b"])), ["SUBSCRIBE", "a", "b"]);
        assert_eq!(argv(&psubscribe(["n.*"])), ["PSUBSCRIBE", "n.*"]);
        assert_eq!(argv(&ssubscribe(["s"])), ["SSUBSCRIBE", "s"]);
        assert_eq!(argv(&unsubscribe([""; 0])), ["UNSUBSCRIBE"]);
        assert_eq!(argv(&punsubscribe(["n.*"])), ["PUNSUBSCRIBE", "n.*"]);
        assert_eq!(argv(&sunsubscribe(["s"])), ["SUNSUBSCRIBE", "s"]);
    }

    #[test]
    fn shard_channels_are_keys() {
        assert_eq!(keys_of(&spublish("s", "m")), ["s"]);
        assert_eq!(keys_of(&ssubscribe(["s", "t"])), ["s", "t"]);
        assert_eq!(keys_of(&sunsubscribe(["s"])), ["s"]);
        assert!(keys_of(&publish("c", "m")).is_empty());
        assert!(keys_of(&subscribe(["c"])).is_empty());
    }

    #[test]
    fn reply_kinds() {
        use SubscriptionKind::{Channel, Pattern, Shard};
        assert_eq!(publish("c", "m").reply_kind(), ReplyKind::Reply);
        assert_eq!(spublish("c", "m").reply_kind(), ReplyKind::Reply);
        assert_eq!(subscribe(["c"]).reply_kind(), ReplyKind::Subscribe(Channel));
        assert_eq!(
            psubscribe(["c"]).reply_kind(),
            ReplyKind::Subscribe(Pattern)
        );
        assert_eq!(ssubscribe(["c"]).reply_kind(), ReplyKind::Subscribe(Shard));
        assert_eq!(
            unsubscribe([""; 0]).reply_kind(),
            ReplyKind::Unsubscribe(Channel)
        );
        assert_eq!(
            punsubscribe(["c"]).reply_kind(),
            ReplyKind::Unsubscribe(Pattern)
        );
        assert_eq!(
            sunsubscribe(["c"]).reply_kind(),
            ReplyKind::Unsubscribe(Shard)
        );
    }

    #[test]
    fn parses_messages() {
        assert_eq!(
            PushMessage::parse(Frame::Push(vec![b("message"), b("news"), b("hi")])),
            PushMessage::Message {
                channel: bytes("news"),
                payload: bytes("hi")
            }
        );
        // RESP2: an array, and the kind as any case.
        assert_eq!(
            PushMessage::parse(Frame::Array(vec![
                b("PMESSAGE"),
                b("n.*"),
                b("n.1"),
                b("hi")
            ])),
            PushMessage::PMessage {
                pattern: bytes("n.*"),
                channel: bytes("n.1"),
                payload: bytes("hi")
            }
        );
        assert_eq!(
            PushMessage::parse(Frame::Push(vec![b("smessage"), b("s"), b("hi")])),
            PushMessage::SMessage {
                channel: bytes("s"),
                payload: bytes("hi")
            }
        );
    }

    #[test]
    fn parses_confirmations() {
        let cases = [
            ("subscribe", SubscriptionKind::Channel),
            ("psubscribe", SubscriptionKind::Pattern),
            ("ssubscribe", SubscriptionKind::Shard),
        ];
        for (name, kind) in cases {
            assert_eq!(
                PushMessage::parse(Frame::Push(vec![b(name), b("c"), Frame::Integer(2)])),
                PushMessage::Subscribe {
                    kind,
                    channel: bytes("c"),
                    count: 2
                }
            );
        }
        let cases = [
            ("unsubscribe", SubscriptionKind::Channel),
            ("punsubscribe", SubscriptionKind::Pattern),
            ("sunsubscribe", SubscriptionKind::Shard),
        ];
        for (name, kind) in cases {
            assert_eq!(
                PushMessage::parse(Frame::Push(vec![b(name), b("c"), Frame::Integer(0)])),
                PushMessage::Unsubscribe {
                    kind,
                    channel: Some(bytes("c")),
                    count: 0
                }
            );
        }
        assert_eq!(
            PushMessage::parse(Frame::Push(vec![
                b("unsubscribe"),
                Frame::Null,
                Frame::Integer(0)
            ])),
            PushMessage::Unsubscribe {
                kind: SubscriptionKind::Channel,
                channel: None,
                count: 0
            }
        );
    }

    #[test]
    fn parses_invalidations() {
        assert_eq!(
            PushMessage::parse(Frame::Push(vec![
                b("invalidate"),
                Frame::Array(vec![b("k1"), b("k2")])
            ])),
            PushMessage::Invalidate {
                keys: Some(vec![bytes("k1"), bytes("k2")])
            }
        );
        assert_eq!(
            PushMessage::parse(Frame::Push(vec![b("invalidate"), Frame::Null])),
            PushMessage::Invalidate { keys: None }
        );
    }

    #[test]
    fn attributes_are_skipped() {
        let frame = Frame::Attributed(Box::new(Attributed {
            attributes: vec![],
            frame: Frame::Push(vec![b("message"), b("c"), b("m")]),
        }));
        assert_eq!(
            PushMessage::parse(frame),
            PushMessage::Message {
                channel: bytes("c"),
                payload: bytes("m")
            }
        );
    }

    #[test]
    fn anything_else_is_other_and_unchanged() {
        let others = [
            Frame::Push(vec![b("pong"), b("")]),
            Frame::Push(vec![]),
            Frame::Push(vec![Frame::Integer(1), b("c"), b("m")]),
            Frame::Push(vec![b("message"), b("c")]),
            Frame::Push(vec![b("message"), b("c"), Frame::Integer(1)]),
            Frame::Push(vec![b("subscribe"), b("c"), Frame::Integer(-1)]),
            Frame::Push(vec![b("subscribe"), b("c"), b("1")]),
            Frame::Push(vec![b("xsubscribe"), b("c"), Frame::Integer(1)]),
            Frame::Push(vec![b("resubscribe"), b("c"), Frame::Integer(1)]),
            Frame::Push(vec![b("subscribe"), Frame::Null, Frame::Integer(1)]),
            Frame::Push(vec![b("invalidate"), b("k")]),
            Frame::Push(vec![b("invalidate"), Frame::Array(vec![Frame::Integer(1)])]),
            Frame::Push(vec![b("monitor-ish"), b("a"), b("b")]),
            b("message"),
            Frame::Null,
        ];
        for frame in others {
            assert_eq!(PushMessage::parse(frame.clone()), PushMessage::Other(frame));
        }
    }
}
