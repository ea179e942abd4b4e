//! Fuzz targets: one function per parser that sees outside bytes, each running the production
//! path the daemon runs on those bytes up to the first step that needs the HSM, the database
//! or a provider. A target returns nothing and must never panic, hang or allocate without
//! bound, whatever the input; where a parser promises a property (a QR payload it accepts is
//! canonical), the target checks it and panics when it does not hold.
//!
//! Two runners use [`ALL`]: the short, deterministic run in CI (`tests/it/fuzz.rs`: the seed
//! corpus in `fuzz/corpus/<target>/` plus seeded mutations, bounded in count and time) and the
//! coverage-guided libFuzzer run (`fuzz/`, `scripts/fuzz.sh`). `docs/fuzzing.md` says how to run
//! both and what the last long run found.
//!
//! The JSON targets take a selector byte (which endpoint) and the body, and deserialize it into
//! the handler's own request type (crate-visible for this), so a body reaches the checks here
//! exactly when the handler's extractor accepts it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::Engine;
use serde::de::DeserializeOwned;

use crate::ca::csr::{self, VerifiedRequest};
use crate::ca::profile::Profile;
use crate::ra::channels::Channel;
use crate::signing::qr;

/// A fuzz target: any bytes in, nothing out, never a panic.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus folder and libFuzzer binary carry.
pub const ALL: &[(&str, Target)] = &[
    ("csr", csr),
    ("ocsp_request", ocsp_request),
    ("ocsp_get", ocsp_get),
    ("tsa_query", tsa_query),
    ("qr_payload", qr_payload),
    ("material", material),
    ("admin_json", admin_json),
    ("clients_json", clients_json),
    ("ra_json", ra_json),
    ("payment_webhook", payment_webhook),
];

/// "Today" for date checks (birth dates, identifiers), fixed so a run is reproducible.
const TODAY: time::Date = time::macros::date!(2026 - 01 - 01);

/// "Now" for webhook freshness, the same day.
const NOW: i64 = 1_767_225_600;

/// The largest upload the RA's configuration allows (`ra.max_material_bytes` is at most 4 MiB).
const MAX_MATERIAL_BYTES: usize = 4 * 1024 * 1024;

/// `custody.max_hashes`' default.
const MAX_HASHES: usize = 1000;

fn policies_dir() -> &'static std::path::Path {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
}

/// The shipped profiles (`policies/profiles`), loaded once; empty if they cannot be read (a
/// test checks they can).
pub fn profiles() -> &'static BTreeMap<String, Profile> {
    static PROFILES: OnceLock<BTreeMap<String, Profile>> = OnceLock::new();
    PROFILES.get_or_init(|| crate::ca::profile::load_all(policies_dir()).unwrap_or_default())
}

/// The shipped RA channels (`policies/channels`), loaded once.
pub fn channels() -> &'static BTreeMap<String, Channel> {
    static CHANNELS: OnceLock<BTreeMap<String, Channel>> = OnceLock::new();
    CHANNELS.get_or_init(|| crate::ra::channels::load_all(policies_dir()).unwrap_or_default())
}

/// A PKCS#10 request (PEM or DER) as `POST /v1/certificates` and `POST /v1/operators` take it:
/// parsed, signature verified, then judged by every shipped profile (key, subject, identifiers)
/// and read for the operator CA's CN.
pub fn csr(data: &[u8]) {
    if let Ok(request) = csr::parse(data) {
        judge(&request, None);
    }
}

/// Issuance step 1 without the HSM: the profile's key and subject rules (all profiles, or the
/// one named), and the operator certificate's CN rule.
fn judge(request: &VerifiedRequest, profile: Option<&str>) {
    for p in profiles().values().filter(|p| profile.is_none_or(|name| name == p.name)) {
        if p.check_key(request.key_type).is_ok() {
            let _ = crate::ca::subject::build(p, &request.subject, TODAY);
        }
    }
    let _ = crate::ca::key_identifier(&request.spki);
    let cn = request.subject.iter().find(|(k, _)| k == "CN").map(|(_, v)| v.trim().chars().count());
    let _ = cn.filter(|n| (1..=64).contains(n));
}

/// A DER OCSP request, as `POST /ocsp/{ca}` takes it.
pub fn ocsp_request(data: &[u8]) {
    if let Ok(request) = crate::status::ocsp::request::parse(data) {
        assert!(!request.certs.is_empty() && request.certs.len() <= crate::status::ocsp::request::MAX_CERTS);
        for id in &request.certs {
            // What the responder looks the certificate up by.
            let _ = hex::encode(&id.serial);
        }
    }
}

