//! Seal authorisation: the organisation's certificate administrator logs in with the agent's
//! phone and an SMS code (the app's own login, on the api listener), adds and removes staff
//! (人员管理), appoints seal administrators and hands the administrator role over; the
//! administrator and seal administrators let named members use each seal (印章授权). Every
//! change needs a fresh `admin` code; the daemon checks the role of each change again.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use reqwest::Method;
use serde_json::json;

use maud::{html, Markup};

use super::{redirect, respond, trouble, urlencode};
use crate::web::flash::Flashed;
use crate::web::forms::message;
use crate::web::html::{form, input, page, radios, FormState};
use crate::web::security::Ctx;
use crate::web::Web;

#[derive(Debug, Default, serde::Deserialize)]
pub(in crate::web) struct Flash {
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    m: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

pub(in crate::web) async fn show(State(web): State<Web>, ctx: Ctx, Flashed(flash): Flashed<Flash>) -> Response {
    let l = ctx.lang;
    let mut s = FormState { message: flash.e.or(flash.m), ..FormState::default() };
    s.values.insert("phone".into(), flash.phone.unwrap_or_default());
    let orgs = match ctx.cookie("ccm") {
        Some(bearer) => {
            web.daemon.app(Method::GET, "/v1/mobile/orgs", Some(bearer), None).await.ok().filter(|a| a.ok())
        }
        None => None,
    };
    let body = match orgs {
        None => {
            let phone = input(&s, l.t("Mobile phone"), "phone", "tel", true);
            let with_code = html! { (phone) (input(&s, l.t("SMS code"), "code", "text", true)) };
            html! {
                (s.banner())
                h2 { (l.t("Log in with the agent's phone")) }
                (form(&ctx, "/seals/login/code", "seal-login-code", phone.clone(), l.t("Send code")))
                (form(&ctx, "/seals/login", "seal-login", with_code, l.t("Log in")))
                (accept_form(&ctx, &FormState::default()))
            }
        }
        Some(orgs) => html! {
            (s.banner())
            @for org in orgs.body["items"].as_array().into_iter().flatten() { (organisation(&ctx, &s, org)) }
        },
    };
    respond(StatusCode::OK, page(&ctx, l.t("Seal authorisation"), body, None))
}

/// One organisation the administrator belongs to: its seals with who may use each, members
/// and the forms to change them. The forms are shown to the roles the daemon lets make the
/// change (it checks the role again): seal use to the administrator and seal administrators,
/// members and the hand-over to the administrator.
fn organisation(ctx: &Ctx, s: &FormState, org: &serde_json::Value) -> Markup {
    let l = ctx.lang;
    let cc = org["credit_code"].as_str().unwrap_or_default();
    let role = org["role"].as_str().unwrap_or_default();
    let grants = role == "admin" || role == "seal-admin";
    let seals: Vec<&serde_json::Value> = org["seals"].as_array().into_iter().flatten().collect();
    let roles = ["staff", "seal-admin"].map(|r| (r.to_string(), l.t(role_key(r)).to_string()));
    html! {
        section.org data-org=(cc) {
            h2 { (cc) }
            p { (l.t("Role")) ": " (l.t(role_key(role))) }
            @if grants {
                // The administrator's code is for this organisation's changes only.
                (form(ctx, "/seals/code", &format!("seal-admin-code-{cc}"), html! {
                    input type="hidden" name="credit_code" value=(cc);
                }, l.t("Send code")))
            }
            h3 { (l.t("Seals")) }
            @if seals.is_empty() { p { "—" } }
            ul.seals {
                @for seal in &seals { (seal_item(ctx, s, cc, seal, grants)) }
            }
            @if let Some(members) = org["members"].as_array() {
                h3 { (l.t("Members")) }
                ul.members {
                    @for m in members {
                        @let p = m["phone"].as_str().unwrap_or_default();
                        li data-phone=(p) { (p) " — " (l.t(role_key(m["role"].as_str().unwrap_or_default()))) }
                    }
                }
                h3 { (l.t("Add or change a member")) }
                (form(ctx, &format!("/seals/{}/members", urlencode(cc)), &format!("member-{cc}"), html! {
                    (input(s, l.t("Mobile phone"), "phone", "tel", true))
                    (radios(s, l.t("Role"), "role", &roles))
                    (input(s, l.t("SMS code"), "code", "text", true))
                }, l.t("Save")))
                h3 { (l.t("Remove a member")) }
                (form(ctx, &format!("/seals/{}/members/remove", urlencode(cc)), &format!("remove-member-{cc}"), html! {
                    (input(s, l.t("Mobile phone"), "phone", "tel", true))
                    (input(s, l.t("SMS code"), "code", "text", true))
                }, l.t("Remove")))
                h3 { (l.t("Hand the administrator role over")) }
                (form(ctx, &format!("/seals/{}/handover", urlencode(cc)), &format!("handover-{cc}"), html! {
                    (input(s, l.t("New administrator's phone"), "phone", "tel", true))
                    (input(s, l.t("New administrator's name"), "name", "text", true))
                    (input(s, l.t("New administrator's ID number"), "id_number", "text", true))
                    (input(s, l.t("SMS code"), "code", "text", true))
                }, l.t("Save")))
            }
        }
    }
}

/// One seal; for those who grant its use (印章授权), the people allowed to stamp with it and
/// the form to allow or withdraw a member.
fn seal_item(ctx: &Ctx, s: &FormState, cc: &str, seal: &serde_json::Value, grants: bool) -> Markup {
    let l = ctx.lang;
    let id = seal["id"].as_str().unwrap_or_default();
    let users: Vec<&str> = seal["users"].as_array().into_iter().flatten().filter_map(|u| u.as_str()).collect();
    let choices = [("true", l.t("Allow")), ("false", l.t("Withdraw"))].map(|(v, t)| (v.to_string(), t.to_string()));
    html! {
        li data-seal=(id) {
            span.seal-name { (seal["name"].as_str().unwrap_or_default()) }
            @if seal["status"] != "active" { " " (l.t("(retired)")) }
            @if grants {
                p { (l.t("Allowed to use this seal")) ": " @if users.is_empty() { (l.t("nobody yet")) } }
                ul.seal-users { @for u in &users { li data-user=(u) { (u) } } }
                (form(ctx, &format!("/seals/{}/seals/{}/users", urlencode(cc), urlencode(id)), &format!("seal-user-{id}"), html! {
                    (input(s, l.t("Member's phone"), "phone", "tel", true))
                    (radios(s, l.t("Use of this seal"), "allowed", &choices))
                    (input(s, l.t("SMS code"), "code", "text", true))
                }, l.t("Save")))
            }
        }
    }
}

/// The member roles, as keys of the page texts.
pub(in crate::web) const ROLES: [&str; 3] = ["staff", "seal-admin", "admin"];

fn role_key(role: &str) -> &'static str {
    ROLES.into_iter().find(|r| *r == role).unwrap_or("staff")
}

