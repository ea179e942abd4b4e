//! Issuance, in numbered steps. The invariants beside each step are what a reviewer checks:
//!
//! 1. Check the request against the profile: proof of possession (the CSR signature, checked
//!    when the request enters, see [`csr::parse`]), key type and size, subject. *Anything out
//!    of profile is refused here, before anything is stored.*
//! 2. Reserve a serial: a millisecond prefix and 80 random bits ([`serial`]), persisted
//!    (durably) before any signature exists.
//!    *A serial is never signed twice: the primary key refuses a duplicate; we draw again.*
//! 3. Build the TBS certificate and lint it (subject, validity, key, extensions re-read from the
//!    exact bytes that will be signed). *What is signed is what was checked.*
//! 4. Sign once in the HSM. *One C_Sign per certificate; no retry that could yield two
//!    different certificates for one serial.*
//! 5. Store the certificate and its audit event in one transaction, durably, before returning.
//!    *A returned certificate is always in the database and in the audit log.*

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rcgen::{
    CertificateParams, CrlDistributionPoint, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose, SerialNumber,
};
use sha2::Digest;

use super::authority::{sign_tbs, tbs_certificate_algorithm, Hierarchy, TbsCapture};
use super::csr::{self, VerifiedRequest};
use super::profile::{parse_oid, Profile};
use super::{extensions, lint, serial, subject, CaError, RequestError};
use crate::clock::Clock;
use crate::config::{PublicationConfig, StatusConfig};
use crate::hsm::HsmPool;
use crate::metrics;
use crate::store::{AuditRecord, NewCertificate, Write, Writer};

/// A freshly issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Lowercase hex serial.
    pub serial: String,
    /// Certificate DER.
    pub der: Vec<u8>,
    /// Issuing CA certificate first, then up to the root.
    pub chain: Vec<Vec<u8>>,
}

/// Everything issuance needs, shared by the daemon, the CLI and the benchmark.
#[derive(Clone)]
pub struct IssuanceService {
    /// Signs.
    pub hsm: HsmPool,
    /// Persists (group commit).
    pub writer: Writer,
    /// Serials reserved ahead of need (shared by every clone).
    pub serials: Arc<super::reserve::SerialReserve>,
    /// The CAs.
    pub hierarchy: Arc<Hierarchy>,
    /// Profiles by name.
    pub profiles: crate::policies::Swappable<BTreeMap<String, Profile>>,
    /// URLs written into certificates.
    pub publication: PublicationConfig,
    /// CRL partitioning (the CDP of each certificate names its partition).
    pub status: StatusConfig,
    /// Told the serial of each certificate issued, to pre-sign its OCSP response.
    pub issued: Option<tokio::sync::mpsc::Sender<String>>,
    /// "Now".
    pub clock: Arc<dyn Clock>,
}

impl IssuanceService {
    /// Issues a certificate for a CSR (PEM or DER) under a profile. `actor` names who asked.
    pub async fn issue(&self, profile: &str, csr_bytes: &[u8], actor: &str) -> Result<Issued, CaError> {
        let started = Instant::now();
        let result = match csr::parse(csr_bytes) {
            Ok(request) => self.issue_inner(profile, &request, actor).await,
            Err(e) => Err(e.into()),
        };
        record(profile, started, &result);
        result
    }

    /// Issues a certificate for a request whose key possession is already established (a CSR
    /// checked when it entered, or a key generated in our own HSM).
    pub async fn issue_verified(
        &self,
        profile: &str,
        request: &VerifiedRequest,
        actor: &str,
    ) -> Result<Issued, CaError> {
        let started = Instant::now();
        let result = self.issue_inner(profile, request, actor).await;
        record(profile, started, &result);
        result
    }

