//! `cloudca --config FILE config check`: the config parses and validates, and the profiles it
//! points at load. Does not touch the HSM or the database, so it is safe in ExecStartPre.

use clap::Subcommand;

use crate::config::Config;

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Validate the configuration and the policies it names.
    Check,
}

/// Runs `config check`.
pub fn run(action: Action, config: Config) -> anyhow::Result<()> {
    match action {
        Action::Check => {
            let roles = crate::roles::Roles::load(&config.policies_dir).map_err(|e| anyhow::anyhow!(e))?;
            let profiles = crate::ca::profile::load_all(&config.policies_dir).map_err(|e| anyhow::anyhow!(e))?;
            for p in profiles.values() {
                if !config.ca.issuing.iter().any(|i| i.name == p.issuer) {
                    anyhow::bail!("profile {} names issuing CA {:?}, which ca.issuing lacks", p.name, p.issuer);
                }
            }
            println!(
                "configuration OK ({} role rules; {} profiles: {})",
                roles.rule.len(),
                profiles.len(),
                profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            Ok(())
        }
    }
}
