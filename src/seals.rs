//! Seals: PNG images bound to an organisation (the credit code of its organisation
//! certificate). The agent who enrolled the organisation certificate becomes its certificate
//! administrator: with the phone and a fresh SMS code they add staff, appoint seal
//! administrators and hand the administrator role over. Seal additions and changes are requests
//! that a reviewer decides in the back office. Nobody here can sign for a holder or touch a
//! holder's PIN: signing stays with the credential and its PIN.

use std::sync::Arc;

use crate::audit::masked_phone;
use crate::clock::Clock;
use crate::custody::{new_id, valid_phone};
use crate::store::{AuditRecord, HandOver, MemberWrite, SealRecord, SealRequestRecord, Store, StoreError};

/// Largest seal image accepted (the JSON body limit leaves room for its base64).
pub const MAX_PNG_BYTES: usize = 40 * 1024;
/// Largest seal image side, pixels.
pub const MAX_PNG_SIDE: u32 = 2048;

/// Why a seal action failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Malformed input; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The caller does not hold the role this needs in that organisation.
    #[error("you are not {0} of this organisation")]
    NotAllowed(&'static str),
    /// No such request or seal.
    #[error("no such seal or request")]
    NotFound,
    /// Database.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Organisation roles a member may be given (the administrator role moves only by hand-over).
pub const MEMBER_ROLES: [&str; 2] = ["staff", "seal-admin"];

/// The refusal of a seal grant or a removal naming a phone that is not a member (the web page
/// shows it in the page's language).
pub const NOT_A_MEMBER: &str = "phone: not a member of this organisation; add them first";
/// The refusal of the administrator removing themself (the role moves only by hand-over).
pub const NOT_YOURSELF: &str = "phone: the administrator cannot remove themself; hand the role over first";

/// The seal service.
#[derive(Clone)]
pub struct Seals {
    store: Store,
    clock: Arc<dyn Clock>,
}

/// A PNG's dimensions after checking its signature and header.
pub fn check_png(bytes: &[u8]) -> Result<(u32, u32), SealError> {
    if bytes.len() > MAX_PNG_BYTES {
        return Err(SealError::Invalid(format!("png: at most {MAX_PNG_BYTES} bytes")));
    }
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder.read_info().map_err(|_| SealError::Invalid("png: not a PNG image".into()))?;
    let info = reader.info();
    if info.width == 0 || info.height == 0 || info.width > MAX_PNG_SIDE || info.height > MAX_PNG_SIDE {
        return Err(SealError::Invalid(format!("png: 1 to {MAX_PNG_SIDE} pixels a side")));
    }
    Ok((info.width, info.height))
}

/// Who may manage members and hand the role over (a [`SealError::NotAllowed`] names them).
const ADMIN: &str = "the certificate administrator";
/// Who may ask for seals and grant their use.
const SEAL_ADMIN: &str = "a seal administrator";

/// The answer to a write the store judged under its locks ([`MemberWrite`]): the acting phone
/// lost the role `what` names since it was checked (403, as if it never had it), or the write
/// was refused for the phone acted on (`refused`, 400).
fn judged(written: MemberWrite, what: &'static str, refused: &str) -> Result<(), SealError> {
    match written {
        MemberWrite::Written => Ok(()),
        MemberWrite::NotAllowed => Err(SealError::NotAllowed(what)),
        MemberWrite::Refused => Err(SealError::Invalid(refused.into())),
    }
}

impl Seals {
    /// Built by `Instance::open`.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Seals { store, clock }
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// An organisation or seal event acted by `phone`. The actor (`phone:` + the whole number)
    /// is who acted and stays whole: accountability needs to name them. A phone the detail
    /// carries (a member, the new administrator) is someone else's and goes through
    /// [`masked_phone`], as in every audit detail.
    fn event(&self, kind: &str, phone: &str, detail: serde_json::Value) -> AuditRecord {
        AuditRecord::new(self.clock.as_ref(), kind, &format!("phone:{phone}"), None, detail)
    }

    async fn require(
        &self,
        credit_code: &str,
        phone: &str,
        roles: &[&str],
        what: &'static str,
    ) -> Result<String, SealError> {
        match self.store.org_role(credit_code, phone).await? {
            Some(role) if roles.contains(&role.as_str()) => Ok(role),
            _ => Err(SealError::NotAllowed(what)),
        }
    }

    /// Adds a member or changes their role (administrator only).
    pub async fn set_member(&self, admin: &str, credit_code: &str, phone: &str, role: &str) -> Result<(), SealError> {
        self.require(credit_code, admin, &["admin"], ADMIN).await?;
        if !valid_phone(phone) {
            return Err(SealError::Invalid("phone: E.164, e.g. +8613800138000".into()));
        }
        if !MEMBER_ROLES.contains(&role) {
            return Err(SealError::Invalid("role: staff or seal-admin".into()));
        }
        let detail = serde_json::json!({ "org": credit_code, "member": masked_phone(phone), "role": role });
        let audit = self.event("org.member.set", admin, detail);
        let written = self.store.set_member(credit_code, phone, role, admin, self.now(), &audit).await?;
        judged(written, ADMIN, "the administrator's role moves only by hand-over")
    }

    /// Removes a member (handbook 人员管理; administrator only), withdrawing their leave to use
    /// the organisation's seals in the same transaction. The administrator cannot remove
    /// themself: the organisation would have nobody to manage it (the role moves by hand-over).
    pub async fn remove_member(&self, admin: &str, credit_code: &str, phone: &str) -> Result<(), SealError> {
        self.require(credit_code, admin, &["admin"], ADMIN).await?;
        if !valid_phone(phone) {
            return Err(SealError::Invalid("phone: E.164, e.g. +8613800138000".into()));
        }
        if phone == admin {
            return Err(SealError::Invalid(NOT_YOURSELF.into()));
        }
        let detail = serde_json::json!({ "org": credit_code, "member": masked_phone(phone) });
        let audit = self.event("org.member.removed", admin, detail);
        // The hand-over codes this administrator sent to the member are spent in the removal's
        // transaction: an offer to a removed member cannot be accepted, even by an acceptance
        // whose code was checked before the removal committed.
        let offers = crate::ra::hand_over_code_scope(credit_code, admin);
        let written = self.store.remove_member(credit_code, admin, phone, &offers, &audit).await?;
        judged(written, ADMIN, NOT_A_MEMBER)
    }

    /// Hands the administrator role from `admin` to another phone, spending `code` (the new
    /// administrator's acceptance code, checked but not yet used) in the same transaction
    /// ([`crate::store::Store::hand_over_admin`]): nothing moves if the code was withdrawn or
    /// used since it was checked, or `admin` no longer holds the role.
    pub async fn hand_over(
        &self,
        admin: &str,
        credit_code: &str,
        to: &str,
        code: crate::mobile::CheckedCode,
    ) -> Result<HandOver, SealError> {
        self.require(credit_code, admin, &["admin"], ADMIN).await?;
        if !valid_phone(to) || to == admin {
            return Err(SealError::Invalid("phone: another E.164 number".into()));
        }
        let audit = self.event(
            "org.admin.handed_over",
            admin,
            serde_json::json!({ "org": credit_code, "to": masked_phone(to) }),
        );
        Ok(self.store.hand_over_admin(credit_code, admin, to, code.id, self.now(), &audit).await?)
    }

    /// Records a new seal or a change for review (administrator or seal administrator).
    pub async fn request(
        &self,
        phone: &str,
        credit_code: &str,
        name: &str,
        png: Vec<u8>,
        seal_id: Option<String>,
    ) -> Result<SealRequestRecord, SealError> {
        self.require(credit_code, phone, &["admin", "seal-admin"], SEAL_ADMIN).await?;
        if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(SealError::Invalid("name: 1 to 64 characters".into()));
        }
        check_png(&png)?;
        if let Some(id) = &seal_id {
            let seal = self.store.seal(id).await?.filter(|s| s.credit_code == credit_code);
            seal.ok_or(SealError::NotFound)?;
        }
        let request = SealRequestRecord {
            id: new_id(),
            credit_code: credit_code.to_string(),
            seal_id,
            name: name.trim().to_string(),
            png,
            requested_by: phone.to_string(),
            status: "pending".into(),
            created_at: self.now(),
        };
        let detail = serde_json::json!({ "org": credit_code, "request": request.id, "change_of": request.seal_id, "bytes": request.png.len() });
        let written = self.store.insert_seal_request(&request, &self.event("seal.requested", phone, detail)).await?;
        judged(written, SEAL_ADMIN, "")?;
        Ok(request)
    }

    /// A reviewer's decision; on approval the seal is created or replaced. Returns the seal id.
    pub async fn decide(&self, actor: &str, id: &str, approve: bool) -> Result<Option<String>, SealError> {
        let request =
            self.store.seal_request(id).await?.filter(|r| r.status == "pending").ok_or(SealError::NotFound)?;
        // A rejection creates no seal, so it names none.
        let seal_id = if approve { request.seal_id.clone().unwrap_or_else(new_id) } else { String::new() };
        let named = approve.then_some(&seal_id);
        let detail =
            serde_json::json!({ "request": id, "org": request.credit_code, "approved": approve, "seal": named });
        let audit = AuditRecord::new(self.clock.as_ref(), "seal.decided", actor, None, detail);
        if !self.store.decide_seal_request(id, approve, actor, &seal_id, self.now(), &audit).await? {
            return Err(SealError::NotFound);
        }
        Ok(approve.then_some(seal_id))
    }

    /// Allows or stops a member stamping with one seal (the administrator or a seal
    /// administrator of its organisation; handbook §7: seal administrators authorise named staff).
    pub async fn set_seal_user(
        &self,
        granter: &str,
        credit_code: &str,
        seal_id: &str,
        phone: &str,
        allowed: bool,
    ) -> Result<(), SealError> {
        self.require(credit_code, granter, &["admin", "seal-admin"], SEAL_ADMIN).await?;
        // A withdrawal too: one naming no phone withdrew nothing yet answered and audited it.
        if !valid_phone(phone) {
            return Err(SealError::Invalid("phone: E.164, e.g. +8613800138000".into()));
        }
        self.store.seal(seal_id).await?.filter(|s| s.credit_code == credit_code).ok_or(SealError::NotFound)?;
        if allowed && self.store.org_role(credit_code, phone).await?.is_none() {
            return Err(SealError::Invalid(NOT_A_MEMBER.into()));
        }
        let detail = serde_json::json!({ "org": credit_code, "seal": seal_id, "member": masked_phone(phone), "allowed": allowed });
        let audit = self.event("seal.user.set", granter, detail);
        let written =
            self.store.set_seal_user(credit_code, seal_id, phone, allowed, granter, self.now(), &audit).await?;
        judged(written, SEAL_ADMIN, NOT_A_MEMBER)
    }

    /// The seal a signer chose, if it is active, belongs to the credential's organisation, and
    /// the signer (`phone`) was allowed to stamp with it and is still a member. Holding some
    /// certificate of the same credit code is not enough.
    pub async fn for_signing(&self, seal_id: &str, credit_code: &str, phone: &str) -> Result<SealRecord, SealError> {
        let seal = self.store.seal(seal_id).await?.ok_or(SealError::NotFound)?;
        if seal.credit_code != credit_code {
            return Err(SealError::NotAllowed("a holder of this seal's organisation"));
        }
        if seal.status != "active" {
            return Err(SealError::Invalid("this seal is retired".into()));
        }
        let member = self.store.org_role(credit_code, phone).await?.is_some();
        if !member || !self.store.seal_user_allowed(seal_id, phone).await? {
            return Err(SealError::NotAllowed("allowed to use this seal"));
        }
        Ok(seal)
    }
}
