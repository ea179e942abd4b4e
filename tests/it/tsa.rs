//! The RFC 3161 timestamp authority (issue 20, point 1), checked by OpenSSL's own TSA client:
//! `openssl ts -query` makes the queries, the real daemon answers them on `POST /tsa`, and
//! `openssl ts -verify` and `openssl ts -reply -text` judge the replies. Bad queries are refused
//! with the failInfo OpenSSL names and sign nothing; a flood stays within the TSA's share of
//! the HSM and its per-address limit; the TSA key cannot leave the HSM.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use der::{Decode, Encode};

use crate::common::*;
use cloudca::tsa::token::TimeStampResp;

const POLICY: &str = cloudca::config::DEFAULT_TSA_POLICY;

/// The document every query is about.
fn document(ca: &TestCa) -> PathBuf {
    let doc = ca.path("doc.txt");
    if !doc.exists() {
        std::fs::write(&doc, "tender document, lot 7\n").unwrap();
    }
    doc
}

/// `openssl ts -query -data doc.txt -sha256 FLAGS -out NAME.tsq`.
fn query(ca: &TestCa, name: &str, flags: &[&str]) -> PathBuf {
    let (doc, out) = (document(ca), ca.path(&format!("{name}.tsq")));
    let mut args = vec!["ts", "-query", "-data", doc.to_str().unwrap(), "-sha256"];
    args.extend_from_slice(flags);
    args.extend(["-out", out.to_str().unwrap()]);
    let made = run("openssl", &args);
    assert!(made.ok, "{}", made.text);
    out
}

/// One POST /tsa; (status, content type, Retry-After, body).
async fn post(client: &reqwest::Client, public: &str, content_type: &str, body: Vec<u8>) -> Reply {
    let r = client.post(format!("{public}/tsa")).header("content-type", content_type).body(body).send().await.unwrap();
    let header = |name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    let (status, content_type, retry_after) = (r.status().as_u16(), header("content-type"), header("retry-after"));
    Reply { status, content_type, retry_after, body: r.bytes().await.unwrap().to_vec() }
}

struct Reply {
    status: u16,
    content_type: Option<String>,
    retry_after: Option<String>,
    body: Vec<u8>,
}

/// `openssl ts -reply -in FILE -text`.
fn reply_text(file: &Path) -> String {
    let out = run("openssl", &["ts", "-reply", "-in", file.to_str().unwrap(), "-text"]);
    assert!(out.ok, "openssl cannot read the reply: {}", out.text);
    out.text
}

/// The value openssl prints after `label` (e.g. `Nonce: `), to the end of the line.
fn field(text: &str, label: &str) -> String {
    let line = text.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("{label} in {text}"));
    line.trim_start()[label.len()..].trim().to_string()
}

/// The TSA certificate and the issuing CA above it, for `-untrusted` when a reply carries no
/// certificates.
fn untrusted(ca: &TestCa) -> PathBuf {
    let path = ca.path("tsa-chain.pem");
    let chain =
        [std::fs::read_to_string(ca.ca_pem("tsa")).unwrap(), std::fs::read_to_string(ca.ca_pem("org")).unwrap()];
    std::fs::write(&path, chain.concat()).unwrap();
    path
}

fn verify(ca: &TestCa, query: &Path, reply: &Path, untrusted: Option<&Path>) -> Output {
    let root = ca.ca_pem("root");
    let mut args = vec!["ts", "-verify", "-CAfile", root.to_str().unwrap(), "-queryfile", query.to_str().unwrap()];
    args.extend(["-in", reply.to_str().unwrap()]);
    if let Some(u) = untrusted {
        args.extend(["-untrusted", u.to_str().unwrap()]);
    }
    run("openssl", &args)
}

