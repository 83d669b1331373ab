//! Transactions, and connection and server commands.
//!
//! For a transaction whose results are typed, use an
//! [atomic pipeline](super::Pipeline::atomic) rather than these commands one
//! by one. `SELECT`, `AUTH` and `HELLO` are not here: they are connection
//! configuration, sent by the connection machine in its handshake.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;

use super::builder::Cmd;
use crate::resp::{Frame, ToArg};

/// `MULTI`: starts a transaction; the following commands are answered
/// `QUEUED` until [`exec`].
pub fn multi() -> Cmd<()> {
    Cmd::named("MULTI")
}

/// `EXEC`: runs the queued commands: their replies, errors included as
/// frames; `None` when a `WATCH`ed key changed and nothing ran.
pub fn exec() -> Cmd<Option<Vec<Frame>>> {
    Cmd::named("EXEC")
}

/// `DISCARD`: drops the queued commands.
pub fn discard() -> Cmd<()> {
    Cmd::named("DISCARD")
}

/// `WATCH key...`: the next `EXEC` runs nothing if one of them changes
/// first.
pub fn watch<K: ToArg>(keys: impl IntoIterator<Item = K>) -> Cmd<()> {
    let mut cmd = Cmd::named("WATCH");
    cmd.push_keys(keys);
    cmd
}

/// `UNWATCH`: forgets the watched keys.
pub fn unwatch() -> Cmd<()> {
    Cmd::named("UNWATCH")
}

/// `PING`: `PONG`.
pub fn ping() -> Cmd<String> {
    Cmd::named("PING").read_only()
}

/// `ECHO message`: the message.
pub fn echo(message: impl ToArg) -> Cmd<Bytes> {
    Cmd::named("ECHO").arg(message).read_only()
}

/// `INFO`: the server's report, as text. Add sections with
/// [`Cmd::arg`] (`info().arg("memory")`).
pub fn info() -> Cmd<String> {
    Cmd::named("INFO").read_only()
}

/// `CLIENT ID`: this connection's id.
pub fn client_id() -> Cmd<i64> {
    Cmd::named("CLIENT").arg("ID").read_only()
}

/// `TIME`: the server's clock, as Unix seconds and microseconds.
pub fn time() -> Cmd<(u64, u64)> {
    Cmd::named("TIME").read_only()
}

/// `CONFIG GET pattern`: the matching parameters and their values (a RESP3
/// map or a RESP2 flat array; either converts to any map type too).
pub fn config_get(pattern: impl ToArg) -> Cmd<Vec<(String, String)>> {
    Cmd::named("CONFIG").arg("GET").arg(pattern).read_only()
}

/// `CONFIG SET parameter value`.
pub fn config_set(parameter: impl ToArg, value: impl ToArg) -> Cmd<()> {
    Cmd::named("CONFIG").arg("SET").arg(parameter).arg(value)
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::cmd::reply::{ReplyError, ServerError};
    use crate::cmd::strings::tests::{argv, keys_of, wire};

    fn b(s: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn encodes() {
        assert_eq!(wire(&multi()), b"*1\r\n$5\r\nMULTI\r\n");
        assert_eq!(argv(&exec()), ["EXEC"]);
        assert_eq!(argv(&discard()), ["DISCARD"]);
        assert_eq!(argv(&watch(["a", "b"])), ["WATCH", "a", "b"]);
        assert_eq!(keys_of(&watch(["a", "b"])), ["a", "b"]);
        assert_eq!(argv(&unwatch()), ["UNWATCH"]);
        assert_eq!(wire(&ping()), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(argv(&echo("hi")), ["ECHO", "hi"]);
        assert_eq!(argv(&info().arg("memory")), ["INFO", "memory"]);
        assert_eq!(argv(&client_id()), ["CLIENT", "ID"]);
        assert_eq!(argv(&time()), ["TIME"]);
        assert_eq!(
            wire(&config_get("maxmemory")),
            b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\nmaxmemory\r\n"
        );
        assert_eq!(
            argv(&config_set("maxmemory", "1mb")),
            ["CONFIG", "SET", "maxmemory", "1mb"]
        );
    }

    #[test]
    fn read_only_flags() {
        assert!(ping().is_read_only());
        assert!(echo("x").is_read_only());
        assert!(info().is_read_only());
        assert!(client_id().is_read_only());
        assert!(time().is_read_only());
        assert!(config_get("x").is_read_only());
        assert!(!config_set("x", "y").is_read_only());
        assert!(!multi().is_read_only());
        assert!(!exec().is_read_only());
    }

    #[test]
    fn exec_replies() {
        let err = Frame::Error(Bytes::from_static(b"WRONGTYPE x"));
        assert_eq!(exec().decode(Frame::NullArray), Ok(None));
        assert_eq!(exec().decode(Frame::Null), Ok(None));
        assert_eq!(
            exec().decode(Frame::Array(vec![Frame::Integer(1), err.clone()])),
            Ok(Some(vec![Frame::Integer(1), err]))
        );
        let abort = Frame::Error(Bytes::from_static(b"EXECABORT Transaction discarded"));
        assert_eq!(
            exec().decode(abort),
            Err(ReplyError::Server(ServerError::parse(
                b"EXECABORT Transaction discarded"
            )))
        );
    }

    #[test]
    fn server_replies() {
        assert_eq!(
            ping().decode(Frame::Simple(Bytes::from_static(b"PONG"))),
            Ok("PONG".into())
        );
        assert_eq!(
            time().decode(Frame::Array(vec![b("1700000000"), b("123")])),
            Ok((1_700_000_000, 123))
        );
        let resp2 = Frame::Array(vec![b("maxmemory"), b("0")]);
        let resp3 = Frame::Map(vec![(b("maxmemory"), b("0"))]);
        let want = vec![(String::from("maxmemory"), String::from("0"))];
        assert_eq!(config_get("maxmemory").decode(resp2), Ok(want.clone()));
        assert_eq!(config_get("maxmemory").decode(resp3), Ok(want));
        let verbatim = Frame::Verbatim {
            format: *b"txt",
            text: Bytes::from_static(b"# Server\r\n"),
        };
        assert_eq!(info().decode(verbatim), Ok("# Server\r\n".into()));
    }
}
