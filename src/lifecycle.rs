//! Renewal, information change and re-issue: issuance under the old certificate's profile,
//! plus revocation of the old certificate where the flow replaces it.
//!
//! | flow    | key               | subject                     | old certificate           |
//! |---------|-------------------|-----------------------------|---------------------------|
//! | renew   | same, or new (CSR)| unchanged                   | stays valid until expiry  |
//! | change  | same, or new (CSR)| changed, same identifier    | revoked: superseded       |
//! | reissue | new (CSR) only    | unchanged                   | revoked (superseded, or the reason given) |
//!
//! Renewal is allowed only inside the profile's renewal window (the last `renewal_window_days`
//! before expiry) and never after expiry or revocation. The identifier (credit code, resident
//! ID) never changes: a different organisation or person is a new application.

use time::OffsetDateTime;

use crate::ca::{csr, CaError, IssuanceService, Issued, VerifiedRequest};
use crate::status::{RevocationReason, StatusError, StatusService};
use crate::store::{AuditRecord, CertificateRecord, Store};

/// Why a lifecycle request was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// Issuance failed or the request is out of profile.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// Revocation or lookup failed.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The certificate is revoked.
    #[error("certificate {0} is revoked")]
    Revoked(String),
    /// Renewal asked outside the window.
    #[error("certificate {serial} cannot be renewed now: {why}")]
    OutsideRenewalWindow {
        /// The serial.
        serial: String,
        /// When the window opens, or that the certificate expired.
        why: String,
    },
    /// The request's subject does not fit the flow.
    #[error("{0}")]
    Subject(String),
    /// The new certificate exists but the old one could not be revoked: the operator must
    /// revoke it (the new one is valid and stored; do not issue again).
    #[error("issued {new_serial}, but revoking {old_serial} failed: {error}; revoke it with `cloudca revoke`")]
    OldNotRevoked {
        /// The new certificate.
        new_serial: String,
        /// The one still valid.
        old_serial: String,
        /// Why revocation failed.
        error: StatusError,
    },
    /// Re-issue with the old key.
    #[error("re-issue needs a new key; the CSR carries the key of certificate {0}")]
    SameKey(String),
}

/// The three flows over one issuance and one status service.
pub struct Lifecycle<'a> {
    /// Issues the new certificate.
    pub issuance: &'a IssuanceService,
    /// Revokes the old one.
    pub status: &'a StatusService,
    /// Reads the old one.
    pub store: &'a Store,
}

