//! The encoder: commands and frames, written straight into a [`BytesMut`].

use bytes::{BufMut, Bytes, BytesMut};
use core::fmt;

use super::frame::Frame;

/// A value that can be one argument of a command (one bulk string).
///
/// Implemented for byte strings, strings, integers and floats; integers and
/// floats are written as their decimal text, formatted on the stack.
pub trait ToArg {
    /// Appends this argument as a RESP bulk string (`$len\r\n...\r\n`).
    fn write_arg(&self, dst: &mut BytesMut);
}

/// Appends a command, an array of bulk strings, to `dst`.
///
/// ```
/// use bytes::BytesMut;
/// use redpoll_core::resp::encode_command;
///
/// let mut buf = BytesMut::new();
/// encode_command(&mut buf, &["GET", "key"]);
/// assert_eq!(&buf[..], b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
/// ```
#[inline]
pub fn encode_command<A: ToArg>(dst: &mut BytesMut, args: &[A]) {
    write_header(dst, b'*', args.len());
    for arg in args {
        arg.write_arg(dst);
    }
}

/// Writes a command of mixed argument types, one argument at a time.
///
/// The argument count is written first, so it must be known up front; a
/// command whose count does not match is taken back out of the buffer by
/// [`CommandEncoder::finish`], so a malformed command is never sent.
///
/// ```
/// use bytes::BytesMut;
/// use redpoll_core::resp::CommandEncoder;
///
/// let mut buf = BytesMut::new();
/// CommandEncoder::new(&mut buf, 3).arg("EXPIRE").arg(b"key").arg(60).finish().unwrap();
/// assert_eq!(&buf[..], b"*3\r\n$6\r\nEXPIRE\r\n$3\r\nkey\r\n$2\r\n60\r\n");
/// ```
#[derive(Debug)]
#[must_use = "a command is only complete after finish()"]
pub struct CommandEncoder<'a> {
    dst: &'a mut BytesMut,
    start: usize,
    declared: usize,
    written: usize,
}

/// A command written with a different number of arguments than declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeError {
    /// The count given to [`CommandEncoder::new`].
    pub declared: usize,
    /// The number of arguments written.
    pub written: usize,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command declared {} arguments but {} were written",
            self.declared, self.written
        )
    }
}

impl core::error::Error for EncodeError {}

impl<'a> CommandEncoder<'a> {
    /// Starts a command of `argc` arguments (the command name included).
    pub fn new(dst: &'a mut BytesMut, argc: usize) -> Self {
        let start = dst.len();
        write_header(dst, b'*', argc);
        Self {
            dst,
            start,
            declared: argc,
            written: 0,
        }
    }

    /// Appends one argument.
    pub fn arg<A: ToArg>(self, arg: A) -> Self {
        let mut this = self;
        arg.write_arg(this.dst);
        this.written += 1;
        this
    }

    /// Ends the command.
    ///
    /// # Errors
    ///
    /// When the number of arguments written differs from the one declared;
    /// the partial command is then removed from the buffer.
    pub fn finish(self) -> Result<(), EncodeError> {
        if self.written == self.declared {
            Ok(())
        } else {
            self.dst.truncate(self.start);
            Err(EncodeError {
                declared: self.declared,
                written: self.written,
            })
        }
    }
}

/// Writes `ty`, a decimal number and CRLF: the header of every length-prefixed
/// RESP type (`*2\r\n`, `$13\r\n`).
#[inline(always)]
pub(crate) fn write_header(dst: &mut BytesMut, ty: u8, n: usize) {
    // Command headers and argument lengths are nearly always below 100;
    // fixed-size copies compile to a few stores.
    if n < 10 {
        dst.extend_from_slice(&[ty, b'0' + n as u8, b'\r', b'\n']);
    } else if n < 100 {
        dst.extend_from_slice(&[
            ty,
            b'0' + (n / 10) as u8,
            b'0' + (n % 10) as u8,
            b'\r',
            b'\n',
        ]);
    } else {
        let mut digits = [0u8; 20];
        let text = format_u64(&mut digits, n as u64);
        dst.reserve(text.len() + 3);
        dst.extend_from_slice(&[ty]);
        dst.extend_from_slice(text);
        dst.extend_from_slice(b"\r\n");
    }
}

