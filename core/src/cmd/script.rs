//! Lua scripting: `EVAL`, `EVALSHA`, `SCRIPT *`, and [`Script`], which runs
//! a script by its SHA-1 and says when to fall back to sending its body.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;

use super::builder::Cmd;
use super::reply::{ServerError, ServerErrorKind};
use crate::resp::{Frame, ToArg};

/// `EVAL script numkeys key... arg...`. The reply type is the caller's
/// choice (scripts return anything): `cmd::eval::<i64, _, _>(...)`, or let
/// the adapter's return type infer it.
pub fn eval<T, K: ToArg, A: ToArg>(
    script: impl ToArg,
    keys: impl IntoIterator<Item = K>,
    args: impl IntoIterator<Item = A>,
) -> Cmd<T> {
    scripted("EVAL", script, keys, args)
}

/// `EVALSHA sha1 numkeys key... arg...`: runs a script the server has
/// cached; it answers `NOSCRIPT` when it has not (see [`Script`]).
pub fn evalsha<T, K: ToArg, A: ToArg>(
    sha1: impl ToArg,
    keys: impl IntoIterator<Item = K>,
    args: impl IntoIterator<Item = A>,
) -> Cmd<T> {
    scripted("EVALSHA", sha1, keys, args)
}

fn scripted<T, K: ToArg, A: ToArg>(
    name: &'static str,
    script: impl ToArg,
    keys: impl IntoIterator<Item = K>,
    args: impl IntoIterator<Item = A>,
) -> Cmd<T> {
    // numkeys comes before the keys: count them by encoding them apart.
    let mut key_args = Cmd::<T>::empty();
    key_args.push_keys(keys);
    Cmd::named(name)
        .arg(script)
        .arg(key_args.argc())
        .append(&key_args)
        .args(args)
}

/// `SCRIPT LOAD script`: the script's SHA-1, as hex.
pub fn script_load(script: impl ToArg) -> Cmd<String> {
    Cmd::named("SCRIPT").arg("LOAD").arg(script)
}

/// `SCRIPT EXISTS sha1...`: for each, whether the server has it cached.
pub fn script_exists<S: ToArg>(sha1s: impl IntoIterator<Item = S>) -> Cmd<Vec<bool>> {
    Cmd::named("SCRIPT").arg("EXISTS").args(sha1s).read_only()
}

/// `SCRIPT FLUSH`: empties the server's script cache.
pub fn script_flush() -> Cmd<()> {
    Cmd::named("SCRIPT").arg("FLUSH")
}

/// A Lua script, run by its SHA-1 (`EVALSHA`) so that its body is sent only
/// when the server does not have it yet.
///
/// The core only decides; the adapter sends. Send [`Script::invoke`]; when
/// [`Script::fallback`] answers `Some` for its reply (the server said
/// `NOSCRIPT`), send that `EVAL` instead, which also caches the script.
///
/// ```
/// use bytes::Bytes;
/// use redpoll_core::cmd::Script;
/// use redpoll_core::resp::Frame;
///
/// let script = Script::new("return redis.call('GET', KEYS[1])");
/// let call = script.invoke::<Option<Bytes>, _, _>(["key"], [""; 0]);
/// let noscript = Frame::Error(Bytes::from_static(b"NOSCRIPT No matching script."));
/// let eval = script.fallback(&call, &noscript).expect("send the EVAL instead");
/// assert_eq!(eval.name(), b"EVAL");
/// assert_eq!(script.fallback(&call, &Frame::Null).map(|_| ()), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Script {
    body: Bytes,
    sha1: String,
}

impl Script {
    /// A script; its SHA-1 is computed here, once.
    #[must_use]
    pub fn new(body: impl AsRef<[u8]>) -> Self {
        let body = Bytes::copy_from_slice(body.as_ref());
        let sha1 = hex(&sha1(&body));
        Self { body, sha1 }
    }

    /// The Lua source.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The SHA-1 of the source, as 40 lowercase hex digits: the name the
    /// server caches the script under.
    #[must_use]
    pub fn sha1(&self) -> &str {
        &self.sha1
    }

