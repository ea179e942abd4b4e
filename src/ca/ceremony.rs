//! The key ceremony: creates the CA hierarchy the config describes, every key generated inside
//! the HSM (sensitive, never extractable), and refuses to run over existing keys or records.
//!
//! Self-signed mode: root → one issuing CA per `ca.issuing` entry → one delegated OCSP responder
//! per issuing CA; the first issuing CA also certifies the audit key and the timestamp
//! authority's key. External mode: issuing CA keys and CSRs for the external root to sign; then
//! `ceremony import` loads the signed certificates and creates the OCSP responders (and the
//! audit and TSA keys once).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose, SerialNumber,
};
use sha2::Digest;

use super::authority::{sign_tbs, tbs_certificate_algorithm, Authority, TbsCapture};
use super::{key_identifier, serial, CaError};
use crate::clock::Clock;
use crate::config::{Config, IssuingConfig, RootMode};
use crate::hsm::{HsmPool, KeyAlgorithm};
use crate::store::{AuditRecord, AuthorityRecord, Store, Write};

/// What the ceremony made, for the operator's record.
#[derive(Debug, Clone)]
pub struct CeremonyOutcome {
    /// (authority name, SHA-256 fingerprint of its certificate) for each certificate made.
    pub fingerprints: Vec<(String, String)>,
    /// CSR files written (external-root mode).
    pub csr_files: Vec<std::path::PathBuf>,
}

/// The HSM label of a CA key.
pub fn key_label(name: &str) -> String {
    format!("cloudca-{name}")
}

/// Everything the ceremony steps share.
struct Ceremony<'a> {
    config: &'a Config,
    hsm: &'a HsmPool,
    store: &'a Store,
    clock: &'a dyn Clock,
    algorithm: KeyAlgorithm,
}

/// Runs the ceremony described by the config.
pub async fn run(config: &Config, hsm: &HsmPool, store: &Store, clock: &dyn Clock) -> Result<CeremonyOutcome, CaError> {
    let c = Ceremony { config, hsm, store, clock, algorithm: config.ca.key_algorithm };
    c.refuse_existing().await?;
    let mut outcome = CeremonyOutcome { fingerprints: Vec::new(), csr_files: Vec::new() };
    match config.ca.root.mode {
        RootMode::SelfSigned => {
            let root = c.make_root().await?;
            outcome.fingerprints.push((root.record.name.clone(), root.record.fingerprint.clone()));
            for (i, issuing) in config.ca.issuing.iter().enumerate() {
                let ca = c.make_issuing(&root, issuing).await?;
                outcome.fingerprints.push((ca.record.name.clone(), ca.record.fingerprint.clone()));
                let ocsp = c.make_ocsp_responder(&ca).await?;
                outcome.fingerprints.push((ocsp.name.clone(), ocsp.fingerprint.clone()));
                if i == 0 {
                    let audit = c.make_audit_key(&ca).await?;
                    outcome.fingerprints.push((audit.name.clone(), audit.fingerprint.clone()));
                    let tsa = c.make_tsa_key(&ca).await?;
                    outcome.fingerprints.push((tsa.name.clone(), tsa.fingerprint.clone()));
                }
            }
        }
        RootMode::External => {
            for issuing in &config.ca.issuing {
                outcome.csr_files.push(c.make_issuing_csr(issuing).await?);
            }
        }
    }
    let operators = c.make_operators_ca().await?;
    outcome.fingerprints.push((operators.record.name.clone(), operators.record.fingerprint.clone()));
    for label in hsm.ensure_custody_keys().await? {
        outcome.fingerprints.push((label.to_string(), "secret key (no certificate)".into()));
    }
    c.audit(
        "ceremony.completed",
        serde_json::json!({ "fingerprints": outcome.fingerprints, "csrs": outcome.csr_files }),
    )
    .await?;
    Ok(outcome)
}

/// Adds the operator CA to an instance whose ceremony predates it (the upgrade path); refuses
/// when one exists.
pub async fn operators(
    config: &Config,
    hsm: &HsmPool,
    store: &Store,
    clock: &dyn Clock,
) -> Result<CeremonyOutcome, CaError> {
    let c = Ceremony { config, hsm, store, clock, algorithm: config.ca.key_algorithm };
    if store.authorities().await?.iter().any(|a| a.role == OPERATORS) {
        return Err(CaError::Hierarchy("the operator CA exists already; refusing to replace it".into()));
    }
    let ca = c.make_operators_ca().await?;
    let fingerprints = vec![(ca.record.name.clone(), ca.record.fingerprint.clone())];
    c.audit("ceremony.operators", serde_json::json!({ "fingerprints": fingerprints })).await?;
    Ok(CeremonyOutcome { fingerprints, csr_files: Vec::new() })
}

