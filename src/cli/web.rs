//! `cloudca --config web.toml web`: the web front, until SIGINT or SIGTERM. Its own
//! configuration; it opens no HSM and no database.

use anyhow::Context;

use crate::web::config::WebConfig;

/// Runs the web front.
pub fn run(config: WebConfig) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        crate::web::serve(config, super::serve::shutdown_signal())
            .await
            .map_err(anyhow::Error::msg)
            .context("cannot start the web front")
    })
}
