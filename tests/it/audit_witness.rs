//! Issue 16 (H6): chained checkpoints, the witness file, and the checkpoint round that refuses
//! to sign over a broken chain. `audit verify` runs as the real binary; exit codes are checked.

use cloudca::audit::{AuditError, Checkpointer};
use cloudca::daemon::Instance;
use cloudca::store::audit::{entry_hash, Checkpoint};
use cloudca::store::AuditRecord;

use crate::audit::audited_ca;
use crate::common::*;

/// `audit verify` with extra arguments: (exit code, stdout + stderr).
fn verify(ca: &TestCa, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["--config", ca.config_path.to_str().unwrap(), "audit", "verify"];
    args.extend_from_slice(extra);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloudca"))
        .args(&args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() * 1000
}

async fn append(instance: &Instance, n: usize) {
    for i in 0..n {
        let record =
            AuditRecord::new(&cloudca::clock::SystemClock, "test.append", "test", None, serde_json::json!({ "i": i }));
        instance.store.audit(&record).await.unwrap();
    }
}

/// 14 entries, checkpoint 1 at 14; 6 more, checkpoint 2 at 20; 6 more, checkpoint 3 at 26;
/// then 2 entries no checkpoint covers yet (28 in all). Witness in the data folder.
async fn checkpointed_ca() -> (TestCa, sqlx::AnyPool, Instance, Checkpointer) {
    let (ca, pool) = audited_ca().await;
    let instance = ca.open().await;
    let checkpointer = Checkpointer::open(ca.config.audit_witness(), ca.config.audit.certificate_sha256.clone());
    assert_eq!(checkpointer.round(&instance.store, &instance.hsm, now_ms()).await.unwrap(), Some(14));
    for expected in [20, 26] {
        append(&instance, 6).await;
        assert_eq!(checkpointer.round(&instance.store, &instance.hsm, now_ms()).await.unwrap(), Some(expected));
    }
    append(&instance, 2).await;
    (ca, pool, instance, checkpointer)
}

async fn exec(pool: &sqlx::AnyPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

const TABLES: [&str; 3] = ["audit_events", "audit_head", "audit_checkpoints"];

async fn snapshot(pool: &sqlx::AnyPool) {
    for t in TABLES {
        exec(pool, &format!("CREATE TABLE saved_{t} AS SELECT * FROM {t}")).await;
    }
}

async fn restore(pool: &sqlx::AnyPool) {
    for t in TABLES {
        exec(pool, &format!("DELETE FROM {t}")).await;
        exec(pool, &format!("INSERT INTO {t} SELECT * FROM saved_{t}")).await;
    }
}

const FIX_HEAD: &str =
    "UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit_events), hash = (SELECT hash FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)) WHERE id = 1";

/// Every tamper of entries or checkpoints makes `audit verify` exit 65 and name what it found.
#[tokio::test(flavor = "multi_thread")]
async fn every_tamper_of_entries_or_checkpoints_is_named_by_verify() {
    let (ca, pool, _instance, _) = checkpointed_ca().await;
    let (code, text) = verify(&ca, &[]);
    assert!(code == 0 && text.contains("28 entries, 3 signed checkpoints verified (3 witnessed)"), "{text}");
    snapshot(&pool).await;
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "edit an entry",
            vec!["UPDATE audit_events SET actor = 'someone else' WHERE seq = 16"],
            vec!["entry 16", "edited"],
        ),
        ("delete an entry", vec!["DELETE FROM audit_events WHERE seq = 16"], vec!["entry 16", "deleted"]),
        (
            "insert an entry",
            vec![
                "UPDATE audit_events SET seq = seq + 100 WHERE seq >= 3",
                "UPDATE audit_events SET seq = seq - 99 WHERE seq >= 103",
                "INSERT INTO audit_events (seq, at, kind, actor, serial, detail, prev_hash, hash) \
                 SELECT 3, at, 'certificate.issued', 'forger', NULL, '{}', hash, hash FROM audit_events WHERE seq = 2",
            ],
            vec!["entry 3"],
        ),
        (
            "reorder entries",
            vec![
                "UPDATE audit_events SET seq = 1000 WHERE seq = 4",
                "UPDATE audit_events SET seq = 4 WHERE seq = 5",
                "UPDATE audit_events SET seq = 5 WHERE seq = 1000",
            ],
            vec!["entry 4", "reordered"],
        ),
        (
            "cut entries from the end",
            vec!["DELETE FROM audit_events WHERE seq >= 25"],
            vec!["entry 25", "removed from the end"],
        ),
        (
            "cut entries from the end and repair the head",
            vec!["DELETE FROM audit_events WHERE seq >= 23", FIX_HEAD],
            vec!["entry 26", "log cut"],
        ),
        (
            "cut entries from the end with their checkpoints",
            vec!["DELETE FROM audit_events WHERE seq >= 18", "DELETE FROM audit_checkpoints WHERE seq >= 18", FIX_HEAD],
            vec!["checkpoint 2 (entry 20)", "checkpoint missing"],
        ),
        (
            "delete all checkpoints",
            vec!["DELETE FROM audit_checkpoints"],
            vec!["checkpoint 1 (entry 14)", "checkpoint missing"],
        ),
        (
            "delete the newest checkpoint",
            vec!["DELETE FROM audit_checkpoints WHERE counter = 3"],
            vec!["checkpoint 3 (entry 26)", "newest is checkpoint 2", "checkpoint missing"],
        ),
        (
            "delete a middle checkpoint",
            vec!["DELETE FROM audit_checkpoints WHERE counter = 2"],
            vec!["checkpoint 2: missing", "checkpoint missing"],
        ),
        (
            "edit a checkpoint",
            vec!["UPDATE audit_checkpoints SET at = at + 1 WHERE counter = 2"],
            vec!["checkpoint 2", "checkpoint edited"],
        ),
    ];
    for (name, statements, expected) in cases {
        for sql in &statements {
            exec(&pool, sql).await;
        }
        let (code, text) = verify(&ca, &[]);
        assert_eq!(code, 65, "{name}: {text}");
        for e in expected {
            assert!(text.contains(e), "{name}: expected {e:?} in {text}");
        }
        restore(&pool).await;
        let (code, text) = verify(&ca, &[]);
        assert_eq!(code, 0, "after {name}, restored: {text}");
    }
}