impl Lifecycle<'_> {
    /// Renews: a new validity period, same key (no CSR) or a new key (CSR with the same subject).
    pub async fn renew(&self, serial: &str, csr_bytes: Option<&[u8]>, actor: &str) -> Result<Issued, LifecycleError> {
        let old = self.current(serial).await?;
        let profiles = self.issuance.profiles.current();
        let profile = profiles
            .get(&old.profile)
            .ok_or_else(|| CaError::Build(format!("profile {} no longer exists", old.profile)))?;
        let now = self.issuance.clock.now().unix_timestamp();
        let opens = old.not_after - i64::from(profile.renewal_window_days) * 86400;
        if now > old.not_after {
            return Err(LifecycleError::OutsideRenewalWindow {
                serial: old.serial,
                why: "it has expired; apply for a new certificate".into(),
            });
        }
        if now < opens {
            let at = OffsetDateTime::from_unix_timestamp(opens).map(|t| t.date().to_string()).unwrap_or_default();
            return Err(LifecycleError::OutsideRenewalWindow {
                serial: old.serial,
                why: format!("the renewal window opens on {at} ({} days before expiry)", profile.renewal_window_days),
            });
        }
        let request = match csr_bytes {
            None => VerifiedRequest::from_certificate(&old.der).map_err(CaError::from)?,
            Some(bytes) => {
                let request = csr::parse(bytes).map_err(CaError::from)?;
                self.same_subject(&old, &request)?;
                request
            }
        };
        let issued = self.issuance.issue_verified(&old.profile, &request, actor).await?;
        self.audit("certificate.renewed", &old, &issued, actor).await?;
        Ok(issued)
    }

    /// Information change: a certificate with the changed subject; the old one is revoked as
    /// superseded once the new one exists.
    pub async fn change(&self, serial: &str, csr_bytes: &[u8], actor: &str) -> Result<Issued, LifecycleError> {
        let old = self.current(serial).await?;
        let request = csr::parse(csr_bytes).map_err(CaError::from)?;
        let before = VerifiedRequest::from_certificate(&old.der).map_err(CaError::from)?;
        if identifier(&before) != identifier(&request) {
            return Err(LifecycleError::Subject("an information change keeps the serialNumber (credit code or resident ID); a different one is a new application".into()));
        }
        if before.subject == request.subject {
            return Err(LifecycleError::Subject(
                "the CSR's subject is the same as the certificate's; nothing to change (use renew)".into(),
            ));
        }
        let issued = self.issuance.issue_verified(&old.profile, &request, actor).await?;
        self.revoke_old(&old, &issued, RevocationReason::Superseded, actor).await?;
        self.audit("certificate.changed", &old, &issued, actor).await?;
        Ok(issued)
    }

    /// Re-issue: a new key and certificate with the same subject; the old one is revoked.
    pub async fn reissue(
        &self,
        serial: &str,
        csr_bytes: &[u8],
        reason: RevocationReason,
        actor: &str,
    ) -> Result<Issued, LifecycleError> {
        let old = self.current(serial).await?;
        let request = csr::parse(csr_bytes).map_err(CaError::from)?;
        let before = VerifiedRequest::from_certificate(&old.der).map_err(CaError::from)?;
        if before.spki == request.spki {
            return Err(LifecycleError::SameKey(old.serial));
        }
        self.same_subject(&old, &request)?;
        let issued = self.issuance.issue_verified(&old.profile, &request, actor).await?;
        self.revoke_old(&old, &issued, reason, actor).await?;
        self.audit("certificate.reissued", &old, &issued, actor).await?;
        Ok(issued)
    }

    async fn revoke_old(
        &self,
        old: &CertificateRecord,
        new: &Issued,
        reason: RevocationReason,
        actor: &str,
    ) -> Result<(), LifecycleError> {
        match self.status.revoke(&old.serial, reason, None, actor).await {
            Ok(_) => Ok(()),
            Err(error) => Err(LifecycleError::OldNotRevoked {
                new_serial: new.serial.clone(),
                old_serial: old.serial.clone(),
                error,
            }),
        }
    }

    async fn current(&self, text: &str) -> Result<CertificateRecord, LifecycleError> {
        let serial = crate::ca::serial::parse(text).ok_or_else(|| StatusError::BadSerial(text.to_string()))?;
        let cert = self
            .store
            .certificate(&serial)
            .await
            .map_err(StatusError::from)?
            .ok_or(StatusError::UnknownSerial(serial))?;
        if cert.status == "revoked" {
            return Err(LifecycleError::Revoked(cert.serial));
        }
        Ok(cert)
    }

    fn same_subject(&self, old: &CertificateRecord, request: &VerifiedRequest) -> Result<(), LifecycleError> {
        let before = VerifiedRequest::from_certificate(&old.der).map_err(CaError::from)?;
        let normalise = |r: &VerifiedRequest| {
            let mut s = r.subject.clone();
            s.sort();
            s
        };
        if normalise(&before) != normalise(request) {
            return Err(LifecycleError::Subject(
                "the CSR's subject differs from the certificate's (use change for new information)".into(),
            ));
        }
        Ok(())
    }

    async fn audit(
        &self,
        kind: &str,
        old: &CertificateRecord,
        new: &Issued,
        actor: &str,
    ) -> Result<(), LifecycleError> {
        let record = AuditRecord {
            at: self.issuance.clock.now().unix_timestamp() * 1000,
            kind: kind.into(),
            actor: actor.into(),
            serial: Some(new.serial.clone()),
            detail: serde_json::json!({ "old_serial": old.serial, "new_serial": new.serial }).to_string(),
        };
        self.store.audit(&record).await.map_err(StatusError::from)?;
        Ok(())
    }
}

fn identifier(r: &VerifiedRequest) -> Option<&str> {
    r.subject.iter().find(|(a, _)| a == "serialNumber").map(|(_, v)| v.as_str())
}
