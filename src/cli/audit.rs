//! `cloudca --config FILE audit verify`: walks the hash chain and names the first entry that
//! was edited, deleted, inserted or reordered.

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