/// A timestamp query as `POST /tsa` takes it (at most 1 KiB there): parsed strictly; what it
/// accepts has an imprint of its hash's length and a bounded nonce, and re-encodes to itself.
pub fn tsa_query(data: &[u8]) {
    use crate::tsa::request;
    if let Ok(query) = request::parse(data) {
        assert!(query.nonce.as_ref().is_none_or(|n| n.as_bytes().len() <= request::MAX_NONCE));
        let len = query.imprint.hashed_message.as_bytes().len();
        assert!([32, 48, 64].contains(&len), "an imprint of {len} octets was accepted");
    }
}

/// The GET form, `GET /ocsp/{ca}/{base64}`: the bytes are the request target's tail after
/// `/ocsp/ca/`. The URI is parsed and the path percent-decoded by the same `http` and `axum`
/// code the public listener runs (a router with its route), then decoded by the handler's own
/// `api::public::decode_get` (trailing newlines dropped, standard base64, at most 8 KiB) and parsed.
pub fn ocsp_get(data: &[u8]) {
    use tower_service::Service;
    let mut target = b"/ocsp/ca/".to_vec();
    target.extend_from_slice(data);
    let Ok(uri) = axum::http::Uri::try_from(target) else { return };
    let Ok(request) = axum::http::Request::get(uri).body(axum::body::Body::empty()) else { return };
    let mut router = ocsp_get_router().clone();
    // Nothing on this route waits for I/O: the response future is ready when first polled (if
    // it ever were not, the handler would not run: fail loudly rather than fuzz nothing).
    let answered = futures_util::FutureExt::now_or_never(router.call(request));
    assert!(answered.is_some(), "the router did not answer at once");
}

fn ocsp_get_router() -> &'static axum::Router {
    static ROUTER: OnceLock<axum::Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        axum::Router::new().route(
            "/ocsp/{ca}/{*request}",
            axum::routing::get(|axum::extract::Path((_, request)): axum::extract::Path<(String, String)>| async move {
                ocsp_get_path(&request);
            }),
        )
    })
}

/// `api::public::ocsp_get` after the path is extracted.
fn ocsp_get_path(request: &str) {
    if let Ok(der) = crate::api::public::decode_get(request) {
        ocsp_request(&der);
    }
}

/// Scanned QR text (`cloudca1.{token}.{t}.{code}`), as the app sends it to
/// `POST /v1/mobile/sessions/claim`: parsed and verified under a session secret. A payload
/// that parses must be the canonical one, so the payload made for its token and time parses
/// back to the same and verifies.
pub fn qr_payload(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    claim(&text);
    let _ = qr::QrSecret::from_base64(&text);
}

fn claim(text: &str) {
    let Ok(scanned) = qr::parse(text) else { return };
    let secret = qr::QrSecret::from_bytes([0x5a; 32]);
    let t = scanned.elapsed_secs;
    for (server, skew, window) in [(t, 3, 30), (0, 3, 30), (u64::MAX, 3, u64::MAX)] {
        let _ = qr::verify(&scanned, &secret, server, skew, window);
    }
    let canonical = qr::payload(&scanned.start_token, &secret, t);
    let again = qr::parse(&canonical).expect("the payload made from a parsed one parses");
    assert_eq!((&again.start_token, again.elapsed_secs), (&scanned.start_token, t));
    assert_eq!(qr::verify(&again, &secret, t, 0, u64::MAX), Ok(t));
}

/// An uploaded material (`PUT /v1/ra/orders/{id}/materials/{kind}`): content sniffing within
/// the largest configurable limit, and the PNG header check seal images get.
pub fn material(data: &[u8]) {
    if let Ok(m) = crate::ra::materials::check(data, MAX_MATERIAL_BYTES) {
        assert_eq!(m.sha256.len(), 64);
    }
    let _ = crate::seals::check_png(data);
}

/// Deserializes a body as axum's `Json` extractor does (whole input, trailing whitespace only).
fn body<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    serde_json::from_slice(data).ok()
}

