//! Certificate services in a real browser (issue 17 points 1 and 2; handbook §3, §4.3): each
//! flow starts from the flow's card, checks the subject (credit code or ID number and a code to
//! a phone on file), lists the subject's certificates with a button per allowed service, takes
//! the consenter's code for the chosen certificate, then the order's usual steps. No page has a
//! field to type a serial into. Screenshots: `target/screenshots/<flow>/NN-step.png`.

use fantoccini::Locator;
use serde_json::json;

use crate::common::*;
use crate::ra::{holder_enrols, personal_signed, wait_state, Client, AGENT, CREDIT, PDF, REP_ID};
use crate::ra_services::{org_certificate, services_ca};
use crate::web::{agent_step, code, identity_check, legal_rep_code, org_first_steps, web_ca, web_front, Browser, LISI};

/// The personal certificate's holder (subject 王五 as `personal_signed` enters it).
pub(crate) const HOLDER: &str = "+8613900139000";
pub(crate) const HOLDER_TYPED: &str = "13900139000";
pub(crate) const HOLDER_ID: &str = "110101199003074338";
/// The holder as the agent of their own certificate's orders.
pub(crate) const WANGWU: [(&str, &str); 4] =
    [("name", "王五"), ("id_number", HOLDER_ID), ("phone", HOLDER_TYPED), ("email", "wangwu@example.com")];

/// No page of the services has a field to type a serial into (a chosen one travels hidden).
async fn no_serial_to_type(b: &Browser) {
    let typed = b.client.find_all(Locator::Css("input[name=serial]:not([type=hidden])")).await.unwrap();
    assert!(typed.is_empty(), "a page asks for a serial: {}", b.client.source().await.unwrap());
}

/// From the flow's card on the home page to the identity check (or, with a live check in this
/// browser, straight to the list).
pub(crate) async fn open_service(b: &Browser, base: &str, flow: &str) {
    b.goto(base).await;
    b.click(&format!("#flow-{flow}")).await;
    b.shot("before-you-start").await;
    b.submit("start").await;
    no_serial_to_type(b).await;
}

/// The button of `flow` on `serial`'s row; the order's certificate step shows the chosen
/// certificate and sends the consent code to `consenter`, which is filled in (not submitted).
pub(crate) async fn choose(b: &Browser, ca: &TestCa, flow: &str, serial: &str, consenter: &str) {
    b.submit(&format!("service-{flow}-{serial}")).await;
    assert_eq!(b.current_step().await.as_deref(), Some("certificate"));
    assert_eq!(b.text("#chosen-serial").await, serial);
    no_serial_to_type(b).await;
    let consent = code(b, ca, "code-certificate", consenter).await;
    assert_eq!(b.text("#chosen-serial").await, serial, "still the chosen certificate after the code");
    b.fill("code", &consent).await;
}

/// The services a certificate's row offers, by its buttons.
pub(crate) async fn buttons(b: &Browser, serial: &str) -> Vec<String> {
    let mut out = Vec::new();
    for form in
        b.client.find_all(Locator::Css(&format!("tr[data-serial=\"{serial}\"] td.services form"))).await.unwrap()
    {
        let id = form.attr("id").await.unwrap().unwrap_or_default();
        out.push(id.trim_start_matches("service-").trim_end_matches(&format!("-{serial}")).to_string());
    }
    out
}

/// Signs with the code texted to `phone` and accepts the terms.
pub(crate) async fn sign(b: &Browser, ca: &TestCa, phone: &str) {
    assert_eq!(b.current_step().await.as_deref(), Some("signature"));
    let signature = code(b, ca, "code-signature", phone).await;
    b.fill("code", &signature).await;
    b.click("input[name=accept_terms]").await;
    b.shot("signature").await;
    b.submit("step-signature").await;
}

