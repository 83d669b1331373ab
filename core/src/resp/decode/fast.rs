//! The fast path: complete elements parsed by plain recursion.
//!
//! Most of the time a whole reply is already in the buffer. Then there is no
//! need for the general machine's explicit stack: the fast path parses the
//! common types directly and recurses into aggregates. It never reports an
//! error. Whatever it does not handle (an unfinished element, an invalid
//! one, a limit exceeded, a rare type) it leaves untouched for the general
//! machine, which parses it from the same byte and is the one place where
//! validity and error offsets are decided. When it runs out of bytes inside
//! an aggregate, it hands the aggregates it has open to the general machine
//! as stack levels, with the elements already parsed, so nothing is parsed
//! twice and no byte is scanned again.

use alloc::vec::Vec;
use bytes::{Buf, Bytes};

use super::{Decoder, Items, Level, LevelKind, parse_double};
use crate::resp::frame::Frame;

/// What the fast path did with the element at the front of the buffer.
pub(super) enum Fast {
    /// Parsed and consumed it.
    Frame(Frame),
    /// Consumed part of an aggregate and saved its state on the stack.
    Suspended,
    /// Left it untouched for the general machine.
    NotHandled,
}

/// Aggregates nested deeper than this (inside one fast call) are left to
/// the general machine, which keeps an explicit stack instead of recursing.
const MAX_FAST_DEPTH: usize = 16;

impl Decoder {
    /// Parses the element at `chunk[pos..]` if it is complete and common;
    /// `depth` counts the aggregates this call is nested in.
    #[inline]
    pub(super) fn fast(&mut self, depth: usize) -> Fast {
        if let Some(frame) = self.fast_scalar() {
            return Fast::Frame(frame);
        }
        match self.chunk.get(self.pos) {
            Some(&ty @ (b'*' | b'~' | b'>' | b'%')) => self.fast_aggregate(ty, depth),
            _ => Fast::NotHandled,
        }
    }

    /// Parses the element at `chunk[pos..]` if it is a complete common
    /// scalar. `None` for anything else, aggregates included.
    #[inline(always)]
    pub(super) fn fast_scalar(&mut self) -> Option<Frame> {
        let pos = self.pos;
        let &ty = self.chunk.get(pos)?;
        let b = &self.chunk[pos..];
        let (frame, used) = match ty {
            b'$' => match bulk(b, self.limits.max_bulk_len) {
                Some((hdr, end)) => (Frame::Bulk(self.chunk.slice(pos + hdr..pos + end)), end + 2),
                None => b.starts_with(b"$-1\r\n").then_some((Frame::NullBulk, 5))?,
            },
            b':' => {
                let (value, used) = integer(b)?;
                (Frame::Integer(value), used)
            }
            b'+' if b.starts_with(b"+OK\r\n") => (Frame::Simple(Bytes::from_static(b"OK")), 5),
            ty @ (b'+' | b'-') => {
                let cr = self.line_end(b)?;
                let text = self.chunk.slice(pos + 1..pos + cr);
                let frame = if ty == b'+' {
                    Frame::Simple(text)
                } else {
                    Frame::Error(text)
                };
                (frame, cr + 2)
            }
            b'_' if b.starts_with(b"_\r\n") => (Frame::Null, 3),
            b'#' if b.starts_with(b"#t\r\n") => (Frame::Boolean(true), 4),
            b'#' if b.starts_with(b"#f\r\n") => (Frame::Boolean(false), 4),
            b',' => {
                let cr = self.line_end(b)?;
                (Frame::Double(parse_double(&b[1..cr])?), cr + 2)
            }
            _ => return None,
        };
        self.pos = pos + used;
        Some(frame)
    }

    #[inline(always)]
    fn done(&mut self, used: usize, frame: Frame) -> Frame {
        self.pos += used;
        frame
    }

    /// The index of the CR of a complete line within the line limit.
    #[inline]
    fn line_end(&self, b: &[u8]) -> Option<usize> {
        let limit = b.len().min(self.limits.max_line_len + 2);
        let cr = 1 + b.get(1..limit)?.iter().position(|&c| c == b'\r')?;
        (b.get(cr + 1) == Some(&b'\n')).then_some(cr)
    }

