//! Identity proofs before a PIN is set. Whoever holds the holder's phone (a SIM swap, an
//! intercepted SMS, a stolen phone) can log in; they must not be able to set the PIN that
//! releases the key. So before a first PIN (enrolment), an unlock or a reset, the server starts
//! a check of the person on the approval with the identity provider, as the handbook's app does:
//!
//! - `face`: a face check with liveness against the holder's ID photo; the app opens the
//!   provider's page, the server asks the provider for the verdict. It knows people by the
//!   mainland resident ID only, so a holder with another document is refused it
//!   ([`CustodyError::FaceNeedsResidentId`]) and proves with the bank card;
//! - `bank_card`: bank card four elements (name, identity document's type and number, card
//!   number, the card's reserved phone) checked by the provider, then a code texted to that
//!   reserved phone.
//!
//! Nothing the client sends decides: the name and ID number come from the approval, the verdict
//! from the provider. A proof is for one action on one target by one phone, expires after
//! `custody.proof_seconds`, and is spent in the transaction that sets the PIN
//! (`Store::reset_pin_with_proof`, `Store::claim_approval_with_proof`). At most
//! `custody.proofs_per_day` proofs start per target per day, counted in the database.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::CustodyConfig;
use crate::mobile::{Mobile, Purpose};
use crate::providers::identity::{CheckOutcome, FaceStatus, FaceVia, IdentityChecks};
use crate::providers::{call, ProviderError};
use crate::security_events::SecurityEvents;
use crate::store::{AuditRecord, HolderIdentity, ProofRecord, Store};

use super::{new_id, valid_phone, CustodyError};

/// What a proof is for; stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofPurpose {
    /// The first PIN of an approval.
    Enrol,
    /// A new PIN for a locked credential.
    Unlock,
    /// A new PIN for an active credential whose PIN the holder forgot.
    Reset,
}

impl ProofPurpose {
    /// Parses `enrol`, `unlock` or `reset`.
    pub fn parse(text: &str) -> Result<ProofPurpose, CustodyError> {
        match text {
            "enrol" => Ok(ProofPurpose::Enrol),
            "unlock" => Ok(ProofPurpose::Unlock),
            "reset" => Ok(ProofPurpose::Reset),
            _ => Err(CustodyError::Invalid("purpose: enrol, unlock or reset".into())),
        }
    }

    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            ProofPurpose::Enrol => "enrol",
            ProofPurpose::Unlock => "unlock",
            ProofPurpose::Reset => "reset",
        }
    }
}

/// How the holder proves who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofMethod {
    /// Face with liveness.
    Face,
    /// Bank card four elements, then a code to the card's reserved phone.
    BankCard {
        /// Card number.
        card: String,
        /// The phone the bank has for the card (E.164).
        reserved_phone: String,
    },
}

impl ProofMethod {
    fn name(&self) -> &'static str {
        match self {
            ProofMethod::Face => "face",
            ProofMethod::BankCard { .. } => "bank_card",
        }
    }
}

/// A started proof, as the app sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StartedProof {
    /// Proof id, given back with the PIN.
    pub proof_id: String,
    /// `face` or `bank_card`.
    pub method: &'static str,
    /// `pending` (face: not finished; bank card: waiting for the code) or `passed`.
    pub state: String,
    /// The provider's face-check page, for the app to open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The identity-proof service (part of [`super::Custody`]).
#[derive(Clone)]
pub struct Proofs {
    store: Store,
    identity: Arc<dyn IdentityChecks>,
    mobile: Mobile,
    clock: Arc<dyn Clock>,
    config: CustodyConfig,
    /// Deadline of one provider call (`ra.provider_timeout_ms`).
    deadline: Duration,
    /// Proofs refused by the daily limit, one entry per phone per minute.
    events: SecurityEvents,
}

