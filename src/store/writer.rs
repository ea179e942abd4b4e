//! Group commit: one task owns the write path and commits whatever writes are waiting in a
//! single transaction. A durable commit costs an fsync (SQLite `synchronous=FULL`, PostgreSQL
//! WAL flush); sharing it across a batch is what lets issuance keep up with the HSM. Every
//! caller still gets its own answer only after its write is durable.
//!
//! If a batch fails (say one serial collides), the batch is rolled back and its writes are
//! replayed one transaction each, so one bad write never fails its neighbours.

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection as _, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{Backend, NewCertificate, Reservation, StoreError};
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

impl AuditRecord {
    /// An event stamped now by `clock`; the detail is JSON and never holds a secret. The one
    /// constructor every service uses, so timestamps and encoding cannot drift between them.
    pub fn new(
        clock: &dyn crate::clock::Clock,
        kind: &str,
        actor: &str,
        serial: Option<&str>,
        detail: serde_json::Value,
    ) -> AuditRecord {
        AuditRecord {
            at: clock.now().unix_timestamp() * 1000,
            kind: kind.into(),
            actor: actor.into(),
            serial: serial.map(str::to_string),
            detail: detail.to_string(),
        }
    }
}

/// A write the writer task performs.
#[derive(Debug, Clone)]
pub enum Write {
    /// Issuance step 2: serial rows, before anything is signed with them (a block reserved
    /// ahead of need, see `ca::reserve`).
    Reserve(Vec<Reservation>),
    /// Issuance step 5: the signed certificate, with its audit event in the same transaction.
    Issue {
        /// The certificate row.
        certificate: NewCertificate,
        /// The audit event.
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
    /// Starts the writer on a thread of its own, driven through the current runtime's handle
    /// (its I/O and timers stay with that runtime). On a busy 2-core box a writer task queued
    /// behind hundreds of issuance tasks waited its turn after every statement; the commit
    /// path is the one everybody waits on, so it does not queue.
    pub(crate) fn start(pool: AnyPool, backend: Backend, max_batch: usize) -> Writer {
        let (tx, rx) = mpsc::channel(max_batch * 4);
        let task = run(Connection { pool, backend, held: None }, rx, max_batch);
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("cloudca-writer".into())
            .spawn(move || runtime.block_on(task))
            .expect("thread");
        Writer { tx }
    }

    /// Queues a write and waits until it is durable.
    pub async fn write(&self, write: Write) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((write, tx)).await.map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// The writer's own connection, kept from one batch to the next while writes keep coming: on
/// SQLite its page cache stays warm (a connection's cache is dropped whenever another
/// connection wrote), and no pool hand-over or liveness ping is paid per batch. It goes back
/// to the pool whenever the queue is empty, so closing the pool (graceful shutdown) never
/// waits on it, and after a failure because the database went away a fresh one is taken.
struct Connection {
    pool: AnyPool,
    backend: Backend,
    held: Option<PoolConnection<Any>>,
}

impl Connection {
    async fn commit(&mut self, writes: &[&Write]) -> Result<(), StoreError> {
        let conn = match &mut self.held {
            Some(conn) => conn,
            None => self.held.insert(self.pool.acquire().await?),
        };
        let done = commit(conn, self.backend, writes).await;
        if done.as_ref().is_err_and(StoreError::is_unavailable) {
            self.held = None;
        }
        done
    }
}

async fn run(mut conn: Connection, mut rx: mpsc::Receiver<Request>, max_batch: usize) {
    let mut batch: Vec<Request> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        metrics::get().db_batch_size.observe(batch.len() as f64);
        let writes: Vec<&Write> = batch.iter().map(|(w, _)| w).collect();
        let timer = metrics::get().db_commit_seconds.start_timer();
        let done = conn.commit(&writes).await;
        timer.observe_duration();
        match done {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) if batch.len() > 1 && !e.is_unavailable() => {
                tracing::warn!(error = %e, rows = batch.len(), "batch commit failed; replaying writes one by one");
                for (write, reply) in batch.drain(..) {
                    let _ = reply.send(conn.commit(&[&write]).await);
                }
            }
            Err(e) => {
                // A batch of one, or the database is away (replaying row by row would only
                // make every caller wait again): every caller gets the error at once.
                let text = e.to_string();
                let mut first = Some(e);
                for (_, reply) in batch.drain(..) {
                    let err = first.take().unwrap_or_else(|| StoreError::Unavailable(text.clone()));
                    let _ = reply.send(Err(err));
                }
            }
        }
        if rx.is_empty() {
            conn.held = None;
        }
    }
}

/// Rows per multi-row statement: a whole batch (`issuance.max_batch`, 256 by default) in one
/// statement per kind, since every statement is a round trip to the connection's thread.
/// 256 rows of 11 columns bind 2,816 values, far below SQLite's 32,766 and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 256;

