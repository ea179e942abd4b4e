//! Sole control of holder keys (issue 14), each attack tried through the real listeners, on
//! SQLite and (in the suite's PostgreSQL pass) PostgreSQL: a PIN is set again only after a
//! fresh identity proof by the provider, never by an SMS code; enrolment proves identity and
//! claims its approval once; PIN tries are reserved before Argon2 so parallel guesses on two
//! daemons get exactly five; a claimed session is signed once; an SMS code authorises one
//! action on one object.

use std::time::Duration;

use crate::admin::Admin;
use crate::common::*;
use crate::signing::{enroll_with_proof, enrolled, open, payload, prove_face, quick_sms_ca, Api, As, PHONE};

const PERSONAL: &str = r#"[["C","CN"],["CN","张三"],["serialNumber","11010519491231002X"]]"#;

/// A raw connection to the instance's database, for reading what was stored and for the
/// database writer's moves.
async fn database(ca: &TestCa) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap()
}

async fn count(pool: &sqlx::AnyPool, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql).bind(bind).fetch_one(pool).await.unwrap()
}

/// The CA with 40 guesses a minute per credential in each daemon's memory (10 by default), so
/// what stops an attack in these tests is the database's count, not the per-daemon limiter.
fn roomy(mut ca: TestCa) -> TestCa {
    let text = std::fs::read_to_string(&ca.config_path).unwrap();
    let text = text + "\n[limits]\nattempts_per_credential = { count = 40, seconds = 60 }\n";
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    ca
}

