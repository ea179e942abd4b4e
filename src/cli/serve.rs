//! `cloudca --config FILE serve`: the daemon, until SIGINT or SIGTERM.

use anyhow::Context;

use crate::config::Config;

/// Runs the daemon.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    config.providers.check_mode()?;
    runtime.block_on(async { crate::daemon::run(config, shutdown_signal()).await.context("cannot start the daemon") })
}

/// SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
