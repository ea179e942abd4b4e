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

/// What a write of an organisation's membership, seal grants or seal requests did. The acting
/// phone's role is judged in the write's own transaction, with its member row locked (see
/// [`Store::lock_members`]): a check made before, outside it, can be stale by the time the
/// write commits (the role handed over, the member removed or demoted in between).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberWrite {
    /// Written, with its audit event.
    Written,
    /// The acting phone does not hold the role this write needs (any more): nothing written.
    NotAllowed,
    /// The phone acted on cannot take this write (no member, or the administrator, whose role
    /// moves only by hand-over): nothing written.
    Refused,
}

/// The roles that may ask for seals and grant their use.
const SEAL_ROLES: [&str; 2] = ["admin", "seal-admin"];

/// Whether a locked role is one of `roles`.
fn holds(role: &Option<String>, roles: &[&str]) -> bool {
    role.as_deref().is_some_and(|r| roles.contains(&r))
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

    /// Locks the member rows of `phones` in one organisation, in the order of their numbers (a
    /// no-op update: portable, where `FOR UPDATE` is not), and returns each phone's role as
    /// locked (None: no member), in the order given. Every transaction that writes members,
    /// seal grants or seal requests takes its member rows here, after any `sms_codes` row and
    /// before any other table, so two of them never wait on each other in opposite orders
    /// (PostgreSQL; SQLite serialises writers, and this first write takes its lock).
    async fn lock_members(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        credit_code: &str,
        phones: &[&str],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let mut order: Vec<&str> = phones.to_vec();
        order.sort_unstable();
        order.dedup();
        let mut locked = Vec::with_capacity(order.len());
        for phone in order {
            let row =
                sqlx::query("UPDATE org_members SET role = role WHERE credit_code = $1 AND phone = $2 RETURNING role")
                    .bind(credit_code)
                    .bind(phone)
                    .fetch_optional(&mut **tx)
                    .await?;
            locked.push((phone, row.map(|r| r.try_get::<String, _>("role")).transpose()?));
        }
        Ok(phones.iter().map(|p| locked.iter().find(|(q, _)| q == p).and_then(|(_, r)| r.clone())).collect())
    }

    /// Rejects the undecided seal requests of a phone that no longer administers the
    /// organisation's seals (removed, demoted to staff, or the administrator who handed the
    /// role over): a reviewer approving one later would put an image on the seal that nobody
    /// who may ask for seals stands behind. `why` is the `decided_by` written.
    async fn reject_requests_of(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        credit_code: &str,
        phone: &str,
        why: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE seal_requests SET status = 'rejected', decided_by = $3, decided_at = $4 \
             WHERE credit_code = $1 AND requested_by = $2 AND status = 'pending'",
        )
        .bind(credit_code)
        .bind(phone)
        .bind(why)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Adds or changes a member (never the administrator role: that moves by hand-over), if
    /// `by` is the administrator when it is written. A seal administrator made staff has their
    /// undecided seal requests rejected (`member-demoted`) in the same transaction.
    pub async fn set_member(
        &self,
        credit_code: &str,
        phone: &str,
        role: &str,
        by: &str,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<MemberWrite, StoreError> {
        let mut tx = self.pool.begin().await?;
        let roles = Self::lock_members(&mut tx, credit_code, &[by, phone]).await?;
        if roles[0].as_deref() != Some("admin") {
            return Ok(MemberWrite::NotAllowed);
        }
        let existing = &roles[1];
        if existing.as_deref() == Some("admin") {
            return Ok(MemberWrite::Refused);
        }
        let sql = if existing.is_some() {
            "UPDATE org_members SET role = $3, added_by = $4, added_at = $5 \
             WHERE credit_code = $1 AND phone = $2 AND role <> 'admin'"
        } else {
            "INSERT INTO org_members (credit_code, phone, role, added_by, added_at) VALUES ($1, $2, $3, $4, $5)"
        };
        sqlx::query(sql).bind(credit_code).bind(phone).bind(role).bind(by).bind(now).execute(&mut *tx).await?;
        if !SEAL_ROLES.contains(&role) {
            Self::reject_requests_of(&mut tx, credit_code, phone, "member-demoted", now).await?;
        }
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(MemberWrite::Written)
    }

    /// Removes a member who is not the administrator (handbook 人员管理), and with them their
    /// leave to stamp with the organisation's seals (a removed member keeps no seal) and their
    /// seal requests not yet decided (rejected, by `member-removed`), if `admin` is the
    /// administrator when it is written. One transaction with the audit event.
    ///
    /// `hand_over_scope` is the scope of the hand-over codes `admin` offered; those sent to
    /// this phone are spent first, in the same transaction, so an acceptance racing the
    /// removal is refused ([`Store::hand_over_admin`] spends its code only while unused).
    pub async fn remove_member(
        &self,
        credit_code: &str,
        admin: &str,
        phone: &str,
        hand_over_scope: &str,
        audit: &AuditRecord,
    ) -> Result<MemberWrite, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Codes first, then member rows: the same lock order as an acceptance.
        sqlx::query("UPDATE sms_codes SET used = 1 WHERE purpose = $1 AND phone = $2 AND used = 0")
            .bind(hand_over_scope)
            .bind(phone)
            .execute(&mut *tx)
            .await?;
        let roles = Self::lock_members(&mut tx, credit_code, &[admin, phone]).await?;
        if roles[0].as_deref() != Some("admin") {
            return Ok(MemberWrite::NotAllowed);
        }
        if roles[1].is_none() || roles[1].as_deref() == Some("admin") {
            return Ok(MemberWrite::Refused);
        }
        sqlx::query("DELETE FROM org_members WHERE credit_code = $1 AND phone = $2 AND role <> 'admin'")
            .bind(credit_code)
            .bind(phone)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM seal_users WHERE phone = $2 AND seal_id IN (SELECT id FROM seals WHERE credit_code = $1)",
        )
        .bind(credit_code)
        .bind(phone)
        .execute(&mut *tx)
        .await?;
        // The removal's time, in seconds as every `decided_at` (audit times are milliseconds).
        Self::reject_requests_of(&mut tx, credit_code, phone, "member-removed", audit.at / 1000).await?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(MemberWrite::Written)
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
        let roles = Self::lock_members(&mut tx, credit_code, &[from, to]).await?;
        if roles[0].as_deref() != Some("admin") {
            return Ok(HandOver::NotAdministrator);
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
        // The old administrator is staff now: the seal images they asked for go undecided no
        // longer (the new administrator may ask again).
        Self::reject_requests_of(&mut tx, credit_code, from, "member-demoted", now).await?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(HandOver::Moved)
    }

    /// Records a seal request for review, if its requester administers the organisation's
    /// seals when it is written: a request written after its requester's removal or demotion
    /// committed would stay pending, the rejection of their requests having run before it.
    pub async fn insert_seal_request(
        &self,
        r: &SealRequestRecord,
        audit: &AuditRecord,
    ) -> Result<MemberWrite, StoreError> {
        let mut tx = self.pool.begin().await?;
        let roles = Self::lock_members(&mut tx, &r.credit_code, &[&r.requested_by]).await?;
        if !holds(&roles[0], &SEAL_ROLES) {
            return Ok(MemberWrite::NotAllowed);
        }
        Self::insert_request(&mut tx, r).await?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(MemberWrite::Written)
    }

    /// Records the seal request an approved order carries (its seal image), which the order's
    /// own review stands behind: its requester, the order's agent, need not be a member (the
    /// organisation may have no administrator yet), and the carry-out decides it at once.
    pub async fn insert_order_seal_request(
        &self,
        r: &SealRequestRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::insert_request(&mut tx, r).await?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await
    }

    async fn insert_request(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        r: &SealRequestRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
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
        .bind(r.created_at)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::classify)?;
        Ok(())
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

    /// Allows (`allowed`) or stops a phone stamping with one of an organisation's seals, with
    /// the audit event, if `by` administers its seals when it is written. The member rows of
    /// both are held locked until it commits ([`Store::lock_members`]): a grant is written
    /// only while the phone is a member, so a removal racing the grant leaves no grant behind
    /// to revive if the phone is added again (a check without the lock saw the member a
    /// running removal had deleted but not committed), and a granter removed or demoted in the
    /// meantime grants nothing. `Refused` (nothing written) when the phone is no member or the
    /// seal is not the organisation's.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_seal_user(
        &self,
        credit_code: &str,
        seal_id: &str,
        phone: &str,
        allowed: bool,
        by: &str,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<MemberWrite, StoreError> {
        let mut tx = self.pool.begin().await?;
        let roles = Self::lock_members(&mut tx, credit_code, &[by, phone]).await?;
        if !holds(&roles[0], &SEAL_ROLES) {
            return Ok(MemberWrite::NotAllowed);
        }
        let seal = sqlx::query("SELECT id FROM seals WHERE id = $1 AND credit_code = $2")
            .bind(seal_id)
            .bind(credit_code)
            .fetch_optional(&mut *tx)
            .await?;
        if seal.is_none() || (allowed && roles[1].is_none()) {
            return Ok(MemberWrite::Refused);
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
        Ok(MemberWrite::Written)
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
