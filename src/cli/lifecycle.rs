//! `cloudca --config FILE renew|change|reissue --serial HEX ... --out FILE [--chain-out FILE]`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::Instance;
use crate::status::RevocationReason;

/// Where the new certificate goes.
#[derive(Debug, clap::Args)]
pub struct Output {
    /// The certificate to replace (hex serial, any case, colons allowed).
    #[arg(long)]
    serial: String,
    /// Where to write the new certificate (PEM).
    #[arg(long)]
    out: PathBuf,
    /// Where to write the chain (PEM): issuing CA first, then up to the root.
    #[arg(long)]
    chain_out: Option<PathBuf>,
}

/// Arguments of `renew`.
#[derive(Debug, clap::Args)]
pub struct RenewArgs {
    #[command(flatten)]
    output: Output,
    /// A CSR with a new key and the same subject; without it the key is kept.
    #[arg(long)]
    csr: Option<PathBuf>,
}

/// Arguments of `change`.
#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    output: Output,
    /// A CSR with the changed subject (same serialNumber), same or new key.
    #[arg(long)]
    csr: PathBuf,
}

/// Arguments of `reissue`.
#[derive(Debug, clap::Args)]
pub struct ReissueArgs {
    #[command(flatten)]
    output: Output,
    /// A CSR with a new key and the same subject.
    #[arg(long)]
    csr: PathBuf,
    /// Why the old certificate is revoked (superseded by default; keyCompromise if the key
    /// was lost to someone else).
    #[arg(long, default_value = "superseded")]
    reason: RevocationReason,
}

/// Which flow.
pub enum Flow {
    /// Renewal.
    Renew(RenewArgs),
    /// Information change.
    Change(ChangeArgs),
    /// Re-issue.
    Reissue(ReissueArgs),
}

/// Runs one flow and writes the new certificate.
pub fn run(flow: Flow, config: Config) -> anyhow::Result<()> {
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let instance = Instance::open(config, Arc::new(SystemClock)).await?;
        let lifecycle = instance.lifecycle();
        let (output, issued) = match &flow {
            Flow::Renew(a) => {
                let csr = a.csr.as_ref().map(read).transpose()?;
                (&a.output, lifecycle.renew(&a.output.serial, csr.as_deref(), "cli").await?)
            }
            Flow::Change(a) => (&a.output, lifecycle.change(&a.output.serial, &read(&a.csr)?, "cli").await?),
            Flow::Reissue(a) => {
                (&a.output, lifecycle.reissue(&a.output.serial, &read(&a.csr)?, a.reason, "cli").await?)
            }
        };
        super::write_issued(&output.out, output.chain_out.as_deref(), &issued)?;
        if let Err(e) = instance.status.presign(&issued.serial).await {
            tracing::warn!(error = %e, "OCSP pre-signing deferred to the daemon");
        }
        println!("issued serial {} replacing {}", issued.serial, output.serial);
        Ok(())
    })
}
