//! The decode and encode loops of redpoll and of each peer, shared by the
//! criterion benchmarks, the callgrind driver and the allocation test, so that
//! all three measure exactly the same work.
//!
//! Each decode loop takes a fresh `BytesMut` holding a whole input, decodes
//! every top-level frame through the implementation's fastest zero-copy API,
//! hands each frame to `black_box` and drops it, and returns the number of
//! top-level frames it decoded.

use std::hint::black_box;

use bytes::BytesMut;

use super::Input;

/// An implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Impl {
    /// `redpoll_core::resp::Decoder::decode(&mut BytesMut)`: one decoder for RESP2 and RESP3.
    Redpoll,
    /// `redis_protocol::{resp2::decode, resp3::decode::complete}::decode_bytes_mut`.
    RedisProtocol,
    /// `resp_rs::{resp2, resp3}::parse_frame(Bytes)`.
    RespRs,
    /// `redis::Parser::parse_value(impl Read)` (the sync parser; its `BytesMut`
    /// codec needs the `aio` feature and tokio).
    Redis,
}

impl Impl {
    /// All implementations, in report order.
    pub(crate) const ALL: [Self; 4] = [
        Self::Redpoll,
        Self::RedisProtocol,
        Self::RespRs,
        Self::Redis,
    ];

    /// The criterion function id and command-line name.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Self::Redpoll => "redpoll",
            Self::RedisProtocol => "redis-protocol",
            Self::RespRs => "resp-rs",
            Self::Redis => "redis",
        }
    }

    pub(crate) fn by_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.id() == id)
    }

    /// Whether this implementation can decode `input`. Every peer has a RESP3
    /// decoder, so none skips (d); the check stays for a RESP2-only peer.
    pub(crate) fn supports(self, _input: &Input) -> bool {
        true
    }

    /// Decodes every frame of `buf` (a fresh copy of `input.bytes`); returns
    /// the number of top-level frames decoded.
    #[inline]
    pub(crate) fn decode(self, input: &Input, buf: BytesMut) -> usize {
        match (self, input.resp3) {
            (Self::Redpoll, _) => redpoll(buf),
            (Self::RedisProtocol, false) => redis_protocol_resp2(buf),
            (Self::RedisProtocol, true) => redis_protocol_resp3(buf),
            (Self::RespRs, false) => resp_rs_resp2(buf),
            (Self::RespRs, true) => resp_rs_resp3(buf),
            (Self::Redis, _) => redis(buf, input.frames),
        }
    }
}

pub(crate) fn redpoll(mut buf: BytesMut) -> usize {
    let mut decoder = redpoll_core::resp::Decoder::new();
    let mut n = 0;
    while let Some(frame) = decoder.decode(&mut buf).expect("redpoll: decode error") {
        black_box(frame);
        n += 1;
    }
    n
}

pub(crate) fn redis_protocol_resp2(mut buf: BytesMut) -> usize {
    let mut n = 0;
    while let Some((frame, _, chunk)) = redis_protocol::resp2::decode::decode_bytes_mut(&mut buf)
        .expect("redis-protocol resp2: decode error")
    {
        black_box((frame, chunk));
        n += 1;
    }
    n
}

pub(crate) fn redis_protocol_resp3(mut buf: BytesMut) -> usize {
    let mut n = 0;
    while let Some((frame, _, chunk)) =
        redis_protocol::resp3::decode::complete::decode_bytes_mut(&mut buf)
            .expect("redis-protocol resp3: decode error")
    {
        black_box((frame, chunk));
        n += 1;
    }
    n
}

pub(crate) fn resp_rs_resp2(buf: BytesMut) -> usize {
    let mut rest = buf.freeze();
    let mut n = 0;
    while !rest.is_empty() {
        let (frame, tail) = resp_rs::resp2::parse_frame(rest).expect("resp-rs resp2: parse error");
        black_box(frame);
        rest = tail;
        n += 1;
    }
    n
}

pub(crate) fn resp_rs_resp3(buf: BytesMut) -> usize {
    let mut rest = buf.freeze();
    let mut n = 0;
    while !rest.is_empty() {
        let (frame, tail) = resp_rs::resp3::parse_frame(rest).expect("resp-rs resp3: parse error");
        black_box(frame);
        rest = tail;
        n += 1;
    }
    n
}

/// The redis crate's parser reads from `impl Read` into its own buffer and
/// returns owned `Value`s; it cannot tell "no more input" from "wait", so it
/// is asked for exactly `frames` values.
pub(crate) fn redis(buf: BytesMut, frames: usize) -> usize {
    let mut parser = redis::Parser::new();
    let mut reader: &[u8] = &buf;
    for _ in 0..frames {
        black_box(parser.parse_value(&mut reader).expect("redis: parse error"));
    }
    assert!(reader.is_empty(), "redis: input not consumed");
    frames
}

/// Checks, outside any measurement, that `imp` decodes `input` to exactly
/// the expected number of frames.
pub(crate) fn validate(imp: Impl, input: &Input) {
    let n = imp.decode(input, input.bytes.clone());
    assert_eq!(
        n,
        input.frames,
        "{} decoded {n} frames of {}",
        imp.id(),
        input.name
    );
}

/// `SET key value` through redpoll's command encoder.
pub(crate) fn encode_set_redpoll(dst: &mut BytesMut, cmds: &[(Vec<u8>, Vec<u8>)]) {
    for (key, value) in cmds {
        redpoll_core::resp::encode_command(dst, &[b"SET".as_slice(), key, value]);
    }
}

/// `SET key value` through the redis crate: build a `Cmd`, pack it into a Vec.
pub(crate) fn encode_set_redis(dst: &mut Vec<u8>, cmds: &[(Vec<u8>, Vec<u8>)]) {
    for (key, value) in cmds {
        redis::cmd("SET")
            .arg(key.as_slice())
            .arg(value.as_slice())
            .write_packed_command(dst);
    }
}

/// `SET key value` through redis-protocol: it has no command builder, so the
/// command is a borrowed RESP2 array of bulk strings (on the stack), encoded
/// with `extend_encode_borrowed`.
pub(crate) fn encode_set_redis_protocol(dst: &mut BytesMut, cmds: &[(Vec<u8>, Vec<u8>)]) {
    use redis_protocol::resp2::types::BorrowedFrame;
    for (key, value) in cmds {
        let args = [
            BorrowedFrame::BulkString(b"SET"),
            BorrowedFrame::BulkString(key),
            BorrowedFrame::BulkString(value),
        ];
        redis_protocol::resp2::encode::extend_encode_borrowed(
            dst,
            &BorrowedFrame::Array(&args),
            false,
        )
        .expect("redis-protocol: encode error");
    }
}
