//! A complete development instance in one folder: SoftHSM2 token, PIN files, SQLite database,
//! `cloudca.toml`, the CA hierarchy (through the real ceremony), TLS certificates for the
//! listeners and operator client certificates. Tests use the same code through
//! `tests/common`, so what developers run is what the suite checks.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use rcgen::{CertificateParams, DnType, KeyPair};

use crate::clock::SystemClock;
use crate::config::Config;
use crate::hsm::KeyAlgorithm;
use crate::operators::Operators;
use crate::roles::Role;
use crate::store::Store;

/// The shipped SoftHSM2 configuration template.
const SOFTHSM2_TEMPLATE: &str = include_str!("../pkcs11-config/softhsm2.conf.template");
/// Shipped policies, copied into the instance so it is self-contained.
const POLICIES: &[(&str, &str)] = &[
    ("profiles/org.toml", include_str!("../policies/profiles/org.toml")),
    ("profiles/personal.toml", include_str!("../policies/profiles/personal.toml")),
    ("roles.toml", include_str!("../policies/roles.toml")),
    ("channels/default.toml", include_str!("../policies/channels/default.toml")),
    ("channels/bidding.toml", include_str!("../policies/channels/bidding.toml")),
];
/// Where Debian installs the SoftHSM2 module.
pub const SOFTHSM2_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Choices a test or a developer may change.
#[derive(Debug, Clone)]
pub struct Options {
    /// Database URL; None means SQLite in the folder.
    pub database_url: Option<String>,
    /// HSM sessions; 0 means one per core.
    pub hsm_workers: usize,
    /// CA key algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// Token label.
    pub token_label: String,
    /// Listener ports (public, api, admin, metrics, web front); None picks free ones at random.
    /// A test harness running many instances at once reserves its own so no two collide.
    pub ports: Option<[u16; 5]>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            database_url: None,
            hsm_workers: 0,
            key_algorithm: KeyAlgorithm::EcdsaP256,
            token_label: "cloudca-dev".into(),
            ports: None,
        }
    }
}

/// What was created.
#[derive(Debug, Clone)]
pub struct DevInstance {
    /// The instance folder (absolute).
    pub dir: PathBuf,
    /// `DIR/cloudca.toml`.
    pub config_path: PathBuf,
    /// (authority, SHA-256 fingerprint) from the ceremony.
    pub fingerprints: Vec<(String, String)>,
}

