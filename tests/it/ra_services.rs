//! Certificate services start from the subject (issue 17 points 1, 2 and 4; handbook §3.1,
//! §3.3, §4.3): the credit code and the order-query identity check, then the subject's
//! certificates to pick from. Each test is an attack on the old serial-first start, through the
//! real listeners, on organisation certificates.

use serde_json::{json, Value};

use crate::common::*;
use crate::ra::{agent, company, org_to_product, ra_ca, sign_and_pay, wait_state, Client, AGENT, CREDIT, PDF, REP};

/// Someone typing the company's credit code: a real phone, not on file.
const STRANGER: &str = "+8613600136000";
/// The certificate administrator after the hand-over.
const NEW_ADMIN: &str = "+8613500135000";

/// The RA test CA with organisation certificates valid 60 days (inside the renewal window).
pub(crate) async fn services_ca() -> TestCa {
    let mut ca = ra_ca().await;
    let profile = ca.config.policies_dir.join("profiles/org.toml");
    let org = std::fs::read_to_string(&profile).unwrap().replace("validity_days = 365", "validity_days = 60");
    std::fs::write(&profile, org).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    ca
}

/// A new organisation certificate: the order approved, the agent enrols in the app (and so
/// becomes the organisation's certificate administrator). Returns (serial, agent's bearer).
pub(crate) async fn org_certificate(web: &Client<'_>, reviewer: &Client<'_>) -> (String, String) {
    let (id, token) = crate::ra_identity::approved_org(web, reviewer, CREDIT).await;
    let serial = crate::ra::holder_enrols(web, AGENT).await;
    wait_state(web, &id, &token, "completed").await;
    (serial, login(web, AGENT).await)
}

/// Logs into the app by SMS; the bearer header value.
pub(crate) async fn login(c: &Client<'_>, phone: &str) -> String {
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = c.http.post(format!("{}/v1/mobile/sms", c.api)).json(&json!({ "phone": phone })).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let login = json!({ "phone": phone, "code": last_code(c.ca, phone) });
    let r = c.http.post(format!("{}/v1/mobile/login", c.api)).json(&login).send().await.unwrap();
    let session: Value = r.json().await.unwrap();
    format!("Bearer {}", session["token"].as_str().unwrap())
}

/// The serials of the holder's credentials in the app.
async fn app_serials(c: &Client<'_>, bearer: &str) -> Vec<String> {
    let r = c.http.get(format!("{}/v1/mobile/credentials", c.api)).header("authorization", bearer);
    let listed: Value = r.send().await.unwrap().json().await.unwrap();
    let items = listed["credentials"].as_array().or(listed["items"].as_array()).cloned().unwrap_or_default();
    items.iter().filter_map(|c| c["serial"].as_str().map(String::from)).collect()
}

fn outbox(ca: &TestCa) -> String {
    std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap_or_default()
}

/// Opens an order query for the company with the SMS code (a made-up one when none was
/// texted); (status, session).
async fn open_query(web: &Client<'_>, phone: &str) -> (u16, Value) {
    open_query_in(web, phone, None).await
}

/// [`open_query`] from the web front of one channel.
async fn open_query_in(web: &Client<'_>, phone: &str, channel: Option<&str>) -> (u16, Value) {
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let body = json!({ "subject": CREDIT, "phone": phone });
    assert_eq!(web.call("POST", "/v1/ra/queries/code", None, Some(body)).await.0, 202);
    let texted = outbox(web.ca).lines().any(|l| l.contains(phone) && l.contains("cloudca code"));
    let code = if texted { last_code(web.ca, phone) } else { "123456".into() };
    let mut body = json!({ "subject": CREDIT, "phone": phone, "code": code });
    if let Some(c) = channel {
        body["channel"] = json!(c);
    }
    web.call("POST", "/v1/ra/queries", None, Some(body)).await
}

/// The session's certificates: (status, items).
async fn certificates(web: &Client<'_>, session: &str) -> (u16, Vec<Value>) {
    let r = web.http.get(format!("{}/v1/ra/queries/certificates", web.admin)).header("x-query-token", session);
    let (status, v) = web.send(r).await;
    (status, v["items"].as_array().cloned().unwrap_or_default())
}

async fn not_after(ca: &TestCa, serial: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT not_after FROM certificates WHERE serial = $1")
        .bind(serial)
        .fetch_one(&pool)
        .await
        .unwrap();
    n
}

