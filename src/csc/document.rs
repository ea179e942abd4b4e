//! v2 `signatures/signDoc` and `signatures/signPolling`: PAdES through the CSC API.
//!
//! The holder approves a document, not a hash the platform computed, so `signDoc` is
//! asynchronous only (`operationMode` `A`): it opens a PAdES signing session for the PDF
//! ([`crate::signing::pades`]: parsed under the same bounds, shown to the holder by name, pages
//! and digest), constrained to the named credential's certificate, and answers 202 with a
//! `responseID` and the QR material. The holder claims and approves on the phone; the service
//! signs the PDF then. `signPolling` with the `responseID` answers 202 `accepted_request` until
//! then and releases the signed PDF once (`csc.document_released`), after checking again that
//! the credential is still valid. A SAD, `documentDigests`, DocMDP certification and
//! `returnValidationInfo` are refused with the reason: B-LT carries its validation data in the
//! document.

use base64::Engine;
use sha2::Digest;

use super::types::{DocumentV2, SignDocV2};
use super::{algorithms, signing_error, Csc, CscError};
use crate::custody::new_id;
use crate::signing::pades::Level;
use crate::store::CscAuthorizationRecord;

/// What `signDoc` answers (202).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DocOpened {
    /// Poll `signatures/signPolling` with it as `requestID`.
    #[serde(rename = "responseID")]
    pub response_id: String,
    /// Public part of the QR payload.
    pub start_token: String,
    /// The QR HMAC secret (the platform's back end only).
    pub start_secret: String,
    /// Unix seconds: no claim after this.
    pub scan_deadline: i64,
    /// Unix seconds: no approval after this.
    pub expires_at: i64,
    /// The four digits the holder's app shows for this document.
    pub verification_code: String,
}

/// What `signPolling` finds.
#[derive(Debug, Clone)]
pub enum Polled {
    /// The holder has not approved yet (202 `accepted_request`).
    Pending,
    /// The signed PDF, base64, once.
    Signed(String),
}

/// The checks on the request that need no lookup; the one document and its level.
fn check(request: &SignDocV2) -> Result<(&str, &DocumentV2, Level), CscError> {
    if request.sad.is_some() {
        return Err(CscError::invalid(
            "SAD is not used by signDoc: the holder approves the document itself on the phone; \
             send operationMode A and poll signatures/signPolling",
        ));
    }
    if request.signature_qualifier.is_some() {
        return Err(CscError::invalid("signatureQualifier is not offered: name the credentialID"));
    }
    let credential = request
        .credential_id
        .as_deref()
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter credentialID"))?;
    if request.document_digests.is_some() {
        return Err(CscError::invalid("documentDigests are not accepted: send the document the holder is shown"));
    }
    if request.operation_mode.as_deref() != Some("A") {
        return Err(CscError::invalid(
            "operationMode: only A (asynchronous): the holder approves on the phone; poll signatures/signPolling",
        ));
    }
    if request.response_uri.is_some() {
        return Err(CscError::invalid("response_uri is not offered: poll signatures/signPolling"));
    }
    if request.return_validation_info == Some(true) {
        return Err(CscError::invalid(
            "returnValidationInfo is not offered: ask for Ades-B-LT, which embeds the validation data",
        ));
    }
    let [document] = request.documents.as_deref().unwrap_or_default() else {
        return Err(CscError::invalid("documents: exactly one document per request"));
    };
    if document.signature_format != "P" {
        return Err(CscError::invalid("Invalid parameter signature_format: only P (PAdES)"));
    }
    let level = match document.conformance_level.as_deref() {
        None | Some("Ades-B-B") | Some("AdES-B-B") => Level::BB,
        Some("Ades-B-T") | Some("AdES-B-T") => Level::BT,
        Some("Ades-B-LT") | Some("AdES-B-LT") => Level::BLt,
        Some(_) => {
            return Err(CscError::invalid("Invalid parameter conformance_level: Ades-B-B, Ades-B-T or Ades-B-LT"))
        }
    };
    if document.sign_algo_params.is_some() {
        return Err(CscError::invalid("Invalid parameter signAlgoParams"));
    }
    if document.signed_props.is_some() {
        return Err(CscError::invalid("signed_props are not accepted: the PAdES baseline fixes the signed attributes"));
    }
    match document.signed_envelope_property.as_deref() {
        None | Some("Revision") => {}
        Some(_) => return Err(CscError::invalid("signed_envelope_property: only Revision (an approval signature)")),
    }
    Ok((credential, document, level))
}

