//! Errors a request can end with, and the typed errors of the handshake and
//! of TLS.

use alloc::string::String;

use crate::cmd::{ConversionError, ReplyError, ServerError};
use crate::url::UrlError;
use core::fmt;

use crate::io::CloseReason;

/// Why a request has no reply.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Its response deadline passed.
    Timeout,
    /// The connection it was on (or waiting for) closed, for this reason.
    Connection(CloseReason),
    /// The client was shut down.
    Shutdown,
    /// Every dedicated connection (blocking commands, leases) is in use.
    PoolExhausted,
    /// The connection cannot carry this command (pub/sub over RESP2).
    Unsupported(&'static str),
    /// The cluster could not serve the command: too many redirects, the
    /// cluster stayed down, keys in different slots.
    Cluster(crate::cluster::ClusterFailure),
}

impl Error {
    /// Whether a deadline passed: the request's own, or its connection's
    /// handshake deadline.
    #[must_use]
    pub const fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::Connection(CloseReason::HandshakeDeadline)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("response timed out"),
            Self::Connection(reason) => write!(f, "connection closed: {reason}"),
            Self::Shutdown => f.write_str("client shut down"),
            Self::PoolExhausted => f.write_str("every dedicated connection is in use"),
            Self::Unsupported(what) => f.write_str(what),
            Self::Cluster(failure) => write!(f, "cluster: {failure}"),
        }
    }
}

impl core::error::Error for Error {}

/// Which step of the server handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeStep {
    /// `HELLO`, with `AUTH` and `SETNAME` when configured.
    Hello,
    /// `AUTH` (RESP2 or a server without `HELLO`).
    Auth,
    /// `CLIENT SETNAME`.
    SetName,
    /// `SELECT`.
    Select,
}

/// What the server said no to, by its error code.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeErrorKind {
    /// `WRONGPASS`, or the pre-6.0 `ERR invalid password`: check the
    /// username and password.
    WrongPassword,
    /// `NOAUTH`: the server needs a password and none is configured.
    AuthRequired,
    /// `NOPERM`: the user may not run a handshake command (`SELECT`, `CLIENT`).
    NoPermission,
    /// `DENIED`: the server runs in protected mode and refuses clients from
    /// non-loopback addresses until it has a password or `protected-mode no`.
    ProtectedMode,
    /// `LOADING`: the server is loading its dataset.
    Loading,
    /// `BUSY`: the server runs a long script.
    Busy,
    /// `MASTERDOWN`: a replica lost its primary.
    MasterDown,
    /// `TRYAGAIN`: a cluster slot is being moved.
    TryAgain,
    /// `CLUSTERDOWN`: the cluster cannot serve.
    ClusterDown,
    /// `ERR unknown command`: the server does not know a handshake command.
    UnknownCommand,
    /// `NOPROTO`: the server does not speak the requested protocol version.
    NoProto,
    /// Any other error reply.
    Other,
}

/// The server refused a step of the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HandshakeError {
    /// The step.
    pub step: HandshakeStep,
    /// The class of the refusal, from the error code.
    pub kind: HandshakeErrorKind,
    /// The server's error text, verbatim (lossily decoded as UTF-8).
    pub message: String,
}

