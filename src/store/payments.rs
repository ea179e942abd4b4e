//! Rows of the RA's payment intents (review M5, L3): every QR code an order ever showed, so a
//! payment through any of them is matched to its order, and the refund of a payment is a
//! marker (`refund_due`) written with the state change that calls for it, paid out once.
//!
//! Lock order, for PostgreSQL: a transaction that writes both rows writes the order row
//! first, then the intent, then the audit head.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::ra::{bind_order, SAVE_ORDER};
use super::{AuditRecord, OrderRecord, Store, StoreError};

/// Where a payment intent stands. The store keeps the word; the RA gives it meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentState {
    /// The order's current QR code; it can be paid.
    Open,
    /// Replaced by a newer intent of the order; closing it at the provider has not succeeded
    /// yet, so it may still be paid.
    Superseded,
    /// Closed unpaid at the provider: it can no longer be paid.
    Closed,
    /// Paid, and the payment is the order's.
    Paid,
    /// Paid, and the money is to go back (the order was paid through another intent, was
    /// cancelled or rejected). Refunded once, by whoever claims it.
    RefundDue,
    /// Paid and refunded.
    Refunded,
}

impl IntentState {
    /// The word in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentState::Open => "open",
            IntentState::Superseded => "superseded",
            IntentState::Closed => "closed",
            IntentState::Paid => "paid",
            IntentState::RefundDue => "refund_due",
            IntentState::Refunded => "refunded",
        }
    }

    fn parse(word: &str) -> Result<IntentState, sqlx::Error> {
        Ok(match word {
            "open" => IntentState::Open,
            "superseded" => IntentState::Superseded,
            "closed" => IntentState::Closed,
            "paid" => IntentState::Paid,
            "refund_due" => IntentState::RefundDue,
            "refunded" => IntentState::Refunded,
            other => return Err(sqlx::Error::Decode(format!("unknown payment intent state {other:?}").into())),
        })
    }

    /// Whether money has not been taken through this intent yet (as far as we know).
    pub fn unpaid(self) -> bool {
        matches!(self, IntentState::Open | IntentState::Superseded | IntentState::Closed)
    }
}

/// One payment intent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntentRecord {
    /// The provider's reference: what the QR code pays and the webhook names.
    pub provider_ref: String,
    /// The order it pays for.
    pub order_id: String,
    /// `wechat` or `alipay` (empty for intents recorded before the table existed).
    pub method: String,
    /// The amount the provider will take, in fen.
    pub amount_fen: i64,
    /// The QR code's link.
    pub qr_url: String,
    /// Where it stands.
    pub state: IntentState,
    /// Unix seconds after which the provider refuses to take payment.
    pub expires_at: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// When the provider reported it paid.
    pub paid_at: Option<i64>,
    /// When a daemon claimed the refund (a lease, so a crashed refund is retried later).
    pub refund_claimed_at: Option<i64>,
    /// The provider's refund reference.
    pub refund_ref: Option<String>,
    /// When the refund was recorded.
    pub refunded_at: Option<i64>,
}

const INTENT_COLUMNS: &str = "provider_ref, order_id, method, amount_fen, qr_url, state, expires_at, created_at, \
    updated_at, paid_at, refund_claimed_at, refund_ref, refunded_at";

fn intent(r: &AnyRow) -> Result<PaymentIntentRecord, sqlx::Error> {
    Ok(PaymentIntentRecord {
        provider_ref: r.try_get("provider_ref")?,
        order_id: r.try_get("order_id")?,
        method: r.try_get("method")?,
        amount_fen: r.try_get("amount_fen")?,
        qr_url: r.try_get("qr_url")?,
        state: IntentState::parse(&r.try_get::<String, _>("state")?)?,
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        paid_at: r.try_get("paid_at")?,
        refund_claimed_at: r.try_get("refund_claimed_at")?,
        refund_ref: r.try_get("refund_ref")?,
        refunded_at: r.try_get("refunded_at")?,
    })
}

/// What applying a payment webhook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentEventOutcome {
    /// The event was new and its changes are written.
    Applied,
    /// The event was seen before: nothing written.
    Replayed,
}

