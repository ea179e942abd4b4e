//! Two daemons on one database (the suite's PostgreSQL in its PostgreSQL pass, one shared
//! SQLite file otherwise), with requests for the same objects landing on either: issuance,
//! revocation, OCSP, CRLs, signing sessions and PIN counters stay correct, once-only work
//! runs on exactly one daemon, and when that daemon is killed the other takes it over.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::admin::Admin;
use crate::common::*;
use crate::signing::{enrolled, open, payload, Api, As, PHONE};
use crate::status::{ocsp, wait_for_ocsp};

/// Issues an organisation certificate through a daemon's admin API; returns (serial, PEM path).
fn issue(ca: &TestCa, admin: &Admin, name: &str) -> (String, std::path::PathBuf) {
    let key = make_key(ca.dir.path(), name, "ec:P-256");
    make_csr(ca.dir.path(), name, &key, ORG_SUBJECT);
    let csr = std::fs::read_to_string(ca.path(&format!("{name}.csr"))).unwrap();
    let body = serde_json::json!({ "csr": csr, "profile": "org" }).to_string();
    let issued = admin.json("operator", "POST", "/v1/certificates", Some(&body));
    let path = ca.path(&format!("{name}.pem"));
    std::fs::write(&path, issued["pem"].as_str().unwrap()).unwrap();
    (issued["serial"].as_str().unwrap().to_string(), path)
}

