//! Rows of cloud-key custody and signing: approvals, credentials, SMS codes, mobile sessions,
//! signing sessions and single-use authorisations. State changes are conditional updates
//! (`... WHERE state = 'pending'`), so two requests racing for the same change cannot both win.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{AuditRecord, Store, StoreError};

/// An approval: this identity, at this phone, may hold a certificate of this profile.
#[derive(Debug, Clone)]
pub struct ApprovalRecord {
    /// Random id.
    pub id: String,
    /// Profile name.
    pub profile: String,
    /// JSON `[[attribute, value], ...]`.
    pub subject: String,
    /// Credit code or resident ID.
    pub identifier: String,
    /// E.164 phone number.
    pub phone: String,
    /// `approved`, `enrolling` (claimed by an enrolment in progress), `used` or `cancelled`.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Audit actor who created it.
    pub created_by: String,
    /// No enrolment after this (unix seconds): an approval nobody took up does not wait forever
    /// for whoever holds the phone number next.
    pub expires_at: i64,
    /// The person who will hold the key (the applicant, or an organisation's verified agent):
    /// the identity proof before the first PIN checks this person. None on approvals from
    /// before it was recorded; they cannot be enrolled until an officer issues a new one.
    pub holder: Option<HolderIdentity>,
}

/// The person an identity proof checks: name and identity document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderIdentity {
    /// Name as on the identity document.
    pub name: String,
    /// The person's identifier ([`crate::ca::identifiers::person_identifier`]): a resident ID
    /// number, or another document's type and number (`passport:E12345678`).
    pub id_number: String,
}

impl HolderIdentity {
    /// The identity document's type and number.
    pub fn document(&self) -> (crate::ca::identifiers::IdType, &str) {
        crate::ca::identifiers::document_of(&self.id_number)
    }
}

/// A holder's credential: certificate, wrapped key, PIN hash and lock state.
#[derive(Debug, Clone)]
pub struct CredentialRecord {
    /// Random id.
    pub id: String,
    /// The approval it was made from.
    pub approval_id: String,
    /// E.164 phone number.
    pub phone: String,
    /// Certificate serial (lowercase hex).
    pub serial: String,
    /// Key algorithm name.
    pub key_algorithm: String,
    /// Wrapped private key; None once destroyed.
    pub key_blob: Option<Vec<u8>>,
    /// Blob format version.
    pub blob_version: i64,
    /// HMAC binding the blob to this row.
    pub binding: String,
    /// Argon2id PHC string.
    pub pin_hash: String,
    /// Consecutive wrong PINs.
    pub failed_attempts: i64,
    /// `active`, `locked` or `destroyed`.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// What [`Store::authorize_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorized {
    /// The PIN try is settled, the authorisation recorded and spent, the session `signing`, the
    /// key use audited: sign now, once.
    Spent,
    /// The credential stopped being active after its PIN try was reserved (locked by other
    /// tries, destroyed by a revocation): the right PIN must not be used. Nothing changed.
    CredentialInactive,
    /// The session is no longer claimed (another approval won, it expired): only the PIN try
    /// was settled.
    SessionTaken,
}

/// A signing session as stored.
#[derive(Debug, Clone)]
pub struct SigningSessionRecord {
    /// Random id.
    pub id: String,
    /// Relying platform name.
    pub platform: String,
    /// Public token in the QR payload.
    pub start_token: String,
    /// HMAC secret shared with the platform's back end only.
    pub start_secret: Vec<u8>,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// No claim after this (unix seconds).
    pub scan_deadline: i64,
    /// No approval after this (unix seconds).
    pub expires_at: i64,
    /// The platform's request, JSON.
    pub request: String,
    /// `pending`, `claimed`, `signed`, `refused`, `expired`.
    pub state: String,
    /// Who claimed it.
    pub phone: Option<String>,
    /// Which credential signed.
    pub credential_id: Option<String>,
    /// The signatures, JSON.
    pub result: Option<String>,
}

const CREDENTIAL_COLUMNS: &str = "id, approval_id, phone, serial, key_algorithm, key_blob, blob_version, binding, \
     pin_hash, failed_attempts, status, created_at";
/// How many PIN unlocks one credential may have in a window (review M1: each unlock restarts
/// the PIN counter, so unlimited unlocks are unlimited PIN guesses).
#[derive(Debug, Clone, Copy)]
pub struct UnlockAllowance {
    /// Unlocks allowed in a window.
    pub max: i64,
    /// The window's length in seconds, from its first unlock.
    pub window_seconds: i64,
}

