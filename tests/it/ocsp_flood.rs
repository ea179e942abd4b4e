//! Security review M2: an unauthenticated OCSP flood (random serials, nonces) must not take the
//! HSM from issuance and cloud signing. Unknown serials cost no signature at all; what OCSP
//! still signs stays within `hsm.ocsp_concurrency` signatures at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::common::*;

/// `unauthorized` (RFC 6960 §4.2.1), unsigned.
const UNAUTHORIZED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x06];
/// Serial bytes written into the request template, replaced by random ones per request.
const TEMPLATE_SERIAL: [u8; 8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];

/// An OCSP request made by openssl (with its default 16-byte nonce, the last bytes of the DER).
fn request(ca: &TestCa, name: &str, target: &[&str]) -> Vec<u8> {
    let out = ca.path(name);
    let issuer = ca.ca_pem("org");
    let mut args = vec!["ocsp", "-issuer", issuer.to_str().unwrap()];
    args.extend_from_slice(target);
    args.extend(["-reqout", out.to_str().unwrap()]);
    assert!(run("openssl", &args).ok);
    std::fs::read(out).unwrap()
}

/// The template with a fresh nonce and, when `serial` is set, a random serial.
fn vary(template: &[u8], random_serial: bool) -> Vec<u8> {
    let mut der = template.to_vec();
    let mut rng = rand::thread_rng();
    let n = der.len();
    rng.fill_bytes(&mut der[n - 16..]);
    if random_serial {
        let at = der.windows(8).position(|w| w == TEMPLATE_SERIAL).expect("template serial");
        rng.fill_bytes(&mut der[at..at + 8]);
        der[at] = (der[at] & 0x7f) | 0x01;
    }
    der
}

fn csr() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CountryName, "CN");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "示例科技有限公司");
    params.distinguished_name.push(rcgen::DnType::CommonName, "示例科技");
    params.distinguished_name.push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), "91350100M000100Y43");
    params.serialize_request(&key).unwrap().der().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ocsp_flood_signs_within_its_share_and_issuance_and_signing_still_complete() {
    let ca = TestCa::new().await;
    let (cert, _) = issue_cli(&ca, "ee", "org", ORG_SUBJECT);
    let random_template = request(&ca, "random.der", &["-serial", "0x0102030405060708"]);
    let known_template = request(&ca, "known.der", &["-cert", cert.to_str().unwrap()]);
    let instance = ca.open().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(cloudca::daemon::serve(instance.clone(), async move {
        let _ = stopped.await;
    }));
    let public = format!("http://{}", ca.config.listeners.public);
    let metrics = format!("http://{}", ca.config.listeners.metrics);
    let deadline = Instant::now() + Duration::from_secs(20);
    while http().get(format!("{metrics}/ready")).send().await.is_err() {
        assert!(Instant::now() < deadline, "daemon did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The flood: 32 clients, each 30 requests, alternating a random serial and the issued
    // certificate, every one with its own nonce.
    let url = Arc::new(format!("{public}/ocsp/org"));
    let (random_template, known_template) = (Arc::new(random_template), Arc::new(known_template));
    let mut flood = Vec::new();
    for _ in 0..32 {
        let (url, random_template, known_template) = (url.clone(), random_template.clone(), known_template.clone());
        flood.push(tokio::spawn(async move {
            let client = http();
            for i in 0..30 {
                let random = i % 2 == 0;
                let body = if random { vary(&random_template, true) } else { vary(&known_template, false) };
                let r = client
                    .post(url.as_str())
                    .header("content-type", "application/ocsp-request")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let der = r.bytes().await.unwrap();
                if random {
                    assert_eq!(der.as_ref(), UNAUTHORIZED, "a serial we did not issue costs no signature");
                } else {
                    // successful(0): signed for the nonce, or the pre-signed answer without it.
                    assert_eq!(der.get(4..7), Some(&[0x0a, 0x01, 0x00][..]), "answered: {der:02x?}");
                }
            }
        }));
    }

    // Meanwhile issuance and cloud signing complete (liveness: a bound, not a speed).
    for _ in 0..5 {
        let csr = csr();
        let issued = tokio::time::timeout(Duration::from_secs(10), instance.issuance.issue("org", &csr, "flood"));
        assert!(issued.await.expect("issuance completes during the flood").is_ok());
        let signed = tokio::time::timeout(Duration::from_secs(10), async {
            let key = instance.hsm.generate_wrapped(cloudca::hsm::KeyAlgorithm::EcdsaP256).await?;
            instance.hsm.sign_wrapped_many(&key.blob, cloudca::hsm::KeyAlgorithm::EcdsaP256, vec![vec![7u8; 32]]).await
        });
        assert!(signed.await.expect("cloud signing completes during the flood").is_ok());
    }
    for f in flood {
        f.await.unwrap();
    }
    let peak = instance.status.ocsp_signing_peak();
    assert!(peak >= 1, "the nonce requests were signed when a slot was free");
    assert!(peak <= ca.config.hsm.ocsp_concurrency, "at most hsm.ocsp_concurrency at once: {peak}");
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
