//! OCSP from the pre-signed cache over HTTP, against two references measured over the same
//! request bytes on the same machine in the same run:
//!
//! - `openssl ocsp` as a responder (signs every response with a software key);
//! - a bare hyper server answering every POST with fixed bytes (the HTTP ceiling here).
//!
//! Load: `h2load --h1 -t 1` (nghttp2-client) with 16 and 64 connections, and `wrk` (one thread,
//! 32 connections), each sharing the 2 cores with the server; `ab` for the openssl responder,
//! which closes every connection (HTTP/1.0). Each cloudca figure is printed against openssl and
//! against bare hyper under the same load generator and connection count.
//! `cargo bench --bench ocsp`; `CLOUDCA_BENCH_SECONDS` (default 5) per figure.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use cloudca::clock::SystemClock;
use cloudca::config::Config;
use cloudca::daemon::Instance;
use cloudca::devinit::{self, Options};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("ocsp: benchmark");
        return;
    }
    let seconds: u64 = std::env::var("CLOUDCA_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let created = runtime
        .block_on(devinit::create(&d.join("ca"), &Options { token_label: "bench-ocsp".into(), ..Options::default() }))
        .expect("dev instance");
    let config = Config::load(&created.config_path).expect("config");
    let (cert_der, serial) = runtime.block_on(issue(&config));
    std::fs::write(d.join("ee.pem"), pem::encode(&pem::Pem::new("CERTIFICATE", cert_der))).unwrap();
    let issuer = config.data_dir.join("ca/org.pem");
    sh(
        "openssl",
        &["ocsp", "-issuer", p(&issuer), "-cert", p(&d.join("ee.pem")), "-no_nonce", "-reqout", p(&d.join("req.der"))],
    );
    let request = std::fs::read(d.join("req.der")).unwrap();
    std::fs::write(d.join("post.lua"), lua(&d.join("req.der"))).unwrap();

    // 1. cloudca.
    let daemon = Guard(
        Command::new(env!("CARGO_BIN_EXE_cloudca"))
            .args(["--config", p(&created.config_path), "serve"])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let public = config.listeners.public;
    wait_for_port(&public.to_string());
    let post_url = format!("http://{public}/ocsp/org");
    let warm = sh(
        "curl",
        &[
            "-s",
            "-o",
            p(&d.join("resp.der")),
            "-H",
            "Content-Type: application/ocsp-request",
            "--data-binary",
            &format!("@{}", p(&d.join("req.der"))),
            &post_url,
        ],
    );
    let _ = warm;
    let fixed = std::fs::read(d.join("resp.der")).unwrap();
    assert!(fixed.len() > 100, "the daemon answered the warm-up request");
    let get_path = base64::engine::general_purpose::STANDARD
        .encode(&request)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let get_url = format!("{post_url}/{get_path}");
    let req_der = d.join("req.der");
    let mut cloudca = Vec::new();
    for load in LOADS {
        let post = load.run(&post_url, Some(&req_der), &d.join("post.lua"), seconds);
        let get = load.run(&get_url, None, &d.join("post.lua"), seconds);
        cloudca.push((load, post, get));
    }
    drop(daemon);

    // 2. openssl ocsp as a responder for the same issuer and serial, software-signed.
    sh(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            p(&d.join("r.key")),
            "-out",
            p(&d.join("r.pem")),
            "-subj",
            "/CN=bench responder",
            "-days",
            "2",
        ],
    );
    std::fs::write(d.join("index.txt"), format!("V\t301231000000Z\t\t{}\tunknown\t/CN=bench\n", serial.to_uppercase()))
        .unwrap();
    let port = free_port();
    let openssl = Guard(
        Command::new("openssl")
            .args([
                "ocsp",
                "-index",
                p(&d.join("index.txt")),
                "-port",
                &port.to_string(),
                "-rsigner",
                p(&d.join("r.pem")),
                "-rkey",
                p(&d.join("r.key")),
                "-CA",
                p(&issuer),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // A bare TCP probe would wedge openssl's one-at-a-time responder: probe with a real request.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-H",
            "Content-Type: application/ocsp-request",
            "--data-binary",
            &format!("@{}", p(&d.join("req.der"))),
            &format!("http://127.0.0.1:{port}/"),
        ])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(Instant::now() < deadline, "openssl ocsp responder never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    // openssl answers HTTP/1.0 and closes every connection, which wrk does not count; ab does.
    let openssl_rate = ab(&format!("http://127.0.0.1:{port}/"), &d.join("req.der"), seconds);
    drop(openssl);

    // 3. bare hyper: fixed bytes for every request.
    let hyper_addr = runtime.block_on(bare_hyper(fixed));
    let hyper_url = format!("http://{hyper_addr}/");

    println!();
    println!("OCSP over HTTP on 127.0.0.1, {seconds} s per figure, the load generator sharing the 2 cores");
    println!("openssl ocsp responder (software key, ab -c8, a connection per request): {openssl_rate:.0}/s");
    println!(
        "{:<28} {:<26} {:>12} {:>11} {:>12} {:>9}",
        "load", "responder", "responses/s", "vs openssl", "bare hyper/s", "vs hyper"
    );
    for (load, post, get) in cloudca {
        let hyper_rate = load.run(&hyper_url, Some(&req_der), &d.join("post.lua"), seconds);
        for (name, rate) in [("cloudca POST (pre-signed)", post), ("cloudca GET (pre-signed)", get)] {
            println!(
                "{:<28} {name:<26} {rate:>12.0} {:>10.1}x {hyper_rate:>12.0} {:>8.2}x",
                load.name(),
                rate / openssl_rate,
                rate / hyper_rate
            );
        }
    }
}

/// A load generator and its connection count.
#[derive(Clone, Copy)]
enum Load {
    /// `h2load --h1 -t 1 -c N`.
    H2load(u32),
    /// `wrk -t1 -c32`.
    Wrk,
}

const LOADS: [Load; 3] = [Load::H2load(16), Load::H2load(64), Load::Wrk];

impl Load {
    fn name(self) -> String {
        match self {
            Load::H2load(c) => format!("h2load --h1 -t 1 -c {c}"),
            Load::Wrk => "wrk -t1 -c32".into(),
        }
    }

    /// Requests per second at `url`: POSTs `body` when given (wrk through `lua`), else GETs.
    fn run(self, url: &str, body: Option<&Path>, lua: &Path, seconds: u64) -> f64 {
        match self {
            Load::H2load(c) => h2load(url, body, c, seconds),
            Load::Wrk => wrk(url, body.map(|_| lua), seconds),
        }
    }
}

/// Runs `h2load --h1` (HTTP/1.1, keep-alive) and returns requests per second; any failed or
/// non-2xx request fails the run.
fn h2load(url: &str, body: Option<&Path>, connections: u32, seconds: u64) -> f64 {
    let (c, d) = (connections.to_string(), seconds.to_string());
    let mut args = vec!["--h1", "-t", "1", "-c", &c, "-D", &d, "--warm-up-time", "1"];
    if let Some(b) = body {
        args.extend(["-d", p(b), "-H", "Content-Type: application/ocsp-request"]);
    }
    args.push(url);
    let out = sh("h2load", &args);
    let field = |line: &str, name: &str| -> Option<u64> {
        let at = line.find(name)?;
        line[..at].trim_end().rsplit([' ', ',']).next()?.parse().ok()
    };
    let requests = out.lines().find(|l| l.starts_with("requests:")).unwrap_or_else(|| panic!("h2load: {out}"));
    let statuses = out.lines().find(|l| l.starts_with("status codes:")).unwrap_or_else(|| panic!("h2load: {out}"));
    assert_eq!(field(requests, " failed"), Some(0), "h2load saw failures from {url}: {out}");
    assert_eq!(field(statuses, " 4xx"), Some(0), "h2load saw 4xx from {url}: {out}");
    assert_eq!(field(statuses, " 5xx"), Some(0), "h2load saw 5xx from {url}: {out}");
    out.lines()
        .find(|l| l.starts_with("finished in"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|v| v.trim_end_matches(" req/s").parse().ok())
        .unwrap_or_else(|| panic!("no rate in h2load output: {out}"))
}

async fn issue(config: &Config) -> (Vec<u8>, String) {
    let instance = Instance::open(config.clone(), Arc::new(SystemClock)).await.expect("instance");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CountryName, "CN");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "示例科技有限公司");
    params.distinguished_name.push(rcgen::DnType::CommonName, "示例科技");
    params.distinguished_name.push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), "91350100M000100Y43");
    let csr = params.serialize_request(&key).unwrap().der().to_vec();
    let issued = instance.issuance.issue("org", &csr, "bench").await.expect("issued");
    instance.status.presign(&issued.serial).await.expect("pre-signed");
    (issued.der, issued.serial)
}

