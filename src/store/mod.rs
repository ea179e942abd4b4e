//! Storage: one data-access layer over SQLite (embedded default, WAL, durable commits) and
//! PostgreSQL (several daemons sharing one CA), through `sqlx`'s `Any` driver. All SQL uses
//! `$n` placeholders, which both backends accept. Row types live here, separate from domain
//! types; nothing outside this module writes SQL.

pub mod audit;
mod authorities;
mod backoffice;
pub mod backup;
mod bounds;
mod certificates;
mod challenges;
mod contacts;
mod csc;
mod custody;
mod jcs;
mod leases;
mod migrations;
pub use migrations::latest_version;
mod payments;
mod proofs;
mod ra;
mod sandbox;
mod seals;
mod status;
mod tsa;
mod writer;

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

pub use audit::{AuditEntry, AuditQuery};
pub use authorities::AuthorityRecord;
pub use backoffice::{OperatorCertRecord, PlatformRecord};
pub use bounds::{UploadBounds, UploadRefusal};
pub use certificates::{CertificateQuery, CertificateRecord, NewCertificate, Reservation};
pub use contacts::ContactRecord;
pub use csc::CscAuthorizationRecord;
pub use custody::{
    ApprovalRecord, Authorized, CredentialRecord, HolderIdentity, SigningSessionRecord, UnlockAllowance,
};
pub use leases::LeaseRecord;
pub use payments::{IntentChange, IntentState, PaymentEventOutcome, PaymentIntentRecord};
pub use proofs::{ProofRecord, ProofSpend};
pub use ra::{MaterialRecord, NewMaterial, OrderQuery, OrderRecord, QueryRow};
pub use seals::{HandOver, MemberWrite, SealRecord, SealRequestRecord};
pub use status::{CrlRecord, EntryChunk, OcspRecord, RevocationRecord, CRL_CHUNK};
pub use writer::{AuditRecord, Write, Writer};

use crate::config::DatabaseConfig;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A unique constraint refused the write (e.g. a serial already reserved).
    #[error("duplicate key: {0}")]
    Duplicate(String),
    /// The database URL or password file is unusable.
    #[error("database configuration: {0}")]
    Config(String),
    /// The group-commit writer has stopped.
    #[error("the database writer has stopped")]
    WriterStopped,
    /// The database was away when a batch of writes (this one among them) was committed; the
    /// text is the original error, which another caller of the batch received.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A certificate was to be stored for a serial that is not reserved (issuance step 5).
    #[error("no reserved serial to store the certificate under")]
    NotReserved,
    /// Someone else changed the row between read and write; read it again.
    #[error("changed concurrently; try again")]
    Conflict,
    /// A migration applied to this database has a different text (checksum) than the one this
    /// binary holds: released migrations never change, so the schema cannot be trusted.
    #[error(
        "migration {version} ({name}) was applied to this database with a different text (checksum mismatch); \
         a released migration never changes, refusing to start"
    )]
    MigrationChanged {
        /// The migration's version.
        version: i64,
        /// Its name.
        name: String,
    },
    /// The database records a migration this binary does not have (made by a newer release).
    #[error("the database records migration {0}, which this cloudca does not know (made by a newer release?); refusing to start")]
    UnknownMigration(i64),
    /// Applying the migrations failed.
    #[error("migrating the database: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the database is away (connection lost or refused, pool exhausted, server
    /// shutting down) rather than refusing this request: callers answer 503, not 500, and
    /// the client may retry. SQLSTATE classes 08 (connection exception) and 57P (operator
    /// intervention: shutdown, restart) are PostgreSQL's words for it.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed,
            ) => true,
            StoreError::Database(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
            }
            StoreError::WriterStopped | StoreError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// Whether the database refused a value itself (SQLSTATE class 22, data exception: a NUL
    /// character in text, a number out of range): the request carried it, so callers answer
    /// 400, not 500. SQLite stores such values; PostgreSQL does not.
    pub fn is_bad_value(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => db.code().is_some_and(|c| c.starts_with("22")),
            _ => false,
        }
    }

    /// Classifies unique-constraint violations, which callers handle (retry with a new serial).
    fn classify(err: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return StoreError::Duplicate(db.message().to_string());
            }
            if db.is_foreign_key_violation() {
                return StoreError::NotReserved;
            }
        }
        StoreError::Database(err)
    }
}

/// How long [`Store::ping`] waits for the database.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Which SQL backend the URL selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The database handle: a connection pool and the group-commit writer.
#[derive(Clone)]
pub struct Store {
    /// Reads and single writes.
    pool: AnyPool,
    /// Which backend, for the few dialect differences.
    backend: Backend,
}