/// One payment webhook's changes: the intent's move and, where the order changes too, the
/// order's new state (compare-and-set on its version).
#[derive(Debug, Clone, Copy)]
pub struct IntentChange<'a> {
    /// The provider's event id (deduplicated).
    pub event_id: &'a str,
    /// `paid` or `closed`, as the provider said.
    pub status: &'a str,
    /// The intent.
    pub provider_ref: &'a str,
    /// The intent's order.
    pub order_id: &'a str,
    /// Its state as read: the move happens only if it still is.
    pub from: IntentState,
    /// Its new state.
    pub to: IntentState,
    /// The order's new state, if it changes.
    pub order: Option<&'a OrderRecord>,
}

impl Store {
    /// Records a new intent, before its QR code is shown: a payment through it can always be
    /// matched to its order.
    pub async fn insert_payment_intent(&self, i: &PaymentIntentRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {TABLE} ({INTENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        let query = sqlx::query(&sql)
            .bind(&i.provider_ref)
            .bind(&i.order_id)
            .bind(&i.method)
            .bind(i.amount_fen)
            .bind(&i.qr_url)
            .bind(i.state.as_str())
            .bind(i.expires_at)
            .bind(i.created_at)
            .bind(i.updated_at)
            .bind(i.paid_at)
            .bind(i.refund_claimed_at)
            .bind(&i.refund_ref)
            .bind(i.refunded_at);
        self.execute_audited(query, audit).await.map(|_| ())
    }

    /// One intent by the provider's reference.
    pub async fn payment_intent(&self, provider_ref: &str) -> Result<Option<PaymentIntentRecord>, StoreError> {
        let sql = format!("SELECT {INTENT_COLUMNS} FROM {TABLE} WHERE provider_ref = $1");
        let row = sqlx::query(&sql).bind(provider_ref).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(intent).transpose()?)
    }

    /// Every intent of an order, oldest first.
    pub async fn payment_intents(&self, order_id: &str) -> Result<Vec<PaymentIntentRecord>, StoreError> {
        let sql = format!("SELECT {INTENT_COLUMNS} FROM {TABLE} WHERE order_id = $1 ORDER BY created_at, provider_ref");
        let rows = sqlx::query(&sql).bind(order_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(intent).collect::<Result<_, _>>()?)
    }

    /// Intents in a state, oldest change first (for the background task's retries).
    pub async fn payment_intents_in_state(
        &self,
        state: IntentState,
        limit: i64,
    ) -> Result<Vec<PaymentIntentRecord>, StoreError> {
        let sql = format!("SELECT {INTENT_COLUMNS} FROM {TABLE} WHERE state = $1 ORDER BY updated_at LIMIT $2");
        let rows = sqlx::query(&sql).bind(state.as_str()).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(intent).collect::<Result<_, _>>()?)
    }

    /// Moves an intent from `from` to `to` with its audit event; false (nothing written) when
    /// it is no longer in `from`.
    pub async fn move_payment_intent(
        &self,
        provider_ref: &str,
        from: IntentState,
        to: IntentState,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let sql = format!("UPDATE {TABLE} SET state = $1, updated_at = $2 WHERE provider_ref = $3 AND state = $4");
        let query = sqlx::query(&sql).bind(to.as_str()).bind(now).bind(provider_ref).bind(from.as_str());
        Ok(self.execute_audited(query, audit).await? == 1)
    }

