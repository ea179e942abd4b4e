//! Relying platforms: the systems that show a QR code and ask a holder to sign. Registration
//! records the name holders see on their phone, the platform's client certificate (by
//! SHA-256 fingerprint) and its https callback. A registered, active fingerprint is what gives
//! a client certificate the `relying-platform` role when `roles.toml` does not name it.
//!
//! The TLS listeners ask the registry again before every request ([`PlatformCache`], read by
//! `api::identity`): what they learnt is reused for at most `listeners.identity_cache_seconds`,
//! so a disabled platform loses the role at its next request after at most that long, even on a
//! connection that stays open (at once on the daemon that disabled it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::clock::Clock;
use crate::store::{AuditRecord, PlatformRecord, Store, StoreError};

/// Why a registration or change failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// A field is malformed; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The name or the certificate is registered already.
    #[error("a platform with that name or certificate is registered already")]
    Duplicate,
    /// No platform by that name.
    #[error("no relying platform named {0:?}")]
    Unknown(String),
    /// Database (including a failed audit write: nothing was registered).
    #[error("storage: {0}")]
    Store(StoreError),
}

impl From<StoreError> for PlatformError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate(_) => PlatformError::Duplicate,
            e => PlatformError::Store(e),
        }
    }
}

/// A registration request: exactly one of `certificate` (PEM) and `fingerprint`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Stable slug: lowercase letters, digits and `-`, at most 63.
    pub name: String,
    /// Shown to holders before they sign.
    pub display_name: String,
    /// Where signing results are posted; https only.
    pub callback_url: String,
    /// The platform's client certificate, PEM.
    #[serde(default)]
    pub certificate: Option<String>,
    /// Or its SHA-256 fingerprint, hex (colons allowed).
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// Validates and registers a platform, with its audit event in the same transaction.
pub async fn register(
    store: &Store,
    clock: &dyn Clock,
    r: &Registration,
    actor: &str,
) -> Result<PlatformRecord, PlatformError> {
    let record = PlatformRecord {
        name: valid_name(&r.name)?,
        display_name: valid_display_name(&r.display_name)?,
        fingerprint: fingerprint_of(r)?,
        callback_url: valid_callback(&r.callback_url)?,
        status: "active".into(),
        registered_at: clock.now().unix_timestamp(),
    };
    let detail = serde_json::json!({
        "name": record.name, "display_name": record.display_name,
        "fingerprint": record.fingerprint, "callback_url": record.callback_url,
    });
    store.insert_platform(&record, &AuditRecord::new(clock, "platform.registered", actor, None, detail)).await?;
    tracing::info!(target: "audit", platform = %record.name, actor, "relying platform registered");
    Ok(record)
}

/// Disables a platform: its certificate loses the role at its next request (on another daemon,
/// after at most `listeners.identity_cache_seconds`; see [`PlatformCache`]).
pub async fn disable(
    store: &Store,
    clock: &dyn Clock,
    name: &str,
    actor: &str,
) -> Result<PlatformRecord, PlatformError> {
    let detail = serde_json::json!({ "name": name });
    if !store.disable_platform(name, &AuditRecord::new(clock, "platform.disabled", actor, None, detail)).await? {
        store.platform(name).await?.ok_or_else(|| PlatformError::Unknown(name.to_string()))?;
    }
    store.platform(name).await?.ok_or_else(|| PlatformError::Unknown(name.to_string()))
}

/// At most this many certificates are remembered; beyond it, lookups go to the database.
const CACHE_ENTRIES: usize = 10_000;

/// Which active platform each client certificate belongs to, as the database said less than a
/// few seconds ago: the per-request check of the TLS listeners must not cost a query per
/// request, nor trust an answer for longer than `listeners.identity_cache_seconds`. An answer
/// older than that is asked again, and an error is an error (the caller refuses), never the
/// stale answer.
#[derive(Clone, Default)]
pub struct PlatformCache(Arc<Mutex<Answers>>);

/// Fingerprint → (when the database answered, the active platform's name).
type Answers = HashMap<String, (Instant, Option<String>)>;

