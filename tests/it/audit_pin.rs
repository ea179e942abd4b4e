//! The audit certificate pinned in `cloudca.toml` (issue 16 point 3, review H6): a database
//! writer who puts their own certificate in the `authorities` row, so that checkpoints signed
//! with their own key would verify, stops the daemon and every reader of the audit key instead.

use cloudca::audit::{AuditError, Checkpointer};

use crate::admin::Admin;
use crate::common::*;

/// Puts another certificate in the audit key's row, with the label of a key that matches it,
/// so the HSM key check still passes (here the operator CA's; an attacker's own key works the
/// same way for readers without the HSM, such as `audit verify`).
async fn swap_audit_certificate(ca: &TestCa) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    sqlx::query(
        "UPDATE authorities SET certificate = (SELECT certificate FROM authorities WHERE role = 'operators'), \
         key_label = (SELECT key_label FROM authorities WHERE role = 'operators') WHERE role = 'audit'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

/// The configuration text without its `certificate_sha256` line: an instance from before the pin.
fn unpin(ca: &TestCa) -> String {
    let text = std::fs::read_to_string(&ca.config_path).unwrap();
    let pinned =
        text.lines().find(|l| l.starts_with("certificate_sha256")).expect("dev-init pinned the audit certificate");
    let fingerprint = pinned.split('"').nth(1).unwrap().to_string();
    let unpinned: String =
        text.lines().filter(|l| !l.starts_with("certificate_sha256")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&ca.config_path, unpinned).unwrap();
    fingerprint
}

/// `AA:BB:…`, as the ceremony prints fingerprints for the minutes.
fn colons(hex: &str) -> String {
    hex.as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap().to_uppercase()).collect::<Vec<_>>().join(":")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unpinned_instance_does_not_start_until_audit_pin_writes_the_checked_fingerprint() {
    let ca = TestCa::new().await;
    let config = ca.config_path.to_str().unwrap();
    let fingerprint = unpin(&ca);

    let serve = serve_refused(&ca.config_path);
    assert!(!serve.ok && serve.text.contains("cloudca audit pin"), "an unpinned daemon must not start: {}", serve.text);

    let wrong = "ab".repeat(32);
    let refused = cloudca(&["--config", config, "audit", "pin", "--fingerprint", &wrong]);
    assert!(!refused.ok && refused.text.contains("ceremony minutes"), "{}", refused.text);
    assert!(!std::fs::read_to_string(&ca.config_path).unwrap().contains("certificate_sha256"), "nothing written");

    let pinned = cloudca(&["--config", config, "audit", "pin", "--fingerprint", &colons(&fingerprint)]);
    assert!(pinned.ok, "{}", pinned.text);
    let text = std::fs::read_to_string(&ca.config_path).unwrap();
    assert!(text.contains(&format!("certificate_sha256 = \"{fingerprint}\"")), "{text}");
    let again = cloudca(&["--config", config, "audit", "pin", "--fingerprint", &wrong]);
    assert!(!again.ok && again.text.contains("already pins"), "a pin is never overwritten: {}", again.text);

    let _daemon = Daemon::start(&ca).await;
    assert_eq!(ca.open().await.store.count_audit_events("audit.pinned").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swapped_audit_certificate_stops_the_daemon_and_the_cli_naming_the_pin() {
    let ca = TestCa::new().await;
    let config = ca.config_path.to_str().unwrap();
    let pool = swap_audit_certificate(&ca).await;
    let serve = serve_refused(&ca.config_path);
    assert!(
        !serve.ok
            && serve.text.contains("audit.certificate_sha256")
            && serve.text.contains("authorities row was changed"),
        "the daemon must refuse a swapped audit certificate: {}",
        serve.text
    );
    let checkpoint = cloudca(&["--config", config, "audit", "checkpoint"]);
    assert!(!checkpoint.ok && checkpoint.text.contains("audit.certificate_sha256"), "{}", checkpoint.text);

    sqlx::query("DELETE FROM authorities WHERE role = 'audit'").execute(&pool).await.unwrap();
    let serve = serve_refused(&ca.config_path);
    assert!(!serve.ok && serve.text.contains("authorities row was removed"), "{}", serve.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_swapped_under_a_running_daemon_fails_verify_and_the_checkpoint_round() {
    let ca = TestCa::new().await;
    let config = ca.config_path.to_str().unwrap();
    let instance = ca.open().await;
    let _daemon = Daemon::start(&ca).await;
    let admin = Admin::new(&ca);
    assert_eq!(admin.json("auditor", "GET", "/v1/audit/verify", None)["intact"], true);

    swap_audit_certificate(&ca).await;

    let verdict = admin.json("auditor", "GET", "/v1/audit/verify", None);
    assert_eq!(verdict["intact"], false, "{verdict}");
    assert!(verdict["problem"].as_str().unwrap().contains("audit.certificate_sha256"), "{verdict}");
    let out = cloudca(&["--config", config, "audit", "verify"]);
    assert!(!out.ok && out.text.contains("authorities row was changed"), "{}", out.text);
    let backup = cloudca(&["--config", config, "backup", "verify"]);
    assert!(!backup.ok && backup.text.contains("certificate audit"), "{}", backup.text);

    // The running daemon's round re-reads the row: it refuses instead of trusting the new key.
    let round = Checkpointer::open(ca.config.audit_witness(), ca.config.audit.certificate_sha256.clone())
        .round(&instance.store, &instance.hsm, 4_102_444_800_000)
        .await;
    match round {
        Err(AuditError::Refused(refusal)) => assert_eq!(refusal.reason, "audit_certificate", "{refusal}"),
        other => panic!("the round must refuse a swapped certificate: {other:?}"),
    }
}
