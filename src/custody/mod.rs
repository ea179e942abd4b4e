//! Holders' cloud keys. An approval (identity, phone, profile) becomes a credential when the
//! holder sets a PIN: the key is generated in the HSM and kept only wrapped, the certificate is
//! issued through the normal issuance steps, and the PIN is stored as an Argon2id hash of its
//! HSM-peppered HMAC. Every signature checks, in order: the credential is the caller's, not
//! locked or destroyed; its certificate is neither revoked nor expired; the PIN is right (a
//! wrong one counts toward the lock); the blob is bound to this row.

pub mod pin;

use std::sync::Arc;

use rand::RngCore;

use crate::ca::{CaError, IssuanceService, Issued, VerifiedRequest};
use crate::clock::Clock;
use crate::config::CustodyConfig;
use crate::hsm::{custody::BLOB_VERSION, HsmError, HsmPool, KeyAlgorithm};
use crate::store::{ApprovalRecord, AuditRecord, CredentialRecord, Store, StoreError};
pub use pin::Pin;

/// Why a custody action failed. Each variant is something the holder or operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    /// Malformed input; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No such approval or credential for this holder.
    #[error("no such credential or approval for this phone")]
    NotFound,
    /// The approval was already turned into a credential (or cancelled).
    #[error("this approval has been used already")]
    ApprovalUsed,
    /// Wrong PIN; this many tries remain before the credential locks.
    #[error("wrong PIN; {remaining} tries left before the credential locks")]
    WrongPin {
        /// Tries left.
        remaining: i64,
    },
    /// Locked after too many wrong PINs: only proving identity again unlocks it.
    #[error("the credential is locked after too many wrong PINs; unlock it by proving your identity again")]
    Locked,
    /// Revoked, expired or destroyed: it signs nothing.
    #[error("the certificate cannot sign: {0}")]
    NotUsable(&'static str),
    /// The identity check for an unlock failed.
    #[error("the identity check failed")]
    IdentityRefused,
    /// PIN format or hashing.
    #[error("{0}")]
    Pin(#[from] pin::PinError),
    /// Issuance refused or failed.
    #[error("{0}")]
    Ca(#[from] CaError),
    /// HSM.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// Database (an audit write failure included: the action did not happen).
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// What a holder presents to unlock a credential: the identity provider's check of the
/// claimed identifier against the evidence (a live face, a bank card).
pub struct IdentityProof<'a> {
    /// The provider that judges the evidence.
    pub provider: &'a dyn crate::providers::IdentityProvider,
    /// The identifier the holder claims (must be the approval's).
    pub identifier: &'a str,
    /// The evidence, as the provider expects it.
    pub evidence: &'a str,
}

/// The custody service.
#[derive(Clone)]
pub struct Custody {
    store: Store,
    hsm: HsmPool,
    issuance: IssuanceService,
    clock: Arc<dyn Clock>,
    /// Limits and lifetimes.
    pub config: CustodyConfig,
}

/// A random identifier (128 bits, hex) for approvals, credentials and sessions.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// E.164: `+`, a non-zero digit, 7 to 15 digits in all.
pub fn valid_phone(phone: &str) -> bool {
    let digits = phone.strip_prefix('+').unwrap_or("");
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

impl Custody {
    /// Built by `Instance::open`.
    pub fn new(
        store: Store,
        hsm: HsmPool,
        issuance: IssuanceService,
        clock: Arc<dyn Clock>,
        config: CustodyConfig,
    ) -> Self {
        Custody { store, hsm, issuance, clock, config }
    }

    /// Lets certificates issued here reach the OCSP pre-signing task like any other.
    pub fn notify_issued(&mut self, tx: Option<tokio::sync::mpsc::Sender<String>>) {
        self.issuance.issued = tx;
    }

    /// The chain above an issuing CA (issuing CA first, then up to the root), DER.
    pub fn chain_of(&self, issuer: &str) -> Result<Vec<Vec<u8>>, CaError> {
        self.issuance.hierarchy.chain(issuer)
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// An audit record stamped now.
    pub fn event(&self, kind: &str, actor: &str, serial: Option<&str>, detail: serde_json::Value) -> AuditRecord {
        AuditRecord::new(self.clock.as_ref(), kind, actor, serial, detail)
    }

    /// Records that this identity, at this phone, may hold a certificate of `profile` (the back
    /// office now; the RA workflow later writes the same record).
    pub async fn create_approval(
        &self,
        profile: &str,
        subject: Vec<(String, String)>,
        phone: &str,
        actor: &str,
    ) -> Result<ApprovalRecord, CustodyError> {
        if !valid_phone(phone) {
            return Err(CustodyError::Invalid("phone: E.164, e.g. +8613800138000".into()));
        }
        if !self.issuance.profiles.current().contains_key(profile) {
            return Err(CustodyError::Invalid(format!("profile: no profile named {profile:?}")));
        }
        let identifier =
            subject.iter().find(|(k, _)| k == "serialNumber").map(|(_, v)| v.clone()).ok_or_else(|| {
                CustodyError::Invalid("subject: serialNumber (credit code or ID number) is required".into())
            })?;
        let approval = ApprovalRecord {
            id: new_id(),
            profile: profile.to_string(),
            subject: serde_json::to_string(&subject).unwrap_or_default(),
            identifier,
            phone: phone.to_string(),
            status: "approved".into(),
            created_at: self.now(),
            created_by: actor.to_string(),
        };
        let detail = serde_json::json!({ "approval": approval.id, "profile": profile, "identifier": approval.identifier, "phone": phone });
        self.store.insert_approval(&approval, &self.event("approval.created", actor, None, detail)).await?;
        Ok(approval)
    }

    /// Sets the first PIN of an approved certificate: generates the key in the HSM, issues the
    /// certificate, stores the wrapped key and the PIN hash.
    pub async fn enroll(
        &self,
        approval_id: &str,
        phone: &str,
        pin: &Pin,
        actor: &str,
    ) -> Result<(CredentialRecord, Issued), CustodyError> {
        let approval =
            self.store.approval(approval_id).await?.filter(|a| a.phone == phone).ok_or(CustodyError::NotFound)?;
        if approval.status != "approved" {
            return Err(CustodyError::ApprovalUsed);
        }
        let subject: Vec<(String, String)> = serde_json::from_str(&approval.subject)
            .map_err(|_| CustodyError::Invalid("the approval's subject is unreadable".into()))?;
        let algorithm = KeyAlgorithm::EcdsaP256;
        let wrapped = self.hsm.generate_wrapped(algorithm).await?;
        let request = VerifiedRequest::from_custody_key(subject, &wrapped.spki).map_err(CaError::from)?;
        let issued = self.issuance.issue_verified(&approval.profile, &request, actor).await?;
        let id = new_id();
        let credential = CredentialRecord {
            binding: self.binding(&id, &issued.serial, &wrapped.blob).await?,
            pin_hash: pin::hash(&self.hsm, &id, pin).await?,
            id,
            approval_id: approval.id.clone(),
            phone: phone.to_string(),
            serial: issued.serial.clone(),
            key_algorithm: algorithm.name().to_string(),
            key_blob: Some(wrapped.blob),
            blob_version: BLOB_VERSION,
            failed_attempts: 0,
            status: "active".into(),
            created_at: self.now(),
        };
        let detail = serde_json::json!({ "credential": credential.id, "approval": approval.id });
        let audit = self.event("credential.enrolled", actor, Some(&issued.serial), detail);
        if !self.store.create_credential(&credential, &audit).await? {
            return Err(CustodyError::ApprovalUsed);
        }
        // The agent who enrols an organisation certificate becomes its certificate
        // administrator, unless the organisation has one already.
        if approval.profile == "org" {
            let detail = serde_json::json!({ "org": approval.identifier });
            let audit = self.event("org.admin.claimed", actor, Some(&issued.serial), detail);
            self.store.claim_org_admin(&approval.identifier, phone, self.now(), &audit).await?;
        }
        Ok((credential, issued))
    }

    /// The HMAC that ties a blob to its credential row and certificate.
    async fn binding(&self, id: &str, serial: &str, blob: &[u8]) -> Result<String, CustodyError> {
        let mut message = format!("cloudca-blob\n{id}\n{serial}\n").into_bytes();
        message.extend_from_slice(blob);
        Ok(hex::encode(self.hsm.pepper(&message).await?))
    }

    /// The holder's credential, if it can sign at all (not locked, not destroyed, certificate
    /// neither revoked nor expired). Does not check the PIN.
    pub async fn usable(&self, credential_id: &str, phone: &str) -> Result<CredentialRecord, CustodyError> {
        let c =
            self.store.credential(credential_id).await?.filter(|c| c.phone == phone).ok_or(CustodyError::NotFound)?;
        match c.status.as_str() {
            "locked" => return Err(CustodyError::Locked),
            "destroyed" => return Err(CustodyError::NotUsable("its key was destroyed when it was revoked")),
            _ => {}
        }
        let cert = self.store.certificate(&c.serial).await?.ok_or(CustodyError::NotUsable("certificate missing"))?;
        // The revocation transaction already destroyed the key; this covers the moment between.
        if cert.status == "revoked" {
            return Err(CustodyError::NotUsable("revoked"));
        }
        if cert.not_after < self.now() {
            return Err(CustodyError::NotUsable("expired"));
        }
        Ok(c)
    }

    /// Checks the PIN of a usable credential; a wrong PIN is counted (and audited) atomically
    /// and locks the credential at `max_pin_failures`.
    pub async fn check_pin(&self, c: &CredentialRecord, pin: &Pin, actor: &str) -> Result<(), CustodyError> {
        if pin::verify(&self.hsm, &c.id, pin, &c.pin_hash).await? {
            // Only a count to clear costs a write; the usual approval has none.
            if c.failed_attempts > 0 {
                self.store.clear_pin_failures(&c.id).await?;
            }
            return Ok(());
        }
        let detail = serde_json::json!({ "credential": c.id });
        let audit = self.event("pin.failed", actor, Some(&c.serial), detail);
        let (attempts, status) =
            self.store.record_pin_failure(&c.id, self.config.max_pin_failures, self.now(), &audit).await?;
        tracing::warn!(target: "audit", credential = %c.id, attempts, "wrong PIN");
        if status == "locked" {
            let detail = serde_json::json!({ "credential": c.id, "attempts": attempts });
            self.store.audit(&self.event("credential.locked", actor, Some(&c.serial), detail)).await?;
            return Err(CustodyError::Locked);
        }
        Err(CustodyError::WrongPin { remaining: (self.config.max_pin_failures - attempts).max(0) })
    }

    /// Signs token inputs (digests) with the credential's key: binding checked, one unwrap,
    /// all signatures, one destroy.
    pub async fn sign(&self, c: &CredentialRecord, inputs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, CustodyError> {
        let blob = c.key_blob.as_deref().ok_or(CustodyError::NotUsable("no key"))?;
        let expected = self.binding(&c.id, &c.serial, blob).await?;
        if expected != c.binding {
            tracing::error!(target: "audit", credential = %c.id, "wrapped key not bound to this credential; refusing");
            return Err(CustodyError::NotUsable("its key does not belong to it"));
        }
        let algorithm = KeyAlgorithm::from_name(&c.key_algorithm).ok_or(CustodyError::NotUsable("unknown key type"))?;
        Ok(self.hsm.sign_wrapped_many(blob, algorithm, inputs).await?)
    }

    /// PIN change: the old PIN first.
    pub async fn change_pin(
        &self,
        id: &str,
        phone: &str,
        old: &Pin,
        new: &Pin,
        actor: &str,
    ) -> Result<(), CustodyError> {
        let c = self.usable(id, phone).await?;
        self.check_pin(&c, old, actor).await?;
        let hash = pin::hash(&self.hsm, &c.id, new).await?;
        let audit = self.event("pin.changed", actor, Some(&c.serial), serde_json::json!({ "credential": c.id }));
        self.store.set_pin(&c.id, &hash, self.now(), &audit).await?;
        Ok(())
    }

    /// Re-certifies a key in custody: a new certificate for the same key (renewal: the old
    /// subject; information change: `subject`), and the credential moves to it. The caller
    /// revokes the old certificate where the flow asks for it, after this returns.
    pub async fn recertify(
        &self,
        credential: &CredentialRecord,
        profile: &str,
        subject: Vec<(String, String)>,
        actor: &str,
    ) -> Result<Issued, CustodyError> {
        let old = self.store.certificate(&credential.serial).await?.ok_or(CustodyError::NotFound)?;
        let spki = VerifiedRequest::from_certificate(&old.der).map_err(CaError::from)?.spki;
        let request = VerifiedRequest::from_custody_key(subject, &spki).map_err(CaError::from)?;
        let issued = self.issuance.issue_verified(profile, &request, actor).await?;
        let blob = credential.key_blob.as_deref().ok_or(CustodyError::NotUsable("its key was destroyed"))?;
        let binding = self.binding(&credential.id, &issued.serial, blob).await?;
        let detail = serde_json::json!({ "credential": credential.id, "old_serial": old.serial });
        let audit = self.event("credential.recertified", actor, Some(&issued.serial), detail);
        if !self.store.rebind_credential(&credential.id, &issued.serial, &binding, self.now(), &audit).await? {
            return Err(CustodyError::NotUsable("its key was destroyed"));
        }
        Ok(issued)
    }

    /// Lifts the PIN lock of a credential after an officer or the channel approved an unlock
    /// order (the holder proved their identity to the RA).
    pub async fn lift_lock(&self, credential: &CredentialRecord, actor: &str, order: &str) -> Result<(), CustodyError> {
        let detail = serde_json::json!({ "credential": credential.id, "order": order });
        let audit = self.event("credential.unlocked", actor, Some(&credential.serial), detail);
        if !self.store.lift_lock(&credential.id, self.now(), &audit).await? {
            return Err(CustodyError::NotUsable("its key was destroyed when it was revoked"));
        }
        Ok(())
    }

    /// Unlock after the holder proved their identity again (SMS code checked by the caller,
    /// identity checked here by the provider); sets a new PIN.
    pub async fn unlock(
        &self,
        id: &str,
        phone: &str,
        proof: IdentityProof<'_>,
        new: &Pin,
        actor: &str,
    ) -> Result<(), CustodyError> {
        let IdentityProof { provider: identity, identifier: claimed_identifier, evidence } = proof;
        let c = self.store.credential(id).await?.filter(|c| c.phone == phone).ok_or(CustodyError::NotFound)?;
        if c.status == "destroyed" {
            return Err(CustodyError::NotUsable("its key was destroyed when it was revoked"));
        }
        let approval = self.store.approval(&c.approval_id).await?.ok_or(CustodyError::NotFound)?;
        let verified =
            identity.verify(&approval.identifier, claimed_identifier, evidence).map_err(CustodyError::Invalid)?;
        if !verified {
            let audit =
                self.event("identity.refused", actor, Some(&c.serial), serde_json::json!({ "credential": c.id }));
            self.store.audit(&audit).await?;
            return Err(CustodyError::IdentityRefused);
        }
        let hash = pin::hash(&self.hsm, &c.id, new).await?;
        let audit =
            self.event("credential.unlocked", actor, Some(&c.serial), serde_json::json!({ "credential": c.id }));
        self.store.set_pin(&c.id, &hash, self.now(), &audit).await?;
        Ok(())
    }
}
