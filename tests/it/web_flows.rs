//! Handbook flows that lacked a browser test (issue 17 rows B18/E8 and E4): the legal
//! representative renews in person (法定代表人自办: their data copied over, only the e-mail
//! typed), and a certificate outside the renewal window gets no renewal button on the page
//! while the RA refuses the renewal itself; and seal authorisation of a named person and the
//! administrator hand-over with its acceptance page; and the re-issue after a lost phone (E22).
//! Screenshots: `target/screenshots/<test>/`.

use fantoccini::Locator;
use serde_json::json;

use crate::common::*;
use crate::ra::{Client, AGENT, CREDIT, REP, REP_ID};
use crate::ra_services::{org_certificate, services_ca};
use crate::web::{agent_step, code, identity_check, legal_rep_code, web_front, Browser};
use crate::web_query::{fill, nothing_typed_in_the_url};
use crate::web_services::{
    buttons, choose, fill_in, open_service, personal_certificate, sign, HOLDER, HOLDER_ID, HOLDER_TYPED, WANGWU,
};

/// B18 and E8 (handbook §3.1.3): in an organisation's renewal the legal representative applies
/// in person: the box copies their data from the company step, the e-mail is all they type,
/// the confirmation says so, the signature code goes to their phone, and no authorisation
/// letter is asked for.
#[tokio::test(flavor = "multi_thread")]
async fn the_legal_representative_renews_the_organisations_certificate_in_person_in_the_browser() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let (serial, _) = org_certificate(&ra, &Client::new(&ca, "reviewer")).await;

    let b = Browser::start("renewal-legal-rep-in-person", 1200, 1600).await;
    open_service(&b, &base, "renewal").await;
    identity_check(&b, &ca, CREDIT, "13700137000", AGENT).await;
    nothing_typed_in_the_url(&b, &[("credit code", CREDIT), ("phone", "13700137000")]).await;
    choose(&b, &ca, "renewal", &serial, AGENT).await;
    nothing_typed_in_the_url(&b, &[("serial", serial.as_str())]).await;
    b.submit("step-certificate").await;
    b.click("input[name=method][value=phone]").await;
    b.click("input[name=accept_agreement]").await;
    b.submit("step-verification").await;
    for (name, value) in
        [("legal_rep.name", "张三"), ("legal_rep.id_number", REP_ID), ("legal_rep.phone", "13800138000")]
    {
        b.fill(name, value).await;
    }
    b.submit("step-company").await;
    legal_rep_code(&b, &ca, "13800138000", None).await;
    assert_eq!(b.current_step().await.as_deref(), Some("agent"));
    b.click("input[name=legal_rep_in_person]").await;
    b.fill("email", "zhangsan@example.com").await;
    b.click("input[name=method][value=phone]").await;
    b.shot("agent-in-person").await;
    b.submit("step-agent").await;
    assert_eq!(b.current_step().await.as_deref(), Some("product"), "{}", b.client.source().await.unwrap());
    b.click("input[name=product][value=org-cloud-1y]").await;
    b.submit("step-product").await;
    let confirmation = b.text("#confirmation").await;
    assert!(confirmation.contains("法定代表人本人办理"), "{confirmation}");
    b.shot("confirmation").await;
    b.submit("confirm").await;
    sign(&b, &ca, REP).await;
    b.click("input[name=method][value=wechat]").await;
    b.submit("step-payment").await;
    let qr = b.attr("img#pay-qr", "data-url").await.expect("the payment QR code");
    ra.pay(&qr).await;
    b.wait_attr("#order-state", "data-state", "completed").await;
    let renewed = b.text("#serial").await;
    assert!(!renewed.is_empty() && renewed != serial, "a new certificate: {renewed}");
    b.shot("completed").await;
}

