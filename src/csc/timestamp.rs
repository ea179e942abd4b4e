//! `signatures/timestamp`: the CSC form of our RFC 3161 TSA (`crate::tsa`), answered in
//! process. The CSC body becomes a DER TimeStampReq (SHA-256 imprint, the nonce if given,
//! certReq TRUE), the TSA answers it exactly as on `POST /tsa`, and the token is cut out of
//! the TimeStampResp.

use base64::Engine;
use der::{Decode, Encode, Reader};

use super::CscError;

/// SHA-256.
pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";

/// DER of the SHA-256 AlgorithmIdentifier (OID, NULL parameters).
const SHA256_ALGORITHM: &[u8] =
    &[0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    // Every element here is far below 128 bytes: short-form lengths.
    let mut out = vec![tag, content.len() as u8];
    out.extend_from_slice(content);
    out
}

/// The nonce as a DER INTEGER content: 1 to 32 hex digits, positive.
fn nonce(hex_text: &str) -> Result<Vec<u8>, CscError> {
    let refused = || CscError::invalid("nonce: 1 to 32 hexadecimal digits");
    if hex_text.is_empty() || hex_text.len() > 32 || !hex_text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refused());
    }
    let padded = if hex_text.len() % 2 == 1 { format!("0{hex_text}") } else { hex_text.to_string() };
    let bytes = hex::decode(padded).map_err(|_| refused())?;
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    let mut value = bytes[start..].to_vec();
    if value.is_empty() {
        value.push(0);
    }
    if value[0] & 0x80 != 0 {
        value.insert(0, 0);
    }
    Ok(value)
}

/// The DER TimeStampReq for a CSC timestamp body.
pub fn request(hash_b64: &str, hash_algo: &str, nonce_hex: Option<&str>) -> Result<Vec<u8>, CscError> {
    if hash_algo != SHA256 {
        return Err(CscError::invalid(format!("hashAlgo: only {SHA256} (SHA-256)")));
    }
    let hash = base64::engine::general_purpose::STANDARD
        .decode(hash_b64)
        .map_err(|_| CscError::invalid("hash: not base64"))?;
    if hash.len() != 32 {
        return Err(CscError::invalid("Invalid digest value length"));
    }
    let mut imprint = SHA256_ALGORITHM.to_vec();
    imprint.extend(tlv(0x04, &hash));
    let mut body = vec![0x02, 0x01, 0x01];
    body.extend(tlv(0x30, &imprint));
    if let Some(n) = nonce_hex {
        body.extend(tlv(0x02, &nonce(n)?));
    }
    body.extend([0x01, 0x01, 0xff]);
    Ok(tlv(0x30, &body))
}

/// The TimeStampToken (a ContentInfo) out of a granted TimeStampResp.
pub fn token(response: &[u8]) -> Result<Vec<u8>, der::Error> {
    let outer = der::Any::from_der(response)?;
    let mut reader = der::SliceReader::new(outer.value())?;
    let _status: der::Any = reader.decode()?;
    let token: der::Any = reader.decode()?;
    token.to_der()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_positive_minimal_integers() {
        assert_eq!(nonce("01").unwrap(), vec![1]);
        assert_eq!(nonce("0").unwrap(), vec![0]);
        assert_eq!(nonce("ff").unwrap(), vec![0, 0xff]);
        assert_eq!(nonce("000abc").unwrap(), vec![0x0a, 0xbc]);
        for bad in ["", "xyz", &"1".repeat(33), "-1"] {
            assert!(nonce(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn requests_refuse_other_algorithms_and_lengths() {
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        assert!(request(&b64(32), SHA256, Some("abcdef")).is_ok());
        assert!(request(&b64(31), SHA256, None).is_err());
        assert!(request(&b64(32), "1.3.14.3.2.26", None).is_err());
        assert!(request("!!", SHA256, None).is_err());
    }
}
