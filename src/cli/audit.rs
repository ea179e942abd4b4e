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

/// The chain or a checkpoint is broken.
#[derive(Debug, thiserror::Error)]
#[error("audit log broken at {problem}")]
pub struct AuditBroken {
    /// Where and what.
    pub problem: String,
}
