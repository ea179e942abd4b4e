//! The test harness: a real development instance (SoftHSM2 token, database, ceremony) per test,
//! and helpers that drive independent tools (openssl, pkilint) against what we emit.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cloudca::clock::SystemClock;
use cloudca::config::Config;
use cloudca::daemon::Instance;
use cloudca::devinit::{self, Options};
use cloudca::hsm::KeyAlgorithm;

/// A fresh CA for one test.
pub struct TestCa {
    /// Holds the folder for the test's lifetime.
    pub dir: tempfile::TempDir,
    /// `DIR/cloudca.toml`.
    pub config_path: PathBuf,
    /// The loaded config.
    pub config: Config,
}

impl TestCa {
    /// A P-256 instance on the backend the environment selects.
    pub async fn new() -> TestCa {
        Self::with_algorithm(KeyAlgorithm::EcdsaP256).await
    }

    /// An instance whose CA keys use `algorithm`.
    pub async fn with_algorithm(algorithm: KeyAlgorithm) -> TestCa {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = Options {
            database_url: postgres_database().await,
            hsm_workers: 2,
            key_algorithm: algorithm,
            token_label: format!("t{}", std::process::id()),
            ports: Some(reserve_ports()),
        };
        let created = devinit::create(&dir.path().join("ca"), &options).await.expect("dev-init");
        let config = Config::load(&created.config_path).expect("config");
        TestCa { dir, config_path: created.config_path, config }
    }

    /// Opens the instance the way the daemon does.
    pub async fn open(&self) -> Instance {
        Instance::open(self.config.clone(), Arc::new(SystemClock)).await.expect("instance opens")
    }

    /// A second daemon's view of this CA: the same database, token, TLS material and data
    /// folder, its own listeners (written as `cloudca-twin.toml` beside the first config).
    pub fn twin(&self) -> TestCa {
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        let ports = reserve_ports::<4>();
        let l = &self.config.listeners;
        // Only the listeners move: publication URLs stay those of the CA (a load balancer
        // in front of both daemons in production).
        let moved: Vec<(String, String)> = [l.public, l.api, l.admin, l.metrics]
            .iter()
            .zip(ports)
            .map(|(old, port)| (format!("\"{old}\""), format!("\"127.0.0.1:{port}\"")))
            .collect();
        let twin: String = text
            .lines()
            .map(|line| {
                let listener = ["public =", "api =", "admin =", "metrics ="].iter().any(|k| line.starts_with(k));
                let pair = moved.iter().find(|(old, _)| listener && line.ends_with(old.as_str()));
                pair.map_or_else(|| line.to_string(), |(old, new)| line.replace(old.as_str(), new))
            })
            .map(|line| line + "\n")
            .collect();
        let path = self.config_path.with_file_name("cloudca-twin.toml");
        std::fs::write(&path, twin).unwrap();
        let config = Config::load(&path).expect("twin config");
        TestCa { dir: tempfile::tempdir().unwrap(), config_path: path, config }
    }

    /// A scratch path inside the test folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate file the ceremony wrote.
    pub fn ca_pem(&self, name: &str) -> PathBuf {
        self.config.data_dir.join("ca").join(format!("{name}.pem"))
    }
}

/// `N` ports no other test of the suite holds. nextest runs tests as parallel
/// processes, and an instance's ports stay unbound from dev-init until its daemon starts
/// seconds later; free-right-now is not enough. Each port is claimed by a lock on a file
/// shared by all test processes, held until this process exits (the kernel drops it even on
/// a crash), and checked free by binding it.
pub fn reserve_ports<const N: usize>() -> [u16; N] {
    use rand::Rng;
    static HELD: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("cloudca-test-ports");
    std::fs::create_dir_all(&dir).expect("port lock folder");
    let mut ports = [0u16; N];
    let mut found = 0;
    for _ in 0..1_000 {
        let port = rand::rngs::OsRng.gen_range(20_000..32_000);
        let Ok(lock) = std::fs::File::create(dir.join(port.to_string())) else { continue };
        if try_lock(&lock) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            HELD.lock().unwrap().push(lock);
            ports[found] = port;
            found += 1;
            if found == ports.len() {
                return ports;
            }
        }
    }
    panic!("no {N} free ports in 20000-31999");
}

