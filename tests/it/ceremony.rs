//! The key ceremony: algorithms, refusal to overwrite, and the start-up key check.

use crate::common::*;
use cloudca::clock::SystemClock;
use cloudca::hsm::KeyAlgorithm;

#[tokio::test(flavor = "multi_thread")]
async fn the_ceremony_refuses_to_run_twice() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let err = cloudca::ca::ceremony::run(&ca.config, &instance.hsm, &instance.store, &SystemClock)
        .await
        .expect_err("second ceremony");
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(instance.store.authorities().await.unwrap().len(), 8);
}

/// A hierarchy of `algorithm`, one certificate issued under `profile` and verified by openssl
/// against the chain; returns the CA and the certificate file.
async fn issue_under(algorithm: KeyAlgorithm, profile: &str, subject: &str) -> (TestCa, std::path::PathBuf) {
    let ca = TestCa::with_algorithm(algorithm).await;
    let instance = ca.open().await;
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    let csr = make_csr(ca.dir.path(), "c", &key, subject);
    let issued = instance.issuance.issue(profile, &csr, "test").await.expect("issued");
    let cert = ca.path("ee.pem");
    write_pem(&cert, "CERTIFICATE", &issued.der);
    let (root, issuer) = (ca.ca_pem("root"), ca.ca_pem(profile));
    let out = run(
        "openssl",
        &["verify", "-CAfile", root.to_str().unwrap(), "-untrusted", issuer.to_str().unwrap(), cert.to_str().unwrap()],
    );
    assert!(out.ok, "{algorithm}: {}", out.text);
    (ca, cert)
}

#[tokio::test(flavor = "multi_thread")]
async fn p384_hierarchy_issues_verifiable_certificates() {
    let (ca, cert) = issue_under(KeyAlgorithm::EcdsaP384, "org", ORG_SUBJECT).await;
    let text = run("openssl", &["x509", "-in", ca.ca_pem("root").to_str().unwrap(), "-noout", "-text"]).text;
    assert!(text.contains("384 bit") && text.contains("ecdsa-with-SHA384"), "{text}");
    assert_eq!(pkilint_cert(&ca.ca_pem("root")), "");
    assert_eq!(pkilint_cert(&cert), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn rsa3072_hierarchy_issues_verifiable_certificates() {
    let (ca, cert) = issue_under(KeyAlgorithm::Rsa3072, "personal", PERSONAL_SUBJECT).await;
    let text = run("openssl", &["x509", "-in", ca.ca_pem("root").to_str().unwrap(), "-noout", "-text"]).text;
    assert!(text.contains("3072 bit") && text.contains("sha256WithRSAEncryption"), "{text}");
    assert_eq!(pkilint_cert(&cert), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ocsp_responder_certificates_are_delegated_and_nocheck() {
    let ca = TestCa::new().await;
    let text = run("openssl", &["x509", "-in", ca.ca_pem("org-ocsp").to_str().unwrap(), "-noout", "-text"]).text;
    assert!(text.contains("OCSP Signing"), "{text}");
    assert!(text.contains("OCSP No Check"), "{text}");
    assert!(text.contains("Issuer: C = CN, O = cloudca Development, CN = cloudca Dev Organisation CA"), "{text}");
    assert_eq!(pkilint_cert(&ca.ca_pem("org-ocsp")), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_does_not_match_its_certificate_stops_start_up() {
    let ca = TestCa::new().await;
    {
        let instance = ca.open().await;
        drop(instance);
    }
    // Swap the organisation CA's certificate for the personal CA's in the database.
    let url = ca.config.database.url.clone();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let (personal,): (Vec<u8>,) =
        sqlx::query_as("SELECT certificate FROM authorities WHERE name = 'personal'").fetch_one(&pool).await.unwrap();
    sqlx::query("UPDATE authorities SET certificate = $1 WHERE name = 'org'")
        .bind(personal)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = cloudca::daemon::Instance::open(ca.config.clone(), std::sync::Arc::new(SystemClock))
        .await
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("does not match the certificate of org"), "{err}");
}
