//! Cloud signing against the HSM's own rates, on the same SoftHSM2 token in the same run:
//!
//! - raw: unwrap a holder's blob + sign + destroy (one signature per unwrap), and signing with
//!   an unwrapped session key (1,000 signatures per unwrap: the session-key rate);
//! - one approval with one hash through the whole library path (claim, PIN check, single-use
//!   authorisation, unwrap, sign, session completed and audited durably): p50 and p99, with the
//!   Argon2id PIN check measured on its own and subtracted;
//! - one approval with 100 hashes, as signatures per second against the session-key rate;
//! - RFC 3161 timestamp replies per second through the TSA's whole path (strict parse, serial
//!   from the database block, TSTInfo, signed attributes, one HSM signature, token assembly),
//!   against the raw rate of signing with the TSA key in the same run;
//! - PAdES sessions for a one-page PDF of about 100 KB and 5 MB (built here with lopdf: an
//!   uncompressed 8-bit grey image, as a scan would be), B-B and B-T (our TSA in process): the
//!   platform's open (strict parse, SHA-256, the PDF stored in the session row), the holder's
//!   claim (the PDF read back and parsed for the view) and the approval (as above, plus the
//!   PDF re-read, its signature revision, the CMS, and the signed PDF stored as the result),
//!   p50 and p99 with Argon2 subtracted, and documents per second one at a time, against the
//!   raw HSM rate; for each size, the share of the work outside the database and the HSM
//!   (JSON, base64, SHA-256, parse and signature revision) timed on its own.
//!
//! `cargo bench --bench signing`; `CLOUDCA_BENCH_SECONDS` (default 5) bounds each raw figure,
//! `CLOUDCA_BENCH_APPROVALS` (default 40) sets how many approvals are timed (100 KB PAdES:
//! as many; 5 MB: a quarter, at least 3; B-T: half of B-B's, at least 3).
//! `CLOUDCA_BENCH_ONLY=approval` runs only the raw rates and the approvals (no TSA, no PAdES),
//! for a quick before/after of the approval path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use cloudca::clock::SystemClock;
use cloudca::config::Config;
use cloudca::custody::{Pin, ProofMethod, ProofPurpose, ProvenPin};
use cloudca::daemon::Instance;
use cloudca::devinit::{self, Options};
use cloudca::hsm::KeyAlgorithm;
use cloudca::signing::pades::Level;
use cloudca::signing::{qr, Format, OpenRequest};

const PHONE: &str = "+8613800138000";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("signing: benchmark");
        return;
    }
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let seconds = Duration::from_secs(env("CLOUDCA_BENCH_SECONDS", 5));
    let approvals = env("CLOUDCA_BENCH_APPROVALS", 40) as usize;
    let only_approval = std::env::var("CLOUDCA_BENCH_ONLY").is_ok_and(|v| v == "approval");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let created = runtime
        .block_on(devinit::create(
            &dir.path().join("ca"),
            &Options { token_label: "bench-sign".into(), ..Options::default() },
        ))
        .expect("dev instance");
    let config = Config::load(&created.config_path).expect("config");
    runtime.block_on(async move {
        let instance = Instance::open(config, Arc::new(SystemClock)).await.expect("instance");
        report(&instance, seconds, approvals, only_approval).await;
    });
    cloudca::hsm::shutdown();
}

