//! The mobile app's login: a phone number and an SMS code give a short-lived bearer token.
//! Codes are 6 random digits, stored only as an HMAC keyed by the HSM pepper, valid minutes,
//! a few tries each, and sends are rate-limited per phone. Tokens are 256 random bits; only
//! their SHA-256 is stored, so a database copy opens no session.
//!
//! Rate limits: the per-phone send limits are counted in the database (exact across daemons);
//! a refusal is remembered in memory for its exact wait, so hammering one phone costs no query.
//! Every code check is an attempt against `limits.attempts_per_credential` for its phone.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use sha2::Digest;

use crate::clock::Clock;
use crate::config::CustodyConfig;
use crate::custody::valid_phone;
use crate::hsm::{HsmError, HsmPool};
use crate::providers::{ProviderError, SmsProvider, SMS};
use crate::ratelimit::{Limits, Refusal};
use crate::store::{AuditRecord, Store, StoreError};

/// Why a login step failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Malformed phone or purpose.
    #[error("{0}")]
    Invalid(String),
    /// Too many codes to this phone, or too many tries: wait as the refusal says.
    #[error("too many requests for this phone; try again in {} s", .0.retry_after())]
    RateLimited(Refusal),
    /// Wrong, expired, used-up or missing code.
    #[error("the code is wrong or expired")]
    BadCode,
    /// The SMS gateway did not take the message (down, too slow, or refused); the code was
    /// withdrawn, so asking again is not held back by the per-phone limits.
    #[error("the SMS could not be sent: {0}")]
    Sms(ProviderError),
    /// HSM (pepper).
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// Database.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// What a one-time code authorises. Each action has its own purpose and names the object it
/// acts on (an order, a certificate, an organisation, an identity proof); both are bound into
/// the code's MAC and named in the text, so a code read off one screen cannot be replayed for
/// another action or another order, and the person reading the SMS knows what they approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Logging in to the app (object: none).
    Login,
    /// Confirming an organisation administrator's action (object: the credit code).
    Admin,
    /// A certificate holder's consent to an order on their certificate (object:
    /// `order/serial`).
    Consent,
    /// The agent's signature of an application (object: the order).
    ApplicationSignature,
    /// The legal representative's online authorisation of the agent (object: the order).
    LegalRepAuthorisation,
    /// Opening an order query (object: the credit code or ID number).
    OrderQuery,
    /// Taking an order up again from an order query, with a new order token (object: the
    /// order).
    OrderResume,
    /// The code texted to a bank card's reserved phone in an identity proof (object: the
    /// proof).
    IdentityProof,
}

impl Purpose {
    /// Parses what a client may ask `/v1/mobile/sms` for: `login`, or `admin` (with the
    /// organisation's credit code as object). Every other purpose is sent by the server itself
    /// as part of the step it belongs to.
    pub fn parse(text: &str) -> Result<Purpose, LoginError> {
        match text {
            "login" => Ok(Purpose::Login),
            "admin" => Ok(Purpose::Admin),
            _ => Err(LoginError::Invalid(
                "purpose: login or admin (a PIN is set again through /v1/mobile/proofs)".into(),
            )),
        }
    }

    /// The name stored with the code and bound into its MAC.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Admin => "admin",
            Purpose::Consent => "consent",
            Purpose::ApplicationSignature => "application-signature",
            Purpose::LegalRepAuthorisation => "legal-rep-authorisation",
            Purpose::OrderQuery => "order-query",
            Purpose::OrderResume => "order-resume",
            Purpose::IdentityProof => "identity-proof",
        }
    }

    /// What the SMS says the code is for. Identifiers of people are masked (an ID number in a
    /// text message would outlive the code).
    fn action(self, object: &str) -> String {
        match self {
            Purpose::Login => "to log in to the cloudca app".into(),
            Purpose::Admin => format!("to confirm an administrator action for organisation {object}"),
            Purpose::Consent => {
                let (order, serial) = object.split_once('/').unwrap_or((object, ""));
                format!("to consent to order {order} on your certificate {serial}")
            }
            Purpose::ApplicationSignature => format!("to sign the application of order {object}"),
            Purpose::LegalRepAuthorisation => {
                format!("to authorise, as legal representative, the agent of order {object}")
            }
            Purpose::OrderQuery => format!("to view the orders of {}", crate::ra::validate::mask(object)),
            Purpose::OrderResume => format!("to continue order {object} on a new device"),
            Purpose::IdentityProof => "to confirm the identity check of your cloudca certificate".into(),
        }
    }
}

