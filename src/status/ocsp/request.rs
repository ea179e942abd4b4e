//! Parsing OCSP requests (RFC 6960 §4.1) strictly enough to answer `malformedRequest` for
//! anything that is not one: every length is checked, trailing bytes are refused.

use crate::asn1::{self, tag};

/// The hash algorithms a CertID may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-1: what RFC 5019 clients (and openssl by default) send.
    Sha1,
    /// SHA-256.
    Sha256,
}

/// One certificate asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// Hash of the issuer name and key.
    pub hash: HashAlgorithm,
    /// Hash of the issuer's DER subject.
    pub name_hash: Vec<u8>,
    /// Hash of the issuer's subjectPublicKey bits.
    pub key_hash: Vec<u8>,
    /// Serial number magnitude (big-endian, no sign byte).
    pub serial: Vec<u8>,
    /// The CertID exactly as the client sent it, echoed in the response.
    pub der: Vec<u8>,
}

/// A parsed request.
#[derive(Debug, Clone)]
pub struct OcspRequest {
    /// The certificates asked about (at least one).
    pub certs: Vec<CertId>,
    /// The nonce extension (whole Extension DER) to echo, RFC 8954.
    pub nonce: Option<Vec<u8>>,
}

/// Why a request is malformed (logged, never sent: the client only sees `malformedRequest`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed OCSP request: {0}")]
pub struct Malformed(pub &'static str);

const SHA1: &[u64] = &[1, 3, 14, 3, 2, 26];
const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const NONCE: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 2];
/// Most certificates one request may ask about.
pub const MAX_CERTS: usize = 16;

fn take<'a>(input: &'a [u8], expected: u8, what: &'static str) -> Result<(&'a [u8], &'a [u8]), Malformed> {
    match asn1::read_tlv(input) {
        Some((t, content, rest)) if t == expected => Ok((content, rest)),
        _ => Err(Malformed(what)),
    }
}

/// Parses a DER OCSPRequest.
pub fn parse(der: &[u8]) -> Result<OcspRequest, Malformed> {
    let (request, rest) = take(der, tag::SEQUENCE, "not a SEQUENCE")?;
    if !rest.is_empty() {
        return Err(Malformed("trailing bytes"));
    }
    let (mut tbs, _signature) = take(request, tag::SEQUENCE, "no TBSRequest")?;
    // version [0] and requestorName [1] are optional; we accept v1 only and ignore the name.
    if let Some((0xa0, version, rest)) = asn1::read_tlv(tbs) {
        if version != [2, 1, 0] {
            return Err(Malformed("unsupported version"));
        }
        tbs = rest;
    }
    if let Some((0xa1, _, rest)) = asn1::read_tlv(tbs) {
        tbs = rest;
    }
    let (mut list, rest) = take(tbs, tag::SEQUENCE, "no requestList")?;
    let mut certs = Vec::new();
    while !list.is_empty() {
        let (one, more) = take(list, tag::SEQUENCE, "bad Request")?;
        list = more;
        certs.push(cert_id(one)?);
        if certs.len() > MAX_CERTS {
            return Err(Malformed("too many certificates in one request"));
        }
    }
    if certs.is_empty() {
        return Err(Malformed("empty requestList"));
    }
    let nonce = match asn1::read_tlv(rest) {
        None if rest.is_empty() => None,
        Some((0xa2, extensions, [])) => find_nonce(extensions)?,
        _ => return Err(Malformed("bad requestExtensions")),
    };
    Ok(OcspRequest { certs, nonce })
}

fn cert_id(request: &[u8]) -> Result<CertId, Malformed> {
    let start = request;
    let (id, _single_extensions) = take(request, tag::SEQUENCE, "bad CertID")?;
    let der_len = start.len() - _single_extensions.len();
    let (algorithm, rest) = take(id, tag::SEQUENCE, "bad hashAlgorithm")?;
    let (oid, _params) = take(algorithm, tag::OID, "bad hash OID")?;
    let hash = if oid == &asn1::oid(SHA1)[2..] {
        HashAlgorithm::Sha1
    } else if oid == &asn1::oid(SHA256)[2..] {
        HashAlgorithm::Sha256
    } else {
        return Err(Malformed("unsupported hash algorithm"));
    };
    let (name_hash, rest) = take(rest, tag::OCTET_STRING, "bad issuerNameHash")?;
    let (key_hash, rest) = take(rest, tag::OCTET_STRING, "bad issuerKeyHash")?;
    let (serial, rest) = take(rest, tag::INTEGER, "bad serialNumber")?;
    let expected = if hash == HashAlgorithm::Sha1 { 20 } else { 32 };
    if !rest.is_empty() || name_hash.len() != expected || key_hash.len() != expected {
        return Err(Malformed("bad CertID lengths"));
    }
    if serial.is_empty() || serial.len() > 21 || serial[0] & 0x80 != 0 {
        return Err(Malformed("bad serial number"));
    }
    let magnitude = serial.iter().skip_while(|b| **b == 0).copied().collect();
    Ok(CertId {
        hash,
        name_hash: name_hash.to_vec(),
        key_hash: key_hash.to_vec(),
        serial: magnitude,
        der: start[..der_len].to_vec(),
    })
}

fn find_nonce(extensions: &[u8]) -> Result<Option<Vec<u8>>, Malformed> {
    let (mut list, rest) = take(extensions, tag::SEQUENCE, "bad Extensions")?;
    if !rest.is_empty() {
        return Err(Malformed("bad Extensions"));
    }
    let nonce_oid = asn1::oid(NONCE);
    while !list.is_empty() {
        let before = list;
        let (extension, more) = take(list, tag::SEQUENCE, "bad Extension")?;
        let whole = &before[..before.len() - more.len()];
        list = more;
        if extension.starts_with(&nonce_oid) {
            let (_, value) = take(extension, tag::OID, "bad Extension")?;
            let value = match asn1::read_tlv(value) {
                Some((tag::BOOLEAN, _, rest)) => rest,
                _ => value,
            };
            let (inner, _) = take(value, tag::OCTET_STRING, "bad nonce")?;
            // RFC 8954: 1 to 32 octets. openssl wraps the nonce in a second OCTET STRING.
            if inner.is_empty() || inner.len() > 34 {
                return Err(Malformed("nonce length out of range"));
            }
            return Ok(Some(whole.to_vec()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_truncation_and_trailing_bytes_are_malformed() {
        assert!(parse(b"").is_err());
        assert!(parse(b"\x30\x03\x30\x01").is_err());
        assert!(parse(&[0x30, 0x00]).is_err());
        assert!(parse(b"hello world").is_err());
    }
}
