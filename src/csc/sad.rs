//! The SAD (Signature Activation Data) handed to the platform by `authorizeCheck`: 32 random
//! bytes as unpadded base64url. Only its SHA-256 is stored, so a database reader cannot spend
//! one; it is single use and expires (`[custody] authorization_seconds`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::Digest;

/// A fresh SAD and the hex hash to store.
pub fn generate() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let sad = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&sad);
    (sad, hash)
}

/// The stored form of a SAD: hex SHA-256 of its text. Anything (too long, odd characters)
/// simply hashes to something never stored.
pub fn hash(sad: &str) -> String {
    hex::encode(sha2::Sha256::digest(sad.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sads_are_distinct_and_only_their_hash_matches() {
        let (a, ha) = generate();
        let (b, hb) = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash(&a), ha);
        assert_ne!(ha, hb);
        assert_ne!(hash(&format!("{a} ")), ha);
    }
}
