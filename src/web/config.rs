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
    /// The default channel: its pages are at `/` (and at `/c/{channel}/`).
    #[serde(default = "default_channel")]
    pub channel: String,
    /// Further channels served by the same pages at `/c/{name}/` (the handbook's
    /// `channelId`); any other channel in a URL is not found.
    #[serde(default)]
    pub channels: Vec<String>,
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
    /// Connection bounds and the client address behind a proxy (the daemon's `[listeners]`
    /// keys, `proxy_protocol` a yes/no for this one listener).
    #[serde(default)]
    pub listener: WebListener,
}

/// `[listener]` of `web.toml`: the same bounds the daemon's listeners have.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebListener {
    /// See `listeners.header_read_timeout_seconds`.
    #[serde(default = "crate::config::default_header_read_timeout")]
    pub header_read_timeout_seconds: u64,
    /// See `listeners.idle_timeout_seconds`.
    #[serde(default = "crate::config::default_idle_timeout")]
    pub idle_timeout_seconds: u64,
    /// See `listeners.request_timeout_seconds`.
    #[serde(default = "crate::config::default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// See `listeners.max_connection_seconds`.
    #[serde(default = "crate::config::default_max_connection")]
    pub max_connection_seconds: u64,
    /// See `listeners.max_connections`.
    #[serde(default = "crate::config::default_listener_connections")]
    pub max_connections: usize,
    /// See `listeners.max_connections_per_client`.
    #[serde(default = "crate::config::default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// See `listeners.pre_auth_body_bytes` (the pages' own upload limit is `max_upload_bytes`).
    #[serde(default = "crate::config::default_pre_auth_body_bytes")]
    pub pre_auth_body_bytes: usize,
    /// See `listeners.trusted_proxies`.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Whether every connection starts with a PROXY protocol header from a trusted proxy.
    #[serde(default)]
    pub proxy_protocol: bool,
}

impl Default for WebListener {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|e| unreachable!("every key has a default: {e}"))
    }
}

impl WebListener {
    /// The serving bounds.
    pub fn bounds(&self) -> crate::api::accept::Bounds {
        use std::time::Duration;
        crate::api::accept::Bounds {
            header_read: Duration::from_secs(self.header_read_timeout_seconds),
            idle: Duration::from_secs(self.idle_timeout_seconds),
            request: Duration::from_secs(self.request_timeout_seconds),
            lifetime: Duration::from_secs(self.max_connection_seconds),
            max_connections: self.max_connections,
            max_per_client: self.max_connections_per_client,
            pre_auth_body: self.pre_auth_body_bytes,
            trusted: crate::api::client_addr::TrustedProxies::new(&self.trusted_proxies),
            proxy_protocol: self.proxy_protocol,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        crate::config::validate_bounds(
            "listener",
            self.header_read_timeout_seconds,
            self.idle_timeout_seconds,
            self.request_timeout_seconds,
            self.max_connection_seconds,
            self.max_connections,
            self.max_connections_per_client,
            self.pre_auth_body_bytes,
            &self.trusted_proxies,
        )?;
        if self.proxy_protocol && self.trusted_proxies.is_empty() {
            return Err(ConfigError {
                key: "listener.proxy_protocol".into(),
                problem: "needs listener.trusted_proxies: only a trusted proxy may send the header".into(),
            });
        }
        Ok(())
    }
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
    /// Whether these pages serve `channel` (the default one or one of `channels`).
    pub fn serves(&self, channel: &str) -> bool {
        self.channel == channel || self.channels.iter().any(|c| c == channel)
    }

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
        for (i, name) in std::iter::once(&self.channel).chain(&self.channels).enumerate() {
            let ok = !name.is_empty()
                && name.len() <= 32
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            let key = if i == 0 { "channel".to_string() } else { format!("channels[{}]", i - 1) };
            if !ok {
                return bad(&key, "a channel name: 1 to 32 characters of a-z, 0-9 and -");
            }
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
        self.listener.validate()?;
        Ok(())
    }
}
