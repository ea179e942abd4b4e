//! Building OCSP responses (RFC 6960 §4.2, RFC 5019 profile) as `der` types. Only the TBS part
//! (ResponseData) is built here; signing goes through the HSM pool like every other signature,
//! then [`assemble`] wraps TBS, algorithm and signature (build, sign, assemble).

use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, BitString, GeneralizedTime, Null, OctetString};
use der::{Choice, Decode, Enumerated, Sequence};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;

use super::request::{CertIdAsn1, ID_SHA1};
use crate::asn1;
use crate::status::RevocationReason;

/// What the responder says about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued by us and not revoked.
    Good,
    /// Revoked at this time, for this reason.
    Revoked {
        /// When.
        at: OffsetDateTime,
        /// Why.
        reason: RevocationReason,
    },
    /// Not known to us.
    Unknown,
}

/// One SingleResponse.
#[derive(Debug, Clone)]
pub struct Single<'a> {
    /// The CertID DER (re-encoded from the request, or built by [`cert_id_sha1`]).
    pub cert_id: &'a [u8],
    /// The status.
    pub status: CertStatus,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
}

/// OCSPResponseStatus values we send without a body (RFC 6960 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enumerated)]
#[repr(u8)]
pub enum ErrorStatus {
    /// The request did not parse.
    MalformedRequest = 1,
    /// Something broke on our side.
    InternalError = 2,
    /// Try again later (HSM unavailable and nothing pre-signed).
    TryLater = 3,
    /// We are not authoritative for that issuer.
    Unauthorized = 6,
}

/// id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1).
const ID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");

/// `OCSPResponse` carrying only an error status (no responseBytes).
#[derive(Sequence)]
struct ErrorResponse {
    response_status: ErrorStatus,
}

/// The one OCSPResponseStatus that carries responseBytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enumerated)]
#[repr(u8)]
enum SuccessfulStatus {
    Successful = 0,
}

/// `OCSPResponse` with `successful` (0) and its responseBytes.
#[derive(Sequence)]
struct SuccessfulResponse<'a> {
    response_status: SuccessfulStatus,
    #[asn1(context_specific = "0")]
    response_bytes: ResponseBytes<'a>,
}

/// `ResponseBytes ::= SEQUENCE { responseType OID, response OCTET STRING }`
#[derive(Sequence)]
struct ResponseBytes<'a> {
    response_type: ObjectIdentifier,
    response: &'a der::asn1::OctetStringRef,
}

/// `BasicOCSPResponse` with the responder certificate.
#[derive(Sequence)]
struct BasicResponse<'a> {
    tbs_response_data: AnyRef<'a>,
    signature_algorithm: AnyRef<'a>,
    signature: BitString,
    #[asn1(context_specific = "0")]
    certs: Vec<AnyRef<'a>>,
}

/// `ResponseData` (version v1 omitted: DEFAULT), responder by key hash.
#[derive(Sequence)]
struct ResponseData<'a> {
    responder_id: ResponderId,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponse<'a>>,
    #[asn1(context_specific = "1", optional = "true")]
    response_extensions: Option<Vec<AnyRef<'a>>>,
}

/// `ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash }`; we always answer byKey.
#[derive(Choice)]
enum ResponderId {
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

/// `SingleResponse` (singleExtensions never sent).
#[derive(Sequence)]
struct SingleResponse<'a> {
    cert_id: AnyRef<'a>,
    cert_status: CertStatusAsn1,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0")]
    next_update: GeneralizedTime,
}

/// `CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT NULL }`
#[derive(Choice)]
enum CertStatusAsn1 {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

/// `RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }`
#[derive(Sequence)]
struct RevokedInfo {
    revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", optional = "true")]
    revocation_reason: Option<x509_cert::ext::pkix::CrlReason>,
}

/// An unsigned OCSPResponse carrying only an error status.
pub fn error(status: ErrorStatus) -> Vec<u8> {
    asn1::encode(&ErrorResponse { response_status: status })
}

/// The CertID for pre-signed responses: SHA-1 with NULL parameters, as RFC 5019 clients send.
pub fn cert_id_sha1(name_hash: &[u8], key_hash: &[u8], serial: &[u8]) -> Vec<u8> {
    let octets = |b: &[u8]| OctetString::new(b).expect("invariant: a hash is far below der's length limit");
    let id = CertIdAsn1 {
        hash_algorithm: AlgorithmIdentifierOwned { oid: ID_SHA1, parameters: Some(der::asn1::Any::null()) },
        issuer_name_hash: octets(name_hash),
        issuer_key_hash: octets(key_hash),
        serial_number: der::asn1::Uint::new(serial).expect("invariant: a stored serial is at most 20 octets"),
    };
    asn1::encode(&id)
}

/// ResponseData: responder by key hash, producedAt, the single responses, and the nonce echo
/// (an Extension DER re-encoded by the request decoder).
pub fn response_data(
    responder_key_hash: &[u8],
    produced_at: OffsetDateTime,
    singles: &[Single<'_>],
    nonce_extension: Option<&[u8]>,
) -> Vec<u8> {
    let data = ResponseData {
        responder_id: ResponderId::ByKey(
            OctetString::new(responder_key_hash).expect("invariant: a key hash is far below der's length limit"),
        ),
        produced_at: asn1::generalized_time(produced_at),
        responses: singles.iter().map(single).collect(),
        response_extensions: nonce_extension.map(|n| vec![der_value(n, "nonce extension")]),
    };
    asn1::encode(&data)
}

/// A DER value this process encoded itself (CertID, nonce extension, certificate), carried as is.
fn der_value<'a>(der: &'a [u8], what: &str) -> AnyRef<'a> {
    AnyRef::from_der(der).unwrap_or_else(|e| panic!("invariant: the {what} was DER-encoded by this process: {e}"))
}

fn single<'a>(s: &Single<'a>) -> SingleResponse<'a> {
    let cert_status = match s.status {
        CertStatus::Good => CertStatusAsn1::Good(Null),
        CertStatus::Unknown => CertStatusAsn1::Unknown(Null),
        CertStatus::Revoked { at, reason } => CertStatusAsn1::Revoked(RevokedInfo {
            revocation_time: asn1::generalized_time(at),
            revocation_reason: crate::status::crl::crl_reason(reason),
        }),
    };
    SingleResponse {
        cert_id: der_value(s.cert_id, "CertID"),
        cert_status,
        this_update: asn1::generalized_time(s.this_update),
        next_update: asn1::generalized_time(s.next_update),
    }
}

/// The signed OCSPResponse: BasicOCSPResponse with the responder certificate, wrapped.
pub fn assemble(response_data: &[u8], algorithm_id: &[u8], signature: &[u8], responder_certificate: &[u8]) -> Vec<u8> {
    let basic = BasicResponse {
        tbs_response_data: der_value(response_data, "ResponseData"),
        signature_algorithm: der_value(algorithm_id, "signature AlgorithmIdentifier"),
        signature: BitString::from_bytes(signature).expect("invariant: a signature is far below der's length limit"),
        certs: vec![der_value(responder_certificate, "responder certificate")],
    };
    let basic = asn1::encode(&basic);
    let response = SuccessfulResponse {
        response_status: SuccessfulStatus::Successful,
        response_bytes: ResponseBytes {
            response_type: ID_OCSP_BASIC,
            response: der::asn1::OctetStringRef::new(&basic).expect("invariant: far below der's length limit"),
        },
    };
    asn1::encode(&response)
}
