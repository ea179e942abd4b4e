//! Revocation rows, CRL numbers and pre-signed OCSP responses.

use futures_util::Stream;
use sqlx::Row;

use super::{AuditRecord, Backend, Store, StoreError};

/// A revocation as stored.
#[derive(Debug, Clone)]
pub struct RevocationRecord {
    /// Change-feed position.
    pub id: i64,
    /// Lowercase hex serial.
    pub serial: String,
    /// Issuing CA name.
    pub issuer: String,
    /// CRL partition.
    pub crl_shard: i64,
    /// Unix seconds.
    pub revoked_at: i64,
    /// CRLReason code (None: unspecified).
    pub reason: Option<i64>,
    /// Unix seconds.
    pub invalidity_date: Option<i64>,
    /// Unix seconds (the certificate's).
    pub not_after: i64,
    /// The CRL entry DER.
    pub entry: Vec<u8>,
}

/// Entries per chunk of [`Store::revoked_entries`]: about 250 KB of DER, few enough rows that
/// the per-query cost vanishes, small enough that memory stays one CRL buffer.
pub const CRL_CHUNK: i64 = 4096;

/// Consecutive CRL entries (`RevokedCert` DER, serial order), concatenated.
#[derive(Debug, Clone, Default)]
pub struct EntryChunk {
    /// How many entries `der` holds.
    pub entries: usize,
    /// The entries' DER, back to back.
    pub der: Vec<u8>,
}

/// A pre-signed OCSP response as stored.
#[derive(Debug, Clone)]
pub struct OcspRecord {
    /// Lowercase hex serial.
    pub serial: String,
    /// Issuing CA name.
    pub issuer: String,
    /// OCSPResponse DER.
    pub der: Vec<u8>,
    /// Unix seconds.
    pub this_update: i64,
    /// Unix seconds.
    pub next_update: i64,
    /// Whether the response says revoked.
    pub revoked: bool,
}

/// A signed CRL as stored.
#[derive(Debug, Clone)]
pub struct CrlRecord {
    /// Issuing CA name.
    pub issuer: String,
    /// Partition.
    pub crl_shard: i64,
    /// CRL number.
    pub number: i64,
    /// DER.
    pub der: Vec<u8>,
    /// Unix seconds.
    pub this_update: i64,
    /// Unix seconds.
    pub next_update: i64,
    /// Entries listed.
    pub entries: i64,
}

const REVOCATION_COLUMNS: &str = "id, serial, issuer, crl_shard, revoked_at, reason, invalidity_date, not_after, entry";

fn revocation(r: &sqlx::any::AnyRow) -> Result<RevocationRecord, sqlx::Error> {
    Ok(RevocationRecord {
        id: r.try_get("id")?,
        serial: r.try_get("serial")?,
        issuer: r.try_get("issuer")?,
        crl_shard: r.try_get("crl_shard")?,
        revoked_at: r.try_get("revoked_at")?,
        reason: r.try_get("reason")?,
        invalidity_date: r.try_get("invalidity_date")?,
        not_after: r.try_get("not_after")?,
        entry: r.try_get("entry")?,
    })
}

