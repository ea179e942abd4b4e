//! The web front's pages as templates: values from the daemon and from the applicant are
//! escaped; the read-only confirmation (商品信息确认) with its way back to each step; the
//! subject of a seal order shown read-only; several channels on one web front, each page
//! with its channel's customer-service phone. Browser tests use the WebDriver set-up of
//! `web.rs`; screenshots go to `target/screenshots/`.

use fantoccini::Locator;
use serde_json::json;

use crate::common::*;
use crate::ra::{about_certificate, agent, holder_enrols, Client, AGENT, AGENT_ID, CREDIT, PDF, REP, REP_ID};
use crate::web::{agent_step, code, identity_check, legal_rep_code, org_first_steps, web_ca, web_front, Browser, LISI};

/// Serves more channels from the dev web front's `web.toml`.
fn serve_channels(ca: &TestCa, names: &[&str]) {
    let path = ca.config_path.parent().unwrap().join("web.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    text.push_str(&format!("channels = [{}]\n", list.join(", ")));
    std::fs::write(path, text).unwrap();
}

/// Markup in every text a channel file can carry (the daemon's answers), and in the name an
/// applicant types.
const HOSTILE: &str = "<script>alert(\"x\")</script> & 'q'";

fn hostile_channel(ca: &TestCa) {
    let dir = ca.config_path.parent().unwrap().join("policies/channels");
    let text = format!(
        r#"name = "hostile"
title = {title}
service_phone = "400 111 222"
features = ["new"]
terms = {title}

[methods]
organisation = ["phone"]
personal = []
agent = ["phone"]

[[products]]
id = "p1"
name = {title}
flows = ["org-new"]
years = 1
price_fen = 100
medium = "cloud"

[flows.org-new]
review = "review"
"#,
        title = toml_string(HOSTILE)
    );
    std::fs::write(dir.join("hostile.toml"), text).unwrap();
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What `HOSTILE` must look like in a page: escaped, never as markup.
fn assert_escaped(page: &str, what: &str) {
    assert!(!page.contains("<script>"), "{what}: raw markup reached the page");
    assert!(
        page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'q'"),
        "{what}: escaped value shown"
    );
}

async fn get(url: &str, cookie: Option<&str>) -> (u16, String) {
    let mut r = http().get(url);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    let response = r.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn values_from_the_daemon_and_the_applicant_are_escaped_on_every_page_that_shows_them() {
    let ca = web_ca().await;
    hostile_channel(&ca);
    serve_channels(&ca, &["hostile"]);
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    // From the daemon: the channel's title (home), product name (before the start).
    let (status, home) = get(&format!("{base}/c/hostile/"), None).await;
    assert_eq!(status, 200, "{home}");
    assert_escaped(&home, "home");
    let (_, apply) = get(&format!("{base}/c/hostile/apply/org-new"), None).await;
    assert_escaped(&apply, "before you start");
    // From the applicant: the company name, on the confirmation, the form correcting it, and
    // the product page's options; the channel's terms on the signature step.
    let ra = Client::new(&ca, "web-front");
    let v = ra.ok("POST", "/v1/ra/orders", None, Some(json!({ "channel": "hostile", "flow": "org-new" }))).await;
    let (id, token) = (v["order"]["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string());
    let cookie = format!("cco_{id}={token}");
    assert_eq!(ra.step(&id, &token, "verification", json!({ "method": "phone", "accept_terms": true })).await.0, 200);
    let hostile_company = json!({ "name": HOSTILE, "credit_code": CREDIT,
                                  "legal_rep": { "name": "张三", "id_number": REP_ID, "phone": REP } });
    ra.company_checked(&id, &token, hostile_company).await;
    for (name, body) in [("agent", agent()), ("product", json!({ "product": "p1", "invoice": false }))] {
        let (status, v) = ra.step(&id, &token, name, body).await;
        assert_eq!(status, 200, "{name}: {v}");
    }
    let order = format!("{base}/c/hostile/orders/{id}");
    let (status, confirm) = get(&format!("{order}/confirm"), Some(&cookie)).await;
    assert_eq!(status, 200, "{confirm}");
    assert_escaped(&confirm, "confirmation");
    let (_, edit) = get(&format!("{order}/edit/company"), Some(&cookie)).await;
    assert_escaped(&edit, "the company form, filled again");
    let (_, product) = get(&format!("{order}/edit/product"), Some(&cookie)).await;
    assert_escaped(&product, "product options");
    assert_eq!(ra.upload(&id, &token, "authorization-letter", PDF).await.0, 201);
    let (status, v) = ra.step(&id, &token, "materials", json!({})).await;
    assert_eq!((status, v["next_step"].as_str()), (200, Some("signature")), "{v}");
    let (_, signature) = get(&order, Some(&cookie)).await;
    assert!(signature.contains("id=\"terms\""), "the signature step with the terms");
    assert_escaped(&signature, "terms");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_confirmation_shows_everything_entered_read_only_and_leads_back_to_correct_a_step() {
    let ca = web_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let b = Browser::start("confirmation", 1200, 1800).await;
    org_first_steps(&b, &ca, &base, "13800138000", true).await;
    b.click("input[name=product][value=org-cloud-1y]").await;
    b.click("input[name=invoice]").await;
    b.fill("invoice_email", "fapiao@example.com").await;
    b.submit("step-product").await;
    // Everything entered, read-only: no field to type in, masked identifiers.
    let shown = b.text("#confirmation").await;
    for expected in [
        "福建示例科技有限公司",
        CREDIT,
        "张三",
        "李四",
        "lisi@example.com",
        "机构云证书（1年）",
        "¥400.00",
        "fapiao@example.com",
    ] {
        assert!(shown.contains(expected), "{expected} shown: {shown}");
    }
    assert!(!shown.contains("13700137000") && shown.contains("+86*******7000"), "phones masked: {shown}");
    let fields = b.client.find_all(Locator::Css("#confirmation input, #confirmation select, #confirmation textarea"));
    assert!(fields.await.unwrap().is_empty(), "the confirmation cannot be edited");
    for step in ["verification", "company", "agent", "product"] {
        assert!(b.attr(&format!("a#edit-{step}"), "href").await.is_some(), "a way back to {step}");
    }
    b.shot("confirmation").await;

    // Back to the product: another choice, and the confirmation shows it.
    b.click("a#edit-product").await;
    assert_eq!(b.attr("#correcting", "data-step").await.as_deref(), Some("product"));
    assert_eq!(
        b.attr("input[name=product][value=org-cloud-1y]", "checked").await.as_deref(),
        Some("true"),
        "the form shows what was chosen"
    );
    b.click("input[name=product][value=org-cloud-seal-1y]").await;
    b.shot("correcting-product").await;
    b.submit("step-product").await;
    let shown = b.text("#confirmation").await;
    assert!(shown.contains("机构云证书含电子印章（1年）") && shown.contains("¥500.00"), "{shown}");

    // Back to the company: the name is filled in again, identifiers are typed again; the
    // steps after it are taken again, and the confirmation shows the corrected name.
    b.click("a#edit-company").await;
    assert_eq!(b.attr("input[name=name]", "value").await.as_deref(), Some("福建示例科技有限公司"));
    b.fill("name", "福建示例科技股份有限公司").await;
    b.fill("legal_rep.id_number", "11010519491231002X").await;
    b.fill("legal_rep.phone", "13800138000").await;
    b.shot("correcting-company").await;
    b.submit("step-company").await;
    legal_rep_code(&b, &ca, "13800138000", None).await;
    assert_eq!(b.current_step().await.as_deref(), Some("agent"), "the steps after it are taken again");
    agent_step(&b, LISI, None).await;
    b.click("input[name=product][value=org-cloud-1y]").await;
    b.submit("step-product").await;
    assert!(b.text("#confirmation").await.contains("福建示例科技股份有限公司"));
    b.shot("confirmation-corrected").await;
    b.submit("confirm").await;
    assert_eq!(b.current_step().await.as_deref(), Some("materials"));
    // Until the application is signed the confirmation stays one click away.
    assert!(b.attr("a#to-confirm", "href").await.is_some_and(|h| h.ends_with("/confirm")));
    stamped_letter(&b, &ca, &base).await;
}

/// Handbook B29: the agent downloads the authorisation letter made from what was entered
/// (company as corrected, agent, business, period), prints it, has it stamped and signed, and
/// uploads it; the order goes on to the signature with the letter among its materials.
async fn stamped_letter(b: &Browser, ca: &TestCa, base: &str) {
    let href = b.attr("a#letter-template", "href").await.expect("a link to the letter to print");
    let cookies = b.client.get_all_cookies().await.unwrap();
    let cookie = cookies.iter().map(|c| format!("{}={}", c.name(), c.value())).collect::<Vec<_>>().join("; ");
    let response = http().get(format!("{base}{href}")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let letter = ca.path("letter-to-stamp.pdf");
    std::fs::write(&letter, response.bytes().await.unwrap()).unwrap();
    let text = std::process::Command::new("pdftotext").arg(&letter).arg("-").output().expect("pdftotext runs");
    let text = String::from_utf8_lossy(&text.stdout);
    for expected in ["授权委托书", "福建示例科技股份有限公司", CREDIT, "李四", "新办", "单位盖章"]
    {
        assert!(text.contains(expected), "{expected} in the letter: {text}");
    }
    // The stamped letter (here the same file, as the scanner would give it) and the others.
    for kind in ["authorization-letter", "business-licence", "id-front", "id-back"] {
        let input = b.client.find(Locator::Css(&format!("#upload-{kind} input[type=file]"))).await.unwrap();
        input.send_keys(letter.to_str().unwrap()).await.unwrap();
        b.submit(&format!("upload-{kind}")).await;
    }
    assert!(b.client.find(Locator::Css("li.done[data-kind=authorization-letter]")).await.is_ok(), "uploaded");
    b.shot("stamped-letter-uploaded").await;
    b.submit("step-materials").await;
    assert_eq!(b.current_step().await.as_deref(), Some("signature"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seal_order_shows_the_certificates_subject_read_only_and_offers_its_seals_to_change() {
    let ca = web_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let subject =
        json!([["C", "CN"], ["O", "福建示例科技有限公司"], ["CN", "福建示例科技有限公司"], ["serialNumber", CREDIT]]);
    Client::new(&ca, "operator")
        .ok(
            "POST",
            "/v1/approvals",
            None,
            Some(json!({ "profile": "org", "phone": AGENT, "subject": subject, "holder": { "name": "李四", "id_number": AGENT_ID } })),
        )
        .await;
    let serial = holder_enrols(&ra, AGENT).await;
    // The organisation already has a seal (as an earlier seal order would have made it).
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    let png = cloudca::signing::qr::render_png("公章", 2).unwrap();
    sqlx::query("INSERT INTO seals (id, credit_code, name, png, status, updated_at) VALUES ('seal-1', $1, '公章', $2, 'active', 0)")
        .bind(CREDIT)
        .bind(png)
        .execute(&pool)
        .await
        .unwrap();
    let (id, _) = about_certificate(&ra, "seal", &serial, AGENT, AGENT_ID, json!({})).await;
    // The agent takes the order up in the browser: order query, then a code to continue.
    let b = Browser::start("seal-subject", 1200, 1600).await;
    b.goto(&format!("{base}/orders")).await;
    identity_check(&b, &ca, CREDIT, "13700137000", AGENT).await;
    let resume_code = code(&b, &ca, &format!("resume-code-{id}"), AGENT).await;
    let field = b.client.find(Locator::Css(&format!("form#resume-{id} [name=code]"))).await.unwrap();
    field.send_keys(&resume_code).await.unwrap();
    b.submit(&format!("resume-{id}")).await;
    assert_eq!(b.current_step().await.as_deref(), Some("product"));
    let shown = b.text("#subject").await;
    assert!(shown.contains("福建示例科技有限公司") && shown.contains(&serial), "{shown}");
    assert!(!shown.contains(CREDIT), "the credit code in the subject is masked like every identifier: {shown}");
    let fields = b.client.find_all(Locator::Css("#subject input")).await.unwrap();
    assert!(fields.is_empty(), "the subject cannot be changed");
    b.shot("seal-order-subject").await;
    b.click("input[name=product][value=seal]").await;
    // 补章 or 变章 (§5.1): the organisation's seal is offered to change.
    let choice = b.text("#seal-choice").await;
    assert!(choice.contains("新增印章") && choice.contains("变更印章（变章）：公章"), "{choice}");
    b.click("input[name=seal_change][value=seal-1]").await;
    b.shot("seal-order-change").await;
    b.submit("step-product").await;
    assert!(b.text("#subject").await.contains("福建示例科技有限公司"), "on the confirmation too");
    let confirmation = b.text("#confirmation").await;
    assert!(confirmation.contains("变更印章（变章）：公章"), "the seal to change is confirmed: {confirmation}");
    b.shot("seal-order-confirmation").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_web_front_serves_several_channels_each_page_with_its_customer_service_phone() {
    let ca = web_ca().await;
    serve_channels(&ca, &["bidding"]);
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let b = Browser::start("channels", 1200, 1200).await;
    // The default channel where it always was, with its phone on every page.
    for path in ["/", "/help", "/about", "/orders", "/seals", "/apply/org-new", "/no-such-page"] {
        b.goto(&format!("{base}{path}")).await;
        assert_eq!(b.text("#service-phone").await, "客服电话: 400-600-0000", "{path}");
        assert_eq!(b.attr("#service-phone", "data-channel").await.as_deref(), Some("default"));
    }
    b.goto(&base).await;
    b.shot("default-channel").await;
    // Handbook A2: the help centre says how to get the phone app.
    b.press("#nav-help").await;
    assert_eq!(b.text("h1").await, "帮助中心");
    let help = b.text("main").await;
    assert!(help.contains("获取手机App") && help.contains("应用商店"), "{help}");
    // The bidding channel by name in the URL, as the handbook's channelId: its own title,
    // flows, phone, and links that stay in it.
    b.goto(&format!("{base}/?channelId=bidding")).await;
    assert!(b.client.current_url().await.unwrap().path().starts_with("/c/bidding/"));
    assert_eq!(b.text("h1").await, "招投标平台云证书");
    assert_eq!(b.text("#service-phone").await, "客服电话: 023-6000-0000");
    assert!(
        b.client.find(Locator::Css("#flow-personal-new")).await.is_err(),
        "bidding offers no personal certificates"
    );
    b.shot("bidding-channel").await;
    // Handbook A2: 关于, from the nav, names this channel's service and its phone.
    b.press("#nav-about").await;
    assert!(b.client.current_url().await.unwrap().path().starts_with("/c/bidding/about"));
    assert_eq!(b.text("h1").await, "关于");
    assert_eq!(b.text("#about-channel").await, "本网站: 招投标平台云证书");
    assert_eq!(b.text("#about-phone").await, "客服电话: 023-6000-0000");
    assert!(b.text("#about").await.contains("电子认证服务机构（CA）"));
    b.shot("bidding-about").await;
    b.press("a.brand").await;
    b.click("#flow-org-new").await;
    assert!(b.client.current_url().await.unwrap().path().starts_with("/c/bidding/apply/"));
    b.submit("start").await;
    let order_url = b.client.current_url().await.unwrap();
    assert!(order_url.path().starts_with("/c/bidding/orders/"), "{order_url}");
    assert_eq!(b.text("#service-phone").await, "客服电话: 023-6000-0000");
    let methods: Vec<String> = {
        let mut out = Vec::new();
        for e in b.client.find_all(Locator::Css("input[name=method]")).await.unwrap() {
            out.push(e.attr("value").await.unwrap().unwrap());
        }
        out
    };
    assert_eq!(methods, ["bank-account", "phone"], "the bidding channel's methods");
    b.shot("bidding-order").await;
    let id = b.text("#order-id").await;
    // Opened under the default channel's address, the order moves to its own channel.
    b.goto(&format!("{base}/orders/{id}")).await;
    assert!(b.client.current_url().await.unwrap().path().starts_with("/c/bidding/orders/"));
    // In the daemon the order is the bidding channel's.
    let back_office = Client::new(&ca, "reviewer");
    let order = back_office.ok("GET", &format!("/v1/orders/{id}"), None, None).await;
    assert_eq!(order["channel"], "bidding", "{order}");
    // A channel this web front does not serve is not found, by path or by channelId.
    assert_eq!(get(&format!("{base}/c/other/"), None).await.0, 404);
    assert_eq!(get(&format!("{base}/?channelId=other"), None).await.0, 404);
    b.click("#lang").await;
    assert_eq!(b.text("#service-phone").await, "Customer service: 023-6000-0000");
    assert!(
        b.client.current_url().await.unwrap().path().starts_with("/c/bidding"),
        "the language switch stays in the channel"
    );
}

/// Handbook F7: a product that is posted (a USB key) asks for the delivery address, and the
/// order's page changes it until the order is dispatched (approved); then it is shown, fixed.
#[tokio::test(flavor = "multi_thread")]
async fn a_posted_products_delivery_address_changes_on_the_order_page_until_dispatch() {
    let ca = web_ca().await;
    let dir = ca.config_path.parent().unwrap().join("policies/channels");
    let channel = r#"name = "ukey"
title = "USB Key 渠道"
service_phone = "400 222 333"
features = ["new"]
terms = "条款"
invoice = "required"

[methods]
organisation = ["phone"]
personal = ["phone"]
agent = ["phone"]

[[products]]
id = "org-cloud-1y"
name = "机构云证书（1年）"
flows = ["org-new"]
years = 1
price_fen = 0
medium = "cloud"

[[products]]
id = "personal-ukey-1y"
name = "个人证书（USB Key，1年）"
flows = ["personal-new"]
years = 1
price_fen = 8000
medium = "usb-key"

[flows.personal-new]
review = "review"
"#;
    std::fs::write(dir.join("ukey.toml"), channel).unwrap();
    // B22: a channel that issues no invoices (its platform invoices itself).
    let none = channel
        .replace("name = \"ukey\"", "name = \"noinvoice\"")
        .replace("invoice = \"required\"", "invoice = \"none\"");
    std::fs::write(dir.join("noinvoice.toml"), none).unwrap();
    serve_channels(&ca, &["ukey"]);
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let b = Browser::start("delivery-address", 1200, 1500).await;
    b.goto(&format!("{base}/c/ukey/apply/personal-new")).await;
    b.submit("start").await;
    b.click("input[name=method][value=phone]").await;
    b.click("input[name=accept_agreement]").await;
    b.submit("step-verification").await;
    for (name, value) in
        [("name", "王五"), ("id_number", "110101199003074338"), ("phone", "13900139000"), ("email", "w@example.com")]
    {
        b.fill(name, value).await;
    }
    b.submit("step-person").await;
    assert_eq!(b.current_step().await.as_deref(), Some("product"));
    // B22: this channel always issues an invoice; the page says so and asks nothing.
    assert!(b.client.find(fantoccini::Locator::Css("input[name=invoice]")).await.is_err());
    assert!(b.text("#invoice-required").await.contains("电子发票"));
    b.submit("step-product").await;
    assert!(b.text(".error[data-field=delivery_address]").await.len() > 1, "a USB key needs an address");
    b.fill("delivery_address", "福州市鼓楼区示例路1号").await;
    b.shot("product-with-address").await;
    b.submit("step-product").await;
    b.submit("confirm").await;
    // Before dispatch: the address is changed on the order's page.
    let field = b.client.find(fantoccini::Locator::Css("form#address [name=address]")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys("福州市台江区新地址2号").await.unwrap();
    b.submit("address").await;
    assert!(
        b.text("p.notice, p.alert, .banner").await.contains("收货地址已修改"),
        "{}",
        b.client.source().await.unwrap()
    );
    b.shot("address-changed").await;
    let id = b.text("#order-id").await;
    // Whoever holds the order's page could send the parcel elsewhere: the applicant hears of it.
    let told = |file: &str| {
        let outbox = std::fs::read_to_string(ca.config.data_dir.join(file)).unwrap_or_default();
        outbox.lines().any(|l| l.contains(&id) && l.contains("delivery address changed"))
    };
    assert!(told("email-outbox.jsonl") && told("sms-outbox.jsonl"), "e-mail and SMS say the address changed");
    let reviewer = Client::new(&ca, "reviewer");
    let order = reviewer.ok("GET", &format!("/v1/orders/{id}"), None, None).await;
    assert_eq!(order["data"]["product"]["delivery_address"], "福州市台江区新地址2号", "{order}");
    assert_eq!(order["data"]["product"]["invoice"], true, "the channel's rule, not the form's box");
    // Dispatched (here: the order cancelled, which closes it the same way): no more changes.
    b.submit("cancel").await;
    assert!(b.client.find(fantoccini::Locator::Css("form#address")).await.is_err(), "no form once closed");
    assert_eq!(b.text("#delivery-address").await, "收货地址: 福州市台江区新地址2号");
    let ra = Client::new(&ca, "web-front");
    let (status, _) =
        ra.call("PUT", &format!("/v1/ra/orders/{id}/address"), None, Some(serde_json::json!({ "address": "x" }))).await;
    assert!(status >= 400, "the daemon refuses it too");
    // A channel without invoices refuses one.
    let v = ra
        .ok("POST", "/v1/ra/orders", None, Some(serde_json::json!({ "channel": "noinvoice", "flow": "personal-new" })))
        .await;
    let (id, token) = (v["order"]["id"].as_str().unwrap(), v["token"].as_str().unwrap());
    ra.ok(
        "POST",
        &format!("/v1/ra/orders/{id}/steps/verification"),
        Some(token),
        Some(serde_json::json!({ "method": "phone", "accept_terms": true })),
    )
    .await;
    let person = serde_json::json!({ "name": "王五", "id_number": "110101199003074338", "phone": "13900139000", "email": "w@example.com" });
    ra.ok("POST", &format!("/v1/ra/orders/{id}/steps/person"), Some(token), Some(person)).await;
    let product = serde_json::json!({ "product": "personal-ukey-1y", "invoice": true, "delivery_address": "福州" });
    let (status, v) = ra.call("POST", &format!("/v1/ra/orders/{id}/steps/product"), Some(token), Some(product)).await;
    assert_eq!(status, 422, "{v}");
}

/// Handbook G5: invoice data only when there is an amount. A free product's form asks nothing
/// about an invoice, even in a channel whose rule is that every order gets one; the RA keeps
/// none and refuses an API caller who asks for one.
#[tokio::test(flavor = "multi_thread")]
async fn a_free_product_asks_for_no_invoice_and_the_ra_refuses_one() {
    let ca = web_ca().await;
    let dir = ca.config_path.parent().unwrap().join("policies/channels");
    let channel = r#"name = "free"
title = "免费证书渠道"
service_phone = "400 333 444"
features = ["new"]
terms = "条款"
invoice = "required"

[methods]
organisation = ["phone"]
personal = ["phone"]
agent = ["phone"]

[[products]]
id = "org-free-1y"
name = "机构云证书（免费）"
flows = ["org-new"]
years = 1
price_fen = 0
medium = "cloud"

[[products]]
id = "personal-free-1y"
name = "个人云证书（免费）"
flows = ["personal-new"]
years = 1
price_fen = 0
medium = "cloud"

[flows.personal-new]
review = "review"
"#;
    std::fs::write(dir.join("free.toml"), channel).unwrap();
    serve_channels(&ca, &["free"]);
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let b = Browser::start("free-product", 1200, 1200).await;
    b.goto(&format!("{base}/c/free/apply/personal-new")).await;
    b.submit("start").await;
    b.click("input[name=method][value=phone]").await;
    b.click("input[name=accept_agreement]").await;
    b.submit("step-verification").await;
    for (name, value) in
        [("name", "王五"), ("id_number", "110101199003074338"), ("phone", "13900139000"), ("email", "w@example.com")]
    {
        b.fill(name, value).await;
    }
    b.submit("step-person").await;
    assert_eq!(b.current_step().await.as_deref(), Some("product"));
    let form = b.text("form#step-product").await;
    assert!(form.contains("个人云证书（免费） ¥0.00"), "{form}");
    for field in ["input[name=invoice]", "input[name=invoice_email]", "#invoice-required"] {
        assert!(b.client.find(Locator::Css(field)).await.is_err(), "{field}: nothing to invoice");
    }
    b.shot("free-product").await;
    b.submit("step-product").await;
    let confirmed = b.text("section.entered[data-step=product] dl").await;
    assert!(confirmed.contains("个人云证书（免费）") && !confirmed.contains("发票"), "no invoice rows: {confirmed}");
    let id = b.text("#order-id").await;
    let reviewer = Client::new(&ca, "reviewer");
    let order = reviewer.ok("GET", &format!("/v1/orders/{id}"), None, None).await;
    let product = &order["data"]["product"];
    assert_eq!((product["invoice"].as_bool(), product["invoice_email"].as_str()), (Some(false), None), "{order}");
    // An API caller asking for an invoice of the free product hears why, on the field.
    let ra = Client::new(&ca, "web-front");
    let v = ra.ok("POST", "/v1/ra/orders", None, Some(json!({ "channel": "free", "flow": "personal-new" }))).await;
    let (id, token) = (v["order"]["id"].as_str().unwrap(), v["token"].as_str().unwrap());
    let verification = json!({ "method": "phone", "accept_terms": true });
    ra.ok("POST", &format!("/v1/ra/orders/{id}/steps/verification"), Some(token), Some(verification)).await;
    let person =
        json!({ "name": "赵六", "id_number": "11010519491231002X", "phone": "13900139001", "email": "z@example.com" });
    ra.ok("POST", &format!("/v1/ra/orders/{id}/steps/person"), Some(token), Some(person)).await;
    let asked = json!({ "product": "personal-free-1y", "invoice": true, "invoice_email": "z@example.com" });
    let (status, v) = ra.step(id, token, "product", asked).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(
        (v["errors"][0]["field"].as_str(), v["errors"][0]["code"].as_str()),
        (Some("invoice"), Some("invoice.free"))
    );
    let v = ra.ok("GET", &format!("/v1/ra/orders/{id}"), Some(token), None).await;
    assert_eq!(v["next_step"], "product", "nothing was saved: {v}");
}
