//! Certificate services start from the subject (handbook §4.3; issue 17): renewal, change,
//! revocation, re-issue, PIN unlock and seal orders begin here, not with a serial. The page
//! asks for the credit code or ID number and the identity check of order management (a code
//! to an agent on file or the legal representative, or the legal representative's bank card),
//! then lists that subject's certificates with one button per service the daemon allows this
//! session. A button opens the order and brings the chosen certificate to its first step,
//! where the certificate's consenter confirms with a fresh code: the query session only
//! finds (`ra::services`), so a captured `ccq` cookie renews or revokes nothing.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use reqwest::Method;
use serde_json::Value;

use super::manage::{challenge, fallback, flash_to, identity_forms, open_query, send_query_code, Flash};
use super::{flow_title, redirect, respond, trouble, urlencode};
use crate::web::flash::Flashed;
use crate::web::forms::message;
use crate::web::html::{form, page};
use crate::web::i18n::Lang;
use crate::web::security::Ctx;
use crate::web::Web;

/// The flows that act on an existing certificate, in the order their buttons appear.
pub(in crate::web) const SERVICES: [&str; 6] = ["renewal", "change", "revocation", "reissue", "unlock", "seal"];

/// Whether `flow` starts from an existing certificate (so from this page).
pub(super) fn is_service(flow: &str) -> bool {
    SERVICES.contains(&flow)
}

/// The service asked for in a URL, if it is one (anything else is "all services").
fn service(flow: Option<&str>) -> Option<&'static str> {
    flow.and_then(|f| SERVICES.into_iter().find(|s| *s == f))
}

/// Certificate statuses as the daemon lists them, as keys of the page texts.
pub(in crate::web) const STATUSES: [&str; 3] = ["issued", "expired", "revoked"];

/// This page's own path for `flow` (the service's name is all its URL carries).
fn back(flow: Option<&str>) -> String {
    match service(flow) {
        Some(f) => format!("/certificates?flow={f}"),
        None => "/certificates".to_string(),
    }
}

/// `GET /certificates?flow=…`: the identity check, or (with a live session) the subject's
/// certificates.
pub(in crate::web) async fn show(State(web): State<Web>, ctx: Ctx, Flashed(flash): Flashed<Flash>) -> Response {
    let l = ctx.lang;
    let flow = service(flash.flow.as_deref());
    let mut listed = None;
    if let Some(token) = ctx.cookie("ccq") {
        match web.daemon.queried_certificates(token).await {
            Ok(a) if a.ok() => listed = Some(a.body),
            Ok(_) => {}
            Err(e) => return trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        }
    }
    let challenge = challenge(&web).await;
    let challenge = challenge.as_ref();
    let body = match listed {
        Some(found) => html! {
            (flash_banner(&flash))
            (certificates(&ctx, &found, flow))
            p.note { (l.t("Not the certificates you are looking for? Check another identity below.")) }
            details #check-again {
                summary { (l.t("Check another identity")) }
                (check(&ctx, &Flash { flow: flash.flow.clone(), ..Flash::default() }, flow, challenge))
            }
        },
        None => html! {
            p.note #identity-note {
                (l.t("Enter the credit code (organisation) or ID number (person), then confirm with the code sent to a phone on file. Your certificates are listed next; no serial number is needed."))
            }
            (check(&ctx, &flash, flow, challenge))
        },
    };
    let title = flow.map_or(l.t("Certificate services"), |f| l.t(flow_title(f)));
    respond(StatusCode::OK, page(&ctx, title, body, None))
}

/// A refusal carried by the flash cookie after a button (the list is shown again with it).
fn flash_banner(flash: &Flash) -> Markup {
    html! { @if let Some(e) = &flash.e { p.alert role="alert" { (e) } } }
}

/// The identity check forms of this page.
fn check(ctx: &Ctx, flash: &Flash, flow: Option<&str>, challenge: Option<&Value>) -> Markup {
    let action = match flow {
        Some(f) => format!("/certificates/query/{f}"),
        None => "/certificates/query/all".to_string(),
    };
    identity_forms(ctx, flash, &action, ctx.lang.t("Show my certificates"), challenge)
}

/// The subject's certificates, one row each, with a button per service this session may start
/// (only `flow`'s when the page was opened for one service).
fn certificates(ctx: &Ctx, found: &Value, flow: Option<&str>) -> Markup {
    let l = ctx.lang;
    let items = found["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return html! { p #no-certificates { (l.t("No certificate of this subject can be managed with this check.")) } };
    }
    html! {
        h2 { (l.t("Your certificates")) }
        table.orders #certificate-list {
            thead { tr {
                th { (l.t("Subject")) } th { (l.t("Certificate serial number")) } th { (l.t("Valid until")) }
                th { (l.t("State")) } th {}
            } }
            tbody { @for item in &items { (row(ctx, item, flow)) } }
        }
    }
}

