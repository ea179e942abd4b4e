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

/// What the legal representative typed for the bank-card fallback of an order query.
pub struct CardCheck<'a> {
    /// The representative's name.
    pub name: &'a str,
    /// Their ID number.
    pub id_number: &'a str,
    /// The bank card number.
    pub card: &'a str,
    /// The phone the card's bank has on record for it.
    pub phone: &'a str,
}

impl CardCheck<'_> {
    /// Name, ID number and phone as compared and checked (trimmed; the ID in upper case).
    fn typed(&self) -> (String, String, String) {
        (self.name.trim().to_string(), self.id_number.trim().to_uppercase(), self.phone.trim().to_string())
    }

    /// The code's object: the subject, and a digest of the card details the bank checked, so
    /// a code texted after one card check opens nothing for other details, and no code of
    /// another purpose (an agent's order-query code) stands in for it.
    fn object(&self, subject: &str) -> String {
        use sha2::Digest;
        let (name, id_number, phone) = self.typed();
        let digest = sha2::Sha256::digest(format!("{name}\n{id_number}\n{}\n{phone}", self.card.trim()).as_bytes());
        format!("{subject}/{}", &hex::encode(digest)[..16])
    }
}

/// Who opened an order query.
enum QueryRole {
    /// Sees all of the subject's orders.
    LegalRep,
    /// Sees the orders their phone verified.
    Agent,
}

impl Ra {
    /// A query's subject: a resident ID (18 characters, 17 digits first) or a credit code.
    pub(crate) fn subject_key(value: &str) -> Result<String, RaError> {
        let v = value.trim();
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

    /// The fallback, first half: the bank card four-element check of the legal representative
    /// on file (name and ID number as the newest approved order recorded them), then a code
    /// texted to the representative's phone (review H2: the card alone opens nothing). The
    /// phone is the one on file when the approved order checked it, else the phone the bank
    /// just proved to be the card's reserved phone.
    ///
    /// Answers the same whatever happens (review L5): the bank is asked about the typed person
    /// whether or not they are on file, and a refusal, nobody on file, another person or a
    /// phone with too many codes all look like "sent if the details are right". So neither the
    /// answer nor its timing says whether a subject has an approved order or whose ID number is
    /// on file.
    pub async fn query_card_code(&self, subject: &str, card: &CardCheck<'_>) -> Result<(), RaError> {
        let subject = Self::subject_key(subject)?;
        let (name, id_number, phone) = card.typed();
        let call = self.providers.identity.bank_card_four(&name, &id_number, card.card.trim(), &phone);
        let outcome = crate::providers::call("identity", "bank_card_four", self.deadline(), call).await?;
        let Some(target) = self.card_target(&subject, card).await? else { return Ok(()) };
        if outcome != CheckOutcome::Passed {
            return Ok(());
        }
        match self.services.mobile.send_code(&target, Purpose::OrderQueryByCard, &card.object(&subject)).await {
            Ok(()) | Err(crate::mobile::LoginError::RateLimited(_) | crate::mobile::LoginError::Sms(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The fallback, second half: with the code the first half texted, the legal
    /// representative's session. Any failure is the same wrong-code answer.
    pub async fn open_query_by_card(
        &self,
        subject: &str,
        card: &CardCheck<'_>,
        code: &str,
        channel: Option<&str>,
    ) -> Result<QuerySession, RaError> {
        let subject = Self::subject_key(subject)?;
        let channel = self.query_channel(channel)?;
        let target = self.card_target(&subject, card).await?;
        // Nobody (or somebody else) on file: the typed phone is checked all the same, and
        // fails, as no code was ever sent for this object.
        let typed = card.typed().2;
        let phone = target.clone().unwrap_or_else(|| typed.clone());
        // Counted on the typed phone whoever the code went to: a 429 that followed the phone on
        // file would tell whether the typed person is the representative (attacker review).
        let object = card.object(&subject);
        let mobile = &self.services.mobile;
        mobile.check_code_counted_on(&typed, &phone, Purpose::OrderQueryByCard, &object, code.trim()).await?;
        if target.is_none() {
            return Err(crate::mobile::LoginError::BadCode.into());
        }
        self.query_session(Scope { subject: &subject, channel: channel.as_deref() }, None, "bank-card+sms").await
    }

    /// Where the bank-card fallback's code goes: None unless the typed person is the legal
    /// representative on file; then their phone on file, or (none on file) the typed phone,
    /// which the bank check proves to be the card's.
    async fn card_target(&self, subject: &str, card: &CardCheck<'_>) -> Result<Option<String>, RaError> {
        let (name, id_number, phone) = card.typed();
        let Some((rep_name, rep_id, rep_phone)) = self.on_file(subject).await?.legal_rep else { return Ok(None) };
        if rep_id != id_number || rep_name != name {
            return Ok(None);
        }
        Ok(Some(rep_phone.unwrap_or(phone)))
    }

    async fn query_session(&self, scope: Scope<'_>, phone: Option<&str>, how: &str) -> Result<QuerySession, RaError> {
        let token = new_token();
        let expires_at = self.now() + self.config.query_minutes * 60;
        let role = if phone.is_some() { "agent" } else { "legal-rep" };
        let detail = serde_json::json!({ "subject": validate::mask(scope.subject), "role": role, "checked_by": how, "channel": scope.channel });
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
