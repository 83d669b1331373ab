//! Fuzzes the RESP decoder and encoder of `redpoll-core`.
//!
//! For every input it checks, and panics (a libFuzzer crash) when one fails:
//!
//! 1. Decoding never panics and terminates (no unbounded loop: every
//!    `Ok(Some)` moves the decoder's stream offset forward), and when it asks
//!    for more bytes, consumed plus still-buffered bytes are all bytes fed.
//! 2. Split invariance: the bytes decoded whole and decoded as two reads split
//!    at a position taken from the input give the same frames and the same
//!    error (kind and stream offset). Small inputs are also fed one byte at a
//!    time, which exercises "remember where it stopped".
//! 3. Errors are sticky: the call after an error returns the same error.
//! 4. Round trip: every decoded frame re-encodes to `encoded_len()` bytes that
//!    decode back to an equal frame, consuming exactly those bytes.
//! 5. Commands: arguments cut from the input encode with `encode_command` to
//!    an array of bulk strings that decodes back to those arguments.
//!
//! Input layout. If the first byte is a RESP type byte, the whole input is the
//! stream (so captured RESP files work as seeds unchanged), decoded with the
//! default limits, and the split position is a hash of the input. Otherwise
//! the first [`HEADER`] bytes configure the run:
//!
//! ```text
//! [flags, bulk, elems, split_hi, split_lo] ++ stream
//! flags bit 0: small limits: max_bulk_len = bulk, max_elements = elems & 0x1f,
//!              max_depth = elems >> 5, max_line_len = 8 + (flags >> 1)
//! split = u16(split_hi, split_lo) % (stream.len() + 1)
//! ```

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use redpoll_core::resp::{DecodeErrorKind, Decoder, Frame, Limits, encode_command};

/// Length of the configuration header used when the input does not start
/// with a RESP type byte.
const HEADER: usize = 5;

/// Inputs up to this length are also decoded one byte per read.
const BYTEWISE_MAX: usize = 512;

/// What a decoder made of a stream: the complete frames, then either the
/// error that stopped it or, when it ran out of bytes, how many bytes it had
/// consumed (the bytes of every finished element, whatever the split).
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    end: End,
}

/// How a decode run ended.
#[derive(Debug, PartialEq)]
enum End {
    Error { kind: DecodeErrorKind, offset: u64 },
    NeedMore { consumed: u64 },
}

fuzz_target!(|data: &[u8]| {
    let Some((limits, split, stream)) = configure(data) else {
        return;
    };

    let whole = decode_in_reads(limits, &[stream]);
    let (head, tail) = stream.split_at(split);
    let split_outcome = decode_in_reads(limits, &[head, tail]);
    assert_eq!(
        whole, split_outcome,
        "decoding whole and split at {split} differ"
    );

    if stream.len() <= BYTEWISE_MAX {
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let bytewise = decode_in_reads(limits, &bytes);
        assert_eq!(
            whole, bytewise,
            "decoding whole and one byte at a time differ"
        );
    }

    for frame in &whole.frames {
        round_trip(frame);
    }

    command_round_trip(stream);
});

/// Splits the fuzz input into limits, a split position and the RESP stream.
fn configure(data: &[u8]) -> Option<(Limits, usize, &[u8])> {
    let first = *data.first()?;
    if is_type_byte(first) {
        let split = (fnv1a(data) % (data.len() as u64 + 1)) as usize;
        return Some((Limits::default(), split, data));
    }
    if data.len() < HEADER {
        return None;
    }
    let (header, stream) = data.split_at(HEADER);
    let [flags, bulk, elems, split_hi, split_lo] =
        [header[0], header[1], header[2], header[3], header[4]];
    let mut limits = Limits::default();
    if flags & 1 == 1 {
        limits.max_bulk_len = usize::from(bulk);
        limits.max_elements = usize::from(elems & 0x1f);
        limits.max_depth = usize::from(elems >> 5);
        limits.max_line_len = 8 + usize::from(flags >> 1);
    }
    let split = usize::from(u16::from_be_bytes([split_hi, split_lo])) % (stream.len() + 1);
    Some((limits, split, stream))
}

/// The RESP2 and RESP3 type bytes.
fn is_type_byte(b: u8) -> bool {
    b"+-:$*_#,(!=%~>|".contains(&b)
}

/// A cheap hash, so that a seed's split point moves whenever a mutation
/// touches any of its bytes.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Feeds `reads` to one decoder, appending each read to the buffer and
/// draining complete frames after each, as an adapter would.
fn decode_in_reads(limits: Limits, reads: &[&[u8]]) -> Outcome {
    let mut decoder = Decoder::with_limits(limits);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0u64;
    for read in reads {
        buf.extend_from_slice(read);
        fed += read.len() as u64;
        loop {
            // The decoder may take several frames' worth of `buf` at once and
            // keep them, so progress shows in its stream offset, not in `buf`.
            let before = decoder.offset();
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(
                        decoder.offset() > before,
                        "a frame was decoded without consuming a byte"
                    );
                    assert!(decoder.offset() <= fed, "consumed more bytes than fed");
                    frames.push(frame);
                }
                Ok(None) => {
                    assert_eq!(
                        decoder.offset() + buf.len() as u64,
                        fed,
                        "consumed + buffered bytes != bytes fed"
                    );
                    break;
                }
                Err(error) => {
                    let again = decoder.decode(&mut buf);
                    assert_eq!(again, Err(error), "decode errors are not sticky");
                    assert!(error.offset() <= fed, "error offset past the bytes fed");
                    return Outcome {
                        frames,
                        end: End::Error {
                            kind: error.kind(),
                            offset: error.offset(),
                        },
                    };
                }
            }
        }
    }
    Outcome {
        frames,
        end: End::NeedMore {
            consumed: decoder.offset(),
        },
    }
}

/// Encodes `frame` and checks that the canonical bytes decode back to it.
fn round_trip(frame: &Frame) {
    let mut encoded = BytesMut::new();
    frame.encode(&mut encoded);
    assert_eq!(
        encoded.len(),
        frame.encoded_len(),
        "encoded_len disagrees with encode for {frame:?}"
    );
    let bytes = encoded.clone().freeze();
    let mut decoder = Decoder::new();
    match decoder.decode(&mut encoded) {
        Ok(Some(back)) => assert_eq!(
            &back, frame,
            "re-encoded frame decodes differently; encoded bytes: {bytes:?}"
        ),
        other => panic!("re-encoded {frame:?} as {bytes:?}, which decodes to {other:?}"),
    }
    assert!(
        encoded.is_empty(),
        "re-encoded {frame:?} as {bytes:?}, which leaves {} bytes after one frame",
        encoded.len()
    );
}

/// Cuts the input into arguments at every `\n` (so arguments may hold `\r`
/// and any other byte) and checks the command encoding decodes back to them.
fn command_round_trip(stream: &[u8]) {
    let args: Vec<&[u8]> = stream.split(|&b| b == b'\n').take(64).collect();
    let mut encoded = BytesMut::new();
    encode_command(&mut encoded, &args);
    let bytes = encoded.clone().freeze();
    let expected = Frame::Array(
        args.iter()
            .map(|arg| Frame::Bulk(Bytes::copy_from_slice(arg)))
            .collect(),
    );
    let mut decoder = Decoder::new();
    match decoder.decode(&mut encoded) {
        Ok(Some(back)) => assert_eq!(back, expected, "command bytes: {bytes:?}"),
        other => panic!("command {args:?} encoded as {bytes:?} decodes to {other:?}"),
    }
    assert!(encoded.is_empty(), "command {bytes:?} left bytes behind");
}
