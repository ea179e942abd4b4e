//! Seals in the browser (issue 17 rows G1, G2, G4, I2, I5; handbook 印章办理, 变章, 印章授权,
//! 人员管理): an organisation with a certificate orders a seal from the home page's card and
//! then changes it; its certificate administrator adds and removes staff and lets a named
//! member use a seal, on the `/seals` page; and, through the API, a member who is not an
//! administrator can neither grant a seal's use nor remove anyone.
//! Screenshots: `target/screenshots/<test>/`.

use fantoccini::Locator;
use serde_json::{json, Value};

use crate::common::*;
use crate::ra::{count, Client, AGENT, CREDIT};
use crate::ra_services::{login, org_certificate, services_ca};
use crate::web::{agent_step, code, identity_check, web_front, Browser, LISI};
use crate::web_services::{buttons, choose, fill_in, open_service, sign};

/// A member added as staff.
const STAFF: &str = "+8613600136000";
const STAFF_TYPED: &str = "13600136000";
/// A real phone that is no member of the organisation.
const OUTSIDER: &str = "+8613500135000";
const OUTSIDER_TYPED: &str = "13500135000";

/// A call to the app API (api listener) with the holder's bearer, if any: (status, body).
async fn mobile(c: &Client<'_>, bearer: Option<&str>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = c.http.request(method.parse().unwrap(), format!("{}{path}", c.api));
    if let Some(b) = bearer {
        r = r.header("authorization", b);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    c.send(r).await
}

/// A fresh `admin` code for the organisation's changes, texted to `phone`.
async fn admin_code(c: &Client<'_>, phone: &str) -> String {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let body = json!({ "phone": phone, "purpose": "admin", "object": CREDIT });
    assert_eq!(mobile(c, None, "POST", "/v1/mobile/sms", Some(body)).await.0, 202);
    last_code(c.ca, phone)
}

/// The organisation as the app lists it to `bearer`.
async fn organisation(c: &Client<'_>, bearer: &str) -> Value {
    let (status, orgs) = mobile(c, Some(bearer), "GET", "/v1/mobile/orgs", None).await;
    assert_eq!(status, 200, "{orgs}");
    let items = orgs["items"].as_array().unwrap();
    items.iter().find(|o| o["credit_code"] == CREDIT).cloned().unwrap_or_else(|| panic!("{orgs}"))
}

/// The organisation's active seals in the database: (id, name, png).
async fn active_seals(ca: &TestCa) -> Vec<(String, String, Vec<u8>)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    sqlx::query_as("SELECT id, name, png FROM seals WHERE credit_code = $1 AND status = 'active'")
        .bind(CREDIT)
        .fetch_all(&pool)
        .await
        .unwrap()
}

/// Uploads the seal image as a PNG file through the materials page and goes on.
async fn upload_seal_image(b: &Browser, ca: &TestCa, png: &[u8], file: &str) {
    assert_eq!(b.current_step().await.as_deref(), Some("materials"), "{}", b.client.source().await.unwrap());
    let path = ca.path(file);
    std::fs::write(&path, png).unwrap();
    let input = b.client.find(Locator::Css("#upload-seal-image input[type=file]")).await.unwrap();
    input.send_keys(path.to_str().unwrap()).await.unwrap();
    b.submit("upload-seal-image").await;
    assert!(b.client.find(Locator::Css("li.done[data-kind=seal-image]")).await.is_ok(), "the image is on file");
    b.shot("seal-image").await;
    b.submit("step-materials").await;
}

/// Signature, payment in the sandbox, the review, and a reviewer's approval in the back office;
/// waits for the order to complete.
async fn sign_pay_and_approve(b: &Browser, ca: &TestCa, ra: &Client<'_>) {
    sign(b, ca, AGENT).await;
    b.click("input[name=method][value=wechat]").await;
    b.submit("step-payment").await;
    let qr = b.attr("img#pay-qr", "data-url").await.expect("the payment QR code");
    b.shot("payment").await;
    ra.pay(&qr).await;
    b.wait_attr("#order-state", "data-state", "review").await;
    b.shot("in-review").await;
    let id = b.text("#order-id").await;
    Client::new(ca, "reviewer")
        .ok("POST", &format!("/v1/orders/{id}/decision"), None, Some(json!({ "approve": true })))
        .await;
    b.wait_attr("#order-state", "data-state", "completed").await;
    b.shot("completed").await;
}

