//! Rows of the registration authority: orders, materials, payment events, order-query
//! sessions and expiry reminders.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{AuditRecord, ContactRecord, Store, StoreError};

/// One application order as stored. The RA owns its meaning; this is the row.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRecord {
    /// Order number people see.
    pub id: String,
    /// Channel name.
    pub channel: String,
    /// Flow name.
    pub flow: String,
    /// `open`, `offline`, `review`, `approved`, `completed`, `rejected`, `cancelled`.
    pub state: String,
    /// Credit code or resident ID, once entered.
    pub subject_key: Option<String>,
    /// `channel|subject_key` while open: the unique key that refuses a second open order.
    pub open_key: Option<String>,
    /// The verified agent's (or person's) phone.
    pub agent_phone: Option<String>,
    /// SHA-256 of the applicant's order token.
    pub token_hash: String,
    /// Completed steps and their validated input (JSON object).
    pub data: String,
    /// The certificate concerned or issued.
    pub serial: Option<String>,
    /// The holder approval an approved new order created.
    pub approval_id: Option<String>,
    /// Price in fen (0.01 CNY).
    pub amount_fen: i64,
    /// The payment provider's reference.
    pub payment_ref: Option<String>,
    /// Unix seconds.
    pub paid_at: Option<i64>,
    /// Unix seconds.
    pub refunded_at: Option<i64>,
    /// E-invoice number.
    pub invoice_no: Option<String>,
    /// When it entered review (or was carried out automatically).
    pub submitted_at: Option<i64>,
    /// When an officer decided.
    pub decided_at: Option<i64>,
    /// Which officer (certificate fingerprint) or `auto`.
    pub decided_by: Option<String>,
    /// Why rejected or cancelled.
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Bumped by every update (optimistic concurrency).
    pub version: i64,
}

#[cfg(test)]
impl OrderRecord {
    /// An order row for unit tests: this id, flow, state and data, nothing else set.
    pub(crate) fn fixture(id: &str, flow: &str, state: &str, data: &str) -> OrderRecord {
        OrderRecord {
            id: id.into(),
            channel: "default".into(),
            flow: flow.into(),
            state: state.into(),
            subject_key: None,
            open_key: None,
            agent_phone: None,
            token_hash: "00".into(),
            data: data.into(),
            serial: None,
            approval_id: None,
            amount_fen: 0,
            payment_ref: None,
            paid_at: None,
            refunded_at: None,
            invoice_no: None,
            submitted_at: None,
            decided_at: None,
            decided_by: None,
            reason: None,
            created_at: 1,
            updated_at: 1,
            version: 1,
        }
    }
}

const ORDER_COLUMNS: &str = "id, channel, flow, state, subject_key, open_key, agent_phone, token_hash, data, serial, \
    approval_id, amount_fen, payment_ref, paid_at, refunded_at, invoice_no, submitted_at, decided_at, decided_by, \
    reason, created_at, updated_at, version";

fn order(r: &AnyRow) -> Result<OrderRecord, sqlx::Error> {
    Ok(OrderRecord {
        id: r.try_get("id")?,
        channel: r.try_get("channel")?,
        flow: r.try_get("flow")?,
        state: r.try_get("state")?,
        subject_key: r.try_get("subject_key")?,
        open_key: r.try_get("open_key")?,
        agent_phone: r.try_get("agent_phone")?,
        token_hash: r.try_get("token_hash")?,
        data: r.try_get("data")?,
        serial: r.try_get("serial")?,
        approval_id: r.try_get("approval_id")?,
        amount_fen: r.try_get("amount_fen")?,
        payment_ref: r.try_get("payment_ref")?,
        paid_at: r.try_get("paid_at")?,
        refunded_at: r.try_get("refunded_at")?,
        invoice_no: r.try_get("invoice_no")?,
        submitted_at: r.try_get("submitted_at")?,
        decided_at: r.try_get("decided_at")?,
        decided_by: r.try_get("decided_by")?,
        reason: r.try_get("reason")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        version: r.try_get("version")?,
    })
}

/// Filters of an order search; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// Exact state.
    pub state: Option<String>,
    /// Exact flow.
    pub flow: Option<String>,
    /// Exact channel.
    pub channel: Option<String>,
    /// Exact credit code or ID number.
    pub subject_key: Option<String>,
    /// Orders handled by this agent phone.
    pub agent_phone: Option<String>,
    /// Orders created before this order id's creation (keyset paging on (created_at, id)).
    pub before: Option<(i64, String)>,
    /// At most this many.
    pub limit: i64,
}

/// An order-query session as stored (the token only as its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRow {
    /// Credit code or ID number queried.
    pub subject_key: String,
    /// The agent's phone; None for the legal representative (sees all of the subject's).
    pub phone: Option<String>,
    /// The channel the query was made in (handbook §4: results within the current channel);
    /// None for a session opened without one (every channel).
    pub channel: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A material to store: its order, kind, content address, sniffed type and bytes.
