//! The CSC API (`/csc/v1`, `/csc/v2`) against independent software: pyHanko's `CSCSigner`
//! signs a PDF through `/csc/v1` while the test plays the holder's app (claims the QR
//! payload, approves with the PIN), and `pyhanko sign validate` finds the signature intact
//! and trusted, with and without a timestamp from our TSA. Then the attacks: wrong hash
//! lengths, PINs sent by the platform, unknown credentials, another platform's handle and
//! SAD, a SAD for other hashes, a reused SAD, an expired one: CSC errors, nothing released.

use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::Digest;

use crate::common::*;
use crate::signing::{enrolled, Api, As, PHONE};

/// The personal test certificate's resident ID number (signing.rs `PERSONAL`).
const USER_ID: &str = "11010519491231002X";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// curl POST of a JSON body to the api listener with the client certificate `client`
/// (`tls/clients/NAME.pem|key` or a path stem), or none: (HTTP status, body).
fn post(ca: &TestCa, client: Option<&Path>, path: &str, body: &str) -> (String, serde_json::Value) {
    let tls = ca.config_path.parent().unwrap().join("tls");
    let url = format!("https://localhost:{}{path}", ca.config.listeners.api.port());
    let cacert = tls.join("operator-ca.pem");
    let mut args: Vec<String> = vec!["-s".into(), "--noproxy".into(), "*".into(), "-o".into(), "-".into()];
    args.extend(["-w".into(), "\n%{http_code}".into(), "--cacert".into(), cacert.to_str().unwrap().into()]);
    if let Some(stem) = client {
        args.extend(["--cert".into(), stem.with_extension("pem").to_str().unwrap().into()]);
        args.extend(["--key".into(), stem.with_extension("key").to_str().unwrap().into()]);
    }
    // A document-sized body goes through a file (one argument may not exceed 128 KiB).
    let data = if body.len() > 64 * 1024 {
        let file = ca.path("csc-request.json");
        std::fs::write(&file, body).unwrap();
        format!("@{}", file.display())
    } else {
        body.to_string()
    };
    args.extend(["-H".into(), "Content-Type: application/json".into(), "--data-binary".into(), data, url]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("curl", &refs);
    let (text, status) = out.text.rsplit_once('\n').unwrap_or(("", ""));
    (status.to_string(), serde_json::from_str(text).unwrap_or(serde_json::Value::Null))
}

fn dev_platform(ca: &TestCa) -> PathBuf {
    ca.config_path.parent().unwrap().join("tls/clients/relying-platform")
}

/// A second registered platform (its own client certificate), registered before the daemon
/// starts; returns its certificate stem.
fn register_other_platform(ca: &TestCa) -> PathBuf {
    let config = ca.config_path.to_str().unwrap();
    let key = make_key(ca.dir.path(), "other", "ec:P-256");
    make_csr(ca.dir.path(), "other", &key, "/CN=Other Platform");
    let stem = ca.path("other");
    let cert = stem.with_extension("pem");
    let csr = ca.path("other.csr");
    let issue = [
        "--config",
        config,
        "operator",
        "issue",
        "--csr",
        csr.to_str().unwrap(),
        "--role",
        "relying-platform",
        "--out",
        cert.to_str().unwrap(),
    ];
    let issued = cloudca(&issue);
    assert!(issued.ok, "{}", issued.text);
    let register = cloudca(&[
        "--config",
        config,
        "platform",
        "register",
        "--name",
        "other",
        "--display-name",
        "Other Platform",
        "--callback-url",
        "https://other.example/cb",
        "--certificate",
        cert.to_str().unwrap(),
    ]);
    assert!(register.ok, "{}", register.text);
    if key != stem.with_extension("key") {
        std::fs::copy(&key, stem.with_extension("key")).unwrap();
    }
    stem
}

/// The holder's app: claims the session behind an authorize answer and approves it.
fn approve_on_phone(
    api: &Api<'_>,
    token: &str,
    authorized: &serde_json::Value,
    credential: &str,
    opened: std::time::Instant,
) -> String {
    let secret = cloudca::signing::qr::QrSecret::from_base64(authorized["start_secret"].as_str().unwrap()).unwrap();
    let payload =
        cloudca::signing::qr::payload(authorized["start_token"].as_str().unwrap(), &secret, opened.elapsed().as_secs());
    let (status, shown) = api.call(
        As::Holder(token),
        "POST",
        "/v1/mobile/sessions/claim",
        Some(&format!(r#"{{"payload":"{payload}"}}"#)),
    );
    assert_eq!(status, "200", "{shown}");
    assert_eq!(shown["verification_code"], authorized["verification_code"]);
    let session = shown["session_id"].as_str().unwrap();
    let body = format!(r#"{{"credential_id":"{credential}","pin":"246810"}}"#);
    let (status, done) =
        api.call(As::Holder(token), "POST", &format!("/v1/mobile/sessions/{session}/approve"), Some(&body));
    assert_eq!(status, "200", "{done}");
    session.to_string()
}

/// Runs the pyHanko script and plays the holder meanwhile; returns the signed PDF.
fn pyhanko_sign(ca: &TestCa, api: &Api<'_>, token: &str, credential: &str, name: &str, tsa: Option<&str>) -> PathBuf {
    let tls = ca.config_path.parent().unwrap().join("tls");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/csc_pyhanko.py");
    let (input, output, handoff) =
        (ca.path(&format!("{name}-in.pdf")), ca.path(&format!("{name}.pdf")), ca.path(&format!("{name}.json")));
    let platform = dev_platform(ca);
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(&script)
        .args(["--api", &format!("https://localhost:{}", ca.config.listeners.api.port())])
        .args(["--cacert", tls.join("operator-ca.pem").to_str().unwrap()])
        .args(["--cert", platform.with_extension("pem").to_str().unwrap()])
        .args(["--key", platform.with_extension("key").to_str().unwrap()])
        .args(["--credential", credential])
        .args(["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()])
        .args(["--handoff", handoff.to_str().unwrap()])
        .env("NO_PROXY", "*")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(url) = tsa {
        cmd.args(["--tsa", url]);
    }
    let mut child = cmd.spawn().expect("python3 runs");
    let mut waited = 0;
    while !handoff.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!("pyHanko stopped before authorize ({status}): {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
        assert!(waited < 1200, "pyHanko never called credentials/authorize");
    }
    let opened = std::time::Instant::now();
    let authorized: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&handoff).unwrap()).unwrap();
    approve_on_phone(api, token, &authorized, credential, opened);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pyHanko: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    output
}

/// `pyhanko sign validate` with our root as the only trust anchor: its one-line summary
/// (`Signature:INTACT:TRUSTED,...`) and its detailed report.
fn pyhanko_validate(ca: &TestCa, pdf: &Path) -> (String, String) {
    let root = ca.ca_pem("root");
    let validate = |style: &[&str]| {
        let args = ["sign", "validate", "--trust", root.to_str().unwrap(), "--trust-replace", "--no-revocation-check"];
        let out = run("pyhanko", &[&args[..], style, &[pdf.to_str().unwrap()]].concat());
        assert!(out.ok, "pyhanko sign validate: {}", out.text);
        out.text
    };
    (validate(&[]), validate(&["--pretty-print"]))
}

#[tokio::test(flavor = "multi_thread")]
async fn pyhanko_signs_a_pdf_through_csc_v1_and_validates_it_with_and_without_a_timestamp() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let (token, credential, _) = enrolled(&ca, &api, PHONE);
    let platform = dev_platform(&ca);

    // The platform finds the credential by the holder's ID number, and reads it.
    let (status, listed) =
        post(&ca, Some(&platform), "/csc/v1/credentials/list", &format!(r#"{{"userID":"{USER_ID}"}}"#));
    assert_eq!(status, "200", "{listed}");
    assert_eq!(listed["credentialIDs"], serde_json::json!([credential]));
    let body = format!(r#"{{"credentialID":"{credential}","certificates":"chain","certInfo":true}}"#);
    let (status, info) = post(&ca, Some(&platform), "/csc/v2/credentials/info", &body);
    assert_eq!(status, "200", "{info}");
    assert_eq!(info["key"]["status"], "enabled");
    assert_eq!(info["key"]["algo"], serde_json::json!(["1.2.840.10045.4.3.2", "1.2.840.10045.2.1"]));
    assert_eq!((info["key"]["len"].as_u64(), info["key"]["curve"].as_str()), (Some(256), Some("1.2.840.10045.3.1.7")));
    assert_eq!(info["cert"]["certificates"].as_array().unwrap().len(), 3, "end entity, issuing CA, root");
    assert_eq!(info["cert"]["status"], "valid");
    assert!(info["cert"]["subjectDN"].as_str().unwrap().contains(USER_ID), "{info}");
    assert!(info["cert"]["validTo"].as_str().unwrap().ends_with('Z'));
    assert_eq!((info["SCAL"].as_str(), info["auth"]["mode"].as_str()), (Some("2"), Some("explicit")));
    assert!(info["multisign"].as_u64().unwrap() >= 1);

    // B-B through pyHanko's CSCSigner; pyHanko's validator: intact and trusted.
    let pdf = pyhanko_sign(&ca, &api, &token, &credential, "signed", None);
    let (summary, report) = pyhanko_validate(&ca, &pdf);
    assert!(summary.contains("INTACT") && summary.contains("TRUSTED"), "{summary}");
    assert!(report.contains("The signature is judged VALID."), "{report}");

    // B-T: the same with a timestamp from our TSA, which pyHanko validates too.
    let tsa = format!("{}/tsa", daemon.public);
    let pdf = pyhanko_sign(&ca, &api, &token, &credential, "timestamped", Some(&tsa));
    let (summary, report) = pyhanko_validate(&ca, &pdf);
    assert!(
        summary.contains("INTACT") && summary.contains("TRUSTED") && summary.contains("TIMESTAMP_TOKEN"),
        "{summary}"
    );
    assert!(report.contains("The signature is judged VALID."), "{report}");
    println!("{summary}\n{report}");

    let instance = ca.open().await;
    for kind in ["csc.authorize_requested", "csc.sad_issued", "csc.sad_spent", "csc.credentials_listed"] {
        assert!(instance.store.count_audit_events(kind).await.unwrap() >= 1, "{kind} audited");
    }
    assert_eq!(instance.store.count_audit_events("csc.sad_spent").await.unwrap(), 2);
}

/// A TestCa whose authorisations (and so SADs) last ten seconds, the least allowed.
async fn short_sad_ca() -> TestCa {
    let mut ca = TestCa::new().await;
    let mut text = std::fs::read_to_string(&ca.config_path).unwrap();
    text.push_str("\n[custody]\nauthorization_seconds = 10\n");
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    ca
}

/// [status, error, error_description] of a CSC answer.
fn error_of(answer: &(String, serde_json::Value)) -> [&str; 3] {
    [answer.0.as_str(), answer.1["error"].as_str().unwrap_or(""), answer.1["error_description"].as_str().unwrap_or("")]
}

#[tokio::test(flavor = "multi_thread")]
async fn csc_refuses_bad_input_foreign_handles_and_reused_or_expired_sads_and_releases_nothing() {
    let ca = short_sad_ca().await;
    let other = register_other_platform(&ca);
    let daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let (token, credential, certificate) = enrolled(&ca, &api, PHONE);
    let platform = dev_platform(&ca);
    let me = Some(platform.as_path());
    let h1: [u8; 32] = sha2::Sha256::digest(b"bid document").into();
    let h2: [u8; 32] = sha2::Sha256::digest(b"another document").into();

    // No client certificate, no listing without a user, unknown methods and credentials.
    let list = format!(r#"{{"userID":"{USER_ID}"}}"#);
    assert_eq!(error_of(&post(&ca, None, "/csc/v2/credentials/list", &list))[0], "403");
    let (status, info) = post(&ca, None, "/csc/v1/info", "{}");
    assert_eq!((status.as_str(), info["specs"].as_str()), ("200", Some("1.0.4.0")), "info is open");
    assert_eq!(error_of(&post(&ca, me, "/csc/v2/credentials/list", "{}"))[1], "invalid_request", "userID required");
    let (status, listed) = post(&ca, me, "/csc/v2/credentials/list", r#"{"userID":"110105198001010016"}"#);
    assert_eq!((status.as_str(), listed["credentialIDs"].as_array().map(Vec::len)), ("200", Some(0)), "nobody else's");
    for route in ["/csc/v2/oauth2/token", "/csc/v1/auth/login"] {
        let answer = post(&ca, me, route, "{}");
        assert_eq!(error_of(&answer)[..2], ["501", "not_implemented"], "{route}: {answer:?}");
    }
    let authorize = |cred: &str, hashes: &[String], extra: &str| {
        let list = hashes.iter().map(|h| format!("\"{h}\"")).collect::<Vec<_>>().join(",");
        format!(r#"{{"credentialID":"{cred}","numSignatures":{},"hashes":[{list}]{extra}}}"#, hashes.len())
    };
    let cases = [
        (authorize(&credential, &[b64(&[7u8; 20])], ""), "Invalid digest value length"),
        (authorize(&credential, &[b64(&h1)], r#","authData":[{"id":"PIN","value":"246810"}]"#), "PIN"),
        (authorize("0123456789abcdef0123456789abcdef", &[b64(&h1)], ""), "credentialID"),
        (authorize(&credential, &[b64(&h1)], r#","hashAlgorithmOID":"1.3.14.3.2.26""#), "hashAlgo"),
        (format!(r#"{{"credentialID":"{credential}","numSignatures":2,"hashes":["{}"]}}"#, b64(&h1)), "numSignatures"),
        ("{not json".to_string(), "malformed"),
    ];
    for (body, why) in &cases {
        let answer = post(&ca, me, "/csc/v2/credentials/authorize", body);
        let [status, error, description] = error_of(&answer);
        assert!(status == "400" && error == "invalid_request" && description.contains(why), "{body}: {answer:?}");
    }
    let v1_pin =
        format!(r#"{{"credentialID":"{credential}","numSignatures":1,"hash":["{}"],"PIN":"246810"}}"#, b64(&h1));
    assert_eq!(
        error_of(&post(&ca, me, "/csc/v1/credentials/authorize", &v1_pin))[0],
        "400",
        "no PIN through platforms"
    );

    // A good authorisation (v2 names): pending until the holder approves, only for its platform.
    let (status, authorized) = post(&ca, me, "/csc/v2/credentials/authorize", &authorize(&credential, &[b64(&h1)], ""));
    assert_eq!(status, "202", "{authorized}");
    let opened = std::time::Instant::now();
    let handle = authorized["handle"].as_str().unwrap().to_string();
    let check = format!(r#"{{"handle":"{handle}"}}"#);
    assert_eq!(post(&ca, me, "/csc/v2/credentials/authorizeCheck", &check).0, "202");
    let session = approve_on_phone(&api, &token, &authorized, &credential, opened);
    // The session's own poll does not show a CSC session's signatures: only the SAD does.
    let (status, _) = api.call(As::Platform, "GET", &format!("/v1/signing/sessions/{session}"), None);
    assert_eq!(status, "404", "a CSC session is not polled natively");
    let theirs = post(&ca, Some(&other), "/csc/v2/credentials/authorizeCheck", &check);
    assert_eq!(error_of(&theirs)[..2], ["400", "invalid_request"], "another platform's handle: {theirs:?}");
    let (status, ready) = post(&ca, me, "/csc/v2/credentials/authorizeCheck", &check);
    assert_eq!(status, "200", "{ready}");
    let sad = ready["SAD"].as_str().unwrap().to_string();
    assert!(ready["expiresIn"].as_i64().unwrap() <= 10);
    assert_eq!(error_of(&post(&ca, me, "/csc/v2/credentials/authorizeCheck", &check))[0], "400", "one SAD per handle");

    // signHash: everything but the exact approval is refused, and nothing is released.
    let sign = |cred: &str, sad: &str, hashes: &[String]| {
        let list = hashes.iter().map(|h| format!("\"{h}\"")).collect::<Vec<_>>().join(",");
        format!(
            r#"{{"credentialID":"{cred}","SAD":"{sad}","hashes":[{list}],"hashAlgorithmOID":"2.16.840.1.101.3.4.2.1","signAlgo":"1.2.840.10045.4.3.2"}}"#
        )
    };
    let refusals = [
        (me, sign(&credential, &sad, &[b64(&h2)]), "Hash is not authorized"),
        (me, sign(&credential, &sad, &[b64(&h1), b64(&h1)]), "Hash is not authorized"),
        (me, sign(&credential, &sad, &[b64(&h1[..31])]), "Invalid digest value length"),
        (me, sign("0123456789abcdef0123456789abcdef", &sad, &[b64(&h1)]), "credentialID"),
        (me, sign(&credential, "forged-sad", &[b64(&h1)]), "SAD"),
        (Some(other.as_path()), sign(&credential, &sad, &[b64(&h1)]), "SAD"),
    ];
    for (who, body, why) in &refusals {
        let answer = post(&ca, *who, "/csc/v2/signatures/signHash", body);
        let [status, error, description] = error_of(&answer);
        assert!(status == "400" && error == "invalid_request" && description.contains(why), "{body}: {answer:?}");
    }
    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("csc.sad_spent").await.unwrap(), 0, "nothing released");
    assert!(instance.store.count_audit_events("csc.sign_refused").await.unwrap() >= 1, "refusals audited");

    // The exact approval: one DER ECDSA signature over h1 that openssl verifies; then never again.
    let (status, signed) = post(&ca, me, "/csc/v2/signatures/signHash", &sign(&credential, &sad, &[b64(&h1)]));
    assert_eq!(status, "200", "{signed}");
    let der = base64::engine::general_purpose::STANDARD.decode(signed["signatures"][0].as_str().unwrap()).unwrap();
    assert_eq!(der[0], 0x30, "DER Ecdsa-Sig-Value, not r||s");
    let (cert, sig, digest, public) =
        (ca.path("holder.pem"), ca.path("sig.der"), ca.path("h1.bin"), ca.path("holder.pub"));
    std::fs::write(&cert, certificate).unwrap();
    std::fs::write(&sig, &der).unwrap();
    std::fs::write(&digest, h1).unwrap();
    assert!(
        run("openssl", &["x509", "-in", cert.to_str().unwrap(), "-pubkey", "-noout", "-out", public.to_str().unwrap()])
            .ok
    );
    let verified = run(
        "openssl",
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            public.to_str().unwrap(),
            "-in",
            digest.to_str().unwrap(),
            "-sigfile",
            sig.to_str().unwrap(),
        ],
    );
    assert!(verified.ok && verified.text.contains("Signature Verified Successfully"), "{}", verified.text);
    let again = post(&ca, me, "/csc/v2/signatures/signHash", &sign(&credential, &sad, &[b64(&h1)]));
    assert!(error_of(&again)[0] == "400" && error_of(&again)[2].contains("used already"), "{again:?}");
    assert_eq!(instance.store.count_audit_events("csc.sad_spent").await.unwrap(), 1);
    let signatures = instance.store.count_audit_events("signature.created").await.unwrap();

    // An expired SAD (v1 names this time) releases nothing.
    let sad = v1_sad_approved(&ca, me, &api, &token, &credential, &h2);
    std::thread::sleep(std::time::Duration::from_secs(11));
    let body = v1_sign_hash(&credential, &sad, &h2);
    let expired = post(&ca, me, "/csc/v1/signatures/signHash", &body);
    assert!(error_of(&expired)[0] == "400" && error_of(&expired)[2].contains("SAD expired"), "{expired:?}");
    assert_eq!(instance.store.count_audit_events("csc.sad_spent").await.unwrap(), 1, "nothing more released");
    assert_eq!(
        instance.store.count_audit_events("signature.created").await.unwrap(),
        signatures + 1,
        "that approval only"
    );

    // The holder refuses on the phone: access_denied, and no SAD.
    let body = format!(r#"{{"credentialID":"{credential}","numSignatures":1,"hash":["{}"]}}"#, b64(&h1));
    let (status, authorized) = post(&ca, me, "/csc/v1/credentials/authorize", &body);
    assert_eq!(status, "202", "{authorized}");
    let secret = cloudca::signing::qr::QrSecret::from_base64(authorized["start_secret"].as_str().unwrap()).unwrap();
    let payload = cloudca::signing::qr::payload(authorized["start_token"].as_str().unwrap(), &secret, 0);
    let claim = format!(r#"{{"payload":"{payload}"}}"#);
    let (status, shown) = api.call(As::Holder(&token), "POST", "/v1/mobile/sessions/claim", Some(&claim));
    assert_eq!(status, "200", "{shown}");
    let refuse = format!("/v1/mobile/sessions/{}/refuse", shown["session_id"].as_str().unwrap());
    assert_eq!(api.call(As::Holder(&token), "POST", &refuse, None).0, "200");
    let check = format!(r#"{{"handle":"{}"}}"#, authorized["handle"].as_str().unwrap());
    let refused = post(&ca, me, "/csc/v1/credentials/authorizeCheck", &check);
    assert_eq!(error_of(&refused)[..2], ["400", "access_denied"], "{refused:?}");
    assert_eq!(instance.store.count_audit_events("csc.sad_issued").await.unwrap(), 2, "no SAD for a refusal");

    // signatures/timestamp (v2): a token from our TSA that openssl verifies, nonce included.
    let body = format!(r#"{{"hash":"{}","hashAlgo":"2.16.840.1.101.3.4.2.1","nonce":"0badc0de"}}"#, b64(&h1));
    let (status, stamped) = post(&ca, me, "/csc/v2/signatures/timestamp", &body);
    assert_eq!(status, "200", "{stamped}");
    let token_path = ca.path("token.der");
    std::fs::write(
        &token_path,
        base64::engine::general_purpose::STANDARD.decode(stamped["timestamp"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let root = ca.ca_pem("root");
    let verified = run(
        "openssl",
        &[
            "ts",
            "-verify",
            "-digest",
            &hex::encode(h1),
            "-in",
            token_path.to_str().unwrap(),
            "-token_in",
            "-CAfile",
            root.to_str().unwrap(),
        ],
    );
    assert!(verified.ok && verified.text.contains("Verification: OK"), "{}", verified.text);
    let text = run("openssl", &["ts", "-reply", "-in", token_path.to_str().unwrap(), "-token_in", "-text"]).text;
    assert!(text.contains("Nonce: 0x0BADC0DE"), "nonce echoed: {text}");

    // A key revoked between the approval and signHash (a reported compromise) releases none of
    // the signatures made at approval (attacker review: no status check at release).
    let sad = v1_sad_approved(&ca, me, &api, &token, &credential, &h2);
    // The purge of finished sessions keeps one whose SAD is issued and not yet spent (attacker
    // review of the purge, L2: a SAD fetched late lost its session mid-life).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    instance.store.purge_signing_sessions(now + 1, now * 1000).await.unwrap();
    let held = instance.store.csc_by_sad(&cloudca::csc::sad::hash(&sad)).await.unwrap();
    assert!(held.is_some_and(|a| a.spent_at.is_none()), "an unspent SAD keeps its session");
    let listed = api.call(As::Holder(&token), "GET", "/v1/mobile/credentials", None).1;
    let serial = listed["credentials"][0]["serial"].as_str().unwrap().to_string();
    let revoke = r#"{"reason":"keyCompromise"}"#;
    crate::admin::Admin::new(&ca).json("operator", "POST", &format!("/v1/certificates/{serial}/revoke"), Some(revoke));
    let body = v1_sign_hash(&credential, &sad, &h2);
    let revoked = post(&ca, me, "/csc/v1/signatures/signHash", &body);
    assert!(error_of(&revoked)[0] == "400" && error_of(&revoked)[2].contains("no longer valid"), "{revoked:?}");
    assert_eq!(instance.store.count_audit_events("csc.sad_spent").await.unwrap(), 1, "nothing released");
    drop(daemon);
}

/// A v1 `signatures/signHash` body (the names pyHanko sends): one SHA-256 hash, ECDSA.
fn v1_sign_hash(credential: &str, sad: &str, hash: &[u8]) -> String {
    format!(
        r#"{{"credentialID":"{credential}","SAD":"{sad}","hash":["{}"],"hashAlgo":"2.16.840.1.101.3.4.2.1","signAlgo":"1.2.840.10045.4.3.2"}}"#,
        b64(hash)
    )
}

/// v1 `credentials/authorize` for one hash, the holder's approval on the phone, and
/// `authorizeCheck`: the SAD.
fn v1_sad_approved(
    ca: &TestCa,
    me: Option<&Path>,
    api: &Api<'_>,
    token: &str,
    credential: &str,
    hash: &[u8],
) -> String {
    let body = format!(r#"{{"credentialID":"{credential}","numSignatures":1,"hash":["{}"]}}"#, b64(hash));
    let (status, authorized) = post(ca, me, "/csc/v1/credentials/authorize", &body);
    assert_eq!(status, "202", "{authorized}");
    approve_on_phone(api, token, &authorized, credential, std::time::Instant::now());
    let check = format!(r#"{{"handle":"{}"}}"#, authorized["handle"].as_str().unwrap());
    let (status, ready) = post(ca, me, "/csc/v1/credentials/authorizeCheck", &check);
    assert_eq!(status, "200", "{ready}");
    ready["SAD"].as_str().unwrap().to_string()
}

/// A one-page PDF from the project's writer.
fn contract_pdf() -> Vec<u8> {
    cloudca::pdf::render(&cloudca::pdf::Document {
        title: "Supply contract 2026-0412".into(),
        sections: vec![cloudca::pdf::Section {
            heading: "Terms".into(),
            rows: vec![("Amount".into(), "86,000 CNY".into()), ("Delivery".into(), "30 days".into())],
        }],
    })
}

/// A v2 `signatures/signDoc` body for one PDF; `extra` fields replace or add to the top level,
/// `document` ones to the document entry.
fn sign_doc_body(credential: &str, pdf: &[u8], extra: serde_json::Value, document: serde_json::Value) -> String {
    let mut entry = serde_json::json!({
        "document": b64(pdf), "signature_format": "P", "conformance_level": "Ades-B-T", "signAlgo": "1.2.840.10045.4.3.2",
    });
    for (k, v) in document.as_object().unwrap() {
        entry[k] = v.clone();
    }
    let mut body = serde_json::json!({ "credentialID": credential, "documents": [entry], "operationMode": "A" });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body.to_string()
}

/// v2 `signDoc`: the platform sends the PDF, the holder approves that document on the phone,
/// and `signPolling` releases the PAdES document once, which pyHanko validates with its
/// timestamp. Requests the flow cannot honour (a SAD, digests instead of the document,
/// synchronous mode, another format or level, DocMDP, a broken PDF) are CSC errors and store
/// nothing; another platform's requestID and the hash flow's endpoints know nothing of it.
#[tokio::test(flavor = "multi_thread")]
async fn csc_v2_sign_doc_signs_the_pdf_the_holder_approved_and_releases_it_once() {
    let ca = TestCa::new().await;
    let other = register_other_platform(&ca);
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let (token, credential, _) = enrolled(&ca, &api, PHONE);
    let platform = dev_platform(&ca);
    let me = Some(platform.as_path());
    let pdf = contract_pdf();

    let (_, info) = post(&ca, None, "/csc/v2/info", "{}");
    let methods = info["methods"].as_array().unwrap();
    assert!(methods.contains(&"signatures/signDoc".into()) && methods.contains(&"signatures/signPolling".into()));
    assert_eq!(info["asynchronousOperationMode"], true);

    use serde_json::json;
    let no = json!({});
    let mut padded = pdf.clone();
    padded.resize(3 * 1024 * 1024, b' ');
    let cases = [
        (sign_doc_body(&credential, &pdf, json!({ "operationMode": "S" }), no.clone()), "operationMode"),
        (sign_doc_body(&credential, &pdf, json!({ "SAD": "c2Fk" }), no.clone()), "SAD"),
        (sign_doc_body(&credential, &pdf, json!({ "documentDigests": [{}] }), no.clone()), "documentDigests"),
        (sign_doc_body(&credential, &pdf, json!({ "returnValidationInfo": true }), no.clone()), "Ades-B-LT"),
        (sign_doc_body(&credential, &pdf, json!({ "response_uri": "https://x.example/cb" }), no.clone()), "poll"),
        (sign_doc_body(&credential, &pdf, json!({ "documents": [] }), no.clone()), "exactly one"),
        (sign_doc_body(&credential, &pdf, no.clone(), json!({ "signature_format": "C" })), "signature_format"),
        (sign_doc_body(&credential, &pdf, no.clone(), json!({ "conformance_level": "Ades-B-LTA" })), "conformance"),
        (sign_doc_body(&credential, &pdf, no.clone(), json!({ "signAlgo": "1.2.840.113549.1.1.11" })), "signAlgo"),
        (
            sign_doc_body(&credential, &pdf, no.clone(), json!({ "signed_envelope_property": "Certification" })),
            "Revision",
        ),
        (sign_doc_body("0123456789abcdef0123456789abcdef", &pdf, no.clone(), no.clone()), "credentialID"),
        (sign_doc_body(&credential, &pdf[..pdf.len() * 2 / 3], no.clone(), no.clone()), "truncated"),
        // A document-sized body is read (a relying platform's certificate), then refused for
        // what it says, not for its size.
        (sign_doc_body(&credential, &padded, no.clone(), json!({ "signature_format": "X" })), "signature_format"),
        ("{not json".to_string(), "malformed"),
    ];
    for (body, why) in &cases {
        let answer = post(&ca, me, "/csc/v2/signatures/signDoc", body);
        let [status, error, description] = error_of(&answer);
        assert!(status == "400" && error == "invalid_request" && description.contains(why), "{why}: {answer:?}");
    }
    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("signing.opened").await.unwrap(), 0, "nothing stored");
    let body = sign_doc_body(&credential, &pdf, no.clone(), no.clone());
    assert_eq!(error_of(&post(&ca, None, "/csc/v2/signatures/signDoc", &body))[0], "403", "platforms only");

    // A good request: pending until the holder approves; only its platform may poll it, and
    // neither authorizeCheck nor the native session poll knows it.
    let (status, opened) = post(&ca, me, "/csc/v2/signatures/signDoc", &body);
    assert_eq!(status, "202", "{opened}");
    let started = std::time::Instant::now();
    let id = opened["responseID"].as_str().unwrap().to_string();
    let poll = format!(r#"{{"requestID":"{id}"}}"#);
    let pending = post(&ca, me, "/csc/v2/signatures/signPolling", &poll);
    assert_eq!(error_of(&pending)[..2], ["202", "accepted_request"], "{pending:?}");
    let foreign = post(&ca, Some(&other), "/csc/v2/signatures/signPolling", &poll);
    assert!(error_of(&foreign)[0] == "400" && error_of(&foreign)[2].contains("requestID"), "{foreign:?}");
    let check = post(&ca, me, "/csc/v2/credentials/authorizeCheck", &format!(r#"{{"handle":"{id}"}}"#));
    assert!(error_of(&check)[0] == "400" && error_of(&check)[2].contains("handle"), "{check:?}");
    let session = approve_on_phone(&api, &token, &opened, &credential, started);
    let (status, _) = api.call(As::Platform, "GET", &format!("/v1/signing/sessions/{session}"), None);
    assert_eq!(status, "404", "a CSC session is not polled natively");
    assert_eq!(post(&ca, Some(&other), "/csc/v2/signatures/signPolling", &poll).0, "400");

    // Signed: the PAdES document, an incremental update of the one sent, valid with its
    // timestamp; released once.
    let (status, done) = post(&ca, me, "/csc/v2/signatures/signPolling", &poll);
    assert_eq!(status, "200", "{done}");
    let signed =
        base64::engine::general_purpose::STANDARD.decode(done["DocumentWithSignature"][0].as_str().unwrap()).unwrap();
    assert!(signed.starts_with(&pdf), "an incremental update of the document sent");
    let path = ca.path("sign-doc.pdf");
    std::fs::write(&path, &signed).unwrap();
    let (summary, report) = pyhanko_validate(&ca, &path);
    assert!(
        summary.contains("INTACT") && summary.contains("TRUSTED") && summary.contains("TIMESTAMP_TOKEN"),
        "{summary}"
    );
    assert!(report.contains("The signature is judged VALID."), "{report}");
    let again = post(&ca, me, "/csc/v2/signatures/signPolling", &poll);
    assert!(error_of(&again)[0] == "400" && error_of(&again)[2].contains("released already"), "{again:?}");
    assert!(instance.store.count_audit_events("csc.poll_refused").await.unwrap() >= 1, "refusals audited");
    let row = instance.store.signing_session(&session).await.unwrap().unwrap();
    assert!(row.result.is_none(), "the signed PDF is not kept after its release");
    assert_eq!(instance.store.count_audit_events("csc.sign_doc_requested").await.unwrap(), 1);
    assert_eq!(instance.store.count_audit_events("csc.document_released").await.unwrap(), 1);

    // The purge of finished sessions (attacker review H2: they hold the PDFs) takes the signed
    // one and its CSC row, and leaves one the holder has not answered yet.
    let (status, waiting) = post(&ca, me, "/csc/v2/signatures/signDoc", &body);
    assert_eq!(status, "202", "{waiting}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(instance.store.purge_signing_sessions(now + 1, now * 1000).await.unwrap(), 1);
    assert!(instance.store.signing_session(&session).await.unwrap().is_none(), "the signed session is gone");
    let gone = post(&ca, me, "/csc/v2/signatures/signPolling", &poll);
    assert!(error_of(&gone)[0] == "400" && error_of(&gone)[2].contains("requestID"), "{gone:?}");
    let still = format!(r#"{{"requestID":"{}"}}"#, waiting["responseID"].as_str().unwrap());
    assert_eq!(error_of(&post(&ca, me, "/csc/v2/signatures/signPolling", &still))[0], "202", "the open one stays");
    assert_eq!(instance.store.count_audit_events("signing.sessions_purged").await.unwrap(), 1);
}