impl Store {
    /// Records a revocation, the certificate's new status and the audit event in one
    /// transaction. Returns false (and changes nothing) if it was already revoked.
    pub async fn revoke(&self, r: &RevocationRecord, audit: &AuditRecord) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO revocations (serial, issuer, crl_shard, revoked_at, reason, invalidity_date, not_after, entry) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.serial)
        .bind(&r.issuer)
        .bind(r.crl_shard)
        .bind(r.revoked_at)
        .bind(r.reason)
        .bind(r.invalidity_date)
        .bind(r.not_after)
        .bind(&r.entry)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::classify);
        match inserted {
            Ok(_) => {}
            Err(StoreError::Duplicate(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
        sqlx::query("UPDATE certificates SET status = 'revoked' WHERE serial = $1")
            .bind(&r.serial)
            .execute(&mut *tx)
            .await?;
        // The pre-signed "good" answer must not outlive the revocation, even if re-signing fails.
        sqlx::query("DELETE FROM ocsp_responses WHERE serial = $1").bind(&r.serial).execute(&mut *tx).await?;
        // A revoked certificate's cloud key is destroyed with the revocation: nothing can sign
        // with it again, even if a later check were missed.
        let destroyed = sqlx::query("UPDATE credentials SET key_blob = NULL, status = 'destroyed' WHERE serial = $1")
            .bind(&r.serial)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        if destroyed > 0 {
            self.empty_wal("a key destruction").await;
        }
        Ok(true)
    }

    /// Appends one audit event outside any batch.
    pub async fn audit(&self, a: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        super::writer::insert_audits(&mut tx, &[a]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(())
    }

    /// The revocation of a certificate, if any.
    pub async fn revocation(&self, serial: &str) -> Result<Option<RevocationRecord>, StoreError> {
        let sql = format!("SELECT {REVOCATION_COLUMNS} FROM revocations WHERE serial = $1");
        let row = sqlx::query(&sql).bind(serial).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(revocation).transpose()?)
    }

    /// Revocations after a change-feed position, oldest first.
    pub async fn revocations_after(&self, id: i64, limit: i64) -> Result<Vec<RevocationRecord>, StoreError> {
        let sql = format!("SELECT {REVOCATION_COLUMNS} FROM revocations WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = sqlx::query(&sql).bind(id).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(revocation).collect::<Result<_, _>>()?)
    }

    /// The newest change-feed position (0 when nothing was ever revoked).
    pub async fn last_revocation_id(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS n FROM revocations").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    /// The DER entries of one CRL partition, in serial order, in chunks of up to
    /// [`CRL_CHUNK`] entries concatenated by the database (the entry was encoded once, at
    /// revocation). One row per chunk rather than per entry: handing a million rows one by one
    /// from the SQLite worker thread to the async task cost most of a CRL build (issue 18).
    /// Chunks follow each other by serial (keyset), so the listing stays sorted and bounded in
    /// memory; a revocation committed while the build runs is on the next build (it marks the
    /// partition dirty).
    pub fn revoked_entries<'a>(
        &'a self,
        issuer: &'a str,
        shard: i64,
        min_not_after: i64,
    ) -> impl Stream<Item = Result<EntryChunk, StoreError>> + 'a {
        let sql = match self.backend {
            // group_concat of BLOBs appends their bytes (NULs included) in the order the
            // subquery delivers its rows: an aggregate over a LIMITed subquery is never
            // flattened, so the rows come from the index scan in serial order (checked by
            // a_crl_longer_than_one_read_chunk_lists_every_entry_once_in_serial_order). An
            // ORDER BY inside group_concat would sort each chunk again through a temporary
            // b-tree: it made the 1M build slower than reading row by row.
            Backend::Sqlite => {
                "SELECT COUNT(*), MAX(serial), CAST(group_concat(entry, '') AS BLOB) FROM \
                 (SELECT serial, entry FROM revocations WHERE issuer = $1 AND crl_shard = $2 AND not_after >= $3 \
                  AND serial > $4 ORDER BY serial LIMIT $5)"
            }
            Backend::Postgres => {
                "SELECT COUNT(*), MAX(serial), string_agg(entry, ''::bytea ORDER BY serial) FROM \
                 (SELECT serial, entry FROM revocations WHERE issuer = $1 AND crl_shard = $2 AND not_after >= $3 \
                  AND serial > $4 ORDER BY serial LIMIT $5) AS chunk"
            }
        };
        // The cursor: the last serial read ("" sorts before every serial); None once done.
        futures_util::stream::try_unfold(Some(String::new()), move |after| async move {
            let Some(after) = after else { return Ok(None) };
            let row = sqlx::query(sql)
                .bind(issuer)
                .bind(shard)
                .bind(min_not_after)
                .bind(&after)
                .bind(CRL_CHUNK)
                .fetch_one(&self.pool)
                .await?;
            let entries: i64 = row.try_get(0)?;
            if entries == 0 {
                return Ok(None);
            }
            let last: String = row.try_get(1)?;
            let der: Vec<u8> = row.try_get(2)?;
            let next = (entries == CRL_CHUNK).then_some(last);
            Ok(Some((EntryChunk { entries: entries as usize, der }, next)))
        })
    }

    /// Takes the next CRL number of a partition (atomic across processes).
    pub async fn next_crl_number(&self, issuer: &str, shard: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO crl_numbers (issuer, crl_shard, number) VALUES ($1, $2, 1) \
             ON CONFLICT (issuer, crl_shard) DO UPDATE SET number = crl_numbers.number + 1 RETURNING number",
        )
        .bind(issuer)
        .bind(shard)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("number")?)
    }

    /// Stores (or replaces) a pre-signed OCSP response; returns whether it was stored. A
    /// "good" response is refused once the certificate has a revocation row, and an older
    /// response never replaces a newer one, so a slow pre-signing cannot undo a revocation.
    pub async fn put_ocsp(&self, r: &OcspRecord) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO ocsp_responses (serial, issuer, der, this_update, next_update, revoked) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE $6 = 1 OR NOT EXISTS (SELECT 1 FROM revocations WHERE serial = $1) \
             ON CONFLICT (serial) DO UPDATE SET der = excluded.der, this_update = excluded.this_update, \
               next_update = excluded.next_update, revoked = excluded.revoked \
             WHERE ocsp_responses.this_update <= excluded.this_update AND ocsp_responses.revoked <= excluded.revoked",
        )
        .bind(&r.serial)
        .bind(&r.issuer)
        .bind(&r.der)
        .bind(r.this_update)
        .bind(r.next_update)
        .bind(i64::from(r.revoked))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The stored OCSP response of a certificate.
    pub async fn ocsp(&self, serial: &str) -> Result<Option<OcspRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT serial, issuer, der, this_update, next_update, revoked FROM ocsp_responses WHERE serial = $1",
        )
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(OcspRecord {
                serial: r.try_get("serial")?,
                issuer: r.try_get("issuer")?,
                der: r.try_get("der")?,
                this_update: r.try_get("this_update")?,
                next_update: r.try_get("next_update")?,
                revoked: r.try_get::<i64, _>("revoked")? == 1,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// Records the newest signed CRL of a partition (an older one never replaces a newer one).
    pub async fn put_crl(&self, c: &CrlRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO published_crls (issuer, crl_shard, number, der, this_update, next_update, entries) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (issuer, crl_shard) DO UPDATE SET number = excluded.number, der = excluded.der, this_update = excluded.this_update, \
               next_update = excluded.next_update, entries = excluded.entries WHERE published_crls.number < excluded.number",
        )
        .bind(&c.issuer)
        .bind(c.crl_shard)
        .bind(c.number)
        .bind(&c.der)
        .bind(c.this_update)
        .bind(c.next_update)
        .bind(c.entries)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest signed CRL of a partition.
    pub async fn published_crl(&self, issuer: &str, shard: i64) -> Result<Option<CrlRecord>, StoreError> {
        let row = sqlx::query("SELECT issuer, crl_shard, number, der, this_update, next_update, entries FROM published_crls WHERE issuer = $1 AND crl_shard = $2")
            .bind(issuer)
            .bind(shard)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(CrlRecord {
                issuer: r.try_get("issuer")?,
                crl_shard: r.try_get("crl_shard")?,
                number: r.try_get("number")?,
                der: r.try_get("der")?,
                this_update: r.try_get("this_update")?,
                next_update: r.try_get("next_update")?,
                entries: r.try_get("entries")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// Serials whose stored response expires before `before`, and certificates still in their
    /// OCSP service period with no response at all.
    pub async fn ocsp_due(&self, before: i64, still_served_after: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial FROM ocsp_responses WHERE next_update < $1 \
             UNION SELECT c.serial FROM certificates c WHERE c.not_after >= $2 \
               AND NOT EXISTS (SELECT 1 FROM ocsp_responses o WHERE o.serial = c.serial) \
             LIMIT $3",
        )
        .bind(before)
        .bind(still_served_after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.try_get("serial")).collect::<Result<_, _>>()?)
    }

    /// Drops a stored response (the certificate left its OCSP service period).
    pub async fn delete_ocsp(&self, serial: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ocsp_responses WHERE serial = $1").bind(serial).execute(&self.pool).await?;
        Ok(())
    }
}
