//! The error of a command run through the client.

use std::fmt;

use redpoll_core::cmd::{ConversionError, ReplyError, ServerError};

/// Why a command has no usable result.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// No reply: connection failure, timeout, shutdown.
    Connection(redpoll_core::Error),
    /// The server answered with an error.
    Server(ServerError),
    /// The reply does not convert to the requested type.
    Conversion(ConversionError),
    /// A transaction was aborted (a watched key changed).
    Aborted,
    /// The URL is invalid.
    Url(String),
    /// The TLS configuration is unusable.
    Tls(redpoll_core::TlsError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connection(e) => write!(f, "{e}"),
            Self::Server(e) => write!(f, "server error: {e}"),
            Self::Conversion(e) => write!(f, "{e}"),
            Self::Aborted => f.write_str("transaction aborted: a watched key changed"),
            Self::Url(e) => write!(f, "invalid URL: {e}"),
            Self::Tls(e) => write!(f, "TLS configuration: {e}"),
        }
    }
}

impl std::error::Error for Error {}

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
            _ => Self::Aborted,
        }
    }
}

impl From<redpoll_core::TlsError> for Error {
    fn from(e: redpoll_core::TlsError) -> Self {
        Self::Tls(e)
    }
}
