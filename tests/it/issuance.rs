//! Issuance through the library path, checked by openssl and pkilint.

use crate::common::*;
use cloudca::ca::CaError;

#[tokio::test(flavor = "multi_thread")]
async fn issued_certificates_verify_with_openssl_and_pass_pkilint() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    for (profile, subject, key) in
        [("org", ORG_SUBJECT, "ec:P-256"), ("personal", PERSONAL_SUBJECT, "rsa:2048"), ("org", ORG_SUBJECT, "ec:P-384")]
    {
        let key = make_key(ca.dir.path(), profile, key);
        let csr = make_csr(ca.dir.path(), profile, &key, subject);
        let issued = instance.issuance.issue(profile, &csr, "test").await.expect("issued");
        let cert = ca.path(&format!("{profile}-{}.pem", issued.serial));
        write_pem(&cert, "CERTIFICATE", &issued.der);
        let chain = ca.path("chain.pem");
        let pems: String = issued.chain.iter().map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.clone()))).collect();
        std::fs::write(&chain, pems).unwrap();
        let root = ca.ca_pem("root");
        let out = run(
            "openssl",
            &[
                "verify",
                "-CAfile",
                root.to_str().unwrap(),
                "-untrusted",
                chain.to_str().unwrap(),
                cert.to_str().unwrap(),
            ],
        );
        assert!(out.ok, "openssl verify: {}", out.text);
        assert_eq!(pkilint_cert(&cert), "", "pkilint findings on {profile} certificate");
        // The certificate says what the profile says.
        let text = run("openssl", &["x509", "-in", cert.to_str().unwrap(), "-noout", "-text", "-nameopt", "utf8"]).text;
        assert!(text.contains("Digital Signature, Non Repudiation"), "{text}");
        assert!(text.contains(&format!("crl/{profile}.crl")) && text.contains(&format!("ocsp/{profile}")), "{text}");
        let record = instance.store.certificate(&issued.serial).await.unwrap().expect("stored");
        assert_eq!(record.status, "issued");
        assert_eq!(record.der, issued.der);
        // Exactly 365 days, inclusive of both ends.
        assert_eq!(record.not_after - record.not_before, 365 * 86400 - 1);
    }
    assert_eq!(instance.store.count_audit_events("certificate.issued").await.unwrap(), 3);
}

