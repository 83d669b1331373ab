//! Building commands: anything that can write itself as a RESP command.
//!
//! Commands are encoded straight into the connection's output buffer (or,
//! while no connection is ready, into one shared buffer the queued requests
//! are sliced from): no per-command allocation on the write path.

use alloc::vec::Vec;
use bytes::BytesMut;

use crate::resp::{ToArg, encode_command};

/// A command that can encode itself as a RESP array of bulk strings.
pub trait Command {
    /// Appends the encoded command to `dst`.
    fn encode(&self, dst: &mut BytesMut);
}

impl<A: ToArg> Command for [A] {
    fn encode(&self, dst: &mut BytesMut) {
        encode_command(dst, self);
    }
}

impl<A: ToArg, const N: usize> Command for [A; N] {
    fn encode(&self, dst: &mut BytesMut) {
        encode_command(dst, self);
    }
}

impl<A: ToArg> Command for Vec<A> {
    fn encode(&self, dst: &mut BytesMut) {
        encode_command(dst, self);
    }
}

impl<C: Command + ?Sized> Command for &C {
    fn encode(&self, dst: &mut BytesMut) {
        (**self).encode(dst);
    }
}
