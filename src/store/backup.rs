//! Back-up and restore of the embedded SQLite database, and the checks that make a back-up
//! trustworthy before anything relies on it. PostgreSQL is backed up with its own tools
//! (`pg_dump -Fc`, or base backups with WAL archiving); `inspect` checks either backend.
//!
//! A back-up is taken with `VACUUM INTO` on a separate connection: SQLite copies one read
//! transaction, so the copy is consistent while the daemon keeps writing (WAL readers never
//! block the writer). It is written under a temporary name, checked, and only then linked to
//! its final name, so a half-written or unchecked file never carries the name an operator asked
//! for. A restore copies the file next to the target, checks that copy (the bytes that will be
//! installed, not the source they came from) and renames it into place, and only ever into a
//! database that is missing or empty: restoring over live data would silently discard
//! certificates and audit entries.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use super::{resolve_url, Backend, Store, StoreError};
use crate::config::DatabaseConfig;

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Why a back-up or restore was refused or failed. The messages tell the operator what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The instance uses PostgreSQL, whose own tools make consistent dumps.
    #[error(
        "the database is PostgreSQL: {0} with PostgreSQL's tools (`pg_dump -Fc` to back up, `pg_restore` into a new \
         database, or base backups with WAL archiving for point-in-time recovery; see docs/backup.md), then check \
         the result with `cloudca backup verify`"
    )]
    Postgres(&'static str),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The back-up file (or its temporary name) already exists; back-ups are never overwritten.
    #[error("{0} already exists; back-ups are never overwritten, choose another name")]
    OutputExists(PathBuf),
    /// The file is not an SQLite database, or a damaged one.
    #[error("{path} is not a readable SQLite database ({detail})")]
    NotADatabase {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// An SQLite database, but not one cloudca made.
    #[error("{path} is not a cloudca database ({detail})")]
    NotCloudca {
        /// The file.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// Made by a newer cloudca: this binary cannot know what the later migrations mean.
    #[error(
        "{path} has schema version {found} but this cloudca knows versions up to {known}; restore it with the \
         release that made it"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Highest version in the back-up.
        found: i64,
        /// Highest version this binary applies.
        known: i64,
    },
    /// Stored data no longer matches its own checksums.
    #[error("{path} is damaged: {detail}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What does not match.
        detail: String,
    },
    /// The restore target already holds data.
    #[error(
        "refusing to restore over {path}: it already holds data ({detail}); restore into a missing or empty \
         database file"
    )]
    TargetNotEmpty {
        /// The database file.
        path: PathBuf,
        /// Which table has rows.
        detail: String,
    },
    /// The database itself failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BackupError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
        move |source| BackupError::Io { path: path.to_path_buf(), source }
    }
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        BackupError::Store(StoreError::Database(e))
    }
}

/// What a checked database holds: printed after a back-up or restore so the operator can
/// compare it with what they expected (and record it beside the HSM token back-up it pairs with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Highest applied migration.
    pub schema_version: i64,
    /// Certificates issued.
    pub certificates: i64,
    /// Certificates revoked.
    pub revocations: i64,
    /// Entries in the audit chain (its head).
    pub audit_entries: i64,
    /// (authority name, SHA-256 fingerprint of its certificate): the keys the paired HSM token
    /// must hold.
    pub authorities: Vec<(String, String)>,
}

/// The database file of an SQLite instance; PostgreSQL is refused with `hint` ("back it up",
/// "restore it").
pub fn sqlite_path(config: &DatabaseConfig, hint: &'static str) -> Result<PathBuf, BackupError> {
    let url = resolve_url(config)?;
    if !url.starts_with("sqlite:") {
        return Err(BackupError::Postgres(hint));
    }
    let options = SqliteConnectOptions::from_str(&url).map_err(|e| StoreError::Config(e.to_string()))?;
    Ok(options.get_filename().to_path_buf())
}

/// A private copy under a temporary name, removed when dropped unless kept: a copy that was
/// never checked and put in place leaves nothing behind.
#[derive(Debug)]
struct TempCopy {
    path: PathBuf,
    kept: bool,
}

