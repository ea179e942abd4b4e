//! Handbook C6: a personal applicant may give another identity document than the mainland
//! resident ID (a passport, the travel permits of Hong Kong, Macao and Taiwan residents, a
//! foreign permanent resident card). Carriers and the face check know people by the resident
//! ID only, so those checks fail as check failures and offer the offline path; the bank card's
//! four elements carry the document type and pass. The certificate names the document with
//! its type (`passport:E12345678`), and the holder proves who they are by bank card, never by
//! face, before the first PIN. Agents stay resident-ID only.

use serde_json::{json, Value};

use crate::common::*;
use crate::ra::{agent, company, ra_ca, sign_and_pay, v_code, wait_state, Client, CREDIT, PDF, REP};

/// The applicant's phone, and the bank card the sandbox passes with it.
const PHONE: &str = "+8613900139000";
const CARD: &str = "6222021234567890128";

/// A personal order with its verification method chosen: (id, token).
async fn personal(web: &Client<'_>, method: &str) -> (String, String) {
    let (id, token) = web.create("personal-new").await;
    web.choose_method(&id, &token, method).await;
    (id, token)
}

fn person(id_type: &str, number: &str) -> Value {
    json!({ "name": "John Smith", "id_type": id_type, "id_number": number, "phone": PHONE,
            "email": "john@example.com", "card": CARD })
}

/// The person step fails as a check failure (422 with the reason and the ways on), counted.
async fn check_fails(web: &Client<'_>, id: &str, token: &str, body: Value, failures: i64) {
    let (status, v) = web.step(id, token, "person", body).await;
    assert_eq!(status, 422, "{v}");
    let text = v.to_string();
    assert!(text.contains("resident ID") && text.contains("bank card") && text.contains("offline"), "{v}");
    let v = web.ok("GET", &format!("/v1/ra/orders/{id}"), Some(token), None).await;
    assert_eq!(v["check_failures"], failures, "a failed check, so the offline path is offered: {v}");
}

/// The holder logs into the app with `phone`; (bearer, approval id).
async fn app_login(c: &Client<'_>, phone: &str) -> (String, String) {
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = c.http.post(format!("{}/v1/mobile/sms", c.api)).json(&json!({ "phone": phone })).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let login = json!({ "phone": phone, "code": last_code(c.ca, phone) });
    let r = c.http.post(format!("{}/v1/mobile/login", c.api)).json(&login).send().await.unwrap();
    let session: Value = r.json().await.unwrap();
    let bearer = format!("Bearer {}", session["token"].as_str().unwrap());
    let r = c.http.get(format!("{}/v1/mobile/credentials", c.api)).header("authorization", &bearer);
    let listed: Value = r.send().await.unwrap().json().await.unwrap();
    let approval = listed["approvals"][0]["approval_id"].as_str().unwrap_or_else(|| panic!("{listed}")).to_string();
    (bearer, approval)
}