    async fn issue_inner(&self, profile_name: &str, request: &VerifiedRequest, actor: &str) -> Result<Issued, CaError> {
        // Step 1: the request against the profile.
        let profiles = self.profiles.current();
        let profile =
            profiles.get(profile_name).ok_or_else(|| RequestError::UnknownProfile(profile_name.to_string()))?;
        profile.check_key(request.key_type)?;
        let now = self.clock.now();
        let subject = subject::build(profile, &request.subject, now.date())?;
        let authority = self.hierarchy.get(&profile.issuer)?.clone();
        if authority.record.role != "issuing" {
            return Err(CaError::Hierarchy(format!("{} is not an issuing CA", authority.record.name)));
        }

        // The term, checked before a serial is spent on it: never past the issuer's notAfter.
        let not_after = renewal_start(profile, request, now)? + time::Duration::days(profile.validity_days.into())
            - time::Duration::seconds(1);
        if not_after.unix_timestamp() > authority.record.not_after {
            return Err(CaError::Build(format!(
                "the certificate would outlive its issuer {} (notAfter {}); renew the issuing CA first",
                authority.record.name, authority.record.not_after
            )));
        }

        // Step 2: reserve a serial, durably, before anything is signed.
        let serial_bytes = self.serials.take(&profile.issuer, &profile.name, now.unix_timestamp()).await?;
        let serial_hex = serial::to_hex(&serial_bytes);

        // Step 3: build and lint the exact TBS bytes.
        let params = self.params(profile, &subject, request, &serial_bytes, now, not_after)?;
        let subject_key = SubjectKey::new(request);
        let tbs = TbsCapture::capture(|| params.signed_by(&subject_key, &authority.issuer))?;
        lint::check_tbs(&tbs, &serial_bytes, &request.spki, now, not_after)?;

        // Step 4: sign once in the HSM.
        let algorithm_id = tbs_certificate_algorithm(&tbs)?;
        let der = sign_tbs(&self.hsm, &authority.record.key_label, authority.algorithm, &tbs, &algorithm_id).await?;

        // Step 5: store with the audit event, durably, then return.
        let fingerprint = hex::encode(sha2::Sha256::digest(&der));
        let detail = serde_json::json!({ "profile": profile.name, "issuer": authority.record.name, "subject": audited_subject(&subject), "fingerprint": fingerprint });
        let audit = AuditRecord {
            at: now.unix_timestamp() * 1000,
            kind: "certificate.issued".into(),
            actor: actor.to_string(),
            serial: Some(serial_hex.clone()),
            detail: detail.to_string(),
        };
        let certificate = NewCertificate {
            serial: serial_hex.clone(),
            issuer: authority.record.name.clone(),
            profile: profile.name.clone(),
            subject: subject.display,
            identifier: subject.identifier,
            not_before: now.unix_timestamp(),
            not_after: not_after.unix_timestamp(),
            der: der.clone(),
            fingerprint,
            crl_shard: self.status.shard_of(&serial_bytes),
        };
        self.writer.write(Write::Issue { certificate, audit }).await?;
        if let Some(tx) = &self.issued {
            // Best effort: the status refresher also finds certificates without a response.
            let _ = tx.try_send(serial_hex.clone());
        }
        let chain = self.hierarchy.chain(&authority.record.name)?;
        Ok(Issued { serial: serial_hex, der, chain })
    }

    fn params(
        &self,
        profile: &Profile,
        subject: &subject::Subject,
        request: &VerifiedRequest,
        serial: &[u8],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<CertificateParams, CaError> {
        let mut p = CertificateParams::default();
        p.serial_number = Some(SerialNumber::from_slice(serial));
        p.not_before = not_before;
        p.not_after = not_after;
        p.distinguished_name = subject.name.clone();
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = profile.key_usage.iter().filter_map(|k| key_usage(k)).collect();
        p.extended_key_usages = profile.extended_key_usage.iter().filter_map(|k| extended_key_usage(k)).collect();
        let shard = self.status.shard_of(serial);
        let crl_url = self.publication.crl_partition_url(&profile.issuer, shard, self.status.crl_shards);
        p.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![crl_url] }];
        p.use_authority_key_identifier_extension = true;
        p.key_identifier_method = KeyIdMethod::PreSpecified(super::key_identifier(&request.spki));
        // Profiles are validated at load: every OID parses and there is at least one.
        let oids: Vec<Vec<u64>> = profile.policy_oids.iter().filter_map(|o| parse_oid(o)).collect();
        p.custom_extensions = vec![
            extensions::authority_information_access(
                Some(&self.publication.ocsp_url(&profile.issuer)),
                &self.publication.ca_issuers_url(&profile.issuer),
            )?,
            extensions::certificate_policies(&oids)?,
        ];
        Ok(p)
    }
}