/// G1, G2, G4 (handbook 印章办理 and 变章): from the home page's 印章办理 card, the identity
/// check, the certificate list with a `seal` button, the chosen certificate, agent, product
/// (新增印章), confirmation, the seal image (PNG), signature, payment, a reviewer's approval:
/// the organisation has one active seal. A second order from the same card changes that seal
/// (new image and name): still one seal, with the new image and name.
#[tokio::test(flavor = "multi_thread")]
async fn an_organisation_orders_a_seal_from_the_home_page_and_then_changes_it_in_the_browser() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let (serial, bearer) = org_certificate(&ra, &Client::new(&ca, "reviewer")).await;
    assert_eq!(organisation(&ra, &bearer).await["seals"], json!([]), "no seal before the order");

    let b = Browser::start("seal-add", 1200, 1600).await;
    open_service(&b, &base, "seal").await;
    identity_check(&b, &ca, CREDIT, "13700137000", AGENT).await;
    assert_eq!(buttons(&b, &serial).await, ["seal"], "the page opened for seals offers the seal order");
    b.shot("certificates").await;
    choose(&b, &ca, "seal", &serial, AGENT).await;
    b.submit("step-certificate").await;
    assert_eq!(b.current_step().await.as_deref(), Some("agent"), "{}", b.client.source().await.unwrap());
    agent_step(&b, LISI, Some("agent")).await;
    assert_eq!(b.current_step().await.as_deref(), Some("product"), "{}", b.client.source().await.unwrap());
    b.click("input[name=product][value=seal]").await;
    let choice = b.text("#seal-choice").await;
    assert!(choice.contains("新增印章") && !choice.contains("变更印章"), "nothing to change yet: {choice}");
    b.click("input[name=seal_change][value=\"\"]").await;
    b.fill("seal_name", "合同专用章").await;
    b.shot("product").await;
    b.submit("step-product").await;
    let confirmation = b.text("#confirmation").await;
    assert!(confirmation.contains("新增印章") && confirmation.contains("合同专用章"), "{confirmation}");
    b.shot("confirmation").await;
    b.submit("confirm").await;
    let first = cloudca::signing::qr::render_png("合同专用章", 2).unwrap();
    upload_seal_image(&b, &ca, &first, "seal.png").await;
    sign_pay_and_approve(&b, &ca, &ra).await;
    // The app lists the organisation's one active seal to its administrator.
    let org = organisation(&ra, &bearer).await;
    assert_eq!(org["role"], "admin", "{org}");
    let seals = org["seals"].as_array().unwrap();
    assert_eq!(seals.len(), 1, "one seal: {org}");
    assert_eq!((seals[0]["name"].as_str(), seals[0]["status"].as_str()), (Some("合同专用章"), Some("active")));
    let seal = seals[0]["id"].as_str().unwrap().to_string();
    assert_eq!(active_seals(&ca).await, vec![(seal.clone(), "合同专用章".to_string(), first)]);

    // 变章: the same card, the same certificate; the seal offered to change, a new name and image.
    b.chapter("seal-change");
    open_service(&b, &base, "seal").await;
    assert_eq!(buttons(&b, &serial).await, ["seal"], "the check in this browser lists the certificates at once");
    choose(&b, &ca, "seal", &serial, AGENT).await;
    b.submit("step-certificate").await;
    agent_step(&b, LISI, None).await;
    b.click("input[name=product][value=seal]").await;
    let choice = b.text("#seal-choice").await;
    assert!(choice.contains("变更印章（变章）：合同专用章"), "{choice}");
    b.click(&format!("input[name=seal_change][value=\"{seal}\"]")).await;
    b.fill("seal_name", "财务专用章").await;
    b.shot("product-change").await;
    b.submit("step-product").await;
    let confirmation = b.text("#confirmation").await;
    assert!(confirmation.contains("变更印章（变章）：合同专用章"), "{confirmation}");
    b.shot("confirmation").await;
    b.submit("confirm").await;
    let changed = cloudca::signing::qr::render_png("财务专用章", 3).unwrap();
    upload_seal_image(&b, &ca, &changed, "seal-changed.png").await;
    sign_pay_and_approve(&b, &ca, &ra).await;
    let org = organisation(&ra, &login(&ra, AGENT).await).await;
    let seals = org["seals"].as_array().unwrap();
    assert_eq!(seals.len(), 1, "still one seal: {org}");
    assert_eq!((seals[0]["id"].as_str(), seals[0]["name"].as_str()), (Some(seal.as_str()), Some("财务专用章")));
    assert_eq!(
        active_seals(&ca).await,
        vec![(seal, "财务专用章".to_string(), changed)],
        "the same seal with the new name and image"
    );
}

