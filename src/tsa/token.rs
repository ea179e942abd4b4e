//! What the timestamp authority sends (RFC 3161 §2.4.2, RFC 5816): `TimeStampResp`, and in it
//! the token: a CMS SignedData (`cms` types) encapsulating the DER `TSTInfo`, with one
//! SignerInfo whose signed attributes are contentType = id-ct-TSTInfo, messageDigest and
//! signingCertificateV2 (ESSCertIDv2 of the TSA certificate, built by `signing::cms`).
//!
//! Building a token is two steps around the HSM call, as for the detached CMS signatures:
//! [`Signer::attributes`] gives the DER SET the HSM signs, [`Signer::token`] assembles the
//! ContentInfo from it and the signature.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::rfc3161::ID_CT_TST_INFO;
use const_oid::db::rfc5911::{ID_CONTENT_TYPE, ID_MESSAGE_DIGEST, ID_SIGNED_DATA};
use const_oid::db::rfc5912::{ID_SHA_256, ID_SHA_384};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, BitString, Int, OctetString, SetOfVec, Uint};
use der::{Decode, DecodeValue, EncodeValue, FixedTag, Header, Length, Reader, Sequence, Tag, Writer};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attributes;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extensions;
use x509_cert::Certificate;

use super::request::{FailInfo, MessageImprint};
use crate::asn1;
use crate::hsm::KeyAlgorithm;
use crate::signing::cms::{attribute, signing_certificate_v2_attribute, CmsError};

fn default_false() -> bool {
    false
}

/// `genTime` with milliseconds: a GeneralizedTime `YYYYMMDDhhmmss[.fff]Z` whose fraction has no
/// trailing zeros and no dot when it is zero (RFC 3161 §2.4.2). `der`'s GeneralizedTime has
/// whole seconds only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenTime(String);

impl GenTime {
    /// The time, UTC, to the millisecond (truncated).
    pub fn new(at: time::OffsetDateTime) -> GenTime {
        let t = at.to_offset(time::UtcOffset::UTC);
        let mut text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            t.year().clamp(0, 9999),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let millis = t.millisecond();
        if millis > 0 {
            let fraction = format!("{millis:03}");
            text.push('.');
            text.push_str(fraction.trim_end_matches('0'));
        }
        text.push('Z');
        GenTime(text)
    }

    /// The text as encoded.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FixedTag for GenTime {
    const TAG: Tag = Tag::GeneralizedTime;
}

impl EncodeValue for GenTime {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.0.len())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(self.0.as_bytes())
    }
}

impl<'a> DecodeValue<'a> for GenTime {
    type Error = der::Error;

    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let bytes = reader.read_vec(header.length())?;
        let text = String::from_utf8(bytes).map_err(|_| der::Error::from(der::ErrorKind::Value { tag: Self::TAG }))?;
        let well_formed = text.len() >= 15
            && text.is_ascii()
            && text.ends_with('Z')
            && text[..14].bytes().all(|b| b.is_ascii_digit())
            && match &text[14..text.len() - 1] {
                "" => true,
                f => {
                    f.len() > 1 && f.starts_with('.') && f[1..].bytes().all(|b| b.is_ascii_digit()) && !f.ends_with('0')
                }
            };
        if !well_formed {
            return Err(der::ErrorKind::Value { tag: Self::TAG }.into());
        }
        Ok(GenTime(text))
    }
}

/// `Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL,
/// micros [1] INTEGER (1..999) OPTIONAL }` (implicit tags: the RFC 3161 module is IMPLICIT).
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct Accuracy {
    /// Whole seconds.
    pub seconds: Option<u32>,
    /// Milliseconds, 1 to 999.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub millis: Option<u16>,
    /// Microseconds, 1 to 999 (never sent).
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub micros: Option<u16>,
}

impl Accuracy {
    /// An accuracy of `millis` milliseconds (zero parts are left out, as DER and the RFC want).
    pub fn from_millis(millis: u32) -> Accuracy {
        let (seconds, rest) = (millis / 1000, (millis % 1000) as u16);
        Accuracy { seconds: (seconds > 0).then_some(seconds), millis: (rest > 0).then_some(rest), micros: None }
    }
}

/// `TSTInfo` (RFC 3161 §2.4.2); `tsa` and `extensions` are never sent.
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct TstInfo {
    /// 1.
    pub version: u8,
    /// The TSA policy (`[tsa] policy_oid`).
    pub policy: ObjectIdentifier,
    /// The request's imprint, re-encoded.
    pub message_imprint: MessageImprint,
    /// Unique among this TSA's tokens (from the database).
    pub serial_number: Uint,
    /// When the token was made.
    pub gen_time: GenTime,
    /// `[tsa] accuracy_millis`.
    pub accuracy: Option<Accuracy>,
    /// FALSE (never sent: DER omits the DEFAULT).
    #[asn1(default = "default_false")]
    pub ordering: bool,
    /// The request's nonce, re-encoded.
    pub nonce: Option<Int>,
    /// Not sent.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub tsa: Option<GeneralName>,
    /// Not sent.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Extensions>,
}