impl TempCopy {
    /// Creates the file empty, mode 0600, before anything is written to it: copies hold
    /// wrapped keys and PIN hashes and must never be readable by others, not even briefly.
    fn create(path: PathBuf) -> Result<(TempCopy, std::fs::File), BackupError> {
        let file = create_private(&path)?;
        Ok((TempCopy { path, kept: false }, file))
    }
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A back-up written under a temporary name (`FILE.partial`, mode 0600) and not yet published.
/// Dropping it unpublished removes the temporary file.
#[derive(Debug)]
pub struct Snapshot {
    /// Where the copy is now.
    partial: TempCopy,
    /// The name it gets once checked.
    out: PathBuf,
}

impl Snapshot {
    /// The temporary file, to check before publishing.
    pub fn path(&self) -> &Path {
        &self.partial.path
    }

    /// Gives the checked copy its final name, durably, without ever replacing an existing file
    /// (a hard link fails if the name is taken).
    pub fn publish(mut self) -> Result<PathBuf, BackupError> {
        let partial = self.partial.path.clone();
        sync_file(&partial)?;
        std::fs::hard_link(&partial, &self.out).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => BackupError::OutputExists(self.out.clone()),
            _ => BackupError::Io { path: self.out.clone(), source: e },
        })?;
        self.partial.kept = true;
        std::fs::remove_file(&partial).map_err(BackupError::io(&partial))?;
        sync_parent(&self.out)?;
        Ok(self.out.clone())
    }
}

/// Copies the live SQLite database to `out`'s temporary name with `VACUUM INTO` (one read
/// transaction: consistent while the daemon writes). Run it as the service user (it needs read
/// access to the database, its WAL and shared-memory files).
pub async fn snapshot(config: &DatabaseConfig, out: &Path) -> Result<Snapshot, BackupError> {
    let source = sqlite_path(config, "back it up")?;
    if !source.exists() {
        return Err(BackupError::Io { path: source, source: std::io::ErrorKind::NotFound.into() });
    }
    if out.exists() {
        return Err(BackupError::OutputExists(out.to_path_buf()));
    }
    // Created empty first (VACUUM INTO accepts an empty file), so it is private from the start.
    let (partial, _) = TempCopy::create(sibling(out, ".partial"))?;
    let snapshot = Snapshot { partial, out: out.to_path_buf() };
    let options = SqliteConnectOptions::new()
        .filename(&source)
        .busy_timeout(std::time::Duration::from_secs(30))
        .foreign_keys(false);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    let target = snapshot.path().to_str().ok_or_else(|| BackupError::Io {
        path: snapshot.path().to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path is not UTF-8"),
    })?;
    sqlx::query("VACUUM INTO $1").bind(target).execute(&mut conn).await?;
    conn.close().await?;
    Ok(snapshot)
}

/// Opens a back-up file read-only, as immutable (no locks, no journal, nothing written), after
/// checking it is an undamaged SQLite database. The file must not change while it is open.
pub async fn open_file(path: &Path) -> Result<Store, BackupError> {
    let mut header = [0u8; 16];
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header));
    match read {
        Ok(()) if &header == SQLITE_MAGIC => {}
        Ok(()) => return Err(not_a_database(path, "no SQLite header")),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(not_a_database(path, "shorter than an SQLite header"))
        }
        Err(e) => return Err(BackupError::Io { path: path.to_path_buf(), source: e }),
    }
    sqlx::any::install_default_drivers();
    let url = SqliteConnectOptions::new().filename(path).read_only(true).immutable(true).to_url_lossy();
    let options = AnyConnectOptions::from_url(&url).map_err(|e| StoreError::Config(e.to_string()))?;
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| not_a_database(path, &e.to_string()))?;
    let check: Result<Vec<String>, sqlx::Error> = sqlx::query_scalar("PRAGMA quick_check").fetch_all(&pool).await;
    match check {
        Ok(rows) if rows == ["ok"] => Ok(Store { pool, backend: Backend::Sqlite }),
        Ok(rows) => Err(not_a_database(path, &format!("damaged: {}", rows.join("; ")))),
        Err(e) => Err(not_a_database(path, &e.to_string())),
    }
}

fn not_a_database(path: &Path, detail: &str) -> BackupError {
    BackupError::NotADatabase { path: path.to_path_buf(), detail: detail.to_string() }
}