/// Rewrites every entry after `from` (actor of the first changed), recomputing hashes and the
/// head: a chain that verifies on its own.
async fn rewrite_after(pool: &sqlx::AnyPool, from: i64) {
    use sqlx::Row;
    exec(pool, &format!("UPDATE audit_events SET actor = 'forger' WHERE seq = {}", from + 1)).await;
    let rows = sqlx::query(&format!(
        "SELECT seq, at, kind, actor, serial, detail FROM audit_events WHERE seq >= {from} ORDER BY seq"
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    let mut prev: String =
        sqlx::query(&format!("SELECT hash FROM audit_events WHERE seq = {from}")).fetch_one(pool).await.unwrap().get(0);
    for r in rows.iter().skip(1) {
        let seq: i64 = r.get("seq");
        let record = AuditRecord {
            at: r.get("at"),
            kind: r.get("kind"),
            actor: r.get("actor"),
            serial: r.get("serial"),
            detail: r.get("detail"),
        };
        let hash = entry_hash(seq, &record, &prev);
        sqlx::query("UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE seq = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(seq)
            .execute(pool)
            .await
            .unwrap();
        prev = hash;
    }
    exec(pool, FIX_HEAD).await;
}

/// H6 itself: delete the checkpoints after T, rewrite the entries after T with recomputed
/// hashes, and let the daemon's checkpoint job run. It refuses (gauge, refusal counter, no new
/// checkpoint) and `audit verify` reports the missing checkpoints.
#[tokio::test(flavor = "multi_thread")]
async fn the_h6_rewrite_is_refused_by_the_daemon_and_reported_by_verify() {
    let (ca, pool, instance, _) = checkpointed_ca().await;
    exec(&pool, "DELETE FROM audit_checkpoints WHERE seq > 14").await;
    rewrite_after(&pool, 14).await;
    assert!(matches!(instance.store.verify_audit().await.unwrap(), cloudca::store::audit::AuditVerdict::Intact { .. }));
    drop(instance);

    let daemon = Daemon::start(&ca).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let metrics = loop {
        let text = http().get(format!("{}/metrics", daemon.metrics)).send().await.unwrap().text().await.unwrap();
        if text.lines().any(|l| l == "cloudca_audit_chain_broken 1") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "the daemon never refused:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let refusals = "cloudca_audit_checkpoint_refusals_total{reason=\"checkpoints_deleted\"}";
    assert!(metrics.contains(refusals) && !metrics.contains(&format!("{refusals} 0")), "{metrics}");
    drop(daemon);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_checkpoints").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 1, "nothing signed over the forged head");
    let (code, text) = verify(&ca, &[]);
    assert!(code == 65 && text.contains("checkpoint 2 (entry 20)") && text.contains("checkpoint missing"), "{text}");
}

/// A round over an edited entry refuses (typed error, gauge up); once the entry is put back,
/// the next round records `audit.chain_recovered`, lowers the gauge and signs again.
#[tokio::test(flavor = "multi_thread")]
async fn the_checkpoint_round_refuses_a_broken_segment_and_records_the_recovery() {
    let (ca, pool, instance, checkpointer) = checkpointed_ca().await;
    let metrics = cloudca::metrics::get();
    exec(&pool, "UPDATE audit_events SET actor = 'forger' WHERE seq = 27").await;
    let refused = checkpointer.round(&instance.store, &instance.hsm, now_ms()).await.unwrap_err();
    match refused {
        AuditError::Refused(r) => {
            assert_eq!(r.reason, "chain_broken");
            assert!(r.problem.contains("entry 27") && r.problem.contains("edited"), "{}", r.problem);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(metrics.audit_chain_broken.get(), 1);
    assert_eq!(metrics.audit_checkpoint_refusals.with_label_values(&["chain_broken"]).get(), 1);

    exec(&pool, "UPDATE audit_events SET actor = 'test' WHERE seq = 27").await;
    assert_eq!(checkpointer.round(&instance.store, &instance.hsm, now_ms()).await.unwrap(), Some(28));
    assert_eq!(metrics.audit_chain_broken.get(), 0);
    let q = cloudca::store::AuditQuery { kind: Some("audit.chain_recovered".into()), limit: 10, ..Default::default() };
    assert_eq!(instance.store.audit_events(&q).await.unwrap().len(), 1);
    let (code, text) = verify(&ca, &[]);
    assert!(code == 0 && text.contains("29 entries, 4 signed checkpoints"), "{text}");
}

/// A missing witness fails closed (66, naming the flags); `--no-witness` checks the database
/// alone; another daemon's witness is read with `--witness`.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_witness_fails_closed_and_names_the_flags() {
    let (ca, _pool, _instance, _) = checkpointed_ca().await;
    let witness = ca.config.audit_witness();
    let other = ca.path("other-daemon-witness.log");
    std::fs::copy(&witness, &other).unwrap();
    let (code, text) = verify(&ca, &["--witness", other.to_str().unwrap()]);
    assert!(code == 0 && text.contains("(6 witnessed)"), "{text}");
    std::fs::remove_file(&witness).unwrap();
    let (code, text) = verify(&ca, &[]);
    assert!(code == 66 && text.contains("--witness") && text.contains("--no-witness"), "{text}");
    let (code, text) = verify(&ca, &["--no-witness"]);
    assert!(code == 0 && text.contains("3 signed checkpoints verified (no witness read)"), "{text}");
    std::fs::copy(&other, &witness).unwrap();
    let (code, text) = verify(&ca, &["--witness", ca.path("nowhere.log").to_str().unwrap()]);
    assert!(code == 66 && text.contains("nowhere.log"), "{text}");
}

/// A witness that cannot be written stops signing: nothing stored, the refusal counted.
#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_witness_stops_signing() {
    let (_ca, pool, instance, checkpointer) = checkpointed_ca().await;
    let witness = _ca.config.audit_witness();
    std::fs::remove_file(&witness).unwrap();
    std::fs::create_dir(&witness).unwrap(); // not writable as a file, even for root
    let refused = checkpointer.round(&instance.store, &instance.hsm, now_ms()).await.unwrap_err();
    assert!(matches!(&refused, AuditError::Refused(r) if r.reason == "witness"), "{refused:?}");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_checkpoints").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 3);
    assert_eq!(cloudca::metrics::get().audit_checkpoint_refusals.with_label_values(&["witness"]).get(), 1);
}

/// The real daemon appends to the witness the earlier rounds wrote, across a restart, and
/// `audit verify` agrees with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_daemon_appends_to_its_witness_and_verify_agrees() {
    let (ca, pool, instance, _) = checkpointed_ca().await;
    drop(instance);
    let witness = ca.config.audit_witness();
    let lines = || std::fs::read_to_string(&witness).unwrap().lines().count();
    let stored = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_checkpoints").fetch_one(&pool).await.unwrap() as usize
    };
    for expected in [4, 5] {
        let daemon = Daemon::start(&ca).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // Witnessed and committed: the witness line is written before the commit, and a daemon
        // killed between the two leaves its next round to complete it (tested apart), which an
        // offline `verify` would rightly call a missing checkpoint.
        while lines() < expected || stored().await < expected {
            assert!(std::time::Instant::now() < deadline, "the daemon never signed checkpoint {expected}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        drop(daemon);
    }
    let (code, text) = verify(&ca, &[]);
    assert!(code == 0 && text.contains("5 signed checkpoints verified (5 witnessed)"), "{text}");
}

/// Checkpoints written before migration 13 (no counter) start the chain: checkpoint 1 links
/// to the last of them, and removing that legacy checkpoint breaks the link.
#[tokio::test(flavor = "multi_thread")]
async fn legacy_checkpoints_start_the_chain() {
    let (ca, pool) = audited_ca().await;
    let instance = ca.open().await;
    let audit = instance.store.authorities().await.unwrap().into_iter().find(|a| a.role == "audit").unwrap();
    let algorithm = cloudca::hsm::KeyAlgorithm::from_name(&audit.key_algorithm).unwrap();
    let (seq, hash) = instance.store.audit_head().await.unwrap();
    let mut legacy = Checkpoint { counter: None, prev_hash: None, seq, hash, at: now_ms(), signature: vec![] };
    legacy.signature = instance.hsm.sign(&audit.key_label, algorithm, &legacy.message()).await.unwrap();
    sqlx::query("INSERT INTO audit_checkpoints (seq, hash, at, signature) VALUES ($1, $2, $3, $4)")
        .bind(legacy.seq)
        .bind(&legacy.hash)
        .bind(legacy.at)
        .bind(&legacy.signature)
        .execute(&pool)
        .await
        .unwrap();
    let (code, text) = verify(&ca, &[]);
    assert!(code == 0 && text.contains("1 signed checkpoints verified"), "legacy only, no witness yet: {text}");

    append(&instance, 3).await;
    let checkpointer = Checkpointer::open(ca.config.audit_witness(), ca.config.audit.certificate_sha256.clone());
    assert_eq!(checkpointer.round(&instance.store, &instance.hsm, now_ms()).await.unwrap(), Some(17));
    let first = instance.store.checkpoint_by_counter(1).await.unwrap().unwrap();
    assert_eq!(first.prev_hash, Some(legacy.record_hash()));
    let (code, text) = verify(&ca, &[]);
    assert!(code == 0 && text.contains("2 signed checkpoints verified (1 witnessed)"), "{text}");

    exec(&pool, "DELETE FROM audit_checkpoints WHERE counter IS NULL").await;
    let (code, text) = verify(&ca, &[]);
    assert!(code == 65 && text.contains("checkpoint 1 (entry 17)") && text.contains("does not link"), "{text}");
}

/// Figures, not assertions: one checkpoint round after 1 and after 1000 new entries, and a
/// full `audit verify` (the binary) of 50k entries. Run with
/// `cargo nextest run --run-ignored only -E 'test(/measure_checkpoint/)' --no-capture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, run by hand"]
async fn measure_checkpoint_rounds_and_verify() {
    let (ca, _pool, instance, checkpointer) = checkpointed_ca().await;
    for n in [1usize, 1000] {
        checkpointer.round(&instance.store, &instance.hsm, now_ms()).await.unwrap();
        append(&instance, n).await;
        let t = std::time::Instant::now();
        checkpointer.round(&instance.store, &instance.hsm, now_ms()).await.unwrap().unwrap();
        eprintln!("MEASURE checkpoint round after {n} new entries: {:?}", t.elapsed());
    }
    // 49k more entries written straight into the chain (hashes computed here), in one go.
    let (mut seq, mut prev) = instance.store.audit_head().await.unwrap();
    let mut tx = _pool.begin().await.unwrap();
    for i in 0..49_000 {
        seq += 1;
        let record =
            AuditRecord::new(&cloudca::clock::SystemClock, "test.bulk", "test", None, serde_json::json!({ "i": i }));
        let hash = entry_hash(seq, &record, &prev);
        sqlx::query("INSERT INTO audit_events (seq, at, kind, actor, serial, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, NULL, $5, $6, $7)")
            .bind(seq).bind(record.at).bind(&record.kind).bind(&record.actor).bind(&record.detail).bind(&prev).bind(&hash)
            .execute(&mut *tx).await.unwrap();
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&prev)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    checkpointer.round(&instance.store, &instance.hsm, now_ms()).await.unwrap();
    let t = std::time::Instant::now();
    let (code, text) = verify(&ca, &[]);
    eprintln!("MEASURE audit verify: {:?} ({code}) {text}", t.elapsed());
}

/// A daemon killed between the witness append and the commit: the witness holds checkpoint 3,
/// the database does not. A new process completes that commit from its witness (the genuine,
/// signed next link), records `audit.checkpoint_completed` and signs on, instead of refusing for
/// ever; `audit verify` agrees. A witnessed checkpoint that is not the next link stays refused
/// (the H6 test above).
#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_witnessed_but_not_committed_before_a_crash_is_completed_by_the_next_process() {
    let (ca, pool, instance, checkpointer) = checkpointed_ca().await;
    drop(checkpointer);
    exec(&pool, "DELETE FROM audit_checkpoints WHERE counter = 3").await;
    let (code, text) = verify(&ca, &[]);
    assert_eq!(code, 65, "uncommitted, the database alone is short of the witness: {text}");

    let restarted = Checkpointer::open(ca.config.audit_witness(), ca.config.audit.certificate_sha256.clone());
    let signed = restarted.round(&instance.store, &instance.hsm, now_ms()).await.unwrap();
    assert_eq!(signed, Some(29), "28 entries and the completion's own event");
    assert_eq!(instance.store.count_audit_events("audit.checkpoint_completed").await.unwrap(), 1);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_checkpoints").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 4);
    let (code, text) = verify(&ca, &[]);
    assert_eq!(code, 0, "{text}");
}

/// A verify that runs while a round has written the witness but not yet committed the
/// checkpoint (attacker review: the round's own window) waits for the row instead of calling
/// the log broken; a checkpoint that never arrives is still reported (the test above).
#[tokio::test(flavor = "multi_thread")]
async fn a_verify_during_a_round_waits_for_the_witnessed_checkpoint_to_be_committed() {
    let (ca, pool, instance, _checkpointer) = checkpointed_ca().await;
    // The round's window: the witness holds checkpoint 3, its row is not in the database yet.
    exec(&pool, "CREATE TABLE pending_checkpoint AS SELECT * FROM audit_checkpoints WHERE counter = 3").await;
    exec(&pool, "DELETE FROM audit_checkpoints WHERE counter = 3").await;
    let witness = cloudca::audit::WitnessSource { path: ca.config.audit_witness(), explicit: true };
    let pinned = ca.config.audit.certificate_sha256.clone();
    let verify = tokio::spawn({
        let store = instance.store.clone();
        async move { cloudca::audit::verify(&store, &[witness], pinned.as_deref()).await }
    });
    // The commit lands well inside the wait; before the fix the verdict was already "broken".
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    exec(&pool, "INSERT INTO audit_checkpoints SELECT * FROM pending_checkpoint").await;
    match verify.await.unwrap().unwrap() {
        cloudca::audit::Verdict::Intact { checkpoints, witnessed, .. } => assert_eq!((checkpoints, witnessed), (3, 3)),
        broken => panic!("{broken:?}"),
    }
}
