//! The benchmark inputs, shared by `benches/codec.rs`, `benches/callgrind.rs`
//! and `tests/alloc_count.rs` (each includes this file with `#[path]`).
//!
//! Every input is built from a fixed seed, so every implementation and every
//! binary decodes exactly the same bytes, run after run.

// Each including binary uses a different subset.
#![allow(dead_code)]

use bytes::BytesMut;

pub(crate) mod impls;

/// One decode input: the wire bytes and what a correct decoder must find.
pub(crate) struct Input {
    /// Short name, as used in benchmark group names and on the command line.
    pub(crate) name: &'static str,
    /// The wire bytes: a sequence of complete top-level frames.
    pub(crate) bytes: BytesMut,
    /// Number of top-level frames in `bytes`.
    pub(crate) frames: usize,
    /// The throughput unit: top-level frames for (a), (c), (d); array
    /// elements for (b), whose single frame holds 1,000 of them.
    pub(crate) elements: u64,
    /// Number of aggregate frames (arrays, maps, sets, pushes) at any depth:
    /// the decoder needs one `Vec` for each, so this bounds its allocations.
    pub(crate) aggregates: usize,
    /// Uses RESP3-only types, so RESP2-only decoders skip it.
    pub(crate) resp3: bool,
}

/// Deterministic generator (SplitMix64): no dependency, same numbers everywhere.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// `len` printable bytes (never `\r` or `\n`).
    pub(crate) fn payload(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| b'a' + (self.next_u64() % 26) as u8)
            .collect()
    }
}

fn push_bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn push_int(out: &mut Vec<u8>, rng: &mut Rng) {
    // Mostly small counters, sometimes large or negative values.
    let v: i64 = match rng.range(0, 3) {
        0 => rng.range(0, 9) as i64,
        1 => rng.range(0, 100_000) as i64,
        2 => -(rng.range(1, 1_000_000) as i64),
        _ => rng.next_u64() as i64,
    };
    out.extend_from_slice(format!(":{v}\r\n").as_bytes());
}

/// (a) 10,000 small RESP2 replies, mixed: `+OK`, `:int`, `$` bulks of 8..=64
/// bytes and nil `$-1`, in equal proportions, in random order.
pub(crate) fn a_small_mixed() -> Input {
    const N: usize = 10_000;
    let mut rng = Rng::new(0xA);
    let mut out = Vec::new();
    for _ in 0..N {
        match rng.range(0, 3) {
            0 => out.extend_from_slice(b"+OK\r\n"),
            1 => push_int(&mut out, &mut rng),
            2 => {
                let len = rng.range(8, 64) as usize;
                push_bulk(&mut out, &rng.payload(len));
            }
            _ => out.extend_from_slice(b"$-1\r\n"),
        }
    }
    Input {
        name: "a_small_mixed",
        bytes: BytesMut::from(&out[..]),
        frames: N,
        elements: N as u64,
        aggregates: 0,
        resp3: false,
    }
}

/// Only the replies that must not allocate at all: `+OK`, `:int`, `$-1`
/// (10,000 of them, random order). Used by the allocation test.
pub(crate) fn simple_only() -> Input {
    const N: usize = 10_000;
    let mut rng = Rng::new(0x5);
    let mut out = Vec::new();
    for _ in 0..N {
        match rng.range(0, 2) {
            0 => out.extend_from_slice(b"+OK\r\n"),
            1 => push_int(&mut out, &mut rng),
            _ => out.extend_from_slice(b"$-1\r\n"),
        }
    }
    Input {
        name: "simple_only",
        bytes: BytesMut::from(&out[..]),
        frames: N,
        elements: N as u64,
        aggregates: 0,
        resp3: false,
    }
}

/// (b) One array of 1,000 bulk strings of 100 bytes (an `LRANGE` / `MGET` reply).
pub(crate) fn b_array_1000x100() -> Input {
    const N: usize = 1_000;
    let mut rng = Rng::new(0xB);
    let mut out = format!("*{N}\r\n").into_bytes();
    for _ in 0..N {
        push_bulk(&mut out, &rng.payload(100));
    }
    Input {
        name: "b_array_1000x100",
        bytes: BytesMut::from(&out[..]),
        frames: 1,
        elements: N as u64,
        aggregates: 1,
        resp3: false,
    }
}

/// (c) 100 bulk strings of 64 KiB each.
pub(crate) fn c_bulk_100x64k() -> Input {
    const N: usize = 100;
    let mut rng = Rng::new(0xC);
    let mut out = Vec::new();
    for _ in 0..N {
        push_bulk(&mut out, &rng.payload(64 * 1024));
    }
    Input {
        name: "c_bulk_100x64k",
        bytes: BytesMut::from(&out[..]),
        frames: N,
        elements: N as u64,
        aggregates: 0,
        resp3: false,
    }
}

