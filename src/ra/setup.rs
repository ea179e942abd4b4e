//! Builds the provider set from the configuration, for the RA and for custody's identity proofs
//! alike. Only sandbox providers exist in this build (the real bank, carrier, payment and invoice
//! services cannot be reached from here); a production provider implements the same traits and
//! is chosen here. An identity provider left unconfigured fails every check closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Providers;
use crate::config::{Config, ProviderChoice};
use crate::providers::email::SandboxEmail;
use crate::providers::identity::{IdentityChecks, NoIdentityChecks, SandboxIdentityChecks};
use crate::providers::invoice::SandboxInvoice;
use crate::providers::payment::SandboxPayment;
use crate::providers::SmsProvider;
use crate::store::Store;

/// The sandbox providers' own handles: their pay and face pages simulate the person at the
/// other end (scanning the payment QR code, passing the face check).
#[derive(Clone)]
pub struct Sandboxes {
    /// Payment sandbox.
    pub payment: Arc<SandboxPayment>,
    /// Identity sandbox.
    pub identity: Arc<SandboxIdentityChecks>,
}

/// The SMS gateway (the sandbox's outbox file: the only one in this build), chosen here with
/// the others; built first because logins need it before the RA is.
pub fn sms(config: &Config) -> Arc<dyn SmsProvider> {
    Arc::new(crate::providers::SandboxSms { outbox: config.data_dir.join("sms-outbox.jsonl") })
}

/// The providers and the sandbox handles.
/// The sandboxes keep their state in `store`, so several daemons and restarts share it.
pub fn providers(config: &Config, sms: Arc<dyn SmsProvider>, store: &Store) -> Result<(Providers, Sandboxes), String> {
    let secret = payment_secret(config)?;
    let base = config.ra.public_url.clone();
    let payment = Arc::new(SandboxPayment::new(secret, base.clone()).with_store(store.clone()));
    let identity = Arc::new(
        SandboxIdentityChecks::new(
            config.data_dir.clone(),
            sms.clone(),
            Duration::from_secs(config.ra.face_seconds),
            base,
        )
        .with_store(store.clone()),
    );
    let checks: Arc<dyn IdentityChecks> = match config.providers.identity {
        ProviderChoice::Sandbox => identity.clone(),
        ProviderChoice::None => Arc::new(NoIdentityChecks),
    };
    let providers = Providers {
        sms,
        email: Arc::new(SandboxEmail { outbox: config.data_dir.join("email-outbox.jsonl") }),
        identity: checks,
        payment: payment.clone(),
        invoice: Arc::new(SandboxInvoice),
        challenge_outbox: (config.providers.mode == crate::config::ProvidersMode::Sandbox)
            .then(|| config.data_dir.join("challenge-outbox.jsonl")),
    };
    Ok((providers, Sandboxes { payment, identity }))
}

/// The payment webhook secret: the configured file, or `DATA_DIR/payment-webhook.secret`
/// created with 32 random bytes (mode 0600) on first start.
fn payment_secret(config: &Config) -> Result<Vec<u8>, String> {
    let path: PathBuf =
        config.ra.payment_secret_file.clone().unwrap_or_else(|| config.data_dir.join("payment-webhook.secret"));
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= 16 => Ok(bytes),
        Ok(_) => Err(format!("ra.payment_secret_file {}: shorter than 16 bytes", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && config.ra.payment_secret_file.is_none() => {
            use rand::RngCore;
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut secret = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            file.write_all(&secret).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(secret)
        }
        Err(e) => Err(format!("ra.payment_secret_file {}: {e}", path.display())),
    }
}
