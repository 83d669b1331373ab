//! Decode errors: what went wrong and at which byte of the stream.

use core::fmt;

/// A reply stream that is not valid RESP, or that breaks a [`Limits`] bound.
///
/// The decoder is unusable after returning one (it returns the same error on
/// every later call): the connection it came from must be closed.
///
/// [`Limits`]: super::Limits
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    offset: u64,
    kind: DecodeErrorKind,
}

/// What was wrong with the stream.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// A frame started with a byte that is no RESP type.
    UnknownType(u8),
    /// An integer (`:`) with no digits, a stray character or out of `i64` range.
    InvalidInteger,
    /// A length or count header that is not `-1` or a non-negative integer.
    InvalidLength,
    /// A line or payload not followed by `\r\n`, or a bare CR or LF in a line.
    MissingCrlf,
    /// A double (`,`) that is not a number, `inf`, `-inf` or `nan`.
    InvalidDouble,
    /// A boolean other than `#t` or `#f`.
    InvalidBoolean,
    /// A big number (`(`) that is not an optionally signed string of digits.
    InvalidBigNumber,
    /// A null (`_`) with something on its line.
    InvalidNull,
    /// A verbatim string (`=`) without its `fmt:` prefix.
    InvalidVerbatim,
    /// A stream end (`.`) outside a streamed aggregate, or after a map key
    /// without its value.
    UnexpectedEnd,
    /// A string chunk (`;`) outside a streamed string.
    UnexpectedChunk,
    /// Something other than a chunk (`;`) inside a streamed string.
    ExpectedChunk,
    /// Attributes (`|`) not followed by the frame they describe.
    DanglingAttribute,
    /// A streamed (`?`) length on a type that cannot be streamed.
    UnexpectedStream,
    /// A bulk payload longer than [`Limits::max_bulk_len`](super::Limits::max_bulk_len).
    BulkTooLong {
        /// The declared (or accumulated, for streamed strings) length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// An aggregate with more elements than [`Limits::max_elements`](super::Limits::max_elements).
    TooManyElements {
        /// The declared (or counted, for streamed aggregates) element count.
        count: u64,
        /// The limit in force.
        max: usize,
    },
    /// Aggregates nested deeper than [`Limits::max_depth`](super::Limits::max_depth).
    TooDeep {
        /// The limit in force.
        max: usize,
    },
    /// A line longer than [`Limits::max_line_len`](super::Limits::max_line_len).
    LineTooLong {
        /// The limit in force.
        max: usize,
    },
}

impl DecodeError {
    pub(crate) const fn new(offset: u64, kind: DecodeErrorKind) -> Self {
        Self { offset, kind }
    }

    /// The offset, counted from the first byte the decoder was ever fed, of the
    /// byte where the stream went wrong.
    #[must_use]
    pub const fn offset(&self) -> u64 {
        self.offset
    }

    /// What was wrong.
    #[must_use]
    pub const fn kind(&self) -> DecodeErrorKind {
        self.kind
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid RESP at byte {}: {}", self.offset, self.kind)
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnknownType(b) => write!(f, "unknown type byte {:?}", char::from(b)),
            Self::InvalidInteger => f.write_str("invalid integer"),
            Self::InvalidLength => f.write_str("invalid length"),
            Self::MissingCrlf => f.write_str("expected CRLF"),
            Self::InvalidDouble => f.write_str("invalid double"),
            Self::InvalidBoolean => f.write_str("invalid boolean"),
            Self::InvalidBigNumber => f.write_str("invalid big number"),
            Self::InvalidNull => f.write_str("invalid null"),
            Self::InvalidVerbatim => f.write_str("verbatim string without a format prefix"),
            Self::UnexpectedEnd => f.write_str("stream end outside a streamed aggregate"),
            Self::UnexpectedChunk => f.write_str("string chunk outside a streamed string"),
            Self::ExpectedChunk => f.write_str("expected a string chunk"),
            Self::DanglingAttribute => f.write_str("attributes not followed by a frame"),
            Self::UnexpectedStream => f.write_str("this type cannot be streamed"),
            Self::BulkTooLong { len, max } => {
                write!(f, "bulk length {len} exceeds the limit of {max}")
            }
            Self::TooManyElements { count, max } => {
                write!(f, "{count} elements exceed the limit of {max}")
            }
            Self::TooDeep { max } => write!(f, "nesting deeper than {max}"),
            Self::LineTooLong { max } => write!(f, "line longer than {max} bytes"),
        }
    }
}

impl core::error::Error for DecodeError {}