async fn post(c: &Client<'_>, bearer: &str, path: &str, body: Value) -> (u16, Value) {
    let r = c.http.post(format!("{}{path}", c.api)).header("authorization", bearer).json(&body);
    let response = r.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The holder of a non-resident document enrols: the face proof is refused with a reason that
/// names the bank card; the bank-card proof (its code to the card's reserved phone) works.
/// Returns the certificate's serial.
async fn enrols_by_bank_card(c: &Client<'_>, phone: &str) -> String {
    let (bearer, approval) = app_login(c, phone).await;
    let face = json!({ "purpose": "enrol", "target": approval, "method": "face" });
    let (status, v) = post(c, &bearer, "/v1/mobile/proofs", face).await;
    assert_eq!(status, 422, "{v}");
    assert!(v.to_string().contains("bank card"), "the refusal says what to use: {v}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let card =
        json!({ "purpose": "enrol", "target": approval, "method": "bank_card", "card": CARD, "card_phone": phone });
    let (status, started) = post(c, &bearer, "/v1/mobile/proofs", card).await;
    assert_eq!(status, 201, "{started}");
    let enrol = json!({ "approval_id": approval, "proof_id": started["proof_id"], "code": last_code(c.ca, phone),
                        "pin": "246810" });
    let (status, credential) = post(c, &bearer, "/v1/mobile/credentials", enrol).await;
    assert_eq!(status, 201, "{credential}");
    credential["serial"].as_str().unwrap().to_string()
}

/// The issued certificate's subject as OpenSSL prints it.
async fn subject_of(ca: &TestCa, serial: &str) -> String {
    let cert = Client::new(ca, "operator").ok("GET", &format!("/v1/certificates/{serial}"), None, None).await;
    let path = ca.path(&format!("{serial}.pem"));
    std::fs::write(&path, cert["pem"].as_str().unwrap_or_else(|| panic!("{cert}"))).unwrap();
    let out = run("openssl", &["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", path.to_str().unwrap()]);
    assert!(out.ok, "{}", out.text);
    out.text
}

/// Pays an order at its payment step with the sandbox wallet.
async fn pays(web: &Client<'_>, id: &str, token: &str) {
    let v = web
        .ok("POST", &format!("/v1/ra/orders/{id}/steps/payment"), Some(token), Some(json!({ "method": "wechat" })))
        .await;
    web.pay(v["payment"]["qr_url"].as_str().unwrap_or_else(|| panic!("{v}"))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_personal_applicant_with_a_passport_is_checked_by_bank_card_and_the_certificate_names_the_document() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    // The carrier and the face check know people by the resident ID only: check failures.
    let (id, token) = personal(&web, "phone").await;
    check_fails(&web, &id, &token, person("passport", "E12345678"), 1).await;
    web.choose_method(&id, &token, "face-sms").await;
    check_fails(&web, &id, &token, person("passport", "E12345678"), 2).await;
    let sms = std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap_or_default();
    assert!(!sms.contains(PHONE), "no face link was texted: {sms}");
    // The bank card's four elements carry the document type: the check passes.
    web.choose_method(&id, &token, "bank-card").await;
    let v = web
        .ok("POST", &format!("/v1/ra/orders/{id}/steps/person"), Some(&token), Some(person("passport", "e1234 5678")))
        .await;
    assert_eq!(v["next_step"], "product", "{v}");
    let shown = v["summary"]["person"].clone();
    assert_eq!((shown["id_type"].as_str(), shown["id_number"].as_str()), (Some("passport"), Some("*******78")), "{v}");
    assert!(!v.to_string().contains("E12345678"), "the number is masked: {v}");
    let product = json!({ "product": "personal-cloud-1y" });
    let v = web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(product)).await;
    // A passport has no back side: its photo page is the one copy asked for (the channel's
    // personal-new rule lists both sides of an ID card).
    assert_eq!(v["materials_required"], json!(["id-front"]), "{v}");
    let (status, v) = web.step(&id, &token, "materials", json!({})).await;
    assert_eq!((status, v["errors"][0]["field"].as_str()), (422, Some("materials.id-front")), "{v}");
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(1), "nothing else is missing: {v}");
    assert_eq!(web.upload(&id, &token, "id-front", PDF).await.0, 201);
    let v = web.ok("POST", &format!("/v1/ra/orders/{id}/steps/materials"), Some(&token), Some(json!({}))).await;
    assert_eq!(v["next_step"], "signature", "the photo page alone completes the materials: {v}");
    let code = web.code(&id, &token, "signature", PHONE, json!({})).await;
    let signed = json!({ "code": code, "accept_terms": true });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/signature"), Some(&token), Some(signed)).await;
    pays(&web, &id, &token).await;
    let v = wait_state(&web, &id, &token, "review").await;
    let kinds: Vec<&str> = v["materials"].as_array().unwrap().iter().filter_map(|m| m["kind"].as_str()).collect();
    assert_eq!(kinds, ["id-front"], "the officer reviews the photo page: {v}");
    reviewer.ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(json!({ "approve": true }))).await;
    // Face refused, bank card passes (the sandbox's bank-card rule, given the passport).
    let serial = enrols_by_bank_card(&web, PHONE).await;
    let subject = subject_of(&ca, &serial).await;
    assert!(subject.contains("serialNumber=passport:E12345678"), "the document with its type: {subject}");
    let v = wait_state(&web, &id, &token, "completed").await;
    assert_eq!(v["serial"], serial.as_str());
    assert!(
        v["summary"].to_string().contains("passport") && !v.to_string().contains("E12345678"),
        "masked in every view: {v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_personal_applicant_with_a_taiwan_permit_goes_offline_and_an_officer_approves_the_papers() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let (id, token) = personal(&web, "phone").await;
    let (status, v) = web.step(&id, &token, "person", person("taiwan-permit", "1234567")).await;
    assert_eq!((status, v["errors"][0]["code"].as_str()), (422, Some("id_number.format")), "its own rules: {v}");
    check_fails(&web, &id, &token, person("taiwan-permit", "12345678"), 1).await;
    let v = web.ok("POST", &format!("/v1/ra/orders/{id}/offline"), Some(&token), None).await;
    assert_eq!((v["state"].as_str(), v["next_step"].as_str()), (Some("offline"), Some("product")), "{v}");
    // The printed form names the document.
    let form = web.http.get(format!("{}/v1/ra/orders/{id}/form", web.admin)).header("x-order-token", &token);
    let pdf = form.send().await.unwrap().bytes().await.unwrap();
    let path = ca.path(&format!("{id}-form.pdf"));
    std::fs::write(&path, &pdf).unwrap();
    let text = std::process::Command::new("pdftotext").arg(&path).arg("-").output().expect("pdftotext runs");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Taiwan") && text.contains("12345678"), "{text}");
    let product = json!({ "product": "personal-cloud-1y" });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(product)).await;
    pays(&web, &id, &token).await;
    let form_code = json!({ "form_code": v_code(&web, &id, &token).await });
    assert_eq!(reviewer.ok("POST", &format!("/v1/orders/{id}/papers"), None, Some(form_code)).await["state"], "review");
    reviewer.ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(json!({ "approve": true }))).await;
    let serial = enrols_by_bank_card(&web, PHONE).await;
    let subject = subject_of(&ca, &serial).await;
    assert!(subject.contains("serialNumber=taiwan-permit:12345678"), "{subject}");
    assert_eq!(wait_state(&web, &id, &token, "completed").await["serial"], serial.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organisations_agent_with_a_passport_is_still_refused() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let (id, token) = web.create("org-new").await;
    web.choose_method(&id, &token, "phone").await;
    web.company_checked(&id, &token, company(CREDIT, REP)).await;
    let mut a = agent();
    a["id_type"] = json!("passport");
    a["id_number"] = json!("E12345678");
    let (status, v) = web.step(&id, &token, "agent", a).await;
    assert_eq!((status, v["errors"][0]["code"].as_str()), (422, Some("id_type.resident_only")), "{v}");
    assert_eq!(v["errors"][0]["field"], "agent.id_type", "{v}");
    assert_eq!(web.ok("GET", &format!("/v1/ra/orders/{id}"), Some(&token), None).await["check_failures"], 0);
}