/// Adds the cloud-key custody keys (KEK and PIN pepper) to an instance whose ceremony predates
/// them; does nothing for keys that exist. Run it once, on one host: two KEKs under one label
/// would make blobs unreadable.
pub async fn custody(hsm: &HsmPool, store: &Store, clock: &dyn Clock) -> Result<CeremonyOutcome, CaError> {
    let made = hsm.ensure_custody_keys().await?;
    let fingerprints: Vec<(String, String)> =
        made.iter().map(|l| (l.to_string(), "secret key (no certificate)".to_string())).collect();
    let writer = store.writer(1);
    let record = AuditRecord::new(clock, "ceremony.custody", "ceremony", None, serde_json::json!({ "created": made }));
    writer.write(Write::Audit(record)).await?;
    Ok(CeremonyOutcome { fingerprints, csr_files: Vec::new() })
}

/// Adds the timestamp authority's key and certificate (from the first issuing CA) to an
/// instance whose ceremony predates it; refuses when one exists, in the database or the HSM.
pub async fn tsa(config: &Config, hsm: &HsmPool, store: &Store, clock: &dyn Clock) -> Result<CeremonyOutcome, CaError> {
    let c = Ceremony { config, hsm, store, clock, algorithm: config.ca.key_algorithm };
    let authorities = store.authorities().await?;
    if authorities.iter().any(|a| a.role == crate::tsa::ROLE) {
        return Err(CaError::Hierarchy("the timestamp authority key exists already; refusing to replace it".into()));
    }
    c.refuse_labels(vec![key_label(crate::tsa::ROLE)]).await?;
    let first = config.ca.issuing.first().map(|i| i.name.as_str()).unwrap_or_default();
    let record = authorities
        .into_iter()
        .find(|a| a.name == first && a.role == "issuing")
        .ok_or_else(|| CaError::Hierarchy(format!("no issuing CA {first:?} in the database to certify the TSA")))?;
    let ca = Authority::from_record(record)?;
    ca.verify_key(hsm).await?;
    let made = c.make_tsa_key(&Arc::new(ca)).await?;
    let fingerprints = vec![(made.name.clone(), made.fingerprint.clone())];
    c.audit("ceremony.tsa", serde_json::json!({ "fingerprints": fingerprints })).await?;
    Ok(CeremonyOutcome { fingerprints, csr_files: Vec::new() })
}

/// Name and role of the operator CA: a separate trust anchor for back-office client
/// certificates, never part of the public hierarchy.
pub const OPERATORS: &str = "operators";

/// External-root mode, second half: loads the issuing CA certificate (and the external root)
/// after checking it certifies the key the ceremony generated, then makes its OCSP responder.
pub async fn import(
    config: &Config,
    hsm: &HsmPool,
    store: &Store,
    clock: &dyn Clock,
    ca_name: &str,
    cert_der: Vec<u8>,
    root_der: Vec<u8>,
) -> Result<CeremonyOutcome, CaError> {
    let c = Ceremony { config, hsm, store, clock, algorithm: config.ca.key_algorithm };
    if !config.ca.issuing.iter().any(|i| i.name == ca_name) {
        return Err(CaError::Hierarchy(format!("no issuing CA named {ca_name:?} in the config")));
    }
    let mut outcome = CeremonyOutcome { fingerprints: Vec::new(), csr_files: Vec::new() };
    if !store.authorities().await?.iter().any(|a| a.role == "root") {
        let root = c.record("root", "root", None, String::new(), root_der)?;
        store.insert_authority(&root).await?;
        outcome.fingerprints.push((root.name.clone(), root.fingerprint.clone()));
    }
    let record = c.record(ca_name, "issuing", Some("root"), key_label(ca_name), cert_der)?;
    let ca = Authority::from_record(record.clone())?;
    ca.verify_key(hsm).await?;
    store.insert_authority(&record).await?;
    outcome.fingerprints.push((record.name.clone(), record.fingerprint.clone()));
    let ca = Arc::new(ca);
    let ocsp = c.make_ocsp_responder(&ca).await?;
    outcome.fingerprints.push((ocsp.name.clone(), ocsp.fingerprint.clone()));
    if !store.authorities().await?.iter().any(|a| a.role == "audit") {
        let audit = c.make_audit_key(&ca).await?;
        outcome.fingerprints.push((audit.name.clone(), audit.fingerprint.clone()));
    }
    if !store.authorities().await?.iter().any(|a| a.role == crate::tsa::ROLE) {
        let tsa = c.make_tsa_key(&ca).await?;
        outcome.fingerprints.push((tsa.name.clone(), tsa.fingerprint.clone()));
    }
    c.audit("ceremony.imported", serde_json::json!({ "fingerprints": outcome.fingerprints })).await?;
    Ok(outcome)
}

