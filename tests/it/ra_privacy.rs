//! Personal data only to those who need it (issue 15 point 8; review L10 and L5), through the
//! real listeners with the dev role certificates: operators and auditors get masked orders,
//! a reviewer's whole read and every material read are audited, materials are sandboxed
//! downloads, and the web front never pastes a browser's `kind` into a daemon URL.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

const ID: &str = "11010519491231002X";
const PHONE: &str = "+8613800138000";
const EMAIL: &str = "wangwu@example.com";
const CARD: &str = "6222021234567890128";
/// A PDF (it sniffs as one and is accepted) that is also an HTML page with a script: served
/// inline from the admin origin, a browser that sniffs it or a PDF viewer's scripts run there.
const POLYGLOT: &[u8] = b"%PDF-1.4\n<html><body><script>fetch('/v1/audit')</script></body></html>\n%%EOF\n";

/// HTTPS on the admin listener as one dev role.
struct Role {
    http: reqwest::Client,
    admin: String,
}

impl Role {
    fn new(ca: &TestCa, role: &str) -> Role {
        let dir = ca.config_path.parent().unwrap().join("tls");
        let mut pem = std::fs::read(dir.join(format!("clients/{role}.pem"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("clients/{role}.key"))).unwrap());
        let root = reqwest::Certificate::from_pem(&std::fs::read(dir.join("operator-ca.pem")).unwrap()).unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .use_rustls_tls()
            .identity(reqwest::Identity::from_pem(&pem).unwrap())
            .add_root_certificate(root)
            .build()
            .unwrap();
        Role { http, admin: format!("https://localhost:{}", ca.config.listeners.admin.port()) }
    }

