//! One set of migrations for SQLite and PostgreSQL, applied by sqlx's `Migrator`. The SQL is
//! written once; the few words the two dialects spell differently are placeholders filled in per
//! backend, and the rendered text is what the Migrator runs (whole, in one transaction per
//! migration) and checksums (SHA-384, recorded in `_sqlx_migrations`). A released migration never
//! changes: a recorded checksum that differs from the text this binary holds refuses the start.
//! On PostgreSQL the Migrator's advisory lock keeps two daemons starting together from both
//! migrating.
//!
//! Databases made before the Migrator recorded their versions in `schema_migrations`, without
//! checksums; [`adopt_legacy`] copies those rows into `_sqlx_migrations`, under the same lock.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyConnection, Connection};

use super::{Backend, StoreError};

/// (version, name, SQL). Append only.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (2, "status", include_str!("migrations/0002_status.sql")),
    (3, "backoffice", include_str!("migrations/0003_backoffice.sql")),
    (4, "custody", include_str!("migrations/0004_custody.sql")),
    (5, "seals", include_str!("migrations/0005_seals.sql")),
    (6, "ra", include_str!("migrations/0006_ra.sql")),
    (7, "leases", include_str!("migrations/0007_leases.sql")),
    (8, "sole_control", include_str!("migrations/0008_sole_control.sql")),
    (9, "ra_identity", include_str!("migrations/0009_ra_identity.sql")),
    (10, "ra_payments", include_str!("migrations/0010_ra_payments.sql")),
    (11, "ra_bounds", include_str!("migrations/0011_ra_bounds.sql")),
    (12, "sandbox", include_str!("migrations/0012_sandbox.sql")),
    (13, "audit_witness", include_str!("migrations/0013_audit_witness.sql")),
    (14, "ra_services", include_str!("migrations/0014_ra_services.sql")),
    (15, "tsa", include_str!("migrations/0015_tsa.sql")),
    (16, "unlock_allowance", include_str!("migrations/0016_unlock_allowance.sql")),
    (17, "csc", include_str!("migrations/0017_csc.sql")),
    (18, "query_challenges", include_str!("migrations/0018_query_challenges.sql")),
    (19, "csc_documents", include_str!("migrations/0019_csc_documents.sql")),
    (20, "session_purge", include_str!("migrations/0020_session_purge.sql")),
];

/// The newest schema version this build knows (the last migration's number): what an upgraded
/// database records as applied.
pub fn latest_version() -> i64 {
    MIGRATIONS[MIGRATIONS.len() - 1].0
}

/// The table the hand-written runner (before the Migrator) recorded applied versions in.
const LEGACY_TABLE: &str = "schema_migrations";

/// Fills in the dialect placeholders.
fn dialect(sql: &str, backend: Backend) -> String {
    match backend {
        Backend::Sqlite => sql.replace("{autoid}", "INTEGER PRIMARY KEY AUTOINCREMENT"),
        Backend::Postgres => sql.replace("{autoid}", "BIGSERIAL PRIMARY KEY").replace("BLOB", "BYTEA"),
    }
}

/// Every migration rendered for `backend`, with its checksum: what the Migrator applies and
/// what a database's `_sqlx_migrations` must match.
pub(super) fn rendered(backend: Backend) -> Vec<Migration> {
    MIGRATIONS
        .iter()
        .map(|(version, name, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*name),
                MigrationType::Simple,
                Cow::Owned(dialect(sql, backend)),
                false,
            )
        })
        .collect()
}

/// The migrations as a Migrator source (they are compiled in, not read from a folder).
#[derive(Debug)]
struct Rendered(Backend);

impl MigrationSource<'static> for Rendered {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(rendered(self.0)) })
    }
}

/// Applies every migration not yet recorded, after checking the recorded ones against their
/// checksums. `conn` is a connection of its own on PostgreSQL (the advisory lock is held by the
/// session; closing it on an error releases the lock).
pub(crate) async fn run(conn: &mut AnyConnection, backend: Backend) -> Result<(), StoreError> {
    let mut migrator = Migrator::new(Rendered(backend)).await.map_err(StoreError::from)?;
    // The lock is taken here rather than by `run`, so adopting the legacy rows happens under it.
    migrator.set_locking(false);
    conn.lock().await.map_err(StoreError::from)?;
    let applied = apply(conn, backend, &migrator).await;
    if applied.is_ok() {
        conn.unlock().await.map_err(StoreError::from)?;
    }
    applied
}