/// Commits the writes in one transaction, one multi-row statement per kind and chunk.
async fn commit(conn: &mut PoolConnection<Any>, backend: Backend, writes: &[&Write]) -> Result<(), StoreError> {
    let mut reservations = Vec::new();
    let mut issues = Vec::new();
    let mut audits = Vec::new();
    for w in writes {
        match w {
            Write::Reserve(rows) => reservations.extend(rows),
            Write::Issue { certificate, audit } => {
                issues.push(certificate);
                audits.push(audit);
            }
            Write::Audit(a) => audits.push(a),
        }
    }
    let mut tx = conn.begin().await?;
    for chunk in reservations.chunks(ROWS_PER_STATEMENT) {
        insert_reservations(&mut tx, backend, chunk).await.map_err(StoreError::classify)?;
    }
    for chunk in issues.chunks(ROWS_PER_STATEMENT) {
        insert_certificates(&mut tx, backend, chunk).await.map_err(StoreError::classify)?;
    }
    for chunk in audits.chunks(ROWS_PER_STATEMENT) {
        insert_audits_as(&mut tx, backend, chunk).await.map_err(StoreError::classify)?;
    }
    super::audit::commit(tx, audits.len()).await
}

/// `($1, $2, ...), ($k, ...)` for `rows` rows of `columns` placeholders, with optional literal
/// columns appended after the bound ones. On SQLite the placeholders are anonymous (`?`):
/// binding a numbered one makes SQLite look its name up in a list as long as the statement's
/// parameters, so a 700-parameter insert cost a quarter of a million steps just to bind
/// (about 6 % of the issuance path's CPU in a `perf` profile).
fn values(backend: Backend, rows: usize, columns: usize, literal: &str) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            match backend {
                Backend::Sqlite => out.push('?'),
                Backend::Postgres => out.push_str(&format!("${}", r * columns + c + 1)),
            }
        }
        out.push_str(literal);
        out.push(')');
    }
    out
}

async fn insert_reservations(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    rows: &[&Reservation],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO serials (serial, issuer, profile, reserved_at) VALUES {}",
        values(backend, rows.len(), 4, "")
    );
    let mut q = sqlx::query(&sql);
    for r in rows {
        q = q.bind(&r.serial).bind(&r.issuer).bind(&r.profile).bind(r.reserved_at);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Step 5 of issuance for many certificates at once. The foreign key to `serials` refuses a
/// certificate whose serial was never reserved; the primary key refuses a second one.
async fn insert_certificates(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    rows: &[&NewCertificate],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO certificates (serial, issuer, profile, subject, identifier, not_before, not_after, der, fingerprint, crl_shard, status) VALUES {}",
        values(backend, rows.len(), 10, ", 'issued'")
    );
    let mut q = sqlx::query(&sql);
    for c in rows {
        q = q
            .bind(&c.serial)
            .bind(&c.issuer)
            .bind(&c.profile)
            .bind(&c.subject)
            .bind(&c.identifier)
            .bind(c.not_before)
            .bind(c.not_after)
            .bind(&c.der)
            .bind(&c.fingerprint)
            .bind(c.crl_shard);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Appends audit events inside a transaction (commit it with [`super::audit::commit`]), extending the hash chain (shared by every
/// writer of audit rows). The head row is updated first: that write takes the lock that keeps
/// concurrent appenders, in this process or another, from forking the chain.
pub(super) async fn insert_audits(
    tx: &mut Transaction<'static, Any>,
    rows: &[&AuditRecord],
) -> Result<(), sqlx::Error> {
    // Outside the writer a statement carries one or a few events: numbered placeholders,
    // which both backends read, cost nothing there.
    insert_audits_as(tx, Backend::Postgres, rows).await
}

async fn insert_audits_as(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    rows: &[&AuditRecord],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(rows.len() as i64)
        .fetch_one(&mut **tx)
        .await?;
    let last_seq: i64 = head.try_get("seq")?;
    let mut prev: String = head.try_get("hash")?;
    let first_seq = last_seq - rows.len() as i64 + 1;
    let mut chained = Vec::with_capacity(rows.len());
    for (i, a) in rows.iter().enumerate() {
        let seq = first_seq + i as i64;
        let hash = super::audit::entry_hash(seq, a, &prev);
        chained.push((seq, prev.clone(), hash.clone()));
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(&prev).execute(&mut **tx).await?;
    let sql = format!(
        "INSERT INTO audit_events (seq, at, kind, actor, serial, detail, prev_hash, hash) VALUES {}",
        values(backend, rows.len(), 8, "")
    );
    let mut q = sqlx::query(&sql);
    for (a, (seq, prev_hash, hash)) in rows.iter().zip(chained) {
        q = q
            .bind(seq)
            .bind(a.at)
            .bind(&a.kind)
            .bind(&a.actor)
            .bind(&a.serial)
            .bind(&a.detail)
            .bind(prev_hash)
            .bind(hash);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_placeholders_row_by_row_in_each_dialect() {
        assert_eq!(values(Backend::Postgres, 2, 2, ""), "($1, $2), ($3, $4)");
        assert_eq!(values(Backend::Postgres, 1, 1, ", 'x'"), "($1, 'x')");
        assert_eq!(values(Backend::Sqlite, 2, 2, ", 'x'"), "(?, ?, 'x'), (?, ?, 'x')");
    }
}
