//! The frame types: one variant per RESP2 / RESP3 type.

use alloc::boxed::Box;
use alloc::vec::Vec;
use bytes::Bytes;

/// One RESP2 or RESP3 value, as a server sends it.
///
/// Payloads are [`Bytes`] slices of the buffer the frame was decoded from: no
/// copy is made. RESP3 streamed strings (`$?`) decode to [`Frame::Bulk`] and
/// streamed aggregates (`*?`, `%?`, `~?`) to their fixed-length forms, so the
/// layers above never see the difference.
///
/// Equality treats two NaN doubles as equal, so that decode(encode(f)) == f
/// holds for every frame.
#[derive(Debug, Clone)]
// An 8-byte tag keeps every field 8-aligned (48 bytes instead of 40). With a
// 1-byte tag, `Boolean` and `Verbatim`'s format sit at byte 1, so moving a
// frame out of `decode`'s result copies bytes 1.. with unaligned 16-byte
// loads and stores, and the next loads of its fields stall on those stores
// (store forwarding fails): input (a) decoded 20% slower (BENCHMARKS.md).
#[repr(u64)]
pub enum Frame {
    /// `+OK`: a simple string (no CR or LF inside).
    Simple(Bytes),
    /// `-ERR message`: a simple error; the first word is its code.
    Error(Bytes),
    /// `:42`: a signed 64-bit integer.
    Integer(i64),
    /// `$3\r\nfoo`: a binary-safe bulk string.
    Bulk(Bytes),
    /// `$-1`: the RESP2 null bulk string.
    NullBulk,
    /// `*2 ...`: an array.
    Array(Vec<Self>),
    /// `*-1`: the RESP2 null array.
    NullArray,
    /// `_`: the RESP3 null.
    Null,
    /// `#t` / `#f`.
    Boolean(bool),
    /// `,1.5`, `,inf`, `,-inf`, `,nan`.
    Double(f64),
    /// `(12345678901234567890`: an integer of any size, as its decimal digits
    /// with an optional sign.
    BigNumber(Bytes),
    /// `!21\r\nSYNTAX invalid syntax`: a binary-safe error.
    BulkError(Bytes),
    /// `=15\r\ntxt:Some string`: a string with a three-letter format (`txt`,
    /// `mkd`, ...).
    Verbatim {
        /// The format, such as `txt` or `mkd`.
        format: [u8; 3],
        /// The text after `fmt:`.
        text: Bytes,
    },
    /// `%1 ...`: a map, as its key/value pairs in wire order.
    Map(Vec<(Self, Self)>),
    /// `~2 ...`: a set, as its members in wire order.
    Set(Vec<Self>),
    /// `>3 ...`: an out-of-band push (pub/sub messages, invalidations).
    Push(Vec<Self>),
    /// `|1 ...`: attributes, attached to the frame that follows them.
    Attributed(Box<Attributed>),
}

/// A frame together with the RESP3 attributes (`|`) that preceded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributed {
    /// The attribute map, in wire order.
    pub attributes: Vec<(Frame, Frame)>,
    /// The frame the attributes describe.
    pub frame: Frame,
}

impl Frame {
    /// The RESP type byte this frame is encoded with (`+`, `$`, `%`, ...).
    #[must_use]
    pub const fn type_byte(&self) -> u8 {
        match self {
            Self::Simple(_) => b'+',
            Self::Error(_) => b'-',
            Self::Integer(_) => b':',
            Self::Bulk(_) | Self::NullBulk => b'$',
            Self::Array(_) | Self::NullArray => b'*',
            Self::Null => b'_',
            Self::Boolean(_) => b'#',
            Self::Double(_) => b',',
            Self::BigNumber(_) => b'(',
            Self::BulkError(_) => b'!',
            Self::Verbatim { .. } => b'=',
            Self::Map(_) => b'%',
            Self::Set(_) => b'~',
            Self::Push(_) => b'>',
            Self::Attributed(_) => b'|',
        }
    }

    /// Whether this is any of the three nulls (`_`, `$-1`, `*-1`).
    #[must_use]
    pub const fn is_null(&self) -> bool {
        matches!(self, Self::Null | Self::NullBulk | Self::NullArray)
    }

    /// Whether this is an error reply (`-` or `!`).
    #[must_use]
    pub const fn is_error(&self) -> bool {
        matches!(self, Self::Error(_) | Self::BulkError(_))
    }

    /// The frame without its attributes, if it carries any.
    #[must_use]
    pub fn without_attributes(&self) -> &Self {
        match self {
            Self::Attributed(a) => a.frame.without_attributes(),
            other => other,
        }
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Simple(a), Self::Simple(b))
            | (Self::Error(a), Self::Error(b))
            | (Self::Bulk(a), Self::Bulk(b))
            | (Self::BigNumber(a), Self::BigNumber(b))
            | (Self::BulkError(a), Self::BulkError(b)) => a == b,
            (Self::Integer(a), Self::Integer(b)) => a == b,
            (Self::NullBulk, Self::NullBulk)
            | (Self::NullArray, Self::NullArray)
            | (Self::Null, Self::Null) => true,
            (Self::Array(a), Self::Array(b))
            | (Self::Set(a), Self::Set(b))
            | (Self::Push(a), Self::Push(b)) => a == b,
            (Self::Boolean(a), Self::Boolean(b)) => a == b,
            (Self::Double(a), Self::Double(b)) => a == b || (a.is_nan() && b.is_nan()),
            (
                Self::Verbatim {
                    format: fa,
                    text: ta,
                },
                Self::Verbatim {
                    format: fb,
                    text: tb,
                },
            ) => fa == fb && ta == tb,
            (Self::Map(a), Self::Map(b)) => a == b,
            (Self::Attributed(a), Self::Attributed(b)) => a == b,
            _ => false,
        }
    }
}
