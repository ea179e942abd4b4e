//! Listeners bounded under abuse (issue 16; security review M1, M8), over real sockets against
//! the real daemon: slow-header floods, idle keep-alive connections, slow bodies, a client over
//! its connection cap, oversized bodies before authentication, and the client address behind a
//! proxy (`X-Forwarded-For` and the PROXY protocol, believed only from `trusted_proxies`).
//! Clients come from different loopback addresses (127.0.0.x) to be different clients.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// A test CA with `keys` added to `[listeners]` and `extra` appended to its config.
async fn ca_with(keys: &str, extra: &str) -> TestCa {
    let mut ca = TestCa::new().await;
    let text = std::fs::read_to_string(&ca.config_path).unwrap();
    let text = text.replacen("[listeners]\n", &format!("[listeners]\n{keys}\n"), 1) + "\n" + extra;
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    ca
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Raises this process's soft descriptor limit to its hard limit (the daemon, a child,
/// inherits it): the flood holds thousands of sockets on both sides.
fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain system calls on a struct this function owns.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(65_536);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_cur
}

/// A TCP connection to `to` from 127.0.0.`from`.
async fn connect(to: SocketAddr, from: u8) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(loopback(from), 0)).unwrap();
    socket.connect(to).await.unwrap_or_else(|e| panic!("connect {to} from 127.0.0.{from}: {e}"))
}

/// Whether the server closes the connection within `bound` (end of stream or reset), reading
/// and discarding whatever it sends before that.
async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, bound: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// One HTTP/1.1 answer: status, head (lower-case), body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one answer (Content-Length framed) within `bound`; None if the connection closed or
/// the bound passed first.
async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S, bound: Duration) -> Option<Answer> {
    tokio::time::timeout(bound, async {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
            data.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let length: usize =
            head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap_or(0));
        let mut body = data[end..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
            body.extend_from_slice(&buf[..n]);
        }
        Some(Answer { status, head, body })
    })
    .await
    .ok()
    .flatten()
}

/// An OCSP POST for `der`, as raw HTTP/1.1 (keep-alive).
fn ocsp_post(der: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST /ocsp/org HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
        der.len()
    );
    [head.as_bytes(), der].concat()
}

async fn metrics(daemon: &Daemon) -> String {
    http().get(format!("{}/metrics", daemon.metrics)).send().await.unwrap().text().await.unwrap()
}

/// The value of a metric line starting with `series` (0 when absent).
fn metric(metrics: &str, series: &str) -> u64 {
    metrics.lines().find_map(|l| l.strip_prefix(series)).map_or(0, |v| v.trim().parse::<f64>().unwrap_or(0.0) as u64)
}