/// E4 (handbook §3.1: renewal about 90 days before expiry): a certificate a year from expiry
/// shows when renewal opens and no renewal button, and the RA refuses a renewal order for it
/// made without the page.
#[tokio::test(flavor = "multi_thread")]
async fn renewal_outside_the_window_offers_no_button_and_the_ra_refuses_it() {
    let ca = crate::ra::ra_ca().await; // organisation certificates of 365 days, window 90
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let (serial, _) = org_certificate(&ra, &Client::new(&ca, "reviewer")).await;

    let b = Browser::start("renewal-window", 1200, 1200).await;
    open_service(&b, &base, "renewal").await;
    identity_check(&b, &ca, CREDIT, "13700137000", AGENT).await;
    b.shot("not-yet").await;
    assert!(buttons(&b, &serial).await.is_empty(), "no renewal button a year before expiry");
    let row = b.text(&format!("tr[data-serial=\"{serial}\"]")).await;
    assert!(row.contains("可续期日期"), "the row says when renewal opens: {row}");
    let wanted = b.client.find_all(Locator::Css("form[id^=service-renewal]")).await.unwrap();
    assert!(wanted.is_empty());

    // Without the page: the consent code, then the certificate step, is refused.
    let (id, token) = ra.create("renewal").await;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let asked = json!({ "serial": serial });
    let (status, v) =
        ra.call("POST", &format!("/v1/ra/orders/{id}/codes/certificate"), Some(&token), Some(asked)).await;
    let (status, v) = if status == 202 {
        let code = last_code(&ca, AGENT);
        ra.step(&id, &token, "certificate", json!({ "serial": serial, "code": code })).await
    } else {
        (status, v)
    };
    assert_eq!(status, 409, "{v}");
    assert!(v["title"].as_str().unwrap_or_default().contains("renewal opens 90 days before"), "{v}");
}

/// Seal authorisation of named staff and the hand-over (handbook §7; issue 17 I1–I4): the
/// organisation's administrator logs in on `/seals` with the agent's phone, makes a named
/// person seal administrator with a code scoped to the organisation, offers the administrator
/// role to a new person, who accepts on `/seals/handover/accept` with the code texted to their
/// own phone and then administers the organisation.
#[tokio::test(flavor = "multi_thread")]
async fn the_administrator_authorises_a_seal_administrator_and_hands_the_role_over_in_the_browser() {
    const STAFF: &str = "+8613600136000";
    const NEW_ADMIN: &str = "+8613500135000";
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let ra = Client::new(&ca, "web-front");
    org_certificate(&ra, &Client::new(&ca, "reviewer")).await;

    let b = Browser::start("seal-authorisation", 1200, 1800).await;
    b.goto(&format!("{base}/seals")).await;
    fill_in(&b, "seal-login-code", "phone", "13700137000").await;
    let login = code(&b, &ca, "seal-login-code", AGENT).await;
    nothing_typed_in_the_url(&b, &[("phone", "13700137000")]).await;
    fill_in(&b, "seal-login", "phone", "13700137000").await;
    fill_in(&b, "seal-login", "code", &login).await;
    b.submit("seal-login").await;
    let org = format!("section.org[data-org=\"{CREDIT}\"]");
    assert!(b.text(&org).await.contains("证书管理员"), "{}", b.client.source().await.unwrap());
    b.shot("organisation").await;

    // A named person becomes seal administrator.
    let admin = code(&b, &ca, &format!("seal-admin-code-{CREDIT}"), AGENT).await;
    let member = format!("member-{CREDIT}");
    fill_in(&b, &member, "phone", "13600136000").await;
    b.click(&format!("form#{member} input[name=role][value=seal-admin]")).await;
    fill_in(&b, &member, "code", &admin).await;
    b.submit(&member).await;
    let shown = b.text(&format!("{org} li[data-phone=\"{STAFF}\"]")).await;
    assert!(shown.contains("印章管理员"), "{shown}");
    b.shot("seal-administrator-added").await;

    // The administrator role offered to a new person, named and checked.
    let admin = code(&b, &ca, &format!("seal-admin-code-{CREDIT}"), AGENT).await;
    let offer = format!("handover-{CREDIT}");
    for (name, value) in
        [("phone", "13500135000"), ("name", "王五"), ("id_number", "110101199003074338"), ("code", admin.as_str())]
    {
        fill_in(&b, &offer, name, value).await;
    }
    b.submit(&offer).await;
    assert!(b.text("p.alert").await.contains("新管理员"), "{}", b.client.source().await.unwrap());
    b.shot("offered").await;

    // The new administrator accepts on their own device with the code texted to them.
    let other = Browser::start("seal-handover-accept", 1200, 1200).await;
    other.goto(&format!("{base}/seals")).await;
    let accept = last_code(&ca, NEW_ADMIN);
    for (name, value) in
        [("credit_code", CREDIT), ("phone", "13500135000"), ("from", "13700137000"), ("code", accept.as_str())]
    {
        fill_in(&other, "handover-accept", name, value).await;
    }
    other.shot("accept").await;
    other.submit("handover-accept").await;
    fill_in(&other, "seal-login-code", "phone", "13500135000").await;
    let login = code(&other, &ca, "seal-login-code", NEW_ADMIN).await;
    fill_in(&other, "seal-login", "phone", "13500135000").await;
    fill_in(&other, "seal-login", "code", &login).await;
    other.submit("seal-login").await;
    assert!(other.text(&org).await.contains("证书管理员"), "{}", other.client.source().await.unwrap());
    other.shot("new-administrator").await;
}