async fn report(instance: &Instance, seconds: Duration, approvals: usize, only_approval: bool) {
    let hsm = &instance.hsm;
    let wrapped = hsm.generate_wrapped(KeyAlgorithm::EcdsaP256).await.expect("wrapped key");
    let digest = vec![7u8; 32];
    let unwrap_rate =
        rate(seconds, 1, || hsm.sign_wrapped_many(&wrapped.blob, KeyAlgorithm::EcdsaP256, vec![digest.clone()])).await;
    let session_rate = rate(seconds, 1000, || {
        hsm.sign_wrapped_many(&wrapped.blob, KeyAlgorithm::EcdsaP256, vec![digest.clone(); 1000])
    })
    .await;

    let (tsa_raw, tsa_replies) = if only_approval { (0.0, 0.0) } else { timestamps(instance, seconds).await };

    let credential = enroll(instance).await;
    let pin = Pin::new("246810").expect("pin");
    let record = instance.store.credential(&credential).await.expect("db").expect("credential");
    // Argon2 alone, interleaved with the approvals so both see the same machine.
    let mut argon = Vec::new();
    let mut one = Vec::new();
    for _ in 0..approvals {
        let started = Instant::now();
        assert!(cloudca::custody::pin::verify(hsm, &record.id, &pin, &record.pin_hash).await.expect("verify"));
        argon.push(started.elapsed());
        one.push(approve(instance, &credential, &pin, 1).await);
    }
    let mut hundred = Vec::new();
    for _ in 0..(approvals / 4).max(3) {
        hundred.push(approve(instance, &credential, &pin, 100).await);
    }
    // Each approval minus the Argon2 check timed just before it: the median of these paired
    // differences, not the difference of two medians (two noisy figures from two samples).
    let mut beyond: Vec<Duration> = one.iter().zip(&argon).map(|(a, k)| a.saturating_sub(*k)).collect();
    let beyond_p50 = percentile(&mut beyond, 50);
    let argon_p50 = percentile(&mut argon, 50);
    let (p50, p99) = (percentile(&mut one, 50), percentile(&mut one, 99));
    let hundred_p50 = percentile(&mut hundred, 50);
    let hundred_rate = 100.0 / hundred_p50.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("\nCloud signing on SoftHSM2 (P-256), one HSM job at a time, SQLite WAL synchronous=FULL");
    println!("{:<58}{:>14}", "raw: unwrap + sign + destroy", format!("{unwrap_rate:.0}/s"));
    println!("{:<58}{:>14}", "raw: sign with an unwrapped session key", format!("{session_rate:.0}/s"));
    println!("{:<58}{:>14}", "Argon2id PIN check (m=19 MiB, t=2), p50", format!("{:.1} ms", ms(argon_p50)));
    println!("{:<58}{:>14}", format!("approval, 1 hash, p50 ({approvals} runs)"), format!("{:.1} ms", ms(p50)));
    println!("{:<58}{:>14}", "approval, 1 hash, p99", format!("{:.1} ms", ms(p99)));
    println!(
        "{:<58}{:>14}",
        "approval, 1 hash, beyond Argon2 (p50 of paired differences)",
        format!("{:.1} ms", ms(beyond_p50))
    );
    println!(
        "{:<58}{:>14}",
        "approval, 100 hashes: signatures/s (p50)",
        format!("{hundred_rate:.0}/s = {:.0}% of session-key rate", 100.0 * hundred_rate / session_rate)
    );
    println!(
        "{:<58}{:>14}",
        "approval, 100 hashes, minus Argon2: signatures/s",
        format!(
            "{:.0}/s = {:.0}%",
            100.0 / hundred_p50.saturating_sub(argon_p50).as_secs_f64(),
            100.0 * (100.0 / hundred_p50.saturating_sub(argon_p50).as_secs_f64()) / session_rate
        )
    );
    if only_approval {
        return;
    }
    println!("{:<58}{:>14}", "raw: sign with the TSA key (HSM, one job at a time)", format!("{tsa_raw:.0}/s"));
    println!(
        "{:<58}{:>14}",
        "TSA replies (certReq, nonce), library path",
        format!("{tsa_replies:.0}/s = {:.0}% of the TSA key's raw rate", 100.0 * tsa_replies / tsa_raw)
    );

    println!("\nPAdES sessions, one at a time (one-page PDF, invisible signature); approve and per-document");
    println!("figures minus the Argon2 p50 above; documents/s against raw unwrap + sign + destroy");
    for (size, runs) in [(100 * 1024, approvals), (5 * 1024 * 1024, (approvals / 4).max(3))] {
        let pdf = scan_pdf(size);
        let name = if size < 1 << 20 {
            format!("{} KB", pdf.len() / 1024)
        } else {
            format!("{:.1} MB", pdf.len() as f64 / (1 << 20) as f64)
        };
        for (level, runs) in [(Level::BB, runs), (Level::BT, (runs / 2).max(3))] {
            let label = format!("{name} {}", if level == Level::BB { "B-B" } else { "B-T" });
            let mut steps: [Vec<Duration>; 4] = Default::default();
            for run in 0..runs {
                let timed = pades_session(instance, &credential, &pin, &pdf, level, run == 0).await;
                for (all, one) in steps.iter_mut().zip(timed) {
                    all.push(one);
                }
            }
            let [open, claim, approve, whole] = &mut steps;
            let approve = (percentile(approve, 50), percentile(approve, 99));
            let net = |d: Duration| ms(d.saturating_sub(argon_p50));
            println!(
                "{:<58}{:>14}",
                format!("{label}: open p50 / claim p50 ({runs} runs)"),
                format!("{:.1} / {:.1} ms", ms(percentile(open, 50)), ms(percentile(claim, 50)))
            );
            println!(
                "{:<58}{:>14}",
                format!("{label}: approve p50 / p99, minus Argon2"),
                format!("{:.1} / {:.1} ms", net(approve.0), net(approve.1))
            );
            let (p50, p99) = (percentile(whole, 50), percentile(whole, 99));
            let per_second = 1.0 / p50.saturating_sub(argon_p50).as_secs_f64();
            println!(
                "{:<58}{:>14}",
                format!("{label}: per document p50 / p99, minus Argon2"),
                format!("{:.1} / {:.1} ms", net(p50), net(p99))
            );
            println!(
                "{:<58}{:>14}",
                format!("{label}: documents/s (p50)"),
                format!("{per_second:.1}/s = {:.1}% of raw", 100.0 * per_second / unwrap_rate)
            );
        }
        let [json, base64, sha256, parse, prepare] = outside(&pdf);
        println!(
            "{:<58}{:>14}",
            format!("{name}: JSON write+read / base64 decode / SHA-256"),
            format!("{json:.1} / {base64:.1} / {sha256:.1} ms")
        );
        println!(
            "{:<58}{:>14}",
            format!("{name}: strict parse / signature revision (parse incl.)"),
            format!("{parse:.1} / {prepare:.1} ms")
        );
    }
}