/// Seeds one active seal of the organisation (as an approved seal order makes it); its id.
async fn seed_seal(ca: &TestCa) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    let png = cloudca::signing::qr::render_png("公章", 2).unwrap();
    sqlx::query(
        "INSERT INTO seals (id, credit_code, name, png, status, updated_at) VALUES ('seal-1', $1, '公章', $2, 'active', 0)",
    )
    .bind(CREDIT)
    .bind(png)
    .execute(&pool)
    .await
    .unwrap();
    "seal-1".into()
}

/// Logs into `/seals` with the agent's phone (the certificate administrator).
async fn seals_login(b: &Browser, ca: &TestCa, base: &str) {
    b.goto(&format!("{base}/seals")).await;
    fill_in(b, "seal-login-code", "phone", "13700137000").await;
    let login = code(b, ca, "seal-login-code", AGENT).await;
    fill_in(b, "seal-login", "phone", "13700137000").await;
    fill_in(b, "seal-login", "code", &login).await;
    b.submit("seal-login").await;
}

/// Fills `form` (the fields typed, the radio buttons `choices` clicked) with a fresh
/// administrator code and submits it.
async fn with_admin_code(b: &Browser, ca: &TestCa, form: &str, fields: &[(&str, &str)], choices: &[&str]) {
    let admin = code(b, ca, &format!("seal-admin-code-{CREDIT}"), AGENT).await;
    for (name, value) in fields {
        fill_in(b, form, name, value).await;
    }
    for choice in choices {
        b.click(&format!("form#{form} {choice}")).await;
    }
    fill_in(b, form, "code", &admin).await;
    b.submit(form).await;
}

/// The phones the page lists as allowed to use the seal.
async fn seal_users(b: &Browser, seal: &str) -> Vec<String> {
    let css = format!("section.org[data-org=\"{CREDIT}\"] li[data-seal=\"{seal}\"] ul.seal-users li");
    let mut out = Vec::new();
    for li in b.client.find_all(Locator::Css(&css)).await.unwrap() {
        out.push(li.attr("data-user").await.unwrap().unwrap_or_default());
    }
    out
}

/// The members the page lists: (phone, role as shown).
async fn members(b: &Browser) -> Vec<(String, String)> {
    let css = format!("section.org[data-org=\"{CREDIT}\"] ul.members li");
    let mut out = Vec::new();
    for li in b.client.find_all(Locator::Css(&css)).await.unwrap() {
        out.push((li.attr("data-phone").await.unwrap().unwrap_or_default(), li.text().await.unwrap()));
    }
    out
}

