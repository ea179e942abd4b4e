//! The back office over mutual TLS, driven with curl and openssl: handshakes (no certificate,
//! foreign CA, revoked), roles on every route, the endpoints' actions, bad input everywhere,
//! certificate reload, and the relying-platform registry.

use crate::common::*;

/// curl against the admin listener of a test instance.
pub struct Admin<'a> {
    pub ca: &'a TestCa,
    pub url: String,
}

impl<'a> Admin<'a> {
    pub fn new(ca: &'a TestCa) -> Admin<'a> {
        Admin { ca, url: format!("https://localhost:{}", ca.config.listeners.admin.port()) }
    }

    fn tls(&self) -> std::path::PathBuf {
        self.ca.config_path.parent().unwrap().join("tls")
    }

    /// The dev client certificate and key of a role.
    pub fn credentials(&self, role: &str) -> (String, String) {
        let dir = self.tls();
        let path = |ext: &str| dir.join(format!("clients/{role}.{ext}")).to_str().unwrap().to_string();
        (path("pem"), path("key"))
    }

    /// curl as a role (None: no client certificate); returns (exit ok, HTTP status, body).
    pub fn curl(&self, role: Option<&str>, method: &str, path: &str, body: Option<&str>) -> (bool, String, String) {
        let creds = role.map(|r| self.credentials(r));
        self.curl_as(creds.as_ref().map(|(c, k)| (c.as_str(), k.as_str())), method, path, body)
    }

    /// curl with explicit client credentials.
    pub fn curl_as(
        &self,
        creds: Option<(&str, &str)>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (bool, String, String) {
        let url = format!("{}{path}", self.url);
        let cacert = self.tls().join("operator-ca.pem");
        let mut args = vec![
            "-s",
            "--noproxy",
            "*",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
            cacert.to_str().unwrap(),
            "-X",
            method,
        ];
        if let Some((c, k)) = creds {
            args.extend(["--cert", c, "--key", k]);
        }
        if let Some(b) = body {
            args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        args.push(&url);
        let out = run("curl", &args);
        let (body, status) =
            out.text.rsplit_once('\n').map(|(b, s)| (b.to_string(), s.to_string())).unwrap_or_default();
        (out.ok, status, body)
    }

    /// A JSON call that must succeed; returns the parsed body.
    pub fn json(&self, role: &str, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
        let (_, status, text) = self.curl(Some(role), method, path, body);
        assert!(status.starts_with('2'), "{role} {method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    }
}

/// A CSR (PEM) for a new P-256 key with this subject; returns (key path, CSR PEM).
fn csr_pem(ca: &TestCa, name: &str, subject: &str) -> (std::path::PathBuf, String) {
    let key = make_key(ca.dir.path(), name, "ec:P-256");
    make_csr(ca.dir.path(), name, &key, subject);
    (key, std::fs::read_to_string(ca.path(&format!("{name}.csr"))).unwrap())
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A client certificate and key from another CA (not the operator CA).
pub(crate) fn foreign_certificate(ca: &TestCa) -> (String, String) {
    let dir = ca.path("foreign");
    std::fs::create_dir_all(&dir).unwrap();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let ca_key = make_key(&dir, "ca", "ec:P-256");
    let subject = "/O=Elsewhere/CN=Foreign CA";
    let out = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            ca_key.to_str().unwrap(),
            "-subj",
            subject,
            "-days",
            "2",
            "-out",
            &p("ca.pem"),
        ],
    );
    assert!(out.ok, "{}", out.text);
    let key = make_key(&dir, "leaf", "ec:P-256");
    let subject = "/O=cloudca Development/OU=operator/CN=intruder";
    let out = run("openssl", &["req", "-new", "-key", key.to_str().unwrap(), "-subj", subject, "-out", &p("leaf.csr")]);
    assert!(out.ok, "{}", out.text);
    let args = ["x509", "-req", "-in", &p("leaf.csr"), "-CA", &p("ca.pem"), "-CAkey", ca_key.to_str().unwrap()];
    std::fs::write(dir.join("leaf.ext"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").unwrap();
    let out =
        run("openssl", &[&args[..], &["-extfile", &p("leaf.ext"), "-days", "1", "-out", &p("leaf.pem")]].concat());
    assert!(out.ok, "{}", out.text);
    (p("leaf.pem"), key.to_str().unwrap().to_string())
}

async fn metrics_text(daemon: &Daemon) -> String {
    http().get(format!("{}/metrics", daemon.metrics)).send().await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn handshakes_fail_without_a_valid_unrevoked_operator_certificate_and_roles_decide() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let admin = Admin::new(&ca);

    // No client certificate, or one from another CA: the handshake fails.
    let (ok, status, _) = admin.curl(None, "GET", "/v1/whoami", None);
    assert!(!ok && status == "000", "no client certificate must fail the handshake ({status})");
    let (cert, key) = foreign_certificate(&ca);
    let (ok, status, _) = admin.curl_as(Some((&cert, &key)), "GET", "/v1/whoami", None);
    assert!(!ok && status == "000", "a foreign certificate must fail the handshake ({status})");

    // The right CA: identified, with the role from roles.toml; the login is audited.
    let who = admin.json("auditor", "GET", "/v1/whoami", None);
    assert_eq!(who["role"], "auditor", "{who}");
    let instance = ca.open().await;
    assert!(instance.store.count_audit_events("operator.login").await.unwrap() >= 1);

    // Wrong role: 403, problem JSON without details, audited; nothing happens.
    let (_, serial) = issue_cli(&ca, "ee", "org", ORG_SUBJECT);
    let revoke = format!("/v1/certificates/{serial}/revoke");
    let (_, status, body) = admin.curl(Some("reviewer"), "POST", &revoke, Some(r#"{"reason":"keyCompromise"}"#));
    assert_eq!(status, "403", "{body}");
    assert!(body.contains("\"status\":403") && !body.contains("reviewer"), "problem JSON without details: {body}");
    assert_eq!(instance.store.count_audit_events("access.denied").await.unwrap(), 1);
    assert_eq!(instance.store.count_certificates("revoked").await.unwrap(), 0);

    // Right role: the action happens.
    let done = admin.json("operator", "POST", &revoke, Some(r#"{"reason":"keyCompromise"}"#));
    assert_eq!(done["outcome"], "revoked");
    assert_eq!(instance.store.count_certificates("revoked").await.unwrap(), 1);

    // Revoke the reviewer's own certificate: its next handshake fails, and the failure is
    // counted by reason.
    let operators = admin.json("operator", "GET", "/v1/operators", None);
    let reviewer = operators["items"].as_array().unwrap().iter().find(|o| o["role"] == "reviewer").unwrap().clone();
    let path = format!("/v1/operators/{}/revoke", reviewer["serial"].as_str().unwrap());
    assert_eq!(admin.json("operator", "POST", &path, Some(r#"{"reason":"keyCompromise"}"#))["outcome"], "revoked");
    let (ok, status, body) = admin.curl(Some("reviewer"), "GET", "/v1/whoami", None);
    assert!(!ok && status == "000", "a revoked operator certificate must fail the handshake: {status} {body}");
    assert_eq!(
        admin.json("operator", "POST", &path, Some(r#"{"reason":"keyCompromise"}"#))["outcome"],
        "already revoked"
    );

    let metrics = metrics_text(&daemon).await;
    for series in [
        r#"cloudca_tls_handshake_failures_total{listener="admin",reason="no_certificate"} 1"#,
        r#"cloudca_tls_handshake_failures_total{listener="admin",reason="unknown_issuer"} 1"#,
        r#"cloudca_tls_handshake_failures_total{listener="admin",reason="revoked"} 1"#,
        r#"cloudca_http_requests_total{listener="admin",route="/v1/certificates/{serial}/revoke",status="403"} 1"#,
        "cloudca_access_denied_total 1",
        "cloudca_audit_appends_total",
        "cloudca_audit_checkpoint_age_seconds",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics:\n{metrics}");
    }
    let verify = admin.json("auditor", "GET", "/v1/audit/verify", None);
    assert_eq!(verify["intact"], true, "{verify}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_every_role_as_the_route_table_says() {
    use cloudca::roles::Role;
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let admin = Admin::new(&ca);
    // Objects for the routes with parameters, made once (repeated actions are idempotent).
    let (_, serial) = issue_cli(&ca, "walk", "org", ORG_SUBJECT);
    let (_, csr) = csr_pem(&ca, "walk-csr", ORG_SUBJECT);
    let (_, operator_csr) = csr_pem(&ca, "walk-op", "/CN=walk operator");
    let platform = admin.json(
        "operator",
        "POST",
        "/v1/relying-platforms",
        Some(r#"{"name":"walk","display_name":"Walk","callback_url":"https://walk.example/cb","fingerprint":"00000000000000000000000000000000000000000000000000000000000000aa"}"#),
    );
    assert_eq!(platform["status"], "active");
    let spare = admin.json(
        "operator",
        "POST",
        "/v1/operators",
        Some(&format!(r#"{{"csr":{},"role":"auditor","validity_days":30}}"#, json_string(&operator_csr))),
    );

    // A pending seal request for the review route (made through the library, as the phone
    // flow is tested elsewhere).
    let instance = ca.open().await;
    let audit = cloudca::store::AuditRecord {
        at: 0,
        kind: "org.admin.claimed".into(),
        actor: "test".into(),
        serial: None,
        detail: "{}".into(),
    };
    let (org, agent) = ("91350100M000100Y43", "+8613700137000");
    assert!(instance.store.claim_org_admin(org, agent, 0, &audit).await.unwrap());
    let png = cloudca::signing::qr::render_png("seal", 2).unwrap();
    let request = instance.seals.request(agent, org, "seal", png, None).await.unwrap();
    drop(instance);
    let mut denied = 0;
    let mut counter = 0;
    for route in cloudca::api::admin::ROUTES {
        for role in Role::ALL {
            counter += 1;
            let path = match route.path {
                p if p.starts_with("/v1/operators/") => p.replace("{serial}", spare["serial"].as_str().unwrap()),
                p => p.replace("{serial}", &serial).replace("{name}", "walk").replace("{id}", &request.id),
            };
            let body = match (route.method, route.path) {
                ("POST", "/v1/certificates") => {
                    format!(r#"{{"csr":{},"profile":"org"}}"#, json_string(&csr))
                }
                ("POST", "/v1/relying-platforms") => format!(
                    r#"{{"name":"p{counter}","display_name":"P","callback_url":"https://p.example/cb","fingerprint":"{counter:064x}"}}"#
                ),
                ("POST", "/v1/operators") => format!(r#"{{"csr":{},"role":"reviewer"}}"#, json_string(&operator_csr)),
                ("POST", "/v1/seal-requests/{id}/decision") => r#"{"approve":false}"#.to_string(),
                ("POST", "/v1/approvals") => format!(
                    r#"{{"profile":"personal","phone":"+86138{counter:08}","subject":[["C","CN"],["CN","张三"],["serialNumber","11010519491231002X"]]}}"#
                ),
                ("POST", _) => r#"{"reason":"superseded"}"#.to_string(),
                _ => String::new(),
            };
            let body = (!body.is_empty()).then_some(body.as_str());
            // crl/rebuild and the disable route take no body; an empty JSON object is ignored.
            let body = if route.path.ends_with("/rebuild") || route.path.ends_with("/disable") { None } else { body };
            let (_, status, text) = admin.curl(Some(role.name()), route.method, &path, body);
            // RA routes act on orders this walk does not create: an allowed role gets the RA's
            // own answer (404 no such order, 409, 422), never 403 and never a server error.
            // Their successes are the RA tests' business (tests/it/ra.rs).
            // The review pages' forms refuse a post that is not from the pages (no Origin
            // here): that 403 is theirs, not the role layer's (tests/it/review_pages.rs).
            let ra = ["/v1/ra/", "/v1/orders/", "/review/"].iter().any(|p| route.path.starts_with(p));
            let cross_site = text.contains("sent from the review pages themselves");
            if route.roles.contains(&role) && ra {
                let code: u16 = status.parse().unwrap_or(0);
                assert!(
                    (code != 403 || cross_site) && (200..500).contains(&code),
                    "{} on {} {}: {status} {text}",
                    role.name(),
                    route.method,
                    route.path
                );
            } else if route.roles.contains(&role) {
                assert!(status.starts_with('2'), "{} on {} {}: {status} {text}", role.name(), route.method, route.path);
            } else {
                assert_eq!(status, "403", "{} may not {} {}: {text}", role.name(), route.method, route.path);
                denied += 1;
            }
        }
    }
    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("access.denied").await.unwrap(), denied, "every denial audited");

    // Request ids on every response; per-route counters on the admin, metrics and public listeners.
    let response = http().get(format!("{}/live", daemon.metrics)).send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"].len(), 16);
    let out = run("curl", &["-s", "--noproxy", "*", "-o", "/dev/null", &format!("{}/ca/org.crt", daemon.public)]);
    assert!(out.ok);
    let metrics = metrics_text(&daemon).await;
    for series in [
        r#"cloudca_http_requests_total{listener="metrics",route="/live",status="200"}"#,
        r#"cloudca_http_requests_total{listener="admin",route="/v1/audit/verify",status="403"}"#,
        r#"cloudca_http_requests_total{listener="public",route="/ca/{file}",status="200"}"#,
        "cloudca_access_denied_total",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
}

/// Review C2, the compromised web front's story: it holds the web front's certificate and key
/// and tries every route of every TLS listener. On the admin listener it reaches exactly the
/// applicant routes under `/v1/ra/` (which also need each order's token); in particular it
/// cannot mint an approval, which would give a certificate in anyone's name to a phone of its
/// choosing. On the api listener its certificate gets it nothing an anonymous caller does not
/// get. (The public and metrics listeners are plain HTTP and see no certificate.)
#[tokio::test(flavor = "multi_thread")]
async fn a_compromised_web_front_reaches_only_the_applicant_routes() {
    use cloudca::roles::Role;
    // Every role may read the listener's own description; nothing else is shared.
    let public = |route: &cloudca::api::admin::Route| route.roles == Role::ALL;
    for route in cloudca::api::admin::ROUTES.iter().filter(|r| !public(r)) {
        let applicant = route.path.starts_with("/v1/ra/");
        assert_eq!(route.roles.contains(&Role::WebFront), applicant, "{} {}", route.method, route.path);
        assert!(
            !applicant || route.roles == [Role::WebFront],
            "{}: the applicant routes are the web front's alone",
            route.path
        );
    }
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let admin = Admin::new(&ca);
    let web = Some("web-front");
    // The attack: an approval for the attacker's phone in a company's name.
    let body = r#"{"profile":"personal","phone":"+8613800138000","subject":[["C","CN"],["CN","张三"],["serialNumber","11010519491231002X"]]}"#;
    let (_, status, text) = admin.curl(web, "POST", "/v1/approvals", Some(body));
    assert_eq!(status, "403", "{text}");
    for route in cloudca::api::admin::ROUTES.iter().filter(|r| !r.path.starts_with("/v1/ra/") && !public(r)) {
        let path = route.path.replace("{serial}", "01").replace("{name}", "x").replace("{id}", "x");
        let body = (route.method != "GET").then_some("{}");
        let (_, status, text) = admin.curl(web, route.method, &path, body);
        assert_eq!(status, "403", "web-front {} {}: {text}", route.method, route.path);
    }
    let instance = ca.open().await;
    let approvals = instance.store.count_audit_events("approval.created").await.unwrap();
    assert_eq!(approvals, 0, "no approval was made");

    // The api listener: with the web front's certificate, every documented operation answers
    // as it does to a caller without one.
    let api = Admin { ca: &ca, url: format!("https://localhost:{}", ca.config.listeners.api.port()) };
    let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string("openapi/api.json").unwrap()).unwrap();
    let mut walked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete"].into_iter().filter(|m| item.get(*m).is_some()) {
            let path = path
                .replace("{id}", "0123456789abcdef0123456789abcdef")
                .replace("{credit_code}", "91350100M000100Y43")
                .replace("{seal_id}", "x")
                .replace("{ref}", "x");
            let method = method.to_uppercase();
            let body = (method != "GET").then_some("{}");
            let (_, anonymous, _) = api.curl(None, &method, &path, body);
            let (_, status, text) = api.curl(web, &method, &path, body);
            assert_eq!(status, anonymous, "web-front {method} {path}: {text}");
            walked += 1;
        }
    }
    assert!(walked >= 25, "walked {walked} operations");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_at_every_endpoint_is_a_clear_4xx_and_changes_nothing() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let admin = Admin::new(&ca);
    let (_, serial) = issue_cli(&ca, "ee", "org", ORG_SUBJECT);
    let instance = ca.open().await;
    let snapshot = || async {
        let s = &instance.store;
        (
            s.count_serials().await.unwrap(),
            s.count_certificates("revoked").await.unwrap(),
            s.platforms().await.unwrap().len(),
            s.operator_certs().await.unwrap().len(),
            s.count_audit_events("certificate.issued").await.unwrap(),
        )
    };
    let before = snapshot().await;
    let huge = format!(r#"{{"csr":"{}","profile":"org"}}"#, "A".repeat(70 * 1024));
    let garbage_csr = r#"{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n","profile":"org"}"#;
    let cases: &[(&str, String, Option<&str>, &str)] = &[
        ("POST", "/v1/certificates".into(), Some("{not json"), "400"),
        ("POST", "/v1/certificates".into(), Some(r#"{"csr":7,"profile":"org"}"#), "422"),
        ("POST", "/v1/certificates".into(), Some(r#"{"profile":"org"}"#), "422"),
        ("POST", "/v1/certificates".into(), Some(r#"{"csr":"x","profile":"org","extra":1}"#), "422"),
        ("POST", "/v1/certificates".into(), Some(garbage_csr), "400"),
        ("POST", "/v1/certificates".into(), Some(&huge), "413"),
        ("POST", "/v1/certificates".into(), None, "415"),
        ("GET", "/v1/certificates?limit=0".into(), None, "400"),
        ("GET", "/v1/certificates?limit=abc".into(), None, "400"),
        ("GET", "/v1/certificates?status=lost".into(), None, "400"),
        ("GET", "/v1/certificates?not_after_to=yesterday".into(), None, "400"),
        ("GET", "/v1/certificates?serial=xyz".into(), None, "400"),
        ("GET", "/v1/certificates?unknown=1".into(), None, "400"),
        ("GET", "/v1/certificates/xyz".into(), None, "400"),
        ("GET", "/v1/certificates/0badc0de".into(), None, "404"),
        ("POST", format!("/v1/certificates/{serial}/revoke"), Some(r#"{"reason":"bored"}"#), "400"),
        ("POST", format!("/v1/certificates/{serial}/revoke"), Some(r#"{"reason":1}"#), "422"),
        ("POST", format!("/v1/certificates/{serial}/revoke"), Some(r#"[]"#), "422"),
        (
            "POST",
            format!("/v1/certificates/{serial}/revoke"),
            Some(r#"{"reason":"superseded","invalidity_date":"soon"}"#),
            "400",
        ),
        ("POST", "/v1/certificates/0badc0de/revoke".into(), Some(r#"{"reason":"superseded"}"#), "404"),
        ("GET", "/v1/audit?limit=100000".into(), None, "400"),
        ("GET", "/v1/audit?after_seq=-1".into(), None, "400"),
        ("POST", "/v1/relying-platforms".into(), Some(r#"{"name":"x"}"#), "422"),
        (
            "POST",
            "/v1/relying-platforms".into(),
            Some(r#"{"name":"Bad Name","display_name":"X","callback_url":"https://x.example","fingerprint":"00"}"#),
            "422",
        ),
        (
            "POST",
            "/v1/relying-platforms".into(),
            Some(
                r#"{"name":"plain","display_name":"X","callback_url":"http://x.example/cb","fingerprint":"0000000000000000000000000000000000000000000000000000000000000000"}"#,
            ),
            "422",
        ),
        (
            "POST",
            "/v1/relying-platforms".into(),
            Some(r#"{"name":"cert","display_name":"X","callback_url":"https://x.example/cb","certificate":"not pem"}"#),
            "422",
        ),
        ("GET", "/v1/relying-platforms/nobody".into(), None, "404"),
        ("POST", "/v1/relying-platforms/nobody/disable".into(), None, "404"),
        ("POST", "/v1/operators".into(), Some(r#"{"csr":"junk","role":"operator"}"#), "400"),
        ("POST", "/v1/operators".into(), Some(r#"{"csr":"junk","role":"king"}"#), "400"),
        ("POST", "/v1/operators/0badc0de/revoke".into(), Some(r#"{"reason":"superseded"}"#), "404"),
        ("POST", "/v1/operators/zz/revoke".into(), Some(r#"{"reason":"superseded"}"#), "400"),
        ("GET", "/v1/nothing-here".into(), None, "404"),
    ];
    for (method, path, body, expected) in cases {
        let role = if path.starts_with("/v1/audit") { "auditor" } else { "operator" };
        let (_, status, text) = admin.curl(Some(role), method, path, *body);
        assert_eq!(&status, expected, "{method} {path} {body:?}: {text}");
        assert!(text.contains("\"title\""), "problem JSON for {method} {path}: {text}");
    }
    // Well-formed requests the profile or policy refuses.
    let (_, wrong_subject) = csr_pem(&ca, "wrong", "/C=CN/CN=no organisation");
    let body = format!(r#"{{"csr":{},"profile":"org"}}"#, json_string(&wrong_subject));
    let (_, status, text) = admin.curl(Some("operator"), "POST", "/v1/certificates", Some(&body));
    assert_eq!(status, "422", "{text}");
    let body = format!(r#"{{"csr":{},"profile":"nope"}}"#, json_string(&wrong_subject));
    assert_eq!(admin.curl(Some("operator"), "POST", "/v1/certificates", Some(&body)).1, "422");
    let body = format!(r#"{{"csr":{},"role":"operator","validity_days":5000}}"#, json_string(&wrong_subject));
    assert_eq!(admin.curl(Some("operator"), "POST", "/v1/operators", Some(&body)).1, "422");
    assert_eq!(snapshot().await, before, "bad input changed nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_search_issue_and_register_platforms_through_the_api() {
    let mut ca = TestCa::new().await;
    // A deployment that maps relying platforms by registration only (no subject rule).
    let roles = ca.config.policies_dir.join("roles.toml");
    let text = std::fs::read_to_string(&roles).unwrap();
    let cut = text.find("[[rule]]\nrole = \"relying-platform\"").expect("rule present");
    std::fs::write(&roles, &text[..cut]).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    let _daemon = Daemon::start(&ca).await;
    let admin = Admin::new(&ca);

    // Issue from a CSR over the API; the chain verifies with openssl.
    let (_, csr) = csr_pem(&ca, "api", ORG_SUBJECT);
    let issued = admin.json(
        "operator",
        "POST",
        "/v1/certificates",
        Some(&format!(r#"{{"csr":{},"profile":"org"}}"#, json_string(&csr))),
    );
    let cert = ca.path("api.pem");
    std::fs::write(&cert, issued["pem"].as_str().unwrap()).unwrap();
    let chain = ca.path("api-chain.pem");
    std::fs::write(&chain, issued["chain_pem"].as_str().unwrap()).unwrap();
    let out = run("openssl", &["verify", "-CAfile", chain.to_str().unwrap(), cert.to_str().unwrap()]);
    assert!(out.ok, "{}", out.text);
    let (_, other) = issue_cli(&ca, "other", "personal", PERSONAL_SUBJECT);
    admin.json("operator", "POST", &format!("/v1/certificates/{other}/revoke"), Some(r#"{"reason":"superseded"}"#));

    // Search by serial, subject, identifier, status and expiry window.
    let serial = issued["serial"].as_str().unwrap();
    let search = |query: &str| admin.json("reviewer", "GET", &format!("/v1/certificates?{query}"), None);
    let serials = |v: serde_json::Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|i| i["serial"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(serials(search(&format!("serial={serial}"))), vec![serial.to_string()]);
    assert_eq!(serials(search("identifier=91350100M000100Y43")), vec![serial.to_string()]);
    assert_eq!(serials(search("subject=%E7%A4%BA%E4%BE%8B%E7%A7%91%E6%8A%80")), vec![serial.to_string()]);
    assert_eq!(search("status=revoked")["items"][0]["serial"], other.to_lowercase());
    assert_eq!(serials(search("status=issued")), vec![serial.to_string()]);
    assert!(serials(search("status=expired")).is_empty());
    assert_eq!(serials(search("not_after_to=2000-01-01T00:00:00Z")).len(), 0);
    assert_eq!(serials(search("not_after_from=2000-01-01T00:00:00Z&profile=org")), vec![serial.to_string()]);
    let page = search("limit=1");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let rest = search(&format!("after={}", page["next"].as_str().unwrap()));
    assert_eq!(rest["items"].as_array().unwrap().len(), 1, "two certificates, one per page");
    let shown = admin.json("auditor", "GET", &format!("/v1/certificates/{other}"), None);
    assert_eq!(shown["revocation"]["reason"], "superseded", "{shown}");

    // A new machine credential; without a rule it has no role, and is denied everywhere.
    let (key, csr) = csr_pem(&ca, "platform", "/CN=gov portal");
    let body = format!(r#"{{"csr":{},"role":"relying-platform","validity_days":30}}"#, json_string(&csr));
    let credential = admin.json("operator", "POST", "/v1/operators", Some(&body));
    let cert = ca.path("platform-client.pem");
    std::fs::write(&cert, credential["pem"].as_str().unwrap()).unwrap();
    let creds = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (_, status, text) = admin.curl_as(Some(creds), "GET", "/v1/whoami", None);
    assert_eq!(status, "403", "{text}");

    // Registered by its certificate, it becomes a relying platform on the next connection.
    let pem_text = std::fs::read_to_string(&cert).unwrap();
    let body = format!(
        r#"{{"name":"gov-portal","display_name":"政务服务平台","callback_url":"https://portal.example/cb","certificate":{}}}"#,
        json_string(&pem_text)
    );
    let registered = admin.json("operator", "POST", "/v1/relying-platforms", Some(&body));
    assert_eq!(registered["fingerprint"], credential["fingerprint"]);
    let (_, status, text) = admin.curl_as(Some(creds), "GET", "/v1/whoami", None);
    assert!(status == "200" && text.contains("\"role\":\"relying-platform\""), "{status} {text}");
    let (_, status, _) = admin.curl(Some("operator"), "POST", "/v1/relying-platforms", Some(&body));
    assert_eq!(status, "409", "duplicate registration");
    assert_eq!(admin.json("reviewer", "GET", "/v1/relying-platforms/gov-portal", None)["display_name"], "政务服务平台");

    // Disabled: the role goes at the next connection.
    assert_eq!(admin.json("operator", "POST", "/v1/relying-platforms/gov-portal/disable", None)["status"], "disabled");
    let (_, status, text) = admin.curl_as(Some(creds), "GET", "/v1/whoami", None);
    assert_eq!(status, "403", "{text}");

    // Audit query finds the events by kind and serial.
    // dev-init registered the dev platform; this test registered gov-portal.
    let events = admin.json("auditor", "GET", "/v1/audit?kind=platform.registered", None);
    let names: Vec<_> = events["items"].as_array().unwrap().iter().map(|e| e["detail"]["name"].clone()).collect();
    assert_eq!(names, ["dev-platform", "gov-portal"], "{events}");
    let events = admin.json("auditor", "GET", &format!("/v1/audit?serial={other}"), None);
    let kinds: Vec<_> = events["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"certificate.revoked"), "{kinds:?}");
    let rebuilt = admin.json("operator", "POST", "/v1/crl/rebuild", None);
    assert!(
        rebuilt["crls"].as_array().unwrap().iter().any(|c| c["ca"] == "personal" && c["entries"] == 1),
        "{rebuilt}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_certificates_reload_without_a_restart() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let tls = ca.config_path.parent().unwrap().join("tls");
    let served = || {
        let addr = format!("127.0.0.1:{}", ca.config.listeners.admin.port());
        let (cert, key) = Admin::new(&ca).credentials("auditor");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client -connect {addr} -cert {cert} -key {key} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let before = served();
    assert!(before.contains("Fingerprint"), "{before}");
    // A new key and certificate, written the way certbot-style tooling does (replace files).
    let key = make_key(&tls, "server-new", "ec:P-256");
    let cert = tls.join("server-new.pem");
    let out = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            "/CN=localhost",
            "-days",
            "2",
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    assert!(out.ok, "{}", out.text);
    std::fs::rename(&key, tls.join("server.key")).unwrap();
    std::fs::rename(&cert, tls.join("server.pem")).unwrap();
    let expected =
        run("openssl", &["x509", "-in", tls.join("server.pem").to_str().unwrap(), "-noout", "-fingerprint", "-sha256"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let now = served();
        if now == expected.text.trim() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still serving {now}, expected {}", expected.text.trim());
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // A broken file keeps the working certificate.
    std::fs::write(tls.join("server.pem"), "garbage").unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(served(), expected.text.trim(), "a failed reload keeps the previous certificate");
}
