//! Issuance throughput against the HSM's own raw signing rate, measured on the same SoftHSM2
//! token in the same run, at one HSM worker and at one worker per core.
//!
//! `cargo bench --bench issuance` (set `CLOUDCA_BENCH_SECONDS` to change the 5 s per figure).
//! Raw: N threads, each with its own logged-in session, C_Sign(CKM_ECDSA) over a SHA-256 digest
//! with the organisation CA's token key. Issuance: the full library path (CSR check, serial
//! reserved durably, TBS built and linted, one HSM signature, certificate + audit stored
//! durably) with enough requests in flight to keep N workers busy; SQLite WAL with
//! synchronous=FULL, group commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudca::clock::SystemClock;
use cloudca::config::Config;
use cloudca::daemon::Instance;
use cloudca::devinit::{self, Options};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use sha2::Digest;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("issuance: benchmark");
        return;
    }
    let seconds: u64 = std::env::var("CLOUDCA_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let created = runtime
        .block_on(devinit::create(
            &dir.path().join("ca"),
            &Options { token_label: "bench".into(), ..Options::default() },
        ))
        .expect("dev instance");
    let mut config = Config::load(&created.config_path).expect("config");
    // CLOUDCA_BENCH_DATABASE_DIR: move the database to another folder (another disk, tmpfs)
    // to separate SQLite's fsyncs from SoftHSM2's token files.
    if let Ok(target) = std::env::var("CLOUDCA_BENCH_DATABASE_DIR") {
        for suffix in ["", "-wal", "-shm"] {
            let from = config.data_dir.join(format!("cloudca.db{suffix}"));
            if from.exists() {
                std::fs::copy(&from, std::path::Path::new(&target).join(format!("cloudca.db{suffix}")))
                    .expect("copy database");
            }
        }
        config.database.url = format!("sqlite://{target}/cloudca.db");
    }
    let csr = make_csr();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let duration = Duration::from_secs(seconds);
    let mut rows = Vec::new();
    for workers in [1, cores] {
        // CLOUDCA_BENCH_SKIP_RAW=1 profiles the issuance path alone.
        let raw = if std::env::var("CLOUDCA_BENCH_SKIP_RAW").is_ok() {
            (f64::NAN, f64::NAN)
        } else {
            raw_sign_rate(&config, workers, duration)
        };
        let verified = runtime.block_on(issuance_rate(&config, workers, Input::Verified(&csr), duration));
        let from_csr = runtime.block_on(issuance_rate(&config, workers, Input::Csr(&csr), duration));
        rows.push((workers, raw, verified, from_csr));
    }
    println!();
    println!("cloudca issuance vs raw SoftHSM2 ECDSA P-256 signing ({seconds} s per figure, {cores} cores, SQLite WAL synchronous=FULL)");
    println!(
        "{:>8} {:>15} {:>20} {:>7} {:>9} {:>17} {:>7} {:>9}",
        "workers", "raw HSM sign/s", "issue, key proven/s", "ratio", "host µs", "issue from CSR/s", "ratio", "host µs"
    );
    for (workers, (raw, raw_cpu), (verified, verified_cpu), (from_csr, csr_cpu)) in rows {
        println!(
            "{workers:>8} {raw:>15.0} {verified:>20.0} {:>6.1}% {:>9.0} {from_csr:>17.0} {:>6.1}% {:>9.0}",
            100.0 * verified / raw,
            verified_cpu - raw_cpu,
            100.0 * from_csr / raw,
            csr_cpu - raw_cpu
        );
    }
    println!("(\"host µs\": process CPU per certificate minus the CPU of one raw HSM signature, i.e. the");
    println!(" host work outside the HSM call; with a network HSM the signature costs no host CPU.)");
    println!("(\"key proven\": possession already established, as for keys generated in our HSM or CSRs");
    println!(" checked when they entered; \"from CSR\" adds the ECDSA verification of the CSR signature.)");
}

/// What each issuance starts from.
#[derive(Clone, Copy)]
enum Input<'a> {
    /// A CSR to parse and verify on every issuance.
    Csr(&'a [u8]),
    /// The same CSR, verified once up front.
    Verified(&'a [u8]),
}

/// A P-256 CSR for the organisation profile (software key: it is the applicant's).
fn make_csr() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CountryName, "CN");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "示例科技有限公司");
    params.distinguished_name.push(rcgen::DnType::CommonName, "示例科技");
    params.distinguished_name.push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), "91350100M000100Y43");
    params.serialize_request(&key).expect("csr").der().to_vec()
}

