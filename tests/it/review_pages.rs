//! The reviewers' pages on the admin listener (issue 17 point 8): a reviewer with their own
//! client certificate reads the queue and an order with its materials, and decides; another
//! site's form posted with that certificate is refused and audited; other roles see nothing.

use serde_json::json;

use crate::common::*;
use crate::ra::{count, personal_signed, ra_ca, wait_state, Client, AGENT, AGENT_ID};

/// A personal order paid and waiting for review, its ID front a PNG: (id, token).
async fn order_in_review(web: &Client<'_>) -> (String, String) {
    let (id, token) = personal_signed(web, AGENT, AGENT_ID, "personal-cloud-1y").await;
    let png = cloudca::signing::qr::render_png("身份证人像面", 2).unwrap();
    // Materials may change while the order is open: the ID front becomes a PNG, the image
    // its page shows inline.
    assert_eq!(web.upload(&id, &token, "id-front", &png).await.0, 201);
    let v = web
        .ok("POST", &format!("/v1/ra/orders/{id}/steps/payment"), Some(&token), Some(json!({ "method": "wechat" })))
        .await;
    web.pay(v["payment"]["qr_url"].as_str().unwrap()).await;
    wait_state(web, &id, &token, "review").await;
    (id, token)
}

/// GET as `c`: status, headers, body text.
async fn page(c: &Client<'_>, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = c.http.get(format!("{}{path}", c.admin)).send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().await.unwrap_or_default())
}

