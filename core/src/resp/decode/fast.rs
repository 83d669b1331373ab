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
use bytes::Bytes;

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
        let b = &self.chunk[self.pos..];
        let &ty = b.first()?;
        match ty {
            b'$' => self.fast_bulk(),
            b':' => self.fast_integer(),
            b'+' | b'-' => self.fast_simple(ty),
            b'_' if b.starts_with(b"_\r\n") => Some(self.done(3, Frame::Null)),
            b'#' if b.starts_with(b"#t\r\n") => Some(self.done(4, Frame::Boolean(true))),
            b'#' if b.starts_with(b"#f\r\n") => Some(self.done(4, Frame::Boolean(false))),
            b',' => self.fast_double(),
            _ => None,
        }
    }

    #[inline(always)]
    fn done(&mut self, used: usize, frame: Frame) -> Frame {
        self.pos += used;
        self.offset += used as u64;
        frame
    }

    /// A slice of the chunk: shares its allocation, no copy.
    #[inline]
    fn slice(&self, from: usize, to: usize) -> Bytes {
        self.chunk.slice(self.pos + from..self.pos + to)
    }

    #[inline(always)]
    fn fast_bulk(&mut self) -> Option<Frame> {
        let b = &self.chunk[self.pos..];
        if b.get(1) == Some(&b'-') {
            return b
                .starts_with(b"$-1\r\n")
                .then(|| self.done(5, Frame::NullBulk));
        }
        let (len, hdr) = header(b)?;
        if len > self.limits.max_bulk_len as u64 {
            return None;
        }
        let end = hdr + len as usize;
        if b.get(end..end + 2) != Some(b"\r\n") {
            return None;
        }
        let data = self.slice(hdr, end);
        Some(self.done(end + 2, Frame::Bulk(data)))
    }

    #[inline(always)]
    fn fast_integer(&mut self) -> Option<Frame> {
        let b = &self.chunk[self.pos..];
        let negative = b.get(1) == Some(&b'-');
        let start = 1 + usize::from(negative);
        let (magnitude, end) = digits(b, start)?;
        if b.get(end..end + 2) != Some(b"\r\n") {
            return None;
        }
        let value = if negative {
            if magnitude > i64::MIN.unsigned_abs() {
                return None;
            }
            0i64.wrapping_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()?
        };
        Some(self.done(end + 2, Frame::Integer(value)))
    }

    #[inline(always)]
    fn fast_simple(&mut self, ty: u8) -> Option<Frame> {
        let b = &self.chunk[self.pos..];
        if b.starts_with(b"+OK\r\n") {
            return Some(self.done(5, Frame::Simple(Bytes::from_static(b"OK"))));
        }
        let cr = self.line_end(b)?;
        let text = self.slice(1, cr);
        Some(self.done(
            cr + 2,
            if ty == b'+' {
                Frame::Simple(text)
            } else {
                Frame::Error(text)
            },
        ))
    }

    #[inline]
    fn fast_double(&mut self) -> Option<Frame> {
        let b = &self.chunk[self.pos..];
        let cr = self.line_end(b)?;
        let value = parse_double(&b[1..cr])?;
        Some(self.done(cr + 2, Frame::Double(value)))
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
        self.offset += hdr as u64;
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
        for i in 0..n {
            let Some(item) = self.element(depth) else {
                return self.suspend(base, kind, n - i, Items::List(items));
            };
            items.push(item);
        }
        Fast::Frame(match kind {
            LevelKind::Set => Frame::Set(items),
            LevelKind::Push => Frame::Push(items),
            _ => Frame::Array(items),
        })
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

/// `<type><1 to 18 digits>\r\n` at the front of `b`: the number and the
/// header length. `None` for anything else (signs, `?`, long numbers,
/// missing bytes), which the general machine handles.
#[inline(always)]
fn header(b: &[u8]) -> Option<(u64, usize)> {
    // With 24 bytes in view the loop needs no bounds checks: at most 18
    // digits, then CR LF, all within the array.
    let Some(b) = b.get(..24).and_then(|b| <&[u8; 24]>::try_from(b).ok()) else {
        return short_header(b);
    };
    let mut n: u64 = 0;
    let mut i = 1;
    while i < 19 {
        let d = b[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        n = n * 10 + u64::from(d);
        i += 1;
    }
    if i == 1 || b[i] != b'\r' || b[i + 1] != b'\n' {
        return None;
    }
    Some((n, i + 2))
}

/// [`header`] near the end of the chunk.
#[cold]
fn short_header(b: &[u8]) -> Option<(u64, usize)> {
    let (n, end) = digits(b, 1)?;
    if end > 19 || b.get(end..end + 2)? != b"\r\n" {
        return None;
    }
    Some((n, end + 2))
}

/// One to nineteen decimal digits from `start`: their value and the index
/// after them. Eight digits at a time where it can (a full-range integer
/// reply has up to nineteen).
#[inline]
fn digits(b: &[u8], start: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut i = start;
    while let Some(chunk) = b.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        let Some(eight) = eight_digits(u64::from_le_bytes(chunk)) else {
            break;
        };
        if i - start >= 16 {
            // A seventeenth to twenty-fourth digit: more than 19 digits or
            // too close to overflow for the bytewise loop to check; rare.
            break;
        }
        value = value * 100_000_000 + eight;
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        if i - start >= 19 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        i += 1;
    }
    (i > start).then_some((value, i))
}

/// The value of eight ASCII digits read as a little-endian word, or `None`
/// when any of the bytes is not a digit.
#[inline]
const fn eight_digits(word: u64) -> Option<u64> {
    let d = word.wrapping_sub(0x3030_3030_3030_3030);
    // A byte below '0' borrows and sets its top bit; a byte above '9' sets it
    // when 0x76 is added. Either way the word is rejected.
    if (d | d.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    // Pairs, then quads, then all eight: the first character is the lowest byte.
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00ff_00ff_00ff_00ff;
    let d = (d.wrapping_mul(1 + (100 << 16)) >> 16) & 0x0000_ffff_0000_ffff;
    let d = d.wrapping_mul(1 + (10_000 << 32)) >> 32;
    Some(d & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::{digits, eight_digits};

    #[test]
    fn eight_digits_at_a_time() {
        assert_eq!(
            eight_digits(u64::from_le_bytes(*b"12345678")),
            Some(12_345_678)
        );
        assert_eq!(eight_digits(u64::from_le_bytes(*b"00000000")), Some(0));
        assert_eq!(
            eight_digits(u64::from_le_bytes(*b"99999999")),
            Some(99_999_999)
        );
        assert_eq!(eight_digits(u64::from_le_bytes(*b"1234567\r")), None);
        assert_eq!(eight_digits(u64::from_le_bytes(*b"/1234567")), None);
        assert_eq!(eight_digits(u64::from_le_bytes(*b"1234567:")), None);
        for n in [0u64, 1, 10, 99, 12_345_678, 90_000_001, 99_999_999] {
            let text = alloc::format!("{n:08}");
            let word = u64::from_le_bytes(text.as_bytes().try_into().unwrap());
            assert_eq!(eight_digits(word), Some(n), "{text}");
        }
    }

    #[test]
    fn digits_of_every_length() {
        for len in 1..=19usize {
            let text: alloc::string::String =
                (0..len).map(|i| char::from(b'1' + (i % 9) as u8)).collect();
            let input = alloc::format!(":{text}\r\n");
            assert_eq!(
                digits(input.as_bytes(), 1),
                Some((text.parse().unwrap(), 1 + len)),
                "{text}"
            );
        }
        assert_eq!(digits(b":18446744073709551615\r\n", 1), None, "20 digits");
        assert_eq!(
            digits(b":9999999999999999999\r\n", 1),
            Some((9_999_999_999_999_999_999, 20))
        );
        assert_eq!(digits(b":\r\n", 1), None);
    }
}
