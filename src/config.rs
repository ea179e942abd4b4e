//! The one typed configuration. Plain data, `deny_unknown_fields` everywhere so a typo is a
//! start-up error naming the key, validated before any port binds or the HSM is touched.
//! Relative paths are resolved against the config file's folder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::hsm::KeyAlgorithm;

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// The dotted key, e.g. `hsm.pin_file`.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError { key: key.into(), problem: problem.into() }
    }
}

/// The whole configuration of a cloudca instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the instance keeps its files (CA certificates, CSRs of an external-root ceremony).
    pub data_dir: PathBuf,
    /// Where certificate profiles and other policy data live.
    #[serde(default = "default_policies_dir")]
    pub policies_dir: PathBuf,
    /// The HSM holding the CA keys.
    pub hsm: HsmConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// Listener addresses, one per trust zone.
    pub listeners: ListenersConfig,
    /// URLs written into certificates (CRL distribution point, OCSP, caIssuers).
    pub publication: PublicationConfig,
    /// The CA hierarchy the ceremony creates and the daemon serves.
    pub ca: CaConfig,
    /// Tuning of the issuance pipeline.
    #[serde(default)]
    pub issuance: IssuanceConfig,
    /// TLS material of the `api` and `admin` listeners.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// CRL and OCSP publication.
    #[serde(default)]
    pub status: StatusConfig,
    /// Cloud keys, mobile API, signing sessions.
    #[serde(default)]
    pub custody: CustodyConfig,
    /// The registration authority: application orders, providers, reminders.
    #[serde(default)]
    pub ra: RaConfig,
    /// Rate limits on what people and platforms can hammer (per daemon, in memory).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Which third-party providers this instance uses.
    #[serde(default)]
    pub providers: ProvidersConfig,
    /// The audit log's anchors outside the database: the pinned certificate, the witness file.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The RFC 3161 timestamp authority on the public listener (`POST /tsa`).
    #[serde(default)]
    pub tsa: TsaConfig,
    /// SHA-256 of the configuration text this was loaded from (hex; empty when parsed from a
    /// string), recorded in the `config.loaded` audit event.
    #[serde(skip)]
    pub source_sha256: String,
    /// The file this was loaded from (None when parsed from a string): where the ceremony
    /// writes the audit certificate's pin.
    #[serde(skip)]
    pub source_path: Option<PathBuf>,
}

/// `[audit]`: what the audit log's integrity rests on besides the database.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Hex SHA-256 of the audit key's certificate. Written by the ceremony and `dev-init`
    /// (`cloudca audit pin` for older instances); a different certificate in the database stops
    /// the daemon and `audit verify`.
    #[serde(default)]
    pub certificate_sha256: Option<String>,
    /// The append-only file every signed checkpoint is copied to before it is stored
    /// (default `<data_dir>/audit-witness.log`). Each daemon needs its own; keep it off the
    /// database's host and out of the database's backups.
    #[serde(default)]
    pub witness_file: Option<PathBuf>,
}

impl Config {
    /// This daemon's audit witness file: `audit.witness_file`, or `<data_dir>/audit-witness.log`.
    pub fn audit_witness(&self) -> PathBuf {
        self.audit.witness_file.clone().unwrap_or_else(|| self.data_dir.join("audit-witness.log"))
    }
}

/// The default TSA policy: under the project's arc `1.3.6.1.4.1.59999` (`.1.1.x` certificate
/// policies, `.1.2.x` timestamp policies; see ARCHITECTURE.md "Timestamp authority").
pub const DEFAULT_TSA_POLICY: &str = "1.3.6.1.4.1.59999.1.2.1";

/// `[tsa]`: what every timestamp token says about how it was made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsaConfig {
    /// The TSA policy OID written into every TSTInfo; a request naming another policy
    /// (`reqPolicy`) is refused with `unacceptedPolicy`.
    pub policy_oid: String,
    /// The accuracy declared in every token, milliseconds (1 to 60000). genTime carries
    /// milliseconds, so this is the host clock's worst error against UTC: keep NTP running.
    pub accuracy_millis: u32,
}

impl Default for TsaConfig {
    fn default() -> Self {
        TsaConfig { policy_oid: DEFAULT_TSA_POLICY.into(), accuracy_millis: 1000 }
    }
}

impl TsaConfig {
    /// The policy OID, parsed (validation has checked it).
    pub fn policy(&self) -> Result<const_oid::ObjectIdentifier, ConfigError> {
        let oid = const_oid::ObjectIdentifier::new(&self.policy_oid)
            .map_err(|e| ConfigError::new("tsa.policy_oid", format!("not a dotted OID: {e}")))?;
        if oid.arcs().count() < 3 {
            return Err(ConfigError::new("tsa.policy_oid", "needs at least three arcs"));
        }
        Ok(oid)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.policy()?;
        if !(1..=60_000).contains(&self.accuracy_millis) {
            return Err(ConfigError::new("tsa.accuracy_millis", "must be 1 to 60000"));
        }
        Ok(())
    }
}

/// SHA-256 over every policy file (name and content, in name order), so the audit log shows
/// when roles or profiles changed between starts. Unreadable files count as their error.
pub fn policies_digest(dir: &Path) -> String {
    use sha2::Digest;
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut hash = sha2::Sha256::new();
    for f in files {
        hash.update(f.strip_prefix(dir).unwrap_or(&f).to_string_lossy().as_bytes());
        hash.update(std::fs::read(&f).unwrap_or_default());
    }
    hex::encode(hash.finalize())
}

/// How revocation status is published. Times are chosen for RFC 5019 and the CA/Browser Forum
/// rules (new CRL at least every 7 days; OCSP responses valid 8 hours to 10 days).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// CRL partitions per issuing CA. 1: one full CRL. N > 1: the CDP of each certificate names
    /// partition `serial mod N`, fixed at issuance; never change it for an issuing CA in use.
    #[serde(default = "one")]
    pub crl_shards: u32,
    /// nextUpdate − thisUpdate of CRLs, in hours (at most 168: 7 days).
    #[serde(default = "default_crl_validity")]
    pub crl_validity_hours: u32,
    /// Scheduled CRL rebuild interval, in minutes.
    #[serde(default = "default_crl_rebuild")]
    pub crl_rebuild_minutes: u32,
    /// Validity of OCSP responses, in hours.
    #[serde(default = "default_ocsp_validity")]
    pub ocsp_validity_hours: u32,
    /// Re-sign an OCSP response when less than this many hours of validity remain.
    #[serde(default = "default_ocsp_refresh")]
    pub ocsp_refresh_hours: u32,
    /// Longest time, in seconds, before a revocation made by any process sharing the database
    /// is in the CRLs and OCSP responses this daemon serves.
    #[serde(default = "default_propagation")]
    pub propagation_seconds: u32,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            crl_shards: one(),
            crl_validity_hours: default_crl_validity(),
            crl_rebuild_minutes: default_crl_rebuild(),
            ocsp_validity_hours: default_ocsp_validity(),
            ocsp_refresh_hours: default_ocsp_refresh(),
            propagation_seconds: default_propagation(),
        }
    }
}