async fn bare_hyper(body: Vec<u8>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = bytes::Bytes::from(body);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let body = body.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let body = body.clone();
                    async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(body))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn lua(body: &Path) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/ocsp-request\"\nlocal f = io.open(\"{}\", \"rb\")\nwrk.body = f:read(\"*all\")\nf:close()\n",
        body.display()
    )
}

/// Runs ab (new connection per request, as openssl's responder requires) and returns requests
/// per second. ab counts responses of differing length as "failed": ECDSA signatures vary in
/// length, so only non-2xx answers are treated as errors.
fn ab(url: &str, body: &Path, seconds: u64) -> f64 {
    let t = seconds.to_string();
    let out =
        sh("ab", &["-q", "-t", &t, "-n", "100000000", "-c", "8", "-p", p(body), "-T", "application/ocsp-request", url]);
    assert!(!out.contains("Non-2xx"), "ab saw errors from {url}: {out}");
    out.lines()
        .find_map(|l| l.strip_prefix("Requests per second:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rate in ab output: {out}"))
}

/// Runs wrk and returns requests per second (non-2xx responses make the run fail).
fn wrk(url: &str, script: Option<&Path>, seconds: u64) -> f64 {
    let duration = format!("{seconds}s");
    let mut args = vec!["-t1", "-c32", "-d", &duration, "--latency"];
    if let Some(s) = script {
        args.extend(["-s", p(s)]);
    }
    args.push(url);
    let out = sh("wrk", &args);
    assert!(!out.contains("Non-2xx"), "wrk saw errors from {url}: {out}");
    out.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in wrk output: {out}"))
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (install it: apt-get install {program})"));
    assert!(out.status.success(), "{program} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills a child process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