/// E22 (证书补办) in the browser: from the ID number's check, the re-issue button, the holder's
/// consent, the agent (the holder), the re-issue product, confirmation, signature and payment;
/// the old certificate is revoked and the holder's app picks up the new one.
#[tokio::test(flavor = "multi_thread")]
async fn a_person_has_the_certificate_reissued_in_the_browser_from_the_id_number() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let first = personal_certificate(&ca).await;

    let b = Browser::start("reissue-personal", 1200, 1500).await;
    open_service(&b, &base, "reissue").await;
    identity_check(&b, &ca, HOLDER_ID, HOLDER_TYPED, HOLDER).await;
    nothing_typed_in_the_url(&b, &[("ID number", HOLDER_ID), ("phone", HOLDER_TYPED)]).await;
    assert_eq!(buttons(&b, &first).await, ["reissue"]);
    b.shot("certificates").await;
    choose(&b, &ca, "reissue", &first, HOLDER).await;
    b.submit("step-certificate").await;
    assert_eq!(b.current_step().await.as_deref(), Some("agent"));
    agent_step(&b, WANGWU, Some("agent")).await;
    assert_eq!(b.current_step().await.as_deref(), Some("product"), "{}", b.client.source().await.unwrap());
    b.click("input[name=product][value=reissue]").await;
    b.shot("product").await;
    b.submit("step-product").await;
    b.shot("confirmation").await;
    b.submit("confirm").await;
    sign(&b, &ca, HOLDER).await;
    b.click("input[name=method][value=wechat]").await;
    b.submit("step-payment").await;
    let qr = b.attr("img#pay-qr", "data-url").await.expect("the payment QR code");
    ra.pay(&qr).await;
    b.wait_attr("#order-state", "data-state", "approved").await;
    b.shot("approved").await;
    let shown = Client::new(&ca, "operator").ok("GET", &format!("/v1/certificates/{first}"), None, None).await;
    assert_eq!(shown["status"], "revoked", "the lost certificate is revoked: {shown}");
    let reissued = crate::ra::holder_enrols(&ra, HOLDER).await;
    assert_ne!(reissued, first);
    b.wait_attr("#order-state", "data-state", "completed").await;
    b.shot("completed").await;
}

