//! Revocation, CRLs and OCSP, checked by openssl and pkilint against the running daemon.

use std::time::{Duration, Instant};

use base64::Engine;

use crate::common::*;
use cloudca::status::{Revocation, RevocationReason, StatusError};

/// Runs `openssl ocsp` against the daemon; returns its output.
pub(crate) fn ocsp(ca: &TestCa, daemon: &Daemon, cert: &std::path::Path, extra: &[&str]) -> Output {
    OcspCheck::new(ca, &daemon.public).run(cert, extra)
}

/// Waits until `openssl ocsp` says `expected` (the revocation feed is polled).
pub(crate) async fn wait_for_ocsp(ca: &TestCa, daemon: &Daemon, cert: &std::path::Path, expected: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ocsp(ca, daemon, cert, &["-no_nonce"]);
        if out.text.contains(expected) {
            return out;
        }
        assert!(Instant::now() < deadline, "OCSP never said {expected:?}: {}", out.text);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsp_reports_good_then_revoked_with_its_reason() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let (cert, serial) = issue_cli(&ca, "ee", "org", ORG_SUBJECT);
    // POST, without and with a nonce; the responder signature verifies against the CA.
    let out = ocsp(&ca, &daemon, &cert, &["-no_nonce"]);
    assert!(out.text.contains("Response verify OK") && out.text.contains(": good"), "{}", out.text);
    let out = ocsp(&ca, &daemon, &cert, &[]);
    assert!(out.text.contains("Response verify OK") && out.text.contains(": good"), "{}", out.text);
    assert!(!out.text.contains("WARNING"), "nonce must be echoed: {}", out.text);

    // Revoked from another process (the CLI): the daemon serves it within the bound.
    // Destructive without a terminal and without --yes: refused at once, nothing revoked.
    let config = ca.config_path.to_str().unwrap();
    let refused = cloudca(&["--config", config, "revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    assert!(!refused.ok && refused.text.contains("pass --yes"), "{}", refused.text);
    assert!(refused.text.contains(&serial.replace(':', "").to_lowercase()), "shows what it would do: {}", refused.text);
    assert_eq!(ca.open().await.store.count_certificates("revoked").await.unwrap(), 0);
    let revoked = cloudca(&[
        "--config",
        ca.config_path.to_str().unwrap(),
        "revoke",
        "--yes",
        "--serial",
        &serial,
        "--reason",
        "keyCompromise",
    ]);
    assert!(revoked.ok, "{}", revoked.text);
    let out = wait_for_ocsp(&ca, &daemon, &cert, ": revoked").await;
    assert!(out.text.contains("Response verify OK") && out.text.contains("Reason: keyCompromise"), "{}", out.text);
    let out = ocsp(&ca, &daemon, &cert, &[]);
    assert!(out.text.contains(": revoked") && !out.text.contains("WARNING"), "{}", out.text);

    // GET, plain base64 and URL-encoded, verified by openssl from the saved response.
    let issuer = ca.ca_pem("org");
    let b64 = base64::engine::general_purpose::STANDARD.encode(ocsp_request(&ca, &cert));
    let encoded: String = b64
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_string(),
            '/' => "%2F".to_string(),
            '=' => "%3D".to_string(),
            c => c.to_string(),
        })
        .collect();
    for path in [b64.clone(), encoded] {
        let response = http().get(format!("{}/ocsp/org/{path}", daemon.public)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let h = response.headers().clone();
        assert_eq!(h["content-type"], "application/ocsp-response");
        for name in ["cache-control", "last-modified", "expires", "etag"] {
            assert!(h.contains_key(name), "{name} missing");
        }
        assert!(h["cache-control"].to_str().unwrap().contains("max-age="));
        let resp = ca.path("get.der");
        std::fs::write(&resp, response.bytes().await.unwrap()).unwrap();
        let bundle = bundle(&ca, "org");
        let out = run(
            "openssl",
            &[
                "ocsp",
                "-respin",
                resp.to_str().unwrap(),
                "-issuer",
                issuer.to_str().unwrap(),
                "-cert",
                cert.to_str().unwrap(),
                "-CAfile",
                bundle.to_str().unwrap(),
                "-verify_other",
                issuer.to_str().unwrap(),
                "-no_nonce",
            ],
        );
        assert!(out.text.contains("Response verify OK") && out.text.contains(": revoked"), "{}", out.text);
        // A conditional GET with the ETag is answered 304.
        let again = http()
            .get(format!("{}/ocsp/org/{path}", daemon.public))
            .header("if-none-match", h["etag"].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_crl_at_the_distribution_point_rejects_revoked_and_accepts_good() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let (good, _) = issue_cli(&ca, "good", "org", ORG_SUBJECT);
    let (bad, bad_serial) = issue_cli(&ca, "bad", "org", ORG_SUBJECT);
    assert!(
        cloudca(&[
            "--config",
            ca.config_path.to_str().unwrap(),
            "revoke",
            "--yes",
            "--serial",
            &bad_serial,
            "--reason",
            "superseded"
        ])
        .ok
    );
    // The URL exactly as written in the certificate.
    let text = run("openssl", &["x509", "-in", bad.to_str().unwrap(), "-noout", "-ext", "crlDistributionPoints"]).text;
    let url = text.lines().find_map(|l| l.trim().strip_prefix("URI:")).expect("CDP URI").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let crl_der = loop {
        let response = http().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/pkix-crl");
        let der = response.bytes().await.unwrap().to_vec();
        let listed =
            run("openssl", &["crl", "-inform", "DER", "-noout", "-text", "-in", &write_tmp(&ca, "probe.crl", &der)])
                .text;
        if listed.contains(&bad_serial) {
            break der;
        }
        assert!(Instant::now() < deadline, "the revocation never reached the CRL");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let crl_pem = ca.path("org.crl.pem");
    write_pem(&crl_pem, "X509 CRL", &crl_der);
    let bundle = bundle(&ca, "org");
    let verify = |cert: &std::path::Path| {
        run(
            "openssl",
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                bundle.to_str().unwrap(),
                "-CRLfile",
                crl_pem.to_str().unwrap(),
                cert.to_str().unwrap(),
            ],
        )
    };
    let out = verify(&bad);
    assert!(!out.ok && out.text.contains("certificate revoked"), "{}", out.text);
    let out = verify(&good);
    assert!(out.ok, "{}", out.text);
    // The whole chain with CRLs: the issuing CA's CDP names the root's CRL, which is served too.
    let ca_cdp =
        run("openssl", &["x509", "-in", ca.ca_pem("org").to_str().unwrap(), "-noout", "-ext", "crlDistributionPoints"])
            .text;
    let root_url = ca_cdp.lines().find_map(|l| l.trim().strip_prefix("URI:")).expect("issuing CA CDP").to_string();
    let root_crl = http().get(&root_url).send().await.unwrap();
    assert_eq!(root_crl.status(), 200, "{root_url}");
    let root_der = root_crl.bytes().await.unwrap().to_vec();
    let both = ca.path("both.crl.pem");
    let text = pem::encode(&pem::Pem::new("X509 CRL", crl_der.clone()))
        + &pem::encode(&pem::Pem::new("X509 CRL", root_der.clone()));
    std::fs::write(&both, text).unwrap();
    let out = run(
        "openssl",
        &[
            "verify",
            "-crl_check_all",
            "-CAfile",
            bundle.to_str().unwrap(),
            "-CRLfile",
            both.to_str().unwrap(),
            good.to_str().unwrap(),
        ],
    );
    assert!(out.ok, "{}", out.text);
    let root_file = write_tmp(&ca, "root.crl", &root_der);
    let lint = run("lint_crl", &["lint", "-t", "CRL", "-p", "PKIX", &root_file]);
    assert!(lint.ok, "pkilint root CRL findings: {}", lint.text);
    // pkilint on the CRL with an entry.
    let crl_file = write_tmp(&ca, "org.crl", &crl_der);
    let lint = run("lint_crl", &["lint", "-t", "CRL", "-p", "PKIX", &crl_file]);
    assert!(lint.ok, "pkilint CRL findings: {}", lint.text);
}

fn write_tmp(ca: &TestCa, name: &str, bytes: &[u8]) -> String {
    let path = ca.path(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn pkilint_accepts_good_and_revoked_ocsp_responses() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let (cert, serial) = issue_cli(&ca, "ee", "org", ORG_SUBJECT);
    for (status, expected) in [(None, ": good"), (Some("cessationOfOperation"), ": revoked")] {
        if let Some(reason) = status {
            assert!(
                cloudca(&[
                    "--config",
                    ca.config_path.to_str().unwrap(),
                    "revoke",
                    "--yes",
                    "--serial",
                    &serial,
                    "--reason",
                    reason
                ])
                .ok
            );
            wait_for_ocsp(&ca, &daemon, &cert, expected).await;
        }
        let resp = ca.path("resp.der");
        let out = ocsp(&ca, &daemon, &cert, &["-no_nonce", "-respout", resp.to_str().unwrap()]);
        assert!(out.text.contains(expected), "{}", out.text);
        let lint = run("lint_ocsp_response", &["lint", resp.to_str().unwrap()]);
        assert!(lint.ok, "pkilint OCSP findings ({expected}): {}", lint.text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_ocsp_requests_get_clear_answers_and_change_nothing() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let (cert, _) = issue_cli(&ca, "ee", "org", ORG_SUBJECT);
    let url = format!("{}/ocsp/org", daemon.public);
    let post = |body: Vec<u8>, content_type: &'static str| {
        let url = url.clone();
        async move { http().post(url).header("content-type", content_type).body(body).send().await.unwrap() }
    };
    const MALFORMED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x01];
    const UNAUTHORIZED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x06];
    // Garbage and truncated DER: malformedRequest.
    let req = ca.path("req.der");
    let issuer = ca.ca_pem("org");
    assert!(
        run(
            "openssl",
            &[
                "ocsp",
                "-issuer",
                issuer.to_str().unwrap(),
                "-cert",
                cert.to_str().unwrap(),
                "-reqout",
                req.to_str().unwrap()
            ]
        )
        .ok
    );
    let good_request = std::fs::read(&req).unwrap();
    for body in
        [b"garbage".to_vec(), good_request[..good_request.len() / 2].to_vec(), [good_request.clone(), vec![0]].concat()]
    {
        let r = post(body, "application/ocsp-request").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), MALFORMED);
    }
    // Wrong content type and oversized bodies are refused at the HTTP level.
    assert_eq!(post(good_request.clone(), "text/plain").await.status(), 415);
    assert_eq!(post(vec![0x30; 64 * 1024], "application/ocsp-request").await.status(), 413);
    // Bad base64 in GET.
    let r = http().get(format!("{url}/not*base64!")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), MALFORMED);
    // An issuer we do not serve: unauthorized.
    let root = ca.ca_pem("root");
    let req2 = ca.path("req2.der");
    assert!(
        run(
            "openssl",
            &["ocsp", "-issuer", root.to_str().unwrap(), "-serial", "0x1234", "-reqout", req2.to_str().unwrap()]
        )
        .ok
    );
    let r = post(std::fs::read(&req2).unwrap(), "application/ocsp-request").await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), UNAUTHORIZED);
    // A serial a CA we serve did not issue: unauthorized, unsigned (no HSM work for a guess).
    let bundle = bundle(&ca, "org");
    let out = run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            issuer.to_str().unwrap(),
            "-serial",
            "0x0123456789abcdef",
            "-url",
            &url,
            "-CAfile",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(out.text.contains("unauthorized"), "{}", out.text);
    // A serial another issuing CA issued, asked of this one: unauthorized, not its real status.
    let (_, personal_serial) = issue_cli(&ca, "pp", "personal", PERSONAL_SUBJECT);
    let out = run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            issuer.to_str().unwrap(),
            "-serial",
            &format!("0x{personal_serial}"),
            "-url",
            &url,
            "-CAfile",
            bundle.to_str().unwrap(),
            "-no_nonce",
        ],
    );
    assert!(out.text.contains("unauthorized"), "{}", out.text);
    // Nothing was revoked or changed by any of it.
    let instance = ca.open().await;
    assert_eq!(instance.store.count_certificates("revoked").await.unwrap(), 0);
    assert_eq!(instance.store.count_certificates("issued").await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_twice_is_idempotent_and_unknown_serials_are_clear_errors() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    let csr = make_csr(ca.dir.path(), "c", &key, PERSONAL_SUBJECT);
    let issued = instance.issuance.issue("personal", &csr, "test").await.unwrap();
    let colons = issued.serial.to_uppercase();
    assert_eq!(
        instance.status.revoke(&colons, RevocationReason::PrivilegeWithdrawn, None, "test").await.unwrap(),
        Revocation::Revoked
    );
    match instance.status.revoke(&issued.serial, RevocationReason::KeyCompromise, None, "test").await.unwrap() {
        Revocation::AlreadyRevoked { reason, .. } => {
            assert_eq!(reason, RevocationReason::PrivilegeWithdrawn, "the first reason stands")
        }
        other => panic!("expected AlreadyRevoked, got {other:?}"),
    }
    let err = instance.status.revoke("abcdef0123", RevocationReason::Superseded, None, "test").await.unwrap_err();
    assert!(
        matches!(err, StatusError::UnknownSerial(_)) && err.to_string().contains("no certificate with serial"),
        "{err}"
    );
    let err = instance.status.revoke("xyz", RevocationReason::Superseded, None, "test").await.unwrap_err();
    assert!(matches!(err, StatusError::BadSerial(_)), "{err}");
    assert_eq!(instance.store.count_audit_events("certificate.revoked").await.unwrap(), 1);
    assert_eq!(instance.store.count_audit_events("certificate.revoke_repeated").await.unwrap(), 1);
    // Unspecified is written with no reason code; CRL numbers only go up.
    let first = instance.status.build_crl("personal", 0).await.unwrap();
    let second = instance.status.build_crl("personal", 0).await.unwrap();
    assert!(second.number > first.number);
    assert_eq!(second.entries, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_crls_list_every_revoked_serial_exactly_once_where_its_cdp_points() {
    let mut ca = TestCa::new().await;
    let text = std::fs::read_to_string(&ca.config_path).unwrap() + "\n[status]\ncrl_shards = 4\n";
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    let instance = ca.open().await;
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    let csr = make_csr(ca.dir.path(), "c", &key, ORG_SUBJECT);
    let mut expected = std::collections::HashMap::new();
    for _ in 0..16 {
        let issued = instance.issuance.issue("org", &csr, "test").await.unwrap();
        let cert = ca.path("p.pem");
        write_pem(&cert, "CERTIFICATE", &issued.der);
        let cdp =
            run("openssl", &["x509", "-in", cert.to_str().unwrap(), "-noout", "-ext", "crlDistributionPoints"]).text;
        let file =
            cdp.lines().find_map(|l| l.trim().strip_prefix("URI:")).unwrap().rsplit('/').next().unwrap().to_string();
        instance.status.revoke(&issued.serial, RevocationReason::Superseded, None, "test").await.unwrap();
        expected.insert(issued.serial.to_uppercase(), file);
    }
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for shard in 0..4 {
        let crl = instance.status.build_crl("org", shard).await.unwrap();
        let path = write_tmp(&ca, &format!("org-{shard}.crl"), &crl.der);
        let text = run("openssl", &["crl", "-inform", "DER", "-noout", "-text", "-in", &path]).text;
        assert!(
            text.contains("Issuing Distribution Point: critical") && text.contains(&format!("/crl/org-{shard}.crl")),
            "{text}"
        );
        for (serial, file) in &expected {
            if text.contains(&format!("Serial Number: {serial}")) {
                assert_eq!(file, &format!("org-{shard}.crl"), "{serial} listed on a CRL its CDP does not name");
                *seen.entry(serial.clone()).or_default() += 1;
            }
        }
        let lint = run("lint_crl", &["lint", "-t", "CRL", "-p", "PKIX", &path]);
        assert!(lint.ok, "pkilint on partition {shard}: {}", lint.text);
    }
    assert_eq!(seen.len(), 16, "every revoked serial is on a CRL");
    assert!(seen.values().all(|n| *n == 1), "and on exactly one");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_hsm_down_pre_signed_responses_are_still_served_and_readiness_is_degraded() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let (cert, serial) = issue_cli(&ca, "ee", "org", ORG_SUBJECT);
    instance.status.presign(&serial.to_lowercase()).await.expect("pre-signed while the HSM is up");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(cloudca::daemon::serve(instance.clone(), async move {
        let _ = stopped.await;
    }));
    let metrics = format!("http://{}", ca.config.listeners.metrics);
    let deadline = Instant::now() + Duration::from_secs(20);
    while http().get(format!("{metrics}/ready")).send().await.is_err() {
        assert!(Instant::now() < deadline, "daemon did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Wait for the start-up CRLs, then take the HSM away.
    let public = format!("http://{}", ca.config.listeners.public);
    while http().get(format!("{public}/crl/org.crl")).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "no CRL published");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    instance.hsm.dangerous_suspend(true);

    let ready: serde_json::Value =
        serde_json::from_slice(&http().get(format!("{metrics}/ready")).send().await.unwrap().bytes().await.unwrap())
            .unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    let daemon = Daemon::detached(public.clone(), metrics.clone());
    let out = ocsp(&ca, &daemon, &cert, &["-no_nonce"]);
    assert!(
        out.text.contains("Response verify OK") && out.text.contains(": good"),
        "pre-signed answer still served: {}",
        out.text
    );
    assert_eq!(
        http().get(format!("{public}/crl/org.crl")).send().await.unwrap().status(),
        200,
        "the current CRL is still served"
    );
    // Something that needs a signature now (a SHA-256 CertID) gets tryLater, never a wrong answer.
    let issuer = ca.ca_pem("org");
    let req = ca.path("sha256.der");
    assert!(
        run(
            "openssl",
            &[
                "ocsp",
                "-issuer",
                issuer.to_str().unwrap(),
                "-sha256",
                "-cert",
                cert.to_str().unwrap(),
                "-no_nonce",
                "-reqout",
                req.to_str().unwrap()
            ]
        )
        .ok
    );
    let r = http()
        .post(format!("{public}/ocsp/org"))
        .header("content-type", "application/ocsp-request")
        .body(std::fs::read(&req).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &[0x30, 0x03, 0x0a, 0x01, 0x03], "tryLater");

    instance.hsm.dangerous_suspend(false);
    let ready: serde_json::Value =
        serde_json::from_slice(&http().get(format!("{metrics}/ready")).send().await.unwrap().bytes().await.unwrap())
            .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_about_several_certificates_gets_every_status() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let (first, _) = issue_cli(&ca, "one", "org", ORG_SUBJECT);
    let (second, second_serial) = issue_cli(&ca, "two", "org", ORG_SUBJECT);
    assert!(
        cloudca(&[
            "--config",
            ca.config_path.to_str().unwrap(),
            "revoke",
            "--yes",
            "--serial",
            &second_serial,
            "--reason",
            "affiliationChanged"
        ])
        .ok
    );
    let issuer = ca.ca_pem("org");
    let bundle = bundle(&ca, "org");
    let url = format!("{}/ocsp/org", daemon.public);
    let out = run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            issuer.to_str().unwrap(),
            "-cert",
            first.to_str().unwrap(),
            "-cert",
            second.to_str().unwrap(),
            "-url",
            &url,
            "-CAfile",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(out.text.contains("Response verify OK"), "{}", out.text);
    assert!(out.text.contains(&format!("{}: good", first.display())), "{}", out.text);
    assert!(
        out.text.contains(&format!("{}: revoked", second.display())) && out.text.contains("Reason: affiliationChanged"),
        "{}",
        out.text
    );
}

/// A CRL longer than one database read (`CRL_CHUNK` entries per chunk) lists every entry
/// exactly once and in serial order across the chunk boundaries: a cursor off by one would
/// drop or repeat the entry at each boundary, an unordered concatenation would scramble them.
#[tokio::test(flavor = "multi_thread")]
async fn a_crl_longer_than_one_read_chunk_lists_every_entry_once_in_serial_order() {
    use der::Decode;
    use sqlx::Connection;
    let ca = TestCa::new().await;
    let total = 2 * cloudca::store::CRL_CHUNK as u64 + 3;
    let mut conn = sqlx::AnyConnection::connect(&ca.config.database.url).await.unwrap();
    // Revocation rows only (no certificate rows behind them): foreign keys off here.
    let no_fk = if ca.config.database.url.starts_with("postgres") {
        "SET session_replication_role = replica"
    } else {
        "PRAGMA foreign_keys = OFF"
    };
    sqlx::query(no_fk).execute(&mut conn).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut expected = Vec::new();
    // Inserted out of serial order, so the order on the CRL comes from the read.
    for n in (0..total).rev() {
        let serial = format!("{:016x}{:016x}", 0x4000_0000_0000_0000u64 | n.wrapping_mul(0x9e37_79b9_7f4a_7c15), n);
        let entry = cloudca::status::crl::encode_entry(&cloudca::status::crl::Entry {
            serial: hex::decode(&serial).unwrap(),
            revoked_at: now,
            reason: RevocationReason::Superseded,
            invalidity_date: None,
        });
        sqlx::query(
            "INSERT INTO revocations (serial, issuer, crl_shard, revoked_at, reason, not_after, entry) \
             VALUES ($1, 'org', 0, $2, 4, $3, $4)",
        )
        .bind(&serial)
        .bind(now.unix_timestamp())
        .bind(now.unix_timestamp() + 86_400)
        .bind(entry)
        .execute(&mut conn)
        .await
        .unwrap();
        expected.push(serial);
    }
    expected.sort();
    let instance = ca.open().await;
    let crl = instance.status.build_crl("org", 0).await.unwrap();
    assert_eq!(crl.entries as u64, total);
    let list = x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&crl.der).unwrap();
    let listed: Vec<String> = list
        .tbs_cert_list
        .revoked_certificates
        .unwrap()
        .iter()
        .map(|r| hex::encode(r.serial_number.as_bytes().strip_prefix(&[0]).unwrap_or(r.serial_number.as_bytes())))
        .collect();
    assert_eq!(listed, expected);
}