    #[inline(never)]
    fn fast_aggregate(&mut self, ty: u8, depth: usize) -> Fast {
        let base = self.stack.len();
        if depth >= MAX_FAST_DEPTH || base + depth >= self.limits.max_depth {
            return Fast::NotHandled;
        }
        let b = &self.chunk[self.pos..];
        if ty == b'*' && b.starts_with(b"*-1\r\n") {
            return Fast::Frame(self.done(5, Frame::NullArray));
        }
        let Some((n, hdr)) = header(b) else {
            return Fast::NotHandled;
        };
        if n > self.limits.max_elements as u64 {
            return Fast::NotHandled;
        }
        let n = n as usize;
        let kind = match ty {
            b'*' => LevelKind::Array,
            b'~' => LevelKind::Set,
            b'>' => LevelKind::Push,
            _ => LevelKind::Map,
        };
        // Room for what the chunk can hold, never for what was only
        // declared: an element takes at least 3 bytes, a pair 6.
        let per = if kind == LevelKind::Map { 6 } else { 3 };
        let room = n.min((b.len() - hdr) / per);
        self.pos += hdr;
        if kind == LevelKind::Map {
            let mut pairs = Vec::with_capacity(room);
            for i in 0..n {
                let Some(key) = self.element(depth) else {
                    return self.suspend(base, kind, 2 * (n - i), Items::Pairs(pairs, None));
                };
                let Some(value) = self.element(depth) else {
                    let left = 2 * (n - i) - 1;
                    return self.suspend(base, kind, left, Items::Pairs(pairs, Some(key)));
                };
                pairs.push((key, value));
            }
            return Fast::Frame(Frame::Map(pairs));
        }
        let mut items = Vec::with_capacity(room);
        let mut i = 0;
        while i < n {
            i += self.bulk_run(&mut items, n - i);
            if i == n {
                break;
            }
            let Some(item) = self.element(depth) else {
                return self.suspend(base, kind, n - i, Items::List(items));
            };
            items.push(item);
            i += 1;
        }
        Fast::Frame(match kind {
            LevelKind::Set => Frame::Set(items),
            LevelKind::Push => Frame::Push(items),
            _ => Frame::Array(items),
        })
    }

    /// Parses up to `max` consecutive complete bulk strings into `items` (the
    /// shape of most array replies: `MGET`, `LRANGE`, `HGETALL`, ...) with
    /// the position in a register; returns how many.
    #[inline(always)]
    fn bulk_run(&mut self, items: &mut Vec<Frame>, max: usize) -> usize {
        // Each batch first finds where its payloads are, then slices them
        // all: the scan keeps everything in registers, and the reference-count
        // call of each slice does not force it to the stack.
        const BATCH: usize = 32;
        let max_len = self.limits.max_bulk_len;
        // Not even one: spare the run its setup.
        if self.chunk.get(self.pos) != Some(&b'$') {
            return 0;
        }
        let mut spans = [(0, 0); BATCH];
        let mut done = 0;
        loop {
            let want = (max - done).min(BATCH);
            let mut found = 0;
            let mut pos = self.pos;
            let chunk: &[u8] = &self.chunk;
            while found < want {
                let Some(b) = chunk.get(pos..) else {
                    break;
                };
                // One length check for the type byte and the header's
                // window; the last few bytes are left to `element`. Three
                // digits are tried first: values of 100 to 999 bytes.
                let Some(w) = b.first_chunk::<24>() else {
                    break;
                };
                let (len, hdr) = match three_digit_header(w) {
                    Some(len) => (len, 6),
                    None if w[0] == b'$' => match header(b) {
                        Some(header) => header,
                        None => break,
                    },
                    None => break,
                };
                let Some((hdr, end)) = payload_end(b, len, hdr, max_len) else {
                    break;
                };
                spans[found] = (pos + hdr, pos + end);
                found += 1;
                pos += end + 2;
            }
            self.pos = pos;
            let chunk = &self.chunk;
            items.extend(
                spans[..found]
                    .iter()
                    .map(|&(start, end)| bulk_frame(chunk, start, end)),
            );
            done += found;
            if found < want || done == max {
                return done;
            }
        }
    }

    /// One element of an aggregate at `depth`: scalars inline, nested
    /// aggregates by recursion. `None` when the aggregate must be suspended
    /// (the element is unfinished, unusual, or was itself suspended).
    #[inline(always)]
    fn element(&mut self, depth: usize) -> Option<Frame> {
        if let Some(item) = self.fast_scalar() {
            return Some(item);
        }
        match self.fast(depth + 1) {
            Fast::Frame(item) => Some(item),
            Fast::Suspended | Fast::NotHandled => None,
        }
    }

