//! Serial numbers: 16 bytes, positive, never starting with a zero byte, below RFC 5280's
//! 20-octet limit. The first 6 bytes are the time of drawing in milliseconds (big-endian); the
//! last 10 come from the OS CSPRNG: 80 bits, above the CA/Browser Forum's 64 (BR 7.1), and the
//! low 8 bytes that choose a certificate's CRL partition stay uniform. Uniqueness is enforced by
//! the database's primary key; a collision is retried with a fresh serial.
//!
//! Why time first (issue 18): the serial is the key of `serials` and `certificates`. Wholly
//! random keys put every new row on its own B-tree leaf, so each certificate dirtied two random
//! 4 KiB pages, written once to the WAL and again at checkpoint, and the single writer spent its
//! time writing pages; once the indexes outgrow the page cache, each of those inserts also
//! reads a page from disk. Keys that grow with time append to the rightmost leaves instead, as
//! UUIDv7 does for the same reason. The time in a serial tells no more than the certificate's
//! notBefore.

use rand::RngCore;

/// Draws a fresh serial: positive, fixed length, never starting with a zero byte, later
/// serials sorting after earlier ones (to the millisecond).
pub fn generate() -> [u8; 16] {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    generate_at(millis)
}

/// A serial drawn at `millis` (Unix milliseconds).
fn generate_at(millis: u64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // 47 bits of milliseconds last until the year 6429; the top bit stays clear (positive).
    let time = millis.min((1 << 47) - 1).to_be_bytes();
    bytes[..6].copy_from_slice(&time[2..]);
    rand::rngs::OsRng.fill_bytes(&mut bytes[6..]);
    if bytes[0] == 0 {
        // Before 2004 the first byte would be zero (a shorter DER INTEGER): never here.
        bytes[0] = 0x01;
    }
    bytes
}

/// The canonical text form: lowercase hex, no separators.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Reads a serial as operators type it: hex as openssl prints it, any case, colons allowed,
/// leading zeros ignored.
pub fn parse(text: &str) -> Option<String> {
    let cleaned: String = text.trim().chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    let cleaned = cleaned.strip_prefix("0x").unwrap_or(&cleaned);
    if cleaned.is_empty() || cleaned.len() > 42 || !cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = cleaned.trim_start_matches('0');
    if trimmed.is_empty() {
        // Zero: serials are positive (RFC 5280 §4.1.2.2); an empty magnitude names nothing.
        return None;
    }
    let padded = if trimmed.len() % 2 == 1 { format!("0{trimmed}") } else { trimmed.to_string() };
    Some(padded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_and_never_start_with_zero() {
        for _ in 0..1000 {
            let s = generate();
            assert!(s[0] > 0 && s[0] < 0x80);
        }
        for millis in [0, 1, 1 << 40, (1 << 47) - 1, 1 << 47, u64::MAX] {
            let s = generate_at(millis);
            assert!(s[0] > 0 && s[0] < 0x80, "{millis}: {s:02x?}");
        }
    }

    #[test]
    fn serials_grow_with_time_and_keep_eighty_random_bits() {
        let now = 1_796_000_000_000u64;
        let (a, b, c) = (generate_at(now), generate_at(now), generate_at(now + 1));
        assert_eq!(a[..6], b[..6], "the same millisecond, the same prefix");
        assert_eq!(u64::from_be_bytes([0, 0, a[0], a[1], a[2], a[3], a[4], a[5]]), now);
        assert_ne!(a[6..], b[6..], "the random part differs");
        assert!(to_hex(&c) > to_hex(&a) && to_hex(&c) > to_hex(&b), "a later millisecond sorts after");
        // Each random bit is set about half the time: none is fixed by mistake.
        let drawn: Vec<[u8; 16]> = (0..2000).map(|_| generate_at(now)).collect();
        for bit in 48..128 {
            let ones = drawn.iter().filter(|s| s[bit / 8] >> (7 - bit % 8) & 1 == 1).count();
            assert!((800..1200).contains(&ones), "bit {bit} set {ones} times in 2000");
        }
    }

    #[test]
    fn serials_parse_in_openssl_and_colon_forms() {
        assert_eq!(parse("1A:2B:3C").as_deref(), Some("1a2b3c"));
        assert_eq!(parse("0x01AB").as_deref(), Some("01ab"));
        assert_eq!(parse("abc").as_deref(), Some("0abc"));
        assert_eq!(parse("xyz"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("0"), None);
        assert_eq!(parse("00:00"), None);
        assert_eq!(parse("0x"), None);
    }
}