/// Checks that the database is cloudca's, of a schema version this binary knows (every
/// migration it records is one of ours; with all of them applied, every table is there), and
/// summarises it. `label` names it in errors (a file, or the configured database). Works on
/// both backends; the audit chain is checked separately (`crate::audit::verify`).
pub async fn inspect(store: &Store, label: &Path) -> Result<Summary, BackupError> {
    let not_cloudca = |detail: String| BackupError::NotCloudca { path: label.to_path_buf(), detail };
    let reference = Reference::build().await?;
    let versions = applied_versions(store, label).await?;
    let found = versions.last().copied().unwrap_or(0);
    let known = reference.versions.last().copied().unwrap_or(0);
    if found > known {
        return Err(BackupError::NewerSchema { path: label.to_path_buf(), found, known });
    }
    if versions.is_empty() || versions.iter().zip(1..).any(|(v, expected)| *v != expected) {
        return Err(not_cloudca(format!("unexpected migrations {versions:?}")));
    }
    let tables = table_names(store).await?;
    let required: Vec<&str> = if found == known {
        reference.tables.iter().map(String::as_str).collect()
    } else {
        // An older schema: the daemon migrates it forward at start. The tables every version
        // has are enough to check the audit chain and count what it holds.
        vec!["authorities", "certificates", "revocations", "audit_events", "audit_head", "audit_checkpoints"]
    };
    if let Some(missing) = required.iter().find(|t| !tables.iter().any(|have| have == *t)) {
        return Err(not_cloudca(format!("table {missing} is missing")));
    }
    check_fingerprints(store, label).await?;
    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&store.pool).await };
    let authorities = sqlx::query("SELECT name, fingerprint FROM authorities ORDER BY name")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get("fingerprint")?)))
        .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
    Ok(Summary {
        schema_version: found,
        certificates: count("SELECT COUNT(*) FROM certificates").await?,
        revocations: count("SELECT COUNT(*) FROM revocations").await?,
        audit_entries: count("SELECT seq FROM audit_head WHERE id = 1").await?,
        authorities,
    })
}

/// The migrations the database records: `_sqlx_migrations`, each checked against the checksum
/// of the text this binary holds (a back-up whose schema was edited is not sound); or, in a
/// back-up made before the Migrator, `schema_migrations` (adopted when the daemon next starts).
async fn applied_versions(store: &Store, label: &Path) -> Result<Vec<i64>, BackupError> {
    let not_cloudca = |detail: String| BackupError::NotCloudca { path: label.to_path_buf(), detail };
    let recorded: Result<Vec<(i64, Vec<u8>)>, sqlx::Error> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&store.pool)
            .await;
    let Ok(recorded) = recorded else {
        return sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&store.pool)
            .await
            .map_err(|_| not_cloudca("no _sqlx_migrations table".into()));
    };
    let ours = super::migrations::rendered(store.backend);
    for (version, checksum) in &recorded {
        if let Some(m) = ours.iter().find(|m| m.version == *version) {
            if m.checksum.as_ref() != checksum.as_slice() {
                let detail = format!("migration {version} ({}) does not match its checksum", m.description);
                return Err(BackupError::Damaged { path: label.to_path_buf(), detail });
            }
        }
    }
    Ok(recorded.into_iter().map(|(version, _)| version).collect())
}

/// Every stored certificate (CA and end-entity) still hashes to its recorded SHA-256
/// fingerprint. The page checks of SQLite do not look inside rows, so without this a flipped
/// bit in a DER blob would only show when that certificate is next served.
async fn check_fingerprints(store: &Store, label: &Path) -> Result<(), BackupError> {
    use futures_util::TryStreamExt;
    use sha2::Digest;
    for sql in [
        "SELECT name AS id, certificate AS der, fingerprint FROM authorities",
        "SELECT serial AS id, der, fingerprint FROM certificates",
    ] {
        let mut rows = sqlx::query(sql).fetch(&store.pool);
        while let Some(row) = rows.try_next().await? {
            let der: Vec<u8> = row.try_get("der")?;
            let fingerprint: String = row.try_get("fingerprint")?;
            if hex::encode(sha2::Sha256::digest(&der)) != fingerprint {
                let id: String = row.try_get("id")?;
                return Err(BackupError::Damaged {
                    path: label.to_path_buf(),
                    detail: format!("certificate {id} does not match its fingerprint"),
                });
            }
        }
    }
    Ok(())
}

/// The schema this binary makes: its migrations applied to an empty in-memory database.
struct Reference {
    /// Migration versions, ascending.
    versions: Vec<i64>,
    /// Table names.
    tables: Vec<String>,
}

