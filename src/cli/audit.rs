//! `cloudca --config FILE audit verify`: walks the hash chain and names the first entry that
//! was edited, deleted, inserted or reordered. `audit list` prints entries; `audit checkpoint`
//! signs the head now.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use crate::audit::Verdict;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::Instance;
use crate::store::Store;

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Check the chain and its signed checkpoints (database only; no HSM needed).
    Verify,
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
pub fn run(action: Action, config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        match action {
            Action::Verify => {
                let store = Store::open(&config.database).await.context("cannot open the database")?;
                match crate::audit::verify(&store).await? {
                    Verdict::Intact { entries, checkpoints } => {
                        println!("audit log intact: {entries} entries, {checkpoints} signed checkpoints verified");
                        Ok(())
                    }
                    Verdict::Broken(problem) => Err(anyhow::Error::new(AuditBroken { problem })),
                }
            }
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
                for e in store.audit_events(&query).await? {
                    let detail: serde_json::Value = serde_json::from_str(&e.record.detail).unwrap_or_default();
                    let line = serde_json::json!({
                        "seq": e.seq, "at_ms": e.record.at, "kind": e.record.kind, "actor": e.record.actor,
                        "serial": e.record.serial, "detail": detail, "hash": e.hash,
                    });
                    println!("{line}");
                }
                Ok(())
            }
            Action::Pin { fingerprint } => pin(&config, &fingerprint).await,
            Action::Checkpoint => {
                let instance = Instance::open(config, Arc::new(SystemClock)).await?;
                let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
                match crate::audit::checkpoint(&instance.store, &instance.hsm, now).await? {
                    Some(seq) => println!("checkpoint signed at entry {seq}"),
                    None => println!("no new entries since the last checkpoint"),
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
