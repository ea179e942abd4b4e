//! Serial numbers: 16 bytes from the OS CSPRNG (127 bits of entropy after forcing the value
//! positive and the first byte non-zero), well above the CA/Browser Forum's 64 bits, and below
//! RFC 5280's 20-octet limit. Uniqueness is enforced by the database's primary key; a collision
//! is retried with a fresh serial.

use rand::RngCore;

/// Draws a fresh serial: positive, fixed length, never starting with a zero byte.
pub fn generate() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
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
