//! The form of each step of an order, filled from a [`FormState`] (what was typed, or for a
//! step being corrected what the order holds), and the refresh interval of a page that waits.

use base64::Engine;
use maud::{html, Markup};
use serde_json::Value;

use super::apply::material_name_for;
use super::urlencode;
use crate::web::html::{checkbox, form, grouped_radios, input, radios, select, yuan, FormState};
use crate::web::security::Ctx;

/// Verification methods and payment methods, as keys of the page texts.
pub(in crate::web) const METHODS: [&str; 7] =
    ["bank-account", "phone", "bank-card", "face-sms", "face-qr", "wechat", "alipay"];

/// Revocation reasons offered (RFC 5280 names, shown as they are).
const REASONS: [&str; 4] = ["cessationOfOperation", "keyCompromise", "affiliationChanged", "superseded"];

fn method_key(m: &str) -> &'static str {
    METHODS.into_iter().find(|k| *k == m).unwrap_or("phone")
}

/// The form-state flag of an order page shown right after the signing link was texted.
pub(super) const LINK_SENT: &str = "link_sent";

/// The path of an order's pages (the id as one URL segment).
pub(super) fn order_path(view: &Value) -> String {
    format!("/orders/{}", urlencode(view["id"].as_str().unwrap_or_default()))
}

