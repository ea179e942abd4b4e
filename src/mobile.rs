//! The mobile app's login: a phone number and an SMS code give a short-lived bearer token.
//! Codes are 6 random digits, stored only as an HMAC keyed by the HSM pepper, valid minutes,
//! a few tries each, and sends are rate-limited per phone. Tokens are 256 random bits; only
//! their SHA-256 is stored, so a database copy opens no session.

use std::sync::Arc;

use base64::Engine;
use rand::RngCore;
use sha2::Digest;

use crate::clock::Clock;
use crate::config::CustodyConfig;
use crate::custody::valid_phone;
use crate::hsm::{HsmError, HsmPool};
use crate::providers::SmsProvider;
use crate::store::{AuditRecord, Store, StoreError};

/// Why a login step failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Malformed phone or purpose.
    #[error("{0}")]
    Invalid(String),
    /// Too many codes; the message says when to try again.
    #[error("too many codes sent to this phone; try again later")]
    RateLimited,
    /// Wrong, expired, used-up or missing code.
    #[error("the code is wrong or expired")]
    BadCode,
    /// The SMS provider refused.
    #[error("the SMS could not be sent")]
    Sms(String),
    /// HSM (pepper).
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// Database.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// What a one-time code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Logging in.
    Login,
    /// Proving identity again to unlock a credential.
    Unlock,
    /// Confirming an organisation administrator's action (members, hand-over, seals).
    Admin,
    /// An application order's step: the certificate holder's consent, the application
    /// signature, the legal representative's online authorisation, an order query.
    Order,
}

impl Purpose {
    /// Parses `login` or `unlock`.
    pub fn parse(text: &str) -> Result<Purpose, LoginError> {
        match text {
            "login" => Ok(Purpose::Login),
            "unlock" => Ok(Purpose::Unlock),
            "admin" => Ok(Purpose::Admin),
            _ => Err(LoginError::Invalid("purpose: login, unlock or admin".into())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Unlock => "unlock",
            Purpose::Admin => "admin",
            Purpose::Order => "order",
        }
    }
}

/// A new session.
#[derive(Debug, Clone)]
pub struct MobileSession {
    /// The bearer token (shown once).
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The login service.
#[derive(Clone)]
pub struct Mobile {
    store: Store,
    hsm: HsmPool,
    sms: Arc<dyn SmsProvider>,
    clock: Arc<dyn Clock>,
    config: CustodyConfig,
}

impl Mobile {
    /// Built by `Instance::open`.
    pub fn new(
        store: Store,
        hsm: HsmPool,
        sms: Arc<dyn SmsProvider>,
        clock: Arc<dyn Clock>,
        config: CustodyConfig,
    ) -> Self {
        Mobile { store, hsm, sms, clock, config }
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    async fn code_hash(&self, phone: &str, purpose: Purpose, code: &str) -> Result<String, LoginError> {
        let message = format!("cloudca-sms\n{phone}\n{}\n{code}", purpose.name());
        Ok(hex::encode(self.hsm.pepper(message.as_bytes()).await?))
    }

    /// Sends a code, within the per-phone limits.
    pub async fn send_code(&self, phone: &str, purpose: Purpose) -> Result<(), LoginError> {
        if !valid_phone(phone) {
            return Err(LoginError::Invalid("phone: E.164, e.g. +8613800138000".into()));
        }
        let now = self.now();
        let recent = self.store.sms_sent_since(phone, now - self.config.sms_min_interval_seconds + 1).await?;
        let hourly = self.store.sms_sent_since(phone, now - 3600).await?;
        if recent > 0 || hourly >= self.config.sms_per_hour {
            return Err(LoginError::RateLimited);
        }
        let code = format!("{:06}", rand::rngs::OsRng.next_u32() % 1_000_000);
        let hash = self.code_hash(phone, purpose, &code).await?;
        self.store.insert_sms_code(phone, purpose.name(), &hash, now, self.config.sms_code_seconds).await?;
        let text = format!("cloudca code {code}. Do not share it; cloudca never asks for it by phone.");
        self.sms.send(phone, &text).map_err(LoginError::Sms)
    }

    /// Checks a code (one try spent; used once on success).
    pub async fn check_code(&self, phone: &str, purpose: Purpose, code: &str) -> Result<(), LoginError> {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LoginError::BadCode);
        }
        let now = self.now();
        let Some((id, stored)) =
            self.store.take_sms_attempt(phone, purpose.name(), now, self.config.sms_code_attempts).await?
        else {
            return Err(LoginError::BadCode);
        };
        let given = self.code_hash(phone, purpose, code).await?;
        let equal = constant_time_eq(given.as_bytes(), stored.as_bytes());
        if !equal || !self.store.use_sms_code(id).await? {
            return Err(LoginError::BadCode);
        }
        Ok(())
    }

    /// Logs in with a code; returns a new bearer token.
    pub async fn login(&self, phone: &str, code: &str) -> Result<MobileSession, LoginError> {
        let result = self.check_code(phone, Purpose::Login, code).await;
        let outcome = if result.is_ok() { "ok" } else { "refused" };
        let now = self.now();
        if result.is_err() {
            self.store.audit(&self.event("mobile.login", phone, outcome)).await?;
            result?;
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let expires_at = now + self.config.mobile_session_minutes * 60;
        let audit = self.event("mobile.login", phone, outcome);
        self.store.insert_mobile_session(&token_hash(&token), phone, now, expires_at, &audit).await?;
        Ok(MobileSession { token, expires_at })
    }

    /// The phone behind a live token.
    pub async fn phone(&self, token: &str) -> Result<Option<String>, LoginError> {
        Ok(self.store.mobile_session_phone(&token_hash(token), self.now()).await?)
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<(), LoginError> {
        Ok(self.store.revoke_mobile_session(&token_hash(token)).await?)
    }

    fn event(&self, kind: &str, phone: &str, outcome: &str) -> AuditRecord {
        let detail = serde_json::json!({ "outcome": outcome });
        AuditRecord::new(self.clock.as_ref(), kind, &format!("phone:{phone}"), None, detail)
    }
}

/// Equality without an early exit, so timing says nothing about where two codes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-256 of a bearer token, hex: what the database keeps.
fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