/// `PKIStatusInfo ::= SEQUENCE { status PKIStatus, statusString PKIFreeText OPTIONAL,
/// failInfo PKIFailureInfo OPTIONAL }`.
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct PkiStatusInfo {
    /// 0 granted, 2 rejection.
    pub status: u8,
    /// `SEQUENCE OF UTF8String`.
    pub status_string: Option<Vec<String>>,
    /// The named BIT STRING of failure bits.
    pub fail_info: Option<BitString>,
}

/// `TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }`.
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct TimeStampResp {
    /// The outcome.
    pub status: PkiStatusInfo,
    /// The token (granted only).
    pub time_stamp_token: Option<ContentInfo>,
}

/// A refusal as sent: status rejection, the text, one failInfo bit. Nothing is signed.
pub fn rejection(fail: FailInfo, text: &str) -> Vec<u8> {
    asn1::encode(&TimeStampResp {
        status: PkiStatusInfo {
            status: 2,
            status_string: Some(vec![text.to_string()]),
            fail_info: Some(fail_bits(fail.bit())),
        },
        time_stamp_token: None,
    })
}

/// A named BIT STRING with one bit set, trailing zero bits dropped (X.690 §11.2.2).
fn fail_bits(bit: usize) -> BitString {
    let mut bytes = vec![0u8; bit / 8 + 1];
    bytes[bit / 8] = 0x80 >> (bit % 8);
    // Invariant: at most 7 unused bits, and the last byte is non-zero.
    BitString::new((7 - bit % 8) as u8, bytes).expect("invariant: 0..=7 unused bits over a non-empty string")
}

/// The TSA key and certificate, ready to make tokens; built once at start-up.
#[derive(Debug, Clone)]
pub struct Signer {
    /// CKA_LABEL of the key.
    pub label: String,
    /// The key's algorithm.
    pub algorithm: KeyAlgorithm,
    /// sid: the TSA certificate's issuer and serial.
    sid: IssuerAndSerialNumber,
    /// signingCertificateV2 naming the TSA certificate.
    ess: x509_cert::attr::Attribute,
    /// The TSA certificate and the chain below the root (sent when `certReq` is set).
    certificates: CertificateSet,
    /// The digest of the TSTInfo and of the signed attributes.
    digest: AlgorithmIdentifierOwned,
    /// The SignerInfo signatureAlgorithm.
    signature_algorithm: AlgorithmIdentifierOwned,
}

impl Signer {
    /// A signer for the TSA certificate `tsa_der` (key `label`, `algorithm`), sending
    /// `chain_der` (the issuing CA up to, not including, the root) with it on request.
    pub fn new(
        label: String,
        algorithm: KeyAlgorithm,
        tsa_der: &[u8],
        chain_der: &[Vec<u8>],
    ) -> Result<Signer, CmsError> {
        let bad =
            |role: &str, e: der::Error| CmsError::MalformedCertificate { role: role.into(), reason: e.to_string() };
        let tsa = Certificate::from_der(tsa_der).map_err(|e| bad("TSA certificate", e))?;
        let ess = signing_certificate_v2_attribute(tsa_der, &tsa)?;
        let sid = IssuerAndSerialNumber {
            issuer: tsa.tbs_certificate().issuer().clone(),
            serial_number: tsa.tbs_certificate().serial_number().clone(),
        };
        let mut certificates = SetOfVec::new();
        let internal = |e: der::Error| bad("TSA chain", e);
        certificates.insert(CertificateChoices::Certificate(tsa)).map_err(internal)?;
        for der in chain_der {
            let cert = Certificate::from_der(der).map_err(|e| bad("TSA chain certificate", e))?;
            let choice = CertificateChoices::Certificate(cert);
            if !certificates.iter().any(|c| *c == choice) {
                certificates.insert(choice).map_err(internal)?;
            }
        }
        let digest_oid = match algorithm {
            KeyAlgorithm::EcdsaP384 => ID_SHA_384,
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::Rsa3072 => ID_SHA_256,
        };
        let signature_algorithm = AlgorithmIdentifierOwned::from_der(&algorithm.signature_algorithm_der())
            .map_err(|e| bad("signature algorithm", e))?;
        Ok(Signer {
            label,
            algorithm,
            sid,
            ess,
            certificates: CertificateSet(certificates),
            digest: AlgorithmIdentifierOwned { oid: digest_oid, parameters: None },
            signature_algorithm,
        })
    }