async fn database(ca: &TestCa) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap()
}

/// What of an order row must never change behind an operator's back.
async fn row(pool: &sqlx::AnyPool, id: &str) -> (String, String, i64, i64, Option<i64>) {
    let sql = "SELECT data, state, version, updated_at, paid_at FROM ra_orders WHERE id = $1";
    sqlx::query_as(sql).bind(id).fetch_one(pool).await.unwrap()
}

/// Attacker review of C6: order data this binary cannot read (here written by a newer release
/// with a step it does not know) was read as empty data, and the next save (the payment
/// webhook) wiped the order. Now every read and write of that order is an error and the row
/// stays byte for byte as it was; lists still show the other orders.
#[tokio::test(flavor = "multi_thread")]
async fn an_order_whose_data_cannot_be_read_is_an_error_and_is_never_rewritten() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let operator = Client::new(&ca, "operator");
    let (id, token) = personal(&web, "bank-card").await;
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/person"), Some(&token), Some(person("passport", "E12345678")))
        .await;
    let product = json!({ "product": "personal-cloud-1y" });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(product.clone())).await;
    for kind in ["id-front", "id-back"] {
        assert_eq!(web.upload(&id, &token, kind, PDF).await.0, 201);
    }
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/materials"), Some(&token), Some(json!({}))).await;
    let code = web.code(&id, &token, "signature", PHONE, json!({})).await;
    let signed = json!({ "code": code, "accept_terms": true });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/signature"), Some(&token), Some(signed)).await;
    let payment = json!({ "method": "wechat" });
    let v = web.ok("POST", &format!("/v1/ra/orders/{id}/steps/payment"), Some(&token), Some(payment)).await;
    let qr_url = v["payment"]["qr_url"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();
    // Officers' masked views show the subject key as the document's type and last two characters.
    let masked = operator.ok("GET", &format!("/v1/orders/{id}"), None, None).await;
    assert_eq!(masked["subject_key"], "passport:*******78", "{masked}");
    let pool = database(&ca).await;
    let (data, ..) = row(&pool, &id).await;
    assert!(data.contains(r#""done":["#), "{data}");
    let newer = data.replacen(r#""done":["#, r#""done":["a-step-of-a-newer-release","#, 1);
    sqlx::query("UPDATE ra_orders SET data = $1 WHERE id = $2").bind(&newer).bind(&id).execute(&pool).await.unwrap();
    let before = row(&pool, &id).await;
    // Reads answer an error, not an empty order.
    let order = format!("/v1/ra/orders/{id}");
    assert_eq!(web.call("GET", &order, Some(&token), None).await.0, 500);
    assert_eq!(operator.call("GET", &format!("/v1/orders/{id}"), None, None).await.0, 500);
    // Writes too: the payment webhook and a step, and nothing is saved.
    let paid = web.http.post(&qr_url).send().await.unwrap();
    assert_eq!(paid.status(), 500, "the provider retries once the data is repaired");
    assert_eq!(web.step(&id, &token, "product", product).await.0, 500);
    assert_eq!(row(&pool, &id).await, before, "the row is untouched");
    // A list still answers, the unreadable order without data.
    let listed = operator.ok("GET", "/v1/orders?limit=50", None, None).await;
    let item = listed["items"].as_array().unwrap().iter().find(|o| o["id"] == id.as_str()).cloned();
    assert!(item.is_some_and(|o| o["data"].is_null()), "{listed}");
    assert!(!listed.to_string().contains("E12345678"), "{listed}");
}

/// Attacker review of C6: the micro-deposit proves only the account's name, so a personal
/// applicant could type a victim's passport number with their own account. With a document
/// other than the resident ID it fails as a check failure (counted, offline offered).
#[tokio::test(flavor = "multi_thread")]
async fn a_personal_applicant_with_a_passport_cannot_be_checked_by_a_micro_deposit() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let (id, token) = personal(&web, "bank-account").await;
    let mut body = person("passport", "E12345678");
    body["bank"] = json!({ "account_name": "John Smith", "account_number": "6222020200112233445", "bank": "示例银行" });
    let (status, v) = web.step(&id, &token, "person", body).await;
    assert_eq!(status, 422, "{v}");
    let text = v.to_string();
    assert!(text.contains("bank account") && text.contains("bank card") && text.contains("offline"), "{v}");
    assert_eq!(v["alternatives"], json!(["correct", "offline"]), "{v}");
    let v = web.ok("GET", &format!("/v1/ra/orders/{id}"), Some(&token), None).await;
    assert_eq!(v["check_failures"], 1, "counted, so the offline path is offered: {v}");
    assert!(v["pending_check"].is_null(), "no micro-deposit was started: {v}");
}

/// The passport the holder of the tests below gave, and a resident ID number for the attacks.
const PASSPORT: &str = "E12345678";
const RESIDENT: &str = "110101199003074338";
/// A stranger's phone, and a card the sandbox bank does not have in the holder's name.
const STRANGER: &str = "+8613700137000";
const STRANGERS_CARD: &str = "6222021234560000";

/// A passport holder's personal cloud certificate, applied for online and checked by bank card;
/// the holder enrols by bank card. Returns the serial.
async fn passport_certificate(web: &Client<'_>, reviewer: &Client<'_>) -> String {
    let (id, token) = personal(web, "bank-card").await;
    let v = web
        .ok("POST", &format!("/v1/ra/orders/{id}/steps/person"), Some(&token), Some(person("passport", PASSPORT)))
        .await;
    assert_eq!(v["next_step"], "product", "{v}");
    let product = json!({ "product": "personal-cloud-1y" });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(product)).await;
    for kind in ["id-front", "id-back"] {
        assert_eq!(web.upload(&id, &token, kind, PDF).await.0, 201);
    }
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/materials"), Some(&token), Some(json!({}))).await;
    sign_and_pay(web, &id, &token, PHONE).await;
    wait_state(web, &id, &token, "review").await;
    reviewer.ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(json!({ "approve": true }))).await;
    let serial = enrols_by_bank_card(web, PHONE).await;
    wait_state(web, &id, &token, "completed").await;
    serial
}

