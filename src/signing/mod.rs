//! Signing sessions: a relying platform opens one with the hashes to sign; its QR payload
//! changes every second ([`qr`]); the holder's app claims it, sees the platform's registered
//! name, the description, the documents and a verification code derived from the hashes,
//! and approves with the PIN. Approval creates a single-use authorisation bound to that
//! holder, that credential and those exact hashes; spending it is the only way to sign. The
//! platform long-polls for the outcome: raw signatures or detached CMS ([`cms`]).

pub mod cms;
pub mod pades;
pub mod qr;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::clock::Clock;
use crate::custody::{new_id, Custody, CustodyError, Pin};
use crate::security_events::SecurityEvents;
use crate::store::{Authorized, SigningSessionRecord, Store, StoreError};

/// Why a signing step failed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// Malformed request; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No such session (for this platform or holder).
    #[error("no such signing session")]
    NotFound,
    /// The QR payload is malformed, forged, stale, or its scan window has closed.
    #[error("the QR code is not valid (expired, replayed or not ours)")]
    BadPayload,
    /// Someone already claimed it, or it is finished.
    #[error("the session is {0}")]
    WrongState(String),
    /// The holder or credential does not fit the platform's signer constraint.
    #[error("this certificate is not the signer the platform asked for")]
    SignerMismatch,
    /// The authorisation was used, expired, or does not match the hashes.
    #[error("the signing authorisation is not valid for these hashes")]
    AuthorizationInvalid,
    /// PIN, lock, certificate status, HSM.
    #[error("{0}")]
    Custody(#[from] CustodyError),
    /// Database.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The seal asked for is missing, not this organisation's, or not active.
    #[error("seal: {0}")]
    Seal(String),
    /// Our own fault (a stored request unreadable, a chain or CMS that cannot be built).
    #[error("internal: {0}")]
    Internal(String),
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The signature value over each hash (ECDSA DER).
    Raw,
    /// Detached CMS SignedData per hash (signingTime, messageDigest, signingCertificateV2).
    Cms,
    /// A signed PDF (PAdES) from the `document` sent ([`pades`]).
    Pades,
}

/// Who must sign, if the platform cares.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignerConstraint {
    /// Unified social credit code (organisation certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_code: Option<String>,
    /// The holder's identifier as a personal certificate's `serialNumber` carries it: the
    /// resident ID number, or another document's `{type}:{number}` (`passport:E12345678`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_number: Option<String>,
    /// A certificate serial (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// What a platform asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    /// SHA-256 hashes to sign, base64 (standard alphabet), 32 bytes each. For `pades`, none
    /// are sent: the service sets the PDF's SHA-256 here.
    #[serde(default)]
    pub hashes: Vec<String>,
    /// Shown to the holder: what this is about.
    pub description: String,
    /// Shown to the holder: the document names, one per hash or fewer.
    #[serde(default)]
    pub documents: Vec<String>,
    /// Optional signer constraint.
    #[serde(default)]
    pub signer: Option<SignerConstraint>,
    /// Output format.
    pub format: Format,
    /// Whether a seal image is wanted.
    #[serde(default)]
    pub seal: bool,
    /// With `seal`: sign without the seal when the signer may not stamp with one (the seal's
    /// administrators did not allow them), instead of refusing.
    #[serde(default)]
    pub seal_optional: bool,
    /// `pades`: the PDF, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// `pades`: where the visible seal goes (implies `seal`); none: an invisible signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_placement: Option<crate::pades::Placement>,
    /// `pades`: a signature timestamp from our TSA (at least B-T).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timestamp: bool,
    /// `pades`: the baseline level (default B-B, or B-T with `timestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<pades::Level>,
}

/// What the platform gets back when it opens a session.
#[derive(Debug, Clone, Serialize)]
pub struct Opened {
    /// The session id (for polling).
    pub session_id: String,
    /// Public part of the QR payload.
    pub start_token: String,
    /// The QR HMAC secret: keep it in the platform's back end, never in a page.
    pub start_secret: String,
    /// Unix seconds after which the QR code can no longer be claimed.
    pub scan_deadline: i64,
    /// Unix seconds after which the session expires.
    pub expires_at: i64,
}

