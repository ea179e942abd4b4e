//! `cloudca --config FILE audit verify`: walks the hash chain and names the first entry that
//! was edited, deleted, inserted or reordered.

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::store::audit::AuditVerdict;
use crate::store::Store;

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Check the whole audit chain (database only; no HSM needed).
    Verify,
}

/// Runs an `audit` command.
pub fn run(action: Action, config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let store = Store::open(&config.database).await.context("cannot open the database")?;
        match action {
            Action::Verify => match store.verify_audit().await? {
                AuditVerdict::Intact { entries, head } => {
                    println!("audit log intact: {entries} entries, head {head}");
                    Ok(())
                }
                AuditVerdict::Broken { seq, problem } => Err(anyhow::Error::new(AuditBroken { seq, problem })),
            },
        }
    })
}

/// The chain is broken at an entry.
#[derive(Debug, thiserror::Error)]
#[error("audit log broken at entry {seq}: {problem}")]
pub struct AuditBroken {
    /// Where.
    pub seq: i64,
    /// What.
    pub problem: String,
}