/// I2 and I5 (handbook 人员管理, 印章授权): on `/seals` the administrator adds a member as
/// staff (listed as 员工); a phone that is not a member cannot be allowed a seal (a clear
/// message, nothing listed); the staff member is allowed the seal, listed under it, withdrawn,
/// gone; allowed again and then removed from the organisation, which withdraws the seal too;
/// the administrator cannot remove themself. Every change is audited.
#[tokio::test(flavor = "multi_thread")]
async fn the_administrator_adds_staff_lets_them_use_a_seal_withdraws_it_and_removes_them_in_the_browser() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let (_web, base) = web_front(&ca).await;
    let ra = Client::new(&ca, "web-front");
    org_certificate(&ra, &Client::new(&ca, "reviewer")).await;
    let seal = seed_seal(&ca).await;

    let b = Browser::start("seal-use-and-staff", 1200, 2400).await;
    seals_login(&b, &ca, &base).await;
    let org = format!("section.org[data-org=\"{CREDIT}\"]");
    let listed = b.text(&format!("{org} li[data-seal=\"{seal}\"]")).await;
    assert!(listed.contains("公章") && listed.contains("暂无"), "the seal, nobody allowed yet: {listed}");
    b.shot("organisation").await;

    // 人员管理: a staff member.
    let member = format!("member-{CREDIT}");
    let admin = code(&b, &ca, &format!("seal-admin-code-{CREDIT}"), AGENT).await;
    fill_in(&b, &member, "phone", STAFF_TYPED).await;
    b.click(&format!("form#{member} input[name=role][value=staff]")).await;
    fill_in(&b, &member, "code", &admin).await;
    b.submit(&member).await;
    let shown = members(&b).await;
    assert!(shown.iter().any(|(p, r)| p == STAFF && r.contains("员工")), "{shown:?}");
    b.shot("staff-added").await;

    // 印章授权: a phone outside the organisation is refused, clearly, and nothing is listed.
    let grant = format!("seal-user-{seal}");
    with_admin_code(&b, &ca, &grant, &[("phone", OUTSIDER_TYPED)], &[]).await;
    let alert = b.text("p.alert").await;
    assert!(alert.contains("不是本单位成员"), "{alert}");
    assert_eq!(seal_users(&b, &seal).await, Vec::<String>::new());
    assert!(!members(&b).await.iter().any(|(p, _)| p == OUTSIDER), "nor made a member by the attempt");
    b.shot("outsider-refused").await;
    // The staff member is allowed, and listed under the seal.
    with_admin_code(&b, &ca, &grant, &[("phone", STAFF_TYPED)], &[]).await;
    assert_eq!(seal_users(&b, &seal).await, [STAFF], "{}", b.client.source().await.unwrap());
    b.shot("seal-allowed").await;
    // Withdrawn: gone from the list.
    with_admin_code(&b, &ca, &grant, &[("phone", STAFF_TYPED)], &["input[name=allowed][value=false]"]).await;
    assert_eq!(seal_users(&b, &seal).await, Vec::<String>::new());
    b.shot("seal-withdrawn").await;

    // Removing a member withdraws their seal as well.
    with_admin_code(&b, &ca, &grant, &[("phone", STAFF_TYPED)], &[]).await;
    assert_eq!(seal_users(&b, &seal).await, [STAFF]);
    let remove = format!("remove-member-{CREDIT}");
    with_admin_code(&b, &ca, &remove, &[("phone", STAFF_TYPED)], &[]).await;
    let shown = members(&b).await;
    assert!(!shown.iter().any(|(p, _)| p == STAFF), "removed: {shown:?}");
    assert_eq!(seal_users(&b, &seal).await, Vec::<String>::new(), "a removed member keeps no seal");
    b.shot("staff-removed").await;
    // The administrator cannot remove themself.
    with_admin_code(&b, &ca, &remove, &[("phone", "13700137000")], &[]).await;
    let alert = b.text("p.alert").await;
    assert!(alert.contains("不能移除自己"), "{alert}");
    assert!(members(&b).await.iter().any(|(p, r)| p == AGENT && r.contains("证书管理员")));
    b.shot("self-removal-refused").await;

    assert_eq!(count(&ca, "org.member.removed"), 1, "one removal audited");
    assert_eq!(count(&ca, "seal.user.set"), 3, "allowed, withdrawn, allowed: each audited");
}

