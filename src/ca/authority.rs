//! The loaded CA hierarchy: each authority's certificate, HSM key label and an rcgen issuer
//! that captures the to-be-signed bytes instead of signing them (so the HSM is called once,
//! asynchronously, by [`sign_tbs`]). At start-up every key is proven to match its certificate.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use rcgen::{Issuer, PublicKeyData, SigningKey};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::CaError;
use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Header, SliceReader, Tag, Tagged};

use crate::asn1;
use crate::hsm::{HsmPool, KeyAlgorithm};
use crate::store::{AuthorityRecord, Store};

thread_local! {
    /// The bytes rcgen asked to sign on this thread; read right after the synchronous build.
    static CAPTURED: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// An rcgen signing key that records the TBS bytes instead of signing them.
#[derive(Debug, Clone)]
pub struct TbsCapture {
    /// The issuer's subjectPublicKey bits.
    key_bits: Vec<u8>,
    /// The issuer's algorithm.
    algorithm: KeyAlgorithm,
}

impl TbsCapture {
    /// A capture key for a public key (BIT STRING content) of this algorithm.
    pub fn new(key_bits: Vec<u8>, algorithm: KeyAlgorithm) -> Self {
        TbsCapture { key_bits, algorithm }
    }

    /// Runs a synchronous rcgen build and returns the TBS bytes it produced.
    pub fn capture<T>(build: impl FnOnce() -> Result<T, rcgen::Error>) -> Result<Vec<u8>, CaError> {
        CAPTURED.with(|c| c.borrow_mut().take());
        build().map_err(|e| CaError::Build(e.to_string()))?;
        CAPTURED.with(|c| c.borrow_mut().take()).ok_or_else(|| CaError::Build("rcgen produced nothing to sign".into()))
    }
}

impl PublicKeyData for TbsCapture {
    fn der_bytes(&self) -> &[u8] {
        &self.key_bits
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm.signature_algorithm()
    }
}

impl SigningKey for TbsCapture {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        CAPTURED.with(|c| *c.borrow_mut() = Some(msg.to_vec()));
        Ok(Vec::new())
    }
}

/// `Certificate` / `CertificateList` / `CertificationRequest`: the signed envelope around a TBS
/// this process built (RFC 5280 §4.1, §5.1; RFC 2986 §4.2).
#[derive(der::Sequence)]
struct Signed<'a> {
    tbs: AnyRef<'a>,
    signature_algorithm: AnyRef<'a>,
    signature: BitStringRef<'a>,
}

/// Signs a TBS structure (certificate, CRL) once in the HSM and assembles the signed DER:
/// `SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }`. The algorithm identifier is
/// copied from inside the TBS, so outer and inner always agree (RFC 5280 §4.1.1.2).
pub async fn sign_tbs(
    hsm: &HsmPool,
    label: &str,
    algorithm: KeyAlgorithm,
    tbs: &[u8],
    algorithm_id: &[u8],
) -> Result<Vec<u8>, CaError> {
    let signature = hsm.sign(label, algorithm, tbs).await?;
    let bad = |e: der::Error| CaError::Build(format!("cannot assemble the signed structure: {e}"));
    let signed = Signed {
        tbs: AnyRef::from_der(tbs).map_err(bad)?,
        signature_algorithm: AnyRef::from_der(algorithm_id).map_err(bad)?,
        signature: BitStringRef::from_bytes(&signature).map_err(bad)?,
    };
    Ok(asn1::encode(&signed))
}

/// The signature AlgorithmIdentifier inside a TBSCertificate (after version and serial),
/// read with `der` (strict lengths) without decoding the rest of the TBS.
pub fn tbs_certificate_algorithm(tbs: &[u8]) -> Result<Vec<u8>, CaError> {
    let bad = |e: der::Error| CaError::Build(format!("cannot read the signature algorithm of the TBS: {e}"));
    let mut reader = SliceReader::new(tbs).map_err(bad)?;
    let outer = Header::decode(&mut reader).map_err(bad)?;
    if outer.tag() != Tag::Sequence {
        return Err(bad(der::Error::from(der::ErrorKind::TagUnexpected {
            expected: Some(Tag::Sequence),
            actual: outer.tag(),
        })));
    }
    let first = AnyRef::decode(&mut reader).map_err(bad)?;
    if first.tag().is_context_specific() {
        AnyRef::decode(&mut reader).map_err(bad)?; // explicit version, then the serial
    }
    let algorithm = AnyRef::decode(&mut reader).map_err(bad)?;
    Ok(asn1::encode(&algorithm))
}