/// A form post as `c` with `origin` (None: no Origin header, as a non-browser client sends):
/// the status and the path it ended on (redirects followed, as a browser does).
async fn post_form(c: &Client<'_>, path: &str, origin: Option<&str>, form: &[(&str, &str)]) -> (u16, String) {
    let mut request = c.http.post(format!("{}{path}", c.admin)).form(form);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.url().path().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_decides_on_the_review_pages_and_another_sites_form_is_refused() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let (id, _) = order_in_review(&web).await;

    // The queue: the order listed and linked, masked; a page that runs no script and cannot
    // be framed or cached.
    let (status, headers, queue) = page(&reviewer, "/review").await;
    assert_eq!(status, 200, "{queue}");
    assert!(queue.contains(&format!("href=\"/review/orders/{id}\"")), "{queue}");
    assert!(!queue.contains(AGENT_ID), "lists are masked");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"), "{csp}");
    assert_eq!(headers["cache-control"], "no-store");

    // The order: whole, its read audited before it was shown; the PNG inline, safely.
    let reads = count(&ca, "order.identity_read");
    let (status, _, order) = page(&reviewer, &format!("/review/orders/{id}")).await;
    assert_eq!(status, 200, "{order}");
    assert!(order.contains(AGENT_ID), "a reviewer sees the ID number whole");
    assert_eq!(count(&ca, "order.identity_read"), reads + 1);
    assert!(order.contains("id=\"decision\""), "an order in review has the decision form");
    let img = order.split("<img src=\"").nth(1).expect("an image material is shown").split('"').next().unwrap();
    let (status, headers, _) = page(&reviewer, img).await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (200, "image/png"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().unwrap().starts_with("sandbox"));
    assert!(count(&ca, "order.material_read") >= 1, "the material read is audited");

    // Other roles: no pages (the web front holds a key that must never decide).
    for role in ["web-front", "operator", "auditor"] {
        let other = Client::new(&ca, role);
        assert_eq!(page(&other, "/review").await.0, 403, "{role}");
        assert_eq!(page(&other, &format!("/review/orders/{id}")).await.0, 403, "{role}");
        let own = format!("https://localhost:{}", ca.config.listeners.admin.port());
        let (status, _) =
            post_form(&other, &format!("/review/orders/{id}/decision"), Some(&own), &[("decision", "approve")]).await;
        assert_eq!(status, 403, "{role}");
    }

    // Another site's form, or a post that names no origin, decides nothing, and is audited.
    let decision = format!("/review/orders/{id}/decision");
    let approve = [("decision", "approve"), ("reason", "")];
    for origin in [Some("https://evil.example"), None, Some("null")] {
        assert_eq!(post_form(&reviewer, &decision, origin, &approve).await.0, 403, "{origin:?}");
    }
    assert_eq!(count(&ca, "access.cross_site_refused"), 1, "coalesced per officer per minute");
    let (_, _, order) = page(&reviewer, &format!("/review/orders/{id}")).await;
    assert!(order.contains("<td class=\"state\" id=\"state\">review</td>"), "still in review");

    // From the page itself: a rejection needs a reason; the approval goes through.
    let own = format!("https://localhost:{}", ca.config.listeners.admin.port());
    assert_eq!(post_form(&reviewer, &decision, Some(&own), &[("decision", "reject")]).await.0, 422);
    let (status, location) = post_form(&reviewer, &decision, Some(&own), &approve).await;
    assert_eq!((status, location.as_str()), (200, format!("/review/orders/{id}").as_str()), "back on the order's page");
    let (_, _, order) = page(&reviewer, &location).await;
    assert!(order.contains("id=\"state\">approved</td>"), "{order}");
    assert!(!order.contains("id=\"decision\""), "a decided order has no form");
    assert_eq!(count(&ca, "order.approved"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_reason_and_entered_data_are_shown_as_text_not_markup() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let (id, _) = order_in_review(&web).await;
    let own = format!("https://localhost:{}", ca.config.listeners.admin.port());
    let hostile = "<img src=x onerror=alert(1)>\"'&";
    let form = [("decision", "reject"), ("reason", hostile)];
    assert_eq!(post_form(&reviewer, &format!("/review/orders/{id}/decision"), Some(&own), &form).await.0, 200);
    let (_, _, order) = page(&reviewer, &format!("/review/orders/{id}")).await;
    assert!(order.contains("&lt;img src=x onerror=alert(1)&gt;&quot;'&amp;"), "{order}");
    assert!(!order.contains(hostile), "never as markup");
    assert!(order.contains("id=\"state\">rejected</td>"), "{order}");
}

/// The reviewer's browser profile: the reviewer's certificate and key in an NSS database of its
/// own `HOME`, the operator CA trusted there. `scripts/install-deps.sh` installs the Chromium
/// policy that presents a certificate from a "cloudca Development Operator CA" to
/// `https://localhost` without a dialog.
fn reviewer_home(ca: &TestCa) -> std::path::PathBuf {
    let home = ca.path("reviewer-browser");
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let tls = ca.config_path.parent().unwrap().join("tls");
    let file = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    let (cert, key, operator_ca) = (
        file(tls.join("clients/reviewer.pem")),
        file(tls.join("clients/reviewer.key")),
        file(tls.join("operator-ca.pem")),
    );
    let (p12, sql) = (file(home.join("reviewer.p12")), format!("sql:{}", db.display()));
    let steps: [(&str, Vec<&str>); 4] = [
        ("certutil", vec!["-N", "-d", &sql, "--empty-password"]),
        (
            "openssl",
            vec![
                "pkcs12", "-export", "-in", &cert, "-inkey", &key, "-out", &p12, "-passout", "pass:", "-name",
                "reviewer",
            ],
        ),
        ("pk12util", vec!["-i", &p12, "-d", &sql, "-W", ""]),
        ("certutil", vec!["-A", "-d", &sql, "-n", "operator-ca", "-t", "C,,", "-i", &operator_ca]),
    ];
    for (program, args) in steps {
        let out = run(program, &args);
        assert!(out.ok, "{program} {args:?}: {}", out.text);
    }
    home
}

/// The path an officer walks: the queue, the order with its ID front shown, a reason, approve;
/// in Chromium over mutual TLS with the reviewer's own certificate. Screenshots under
/// `target/screenshots/review/`.
#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_approves_in_a_real_browser_with_their_own_certificate() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let (id, _) = order_in_review(&web).await;
    let home = reviewer_home(&ca);
    let b = crate::web::Browser::start_at_home("review", 1100, 1500, Some(&home)).await;
    let base = format!("https://localhost:{}", ca.config.listeners.admin.port());
    b.goto(&format!("{base}/review")).await;
    b.shot("queue").await;
    b.click(&format!("#queue a[href=\"/review/orders/{id}\"]")).await;
    b.shot("order").await;
    let source = b.client.source().await.unwrap();
    assert!(source.contains("id=\"state\">review<"), "{source}");
    assert!(b.attr("div.material[data-kind=\"id-front\"] img", "src").await.is_some(), "the ID front is shown");
    b.fill("reason", "材料齐全").await;
    b.submit("decision").await;
    b.shot("approved").await;
    assert_eq!(b.text("#state").await, "approved");
    let reviewer = Client::new(&ca, "reviewer");
    let v = reviewer.ok("GET", &format!("/v1/orders/{id}"), None, None).await;
    assert!(
        v["decided_by"].as_str().unwrap().starts_with("reviewer:"),
        "decided under the reviewer's certificate: {v}"
    );
}

/// The guard of the whole admin listener (attacker review of the review pages): a browser
/// carrying a back-office certificate cannot be made by another site to write anything (here
/// an operator's CRL rebuild, a route with no body to stop a plain form) or to load a review
/// page (which records a read under the reviewer's name). Command-line clients, sending neither
/// `Origin` nor `Sec-Fetch-Site`, are unaffected; so is a page opened from the address bar.
#[tokio::test(flavor = "multi_thread")]
async fn another_site_cannot_make_a_back_office_browser_write_or_load_a_review_page() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let operator = Client::new(&ca, "operator");
    let rebuild = format!("{}/v1/crl/rebuild", operator.admin);
    for (name, value) in
        [("sec-fetch-site", "cross-site"), ("origin", "https://evil.example"), ("sec-fetch-site", "same-site")]
    {
        let r = operator.http.post(&rebuild).header(name, value).send().await.unwrap();
        assert_eq!(r.status(), 403, "{name}: {value}");
    }
    assert!(operator.http.post(&rebuild).send().await.unwrap().status().is_success(), "the CLI's request");
    assert_eq!(count(&ca, "access.cross_site_refused"), 1, "audited, coalesced per caller per minute");

    let reviewer = Client::new(&ca, "reviewer");
    let queue = format!("{}/review", reviewer.admin);
    let cross = reviewer.http.get(&queue).header("sec-fetch-site", "cross-site").send().await.unwrap();
    assert_eq!(cross.status(), 403, "an <img> or link from another site");
    let typed = reviewer.http.get(&queue).header("sec-fetch-site", "none").send().await.unwrap();
    assert_eq!(typed.status(), 200, "the address bar");
    assert_eq!(typed.headers()["cross-origin-resource-policy"], "same-origin");
}