async fn tsa_serials_next(ca: &TestCa) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    let (next,): (i64,) = sqlx::query_as("SELECT next FROM tsa_serials WHERE id = 1").fetch_one(&pool).await.unwrap();
    pool.close().await;
    next
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_verifies_replies_with_and_without_certificates_and_nonces() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let chain = untrusted(&ca);
    let mut serials = BTreeSet::new();
    let cases: [(&str, &[&str]); 5] = [
        ("cert-nonce", &["-cert"]),
        ("cert-only", &["-cert", "-no_nonce"]),
        ("nonce-only", &[]),
        ("plain", &["-no_nonce"]),
        ("our-policy", &["-cert", "-tspolicy", POLICY]),
    ];
    for (name, flags) in cases {
        let q = query(&ca, name, flags);
        let reply = post(&http(), &daemon.public, "application/timestamp-query", std::fs::read(&q).unwrap()).await;
        assert_eq!(reply.status, 200, "{name}");
        assert_eq!(
            reply.content_type.as_deref(),
            Some("application/timestamp-reply"),
            "{name}: exactly, no parameters"
        );
        let r = ca.path(&format!("{name}.tsr"));
        std::fs::write(&r, &reply.body).unwrap();
        let text = reply_text(&r);
        assert!(text.contains("Status: Granted."), "{name}: {text}");
        assert_eq!(field(&text, "Policy OID:"), POLICY, "{name}");
        assert!(field(&text, "Accuracy:").starts_with("0x01 seconds"), "{name}: {text}");
        assert!(serials.insert(field(&text, "Serial number:")), "{name}: a serial repeated: {text}");

        let cert_req = flags.contains(&"-cert");
        let token = TimeStampResp::from_der(&reply.body).unwrap().time_stamp_token.expect("a token");
        let signed = cms::signed_data::SignedData::from_der(&token.content.to_der().unwrap()).unwrap();
        assert_eq!(signed.certificates.is_some(), cert_req, "{name}: certificates present only when certReq is set");
        if cert_req {
            // The TSA certificate and the issuing CA; never the root.
            assert_eq!(signed.certificates.as_ref().unwrap().0.len(), 2, "{name}");
            let ok = verify(&ca, &q, &r, None);
            assert!(ok.ok && ok.text.contains("Verification: OK"), "{name}: {}", ok.text);
        } else {
            let without = verify(&ca, &q, &r, None);
            assert!(!without.ok, "{name}: no certificate in the token, so openssl needs -untrusted: {}", without.text);
            let ok = verify(&ca, &q, &r, Some(&chain));
            assert!(ok.ok && ok.text.contains("Verification: OK"), "{name}: {}", ok.text);
        }
        let asked = run("openssl", &["ts", "-query", "-in", q.to_str().unwrap(), "-text"]).text;
        let nonce = field(&asked, "Nonce:");
        assert_eq!(field(&text, "Nonce:"), nonce, "{name}: the nonce is echoed");
        assert_eq!(nonce == "unspecified", flags.contains(&"-no_nonce"), "{name}: {asked}");
    }
    // The token is about this document and no other.
    let r = ca.path("cert-nonce.tsr");
    let root = ca.ca_pem("root");
    let check = |data: &Path| {
        let args = ["ts", "-verify", "-data", data.to_str().unwrap(), "-in", r.to_str().unwrap()];
        run("openssl", &[&args[..], &["-CAfile", root.to_str().unwrap()]].concat())
    };
    assert!(check(&document(&ca)).ok);
    let other = ca.path("other.txt");
    std::fs::write(&other, "tender document, lot 8\n").unwrap();
    let refused = check(&other);
    assert!(!refused.ok && refused.text.contains("message imprint mismatch"), "{}", refused.text);
}

