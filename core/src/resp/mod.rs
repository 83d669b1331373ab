//! RESP2 and RESP3: frames, the incremental decoder, the encoder.
//!
//! # What this module decides
//!
//! Where one reply ends and the next begins, and whether the bytes a server
//! sent are a valid reply at all. Everything above (the connection machine,
//! the pool, cluster routing) sees only whole [`Frame`]s or a [`DecodeError`].
//!
//! # Invariants
//!
//! - **Split invariance.** Feeding a byte stream to the [`Decoder`] in any
//!   split, one byte at a time included, yields exactly the same frames (or the
//!   same error at the same offset) as feeding it whole.
//! - **Linear work.** The decoder remembers how far it got: a bulk payload is
//!   never scanned, an unfinished line is not scanned again from its start, and
//!   finished elements of an aggregate are not parsed twice. A 512 MB bulk
//!   arriving in 16 KiB reads costs O(number of reads), not O(n²).
//! - **Zero copy.** Bulk payloads are slices of the caller's buffer (they share
//!   its allocation through [`bytes::Bytes`]); the common simple replies
//!   (`+OK`, integers, nulls, booleans) allocate nothing.
//! - **Bounded memory.** Hostile input is a [`DecodeError`] naming the byte
//!   offset where the stream went wrong, never a panic. Declared lengths and
//!   element counts are checked against [`Limits`] before anything is waited
//!   for, and no memory is reserved for elements that have not arrived.
//! - **Sticky errors.** After an error the decoder answers every call with the
//!   same error: a stream that was out of sync once can never be trusted again.
//!
//! The encoder writes commands (arrays of bulk strings) straight into a
//! [`bytes::BytesMut`] with no intermediate allocation ([`encode_command`],
//! [`CommandEncoder`], [`ToArg`]), and encodes every frame type
//! ([`Frame::encode`]) for simulated servers and tests.

mod decode;
mod encode;
mod error;
mod frame;
#[cfg(test)]
mod tests;

pub use decode::{Decoder, Limits};
pub use encode::{CommandEncoder, EncodeError, ToArg, encode_command};
pub(crate) use encode::{decimal_len, write_header};
pub use error::{DecodeError, DecodeErrorKind};
pub use frame::{Attributed, Frame};
