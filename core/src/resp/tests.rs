//! Unit tests of the codec: every frame type, every error, the limits, and
//! the linear-work guarantee (which needs the decoder's private scan counter).

use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::*;

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Decodes `input` whole and one byte at a time; both must agree. Returns
/// the frames, or the error with what was decoded before it.
fn decode_all(input: &[u8], limits: Limits) -> (Vec<Frame>, Option<DecodeError>) {
    let whole = {
        let mut decoder = Decoder::with_limits(limits);
        let mut buf = BytesMut::from(input);
        let mut frames = Vec::new();
        let err = loop {
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        (frames, err)
    };
    let bytewise = {
        let mut decoder = Decoder::with_limits(limits);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut err = None;
        'outer: for &byte in input {
            buf.extend_from_slice(&[byte]);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(f)) => frames.push(f),
                    Ok(None) => break,
                    Err(e) => {
                        err = Some(e);
                        break 'outer;
                    }
                }
            }
        }
        (frames, err)
    };
    assert_eq!(whole, bytewise, "whole vs byte-at-a-time for {input:?}");
    whole
}

fn one(input: &str) -> Frame {
    let (frames, err) = decode_all(input.as_bytes(), Limits::default());
    assert_eq!(err, None, "{input:?}");
    assert_eq!(frames.len(), 1, "{input:?} gave {frames:?}");
    let frame = frames.into_iter().next().unwrap();
    // Every decoded frame re-encodes to something that decodes back to it.
    let mut again = BytesMut::new();
    frame.encode(&mut again);
    assert_eq!(again.len(), frame.encoded_len(), "encoded_len of {frame:?}");
    let (back, err) = decode_all(&again, Limits::default());
    assert_eq!((back, err), (vec![frame.clone()], None));
    frame
}

fn error(input: &str) -> DecodeError {
    error_with(input, Limits::default())
}

fn error_with(input: &str, limits: Limits) -> DecodeError {
    match decode_all(input.as_bytes(), limits) {
        (_, Some(err)) => err,
        (frames, None) => panic!("{input:?} decoded to {frames:?} without error"),
    }
}

#[test]
fn resp2_types() {
    assert_eq!(one("+OK\r\n"), Frame::Simple(b("OK")));
    assert_eq!(one("+hello world\r\n"), Frame::Simple(b("hello world")));
    assert_eq!(one("+\r\n"), Frame::Simple(b("")));
    assert_eq!(one("-ERR bad\r\n"), Frame::Error(b("ERR bad")));
    assert_eq!(one(":0\r\n"), Frame::Integer(0));
    assert_eq!(one(":+7\r\n"), Frame::Integer(7));
    assert_eq!(one(":-9223372036854775808\r\n"), Frame::Integer(i64::MIN));
    assert_eq!(one(":9223372036854775807\r\n"), Frame::Integer(i64::MAX));
    assert_eq!(one("$5\r\nhello\r\n"), Frame::Bulk(b("hello")));
    assert_eq!(one("$0\r\n\r\n"), Frame::Bulk(b("")));
    assert_eq!(one("$4\r\na\r\nb\r\n"), Frame::Bulk(b("a\r\nb")));
    assert_eq!(one("$-1\r\n"), Frame::NullBulk);
    assert_eq!(one("*-1\r\n"), Frame::NullArray);
    assert_eq!(one("*0\r\n"), Frame::Array(vec![]));
    assert_eq!(
        one("*3\r\n:1\r\n$-1\r\n*1\r\n+x\r\n"),
        Frame::Array(vec![
            Frame::Integer(1),
            Frame::NullBulk,
            Frame::Array(vec![Frame::Simple(b("x"))]),
        ])
    );
}

