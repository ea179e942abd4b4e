//! Order query: by credit code or ID number, after an identity check. An agent proves the
//! phone on file with an SMS code and sees the orders they handled; the legal representative
//! (their phone, or their bank card as the fallback) sees all of the organisation's (handbook
//! §4.2). Who is on file comes from approved orders only ([`super::contacts`]).
//!
//! A query session only reads (review H1): it lists and shows orders and downloads invoices.
//! Changing, continuing or cancelling an order takes that order's own token, which a query
//! session can get again only with a fresh code sent to the order's verified agent
//! ([`Ra::resume_code`], [`Ra::resume`]).

use super::validate;
use super::{new_token, token_hash, Ra, RaError};
use crate::ca::identifiers;
use crate::mobile::Purpose;
use crate::providers::identity::CheckOutcome;
use crate::store::{OrderQuery, OrderRecord, QueryRow};

/// What a query session covers: a subject, within a channel if the web front named one.
#[derive(Clone, Copy)]
struct Scope<'a> {
    subject: &'a str,
    channel: Option<&'a str>,
}

/// A live query session (the token is shown once).
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuerySession {
    /// Bearer token for `x-order-token` on the orders it covers.
    pub token: String,
    /// `agent` or `legal-rep`.
    pub role: &'static str,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What a person typed for an identity fallback of the order query (handbook §4.3): the
/// legal representative of an organisation by their phone on file (F14) or bank card (F15),
/// or a person for their own ID number by a real-name phone (F9) or bank card (F10).
pub struct PersonCheck<'a> {
    /// The person's name (not needed for the legal representative's phone).
    pub name: &'a str,
    /// Their ID number.
    pub id_number: &'a str,
    /// A bank card number (the card methods), else None (the phone methods).
    pub card: Option<&'a str>,
    /// The phone: the card's reserved phone, the real-name phone, or the representative's.
    pub phone: &'a str,
}

impl PersonCheck<'_> {
    /// Name, identifier and phone as compared and checked (trimmed; the identifier as
    /// [`identifiers::person_identifier`] writes it, its number in upper case: a bare number is
    /// a resident ID's, `passport:E12345678` a passport's; the phone as the daemon keeps
    /// phones, if it is a mainland mobile).
    fn typed(&self) -> (String, String, String) {
        let phone = validate::mainland_mobile("phone", self.phone).unwrap_or_else(|_| self.phone.trim().to_string());
        let (id_type, number) = identifiers::document_of(self.id_number.trim());
        let number: String = number.chars().filter(|c| !c.is_whitespace()).collect();
        let identifier = identifiers::person_identifier(id_type, &number.to_uppercase());
        (self.name.trim().to_string(), identifier, phone)
    }

    /// The method, for the audit record.
    fn method(&self) -> &'static str {
        if self.card.is_some() {
            "bank-card+sms"
        } else {
            "phone+sms"
        }
    }

    /// The code's object: the subject, and a digest of the details checked, so a code texted
    /// after one check opens nothing for other details, and no code of another purpose (an
    /// agent's order-query code) stands in for it.
    fn object(&self, subject: &str) -> String {
        use sha2::Digest;
        let (name, id_number, phone) = self.typed();
        let card = self.card.map(str::trim).unwrap_or("-");
        let digest = sha2::Sha256::digest(format!("{name}\n{id_number}\n{card}\n{phone}").as_bytes());
        format!("{subject}/{}", &hex::encode(digest)[..16])
    }
}

/// Whether a query's subject (as [`Ra::subject_key`] gives it) is a person's: a resident ID
/// number, or another document's `{type}:{number}`.
fn personal(subject: &str) -> bool {
    !identifiers::document_of(subject).0.is_resident_id()
        || (subject.len() == 18 && subject.chars().take(17).all(|c| c.is_ascii_digit()))
}

/// Whether a person's subject names a document other than the resident ID: carriers know
/// people by the resident ID only, so such a holder is checked by bank card alone.
fn other_document(subject: &str) -> bool {
    !identifiers::document_of(subject).0.is_resident_id()
}

/// The subject of an order query as typed: `number` with its document's `id_type` (handbook
/// C6) as [`identifiers::person_identifier`] writes it, `{type}:{number}` for another document
/// than the resident ID. A resident ID or a credit code stays as typed. [`Ra::subject_key`]
/// then checks the number by its type's rule, so a number of one document never reads as
/// another's.
pub fn typed_subject(id_type: identifiers::IdType, number: &str) -> String {
    identifiers::person_identifier(id_type, number.trim())
}