fn outbox(ca: &TestCa) -> String {
    std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap_or_default()
}

fn codes_to(ca: &TestCa, phone: &str) -> usize {
    outbox(ca).lines().filter(|l| l.contains(phone) && l.contains("cloudca code")).count()
}

/// The personal bank-card fallback of the order query (F10) for `number` typed as a passport.
fn card_check(number: &str, card: &str, phone: &str) -> Value {
    json!({ "subject": number, "id_type": "passport", "id_number": number, "name": "John Smith", "card": card,
            "phone": phone })
}

/// The passport holder's own bank-card check, both halves: the query session's token.
async fn holder_session(web: &Client<'_>) -> String {
    web.wait_sms_interval();
    let check = card_check(PASSPORT, CARD, PHONE);
    let (status, v) = web.call("POST", "/v1/ra/queries", None, Some(web.with_challenge(check.clone()).await)).await;
    assert_eq!((status, &v), (202, &json!({ "sent_if_on_file": true })));
    let mut opened = check;
    opened["code"] = json!(last_code(web.ca, PHONE));
    let v = web.ok("POST", "/v1/ra/queries", None, Some(opened)).await;
    assert_eq!(v["role"], "legal-rep", "the subject's own check sees all of it: {v}");
    v["token"].as_str().unwrap().to_string()
}

