//! The legal representative's letter page's calls (web-front role; the web front serves
//! `/letter/{link}` to the phone the link was texted to): read the letter, download it, have
//! the code texted, sign. The link in the path is the only credential (`ra::letter`); an
//! unknown, altered or expired link, or one of a channel the calling web front does not serve,
//! is 404. Code requests count per browser address like the order's (`sms_per_ip`), signing
//! attempts like other secret guesses (`attempts_per_ip`); code guesses per phone are `Mobile`'s.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::applicant::{pdf as pdf_response, served};
use super::problem;
use crate::api::problem::{JsonBody, Problem};
use crate::api::throttle::{self, ClientIp};
use crate::daemon::Instance;
use crate::roles::Caller;

/// `GET /v1/ra/letters/{link}`: the letter as the page shows it.
pub(crate) async fn show(
    State(instance): State<Instance>,
    Path(link): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Problem> {
    let (order, view) = instance.ra.letter_by_link(&link).await.map_err(problem)?;
    served(&caller, order)?;
    Ok(Json(view).into_response())
}

/// `GET /v1/ra/letters/{link}/pdf`: the letter (as kept once signed).
pub(crate) async fn pdf(
    State(instance): State<Instance>,
    Path(link): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Problem> {
    let (order, bytes) = instance.ra.letter_pdf_by_link(&link).await.map_err(problem)?;
    let order = served(&caller, order)?;
    Ok(pdf_response(bytes, &format!("{}-authorization-letter.pdf", order.id)))
}

/// An empty body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Empty {}

/// `POST /v1/ra/letters/{link}/code`: the code to the legal representative's phone.
pub(crate) async fn code(
    State(instance): State<Instance>,
    Path(link): Path<String>,
    Extension(caller): Extension<Caller>,
    ip: ClientIp,
    JsonBody(_): JsonBody<Empty>,
) -> Result<Response, Problem> {
    let (order, _) = instance.ra.letter_by_link(&link).await.map_err(problem)?;
    served(&caller, order)?;
    throttle::check_ip(&instance, &instance.limits.sms_per_ip, ip).await?;
    instance.ra.letter_code(&link).await.map_err(problem)?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "sent": true }))).into_response())
}

/// The code typed on the letter page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignBody {
    code: String,
}

/// `POST /v1/ra/letters/{link}/sign`: the legal representative signs with the code.
pub(crate) async fn sign(
    State(instance): State<Instance>,
    Path(link): Path<String>,
    Extension(caller): Extension<Caller>,
    ip: ClientIp,
    JsonBody(body): JsonBody<SignBody>,
) -> Result<Response, Problem> {
    let (order, _) = instance.ra.letter_by_link(&link).await.map_err(problem)?;
    served(&caller, order)?;
    throttle::check_ip(&instance, &instance.limits.attempts_per_ip, ip).await?;
    let (_, view) = instance.ra.sign_letter(&link, &body.code).await.map_err(problem)?;
    Ok(Json(view).into_response())
}
