//! The request bodies of CSC API v1 (v1.0.4.0: `hash`, `hashAlgo`, `PIN`, `OTP`; what pyHanko
//! sends) and v2 (v2.0.0.2: `hashes`, `hashAlgorithmOID`, `authData`), and the one internal
//! form each becomes, so the service never sees which version asked. Unknown fields are
//! refused; the fields the specifications define but this service does not use are accepted
//! and ignored (`clientData`, `lang`), or refused when accepting them would mislead (`PIN`,
//! `OTP`, `authData`: the holder approves on the phone, never through the platform).

use serde::Deserialize;

use super::CscError;

/// Which API version a route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `/csc/v1/`.
    V1,
    /// `/csc/v2/`.
    V2,
}

/// `credentials/list`, both versions (v1 `maxResults`/`pageToken`, v2 `credentialInfo` ...).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListRequest {
    /// The holder's resident ID number or the organisation's credit code: required here.
    #[serde(rename = "userID", default)]
    pub user_id: Option<String>,
    /// v1: at most this many IDs.
    #[serde(default)]
    pub max_results: Option<u32>,
    /// v1: paging (one page only here; any token is refused).
    #[serde(default)]
    pub page_token: Option<String>,
    /// v2: also return each credential's info.
    #[serde(default)]
    pub credential_info: Option<bool>,
    /// v2, with `credentialInfo`: `none`, `single` or `chain`.
    #[serde(default)]
    pub certificates: Option<String>,
    /// v2, with `credentialInfo`: the certificate details.
    #[serde(default)]
    pub cert_info: Option<bool>,
    /// v2, with `credentialInfo`: the auth details.
    #[serde(default)]
    pub auth_info: Option<bool>,
    /// v2: only valid credentials (always so here).
    #[serde(default)]
    pub only_valid: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub lang: Option<String>,
    /// Ignored.
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `credentials/info`, both versions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InfoRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// `none`, `single` (default) or `chain`.
    #[serde(default)]
    pub certificates: Option<String>,
    /// Whether to add issuer and subject names, serial and validity.
    #[serde(default)]
    pub cert_info: Option<bool>,
    /// Whether to add the auth details.
    #[serde(default)]
    pub auth_info: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub lang: Option<String>,
    /// Ignored.
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `credentials/authorize` with v1 names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizeV1 {
    #[serde(rename = "credentialID")]
    credential_id: String,
    num_signatures: u32,
    #[serde(default)]
    hash: Option<Vec<String>>,
    #[serde(rename = "PIN", default)]
    pin: Option<String>,
    #[serde(rename = "OTP", default)]
    otp: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    client_data: Option<String>,
}

/// `credentials/authorize` with v2 names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizeV2 {
    #[serde(rename = "credentialID")]
    credential_id: String,
    num_signatures: u32,
    #[serde(default)]
    hashes: Option<Vec<String>>,
    #[serde(rename = "hashAlgorithmOID", default)]
    hash_algorithm_oid: Option<String>,
    #[serde(default)]
    auth_data: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    client_data: Option<String>,
}

/// `credentials/authorize`, either version.
#[derive(Debug)]
pub struct Authorize {
    /// The credential.
    pub credential_id: String,
    /// How many signatures (must equal the number of hashes).
    pub num_signatures: u32,
    /// The base64 SHA-256 hashes the holder approves (SCAL 2: required).
    pub hashes: Vec<String>,
    /// The hash algorithm's OID, if named.
    pub hash_algorithm: Option<String>,
    /// Shown to the holder.
    pub description: Option<String>,
}

const NO_SECRETS: &str = "PIN, OTP and authData are not accepted: the holder approves on the phone";

impl TryFrom<AuthorizeV1> for Authorize {
    type Error = CscError;

    fn try_from(v: AuthorizeV1) -> Result<Authorize, CscError> {
        let _ = v.client_data;
        if v.pin.is_some() || v.otp.is_some() {
            return Err(CscError::invalid(NO_SECRETS));
        }
        Ok(Authorize {
            credential_id: v.credential_id,
            num_signatures: v.num_signatures,
            hashes: v.hash.ok_or_else(|| CscError::invalid("Missing (or invalid type) array parameter hash"))?,
            hash_algorithm: None,
            description: v.description,
        })
    }
}

impl TryFrom<AuthorizeV2> for Authorize {
    type Error = CscError;

    fn try_from(v: AuthorizeV2) -> Result<Authorize, CscError> {
        let _ = v.client_data;
        if v.auth_data.as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(CscError::invalid(NO_SECRETS));
        }
        Ok(Authorize {
            credential_id: v.credential_id,
            num_signatures: v.num_signatures,
            hashes: v.hashes.ok_or_else(|| CscError::invalid("Missing (or invalid type) array parameter hashes"))?,
            hash_algorithm: v.hash_algorithm_oid,
            description: v.description,
        })
    }
}

/// `credentials/authorizeCheck` (v2; offered under v1 too, so v1 clients can poll).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizeCheck {
    /// The handle `credentials/authorize` returned.
    pub handle: String,
    /// Ignored.
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `signatures/signHash` with v1 names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignHashV1 {
    #[serde(rename = "credentialID")]
    credential_id: String,
    #[serde(rename = "SAD")]
    sad: String,
    hash: Vec<String>,
    #[serde(default)]
    hash_algo: Option<String>,
    sign_algo: String,
    #[serde(default)]
    sign_algo_params: Option<String>,
    #[serde(default)]
    client_data: Option<String>,
}

