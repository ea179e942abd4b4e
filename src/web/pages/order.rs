//! One order: its step indicator and the form of its next step, or where it stands; and the
//! actions on it (codes, uploads, online authorisation, cancel, offline, PDFs).

use std::collections::HashMap;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use base64::Engine;
use reqwest::Method;
use serde_json::Value;

use super::apply::material_name;
use super::{channel, flow_title, redirect, token_for, trouble, urlencode};
use crate::web::forms::{checkboxes, message, refusal, to_json};
use crate::web::html::{checkbox, esc, form, input, page, radios, steps, yuan, FormState};
use crate::web::i18n::Lang;
use crate::web::security::Ctx;
use crate::web::Web;

/// Flash parameters after a redirect.
#[derive(Debug, Default, serde::Deserialize)]
pub(in crate::web) struct Flash {
    #[serde(default)]
    m: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    poll: Option<String>,
}

async fn load(web: &Web, ctx: &Ctx, id: &str) -> Result<(Value, String), Response> {
    let token = token_for(ctx, id).ok_or_else(|| trouble(ctx, StatusCode::NOT_FOUND, "404"))?;
    let answer = web
        .daemon
        .ra(Method::GET, &format!("/v1/ra/orders/{id}"), Some(&token), None)
        .await
        .map_err(|e| trouble(ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()))?;
    if !answer.ok() {
        return Err(trouble(ctx, StatusCode::NOT_FOUND, &message(ctx.lang, &answer)));
    }
    Ok((answer.body, token))
}

pub(in crate::web) async fn show(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    let (mut view, token) = match load(&web, &ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // A face check completes on the phone: each refresh asks the provider again.
    let next = view["next_step"].as_str().unwrap_or_default().to_string();
    if flash.poll.is_some() && (next == "subject-check" || next == "agent-check") {
        let path = format!("/v1/ra/orders/{id}/steps/{next}");
        if let Ok(a) = web.daemon.ra(Method::POST, &path, Some(&token), Some(&serde_json::json!({}))).await {
            if a.ok() {
                view = a.body;
            }
        }
    }
    let mut state = FormState::default();
    if let Some(serial) = flash.serial {
        state.values.insert("serial".into(), serial);
    }
    state.message = flash.e.or_else(|| flash.m.map(|m| notice(ctx.lang, &m)));
    render(&web, &ctx, &view, state, StatusCode::OK).await
}

fn notice(lang: Lang, m: &str) -> String {
    match (m, lang) {
        ("sent", Lang::Zh) => "验证码已发送".into(),
        ("sent", Lang::En) => "The code was sent.".into(),
        ("uploaded", Lang::Zh) => "已上传".into(),
        ("uploaded", Lang::En) => "Uploaded.".into(),
        _ => String::new(),
    }
}

async fn render(web: &Web, ctx: &Ctx, view: &Value, state: FormState, status: StatusCode) -> Response {
    let l = ctx.lang;
    let id = view["id"].as_str().unwrap_or_default();
    let flow = view["flow"].as_str().unwrap_or_default();
    let order_state = view["state"].as_str().unwrap_or_default();
    let next = view["next_step"].as_str();
    let list: Vec<(String, bool)> = view["steps"]
        .as_array()
        .map(|a| a.iter().map(|s| (s["name"].as_str().unwrap_or_default().to_string(), s["done"] == true)).collect())
        .unwrap_or_default();
    let mut body = format!(
        "<dl class=\"order\"><dt>{}</dt><dd id=\"order-id\">{}</dd><dt>{}</dt><dd id=\"order-state\" data-state=\"{}\">{}</dd><dt>{}</dt><dd>{}</dd></dl>",
        esc(l.t("Order")),
        esc(id),
        esc(l.t("State")),
        esc(order_state),
        esc(l.t(state_key(order_state))),
        esc(l.t("Amount")),
        yuan(view["amount_fen"].as_i64().unwrap_or(0)),
    );
    body.push_str(&steps(l, &list, next));
    body.push_str(&state.banner());
    let mut refresh = None;
    if order_state == "open" {
        let channel = channel(web).await.unwrap_or(Value::Null);
        if let Some(step) = next {
            let (html_step, r) = step_form(ctx, view, &channel, step, &state);
            body.push_str(&html_step);
            refresh = r;
        }
        if view["check_failures"].as_u64().unwrap_or(0) > 0 {
            body.push_str(&format!(
                "<section class=\"offline\" id=\"offline-path\"><p>{} {}</p><p><a href=\"/orders/{id}/form.pdf\" id=\"print-form\">{}</a></p>{}</section>",
                esc(l.t("The identity check failed.")),
                esc(l.t("Correct the data above, or apply offline: print the form, sign and stamp it, and mail it with the papers.")),
                esc(l.t("Print the application form")),
                form(ctx, &format!("/orders/{id}/offline"), "go-offline", "", l.t("Apply offline")),
            ));
        }
    } else {
        body.push_str(&status_text(l, flow, view));
    }
    if view["invoice_no"].is_string() {
        body.push_str(&format!(
            "<p><a href=\"/orders/{id}/invoice.pdf\" id=\"invoice\">{}</a></p>{}",
            esc(l.t("Download the invoice")),
            form(ctx, &format!("/orders/{id}/invoice/reissue"), "reissue-invoice", "", l.t("Send the invoice again"))
        ));
    }
    if matches!(order_state, "open" | "offline" | "review") {
        body.push_str(&form(ctx, &format!("/orders/{id}/cancel"), "cancel", "", l.t("Cancel the order")));
    }
    let title = format!("{} · {}", l.t(flow_title(flow)), id);
    (status, axum::response::Html(page(ctx, &title, &body, refresh))).into_response()
}

fn state_key(state: &str) -> &'static str {
    ["open", "offline", "review", "approved", "completed", "rejected", "cancelled"]
        .into_iter()
        .find(|s| *s == state)
        .unwrap_or("open")
}