/// The form of a step, and a refresh interval when the page waits for something.
pub(super) fn step_form(ctx: &Ctx, view: &Value, channel: &Value, step: &str, s: &FormState) -> (Markup, Option<u32>) {
    let l = ctx.lang;
    let path = order_path(view);
    let flow = view["flow"].as_str().unwrap_or_default();
    let action = format!("{path}/steps/{step}");
    let form_id = format!("step-{step}");
    let next = l.t("Next");
    let summary = &view["summary"];
    let opts = |list: &Value| -> Vec<(String, String)> {
        list.as_array()
            .map(|a| {
                a.iter().filter_map(|m| m.as_str()).map(|m| (m.to_string(), l.t(method_key(m)).to_string())).collect()
            })
            .unwrap_or_default()
    };
    let method = summary["verification"].as_str().unwrap_or_default();
    let extra = |prefix: &str| -> Markup {
        html! {
            @match method {
                "bank-card" => { (input(s, l.t("Bank card number"), &format!("{prefix}card"), "text", true)) }
                "bank-account" => {
                    (input(s, l.t("Account name"), "bank.account_name", "text", true))
                    (input(s, l.t("Account number"), "bank.account_number", "text", true))
                    (input(s, l.t("Bank"), "bank.bank", "text", true))
                }
                _ => {}
            }
        }
    };
    let prefilled = prefilled(view, step, s);
    let s = &prefilled;
    let markup = match step {
        "certificate" => certificate_form(ctx, view, s),
        "verification" => {
            let organisation = flow == "org-new" || summary["certificate"]["profile"] == "org";
            let list = if organisation { &channel["methods"]["organisation"] } else { &channel["methods"]["personal"] };
            let methods = if organisation {
                // Handbook B2: first whether the legal representative takes part (their phone,
                // card or face), then the method; the company's account needs nobody.
                let (without, with): (Vec<_>, Vec<_>) = opts(list).into_iter().partition(|(m, _)| m == "bank-account");
                let groups = [
                    (l.t("The legal representative does not take part"), without),
                    (l.t("The legal representative takes part (on their own phone)"), with),
                ];
                grouped_radios(s, l.t("Verification method"), "method", &groups)
            } else {
                radios(s, l.t("Verification method"), "method", &opts(list))
            };
            form(
                ctx,
                &action,
                &form_id,
                html! {
                    (methods)
                    details #agreement {
                        summary { (l.t("User agreement")) }
                        div.terms { (channel["terms"].as_str().unwrap_or_default()) }
                    }
                    (checkbox(s, l.t("I have read and agree to the user agreement"), "accept_agreement"))
                },
                next,
            )
        }
        "company" => form(
            ctx,
            &action,
            &form_id,
            html! {
                (update_note(ctx, view))
                (input(s, l.t("Company name"), "name", "text", true))
                (input(s, l.t("Unified social credit code"), "credit_code", "text", true))
                h2 { (l.t("Legal representative")) }
                (input(s, l.t("Name"), "legal_rep.name", "text", true))
                // Handbook B8: a legal representative may hold another document than the
                // resident ID (the company's bank account or the bank card checks it online).
                (id_type_select(ctx, s, "legal_rep.id_type"))
                (input(s, l.t("ID number"), "legal_rep.id_number", "text", true))
                (input(s, l.t("Mobile phone"), "legal_rep.phone", "tel", true))
                (extra("legal_rep."))
            },
            next,
        ),
        "person" => form(
            ctx,
            &action,
            &form_id,
            html! {
                (update_note(ctx, view))
                (input(s, l.t("Name"), "name", "text", true))
                // Handbook C6: a personal applicant may hold another document (the bank card
                // checks it online; the phone and face checks need the resident ID).
                (id_type_select(ctx, s, "id_type"))
                (input(s, l.t("ID number"), "id_number", "text", true))
                (input(s, l.t("Mobile phone"), "phone", "tel", true))
                (input(s, l.t("E-mail"), "email", "email", true))
                (extra(""))
            },
            next,
        ),
        "subject-check" | "agent-check" => return check_form(ctx, view, &action, &form_id, s),
        "agent" => form(
            ctx,
            &action,
            &form_id,
            html! {
                // 法定代表人自办 (handbook §2.1, §3.1.3): wherever the organisation's data was
                // entered, new or renewed or changed (issue 17 B18, E8).
                @if flow == "org-new" || summary["company"].is_object() {
                    (checkbox(s, l.t("The legal representative applies in person"), "legal_rep_in_person"))
                }
                (input(s, l.t("Name"), "name", "text", false))
                (input(s, l.t("ID number"), "id_number", "text", false))
                (input(s, l.t("Mobile phone"), "phone", "tel", false))
                (input(s, l.t("E-mail"), "email", "email", true))
                // Offline the agent is only collected: the papers stand for the check, so
                // there is no method to choose (the daemon would ignore one).
                @if view["state"] != "offline" {
                    (radios(s, l.t("Agent's verification"), "method", &opts(&channel["methods"]["agent"])))
                    (input(s, l.t("Bank card number"), "card", "text", false))
                }
                // A service on a personal certificate has no verification step: the agreement
                // comes before this, its first identity check (B3).
                @if summary["terms_accepted"].is_null() {
                    details #agreement {
                        summary { (l.t("User agreement")) }
                        div.terms { (channel["terms"].as_str().unwrap_or_default()) }
                    }
                    (checkbox(s, l.t("I have read and agree to the user agreement"), "accept_terms"))
                }
            },
            next,
        ),
        "product" => form(
            ctx,
            &action,
            &form_id,
            html! {
                (radios(s, l.t("Product"), "product", &products(channel, flow)))
                @if flow == "seal" { (seal_choice(ctx, view, s)) }
                // B22: the channel says whether the applicant chooses an invoice; G5: only
                // for an amount (a flow whose products are all free asks nothing).
                @match channel["invoice"].as_str().unwrap_or("optional") {
                    _ if !priced(channel, flow) => {}
                    "none" => {}
                    "required" => {
                        p.note #invoice-required { (l.t("An e-invoice is issued (title: the organisation or person).")) }
                        (input(s, l.t("Invoice e-mail"), "invoice_email", "email", false))
                    }
                    _ => {
                        (checkbox(s, l.t("I want an e-invoice (title: the organisation or person)"), "invoice"))
                        (input(s, l.t("Invoice e-mail"), "invoice_email", "email", false))
                    }
                }
                @if ships(channel, flow) {
                    (input(s, l.t("Delivery address (a USB key is posted)"), "delivery_address", "text", false))
                }
            },
            next,
        ),
        "materials" => materials_form(ctx, view, s),
        "signature" => html! {
            h2 { (l.t("Terms")) }
            div.terms #terms { (channel["terms"].as_str().unwrap_or_default()) }
            (form(ctx, &format!("{path}/code/signature"), "code-signature", html! {}, l.t("Send code")))
            (form(ctx, &action, &form_id, html! {
                (input(s, l.t("SMS code"), "code", "text", true))
                (checkbox(s, l.t("I have read and accept the terms"), "accept_terms"))
            }, l.t("Sign the application")))
        },
        "payment" => return payment_form(ctx, view, &action, &form_id, s),
        _ => html! {},
    };
    (markup, None)
}

