//! The incremental decoder.
//!
//! The decoder consumes the caller's [`BytesMut`] from the front, one element
//! at a time, as soon as that element is complete: a finished element of an
//! unfinished aggregate is parsed once and kept on a stack, never re-parsed
//! when more bytes arrive. What it cannot finish yet is remembered in
//! [`Pending`]: how far an unfinished line was scanned, or the length of a
//! bulk payload whose header is already consumed. So the work per call is
//! proportional to the new bytes, whatever the split of the stream.

use alloc::boxed::Box;
use alloc::vec::Vec;
use bytes::{Buf, Bytes, BytesMut};

use super::error::{DecodeError, DecodeErrorKind as Kind};
use super::frame::{Attributed, Frame};

mod fast;
use fast::Fast;

/// Bounds on what a server may declare, checked before anything is waited for.
///
/// The defaults follow what a well-configured redis-server can send: its own
/// `proto-max-bulk-len` default for bulks, and room for replies such as
/// `KEYS *` on a large key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string, bulk error, verbatim string or streamed string, in
    /// bytes. Default: 512 MiB.
    pub max_bulk_len: usize,
    /// Most elements in one aggregate (key/value pairs for maps and
    /// attributes). Default: 2^26 (67,108,864).
    pub max_elements: usize,
    /// Deepest nesting of aggregates. Default: 128. This also bounds the
    /// recursion of dropping, comparing and encoding a decoded frame.
    pub max_depth: usize,
    /// Longest simple string, simple error, double or big number line, in
    /// bytes. Default: 64 KiB.
    pub max_line_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk_len: 512 * 1024 * 1024,
            max_elements: 1 << 26,
            max_depth: 128,
            max_line_len: 64 * 1024,
        }
    }
}

/// The incremental RESP2/RESP3 decoder.
///
/// Feed it with [`Decoder::decode`]: append whatever bytes arrived to the
/// buffer and call `decode` until it answers `Ok(None)`. The decoder removes
/// the bytes of every element it finishes from the front of the buffer; the
/// caller must only ever append to it.
///
/// ```
/// use bytes::BytesMut;
/// use redpoll_core::resp::{Decoder, Frame};
///
/// let mut decoder = Decoder::new();
/// let mut buf = BytesMut::from(&b"+OK\r\n$5\r\nhel"[..]);
/// assert_eq!(decoder.decode(&mut buf), Ok(Some(Frame::Simple("OK".into()))));
/// assert_eq!(decoder.decode(&mut buf), Ok(None));
/// buf.extend_from_slice(b"lo\r\n");
/// assert_eq!(decoder.decode(&mut buf), Ok(Some(Frame::Bulk("hello".into()))));
/// assert!(buf.is_empty());
/// ```
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Stream offset of `chunk[0]` while a chunk is held, else of the first
    /// byte of the caller's buffer. The fast path only moves `pos`: the
    /// position in the stream is `offset + pos`.
    offset: u64,
    /// Bytes taken from the caller's buffer in one go, for the fast path;
    /// `chunk[pos..]` comes before anything in the caller's buffer.
    chunk: Bytes,
    pos: usize,
    pending: Pending,
    /// Unfinished aggregates, outermost first.
    stack: Vec<Level>,
    /// Attributes waiting for the next top-level frame.
    attributes: Option<Vec<(Frame, Frame)>>,
    /// The sticky error.
    error: Option<DecodeError>,
    /// Bytes looked at while searching for line ends; lets the tests prove
    /// that nothing is scanned twice.
    #[cfg(test)]
    scanned: usize,
}

/// What is known about the element at the front of the buffer.
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// Nothing: the next byte is a type byte.
    Start,
    /// A line whose first `scanned` bytes (type byte included) hold no CR.
    Line { scanned: usize },
    /// A payload whose header is consumed: `len` bytes and CRLF are awaited.
    Blob { blob: Blob, len: usize },
}

#[derive(Debug, Clone, Copy)]
enum Blob {
    Bulk,
    Error,
    Verbatim,
    Chunk,
}