/// The attack on 印章授权 and 人员管理 (threat model: organisation roles): members who are not
/// the administrator, each with a live session and a genuine `admin` code for the
/// organisation, try the administrator's changes through the API. A staff member cannot allow
/// anyone (themself included) a seal, nor remove a member; a seal administrator, who may grant
/// seals, cannot remove members; the administrator cannot grant another organisation's seal
/// through their own; nothing changes and nothing is audited as done.
#[tokio::test(flavor = "multi_thread")]
async fn members_who_are_not_the_administrator_can_neither_grant_a_seal_nor_remove_anyone() {
    const SEAL_ADMIN: &str = "+8613400134000";
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let (_, admin) = org_certificate(&ra, &Client::new(&ca, "reviewer")).await;
    let seal = seed_seal(&ca).await;
    // Both phones stand in the app (an approval of their own), so they can log in.
    let operator = Client::new(&ca, "operator");
    for phone in [STAFF, SEAL_ADMIN] {
        let subject = json!([["C", "CN"], ["CN", "张三"], ["serialNumber", "11010519491231002X"]]);
        operator
            .ok(
                "POST",
                "/v1/approvals",
                None,
                Some(json!({ "profile": "personal", "phone": phone, "subject": subject })),
            )
            .await;
    }
    let org = format!("/v1/mobile/orgs/{CREDIT}");
    for (phone, role) in [(STAFF, "staff"), (SEAL_ADMIN, "seal-admin")] {
        let body = json!({ "phone": phone, "role": role, "code": admin_code(&ra, AGENT).await });
        assert_eq!(mobile(&ra, Some(&admin), "POST", &format!("{org}/members"), Some(body)).await.0, 204);
    }
    let before = organisation(&ra, &admin).await;
    let staff = login(&ra, STAFF).await;
    let seal_admin = login(&ra, SEAL_ADMIN).await;
    let users = format!("{org}/seals/{seal}/users");
    let remove = format!("{org}/members/remove");

    // Staff: no grant, to themself or anyone; no removal.
    for who in [STAFF, AGENT] {
        let body = json!({ "phone": who, "allowed": true, "code": admin_code(&ra, STAFF).await });
        let (status, v) = mobile(&ra, Some(&staff), "POST", &users, Some(body)).await;
        assert_eq!(status, 403, "{v}");
    }
    let body = json!({ "phone": SEAL_ADMIN, "code": admin_code(&ra, STAFF).await });
    assert_eq!(mobile(&ra, Some(&staff), "POST", &remove, Some(body)).await.0, 403);
    // A seal administrator grants seals but does not manage people.
    for who in [STAFF, AGENT] {
        let body = json!({ "phone": who, "code": admin_code(&ra, SEAL_ADMIN).await });
        assert_eq!(mobile(&ra, Some(&seal_admin), "POST", &remove, Some(body)).await.0, 403);
    }
    // Without a session, or with a code of another phone, nothing either.
    let body = json!({ "phone": STAFF, "code": admin_code(&ra, STAFF).await });
    assert_eq!(mobile(&ra, None, "POST", &remove, Some(body)).await.0, 401);
    let body = json!({ "phone": STAFF, "allowed": true, "code": last_code(&ca, STAFF) });
    assert_eq!(mobile(&ra, Some(&admin), "POST", &users, Some(body)).await.0, 401, "the code of another phone");
    // The administrator of this organisation cannot reach another organisation's seal.
    let other = "91110000802100433B";
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    sqlx::query("INSERT INTO seals (id, credit_code, name, png, status, updated_at) VALUES ('seal-x', $1, 'x', $2, 'active', 0)")
        .bind(other)
        .bind(cloudca::signing::qr::render_png("x", 2).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    let body = json!({ "phone": STAFF, "allowed": true, "code": admin_code(&ra, AGENT).await });
    let path = format!("{org}/seals/seal-x/users");
    assert_eq!(mobile(&ra, Some(&admin), "POST", &path, Some(body)).await.0, 404, "not this organisation's seal");

    let after = organisation(&ra, &admin).await;
    assert_eq!(after, before, "nothing changed");
    assert_eq!(after["seals"][0]["users"], json!([]), "{after}");
    let (allowed,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM seal_users").fetch_one(&pool).await.unwrap();
    assert_eq!(allowed, 0);
    assert_eq!((count(&ca, "seal.user.set"), count(&ca, "org.member.removed")), (0, 0), "nothing audited as done");
    // Refusing by default is not refusing everything: the administrator can still do both.
    let body = json!({ "phone": STAFF, "allowed": true, "code": admin_code(&ra, AGENT).await });
    assert_eq!(mobile(&ra, Some(&admin), "POST", &users, Some(body)).await.0, 204);
    let granted = organisation(&ra, &admin).await;
    assert_eq!(granted["seals"][0]["users"], json!([STAFF]), "the grant is listed with its seal: {granted}");
    let body = json!({ "phone": STAFF, "code": admin_code(&ra, AGENT).await });
    assert_eq!(mobile(&ra, Some(&admin), "POST", &remove, Some(body)).await.0, 204);
    let after = organisation(&ra, &admin).await;
    assert_eq!(after["seals"][0]["users"], json!([]), "the removal withdrew the seal: {after}");
    assert!(!after["members"].as_array().unwrap().iter().any(|m| m["phone"] == STAFF), "{after}");
    // The removed staff member lists no organisation any more.
    assert_eq!(mobile(&ra, Some(&staff), "GET", "/v1/mobile/orgs", None).await.1["items"], json!([]));
}

/// The attack on 人员管理 by a removed member (threat model: organisation roles): the
/// administrator offered them the administrator role, then removed them from the organisation
/// before they accepted. The code the offer texted them no longer moves the role: the
/// removal withdraws the offer made to that phone, so the removed member neither becomes the
/// administrator nor comes back as a member. An offer to someone else stands.
#[tokio::test(flavor = "multi_thread")]
async fn a_removed_member_cannot_take_the_administrator_role_offered_before_the_removal() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let (_, admin) = org_certificate(&ra, &Client::new(&ca, "reviewer")).await;
    let org = format!("/v1/mobile/orgs/{CREDIT}");
    let body = json!({ "phone": STAFF, "role": "staff", "code": admin_code(&ra, AGENT).await });
    assert_eq!(mobile(&ra, Some(&admin), "POST", &format!("{org}/members"), Some(body)).await.0, 204);
    let offer = |to: &str, code: String| json!({ "phone": to, "name": "王五", "id_number": "110101199003074338", "code": code });
    let body = offer(STAFF, admin_code(&ra, AGENT).await);
    let (status, v) = mobile(&ra, Some(&admin), "POST", &format!("{org}/handover"), Some(body)).await;
    assert_eq!(status, 202, "{v}");
    let offered = last_code(&ca, STAFF);

    let body = json!({ "phone": STAFF, "code": admin_code(&ra, AGENT).await });
    assert_eq!(mobile(&ra, Some(&admin), "POST", &format!("{org}/members/remove"), Some(body)).await.0, 204);
    let body = json!({ "phone": STAFF, "from": AGENT, "code": offered });
    let (status, v) = mobile(&ra, None, "POST", &format!("{org}/handover/accept"), Some(body)).await;
    assert!((400..500).contains(&status), "the removed member's offer is withdrawn: {status} {v}");
    let after = organisation(&ra, &admin).await;
    assert_eq!(after["role"], "admin", "the administrator keeps the role: {after}");
    assert!(!after["members"].as_array().unwrap().iter().any(|m| m["phone"] == STAFF), "{after}");

    // Removing someone else leaves a standing offer alone.
    let body = json!({ "phone": OUTSIDER, "role": "staff", "code": admin_code(&ra, AGENT).await });
    assert_eq!(mobile(&ra, Some(&admin), "POST", &format!("{org}/members"), Some(body)).await.0, 204);
    let body = offer(STAFF, admin_code(&ra, AGENT).await);
    assert_eq!(mobile(&ra, Some(&admin), "POST", &format!("{org}/handover"), Some(body)).await.0, 202);
    let offered = last_code(&ca, STAFF);
    let body = json!({ "phone": OUTSIDER, "code": admin_code(&ra, AGENT).await });
    assert_eq!(mobile(&ra, Some(&admin), "POST", &format!("{org}/members/remove"), Some(body)).await.0, 204);
    let body = json!({ "phone": STAFF, "from": AGENT, "code": offered });
    let (status, v) = mobile(&ra, None, "POST", &format!("{org}/handover/accept"), Some(body)).await;
    assert_eq!(status, 204, "{v}");
}

/// Malformed input to 印章授权 and 人员管理 through the API is a clear 4xx, never a 5xx, and
/// nothing is audited as done: a grant or withdrawal naming no phone (the web page sends an
/// empty one when what was typed is not a mobile number) or a malformed one, a removal of a
/// malformed phone, an unknown seal, unknown fields and a body past the limit.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_seal_grants_and_removals_are_refused_clearly_and_audit_nothing() {
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let (_, admin) = org_certificate(&ra, &Client::new(&ca, "reviewer")).await;
    let seal = seed_seal(&ca).await;
    let org = format!("/v1/mobile/orgs/{CREDIT}");
    let users = format!("{org}/seals/{seal}/users");
    let remove = format!("{org}/members/remove");
    for (phone, allowed) in [("", false), ("not-a-phone", false), ("", true), ("13600136000", false)] {
        let body = json!({ "phone": phone, "allowed": allowed, "code": admin_code(&ra, AGENT).await });
        let (status, v) = mobile(&ra, Some(&admin), "POST", &users, Some(body)).await;
        assert_eq!(status, 400, "{phone:?} allowed={allowed}: {v}");
        assert!(v["title"].as_str().unwrap_or_default().contains("phone"), "{v}");
    }
    let body = json!({ "phone": "x".repeat(40), "code": admin_code(&ra, AGENT).await });
    assert_eq!(mobile(&ra, Some(&admin), "POST", &remove, Some(body)).await.0, 400);
    let body = json!({ "phone": STAFF, "allowed": false, "code": admin_code(&ra, AGENT).await });
    let path = format!("{org}/seals/no-such-seal/users");
    assert_eq!(mobile(&ra, Some(&admin), "POST", &path, Some(body)).await.0, 404);
    let body = json!({ "phone": STAFF, "code": "000000", "role": "admin" });
    assert_eq!(mobile(&ra, Some(&admin), "POST", &remove, Some(body)).await.0, 422, "unknown field");
    let body = json!({ "phone": "1".repeat(2 << 20), "code": "000000" });
    let (status, _) = mobile(&ra, Some(&admin), "POST", &remove, Some(body)).await;
    assert!((400..500).contains(&status), "{status}");
    assert_eq!((count(&ca, "seal.user.set"), count(&ca, "org.member.removed")), (0, 0), "nothing audited as done");
}