/// Who opened an order query.
enum QueryRole {
    /// Sees all of the subject's orders.
    LegalRep,
    /// Sees the orders their phone verified.
    Agent,
}

impl Ra {
    /// A query's subject: a resident ID (18 characters, 17 digits first), another document as
    /// `{type}:{number}` ([`typed_subject`]: its number checked by its type's rule,
    /// [`identifiers::validate_document`], and written in its one canonical form) or a credit
    /// code.
    pub(crate) fn subject_key(value: &str) -> Result<String, RaError> {
        let v = value.trim();
        let (id_type, number) = identifiers::document_of(v);
        if !id_type.is_resident_id() {
            let today = time::OffsetDateTime::now_utc().date();
            let number =
                validate::query_document("subject", id_type, number, today).map_err(|e| RaError::Invalid(vec![e]))?;
            return Ok(identifiers::person_identifier(id_type, &number));
        }
        if v.len() == 18 && v.chars().take(17).all(|c| c.is_ascii_digit()) {
            return validate::resident_id("subject", v, time::OffsetDateTime::now_utc().date())
                .map_err(|e| RaError::Invalid(vec![e]));
        }
        validate::credit_code("subject", v).map_err(|e| RaError::Invalid(vec![e]))
    }

    /// Sends the query code when the phone is a verified agent's or the legal
    /// representative's on file ([`super::contacts`]): never a phone some open, failed or
    /// cancelled order typed. Answers the same either way, so nobody learns which phones are
    /// on file: also when the phone has had too many codes (that refusal is counted and
    /// audited, not shown) and when the SMS gateway fails (counted and logged; the code is
    /// withdrawn, so asking again works at once).
    pub async fn query_code(&self, subject: &str, phone: &str) -> Result<(), RaError> {
        let subject = Self::subject_key(subject)?;
        let phone = validate::mainland_mobile("phone", phone).map_err(|e| RaError::Invalid(vec![e]))?;
        if self.query_role(&subject, &phone).await?.is_some() {
            match self.services.mobile.send_code(&phone, Purpose::OrderQuery, &subject).await {
                Ok(()) | Err(crate::mobile::LoginError::RateLimited(_) | crate::mobile::LoginError::Sms(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Opens a query session with the SMS code: the legal representative on file sees all
    /// the subject's orders, a verified agent those they handled.
    /// `channel`: the channel the web front serves; the session then shows only that
    /// channel's orders (handbook §4.2).
    pub async fn open_query(
        &self,
        subject: &str,
        phone: &str,
        code: &str,
        channel: Option<&str>,
    ) -> Result<QuerySession, RaError> {
        let subject = Self::subject_key(subject)?;
        let phone = validate::mainland_mobile("phone", phone).map_err(|e| RaError::Invalid(vec![e]))?;
        let channel = self.query_channel(channel)?;
        self.services.mobile.check_code(&phone, Purpose::OrderQuery, &subject, code.trim()).await?;
        let scope = Scope { subject: &subject, channel: channel.as_deref() };
        match self.query_role(&subject, &phone).await? {
            Some(QueryRole::LegalRep) => self.query_session(scope, None, "phone").await,
            Some(QueryRole::Agent) => self.query_session(scope, Some(&phone), "phone").await,
            None => Err(RaError::NotFound),
        }
    }

    /// The channel a query is limited to, if the web front named one (it must exist).
    fn query_channel(&self, channel: Option<&str>) -> Result<Option<String>, RaError> {
        channel.map(|c| self.channel(c.trim()).map(|c| c.name.clone())).transpose()
    }

    /// Who a phone is for a subject's order query: the legal representative on file (from
    /// approved orders only), or an agent: the certificate administrator, a verified agent on
    /// file, or the agent whose check passed on one of the subject's orders. The agent role
    /// shows only the orders that phone itself verified, so a phone proving itself can never
    /// see, let alone act on, anyone else's order; being "on file" for consents and renewals
    /// needs an approved order.
    async fn query_role(&self, subject: &str, phone: &str) -> Result<Option<QueryRole>, RaError> {
        let on_file = self.on_file(subject).await?;
        if on_file.is_legal_rep(phone) {
            return Ok(Some(QueryRole::LegalRep));
        }
        // The organisation's certificate administrator (after a hand-over, the new one) is
        // on file too: certificate services start from their query session (handbook §3.1).
        let admin = self.store.org_role(subject, phone).await?.as_deref() == Some("admin");
        if admin || on_file.is_agent(phone) || self.store.handled_orders(subject, phone).await? {
            return Ok(Some(QueryRole::Agent));
        }
        Ok(None)
    }

    /// An identity fallback, first half: the random code shown on the page, then the
    /// provider's check of what was typed (the bank's four elements for a card, the carrier's
    /// real-name check for a person's phone; the legal representative's phone on file was
    /// checked when the order was approved), then a code texted to the phone the check stands
    /// for ([`Self::fallback_target`]). The card alone, or the phone alone, opens nothing
    /// (review H2).
    ///
    /// Answers the same whatever happens after the random code (review L5): the provider is
    /// asked about the typed person whether or not they are on file, and a refusal, nobody on
    /// file, another person or a phone with too many codes all look like "sent if the details
    /// are right". So neither the answer nor its timing says whether a subject has an approved
    /// order or whose ID number is on file.
    pub async fn query_fallback_code(
        &self,
        subject: &str,
        check: &PersonCheck<'_>,
        challenge: &str,
        answer: &str,
    ) -> Result<(), RaError> {
        let subject = Self::subject_key(subject)?;
        validate::mainland_mobile("phone", check.phone).map_err(|e| RaError::Invalid(vec![e]))?;
        self.pass_challenge(challenge, answer).await?;
        let (name, id_number, phone) = check.typed();
        let outcome = match check.card {
            Some(card) => {
                // The document's type goes with its number, as in the RA's own check (the
                // legal representative on file may have given a passport).
                let (id_type, number) = identifiers::document_of(&id_number);
                let call = self.providers.identity.bank_card_four(&name, id_type, number, card.trim(), &phone);
                crate::providers::call("identity", "bank_card_four", self.deadline(), call).await?
            }
            // Carriers know people by the resident ID only: another document's holder is
            // checked by bank card alone (no code is sent; the answer is the same).
            None if other_document(&subject) => CheckOutcome::Failed("bank card only".into()),
            None if personal(&subject) => {
                let call = self.providers.identity.phone_three(&name, &id_number, &phone);
                crate::providers::call("identity", "phone_three", self.deadline(), call).await?
            }
            None => CheckOutcome::Passed,
        };
        let Some(target) = self.fallback_target(&subject, check).await? else { return Ok(()) };
        if outcome != CheckOutcome::Passed {
            return Ok(());
        }
        match self.services.mobile.send_code(&target, Purpose::OrderQueryByCard, &check.object(&subject)).await {
            Ok(()) | Err(crate::mobile::LoginError::RateLimited(_) | crate::mobile::LoginError::Sms(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// An identity fallback, second half: with the code the first half texted, a session that
    /// sees all of the subject's orders. Any failure is the same wrong-code answer.
    pub async fn open_query_fallback(
        &self,
        subject: &str,
        check: &PersonCheck<'_>,
        code: &str,
        channel: Option<&str>,
    ) -> Result<QuerySession, RaError> {
        let subject = Self::subject_key(subject)?;
        let channel = self.query_channel(channel)?;
        let target = self.fallback_target(&subject, check).await?;
        // Nobody (or somebody else) on file: the typed phone is checked all the same, and
        // fails, as no code was ever sent for this object.
        let typed = check.typed().2;
        let phone = target.clone().unwrap_or_else(|| typed.clone());
        // Counted on the typed phone whoever the code went to: a 429 that followed the phone on
        // file would tell whether the typed person is the representative (attacker review).
        let object = check.object(&subject);
        let mobile = &self.services.mobile;
        mobile.check_code_counted_on(&typed, &phone, Purpose::OrderQueryByCard, &object, code.trim()).await?;
        if target.is_none() {
            return Err(crate::mobile::LoginError::BadCode.into());
        }
        self.query_session(Scope { subject: &subject, channel: channel.as_deref() }, None, check.method()).await
    }

    /// Where a fallback's code goes, or None when the typed person may not open the subject's
    /// orders this way:
    /// - an organisation: only its legal representative on file (name, for the card, and ID
    ///   number as the newest approved order recorded them). By phone (F14) the phone must be
    ///   theirs on file; by card (F15) the code goes to their phone on file, or (none on
    ///   file) to the card's phone the bank proved.
    /// - a person: only themselves (the ID number typed is the subject) with an approved
    ///   order; the code goes to the phone the carrier or the bank just proved to be theirs.
    async fn fallback_target(&self, subject: &str, check: &PersonCheck<'_>) -> Result<Option<String>, RaError> {
        let (name, id_number, phone) = check.typed();
        let on_file = self.on_file(subject).await?;
        if personal(subject) {
            // The typed identifier (type and number) is the subject's; another document's
            // holder only by bank card (what the typed document alone decides: no oracle).
            let by_card_if_needed = check.card.is_some() || !other_document(subject);
            return Ok((on_file.approved && id_number == subject && by_card_if_needed).then_some(phone));
        }
        let Some((rep_name, rep_id, rep_phone)) = on_file.legal_rep else { return Ok(None) };
        if rep_id != id_number {
            return Ok(None);
        }
        match check.card {
            Some(_) if rep_name == name => Ok(Some(rep_phone.unwrap_or(phone))),
            Some(_) => Ok(None),
            None => Ok(rep_phone.filter(|p| *p == phone)),
        }
    }

    async fn query_session(&self, scope: Scope<'_>, phone: Option<&str>, how: &str) -> Result<QuerySession, RaError> {
        let token = new_token();
        let expires_at = self.now() + self.config.query_minutes * 60;
        let role = if phone.is_some() { "agent" } else { "legal-rep" };
        let detail = serde_json::json!({ "subject": super::mask_identifier(scope.subject), "role": role, "checked_by": how, "channel": scope.channel });
        let actor = phone.map_or_else(|| "legal-rep".to_string(), super::orders::phone_actor);
        let audit = crate::store::AuditRecord::new(self.clock.as_ref(), "order.query_opened", &actor, None, detail);
        let row = QueryRow {
            subject_key: scope.subject.to_string(),
            phone: phone.map(String::from),
            channel: scope.channel.map(String::from),
            expires_at,
        };
        self.store.insert_query(&row, &token_hash(&token), &audit).await?;
        Ok(QuerySession { token, role, expires_at })
    }

    /// The orders a query session covers (within its channel), newest first.
    pub async fn query_orders(&self, token: &str) -> Result<Vec<OrderRecord>, RaError> {
        let s = self.store.query_session(&token_hash(token), self.now()).await?.ok_or(RaError::NotFound)?;
        let q = OrderQuery {
            subject_key: Some(s.subject_key),
            agent_phone: s.phone,
            channel: s.channel,
            limit: 200,
            ..OrderQuery::default()
        };
        Ok(self.store.orders(&q).await?)
    }

    /// Whether a live query session covers the order (for reading it).
    pub(super) async fn query_covers(&self, order: &OrderRecord, token: &str) -> Result<bool, RaError> {
        if token.is_empty() {
            return Ok(false);
        }
        let Some(s) = self.store.query_session(&token_hash(token), self.now()).await? else {
            return Ok(false);
        };
        let channel_ok = s.channel.as_deref().is_none_or(|c| c == order.channel);
        let phone_ok = s.phone.is_none() || s.phone == order.agent_phone;
        Ok(order.subject_key.as_deref() == Some(s.subject_key.as_str()) && phone_ok && channel_ok)
    }

    /// Sends the order's verified agent a code to take the order up again from a query
    /// session (a lost order token). Only open and offline orders can be continued.
    pub async fn resume_code(&self, id: &str, query_token: &str) -> Result<(), RaError> {
        let order = self.store.order(id).await?.ok_or(RaError::NotFound)?;
        let phone = self.resumable(&order, query_token).await?;
        self.services.mobile.send_code(&phone, Purpose::OrderResume, &order.id).await?;
        Ok(())
    }

    /// Checks the agent's code and gives the order a new token (the old one stops working),
    /// audited.
    pub async fn resume(&self, id: &str, query_token: &str, code: &str) -> Result<(OrderRecord, String), RaError> {
        let mut order = self.store.order(id).await?.ok_or(RaError::NotFound)?;
        let phone = self.resumable(&order, query_token).await?;
        self.services.mobile.check_code(&phone, Purpose::OrderResume, &order.id, code.trim()).await?;
        let token = new_token();
        order.token_hash = token_hash(&token);
        let actor = super::orders::phone_actor(&phone);
        let audit = self.event("order.resumed", &actor, &order, serde_json::json!({}));
        self.save(&mut order, &[&audit]).await?;
        Ok((order, token))
    }

    async fn resumable(&self, order: &OrderRecord, query_token: &str) -> Result<String, RaError> {
        if !self.query_covers(order, query_token).await? {
            return Err(RaError::NotFound);
        }
        if !matches!(order.state.as_str(), "open" | "offline") {
            return Err(RaError::State(format!("the order is {}; there is nothing to continue", order.state)));
        }
        order.agent_phone.clone().ok_or_else(|| {
            RaError::State("nobody was verified for this order yet; start a new application instead".into())
        })
    }
}
