//! Hash slots: which of the 16384 slots a key belongs to.
//!
//! The function is the one of the Redis Cluster specification: CRC16 in its
//! XMODEM variant (polynomial `0x1021`, initial value 0, no reflection, no
//! final XOR) of the key, modulo 16384, where a *hash tag* narrows the bytes
//! hashed. The tag rule, exactly as the server applies it:
//!
//! 1. find the first `{` in the key;
//! 2. find the first `}` after it;
//! 3. if both exist and at least one byte lies between them, hash only those
//!    bytes; otherwise hash the whole key.
//!
//! So `{user1000}.following` and `{user1000}.followers` share a slot, `{}a`
//! hashes whole, and `{{a}}` hashes `{a`.

/// The number of hash slots in a Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// The hash slot of `key`, in `0..SLOT_COUNT`.
#[must_use]
pub fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOT_COUNT
}

/// The bytes of `key` that decide its slot: the hash tag if there is a
/// non-empty one, the whole key otherwise.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let after = &key[open + 1..];
    match after.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &after[..close],
        _ => key,
    }
}

/// CRC16/XMODEM, one table lookup per byte.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The CRC of every byte value, computed at compile time from the polynomial.
const CRC16_TABLE: [u16; 256] = {
    const POLY: u16 = 0x1021;
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn crc16_matches_the_spec_vector() {
        // The check value the cluster specification gives for its CRC16.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn table_matches_the_spec_table() {
        // The first and last entries of the table printed in the spec.
        assert_eq!(
            &CRC16_TABLE[..8],
            &[
                0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7
            ]
        );
        assert_eq!(
            &CRC16_TABLE[248..],
            &[
                0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93, 0x3eb2, 0x0ed1, 0x1ef0
            ]
        );
    }

    #[test]
    fn slots_of_known_keys() {
        // What `CLUSTER KEYSLOT` answered on redis-server 7.0.15.
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"somekey"), 11058);
        assert_eq!(slot(b"hello"), 866);
        assert_eq!(slot(b""), 0);
        assert_eq!(slot(b"{}"), 15257);
        assert_eq!(slot(b"{}{a}"), 13650);
        assert_eq!(slot(b"{{a}}"), 10276);
        assert_eq!(slot(b"{a"), 10276);
        assert_eq!(slot(b"a{b}"), 3300);
        assert_eq!(slot(b"}a{b}"), 3300);
    }

    #[test]
    fn hash_tags_follow_the_spec() {
        let cases: [(&[u8], &[u8]); 11] = [
            (b"{user1000}.following", b"user1000"),
            (b"foo{}{bar}", b"foo{}{bar}"),
            (b"{}", b"{}"),
            (b"{}{a}", b"{}{a}"),
            (b"{{a}}", b"{a"),
            (b"foo{{bar}}zap", b"{bar"),
            (b"foo{bar}{zap}", b"bar"),
            (b"a{b}", b"b"),
            (b"{a", b"{a"),
            (b"}a{b}", b"b"),
            (b"", b""),
        ];
        for (key, hashed) in cases {
            assert_eq!(hash_tag(key), hashed, "key {}", key.escape_ascii());
            assert_eq!(slot(key), slot(hashed));
        }
    }

    #[test]
    fn keys_sharing_a_tag_share_a_slot() {
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{a}"), slot(b"a"));
        assert_ne!(slot(b"{}a"), slot(b"a"));
    }

    /// `CLUSTER KEYSLOT` of a real redis-server for every key of
    /// `core/tests/data/keyslot.txt`: lines `<key in hex>\t<slot>`, `#`
    /// comments, an empty hex field for the empty key.
    #[test]
    fn slots_match_the_real_server() {
        let table = include_str!("../../tests/data/keyslot.txt");
        let mut checked = 0;
        for line in table
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (hex, expected) = line.split_once('\t').expect("key<TAB>slot");
            let key = decode_hex(hex);
            let expected: u16 = expected.parse().expect("a slot number");
            assert_eq!(slot(&key), expected, "key {}", key.escape_ascii());
            checked += 1;
        }
        assert!(checked >= 300, "only {checked} keys in the table");
    }

    fn decode_hex(hex: &str) -> Vec<u8> {
        assert!(hex.len().is_multiple_of(2), "odd hex {hex:?}");
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
            .collect()
    }

    #[test]
    fn every_slot_is_in_range() {
        for n in 0u32..100_000 {
            assert!(slot(&n.to_le_bytes()) < SLOT_COUNT);
        }
    }
}
