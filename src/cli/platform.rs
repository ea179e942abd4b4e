//! `cloudca --config FILE platform register|list|show|disable`: the relying-platform registry
//! (database only).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::platforms::Registration;
use crate::store::{PlatformRecord, Store};

/// `platform` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Register a platform by its client certificate or fingerprint.
    Register {
        /// Stable slug (lowercase letters, digits, `-`).
        #[arg(long)]
        name: String,
        /// The name holders see on their phone before they sign.
        #[arg(long)]
        display_name: String,
        /// https URL for signing results.
        #[arg(long)]
        callback_url: String,
        /// The platform's client certificate (PEM file).
        #[arg(long, conflicts_with = "fingerprint", required_unless_present = "fingerprint")]
        certificate: Option<PathBuf>,
        /// Or its SHA-256 fingerprint (hex, colons allowed).
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// One line per platform.
    List,
    /// One platform.
    Show {
        /// Its name.
        name: String,
    },
    /// Disable a platform: its certificate loses the role at its next request (running daemons:
    /// within `listeners.identity_cache_seconds`).
    Disable {
        /// Its name.
        name: String,
        /// Do not ask for confirmation (required without a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a `platform` command.
pub fn run(action: Action, config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let store = Store::open(&config.database).await.context("cannot open the database")?;
        match action {
            Action::Register { name, display_name, callback_url, certificate, fingerprint } => {
                let certificate = certificate
                    .map(|p| std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display())))
                    .transpose()?;
                let r = Registration { name, display_name, callback_url, certificate, fingerprint };
                let record = crate::platforms::register(&store, &SystemClock, &r, "cli").await?;
                println!("registered {}", line(&record));
            }
            Action::List => {
                for p in store.platforms().await? {
                    println!("{}", line(&p));
                }
            }
            Action::Show { name } => {
                let p = store
                    .platform(&name)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no relying platform named {name:?}"))?;
                println!("{}", line(&p));
            }
            Action::Disable { name, yes } => {
                let p = store
                    .platform(&name)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no relying platform named {name:?}"))?;
                super::confirm::confirm(&format!("About to disable relying platform {}", line(&p)), yes)?;
                let p = crate::platforms::disable(&store, &SystemClock, &name, "cli").await?;
                println!("disabled {}", line(&p));
            }
        }
        Ok(())
    })
}

fn line(p: &PlatformRecord) -> String {
    format!("{}\t{}\t{}\t{}\t{}", p.name, p.status, p.fingerprint, p.callback_url, p.display_name)
}