/// The subject's public key, as rcgen wants it.
pub(crate) struct SubjectKey {
    bits: Vec<u8>,
    algorithm: &'static rcgen::SignatureAlgorithm,
}

impl SubjectKey {
    pub(crate) fn new(request: &VerifiedRequest) -> Self {
        SubjectKey { bits: request.public_key_bits.clone(), algorithm: request.key_type.spki_algorithm() }
    }
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

/// Counts the outcome and, on success, the latency.
fn record(profile: &str, started: Instant, result: &Result<Issued, CaError>) {
    let m = metrics::get();
    let outcome = match result {
        Ok(_) => "issued",
        Err(CaError::Request(_)) => "refused",
        Err(_) => "failed",
    };
    m.issuance.with_label_values(&[profile, outcome]).inc();
    if result.is_ok() {
        m.issuance_seconds.with_label_values(&[profile]).observe(started.elapsed().as_secs_f64());
    }
}

/// Key usage names as profiles spell them.
pub(crate) fn key_usage(name: &str) -> Option<KeyUsagePurpose> {
    Some(match name {
        "digitalSignature" => KeyUsagePurpose::DigitalSignature,
        "contentCommitment" => KeyUsagePurpose::ContentCommitment,
        "keyEncipherment" => KeyUsagePurpose::KeyEncipherment,
        "keyAgreement" => KeyUsagePurpose::KeyAgreement,
        _ => return None,
    })
}

fn extended_key_usage(name: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match name {
        "clientAuth" => ExtendedKeyUsagePurpose::ClientAuth,
        "emailProtection" => ExtendedKeyUsagePurpose::EmailProtection,
        "codeSigning" => ExtendedKeyUsagePurpose::CodeSigning,
        _ => return None,
    })
}

/// Where a certificate's term starts: now, or just after a renewal's old notAfter when that lies
/// inside the profile's renewal window (keeps the days paid); any other value is refused (fail
/// closed).
fn renewal_start(
    profile: &Profile,
    request: &VerifiedRequest,
    now: time::OffsetDateTime,
) -> Result<time::OffsetDateTime, CaError> {
    let Some(until) = request.renews_until else { return Ok(now) };
    let window = i64::from(profile.renewal_window_days) * 86400;
    if until <= now.unix_timestamp() || until > now.unix_timestamp() + window {
        return Err(CaError::Build(format!("a renewal extends from a notAfter within {window} s from now")));
    }
    // The new term starts the second after the old one ends.
    time::OffsetDateTime::from_unix_timestamp(until + 1).map_err(|e| CaError::Build(e.to_string()))
}

/// The subject as the issuance's audit entry names it: a person's identifier (resident ID or
/// another document's number in `serialNumber`) masked as everywhere in the audit log
/// ([`crate::ra::mask_identifier`]); an organisation's credit code stays whole (it is no
/// personal data, and it names whose certificate this is). The certificate row keeps the
/// subject whole.
fn audited_subject(built: &subject::Subject) -> String {
    match &built.identifier {
        Some(id) if crate::ca::identifiers::validate_credit_code(id).is_err() => {
            built.display.replace(id.as_str(), &crate::ra::mask_identifier(id))
        }
        _ => built.display.clone(),
    }
}
