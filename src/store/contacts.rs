//! The RA's verified contacts (`ra_contacts`): for each approved order, the agent and legal
//! representative it verified and, once issued, the certificate it produced. They are the
//! only source of "who is on file" for a subject or a certificate (review H1, H2).

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError};

/// Who an approved order verified for its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRecord {
    /// The approved order.
    pub order_id: String,
    /// Credit code or resident ID.
    pub subject_key: String,
    /// The certificate the order produced, once issued.
    pub serial: Option<String>,
    /// The verified agent's (or person's) phone.
    pub agent_phone: Option<String>,
    /// Organisations: the legal representative's name.
    pub legal_rep_name: Option<String>,
    /// Organisations: the legal representative's ID number.
    pub legal_rep_id: Option<String>,
    /// Organisations: the legal representative's phone.
    pub legal_rep_phone: Option<String>,
    /// When the order was approved (unix seconds).
    pub approved_at: i64,
}

const COLUMNS: &str =
    "order_id, subject_key, serial, agent_phone, legal_rep_name, legal_rep_id, legal_rep_phone, approved_at";

fn contact(r: &AnyRow) -> Result<ContactRecord, sqlx::Error> {
    Ok(ContactRecord {
        order_id: r.try_get("order_id")?,
        subject_key: r.try_get("subject_key")?,
        serial: r.try_get("serial")?,
        agent_phone: r.try_get("agent_phone")?,
        legal_rep_name: r.try_get("legal_rep_name")?,
        legal_rep_id: r.try_get("legal_rep_id")?,
        legal_rep_phone: r.try_get("legal_rep_phone")?,
        approved_at: r.try_get("approved_at")?,
    })
}

/// Records an approved order's contacts inside the approval's transaction (once per order).
pub(super) async fn insert(tx: &mut Transaction<'static, Any>, c: &ContactRecord) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO ra_contacts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (order_id) DO NOTHING"
    );
    sqlx::query(&sql)
        .bind(&c.order_id)
        .bind(&c.subject_key)
        .bind(&c.serial)
        .bind(&c.agent_phone)
        .bind(&c.legal_rep_name)
        .bind(&c.legal_rep_id)
        .bind(&c.legal_rep_phone)
        .bind(c.approved_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Ties a completed order's contacts to the certificate it produced (first one only).
/// Follows an order's saved state: an order that ends without its certificate (cancelled at
/// carry-out because the certificate was revoked meanwhile, rejected) verified nobody, so the
/// contacts its approval recorded are withdrawn in the same transaction (attacker review: an
/// agent whose order issued nothing stayed on file and could consent for the subject).
pub(super) async fn follow_order(
    tx: &mut Transaction<'static, Any>,
    order: &super::OrderRecord,
) -> Result<(), StoreError> {
    if matches!(order.state.as_str(), "cancelled" | "rejected") {
        sqlx::query("DELETE FROM ra_contacts WHERE order_id = $1 AND serial IS NULL")
            .bind(&order.id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(super) async fn set_serial(
    tx: &mut Transaction<'static, Any>,
    order_id: &str,
    serial: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE ra_contacts SET serial = $1 WHERE order_id = $2 AND serial IS NULL")
        .bind(serial)
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// A subject's verified contacts, newest approval first.
    pub async fn contacts_of_subject(&self, subject_key: &str) -> Result<Vec<ContactRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM ra_contacts WHERE subject_key = $1 ORDER BY approved_at DESC, order_id DESC LIMIT 200"
        );
        let rows = sqlx::query(&sql).bind(subject_key).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(contact).collect::<Result<_, _>>()?)
    }

    /// The contacts of the order that produced a certificate, if it came from the RA.
    pub async fn contact_of_certificate(&self, serial: &str) -> Result<Option<ContactRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM ra_contacts WHERE serial = $1 ORDER BY approved_at DESC LIMIT 1");
        let row = sqlx::query(&sql).bind(serial).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(contact).transpose()?)
    }
}
