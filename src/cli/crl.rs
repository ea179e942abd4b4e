//! `cloudca --config FILE crl --ca NAME --out FILE`: builds, signs and writes the current CRL.
//! `crl --all`: rebuilds and publishes every CRL partition now (as `POST /v1/crl/rebuild`).

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
    #[arg(long, required_unless_present = "all", requires = "out")]
    ca: Option<String>,
    /// Rebuild and publish every CRL (each issuing CA and partition, and the root's).
    #[arg(long, conflicts_with_all = ["ca", "out", "partition"])]
    all: bool,
    /// CRL partition, when `status.crl_shards` > 1.
    #[arg(long, default_value_t = 0)]
    partition: i64,
    /// Where to write the DER CRL.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Builds and writes the CRL.
pub fn run(args: Args, config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let instance = Instance::open(config, Arc::new(SystemClock)).await?;
        if args.all {
            for (ca, partition) in instance.status.partitions() {
                let crl = instance.status.build_crl(&ca, partition).await?;
                println!(
                    "CRL {} of {ca} partition {partition}: {} entries, next update {}",
                    crl.number, crl.entries, crl.next_update
                );
            }
            return Ok(());
        }
        let (Some(ca), Some(out)) = (args.ca, args.out) else { anyhow::bail!("give --ca and --out, or --all") };
        let crl = instance.status.build_crl(&ca, args.partition).await?;
        std::fs::write(&out, &crl.der).with_context(|| format!("cannot write {}", out.display()))?;
        println!("CRL {} of {ca}: {} entries, next update {}", crl.number, crl.entries, crl.next_update);
        Ok(())
    })
}
