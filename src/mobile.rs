//! The mobile app's login: a phone number and an SMS code give a short-lived bearer token.
//! Codes are 6 random digits, stored only as an HMAC keyed by the HSM pepper, valid minutes,
//! a few tries each, and sends are rate-limited per phone. Tokens are 256 random bits; only
//! their SHA-256 is stored, so a database copy opens no session.
//!
//! Rate limits: the per-phone send limits are counted in the database (exact across daemons);
//! a refusal is remembered in memory for its exact wait, so hammering one phone costs no query.
//! Every code check is an attempt against `limits.attempts_per_credential` for its phone.
//!
//! Failed code checks are audited, rate-bounded per phone ([`SecurityEvents`]): a failed login
//! as `mobile.login` (`outcome: refused`), every other purpose as `sms.code_failed`, each the
//! first of its minute for that phone with the count of the others (`coalesced`), so someone
//! guessing codes (a stolen phone number, an SMS thief racing the holder) is on record without
//! flooding the log.
//!
//! SMS bounds (security review M7), so the CA cannot be used for SMS pumping or bombing:
//! - every SMS the daemon sends, whatever sends it, passes the [`SmsGate`] (wrapped around the
//!   provider as [`GatedSms`]): only phones in `custody.sms_country_codes` (mainland China by
//!   default), and at most `custody.sms_total_per_hour` in a clock hour across all daemons,
//!   counted in the database; once spent, the circuit stays open until the hour rolls;
//! - login and administrator codes go only to phones with an approval or a credential. Any
//!   other phone gets the same answer, and the same per-phone limits, but no SMS, so the
//!   endpoint tells nobody which phones are holders;
//! - face-check links texted to a phone count in its per-phone limits like codes
//!   ([`Mobile::admit_face_link`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use sha2::Digest;

use crate::clock::Clock;
use crate::config::CustodyConfig;
use crate::custody::valid_phone;
use crate::hsm::{HsmError, HsmPool};
use crate::providers::{ProviderError, ProviderFuture, SmsProvider, SMS};
use crate::ratelimit::{Limits, Refusal};
use crate::security_events::SecurityEvents;
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
    /// Opening an order query by the legal representative's bank card: the code goes to the
    /// representative's phone after the card check passed (object: `subject/digest`, the
    /// digest binding the checked card details).
    OrderQueryByCard,
    /// Accepting the certificate administrator role an organisation's administrator handed
    /// over (object: `credit_code/from`, the handing administrator's phone).
    AdminHandOver,
    /// Taking an order up again from an order query, with a new order token (object: the
    /// order).
    OrderResume,
    /// The code texted to a bank card's reserved phone in an identity proof (object: the
    /// proof).
    IdentityProof,
    /// The legal representative's phone or bank-card check of a company: the carrier or bank
    /// said the details match, and the code texted to the representative's phone proves they
    /// take part (object: `order/check`, the check's random reference, so a redone company
    /// step kills the codes of the one before).
    LegalRepCheck,
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
            Purpose::OrderQueryByCard => "order-query-card",
            Purpose::AdminHandOver => "admin-hand-over",
            Purpose::OrderResume => "order-resume",
            Purpose::IdentityProof => "identity-proof",
            Purpose::LegalRepCheck => "legal-rep-check",
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
            Purpose::OrderQuery => format!("to view the orders of {}", crate::ra::mask_identifier(object)),
            Purpose::OrderQueryByCard => {
                let subject = object.split_once('/').map_or(object, |(s, _)| s);
                format!("to view, after your identity check, the orders of {}", crate::ra::mask_identifier(subject))
            }
            Purpose::AdminHandOver => {
                let credit_code = object.split_once('/').map_or(object, |(c, _)| c);
                format!("to become the certificate administrator of organisation {credit_code}")
            }
            Purpose::OrderResume => format!("to continue order {object} on a new device"),
            Purpose::IdentityProof => "to confirm the identity check of your cloudca certificate".into(),
            Purpose::LegalRepCheck => {
                let mut parts = object.split('/');
                let (order, company) = (parts.next().unwrap_or(object), parts.nth(1).unwrap_or_default());
                format!("to confirm, as legal representative of organisation {company}, its certificate application {order}")
            }
        }
    }
}