impl StatusConfig {
    /// The CRL partition of a serial: its low 8 bytes modulo the shard count (stable, and
    /// uniform because serials are random).
    pub fn shard_of(&self, serial: &[u8]) -> i64 {
        if self.crl_shards <= 1 {
            return 0;
        }
        let tail = &serial[serial.len().saturating_sub(8)..];
        let value = tail.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        (value % u64::from(self.crl_shards)) as i64
    }
}

fn one() -> u32 {
    1
}
fn one_usize() -> usize {
    1
}
fn default_crl_validity() -> u32 {
    168
}
fn default_crl_rebuild() -> u32 {
    60
}
fn default_ocsp_validity() -> u32 {
    96
}
fn default_ocsp_refresh() -> u32 {
    48
}
fn default_propagation() -> u32 {
    10
}

/// Certificates and keys of the TLS listeners (files, reloadable).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain (PEM) for the `api` and `admin` listeners.
    pub server_cert: PathBuf,
    /// Server private key (PEM, mode 0600).
    pub server_key: PathBuf,
    /// CA whose certificates `admin` clients must present (mutual TLS).
    pub client_ca: PathBuf,
}

/// How to reach the HSM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    /// Path of the vendor's PKCS#11 library.
    pub module: PathBuf,
    /// Label of the token holding the CA keys (slot ids are not stable; labels are).
    pub token_label: String,
    /// File holding the user PIN (mode 0600).
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// Environment variable holding the user PIN.
    #[serde(default)]
    pub pin_env: Option<String>,
    /// Number of sessions (worker threads); 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Environment variables the module reads at load time (e.g. `SOFTHSM2_CONF`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Generate holder keys with CKA_WRAP_WITH_TRUSTED, so the HSM wraps them only under a key
    /// the Security Officer marked CKA_TRUSTED at the ceremony, and check that the KEK is.
    /// Off by default: it needs an HSM whose SO can mark a private KEK trusted, which SoftHSM2
    /// cannot (its SO makes only public objects, stored unencrypted), and validation refuses
    /// it there (`pkcs11-config/README.md`).
    #[serde(default)]
    pub trusted_kek: bool,
    /// OCSP's share of the pool: most OCSP signatures made for requests (nonces, several
    /// certificates, SHA-256 CertIDs) in flight at once. Beyond it OCSP answers without signing,
    /// so an unauthenticated flood delays issuance and cloud signing by at most this many
    /// signatures (security review M2). 1 to 64, and at most `workers` when that is set.
    #[serde(default = "one_usize")]
    pub ocsp_concurrency: usize,
    /// The timestamp authority's share of the pool, as `ocsp_concurrency` is OCSP's: most
    /// timestamp tokens being signed at once. Beyond it `POST /tsa` answers 503 with
    /// `Retry-After`, so a flood of timestamp requests delays issuance and cloud signing by
    /// at most this many signatures. 1 to 64, and at most `workers` when that is set.
    #[serde(default = "one_usize")]
    pub tsa_concurrency: usize,
    /// The PIN taken from `pin_env` at start-up (not a config key).
    #[serde(skip)]
    pub pin_from_env: crate::hsm::PinSecret,
}

impl HsmConfig {
    /// The pool size: configured, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        }
    }
}

/// The database URL: `sqlite://PATH` (embedded default) or `postgres://...`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://DIR/cloudca.db` or `postgres://user@host/db`.
    pub url: String,
    /// File holding the database password, substituted for `${password}` in the URL.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Maximum pool connections.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long a request waits for a database connection before it is answered 503: while
    /// the database is away, requests fail fast instead of piling up.
    #[serde(default = "default_acquire_timeout_seconds")]
    pub acquire_timeout_seconds: u64,
}

fn default_acquire_timeout_seconds() -> u64 {
    5
}

/// One listener per trust zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenersConfig {
    /// Plain HTTP: CRLs, OCSP, CA certificates (anyone).
    pub public: SocketAddr,
    /// TLS: mobile app and relying platforms.
    pub api: SocketAddr,
    /// Mutual TLS: back office and the web front.
    pub admin: SocketAddr,
    /// Plain HTTP: `/live`, `/ready`, `/metrics` (operations).
    pub metrics: SocketAddr,
    /// On SIGTERM, how long in-flight requests may take to finish before the daemon closes
    /// their connections anyway (keep it below systemd's `TimeoutStopSec`).
    #[serde(default = "default_drain_seconds")]
    pub drain_seconds: u64,
    /// A connection must finish its request head (and a TLS handshake) this long after it
    /// opened or started the head, seconds; slow-header clients are closed.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_seconds: u64,
    /// A keep-alive connection with no request under way is closed after this, seconds.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
    /// Reading the body and answering one request must end within this, seconds (else 408
    /// and the connection closes).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// A connection is closed after the request in flight once it is this old, seconds.
    #[serde(default = "default_max_connection")]
    pub max_connection_seconds: u64,
    /// Concurrent connections per listener; more are closed at once.
    #[serde(default = "default_listener_connections")]
    pub max_connections: usize,
    /// Concurrent connections per client address (IPv6 by /64) per listener.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Largest body of a request without a client certificate or bearer token, bytes.
    #[serde(default = "default_pre_auth_body_bytes")]
    pub pre_auth_body_bytes: usize,
    /// Addresses or CIDRs of the reverse proxies whose `X-Forwarded-For` and PROXY protocol
    /// headers name the client; nobody else's are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Listeners (`public`, `api`, `admin`, `metrics`) that expect a PROXY protocol header (v1
    /// or v2) from a trusted proxy on every connection.
    #[serde(default)]
    pub proxy_protocol: Vec<String>,
    /// How long the `admin` and `api` listeners may reuse what they learnt about a client
    /// certificate (relying-platform registration, revoked set) before asking the database
    /// again: 1 to 60 seconds. A disabled platform or a revoked certificate loses access at
    /// its next request after at most this long, even on a connection that stays open.
    #[serde(default = "default_identity_cache_seconds", deserialize_with = "identity_cache_seconds")]
    pub identity_cache_seconds: u64,
}

