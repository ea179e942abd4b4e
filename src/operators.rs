//! Back-office credentials: client certificates for operators and machine clients, issued by
//! the operator CA (a key in the HSM, made by the ceremony), recorded so they can be revoked,
//! and the revoked set the TLS layer consults at every handshake and every request (with the
//! platform registrations cached beside it, see `api::identity`).
//!
//! The operator CA is its own trust anchor, separate from the public hierarchy: a subscriber
//! certificate can never open the back office, and a back-office credential is never valid in
//! the public PKI.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose,
    SanType, SerialNumber,
};
use sha2::Digest;

use crate::ca::authority::{sign_tbs, tbs_certificate_algorithm, Authority, TbsCapture};
use crate::ca::ceremony::OPERATORS;
use crate::ca::{self, CaError, Hierarchy, RequestError};
use crate::clock::Clock;
use crate::hsm::HsmPool;
use crate::roles::Role;
use crate::status::RevocationReason;
use crate::store::{AuditRecord, OperatorCertRecord, Store, StoreError};

/// Longest validity of an operator certificate (the CA/Browser Forum's TLS maximum: a
/// credential that opens the back office should not outlive a year of staff turnover).
pub const MAX_VALIDITY_DAYS: u32 = 397;

/// Why an operator-certificate action failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The hierarchy has no operator CA (an instance from before it existed).
    #[error("no operator CA in the hierarchy: run `cloudca ceremony operators`")]
    NoOperatorCa,
    /// The CSR is malformed or its proof of possession fails.
    #[error("{0}")]
    Request(#[from] RequestError),
    /// The request is well-formed but not acceptable (no CN, validity out of range).
    #[error("{0}")]
    Refused(String),
    /// No operator certificate with that serial.
    #[error("no operator certificate with serial {0}")]
    UnknownSerial(String),
    /// Not a hexadecimal serial.
    #[error("{0:?} is not a hexadecimal serial")]
    BadSerial(String),
    /// Signing or building failed.
    #[error("{0}")]
    Ca(#[from] CaError),
    /// Database (including a failed audit write: the action did not happen).
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Fingerprints of revoked back-office certificates, shared by the TLS verifiers and the
/// authorisation layer. Refreshed from the database so revocations made elsewhere (the CLI,
/// another daemon) take effect within seconds; it remembers when it last was, so a request
/// check can refuse to rely on a list the database has not confirmed for too long.
#[derive(Clone, Default, Debug)]
pub struct RevokedSet {
    fingerprints: Arc<RwLock<HashSet<String>>>,
    /// When the database last confirmed the list (None: never).
    refreshed: Arc<RwLock<Option<Instant>>>,
}

impl RevokedSet {
    /// Whether the certificate with this SHA-256 fingerprint (hex) is revoked.
    pub fn contains(&self, fingerprint: &str) -> bool {
        self.fingerprints.read().unwrap_or_else(|p| p.into_inner()).contains(fingerprint)
    }

    /// Replaces the set with the database's view.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let fresh: HashSet<String> = store.revoked_operator_fingerprints().await?.into_iter().collect();
        *self.fingerprints.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        *self.refreshed.write().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Ok(())
    }

    /// Whether the database confirmed the list less than `max_age` ago.
    pub fn fresh_within(&self, max_age: Duration) -> bool {
        self.refreshed.read().unwrap_or_else(|p| p.into_inner()).is_some_and(|at| at.elapsed() < max_age)
    }

    fn insert(&self, fingerprint: String) {
        self.fingerprints.write().unwrap_or_else(|p| p.into_inner()).insert(fingerprint);
    }
}

/// Issues and revokes back-office certificates.
#[derive(Clone)]
pub struct Operators {
    store: Store,
    hsm: HsmPool,
    authority: Option<Arc<Authority>>,
    organization: String,
    clock: Arc<dyn Clock>,
    /// The revoked set the TLS layer checks.
    pub revoked: RevokedSet,
    /// Relying-platform registrations by certificate, cached a few seconds for the TLS
    /// listeners' per-request identity check (`api::identity`).
    pub platforms: crate::platforms::PlatformCache,
    /// Logins and api-listener refusals, audited once per client (and route) per minute.
    pub events: crate::security_events::SecurityEvents,
}

/// What an operator-certificate revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorRevocation {
    /// Revoked now.
    Revoked,
    /// It was revoked before; nothing changed.
    AlreadyRevoked,
}

impl Operators {
    /// Built by `Instance::open`; works without an operator CA except for issuance.
    pub fn new(store: Store, hsm: HsmPool, hierarchy: &Hierarchy, organization: String, clock: Arc<dyn Clock>) -> Self {
        let authority = hierarchy.authorities.values().find(|a| a.record.role == OPERATORS).cloned();
        let events = crate::security_events::SecurityEvents::new(store.clone(), clock.clone());
        let platforms = crate::platforms::PlatformCache::default();
        Operators { store, hsm, authority, organization, clock, revoked: RevokedSet::default(), platforms, events }
    }

    /// The operator CA certificate (DER), the trust anchor `tls.client_ca` should hold.
    pub fn ca_certificate(&self) -> Option<&[u8]> {
        self.authority.as_ref().map(|a| a.record.certificate.as_slice())
    }