/// Bodies of the `admin` listener's back-office routes; the first byte picks the route.
pub fn admin_json(data: &[u8]) {
    use crate::api::admin::{approvals, certificates, operators, seals};
    let Some((&selector, data)) = data.split_first() else { return };
    match selector % 7 {
        0 => {
            // POST /v1/certificates
            let Some(b) = body::<certificates::IssueBody>(data) else { return };
            if let Ok(request) = csr::parse(b.csr.as_bytes()) {
                judge(&request, Some(&b.profile));
            }
        }
        1 => {
            // POST /v1/certificates/{serial}/revoke
            let Some(b) = body::<certificates::RevokeBody>(data) else { return };
            let _ = b.reason.parse::<crate::status::RevocationReason>();
            if let Some(t) = b.invalidity_date.as_deref() {
                let parsed = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339);
                let _ = parsed.map(|t| time::OffsetDateTime::from_unix_timestamp(t.unix_timestamp()));
            }
        }
        2 => {
            // POST /v1/relying-platforms
            let Some(b) = body::<crate::platforms::Registration>(data) else { return };
            let _ = crate::platforms::check(&b);
        }
        3 => {
            // POST /v1/operators
            let Some(b) = body::<operators::IssueBody>(data) else { return };
            let _ = b.role.parse::<crate::roles::Role>();
            let days = u32::try_from(b.validity_days).ok();
            if days.is_some_and(|d| (1..=crate::operators::MAX_VALIDITY_DAYS).contains(&d)) {
                csr(b.csr.as_bytes());
            }
        }
        4 => {
            // POST /v1/operators/{serial}/revoke
            let Some(b) = body::<operators::RevokeBody>(data) else { return };
            let _ = b.reason.parse::<crate::status::RevocationReason>();
        }
        5 => {
            // POST /v1/approvals: checked when created, judged by the profile at enrolment.
            let Some(b) = body::<approvals::ApprovalBody>(data) else { return };
            let _ = crate::custody::valid_phone(&b.phone);
            let _ = b.subject.iter().find(|(k, _)| k == "serialNumber");
            let stored = serde_json::to_string(&b.subject).unwrap_or_default();
            let subject: Vec<(String, String)> = serde_json::from_str(&stored).unwrap_or_default();
            if let Some(p) = profiles().get(&b.profile) {
                let _ = crate::ca::subject::build(p, &subject, TODAY);
            }
        }
        _ => {
            // POST /v1/seal-requests/{id}/decision
            let _ = body::<seals::DecisionBody>(data);
        }
    }
}

/// Bodies of the `api` listener (the mobile app, organisations, relying platforms).
pub fn clients_json(data: &[u8]) {
    use crate::api::clients::mobile::{ApproveBody, ClaimBody, CodeBody, EnrollBody, LoginBody, PinBody, ResetBody};
    use crate::api::clients::orgs::{HandOverBody, MemberBody, SealBody};
    let pin = |text: &str| drop(crate::custody::Pin::new(text));
    let Some((&selector, data)) = data.split_first() else { return };
    match selector % 11 {
        0 => {
            // POST /v1/mobile/sms
            let Some(b) = body::<CodeBody>(data) else { return };
            let _ = crate::mobile::Purpose::parse(&b.purpose);
            let _ = crate::custody::valid_phone(&b.phone);
        }
        1 => drop(body::<LoginBody>(data)),
        2 => {
            // POST /v1/mobile/credentials
            let Some(b) = body::<EnrollBody>(data) else { return };
            pin(&b.pin);
        }
        3 => {
            // POST /v1/mobile/credentials/{id}/pin
            let Some(b) = body::<PinBody>(data) else { return };
            pin(&b.old_pin);
            pin(&b.new_pin);
        }
        4 => {
            // POST /v1/mobile/credentials/{id}/unlock and /pin-reset
            let Some(b) = body::<ResetBody>(data) else { return };
            pin(&b.new_pin);
        }
        5 => {
            // POST /v1/mobile/sessions/claim
            let Some(b) = body::<ClaimBody>(data) else { return };
            claim(&b.payload);
        }
        6 => {
            // POST /v1/mobile/sessions/{id}/approve
            let Some(b) = body::<ApproveBody>(data) else { return };
            pin(&b.pin);
        }
        7 => {
            // POST /v1/mobile/orgs/{credit_code}/members
            let Some(b) = body::<MemberBody>(data) else { return };
            let _ = crate::custody::valid_phone(&b.phone) && crate::seals::MEMBER_ROLES.contains(&b.role.as_str());
        }
        8 => {
            // POST /v1/mobile/orgs/{credit_code}/handover
            let Some(b) = body::<HandOverBody>(data) else { return };
            let _ = crate::custody::valid_phone(&b.phone);
        }
        9 => {
            // POST /v1/mobile/orgs/{credit_code}/seal-requests
            let Some(b) = body::<SealBody>(data) else { return };
            if let Ok(png) = base64::engine::general_purpose::STANDARD.decode(&b.png) {
                let _ = crate::seals::check_png(&png);
            }
        }
        _ => {
            // POST /v1/signing/sessions
            let Some(b) = body::<crate::signing::OpenRequest>(data) else { return };
            if crate::signing::check_open(&b, MAX_HASHES).is_ok() {
                let _ = serde_json::to_string(&b);
            }
        }
    }
}

