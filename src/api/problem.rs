//! RFC 9457 problem documents, and the extractors that turn malformed input into them. The
//! title says what is wrong in words a client can act on; internal details go to the log
//! (with the request id), never into the body.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: String,
    /// RFC 9457 extension members (field errors, the open order a duplicate names...).
    extensions: serde_json::Map<String, serde_json::Value>,
    /// Seconds for the `Retry-After` header (rate limits).
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem with a status and a client-facing title.
    pub fn new(status: StatusCode, title: impl Into<String>) -> Problem {
        Problem { status, title: title.into(), extensions: serde_json::Map::new(), retry_after: None }
    }

    /// 429 for a rate limit: `Retry-After` (whole seconds, at least 1) and the same number as
    /// the `retry_after` member, for clients that only read the body.
    pub fn too_many(title: impl Into<String>, retry_after: u64) -> Problem {
        let seconds = retry_after.max(1);
        Problem::new(StatusCode::TOO_MANY_REQUESTS, title).with("retry_after", seconds.into()).retry_in(seconds)
    }

    /// Sets the `Retry-After` header.
    fn retry_in(mut self, seconds: u64) -> Problem {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds an extension member (never a secret or an internal cause).
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Problem {
        self.extensions.insert(key.to_string(), value);
        self
    }

    /// 400.
    pub fn bad_request(title: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, title)
    }

    /// 404.
    pub fn not_found(title: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, title)
    }

    /// 500, with the cause logged (inside the request's span, so with its id) and not shown.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Problem {
        if let Some(store) = store_error(cause) {
            if store.is_unavailable() {
                return Problem::unavailable(&cause);
            }
            if store.is_bad_value() {
                tracing::warn!(error = %cause, "the database refused a value from the request");
                return Problem::bad_request("a value in the request cannot be stored (e.g. a NUL character)");
            }
        }
        tracing::error!(error = %cause, "request failed");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// 503, for a dependency that is away (HSM, database); cause logged.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Problem {
        tracing::warn!(error = %cause, "dependency unavailable");
        // The HSM pool probes every second and the database pool reconnects on demand: a few
        // seconds is the honest hint (RFC 9110 §10.2.3).
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable, try again later")
            .retry_in(UNAVAILABLE_RETRY_SECONDS)
    }

    /// A third-party provider (SMS, identity, payment...) gave no answer: 503 with
    /// `Retry-After` when it is down or too slow, 502 when it refused. `title` is what the
    /// person is told; the error is logged.
    pub fn provider(cause: &crate::providers::ProviderError, title: impl Into<String>) -> Problem {
        tracing::warn!(error = %cause, "provider failed");
        if let crate::providers::ProviderError::Refused(_) = cause {
            return Problem::new(StatusCode::BAD_GATEWAY, title);
        }
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, title).retry_in(UNAVAILABLE_RETRY_SECONDS)
    }
}

/// The storage error somewhere in the cause chain, if any: it says whether the database is away
/// or refused a value, which decides the status.
fn store_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a crate::store::StoreError> {
    let mut next = Some(cause);
    while let Some(e) = next {
        if let Some(store) = e.downcast_ref::<crate::store::StoreError>() {
            return Some(store);
        }
        next = e.source();
    }
    None
}

/// `Retry-After` on a 503 from a missing HSM or database.
const UNAVAILABLE_RETRY_SECONDS: u64 = 5;

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body =
            serde_json::json!({ "type": "about:blank", "title": self.title, "status": self.status.as_u16() });
        if let Some(map) = body.as_object_mut() {
            map.extend(self.extensions);
        }
        let mut response =
            (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

/// A JSON body whose rejections (not JSON, wrong types, too large, wrong media type) are
/// problem documents with the status axum chose (400, 413, 415, 422).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let title = match rejection {
        JsonRejection::MissingJsonContentType(_) => "the body must be application/json".to_string(),
        JsonRejection::JsonSyntaxError(_) => "the body is not valid JSON".to_string(),
        JsonRejection::JsonDataError(e) => format!("the JSON does not fit the schema: {}", e.body_text()),
        JsonRejection::BytesRejection(_) => "the body is too large or unreadable".to_string(),
        _ => "unreadable body".to_string(),
    };
    Problem::new(rejection.status(), title)
}

/// Query parameters whose rejections are 400 problem documents.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Params(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(Problem::bad_request(format!("bad query parameters: {}", e.body_text())))
            }
            Err(_) => Err(Problem::bad_request("bad query parameters")),
        }
    }
}
