//! Schema migrations through sqlx's Migrator: databases made by the earlier hand-written runner
//! (versions in `schema_migrations`, no checksums) are adopted and keep their data; a migration
//! whose recorded checksum differs refuses the start; PostgreSQL daemons starting together
//! migrate once. Runs on SQLite and, with `CLOUDCA_TEST_POSTGRES`, on PostgreSQL.

use crate::common::*;
use cloudca::config::DatabaseConfig;
use cloudca::store::{Store, StoreError};
use sqlx::{AnyPool, Row};

/// The migrations as the earlier runner had them (version, name, SQL).
const LEGACY: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../src/store/migrations/0001_init.sql")),
    (2, "status", include_str!("../../src/store/migrations/0002_status.sql")),
    (3, "backoffice", include_str!("../../src/store/migrations/0003_backoffice.sql")),
    (4, "custody", include_str!("../../src/store/migrations/0004_custody.sql")),
    (5, "seals", include_str!("../../src/store/migrations/0005_seals.sql")),
    (6, "ra", include_str!("../../src/store/migrations/0006_ra.sql")),
    (7, "leases", include_str!("../../src/store/migrations/0007_leases.sql")),
    (8, "sole_control", include_str!("../../src/store/migrations/0008_sole_control.sql")),
    (9, "ra_identity", include_str!("../../src/store/migrations/0009_ra_identity.sql")),
    (10, "ra_payments", include_str!("../../src/store/migrations/0010_ra_payments.sql")),
    (11, "ra_bounds", include_str!("../../src/store/migrations/0011_ra_bounds.sql")),
    (12, "sandbox", include_str!("../../src/store/migrations/0012_sandbox.sql")),
    (13, "audit_witness", include_str!("../../src/store/migrations/0013_audit_witness.sql")),
];

/// A fresh database on the backend under test (a file in `dir` for SQLite).
async fn fresh_database(dir: &std::path::Path) -> DatabaseConfig {
    let url = match postgres_database().await {
        Some(url) => url,
        None => format!("sqlite://{}?mode=rwc", dir.join("legacy.db").display()),
    };
    DatabaseConfig { url, password_file: None, max_connections: 4, acquire_timeout_seconds: 10 }
}

async fn connect(config: &DatabaseConfig) -> AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&config.url).await.expect("connect")
}

/// What the hand-written runner of earlier releases did, step for step: `schema_migrations`,
/// dialect placeholders, comments stripped, statements split on `;`, one transaction each.
async fn legacy_runner(pool: &AnyPool, up_to: i64) {
    let postgres = postgres_under_test();
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
    for (version, name, sql) in LEGACY.iter().filter(|(v, _, _)| *v <= up_to) {
        let sql = if postgres {
            sql.replace("{autoid}", "BIGSERIAL PRIMARY KEY").replace("BLOB", "BYTEA")
        } else {
            sql.replace("{autoid}", "INTEGER PRIMARY KEY AUTOINCREMENT")
        };
        let stripped: String = sql.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        let mut tx = pool.begin().await.unwrap();
        for statement in stripped.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement).execute(&mut *tx).await.unwrap();
        }
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(*version)
            .bind(*name)
            .bind(1_700_000_000 + version)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_made_by_the_earlier_runner_is_adopted_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = fresh_database(dir.path()).await;
    let pool = connect(&config).await;
    // Made by a release one migration behind this one, and used.
    legacy_runner(&pool, 12).await;
    sqlx::query("INSERT INTO leases (name, holder, expires_at, epoch) VALUES ('crl', 'old-daemon', 7, 3)")
        .execute(&pool)
        .await
        .unwrap();

    let store = Store::open(&config).await.expect("the earlier runner's database opens");
    store.close().await;

    // The legacy table stays as it was, for a previous-release daemon restarting mid-upgrade.
    let legacy: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(legacy, 12);
    let rows =
        sqlx::query("SELECT version, description, checksum FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    let versions: Vec<i64> = rows.iter().map(|r| r.get("version")).collect();
    let expected = cloudca::store::migration_versions();
    assert_eq!(versions, expected, "12 adopted, the 13th and later applied by the Migrator");
    for r in &rows {
        assert_eq!(r.get::<Vec<u8>, _>("checksum").len(), 48, "SHA-384 of the migration text");
    }
    assert_eq!(rows[4].get::<String, _>("description"), "seals");
    let holder: String =
        sqlx::query_scalar("SELECT holder FROM leases WHERE name = 'crl'").fetch_one(&pool).await.unwrap();
    assert_eq!(holder, "old-daemon", "data made before the upgrade is still there");
    // Migration 13 ran: the chained checkpoint columns exist.
    sqlx::query("SELECT counter, prev_hash FROM audit_checkpoints").fetch_all(&pool).await.unwrap();

    // Opening again changes nothing.
    let store = Store::open(&config).await.expect("opens a second time");
    store.close().await;
    let again: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(again, cloudca::store::migration_versions().len() as i64);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_migration_refuses_the_start_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = fresh_database(dir.path()).await;
    Store::open(&config).await.expect("fresh database migrates").close().await;
    let pool = connect(&config).await;
    // The text applied to this database is not the one this release holds (an edited file, or
    // a tampered record): the checksums disagree.
    sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 5")
        .bind(vec![0u8; 48])
        .execute(&pool)
        .await
        .unwrap();
    let err = Store::open(&config).await.err().expect("refused");
    assert!(matches!(err, StoreError::MigrationChanged { version: 5, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("migration 5 (seals)") && text.contains("checksum mismatch"), "{text}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_version_this_release_does_not_know_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = fresh_database(dir.path()).await;
    let pool = connect(&config).await;
    legacy_runner(&pool, 13).await;
    sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)")
        .execute(&pool)
        .await
        .unwrap();
    let err = Store::open(&config).await.err().expect("refused");
    assert!(matches!(err, StoreError::UnknownMigration(99)), "{err:?}");
    let adopted: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(adopted, 0, "nothing adopted from a database this release cannot read");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_refuses_to_start_on_a_changed_migration() {
    let ca = TestCa::new().await;
    let pool = connect(&ca.config.database).await;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 13")
        .bind(vec![1u8; 48])
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let out = serve_refused(&ca.config_path);
    assert!(!out.ok, "{}", out.text);
    assert!(
        out.text.contains("migration 13 (audit_witness)") && out.text.contains("checksum mismatch"),
        "{}",
        out.text
    );
}

/// Daemons sharing one PostgreSQL database start together: the Migrator's advisory lock lets
/// one migrate while the others wait, and all of them start.
#[tokio::test(flavor = "multi_thread")]
async fn daemons_starting_together_on_postgresql_migrate_once() {
    if !postgres_under_test() {
        eprintln!("PostgreSQL only (an embedded SQLite database has one daemon)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = fresh_database(dir.path()).await;
    let opens = (0..4).map(|_| {
        let config = config.clone();
        tokio::spawn(async move { Store::open(&config).await })
    });
    for open in futures_util::future::join_all(opens).await {
        open.unwrap().expect("every daemon starts").close().await;
    }
    let pool = connect(&config).await;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(count, cloudca::store::migration_versions().len() as i64);
    pool.close().await;
}
