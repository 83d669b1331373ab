//! Property tests of the codec: any frame encodes and decodes back to itself,
//! under any split of its bytes, and the streamed RESP3 forms decode to the
//! same frames as the fixed-length ones.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use redpoll_core::resp::{Attributed, Decoder, Frame};

fn line_text() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..24,
    )
    .prop_map(Bytes::from)
}

fn blob() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        // Payloads made of protocol bytes, to catch any scanning of payloads.
        proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'$'), Just(b'*')],
            0..12
        ),
    ]
    .prop_map(Bytes::from)
}

fn big_number() -> impl Strategy<Value = Bytes> {
    ("[-+]?", "[0-9]{1,60}").prop_map(|(sign, digits)| Bytes::from(format!("{sign}{digits}")))
}

fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        Just(0.0),
        Just(-0.0),
    ]
}

fn leaf() -> impl Strategy<Value = Frame> {
    prop_oneof![
        line_text().prop_map(Frame::Simple),
        line_text().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        blob().prop_map(Frame::Bulk),
        Just(Frame::NullBulk),
        Just(Frame::NullArray),
        Just(Frame::Null),
        any::<bool>().prop_map(Frame::Boolean),
        double().prop_map(Frame::Double),
        big_number().prop_map(Frame::BigNumber),
        blob().prop_map(Frame::BulkError),
        (any::<[u8; 3]>(), blob()).prop_map(|(format, text)| Frame::Verbatim { format, text }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        let pairs = proptest::collection::vec((inner.clone(), inner.clone()), 0..4);
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Push),
            pairs.clone().prop_map(Frame::Map),
            // Attributes describe the frame after them; consecutive attribute
            // maps merge, so the described frame is never itself attributed.
            (
                pairs,
                inner.prop_filter("not attributed", |f| !matches!(f, Frame::Attributed(_)))
            )
                .prop_map(|(attributes, frame)| Frame::Attributed(Box::new(
                    Attributed { attributes, frame }
                ))),
        ]
    })
}

/// Feeds `bytes` cut at `cuts` (positions, in any order), collecting frames.
fn decode_split(bytes: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(bytes.len());
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut from = 0;
    for cut in cuts {
        buf.extend_from_slice(&bytes[from..cut]);
        from = cut;
        while let Some(frame) = decoder.decode(&mut buf).expect("valid input") {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    assert!(decoder.is_idle());
    frames
}

/// Encodes `frame` with RESP3 streaming where it can: strings in chunks of
/// `chunk` bytes, arrays, sets and maps with `?` and `.`.
fn encode_streamed(frame: &Frame, chunk: usize, dst: &mut BytesMut) {
    match frame {
        Frame::Bulk(data) => {
            dst.put_slice(b"$?\r\n");
            for piece in data.chunks(chunk) {
                dst.put_slice(format!(";{}\r\n", piece.len()).as_bytes());
                dst.put_slice(piece);
                dst.put_slice(b"\r\n");
            }
            dst.put_slice(b";0\r\n");
        }
        Frame::Array(items) | Frame::Set(items) => {
            dst.put_slice(if matches!(frame, Frame::Array(_)) {
                b"*?\r\n"
            } else {
                b"~?\r\n"
            });
            for item in items {
                encode_streamed(item, chunk, dst);
            }
            dst.put_slice(b".\r\n");
        }
        Frame::Map(pairs) => {
            dst.put_slice(b"%?\r\n");
            for (k, v) in pairs {
                encode_streamed(k, chunk, dst);
                encode_streamed(v, chunk, dst);
            }
            dst.put_slice(b".\r\n");
        }
        Frame::Push(items) => {
            dst.put_slice(format!(">{}\r\n", items.len()).as_bytes());
            for item in items {
                encode_streamed(item, chunk, dst);
            }
        }
        Frame::Attributed(a) => {
            dst.put_slice(format!("|{}\r\n", a.attributes.len()).as_bytes());
            for (k, v) in &a.attributes {
                encode_streamed(k, chunk, dst);
                encode_streamed(v, chunk, dst);
            }
            encode_streamed(&a.frame, chunk, dst);
        }
        other => other.encode(dst),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_frame_round_trips_under_any_split(
        frames in proptest::collection::vec(frame(), 1..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = BytesMut::new();
        for f in &frames {
            f.encode(&mut bytes);
        }
        prop_assert_eq!(bytes.len(), frames.iter().map(Frame::encoded_len).sum::<usize>());
        prop_assert_eq!(decode_split(&bytes, &cuts), frames);
    }

    #[test]
    fn any_frame_round_trips_one_byte_at_a_time(frame in frame()) {
        let mut bytes = BytesMut::new();
        frame.encode(&mut bytes);
        let every: Vec<usize> = (0..bytes.len()).collect();
        prop_assert_eq!(decode_split(&bytes, &every), vec![frame]);
    }

    #[test]
    fn streamed_forms_decode_to_the_fixed_forms(
        frame in frame(),
        chunk in 1usize..8,
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = BytesMut::new();
        encode_streamed(&frame, chunk, &mut bytes);
        prop_assert_eq!(decode_split(&bytes, &cuts), vec![frame]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_agree_under_splits(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        cut in any::<usize>(),
    ) {
        // Whole and split decoding end the same way: the same frames, then
        // the same error at the same offset (or both still waiting).
        let run = |parts: &[&[u8]]| {
            let mut decoder = Decoder::new();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for part in parts {
                buf.extend_from_slice(part);
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(f)) => out.push(Ok(f)),
                        Ok(None) => break,
                        Err(e) => { out.push(Err(e)); return out; }
                    }
                }
            }
            out
        };
        let cut = cut % (bytes.len() + 1);
        prop_assert_eq!(run(&[&bytes]), run(&[&bytes[..cut], &bytes[cut..]]));
    }
}

#[test]
fn a_bulk_payload_is_a_slice_of_the_input() {
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nabc\r\n$2\r\nde\r\n"[..]);
    let start = buf.as_ptr() as usize;
    let Some(Frame::Array(items)) = Decoder::new().decode(&mut buf).unwrap() else {
        panic!("array")
    };
    let Frame::Bulk(first) = &items[0] else {
        panic!("bulk")
    };
    assert_eq!(first.as_ptr() as usize, start + 8);
    assert_eq!(first, &Bytes::from_static(b"abc"));
}