/// Why the instance could not be created.
#[derive(Debug, thiserror::Error)]
pub enum DevInitError {
    /// DIR exists and is not empty.
    #[error("{0} is not empty; dev-init only creates new instances")]
    NotEmpty(PathBuf),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The SoftHSM2 token could not be initialised.
    #[error("SoftHSM2: {0} (install the Debian package softhsm2)")]
    SoftHsm(String),
    /// Anything after the files exist (ceremony, database).
    #[error("{0}")]
    Setup(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DevInitError + '_ {
    move |source| DevInitError::Io { path: path.to_path_buf(), source }
}

/// Creates the instance in `dir`.
pub async fn create(dir: &Path, options: &Options) -> Result<DevInstance, DevInitError> {
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(DevInitError::NotEmpty(dir.to_path_buf()));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let dir = dir.canonicalize().map_err(io(dir))?;
    for sub in ["tokens", "secrets", "data", "tls/clients", "policies/profiles", "policies/channels"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    set_mode(&dir.join("secrets"), 0o700)?;
    set_mode(&dir.join("tokens"), 0o700)?;
    for (name, text) in POLICIES {
        write_file(&dir.join("policies").join(name), text.as_bytes(), 0o644)?;
    }
    let softhsm_conf = dir.join("softhsm2.conf");
    let tokens = dir.join("tokens").display().to_string();
    write_file(&softhsm_conf, SOFTHSM2_TEMPLATE.replace("@TOKENDIR@", &tokens).as_bytes(), 0o600)?;
    std::env::set_var("SOFTHSM2_CONF", &softhsm_conf);
    init_token(&dir, &options.token_label)?;
    let config_path = dir.join("cloudca.toml");
    let ports = match options.ports {
        Some(ports) => ports.to_vec(),
        None => free_ports(5).map_err(io(&dir))?,
    };
    write_file(&config_path, config_text(&dir, options, &ports).as_bytes(), 0o600)?;
    write_file(&dir.join("web.toml"), web_text(&dir, &ports).as_bytes(), 0o644)?;
    let fingerprints = ceremony(&config_path).await?;
    Ok(DevInstance { dir, config_path, fingerprints })
}

/// Initialises the token through PKCS#11 in this process: no PIN ever appears on a command line.
fn init_token(dir: &Path, label: &str) -> Result<(), DevInitError> {
    let user_pin = zeroize::Zeroizing::new(random_digits(8));
    let so_pin = zeroize::Zeroizing::new(random_digits(12));
    write_file(&dir.join("secrets/hsm-user.pin"), user_pin.as_bytes(), 0o600)?;
    write_file(&dir.join("secrets/hsm-so.pin"), so_pin.as_bytes(), 0o600)?;
    crate::hsm::provision_token(Path::new(SOFTHSM2_MODULE), label, &so_pin, &user_pin)
        .map_err(|e| DevInitError::SoftHsm(e.to_string()))
}

/// The web front's configuration: its port, the daemon's listeners, the web-front client
/// certificate (`cloudca --config DIR/web.toml web`).
fn web_text(dir: &Path, ports: &[u16]) -> String {
    let d = dir.display();
    format!(
        r#"# cloudca web front (development), generated by `cloudca dev-init`.
listen = "127.0.0.1:{web}"
admin_url = "https://localhost:{admin}"
api_url = "https://localhost:{api}"
daemon_ca = "{d}/tls/operator-ca.pem"
client_cert = "{d}/tls/clients/web-front.pem"
client_key = "{d}/tls/clients/web-front.key"
channel = "default"
language = "zh"
"#,
        web = ports[4],
        admin = ports[2],
        api = ports[1],
    )
}

fn config_text(dir: &Path, options: &Options, ports: &[u16]) -> String {
    let d = dir.display();
    let database = options.database_url.clone().unwrap_or_else(|| format!("sqlite://{d}/data/cloudca.db"));
    format!(
        r#"# cloudca development instance, generated by `cloudca dev-init`.
data_dir = "{d}/data"
policies_dir = "{d}/policies"

[hsm]
module = "{module}"
token_label = "{label}"
pin_file = "{d}/secrets/hsm-user.pin"
workers = {workers}

[hsm.env]
SOFTHSM2_CONF = "{d}/softhsm2.conf"

[database]
url = "{database}"

[listeners]
public = "127.0.0.1:{p0}"
api = "127.0.0.1:{p1}"
admin = "127.0.0.1:{p2}"
metrics = "127.0.0.1:{p3}"

[publication]
base_url = "http://127.0.0.1:{p0}"

[tls]
server_cert = "{d}/tls/server.pem"
server_key = "{d}/tls/server.key"
client_ca = "{d}/tls/operator-ca.pem"

[providers]
# Development only: sandbox SMS, payment, invoice and e-mail (their outboxes in the data folder,
# their pay and face pages on the api listener) and sandbox identity checks (face, bank card,
# carrier, micro-deposits). A production instance says mode = "production" (the default).
mode = "sandbox"
identity = "sandbox"

[ra]
# QR codes and face-check links point at the api listener (the sandbox pay and face pages).
public_url = "https://localhost:{p1}"
# The legal representative's link to the authorisation letter points at the web front.
front_url = "http://localhost:{p4}"

[ca]
key_algorithm = "{algorithm}"
organization = "cloudca Development"
root = {{ mode = "self-signed", common_name = "cloudca Dev Root CA" }}

[[ca.issuing]]
name = "org"
common_name = "cloudca Dev Organisation CA"

[[ca.issuing]]
name = "personal"
common_name = "cloudca Dev Personal CA"
"#,
        module = SOFTHSM2_MODULE,
        label = options.token_label,
        workers = options.hsm_workers,
        algorithm = options.key_algorithm.name(),
        p0 = ports[0],
        p1 = ports[1],
        p2 = ports[2],
        p3 = ports[3],
        p4 = ports[4],
    )
}

/// The ceremony, then the TLS material issued by the operator CA it made.
async fn ceremony(config_path: &Path) -> Result<Vec<(String, String)>, DevInitError> {
    let setup = |e: String| DevInitError::Setup(e);
    let mut config = Config::load(config_path).map_err(|e| setup(e.to_string()))?;
    config.apply_hsm_env();
    let hsm = crate::daemon::start_hsm(&config).await.map_err(|e| setup(format!("HSM: {e}")))?;
    let store = Store::open(&config.database).await.map_err(|e| setup(e.to_string()))?;
    let outcome =
        crate::ca::ceremony::run(&config, &hsm, &store, &SystemClock).await.map_err(|e| setup(e.to_string()))?;
    crate::audit::pin::pin_after_ceremony(&store, config_path, None).await.map_err(|e| setup(e.to_string()))?;
    let hierarchy = crate::ca::Hierarchy::load(&store, &hsm).await.map_err(|e| setup(e.to_string()))?;
    let clock = std::sync::Arc::new(SystemClock);
    let operators = Operators::new(store.clone(), hsm, &hierarchy, config.ca.organization.clone(), clock);
    let dir = config_path.parent().unwrap_or(Path::new("."));
    make_tls(dir, &operators).await?;
    pin_operator_ca(dir, &operators)?;
    register_dev_platform(dir, &store).await?;
    Ok(outcome.fingerprints)
}

/// `n` ports free now, chosen at random below Linux's ephemeral range (32768 and up): a port
/// the kernel hands out for outgoing connections could be taken by any client (a database
/// connection, say) between dev-init and the daemon's start.
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let mut held = Vec::with_capacity(n);
    for _ in 0..n * 200 {
        if held.len() == n {
            break;
        }
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", rng.gen_range(20_000..32_000))) {
            held.push(listener);
        }
    }
    if held.len() < n {
        return Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "no free ports in 20000-31999"));
    }
    held.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}

