//! OCSP requests (RFC 6960 §4.1), decoded strictly with `der`: BER length forms (indefinite,
//! non-minimal), non-minimal or negative integers, explicitly encoded DEFAULTs, unknown
//! critical extensions and trailing bytes are all refused, and the client only ever sees
//! `malformedRequest`. What is echoed into a signed response (the CertID, the nonce extension)
//! is re-encoded from the decoded value, so a crafted request cannot make us sign non-DER.

use const_oid::ObjectIdentifier;
use der::asn1::{BitString, Null, OctetString, Uint};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::{Extension, Extensions};
use x509_cert::Certificate;

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
    /// The CertID re-encoded as DER from the decoded value, echoed in the response.
    pub der: Vec<u8>,
}

/// A parsed request.
#[derive(Debug, Clone)]
pub struct OcspRequest {
    /// The certificates asked about (at least one).
    pub certs: Vec<CertId>,
    /// The nonce extension (whole Extension DER, re-encoded) to echo, RFC 8954.
    pub nonce: Option<Vec<u8>>,
}

/// Why a request is malformed (logged, never sent: the client only sees `malformedRequest`).
/// The DER variant names what the decoder refused (`der::ErrorKind`: indefinite or
/// non-canonical length, non-canonical integer, trailing data, ...) and where.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Malformed {
    /// Not one DER OCSPRequest.
    #[error("malformed OCSP request: {0}")]
    Der(#[from] der::Error),
    /// DER, but not a request we accept.
    #[error("malformed OCSP request: {0}")]
    Invalid(&'static str),
}

/// id-sha1 (1.3.14.3.2.26).
pub const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// id-sha256 (2.16.840.1.101.3.4.2.1).
pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// id-pkix-ocsp-nonce (RFC 8954).
pub const ID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// Most certificates one request may ask about.
pub const MAX_CERTS: usize = 16;

/// `OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }`
#[derive(Debug, Sequence)]
struct OcspRequestAsn1 {
    tbs_request: TbsRequest,
    #[asn1(context_specific = "0", optional = "true")]
    optional_signature: Option<RequestSignature>,
}

/// `TBSRequest` (RFC 6960 §4.1.1). `version` is `[0] EXPLICIT Version DEFAULT v1`: DER forbids
/// encoding the default, so any version present is refused after decoding.
#[derive(Debug, Sequence)]
struct TbsRequest {
    #[asn1(context_specific = "0", optional = "true")]
    version: Option<u8>,
    #[asn1(context_specific = "1", optional = "true")]
    requestor_name: Option<GeneralName>,
    request_list: Vec<Request>,
    #[asn1(context_specific = "2", optional = "true")]
    request_extensions: Option<Extensions>,
}

/// `Signature` of a signed request; decoded (so it must be DER) but not checked: RFC 5019
/// responders need not, and we answer the same whoever asks.
#[derive(Debug, Sequence)]
struct RequestSignature {
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
    #[asn1(context_specific = "0", optional = "true")]
    certs: Option<Vec<Certificate>>,
}

/// `Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }`
#[derive(Debug, Sequence)]
struct Request {
    req_cert: CertIdAsn1,
    #[asn1(context_specific = "0", optional = "true")]
    single_request_extensions: Option<Extensions>,
}

/// `CertID` (RFC 6960 §4.1.1), shared with the response encoder. The serial is an unsigned
/// INTEGER: negative and non-minimal encodings are refused by `Uint`.
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct CertIdAsn1 {
    /// hashAlgorithm.
    pub hash_algorithm: AlgorithmIdentifierOwned,
    /// issuerNameHash.
    pub issuer_name_hash: OctetString,
    /// issuerKeyHash.
    pub issuer_key_hash: OctetString,
    /// serialNumber.
    pub serial_number: Uint,
}

/// Decodes a DER OCSPRequest.
pub fn parse(der: &[u8]) -> Result<OcspRequest, Malformed> {
    let request = decode_owned(der)?;
    let tbs = &request.tbs_request;
    if tbs.version.is_some() {
        // v1 is the DEFAULT and must be absent in DER; there is no other version.
        return Err(Malformed::Invalid("version present (DER omits the DEFAULT v1)"));
    }
    if tbs.request_list.is_empty() {
        return Err(Malformed::Invalid("empty requestList"));
    }
    if tbs.request_list.len() > MAX_CERTS {
        return Err(Malformed::Invalid("too many certificates in one request"));
    }
    let mut certs = Vec::with_capacity(tbs.request_list.len());
    for one in &tbs.request_list {
        if let Some(extensions) = &one.single_request_extensions {
            refuse_unknown_critical(extensions, &[])?;
        }
        certs.push(cert_id(&one.req_cert)?);
    }
    let nonce = match &tbs.request_extensions {
        Some(extensions) => {
            refuse_unknown_critical(extensions, &[ID_NONCE])?;
            nonce(extensions)?
        }
        None => None,
    };
    Ok(OcspRequest { certs, nonce })
}

/// Decodes strictly and checks that re-encoding gives the same bytes: `der` refuses BER lengths,
/// non-minimal integers and trailing data itself; the comparison also refuses what a decoder
/// may tolerate without it being DER (an explicit DEFAULT such as `critical FALSE`).
fn decode_owned(der: &[u8]) -> Result<OcspRequestAsn1, Malformed> {
    let request = OcspRequestAsn1::from_der(der)?;
    if request.to_der()? != der {
        return Err(Malformed::Invalid("not DER: re-encoding differs (an explicit DEFAULT value)"));
    }
    Ok(request)
}

fn cert_id(id: &CertIdAsn1) -> Result<CertId, Malformed> {
    let algorithm = &id.hash_algorithm;
    // The hash AlgorithmIdentifier's parameters are absent or NULL (RFC 5754 §2, RFC 3370).
    if algorithm.parameters.as_ref().is_some_and(|p| p.decode_as::<Null>().is_err()) {
        return Err(Malformed::Invalid("hashAlgorithm parameters are neither absent nor NULL"));
    }
    let (hash, expected) = if algorithm.oid == ID_SHA1 {
        (HashAlgorithm::Sha1, 20)
    } else if algorithm.oid == ID_SHA256 {
        (HashAlgorithm::Sha256, 32)
    } else {
        return Err(Malformed::Invalid("unsupported hash algorithm"));
    };
    let (name_hash, key_hash) = (id.issuer_name_hash.as_bytes(), id.issuer_key_hash.as_bytes());
    if name_hash.len() != expected || key_hash.len() != expected {
        return Err(Malformed::Invalid("bad CertID hash lengths"));
    }
    let serial = id.serial_number.as_bytes();
    if serial.len() > 20 {
        return Err(Malformed::Invalid("serial number longer than 20 octets"));
    }
    Ok(CertId {
        hash,
        name_hash: name_hash.to_vec(),
        key_hash: key_hash.to_vec(),
        serial: serial.to_vec(),
        der: id.to_der()?,
    })
}

/// Refuses a critical extension this responder does not understand (RFC 5280 §4.2 applied to
/// request extensions: ignoring one would answer a question the client did not ask).
fn refuse_unknown_critical(extensions: &[Extension], known: &[ObjectIdentifier]) -> Result<(), Malformed> {
    match extensions.iter().any(|e| e.critical && !known.contains(&e.extn_id)) {
        true => Err(Malformed::Invalid("unknown critical extension")),
        false => Ok(()),
    }
}

/// The nonce extension, re-encoded, when present (RFC 8954: 1 to 32 octets; openssl wraps the
/// nonce in a second OCTET STRING, hence up to 34 octets of extnValue).
fn nonce(extensions: &[Extension]) -> Result<Option<Vec<u8>>, Malformed> {
    let mut found = extensions.iter().filter(|e| e.extn_id == ID_NONCE);
    let Some(nonce) = found.next() else { return Ok(None) };
    if found.next().is_some() {
        return Err(Malformed::Invalid("nonce extension repeated"));
    }
    let value = nonce.extn_value.as_bytes();
    if value.is_empty() || value.len() > 34 {
        return Err(Malformed::Invalid("nonce length out of range"));
    }
    Ok(Some(nonce.to_der()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl ocsp -reqout -nonce` for one SHA-1 CertID, serial 0x1234.
    const OPENSSL: &str = "30683066303f303d303b300906052b0e03021a05000414bf7052c8b9c0f760c89123e099815eb2c0394226\
                           04148ee5f3c0516680407e828411e5bcbf3b5acbc08602021234a2233021301f06092b0601050507300102\
                           0412041028986ed4e3c55eb9fe1bb37cc24cf38f";

    fn openssl_request() -> Vec<u8> {
        hex::decode(OPENSSL.replace(' ', "")).unwrap()
    }

    #[test]
    fn garbage_truncation_and_trailing_bytes_are_malformed() {
        assert!(parse(b"").is_err());
        assert!(parse(b"\x30\x03\x30\x01").is_err());
        assert!(parse(&[0x30, 0x00]).is_err());
        assert!(parse(b"hello world").is_err());
        let mut trailing = openssl_request();
        trailing.push(0);
        assert!(
            matches!(parse(&trailing), Err(Malformed::Der(e)) if matches!(e.kind(), der::ErrorKind::TrailingData { .. }))
        );
    }

    #[test]
    fn a_der_request_parses_and_echoes_the_same_bytes() {
        let der = openssl_request();
        let request = parse(&der).unwrap();
        assert_eq!(request.certs.len(), 1);
        assert_eq!(request.certs[0].serial, vec![0x12, 0x34]);
        assert!(der.windows(request.certs[0].der.len()).any(|w| w == request.certs[0].der.as_slice()));
        assert!(der.ends_with(request.nonce.as_ref().unwrap()));
    }

    #[test]
    fn ber_forms_are_refused_with_what_is_wrong() {
        let der = openssl_request();
        // Non-minimal long-form length on the outer SEQUENCE.
        let long = [&[0x30, 0x81, der[1]][..], &der[2..]].concat();
        let e = parse(&long).unwrap_err();
        assert!(e.to_string().contains("length"), "{e}");
        // Indefinite length.
        let indefinite = [&[0x30, 0x80][..], &der[2..], &[0, 0]].concat();
        assert!(parse(&indefinite).is_err());
        // An explicit version v1 (DEFAULT): lengths grow by 5 on the two outer SEQUENCEs.
        let mut with_version = vec![0x30, der[1] + 5, 0x30, der[3] + 5, 0xa0, 0x03, 0x02, 0x01, 0x00];
        with_version.extend_from_slice(&der[4..]);
        assert_eq!(parse(&with_version).unwrap_err(), Malformed::Invalid("version present (DER omits the DEFAULT v1)"));
    }
}