fn row(ctx: &Ctx, item: &Value, flow: Option<&str>) -> Markup {
    let l = ctx.lang;
    let serial = item["serial"].as_str().unwrap_or_default();
    let status = item["status"].as_str().unwrap_or_default();
    let offered: Vec<&'static str> = item["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str())
        .filter_map(|s| SERVICES.into_iter().find(|k| *k == s))
        .filter(|s| flow.is_none_or(|f| f == *s))
        .collect();
    let kind = if item["profile"] == "org" { l.t("Organisation certificate") } else { l.t("Personal certificate") };
    html! {
        tr data-serial=(serial) data-status=(status) {
            td { (subject_name(item["subject"].as_str().unwrap_or_default())) br; small { (kind) } }
            td { code { (serial) } }
            td { (date(item["not_after"].as_i64().unwrap_or(0))) }
            td { (l.t(status_key(status))) }
            td.services {
                @for service in &offered {
                    (form(ctx, &format!("/certificates/{}/{service}", urlencode(serial)),
                        &format!("service-{service}-{serial}"), html! {}, l.t(flow_title(service))))
                }
                @if offered.is_empty() { (not_offered(l, item, flow)) }
            }
        }
    }
}

/// Why a certificate has no button for the service asked for.
fn not_offered(l: Lang, item: &Value, flow: Option<&str>) -> Markup {
    let why = match (flow, item["status"].as_str()) {
        (_, Some("revoked")) => l.t("Revoked certificates take no service."),
        (Some("renewal"), Some("issued")) if item["renewable_now"] != true => {
            return html! { span.note { (l.t("Renewal opens on")) " " (date(item["renewal_opens_at"].as_i64().unwrap_or(0))) } }
        }
        _ => l.t("Not available for this certificate with this check."),
    };
    html! { span.note { (why) } }
}

/// A status's text key.
fn status_key(status: &str) -> &'static str {
    STATUSES.into_iter().find(|s| *s == status).unwrap_or("issued")
}

/// The name in an RFC 4514 subject (the organisation, else the common name), for the list;
/// the whole subject when neither is there.
fn subject_name(subject: &str) -> String {
    let attribute = |key: &str| {
        subject.split(',').map(str::trim).find_map(|part| part.strip_prefix(key)).map(|v| v.replace('\\', ""))
    };
    attribute("O=").or_else(|| attribute("CN=")).unwrap_or_else(|| subject.to_string())
}

/// A date (UTC) from unix seconds.
fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map(|t| t.date().to_string()).unwrap_or_default()
}

/// `POST /certificates/query/{flow}/code`.
pub(in crate::web) async fn query_code(
    State(web): State<Web>,
    ctx: Ctx,
    Path(flow): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    send_query_code(&web, &ctx, &v, &back(Some(flow.as_str()))).await
}

/// `POST /certificates/query/{flow}`: the session, then the list.
pub(in crate::web) async fn query(
    State(web): State<Web>,
    ctx: Ctx,
    Path(flow): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    let page = back(Some(flow.as_str()));
    open_query(&web, &ctx, &v, &page, &page).await
}

/// `POST /certificates/query/{flow}/fallback`: an identity fallback, then the list.
pub(in crate::web) async fn query_fallback(
    State(web): State<Web>,
    ctx: Ctx,
    Path(flow): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    let page = back(Some(flow.as_str()));
    fallback(&web, &ctx, &v, &page, &page).await
}

/// `POST /certificates/{serial}/{flow}`: opens the order for this service and goes to its
/// certificate step with the chosen certificate (the consent code is asked for there).
pub(in crate::web) async fn start(
    State(web): State<Web>,
    ctx: Ctx,
    Path((serial, flow)): Path<(String, String)>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = super::forged(&ctx, &v) {
        return refused;
    }
    let Some(flow) = service(Some(flow.as_str())) else { return trouble(&ctx, StatusCode::NOT_FOUND, "404") };
    if ctx.cookie("ccq").is_none() {
        return redirect(&ctx.url(&back(Some(flow))), &[]);
    }
    let body = serde_json::json!({ "channel": ctx.site.channel, "flow": flow });
    let answer = match web.daemon.ra(Method::POST, "/v1/ra/orders", None, Some(&body)).await {
        Ok(a) => a,
        Err(e) => return trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    if !answer.ok() {
        return flash_to(&ctx, &back(Some(flow)), &[("e", message(ctx.lang, &answer).as_str())]);
    }
    let id = answer.body["order"]["id"].as_str().unwrap_or_default();
    let token = answer.body["token"].as_str().unwrap_or_default();
    // The chosen certificate goes to the order's page in the flash cookie, not the URL.
    let to = ctx.url(&format!("/orders/{}", urlencode(id)));
    let cookies = [
        ctx.set_cookie(&format!("cco_{id}"), token, 30 * 86400),
        crate::web::flash::cookie(&ctx, &[("serial", &serial)]),
    ];
    redirect(&to, &cookies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_the_organisation_or_the_person() {
        assert_eq!(
            subject_name("C=CN,O=福建示例科技有限公司,CN=福建示例科技有限公司,serialNumber=X"),
            "福建示例科技有限公司"
        );
        assert_eq!(subject_name("C=CN,CN=王五,serialNumber=X"), "王五");
        assert_eq!(subject_name("C=CN"), "C=CN");
    }

    #[test]
    fn only_certificate_services_start_here() {
        assert_eq!(service(Some("renewal")), Some("renewal"));
        assert_eq!(service(Some("org-new")), None);
        assert_eq!(service(Some("../orders")), None);
        assert_eq!(back(Some("x&e=<b>")), "/certificates");
        assert_eq!(back(Some("renewal")), "/certificates?flow=renewal");
        assert!(is_service("unlock") && !is_service("personal-new"));
    }
}
