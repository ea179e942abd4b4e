//! Security events on the audit log, rate-bounded (issue 16 point 4, review L9): failed SMS
//! codes of every purpose, refused unlocks, refused claims of authentic QR codes, payment
//! webhooks that fail verification, and officers' reads of personal data and materials. Each
//! test causes the event through the real API (or the service the API calls), finds exactly
//! one entry with who caused it and no secret in it, causes it again and again within the
//! minute and still finds one, and checks the chain still verifies.

use serde_json::{json, Value};

use crate::common::*;
use crate::signing::{approve_phone, enrolled, open, quick_sms_ca, Api, As, PHONE};
use cloudca::mobile::Purpose;
use cloudca::store::{AuditQuery, Store};

/// Every entry of `kind` as (actor, detail, serial), in chain order.
async fn entries(ca: &TestCa, kind: &str) -> Vec<(String, Value, Option<String>)> {
    let store = Store::open(&ca.config.database).await.expect("store opens");
    let query = AuditQuery { kind: Some(kind.into()), limit: 10_000, ..AuditQuery::default() };
    let found = store.audit_events(&query).await.expect("audit query");
    store.close().await;
    found
        .into_iter()
        .map(|e| (e.record.actor, serde_json::from_str(&e.record.detail).expect("detail is JSON"), e.record.serial))
        .collect()
}

/// The entries of `kind` caused by `actor`.
async fn entries_of(ca: &TestCa, kind: &str, actor: &str) -> Vec<Value> {
    entries(ca, kind).await.into_iter().filter(|(a, _, _)| a == actor).map(|(_, d, _)| d).collect()
}

/// `cloudca audit verify` says intact.
fn chain_intact(ca: &TestCa) {
    let out = cloudca(&["--config", ca.config_path.to_str().unwrap(), "audit", "verify"]);
    assert!(out.ok && out.text.contains("intact"), "{}", out.text);
}

/// None of `secrets` appears anywhere in `detail`.
fn holds_none(detail: &Value, secrets: &[&str]) {
    let text = detail.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} is in the audit entry {text}");
    }
}

/// A code that is not `code`.
fn other_than(code: &str) -> &'static str {
    if code == "123456" {
        "654321"
    } else {
        "123456"
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_sms_codes_of_every_purpose_are_audited_once_a_minute_per_phone_without_the_code() {
    let ca = quick_sms_ca().await;
    let instance = ca.open().await;
    let mobile = &instance.mobile;
    let id_number = "11010519491231002X";
    let cases = [
        (Purpose::Admin, "91350100M000100Y43"),
        (Purpose::Consent, "order-a/7f3e"),
        (Purpose::ApplicationSignature, "order-b"),
        (Purpose::LegalRepAuthorisation, "order-c"),
        (Purpose::OrderQuery, id_number),
        (Purpose::OrderResume, "order-d"),
        (Purpose::IdentityProof, "proof-e"),
    ];
    let mut secrets = Vec::new();
    for (i, (purpose, object)) in cases.iter().enumerate() {
        let phone = format!("+861390013900{i}");
        mobile.send_code(&phone, *purpose, object).await.unwrap();
        // An administrator code goes only to a phone with standing: none is texted here, and
        // every code entered is wrong.
        let sent = if *purpose == Purpose::Admin { String::new() } else { last_code(&ca, &phone) };
        let wrong = other_than(&sent);
        assert!(mobile.check_code(&phone, *purpose, object, wrong).await.is_err());
        secrets.push(wrong.to_string());
        if !sent.is_empty() {
            secrets.push(sent);
        }
    }
    let all = entries(&ca, "sms.code_failed").await;
    assert_eq!(all.len(), cases.len(), "one entry per phone: {all:?}");
    for (i, (purpose, object)) in cases.iter().enumerate() {
        let actor = format!("phone:+861390013900{i}");
        let (_, detail, serial) = all.iter().find(|(a, _, _)| *a == actor).unwrap_or_else(|| panic!("{actor}"));
        assert_eq!(detail["purpose"], purpose.name(), "{detail}");
        assert_eq!(detail["reason"], "wrong", "{detail}");
        assert_eq!(serial, &None);
        if *purpose == Purpose::OrderQuery {
            assert_eq!(detail["object"], "110***********002X", "a person's identifier is masked: {detail}");
        } else {
            assert_eq!(detail["object"], *object, "{detail}");
        }
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).chain([id_number]).collect();
        holds_none(detail, &secrets);
    }

    // Someone guessing at one phone's code: five more failures (malformed, wrong, a spent
    // code) within the minute add nothing; the next minute's entry will carry the count.
    let phone = "+8613900139001";
    for guess in ["12ab", "000000", "999999", "1234567", "000001"] {
        assert!(mobile.check_code(phone, Purpose::Consent, "order-a/7f3e", guess).await.is_err());
    }
    assert_eq!(entries_of(&ca, "sms.code_failed", &format!("phone:{phone}")).await.len(), 1);

    // A failed login is `mobile.login`, refused, held to the same bound.
    let phone = "+8613900139099";
    approve_phone_in_process(&instance, phone).await;
    mobile.send_code(phone, Purpose::Login, "").await.unwrap();
    let sent = last_code(&ca, phone);
    for _ in 0..5 {
        assert!(mobile.login(phone, other_than(&sent)).await.is_err());
    }
    let logins = entries_of(&ca, "mobile.login", &format!("phone:{phone}")).await;
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0]["outcome"], "refused");
    holds_none(&logins[0], &[&sent, other_than(&sent)]);
    // A fresh code (five tries spent the first) still logs in, and that is recorded as before.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    mobile.send_code(phone, Purpose::Login, "").await.unwrap();
    mobile.login(phone, &last_code(&ca, phone)).await.expect("the right code logs in");
    let logins = entries_of(&ca, "mobile.login", &format!("phone:{phone}")).await;
    assert_eq!(logins.iter().filter(|d| d["outcome"] == "ok").count(), 1, "{logins:?}");
    drop(instance);
    chain_intact(&ca);
}