/// One unfinished aggregate.
#[derive(Debug)]
struct Level {
    kind: LevelKind,
    /// Elements still expected (keys and values count one each), or `None`
    /// for a streamed aggregate, which ends with `.`.
    remaining: Option<usize>,
    /// Elements received, for the element limit of streamed aggregates.
    received: usize,
    items: Items,
    /// Attributes waiting for the next element of this aggregate.
    attributes: Option<Vec<(Frame, Frame)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LevelKind {
    Array,
    Set,
    Push,
    Map,
    Attribute,
    /// A streamed string (`$?`): its items are `;` chunks.
    Text,
}

#[derive(Debug)]
enum Items {
    List(Vec<Frame>),
    Pairs(Vec<(Frame, Frame)>, Option<Frame>),
    Text(BytesMut),
}

/// The outcome of one step: an element finished, progress without a frame,
/// or the buffer ran dry.
enum Step {
    Frame(Frame),
    Progress,
    Incomplete,
}

/// A parsed length header.
enum Len {
    Null,
    Streamed,
    Exactly(usize),
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with the default [`Limits`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A decoder with the given limits.
    #[must_use]
    pub const fn with_limits(limits: Limits) -> Self {
        Self {
            limits,
            offset: 0,
            chunk: Bytes::new(),
            pos: 0,
            pending: Pending::Start,
            stack: Vec::new(),
            attributes: None,
            error: None,
            #[cfg(test)]
            scanned: 0,
        }
    }

    /// The limits in force.
    #[must_use]
    pub const fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Stream offset of the first byte not consumed yet.
    #[must_use]
    pub const fn offset(&self) -> u64 {
        self.offset + self.pos as u64
    }

    /// Whether the decoder is between frames: nothing of a frame has been
    /// consumed from the buffer yet.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.pos == self.chunk.len()
            && self.stack.is_empty()
            && self.attributes.is_none()
            && !matches!(self.pending, Pending::Blob { .. })
    }

    /// Decodes the next complete frame at the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed: append them to `buf` and call
    /// again. The decoder takes bytes from the front of `buf` as it goes, and
    /// may take more than one frame's worth at a time and keep them for the
    /// next calls, so the caller must only ever append to `buf`, never
    /// remove or rewrite bytes of it. When a call returns `Ok(None)`, every
    /// byte given so far has been examined: nothing complete is left behind.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] when the stream is not valid RESP or breaks a limit.
    /// It is sticky: every later call returns it again.
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        // Between top-level frames, complete common replies are parsed by the
        // fast path from a chunk taken from `buf` in one go: no buffer
        // bookkeeping per frame, one reference count per bulk payload.
        // Unparsed chunk bytes only outlive a call that returned a frame,
        // so while there are some the decoder is between frames: the fast
        // path may look at them before anything else is checked.
        if let Some(frame) = self.fast_scalar() {
            return Ok(Some(frame));
        }
        if self.pos < self.chunk.len() || self.take_chunk(buf) {
            match self.fast(0) {
                Fast::Frame(frame) => return Ok(Some(frame)),
                Fast::Suspended => {}
                Fast::NotHandled => self.give_back(buf),
            }
        }
        self.decode_slow(buf)
    }

    /// Takes everything in `buf` as the fast path's chunk, when the decoder
    /// is between top-level frames.
    #[inline]
    fn take_chunk(&mut self, buf: &mut BytesMut) -> bool {
        let idle = self.error.is_none()
            && matches!(self.pending, Pending::Start)
            && self.stack.is_empty()
            && self.attributes.is_none();
        if !idle || buf.is_empty() {
            return false;
        }
        self.offset += self.pos as u64;
        self.pos = 0;
        self.chunk = buf.split().freeze();
        true
    }

    /// The fast path at an element boundary inside an aggregate: takes a
    /// chunk when it has none, gives the rest back when the fast path stops
    /// short.
    #[inline]
    fn try_fast(&mut self, buf: &mut BytesMut) -> Fast {
        if self.pos == self.chunk.len() {
            if buf.is_empty() {
                return Fast::NotHandled;
            }
            self.offset += self.pos as u64;
            self.pos = 0;
            self.chunk = buf.split().freeze();
        }
        match self.fast(0) {
            Fast::NotHandled => {
                self.give_back(buf);
                Fast::NotHandled
            }
            done => done,
        }
    }

