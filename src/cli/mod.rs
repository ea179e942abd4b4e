//! The `cloudca` command line. Names here are a contract operators' scripts rely on; one file
//! per subcommand. `anyhow` gives context at this edge; the library below keeps typed errors.

mod app;
mod approval;
mod audit;
mod backup;
mod ceremony;
mod cert;
mod config_check;
mod confirm;
mod crl;
mod dev_init;
mod issue;
mod lifecycle;
mod operator;
mod platform;
mod revoke;
mod rp;
mod serve;
mod status;
mod web;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::Config;

/// cloudca: HSM-backed certificate authority and cloud-signing appliance.
#[derive(Debug, Parser)]
#[command(name = "cloudca", version, about)]
pub struct Cli {
    /// The instance's configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Create a complete development instance (SoftHSM2 token, database, config, CA, TLS) in DIR.
    DevInit {
        /// A new or empty folder.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Create the CA hierarchy in the HSM (or import externally signed issuing CAs).
    Ceremony {
        #[command(subcommand)]
        action: Option<ceremony::Action>,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        action: config_check::Action,
    },
    /// Issue a certificate from a CSR under a profile.
    Issue(issue::Args),
    /// Inspect issued certificates.
    Cert {
        #[command(subcommand)]
        action: cert::Action,
    },
    /// Revoke a certificate.
    Revoke(revoke::Args),
    /// Renew a certificate inside its renewal window (same key, or a new one from a CSR).
    Renew(lifecycle::RenewArgs),
    /// Information change: a new certificate with the changed subject; the old one superseded.
    Change(lifecycle::ChangeArgs),
    /// Re-issue with a new key; the old certificate is revoked.
    Reissue(lifecycle::ReissueArgs),
    /// Build and write the current CRL of an issuing CA.
    Crl(crl::Args),
    /// Audit log commands.
    Audit {
        #[command(subcommand)]
        action: audit::Action,
    },
    /// Back up and restore the database (SQLite; PostgreSQL uses pg_dump/pg_restore).
    Backup {
        #[command(subcommand)]
        action: backup::Action,
    },
    /// HSM pool and readiness of the instance.
    Status,
    /// Reference mobile client (SMS login, PIN, claim and approve signing sessions).
    App {
        /// Where the client keeps its session between calls.
        #[arg(long, value_name = "FILE", default_value = ".cloudca-app.json")]
        state: PathBuf,
        #[command(subcommand)]
        action: app::Action,
    },
    /// Relying-platform demo: open a signing session, show the QR code, verify the result.
    Rp {
        #[command(subcommand)]
        action: rp::Action,
    },
    /// The web front for applicants (`--config` names its own `web.toml`; no HSM, no database).
    Web,
    /// Approvals: identities that may hold a cloud certificate.
    Approval {
        #[command(subcommand)]
        action: approval::Action,
    },
    /// Relying platforms allowed to open signing sessions.
    Platform {
        #[command(subcommand)]
        action: platform::Action,
    },
    /// Back-office client certificates (operator CA).
    Operator {
        #[command(subcommand)]
        action: operator::Action,
    },
    /// Run the daemon.
    Serve,
}

/// A failed command: the error and the exit status (sysexits.h).
#[derive(Debug)]
pub struct CliError {
    error: anyhow::Error,
    code: u8,
}

impl CliError {
    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            write!(f, "{:#}", self.error)
        } else {
            write!(f, "{}", self.error)
        }
    }
}

/// EX_USAGE: the command line is incomplete (e.g. a destructive command without `--yes` and
/// without a terminal to confirm on).
pub(crate) const EX_USAGE: u8 = 64;
/// EX_DATAERR: the input (CSR, serial) is wrong.
pub(crate) const EX_DATAERR: u8 = 65;
/// EX_UNAVAILABLE: HSM or database unavailable.
pub(crate) const EX_UNAVAILABLE: u8 = 69;
/// EX_CONFIG: the configuration is wrong.
pub(crate) const EX_CONFIG: u8 = 78;

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        let code = if error.downcast_ref::<crate::config::ConfigError>().is_some() {
            EX_CONFIG
        } else if error.downcast_ref::<confirm::NotConfirmed>().is_some() {
            EX_USAGE
        } else if is_bad_input(&error) || error.downcast_ref::<audit::AuditBroken>().is_some() {
            EX_DATAERR
        } else if error.downcast_ref::<crate::daemon::StartError>().is_some() {
            EX_UNAVAILABLE
        } else {
            1
        };
        CliError { error, code }
    }
}

