//! 商品信息确认: once everything is entered, a read-only page shows it all (masked as the
//! daemon masks it) with a way back to each earlier step; correcting one redoes that step on
//! the RA, which clears the steps after it. The subject of an order about a certificate
//! (renewal, seals, …) is shown read-only on every page of the order: no step changes it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::Value;

use super::order::{elsewhere, header, load};
use super::steps::{order_path, step_form};
use super::{channel, flow_title, redirect};
use crate::web::html::{page, step_key, yuan, FormState};
use crate::web::security::Ctx;
use crate::web::Web;

/// The steps where something is entered, in order: these can be corrected from the
/// confirmation page until the application is signed.
pub(super) const EDITABLE: [&str; 6] = ["certificate", "verification", "company", "person", "agent", "product"];

/// Whether the order page should offer the confirmation: everything is entered (the next step
/// is the uploads or the signature) and nothing is signed yet.
pub(super) fn due(view: &Value) -> bool {
    view["state"] == "open"
        && view["summary"]["signed"] != true
        && matches!(view["next_step"].as_str(), Some("materials" | "signature"))
}

/// `GET /orders/{id}/confirm`.
pub(in crate::web) async fn show(State(web): State<Web>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let (view, _) = match load(&web, &ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(moved) = elsewhere(&web, &ctx, &view, "/confirm") {
        return moved;
    }
    if !due(&view) {
        return redirect(&ctx.url(&order_path(&view)), &[]);
    }
    let l = ctx.lang;
    let body = html! {
        (header(&ctx, &view))
        p.note #confirm-note { (l.t("This page cannot be edited; go back to a step to correct it.")) }
        div #confirmation { @for step in entered(&view) { (section(&ctx, &view, step, true)) } }
        form #confirm method="get" action=(ctx.url(&order_path(&view))) {
            button type="submit" { (l.t("Next")) }
        }
    };
    let title =
        format!("{} · {}", l.t("Confirm the application"), l.t(flow_title(view["flow"].as_str().unwrap_or_default())));
    super::respond(StatusCode::OK, page(&ctx, &title, body, None))
}

/// The entered steps this order has done, in order.
pub(super) fn entered(view: &Value) -> Vec<&'static str> {
    let done: Vec<&str> = view["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["done"] == true)
        .filter_map(|s| s["name"].as_str())
        .collect();
    EDITABLE.into_iter().filter(|s| done.contains(s)).collect()
}

/// One step's data, read-only, with its way back while it may be corrected (`editable`); a
/// finished order's page shows it without one.
pub(super) fn section(ctx: &Ctx, view: &Value, step: &str, editable: bool) -> Markup {
    let l = ctx.lang;
    let s = &view["summary"];
    let rows: Vec<(&str, String)> = match step {
        "certificate" => vec![(l.t("Certificate serial number"), text(&s["certificate"]["serial"]))],
        "verification" => vec![(l.t("Verification method"), l.t(method(&s["verification"])).to_string())],
        "company" => {
            let c = &s["company"];
            vec![
                (l.t("Company name"), text(&c["name"])),
                (l.t("Unified social credit code"), text(&c["credit_code"])),
                (l.t("Legal representative"), text(&c["legal_rep"]["name"])),
                (l.t("ID number"), text(&c["legal_rep"]["id_number"])),
                (l.t("Mobile phone"), text(&c["legal_rep"]["phone"])),
            ]
        }
        "person" => person_rows(l, &s["person"]),
        "agent" if s["agent"]["legal_rep_in_person"] == true => {
            vec![(l.t("The legal representative applies in person"), l.t("Yes").to_string())]
        }
        "agent" => {
            let mut rows = person_rows(l, &s["agent"]["person"]);
            // None on an offline order: the papers stand for the agent's check.
            if s["agent"]["method"].is_string() {
                rows.push((l.t("Agent's verification"), l.t(method(&s["agent"]["method"])).to_string()));
            }
            rows
        }
        "product" => {
            let p = &s["product"];
            let invoice = if p["invoice"] == true { l.t("Yes") } else { l.t("No") };
            let price = p["price_fen"].as_i64().unwrap_or(0);
            let mut rows = vec![(l.t("Product"), text(&p["name"])), (l.t("Amount"), yuan(price))];
            // G5: a free product has nothing to invoice.
            if price > 0 {
                rows.push((l.t("Invoice"), invoice.to_string()));
                rows.push((l.t("Invoice e-mail"), text(&p["invoice_email"])));
            }
            // B21: the title is the applicant's own name and cannot be changed; shown before
            // anything is issued.
            if p["invoice"] == true {
                rows.push((l.t("Invoice title"), invoice_title(view)));
            }
            if view["flow"] == "seal" {
                let which = match p["seal_change"].as_str() {
                    Some(id) => format!("{}{}", l.t("Change the seal: "), seal_name(view, id)),
                    None => l.t("A new seal").to_string(),
                };
                rows.push((l.t("Seal"), which));
                rows.push((l.t("Seal name"), text(&p["seal_name"])));
            }
            rows
        }
        _ => Vec::new(),
    };
    let edit = ctx.url(&format!("{}/edit/{step}", order_path(view)));
    html! {
        section.entered data-step=(step) {
            h2 { (l.t(step_key(step))) }
            dl { @for (key, value) in &rows { dt { (key) } dd { (value) } } }
            @if editable { a.back href=(edit) id={ "edit-" (step) } { (l.t("Change")) } }
        }
    }
}

