//! What crosses the line between the core and an adapter: the effects the
//! core asks for, the events it reports, and the transport facts adapters
//! feed back.

use alloc::string::String;
use bytes::Bytes;
use core::fmt;

use crate::error::{Error, HandshakeError, TlsError};
use crate::id::{RequestId, SocketId};
use crate::resp::{DecodeError, Frame};

/// Where to open a socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP endpoint: a host name or an IP address (IPv6 without brackets),
    /// and a port. The adapter resolves names.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix domain socket path.
    Unix(String),
}

impl Address {
    /// A TCP address.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Self::Tcp {
            host: host.into(),
            port,
        }
    }

    /// The host name, for TLS server name indication; `None` for Unix sockets.
    #[must_use]
    pub fn host(&self) -> Option<&str> {
        match self {
            Self::Tcp { host, .. } => Some(host),
            Self::Unix(_) => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "{host}:{port}"),
            Self::Unix(path) => write!(f, "unix:{path}"),
        }
    }
}

/// Something the adapter must do. Drain them with `poll_effect` after every
/// input, and carry them out in order.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Open a socket to `address` and report the outcome with
    /// `handle_connected` or `handle_connect_failed`. The socket is the
    /// adapter's to hold until the core says [`Effect::Close`].
    Connect {
        /// The handle of the new socket.
        socket: SocketId,
        /// Where to connect.
        address: Address,
    },
    /// Write `data` on the socket, in order after earlier sends; keep what the
    /// socket does not take now and write it first when it is writable again.
    Send {
        /// The socket.
        socket: SocketId,
        /// The bytes (already encrypted for TLS connections).
        data: Bytes,
    },
    /// Close the socket and forget it. Every socket of a `Connect` gets
    /// exactly one `Close`, whatever happened to it; the core never mentions
    /// the socket again.
    Close {
        /// The socket.
        socket: SocketId,
        /// Why.
        reason: CloseReason,
    },
    /// Look at the socket without blocking and report with `handle_probe`:
    /// whatever bytes are waiting (fed to the core, never thrown away), an
    /// EOF, an error, or nothing.
    Probe {
        /// The socket.
        socket: SocketId,
    },
}

/// Something the application must hear about. Drain them with `poll_event`.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The one outcome of a request: its reply (server error replies
    /// included, as [`Frame::Error`]) or why it has none.
    Response {
        /// The request.
        id: RequestId,
        /// The reply, or the reason there is none.
        result: Result<Frame, Error>,
    },
    /// A RESP3 push frame (pub/sub message, invalidation), outside the
    /// request/reply order.
    Push {
        /// The connection it came on.
        socket: SocketId,
        /// The push frame.
        frame: Frame,
    },
    /// A connection finished its handshake and serves requests.
    Connected {
        /// The socket.
        socket: SocketId,
        /// The protocol the server agreed to.
        protocol: crate::conn::Protocol,
    },
    /// The client's connection status changed (connected, disconnected,
    /// reconnecting at a time, gave up).
    Status(crate::client::Status),
    /// A connection ended.
    Disconnected {
        /// The socket.
        socket: SocketId,
        /// Why.
        reason: CloseReason,
    },
}

/// A transport failure, as the adapter saw it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoError {
    /// The peer refused the connection.
    Refused,
    /// The peer reset the connection.
    Reset,
    /// The operating system timed the operation out.
    TimedOut,
    /// No route, network down, host unreachable.
    Unreachable,
    /// The name did not resolve.
    NotFound,
    /// Any other failure.
    Other,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Refused => "connection refused",
            Self::Reset => "connection reset",
            Self::TimedOut => "timed out",
            Self::Unreachable => "unreachable",
            Self::NotFound => "address not found",
            Self::Other => "transport error",
        })
    }
}

/// Why a socket was closed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum CloseReason {
    /// The application shut the client down.
    Shutdown,
    /// TCP connect + TLS + server handshake did not finish by the deadline.
    HandshakeDeadline,
    /// The adapter could not connect.
    ConnectFailed(IoError),
    /// The adapter saw a read or write error.
    Io(IoError),
    /// The peer closed the connection (TCP FIN or TLS close_notify).
    Eof,
    /// TLS failed.
    Tls(TlsError),
    /// The server refused the handshake.
    Handshake(HandshakeError),
    /// The server sent bytes that are not RESP.
    Protocol(DecodeError),
    /// The server sent a reply nobody asked for.
    UnexpectedReply,
    /// A request timed out in flight and nothing arrived since, for the stall
    /// timeout: the connection is presumed dead.
    Stalled,
    /// A leased connection was given back mid-transaction or with replies
    /// still due: it cannot be handed to anyone else.
    Unclean,
    /// An idle connection beyond the number kept open.
    Surplus,
    /// An idle connection unused for longer than the pool's idle timeout.
    IdleTimeout,
    /// A connection older than the pool's maximum lifetime.
    Lifetime,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shutdown => f.write_str("shut down"),
            Self::HandshakeDeadline => f.write_str("handshake deadline passed"),
            Self::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Eof => f.write_str("closed by the server"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::Handshake(e) => write!(f, "{e}"),
            Self::Protocol(e) => write!(f, "{e}"),
            Self::UnexpectedReply => f.write_str("unexpected reply: connection out of sync"),
            Self::Stalled => f.write_str("no data from the server after a request timed out"),
            Self::Unclean => f.write_str("released in an unknown state"),
            Self::Surplus => f.write_str("idle connection not needed"),
            Self::IdleTimeout => f.write_str("idle for longer than the pool's idle timeout"),
            Self::Lifetime => f.write_str("older than the pool's maximum lifetime"),
        }
    }
}
