//! Crash safety and faults under load, against the real daemon through its real listeners:
//! `kill -9` in the middle of issuance and revocation, the HSM going away and coming back,
//! PostgreSQL restarting, and slow or failing providers.
//!
//! Load is a few concurrent clients (issuance and revocation over the admin listener's mutual
//! TLS as the operator, OCSP over the public listener, certificate reads), each bounded by a
//! request count and a deadline. Every fault prints its figures with `eprintln!` (requests
//! sent, succeeded, failed cleanly by status, failed uncleanly, OCSP answers served during the
//! fault, time from the end of the fault to the first successful issuance). The tests assert
//! correctness (what a client was given is in the database, revocations reach the CRL and OCSP,
//! the audit chain verifies, failures are problem documents), never speed.
//!
//! What counts as a clean failure: a 5xx answer that is an RFC 9457 problem document (and for
//! OCSP, the unsigned `tryLater` status). Unclean: a transport error, a timeout (20 s), a 4xx
//! (the load only sends valid requests) or a 5xx that is not a problem document. The one
//! exception is the `kill -9` itself: requests in flight when the process dies and requests
//! sent while it is down cannot be answered by anyone, so their connection errors are counted
//! as "interrupted by the kill", not as unclean failures.

mod checks;
mod load;
mod postgres;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;
use checks::{audit_verifies, check_crl_and_ocsp, check_database};
use load::*;
use postgres::{test_ca_on, Postgres};

// ---------------------------------------------------------------------------------------------
// 1. kill -9 under load
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_under_issuance_and_revocation_loses_nothing_a_client_was_given() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    // Eight issuers pausing 1 ms keep requests in flight at any instant, so the kill always
    // hits some (with four pausing 5 ms, a fast HSM sometimes left none in flight).
    let target = Target::new(&ca, 8, 2).await;
    let public = target.public.clone();
    let plan = Plan {
        issuers: 8,
        revoke_every: 3,
        max_revocations: 8,
        ocsp: 1,
        readers: 0,
        max_requests: 300,
        deadline: Duration::from_secs(45),
        pause: Duration::from_millis(1),
    };
    let load = Load::start(target, plan);
    load.wait_until("20 certificates and 6 revocations", Duration::from_secs(30), |r| {
        r.issued.len() >= 20 && r.revoked.len() >= 6
    })
    .await;

    // SIGKILL (the harness's Drop), then a restart on the same database and token.
    let kill = Instant::now();
    drop(daemon);
    let daemon = Daemon::start(&ca).await;
    let ready = Instant::now();
    let before = load.issued();
    load.wait_until("20 more certificates after the restart", Duration::from_secs(30), |r| {
        r.issued.len() >= before + 20
    })
    .await;
    let record = load.stop().await;

    let fault = Fault { name: "kill -9 and restart".into(), start: kill, end: ready };
    let f = figures(&record, &fault, Some((kill, ready)));
    f.print("kill -9", &fault.name);
    print_totals("kill -9", &record);
    let early: Vec<&Event> = record.events.iter().filter(|e| e.end < kill && e.outcome != Outcome::Ok).collect();
    assert!(early.is_empty(), "requests failed before the kill: {early:?}");
    assert!(f.unclean.is_empty(), "unclean failures: {:?}", f.unclean);
    assert!(f.recovery.is_some(), "issuance resumed after the restart");
    assert!(f.in_flight_at_kill > 0, "the kill hit requests in flight");

    // What every client was given survived, nothing is half-written, revocations are
    // published by the restarted daemon.
    let db = check_database(&ca, &record).await;
    let listed = check_crl_and_ocsp(&ca, &public, &db).await;
    eprintln!(
        "[faults] kill -9: {} revocations stored ({} acknowledged), all on the CRL {} ms after the restarted daemon was ready",
        db.revocations.len(),
        record.revoked.len(),
        (listed - ready).as_millis()
    );
    drop(daemon);
}

// ---------------------------------------------------------------------------------------------
// 2. The HSM goes away under load
// ---------------------------------------------------------------------------------------------

/// Waits (bounded) until the load has seen an issuance fail with 503 since `since`.
async fn wait_for_refusal(load: &Load, since: Instant) {
    load.wait_until("an issuance refused with 503 during the fault", Duration::from_secs(15), |r| {
        r.events.iter().any(|e| e.kind == Kind::Issue && e.start >= since && e.outcome == Outcome::Clean("503".into()))
    })
    .await;
}

