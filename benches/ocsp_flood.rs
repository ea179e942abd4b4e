//! Security review M2: cloud signing and issuance latency, quiet and under an OCSP flood that
//! asks for signatures (a nonce for the issued certificate, a nonce for a serial nobody issued),
//! on one daemon served in this process (one HSM pool, as in production).
//!
//! Flood: two `h2load --h1 -t 1 -c 32` (nghttp2-client) POSTing the two requests for the
//! whole measurement. Latency: one at a time, an unwrap + sign of a wrapped holder key (the
//! HSM part of cloud signing) and one issuance through the library path, p50 and p99.
//! `cargo bench --bench ocsp_flood`; `CLOUDCA_BENCH_SECONDS` (default 5) per phase.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudca::clock::SystemClock;
use cloudca::config::Config;
use cloudca::daemon::Instance;
use cloudca::devinit::{self, Options};
use cloudca::hsm::KeyAlgorithm;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("ocsp_flood: benchmark");
        return;
    }
    let seconds: u64 = std::env::var("CLOUDCA_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let created = runtime
        .block_on(devinit::create(&d.join("ca"), &Options { token_label: "bench-flood".into(), ..Options::default() }))
        .expect("dev instance");
    let config = Config::load(&created.config_path).expect("config");
    let instance = runtime.block_on(Instance::open(config.clone(), Arc::new(SystemClock))).expect("instance");
    let csr = make_csr();
    let request = cloudca::ca::csr::parse(&csr).expect("valid CSR");
    let issued = runtime.block_on(instance.issuance.issue_verified("org", &request, "bench")).expect("issued");
    runtime.block_on(instance.status.presign(&issued.serial)).expect("pre-signed");
    std::fs::write(d.join("ee.pem"), pem::encode(&pem::Pem::new("CERTIFICATE", issued.der))).unwrap();
    let issuer = config.data_dir.join("ca/org.pem");
    let known = d.join("known.der");
    let unknown = d.join("unknown.der");
    sh("openssl", &["ocsp", "-issuer", p(&issuer), "-cert", p(&d.join("ee.pem")), "-reqout", p(&known)]);
    sh("openssl", &["ocsp", "-issuer", p(&issuer), "-serial", "0x0badc0ffee", "-reqout", p(&unknown)]);

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = runtime.spawn(cloudca::daemon::serve(instance.clone(), async move {
        let _ = stopped.await;
    }));
    wait_for_port(&config.listeners.public.to_string());
    let url = format!("http://{}/ocsp/org", config.listeners.public);

    let quiet = runtime.block_on(latencies(&instance, Duration::from_secs(seconds)));
    let signs = || cloudca::metrics::get().hsm_operations.with_label_values(&["sign"]).get();
    let signs_before = signs();
    let flood: Vec<_> = [&known, &unknown].iter().map(|body| h2load(&url, body, seconds + 2)).collect();
    std::thread::sleep(Duration::from_secs(1));
    let flooded = runtime.block_on(latencies(&instance, Duration::from_secs(seconds)));
    let rates: Vec<String> = flood.into_iter().map(finish).collect();
    let flood_signs = signs() - signs_before;

    println!();
    println!("HSM latency, quiet and under an OCSP flood (two h2load --h1 -t 1 -c 32: nonce for an issued");
    println!("certificate, nonce for an unknown serial), {seconds} s per phase, one request at a time");
    println!("flood answered: issued+nonce {}, unknown+nonce {}", rates[0], rates[1]);
    println!("HSM sign jobs during the flood phase (issuance and OCSP): {flood_signs}");
    println!("{:<34} {:>10} {:>10} {:>12} {:>12}", "operation", "quiet p50", "quiet p99", "flood p50", "flood p99");
    for (name, mut q, mut f) in
        [("cloud signing (unwrap + sign)", quiet.0, flooded.0), ("issuance (key proven)", quiet.1, flooded.1)]
    {
        println!(
            "{name:<34} {:>8.2}ms {:>8.2}ms {:>10.2}ms {:>10.2}ms",
            ms(percentile(&mut q, 50)),
            ms(percentile(&mut q, 99)),
            ms(percentile(&mut f, 50)),
            ms(percentile(&mut f, 99))
        );
    }
    let _ = stop.send(());
    let _ = runtime.block_on(served);
    cloudca::hsm::shutdown();
}

/// Cloud-signing and issuance latencies, one operation at a time, for `duration`.
async fn latencies(instance: &Instance, duration: Duration) -> (Vec<Duration>, Vec<Duration>) {
    let hsm = &instance.hsm;
    let wrapped = hsm.generate_wrapped(KeyAlgorithm::EcdsaP256).await.expect("wrapped key");
    let request = cloudca::ca::csr::parse(&make_csr()).expect("valid CSR");
    let (mut signing, mut issuance) = (Vec::new(), Vec::new());
    let started = Instant::now();
    while started.elapsed() < duration {
        let t = Instant::now();
        hsm.sign_wrapped_many(&wrapped.blob, KeyAlgorithm::EcdsaP256, vec![vec![7u8; 32]]).await.expect("signed");
        signing.push(t.elapsed());
        let t = Instant::now();
        instance.issuance.issue_verified("org", &request, "bench").await.expect("issued");
        issuance.push(t.elapsed());
    }
    (signing, issuance)
}

/// Starts an h2load flood POSTing `body` for `seconds`.
fn h2load(url: &str, body: &Path, seconds: u64) -> std::process::Child {
    Command::new("h2load")
        .args(["--h1", "-t", "1", "-c", "32", "-D", &seconds.to_string(), "-d", p(body)])
        .args(["-H", "Content-Type: application/ocsp-request", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("h2load: {e} (install it: apt-get install nghttp2-client)"))
}

/// The flood's rate, as h2load reports it.
fn finish(child: std::process::Child) -> String {
    let out = String::from_utf8_lossy(&child.wait_with_output().expect("h2load").stdout).to_string();
    out.lines().find(|l| l.starts_with("finished in")).and_then(|l| l.split(", ").nth(1)).unwrap_or("?").to_string()
}

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

fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    let index = ((samples.len() * p).div_ceil(100)).saturating_sub(1).min(samples.len().saturating_sub(1));
    samples.get(index).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn wait_for_port(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
}