/// The company step of an order about an organisation certificate (the legal representative's
/// code typed back), the agent step after it.
async fn company_and_agent(web: &Client<'_>, id: &str, token: &str) {
    web.choose_method(id, token, "phone").await;
    web.company_checked(id, token, company(CREDIT, REP)).await;
    let (status, v) = web.step(id, token, "agent", agent()).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organisation_certificate_is_renewed_from_the_credit_code_by_its_administrator_keeping_the_days_paid() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let (serial, bearer) = org_certificate(&web, &reviewer).await;

    // A stranger typing the credit code gets no code, no session, no certificate list.
    let (status, _) = open_query(&web, STRANGER).await;
    assert_eq!(status, 401, "no code went to a phone that is not on file");
    assert_eq!(certificates(&web, "guessed-token").await.0, 404);
    // The serial alone proves nothing: no code, a wrong code, someone else's session.
    let (id, token) = web.create("renewal").await;
    assert_ne!(web.step(&id, &token, "certificate", json!({ "serial": serial })).await.0, 200);
    let (status, _) = web.step(&id, &token, "certificate", json!({ "serial": serial, "query_token": "x" })).await;
    assert_eq!(status, 422);

    // The certificate administrator (the enrolled agent) proves the phone on file and picks
    // the certificate from the subject's list.
    let (status, session) = open_query(&web, AGENT).await;
    assert_eq!((status, session["role"].as_str()), (201, Some("agent")), "{session}");
    let query = session["token"].as_str().unwrap().to_string();
    let (status, items) = certificates(&web, &query).await;
    assert_eq!(status, 200);
    assert_eq!(items.len(), 1, "{items:?}");
    let listed = &items[0];
    assert_eq!(listed["serial"], serial.as_str());
    assert_eq!((listed["profile"].as_str(), listed["status"].as_str()), (Some("org"), Some("issued")));
    assert_eq!((listed["in_custody"].as_bool(), listed["renewable_now"].as_bool()), (Some(true), Some(true)));
    assert!(listed["subject"].as_str().unwrap().contains("福建示例科技有限公司"), "{listed}");
    assert!(listed["services"].as_array().unwrap().iter().any(|s| s == "renewal"), "{listed}");

    // The session only finds the certificate: on its own (captured from the web front's
    // cookie, say) it renews nothing. The administrator confirms this order and serial with a
    // fresh code; the data is then pre-filled and checked again.
    let (status, v) = web.step(&id, &token, "certificate", json!({ "serial": serial, "query_token": query })).await;
    assert_ne!(status, 200, "a session token alone is no consent: {v}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, _) = web
        .call("POST", &format!("/v1/ra/orders/{id}/codes/certificate"), Some(&token), Some(json!({ "serial": serial })))
        .await;
    assert_eq!(status, 202);
    let code = last_code(&ca, AGENT);
    let v = web
        .ok(
            "POST",
            &format!("/v1/ra/orders/{id}/steps/certificate"),
            Some(&token),
            Some(json!({ "serial": serial, "query_token": query, "code": code })),
        )
        .await;
    assert_eq!(v["next_step"], "verification", "the subject is verified again (企业认证): {v}");
    let prefill = &v["summary"]["certificate"]["prefill"];
    assert_eq!(
        (prefill["name"].as_str(), prefill["credit_code"].as_str()),
        (Some("福建示例科技有限公司"), Some(CREDIT))
    );
    company_and_agent(&web, &id, &token).await;
    let product = json!({ "product": "org-cloud-1y" });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(product)).await;
    sign_and_pay(&web, &id, &token, AGENT).await;
    let v = wait_state(&web, &id, &token, "completed").await;
    let renewed = v["serial"].as_str().unwrap().to_string();
    assert_ne!(renewed, serial);
    // Renewing early keeps the days paid: notAfter = old notAfter + the 60-day term.
    let (old, new) = (not_after(&ca, &serial).await, not_after(&ca, &renewed).await);
    assert_eq!(new, old + 60 * 86400, "old {old}, new {new}");
    // The holder's app picks the new certificate up by itself.
    assert_eq!(app_serials(&web, &bearer).await, vec![renewed.clone()]);
    assert!(count_kind(&ca, "order.certificate_consent") >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_hand_over_the_past_agent_cannot_renew_and_the_legal_representative_revokes_with_the_company_check() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let (serial, bearer) = org_certificate(&web, &reviewer).await;

    // The administrator hands the role over in the app.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let body = json!({ "phone": AGENT, "purpose": "admin", "object": CREDIT });
    let r = web.http.post(format!("{}/v1/mobile/sms", web.api)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 202);
    hand_over(&web, &bearer, NEW_ADMIN).await;

    // The past agent may still unlock their own key's PIN, but renews nothing: neither with
    // their query session nor by code (the renewal code goes to the new administrator).
    let (status, session) = open_query(&web, AGENT).await;
    assert_eq!(status, 201, "{session}");
    let past = session["token"].as_str().unwrap().to_string();
    let (_, items) = certificates(&web, &past).await;
    let services: Vec<&str> =
        items.iter().flat_map(|i| i["services"].as_array().unwrap()).filter_map(|s| s.as_str()).collect();
    assert_eq!(services, ["unlock"], "{items:?}");
    let (id, token) = web.create("renewal").await;
    let (status, v) = web.step(&id, &token, "certificate", json!({ "serial": serial, "query_token": past })).await;
    assert_eq!(status, 422, "{v}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, _) = web
        .call("POST", &format!("/v1/ra/orders/{id}/codes/certificate"), Some(&token), Some(json!({ "serial": serial })))
        .await;
    assert_eq!(status, 202);
    let texted = |phone: &str| outbox(&ca).lines().filter(|l| l.contains(phone) && l.contains("cloudca code")).count();
    assert_eq!(texted(NEW_ADMIN), 2, "after the hand-over code, the consent code goes to the new administrator");
    let code = last_code(&ca, NEW_ADMIN);
    let v = web
        .ok(
            "POST",
            &format!("/v1/ra/orders/{id}/steps/certificate"),
            Some(&token),
            Some(json!({ "serial": serial, "code": code })),
        )
        .await;
    assert_eq!(v["next_step"], "verification");
    web.ok("POST", &format!("/v1/ra/orders/{id}/cancel"), Some(&token), Some(json!({}))).await;
    // The new administrator's own query session lists the certificate with every service.
    let (status, session) = open_query(&web, NEW_ADMIN).await;
    assert_eq!(status, 201, "{session}");
    let (_, items) = certificates(&web, session["token"].as_str().unwrap()).await;
    assert!(items[0]["services"].as_array().unwrap().iter().any(|s| s == "revocation"), "{items:?}");

    // The legal representative's session: every certificate; an organisation revocation
    // verifies the company (企业认证) before the agent, the materials and the officer.
    let (status, session) = open_query(&web, REP).await;
    assert_eq!((status, session["role"].as_str()), (201, Some("legal-rep")), "{session}");
    let rep = session["token"].as_str().unwrap().to_string();
    let (_, items) = certificates(&web, &rep).await;
    assert_eq!(items.len(), 1);
    assert!(!items[0]["services"].as_array().unwrap().iter().any(|s| s == "unlock"), "{items:?}");
    let (id, token) = web.create("unlock").await;
    let (status, v) = web.step(&id, &token, "certificate", json!({ "serial": serial, "query_token": rep })).await;
    assert_eq!(status, 422, "a PIN unlock is the key holder's alone: {v}");
    web.ok("POST", &format!("/v1/ra/orders/{id}/cancel"), Some(&token), Some(json!({}))).await;
    let (id, token) = web.create("revocation").await;
    let body = json!({ "serial": serial, "query_token": rep, "reason": "keyCompromise" });
    let v = web.ok("POST", &format!("/v1/ra/orders/{id}/steps/certificate"), Some(&token), Some(body)).await;
    assert_eq!(v["next_step"], "verification", "{v}");
    assert!(v["officer_review"].as_str().unwrap_or_default().contains("legal representative"), "{v}");
    // Another company's data does not pass as this certificate's.
    web.choose_method(&id, &token, "phone").await;
    let (status, _) = web.step(&id, &token, "company", company("91110000802100433B", REP)).await;
    assert_eq!(status, 422);
    company_and_agent(&web, &id, &token).await;
    for kind in ["id-front", "id-back"] {
        assert_eq!(web.upload(&id, &token, kind, PDF).await.0, 201);
    }
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/materials"), Some(&token), Some(json!({}))).await;
    sign_and_pay(&web, &id, &token, AGENT).await;
    reviewer.ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(json!({ "approve": true }))).await;
    wait_state(&web, &id, &token, "completed").await;
    let shown = Client::new(&ca, "operator").ok("GET", &format!("/v1/certificates/{serial}"), None, None).await;
    assert_eq!(shown["status"], "revoked");
    let (_, items) = certificates(&web, &rep).await;
    assert_eq!(items[0]["status"], "revoked");
    assert!(items[0]["services"].as_array().unwrap().is_empty());
}

/// The administrator (the agent, `bearer`) offers the role to `to` (the carrier checks the
/// person named), who accepts with the code texted to them.
async fn hand_over(web: &Client<'_>, bearer: &str, to: &str) {
    let body =
        json!({ "phone": to, "name": "王五", "id_number": "110101199003074338", "code": last_code(web.ca, AGENT) });
    let r = web.http.post(format!("{}/v1/mobile/orgs/{CREDIT}/handover", web.api)).header("authorization", bearer);
    let r = r.json(&body).send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let body = json!({ "phone": to, "from": AGENT, "code": last_code(web.ca, to) });
    let r = web.http.post(format!("{}/v1/mobile/orgs/{CREDIT}/handover/accept", web.api)).json(&body);
    assert_eq!(r.send().await.unwrap().status(), 204);
}

fn count_kind(ca: &TestCa, kind: &str) -> usize {
    crate::ra::count(ca, kind)
}

async fn queried(web: &Client<'_>, session: &Value) -> Vec<String> {
    let token = session["token"].as_str().unwrap();
    let r = web.http.get(format!("{}/v1/ra/queries/orders", web.admin)).header("x-query-token", token);
    let v = web.send(r).await.1;
    v["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_query_from_a_channels_web_front_shows_only_that_channels_orders() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    // An approved order in the default channel, and an open one by the same agent in bidding.
    let (default_order, token) = org_to_product(&web, CREDIT).await;
    let product = json!({ "product": "org-cloud-1y", "invoice": true });
    web.ok("POST", &format!("/v1/ra/orders/{default_order}/steps/product"), Some(&token), Some(product)).await;
    web.rep_signs(&default_order, &token, REP).await;
    for kind in ["business-licence", "id-front", "id-back"] {
        assert_eq!(web.upload(&default_order, &token, kind, PDF).await.0, 201);
    }
    web.ok("POST", &format!("/v1/ra/orders/{default_order}/steps/materials"), Some(&token), Some(json!({}))).await;
    sign_and_pay(&web, &default_order, &token, AGENT).await;
    reviewer.ok("POST", &format!("/v1/orders/{default_order}/decision"), None, Some(json!({ "approve": true }))).await;
    let v = web.ok("POST", "/v1/ra/orders", None, Some(json!({ "channel": "bidding", "flow": "org-new" }))).await;
    let (bidding_order, bid) =
        (v["order"]["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string());
    company_and_agent(&web, &bidding_order, &bid).await;

    // Without a channel (as before) the agent sees both; from a channel's front, that channel's.
    let (_, all) = open_query_in(&web, AGENT, None).await;
    assert_eq!(queried(&web, &all).await.len(), 2);
    let (status, default_session) = open_query_in(&web, AGENT, Some("default")).await;
    assert_eq!(status, 201, "{default_session}");
    assert_eq!(queried(&web, &default_session).await, vec![default_order.clone()]);
    let (_, bidding_session) = open_query_in(&web, REP, Some("bidding")).await;
    assert_eq!(bidding_session["role"], "legal-rep");
    assert_eq!(queried(&web, &bidding_session).await, vec![bidding_order.clone()]);
    // Reading another channel's order with the session is refused as if it did not exist.
    let other = default_session["token"].as_str().unwrap();
    assert_eq!(web.call("GET", &format!("/v1/ra/orders/{bidding_order}"), Some(other), None).await.0, 404);
    assert_eq!(web.call("GET", &format!("/v1/ra/orders/{default_order}"), Some(other), None).await.0, 200);
    // A channel that does not exist opens nothing.
    assert_eq!(open_query_in(&web, AGENT, Some("nowhere")).await.0, 422);

    // The invoice is sent again (重开发票) with the order's token, never with a query session.
    let path = format!("/v1/ra/orders/{default_order}/invoice/reissue");
    assert_eq!(web.call("POST", &path, Some(other), None).await.0, 404);
    let first =
        web.ok("GET", &format!("/v1/ra/orders/{default_order}"), Some(&token), None).await["invoice_no"].clone();
    assert!(first.is_string(), "{first}");
    let v = web.ok("POST", &path, Some(&token), None).await;
    assert!(v["invoice_no"].is_string() && v["invoice_no"] != first, "{v}");
    // The letter the legal representative signed online is kept with the order (B30, B31); the
    // letter to print and stamp comes from the order (B29) and is uploaded like any paper.
    let v = web.ok("GET", &format!("/v1/ra/orders/{default_order}"), Some(&token), None).await;
    assert!(v["materials"].as_array().unwrap().iter().any(|m| m["kind"] == "authorization-letter"), "{v}");
    let letter = format!("{}/v1/ra/orders/{bidding_order}/authorization-letter", web.admin);
    let r = web.http.get(&letter).header("x-order-token", &bid).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().starts_with(b"%PDF-"));
    let r = web.http.get(&letter).header("x-order-token", other).send().await.unwrap();
    assert_eq!(r.status(), 404, "a query session does not print letters");
    assert_eq!(web.upload(&bidding_order, &bid, "authorization-letter", PDF).await.0, 201);
    let mail = std::fs::read_to_string(ca.config.data_dir.join("email-outbox.jsonl")).unwrap();
    // The first invoice, the red-letter invoice voiding it, the new one.
    let sent = mail.lines().filter(|l| l.contains("lisi@example.com") && l.contains(".pdf")).count();
    assert_eq!(sent, 3, "{mail}");
    assert!(mail.contains("红字发票") && mail.contains(first.as_str().unwrap()), "the first one voided: {mail}");
}
