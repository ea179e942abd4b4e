//! `cloudca --config FILE issue --profile NAME --csr FILE --out FILE [--chain-out FILE]`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::Instance;

/// Arguments of `issue`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Profile name (`org`, `personal`).
    #[arg(long)]
    profile: String,
    /// The PKCS#10 request, PEM or DER.
    #[arg(long)]
    csr: PathBuf,
    /// Where to write the certificate (PEM).
    #[arg(long)]
    out: PathBuf,
    /// Where to write the chain (PEM): issuing CA first, then up to the root.
    #[arg(long)]
    chain_out: Option<PathBuf>,
}

/// Issues one certificate through the production path.
pub fn run(args: Args, config: Config) -> anyhow::Result<()> {
    let csr = std::fs::read(&args.csr).with_context(|| format!("cannot read {}", args.csr.display()))?;
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let instance = Instance::open(config, Arc::new(SystemClock)).await?;
        let issued = instance.issuance.issue(&args.profile, &csr, "cli").await?;
        super::write_issued(&args.out, args.chain_out.as_deref(), &issued)?;
        if let Err(e) = instance.status.presign(&issued.serial).await {
            tracing::warn!(error = %e, "OCSP pre-signing deferred to the daemon");
        }
        println!("issued serial {}", issued.serial);
        Ok(())
    })
}