/// Formats `n` in decimal at the end of `buf`; returns the digits.
fn format_u64(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Formats `n` in decimal, with its sign; returns the text.
fn format_i64(buf: &mut [u8; 21], n: i64) -> &[u8] {
    let mut digits = [0u8; 20];
    let text = format_u64(&mut digits, n.unsigned_abs());
    let start = buf.len() - text.len();
    buf[start..].copy_from_slice(text);
    if n < 0 {
        buf[start - 1] = b'-';
        &buf[start - 1..]
    } else {
        &buf[start..]
    }
}

/// A `fmt::Write` into a fixed stack buffer, for float formatting.
struct StackText {
    buf: [u8; 64],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Formats a double as RESP and Redis expect: `inf`, `-inf`, `nan`, or the
/// shortest decimal that reads back to the same value.
fn format_f64(out: &mut StackText, value: f64) -> &[u8] {
    use fmt::Write as _;
    out.len = 0;
    if value.is_nan() {
        return b"nan";
    }
    if value.is_infinite() {
        return if value > 0.0 { b"inf" } else { b"-inf" };
    }
    // The shortest round-trip form is at most 24 characters ("-2.2250738585072014e-308").
    if write!(out, "{value:?}").is_err() {
        return b"nan";
    }
    &out.buf[..out.len]
}

#[inline(always)]
fn write_blob(dst: &mut BytesMut, ty: u8, data: &[u8]) {
    dst.reserve(data.len() + 25);
    write_header(dst, ty, data.len());
    dst.extend_from_slice(data);
    dst.extend_from_slice(b"\r\n");
}

fn write_line(dst: &mut BytesMut, ty: u8, text: &[u8]) {
    dst.reserve(text.len() + 3);
    dst.put_u8(ty);
    dst.put_slice(text);
    dst.put_slice(b"\r\n");
}

impl ToArg for [u8] {
    fn write_arg(&self, dst: &mut BytesMut) {
        write_blob(dst, b'$', self);
    }
}

impl ToArg for str {
    fn write_arg(&self, dst: &mut BytesMut) {
        write_blob(dst, b'$', self.as_bytes());
    }
}

impl<const N: usize> ToArg for [u8; N] {
    fn write_arg(&self, dst: &mut BytesMut) {
        write_blob(dst, b'$', self);
    }
}

impl<T: ToArg + ?Sized> ToArg for &T {
    fn write_arg(&self, dst: &mut BytesMut) {
        (**self).write_arg(dst);
    }
}

macro_rules! to_arg_bytes {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn write_arg(&self, dst: &mut BytesMut) {
                write_blob(dst, b'$', self.as_ref());
            }
        }
    )*};
}
to_arg_bytes!(alloc::vec::Vec<u8>, alloc::string::String, Bytes, BytesMut);

macro_rules! to_arg_int {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn write_arg(&self, dst: &mut BytesMut) {
                let mut buf = [0u8; 21];
                write_blob(dst, b'$', format_i64(&mut buf, i64::from(*self)));
            }
        }
    )*};
}
to_arg_int!(i8, i16, i32, i64, u8, u16, u32);

impl ToArg for isize {
    fn write_arg(&self, dst: &mut BytesMut) {
        (*self as i64).write_arg(dst);
    }
}

macro_rules! to_arg_uint {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn write_arg(&self, dst: &mut BytesMut) {
                let mut buf = [0u8; 20];
                write_blob(dst, b'$', format_u64(&mut buf, *self as u64));
            }
        }
    )*};
}
to_arg_uint!(u64, usize);

impl ToArg for f64 {
    fn write_arg(&self, dst: &mut BytesMut) {
        let mut text = StackText {
            buf: [0; 64],
            len: 0,
        };
        write_blob(dst, b'$', format_f64(&mut text, *self));
    }
}

impl ToArg for f32 {
    fn write_arg(&self, dst: &mut BytesMut) {
        f64::from(*self).write_arg(dst);
    }
}