/// `signatures/signHash` with v2 names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignHashV2 {
    #[serde(rename = "credentialID")]
    credential_id: String,
    #[serde(rename = "SAD")]
    sad: String,
    hashes: Vec<String>,
    #[serde(rename = "hashAlgorithmOID", default)]
    hash_algorithm_oid: Option<String>,
    sign_algo: String,
    #[serde(default)]
    sign_algo_params: Option<String>,
    #[serde(default)]
    operation_mode: Option<String>,
    #[serde(default)]
    validity_period: Option<u64>,
    #[serde(rename = "response_uri", default)]
    response_uri: Option<String>,
    #[serde(default)]
    client_data: Option<String>,
}

/// `signatures/signHash`, either version.
#[derive(Debug)]
pub struct SignHash {
    /// The credential.
    pub credential_id: String,
    /// The SAD from `authorizeCheck`.
    pub sad: String,
    /// Base64 hashes to sign: exactly the approved ones.
    pub hashes: Vec<String>,
    /// The hash algorithm's OID, if named.
    pub hash_algorithm: Option<String>,
    /// The signature algorithm's OID.
    pub sign_algorithm: String,
    /// Algorithm parameters (RSASSA-PSS only; refused here).
    pub sign_algorithm_params: Option<String>,
}

impl From<SignHashV1> for SignHash {
    fn from(v: SignHashV1) -> SignHash {
        let _ = v.client_data;
        SignHash {
            credential_id: v.credential_id,
            sad: v.sad,
            hashes: v.hash,
            hash_algorithm: v.hash_algo,
            sign_algorithm: v.sign_algo,
            sign_algorithm_params: v.sign_algo_params,
        }
    }
}

impl TryFrom<SignHashV2> for SignHash {
    type Error = CscError;

    fn try_from(v: SignHashV2) -> Result<SignHash, CscError> {
        let _ = (v.client_data, v.validity_period);
        if v.operation_mode.as_deref().is_some_and(|m| m != "S") || v.response_uri.is_some() {
            return Err(CscError::invalid("operationMode: only S (synchronous) is offered"));
        }
        Ok(SignHash {
            credential_id: v.credential_id,
            sad: v.sad,
            hashes: v.hashes,
            hash_algorithm: v.hash_algorithm_oid,
            sign_algorithm: v.sign_algo,
            sign_algorithm_params: v.sign_algo_params,
        })
    }
}

/// `signatures/timestamp` (both versions keep `hash` and `hashAlgo`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Timestamp {
    /// Base64 hash to timestamp.
    pub hash: String,
    /// Its algorithm's OID (SHA-256 only).
    pub hash_algo: String,
    /// Optional nonce, hexadecimal, echoed in the token.
    #[serde(default)]
    pub nonce: Option<String>,
    /// Ignored.
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `info` (an empty body or `lang`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfoQuery {
    /// Ignored.
    #[serde(default)]
    pub lang: Option<String>,
}

/// One entry of v2 `signatures/signDoc` `documents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentV2 {
    /// The PDF, base64.
    pub document: String,
    /// `P` (PAdES) only.
    pub signature_format: String,
    /// `Ades-B-B` (default), `Ades-B-T` or `Ades-B-LT`.
    #[serde(default)]
    pub conformance_level: Option<String>,
    /// The signature algorithm's OID (one of the credential's `key.algo`).
    #[serde(rename = "signAlgo")]
    pub sign_algo: String,
    /// Refused (RSASSA-PSS only).
    #[serde(rename = "signAlgoParams", default)]
    pub sign_algo_params: Option<String>,
    /// Refused: the signed attributes are fixed by the PAdES baseline profile (never built in
    /// memory: a refused field of a document-sized body could be a huge array).
    #[serde(default)]
    pub signed_props: Option<serde::de::IgnoredAny>,
    /// `Revision` (an approval signature, the default); `Certification` (DocMDP) is refused.
    #[serde(default)]
    pub signed_envelope_property: Option<String>,
}

/// v2 `signatures/signDoc`: asynchronous only, since the holder approves each document on the
/// phone (`operationMode` `A`; no SAD, no `documentDigests`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignDocV2 {
    /// The credential.
    #[serde(rename = "credentialID", default)]
    pub credential_id: Option<String>,
    /// Refused: a platform names the credential.
    #[serde(default)]
    pub signature_qualifier: Option<String>,
    /// Refused: the approval is per document, on the phone.
    #[serde(rename = "SAD", default)]
    pub sad: Option<String>,
    /// Refused: the service must see the document it shows the holder (not built in memory).
    #[serde(default)]
    pub document_digests: Option<serde::de::IgnoredAny>,
    /// Exactly one PDF.
    #[serde(default)]
    pub documents: Option<Vec<DocumentV2>>,
    /// `A` (required).
    #[serde(default)]
    pub operation_mode: Option<String>,
    /// Ignored: the session's own lifetime applies.
    #[serde(default)]
    pub validity_period: Option<u64>,
    /// Refused: the platform polls.
    #[serde(rename = "response_uri", default)]
    pub response_uri: Option<String>,
    /// Refused: B-LT embeds the validation data in the document itself.
    #[serde(default)]
    pub return_validation_info: Option<bool>,
    /// Shown to the holder (a cloudca extension, like `description` in `authorize`).
    #[serde(default)]
    pub description: Option<String>,
    /// Ignored.
    #[serde(default)]
    pub client_data: Option<String>,
}

/// v2 `signatures/signPolling`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignPolling {
    /// The `responseID` `signDoc` returned.
    #[serde(rename = "requestID")]
    pub request_id: String,
    /// Ignored.
    #[serde(rename = "userID", default)]
    pub user_id: Option<String>,
    /// Ignored.
    #[serde(default)]
    pub client_data: Option<String>,
}
