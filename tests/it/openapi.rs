//! The OpenAPI documents in `openapi/` against the routers: same operations, same roles, served
//! verbatim by each listener; and schemathesis fuzzing the admin API from its document finds no
//! 5xx.

use std::collections::BTreeSet;

use crate::admin::Admin;
use crate::common::*;

fn document(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("openapi/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{name}.json: {e}"))
}

/// (METHOD, path) of every operation in a document.
fn operations(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let methods = ["get", "post", "put", "patch", "delete", "head", "options"];
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| methods.contains(&m.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

fn routed(routes: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    // `{*request}` is axum's catch-all; OpenAPI spells it `{request}`.
    routes.iter().map(|(m, p)| (m.to_string(), p.replace("{*", "{"))).collect()
}

#[test]
fn openapi_matches_router() {
    let admin = document("admin");
    assert!(admin["openapi"].as_str().unwrap().starts_with("3.1"), "OpenAPI 3.1");
    let table: Vec<(&str, &str)> = cloudca::api::admin::ROUTES.iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(operations(&admin), routed(&table), "admin.json and api::admin::ROUTES differ");
    for route in cloudca::api::admin::ROUTES {
        let documented: BTreeSet<String> = admin["paths"][route.path][route.method.to_lowercase()]["x-roles"]
            .as_array()
            .unwrap_or_else(|| panic!("{} {} has no x-roles", route.method, route.path))
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        let enforced: BTreeSet<String> = route.roles.iter().map(|r| r.name().to_string()).collect();
        assert_eq!(documented, enforced, "x-roles of {} {}", route.method, route.path);
    }
    let api = cloudca::api::clients::routes();
    for (name, routes) in
        [("public", cloudca::api::public::ROUTES), ("ops", cloudca::api::ops::ROUTES), ("api", api.as_slice())]
    {
        let doc = document(name);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{name}: OpenAPI 3.1");
        assert_eq!(operations(&doc), routed(routes), "{name}.json and its router differ");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_listener_serves_its_document() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    for (base, name) in [(&daemon.metrics, "ops"), (&daemon.public, "public")] {
        let text = http().get(format!("{base}/openapi.json")).send().await.unwrap().text().await.unwrap();
        let served: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(served, document(name), "{name}");
    }
    let admin = Admin::new(&ca);
    assert_eq!(admin.json("auditor", "GET", "/openapi.json", None), document("admin"));
    // The api listener: TLS without a client certificate.
    let cacert = ca.config_path.parent().unwrap().join("tls/operator-ca.pem");
    let url = format!("https://localhost:{}/openapi.json", ca.config.listeners.api.port());
    let out = run("curl", &["-sf", "--noproxy", "*", "--cacert", cacert.to_str().unwrap(), &url]);
    assert!(out.ok, "{}", out.text);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out.text).unwrap(), document("api"));
}

/// schemathesis from the admin document, as the operator and as the auditor, bounded in
/// examples and time; the script fails on any 5xx or unanswered request.
#[tokio::test(flavor = "multi_thread")]
async fn fuzzing_the_admin_api_finds_no_server_error() {
    let ca = TestCa::new().await;
    let _daemon = Daemon::start(&ca).await;
    // Real objects for the path parameters to reach.
    for i in 0..3 {
        issue_cli(&ca, &format!("fuzz{i}"), "org", ORG_SUBJECT);
    }
    let admin = Admin::new(&ca);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("scripts/fuzz-api.sh");
    let spec = root.join("openapi/admin.json");
    let cacert = ca.config_path.parent().unwrap().join("tls/operator-ca.pem");
    let url = format!("https://127.0.0.1:{}", ca.config.listeners.admin.port());
    for (role, examples) in [("operator", "15"), ("auditor", "5")] {
        let (cert, key) = admin.credentials(role);
        let args = [spec.to_str().unwrap(), &url, &cert, &key, cacert.to_str().unwrap(), examples, "240"];
        let out = run(script.to_str().unwrap(), &args);
        assert!(out.ok, "schemathesis as {role} found failures:\n{}", out.text);
    }
    // The chain survived every request.
    assert_eq!(admin.json("auditor", "GET", "/v1/audit/verify", None)["intact"], true);
}
