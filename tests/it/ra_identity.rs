//! The RA's identity chain (issue 15, review H1, H2, H3, M6): who is on file for a company or a
//! certificate comes only from approved orders; an order query only reads; typing someone's
//! identifier claims nothing; identity checks are bound to the subject. Each test is an attack
//! from the review, through the real listeners.

use serde_json::{json, Value};

use crate::common::*;
use crate::ra::{
    agent, company, count, holder_enrols, org_to_product, ra_ca, sign_and_pay, wait_state, Client, AGENT, CREDIT, PDF,
    REP, REP_ID,
};

/// The attacker's own phone and ID number: real, checked, and not the company's.
const ATTACKER: &str = "+8613600136000";
const ATTACKER_ID: &str = "110101198001010037";

async fn database(ca: &TestCa) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap()
}

fn outbox(ca: &TestCa) -> String {
    std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap_or_default()
}

/// Whether any code (not a notification) was texted to the phone.
fn coded(ca: &TestCa, phone: &str) -> bool {
    outbox(ca).lines().any(|l| l.contains(phone) && l.contains("cloudca code"))
}

/// A new order of `flow` with its verification method chosen.
async fn start(web: &Client<'_>, flow: &str, method: &str) -> (String, String) {
    let (id, token) = web.create(flow).await;
    let body = json!({ "method": method, "accept_terms": true });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/verification"), Some(&token), Some(body)).await;
    (id, token)
}

/// An organisation order taken all the way to the officer's approval: the legal
/// representative's phone checked (carrier check) and their online authorisation.
pub(crate) async fn approved_org(web: &Client<'_>, reviewer: &Client<'_>, credit: &str) -> (String, String) {
    let (id, token) = org_to_product(web, credit).await;
    let product = json!({ "product": "org-cloud-1y", "invoice": true });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(product)).await;
    web.rep_signs(&id, &token, REP).await;
    for kind in ["business-licence", "id-front", "id-back"] {
        assert_eq!(web.upload(&id, &token, kind, PDF).await.0, 201);
    }
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/materials"), Some(&token), Some(json!({}))).await;
    sign_and_pay(web, &id, &token, AGENT).await;
    wait_state(web, &id, &token, "review").await;
    reviewer.ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(json!({ "approve": true }))).await;
    (id, token)
}

/// Asks for an order-query code and opens the session; (status, session) of the opening.
async fn open_query(web: &Client<'_>, phone: &str) -> (u16, Value) {
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, _) =
        web.call("POST", "/v1/ra/queries/code", None, Some(json!({ "subject": CREDIT, "phone": phone }))).await;
    assert_eq!(status, 202, "the answer is the same whether or not the phone is on file");
    let code = if coded(web.ca, phone) { last_code(web.ca, phone) } else { "123456".into() };
    web.call("POST", "/v1/ra/queries", None, Some(json!({ "subject": CREDIT, "phone": phone, "code": code }))).await
}

async fn queried(web: &Client<'_>, session: &str) -> Vec<Value> {
    let r = web.http.get(format!("{}/v1/ra/queries/orders", web.admin)).header("x-query-token", session);
    let v = web.send(r).await.1;
    v["items"].as_array().cloned().unwrap_or_default()
}