#[test]
fn resp3_types() {
    assert_eq!(one("_\r\n"), Frame::Null);
    assert_eq!(one("#t\r\n"), Frame::Boolean(true));
    assert_eq!(one("#f\r\n"), Frame::Boolean(false));
    assert_eq!(one(",1.5\r\n"), Frame::Double(1.5));
    assert_eq!(one(",-0.25\r\n"), Frame::Double(-0.25));
    assert_eq!(one(",10\r\n"), Frame::Double(10.0));
    assert_eq!(
        one(",1.2300000000000001e+20\r\n"),
        Frame::Double(1.2300000000000001e20)
    );
    assert_eq!(one(",inf\r\n"), Frame::Double(f64::INFINITY));
    assert_eq!(one(",-inf\r\n"), Frame::Double(f64::NEG_INFINITY));
    assert!(matches!(one(",nan\r\n"), Frame::Double(v) if v.is_nan()));
    assert_eq!(
        one("(3492890328409238509324850943850943825024385\r\n"),
        Frame::BigNumber(b("3492890328409238509324850943850943825024385"))
    );
    assert_eq!(one("(-12\r\n"), Frame::BigNumber(b("-12")));
    assert_eq!(
        one("!21\r\nSYNTAX invalid syntax\r\n"),
        Frame::BulkError(b("SYNTAX invalid syntax"))
    );
    assert_eq!(
        one("=15\r\ntxt:Some string\r\n"),
        Frame::Verbatim {
            format: *b"txt",
            text: b("Some string")
        }
    );
    assert_eq!(
        one("=4\r\nmkd:\r\n"),
        Frame::Verbatim {
            format: *b"mkd",
            text: b("")
        }
    );
    assert_eq!(
        one("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n"),
        Frame::Map(vec![
            (Frame::Simple(b("first")), Frame::Integer(1)),
            (Frame::Simple(b("second")), Frame::Integer(2)),
        ])
    );
    assert_eq!(one("%0\r\n"), Frame::Map(vec![]));
    assert_eq!(
        one("~3\r\n+a\r\n:1\r\n#f\r\n"),
        Frame::Set(vec![
            Frame::Simple(b("a")),
            Frame::Integer(1),
            Frame::Boolean(false)
        ])
    );
    assert_eq!(
        one(">3\r\n+message\r\n+chan\r\n$2\r\nhi\r\n"),
        Frame::Push(vec![
            Frame::Simple(b("message")),
            Frame::Simple(b("chan")),
            Frame::Bulk(b("hi"))
        ])
    );
}

#[test]
fn attributes_attach_to_the_next_frame() {
    let attrs = vec![(Frame::Simple(b("ttl")), Frame::Integer(3))];
    assert_eq!(
        one("|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n"),
        Frame::Attributed(Box::new(Attributed {
            attributes: attrs.clone(),
            frame: Frame::Bulk(b("hi"))
        }))
    );
    // Inside an aggregate an attribute is not an element: the array has two.
    assert_eq!(
        one("*2\r\n:1\r\n|1\r\n+ttl\r\n:3\r\n:2\r\n"),
        Frame::Array(vec![
            Frame::Integer(1),
            Frame::Attributed(Box::new(Attributed {
                attributes: attrs.clone(),
                frame: Frame::Integer(2)
            })),
        ])
    );
    // Attributes before an aggregate describe the whole aggregate.
    assert_eq!(
        one("|1\r\n+ttl\r\n:3\r\n*1\r\n:5\r\n"),
        Frame::Attributed(Box::new(Attributed {
            attributes: attrs,
            frame: Frame::Array(vec![Frame::Integer(5)])
        }))
    );
    // The frame without its attributes.
    let frame = one("|0\r\n:1\r\n");
    assert_eq!(frame.without_attributes(), &Frame::Integer(1));
    assert_eq!(frame.type_byte(), b'|');
}