impl UnlockAllowance {
    /// `$3` (a window that started before it is over) and `$4` (the cap) of the statements
    /// using [`COUNT_UNLOCK`] and [`UNLOCK_ALLOWED`].
    pub(super) fn window(self, now: i64) -> (i64, i64) {
        (now - self.window_seconds, self.max)
    }

    /// As [`UnlockAllowance::window`]; no allowance (an officer in person) counts in a window
    /// of the usual length but never refuses.
    fn bounds(allowance: Option<UnlockAllowance>, now: i64) -> (i64, i64) {
        match allowance {
            Some(a) => a.window(now),
            None => (now - crate::custody::UNLOCKS.window_seconds, i64::MAX),
        }
    }
}

/// Counts one unlock: a new window when the last one is over (`$3`: the earliest start still
/// inside), else one more in it. `$2` is now.
pub(super) const COUNT_UNLOCK: &str =
    "unlock_count = CASE WHEN unlock_window_start < $3 THEN 1 ELSE unlock_count + 1 END, \
     unlock_window_start = CASE WHEN unlock_window_start < $3 THEN $2 ELSE unlock_window_start END";

/// The allowance check, evaluated on the row being updated: its window is over, or it has
/// fewer than `$4` unlocks.
pub(super) const UNLOCK_ALLOWED: &str = "(unlock_window_start < $3 OR unlock_count < $4)";

const SESSION_COLUMNS: &str =
    "id, platform, start_token, start_secret, created_ms, scan_deadline, expires_at, request, \
     state, phone, credential_id, result";

fn approval(r: &AnyRow) -> Result<ApprovalRecord, sqlx::Error> {
    Ok(ApprovalRecord {
        id: r.try_get("id")?,
        profile: r.try_get("profile")?,
        subject: r.try_get("subject")?,
        identifier: r.try_get("identifier")?,
        phone: r.try_get("phone")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        expires_at: r.try_get("expires_at")?,
        holder: match (
            r.try_get::<Option<String>, _>("holder_name")?,
            r.try_get::<Option<String>, _>("holder_id_number")?,
        ) {
            (Some(name), Some(id_number)) => Some(HolderIdentity { name, id_number }),
            _ => None,
        },
    })
}

fn credential(r: &AnyRow) -> Result<CredentialRecord, sqlx::Error> {
    Ok(CredentialRecord {
        id: r.try_get("id")?,
        approval_id: r.try_get("approval_id")?,
        phone: r.try_get("phone")?,
        serial: r.try_get("serial")?,
        key_algorithm: r.try_get("key_algorithm")?,
        key_blob: r.try_get("key_blob")?,
        blob_version: r.try_get("blob_version")?,
        binding: r.try_get("binding")?,
        pin_hash: r.try_get("pin_hash")?,
        failed_attempts: r.try_get("failed_attempts")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
    })
}

fn session(r: &AnyRow) -> Result<SigningSessionRecord, sqlx::Error> {
    Ok(SigningSessionRecord {
        id: r.try_get("id")?,
        platform: r.try_get("platform")?,
        start_token: r.try_get("start_token")?,
        start_secret: r.try_get("start_secret")?,
        created_ms: r.try_get("created_ms")?,
        scan_deadline: r.try_get("scan_deadline")?,
        expires_at: r.try_get("expires_at")?,
        request: r.try_get("request")?,
        state: r.try_get("state")?,
        phone: r.try_get("phone")?,
        credential_id: r.try_get("credential_id")?,
        result: r.try_get("result")?,
    })
}