    async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> reqwest::Response {
        let mut r = self.http.request(method.parse().unwrap(), format!("{}{path}", self.admin));
        if let Some(t) = token {
            r = r.header("x-order-token", t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.expect("answered")
    }

    async fn ok(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let response = self.raw(method, path, token, body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// `ROLE:FINGERPRINT`, as audit events name the caller.
    async fn actor(&self, role: &str) -> String {
        format!("{role}:{}", self.ok("GET", "/v1/whoami", None, None).await["fingerprint"].as_str().unwrap())
    }
}

/// A personal order (bank-card check) with the applicant's ID number, phone, e-mail and card
/// entered and the polyglot uploaded as the ID card's front: (id, token).
async fn personal_order(web: &Role) -> (String, String) {
    let v = web.ok("POST", "/v1/ra/orders", None, Some(json!({ "channel": "default", "flow": "personal-new" }))).await;
    let (id, token) = (v["order"]["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string());
    let step = |name: &str| format!("/v1/ra/orders/{id}/steps/{name}");
    web.ok("POST", &step("verification"), Some(&token), Some(json!({ "method": "bank-card", "accept_terms": true })))
        .await;
    let person = json!({ "name": "王五", "id_number": ID, "phone": PHONE, "email": EMAIL, "card": CARD });
    web.ok("POST", &step("person"), Some(&token), Some(person)).await;
    let product = json!({ "product": "personal-cloud-1y", "invoice": true, "invoice_email": EMAIL });
    web.ok("POST", &step("product"), Some(&token), Some(product)).await;
    let put = web
        .http
        .put(format!("{}/v1/ra/orders/{id}/materials/id-front", web.admin))
        .header("x-order-token", &token)
        .body(POLYGLOT.to_vec());
    assert_eq!(put.send().await.unwrap().status(), 201, "the polyglot sniffs as a PDF");
    (id, token)
}

/// The auditor's view of audit events of one kind.
async fn audit_events(auditor: &Role, kind: &str) -> Vec<Value> {
    let v = auditor.ok("GET", &format!("/v1/audit?kind={kind}"), None, None).await;
    v["items"].as_array().unwrap().clone()
}

/// Whether any identifier of the applicant shows in full.
fn unmasked(v: &Value) -> Vec<&'static str> {
    let text = v.to_string();
    [ID, PHONE, EMAIL, CARD].into_iter().filter(|s| text.contains(s)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_and_auditors_see_masked_orders_and_only_a_reviewers_audited_read_shows_them_whole() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Role::new(&ca, "web-front");
    let (id, _) = personal_order(&web).await;
    let reviewer = Role::new(&ca, "reviewer");
    let auditor = Role::new(&ca, "auditor");
    // An operator runs the CA and an auditor reads the log; neither decides on applications.
    // Before the fix both read every applicant's ID number, phone, e-mail and bank card, in
    // the search list and one by one, and nothing recorded that they had.
    for role in ["operator", "auditor"] {
        let who = Role::new(&ca, role);
        let list = who.ok("GET", "/v1/orders", None, None).await;
        let listed = list["items"].as_array().unwrap().iter().find(|o| o["id"] == id.as_str()).unwrap().clone();
        assert_eq!(unmasked(&listed), Vec::<&str>::new(), "{role} list: {listed}");
        let one = who.ok("GET", &format!("/v1/orders/{id}"), None, None).await;
        assert_eq!(unmasked(&one), Vec::<&str>::new(), "{role} read: {one}");
        let person = &one["data"]["person"];
        assert_eq!(person["id_number"], "110***********002X", "{role}: masked as the applicant sees it");
        assert_eq!(person["phone"], "+86*******8000");
        assert_eq!(person["card"], "622************0128");
        assert_eq!(person["name"], "王五", "names stay");
        assert_eq!(one["subject_key"], "110***********002X");
    }
    // Lists are masked for the reviewer too: a list is read in bulk and not audited per order.
    let list = reviewer.ok("GET", "/v1/orders", None, None).await;
    assert_eq!(unmasked(&list), Vec::<&str>::new(), "reviewer list: {list}");
    assert!(audit_events(&auditor, "order.identity_read").await.is_empty(), "masked reads are not audited");
    // The reviewer who decides reads the order whole, and the read is on the record first.
    let whole = reviewer.ok("GET", &format!("/v1/orders/{id}"), None, None).await;
    assert_eq!(whole["data"]["person"]["id_number"], ID);
    assert_eq!(whole["data"]["person"]["card"], CARD);
    assert_eq!(whole["agent_phone"], PHONE);
    let events = audit_events(&auditor, "order.identity_read").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"], reviewer.actor("reviewer").await.as_str(), "who");
    assert_eq!(events[0]["detail"]["order"], id.as_str(), "which order");
    assert_eq!(unmasked(&events[0]), Vec::<&str>::new(), "the audit log holds no identifier: {}", events[0]);
}

/// An approval names its subject's identifier and phone; the audit entry that records it is
/// read by auditors in bulk, so it shows them masked (before, both stood there whole).
#[tokio::test(flavor = "multi_thread")]
async fn the_audit_of_an_approval_masks_the_subjects_identifier_and_phone() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let operator = Role::new(&ca, "operator");
    let auditor = Role::new(&ca, "auditor");
    let subject = json!([["C", "CN"], ["CN", "王五"], ["serialNumber", ID]]);
    let made = operator
        .ok("POST", "/v1/approvals", None, Some(json!({ "profile": "personal", "phone": PHONE, "subject": subject })))
        .await;
    let events = audit_events(&auditor, "approval.created").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["approval"], made["id"], "the entry names the approval");
    assert_eq!(events[0]["detail"]["identifier"], "110***********002X");
    assert_eq!(events[0]["detail"]["phone"], "+86*******8000");
    assert_eq!(unmasked(&events[0]), Vec::<&str>::new(), "{}", events[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_material_that_is_also_a_web_page_is_an_audited_sandboxed_download_for_reviewers_only() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Role::new(&ca, "web-front");
    let (id, _) = personal_order(&web).await;
    let reviewer = Role::new(&ca, "reviewer");
    let auditor = Role::new(&ca, "auditor");
    let order = reviewer.ok("GET", "/v1/orders", None, None).await["items"][0].clone();
    let href = order["materials"][0]["href"].as_str().unwrap().to_string();
    let sha = order["materials"][0]["sha256"].as_str().unwrap().to_string();
    for role in ["operator", "auditor"] {
        assert_eq!(Role::new(&ca, role).raw("GET", &href, None, None).await.status(), 403, "{role}");
    }
    // The applicant's "PDF" is an HTML page as well. Served inline in the back office's
    // origin, a sniffing browser or the PDF viewer would run its script with the officer's
    // session; served as an attachment in a sandbox it is only ever a file.
    let response = reviewer.raw("GET", &href, None, None).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(disposition.contains(&format!("{id}-id-front.pdf")), "{disposition}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.split(';').any(|d| d.trim() == "sandbox"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(response.bytes().await.unwrap(), POLYGLOT);
    // Who read which material of which order is on the record.
    let events = audit_events(&auditor, "order.material_read").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"], reviewer.actor("reviewer").await.as_str());
    assert_eq!(events[0]["detail"]["order"], id.as_str());
    assert_eq!(events[0]["detail"]["kind"], "id-front");
    assert_eq!(events[0]["detail"]["sha256"], sha.as_str());
    // A material that is not this order's is not found, and nothing is served.
    let other = format!("/v1/orders/{id}/materials/{}", "0".repeat(64));
    assert_eq!(reviewer.raw("GET", &other, None, None).await.status(), 404);
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cloudca --config web.toml web`, and its base URL.
async fn web_front(ca: &TestCa) -> (Child, String) {
    let config = ca.config_path.parent().unwrap().join("web.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let listen = text.lines().find_map(|l| l.strip_prefix("listen = \"")).unwrap().trim_end_matches('"').to_string();
    let child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_cloudca"))
            .args(["--config", config.to_str().unwrap(), "web"])
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("web front starts"),
    );
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(&listen).await.is_ok() {
            return (child, format!("http://{listen}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the web front did not start listening on {listen}");
}

/// Requests the daemon's admin listener has answered so far.
async fn admin_requests(daemon: &Daemon) -> u64 {
    let text = http().get(format!("{}/metrics", daemon.metrics)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("cloudca_http_requests_total{") && l.contains("listener=\"admin\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The browser's upload form as multipart, by hand (the test client has no multipart).
fn upload_form(csrf: &str, kind: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "cloudca-privacy-test";
    let mut body = Vec::new();
    for (name, value) in [("csrf", csrf), ("kind", kind)] {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    body.extend(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n")
            .bytes(),
    );
    body.extend(file);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_front_refuses_an_upload_kind_outside_the_list_without_calling_the_daemon() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let web = Role::new(&ca, "web-front");
    let v = web.ok("POST", "/v1/ra/orders", None, Some(json!({ "channel": "default", "flow": "personal-new" }))).await;
    let (id, token) = (v["order"]["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string());
    // The applicant's browser, with its CSRF cookie and the order's cookie.
    let browser = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = browser.get(&base).send().await.unwrap();
    let set = page.headers()["set-cookie"].to_str().unwrap().to_string();
    let csrf = set.strip_prefix("cc_csrf=").unwrap().split(';').next().unwrap().to_string();
    let cookie = format!("cc_csrf={csrf}; cco_{id}={token}");
    let upload = |kind: &'static str| {
        let (content_type, body) = upload_form(&csrf, kind, POLYGLOT);
        browser
            .post(format!("{base}/orders/{id}/materials"))
            .header("cookie", cookie.clone())
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    // The form's `kind` is the browser's to choose. Pasted into the daemon path, `../approvals`
    // made the web front PUT to another admin endpoint with its own certificate.
    for kind in ["../approvals", "../../../approvals", "passport"] {
        let before = admin_requests(&daemon).await;
        let response = upload(kind).await.unwrap();
        assert_eq!(response.status(), 303, "{kind}");
        let location = response.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(location, format!("/orders/{id}"), "{kind}");
        let told = flash(&response);
        assert!(told["e"].as_str().is_some_and(|e| !e.is_empty()), "{kind}: told why: {told}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(admin_requests(&daemon).await, before, "{kind}: the daemon was not called");
    }
    // A kind from the list goes through (and is counted: the count above can see a call).
    let before = admin_requests(&daemon).await;
    let response = upload("id-front").await.unwrap();
    assert_eq!(flash(&response)["m"], "uploaded");
    assert_eq!(admin_requests(&daemon).await, before + 1);
}

/// What the web front's redirect tells the next page: its flash cookie `ccf` (base64url JSON;
/// messages left the URL).
fn flash(response: &reqwest::Response) -> serde_json::Value {
    use base64::Engine;
    let value = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| {
            v.to_str().ok()?.strip_prefix("ccf=").map(|r| r.split(';').next().unwrap_or_default().to_string())
        })
        .unwrap_or_default();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value).unwrap_or_default();
    serde_json::from_slice(&json).unwrap_or_default()
}