/// The HSM alone: `workers` threads, one session each, signing for `duration`. Returns the
/// rate and the process CPU microseconds per signature.
fn raw_sign_rate(config: &Config, workers: usize, duration: Duration) -> (f64, f64) {
    let ctx = Pkcs11::new(&config.hsm.module).expect("module");
    // The instance may already have initialised the module in this process: that is fine.
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| ctx.get_token_info(*s).map(|t| t.label().trim_end() == config.hsm.token_label).unwrap_or(false))
        .expect("token");
    let pin = std::fs::read_to_string(config.hsm.pin_file.as_ref().expect("pin file")).expect("pin");
    let count = Arc::new(AtomicU64::new(0));
    let digest = sha2::Sha256::digest(b"cloudca raw signing benchmark").to_vec();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (ctx, count, digest, pin) = (ctx.clone(), count.clone(), digest.clone(), pin.clone());
            scope.spawn(move || {
                let session = ctx.open_rw_session(slot).expect("session");
                let _ = session
                    .login(cryptoki::session::UserType::User, Some(&cryptoki::types::AuthPin::new(pin.trim().into())));
                let key = session
                    .find_objects(&[
                        Attribute::Class(ObjectClass::PRIVATE_KEY),
                        Attribute::Label(b"cloudca-org".to_vec()),
                    ])
                    .expect("find")[0];
                while started.elapsed() < duration {
                    session.sign(&Mechanism::Ecdsa, key, &digest).expect("sign");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let signed = count.load(Ordering::Relaxed) as f64;
    (signed / started.elapsed().as_secs_f64(), 1e6 * (cpu_seconds() - cpu_before) / signed)
}

/// The production issuance path with `workers` HSM sessions: the rate and the process CPU
/// microseconds per certificate.
async fn issuance_rate(config: &Config, workers: usize, input: Input<'_>, duration: Duration) -> (f64, f64) {
    let mut config = config.clone();
    config.hsm.workers = workers;
    let instance = Instance::open(config, Arc::new(SystemClock)).await.expect("instance");
    let in_flight: usize =
        std::env::var("CLOUDCA_BENCH_IN_FLIGHT").ok().and_then(|s| s.parse().ok()).unwrap_or(256 * workers);
    let count = Arc::new(AtomicU64::new(0));
    let m = cloudca::metrics::get();
    let commits_before = (m.db_commit_seconds.get_sample_count(), m.db_commit_seconds.get_sample_sum());
    let rows_before = m.db_batch_size.get_sample_sum();
    let cpu_before = cpu_seconds();
    let written_before = bytes_written();
    let started = Instant::now();
    let (csr, verify_each) = match input {
        Input::Csr(c) => (c.to_vec(), true),
        Input::Verified(c) => (c.to_vec(), false),
    };
    let request = cloudca::ca::csr::parse(&csr).expect("valid CSR");
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let (issuance, csr, request, count) =
                (instance.issuance.clone(), csr.clone(), request.clone(), count.clone());
            tokio::spawn(async move {
                while started.elapsed() < duration {
                    if verify_each {
                        issuance.issue("org", &csr, "bench").await.expect("issued");
                    } else {
                        issuance.issue_verified("org", &request, "bench").await.expect("issued");
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let written = bytes_written() - written_before;
    let issued = count.load(Ordering::Relaxed);
    let stored = instance.store.count_certificates("issued").await.expect("count");
    eprintln!(
        "workers={workers} verify_csr={verify_each}: {issued} issued ({stored} stored in total); process CPU {:.0}% of one core, {:.0} µs CPU per certificate",
        100.0 * cpu / elapsed,
        1e6 * cpu / issued as f64
    );
    // The group-commit writer: how many commits, how full, and how much of the run it spent
    // committing (near 100 %: the writer is what limits the rate).
    let commits = m.db_commit_seconds.get_sample_count() - commits_before.0;
    let committing = m.db_commit_seconds.get_sample_sum() - commits_before.1;
    let sign = m.hsm_operation_seconds.with_label_values(&["sign"]);
    eprintln!(
        "  writer: {commits} commits, {:.1} writes each, {:.2} ms each, busy {:.0}% of the run; hsm sign queue-to-answer mean {:.2} ms (all runs)",
        (m.db_batch_size.get_sample_sum() - rows_before) / commits.max(1) as f64,
        1e3 * committing / commits.max(1) as f64,
        100.0 * committing / elapsed,
        1e3 * sign.get_sample_sum() / sign.get_sample_count().max(1) as f64
    );
    // What each certificate costs the disk: WAL frames (whole pages: a random serial lands on
    // its own index page) and checkpoints into the database file.
    eprintln!("  written: {:.1} KiB per certificate", written as f64 / 1024.0 / issued.max(1) as f64);
    (issued as f64 / elapsed, 1e6 * cpu / issued as f64)
}

/// Bytes this process handed to write calls so far (`wchar` in /proc/self/io, Linux): SQLite's
/// WAL and checkpoint writes (SoftHSM2 writes nothing while it signs).
fn bytes_written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("wchar: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// User + system CPU time of this process, from /proc (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