impl Store {
    /// Records an approval with its audit event.
    pub async fn insert_approval(&self, a: &ApprovalRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT INTO approvals (id, profile, subject, identifier, phone, status, created_at, created_by, \
             expires_at, holder_name, holder_id_number) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&a.id)
        .bind(&a.profile)
        .bind(&a.subject)
        .bind(&a.identifier)
        .bind(&a.phone)
        .bind(&a.status)
        .bind(a.created_at)
        .bind(&a.created_by)
        .bind(a.expires_at)
        .bind(a.holder.as_ref().map(|h| h.name.clone()))
        .bind(a.holder.as_ref().map(|h| h.id_number.clone()));
        self.execute_audited(q, audit).await.map(|_| ())
    }

    /// One approval.
    pub async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM approvals WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(approval).transpose().map_err(StoreError::from)
    }

    /// Approvals for a phone, newest first.
    pub async fn approvals_for_phone(&self, phone: &str) -> Result<Vec<ApprovalRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM approvals WHERE phone = $1 ORDER BY created_at DESC, id")
            .bind(phone)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(approval).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// Gives a claimed approval back (`enrolling` → `approved`) after an enrolment failed, so
    /// the holder can try again with a new identity proof.
    pub async fn release_approval(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE approvals SET status = 'approved' WHERE id = $1 AND status = 'enrolling'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a new credential and marks its claimed approval used, with the audit event,
    /// atomically. Returns false (nothing written) when the approval is no longer `enrolling`.
    pub async fn create_credential(&self, c: &CredentialRecord, audit: &AuditRecord) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let used = sqlx::query("UPDATE approvals SET status = 'used' WHERE id = $1 AND status = 'enrolling'")
            .bind(&c.approval_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if used == 0 {
            return Ok(false);
        }
        let sql = format!(
            "INSERT INTO credentials ({CREDENTIAL_COLUMNS}, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)"
        );
        sqlx::query(&sql)
            .bind(&c.id)
            .bind(&c.approval_id)
            .bind(&c.phone)
            .bind(&c.serial)
            .bind(&c.key_algorithm)
            .bind(&c.key_blob)
            .bind(c.blob_version)
            .bind(&c.binding)
            .bind(&c.pin_hash)
            .bind(c.failed_attempts)
            .bind(&c.status)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::classify)?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(true)
    }

    /// One credential.
    pub async fn credential(&self, id: &str) -> Result<Option<CredentialRecord>, StoreError> {
        self.credential_where("id", id).await
    }

    /// The credential enrolled against an approval, if the holder has enrolled.
    pub async fn credential_by_approval(&self, approval_id: &str) -> Result<Option<CredentialRecord>, StoreError> {
        self.credential_where("approval_id", approval_id).await
    }

    /// The credential whose unique `column` (id, approval_id, serial) has `value`.
    async fn credential_where(&self, column: &str, value: &str) -> Result<Option<CredentialRecord>, StoreError> {
        let sql = format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE {column} = $1");
        let row = sqlx::query(&sql).bind(value).fetch_optional(&self.pool).await?;
        row.as_ref().map(credential).transpose().map_err(StoreError::from)
    }

    /// Credentials of a phone.
    pub async fn credentials_for_phone(&self, phone: &str) -> Result<Vec<CredentialRecord>, StoreError> {
        let sql = format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE phone = $1 ORDER BY created_at, id");
        let rows = sqlx::query(&sql).bind(phone).fetch_all(&self.pool).await?;
        rows.iter().map(credential).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// Reserves one PIN try before the PIN is checked: counts it as a failure up front, in one
    /// conditional update, only while the credential is active and fewer than `max` tries are
    /// counted. Returns the count including this try, or None when no try is left (locked,
    /// destroyed, or `max` tries already in flight). So K parallel guesses on any number of
    /// daemons get exactly `max` checks; a crash after the reservation leaves it counted.
    pub async fn reserve_pin_attempt(&self, id: &str, max: i64, now: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "UPDATE credentials SET failed_attempts = failed_attempts + 1, updated_at = $3 \
             WHERE id = $1 AND status = 'active' AND failed_attempts < $2 RETURNING failed_attempts",
        )
        .bind(id)
        .bind(max)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("failed_attempts")).transpose()?)
    }

    /// A reserved try turned out right: the count starts again. False when the credential
    /// stopped being active meanwhile (then the right PIN must not be used).
    pub async fn settle_pin_success(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE credentials SET failed_attempts = 0, updated_at = $2 WHERE id = $1 AND status = 'active'",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A reserved try turned out wrong: it stays counted, and the credential locks once `max`
    /// are counted. Returns (count, status) after it; the audit event is in the same
    /// transaction.
    pub async fn settle_pin_failure(
        &self,
        id: &str,
        max: i64,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<(i64, String), StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE credentials SET updated_at = $3, \
             status = CASE WHEN failed_attempts >= $2 AND status = 'active' THEN 'locked' ELSE status END \
             WHERE id = $1 RETURNING failed_attempts, status",
        )
        .bind(id)
        .bind(max)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok((row.try_get("failed_attempts")?, row.try_get("status")?))
    }

    /// Sets a new PIN hash after the old PIN was given (PIN change): only on an active
    /// credential, so a change never lifts a lock.
    pub async fn set_pin(&self, id: &str, pin_hash: &str, now: i64, audit: &AuditRecord) -> Result<bool, StoreError> {
        let q = sqlx::query(
            "UPDATE credentials SET pin_hash = $2, failed_attempts = 0, updated_at = $3 \
             WHERE id = $1 AND status = 'active'",
        )
        .bind(id)
        .bind(pin_hash)
        .bind(now);
        Ok(self.execute_audited(q, audit).await? > 0)
    }

    /// The credential holding a certificate's key, if the key is in custody.
    pub async fn credential_by_serial(&self, serial: &str) -> Result<Option<CredentialRecord>, StoreError> {
        self.credential_where("serial", serial).await
    }

    /// Points a credential at its renewed or changed certificate (same key, new binding).
    pub async fn rebind_credential(
        &self,
        id: &str,
        serial: &str,
        binding: &str,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let q = sqlx::query(
            "UPDATE credentials SET serial = $2, binding = $3, updated_at = $4 WHERE id = $1 AND status IN ('active', 'locked')",
        )
        .bind(id)
        .bind(serial)
        .bind(binding)
        .bind(now);
        Ok(self.execute_audited(q, audit).await? > 0)
    }

    /// Lifts a PIN lock after an approved unlock order (the PIN stays; the counter restarts),
    /// counting it against the credential's unlock allowance in the same statement, so two
    /// unlocks racing each other cannot both pass (review M1). `allowance` is `None` when an
    /// officer decided in person: counted, never refused. False when the credential is gone or
    /// the allowance is used up; [`Store::unlocks_since`] tells which.
    pub async fn lift_lock(
        &self,
        id: &str,
        now: i64,
        allowance: Option<UnlockAllowance>,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let (since, max) = UnlockAllowance::bounds(allowance, now);
        let sql = format!(
            "UPDATE credentials SET failed_attempts = 0, status = 'active', updated_at = $2, {COUNT_UNLOCK} \
             WHERE id = $1 AND status IN ('active', 'locked') AND {UNLOCK_ALLOWED}"
        );
        let q = sqlx::query(&sql).bind(id).bind(now).bind(since).bind(max);
        Ok(self.execute_audited(q, audit).await? > 0)
    }

    /// Unlocks of the credential bound to `serial` in the window that started at or after
    /// `since` (0 when none): what the RA checks before an applicant pays for an unlock the
    /// allowance would refuse anyway.
    pub async fn unlocks_since(&self, serial: &str, since: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(unlock_count), 0) AS n FROM credentials \
             WHERE serial = $1 AND unlock_window_start >= $2",
        )
        .bind(serial)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Stores a hashed one-time code; its id lets the caller withdraw it if the SMS fails.
    pub async fn insert_sms_code(
        &self,
        phone: &str,
        purpose: &str,
        code_hash: &str,
        now: i64,
        ttl: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO sms_codes (phone, purpose, code_hash, sent_at, expires_at, attempts, used) \
             VALUES ($1, $2, $3, $4, $5, 0, 0) RETURNING id",
        )
        .bind(phone)
        .bind(purpose)
        .bind(code_hash)
        .bind(now)
        .bind(now + ttl)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Withdraws a code the SMS gateway did not take: it counts against no per-phone limit,
    /// so the person can ask again at once, and cannot be used if it arrives late.
    pub async fn withdraw_sms_code(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sms_codes WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Spends every live code of a purpose and object (its scope), whichever phone it went to:
    /// a new offer replaces the earlier ones. Returns how many were withdrawn.
    pub async fn spend_sms_codes_of(&self, scope: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE sms_codes SET used = 1 WHERE purpose = $1 AND used = 0")
            .bind(scope)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Codes sent to a phone since `since` (any purpose), for rate limits.
    pub async fn sms_sent_since(&self, phone: &str, since: i64) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM sms_codes WHERE phone = $1 AND sent_at >= $2")
            .bind(phone)
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Spends one attempt on the newest live code of a phone and scope (`purpose:object`): returns its hash if an
    /// attempt was left (the caller compares), None when there is no usable code.
    pub async fn take_sms_attempt(
        &self,
        phone: &str,
        purpose: &str,
        now: i64,
        max_attempts: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        // One statement whether or not a live code exists (issue 17: the same database work
        // for a subject nobody asked a code for as for a wrong code to a known one).
        let row = sqlx::query(
            "UPDATE sms_codes SET attempts = attempts + 1 WHERE id = (SELECT id FROM sms_codes WHERE phone = $1 \
             AND purpose = $2 AND used = 0 AND expires_at > $3 AND attempts < $4 ORDER BY sent_at DESC, id DESC \
             LIMIT 1) AND attempts < $5 RETURNING id, code_hash",
        )
        .bind(phone)
        .bind(purpose)
        .bind(now)
        .bind(max_attempts)
        .bind(max_attempts)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((row.try_get("id")?, row.try_get("code_hash")?)))
    }

    /// Marks a code used; false if it was used meanwhile (a code works once).
    pub async fn use_sms_code(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE sms_codes SET used = 1 WHERE id = $1 AND used = 0")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Opens a mobile session (token hash only), with its audit event.
    pub async fn insert_mobile_session(
        &self,
        token_hash: &str,
        phone: &str,
        now: i64,
        expires_at: i64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT INTO mobile_sessions (token_hash, phone, created_at, expires_at, revoked) VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(token_hash)
        .bind(phone)
        .bind(now)
        .bind(expires_at);
        self.execute_audited(q, audit).await.map(|_| ())
    }

    /// The phone of a live mobile session.
    pub async fn mobile_session_phone(&self, token_hash: &str, now: i64) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT phone FROM mobile_sessions WHERE token_hash = $1 AND revoked = 0 AND expires_at > $2")
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get("phone")).transpose()?)
    }

    /// Ends a mobile session.
    pub async fn revoke_mobile_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE mobile_sessions SET revoked = 1 WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a new signing session with its audit event.
    pub async fn insert_signing_session(
        &self,
        s: &SigningSessionRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO signing_sessions ({SESSION_COLUMNS}, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        let q = sqlx::query(&sql)
            .bind(&s.id)
            .bind(&s.platform)
            .bind(&s.start_token)
            .bind(&s.start_secret)
            .bind(s.created_ms)
            .bind(s.scan_deadline)
            .bind(s.expires_at)
            .bind(&s.request)
            .bind(&s.state)
            .bind(&s.phone)
            .bind(&s.credential_id)
            .bind(&s.result)
            .bind(s.created_ms / 1000);
        self.execute_audited(q, audit).await.map(|_| ())
    }

    /// One signing session by id.
    pub async fn signing_session(&self, id: &str) -> Result<Option<SigningSessionRecord>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM signing_sessions WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(session).transpose().map_err(StoreError::from)
    }

    /// One signing session by the public token of its QR payload.
    pub async fn signing_session_by_token(&self, token: &str) -> Result<Option<SigningSessionRecord>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM signing_sessions WHERE start_token = $1");
        let row = sqlx::query(&sql).bind(token).fetch_optional(&self.pool).await?;
        row.as_ref().map(session).transpose().map_err(StoreError::from)
    }

    /// Moves a session from `from` to `to` (setting the phone on a claim), with its audit event;
    /// false when it was not in `from` (someone else won, or it expired).
    pub async fn transition_session(
        &self,
        id: &str,
        from: &str,
        to: &str,
        phone: Option<&str>,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let q = sqlx::query(
            "UPDATE signing_sessions SET state = $3, phone = COALESCE($4, phone), updated_at = $5 \
             WHERE id = $1 AND state = $2",
        )
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(phone)
        .bind(now);
        Ok(self.execute_audited(q, audit).await? > 0)
    }

    /// Records a single-use authorisation and spends it, in one transaction with settling the
    /// credential's reserved PIN try (the PIN was right: the count starts again), moving the
    /// session from `claimed` to `signing`, and the audit event of the key use it allows: the
    /// credential must still be active, the authorisation unused, unexpired and bound to exactly
    /// this credential and these hashes, and the session still claimed (one authorisation per
    /// session, by a unique index too). Anything but [`Authorized::Spent`] means nothing may be
    /// signed. One durable commit where settling the try on its own took a second one.
    #[allow(clippy::too_many_arguments)]
    pub async fn authorize_once(
        &self,
        id: &str,
        session_id: &str,
        credential_id: &str,
        hashes_digest: &str,
        expires_at: i64,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<Authorized, StoreError> {
        let mut tx = self.pool.begin().await?;
        let settled = sqlx::query(
            "UPDATE credentials SET failed_attempts = 0, updated_at = $2 WHERE id = $1 AND status = 'active'",
        )
        .bind(credential_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if settled != 1 {
            // Rolled back: the reserved try stays counted, as for any PIN that cannot be used.
            return Ok(Authorized::CredentialInactive);
        }
        let moved = sqlx::query(
            "UPDATE signing_sessions SET state = 'signing', updated_at = $2 WHERE id = $1 AND state = 'claimed'",
        )
        .bind(session_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            // The PIN was right: its try is settled even though another approval won.
            tx.commit().await?;
            return Ok(Authorized::SessionTaken);
        }
        sqlx::query(
            "INSERT INTO authorizations (id, session_id, credential_id, hashes_digest, expires_at, used) \
             VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(id)
        .bind(session_id)
        .bind(credential_id)
        .bind(hashes_digest)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::classify)?;
        let spent = sqlx::query(
            "UPDATE authorizations SET used = 1 WHERE id = $1 AND credential_id = $2 AND hashes_digest = $3 \
             AND used = 0 AND expires_at > $4",
        )
        .bind(id)
        .bind(credential_id)
        .bind(hashes_digest)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if spent != 1 {
            // Rolled back whole, the settled try included: counted, never signed.
            return Ok(Authorized::SessionTaken);
        }
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(Authorized::Spent)
    }

    /// Ends a session whose signing failed after its authorisation was spent (`signing` →
    /// `failed`), with the audit event: the authorisation is gone, so the platform opens a new
    /// session rather than the same one being approved twice.
    pub async fn fail_session(&self, id: &str, now: i64, audit: &AuditRecord) -> Result<bool, StoreError> {
        let q = sqlx::query(
            "UPDATE signing_sessions SET state = 'failed', updated_at = $2 WHERE id = $1 AND state = 'signing'",
        )
        .bind(id)
        .bind(now);
        Ok(self.execute_audited(q, audit).await? > 0)
    }

    /// Completes a session being signed with its signatures and the audit event.
    pub async fn complete_session(
        &self,
        id: &str,
        credential_id: &str,
        result: &str,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let q = sqlx::query(
            "UPDATE signing_sessions SET state = 'signed', credential_id = $2, result = $3, updated_at = $4 \
             WHERE id = $1 AND state = 'signing'",
        )
        .bind(id)
        .bind(credential_id)
        .bind(result)
        .bind(now);
        Ok(self.execute_audited(q, audit).await? > 0)
    }

    /// Deletes the signing sessions that ended, or whose lifetime ran out, before `before`
    /// (unix seconds), with their spent authorisations and CSC rows, except one whose SAD is
    /// issued and still unspent and valid: the PDFs and signatures they hold are not kept
    /// longer than the platform needs to collect them (attacker review H2). The audit
    /// chain keeps the evidence (`signing.opened` with the document's digest, `signing.signed`).
    /// One `signing.sessions_purged` event (at `now_ms`) when anything went, and then the SQLite
    /// WAL emptied ([`Store::empty_wal`]); returns how many.
    pub async fn purge_signing_sessions(&self, before: i64, now_ms: i64) -> Result<u64, StoreError> {
        // A SAD issued late (authorizeCheck may come any time after signing) keeps its session
        // until it is spent or expires (attacker review of the purge, L2).
        const DONE: &str = "((state IN ('signed', 'refused', 'expired', 'failed') AND updated_at < $1) \
             OR expires_at < $1) AND NOT EXISTS (SELECT 1 FROM csc_authorizations c \
             WHERE c.session_id = signing_sessions.id AND c.spent_at IS NULL AND c.sad_expires_at >= $2)";
        let now = now_ms / 1000;
        let mut tx = self.pool.begin().await?;
        // The session's single-use authorisation (spent with it) and CSC row go first.
        for table in ["authorizations", "csc_authorizations"] {
            let sql = format!("DELETE FROM {table} WHERE session_id IN (SELECT id FROM signing_sessions WHERE {DONE})");
            sqlx::query(&sql).bind(before).bind(now).execute(&mut *tx).await.map_err(StoreError::classify)?;
        }
        let sql = format!("DELETE FROM signing_sessions WHERE {DONE}");
        let query = sqlx::query(&sql).bind(before).bind(now);
        let gone = query.execute(&mut *tx).await.map_err(StoreError::classify)?.rows_affected();
        if gone == 0 {
            tx.commit().await?;
            return Ok(0);
        }
        let audit = AuditRecord {
            at: now_ms,
            kind: "signing.sessions_purged".into(),
            actor: "daemon".into(),
            serial: None,
            detail: serde_json::json!({ "sessions": gone, "ended_before": before }).to_string(),
        };
        super::writer::insert_audits(&mut tx, &[&audit]).await?;
        super::audit::commit(tx, 1).await?;
        // Their PDFs leave no copy in the WAL either (a document-sized session grows it past
        // the frames normal traffic writes over).
        self.empty_wal("the purge of signing sessions").await;
        Ok(gone)
    }
}