/// One CA, ready to sign.
pub struct Authority {
    /// The stored row.
    pub record: AuthorityRecord,
    /// Its key algorithm.
    pub algorithm: KeyAlgorithm,
    /// Subject key identifier (used as AKI of what it signs).
    pub key_id: Vec<u8>,
    /// rcgen issuer built from the certificate, with a capturing key.
    pub issuer: Issuer<'static, TbsCapture>,
}

impl Authority {
    /// Builds the runtime view of a stored authority.
    pub fn from_record(record: AuthorityRecord) -> Result<Self, CaError> {
        let algorithm = KeyAlgorithm::from_name(&record.key_algorithm).ok_or_else(|| {
            CaError::Hierarchy(format!("{}: unknown key algorithm {}", record.name, record.key_algorithm))
        })?;
        let (key_bits, key_id) = {
            let (_, cert) = X509Certificate::from_der(&record.certificate)
                .map_err(|e| CaError::Hierarchy(format!("{}: unreadable certificate: {e}", record.name)))?;
            let spki = &cert.tbs_certificate.subject_pki;
            // The SKI the certificate actually carries (an external root may have used SHA-1):
            // AKIs in what this CA signs must match it.
            let ski = cert.extensions().iter().find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
            (spki.subject_public_key.data.to_vec(), ski.unwrap_or_else(|| super::key_identifier(spki.raw)))
        };
        let issuer = Issuer::from_ca_cert_der(&record.certificate.clone().into(), TbsCapture::new(key_bits, algorithm))
            .map_err(|e| CaError::Hierarchy(format!("{}: {e}", record.name)))?;
        Ok(Authority { record, algorithm, key_id, issuer })
    }

    /// Proves the HSM private key matches the certificate: sign a fresh challenge in the HSM
    /// and verify it with the certificate's public key.
    pub async fn verify_key(&self, hsm: &HsmPool) -> Result<(), CaError> {
        let mut challenge = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut challenge);
        let signature = hsm.sign(&self.record.key_label, self.algorithm, &challenge).await?;
        let public =
            ring::signature::UnparsedPublicKey::new(self.algorithm.ring_verification(), self.issuer.key().der_bytes());
        public.verify(&challenge, &signature).map_err(|_| {
            CaError::Hierarchy(format!(
                "HSM key {:?} does not match the certificate of {} (fingerprint {})",
                self.record.key_label, self.record.name, self.record.fingerprint
            ))
        })
    }
}

/// Every authority by name.
#[derive(Clone, Default)]
pub struct Hierarchy {
    /// By name (`root`, `org`, `org-ocsp`, ...).
    pub authorities: BTreeMap<String, Arc<Authority>>,
}

impl Hierarchy {
    /// Loads the hierarchy from the store and checks every key against its certificate.
    /// The daemon refuses to start when this fails.
    pub async fn load(store: &Store, hsm: &HsmPool) -> Result<Hierarchy, CaError> {
        let records = store.authorities().await?;
        if records.is_empty() {
            return Err(CaError::Hierarchy("no CA hierarchy in the database: run `cloudca ceremony` first".into()));
        }
        let mut authorities = BTreeMap::new();
        for record in records {
            let authority = Authority::from_record(record)?;
            authority.verify_key(hsm).await?;
            authorities.insert(authority.record.name.clone(), Arc::new(authority));
        }
        Ok(Hierarchy { authorities })
    }

    /// One authority by name.
    pub fn get(&self, name: &str) -> Result<&Arc<Authority>, CaError> {
        self.authorities.get(name).ok_or_else(|| CaError::Hierarchy(format!("no authority named {name:?}")))
    }

    /// The chain above a CA, starting with the CA itself and ending with the root.
    pub fn chain(&self, name: &str) -> Result<Vec<Vec<u8>>, CaError> {
        let mut chain = Vec::new();
        let mut current = Some(name.to_string());
        while let Some(n) = current {
            let a = self.get(&n)?;
            chain.push(a.record.certificate.clone());
            current = a.record.issuer.clone().filter(|i| *i != n);
            if chain.len() > 8 {
                return Err(CaError::Hierarchy("issuer loop in the hierarchy".into()));
            }
        }
        Ok(chain)
    }
}
