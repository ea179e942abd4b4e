//! `cloudca --config FILE crl --ca NAME --out FILE`: builds, signs and writes the current CRL.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::Instance;

/// Arguments of `crl`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Issuing CA name (`org`, `personal`).
    #[arg(long)]
    ca: String,
    /// CRL partition, when `status.crl_shards` > 1.
    #[arg(long, default_value_t = 0)]
    partition: i64,
    /// Where to write the DER CRL.
    #[arg(long)]
    out: PathBuf,
}

/// Builds and writes the CRL.
pub fn run(args: Args, config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let instance = Instance::open(config, Arc::new(SystemClock)).await?;
        let crl = instance.status.build_crl(&args.ca, args.partition).await?;
        std::fs::write(&args.out, &crl.der).with_context(|| format!("cannot write {}", args.out.display()))?;
        println!("CRL {} of {}: {} entries, next update {}", crl.number, args.ca, crl.entries, crl.next_update);
        Ok(())
    })
}