/// Starts a face proof and lets the sandbox face page give `result` (pass or fail) without
/// waiting for the verdict. Returns the proof id.
fn face_with(api: &Api<'_>, token: &str, purpose: &str, target: &str, result: &str) -> String {
    let body = format!(r#"{{"purpose":"{purpose}","target":"{target}","method":"face"}}"#);
    let (status, started) = api.call(As::Holder(token), "POST", "/v1/mobile/proofs", Some(&body));
    assert_eq!(status, "201", "{started}");
    let url = started["face_url"].as_str().unwrap();
    let page = &url[url.find("/sandbox/face/").unwrap()..];
    assert_eq!(api.call(As::Nobody, "POST", page, Some(&format!("result={result}"))).0, "200");
    started["proof_id"].as_str().unwrap().to_string()
}

/// Opens a session for the holder and claims it; returns the approve path.
fn claimed(api: &Api<'_>, token: &str, doc: &[u8]) -> (String, String) {
    let (session, start, secret) = open(api, doc, "raw");
    let claim = format!(r#"{{"payload":"{}"}}"#, payload(&start, &secret, std::time::Instant::now()));
    assert_eq!(api.call(As::Holder(token), "POST", "/v1/mobile/sessions/claim", Some(&claim)).0, "200");
    (session.clone(), format!("/v1/mobile/sessions/{session}/approve"))
}

fn sms_texts(ca: &TestCa, phone: &str) -> Vec<String> {
    let outbox = std::fs::read_to_string(ca.config.data_dir.join("sms-outbox.jsonl")).unwrap_or_default();
    outbox
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["to"] == phone)
        .map(|v| v["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sms_code_alone_never_sets_a_pin_and_a_failed_proof_changes_nothing() {
    // Room in the per-daemon limiter, so the database's daily proof limit is what stops us.
    let ca = roomy(quick_sms_ca().await);
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    // The thief logged in with the holder's SMS code: that is all they have.
    let (token, credential, _) = enrolled(&ca, &api, PHONE);
    let reset = format!("/v1/mobile/credentials/{credential}/pin-reset");
    let unlock = format!("/v1/mobile/credentials/{credential}/unlock");

    // The old unlock (an SMS code plus the identifier printed in the certificate) is gone.
    let old = r#"{"code":"123456","identifier":"11010519491231002X","evidence":"x","new_pin":"135790"}"#;
    assert_eq!(api.call(As::Holder(&token), "POST", &unlock, Some(old)).0, "422");
    // No proof, a made-up proof: nothing.
    let made_up = r#"{"proof_id":"00112233445566778899aabbccddeeff","new_pin":"135790"}"#;
    assert_eq!(api.call(As::Holder(&token), "POST", &reset, Some(made_up)).0, "404");
    // An active credential is not unlocked: a forgotten PIN is a reset, with its own proof.
    let body = format!(r#"{{"purpose":"unlock","target":"{credential}","method":"face"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", "/v1/mobile/proofs", Some(&body)).0, "409");
    let reset_proof = prove_face(&api, &token, "reset", &credential);
    let wrong_action = format!(r#"{{"proof_id":"{reset_proof}","new_pin":"135790"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", &unlock, Some(&wrong_action)).0, "409");
    // A face the provider does not match: refused, and the PIN is what it was.
    let failed = face_with(&api, &token, "reset", &credential, "fail");
    let (status, problem) =
        api.call(As::Holder(&token), "POST", &reset, Some(&format!(r#"{{"proof_id":"{failed}","new_pin":"135790"}}"#)));
    assert_eq!(status, "403", "{problem}");
    // A weak PIN is refused and does not spend the proof.
    let weak = format!(r#"{{"proof_id":"{reset_proof}","new_pin":"491231"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", &reset, Some(&weak)).0, "400", "the birth date");
    let (_, approve) = claimed(&api, &token, b"still the old PIN");
    let old_pin = format!(r#"{{"credential_id":"{credential}","pin":"246810"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", &approve, Some(&old_pin)).0, "200", "nothing changed");

    // The holder, with a passed proof, sets a new PIN once, and is told by SMS.
    let good = format!(r#"{{"proof_id":"{reset_proof}","new_pin":"135790"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", &reset, Some(&good)).0, "204");
    assert_eq!(api.call(As::Holder(&token), "POST", &reset, Some(&good)).0, "410", "a proof works once");
    assert!(sms_texts(&ca, PHONE).iter().any(|t| t.contains("was reset")), "the holder is told");
    let (_, approve) = claimed(&api, &token, b"the new PIN");
    assert_eq!(api.call(As::Holder(&token), "POST", &approve, Some(&old_pin)).0, "403", "old PIN gone");
    let new_pin = format!(r#"{{"credential_id":"{credential}","pin":"135790"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", &approve, Some(&new_pin)).0, "200");

    // Proofs per credential are limited per day (each costs a provider check), across daemons.
    let mut limited = false;
    for _ in 0..5 {
        let body = format!(r#"{{"purpose":"reset","target":"{credential}","method":"face"}}"#);
        let (status, _) = api.call(As::Holder(&token), "POST", "/v1/mobile/proofs", Some(&body));
        if status == "429" {
            limited = true;
            break;
        }
        assert_eq!(status, "201");
    }
    assert!(limited, "custody.proofs_per_day holds");

    let instance = ca.open().await;
    for kind in [
        "identity.proof_started",
        "identity.proof_failed",
        "identity.proof_passed",
        "pin.reset_refused",
        "pin.reset",
        "identity.proof_limited",
    ] {
        assert!(instance.store.count_audit_events(kind).await.unwrap() >= 1, "{kind} audited");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_identity_provider_no_pin_is_set() {
    let mut ca = TestCa::new().await;
    let text =
        std::fs::read_to_string(&ca.config_path).unwrap().replace("identity = \"sandbox\"", "identity = \"none\"");
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let approval = Admin::new(&ca).json(
        "operator",
        "POST",
        "/v1/approvals",
        Some(&format!(r#"{{"profile":"personal","phone":"{PHONE}","subject":{PERSONAL}}}"#)),
    );
    let token = api.login(PHONE);
    let body = format!(r#"{{"purpose":"enrol","target":{},"method":"face"}}"#, approval["id"]);
    let (status, problem) = api.call(As::Holder(&token), "POST", "/v1/mobile/proofs", Some(&body));
    assert_eq!(status, "503", "fails closed: {problem}");
    let body = format!(r#"{{"approval_id":{},"proof_id":"none","pin":"246810"}}"#, approval["id"]);
    assert_eq!(api.call(As::Holder(&token), "POST", "/v1/mobile/credentials", Some(&body)).0, "404");
}

#[tokio::test(flavor = "multi_thread")]
async fn enrolment_proves_identity_claims_the_approval_once_and_approvals_expire() {
    let ca = quick_sms_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let admin = Admin::new(&ca);
    let pool = database(&ca).await;
    let approve = |phone: &str| {
        let body = format!(r#"{{"profile":"personal","phone":"{phone}","subject":{PERSONAL}}}"#);
        admin.json("operator", "POST", "/v1/approvals", Some(&body))["id"].as_str().unwrap().to_string()
    };
    let approval = approve(PHONE);
    let token = api.login(PHONE);
    // Possession of the phone is not enough: no proof, no PIN.
    let body =
        format!(r#"{{"approval_id":"{approval}","proof_id":"00112233445566778899aabbccddeeff","pin":"246810"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", "/v1/mobile/credentials", Some(&body)).0, "404");
    // Another phone's proof does not count for this approval.
    crate::signing::approve_phone(&ca, "+8613900139000");
    let other = api.login("+8613900139000");
    let body = format!(r#"{{"purpose":"enrol","target":"{approval}","method":"face"}}"#);
    assert_eq!(api.call(As::Holder(&other), "POST", "/v1/mobile/proofs", Some(&body)).0, "404");

    // Two enrolments at once, each with its own passed proof: one certificate, one credential.
    let before = count(&pool, "SELECT COUNT(*) FROM certificates WHERE profile = $1", "personal").await;
    let proofs = [prove_face(&api, &token, "enrol", &approval), prove_face(&api, &token, "enrol", &approval)];
    let statuses: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = proofs
            .iter()
            .map(|proof| {
                let (api, token, approval) = (&api, &token, &approval);
                s.spawn(move || {
                    let body = format!(r#"{{"approval_id":"{approval}","proof_id":"{proof}","pin":"246810"}}"#);
                    api.call(As::Holder(token), "POST", "/v1/mobile/credentials", Some(&body)).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, ["201", "409"], "{statuses:?}");
    let after = count(&pool, "SELECT COUNT(*) FROM certificates WHERE profile = $1", "personal").await;
    assert_eq!(after - before, 1, "one approval, one certificate: no orphan");
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM credentials WHERE approval_id = $1", &approval).await, 1);

    // Weak PINs are refused at enrolment too.
    let second = approve(PHONE);
    let (status, problem) = enroll_with_proof(&api, &token, &second, "123456");
    assert_eq!(status, "400", "{problem}");
    // An approval nobody took up expires (the database row says when).
    sqlx::query("UPDATE approvals SET expires_at = 1 WHERE id = $1").bind(&second).execute(&pool).await.unwrap();
    let body = format!(r#"{{"purpose":"enrol","target":"{second}","method":"face"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", "/v1/mobile/proofs", Some(&body)).0, "410");
    let (_, listed) = api.call(As::Holder(&token), "GET", "/v1/mobile/credentials", None);
    assert!(listed["approvals"].as_array().unwrap().iter().all(|a| a["approval_id"] != second.as_str()), "{listed}");
    // An organisation approval names the agent who will hold the key.
    let org = r#"[["C","CN"],["O","福建示例科技有限公司"],["CN","示例科技"],["serialNumber","91350100M000100Y43"]]"#;
    let body = format!(r#"{{"profile":"org","phone":"{PHONE}","subject":{org}}}"#);
    assert_eq!(admin.curl(Some("operator"), "POST", "/v1/approvals", Some(&body)).1, "422");
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_parallel_wrong_pins_on_two_daemons_get_exactly_five_tries() {
    // Room in each daemon's in-memory limiter: the database alone must hold the line.
    let a = roomy(TestCa::new().await);
    let b = a.twin();
    let (_da, _db) = (Daemon::start(&a).await, Daemon::start(&b).await);
    let (api_a, api_b) = (Api { ca: &a }, Api { ca: &b });
    let (token, credential, _) = enrolled(&a, &api_a, PHONE);
    let (session, approve) = claimed(&api_a, &token, b"contract");
    let wrong = format!(r#"{{"credential_id":"{credential}","pin":"975310"}}"#);
    let statuses: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|n| {
                let api = if n % 2 == 0 { &api_a } else { &api_b };
                let (token, approve, wrong) = (&token, &approve, &wrong);
                s.spawn(move || api.call(As::Holder(token), "POST", approve, Some(wrong)).0)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let pool = database(&a).await;
    let failures = count(&pool, "SELECT failed_attempts FROM credentials WHERE id = $1", &credential).await;
    assert_eq!(failures, 5, "exactly the configured tries: {statuses:?}");
    let instance = a.open().await;
    assert_eq!(instance.store.count_audit_events("pin.failed").await.unwrap(), 5, "{statuses:?}");
    assert!(statuses.iter().all(|s| s == "403" || s == "423"), "{statuses:?}");
    assert_eq!(instance.store.credential(&credential).await.unwrap().unwrap().status, "locked");

    // After the lock the right PIN signs nothing, on either daemon, and a PIN change with the
    // right old PIN does not lift the lock.
    let right = format!(r#"{{"credential_id":"{credential}","pin":"246810"}}"#);
    for api in [&api_a, &api_b] {
        assert_eq!(api.call(As::Holder(&token), "POST", &approve, Some(&right)).0, "423");
    }
    let change = format!("/v1/mobile/credentials/{credential}/pin");
    let body = r#"{"old_pin":"246810","new_pin":"135790"}"#;
    assert_eq!(api_b.call(As::Holder(&token), "POST", &change, Some(body)).0, "423");
    assert_eq!(instance.store.credential(&credential).await.unwrap().unwrap().status, "locked");
    let (_, view) = api_a.call(As::Platform, "GET", &format!("/v1/signing/sessions/{session}"), None);
    assert_eq!(view["state"], "claimed", "nothing signed: {view}");
    assert_eq!(instance.store.count_audit_events("signature.created").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_parallel_approvals_of_one_session_sign_once() {
    let a = TestCa::new().await;
    let b = a.twin();
    let (_da, _db) = (Daemon::start(&a).await, Daemon::start(&b).await);
    let (api_a, api_b) = (Api { ca: &a }, Api { ca: &b });
    let (token, credential, _) = enrolled(&a, &api_a, PHONE);
    let right = format!(r#"{{"credential_id":"{credential}","pin":"246810"}}"#);
    let pool = database(&a).await;
    // A few rounds, so the two requests really overlap at least once on a loaded machine.
    for round in 0..3 {
        let (session, approve) = claimed(&api_a, &token, format!("contract {round}").as_bytes());
        let statuses: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = [&api_a, &api_b]
                .into_iter()
                .map(|api| {
                    let (token, approve, right) = (&token, &approve, &right);
                    s.spawn(move || api.call(As::Holder(token), "POST", approve, Some(right)).0)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(sorted, ["200", "409"], "round {round}: {statuses:?}");
        assert_eq!(count(&pool, "SELECT COUNT(*) FROM authorizations WHERE session_id = $1", &session).await, 1);
        // The loser's PIN was right too: its reserved try is settled, not left counted.
        let failures = count(&pool, "SELECT failed_attempts FROM credentials WHERE id = $1", &credential).await;
        assert_eq!(failures, 0, "round {round}: {statuses:?}");
    }
    let instance = a.open().await;
    assert_eq!(instance.store.count_audit_events("signature.created").await.unwrap(), 3, "one set per session");
    assert_eq!(instance.store.count_audit_events("key.unwrap_authorised").await.unwrap(), 3, "every unwrap audited");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_authorises_one_action_on_one_object_and_says_which() {
    use cloudca::mobile::{LoginError, Purpose};
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let mobile = &instance.mobile;
    mobile.send_code(PHONE, Purpose::ApplicationSignature, "order-1").await.unwrap();
    let code = last_code(&ca, PHONE);
    let text = sms_texts(&ca, PHONE).pop().unwrap();
    assert!(text.contains("to sign the application of order order-1"), "the text names the action: {text}");
    // The same digits for another action, another order, or a login: refused, and the code
    // stays good for what it was sent for.
    let others = [
        (Purpose::LegalRepAuthorisation, "order-1"),
        (Purpose::ApplicationSignature, "order-2"),
        (Purpose::Consent, "order-1"),
        (Purpose::Login, ""),
    ];
    for (purpose, object) in others {
        let got = mobile.check_code(PHONE, purpose, object, &code).await;
        assert!(matches!(got, Err(LoginError::BadCode)), "{purpose:?} {object}: {got:?}");
    }
    assert!(mobile.login(PHONE, &code).await.is_err(), "an application code does not log in");
    mobile.check_code(PHONE, Purpose::ApplicationSignature, "order-1", &code).await.unwrap();
    let again = mobile.check_code(PHONE, Purpose::ApplicationSignature, "order-1", &code).await;
    assert!(matches!(again, Err(LoginError::BadCode)), "used once: {again:?}");

    // An order query names whose orders, with the ID number masked.
    let other = "+8613900139000";
    mobile.send_code(other, Purpose::OrderQuery, "11010519491231002X").await.unwrap();
    let text = sms_texts(&ca, other).pop().unwrap();
    assert!(text.contains("110***********002X") && !text.contains("11010519491231002X"), "{text}");

    // The app may ask only for a login code, or an administrator code for one organisation.
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let third = "+8613700137000";
    for body in [
        r#"{"phone":"+8613700137000","purpose":"unlock"}"#,
        r#"{"phone":"+8613700137000","purpose":"admin"}"#,
        r#"{"phone":"+8613700137000","purpose":"admin","object":"not-a-credit-code"}"#,
        r#"{"phone":"+8613700137000","purpose":"login","object":"91350100M000100Y43"}"#,
    ] {
        assert_eq!(api.call(As::Nobody, "POST", "/v1/mobile/sms", Some(body)).0, "400", "{body}");
    }
    assert!(sms_texts(&ca, third).is_empty(), "a refused request sends nothing");
    crate::signing::approve_phone(&ca, third);
    let body = r#"{"phone":"+8613700137000","purpose":"admin","object":"91350100M000100Y43"}"#;
    assert_eq!(api.call(As::Nobody, "POST", "/v1/mobile/sms", Some(body)).0, "202");
    let text = sms_texts(&ca, third).pop().unwrap();
    assert!(text.contains("administrator action for organisation 91350100M000100Y43"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_writer_moving_a_key_or_a_pin_hash_to_another_credential_signs_nothing() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let pool = database(&ca).await;
    let (_, victim, _) = enrolled(&ca, &api, PHONE);
    let (token, mine, _) = enrolled(&ca, &api, "+8613900139000");
    let right = format!(r#"{{"credential_id":"{mine}","pin":"246810"}}"#);
    let copy = |column: &str| {
        format!("UPDATE credentials SET {column} = (SELECT {column} FROM credentials WHERE id = $1) WHERE id = $2")
    };
    // The victim's wrapped key on my row, with my right PIN: the binding of blob to row and
    // certificate fails before any unwrap.
    sqlx::query(&copy("key_blob")).bind(&victim).bind(&mine).execute(&pool).await.unwrap();
    let (_, approve) = claimed(&api, &token, b"key moved");
    let (status, problem) = api.call(As::Holder(&token), "POST", &approve, Some(&right));
    assert_ne!(status, "200", "a moved key signs nothing: {problem}");

    // The victim's PIN hash on my row: the hash covers the credential, so even the same PIN
    // does not verify (a counted wrong try, nothing signed).
    sqlx::query(&copy("pin_hash")).bind(&victim).bind(&mine).execute(&pool).await.unwrap();
    let (_, approve) = claimed(&api, &token, b"hash moved");
    let (status, problem) = api.call(As::Holder(&token), "POST", &approve, Some(&right));
    assert_eq!(status, "403", "a moved PIN hash verifies nothing: {problem}");
    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("signature.created").await.unwrap(), 0);
}