    /// Hands an unfinished aggregate to the general machine. Levels its
    /// elements suspended are above `base` already; this one goes beneath
    /// them.
    #[cold]
    fn suspend(&mut self, base: usize, kind: LevelKind, remaining: usize, items: Items) -> Fast {
        let level = Level {
            kind,
            remaining: Some(remaining),
            received: 0,
            items,
            attributes: None,
        };
        self.stack.insert(base, level);
        Fast::Suspended
    }
}

/// `Frame::Bulk(chunk[start..end])`, the slice adjusted in place in the
/// frame, which spares the compiler a copy of it ([`Bytes::slice`] adjusts
/// its own copy, and is not always inlined). The chunk always comes from a
/// split `BytesMut`, so `truncate` only sets the length. Truncating first
/// spares `advance` a reload: the length it checks against was just set.
#[inline(always)]
fn bulk_frame(chunk: &Bytes, start: usize, end: usize) -> Frame {
    let mut frame = Frame::Bulk(chunk.clone());
    if let Frame::Bulk(payload) = &mut frame {
        payload.truncate(end);
        payload.advance(start);
    }
    frame
}

/// A complete bulk string `$<len>\r\n<payload>\r\n` at the front of `b`,
/// no longer than `max_len`: where its payload starts and ends.
#[inline(always)]
fn bulk(b: &[u8], max_len: usize) -> Option<(usize, usize)> {
    let (len, hdr) = header(b)?;
    payload_end(b, len, hdr, max_len)
}

/// Where the payload of `len` bytes after a header of `hdr` bytes ends, if
/// it is within `max_len`, in `b` and followed by CR LF.
#[inline(always)]
fn payload_end(b: &[u8], len: u64, hdr: usize, max_len: usize) -> Option<(usize, usize)> {
    if len > max_len as u64 {
        return None;
    }
    // No overflow: a header has at most 18 digits.
    let end = hdr + len as usize;
    let tail = b.get(end..)?.first_chunk::<2>()?;
    (tail == b"\r\n").then_some((hdr, end))
}

/// `<type><1 to 18 digits>\r\n` at the front of `b`: the number and the
/// header length. `None` for anything else (signs, `?`, long numbers,
/// missing bytes), which the general machine handles.
#[inline(always)]
fn header(b: &[u8]) -> Option<(u64, usize)> {
    // With 24 bytes in view nothing needs a bounds check: at most 18
    // digits, then CR LF, all within the array.
    let Some(w) = b.first_chunk::<24>() else {
        return short_header(b);
    };
    // The byte after each digit and the one after that in one load: CR LF
    // ends the number, else the first of them is the next digit.
    let pair = |i: usize| {
        let mut bytes = [0; 2];
        bytes.copy_from_slice(&w[i..i + 2]);
        u16::from_le_bytes(bytes)
    };
    const CRLF: u16 = u16::from_le_bytes(*b"\r\n");
    let digit = |c: u8| {
        let d = c.wrapping_sub(b'0');
        (d <= 9).then_some(u64::from(d))
    };
    // Lengths and counts below 1,000 first: they are nearly all of them.
    let d1 = digit(w[1])?;
    let next = pair(2);
    if next == CRLF {
        return Some((d1, 4));
    }
    let d2 = digit(next as u8)?;
    let next = pair(3);
    if next == CRLF {
        return Some((d1 * 10 + d2, 5));
    }
    let d3 = digit(next as u8)?;
    let next = pair(4);
    if next == CRLF {
        return Some((d1 * 100 + d2 * 10 + d3, 6));
    }
    let mut n = d1 * 100 + d2 * 10 + d3;
    let mut i = 4;
    while i < 19 {
        let d = w[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        n = n * 10 + u64::from(d);
        i += 1;
    }
    (pair(i) == CRLF).then_some((n, i + 2))
}

/// `$<3 digits>\r\n` at the front of `w`: the number.
#[inline(always)]
fn three_digit_header(w: &[u8; 24]) -> Option<u64> {
    // CR LF first: for other lengths that is all this costs.
    if w[4..6] != *b"\r\n" {
        return None;
    }
    // One load: `$` and three digits, lowest byte first.
    let mut bytes = [0; 4];
    bytes.copy_from_slice(&w[..4]);
    let x = u32::from_le_bytes(bytes);
    // Digits are 0x30 to 0x39: the high half of each byte is 3, and adding
    // 6 to the low half carries into bit 6 from 10 (0x3a) on; no carry
    // crosses a byte.
    if x & 0xf0f0_f0ff != 0x3030_3024 || x.wrapping_add(0x0606_0600) & 0x4040_4000 != 0 {
        return None;
    }
    // Digit values d0 d1 d2 (lowest byte first); times 0x0a01, the second
    // byte holds 10 * d0 + d1 (at most 99: no carry out of it).
    let d = (x >> 8) & 0x000f_0f0f;
    let tens = (d.wrapping_mul(0x0a01) >> 8) & 0xff;
    Some(u64::from(tens * 10 + (d >> 16)))
}

/// [`header`] near the end of the chunk.
#[cold]
fn short_header(b: &[u8]) -> Option<(u64, usize)> {
    let mut n: u64 = 0;
    let mut i = 1;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() || i == 19 {
            break;
        }
        n = n * 10 + u64::from(c - b'0');
        i += 1;
    }
    if i == 1 || b.get(i..i + 2)? != b"\r\n" {
        return None;
    }
    Some((n, i + 2))
}