    /// Returns the unparsed rest of the chunk to the front of `buf`, for the
    /// general machine. It is at most one unfinished or unusual element
    /// (plus whatever the caller appended since): the fast path stops at the
    /// first element it does not finish, and the general machine then keeps
    /// the state (a bulk length, a scan position) that spares the next calls
    /// from taking a chunk until that element is done.
    #[cold]
    fn give_back(&mut self, buf: &mut BytesMut) {
        let rest = self.chunk.slice(self.pos..);
        self.chunk = Bytes::new();
        self.offset += self.pos as u64;
        self.pos = 0;
        if rest.is_empty() {
            return;
        }
        if buf.is_empty() {
            buf.extend_from_slice(&rest);
        } else {
            let mut joined = BytesMut::with_capacity(rest.len() + buf.len());
            joined.extend_from_slice(&rest);
            joined.extend_from_slice(buf);
            *buf = joined;
        }
    }

    #[inline(never)]
    fn decode_slow(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        match self.run(buf) {
            Ok(frame) => Ok(frame),
            Err(err) => {
                // Sticky: drop whatever the fast path still held, so that no
                // later call can decode past the error.
                self.error = Some(err);
                self.offset += self.pos as u64;
                self.pos = 0;
                self.chunk = Bytes::new();
                Err(err)
            }
        }
    }