/// Review finding: `certificate.issued` named the subject whole, a person's resident ID in
/// `serialNumber` included, while every other audit entry masks ID numbers. The person's ID
/// number is masked there now; an organisation's credit code (no personal data) stays whole;
/// the certificate row keeps the subject whole.
#[tokio::test(flavor = "multi_thread")]
async fn the_issuance_audit_entry_masks_a_persons_id_number_and_keeps_a_credit_code() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    for (profile, subject) in [("personal", PERSONAL_SUBJECT), ("org", ORG_SUBJECT)] {
        let key = make_key(ca.dir.path(), profile, "ec:P-256");
        let csr = make_csr(ca.dir.path(), profile, &key, subject);
        instance.issuance.issue(profile, &csr, "test").await.expect("issued");
    }
    let query = cloudca::store::AuditQuery { kind: Some("certificate.issued".into()), limit: 10, ..Default::default() };
    let details: Vec<String> =
        instance.store.audit_events(&query).await.unwrap().into_iter().map(|e| e.record.detail).collect();
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(!details[0].contains("11010519491231002X"), "the resident ID is masked: {}", details[0]);
    assert!(details[0].contains("110***********002X"), "first three and last four: {}", details[0]);
    assert!(details[1].contains("serialNumber=91350100M000100Y43"), "the credit code stays: {}", details[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chain_lists_the_issuing_ca_first_then_the_root() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let key = make_key(ca.dir.path(), "p", "ec:P-256");
    let csr = make_csr(ca.dir.path(), "p", &key, PERSONAL_SUBJECT);
    let issued = instance.issuance.issue("personal", &csr, "test").await.unwrap();
    let personal = pem::parse(std::fs::read(ca.ca_pem("personal")).unwrap()).unwrap();
    let root = pem::parse(std::fs::read(ca.ca_pem("root")).unwrap()).unwrap();
    assert_eq!(issued.chain, vec![personal.contents().to_vec(), root.contents().to_vec()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn pkilint_does_report_a_certificate_outside_the_rules() {
    // Guards the lint checks above against a linter that passes everything.
    let ca = TestCa::new().await;
    let key = make_key(ca.dir.path(), "bad", "ec:P-256");
    let bad = ca.path("bad.pem");
    let out = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            "/CN=x",
            "-days",
            "1",
            "-set_serial",
            "0",
            "-out",
            bad.to_str().unwrap(),
        ],
    );
    assert!(out.ok, "{}", out.text);
    assert_ne!(pkilint_cert(&bad), "", "a zero serial must be reported");
}

async fn refused(instance: &cloudca::daemon::Instance, profile: &str, csr: &[u8]) -> String {
    let err = instance.issuance.issue(profile, csr, "test").await.expect_err("must be refused");
    assert!(matches!(err, CaError::Request(_)), "refusal is a request error, not {err:?}");
    err.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_with_a_clear_message_and_store_nothing() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let dir = ca.dir.path();
    let p256 = make_key(dir, "k", "ec:P-256");
    let good = make_csr(dir, "good", &p256, ORG_SUBJECT);

    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("org", b"not a csr at all".to_vec(), "malformed CSR", "garbage"),
        ("org", pem_to_der(&good)[..40].to_vec(), "malformed CSR", "truncated DER"),
        ("org", tampered_signature(&good), "signature does not verify", "bad signature"),
        ("org", make_csr(dir, "ed", &make_key(dir, "ed", "ed25519"), ORG_SUBJECT), "not supported", "ed25519 key"),
        (
            "org",
            make_csr(dir, "rsa1k", &make_key(dir, "rsa1k", "rsa:1024"), ORG_SUBJECT),
            "rsa-1024 keys are not allowed",
            "RSA-1024",
        ),
        ("org", make_csr(dir, "noorg", &p256, "/C=CN/CN=x/serialNumber=91350100M000100Y43"), "missing O", "missing O"),
        (
            "org",
            make_csr(dir, "badcc", &p256, "/C=CN/O=o/CN=x/serialNumber=91350100M000100Y44"),
            "check digit",
            "bad credit code",
        ),
        (
            "personal",
            make_csr(dir, "badid", &p256, "/C=CN/CN=x/serialNumber=110105194912310021"),
            "check digit",
            "bad resident ID",
        ),
        (
            "personal",
            make_csr(dir, "date", &p256, "/C=CN/CN=x/serialNumber=110105194902301234"),
            "not a real date",
            "bad birth date",
        ),
        (
            "org",
            make_csr(dir, "us", &p256, "/C=US/O=o/CN=x/serialNumber=91350100M000100Y43"),
            "C must be \"CN\"",
            "wrong country",
        ),
        (
            "org",
            make_csr(dir, "extra", &p256, "/C=CN/O=o/OU=u/CN=x/serialNumber=91350100M000100Y43"),
            "OU is not allowed",
            "extra attribute",
        ),
        ("nope", good.clone(), "unknown profile", "unknown profile"),
    ];
    for (profile, csr, expected, what) in cases {
        let message = refused(&instance, profile, &csr).await;
        assert!(message.contains(expected), "{what}: {message:?} should mention {expected:?}");
    }
    assert_eq!(instance.store.count_serials().await.unwrap(), 0, "no serial reserved");
    assert_eq!(instance.store.count_certificates("issued").await.unwrap(), 0, "nothing issued");
    assert_eq!(instance.store.count_audit_events("certificate.issued").await.unwrap(), 0);
    // And the good request still goes through afterwards.
    instance.issuance.issue("org", &good, "test").await.expect("good request issued");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_issuance_gives_unique_stored_serials() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    let csr = make_csr(ca.dir.path(), "c", &key, ORG_SUBJECT);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (issuance, csr) = (instance.issuance.clone(), csr.clone());
            tokio::spawn(async move { issuance.issue("org", &csr, "test").await.map(|i| i.serial) })
        })
        .collect();
    let mut serials = std::collections::HashSet::new();
    for t in tasks {
        assert!(serials.insert(t.await.unwrap().expect("issued")));
    }
    assert_eq!(serials.len(), 200);
    assert_eq!(instance.store.count_certificates("issued").await.unwrap(), 200);
    // Serials are reserved in blocks ahead of need: every certificate's serial was reserved
    // (the foreign key), and at most a block and a half (384) waits unused.
    let reserved = instance.store.count_serials().await.unwrap();
    assert!((200..=200 + 384).contains(&reserved), "{reserved} serials reserved for 200 certificates");
}

