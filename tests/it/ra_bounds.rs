//! SMS and uploads are bounded (issue 15 point 7; security review M7, M12), each attack tried
//! through the real listeners, on SQLite and (in the suite's PostgreSQL pass) PostgreSQL:
//! SMS pumping to foreign numbers, login codes texted to strangers, a flood that the global
//! hourly budget stops across two daemons, SMS bombing through face-check links, and an
//! applicant filling the database by uploading again and again.

use serde_json::{json, Value};

use crate::admin::Admin;
use crate::common::*;
use crate::ra::Client;

const PERSONAL: &str = r#"[["C","CN"],["CN","张三"],["serialNumber","11010519491231002X"]]"#;

/// A test CA with `custody` keys appended and `ra` keys put at the top of its `[ra]` section.
async fn bounded_ca(custody: &str, ra: &str) -> TestCa {
    let mut ca = TestCa::new().await;
    let mut text = std::fs::read_to_string(&ca.config_path).unwrap();
    text = text.replace("[ra]\n", &format!("[ra]\n{ra}"));
    text.push_str(&format!("\n[custody]\n{custody}"));
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    ca
}

/// The sandbox outbox's texts to `phone`.
fn texts_to(ca: &TestCa, phone: &str) -> Vec<String> {
    let outbox = std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap_or_default();
    outbox
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["phone"] == phone || l["to"] == phone)
        .map(|l| l["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every text in the sandbox outbox.
fn all_texts(ca: &TestCa) -> usize {
    let outbox = std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap_or_default();
    outbox.lines().count()
}

/// `POST /v1/mobile/sms` on a daemon's api listener: (status, body).
async fn ask_code(ca: &TestCa, phone: &str) -> (u16, Value) {
    let dir = ca.config_path.parent().unwrap().join("tls");
    let root = reqwest::Certificate::from_pem(&std::fs::read(dir.join("operator-ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder().no_proxy().use_rustls_tls().add_root_certificate(root).build().unwrap();
    let url = format!("https://localhost:{}/v1/mobile/sms", ca.config.listeners.api.port());
    let response = client.post(url).json(&json!({ "phone": phone })).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// An operator approval for `phone`: from now on the phone has standing to log in.
fn approve(ca: &TestCa, phone: &str) {
    let body = format!(r#"{{"profile":"personal","phone":"{phone}","subject":{PERSONAL}}}"#);
    let approval = Admin::new(ca).json("operator", "POST", "/v1/approvals", Some(&body));
    assert!(approval["id"].is_string(), "{approval}");
}

fn audited(ca: &TestCa, kind: &str) -> usize {
    let out = cloudca(&["--config", ca.config_path.to_str().unwrap(), "audit", "list", "--kind", kind]);
    out.text.lines().filter(|l| l.contains(kind)).count()
}

async fn metric(daemon: &Daemon, name: &str, label: &str) -> u64 {
    let text = http().get(format!("{}/metrics", daemon.metrics)).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.contains(name) && l.contains(label) && !l.starts_with('#'));
    line.and_then(|l| l.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// SMS pumping: a client asks for login codes to a premium-rate foreign number, hoping the CA
/// pays the carrier for each. Only mainland numbers (the configured list) can be texted; the
/// refusal is a clear 400, counted and audited, and nothing reaches the SMS gateway.
#[tokio::test(flavor = "multi_thread")]
async fn a_login_code_to_a_foreign_number_is_refused_and_not_texted() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let foreign = "+447700900123";
    let (status, body) = ask_code(&ca, foreign).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["title"].as_str().unwrap_or_default().contains("+86"), "{body}");
    assert!(texts_to(&ca, foreign).is_empty(), "nothing was texted abroad");
    assert!(metric(&daemon, "sms_refused_total", "country").await >= 1);
    assert!(audited(&ca, "sms.refused") >= 1);
}

/// SMS bombing and enumeration: a stranger asks for login codes to someone's mainland phone
/// that has nothing to log in to. The answer is exactly the one a holder's phone gets (202,
/// then 429 inside the interval), so it tells nobody who is a holder, but no SMS is sent; the
/// refusal is counted and audited. A holder (an approval waiting for them) still gets codes.
#[tokio::test(flavor = "multi_thread")]
async fn a_login_code_to_a_phone_with_no_approval_or_credential_is_answered_alike_but_not_sent() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let (holder, stranger) = ("+8613800138000", "+8613911112222");
    approve(&ca, holder);

    let known = ask_code(&ca, holder).await;
    let unknown = ask_code(&ca, stranger).await;
    assert_eq!(known.0, 202, "{}", known.1);
    assert_eq!(unknown, known, "the same answer whether or not the phone is a holder's");
    assert_eq!(texts_to(&ca, holder).len(), 1, "the holder got their code");
    assert!(texts_to(&ca, stranger).is_empty(), "the stranger's phone got nothing");

    // Inside the send interval both are held back alike.
    let (known, unknown) = (ask_code(&ca, holder).await, ask_code(&ca, stranger).await);
    assert_eq!((known.0, unknown.0), (429, 429));
    // Alike but for the seconds left, which the two requests may see a second apart.
    let without_seconds = |v: &serde_json::Value| v["title"].as_str().unwrap_or_default().replace(char::is_numeric, "");
    assert_eq!(without_seconds(&known.1), without_seconds(&unknown.1));

    // No code the stranger's phone never received logs anyone in.
    let api = crate::signing::Api { ca: &ca };
    let body = format!(r#"{{"phone":"{stranger}","code":"000000"}}"#);
    assert_eq!(api.call(crate::signing::As::Nobody, "POST", "/v1/mobile/login", Some(&body)).0, "401");

    assert!(metric(&daemon, "sms_refused_total", "no_standing").await >= 1);
    assert_eq!(audited(&ca, "sms.refused"), 1, "the refusal is on record");
}

/// A flood spread over many holders' phones and two daemons: every send is within its
/// phone's limits, but the CA's hourly SMS budget (3 here) is shared through the database, so
/// the fourth SMS is refused on either daemon, the circuit stays open (every phone gets the
/// same 503, known or not), and the spent budget is logged, counted and audited.
#[tokio::test(flavor = "multi_thread")]
async fn the_hourly_sms_budget_stops_sending_across_two_daemons() {
    let ca = bounded_ca("sms_total_per_hour = 3\n", "").await;
    let twin = ca.twin();
    let first = Daemon::start(&ca).await;
    let second = Daemon::start(&twin).await;
    let phones = ["+8613800000001", "+8613800000002", "+8613800000003", "+8613800000004"];
    for phone in phones {
        approve(&ca, phone);
    }
    assert_eq!(ask_code(&ca, phones[0]).await.0, 202);
    assert_eq!(ask_code(&twin, phones[1]).await.0, 202);
    assert_eq!(ask_code(&ca, phones[2]).await.0, 202);
    assert_eq!(all_texts(&ca), 3);

    for daemon_ca in [&twin, &ca] {
        let (status, body) = ask_code(daemon_ca, phones[3]).await;
        assert_eq!(status, 503, "the budget is spent on every daemon: {body}");
    }
    let stranger = ask_code(&ca, "+8613911112222").await;
    assert_eq!(stranger.0, 503, "a stranger's phone gets the same answer while the circuit is open");
    assert_eq!(all_texts(&ca), 3, "no fourth SMS went out");
    let refused =
        metric(&first, "sms_refused_total", "budget").await + metric(&second, "sms_refused_total", "budget").await;
    assert!(refused >= 3, "{refused}");
    assert!(audited(&ca, "sms.budget_spent") >= 1, "the open circuit is on record");
}

/// SMS bombing through face checks: an applicant redoes the agent step with a face check by
/// SMS link, again and again, each time texting the agent's phone. The links count in the
/// phone's limits like codes (3 an hour here): the fourth redo is refused with nothing
/// texted, and the phone's code requests are held back too.
#[tokio::test(flavor = "multi_thread")]
async fn face_check_links_count_in_the_phones_limit() {
    let ca = bounded_ca("sms_min_interval_seconds = 0\nsms_per_hour = 3\n", "face_seconds = 3600\n").await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let victim = "+8613700137000";
    let (id, token) = web.create("org-new").await;
    let step = |name: &'static str, body: Value| {
        let (id, token, web) = (&id, &token, &web);
        async move { web.call("POST", &format!("/v1/ra/orders/{id}/steps/{name}"), Some(token), Some(body)).await }
    };
    assert_eq!(step("verification", json!({ "method": "phone", "accept_terms": true })).await.0, 200);
    let company = json!({ "name": "福建示例科技有限公司", "credit_code": "91350100M000100Y43",
                          "legal_rep": { "name": "张三", "id_number": "11010519491231002X", "phone": "+8613800138000" } });
    assert_eq!(step("company", company.clone()).await.0, 200);
    let code = json!({ "code": last_code(&ca, "+8613800138000") });
    assert_eq!(step("subject-check", code).await.0, 200);
    let agent = json!({ "legal_rep_in_person": false, "name": "李四", "id_number": "110101199003074338",
                        "phone": victim, "email": "lisi@example.com", "method": "face-sms" });
    for round in 0..3 {
        let (status, v) = step("agent", agent.clone()).await;
        assert_eq!(status, 200, "round {round}: {v}");
    }
    assert_eq!(texts_to(&ca, victim).len(), 3);
    // One order texts three links at most, whatever the phone.
    let (status, v) = step("agent", agent.clone()).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["title"].as_str().unwrap_or_default().contains("face-check links"), "{v}");
    // Another order for the same phone meets the phone's limit.
    let (other, other_token) = web.create("org-new").await;
    let other_step = |name: &'static str, body: Value| {
        let (id, token, web) = (&other, &other_token, &web);
        async move { web.call("POST", &format!("/v1/ra/orders/{id}/steps/{name}"), Some(token), Some(body)).await }
    };
    assert_eq!(other_step("verification", json!({ "method": "phone", "accept_terms": true })).await.0, 200);
    let mut second = company.clone();
    second["credit_code"] = json!("91110000802100433B");
    assert_eq!(other_step("company", second).await.0, 200);
    let code = json!({ "code": last_code(&ca, "+8613800138000") });
    assert_eq!(other_step("subject-check", code).await.0, 200);
    let (status, v) = other_step("agent", agent.clone()).await;
    assert!((400..500).contains(&status) || status == 502, "the fourth link is refused: {status} {v}");
    assert!(v["title"].as_str().unwrap_or_default().contains("too many texts"), "{v}");
    assert_eq!(texts_to(&ca, victim).len(), 3, "no fourth link was texted");
    assert_eq!(ask_code(&ca, victim).await.0, 429, "codes and links share the phone's limit");
}

/// A PDF of exactly `size` bytes, distinct by `tag`.
fn pdf(tag: u8, size: usize) -> Vec<u8> {
    let head = format!("%PDF-1.4\n% {tag}\n");
    let tail = b"\n%%EOF\n";
    let mut bytes = head.into_bytes();
    bytes.resize(size - tail.len(), b' ');
    bytes.extend_from_slice(tail);
    bytes
}

async fn blobs(ca: &TestCa, bytes: &[u8]) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM ra_blobs WHERE sha256 = $1")
        .bind(sha)
        .fetch_one(&pool)
        .await
        .unwrap()
}

/// Storage exhaustion: an applicant uploads a material, replaces it again and again, and
/// fills the other kinds, hoping every upload stays in the database for ever. A replaced
/// upload's blob is deleted with the replacement; a kind can be uploaded 3 times here; and
/// the order's uploads may total 10 000 bytes here, replaced ones included. Refusals are
/// clear 422s naming the bound, counted and audited; orphan blobs are swept.
#[tokio::test(flavor = "multi_thread")]
async fn replacing_a_material_frees_its_blob_and_uploads_past_the_quota_are_refused() {
    let ca = bounded_ca("", "max_material_bytes = 4096\norder_upload_bytes = 10000\nuploads_per_material = 3\n").await;
    let daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let (id, token) = web.create("org-new").await;
    let upload = |kind: &'static str, bytes: Vec<u8>| {
        let (id, token, web) = (&id, &token, &web);
        async move { web.upload(id, token, kind, &bytes).await }
    };
    let (a, b, c) = (pdf(1, 2000), pdf(2, 2000), pdf(3, 2000));
    assert_eq!(upload("business-licence", a.clone()).await.0, 201);
    assert_eq!(blobs(&ca, &a).await, 1);
    assert_eq!(upload("business-licence", b.clone()).await.0, 201);
    assert_eq!(blobs(&ca, &a).await, 0, "the replaced upload's blob is gone");
    assert_eq!(blobs(&ca, &b).await, 1);
    assert_eq!(upload("business-licence", c.clone()).await.0, 201);
    let (status, v) = upload("business-licence", pdf(4, 2000)).await;
    assert_eq!((status, v["errors"][0]["code"].as_str()), (422, Some("material.replacements")), "{v}");
    assert_eq!(blobs(&ca, &c).await, 1, "a refused upload changes nothing");

    // 6000 bytes used (replaced uploads count), 4000 left.
    assert_eq!(upload("id-front", pdf(5, 2000)).await.0, 201);
    assert_eq!(upload("id-back", pdf(6, 2000)).await.0, 201);
    let (status, v) = upload("other", pdf(7, 2000)).await;
    assert_eq!((status, v["errors"][0]["code"].as_str()), (422, Some("material.quota")), "{v}");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("10000 bytes"), "{v}");
    assert_eq!(blobs(&ca, &pdf(7, 2000)).await, 0);
    assert!(metric(&daemon, "uploads_refused_total", "order_upload_bytes").await >= 1);
    assert_eq!(audited(&ca, "order.upload_refused"), 2);

    // An orphan blob (left by a crash, say) is swept; referenced ones stay.
    let store = cloudca::store::Store::open(&ca.config.database).await.unwrap();
    let pool = {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap()
    };
    sqlx::query(
        "INSERT INTO ra_blobs (sha256, content_type, bytes, created_at) VALUES ('orphan', 'application/pdf', $1, 0)",
    )
    .bind(b"%PDF-1.4 %%EOF".to_vec())
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(store.sweep_unreferenced_blobs(cloudca::clock::unix_now(), 100).await.unwrap(), 1);
    assert_eq!(blobs(&ca, &c).await, 1, "a referenced blob stays");
}

