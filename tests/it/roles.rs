//! Role rules against a second trust anchor (review M10): subject rules name the issuing CA's
//! key, so a certificate from another CA in `tls.client_ca` with the same subject gets no role;
//! rule sets that could grant a role by accident are refused before anything serves.

use crate::admin::{foreign_certificate, Admin};
use crate::common::*;

/// Adds the foreign CA of `foreign_certificate` to the admin listener's client anchors, as an
/// operator does who lets an organisation's own PKI in.
fn trust_foreign_ca(ca: &TestCa) -> (String, String) {
    let (cert, key) = foreign_certificate(ca);
    let anchors = ca.config_path.parent().unwrap().join("tls/operator-ca.pem");
    let mut text = std::fs::read_to_string(&anchors).unwrap();
    text.push_str(&std::fs::read_to_string(ca.path("foreign/ca.pem")).unwrap());
    std::fs::write(&anchors, text).unwrap();
    (cert, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_another_anchor_with_a_matching_subject_gets_no_role() {
    let ca = TestCa::new().await;
    let (cert, key) = trust_foreign_ca(&ca);
    let _daemon = Daemon::start(&ca).await;
    let admin = Admin::new(&ca);

    // The handshake succeeds (the anchor is trusted) but `O=cloudca Development, OU=operator`
    // from that CA is nobody: no role, 403 on every route.
    for path in ["/v1/whoami", "/v1/operators"] {
        let (ok, status, body) = admin.curl_as(Some((&cert, &key)), "GET", path, None);
        assert!(ok, "the foreign anchor is trusted for the handshake");
        assert_eq!(status, "403", "a subject match from another CA must grant nothing on {path}: {body}");
    }

    // The operator CA's own certificate with that subject still is the operator.
    assert_eq!(admin.json("operator", "GET", "/v1/whoami", None)["role"], "operator");
    assert!(admin.json("operator", "GET", "/v1/operators", None)["items"].is_array());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subject_rule_without_an_issuer_is_refused_by_config_check_and_at_start() {
    let ca = TestCa::new().await;
    let config = ca.config_path.to_str().unwrap();
    assert!(cloudca(&["--config", config, "config", "check"]).ok, "dev-init's rules pin the operator CA");

    let rules = ca.config.policies_dir.join("roles.toml");
    let text = std::fs::read_to_string(&rules).unwrap();
    let unpinned: String =
        text.lines().filter(|l| !l.starts_with("issuer_spki_sha256")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&rules, unpinned).unwrap();
    let check = cloudca(&["--config", config, "config", "check"]);
    assert!(!check.ok && check.text.contains("rule 1") && check.text.contains("issuer_spki_sha256"), "{}", check.text);
    let serve = serve_refused(&ca.config_path);
    assert!(!serve.ok && serve.text.contains("issuer_spki_sha256"), "the daemon must not start: {}", serve.text);

    // Two rules with the same criteria: which role is meant is ambiguous.
    let fingerprint = "ab".repeat(32);
    let twice = format!(
        "[[rule]]\nrole = \"operator\"\nfingerprint = \"{fingerprint}\"\n[[rule]]\nrole = \"auditor\"\nfingerprint = \"{fingerprint}\"\n"
    );
    std::fs::write(&rules, twice).unwrap();
    let check = cloudca(&["--config", config, "config", "check"]);
    assert!(!check.ok && check.text.contains("ambiguous"), "{}", check.text);
}