/// A personal approval for `phone` made in process (so login codes are texted to it).
async fn approve_phone_in_process(instance: &cloudca::daemon::Instance, phone: &str) {
    let subject = vec![
        ("C".into(), "CN".into()),
        ("CN".into(), "张三".into()),
        ("serialNumber".into(), "11010519491231002X".into()),
    ];
    instance.custody.create_approval("personal", subject, phone, None, "test").await.expect("approval");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_unlocks_and_wrong_unlock_codes_are_audited_once_a_minute_per_phone() {
    let ca = quick_sms_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let (token, credential, _) = enrolled(&ca, &api, PHONE);
    // Five wrong PINs lock the credential.
    let change = format!("/v1/mobile/credentials/{credential}/pin");
    let wrong_pin = r#"{"old_pin":"111111","new_pin":"135790"}"#;
    let statuses: Vec<String> =
        (0..5).map(|_| api.call(As::Holder(&token), "POST", &change, Some(wrong_pin)).0).collect();
    assert_eq!(statuses.last().map(String::as_str), Some("423"), "{statuses:?}");

    // An unlock by bank card: the code goes to the card's reserved phone.
    let card = "6222021234567890128";
    let card_phone = "+8613700137001";
    let body = json!({ "purpose": "unlock", "target": credential, "method": "bank_card", "card": card, "card_phone": card_phone });
    let (status, started) = api.call(As::Holder(&token), "POST", "/v1/mobile/proofs", Some(&body.to_string()));
    assert_eq!(status, "201", "{started}");
    let proof = started["proof_id"].as_str().unwrap().to_string();
    let code = last_code(&ca, card_phone);
    let unlock = format!("/v1/mobile/credentials/{credential}/unlock");
    let new_pin = "135790";
    let with_wrong_code = json!({ "proof_id": proof, "code": other_than(&code), "new_pin": new_pin }).to_string();
    let with_no_proof = json!({ "proof_id": "0".repeat(32), "new_pin": new_pin }).to_string();
    let (status, problem) = api.call(As::Holder(&token), "POST", &unlock, Some(&with_wrong_code));
    assert!(status.starts_with('4'), "{status} {problem}");

    let refused = entries_of(&ca, "pin.reset_refused", &format!("phone:{PHONE}")).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["purpose"], "unlock");
    assert_eq!(refused[0]["credential"], credential.as_str());
    assert!(refused[0]["reason"].as_str().unwrap().contains("code"), "{}", refused[0]);
    let codes = entries_of(&ca, "sms.code_failed", &format!("phone:{card_phone}")).await;
    assert_eq!(codes.len(), 1, "{codes:?}");
    assert_eq!(codes[0]["purpose"], "identity-proof");
    assert_eq!(codes[0]["object"], proof.as_str());

    // Hammering the unlock (wrong codes, a proof that does not exist) within the minute adds
    // no entry.
    for _ in 0..3 {
        for body in [&with_wrong_code, &with_no_proof] {
            let (status, problem) = api.call(As::Holder(&token), "POST", &unlock, Some(body));
            assert!(status.starts_with('4'), "refused all the same: {status} {problem}");
        }
    }
    let refused = entries_of(&ca, "pin.reset_refused", &format!("phone:{PHONE}")).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(entries_of(&ca, "sms.code_failed", &format!("phone:{card_phone}")).await.len(), 1);
    for detail in refused.iter().chain(&codes) {
        holds_none(detail, &[&code, other_than(&code), new_pin, card]);
    }
    chain_intact(&ca);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_claims_of_authentic_qr_codes_are_audited_once_a_minute_per_phone_and_forgeries_not_at_all() {
    let ca = quick_sms_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let (token, _, _) = enrolled(&ca, &api, PHONE);
    let (session, start, secret) = open(&api, b"tender", "raw");
    let opened_at = std::time::Instant::now();
    let claim = "/v1/mobile/sessions/claim";

    // A forged code is noise anyone can send: refused, not recorded.
    let forged = format!(r#"{{"payload":"cloudca1.{start}.0.{}"}}"#, "0".repeat(32));
    assert_eq!(api.call(As::Holder(&token), "POST", claim, Some(&forged)).0, "400");
    assert!(entries(&ca, "signing.claim_refused").await.is_empty());

    // An authentic code half a minute out of step (a relayed or replayed picture): refused,
    // recorded once however often it is tried.
    let at = |secs: u64| cloudca::signing::qr::payload(&start, &secret, secs);
    let stale = at(opened_at.elapsed().as_secs() + 30);
    for _ in 0..4 {
        let body = format!(r#"{{"payload":"{stale}"}}"#);
        assert_eq!(api.call(As::Holder(&token), "POST", claim, Some(&body)).0, "400");
    }
    let mine = entries_of(&ca, "signing.claim_refused", &format!("phone:{PHONE}")).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["reason"], "stale");
    assert_eq!(mine[0]["session"], session.as_str());
    assert_eq!(mine[0]["platform"], "dev-platform");
    let stale_code = stale.rsplit('.').next().unwrap();
    holds_none(&mine[0], &[stale_code, &start]);

    // The holder claims; a second phone replaying that picture is refused and recorded once.
    let current = format!(r#"{{"payload":"{}"}}"#, at(opened_at.elapsed().as_secs()));
    assert_eq!(api.call(As::Holder(&token), "POST", claim, Some(&current)).0, "200");
    let other_phone = "+8613900139000";
    approve_phone(&ca, other_phone);
    let other = api.login(other_phone);
    for _ in 0..3 {
        assert_ne!(api.call(As::Holder(&other), "POST", claim, Some(&current)).0, "200");
    }
    let theirs = entries_of(&ca, "signing.claim_refused", &format!("phone:{other_phone}")).await;
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0]["reason"], "session claimed");
    assert_eq!(entries_of(&ca, "signing.claim_refused", &format!("phone:{PHONE}")).await.len(), 1);
    chain_intact(&ca);
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_webhooks_that_fail_verification_are_audited_once_a_minute_per_address() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    // No client certificate: a webhook comes from anyone on the network.
    let root = std::fs::read(ca.config_path.parent().unwrap().join("tls/operator-ca.pem")).unwrap();
    let http = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/v1/payments/webhook", ca.config.listeners.api.port());
    let body = json!({ "event_id": "evt-forged-1", "provider_ref": "wx0123", "order_id": "o-1", "amount_fen": 1, "status": "paid" })
        .to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let forged_signature = "ab".repeat(32);
    let post = |ts: i64, signature: String| {
        http.post(&url)
            .header("x-pay-timestamp", ts.to_string())
            .header("x-pay-signature", signature)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    assert_eq!(post(now, forged_signature.clone()).await.unwrap().status(), 401);
    let refused = entries(&ca, "payment.webhook_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    let (actor, detail, _) = &refused[0];
    assert_eq!(actor, "ip:127.0.0.1", "who sent it");
    assert!(detail["reason"].as_str().unwrap().contains("bad webhook signature"), "{detail}");
    assert_eq!(detail["bytes"], body.len());

    // Forgeries and an authentic but stale delivery, again and again: still one entry.
    let secret = std::fs::read(ca.config.data_dir.join("payment-webhook.secret")).unwrap();
    let stale = cloudca::providers::payment::sign_webhook(&secret, now - 3600, body.as_bytes());
    for _ in 0..4 {
        assert_eq!(post(now, forged_signature.clone()).await.unwrap().status(), 401);
        assert_eq!(post(now - 3600, stale.clone()).await.unwrap().status(), 401);
    }
    let refused = entries(&ca, "payment.webhook_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    holds_none(&refused[0].1, &[&forged_signature, &stale, "evt-forged-1", "wx0123"]);
    chain_intact(&ca);
}

#[tokio::test(flavor = "multi_thread")]
async fn officers_reads_of_identity_data_and_materials_are_audited_once_a_minute_per_officer_and_thing_read() {
    let ca = crate::ra::ra_ca().await;
    // A personal certificate (name and ID number in its subject) and a pending seal request
    // (the seal's image, the requesting holder's phone), made before the daemon starts.
    let (_, serial) = issue_cli(&ca, "holder", "personal", PERSONAL_SUBJECT);
    let serial = cloudca::ca::serial::parse(&serial).expect("a hex serial");
    let credit = "91350100M000100Y43";
    let seal_phone = "+8613600136000";
    let request = {
        let instance = ca.open().await;
        let clock = cloudca::clock::SystemClock;
        let audit =
            cloudca::store::AuditRecord::new(&clock, "org.admin.claimed", "test", None, json!({ "org": credit }));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(instance.store.claim_org_admin(credit, seal_phone, now, &audit).await.unwrap());
        let png = cloudca::signing::qr::render_png("seal", 2).unwrap();
        instance.seals.request(seal_phone, credit, "合同专用章", png, None).await.expect("seal request").id
    };
    let _daemon = Daemon::start(&ca).await;
    let web = crate::ra::Client::new(&ca, "web-front");
    let reviewer = crate::ra::Client::new(&ca, "reviewer");
    let operator = crate::ra::Client::new(&ca, "operator");
    let (order, _) = crate::ra::personal_signed(&web, "+8613900139010", crate::ra::AGENT_ID, "personal-cloud-1y").await;
    let listed = reviewer.ok("GET", "/v1/orders", None, None).await;
    let item = listed["items"].as_array().unwrap().iter().find(|o| o["id"] == order.as_str()).unwrap().clone();
    let href = item["materials"][0]["href"].as_str().unwrap().to_string();

    // Each read served three times within the minute: one entry per officer and thing read.
    for _ in 0..3 {
        let whole = reviewer.ok("GET", &format!("/v1/orders/{order}"), None, None).await;
        assert_eq!(whole["data"]["person"]["id_number"], crate::ra::AGENT_ID, "the reviewer reads it whole");
        assert_eq!(reviewer.call("GET", &href, None, None).await.0, 200);
        let found =
            operator.ok("GET", &format!("/v1/certificates?identifier={}", "11010519491231002X"), None, None).await;
        assert_eq!(found["items"][0]["serial"], serial.as_str(), "{found}");
        operator.ok("GET", &format!("/v1/certificates/{serial}"), None, None).await;
        let pending = reviewer.ok("GET", "/v1/seal-requests", None, None).await;
        assert_eq!(pending["items"][0]["id"], request.as_str(), "{pending}");
    }
    let reads = entries(&ca, "order.identity_read").await;
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert!(reads[0].0.starts_with("reviewer:"), "{reads:?}");
    assert_eq!(reads[0].1["order"], order.as_str());
    let materials = entries(&ca, "order.material_read").await;
    assert_eq!(materials.len(), 1, "{materials:?}");
    assert_eq!(materials[0].1["order"], order.as_str());
    let certificates = entries(&ca, "certificate.identity_read").await;
    assert_eq!(certificates.len(), 2, "the search and the certificate: {certificates:?}");
    assert!(certificates.iter().all(|(actor, _, _)| actor.starts_with("operator:")), "{certificates:?}");
    let search = certificates.iter().find(|(_, d, _)| d.get("search").is_some()).expect("the search");
    assert_eq!(search.1["search"]["identifier"], "110***********002X", "what was looked up, masked");
    assert_eq!(search.1["results"], 1);
    let shown = certificates.iter().find(|(_, _, s)| s.as_deref() == Some(serial.as_str()));
    assert!(shown.is_some(), "the certificate read names its serial: {certificates:?}");
    let seals = entries(&ca, "seal.requests_read").await;
    assert_eq!(seals.len(), 1, "{seals:?}");
    assert!(seals[0].0.starts_with("reviewer:"));
    assert_eq!(seals[0].1["requests"], json!([request]));
    holds_none(&seals[0].1, &[seal_phone]);
    for (_, detail, _) in reads.iter().chain(&materials) {
        holds_none(detail, &[crate::ra::AGENT_ID, "+8613900139010"]);
    }

    // Another officer's read is their own entry.
    let second = crate::ra::Client::new(&ca, "auditor");
    second.ok("GET", &format!("/v1/certificates/{serial}"), None, None).await;
    let certificates = entries(&ca, "certificate.identity_read").await;
    assert_eq!(certificates.len(), 3, "{certificates:?}");
    chain_intact(&ca);
}
