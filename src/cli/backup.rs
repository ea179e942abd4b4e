//! `cloudca --config FILE backup create|restore|verify`: the database half of a back-up (the
//! HSM token is backed up with the vendor's tools, and the two are paired; docs/backup.md).
//! Every back-up is checked before it gets its name, and every restore before it is installed:
//! an undamaged SQLite file, cloudca's schema at a version this binary knows, certificates that
//! match their fingerprints, and an intact audit chain whose signed checkpoints verify. None of
//! this needs the HSM.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use super::{CliError, EX_DATAERR, EX_USAGE};
use crate::audit::Verdict;
use crate::config::Config;
use crate::store::backup::{self, BackupError, Summary};
use crate::store::Store;

/// EX_CANTCREAT: the output (back-up file, restore target) cannot be created as asked.
const EX_CANTCREAT: u8 = 73;

/// `backup` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Copy the SQLite database to FILE (consistent while the daemon runs), then check the copy.
    /// PostgreSQL: use pg_dump -Fc.
    Create {
        /// The back-up file to create (never overwritten; mode 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check FILE and install it as this instance's SQLite database, which must be missing or
    /// empty. Stop the daemon first. PostgreSQL: use pg_restore, then `backup verify`.
    Restore {
        /// A file made by `backup create`.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Check a back-up file (read-only), or without --from this instance's database (after a
    /// pg_restore, say; opened as the daemon opens it, migrations included): schema,
    /// certificates, audit chain and checkpoints.
    Verify {
        /// A file made by `backup create`.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
}

/// Runs a `backup` command.
pub fn run(action: Action, config: Config) -> Result<(), CliError> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        match action {
            Action::Create { out } => create(&config, &out).await,
            Action::Restore { from } => restore(&config, &from).await,
            Action::Verify { from: Some(file) } => {
                let store = backup::open_file(&file).await.map_err(refused)?;
                let checked = check(&store, &file, &config).await;
                store.close().await;
                print_summary(&format!("{} is a sound back-up", file.display()), &checked?);
                Ok(())
            }
            Action::Verify { from: None } => {
                let store = Store::open(&config.database).await.context("cannot open the database")?;
                let checked = check(&store, Path::new("the configured database"), &config).await;
                store.close().await;
                print_summary("the configured database is sound", &checked?);
                Ok(())
            }
        }
    })
}

/// `VACUUM INTO` a temporary name, check the copy, then give it its name.
async fn create(config: &Config, out: &Path) -> Result<(), CliError> {
    let snapshot = backup::snapshot(&config.database, out).await.map_err(refused)?;
    let store = backup::open_file(snapshot.path()).await.map_err(refused)?;
    let checked = check(&store, snapshot.path(), config).await;
    store.close().await;
    let checked = checked?;
    let path = snapshot.publish().map_err(refused)?;
    print_summary(&format!("back-up written to {}", path.display()), &checked);
    println!("pair it with a back-up of the HSM token taken after these keys existed (docs/backup.md)");
    Ok(())
}

/// Refuse a target with data, stage a copy beside it, check the copy, release the old
/// instance's leases in it, install it.
async fn restore(config: &Config, from: &Path) -> Result<(), CliError> {
    let target = backup::sqlite_path(&config.database, "restore it").map_err(refused)?;
    backup::ensure_empty(&target).await.map_err(refused)?;
    let staged = backup::stage(from, &target).map_err(refused)?;
    let store = backup::open_file(staged.path()).await.map_err(|e| refused(relabel(e, staged.path(), from)))?;
    let checked = check(&store, from, config).await;
    store.close().await;
    let checked = checked?;
    backup::release_leases(&staged).await.map_err(refused)?;
    // Still empty? Nothing may have started on the target while the copy was checked.
    backup::ensure_empty(&target).await.map_err(refused)?;
    let path = staged.install().map_err(refused)?;
    print_summary(&format!("restored {} to {}", from.display(), path.display()), &checked);
    println!("start the daemon with the HSM token backed up with it: it checks every CA key against its certificate");
    Ok(())
}

/// What a check found: the database's summary and how many signed checkpoints verified.
struct Checked {
    /// Schema, counts, authorities.
    summary: Summary,
    /// Signed checkpoints of the audit chain that verified.
    checkpoints: usize,
}

/// Schema and counts, then the audit chain and its signed checkpoints. The audit certificate
/// must be the one `config` pins: a back-up is of this CA or of none.
async fn check(store: &Store, label: &Path, config: &Config) -> Result<Checked, CliError> {
    let summary = backup::inspect(store, label).await.map_err(refused)?;
    match crate::audit::verify(store, &[], config.audit.certificate_sha256.as_deref())
        .await
        .context("cannot verify the audit chain")?
    {
        Verdict::Intact { checkpoints, .. } => Ok(Checked { summary, checkpoints }),
        Verdict::Broken(problem) => Err(CliError {
            error: anyhow::anyhow!("{}: audit chain broken at {problem}; not a back-up to rely on", label.display()),
            code: EX_DATAERR,
        }),
    }
}

/// Errors about the staged copy name the file the operator gave.
fn relabel(error: BackupError, staged: &Path, from: &Path) -> BackupError {
    match error {
        BackupError::NotADatabase { path, detail } if path == staged => {
            BackupError::NotADatabase { path: from.to_path_buf(), detail }
        }
        other => other,
    }
}

/// A refusal with the exit status that says whose fault it is.
fn refused(error: BackupError) -> CliError {
    let code = match &error {
        BackupError::Postgres(_) => EX_USAGE,
        BackupError::NotADatabase { .. }
        | BackupError::NotCloudca { .. }
        | BackupError::NewerSchema { .. }
        | BackupError::Damaged { .. } => EX_DATAERR,
        BackupError::OutputExists(_) | BackupError::TargetNotEmpty { .. } => EX_CANTCREAT,
        _ => 1,
    };
    CliError { error: error.into(), code }
}

fn print_summary(headline: &str, checked: &Checked) {
    let s = &checked.summary;
    println!("{headline}");
    println!(
        "schema version {}, {} certificates, {} revoked; audit chain intact: {} entries, {} signed checkpoints \
         verified",
        s.schema_version, s.certificates, s.revocations, s.audit_entries, checked.checkpoints
    );
    for (name, fingerprint) in &s.authorities {
        println!("  {name:<20} SHA256 {fingerprint}");
    }
}
