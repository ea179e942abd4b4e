//! `cloudca --config FILE operator issue|list|revoke`: back-office client certificates from
//! the operator CA in the HSM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::Instance;
use crate::operators::OperatorRevocation;
use crate::roles::Role;
use crate::status::RevocationReason;
use crate::store::{OperatorCertRecord, Store};

/// `operator` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Issue a client certificate for a role to the key in a CSR (its CN names the holder).
    Issue {
        /// The PKCS#10 request (PEM or DER).
        #[arg(long)]
        csr: PathBuf,
        /// reviewer, operator, auditor, web-front or relying-platform.
        #[arg(long)]
        role: Role,
        /// Validity in days (1 to 397).
        #[arg(long, default_value_t = 365)]
        validity_days: u32,
        /// Where to write the certificate (PEM).
        #[arg(long)]
        out: PathBuf,
    },
    /// One line per operator certificate.
    List,
    /// Revoke an operator certificate: refused at the next handshake.
    Revoke {
        /// Its serial (hex).
        #[arg(long)]
        serial: String,
        /// Revocation reason.
        #[arg(long)]
        reason: RevocationReason,
        /// Do not ask for confirmation (required without a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// Runs an `operator` command.
pub fn run(action: Action, config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        match action {
            Action::List => {
                let store = Store::open(&config.database).await.context("cannot open the database")?;
                for r in store.operator_certs().await? {
                    println!("{}", line(&r));
                }
            }
            Action::Issue { csr, role, validity_days, out } => {
                let csr = std::fs::read(&csr).with_context(|| format!("cannot read {}", csr.display()))?;
                let instance = Instance::open(config, Arc::new(SystemClock)).await?;
                let record = instance.operators.issue(&csr, role, validity_days, "cli").await?;
                std::fs::write(&out, super::pem("CERTIFICATE", &record.der))
                    .with_context(|| format!("cannot write {}", out.display()))?;
                println!("issued {}", line(&record));
            }
            Action::Revoke { serial, reason, yes } => {
                let store = Store::open(&config.database).await.context("cannot open the database")?;
                let hex = crate::ca::serial::parse(&serial)
                    .ok_or_else(|| anyhow::anyhow!("{serial:?} is not a hexadecimal serial"))?;
                let record = store
                    .operator_cert(&hex)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no operator certificate with serial {hex}"))?;
                super::confirm::confirm(
                    &format!("About to revoke operator certificate {} ({})", line(&record), reason.name()),
                    yes,
                )?;
                let instance = Instance::open(config, Arc::new(SystemClock)).await?;
                match instance.operators.revoke(&hex, reason, "cli").await? {
                    OperatorRevocation::Revoked => println!("revoked {hex}; running daemons refuse it within seconds"),
                    OperatorRevocation::AlreadyRevoked => println!("already revoked {hex}; nothing changed"),
                }
            }
        }
        Ok(())
    })
}

fn line(r: &OperatorCertRecord) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        r.serial,
        r.status,
        r.role,
        super::cert::date(r.not_after),
        r.fingerprint,
        r.subject
    )
}