/// The session's certificates.
async fn listed(web: &Client<'_>, session: &str) -> Vec<Value> {
    let r = web.http.get(format!("{}/v1/ra/queries/certificates", web.admin)).header("x-query-token", session);
    let (status, v) = web.send(r).await;
    assert_eq!(status, 200, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The holder as the agent of a service on their certificate.
fn holder_agent(id_type: &str, number: &str, method: &str) -> Value {
    json!({ "legal_rep_in_person": false, "name": "John Smith", "id_type": id_type, "id_number": number,
            "phone": PHONE, "email": "john@example.com", "method": method, "card": CARD, "accept_terms": true })
}

/// An order about the certificate, chosen from the holder's query session and confirmed with
/// the code to the key holder's phone, then the holder as agent checked by bank card (after
/// the refusals an attacker would try). Returns (id, token).
async fn holder_service(
    web: &Client<'_>,
    session: Option<&str>,
    flow: &str,
    serial: &str,
    extra: Value,
) -> (String, String) {
    let (id, token) = web.create(flow).await;
    let code = web.code(&id, &token, "certificate", PHONE, json!({ "serial": serial })).await;
    let mut body = json!({ "serial": serial, "code": code });
    if let Some(session) = session {
        body["query_token"] = json!(session);
    }
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, v) = web.step(&id, &token, "certificate", body).await;
    assert_eq!(status, 200, "{v}");
    if flow == "renewal" {
        // A renewal checks the holder's data again (§3.1): the bank card, with the passport.
        web.choose_method(&id, &token, "bank-card").await;
        let v = web
            .ok("POST", &format!("/v1/ra/orders/{id}/steps/person"), Some(&token), Some(person("passport", PASSPORT)))
            .await;
        assert_eq!(v["next_step"], "agent", "{v}");
    }
    // Another passport number, or the type dropped, is not the holder.
    let (status, v) = web.step(&id, &token, "agent", holder_agent("passport", "E87654321", "bank-card")).await;
    assert_eq!(status, 422, "only the holder: {v}");
    assert!(v.to_string().contains("holder"), "{v}");
    let (status, v) = web.step(&id, &token, "agent", holder_agent("resident-id", RESIDENT, "bank-card")).await;
    assert_eq!(status, 422, "a resident ID is not the certificate's passport: {v}");
    assert!(v.to_string().contains("holder"), "{v}");
    // The carrier and the face check know people by the resident ID only.
    for method in ["phone", "face-sms"] {
        let (status, v) = web.step(&id, &token, "agent", holder_agent("passport", PASSPORT, method)).await;
        assert_eq!(status, 422, "{method}: {v}");
        assert!(v.to_string().contains("bank card"), "{method}: {v}");
    }
    let (status, v) = web.step(&id, &token, "agent", holder_agent("passport", PASSPORT, "bank-card")).await;
    assert_eq!(status, 200, "{v}");
    (id, token)
}

async fn status_of(web: &Client<'_>, serial: &str) -> String {
    let v = Client::new(web.ca, "operator").ok("GET", &format!("/v1/certificates/{serial}"), None, None).await;
    v["status"].as_str().unwrap().to_string()
}

/// The gap C6 left: a holder whose certificate names a passport could use no certificate
/// service (agents gave the resident ID only) and could not find their orders. Now the query
/// takes the document's type with its number, the holder's own bank card opens it, and the
/// holder, as agent with their passport and bank card, renews, unlocks and revokes.
#[tokio::test(flavor = "multi_thread")]
async fn a_passport_holder_renews_unlocks_and_revokes_after_their_bank_card_check() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let first = passport_certificate(&web, &reviewer).await;

    // The order query finds the holder's orders by the passport and their bank card.
    let session = holder_session(&web).await;
    let r = web.http.get(format!("{}/v1/ra/queries/orders", web.admin)).header("x-query-token", &session);
    let (status, orders) = web.send(r).await;
    assert_eq!(status, 200, "{orders}");
    assert_eq!(orders["items"].as_array().map(Vec::len), Some(1), "{orders}");
    assert!(!orders.to_string().contains(PASSPORT), "masked: {orders}");
    let items = listed(&web, &session).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["serial"], first.as_str());
    let services = items[0]["services"].to_string();
    assert!(services.contains("renewal") && services.contains("revocation"), "{services}");

    // Renewal: the key moves to the new certificate, which names the passport again.
    let (id, token) = holder_service(&web, Some(&session), "renewal", &first, json!({})).await;
    let product = json!({ "product": "personal-cloud-1y" });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(product)).await;
    sign_and_pay(&web, &id, &token, PHONE).await;
    let v = wait_state(&web, &id, &token, "completed").await;
    let renewed = v["serial"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();
    assert_ne!(renewed, first);
    assert!(subject_of(&ca, &renewed).await.contains("serialNumber=passport:E12345678"));

    // PIN unlock of the renewed certificate's cloud key: the key holder's own, so not through
    // the session (as for a resident ID's holder) but with the code to the key holder's phone.
    assert!(!Value::from(listed(&web, &session).await).to_string().contains("unlock"), "the session offers no unlock");
    let (id, token) = holder_service(&web, None, "unlock", &renewed, json!({})).await;
    wait_state(&web, &id, &token, "completed").await;
    assert_eq!(crate::ra::count(&ca, "credential.unlocked"), 1);

    // Revocation: reviewed, then revoked.
    let (id, token) =
        holder_service(&web, Some(&session), "revocation", &renewed, json!({ "reason": "keyCompromise" })).await;
    for kind in ["id-front", "id-back"] {
        assert_eq!(web.upload(&id, &token, kind, PDF).await.0, 201);
    }
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/materials"), Some(&token), Some(json!({}))).await;
    sign_and_pay(&web, &id, &token, PHONE).await;
    reviewer.ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(json!({ "approve": true }))).await;
    wait_state(&web, &id, &token, "completed").await;
    assert_eq!(status_of(&web, &renewed).await, "revoked");
}