fn default_identity_cache_seconds() -> u64 {
    5
}

fn identity_cache_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let seconds = u64::deserialize(d)?;
    if !(1..=60).contains(&seconds) {
        return Err(serde::de::Error::custom("listeners.identity_cache_seconds must be 1 to 60"));
    }
    Ok(seconds)
}

fn default_drain_seconds() -> u64 {
    20
}

/// Defaults of the connection bounds, shared with the web front's `[listener]`.
pub(crate) fn default_header_read_timeout() -> u64 {
    10
}
pub(crate) fn default_idle_timeout() -> u64 {
    30
}
pub(crate) fn default_request_timeout() -> u64 {
    60
}
pub(crate) fn default_max_connection() -> u64 {
    600
}
pub(crate) fn default_listener_connections() -> usize {
    4096
}
pub(crate) fn default_max_connections_per_client() -> usize {
    128
}
pub(crate) fn default_pre_auth_body_bytes() -> usize {
    8192
}

/// Checks the connection bounds shared by `[listeners]` and the web front's `[listener]`;
/// `section` prefixes the key named in an error.
#[allow(clippy::too_many_arguments)]
pub(crate) fn validate_bounds(
    section: &str,
    header: u64,
    idle: u64,
    request: u64,
    lifetime: u64,
    total: usize,
    per_client: usize,
    pre_auth: usize,
    trusted: &[String],
) -> Result<(), ConfigError> {
    let key = |k: &str| format!("{section}.{k}");
    let checks: [(&str, bool, &str); 7] = [
        ("header_read_timeout_seconds", (1..=300).contains(&header), "must be 1 to 300"),
        ("idle_timeout_seconds", (1..=3600).contains(&idle), "must be 1 to 3600"),
        ("request_timeout_seconds", (1..=3600).contains(&request), "must be 1 to 3600"),
        ("max_connection_seconds", (1..=86400).contains(&lifetime), "must be 1 to 86400"),
        ("max_connections", (1..=1_000_000).contains(&total), "must be 1 to 1000000"),
        ("max_connections_per_client", (1..=total).contains(&per_client), "must be 1 to max_connections"),
        ("pre_auth_body_bytes", (1024..=64 * 1024).contains(&pre_auth), "must be 1024 to 65536"),
    ];
    if let Some((k, _, problem)) = checks.iter().find(|(_, ok, _)| !ok) {
        return Err(ConfigError::new(key(k), *problem));
    }
    for entry in trusted {
        if crate::api::client_addr::Cidr::parse(entry).is_none() {
            return Err(ConfigError::new(key("trusted_proxies"), format!("{entry:?} is not an IP address or CIDR")));
        }
    }
    Ok(())
}

impl ListenersConfig {
    /// Whether the listener `name` expects a PROXY protocol header.
    pub fn proxy_protocol(&self, name: &str) -> bool {
        self.proxy_protocol.iter().any(|n| n == name)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        validate_bounds(
            "listeners",
            self.header_read_timeout_seconds,
            self.idle_timeout_seconds,
            self.request_timeout_seconds,
            self.max_connection_seconds,
            self.max_connections,
            self.max_connections_per_client,
            self.pre_auth_body_bytes,
            &self.trusted_proxies,
        )?;
        for name in &self.proxy_protocol {
            if !["public", "api", "admin", "metrics"].contains(&name.as_str()) {
                return Err(ConfigError::new("listeners.proxy_protocol", format!("{name:?} is not a listener")));
            }
        }
        if !self.proxy_protocol.is_empty() && self.trusted_proxies.is_empty() {
            return Err(ConfigError::new(
                "listeners.proxy_protocol",
                "needs listeners.trusted_proxies: only a trusted proxy may send the header",
            ));
        }
        Ok(())
    }
}

/// The base URL under which the public listener is reachable from outside.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicationConfig {
    /// e.g. `http://pki.example.cn`: CRLs at `{base}/crl/{ca}.crl`, OCSP at `{base}/ocsp/{ca}`,
    /// CA certificates at `{base}/ca/{ca}.crt`.
    pub base_url: String,
}

impl PublicationConfig {
    /// The CRL distribution point URL of a CA's full CRL.
    pub fn crl_url(&self, ca: &str) -> String {
        format!("{}/crl/{ca}.crl", self.base_url.trim_end_matches('/'))
    }
    /// The CRL distribution point URL of one partition (`shards` > 1) or of the full CRL.
    pub fn crl_partition_url(&self, ca: &str, shard: i64, shards: u32) -> String {
        if shards <= 1 {
            self.crl_url(ca)
        } else {
            format!("{}/crl/{ca}-{shard}.crl", self.base_url.trim_end_matches('/'))
        }
    }
    /// The OCSP responder URL of a CA.
    pub fn ocsp_url(&self, ca: &str) -> String {
        format!("{}/ocsp/{ca}", self.base_url.trim_end_matches('/'))
    }
    /// The caIssuers URL of a CA certificate.
    pub fn ca_issuers_url(&self, ca: &str) -> String {
        format!("{}/ca/{ca}.crt", self.base_url.trim_end_matches('/'))
    }
}

/// The CA hierarchy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// Algorithm of every CA key.
    #[serde(default)]
    pub key_algorithm: KeyAlgorithm,
    /// Organisation name written into CA subjects.
    pub organization: String,
    /// The root.
    pub root: RootConfig,
    /// Issuing CAs (the shipped profiles expect `org` and `personal`).
    pub issuing: Vec<IssuingConfig>,
    /// Validity of delegated OCSP responder certificates.
    #[serde(default = "default_ocsp_validity_days")]
    pub ocsp_responder_validity_days: u32,
}

/// Whether we hold the root key or an external root signs our issuing CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootMode {
    /// The ceremony generates a root key in the HSM and self-signs it.
    SelfSigned,
    /// The ceremony writes CSRs for the issuing CAs; `ceremony import` loads their certificates.
    External,
}

