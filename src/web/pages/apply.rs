//! The page before a flow starts (what to have ready, as the handbook lists it) and opening
//! the order.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use reqwest::Method;

use maud::html;

use super::{channel, flow_title, redirect, respond, trouble, FLOWS};
use crate::web::forms::message;
use crate::web::html::{form, page, yuan};
use crate::web::i18n::Lang;
use crate::web::security::Ctx;
use crate::web::Web;

/// Material kinds as people call them.
pub(in crate::web) fn material_name(lang: Lang, kind: &str) -> &'static str {
    let (zh, en) = match kind {
        "business-licence" => ("营业执照（副本）", "Business licence"),
        "id-front" => ("身份证人像面", "ID card, photo side"),
        "id-back" => ("身份证国徽面", "ID card, emblem side"),
        "authorization-letter" => ("授权书（加盖公章）", "Authorisation letter (stamped)"),
        "seal-image" => ("印章图片（PNG）", "Seal image (PNG)"),
        "invoice" => ("电子发票", "E-invoice"),
        _ => ("其他材料", "Other"),
    };
    match lang {
        Lang::Zh => zh,
        Lang::En => en,
    }
}

/// Material kinds as people call them, the copies of an identity document named after the
/// document (`document`: its type as the daemon writes it, `passport`): a passport's photo
/// page, a permit's front and back (handbook C6).
pub(in crate::web) fn material_name_for(lang: Lang, kind: &str, document: &str) -> &'static str {
    let (zh, en) = match (kind, document) {
        ("id-front", "passport") => ("护照个人资料页", "Passport photo page"),
        ("id-front", "hk-macao-permit" | "taiwan-permit") => ("通行证正面", "Travel permit, front"),
        ("id-back", "hk-macao-permit" | "taiwan-permit") => ("通行证背面", "Travel permit, back"),
        ("id-front", "foreign-permanent-resident") => ("永久居留身份证正面", "Permanent resident ID, front"),
        ("id-back", "foreign-permanent-resident") => ("永久居留身份证背面", "Permanent resident ID, back"),
        _ => return material_name(lang, kind),
    };
    match lang {
        Lang::Zh => zh,
        Lang::En => en,
    }
}

pub(in crate::web) async fn start(State(web): State<Web>, ctx: Ctx, Path(flow): Path<String>) -> Response {
    let l = ctx.lang;
    if !FLOWS.iter().any(|(f, _)| *f == flow) {
        return trouble(&ctx, StatusCode::NOT_FOUND, "404");
    }
    let channel = match channel(&web, &ctx).await {
        Ok(c) => c,
        Err(e) => return trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let mut kinds: Vec<String> = channel["flows"][&flow]["materials"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    kinds.dedup();
    let products: Vec<&serde_json::Value> = channel["products"]
        .as_array()
        .map(|a| {
            a.iter().filter(|p| p["flows"].as_array().is_some_and(|f| f.iter().any(|x| x == flow.as_str()))).collect()
        })
        .unwrap_or_default();
    let body = html! {
        h2 { (l.t("Before you start, have these ready")) }
        ul.materials #required-materials {
            @for k in &kinds { li data-kind=(k) { (material_name(l, k)) } }
            @if flow == "org-new" {
                li data-kind="authorization-letter" {
                    (l.t("Authorisation letter with the company stamp, when the agent is not the legal representative"))
                }
            }
            @if kinds.is_empty() && flow != "org-new" { li { "—" } }
        }
        h2 { (l.t("Product")) }
        ul {
            @for p in &products {
                li { (p["name"].as_str().unwrap_or_default()) " — " (yuan(p["price_fen"].as_i64().unwrap_or(0))) }
            }
        }
        @if super::services::is_service(&flow) {
            // A service on an existing certificate starts from the subject, not a serial.
            p.note { (l.t("First check who you are; then choose the certificate from your list.")) }
            form #start method="get" action=(ctx.url("/certificates")) {
                input type="hidden" name="flow" value=(flow);
                button type="submit" { (l.t("Start")) }
            }
        } @else {
            (form(&ctx, &format!("/apply/{flow}"), "start", html! {}, l.t("Start")))
        }
    };
    respond(StatusCode::OK, page(&ctx, l.t(flow_title(&flow)), body, None))
}

pub(in crate::web) async fn create(
    State(web): State<Web>,
    ctx: Ctx,
    Path(flow): Path<String>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = super::forged(&ctx, &values) {
        return refused;
    }
    let body = serde_json::json!({ "channel": ctx.site.channel, "flow": flow });
    let answer = match web.daemon.ra(Method::POST, "/v1/ra/orders", None, Some(&body)).await {
        Ok(a) => a,
        Err(e) => return trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    if !answer.ok() {
        return trouble(&ctx, StatusCode::UNPROCESSABLE_ENTITY, &message(ctx.lang, &answer));
    }
    let id = answer.body["order"]["id"].as_str().unwrap_or_default().to_string();
    let token = answer.body["token"].as_str().unwrap_or_default();
    redirect(&ctx.url(&format!("/orders/{id}")), &[ctx.set_cookie(&format!("cco_{id}"), token, 30 * 86400)])
}
