//! The Cloud Signature Consortium API (v1.0.4.0 under `/csc/v1/`, v2.0.0.2 under `/csc/v2/`)
//! for relying platforms, on top of signing sessions ([`crate::signing`]).
//!
//! A platform (mutual TLS, a registered certificate, as for sessions) finds a holder's
//! credential with `credentials/list` (it must name the holder: [`Csc::list`]), reads it with
//! `credentials/info`, and asks to sign with `credentials/authorize` and the hashes (SCAL 2).
//! That opens a signing session for exactly those hashes, constrained to that credential's
//! certificate, and answers 202 with a handle and the QR material; the holder claims the QR
//! code and approves with the PIN in the app as for any session, which signs at once (DER
//! ECDSA, the session's raw format) and keeps the signatures with the session. Then:
//! 1. `authorizeCheck` (202 while the holder has not approved) issues the SAD once: 32 random
//!    bytes, only their hash stored, expiring after `[custody] authorization_seconds`
//!    (`csc.sad_issued`);
//! 2. `signHash` with that SAD, its credential and exactly the approved hashes releases the
//!    signatures once (`csc.sad_spent`); anything else is a CSC error, audited as
//!    `csc.sign_refused` (coalesced per platform), and releases nothing.
//!
//! The platform never sees the holder's PIN (PIN, OTP and authData are refused), and the
//! session's own poll does not show the signatures of a CSC session: the SAD is the only way
//! to them. `signatures/timestamp` answers from the in-process TSA ([`crate::tsa`]). v2
//! `signatures/signDoc` signs a whole PDF (PAdES) the holder approves: [`document`].

pub mod document;
pub mod error;
pub mod sad;
pub mod timestamp;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use crate::clock::Clock;
use crate::custody::{new_id, Custody};
use crate::security_events::SecurityEvents;
use crate::signing::Signing;
use crate::store::{CredentialRecord, CscAuthorizationRecord, Store};
use crate::tsa::Tsa;
pub use error::CscError;
use types::{Authorize, SignHash, Version};

/// ecdsa-with-SHA256: the signature algorithm pyHanko asks for (`signAlgo`).
pub const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
/// id-ecPublicKey: accepted as `signAlgo` with `hashAlgo` SHA-256.
pub const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// What `credentials/authorize` answers (202): the handle to poll and what the platform
/// shows the holder, as a session open gives it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Authorized {
    /// Poll `credentials/authorizeCheck` with it.
    pub handle: String,
    /// Public part of the QR payload.
    pub start_token: String,
    /// The QR HMAC secret (the platform's back end only).
    pub start_secret: String,
    /// Unix seconds: no claim after this.
    pub scan_deadline: i64,
    /// Unix seconds: no approval after this.
    pub expires_at: i64,
    /// The four digits the holder's app shows for these hashes.
    pub verification_code: String,
}

/// What `credentials/authorizeCheck` finds.
#[derive(Debug, Clone)]
pub enum Check {
    /// The holder has not approved yet (202).
    Pending,
    /// Approved: the SAD, once, and its lifetime in seconds (200).
    Ready {
        /// The SAD.
        sad: String,
        /// Seconds it stays valid.
        expires_in: i64,
    },
}

/// The CSC service; clones share everything.
#[derive(Clone)]
pub struct Csc {
    store: Store,
    custody: Custody,
    signing: Signing,
    tsa: Tsa,
    clock: Arc<dyn Clock>,
    events: SecurityEvents,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes SHA-256 hashes, each 32 bytes (the CSC wording for a wrong length).
fn decode_hashes(list: &[String], field: &str) -> Result<Vec<[u8; 32]>, CscError> {
    if list.is_empty() {
        return Err(CscError::invalid(format!("Missing (or invalid type) array parameter {field}")));
    }
    list.iter()
        .map(|h| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(h)
                .map_err(|_| CscError::invalid(format!("Invalid Base64 {field} string parameter")))?;
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| CscError::invalid("Invalid digest value length"))
        })
        .collect()
}

fn check_hash_algorithm(oid: Option<&str>) -> Result<(), CscError> {
    match oid {
        None | Some(timestamp::SHA256) => Ok(()),
        Some(_) => Err(CscError::invalid(format!("Invalid parameter hashAlgo: only {} (SHA-256)", timestamp::SHA256))),
    }
}