/// The root CA.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootConfig {
    /// `self-signed` or `external`.
    pub mode: RootMode,
    /// Common name of the root (self-signed mode).
    #[serde(default = "default_root_cn")]
    pub common_name: String,
    /// Validity of the root certificate.
    #[serde(default = "default_root_days")]
    pub validity_days: u32,
}

/// One issuing CA.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuingConfig {
    /// Short name used in URLs, labels and the CLI (`org`, `personal`).
    pub name: String,
    /// Common name of the issuing CA.
    pub common_name: String,
    /// Validity of the issuing CA certificate.
    #[serde(default = "default_issuing_days")]
    pub validity_days: u32,
}

/// Issuance pipeline tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuanceConfig {
    /// Most database writes committed in one transaction (group commit).
    #[serde(default = "default_batch")]
    pub max_batch: usize,
}

impl Default for IssuanceConfig {
    fn default() -> Self {
        IssuanceConfig { max_batch: default_batch() }
    }
}

/// Upper bound of `custody.max_pdf_bytes` (the api listener's body limit for opening a signing
/// session is sized from it).
pub const MAX_PDF_BYTES: usize = 32 * 1024 * 1024;

/// Cloud keys, the mobile API and signing sessions. Defaults follow the issue's minimums and
/// BankID/Smart-ID practice (short scan windows, minutes-long authorisations).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustodyConfig {
    /// Wrong PINs in a row that lock a credential (then only re-proving identity unlocks it).
    pub max_pin_failures: i64,
    /// Lifetime of a mobile session token, minutes.
    pub mobile_session_minutes: i64,
    /// Lifetime of an SMS code, seconds.
    pub sms_code_seconds: i64,
    /// Tries per SMS code.
    pub sms_code_attempts: i64,
    /// Fewest seconds between two codes to one phone.
    pub sms_min_interval_seconds: i64,
    /// Most codes to one phone per hour (face-check links texted to the phone count too).
    pub sms_per_hour: i64,
    /// Country calling codes (digits, no `+`) whose phones may be texted at all; the default
    /// is mainland China only. Every other number is refused before any SMS is paid for, so a
    /// client cannot run up international SMS charges (SMS pumping).
    pub sms_country_codes: Vec<String>,
    /// Most SMS of every kind (codes, face-check links, notices), to all phones together, per
    /// clock hour, counted in the database across all daemons. When it is spent no SMS goes out
    /// until the next hour starts (a circuit breaker against pumping and bombing at scale).
    pub sms_total_per_hour: i64,
    /// How long a new signing session's QR code can be scanned, seconds.
    pub scan_window_seconds: i64,
    /// How long a signing session lives in total, from opening to approval, seconds.
    pub session_seconds: i64,
    /// Lifetime of a signing authorisation, seconds.
    pub authorization_seconds: i64,
    /// How long a signing session that ended (signed, refused, expired) is kept for its
    /// platform to collect the result, seconds; then it is deleted with its PDF.
    pub finished_session_seconds: i64,
    /// Largest number of hashes in one signing session.
    pub max_hashes: usize,
    /// Largest PDF a platform may send for a PAdES signing session, bytes (the api listener
    /// accepts the base64 of this much in that request).
    pub max_pdf_bytes: usize,
    /// Days an approval waits for its holder to enrol before it expires.
    pub approval_days: i64,
    /// How long an identity proof (face check, bank card with its code) stays usable, seconds.
    pub proof_seconds: i64,
    /// Identity proofs that may be started for one credential or approval per 24 hours,
    /// counted in the database (so across daemons): each one costs a provider check.
    pub proofs_per_day: i64,
}

impl Default for CustodyConfig {
    fn default() -> Self {
        CustodyConfig {
            max_pin_failures: 5,
            mobile_session_minutes: 15,
            sms_code_seconds: 300,
            sms_code_attempts: 5,
            sms_min_interval_seconds: 30,
            sms_per_hour: 10,
            sms_country_codes: vec!["86".into()],
            sms_total_per_hour: 1000,
            scan_window_seconds: 60,
            session_seconds: 300,
            authorization_seconds: 120,
            finished_session_seconds: 3600,
            max_hashes: 1000,
            max_pdf_bytes: 10 * 1024 * 1024,
            approval_days: 30,
            proof_seconds: 600,
            proofs_per_day: 5,
        }
    }
}

/// Third-party providers. Only sandboxes can run on this machine; a provider left unset is
/// absent, and every check that needs it fails closed (identity proofs, the RA's checks).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    /// `production` (the default when the key is absent) or `sandbox` (written by `dev-init`).
    /// A production daemon refuses to start while any provider is a sandbox, and only a
    /// sandbox instance mounts the sandbox pay and face pages.
    pub mode: ProvidersMode,
    /// Identity checks (face liveness, bank card four elements, carrier real name,
    /// micro-deposits) for the RA and for the identity proof before a PIN is set.
    pub identity: ProviderChoice,
}

/// Whether this instance may run on sandbox providers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvidersMode {
    /// Real providers only.
    #[default]
    Production,
    /// Development and tests: sandboxes that behave like the real services.
    Sandbox,
}

impl ProvidersConfig {
    /// Whether the daemon may start with these providers. SMS, payment, invoice and e-mail
    /// have only their sandboxes in this build (the real services cannot be reached from
    /// here), so production mode refuses until a real adapter is built in; an identity
    /// sandbox passes checks a real provider would fail, so it is refused by name.
    pub fn check_mode(&self) -> Result<(), ConfigError> {
        if self.mode == ProvidersMode::Sandbox {
            return Ok(());
        }
        if self.identity == ProviderChoice::Sandbox {
            return Err(ConfigError::new(
                "providers.identity",
                "the sandbox passes identity checks a real provider would fail; production mode needs a real one",
            ));
        }
        Err(ConfigError::new(
            "providers.mode",
            "production mode needs real SMS, payment, invoice and e-mail providers and this build has only their \
             sandboxes; set providers.mode = \"sandbox\" for development and tests",
        ))
    }
}

/// Which implementation of a provider to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderChoice {
    /// None configured: every call fails closed as "unavailable".
    #[default]
    None,
    /// The sandbox, which behaves like the real service for development and tests.
    Sandbox,
}