    /// The digest of `data` with the signer's digest algorithm (the one the key's signature
    /// algorithm hashes with: OpenSSL checks the signed attributes with `digestAlgorithm`).
    fn hash(&self, data: &[u8]) -> Vec<u8> {
        if self.digest.oid == ID_SHA_384 {
            sha2::Sha384::digest(data).to_vec()
        } else {
            sha2::Sha256::digest(data).to_vec()
        }
    }

    /// Step 1: the signed attributes over `tst_info` (DER TSTInfo), and their DER SET: the
    /// bytes the HSM signs.
    pub fn attributes(&self, tst_info: &[u8]) -> Result<(Attributes, Vec<u8>), CmsError> {
        let bad = |_: der::Error| CmsError::MalformedSignedAttributes("an attribute cannot be encoded");
        let digest = OctetString::new(self.hash(tst_info)).map_err(bad)?;
        let set: Attributes = SetOfVec::from_iter([
            attribute(ID_CONTENT_TYPE, &ID_CT_TST_INFO)?,
            attribute(ID_MESSAGE_DIGEST, &digest)?,
            self.ess.clone(),
        ])
        .map_err(bad)?;
        let der = asn1::encode(&set);
        Ok((set, der))
    }

    /// Step 2: the granted `TimeStampResp` carrying the token: SignedData version 3 (the
    /// eContent is not id-data, RFC 5652 §5.1) encapsulating `tst_info`, the certificates only
    /// when `cert_req` (RFC 3161 §2.4.1: absent otherwise), one SignerInfo.
    pub fn token(
        &self,
        tst_info: Vec<u8>,
        attributes: Attributes,
        signature: &[u8],
        cert_req: bool,
    ) -> Result<Vec<u8>, CmsError> {
        let internal = |_: der::Error| CmsError::MalformedSignedAttributes("the token cannot be encoded");
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(self.sid.clone()),
            digest_alg: self.digest.clone(),
            signed_attrs: Some(attributes),
            signature_algorithm: self.signature_algorithm.clone(),
            signature: OctetString::new(signature).map_err(internal)?,
            unsigned_attrs: None,
        };
        let econtent = Any::encode_from(&OctetString::new(tst_info).map_err(internal)?).map_err(internal)?;
        let signed = SignedData {
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::from_iter([self.digest.clone()]).map_err(internal)?,
            encap_content_info: EncapsulatedContentInfo { econtent_type: ID_CT_TST_INFO, econtent: Some(econtent) },
            certificates: cert_req.then(|| self.certificates.clone()),
            crls: None,
            signer_infos: SignerInfos(SetOfVec::from_iter([signer_info]).map_err(internal)?),
        };
        let content = Any::encode_from(&signed).map_err(internal)?;
        Ok(asn1::encode(&TimeStampResp {
            status: PkiStatusInfo { status: 0, status_string: None, fail_info: None },
            time_stamp_token: Some(ContentInfo { content_type: ID_SIGNED_DATA, content }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    #[test]
    fn gen_time_has_millis_without_trailing_zeros() {
        let at = |ms: u16| time::macros::datetime!(2026-12-06 23:59:58 UTC).replace_millisecond(ms).unwrap();
        assert_eq!(GenTime::new(at(0)).as_str(), "20261206235958Z");
        assert_eq!(GenTime::new(at(500)).as_str(), "20261206235958.5Z");
        assert_eq!(GenTime::new(at(120)).as_str(), "20261206235958.12Z");
        assert_eq!(GenTime::new(at(7)).as_str(), "20261206235958.007Z");
        let der = GenTime::new(at(120)).to_der().unwrap();
        assert_eq!(der[0], 0x18);
        assert_eq!(GenTime::from_der(&der).unwrap(), GenTime::new(at(120)));
    }

    #[test]
    fn accuracy_leaves_out_zero_parts() {
        assert_eq!(Accuracy::from_millis(1000).to_der().unwrap(), [0x30, 0x03, 0x02, 0x01, 0x01]);
        assert_eq!(Accuracy::from_millis(500).to_der().unwrap(), [0x30, 0x04, 0x80, 0x02, 0x01, 0xf4]);
        assert_eq!(Accuracy::from_millis(1500), Accuracy { seconds: Some(1), millis: Some(500), micros: None });
    }

    #[test]
    fn rejections_carry_the_named_bit_and_no_token() {
        // badAlg: bit 0 → 03 02 07 80; badDataFormat: bit 5 → 03 02 02 04; systemFailure: bit 25.
        assert_eq!(fail_bits(0).to_der().unwrap(), [0x03, 0x02, 0x07, 0x80]);
        assert_eq!(fail_bits(5).to_der().unwrap(), [0x03, 0x02, 0x02, 0x04]);
        assert_eq!(fail_bits(25).to_der().unwrap(), [0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40]);
        let reply = TimeStampResp::from_der(&rejection(FailInfo::BadAlg, "no")).unwrap();
        assert_eq!(reply.status.status, 2);
        assert!(reply.time_stamp_token.is_none());
    }
}
