//! Holders' cloud keys. An approval (identity, phone, profile, the person who will hold the
//! key) becomes a credential when the holder, after an identity proof ([`proof`]), sets a PIN:
//! the approval is claimed first, the key is generated in the HSM and kept only wrapped, the
//! certificate is issued through the normal issuance steps, and the PIN is stored as an
//! Argon2id hash of its HSM-peppered HMAC. Every signature checks, in order: the credential is
//! the caller's, not locked or destroyed; its certificate is neither revoked nor expired; a PIN
//! try is reserved in the database, then the PIN is checked (a wrong one stays counted and locks
//! at the limit); the blob is bound to this row. A PIN is set again (unlock, reset) only by
//! spending a fresh identity proof, and the holder is told by SMS.

pub mod pin;
pub mod proof;

use std::sync::Arc;

use rand::RngCore;

use crate::ca::{CaError, IssuanceService, Issued, VerifiedRequest};
use crate::clock::Clock;
use crate::config::CustodyConfig;
use crate::hsm::{custody::BLOB_VERSION, Binding, HsmError, HsmPool, KeyAlgorithm};
use crate::providers::{ProviderError, SmsProvider};
use crate::security_events::SecurityEvents;
use crate::status::{RevocationReason, StatusService};
use crate::store::{
    ApprovalRecord, AuditRecord, CertificateRecord, CredentialRecord, HolderIdentity, ProofSpend, Store, StoreError,
    UnlockAllowance,
};
pub use pin::Pin;
pub use proof::{ProofMethod, ProofPurpose, Proofs, StartedProof};

/// PIN unlocks one credential may have, by the RA's unlock orders and the app's unlock
/// together, in 30 days from the first (review M1: each unlock restarts the PIN counter, so
/// unlimited unlocks are unlimited PIN guesses for whoever passes the check).
pub const UNLOCKS: UnlockAllowance = UnlockAllowance { max: 2, window_seconds: 30 * 86_400 };

/// Why a custody action failed. Each variant is something the holder or operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    /// Malformed input; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No such approval or credential for this holder.
    #[error("no such credential or approval for this phone")]
    NotFound,
    /// The approval was already turned into a credential (or cancelled, or is being enrolled).
    #[error("this approval has been used already")]
    ApprovalUsed,
    /// Nobody enrolled within `custody.approval_days`; the RA or an officer approves again.
    #[error("this approval has expired; apply again")]
    ApprovalExpired,
    /// The approval does not name the person who will hold the key, so no identity proof can
    /// check them (approvals from before this was recorded; an organisation approval without
    /// its agent).
    #[error("this approval names no holder to check; ask the CA for a new approval")]
    NoHolder,
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
    /// The identity check failed (the provider said the person does not match).
    #[error("the identity check failed")]
    IdentityRefused,
    /// A face proof of a holder whose identity document is not the mainland resident ID: the
    /// face check knows people by that one only.
    #[error("the face check knows people by the mainland resident ID only; prove your identity with your bank card")]
    FaceNeedsResidentId,
    /// No such identity proof for this action, target and phone.
    #[error("no such identity proof for this action")]
    ProofNotFound,
    /// The face check is not finished yet: ask again shortly.
    #[error("the identity check is not finished yet")]
    ProofPending,
    /// The proof expired or was spent: start a new one.
    #[error("the identity check has expired or was used; start a new one")]
    ProofExpired,
    /// Too many identity proofs for this credential or approval today.
    #[error("too many identity checks for this certificate today; try again tomorrow")]
    TooManyProofs,
    /// The credential's PIN was unlocked as often as [`UNLOCKS`] allows in its window: only an
    /// officer, with the holder in person, unlocks it again (review M1).
    #[error(
        "the PIN of this certificate was unlocked {} times in {} days; go to a service counter",
        UNLOCKS.max,
        UNLOCKS.window_seconds / 86_400
    )]
    UnlocksUsed,
    /// An unlock asked of a credential that is not locked (a forgotten PIN is a reset).
    #[error("the credential is not locked")]
    NotLocked,
    /// The state changed under the request (another unlock, a lock, a revocation): nothing was
    /// written; read it again.
    #[error("the credential changed meanwhile; nothing was changed")]
    Conflict,
    /// The identity provider gave no answer (down, too slow, or none configured).
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// The code texted during an identity proof.
    #[error("{0}")]
    Code(crate::mobile::LoginError),
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

