//! Building a CRL in one pass into one buffer, however many entries it has.
//!
//! The entries stream from the database straight into their final place in the buffer, after a
//! reserved gap; once their total length is known, the TBS header (which needs that length) is
//! written into the end of the gap, the TBS is hashed and signed in place, and the signature is
//! appended. The finished CRL is a slice of that same buffer: nothing is copied, so a CRL of N
//! bytes needs N bytes of memory (plus one row at a time from the database).

use bytes::Bytes;
use const_oid::db::rfc5280;
use der::asn1::{ContextSpecific, Ia5String, OctetString, Uint};
use der::{Encode, Header as DerHeader, Length, Tag, TagMode, TagNumber};
use futures_util::{Stream, TryStreamExt};
use time::OffsetDateTime;
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, CrlReason};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;

use crate::asn1;
use crate::status::RevocationReason;
use crate::store::EntryChunk;

/// One revoked certificate on a CRL.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Serial magnitude (big-endian).
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// Why (unspecified: no reasonCode).
    pub reason: RevocationReason,
    /// When the key is known or suspected to have been compromised, if given.
    pub invalidity_date: Option<OffsetDateTime>,
}

/// What goes around the entries.
pub struct Header<'a> {
    /// Signature AlgorithmIdentifier DER.
    pub algorithm_id: &'a [u8],
    /// The issuer's subject Name DER.
    pub issuer: &'a [u8],
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// The issuer's key identifier (AKI).
    pub key_id: &'a [u8],
    /// The CRL number.
    pub number: u64,
    /// For a partitioned CRL: the distribution point URL it covers (IDP, critical).
    pub partition_url: Option<&'a str>,
}

/// Room left before the entries for the TBS prefix and outer header (issuer names are well
/// under 1 KiB; checked).
const GAP: usize = 2048;

/// An unsigned CRL, laid out in its final buffer, waiting for its signature.
pub struct Unsigned {
    buffer: Vec<u8>,
    tbs_start: usize,
    algorithm_id: Vec<u8>,
    /// Number of entries written.
    pub entries: usize,
}

impl Unsigned {
    /// The exact bytes to sign.
    pub fn tbs(&self) -> &[u8] {
        &self.buffer[self.tbs_start..]
    }

    /// Appends the signature and returns the finished CRL (a view of the same buffer).
    pub fn finish(mut self, signature: &[u8]) -> Bytes {
        self.buffer.extend_from_slice(&self.algorithm_id);
        let bits = der::asn1::BitStringRef::from_bytes(signature).expect("invariant: a signature fits a BIT STRING");
        asn1::encode_into(&bits, &mut self.buffer);
        let header = sequence_header(self.buffer.len() - self.tbs_start);
        let start = self.tbs_start - header.len();
        self.buffer[start..self.tbs_start].copy_from_slice(&header);
        Bytes::from(self.buffer).slice(start..)
    }
}

/// The DER header (tag and length) of a SEQUENCE whose content is `len` bytes; the content
/// follows in the same buffer, which is why this one header is written without a value.
fn sequence_header(len: usize) -> Vec<u8> {
    let length = Length::try_from(len).expect("invariant: a CRL is below der's 256 MiB length limit");
    asn1::encode(&DerHeader::new(Tag::Sequence, length))
}

