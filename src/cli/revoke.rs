//! `cloudca --config FILE revoke (--serial HEX | --from-file FILE) --reason REASON
//! [--invalidity-date T] [--yes]`. Destructive: shows what it will revoke and asks on a
//! terminal; scripts pass `--yes`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::Instance;
use crate::status::{Revocation, RevocationReason};

/// Arguments of `revoke`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The serial, hex as openssl prints it (any case, colons allowed).
    #[arg(long, required_unless_present = "from_file", conflicts_with = "from_file")]
    serial: Option<String>,
    /// Bulk: a file with one serial per line (blank lines and `#` comments ignored).
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn,
    /// or unspecified (written as no reason code).
    #[arg(long)]
    reason: RevocationReason,
    /// When the key was compromised or the certificate became invalid (RFC 3339).
    #[arg(long, value_parser = super::parse_time)]
    invalidity_date: Option<time::OffsetDateTime>,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long)]
    yes: bool,
}

fn serials(args: &Args) -> anyhow::Result<Vec<String>> {
    match (&args.serial, &args.from_file) {
        (Some(s), _) => Ok(vec![s.clone()]),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let list: Vec<String> = text
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            anyhow::ensure!(!list.is_empty(), "{} lists no serials", path.display());
            Ok(list)
        }
        (None, None) => anyhow::bail!("give --serial or --from-file"),
    }
}

/// Checks every serial exists before asking, then revokes and prints what happened. A running
/// daemon picks revocations up from the database within `status.propagation_seconds`.
pub fn run(args: Args, config: Config) -> anyhow::Result<()> {
    let list = serials(&args)?;
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let instance = Instance::open(config, Arc::new(SystemClock)).await?;
        let mut plan = format!("About to revoke {} certificate(s), reason {}:", list.len(), args.reason.name());
        for text in &list {
            let serial =
                crate::ca::serial::parse(text).ok_or_else(|| crate::status::StatusError::BadSerial(text.clone()))?;
            let cert = instance
                .store
                .certificate(&serial)
                .await?
                .ok_or_else(|| crate::status::StatusError::UnknownSerial(serial.clone()))?;
            plan.push_str(&format!("\n  {serial}  {}  {}  ({})", cert.status, cert.subject, cert.issuer));
        }
        super::confirm::confirm(&plan, args.yes)?;
        for serial in &list {
            match instance.status.revoke(serial, args.reason, args.invalidity_date, "cli").await? {
                Revocation::Revoked => println!("revoked {serial} ({})", args.reason.name()),
                Revocation::AlreadyRevoked { at, reason } => {
                    let at = time::OffsetDateTime::from_unix_timestamp(at).map(|t| t.to_string()).unwrap_or_default();
                    println!("already revoked {serial} at {at} ({}); nothing changed", reason.name());
                }
            }
        }
        Ok(())
    })
}
