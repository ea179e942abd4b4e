//! The command line as operators' scripts use it: the real binary in a child process.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_cloudca");

#[tokio::test(flavor = "multi_thread")]
async fn dev_init_refuses_a_non_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep"), "x").unwrap();
    let out = cloudca(&["dev-init", "--dir", dir.path().to_str().unwrap()]);
    assert!(!out.ok);
    assert!(out.text.contains("is not empty"), "{}", out.text);
    assert!(dir.path().join("keep").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_init_writes_listeners_on_loopback() {
    let ca = TestCa::new().await;
    let text = std::fs::read_to_string(&ca.config_path).unwrap();
    let listeners = text.split("[listeners]").nth(1).unwrap().split('[').next().unwrap();
    for key in ["public", "api", "admin", "metrics"] {
        assert!(listeners.contains(&format!("{key} = \"127.0.0.1:")), "{key} missing: {listeners}");
    }
    for secret in ["secrets/hsm-user.pin", "tls/server.key", "tls/clients/operator.key"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(ca.config_path.parent().unwrap().join(secret)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "{secret} must not be readable by others");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn config_check_names_an_unknown_key() {
    let ca = TestCa::new().await;
    let config = ca.config_path.to_str().unwrap();
    let out = cloudca(&["--config", config, "config", "check"]);
    assert!(out.ok, "{}", out.text);
    let bad = ca.path("bad.toml");
    let text = std::fs::read_to_string(&ca.config_path).unwrap().replace("token_label", "token_lable");
    std::fs::write(&bad, text).unwrap();
    let out = cloudca(&["--config", bad.to_str().unwrap(), "config", "check"]);
    assert!(!out.ok);
    assert!(out.text.contains("token_lable"), "{}", out.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_then_show_and_list_through_the_cli() {
    let ca = TestCa::new().await;
    let config = ca.config_path.to_str().unwrap();
    let key = make_key(ca.dir.path(), "k", "ec:P-256");
    make_csr(ca.dir.path(), "c", &key, PERSONAL_SUBJECT);
    let (csr, out_pem, chain) = (ca.path("c.csr"), ca.path("cert.pem"), ca.path("chain.pem"));
    let out = cloudca(&[
        "--config",
        config,
        "issue",
        "--profile",
        "personal",
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        out_pem.to_str().unwrap(),
        "--chain-out",
        chain.to_str().unwrap(),
    ]);
    assert!(out.ok, "{}", out.text);
    let verify = run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            ca.ca_pem("root").to_str().unwrap(),
            "-untrusted",
            chain.to_str().unwrap(),
            out_pem.to_str().unwrap(),
        ],
    );
    assert!(verify.ok, "{}", verify.text);
    // The serial as openssl prints it: upper case with colons.
    let serial = run("openssl", &["x509", "-in", out_pem.to_str().unwrap(), "-noout", "-serial"]).text;
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    let colons: String =
        serial.as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":");
    let show = cloudca(&["--config", config, "cert", "show", &colons]);
    assert!(show.ok, "{}", show.text);
    assert!(show.text.contains("status:      issued") && show.text.contains("BEGIN CERTIFICATE"), "{}", show.text);
    let list = cloudca(&["--config", config, "cert", "list"]);
    assert!(list.ok, "{}", list.text);
    assert_eq!(list.text.lines().count(), 1, "{}", list.text);
    assert!(list.text.starts_with(&serial.to_lowercase()), "{}", list.text);
    let unknown = cloudca(&["--config", config, "cert", "show", "abcdef"]);
    assert!(!unknown.ok && unknown.text.contains("no certificate with serial"), "{}", unknown.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_refuses_a_bad_csr_with_a_data_error_and_writes_nothing() {
    let ca = TestCa::new().await;
    let csr = ca.path("bad.csr");
    std::fs::write(&csr, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n").unwrap();
    let out_pem = ca.path("never.pem");
    let out = Command::new(BIN)
        .args([
            "--config",
            ca.config_path.to_str().unwrap(),
            "issue",
            "--profile",
            "org",
            "--csr",
            csr.to_str().unwrap(),
            "--out",
            out_pem.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed CSR"));
    assert!(!out_pem.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_answers_live_ready_and_metrics() {
    let ca = TestCa::new().await;
    let mut child = Command::new(BIN)
        .args(["--config", ca.config_path.to_str().unwrap(), "serve"])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let metrics = format!("http://{}", ca.config.listeners.metrics);
    let public = format!("http://{}", ca.config.listeners.public);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        if let Ok(r) = client.get(format!("{metrics}/ready")).send().await {
            break r;
        }
        assert!(Instant::now() < deadline, "daemon did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready.status(), 200);
    assert_eq!(client.get(format!("{metrics}/live")).send().await.unwrap().status(), 200);
    let text = client.get(format!("{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
    for name in [
        "cloudca_hsm_pool_size 2",
        "cloudca_hsm_ready 1",
        "cloudca_hsm_operation_seconds_bucket",
        "cloudca_hsm_operations_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    let ca_cert = client.get(format!("{public}/ca/org.crt")).send().await.unwrap();
    assert_eq!(ca_cert.headers()["content-type"], "application/pkix-cert");
    let der = ca_cert.bytes().await.unwrap();
    assert_eq!(der.as_ref(), pem::parse(std::fs::read(ca.ca_pem("org")).unwrap()).unwrap().contents());
    assert_eq!(client.get(format!("{public}/ca/nope.crt")).send().await.unwrap().status(), 404);
    // Service keys are not CAs relying parties should fetch.
    assert_eq!(client.get(format!("{public}/ca/operators.crt")).send().await.unwrap().status(), 404);
    assert_eq!(client.get(format!("{public}/ca/audit.crt")).send().await.unwrap().status(), 404);
    // CRLs carry an ETag; a conditional request for the same CRL is 304 without a body.
    // The first CRLs are built by the status task just after start-up (503 until then).
    let deadline = Instant::now() + Duration::from_secs(20);
    let crl = loop {
        let crl = client.get(format!("{public}/crl/org.crl")).send().await.unwrap();
        if crl.status() == 200 || Instant::now() > deadline {
            break crl;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(crl.status(), 200);
    let etag = crl.headers()["etag"].clone();
    let again = client.get(format!("{public}/crl/org.crl")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
    child.kill().unwrap();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn renew_outside_the_window_is_a_data_error_and_reissue_replaces_the_certificate() {
    let ca = TestCa::new().await;
    let config = ca.config_path.to_str().unwrap();
    let (_, serial) = issue_cli(&ca, "old", "personal", PERSONAL_SUBJECT);
    let out_pem = ca.path("renewed.pem");
    let out = Command::new(BIN)
        .args(["--config", config, "renew", "--serial", &serial, "--out", out_pem.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("renewal window opens on"));
    assert!(!out_pem.exists());

    let key = make_key(ca.dir.path(), "new", "ec:P-384");
    make_csr(ca.dir.path(), "new", &key, PERSONAL_SUBJECT);
    let (csr, new_pem, chain) = (ca.path("new.csr"), ca.path("new.pem"), ca.path("chain.pem"));
    let out = cloudca(&[
        "--config",
        config,
        "reissue",
        "--serial",
        &serial,
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        new_pem.to_str().unwrap(),
        "--chain-out",
        chain.to_str().unwrap(),
    ]);
    assert!(out.ok, "{}", out.text);
    let verify = run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            ca.ca_pem("root").to_str().unwrap(),
            "-untrusted",
            chain.to_str().unwrap(),
            new_pem.to_str().unwrap(),
        ],
    );
    assert!(verify.ok, "{}", verify.text);
    let show = cloudca(&["--config", config, "cert", "show", &serial]);
    assert!(show.text.contains("status:      revoked"), "{}", show.text);
}

/// Every back-office action at the console: search, status, CRLs, audit, platforms and
/// operator credentials; destructive ones refuse to run unconfirmed without a terminal.
#[tokio::test(flavor = "multi_thread")]
async fn back_office_actions_have_cli_parity_and_destructive_ones_need_confirmation() {
    let ca = TestCa::new().await;
    let config = ca.config_path.to_str().unwrap();
    let (_, serial) = issue_cli(&ca, "ee", "org", ORG_SUBJECT);
    let serial = serial.to_lowercase();

    let found =
        cloudca(&["--config", config, "cert", "search", "--identifier", "91350100M000100Y43", "--status", "issued"]);
    assert!(found.ok && found.text.contains(&serial), "{}", found.text);
    let none = cloudca(&["--config", config, "cert", "search", "--status", "revoked"]);
    assert!(none.ok && !none.text.contains(&serial), "{}", none.text);
    let status = cloudca(&["--config", config, "status"]);
    assert!(status.ok && status.text.contains("instance:     ready"), "{}", status.text);
    let crls = cloudca(&["--config", config, "crl", "--all"]);
    assert!(crls.ok && crls.text.contains("of org partition 0"), "{}", crls.text);

    // Bulk revocation from a file: unconfirmed it changes nothing, with --yes it revokes.
    let list = ca.path("serials.txt");
    std::fs::write(&list, format!("# to revoke\n{serial}\n")).unwrap();
    let bulk = ["--config", config, "revoke", "--from-file", list.to_str().unwrap(), "--reason", "superseded"];
    let refused = cloudca(&bulk);
    assert!(!refused.ok && refused.text.contains("About to revoke 1 certificate") && refused.text.contains("--yes"));
    assert_eq!(ca.open().await.store.count_certificates("revoked").await.unwrap(), 0);
    let done = cloudca(&[&bulk[..], &["--yes"]].concat());
    assert!(done.ok && done.text.contains(&format!("revoked {serial}")), "{}", done.text);

    // Operator credentials.
    let key = make_key(ca.dir.path(), "op", "ec:P-256");
    make_csr(ca.dir.path(), "op", &key, "/CN=Console Operator");
    let csr = ca.path("op.csr");
    let out = ca.path("op.pem");
    let issued = cloudca(&[
        "--config",
        config,
        "operator",
        "issue",
        "--csr",
        csr.to_str().unwrap(),
        "--role",
        "auditor",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(issued.ok, "{}", issued.text);
    let op_serial = issued.text.split_whitespace().nth(1).unwrap().to_string();
    let text = run("openssl", &["x509", "-in", out.to_str().unwrap(), "-noout", "-subject"]).text;
    assert!(text.contains("OU = auditor") && text.contains("CN = Console Operator"), "{text}");
    let bad_role = cloudca(&[
        "--config",
        config,
        "operator",
        "issue",
        "--csr",
        csr.to_str().unwrap(),
        "--role",
        "king",
        "--out",
        "/dev/null",
    ]);
    assert!(!bad_role.ok && bad_role.text.contains("unknown role"), "{}", bad_role.text);
    let revoke = ["--config", config, "operator", "revoke", "--serial", &op_serial, "--reason", "keyCompromise"];
    let refused = cloudca(&revoke);
    assert!(!refused.ok && refused.text.contains("--yes"), "{}", refused.text);
    let listed = cloudca(&["--config", config, "operator", "list"]);
    assert!(listed.text.contains(&format!("{op_serial}\tactive")), "{}", listed.text);
    assert!(cloudca(&[&revoke[..], &["--yes"]].concat()).ok);
    let listed = cloudca(&["--config", config, "operator", "list"]);
    assert!(listed.text.contains(&format!("{op_serial}\trevoked")), "{}", listed.text);

    // Relying platforms.
    let register = cloudca(&[
        "--config",
        config,
        "platform",
        "register",
        "--name",
        "portal",
        "--display-name",
        "Portal",
        "--callback-url",
        "https://portal.example/cb",
        "--certificate",
        out.to_str().unwrap(),
    ]);
    assert!(register.ok, "{}", register.text);
    let again = cloudca(&[
        "--config",
        config,
        "platform",
        "register",
        "--name",
        "portal",
        "--display-name",
        "Portal",
        "--callback-url",
        "https://portal.example/cb",
        "--fingerprint",
        &"ab".repeat(32),
    ]);
    assert!(!again.ok && again.text.contains("registered already"), "{}", again.text);
    assert!(!cloudca(&["--config", config, "platform", "disable", "portal"]).ok, "unconfirmed");
    assert!(cloudca(&["--config", config, "platform", "disable", "portal", "--yes"]).ok);
    let shown = cloudca(&["--config", config, "platform", "show", "portal"]);
    assert!(shown.text.contains("portal\tdisabled"), "{}", shown.text);

    // The audit log holds all of it, in a verified chain.
    let audit = cloudca(&["--config", config, "audit", "list", "--kind", "operator.certificate.revoked"]);
    assert!(audit.ok && audit.text.contains(&op_serial), "{}", audit.text);
    for kind in ["certificate.revoked", "platform.registered", "platform.disabled"] {
        let listed = cloudca(&["--config", config, "audit", "list", "--kind", kind, "--actor", "cli"]);
        assert_eq!(listed.text.lines().count(), 1, "{kind}: {}", listed.text);
    }
    assert!(cloudca(&["--config", config, "audit", "verify"]).ok);
}