/// The registration authority. Providers are the sandbox ones here (the real services cannot
/// run on this machine); the keys below are those a production provider needs as well.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaConfig {
    /// Base URL of the `api` listener as people's phones reach it: payment QR codes and face
    /// check links point under it (the sandbox pay and face pages live there).
    pub public_url: String,
    /// Base URL of the web front as people's phones reach it: the link texted to a legal
    /// representative to read and sign the authorisation letter points under it
    /// (`/letter/...`). Unset: the online authorisation is not offered (the stamped letter is).
    pub front_url: Option<String>,
    /// Deadline of one provider call (identity, payment, invoice, e-mail, SMS), milliseconds.
    pub provider_timeout_ms: u64,
    /// Largest material upload, bytes (at most 4 MiB).
    pub max_material_bytes: usize,
    /// Most bytes one order may upload in total, replaced uploads included, so an applicant
    /// cannot fill the database by uploading again and again.
    pub order_upload_bytes: u64,
    /// Most uploads of one kind of material per order, the first included (so a material can
    /// be replaced this many times less one).
    pub uploads_per_material: i64,
    /// File with the payment provider's webhook secret (created with a random secret on
    /// first start when missing, as the sandbox provider's merchant key).
    pub payment_secret_file: Option<PathBuf>,
    /// How long the sandbox face check takes before it passes, seconds.
    pub face_seconds: u64,
    /// Lifetime of an order-query session, minutes.
    pub query_minutes: i64,
    /// Days before expiry when reminders go out.
    pub reminder_days: Vec<i64>,
    /// Seconds between passes of the background task (completions, reminders).
    pub task_seconds: u64,
    /// An open order nobody has touched for this many days is cancelled by the background
    /// task, so an abandoned (or hostile) application does not hold its subject's one open
    /// order per channel for ever.
    pub open_order_days: i64,
}

impl Default for RaConfig {
    fn default() -> Self {
        RaConfig {
            public_url: "https://127.0.0.1:8443".into(),
            front_url: None,
            provider_timeout_ms: 5000,
            max_material_bytes: 2 * 1024 * 1024,
            order_upload_bytes: 20 * 1024 * 1024,
            uploads_per_material: 10,
            payment_secret_file: None,
            face_seconds: 5,
            query_minutes: 30,
            reminder_days: vec![90, 30, 7],
            task_seconds: 10,
            open_order_days: 30,
        }
    }
}

/// A rate: `count` requests per `seconds`, as a burst of `count` and then one every
/// `seconds / count`. `count = 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Requests per period (0: unlimited).
    pub count: u32,
    /// The period, seconds.
    pub seconds: u32,
}

impl Rate {
    const fn new(count: u32, seconds: u32) -> Rate {
        Rate { count, seconds }
    }
}

/// Rate limits (`crate::ratelimit`), answered with 429 and `Retry-After`. They live in each
/// daemon's memory, so with N daemons a client may get up to N times these; the exact,
/// shared counters stay in the database (`custody.max_pin_failures`, `custody.sms_per_hour`,
/// `custody.sms_min_interval_seconds`). "ip" is the client's address (an IPv6 client's /64),
/// or for the web front the browser's address it forwards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// SMS codes asked for from one address: app login, unlock and admin codes, RA order
    /// codes, order-query codes (SMS pumping from one host).
    pub sms_per_ip: Rate,
    /// Guesses at a secret (SMS code, PIN) per phone, credential, order or queried subject,
    /// counted whether right or wrong.
    pub attempts_per_credential: Rate,
    /// Guesses at a secret from one address.
    pub attempts_per_ip: Rate,
    /// Signing sessions one relying platform opens.
    pub signing_sessions_per_platform: Rate,
    /// Changes to one application order (steps with their provider calls, codes, uploads...).
    pub ra_writes_per_order: Rate,
    /// New application orders from one address.
    pub ra_orders_per_ip: Rate,
    /// Payment webhooks and the sandbox providers' pages from one address.
    pub callbacks_per_ip: Rate,
    /// OCSP requests from one address. Off by default (relying parties behind one proxy share
    /// an address, and OCSP answers are cheap); when on, each request costs one hash lookup.
    pub ocsp_per_ip: Rate,
    /// Timestamp requests (`POST /tsa`) from one address. On by default: every granted request
    /// costs an HSM signature.
    pub tsa_per_ip: Rate,
    /// PAdES signing sessions (a PDF of up to `custody.max_pdf_bytes` parsed and kept with the
    /// session) one relying platform opens, besides `signing_sessions_per_platform`: the bound
    /// on the parsing work and the database growth one platform causes (attacker review H2).
    pub pdf_sessions_per_platform: Rate,
    /// Most keys each limit remembers: its memory bound (about 50 bytes a key).
    pub max_keys: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            sms_per_ip: Rate::new(30, 3600),
            attempts_per_credential: Rate::new(10, 60),
            attempts_per_ip: Rate::new(60, 60),
            signing_sessions_per_platform: Rate::new(600, 60),
            ra_writes_per_order: Rate::new(30, 60),
            ra_orders_per_ip: Rate::new(60, 3600),
            callbacks_per_ip: Rate::new(1200, 60),
            ocsp_per_ip: Rate::new(0, 1),
            tsa_per_ip: Rate::new(300, 60),
            pdf_sessions_per_platform: Rate::new(30, 60),
            max_keys: 100_000,
        }
    }
}

fn default_policies_dir() -> PathBuf {
    PathBuf::from("policies")
}
fn default_max_connections() -> u32 {
    8
}
fn default_ocsp_validity_days() -> u32 {
    365
}
fn default_root_cn() -> String {
    "cloudca Root CA".into()
}
fn default_root_days() -> u32 {
    7300
}
fn default_issuing_days() -> u32 {
    3650
}
fn default_batch() -> usize {
    256
}