/// E22 (证书补办): a person who lost their phone and its number proves who they are with a
/// real-name check of their new phone (F9), picks the certificate, and, with nobody to confirm
/// on the lost phone, leaves the code empty: the re-issue goes to an officer. Approved, the old
/// certificate is revoked and the new key is enrolled from the new phone; no code is texted to
/// the lost one.
#[tokio::test(flavor = "multi_thread")]
async fn a_person_who_lost_their_phone_has_the_certificate_reissued_to_the_new_one_after_an_officers_check() {
    const NEW: &str = "+8613500135000";
    const NEW_TYPED: &str = "13500135000";
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let first = personal_certificate(&ca).await;
    let texts_to_lost = |ca: &TestCa| {
        let outbox = std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap_or_default();
        outbox.lines().filter(|l| l.contains(HOLDER)).map(String::from).collect::<Vec<_>>()
    };
    let lost_before = texts_to_lost(&ca);

    let b = Browser::start("reissue-lost-phone", 1200, 1600).await;
    open_service(&b, &base, "reissue").await;
    b.click("details#fallback-person summary").await;
    let typed = [("subject", HOLDER_ID), ("name", "王五"), ("phone", NEW_TYPED)];
    fill(&b, &ca, "query-person-phone", &typed, None).await;
    b.shot("identity-by-new-phone").await;
    b.press("form#query-person-phone button[name=step]").await;
    let sms = last_code(&ca, NEW);
    fill(&b, &ca, "query-person-phone", &typed, Some(&sms)).await;
    b.press("form#query-person-phone button[name=submit]").await;
    assert_eq!(buttons(&b, &first).await, ["reissue"], "{}", b.client.source().await.unwrap());
    b.submit(&format!("service-reissue-{first}")).await;
    assert_eq!(b.current_step().await.as_deref(), Some("certificate"));
    assert_eq!(b.text("#chosen-serial").await, first);
    b.shot("no-code-from-the-lost-phone").await;
    b.submit("step-certificate").await;
    assert_eq!(b.current_step().await.as_deref(), Some("agent"), "{}", b.client.source().await.unwrap());
    let holder_now =
        [("name", "王五"), ("id_number", HOLDER_ID), ("phone", NEW_TYPED), ("email", "wangwu@example.com")];
    agent_step(&b, holder_now, Some("agent-new-phone")).await;
    b.click("input[name=product][value=reissue]").await;
    b.submit("step-product").await;
    b.submit("confirm").await;
    sign(&b, &ca, NEW).await;
    b.click("input[name=method][value=wechat]").await;
    b.submit("step-payment").await;
    let qr = b.attr("img#pay-qr", "data-url").await.expect("the payment QR code");
    ra.pay(&qr).await;
    // Not the channel's automatic approval: an officer decides, and sees why.
    b.wait_attr("#order-state", "data-state", "review").await;
    let id = b.text("#order-id").await;
    let reviewer = Client::new(&ca, "reviewer");
    let order = reviewer.ok("GET", &format!("/v1/orders/{id}"), None, None).await;
    assert!(order.to_string().contains("lost phone"), "the officer is told why: {order}");
    reviewer.ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(json!({ "approve": true }))).await;
    b.wait_attr("#order-state", "data-state", "approved").await;
    let shown = Client::new(&ca, "operator").ok("GET", &format!("/v1/certificates/{first}"), None, None).await;
    assert_eq!(shown["status"], "revoked", "the certificate on the lost phone is revoked: {shown}");
    let reissued = crate::ra::holder_enrols(&ra, NEW).await;
    assert_ne!(reissued, first);
    b.wait_attr("#order-state", "data-state", "completed").await;
    b.shot("completed").await;
    // No code went to the lost phone (notices of what happened to its certificate may).
    let after = texts_to_lost(&ca);
    let codes: Vec<&String> = after[lost_before.len()..].iter().filter(|l| l.contains("cloudca code")).collect();
    assert!(codes.is_empty(), "no code went to the lost phone: {codes:?}");
}
