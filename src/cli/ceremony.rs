//! `cloudca --config FILE ceremony [import ...]`: creates the hierarchy and prints the
//! fingerprints an operator records in the ceremony minutes.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::store::Store;

/// `ceremony` subcommands (none: run the ceremony).
#[derive(Debug, Subcommand)]
pub enum Action {
    /// External-root mode: load an issuing CA certificate signed by the external root.
    Import {
        /// The issuing CA's name in `ca.issuing`.
        #[arg(long)]
        ca: String,
        /// The signed issuing CA certificate (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
        /// The external root certificate (PEM or DER).
        #[arg(long)]
        root: PathBuf,
    },
    /// Add the operator CA (back-office client certificates) to an instance made before it
    /// existed; writes its certificate to `--out` for `tls.client_ca`.
    Operators {
        /// Where to write the operator CA certificate (PEM).
        #[arg(long)]
        out: PathBuf,
    },
    /// Add the cloud-key custody keys (KEK, PIN pepper) to an instance made before they
    /// existed, or replace a KEK made before the unwrap templates (it is relabelled
    /// `cloudca-kek-legacy` and only unwraps the blobs made under it); sound keys are kept.
    Custody,
    /// Add the RFC 3161 timestamp authority's key and certificate to an instance made before
    /// it existed (`POST /tsa` answers 503 until then); refuses when one exists.
    Tsa,
}

/// Runs the ceremony or an import.
pub fn run(action: Option<Action>, config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let hsm = crate::daemon::start_hsm(&config).await.context("cannot open the HSM")?;
        let store = Store::open(&config.database).await.context("cannot open the database")?;
        let clock = Arc::new(SystemClock);
        let outcome = match action {
            None => crate::ca::ceremony::run(&config, &hsm, &store, clock.as_ref()).await?,
            Some(Action::Import { ca, cert, root }) => {
                let cert = read_certificate(&cert)?;
                let root = read_certificate(&root)?;
                crate::ca::ceremony::import(&config, &hsm, &store, clock.as_ref(), &ca, cert, root).await?
            }
            Some(Action::Custody) => crate::ca::ceremony::custody(&hsm, &store, clock.as_ref()).await?,
            Some(Action::Tsa) => crate::ca::ceremony::tsa(&config, &hsm, &store, clock.as_ref()).await?,
            Some(Action::Operators { out }) => {
                let outcome = crate::ca::ceremony::operators(&config, &hsm, &store, clock.as_ref()).await?;
                let ca = store.authorities().await?.into_iter().find(|a| a.role == crate::ca::ceremony::OPERATORS);
                let ca = ca.ok_or_else(|| anyhow::anyhow!("the operator CA was not stored"))?;
                std::fs::write(&out, super::pem("CERTIFICATE", &ca.certificate))
                    .with_context(|| format!("cannot write {}", out.display()))?;
                outcome
            }
        };
        for (name, fingerprint) in &outcome.fingerprints {
            println!("{name:<16} SHA256 {}", colon_hex(fingerprint));
        }
        for path in &outcome.csr_files {
            println!("CSR for the external root: {}", path.display());
        }
        pin_audit_certificate(&config, &store).await?;
        let operators = store.authorities().await?.into_iter().find(|a| a.role == crate::ca::ceremony::OPERATORS);
        if let Some(digest) = operators.and_then(|ca| crate::roles::spki_sha256(&ca.certificate)) {
            println!("operator CA key  issuer_spki_sha256 = \"{digest}\" (for subject rules in roles.toml)");
        }
        Ok(())
    })
}

/// Pins the audit certificate in the configuration file the ceremony ran with.
async fn pin_audit_certificate(config: &Config, store: &Store) -> anyhow::Result<()> {
    let path =
        config.source_path.as_deref().context("the configuration has no file to pin the audit certificate in")?;
    let pinned = config.audit.certificate_sha256.as_deref();
    if let Some(written) = crate::audit::pin::pin_after_ceremony(store, path, pinned).await? {
        println!("audit certificate pinned in {}: certificate_sha256 = \"{written}\"", path.display());
    }
    Ok(())
}

/// Reads a certificate file in PEM or DER.
pub(crate) fn read_certificate(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(b"-----BEGIN") {
        Ok(pem::parse(&bytes).with_context(|| format!("{} is not PEM", path.display()))?.into_contents())
    } else {
        Ok(bytes)
    }
}

/// AA:BB:... as operators compare fingerprints.
pub(crate) fn colon_hex(hex: &str) -> String {
    hex.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).to_uppercase()).collect::<Vec<_>>().join(":")
}