impl Ceremony<'_> {
    async fn refuse_existing(&self) -> Result<(), CaError> {
        if !self.store.authorities().await?.is_empty() {
            return Err(CaError::Hierarchy(
                "the database already holds a CA hierarchy; refusing to overwrite it".into(),
            ));
        }
        let mut labels = vec![key_label("root"), key_label("audit"), key_label(crate::tsa::ROLE), key_label(OPERATORS)];
        for i in &self.config.ca.issuing {
            labels.push(key_label(&i.name));
            labels.push(key_label(&format!("{}-ocsp", i.name)));
        }
        self.refuse_labels(labels).await
    }

    /// Refuses when any of these key labels exists in the HSM already.
    async fn refuse_labels(&self, labels: Vec<String>) -> Result<(), CaError> {
        for label in labels {
            let hsm = self.hsm.clone();
            let l = label.clone();
            let exists = tokio::task::spawn_blocking(move || hsm.key_exists_blocking(&l))
                .await
                .map_err(|e| CaError::Build(e.to_string()))??;
            if exists {
                return Err(crate::hsm::HsmError::KeyExists(label).into());
            }
        }
        Ok(())
    }

    async fn generate(&self, name: &str) -> Result<(String, Vec<u8>), CaError> {
        let (hsm, label, algorithm) = (self.hsm.clone(), key_label(name), self.algorithm);
        let l = label.clone();
        let spki = tokio::task::spawn_blocking(move || hsm.generate_key_pair_blocking(&l, algorithm))
            .await
            .map_err(|e| CaError::Build(e.to_string()))??;
        Ok((label, spki))
    }

    fn name(&self, common_name: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        if let Ok(c) = rcgen::string::PrintableString::try_from("CN") {
            dn.push(DnType::CountryName, DnValue::PrintableString(c));
        }
        dn.push(DnType::OrganizationName, DnValue::Utf8String(self.config.ca.organization.clone()));
        dn.push(DnType::CommonName, DnValue::Utf8String(common_name.to_string()));
        dn
    }

    fn base_params(&self, common_name: &str, days: u32, spki: &[u8]) -> CertificateParams {
        let now = self.clock.now();
        let mut p = CertificateParams::default();
        p.serial_number = Some(SerialNumber::from_slice(&serial::generate()));
        p.not_before = now;
        p.not_after = now + time::Duration::days(days.into()) - time::Duration::seconds(1);
        p.distinguished_name = self.name(common_name);
        p.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(spki));
        p
    }

    async fn make_root(&self) -> Result<Arc<Authority>, CaError> {
        let (label, spki) = self.generate("root").await?;
        let root = &self.config.ca.root;
        let mut p = self.base_params(&root.common_name, root.validity_days, &spki);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = TbsCapture::new(bits_of(&spki)?, self.algorithm);
        let tbs = TbsCapture::capture(|| p.self_signed(&key))?;
        let der = self.sign(&label, &tbs).await?;
        self.store_authority("root", "root", None, label, der).await
    }

    async fn make_issuing(&self, root: &Authority, issuing: &IssuingConfig) -> Result<Arc<Authority>, CaError> {
        let (label, spki) = self.generate(&issuing.name).await?;
        let p = self.issuing_params(issuing, &spki)?;
        let subject = SpkiKey::new(&spki, self.algorithm)?;
        let tbs = TbsCapture::capture(|| p.signed_by(&subject, &root.issuer))?;
        let der = self.sign(&root.record.key_label, &tbs).await?;
        self.store_authority(&issuing.name, "issuing", Some("root"), label, der).await
    }

    /// The operator CA: self-signed, path length 0, its own trust anchor for the mutual-TLS
    /// listeners, so a back-office credential can never pass as a subscriber certificate.
    async fn make_operators_ca(&self) -> Result<Arc<Authority>, CaError> {
        let (label, spki) = self.generate(OPERATORS).await?;
        let common_name = format!("{} Operator CA", self.config.ca.organization);
        let mut p = self.base_params(&common_name, self.config.ca.root.validity_days.min(3650), &spki);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = TbsCapture::new(bits_of(&spki)?, self.algorithm);
        let tbs = TbsCapture::capture(|| p.self_signed(&key))?;
        let der = self.sign(&label, &tbs).await?;
        self.store_authority(OPERATORS, OPERATORS, None, label, der).await
    }

    fn issuing_params(&self, issuing: &IssuingConfig, spki: &[u8]) -> Result<CertificateParams, CaError> {
        let publication = &self.config.publication;
        let mut p = self.base_params(&issuing.common_name, issuing.validity_days, spki);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.use_authority_key_identifier_extension = true;
        p.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![publication.crl_url("root")] }];
        p.custom_extensions =
            vec![super::extensions::authority_information_access(None, &publication.ca_issuers_url("root"))?];
        Ok(p)
    }

    async fn make_issuing_csr(&self, issuing: &IssuingConfig) -> Result<std::path::PathBuf, CaError> {
        let (label, spki) = self.generate(&issuing.name).await?;
        let p = self.issuing_params(issuing, &spki)?;
        let key = TbsCapture::new(bits_of(&spki)?, self.algorithm);
        let info = TbsCapture::capture(|| p.serialize_request(&key))?;
        let der = sign_tbs(self.hsm, &label, self.algorithm, &info, &self.algorithm.signature_algorithm_der()).await?;
        let dir = self.config.data_dir.join("ceremony");
        std::fs::create_dir_all(&dir).map_err(|e| CaError::Build(format!("{}: {e}", dir.display())))?;
        let path = dir.join(format!("{}.csr", issuing.name));
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
        std::fs::write(&path, pem).map_err(|e| CaError::Build(format!("{}: {e}", path.display())))?;
        Ok(path)
    }

    async fn make_ocsp_responder(&self, ca: &Arc<Authority>) -> Result<AuthorityRecord, CaError> {
        let issuing_cn =
            self.config.ca.issuing.iter().find(|i| i.name == ca.record.name).map(|i| i.common_name.as_str());
        let common_name = format!("{} OCSP Responder", issuing_cn.unwrap_or(&ca.record.name));
        let name = format!("{}-ocsp", ca.record.name);
        let days = self.config.ca.ocsp_responder_validity_days;
        self.make_delegated(ca, &name, "ocsp", &common_name, days, |p| {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
            p.custom_extensions = vec![super::extensions::ocsp_nocheck()];
        })
        .await
    }

    /// The audit key signs checkpoints of the audit chain; its certificate (from the first
    /// issuing CA) anchors the checkpoints to the hierarchy.
    async fn make_audit_key(&self, ca: &Arc<Authority>) -> Result<AuthorityRecord, CaError> {
        let common_name = format!("{} Audit Log", self.config.ca.organization);
        self.make_delegated(ca, "audit", "audit", &common_name, self.config.ca.root.validity_days.min(3650), |_| {})
            .await
    }

    /// The timestamp authority's key: its certificate carries extendedKeyUsage id-kp-timeStamping
    /// alone, marked critical (RFC 3161 §2.3; OpenSSL refuses a TSA certificate otherwise), and
    /// keyUsage digitalSignature and nonRepudiation (contentCommitment: a token is evidence).
    /// It never outlives the issuing CA that certifies it.
    async fn make_tsa_key(&self, ca: &Arc<Authority>) -> Result<AuthorityRecord, CaError> {
        let common_name = format!("{} Timestamp Authority", self.config.ca.organization);
        let days = self.config.ca.root.validity_days.min(3650);
        let issuer_end = time::OffsetDateTime::from_unix_timestamp(ca.record.not_after)
            .map_err(|e| CaError::Hierarchy(format!("{}: notAfter: {e}", ca.record.name)))?;
        let eku = super::extensions::time_stamping_only();
        self.make_delegated(ca, crate::tsa::ROLE, crate::tsa::ROLE, &common_name, days, move |p| {
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
            p.custom_extensions = vec![eku];
            p.not_after = p.not_after.min(issuer_end);
        })
        .await
    }

    /// A key in the HSM with an end-entity certificate from `ca`, for the CA's own services.
    async fn make_delegated(
        &self,
        ca: &Arc<Authority>,
        name: &str,
        role: &str,
        common_name: &str,
        days: u32,
        customise: impl FnOnce(&mut CertificateParams),
    ) -> Result<AuthorityRecord, CaError> {
        let (label, spki) = self.generate(name).await?;
        let mut p = self.base_params(common_name, days, &spki);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.use_authority_key_identifier_extension = true;
        customise(&mut p);
        let subject = SpkiKey::new(&spki, self.algorithm)?;
        let tbs = TbsCapture::capture(|| p.signed_by(&subject, &ca.issuer))?;
        let der = self.sign(&ca.record.key_label, &tbs).await?;
        let record = self.record(name, role, Some(&ca.record.name), label, der)?;
        self.store.insert_authority(&record).await?;
        self.write_pem(&record)?;
        Ok(record)
    }

    async fn sign(&self, label: &str, tbs: &[u8]) -> Result<Vec<u8>, CaError> {
        let algorithm_id = tbs_certificate_algorithm(tbs)?;
        sign_tbs(self.hsm, label, self.algorithm, tbs, &algorithm_id).await
    }

    fn record(
        &self,
        name: &str,
        role: &str,
        issuer: Option<&str>,
        key_label: String,
        der: Vec<u8>,
    ) -> Result<AuthorityRecord, CaError> {
        use x509_parser::prelude::FromDer;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der)
            .map_err(|e| CaError::Hierarchy(format!("{name}: unreadable certificate: {e}")))?;
        Ok(AuthorityRecord {
            name: name.to_string(),
            role: role.to_string(),
            issuer: issuer.map(str::to_string),
            key_label,
            key_algorithm: self.algorithm.name().to_string(),
            fingerprint: hex::encode(sha2::Sha256::digest(&der)),
            not_after: cert.validity().not_after.timestamp(),
            certificate: der,
        })
    }

    async fn store_authority(
        &self,
        name: &str,
        role: &str,
        issuer: Option<&str>,
        label: String,
        der: Vec<u8>,
    ) -> Result<Arc<Authority>, CaError> {
        let record = self.record(name, role, issuer, label, der)?;
        self.store.insert_authority(&record).await?;
        self.write_pem(&record)?;
        Ok(Arc::new(Authority::from_record(record)?))
    }

    fn write_pem(&self, record: &AuthorityRecord) -> Result<(), CaError> {
        let dir = self.config.data_dir.join("ca");
        std::fs::create_dir_all(&dir).map_err(|e| CaError::Build(format!("{}: {e}", dir.display())))?;
        let path = dir.join(format!("{}.pem", record.name));
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE", record.certificate.clone()));
        std::fs::write(&path, pem).map_err(|e| CaError::Build(format!("{}: {e}", path.display())))
    }

    async fn audit(&self, kind: &str, detail: serde_json::Value) -> Result<(), CaError> {
        let writer = self.store.writer(1);
        writer
            .write(Write::Audit(AuditRecord {
                at: self.clock.now().unix_timestamp() * 1000,
                kind: kind.into(),
                actor: "ceremony".into(),
                serial: None,
                detail: detail.to_string(),
            }))
            .await?;
        Ok(())
    }
}

/// The subjectPublicKey bits of an SPKI from the HSM.
fn bits_of(spki: &[u8]) -> Result<Vec<u8>, CaError> {
    super::spki_bits(spki)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| CaError::Build("malformed SubjectPublicKeyInfo from the HSM".into()))
}

/// A CA public key from the HSM, for rcgen.
struct SpkiKey {
    bits: Vec<u8>,
    algorithm: KeyAlgorithm,
}

impl SpkiKey {
    fn new(spki: &[u8], algorithm: KeyAlgorithm) -> Result<Self, CaError> {
        Ok(SpkiKey { bits: bits_of(spki)?, algorithm })
    }
}

impl rcgen::PublicKeyData for SpkiKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm.signature_algorithm()
    }
}