/// The identity document's type (证件类型, handbook B8 and C6), for the legal representative's
/// and the personal applicant's forms; `field` is the form field.
pub(super) fn id_type_select(ctx: &Ctx, s: &FormState, field: &str) -> Markup {
    let l = ctx.lang;
    select(
        s,
        l.t("ID type"),
        field,
        &[
            ("resident-id", l.t("Resident ID card")),
            ("passport", l.t("Passport")),
            ("hk-macao-permit", l.t("Mainland travel permit for Hong Kong and Macao residents")),
            ("taiwan-permit", l.t("Mainland travel permit for Taiwan residents")),
            ("foreign-permanent-resident", l.t("Foreign permanent resident ID card")),
        ],
    )
}

/// The certificate step: the certificate chosen from the subject's list (`serial` in the form
/// state, from the list's button), a code to its consenter, and the code; without a choice, the
/// way to the list. Nobody types a serial.
fn certificate_form(ctx: &Ctx, view: &Value, s: &FormState) -> Markup {
    let l = ctx.lang;
    let path = order_path(view);
    let flow = view["flow"].as_str().unwrap_or_default();
    let chosen = s.values.get("serial").map(|v| v.trim()).filter(|v| !v.is_empty());
    let Some(serial) = chosen else {
        let find = ctx.url(&format!("/certificates?flow={}", urlencode(flow)));
        return html! {
            p #choose-certificate { (l.t("Choose the certificate from the list of your certificates.")) " "
                a #to-certificates href=(find) { (l.t("Find my certificates")) } }
        };
    };
    let chosen = || html! { input type="hidden" name="serial" value=(serial); };
    let reasons = REASONS.map(|r| (r.to_string(), r.to_string()));
    html! {
        dl.order #chosen-certificate {
            dt { (l.t("Certificate serial number")) } dd #chosen-serial { (serial) }
        }
        p.note { (l.t("The code goes to the certificate's administrator or holder on file. When the legal representative chose the certificate and nobody can receive the code, leave it empty: an officer then checks the order.")) }
        (form(ctx, &format!("{path}/code/certificate"), "code-certificate", chosen(), l.t("Send code")))
        (form(ctx, &format!("{path}/steps/certificate"), "step-certificate", html! {
            (chosen())
            (input(s, l.t("SMS code"), "code", "text", false))
            @if flow == "revocation" { (radios(s, l.t("Revocation reason"), "reason", &reasons)) }
        }, l.t("Next")))
        p { a #to-certificates href=(ctx.url(&format!("/certificates?flow={}", urlencode(flow)))) { (l.t("Choose another certificate")) } }
    }
}

/// 证书更新信息 (handbook §3.1): in an order about a certificate, the subject step's form
/// starts with the certificate's data (`summary.certificate.prefill`: names and an
/// organisation's credit code; an ID number is masked and typed again) until the applicant
/// types; what is submitted is checked again like new data.
fn prefilled(view: &Value, step: &str, s: &FormState) -> FormState {
    let prefill = &view["summary"]["certificate"]["prefill"];
    let mut out = s.clone();
    if !matches!(step, "company" | "person") || !s.values.is_empty() || !prefill.is_object() {
        return out;
    }
    for (field, key) in [("name", "name"), ("credit_code", "credit_code")] {
        if let Some(value) = prefill[key].as_str() {
            if step == "company" || field == "name" {
                out.values.insert(field.to_string(), value.to_string());
            }
        }
    }
    out
}

