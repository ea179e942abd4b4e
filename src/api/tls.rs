//! TLS for the `admin` listener: TLS 1.3 and 1.2 only (rustls), the server certificate from
//! `[tls]`, and client certificates required and checked against the operator CA. A client
//! without a certificate, or with one from another CA, fails the handshake.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// Builds the mutual-TLS server configuration. Errors name the file at fault.
pub fn mutual_tls(config: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
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
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("tls.client_ca: {e}"))?;
    let server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls.server_cert/tls.server_key: {e}"))?;
    Ok(Arc::new(server))
}