    /// `EVALSHA sha1 numkeys key... arg...`.
    pub fn invoke<T, K: ToArg, A: ToArg>(
        &self,
        keys: impl IntoIterator<Item = K>,
        args: impl IntoIterator<Item = A>,
    ) -> Cmd<T> {
        evalsha(self.sha1.as_str(), keys, args)
    }

    /// `EVAL body numkeys key... arg...`: the script sent whole.
    pub fn eval<T, K: ToArg, A: ToArg>(
        &self,
        keys: impl IntoIterator<Item = K>,
        args: impl IntoIterator<Item = A>,
    ) -> Cmd<T> {
        eval(&self.body, keys, args)
    }

    /// `SCRIPT LOAD body`: caches the script on the server (on one node: a
    /// cluster needs it on each).
    pub fn load(&self) -> Cmd<String> {
        script_load(&self.body)
    }

    /// What to send instead of `sent` after it got `reply`: the same call
    /// as `EVAL` (`EVAL_RO` for `EVALSHA_RO`) when `sent` is an `EVALSHA`
    /// of this script and `reply` is a `NOSCRIPT` error; `None` otherwise
    /// (the reply stands).
    #[must_use]
    pub fn fallback<T>(&self, sent: &Cmd<T>, reply: &Frame) -> Option<Cmd<T>> {
        if ServerError::from_frame(reply)?.kind() != ServerErrorKind::NoScript {
            return None;
        }
        let mut argv = sent.argv();
        let name = argv.next()?;
        let eval = if name.eq_ignore_ascii_case(b"EVALSHA") {
            "EVAL"
        } else if name.eq_ignore_ascii_case(b"EVALSHA_RO") {
            "EVAL_RO"
        } else {
            return None;
        };
        if !argv.next()?.eq_ignore_ascii_case(self.sha1.as_bytes()) {
            return None;
        }
        let mut cmd = Cmd::named(eval).arg(&self.body).append(&sent.tail(2));
        if sent.is_read_only() {
            cmd = cmd.read_only();
        }
        Some(cmd)
    }
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// SHA-1 (FIPS 180-4), the name Redis caches scripts under.
///
/// Written here rather than taken from a crate: it runs once per `Script`,
/// needs no speed, and ~40 lines keep the core free of a dependency (and
/// of its feature and `no_std` questions). Collision resistance does not
/// matter here: it only names a script the application wrote.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut state: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut blocks = data.chunks_exact(64);
    for block in &mut blocks {
        compress(&mut state, block);
    }
    // Padding: 0x80, zeros, then the length in bits, big-endian, ending a
    // block; one block more when the rest leaves no room for the length.
    let rest = blocks.remainder();
    let mut last = [0u8; 128];
    last[..rest.len()].copy_from_slice(rest);
    last[rest.len()] = 0x80;
    let end = if rest.len() < 56 { 64 } else { 128 };
    let bits = (data.len() as u64).wrapping_mul(8);
    last[end - 8..end].copy_from_slice(&bits.to_be_bytes());
    for block in last[..end].chunks_exact(64) {
        compress(&mut state, block);
    }
    let mut digest = [0u8; 20];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// One 64-byte block of SHA-1.
fn compress(state: &mut [u32; 5], block: &[u8]) {
    let mut w = [0u32; 80];
    for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    for i in 16..80 {
        w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
    }
    let [mut a, mut b, mut c, mut d, mut e] = *state;
    for (i, word) in w.into_iter().enumerate() {
        let (f, k) = match i {
            0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
            20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
            _ => (b ^ c ^ d, 0xCA62_C1D6),
        };
        let t = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(word);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = t;
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e]) {
        *s = s.wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::cmd::strings::tests::{argv, keys_of, wire};

    #[test]
    fn sha1_known_vectors() {
        let a_million = vec![b'a'; 1_000_000];
        let cases: [(&[u8], &str); 10] = [
            (b"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            (b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (b"return 1", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"),
            (
                b"The quick brown fox jumps over the lazy dog",
                "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
            ),
            // 55, 56 and 64 bytes: the edges of the padding.
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
            ),
            (&[b'x'; 55], "cef734ba81a024479e09eb5a75b6ddae62e6abf1"),
            (&[b'x'; 56], "901305367c259952f4e7af8323f480d59f81335b"),
            (&[b'x'; 64], "bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163"),
            (&a_million, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"),
            (
                b"return redis.call('GET', KEYS[1])",
                "d3c21d0c2b9ca22f82737626a27bcaf5d288f99f",
            ),
        ];
        for (data, want) in cases {
            assert_eq!(hex(&sha1(data)), want, "{} bytes", data.len());
        }
        assert_eq!(
            Script::new("return 1").sha1(),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }

    #[test]
    fn encodes() {
        assert_eq!(
            wire(&eval::<(), _, _>("return 1", ["k"], ["a"])),
            b"*5\r\n$4\r\nEVAL\r\n$8\r\nreturn 1\r\n$1\r\n1\r\n$1\r\nk\r\n$1\r\na\r\n"
        );
        let call = evalsha::<(), _, _>("abc", ["k1", "k2"], [1, 2, 3]);
        assert_eq!(
            argv(&call),
            ["EVALSHA", "abc", "2", "k1", "k2", "1", "2", "3"]
        );
        assert_eq!(keys_of(&call), ["k1", "k2"]);
        let no_keys = eval::<(), _, _>("return 1", [""; 0], [""; 0]);
        assert_eq!(argv(&no_keys), ["EVAL", "return 1", "0"]);
        assert!(keys_of(&no_keys).is_empty());
        assert_eq!(
            argv(&script_load("return 1")),
            ["SCRIPT", "LOAD", "return 1"]
        );
        assert_eq!(
            argv(&script_exists(["a", "b"])),
            ["SCRIPT", "EXISTS", "a", "b"]
        );
        assert_eq!(argv(&script_flush()), ["SCRIPT", "FLUSH"]);
        assert!(script_exists(["a"]).is_read_only());
        assert!(!script_load("x").is_read_only());
        assert!(!eval::<(), _, _>("x", [""; 0], [""; 0]).is_read_only());
    }

    #[test]
    fn script_invokes_by_sha_and_falls_back_to_eval() {
        let script = Script::new("return 1");
        assert_eq!(script.body(), b"return 1");
        let call = script.invoke::<i64, _, _>(["k"], ["v"]);
        assert_eq!(
            argv(&call),
            [
                "EVALSHA",
                "e0e1f9fabfc9d4800c877a703b823ac0578ff8db",
                "1",
                "k",
                "v"
            ]
        );
        let noscript = Frame::Error(Bytes::from_static(
            b"NOSCRIPT No matching script. Please use EVAL.",
        ));
        let eval = script.fallback(&call, &noscript).unwrap();
        assert_eq!(argv(&eval), ["EVAL", "return 1", "1", "k", "v"]);
        assert_eq!(keys_of(&eval), ["k"]);
        assert_eq!(argv(&script.eval::<i64, _, _>(["k"], ["v"])), argv(&eval));
        assert_eq!(argv(&script.load()), ["SCRIPT", "LOAD", "return 1"]);

        // Any other reply stands.
        let other_error = Frame::Error(Bytes::from_static(b"ERR boom"));
        assert!(script.fallback(&call, &other_error).is_none());
        assert!(script.fallback(&call, &Frame::Integer(1)).is_none());
        // Another script's call, or not an EVALSHA at all: not ours to fix.
        let other = Script::new("return 2").invoke::<i64, _, _>(["k"], ["v"]);
        assert!(script.fallback(&other, &noscript).is_none());
        assert!(script.fallback(&eval, &noscript).is_none());
    }

    #[test]
    fn read_only_evalsha_falls_back_to_eval_ro() {
        let script = Script::new("return 1");
        let call = Cmd::new("EVALSHA_RO").arg(script.sha1()).arg(0).read_only();
        let noscript = Frame::BulkError(Bytes::from_static(b"NOSCRIPT x"));
        let eval = script.fallback(&call, &noscript).unwrap();
        assert_eq!(argv(&eval), ["EVAL_RO", "return 1", "0"]);
        assert!(eval.is_read_only());
    }
}
