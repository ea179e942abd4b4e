//! Storage behaviour that must hold on SQLite and PostgreSQL alike (the suite runs on both).

use crate::common::*;
use cloudca::store::{Reservation, StoreError, Write};

#[tokio::test(flavor = "multi_thread")]
async fn a_reserved_serial_cannot_be_reserved_twice() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let writer = instance.store.writer(16);
    let reservation = Reservation {
        serial: "0102030405060708".into(),
        issuer: "org".into(),
        profile: "org".into(),
        subject: "CN=x".into(),
        identifier: None,
        reserved_at: 0,
    };
    writer.write(Write::Reserve(reservation.clone())).await.unwrap();
    // Batched with a good write, the duplicate fails alone and the good one still lands.
    let other = Reservation { serial: "0a0b".into(), ..reservation.clone() };
    let (a, b) = tokio::join!(writer.write(Write::Reserve(reservation)), writer.write(Write::Reserve(other)));
    assert!(matches!(a, Err(StoreError::Duplicate(_))), "{a:?}");
    b.expect("the neighbour of a failed write is committed");
    assert_eq!(instance.store.count_certificates("reserved").await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backend_under_test_is_the_one_requested() {
    let ca = TestCa::new().await;
    let instance = ca.open().await;
    let expected = if std::env::var("CLOUDCA_TEST_POSTGRES").is_ok_and(|v| !v.is_empty()) {
        cloudca::store::Backend::Postgres
    } else {
        cloudca::store::Backend::Sqlite
    };
    assert_eq!(instance.store.backend(), expected);
}