/// What the holder is shown after claiming.
#[derive(Debug, Clone, Serialize)]
pub struct Claimed {
    /// Session id.
    pub session_id: String,
    /// The platform's registered name.
    pub platform: String,
    /// The description.
    pub description: String,
    /// Document names.
    pub documents: Vec<String>,
    /// How many hashes will be signed.
    pub hash_count: usize,
    /// Four digits derived from the hashes, shown by the platform too, so the holder can see
    /// both screens talk about the same thing.
    pub verification_code: String,
    /// Output format.
    pub format: Format,
    /// Whether the platform asked for a seal (the holder must then choose one).
    pub seal: bool,
    /// `pades`: the PDF's name, page count and SHA-256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<pades::DocumentView>,
}

/// The signing-session service.
#[derive(Clone)]
pub struct Signing {
    store: Store,
    custody: Custody,
    seals: crate::seals::Seals,
    clock: Arc<dyn Clock>,
    /// Refused claims of authentic QR codes, one entry per holder's phone per minute.
    events: SecurityEvents,
    /// TSA and status for PAdES B-T/B-LT (none until [`Signing::with_documents`]).
    documents: Option<pades::Documents>,
}

/// The verification code for a hash list: 4 digits from SHA-256 over the hashes in order.
pub fn verification_code(hashes: &[[u8; 32]]) -> String {
    let digest = hashes_digest(hashes);
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 10_000;
    format!("{n:04}")
}

fn hashes_digest(hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    for x in hashes {
        h.update(x);
    }
    h.finalize().into()
}

fn decode_hashes(list: &[String], max: usize) -> Result<Vec<[u8; 32]>, SigningError> {
    if list.is_empty() || list.len() > max {
        return Err(SigningError::Invalid(format!("hashes: 1 to {max} SHA-256 values")));
    }
    list.iter()
        .enumerate()
        .map(|(i, h)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(h)
                .map_err(|_| SigningError::Invalid(format!("hashes[{i}]: not base64")))?;
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                SigningError::Invalid(format!("hashes[{i}]: a SHA-256 hash is 32 bytes, not {}", bytes.len()))
            })
        })
        .collect()
}

fn text_field(name: &str, value: &str, max: usize) -> Result<(), SigningError> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(SigningError::Invalid(format!("{name}: 1 to {max} characters, no control characters")));
    }
    Ok(())
}

/// Checks a platform's request before anything is stored: 1 to `max_hashes` SHA-256 values,
/// the texts the holder will read, at most one document name per hash, one signer constraint.
/// Pure, so the fuzz targets (`crate::fuzz`) run it without a database.
pub(crate) fn check_open(request: &OpenRequest, max_hashes: usize) -> Result<(), SigningError> {
    decode_hashes(&request.hashes, max_hashes)?;
    text_field("description", &request.description, 512)?;
    if request.documents.len() > request.hashes.len() {
        return Err(SigningError::Invalid("documents: at most one name per hash".into()));
    }
    for d in &request.documents {
        text_field("documents[]", d, 200)?;
    }
    if let Some(s) = &request.signer {
        let given = [&s.credit_code, &s.id_number, &s.serial].iter().filter(|v| v.is_some()).count();
        if given != 1 {
            return Err(SigningError::Invalid("signer: exactly one of credit_code, id_number, serial".into()));
        }
    }
    Ok(())
}

impl Signing {
    /// Built by `Instance::open`.
    pub fn new(store: Store, custody: Custody, seals: crate::seals::Seals, clock: Arc<dyn Clock>) -> Self {
        let events = SecurityEvents::new(store.clone(), clock.clone());
        Signing { store, custody, seals, clock, events, documents: None }
    }

    /// Wires the TSA and status service PAdES B-T and B-LT use (the daemon does).
    pub fn with_documents(mut self, documents: pades::Documents) -> Self {
        self.documents = Some(documents);
        self
    }