/// A one-page A4 PDF of about `size` bytes from lopdf's own writer (a cross-reference stream):
/// the page shows an uncompressed 8-bit grey image of noise, incompressible as a scan is.
fn scan_pdf(size: usize) -> Vec<u8> {
    use lopdf::{dictionary, Document, Object, Stream};
    const WIDTH: usize = 1024;
    let height = (size.saturating_sub(1024) / WIDTH).max(1);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let pixels = (0..WIDTH * height)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect();
    let mut doc = Document::with_version("1.7");
    let image = doc.add_object(Stream::new(
        dictionary! {
            "Type" => "XObject", "Subtype" => "Image", "Width" => WIDTH as i64, "Height" => height as i64,
            "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
        },
        pixels,
    ));
    let content = doc.add_object(Stream::new(dictionary! {}, b"q 595 0 0 842 0 0 cm /Im0 Do Q".to_vec()));
    let pages = doc.new_object_id();
    let page = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages,
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        "Resources" => dictionary! { "XObject" => dictionary! { "Im0" => image } },
        "Contents" => content,
    });
    let kids: Vec<Object> = vec![page.into()];
    doc.objects.insert(pages, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => 1 }));
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("bench PDF");
    let parsed = cloudca::pades::parse(&out, out.len()).expect("the bench PDF parses strictly");
    assert_eq!(parsed.pages.len(), 1);
    out
}

/// One PAdES session through the library: (open, claim, approve, all three) as the platform and
/// the holder see them. The first of each kind is checked: signed, the original bytes kept.
async fn pades_session(
    instance: &Instance,
    credential: &str,
    pin: &Pin,
    pdf: &[u8],
    level: Level,
    check: bool,
) -> [Duration; 4] {
    let request = OpenRequest {
        hashes: Vec::new(),
        description: "benchmark".into(),
        documents: vec!["bench.pdf".into()],
        signer: None,
        format: Format::Pades,
        seal: false,
        seal_optional: false,
        document: Some(base64::engine::general_purpose::STANDARD.encode(pdf)),
        seal_placement: None,
        timestamp: level != Level::BB,
        level: Some(level),
    };
    let started = Instant::now();
    let opened = instance.signing.open("dev-platform", request).await.expect("open");
    let open = started.elapsed();
    let secret = qr::QrSecret::from_base64(&opened.start_secret).expect("secret");
    let payload = qr::payload(&opened.start_token, &secret, 0);
    let claiming = Instant::now();
    let claimed = instance.signing.claim(PHONE, &payload).await.expect("claim");
    let claim = claiming.elapsed();
    assert_eq!(claimed.document.as_ref().map(|d| d.pages), Some(1));
    let approving = Instant::now();
    instance.signing.approve(PHONE, &claimed.session_id, credential, pin, None).await.expect("approve");
    let approve = approving.elapsed();
    if check {
        let view = instance.signing.poll("dev-platform", &opened.session_id, Duration::ZERO).await.expect("poll");
        assert_eq!(view["state"], "signed", "{}", view["state"]);
        let signed = base64::engine::general_purpose::STANDARD
            .decode(view["result"]["document"].as_str().expect("signed PDF"))
            .expect("base64");
        assert!(signed.starts_with(pdf) && signed.len() > pdf.len());
    }
    [open, claim, approve, open + claim + approve]
}

