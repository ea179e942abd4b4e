//! Rate limits over the real listeners: SMS sends, logins and PIN attempts on the api listener,
//! RA code sends and order writes on the admin listener (and the web front's message), OCSP on
//! the public listener when configured. Each refusal is a 429 with `Retry-After` and a problem
//! document, changes nothing, leaves other phones and clients alone, and passes once the wait
//! is over. Clients come from different loopback addresses (127.0.0.x) to be different clients;
//! windows are a few seconds so the waits stay short.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{json, Value};

use crate::admin::Admin;
use crate::common::*;

const PERSONAL: &str = r#"[["C","CN"],["CN","张三"],["serialNumber","11010519491231002X"]]"#;

/// A test CA with `extra` appended to its config.
async fn ca_with(extra: &str) -> TestCa {
    let mut ca = TestCa::new().await;
    let mut text = std::fs::read_to_string(&ca.config_path).unwrap();
    text.push('\n');
    text.push_str(extra);
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    ca
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// HTTPS to the daemon's TLS listeners from 127.0.0.`from`, with a back-office certificate
/// when `role` names one.
fn tls_client(ca: &TestCa, role: Option<&str>, from: u8) -> reqwest::Client {
    let dir = ca.config_path.parent().unwrap().join("tls");
    let root = reqwest::Certificate::from_pem(&std::fs::read(dir.join("operator-ca.pem")).unwrap()).unwrap();
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .add_root_certificate(root)
        .local_address(loopback(from))
        .resolve("localhost", ca.config.listeners.api)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(role) = role {
        let mut pem = std::fs::read(dir.join(format!("clients/{role}.pem"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("clients/{role}.key"))).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

/// An answer: status, `Retry-After` (when present), body as JSON (Null when not JSON).
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let bytes = response.bytes().await.unwrap();
    Answer { status, retry_after, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

/// A 429 as every limit answers it; returns the wait.
fn limited(a: &Answer, what: &str) -> Duration {
    assert_eq!(a.status, 429, "{what}: {}", a.body);
    let seconds = a.retry_after.unwrap_or_else(|| panic!("{what}: no Retry-After"));
    assert!(seconds >= 1, "{what}: Retry-After {seconds}");
    assert_eq!(a.body["type"], "about:blank", "{what}: {}", a.body);
    assert_eq!(a.body["status"], 429, "{what}: {}", a.body);
    assert_eq!(a.body["retry_after"], seconds, "{what}: the body repeats the header: {}", a.body);
    let title = a.body["title"].as_str().unwrap();
    assert!(title.contains(&format!("try again in {seconds} s")), "{what}: {title}");
    Duration::from_secs(seconds)
}

/// SMS lines the sandbox provider "sent" to a phone.
fn sent_to(ca: &TestCa, phone: &str) -> usize {
    let outbox = std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap_or_default();
    outbox.lines().filter(|l| l.contains(&format!("\"{phone}\""))).count()
}

async fn metrics(daemon: &Daemon) -> String {
    http().get(format!("{}/metrics", daemon.metrics)).send().await.unwrap().text().await.unwrap()
}

fn counted(metrics: &str, limit: &str) -> bool {
    let prefix = format!("cloudca_rate_limited_total{{limit=\"{limit}\"}} ");
    metrics.lines().any(|l| l.strip_prefix(&prefix).is_some_and(|n| n.trim().parse::<u64>().unwrap_or(0) >= 1))
}

#[tokio::test(flavor = "multi_thread")]
async fn sms_sends_logins_and_pin_attempts_are_limited_with_retry_after() {
    let ca = ca_with(
        "[custody]\nsms_min_interval_seconds = 2\nsms_per_hour = 100\nsms_code_attempts = 4\nmax_pin_failures = 4\n\
         [limits]\nsms_per_ip = { count = 4, seconds = 12 }\nattempts_per_credential = { count = 3, seconds = 9 }\n\
         attempts_per_ip = { count = 60, seconds = 60 }\n",
    )
    .await;
    let daemon = Daemon::start(&ca).await;
    let api = format!("https://localhost:{}", ca.config.listeners.api.port());
    let (a, c, d) = (tls_client(&ca, None, 2), tls_client(&ca, None, 4), tls_client(&ca, None, 5));
    let sms = |client: &reqwest::Client, phone: &str| {
        client.post(format!("{api}/v1/mobile/sms")).json(&json!({ "phone": phone }))
    };
    let login = |client: &reqwest::Client, phone: &str, code: &str| {
        client.post(format!("{api}/v1/mobile/login")).json(&json!({ "phone": phone, "code": code }))
    };
    let (p1, p2) = ("+8613800138001", "+8613800138002");
    // Login codes go only to phones with an approval (security review M7).
    for i in 1..=8 {
        let body = format!(r#"{{"profile":"personal","phone":"+861380013800{i}","subject":{PERSONAL}}}"#);
        Admin::new(&ca).json("operator", "POST", "/v1/approvals", Some(&body));
    }

    // Per phone (the database's interval): the second code to P1 waits; P2 does not.
    assert_eq!(send(sms(&a, p1)).await.status, 202);
    let refused = send(sms(&a, p1)).await;
    let wait = limited(&refused, "a second code to one phone");
    assert!(wait <= Duration::from_secs(2), "{wait:?}");
    assert!(refused.body["title"].as_str().unwrap().contains("phone"), "{}", refused.body);
    assert_eq!(sent_to(&ca, p1), 1, "a refused send sent nothing");
    assert_eq!(send(sms(&a, p2)).await.status, 202, "another phone is unaffected");
    tokio::time::sleep(wait).await;
    assert_eq!(send(sms(&a, p1)).await.status, 202, "after Retry-After it works again");
    assert_eq!(sent_to(&ca, p1), 2);

    // Per client address: C's fifth code in a burst waits; D is unaffected.
    for i in 3..=6 {
        assert_eq!(send(sms(&c, &format!("+861380013800{i}"))).await.status, 202);
    }
    let refused = send(sms(&c, "+8613800138007")).await;
    let wait = limited(&refused, "the fifth code from one address");
    assert!(refused.body["title"].as_str().unwrap().contains("address"), "{}", refused.body);
    assert_eq!(sent_to(&ca, "+8613800138007"), 0, "a refused send sent nothing");
    assert_eq!(send(sms(&d, "+8613800138008")).await.status, 202, "another client is unaffected");
    tokio::time::sleep(wait).await;
    assert_eq!(send(sms(&c, "+8613800138007")).await.status, 202, "after Retry-After it works again");

    // Logins: three tries at P1's code, then the fourth waits and spends none of the code's
    // four tries; P2 logs in meanwhile.
    let code = last_code(&ca, p1);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        assert_eq!(send(login(&a, p1, wrong)).await.status, 401);
    }
    let wait = limited(&send(login(&a, p1, &code)).await, "a fourth login try in a burst");
    let p2_session = send(login(&a, p2, &last_code(&ca, p2))).await;
    assert_eq!(p2_session.status, 200, "another phone is unaffected: {}", p2_session.body);
    tokio::time::sleep(wait).await;
    assert_eq!(send(login(&a, p1, &code)).await.status, 200, "the refused try spent nothing of the code");

    // PINs: P2 enrols; three wrong old PINs, then the right one waits and is not counted as a
    // failure (a fourth failure would lock the credential).
    let bearer = format!("Bearer {}", p2_session.body["token"].as_str().unwrap());
    let admin = Admin::new(&ca);
    let body = format!(r#"{{"profile":"personal","phone":"{p2}","subject":{PERSONAL}}}"#);
    let approval = admin.json("operator", "POST", "/v1/approvals", Some(&body));
    let api_client = crate::signing::Api { ca: &ca };
    let token = p2_session.body["token"].as_str().unwrap();
    let proof = crate::signing::prove_face(&api_client, token, "enrol", approval["id"].as_str().unwrap());
    let enrol = json!({ "approval_id": approval["id"], "proof_id": proof, "pin": "246810" });
    let enrolled =
        send(a.post(format!("{api}/v1/mobile/credentials")).header("authorization", &bearer).json(&enrol)).await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    let pin_path = format!("{api}/v1/mobile/credentials/{}/pin", enrolled.body["id"].as_str().unwrap());
    let change = |old: &str| {
        a.post(&pin_path).header("authorization", &bearer).json(&json!({ "old_pin": old, "new_pin": "135790" }))
    };
    for _ in 0..3 {
        assert_eq!(send(change("111111")).await.status, 403);
    }
    let wait = limited(&send(change("246810")).await, "a fourth PIN try in a burst");
    tokio::time::sleep(wait).await;
    let changed = send(change("246810")).await;
    assert_eq!(changed.status, 204, "not locked: the refused try was no failure: {}", changed.body);

    // Counted by limit, and the first refusal of each key audited.
    let text = metrics(&daemon).await;
    for limit in ["sms_per_phone", "sms_per_ip", "attempts_per_credential"] {
        assert!(counted(&text, limit), "cloudca_rate_limited_total{{limit=\"{limit}\"}} missing");
    }
    let instance = ca.open().await;
    assert!(instance.store.count_audit_events("ratelimit.refused").await.unwrap() >= 4);
}

fn company(credit: &str, rep_phone: &str) -> Value {
    json!({ "name": "福建示例科技有限公司", "credit_code": credit,
            "legal_rep": { "name": "张三", "id_number": "11010519491231002X", "phone": rep_phone } })
}

/// The RA API as the web front, for a browser at `browser` (None: no forwarded address).
struct Ra {
    http: reqwest::Client,
    admin: String,
}

impl Ra {
    async fn call(&self, method: &str, path: &str, token: Option<&str>, browser: Option<&str>, body: Value) -> Answer {
        let mut r = self.http.request(method.parse().unwrap(), format!("{}{path}", self.admin)).json(&body);
        if let Some(t) = token {
            r = r.header("x-order-token", t);
        }
        if let Some(b) = browser {
            r = r.header("x-forwarded-for", b);
        }
        send(r).await
    }

    /// An organisation order up to the legal representative's online authorisation.
    async fn order(&self, ca: &TestCa, credit: &str, rep: &str) -> (String, String) {
        let created =
            self.call("POST", "/v1/ra/orders", None, None, json!({ "channel": "default", "flow": "org-new" }));
        let created = created.await;
        assert_eq!(created.status, 201, "{}", created.body);
        let (id, token) = (created.body["order"]["id"].as_str().unwrap(), created.body["token"].as_str().unwrap());
        let agent = json!({ "legal_rep_in_person": false, "name": "李四", "id_number": "110101199003074338",
                            "phone": "+8613700137000", "email": "lisi@example.com", "method": "phone" });
        let steps =
            [("verification", json!({ "method": "phone", "accept_terms": true })), ("company", company(credit, rep))];
        for (step, body) in steps {
            let a = self.call("POST", &format!("/v1/ra/orders/{id}/steps/{step}"), Some(token), None, body).await;
            assert_eq!(a.status, 200, "{step}: {}", a.body);
        }
        // The code the company check texted to the legal representative, then the agent.
        let code = last_code(ca, rep);
        for (step, body) in [("subject-check", json!({ "code": code })), ("agent", agent)] {
            let a = self.call("POST", &format!("/v1/ra/orders/{id}/steps/{step}"), Some(token), None, body).await;
            assert_eq!(a.status, 200, "{step}: {}", a.body);
        }
        (id.to_string(), token.to_string())
    }
}

/// `cloudca --config web.toml web` as a child process, and its base URL.
struct WebFront(std::process::Child, String);

impl Drop for WebFront {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn web_front(ca: &TestCa) -> WebFront {
    let config = ca.config_path.parent().unwrap().join("web.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let listen = text.lines().find_map(|l| l.strip_prefix("listen = \"")).unwrap().trim_end_matches('"').to_string();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cloudca"))
        .args(["--config", config.to_str().unwrap(), "web"])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("web front starts");
    let front = WebFront(child, format!("http://{listen}"));
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(&listen).await.is_ok() {
            return front;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the web front did not start listening on {listen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ra_codes_and_order_writes_are_limited_and_the_web_front_says_when_to_retry() {
    const REP: &str = "+8613800138000";
    const REP2: &str = "+8613900139000";
    let ca = ca_with(
        "[custody]\nsms_min_interval_seconds = 2\nsms_per_hour = 100\n\
         [limits]\nsms_per_ip = { count = 2, seconds = 6 }\nra_writes_per_order = { count = 8, seconds = 24 }\n",
    )
    .await;
    let daemon = Daemon::start(&ca).await;
    let ra = Ra {
        http: tls_client(&ca, Some("web-front"), 1),
        admin: format!("https://localhost:{}", ca.config.listeners.admin.port()),
    };
    let (one, one_token) = ra.order(&ca, "91350100M000100Y43", REP).await;
    let (two, two_token) = ra.order(&ca, "91110000802100433B", REP2).await;
    // Each company check texted its legal representative a code: counted from here, once the
    // phones' interval since then has passed.
    let (rep_sent, rep2_sent) = (sent_to(&ca, REP), sent_to(&ca, REP2));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (a, b) = (Some("198.51.100.7"), Some("198.51.100.8"));
    let code = |id: &str| format!("/v1/ra/orders/{id}/codes/authorization");

    // Browser A: a code to the legal representative; again at once waits (the phone's interval).
    assert_eq!(ra.call("POST", &code(&one), Some(&one_token), a, json!({})).await.status, 202);
    let refused = ra.call("POST", &code(&one), Some(&one_token), a, json!({})).await;
    let phone_wait = limited(&refused, "a second code to one phone");
    assert_eq!(sent_to(&ca, REP), rep_sent + 1, "a refused send sent nothing");
    // A third code from A in a burst waits (the browser's address), even to another phone;
    // browser B sends it.
    let refused = ra.call("POST", &code(&two), Some(&two_token), a, json!({})).await;
    let address_wait = limited(&refused, "a third code from one browser");
    assert!(refused.body["title"].as_str().unwrap().contains("address"), "{}", refused.body);
    assert_eq!(sent_to(&ca, REP2), rep2_sent, "a refused send sent nothing");
    assert_eq!(ra.call("POST", &code(&two), Some(&two_token), b, json!({})).await.status, 202, "B is unaffected");
    assert_eq!(sent_to(&ca, REP2), rep2_sent + 1);
    tokio::time::sleep(phone_wait.max(address_wait)).await;
    assert_eq!(ra.call("POST", &code(&one), Some(&one_token), a, json!({})).await.status, 202, "works again");
    assert_eq!(sent_to(&ca, REP), rep_sent + 2);

    // Writes per order: a third order hammered; another order is unaffected.
    let created = ra.call("POST", "/v1/ra/orders", None, None, json!({ "channel": "default", "flow": "org-new" }));
    let created = created.await;
    let (three, three_token) = (created.body["order"]["id"].as_str().unwrap(), created.body["token"].as_str().unwrap());
    let verification = |id: &str| format!("/v1/ra/orders/{id}/steps/verification");
    let method = json!({ "method": "phone", "accept_terms": true });
    let mut refused = None;
    for _ in 0..12 {
        let answer = ra.call("POST", &verification(three), Some(three_token), None, method.clone()).await;
        if answer.status != 200 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("the order's writes are limited");
    let wait = limited(&refused, "a burst of writes to one order");
    assert!(refused.body["title"].as_str().unwrap().contains("order"), "{}", refused.body);
    let other = ra.call("POST", &verification(&two), Some(&two_token), None, method.clone()).await;
    assert_eq!(other.status, 200, "another order is unaffected: {}", other.body);
    // A wrong token is answered as before (404), not by the limit: the token is checked first.
    assert_eq!(ra.call("POST", &verification(three), Some("guess"), None, method.clone()).await.status, 404);
    tokio::time::sleep(wait).await;
    assert_eq!(ra.call("POST", &verification(three), Some(three_token), None, method).await.status, 200);

    // The web front forwards the browser's address; a refused code send shows, translated,
    // when to try again.
    let web = web_front(&ca).await;
    let browser = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = browser.get(format!("{}/orders", web.1)).send().await.unwrap();
    let csrf = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| v.to_str().unwrap().strip_prefix("cc_csrf=").map(|r| r.split(';').next().unwrap().to_string()))
        .expect("a CSRF cookie");
    let mut message = None;
    for _ in 0..4 {
        let posted = browser
            .post(format!("{}/orders/query/code", web.1))
            .header("cookie", format!("cc_csrf={csrf}"))
            .form(&[("csrf", csrf.as_str()), ("subject", "91350100M000100Y43"), ("phone", "13800138000")])
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 303);
        let location = posted.headers()["location"].to_str().unwrap().to_string();
        // What the page says travels in the flash cookie, not in the URL.
        let flash = posted
            .headers()
            .get_all("set-cookie")
            .iter()
            .find_map(|v| v.to_str().unwrap().strip_prefix("ccf=").map(|r| r.split(';').next().unwrap().to_string()))
            .unwrap_or_default();
        let shown = browser
            .get(format!("{}{location}", web.1))
            .header("cookie", format!("cc_csrf={csrf}; ccf={flash}"))
            .send()
            .await
            .unwrap();
        let text = shown.text().await.unwrap();
        if text.contains("操作过于频繁") {
            message = Some(text);
            break;
        }
    }
    let message = message.expect("the browser's third code in a burst is refused");
    assert!(message.contains("操作过于频繁，请 ") && message.contains(" 秒后再试"), "{message}");

    let text = metrics(&daemon).await;
    for limit in ["sms_per_phone", "sms_per_ip", "ra_writes_per_order"] {
        assert!(counted(&text, limit), "cloudca_rate_limited_total{{limit=\"{limit}\"}} missing");
    }
}

/// An OCSP request for a freshly issued certificate.
fn limited_ocsp_request(ca: &TestCa) -> Vec<u8> {
    let (cert, _) = issue_cli(ca, "limited", "org", ORG_SUBJECT);
    ocsp_request(ca, &cert)
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsp_is_limited_per_client_address_when_configured() {
    let ca = ca_with("[limits]\nocsp_per_ip = { count = 3, seconds = 9 }\n").await;
    let daemon = Daemon::start(&ca).await;
    let der = limited_ocsp_request(&ca);
    let client = |from| reqwest::Client::builder().no_proxy().local_address(loopback(from)).build().unwrap();
    let (a, b) = (client(2), client(3));
    let post = |c: &reqwest::Client| {
        c.post(format!("{}/ocsp/org", daemon.public))
            .header("content-type", "application/ocsp-request")
            .body(der.clone())
    };
    for _ in 0..3 {
        assert_eq!(send(post(&a)).await.status, 200);
    }
    let refused = send(post(&a)).await;
    assert_ne!(
        refused.status, 200,
        "OCSP not limited: the daemon must serve the public listener with `api::public::spawn` (peer addresses)"
    );
    let wait = limited(&refused, "a fourth OCSP request in a burst");
    assert!(refused.body["title"].as_str().unwrap().contains("OCSP"), "{}", refused.body);
    let other = b.post(format!("{}/ocsp/org", daemon.public)).header("content-type", "application/ocsp-request");
    let answer = other.body(der.clone()).send().await.unwrap();
    assert_eq!(answer.status(), 200, "another client is unaffected");
    assert_eq!(answer.headers()["content-type"], "application/ocsp-response");
    tokio::time::sleep(wait).await;
    assert_eq!(send(post(&a)).await.status, 200, "after Retry-After it works again");
    assert!(counted(&metrics(&daemon).await, "ocsp_per_ip"));
}