/// A code that matched and was not yet used ([`Mobile::verify_code`]). The write it
/// authorises spends it ([`crate::store::Store::hand_over_admin`]) in the same transaction,
/// only if it is still unused then. Not `Clone`: one check, one write.
#[derive(Debug)]
pub struct CheckedCode {
    /// The `sms_codes` row.
    pub(crate) id: i64,
}

/// A code's scope as stored: `purpose` or `purpose:object`.
pub(crate) fn scope(purpose: Purpose, object: &str) -> String {
    if object.is_empty() {
        purpose.name().to_string()
    } else {
        format!("{}:{object}", purpose.name())
    }
}

/// What is stored in place of a code's MAC when no SMS went out (a login code asked for a phone
/// with no approval or credential, a face-check link): the row counts in the per-phone limits
/// like a sent code, and no entered code can match it (a MAC is 64 hex digits).
const NOT_A_CODE: &str = "-";

/// Why the gate held an SMS back.
#[derive(Debug, thiserror::Error)]
pub enum SmsRefusal {
    /// The number is outside `custody.sms_country_codes`.
    #[error("only phones in {0} can receive SMS")]
    Country(String),
    /// `custody.sms_total_per_hour` is spent; SMS resume when the clock hour rolls.
    #[error("the hourly SMS budget is spent; SMS resume in {} s", .0.as_secs())]
    Budget(Duration),
    /// Database (the budget could not be counted, so nothing was sent).
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl From<SmsRefusal> for ProviderError {
    fn from(refusal: SmsRefusal) -> ProviderError {
        match refusal {
            SmsRefusal::Country(_) => ProviderError::Refused(refusal.to_string()),
            SmsRefusal::Budget(_) => ProviderError::Unavailable(format!("{SMS} (hourly budget spent)")),
            SmsRefusal::Store(_) => ProviderError::Unavailable(format!("{SMS} (budget not countable)")),
        }
    }
}

/// The bounds every SMS passes before it costs anything: the country list and the global
/// hourly budget. The budget is a counter row per clock hour in the database, so it holds
/// across daemons; once a daemon sees it spent, it remembers the hour (the open circuit) and
/// asks the database nothing more until the hour rolls.
///
/// A quarter of the budget is kept for holders ([`SmsClass::Holder`]: login and administrator
/// codes to phones with standing, identity-proof codes): traffic anyone can start (RA codes,
/// face links, notices) stops at three quarters, so a flood of applications cannot stop
/// holders from logging in and signing for the rest of the hour.
#[derive(Clone)]
pub struct SmsGate {
    store: Store,
    clock: Arc<dyn Clock>,
    /// `custody.sms_country_codes`, each with its `+`.
    prefixes: Arc<[String]>,
    /// `custody.sms_total_per_hour`.
    per_hour: i64,
    /// The clock hour (unix seconds / 3600) whose general share this daemon saw spent, or -1.
    spent_hour: Arc<AtomicI64>,
    /// The same for the whole budget (holders' share included).
    spent_hour_holders: Arc<AtomicI64>,
}

/// Which share of the hourly SMS budget a text may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsClass {
    /// Anything an applicant or the RA starts: up to three quarters of the budget.
    General,
    /// Codes a holder with standing asks for: the whole budget.
    Holder,
}