    fn run(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            let fast = match self.pending {
                Pending::Start if !self.in_text() => self.try_fast(buf),
                _ => Fast::NotHandled,
            };
            let frame = match fast {
                Fast::Frame(frame) => frame,
                Fast::Suspended => continue,
                Fast::NotHandled => match self.step(buf)? {
                    Step::Frame(frame) => frame,
                    Step::Progress => continue,
                    Step::Incomplete => return Ok(None),
                },
            };
            if self.stack.is_empty() && self.attributes.is_none() {
                return Ok(Some(frame));
            }
            if let Some(frame) = self.deliver(frame)? {
                return Ok(Some(frame));
            }
        }
    }

    fn in_text(&self) -> bool {
        matches!(self.stack.last(), Some(l) if l.kind == LevelKind::Text)
    }

    const fn fail(&self, at: usize, kind: Kind) -> DecodeError {
        DecodeError::new(self.offset + (self.pos + at) as u64, kind)
    }

    fn consume(&mut self, buf: &mut BytesMut, n: usize) {
        buf.advance(n);
        self.offset += n as u64;
    }

    /// Takes `n` payload bytes and the CRLF after them off the buffer.
    fn take(&mut self, buf: &mut BytesMut, n: usize) -> Bytes {
        let mut data = buf.split_to(n + 2).freeze();
        data.truncate(n);
        self.offset += n as u64 + 2;
        data
    }

    /// Parses one element at the front of the buffer.
    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, DecodeError> {
        let scanned = match core::mem::replace(&mut self.pending, Pending::Start) {
            Pending::Start => 1,
            Pending::Line { scanned } => scanned,
            Pending::Blob { blob, len } => return self.blob(buf, blob, len),
        };
        let Some(&ty) = buf.first() else {
            return Ok(Step::Incomplete);
        };
        if ty != b';' && matches!(self.stack.last(), Some(l) if l.kind == LevelKind::Text) {
            return Err(self.fail(0, Kind::ExpectedChunk));
        }
        match ty {
            b'+' | b'-' => {
                let Some(end) = self.line(buf, scanned)? else {
                    return Ok(Step::Incomplete);
                };
                let line = &buf[1..end];
                // The most common replies share a static buffer: no refcount, no copy.
                let text = match line {
                    b"OK" => Some(Bytes::from_static(b"OK")),
                    b"PONG" => Some(Bytes::from_static(b"PONG")),
                    b"QUEUED" => Some(Bytes::from_static(b"QUEUED")),
                    _ => None,
                };
                let text = if let Some(text) = text {
                    self.consume(buf, end + 2);
                    text
                } else {
                    self.consume(buf, 1);
                    self.take(buf, end - 1)
                };
                Ok(Step::Frame(if ty == b'+' {
                    Frame::Simple(text)
                } else {
                    Frame::Error(text)
                }))
            }
            b':' => {
                let Some((value, used)) = self.integer(buf, Kind::InvalidInteger)? else {
                    return Ok(Step::Incomplete);
                };
                self.consume(buf, used);
                Ok(Step::Frame(Frame::Integer(value)))
            }
            b'$' | b'!' | b'=' | b';' => self.blob_header(buf, ty),
            b'*' | b'~' | b'>' | b'%' | b'|' => self.aggregate_header(buf, ty),
            b'_' | b'#' | b',' | b'(' | b'.' => self.small_line(buf, ty, scanned),
            _ => Err(self.fail(0, Kind::UnknownType(ty))),
        }
    }

    /// Finds the CR ending the line at the front of the buffer, resuming the
    /// search at `scanned`. Returns its index once the LF after it is there.
    fn line(&mut self, buf: &[u8], scanned: usize) -> Result<Option<usize>, DecodeError> {
        let max = self.limits.max_line_len;
        let found = buf.get(scanned..).and_then(|rest| {
            #[cfg(test)]
            {
                let seen = rest
                    .iter()
                    .position(|&b| b == b'\r')
                    .map_or(rest.len(), |i| i + 1);
                self.scanned += seen;
            }
            rest.iter().position(|&b| b == b'\r')
        });
        match found {
            Some(i) => {
                let cr = scanned + i;
                if cr - 1 > max {
                    return Err(self.fail(1 + max, Kind::LineTooLong { max }));
                }
                match buf.get(cr + 1) {
                    Some(b'\n') => Ok(Some(cr)),
                    Some(_) => Err(self.fail(cr + 1, Kind::MissingCrlf)),
                    None => {
                        self.pending = Pending::Line { scanned: cr };
                        Ok(None)
                    }
                }
            }
            None => {
                if buf.len() - 1 > max {
                    return Err(self.fail(1 + max, Kind::LineTooLong { max }));
                }
                self.pending = Pending::Line { scanned: buf.len() };
                Ok(None)
            }
        }
    }

    /// Parses `[+-]digits\r\n` after the type byte. Returns the value and the
    /// length of the whole line, CRLF included, or `None` when it is not all
    /// there yet. Digits are few (an `i64` overflows after 19), so an
    /// unfinished integer is simply parsed again.
    fn integer(&self, buf: &[u8], invalid: Kind) -> Result<Option<(i64, usize)>, DecodeError> {
        let mut i = 1;
        let negative = match buf.get(1) {
            None => return Ok(None),
            Some(b'-') => {
                i = 2;
                true
            }
            Some(b'+') => {
                i = 2;
                false
            }
            Some(_) => false,
        };
        let digits = i;
        let mut value: i64 = 0;
        loop {
            match buf.get(i) {
                None => return Ok(None),
                Some(&c @ b'0'..=b'9') => {
                    let d = i64::from(c - b'0');
                    let next = value.checked_mul(10).and_then(|v| {
                        if negative {
                            v.checked_sub(d)
                        } else {
                            v.checked_add(d)
                        }
                    });
                    value = match next {
                        Some(v) => v,
                        None => return Err(self.fail(i, invalid)),
                    };
                    i += 1;
                }
                Some(b'\r') if i > digits => break,
                Some(_) => return Err(self.fail(i, invalid)),
            }
        }
        match buf.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((value, i + 2))),
            Some(_) => Err(self.fail(i + 1, Kind::MissingCrlf)),
        }
    }

    /// Parses a length header: `-1`, `?` or a non-negative count.
    fn length(&self, buf: &[u8]) -> Result<Option<(Len, usize)>, DecodeError> {
        if buf.get(1) == Some(&b'?') {
            return match buf.get(2..4) {
                None | Some([b'\r']) => Ok(None),
                Some(b"\r\n") => Ok(Some((Len::Streamed, 4))),
                Some(_) => Err(self.fail(2, Kind::InvalidLength)),
            };
        }
        let Some((value, used)) = self.integer(buf, Kind::InvalidLength)? else {
            return Ok(None);
        };
        match value {
            -1 => Ok(Some((Len::Null, used))),
            n if n < 0 => Err(self.fail(1, Kind::InvalidLength)),
            n => match usize::try_from(n) {
                Ok(n) => Ok(Some((Len::Exactly(n), used))),
                Err(_) => Err(self.fail(1, Kind::InvalidLength)),
            },
        }
    }

    /// `$`, `!`, `=` and `;`: a length, then a payload.
    fn blob_header(&mut self, buf: &mut BytesMut, ty: u8) -> Result<Step, DecodeError> {
        let Some((len, used)) = self.length(buf)? else {
            return Ok(Step::Incomplete);
        };
        let in_text = matches!(self.stack.last(), Some(l) if l.kind == LevelKind::Text);
        if ty == b';' && !in_text {
            return Err(self.fail(0, Kind::UnexpectedChunk));
        }
        let (blob, len) = match (ty, len) {
            (b'$', Len::Null) => {
                self.consume(buf, used);
                return Ok(Step::Frame(Frame::NullBulk));
            }
            (b'$', Len::Streamed) => {
                self.open(LevelKind::Text, None, 0)?;
                self.consume(buf, used);
                return Ok(Step::Progress);
            }
            (_, Len::Null) => return Err(self.fail(1, Kind::InvalidLength)),
            (_, Len::Streamed) => return Err(self.fail(1, Kind::UnexpectedStream)),
            (b'$', Len::Exactly(n)) => (Blob::Bulk, n),
            (b'!', Len::Exactly(n)) => (Blob::Error, n),
            (b'=', Len::Exactly(n)) => (Blob::Verbatim, n),
            (_, Len::Exactly(0)) => {
                // `;0` ends a streamed string.
                self.consume(buf, used);
                let Some(Level {
                    items: Items::Text(text),
                    ..
                }) = self.stack.pop()
                else {
                    return Err(self.fail(0, Kind::UnexpectedChunk));
                };
                return Ok(Step::Frame(Frame::Bulk(text.freeze())));
            }
            (_, Len::Exactly(n)) => (Blob::Chunk, n),
        };
        let total = match (blob, self.stack.last()) {
            (
                Blob::Chunk,
                Some(Level {
                    items: Items::Text(text),
                    ..
                }),
            ) => text.len().saturating_add(len),
            _ => len,
        };
        if total > self.limits.max_bulk_len {
            return Err(self.fail(
                1,
                Kind::BulkTooLong {
                    len: total as u64,
                    max: self.limits.max_bulk_len,
                },
            ));
        }
        self.consume(buf, used);
        self.blob(buf, blob, len)
    }

    /// The payload of a blob whose header is consumed.
    fn blob(&mut self, buf: &mut BytesMut, blob: Blob, len: usize) -> Result<Step, DecodeError> {
        if buf.len() < len.saturating_add(2) {
            self.pending = Pending::Blob { blob, len };
            return Ok(Step::Incomplete);
        }
        if buf[len] != b'\r' {
            return Err(self.fail(len, Kind::MissingCrlf));
        }
        if buf[len + 1] != b'\n' {
            return Err(self.fail(len + 1, Kind::MissingCrlf));
        }
        let frame = match blob {
            Blob::Bulk => Frame::Bulk(self.take(buf, len)),
            Blob::Error => Frame::BulkError(self.take(buf, len)),
            Blob::Verbatim => {
                if len < 4 || buf[3] != b':' {
                    return Err(self.fail(len.min(3), Kind::InvalidVerbatim));
                }
                let format = [buf[0], buf[1], buf[2]];
                self.consume(buf, 4);
                Frame::Verbatim {
                    format,
                    text: self.take(buf, len - 4),
                }
            }
            Blob::Chunk => {
                match self.stack.last_mut() {
                    Some(Level {
                        items: Items::Text(text),
                        ..
                    }) => text.extend_from_slice(&buf[..len]),
                    _ => return Err(self.fail(0, Kind::UnexpectedChunk)),
                }
                self.consume(buf, len + 2);
                return Ok(Step::Progress);
            }
        };
        Ok(Step::Frame(frame))
    }

    /// `*`, `~`, `>`, `%` and `|`: a count, then that many elements.
    fn aggregate_header(&mut self, buf: &mut BytesMut, ty: u8) -> Result<Step, DecodeError> {
        let Some((len, used)) = self.length(buf)? else {
            return Ok(Step::Incomplete);
        };
        let kind = match ty {
            b'*' => LevelKind::Array,
            b'~' => LevelKind::Set,
            b'>' => LevelKind::Push,
            b'%' => LevelKind::Map,
            _ => LevelKind::Attribute,
        };
        let count = match len {
            Len::Null if kind == LevelKind::Array => {
                self.consume(buf, used);
                return Ok(Step::Frame(Frame::NullArray));
            }
            Len::Null => return Err(self.fail(1, Kind::InvalidLength)),
            Len::Streamed if matches!(kind, LevelKind::Array | LevelKind::Set | LevelKind::Map) => {
                None
            }
            Len::Streamed => return Err(self.fail(1, Kind::UnexpectedStream)),
            Len::Exactly(n) if n > self.limits.max_elements => {
                return Err(self.fail(
                    1,
                    Kind::TooManyElements {
                        count: n as u64,
                        max: self.limits.max_elements,
                    },
                ));
            }
            Len::Exactly(n) => Some(n),
        };
        if count == Some(0) {
            self.consume(buf, used);
            return Ok(match Level::new(kind, Some(0), 0).finish() {
                Finished::Frame(frame) => Step::Frame(frame),
                Finished::Attributes(attributes) => {
                    self.attach(attributes);
                    Step::Progress
                }
            });
        }
        // Room for what the buffer can already hold (each element takes at
        // least 3 bytes), never for what was only declared.
        let per = if matches!(kind, LevelKind::Map | LevelKind::Attribute) {
            6
        } else {
            3
        };
        let room = count.map_or(0, |n| n.min((buf.len() - used) / per));
        self.open(kind, count, room)?;
        self.consume(buf, used);
        Ok(Step::Progress)
    }

    fn open(
        &mut self,
        kind: LevelKind,
        count: Option<usize>,
        room: usize,
    ) -> Result<(), DecodeError> {
        let max = self.limits.max_depth;
        if self.stack.len() >= max {
            return Err(self.fail(0, Kind::TooDeep { max }));
        }
        self.stack.push(Level::new(kind, count, room));
        Ok(())
    }

    /// `_`, `#`, `,`, `(` and `.`: short lines with a fixed grammar.
    fn small_line(
        &mut self,
        buf: &mut BytesMut,
        ty: u8,
        scanned: usize,
    ) -> Result<Step, DecodeError> {
        let Some(end) = self.line(buf, scanned)? else {
            return Ok(Step::Incomplete);
        };
        let line = &buf[1..end];
        let frame = match ty {
            b'_' if line.is_empty() => Frame::Null,
            b'_' => return Err(self.fail(1, Kind::InvalidNull)),
            b'#' => match line {
                b"t" => Frame::Boolean(true),
                b"f" => Frame::Boolean(false),
                _ => return Err(self.fail(1, Kind::InvalidBoolean)),
            },
            b',' => match parse_double(line) {
                Some(value) => Frame::Double(value),
                None => return Err(self.fail(1, Kind::InvalidDouble)),
            },
            b'(' => {
                let digits = match line {
                    [b'-' | b'+', rest @ ..] => rest,
                    _ => line,
                };
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(self.fail(1, Kind::InvalidBigNumber));
                }
                self.consume(buf, 1);
                return Ok(Step::Frame(Frame::BigNumber(self.take(buf, end - 1))));
            }
            _ => {
                if !line.is_empty() {
                    return Err(self.fail(1, Kind::UnexpectedEnd));
                }
                return self.end_stream(buf, end + 2);
            }
        };
        self.consume(buf, end + 2);
        Ok(Step::Frame(frame))
    }

    /// `.`: the end of the streamed aggregate on top of the stack.
    fn end_stream(&mut self, buf: &mut BytesMut, used: usize) -> Result<Step, DecodeError> {
        let Some(level) = self.stack.last() else {
            return Err(self.fail(0, Kind::UnexpectedEnd));
        };
        if level.attributes.is_some() {
            return Err(self.fail(0, Kind::DanglingAttribute));
        }
        if level.remaining.is_some() || matches!(level.items, Items::Pairs(_, Some(_))) {
            return Err(self.fail(0, Kind::UnexpectedEnd));
        }
        self.consume(buf, used);
        let Some(level) = self.stack.pop() else {
            return Err(self.fail(0, Kind::UnexpectedEnd));
        };
        Ok(match level.finish() {
            Finished::Frame(frame) => Step::Frame(frame),
            Finished::Attributes(attributes) => {
                self.attach(attributes);
                Step::Progress
            }
        })
    }

    /// Hands a finished element to the aggregate it belongs to, finishing
    /// every aggregate it completes. Returns the top-level frame, if one is
    /// now complete.
    fn deliver(&mut self, mut frame: Frame) -> Result<Option<Frame>, DecodeError> {
        loop {
            let Some(level) = self.stack.last_mut() else {
                if let Some(attributes) = self.attributes.take() {
                    frame = Frame::Attributed(Box::new(Attributed { attributes, frame }));
                }
                return Ok(Some(frame));
            };
            if let Some(attributes) = level.attributes.take() {
                frame = Frame::Attributed(Box::new(Attributed { attributes, frame }));
            }
            match &mut level.items {
                Items::List(items) => items.push(frame),
                Items::Pairs(pairs, key) => match key.take() {
                    None => *key = Some(frame),
                    Some(key) => pairs.push((key, frame)),
                },
                Items::Text(_) => return Err(self.fail(0, Kind::ExpectedChunk)),
            }
            level.received += 1;
            match &mut level.remaining {
                Some(remaining) => {
                    *remaining -= 1;
                    if *remaining > 0 {
                        return Ok(None);
                    }
                }
                None => {
                    let pairs = if level.kind == LevelKind::Map { 2 } else { 1 };
                    let max = self.limits.max_elements;
                    if level.received > max.saturating_mul(pairs) {
                        let count = level.received.div_ceil(pairs) as u64;
                        return Err(self.fail(0, Kind::TooManyElements { count, max }));
                    }
                    return Ok(None);
                }
            }
            let Some(level) = self.stack.pop() else {
                return Ok(None);
            };
            match level.finish() {
                Finished::Frame(done) => frame = done,
                Finished::Attributes(attributes) => {
                    self.attach(attributes);
                    return Ok(None);
                }
            }
        }
    }

    /// Keeps attributes for the next element at the current level.
    fn attach(&mut self, attributes: Vec<(Frame, Frame)>) {
        let slot = match self.stack.last_mut() {
            Some(level) => &mut level.attributes,
            None => &mut self.attributes,
        };
        match slot {
            Some(existing) => existing.extend(attributes),
            None => *slot = Some(attributes),
        }
    }
}