impl Store {
    /// Connects, applies migrations, and returns the store.
    pub async fn open(config: &DatabaseConfig) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = resolve_url(config)?;
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let options = AnyConnectOptions::from_str(&url).map_err(|e| StoreError::Config(e.to_string()))?;
        let pool = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(std::time::Duration::from_secs(config.acquire_timeout_seconds))
            // A pooled PostgreSQL connection may have died with the server: ping it before use.
            // A SQLite connection is an open file that cannot die so; its ping was a round trip
            // to the connection's thread on every query (a few per approval, per issuance).
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| Box::pin(async move { prepare(conn, backend).await }))
            .connect_with(options)
            .await?;
        let mut conn = pool.acquire().await?;
        if let Err(e) = migrations::run(&mut conn, backend).await {
            // On PostgreSQL the migration lock belongs to the session: a connection that failed
            // half-way is closed, never handed back to the pool still holding it.
            let _ = conn.detach().close().await;
            pool.close().await;
            return Err(e);
        }
        drop(conn);
        Ok(Store { pool, backend })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts the group-commit writer on this store.
    pub fn writer(&self, max_batch: usize) -> Writer {
        Writer::start(self.pool.clone(), self.backend, max_batch)
    }

    /// Empties the SQLite WAL after a write that destroyed something that must not stay on disk
    /// (`after` names it, for the log): a cloud key (a revocation), the PDFs of finished
    /// signing sessions (the purge), identity documents no order references any more (the
    /// sweep). Every frame is copied into the database file (where `secure_delete` zeroed the
    /// space the rows left) and the WAL is cut to nothing, so no older frame still holds the
    /// bytes. The WAL otherwise keeps its size between checkpoints ([`WAL_SIZE_LIMIT`]) and is
    /// written over from its start, so frames past what normal traffic rewrites (a large PDF or
    /// upload grows the WAL past its usual length) would keep old bytes indefinitely. A reader
    /// still on an old snapshot makes SQLite wait (`busy_timeout`); if the WAL still could not
    /// be emptied, the failure is logged and the next such write empties it. No-op on
    /// PostgreSQL (docs/backup.md says what remains there).
    pub(crate) async fn empty_wal(&self, after: &'static str) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let done = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.pool).await;
        match done.and_then(|row| sqlx::Row::try_get::<i64, _>(&row, 0)) {
            Ok(0) => {}
            Ok(_) => tracing::warn!(after, "the WAL could not be emptied: a reader held it"),
            Err(e) => tracing::warn!(after, error = %e, "the WAL could not be emptied"),
        }
    }

    /// Closes every connection once the ones in use come back (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A cheap round trip, for readiness. Bounded: while the server refuses connections the
    /// pool keeps retrying until its acquire timeout (30 s), and readiness must say "not ready"
    /// long before a probe gives up on it.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool)).await {
            Ok(done) => done.map(|_| ()).map_err(StoreError::from),
            Err(_) => Err(StoreError::Database(sqlx::Error::PoolTimedOut)),
        }
    }
}

/// The largest WAL kept between checkpoints (64 MiB): large enough that normal traffic always
/// writes over existing frames, small enough that one huge transaction does not leave a huge
/// file behind.
const WAL_SIZE_LIMIT: &str = "PRAGMA journal_size_limit = 67108864";

/// Sets up a new connection: on SQLite, WAL for concurrent readers; FULL so a commit survives
/// power loss; a busy timeout so the CLI and the daemon can share the file.
async fn prepare(conn: &mut AnyConnection, backend: Backend) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        conn.execute("PRAGMA journal_mode = WAL").await?;
        conn.execute("PRAGMA synchronous = FULL").await?;
        conn.execute("PRAGMA busy_timeout = 10000").await?;
        // 32 MiB of page cache per connection: large scans (CRL builds) mostly hit memory
        // without every pooled connection holding a huge cache.
        conn.execute("PRAGMA cache_size = -32768").await?;
        // Same referential rules as PostgreSQL: a certificate needs its serial.
        conn.execute("PRAGMA foreign_keys = ON").await?;
        // A destroyed cloud key must not linger on disk (docs/backup.md): freed row space is
        // zeroed, and the revocation that destroys a key (and the purges of PDFs and identity
        // documents) empty the WAL at once ([`Store::empty_wal`]), so older frames go too.
        conn.execute("PRAGMA secure_delete = ON").await?;
        // Otherwise the WAL keeps its size and is written over from the start after each
        // checkpoint: a commit that does not grow the file needs no file-size update on disk
        // (with `HAVE_FDATASYNC`, `.cargo/config.toml`), which made every durable commit
        // cheaper (issue 18). The cap only trims a WAL a large transaction left oversized.
        conn.execute(WAL_SIZE_LIMIT).await?;
    }
    Ok(())
}

/// Builds the connection URL: creates SQLite files on first use, substitutes the password.
fn resolve_url(config: &DatabaseConfig) -> Result<String, StoreError> {
    let mut url = config.url.clone();
    if url.contains("${password}") {
        let path = config.password_file.as_ref().ok_or_else(|| {
            StoreError::Config("database.url uses ${password} but database.password_file is not set".into())
        })?;
        let password = std::fs::read_to_string(path)
            .map_err(|e| StoreError::Config(format!("database.password_file {}: {e}", path.display())))?;
        url = url.replace("${password}", password.trim_end());
    }
    if url.starts_with("sqlite:") && !url.contains("mode=") {
        url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
    }
    Ok(url)
}
