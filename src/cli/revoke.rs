//! `cloudca --config FILE revoke --serial HEX --reason REASON [--invalidity-date T]`.

use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::Instance;
use crate::status::{Revocation, RevocationReason};

/// Arguments of `revoke`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The serial, hex as openssl prints it (any case, colons allowed).
    #[arg(long)]
    serial: String,
    /// keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn,
    /// or unspecified (written as no reason code).
    #[arg(long)]
    reason: RevocationReason,
    /// When the key was compromised or the certificate became invalid (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    invalidity_date: Option<time::OffsetDateTime>,
}

fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-11-24T08:00:00Z: {e}"))
}

/// Revokes, re-signs the OCSP response and prints what happened. A running daemon picks the
/// revocation up from the database within `status.propagation_seconds`.
pub fn run(args: Args, config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let instance = Instance::open(config, Arc::new(SystemClock)).await?;
        match instance.status.revoke(&args.serial, args.reason, args.invalidity_date, "cli").await? {
            Revocation::Revoked => println!("revoked {} ({})", args.serial, args.reason.name()),
            Revocation::AlreadyRevoked { at, reason } => {
                let at = time::OffsetDateTime::from_unix_timestamp(at).map(|t| t.to_string()).unwrap_or_default();
                println!("already revoked {} at {at} ({}); nothing changed", args.serial, reason.name());
            }
        }
        Ok(())
    })
}