/// Waits for the order shown to reach the review, and the officer approves it.
async fn approve_shown(b: &Browser, ca: &TestCa) {
    b.wait_attr("#order-state", "data-state", "review").await;
    b.shot("in-review").await;
    let id = b.text("#order-id").await;
    let reviewer = Client::new(ca, "reviewer");
    reviewer.ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(json!({ "approve": true }))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organisation_renews_in_the_browser_from_its_credit_code_with_its_data_prefilled() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let (serial, _) = org_certificate(&ra, &Client::new(&ca, "reviewer")).await;

    let b = Browser::start("renewal-organisation", 1200, 1600).await;
    open_service(&b, &base, "renewal").await;
    assert!(b.client.find(Locator::Css("#identity-note")).await.is_ok(), "the identity check comes first");
    b.shot("identity-check").await;
    // The certificate administrator (the agent who enrolled) proves the phone on file.
    identity_check(&b, &ca, CREDIT, "13700137000", AGENT).await;
    assert_eq!(b.attr(&format!("tr[data-serial=\"{serial}\"]"), "data-status").await.as_deref(), Some("issued"));
    assert!(b.text("#certificate-list").await.contains("福建示例科技有限公司"));
    assert_eq!(buttons(&b, &serial).await, ["renewal"], "the page opened for renewal offers renewal");
    b.shot("certificates").await;
    choose(&b, &ca, "renewal", &serial, AGENT).await;
    b.shot("consent-code").await;
    b.submit("step-certificate").await;
    // 企业认证 and 证书更新信息: the certificate's data pre-filled, editable, checked again.
    assert_eq!(b.current_step().await.as_deref(), Some("verification"));
    assert!(b.text("#subject").await.contains("福建示例科技有限公司"), "the subject is shown read-only");
    b.click("input[name=method][value=phone]").await;
    b.click("input[name=accept_agreement]").await;
    b.submit("step-verification").await;
    assert!(b.client.find(Locator::Css("#prefilled")).await.is_ok());
    assert_eq!(b.attr("input[name=name]", "value").await.as_deref(), Some("福建示例科技有限公司"));
    assert_eq!(b.attr("input[name=credit_code]", "value").await.as_deref(), Some(CREDIT));
    for (name, value) in
        [("legal_rep.name", "张三"), ("legal_rep.id_number", REP_ID), ("legal_rep.phone", "13800138000")]
    {
        b.fill(name, value).await;
    }
    b.shot("update-information").await;
    b.submit("step-company").await;
    legal_rep_code(&b, &ca, "13800138000", None).await;
    assert_eq!(b.current_step().await.as_deref(), Some("agent"));
    agent_step(&b, LISI, Some("agent")).await;
    b.click("input[name=product][value=org-cloud-1y]").await;
    b.shot("product").await;
    b.submit("step-product").await;
    assert!(b.text("#confirmation").await.contains("福建示例科技有限公司"));
    b.shot("confirmation").await;
    b.submit("confirm").await;
    sign(&b, &ca, AGENT).await;
    b.click("input[name=method][value=wechat]").await;
    b.submit("step-payment").await;
    let qr = b.attr("img#pay-qr", "data-url").await.expect("the payment QR code");
    b.shot("payment").await;
    ra.pay(&qr).await;
    // Renewal is approved automatically; the custody key moves to the new certificate.
    b.wait_attr("#order-state", "data-state", "completed").await;
    let renewed = b.text("#serial").await;
    assert!(!renewed.is_empty() && renewed != serial, "a new certificate: {renewed}");
    b.shot("completed").await;
}