/// Streams chunks of DER entries (see [`encode_entry`]) into a CRL buffer and lays out the TBS
/// around them. `size_hint` is the number of entries expected (for the buffer's capacity).
pub async fn lay_out<S, E>(header: &Header<'_>, chunks: S, size_hint: usize) -> Result<Unsigned, E>
where
    S: Stream<Item = Result<EntryChunk, E>>,
{
    let mut buffer = Vec::with_capacity(GAP + size_hint * 56 + 512);
    buffer.resize(GAP, 0);
    let mut count = 0usize;
    futures_util::pin_mut!(chunks);
    while let Some(chunk) = chunks.try_next().await? {
        buffer.extend_from_slice(&chunk.der);
        count += chunk.entries;
    }
    let entries_len = buffer.len() - GAP;
    // crlExtensions [0] EXPLICIT Extensions
    let crl_extensions =
        ContextSpecific { tag_number: TagNumber(0), tag_mode: TagMode::Explicit, value: extensions(header) };
    asn1::encode_into(&crl_extensions, &mut buffer);
    let extensions_len = buffer.len() - GAP - entries_len;

    let mut prefix = Vec::with_capacity(512);
    asn1::encode_into(&1u8, &mut prefix); // v2
    prefix.extend_from_slice(header.algorithm_id);
    prefix.extend_from_slice(header.issuer);
    asn1::encode_into(&asn1::x509_time(header.this_update), &mut prefix);
    asn1::encode_into(&asn1::x509_time(header.next_update), &mut prefix);
    if entries_len > 0 {
        // revokedCertificates is omitted altogether when empty (RFC 5280 §5.1.2.6).
        prefix.extend_from_slice(&sequence_header(entries_len));
    }
    let tbs_header = sequence_header(prefix.len() + entries_len + extensions_len);
    let prefix_len = tbs_header.len() + prefix.len();
    assert!(prefix_len + 8 <= GAP, "issuer name too long for the CRL gap");
    let tbs_start = GAP - prefix_len;
    buffer[tbs_start..tbs_start + tbs_header.len()].copy_from_slice(&tbs_header);
    buffer[tbs_start + tbs_header.len()..GAP].copy_from_slice(&prefix);
    Ok(Unsigned { buffer, tbs_start, algorithm_id: header.algorithm_id.to_vec(), entries: count })
}

/// The DER of one revokedCertificates entry (`RevokedCert`), encoded once when the certificate
/// is revoked and stored, so a CRL build only copies bytes.
pub fn encode_entry(e: &Entry) -> Vec<u8> {
    let mut extensions = Vec::new();
    if let Some(reason) = crl_reason(e.reason) {
        extensions.push(extension(rfc5280::ID_CE_CRL_REASONS, false, &reason));
    }
    if let Some(at) = e.invalidity_date {
        // id-ce-invalidityDate (RFC 5280 §5.3.2): always GeneralizedTime.
        extensions.push(extension(rfc5280::ID_CE_INVALIDITY_DATE, false, &asn1::generalized_time(at)));
    }
    let entry: RevokedCert = RevokedCert {
        serial_number: SerialNumber::new(&e.serial).expect("invariant: stored serials are at most 20 octets"),
        revocation_date: asn1::x509_time(e.revoked_at),
        crl_entry_extensions: (!extensions.is_empty()).then_some(extensions),
    };
    asn1::encode(&entry)
}

/// The CRLReason of a revocation reason, none for `unspecified` (RFC 5280 §5.3.1: the
/// reasonCode extension is left out rather than carrying unspecified).
pub fn crl_reason(reason: RevocationReason) -> Option<CrlReason> {
    reason.code().and_then(|code| CrlReason::try_from(u32::from(code)).ok())
}

fn extension(oid: const_oid::ObjectIdentifier, critical: bool, value: &impl Encode) -> Extension {
    let extn_value = OctetString::new(asn1::encode(value)).expect("invariant: an extension value is small");
    Extension { extn_id: oid, critical, extn_value }
}

/// crlExtensions: AKI, CRL number, and IDP (critical) for partitions.
fn extensions(h: &Header<'_>) -> Vec<Extension> {
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(h.key_id).expect("invariant: a key id is small")),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let number = CrlNumber(Uint::new(&h.number.to_be_bytes()).expect("invariant: a u64 is a valid INTEGER"));
    let mut list = vec![
        extension(rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER, false, &aki),
        extension(rfc5280::ID_CE_CRL_NUMBER, false, &number),
    ];
    if let Some(url) = h.partition_url {
        // Invariant: publication.base_url is validated as ASCII (an IA5String) in config.
        let uri = Ia5String::new(url).expect("invariant: publication URLs are ASCII (validated in config)");
        let idp = IssuingDistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![GeneralName::UniformResourceIdentifier(
                uri,
            )])),
            only_contains_user_certs: false,
            only_contains_ca_certs: false,
            only_some_reasons: None,
            indirect_crl: false,
            only_contains_attribute_certs: false,
        };
        list.push(extension(rfc5280::ID_CE_ISSUING_DISTRIBUTION_POINT, true, &idp));
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout decodes as a strict DER TBSCertList whose crlExtensions carry the RFC 5280
    /// OIDs (x509-cert 0.3.0 gives `IssuingDistributionPoint` the SIA OID: not used).
    #[test]
    fn the_laid_out_tbs_is_strict_der_with_the_right_extension_oids() {
        use der::Decode;
        let at = time::macros::datetime!(2026-11-24 1:02:03 UTC);
        let entry = encode_entry(&Entry {
            serial: vec![1, 2],
            revoked_at: at,
            reason: RevocationReason::Superseded,
            invalidity_date: None,
        });
        let algorithm_id = crate::hsm::KeyAlgorithm::EcdsaP256.signature_algorithm_der();
        let issuer = hex::decode("300f310d300b06035504030c0454657374").unwrap();
        let header = Header {
            algorithm_id: &algorithm_id,
            issuer: &issuer,
            this_update: at,
            next_update: at + time::Duration::days(7),
            key_id: &[7; 20],
            number: 300,
            partition_url: Some("http://ca.test/crl/org-1.crl"),
        };
        let stream =
            futures_util::stream::iter([Ok::<_, std::convert::Infallible>(EntryChunk { entries: 1, der: entry })]);
        let unsigned = futures_util::FutureExt::now_or_never(lay_out(&header, stream, 1)).unwrap().unwrap();
        let tbs = x509_cert::crl::TbsCertList::<x509_cert::certificate::Rfc5280>::from_der(unsigned.tbs()).unwrap();
        assert_eq!(tbs.revoked_certificates.unwrap().len(), 1);
        let oids: Vec<_> = tbs.crl_extensions.unwrap().iter().map(|e| (e.extn_id, e.critical)).collect();
        assert_eq!(
            oids,
            [
                (rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER, false),
                (rfc5280::ID_CE_CRL_NUMBER, false),
                (rfc5280::ID_CE_ISSUING_DISTRIBUTION_POINT, true)
            ]
        );
    }

    #[test]
    fn entries_decode_as_strict_der_revoked_certs() {
        use der::Decode;
        let at = time::macros::datetime!(2026-11-24 1:02:03 UTC);
        let entry = Entry {
            serial: vec![0x80, 1, 2],
            revoked_at: at,
            reason: RevocationReason::KeyCompromise,
            invalidity_date: Some(at),
        };
        let der = encode_entry(&entry);
        let decoded = RevokedCert::<x509_cert::certificate::Rfc5280>::from_der(&der).unwrap();
        assert_eq!(decoded.serial_number.as_bytes(), &[0x00, 0x80, 1, 2]);
        assert_eq!(decoded.crl_entry_extensions.unwrap().len(), 2);
        let plain = encode_entry(&Entry { reason: RevocationReason::Unspecified, invalidity_date: None, ..entry });
        assert!(RevokedCert::<x509_cert::certificate::Rfc5280>::from_der(&plain)
            .unwrap()
            .crl_entry_extensions
            .is_none());
    }
}