/// `:[-]<1 to 19 digits>\r\n` at the front of `b`: the value and the line
/// length. `None` for anything else (a `+` sign, more digits, out of
/// range, missing bytes), which the general machine handles.
#[inline(always)]
fn integer(b: &[u8]) -> Option<(i64, usize)> {
    // With 32 bytes in view nothing below needs a bounds check: a sign and
    // three words of digits end by index 25, the CR LF after 19 digits by 22.
    let Some(w) = b.first_chunk::<32>() else {
        return short_integer(b);
    };
    // One digit first: the counts and flags most integer replies carry.
    let d = w[1].wrapping_sub(b'0');
    if d <= 9 && w[2] == b'\r' && w[3] == b'\n' {
        return Some((i64::from(d), 4));
    }
    let negative = w[1] == b'-';
    let start = 1 + usize::from(negative);
    let (mut magnitude, mut len) = leading_digits(word_at(w, start));
    if len == 0 {
        return None;
    }
    if len == 8 {
        let (more, n) = leading_digits(word_at(w, start + 8));
        magnitude = magnitude * POW10[n] + more;
        len += n;
        if n == 8 {
            // Nineteen digits at most: 10^19 - 1 < 2^64, no overflow.
            let (more, n) = leading_digits(word_at(w, start + 16));
            if n > 3 {
                return None;
            }
            magnitude = magnitude * POW10[n] + more;
            len += n;
        }
    }
    let end = start + len;
    if w[end] != b'\r' || w[end + 1] != b'\n' {
        return None;
    }
    Some((signed(magnitude, negative)?, end + 2))
}

