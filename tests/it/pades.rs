//! PAdES from signing sessions, proven by independent software: an organisation's holder signs
//! PDFs from the phone (claim, PIN, seal) through the real daemon; pyHanko validates B-B with
//! the seal, B-T (its timestamp from our TSA) and B-LT, two signatures in turn; pdfsig with an
//! NSS database holding our root says valid; `qpdf --check` passes; pdftoppm shows the seal in
//! the rectangle. Bad PDFs are refused with 4xx before anything is stored.

use std::path::{Path, PathBuf};

use base64::Engine;

use crate::common::*;
use crate::signing::{approve_phone, enroll_with_proof, quick_sms_ca, Api, As, AGENT_PERSON};

const AGENT: &str = "+8613700137000";
const STAFF: &str = "+8613600136000";
const ORG: &str =
    r#"[["C","CN"],["O","福建示例科技有限公司"],["CN","示例科技"],["serialNumber","91350100M000100Y43"]]"#;
/// Where the seal goes on page 1 (points).
const SEAL: [f64; 4] = [380.0, 80.0, 140.0, 140.0];

/// pyHanko validating the first signature of a B-LT file from its DSS alone (no fetching,
/// revocation hard-fail); prints the DSS counts and the verdict.
const LT_CHECK: &str = r#"
import sys
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.keys import load_cert_from_pemder
root = load_cert_from_pemder(sys.argv[1])
with open(sys.argv[2], 'rb') as f:
    r = PdfFileReader(f)
    dss = DocumentSecurityStore.read_dss(r)
    print(len(list(dss.load_certs())), len(dss.ocsps), len(dss.crls))
    vc = dss.as_validation_context({'trust_roots': [root], 'allow_fetching': False, 'revocation_mode': 'hard-fail'})
    st = validate_pdf_signature(r.embedded_signatures[0], vc)
    print(st.bottom_line, st.summary())