/// An exclusive `flock` on `file` if no other open file holds one (`File::try_lock` needs a
/// newer Rust than the crate's minimum).
fn try_lock(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this File owns and keeps open; no memory is involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// The PostgreSQL server the suite runs against (`CLOUDCA_TEST_POSTGRES`), if any; None in the
/// SQLite pass.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("CLOUDCA_TEST_POSTGRES").ok().filter(|s| !s.is_empty())
}

/// Whether this is the PostgreSQL pass of the suite.
pub fn postgres_under_test() -> bool {
    postgres_admin_url().is_some()
}

/// With `CLOUDCA_TEST_POSTGRES=postgres://user@127.0.0.1:5432/postgres`, creates a fresh
/// database for this test and returns its URL; otherwise None (SQLite in the folder).
pub async fn postgres_database() -> Option<String> {
    let admin = postgres_admin_url()?;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test PostgreSQL server");
    let name = format!("cloudca_t_{}_{}", std::process::id(), rand_suffix());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}"))
}

fn rand_suffix() -> u32 {
    use rand::RngCore;
    rand::rngs::OsRng.next_u32()
}

/// What `openssl` printed, and whether it succeeded.
pub struct Output {
    pub ok: bool,
    pub text: String,
}

/// Runs a command, capturing stdout and stderr together.
pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Output { ok: out.status.success(), text }
}

/// Makes a key with openssl: `ec:P-256`, `ec:P-384`, `rsa:2048`, `ed25519`...
pub fn make_key(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let path = dir.join(format!("{name}.key"));
    let p = path.to_str().unwrap();
    let out = match kind.split_once(':') {
        Some(("ec", curve)) => run(
            "openssl",
            &["genpkey", "-algorithm", "EC", "-pkeyopt", &format!("ec_paramgen_curve:{curve}"), "-out", p],
        ),
        Some(("rsa", bits)) => {
            run("openssl", &["genpkey", "-algorithm", "RSA", "-pkeyopt", &format!("rsa_keygen_bits:{bits}"), "-out", p])
        }
        _ => run("openssl", &["genpkey", "-algorithm", kind, "-out", p]),
    };
    assert!(out.ok, "{}", out.text);
    path
}

/// Makes a CSR with openssl for a subject like `/C=CN/O=Org/CN=Name/serialNumber=...`.
pub fn make_csr(dir: &Path, name: &str, key: &Path, subject: &str) -> Vec<u8> {
    let path = dir.join(format!("{name}.csr"));
    let out = run(
        "openssl",
        &["req", "-new", "-utf8", "-key", key.to_str().unwrap(), "-subj", subject, "-out", path.to_str().unwrap()],
    );
    assert!(out.ok, "{}", out.text);
    std::fs::read(path).unwrap()
}

/// A CSR for the organisation profile with a valid credit code.
pub const ORG_SUBJECT: &str = "/C=CN/O=福建示例科技有限公司/CN=示例科技/serialNumber=91350100M000100Y43";
/// A CSR for the personal profile with a valid resident ID.
pub const PERSONAL_SUBJECT: &str = "/C=CN/CN=张三/serialNumber=11010519491231002X";

/// Writes DER as PEM to a file.
pub fn write_pem(path: &Path, tag: &str, der: &[u8]) {
    std::fs::write(path, pem::encode(&pem::Pem::new(tag, der.to_vec()))).unwrap();
}