/// A code's scope as stored: `purpose` or `purpose:object`.
fn scope(purpose: Purpose, object: &str) -> String {
    if object.is_empty() {
        purpose.name().to_string()
    } else {
        format!("{}:{object}", purpose.name())
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
    /// The daemon's rate limits (`Instance::limits`), for the per-phone checks here.
    limits: Arc<Limits>,
    /// How long one SMS send may take (`ra.provider_timeout_ms`).
    sms_deadline: Duration,
}

impl Mobile {
    /// Built by `Instance::open`.
    pub fn new(
        store: Store,
        hsm: HsmPool,
        sms: Arc<dyn SmsProvider>,
        clock: Arc<dyn Clock>,
        config: CustodyConfig,
        limits: Arc<Limits>,
        sms_deadline: Duration,
    ) -> Self {
        Mobile { store, hsm, sms, clock, config, limits, sms_deadline }
    }

    /// Audits the first refusal of a security-relevant limit (later ones until the key is
    /// allowed again are only counted), so a flood is on record without flooding the log.
    pub async fn audit_refusal(&self, refusal: &Refusal, actor: &str) {
        if !refusal.first {
            return;
        }
        let detail = serde_json::json!({ "limit": refusal.limit, "retry_after": refusal.retry_after() });
        let record = AuditRecord::new(self.clock.as_ref(), "ratelimit.refused", actor, None, detail);
        if let Err(e) = self.store.audit(&record).await {
            tracing::warn!(error = %e, limit = refusal.limit, "cannot audit a rate-limit refusal");
        }
        tracing::warn!(target: "audit", limit = refusal.limit, actor, "rate limit engaged");
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    async fn code_hash(&self, phone: &str, scope: &str, code: &str) -> Result<String, LoginError> {
        let message = format!("cloudca-sms\n{phone}\n{scope}\n{code}");
        Ok(hex::encode(self.hsm.pepper(message.as_bytes()).await?))
    }

    /// Sends a code for `purpose` on `object` (empty for a login), within the per-phone limits.
    pub async fn send_code(&self, phone: &str, purpose: Purpose, object: &str) -> Result<(), LoginError> {
        if !valid_phone(phone) {
            return Err(LoginError::Invalid("phone: E.164, e.g. +8613800138000".into()));
        }
        self.limits.sms_per_phone.peek(phone).map_err(LoginError::RateLimited)?;
        let now = self.now();
        let wait = self.send_wait(phone, now).await?;
        if wait > 0 {
            let wait = Duration::from_secs(wait.unsigned_abs());
            crate::metrics::get().rate_limited.with_label_values(&["sms_per_phone"]).inc();
            self.limits.sms_per_phone.hold(phone, wait);
            let refusal = Refusal { limit: "sms_per_phone", wait, first: true };
            self.audit_refusal(&refusal, &format!("phone:{phone}")).await;
            return Err(LoginError::RateLimited(refusal));
        }
        let code = format!("{:06}", rand::rngs::OsRng.next_u32() % 1_000_000);
        let scope = scope(purpose, object);
        let hash = self.code_hash(phone, &scope, &code).await?;
        let id = self.store.insert_sms_code(phone, &scope, &hash, now, self.config.sms_code_seconds).await?;
        let action = purpose.action(object);
        let text = format!("cloudca code {code} {action}. Do not share it; cloudca never asks for it by phone.");
        let sent = crate::providers::call(SMS, "send", self.sms_deadline, self.sms.send(phone, &text)).await;
        if let Err(e) = sent {
            self.store.withdraw_sms_code(id).await?;
            return Err(LoginError::Sms(e));
        }
        Ok(())
    }

    /// Seconds until the database's per-phone limits allow another code (0: now): a code sent
    /// less than `sms_min_interval_seconds` ago, or `sms_per_hour` in the last hour. Only a
    /// refusal searches for the exact wait (by halving, a few indexed counts), and it is then
    /// remembered, so a phone being hammered costs the database nothing more.
    async fn send_wait(&self, phone: &str, now: i64) -> Result<i64, LoginError> {
        let interval = self.config.sms_min_interval_seconds;
        let (per_hour, store) = (self.config.sms_per_hour, &self.store);
        // Allowed at now + t when no code in (now + t - interval, now + t] and fewer than
        // per_hour in [now + t - 3600, now + t]; both only get truer as t grows.
        let recent = |t: i64| async move {
            Ok::<_, StoreError>(store.sms_sent_since(phone, now + t - interval + 1).await? == 0)
        };
        let hourly =
            |t: i64| async move { Ok::<_, StoreError>(store.sms_sent_since(phone, now + t - 3600).await? < per_hour) };
        let mut wait = 0;
        if interval > 0 && !recent(0).await? {
            wait = first_true(1, interval, recent).await?;
        }
        if !hourly(0).await? {
            wait = wait.max(first_true(1, 3600, hourly).await?);
        }
        Ok(wait)
    }

    /// Checks a code sent for exactly this purpose and object (one try spent; used once on
    /// success). Each check, right or wrong, is an attempt against the phone's
    /// `limits.attempts_per_credential`.
    pub async fn check_code(&self, phone: &str, purpose: Purpose, object: &str, code: &str) -> Result<(), LoginError> {
        if let Err(refusal) = self.limits.attempts_per_credential.check(&("phone", phone)) {
            self.audit_refusal(&refusal, &format!("phone:{phone}")).await;
            return Err(LoginError::RateLimited(refusal));
        }
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LoginError::BadCode);
        }
        let now = self.now();
        let scope = scope(purpose, object);
        let Some((id, stored)) = self.store.take_sms_attempt(phone, &scope, now, self.config.sms_code_attempts).await?
        else {
            return Err(LoginError::BadCode);
        };
        let given = self.code_hash(phone, &scope, code).await?;
        let equal = constant_time_eq(given.as_bytes(), stored.as_bytes());
        if !equal || !self.store.use_sms_code(id).await? {
            return Err(LoginError::BadCode);
        }
        Ok(())
    }

    /// Logs in with a code; returns a new bearer token.
    pub async fn login(&self, phone: &str, code: &str) -> Result<MobileSession, LoginError> {
        let result = match self.check_code(phone, Purpose::Login, "", code).await {
            // Refused before any try: the limit audits its own first refusal.
            Err(LoginError::RateLimited(refusal)) => return Err(LoginError::RateLimited(refusal)),
            other => other,
        };
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

/// The least `t` in `lo..=hi` for which `holds(t)` (monotone: false, then true), or `hi`.
async fn first_true<F, Fut>(mut lo: i64, mut hi: i64, holds: F) -> Result<i64, StoreError>
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = Result<bool, StoreError>>,
{
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if holds(mid).await? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Equality without an early exit, so timing says nothing about where two codes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-256 of a bearer token, hex: what the database keeps.
fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
