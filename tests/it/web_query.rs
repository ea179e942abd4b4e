//! Order query by the identity fallbacks of handbook §4.3 in a real browser (issue 17 row 1):
//! the legal representative's phone (F14: ID number, phone, random code, SMS code) and bank
//! card (F15: ID number, card, reserved phone, random code, SMS code), and for personal
//! subjects the person's real-name phone (F9) and bank card (F10). Each walks the page: the
//! random code read from the picture (here from the sandbox's outbox), "send code", a wrong
//! SMS code that reveals nothing, then the right one and the subject's orders. No URL the
//! browser visits carries the ID number or phone typed (attacker review, Low). And the API's
//! wrong-code answer is the same, byte for byte, for a subject nobody asked a code for.
//! Screenshots: `target/screenshots/order-query-<method>/`.

use fantoccini::Locator;
use serde_json::{json, Value};

use crate::common::*;
use crate::ra::{Client, AGENT, CREDIT, REP, REP_ID};
use crate::ra_services::services_ca;
use crate::web::{web_front, Browser};
use crate::web_services::{fill_in, personal_certificate, HOLDER_ID};

/// The random code drawn for `challenge`, from the sandbox's outbox.
fn random_code(ca: &TestCa, challenge: &str) -> String {
    let outbox = std::fs::read_to_string(ca.config.data_dir.join("challenge-outbox.jsonl")).unwrap();
    let line = outbox.lines().rev().find(|l| l.contains(challenge)).expect("the random code was issued");
    let v: Value = serde_json::from_str(line).unwrap();
    v["code"].as_str().unwrap().to_string()
}

/// Codes texted to `phone` so far (the sandbox SMS outbox).
fn codes_to(ca: &TestCa, phone: &str) -> usize {
    let outbox = std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap_or_default();
    outbox.lines().filter(|l| l.contains(phone) && l.contains("cloudca code")).count()
}

/// Fails if the address the browser is at carries anything typed.
pub(crate) async fn nothing_typed_in_the_url(b: &Browser, typed: &[(&str, &str)]) {
    let url = b.client.current_url().await.unwrap().to_string();
    for (name, value) in typed {
        let bare = value.trim_start_matches("+86");
        assert!(!url.contains(bare), "the URL {url} carries the {name} typed");
    }
}

/// Texts in the alert banner of the page shown.
async fn alert(b: &Browser) -> String {
    b.text("p.alert").await
}

/// Types `typed` into the form, the random code its picture shows, and the SMS code if given.
pub(crate) async fn fill(b: &Browser, ca: &TestCa, form: &str, typed: &[(&str, &str)], code: Option<&str>) {
    for (name, value) in typed {
        fill_in(b, form, name, value).await;
    }
    let challenge = b.attr(&format!("form#{form} [name=challenge]"), "value").await.unwrap();
    fill_in(b, form, "answer", &random_code(ca, &challenge)).await;
    if let Some(code) = code {
        fill_in(b, form, "code", code).await;
    }
}