/// A personal certificate from an approved order (so the holder's phone is on file), enrolled
/// in the holder's app. Its serial.
pub(crate) async fn personal_certificate(ca: &TestCa) -> String {
    let ra = Client::new(ca, "web-front");
    let (id, token) = personal_signed(&ra, HOLDER, HOLDER_ID, "personal-cloud-1y").await;
    let v = ra
        .ok("POST", &format!("/v1/ra/orders/{id}/steps/payment"), Some(&token), Some(json!({ "method": "wechat" })))
        .await;
    ra.pay(v["payment"]["qr_url"].as_str().unwrap()).await;
    wait_state(&ra, &id, &token, "review").await;
    Client::new(ca, "reviewer")
        .ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(json!({ "approve": true })))
        .await;
    let serial = holder_enrols(&ra, HOLDER).await;
    wait_state(&ra, &id, &token, "completed").await;
    serial
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_unlocks_changes_and_revokes_in_the_browser_from_the_id_number() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let first = personal_certificate(&ca).await;

    // PIN unlock: the key holder's own; automatic.
    let b = Browser::start("unlock-personal", 1200, 1500).await;
    open_service(&b, &base, "unlock").await;
    b.shot("identity-check").await;
    identity_check(&b, &ca, HOLDER_ID, HOLDER_TYPED, HOLDER).await;
    assert_eq!(buttons(&b, &first).await, ["unlock"]);
    b.shot("certificates").await;
    choose(&b, &ca, "unlock", &first, HOLDER).await;
    b.shot("consent-code").await;
    b.submit("step-certificate").await;
    assert_eq!(b.current_step().await.as_deref(), Some("agent"));
    agent_step(&b, WANGWU, Some("agent")).await;
    b.wait_attr("#order-state", "data-state", "completed").await;
    b.shot("completed").await;
    assert_eq!(crate::ra::count(&ca, "credential.unlocked"), 1);

    // Information change: the same check still lists the certificate; the person's data is
    // pre-filled, the new name entered and checked again; an officer approves.
    b.chapter("change-personal");
    open_service(&b, &base, "change").await;
    assert_eq!(buttons(&b, &first).await, ["change"], "the check in this browser lists the certificates at once");
    b.shot("certificates").await;
    choose(&b, &ca, "change", &first, HOLDER).await;
    b.submit("step-certificate").await;
    b.click("input[name=method][value=phone]").await;
    b.click("input[name=accept_agreement]").await;
    b.submit("step-verification").await;
    assert_eq!(b.current_step().await.as_deref(), Some("person"));
    assert_eq!(b.attr("input[name=name]", "value").await.as_deref(), Some("王五"), "pre-filled");
    for (name, value) in WANGWU {
        b.fill(name, if name == "name" { "王五一" } else { value }).await;
    }
    b.shot("changed-information").await;
    b.submit("step-person").await;
    agent_step(&b, WANGWU, None).await;
    assert!(b.text("#confirmation").await.contains("王五一"));
    b.shot("confirmation").await;
    b.submit("confirm").await;
    sign(&b, &ca, HOLDER).await;
    approve_shown(&b, &ca).await;
    b.wait_attr("#order-state", "data-state", "completed").await;
    let changed = b.text("#serial").await;
    assert_ne!(changed, first);
    b.shot("completed").await;

    // Revocation of the new certificate, with its reason and the ID card photos.
    b.chapter("revocation-personal");
    open_service(&b, &base, "revocation").await;
    assert!(
        b.client.find(Locator::Css(&format!("tr[data-serial=\"{first}\"]"))).await.is_err(),
        "the replaced certificate is revoked: nothing to act on"
    );
    b.shot("certificates").await;
    choose(&b, &ca, "revocation", &changed, HOLDER).await;
    b.click("input[name=reason][value=keyCompromise]").await;
    b.shot("consent-and-reason").await;
    b.submit("step-certificate").await;
    agent_step(&b, WANGWU, None).await;
    b.submit("confirm").await;
    let file = ca.path("id.pdf");
    std::fs::write(&file, PDF).unwrap();
    for kind in ["id-front", "id-back"] {
        let input = b.client.find(Locator::Css(&format!("#upload-{kind} input[type=file]"))).await.unwrap();
        input.send_keys(file.to_str().unwrap()).await.unwrap();
        b.submit(&format!("upload-{kind}")).await;
    }
    b.shot("materials").await;
    b.submit("step-materials").await;
    sign(&b, &ca, HOLDER).await;
    approve_shown(&b, &ca).await;
    b.wait_attr("#order-state", "data-state", "completed").await;
    b.shot("completed").await;
    let shown = Client::new(&ca, "operator").ok("GET", &format!("/v1/certificates/{changed}"), None, None).await;
    assert_eq!(shown["status"], "revoked", "{shown}");
}

