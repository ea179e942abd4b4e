//! The hash-chained audit log: `audit verify` names the first tampered entry.

use crate::common::*;

pub(crate) fn verify(ca: &TestCa) -> Output {
    cloudca(&["--config", ca.config_path.to_str().unwrap(), "audit", "verify"])
}

/// A CA with a few audited events (ceremony, the dev TLS credentials and the dev platform:
/// 8 entries; then three issuances and revocations: 14), and a raw connection.
pub(crate) async fn audited_ca() -> (TestCa, sqlx::AnyPool) {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    let csr = make_csr(ca.dir.path(), "c", &key, ORG_SUBJECT);
    for _ in 0..3 {
        let issued = instance.issuance.issue("org", &csr, "test").await.unwrap();
        instance
            .status
            .revoke(&issued.serial, cloudca::status::RevocationReason::Superseded, None, "test")
            .await
            .unwrap();
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    (ca, pool)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untouched_chain_verifies() {
    let (ca, _) = audited_ca().await;
    let out = verify(&ca);
    assert!(out.ok && out.text.contains("audit log intact: 14 entries"), "{}", out.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_entry_is_named() {
    let (ca, pool) = audited_ca().await;
    sqlx::query("UPDATE audit_events SET actor = 'someone else' WHERE seq = 4").execute(&pool).await.unwrap();
    let out = verify(&ca);
    assert!(!out.ok && out.text.contains("broken at entry 4") && out.text.contains("edited"), "{}", out.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_entry_is_named() {
    let (ca, pool) = audited_ca().await;
    sqlx::query("DELETE FROM audit_events WHERE seq = 3").execute(&pool).await.unwrap();
    let out = verify(&ca);
    assert!(!out.ok && out.text.contains("broken at entry 3") && out.text.contains("missing"), "{}", out.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_the_last_entries_is_found_through_the_head() {
    let (ca, pool) = audited_ca().await;
    sqlx::query("DELETE FROM audit_events WHERE seq >= 6").execute(&pool).await.unwrap();
    let out = verify(&ca);
    assert!(
        !out.ok && out.text.contains("broken at entry 6") && out.text.contains("removed from the end"),
        "{}",
        out.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inserted_entry_is_named() {
    let (ca, pool) = audited_ca().await;
    // Make room after entry 2 and insert a forged entry 3 carrying entry 2's hash as its prev.
    sqlx::query("UPDATE audit_events SET seq = seq + 100 WHERE seq >= 3").execute(&pool).await.unwrap();
    sqlx::query("UPDATE audit_events SET seq = seq - 99 WHERE seq >= 103").execute(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO audit_events (seq, at, kind, actor, serial, detail, prev_hash, hash) \
         SELECT 3, at, 'certificate.issued', 'forger', NULL, '{}', hash, hash FROM audit_events WHERE seq = 2",
    )
    .execute(&pool)
    .await
    .unwrap();
    let out = verify(&ca);
    assert!(!out.ok && out.text.contains("broken at entry 3"), "{}", out.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn reordered_entries_are_named() {
    let (ca, pool) = audited_ca().await;
    sqlx::query("UPDATE audit_events SET seq = 1000 WHERE seq = 4").execute(&pool).await.unwrap();
    sqlx::query("UPDATE audit_events SET seq = 4 WHERE seq = 5").execute(&pool).await.unwrap();
    sqlx::query("UPDATE audit_events SET seq = 5 WHERE seq = 1000").execute(&pool).await.unwrap();
    let out = verify(&ca);
    assert!(!out.ok && out.text.contains("broken at entry 4") && out.text.contains("does not chain"), "{}", out.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_checkpoints_catch_a_cut_log_and_a_forged_checkpoint() {
    let (ca, pool) = audited_ca().await;
    let config = ca.config_path.to_str().unwrap();
    let out = cloudca(&["--config", config, "audit", "checkpoint"]);
    assert!(out.ok && out.text.contains("checkpoint signed at entry 14"), "{}", out.text);
    let out = verify(&ca);
    assert!(out.ok && out.text.contains("14 entries, 1 signed checkpoints verified"), "{}", out.text);

    // Cut the last two entries and repair the head: the chain alone looks fine, the checkpoint
    // signed over entry 14 does not.
    sqlx::query("DELETE FROM audit_events WHERE seq >= 13").execute(&pool).await.unwrap();
    sqlx::query("UPDATE audit_head SET seq = 12, hash = (SELECT hash FROM audit_events WHERE seq = 12) WHERE id = 1")
        .execute(&pool)
        .await
        .unwrap();
    let out = verify(&ca);
    assert!(!out.ok && out.text.contains("entry 14") && out.text.contains("log cut"), "{}", out.text);

    // A checkpoint whose signature was not made by the audit key is named.
    sqlx::query("UPDATE audit_checkpoints SET seq = 5, hash = (SELECT hash FROM audit_events WHERE seq = 5)")
        .execute(&pool)
        .await
        .unwrap();
    let out = verify(&ca);
    assert!(!out.ok && out.text.contains("signature does not verify"), "{}", out.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_written_past_the_head_is_named() {
    let (ca, pool) = audited_ca().await;
    sqlx::query(
        "INSERT INTO audit_events (seq, at, kind, actor, serial, detail, prev_hash, hash) \
         SELECT 15, at, 'certificate.issued', 'forger', NULL, '{}', hash, hash FROM audit_events WHERE seq = 14",
    )
    .execute(&pool)
    .await
    .unwrap();
    let out = verify(&ca);
    assert!(!out.ok && out.text.contains("broken at entry 15") && out.text.contains("past the head"), "{}", out.text);
}

/// Verification while other tasks append (as a daemon's requests and background jobs do)
/// never mistakes an append for a cut: it walks the chain up to the head it read first.
#[tokio::test(flavor = "multi_thread")]
async fn verifying_while_entries_are_appended_finds_the_chain_intact() {
    let (ca, _) = audited_ca().await;
    let instance = ca.open().await;
    let store = instance.store.clone();
    let appender = tokio::spawn(async move {
        for i in 0..300 {
            let record = cloudca::store::AuditRecord::new(
                &cloudca::clock::SystemClock,
                "test.append",
                "test",
                None,
                serde_json::json!({ "i": i }),
            );
            store.audit(&record).await.unwrap();
        }
    });
    let mut verified = 0;
    while !appender.is_finished() {
        let verdict = cloudca::audit::verify(&instance.store, &[], instance.config.audit.certificate_sha256.as_deref())
            .await
            .unwrap();
        assert!(matches!(verdict, cloudca::audit::Verdict::Intact { .. }), "{verdict:?}");
        verified += 1;
    }
    appender.await.unwrap();
    assert!(verified > 1, "verification ran only {verified} time(s) during the appends");
    let out = verify(&ca);
    assert!(out.ok && out.text.contains("audit log intact: 314 entries"), "{}", out.text);
}
