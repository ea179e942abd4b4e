//! `cloudca --config FILE audit verify`: walks the hash chain, the signed checkpoints and the
//! witness files, and names the first entry or checkpoint that was edited, deleted, inserted,
//! reordered or cut. Exit 0 intact, 65 broken, 66 a witness file missing. `audit list` prints
//! entries; `audit checkpoint` signs the head now (through the same checks as the daemon).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use super::{CliError, EX_DATAERR};
use crate::audit::{AuditError, Verdict, WitnessSource};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::Instance;
use crate::store::Store;

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Check the chain, its signed checkpoints and the witness files (no HSM needed).
    Verify {
        /// Another witness file to check against (repeatable), e.g. other daemons' copies;
        /// `<data_dir>/audit-witness.log` (or `audit.witness_file`) is always read unless
        /// `--no-witness`.
        #[arg(long = "witness", value_name = "FILE")]
        witnesses: Vec<PathBuf>,
        /// Check the database alone (e.g. on a host without the daemon's witness).
        #[arg(long, conflicts_with = "witnesses")]
        no_witness: bool,
    },
    /// Sign a checkpoint of the current head now (the daemon does this every minute).
    Checkpoint,
    /// Pin the audit certificate in this configuration file (instances made before the pin
    /// existed): the fingerprint from the ceremony minutes must match the database's.
    Pin {
        /// Hex SHA-256 of the audit certificate, as the ceremony printed it (colons allowed).
        #[arg(long)]
        fingerprint: String,
    },
    /// Print entries in order, one JSON object per line, narrowed by the filters given.
    List {
        /// Entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after_seq: i64,
        /// Exact action, e.g. `certificate.revoked`.
        #[arg(long)]
        kind: Option<String>,
        /// Exact actor.
        #[arg(long)]
        actor: Option<String>,
        /// Exact object serial (hex).
        #[arg(long)]
        serial: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
}

/// Runs an `audit` command.
pub fn run(action: Action, config: Config) -> Result<(), CliError> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        match action {
            Action::Verify { witnesses, no_witness } => verify(&config, witnesses, no_witness).await,
            Action::List { after_seq, kind, actor, serial, limit } => {
                let store = Store::open(&config.database).await.context("cannot open the database")?;
                let serial = match serial {
                    Some(s) => Some(
                        crate::ca::serial::parse(&s)
                            .ok_or_else(|| anyhow::anyhow!("{s:?} is not a hexadecimal serial"))?,
                    ),
                    None => None,
                };
                let query = crate::store::AuditQuery { after_seq, kind, actor, serial, limit: limit.clamp(1, 100_000) };
                for e in store.audit_events(&query).await.map_err(anyhow::Error::from)? {
                    let detail: serde_json::Value = serde_json::from_str(&e.record.detail).unwrap_or_default();
                    let line = serde_json::json!({
                        "seq": e.seq, "at_ms": e.record.at, "kind": e.record.kind, "actor": e.record.actor,
                        "serial": e.record.serial, "detail": detail, "hash": e.hash,
                    });
                    println!("{line}");
                }
                Ok(())
            }
            Action::Pin { fingerprint } => Ok(pin(&config, &fingerprint).await?),
            Action::Checkpoint => {
                let witness = config.audit_witness();
                let pinned = config.audit.certificate_sha256.clone();
                let instance = Instance::open(config, Arc::new(SystemClock)).await.map_err(anyhow::Error::from)?;
                let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
                match crate::audit::Checkpointer::open(witness, pinned).round(&instance.store, &instance.hsm, now).await
                {
                    Ok(Some(seq)) => println!("checkpoint signed at entry {seq}"),
                    Ok(None) => println!("no new entries since the last checkpoint"),
                    Err(AuditError::Refused(refusal)) => {
                        return Err(CliError {
                            error: anyhow::anyhow!("checkpoint refused ({}): {}", refusal.reason, refusal.problem),
                            code: EX_DATAERR,
                        })
                    }
                    Err(e) => return Err(anyhow::Error::from(e).into()),
                }
                Ok(())
            }
        }
    })
}

/// `audit pin`: checks the operator's fingerprint against the database's audit certificate,
/// writes it into the configuration file and records `audit.pinned`. A database holding a
/// different certificate is refused: that is the swap the pin is for.
async fn pin(config: &Config, fingerprint: &str) -> anyhow::Result<()> {
    use crate::audit::pin::{self as audit_pin, PinError};
    let path = config.source_path.as_deref().context("no configuration file to write the pin into")?;
    let store = Store::open(&config.database).await.context("cannot open the database")?;
    let wanted = audit_pin::normalise(fingerprint);
    if let Some(pinned) = config.audit.certificate_sha256.as_deref().map(audit_pin::normalise) {
        anyhow::ensure!(
            pinned == wanted,
            "audit.certificate_sha256 already pins {pinned}; a new pin is written only by hand, after checking why the audit certificate changed"
        );
    }
    match audit_pin::audit_authority(&store, Some(&wanted)).await {
        Ok(_) => {}
        Err(PinError::Mismatch { found, .. }) => anyhow::bail!(
            "the database's audit certificate is {found}, not {wanted}: compare with the ceremony minutes before trusting it"
        ),
        Err(e) => return Err(e.into()),
    }
    audit_pin::write(path, &wanted)?;
    let clock = SystemClock;
    let detail = serde_json::json!({ "certificate_sha256": wanted, "config": path.display().to_string() });
    store.audit(&crate::store::AuditRecord::new(&clock, "audit.pinned", "cli", None, detail)).await?;
    println!("audit certificate pinned in {}: certificate_sha256 = \"{wanted}\"", path.display());
    Ok(())
}

/// The chain or a checkpoint is broken.
#[derive(Debug, thiserror::Error)]
#[error("audit log broken at {problem}")]
pub struct AuditBroken {
    /// Where and what.
    pub problem: String,
}

/// EX_NOINPUT: a witness file named (or the default one) cannot be read.
const EX_NOINPUT: u8 = 66;

/// `audit verify`: the database against the witnesses; the exit status says which failed.
async fn verify(config: &Config, witnesses: Vec<PathBuf>, no_witness: bool) -> Result<(), CliError> {
    let store = Store::open(&config.database).await.context("cannot open the database")?;
    let mut sources = Vec::new();
    if !no_witness {
        sources.push(WitnessSource { path: config.audit_witness(), explicit: false });
        sources.extend(witnesses.into_iter().map(|path| WitnessSource { path, explicit: true }));
    }
    let verdict = crate::audit::verify(&store, &sources, config.audit.certificate_sha256.as_deref()).await;
    store.close().await;
    match verdict {
        Ok(Verdict::Intact { entries, checkpoints, witnessed }) => {
            let files = if no_witness { "no witness read".to_string() } else { format!("{witnessed} witnessed") };
            println!("audit log intact: {entries} entries, {checkpoints} signed checkpoints verified ({files})");
            Ok(())
        }
        Ok(Verdict::Broken(problem)) => Err(anyhow::Error::new(AuditBroken { problem }).into()),
        Err(AuditError::Witness(e)) => Err(CliError {
            error: anyhow::anyhow!(
                "{e}: cannot check the checkpoints against it; name the witness files with --witness FILE, \
                 or check the database alone with --no-witness"
            ),
            code: EX_NOINPUT,
        }),
        Err(e) => Err(anyhow::Error::from(e).into()),
    }
}