/// Issuance step 2 under load and at rest: a quiet CA reserves serials one at a time (a CLI
/// issuing one certificate leaves at most one spare), a burst is served from blocks with at
/// most a block and a half left over, every
/// serial issued was reserved before it was signed, and none is handed out twice.
#[tokio::test(flavor = "multi_thread")]
async fn serials_are_reserved_ahead_in_blocks_that_follow_the_load_and_never_reused() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    let csr = make_csr(ca.dir.path(), "c", &key, ORG_SUBJECT);
    let one = instance.issuance.issue("org", &csr, "test").await.unwrap();
    let reserved = instance.store.count_serials().await.unwrap();
    assert!((1..=2).contains(&reserved), "one certificate at rest reserved {reserved} serials");
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let (issuance, csr) = (instance.issuance.clone(), csr.clone());
            tokio::spawn(async move { issuance.issue("org", &csr, "test").await.map(|i| i.serial) })
        })
        .collect();
    let mut serials = std::collections::HashSet::from([one.serial]);
    for t in tasks {
        assert!(serials.insert(t.await.unwrap().expect("issued")), "a serial handed out twice");
    }
    let reserved = instance.store.count_serials().await.unwrap();
    assert!((301..=301 + 384).contains(&reserved), "{reserved} serials reserved for 301 certificates");
    for serial in &serials {
        let row = instance.store.certificate(serial).await.unwrap().expect("stored");
        assert_eq!(row.serial, *serial);
    }
}

fn pem_to_der(pem_bytes: &[u8]) -> Vec<u8> {
    pem::parse(pem_bytes).unwrap().into_contents()
}

/// Flips the last byte of the CSR's signature: still DER, no longer a valid signature.
fn tampered_signature(pem_bytes: &[u8]) -> Vec<u8> {
    let mut der = pem_to_der(pem_bytes);
    let last = der.len() - 1;
    der[last] ^= 0x01;
    der
}

/// A certificate never outlives the CA that signs it: with the issuing CA's notAfter a day
/// away (as its row says), a 365-day certificate is refused before a serial is spent.
#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_that_would_outlive_its_issuer_is_refused_before_a_serial_is_spent() {
    let ca = TestCa::new().await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    let tomorrow = time::OffsetDateTime::now_utc().unix_timestamp() + 86_400;
    sqlx::query("UPDATE authorities SET not_after = $1 WHERE role = 'issuing'")
        .bind(tomorrow)
        .execute(&pool)
        .await
        .unwrap();
    let instance = ca.open().await;
    let dir = ca.dir.path();
    let csr = make_csr(dir, "good", &make_key(dir, "k", "ec:P-256"), ORG_SUBJECT);
    let err = instance.issuance.issue("org", &csr, "test").await.expect_err("must be refused");
    assert!(err.to_string().contains("outlive its issuer"), "{err}");
    assert_eq!(instance.store.count_serials().await.unwrap(), 0, "no serial reserved");
}