/// What the subject step of an order about a certificate means.
fn update_note(ctx: &Ctx, view: &Value) -> Markup {
    let l = ctx.lang;
    if !view["summary"]["certificate"]["prefill"].is_object() {
        return html! {};
    }
    let text = match view["flow"].as_str() {
        Some("change") => l.t("The certificate's data is filled in: enter what changed. Everything is checked again."),
        Some("renewal") => {
            l.t("Certificate update information: the certificate's data is filled in; correct it if needed. It is checked again.")
        }
        _ => l.t("The certificate's data is filled in; it is checked again."),
    };
    html! { p.note #prefilled { (text) } }
}

/// The channel's products in a flow, as radio options (name and price).
fn products(channel: &Value, flow: &str) -> Vec<(String, String)> {
    channel["products"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["flows"].as_array().is_some_and(|f| f.iter().any(|x| x == flow)))
        .map(|p| {
            let label =
                format!("{} {}", p["name"].as_str().unwrap_or_default(), yuan(p["price_fen"].as_i64().unwrap_or(0)));
            (p["id"].as_str().unwrap_or_default().to_string(), label)
        })
        .collect()
}

/// Whether a product of this flow costs something (so an invoice may be asked for).
fn priced(channel: &Value, flow: &str) -> bool {
    channel["products"].as_array().into_iter().flatten().any(|p| {
        p["price_fen"].as_i64().unwrap_or(0) > 0 && p["flows"].as_array().is_some_and(|f| f.iter().any(|x| x == flow))
    })
}

/// Whether a product of this flow is posted (a USB key) and so needs a delivery address.
fn ships(channel: &Value, flow: &str) -> bool {
    channel["products"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["medium"] == "usb-key" && p["flows"].as_array().is_some_and(|f| f.iter().any(|x| x == flow)))
}

fn qr_img(text: &str, id: &str) -> Markup {
    match crate::signing::qr::render_png(text, 6) {
        Ok(png) => {
            let src = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png));
            html! { img.qr id=(id) alt="QR" data-url=(text) src=(src); }
        }
        Err(_) => html! { a href=(text) id=(id) { (text) } },
    }
}

fn check_form(ctx: &Ctx, view: &Value, action: &str, form_id: &str, s: &FormState) -> (Markup, Option<u32>) {
    let l = ctx.lang;
    let pending = &view["pending_check"];
    if pending["method"] == "bank-account" {
        let inner = input(s, l.t("Remittance code from the bank statement"), "code", "text", true);
        return (form(ctx, action, form_id, inner, l.t("Next")), None);
    }
    if pending["method"] == "phone" || pending["method"] == "bank-card" {
        return (legal_rep_code_form(ctx, view, action, form_id, s), None);
    }
    let url = pending["url"].as_str().unwrap_or_default();
    let poll = ctx.url(&format!("{}?poll=1", order_path(view)));
    let markup = html! {
        @if pending["method"] == "face-qr" {
            p { (l.t("Scan this code with the phone to take the face check.")) }
            (qr_img(url, "face-qr"))
        } @else {
            p #face-sms { (l.t("A link was sent by SMS; finish the face check on the phone, then continue.")) }
        }
        (form(ctx, action, form_id, html! {}, l.t("I have finished")))
        p { a #poll href=(poll) { (l.t("I have finished")) } }
    };
    (markup, Some(3))
}

/// A seal order's 补章 or 变章 (handbook §5.1): a new seal, or one of the organisation's
/// active seals to change; and the seal's name (empty: the changed seal's, or the
/// organisation's).
fn seal_choice(ctx: &Ctx, view: &Value, s: &FormState) -> Markup {
    let l = ctx.lang;
    let mut options = vec![(String::new(), l.t("A new seal").to_string())];
    for seal in view["seals"].as_array().into_iter().flatten() {
        let (id, name) = (seal["id"].as_str().unwrap_or_default(), seal["name"].as_str().unwrap_or_default());
        options.push((id.to_string(), format!("{}{name}", l.t("Change the seal: "))));
    }
    html! {
        div #seal-choice {
            (radios(s, l.t("Seal"), "seal_change", &options))
            (input(s, l.t("Seal name (empty: as it is, or the organisation's name)"), "seal_name", "text", false))
        }
    }
}