    /// Opens a session for a registered platform.
    pub async fn open(&self, platform: &str, request: OpenRequest) -> Result<Opened, SigningError> {
        let config = &self.custody.config;
        let request = pades::check_open(request, config.max_pdf_bytes, self.documents.as_ref())?;
        check_open(&request, config.max_hashes)?;
        let now = self.clock.now();
        let secret = qr::QrSecret::generate();
        let record = SigningSessionRecord {
            id: new_id(),
            platform: platform.to_string(),
            start_token: qr::new_start_token(),
            start_secret: secret.as_bytes().to_vec(),
            created_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64,
            scan_deadline: now.unix_timestamp() + config.scan_window_seconds,
            expires_at: now.unix_timestamp() + config.session_seconds,
            request: serde_json::to_string(&request).map_err(|e| SigningError::Invalid(e.to_string()))?,
            state: "pending".into(),
            phone: None,
            credential_id: None,
            result: None,
        };
        let mut detail = serde_json::json!({ "session": record.id, "hashes": request.hashes.len(), "format": request.format, "seal": request.seal });
        if request.format == Format::Pades {
            detail["level"] = serde_json::json!(pades::level(&request));
            detail["document_sha256"] = serde_json::json!(hex::encode(decode_hashes(&request.hashes, 1)?[0]));
        }
        let audit = self.custody.event("signing.opened", &format!("platform:{platform}"), None, detail);
        self.store.insert_signing_session(&record, &audit).await?;
        Ok(Opened {
            session_id: record.id,
            start_token: record.start_token,
            start_secret: secret.to_base64(),
            scan_deadline: record.scan_deadline,
            expires_at: record.expires_at,
        })
    }