/// Whether the operator's input (CSR, serial, request) is at fault rather than the system.
fn is_bad_input(error: &anyhow::Error) -> bool {
    use crate::ca::CaError;
    use crate::lifecycle::LifecycleError;
    use crate::operators::OperatorError;
    use crate::platforms::PlatformError;
    use crate::status::StatusError;
    error.downcast_ref::<crate::ca::RequestError>().is_some()
        || matches!(
            error.downcast_ref::<OperatorError>(),
            Some(
                OperatorError::Request(_)
                    | OperatorError::Refused(_)
                    | OperatorError::BadSerial(_)
                    | OperatorError::UnknownSerial(_)
            )
        )
        || matches!(
            error.downcast_ref::<PlatformError>(),
            Some(PlatformError::Invalid(_) | PlatformError::Duplicate | PlatformError::Unknown(_))
        )
        || matches!(
            error.downcast_ref::<crate::custody::CustodyError>(),
            Some(crate::custody::CustodyError::Invalid(_))
        )
        || matches!(error.downcast_ref::<CaError>(), Some(CaError::Request(_)))
        || error
            .downcast_ref::<LifecycleError>()
            .is_some_and(|e| !matches!(e, LifecycleError::Ca(CaError::Hsm(_) | CaError::Store(_))))
        || matches!(
            error.downcast_ref::<StatusError>(),
            Some(StatusError::UnknownSerial(_) | StatusError::BadSerial(_))
        )
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::DevInit { dir } => Ok(dev_init::run(&dir)?),
        Command::Config { action } => Ok(config_check::run(action, load(cli.config.as_deref())?)?),
        Command::Ceremony { action } => Ok(ceremony::run(action, load(cli.config.as_deref())?)?),
        Command::Issue(args) => Ok(issue::run(args, load(cli.config.as_deref())?)?),
        Command::Cert { action } => Ok(cert::run(action, load(cli.config.as_deref())?)?),
        Command::Revoke(args) => Ok(revoke::run(args, load(cli.config.as_deref())?)?),
        Command::Renew(args) => Ok(lifecycle::run(lifecycle::Flow::Renew(args), load(cli.config.as_deref())?)?),
        Command::Change(args) => Ok(lifecycle::run(lifecycle::Flow::Change(args), load(cli.config.as_deref())?)?),
        Command::Reissue(args) => Ok(lifecycle::run(lifecycle::Flow::Reissue(args), load(cli.config.as_deref())?)?),
        Command::Crl(args) => Ok(crl::run(args, load(cli.config.as_deref())?)?),
        Command::Audit { action } => Ok(audit::run(action, load(cli.config.as_deref())?)?),
        Command::Backup { action } => backup::run(action, load(cli.config.as_deref())?),
        Command::Status => Ok(status::run(load(cli.config.as_deref())?)?),
        Command::App { state, action } => Ok(app::run(&state, action)?),
        Command::Rp { action } => Ok(rp::run(action)?),
        Command::Approval { action } => Ok(approval::run(action, load(cli.config.as_deref())?)?),
        Command::Platform { action } => Ok(platform::run(action, load(cli.config.as_deref())?)?),
        Command::Operator { action } => Ok(operator::run(action, load(cli.config.as_deref())?)?),
        Command::Serve => Ok(serve::run(load(cli.config.as_deref())?)?),
        Command::Web => Ok(web::run(load_web(cli.config.as_deref())?)?),
    }
}

/// Loads and validates the config, and sets the HSM module's environment before any thread
/// or module exists.
fn load(path: Option<&Path>) -> Result<Config, CliError> {
    let path = path.ok_or_else(|| CliError {
        error: anyhow::anyhow!("--config FILE is required for this command"),
        code: EX_USAGE,
    })?;
    let mut config = Config::load(path).map_err(|e| CliError { error: e.into(), code: EX_CONFIG })?;
    config.apply_hsm_env();
    Ok(config)
}

/// Loads the web front's own configuration.
fn load_web(path: Option<&Path>) -> Result<crate::web::config::WebConfig, CliError> {
    let path = path.ok_or_else(|| CliError {
        error: anyhow::anyhow!("--config FILE is required for this command"),
        code: EX_USAGE,
    })?;
    crate::web::config::WebConfig::load(path).map_err(|e| CliError { error: e.into(), code: EX_CONFIG })
}

/// A multi-threaded runtime for commands that talk to the HSM and database.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Logs to stderr; `RUST_LOG` filters (default `info`); `CLOUDCA_LOG_FORMAT=json` for machines.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("CLOUDCA_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Writes a new certificate (PEM) and, when asked, its chain (issuing CA first, then up to the
/// root).
pub(crate) fn write_issued(out: &Path, chain_out: Option<&Path>, issued: &crate::ca::Issued) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::write(out, pem("CERTIFICATE", &issued.der)).with_context(|| format!("cannot write {}", out.display()))?;
    if let Some(path) = chain_out {
        let chain: String = issued.chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
        std::fs::write(path, chain).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Parses an RFC 3339 time argument.
pub(crate) fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-11-24T08:00:00Z: {e}"))
}

/// PEM-encodes DER with a tag.
pub(crate) fn pem(tag: &str, der: &[u8]) -> String {
    ::pem::encode(&::pem::Pem::new(tag, der.to_vec()))
}