/// Types into the field `name` of the form `form` (several forms on a page share field names).
pub(crate) async fn fill_in(b: &Browser, form: &str, name: &str, value: &str) {
    let field = b.client.find(Locator::Css(&format!("form#{form} [name=\"{name}\"]"))).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// The issued certificate's subject as OpenSSL prints it (RFC 2253, UTF-8).
async fn subject_of(ca: &TestCa, serial: &str) -> String {
    let cert = Client::new(ca, "operator").ok("GET", &format!("/v1/certificates/{serial}"), None, None).await;
    let path = ca.path(&format!("{serial}.pem"));
    std::fs::write(&path, cert["pem"].as_str().unwrap_or_else(|| panic!("{cert}"))).unwrap();
    let args = ["x509", "-noout", "-subject", "-nameopt", "RFC2253,-esc_msb", "-in", path.to_str().unwrap()];
    let out = run("openssl", &args);
    assert!(out.ok, "{}", out.text);
    out.text
}

/// Handbook E13 for an organisation: its certificate administrator opens the change service
/// from the credit code, chooses the certificate, finds the company's data pre-filled, types
/// the company's new name, has the legal representative confirm it with their code, names the
/// agent, sees the new name on the confirmation and signs; an officer approves. The new
/// certificate names the new company (O and CN) and the old one is revoked.
#[tokio::test(flavor = "multi_thread")]
async fn an_organisation_changes_its_name_in_the_browser_and_gets_a_certificate_with_the_new_name() {
    const NEW_NAME: &str = "福建示例科技股份有限公司";
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let (serial, _) = org_certificate(&ra, &Client::new(&ca, "reviewer")).await;
    assert!(subject_of(&ca, &serial).await.contains("O=福建示例科技有限公司"));

    let b = Browser::start("change-organisation", 1200, 1600).await;
    open_service(&b, &base, "change").await;
    b.shot("identity-check").await;
    identity_check(&b, &ca, CREDIT, "13700137000", AGENT).await;
    assert_eq!(buttons(&b, &serial).await, ["change"], "the page opened for a change offers the change");
    b.shot("certificates").await;
    choose(&b, &ca, "change", &serial, AGENT).await;
    b.submit("step-certificate").await;
    assert_eq!(b.current_step().await.as_deref(), Some("verification"));
    assert!(b.text("#subject").await.contains("福建示例科技有限公司"), "the subject is shown read-only");
    b.click("input[name=method][value=phone]").await;
    b.click("input[name=accept_agreement]").await;
    b.submit("step-verification").await;
    // 证书更新信息: the company's data pre-filled; the new name typed over the old one.
    assert_eq!(b.current_step().await.as_deref(), Some("company"));
    assert!(b.client.find(Locator::Css("#prefilled")).await.is_ok());
    assert_eq!(b.attr("input[name=name]", "value").await.as_deref(), Some("福建示例科技有限公司"));
    assert_eq!(b.attr("input[name=credit_code]", "value").await.as_deref(), Some(CREDIT));
    for (name, value) in [
        ("name", NEW_NAME),
        ("legal_rep.name", "张三"),
        ("legal_rep.id_number", REP_ID),
        ("legal_rep.phone", "13800138000"),
    ] {
        b.fill(name, value).await;
    }
    b.shot("changed-information").await;
    b.submit("step-company").await;
    legal_rep_code(&b, &ca, "13800138000", Some("legal-rep-code")).await;
    assert_eq!(b.current_step().await.as_deref(), Some("agent"));
    agent_step(&b, LISI, Some("agent")).await;
    let confirmation = b.text("#confirmation").await;
    assert!(confirmation.contains(NEW_NAME), "the confirmation shows the new name: {confirmation}");
    b.shot("confirmation").await;
    b.submit("confirm").await;
    sign(&b, &ca, AGENT).await;
    // The channel prices the change at nothing: no payment step; it goes to the officer.
    approve_shown(&b, &ca).await;
    b.wait_attr("#order-state", "data-state", "completed").await;
    let changed = b.text("#serial").await;
    assert!(!changed.is_empty() && changed != serial, "a new certificate: {changed}");
    b.shot("completed").await;

    let subject = subject_of(&ca, &changed).await;
    assert!(subject.contains(&format!("O={NEW_NAME}")) && subject.contains(&format!("CN={NEW_NAME}")), "{subject}");
    assert!(subject.contains(CREDIT), "the same organisation: {subject}");
    let old = Client::new(&ca, "operator").ok("GET", &format!("/v1/certificates/{serial}"), None, None).await;
    assert_eq!(old["status"], "revoked", "the certificate with the old name is revoked: {old}");
}

/// The values of the radio buttons named `name` on the page, in order.
async fn choices(b: &Browser, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in b.client.find_all(Locator::Css(&format!("input[name={name}]"))).await.unwrap() {
        out.push(e.attr("value").await.unwrap().unwrap_or_default());
    }
    out
}

/// Handbook B17 on the page: an organisation applying in the bidding channel (which checks
/// agents by phone only) is offered only the phone check for its agent, and goes on with it.
/// The refusal of another method is `ra::a_bidding_channel_agent_is_checked_only_by_a_method_that_channel_offers`.
#[tokio::test(flavor = "multi_thread")]
async fn an_applicant_in_the_bidding_channel_is_offered_only_that_channels_agent_check() {
    let ca = web_ca().await;
    let config = ca.config_path.parent().unwrap().join("web.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("channels = [\"bidding\"]\n");
    std::fs::write(&config, text).unwrap();
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let b = Browser::start("bidding-agent", 1200, 1400).await;
    org_first_steps(&b, &ca, &format!("{base}/c/bidding"), "13800138000", false).await;
    assert_eq!(b.current_step().await.as_deref(), Some("agent"));
    assert!(b.client.current_url().await.unwrap().path().starts_with("/c/bidding/orders/"));
    assert_eq!(choices(&b, "method").await, ["phone"], "the bidding channel checks agents by phone only");
    agent_step(&b, LISI, Some("agent")).await;
    assert_eq!(b.current_step().await.as_deref(), Some("product"), "the offered check is taken");
    assert_eq!(choices(&b, "product").await, ["bid-org-1y"], "and its own products");
}
