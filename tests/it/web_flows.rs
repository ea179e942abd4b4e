//! Handbook flows that lacked a browser test (issue 17 rows B18/E8 and E4): the legal
//! representative renews in person (法定代表人自办: their data copied over, only the e-mail
//! typed), and a certificate outside the renewal window gets no renewal button on the page
//! while the RA refuses the renewal itself. Screenshots: `target/screenshots/<test>/`.

use fantoccini::Locator;
use serde_json::json;

use crate::common::*;
use crate::ra::{Client, AGENT, CREDIT, REP, REP_ID};
use crate::ra_services::{org_certificate, services_ca};
use crate::web::{identity_check, web_front, Browser};
use crate::web_services::{buttons, choose, open_service, sign};

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
    choose(&b, &ca, "renewal", &serial, AGENT).await;
    b.submit("step-certificate").await;
    b.click("input[name=method][value=phone]").await;
    b.submit("step-verification").await;
    for (name, value) in
        [("legal_rep.name", "张三"), ("legal_rep.id_number", REP_ID), ("legal_rep.phone", "13800138000")]
    {
        b.fill(name, value).await;
    }
    b.submit("step-company").await;
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
    let (status, v) = ra.call("POST", &format!("/v1/ra/orders/{id}/codes/certificate"), Some(&token), Some(asked)).await;
    let (status, v) = if status == 202 {
        let code = last_code(&ca, AGENT);
        ra.step(&id, &token, "certificate", json!({ "serial": serial, "code": code })).await
    } else {
        (status, v)
    };
    assert_eq!(status, 409, "{v}");
    assert!(v["title"].as_str().unwrap_or_default().contains("renewal opens 90 days before"), "{v}");
}
