//! Organisation membership, seals and the administrator hand-over at the service level (no
//! listener): what their audit entries say about the people involved, and the hand-over
//! acceptance racing a removal. The check of an acceptance code and the write it authorises
//! are separate calls here, so a removal can be put exactly between them.

use cloudca::daemon::Instance;
use cloudca::mobile::LoginError;
use cloudca::ra::{NewAdministrator, RaError};
use cloudca::seals::SealError;
use cloudca::store::{AuditQuery, AuditRecord, MemberWrite, SealRequestRecord};

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

/// The organisation with STAFF as seal administrator, OUTSIDER as staff, and one active seal
/// that `requester` asked for and a reviewer approved: its id.
async fn staffed_with_a_seal(instance: &Instance, requester: &str) -> String {
    organisation(instance).await;
    let seals = &instance.seals;
    seals.set_member(AGENT, CREDIT, STAFF, "seal-admin").await.unwrap();
    seals.set_member(AGENT, CREDIT, OUTSIDER, "staff").await.unwrap();
    let png = cloudca::signing::qr::render_png("合同专用章", 2).unwrap();
    let request = seals.request(requester, CREDIT, "合同专用章", png, None).await.unwrap();
    seals.decide("reviewer", &request.id, true).await.unwrap().unwrap()
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
    let seals = &instance.seals;
    let seal = staffed_with_a_seal(&instance, STAFF).await;
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

/// An audit record as the services write one, for driving the store directly.
fn record(kind: &str, actor: &str) -> AuditRecord {
    AuditRecord::new(&cloudca::clock::SystemClock, kind, &format!("phone:{actor}"), None, serde_json::json!({}))
}

/// Review finding: `Seals::set_member`, `remove_member`, `set_seal_user` and `request` checked
/// the acting phone's role before, outside, the transaction that writes: an administrator
/// whose role moved, or a seal administrator removed or demoted, between that check and the
/// write still removed or added members, granted seals or filed a seal request (which stayed
/// pending, the removal's rejection having run before it). The check passes, the role moves,
/// then the write runs: here the store is driven as the services drive it after their check,
/// by the phone that lost the role, and must write nothing. The new administrator's same
/// writes go through.
#[tokio::test(flavor = "multi_thread")]
async fn a_phone_that_lost_its_role_after_the_check_writes_nothing() {
    let ca = services_ca().await;
    let instance = ca.open().await;
    let seal = staffed_with_a_seal(&instance, AGENT).await;
    // The administrator role moves from AGENT to STAFF: AGENT is staff from now on.
    let code = offer_to_staff(&ca, &instance).await;
    instance.ra.accept_hand_over(STAFF, CREDIT, AGENT, &code).await.unwrap();
    assert_eq!(instance.store.org_role(CREDIT, AGENT).await.unwrap().as_deref(), Some("staff"));

    let store = &instance.store;
    let scope = cloudca::ra::hand_over_code_scope(CREDIT, AGENT);
    let audit = record("org.member.removed", AGENT);
    let removed = store.remove_member(CREDIT, AGENT, OUTSIDER, &scope, &audit).await.unwrap();
    assert_eq!(removed, MemberWrite::NotAllowed);
    let audit = record("org.member.set", AGENT);
    let set = store.set_member(CREDIT, OUTSIDER, "seal-admin", AGENT, 0, &audit).await.unwrap();
    assert_eq!(set, MemberWrite::NotAllowed);
    let audit = record("seal.user.set", AGENT);
    let granted = store.set_seal_user(CREDIT, &seal, OUTSIDER, true, AGENT, 0, &audit).await.unwrap();
    assert_eq!(granted, MemberWrite::NotAllowed);
    let filed = SealRequestRecord {
        id: "late-request".into(),
        credit_code: CREDIT.into(),
        seal_id: None,
        name: "公章".into(),
        png: cloudca::signing::qr::render_png("公章", 2).unwrap(),
        requested_by: AGENT.into(),
        status: "pending".into(),
        created_at: 0,
    };
    assert_eq!(
        store.insert_seal_request(&filed, &record("seal.requested", AGENT)).await.unwrap(),
        MemberWrite::NotAllowed
    );

    assert_eq!(store.org_role(CREDIT, OUTSIDER).await.unwrap().as_deref(), Some("staff"), "nothing changed");
    assert!(!store.seal_user_allowed(&seal, OUTSIDER).await.unwrap());
    assert!(store.seal_request("late-request").await.unwrap().is_none());
    let by_agent = audit_rows(&instance).await.into_iter().filter(|(k, a, _)| {
        a == &format!("phone:{AGENT}")
            && ["org.member.removed", "seal.user.set", "seal.requested"].contains(&k.as_str())
    });
    assert_eq!(by_agent.count(), 1, "only the seal request AGENT made as administrator is audited");

    // The new administrator's same writes go through.
    let audit = record("org.member.set", STAFF);
    let set = store.set_member(CREDIT, OUTSIDER, "seal-admin", STAFF, 0, &audit).await.unwrap();
    assert_eq!(set, MemberWrite::Written);
    let audit = record("seal.user.set", STAFF);
    let granted = store.set_seal_user(CREDIT, &seal, OUTSIDER, true, STAFF, 0, &audit).await.unwrap();
    assert_eq!(granted, MemberWrite::Written);
    let scope = cloudca::ra::hand_over_code_scope(CREDIT, STAFF);
    let audit = record("org.member.removed", STAFF);
    let removed = store.remove_member(CREDIT, STAFF, OUTSIDER, &scope, &audit).await.unwrap();
    assert_eq!(removed, MemberWrite::Written);
    assert_eq!(store.org_role(CREDIT, OUTSIDER).await.unwrap(), None);
}

/// Review finding: a removal rejected the removed member's undecided seal requests, but a seal
/// administrator demoted to staff, or an administrator who handed the role over, kept theirs
/// pending, and a reviewer could still approve an image onto the organisation's seal that
/// nobody who may ask for seals stood behind. Both lose their pending requests with the role
/// (`member-demoted`); a seal administrator who stays one keeps theirs.
#[tokio::test(flavor = "multi_thread")]
async fn seal_requests_of_a_phone_that_lost_the_role_can_no_longer_be_approved() {
    let ca = services_ca().await;
    let instance = ca.open().await;
    organisation(&instance).await;
    let seals = &instance.seals;
    seals.set_member(AGENT, CREDIT, STAFF, "seal-admin").await.unwrap();
    seals.set_member(AGENT, CREDIT, OUTSIDER, "seal-admin").await.unwrap();
    let png = || cloudca::signing::qr::render_png("合同专用章", 2).unwrap();
    let of_admin = seals.request(AGENT, CREDIT, "公章", png(), None).await.unwrap();
    let of_outsider = seals.request(OUTSIDER, CREDIT, "财务专用章", png(), None).await.unwrap();
    let of_staff = seals.request(STAFF, CREDIT, "合同专用章", png(), None).await.unwrap();

    seals.set_member(AGENT, CREDIT, OUTSIDER, "staff").await.unwrap();
    let code = offer_to_staff(&ca, &instance).await;
    instance.ra.accept_hand_over(STAFF, CREDIT, AGENT, &code).await.unwrap();

    for (request, whose) in [(&of_outsider, "a demoted seal administrator"), (&of_admin, "the former administrator")] {
        let decided = seals.decide("reviewer", &request.id, true).await;
        assert!(matches!(decided, Err(SealError::NotFound)), "{whose}'s request: {decided:?}");
        let stored = instance.store.seal_request(&request.id).await.unwrap().unwrap();
        assert_eq!(stored.status, "rejected", "{whose}'s request");
    }
    assert!(instance.store.seals_of(CREDIT).await.unwrap().is_empty(), "no seal came of them");
    // STAFF administers seals still (now as the administrator): their request stands.
    assert!(seals.decide("reviewer", &of_staff.id, true).await.unwrap().is_some());
}
