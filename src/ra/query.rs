//! Order query: by credit code or ID number, after an identity check. An agent proves the
//! phone on file with an SMS code and sees the orders they handled; the legal representative
//! (their phone, or their bank card as the fallback) sees all of the organisation's.

use super::model::OrderData;
use super::validate;
use super::{new_token, token_hash, Ra, RaError};
use crate::mobile::Purpose;
use crate::providers::identity::CheckOutcome;
use crate::store::{OrderQuery, OrderRecord};

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

    async fn subject_orders(&self, subject: &str) -> Result<Vec<OrderRecord>, RaError> {
        let q = OrderQuery { subject_key: Some(subject.to_string()), limit: 500, ..OrderQuery::default() };
        Ok(self.store.orders(&q).await?)
    }

    /// The legal representative's phone as entered in the subject's orders.
    fn legal_rep_phone(orders: &[OrderRecord]) -> Option<String> {
        orders.iter().find_map(|o| OrderData::of(o).company.map(|c| c.legal_rep.phone))
    }

    /// Sends the query code when the phone is an agent's or the legal representative's on
    /// file. Answers the same either way, so nobody learns which phones are on file: also when
    /// the phone has had too many codes (that refusal is counted and audited, not shown) and
    /// when the SMS gateway fails (counted and logged; the code is withdrawn, so asking again
    /// works at once).
    pub async fn query_code(&self, subject: &str, phone: &str) -> Result<(), RaError> {
        let subject = Self::subject_key(subject)?;
        let phone = validate::mainland_mobile("phone", phone).map_err(|e| RaError::Invalid(vec![e]))?;
        let orders = self.subject_orders(&subject).await?;
        let on_file = orders.iter().any(|o| o.agent_phone.as_deref() == Some(phone.as_str()))
            || Self::legal_rep_phone(&orders).as_deref() == Some(phone.as_str());
        if on_file {
            match self.services.mobile.send_code(&phone, Purpose::OrderQuery, &subject).await {
                Ok(()) | Err(crate::mobile::LoginError::RateLimited(_) | crate::mobile::LoginError::Sms(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Opens a query session with the SMS code.
    pub async fn open_query(&self, subject: &str, phone: &str, code: &str) -> Result<QuerySession, RaError> {
        let subject = Self::subject_key(subject)?;
        let phone = validate::mainland_mobile("phone", phone).map_err(|e| RaError::Invalid(vec![e]))?;
        self.services.mobile.check_code(&phone, Purpose::OrderQuery, &subject, code.trim()).await?;
        let orders = self.subject_orders(&subject).await?;
        if Self::legal_rep_phone(&orders).as_deref() == Some(phone.as_str()) {
            return self.query_session(&subject, None, "phone").await;
        }
        if orders.iter().any(|o| o.agent_phone.as_deref() == Some(phone.as_str())) {
            return self.query_session(&subject, Some(&phone), "phone").await;
        }
        Err(RaError::NotFound)
    }

    /// The fallback: the legal representative's bank card four-element check.
    pub async fn open_query_by_card(
        &self,
        subject: &str,
        name: &str,
        id_number: &str,
        card: &str,
        phone: &str,
    ) -> Result<QuerySession, RaError> {
        let subject = Self::subject_key(subject)?;
        let orders = self.subject_orders(&subject).await?;
        let rep = orders.iter().find_map(|o| OrderData::of(o).company.map(|c| c.legal_rep)).ok_or(RaError::NotFound)?;
        if rep.id_number != id_number.trim().to_uppercase() {
            return Err(RaError::CheckFailed("the ID number is not the legal representative's on file".into()));
        }
        let call = self.providers.identity.bank_card_four(name.trim(), &rep.id_number, card.trim(), phone.trim());
        match crate::providers::call("identity", "bank_card_four", self.deadline(), call).await? {
            CheckOutcome::Passed => self.query_session(&subject, None, "bank-card").await,
            CheckOutcome::Failed(reason) => Err(RaError::CheckFailed(reason)),
        }
    }

    async fn query_session(&self, subject: &str, phone: Option<&str>, how: &str) -> Result<QuerySession, RaError> {
        let token = new_token();
        let expires_at = self.now() + self.config.query_minutes * 60;
        let role = if phone.is_some() { "agent" } else { "legal-rep" };
        let detail = serde_json::json!({ "subject": validate::mask(subject), "role": role, "checked_by": how });
        let actor = phone.map_or_else(|| "legal-rep".to_string(), super::orders::phone_actor);
        let audit = crate::store::AuditRecord::new(self.clock.as_ref(), "order.query_opened", &actor, None, detail);
        self.store.insert_query(&token_hash(&token), subject, phone, expires_at, &audit).await?;
        Ok(QuerySession { token, role, expires_at })
    }

    /// The orders a query session covers, newest first.
    pub async fn query_orders(&self, token: &str) -> Result<Vec<OrderRecord>, RaError> {
        let (subject, phone) =
            self.store.query_session(&token_hash(token), self.now()).await?.ok_or(RaError::NotFound)?;
        let q = OrderQuery { subject_key: Some(subject), agent_phone: phone, limit: 200, ..OrderQuery::default() };
        Ok(self.store.orders(&q).await?)
    }
}
