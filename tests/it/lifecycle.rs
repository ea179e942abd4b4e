//! Expiry, renewal, information change and re-issue, on a fake clock.

use std::sync::Arc;

use crate::common::*;
use cloudca::clock::{Clock, FakeClock};
use cloudca::daemon::Instance;
use cloudca::lifecycle::LifecycleError;
use cloudca::status::ocsp::response::CertStatus;
use cloudca::status::RevocationReason;

async fn open_at(ca: &TestCa, clock: Arc<FakeClock>) -> Instance {
    Instance::open(ca.config.clone(), clock).await.expect("instance")
}

#[tokio::test(flavor = "multi_thread")]
async fn renewal_is_allowed_only_inside_the_window() {
    let ca = TestCa::new().await;
    let clock = Arc::new(FakeClock::new(time::OffsetDateTime::now_utc()));
    let instance = open_at(&ca, clock.clone()).await;
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    let csr = make_csr(ca.dir.path(), "c", &key, ORG_SUBJECT);
    let old = instance.issuance.issue("org", &csr, "test").await.unwrap();
    let err = instance.lifecycle().renew(&old.serial, None, "test").await.unwrap_err();
    assert!(
        matches!(err, LifecycleError::OutsideRenewalWindow { .. })
            && err.to_string().contains("renewal window opens on"),
        "{err}"
    );

    clock.advance(time::Duration::days(300));
    let new = instance.lifecycle().renew(&old.serial, None, "test").await.expect("renewed inside the window");
    let (old_rec, new_rec) = (
        instance.store.certificate(&old.serial).await.unwrap().unwrap(),
        instance.store.certificate(&new.serial).await.unwrap().unwrap(),
    );
    assert_eq!(old_rec.status, "issued", "renewal leaves the old certificate valid");
    assert_eq!(new_rec.not_before, clock.now().unix_timestamp());
    assert!(new_rec.not_after > old_rec.not_after);
    assert_eq!(spki_of(&ca, &old.der), spki_of(&ca, &new.der), "same key when no CSR is given");

    // A new key with the same subject is fine; a different subject is not a renewal.
    let key2 = make_key(ca.dir.path(), "k2", "ec:P-256");
    let csr2 = make_csr(ca.dir.path(), "c2", &key2, ORG_SUBJECT);
    let renewed = instance.lifecycle().renew(&old.serial, Some(&csr2), "test").await.unwrap();
    assert_ne!(spki_of(&ca, &renewed.der), spki_of(&ca, &old.der));
    let other = make_csr(ca.dir.path(), "c3", &key2, "/C=CN/O=另一家公司/CN=示例科技/serialNumber=91350100M000100Y43");
    let err = instance.lifecycle().renew(&old.serial, Some(&other), "test").await.unwrap_err();
    assert!(err.to_string().contains("use change"), "{err}");

    clock.advance(time::Duration::days(70));
    let err = instance.lifecycle().renew(&old.serial, None, "test").await.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(instance.store.count_audit_events("certificate.renewed").await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn information_change_supersedes_the_old_certificate() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    let old = instance.issuance.issue("org", &make_csr(ca.dir.path(), "c", &key, ORG_SUBJECT), "test").await.unwrap();
    let same = make_csr(ca.dir.path(), "same", &key, ORG_SUBJECT);
    assert!(instance
        .lifecycle()
        .change(&old.serial, &same, "test")
        .await
        .unwrap_err()
        .to_string()
        .contains("nothing to change"));
    let other_id =
        make_csr(ca.dir.path(), "id", &key, "/C=CN/O=福建示例科技有限公司/CN=示例科技/serialNumber=91350100M00010000P");
    assert!(instance
        .lifecycle()
        .change(&old.serial, &other_id, "test")
        .await
        .unwrap_err()
        .to_string()
        .contains("new application"));

    let renamed = make_csr(
        ca.dir.path(),
        "new",
        &key,
        "/C=CN/O=福建示例新名称有限公司/CN=示例科技/serialNumber=91350100M000100Y43",
    );
    let new = instance.lifecycle().change(&old.serial, &renamed, "test").await.expect("changed");
    let revocation = instance.store.revocation(&old.serial).await.unwrap().expect("old revoked");
    assert_eq!(revocation.reason, Some(4), "superseded");
    let subject = instance.store.certificate(&new.serial).await.unwrap().unwrap().subject;
    assert!(subject.contains("福建示例新名称有限公司"), "{subject}");
    // A revoked certificate cannot be changed again.
    assert!(matches!(
        instance.lifecycle().change(&old.serial, &renamed, "test").await.unwrap_err(),
        LifecycleError::Revoked(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn reissue_needs_a_new_key_and_revokes_the_old_certificate() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    let csr = make_csr(ca.dir.path(), "c", &key, PERSONAL_SUBJECT);
    let old = instance.issuance.issue("personal", &csr, "test").await.unwrap();
    let err = instance.lifecycle().reissue(&old.serial, &csr, RevocationReason::Superseded, "test").await.unwrap_err();
    assert!(matches!(err, LifecycleError::SameKey(_)), "{err}");
    let key2 = make_key(ca.dir.path(), "k2", "rsa:2048");
    let csr2 = make_csr(ca.dir.path(), "c2", &key2, PERSONAL_SUBJECT);
    let new = instance
        .lifecycle()
        .reissue(&old.serial, &csr2, RevocationReason::KeyCompromise, "test")
        .await
        .expect("reissued");
    assert_eq!(instance.store.revocation(&old.serial).await.unwrap().unwrap().reason, Some(1));
    assert_eq!(instance.store.certificate(&new.serial).await.unwrap().unwrap().status, "issued");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_certificates_leave_the_crl_and_ocsp_answers_per_profile() {
    let ca = TestCa::new().await;
    let clock = Arc::new(FakeClock::new(time::OffsetDateTime::now_utc()));
    let instance = open_at(&ca, clock.clone()).await;
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    let issued =
        instance.issuance.issue("org", &make_csr(ca.dir.path(), "c", &key, ORG_SUBJECT), "test").await.unwrap();
    instance.status.revoke(&issued.serial, RevocationReason::KeyCompromise, None, "test").await.unwrap();
    assert_eq!(instance.status.build_crl("org", 0).await.unwrap().entries, 1);

    // Just after expiry: still on the CRL (it must appear on one CRL issued after expiry),
    // and OCSP still says revoked (the profile keeps answering for 30 days).
    clock.advance(time::Duration::days(365) + time::Duration::minutes(30));
    assert_eq!(instance.status.build_crl("org", 0).await.unwrap().entries, 1);
    assert!(matches!(instance.status.served_status(&issued.serial, "org").await.unwrap(), CertStatus::Revoked { .. }));

    // Later: gone from the CRL; after the profile's 30 days, OCSP says unknown.
    clock.advance(time::Duration::days(10));
    assert_eq!(instance.status.build_crl("org", 0).await.unwrap().entries, 0);
    assert!(matches!(instance.status.served_status(&issued.serial, "org").await.unwrap(), CertStatus::Revoked { .. }));
    clock.advance(time::Duration::days(30));
    assert_eq!(instance.status.served_status(&issued.serial, "org").await.unwrap(), CertStatus::Unknown);
}

fn spki_of(ca: &TestCa, der: &[u8]) -> String {
    let path = ca.path("spki.pem");
    write_pem(&path, "CERTIFICATE", der);
    run("openssl", &["x509", "-in", path.to_str().unwrap(), "-noout", "-pubkey"]).text
}