/// Review finding (attacker review of issue 15): anyone who can open applications can spend
/// the hourly budget with face-check links; a quarter of it is kept for holders' own codes.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_applications_cannot_spend_the_sms_the_holders_need() {
    let ca = bounded_ca("sms_total_per_hour = 4\nsms_min_interval_seconds = 0\n", "face_seconds = 3600\n").await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let holder = "+8613900001111";
    approve(&ca, holder);
    // The attacker's applications text their legal representative's code and face-check
    // links to made-up phones.
    let mut texts = 0;
    for (n, credit) in ["91350100M000100Y43", "91110000802100433B"].into_iter().enumerate() {
        let (id, token) = web.create("org-new").await;
        let step = |name: &'static str, body: Value| {
            let (id, token, web) = (&id, &token, &web);
            async move { web.call("POST", &format!("/v1/ra/orders/{id}/steps/{name}"), Some(token), Some(body)).await }
        };
        assert_eq!(step("verification", json!({ "method": "phone", "accept_terms": true })).await.0, 200);
        let company = json!({ "name": "福建示例科技有限公司", "credit_code": credit,
                              "legal_rep": { "name": "张三", "id_number": "11010519491231002X", "phone": "+8613800138000" } });
        if step("company", company).await.0 != 200 {
            continue;
        }
        texts += 1;
        let code = json!({ "code": last_code(&ca, "+8613800138000") });
        assert_eq!(step("subject-check", code).await.0, 200);
        for round in 0..2 {
            let agent = json!({ "legal_rep_in_person": false, "name": "李四", "id_number": "110101199003074338",
                                "phone": format!("+86137001370{n}{round}"), "email": "lisi@example.com", "method": "face-sms" });
            if step("agent", agent).await.0 == 200 {
                texts += 1;
            }
        }
    }
    assert_eq!(texts, 3, "three quarters of the budget went to applications, the fourth text was refused");
    // The holder still gets a login code.
    assert_eq!(ask_code(&ca, holder).await.0, 202);
    assert_eq!(texts_to(&ca, holder).len(), 1, "the holders' share was kept");
}