/// A new PIN set after an identity proof: which proof, the code of a bank-card proof, the PIN.
pub struct ProvenPin<'a> {
    /// The passed identity proof for this action.
    pub proof_id: &'a str,
    /// The code texted to the bank card's reserved phone (bank-card proofs only).
    pub code: Option<&'a str>,
    /// The new PIN.
    pub pin: &'a Pin,
}

/// The custody service.
#[derive(Clone)]
pub struct Custody {
    store: Store,
    hsm: HsmPool,
    issuance: IssuanceService,
    /// Revokes a certificate whose enrolment failed after issuance.
    status: StatusService,
    /// Identity proofs before a PIN is set.
    pub proofs: Proofs,
    /// Texts the holder that their PIN was reset.
    sms: Arc<dyn SmsProvider>,
    clock: Arc<dyn Clock>,
    /// Limits and lifetimes.
    pub config: CustodyConfig,
    /// Refused unlocks and resets, one entry per holder per minute.
    events: SecurityEvents,
}

/// The parts [`Custody`] is built from.
pub struct CustodyParts {
    /// Database.
    pub store: Store,
    /// HSM.
    pub hsm: HsmPool,
    /// Issuance.
    pub issuance: IssuanceService,
    /// Revocation.
    pub status: StatusService,
    /// Identity proofs.
    pub proofs: Proofs,
    /// SMS, for the reset notice.
    pub sms: Arc<dyn SmsProvider>,
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
    pub fn new(parts: CustodyParts) -> Self {
        let CustodyParts { store, hsm, issuance, status, proofs, sms, config } = parts;
        let clock = issuance.clock.clone();
        let events = SecurityEvents::new(store.clone(), clock.clone());
        Custody { store, hsm, issuance, status, proofs, sms, clock, config, events }
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

    /// Records that this identity, at this phone, may hold a certificate of `profile` until the
    /// approval expires (the back office, and the RA after its checks). `holder` is the person
    /// who will hold the key: for a personal certificate the subject itself (taken from it when
    /// None; a different one is refused), for an organisation's its agent (required).
    pub async fn create_approval(
        &self,
        profile: &str,
        subject: Vec<(String, String)>,
        phone: &str,
        holder: Option<HolderIdentity>,
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
        let holder = approval_holder(profile, &subject, &identifier, holder)?;
        let now = self.now();
        let approval = ApprovalRecord {
            id: new_id(),
            profile: profile.to_string(),
            subject: serde_json::to_string(&subject).unwrap_or_default(),
            identifier,
            phone: phone.to_string(),
            status: "approved".into(),
            created_at: now,
            created_by: actor.to_string(),
            expires_at: now + self.config.approval_days * 86_400,
            holder: Some(holder),
        };
        // The audit log is read by auditors in bulk: the subject's identifier and phone are
        // masked there as everywhere (threat model, personal data); the approval row, which
        // the id names, holds them whole.
        let detail = serde_json::json!({
            "approval": approval.id,
            "profile": profile,
            "identifier": crate::ra::mask_identifier(&approval.identifier),
            "phone": crate::audit::masked_phone(phone),
        });
        self.store.insert_approval(&approval, &self.event("approval.created", actor, None, detail)).await?;
        Ok(approval)
    }

    /// The approval of this phone that can still be enrolled, and the person it names.
    pub async fn enrollable(
        &self,
        approval_id: &str,
        phone: &str,
    ) -> Result<(ApprovalRecord, HolderIdentity), CustodyError> {
        let approval =
            self.store.approval(approval_id).await?.filter(|a| a.phone == phone).ok_or(CustodyError::NotFound)?;
        if approval.status != "approved" {
            return Err(CustodyError::ApprovalUsed);
        }
        if approval.expires_at <= self.now() {
            return Err(CustodyError::ApprovalExpired);
        }
        let holder = approval.holder.clone().ok_or(CustodyError::NoHolder)?;
        Ok((approval, holder))
    }

    /// Sets the first PIN of an approved certificate, in numbered steps:
    /// 1. the approval is this phone's, unexpired, names its holder; the PIN is not weak;
    /// 2. the identity proof for this approval has passed;
    /// 3. the proof is spent and the approval claimed (`approved` → `enrolling`) in one
    ///    transaction, so a concurrent enrolment gets nothing;
    /// 4. the key is generated in the HSM, the certificate issued, the credential stored and the
    ///    approval marked used;
    /// 5. if step 4 fails, a certificate it issued is revoked and the approval given back, so no
    ///    valid certificate is ever left without its credential.
    pub async fn enroll(
        &self,
        approval_id: &str,
        phone: &str,
        proven: ProvenPin<'_>,
        actor: &str,
    ) -> Result<(CredentialRecord, Issued), CustodyError> {
        let (approval, holder) = self.enrollable(approval_id, phone).await?;
        proven.pin.check_strength(Some(&holder.id_number))?;
        let purpose = ProofPurpose::Enrol;
        self.proofs.settle(proven.proof_id, phone, purpose, approval_id, proven.code).await?;
        let spend = ProofSpend { id: proven.proof_id, phone, purpose: purpose.name(), target: approval_id };
        let detail = serde_json::json!({ "approval": approval.id, "proof": proven.proof_id });
        if !self
            .store
            .claim_approval_with_proof(&spend, self.now(), &self.event("approval.claimed", actor, None, detail))
            .await?
        {
            return Err(CustodyError::ApprovalUsed);
        }
        let mut issued_serial = None;
        let made = self.make_credential(&approval, phone, proven.pin, actor, &mut issued_serial).await;
        if let Err(e) = &made {
            tracing::warn!(target: "audit", approval = %approval.id, error = %e, "enrolment failed; undoing it");
            self.undo_enrolment(&approval.id, issued_serial.as_deref(), actor).await;
        }
        made
    }

    /// Step 4 of [`Custody::enroll`]: key, certificate, credential. Sets `issued` as soon as a
    /// certificate exists, so a failure after it can be undone.
    async fn make_credential(
        &self,
        approval: &ApprovalRecord,
        phone: &str,
        pin: &Pin,
        actor: &str,
        issued_serial: &mut Option<String>,
    ) -> Result<(CredentialRecord, Issued), CustodyError> {
        let subject: Vec<(String, String)> = serde_json::from_str(&approval.subject)
            .map_err(|_| CustodyError::Invalid("the approval's subject is unreadable".into()))?;
        let id = new_id();
        let pin_hash = pin::hash(&self.hsm, &id, pin).await?;
        let algorithm = KeyAlgorithm::EcdsaP256;
        let wrapped = self.hsm.generate_wrapped(algorithm).await?;
        let request = VerifiedRequest::from_custody_key(subject, &wrapped.spki).map_err(CaError::from)?;
        let issued = self.issuance.issue_verified(&approval.profile, &request, actor).await?;
        *issued_serial = Some(issued.serial.clone());
        let credential = CredentialRecord {
            binding: self.binding(&id, &issued.serial, &wrapped.blob).await?,
            pin_hash,
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
            if let Err(e) = self.store.claim_org_admin(&approval.identifier, phone, self.now(), &audit).await {
                // The credential exists and is the holder's; only the role is missing, which the
                // organisation's administrator or an officer can give later.
                tracing::warn!(error = %e, org = %approval.identifier, "cannot record the organisation administrator");
            }
        }
        Ok((credential, issued))
    }

    /// Step 5 of [`Custody::enroll`]: revokes a certificate issued for a failed enrolment and
    /// gives the approval back. Best effort, logged: a certificate that cannot be revoked now
    /// is named in the log for an officer.
    async fn undo_enrolment(&self, approval_id: &str, serial: Option<&str>, actor: &str) {
        if let Some(serial) = serial {
            if let Err(e) = self.status.revoke(serial, RevocationReason::CessationOfOperation, None, actor).await {
                tracing::error!(target: "audit", serial, error = %e, "cannot revoke the certificate of a failed enrolment; revoke it by hand");
            }
        }
        if let Err(e) = self.store.release_approval(approval_id).await {
            tracing::error!(approval = approval_id, error = %e, "cannot give a claimed approval back");
        }
    }

    /// The HMAC that ties a blob to its credential row and certificate.
    async fn binding(&self, id: &str, serial: &str, blob: &[u8]) -> Result<String, CustodyError> {
        Ok(hex::encode(self.hsm.pepper(&binding_message(id, serial, blob)).await?))
    }

    /// The holder's credential and its certificate, if it can sign at all (not locked, not
    /// destroyed, certificate neither revoked nor expired). Does not check the PIN. The
    /// certificate comes back so that signing does not read it again.
    pub async fn usable(
        &self,
        credential_id: &str,
        phone: &str,
    ) -> Result<(CredentialRecord, CertificateRecord), CustodyError> {
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
        Ok((c, cert))
    }

    /// Checks the PIN of a usable credential in three steps: reserve a try in the database
    /// (refused when the credential is not active or every try is taken, so K parallel guesses
    /// across daemons get exactly `max_pin_failures` checks), run Argon2, then settle: a right
    /// PIN clears the count (and is refused if the credential locked meanwhile), a wrong one
    /// stays counted (audited) and locks the credential at the limit.
    pub async fn check_pin(&self, c: &CredentialRecord, pin: &Pin, actor: &str) -> Result<(), CustodyError> {
        self.check_pin_unsettled(c, pin, actor).await?;
        if !self.store.settle_pin_success(&c.id, self.now()).await? {
            return Err(CustodyError::Locked);
        }
        Ok(())
    }

    /// [`Custody::check_pin`] but for settling a right PIN: its reserved try stays counted
    /// until the caller settles it in the transaction that uses the PIN, which must also refuse
    /// a credential no longer active (signing: [`Store::authorize_once`]). One durable commit
    /// fewer on the path the holder waits for.
    pub async fn check_pin_unsettled(&self, c: &CredentialRecord, pin: &Pin, actor: &str) -> Result<(), CustodyError> {
        let max = self.config.max_pin_failures;
        let Some(_reserved) = self.store.reserve_pin_attempt(&c.id, max, self.now()).await? else {
            return Err(CustodyError::Locked);
        };
        if pin::verify(&self.hsm, &c.id, pin, &c.pin_hash).await? {
            return Ok(());
        }
        let detail = serde_json::json!({ "credential": c.id });
        let audit = self.event("pin.failed", actor, Some(&c.serial), detail);
        let (attempts, status) = self.store.settle_pin_failure(&c.id, max, self.now(), &audit).await?;
        tracing::warn!(target: "audit", credential = %c.id, attempts, "wrong PIN");
        if status == "locked" {
            let detail = serde_json::json!({ "credential": c.id, "attempts": attempts });
            self.store.audit(&self.event("credential.locked", actor, Some(&c.serial), detail)).await?;
            return Err(CustodyError::Locked);
        }
        Err(CustodyError::WrongPin { remaining: (max - attempts).max(0) })
    }

    /// Signs token inputs (digests) with the credential's key: in the HSM, the blob's binding
    /// to this row checked, then unwrap, all signatures, destroy ([`HsmPool::sign_bound`]).
    pub async fn sign(&self, c: &CredentialRecord, inputs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, CustodyError> {
        let blob = c.key_blob.as_deref().ok_or(CustodyError::NotUsable("no key"))?;
        let algorithm = KeyAlgorithm::from_name(&c.key_algorithm).ok_or(CustodyError::NotUsable("unknown key type"))?;
        let binding = Binding {
            message: binding_message(&c.id, &c.serial, blob),
            mac: hex::decode(&c.binding).unwrap_or_default(),
        };
        match self.hsm.sign_bound(blob, binding, algorithm, inputs).await {
            Err(HsmError::NotBound) => {
                tracing::error!(target: "audit", credential = %c.id, "wrapped key not bound to this credential; refusing");
                Err(CustodyError::NotUsable("its key does not belong to it"))
            }
            signed => Ok(signed?),
        }
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
        let (c, _) = self.usable(id, phone).await?;
        new.check_strength(self.holder_id_number(&c).await?.as_deref())?;
        self.check_pin(&c, old, actor).await?;
        let hash = pin::hash(&self.hsm, &c.id, new).await?;
        let audit = self.event("pin.changed", actor, Some(&c.serial), serde_json::json!({ "credential": c.id }));
        // Only an active credential: a lock that landed meanwhile stays.
        if !self.store.set_pin(&c.id, &hash, self.now(), &audit).await? {
            return Err(CustodyError::Locked);
        }
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
        renews_until: Option<i64>,
        actor: &str,
    ) -> Result<Issued, CustodyError> {
        let old = self.store.certificate(&credential.serial).await?.ok_or(CustodyError::NotFound)?;
        let spki = VerifiedRequest::from_certificate(&old.der).map_err(CaError::from)?.spki;
        let mut request = VerifiedRequest::from_custody_key(subject, &spki).map_err(CaError::from)?;
        request.renews_until = renews_until;
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
    /// order (the holder proved their identity to the RA). An order the channel approved by
    /// itself counts against [`UNLOCKS`] and is refused past it; an officer's decision (the
    /// holder at a service counter) is counted but not capped.
    pub async fn lift_lock(
        &self,
        credential: &CredentialRecord,
        actor: &str,
        order: &str,
        by_officer: bool,
    ) -> Result<(), CustodyError> {
        let detail = serde_json::json!({ "credential": credential.id, "order": order });
        let audit = self.event("credential.unlocked", actor, Some(&credential.serial), detail);
        let allowance = (!by_officer).then_some(UNLOCKS);
        if !self.store.lift_lock(&credential.id, self.now(), allowance, &audit).await? {
            return Err(self.why_not_unlocked(credential).await?);
        }
        Ok(())
    }

    /// Why an unlock's update changed nothing: the allowance is used up, or the key is gone.
    async fn why_not_unlocked(&self, credential: &CredentialRecord) -> Result<CustodyError, CustodyError> {
        let since = self.now() - UNLOCKS.window_seconds;
        if self.store.unlocks_since(&credential.serial, since).await? >= UNLOCKS.max {
            return Ok(CustodyError::UnlocksUsed);
        }
        let gone = self.store.credential(&credential.id).await?.is_none_or(|c| c.status == "destroyed");
        Ok(if gone {
            CustodyError::NotUsable("its key was destroyed when it was revoked")
        } else {
            CustodyError::Conflict
        })
    }

    /// The holder's credential a PIN may be set again on (`Unlock`: locked; `Reset`: active),
    /// with the person its approval names.
    pub async fn resettable(
        &self,
        id: &str,
        phone: &str,
        purpose: ProofPurpose,
    ) -> Result<(CredentialRecord, HolderIdentity), CustodyError> {
        let c = self.store.credential(id).await?.filter(|c| c.phone == phone).ok_or(CustodyError::NotFound)?;
        match (purpose, c.status.as_str()) {
            (_, "destroyed") => return Err(CustodyError::NotUsable("its key was destroyed when it was revoked")),
            (ProofPurpose::Unlock, "locked") | (ProofPurpose::Reset, "active") => {}
            (ProofPurpose::Unlock, _) => return Err(CustodyError::NotLocked),
            _ => return Err(CustodyError::Locked),
        }
        let approval = self.store.approval(&c.approval_id).await?.ok_or(CustodyError::NotFound)?;
        let holder = approval.holder.ok_or(CustodyError::NoHolder)?;
        Ok((c, holder))
    }

    /// Sets a new PIN after a fresh identity proof: unlocks a locked credential (`Unlock`) or
    /// replaces a forgotten PIN (`Reset`). The proof must have passed for exactly this action,
    /// credential and phone; it is spent in the transaction that sets the PIN, so a failed or
    /// refused attempt changes nothing. Every outcome is audited, and the holder is texted that
    /// the PIN was reset. A refusal (no such credential, not locked, a weak PIN, a proof
    /// missing, failed or spent, a wrong code of a bank-card proof) is `pin.reset_refused`,
    /// written once per holder's phone per minute with the count of the others, so someone
    /// holding the phone and trying to take the key over is on record without flooding the log;
    /// the refusal stands even if its entry cannot be written.
    pub async fn reset_pin(
        &self,
        id: &str,
        phone: &str,
        purpose: ProofPurpose,
        proven: ProvenPin<'_>,
        actor: &str,
    ) -> Result<(), CustodyError> {
        let result = self.reset_pin_steps(id, phone, purpose, &proven, actor).await;
        if let Err(e) = &result {
            let detail = serde_json::json!({ "credential": id, "purpose": purpose.name(), "proof": proven.proof_id, "reason": e.to_string() });
            self.events.refused("pin.reset_refused", actor, &format!("phone:{phone}"), None, detail).await;
        }
        result
    }

    async fn reset_pin_steps(
        &self,
        id: &str,
        phone: &str,
        purpose: ProofPurpose,
        proven: &ProvenPin<'_>,
        actor: &str,
    ) -> Result<(), CustodyError> {
        let (c, holder) = self.resettable(id, phone, purpose).await?;
        if purpose == ProofPurpose::Unlock {
            // Before the proof is spent; the update checks again, atomically.
            let since = self.now() - UNLOCKS.window_seconds;
            if self.store.unlocks_since(&c.serial, since).await? >= UNLOCKS.max {
                return Err(CustodyError::UnlocksUsed);
            }
        }
        proven.pin.check_strength(Some(&holder.id_number))?;
        self.proofs.settle(proven.proof_id, phone, purpose, &c.id, proven.code).await?;
        let hash = pin::hash(&self.hsm, &c.id, proven.pin).await?;
        let kind = if purpose == ProofPurpose::Unlock { "credential.unlocked" } else { "pin.reset" };
        let detail = serde_json::json!({ "credential": c.id, "proof": proven.proof_id });
        let audit = self.event(kind, actor, Some(&c.serial), detail);
        let spend = ProofSpend { id: proven.proof_id, phone, purpose: purpose.name(), target: &c.id };
        let (from, allowance) =
            if purpose == ProofPurpose::Unlock { ("locked", Some(UNLOCKS)) } else { ("active", None) };
        if !self.store.reset_pin_with_proof(&spend, from, &hash, self.now(), allowance, &audit).await? {
            return Err(if purpose == ProofPurpose::Unlock {
                self.why_not_unlocked(&c).await?
            } else {
                CustodyError::Conflict
            });
        }
        self.notify_reset(&c).await;
        Ok(())
    }

    /// Tells the holder out of band that their PIN was set again, so a takeover does not go
    /// unnoticed. Best effort: a text that does not go out is logged and audited.
    async fn notify_reset(&self, c: &CredentialRecord) {
        let text = format!(
            "cloudca: the PIN of your certificate {} was reset. If this was not you, call your CA at once to revoke it. \
             cloudca：您的证书 {} 的密码已重置；如非本人操作，请立即联系 CA 吊销。",
            c.serial, c.serial
        );
        let deadline = std::time::Duration::from_secs(5);
        let sent =
            crate::providers::call(crate::providers::SMS, "send", deadline, self.sms.send(&c.phone, &text)).await;
        if let Err(e) = sent {
            tracing::warn!(target: "audit", credential = %c.id, error = %e, "the PIN reset notice was not sent");
            let detail = serde_json::json!({ "credential": c.id, "error": e.to_string() });
            if let Err(e) =
                self.store.audit(&self.event("pin.reset_notice_failed", "daemon", Some(&c.serial), detail)).await
            {
                tracing::warn!(error = %e, "cannot audit a failed reset notice");
            }
        }
    }

    /// The resident ID of the person a credential's approval names, for the weak-PIN rules.
    async fn holder_id_number(&self, c: &CredentialRecord) -> Result<Option<String>, CustodyError> {
        Ok(self.store.approval(&c.approval_id).await?.and_then(|a| a.holder).map(|h| h.id_number))
    }
}

/// What a blob's binding HMAC covers: the credential, its certificate's serial and the blob.
fn binding_message(id: &str, serial: &str, blob: &[u8]) -> Vec<u8> {
    let mut message = format!("cloudca-blob\n{id}\n{serial}\n").into_bytes();
    message.extend_from_slice(blob);
    message
}

/// The person an approval names as holder: for `personal`, the subject (CN and serialNumber),
/// and a `holder` given must be that person; for other profiles (organisations) the `holder`
/// given, required.
fn approval_holder(
    profile: &str,
    subject: &[(String, String)],
    identifier: &str,
    holder: Option<HolderIdentity>,
) -> Result<HolderIdentity, CustodyError> {
    let resident = |id: &str| {
        let id = id.trim();
        let check = id.get(..17).and_then(crate::ca::identifiers::resident_id_check_char);
        id.len() == 18
            && check.is_some_and(|c| id.ends_with(c.to_ascii_uppercase()) || id.ends_with(c.to_ascii_lowercase()))
    };
    let valid = |h: &HolderIdentity| !h.name.trim().is_empty() && resident(&h.id_number);
    if profile == "personal" {
        // A personal subject may hold another document (`passport:…`); its rules, then, with
        // the date irrelevant to them (issuance checks the whole identifier again).
        let valid = |h: &HolderIdentity| {
            !h.name.trim().is_empty()
                && match h.document() {
                    (id_type, _) if id_type.is_resident_id() => resident(&h.id_number),
                    (id_type, number) => crate::ca::identifiers::validate_document(id_type, number, (0, 0, 0)).is_ok(),
                }
        };
        let name = subject.iter().find(|(k, _)| k == "CN").map(|(_, v)| v.clone()).unwrap_or_default();
        let own = HolderIdentity { name, id_number: identifier.to_string() };
        return match holder {
            Some(h) if !h.id_number.eq_ignore_ascii_case(identifier) => {
                Err(CustodyError::Invalid("holder: a personal certificate's holder is its subject".into()))
            }
            _ if valid(&own) => Ok(own),
            _ => Err(CustodyError::Invalid(
                "subject: CN and a serialNumber that is a resident ID or `{id-type}:{number}` are required".into(),
            )),
        };
    }
    match holder {
        Some(h) if valid(&h) => Ok(h),
        Some(_) => Err(CustodyError::Invalid("holder: name and an 18-character resident ID number".into())),
        None => {
            Err(CustodyError::Invalid("holder: the agent who will hold the key (name, id_number) is required".into()))
        }
    }
}
