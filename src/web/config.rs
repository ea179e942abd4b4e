//! The web front's own configuration: where it listens, how it reaches the daemon, its
//! client credential. It holds no CA key and no database credential.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::ConfigError;

/// `web.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Where the pages are served (127.0.0.1 behind a reverse proxy, or with `tls_*`).
    pub listen: SocketAddr,
    /// The daemon's admin listener (mutual TLS), e.g. `https://localhost:8444`.
    pub admin_url: String,
    /// The daemon's api listener (the seal-authorisation pages log in like the app does).
    pub api_url: String,
    /// CA bundle that verifies the daemon's server certificate.
    pub daemon_ca: PathBuf,
    /// The web front's client certificate (role `web-front`) and its key (PEM).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// HTTPS for the pages (certificate chain and key, PEM); without them, plain HTTP for a
    /// TLS-terminating proxy in front (cookies are then not marked Secure).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// The channel these pages serve.
    #[serde(default = "default_channel")]
    pub channel: String,
    /// `zh` (default) or `en`.
    #[serde(default = "default_language")]
    pub language: String,
    /// Largest upload, bytes.
    #[serde(default = "default_upload")]
    pub max_upload_bytes: usize,
    /// On SIGTERM, how long requests in flight may run before they are cut, seconds (1 to
    /// 300), like the daemon's `listeners.drain_seconds`.
    #[serde(default = "default_drain_seconds")]
    pub drain_seconds: u64,
}

fn default_drain_seconds() -> u64 {
    20
}

fn default_channel() -> String {
    "default".into()
}

fn default_language() -> String {
    "zh".into()
}

fn default_upload() -> usize {
    2 * 1024 * 1024
}

impl WebConfig {
    /// Reads and validates; relative paths are taken from the file's folder.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError { key: "(file)".into(), problem: format!("{}: {e}", path.display()) })?;
        let mut config: WebConfig = toml::from_str(&text)
            .map_err(|e| ConfigError { key: "(syntax)".into(), problem: e.message().to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut config.daemon_ca, &mut config.client_cert, &mut config.client_key] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for p in [&mut config.tls_cert, &mut config.tls_key].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, problem: &str| Err(ConfigError { key: key.into(), problem: problem.into() });
        for (key, url) in [("admin_url", &self.admin_url), ("api_url", &self.api_url)] {
            if !url.starts_with("https://") || url.ends_with('/') {
                return bad(key, "must be an https:// URL without a trailing slash");
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_cert", "tls_cert and tls_key go together");
        }
        if self.language != "zh" && self.language != "en" {
            return bad("language", "zh or en");
        }
        if !(1024..=4 * 1024 * 1024).contains(&self.max_upload_bytes) {
            return bad("max_upload_bytes", "1 KiB to 4 MiB");
        }
        if !(1..=300).contains(&self.drain_seconds) {
            return bad("drain_seconds", "1 to 300");
        }
        Ok(())
    }
}