/// Attacker review of the services for another document: knowing a passport holder's number
/// is not enough. A stranger's card (not the holder's at the bank) or a real-name phone check
/// (carriers know no passports) sends no code and answers as the holder's own check does; a
/// resident ID number typed as a passport, or a passport number typed as a resident ID, is
/// refused by its type's rule and matches nobody; a passport nobody applied with answers alike.
#[tokio::test(flavor = "multi_thread")]
async fn knowing_a_passport_holders_number_opens_nothing_without_their_bank_card() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    passport_certificate(&web, &reviewer).await;
    let before = codes_to(&ca, PHONE);
    let same = json!({ "sent_if_on_file": true });

    // A stranger with the number and a card the bank does not have in the holder's name.
    let stranger = card_check(PASSPORT, STRANGERS_CARD, STRANGER);
    let (status, v) = web.call("POST", "/v1/ra/queries", None, Some(web.with_challenge(stranger.clone()).await)).await;
    assert_eq!((status, &v), (202, &same));
    // The real-name phone check (F9), the holder's own phone included: bank card only.
    for phone in [STRANGER, PHONE] {
        let mut by_phone = card_check(PASSPORT, CARD, phone);
        by_phone.as_object_mut().unwrap().remove("card");
        let (status, v) = web.call("POST", "/v1/ra/queries", None, Some(web.with_challenge(by_phone).await)).await;
        assert_eq!((status, &v), (202, &same), "{phone}");
    }
    // A passport nobody applied with, with a card the bank accepts: the same answer.
    let unknown = card_check("E99999991", CARD, STRANGER);
    let (status, v) = web.call("POST", "/v1/ra/queries", None, Some(web.with_challenge(unknown.clone()).await)).await;
    assert_eq!((status, &v), (202, &same));
    assert_eq!(codes_to(&ca, STRANGER), 0, "nothing was texted to the stranger");
    assert_eq!(codes_to(&ca, PHONE), before, "nor to the holder");
    for mut guess in [stranger, unknown] {
        guess["code"] = json!("123456");
        assert_eq!(web.call("POST", "/v1/ra/queries", None, Some(guess)).await.0, 401, "a wrong code either way");
    }

    // One number, one document: a resident ID number typed as a passport is refused by the
    // passport's rule, a passport number typed as a resident ID by the resident ID's.
    let as_passport = json!({ "subject": RESIDENT, "id_type": "passport", "phone": STRANGER });
    let (status, v) = web.call("POST", "/v1/ra/queries/code", None, Some(as_passport)).await;
    assert_eq!((status, v["errors"][0]["code"].as_str()), (422, Some("id_number.resident_id")), "{v}");
    let as_resident = json!({ "subject": PASSPORT, "phone": PHONE });
    assert_eq!(web.call("POST", "/v1/ra/queries/code", None, Some(as_resident)).await.0, 422);
    let typed = card_check(RESIDENT, CARD, STRANGER);
    let (status, v) = web.call("POST", "/v1/ra/queries", None, Some(web.with_challenge(typed).await)).await;
    assert_eq!(status, 422, "{v}");
    // The holder's phone on file with the passport typed as another document: nobody.
    web.wait_sms_interval();
    let permit = json!({ "subject": "12345678", "id_type": "taiwan-permit", "phone": PHONE });
    assert_eq!(web.call("POST", "/v1/ra/queries/code", None, Some(permit)).await.0, 202);
    assert_eq!(codes_to(&ca, PHONE), before, "no code for a document the holder did not give");
    // The holder's own check still works (the refusals above did not lock it).
    let session = holder_session(&web).await;
    assert_eq!(listed(&web, &session).await.len(), 1);
}

