//! What a client certificate may do is decided at every request, not once per connection
//! (review M9): a disabled relying platform and a revoked certificate are refused at their next
//! request on a connection that stays open, on the `api` listener as on `admin`. Logins are
//! audited once a minute per certificate however many connections it opens, and the `api`
//! listener's 403s once a minute per caller and route (review L9, L11).
//!
//! The clients here speak HTTP/1.1 by hand over one rustls connection each, so "the same
//! connection" is certain: a request that needed a new one would fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::admin::Admin;
use crate::common::*;

/// `listeners.identity_cache_seconds` by default: how long the daemon may trust what it learnt
/// about a certificate.
const CACHE: Duration = Duration::from_secs(5);

/// A signing-session request that passes the JSON checks, so the platform check decides.
const OPEN: &str = r#"{"hashes":["AAAA"],"description":"x","format":"raw"}"#;

/// One mutual-TLS connection, kept open across requests.
struct Connection {
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
}

impl Connection {
    /// Opens a connection to `port` with the dev client certificate of `role` (None: none).
    async fn open(ca: &TestCa, port: u16, role: Option<&str>) -> Connection {
        let tls = ca.config_path.parent().unwrap().join("tls");
        let mut roots = rustls::RootCertStore::empty();
        for der in pem_blocks(&std::fs::read(tls.join("operator-ca.pem")).unwrap(), "CERTIFICATE") {
            roots.add(der.into()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match role {
            Some(role) => {
                let chain = pem_blocks(&std::fs::read(tls.join(format!("clients/{role}.pem"))).unwrap(), "CERTIFICATE");
                let key = pem_blocks(&std::fs::read(tls.join(format!("clients/{role}.key"))).unwrap(), "PRIVATE KEY");
                let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key[0].clone().into());
                builder.with_client_auth_cert(chain.into_iter().map(Into::into).collect(), key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
        Connection { tls }
    }

    /// One request on this connection (a POST carries [`OPEN`]); (status, body). Panics if the
    /// server closed the connection.
    async fn call(&mut self, method: &str, path: &str) -> (u16, String) {
        let body = if method == "POST" { OPEN } else { "" };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.tls.write_all(head.as_bytes()).await.expect("the connection is still open");
        let mut buf = Vec::new();
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = self.tls.read(&mut chunk).await.expect("an answer on the same connection");
            assert!(n > 0, "the server closed the connection instead of answering on it");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .expect("a Content-Length");
        while buf.len() < end + length {
            let mut chunk = [0u8; 4096];
            let n = self.tls.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the body was cut");
            buf.extend_from_slice(&chunk[..n]);
        }
        (status, String::from_utf8_lossy(&buf[end..end + length]).to_string())
    }
}

/// The DER contents of every PEM block with this tag.
fn pem_blocks(text: &[u8], tag: &str) -> Vec<Vec<u8>> {
    pem::parse_many(text).unwrap().into_iter().filter(|p| p.tag() == tag).map(|p| p.into_contents()).collect()
}

/// The details of every audit entry of a kind, oldest first.
async fn details(store: &cloudca::store::Store, kind: &str) -> Vec<serde_json::Value> {
    let query = cloudca::store::AuditQuery { kind: Some(kind.into()), limit: 10_000, ..Default::default() };
    let found = store.audit_events(&query).await.unwrap();
    found.iter().map(|e| serde_json::from_str(&e.record.detail).unwrap()).collect()
}

/// Repeats `call` on the same connection every 200 ms until it answers `status`, for at most
/// `bound`; returns how long it took.
async fn until_status(conn: &mut Connection, method: &str, path: &str, status: u16, bound: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (got, body) = conn.call(method, path).await;
        if got == status {
            return started.elapsed();
        }
        assert!(started.elapsed() < bound, "still {got} after {bound:?} on the open connection: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_relying_platform_is_refused_at_its_next_request_on_an_open_connection() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let api = ca.config.listeners.api.port();
    let store = cloudca::store::Store::open(&ca.config.database).await.unwrap();
    let mut platform = Connection::open(&ca, api, Some("relying-platform")).await;
    let poll = "/v1/signing/sessions/no-such-session";
    // Registered and active: past the platform check (no such session).
    assert_eq!(platform.call("GET", poll).await.0, 404);
    assert_eq!(platform.call("GET", poll).await.0, 404, "kept alive");

    // Disabled by another process (the CLI, as another daemon would): refused on this very
    // connection once the daemon's cache (listeners.identity_cache_seconds, 5 s) has expired.
    let config = ca.config_path.to_str().unwrap();
    assert!(cloudca(&["--config", config, "platform", "disable", "dev-platform", "--yes"]).ok);
    let bound = CACHE + Duration::from_secs(5);
    until_status(&mut platform, "GET", poll, 403, bound).await;
    let (status, body) = platform.call("POST", "/v1/signing/sessions").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("relying-platform certificate is required"), "problem JSON: {body}");

    // The refusal is on record with the caller and the route.
    let denied = details(&store, "access.denied").await;
    let entry = denied.iter().find(|d| d["route"] == "GET /v1/signing/sessions/{id}").expect("audited");
    assert_eq!(entry["listener"], "api");
    assert_eq!(entry["platform"], serde_json::Value::Null, "no platform any more: {entry}");
    assert_eq!(entry["subject"]["OU"], "relying-platform", "{entry}");
    assert!(entry["reason"].as_str().unwrap().contains("relying-platform"), "{entry}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_client_certificate_is_refused_at_its_next_request_on_open_admin_and_api_connections() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let (api, admin_port) = (ca.config.listeners.api.port(), ca.config.listeners.admin.port());
    let store = cloudca::store::Store::open(&ca.config.database).await.unwrap();
    let mut on_admin = Connection::open(&ca, admin_port, Some("auditor")).await;
    let mut on_api = Connection::open(&ca, api, Some("auditor")).await;
    let (status, who) = on_admin.call("GET", "/v1/whoami").await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(on_api.call("GET", "/v1/health").await.0, 200);

    // An operator revokes the auditor's certificate while both connections stay open.
    let admin = Admin::new(&ca);
    let operators = admin.json("operator", "GET", "/v1/operators", None);
    let auditor = operators["items"].as_array().unwrap().iter().find(|o| o["role"] == "auditor").unwrap().clone();
    let path = format!("/v1/operators/{}/revoke", auditor["serial"].as_str().unwrap());
    assert_eq!(admin.json("operator", "POST", &path, Some(r#"{"reason":"keyCompromise"}"#))["outcome"], "revoked");

    let bound = CACHE + Duration::from_secs(5);
    until_status(&mut on_admin, "GET", "/v1/whoami", 403, bound).await;
    until_status(&mut on_api, "GET", "/v1/health", 403, bound).await;
    let (status, body) = on_api.call("GET", "/v1/health").await;
    assert_eq!(status, 403, "every route of the api listener: {body}");
    assert!(body.contains("\"status\":403"), "problem JSON: {body}");

    let denied = details(&store, "access.denied").await;
    let on_api_entry = denied.iter().find(|d| d["listener"] == "api").expect("the api refusal is audited");
    assert_eq!(on_api_entry["reason"], "certificate revoked", "{on_api_entry}");
    assert_eq!(on_api_entry["route"], "GET /v1/health", "{on_api_entry}");
    assert!(denied.iter().any(|d| d["why"] == "certificate revoked"), "the admin refusal too: {denied:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn many_connections_from_one_client_write_one_login_a_minute_with_the_count() {
    const CONNECTIONS: usize = 1_000;
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let admin_port = ca.config.listeners.admin.port();
    let store = cloudca::store::Store::open(&ca.config.database).await.unwrap();
    let started = Instant::now();
    for _ in 0..CONNECTIONS {
        let mut conn = Connection::open(&ca, admin_port, Some("auditor")).await;
        assert_eq!(conn.call("GET", "/v1/whoami").await.0, 200, "a coalesced login is served");
    }
    println!("{CONNECTIONS} TLS connections with one request each in {:?}", started.elapsed());
    let logins = details(&store, "operator.login").await;
    let mine: Vec<_> = logins.iter().filter(|d| d["subject"]["OU"] == "auditor").collect();
    assert_eq!(mine.len(), 1, "one entry for {CONNECTIONS} connections in the same minute");

    // The next minute's first login is written and carries the count of the others.
    let next_minute = Duration::from_secs(61).saturating_sub(started.elapsed());
    tokio::time::sleep(next_minute).await;
    let mut conn = Connection::open(&ca, admin_port, Some("auditor")).await;
    assert_eq!(conn.call("GET", "/v1/whoami").await.0, 200);
    let logins = details(&store, "operator.login").await;
    let mine: Vec<_> = logins.iter().filter(|d| d["subject"]["OU"] == "auditor").collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine[1]["coalesced"], CONNECTIONS as u64 - 1, "{:?}", mine[1]);
    assert_eq!(mine[1]["listener"], "admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_refusals_are_audited_once_a_minute_per_caller_and_route() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let api = ca.config.listeners.api.port();
    let store = cloudca::store::Store::open(&ca.config.database).await.unwrap();
    // A certificate of the operator CA that is no relying platform, on two routes, many times
    // and over several connections; and a client with no certificate at all.
    for _ in 0..3 {
        let mut conn = Connection::open(&ca, api, Some("reviewer")).await;
        for _ in 0..10 {
            assert_eq!(conn.call("GET", "/v1/signing/sessions/x").await.0, 403);
            assert_eq!(conn.call("POST", "/v1/signing/sessions").await.0, 403);
        }
    }
    let mut anonymous = Connection::open(&ca, api, None).await;
    for _ in 0..10 {
        assert_eq!(anonymous.call("GET", "/v1/signing/sessions/x").await.0, 403);
    }
    let denied = details(&store, "access.denied").await;
    assert_eq!(denied.len(), 3, "one per (caller, route) this minute: {denied:?}");
    let of = |route: &str, ou: serde_json::Value| {
        denied.iter().filter(|d| d["route"] == route && d["subject"]["OU"] == ou).count()
    };
    assert_eq!(of("GET /v1/signing/sessions/{id}", "reviewer".into()), 1, "{denied:?}");
    assert_eq!(of("POST /v1/signing/sessions", "reviewer".into()), 1, "{denied:?}");
    let reviewer = denied.iter().find(|d| d["subject"]["OU"] == "reviewer").unwrap();
    assert_eq!(reviewer["listener"], "api");
    assert_eq!(reviewer["fingerprint"].as_str().map(str::len), Some(64), "{reviewer}");
    assert!(reviewer["reason"].as_str().unwrap().contains("relying-platform"), "{reviewer}");
    let nobody = denied.iter().find(|d| d["fingerprint"].is_null()).expect("the anonymous caller's refusal");
    assert_eq!(nobody["route"], "GET /v1/signing/sessions/{id}");
}
