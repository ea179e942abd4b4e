//! Reading a PKCS#10 request: parse strictly, verify its signature (proof of possession), and
//! describe the key so the profile can judge it. Nothing is trusted from the CSR but the key
//! and the subject values; extensions requested in it are ignored (the profile decides).

use x509_parser::prelude::{FromDer, X509CertificationRequest};
use x509_parser::public_key::PublicKey;

use super::RequestError;

/// The key in a request, as a profile sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKeyType {
    /// ECDSA on P-256.
    EcP256,
    /// ECDSA on P-384.
    EcP384,
    /// RSA with this modulus size in bits.
    Rsa(usize),
}

impl SubjectKeyType {
    /// The spelling used in profiles (`ecdsa-p256`, `rsa-2048`, ...).
    pub fn name(self) -> String {
        match self {
            SubjectKeyType::EcP256 => "ecdsa-p256".into(),
            SubjectKeyType::EcP384 => "ecdsa-p384".into(),
            SubjectKeyType::Rsa(bits) => format!("rsa-{bits}"),
        }
    }

    /// The rcgen algorithm whose SPKI encoding matches this key.
    pub(crate) fn spki_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            SubjectKeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            SubjectKeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            SubjectKeyType::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

/// A request whose key the requester has proven to hold: the subject attributes in order and
/// the public key. Only [`parse`] (CSR signature verified) and, for keys generated in our own
/// HSM, the custody code construct one, so issuance can never start from an unchecked key
/// (`non_exhaustive`: no struct literal outside this crate).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedRequest {
    /// (attribute short name or dotted OID, value) in the order the CSR lists them.
    pub subject: Vec<(String, String)>,
    /// The key type.
    pub key_type: SubjectKeyType,
    /// The SubjectPublicKeyInfo DER, verbatim from the CSR.
    pub spki: Vec<u8>,
    /// The subjectPublicKey BIT STRING content (what rcgen calls the key's DER bytes).
    pub public_key_bits: Vec<u8>,
    /// A renewal's old notAfter (unix seconds): the new certificate runs to it plus the
    /// profile's term, so renewing early keeps the days paid (handbook §3.1). None: from now.
    pub renews_until: Option<i64>,
}

/// Parses a CSR from PEM or DER and verifies its self-signature.
pub fn parse(input: &[u8]) -> Result<VerifiedRequest, RequestError> {
    let der = if input.starts_with(b"-----BEGIN") {
        let pem = pem_contents(input)?;
        std::borrow::Cow::Owned(pem)
    } else {
        std::borrow::Cow::Borrowed(input)
    };
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| RequestError::MalformedCsr(format!("not a DER PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(RequestError::MalformedCsr(format!("{} trailing bytes after the request", rest.len())));
    }
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    // Key type first: it names the problem precisely (ring refuses to verify with RSA-1024, which
    // would otherwise surface as a bad signature).
    let key_type = key_type(spki)?;
    csr.verify_signature().map_err(|_| RequestError::BadCsrSignature)?;
    Ok(VerifiedRequest {
        subject: subject_of(&info.subject)?,
        key_type,
        spki: spki.raw.to_vec(),
        public_key_bits: spki.subject_public_key.data.to_vec(),
        renews_until: None,
    })
}

impl VerifiedRequest {
    /// The subject and key of a certificate we issued: possession of its key was proven when
    /// it was first issued, so renewing with the same key needs no new proof.
    pub(crate) fn from_certificate(der: &[u8]) -> Result<Self, RequestError> {
        use x509_parser::prelude::X509Certificate;
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| RequestError::MalformedCsr(format!("stored certificate unreadable: {e}")))?;
        let tbs = &cert.tbs_certificate;
        let key_type = key_type(&tbs.subject_pki)?;
        Ok(VerifiedRequest {
            subject: subject_of(&tbs.subject)?,
            key_type,
            spki: tbs.subject_pki.raw.to_vec(),
            public_key_bits: tbs.subject_pki.subject_public_key.data.to_vec(),
            renews_until: None,
        })
    }
}

impl VerifiedRequest {
    /// A key generated inside our own HSM for a holder (cloud-key custody): possession is a
    /// fact of where the key was made, so no CSR is needed. The subject comes from the approval.
    pub(crate) fn from_custody_key(subject: Vec<(String, String)>, spki: &[u8]) -> Result<Self, RequestError> {
        use x509_parser::prelude::SubjectPublicKeyInfo;
        let (_, parsed) = SubjectPublicKeyInfo::from_der(spki)
            .map_err(|e| RequestError::MalformedCsr(format!("HSM public key unreadable: {e}")))?;
        Ok(VerifiedRequest {
            subject,
            key_type: key_type(&parsed)?,
            spki: spki.to_vec(),
            public_key_bits: parsed.subject_public_key.data.to_vec(),
            renews_until: None,
        })
    }
}

/// The (attribute, value) pairs of a name, in order; non-text values are refused.
fn subject_of(name: &x509_parser::x509::X509Name<'_>) -> Result<Vec<(String, String)>, RequestError> {
    name.iter_attributes()
        .map(|attr| {
            let name = attribute_name(&attr.attr_type().to_id_string());
            let value = attr.as_str().map_err(|_| RequestError::Subject(format!("{name} is not a text value")))?;
            Ok((name, value.to_string()))
        })
        .collect()
}

fn pem_contents(input: &[u8]) -> Result<Vec<u8>, RequestError> {
    let parsed = pem::parse(input).map_err(|e| RequestError::MalformedCsr(format!("bad PEM: {e}")))?;
    if parsed.tag() != "CERTIFICATE REQUEST" && parsed.tag() != "NEW CERTIFICATE REQUEST" {
        return Err(RequestError::MalformedCsr(format!("PEM block is {:?}, not a CERTIFICATE REQUEST", parsed.tag())));
    }
    Ok(parsed.into_contents())
}

fn key_type(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<SubjectKeyType, RequestError> {
    const P256: &str = "1.2.840.10045.3.1.7";
    const P384: &str = "1.3.132.0.34";
    match spki.parsed() {
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                P256 => Ok(SubjectKeyType::EcP256),
                P384 => Ok(SubjectKeyType::EcP384),
                other => Err(RequestError::KeyType(format!("EC curve {other} is not supported (use P-256 or P-384)"))),
            }
        }
        Ok(PublicKey::RSA(rsa)) => {
            if rsa.try_exponent().ok() != Some(65537) {
                return Err(RequestError::KeyType("RSA public exponent must be 65537".into()));
            }
            let bits = rsa.key_size();
            if bits < 2048 {
                return Err(RequestError::KeyType(format!("rsa-{bits} keys are not allowed (at least 2048 bits)")));
            }
            Ok(SubjectKeyType::Rsa(bits))
        }
        Ok(_) => Err(RequestError::KeyType(format!(
            "key algorithm {} is not supported (use ECDSA or RSA)",
            spki.algorithm.algorithm.to_id_string()
        ))),
        Err(e) => Err(RequestError::MalformedCsr(format!("unreadable public key: {e}"))),
    }
}

/// Short names for the attributes profiles talk about; anything else stays a dotted OID.
pub fn attribute_name(oid: &str) -> String {
    match oid {
        "2.5.4.6" => "C",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.3" => "CN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "1.2.840.113549.1.9.1" => "emailAddress",
        other => other,
    }
    .to_string()
}