impl SmsGate {
    /// A gate with the configured country list and budget.
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: &CustodyConfig) -> SmsGate {
        let prefixes: Vec<String> = config.sms_country_codes.iter().map(|c| format!("+{c}")).collect();
        SmsGate {
            store,
            clock,
            prefixes: prefixes.into(),
            per_hour: config.sms_total_per_hour,
            spent_hour: Arc::new(AtomicI64::new(-1)),
            spent_hour_holders: Arc::new(AtomicI64::new(-1)),
        }
    }

    /// Whether `phone` (E.164) is in one of the configured countries.
    pub fn allows_country(&self, phone: &str) -> bool {
        self.prefixes.iter().any(|p| phone.starts_with(p.as_str()))
    }

    fn country_refusal(&self) -> SmsRefusal {
        SmsRefusal::Country(self.prefixes.join(", "))
    }

    /// While the share of this hour that `class` may use is known spent: how long until it
    /// rolls.
    pub fn open_circuit(&self, class: SmsClass) -> Option<Duration> {
        let now = self.clock.now().unix_timestamp();
        (self.spent(class).load(Ordering::Relaxed) == now.div_euclid(3600)).then(|| until_next_hour(now))
    }

    fn spent(&self, class: SmsClass) -> &AtomicI64 {
        match class {
            SmsClass::General => &self.spent_hour,
            SmsClass::Holder => &self.spent_hour_holders,
        }
    }

    /// How many texts of an hour `class` may use.
    fn share(&self, class: SmsClass) -> i64 {
        match class {
            SmsClass::General => self.per_hour - self.per_hour / 4,
            SmsClass::Holder => self.per_hour,
        }
    }

    /// Lets one SMS to `phone` through, spending one from this hour's budget, or says why not.
    /// Each refusal is counted; the first budget refusal of an hour in this daemon is also
    /// logged and audited (the circuit opens), later ones cost no query and no audit row.
    pub async fn take(&self, phone: &str, class: SmsClass) -> Result<(), SmsRefusal> {
        let refused = |reason| crate::metrics::get().sms_refused.with_label_values(&[reason]).inc();
        if !self.allows_country(phone) {
            refused("country");
            return Err(self.country_refusal());
        }
        if let Some(wait) = self.open_circuit(class) {
            refused("budget");
            return Err(SmsRefusal::Budget(wait));
        }
        let now = self.clock.now().unix_timestamp();
        let hour = now.div_euclid(3600);
        if self.store.take_sms_budget(hour, self.share(class)).await? {
            return Ok(());
        }
        refused("budget");
        if self.spent(class).swap(hour, Ordering::Relaxed) != hour {
            tracing::warn!(target: "audit", budget = self.per_hour, hour, "hourly SMS budget spent: no SMS until the hour rolls");
            let share = if class == SmsClass::Holder { "holders" } else { "general" };
            let detail = serde_json::json!({ "budget": self.per_hour, "share": share, "hour_start": hour * 3600 });
            let record = AuditRecord::new(self.clock.as_ref(), "sms.budget_spent", "system", None, detail);
            if let Err(e) = self.store.audit(&record).await {
                tracing::warn!(error = %e, "cannot audit the spent SMS budget");
            }
        }
        Err(SmsRefusal::Budget(until_next_hour(now)))
    }
}

/// Time from `now` (unix seconds) to the next full clock hour.
fn until_next_hour(now: i64) -> Duration {
    Duration::from_secs((3600 - now.rem_euclid(3600)).unsigned_abs())
}

/// An SMS provider behind the [`SmsGate`]: what the daemon hands to everything that texts
/// (codes, RA notices, custody notices), so no sender can bypass the bounds.
pub struct GatedSms {
    inner: Arc<dyn SmsProvider>,
    gate: SmsGate,
}

impl SmsProvider for GatedSms {
    fn send<'a>(&'a self, phone: &'a str, text: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            if let Err(refusal) = self.gate.take(phone, SmsClass::General).await {
                tracing::info!(reason = %refusal, "SMS held back by the gate");
                return Err(refusal.into());
            }
            self.inner.send(phone, text).await
        })
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
    /// The provider behind the gate ([`GatedSms`], general share).
    sms: Arc<dyn SmsProvider>,
    /// The provider itself, for holders' codes after [`SmsGate::take`] with their share.
    raw: Arc<dyn SmsProvider>,
    /// The country list and global budget, also for face-check links.
    gate: SmsGate,
    clock: Arc<dyn Clock>,
    config: CustodyConfig,
    /// The daemon's rate limits (`Instance::limits`), for the per-phone checks here.
    limits: Arc<Limits>,
    /// How long one SMS send may take (`ra.provider_timeout_ms`).
    sms_deadline: Duration,
    /// Failed code checks, one entry per phone per minute.
    events: SecurityEvents,
}