impl Proofs {
    /// Built by `Instance::open` with the provider the RA uses.
    pub fn new(
        store: Store,
        identity: Arc<dyn IdentityChecks>,
        mobile: Mobile,
        clock: Arc<dyn Clock>,
        config: CustodyConfig,
        deadline: Duration,
    ) -> Self {
        let events = SecurityEvents::new(store.clone(), clock.clone());
        Proofs { store, identity, mobile, clock, config, deadline, events }
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    fn event(&self, kind: &str, phone: &str, detail: serde_json::Value) -> AuditRecord {
        AuditRecord::new(self.clock.as_ref(), kind, &format!("phone:{phone}"), None, detail)
    }

    /// Starts a check of `holder` for `purpose` on `target`, within the daily limit (a refusal
    /// is `identity.proof_limited`, once per phone per minute). A bank card the provider does
    /// not match fails at once (audited, nothing else written).
    pub async fn start(
        &self,
        phone: &str,
        purpose: ProofPurpose,
        target: &str,
        holder: &HolderIdentity,
        method: ProofMethod,
    ) -> Result<StartedProof, CustodyError> {
        let now = self.now();
        if self.store.proofs_started_since(target, now - 86_400).await? >= self.config.proofs_per_day {
            let detail = serde_json::json!({ "purpose": purpose.name(), "target": target });
            let actor = format!("phone:{phone}");
            self.events.refused("identity.proof_limited", &actor, &actor, None, detail).await;
            return Err(CustodyError::TooManyProofs);
        }
        let id = new_id();
        let (reference, face_url) = match &method {
            ProofMethod::Face => {
                if !holder.document().0.is_resident_id() {
                    return Err(CustodyError::FaceNeedsResidentId);
                }
                let started = self.identity.start_face(&holder.name, &holder.id_number, FaceVia::App);
                let session = call("identity", "face", self.deadline, started).await?;
                (session.id, Some(session.url))
            }
            ProofMethod::BankCard { card, reserved_phone } => {
                self.check_card(phone, purpose, target, holder, card, reserved_phone).await?;
                (reserved_phone.clone(), None)
            }
        };
        let record = ProofRecord {
            id: id.clone(),
            phone: phone.to_string(),
            purpose: purpose.name().into(),
            target: target.to_string(),
            method: method.name().into(),
            reference: reference.clone(),
            state: "pending".into(),
            created_at: now,
            expires_at: now + self.config.proof_seconds,
        };
        let detail =
            serde_json::json!({ "proof": id, "purpose": purpose.name(), "target": target, "method": method.name() });
        self.store.insert_proof(&record, &self.event("identity.proof_started", phone, detail)).await?;
        if matches!(method, ProofMethod::BankCard { .. }) {
            self.mobile.send_code(&reference, Purpose::IdentityProof, &id).await.map_err(CustodyError::Code)?;
        }
        Ok(StartedProof {
            proof_id: id,
            method: method.name(),
            state: record.state,
            face_url,
            expires_at: record.expires_at,
        })
    }

    /// The provider's bank-card check of the approval's person with the card and its phone.
    async fn check_card(
        &self,
        phone: &str,
        purpose: ProofPurpose,
        target: &str,
        holder: &HolderIdentity,
        card: &str,
        reserved_phone: &str,
    ) -> Result<(), CustodyError> {
        let card_ok = (12..=19).contains(&card.len()) && card.bytes().all(|b| b.is_ascii_digit());
        if !card_ok {
            return Err(CustodyError::Invalid("card: 12 to 19 digits".into()));
        }
        if !valid_phone(reserved_phone) {
            return Err(CustodyError::Invalid("card_phone: E.164, e.g. +8613800138000".into()));
        }
        let (id_type, number) = holder.document();
        let check = self.identity.bank_card_four(&holder.name, id_type, number, card, reserved_phone);
        match call("identity", "bank_card_four", self.deadline, check).await? {
            CheckOutcome::Passed => Ok(()),
            CheckOutcome::Failed(reason) => {
                let detail = serde_json::json!({ "purpose": purpose.name(), "target": target, "method": "bank_card", "reason": reason });
                self.store.audit(&self.event("identity.proof_failed", phone, detail)).await?;
                Err(CustodyError::IdentityRefused)
            }
        }
    }

    /// The proof of this phone, if it is for exactly this action and target.
    async fn mine(
        &self,
        id: &str,
        phone: &str,
        purpose: ProofPurpose,
        target: &str,
    ) -> Result<ProofRecord, CustodyError> {
        self.store
            .proof(id)
            .await?
            .filter(|p| p.phone == phone && p.purpose == purpose.name() && p.target == target)
            .ok_or(CustodyError::ProofNotFound)
    }

    /// Where a proof of this phone stands (`pending`, `passed`, `failed`, `used`, `expired`),
    /// asking the provider about a pending face check, for the app to poll.
    pub async fn poll(&self, id: &str, phone: &str) -> Result<String, CustodyError> {
        let p = self.store.proof(id).await?.filter(|p| p.phone == phone).ok_or(CustodyError::ProofNotFound)?;
        if p.state == "used" {
            return Ok(p.state);
        }
        if p.expires_at <= self.now() {
            return Ok("expired".into());
        }
        if p.state != "pending" || p.method != "face" {
            return Ok(p.state);
        }
        let purpose = ProofPurpose::parse(&p.purpose)?;
        match self.settle(&p.id, phone, purpose, &p.target, None).await {
            Ok(()) => Ok("passed".into()),
            Err(CustodyError::ProofPending) => Ok("pending".into()),
            Err(CustodyError::IdentityRefused) => Ok("failed".into()),
            Err(e) => Err(e),
        }
    }

    /// Brings a proof to a verdict: asks the provider about a pending face check, or checks the
    /// code sent to a bank card's reserved phone. Ok only when it has passed and can still be
    /// spent; the caller spends it in the transaction that sets the PIN.
    pub async fn settle(
        &self,
        id: &str,
        phone: &str,
        purpose: ProofPurpose,
        target: &str,
        code: Option<&str>,
    ) -> Result<(), CustodyError> {
        let p = self.mine(id, phone, purpose, target).await?;
        if p.expires_at <= self.now() {
            return Err(CustodyError::ProofExpired);
        }
        match p.state.as_str() {
            "passed" => return Ok(()),
            "failed" => return Err(CustodyError::IdentityRefused),
            "used" => return Err(CustodyError::ProofExpired),
            _ => {}
        }
        let verdict = match p.method.as_str() {
            "face" => {
                match call("identity", "face_status", self.deadline, self.identity.face_status(&p.reference)).await {
                    Ok(FaceStatus::Pending) => return Err(CustodyError::ProofPending),
                    Ok(FaceStatus::Passed) => Ok(()),
                    Ok(FaceStatus::Failed(reason)) => Err(reason),
                    Err(ProviderError::Refused(reason)) => Err(reason),
                    Err(away) => return Err(away.into()),
                }
            }
            _ => {
                let code = code.ok_or_else(|| {
                    CustodyError::Invalid("code: the code sent to the bank card's reserved phone".into())
                })?;
                // A wrong code is one of the code's few tries; the proof stays pending.
                self.mobile
                    .check_code(&p.reference, Purpose::IdentityProof, &p.id, code)
                    .await
                    .map_err(CustodyError::Code)?;
                Ok(())
            }
        };
        let (to, kind) =
            if verdict.is_ok() { ("passed", "identity.proof_passed") } else { ("failed", "identity.proof_failed") };
        let mut detail =
            serde_json::json!({ "proof": p.id, "purpose": p.purpose, "target": p.target, "method": p.method });
        if let Err(reason) = &verdict {
            detail["reason"] = serde_json::json!(reason);
        }
        self.store.judge_proof(&p.id, to, self.now(), &self.event(kind, phone, detail)).await?;
        verdict.map_err(|_| CustodyError::IdentityRefused)
    }
}
