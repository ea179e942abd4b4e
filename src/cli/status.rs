//! `cloudca --config FILE status`: HSM pool and readiness, as `GET /v1/hsm` and
//! `GET /v1/readiness` report them, for the console. Exits non-zero when not ready.

use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::{Instance, Readiness};

/// Opens the instance (which checks every CA key against its certificate) and reports.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let instance = Instance::open(config, Arc::new(SystemClock)).await?;
        println!("hsm sessions: {}", instance.hsm.size());
        match instance.hsm.readiness() {
            Ok(()) => println!("hsm:          ready"),
            Err(e) => println!("hsm:          not ready ({e})"),
        }
        match instance.readiness().await {
            Readiness::Ready => println!("instance:     ready"),
            Readiness::Degraded(r) => println!("instance:     degraded ({r})"),
            Readiness::NotReady(r) => anyhow::bail!("instance not ready: {r}"),
        }
        Ok(())
    })
}