async fn apply(conn: &mut AnyConnection, backend: Backend, migrator: &Migrator) -> Result<(), StoreError> {
    conn.ensure_migrations_table().await.map_err(StoreError::from)?;
    adopt_legacy(conn, backend, migrator).await?;
    let before: Vec<i64> =
        conn.list_applied_migrations().await.map_err(StoreError::from)?.iter().map(|m| m.version).collect();
    // `run_direct` is `run` without the `Acquire` bound, whose lifetime makes every future
    // that opens a store non-`Send` (sqlx's own comment on it says as much).
    migrator.run_direct(conn).await.map_err(|e| describe(e, migrator))?;
    for m in migrator.iter().filter(|m| !before.contains(&m.version)) {
        tracing::info!(version = m.version, name = %m.description, "applied migration");
    }
    Ok(())
}

/// Names the migration in the errors an operator must act on.
fn describe(err: MigrateError, migrator: &Migrator) -> StoreError {
    let name = |version: i64| {
        migrator.iter().find(|m| m.version == version).map(|m| m.description.to_string()).unwrap_or_default()
    };
    match err {
        MigrateError::VersionMismatch(version) => StoreError::MigrationChanged { version, name: name(version) },
        MigrateError::VersionMissing(version) => StoreError::UnknownMigration(version),
        other => StoreError::Migration(other),
    }
}

/// Copies the versions the hand-written runner recorded in `schema_migrations` into
/// `_sqlx_migrations`, with the checksum of the text this binary holds for each (that runner
/// kept none, so this is the one point where the applied text is taken on trust), in one
/// transaction. The old table stays, frozen: a daemon of the previous release restarting during
/// a rolling upgrade still finds its versions there. A version this binary does not know
/// refuses the start.
async fn adopt_legacy(conn: &mut AnyConnection, backend: Backend, migrator: &Migrator) -> Result<(), StoreError> {
    if !legacy_table_exists(conn, backend).await? {
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    let legacy: Vec<(i64, i64)> =
        sqlx::query_as(&format!("SELECT version, applied_at FROM {LEGACY_TABLE} ORDER BY version"))
            .fetch_all(&mut *tx)
            .await?;
    let recorded: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations").fetch_all(&mut *tx).await?;
    let installed_on = match backend {
        Backend::Sqlite => "datetime($3, 'unixepoch')",
        Backend::Postgres => "to_timestamp($3)",
    };
    let insert = format!(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
         VALUES ($1, $2, {installed_on}, TRUE, $4, -1)"
    );
    let missing: Vec<(i64, i64)> = legacy.into_iter().filter(|(v, _)| !recorded.contains(v)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    for &(version, applied_at) in &missing {
        let migration = migrator.iter().find(|m| m.version == version).ok_or(StoreError::UnknownMigration(version))?;
        sqlx::query(&insert)
            .bind(version)
            .bind(migration.description.as_ref())
            .bind(applied_at)
            .bind(migration.checksum.as_ref())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!(versions = missing.len(), "adopted the migrations recorded in schema_migrations");
    Ok(())
}

async fn legacy_table_exists(conn: &mut AnyConnection, backend: Backend) -> Result<bool, StoreError> {
    let sql = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let count: i64 = sqlx::query_scalar(sql).bind(LEGACY_TABLE).fetch_one(&mut *conn).await?;
    Ok(count > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_dialect_replaces_blob_and_autoid() {
        let sql = dialect(MIGRATIONS[0].2, Backend::Postgres);
        assert!(sql.contains("BYTEA") && sql.contains("BIGSERIAL") && !sql.contains("{autoid}"));
        let sql = dialect(MIGRATIONS[0].2, Backend::Sqlite);
        assert!(sql.contains("AUTOINCREMENT") && sql.contains("BLOB"));
    }

    #[test]
    fn versions_are_contiguous_from_one() {
        for (i, m) in rendered(Backend::Sqlite).iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.description);
        }
    }
}