#[derive(Debug, Clone, Copy)]
pub struct NewMaterial<'a> {
    /// The order.
    pub order_id: &'a str,
    /// Kind, e.g. `business-licence` (or `invoice` for the e-invoice).
    pub kind: &'a str,
    /// Hex SHA-256 of `bytes`.
    pub sha256: &'a str,
    /// Sniffed content type.
    pub content_type: &'a str,
    /// The content.
    pub bytes: &'a [u8],
}

/// An uploaded material as listed with its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialRecord {
    /// Kind, e.g. `business-licence`.
    pub kind: String,
    /// SHA-256 of the content (its address).
    pub sha256: String,
    /// Bytes.
    pub size: i64,
    /// Sniffed content type.
    pub content_type: String,
    /// Unix seconds.
    pub uploaded_at: i64,
}

impl Store {
    /// Stores a new order with its audit event.
    pub async fn insert_order(&self, o: &OrderRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO ra_orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"
        );
        let query = bind_order(sqlx::query(&sql), o);
        self.execute_audited(query, audit).await.map(|_| ())
    }

    /// Writes an order's new state if nobody changed it since `o.version` was read, with its
    /// audit events in the same transaction. Returns false (and writes nothing) on a
    /// concurrent change; a second open order for the same subject is `Duplicate`.
    ///
    /// `contact` is recorded with an approval (see [`ContactRecord`]); a completed order's
    /// certificate is tied to its contacts in the same transaction.
    pub async fn save_order(
        &self,
        o: &OrderRecord,
        contact: Option<&ContactRecord>,
        audits: &[&AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = bind_order(sqlx::query(SAVE_ORDER), o).execute(&mut *tx).await.map_err(StoreError::classify)?;
        if changed.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(c) = contact {
            super::contacts::insert(&mut tx, c).await?;
        }
        if let (Some(serial), "completed") = (&o.serial, o.state.as_str()) {
            super::contacts::set_serial(&mut tx, &o.id, serial).await?;
        }
        super::contacts::follow_order(&mut tx, o).await?;
        super::writer::insert_audits(&mut tx, audits).await?;
        super::audit::commit(tx, audits.len()).await?;
        Ok(true)
    }

    /// One order.
    pub async fn order(&self, id: &str) -> Result<Option<OrderRecord>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM ra_orders WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(order).transpose()?)
    }

    /// Orders matching the filters, newest first.
    pub async fn orders(&self, q: &OrderQuery) -> Result<Vec<OrderRecord>, StoreError> {
        let mut sql = format!("SELECT {ORDER_COLUMNS} FROM ra_orders WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let filters = [
            ("state", &q.state),
            ("flow", &q.flow),
            ("channel", &q.channel),
            ("subject_key", &q.subject_key),
            ("agent_phone", &q.agent_phone),
        ];
        for (column, value) in filters {
            if let Some(v) = value {
                binds.push(v.clone());
                sql.push_str(&format!(" AND {column} = ${}", binds.len()));
            }
        }
        if q.before.is_some() {
            sql.push_str(&format!(
                " AND (created_at < ${a} OR (created_at = ${a} AND id < ${b}))",
                a = binds.len() + 1,
                b = binds.len() + 2
            ));
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT {}", q.limit.clamp(1, 500)));
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(b);
        }
        if let Some((at, id)) = &q.before {
            query = query.bind(*at).bind(id.clone());
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(order).collect::<Result<_, _>>()?)
    }

    /// Orders waiting for an officer, oldest first.
    pub async fn review_queue(&self, limit: i64) -> Result<Vec<OrderRecord>, StoreError> {
        let sql =
            format!("SELECT {ORDER_COLUMNS} FROM ra_orders WHERE state = 'review' ORDER BY submitted_at, id LIMIT $1");
        let rows = sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(order).collect::<Result<_, _>>()?)
    }

    /// One page of the orders in a state, least recently updated first, after the cursor
    /// `(updated_at, id)` (keyset paging: the background task walks every one of them, not
    /// only the first page: review M11). `updated_before` leaves out orders touched since.
    pub async fn orders_in_state(
        &self,
        state: &str,
        updated_before: i64,
        after: &(i64, String),
        limit: i64,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM ra_orders WHERE state = $1 AND updated_at < $2 \
             AND (updated_at > $3 OR (updated_at = $3 AND id > $4)) ORDER BY updated_at, id LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(state)
            .bind(updated_before)
            .bind(after.0)
            .bind(&after.1)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(order).collect::<Result<_, _>>()?)
    }

    /// Counts by (flow, state), for the metrics gauge.
    pub async fn order_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT flow, state, COUNT(*) AS n FROM ra_orders GROUP BY flow, state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("flow")?, r.try_get("state")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Stores (once) the bytes of a material and links it to an order under its kind,
    /// replacing an earlier upload of that kind; the earlier blob is deleted when no material
    /// references it any more (`bounds::replace_material`). Applicant uploads go through
    /// `put_material_within`, which also charges the order's upload bounds.
    pub async fn put_material(&self, m: &NewMaterial<'_>, now: i64, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        super::bounds::replace_material(&mut tx, m, now).await?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await
    }

    /// The materials of an order.
    pub async fn materials(&self, order_id: &str) -> Result<Vec<MaterialRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.kind, m.sha256, m.size, m.uploaded_at, b.content_type FROM ra_materials m \
             JOIN ra_blobs b ON b.sha256 = m.sha256 WHERE m.order_id = $1 ORDER BY m.kind",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MaterialRecord {
                    kind: r.try_get("kind")?,
                    sha256: r.try_get("sha256")?,
                    size: r.try_get("size")?,
                    content_type: r.try_get("content_type")?,
                    uploaded_at: r.try_get("uploaded_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// A material's bytes and content type, if it belongs to the order.
    pub async fn material_bytes(&self, order_id: &str, sha256: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let row = sqlx::query(
            "SELECT b.content_type, b.bytes FROM ra_materials m JOIN ra_blobs b ON b.sha256 = m.sha256 \
             WHERE m.order_id = $1 AND m.sha256 = $2",
        )
        .bind(order_id)
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Ok::<_, sqlx::Error>((r.try_get("content_type")?, r.try_get("bytes")?))).transpose()?)
    }

    /// Stores an order-query session.
    pub async fn insert_query(&self, q: &QueryRow, token_hash: &str, audit: &AuditRecord) -> Result<(), StoreError> {
        let query = sqlx::query(
            "INSERT INTO ra_queries (token_hash, subject_key, phone, channel, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(&q.subject_key)
        .bind(&q.phone)
        .bind(&q.channel)
        .bind(q.expires_at);
        self.execute_audited(query, audit).await.map(|_| ())
    }

    /// A live order-query session.
    pub async fn query_session(&self, token_hash: &str, now: i64) -> Result<Option<QueryRow>, StoreError> {
        let row = sqlx::query(
            "SELECT subject_key, phone, channel, expires_at FROM ra_queries WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let row = row.map(|r| {
            Ok::<_, sqlx::Error>(QueryRow {
                subject_key: r.try_get("subject_key")?,
                phone: r.try_get("phone")?,
                channel: r.try_get("channel")?,
                expires_at: r.try_get("expires_at")?,
            })
        });
        Ok(row.transpose()?)
    }

    /// Whether a phone is the verified agent of one of a subject's orders (`agent_phone` is
    /// set only when the agent's check passed).
    pub async fn handled_orders(&self, subject_key: &str, phone: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT id FROM ra_orders WHERE subject_key = $1 AND agent_phone = $2 LIMIT 1")
            .bind(subject_key)
            .bind(phone)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Marks a reminder sent; false when it was sent before.
    pub async fn claim_reminder(&self, serial: &str, days: i64, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO ra_reminders (serial, days, sent_at) VALUES ($1, $2, $3) ON CONFLICT (serial, days) DO NOTHING",
        )
        .bind(serial)
        .bind(days)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Certificates that expire within `(from, to]` unix seconds and are still good: (serial,
    /// not_after).
    pub async fn expiring(&self, from: i64, to: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial, not_after FROM certificates WHERE status = 'issued' AND not_after > $1 AND not_after <= $2",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("serial")?, r.try_get("not_after")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

/// Writes every column of an order if its version is still the one read (`$23`).
pub(super) const SAVE_ORDER: &str =
    "UPDATE ra_orders SET channel = $2, flow = $3, state = $4, subject_key = $5, open_key = $6, \
     agent_phone = $7, token_hash = $8, data = $9, serial = $10, approval_id = $11, amount_fen = $12, \
     payment_ref = $13, paid_at = $14, refunded_at = $15, invoice_no = $16, submitted_at = $17, \
     decided_at = $18, decided_by = $19, reason = $20, created_at = $21, updated_at = $22, \
     version = $23 + 1 WHERE id = $1 AND version = $23";

pub(super) fn bind_order<'q>(
    q: super::backoffice::AnyQuery<'q>,
    o: &'q OrderRecord,
) -> super::backoffice::AnyQuery<'q> {
    q.bind(&o.id)
        .bind(&o.channel)
        .bind(&o.flow)
        .bind(&o.state)
        .bind(&o.subject_key)
        .bind(&o.open_key)
        .bind(&o.agent_phone)
        .bind(&o.token_hash)
        .bind(&o.data)
        .bind(&o.serial)
        .bind(&o.approval_id)
        .bind(o.amount_fen)
        .bind(&o.payment_ref)
        .bind(o.paid_at)
        .bind(o.refunded_at)
        .bind(&o.invoice_no)
        .bind(o.submitted_at)
        .bind(o.decided_at)
        .bind(&o.decided_by)
        .bind(&o.reason)
        .bind(o.created_at)
        .bind(o.updated_at)
        .bind(o.version)
}