/// TLS (to the api listener) from 127.0.0.`from`, verifying the server with the test CA's
/// TLS root; no client certificate.
async fn tls_connect(ca: &TestCa, from: u8) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let dir = ca.config_path.parent().unwrap().join("tls");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(dir.join("operator-ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = connect(ca.config.listeners.api, from).await;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, stream).await.expect("TLS handshake")
}

/// HTTPS to the api listener from 127.0.0.`from` (reqwest), anonymous.
fn api_client(ca: &TestCa, from: u8) -> reqwest::Client {
    let dir = ca.config_path.parent().unwrap().join("tls");
    let root = reqwest::Certificate::from_pem(&std::fs::read(dir.join("operator-ca.pem")).unwrap()).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .add_root_certificate(root)
        .local_address(loopback(from))
        .resolve("localhost", ca.config.listeners.api)
        .build()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_slow_header_connections_do_not_stop_ocsp_crl_or_the_mobile_api() {
    let nofile = raise_nofile();
    assert!(nofile >= 4_500, "the flood needs 4,500 descriptors; the hard limit is {nofile}");
    let ca = ca_with("header_read_timeout_seconds = 5", "").await;
    let (cert, _) = issue_cli(&ca, "flood", "org", ORG_SUBJECT);
    let der = ocsp_request(&ca, &cert);
    let daemon = Daemon::start(&ca).await;
    let (public, api) = (ca.config.listeners.public, ca.config.listeners.api);

    // 1,000 on public that never finish their head, 1,000 on api that never finish the TLS
    // handshake; 100 from each of 20 addresses (under the per-client cap of 128, so the
    // timeouts are what must free them).
    let opened = Instant::now();
    let mut held = Vec::with_capacity(2_000);
    for i in 0..2_000usize {
        let from = 10 + (i / 100) as u8;
        let (to, partial): (SocketAddr, &[u8]) =
            if i % 2 == 0 { (public, b"GET /crl/org.crl HTTP/1.1\r\nHost: x\r\n") } else { (api, b"\x16\x03\x01") };
        let mut stream = connect(to, from).await;
        stream.write_all(partial).await.unwrap();
        held.push(stream);
    }
    let open_took = opened.elapsed();

    // Meanwhile: OCSP (one keep-alive connection), CRL and the mobile API, each answering
    // within 1 s, until shortly before the header timeout.
    let client = http();
    let app = api_client(&ca, 2);
    let (mut ocsp, mut crl, mut mobile) = (Vec::new(), Vec::new(), Vec::new());
    let until = opened + Duration::from_millis(4_000);
    for round in 0..10_000 {
        if Instant::now() >= until && round >= 20 {
            break;
        }
        let t = Instant::now();
        let r = client
            .post(format!("{}/ocsp/org", daemon.public))
            .header("content-type", "application/ocsp-request")
            .body(der.clone())
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .expect("OCSP answered within 1 s");
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        ocsp.push(t.elapsed());
        if round % 10 == 0 {
            let t = Instant::now();
            let r = client.get(format!("{}/crl/org.crl", daemon.public)).timeout(Duration::from_secs(1)).send();
            let r = r.await.expect("CRL answered within 1 s");
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
            crl.push(t.elapsed());
            let t = Instant::now();
            let sms = app
                .post(format!("https://localhost:{}/v1/mobile/sms", api.port()))
                .json(&serde_json::json!({ "phone": "+8613800138999" }))
                .timeout(Duration::from_secs(1))
                .send();
            let r = sms.await.expect("mobile API answered within 1 s");
            assert!(r.status().as_u16() < 500, "mobile API: {}", r.status());
            mobile.push(t.elapsed());
        }
    }
    for list in [&mut ocsp, &mut crl, &mut mobile] {
        list.sort();
    }
    let max = |l: &[Duration]| *l.last().unwrap();
    println!(
        "held 2000 connections (opened in {open_took:?}); OCSP n={} p50={:?} p99={:?} max={:?}; \
         CRL n={} p99={:?}; mobile API n={} p99={:?}",
        ocsp.len(),
        percentile(&ocsp, 0.5),
        percentile(&ocsp, 0.99),
        max(&ocsp),
        crl.len(),
        percentile(&crl, 0.99),
        mobile.len(),
        percentile(&mobile, 0.99),
    );
    for (what, list) in [("OCSP", &ocsp), ("CRL", &crl), ("mobile API", &mobile)] {
        assert!(max(list) < Duration::from_secs(1), "{what} took {:?}", max(list));
    }

    // Every flood connection is closed once the header timeout (5 s) has passed.
    let deadline = opened + Duration::from_secs(5) + open_took + Duration::from_secs(4);
    let mut still_open = 0;
    for stream in &mut held {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10));
        if !closed_within(stream, left).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "flood connections still open after the header timeout");
    let m = metrics(&daemon).await;
    let header = metric(&m, "cloudca_connections_timed_out_total{listener=\"public\",phase=\"header\"} ");
    let handshake = metric(&m, "cloudca_connections_timed_out_total{listener=\"api\",phase=\"handshake\"} ");
    assert!(header >= 1_000 && handshake >= 1_000, "timed out: header {header}, handshake {handshake}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let ca = ca_with("idle_timeout_seconds = 2\nheader_read_timeout_seconds = 10", "").await;
    let daemon = Daemon::start(&ca).await;
    let mut stream = connect(ca.config.listeners.public, 2).await;
    // Requests 1 s apart keep it open past the idle timeout.
    for round in 0..4 {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(1_000)).await;
        }
        stream.write_all(b"GET /ca/org.crt HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let answer = read_answer(&mut stream, Duration::from_secs(5)).await.expect("answered");
        assert_eq!(answer.status, 200);
        assert!(!answer.body.is_empty());
    }
    // Then idle: closed after 2 s (not before 1 s).
    let idle = Instant::now();
    assert!(!closed_within(&mut stream, Duration::from_millis(1_000)).await, "closed too early");
    assert!(closed_within(&mut stream, Duration::from_secs(4)).await, "idle connection still open");
    println!("idle connection closed after {:?}", idle.elapsed());
    let m = metrics(&daemon).await;
    assert!(metric(&m, "cloudca_connections_timed_out_total{listener=\"public\",phase=\"idle\"} ") >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_body_is_cut_at_the_request_timeout() {
    let ca = ca_with("request_timeout_seconds = 2", "").await;
    let daemon = Daemon::start(&ca).await;
    let mut stream = connect(ca.config.listeners.public, 2).await;
    let head =
        "POST /ocsp/org HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 100\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0x30; 10]).await.unwrap();
    let sent = Instant::now();
    let answer = read_answer(&mut stream, Duration::from_secs(5)).await.expect("a 408 within the request timeout");
    assert_eq!(answer.status, 408, "{}", answer.head);
    assert!(answer.head.contains("connection: close"), "{}", answer.head);
    assert!(sent.elapsed() >= Duration::from_millis(1_500), "cut after {:?}", sent.elapsed());
    assert!(closed_within(&mut stream, Duration::from_secs(3)).await, "connection still open after the 408");
    let m = metrics(&daemon).await;
    assert!(metric(&m, "cloudca_connections_timed_out_total{listener=\"public\",phase=\"request\"} ") >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_over_its_connection_cap_is_refused_while_another_is_served() {
    let ca = ca_with("max_connections_per_client = 3", "").await;
    let daemon = Daemon::start(&ca).await;
    let public = ca.config.listeners.public;
    let mut three = Vec::new();
    for _ in 0..3 {
        let mut s = connect(public, 2).await;
        s.write_all(b"GET /ca/org.crt HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert_eq!(read_answer(&mut s, Duration::from_secs(5)).await.expect("served").status, 200);
        three.push(s);
    }
    // A fourth from the same address is closed at once, unanswered.
    let mut fourth = connect(public, 2).await;
    let _ = fourth.write_all(b"GET /ca/org.crt HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(read_answer(&mut fourth, Duration::from_secs(2)).await.is_none(), "the fourth connection was served");
    // Another client is served meanwhile.
    let mut other = connect(public, 3).await;
    other.write_all(b"GET /ca/org.crt HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert_eq!(read_answer(&mut other, Duration::from_secs(5)).await.expect("other client served").status, 200);
    // A closed connection gives its slot back.
    drop(three.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect(public, 2).await;
    again.write_all(b"GET /ca/org.crt HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert_eq!(read_answer(&mut again, Duration::from_secs(5)).await.expect("slot given back").status, 200);
    let m = metrics(&daemon).await;
    let refused = "cloudca_connections_refused_total{listener=\"public\",reason=\"max_connections_per_client\"} ";
    assert!(metric(&m, refused) >= 1, "{m}");
    assert!(metric(&m, "cloudca_connections_open{listener=\"public\"} ") >= 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_pre_auth_limit_gets_413_without_the_server_reading_it() {
    let ca = ca_with("", "").await;
    let _daemon = Daemon::start(&ca).await;
    let chunk = vec![b'a'; 16 * 1024];
    // Declared 20 MB: 413 at once, after 16 KiB were sent.
    let mut tls = tls_connect(&ca, 2).await;
    let head = "POST /v1/mobile/sms HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\n\r\n";
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&chunk).await.unwrap();
    let answer = read_answer(&mut tls, Duration::from_secs(3)).await.expect("413 before the body was sent");
    assert_eq!(answer.status, 413, "{}", answer.head);
    assert!(answer.head.contains("connection: close"), "{}", answer.head);
    assert!(String::from_utf8_lossy(&answer.body).contains("8192"), "{}", String::from_utf8_lossy(&answer.body));
    // Chunked without a length: 413 once 8 KiB are crossed.
    let mut tls = tls_connect(&ca, 3).await;
    let head = "POST /v1/mobile/sms HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.unwrap();
    tls.write_all(&chunk).await.unwrap();
    tls.write_all(b"\r\n").await.unwrap();
    let answer = read_answer(&mut tls, Duration::from_secs(3)).await.expect("413 before the body ended");
    assert_eq!(answer.status, 413, "{}", answer.head);
    // A small anonymous body is still served.
    let r = api_client(&ca, 4)
        .post(format!("https://localhost:{}/v1/mobile/sms", ca.config.listeners.api.port()))
        .json(&serde_json::json!({ "phone": "+8613800138999" }))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status().as_u16(), 413);
}

/// A CA whose OCSP is limited to 2 requests a minute per client address, with 127.0.0.5 a
/// trusted proxy.
async fn behind_a_proxy(keys: &str) -> (TestCa, Vec<u8>) {
    let keys = format!("trusted_proxies = [\"127.0.0.5\"]\n{keys}");
    let ca = ca_with(&keys, "[limits]\nocsp_per_ip = { count = 2, seconds = 60 }\n").await;
    let (cert, _) = issue_cli(&ca, "proxied", "org", ORG_SUBJECT);
    let der = ocsp_request(&ca, &cert);
    (ca, der)
}

#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_for_names_the_client_only_from_a_trusted_proxy() {
    let (ca, der) = behind_a_proxy("").await;
    let daemon = Daemon::start(&ca).await;
    let status = |from: u8, forwarded: &'static str| {
        let client = reqwest::Client::builder().no_proxy().local_address(loopback(from)).build().unwrap();
        let request = client
            .post(format!("{}/ocsp/org", daemon.public))
            .header("content-type", "application/ocsp-request")
            .header("x-forwarded-for", forwarded)
            .body(der.clone());
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // From the trusted proxy: each named client has its own budget.
    assert_eq!(status(5, "198.51.100.7").await, 200);
    assert_eq!(status(5, "203.0.113.1, 198.51.100.7").await, 200);
    assert_eq!(status(5, "198.51.100.7").await, 429, "the named client's budget is spent");
    assert_eq!(status(5, "198.51.100.8").await, 200, "another client behind the proxy is not limited");
    // What a client writes left of the proxy's entry is not believed.
    assert_eq!(status(5, "198.51.100.9, 198.51.100.7").await, 429);
    // From anyone else the header is ignored: the TCP peer is the client.
    assert_eq!(status(6, "198.51.100.10").await, 200);
    assert_eq!(status(6, "198.51.100.11").await, 200);
    assert_eq!(status(6, "198.51.100.12").await, 429, "an untrusted peer cannot rotate its address");
}

/// A PROXY v2 header naming `client` (IPv4, TCP).
fn proxy_v2(client: [u8; 4]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend([0x21, 0x11, 0, 12]);
    header.extend(client);
    header.extend([127, 0, 0, 1, 0x13, 0x88, 0, 80]);
    header
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_protocol_header_names_the_client_and_is_refused_from_an_untrusted_peer() {
    let (ca, der) = behind_a_proxy("proxy_protocol = [\"public\"]").await;
    let daemon = Daemon::start(&ca).await;
    let public = ca.config.listeners.public;
    let v1 = |client: &str| format!("PROXY TCP4 {client} 127.0.0.1 5000 80\r\n").into_bytes();
    let ask = |from: u8, header: Vec<u8>| {
        let request = [header, ocsp_post(&der)].concat();
        async move {
            let mut stream = connect(public, from).await;
            let _ = stream.write_all(&request).await;
            read_answer(&mut stream, Duration::from_secs(3)).await.map(|a| a.status)
        }
    };
    // Through the trusted proxy, v1 and v2: the named client is limited, not the proxy.
    assert_eq!(ask(5, v1("198.51.100.7")).await, Some(200));
    assert_eq!(ask(5, proxy_v2([198, 51, 100, 7])).await, Some(200));
    assert_eq!(ask(5, v1("198.51.100.7")).await, Some(429));
    assert_eq!(ask(5, v1("198.51.100.8")).await, Some(200), "another client behind the proxy");
    // A header from a peer that is not a trusted proxy: closed, unanswered.
    assert_eq!(ask(6, v1("198.51.100.9")).await, None);
    // Without the header, or with a malformed one, even from the proxy: closed, unanswered.
    assert_eq!(ask(5, Vec::new()).await, None);
    assert_eq!(ask(5, b"PROXY TCP4 198.51.100.9 127.0.0.1 5000\r\n".to_vec()).await, None);
    let m = metrics(&daemon).await;
    let refused = |reason: &str| {
        metric(&m, &format!("cloudca_connections_refused_total{{listener=\"public\",reason=\"{reason}\"}} "))
    };
    assert!(refused("untrusted_proxy") >= 1 && refused("proxy_header") >= 2, "{m}");
}
