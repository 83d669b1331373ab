//! The error of everything the client does.

use std::fmt;

use redpoll_core::cmd::{ConversionError, ReplyError, ServerError};
use redpoll_core::{TlsError, UrlError};

/// Why a command (or building a client) has no usable result.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// No reply: the connection failed or closed, a deadline passed, the
    /// client was shut down, every dedicated connection is in use.
    Connection(redpoll_core::Error),
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

impl Error {
    /// Whether a deadline passed: the request's own, or its connection's
    /// handshake deadline.
    #[must_use]
    pub const fn is_timeout(&self) -> bool {
        matches!(self, Self::Connection(e) if e.is_timeout())
    }
}

impl fmt::Display for Error {
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

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
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

impl From<redpoll_core::Error> for Error {
    fn from(e: redpoll_core::Error) -> Self {
        Self::Connection(e)
    }
}

impl From<ReplyError> for Error {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::Server(e) => Self::Server(e),
            ReplyError::Conversion(e) => Self::Conversion(e),
            ReplyError::Aborted => Self::Aborted,
            // `ReplyError` is non-exhaustive; a new kind is still a reply
            // the caller cannot use.
            other => Self::Conversion(ConversionError {
                expected: "a usable reply",
                found: other.to_string(),
            }),
        }
    }
}

impl From<ServerError> for Error {
    fn from(e: ServerError) -> Self {
        Self::Server(e)
    }
}

impl From<ConversionError> for Error {
    fn from(e: ConversionError) -> Self {
        Self::Conversion(e)
    }
}

impl From<UrlError> for Error {
    fn from(e: UrlError) -> Self {
        Self::Url(e)
    }
}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Self {
        Self::Tls(e)
    }
}