    /// Applies a payment webhook in one transaction: the event id (a replay writes nothing),
    /// the order's compare-and-set if it changes, the intent's move, the audit events. A
    /// concurrent change of the order or the intent is `Conflict` and writes nothing: the
    /// provider delivers the webhook again and it is decided afresh.
    pub async fn apply_intent_event(
        &self,
        change: &IntentChange<'_>,
        now: i64,
        audits: &[&AuditRecord],
    ) -> Result<PaymentEventOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO ra_payment_events (event_id, order_id, status, received_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(change.event_id)
        .bind(change.order_id)
        .bind(change.status)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(PaymentEventOutcome::Replayed);
        }
        if let Some(order) = change.order {
            if bind_order(sqlx::query(SAVE_ORDER), order).execute(&mut *tx).await?.rows_affected() == 0 {
                return Err(StoreError::Conflict);
            }
        }
        let paid_at =
            if change.to == IntentState::Paid || change.to == IntentState::RefundDue { Some(now) } else { None };
        let sql = format!(
            "UPDATE {TABLE} SET state = $1, updated_at = $2, paid_at = COALESCE(paid_at, $3) \
             WHERE provider_ref = $4 AND state = $5"
        );
        let moved = sqlx::query(&sql)
            .bind(change.to.as_str())
            .bind(now)
            .bind(paid_at)
            .bind(change.provider_ref)
            .bind(change.from.as_str())
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        super::writer::insert_audits(&mut tx, audits).await?;
        super::audit::commit(tx, audits.len()).await?;
        Ok(PaymentEventOutcome::Applied)
    }

    /// Writes an order's new state (compare-and-set, as [`Store::save_order`]) and, in the
    /// same transaction, marks its paying intent `refund_due` (review L3: the state change
    /// that calls for the refund is recorded before any money moves). None, and nothing
    /// written, when the order changed meanwhile; else whether the intent was marked (false:
    /// it was not on record as paid).
    pub async fn save_order_refund_due(
        &self,
        o: &OrderRecord,
        provider_ref: &str,
        now: i64,
        audits: &[&AuditRecord],
    ) -> Result<Option<bool>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = bind_order(sqlx::query(SAVE_ORDER), o).execute(&mut *tx).await.map_err(StoreError::classify)?;
        if changed.rows_affected() == 0 {
            return Ok(None);
        }
        let sql = format!("UPDATE {TABLE} SET state = $1, updated_at = $2 WHERE provider_ref = $3 AND state = $4");
        let marked = sqlx::query(&sql)
            .bind(IntentState::RefundDue.as_str())
            .bind(now)
            .bind(provider_ref)
            .bind(IntentState::Paid.as_str())
            .execute(&mut *tx)
            .await?;
        super::contacts::follow_order(&mut tx, o).await?;
        super::writer::insert_audits(&mut tx, audits).await?;
        super::audit::commit(tx, audits.len()).await?;
        Ok(Some(marked.rows_affected() == 1))
    }

    /// Claims a due refund for `lease` seconds: only the claimant calls the provider. Returns
    /// the intent, or None when it is not due or another claim is live.
    pub async fn claim_refund(
        &self,
        provider_ref: &str,
        now: i64,
        lease: i64,
    ) -> Result<Option<PaymentIntentRecord>, StoreError> {
        let sql = format!(
            "UPDATE {TABLE} SET refund_claimed_at = $1 WHERE provider_ref = $2 AND state = $3 \
             AND (refund_claimed_at IS NULL OR refund_claimed_at < $4)"
        );
        let claimed = sqlx::query(&sql)
            .bind(now)
            .bind(provider_ref)
            .bind(IntentState::RefundDue.as_str())
            .bind(now - lease)
            .execute(&self.pool)
            .await?;
        if claimed.rows_affected() == 0 {
            return Ok(None);
        }
        self.payment_intent(provider_ref).await
    }

    /// Records a refund the provider made: the intent becomes `refunded` and, when it is the
    /// order's own payment, the order's `refunded_at` is set (a targeted compare-and-set that
    /// bumps the version, so it cannot lose or overwrite another writer's change). False when
    /// the refund was recorded before.
    pub async fn finish_refund(
        &self,
        provider_ref: &str,
        refund_ref: &str,
        now: i64,
        audits: &[&AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE ra_orders SET refunded_at = $1, updated_at = $1, version = version + 1 \
             WHERE payment_ref = $2 AND paid_at IS NOT NULL AND refunded_at IS NULL \
             AND id = (SELECT order_id FROM ra_payment_intents WHERE provider_ref = $2 AND state = $3)",
        )
        .bind(now)
        .bind(provider_ref)
        .bind(IntentState::RefundDue.as_str())
        .execute(&mut *tx)
        .await?;
        let sql = format!(
            "UPDATE {TABLE} SET state = $1, refund_ref = $2, refunded_at = $3, updated_at = $3 \
             WHERE provider_ref = $4 AND state = $5"
        );
        let moved = sqlx::query(&sql)
            .bind(IntentState::Refunded.as_str())
            .bind(refund_ref)
            .bind(now)
            .bind(provider_ref)
            .bind(IntentState::RefundDue.as_str())
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        super::writer::insert_audits(&mut tx, audits).await?;
        super::audit::commit(tx, audits.len()).await?;
        Ok(true)
    }
}

