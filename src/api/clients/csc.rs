//! The CSC API routes (`/csc/v1/...` with v1 field names, `/csc/v2/...` with v2 names) for
//! relying platforms, authenticated as for signing sessions (mutual TLS, a registered
//! platform certificate; `info` is open). Every answer that is not a success is a CSC error
//! document, `{"error", "error_description"}`, including malformed JSON; methods this service
//! does not offer (OAuth, `auth/login`) answer 501 `not_implemented`. `credentials/authorize`,
//! `credentials/list` and v2 `signatures/signDoc` count against the platform's session rate
//! limit (`limits.signing_sessions_per_platform`), `signDoc` also against its PDF session limit;
//! only `signDoc` takes a document-sized body (`api::limits`).

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use crate::csc::document::Polled;
use crate::csc::types::{self, Version};
use crate::csc::{Check, CscError};
use crate::daemon::Instance;
use crate::roles::Caller;

/// (method, path) of every CSC route, for the OpenAPI drift test.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/csc/v1/info"),
    ("POST", "/csc/v1/credentials/list"),
    ("POST", "/csc/v1/credentials/info"),
    ("POST", "/csc/v1/credentials/authorize"),
    ("POST", "/csc/v1/credentials/authorizeCheck"),
    ("POST", "/csc/v1/signatures/signHash"),
    ("POST", "/csc/v1/signatures/timestamp"),
    ("POST", "/csc/v1/auth/login"),
    ("POST", "/csc/v1/auth/revoke"),
    ("POST", "/csc/v1/credentials/extendTransaction"),
    ("POST", "/csc/v1/credentials/sendOTP"),
    ("POST", "/csc/v1/oauth2/authorize"),
    ("POST", "/csc/v1/oauth2/token"),
    ("POST", "/csc/v1/oauth2/revoke"),
    ("POST", "/csc/v2/info"),
    ("POST", "/csc/v2/credentials/list"),
    ("POST", "/csc/v2/credentials/info"),
    ("POST", "/csc/v2/credentials/authorize"),
    ("POST", "/csc/v2/credentials/authorizeCheck"),
    ("POST", "/csc/v2/signatures/signHash"),
    ("POST", "/csc/v2/signatures/timestamp"),
    ("POST", "/csc/v2/signatures/signDoc"),
    ("POST", "/csc/v2/signatures/signPolling"),
    ("POST", "/csc/v2/auth/login"),
    ("POST", "/csc/v2/auth/revoke"),
    ("POST", "/csc/v2/oauth2/authorize"),
    ("POST", "/csc/v2/oauth2/token"),
    ("POST", "/csc/v2/oauth2/revoke"),
    ("POST", "/csc/v2/oauth2/pushed_authorize"),
];

/// A CSC error as an HTTP answer.
struct Failure(CscError);

impl From<CscError> for Failure {
    fn from(e: CscError) -> Failure {
        Failure(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "error": self.0.error, "error_description": self.0.description });
        (status, Json(body)).into_response()
    }
}

type Answer = Result<Response, Failure>;

/// The registered platform behind the client certificate.
fn platform(caller: Option<Extension<Caller>>) -> Result<String, CscError> {
    caller.and_then(|Extension(c)| c.platform).ok_or_else(CscError::forbidden)
}

/// The JSON body, or `invalid_request` naming what is wrong (empty means `{}`).
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, CscError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| CscError::invalid(format!("malformed request: {e}")))
}

/// One request against the platform's session budget: `key` is the platform name for
/// authorize (the budget sessions opened natively spend too), a pair for lookups.
async fn throttle(i: &Instance, key: &(impl std::hash::Hash + ?Sized), platform: &str) -> Result<(), CscError> {
    let limiter = &i.limits.signing_sessions_per_platform;
    let actor = || format!("platform:{platform}");
    crate::api::throttle::check(i, limiter, key, actor).await.map_err(|_| CscError::too_many())
}

