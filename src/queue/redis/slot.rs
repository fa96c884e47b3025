//! Which of Redis Cluster's 16,384 hash slots a key belongs to: CRC16 (the XMODEM variant:
//! polynomial 0x1021, initial value 0) of the key's hash tag — the bytes between the first `{`
//! and the first `}` after it, when there is at least one — or of the whole key, modulo 16,384.
//!
//! Every key of one shard carries the same tag, so every command and script of a shard stays in
//! one slot, on one node.

/// Slots in a Redis Cluster.
pub(crate) const SLOTS: u16 = 16_384;

/// CRC16/XMODEM of `bytes`, bit by bit (keys are short; no table needed).
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The part of `key` that is hashed: its hash tag when it has a non-empty one, else all of it.
pub(crate) fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// The cluster slot of `key`.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_xmodem_check_value() {
        // The check value of CRC-16/XMODEM over the ASCII digits 1 to 9.
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }

    #[test]
    fn slots_of_known_keys() {
        // Values the cluster specification lists and `CLUSTER KEYSLOT` answers.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn only_the_first_non_empty_tag_is_hashed() {
        assert_eq!(hash_tag(b"uq:{mail:shard-3}:stream"), b"mail:shard-3");
        assert_eq!(
            key_slot(b"uq:{mail:shard-3}:stream"),
            key_slot(b"uq:{mail:shard-3}:dead")
        );
        assert_eq!(hash_tag(b"{}x"), b"{}x");
        assert_eq!(hash_tag(b"a{b"), b"a{b");
        assert_eq!(hash_tag(b"{a}{b}"), b"a");
        assert_eq!(hash_tag(b"{{a}}"), b"{a");
    }
}