/// Attacker review of C6 services: the per-subject limit on the paid bank-card fallback counts
/// the subject as the RA reads it. A passport number is read with its spaces removed and in
/// upper case, so `E1234 5678`, `E 12345678` or `passport: E12345678` typed as a resident ID are
/// the holder's passport: once the holder's tries are used up, none of those spellings buys
/// another bank check (or another guess at their card).
#[tokio::test(flavor = "multi_thread")]
async fn a_passport_number_spelled_with_spaces_shares_the_per_subject_limit() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    // The default limit: 10 tries per subject a minute.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let check = card_check(PASSPORT, STRANGERS_CARD, STRANGER);
        statuses.push(web.call("POST", "/v1/ra/queries", None, Some(web.with_challenge(check).await)).await.0);
    }
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let check = card_check(PASSPORT, STRANGERS_CARD, STRANGER);
    let (status, v) = web.call("POST", "/v1/ra/queries", None, Some(web.with_challenge(check).await)).await;
    assert_eq!(status, 429, "the holder's tries are used up: {v}");
    let spellings = [
        card_check("E1234 5678", STRANGERS_CARD, STRANGER),
        card_check("E 12345678", STRANGERS_CARD, STRANGER),
        json!({ "subject": "passport: E12345678", "id_number": "passport:E12345678", "name": "John Smith",
                "card": STRANGERS_CARD, "phone": STRANGER }),
    ];
    for spelled in spellings {
        let (status, v) =
            web.call("POST", "/v1/ra/queries", None, Some(web.with_challenge(spelled.clone()).await)).await;
        assert_eq!(status, 429, "{spelled}: the same passport, the same limit: {v}");
    }
}