impl Mobile {
    /// Built by `Instance::open` with the raw provider; every SMS it sends passes the gate
    /// ([`Mobile::sms`] hands the gated provider to the daemon's other senders).
    pub fn new(
        store: Store,
        hsm: HsmPool,
        sms: Arc<dyn SmsProvider>,
        clock: Arc<dyn Clock>,
        config: CustodyConfig,
        limits: Arc<Limits>,
        sms_deadline: Duration,
    ) -> Self {
        let gate = SmsGate::new(store.clone(), clock.clone(), &config);
        let raw = sms;
        let sms: Arc<dyn SmsProvider> = Arc::new(GatedSms { inner: raw.clone(), gate: gate.clone() });
        let events = SecurityEvents::new(store.clone(), clock.clone());
        Mobile { store, hsm, sms, raw, gate, clock, config, limits, sms_deadline, events }
    }

    /// The SMS provider behind the gate, for every other sender (RA notices, custody notices).
    pub fn sms(&self) -> Arc<dyn SmsProvider> {
        self.sms.clone()
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

    /// Sends a code for `purpose` on `object` (empty for a login), within the per-phone limits
    /// and the gate. A login or administrator code to a phone with no approval or credential
    /// is answered as if sent, and counted against the phone as if sent, but no SMS goes out.
    pub async fn send_code(&self, phone: &str, purpose: Purpose, object: &str) -> Result<(), LoginError> {
        self.admit(phone).await?;
        let class = if matches!(purpose, Purpose::Login | Purpose::Admin | Purpose::IdentityProof) {
            SmsClass::Holder
        } else {
            SmsClass::General
        };
        if let Some(wait) = self.gate.open_circuit(class) {
            // Every phone gets this answer while the budget is spent, known or not.
            crate::metrics::get().sms_refused.with_label_values(&["budget"]).inc();
            return Err(LoginError::Sms(SmsRefusal::Budget(wait).into()));
        }
        let now = self.now();
        let code = format!("{:06}", rand::rngs::OsRng.next_u32() % 1_000_000);
        let scope = scope(purpose, object);
        let hash = self.code_hash(phone, &scope, &code).await?;
        if matches!(purpose, Purpose::Login | Purpose::Admin) && !self.store.phone_has_standing(phone, now).await? {
            self.store.insert_sms_code(phone, &scope, NOT_A_CODE, now, self.config.sms_code_seconds).await?;
            crate::metrics::get().sms_refused.with_label_values(&["no_standing"]).inc();
            let detail = serde_json::json!({ "reason": "no approval or credential", "purpose": purpose.name() });
            self.events.refused("sms.refused", &actor(phone), &actor(phone), None, detail).await;
            tracing::info!(purpose = purpose.name(), "code not sent: the phone has no approval or credential");
            return Ok(());
        }
        let id = self.store.insert_sms_code(phone, &scope, &hash, now, self.config.sms_code_seconds).await?;
        let action = purpose.action(object);
        let text = format!("cloudca code {code} {action}. Do not share it; cloudca never asks for it by phone.");
        let text = &text;
        let send: crate::providers::ProviderFuture<'_, ()> = Box::pin(async move {
            if class == SmsClass::General {
                return self.sms.send(phone, text).await;
            }
            self.gate.take(phone, class).await?;
            self.raw.send(phone, text).await
        });
        let sent = crate::providers::call(SMS, "send", self.sms_deadline, send).await;
        if let Err(e) = sent {
            self.store.withdraw_sms_code(id).await?;
            return Err(LoginError::Sms(e));
        }
        Ok(())
    }

    /// Texts `text` with a link (no code) to `phone`: the same country list, per-phone limits
    /// and global budget as a code, counted against the phone like one (a link re-sent again
    /// and again cannot bomb a phone or pump SMS).
    pub async fn send_link(&self, phone: &str, text: &str) -> Result<(), LoginError> {
        self.admit(phone).await?;
        if let Some(wait) = self.gate.open_circuit(SmsClass::General) {
            crate::metrics::get().sms_refused.with_label_values(&["budget"]).inc();
            return Err(LoginError::Sms(SmsRefusal::Budget(wait).into()));
        }
        let id = self.store.insert_sms_code(phone, "link", NOT_A_CODE, self.now(), 0).await?;
        let send = self.sms.send(phone, text);
        if let Err(e) = crate::providers::call(SMS, "send", self.sms_deadline, send).await {
            self.store.withdraw_sms_code(id).await?;
            return Err(LoginError::Sms(e));
        }
        Ok(())
    }

    /// Lets a face-check link be texted to `phone` (by the identity provider): the same
    /// country list, per-phone limits and global budget as a code, and it counts against the
    /// phone's limits like one, so redoing a face check cannot bomb a phone.
    pub async fn admit_face_link(&self, phone: &str) -> Result<(), LoginError> {
        self.admit(phone).await?;
        self.gate.take(phone, SmsClass::General).await.map_err(|refusal| LoginError::Sms(refusal.into()))?;
        let now = self.now();
        self.store.insert_sms_code(phone, "face-link", NOT_A_CODE, now, 0).await?;
        Ok(())
    }

    /// The checks before anything is texted to a phone: a well-formed number in an allowed
    /// country (refusals counted and audited: a foreign number is how SMS pumping starts),
    /// within the per-phone limits.
    async fn admit(&self, phone: &str) -> Result<(), LoginError> {
        if !valid_phone(phone) {
            return Err(LoginError::Invalid("phone: E.164, e.g. +8613800138000".into()));
        }
        if !self.gate.allows_country(phone) {
            crate::metrics::get().sms_refused.with_label_values(&["country"]).inc();
            let detail = serde_json::json!({ "reason": "country" });
            self.events.refused("sms.refused", &actor(phone), &actor(phone), None, detail).await;
            return Err(LoginError::Invalid(format!("phone: {}", self.gate.country_refusal())));
        }
        self.limits.sms_per_phone.peek(phone).map_err(LoginError::RateLimited)?;
        let wait = self.send_wait(phone, self.now()).await?;
        if wait > 0 {
            let wait = Duration::from_secs(wait.unsigned_abs());
            crate::metrics::get().rate_limited.with_label_values(&["sms_per_phone"]).inc();
            self.limits.sms_per_phone.hold(phone, wait);
            let refusal = Refusal { limit: "sms_per_phone", wait, first: true };
            self.audit_refusal(&refusal, &actor(phone)).await;
            return Err(LoginError::RateLimited(refusal));
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

    /// Withdraws every live code of `purpose` about `object`, to whatever phone it went (an
    /// administrator's new hand-over offer replaces the earlier one). Returns how many.
    pub async fn withdraw_codes(&self, purpose: Purpose, object: &str) -> Result<u64, LoginError> {
        Ok(self.store.spend_sms_codes_of(&scope(purpose, object)).await?)
    }

    /// Checks a code sent for exactly this purpose and object (one try spent; used once on
    /// success). Each check, right or wrong, is an attempt against the phone's
    /// `limits.attempts_per_credential`. A wrong, expired or malformed code is audited, once
    /// per phone per minute with the count of the others: `mobile.login` (`outcome: refused`)
    /// for a login, `sms.code_failed` for every other purpose. Neither holds the code.
    pub async fn check_code(&self, phone: &str, purpose: Purpose, object: &str, code: &str) -> Result<(), LoginError> {
        self.check_code_counted_on(phone, phone, purpose, object, code).await
    }

    /// [`Mobile::check_code`], with the guess counted against `counted`'s per-phone limit
    /// instead of `phone`'s: for a check whose code went to a phone the caller did not type
    /// (the bank-card fallback texts the legal representative's phone on file), counting on
    /// the typed phone keeps the 429 from telling whether the typed person is on file.
    pub async fn check_code_counted_on(
        &self,
        counted: &str,
        phone: &str,
        purpose: Purpose,
        object: &str,
        code: &str,
    ) -> Result<(), LoginError> {
        let checked = self.verify_code_counted_on(counted, phone, purpose, object, code).await?;
        if !self.store.use_sms_code(checked.id).await? {
            return Err(self.code_refused(phone, purpose, object, "used meanwhile").await);
        }
        Ok(())
    }

    /// Checks a code as [`Mobile::check_code`] does (one try spent, a refusal audited) but
    /// leaves it unused: the write it authorises spends it in its own transaction
    /// ([`crate::store::Store::hand_over_admin`]), and writes nothing if it was withdrawn or
    /// used in the meantime. A check and a separate write would let a withdrawal that commits
    /// between them (a removal of the phone's member) go unseen.
    pub async fn verify_code(
        &self,
        phone: &str,
        purpose: Purpose,
        object: &str,
        code: &str,
    ) -> Result<CheckedCode, LoginError> {
        self.verify_code_counted_on(phone, phone, purpose, object, code).await
    }

    async fn verify_code_counted_on(
        &self,
        counted: &str,
        phone: &str,
        purpose: Purpose,
        object: &str,
        code: &str,
    ) -> Result<CheckedCode, LoginError> {
        match self.try_code(counted, phone, purpose, object, code).await? {
            Ok(id) => Ok(CheckedCode { id }),
            Err(reason) => Err(self.code_refused(phone, purpose, object, reason).await),
        }
    }

    /// Audits a refused code (coalesced per phone) and returns the error every refused code
    /// gets: [`LoginError::BadCode`], whatever the reason, so the answer does not tell a wrong
    /// code from a withdrawn one. `reason` is one of those listed in ARCHITECTURE.md
    /// (`sms.code_failed`).
    pub async fn code_refused(&self, phone: &str, purpose: Purpose, object: &str, reason: &str) -> LoginError {
        let actor = actor(phone);
        let detail = match purpose {
            Purpose::Login => serde_json::json!({ "outcome": "refused", "reason": reason }),
            _ => {
                serde_json::json!({ "purpose": purpose.name(), "object": audited_object(purpose, object), "reason": reason })
            }
        };
        let kind = if purpose == Purpose::Login { "mobile.login" } else { "sms.code_failed" };
        self.events.refused(kind, &actor, &actor, None, detail).await;
        LoginError::BadCode
    }

    /// One try of a code: Ok(Ok(id)) when it matches a live code (not yet marked used);
    /// Ok(Err(why)) when the code is malformed, missing (none sent, expired, used, out of
    /// tries) or wrong; Err when the check itself could not run or the phone is over its
    /// attempt limit (that refusal audits its own first occurrence).
    async fn try_code(
        &self,
        counted: &str,
        phone: &str,
        purpose: Purpose,
        object: &str,
        code: &str,
    ) -> Result<Result<i64, &'static str>, LoginError> {
        if let Err(refusal) = self.limits.attempts_per_credential.check(&("phone", counted)) {
            self.audit_refusal(&refusal, &actor(counted)).await;
            return Err(LoginError::RateLimited(refusal));
        }
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Err("malformed"));
        }
        let now = self.now();
        let scope = scope(purpose, object);
        // The peppered hash first and one statement for the attempt: no live code (a subject
        // nobody asked a code for) costs the same HSM and database work as a wrong code, so
        // the answer's timing does not tell them apart (issue 17 review Low).
        let given = self.code_hash(phone, &scope, code).await?;
        let taken = self.store.take_sms_attempt(phone, &scope, now, self.config.sms_code_attempts).await?;
        let Some((id, stored)) = taken else {
            return Ok(Err("no live code"));
        };
        if !constant_time_eq(given.as_bytes(), stored.as_bytes()) {
            return Ok(Err("wrong"));
        }
        Ok(Ok(id))
    }

    /// Logs in with a code; returns a new bearer token. A refused code is audited by
    /// [`Mobile::check_code`]; a login is audited with its session.
    pub async fn login(&self, phone: &str, code: &str) -> Result<MobileSession, LoginError> {
        self.check_code(phone, Purpose::Login, "", code).await?;
        let now = self.now();
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let expires_at = now + self.config.mobile_session_minutes * 60;
        let audit = self.event("mobile.login", phone, "ok");
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

/// The audit actor for a phone.
fn actor(phone: &str) -> String {
    format!("phone:{phone}")
}

/// What a failed code's audit entry says it was for: the object as bound into the code, but a
/// person's identifier (an order query's ID number) masked, as the SMS text masks it, and a
/// phone (the administrator handing over) masked as every phone in an audit detail
/// ([`crate::audit::masked_phone`]).
fn audited_object(purpose: Purpose, object: &str) -> String {
    match purpose {
        Purpose::OrderQuery => crate::ra::mask_identifier(object),
        Purpose::OrderQueryByCard => crate::ra::mask_identifier(object.split_once('/').map_or(object, |(s, _)| s)),
        Purpose::AdminHandOver => match object.split_once('/') {
            Some((credit_code, from)) => format!("{credit_code}/{}", crate::audit::masked_phone(from)),
            None => object.to_string(),
        },
        _ => object.to_string(),
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
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-256 of a bearer token, hex: what the database keeps.
fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