/// Waits (bounded) until `n` more certificates were received than now.
async fn wait_for_issuance(load: &Load, n: usize) {
    let before = load.issued();
    load.wait_until("issuance resuming", Duration::from_secs(30), |r| r.issued.len() >= before + n).await;
}

/// Waits (bounded) until `/ready` says `status`.
async fn wait_for_readiness(metrics: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let said = match send(plain_client().get(format!("{metrics}/ready"))).await {
            Ok((_, _, body)) => serde_json::from_slice::<Value>(&body).unwrap_or_default()["status"].clone(),
            Err(_) => Value::Null,
        };
        if said == status {
            return;
        }
        assert!(Instant::now() < deadline, "readiness never said {status} (last: {said})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The OCSP answer (DER) for a request, with its responseStatus classified.
async fn ocsp_answer(public: &str, request: &[u8]) -> (Outcome, Vec<u8>) {
    let answer = send(ocsp_post(&plain_client(), public, request)).await;
    (ocsp_outcome(&answer), answer.map(|(_, _, b)| b).unwrap_or_default())
}

/// The certificate status in a successful OCSP answer, read by openssl.
fn ocsp_status(ca: &TestCa, name: &str, der: &[u8]) -> String {
    let path = ca.path(name);
    std::fs::write(&path, der).unwrap();
    let (bundle, issuer) = (bundle(ca, "org"), ca.ca_pem("org"));
    let args = [
        "ocsp",
        "-respin",
        path.to_str().unwrap(),
        "-CAfile",
        bundle.to_str().unwrap(),
        "-verify_other",
        issuer.to_str().unwrap(),
        "-resp_text",
    ];
    let out = run("openssl", &args);
    assert!(out.text.contains("Response verify OK"), "{}", out.text);
    out.text.lines().find_map(|l| l.trim().strip_prefix("Cert Status: ")).unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hsm_going_away_under_load_gives_clean_503s_keeps_ocsp_answering_and_service_resumes_by_itself() {
    // In-process daemon (the real listeners, `daemon::serve`): the faults are injected into the
    // daemon's own PKCS#11 state (C_CloseAllSessions, the pool's fault switch), which only
    // works from inside its process.
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(cloudca::daemon::serve(instance.clone(), async move {
        let _ = stopped.await;
    }));
    let metrics = format!("http://{}", ca.config.listeners.metrics);
    let public = format!("http://{}", ca.config.listeners.public);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http().get(format!("{metrics}/ready")).send().await.is_ok_and(|r| r.status() == 200);
        let crl = ready && http().get(format!("{public}/crl/org.crl")).send().await.is_ok_and(|r| r.status() == 200);
        if crl {
            break;
        }
        assert!(Instant::now() < deadline, "daemon did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut target = Target::new(&ca, 2, 3).await;
    // A certificate revoked while the HSM is away (not in the OCSP load): its pre-signed
    // "good" is in the daemon's memory.
    let (victim_serial, victim_request) = (target.read_serials.pop().unwrap(), target.ocsp_requests.pop().unwrap());
    let operator = client_with(&target.operator);
    let admin = target.admin.clone();
    let plan = Plan {
        issuers: 2,
        revoke_every: 0,
        max_revocations: 0,
        ocsp: 1,
        readers: 0,
        max_requests: 4000,
        deadline: Duration::from_secs(60),
        pause: Duration::from_millis(10),
    };
    let load = Load::start(target, plan);
    wait_for_issuance(&load, 5).await;
    let mut faults = Vec::new();

    // (a) Every session closed under the pool (what a token reset or HSM fail-over does), five
    // times in a row: the pool rebuilds and retries.
    let start = Instant::now();
    for _ in 0..5 {
        close_all_sessions(&instance.hsm);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    faults.push(Fault { name: "sessions closed (C_CloseAllSessions x5)".into(), start, end: Instant::now() });
    wait_for_issuance(&load, 5).await;
    wait_for_readiness(&metrics, "ready").await;

    // (b) The device fails every call (the pool's fault switch) for two seconds. A revocation
    // acknowledged meanwhile must never be answered "good" again.
    let start = Instant::now();
    instance.hsm.dangerous_suspend(true);
    wait_for_refusal(&load, start).await;
    let body = json!({ "reason": "keyCompromise" });
    let answer = send(operator.post(format!("{admin}/v1/certificates/{victim_serial}/revoke")).json(&body)).await;
    let (status, _, body) = answer.expect("revocation answered");
    assert_eq!(status, 200, "revocation needs no HSM: {}", String::from_utf8_lossy(&body));
    let (outcome, der) = ocsp_answer(&public, &victim_request).await;
    let said = if outcome == Outcome::Ok { ocsp_status(&ca, "victim-down.der", &der) } else { format!("{outcome:?}") };
    assert!(
        said == "revoked" || outcome == Outcome::Clean("tryLater".into()),
        "an acknowledged revocation was answered {said} while the HSM was away"
    );
    tokio::time::sleep((start + Duration::from_secs(2)).saturating_duration_since(Instant::now())).await;
    instance.hsm.dangerous_suspend(false);
    faults.push(Fault { name: "device errors (pool fault switch, 2 s)".into(), start, end: Instant::now() });
    wait_for_issuance(&load, 5).await;
    wait_for_readiness(&metrics, "ready").await;
    let (outcome, der) = ocsp_answer(&public, &victim_request).await;
    assert_eq!(outcome, Outcome::Ok);
    assert_eq!(ocsp_status(&ca, "victim-up.der", &der), "revoked");

    // (c) The token's files vanish (the token folder renamed away) and the sessions are closed:
    // the real SoftHSM2 outage. SoftHSM2 keeps a token whose files vanished invalid for the
    // rest of its initialisation (C_GetTokenInfo and C_Login fail with CKR_GENERAL_ERROR even
    // once the files are back), so the pool re-initialises the module when no session has
    // worked for a few seconds. chmod instead of rename does nothing as root.
    let tokens = ca.config_path.parent().unwrap().join("tokens");
    let away = tokens.with_extension("away");
    let reinits = module_reinits(&metrics).await;
    let start = Instant::now();
    std::fs::rename(&tokens, &away).unwrap();
    close_all_sessions(&instance.hsm);
    wait_for_refusal(&load, start).await;
    tokio::time::sleep((start + Duration::from_secs(2)).saturating_duration_since(Instant::now())).await;
    std::fs::rename(&away, &tokens).unwrap();
    let end = Instant::now();
    wait_for_issuance(&load, 5).await;
    wait_for_readiness(&metrics, "ready").await;
    assert!(module_reinits(&metrics).await > reinits, "the module was re-initialised");
    faults.push(Fault { name: "token files gone (folder renamed away, 2 s)".into(), start, end });
    let record = load.stop().await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), served).await.expect("the daemon stops");

    print_totals("HSM", &record);
    for (i, fault) in faults.iter().enumerate() {
        let f = figures(&record, fault, None);
        f.print("HSM", &fault.name);
        assert!(f.unclean.is_empty(), "{}: unclean failures {:?}", fault.name, f.unclean);
        for label in f.clean.keys() {
            assert_eq!(label, "Issue 503", "{}: only issuance fails, with 503", fault.name);
        }
        if i > 0 {
            assert!(f.ocsp_during > 0, "{}: pre-signed OCSP kept answering", fault.name);
            assert!(f.readiness.contains("degraded"), "{}: readiness said {:?}", fault.name, f.readiness);
            assert!(
                !f.readiness.contains("not ready"),
                "{}: the HSM alone never takes status out of rotation",
                fault.name
            );
        }
        assert!(f.recovery.is_some(), "{}: issuance resumed by itself", fault.name);
    }
    check_database(&ca, &record).await;
}

/// `cloudca_hsm_module_reinits_total` on the metrics listener.
async fn module_reinits(metrics: &str) -> u64 {
    let text = http().get(format!("{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("cloudca_hsm_module_reinits_total "));
    line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_restarting_under_load_fails_requests_cleanly_then_service_resumes_with_nothing_half_written() {
    // Its own cluster, whatever backend the rest of the suite uses.
    let pg = Postgres::start();
    let mut ca = test_ca_on(pg.database("cloudca_faults").await).await;
    // Requests wait at most a second for a database connection, so the outage below is
    // longer than that wait.
    let text = std::fs::read_to_string(&ca.config_path).unwrap();
    std::fs::write(&ca.config_path, text.replace("[database]\n", "[database]\nacquire_timeout_seconds = 1\n")).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    let daemon = Daemon::start(&ca).await;
    let target = Target::new(&ca, 3, 2).await;
    let (admin, public) = (target.admin.clone(), target.public.clone());
    let plan = Plan {
        issuers: 3,
        revoke_every: 3,
        max_revocations: 6,
        ocsp: 1,
        readers: 1,
        max_requests: 1000,
        deadline: Duration::from_secs(60),
        pause: Duration::from_millis(10),
    };
    let load = Load::start(target, plan);
    wait_for_issuance(&load, 10).await;
    let mut faults = Vec::new();

    // (a) pg_ctl restart -m fast: every connection is terminated, the server is back at once.
    let start = Instant::now();
    let out = pg.pg_ctl(&["-m", "fast", "restart"]);
    assert!(out.ok, "pg_ctl restart: {}", out.text);
    faults.push(Fault { name: "pg_ctl restart -m fast".into(), start, end: Instant::now() });
    wait_for_issuance(&load, 10).await;

    // (b) Stopped for three seconds, then started.
    let start = Instant::now();
    let out = pg.pg_ctl(&["-m", "fast", "stop"]);
    assert!(out.ok, "pg_ctl stop: {}", out.text);
    // A new mutual-TLS connection meanwhile: told to come back (503, Retry-After) rather than
    // dropped. Its login was already recorded this minute (logins are coalesced per certificate
    // per minute), so it is served, and the request itself finds the database away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = role_client(&ca, "operator").get(format!("{admin}/v1/certificates/01"));
    let response = fresh.send().await.expect("an answer, not a dropped connection");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(start.elapsed())).await;
    pg.start_server();
    faults.push(Fault { name: "pg_ctl stop -m fast, 3 s down, start".into(), start, end: Instant::now() });
    wait_for_issuance(&load, 10).await;
    let record = load.stop().await;

    print_totals("PostgreSQL", &record);
    for (i, fault) in faults.iter().enumerate() {
        let f = figures(&record, fault, None);
        f.print("PostgreSQL", &fault.name);
        assert!(f.unclean.is_empty(), "{}: unclean failures {:?}", fault.name, f.unclean);
        assert!(f.recovery.is_some(), "{}: service resumed by itself", fault.name);
        // Failures are problem documents from the admin API; pre-signed OCSP answers from
        // memory never fail.
        for label in f.clean.keys() {
            assert!(!label.starts_with("Ocsp"), "{}: OCSP failed while the database was away", fault.name);
        }
        assert!(!f.readiness.contains("no answer"), "{}: readiness answers while the database is away", fault.name);
        if i == 1 {
            assert!(f.readiness.contains("not ready"), "{}: readiness said {:?}", fault.name, f.readiness);
        }
    }
    let db = check_database(&ca, &record).await;
    check_crl_and_ocsp(&ca, &public, &db).await;
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_down_longer_than_a_lease_then_back_resumes_every_job_by_itself() {
    // 35 s: longer than a lease (20 s), than sqlx's connect timeout and than the pool's
    // idle timeouts, so nothing survives on a connection or a lease of before.
    let outage = Duration::from_secs(35);
    let pg = Postgres::start();
    let ca = test_ca_on(pg.database("cloudca_long_outage").await).await;
    let daemon = Daemon::start(&ca).await;
    let target = Target::new(&ca, 2, 1).await;
    let public = target.public.clone();
    let plan = Plan {
        issuers: 2,
        revoke_every: 4,
        max_revocations: 30,
        ocsp: 1,
        readers: 0,
        max_requests: 3000,
        deadline: Duration::from_secs(120),
        pause: Duration::from_millis(50),
    };
    let load = Load::start(target, plan);
    wait_for_issuance(&load, 6).await;
    let start = Instant::now();
    let out = pg.pg_ctl(&["-m", "fast", "stop"]);
    assert!(out.ok, "pg_ctl stop: {}", out.text);
    tokio::time::sleep(outage).await;
    pg.start_server();
    let fault =
        Fault { name: format!("pg_ctl stop -m fast, {} s down, start", outage.as_secs()), start, end: Instant::now() };
    // Long enough after the outage for revocations to be acknowledged again.
    wait_for_issuance(&load, 12).await;
    let record = load.stop().await;

    let f = figures(&record, &fault, None);
    f.print("PostgreSQL", &fault.name);
    assert!(f.unclean.is_empty(), "unclean failures {:?}", f.unclean);
    assert!(f.recovery.is_some(), "service resumed by itself");
    assert!(f.readiness.contains("not ready"), "readiness said {:?}", f.readiness);
    let revoked_after = record
        .events
        .iter()
        .filter(|e| e.kind == Kind::Revoke && e.outcome == Outcome::Ok && e.start > fault.end)
        .count();
    assert!(revoked_after > 0, "revocations were acknowledged after the outage");
    // The leases lapsed during the outage; the daemon takes every job again by itself at its
    // next renewal round (every 5 s) that reaches the database. Service can resume sooner than
    // that, so wait for it, bounded: round + `acquire_timeout_seconds` + margin.
    let store = cloudca::store::Store::open(&ca.config.database).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let retaken = loop {
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let leases = store.leases().await.unwrap();
        if leases.len() >= 4 && leases.iter().all(|l| l.expires_at > now_ms) {
            break fault.end.elapsed();
        }
        assert!(Instant::now() < deadline, "the jobs were not taken again: {leases:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let db = check_database(&ca, &record).await;
    let listed = check_crl_and_ocsp(&ca, &public, &db).await;
    eprintln!(
        "[faults] PostgreSQL / {} s outage: every lease held again {} ms after it; {revoked_after} revocations \
         acknowledged after it, all on the CRL {} ms after it",
        outage.as_secs(),
        retaken.as_millis(),
        listed.saturating_duration_since(fault.end).as_millis(),
    );
    drop(daemon);
}

// ---------------------------------------------------------------------------------------------
// 4. Slow and failing providers
// ---------------------------------------------------------------------------------------------
//
// The sandboxes are slow for values ending in 8888 and down for 9999 (`providers` module docs).
// Two providers on request paths are driven here at once: the identity check of the RA's
// company step and the SMS gateway behind the app's login codes. The payment sandbox's modes
// are exercised at the RA's payment step (tests/it/ra.rs).

const CREDIT: &str = "91350100M000100Y43";
const CREDIT2: &str = "91110000802100433B";
/// A phone whose texts go through.
const FAST_PHONE: &str = "+8613800138000";

fn company(credit: &str, rep_phone: &str) -> Value {
    json!({ "name": "福建示例科技有限公司", "credit_code": credit,
            "legal_rep": { "name": "张三", "id_number": "11010519491231002X", "phone": rep_phone } })
}

/// An organisation order past its verification step: (id, token).
async fn order_at_company_step(web: &reqwest::Client, admin: &str) -> (String, String) {
    let body = json!({ "channel": "default", "flow": "org-new" });
    let (status, _, v) = send(web.post(format!("{admin}/v1/ra/orders")).json(&body)).await.unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&v));
    let v: Value = serde_json::from_slice(&v).unwrap();
    let (id, token) = (v["order"]["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string());
    let step = web
        .post(format!("{admin}/v1/ra/orders/{id}/steps/verification"))
        .header("x-order-token", &token)
        .json(&json!({ "method": "phone", "accept_terms": true }));
    assert_eq!(send(step).await.unwrap().0, 200);
    (id, token)
}

/// The company step (the carrier's three-element check on the legal representative's phone).
async fn company_step(web: &reqwest::Client, admin: &str, order: &(String, String), body: Value) -> Answer {
    let (id, token) = order;
    send(web.post(format!("{admin}/v1/ra/orders/{id}/steps/company")).header("x-order-token", token).json(&body)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_failing_identity_and_sms_providers_do_not_hold_up_other_requests() {
    let mut ca = TestCa::new().await;
    let timeout_ms = 4000;
    let text = std::fs::read_to_string(&ca.config_path).unwrap();
    std::fs::write(&ca.config_path, text.replace("[ra]\n", &format!("[ra]\nprovider_timeout_ms = {timeout_ms}\n")))
        .unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    let daemon = Daemon::start(&ca).await;
    let target = Target::new(&ca, 1, 1).await;
    let (admin, public) = (target.admin.clone(), target.public.clone());
    let web = role_client(&ca, "web-front");
    let operator = client_with(&target.operator);

    let api = format!("https://localhost:{}", ca.config.listeners.api.port());
    let sms = |phone: String| web.post(format!("{api}/v1/mobile/sms")).json(&json!({ "phone": phone }));

    // More slow calls of each provider than cores (a provider call that held a thread would
    // stall the daemon), and some calls to providers that are down.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let slow_count = 2 * cores + 1;
    let mut slow_orders = Vec::new();
    for _ in 0..slow_count {
        slow_orders.push(order_at_company_step(&web, &admin).await);
    }
    let slow_phones: Vec<String> = (0..slow_count).map(|i| format!("+86138{i:02}008888")).collect();
    let down_phones: Vec<String> = (0..2).map(|i| format!("+86138{i:02}009999")).collect();
    // Login codes go only to phones with an approval (security review M7).
    for phone in slow_phones.iter().chain(&down_phones).map(String::as_str).chain([FAST_PHONE]) {
        let subject = r#"[["C","CN"],["CN","张三"],["serialNumber","11010519491231002X"]]"#;
        let body = format!(r#"{{"profile":"personal","phone":"{phone}","subject":{subject}}}"#);
        crate::admin::Admin::new(&ca).json("operator", "POST", "/v1/approvals", Some(&body));
    }
    let mut down_orders = Vec::new();
    for _ in 0..2 {
        down_orders.push(order_at_company_step(&web, &admin).await);
    }
    let fast_order = order_at_company_step(&web, &admin).await;
    let before: Value = {
        let (id, token) = &slow_orders[0];
        let r = web.get(format!("{admin}/v1/ra/orders/{id}")).header("x-order-token", token);
        serde_json::from_slice(&send(r).await.unwrap().2).unwrap()
    };

    let slow_done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let spawn = |request: reqwest::RequestBuilder, done: Option<Arc<AtomicUsize>>| {
        let slow_done = slow_done.clone();
        tokio::spawn(async move {
            let answer = send(request).await;
            let elapsed = started.elapsed();
            // For a down provider: were the slow calls still pending when it answered?
            let slow_pending = slow_done.load(Ordering::SeqCst) == 0;
            if let Some(d) = done {
                d.fetch_add(1, Ordering::SeqCst);
            }
            (failure(answer), elapsed, slow_pending)
        })
    };
    let company_check = |(id, token): &(String, String), phone: &str| {
        web.post(format!("{admin}/v1/ra/orders/{id}/steps/company"))
            .header("x-order-token", token)
            .json(&company(CREDIT, phone))
    };
    let mut slow = Vec::new();
    for (order, phone) in slow_orders.iter().zip(&slow_phones) {
        slow.push(spawn(company_check(order, "13800138888"), Some(slow_done.clone())));
        slow.push(spawn(sms(phone.clone()), Some(slow_done.clone())));
    }
    let mut down = Vec::new();
    for (order, phone) in down_orders.iter().zip(&down_phones) {
        down.push(spawn(company_check(order, "13800139999"), None));
        down.push(spawn(sms(phone.clone()), None));
    }
    // Let the slow calls reach the daemon before the other requests go out.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Other requests, each of which must finish while every slow call is still pending.
    let mut finished_first = Vec::new();
    let ocsp_request = target.ocsp_requests[0].clone();
    for round in 0..3 {
        let (outcome, _) = ocsp_answer(&public, &ocsp_request).await;
        assert_eq!(outcome, Outcome::Ok, "OCSP");
        finished_first.push(("OCSP", slow_done.load(Ordering::SeqCst) == 0));

        issue_once(&operator, &admin, &target.csrs[0]).await;
        finished_first.push(("issuance", slow_done.load(Ordering::SeqCst) == 0));

        let (id, token) = &fast_order;
        let read = web.get(format!("{admin}/v1/ra/orders/{id}")).header("x-order-token", token);
        assert_eq!(send(read).await.unwrap().0, 200, "RA order read");
        finished_first.push(("RA order read", slow_done.load(Ordering::SeqCst) == 0));

        if round == 0 {
            // The fast identity check: a carrier that answers at once (and the legal
            // representative's code, texted to another phone than the login code's below).
            let (status, _, body) =
                company_step(&web, &admin, &fast_order, company(CREDIT2, "+8613800138001")).await.unwrap();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            finished_first.push(("fast identity check", slow_done.load(Ordering::SeqCst) == 0));
            // A login code to a phone whose texts go through.
            let (status, _, body) = send(sms(FAST_PHONE.into())).await.unwrap();
            assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
            finished_first.push(("SMS code", slow_done.load(Ordering::SeqCst) == 0));
        }
        let ready = plain_client().get(format!("{}/ready", target.metrics));
        assert_eq!(send(ready).await.unwrap().0, 200);
        finished_first.push(("readiness", slow_done.load(Ordering::SeqCst) == 0));
    }
    let others_done = started.elapsed();

    let mut down_results = Vec::new();
    for d in down {
        down_results.push(d.await.unwrap());
    }
    let mut slow_results = Vec::new();
    for s in slow {
        slow_results.push(s.await.unwrap());
    }
    let slowest = slow_results.iter().map(|r| r.1).max().unwrap_or_default();
    eprintln!(
        "[faults] providers: {slow_count} slow identity checks and {slow_count} slow SMS sends (sandbox answers \
         after {} s, deadline {timeout_ms} ms) answered {:?} after {}..{} ms; {} calls to providers that are down \
         answered {:?} after at most {} ms; {} other requests (OCSP, issuance, RA order reads, a fast identity \
         check, a fast SMS code, readiness) all finished within {} ms, before any slow call ended: {}",
        cloudca::providers::SLOW.as_secs(),
        slow_results.iter().map(|r| &r.0).collect::<BTreeSet<_>>(),
        slow_results.iter().map(|r| r.1.as_millis()).min().unwrap_or_default(),
        slowest.as_millis(),
        down_results.len(),
        down_results.iter().map(|r| &r.0).collect::<BTreeSet<_>>(),
        down_results.iter().map(|r| r.1.as_millis()).max().unwrap_or_default(),
        finished_first.len(),
        others_done.as_millis(),
        finished_first.iter().all(|(_, before)| *before),
    );
    for (what, before_slow) in &finished_first {
        assert!(before_slow, "{what} waited for a slow provider call");
    }
    for (outcome, _, slow_pending) in &down_results {
        assert_eq!(outcome, &Outcome::Clean("503".into()), "a provider that is down: a clean 503");
        assert!(slow_pending, "a provider that is down answers while the slow ones are pending");
    }
    for (outcome, elapsed, _) in &slow_results {
        assert_eq!(outcome, &Outcome::Clean("503".into()), "a slow provider: a clean 503");
        // The deadline ended it, not the sandbox's own (30 s) answer.
        assert!(*elapsed < cloudca::providers::SLOW, "a slow call took {elapsed:?}");
    }
    let metrics = http().get(format!("{}/metrics", target.metrics)).send().await.unwrap().text().await.unwrap();
    for (provider, operation, outcome, want) in [
        ("identity", "phone_three", "timeout", slow_count),
        ("sms", "send", "timeout", slow_count),
        ("sms", "send", "unavailable", down_phones.len()),
    ] {
        let labels = [
            format!("provider=\"{provider}\""),
            format!("operation=\"{operation}\""),
            format!("outcome=\"{outcome}\""),
        ];
        let line = metrics
            .lines()
            .find(|l| l.starts_with("cloudca_provider_calls_total{") && labels.iter().all(|p| l.contains(p.as_str())));
        assert_eq!(line.and_then(|l| l.rsplit(' ').next()), Some(want.to_string().as_str()), "{provider} {outcome}");
    }
    // A text that did not go out holds nothing back: the same phone may ask again at once
    // (503 again while its gateway is down, not 429), whereas a code that went out holds the
    // phone for `custody.sms_min_interval_seconds`.
    assert_eq!(failure(send(sms(down_phones[0].clone())).await), Outcome::Clean("503".into()), "asked again");
    assert_eq!(send(sms(FAST_PHONE.into())).await.unwrap().0, 429, "a code that went out counts");
    let outbox = std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap_or_default();
    for phone in slow_phones.iter().chain(&down_phones) {
        assert!(!outbox.contains(phone.as_str()), "no text to {phone} went out");
    }
    assert!(outbox.contains(FAST_PHONE), "the fast code went out");
    // A provider failure changes nothing.
    let (id, token) = &slow_orders[0];
    let r = web.get(format!("{admin}/v1/ra/orders/{id}")).header("x-order-token", token);
    let after: Value = serde_json::from_slice(&send(r).await.unwrap().2).unwrap();
    assert_eq!(after, before, "a slow provider changed the order");
    audit_verifies(&ca);
    drop(daemon);
}