#[test]
fn streamed_strings_and_aggregates() {
    assert_eq!(
        one("$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n"),
        Frame::Bulk(b("Hello word"))
    );
    assert_eq!(one("$?\r\n;0\r\n"), Frame::Bulk(b("")));
    assert_eq!(
        one("*?\r\n:1\r\n$?\r\n;2\r\nab\r\n;0\r\n*?\r\n.\r\n.\r\n"),
        Frame::Array(vec![
            Frame::Integer(1),
            Frame::Bulk(b("ab")),
            Frame::Array(vec![])
        ])
    );
    assert_eq!(
        one("%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n"),
        Frame::Map(vec![
            (Frame::Simple(b("a")), Frame::Integer(1)),
            (Frame::Simple(b("b")), Frame::Integer(2)),
        ])
    );
    assert_eq!(
        one("~?\r\n+a\r\n.\r\n"),
        Frame::Set(vec![Frame::Simple(b("a"))])
    );
}

#[test]
fn several_frames_in_one_buffer() {
    let (frames, err) = decode_all(
        b"+OK\r\n:1\r\n$-1\r\n*1\r\n_\r\n>1\r\n#t\r\n",
        Limits::default(),
    );
    assert_eq!(err, None);
    assert_eq!(
        frames,
        vec![
            Frame::Simple(b("OK")),
            Frame::Integer(1),
            Frame::NullBulk,
            Frame::Array(vec![Frame::Null]),
            Frame::Push(vec![Frame::Boolean(true)]),
        ]
    );
}

#[test]
fn every_split_of_a_mixed_stream_agrees() {
    let input: &[u8] = b"+OK\r\n*2\r\n$3\r\nfoo\r\n%1\r\n|1\r\n+a\r\n,1.5\r\n+k\r\n~1\r\n(123\r\n\
        $?\r\n;3\r\nabc\r\n;0\r\n=7\r\ntxt:abc\r\n!3\r\nERR\r\n>2\r\n+x\r\n_\r\n";
    let (expected, err) = decode_all(input, Limits::default());
    assert_eq!(err, None);
    assert_eq!(expected.len(), 6);
    for a in 0..=input.len() {
        for c in a..=input.len() {
            let mut decoder = Decoder::new();
            let mut buf = BytesMut::new();
            let mut frames = Vec::new();
            for part in [&input[..a], &input[a..c], &input[c..]] {
                buf.extend_from_slice(part);
                while let Some(f) = decoder.decode(&mut buf).unwrap() {
                    frames.push(f);
                }
            }
            assert_eq!(frames, expected, "split at {a} and {c}");
            assert!(buf.is_empty() && decoder.is_idle());
        }
    }
}