/// Runs pkilint's certificate linter; returns its findings (empty when clean). pkilint must be
/// installed (the test script installs it): a missing linter fails the test, never skips it.
pub fn pkilint_cert(path: &Path) -> String {
    let out = run("lint_pkix_cert", &["lint", "-s", "ERROR", path.to_str().unwrap()]);
    if out.ok {
        String::new()
    } else {
        out.text
    }
}

/// Closes every session of this process on the pool's slot, behind the pool's back, through
/// the module's own C_CloseAllSessions: what a token reset or HSM fail-over does to a daemon.
/// It runs between PKCS#11 calls, as a real reset would (see `HsmPool::dangerous_exclusive`).
pub fn close_all_sessions(hsm: &cloudca::hsm::HsmPool) {
    hsm.dangerous_exclusive(|| close_all_sessions_now(hsm.slot_id()));
}

fn close_all_sessions_now(slot: u64) {
    // SAFETY: dlopen of the already-loaded module returns the same instance; the function list
    // is the module's static table; C_CloseAllSessions takes a plain slot id.
    unsafe {
        let lib = libloading::Library::new(devinit::SOFTHSM2_MODULE).expect("module loads");
        let get: libloading::Symbol<
            unsafe extern "C" fn(*mut *mut cryptoki_sys::CK_FUNCTION_LIST) -> cryptoki_sys::CK_RV,
        > = lib.get(b"C_GetFunctionList").expect("C_GetFunctionList");
        let mut list = std::ptr::null_mut();
        assert_eq!(get(&mut list), 0);
        let close = (*list).C_CloseAllSessions.expect("C_CloseAllSessions");
        assert_eq!(close(slot), 0, "C_CloseAllSessions failed");
    }
}

/// The real daemon in a child process, killed when dropped.
pub struct Daemon {
    child: Option<std::process::Child>,
    /// `http://127.0.0.1:PORT` of the public listener.
    pub public: String,
    /// `http://127.0.0.1:PORT` of the metrics listener.
    pub metrics: String,
}

