//! Handing an organisation's certificate administrator role to someone else (review M3). The
//! administrator consents to certificate services for every organisation certificate
//! ([`super::services`]), so the role moves only as an order's agent would be admitted:
//!
//! 1. the current administrator offers it, with their session and a fresh `admin` code (their
//!    consent), naming the new administrator's phone, name and ID number;
//! 2. the carrier's real-name check proves that phone belongs to that person (as the agent
//!    check of an order does), and only then is a code texted to the new phone, bound to the
//!    organisation and to the administrator who offered it;
//! 3. the new administrator accepts from their own session with that code; the role moves only
//!    if the offering phone is still the administrator and the code still stands when the role
//!    is written: the check and the write are two steps, and the write spends the code in its
//!    own transaction, so a removal of the new administrator's membership that commits in
//!    between (it withdraws their codes) is seen, and nothing moves.
//!
//! Nothing is kept between the steps: the code exists only if steps 1 and 2 passed. A new
//! offer withdraws the codes of every earlier one (one offer stands at a time), and the legal
//! representative on file is texted when the role is offered and when it moves, so an
//! administrator's phone in the wrong hands cannot pass the role on unseen.

use super::{validate, Ra, RaError};
use crate::mobile::{CheckedCode, Purpose};
use crate::providers::identity::CheckOutcome;
use crate::store::HandOver;

/// The person the role is handed to, as the administrator typed them.
pub struct NewAdministrator<'a> {
    /// Their phone (E.164).
    pub phone: &'a str,
    /// Their name.
    pub name: &'a str,
    /// Their resident ID number.
    pub id_number: &'a str,
}

/// What the hand-over code is bound to: the organisation and the administrator handing over.
fn object(credit_code: &str, from: &str) -> String {
    format!("{credit_code}/{from}")
}

impl Ra {
    /// Step 1 and 2: `admin` (whose `admin` code the caller checked) offers the role to `to`;
    /// the carrier check of the new administrator, then the acceptance code to their phone.
    pub async fn offer_hand_over(
        &self,
        admin: &str,
        credit_code: &str,
        to: &NewAdministrator<'_>,
    ) -> Result<(), RaError> {
        if self.store.org_role(credit_code, admin).await?.as_deref() != Some("admin") {
            return Err(RaError::Forbidden("you are not the certificate administrator of this organisation".into()));
        }
        let mut errors = Vec::new();
        let mut take = |r: Result<String, validate::FieldError>| {
            r.unwrap_or_else(|e| {
                errors.push(e);
                String::new()
            })
        };
        let phone = take(validate::mainland_mobile("phone", to.phone));
        let name = take(validate::name("name", to.name, 32));
        let id_number = take(validate::resident_id("id_number", to.id_number, self.clock.now().date()));
        if !errors.is_empty() {
            return Err(RaError::Invalid(errors));
        }
        if phone == admin {
            return Err(RaError::BadRequest("phone: another person's phone".into()));
        }
        // One offer stands at a time: an earlier one's code no longer moves the role.
        self.services.mobile.withdraw_codes(Purpose::AdminHandOver, &object(credit_code, admin)).await?;
        let call = self.providers.identity.phone_three(&name, &id_number, &phone);
        if let CheckOutcome::Failed(reason) =
            crate::providers::call("identity", "phone_three", self.deadline(), call).await?
        {
            return Err(RaError::CheckFailed(reason));
        }
        let detail = serde_json::json!({
            "org": credit_code,
            "to": crate::audit::masked_phone(&phone),
            "id_number": super::mask_identifier(&id_number),
            "checked_by": "phone",
        });
        let audit = crate::store::AuditRecord::new(
            self.clock.as_ref(),
            "org.admin.hand_over_offered",
            &super::orders::phone_actor(admin),
            None,
            detail,
        );
        self.store.audit(&audit).await?;
        self.services.mobile.send_code(&phone, Purpose::AdminHandOver, &object(credit_code, admin)).await?;
        let text = format!(
            "贵单位 {credit_code} 的云证书管理员 {} 提出将管理员角色转交给 {}；如非贵单位意愿，请立即联系 CA。\
             The certificate administrator {} of {credit_code} offered the administrator role to {}; if your organisation did not intend this, call the CA at once.",
            validate::mask(admin),
            validate::mask(&phone),
            validate::mask(admin),
            validate::mask(&phone)
        );
        self.tell_legal_rep(credit_code, &text).await;
        Ok(())
    }