const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The eight bytes at `w[at..]` as a little-endian word: the first byte is
/// the lowest.
#[inline(always)]
fn word_at(w: &[u8; 32], at: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&w[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// The value of the ASCII digits that start `word` (read little-endian, the
/// first character in the lowest byte) and how many there are, 0 to 8.
#[inline(always)]
const fn leading_digits(word: u64) -> (u64, usize) {
    let d = word.wrapping_sub(0x3030_3030_3030_3030);
    // A byte below '0' borrows and sets its top bit; a byte above '9' sets it
    // when 0x76 is added. Borrows and carries only travel towards higher
    // bytes, so the lowest flagged byte is the first non-digit.
    let flags = (d | d.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080;
    let n = (flags.trailing_zeros() / 8) as usize;
    if n == 0 {
        return (0, 0);
    }
    // The digits to the top, zeros (leading zero digits) below them.
    (digits_value(d << (64 - 8 * n)), n)
}

/// The value of eight digits 0..=9, one per byte, the first in the lowest.
#[inline(always)]
const fn digits_value(d: u64) -> u64 {
    // Pairs, then quads, then all eight.
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00ff_00ff_00ff_00ff;
    let d = (d.wrapping_mul(1 + (100 << 16)) >> 16) & 0x0000_ffff_0000_ffff;
    d.wrapping_mul(1 + (10_000 << 32)) >> 32
}

/// [`integer`] near the end of the chunk.
#[cold]
fn short_integer(b: &[u8]) -> Option<(i64, usize)> {
    let negative = b.get(1) == Some(&b'-');
    let start = 1 + usize::from(negative);
    let mut magnitude: u64 = 0;
    let mut i = start;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() || i - start == 19 {
            break;
        }
        magnitude = magnitude * 10 + u64::from(c - b'0');
        i += 1;
    }
    if i == start || b.get(i..i + 2)? != b"\r\n" {
        return None;
    }
    Some((signed(magnitude, negative)?, i + 2))
}

#[inline(always)]
fn signed(magnitude: u64, negative: bool) -> Option<i64> {
    if negative {
        (magnitude <= i64::MIN.unsigned_abs()).then(|| 0i64.wrapping_sub_unsigned(magnitude))
    } else {
        i64::try_from(magnitude).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::{header, integer, leading_digits, three_digit_header};

    #[test]
    fn three_digit_headers_agree_with_the_general_header() {
        let window = |head: &[u8]| {
            let mut w = [b'x'; 24];
            w[..head.len()].copy_from_slice(head);
            w
        };
        for n in 0..=999u64 {
            for text in [alloc::format!("${n}\r\n"), alloc::format!("${n:03}\r\n")] {
                let w = window(text.as_bytes());
                let expected = (text.len() == 6).then_some(n);
                assert_eq!(three_digit_header(&w), expected, "{text:?}");
                assert_eq!(header(&w), Some((n, text.len())), "{text:?}");
            }
        }
        for byte in 0..=255u8 {
            for at in 0..6 {
                let mut w = window(b"$123\r\n");
                w[at] = byte;
                let expected = match at {
                    0 if byte == b'$' => Some(123),
                    1..=3 if byte.is_ascii_digit() => {
                        let mut digits = *b"123";
                        digits[at - 1] = byte;
                        Some(digits.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
                    }
                    4 if byte == b'\r' => Some(123),
                    5 if byte == b'\n' => Some(123),
                    _ => None,
                };
                assert_eq!(three_digit_header(&w), expected, "{byte} at {at}");
            }
        }
    }

    #[test]
    fn leading_digits_of_a_word() {
        let word = |s: &[u8; 8]| u64::from_le_bytes(*s);
        assert_eq!(leading_digits(word(b"12345678")), (12_345_678, 8));
        assert_eq!(leading_digits(word(b"00000000")), (0, 8));
        assert_eq!(leading_digits(word(b"99999999")), (99_999_999, 8));
        assert_eq!(leading_digits(word(b"1234567\r")), (1_234_567, 7));
        assert_eq!(leading_digits(word(b"7\r\n+OK\r\n")), (7, 1));
        assert_eq!(leading_digits(word(b"/1234567")), (0, 0));
        assert_eq!(leading_digits(word(b":1234567")), (0, 0));
        assert_eq!(leading_digits(word(b"12:45678")), (12, 2));
        assert_eq!(leading_digits(word(b"12\x0045678")), (12, 2));
        assert_eq!(leading_digits(word(b"12\xff45678")), (12, 2));
        for n in [0u64, 1, 10, 99, 12_345_678, 90_000_001, 99_999_999] {
            let text = alloc::format!("{n:08}");
            let word = u64::from_le_bytes(text.as_bytes().try_into().unwrap());
            assert_eq!(leading_digits(word), (n, 8), "{text}");
        }
        for byte in 0..=255u8 {
            let mut text = *b"1234567x";
            text[3] = byte;
            let expected = if byte.is_ascii_digit() {
                (u64::from(123 * 10 + u32::from(byte - b'0')) * 1000 + 567, 7)
            } else {
                (123, 3)
            };
            assert_eq!(leading_digits(word(&text)), expected, "{byte}");
        }
    }

    /// Enough bytes after any line for the parsers' whole window.
    const PAD: &str = "+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n";

    #[test]
    fn integers_of_every_length_near_and_far_from_the_end() {
        for len in 1..=19usize {
            let text: alloc::string::String = (0..len)
                .map(|i| char::from(b'0' + ((i * 7 + 1) % 10) as u8))
                .collect();
            let value: i64 = text.parse().unwrap();
            for sign in ["", "-"] {
                let line = alloc::format!(":{sign}{text}\r\n");
                let expected = if sign.is_empty() { value } else { -value };
                assert_eq!(
                    integer(line.as_bytes()),
                    Some((expected, line.len())),
                    "short {line:?}"
                );
                let padded = alloc::format!("{line}{PAD}");
                assert_eq!(
                    integer(padded.as_bytes()),
                    Some((expected, line.len())),
                    "long {line:?}"
                );
            }
        }
        for bad in [
            ":\r\n",
            ":-\r\n",
            ":12x\r\n",
            ":99999999999999999999\r\n",
            ":9223372036854775808\r\n",
            ":-9223372036854775809\r\n",
            ":1234567890123456789012\r\n",
            ":12345678\rx",
            ":1\r\r",
            ":1\n\n",
        ] {
            assert_eq!(integer(bad.as_bytes()), None, "{bad}");
            let padded = alloc::format!("{bad}{PAD}");
            assert_eq!(integer(padded.as_bytes()), None, "{bad}");
        }
        let min = alloc::format!(":{}\r\n{PAD}", i64::MIN);
        assert_eq!(integer(min.as_bytes()).map(|(v, _)| v), Some(i64::MIN));
    }
}