/// One fallback walked in order management: `typed` into the form `query-{method}`, the
/// random code, "send code" (the code goes to `sms_to`), a wrong code (refused like any), then
/// the right code; the page after it.
async fn walk(b: &Browser, ca: &TestCa, base: &str, method: &str, typed: &[(&str, &str)], sms_to: &str) {
    let form = format!("query-{method}");
    let group = if method.starts_with("rep-") { "#fallback-rep" } else { "#fallback-person" };
    b.goto(&format!("{base}/orders")).await;
    b.click(&format!("details{group} summary")).await; // opens the fallbacks; no script needed
                                                       // A wrong random code sends nothing and says so.
    let before = codes_to(ca, sms_to);
    for (name, value) in typed {
        fill_in(b, &form, name, value).await;
    }
    fill_in(b, &form, "answer", "AAAAA").await;
    b.press(&format!("form#{form} button[name=step]")).await;
    assert!(alert(b).await.contains("随机码错误"), "{}", b.client.source().await.unwrap());
    assert_eq!(codes_to(ca, sms_to), before, "nothing is texted without the random code");
    nothing_typed_in_the_url(b, typed).await;

    fill(b, ca, &form, typed, None).await;
    b.shot("details").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    b.press(&format!("form#{form} button[name=step]")).await;
    b.shot("code-sent").await;
    assert!(alert(b).await.contains("验证码已发送"), "{}", b.client.source().await.unwrap());
    assert_eq!(codes_to(ca, sms_to), before + 1, "the code went to {sms_to}");
    assert!(b.client.find(Locator::Css("#order-list")).await.is_err(), "the details alone show no orders");
    nothing_typed_in_the_url(b, typed).await;
    let right = last_code(ca, sms_to);

    // A wrong code: the same refusal as any, no orders.
    let wrong = if right == "123456" { "654321" } else { "123456" };
    fill(b, ca, &form, typed, Some(wrong)).await;
    b.press(&format!("form#{form} button[name=submit]")).await;
    b.shot("wrong-code").await;
    assert_eq!(alert(b).await, "验证码错误或已过期，请重新获取");
    assert!(b.client.find(Locator::Css("#order-list")).await.is_err(), "a wrong code shows no orders");
    nothing_typed_in_the_url(b, typed).await;

    // The code texted (the details typed again, as the page asks).
    fill(b, ca, &form, typed, Some(&right)).await;
    b.press(&format!("form#{form} button[name=submit]")).await;
    b.shot("orders").await;
    nothing_typed_in_the_url(b, typed).await;
}

/// Handbook F14 (and review H2): the legal representative's phone on file with their ID
/// number, the random code and the SMS code to that phone shows the company's orders.
#[tokio::test(flavor = "multi_thread")]
async fn the_legal_representatives_phone_id_number_and_random_code_open_the_order_query() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let (id, _) = crate::ra_identity::approved_org(&web, &Client::new(&ca, "reviewer"), CREDIT).await;
    let (_front, base) = web_front(&ca).await;
    let b = Browser::start("order-query-rep-phone", 1000, 1600).await;
    let typed = [("subject", CREDIT), ("id_number", REP_ID), ("phone", "13800138000")];
    walk(&b, &ca, &base, "rep-phone", &typed, REP).await;
    let listed = b.attr(&format!("#order-list tr[data-order=\"{id}\"]"), "data-state").await;
    assert!(listed.is_some(), "the company's order is listed: {}", b.client.source().await.unwrap());
}

/// Handbook F15: the legal representative's bank card opens the order query only with the
/// random code and the code then texted to their phone on file.
#[tokio::test(flavor = "multi_thread")]
async fn the_legal_representatives_bank_card_opens_the_order_query_only_with_their_code() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let (id, _) = crate::ra_identity::approved_org(&web, &Client::new(&ca, "reviewer"), CREDIT).await;
    let (_front, base) = web_front(&ca).await;
    let b = Browser::start("order-query-rep-card", 1000, 1600).await;
    let typed = [
        ("subject", CREDIT),
        ("name", "张三"),
        ("id_number", REP_ID),
        ("card", "6222020200112233445"),
        ("phone", "13800138000"),
    ];
    walk(&b, &ca, &base, "rep-card", &typed, REP).await;
    let listed = b.attr(&format!("#order-list tr[data-order=\"{id}\"]"), "data-state").await;
    assert!(listed.is_some(), "the company's order is listed: {}", b.client.source().await.unwrap());
}

/// The person's new phone: it got no code before (only the phone on file did).
const NEW_PHONE: &str = "+8613500135000";

/// Handbook F9: a person whose phone on file changed proves the new one under their real name
/// (the carrier's check), gets the code on it and sees their orders.
#[tokio::test(flavor = "multi_thread")]
async fn a_person_whose_phone_changed_opens_the_order_query_with_a_real_name_phone_check() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    personal_certificate(&ca).await;
    let (_front, base) = web_front(&ca).await;
    let b = Browser::start("order-query-person-phone", 1000, 1600).await;
    let typed = [("subject", HOLDER_ID), ("name", "王五"), ("phone", "13500135000")];
    walk(&b, &ca, &base, "person-phone", &typed, NEW_PHONE).await;
    let rows = b.client.find_all(Locator::Css("#order-list tr[data-order]")).await.unwrap();
    assert!(!rows.is_empty(), "the person's orders are listed: {}", b.client.source().await.unwrap());
}