/// A query with one byte changed at `at` (`0x30 0x81 ...` forms are built by the caller).
fn patched(der: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut bad = der.to_vec();
    bad[at] = value;
    bad
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_queries_are_refused_clearly_and_sign_nothing() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let good = std::fs::read(query(&ca, "good", &["-cert"])).unwrap();
    let sha1 = std::fs::read(query(&ca, "sha1", &["-sha1"])).unwrap();
    let policy = std::fs::read(query(&ca, "policy", &["-tspolicy", "1.2.3.4.5"])).unwrap();
    let sha256_oid = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    let at = good.windows(9).position(|w| w == sha256_oid).expect("the SHA-256 OID") + 8;
    assert!(good[1] < 0x80, "a short query: its length is one octet");
    const BAD_ALG: &str = "unrecognized or unsupported algorithm identifier";
    const BAD_DATA: &str = "the data submitted has the wrong format";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("long-form length", [&[0x30, 0x81, good[1]][..], &good[2..]].concat(), BAD_DATA),
        ("indefinite length", [&[0x30, 0x80][..], &good[2..], &[0, 0]].concat(), BAD_DATA),
        ("trailing byte", [&good[..], &[0]].concat(), BAD_DATA),
        ("truncated by one", good[..good.len() - 1].to_vec(), BAD_DATA),
        ("truncated in half", good[..good.len() / 2].to_vec(), BAD_DATA),
        ("unknown hash OID", patched(&good, at, 0x63), BAD_ALG),
        ("SHA-1", sha1, BAD_ALG),
        ("another policy", policy, "the requested TSA policy is not supported"),
    ];
    for (what, body, failure) in &cases {
        let reply = post(&http(), &daemon.public, "application/timestamp-query", body.clone()).await;
        assert_eq!(reply.status, 200, "{what}: a refusal is a TimeStampResp, never a 500");
        assert_eq!(reply.content_type.as_deref(), Some("application/timestamp-reply"), "{what}");
        let file = ca.path("refused.tsr");
        std::fs::write(&file, &reply.body).unwrap();
        let text = reply_text(&file);
        assert!(text.contains("Status: Rejected."), "{what}: {text}");
        assert!(text.contains(failure), "{what}: {text}");
        assert!(text.contains("TST info:\nNot included."), "{what}: no token in a refusal: {text}");
    }
    let wrong_type = post(&http(), &daemon.public, "application/ocsp-request", good.clone()).await;
    assert_eq!(wrong_type.status, 415);
    assert_eq!(wrong_type.content_type.as_deref(), Some("application/problem+json"));
    let huge = post(&http(), &daemon.public, "application/timestamp-query", vec![0x30; 2048]).await;
    assert_eq!(huge.status, 413);
    // Nothing was signed: no serial was ever reserved, and no token counted.
    assert_eq!(tsa_serials_next(&ca).await, 1, "a refused query reserves no serial");
    let metrics = http().get(format!("{}/metrics", daemon.metrics)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("cloudca_tsa_responses_total{status=\"granted\"} 0"), "{metrics}");
    let rejected = format!("cloudca_tsa_responses_total{{status=\"rejection\"}} {}", cases.len());
    assert!(metrics.contains(&rejected), "{metrics}");
    // And the good query, for contrast, is granted.
    let granted = post(&http(), &daemon.public, "application/timestamp-query", good).await;
    assert_eq!(TimeStampResp::from_der(&granted.body).unwrap().status.status, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tsa_certificate_is_critical_timestamping_only_and_its_key_cannot_leave() {
    use const_oid::db::rfc5280::{ID_CE_EXT_KEY_USAGE, ID_CE_KEY_USAGE, ID_KP_TIME_STAMPING};
    let ca = TestCa::new().await;
    let pem_path = ca.ca_pem("tsa");
    let text = run("openssl", &["x509", "-in", pem_path.to_str().unwrap(), "-noout", "-text"]).text;
    assert!(text.contains("X509v3 Extended Key Usage: critical\n                Time Stamping\n"), "{text}");
    assert!(text.contains("Digital Signature, Non Repudiation"), "{text}");
    assert!(text.contains("Issuer: C = CN, O = cloudca Development, CN = cloudca Dev Organisation CA"), "{text}");
    let purposes = run("openssl", &["x509", "-in", pem_path.to_str().unwrap(), "-noout", "-purpose"]).text;
    assert!(purposes.contains("Time Stamp signing : Yes"), "{purposes}");
    assert!(purposes.contains("SSL server : No") && purposes.contains("S/MIME signing : No"), "{purposes}");
    assert_eq!(pkilint_cert(&pem_path), "");

    let der = pem::parse(std::fs::read(&pem_path).unwrap()).unwrap().into_contents();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let extensions = cert.tbs_certificate().extensions().unwrap();
    let eku: Vec<_> = extensions.iter().filter(|e| e.extn_id == ID_CE_EXT_KEY_USAGE).collect();
    assert_eq!(eku.len(), 1, "one EKU extension");
    assert!(eku[0].critical, "the EKU is critical");
    let purposes = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku[0].extn_value.as_bytes()).unwrap();
    assert_eq!(purposes.0, vec![ID_KP_TIME_STAMPING], "timeStamping and nothing else");
    assert!(extensions.iter().any(|e| e.extn_id == ID_CE_KEY_USAGE && e.critical));
    let issuer = x509_cert::Certificate::from_der(
        &pem::parse(std::fs::read(ca.ca_pem("org")).unwrap()).unwrap().into_contents(),
    )
    .unwrap();
    let end = |c: &x509_cert::Certificate| c.tbs_certificate().validity().not_after.to_unix_duration();
    assert!(end(&cert) <= end(&issuer), "the TSA certificate never outlives its issuer");

    let instance = ca.open().await;
    let p = instance.hsm.protection("cloudca-tsa").await.unwrap();
    assert!(p.token && p.private && p.sensitive && !p.extractable, "{p:?}");
    assert!(p.always_sensitive && p.never_extractable && !p.modifiable && !p.copyable, "{p:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_without_a_tsa_key_answers_503_until_ceremony_tsa_adds_one() {
    let ca = TestCa::new().await;
    let config = ca.config_path.to_str().unwrap().to_string();
    let good = std::fs::read(query(&ca, "good", &["-cert"])).unwrap();
    // An instance from before the TSA: no row (the key is removed below).
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    sqlx::query("DELETE FROM authorities WHERE role = 'tsa'").execute(&pool).await.unwrap();
    pool.close().await;
    // A key left in the HSM under the label is never adopted or replaced.
    let out = cloudca(&["--config", &config, "ceremony", "tsa"]);
    assert!(!out.ok && out.text.contains("cloudca-tsa"), "{}", out.text);

    let instance = ca.open().await;
    assert!(!instance.tsa.has_key());
    let reply = instance.tsa.answer(&good).await;
    assert_eq!(reply.outcome, cloudca::tsa::Outcome::Unavailable);
    let status = TimeStampResp::from_der(&reply.der).unwrap().status;
    assert_eq!(status.status, 2);
    assert_eq!(status.status_string.unwrap(), vec!["timestamping is not set up on this instance".to_string()]);
    destroy_key(&ca, "cloudca-tsa");
    drop(instance);

    let out = cloudca(&["--config", &config, "ceremony", "tsa"]);
    assert!(out.ok && out.text.contains("tsa"), "{}", out.text);
    let again = cloudca(&["--config", &config, "ceremony", "tsa"]);
    assert!(!again.ok && again.text.contains("exists already"), "{}", again.text);
    let instance = ca.open().await;
    let reply = instance.tsa.answer(&good).await;
    assert_eq!(reply.outcome, cloudca::tsa::Outcome::Granted);
    let r = ca.path("after.tsr");
    std::fs::write(&r, &reply.der).unwrap();
    let ok = verify(&ca, &ca.path("good.tsq"), &r, None);
    assert!(ok.ok, "{}", ok.text);
    let events = instance
        .store
        .audit_events(&cloudca::store::AuditQuery {
            kind: Some("ceremony.tsa".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "the added key is audited");
}

/// Destroys the key pair labelled `label` on the instance's token (an older instance never had
/// one), logged in with the user PIN as an operator's own PKCS#11 tool would.
fn destroy_key(ca: &TestCa, label: &str) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::error::{Error as CkError, RvError};
    use cryptoki::object::Attribute;
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let ctx = Pkcs11::new(cloudca::devinit::SOFTHSM2_MODULE).expect("module loads");
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == ca.config.hsm.token_label)
        .expect("the instance's token");
    let session = ctx.open_rw_session(slot).unwrap();
    let pin = std::fs::read_to_string(ca.config.hsm.pin_file.as_ref().unwrap()).unwrap();
    match session.login(UserType::User, Some(&AuthPin::new(pin.trim_end().into()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("C_Login: {e}"),
    }
    let found = session.find_objects(&[Attribute::Label(label.as_bytes().to_vec())]).unwrap();
    assert_eq!(found.len(), 2, "the private and public key");
    for handle in found {
        session.destroy_object(handle).unwrap();
    }
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_signs_within_the_tsa_share_gets_503_or_429_with_retry_after_and_is_audited_as_a_count() {
    let mut ca = TestCa::new().await;
    let mut text = std::fs::read_to_string(&ca.config_path).unwrap();
    text.push_str("\n[limits]\ntsa_per_ip = { count = 12, seconds = 3600 }\n");
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    let good = Arc::new(std::fs::read(query(&ca, "good", &["-cert"])).unwrap());
    let instance = ca.open().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(cloudca::daemon::serve(instance.clone(), async move {
        let _ = stopped.await;
    }));
    let public = Arc::new(format!("http://{}", ca.config.listeners.public));
    let deadline = Instant::now() + Duration::from_secs(20);
    while http().get(format!("http://{}/ready", ca.config.listeners.metrics)).send().await.is_err() {
        assert!(Instant::now() < deadline, "daemon did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 16 clients, each from its own address, each sending its whole allowance at once.
    let mut flood = Vec::new();
    for i in 0..16u8 {
        let (public, good) = (public.clone(), good.clone());
        flood.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().local_address(loopback(10 + i)).build().unwrap();
            let mut answers = Vec::new();
            for _ in 0..12 {
                answers.push(post(&client, &public, "application/timestamp-query", good.to_vec()).await);
            }
            answers
        }));
    }
    // Meanwhile issuance completes (liveness: a bound, not a speed).
    let key = make_key(ca.dir.path(), "ee", "ec:P-256");
    let csr = make_csr(ca.dir.path(), "ee", &key, ORG_SUBJECT);
    let issued = tokio::time::timeout(Duration::from_secs(20), instance.issuance.issue("org", &csr, "flood"));
    assert!(issued.await.expect("issuance completes during the flood").is_ok());
    let mut granted = 0u64;
    for f in flood {
        for reply in f.await.unwrap() {
            let resp = TimeStampResp::from_der(&reply.body).expect("every answer is a TimeStampResp");
            match reply.status {
                200 => {
                    assert_eq!(resp.status.status, 0);
                    granted += 1;
                }
                503 => {
                    assert_eq!(reply.retry_after.as_deref(), Some("1"), "busy: Retry-After");
                    assert_eq!(resp.status.status, 2);
                }
                other => panic!("unexpected {other}"),
            }
        }
    }
    assert!(granted >= 1);
    let peak = instance.tsa.signing_peak();
    assert!((1..=ca.config.hsm.tsa_concurrency).contains(&peak), "at most hsm.tsa_concurrency at once: {peak}");

    // The thirteenth from one address is refused before anything is signed.
    let client = reqwest::Client::builder().no_proxy().local_address(loopback(10)).build().unwrap();
    let refused = post(&client, &public, "application/timestamp-query", good.to_vec()).await;
    assert_eq!(refused.status, 429);
    assert!(refused.retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    let problem: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert!(problem["title"].as_str().unwrap().contains("timestamp"), "{problem}");

    // Shutdown writes the count: tokens are audited as a number, not one entry each.
    let _ = stop.send(());
    served.await.unwrap().unwrap();
    let store = cloudca::store::Store::open(&ca.config.database).await.unwrap();
    let query = cloudca::store::AuditQuery { kind: Some("tsa.issued".into()), limit: 100, ..Default::default() };
    let events = store.audit_events(&query).await.unwrap();
    assert!(!events.is_empty() && events.len() < 5, "{} entries for {granted} tokens", events.len());
    let counted: u64 = events
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.record.detail).unwrap()["tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, granted, "every token counted once");
}

/// RFC 3161 §2.4.2 wants each token's serial unique. A database restored from a back-up has
/// the counter of the back-up's time, behind the serials issued since: before the time floor,
/// the restored TSA handed those serials out again.
#[tokio::test(flavor = "multi_thread")]
async fn a_serial_counter_restored_from_a_back_up_repeats_no_serial() {
    use cloudca::tsa::serial::{SerialBlocks, BLOCK};
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let clock: Arc<dyn cloudca::clock::Clock> = Arc::new(cloudca::clock::SystemClock);
    let before = SerialBlocks::new(instance.store.clone(), clock.clone());
    let mut issued = Vec::new();
    for _ in 0..3 {
        issued.push(before.next().await.unwrap());
    }
    // The restore: the counter goes back to what a back-up taken before these tokens holds.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    sqlx::query("UPDATE tsa_serials SET next = 1 WHERE id = 1").execute(&pool).await.unwrap();
    pool.close().await;
    // A restore takes longer than the clock's one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = SerialBlocks::new(instance.store.clone(), clock).next().await.unwrap();
    let end_of_first_block = issued[0] + BLOCK as u64;
    assert!(after >= end_of_first_block, "{after} repeats the block starting at {} ({issued:?})", issued[0]);
}