impl Reference {
    async fn build() -> Result<Reference, BackupError> {
        use tracing::instrument::WithSubscriber;
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str("sqlite::memory:").map_err(|e| StoreError::Config(e.to_string()))?;
        let pool = AnyPoolOptions::new().max_connections(1).connect_with(options).await?;
        // Quietly: "applied migration" lines about a scratch database would only confuse.
        let mut conn = pool.acquire().await?;
        super::migrations::run(&mut conn, Backend::Sqlite)
            .with_subscriber(tracing::subscriber::NoSubscriber::default())
            .await?;
        drop(conn);
        let versions = super::migrations::rendered(Backend::Sqlite).iter().map(|m| m.version).collect();
        let store = Store { pool, backend: Backend::Sqlite };
        let tables = table_names(&store).await?;
        store.close().await;
        Ok(Reference { versions, tables })
    }
}

/// The tables of the database (without SQLite's own).
async fn table_names(store: &Store) -> Result<Vec<String>, BackupError> {
    let sql = match store.backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY name"
        }
    };
    Ok(sqlx::query_scalar(sql).fetch_all(&store.pool).await?)
}

/// Refuses a restore target that holds data. Missing, zero-length, or a schema whose tables are
/// all empty (a daemon or `config check` that opened the new path once) count as empty; a
/// single audit entry does not.
pub async fn ensure_empty(target: &Path) -> Result<(), BackupError> {
    let wal = sibling(target, "-wal");
    let size = match std::fs::metadata(target) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                return Err(BackupError::TargetNotEmpty {
                    path: target.to_path_buf(),
                    detail: format!("a write-ahead log {} is left over", wal.display()),
                });
            }
            return Ok(());
        }
        Err(e) => return Err(BackupError::Io { path: target.to_path_buf(), source: e }),
    };
    if size == 0 {
        return Ok(());
    }
    // Read-only but not immutable: rows that are only in the WAL count too.
    let options = SqliteConnectOptions::new().filename(target).read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| BackupError::TargetNotEmpty { path: target.to_path_buf(), detail: e.to_string() })?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| BackupError::TargetNotEmpty { path: target.to_path_buf(), detail: e.to_string() })?;
    for table in tables.iter().filter(|t| !matches!(t.as_str(), "_sqlx_migrations" | "schema_migrations")) {
        // The table names come from sqlite_master, not from input; quoted all the same.
        // Two tables hold one row from their migration: the chain's head and the TSA's serial
        // counter; they count as used only once they moved.
        let sql = match table.as_str() {
            "audit_head" => "SELECT 1 FROM \"audit_head\" WHERE seq > 0 LIMIT 1".to_string(),
            "tsa_serials" => "SELECT 1 FROM \"tsa_serials\" WHERE next > 1 LIMIT 1".to_string(),
            _ => format!("SELECT 1 FROM \"{}\" LIMIT 1", table.replace('"', "\"\"")),
        };
        if sqlx::query(&sql).fetch_optional(&mut conn).await?.is_some() {
            conn.close().await?;
            return Err(BackupError::TargetNotEmpty {
                path: target.to_path_buf(),
                detail: format!("table {table} has rows"),
            });
        }
    }
    conn.close().await?;
    Ok(())
}

/// A back-up copied next to the restore target (`TARGET.restoring`, mode 0600), to be checked
/// and then installed. Dropping it uninstalled removes the copy.
#[derive(Debug)]
pub struct Staged {
    /// The copy.
    copy: TempCopy,
    /// Where it goes.
    target: PathBuf,
}

impl Staged {
    /// The copy, to check before installing.
    pub fn path(&self) -> &Path {
        &self.copy.path
    }

    /// Renames the checked copy over the (empty or missing) target, after removing the empty
    /// target's WAL and shared-memory files so no stale log is replayed into the restored data.
    /// Call `ensure_empty` again just before: the target must still be empty.
    pub fn install(mut self) -> Result<PathBuf, BackupError> {
        sync_file(self.path())?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let leftover = sibling(&self.target, suffix);
            match std::fs::remove_file(&leftover) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BackupError::Io { path: leftover, source: e }),
            }
        }
        std::fs::rename(&self.copy.path, &self.target).map_err(BackupError::io(&self.target))?;
        self.copy.kept = true;
        sync_parent(&self.target)?;
        Ok(self.target.clone())
    }
}

