//! `TimeStampReq` (RFC 3161 §2.4.1), decoded strictly with `der`: BER length forms
//! (indefinite, non-minimal), non-minimal integers, an explicitly encoded `certReq FALSE`
//! (a DEFAULT) and trailing bytes are refused, and so is anything this TSA does not do
//! (another version, a hash it does not accept, an imprint of the wrong length, extensions).
//! Each refusal names the RFC 3161 failInfo bit the reply carries, chosen as OpenSSL's own TSA
//! (`ts_rsp_sign.c`) chooses them, so clients see the answer they know.
//!
//! What goes back into a signed token (the message imprint, the nonce) is re-encoded from the
//! decoded value, never copied from the request's bytes.

use const_oid::db::rfc5912::{ID_SHA_256, ID_SHA_384, ID_SHA_512};
use const_oid::ObjectIdentifier;
use der::asn1::{Int, Null, OctetString};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extensions;

/// The failInfo bits of `PKIFailureInfo` (RFC 3161 §2.4.2) this TSA sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    /// 0: an algorithm it does not accept (the hash of the imprint).
    BadAlg,
    /// 2: a request it does not support (another version).
    BadRequest,
    /// 5: not one DER TimeStampReq, or an imprint of the wrong length for its hash.
    BadDataFormat,
    /// 15: a `reqPolicy` other than the TSA's policy.
    UnacceptedPolicy,
    /// 16: request extensions (none are supported).
    UnacceptedExtension,
    /// 25: the TSA cannot answer now (no key, HSM or database away, its share busy).
    SystemFailure,
}

impl FailInfo {
    /// The bit's number in `PKIFailureInfo`.
    pub fn bit(self) -> usize {
        match self {
            FailInfo::BadAlg => 0,
            FailInfo::BadRequest => 2,
            FailInfo::BadDataFormat => 5,
            FailInfo::UnacceptedPolicy => 15,
            FailInfo::UnacceptedExtension => 16,
            FailInfo::SystemFailure => 25,
        }
    }
}

/// Why a query is refused: the failInfo sent and the text (sent as `statusString`; it names
/// only what was wrong with the query, never anything about the server).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct Refused {
    /// The failInfo bit of the reply.
    pub fail: FailInfo,
    /// What was wrong, for the client.
    pub text: String,
}

impl Refused {
    fn new(fail: FailInfo, text: impl Into<String>) -> Refused {
        Refused { fail, text: text.into() }
    }
}

/// The hash algorithms a message imprint may use. SHA-1 is not among them: its collisions are
/// practical, and a timestamp on a SHA-1 imprint vouches for every document of that hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImprintHash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl ImprintHash {
    fn of(oid: ObjectIdentifier) -> Option<ImprintHash> {
        [(ID_SHA_256, ImprintHash::Sha256), (ID_SHA_384, ImprintHash::Sha384), (ID_SHA_512, ImprintHash::Sha512)]
            .into_iter()
            .find_map(|(known, hash)| (known == oid).then_some(hash))
    }

    fn length(self) -> usize {
        match self {
            ImprintHash::Sha256 => 32,
            ImprintHash::Sha384 => 48,
            ImprintHash::Sha512 => 64,
        }
    }
}

/// `MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }`
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct MessageImprint {
    /// hashAlgorithm.
    pub hash_algorithm: AlgorithmIdentifierOwned,
    /// hashedMessage.
    pub hashed_message: OctetString,
}

fn default_false() -> bool {
    false
}

/// `TimeStampReq` (RFC 3161 §2.4.1). `version` is checked to be 1 after decoding.
#[derive(Debug, Sequence)]
struct TimeStampReqAsn1 {
    version: Int,
    message_imprint: MessageImprint,
    req_policy: Option<ObjectIdentifier>,
    nonce: Option<Int>,
    #[asn1(default = "default_false")]
    cert_req: bool,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<Extensions>,
}

/// Longest nonce accepted, octets (OpenSSL sends 8; RFC 3161 sets no bound, this TSA does).
pub const MAX_NONCE: usize = 32;