impl HandshakeErrorKind {
    /// Classifies an error reply by its code (its first word).
    #[must_use]
    pub fn from_reply(text: &[u8]) -> Self {
        let code = text.split(|&b| b == b' ').next().unwrap_or_default();
        match code {
            b"WRONGPASS" => Self::WrongPassword,
            b"NOAUTH" => Self::AuthRequired,
            b"NOPERM" => Self::NoPermission,
            b"DENIED" => Self::ProtectedMode,
            b"LOADING" => Self::Loading,
            b"BUSY" => Self::Busy,
            b"MASTERDOWN" => Self::MasterDown,
            b"TRYAGAIN" => Self::TryAgain,
            b"CLUSTERDOWN" => Self::ClusterDown,
            b"NOPROTO" => Self::NoProto,
            // Servers before 6.0 have no codes for these two.
            b"ERR" if text.starts_with(b"ERR invalid password") => Self::WrongPassword,
            b"ERR" if text.starts_with(b"ERR unknown command") => Self::UnknownCommand,
            _ => Self::Other,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = match self.kind {
            HandshakeErrorKind::WrongPassword => "check the username and password",
            HandshakeErrorKind::AuthRequired => "the server requires a password; configure one",
            HandshakeErrorKind::NoPermission => {
                "the ACL user lacks a permission the handshake needs"
            }
            HandshakeErrorKind::ProtectedMode => {
                "the server is in protected mode: set a password on it, bind it to loopback, or set protected-mode no"
            }
            HandshakeErrorKind::Loading => "the server is loading its dataset; retry later",
            HandshakeErrorKind::Busy => "the server is busy running a script; retry later",
            HandshakeErrorKind::MasterDown => "the replica lost its primary; retry later",
            HandshakeErrorKind::TryAgain | HandshakeErrorKind::ClusterDown => {
                "the cluster is not ready; retry later"
            }
            HandshakeErrorKind::UnknownCommand => "the server does not support this command",
            HandshakeErrorKind::NoProto => "the server does not support the requested RESP version",
            HandshakeErrorKind::Other => "the server refused the handshake",
        };
        write!(f, "{:?} failed: {} ({hint})", self.step, self.message)
    }
}

impl core::error::Error for HandshakeError {}

/// What kind of TLS failure.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsErrorKind {
    /// The server's certificate was not accepted (unknown issuer, expired,
    /// wrong name, ...).
    Certificate,
    /// The peer sent a fatal alert or broke the TLS protocol.
    Protocol,
    /// The TLS configuration is unusable (bad PEM, bad server name, ...).
    Config,
}

/// A TLS failure, with the TLS library's description.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsError {
    /// The kind.
    pub kind: TlsErrorKind,
    /// The TLS library's description.
    pub message: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl core::error::Error for TlsError {}

/// The error of a command run through a client of either adapter: the one
/// error type of the command API.
///
/// Why a command (or building a client) has no usable result.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum CommandError {
    /// No reply: the connection failed or closed, a deadline passed, the
    /// client was shut down, every dedicated connection is in use.
    Connection(Error),
    /// The server answered with an error.
    Server(ServerError),
    /// The reply does not convert to the requested type.
    Conversion(ConversionError),
    /// A transaction was not executed: a `WATCH`ed key changed.
    Aborted,
    /// The URL is invalid.
    Url(UrlError),
    /// The TLS configuration is unusable.
    Tls(TlsError),
}

impl CommandError {
    /// Whether a deadline passed: the request's own, or its connection's
    /// handshake deadline.
    #[must_use]
    pub const fn is_timeout(&self) -> bool {
        matches!(self, Self::Connection(e) if e.is_timeout())
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connection(e) => write!(f, "{e}"),
            Self::Server(e) => write!(f, "server error: {e}"),
            Self::Conversion(e) => write!(f, "unexpected reply: {e}"),
            Self::Aborted => f.write_str("transaction aborted: a watched key changed"),
            Self::Url(e) => write!(f, "invalid URL: {e}"),
            Self::Tls(e) => write!(f, "TLS configuration: {e}"),
        }
    }
}

impl core::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Connection(e) => Some(e),
            Self::Server(e) => Some(e),
            Self::Conversion(e) => Some(e),
            Self::Aborted => None,
            Self::Url(e) => Some(e),
            Self::Tls(e) => Some(e),
        }
    }
}

impl From<Error> for CommandError {
    fn from(e: Error) -> Self {
        Self::Connection(e)
    }
}

impl From<ReplyError> for CommandError {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::Server(e) => Self::Server(e),
            ReplyError::Conversion(e) => Self::Conversion(e),
            ReplyError::Aborted => Self::Aborted,
        }
    }
}

impl From<ServerError> for CommandError {
    fn from(e: ServerError) -> Self {
        Self::Server(e)
    }
}

impl From<ConversionError> for CommandError {
    fn from(e: ConversionError) -> Self {
        Self::Conversion(e)
    }
}

impl From<UrlError> for CommandError {
    fn from(e: UrlError) -> Self {
        Self::Url(e)
    }
}

impl From<TlsError> for CommandError {
    fn from(e: TlsError) -> Self {
        Self::Tls(e)
    }
}