/// Bodies of the RA routes on the `admin` listener (the web front's and the officers'). For a
/// step, the second byte picks the step.
pub fn ra_json(data: &[u8]) {
    use crate::api::ra::applicant::{AddressBody, CancelBody, CodeBody, CreateBody, QueryBody, QueryCodeBody};
    use crate::api::ra::officer::DecisionBody;
    use crate::ra::flow::{Flow, Step};
    let Some((&selector, data)) = data.split_first() else { return };
    let trimmed = |text: &str, max: usize| -> String { text.chars().filter(|c| !c.is_control()).take(max).collect() };
    match selector % 9 {
        0 => {
            // POST /v1/ra/orders
            let Some(b) = body::<CreateBody>(data) else { return };
            let flow = Flow::parse(&b.flow);
            let _ = channels().get(&b.channel).zip(flow).map(|(c, f)| c.enables(f));
        }
        1 => {
            // POST /v1/ra/orders/{id}/steps/{step}
            let Some((&step, data)) = data.split_first() else { return };
            let step = Step::ALL[usize::from(step) % Step::ALL.len()];
            let Some(value) = body::<serde_json::Value>(data) else { return };
            let _ = crate::ra::steps::check_body(step, value, TODAY);
        }
        2 => {
            // POST /v1/ra/orders/{id}/codes/{purpose}
            const PURPOSES: [&str; 4] = ["certificate", "signature", "authorization", "other"];
            let Some((&purpose, data)) = data.split_first() else { return };
            let purpose = serde_json::Value::String(PURPOSES[usize::from(purpose) % PURPOSES.len()].into());
            let _ = serde_json::from_value::<crate::ra::CodePurpose>(purpose);
            let Some(b) = body::<CodeBody>(data) else { return };
            if let Some(text) = b.serial.as_deref() {
                serial(text);
            }
        }
        3 => drop(body::<crate::api::ra::letter::SignBody>(data)),
        4 => {
            // POST /v1/ra/orders/{id}/cancel
            let Some(b) = body::<CancelBody>(data) else { return };
            let _ = trimmed(b.reason.as_deref().unwrap_or("cancelled by the applicant"), 200);
        }
        5 => {
            // PUT /v1/ra/orders/{id}/address
            let Some(b) = body::<AddressBody>(data) else { return };
            let _ = crate::ra::validate::name("delivery_address", &b.address, 200);
        }
        6 => {
            // POST /v1/ra/queries/code
            let Some(b) = body::<QueryCodeBody>(data) else { return };
            let _ = crate::ra::Ra::subject_key(&crate::ra::typed_subject(b.id_type, &b.subject));
            let _ = crate::ra::validate::mainland_mobile("phone", &b.phone);
        }
        7 => {
            // POST /v1/ra/queries
            let Some(b) = body::<QueryBody>(data) else { return };
            let _ = crate::ra::Ra::subject_key(&crate::ra::typed_subject(b.id_type, &b.subject));
            let _ = crate::ra::validate::mainland_mobile("phone", &b.phone);
            let _ = b.id_number.as_deref().map(|id| id.trim().to_uppercase());
        }
        _ => {
            // POST /v1/orders/{id}/decision (officers)
            let Some(b) = body::<DecisionBody>(data) else { return };
            let _ = trimmed(&b.reason, 500);
        }
    }
}

/// A serial as operators and applicants type it: when accepted, a positive magnitude in
/// even-length lowercase hex (what the store keys certificates by).
fn serial(text: &str) {
    if let Some(hex) = crate::ca::serial::parse(text) {
        let digits = hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        assert!(!hex.is_empty() && hex.len() % 2 == 0 && !hex.starts_with("00") && digits, "{text:?} read as {hex:?}");
    }
}

/// `POST /v1/payments/webhook`: an even first byte sends the rest as a correctly signed, fresh
/// body (so the body parser is reached); an odd one sends `timestamp\nsignature\nbody`.
pub fn payment_webhook(data: &[u8]) {
    use crate::providers::payment::{sign_webhook, PaymentProvider, SandboxPayment};
    const SECRET: &[u8] = b"cloudca fuzz webhook secret";
    static PROVIDER: OnceLock<SandboxPayment> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| SandboxPayment::new(SECRET.to_vec(), "https://pay.example".into()));
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let signature = sign_webhook(SECRET, NOW, rest);
        let _ = provider.verify_webhook(&NOW.to_string(), &signature, rest, NOW);
    } else {
        let text = String::from_utf8_lossy(rest);
        let mut parts = text.splitn(3, '\n');
        let (timestamp, signature) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let body = parts.next().unwrap_or_default();
        let _ = provider.verify_webhook(timestamp, signature, body.as_bytes(), NOW);
    }
}