#[test]
fn every_error_names_its_offset() {
    use DecodeErrorKind as K;
    let cases: &[(&str, DecodeErrorKind, u64)] = &[
        ("?\r\n", K::UnknownType(b'?'), 0),
        ("+OK\r\nX", K::UnknownType(b'X'), 5),
        (":12a\r\n", K::InvalidInteger, 3),
        (":\r\n", K::InvalidInteger, 1),
        (":-\r\n", K::InvalidInteger, 2),
        (":99999999999999999999\r\n", K::InvalidInteger, 19),
        (":1\rx", K::MissingCrlf, 3),
        ("+OK\rx", K::MissingCrlf, 4),
        ("$3\r\nfooXY", K::MissingCrlf, 7),
        ("$3\r\nfoo\rY", K::MissingCrlf, 8),
        ("$-2\r\n", K::InvalidLength, 1),
        ("$x\r\n", K::InvalidLength, 1),
        ("!-1\r\n", K::InvalidLength, 1),
        ("%-1\r\n", K::InvalidLength, 1),
        ("$?x\r\n", K::InvalidLength, 2),
        (">?\r\n", K::UnexpectedStream, 1),
        ("|?\r\n", K::UnexpectedStream, 1),
        ("=?\r\n", K::UnexpectedStream, 1),
        (",1.5x\r\n", K::InvalidDouble, 1),
        (",\r\n", K::InvalidDouble, 1),
        (",infinity\r\n", K::InvalidDouble, 1),
        ("#x\r\n", K::InvalidBoolean, 1),
        ("#\r\n", K::InvalidBoolean, 1),
        ("_x\r\n", K::InvalidNull, 1),
        ("(12a\r\n", K::InvalidBigNumber, 1),
        ("(\r\n", K::InvalidBigNumber, 1),
        ("(-\r\n", K::InvalidBigNumber, 1),
        ("=3\r\ntxt\r\n", K::InvalidVerbatim, 7),
        ("=5\r\ntxt;a\r\n", K::InvalidVerbatim, 7),
        (".\r\n", K::UnexpectedEnd, 0),
        ("*1\r\n.\r\n", K::UnexpectedEnd, 4),
        ("*?\r\n.x\r\n", K::UnexpectedEnd, 5),
        ("%?\r\n+k\r\n.\r\n", K::UnexpectedEnd, 8),
        ("*?\r\n|1\r\n+a\r\n+b\r\n.\r\n", K::DanglingAttribute, 16),
        (";3\r\nabc\r\n", K::UnexpectedChunk, 0),
        ("*1\r\n;0\r\n", K::UnexpectedChunk, 4),
        ("$?\r\n+OK\r\n", K::ExpectedChunk, 4),
        ("$?\r\n;1\r\na\r\n*0\r\n", K::ExpectedChunk, 11),
    ];
    for &(input, kind, offset) in cases {
        let err = error(input);
        assert_eq!((err.kind(), err.offset()), (kind, offset), "{input:?}");
    }
}

#[test]
fn errors_are_sticky() {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(&b"+OK\r\n:x\r\n"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Frame::Simple(b("OK")))));
    let err = decoder.decode(&mut buf).unwrap_err();
    buf.clear();
    buf.extend_from_slice(b"+OK\r\n");
    assert_eq!(decoder.decode(&mut buf), Err(err));
    assert_eq!(decoder.decode(&mut BytesMut::new()), Err(err));
    assert!(err.to_string().contains("invalid RESP at byte 6"), "{err}");
}

#[test]
fn limits_are_checked_before_waiting_for_data() {
    use DecodeErrorKind as K;
    let limits = Limits {
        max_bulk_len: 10,
        max_elements: 3,
        max_depth: 2,
        max_line_len: 8,
    };
    // A declared length over the limit fails at once, with no payload sent.
    assert_eq!(
        error_with("$11\r\n", limits).kind(),
        K::BulkTooLong { len: 11, max: 10 }
    );
    assert_eq!(
        error_with("!11\r\n", limits).kind(),
        K::BulkTooLong { len: 11, max: 10 }
    );
    assert_eq!(
        error_with("=11\r\n", limits).kind(),
        K::BulkTooLong { len: 11, max: 10 }
    );
    assert_eq!(
        one_with("$10\r\n0123456789\r\n", limits),
        Frame::Bulk(b("0123456789"))
    );
    // Streamed strings count their chunks together.
    let err = error_with("$?\r\n;6\r\nabcdef\r\n;5\r\n", limits);
    assert_eq!(
        (err.kind(), err.offset()),
        (K::BulkTooLong { len: 11, max: 10 }, 17)
    );
    assert_eq!(
        error_with("*4\r\n", limits).kind(),
        K::TooManyElements { count: 4, max: 3 }
    );
    assert_eq!(
        error_with("%4\r\n", limits).kind(),
        K::TooManyElements { count: 4, max: 3 }
    );
    let err = error_with("~?\r\n:1\r\n:2\r\n:3\r\n:4\r\n", limits);
    assert_eq!(err.kind(), K::TooManyElements { count: 4, max: 3 });
    let err = error_with(
        "%?\r\n:1\r\n:1\r\n:2\r\n:2\r\n:3\r\n:3\r\n:4\r\n:4\r\n",
        limits,
    );
    assert_eq!(err.kind(), K::TooManyElements { count: 4, max: 3 });
    assert_eq!(
        one_with("*1\r\n*1\r\n:1\r\n", limits),
        Frame::Array(vec![Frame::Array(vec![Frame::Integer(1)])])
    );
    let err = error_with("*1\r\n*1\r\n*1\r\n", limits);
    assert_eq!((err.kind(), err.offset()), (K::TooDeep { max: 2 }, 8));
    // A line over the limit fails as soon as the limit is passed, CR or not.
    assert_eq!(
        one_with("+12345678\r\n", limits),
        Frame::Simple(b("12345678"))
    );
    let err = error_with("+123456789", limits);
    assert_eq!((err.kind(), err.offset()), (K::LineTooLong { max: 8 }, 9));
    let err = error_with("-123456789\r\n", limits);
    assert_eq!((err.kind(), err.offset()), (K::LineTooLong { max: 8 }, 9));
}

