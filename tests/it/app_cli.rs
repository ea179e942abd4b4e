//! `cloudca app`, the reference holder's app, beyond enrolment and signing (which
//! `signing::the_reference_clients_sign_end_to_end` walks): the PIN change and the holder's
//! organisations (handbook §6: 修改密码, 我的机构).

use crate::common::*;
use crate::signing::{cloudca_with_input, Reference, PHONE};

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