fn ids(items: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = items.iter().map(|o| o["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn an_internet_user_who_opens_and_cancels_an_order_for_a_company_does_not_become_its_legal_representative() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    // The attacker applies for company X, typing their own phone as its legal representative's,
    // and cancels: before the fix this made them X's legal representative in order query.
    let (theirs, their_token) = start(&web, "org-new", "phone").await;
    // (The sandbox carrier vouches for the typed phone, so the company check's own code goes
    // there; the attacker does not type it back.)
    let v = web
        .ok(
            "POST",
            &format!("/v1/ra/orders/{theirs}/steps/company"),
            Some(&their_token),
            Some(company(CREDIT, ATTACKER)),
        )
        .await;
    assert_eq!(v["next_step"], "subject-check", "{v}");
    web.ok("POST", &format!("/v1/ra/orders/{theirs}/cancel"), Some(&their_token), Some(json!({}))).await;
    let texted = outbox(&ca).lines().filter(|l| l.contains(ATTACKER)).count();
    let (status, v) = open_query(&web, ATTACKER).await;
    assert_eq!(status, 401, "no code went to the attacker's phone: {v}");
    let after = outbox(&ca).lines().filter(|l| l.contains(ATTACKER)).count();
    assert_eq!(after, texted, "no order-query code is texted to a phone a cancelled order named");

    // X's real application, approved: its legal representative and agent are now on file.
    let (real, real_token) = approved_org(&web, &reviewer, CREDIT).await;
    let (status, rep) = open_query(&web, REP).await;
    assert_eq!((status, rep["role"].as_str()), (201, Some("legal-rep")), "{rep}");
    let rep_token = rep["token"].as_str().unwrap();
    let mut all = vec![real.clone(), theirs.clone()];
    all.sort();
    assert_eq!(ids(&queried(&web, rep_token).await), all, "the legal representative sees all of X's orders");
    let (status, agent_session) = open_query(&web, AGENT).await;
    assert_eq!((status, agent_session["role"].as_str()), (201, Some("agent")));
    let agent_token = agent_session["token"].as_str().unwrap();
    assert_eq!(ids(&queried(&web, agent_token).await), vec![real.clone()], "an agent sees the orders they handled");
    // The attacker still gets nothing, now that X has contacts on file.
    assert_eq!(open_query(&web, ATTACKER).await.0, 401);

    // A query session reads: the order (nothing that acts on it) and its invoice.
    let v = web.ok("GET", &format!("/v1/ra/orders/{real}"), Some(rep_token), None).await;
    assert!(v["payment"].is_null() && v["pending_check"].is_null(), "{v}");
    assert_eq!(web.call("GET", &format!("/v1/ra/orders/{real}/invoice"), Some(rep_token), None).await.0, 200);
    // It does not write, nor print the form with full identifiers.
    assert_eq!(web.call("GET", &format!("/v1/ra/orders/{real}/form"), Some(rep_token), None).await.0, 404);
    assert_eq!(web.call("GET", &format!("/v1/ra/orders/{real}/form"), Some(&real_token), None).await.0, 200);
    let (status, _) =
        web.call("POST", &format!("/v1/ra/orders/{theirs}/cancel"), Some(rep_token), Some(json!({}))).await;
    assert_eq!(status, 404);

    // The legal representative's bank card opens a session too, with the code it texts to
    // their phone (review H2); someone else's opens nothing.
    let mut card =
        json!({ "subject": CREDIT, "phone": REP, "name": "张三", "id_number": REP_ID, "card": "6222020200112233445" });
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(web.call("POST", "/v1/ra/queries", None, Some(web.with_challenge(card.clone()).await)).await.0, 202);
    let mut wrong = card.clone();
    card["code"] = json!(last_code(&ca, REP));
    assert_eq!(web.ok("POST", "/v1/ra/queries", None, Some(card)).await["role"], "legal-rep");
    wrong["name"] = json!("王攻击");
    wrong["id_number"] = json!(ATTACKER_ID);
    wrong["code"] = json!("123456");
    assert_eq!(web.call("POST", "/v1/ra/queries", None, Some(wrong)).await.0, 401);
    assert_eq!(count(&ca, "order.query_opened"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_who_lost_the_order_token_continues_only_with_a_fresh_code_to_their_own_phone() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    approved_org(&web, &reviewer, CREDIT).await;
    // The same agent opens another application for X in another channel, and loses its token.
    let v = web.ok("POST", "/v1/ra/orders", None, Some(json!({ "channel": "bidding", "flow": "org-new" }))).await;
    let (open, lost) = (v["order"]["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string());
    web.choose_method(&open, &lost, "phone").await;
    web.company_checked(&open, &lost, company(CREDIT, REP)).await;
    web.ok("POST", &format!("/v1/ra/orders/{open}/steps/agent"), Some(&lost), Some(agent())).await;
    let (_, session) = open_query(&web, AGENT).await;
    let query = session["token"].as_str().unwrap().to_string();
    let resume = |path: &str, body: Value| {
        let r = web
            .http
            .post(format!("{}/v1/ra/queries/orders/{open}/{path}", web.admin))
            .header("x-query-token", &query)
            .json(&body);
        web.send(r)
    };
    // The session alone continues nothing.
    let (status, _) = web.step(&open, &query, "product", json!({ "product": "org-cloud-1y" })).await;
    assert_eq!(status, 404);
    let (status, v) = resume("resume", json!({ "code": "123456" })).await;
    assert_eq!(status, 401, "no code was sent yet: {v}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(resume("resume-code", json!({})).await.0, 202);
    let code = last_code(&ca, AGENT);
    assert!(outbox(&ca).contains(&format!("to continue order {open}")), "the text says what the code is for");
    let (status, v) = resume("resume", json!({ "code": code })).await;
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap();
    assert_eq!(web.step(&open, token, "product", json!({ "product": "bid-org-1y" })).await.0, 200);
    assert_eq!(
        web.call("GET", &format!("/v1/ra/orders/{open}"), Some(&lost), None).await.0,
        404,
        "the old token is gone"
    );
    assert_eq!(count(&ca, "order.resumed"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consent_code_for_a_certificate_outside_custody_never_goes_to_a_phone_an_order_typed() {
    let ca = ra_ca().await;
    // X's certificate, issued from a CSR in the back office: nobody is on file for it.
    let (_, serial) = issue_cli(&ca, "x", "org", ORG_SUBJECT);
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    // The attacker passes the agent step of an order for X with their own identity: before
    // the fix their phone was "on file" for X and got X's consent codes.
    let (order, token) = start(&web, "org-new", "phone").await;
    web.company_checked(&order, &token, company(CREDIT, ATTACKER)).await;
    let mut me = agent();
    me["name"] = json!("王攻击");
    me["id_number"] = json!(ATTACKER_ID);
    me["phone"] = json!(ATTACKER);
    web.ok("POST", &format!("/v1/ra/orders/{order}/steps/agent"), Some(&token), Some(me.clone())).await;

    // Now a re-issue of X's certificate: the consent code goes nowhere. (The sandbox carrier
    // vouched for the phone the attacker typed as the representative's, so the company check's
    // own code went there.)
    let texted = outbox(&ca).lines().filter(|l| l.contains(ATTACKER)).count();
    let (id, token) = web.create("reissue").await;
    let (status, v) = web
        .call("POST", &format!("/v1/ra/orders/{id}/codes/certificate"), Some(&token), Some(json!({ "serial": serial })))
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(v["title"].as_str().unwrap().contains("officer"), "{v}");
    assert_eq!(outbox(&ca).lines().filter(|l| l.contains(ATTACKER)).count(), texted, "no code reached the attacker");
    // Without consent the order goes on only to an officer: never the channel's automatic approval.
    let v = web
        .ok("POST", &format!("/v1/ra/orders/{id}/steps/certificate"), Some(&token), Some(json!({ "serial": serial })))
        .await;
    assert!(v["officer_review"].as_str().unwrap().contains("officer"), "{v}");
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/agent"), Some(&token), Some(me)).await;
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(json!({ "product": "reissue" })))
        .await;
    let v = sign_and_pay(&web, &id, &token, ATTACKER).await;
    assert_ne!(v["state"], "open", "{v}");
    let v = wait_state(&web, &id, &token, "review").await;
    assert_eq!(v["state"], "review");
    let cert = Client::new(&ca, "operator").ok("GET", &format!("/v1/certificates/{serial}"), None, None).await;
    assert_eq!(cert["status"], "issued", "X's certificate is untouched until an officer decides");
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_someone_elses_identifier_claims_nothing_and_an_idle_or_abusive_order_is_cancelled() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    // The attacker types X's credit code with data that fails the check (before the fix the
    // order held X's one open order in the channel for ever).
    let (theirs, t) = start(&web, "org-new", "phone").await;
    let (status, v) = web.step(&theirs, &t, "company", company(CREDIT, "+8613800130000")).await;
    assert_eq!(status, 422, "{v}");
    // X applies in the same channel unhindered.
    let (x, x_token) = org_to_product(&web, CREDIT).await;
    // An open order nobody touched for ra.open_order_days (30) is cancelled by the RA task.
    let pool = database(&ca).await;
    sqlx::query("UPDATE ra_orders SET updated_at = updated_at - 31 * 86400 WHERE id = $1")
        .bind(&x)
        .execute(&pool)
        .await
        .unwrap();
    let v = wait_state(&web, &x, &x_token, "cancelled").await;
    assert!(v["reason"].as_str().unwrap().contains("30 days"), "{v}");
    // An officer cancels an abusive open order, with a reason; the web front cannot.
    let (y, y_token) = org_to_product(&web, CREDIT).await;
    let reviewer = Client::new(&ca, "reviewer");
    assert_eq!(
        reviewer.call("POST", &format!("/v1/orders/{y}/cancel"), None, Some(json!({ "reason": " " }))).await.0,
        422
    );
    assert_eq!(web.call("POST", &format!("/v1/orders/{y}/cancel"), None, Some(json!({ "reason": "x" }))).await.0, 403);
    reviewer
        .ok("POST", &format!("/v1/orders/{y}/cancel"), None, Some(json!({ "reason": "abusive application" })))
        .await;
    let v = web.ok("GET", &format!("/v1/ra/orders/{y}"), Some(&y_token), None).await;
    assert_eq!((v["state"].as_str(), v["reason"].as_str()), (Some("cancelled"), Some("abusive application")));
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_checks_are_bound_to_the_subject_not_to_whatever_the_applicant_controls() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    // A micro-deposit into the attacker's own account proves nothing about the person applied for.
    let (id, token) = start(&web, "personal-new", "bank-account").await;
    let bank =
        |name: &str| json!({ "account_name": name, "account_number": "6222 0202 0011 2233", "bank": "工商银行" });
    let person = |name: &str| json!({ "name": "张三", "id_number": REP_ID, "phone": REP, "email": "z@example.com", "bank": bank(name) });
    let (status, v) = web.step(&id, &token, "person", person("王攻击")).await;
    assert_eq!((status, v["errors"][0]["code"].as_str()), (422, Some("bank.not_subject")), "{v}");
    let statements = ca.config.data_dir.join("bank-statements.jsonl");
    assert!(!statements.exists() || std::fs::read_to_string(&statements).unwrap().is_empty(), "nothing was paid");
    let (status, v) = web.step(&id, &token, "person", person(" 张 三 ")).await;
    assert_eq!(status, 200, "the person's own account, however spaced: {v}");
    // A company's account must be the company's.
    let (id, token) = start(&web, "org-new", "bank-account").await;
    let mut c = company(CREDIT, REP);
    c["bank"] = bank("张三");
    let (status, v) = web.step(&id, &token, "company", c.clone()).await;
    assert_eq!((status, v["errors"][0]["code"].as_str()), (422, Some("bank.not_subject")), "{v}");
    c["bank"] = bank("福建示例科技有限公司");
    assert_eq!(web.step(&id, &token, "company", c).await.0, 200);
    // The enterprise registry ties the legal representative to the company: a company whose
    // registry entry does not match fails, whatever the carrier says about the person.
    let (id, token) = start(&web, "org-new", "phone").await;
    let (status, v) = web.step(&id, &token, "company", company("91350100M00010000P", REP)).await;
    assert_eq!(status, 422, "{v}");
    assert!(v["title"].as_str().unwrap().contains("enterprise registry"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legal_representatives_online_authorisation_goes_only_to_a_checked_company_and_agent_and_is_withdrawn_by_a_change(
) {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let (id, token) = org_to_product(&web, CREDIT).await;
    // The attacker redoes the company step typing their own phone as the representative's:
    // the carrier check fails, but the typed company is kept for correction.
    const THEIRS: &str = "+8613800130000";
    let (status, _) = web.step(&id, &token, "company", company(CREDIT, THEIRS)).await;
    assert_eq!(status, 422);
    // Before the fix the authorisation code then went to the attacker's phone.
    let path = format!("/v1/ra/orders/{id}/codes/authorization");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, v) = web.call("POST", &path, Some(&token), Some(json!({}))).await;
    assert_eq!(status, 409, "nothing checked is there to authorise: {v}");
    assert!(!outbox(&ca).contains(THEIRS));
    // Done properly, the authorisation holds only for what it was given for.
    web.company_checked(&id, &token, company(CREDIT, REP)).await;
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/agent"), Some(&token), Some(agent())).await;
    let v = web.rep_signs(&id, &token, REP).await;
    assert_eq!(v["summary"]["authorized_online"], true);
    let v = web.ok("POST", &format!("/v1/ra/orders/{id}/steps/agent"), Some(&token), Some(agent())).await;
    assert_eq!(v["summary"]["authorized_online"], false, "entering the agent again withdraws it: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_consent_code_from_a_key_holder_does_not_reissue_the_key_to_someone_else_automatically() {
    const HOLDER: &str = "+8613900139000";
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let operator = Client::new(&ca, "operator");
    let subject =
        json!([["C", "CN"], ["O", "福建示例科技有限公司"], ["CN", "福建示例科技有限公司"], ["serialNumber", CREDIT]]);
    let holder = json!({ "name": "张三", "id_number": REP_ID });
    let approval = json!({ "profile": "org", "phone": HOLDER, "subject": subject, "holder": holder });
    operator.ok("POST", "/v1/approvals", None, Some(approval)).await;
    let serial = holder_enrols(&web, HOLDER).await;
    // The attacker has the holder's consent code (a stolen SMS, a phished code) and applies
    // for a re-issue as its agent.
    let (id, token) = web.certificate_chosen("reissue", &serial, HOLDER, json!({})).await;
    let mut me = agent();
    me["name"] = json!("王攻击");
    me["id_number"] = json!(ATTACKER_ID);
    me["phone"] = json!(ATTACKER);
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/agent"), Some(&token), Some(me)).await;
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(json!({ "product": "reissue" })))
        .await;
    sign_and_pay(&web, &id, &token, ATTACKER).await;
    let v = wait_state(&web, &id, &token, "review").await;
    assert_eq!(v["state"], "review", "a new key for someone other than the holder waits for an officer");
    let cert = Client::new(&ca, "operator").ok("GET", &format!("/v1/certificates/{serial}"), None, None).await;
    assert_eq!(cert["status"], "issued");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_puts_on_file_only_a_representatives_phone_that_a_check_proved() {
    const TYPED: &str = "+8613800130000";
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    // The carrier check of the typed phone fails; the application goes the offline way and an
    // officer approves the papers.
    let (id, token) = start(&web, "org-new", "phone").await;
    assert_eq!(web.step(&id, &token, "company", company(CREDIT, TYPED)).await.0, 422);
    web.ok("POST", &format!("/v1/ra/orders/{id}/offline"), Some(&token), Some(json!({}))).await;
    crate::ra::offline_steps(&web, &reviewer, &id, &token).await;
    // Approved and carried out: the approval goes to the agent the papers name (before the
    // offline path took the agent online, there was none and carrying it out failed for ever).
    let decision = json!({ "approve": true });
    reviewer.ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(decision)).await;
    wait_state(&web, &id, &token, "approved").await;
    let serial = crate::ra::holder_enrols(&web, AGENT).await;
    let v = wait_state(&web, &id, &token, "completed").await;
    assert_eq!(v["serial"], serial.as_str(), "{v}");
    // The phone nobody proved is not the representative's on file.
    let (status, _) = open_query(&web, TYPED).await;
    assert_eq!(status, 401);
    assert!(!coded(&ca, TYPED), "no code went to it");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_who_changes_their_product_stays_their_own_verified_agent() {
    const PERSON: &str = "+8613900139000";
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let (id, token) = start(&web, "personal-new", "phone").await;
    let person =
        json!({ "name": "王五", "id_number": "110101199003074338", "phone": PERSON, "email": "w@example.com" });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/person"), Some(&token), Some(person)).await;
    let product = json!({ "product": "personal-cloud-1y" });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(product.clone())).await;
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(product)).await;
    for kind in ["id-front", "id-back"] {
        assert_eq!(web.upload(&id, &token, kind, PDF).await.0, 201);
    }
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/materials"), Some(&token), Some(json!({}))).await;
    // Before the fix the redo cleared the person's verified phone and the order was stuck.
    let code = web.code(&id, &token, "signature", PERSON, json!({})).await;
    let signed = json!({ "code": code, "accept_terms": true });
    assert_eq!(web.step(&id, &token, "signature", signed).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ra_pass_walks_every_approved_order_page_by_page_not_only_the_first() {
    let ca = ra_ca().await;
    // 250 approved orders whose holders never enrol (more than one page of the background
    // pass, and older than anything else): before the fix the pass read only the first 200
    // and never reached a newer order.
    let pool = database(&ca).await;
    let old = time::OffsetDateTime::now_utc().unix_timestamp() - 40 * 86400;
    for n in 0..250 {
        sqlx::query(
            "INSERT INTO ra_orders (id, channel, flow, state, token_hash, data, amount_fen, approval_id, created_at, \
             updated_at, version) VALUES ($1, 'default', 'org-new', 'approved', 'x', '{}', 0, $2, $3, $3, 0)",
        )
        .bind(format!("RA20261001-WAIT{n:04}"))
        .bind(format!("never-enrolled-{n}"))
        .bind(old)
        .execute(&pool)
        .await
        .unwrap();
    }
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let (id, token) = approved_org(&web, &reviewer, CREDIT).await;
    let serial = holder_enrols(&web, AGENT).await;
    let v = wait_state(&web, &id, &token, "completed").await;
    assert_eq!(v["serial"].as_str(), Some(serial.as_str()), "the newest order was completed past the waiting ones");
}

/// Issue 17 point 7: the product "with seal" (机构云证书含电子印章) asks for the seal image with
/// the other materials and, once the order is approved, the organisation has that seal. Before,
/// the product's `seal` flag was read by nothing: paid for, never made.
#[tokio::test(flavor = "multi_thread")]
async fn the_product_with_seal_asks_for_the_seal_image_and_approval_makes_the_seal() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let (id, token) = org_to_product(&web, CREDIT).await;
    let product = json!({ "product": "org-cloud-seal-1y" });
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(&token), Some(product)).await;
    web.rep_signs(&id, &token, crate::ra::REP).await;
    for kind in ["business-licence", "id-front", "id-back"] {
        assert_eq!(web.upload(&id, &token, kind, PDF).await.0, 201);
    }
    let (status, v) = web.step(&id, &token, "materials", json!({})).await;
    assert_eq!(status, 422, "the seal image is missing: {v}");
    assert!(v.to_string().contains("seal-image"), "{v}");
    let png = cloudca::signing::qr::render_png("合同专用章", 2).unwrap();
    assert_eq!(web.upload(&id, &token, "seal-image", &png).await.0, 201);
    web.ok("POST", &format!("/v1/ra/orders/{id}/steps/materials"), Some(&token), Some(json!({}))).await;
    sign_and_pay(&web, &id, &token, AGENT).await;
    wait_state(&web, &id, &token, "review").await;
    let reviewer = Client::new(&ca, "reviewer");
    reviewer.ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(json!({ "approve": true }))).await;
    wait_state(&web, &id, &token, "approved").await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    let seals: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT name, png FROM seals WHERE credit_code = $1 AND status = 'active'")
            .bind(CREDIT)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(seals.len(), 1, "one seal, made once");
    assert_eq!(seals[0].1, png, "from the image the order carried");
    assert_eq!(count(&ca, "seal.decided"), 1);
}

/// Handbook B8: a legal representative may hold a passport or a travel permit. Carriers and the
/// face check know people by the resident ID only, so the representative's phone and face
/// checks fail and the offline path is offered; the company's bank account (the micro-deposit)
/// and the bank card (whose four elements carry the document type) check such a company
/// online. The agent, who holds the cloud key, must give a resident ID. (A personal applicant
/// with another document: `ra_id_types`.)
#[tokio::test(flavor = "multi_thread")]
async fn a_legal_representative_with_a_passport_applies_through_the_company_account_or_offline() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let mut foreign = company(CREDIT, REP);
    foreign["legal_rep"]["id_type"] = json!("passport");
    foreign["legal_rep"]["id_number"] = json!("E12345678");
    // By the representative's phone: the check cannot be made; offline is offered.
    let (id, token) = start(&web, "org-new", "phone").await;
    let (status, v) = web.step(&id, &token, "company", foreign.clone()).await;
    assert_eq!(status, 422, "{v}");
    assert!(v.to_string().contains("resident ID"), "the reason is given: {v}");
    let v = web.ok("POST", &format!("/v1/ra/orders/{id}/offline"), Some(&token), None).await;
    assert_eq!(v["state"], "offline");
    web.ok("POST", &format!("/v1/ra/orders/{id}/cancel"), Some(&token), Some(json!({}))).await;
    // A passport number in the shape of nothing is refused by its type's rules.
    let (id, token) = start(&web, "org-new", "bank-account").await;
    let mut bad = foreign.clone();
    bad["legal_rep"]["id_number"] = json!("E1234-5678");
    bad["bank"] =
        json!({ "account_name": "福建示例科技有限公司", "account_number": "35001234567890123", "bank": "示例银行" });
    let (status, v) = web.step(&id, &token, "company", bad.clone()).await;
    assert_eq!((status, v["errors"][0]["code"].as_str()), (422, Some("id_number.format")), "{v}");
    // Through the company's account: the micro-deposit starts, nothing asks the passport.
    bad["legal_rep"]["id_number"] = json!("E12345678");
    let v = web.ok("POST", &format!("/v1/ra/orders/{id}/steps/company"), Some(&token), Some(bad)).await;
    assert_eq!(
        (v["next_step"].as_str(), v["pending_check"]["method"].as_str()),
        (Some("subject-check"), Some("bank-account")),
        "{v}"
    );
    // By the representative's bank card: its four elements carry the document type, so the
    // bank is asked and the code goes to the representative's phone as for a resident ID.
    let (id, token) = start(&web, "org-new", "bank-card").await;
    let mut card = foreign.clone();
    card["legal_rep"]["card"] = json!("6222021234567890128");
    let v = web.company_checked(&id, &token, card).await;
    assert_eq!(v["next_step"], "agent", "{v}");
    // The face check still cannot be made.
    let (id, token) = start(&web, "org-new", "face-sms").await;
    let (status, v) = web.step(&id, &token, "company", foreign.clone()).await;
    assert_eq!(status, 422, "{v}");
    assert!(v.to_string().contains("resident ID") && v.to_string().contains("bank card"), "{v}");
}
