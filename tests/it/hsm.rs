//! The HSM layer against a real SoftHSM2 token: key protection, start-up failures that name
//! their cause, and surviving the loss of every session without a restart.

use std::time::{Duration, Instant};

use crate::common::*;
use cloudca::hsm::{HsmError, HsmPool};

#[tokio::test(flavor = "multi_thread")]
async fn ca_private_keys_are_sensitive_and_never_extractable() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let authorities = instance.store.authorities().await.unwrap();
    assert_eq!(authorities.len(), 8, "root, 2 issuing CAs, 2 OCSP responders, the audit and TSA keys, the operator CA");
    for a in authorities {
        let p = instance.hsm.protection(&a.key_label).await.unwrap();
        assert!(p.token && p.private && p.sensitive && !p.extractable, "{}: {p:?}", a.key_label);
        assert!(p.always_sensitive && p.never_extractable, "{}: {p:?}", a.key_label);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_module_stops_start_up_naming_the_path() {
    let ca = TestCa::new().await;
    let mut config = ca.config.hsm.clone();
    config.module = "/nonexistent/libpkcs11.so".into();
    let err = HsmPool::start(&config).err().expect("must fail");
    assert!(matches!(err, HsmError::Module { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/libpkcs11.so"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_stops_start_up_naming_the_label() {
    let ca = TestCa::new().await;
    let mut config = ca.config.hsm.clone();
    config.token_label = "no-such-token".into();
    let err = HsmPool::start(&config).err().expect("must fail");
    assert!(err.to_string().contains("no token labelled \"no-such-token\""), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_pin_stops_start_up_naming_the_cause() {
    // A fresh process: in this one the ceremony already logged in, and PKCS#11 login is per
    // application, so only a new daemon shows what an operator would see.
    let ca = TestCa::new().await;
    std::fs::write(ca.config_path.parent().unwrap().join("secrets/hsm-user.pin"), "00000000\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloudca"))
        .args(["--config", ca.config_path.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("CKR_PIN_INCORRECT") && stderr.contains("not retrying"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unset_pin_variable_is_named() {
    let ca = TestCa::new().await;
    let mut config = ca.config.hsm.clone();
    config.pin_file = None;
    config.pin_env = Some("CLOUDCA_TEST_UNSET_PIN".into());
    let err = HsmPool::start(&config).err().expect("must fail");
    assert!(err.to_string().contains("CLOUDCA_TEST_UNSET_PIN"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn losing_every_session_is_survived_without_a_restart() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    let csr = make_csr(ca.dir.path(), "c", &key, ORG_SUBJECT);
    instance.issuance.issue("org", &csr, "test").await.expect("before the loss");
    let rebuilds = cloudca::metrics::get().hsm_rebuilds.get();

    // 1. Sessions vanish under load: the next job rebuilds, logs in again and is retried.
    close_all_sessions(&instance.hsm);
    for _ in 0..4 {
        instance.issuance.issue("org", &csr, "test").await.expect("issued after the loss");
    }
    assert!(cloudca::metrics::get().hsm_rebuilds.get() > rebuilds, "a rebuild was recorded");
    assert_eq!(instance.readiness().await, cloudca::daemon::Readiness::Ready);

    // 2. Sessions vanish while idle: the health check notices and rebuilds on its own.
    let before = cloudca::metrics::get().hsm_rebuilds.get();
    close_all_sessions(&instance.hsm);
    let deadline = Instant::now() + Duration::from_secs(15);
    while cloudca::metrics::get().hsm_rebuilds.get() == before
        || instance.readiness().await != cloudca::daemon::Readiness::Ready
    {
        assert!(Instant::now() < deadline, "the pool did not rebuild while idle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    instance.issuance.issue("org", &csr, "test").await.expect("issued after the idle rebuild");
}