/// A query this TSA will answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeStampRequest {
    /// The imprint's hash.
    pub hash: ImprintHash,
    /// The imprint, re-encoded from the decoded value (copied into TSTInfo).
    pub imprint: MessageImprint,
    /// The policy the client asked for, if any.
    pub policy: Option<ObjectIdentifier>,
    /// The nonce to echo, re-encoded from the decoded value.
    pub nonce: Option<Int>,
    /// Whether the token must carry the TSA certificate (and its chain below the root).
    pub cert_req: bool,
}

/// Decodes a DER TimeStampReq and checks it is one this TSA answers.
pub fn parse(der: &[u8]) -> Result<TimeStampRequest, Refused> {
    let malformed = |e: der::Error| Refused::new(FailInfo::BadDataFormat, format!("not a DER TimeStampReq: {e}"));
    let request = TimeStampReqAsn1::from_der(der).map_err(malformed)?;
    // `der` refuses BER lengths, non-minimal integers and trailing bytes itself; only the same
    // bytes on re-encoding also refuse what it tolerates (an explicit `certReq FALSE`).
    if request.to_der().map_err(malformed)? != der {
        return Err(Refused::new(FailInfo::BadDataFormat, "not DER: re-encoding differs (an explicit DEFAULT value)"));
    }
    if request.version.as_bytes() != [1] {
        return Err(Refused::new(FailInfo::BadRequest, "version must be 1"));
    }
    if request.extensions.is_some() {
        return Err(Refused::new(FailInfo::UnacceptedExtension, "request extensions are not supported"));
    }
    let algorithm = &request.message_imprint.hash_algorithm;
    let hash = ImprintHash::of(algorithm.oid).ok_or_else(|| {
        Refused::new(
            FailInfo::BadAlg,
            format!("hash algorithm {} is not accepted (SHA-256, SHA-384, SHA-512)", algorithm.oid),
        )
    })?;
    // Hash AlgorithmIdentifiers carry no parameters or NULL (RFC 5754 §2).
    if algorithm.parameters.as_ref().is_some_and(|p| p.decode_as::<Null>().is_err()) {
        return Err(Refused::new(FailInfo::BadAlg, "hash algorithm parameters must be absent or NULL"));
    }
    if request.message_imprint.hashed_message.as_bytes().len() != hash.length() {
        return Err(Refused::new(FailInfo::BadDataFormat, "hashedMessage length does not match its hash algorithm"));
    }
    if let Some(nonce) = &request.nonce {
        if nonce.as_bytes().len() > MAX_NONCE {
            return Err(Refused::new(FailInfo::BadDataFormat, format!("nonce longer than {MAX_NONCE} octets")));
        }
    }
    Ok(TimeStampRequest {
        hash,
        imprint: request.message_imprint,
        policy: request.req_policy,
        nonce: request.nonce,
        cert_req: request.cert_req,
    })
}

/// The DER TimeStampReq for a SHA-256 digest, as `openssl ts -query` writes it: for callers
/// inside the process that timestamp a hash they hold (the benchmark, a future CSC
/// `signatures/timestamp`), so they go through exactly the path a network query takes.
pub fn sha256_query(digest: &[u8; 32], nonce: Option<u64>, cert_req: bool) -> Vec<u8> {
    // Invariant: every value below is well-formed and tiny, so encoding cannot fail.
    let int = |bytes: &[u8]| Int::new(bytes).expect("invariant: a valid INTEGER");
    let request = TimeStampReqAsn1 {
        version: int(&[1]),
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned { oid: ID_SHA_256, parameters: None },
            hashed_message: OctetString::new(digest.as_slice()).expect("invariant: 32 octets"),
        },
        req_policy: None,
        nonce: nonce.map(|n| int(&positive_integer(n))),
        cert_req,
        extensions: None,
    };
    crate::asn1::encode(&request)
}