impl Daemon {
    /// Starts `cloudca serve` on the instance and waits until `/ready` answers.
    pub async fn start(ca: &TestCa) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_cloudca"))
            .args(["--config", ca.config_path.to_str().unwrap(), "serve"])
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("daemon starts");
        let mut daemon = Daemon {
            child: Some(child),
            public: format!("http://{}", ca.config.listeners.public),
            metrics: format!("http://{}", ca.config.listeners.metrics),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            // A daemon that died (a port taken, say) must not pass for ready because something
            // else answers on its port.
            if let Some(status) = daemon.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("the daemon exited ({status}) before it was ready; its log is above");
            }
            if let Ok(r) = http().get(format!("{}/ready", daemon.metrics)).send().await {
                if r.status() == 200 {
                    return daemon;
                }
            }
            assert!(std::time::Instant::now() < deadline, "daemon did not become ready");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Daemon {
    /// Addresses only, for a daemon served in-process by the test itself.
    pub fn detached(public: String, metrics: String) -> Daemon {
        Daemon { child: None, public, metrics }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The newest login or order code the sandbox SMS provider "sent" to a phone. Other texts
/// (expiry reminders from the background task, face-check links) are skipped: one can land
/// between the code and this read.
pub fn last_code(ca: &TestCa, phone: &str) -> String {
    let outbox = std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap();
    let line = outbox.lines().rev().find(|l| l.contains(phone) && l.contains("cloudca code")).expect("a code was sent");
    let text: serde_json::Value = serde_json::from_str(line).unwrap();
    text["text"].as_str().unwrap().split_whitespace().nth(2).unwrap().trim_end_matches('.').to_string()
}

/// The newest letter link texted to `phone` (`.../letter/{link}`): the link part.
pub fn last_letter_link(ca: &TestCa, phone: &str) -> String {
    let outbox = std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap();
    let line =
        outbox.lines().rev().find(|l| l.contains(phone) && l.contains("/letter/")).expect("a letter link was sent");
    let text: serde_json::Value = serde_json::from_str(line).unwrap();
    let text = text["text"].as_str().unwrap();
    let start = text.find("/letter/").unwrap() + "/letter/".len();
    text[start..].split_whitespace().next().unwrap().to_string()
}

/// An HTTP client that never uses a proxy (tests talk to 127.0.0.1 only).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Runs the cloudca binary.
pub fn cloudca(args: &[&str]) -> Output {
    let out =
        Command::new(env!("CARGO_BIN_EXE_cloudca")).args(args).env("RUST_LOG", "warn").output().expect("binary runs");
    Output {
        ok: out.status.success(),
        text: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    }
}

/// `cloudca serve` expected to refuse to start: bounded (30 s, then killed), so a daemon that
/// wrongly starts fails the test instead of hanging it.
pub fn serve_refused(config: &Path) -> Output {
    let bin = env!("CARGO_BIN_EXE_cloudca");
    run("timeout", &["30", bin, "--config", config.to_str().unwrap(), "serve"])
}

/// Issues a certificate through the CLI; returns (certificate path, serial as openssl prints it).
pub fn issue_cli(ca: &TestCa, name: &str, profile: &str, subject: &str) -> (PathBuf, String) {
    let key = make_key(ca.dir.path(), name, "ec:P-256");
    make_csr(ca.dir.path(), name, &key, subject);
    let cert = ca.path(&format!("{name}.pem"));
    let csr = ca.path(&format!("{name}.csr"));
    let out = cloudca(&[
        "--config",
        ca.config_path.to_str().unwrap(),
        "issue",
        "--profile",
        profile,
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        cert.to_str().unwrap(),
    ]);
    assert!(out.ok, "{}", out.text);
    let serial = run("openssl", &["x509", "-in", cert.to_str().unwrap(), "-noout", "-serial"])
        .text
        .trim()
        .trim_start_matches("serial=")
        .to_string();
    (cert, serial)
}

/// The issuing CA and root in one file, for `-CAfile`.
pub fn bundle(ca: &TestCa, issuer: &str) -> PathBuf {
    let path = ca.path(&format!("bundle-{issuer}.pem"));
    let text =
        std::fs::read_to_string(ca.ca_pem("root")).unwrap() + &std::fs::read_to_string(ca.ca_pem(issuer)).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// `openssl ocsp` about certificates of the `org` CA against a public listener, verifying the
/// answer with the CA bundle. Owned paths, so checks can run on several threads at once.
#[derive(Clone)]
pub struct OcspCheck {
    issuer: PathBuf,
    bundle: PathBuf,
    url: String,
}

impl OcspCheck {
    /// Against the public listener at `public` (its base URL).
    pub fn new(ca: &TestCa, public: &str) -> OcspCheck {
        OcspCheck { issuer: ca.ca_pem("org"), bundle: bundle(ca, "org"), url: format!("{public}/ocsp/org") }
    }

    /// Asks about `cert`, with `extra` flags (`-no_nonce`, `-respout`, ...).
    pub fn run(&self, cert: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "ocsp",
            "-issuer",
            self.issuer.to_str().unwrap(),
            "-cert",
            cert.to_str().unwrap(),
            "-url",
            &self.url,
            "-CAfile",
            self.bundle.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run("openssl", &args)
    }
}

/// An OCSP request (DER) for a certificate of the `org` CA: SHA-1 CertID, no nonce.
pub fn ocsp_request(ca: &TestCa, cert: &Path) -> Vec<u8> {
    let out = ca.path(&format!("{}.ocsp-req", cert.file_name().unwrap().to_string_lossy()));
    let issuer = ca.ca_pem("org");
    let args = [
        "ocsp",
        "-issuer",
        issuer.to_str().unwrap(),
        "-cert",
        cert.to_str().unwrap(),
        "-no_nonce",
        "-reqout",
        out.to_str().unwrap(),
    ];
    let result = run("openssl", &args);
    assert!(result.ok, "{}", result.text);
    std::fs::read(out).unwrap()
}
