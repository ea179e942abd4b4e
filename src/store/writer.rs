//! Group commit: one task owns the write path and commits whatever writes are waiting in a
//! single transaction. A durable commit costs an fsync (SQLite `synchronous=FULL`, PostgreSQL
//! WAL flush); sharing it across a batch is what lets issuance keep up with the HSM. Every
//! caller still gets its own answer only after its write is durable.
//!
//! If a batch fails (say one serial collides), the batch is rolled back and its writes are
//! replayed one transaction each, so one bad write never fails its neighbours.

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{Reservation, StoreError};
use crate::metrics;

/// An audit event to append.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// Unix milliseconds.
    pub at: i64,
    /// Event kind, e.g. `certificate.issued`.
    pub kind: String,
    /// Who caused it.
    pub actor: String,
    /// The certificate concerned, if any.
    pub serial: Option<String>,
    /// JSON details (never secrets).
    pub detail: String,
}

/// A write the writer task performs.
#[derive(Debug, Clone)]
pub enum Write {
    /// Issuance step 2: the serial row, before signing.
    Reserve(Reservation),
    /// Issuance step 5: the signed certificate replaces the reservation, with its audit event.
    Issue {
        /// The reserved serial.
        serial: String,
        /// Certificate DER.
        der: Vec<u8>,
        /// SHA-256 fingerprint, hex.
        fingerprint: String,
        /// Unix seconds.
        not_before: i64,
        /// Unix seconds.
        not_after: i64,
        /// The audit event committed in the same transaction.
        audit: AuditRecord,
    },
    /// A standalone audit event.
    Audit(AuditRecord),
}

type Request = (Write, oneshot::Sender<Result<(), StoreError>>);

/// Handle to the group-commit task. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    /// Queue into the writer task.
    tx: mpsc::Sender<Request>,
}

impl Writer {
    /// Spawns the writer task on the current runtime.
    pub(crate) fn start(pool: AnyPool, max_batch: usize) -> Writer {
        let (tx, rx) = mpsc::channel(max_batch * 4);
        tokio::spawn(run(pool, rx, max_batch));
        Writer { tx }
    }

    /// Queues a write and waits until it is durable.
    pub async fn write(&self, write: Write) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((write, tx)).await.map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<Request>, max_batch: usize) {
    let mut batch: Vec<Request> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        metrics::get().db_batch_size.observe(batch.len() as f64);
        match commit_batch(&pool, &batch).await {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = batch.len(), "batch commit failed; replaying writes one by one");
                for (write, reply) in batch.drain(..) {
                    let result = commit_batch(&pool, std::slice::from_ref(&(write, oneshot::channel().0))).await;
                    let _ = reply.send(result);
                }
            }
        }
    }
}

async fn commit_batch(pool: &AnyPool, batch: &[Request]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for (write, _) in batch {
        apply(&mut tx, write).await.map_err(StoreError::classify)?;
    }
    tx.commit().await?;
    Ok(())
}

async fn apply(tx: &mut Transaction<'static, Any>, write: &Write) -> Result<(), sqlx::Error> {
    match write {
        Write::Reserve(r) => {
            sqlx::query(
                "INSERT INTO certificates (serial, issuer, profile, status, subject, identifier, reserved_at) \
                 VALUES ($1, $2, $3, 'reserved', $4, $5, $6)",
            )
            .bind(&r.serial)
            .bind(&r.issuer)
            .bind(&r.profile)
            .bind(&r.subject)
            .bind(&r.identifier)
            .bind(r.reserved_at)
            .execute(&mut **tx)
            .await?;
        }
        Write::Issue { serial, der, fingerprint, not_before, not_after, audit } => {
            let done = sqlx::query(
                "UPDATE certificates SET status = 'issued', der = $1, fingerprint = $2, not_before = $3, not_after = $4 \
                 WHERE serial = $5 AND status = 'reserved'",
            )
            .bind(der)
            .bind(fingerprint)
            .bind(*not_before)
            .bind(*not_after)
            .bind(serial)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(sqlx::Error::RowNotFound);
            }
            insert_audit(tx, audit).await?;
        }
        Write::Audit(a) => insert_audit(tx, a).await?,
    }
    Ok(())
}

async fn insert_audit(tx: &mut Transaction<'static, Any>, a: &AuditRecord) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_events (at, kind, actor, serial, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(a.at)
        .bind(&a.kind)
        .bind(&a.actor)
        .bind(&a.serial)
        .bind(&a.detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