impl Config {
    /// Reads, resolves and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("--config", format!("cannot read {}: {e}", path.display())))?;
        let mut config = Config::parse(&text)?;
        config.source_sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(text.as_bytes()))
        };
        config.source_path = Some(path.to_path_buf());
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (through the `config` crate, which names the key at fault).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let source = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|e| ConfigError::new("config", e.to_string()))?;
        source.try_deserialize().map_err(|e| {
            let text = e.to_string();
            ConfigError::new(key_of(&text), text)
        })
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.data_dir);
        abs(&mut self.policies_dir);
        if let Some(p) = self.audit.witness_file.as_mut() {
            abs(p)
        }
        if let Some(p) = self.hsm.pin_file.as_mut() {
            abs(p)
        }
        if let Some(p) = self.database.password_file.as_mut() {
            abs(p)
        }
        if let Some(tls) = self.tls.as_mut() {
            abs(&mut tls.server_cert);
            abs(&mut tls.server_key);
            abs(&mut tls.client_ca);
        }
    }

    /// Checks what serde cannot: exactly one PIN source, known issuing CAs, sane numbers.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.hsm.pin_file, &self.hsm.pin_env) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new("hsm.pin_file", "set hsm.pin_file or hsm.pin_env, not both"))
            }
            (None, None) => {
                return Err(ConfigError::new("hsm.pin_file", "one of hsm.pin_file or hsm.pin_env is required"))
            }
            _ => {}
        }
        if let Some(pin) = &self.audit.certificate_sha256 {
            let hex = crate::audit::pin::normalise(pin);
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::new(
                    "audit.certificate_sha256",
                    "must be a hex SHA-256 (64 digits, colons allowed)",
                ));
            }
        }
        self.validate_custody()?;
        self.validate_ra()?;
        self.validate_limits()?;
        let softhsm = self.hsm.module.file_name().is_some_and(|n| n.to_string_lossy().contains("softhsm"));
        if self.hsm.trusted_kek && softhsm {
            return Err(ConfigError::new(
                "hsm.trusted_kek",
                "SoftHSM2 cannot mark a private KEK trusted (its SO makes only public objects, stored unencrypted); leave it false",
            ));
        }
        for (key, cap) in
            [("hsm.ocsp_concurrency", self.hsm.ocsp_concurrency), ("hsm.tsa_concurrency", self.hsm.tsa_concurrency)]
        {
            if cap == 0 || cap > 64 || (self.hsm.workers > 0 && cap > self.hsm.workers) {
                return Err(ConfigError::new(key, "must be 1 to 64, and at most hsm.workers"));
            }
        }
        self.tsa.validate()?;
        if self.hsm.token_label.is_empty() || self.hsm.token_label.len() > 32 {
            return Err(ConfigError::new("hsm.token_label", "must be 1 to 32 characters (PKCS#11 limit)"));
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres")) {
            return Err(ConfigError::new("database.url", "must start with sqlite: or postgres://"));
        }
        if !self.publication.base_url.starts_with("http://") {
            return Err(ConfigError::new(
                "publication.base_url",
                "must be an http:// URL (relying parties fetch CRLs and OCSP over plain HTTP, RFC 5280 §4.2.1.13)",
            ));
        }
        if !self.publication.base_url.is_ascii() {
            // Certificates and CRLs carry these URLs as IA5String (RFC 5280 §4.2.1.6).
            return Err(ConfigError::new("publication.base_url", "must be ASCII (punycode and percent-encoding)"));
        }
        if !(1..=120).contains(&self.database.acquire_timeout_seconds) {
            return Err(ConfigError::new("database.acquire_timeout_seconds", "must be 1 to 120"));
        }
        if !(1..=300).contains(&self.listeners.drain_seconds) {
            return Err(ConfigError::new("listeners.drain_seconds", "must be 1 to 300"));
        }
        self.listeners.validate()?;
        self.validate_ca()?;
        let st = &self.status;
        if st.crl_shards == 0 || st.crl_shards > 4096 {
            return Err(ConfigError::new("status.crl_shards", "must be 1 to 4096"));
        }
        if st.crl_validity_hours == 0 || st.crl_validity_hours > 168 {
            return Err(ConfigError::new("status.crl_validity_hours", "must be 1 to 168 (7 days)"));
        }
        if st.crl_rebuild_minutes == 0
            || u64::from(st.crl_rebuild_minutes) * 60 >= u64::from(st.crl_validity_hours) * 3600 / 2
        {
            return Err(ConfigError::new(
                "status.crl_rebuild_minutes",
                "must be positive and under half of crl_validity_hours",
            ));
        }
        if st.ocsp_validity_hours < 8 || st.ocsp_validity_hours > 240 {
            return Err(ConfigError::new("status.ocsp_validity_hours", "must be 8 to 240 (RFC 5019 practice)"));
        }
        if st.ocsp_refresh_hours == 0 || st.ocsp_refresh_hours >= st.ocsp_validity_hours {
            return Err(ConfigError::new(
                "status.ocsp_refresh_hours",
                "must be positive and below ocsp_validity_hours",
            ));
        }
        if st.propagation_seconds < 2 || st.propagation_seconds > 3600 {
            return Err(ConfigError::new("status.propagation_seconds", "must be 2 to 3600"));
        }
        if self.issuance.max_batch == 0 {
            return Err(ConfigError::new("issuance.max_batch", "must be at least 1"));
        }
        Ok(())
    }

    fn validate_custody(&self) -> Result<(), ConfigError> {
        let c = &self.custody;
        let codes_ok = !c.sms_country_codes.is_empty()
            && c.sms_country_codes.iter().all(|code| {
                (1..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0')
            });
        let retention = (c.authorization_seconds.max(60)..=604_800).contains(&c.finished_session_seconds);
        let checks: [(&str, bool, &str); 12] = [
            ("custody.sms_country_codes", codes_ok, "a non-empty list of country calling codes such as [\"86\"]"),
            ("custody.sms_total_per_hour", (1..=1_000_000).contains(&c.sms_total_per_hour), "1 to 1000000"),
            ("custody.max_pin_failures", (3..=10).contains(&c.max_pin_failures), "3 to 10"),
            ("custody.approval_days", (1..=365).contains(&c.approval_days), "1 to 365"),
            ("custody.proof_seconds", (60..=3600).contains(&c.proof_seconds), "60 to 3600"),
            ("custody.proofs_per_day", (1..=50).contains(&c.proofs_per_day), "1 to 50"),
            ("custody.scan_window_seconds", (10..=600).contains(&c.scan_window_seconds), "10 to 600"),
            ("custody.authorization_seconds", (10..=600).contains(&c.authorization_seconds), "10 to 600"),
            ("custody.session_seconds", c.session_seconds >= c.scan_window_seconds, "at least scan_window_seconds"),
            ("custody.finished_session_seconds", retention, "60 to 604800, at least authorization_seconds"),
            ("custody.max_hashes", (1..=10_000).contains(&c.max_hashes), "1 to 10000"),
            ("custody.max_pdf_bytes", (1024..=MAX_PDF_BYTES).contains(&c.max_pdf_bytes), "1024 to 33554432 (32 MiB)"),
        ];
        for (key, ok, range) in checks {
            if !ok {
                return Err(ConfigError::new(key, format!("must be {range}")));
            }
        }
        Ok(())
    }

    fn validate_ra(&self) -> Result<(), ConfigError> {
        let r = &self.ra;
        let url =
            |u: &str| (u.starts_with("https://") || u.starts_with("http://")) && !u.ends_with('/') && u.is_ascii();
        let url_ok = url(&r.public_url);
        let front_ok = r.front_url.as_deref().is_none_or(url);
        let quota_ok = (r.max_material_bytes as u64..=1024 * 1024 * 1024).contains(&r.order_upload_bytes);
        let checks: [(&str, bool, &str); 10] = [
            ("ra.order_upload_bytes", quota_ok, "at least ra.max_material_bytes and at most 1 GiB"),
            ("ra.uploads_per_material", (1..=100).contains(&r.uploads_per_material), "1 to 100"),
            ("ra.public_url", url_ok, "an http(s) URL without a trailing slash"),
            ("ra.front_url", front_ok, "an http(s) URL without a trailing slash"),
            ("ra.provider_timeout_ms", (100..=60_000).contains(&r.provider_timeout_ms), "100 to 60000"),
            ("ra.max_material_bytes", (1024..=4 * 1024 * 1024).contains(&r.max_material_bytes), "1 KiB to 4 MiB"),
            ("ra.query_minutes", (1..=1440).contains(&r.query_minutes), "1 to 1440"),
            ("ra.reminder_days", r.reminder_days.iter().all(|d| (1..=365).contains(d)), "days from 1 to 365"),
            ("ra.task_seconds", (1..=3600).contains(&r.task_seconds), "1 to 3600"),
            ("ra.open_order_days", (1..=365).contains(&r.open_order_days), "1 to 365"),
        ];
        for (key, ok, range) in checks {
            if !ok {
                return Err(ConfigError::new(key, format!("must be {range}")));
            }
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let rates = [
            ("sms_per_ip", l.sms_per_ip),
            ("attempts_per_credential", l.attempts_per_credential),
            ("attempts_per_ip", l.attempts_per_ip),
            ("signing_sessions_per_platform", l.signing_sessions_per_platform),
            ("ra_writes_per_order", l.ra_writes_per_order),
            ("ra_orders_per_ip", l.ra_orders_per_ip),
            ("callbacks_per_ip", l.callbacks_per_ip),
            ("ocsp_per_ip", l.ocsp_per_ip),
            ("tsa_per_ip", l.tsa_per_ip),
            ("pdf_sessions_per_platform", l.pdf_sessions_per_platform),
        ];
        for (name, rate) in rates {
            if !(1..=86_400).contains(&rate.seconds) {
                return Err(ConfigError::new(format!("limits.{name}.seconds"), "must be 1 to 86400"));
            }
            if rate.count > 1_000_000 {
                return Err(ConfigError::new(format!("limits.{name}.count"), "must be 0 (off) to 1000000"));
            }
        }
        if !(1_000..=10_000_000).contains(&l.max_keys) {
            return Err(ConfigError::new("limits.max_keys", "must be 1000 to 10000000"));
        }
        Ok(())
    }

    fn validate_ca(&self) -> Result<(), ConfigError> {
        if self.ca.issuing.is_empty() {
            return Err(ConfigError::new("ca.issuing", "at least one issuing CA is required"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, ca) in self.ca.issuing.iter().enumerate() {
            let valid = !ca.name.is_empty()
                && ca.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            // The hierarchy's other authorities go by these names (attacker review: an issuing
            // CA named like one collides with its key label and stops a ceremony half-way).
            if !valid || RESERVED_AUTHORITY_NAMES.contains(&ca.name.as_str()) {
                return Err(ConfigError::new(
                    format!("ca.issuing[{i}].name"),
                    format!("use lowercase letters, digits and '-', and none of {RESERVED_AUTHORITY_NAMES:?}"),
                ));
            }
            if !seen.insert(&ca.name) {
                return Err(ConfigError::new(
                    format!("ca.issuing[{i}].name"),
                    format!("duplicate issuing CA {:?}", ca.name),
                ));
            }
        }
        if self.ca.root.validity_days == 0 {
            return Err(ConfigError::new("ca.root.validity_days", "must be positive"));
        }
        Ok(())
    }

    /// Sets the module's environment variables and moves a `pin_env` PIN out of the
    /// environment. Call before the module loads and before any other thread starts (`main`
    /// does it first thing).
    pub fn apply_hsm_env(&mut self) {
        for (k, v) in &self.hsm.env {
            std::env::set_var(k, v);
        }
        if let Some(var) = &self.hsm.pin_env {
            if self.hsm.pin_from_env.0.is_none() {
                self.hsm.pin_from_env = crate::hsm::PinSecret::take_from_env(var);
            }
        }
    }
}

/// Pulls the key name out of a serde/config error message, so the first word names the key.
fn key_of(message: &str) -> String {
    if let Some(start) = message.find('`') {
        if let Some(len) = message[start + 1..].find('`') {
            return message[start + 1..start + 1 + len].to_string();
        }
    }
    if let Some(idx) = message.rfind(" for key `") {
        return message[idx + 10..].trim_end_matches('`').to_string();
    }
    "config".into()
}

/// Names of the hierarchy's authorities that are not issuing CAs.
const RESERVED_AUTHORITY_NAMES: [&str; 4] = ["root", "audit", "operators", "tsa"];

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
data_dir = "data"
[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "cloudca"
pin_env = "CLOUDCA_PIN"
[database]
url = "sqlite://data/cloudca.db"
[listeners]
public = "127.0.0.1:8080"
api = "127.0.0.1:8443"
admin = "127.0.0.1:9443"
metrics = "127.0.0.1:9100"
[publication]
base_url = "http://127.0.0.1:8080"
[ca]
organization = "Example"
root = { mode = "self-signed" }
issuing = [ { name = "org", common_name = "Org CA" } ]
"#;

    #[test]
    fn a_minimal_config_gets_safe_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        c.validate().unwrap();
        assert_eq!(c.ca.key_algorithm, KeyAlgorithm::EcdsaP256);
        assert_eq!(c.ca.issuing[0].validity_days, 3650);
        assert!(c.hsm.worker_count() >= 1);
    }

    #[test]
    fn a_non_ascii_publication_url_is_refused_by_name() {
        let text = MINIMAL.replace("http://127.0.0.1:8080", "http://证书.example");
        assert_eq!(Config::parse(&text).unwrap().validate().unwrap_err().key, "publication.base_url");
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let text = MINIMAL.replace("token_label", "tokn_label = \"x\"\ntoken_label");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.to_string().contains("tokn_label"), "{err}");
    }

    #[test]
    fn an_inline_pin_is_not_a_config_key() {
        let text = MINIMAL.replace("pin_env = \"CLOUDCA_PIN\"", "pin = \"1234\"");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.to_string().contains("pin"), "{err}");
    }

    #[test]
    fn limits_default_and_name_the_bad_key() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.limits.ocsp_per_ip.count, 0, "OCSP is unlimited by default");
        let text = format!("{MINIMAL}[limits]\nocsp_per_ip = {{ count = 50, seconds = 1 }}\n");
        assert_eq!(Config::parse(&text).unwrap().limits.ocsp_per_ip, Rate::new(50, 1));
        let text = format!("{MINIMAL}[limits]\nsms_per_ip = {{ count = 5, seconds = 0 }}\n");
        assert_eq!(Config::parse(&text).unwrap().validate().unwrap_err().key, "limits.sms_per_ip.seconds");
        let text = format!("{MINIMAL}[limits]\nsms_per_ip = {{ count = 5, second = 1 }}\n");
        assert!(Config::parse(&text).unwrap_err().to_string().contains("second"));
    }

    #[test]
    fn sms_and_upload_bounds_default_safe_and_name_the_bad_key() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.custody.sms_country_codes, vec!["86".to_string()], "mainland numbers only by default");
        assert!(c.ra.order_upload_bytes >= c.ra.max_material_bytes as u64);
        let bad = [
            ("[custody]\nsms_country_codes = []\n", "custody.sms_country_codes"),
            ("[custody]\nsms_country_codes = [\"+44\"]\n", "custody.sms_country_codes"),
            ("[custody]\nsms_total_per_hour = 0\n", "custody.sms_total_per_hour"),
            ("[custody]\nfinished_session_seconds = 30\n", "custody.finished_session_seconds"),
            (
                "[custody]\nauthorization_seconds = 600\nfinished_session_seconds = 300\n",
                "custody.finished_session_seconds",
            ),
            ("[ra]\norder_upload_bytes = 1024\n", "ra.order_upload_bytes"),
            ("[ra]\nuploads_per_material = 0\n", "ra.uploads_per_material"),
        ];
        for (section, key) in bad {
            let text = format!("{MINIMAL}{section}");
            assert_eq!(Config::parse(&text).unwrap().validate().unwrap_err().key, key);
        }
        let text = format!("{MINIMAL}[custody]\nsms_country_codes = [\"86\", \"852\"]\n");
        Config::parse(&text).unwrap().validate().unwrap();
    }

    #[test]
    fn ocsp_concurrency_defaults_to_one_and_is_bounded_by_the_pool() {
        assert_eq!(Config::parse(MINIMAL).unwrap().hsm.ocsp_concurrency, 1);
        for bad in ["ocsp_concurrency = 0", "ocsp_concurrency = 65", "workers = 2\nocsp_concurrency = 3"] {
            let text = MINIMAL.replace("pin_env", &format!("{bad}\npin_env"));
            assert_eq!(Config::parse(&text).unwrap().validate().unwrap_err().key, "hsm.ocsp_concurrency", "{bad}");
        }
        let text = MINIMAL.replace("pin_env", "workers = 4\nocsp_concurrency = 2\npin_env");
        Config::parse(&text).unwrap().validate().unwrap();
    }

    #[test]
    fn an_issuing_ca_cannot_take_the_name_of_another_authority() {
        for name in RESERVED_AUTHORITY_NAMES {
            let text = MINIMAL.replace("name = \"org\"", &format!("name = \"{name}\""));
            assert_eq!(Config::parse(&text).unwrap().validate().unwrap_err().key, "ca.issuing[0].name", "{name}");
        }
    }

    #[test]
    fn tsa_settings_default_safe_and_name_the_bad_key() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.hsm.tsa_concurrency, 1);
        assert_eq!(c.tsa.policy().unwrap().to_string(), DEFAULT_TSA_POLICY);
        assert!(c.limits.tsa_per_ip.count > 0, "the TSA signs per request: limited by default");
        let bad = [
            ("[tsa]\npolicy_oid = \"not an oid\"\n", "tsa.policy_oid"),
            ("[tsa]\npolicy_oid = \"1.2\"\n", "tsa.policy_oid"),
            ("[tsa]\naccuracy_millis = 0\n", "tsa.accuracy_millis"),
            ("[tsa]\naccuracy_millis = 60001\n", "tsa.accuracy_millis"),
            ("[limits]\ntsa_per_ip = { count = 5, seconds = 0 }\n", "limits.tsa_per_ip.seconds"),
        ];
        for (section, key) in bad {
            let text = format!("{MINIMAL}{section}");
            assert_eq!(Config::parse(&text).unwrap().validate().unwrap_err().key, key, "{section}");
        }
        for bad in ["tsa_concurrency = 0", "tsa_concurrency = 65", "workers = 2\ntsa_concurrency = 3"] {
            let text = MINIMAL.replace("pin_env", &format!("{bad}\npin_env"));
            assert_eq!(Config::parse(&text).unwrap().validate().unwrap_err().key, "hsm.tsa_concurrency", "{bad}");
        }
        let text = format!("{MINIMAL}[tsa]\npolicy_oid = \"1.2.156.1.2.3\"\naccuracy_millis = 500\n");
        Config::parse(&text).unwrap().validate().unwrap();
        assert!(Config::parse(&format!("{MINIMAL}[tsa]\npolicyoid = \"1.2.3\"\n"))
            .unwrap_err()
            .to_string()
            .contains("policyoid"));
    }

    #[test]
    fn two_pin_sources_are_refused() {
        let text = MINIMAL.replace("pin_env", "pin_file = \"x\"\npin_env");
        let err = Config::parse(&text).unwrap().validate().unwrap_err();
        assert_eq!(err.key, "hsm.pin_file");
    }
}