fn one_with(input: &str, limits: Limits) -> Frame {
    let (mut frames, err) = decode_all(input.as_bytes(), limits);
    assert_eq!(err, None, "{input:?}");
    assert_eq!(frames.len(), 1);
    frames.remove(0)
}

#[test]
fn default_limits_stop_hostile_headers() {
    use DecodeErrorKind as K;
    let huge = "$9223372036854775807\r\n";
    assert!(matches!(error(huge).kind(), K::BulkTooLong { .. }));
    assert!(matches!(
        error("*9223372036854775807\r\n").kind(),
        K::TooManyElements { .. }
    ));
    let deep: alloc::string::String = "*1\r\n".repeat(200);
    assert_eq!(error(&deep).kind(), K::TooDeep { max: 128 });
}

#[test]
fn declared_counts_reserve_only_what_arrived() {
    // 60 million elements declared, three sent: the aggregate holds room for
    // what the buffer can contain, not for what was announced.
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(&b"*60000000\r\n:1\r\n:2\r\n:3\r\n"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    let (len, capacity) = decoder.innermost_list().expect("an unfinished array");
    assert_eq!(len, 3);
    assert!(capacity <= 16, "capacity {capacity}");
}

#[test]
fn a_huge_bulk_in_small_reads_is_never_scanned() {
    // 64 MiB in 16 KiB reads: 4,096 calls. A decoder that re-scanned the
    // buffer from its start would look at ~128 GiB; this one looks only at
    // the header line.
    let len = 64 << 20;
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::with_capacity(len + 64);
    buf.extend_from_slice(b"$67108864\r\n");
    let chunk = [b'x'; 16 * 1024];
    let mut calls = 0;
    for _ in 0..len / chunk.len() {
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&chunk);
        calls += 1;
    }
    buf.extend_from_slice(b"\r\n");
    let Some(Frame::Bulk(data)) = decoder.decode(&mut buf).unwrap() else {
        panic!("bulk")
    };
    assert_eq!(data.len(), len);
    assert_eq!(calls, 4096);
    assert_eq!(
        decoder.scanned(),
        0,
        "the bulk header is parsed as an integer, the payload is never scanned"
    );
}

#[test]
fn a_long_line_in_small_reads_is_scanned_once() {
    let len = 60_000;
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"-");
    for _ in 0..len {
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"e");
    }
    buf.extend_from_slice(b"\r");
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"\n");
    let Some(Frame::Error(text)) = decoder.decode(&mut buf).unwrap() else {
        panic!("error")
    };
    assert_eq!(text.len(), len);
    // Each byte is looked at once, plus the CR once more when the LF was late.
    assert!(
        decoder.scanned() <= len + 2,
        "scanned {} bytes of a {len}-byte line",
        decoder.scanned()
    );
}

