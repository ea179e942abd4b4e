//! Every verification method the default channel offers, walked in the browser (issue 17 rows
//! B4-B7, B15, B16, C2-C5, F3): for an organisation, each method of the company check with
//! another method for the agent; for a person, each method of their own check. A walk ends at
//! the product step and cancels the order from its page, which frees the subject for the next.
//! Screenshots: `target/screenshots/methods-organisation/`, `target/screenshots/methods-personal/`.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::ra::{Client, CREDIT};
use crate::web::{texted_url, web_ca, web_front, Browser};

const REP: &str = "+8613800138000";
const AGENT: &str = "+8613700137000";
const PERSON: &str = "+8613900139000";
/// A bank card the check digit and the sandbox bank accept.
const CARD: &str = "6222020200112233446";

/// The newest micro-deposit's remittance code (the sandbox bank statement).
fn remittance_code(ca: &TestCa) -> String {
    let statements = std::fs::read_to_string(ca.config.data_dir.join("bank-statements.jsonl")).unwrap();
    let deposit: Value = serde_json::from_str(statements.lines().last().unwrap()).unwrap();
    deposit["remittance_code"].as_str().unwrap().to_string()
}

/// The pending check on the page completed as the person would: the remittance code or the
/// texted code typed, or the face taken on the phone (the texted link or the QR code's) and
/// "I have finished".
async fn complete_check(b: &Browser, ca: &TestCa, method: &str, phone: &str, shot: &str) {
    let step = b.current_step().await.unwrap_or_default();
    assert!(step.ends_with("-check"), "{method}: a check to complete, at {step}");
    let face = match method {
        "bank-account" => {
            b.fill("code", &remittance_code(ca)).await;
            None
        }
        "phone" | "bank-card" => {
            b.fill("code", &last_code(ca, phone)).await;
            None
        }
        "face-sms" => Some(texted_url(ca, phone, "/sandbox/face/")),
        "face-qr" => Some(b.attr("img#face-qr", "data-url").await.expect("the face check's QR code")),
        other => panic!("no method {other}"),
    };
    b.shot(shot).await;
    if let Some(link) = face {
        let passed = Client::new(ca, "web-front").http.post(&link).body("result=pass").send().await.unwrap();
        assert_eq!(passed.status(), 200, "the face taken on the phone");
    }
    b.submit(&format!("step-{step}")).await;
}

/// Waits until the page shows `step` (a face check's page refreshes itself).
async fn at_step(b: &Browser, step: &str) {
    for _ in 0..20 {
        if b.current_step().await.as_deref() == Some(step) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("not at {step}: {}", b.client.source().await.unwrap());
}

/// Cancels the order shown (handbook F3: an unfinished order is cancelled from its page).
async fn cancel_shown(b: &Browser) {
    b.submit("cancel").await;
    assert_eq!(b.attr("#order-state", "data-state").await.as_deref(), Some("cancelled"));
}

fn method_extra(method: &str, prefix: &str) -> Vec<(String, &'static str)> {
    match method {
        "bank-card" => vec![(format!("{prefix}card"), CARD)],
        _ => vec![],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organisation_is_checked_in_the_browser_by_each_method_and_its_agent_by_another() {
    let ca = web_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let b = Browser::start("methods-organisation", 1200, 1600).await;
    let walks = [
        ("bank-account", "face-qr"),
        ("phone", "bank-card"),
        ("bank-card", "face-sms"),
        ("face-sms", "phone"),
        ("face-qr", "face-qr"),
    ];
    for (company_method, agent_method) in walks {
        std::thread::sleep(Duration::from_millis(1100)); // the phones' interval between texts
        b.goto(&format!("{base}/apply/org-new")).await;
        b.submit("start").await;
        b.click(&format!("input[name=method][value={company_method}]")).await;
        b.click("input[name=accept_agreement]").await;
        b.submit("step-verification").await;
        let mut fields: Vec<(String, &str)> = vec![
            ("name".into(), "福建示例科技有限公司"),
            ("credit_code".into(), CREDIT),
            ("legal_rep.name".into(), "张三"),
            ("legal_rep.id_number".into(), "11010519491231002X"),
            ("legal_rep.phone".into(), "13800138000"),
        ];
        fields.extend(method_extra(company_method, "legal_rep."));
        if company_method == "bank-account" {
            fields.extend([
                ("bank.account_name".into(), "福建示例科技有限公司"),
                ("bank.account_number".into(), "6222 0202 0011 2233"),
                ("bank.bank".into(), "工商银行"),
            ]);
        }
        for (name, value) in &fields {
            b.fill(name, value).await;
        }
        b.submit("step-company").await;
        complete_check(&b, &ca, company_method, REP, &format!("company-{company_method}")).await;
        at_step(&b, "agent").await;
        let agent = [("name", "李四"), ("id_number", "110101199003074338"), ("phone", "13700137000")];
        for (name, value) in agent.into_iter().chain([("email", "lisi@example.com")]) {
            b.fill(name, value).await;
        }
        b.click(&format!("input[name=method][value={agent_method}]")).await;
        for (name, value) in method_extra(agent_method, "") {
            b.fill(&name, value).await;
        }
        std::thread::sleep(Duration::from_millis(1100));
        b.submit("step-agent").await;
        if agent_method.starts_with("face") {
            complete_check(&b, &ca, agent_method, AGENT, &format!("agent-{agent_method}")).await;
        }
        at_step(&b, "product").await;
        cancel_shown(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_is_checked_in_the_browser_by_each_method() {
    let ca = web_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let b = Browser::start("methods-personal", 1200, 1600).await;
    for method in ["bank-account", "phone", "bank-card", "face-sms", "face-qr"] {
        std::thread::sleep(Duration::from_millis(1100));
        b.goto(&format!("{base}/apply/personal-new")).await;
        b.submit("start").await;
        b.click(&format!("input[name=method][value={method}]")).await;
        b.click("input[name=accept_agreement]").await;
        b.submit("step-verification").await;
        let mut fields: Vec<(String, &str)> = vec![
            ("name".into(), "王五"),
            ("id_number".into(), "110101199003074338"),
            ("phone".into(), "13900139000"),
            ("email".into(), "wangwu@example.com"),
        ];
        fields.extend(method_extra(method, ""));
        if method == "bank-account" {
            fields.extend([
                ("bank.account_name".into(), "王五"),
                ("bank.account_number".into(), "6222 0202 0011 2233"),
                ("bank.bank".into(), "工商银行"),
            ]);
        }
        for (name, value) in &fields {
            b.fill(name, value).await;
        }
        b.submit("step-person").await;
        if method != "phone" && method != "bank-card" {
            complete_check(&b, &ca, method, PERSON, &format!("person-{method}")).await;
        }
        at_step(&b, "product").await;
        b.shot(&format!("checked-{method}")).await;
        cancel_shown(&b).await;
    }
}