/// The CSC routes, merged into the api listener's router.
pub(super) fn router() -> Router<Instance> {
    let mut r = Router::new();
    for (version, prefix) in [(Version::V1, "/csc/v1"), (Version::V2, "/csc/v2")] {
        r = r
            .route(&format!("{prefix}/info"), post(move |s, b| info(s, b, version)))
            .route(&format!("{prefix}/credentials/list"), post(move |s, c, b| list(s, c, b, version)))
            .route(&format!("{prefix}/credentials/info"), post(move |s, c, b| credential_info(s, c, b, version)))
            .route(&format!("{prefix}/credentials/authorize"), post(move |s, c, b| authorize(s, c, b, version)))
            .route(&format!("{prefix}/credentials/authorizeCheck"), post(authorize_check))
            .route(&format!("{prefix}/signatures/signHash"), post(move |s, c, b| sign_hash(s, c, b, version)))
            .route(&format!("{prefix}/signatures/timestamp"), post(timestamp));
    }
    // The document-sized body `api::limits` admits for a relying platform (axum's own 2 MiB
    // cap would answer a larger PDF with a bare 413 instead of a CSC error).
    let document = axum::extract::DefaultBodyLimit::max(crate::api::limits::MAX_DOCUMENT_BODY_BYTES);
    r = r
        .route("/csc/v2/signatures/signDoc", post(sign_doc).layer(document))
        .route("/csc/v2/signatures/signPolling", post(sign_polling));
    for (method, path) in ROUTES {
        let name = path.splitn(4, '/').nth(3).unwrap_or_default().to_string();
        let implemented = !matches!(
            name.as_str(),
            "auth/login" | "auth/revoke" | "credentials/extendTransaction" | "credentials/sendOTP"
        ) && !name.starts_with("oauth2/");
        if *method == "POST" && !implemented {
            r = r.route(path, post(move || async move { Failure(CscError::not_implemented(&name)).into_response() }));
        }
    }
    r
}

async fn info(State(i): State<Instance>, bytes: Bytes, version: Version) -> Answer {
    let _: types::InfoQuery = body(&bytes)?;
    Ok(Json(i.csc.info(version)).into_response())
}

async fn list(State(i): State<Instance>, caller: Option<Extension<Caller>>, bytes: Bytes, version: Version) -> Answer {
    let platform = platform(caller)?;
    let request: types::ListRequest = body(&bytes)?;
    if request.page_token.is_some() {
        return Err(CscError::invalid("Invalid parameter pageToken").into());
    }
    throttle(&i, &("csc-list", platform.as_str()), &platform).await?;
    let mut found = i.csc.list(&platform, request.user_id.as_deref()).await?;
    if let Some(max) = request.max_results {
        found.truncate(max as usize);
    }
    let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
    let mut answer = serde_json::json!({ "credentialIDs": ids });
    if version == Version::V2 && request.credential_info == Some(true) {
        let mut infos = Vec::new();
        for id in &ids {
            let certificates = request.certificates.as_deref();
            let mut info = i
                .csc
                .credential_info(
                    version,
                    id,
                    certificates,
                    request.cert_info == Some(true),
                    request.auth_info == Some(true),
                )
                .await?;
            info["credentialID"] = (*id).into();
            infos.push(info);
        }
        answer["credentialInfos"] = infos.into();
        answer["onlyValid"] = true.into();
    }
    Ok(Json(answer).into_response())
}

async fn credential_info(
    State(i): State<Instance>,
    caller: Option<Extension<Caller>>,
    bytes: Bytes,
    version: Version,
) -> Answer {
    let platform = platform(caller)?;
    let r: types::InfoRequest = body(&bytes)?;
    // A lookup like `credentials/list`: the same budget, so certificates (names, ID numbers)
    // cannot be harvested through it at a higher rate.
    throttle(&i, &("csc-list", platform.as_str()), &platform).await?;
    let (cert_info, auth_info) = (r.cert_info == Some(true), r.auth_info == Some(true));
    let info =
        i.csc.credential_info(version, &r.credential_id, r.certificates.as_deref(), cert_info, auth_info).await?;
    Ok(Json(info).into_response())
}