#[test]
fn an_aggregate_in_small_reads_parses_each_element_once() {
    // Elements already finished are consumed from the buffer at once, so the
    // buffer never holds more than the unfinished element.
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut input = BytesMut::new();
    encode_command(&mut input, &[&b"x"[..]; 1000]);
    let mut longest = 0;
    let mut frames = Vec::new();
    for &byte in input.iter() {
        buf.extend_from_slice(&[byte]);
        while let Some(f) = decoder.decode(&mut buf).unwrap() {
            frames.push(f);
        }
        longest = longest.max(buf.len());
    }
    assert_eq!(frames.len(), 1);
    assert!(longest <= 8, "the buffer held {longest} bytes");
}

#[test]
fn simple_replies_share_static_buffers_or_the_input() {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(&b"+OK\r\n$5\r\nhello\r\n"[..]);
    let base = buf.as_ptr() as usize;
    let Some(Frame::Simple(ok)) = decoder.decode(&mut buf).unwrap() else {
        panic!()
    };
    let input = base..base + 19;
    assert!(
        !input.contains(&(ok.as_ptr() as usize)),
        "+OK is a static buffer, not a slice of the input"
    );
    let Some(Frame::Bulk(hello)) = decoder.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(
        hello.as_ptr() as usize,
        base + 9,
        "the bulk is a slice of the input buffer"
    );
}

#[test]
fn commands_encode_every_argument_type() {
    let mut buf = BytesMut::new();
    CommandEncoder::new(&mut buf, 9)
        .arg("SET")
        .arg(&b"k"[..])
        .arg(-42i64)
        .arg(u64::MAX)
        .arg(i64::MIN)
        .arg(1.5f64)
        .arg(f64::INFINITY)
        .arg(alloc::string::String::from("s"))
        .arg(Bytes::from_static(b""))
        .finish()
        .unwrap();
    let (frames, err) = decode_all(&buf, Limits::default());
    assert_eq!(err, None);
    let args = [
        "SET",
        "k",
        "-42",
        "18446744073709551615",
        "-9223372036854775808",
        "1.5",
        "inf",
        "s",
        "",
    ];
    assert_eq!(
        frames,
        vec![Frame::Array(
            args.iter().map(|a| Frame::Bulk(Bytes::from(*a))).collect()
        )]
    );
}

#[test]
fn a_miscounted_command_is_taken_back() {
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n"[..]);
    let err = CommandEncoder::new(&mut buf, 3)
        .arg("GET")
        .finish()
        .unwrap_err();
    assert_eq!(
        err,
        EncodeError {
            declared: 3,
            written: 1
        }
    );
    assert_eq!(&buf[..], b"*1\r\n$4\r\nPING\r\n");
}

#[test]
fn doubles_round_trip_exactly() {
    for v in [
        0.0,
        -0.0,
        1e300,
        -1e-300,
        0.1,
        1.0 / 3.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
    ] {
        let frame = Frame::Double(v);
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        let Some(Frame::Double(back)) = Decoder::new().decode(&mut buf).unwrap() else {
            panic!()
        };
        assert_eq!(back.to_bits(), v.to_bits(), "{v:?} encoded as {buf:?}");
    }
}

#[test]
fn an_error_raised_while_the_fast_path_holds_bytes_is_still_sticky() {
    // Found by the fuzzer: the element limit of a streamed array is checked
    // after an element the fast path parsed, with more frames in its chunk.
    let limits = Limits {
        max_bulk_len: 64,
        max_elements: 4,
        max_depth: 8,
        max_line_len: 64,
    };
    let mut decoder = Decoder::with_limits(limits);
    let mut buf = BytesMut::from(&b"*?\r\n+\r\n+\r\n+\r\n+\r\n+\r\n+\r\n"[..]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        err.kind(),
        DecodeErrorKind::TooManyElements { count: 5, max: 4 }
    );
    assert_eq!(decoder.decode(&mut buf), Err(err));
    assert_eq!(decoder.decode(&mut buf), Err(err));
}