/// Handbook F10: a person's bank card and its reserved phone, the random code and the code
/// texted to that phone show their orders.
#[tokio::test(flavor = "multi_thread")]
async fn a_person_opens_the_order_query_with_their_bank_card_and_its_reserved_phone() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    personal_certificate(&ca).await;
    let (_front, base) = web_front(&ca).await;
    let b = Browser::start("order-query-person-card", 1000, 1600).await;
    let typed = [("subject", HOLDER_ID), ("name", "王五"), ("card", "6222020200112233445"), ("phone", "13500135000")];
    walk(&b, &ca, &base, "person-card", &typed, NEW_PHONE).await;
    let rows = b.client.find_all(Locator::Css("#order-list tr[data-order]")).await.unwrap();
    assert!(!rows.is_empty(), "the person's orders are listed: {}", b.client.source().await.unwrap());
}

/// The raw answer to an order-query opening.
async fn raw_open(web: &Client<'_>, body: Value) -> (u16, Vec<u8>) {
    let r = web.http.post(format!("{}/v1/ra/queries", web.admin)).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// Attacker review (Low): the order query's code check did less work for a subject nobody
/// asked a code for than for a wrong code to a known one, so its timing told them apart. Now
/// both take the same path (the peppered hash, one database statement) and answer the same
/// bytes, by the agent's phone and by the fallbacks alike; and a random code answers once.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_subject_and_a_wrong_code_for_a_known_one_get_the_same_answer() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    crate::ra_identity::approved_org(&web, &Client::new(&ca, "reviewer"), CREDIT).await;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let body = json!({ "subject": CREDIT, "phone": AGENT });
    assert_eq!(web.call("POST", "/v1/ra/queries/code", None, Some(body)).await.0, 202);
    let wrong = if last_code(&ca, AGENT) == "123456" { "654321" } else { "123456" };
    let known = raw_open(&web, json!({ "subject": CREDIT, "phone": AGENT, "code": wrong })).await;
    let unknown = raw_open(&web, json!({ "subject": "91350200MA2XNFNU0G", "phone": AGENT, "code": wrong })).await;
    assert_eq!(known.0, 401);
    assert_eq!(known, unknown, "{} / {}", String::from_utf8_lossy(&known.1), String::from_utf8_lossy(&unknown.1));

    // The legal representative's fallback: a code sent for the real details, a wrong one
    // typed; an ID number nobody has on file; both the same bytes.
    let rep = json!({ "subject": CREDIT, "phone": REP, "id_number": REP_ID });
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(web.call("POST", "/v1/ra/queries", None, Some(web.with_challenge(rep.clone()).await)).await.0, 202);
    let wrong = if last_code(&ca, REP) == "123456" { "654321" } else { "123456" };
    let mut typed = rep.clone();
    typed["code"] = json!(wrong);
    let known = raw_open(&web, typed.clone()).await;
    typed["id_number"] = json!("110101198001010037");
    let unknown = raw_open(&web, typed).await;
    assert_eq!(known.0, 401);
    assert_eq!(known, unknown, "{} / {}", String::from_utf8_lossy(&known.1), String::from_utf8_lossy(&unknown.1));

    // A random code answers once: right the first time, refused the second.
    let sent = web.with_challenge(rep.clone()).await;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(web.call("POST", "/v1/ra/queries", None, Some(sent.clone())).await.0, 202);
    let (status, v) = web.call("POST", "/v1/ra/queries", None, Some(sent)).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["errors"][0]["code"], "random_code.wrong", "{v}");
    let mut none = rep;
    none["challenge"] = json!("nonexistent");
    none["answer"] = json!("AAAAA");
    assert_eq!(web.call("POST", "/v1/ra/queries", None, Some(none)).await.0, 422);
}
