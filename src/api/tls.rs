//! TLS for the `admin` and `api` listeners (rustls, TLS 1.3 and 1.2 only, ring's modern
//! suites). `admin` requires a client certificate that chains to `tls.client_ca` and is not
//! revoked; `api` asks for one (relying platforms present theirs, phones do not). Certificates
//! and keys are reloaded without a restart: on SIGHUP, and when a file's modification time
//! changes (checked every few seconds). A reload that fails keeps the previous material.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use sha2::Digest;

use crate::config::TlsConfig;
use crate::operators::RevokedSet;
use crate::policies::Swappable;

/// Whether a listener requires client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Mutual TLS: no certificate, no connection (`admin`).
    Required,
    /// Certificates are asked for and checked when sent (`api`).
    Optional,
}

/// Builds a server configuration from the files in `[tls]`. Errors name the key at fault.
pub fn server_config(config: &TlsConfig, auth: ClientAuth, revoked: RevokedSet) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.server_cert)
        .map_err(|e| format!("tls.server_cert {}: {e}", config.server_cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.server_cert {}: {e}", config.server_cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&config.server_key)
        .map_err(|e| format!("tls.server_key {}: {e}", config.server_key.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&config.client_ca)
        .map_err(|e| format!("tls.client_ca {}: {e}", config.client_ca.display()))?
    {
        let ca = ca.map_err(|e| format!("tls.client_ca {}: {e}", config.client_ca.display()))?;
        roots.add(ca).map_err(|e| format!("tls.client_ca {}: {e}", config.client_ca.display()))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = match auth {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    let inner = builder.build().map_err(|e| format!("tls.client_ca: {e}"))?;
    let verifier = Arc::new(NotRevoked { inner, revoked });
    let server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls.server_cert/tls.server_key: {e}"))?;
    Ok(Arc::new(server))
}

/// The chain check of webpki, then the back office's own revocation list.
#[derive(Debug)]
struct NotRevoked {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: RevokedSet,
}

impl ClientCertVerifier for NotRevoked {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        if self.revoked.contains(&hex::encode(sha2::Sha256::digest(end_entity.as_ref()))) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(verified)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a handshake failed, as the `reason` label of `cloudca_tls_handshake_failures_total`.
pub fn failure_reason(error: &std::io::Error) -> &'static str {
    use rustls::Error as E;
    match error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(E::NoCertificatesPresented) => "no_certificate",
        Some(E::InvalidCertificate(CertificateError::Revoked)) => "revoked",
        Some(E::InvalidCertificate(CertificateError::UnknownIssuer)) => "unknown_issuer",
        Some(E::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })) => "expired",
        Some(E::InvalidCertificate(_)) => "bad_certificate",
        Some(E::PeerIncompatible(_)) => "incompatible",
        Some(E::AlertReceived(_)) => "alert_received",
        Some(_) => "protocol",
        None if error.kind() == std::io::ErrorKind::TimedOut => "timeout",
        None => "io",
    }
}

/// The certificates in `tls.client_ca` (DER), for finding which anchor issued a client's
/// certificate (`roles::issuer_spki_sha256`).
fn client_anchors(config: &TlsConfig) -> Result<Vec<Vec<u8>>, String> {
    let named = |e: &dyn std::fmt::Display| format!("tls.client_ca {}: {e}", config.client_ca.display());
    CertificateDer::pem_file_iter(&config.client_ca)
        .map_err(|e| named(&e))?
        .map(|c| c.map(|c| c.to_vec()).map_err(|e| named(&e)))
        .collect()
}

/// What one (re)load builds: the server configuration and the client trust anchors.
type Built = (Arc<ServerConfig>, Vec<Vec<u8>>);

/// A server configuration that can be swapped while the listener runs.
pub struct Reloadable {
    current: Swappable<ServerConfig>,
    anchors: Swappable<Vec<Vec<u8>>>,
    files: Vec<PathBuf>,
    stamps: RwLock<Vec<Option<SystemTime>>>,
    build: Box<dyn Fn() -> Result<Built, String> + Send + Sync>,
}

impl Reloadable {
    /// Builds the first configuration (a failure here stops start-up).
    pub fn new(config: &TlsConfig, auth: ClientAuth, revoked: RevokedSet) -> Result<Arc<Reloadable>, String> {
        let owned = config.clone();
        let build = Box::new(move || Ok((server_config(&owned, auth, revoked.clone())?, client_anchors(&owned)?)));
        let files = vec![config.server_cert.clone(), config.server_key.clone(), config.client_ca.clone()];
        let stamps = files.iter().map(|f| modified(f)).collect();
        let (first, anchors) = build()?;
        let (current, anchors) = (Swappable::from(first), Swappable::new(anchors));
        Ok(Arc::new(Reloadable { current, anchors, files, stamps: RwLock::new(stamps), build }))
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.current()
    }

    /// Hex SHA-256 of the key that signed a client certificate the handshake verified: one of
    /// the anchors in force, or an intermediate the client sent (`chain`, leaf first).
    pub fn issuer_spki_sha256(&self, chain: &[CertificateDer<'_>]) -> Option<String> {
        let (leaf, intermediates) = chain.split_first()?;
        let anchors = self.anchors.current();
        let candidates = anchors.iter().map(Vec::as_slice).chain(intermediates.iter().map(|c| c.as_ref()));
        crate::roles::issuer_spki_sha256(leaf.as_ref(), candidates)
    }

    /// Rebuilds from the files; on failure the previous configuration stays in use.
    pub fn reload(&self, why: &str) -> Result<(), String> {
        let stamps = self.files.iter().map(|f| modified(f)).collect();
        match (self.build)() {
            Ok((config, anchors)) => {
                self.current.replace(config);
                self.anchors.replace(anchors);
                *self.stamps.write().unwrap_or_else(|p| p.into_inner()) = stamps;
                tracing::info!(why, "TLS certificates reloaded");
                Ok(())
            }
            Err(e) => {
                // Remember the stamps anyway, so a broken file is reported once, not every tick.
                *self.stamps.write().unwrap_or_else(|p| p.into_inner()) = stamps;
                tracing::error!(why, error = %e, "TLS reload failed; keeping the previous certificates");
                Err(e)
            }
        }
    }

    fn changed(&self) -> bool {
        let now: Vec<_> = self.files.iter().map(|f| modified(f)).collect();
        *self.stamps.read().unwrap_or_else(|p| p.into_inner()) != now
    }

    /// Watches for SIGHUP and file changes until shutdown.
    pub async fn watch(self: Arc<Self>, mut shutdown: tokio::sync::broadcast::Receiver<()>) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reloading on file changes only");
                None
            }
        };
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => if self.changed() { let _ = self.reload("files changed"); },
                _ = hup => { let _ = self.reload("SIGHUP"); },
                _ = shutdown.recv() => return,
            }
        }
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