/// The minimal DER INTEGER content of a non-negative number: no leading zero octets, except
/// one when the top bit would otherwise read as a sign.
fn positive_integer(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
    let minimal = &bytes[start..];
    if minimal[0] & 0x80 != 0 {
        [&[0u8][..], minimal].concat()
    } else {
        minimal.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl ts -query -digest <sha256 of "hello"> -sha256 -cert` (nonce 0x11223344...).
    fn query(cert_req: bool, nonce: Option<&[u8]>, hash: ObjectIdentifier, len: usize) -> Vec<u8> {
        let request = TimeStampReqAsn1 {
            version: Int::new(&[1]).unwrap(),
            message_imprint: MessageImprint {
                hash_algorithm: AlgorithmIdentifierOwned { oid: hash, parameters: None },
                hashed_message: OctetString::new(vec![7u8; len]).unwrap(),
            },
            req_policy: None,
            nonce: nonce.map(|n| Int::new(n).unwrap()),
            cert_req,
            extensions: None,
        };
        request.to_der().unwrap()
    }

    #[test]
    fn a_der_query_parses_and_keeps_nonce_and_cert_req() {
        let der = query(true, Some(&[0x11, 0x22, 0x33]), ID_SHA_256, 32);
        let request = parse(&der).unwrap();
        assert_eq!(request.hash, ImprintHash::Sha256);
        assert!(request.cert_req);
        assert_eq!(request.nonce.unwrap().as_bytes(), [0x11, 0x22, 0x33]);
        let plain = parse(&query(false, None, ID_SHA_512, 64)).unwrap();
        assert!(!plain.cert_req && plain.nonce.is_none());
    }

    #[test]
    fn ber_truncation_trailing_bytes_and_explicit_defaults_are_bad_data_format() {
        let der = query(false, Some(&[1, 2, 3, 4]), ID_SHA_256, 32);
        let mut trailing = der.clone();
        trailing.push(0);
        let long = [&[0x30, 0x81, der[1]][..], &der[2..]].concat();
        let indefinite = [&[0x30, 0x80][..], &der[2..], &[0, 0]].concat();
        // certReq FALSE written out: DER omits a DEFAULT.
        let mut explicit = der.clone();
        explicit.extend_from_slice(&[0x01, 0x01, 0x00]);
        explicit[1] += 3;
        for (what, bad) in
            [("trailing", trailing), ("long length", long), ("indefinite", indefinite), ("explicit FALSE", explicit)]
        {
            assert_eq!(parse(&bad).unwrap_err().fail, FailInfo::BadDataFormat, "{what}");
        }
        for len in 0..der.len() {
            assert_eq!(parse(&der[..len]).unwrap_err().fail, FailInfo::BadDataFormat, "truncated at {len}");
        }
    }

    #[test]
    fn unknown_hashes_wrong_lengths_versions_and_extensions_are_refused_by_kind() {
        let sha1 = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
        assert_eq!(parse(&query(false, None, sha1, 20)).unwrap_err().fail, FailInfo::BadAlg);
        let unknown = ObjectIdentifier::new_unwrap("1.2.3.4.5");
        assert_eq!(parse(&query(false, None, unknown, 32)).unwrap_err().fail, FailInfo::BadAlg);
        assert_eq!(parse(&query(false, None, ID_SHA_256, 31)).unwrap_err().fail, FailInfo::BadDataFormat);
        let mut v2 = query(false, None, ID_SHA_256, 32);
        assert_eq!(&v2[2..5], &[0x02, 0x01, 0x01]);
        v2[4] = 2;
        assert_eq!(parse(&v2).unwrap_err().fail, FailInfo::BadRequest);
        assert_eq!(parse(&query(false, Some(&[0x7f; 33]), ID_SHA_256, 32)).unwrap_err().fail, FailInfo::BadDataFormat);
    }

    #[test]
    fn in_process_queries_parse_with_any_nonce() {
        for nonce in [0, 1, 0x7f, 0x80, 0xff, 0x1234, u64::MAX, 1 << 63] {
            let request =
                parse(&sha256_query(&[3; 32], Some(nonce), true)).unwrap_or_else(|e| panic!("{nonce:#x}: {e}"));
            assert!(request.cert_req);
        }
        assert!(parse(&sha256_query(&[3; 32], None, false)).unwrap().nonce.is_none());
    }

    #[test]
    fn garbage_never_panics() {
        let der = query(true, Some(&[9; 8]), ID_SHA_384, 48);
        for i in 0..der.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut corrupt = der.clone();
                corrupt[i] ^= flip;
                let _ = parse(&corrupt);
            }
        }
        assert!(parse(b"").is_err());
        assert!(parse(b"hello").is_err());
    }
}