impl PlatformCache {
    /// The name of the active platform registered for this certificate fingerprint (hex), if
    /// any, from an answer younger than `max_age` or from the database.
    pub async fn lookup(
        &self,
        store: &Store,
        fingerprint: &str,
        max_age: Duration,
    ) -> Result<Option<String>, StoreError> {
        let cached = self.entries().get(fingerprint).cloned();
        if let Some((_, name)) = cached.filter(|(at, _)| at.elapsed() < max_age) {
            return Ok(name);
        }
        let name = store.platform_by_fingerprint(fingerprint).await?.map(|p| p.name);
        let mut entries = self.entries();
        if entries.len() >= CACHE_ENTRIES && !entries.contains_key(fingerprint) {
            entries.retain(|_, (at, _)| at.elapsed() < max_age);
        }
        if entries.len() < CACHE_ENTRIES || entries.contains_key(fingerprint) {
            entries.insert(fingerprint.to_string(), (Instant::now(), name.clone()));
        }
        Ok(name)
    }

    /// Forgets every answer: after a change made here (a platform registered or disabled), the next request
    /// of every certificate asks the database.
    pub fn forget(&self) {
        self.entries().clear();
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The checks [`register`] makes before it writes anything, without the store: for the fuzz
/// targets (`crate::fuzz`).
pub(crate) fn check(r: &Registration) -> Result<(), PlatformError> {
    valid_name(&r.name)?;
    valid_display_name(&r.display_name)?;
    fingerprint_of(r)?;
    valid_callback(&r.callback_url)?;
    Ok(())
}

fn valid_name(name: &str) -> Result<String, PlatformError> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    ok.then(|| name.to_string()).ok_or_else(|| {
        PlatformError::Invalid("name: 1 to 63 lowercase letters, digits or '-', not starting with '-'".into())
    })
}

fn valid_display_name(name: &str) -> Result<String, PlatformError> {
    let trimmed = name.trim();
    let ok = (1..=128).contains(&trimmed.chars().count()) && !trimmed.chars().any(char::is_control);
    ok.then(|| trimmed.to_string())
        .ok_or_else(|| PlatformError::Invalid("display_name: 1 to 128 characters, no control characters".into()))
}

/// An https URL with a host: holders' signatures are only ever delivered over TLS.
fn valid_callback(url: &str) -> Result<String, PlatformError> {
    let invalid = || PlatformError::Invalid("callback_url: an absolute https:// URL with a host".into());
    let uri: axum::http::Uri = url.parse().map_err(|_| invalid())?;
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if uri.scheme_str() != Some("https") || !host_ok || url.len() > 2048 {
        return Err(invalid());
    }
    Ok(url.to_string())
}

fn fingerprint_of(r: &Registration) -> Result<String, PlatformError> {
    match (&r.certificate, &r.fingerprint) {
        (Some(pem_text), None) => {
            let parsed = pem::parse(pem_text)
                .ok()
                .filter(|p| p.tag() == "CERTIFICATE")
                .ok_or_else(|| PlatformError::Invalid("certificate: not a PEM certificate".into()))?;
            use x509_parser::prelude::{FromDer, X509Certificate};
            X509Certificate::from_der(parsed.contents())
                .map_err(|_| PlatformError::Invalid("certificate: not a valid X.509 certificate".into()))?;
            Ok(hex::encode(sha2::Sha256::digest(parsed.contents())))
        }
        (None, Some(f)) => {
            let hex_only = f.replace(':', "").to_ascii_lowercase();
            let ok = hex_only.len() == 64 && hex_only.bytes().all(|b| b.is_ascii_hexdigit());
            ok.then_some(hex_only).ok_or_else(|| {
                PlatformError::Invalid("fingerprint: the SHA-256 of the certificate, 64 hex digits".into())
            })
        }
        _ => Err(PlatformError::Invalid("give exactly one of certificate and fingerprint".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_must_be_https_with_a_host() {
        assert!(valid_callback("https://platform.example/cb").is_ok());
        for bad in ["http://platform.example/cb", "https:///cb", "platform.example", "", "javascript:alert(1)"] {
            assert!(valid_callback(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_are_slugs() {
        assert!(valid_name("gov-portal-1").is_ok());
        for bad in ["", "-x", "Gov", "a b", "ä", &"x".repeat(64)] {
            assert!(valid_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
