//! The RA on the admin listener (mutual TLS): the API the web front drives for applicants
//! ([`applicant`], web-front role; each order also needs its own token, `x-order-token`), and
//! the officers' endpoints ([`officer`], reviewer and readers). Their routes are entries of
//! `api::admin::ROUTES` like every other admin route.

pub(crate) mod applicant;
pub(crate) mod letter;
pub(crate) mod officer;
pub(crate) mod review_pages;

use axum::http::StatusCode;

use crate::api::problem::Problem;
use crate::ra::RaError;

/// How RA errors become problem documents; each title is something the applicant or officer
/// can act on, and field errors come as an `errors` member.
pub(crate) fn problem(e: RaError) -> Problem {
    let title = e.to_string();
    match e {
        RaError::Invalid(errors) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, title)
            .with("errors", serde_json::to_value(errors).unwrap_or_default()),
        RaError::BadRequest(_) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, title),
        RaError::NotFound => Problem::not_found(title),
        RaError::Duplicate { .. } => Problem::new(StatusCode::CONFLICT, title),
        RaError::State(_) | RaError::Conflict => Problem::new(StatusCode::CONFLICT, title),
        RaError::NotOffered(_) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, title),
        RaError::CheckFailed(_) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, title)
            .with("alternatives", serde_json::json!(["correct", "offline"])),
        RaError::NoInvoice(reason) => {
            Problem::new(StatusCode::CONFLICT, title).with("no_invoice", reason.name().into())
        }
        RaError::Forbidden(_) => Problem::new(StatusCode::FORBIDDEN, title),
        RaError::Webhook(_) => Problem::new(StatusCode::UNAUTHORIZED, title),
        RaError::Provider(p) => Problem::provider(&p, format!("{p}; try again later or choose another method")),
        RaError::Code(l) => crate::api::clients::login_problem(l),
        RaError::CarryOut(cause) => {
            tracing::error!(error = %cause, "carrying out an approved order failed");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "approved; carrying it out failed and will be retried")
        }
        RaError::Store(s) => Problem::internal(&s),
        RaError::UnreadableOrder(order) => {
            tracing::error!(order = %order, "an order's stored data cannot be read; the order is left unchanged");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}