/// The company check's code: texted to the legal representative's phone (shown masked), typed
/// here by whoever they give it to, or sent again.
fn legal_rep_code_form(ctx: &Ctx, view: &Value, action: &str, form_id: &str, s: &FormState) -> Markup {
    let l = ctx.lang;
    let phone = view["summary"]["company"]["legal_rep"]["phone"].as_str().unwrap_or_default();
    let resend = format!("{}/code/legal-rep", order_path(view));
    html! {
        p #legal-rep-code { (l.t("A code was texted to the legal representative's phone")) " " (phone) }
        (form(ctx, action, form_id, input(s, l.t("SMS code"), "code", "text", true), l.t("Next")))
        (form(ctx, &resend, "code-legal-rep", html! {}, l.t("Send the code again")))
    }
}

fn materials_form(ctx: &Ctx, view: &Value, s: &FormState) -> Markup {
    let l = ctx.lang;
    let path = order_path(view);
    let uploaded: Vec<&str> =
        view["materials"].as_array().map(|a| a.iter().filter_map(|m| m["kind"].as_str()).collect()).unwrap_or_default();
    let required: Vec<&str> =
        view["materials_required"].as_array().into_iter().flatten().filter_map(|k| k.as_str()).collect();
    let online = required.contains(&"authorization-letter") && view["flow"] == "org-new";
    let document = id_copies_document(&view["summary"]);
    html! {
        ul.materials {
            @for kind in &required {
                @let name = material_name_for(l, kind, document);
                @if uploaded.contains(kind) {
                    li.done data-kind=(kind) { (name) " ✓ " (l.t("Uploaded")) }
                } @else {
                    li data-kind=(kind) {
                        form method="post" enctype="multipart/form-data" action=(ctx.url(&format!("{path}/materials")))
                            id={ "upload-" (kind) } {
                            input type="hidden" name="csrf" value=(ctx.csrf);
                            input type="hidden" name="kind" value=(kind);
                            label { (name) input type="file" name="file" accept="image/png,image/jpeg,application/pdf" required; }
                            @if let Some(e) = s.errors.get(&format!("materials.{kind}")) { span.error { (e) } }
                            button type="submit" { (l.t("Upload")) }
                        }
                        @if *kind == "authorization-letter" {
                            p.note { a #letter-template href=(ctx.url(&format!("{path}/authorization-letter.pdf"))) {
                                (l.t("Download the letter, print it, have it stamped and signed, then upload it"))
                            } }
                        }
                    }
                }
            }
        }
        @if view["summary"]["authorized_online"] == true {
            p.done #authorized-online { (l.t("The legal representative signed the authorisation letter online.")) " ✓" }
        }
        @if online {
            // The legal representative reads and signs the letter on their own phone, from a
            // link texted there (handbook B30/B31); nobody types their code on this page.
            section #online-authorization {
                h2 { (l.t("Or let the legal representative authorise online")) }
                p.note { (l.t("The legal representative gets a link by SMS, reads the authorisation letter on their own phone and signs it there with a code sent to that phone.")) }
                (form(ctx, &format!("{path}/code/authorization"), "code-authorization", html! {},
                    l.t("Text the signing link to the legal representative")))
                @if s.values.contains_key(LINK_SENT) {
                    p #link-sent { (l.t("The link went to the legal representative's phone. This page continues once they sign.")) }
                }
                p { a #refresh-authorization href=(ctx.url(&path)) { (l.t("Refresh: have they signed?")) } }
            }
        }
        (form(ctx, &format!("{path}/steps/materials"), "step-materials", html! {}, l.t("Materials are complete")))
    }
}

/// The document the ID copies are of, as the RA decides it (`OrderData::id_copies_document`):
/// the agent's, else the personal applicant's, else the resident ID.
fn id_copies_document(summary: &Value) -> &str {
    let holder = if summary["agent"]["person"].is_object() { &summary["agent"]["person"] } else { &summary["person"] };
    holder["id_type"].as_str().unwrap_or("resident-id")
}

