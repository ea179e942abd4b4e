//! The payment provider's webhook, and the sandbox providers' pages that stand in for the
//! person at the other end (scanning the payment QR code, taking the face check). A real
//! deployment's providers have their own pages; only the webhook stays.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use crate::api::problem::Problem;
use crate::api::throttle::ClientIp;
use crate::daemon::Instance;

/// Who delivered a webhook, as its audit entries name it: the client address as the rate
/// limits count it (an IPv6 address by its /64).
fn client(ip: ClientIp) -> String {
    ip.0.map_or_else(|| "ip:unknown".to_string(), |address| format!("ip:{address}"))
}

/// `POST /v1/payments/webhook`: signed by the provider (`x-pay-timestamp`, `x-pay-signature`).
/// A webhook that fails verification is audited per client address (`Ra::payment_webhook`).
pub(super) async fn webhook(
    State(instance): State<Instance>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let from = client(ip);
    let (timestamp, signature) = (header("x-pay-timestamp"), header("x-pay-signature"));
    instance.ra.payment_webhook(&from, &timestamp, &signature, &body).await.map_err(|e| match e {
        crate::ra::RaError::Provider(p) => Problem::new(StatusCode::UNAUTHORIZED, p.to_string()),
        other => crate::api::ra::problem(other),
    })?;
    Ok(Json(serde_json::json!({ "received": true })).into_response())
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title><body style=\"font-family:sans-serif;max-width:30em;margin:2em auto\"><h1>{title}</h1>{body}</body></html>"
    ))
}

/// A provider reference as it may appear in a page (anything else is not one of ours).
fn safe<'a>(reference: &'a str, what: &str) -> Result<&'a str, Problem> {
    if reference.len() <= 64 && reference.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(reference)
    } else {
        Err(Problem::not_found(format!("no such {what}")))
    }
}

/// `GET /sandbox/pay/{ref}`: what the payer's phone shows after scanning, with where the
/// payment stands (`<p id="status">open, refunded 0 of 40000 fen</p>`), as a wallet app's
/// bill shows it.
pub(super) async fn pay_page(
    State(instance): State<Instance>,
    Path(reference): Path<String>,
) -> Result<Response, Problem> {
    let r = safe(&reference, "payment")?;
    let status = instance.sandboxes.payment.describe(r).await.unwrap_or_else(|| "unknown".into());
    let form = format!(
        "<p>沙箱支付 / sandbox payment {r}</p><p id=\"status\">{status}</p>\
         <form method=\"post\"><button>确认支付 / Pay</button></form>"
    );
    Ok(page("沙箱支付", &form).into_response())
}

/// How the sandbox delivers a payment's webhook.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Delivery {
    /// `?hold=true`: the payment is taken but its webhook is handed back (JSON `timestamp`,
    /// `signature`, `body`) for the caller to deliver later, as a slow network or the
    /// provider's retry queue would. Tests use it to land a payment after the applicant
    /// switched wallet or cancelled.
    #[serde(default)]
    hold: bool,
}

/// `POST /sandbox/pay/{ref}`: the sandbox pays and delivers its signed webhook.
pub(super) async fn pay(
    State(instance): State<Instance>,
    Path(reference): Path<String>,
    Query(delivery): Query<Delivery>,
) -> Result<Response, Problem> {
    let r = safe(&reference, "payment")?;
    let now = instance.issuance.clock.now().unix_timestamp();
    let (timestamp, signature, body) =
        instance.sandboxes.payment.pay(r, now).await.map_err(|e| Problem::new(StatusCode::CONFLICT, e.to_string()))?;
    if delivery.hold {
        let body = String::from_utf8_lossy(&body);
        return Ok(
            Json(serde_json::json!({ "timestamp": timestamp, "signature": signature, "body": body })).into_response()
        );
    }
    instance.ra.payment_webhook("sandbox", &timestamp, &signature, &body).await.map_err(crate::api::ra::problem)?;
    Ok(page("支付成功 / Paid", "<p>支付成功，请返回申请页面。Paid: return to the application.</p>").into_response())
}

/// `POST /sandbox/pay/{ref}/close`: the payment QR code expires unpaid; the sandbox delivers
/// its signed `closed` webhook, as a real provider does at expiry.
pub(super) async fn close(
    State(instance): State<Instance>,
    Path(reference): Path<String>,
) -> Result<Response, Problem> {
    let r = safe(&reference, "payment")?;
    let now = instance.issuance.clock.now().unix_timestamp();
    let (timestamp, signature, body) = instance
        .sandboxes
        .payment
        .close(r, now)
        .await
        .map_err(|e| Problem::new(StatusCode::CONFLICT, e.to_string()))?;
    instance.ra.payment_webhook("sandbox", &timestamp, &signature, &body).await.map_err(crate::api::ra::problem)?;
    Ok(page("已关闭 / Closed", "<p>支付二维码已失效。The payment code expired.</p>").into_response())
}

/// `GET /sandbox/face/{id}`: the face check page.
pub(super) async fn face_page(Path(id): Path<String>) -> Result<Response, Problem> {
    let id = safe(&id, "face check")?;
    let form = format!(
        "<p>沙箱人脸识别 / sandbox face check {id}</p><form method=\"post\"><button name=\"result\" value=\"pass\">通过 / Pass</button> \
         <button name=\"result\" value=\"fail\">不通过 / Fail</button></form>"
    );
    Ok(page("人脸识别", &form).into_response())
}

/// `POST /sandbox/face/{id}`: finishes the face check at once (`result=pass|fail`).
pub(super) async fn face(
    State(instance): State<Instance>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let id = safe(&id, "face check")?;
    let passed = !String::from_utf8_lossy(&body).contains("result=fail");
    instance.sandboxes.identity.complete_face(id, passed).await.map_err(|e| Problem::provider(&e, e.to_string()))?;
    Ok(page("完成 / Done", "<p>人脸识别已完成。Face check done.</p>").into_response())
}
