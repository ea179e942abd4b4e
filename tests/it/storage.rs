//! Storage behaviour that must hold on SQLite and PostgreSQL alike (the suite runs on both).

use crate::common::*;
use cloudca::store::{AuditRecord, NewCertificate, Reservation, StoreError, Write};

#[tokio::test(flavor = "multi_thread")]
async fn a_reserved_serial_cannot_be_reserved_twice() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let writer = instance.store.writer(16);
    let reservation =
        Reservation { serial: "0102030405060708".into(), issuer: "org".into(), profile: "org".into(), reserved_at: 0 };
    writer.write(Write::Reserve(vec![reservation.clone()])).await.unwrap();
    // Batched with a good write, the duplicate fails alone and the good one still lands.
    let other = Reservation { serial: "0a0b".into(), ..reservation.clone() };
    let (a, b) =
        tokio::join!(writer.write(Write::Reserve(vec![reservation])), writer.write(Write::Reserve(vec![other])));
    assert!(matches!(a, Err(StoreError::Duplicate(_))), "{a:?}");
    b.expect("the neighbour of a failed write is committed");
    assert_eq!(instance.store.count_serials().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_without_a_reserved_serial_is_refused_and_its_audit_event_too() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let writer = instance.store.writer(16);
    let certificate = NewCertificate {
        serial: "0badc0de".into(),
        issuer: "org".into(),
        profile: "org".into(),
        subject: "CN=x".into(),
        identifier: None,
        not_before: 0,
        not_after: 1,
        der: vec![0x30, 0x00],
        fingerprint: "00".into(),
        crl_shard: 0,
    };
    let audit = AuditRecord {
        at: 0,
        kind: "certificate.issued".into(),
        actor: "test".into(),
        serial: Some("0badc0de".into()),
        detail: "{}".into(),
    };
    let err = writer.write(Write::Issue { certificate, audit }).await.expect_err("no reservation");
    assert!(matches!(err, StoreError::NotReserved), "{err:?}");
    assert_eq!(instance.store.count_certificates("issued").await.unwrap(), 0);
    assert_eq!(instance.store.count_audit_events("certificate.issued").await.unwrap(), 0, "no half-written record");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backend_under_test_is_the_one_requested() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let expected =
        if postgres_under_test() { cloudca::store::Backend::Postgres } else { cloudca::store::Backend::Sqlite };
    assert_eq!(instance.store.backend(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn text_the_database_cannot_hold_is_the_request_s_fault_not_a_server_error() {
    use axum::response::IntoResponse;
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    // PostgreSQL refuses a NUL in text even in a comparison; SQLite stores and compares it.
    match instance.store.order("ord\0x").await {
        Ok(found) => {
            assert!(!postgres_under_test(), "PostgreSQL accepted a NUL");
            assert!(found.is_none());
        }
        Err(err) => {
            assert!(postgres_under_test(), "SQLite refused a NUL: {err:?}");
            assert!(err.is_bad_value() && !err.is_unavailable(), "{err:?}");
            let response = cloudca::api::problem::Problem::internal(&err).into_response();
            assert_eq!(response.status(), 400, "a client error, not a 500");
        }
    }
}

/// A seal grant racing the removal of its member (PostgreSQL, where both run at once; SQLite
/// serialises writers): the removal has deleted the member and their grants but not committed
/// when the grant runs. The grant waits for the removal and then finds no member: nothing is
/// written, so the removed phone keeps no grant to use again if it is ever added back.
#[tokio::test(flavor = "multi_thread")]
async fn a_seal_grant_racing_the_members_removal_leaves_no_grant() {
    use sqlx::Connection;
    const PHONE: &str = "+8613600136000";
    const GRANTER: &str = "+8613700137000";
    if !postgres_under_test() {
        return;
    }
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let url = ca.config.database.url.clone();
    let mut setup = sqlx::PgConnection::connect(&url).await.unwrap();
    members_of_cc(&mut setup, &[(PHONE, "staff"), (GRANTER, "seal-admin")]).await;
    sqlx::query("INSERT INTO seals (id, credit_code, name, png, status, updated_at) VALUES ('seal-r', 'CC', 'x', $1, 'active', 0)")
        .bind(vec![0u8])
        .execute(&mut setup)
        .await
        .unwrap();
    // The removal, as `Store::remove_member` runs it, up to its commit.
    let mut removal = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = removal.begin().await.unwrap();
    sqlx::query("DELETE FROM org_members WHERE credit_code = 'CC' AND phone = $1")
        .bind(PHONE)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM seal_users WHERE phone = $1").bind(PHONE).execute(&mut *tx).await.unwrap();
    let store = instance.store.clone();
    let grant = tokio::spawn(async move {
        let audit = AuditRecord {
            at: 0,
            kind: "seal.user.set".into(),
            actor: "test".into(),
            serial: None,
            detail: "{}".into(),
        };
        store.set_seal_user("CC", "seal-r", PHONE, true, GRANTER, 0, &audit).await
    });
    // The grant has either finished or is waiting for a lock the removal holds.
    finished_or_waiting_on_a_lock(&mut setup, &grant).await;
    tx.commit().await.unwrap();
    let granted = grant.await.unwrap().unwrap();
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM seal_users WHERE phone = $1")
        .bind(PHONE)
        .fetch_one(&mut setup)
        .await
        .unwrap();
    assert_eq!((granted, left), (cloudca::store::MemberWrite::Refused, 0), "the removed member holds no grant");
}

/// Review finding (PostgreSQL, where writers run at once): the services check the acting
/// administrator's role before the removal's transaction, and the removal took no lock on
/// their row, so a removal checked while a hand-over was moving the role away committed after
/// it: a former administrator removed a member. Here the hand-over has demoted the
/// administrator but not committed when the removal runs; the removal waits for it and then
/// finds its actor no longer the administrator: nothing removed.
#[tokio::test(flavor = "multi_thread")]
async fn a_removal_racing_the_hand_over_of_its_administrators_role_removes_nothing() {
    use sqlx::Connection;
    const ADMIN: &str = "+8613600136000";
    const MEMBER: &str = "+8613700137000";
    const NEW_ADMIN: &str = "+8613800138000";
    if !postgres_under_test() {
        return;
    }
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let url = ca.config.database.url.clone();
    let mut setup = sqlx::PgConnection::connect(&url).await.unwrap();
    members_of_cc(&mut setup, &[(ADMIN, "admin"), (MEMBER, "staff")]).await;
    // The hand-over, as `Store::hand_over_admin` runs it, up to its commit.
    let mut hand_over = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = hand_over.begin().await.unwrap();
    sqlx::query("UPDATE org_members SET role = 'staff' WHERE credit_code = 'CC' AND phone = $1")
        .bind(ADMIN)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO org_members (credit_code, phone, role, added_by, added_at) VALUES ('CC', $1, 'admin', $2, 0)",
    )
    .bind(NEW_ADMIN)
    .bind(ADMIN)
    .execute(&mut *tx)
    .await
    .unwrap();
    let store = instance.store.clone();
    let removal = tokio::spawn(async move {
        let audit = AuditRecord {
            at: 0,
            kind: "org.member.removed".into(),
            actor: format!("phone:{ADMIN}"),
            serial: None,
            detail: "{}".into(),
        };
        store.remove_member("CC", ADMIN, MEMBER, "admin-hand-over:CC/x", &audit).await
    });
    // The removal has either finished or is waiting for a lock the hand-over holds.
    finished_or_waiting_on_a_lock(&mut setup, &removal).await;
    tx.commit().await.unwrap();
    let removed = removal.await.unwrap().unwrap();
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM org_members WHERE phone = $1")
        .bind(MEMBER)
        .fetch_one(&mut setup)
        .await
        .unwrap();
    assert_eq!((removed, left), (cloudca::store::MemberWrite::NotAllowed, 1), "the member stays");
}

/// Returns once `task` has finished or some session of this database waits on a lock, polling
/// every 20 ms for at most 10 s (then the test fails: the write neither ran nor waited).
async fn finished_or_waiting_on_a_lock<T>(setup: &mut sqlx::PgConnection, task: &tokio::task::JoinHandle<T>) {
    for _ in 0..500 {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *setup)
        .await
        .unwrap();
        if task.is_finished() || waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the racing write neither finished nor waited on a lock within 10 s");
}

/// Puts `members` (phone, role) into the organisation `CC`, as the set-up of a race test.
async fn members_of_cc(setup: &mut sqlx::PgConnection, members: &[(&str, &str)]) {
    for (phone, role) in members {
        sqlx::query(
            "INSERT INTO org_members (credit_code, phone, role, added_by, added_at) VALUES ('CC', $1, $2, 't', 0)",
        )
        .bind(*phone)
        .bind(*role)
        .execute(&mut *setup)
        .await
        .unwrap();
    }
}