fn revoke(admin: &Admin, serial: &str) -> String {
    let done = admin.json(
        "operator",
        "POST",
        &format!("/v1/certificates/{serial}/revoke"),
        Some(r#"{"reason":"keyCompromise"}"#),
    );
    done["outcome"].as_str().unwrap().to_string()
}

/// `cloudca_leases_held{job="..."}` as a daemon exports it (0 when absent).
async fn holds(daemon: &Daemon, job: &str) -> u32 {
    let text = http().get(format!("{}/metrics", daemon.metrics)).send().await.unwrap().text().await.unwrap();
    let line = format!("cloudca_leases_held{{job=\"{job}\"}} 1");
    u32::from(text.lines().any(|l| l == line))
}

/// A daemon's current org CRL: (CRL number, serials listed in lower-case hex, DER digest).
async fn crl(ca: &TestCa, daemon: &Daemon) -> Option<(u64, Vec<String>, [u8; 32])> {
    let response = http().get(format!("{}/crl/org.crl", daemon.public)).send().await.ok()?;
    if response.status() != 200 {
        return None;
    }
    let der = response.bytes().await.ok()?;
    let path = ca.path(&format!("crl-{}.der", rand::random::<u32>()));
    std::fs::write(&path, &der).unwrap();
    let text = run("openssl", &["crl", "-inform", "DER", "-in", path.to_str().unwrap(), "-noout", "-text"]).text;
    let number = text.lines().skip_while(|l| !l.contains("CRL Number")).nth(1)?.trim().parse().ok()?;
    let serials = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
        .map(|s| s.trim().trim_start_matches('0').to_lowercase())
        .collect();
    Some((number, serials, sha2::Sha256::digest(&der).into()))
}

fn bare(serial: &str) -> String {
    serial.trim_start_matches('0').to_lowercase()
}

/// Polls both daemons' CRLs until each lists every serial; checks on the way that one CRL
/// number always means one CRL (never two different lists under the same number).
async fn until_listed(ca: &TestCa, daemons: &[&Daemon], serials: &[&str], seen: &mut BTreeMap<u64, [u8; 32]>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut all = true;
        for d in daemons {
            match crl(ca, d).await {
                Some((number, listed, digest)) => {
                    assert_eq!(*seen.entry(number).or_insert(digest), digest, "two different CRLs numbered {number}");
                    all &= serials.iter().all(|s| listed.contains(&bare(s)));
                }
                None => all = false,
            }
        }
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "revoked serials {serials:?} never reached both daemons' CRLs");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_share_issuance_revocation_status_signing_and_pin_counters() {
    let a = TestCa::new().await;
    let b = a.twin();
    let (da, db) = (Daemon::start(&a).await, Daemon::start(&b).await);
    let (admin_a, admin_b) = (Admin::new(&a), Admin::new(&b));

    // Issuance alternating between the daemons: distinct serials, each visible on the other.
    let mut issued = Vec::new();
    for i in 0..8 {
        let (on, other) = if i % 2 == 0 { (&admin_a, &admin_b) } else { (&admin_b, &admin_a) };
        let (serial, pem) = issue(&a, on, &format!("c{i}"));
        let shown = other.json("auditor", "GET", &format!("/v1/certificates/{serial}"), None);
        assert_eq!(shown["serial"].as_str().map(bare), Some(bare(&serial)), "{shown}");
        issued.push((serial, pem));
    }
    let mut serials: Vec<_> = issued.iter().map(|(s, _)| bare(s)).collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), issued.len(), "no serial handed out twice");

    // Revocation on the daemon that did not issue; a repeat on the other changes nothing.
    assert_eq!(revoke(&admin_b, &issued[0].0), "revoked");
    assert_eq!(revoke(&admin_a, &issued[1].0), "revoked");
    assert_eq!(revoke(&admin_a, &issued[0].0), "already revoked");
    for d in [&da, &db] {
        wait_for_ocsp(&a, d, &issued[0].1, ": revoked").await;
        wait_for_ocsp(&a, d, &issued[1].1, ": revoked").await;
        assert!(ocsp(&a, d, &issued[2].1, &["-no_nonce"]).text.contains(": good"));
    }
    let mut seen = BTreeMap::new();
    until_listed(&a, &[&da, &db], &[&issued[0].0, &issued[1].0], &mut seen).await;

    // Each once-only job runs on exactly one of the two.
    for job in ["crl", "ocsp-refresh", "ra", "audit-checkpoint", "session-purge"] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while holds(&da, job).await + holds(&db, job).await != 1 {
            assert!(Instant::now() < deadline, "job {job} is not held by exactly one daemon");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // A signing session opened on one daemon, claimed and approved on the other; wrong PINs
    // counted across both.
    let (api_a, api_b) = (Api { ca: &a }, Api { ca: &b });
    let (token, credential, _) = enrolled(&a, &api_a, PHONE);
    let (session, start, secret) = open(&api_b, b"contract", "raw");
    let claim = format!(r#"{{"payload":"{}"}}"#, payload(&start, &secret, Instant::now()));
    assert_eq!(api_a.call(As::Holder(&token), "POST", "/v1/mobile/sessions/claim", Some(&claim)).0, "200");
    let approve = format!("/v1/mobile/sessions/{session}/approve");
    let wrong = format!(r#"{{"credential_id":"{credential}","pin":"000000"}}"#);
    for (api, left) in [(&api_b, "4 tries left"), (&api_a, "3 tries left"), (&api_b, "2 tries left")] {
        let (status, problem) = api.call(As::Holder(&token), "POST", &approve, Some(&wrong));
        assert!(status == "403" && problem["title"].as_str().unwrap().contains(left), "{status} {problem}");
    }
    let right = format!(r#"{{"credential_id":"{credential}","pin":"246810"}}"#);
    assert_eq!(api_a.call(As::Holder(&token), "POST", &approve, Some(&right)).0, "200");
    assert_eq!(api_b.call(As::Holder(&token), "POST", &approve, Some(&right)).0, "409", "signs once, anywhere");
    let (_, view) = api_b.call(As::Platform, "GET", &format!("/v1/signing/sessions/{session}"), None);
    assert_eq!(view["state"], "signed", "{view}");

    // One audit chain, intact, whichever daemon is asked.
    for admin in [&admin_a, &admin_b] {
        let verdict = admin.json("auditor", "GET", "/v1/audit/verify", None);
        assert_eq!(verdict["intact"], true, "{verdict}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_daemon_holding_the_crl_lease_is_killed_the_other_takes_over() {
    let a = TestCa::new().await;
    let b = a.twin();
    let (da, db) = (Daemon::start(&a).await, Daemon::start(&b).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder_is_a = loop {
        match (holds(&da, "crl").await, holds(&db, "crl").await) {
            (1, 0) => break true,
            (0, 1) => break false,
            _ => assert!(Instant::now() < deadline, "nobody took the CRL lease"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (holder, survivor, ca) = if holder_is_a { (da, db, &b) } else { (db, da, &a) };
    let admin = Admin::new(ca);
    let (before, _) = issue(&a, &admin, "before");
    assert_eq!(revoke(&admin, &before), "revoked");
    let mut seen = BTreeMap::new();
    until_listed(&a, &[&survivor], &[&before], &mut seen).await;
    let newest_before = *seen.keys().last().unwrap();

    // kill -9: no release; the survivor must wait out the lease, then build.
    drop(holder);
    let killed = Instant::now();
    let (after, _) = issue(&a, &admin, "after");
    assert_eq!(revoke(&admin, &after), "revoked");
    until_listed(&a, &[&survivor], &[&before, &after], &mut seen).await;
    eprintln!(
        "CRL lease takeover: revocation listed by the survivor {:.1} s after the holder was killed (lease TTL {} s)",
        killed.elapsed().as_secs_f64(),
        cloudca::coord::TTL.as_secs()
    );
    assert!(*seen.keys().last().unwrap() > newest_before, "CRL numbers keep rising across the takeover");
    assert_eq!(holds(&survivor, "crl").await, 1);
    let verdict = admin.json("auditor", "GET", "/v1/audit/verify", None);
    assert_eq!(verdict["intact"], true, "{verdict}");
}

/// Issue 15, point 5: the sandbox providers keep their state in the database, as a real
/// provider keeps it on its side: a micro-deposit, a face check and a payment started through
/// one daemon complete through another (and so across a restart).
#[tokio::test(flavor = "multi_thread")]
async fn sandbox_deposits_face_checks_and_payments_started_on_one_daemon_finish_on_another() {
    use crate::ra::{agent, company, ra_ca, Client, CREDIT, REP};
    use serde_json::{json, Value};
    let ca = ra_ca().await;
    let twin = ca.twin();
    let _a = Daemon::start(&ca).await;
    let _b = Daemon::start(&twin).await;
    let (a, b) = (Client::new(&ca, "web-front"), Client::new(&twin, "web-front"));
    // A micro-deposit paid through daemon A, its code read back through daemon B.
    let (id, token) = a.create("personal-new").await;
    a.choose_method(&id, &token, "bank-account").await;
    let person = json!({ "name": "王五", "id_number": "110101199003074338", "phone": "+8613900139000", "email": "w@example.com",
                         "bank": { "account_name": "王五", "account_number": "6222020200112233445", "bank": "示例银行" } });
    a.ok("POST", &format!("/v1/ra/orders/{id}/steps/person"), Some(&token), Some(person)).await;
    let statements = std::fs::read_to_string(ca.config.data_dir.join("bank-statements.jsonl")).unwrap();
    let deposit: Value = serde_json::from_str(statements.lines().last().unwrap()).unwrap();
    let code = deposit["remittance_code"].as_str().unwrap();
    let v = b
        .ok("POST", &format!("/v1/ra/orders/{id}/steps/subject-check"), Some(&token), Some(json!({ "code": code })))
        .await;
    assert_eq!(v["next_step"], "product", "{v}");
    // A payment QR code made by A, paid on B's sandbox page.
    b.ok(
        "POST",
        &format!("/v1/ra/orders/{id}/steps/product"),
        Some(&token),
        Some(json!({ "product": "personal-cloud-1y" })),
    )
    .await;
    for kind in ["id-front", "id-back"] {
        assert_eq!(a.upload(&id, &token, kind, crate::ra::PDF).await.0, 201);
    }
    b.ok("POST", &format!("/v1/ra/orders/{id}/steps/materials"), Some(&token), Some(json!({}))).await;
    let code = b.code(&id, &token, "signature", "+8613900139000", json!({})).await;
    let signed = json!({ "code": code, "accept_terms": true });
    a.ok("POST", &format!("/v1/ra/orders/{id}/steps/signature"), Some(&token), Some(signed)).await;
    let v = a
        .ok("POST", &format!("/v1/ra/orders/{id}/steps/payment"), Some(&token), Some(json!({ "method": "wechat" })))
        .await;
    let reference = v["payment"]["provider_ref"].as_str().unwrap().to_string();
    let paid = b.http.post(format!("{}/sandbox/pay/{reference}", b.api)).send().await.unwrap();
    assert_eq!(paid.status(), 200, "{}", paid.text().await.unwrap());
    // A face check started through A, passed on B's face page.
    let (id, token) = a.create("org-new").await;
    a.choose_method(&id, &token, "phone").await;
    a.company_checked(&id, &token, company(CREDIT, REP)).await;
    let mut face = agent();
    face["method"] = json!("face-sms");
    let v = a.ok("POST", &format!("/v1/ra/orders/{id}/steps/agent"), Some(&token), Some(face)).await;
    let session = v["pending_check"]["reference"].as_str().unwrap().to_string();
    let done = b.http.post(format!("{}/sandbox/face/{session}", b.api)).body("result=pass").send().await.unwrap();
    assert_eq!(done.status(), 200);
    let v = a.ok("POST", &format!("/v1/ra/orders/{id}/steps/agent-check"), Some(&token), Some(json!({}))).await;
    assert_eq!(v["next_step"], "product", "{v}");
}