impl Frame {
    /// Appends this frame's RESP encoding to `dst`.
    ///
    /// The encoding is canonical: streamed strings and aggregates are written
    /// in their fixed-length forms, and attributes before the frame they
    /// describe.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Self::Simple(s) => write_line(dst, b'+', s),
            Self::Error(s) => write_line(dst, b'-', s),
            Self::Integer(n) => {
                let mut buf = [0u8; 21];
                write_line(dst, b':', format_i64(&mut buf, *n));
            }
            Self::Bulk(b) => write_blob(dst, b'$', b),
            Self::NullBulk => dst.put_slice(b"$-1\r\n"),
            Self::NullArray => dst.put_slice(b"*-1\r\n"),
            Self::Null => dst.put_slice(b"_\r\n"),
            Self::Boolean(true) => dst.put_slice(b"#t\r\n"),
            Self::Boolean(false) => dst.put_slice(b"#f\r\n"),
            Self::Double(v) => {
                let mut text = StackText {
                    buf: [0; 64],
                    len: 0,
                };
                write_line(dst, b',', format_f64(&mut text, *v));
            }
            Self::BigNumber(n) => write_line(dst, b'(', n),
            Self::BulkError(e) => write_blob(dst, b'!', e),
            Self::Verbatim { format, text } => {
                let mut digits = [0u8; 20];
                let len = format_u64(&mut digits, text.len() as u64 + 4);
                dst.reserve(len.len() + text.len() + 9);
                dst.put_u8(b'=');
                dst.put_slice(len);
                dst.put_slice(b"\r\n");
                dst.put_slice(format);
                dst.put_u8(b':');
                dst.put_slice(text);
                dst.put_slice(b"\r\n");
            }
            Self::Array(items) => encode_list(dst, b'*', items),
            Self::Set(items) => encode_list(dst, b'~', items),
            Self::Push(items) => encode_list(dst, b'>', items),
            Self::Map(pairs) => encode_pairs(dst, b'%', pairs),
            Self::Attributed(a) => {
                encode_pairs(dst, b'|', &a.attributes);
                a.frame.encode(dst);
            }
        }
    }

    /// The number of bytes [`Frame::encode`] writes.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let blob = |n: usize| 1 + decimal_len(n as u64) + 2 + n + 2;
        match self {
            Self::Simple(s) | Self::Error(s) | Self::BigNumber(s) => s.len() + 3,
            Self::Integer(n) => 1 + decimal_len(n.unsigned_abs()) + usize::from(*n < 0) + 2,
            Self::Bulk(b) | Self::BulkError(b) => blob(b.len()),
            Self::NullBulk | Self::NullArray => 5,
            Self::Null => 3,
            Self::Boolean(_) => 4,
            Self::Double(v) => {
                let mut text = StackText {
                    buf: [0; 64],
                    len: 0,
                };
                format_f64(&mut text, *v).len() + 3
            }
            Self::Verbatim { text, .. } => blob(text.len() + 4),
            Self::Array(items) | Self::Set(items) | Self::Push(items) => {
                header_len(items.len()) + items.iter().map(Self::encoded_len).sum::<usize>()
            }
            Self::Map(pairs) => pairs_len(pairs),
            Self::Attributed(a) => pairs_len(&a.attributes) + a.frame.encoded_len(),
        }
    }
}

fn encode_list(dst: &mut BytesMut, ty: u8, items: &[Frame]) {
    write_header(dst, ty, items.len());
    for item in items {
        item.encode(dst);
    }
}

fn encode_pairs(dst: &mut BytesMut, ty: u8, pairs: &[(Frame, Frame)]) {
    write_header(dst, ty, pairs.len());
    for (key, value) in pairs {
        key.encode(dst);
        value.encode(dst);
    }
}

fn pairs_len(pairs: &[(Frame, Frame)]) -> usize {
    header_len(pairs.len())
        + pairs
            .iter()
            .map(|(k, v)| k.encoded_len() + v.encoded_len())
            .sum::<usize>()
}

const fn header_len(n: usize) -> usize {
    1 + decimal_len(n as u64) + 2
}

pub(crate) const fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}
