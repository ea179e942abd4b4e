//! The back office over mutual TLS, driven with curl: handshakes, roles, denials, actions.

use crate::common::*;

struct Admin<'a> {
    ca: &'a TestCa,
    url: String,
}

impl Admin<'_> {
    /// curl as a role (None: no client certificate); returns (exit ok, HTTP status, body).
    fn curl(&self, role: Option<&str>, method: &str, path: &str, body: Option<&str>) -> (bool, String, String) {
        let dir = self.ca.config_path.parent().unwrap().join("tls");
        let url = format!("{}{path}", self.url);
        let cacert = dir.join("operator-ca.pem");
        let (cert, key) =
            role.map(|r| (dir.join(format!("clients/{r}.pem")), dir.join(format!("clients/{r}.key")))).unzip();
        let mut args =
            vec!["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert", cacert.to_str().unwrap(), "-X", method];
        if let (Some(c), Some(k)) = (&cert, &key) {
            args.extend(["--cert", c.to_str().unwrap(), "--key", k.to_str().unwrap()]);
        }
        if let Some(b) = body {
            args.extend(["-H", "Content-Type: application/json", "--data", b]);
        }
        args.push(&url);
        let out = run("curl", &args);
        let (body, status) =
            out.text.rsplit_once('\n').map(|(b, s)| (b.to_string(), s.to_string())).unwrap_or_default();
        (out.ok, status, body)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_admits_only_operator_ca_certificates_and_roles_decide() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let admin = Admin { ca: &ca, url: format!("https://localhost:{}", ca.config.listeners.admin.port()) };

    // No client certificate: the handshake fails.
    let (ok, status, _) = admin.curl(None, "GET", "/v1/whoami", None);
    assert!(!ok && status != "200", "no client certificate must fail the handshake ({status})");

    // A certificate from another CA: the handshake fails.
    let other = ca.path("other");
    std::fs::create_dir_all(&other).unwrap();
    let key = make_key(&other, "o", "ec:P-256");
    let cert = other.join("o.pem");
    assert!(
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                key.to_str().unwrap(),
                "-subj",
                "/O=cloudca Development/OU=operator/CN=intruder",
                "-days",
                "1",
                "-out",
                cert.to_str().unwrap()
            ]
        )
        .ok
    );
    let cacert = ca.config_path.parent().unwrap().join("tls/operator-ca.pem");
    let out = run(
        "curl",
        &[
            "-s",
            "--cacert",
            cacert.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            &format!("{}/v1/whoami", admin.url),
        ],
    );
    assert!(!out.ok, "a foreign certificate must fail the handshake: {}", out.text);

    // The right CA: identified, with the role from roles.toml.
    let (ok, status, body) = admin.curl(Some("auditor"), "GET", "/v1/whoami", None);
    assert!(ok && status == "200" && body.contains("Auditor"), "{status} {body}");

    // Wrong role: 403, problem JSON, audited; nothing happens.
    let (_, serial) = issue_cli(&ca, "ee", "org", ORG_SUBJECT);
    let (_, status, body) = admin.curl(
        Some("reviewer"),
        "POST",
        &format!("/v1/certificates/{serial}/revoke"),
        Some(r#"{"reason":"keyCompromise"}"#),
    );
    assert_eq!(status, "403", "{body}");
    assert!(body.contains("\"status\":403") && !body.contains("reviewer"), "problem JSON without details: {body}");
    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("access.denied").await.unwrap(), 1);
    assert_eq!(instance.store.count_certificates("revoked").await.unwrap(), 0);

    // Right role: the action happens; bad input is a clear 4xx.
    let (_, status, body) =
        admin.curl(Some("operator"), "POST", &format!("/v1/certificates/{serial}/revoke"), Some("{not json"));
    assert_eq!(status, "400", "{body}");
    let (_, status, body) =
        admin.curl(Some("operator"), "POST", "/v1/certificates/abcdef/revoke", Some(r#"{"reason":"keyCompromise"}"#));
    assert_eq!(status, "404", "{body}");
    let (_, status, body) = admin.curl(
        Some("operator"),
        "POST",
        &format!("/v1/certificates/{serial}/revoke"),
        Some(r#"{"reason":"keyCompromise"}"#),
    );
    assert!(status == "200" && body.contains("revoked"), "{status} {body}");
    assert_eq!(instance.store.count_certificates("revoked").await.unwrap(), 1);
    let (_, status, body) = admin.curl(Some("auditor"), "GET", &format!("/v1/certificates/{serial}"), None);
    assert!(status == "200" && body.contains("\"status\":\"revoked\""), "{status} {body}");
    let (_, status, body) = admin.curl(Some("auditor"), "GET", "/v1/audit/verify", None);
    assert!(status == "200" && body.contains("\"intact\":true"), "{status} {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_every_role_as_the_route_table_says() {
    use cloudca::api::roles::Role;
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let admin = Admin { ca: &ca, url: format!("https://localhost:{}", ca.config.listeners.admin.port()) };
    let roles = [
        ("operator", Role::Operator),
        ("reviewer", Role::Reviewer),
        ("auditor", Role::Auditor),
        ("web-front", Role::WebFront),
        ("relying-platform", Role::RelyingPlatform),
    ];
    let mut denied = 0;
    for route in cloudca::api::admin::ROUTES {
        for (name, role) in roles {
            // A fresh certificate per call, so a revocation by one role does not change the next.
            let (_, serial) = issue_cli(&ca, &format!("r{denied}{name}"), "org", ORG_SUBJECT);
            let path = route.path.replace("{serial}", &serial);
            let body = (route.method == "POST").then_some(r#"{"reason":"superseded"}"#);
            let (_, status, text) = admin.curl(Some(name), route.method, &path, body);
            if route.roles.contains(&role) {
                assert_ne!(status, "403", "{name} may {} {}: {text}", route.method, route.path);
                assert!(status.starts_with('2'), "{name} on {} {}: {status} {text}", route.method, route.path);
            } else {
                assert_eq!(status, "403", "{name} may not {} {}: {text}", route.method, route.path);
                denied += 1;
            }
        }
    }
    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("access.denied").await.unwrap(), denied, "every denial audited");

    // Request ids and per-route counters (admin and metrics listeners).
    let response = http().get(format!("{}/live", daemon.metrics)).send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"].len(), 16);
    let metrics = http().get(format!("{}/metrics", daemon.metrics)).send().await.unwrap().text().await.unwrap();
    for series in [
        r#"cloudca_http_requests_total{listener="metrics",route="/live",status="200"}"#,
        r#"cloudca_http_requests_total{listener="admin",route="/v1/audit/verify",status="403"}"#,
        "cloudca_access_denied_total",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
}