/// The attack on 印章办理 by a removed seal administrator (threat model: organisation roles):
/// they ask for a change of the organisation's seal (a new image), and are removed before a
/// reviewer decides. The request goes with them: a reviewer can no longer approve it, the
/// seal keeps its image, and the request no longer waits in the queue.
#[tokio::test(flavor = "multi_thread")]
async fn a_seal_request_of_a_removed_seal_administrator_can_no_longer_be_approved() {
    use base64::Engine;
    const SEAL_ADMIN: &str = "+8613400134000";
    let ca = services_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let ra = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let (_, admin) = org_certificate(&ra, &reviewer).await;
    let seal = seed_seal(&ca).await;
    let subject = json!([["C", "CN"], ["CN", "张三"], ["serialNumber", "11010519491231002X"]]);
    let approval = json!({ "profile": "personal", "phone": SEAL_ADMIN, "subject": subject });
    Client::new(&ca, "operator").ok("POST", "/v1/approvals", None, Some(approval)).await;
    let org = format!("/v1/mobile/orgs/{CREDIT}");
    let body = json!({ "phone": SEAL_ADMIN, "role": "seal-admin", "code": admin_code(&ra, AGENT).await });
    assert_eq!(mobile(&ra, Some(&admin), "POST", &format!("{org}/members"), Some(body)).await.0, 204);
    let seal_admin = login(&ra, SEAL_ADMIN).await;
    let forged = cloudca::signing::qr::render_png("伪造", 2).unwrap();
    let png = base64::engine::general_purpose::STANDARD.encode(&forged);
    let body = json!({ "name": "公章", "png": png, "seal_id": seal, "code": admin_code(&ra, SEAL_ADMIN).await });
    let (status, requested) = mobile(&ra, Some(&seal_admin), "POST", &format!("{org}/seal-requests"), Some(body)).await;
    assert_eq!(status, 202, "{requested}");
    let id = requested["request_id"].as_str().unwrap().to_string();

    let body = json!({ "phone": SEAL_ADMIN, "code": admin_code(&ra, AGENT).await });
    assert_eq!(mobile(&ra, Some(&admin), "POST", &format!("{org}/members/remove"), Some(body)).await.0, 204);
    let pending = reviewer.ok("GET", "/v1/seal-requests", None, None).await;
    assert!(!pending.to_string().contains(&id), "no longer waiting: {pending}");
    let r = reviewer
        .http
        .post(format!("{}/v1/seal-requests/{id}/decision", reviewer.admin))
        .json(&json!({ "approve": true }));
    let (status, v) = reviewer.send(r).await;
    assert_eq!(status, 404, "{v}");
    let seals = active_seals(&ca).await;
    assert_eq!(seals.len(), 1);
    assert_ne!(seals[0].2, forged, "the seal keeps its image");
}