#[cfg(test)]
impl Decoder {
    /// Bytes looked at so far while searching for line ends.
    pub(super) const fn scanned(&self) -> usize {
        self.scanned
    }

    /// Length and capacity of the innermost unfinished list aggregate.
    pub(super) fn innermost_list(&self) -> Option<(usize, usize)> {
        match &self.stack.last()?.items {
            Items::List(items) => Some((items.len(), items.capacity())),
            _ => None,
        }
    }
}

enum Finished {
    Frame(Frame),
    Attributes(Vec<(Frame, Frame)>),
}

impl Level {
    fn new(kind: LevelKind, count: Option<usize>, room: usize) -> Self {
        let (remaining, items) = match kind {
            LevelKind::Map | LevelKind::Attribute => (
                count.map(|n| n * 2),
                Items::Pairs(Vec::with_capacity(room), None),
            ),
            LevelKind::Text => (None, Items::Text(BytesMut::new())),
            _ => (count, Items::List(Vec::with_capacity(room))),
        };
        Self {
            kind,
            remaining,
            received: 0,
            items,
            attributes: None,
        }
    }

    fn finish(self) -> Finished {
        Finished::Frame(match (self.kind, self.items) {
            (LevelKind::Attribute, Items::Pairs(pairs, _)) => return Finished::Attributes(pairs),
            (_, Items::Pairs(pairs, _)) => Frame::Map(pairs),
            (LevelKind::Set, Items::List(items)) => Frame::Set(items),
            (LevelKind::Push, Items::List(items)) => Frame::Push(items),
            (_, Items::List(items)) => Frame::Array(items),
            (_, Items::Text(text)) => Frame::Bulk(text.freeze()),
        })
    }
}

fn parse_double(line: &[u8]) -> Option<f64> {
    match line {
        b"inf" | b"+inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        b"nan" | b"-nan" => Some(f64::NAN),
        _ => {
            // Only the characters of a decimal float: this rejects the
            // spellings Rust accepts but RESP does not ("infinity", "NaN").
            let ok = !line.is_empty()
                && line
                    .iter()
                    .all(|&b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'));
            if !ok {
                return None;
            }
            core::str::from_utf8(line).ok()?.parse().ok()
        }
    }
}