fn person_rows(l: crate::web::i18n::Lang, p: &Value) -> Vec<(&'static str, String)> {
    vec![
        (l.t("Name"), text(&p["name"])),
        (l.t("ID number"), text(&p["id_number"])),
        (l.t("Mobile phone"), text(&p["phone"])),
        (l.t("E-mail"), text(&p["email"])),
    ]
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| "—".to_string(), str::to_string)
}

/// A verification method's text key.
fn method(v: &Value) -> &'static str {
    let m = v.as_str().unwrap_or_default();
    super::steps::METHODS.into_iter().find(|k| *k == m).unwrap_or("phone")
}

/// `GET /orders/{id}/edit/{step}`: an entered step's form again, filled with what the order
/// holds (masked identifiers are typed again).
pub(in crate::web) async fn edit(
    State(web): State<Web>,
    ctx: Ctx,
    Path((id, step)): Path<(String, String)>,
) -> Response {
    let (view, _) = match load(&web, &ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !entered(&view).contains(&step.as_str()) || view["state"] != "open" || view["summary"]["signed"] == true {
        return redirect(&ctx.url(&order_path(&view)), &[]);
    }
    let state = FormState { values: filled(&view["summary"], &step), ..FormState::default() };
    correcting(&web, &ctx, &view, &step, state, StatusCode::OK).await
}

/// The page correcting `step` (also after the RA refused the correction).
pub(super) async fn correcting(
    web: &Web,
    ctx: &Ctx,
    view: &Value,
    step: &str,
    state: FormState,
    status: StatusCode,
) -> Response {
    let l = ctx.lang;
    let channel = channel(web, ctx).await.unwrap_or(Value::Null);
    let (form, _) = step_form(ctx, view, &channel, step, &state);
    let body = html! {
        (header(ctx, view))
        (state.banner())
        p.note #correcting data-step=(step) { (l.t("Correct this step; the steps after it are taken again.")) }
        (form)
        p { a #back-to-confirm href=(ctx.url(&format!("{}/confirm", order_path(view)))) { (l.t("Back to the confirmation")) } }
    };
    let title = format!("{} · {}", l.t("Change"), l.t(step_key(step)));
    (status, axum::response::Html(page(ctx, &title, body, None))).into_response()
}

/// A step's form values from the order's summary: what is shown in full (names, codes,
/// choices); masked identifiers stay empty.
fn filled(summary: &Value, step: &str) -> std::collections::HashMap<String, String> {
    let pick: Vec<(&str, &Value)> = match step {
        "certificate" => vec![("serial", &summary["certificate"]["serial"])],
        "verification" => vec![("method", &summary["verification"])],
        "company" => vec![
            ("name", &summary["company"]["name"]),
            ("credit_code", &summary["company"]["credit_code"]),
            ("legal_rep.name", &summary["company"]["legal_rep"]["name"]),
        ],
        "person" => vec![
            ("name", &summary["person"]["name"]),
            ("id_type", &summary["person"]["id_type"]),
            ("email", &summary["person"]["email"]),
        ],
        "agent" => vec![
            ("name", &summary["agent"]["person"]["name"]),
            ("email", &summary["agent"]["person"]["email"]),
            ("method", &summary["agent"]["method"]),
        ],
        "product" => vec![
            ("product", &summary["product"]["id"]),
            ("invoice_email", &summary["product"]["invoice_email"]),
            ("seal_change", &summary["product"]["seal_change"]),
            ("seal_name", &summary["product"]["seal_name"]),
        ],
        _ => Vec::new(),
    };
    let mut values: std::collections::HashMap<String, String> =
        pick.into_iter().filter_map(|(k, v)| v.as_str().map(|v| (k.to_string(), v.to_string()))).collect();
    if step == "agent" && summary["agent"]["legal_rep_in_person"] == true {
        values.insert("legal_rep_in_person".into(), "on".into());
    }
    if step == "product" && summary["product"]["invoice"] == true {
        values.insert("invoice".into(), "on".into());
    }
    values
}

/// The subject of an order about an existing certificate, read-only.
pub(super) fn subject(ctx: &Ctx, view: &Value) -> Markup {
    let l = ctx.lang;
    let certificate = &view["summary"]["certificate"];
    let Some(attributes) = certificate["subject"].as_array() else { return html! {} };
    html! {
        section.subject #subject {
            // The certificate as it stands: a change order's new data is in its own section,
            // so this heading must not read as the result.
            h2 { (l.t("The certificate this order is about")) }
            dl {
                @for pair in attributes {
                    dt { (pair[0].as_str().unwrap_or_default()) } dd { (pair[1].as_str().unwrap_or_default()) }
                }
                dt { (l.t("Certificate serial number")) } dd { (text(&certificate["serial"])) }
            }
        }
    }
}

/// The name of one of a seal order's seals, by id (the id itself when it is no longer listed).
fn seal_name(view: &Value, id: &str) -> String {
    let mut seals = view["seals"].as_array().into_iter().flatten();
    seals.find(|s| s["id"] == id).and_then(|s| s["name"].as_str()).unwrap_or(id).to_string()
}

/// The invoice title as the invoice will have it: the organisation's name, the person's, or the
/// certificate subject's O, else CN.
fn invoice_title(view: &Value) -> String {
    let s = &view["summary"];
    let subject = |key: &str| {
        let pair = s["certificate"]["subject"].as_array().into_iter().flatten().find(|pair| pair[0] == key);
        pair.map_or(&Value::Null, |pair| &pair[1])
    };
    [&s["company"]["name"], &s["person"]["name"], subject("O"), subject("CN")]
        .into_iter()
        .find_map(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