/// Attacker review of C6 services: the holder of a passport certificate cannot use an
/// information change to get a certificate naming another document (someone else's passport,
/// or a resident ID): the change keeps the document's type and number.
#[tokio::test(flavor = "multi_thread")]
async fn a_passport_holders_change_order_keeps_their_document() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let serial = passport_certificate(&web, &reviewer).await;
    let session = holder_session(&web).await;
    let (id, token) = web.create("change").await;
    let code = web.code(&id, &token, "certificate", PHONE, json!({ "serial": serial })).await;
    let body = json!({ "serial": serial, "code": code, "query_token": session });
    let (status, v) = web.step(&id, &token, "certificate", body).await;
    assert_eq!(status, 200, "{v}");
    web.choose_method(&id, &token, "bank-card").await;
    for (id_type, number) in [("passport", "E87654321"), ("resident-id", RESIDENT), ("hk-macao-permit", "H12345678")] {
        let (status, v) = web.step(&id, &token, "person", person(id_type, number)).await;
        assert_eq!(status, 422, "{id_type} {number}: {v}");
        assert!(v.to_string().contains("keeps the identity document"), "{v}");
    }
    let v = web
        .ok("POST", &format!("/v1/ra/orders/{id}/steps/person"), Some(&token), Some(person("passport", "e1234 5678")))
        .await;
    assert_eq!(v["next_step"], "agent", "the holder's own passport, however spelled: {v}");
}

/// Attacker review of C6 services: a credit code sent with a document type (or typed after a
/// `passport:` prefix) is a clear 422 on the field, not a passport nobody has answered "sent
/// if on file"; without the type it is the organisation's query as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_credit_code_with_a_document_type_is_refused() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let typed = [
        json!({ "subject": CREDIT, "id_type": "passport", "phone": REP }),
        json!({ "subject": format!("passport:{CREDIT}"), "phone": REP }),
    ];
    for body in typed {
        let (status, v) = web.call("POST", "/v1/ra/queries/code", None, Some(body.clone())).await;
        assert_eq!((status, v["errors"][0]["code"].as_str()), (422, Some("id_type.credit_code")), "{body}: {v}");
    }
    let fallback = json!({ "subject": CREDIT, "id_type": "passport", "id_number": PASSPORT, "name": "John Smith",
                           "card": CARD, "phone": REP });
    let (status, v) = web.call("POST", "/v1/ra/queries", None, Some(web.with_challenge(fallback).await)).await;
    assert_eq!((status, v["errors"][0]["code"].as_str()), (422, Some("id_type.credit_code")), "{v}");
    // A document type that does not parse is refused by the body's own reading.
    let unknown = json!({ "subject": PASSPORT, "id_type": "PASSPORT", "phone": REP });
    let (status, v) = web.call("POST", "/v1/ra/queries/code", None, Some(unknown)).await;
    assert_eq!(status, 422, "{v}");
    let plain = json!({ "subject": CREDIT, "phone": REP });
    assert_eq!(web.call("POST", "/v1/ra/queries/code", None, Some(plain)).await.0, 202);
}
