//! Rows of organisation membership, seals and seal requests.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{AuditRecord, Store, StoreError};

/// What [`Store::hand_over_admin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOver {
    /// The role moved.
    Moved,
    /// The acceptance code was used or withdrawn (its member removed) after it was checked:
    /// nothing written.
    CodeSpent,
    /// The phone that offered the role is no longer the administrator: nothing written.
    NotAdministrator,
}

/// A seal request waiting for (or past) review.
#[derive(Debug, Clone)]
pub struct SealRequestRecord {
    /// Random id.
    pub id: String,
    /// The organisation.
    pub credit_code: String,
    /// The seal a change replaces; None for a new seal.
    pub seal_id: Option<String>,
    /// Seal name.
    pub name: String,
    /// PNG bytes.
    pub png: Vec<u8>,
    /// Requesting phone.
    pub requested_by: String,
    /// `pending`, `approved`, `rejected`.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// An active or retired seal.
#[derive(Debug, Clone)]
pub struct SealRecord {
    /// Id.
    pub id: String,
    /// The organisation.
    pub credit_code: String,
    /// Name.
    pub name: String,
    /// PNG bytes.
    pub png: Vec<u8>,
    /// `active` or `retired`.
    pub status: String,
}

fn request(r: &AnyRow) -> Result<SealRequestRecord, sqlx::Error> {
    Ok(SealRequestRecord {
        id: r.try_get("id")?,
        credit_code: r.try_get("credit_code")?,
        seal_id: r.try_get("seal_id")?,
        name: r.try_get("name")?,
        png: r.try_get("png")?,
        requested_by: r.try_get("requested_by")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
    })
}

fn seal(r: &AnyRow) -> Result<SealRecord, sqlx::Error> {
    Ok(SealRecord {
        id: r.try_get("id")?,
        credit_code: r.try_get("credit_code")?,
        name: r.try_get("name")?,
        png: r.try_get("png")?,
        status: r.try_get("status")?,
    })
}

impl Store {
    /// The role of a phone in an organisation.
    pub async fn org_role(&self, credit_code: &str, phone: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT role FROM org_members WHERE credit_code = $1 AND phone = $2")
            .bind(credit_code)
            .bind(phone)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("role")).transpose()?)
    }

    /// Organisations of a phone: (credit code, role).
    pub async fn orgs_of(&self, phone: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.member_pairs(
            "SELECT credit_code AS a, role AS b FROM org_members WHERE phone = $1 ORDER BY credit_code",
            phone,
        )
        .await
    }

    /// Members of an organisation: (phone, role).
    pub async fn org_members(&self, credit_code: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.member_pairs(
            "SELECT phone AS a, role AS b FROM org_members WHERE credit_code = $1 ORDER BY phone",
            credit_code,
        )
        .await
    }

    async fn member_pairs(&self, sql: &str, key: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(sql).bind(key).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("a")?, r.try_get("b")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Makes `phone` the organisation's first administrator if it has none (when its
    /// organisation certificate is enrolled). Returns whether it did.
    pub async fn claim_org_admin(
        &self,
        credit_code: &str,
        phone: &str,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let q = sqlx::query(
            "INSERT INTO org_members (credit_code, phone, role, added_by, added_at) \
             SELECT $1, $2, 'admin', 'enrolment', $3 WHERE NOT EXISTS \
             (SELECT 1 FROM org_members WHERE credit_code = $1 AND role = 'admin')",
        )
        .bind(credit_code)
        .bind(phone)
        .bind(now);
        // A concurrent claim loses to the unique index on one administrator per organisation
        // (PostgreSQL's NOT EXISTS does not see the other's uncommitted row); a phone that is a
        // member already keeps its role. Neither is an error: the organisation has its admin.
        match self.execute_audited(q, audit).await {
            Ok(n) => Ok(n > 0),
            Err(StoreError::Duplicate(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds or changes a member (never the administrator role: that moves by hand-over).
    pub async fn set_member(
        &self,
        credit_code: &str,
        phone: &str,
        role: &str,
        by: &str,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let existing = sqlx::query("SELECT role FROM org_members WHERE credit_code = $1 AND phone = $2")
            .bind(credit_code)
            .bind(phone)
            .fetch_optional(&mut *tx)
            .await?;
        let existing: Option<String> = existing.map(|r| r.try_get("role")).transpose()?;
        if existing.as_deref() == Some("admin") {
            return Ok(false);
        }
        let sql = if existing.is_some() {
            "UPDATE org_members SET role = $3, added_by = $4, added_at = $5 WHERE credit_code = $1 AND phone = $2"
        } else {
            "INSERT INTO org_members (credit_code, phone, role, added_by, added_at) VALUES ($1, $2, $3, $4, $5)"
        };
        sqlx::query(sql).bind(credit_code).bind(phone).bind(role).bind(by).bind(now).execute(&mut *tx).await?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(true)
    }

    /// Removes a member who is not the administrator (handbook 人员管理), and with them their
    /// leave to stamp with the organisation's seals (a removed member keeps no seal) and their
    /// seal requests not yet decided (rejected, by `member-removed`). One
    /// transaction with the audit event. False (nothing written) when the phone is no member,
    /// or the administrator (that role moves only by hand-over).
    ///
    /// `hand_over_scope` is the scope of the hand-over codes the administrator removing them
    /// offered; those sent to this phone are spent first, in the same transaction, so an
    /// acceptance racing the removal is refused ([`Store::hand_over_admin`] spends its code
    /// only while unused).
    pub async fn remove_member(
        &self,
        credit_code: &str,
        phone: &str,
        hand_over_scope: &str,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Codes first: the same lock order as an acceptance (code row, then member rows).
        sqlx::query("UPDATE sms_codes SET used = 1 WHERE purpose = $1 AND phone = $2 AND used = 0")
            .bind(hand_over_scope)
            .bind(phone)
            .execute(&mut *tx)
            .await?;
        let removed = sqlx::query("DELETE FROM org_members WHERE credit_code = $1 AND phone = $2 AND role <> 'admin'")
            .bind(credit_code)
            .bind(phone)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed != 1 {
            return Ok(false);
        }
        sqlx::query(
            "DELETE FROM seal_users WHERE phone = $2 AND seal_id IN (SELECT id FROM seals WHERE credit_code = $1)",
        )
        .bind(credit_code)
        .bind(phone)
        .execute(&mut *tx)
        .await?;
        // Their seal requests not yet decided go with them: a reviewer approving one later
        // would put an image the organisation no longer stands behind on its seal.
        sqlx::query(
            "UPDATE seal_requests SET status = 'rejected', decided_by = 'member-removed', decided_at = $3 \
             WHERE credit_code = $1 AND requested_by = $2 AND status = 'pending'",
        )
        .bind(credit_code)
        .bind(phone)
        // The removal's time, in seconds as every `decided_at` (audit times are milliseconds).
        .bind(audit.at / 1000)
        .execute(&mut *tx)
        .await?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(true)
    }

    /// Moves the administrator role from `from` to `to` (who becomes a member if needed; the
    /// old administrator stays as staff), spending `code`, the acceptance code checked
    /// ([`crate::mobile::Mobile::verify_code`]), in the same transaction. Nothing is written
    /// unless, at write time, the code is still unused and `from` still the administrator.
    ///
    /// The code's row is the lock both this and [`Store::remove_member`] take first: a removal
    /// of `to` spends their hand-over codes in its own transaction, so whichever commits first
    /// wins and the other sees it. A removal that committed after the code was checked leaves
    /// the code spent here and the role where it was ([`HandOver::CodeSpent`]).
    pub async fn hand_over_admin(
        &self,
        credit_code: &str,
        from: &str,
        to: &str,
        code: i64,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<HandOver, StoreError> {
        let mut tx = self.pool.begin().await?;
        let spent = sqlx::query("UPDATE sms_codes SET used = 1 WHERE id = $1 AND used = 0")
            .bind(code)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if spent != 1 {
            return Ok(HandOver::CodeSpent);
        }
        let demoted = sqlx::query(
            "UPDATE org_members SET role = 'staff' WHERE credit_code = $1 AND phone = $2 AND role = 'admin'",
        )
        .bind(credit_code)
        .bind(from)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if demoted != 1 {
            return Ok(HandOver::NotAdministrator);
        }
        sqlx::query("DELETE FROM org_members WHERE credit_code = $1 AND phone = $2")
            .bind(credit_code)
            .bind(to)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO org_members (credit_code, phone, role, added_by, added_at) VALUES ($1, $2, 'admin', $3, $4)",
        )
        .bind(credit_code)
        .bind(to)
        .bind(from)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(HandOver::Moved)
    }

    /// Records a seal request for review.
    pub async fn insert_seal_request(&self, r: &SealRequestRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT INTO seal_requests (id, credit_code, seal_id, name, png, requested_by, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.id)
        .bind(&r.credit_code)
        .bind(&r.seal_id)
        .bind(&r.name)
        .bind(&r.png)
        .bind(&r.requested_by)
        .bind(&r.status)
        .bind(r.created_at);
        self.execute_audited(q, audit).await.map(|_| ())
    }

    /// One seal request.
    pub async fn seal_request(&self, id: &str) -> Result<Option<SealRequestRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM seal_requests WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(request).transpose().map_err(StoreError::from)
    }

    /// Seal requests in a status, oldest first.
    pub async fn seal_requests(&self, status: &str) -> Result<Vec<SealRequestRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM seal_requests WHERE status = $1 ORDER BY created_at, id")
            .bind(status)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(request).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// Decides a pending request; on approval the seal is created or replaced, in the same
    /// transaction. False when it was not pending.
    pub async fn decide_seal_request(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        new_seal_id: &str,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT * FROM seal_requests WHERE id = $1 AND status = 'pending'")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let r = request(&row)?;
        // Still pending as it is decided (a removal of its requester may have closed it since).
        let decided = sqlx::query(
            "UPDATE seal_requests SET status = $2, decided_by = $3, decided_at = $4 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(if approve { "approved" } else { "rejected" })
        .bind(by)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if decided != 1 {
            return Ok(false);
        }
        if approve {
            match &r.seal_id {
                Some(seal_id) => {
                    sqlx::query(
                        "UPDATE seals SET png = $2, name = $3, updated_at = $4 WHERE id = $1 AND credit_code = $5 AND status = 'active'",
                    )
                    .bind(seal_id)
                    .bind(&r.png)
                    .bind(&r.name)
                    .bind(now)
                    .bind(&r.credit_code)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query(
                        "INSERT INTO seals (id, credit_code, name, png, status, updated_at) VALUES ($1, $2, $3, $4, 'active', $5)",
                    )
                    .bind(new_seal_id)
                    .bind(&r.credit_code)
                    .bind(&r.name)
                    .bind(&r.png)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(true)
    }

    /// Seals of an organisation.
    pub async fn seals_of(&self, credit_code: &str) -> Result<Vec<SealRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM seals WHERE credit_code = $1 ORDER BY name, id")
            .bind(credit_code)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(seal).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// One seal.
    pub async fn seal(&self, id: &str) -> Result<Option<SealRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM seals WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(seal).transpose().map_err(StoreError::from)
    }

    /// Allows (`allowed`) or stops a phone stamping with a seal, with the audit event. A grant
    /// is written only while the phone is a member of the seal's organisation, whose row it
    /// holds locked until it commits, so a removal racing the grant leaves no grant behind to
    /// revive if the phone is added again; false (nothing written) when it is not.
    pub async fn set_seal_user(
        &self,
        seal_id: &str,
        phone: &str,
        allowed: bool,
        by: &str,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if allowed {
            // Locks the member's row until the grant commits (a no-op update: portable, where
            // `FOR SHARE` is not). A removal in flight is waited for and then leaves no row;
            // one that comes after waits for the grant and then deletes it with the member.
            // A check without the lock (`WHERE EXISTS`) saw the member a running removal had
            // deleted but not committed, and wrote a grant the removal never saw.
            let member = sqlx::query(
                "UPDATE org_members SET role = role WHERE phone = $2 \
                 AND credit_code = (SELECT credit_code FROM seals WHERE id = $1)",
            )
            .bind(seal_id)
            .bind(phone)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if member != 1 {
                return Ok(false);
            }
        }
        sqlx::query("DELETE FROM seal_users WHERE seal_id = $1 AND phone = $2")
            .bind(seal_id)
            .bind(phone)
            .execute(&mut *tx)
            .await?;
        if allowed {
            sqlx::query("INSERT INTO seal_users (seal_id, phone, granted_by, granted_at) VALUES ($1, $2, $3, $4)")
                .bind(seal_id)
                .bind(phone)
                .bind(by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(true)
    }

    /// The phones allowed to stamp with each seal of an organisation, as (seal id, phone), by
    /// seal then phone: one query for the whole list an administrator sees (`GET
    /// /v1/mobile/orgs`), not one per seal. A plain join, the same on SQLite and PostgreSQL.
    pub async fn seal_users_of(&self, credit_code: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.seal_id AS a, u.phone AS b FROM seal_users u JOIN seals s ON s.id = u.seal_id \
             WHERE s.credit_code = $1 ORDER BY u.seal_id, u.phone",
        )
        .bind(credit_code)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("a")?, r.try_get("b")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Whether a phone may stamp with a seal.
    pub async fn seal_user_allowed(&self, seal_id: &str, phone: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM seal_users WHERE seal_id = $1 AND phone = $2")
            .bind(seal_id)
            .bind(phone)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}