impl Csc {
    /// `signatures/signDoc` (v2): opens the PAdES session the holder approves.
    pub async fn sign_doc(&self, platform: &str, request: SignDocV2) -> Result<DocOpened, CscError> {
        let (credential_id, document, level) = check(&request)?;
        let c = self.credential(credential_id).await?;
        if !self.certificate_valid(&c).await? {
            return Err(CscError::invalid("the credential is not usable (locked, revoked or expired)"));
        }
        if !algorithms(&c.key_algorithm).contains(&document.sign_algo.as_str()) {
            return Err(CscError::invalid("Invalid parameter signAlgo: not this credential's key"));
        }
        let description = request
            .description
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or("Document signature requested through the CSC API");
        let open = serde_json::json!({
            "description": description,
            "documents": ["document.pdf"],
            "signer": { "serial": c.serial },
            "format": "pades",
            "document": document.document,
            "level": level,
        });
        let open = serde_json::from_value(open).map_err(|e| CscError::internal(&e))?;
        let opened = self.signing.open(platform, open).await.map_err(signing_error)?;
        // Opening decoded and bounded the same base64 already.
        let pdf = base64::engine::general_purpose::STANDARD.decode(&document.document).unwrap_or_default();
        let digest: [u8; 32] = sha2::Sha256::digest(&pdf).into();
        let record = CscAuthorizationRecord {
            handle: new_id(),
            platform: platform.to_string(),
            session_id: opened.session_id.clone(),
            credential_id: c.id.clone(),
            created_at: self.now(),
            sad_hash: None,
            sad_expires_at: None,
            spent_at: None,
            kind: "document".into(),
        };
        let detail = serde_json::json!({
            "handle": record.handle, "session": record.session_id, "credential": c.id,
            "document_sha256": hex::encode(digest), "level": level,
        });
        let audit =
            self.custody.event("csc.sign_doc_requested", &format!("platform:{platform}"), Some(&c.serial), detail);
        self.store.insert_csc_authorization(&record, &audit).await?;
        Ok(DocOpened {
            response_id: record.handle,
            start_token: opened.start_token,
            start_secret: opened.start_secret,
            scan_deadline: opened.scan_deadline,
            expires_at: opened.expires_at,
            verification_code: crate::signing::verification_code(&[digest]),
        })
    }

    /// `signatures/signPolling` (v2): pending, or the signed PDF once. Refusals (400) are
    /// audited as `csc.poll_refused`, coalesced per platform, as signHash's are.
    pub async fn sign_polling(&self, platform: &str, request_id: &str) -> Result<Polled, CscError> {
        let result = self.sign_polling_checked(platform, request_id).await;
        if let Err(e) = &result {
            if e.status == 400 {
                let detail = serde_json::json!({ "platform": platform, "reason": e.description });
                let actor = format!("platform:{platform}");
                self.events.refused("csc.poll_refused", &actor, &actor, None, detail).await;
            }
        }
        result
    }

    async fn sign_polling_checked(&self, platform: &str, request_id: &str) -> Result<Polled, CscError> {
        let a = self.own(platform, request_id, "document", "requestID").await?;
        if a.spent_at.is_some() {
            return Err(CscError::invalid("the signed document was released already"));
        }
        let Some(session) = self.approved_session(platform, &a).await? else { return Ok(Polled::Pending) };
        let c = self.credential(&a.credential_id).await?;
        // Signed at approval; a key revoked or locked since (a reported compromise) releases
        // nothing, as for signHash.
        if !self.certificate_valid(&c).await? {
            return Err(CscError::invalid("the credential is no longer valid (revoked, locked or expired)"));
        }
        let result: serde_json::Value =
            serde_json::from_str(session.result.as_deref().unwrap_or("null")).map_err(|e| CscError::internal(&e))?;
        let signed = result["document"].as_str().ok_or_else(|| CscError::internal(&"the session has no document"))?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(signed).map_err(|e| CscError::internal(&e))?;
        let detail = serde_json::json!({
            "handle": a.handle, "session": a.session_id, "credential": c.id,
            "signed_sha256": hex::encode(sha2::Sha256::digest(&bytes)),
        });
        let audit =
            self.custody.event("csc.document_released", &format!("platform:{platform}"), Some(&c.serial), detail);
        if !self.store.release_csc_document(&a.handle, self.now(), &audit).await? {
            return Err(CscError::invalid("the signed document was released already"));
        }
        Ok(Polled::Signed(signed.to_string()))
    }
}