const TABLE: &str = "ra_payment_intents";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseConfig;

    async fn store(dir: &std::path::Path) -> Store {
        let config = DatabaseConfig {
            url: format!("sqlite://{}", dir.join("cloudca.db").display()),
            password_file: None,
            max_connections: 2,
            acquire_timeout_seconds: 5,
        };
        Store::open(&config).await.unwrap()
    }

    fn audit(kind: &str) -> AuditRecord {
        AuditRecord::new(&crate::clock::SystemClock, kind, "test", None, serde_json::json!({}))
    }

    fn paid_order(reference: &str) -> OrderRecord {
        OrderRecord {
            amount_fen: 500,
            payment_ref: Some(reference.into()),
            paid_at: Some(10),
            version: 3,
            ..OrderRecord::fixture("RA20261206-TEST0001", "personal-new", "cancelled", "{}")
        }
    }

    fn due_intent(reference: &str, order_id: &str) -> PaymentIntentRecord {
        PaymentIntentRecord {
            provider_ref: reference.into(),
            order_id: order_id.into(),
            method: "wechat".into(),
            amount_fen: 500,
            qr_url: String::new(),
            state: IntentState::RefundDue,
            expires_at: 100,
            created_at: 1,
            updated_at: 1,
            paid_at: Some(10),
            refund_claimed_at: None,
            refund_ref: None,
            refunded_at: None,
        }
    }

    #[tokio::test]
    async fn a_due_refund_is_claimed_by_one_at_a_time_and_recorded_once_on_its_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let order = paid_order("wx1");
        store.insert_order(&order, &audit("order.created")).await.unwrap();
        store.insert_payment_intent(&due_intent("wx1", &order.id), &audit("payment.refund_due")).await.unwrap();

        assert!(store.claim_refund("wx1", 1000, 120).await.unwrap().is_some());
        assert!(store.claim_refund("wx1", 1050, 120).await.unwrap().is_none(), "the claim is live");
        assert!(store.claim_refund("wx1", 1121, 120).await.unwrap().is_some(), "a stale claim is taken over");
        assert!(store.finish_refund("wx1", "rf1", 1130, &[&audit("payment.refunded")]).await.unwrap());
        assert!(!store.finish_refund("wx1", "rf1", 1140, &[&audit("payment.refunded")]).await.unwrap());
        assert!(store.claim_refund("wx1", 5000, 120).await.unwrap().is_none(), "nothing is due any more");

        let intent = store.payment_intent("wx1").await.unwrap().unwrap();
        assert_eq!(
            (intent.state, intent.refund_ref.as_deref(), intent.refunded_at),
            (IntentState::Refunded, Some("rf1"), Some(1130))
        );
        let order = store.order(&order.id).await.unwrap().unwrap();
        assert_eq!((order.refunded_at, order.version), (Some(1130), 4), "recorded once, the version bumped");
    }

    #[tokio::test]
    async fn an_extra_payment_refunded_leaves_its_orders_own_payment_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let order = paid_order("ali1");
        store.insert_order(&order, &audit("order.created")).await.unwrap();
        store.insert_payment_intent(&due_intent("wx2", &order.id), &audit("payment.refund_due")).await.unwrap();
        assert!(store.claim_refund("wx2", 1000, 120).await.unwrap().is_some());
        assert!(store.finish_refund("wx2", "rf2", 1010, &[&audit("payment.refunded")]).await.unwrap());
        let order = store.order(&order.id).await.unwrap().unwrap();
        assert_eq!((order.refunded_at, order.version), (None, 3));
        assert_eq!(store.payment_intents(&order.id).await.unwrap().len(), 1);
    }
}
