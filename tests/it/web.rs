//! The web front in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver, with JavaScript switched off to prove the core
//! path needs none. The web front runs as its own process (`cloudca web`) against a real
//! daemon; the officer uses the back-office API, the holder the reference app. Screenshots
//! of each step go to `target/screenshots/` (test artefacts).

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::{json, Value};

use crate::common::*;
use crate::signing::Reference;

const REP: &str = "+8613800138000";
const AGENT: &str = "+8613700137000";
const CREDIT: &str = "91350100M000100Y43";
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n";

/// A dev instance with quick SMS codes and a one-second RA pass.
pub(crate) async fn web_ca() -> TestCa {
    let mut ca = TestCa::new().await;
    let mut text = std::fs::read_to_string(&ca.config_path).unwrap();
    text.push_str("\n[custody]\nsms_min_interval_seconds = 1\nsms_per_hour = 100\n");
    text = text.replace("[ra]\n", "[ra]\ntask_seconds = 1\nprovider_timeout_ms = 700\n");
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    ca
}

/// A child process killed when dropped.
pub(crate) struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver and every browser process it started, in a process group of their own,
/// killed as a group when dropped. Killing chromedriver alone left each test's Chromium
/// running: a full test run leaked about a hundred browsers and ran the machine out of memory
/// (browser tests then hung in the PostgreSQL pass).
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`).
        let group = -(self.0.id() as libc::pid_t);
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

pub(crate) async fn wait_listening(port: u16, what: &str) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not start listening on {port}");
}

/// `cloudca --config web.toml web`, and its base URL.
pub(crate) async fn web_front(ca: &TestCa) -> (Child, String) {
    let config = ca.config_path.parent().unwrap().join("web.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let port: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
        .unwrap()
        .trim_end_matches('"')
        .parse()
        .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cloudca"))
        .args(["--config", config.to_str().unwrap(), "web"])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("web front starts");
    wait_listening(port, "the web front").await;
    (Child(child), format!("http://127.0.0.1:{port}"))
}

/// Headless Chromium through chromedriver; JavaScript off.
pub(crate) struct Browser {
    pub(crate) client: Client,
    _driver: Driver,
    shots: std::cell::RefCell<PathBuf>,
    count: std::cell::Cell<u32>,
}

impl Browser {
    pub(crate) async fn start(test: &str, width: u32, height: u32) -> Browser {
        Browser::start_at_home(test, width, height, None).await
    }

    /// With `home` as the browser's `HOME`: its NSS database (`.pki/nssdb`) is where Chromium
    /// finds client certificates and trusted CAs (the review pages' test puts a reviewer's there).
    pub(crate) async fn start_at_home(test: &str, width: u32, height: u32, home: Option<&Path>) -> Browser {
        // fantoccini's rustls brings a second crypto provider into the test binary; pick one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let [port] = reserve_ports();
        let mut driver = std::process::Command::new("chromedriver");
        if let Some(home) = home {
            driver.env("HOME", home);
        }
        let driver = std::os::unix::process::CommandExt::process_group(&mut driver, 0)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (Debian chromium-driver) must be installed");
        let driver = Driver(driver);
        wait_listening(port, "chromedriver").await;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-proxy-server", format!("--window-size={width},{height}"), "--lang=zh-CN"],
                "prefs": { "profile.managed_default_content_settings.javascript": 2 },
            }),
        );
        let client = fantoccini::ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        let b = Browser {
            client,
            _driver: driver,
            shots: std::cell::RefCell::new(PathBuf::new()),
            count: std::cell::Cell::new(0),
        };
        b.chapter(test);
        b
    }

    /// Screenshots from now on go to `target/screenshots/{name}/`, numbered from 01 (one
    /// folder per flow when one browser walks several).
    pub(crate) fn chapter(&self, name: &str) {
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots").join(name);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        *self.shots.borrow_mut() = shots;
        self.count.set(0);
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Saves a screenshot of the page as `NN-name.png`.
    pub(crate) async fn shot(&self, name: &str) {
        let n = self.count.get() + 1;
        self.count.set(n);
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.borrow().join(format!("{n:02}-{name}.png")), png).unwrap();
    }

    pub(crate) async fn fill(&self, name: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(&format!("form [name=\"{name}\"]")))
            .await
            .unwrap_or_else(|e| panic!("field {name}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    pub(crate) async fn click(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    }

    /// Submits the form with this id and waits for the next page (the old one goes stale).
    pub(crate) async fn submit(&self, form: &str) {
        self.press(&format!("form#{form} button[type=submit]")).await;
    }

    /// Clicks the button `css` and waits for the next page (the old one goes stale).
    pub(crate) async fn press(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.click(css).await;
        for _ in 0..200 {
            if old.attr("lang").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pressing {css} loaded no page");
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
    }

    /// An attribute, or None when the element is missing or went stale (a page that refreshes
    /// itself, like the paying order's, may replace it between find and read).
    pub(crate) async fn attr(&self, css: &str, attr: &str) -> Option<String> {
        self.client.find(Locator::Css(css)).await.ok()?.attr(attr).await.ok()?
    }

    /// The step the order page shows as current.
    pub(crate) async fn current_step(&self) -> Option<String> {
        self.attr("ol.steps li.current", "data-step").await
    }

    /// Reloads the page until `css` has `attr` = `value` (bounded).
    pub(crate) async fn wait_attr(&self, css: &str, attr: &str, value: &str) {
        for _ in 0..60 {
            if self.attr(css, attr).await.as_deref() == Some(value) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.client.refresh().await.unwrap();
        }
        panic!("{css} never had {attr}={value}: {}", self.client.source().await.unwrap());
    }
}

/// Presses a "send code" button (after the one-second interval) and returns the code.
pub(crate) async fn code(b: &Browser, ca: &TestCa, form: &str, phone: &str) -> String {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.submit(form).await;
    last_code(ca, phone)
}

/// The §4.3 identity check on the page shown (order management or the certificate services):
/// the identifier and the phone as typed (`typed`), a code to that phone (`phone`, as the
/// outbox has it), then the code; the page after it.
pub(crate) async fn identity_check(b: &Browser, ca: &TestCa, subject: &str, typed: &str, phone: &str) {
    b.fill("subject", subject).await;
    b.fill("phone", typed).await;
    let query_code = code(b, ca, "query-code", phone).await;
    b.client.find(Locator::Css("form#query [name=code]")).await.unwrap().send_keys(&query_code).await.unwrap();
    b.submit("query").await;
}

/// A back-office call with a dev client certificate.
async fn back_office(ca: &TestCa, role: &str, method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
    let dir = ca.config_path.parent().unwrap().join("tls");
    let mut pem = std::fs::read(dir.join(format!("clients/{role}.pem"))).unwrap();
    pem.extend(std::fs::read(dir.join(format!("clients/{role}.key"))).unwrap());
    let http = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(dir.join("operator-ca.pem")).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let mut r = http.request(method, url);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let response = r.send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.json().await.unwrap_or(Value::Null)
}

/// The agent 李四 (the RA tests' `AGENT`), as typed into the agent step.
pub(crate) const LISI: [(&str, &str); 4] =
    [("name", "李四"), ("id_number", "110101199003074338"), ("phone", "13700137000"), ("email", "lisi@example.com")];

/// The agent step: `who` typed in, checked by phone, a screenshot named `shot` if given, and
/// submitted.
pub(crate) async fn agent_step(b: &Browser, who: [(&str, &str); 4], shot: Option<&str>) {
    for (name, value) in who {
        b.fill(name, value).await;
    }
    // An offline order's agent is only collected: its form has no method to choose.
    if b.client.find(Locator::Css("input[name=method][value=phone]")).await.is_ok() {
        b.click("input[name=method][value=phone]").await;
    }
    // A service on a personal certificate takes the user agreement here (no verification step).
    if b.client.find(Locator::Css("input[name=accept_terms]")).await.is_ok() {
        b.click("input[name=accept_terms]").await;
    }
    if let Some(name) = shot {
        b.shot(name).await;
    }
    b.submit("step-agent").await;
}

/// The company check texted the legal representative a code: the page says so (the phone
/// masked) and takes the code they read out, as the sandbox outbox has it.
pub(crate) async fn legal_rep_code(b: &Browser, ca: &TestCa, rep_phone: &str, shot: Option<&str>) {
    assert_eq!(b.current_step().await.as_deref(), Some("subject-check"));
    let said = b.text("#legal-rep-code").await;
    assert!(said.contains(&rep_phone[rep_phone.len() - 4..]) && !said.contains(rep_phone), "{said}");
    b.fill("code", &last_code(ca, rep_phone)).await;
    if let Some(name) = shot {
        b.shot(name).await;
    }
    b.submit("step-subject-check").await;
}

/// Verification, company (with the legal representative's code) and (optionally) the agent of
/// an organisation application.
pub(crate) async fn org_first_steps(b: &Browser, ca: &TestCa, base: &str, rep_phone: &str, with_agent: bool) {
    b.goto(&format!("{base}/apply/org-new")).await;
    b.submit("start").await;
    b.click("input[name=method][value=phone]").await;
    b.click("input[name=accept_agreement]").await;
    b.submit("step-verification").await;
    for (name, value) in [
        ("name", "福建示例科技有限公司"),
        ("credit_code", CREDIT),
        ("legal_rep.name", "张三"),
        ("legal_rep.id_number", "11010519491231002X"),
        ("legal_rep.phone", rep_phone),
    ] {
        b.fill(name, value).await;
    }
    b.submit("step-company").await;
    legal_rep_code(b, ca, rep_phone, None).await;
    if with_agent {
        agent_step(b, LISI, None).await;
    }
}

/// The newest URL texted to `phone` whose text contains `marker` (the sandbox outbox): a
/// letter link (`/letter/`), a face-check link (`/sandbox/face/`).
pub(crate) fn texted_url(ca: &TestCa, phone: &str, marker: &str) -> String {
    let outbox = std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap();
    let text = outbox
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|m| m["to"] == phone && m["text"].as_str().is_some_and(|t| t.contains(marker)))
        .unwrap_or_else(|| panic!("a link with {marker} was texted to {phone}"))["text"]
        .as_str()
        .unwrap()
        .to_string();
    let start = text.find("http").expect("a URL in the text");
    let url: String = text[start..].chars().take_while(|c| c.is_ascii() && !c.is_ascii_whitespace()).collect();
    url.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).to_string()
}

/// The legal representative on their own phone (another browser): an altered link is not
/// found; the real one shows the letter and its PDF; a wrong code is refused; their code signs.
async fn rep_signs_the_letter(ca: &TestCa, link: &str) {
    assert!(link.contains("/letter/"), "{link}");
    let (head, secret) = link.rsplit_once('.').unwrap();
    let first = secret.chars().next().unwrap();
    let tampered = format!("{head}.{}{}", if first == 'A' { 'B' } else { 'A' }, &secret[1..]);
    let rep = Browser::start("letter", 390, 1400).await;
    rep.goto(&tampered).await;
    assert_eq!(rep.text(".alert").await, "404", "an altered link is the not-found page");
    assert!(rep.client.find(Locator::Css("#letter")).await.is_err());
    assert_eq!(http().get(&tampered).send().await.unwrap().status(), 404);
    rep.shot("altered-link-not-found").await;

    rep.goto(link).await;
    assert_eq!(rep.text("#letter-company").await, "福建示例科技有限公司");
    assert_eq!(rep.text("#letter-credit-code").await, CREDIT);
    assert_eq!(rep.text("#letter-agent").await, "李四");
    let masked = rep.text("#letter-agent-id").await;
    assert!(!masked.contains("110101199003074338") && masked.ends_with("4338"), "masked: {masked}");
    assert!(!rep.text("#letter-phone").await.contains("13800138000"), "the phone is masked");
    assert!(rep.text("#letter-text").await.contains("张三"));
    rep.shot("letter").await;
    let pdf = http().get(format!("{link}/pdf")).send().await.unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert!(pdf.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF"));

    let rep_code = code(&rep, ca, "letter-code", REP).await;
    assert!(rep.text(".alert").await.contains("验证码已发送"));
    let wrong = if rep_code == "000000" { "111111" } else { "000000" };
    rep.fill("code", wrong).await;
    rep.submit("letter-sign").await;
    assert!(rep.text(".alert").await.contains("验证码错误"), "a wrong code is refused");
    assert!(rep.client.find(Locator::Css("#signed")).await.is_err());
    rep.shot("letter-wrong-code").await;
    rep.fill("code", &rep_code).await;
    rep.shot("letter-code-typed").await;
    rep.submit("letter-sign").await;
    assert!(rep.text("#signed").await.contains("已签署"), "signed");
    assert!(rep.client.find(Locator::Css("form#letter-sign")).await.is_err(), "no form once signed");
    rep.shot("letter-signed").await;
    rep.client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organisation_applies_in_the_browser_and_its_agent_signs_with_the_certificate() {
    let ca = web_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let b = Browser::start("organisation", 1200, 1700).await;
    b.goto(&base).await;
    assert_eq!(b.attr("html", "lang").await.as_deref(), Some("zh-CN"), "Chinese by default");
    b.shot("home").await;
    b.click("#flow-org-new").await;
    let required = b.text("#required-materials").await;
    assert!(
        required.contains("营业执照") && required.contains("授权书"),
        "materials listed before the start: {required}"
    );
    b.shot("before-you-start").await;
    b.submit("start").await;
    assert_eq!(b.current_step().await.as_deref(), Some("verification"));
    // B2: whether the legal representative takes part, then the method; B3: the agreement.
    let groups = b.text("fieldset.grouped").await;
    assert!(groups.contains("法定代表人不参与") && groups.contains("法定代表人参与"), "{groups}");
    b.click("input[name=method][value=phone]").await;
    b.submit("step-verification").await;
    assert!(b.text(".error[data-field=accept_agreement]").await.contains("同意用户协议"), "nothing goes on unagreed");
    assert_eq!(b.current_step().await.as_deref(), Some("verification"));
    b.click("input[name=method][value=phone]").await;
    b.click("input[name=accept_agreement]").await;
    b.shot("verification").await;
    b.submit("step-verification").await;
    // A typing mistake in the credit code is named inline and the other values stay.
    b.fill("name", "福建示例科技有限公司").await;
    b.fill("credit_code", "91350100M000100Y44").await;
    b.fill("legal_rep.name", "张三").await;
    b.fill("legal_rep.id_number", "11010519491231002X").await;
    b.fill("legal_rep.phone", "13800138000").await;
    b.submit("step-company").await;
    let error = b.text(".error[data-field=credit_code]").await;
    assert!(error.contains("校验位"), "inline message: {error}");
    b.shot("company-inline-error").await;
    b.fill("credit_code", CREDIT).await;
    b.submit("step-company").await;
    legal_rep_code(&b, &ca, "13800138000", Some("legal-rep-code")).await;
    assert_eq!(b.current_step().await.as_deref(), Some("agent"));
    agent_step(&b, LISI, Some("agent")).await;
    b.click("input[name=product][value=org-cloud-1y]").await;
    b.click("input[name=invoice]").await;
    b.shot("product").await;
    b.submit("step-product").await;
    // 商品信息确认: what was entered, read-only, before the uploads; the invoice's fixed title.
    let confirmation = b.text("#confirmation").await;
    assert!(confirmation.contains("福建示例科技有限公司") && confirmation.contains("发票抬头"), "{confirmation}");
    b.shot("confirmation").await;
    b.submit("confirm").await;
    assert_eq!(b.current_step().await.as_deref(), Some("materials"));
    let file = ca.path("licence.pdf");
    std::fs::write(&file, PDF).unwrap();
    for kind in ["business-licence", "id-front", "id-back"] {
        let input = b.client.find(Locator::Css(&format!("#upload-{kind} input[type=file]"))).await.unwrap();
        input.send_keys(file.to_str().unwrap()).await.unwrap();
        b.submit(&format!("upload-{kind}")).await;
    }
    // The legal representative authorises the agent online instead of a stamped letter: the
    // agent's page texts them a link, and they read and sign the letter on their own phone.
    assert!(
        b.client.find(Locator::Css("#online-authorization [name=code]")).await.is_err(),
        "the agent's page has no field for the legal representative's code"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.submit("code-authorization").await;
    assert!(b.text("#link-sent").await.contains("法定代表人"), "the page says where the link went");
    b.shot("signing-link-sent").await;
    let link = texted_url(&ca, REP, "/letter/");
    rep_signs_the_letter(&ca, &link).await;
    // The agent's page continues once the letter is signed: no letter to upload any more.
    b.press("a#refresh-authorization").await;
    assert!(b.client.find(Locator::Css("#online-authorization")).await.is_err(), "authorised: {link}");
    assert!(b.client.find(Locator::Css("li[data-kind=authorization-letter]")).await.is_err());
    assert!(b.text("#authorized-online").await.contains("已在线签署"));
    b.shot("materials").await;
    b.submit("step-materials").await;
    assert_eq!(b.current_step().await.as_deref(), Some("signature"));
    assert!(b.text("#terms").await.contains("云证书服务协议"));
    let agent_code = code(&b, &ca, "code-signature", AGENT).await;
    b.fill("code", &agent_code).await;
    b.click("input[name=accept_terms]").await;
    b.shot("signature").await;
    b.submit("step-signature").await;
    b.click("input[name=method][value=wechat]").await;
    b.submit("step-payment").await;
    let qr = b.attr("img#pay-qr", "data-url").await.expect("the payment QR code");
    b.shot("payment-qr").await;
    // The payer scans and pays (the sandbox provider's page); the order page moves on by
    // itself (a meta refresh: no JavaScript).
    let root = reqwest::Certificate::from_pem(
        &std::fs::read(ca.config_path.parent().unwrap().join("tls/operator-ca.pem")).unwrap(),
    )
    .unwrap();
    let http = reqwest::Client::builder().no_proxy().use_rustls_tls().add_root_certificate(root).build().unwrap();
    assert_eq!(http.post(&qr).send().await.unwrap().status(), 200);
    let order_url = b.client.current_url().await.unwrap().to_string();
    let id = b.text("#order-id").await;
    for _ in 0..30 {
        if b.attr("#order-state", "data-state").await.as_deref() == Some("review") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        b.attr("#order-state", "data-state").await.as_deref(),
        Some("review"),
        "moved on when the webhook landed"
    );
    b.shot("paid-in-review").await;

    // The officer approves through the back-office API.
    let admin = format!("https://localhost:{}", ca.config.listeners.admin.port());
    back_office(
        &ca,
        "reviewer",
        reqwest::Method::POST,
        &format!("{admin}/v1/orders/{id}/decision"),
        Some(json!({ "approve": true })),
    )
    .await;
    b.goto(&order_url).await;
    assert_eq!(b.attr("#order-state", "data-state").await.as_deref(), Some("approved"));
    b.shot("approved").await;

    // The agent gets the certificate with the reference app and signs through the QR flow.
    let reference = Reference { ca: &ca, state: ca.path("app.json").to_str().unwrap().to_string() };
    reference.login(AGENT);
    let credential = reference.enroll();
    let (_, sig, png) = reference.sign(&credential).await;
    assert!(std::fs::metadata(&sig).unwrap().len() > 0 && std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    // Order management shows it completed, after an SMS check of the agent's phone.
    b.goto(&format!("{base}/orders")).await;
    identity_check(&b, &ca, CREDIT, "13700137000", AGENT).await;
    b.wait_attr(&format!("tr[data-order=\"{id}\"]"), "data-state", "completed").await;
    b.shot("order-management-completed").await;
    b.goto(&format!("{base}/orders/{id}")).await;
    assert!(b.client.find(Locator::Css("a#invoice")).await.is_ok(), "the invoice can be downloaded");
    // F4: the finished order's page shows what was entered, read-only, masked as on the
    // confirmation.
    let details = b.text("#details").await;
    for shown in ["福建示例科技有限公司", CREDIT, "张三", "李四", "机构云证书（1年）", "¥400.00"]
    {
        assert!(details.contains(shown), "{shown} in {details}");
    }
    for full in ["13800138000", "13700137000", "11010519491231002X", "110101199003074338"] {
        assert!(!details.contains(full), "{full} masked in {details}");
    }
    assert!(b.client.find(Locator::Css("#details a.back")).await.is_err(), "nothing to change any more");
    b.shot("completed-details").await;
    // F6: the invoice issued again: the first voided by a red-letter invoice (冲红), a new
    // number, both e-mailed to the same address.
    let invoices = || {
        let mail = std::fs::read_to_string(ca.config.data_dir.join("email-outbox.jsonl")).unwrap_or_default();
        mail.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|m| m["to"] == "lisi@example.com" && m["attachments"].as_array().is_some_and(|a| !a.is_empty()))
            .map(|m| {
                (m["subject"].as_str().unwrap().to_string(), m["attachments"][0]["name"].as_str().unwrap().to_string())
            })
            .collect::<Vec<_>>()
    };
    let before = invoices();
    assert_eq!(before.len(), 1, "one invoice e-mailed so far: {before:?}");
    let first = before[0].1.trim_end_matches(".pdf").to_string();
    b.submit("reissue-invoice").await;
    let after = invoices();
    assert_eq!(after.len(), 3, "the credit note and the new invoice: {after:?}");
    assert!(after[1].0.contains("红字发票") && after[1].0.contains(&first), "the first one voided: {after:?}");
    assert!(after[2].0.contains("电子发票") && !after[2].1.contains(&first), "a new number: {after:?}");
    b.shot("invoice-sent-again").await;
    // English is one click away.
    b.click("#lang").await;
    assert_eq!(b.attr("html", "lang").await.as_deref(), Some("en"));
    b.shot("home-english").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_application_resumes_a_duplicate_is_refused_and_a_failed_check_offers_the_offline_path() {
    let ca = web_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    // A phone-sized window: the pages must work there too.
    let first = Browser::start("interrupted", 390, 1400).await;
    org_first_steps(&first, &ca, &base, "13800138000", true).await;
    assert_eq!(first.current_step().await.as_deref(), Some("product"));
    let id = first.text("#order-id").await;
    first.shot("interrupted-at-product").await;
    first.client.close().await.unwrap();

    // Another browser (no cookies): the agent finds the order through order management with
    // their own phone (the one the agent check verified), and continues it with a fresh code
    // to that phone: the query alone only reads.
    let again = Browser::start("resumed", 390, 1400).await;
    again.goto(&format!("{base}/orders")).await;
    identity_check(&again, &ca, CREDIT, "13700137000", AGENT).await;
    again.shot("found").await;
    let resume_code = code(&again, &ca, &format!("resume-code-{id}"), AGENT).await;
    again
        .client
        .find(Locator::Css(&format!("form#resume-{id} [name=code]")))
        .await
        .unwrap()
        .send_keys(&resume_code)
        .await
        .unwrap();
    again.submit(&format!("resume-{id}")).await;
    assert_eq!(again.current_step().await.as_deref(), Some("product"), "resumed at the step it stopped");
    again.shot("resumed").await;

    // A second application for the same credit code is refused, without naming the open one.
    org_first_steps(&again, &ca, &base, "13800138000", false).await;
    let alert = again.text(".alert").await;
    assert!(alert.contains("未完成的申请") && !alert.contains(&id), "the message names no order: {alert}");
    again.shot("duplicate-refused").await;

    // A failed identity check: correct the data, or the offline path with its printable form.
    let other = "91110000802100433B";
    again.goto(&format!("{base}/apply/org-new")).await;
    again.submit("start").await;
    again.click("input[name=method][value=phone]").await;
    again.click("input[name=accept_agreement]").await;
    again.submit("step-verification").await;
    for (name, value) in [
        ("name", "北京示例有限公司"),
        ("credit_code", other),
        ("legal_rep.name", "王五"),
        ("legal_rep.id_number", "110101199003074338"),
        ("legal_rep.phone", "13800130000"),
    ] {
        again.fill(name, value).await;
    }
    again.submit("step-company").await;
    assert!(again.text(".alert").await.contains("身份核验未通过"));
    assert!(again.client.find(Locator::Css("#offline-path a#print-form")).await.is_ok(), "the form is offered");
    assert_eq!(
        again.attr("input[name=\"legal_rep.phone\"]", "value").await.as_deref(),
        Some("13800130000"),
        "values kept for correcting"
    );
    again.shot("check-failed").await;
    again.submit("go-offline").await;
    assert_eq!(again.attr("#order-state", "data-state").await.as_deref(), Some("offline"));
    // Handbook B11: offline, the agent is collected (not checked), the product bought and paid
    // online; only then is the form printed with them.
    assert_eq!(again.current_step().await.as_deref(), Some("agent"));
    again.shot("offline").await;
    assert!(again.client.find(Locator::Css("a#print-form")).await.is_err(), "the form once the steps are done");
    agent_step(&again, LISI, Some("offline-agent")).await;
    assert_eq!(again.current_step().await.as_deref(), Some("product"));
    again.click("input[name=product][value=org-cloud-1y]").await;
    again.submit("step-product").await;
    again.click("input[name=method][value=wechat]").await;
    again.submit("step-payment").await;
    let qr = again.attr("img#pay-qr", "data-url").await.expect("the payment QR code");
    let root = reqwest::Certificate::from_pem(
        &std::fs::read(ca.config_path.parent().unwrap().join("tls/operator-ca.pem")).unwrap(),
    )
    .unwrap();
    let http = reqwest::Client::builder().no_proxy().use_rustls_tls().add_root_certificate(root).build().unwrap();
    assert_eq!(http.post(&qr).send().await.unwrap().status(), 200);
    for _ in 0..30 {
        if again.client.find(Locator::Css("a#print-form")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(again.attr("#order-state", "data-state").await.as_deref(), Some("offline"), "paid, waiting for papers");
    again.shot("offline-paid").await;
    let href = again.attr("a#print-form", "href").await.unwrap();
    assert!(href.ends_with("/form.pdf"));
}

/// What any browser gets: security headers, CSRF refusal, upload limits (no WebDriver needed).
#[tokio::test(flavor = "multi_thread")]
async fn the_pages_carry_security_headers_and_refuse_forged_posts() {
    let ca = web_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let page = http().get(&base).send().await.unwrap();
    let headers = page.headers().clone();
    assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-frame-options"], "DENY");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("cc_csrf=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // A POST without the matching token (another site's form) opens nothing.
    let forged = http().post(format!("{base}/apply/org-new")).form(&[("csrf", "guess")]).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let audit = cloudca(&["--config", ca.config_path.to_str().unwrap(), "audit", "list", "--kind", "order.created"]);
    assert!(!audit.text.contains("order.created"), "no order was created");
    // An order that is not this browser's does not exist.
    assert_eq!(http().get(format!("{base}/orders/RA20261124-XXXXXXXX")).send().await.unwrap().status(), 404);
    // Nor does a path that would aim the page's call to the daemon elsewhere: `{id}%2Fform`
    // reached the order's form endpoint with the order's own token before pages refused
    // percent-encoded characters.
    let (id, token) = crate::ra::Client::new(&ca, "web-front").create("org-new").await;
    let cookie = format!("ccq={token}");
    let page = |path: String| http().get(format!("{base}/orders/{path}")).header("cookie", cookie.clone()).send();
    assert_eq!(page(id.clone()).await.unwrap().status(), 200, "the order's own page");
    assert_eq!(page(format!("{id}%2Fform")).await.unwrap().status(), 404);
}