    /// Issues a client certificate for `role` to the key in `csr` (PEM or DER; its CN names
    /// the person or system). The subject is `O=<organisation>, OU=<role>, CN=<from CSR>`, so
    /// `roles.toml` rules by subject work as well as by fingerprint.
    pub async fn issue(
        &self,
        csr: &[u8],
        role: Role,
        days: u32,
        actor: &str,
    ) -> Result<OperatorCertRecord, OperatorError> {
        if !(1..=MAX_VALIDITY_DAYS).contains(&days) {
            return Err(OperatorError::Refused(format!("validity must be 1 to {MAX_VALIDITY_DAYS} days")));
        }
        let request = ca::csr::parse(csr)?;
        let common_name = request
            .subject
            .iter()
            .find(|(k, _)| k == "CN")
            .map(|(_, v)| v.clone())
            .filter(|cn| !cn.trim().is_empty() && cn.chars().count() <= 64)
            .ok_or_else(|| {
                OperatorError::Refused("the CSR must carry a CN (1 to 64 characters) naming the holder".into())
            })?;
        let authority = self.authority.as_ref().ok_or(OperatorError::NoOperatorCa)?;
        let now = self.clock.now();
        let serial = ca::serial::generate();
        let mut p = CertificateParams::default();
        p.serial_number = Some(SerialNumber::from_slice(&serial));
        p.not_before = now;
        p.not_after = now + time::Duration::days(days.into());
        p.distinguished_name = self.subject(role, &common_name);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.use_authority_key_identifier_extension = true;
        p.key_identifier_method = KeyIdMethod::PreSpecified(ca::key_identifier(&request.spki));
        let key = ca::issue::SubjectKey::new(&request);
        let der = self.sign(authority, || p.signed_by(&key, &authority.issuer)).await?;
        let record = OperatorCertRecord {
            serial: ca::serial::to_hex(&serial),
            fingerprint: hex::encode(sha2::Sha256::digest(&der)),
            subject: format!("CN={common_name},OU={},O={}", role.name(), self.organization),
            role: role.name().to_string(),
            status: "active".into(),
            not_after: p.not_after.unix_timestamp(),
            der,
            issued_at: now.unix_timestamp(),
            revoked_at: None,
            reason: None,
        };
        let detail = serde_json::json!({ "role": record.role, "subject": record.subject, "fingerprint": record.fingerprint, "days": days });
        self.store
            .insert_operator_cert(
                &record,
                &AuditRecord::new(
                    self.clock.as_ref(),
                    "operator.certificate.issued",
                    actor,
                    Some(&record.serial),
                    detail,
                ),
            )
            .await?;
        tracing::info!(target: "audit", serial = %record.serial, role = %record.role, actor, "operator certificate issued");
        Ok(record)
    }

    /// Issues a TLS server certificate for the listeners (dev instances and tests; production
    /// deployments bring their own). The key stays with the caller.
    pub async fn issue_server(
        &self,
        key: &impl rcgen::PublicKeyData,
        names: &[&str],
        actor: &str,
    ) -> Result<Vec<u8>, OperatorError> {
        let authority = self.authority.as_ref().ok_or(OperatorError::NoOperatorCa)?;
        let now = self.clock.now();
        let mut p = CertificateParams::default();
        p.serial_number = Some(SerialNumber::from_slice(&ca::serial::generate()));
        p.not_before = now;
        p.not_after = now + time::Duration::days(MAX_VALIDITY_DAYS.into());
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, DnValue::Utf8String(names.first().copied().unwrap_or("localhost").to_string()));
        p.distinguished_name = dn;
        p.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.to_string().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| OperatorError::Refused(format!("server name: {e}")))?;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let der = self.sign(authority, || p.signed_by(key, &authority.issuer)).await?;
        let detail = serde_json::json!({ "names": names, "fingerprint": hex::encode(sha2::Sha256::digest(&der)) });
        self.store
            .audit(&AuditRecord::new(self.clock.as_ref(), "tls.server_certificate.issued", actor, None, detail))
            .await?;
        Ok(der)
    }

    /// Revokes an operator certificate: recorded with its audit event, then refused at the next
    /// handshake and at the next request on connections already open.
    pub async fn revoke(
        &self,
        serial: &str,
        reason: RevocationReason,
        actor: &str,
    ) -> Result<OperatorRevocation, OperatorError> {
        let serial = ca::serial::parse(serial).ok_or_else(|| OperatorError::BadSerial(serial.to_string()))?;
        let record =
            self.store.operator_cert(&serial).await?.ok_or_else(|| OperatorError::UnknownSerial(serial.clone()))?;
        let now = self.clock.now().unix_timestamp();
        let detail =
            serde_json::json!({ "reason": reason.name(), "fingerprint": record.fingerprint, "role": record.role });
        let audit = AuditRecord::new(self.clock.as_ref(), "operator.certificate.revoked", actor, Some(&serial), detail);
        let revoked = self.store.revoke_operator_cert(&serial, now, reason.name(), &audit).await?;
        self.revoked.insert(record.fingerprint);
        if !revoked {
            return Ok(OperatorRevocation::AlreadyRevoked);
        }
        tracing::info!(target: "audit", serial = %serial, reason = reason.name(), actor, "operator certificate revoked");
        Ok(OperatorRevocation::Revoked)
    }

    /// Every operator certificate, newest first.
    pub async fn list(&self) -> Result<Vec<OperatorCertRecord>, OperatorError> {
        Ok(self.store.operator_certs().await?)
    }

    fn subject(&self, role: Role, common_name: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, DnValue::Utf8String(self.organization.clone()));
        dn.push(DnType::OrganizationalUnitName, DnValue::Utf8String(role.name().to_string()));
        dn.push(DnType::CommonName, DnValue::Utf8String(common_name.to_string()));
        dn
    }

    async fn sign<T>(
        &self,
        authority: &Authority,
        build: impl FnOnce() -> Result<T, rcgen::Error>,
    ) -> Result<Vec<u8>, OperatorError> {
        let tbs = TbsCapture::capture(build)?;
        let algorithm_id = tbs_certificate_algorithm(&tbs)?;
        Ok(sign_tbs(&self.hsm, &authority.record.key_label, authority.algorithm, &tbs, &algorithm_id).await?)
    }
}