async fn authorize(
    State(i): State<Instance>,
    caller: Option<Extension<Caller>>,
    bytes: Bytes,
    version: Version,
) -> Answer {
    let platform = platform(caller)?;
    let request: types::Authorize = match version {
        Version::V1 => body::<types::AuthorizeV1>(&bytes)?.try_into()?,
        Version::V2 => body::<types::AuthorizeV2>(&bytes)?.try_into()?,
    };
    throttle(&i, &platform, &platform).await?;
    let authorized = i.csc.authorize(&platform, request).await?;
    Ok((StatusCode::ACCEPTED, Json(authorized)).into_response())
}

async fn authorize_check(State(i): State<Instance>, caller: Option<Extension<Caller>>, bytes: Bytes) -> Answer {
    let platform = platform(caller)?;
    let request: types::AuthorizeCheck = body(&bytes)?;
    Ok(match i.csc.authorize_check(&platform, &request.handle).await? {
        Check::Pending => (StatusCode::ACCEPTED, Json(serde_json::json!({ "handle": request.handle }))).into_response(),
        Check::Ready { sad, expires_in } => {
            Json(serde_json::json!({ "SAD": sad, "expiresIn": expires_in })).into_response()
        }
    })
}

async fn sign_hash(
    State(i): State<Instance>,
    caller: Option<Extension<Caller>>,
    bytes: Bytes,
    version: Version,
) -> Answer {
    let platform = platform(caller)?;
    let request: types::SignHash = match version {
        Version::V1 => body::<types::SignHashV1>(&bytes)?.into(),
        Version::V2 => body::<types::SignHashV2>(&bytes)?.try_into()?,
    };
    let signatures = i.csc.sign_hash(&platform, request).await?;
    Ok(Json(serde_json::json!({ "signatures": signatures })).into_response())
}

async fn sign_doc(State(i): State<Instance>, caller: Option<Extension<Caller>>, bytes: Bytes) -> Answer {
    let platform = platform(caller)?;
    let request: types::SignDocV2 = body(&bytes)?;
    throttle(&i, &platform, &platform).await?;
    let actor = || format!("platform:{platform}");
    let limiter = &i.limits.pdf_sessions_per_platform;
    crate::api::throttle::check(&i, limiter, &platform, actor).await.map_err(|_| CscError::too_many())?;
    let opened = i.csc.sign_doc(&platform, request).await?;
    Ok((StatusCode::ACCEPTED, Json(opened)).into_response())
}

async fn sign_polling(State(i): State<Instance>, caller: Option<Extension<Caller>>, bytes: Bytes) -> Answer {
    let platform = platform(caller)?;
    let request: types::SignPolling = body(&bytes)?;
    let _ = (request.user_id, request.client_data);
    Ok(match i.csc.sign_polling(&platform, &request.request_id).await? {
        Polled::Pending => {
            let body = serde_json::json!({
                "error": "accepted_request", "error_description": "the holder has not approved the document yet",
            });
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Polled::Signed(document) => Json(serde_json::json!({ "DocumentWithSignature": [document] })).into_response(),
    })
}

async fn timestamp(State(i): State<Instance>, caller: Option<Extension<Caller>>, bytes: Bytes) -> Answer {
    let platform = platform(caller)?;
    let request: types::Timestamp = body(&bytes)?;
    // Each token is an HSM signature: the platform gets what one address gets from `POST /tsa`.
    let actor = || format!("platform:{platform}");
    let key = ("csc-timestamp", platform.as_str());
    crate::api::throttle::check(&i, &i.limits.tsa_per_ip, &key, actor).await.map_err(|_| CscError::too_many())?;
    let token = i.csc.timestamp(&request).await?;
    Ok(Json(serde_json::json!({ "timestamp": token })).into_response())
}