/// Empties the lease table of a staged copy. Leases record which daemon does the once-only work
/// (CRL builds, OCSP refresh, the RA pass, audit checkpoints); in a restored instance none of
/// the holders it names exists, and its daemon would otherwise wait for them to expire
/// (`coord::TTL`) before rebuilding CRLs from the restored revocations. Leases are coordination
/// state, not records: nothing else in the copy changes.
pub async fn release_leases(staged: &Staged) -> Result<(), BackupError> {
    let options = SqliteConnectOptions::new().filename(staged.path());
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'leases'")
            .fetch_optional(&mut conn)
            .await?;
    if exists.is_some() {
        sqlx::query("DELETE FROM leases").execute(&mut conn).await?;
    }
    conn.close().await?;
    Ok(())
}

/// Copies `from` next to `target` (same file system, so the final rename is atomic).
pub fn stage(from: &Path, target: &Path) -> Result<Staged, BackupError> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(BackupError::io(dir))?;
    }
    let mut source = std::fs::File::open(from).map_err(BackupError::io(from))?;
    let (copy, mut file) = TempCopy::create(sibling(target, ".restoring"))?;
    let staged = Staged { copy, target: target.to_path_buf() };
    std::io::copy(&mut source, &mut file).map_err(BackupError::io(staged.path()))?;
    file.flush().map_err(BackupError::io(staged.path()))?;
    Ok(staged)
}

/// `PATH` + suffix, e.g. `cloudca.db-wal`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates a new file readable by its owner only; an existing one is an error.
fn create_private(path: &Path) -> Result<std::fs::File, BackupError> {
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => BackupError::OutputExists(path.to_path_buf()),
        _ => BackupError::Io { path: path.to_path_buf(), source: e },
    })
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(BackupError::io(path))
}

/// Makes a new directory entry durable (the file's own data is synced separately).
fn sync_parent(path: &Path) -> Result<(), BackupError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(BackupError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_config(path: &Path) -> DatabaseConfig {
        DatabaseConfig {
            url: format!("sqlite://{}", path.display()),
            password_file: None,
            max_connections: 2,
            acquire_timeout_seconds: 5,
        }
    }

    #[tokio::test]
    async fn a_missing_zero_length_or_migrated_but_unused_target_counts_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloudca.db");
        ensure_empty(&path).await.unwrap();
        std::fs::write(&path, b"").unwrap();
        ensure_empty(&path).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        // A daemon or `config check` that opened the new path once left only the schema.
        let store = Store::open(&sqlite_config(&path)).await.unwrap();
        ensure_empty(&path).await.unwrap();
        // One lease row is data: someone ran against this database.
        sqlx::query("INSERT INTO leases (name, holder, expires_at, epoch) VALUES ('crl', 'x', 0, 1)")
            .execute(&store.pool)
            .await
            .unwrap();
        let err = ensure_empty(&path).await.unwrap_err();
        assert!(matches!(&err, BackupError::TargetNotEmpty { detail, .. } if detail.contains("leases")), "{err}");
        store.close().await;
    }

    #[tokio::test]
    async fn a_migration_record_that_does_not_match_its_checksum_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloudca.db");
        let store = Store::open(&sqlite_config(&path)).await.unwrap();
        inspect(&store, &path).await.expect("a fresh database is sound");
        sqlx::query("UPDATE _sqlx_migrations SET checksum = X'00' WHERE version = 2")
            .execute(&store.pool)
            .await
            .unwrap();
        let err = inspect(&store, &path).await.unwrap_err();
        assert!(
            matches!(&err, BackupError::Damaged { detail, .. } if detail.contains("migration 2 (status)")),
            "{err}"
        );
        store.close().await;
    }

    #[tokio::test]
    async fn a_file_that_is_not_sqlite_is_named_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.backup");
        std::fs::write(&path, b"PGDMP\x01\x0e\x00 a PostgreSQL custom-format dump, not SQLite").unwrap();
        let err = open_file(&path).await.err().expect("refused");
        assert!(matches!(err, BackupError::NotADatabase { .. }), "{err}");
        assert!(err.to_string().contains("dump.backup"), "{err}");
    }

    #[test]
    fn a_postgresql_instance_is_pointed_at_its_own_tools() {
        let config = DatabaseConfig {
            url: "postgres://cloudca@db/cloudca".into(),
            password_file: None,
            max_connections: 2,
            acquire_timeout_seconds: 5,
        };
        let err = sqlite_path(&config, "back it up").unwrap_err();
        assert!(err.to_string().contains("pg_dump -Fc") && err.to_string().contains("pg_restore"), "{err}");
    }
}
