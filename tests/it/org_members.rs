//! Organisation membership, seals and the administrator hand-over at the service level (no
//! listener): what their audit entries say about the people involved, and the hand-over
//! acceptance racing a removal. The check of an acceptance code and the write it authorises
//! are separate calls here, so a removal can be put exactly between them.

use cloudca::daemon::Instance;
use cloudca::mobile::LoginError;
use cloudca::ra::{NewAdministrator, RaError};
use cloudca::store::{AuditQuery, AuditRecord};

use crate::common::*;
use crate::ra::{AGENT, AGENT_ID, CREDIT};
use crate::ra_services::services_ca;

/// A member made seal administrator, who is then handed the administrator role.
const STAFF: &str = "+8613600136000";
/// A member made staff, allowed a seal, then removed.
const OUTSIDER: &str = "+8613500135000";

/// The organisation with `AGENT` as its certificate administrator (as enrolling its
/// organisation certificate makes them).
async fn organisation(instance: &Instance) {
    let clock = cloudca::clock::SystemClock;
    let claimed =
        AuditRecord::new(&clock, "org.admin.claimed", "enrolment", None, serde_json::json!({ "org": CREDIT }));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(instance.store.claim_org_admin(CREDIT, AGENT, now, &claimed).await.unwrap());
}

/// `AGENT` offers the administrator role to `STAFF` (the carrier check passes in the sandbox);
/// the acceptance code texted to `STAFF`.
async fn offer_to_staff(ca: &TestCa, instance: &Instance) -> String {
    let to = NewAdministrator { phone: STAFF, name: "王五", id_number: AGENT_ID };
    instance.ra.offer_hand_over(AGENT, CREDIT, &to).await.unwrap();
    last_code(ca, STAFF)
}

/// A six-digit code that is not `code`.
fn other_than(code: &str) -> &'static str {
    if code == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// Every audit entry's detail, with its kind and actor.
async fn audit_rows(instance: &Instance) -> Vec<(String, String, String)> {
    let query = AuditQuery { limit: 10_000, ..Default::default() };
    let entries = instance.store.audit_events(&query).await.unwrap();
    entries.into_iter().map(|e| (e.record.kind, e.record.actor, e.record.detail)).collect()
}

/// Review finding: `org.member.set`, `seal.user.set` and `org.admin.handed_over` wrote the
/// member's whole phone into the audit detail (and a failed hand-over code the offering
/// administrator's), while other entries masked it. Every seal and membership operation is
/// done here, and no audit detail may hold anyone's whole number; the actor (who acted) stays
/// whole.
#[tokio::test(flavor = "multi_thread")]
async fn seal_and_membership_audit_details_hold_no_whole_phone_number() {
    let ca = services_ca().await;
    let instance = ca.open().await;
    organisation(&instance).await;
    let seals = &instance.seals;
    seals.set_member(AGENT, CREDIT, STAFF, "seal-admin").await.unwrap();
    seals.set_member(AGENT, CREDIT, OUTSIDER, "staff").await.unwrap();
    let png = cloudca::signing::qr::render_png("合同专用章", 2).unwrap();
    let request = seals.request(STAFF, CREDIT, "合同专用章", png, None).await.unwrap();
    let seal = seals.decide("reviewer", &request.id, true).await.unwrap().unwrap();
    seals.set_seal_user(STAFF, CREDIT, &seal, OUTSIDER, true).await.unwrap();
    seals.set_seal_user(STAFF, CREDIT, &seal, OUTSIDER, false).await.unwrap();
    seals.remove_member(AGENT, CREDIT, OUTSIDER).await.unwrap();
    let code = offer_to_staff(&ca, &instance).await;
    let wrong = instance.ra.accept_hand_over(STAFF, CREDIT, AGENT, other_than(&code)).await;
    assert!(matches!(wrong, Err(RaError::Code(LoginError::BadCode))), "{wrong:?}");
    instance.ra.accept_hand_over(STAFF, CREDIT, AGENT, &code).await.unwrap();
    assert_eq!(instance.store.org_role(CREDIT, STAFF).await.unwrap().as_deref(), Some("admin"));

    let rows = audit_rows(&instance).await;
    for kind in [
        "org.member.set",
        "seal.requested",
        "seal.decided",
        "seal.user.set",
        "org.member.removed",
        "org.admin.hand_over_offered",
        "sms.code_failed",
        "org.admin.handed_over",
    ] {
        assert!(rows.iter().any(|(k, _, _)| k == kind), "{kind} was audited: {rows:?}");
    }
    for (kind, _, detail) in &rows {
        for phone in [AGENT, STAFF, OUTSIDER] {
            let national = &phone[3..];
            assert!(!detail.contains(national), "{kind} names {phone} whole: {detail}");
        }
    }
    // Each masked phone still tells the members apart (the last four digits).
    let member_set: Vec<_> = rows.iter().filter(|(k, _, _)| k == "org.member.set").collect();
    assert!(
        member_set.iter().any(|(_, _, d)| d.contains("6000")) && member_set.iter().any(|(_, _, d)| d.contains("5000"))
    );
    // Who acted is named whole: accountability.
    let actor = &member_set[0].1;
    assert_eq!(actor, &format!("phone:{AGENT}"), "the actor stays whole");
}