fn random_digits(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| char::from(b'0' + b % 10)).collect()
}

fn set_mode(path: &Path, mode: u32) -> Result<(), DevInitError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Writes a new file with the given mode (secrets get 0600 from the start, never chmod later).
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DevInitError> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))
}

/// Registers the dev `relying-platform` client certificate as the platform `dev-platform`, so
/// `cloudca rp` works against a fresh dev instance.
async fn register_dev_platform(dir: &Path, store: &Store) -> Result<(), DevInitError> {
    let path = dir.join("tls/clients/relying-platform.pem");
    let certificate = std::fs::read_to_string(&path).map_err(io(&path))?;
    let registration = crate::platforms::Registration {
        name: "dev-platform".into(),
        display_name: "cloudca Dev Platform".into(),
        callback_url: "https://localhost/cloudca-callback".into(),
        certificate: Some(certificate),
        fingerprint: None,
    };
    crate::platforms::register(store, &SystemClock, &registration, "dev-init")
        .await
        .map_err(|e| DevInitError::Setup(format!("dev platform: {e}")))?;
    Ok(())
}

/// Writes the operator CA's key digest into the role rules in place of the shipped placeholder,
/// so the subject rules grant roles only to certificates this operator CA issued.
fn pin_operator_ca(dir: &Path, operators: &Operators) -> Result<(), DevInitError> {
    let setup = |e: &str| DevInitError::Setup(format!("roles.toml: {e}"));
    let ca = operators.ca_certificate().ok_or_else(|| setup("no operator CA"))?;
    let digest = crate::roles::spki_sha256(ca).ok_or_else(|| setup("unreadable operator CA certificate"))?;
    let path = dir.join("policies/roles.toml");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    std::fs::write(&path, text.replace(crate::roles::OPERATOR_CA_PLACEHOLDER, &digest)).map_err(io(&path))
}

/// TLS material for the listeners, all from the operator CA in the HSM: its certificate as
/// the trust anchor for clients (`tls/operator-ca.pem`), a server certificate for 127.0.0.1
/// and localhost, and one client certificate per role (recorded, so each can be revoked).
/// Only the leaf keys are files; the CA key never leaves the token.
async fn make_tls(dir: &Path, operators: &Operators) -> Result<(), DevInitError> {
    let tls = dir.join("tls");
    let setup = |e: String| DevInitError::Setup(format!("TLS: {e}"));
    let ca = operators.ca_certificate().ok_or_else(|| setup("no operator CA".into()))?;
    write_file(&tls.join("operator-ca.pem"), crate::cli::pem("CERTIFICATE", ca).as_bytes(), 0o644)?;

    let server_key = KeyPair::generate().map_err(|e| setup(e.to_string()))?;
    let server = operators
        .issue_server(&server_key, &["localhost", "127.0.0.1"], "dev-init")
        .await
        .map_err(|e| setup(e.to_string()))?;
    write_file(&tls.join("server.pem"), crate::cli::pem("CERTIFICATE", &server).as_bytes(), 0o644)?;
    write_file(&tls.join("server.key"), server_key.serialize_pem().as_bytes(), 0o600)?;

    for role in Role::ALL {
        let key = KeyPair::generate().map_err(|e| setup(e.to_string()))?;
        let mut request = CertificateParams::new(Vec::<String>::new()).map_err(|e| setup(e.to_string()))?;
        request.distinguished_name.remove(DnType::CommonName);
        request.distinguished_name.push(DnType::CommonName, format!("dev-{}", role.name()));
        let csr = request.serialize_request(&key).map_err(|e| setup(e.to_string()))?;
        let cert = operators.issue(csr.der(), role, 365, "dev-init").await.map_err(|e| setup(e.to_string()))?;
        let name = role.name();
        write_file(
            &tls.join(format!("clients/{name}.pem")),
            crate::cli::pem("CERTIFICATE", &cert.der).as_bytes(),
            0o644,
        )?;
        write_file(&tls.join(format!("clients/{name}.key")), key.serialize_pem().as_bytes(), 0o600)?;
    }
    Ok(())
}