"#;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A red seal ring with a transparent background, as an organisation would upload.
fn seal_png() -> Vec<u8> {
    let side = 160u32;
    let mut pixels = Vec::with_capacity((side * side * 4) as usize);
    let c = side as f64 / 2.0;
    for y in 0..side {
        for x in 0..side {
            let d = ((x as f64 - c).powi(2) + (y as f64 - c).powi(2)).sqrt();
            let ink = (60.0..76.0).contains(&d) || (d < 22.0 && (x + y) % 6 < 3);
            pixels.extend_from_slice(if ink { &[220, 20, 30, 255] } else { &[0, 0, 0, 0] });
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(&pixels).unwrap();
    out
}

/// A one-page bid document (the project's PDF writer: a classic cross-reference table).
fn bid_pdf() -> Vec<u8> {
    cloudca::pdf::render(&cloudca::pdf::Document {
        title: "Bid for tender 2026-117".into(),
        sections: vec![cloudca::pdf::Section {
            heading: "Offer".into(),
            rows: vec![("Price".into(), "1,280,000 CNY".into()), ("Delivery".into(), "90 days".into())],
        }],
    })
}

/// An organisation credential whose holder may stamp with an approved seal.
struct Holder {
    token: String,
    credential: String,
    seal_id: String,
}

async fn holder_with_seal(ca: &TestCa, api: &Api<'_>) -> Holder {
    let admin = crate::admin::Admin::new(ca);
    let body = format!(r#"{{"profile":"org","phone":"{AGENT}","subject":{ORG},"holder":{AGENT_PERSON}}}"#);
    let approval = admin.json("operator", "POST", "/v1/approvals", Some(&body));
    let token = api.login(AGENT);
    let (status, credential) = enroll_with_proof(api, &token, approval["id"].as_str().unwrap(), "246810");
    assert_eq!(status, "201", "{credential}");
    let credential = credential["id"].as_str().unwrap().to_string();
    let org_path = "/v1/mobile/orgs/91350100M000100Y43";
    approve_phone(ca, STAFF);
    let staff = api.login(STAFF);
    let code = api.admin_code(AGENT);
    let body = format!(r#"{{"phone":"{STAFF}","role":"seal-admin","code":"{code}"}}"#);
    assert_eq!(api.call(As::Holder(&token), "POST", &format!("{org_path}/members"), Some(&body)).0, "204");
    let code = api.admin_code(STAFF);
    let body = format!(r#"{{"name":"合同专用章","png":"{}","code":"{code}"}}"#, b64(&seal_png()));
    let (status, requested) = api.call(As::Holder(&staff), "POST", &format!("{org_path}/seal-requests"), Some(&body));
    assert_eq!(status, "202", "{requested}");
    let decision = format!("/v1/seal-requests/{}/decision", requested["request_id"].as_str().unwrap());
    let decided = admin.json("reviewer", "POST", &decision, Some(r#"{"approve":true}"#));
    let seal_id = decided["seal_id"].as_str().unwrap().to_string();
    let code = api.admin_code(STAFF);
    let grant = format!(r#"{{"phone":"{AGENT}","allowed":true,"code":"{code}"}}"#);
    let users = format!("{org_path}/seals/{seal_id}/users");
    assert_eq!(api.call(As::Holder(&staff), "POST", &users, Some(&grant)).0, "204");
    Holder { token, credential, seal_id }
}

/// POST /v1/signing/sessions as the platform with the body from a file (a PDF's base64 can
/// exceed a command line's argument limit).
fn open_raw(ca: &TestCa, body: &serde_json::Value) -> (String, serde_json::Value) {
    open_as(ca, "relying-platform", body)
}

/// [`open_raw`] with another client certificate of the development set (`tls/clients/NAME`).
fn open_as(ca: &TestCa, client: &str, body: &serde_json::Value) -> (String, serde_json::Value) {
    let dir = ca.config_path.parent().unwrap().join("tls");
    let file = ca.path("open-body.json");
    std::fs::write(&file, body.to_string()).unwrap();
    let url = format!("https://localhost:{}/v1/signing/sessions", ca.config.listeners.api.port());
    let (cacert, cert, key) = (
        dir.join("operator-ca.pem"),
        dir.join(format!("clients/{client}.pem")),
        dir.join(format!("clients/{client}.key")),
    );
    let data = format!("@{}", file.display());
    let out = run(
        "curl",
        &[
            "-s",
            "--noproxy",
            "*",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
            cacert.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &data,
            &url,
        ],
    );
    let (text, status) = out.text.rsplit_once('\n').unwrap_or(("", ""));
    (status.to_string(), serde_json::from_str(text).unwrap_or(serde_json::Value::Null))
}

fn pades_body(pdf: &[u8], extra: serde_json::Value) -> serde_json::Value {
    let mut body = serde_json::json!({
        "format": "pades",
        "document": b64(pdf),
        "documents": ["bid.pdf"],
        "description": "Bid for tender 2026-117",
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn seal_placement() -> serde_json::Value {
    serde_json::json!({ "page": 1, "x": SEAL[0], "y": SEAL[1], "w": SEAL[2], "h": SEAL[3] })
}

/// The holder claims and approves an opened session (with the seal if it asks for one); the
/// platform's poll returns the signed PDF.
fn approve(api: &Api<'_>, holder: &Holder, opened: &serde_json::Value, pdf: &[u8]) -> Vec<u8> {
    let secret = cloudca::signing::qr::QrSecret::from_base64(opened["start_secret"].as_str().unwrap()).unwrap();
    let payload = cloudca::signing::qr::payload(opened["start_token"].as_str().unwrap(), &secret, 0);
    let session = claim_and_approve(api, holder, &payload, pdf);
    let (_, view) = api.call(As::Platform, "GET", &format!("/v1/signing/sessions/{session}?wait=5"), None);
    assert_eq!(view["state"], "signed", "{view}");
    let signed =
        base64::engine::general_purpose::STANDARD.decode(view["result"]["document"].as_str().unwrap()).unwrap();
    assert!(signed.starts_with(pdf), "an incremental update: the original bytes are kept");
    signed
}

/// The phone's side: claim the payload, check what is shown, approve with the PIN (and the
/// seal when asked). Returns the session id.
fn claim_and_approve(api: &Api<'_>, holder: &Holder, payload: &str, pdf: &[u8]) -> String {
    let claim = format!(r#"{{"payload":"{payload}"}}"#);
    let (status, shown) = api.call(As::Holder(&holder.token), "POST", "/v1/mobile/sessions/claim", Some(&claim));
    assert_eq!(status, "200", "{shown}");
    assert_eq!(shown["format"], "pades");
    assert_eq!(shown["document"]["name"], "bid.pdf", "{shown}");
    assert_eq!(shown["document"]["pages"], 1);
    assert_eq!(shown["document"]["sha256"], hex::encode(<sha2::Sha256 as sha2::Digest>::digest(pdf)));
    let session = shown["session_id"].as_str().unwrap().to_string();
    let seal = if shown["seal"] == true { format!(r#","seal_id":"{}""#, holder.seal_id) } else { String::new() };
    let body = format!(r#"{{"credential_id":"{}","pin":"246810"{seal}}}"#, holder.credential);
    let (status, answer) =
        api.call(As::Holder(&holder.token), "POST", &format!("/v1/mobile/sessions/{session}/approve"), Some(&body));
    assert_eq!(status, "200", "{answer}");
    session.to_string()
}

fn sign(ca: &TestCa, api: &Api<'_>, holder: &Holder, pdf: &[u8], extra: serde_json::Value) -> Vec<u8> {
    let (status, opened) = open_raw(ca, &pades_body(pdf, extra));
    assert_eq!(status, "201", "{opened}");
    approve(api, holder, &opened, pdf)
}

/// `pyhanko sign validate` against our root only; returns its report.
fn pyhanko(ca: &TestCa, pdf: &Path, extra: &[&str]) -> String {
    let root = ca.ca_pem("root");
    let mut args = vec!["sign", "validate", "--trust", root.to_str().unwrap(), "--trust-replace"];
    args.extend_from_slice(extra);
    args.push(pdf.to_str().unwrap());
    let out = run("pyhanko", &args);
    assert!(out.ok, "pyHanko refused {}: {}", pdf.display(), out.text);
    out.text
}

fn write(ca: &TestCa, name: &str, bytes: &[u8]) -> PathBuf {
    let path = ca.path(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Renders page 1 at 72 dpi (one pixel per point) and decodes it to RGB rows.
fn render(ca: &TestCa, pdf: &Path, name: &str) -> (usize, usize, Vec<u8>, PathBuf) {
    let prefix = ca.path(name);
    let out = run(
        "pdftoppm",
        &["-png", "-r", "72", "-f", "1", "-l", "1", "-singlefile", pdf.to_str().unwrap(), prefix.to_str().unwrap()],
    );
    assert!(out.ok, "{}", out.text);
    let file = prefix.with_extension("png");
    let mut decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&file).unwrap()));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buffer).unwrap();
    let channels = frame.color_type.samples();
    let rgb: Vec<u8> = buffer[..frame.buffer_size()].chunks(channels).flat_map(|p| [p[0], p[1], p[2]]).collect();
    (frame.width as usize, frame.height as usize, rgb, file)
}

#[tokio::test(flavor = "multi_thread")]
async fn pades_b_b_with_seal_b_t_b_lt_and_two_signatures_validate_with_pyhanko_pdfsig_and_qpdf() {
    let ca = quick_sms_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let holder = holder_with_seal(&ca, &api).await;
    let pdf = bid_pdf();
    let original = write(&ca, "bid.pdf", &pdf);

    // B-B with the seal.
    let sealed = sign(&ca, &api, &holder, &pdf, serde_json::json!({ "seal_placement": seal_placement() }));
    let sealed_path = write(&ca, "bid-sealed.pdf", &sealed);
    let report = pyhanko(&ca, &sealed_path, &["--no-revocation-check"]);
    assert!(report.contains("INTACT:TRUSTED"), "{report}");
    let qpdf = run("qpdf", &["--check", sealed_path.to_str().unwrap()]);
    assert!(qpdf.ok, "qpdf --check: {}", qpdf.text);

    // pdfsig with an NSS database holding our root.
    let nss = ca.path("nss");
    std::fs::create_dir_all(&nss).unwrap();
    let db = format!("sql:{}", nss.display());
    assert!(run("certutil", &["-N", "-d", &db, "--empty-password"]).ok);
    let root = ca.ca_pem("root");
    assert!(run("certutil", &["-A", "-d", &db, "-n", "cloudca-root", "-t", "CT,C,C", "-i", root.to_str().unwrap()]).ok);
    let pdfsig = run("pdfsig", &["-nssdir", &db, "-no-ocsp", sealed_path.to_str().unwrap()]);
    assert!(pdfsig.text.contains("Signature is Valid"), "{}", pdfsig.text);
    // poppler 22.12's certificate check answers "Unknown issue" for this chain although NSS's
    // own PKIX validation (vfychain -pp -u 4, email signer) accepts it: not asserted here.
    assert!(pdfsig.text.contains("ETSI.CAdES.detached"), "{}", pdfsig.text);

    // The stamped page shows the seal inside the rectangle, and nothing changed outside it.
    let (w, h, before, _) = render(&ca, &original, "page-unsigned");
    let (w2, h2, after, picture) = render(&ca, &sealed_path, "page-sealed");
    assert_eq!((w, h), (w2, h2));
    let (mut inside, mut outside) = (0usize, 0usize);
    for row in 0..h {
        for col in 0..w {
            let i = (row * w + col) * 3;
            if before[i..i + 3] != after[i..i + 3] {
                let (x, y) = (col as f64, (h - row) as f64);
                let within = (SEAL[0] - 1.0..=SEAL[0] + SEAL[2] + 1.0).contains(&x)
                    && (SEAL[1] - 1.0..=SEAL[1] + SEAL[3] + 1.0).contains(&y);
                if within {
                    inside += 1;
                } else {
                    outside += 1;
                }
            }
        }
    }
    assert!(inside > 500, "the seal is drawn in its rectangle ({inside} pixels changed)");
    assert_eq!(outside, 0, "nothing changed outside the seal's rectangle");
    if std::env::var_os("CLOUDCA_WRITE_DOCS").is_some() {
        std::fs::copy(&picture, concat!(env!("CARGO_MANIFEST_DIR"), "/docs/pades-seal.png")).unwrap();
    }

    // A second signature on top (B-T this time): both validate, the first still intact.
    let twice = sign(&ca, &api, &holder, &sealed, serde_json::json!({ "timestamp": true }));
    let twice_path = write(&ca, "bid-twice.pdf", &twice);
    let report = pyhanko(&ca, &twice_path, &["--no-revocation-check"]);
    let lines: Vec<&str> = report.lines().filter(|l| l.starts_with("Signature")).collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(lines[0].starts_with("Signature1:") && lines[0].contains(":INTACT:TRUSTED,"), "{report}");
    assert!(lines[0].contains("ACCEPTABLE_MODIFICATIONS"), "the second revision only adds a signature: {report}");
    assert!(lines[1].starts_with("Signature2:") && lines[1].contains(":INTACT:TRUSTED,"), "{report}");
    assert!(lines[1].contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "our TSA's token validates: {report}");
    let pdfsig = run("pdfsig", &["-nssdir", &db, "-no-ocsp", twice_path.to_str().unwrap()]);
    assert_eq!(pdfsig.text.matches("Signature is Valid").count(), 2, "{}", pdfsig.text);
    assert!(run("qpdf", &["--check", twice_path.to_str().unwrap()]).ok);

    // B-T on an xref-stream file (qpdf rewrites it with object streams): the appended revision
    // uses a cross-reference stream too.
    let streams = ca.path("bid-streams.pdf");
    let out = run("qpdf", &["--object-streams=generate", original.to_str().unwrap(), streams.to_str().unwrap()]);
    assert!(out.ok, "{}", out.text);
    let streams_pdf = std::fs::read(&streams).unwrap();
    let stamped = sign(
        &ca,
        &api,
        &holder,
        &streams_pdf,
        serde_json::json!({ "timestamp": true, "seal_placement": seal_placement() }),
    );
    let tail = String::from_utf8_lossy(&stamped[streams_pdf.len()..]).to_string();
    assert!(
        tail.contains("/Type /XRef") && !tail.contains("\ntrailer"),
        "a stream cross-reference follows a stream one"
    );
    let stamped_path = write(&ca, "bid-streams-signed.pdf", &stamped);
    let report = pyhanko(&ca, &stamped_path, &["--no-revocation-check"]);
    assert!(report.contains("INTACT:TRUSTED"), "{report}");
    assert!(run("qpdf", &["--check", stamped_path.to_str().unwrap()]).ok);

    // B-LT: the DSS carries the chain, our OCSP response and CRL; pyHanko validates the
    // signature with revocation checking from what the file carries.
    let lt = sign(&ca, &api, &holder, &pdf, serde_json::json!({ "level": "B-LT" }));
    let tail = String::from_utf8_lossy(&lt[pdf.len()..]).to_string();
    assert!(tail.contains("/DSS") && tail.contains("/OCSPs") && tail.contains("/Certs"), "a DSS revision");
    let lt_path = write(&ca, "bid-lt.pdf", &lt);
    let report = pyhanko(&ca, &lt_path, &["--no-revocation-check"]);
    assert!(report.contains("INTACT:TRUSTED"), "{report}");
    // With revocation checked hard and nothing fetched: what the DSS carries must suffice.
    let script = write(&ca, "lt.py", LT_CHECK.as_bytes());
    let out = run("python3", &[script.to_str().unwrap(), root.to_str().unwrap(), lt_path.to_str().unwrap()]);
    assert!(out.ok, "{}", out.text);
    assert!(out.text.contains("True INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "{}", out.text);
    assert!(run("qpdf", &["--check", lt_path.to_str().unwrap()]).ok);

    // The reference platform client: `cloudca rp sign --format pades --seal ... --timestamp`.
    let rp_out = ca.path("bid-rp.pdf");
    let payload_file = ca.path("payload.txt");
    let tls = |f: &str| ca.config_path.parent().unwrap().join("tls").join(f).to_str().unwrap().to_string();
    let api_url = format!("https://localhost:{}", ca.config.listeners.api.port());
    let seal = format!("1,{},{},{},{}", SEAL[0], SEAL[1], SEAL[2], SEAL[3]);
    let rp = std::process::Command::new(env!("CARGO_BIN_EXE_cloudca"))
        .args(["rp", "sign", "--api", &api_url, "--ca", &tls("operator-ca.pem")])
        .args(["--cert", &tls("clients/relying-platform.pem"), "--key", &tls("clients/relying-platform.key")])
        .args(["--root", root.to_str().unwrap(), "--file", original.to_str().unwrap(), "--format", "pades"])
        .args(["--seal", &seal, "--timestamp", "--out", rp_out.to_str().unwrap()])
        .args(["--payload-file", payload_file.to_str().unwrap(), "--timeout", "60"])
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
    claim_and_approve(&api, &holder, &payload, &pdf);
    let rp = rp.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&rp.stdout);
    assert!(rp.status.success(), "rp: {stdout}{}", String::from_utf8_lossy(&rp.stderr));
    let report = pyhanko(&ca, &rp_out, &["--no-revocation-check"]);
    assert!(report.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "{report}");
    assert!(run("qpdf", &["--check", rp_out.to_str().unwrap()]).ok);

    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("signature.created").await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_pdfs_and_seal_rectangles_are_refused_before_anything_is_stored() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let pdf = bid_pdf();
    let encrypted = {
        let plain = ca.path("plain.pdf");
        std::fs::write(&plain, &pdf).unwrap();
        let locked = ca.path("locked.pdf");
        let out = run(
            "qpdf",
            &["--encrypt", "", "owner-secret", "256", "--", plain.to_str().unwrap(), locked.to_str().unwrap()],
        );
        assert!(out.ok, "{}", out.text);
        std::fs::read(&locked).unwrap()
    };
    let mut too_large = pdf.clone();
    too_large.resize(10 * 1024 * 1024 + 1, b' ');
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("truncated", pades_body(&pdf[..pdf.len() * 2 / 3], serde_json::json!({})), "truncated"),
        ("encrypted", pades_body(&encrypted, serde_json::json!({})), "encrypted"),
        ("not a PDF", pades_body(b"PK\x03\x04 a zip file", serde_json::json!({})), "not a PDF"),
        ("over the limit", pades_body(&too_large, serde_json::json!({})), "more than"),
        (
            "seal off the page",
            pades_body(
                &pdf,
                serde_json::json!({ "seal_placement": { "page": 1, "x": 500, "y": 700, "w": 200, "h": 200 } }),
            ),
            "MediaBox",
        ),
        (
            "no such page",
            pades_body(&pdf, serde_json::json!({ "seal_placement": { "page": 3, "x": 5, "y": 5, "w": 20, "h": 20 } })),
            "page 3",
        ),
        ("hashes with a document", pades_body(&pdf, serde_json::json!({ "hashes": [b64(&[0u8; 32])] })), "hashes"),
    ];
    for (case, body, message) in cases {
        let (status, problem) = open_raw(&ca, &body);
        assert_eq!(status, "400", "{case}: {problem}");
        assert!(problem.to_string().contains(message), "{case}: the problem names it: {problem}");
    }
    // Only a relying platform's certificate may send a document-sized body: another client
    // certificate under the same CA (the web front's) is cut off at the usual limit before
    // anything is parsed (attacker review M1).
    let mut padded = pdf.clone();
    padded.resize(200 * 1024, b' ');
    let (status, _) = open_as(&ca, "web-front", &pades_body(&padded, serde_json::json!({})));
    assert_eq!(status, "413", "the web front's certificate gets no document-sized body");
    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("signing.opened").await.unwrap(), 0, "nothing stored");
}

/// Attacker review H2: each PAdES session parses a PDF and keeps it with the session, so a
/// platform opening them at the rate of hash sessions grew the database by gigabytes a minute.
/// PDF sessions have their own, lower limit per platform; hash sessions are not held back by it.
#[tokio::test(flavor = "multi_thread")]
async fn pdf_sessions_have_their_own_limit_per_platform() {
    let mut ca = TestCa::new().await;
    let mut text = std::fs::read_to_string(&ca.config_path).unwrap();
    text.push_str("\n[limits]\npdf_sessions_per_platform = { count = 1, seconds = 3600 }\n");
    std::fs::write(&ca.config_path, text).unwrap();
    ca.config = cloudca::config::Config::load(&ca.config_path).unwrap();
    let _daemon = Daemon::start(&ca).await;
    let pdf = bid_pdf();
    assert_eq!(open_raw(&ca, &pades_body(&pdf, serde_json::json!({}))).0, "201");
    let (status, problem) = open_raw(&ca, &pades_body(&pdf, serde_json::json!({})));
    assert_eq!(status, "429", "{problem}");
    assert!(problem.to_string().contains("PDF signing sessions"), "{problem}");
    let hashes = serde_json::json!({ "hashes": [b64(&[7u8; 32])], "description": "x", "format": "raw" });
    assert_eq!(open_raw(&ca, &hashes).0, "201", "hash sessions keep their own budget");
}

/// Attacker review M3: the holder was shown, and the service signed, whatever PDF the session's
/// row held at that moment. A database writer who swaps the document after opening gets neither:
/// the claim refuses to show it (the session's hash, which the approval binds and from which the
/// platform's verification code is derived, is the PDF's at opening), and nothing is signed.
#[tokio::test(flavor = "multi_thread")]
async fn a_document_swapped_in_the_database_is_neither_shown_nor_signed() {
    let ca = quick_sms_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let holder = holder_with_seal(&ca, &api).await;
    let pdf = bid_pdf();
    let (status, opened) = open_raw(&ca, &pades_body(&pdf, serde_json::json!({})));
    assert_eq!(status, "201", "{opened}");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    let id = opened["session_id"].as_str().unwrap();
    let (request,): (String,) =
        sqlx::query_as("SELECT request FROM signing_sessions WHERE id = $1").bind(id).fetch_one(&pool).await.unwrap();
    let mut request: serde_json::Value = serde_json::from_str(&request).unwrap();
    // A well-formed PDF with another price: before the fix it was shown and signed.
    let other = cloudca::pdf::render(&cloudca::pdf::Document {
        title: "Bid for tender 2026-117".into(),
        sections: vec![cloudca::pdf::Section {
            heading: "Offer".into(),
            rows: vec![("Price".into(), "9,990,000 CNY".into()), ("Delivery".into(), "90 days".into())],
        }],
    });
    request["document"] = b64(&other).into();
    sqlx::query("UPDATE signing_sessions SET request = $1 WHERE id = $2")
        .bind(request.to_string())
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let secret = cloudca::signing::qr::QrSecret::from_base64(opened["start_secret"].as_str().unwrap()).unwrap();
    let payload = cloudca::signing::qr::payload(opened["start_token"].as_str().unwrap(), &secret, 0);
    let claim = format!(r#"{{"payload":"{payload}"}}"#);
    let (status, shown) = api.call(As::Holder(&holder.token), "POST", "/v1/mobile/sessions/claim", Some(&claim));
    assert_ne!(status, "200", "the swapped document is not shown: {shown}");
    let body = format!(r#"{{"credential_id":"{}","pin":"246810"}}"#, holder.credential);
    let (status, answer) =
        api.call(As::Holder(&holder.token), "POST", &format!("/v1/mobile/sessions/{id}/approve"), Some(&body));
    assert_ne!(status, "200", "nor signed: {answer}");
    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("signature.created").await.unwrap(), 0);
}