/// A refusal in the page's words: the seal service's own about members, else as every page.
fn refusal(ctx: &Ctx, answer: &crate::web::client::Answer) -> String {
    match answer.title().as_str() {
        crate::seals::NOT_A_MEMBER => {
            ctx.lang.t("This phone is not a member of the organisation: add it as a member first.").into()
        }
        crate::seals::NOT_YOURSELF => {
            ctx.lang.t("The administrator cannot remove themself: hand the role over first.").into()
        }
        _ => message(ctx.lang, answer),
    }
}

fn outcome(
    ctx: &Ctx,
    answer: Result<crate::web::client::Answer, crate::web::client::Unreachable>,
    phone: &str,
) -> Response {
    // What to show and the phone typed go in the flash cookie, never the URL.
    match answer {
        Ok(a) if a.ok() => super::manage::flash_to(ctx, "/seals", &[("m", ctx.lang.t("Done.")), ("phone", phone)]),
        Ok(a) => super::manage::flash_to(ctx, "/seals", &[("e", refusal(ctx, &a).as_str()), ("phone", phone)]),
        Err(e) => trouble(ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

pub(in crate::web) async fn login_code(
    State(web): State<Web>,
    ctx: Ctx,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = super::forged(&ctx, &v) {
        return r;
    }
    let phone =
        crate::ra::validate::mainland_mobile("phone", v.get("phone").map_or("", String::as_str)).unwrap_or_default();
    let answer = web.daemon.app(Method::POST, "/v1/mobile/sms", None, Some(&json!({ "phone": phone }))).await;
    outcome(&ctx, answer, &phone)
}

pub(in crate::web) async fn login(
    State(web): State<Web>,
    ctx: Ctx,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = super::forged(&ctx, &v) {
        return r;
    }
    let phone =
        crate::ra::validate::mainland_mobile("phone", v.get("phone").map_or("", String::as_str)).unwrap_or_default();
    let body = json!({ "phone": phone, "code": v.get("code").cloned().unwrap_or_default() });
    match web.daemon.app(Method::POST, "/v1/mobile/login", None, Some(&body)).await {
        Ok(a) if a.ok() => {
            let token = a.body["token"].as_str().unwrap_or_default();
            redirect(
                &ctx.url("/seals"),
                &[ctx.set_cookie("ccm", token, 15 * 60), ctx.set_cookie("ccm_phone", &phone, 15 * 60)],
            )
        }
        other => outcome(&ctx, other, ""),
    }
}

pub(in crate::web) async fn admin_code(
    State(web): State<Web>,
    ctx: Ctx,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = super::forged(&ctx, &v) {
        return r;
    }
    // The administrator's own phone, as they logged in with it.
    let Some(phone) = ctx.cookie("ccm_phone").filter(|_| ctx.cookie("ccm").is_some()) else {
        return redirect(&ctx.url("/seals"), &[]);
    };
    // The code is for one organisation's changes (the daemon scopes it to the credit code).
    let object = v.get("credit_code").map(|c| c.trim().to_string()).unwrap_or_default();
    let body = json!({ "phone": phone, "purpose": "admin", "object": object });
    let answer = web.daemon.app(Method::POST, "/v1/mobile/sms", None, Some(&body)).await;
    outcome(&ctx, answer, "")
}

/// A change as the logged-in administrator; `done` is the message for a success when the
/// change is not yet made (a hand-over waits for the new administrator's acceptance).
async fn org_change(
    web: &Web,
    ctx: &Ctx,
    path: String,
    body: serde_json::Value,
    v: &HashMap<String, String>,
    done: Option<&str>,
) -> Response {
    if let Some(r) = super::forged(ctx, v) {
        return r;
    }
    let Some(bearer) = ctx.cookie("ccm") else { return redirect(&ctx.url("/seals"), &[]) };
    match (web.daemon.app(Method::POST, &path, Some(bearer), Some(&body)).await, done) {
        (Ok(a), Some(done)) if a.ok() => super::manage::flash_to(ctx, "/seals", &[("m", done)]),
        (answer, _) => outcome(ctx, answer, ""),
    }
}

pub(in crate::web) async fn member(
    State(web): State<Web>,
    ctx: Ctx,
    Path(cc): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    let phone =
        crate::ra::validate::mainland_mobile("phone", v.get("phone").map_or("", String::as_str)).unwrap_or_default();
    let body = json!({ "phone": phone, "role": v.get("role").cloned().unwrap_or_default(), "code": v.get("code").cloned().unwrap_or_default() });
    org_change(&web, &ctx, format!("/v1/mobile/orgs/{}/members", urlencode(&cc)), body, &v, None).await
}

/// The administrator removes a member (人员管理); the daemon checks the role and the code.
pub(in crate::web) async fn remove_member(
    State(web): State<Web>,
    ctx: Ctx,
    Path(cc): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    let phone =
        crate::ra::validate::mainland_mobile("phone", v.get("phone").map_or("", String::as_str)).unwrap_or_default();
    let body = json!({ "phone": phone, "code": v.get("code").cloned().unwrap_or_default() });
    org_change(&web, &ctx, format!("/v1/mobile/orgs/{}/members/remove", urlencode(&cc)), body, &v, None).await
}

/// A seal's administrator allows a member to use the seal or withdraws it (印章授权); anything
/// but an explicit "allow" withdraws. The daemon checks the role, the seal and the code.
pub(in crate::web) async fn seal_user(
    State(web): State<Web>,
    ctx: Ctx,
    Path((cc, seal)): Path<(String, String)>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    let phone =
        crate::ra::validate::mainland_mobile("phone", v.get("phone").map_or("", String::as_str)).unwrap_or_default();
    let allowed = v.get("allowed").is_some_and(|a| a == "true");
    let body = json!({ "phone": phone, "allowed": allowed, "code": v.get("code").cloned().unwrap_or_default() });
    let path = format!("/v1/mobile/orgs/{}/seals/{}/users", urlencode(&cc), urlencode(&seal));
    org_change(&web, &ctx, path, body, &v, None).await
}

pub(in crate::web) async fn hand_over(
    State(web): State<Web>,
    ctx: Ctx,
    Path(cc): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    let phone =
        crate::ra::validate::mainland_mobile("phone", v.get("phone").map_or("", String::as_str)).unwrap_or_default();
    let field = |k: &str| v.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let body = json!({ "phone": phone, "name": field("name"), "id_number": field("id_number"), "code": field("code") });
    // Nothing moves yet: the new administrator accepts on their own phone.
    let offered = ctx.lang.t("Offered: the new administrator accepts with the code texted to them.");
    let path = format!("/v1/mobile/orgs/{}/handover", urlencode(&cc));
    org_change(&web, &ctx, path, body, &v, Some(offered)).await
}

/// The new administrator accepts a hand-over with the code the offer texted to their phone
/// (no login: they may have nothing in the app yet; the code to their checked phone is the
/// proof).
pub(in crate::web) async fn accept_hand_over(
    State(web): State<Web>,
    ctx: Ctx,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = super::forged(&ctx, &v) {
        return r;
    }
    let field = |k: &str| v.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let mobile = |k: &str| crate::ra::validate::mainland_mobile(k, &field(k)).unwrap_or_default();
    let body = json!({ "phone": mobile("phone"), "from": mobile("from"), "code": field("code") });
    let path = format!("/v1/mobile/orgs/{}/handover/accept", urlencode(&field("credit_code")));
    outcome(&ctx, web.daemon.app(Method::POST, &path, None, Some(&body)).await, "")
}

/// The acceptance form, for whoever was offered the administrator role.
fn accept_form(ctx: &Ctx, s: &FormState) -> Markup {
    let l = ctx.lang;
    html! {
        h2 { (l.t("Accept an administrator role offered to you")) }
        (form(ctx, "/seals/handover/accept", "handover-accept", html! {
            (input(s, l.t("Unified social credit code"), "credit_code", "text", true))
            (input(s, l.t("Mobile phone"), "phone", "tel", true))
            (input(s, l.t("The administrator's phone who offered it"), "from", "tel", true))
            (input(s, l.t("SMS code"), "code", "text", true))
        }, l.t("Accept")))
    }
}