/// (d) 10,000 RESP3 top-level frames: maps, sets, doubles, booleans, push
/// frames (pub/sub messages), nulls, and some simple strings, integers and
/// bulks, in random order.
pub(crate) fn d_resp3_mix() -> Input {
    const N: usize = 10_000;
    let mut rng = Rng::new(0xD);
    let mut out = Vec::new();
    let mut aggregates = 0;
    for _ in 0..N {
        match rng.range(0, 19) {
            // Map (HGETALL / CLIENT INFO style): 1..=4 fields, mixed values.
            0..=2 => {
                aggregates += 1;
                let n = rng.range(1, 4);
                out.extend_from_slice(format!("%{n}\r\n").as_bytes());
                for i in 0..n {
                    push_bulk(&mut out, format!("field:{i}").as_bytes());
                    match rng.range(0, 3) {
                        0 => push_int(&mut out, &mut rng),
                        1 => {
                            let len = rng.range(8, 32) as usize;
                            push_bulk(&mut out, &rng.payload(len));
                        }
                        2 => out.extend_from_slice(b",0.25\r\n"),
                        _ => out.extend_from_slice(b"#t\r\n"),
                    }
                }
            }
            // Set (SMEMBERS): 1..=5 members, bulks or integers.
            3 | 4 => {
                aggregates += 1;
                let n = rng.range(1, 5);
                out.extend_from_slice(format!("~{n}\r\n").as_bytes());
                for _ in 0..n {
                    if rng.range(0, 1) == 0 {
                        push_int(&mut out, &mut rng);
                    } else {
                        let len = rng.range(4, 16) as usize;
                        push_bulk(&mut out, &rng.payload(len));
                    }
                }
            }
            // Double (ZSCORE, INCRBYFLOAT).
            5..=7 => {
                let d: &[u8] = match rng.range(0, 5) {
                    0 => b"3.14159",
                    1 => b"-2.5e-3",
                    2 => b"1e300",
                    3 => b"inf",
                    4 => b"-inf",
                    _ => b"42",
                };
                out.push(b',');
                out.extend_from_slice(d);
                out.extend_from_slice(b"\r\n");
            }
            // Boolean.
            8 | 9 => {
                out.extend_from_slice(if rng.range(0, 1) == 0 {
                    b"#t\r\n"
                } else {
                    b"#f\r\n"
                });
            }
            // Push: pub/sub `message` (3 elements) or `pmessage` (4 elements).
            10..=12 => {
                aggregates += 1;
                let channel = format!("channel:{}", rng.range(0, 99));
                let len = rng.range(8, 64) as usize;
                let payload = rng.payload(len);
                if rng.range(0, 1) == 0 {
                    out.extend_from_slice(b">3\r\n");
                    push_bulk(&mut out, b"message");
                } else {
                    out.extend_from_slice(b">4\r\n");
                    push_bulk(&mut out, b"pmessage");
                    push_bulk(&mut out, b"channel:*");
                }
                push_bulk(&mut out, channel.as_bytes());
                push_bulk(&mut out, &payload);
            }
            // RESP3 null.
            13 => out.extend_from_slice(b"_\r\n"),
            14 | 15 => out.extend_from_slice(b"+OK\r\n"),
            16 | 17 => push_int(&mut out, &mut rng),
            _ => {
                let len = rng.range(8, 64) as usize;
                push_bulk(&mut out, &rng.payload(len));
            }
        }
    }
    Input {
        name: "d_resp3_mix",
        bytes: BytesMut::from(&out[..]),
        frames: N,
        elements: N as u64,
        aggregates,
        resp3: true,
    }
}

/// The four decode inputs, in report order.
pub(crate) fn all() -> Vec<Input> {
    vec![
        a_small_mixed(),
        b_array_1000x100(),
        c_bulk_100x64k(),
        d_resp3_mix(),
    ]
}

/// Looks an input up by its name or by its letter (`a`, `b`, `c`, `d`).
pub(crate) fn by_name(name: &str) -> Option<Input> {
    all()
        .into_iter()
        .find(|i| i.name == name || i.name.split('_').next() == Some(name))
}

/// Number of `SET` commands in the encode benchmark.
pub(crate) const SET_COMMANDS: usize = 10_000;

/// The arguments of `SET key:NNN <64-byte value>` x 10,000: keys `key:0` ..
/// `key:9999` and one 64-byte value per key.
pub(crate) fn set_commands() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rng = Rng::new(0xE);
    (0..SET_COMMANDS)
        .map(|i| (format!("key:{i}").into_bytes(), rng.payload(64)))
        .collect()
}
