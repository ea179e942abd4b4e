//! The daemon process and its signals: SIGTERM stops accepting, lets requests in flight finish
//! (within `listeners.drain_seconds`), gives up its leases and closes the database and HSM;
//! SIGHUP reloads the policies without dropping open connections, and keeps the old ones when
//! the new ones are wrong.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::signing::{open, Api, As};

/// `cloudca serve` with its log in a file (info level), so the test can read what it did.
fn spawn(ca: &TestCa) -> (Child, std::path::PathBuf) {
    let log = ca.path(&format!("daemon-{}.log", rand::random::<u32>()));
    let child = Command::new(env!("CARGO_BIN_EXE_cloudca"))
        .args(["--config", ca.config_path.to_str().unwrap(), "serve"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stdout(Stdio::null())
        .spawn()
        .expect("daemon starts");
    (child, log)
}

async fn ready(ca: &TestCa) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://{}/ready", ca.config.listeners.metrics);
    while !http().get(&url).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(Instant::now() < deadline, "daemon did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signal(child: &Child, name: &str) {
    assert!(run("kill", &["-s", name, &child.id().to_string()]).ok, "kill -s {name}");
}

/// Waits for the process to exit (bounded); returns its status and when it exited.
async fn exited(child: &mut Child, bound: Duration) -> (std::process::ExitStatus, Instant) {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, Instant::now());
        }
        assert!(Instant::now() < deadline, "the daemon did not exit within {bound:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A platform's long poll of a signing session in a thread: (HTTP status, when it ended).
fn long_poll(ca: &TestCa, session: &str, wait: u32) -> std::thread::JoinHandle<(String, Instant)> {
    let (config_path, config) = (ca.config_path.clone(), ca.config.clone());
    let session = session.to_string();
    std::thread::spawn(move || {
        let twin = TestCa { dir: tempfile::tempdir().unwrap(), config_path, config };
        let (status, _) =
            Api { ca: &twin }.call(As::Platform, "GET", &format!("/v1/signing/sessions/{session}?wait={wait}"), None);
        (status, Instant::now())
    })
}

fn set_drain(ca: &mut TestCa, seconds: u64) {
    let text = std::fs::read_to_string(&ca.config_path).unwrap();
    let text = text.replacen("[listeners]\n", &format!("[listeners]\ndrain_seconds = {seconds}\n"), 1);
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_requests_in_flight_refuses_new_ones_and_closes_cleanly() {
    let ca = TestCa::new().await;
    let (mut child, log) = spawn(&ca);
    ready(&ca).await;
    let (session, _, _) = open(&Api { ca: &ca }, b"contract", "raw");
    let poll = long_poll(&ca, &session, 4);
    tokio::time::sleep(Duration::from_millis(800)).await;

    signal(&child, "TERM");
    let termed = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = std::net::TcpStream::connect(ca.config.listeners.api).is_err();
    let (status, answered) = poll.join().unwrap();
    let (exit, gone) = exited(&mut child, Duration::from_secs(25)).await;
    assert!(refused, "no new connection is accepted once SIGTERM arrived");
    assert_eq!(status, "200", "the request in flight was answered, not cut");
    assert!(answered <= gone && answered > termed, "answered during the drain, before the exit");
    assert!(exit.success(), "a clean exit: {exit:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    for line in ["draining requests in flight", "leases released", "database connections and HSM sessions closed"] {
        assert!(text.contains(line), "log says {line:?}:\n{text}");
    }
    // The leases are free for the next daemon at once, not after their expiry.
    let store = cloudca::store::Store::open(&ca.config.database).await.unwrap();
    let leases = store.leases().await.unwrap();
    assert!(!leases.is_empty() && leases.iter().all(|l| l.expires_at == 0), "{leases:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_longer_than_the_drain_bound_does_not_hold_the_shutdown() {
    let mut ca = TestCa::new().await;
    set_drain(&mut ca, 1);
    let (mut child, _) = spawn(&ca);
    ready(&ca).await;
    let (session, _, _) = open(&Api { ca: &ca }, b"contract", "raw");
    let poll = long_poll(&ca, &session, 25);
    tokio::time::sleep(Duration::from_millis(800)).await;
    signal(&child, "TERM");
    let termed = Instant::now();
    let (exit, _) = exited(&mut child, Duration::from_secs(15)).await;
    let (status, ended) = poll.join().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert_ne!(status, "200", "the 25 s poll was cut at the bound, not answered");
    assert!(ended < termed + Duration::from_secs(15), "the client saw its connection close when the daemon left");
}

/// Issues through one keep-alive mutual-TLS connection; returns the certificate PEM.
async fn issue(client: &reqwest::Client, ca: &TestCa, name: &str) -> String {
    let key = make_key(ca.dir.path(), name, "ec:P-256");
    make_csr(ca.dir.path(), name, &key, ORG_SUBJECT);
    let csr = std::fs::read_to_string(ca.path(&format!("{name}.csr"))).unwrap();
    let url = format!("https://localhost:{}/v1/certificates", ca.config.listeners.admin.port());
    let response = client.post(url).json(&serde_json::json!({ "csr": csr, "profile": "org" })).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    body["pem"].as_str().unwrap().to_string()
}

/// Whether the certificate is still valid `days` from now (`openssl x509 -checkend`).
fn valid_in(ca: &TestCa, pem: &str, days: u32) -> bool {
    let path = ca.path(&format!("c-{}.pem", rand::random::<u32>()));
    std::fs::write(&path, pem).unwrap();
    run("openssl", &["x509", "-in", path.to_str().unwrap(), "-noout", "-checkend", &(days * 86400).to_string()]).ok
}

async fn until_audited(store: &cloudca::store::Store, kind: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.count_audit_events(kind).await.unwrap() < count {
        assert!(Instant::now() < deadline, "no {kind} event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_policies_on_open_connections_and_keeps_them_when_wrong() {
    let ca = TestCa::new().await;
    let (mut child, _) = spawn(&ca);
    ready(&ca).await;
    let tls = ca.config_path.parent().unwrap().join("tls");
    let mut identity = std::fs::read(tls.join("clients/operator.pem")).unwrap();
    identity.extend(std::fs::read(tls.join("clients/operator.key")).unwrap());
    let client = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(tls.join("operator-ca.pem")).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let store = cloudca::store::Store::open(&ca.config.database).await.unwrap();

    assert!(valid_in(&ca, &issue(&client, &ca, "before").await, 300), "365-day profile");
    let logins = store.count_audit_events("operator.login").await.unwrap();

    // A shorter validity, reloaded by SIGHUP: the same connection issues under it.
    let profile = ca.config.policies_dir.join("profiles/org.toml");
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(&profile, text.replace("validity_days = 365", "validity_days = 200")).unwrap();
    signal(&child, "HUP");
    until_audited(&store, "policies.reloaded", 1).await;
    let after = issue(&client, &ca, "after").await;
    assert!(valid_in(&ca, &after, 190) && !valid_in(&ca, &after, 210), "200-day profile after the reload");
    assert_eq!(store.count_audit_events("operator.login").await.unwrap(), logins, "no new connection was needed");

    // A profile the hierarchy cannot serve: refused, and the 200-day set stays in force.
    std::fs::write(
        &profile,
        text.replace("validity_days = 365", "validity_days = 100").replace("issuer = \"org\"", "issuer = \"root\""),
    )
    .unwrap();
    signal(&child, "HUP");
    until_audited(&store, "policies.reload_failed", 1).await;
    let kept = issue(&client, &ca, "kept").await;
    assert!(valid_in(&ca, &kept, 190), "the old policies stay in force");
    assert!(child.try_wait().unwrap().is_none(), "a bad reload does not stop the daemon");
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------
// The web front's SIGTERM: the same drain, bounded by its own `drain_seconds`.
// ---------------------------------------------------------------------------------------------

/// A byte stream to the web front, plain or HTTPS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// `cloudca web` with `drain_seconds` (and HTTPS with the dev server certificate when `tls`);
/// returns the process, its listening address and its log.
async fn spawn_web(ca: &TestCa, drain: u64, tls: bool) -> (Child, std::net::SocketAddr, std::path::PathBuf) {
    let dir = ca.config_path.parent().unwrap();
    let config = dir.join(format!("web-{}.toml", rand::random::<u32>()));
    let mut text = std::fs::read_to_string(dir.join("web.toml")).unwrap();
    text.push_str(&format!("drain_seconds = {drain}\n"));
    if tls {
        let t = dir.join("tls");
        text.push_str(&format!("tls_cert = {:?}\ntls_key = {:?}\n", t.join("server.pem"), t.join("server.key")));
    }
    std::fs::write(&config, &text).unwrap();
    let listen: std::net::SocketAddr =
        text.lines().find_map(|l| l.strip_prefix("listen = ")).unwrap().trim_matches('"').parse().unwrap();
    let log = ca.path(&format!("web-{}.log", rand::random::<u32>()));
    let child = Command::new(env!("CARGO_BIN_EXE_cloudca"))
        .args(["--config", config.to_str().unwrap(), "web"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stdout(Stdio::null())
        .spawn()
        .expect("web front starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        assert!(Instant::now() < deadline, "the web front did not start listening");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, listen, log)
}

/// A connection to the web front, through TLS (trusting the dev operator CA) when `tls`.
async fn connect(ca: &TestCa, listen: std::net::SocketAddr, tls: bool) -> Box<dyn Stream> {
    use rustls_pki_types::pem::PemObject;
    let tcp = tokio::net::TcpStream::connect(listen).await.unwrap();
    if !tls {
        return Box::new(tcp);
    }
    let anchor = ca.config_path.parent().unwrap().join("tls/operator-ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(anchor).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    Box::new(connector.connect(name, tcp).await.unwrap())
}

/// A form POST whose body is only half sent, so the request is in flight until the rest comes.
const HALF_REQUEST: &str = "POST /seals/login/code HTTP/1.1\r\nHost: localhost\r\n\
    Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 20\r\n\r\nphone=+861";
const REST_OF_BODY: &str = "3800138000";

#[tokio::test(flavor = "multi_thread")]
async fn the_web_front_answers_requests_in_flight_on_sigterm_within_its_drain_bound() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = TestCa::new().await;
    for tls in [false, true] {
        // Drained: the request in flight gets its answer after the signal.
        let (mut child, listen, log) = spawn_web(&ca, 20, tls).await;
        let mut stream = connect(&ca, listen, tls).await;
        stream.write_all(HALF_REQUEST.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        signal(&child, "TERM");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(tokio::net::TcpStream::connect(listen).await.is_err(), "tls={tls}: new connections refused");
        stream.write_all(REST_OF_BODY.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer).to_string();
        assert!(answer.starts_with("HTTP/1.1 "), "tls={tls}: answered during the drain: {read:?} {answer:?}");
        let (exit, _) = exited(&mut child, Duration::from_secs(10)).await;
        assert!(exit.success(), "tls={tls}: {exit:?}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("draining requests in flight"), "{text}");

        // Bounded: a request that never completes is cut after `drain_seconds`.
        let (mut child, listen, log) = spawn_web(&ca, 1, tls).await;
        let mut stream = connect(&ca, listen, tls).await;
        stream.write_all(HALF_REQUEST.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        signal(&child, "TERM");
        let termed = Instant::now();
        let (exit, gone) = exited(&mut child, Duration::from_secs(10)).await;
        assert!(exit.success(), "tls={tls}: {exit:?}");
        assert!(gone - termed < Duration::from_secs(5), "tls={tls}: exited {:?} after SIGTERM", gone - termed);
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1"), "tls={tls}: the stuck request got no answer");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("requests still running at the drain bound were cut"), "{text}");
    }
}

/// `cloudca serve` with `config`: its exit code and output, or a failure if it keeps running.
fn serve_exit(config: &std::path::Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudca"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the daemon started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// Review H4, an applicant's story: on an instance that ran the sandbox providers, anyone could
/// mark their order paid on the sandbox pay page, pass a face check on the sandbox face page,
/// and read every login code in the SMS outbox. A production instance (the default when
/// `providers.mode` is absent) refuses to start while any provider is a sandbox, naming the
/// key, and never mounts the sandbox pages.
#[tokio::test(flavor = "multi_thread")]
async fn a_production_instance_never_runs_on_sandbox_providers_nor_serves_their_pages() {
    let ca = TestCa::new().await;
    let text = std::fs::read_to_string(&ca.config_path).unwrap();
    assert!(text.contains("mode = \"sandbox\"\n"), "dev-init writes a sandbox instance");
    let write = |name: &str, text: String| {
        let path = ca.path(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    // The key left out: production, and the sandbox identity checks are named.
    let absent = write("absent.toml", text.replace("mode = \"sandbox\"\n", ""));
    let (code, stderr) = serve_exit(&absent);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("providers.identity"), "{stderr}");
    // No identity sandbox, but SMS, payment, invoice and e-mail have only sandboxes here.
    let production = text
        .replace("mode = \"sandbox\"", "mode = \"production\"")
        .replace("identity = \"sandbox\"", "identity = \"none\"");
    let production = write("production.toml", production);
    let (code, stderr) = serve_exit(&production);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("providers.mode"), "{stderr}");
    assert!(!ca.config.data_dir.join("sms-outbox.jsonl").exists(), "nothing was texted");

    // Were a production instance served anyway (as tests may, in process), the pages are not
    // there; the payment webhook, which a real provider calls, is.
    let api = Api { ca: &ca };
    let config = cloudca::config::Config::load(&production).unwrap();
    let instance =
        cloudca::daemon::Instance::open(config, std::sync::Arc::new(cloudca::clock::SystemClock)).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(cloudca::daemon::serve(instance, async move {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.call(As::Nobody, "GET", "/v1/health", None).0 != "200" {
        assert!(Instant::now() < deadline, "daemon did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (method, path) in
        [("GET", "/sandbox/face/x"), ("POST", "/sandbox/face/x"), ("GET", "/sandbox/pay/x"), ("POST", "/sandbox/pay/x")]
    {
        assert_eq!(api.call(As::Nobody, method, path, Some("result=pass")).0, "404", "{method} {path}");
    }
    assert_eq!(api.call(As::Nobody, "POST", "/v1/payments/webhook", Some("{}")).0, "401", "the webhook stays");
    stop.send(()).unwrap();
    served.await.unwrap().unwrap();

    // The sandbox instance serves the face page (the contrast that makes the 404s mean something).
    let _daemon = Daemon::start(&ca).await;
    assert_eq!(api.call(As::Nobody, "GET", "/sandbox/face/x", None).0, "200");
}