    /// The session's state for its platform, waiting up to `wait` for it to leave
    /// pending/claimed (long polling). Expired sessions are marked so.
    pub async fn poll(&self, platform: &str, id: &str, wait: Duration) -> Result<serde_json::Value, SigningError> {
        let deadline = tokio::time::Instant::now() + wait.min(Duration::from_secs(30));
        loop {
            let s = self
                .store
                .signing_session(id)
                .await?
                .filter(|s| s.platform == platform)
                .ok_or(SigningError::NotFound)?;
            let s = self.expire_if_due(s).await?;
            let open = matches!(s.state.as_str(), "pending" | "claimed" | "signing");
            if !open || tokio::time::Instant::now() >= deadline {
                return Ok(view(&s));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn expire_if_due(&self, mut s: SigningSessionRecord) -> Result<SigningSessionRecord, SigningError> {
        let now = self.clock.now().unix_timestamp();
        let due = (s.state == "pending" && now > s.scan_deadline) || (s.state == "claimed" && now > s.expires_at);
        if due {
            let audit = self.custody.event("signing.expired", "daemon", None, serde_json::json!({ "session": s.id }));
            if self.store.transition_session(&s.id, &s.state.clone(), "expired", None, now, &audit).await? {
                s.state = "expired".into();
            } else if let Some(fresh) = self.store.signing_session(&s.id).await? {
                s = fresh;
            }
        }
        Ok(s)
    }

    /// The holder's app claims a session with the scanned payload. An authentic code that is
    /// refused (stale, after the scan window, or for a session no longer pending: a replayed
    /// or relayed picture, or a second phone racing the first) is `signing.claim_refused`,
    /// once per phone per minute with the count of the others; forged and malformed payloads
    /// are noise anyone can send and are not recorded.
    pub async fn claim(&self, phone: &str, payload: &str) -> Result<Claimed, SigningError> {
        let scanned = qr::parse(payload).map_err(|_| SigningError::BadPayload)?;
        let s = self.store.signing_session_by_token(&scanned.start_token).await?.ok_or(SigningError::BadPayload)?;
        let secret = <[u8; 32]>::try_from(s.start_secret.as_slice()).map_err(|_| SigningError::BadPayload)?;
        let now = self.clock.now();
        let elapsed = ((now.unix_timestamp_nanos() / 1_000_000) as i64 - s.created_ms).max(0) as u64 / 1000;
        let window = (s.scan_deadline * 1000 - s.created_ms).max(0) as u64 / 1000;
        let t = scanned.elapsed_secs;
        match qr::verify(&scanned, &qr::QrSecret::from_bytes(secret), elapsed, 3, window) {
            Ok(_) => {}
            Err(qr::QrError::Stale { .. }) => {
                let detail = serde_json::json!({ "t": t, "server_t": elapsed });
                self.claim_refused(phone, &s, "stale", detail).await;
                return Err(SigningError::BadPayload);
            }
            Err(qr::QrError::WindowClosed { window_secs }) => {
                let detail = serde_json::json!({ "t": t, "server_t": elapsed, "window": window_secs });
                self.claim_refused(phone, &s, "scan window closed", detail).await;
                return Err(SigningError::BadPayload);
            }
            Err(_) => return Err(SigningError::BadPayload),
        }
        let s = self.expire_if_due(s).await?;
        let detail = serde_json::json!({ "session": s.id, "platform": s.platform });
        let audit = self.custody.event("signing.claimed", &format!("phone:{phone}"), None, detail);
        if !self
            .store
            .transition_session(&s.id, "pending", "claimed", Some(phone), now.unix_timestamp(), &audit)
            .await?
        {
            let state = self.store.signing_session(&s.id).await?.map_or(s.state.clone(), |fresh| fresh.state);
            let reason = format!("session {state}");
            self.claim_refused(phone, &s, &reason, serde_json::json!({ "t": t })).await;
            return Err(SigningError::WrongState(state));
        }
        let request: OpenRequest =
            serde_json::from_str(&s.request).map_err(|e| SigningError::Internal(e.to_string()))?;
        let hashes = decode_hashes(&request.hashes, usize::MAX)?;
        let platform = self.store.platform(&s.platform).await?.map(|p| p.display_name).unwrap_or(s.platform.clone());
        let document = pades::view(&request, self.custody.config.max_pdf_bytes)?;
        Ok(Claimed {
            session_id: s.id,
            platform,
            description: request.description,
            documents: request.documents,
            hash_count: hashes.len(),
            verification_code: verification_code(&hashes),
            format: request.format,
            seal: request.seal,
            document,
        })
    }

    /// Audits the refused claim of an authentic code (see [`Signing::claim`]). The entry names
    /// the session, the platform and the payload's time, never the payload (its code is a
    /// live credential for a second or so).
    async fn claim_refused(&self, phone: &str, s: &SigningSessionRecord, reason: &str, detail: serde_json::Value) {
        let mut detail = detail;
        if let Some(map) = detail.as_object_mut() {
            map.insert("session".into(), s.id.clone().into());
            map.insert("platform".into(), s.platform.clone().into());
            map.insert("reason".into(), reason.into());
        }
        let actor = format!("phone:{phone}");
        self.events.refused("signing.claim_refused", &actor, &actor, None, detail).await;
    }

    /// The holder refuses.
    pub async fn refuse(&self, phone: &str, id: &str) -> Result<(), SigningError> {
        let s = self.claimed_by(phone, id).await?;
        let audit = self.custody.event(
            "signing.refused",
            &format!("phone:{phone}"),
            None,
            serde_json::json!({ "session": s.id }),
        );
        let now = self.clock.now().unix_timestamp();
        if !self.store.transition_session(&s.id, "claimed", "refused", None, now, &audit).await? {
            return Err(SigningError::WrongState(s.state));
        }
        Ok(())
    }

    async fn claimed_by(&self, phone: &str, id: &str) -> Result<SigningSessionRecord, SigningError> {
        let s = self
            .store
            .signing_session(id)
            .await?
            .filter(|s| s.phone.as_deref() == Some(phone))
            .ok_or(SigningError::NotFound)?;
        let s = self.expire_if_due(s).await?;
        if s.state != "claimed" {
            return Err(SigningError::WrongState(s.state));
        }
        Ok(s)
    }

    /// The holder approves with a credential and its PIN (and a seal, when the platform asked
    /// for one), in numbered steps:
    /// 1. the session is this holder's and claimed; the credential is theirs and usable, fits the
    ///    signer constraint, and may stamp with the chosen seal;
    /// 2. the PIN (a try reserved in the database first, see [`Custody::check_pin_unsettled`]);
    /// 3. one transaction: the right PIN's try is settled (refused if the credential locked
    ///    meanwhile), the session moves `claimed` → `signing`, the single-use authorisation
    ///    (bound to credential and hashes, one per session) is recorded and spent, and the key use
    ///    it allows is audited. A concurrent approval of the same session stops here (409);
    /// 4. in the HSM, the blob's binding checked, one unwrap (one per worker for a large batch),
    ///    the signatures; if the HSM fails the session ends `failed`;
    /// 5. the result and `signature.created` stored together.
    pub async fn approve(
        &self,
        phone: &str,
        id: &str,
        credential_id: &str,
        pin: &Pin,
        seal_id: Option<&str>,
    ) -> Result<(), SigningError> {
        let s = self.claimed_by(phone, id).await?;
        let request: OpenRequest =
            serde_json::from_str(&s.request).map_err(|e| SigningError::Internal(e.to_string()))?;
        let hashes = decode_hashes(&request.hashes, usize::MAX)?;
        let (credential, certificate) = self.custody.usable(credential_id, phone).await?;
        let approval = self.store.approval(&credential.approval_id).await?.ok_or(SigningError::SignerMismatch)?;
        check_signer(&request, &credential, &approval)?;
        let seal = self.chosen_seal(&request, &approval, phone, seal_id).await?;
        let actor = format!("phone:{phone}");
        self.custody.check_pin_unsettled(&credential, pin, &actor).await?;
        let now = self.clock.now().unix_timestamp();
        let digest = hex::encode(hashes_digest(&hashes));
        let authorization = new_id();
        let expires = now + self.custody.config.authorization_seconds;
        let detail = serde_json::json!({ "session": s.id, "credential": credential.id, "authorization": authorization, "hashes": hashes.len() });
        let unwrap = self.custody.event("key.unwrap_authorised", &actor, Some(&credential.serial), detail);
        match self.store.authorize_once(&authorization, &s.id, &credential.id, &digest, expires, now, &unwrap).await? {
            Authorized::Spent => {}
            Authorized::CredentialInactive => return Err(CustodyError::Locked.into()),
            Authorized::SessionTaken => {
                return Err(SigningError::WrongState("being signed or finished already".into()))
            }
        }
        let mut result = match self.sign(&credential, certificate, &request, &hashes, seal.as_ref()).await {
            Ok(result) => result,
            Err(e) => {
                let detail =
                    serde_json::json!({ "session": s.id, "authorization": authorization, "error": e.to_string() });
                let audit = self.custody.event("signing.failed", &actor, Some(&credential.serial), detail);
                self.store.fail_session(&s.id, self.clock.now().unix_timestamp(), &audit).await?;
                return Err(e);
            }
        };
        if let Some(seal) = seal {
            let png = base64::engine::general_purpose::STANDARD.encode(&seal.png);
            result["seal"] = serde_json::json!({ "id": seal.id, "name": seal.name, "png": png });
        }
        let detail = serde_json::json!({ "session": s.id, "credential": credential.id, "hashes": hashes.len(), "authorization": authorization });
        let audit = self.custody.event("signature.created", &actor, Some(&credential.serial), detail);
        if !self.store.complete_session(&s.id, &credential.id, &result.to_string(), now, &audit).await? {
            return Err(SigningError::WrongState("no longer being signed".into()));
        }
        Ok(())
    }

    /// The seal for a session that asked for one: active, of the credential's organisation, and
    /// one its administrators allowed this signer to use. When the signer may not stamp, the
    /// session is refused, or signed without the seal if the platform said `seal_optional`.
    async fn chosen_seal(
        &self,
        request: &OpenRequest,
        approval: &crate::store::ApprovalRecord,
        phone: &str,
        seal_id: Option<&str>,
    ) -> Result<Option<crate::store::SealRecord>, SigningError> {
        if !request.seal {
            return Ok(None);
        }
        let refused = |why: String| if request.seal_optional { Ok(None) } else { Err(SigningError::Seal(why)) };
        if approval.profile != "org" {
            return refused("seals belong to organisation certificates".into());
        }
        let Some(seal_id) = seal_id else {
            return refused("this session asks for a seal: choose one".into());
        };
        match self.seals.for_signing(seal_id, &approval.identifier, phone).await {
            Ok(seal) => Ok(Some(seal)),
            Err(crate::seals::SealError::Store(s)) => Err(SigningError::Store(s)),
            Err(other) => refused(other.to_string()),
        }
    }

    /// The session's result: signatures in the request's format, with the certificate (read by
    /// [`Custody::usable`] in step 1) and its chain.
    async fn sign(
        &self,
        c: &crate::store::CredentialRecord,
        cert: crate::store::CertificateRecord,
        request: &OpenRequest,
        hashes: &[[u8; 32]],
        seal: Option<&crate::store::SealRecord>,
    ) -> Result<serde_json::Value, SigningError> {
        let chain = self.custody.chain_of(&cert.issuer).map_err(|e| SigningError::Internal(e.to_string()))?;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let signatures: Vec<String> = match request.format {
            Format::Pades => return self.sign_pades(c, &cert.der, &chain, request, seal).await,
            Format::Raw => {
                let inputs = hashes.iter().map(|h| h.to_vec()).collect();
                self.custody.sign(c, inputs).await?.iter().map(|s| b64(s)).collect()
            }
            Format::Cms => {
                let now = self.clock.now();
                let attributes: Vec<Vec<u8>> = hashes
                    .iter()
                    .map(|h| cms::signed_attributes(h, now, &cert.der))
                    .collect::<Result<_, _>>()
                    .map_err(|e| SigningError::Internal(e.to_string()))?;
                let inputs = attributes.iter().map(|a| sha2::Sha256::digest(a).to_vec()).collect();
                let values = self.custody.sign(c, inputs).await?;
                attributes
                    .iter()
                    .zip(values)
                    .map(|(a, v)| cms::signed_data(&cert.der, &chain, a, &v, cms::CmsAlgorithm::EcdsaP256Sha256))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| SigningError::Internal(e.to_string()))?
                    .iter()
                    .map(|d| b64(d))
                    .collect()
            }
        };
        let pem = |der: &[u8]| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
        Ok(serde_json::json!({
            "format": request.format,
            "signatures": signatures,
            "certificate": pem(&cert.der),
            "chain": chain.iter().map(|c| pem(c)).collect::<Vec<_>>(),
        }))
    }
}

impl Signing {
    /// The signed PDF for a `pades` session, as the session's result.
    async fn sign_pades(
        &self,
        c: &crate::store::CredentialRecord,
        signer_der: &[u8],
        chain: &[Vec<u8>],
        request: &OpenRequest,
        seal: Option<&crate::store::SealRecord>,
    ) -> Result<serde_json::Value, SigningError> {
        let pdf = base64::engine::general_purpose::STANDARD
            .decode(request.document.as_deref().unwrap_or_default())
            .map_err(|_| SigningError::Internal("stored document is not base64".into()))?;
        // The file signed is the file approved: the authorisation binds the session's hash, set
        // from the PDF at opening; a document changed in the database since (attacker review M3)
        // is refused, not signed.
        let approved = decode_hashes(&request.hashes, 1)?;
        if approved.first() != Some(&<[u8; 32]>::from(sha2::Sha256::digest(&pdf))) {
            return Err(SigningError::Internal("the stored document is not the one approved; nothing signed".into()));
        }
        let seal = match (seal, request.seal_placement) {
            (Some(s), Some(placement)) => Some(crate::pades::Seal { placement, png: &s.png }),
            _ => None,
        };
        let level = pades::level(request);
        let max_pdf_bytes = self.custody.config.max_pdf_bytes.max(pdf.len());
        let options = pades::PdfOptions { seal, level, now: self.clock.now(), max_pdf_bytes };
        let custody = &self.custody;
        let sign = |digest: [u8; 32]| async move {
            let mut values = custody.sign(c, vec![digest.to_vec()]).await?;
            values.pop().ok_or_else(|| SigningError::Internal("no signature".into()))
        };
        let signed = pades::sign_pdf(self.documents.as_ref(), signer_der, chain, &pdf, options, sign).await?;
        let pem = |der: &[u8]| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
        Ok(serde_json::json!({
            "format": Format::Pades,
            "level": level,
            "document": base64::engine::general_purpose::STANDARD.encode(&signed),
            "certificate": pem(signer_der),
            "chain": chain.iter().map(|c| pem(c)).collect::<Vec<_>>(),
        }))
    }
}

/// Whether a credential fits the platform's signer constraint: its serial, or its identifier
/// of the right kind (a credit code matches only organisation certificates, an ID number only
/// personal ones).
fn check_signer(
    request: &OpenRequest,
    c: &crate::store::CredentialRecord,
    approval: &crate::store::ApprovalRecord,
) -> Result<(), SigningError> {
    let Some(signer) = &request.signer else { return Ok(()) };
    let serial_ok = signer.serial.as_deref().and_then(crate::ca::serial::parse).is_some_and(|s| s == c.serial);
    let wanted = if approval.profile == "org" { &signer.credit_code } else { &signer.id_number };
    let id_ok = wanted.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(&approval.identifier));
    if serial_ok || id_ok {
        Ok(())
    } else {
        Err(SigningError::SignerMismatch)
    }
}

/// What a platform sees of its session.
fn view(s: &SigningSessionRecord) -> serde_json::Value {
    let result: serde_json::Value =
        s.result.as_deref().and_then(|r| serde_json::from_str(r).ok()).unwrap_or(serde_json::Value::Null);
    serde_json::json!({ "session_id": s.id, "state": s.state, "result": result })
}