fn status_text(l: Lang, flow: &str, view: &Value) -> String {
    let id = view["id"].as_str().unwrap_or_default();
    let text = match view["state"].as_str().unwrap_or_default() {
        "review" => l.t("We are reviewing the application (3 to 5 working days). You will get an SMS and an e-mail.").to_string(),
        "offline" => format!(
            "{} <a href=\"/orders/{id}/form.pdf\" id=\"print-form\">{}</a>",
            esc(l.t("Mail the signed and stamped form with the papers; the review starts when they arrive.")),
            esc(l.t("Print the application form"))
        ),
        "approved" if flow.ends_with("-new") || flow == "reissue" => l
            .t("Done. The approved certificate waits in the app: log in with the agent's phone, check your identity and set the certificate PIN.")
            .to_string(),
        "rejected" | "cancelled" => format!("{}: {}", l.t("Reason"), esc(view["reason"].as_str().unwrap_or_default())),
        _ => String::new(),
    };
    let serial = view["serial"]
        .as_str()
        .map(|s| format!("<p>{}: <span id=\"serial\">{}</span></p>", l.t("Certificate serial number"), esc(s)))
        .unwrap_or_default();
    format!("<section class=\"status\"><p>{text}</p>{serial}</section>")
}

/// The form of a step, and a refresh interval when the page waits for something.
fn step_form(ctx: &Ctx, view: &Value, channel: &Value, step: &str, s: &FormState) -> (String, Option<u32>) {
    let l = ctx.lang;
    let id = view["id"].as_str().unwrap_or_default();
    let flow = view["flow"].as_str().unwrap_or_default();
    let action = format!("/orders/{id}/steps/{step}");
    let summary = &view["summary"];
    let form_id = format!("step-{step}");
    let next = l.t("Next");
    let opts = |list: &Value| -> Vec<(String, String)> {
        list.as_array()
            .map(|a| {
                a.iter().filter_map(|m| m.as_str()).map(|m| (m.to_string(), l.t(method_key(m)).to_string())).collect()
            })
            .unwrap_or_default()
    };
    let method = summary["verification"].as_str().unwrap_or_default();
    let extra = |prefix: &str| -> String {
        match method {
            "bank-card" => input(s, l.t("Bank card number"), &format!("{prefix}card"), "text", true),
            "bank-account" => [
                input(s, l.t("Account name"), "bank.account_name", "text", true),
                input(s, l.t("Account number"), "bank.account_number", "text", true),
                input(s, l.t("Bank"), "bank.bank", "text", true),
            ]
            .concat(),
            _ => String::new(),
        }
    };
    let html = match step {
        "certificate" => {
            let code_form = form(
                ctx,
                &format!("/orders/{id}/code/certificate"),
                "code-certificate",
                &input(s, l.t("Certificate serial number"), "serial", "text", true),
                l.t("Send code"),
            );
            let mut inner = input(s, l.t("Certificate serial number"), "serial", "text", true)
                + &input(s, l.t("SMS code"), "code", "text", true);
            if flow == "revocation" {
                let reasons = ["cessationOfOperation", "keyCompromise", "affiliationChanged", "superseded"]
                    .map(|r| (r.to_string(), r.to_string()));
                inner.push_str(&radios(s, l.t("Revocation reason"), "reason", &reasons));
            }
            code_form + &form(ctx, &action, &form_id, &inner, next)
        }
        "verification" => {
            let organisation = flow == "org-new" || summary["certificate"]["profile"] == "org";
            let list = if organisation { &channel["methods"]["organisation"] } else { &channel["methods"]["personal"] };
            form(ctx, &action, &form_id, &radios(s, l.t("Verification method"), "method", &opts(list)), next)
        }
        "company" => {
            let inner = [
                input(s, l.t("Company name"), "name", "text", true),
                input(s, l.t("Unified social credit code"), "credit_code", "text", true),
                format!("<h2>{}</h2>", esc(l.t("Legal representative"))),
                input(s, l.t("Name"), "legal_rep.name", "text", true),
                input(s, l.t("ID number"), "legal_rep.id_number", "text", true),
                input(s, l.t("Mobile phone"), "legal_rep.phone", "tel", true),
                extra("legal_rep."),
            ]
            .concat();
            form(ctx, &action, &form_id, &inner, next)
        }
        "person" => {
            let inner = [
                input(s, l.t("Name"), "name", "text", true),
                input(s, l.t("ID number"), "id_number", "text", true),
                input(s, l.t("Mobile phone"), "phone", "tel", true),
                input(s, l.t("E-mail"), "email", "email", true),
                extra(""),
            ]
            .concat();
            form(ctx, &action, &form_id, &inner, next)
        }
        "subject-check" | "agent-check" => return check_form(ctx, view, &action, &form_id, s),
        "agent" => {
            let mut inner = String::new();
            if flow == "org-new" {
                inner.push_str(&checkbox(s, l.t("The legal representative applies in person"), "legal_rep_in_person"));
            }
            inner.push_str(
                &[
                    input(s, l.t("Name"), "name", "text", false),
                    input(s, l.t("ID number"), "id_number", "text", false),
                    input(s, l.t("Mobile phone"), "phone", "tel", false),
                    input(s, l.t("E-mail"), "email", "email", true),
                    radios(s, l.t("Agent's verification"), "method", &opts(&channel["methods"]["agent"])),
                    input(s, l.t("Bank card number"), "card", "text", false),
                ]
                .concat(),
            );
            form(ctx, &action, &form_id, &inner, next)
        }
        "product" => {
            let products: Vec<(String, String)> = channel["products"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|p| p["flows"].as_array().is_some_and(|f| f.iter().any(|x| x == flow)))
                        .map(|p| {
                            (
                                p["id"].as_str().unwrap_or_default().to_string(),
                                format!(
                                    "{} {}",
                                    p["name"].as_str().unwrap_or_default(),
                                    yuan(p["price_fen"].as_i64().unwrap_or(0))
                                ),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let inner = [
                radios(s, l.t("Product"), "product", &products),
                checkbox(s, l.t("I want an e-invoice (title: the organisation or person)"), "invoice"),
                input(s, l.t("Invoice e-mail"), "invoice_email", "email", false),
            ]
            .concat();
            form(ctx, &action, &form_id, &inner, next)
        }
        "materials" => materials_form(ctx, view, s),
        "signature" => {
            let terms = format!(
                "<h2>{}</h2><div class=\"terms\" id=\"terms\">{}</div>",
                esc(l.t("Terms")),
                esc(channel["terms"].as_str().unwrap_or_default())
            );
            let code_form = form(ctx, &format!("/orders/{id}/code/signature"), "code-signature", "", l.t("Send code"));
            let inner = input(s, l.t("SMS code"), "code", "text", true)
                + &checkbox(s, l.t("I have read and accept the terms"), "accept_terms");
            terms + &code_form + &form(ctx, &action, &form_id, &inner, l.t("Sign the application"))
        }
        "payment" => return payment_form(ctx, view, &action, &form_id, s),
        _ => String::new(),
    };
    (html, None)
}

fn method_key(m: &str) -> &'static str {
    ["bank-account", "phone", "bank-card", "face-sms", "face-qr", "wechat", "alipay"]
        .into_iter()
        .find(|k| *k == m)
        .unwrap_or("phone")
}

fn qr_img(text: &str, id: &str) -> String {
    match crate::signing::qr::render_png(text, 6) {
        Ok(png) => format!(
            "<img class=\"qr\" id=\"{id}\" alt=\"QR\" data-url=\"{}\" src=\"data:image/png;base64,{}\">",
            esc(text),
            base64::engine::general_purpose::STANDARD.encode(png)
        ),
        Err(_) => format!("<a href=\"{0}\" id=\"{id}\">{0}</a>", esc(text)),
    }
}

fn check_form(ctx: &Ctx, view: &Value, action: &str, form_id: &str, s: &FormState) -> (String, Option<u32>) {
    let l = ctx.lang;
    let pending = &view["pending_check"];
    if pending["method"] == "bank-account" {
        let inner = input(s, l.t("Remittance code from the bank statement"), "code", "text", true);
        return (form(ctx, action, form_id, &inner, l.t("Next")), None);
    }
    let url = pending["url"].as_str().unwrap_or_default();
    let shown = if pending["method"] == "face-qr" {
        format!(
            "<p>{}</p>{}",
            esc(l.t("Scan this code with the phone to take the face check.")),
            qr_img(url, "face-qr")
        )
    } else {
        format!(
            "<p id=\"face-sms\">{}</p>",
            esc(l.t("A link was sent by SMS; finish the face check on the phone, then continue."))
        )
    };
    let id = view["id"].as_str().unwrap_or_default();
    let poll = format!("<p><a href=\"/orders/{id}?poll=1\" id=\"poll\">{}</a></p>", esc(l.t("I have finished")));
    (shown + &form(ctx, action, form_id, "", l.t("I have finished")) + &poll, Some(3))
}

fn materials_form(ctx: &Ctx, view: &Value, s: &FormState) -> String {
    let l = ctx.lang;
    let id = view["id"].as_str().unwrap_or_default();
    let uploaded: Vec<&str> =
        view["materials"].as_array().map(|a| a.iter().filter_map(|m| m["kind"].as_str()).collect()).unwrap_or_default();
    let mut out = String::from("<ul class=\"materials\">");
    for kind in view["materials_required"].as_array().into_iter().flatten().filter_map(|k| k.as_str()) {
        let name = material_name(l, kind);
        if uploaded.contains(&kind) {
            out.push_str(&format!(
                "<li class=\"done\" data-kind=\"{kind}\">{} ✓ {}</li>",
                esc(name),
                esc(l.t("Uploaded"))
            ));
            continue;
        }
        let err = s
            .errors
            .get(&format!("materials.{kind}"))
            .map(|e| format!("<span class=\"error\">{}</span>", esc(e)))
            .unwrap_or_default();
        out.push_str(&format!(
            "<li data-kind=\"{kind}\"><form method=\"post\" enctype=\"multipart/form-data\" action=\"/orders/{id}/materials\" id=\"upload-{kind}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"kind\" value=\"{kind}\">\
<label>{name}<input type=\"file\" name=\"file\" accept=\"image/png,image/jpeg,application/pdf\" required></label>{err}\
<button type=\"submit\">{up}</button></form></li>",
            csrf = esc(&ctx.csrf),
            name = esc(name),
            up = esc(l.t("Upload")),
        ));
    }
    out.push_str("</ul>");
    let needs_letter =
        view["materials_required"].as_array().is_some_and(|a| a.iter().any(|k| k == "authorization-letter"));
    if needs_letter && view["flow"] == "org-new" {
        out.push_str(&format!(
            "<section id=\"online-authorization\"><h2>{}</h2>",
            esc(l.t("Or let the legal representative authorise online"))
        ));
        out.push_str(&form(
            ctx,
            &format!("/orders/{id}/code/authorization"),
            "code-authorization",
            "",
            l.t("Send code"),
        ));
        out.push_str(&form(
            ctx,
            &format!("/orders/{id}/authorize"),
            "authorize",
            &input(s, l.t("Code sent to the legal representative"), "code", "text", true),
            l.t("Authorise"),
        ));
        out.push_str("</section>");
    }
    out + &form(ctx, &format!("/orders/{id}/steps/materials"), "step-materials", "", l.t("Materials are complete"))
}

fn payment_form(ctx: &Ctx, view: &Value, action: &str, form_id: &str, s: &FormState) -> (String, Option<u32>) {
    let l = ctx.lang;
    if let Some(url) = view["payment"]["qr_url"].as_str() {
        let text = format!(
            "<p>{}</p>{}",
            esc(l.t("Scan to pay. This page moves on by itself when the payment arrives.")),
            qr_img(url, "pay-qr")
        );
        return (text, Some(2));
    }
    let methods = [("wechat", "wechat"), ("alipay", "alipay")].map(|(v, k)| (v.to_string(), l.t(k).to_string()));
    (form(ctx, action, form_id, &radios(s, l.t("Pay with"), "method", &methods), l.t("Show the payment code")), None)
}

pub(in crate::web) async fn step(
    State(web): State<Web>,
    ctx: Ctx,
    Path((id, step)): Path<(String, String)>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = super::forged(&ctx, &values) {
        return refused;
    }
    let Some(token) = token_for(&ctx, &id) else { return trouble(&ctx, StatusCode::NOT_FOUND, "404") };
    let mut body = to_json(&values, checkboxes(&step));
    if step == "agent" && body["legal_rep_in_person"] == true {
        if let Some(map) = body.as_object_mut() {
            for k in ["name", "id_number", "phone"] {
                map.remove(k);
            }
        }
    }
    let path = format!("/v1/ra/orders/{id}/steps/{step}");
    let answer = match web.daemon.ra(Method::POST, &path, Some(&token), Some(&body)).await {
        Ok(a) => a,
        Err(e) => return trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    if answer.ok() {
        return redirect(&format!("/orders/{id}"), &[]);
    }
    let state = refusal(ctx.lang, values, &answer, &["person.", "agent."]);
    let (view, _) = match load(&web, &ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let status = StatusCode::from_u16(answer.status.as_u16()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    let mut response = render(&web, &ctx, &view, state, status).await;
    // The daemon's rate limit, passed on to the browser with the page that explains it.
    if let Some(seconds) = answer.retry_after.filter(|_| status == StatusCode::TOO_MANY_REQUESTS) {
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

fn back(
    id: &str,
    answer: Result<crate::web::client::Answer, crate::web::client::Unreachable>,
    lang: Lang,
    ok: &str,
    serial: Option<&str>,
) -> Response {
    let serial = serial.map(|s| format!("&serial={}", urlencode(s))).unwrap_or_default();
    match answer {
        Ok(a) if a.ok() => redirect(&format!("/orders/{id}?m={ok}{serial}"), &[]),
        Ok(a) => redirect(&format!("/orders/{id}?e={}{serial}", urlencode(&message(lang, &a))), &[]),
        Err(e) => redirect(&format!("/orders/{id}?e={}", urlencode(&e.to_string())), &[]),
    }
}

pub(in crate::web) async fn code(
    State(web): State<Web>,
    ctx: Ctx,
    Path((id, purpose)): Path<(String, String)>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = super::forged(&ctx, &values) {
        return refused;
    }
    let Some(token) = token_for(&ctx, &id) else { return trouble(&ctx, StatusCode::NOT_FOUND, "404") };
    let serial = values.get("serial").map(|s| s.trim().to_string());
    let body = serde_json::json!({ "serial": serial });
    let body = if serial.is_some() { body } else { serde_json::json!({}) };
    let answer =
        web.daemon.ra(Method::POST, &format!("/v1/ra/orders/{id}/codes/{purpose}"), Some(&token), Some(&body)).await;
    back(&id, answer, ctx.lang, "sent", serial.as_deref())
}

pub(in crate::web) async fn upload(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Response {
    let (mut csrf, mut kind, mut bytes) = (String::new(), String::new(), Vec::new());
    while let Ok(Some(field)) = multipart.next_field().await {
        match field.name().unwrap_or_default() {
            "csrf" => csrf = field.text().await.unwrap_or_default(),
            "kind" => kind = field.text().await.unwrap_or_default(),
            "file" => bytes = field.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            _ => {}
        }
    }
    let fields = HashMap::from([("csrf".to_string(), csrf)]);
    if let Some(refused) = super::forged(&ctx, &fields) {
        return refused;
    }
    let Some(token) = token_for(&ctx, &id) else { return trouble(&ctx, StatusCode::NOT_FOUND, "404") };
    let answer = web.daemon.upload(&id, &token, &kind, bytes).await;
    back(&id, answer, ctx.lang, "uploaded", None)
}

/// A form posting one RA action on the order; back to the order page with `flash` or the
/// refusal.
async fn action(
    web: &Web,
    ctx: &Ctx,
    id: &str,
    values: &HashMap<String, String>,
    path: &str,
    body: Value,
    flash: &str,
) -> Response {
    if let Some(refused) = super::forged(ctx, values) {
        return refused;
    }
    let Some(token) = token_for(ctx, id) else { return trouble(ctx, StatusCode::NOT_FOUND, "404") };
    let answer = web.daemon.ra(Method::POST, &format!("/v1/ra/orders/{id}/{path}"), Some(&token), Some(&body)).await;
    back(id, answer, ctx.lang, flash, None)
}

pub(in crate::web) async fn authorize(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    let code = v.get("code").cloned().unwrap_or_default();
    action(&web, &ctx, &id, &v, "authorization", serde_json::json!({ "code": code }), "").await
}

pub(in crate::web) async fn cancel(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    action(&web, &ctx, &id, &v, "cancel", serde_json::json!({}), "").await
}

pub(in crate::web) async fn offline(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    action(&web, &ctx, &id, &v, "offline", serde_json::json!({}), "").await
}

pub(in crate::web) async fn reissue_invoice(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    action(&web, &ctx, &id, &v, "invoice/reissue", serde_json::json!({}), "sent").await
}

async fn pdf(web: &Web, ctx: &Ctx, id: &str, what: &str) -> Response {
    let Some(token) = token_for(ctx, id) else { return trouble(ctx, StatusCode::NOT_FOUND, "404") };
    match web.daemon.download(&format!("/v1/ra/orders/{id}/{what}"), &token).await {
        Ok((status, bytes)) if status.is_success() => {
            let disposition = format!("inline; filename=\"{id}-{what}.pdf\"");
            ([(header::CONTENT_TYPE, "application/pdf".to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes)
                .into_response()
        }
        Ok(_) => trouble(ctx, StatusCode::NOT_FOUND, "404"),
        Err(e) => trouble(ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

pub(in crate::web) async fn form_pdf(State(web): State<Web>, ctx: Ctx, Path(id): Path<String>) -> Response {
    pdf(&web, &ctx, &id, "form").await
}

pub(in crate::web) async fn invoice_pdf(State(web): State<Web>, ctx: Ctx, Path(id): Path<String>) -> Response {
    pdf(&web, &ctx, &id, "invoice").await
}