/// Review finding: an acceptance whose code was checked in the instant before the member's
/// removal committed still moved the role (the removal withdrew a code already spent by the
/// check, and the write did not look again): the removed member came back as the
/// administrator. The code is checked, the member removed, then the write is driven: refused
/// as a wrong code is, nothing moved. The same steps without the removal move the role.
#[tokio::test(flavor = "multi_thread")]
async fn a_hand_over_code_checked_before_the_members_removal_commits_moves_nothing() {
    let ca = services_ca().await;
    let instance = ca.open().await;
    organisation(&instance).await;
    instance.seals.set_member(AGENT, CREDIT, STAFF, "staff").await.unwrap();
    let code = offer_to_staff(&ca, &instance).await;
    let checked = instance.ra.check_hand_over_code(STAFF, CREDIT, AGENT, &code).await.unwrap();

    instance.seals.remove_member(AGENT, CREDIT, STAFF).await.unwrap();
    let refused = instance.ra.complete_hand_over(STAFF, CREDIT, AGENT, checked).await;
    assert!(matches!(refused, Err(RaError::Code(LoginError::BadCode))), "as a wrong code: {refused:?}");
    assert_eq!(instance.store.org_role(CREDIT, AGENT).await.unwrap().as_deref(), Some("admin"));
    assert_eq!(instance.store.org_role(CREDIT, STAFF).await.unwrap(), None, "the removed member stays removed");
    assert_eq!(instance.store.count_audit_events("org.admin.handed_over").await.unwrap(), 0);
    // The refusal is audited as a code used meanwhile.
    let rows = audit_rows(&instance).await;
    assert!(rows.iter().any(|(k, _, d)| k == "sms.code_failed" && d.contains("used meanwhile")), "{rows:?}");
    // The code cannot be checked again either.
    let again = instance.ra.check_hand_over_code(STAFF, CREDIT, AGENT, &code).await;
    assert!(matches!(again, Err(RaError::Code(LoginError::BadCode))), "{again:?}");

    // Without a removal in between, the same two steps move the role.
    instance.seals.set_member(AGENT, CREDIT, STAFF, "staff").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let code = offer_to_staff(&ca, &instance).await;
    let checked = instance.ra.check_hand_over_code(STAFF, CREDIT, AGENT, &code).await.unwrap();
    instance.ra.complete_hand_over(STAFF, CREDIT, AGENT, checked).await.unwrap();
    assert_eq!(instance.store.org_role(CREDIT, STAFF).await.unwrap().as_deref(), Some("admin"));
    assert_eq!(instance.store.org_role(CREDIT, AGENT).await.unwrap().as_deref(), Some("staff"));
}

/// `GET /v1/mobile/orgs` lists each seal's users for administrators; the store gives them for
/// the whole organisation in one query (it was one query per seal). The query returns exactly
/// this organisation's grants, by seal then phone, and none of another organisation's seal.
#[tokio::test(flavor = "multi_thread")]
async fn an_organisations_seal_users_come_in_one_query_by_seal_and_phone() {
    let ca = services_ca().await;
    let instance = ca.open().await;
    organisation(&instance).await;
    let seals = &instance.seals;
    seals.set_member(AGENT, CREDIT, STAFF, "staff").await.unwrap();
    seals.set_member(AGENT, CREDIT, OUTSIDER, "staff").await.unwrap();
    let mut ids = Vec::new();
    for name in ["公章", "合同专用章", "财务专用章"] {
        let png = cloudca::signing::qr::render_png(name, 2).unwrap();
        let request = seals.request(AGENT, CREDIT, name, png, None).await.unwrap();
        ids.push(seals.decide("reviewer", &request.id, true).await.unwrap().unwrap());
    }
    for (seal, phone) in [(&ids[0], OUTSIDER), (&ids[0], STAFF), (&ids[2], AGENT)] {
        seals.set_seal_user(AGENT, CREDIT, seal, phone, true).await.unwrap();
    }
    // Another organisation's seal and grant (written directly: it has no administrator here).
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&ca.config.database.url).await.unwrap();
    sqlx::query("INSERT INTO seals (id, credit_code, name, png, status, updated_at) VALUES ('seal-x', '91110000802100433B', 'x', $1, 'active', 0)")
        .bind(cloudca::signing::qr::render_png("x", 2).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO seal_users (seal_id, phone, granted_by, granted_at) VALUES ('seal-x', $1, 'x', 0)")
        .bind(STAFF)
        .execute(&pool)
        .await
        .unwrap();

    let mut expected = vec![
        (ids[0].clone(), OUTSIDER.to_string()),
        (ids[0].clone(), STAFF.to_string()),
        (ids[2].clone(), AGENT.to_string()),
    ];
    expected.sort();
    assert_eq!(instance.store.seal_users_of(CREDIT).await.unwrap(), expected);
}