fn payment_form(ctx: &Ctx, view: &Value, action: &str, form_id: &str, s: &FormState) -> (Markup, Option<u32>) {
    let l = ctx.lang;
    if let Some(url) = view["payment"]["qr_url"].as_str() {
        let markup = html! {
            p { (l.t("Scan to pay. This page moves on by itself when the payment arrives.")) }
            (qr_img(url, "pay-qr"))
        };
        return (markup, Some(2));
    }
    let methods = ["wechat", "alipay"].map(|k| (k.to_string(), l.t(k).to_string()));
    (form(ctx, action, form_id, radios(s, l.t("Pay with"), "method", &methods), l.t("Show the payment code")), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::identifiers::IdType;
    use serde_json::json;

    fn ctx() -> Ctx {
        Ctx {
            cookies: Default::default(),
            lang: crate::web::i18n::Lang::En,
            csrf: String::new(),
            tls: false,
            site: Default::default(),
        }
    }

    fn channel() -> Value {
        json!({ "methods": { "organisation": ["phone"], "personal": ["phone", "bank-card"], "agent": ["phone", "face-sms"] },
                "products": [], "terms": "terms" })
    }

    fn page(view: &Value, step: &str) -> String {
        step_form(&ctx(), view, &channel(), step, &FormState::default()).0.into_string()
    }

    #[test]
    fn the_personal_applicants_form_asks_for_the_id_type_as_the_legal_representatives_does() {
        let view =
            json!({ "id": "o1", "flow": "personal-new", "state": "open", "summary": { "verification": "bank-card" } });
        let person = page(&view, "person");
        assert!(person.contains(r#"select name="id_type""#), "{person}");
        for id_type in IdType::ALL {
            assert!(person.contains(&format!(r#"option value="{}""#, id_type.name())), "{id_type:?}: {person}");
        }
        let view = json!({ "id": "o1", "flow": "org-new", "state": "open", "summary": { "verification": "phone" } });
        assert!(page(&view, "company").contains(r#"select name="legal_rep.id_type""#));
    }

    /// Handbook C6: the copies asked for are named after the applicant's document.
    #[test]
    fn the_materials_form_names_the_copies_after_the_applicants_document() {
        let view = |id_type: &str, required: Value| {
            json!({ "id": "o1", "flow": "personal-new", "state": "open", "materials_required": required,
                    "summary": { "person": { "name": "John Smith", "id_type": id_type } } })
        };
        let passport = page(&view("passport", json!(["id-front"])), "materials");
        assert!(passport.contains("Passport photo page") && !passport.contains("ID card"), "{passport}");
        let permit = page(&view("taiwan-permit", json!(["id-front", "id-back"])), "materials");
        assert!(permit.contains("Travel permit, front") && permit.contains("Travel permit, back"), "{permit}");
        let resident = page(&view("resident-id", json!(["id-front", "id-back"])), "materials");
        assert!(resident.contains("ID card, photo side") && resident.contains("ID card, emblem side"), "{resident}");
    }

    /// Handbook G5: invoice fields only where a product of the flow costs something.
    #[test]
    fn the_product_form_asks_about_an_invoice_only_for_an_amount() {
        let view = json!({ "id": "o1", "flow": "personal-new", "state": "open", "summary": {} });
        let product = |price: i64, invoice: &str| {
            let channel = json!({ "invoice": invoice, "products": [{ "id": "p", "name": "P", "flows": ["personal-new"],
                                  "price_fen": price, "medium": "cloud" }] });
            step_form(&ctx(), &view, &channel, "product", &FormState::default()).0.into_string()
        };
        for policy in ["optional", "required"] {
            let paid = product(100, policy);
            assert!(paid.contains(r#"name="invoice_email""#), "{policy}: {paid}");
            let free = product(0, policy);
            assert!(!free.contains("invoice"), "{policy}: {free}");
        }
    }

    #[test]
    fn an_offline_orders_agent_form_has_no_method_to_choose() {
        let summary = json!({ "verification": "phone", "terms_accepted": { "terms_sha256": "00", "accepted_at": 0 } });
        let open = json!({ "id": "o1", "flow": "org-new", "state": "open", "summary": summary });
        let online = page(&open, "agent");
        assert!(online.contains(r#"name="method""#) && online.contains(r#"name="card""#), "{online}");
        let offline = json!({ "id": "o1", "flow": "org-new", "state": "offline", "summary": summary });
        let offline = page(&offline, "agent");
        assert!(!offline.contains(r#"name="method""#) && !offline.contains(r#"name="card""#), "{offline}");
        assert!(offline.contains(r#"name="email""#), "the agent is still collected: {offline}");
    }
}