/// The signature algorithms a credential's key offers (`key.algo`).
fn algorithms(key_algorithm: &str) -> Vec<&'static str> {
    if key_algorithm.starts_with("rsa") {
        vec![RSA_SHA256, RSA_ENCRYPTION]
    } else {
        vec![ECDSA_SHA256, EC_PUBLIC_KEY]
    }
}

/// `YYYYMMDDHHmmssZ`.
fn generalized(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}{:02}{:02}{:02}{:02}{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

impl Csc {
    /// Built by `Instance::open`.
    pub fn new(store: Store, custody: Custody, signing: Signing, tsa: Tsa, clock: Arc<dyn Clock>) -> Csc {
        let events = SecurityEvents::new(store.clone(), clock.clone());
        Csc { store, custody, signing, tsa, clock, events }
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// `info`.
    pub fn info(&self, version: Version) -> serde_json::Value {
        let mut methods = vec![
            "credentials/list",
            "credentials/info",
            "credentials/authorize",
            "credentials/authorizeCheck",
            "signatures/signHash",
            "signatures/timestamp",
        ];
        if version == Version::V2 {
            methods.extend(["signatures/signDoc", "signatures/signPolling"]);
        }
        let (specs, auth_type) = match version {
            Version::V1 => ("1.0.4.0", "external"),
            Version::V2 => ("2.0.0.2", "TLS"),
        };
        methods.sort_unstable();
        let mut info = serde_json::json!({
            "specs": specs,
            "name": "cloudca",
            "logo": "",
            "region": "CN",
            "lang": "zh-CN",
            "description": "cloudca remote signing: the holder approves each request on the phone with the PIN",
            "authType": [auth_type],
            "methods": methods,
        });
        if version == Version::V2 {
            info["signAlgorithms"] = serde_json::json!({ "algos": [ECDSA_SHA256, EC_PUBLIC_KEY] });
            // Asynchronous for signDoc, whose document the holder approves on the phone.
            info["asynchronousOperationMode"] = true.into();
            info["signature_formats"] = serde_json::json!({ "formats": ["P"], "envelope_properties": [["Revision"]] });
            info["conformance_levels"] = serde_json::json!(["Ades-B-B", "Ades-B-T", "Ades-B-LT"]);
        }
        info
    }

    /// `credentials/list`: the active credentials of the person or organisation the platform
    /// names in `userID` (resident ID number or credit code). Privacy: no listing without a
    /// name the platform already knows, nothing about anyone else, and each lookup is audited
    /// (`csc.credentials_listed`, the identifier only as a hash) and rate-limited by the API.
    pub async fn list(&self, platform: &str, user_id: Option<&str>) -> Result<Vec<CredentialRecord>, CscError> {
        let user_id = user_id.map(str::trim).filter(|u| !u.is_empty()).ok_or_else(|| {
            CscError::invalid("userID is required: the holder's resident ID number or the organisation's credit code")
        })?;
        if user_id.len() > 32 || !user_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CscError::invalid("Invalid parameter userID"));
        }
        let found = self.store.credentials_for_identifier(user_id).await?;
        let mut usable = Vec::new();
        for c in found {
            if self.certificate_valid(&c).await? {
                usable.push(c);
            }
        }
        let detail = serde_json::json!({
            "platform": platform,
            "user": hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(user_id.to_uppercase().as_bytes())[..8]),
            "found": usable.len(),
        });
        let audit = self.custody.event("csc.credentials_listed", &format!("platform:{platform}"), None, detail);
        self.store.audit(&audit).await?;
        Ok(usable)
    }

    async fn certificate_valid(&self, c: &CredentialRecord) -> Result<bool, CscError> {
        let cert = self.store.certificate(&c.serial).await?;
        Ok(c.status == "active" && cert.is_some_and(|x| x.status != "revoked" && x.not_after >= self.now()))
    }

    /// The credential a platform names, or the CSC error for an unknown one.
    async fn credential(&self, id: &str) -> Result<CredentialRecord, CscError> {
        if id.is_empty() || id.len() > 64 {
            return Err(CscError::invalid("Invalid parameter credentialID"));
        }
        self.store.credential(id).await?.ok_or_else(|| CscError::invalid("Invalid parameter credentialID"))
    }

    /// `credentials/info` (and each entry of v2 `credentialInfos`).
    pub async fn credential_info(
        &self,
        version: Version,
        id: &str,
        certificates: Option<&str>,
        cert_info: bool,
        auth_info: bool,
    ) -> Result<serde_json::Value, CscError> {
        let c = self.credential(id).await?;
        let cert =
            self.store.certificate(&c.serial).await?.ok_or_else(|| CscError::internal(&"certificate missing"))?;
        let now = self.now();
        let cert_status = if cert.status == "revoked" {
            "revoked"
        } else if cert.not_after < now {
            "expired"
        } else {
            "valid"
        };
        let mut list = match certificates.unwrap_or("single") {
            "none" => vec![],
            "single" => vec![b64(&cert.der)],
            "chain" => {
                let chain = self.custody.chain_of(&cert.issuer).map_err(|e| CscError::internal(&e))?;
                std::iter::once(&cert.der).chain(chain.iter()).map(|d| b64(d)).collect()
            }
            _ => return Err(CscError::invalid("Invalid parameter certificates: none, single or chain")),
        };
        list.truncate(8);
        let mut cert_json = serde_json::json!({ "status": cert_status, "certificates": list });
        if cert_info {
            let (_, parsed) =
                x509_parser::parse_x509_certificate(&cert.der).map_err(|e| CscError::internal(&e.to_string()))?;
            cert_json["issuerDN"] = parsed.issuer().to_string().into();
            cert_json["subjectDN"] = parsed.subject().to_string().into();
            cert_json["serialNumber"] = cert.serial.clone().into();
            cert_json["validFrom"] = generalized(cert.not_before).into();
            cert_json["validTo"] = generalized(cert.not_after).into();
        }
        let (len, curve) = match c.key_algorithm.as_str() {
            "ecdsa-p256" => (256, Some("1.2.840.10045.3.1.7")),
            "ecdsa-p384" => (384, Some("1.3.132.0.34")),
            _ => (3072, None),
        };
        let key_status = if c.status == "active" && cert_status == "valid" { "enabled" } else { "disabled" };
        let mut key = serde_json::json!({ "status": key_status, "algo": algorithms(&c.key_algorithm), "len": len });
        if let Some(curve) = curve {
            key["curve"] = curve.into();
        }
        let mut info = serde_json::json!({
            "description": format!("cloudca {} certificate", cert.profile),
            "key": key,
            "cert": cert_json,
            "SCAL": "2",
            "multisign": self.custody.config.max_hashes,
            "lang": "zh-CN",
        });
        match version {
            Version::V1 => {
                info["authMode"] = "implicit".into();
            }
            Version::V2 if auth_info => {
                info["auth"] = serde_json::json!({ "mode": "explicit", "objects": [] });
            }
            Version::V2 => {
                info["auth"] = serde_json::json!({ "mode": "explicit" });
            }
        }
        Ok(info)
    }

    /// `credentials/authorize`: opens the signing session the holder approves (see the module
    /// docs). SCAL 2: the hashes are required and `numSignatures` must count them.
    pub async fn authorize(&self, platform: &str, request: Authorize) -> Result<Authorized, CscError> {
        check_hash_algorithm(request.hash_algorithm.as_deref())?;
        let hashes = decode_hashes(&request.hashes, "hash")?;
        let max = self.custody.config.max_hashes;
        if request.num_signatures as usize != hashes.len() {
            return Err(CscError::invalid("numSignatures must equal the number of hashes"));
        }
        if hashes.len() > max {
            return Err(CscError::invalid(format!("numSignatures: at most {max} (multisign)")));
        }
        let c = self.credential(&request.credential_id).await?;
        if !self.certificate_valid(&c).await? {
            return Err(CscError::invalid("the credential is not usable (locked, revoked or expired)"));
        }
        let description = request
            .description
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| "Signature requested through the CSC API".into());
        // Built from JSON so that fields other features add to sessions keep their defaults.
        let open = serde_json::json!({
            "hashes": request.hashes,
            "description": description,
            "signer": { "serial": c.serial },
            "format": "raw",
        });
        let open = serde_json::from_value(open).map_err(|e| CscError::internal(&e))?;
        let opened = self.signing.open(platform, open).await.map_err(signing_error)?;
        let record = CscAuthorizationRecord {
            handle: new_id(),
            platform: platform.to_string(),
            session_id: opened.session_id.clone(),
            credential_id: c.id.clone(),
            created_at: self.now(),
            sad_hash: None,
            sad_expires_at: None,
            spent_at: None,
            kind: "hashes".into(),
        };
        let detail = serde_json::json!({
            "handle": record.handle, "session": record.session_id, "credential": c.id, "hashes": hashes.len(),
        });
        let audit =
            self.custody.event("csc.authorize_requested", &format!("platform:{platform}"), Some(&c.serial), detail);
        self.store.insert_csc_authorization(&record, &audit).await?;
        Ok(Authorized {
            handle: record.handle,
            start_token: opened.start_token,
            start_secret: opened.start_secret,
            scan_deadline: opened.scan_deadline,
            expires_at: opened.expires_at,
            verification_code: crate::signing::verification_code(&hashes),
        })
    }

    /// The platform's own authorisation of `kind` by handle (`field` names it in the error);
    /// another platform's, or one of the other kind, is as unknown.
    async fn own(
        &self,
        platform: &str,
        handle: &str,
        kind: &str,
        field: &str,
    ) -> Result<CscAuthorizationRecord, CscError> {
        let unknown = || CscError::invalid(format!("Invalid parameter {field}"));
        if handle.is_empty() || handle.len() > 64 {
            return Err(unknown());
        }
        let found = self.store.csc_by_handle(handle).await?;
        found.filter(|a| a.platform == platform && a.kind == kind).ok_or_else(unknown)
    }

    /// The authorisation's session once the holder approved and it is signed with the
    /// authorised credential; `None` while it is still open. Refused, expired or otherwise
    /// ended sessions are the CSC error saying so.
    async fn approved_session(
        &self,
        platform: &str,
        a: &CscAuthorizationRecord,
    ) -> Result<Option<crate::store::SigningSessionRecord>, CscError> {
        let view = self.signing.poll(platform, &a.session_id, Duration::ZERO).await.map_err(signing_error)?;
        match view["state"].as_str().unwrap_or_default() {
            "pending" | "claimed" | "signing" => return Ok(None),
            "signed" => {}
            "refused" => return Err(CscError::denied("the holder refused to sign")),
            "expired" => return Err(CscError::invalid("the authorisation expired before the holder approved")),
            other => return Err(CscError::invalid(format!("the authorisation ended: {other}"))),
        }
        let session = self.store.signing_session(&a.session_id).await?.ok_or_else(|| CscError::internal(&"session"))?;
        if session.credential_id.as_deref() != Some(a.credential_id.as_str()) {
            return Err(CscError::denied("the holder signed with another credential"));
        }
        Ok(Some(session))
    }

    /// `credentials/authorizeCheck`.
    pub async fn authorize_check(&self, platform: &str, handle: &str) -> Result<Check, CscError> {
        let a = self.own(platform, handle, "hashes", "handle").await?;
        if a.sad_hash.is_some() {
            return Err(CscError::invalid("the SAD for this handle was issued already"));
        }
        if self.approved_session(platform, &a).await?.is_none() {
            return Ok(Check::Pending);
        }
        let (sad, sad_hash) = sad::generate();
        let lifetime = self.custody.config.authorization_seconds;
        let detail = serde_json::json!({ "handle": a.handle, "session": a.session_id, "credential": a.credential_id });
        let audit = self.custody.event("csc.sad_issued", &format!("platform:{platform}"), None, detail);
        if !self.store.issue_csc_sad(&a.handle, &sad_hash, self.now() + lifetime, &audit).await? {
            return Err(CscError::invalid("the SAD for this handle was issued already"));
        }
        Ok(Check::Ready { sad, expires_in: lifetime })
    }

    /// `signatures/signHash`: the approved signatures, once, for exactly the approved hashes.
    pub async fn sign_hash(&self, platform: &str, request: SignHash) -> Result<Vec<String>, CscError> {
        let result = self.sign_hash_checked(platform, &request).await;
        if let Err(e) = &result {
            if e.status == 400 {
                let detail = serde_json::json!({
                    "platform": platform, "credential": request.credential_id, "reason": e.description,
                });
                let actor = format!("platform:{platform}");
                self.events.refused("csc.sign_refused", &actor, &actor, None, detail).await;
            }
        }
        result
    }

    async fn sign_hash_checked(&self, platform: &str, request: &SignHash) -> Result<Vec<String>, CscError> {
        match request.sign_algorithm.as_str() {
            ECDSA_SHA256 | RSA_SHA256 => check_hash_algorithm(request.hash_algorithm.as_deref())?,
            EC_PUBLIC_KEY | RSA_ENCRYPTION if request.hash_algorithm.as_deref() == Some(timestamp::SHA256) => {}
            EC_PUBLIC_KEY | RSA_ENCRYPTION => {
                return Err(CscError::invalid("Missing (or invalid type) string parameter hashAlgo"))
            }
            _ => return Err(CscError::invalid("Invalid parameter signAlgo")),
        }
        if request.sign_algorithm_params.is_some() {
            return Err(CscError::invalid("Invalid parameter signAlgoParams"));
        }
        let hashes = decode_hashes(&request.hashes, "hash")?;
        let a = self
            .store
            .csc_by_sad(&sad::hash(&request.sad))
            .await?
            .filter(|a| a.platform == platform)
            .ok_or_else(|| CscError::invalid("Invalid parameter SAD"))?;
        if a.credential_id != request.credential_id {
            return Err(CscError::invalid("the SAD was not issued for this credentialID"));
        }
        if a.spent_at.is_some() {
            return Err(CscError::invalid("the SAD was used already"));
        }
        let now = self.now();
        if a.sad_expires_at.is_none_or(|t| t < now) {
            return Err(CscError::invalid("SAD expired"));
        }
        let c = self.credential(&a.credential_id).await?;
        // The signatures were made at approval; a key revoked, locked or destroyed since (a
        // reported compromise) releases none of them.
        if !self.certificate_valid(&c).await? {
            return Err(CscError::invalid("the credential is no longer valid (revoked, locked or expired)"));
        }
        if !algorithms(&c.key_algorithm).contains(&request.sign_algorithm.as_str()) {
            return Err(CscError::invalid("Invalid parameter signAlgo: not this credential's key"));
        }
        let session = self.store.signing_session(&a.session_id).await?.ok_or_else(|| CscError::internal(&"session"))?;
        let approved: crate::signing::OpenRequest =
            serde_json::from_str(&session.request).map_err(|e| CscError::internal(&e))?;
        let result: serde_json::Value =
            serde_json::from_str(session.result.as_deref().unwrap_or("null")).map_err(|e| CscError::internal(&e))?;
        let signatures = result["signatures"].as_array().cloned().unwrap_or_default();
        let approved_hashes = decode_hashes(&approved.hashes, "hash")?;
        if signatures.len() != approved_hashes.len() {
            return Err(CscError::internal(&"the session's signatures do not match its hashes"));
        }
        let (mut wanted, mut allowed) = (hashes.clone(), approved_hashes.clone());
        wanted.sort_unstable();
        allowed.sort_unstable();
        if wanted != allowed {
            return Err(CscError::invalid("Hash is not authorized by the SAD"));
        }
        let released: Vec<String> = hashes
            .iter()
            .map(|h| {
                let i = approved_hashes.iter().position(|x| x == h).unwrap_or_default();
                signatures[i].as_str().unwrap_or_default().to_string()
            })
            .collect();
        let detail = serde_json::json!({
            "handle": a.handle, "session": a.session_id, "credential": c.id, "hashes": hashes.len(),
        });
        let audit = self.custody.event("csc.sad_spent", &format!("platform:{platform}"), Some(&c.serial), detail);
        if !self.store.spend_csc_sad(&a.handle, now, &audit).await? {
            return Err(CscError::invalid("the SAD was used already or has expired"));
        }
        Ok(released)
    }

    /// Whether a signing session belongs to a CSC authorisation (its signatures are released
    /// by `signHash` only).
    pub async fn owns_session(&self, session_id: &str) -> Result<bool, crate::store::StoreError> {
        Ok(self.store.csc_by_session(session_id).await?.is_some())
    }

    /// `signatures/timestamp`: a token from the in-process TSA.
    pub async fn timestamp(&self, request: &types::Timestamp) -> Result<String, CscError> {
        let der = timestamp::request(&request.hash, &request.hash_algo, request.nonce.as_deref())?;
        let reply = self.tsa.answer(&der).await;
        match reply.outcome {
            crate::tsa::Outcome::Granted => {
                let token = timestamp::token(&reply.der).map_err(|e| CscError::internal(&e))?;
                Ok(b64(&token))
            }
            crate::tsa::Outcome::Rejected(fail) => Err(CscError::invalid(format!("the TSA refused: {fail:?}"))),
            crate::tsa::Outcome::Busy | crate::tsa::Outcome::Unavailable => {
                Err(CscError::unavailable(&"the timestamp authority cannot answer now"))
            }
        }
    }
}

/// Session errors in CSC terms.
fn signing_error(e: crate::signing::SigningError) -> CscError {
    use crate::signing::SigningError;
    match e {
        SigningError::Invalid(text) => CscError::invalid(text),
        SigningError::NotFound => CscError::invalid("Invalid parameter handle"),
        SigningError::Store(s) => s.into(),
        other => CscError::internal(&other),
    }
}