/// Milliseconds (median of 3) of the work a PAdES session does outside the database and the HSM,
/// each step once: the request's JSON written and read back, the PDF's base64 decoded, its
/// SHA-256, the strict parse, and the signature revision (parse, new objects, byte-range digest).
fn outside(pdf: &[u8]) -> [f64; 5] {
    let median = |mut step: Box<dyn FnMut()>| {
        let mut times: Vec<Duration> = (0..3)
            .map(|_| {
                let started = Instant::now();
                step();
                started.elapsed()
            })
            .collect();
        percentile(&mut times, 50).as_secs_f64() * 1000.0
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(pdf);
    let request = serde_json::json!({ "format": "pades", "document": encoded, "documents": ["bench.pdf"] });
    let max = pdf.len();
    let now = time::OffsetDateTime::now_utc();
    [
        median(Box::new(|| {
            let text = request.to_string();
            let back: serde_json::Value = serde_json::from_str(&text).expect("json");
            assert!(back["document"].is_string());
        })),
        median(Box::new(|| {
            assert_eq!(base64::engine::general_purpose::STANDARD.decode(&encoded).expect("base64").len(), pdf.len())
        })),
        median(Box::new(|| {
            std::hint::black_box(<sha2::Sha256 as sha2::Digest>::digest(pdf));
        })),
        median(Box::new(|| {
            cloudca::pades::parse(pdf, max).expect("parse");
        })),
        median(Box::new(|| {
            cloudca::pades::prepare(pdf, max, None, now).expect("prepare");
        })),
    ]
}

/// (raw signatures/s with the TSA key, granted timestamp replies/s), measured back to back.
async fn timestamps(instance: &Instance, seconds: Duration) -> (f64, f64) {
    use cloudca::tsa::{request, Outcome};
    let hsm = &instance.hsm;
    let algorithm = instance.config.ca.key_algorithm;
    // About the size of the signed attributes a token's signature covers.
    let message = vec![5u8; 200];
    let raw = rate(seconds, 1, || hsm.sign("cloudca-tsa", algorithm, &message)).await;
    let mut nonce = 0u64;
    let replies = rate(seconds, 1, || {
        nonce += 1;
        let query = request::sha256_query(&[nonce as u8; 32], Some(nonce), true);
        async move {
            let reply = instance.tsa.answer(&query).await;
            match reply.outcome {
                Outcome::Granted => Ok(()),
                other => Err(other),
            }
        }
    })
    .await;
    (raw, replies)
}

/// Operations per second of `op` (each call does `per_call` operations) for about `seconds`.
async fn rate<F, Fut, T, E>(seconds: Duration, per_call: u64, mut op: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < seconds {
        op().await.expect("HSM operation");
        done += per_call;
    }
    done as f64 / started.elapsed().as_secs_f64()
}

async fn enroll(instance: &Instance) -> String {
    let subject = vec![
        ("C".to_string(), "CN".to_string()),
        ("CN".to_string(), "张三".to_string()),
        ("serialNumber".to_string(), "11010519491231002X".to_string()),
    ];
    let approval = instance.custody.create_approval("personal", subject, PHONE, None, "bench").await.expect("approval");
    let pin = Pin::new("246810").expect("pin");
    // The identity proof: a face check started by the server, passed on the sandbox's page.
    let (_, holder) = instance.custody.enrollable(&approval.id, PHONE).await.expect("enrollable");
    let proofs = &instance.custody.proofs;
    let started =
        proofs.start(PHONE, ProofPurpose::Enrol, &approval.id, &holder, ProofMethod::Face).await.expect("proof");
    let face = started.face_url.as_deref().and_then(|u| u.rsplit('/').next()).expect("face page");
    instance.sandboxes.identity.complete_face(face, true).await.expect("face");
    let proven = ProvenPin { proof_id: &started.proof_id, code: None, pin: &pin };
    let (credential, _) = instance.custody.enroll(&approval.id, PHONE, proven, "bench").await.expect("enroll");
    credential.id
}

/// One whole approval: open, claim with this second's payload, approve; timed from the claim's
/// answer to the signatures being stored (what the holder waits for after typing the PIN).
async fn approve(instance: &Instance, credential: &str, pin: &Pin, hashes: usize) -> Duration {
    let hash = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let request = OpenRequest {
        hashes: vec![hash; hashes],
        description: "benchmark".into(),
        documents: Vec::new(),
        signer: None,
        format: Format::Raw,
        seal: false,
        seal_optional: false,
        document: None,
        seal_placement: None,
        timestamp: false,
        level: None,
    };
    let opened = instance.signing.open("dev-platform", request).await.expect("open");
    let secret = qr::QrSecret::from_base64(&opened.start_secret).expect("secret");
    let claimed = instance.signing.claim(PHONE, &qr::payload(&opened.start_token, &secret, 0)).await.expect("claim");
    let started = Instant::now();
    instance.signing.approve(PHONE, &claimed.session_id, credential, pin, None).await.expect("approve");
    started.elapsed()
}

fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    let index = ((samples.len() * p).div_ceil(100)).saturating_sub(1).min(samples.len().saturating_sub(1));
    samples.get(index).copied().unwrap_or_default()
}