    /// Texts the organisation's legal representative on file (their phone checked by an
    /// approved order), if there is one. Best effort, as every notification; a failed send or
    /// lookup is logged.
    async fn tell_legal_rep(&self, credit_code: &str, text: &str) {
        let phone = match self.on_file(credit_code).await {
            Ok(on_file) => on_file.legal_rep.and_then(|(_, _, phone)| phone),
            Err(e) => {
                tracing::warn!(error = %e, "hand-over notice: the legal representative on file could not be read");
                None
            }
        };
        let Some(phone) = phone else { return };
        let send = self.providers.sms.send(&phone, text);
        if let Err(e) = crate::providers::call(crate::providers::SMS, "send", self.deadline(), send).await {
            tracing::warn!(error = %e, "hand-over notice to the legal representative not sent");
        }
    }

    /// Step 3: the new administrator (`to`, their session's phone) accepts with the code the
    /// offer texted them; the role moves from `from` if `from` is still the administrator and
    /// the code still stands when the role is written ([`Ra::complete_hand_over`]).
    pub async fn accept_hand_over(&self, to: &str, credit_code: &str, from: &str, code: &str) -> Result<(), RaError> {
        let checked = self.check_hand_over_code(to, credit_code, from, code).await?;
        self.complete_hand_over(to, credit_code, from, checked).await
    }

    /// Step 3, the check: the code texted to `to` for this organisation and this offering
    /// administrator matches (one try spent; a refusal audited). The code is not used yet.
    pub async fn check_hand_over_code(
        &self,
        to: &str,
        credit_code: &str,
        from: &str,
        code: &str,
    ) -> Result<CheckedCode, RaError> {
        let object = object(credit_code, from);
        Ok(self.services.mobile.verify_code(to, Purpose::AdminHandOver, &object, code.trim()).await?)
    }

    /// Step 3, the write: the role moves in one transaction that spends the checked code, only
    /// if it is still unused. A removal of `to` that committed after the check withdrew it, and
    /// the acceptance is then refused as a wrong code is (nothing written), so a member removed
    /// at the instant they accept does not come back as the administrator.
    pub async fn complete_hand_over(
        &self,
        to: &str,
        credit_code: &str,
        from: &str,
        checked: CheckedCode,
    ) -> Result<(), RaError> {
        let moved = self.services.seals.hand_over(from, credit_code, to, checked).await.map_err(|e| match e {
            crate::seals::SealError::Store(s) => RaError::Store(s),
            crate::seals::SealError::NotAllowed(_) => not_administrator(),
            other => RaError::BadRequest(other.to_string()),
        })?;
        match moved {
            HandOver::Moved => {}
            HandOver::NotAdministrator => return Err(not_administrator()),
            HandOver::CodeSpent => {
                let object = object(credit_code, from);
                let mobile = &self.services.mobile;
                return Err(mobile.code_refused(to, Purpose::AdminHandOver, &object, "used meanwhile").await.into());
            }
        }
        let text = format!(
            "贵单位 {credit_code} 的云证书管理员角色已由 {} 转交给 {}；如非贵单位意愿，请立即联系 CA。\
             The certificate administrator role of {credit_code} moved from {} to {}; if your organisation did not intend this, call the CA at once.",
            validate::mask(from),
            validate::mask(to),
            validate::mask(from),
            validate::mask(to)
        );
        self.tell_legal_rep(credit_code, &text).await;
        Ok(())
    }
}

/// The refusal of an acceptance whose offering phone no longer holds the role.
fn not_administrator() -> RaError {
    RaError::State("the phone that offered the role is no longer the administrator".into())
}

/// The stored scope of the hand-over codes `from` offered for an organisation: a removal of a
/// member spends those sent to them ([`crate::store::Store::remove_member`]).
pub fn hand_over_code_scope(credit_code: &str, from: &str) -> String {
    crate::mobile::scope(Purpose::AdminHandOver, &object(credit_code, from))
}
