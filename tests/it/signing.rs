//! The cloud-signing story end to end, over the real listeners with curl: an operator approves
//! an identity, the holder logs in by SMS (sandbox outbox), sets a PIN (key generated in the
//! HSM, certificate issued), a relying platform opens a session, the holder claims its QR
//! payload and approves with the PIN, and the platform's signatures verify with openssl.

use std::path::PathBuf;

use base64::Engine;
use sha2::Digest;

use crate::admin::Admin;
use crate::common::*;

pub(crate) const PHONE: &str = "+8613800138000";
/// The agent who holds an organisation's test certificate.
pub(crate) const AGENT_PERSON: &str = r#"{"name":"李四","id_number":"110105198001010016"}"#;
const PERSONAL: &str = r#"[["C","CN"],["CN","张三"],["serialNumber","11010519491231002X"]]"#;

/// curl against the api listener: as the holder (bearer token), as the dev platform (mutual
/// TLS), or anonymous. Returns (HTTP status, parsed body or Null).
pub(crate) struct Api<'a> {
    pub(crate) ca: &'a TestCa,
}

pub(crate) enum As<'a> {
    Nobody,
    Holder(&'a str),
    Platform,
}

impl Api<'_> {
    pub(crate) fn call(
        &self,
        who: As<'_>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (String, serde_json::Value) {
        let dir = self.ca.config_path.parent().unwrap().join("tls");
        let url = format!("https://localhost:{}{path}", self.ca.config.listeners.api.port());
        let cacert = dir.join("operator-ca.pem").to_str().unwrap().to_string();
        let mut args: Vec<String> =
            ["-s", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}", "--cacert", &cacert, "-X", method]
                .iter()
                .map(|s| s.to_string())
                .collect();
        match who {
            As::Holder(token) => args.extend(["-H".into(), format!("Authorization: Bearer {token}")]),
            As::Platform => {
                for (flag, ext) in [("--cert", "pem"), ("--key", "key")] {
                    args.extend([
                        flag.into(),
                        dir.join(format!("clients/relying-platform.{ext}")).to_str().unwrap().into(),
                    ]);
                }
            }
            As::Nobody => {}
        }
        if let Some(b) = body {
            args.extend(["-H".into(), "Content-Type: application/json".into(), "--data-binary".into(), b.into()]);
        }
        args.push(url);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run("curl", &refs);
        let (text, status) = out.text.rsplit_once('\n').unwrap_or(("", ""));
        (status.to_string(), serde_json::from_str(text).unwrap_or(serde_json::Value::Null))
    }

    pub(crate) fn login(&self, phone: &str) -> String {
        let (status, _) = self.call(As::Nobody, "POST", "/v1/mobile/sms", Some(&format!(r#"{{"phone":"{phone}"}}"#)));
        assert_eq!(status, "202");
        let body = format!(r#"{{"phone":"{phone}","code":"{}"}}"#, last_code(self.ca, phone));
        let (status, session) = self.call(As::Nobody, "POST", "/v1/mobile/login", Some(&body));
        assert_eq!(status, "200", "{session}");
        session["token"].as_str().unwrap().to_string()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An identity proof by face for `purpose` (`enrol`, `unlock`, `reset`) on `target`: started
/// by the server, the sandbox face page passed as the person would, then polled until the
/// provider's verdict. Returns the proof id.
pub(crate) fn prove_face(api: &Api<'_>, token: &str, purpose: &str, target: &str) -> String {
    let body = format!(r#"{{"purpose":"{purpose}","target":"{target}","method":"face"}}"#);
    let (status, started) = api.call(As::Holder(token), "POST", "/v1/mobile/proofs", Some(&body));
    assert_eq!(status, "201", "{started}");
    let id = started["proof_id"].as_str().unwrap().to_string();
    let url = started["face_url"].as_str().unwrap();
    let page = &url[url.find("/sandbox/face/").expect("a sandbox face page")..];
    assert_eq!(api.call(As::Nobody, "POST", page, Some("result=pass")).0, "200");
    for _ in 0..50 {
        let (_, view) = api.call(As::Holder(token), "GET", &format!("/v1/mobile/proofs/{id}"), None);
        if view["state"] == "passed" {
            return id;
        }
        assert_eq!(view["state"], "pending", "{view}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the face check never passed");
}

/// A personal approval for `phone`, so it may be sent login codes (only phones with an
/// approval, a credential or an organisation are: security review M7).
pub(crate) fn approve_phone(ca: &TestCa, phone: &str) {
    let body = format!(r#"{{"profile":"personal","phone":"{phone}","subject":{PERSONAL}}}"#);
    let approval = Admin::new(ca).json("operator", "POST", "/v1/approvals", Some(&body));
    assert!(approval["id"].is_string(), "{approval}");
}

/// Enrols an approval of the logged-in holder with a face proof and `pin`: (status, body).
pub(crate) fn enroll_with_proof(api: &Api<'_>, token: &str, approval: &str, pin: &str) -> (String, serde_json::Value) {
    let proof = prove_face(api, token, "enrol", approval);
    let body = format!(r#"{{"approval_id":"{approval}","proof_id":"{proof}","pin":"{pin}"}}"#);
    api.call(As::Holder(token), "POST", "/v1/mobile/credentials", Some(&body))
}

/// Approval → login → identity proof → PIN → credential id and certificate PEM.
pub(crate) fn enrolled(ca: &TestCa, api: &Api<'_>, phone: &str) -> (String, String, String) {
    let admin = Admin::new(ca);
    let approval = admin.json(
        "operator",
        "POST",
        "/v1/approvals",
        Some(&format!(r#"{{"profile":"personal","phone":"{phone}","subject":{PERSONAL}}}"#)),
    );
    let token = api.login(phone);
    let (status, listed) = api.call(As::Holder(&token), "GET", "/v1/mobile/credentials", None);
    assert_eq!(status, "200");
    assert_eq!(listed["approvals"][0]["approval_id"], approval["id"]);
    let approval = approval["id"].as_str().unwrap();
    let (status, credential) = enroll_with_proof(api, &token, approval, "246810");
    assert_eq!(status, "201", "{credential}");
    let body = format!(r#"{{"purpose":"enrol","target":"{approval}","method":"face"}}"#);
    let (status, again) = api.call(As::Holder(&token), "POST", "/v1/mobile/proofs", Some(&body));
    assert_eq!(status, "409", "an approval enrolls once: {again}");
    (token, credential["id"].as_str().unwrap().to_string(), credential["certificate"].as_str().unwrap().to_string())
}

/// Opens a session for `doc` and returns (session id, start token, secret).
pub(crate) fn open(api: &Api<'_>, doc: &[u8], format: &str) -> (String, String, cloudca::signing::qr::QrSecret) {
    let body = format!(
        r#"{{"hashes":["{}"],"description":"Bid for tender 2026-117","documents":["bid.pdf"],"format":"{format}"}}"#,
        b64(&sha2::Sha256::digest(doc))
    );
    let (status, opened) = api.call(As::Platform, "POST", "/v1/signing/sessions", Some(&body));
    assert_eq!(status, "201", "{opened}");
    let secret = cloudca::signing::qr::QrSecret::from_base64(opened["start_secret"].as_str().unwrap()).unwrap();
    (opened["session_id"].as_str().unwrap().to_string(), opened["start_token"].as_str().unwrap().to_string(), secret)
}

pub(crate) fn payload(token: &str, secret: &cloudca::signing::qr::QrSecret, opened_at: std::time::Instant) -> String {
    cloudca::signing::qr::payload(token, secret, opened_at.elapsed().as_secs())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_holder_signs_from_the_phone_and_the_platform_verifies_with_openssl() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let (token, credential, certificate) = enrolled(&ca, &api, PHONE);
    let cert_path = ca.path("holder.pem");
    std::fs::write(&cert_path, &certificate).unwrap();

    // CMS: the platform opens, the holder claims the payload of this second and approves.
    let doc = "投标文件 — tender 2026-117".as_bytes();
    let doc_path = ca.path("doc.bin");
    std::fs::write(&doc_path, doc).unwrap();
    let (session, start, secret) = open(&api, doc, "cms");
    let opened_at = std::time::Instant::now();
    let claim = format!(r#"{{"payload":"{}"}}"#, payload(&start, &secret, opened_at));
    let (status, shown) = api.call(As::Holder(&token), "POST", "/v1/mobile/sessions/claim", Some(&claim));
    assert_eq!(status, "200", "{shown}");
    assert_eq!(shown["platform"], "cloudca Dev Platform");
    assert_eq!(shown["documents"][0], "bid.pdf");
    let hash: [u8; 32] = sha2::Sha256::digest(doc).into();
    assert_eq!(shown["verification_code"], cloudca::signing::verification_code(&[hash]));
    // The same payload again (a replay) is refused.
    let (status, _) = api.call(As::Holder(&token), "POST", "/v1/mobile/sessions/claim", Some(&claim));
    assert_ne!(status, "200", "a claimed session cannot be claimed again");

    // A wrong PIN is counted and nothing is signed; the right one signs.
    let approve = format!("/v1/mobile/sessions/{session}/approve");
    let wrong = format!(r#"{{"credential_id":"{credential}","pin":"000000"}}"#);
    let (status, problem) = api.call(As::Holder(&token), "POST", &approve, Some(&wrong));
    assert!(status == "403" && problem["title"].as_str().unwrap().contains("4 tries left"), "{status} {problem}");
    let right = format!(r#"{{"credential_id":"{credential}","pin":"246810"}}"#);
    let (status, done) = api.call(As::Holder(&token), "POST", &approve, Some(&right));
    assert_eq!(status, "200", "{done}");
    let (status, again) = api.call(As::Holder(&token), "POST", &approve, Some(&right));
    assert_eq!(status, "409", "an approval signs once: {again}");

    // The platform's long poll returns the CMS; openssl verifies it against the chain.
    let (status, view) = api.call(As::Platform, "GET", &format!("/v1/signing/sessions/{session}?wait=5"), None);
    assert_eq!(status, "200");
    assert_eq!(view["state"], "signed", "{view}");
    let p7s =
        base64::engine::general_purpose::STANDARD.decode(view["result"]["signatures"][0].as_str().unwrap()).unwrap();
    let p7s_path = ca.path("sig.p7s");
    std::fs::write(&p7s_path, p7s).unwrap();
    let chain = bundle(&ca, "personal");
    let verify = |content: &std::path::Path| {
        run(
            "openssl",
            &[
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                p7s_path.to_str().unwrap(),
                "-content",
                content.to_str().unwrap(),
                "-CAfile",
                chain.to_str().unwrap(),
                "-purpose",
                "any",
                "-out",
                "/dev/null",
            ],
        )
    };
    let out = verify(&doc_path);
    assert!(out.ok, "openssl cms -verify: {}", out.text);
    let tampered = ca.path("tampered.bin");
    std::fs::write(&tampered, b"another document").unwrap();
    assert!(!verify(&tampered).ok, "a different document must not verify");

    // Raw format: an ECDSA signature over the document's SHA-256, verified by openssl dgst.
    let (session, start, secret) = open(&api, doc, "raw");
    let claim = format!(r#"{{"payload":"{}"}}"#, payload(&start, &secret, std::time::Instant::now()));
    assert_eq!(api.call(As::Holder(&token), "POST", "/v1/mobile/sessions/claim", Some(&claim)).0, "200");
    let approve = format!("/v1/mobile/sessions/{session}/approve");
    assert_eq!(api.call(As::Holder(&token), "POST", &approve, Some(&right)).0, "200");
    let (_, view) = api.call(As::Platform, "GET", &format!("/v1/signing/sessions/{session}"), None);
    let sig =
        base64::engine::general_purpose::STANDARD.decode(view["result"]["signatures"][0].as_str().unwrap()).unwrap();
    let sig_path = ca.path("raw.sig");
    std::fs::write(&sig_path, sig).unwrap();
    let pubkey = ca.path("holder.pub");
    assert!(
        run(
            "openssl",
            &["x509", "-in", cert_path.to_str().unwrap(), "-pubkey", "-noout", "-out", pubkey.to_str().unwrap()]
        )
        .ok
    );
    let out = run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            pubkey.to_str().unwrap(),
            "-signature",
            sig_path.to_str().unwrap(),
            doc_path.to_str().unwrap(),
        ],
    );
    assert!(out.ok && out.text.contains("Verified OK"), "{}", out.text);

    // Everything is in the audit chain.
    let instance = ca.open().await;
    for kind in ["approval.created", "credential.enrolled", "signing.claimed", "pin.failed", "signature.created"] {
        assert!(instance.store.count_audit_events(kind).await.unwrap() >= 1, "{kind} audited");
    }
}

/// A batch large enough for the HSM pool to split across its workers (each share with its own
/// binding check and unwrap) comes back whole and in order: signature i verifies over hash i.
#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_hash_approval_signs_each_hash_in_order() {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let (token, credential, certificate) = enrolled(&ca, &api, PHONE);
    let docs: Vec<String> = (0..100).map(|i| format!("page {i} of the tender")).collect();
    let hashes: Vec<String> = docs.iter().map(|d| format!("\"{}\"", b64(&sha2::Sha256::digest(d)))).collect();
    let body = format!(r#"{{"hashes":[{}],"description":"Tender pages","format":"raw"}}"#, hashes.join(","));
    let (status, opened) = api.call(As::Platform, "POST", "/v1/signing/sessions", Some(&body));
    assert_eq!(status, "201", "{opened}");
    let secret = cloudca::signing::qr::QrSecret::from_base64(opened["start_secret"].as_str().unwrap()).unwrap();
    let start = opened["start_token"].as_str().unwrap();
    let session = opened["session_id"].as_str().unwrap();
    let claim = format!(r#"{{"payload":"{}"}}"#, payload(start, &secret, std::time::Instant::now()));
    assert_eq!(api.call(As::Holder(&token), "POST", "/v1/mobile/sessions/claim", Some(&claim)).0, "200");
    let approve = format!("/v1/mobile/sessions/{session}/approve");
    let right = format!(r#"{{"credential_id":"{credential}","pin":"246810"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", &approve, Some(&right)).0, "200");
    let (_, view) = api.call(As::Platform, "GET", &format!("/v1/signing/sessions/{session}"), None);
    let signatures = view["result"]["signatures"].as_array().expect("signatures");
    assert_eq!(signatures.len(), docs.len());
    let der = pem::parse(&certificate).unwrap().into_contents();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        cert.tbs_certificate.subject_pki.subject_public_key.data.to_vec(),
    );
    for (i, (doc, signature)) in docs.iter().zip(signatures).enumerate() {
        let signature = base64::engine::general_purpose::STANDARD.decode(signature.as_str().unwrap()).unwrap();
        assert!(key.verify(doc.as_bytes(), &signature).is_ok(), "signature {i} is over hash {i}");
    }
    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("key.unwrap_authorised").await.unwrap(), 1, "one authorisation");
    assert_eq!(instance.store.count_audit_events("signature.created").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_wrong_pins_locks_foreign_holders_and_revocation_sign_nothing() {
    // A one-second interval between codes to one phone, so the unlock steps need not wait 30 s.
    let ca = quick_sms_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let (token, credential, certificate) = enrolled(&ca, &api, PHONE);
    let doc = b"contract";

    // Malformed sessions: wrong hash length, bad base64, malformed JSON, no platform certificate.
    for body in [
        r#"{"hashes":["AAAA"],"description":"x","format":"raw"}"#.to_string(),
        r#"{"hashes":["not base64!"],"description":"x","format":"raw"}"#.to_string(),
        r#"{"hashes":[],"description":"x","format":"raw"}"#.to_string(),
        format!(r#"{{"hashes":["{}"],"description":"x","format":"pdf"}}"#, b64(&[0u8; 32])),
        "{broken".to_string(),
    ] {
        let (status, problem) = api.call(As::Platform, "POST", "/v1/signing/sessions", Some(&body));
        assert!(status.starts_with('4'), "{body}: {status} {problem}");
    }
    let body = format!(r#"{{"hashes":["{}"],"description":"x","format":"raw"}}"#, b64(&[0u8; 32]));
    assert_eq!(api.call(As::Nobody, "POST", "/v1/signing/sessions", Some(&body)).0, "403", "no platform certificate");
    assert_eq!(api.call(As::Nobody, "GET", "/v1/mobile/credentials", None).0, "401", "no token");
    assert_eq!(api.call(As::Holder("forged"), "GET", "/v1/mobile/credentials", None).0, "401", "bad token");

    // A forged payload, and a second holder claiming an already claimed session.
    let (session, start, secret) = open(&api, doc, "raw");
    let forged = format!(r#"{{"payload":"cloudca1.{start}.0.{}"}}"#, "0".repeat(32));
    assert_eq!(api.call(As::Holder(&token), "POST", "/v1/mobile/sessions/claim", Some(&forged)).0, "400");
    let claim = format!(r#"{{"payload":"{}"}}"#, payload(&start, &secret, std::time::Instant::now()));
    assert_eq!(api.call(As::Holder(&token), "POST", "/v1/mobile/sessions/claim", Some(&claim)).0, "200");
    approve_phone(&ca, "+8613900139000");
    let other = api.login("+8613900139000");
    assert_ne!(api.call(As::Holder(&other), "POST", "/v1/mobile/sessions/claim", Some(&claim)).0, "200");
    let approve = format!("/v1/mobile/sessions/{session}/approve");
    let theirs = format!(r#"{{"credential_id":"{credential}","pin":"246810"}}"#);
    assert_eq!(api.call(As::Holder(&other), "POST", &approve, Some(&theirs)).0, "404", "not their session");

    // A platform that asked for another signer gets nothing from this holder.
    let body = format!(
        r#"{{"hashes":["{}"],"description":"x","format":"raw","signer":{{"credit_code":"91350100M000100Y43"}}}}"#,
        b64(&[1u8; 32])
    );
    let (_, constrained) = api.call(As::Platform, "POST", "/v1/signing/sessions", Some(&body));
    let secret = cloudca::signing::qr::QrSecret::from_base64(constrained["start_secret"].as_str().unwrap()).unwrap();
    let payload_now = cloudca::signing::qr::payload(constrained["start_token"].as_str().unwrap(), &secret, 0);
    let claim_other = format!(r#"{{"payload":"{payload_now}"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", "/v1/mobile/sessions/claim", Some(&claim_other)).0, "200");
    let other_approve = format!("/v1/mobile/sessions/{}/approve", constrained["session_id"].as_str().unwrap());
    let (status, problem) = api.call(As::Holder(&token), "POST", &other_approve, Some(&theirs));
    assert_eq!(status, "403", "outside the signer constraint: {problem}");

    // Five wrong PINs lock the credential; then even the right PIN signs nothing.
    let wrong = format!(r#"{{"credential_id":"{credential}","pin":"111111"}}"#);
    for _ in 0..4 {
        assert_eq!(api.call(As::Holder(&token), "POST", &approve, Some(&wrong)).0, "403");
    }
    assert_eq!(api.call(As::Holder(&token), "POST", &approve, Some(&wrong)).0, "423", "locked at the fifth");
    assert_eq!(api.call(As::Holder(&token), "POST", &approve, Some(&theirs)).0, "423", "locked means locked");

    // Unlock: a fresh identity proof of the holder, then a new PIN.
    let unlock = format!("/v1/mobile/credentials/{credential}/unlock");
    let proof = prove_face(&api, &token, "unlock", &credential);
    let good = format!(r#"{{"proof_id":"{proof}","new_pin":"135790"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", &unlock, Some(&good)).0, "204");
    assert_eq!(api.call(As::Holder(&token), "POST", &unlock, Some(&good)).0, "409", "not locked any more");
    let right = format!(r#"{{"credential_id":"{credential}","pin":"135790"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", &approve, Some(&right)).0, "200");

    // Revoked: the key is destroyed and nothing signs.
    let cert_path = ca.path("holder.pem");
    std::fs::write(&cert_path, &certificate).unwrap();
    let serial = run("openssl", &["x509", "-in", cert_path.to_str().unwrap(), "-noout", "-serial"]).text;
    let serial = serial.trim().trim_start_matches("serial=");
    let admin = Admin::new(&ca);
    admin.json("operator", "POST", &format!("/v1/certificates/{serial}/revoke"), Some(r#"{"reason":"keyCompromise"}"#));
    let (session, start, secret) = open(&api, doc, "raw");
    let claim = format!(r#"{{"payload":"{}"}}"#, payload(&start, &secret, std::time::Instant::now()));
    assert_eq!(api.call(As::Holder(&token), "POST", &claim_path(), Some(&claim)).0, "200");
    let (status, problem) =
        api.call(As::Holder(&token), "POST", &format!("/v1/mobile/sessions/{session}/approve"), Some(&right));
    assert_eq!(status, "409", "{problem}");
    let instance = ca.open().await;
    let stored = instance.store.credential(&credential).await.unwrap().unwrap();
    assert!(stored.key_blob.is_none() && stored.status == "destroyed", "the wrapped key is gone");
    for kind in ["pin.failed", "credential.locked", "credential.unlocked", "identity.proof_passed"] {
        assert!(instance.store.count_audit_events(kind).await.unwrap() >= 1, "{kind} audited");
    }
}

fn claim_path() -> String {
    "/v1/mobile/sessions/claim".into()
}

/// Runs the cloudca binary with `input` on standard input; returns (ok, stdout+stderr).
pub(crate) fn cloudca_with_input(args: &[&str], input: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cloudca"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary runs");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The reference clients, as a holder and a platform use them.
pub struct Reference<'a> {
    pub ca: &'a TestCa,
    pub state: String,
}

impl Reference<'_> {
    fn tls(&self, f: &str) -> String {
        self.ca.config_path.parent().unwrap().join("tls").join(f).to_str().unwrap().to_string()
    }

    fn api(&self) -> String {
        format!("https://localhost:{}", self.ca.config.listeners.api.port())
    }

    /// `cloudca app login` with the phone (code from the sandbox outbox).
    pub(crate) fn login(&self, phone: &str) {
        let outbox = self.ca.config.data_dir.join("sms-outbox.jsonl");
        let (api, ca) = (self.api(), self.tls("operator-ca.pem"));
        let login = [
            "app",
            "--state",
            &self.state,
            "login",
            "--api",
            &api,
            "--ca",
            &ca,
            "--phone",
            phone,
            "--outbox",
            outbox.to_str().unwrap(),
        ];
        let out = cloudca(&login);
        assert!(out.ok, "{}", out.text);
    }

    /// `cloudca app enroll` on the first approval waiting; returns the credential id.
    pub(crate) fn enroll(&self) -> String {
        let listed = cloudca(&["app", "--state", &self.state, "credentials"]);
        let listed: serde_json::Value = serde_json::from_str(&listed.text).expect("JSON");
        let approval =
            listed["approvals"][0]["approval_id"].as_str().expect("an approval waits in the app").to_string();
        let (ok, text) =
            cloudca_with_input(&["app", "--state", &self.state, "enroll", "--approval", &approval], "246810\n");
        assert!(ok, "{text}");
        let credential: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        credential["id"].as_str().unwrap().to_string()
    }

    /// `cloudca rp sign` shows the QR payload; `cloudca app claim` and `approve` sign it.
    /// Returns the signed document, the signature and the QR PNG the platform drew.
    pub(crate) async fn sign(&self, credential: &str) -> (PathBuf, PathBuf, PathBuf) {
        let ca = self.ca;
        let doc = ca.path("bid.txt");
        std::fs::write(&doc, "tender 2026-117: our bid").unwrap();
        let payload_file = ca.path("payload.txt");
        let sig = ca.path("bid.sig");
        let png = ca.path("qr.png");
        let (api, cacert, cert, key) = (
            self.api(),
            self.tls("operator-ca.pem"),
            self.tls("clients/relying-platform.pem"),
            self.tls("clients/relying-platform.key"),
        );
        let rp = std::process::Command::new(env!("CARGO_BIN_EXE_cloudca"))
            .args(["rp", "sign", "--api", &api, "--ca", &cacert, "--cert", &cert, "--key", &key])
            .args(["--root", ca.ca_pem("root").to_str().unwrap(), "--file", doc.to_str().unwrap()])
            .args(["--out", sig.to_str().unwrap(), "--payload-file", payload_file.to_str().unwrap()])
            .args(["--png", png.to_str().unwrap(), "--timeout", "60"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("rp starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !payload_file.exists() {
            assert!(std::time::Instant::now() < deadline, "rp wrote no payload");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let payload = std::fs::read_to_string(&payload_file).unwrap();
        let claimed = cloudca(&["app", "--state", &self.state, "claim", "--payload", &payload]);
        assert!(claimed.ok, "{}", claimed.text);
        let shown: serde_json::Value = serde_json::from_str(&claimed.text).expect("JSON");
        assert_eq!(shown["documents"][0], "bid.txt");
        let session = shown["session_id"].as_str().unwrap().to_string();
        let approve = ["app", "--state", &self.state, "approve", "--session", &session, "--credential", credential];
        let (ok, text) = cloudca_with_input(&approve, "246810\n");
        assert!(ok, "{text}");
        let rp = rp.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&rp.stdout);
        assert!(rp.status.success(), "rp: {stdout}{}", String::from_utf8_lossy(&rp.stderr));
        assert!(stdout.contains("signer chain verified"));
        (doc, sig, png)
    }
}

/// The reference clients tell the same story: `cloudca app` as the phone, `cloudca rp` as the
/// platform (QR payload written every second, chain and signature checked), openssl at the end.
#[tokio::test(flavor = "multi_thread")]
async fn the_reference_clients_sign_end_to_end() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let config = ca.config_path.to_str().unwrap();
    let state = ca.path("app.json");
    let state = state.to_str().unwrap();
    let subject = "/C=CN/CN=张三/serialNumber=11010519491231002X";
    let create =
        ["--config", config, "approval", "create", "--profile", "personal", "--phone", PHONE, "--subject", subject];
    let out = cloudca(&create);
    assert!(out.ok, "{}", out.text);
    let reference = Reference { ca: &ca, state: state.to_string() };
    reference.login(PHONE);
    let credential = reference.enroll();
    let (doc, sig, png) = reference.sign(&credential).await;
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"), "a PNG QR code was written");

    // Independent check: openssl verifies the raw signature over the file.
    let cert = ca.path("signer.pem");
    let listed = cloudca(&["app", "--state", state, "credentials"]);
    let listed: serde_json::Value = serde_json::from_str(&listed.text).unwrap();
    let serial = listed["credentials"][0]["serial"].as_str().unwrap().to_string();
    let shown = cloudca(&["--config", config, "cert", "show", &serial]);
    let pem_start = shown.text.find("-----BEGIN CERTIFICATE-----").unwrap();
    std::fs::write(&cert, &shown.text[pem_start..]).unwrap();
    let pubkey = ca.path("signer.pub");
    assert!(
        run("openssl", &["x509", "-in", cert.to_str().unwrap(), "-pubkey", "-noout", "-out", pubkey.to_str().unwrap()])
            .ok
    );
    let out = run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            pubkey.to_str().unwrap(),
            "-signature",
            sig.to_str().unwrap(),
            doc.to_str().unwrap(),
        ],
    );
    assert!(out.ok && out.text.contains("Verified OK"), "{}", out.text);
}

/// A TestCa whose SMS interval is one second, so a test can send several codes to one phone.
pub(crate) async fn quick_sms_ca() -> TestCa {
    let mut ca = TestCa::new().await;
    let mut text = std::fs::read_to_string(&ca.config_path).unwrap();
    text.push_str("\n[custody]\nsms_min_interval_seconds = 1\n");
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    ca
}

impl Api<'_> {
    /// A fresh `admin` code for the test organisation to a phone (waiting out the one-second send interval).
    pub(crate) fn admin_code(&self, phone: &str) -> String {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let body = format!(r#"{{"phone":"{phone}","purpose":"admin","object":"91350100M000100Y43"}}"#);
        assert_eq!(self.call(As::Nobody, "POST", "/v1/mobile/sms", Some(&body)).0, "202");
        last_code(self.ca, phone)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn organisation_administrators_manage_members_and_seals_and_seals_come_with_signatures() {
    const AGENT: &str = "+8613700137000";
    const STAFF: &str = "+8613600136000";
    const STRANGER: &str = "+8613500135000";
    let ca = quick_sms_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let admin = Admin::new(&ca);
    let org = r#"[["C","CN"],["O","福建示例科技有限公司"],["CN","示例科技"],["serialNumber","91350100M000100Y43"]]"#;
    let approval = admin.json(
        "operator",
        "POST",
        "/v1/approvals",
        Some(&format!(r#"{{"profile":"org","phone":"{AGENT}","subject":{org},"holder":{AGENT_PERSON}}}"#)),
    );
    let agent = api.login(AGENT);
    let (status, credential) = enroll_with_proof(&api, &agent, approval["id"].as_str().unwrap(), "246810");
    assert_eq!(status, "201", "{credential}");
    let credential = credential["id"].as_str().unwrap().to_string();
    let (_, orgs) = api.call(As::Holder(&agent), "GET", "/v1/mobile/orgs", None);
    assert_eq!(orgs["items"][0]["role"], "admin", "the enrolling agent administers the organisation: {orgs}");
    let org_path = "/v1/mobile/orgs/91350100M000100Y43";

    // The administrator appoints a seal administrator (with a fresh SMS code).
    approve_phone(&ca, STAFF);
    approve_phone(&ca, STRANGER);
    let staff = api.login(STAFF);
    let code = api.admin_code(AGENT);
    let body = format!(r#"{{"phone":"{STAFF}","role":"seal-admin","code":"{code}"}}"#);
    assert_eq!(api.call(As::Holder(&agent), "POST", &format!("{org_path}/members"), Some(&body)).0, "204");
    // A seal administrator cannot appoint anyone; a stranger cannot request seals.
    let code = api.admin_code(STAFF);
    let body = format!(r#"{{"phone":"{STRANGER}","role":"staff","code":"{code}"}}"#);
    assert_eq!(api.call(As::Holder(&staff), "POST", &format!("{org_path}/members"), Some(&body)).0, "403");
    let stranger = api.login(STRANGER);
    let png = cloudca::signing::qr::render_png("合同专用章", 2).unwrap();
    let code = api.admin_code(STRANGER);
    let seal_body = |code: &str| format!(r#"{{"name":"合同专用章","png":"{}","code":"{code}"}}"#, b64(&png));
    let requests = format!("{org_path}/seal-requests");
    assert_eq!(api.call(As::Holder(&stranger), "POST", &requests, Some(&seal_body(&code))).0, "403");
    // Not a PNG: refused.
    let code = api.admin_code(STAFF);
    let junk = format!(r#"{{"name":"x","png":"{}","code":"{code}"}}"#, b64(b"GIF89a not a png"));
    assert_eq!(api.call(As::Holder(&staff), "POST", &requests, Some(&junk)).0, "400");
    // The seal administrator's request waits for review; a reviewer approves it.
    let code = api.admin_code(STAFF);
    let (status, requested) = api.call(As::Holder(&staff), "POST", &requests, Some(&seal_body(&code)));
    assert_eq!(status, "202", "{requested}");
    let pending = admin.json("reviewer", "GET", "/v1/seal-requests", None);
    assert_eq!(pending["items"][0]["id"], requested["request_id"]);
    let decision = format!("/v1/seal-requests/{}/decision", requested["request_id"].as_str().unwrap());
    let decided = admin.json("reviewer", "POST", &decision, Some(r#"{"approve":true}"#));
    let seal_id = decided["seal_id"].as_str().unwrap().to_string();
    assert_eq!(admin.curl(Some("reviewer"), "POST", &decision, Some(r#"{"approve":true}"#)).1, "404", "decided once");

    // A session that asks for a seal: the holder must choose one; the platform gets its image.
    let doc = b"framework agreement";
    let body = format!(
        r#"{{"hashes":["{}"],"description":"Agreement","format":"raw","seal":true}}"#,
        b64(&sha2::Sha256::digest(doc))
    );
    let (status, opened) = api.call(As::Platform, "POST", "/v1/signing/sessions", Some(&body));
    assert_eq!(status, "201", "{opened}");
    let session = opened["session_id"].as_str().unwrap();
    let secret = cloudca::signing::qr::QrSecret::from_base64(opened["start_secret"].as_str().unwrap()).unwrap();
    let claim = format!(
        r#"{{"payload":"{}"}}"#,
        cloudca::signing::qr::payload(opened["start_token"].as_str().unwrap(), &secret, 0)
    );
    assert_eq!(api.call(As::Holder(&agent), "POST", "/v1/mobile/sessions/claim", Some(&claim)).0, "200");
    let approve = format!("/v1/mobile/sessions/{session}/approve");
    let without = format!(r#"{{"credential_id":"{credential}","pin":"246810"}}"#);
    assert_eq!(api.call(As::Holder(&agent), "POST", &approve, Some(&without)).0, "403", "a seal must be chosen");
    // Stamping needs the seal administrators' leave, even for the certificate administrator.
    let with = format!(r#"{{"credential_id":"{credential}","pin":"246810","seal_id":"{seal_id}"}}"#);
    assert_eq!(api.call(As::Holder(&agent), "POST", &approve, Some(&with)).0, "403", "not allowed the seal yet");
    let code = api.admin_code(STAFF);
    let grant = format!(r#"{{"phone":"{AGENT}","allowed":true,"code":"{code}"}}"#);
    let users = format!("{org_path}/seals/{seal_id}/users");
    assert_eq!(api.call(As::Holder(&staff), "POST", &users, Some(&grant)).0, "204");
    // Nobody else signs for the holder, not even the seal administrator.
    assert_eq!(api.call(As::Holder(&staff), "POST", &approve, Some(&with)).0, "404");
    assert_eq!(api.call(As::Holder(&agent), "POST", &approve, Some(&with)).0, "200");
    let (_, view) = api.call(As::Platform, "GET", &format!("/v1/signing/sessions/{session}"), None);
    let image =
        base64::engine::general_purpose::STANDARD.decode(view["result"]["seal"]["png"].as_str().unwrap()).unwrap();
    assert_eq!(image, png, "the approved seal image comes with the signature");

    // Hand-over: the seal administrator becomes the administrator; the agent stays as staff.
    // The agent offers it naming the new administrator (carrier-checked), who accepts with the
    // code texted to their phone (review M3).
    let code = api.admin_code(AGENT);
    let body = format!(r#"{{"phone":"{STAFF}","name":"王五","id_number":"110101199003074338","code":"{code}"}}"#);
    assert_eq!(api.call(As::Holder(&agent), "POST", &format!("{org_path}/handover"), Some(&body)).0, "202");
    let body = format!(r#"{{"phone":"{STAFF}","from":"{AGENT}","code":"{}"}}"#, last_code(&ca, STAFF));
    assert_eq!(api.call(As::Nobody, "POST", &format!("{org_path}/handover/accept"), Some(&body)).0, "204");
    let (_, orgs) = api.call(As::Holder(&staff), "GET", "/v1/mobile/orgs", None);
    assert_eq!(orgs["items"][0]["role"], "admin", "{orgs}");
    let (_, orgs) = api.call(As::Holder(&agent), "GET", "/v1/mobile/orgs", None);
    assert_eq!(orgs["items"][0]["role"], "staff", "{orgs}");
    let instance = ca.open().await;
    for kind in [
        "org.admin.claimed",
        "org.member.set",
        "seal.requested",
        "seal.decided",
        "org.admin.hand_over_offered",
        "org.admin.handed_over",
        "seal.user.set",
    ] {
        assert_eq!(instance.store.count_audit_events(kind).await.unwrap(), 1, "{kind} audited once");
    }
}

/// Review M1 on the app's side: every unlock restarts the PIN counter, so the app's unlock
/// counts against the same allowance as the RA's unlock orders (two in 30 days). Before the
/// fix the app's unlock route had no cap at all: whoever could pass the holder's identity
/// check could lock and unlock for ever, five PIN guesses each time.
#[tokio::test(flavor = "multi_thread")]
async fn the_apps_unlock_counts_against_the_unlock_allowance() {
    let mut ca = quick_sms_ca().await;
    // Three lockouts are fifteen wrong PINs in a minute: more than the per-credential limit.
    let mut text = std::fs::read_to_string(&ca.config_path).unwrap();
    text.push_str("\n[limits]\nattempts_per_credential = { count = 100, seconds = 60 }\n");
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let (token, credential, _) = enrolled(&ca, &api, PHONE);
    let (session, start, secret) = open(&api, b"contract", "raw");
    let claim = format!(r#"{{"payload":"{}"}}"#, payload(&start, &secret, std::time::Instant::now()));
    assert_eq!(api.call(As::Holder(&token), "POST", &claim_path(), Some(&claim)).0, "200");
    let approve = format!("/v1/mobile/sessions/{session}/approve");
    let wrong = format!(r#"{{"credential_id":"{credential}","pin":"111111"}}"#);
    let unlock = format!("/v1/mobile/credentials/{credential}/unlock");
    let lock = || {
        let statuses: Vec<String> =
            (0..5).map(|_| api.call(As::Holder(&token), "POST", &approve, Some(&wrong)).0).collect();
        assert_eq!(statuses.last().unwrap(), "423", "locked at the fifth wrong PIN: {statuses:?}");
    };
    for n in 1..=2 {
        lock();
        let proof = prove_face(&api, &token, "unlock", &credential);
        let body = format!(r#"{{"proof_id":"{proof}","new_pin":"13579{n}"}}"#);
        assert_eq!(api.call(As::Holder(&token), "POST", &unlock, Some(&body)).0, "204", "unlock {n}");
    }
    lock();
    let proof = prove_face(&api, &token, "unlock", &credential);
    let body = format!(r#"{{"proof_id":"{proof}","new_pin":"135793"}}"#);
    let (status, problem) = api.call(As::Holder(&token), "POST", &unlock, Some(&body));
    assert_eq!(status, "403", "{problem}");
    assert!(problem["title"].as_str().unwrap().contains("unlocked 2 times in 30 days"), "{problem}");
    let right = format!(r#"{{"credential_id":"{credential}","pin":"135793"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", &approve, Some(&right)).0, "423", "still locked");
    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("credential.unlocked").await.unwrap(), 2);
    assert!(instance.store.count_audit_events("pin.reset_refused").await.unwrap() >= 1, "the refusal is audited");
}
