//! One set of migrations for SQLite and PostgreSQL. The SQL is written once; the few words the
//! two dialects spell differently are placeholders filled in per backend. Applied versions are
//! recorded in `schema_migrations`; a migration never changes once released.

use sqlx::AnyPool;

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
];

/// Fills in the dialect placeholders.
fn dialect(sql: &str, backend: Backend) -> String {
    match backend {
        Backend::Sqlite => sql.replace("{autoid}", "INTEGER PRIMARY KEY AUTOINCREMENT"),
        Backend::Postgres => sql.replace("{autoid}", "BIGSERIAL PRIMARY KEY").replace("BLOB", "BYTEA"),
    }
}

/// Applies every migration not yet recorded, each in its own transaction.
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        .execute(pool)
        .await?;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = pool.begin().await?;
        if backend == Backend::Postgres {
            // Two daemons starting together must not both migrate.
            sqlx::query("LOCK TABLE schema_migrations IN EXCLUSIVE MODE").execute(&mut *tx).await?;
        }
        let done: Option<(i64,)> = sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(*version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            continue;
        }
        for statement in strip_comments(&dialect(sql, backend)).split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let statement = statement.to_string();
            sqlx::query(&statement).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(*version)
            .bind(*name)
            .bind(crate::clock::unix_now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(())
}

fn strip_comments(statement: &str) -> String {
    statement.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n").trim().to_string()
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
}
