//! Building OCSP responses (RFC 6960 §4.2, RFC 5019 profile). Only the TBS part is built here;
//! signing goes through the HSM pool like every other signature.

use time::OffsetDateTime;

use crate::asn1::{self, tag};
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
    /// The CertID DER (echoed from the request, or built for pre-signing).
    pub cert_id: &'a [u8],
    /// The status.
    pub status: CertStatus,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
}

/// OCSPResponseStatus values we send without a body (RFC 6960 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// An unsigned OCSPResponse carrying only an error status.
pub fn error(status: ErrorStatus) -> Vec<u8> {
    asn1::sequence(&[&asn1::tlv(tag::ENUMERATED, &[status as u8])])
}

/// The CertID for pre-signed responses: SHA-1, as RFC 5019 clients send.
pub fn cert_id_sha1(name_hash: &[u8], key_hash: &[u8], serial: &[u8]) -> Vec<u8> {
    let algorithm = asn1::sequence(&[&asn1::oid(&[1, 3, 14, 3, 2, 26]), &asn1::tlv(tag::NULL, &[])]);
    asn1::sequence(&[
        &algorithm,
        &asn1::tlv(tag::OCTET_STRING, name_hash),
        &asn1::tlv(tag::OCTET_STRING, key_hash),
        &asn1::unsigned_integer(serial),
    ])
}

/// ResponseData: responder by key hash, producedAt, the single responses, and the nonce echo.
pub fn response_data(
    responder_key_hash: &[u8],
    produced_at: OffsetDateTime,
    singles: &[Single<'_>],
    nonce_extension: Option<&[u8]>,
) -> Vec<u8> {
    let responder = asn1::context(2, true, &asn1::tlv(tag::OCTET_STRING, responder_key_hash));
    let encoded: Vec<Vec<u8>> = singles.iter().map(single).collect();
    let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    let responses = asn1::sequence(&refs);
    let produced = asn1::generalized_time(produced_at);
    match nonce_extension {
        Some(nonce) => {
            asn1::sequence(&[&responder, &produced, &responses, &asn1::context(1, true, &asn1::sequence(&[nonce]))])
        }
        None => asn1::sequence(&[&responder, &produced, &responses]),
    }
}

fn single(s: &Single<'_>) -> Vec<u8> {
    let status = match s.status {
        CertStatus::Good => asn1::context(0, false, &[]),
        CertStatus::Unknown => asn1::context(2, false, &[]),
        CertStatus::Revoked { at, reason } => {
            let mut info = asn1::generalized_time(at);
            if let Some(code) = reason.code() {
                info.extend(asn1::context(0, true, &asn1::tlv(tag::ENUMERATED, &[code])));
            }
            asn1::context(1, true, &info)
        }
    };
    let next = asn1::context(0, true, &asn1::generalized_time(s.next_update));
    asn1::sequence(&[s.cert_id, &status, &asn1::generalized_time(s.this_update), &next])
}

/// The signed OCSPResponse: BasicOCSPResponse with the responder certificate, wrapped.
pub fn assemble(response_data: &[u8], algorithm_id: &[u8], signature: &[u8], responder_certificate: &[u8]) -> Vec<u8> {
    let bits = [&[0u8][..], signature].concat();
    let certs = asn1::context(0, true, &asn1::sequence(&[responder_certificate]));
    let basic = asn1::sequence(&[response_data, algorithm_id, &asn1::tlv(tag::BIT_STRING, &bits), &certs]);
    let bytes = asn1::sequence(&[&asn1::oid(&[1, 3, 6, 1, 5, 5, 7, 48, 1, 1]), &asn1::tlv(tag::OCTET_STRING, &basic)]);
    asn1::sequence(&[&asn1::tlv(tag::ENUMERATED, &[0]), &asn1::context(0, true, &bytes)])
}
