//! `cloudca app`, the reference holder's app, beyond enrolment and signing (which
//! `signing::the_reference_clients_sign_end_to_end` walks): the PIN change, unlock and reset,
//! the holder's organisations and stamping with a seal (handbook §6: 修改密码, 解锁, 企业管理,
//! 印章).

use base64::Engine;
use sha2::Digest;

use crate::admin::Admin;
use crate::common::*;
use crate::signing::{
    approve_phone, cloudca_with_input, open, payload, quick_sms_ca, Api, As, Reference, AGENT_PERSON, PHONE,
};

/// The organisation of the test certificates (its credit code as `Api::admin_code` names it).
const CREDIT: &str = "91350100M000100Y43";

/// `cloudca app --state STATE ARGS...` with `input` on standard input: (ok, output).
fn app(state: &str, args: &[&str], input: &str) -> (bool, String) {
    let mut all = vec!["app", "--state", state];
    all.extend_from_slice(args);
    cloudca_with_input(&all, input)
}

/// `cloudca app orgs`, parsed.
fn orgs(state: &str) -> serde_json::Value {
    let (ok, text) = app(state, &["orgs"], "");
    assert!(ok, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A signing session the platform opens; `cloudca app claim` scans its QR payload. The
/// session id.
fn claimed(api: &Api<'_>, state: &str, doc: &[u8]) -> String {
    let (session, start, secret) = open(api, doc, "raw");
    let (ok, text) = app(state, &["claim", "--payload", &payload(&start, &secret, std::time::Instant::now())], "");
    assert!(ok, "{text}");
    session
}

/// What the platform sees of a session.
fn platform_view(api: &Api<'_>, session: &str) -> serde_json::Value {
    let (status, view) = api.call(As::Platform, "GET", &format!("/v1/signing/sessions/{session}"), None);
    assert_eq!(status, "200", "{view}");
    view
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_changes_the_pin_only_with_the_current_one_and_lists_the_holders_organisations() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    let config = ca.config_path.to_str().unwrap();
    let subject = "/C=CN/CN=张三/serialNumber=11010519491231002X";
    let create =
        ["--config", config, "approval", "create", "--profile", "personal", "--phone", PHONE, "--subject", subject];
    assert!(cloudca(&create).ok);
    let state = ca.path("app.json").to_str().unwrap().to_string();
    let reference = Reference { ca: &ca, state: state.clone() };
    reference.login(PHONE);
    let credential = reference.enroll();

    let change = ["app", "--state", &state, "change-pin", "--credential", &credential];
    let (ok, text) = cloudca_with_input(&change, "111111\n135790\n");
    assert!(!ok && text.contains("wrong PIN"), "the current PIN is checked: {text}");
    let (ok, text) = cloudca_with_input(&change, "246810\n135790\n");
    assert!(ok && text.contains("\"changed\""), "{text}");
    let (ok, text) = cloudca_with_input(&change, "246810\n112233\n");
    assert!(!ok && text.contains("wrong PIN"), "the old PIN no longer works: {text}");
    let (ok, text) = cloudca_with_input(&change, "135790\n1234\n");
    assert!(!ok && text.contains("400"), "a malformed new PIN is refused: {text}");

    // A person without an organisation has none to list; the answer is still well-formed.
    let orgs = cloudca(&["app", "--state", &state, "orgs"]);
    assert!(orgs.ok, "{}", orgs.text);
    let orgs: serde_json::Value = serde_json::from_str(&orgs.text).unwrap();
    assert_eq!(orgs["items"], serde_json::json!([]));
    let instance = ca.open().await;
    assert!(instance.store.count_audit_events("pin.changed").await.unwrap() >= 1, "the change is audited");
}

/// Handbook D5 and D9: the agent who enrolled the organisation's certificate sees the
/// organisation in the app as its administrator (with its members and seals), and, when a
/// platform asks for a seal, stamps with the one `app orgs` lists and the seal administrator
/// allowed in the app (`app seal-grant`, 印章授权): the platform gets the seal's image with the
/// signature. Once the seal administrator withdraws it (`app seal-withdraw`), the agent's
/// `app orgs` no longer lists them as a user of the seal and stamping with it is refused.
#[tokio::test(flavor = "multi_thread")]
async fn an_organisations_agent_manages_it_in_the_app_and_stamps_its_seal_when_signing() {
    const AGENT: &str = "+8613700137000";
    const SEAL_ADMIN: &str = "+8613600136000";
    let ca = quick_sms_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let admin = Admin::new(&ca);
    let subject = format!(r#"[["C","CN"],["O","福建示例科技有限公司"],["CN","示例科技"],["serialNumber","{CREDIT}"]]"#);
    let body = format!(r#"{{"profile":"org","phone":"{AGENT}","subject":{subject},"holder":{AGENT_PERSON}}}"#);
    admin.json("operator", "POST", "/v1/approvals", Some(&body));
    let state = ca.path("agent-app.json").to_str().unwrap().to_string();
    let reference = Reference { ca: &ca, state: state.clone() };
    reference.login(AGENT);
    let credential = reference.enroll();

    let listed = orgs(&state);
    let org = &listed["items"][0];
    assert_eq!((org["credit_code"].as_str(), org["role"].as_str()), (Some(CREDIT), Some("admin")), "{listed}");
    assert_eq!(org["members"], serde_json::json!([{ "phone": AGENT, "role": "admin" }]), "{listed}");
    assert_eq!(org["seals"], serde_json::json!([]), "no seal yet: {listed}");

    // A seal administrator is appointed, has a seal approved and lets the agent stamp with it.
    approve_phone(&ca, SEAL_ADMIN);
    // The app's own session (its state file) makes the administrator's call.
    let app_state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let agent = app_state["token"].as_str().unwrap().to_string();
    let org_path = format!("/v1/mobile/orgs/{CREDIT}");
    let body = format!(r#"{{"phone":"{SEAL_ADMIN}","role":"seal-admin","code":"{}"}}"#, api.admin_code(AGENT));
    assert_eq!(api.call(As::Holder(&agent), "POST", &format!("{org_path}/members"), Some(&body)).0, "204");
    // The seal administrator uses the reference app too; its session makes the seal request.
    let admin_state = ca.path("seal-admin-app.json").to_str().unwrap().to_string();
    Reference { ca: &ca, state: admin_state.clone() }.login(SEAL_ADMIN);
    let admin_app: serde_json::Value = serde_json::from_slice(&std::fs::read(&admin_state).unwrap()).unwrap();
    let seal_admin = admin_app["token"].as_str().unwrap().to_string();
    let png = cloudca::signing::qr::render_png("合同专用章", 2).unwrap();
    let png64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let body = format!(r#"{{"name":"合同专用章","png":"{png64}","code":"{}"}}"#, api.admin_code(SEAL_ADMIN));
    let (status, requested) =
        api.call(As::Holder(&seal_admin), "POST", &format!("{org_path}/seal-requests"), Some(&body));
    assert_eq!(status, "202", "{requested}");
    let decision = format!("/v1/seal-requests/{}/decision", requested["request_id"].as_str().unwrap());
    admin.json("reviewer", "POST", &decision, Some(r#"{"approve":true}"#));
    let listed = orgs(&state);
    let seals = listed["items"][0]["seals"].as_array().unwrap().clone();
    assert_eq!((seals.len(), seals[0]["name"].as_str()), (1, Some("合同专用章")), "{listed}");
    let seal_id = seals[0]["id"].as_str().unwrap().to_string();
    let members = listed["items"][0]["members"].to_string();
    assert!(members.contains(SEAL_ADMIN) && members.contains("seal-admin"), "{members}");
    assert_eq!(seals[0]["users"], serde_json::json!([]), "nobody may stamp with it yet: {listed}");
    // The seal administrator grants its use in the app, the code read from the sandbox outbox.
    let outbox = ca.config.data_dir.join("sms-outbox.jsonl");
    let seal_user = |command: &str| {
        // The one-second interval between two codes to the same phone.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let args = ["--org", CREDIT, "--seal", &seal_id, "--member", AGENT, "--outbox", outbox.to_str().unwrap()];
        app(&admin_state, &[&[command][..], &args].concat(), "")
    };
    let (ok, text) = seal_user("seal-grant");
    assert!(ok && text.contains("\"allowed\": true"), "{text}");
    let listed = orgs(&state);
    assert_eq!(
        listed["items"][0]["seals"][0]["users"],
        serde_json::json!([AGENT]),
        "the agent sees the grant: {listed}"
    );

    // The platform asks for a seal: approving without one is refused, with `--seal` it signs.
    let doc = b"framework agreement";
    let body = format!(
        r#"{{"hashes":["{}"],"description":"Agreement","format":"raw","seal":true}}"#,
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(doc))
    );
    // The platform opens a session; the holder scans its QR code in the app.
    let opened_and_claimed = || {
        let (status, opened) = api.call(As::Platform, "POST", "/v1/signing/sessions", Some(&body));
        assert_eq!(status, "201", "{opened}");
        let session = opened["session_id"].as_str().unwrap().to_string();
        let secret = cloudca::signing::qr::QrSecret::from_base64(opened["start_secret"].as_str().unwrap()).unwrap();
        let scanned = payload(opened["start_token"].as_str().unwrap(), &secret, std::time::Instant::now());
        let (ok, text) = app(&state, &["claim", "--payload", &scanned], "");
        assert!(ok, "{text}");
        session
    };
    let session = opened_and_claimed();
    let approve = ["approve", "--session", &session, "--credential", &credential];
    let (ok, text) = app(&state, &approve, "246810\n");
    assert!(!ok && text.contains("403"), "a seal must be chosen: {text}");
    let (ok, text) = app(&state, &[&approve[..], &["--seal", &seal_id]].concat(), "246810\n");
    assert!(ok, "{text}");
    let view = platform_view(&api, &session);
    let stamped = view["result"]["seal"]["png"].as_str().unwrap_or_else(|| panic!("no seal: {view}"));
    let stamped = base64::engine::general_purpose::STANDARD.decode(stamped).unwrap();
    assert_eq!(stamped, png, "the platform gets the chosen seal's image with the signature");
    assert!(view["result"]["signatures"].as_array().is_some_and(|s| s.len() == 1), "{view}");

    // Withdrawn in the app: the agent's view no longer lists them, and the seal is refused.
    let (ok, text) = seal_user("seal-withdraw");
    assert!(ok && text.contains("\"allowed\": false"), "{text}");
    let listed = orgs(&state);
    assert_eq!(listed["items"][0]["seals"][0]["users"], serde_json::json!([]), "withdrawn: {listed}");
    let session = opened_and_claimed();
    let approve = ["approve", "--session", &session, "--credential", &credential, "--seal", &seal_id];
    let (ok, text) = app(&state, &approve, "246810\n");
    assert!(!ok && text.contains("403"), "the withdrawn seal is refused: {text}");
    let instance = ca.open().await;
    assert_eq!(instance.store.count_audit_events("seal.user.set").await.unwrap(), 2, "grant and withdrawal audited");
}

/// Handbook D10: five wrong PINs in the app lock the credential; `cloudca app unlock` proves
/// the holder's face and sets a new PIN, with which the holder signs (the old PIN no longer
/// works); a forgotten PIN of an active credential is replaced by `cloudca app reset-pin` the
/// same way.
#[tokio::test(flavor = "multi_thread")]
async fn a_holder_locked_out_by_wrong_pins_unlocks_in_the_app_signs_with_the_new_pin_and_resets_a_forgotten_one() {
    let ca = quick_sms_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let api = Api { ca: &ca };
    let config = ca.config_path.to_str().unwrap();
    let subject = "/C=CN/CN=张三/serialNumber=11010519491231002X";
    let create =
        ["--config", config, "approval", "create", "--profile", "personal", "--phone", PHONE, "--subject", subject];
    assert!(cloudca(&create).ok);
    let state = ca.path("app.json").to_str().unwrap().to_string();
    let reference = Reference { ca: &ca, state: state.clone() };
    reference.login(PHONE);
    let credential = reference.enroll();

    let session = claimed(&api, &state, b"contract 1");
    let approve = ["approve", "--session", &session, "--credential", &credential];
    let mut last = String::new();
    for _ in 0..5 {
        let (ok, text) = app(&state, &approve, "111111\n");
        assert!(!ok, "a wrong PIN signs nothing: {text}");
        last = text;
    }
    assert!(last.contains("423"), "locked at the fifth wrong PIN: {last}");
    let (ok, text) = app(&state, &approve, "246810\n");
    assert!(!ok && text.contains("423"), "locked, even the right PIN: {text}");
    let (ok, text) = app(&state, &["reset-pin", "--credential", &credential], "135790\n");
    assert!(!ok, "a locked credential is unlocked, not reset: {text}");

    let (ok, text) = app(&state, &["unlock", "--credential", &credential], "135790\n");
    assert!(ok && text.contains("\"set\""), "{text}");
    let (ok, text) = app(&state, &approve, "246810\n");
    assert!(!ok && text.contains("wrong PIN"), "the old PIN no longer works: {text}");
    let (ok, text) = app(&state, &approve, "135790\n");
    assert!(ok, "{text}");
    assert!(platform_view(&api, &session)["result"]["signatures"].is_array(), "signed with the new PIN");

    // Forgotten: the active credential gets a new PIN after the face check.
    let (ok, text) = app(&state, &["reset-pin", "--credential", &credential], "112233\n");
    assert!(ok && text.contains("\"set\""), "{text}");
    let session = claimed(&api, &state, b"contract 2");
    let approve = ["approve", "--session", &session, "--credential", &credential];
    let (ok, text) = app(&state, &approve, "135790\n");
    assert!(!ok && text.contains("wrong PIN"), "the forgotten PIN no longer works: {text}");
    let (ok, text) = app(&state, &approve, "112233\n");
    assert!(ok, "{text}");
    assert!(platform_view(&api, &session)["result"]["signatures"].is_array(), "signed with the reset PIN");
    let instance = ca.open().await;
    for kind in ["credential.locked", "credential.unlocked"] {
        assert_eq!(instance.store.count_audit_events(kind).await.unwrap(), 1, "{kind} audited once");
    }
}
