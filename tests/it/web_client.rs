//! The web front's client to the daemon trusts the operator CA and nothing else: a server
//! that presents a certificate for the daemon's name from any other CA gets no request, so it
//! never sees an order token or an applicant's data.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cloudca::web::client::{Daemon as WebDaemon, Unreachable};
use cloudca::web::config::WebConfig;
use reqwest::Method;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::common::*;

/// A certificate for `localhost` and 127.0.0.1 from a CA of its own (not the operator CA).
fn impostor_chain() -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "cloudca operator CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (vec![leaf.der().clone(), ca.der().clone()], der, ca.pem())
}

/// A TLS server on 127.0.0.1 with that chain; counts the handshakes that complete and the
/// requests that arrive (answering each with `{}`).
async fn impostor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (handshakes, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, r) = (handshakes.clone(), requests.clone());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else { continue };
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            if matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {
                r.fetch_add(1, Ordering::SeqCst);
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}").await;
            }
        }
    });
    (port, handshakes, requests)
}

fn web_config(ca: &TestCa) -> WebConfig {
    WebConfig::load(&ca.config_path.parent().unwrap().join("web.toml")).expect("web.toml")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_front_refuses_a_daemon_certificate_from_another_ca() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let mut config = web_config(&ca);

    // Control: the real daemon, whose certificate the operator CA issued, answers.
    let client = WebDaemon::new(&config).expect("client");
    let answer = client.ra(Method::GET, "/v1/ra/channels", None, None).await.expect("the daemon is reachable");
    assert!(answer.ok(), "{:?}", answer.status);

    // A daemon_ca file without a certificate trusts nothing, and says so.
    let mut empty = config.clone();
    empty.daemon_ca = ca.path("empty-ca.pem");
    std::fs::write(&empty.daemon_ca, "no certificate here\n").unwrap();
    let err = WebDaemon::new(&empty).err().expect("refused");
    assert!(err.contains("daemon_ca") && err.contains("no certificate"), "{err}");

    // The same name and a certificate from another CA (one that even calls itself the operator
    // CA), also put where the system trust store is looked for: no request is sent.
    let (chain, key, impostor_ca) = impostor_chain();
    let ca_file = ca.path("impostor-ca.pem");
    std::fs::write(&ca_file, impostor_ca).unwrap();
    std::env::set_var("SSL_CERT_FILE", &ca_file);
    let (port, handshakes, requests) = impostor(chain, key).await;
    config.admin_url = format!("https://localhost:{port}");
    config.api_url = format!("https://127.0.0.1:{port}");
    let client = WebDaemon::new(&config).expect("client");
    let err = client.ra(Method::GET, "/v1/ra/channels", Some("order-token"), None).await.expect_err("refused");
    assert!(matches!(err, Unreachable::Down(_)), "{err:?}");
    let err = client.app(Method::GET, "/v1/me", Some("bearer"), None).await.expect_err("refused");
    assert!(matches!(err, Unreachable::Down(_)), "{err:?}");
    assert_eq!(handshakes.load(Ordering::SeqCst), 0, "no TLS session with the impostor");
    assert_eq!(requests.load(Ordering::SeqCst), 0, "no request reached the impostor");

    // Trusting the impostor's CA explicitly is what it would take: the server itself works.
    config.daemon_ca = ca_file;
    let trusting = WebDaemon::new(&config).expect("client");
    let answer = trusting.ra(Method::GET, "/v1/ra/channels", None, None).await.expect("answered");
    assert!(answer.ok() && requests.load(Ordering::SeqCst) == 1, "{:?}", answer.status);
}
