//! Certificate status: revocation, CRLs and the OCSP responder.
//!
//! - [`StatusService::revoke`] records a revocation (one transaction with its audit event),
//!   re-signs the certificate's OCSP response and marks its CRL for rebuilding.
//! - CRLs ([`crl`]) are built streaming, one per issuing CA and partition, kept in memory and
//!   served as DER; numbers come from the database, so they rise across processes.
//! - OCSP ([`ocsp`]) answers from pre-signed responses (no HSM work on the hot path); a nonce,
//!   several certificates or a SHA-256 CertID get a freshly signed response, within OCSP's
//!   bounded share of the HSM (`hsm.ocsp_concurrency`).
//! - [`tasks`] keeps it all current: it follows the revocation feed in the database (so a
//!   revocation made by the CLI or another daemon shows up within `propagation_seconds`),
//!   rebuilds CRLs on schedule and after revocations, and refreshes OCSP responses.

pub mod crl;
pub mod ocsp;
mod reason;
pub mod tasks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use sha1::Digest as _;
use time::OffsetDateTime;

pub use reason::RevocationReason;

use crate::ca::{serial, Hierarchy, Profile};
use crate::clock::Clock;
use crate::config::{PublicationConfig, StatusConfig};
use crate::hsm::{HsmError, HsmPool, KeyAlgorithm};
use crate::store::{AuditRecord, CrlRecord, OcspRecord, RevocationRecord, Store, StoreError};

/// Why a status operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// No certificate with that serial.
    #[error("no certificate with serial {0}")]
    UnknownSerial(String),
    /// The serial is not hexadecimal.
    #[error("{0:?} is not a hexadecimal serial")]
    BadSerial(String),
    /// No issuing CA by that name.
    #[error("no issuing CA named {0:?}")]
    UnknownCa(String),
    /// The HSM failed.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The database failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// No valid CRL has been published for that partition yet (HSM away since start-up).
    #[error("no valid CRL published for {0} yet")]
    NoCrl(String),
    /// The hierarchy lacks something status needs (an OCSP responder).
    #[error("CA hierarchy: {0}")]
    Hierarchy(String),
}

/// Largest CRL kept in the database (bytes). Partitioned CRLs stay far below it.
const MAX_STORED_CRL: usize = 16 << 20;

/// What a revocation request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked now.
    Revoked,
    /// It already was (at this time, for this reason); nothing changed.
    AlreadyRevoked {
        /// Unix seconds.
        at: i64,
        /// The recorded reason.
        reason: RevocationReason,
    },
}

/// What signs a CRL: the root or an issuing CA.
pub struct CrlSigner {
    /// Authority name (`root`, `org`, ...).
    pub name: String,
    /// Subject DER (CRL issuer).
    pub subject: Vec<u8>,
    /// Key identifier (CRL AKI), as the CA certificate's SKI says.
    pub key_id: Vec<u8>,
    /// Key label.
    pub label: String,
    /// Key algorithm.
    pub algorithm: KeyAlgorithm,
}

/// The keys and hashes of one issuing CA, as OCSP needs them.
pub struct IssuerKeys {
    /// Issuing CA name.
    pub name: String,
    /// SHA-1 of the issuer's subject DER (CertID issuerNameHash).
    pub name_sha1: Vec<u8>,
    /// SHA-1 of the issuer's public key bits (CertID issuerKeyHash).
    pub key_sha1: Vec<u8>,
    /// SHA-256 variants.
    pub name_sha256: Vec<u8>,
    /// SHA-256 variants.
    pub key_sha256: Vec<u8>,
    /// Responder key label (signs OCSP).
    pub responder_label: String,
    /// Responder key algorithm.
    pub responder_algorithm: KeyAlgorithm,
    /// Responder certificate DER (sent in every response).
    pub responder_certificate: Vec<u8>,
    /// SHA-1 of the responder's public key bits (ResponderID byKey).
    pub responder_key_hash: Vec<u8>,
}

/// A CRL ready to serve.
#[derive(Debug, Clone)]
pub struct PublishedCrl {
    /// DER.
    pub der: Bytes,
    /// CRL number.
    pub number: i64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// Entries listed.
    pub entries: usize,
}

/// Revocation, CRL and OCSP. Cheap to clone.
#[derive(Clone)]
pub struct StatusService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    hsm: HsmPool,
    config: StatusConfig,
    publication: PublicationConfig,
    profiles: crate::policies::Swappable<BTreeMap<String, Profile>>,
    clock: Arc<dyn Clock>,
    issuers: Vec<Arc<IssuerKeys>>,
    /// Root and issuing CAs, each publishing CRLs.
    crl_signers: Vec<Arc<CrlSigner>>,
    /// Pre-signed OCSP responses by serial (hex), loaded from the database on first use.
    ocsp_cache: RwLock<HashMap<String, Arc<ocsp::Cached>>>,
    /// OCSP's share of the HSM pool for signatures made because of a request.
    ocsp_budget: ocsp::budget::SigningBudget,
    /// Current CRLs by (issuing CA, partition).
    crls: RwLock<HashMap<(String, i64), Arc<PublishedCrl>>>,
    /// Partitions to rebuild soon.
    dirty: Mutex<HashSet<(String, i64)>>,
    /// Wakes the CRL task after a revocation.
    wake: tokio::sync::Notify,
}

impl StatusService {
    /// Builds the service for every issuing CA of the hierarchy (each needs an OCSP responder).
    pub fn new(
        store: Store,
        hsm: HsmPool,
        hierarchy: &Hierarchy,
        profiles: crate::policies::Swappable<BTreeMap<String, Profile>>,
        config: StatusConfig,
        publication: PublicationConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StatusError> {
        let mut issuers = Vec::new();
        let mut crl_signers = Vec::new();
        for (name, authority) in &hierarchy.authorities {
            let role = authority.record.role.as_str();
            // An external root's key is not ours: its CRLs are published by its owner.
            if role == "issuing" || (role == "root" && !authority.record.key_label.is_empty()) {
                crl_signers.push(Arc::new(crl_signer(authority)?));
            }
            if role != "issuing" {
                continue;
            }
            let responder = hierarchy
                .get(&format!("{name}-ocsp"))
                .map_err(|_| StatusError::Hierarchy(format!("issuing CA {name} has no OCSP responder")))?;
            issuers.push(Arc::new(issuer_keys(authority, responder)?));
        }
        Ok(StatusService {
            inner: Arc::new(Inner {
                store,
                hsm,
                config,
                publication,
                profiles,
                clock,
                issuers,
                crl_signers,
                ocsp_cache: RwLock::new(HashMap::new()),
                ocsp_budget: ocsp::budget::SigningBudget::new(1),
                crls: RwLock::new(HashMap::new()),
                dirty: Mutex::new(HashSet::new()),
                wake: tokio::sync::Notify::new(),
            }),
        })
    }

    /// The issuing CAs this service answers for.
    pub fn issuers(&self) -> &[Arc<IssuerKeys>] {
        &self.inner.issuers
    }

    /// Revokes a certificate. Idempotent: a second call reports `AlreadyRevoked` and changes
    /// nothing. Audited either way.
    pub async fn revoke(
        &self,
        serial_text: &str,
        reason: RevocationReason,
        invalidity_date: Option<OffsetDateTime>,
        actor: &str,
    ) -> Result<Revocation, StatusError> {
        let serial = serial::parse(serial_text).ok_or_else(|| StatusError::BadSerial(serial_text.to_string()))?;
        let store = &self.inner.store;
        let cert = store.certificate(&serial).await?.ok_or_else(|| StatusError::UnknownSerial(serial.clone()))?;
        let now = self.inner.clock.now();
        let detail = serde_json::json!({ "reason": reason.name(), "invalidity_date": invalidity_date.map(|t| t.unix_timestamp()), "issuer": cert.issuer });
        let entry = crl::encode_entry(&crl::Entry {
            serial: hex::decode(&serial).map_err(|_| StatusError::BadSerial(serial.clone()))?,
            revoked_at: now,
            reason,
            invalidity_date,
        });
        let record = RevocationRecord {
            id: 0,
            serial: serial.clone(),
            issuer: cert.issuer.clone(),
            crl_shard: cert.crl_shard,
            revoked_at: now.unix_timestamp(),
            reason: reason.code().map(i64::from),
            invalidity_date: invalidity_date.map(|t| t.unix_timestamp()),
            not_after: cert.not_after,
            entry,
        };
        let audit = |kind: &str| AuditRecord {
            at: now.unix_timestamp() * 1000,
            kind: kind.into(),
            actor: actor.into(),
            serial: Some(serial.clone()),
            detail: detail.to_string(),
        };
        if !store.revoke(&record, &audit("certificate.revoked")).await? {
            store.audit(&audit("certificate.revoke_repeated")).await?;
            let existing =
                store.revocation(&serial).await?.ok_or_else(|| StatusError::UnknownSerial(serial.clone()))?;
            return Ok(Revocation::AlreadyRevoked {
                at: existing.revoked_at,
                reason: RevocationReason::from_code(existing.reason).unwrap_or(RevocationReason::Unspecified),
            });
        }
        tracing::info!(target: "audit", serial = %serial, reason = reason.name(), actor, "certificate revoked");
        // The transaction deleted the stored "good" response; drop the copy in memory too, so
        // this process never serves it again, even if re-signing below fails (HSM away).
        self.forget_ocsp(&serial);
        // Publication: best effort now; the tasks retry whatever fails here.
        if let Err(e) = self.presign(&serial).await {
            tracing::warn!(serial = %serial, error = %e, "could not re-sign the OCSP response yet; the refresher will");
        }
        self.mark_dirty(&cert.issuer, cert.crl_shard);
        Ok(Revocation::Revoked)
    }

    /// Marks a CRL partition for rebuilding and wakes the CRL task.
    pub fn mark_dirty(&self, issuer: &str, shard: i64) {
        self.inner.dirty.lock().unwrap_or_else(|p| p.into_inner()).insert((issuer.to_string(), shard));
        self.inner.wake.notify_one();
    }

    /// Builds, signs and publishes the current CRL of one partition.
    pub async fn build_crl(&self, issuer_name: &str, shard: i64) -> Result<Arc<PublishedCrl>, StatusError> {
        let issuer = self.crl_signer(issuer_name)?.clone();
        let store = &self.inner.store;
        let now = self.inner.clock.now();
        let next_update = now + time::Duration::hours(self.inner.config.crl_validity_hours.into());
        // RFC 5280 §3.3: an entry stays until it has appeared on one regularly scheduled CRL
        // issued after the certificate expired. Keeping it for two rebuild intervals past
        // expiry guarantees that.
        let keep_after = now.unix_timestamp() - 2 * 60 * i64::from(self.inner.config.crl_rebuild_minutes);
        let number = store.next_crl_number(&issuer.name, shard).await?;
        // Sized from this partition's previous CRL, not by counting: a COUNT scans the same
        // covering index the build then reads, and cost about a quarter of a 1M build. The
        // buffer grows if revocations were added since.
        let size_hint = self
            .inner
            .crls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(issuer.name.clone(), shard))
            .map_or(0, |previous| previous.entries + previous.entries / 64);
        let partitioned = self.inner.config.crl_shards > 1 && issuer.name != "root";
        let url = partitioned
            .then(|| self.inner.publication.crl_partition_url(&issuer.name, shard, self.inner.config.crl_shards));
        let algorithm_id = issuer.algorithm.signature_algorithm_der();
        let header = crl::Header {
            algorithm_id: &algorithm_id,
            issuer: &issuer.subject,
            this_update: now,
            next_update,
            key_id: &issuer.key_id,
            number: number as u64,
            partition_url: url.as_deref(),
        };
        let entries = store.revoked_entries(&issuer.name, shard, keep_after);
        let unsigned = crl::lay_out(&header, entries, size_hint).await?;
        let signature = self.inner.hsm.sign(&issuer.label, issuer.algorithm, unsigned.tbs()).await?;
        let count = unsigned.entries;
        let published = Arc::new(PublishedCrl {
            der: unsigned.finish(&signature),
            number,
            this_update: now,
            next_update,
            entries: count,
        });
        // Kept in the database for restarts while the HSM is away and for other daemons; a CRL
        // too big for that (partition instead) is only rebuilt, never copied.
        if published.der.len() <= MAX_STORED_CRL {
            store
                .put_crl(&CrlRecord {
                    issuer: issuer.name.clone(),
                    crl_shard: shard,
                    number,
                    der: published.der.to_vec(),
                    this_update: now.unix_timestamp(),
                    next_update: next_update.unix_timestamp(),
                    entries: count as i64,
                })
                .await?;
        }
        self.inner
            .crls
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((issuer.name.clone(), shard), published.clone());
        tracing::info!(issuer = %issuer.name, shard, number, entries = count, "CRL published");
        Ok(published)
    }

    /// The newest valid CRL of a partition: this daemon's, or one another process published.
    /// Never builds on request (that would let anyone make the HSM sign): the tasks build.
    pub async fn crl(&self, issuer: &str, shard: i64) -> Result<Arc<PublishedCrl>, StatusError> {
        let now = self.inner.clock.now();
        let key = (issuer.to_string(), shard);
        let mine = self.inner.crls.read().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let stored = self.inner.store.published_crl(issuer, shard).await?;
        let newest = match (mine, stored) {
            (Some(m), Some(s)) if s.number > m.number => Some(Arc::new(published(s))),
            (Some(m), _) => Some(m),
            (None, Some(s)) => Some(Arc::new(published(s))),
            (None, None) => None,
        };
        match newest {
            Some(c) if c.next_update > now => {
                self.inner.crls.write().unwrap_or_else(|p| p.into_inner()).insert(key, c.clone());
                Ok(c)
            }
            _ => Err(StatusError::NoCrl(issuer.to_string())),
        }
    }

    /// Resolves a CRL file name from the public URL (`org.crl`, `org-3.crl`) to a partition.
    pub fn crl_for_file(&self, file: &str) -> Option<(String, i64)> {
        let stem = file.strip_suffix(".crl")?;
        let shards = self.inner.config.crl_shards;
        if shards <= 1 || stem == "root" {
            return self.crl_signer(stem).ok().map(|i| (i.name.clone(), 0));
        }
        let (name, shard) = stem.rsplit_once('-')?;
        let shard: i64 = shard.parse().ok()?;
        (shard >= 0 && shard < i64::from(shards) && self.issuer(name).is_ok()).then(|| (name.to_string(), shard))
    }

    fn issuer(&self, name: &str) -> Result<&Arc<IssuerKeys>, StatusError> {
        self.inner.issuers.iter().find(|i| i.name == name).ok_or_else(|| StatusError::UnknownCa(name.to_string()))
    }

    fn crl_signer(&self, name: &str) -> Result<&Arc<CrlSigner>, StatusError> {
        self.inner.crl_signers.iter().find(|i| i.name == name).ok_or_else(|| StatusError::UnknownCa(name.to_string()))
    }

    /// Every CRL this instance publishes: (root, 0) and (issuing CA, partition) pairs.
    pub fn partitions(&self) -> Vec<(String, i64)> {
        let shards = i64::from(self.inner.config.crl_shards.max(1));
        self.inner
            .crl_signers
            .iter()
            .flat_map(|i| {
                let n = if i.name == "root" { 1 } else { shards };
                (0..n).map(move |s| (i.name.clone(), s))
            })
            .collect()
    }
}

fn published(c: CrlRecord) -> PublishedCrl {
    let at = |t: i64| OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    PublishedCrl {
        der: Bytes::from(c.der),
        number: c.number,
        this_update: at(c.this_update),
        next_update: at(c.next_update),
        entries: c.entries as usize,
    }
}

fn crl_signer(ca: &crate::ca::Authority) -> Result<CrlSigner, StatusError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(&ca.record.certificate)
        .map_err(|e| StatusError::Hierarchy(format!("unreadable certificate: {e}")))?;
    Ok(CrlSigner {
        name: ca.record.name.clone(),
        subject: cert.tbs_certificate.subject.as_raw().to_vec(),
        key_id: ca.key_id.clone(),
        label: ca.record.key_label.clone(),
        algorithm: ca.algorithm,
    })
}

fn issuer_keys(ca: &crate::ca::Authority, responder: &crate::ca::Authority) -> Result<IssuerKeys, StatusError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    fn parse(der: &[u8]) -> Result<X509Certificate<'_>, StatusError> {
        X509Certificate::from_der(der)
            .map(|(_, c)| c)
            .map_err(|e| StatusError::Hierarchy(format!("unreadable certificate: {e}")))
    }
    let ca_cert = parse(&ca.record.certificate)?;
    let responder_cert = parse(&responder.record.certificate)?;
    let subject = ca_cert.tbs_certificate.subject.as_raw().to_vec();
    let key_bits = ca_cert.tbs_certificate.subject_pki.subject_public_key.data.to_vec();
    let responder_bits = &responder_cert.tbs_certificate.subject_pki.subject_public_key.data;
    Ok(IssuerKeys {
        name: ca.record.name.clone(),
        name_sha1: sha1::Sha1::digest(&subject).to_vec(),
        key_sha1: sha1::Sha1::digest(&key_bits).to_vec(),
        name_sha256: sha2::Sha256::digest(&subject).to_vec(),
        key_sha256: sha2::Sha256::digest(&key_bits).to_vec(),
        responder_label: responder.record.key_label.clone(),
        responder_algorithm: responder.algorithm,
        responder_certificate: responder.record.certificate.clone(),
        responder_key_hash: sha1::Sha1::digest(responder_bits).to_vec(),
    })
}

impl StatusService {
    /// Signs and stores the OCSP response of one certificate (pre-signing), or drops it when
    /// the certificate has left its profile's OCSP service period.
    pub async fn presign(&self, serial: &str) -> Result<(), StatusError> {
        let store = &self.inner.store;
        let cert = store.certificate(serial).await?.ok_or_else(|| StatusError::UnknownSerial(serial.to_string()))?;
        let issuer = self.issuer(&cert.issuer)?.clone();
        let now = self.inner.clock.now();
        let status = self.served_status(serial, &issuer.name).await?;
        if status == ocsp::response::CertStatus::Unknown {
            // Past the profile's OCSP service period: nothing to pre-sign any more.
            store.delete_ocsp(serial).await?;
            self.forget_ocsp(serial);
            return Ok(());
        }
        let serial_bytes = hex::decode(serial).map_err(|_| StatusError::BadSerial(serial.to_string()))?;
        let cert_id = ocsp::response::cert_id_sha1(&issuer.name_sha1, &issuer.key_sha1, &serial_bytes);
        let next_update = now + time::Duration::hours(self.inner.config.ocsp_validity_hours.into());
        let der = ocsp::sign(
            &self.inner.hsm,
            &issuer,
            now,
            &[ocsp::response::Single { cert_id: &cert_id, status, this_update: now, next_update }],
            None,
        )
        .await?;
        let revoked = matches!(status, ocsp::response::CertStatus::Revoked { .. });
        let record = OcspRecord {
            serial: serial.to_string(),
            issuer: issuer.name.clone(),
            der,
            this_update: now.unix_timestamp(),
            next_update: next_update.unix_timestamp(),
            revoked,
        };
        if store.put_ocsp(&record).await? {
            self.inner
                .ocsp_cache
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(serial.to_string(), Arc::new(ocsp::Cached::new(record, now.unix_timestamp())));
        } else {
            // A revocation (or a newer response) won the race: serve what the database holds.
            self.forget_ocsp(serial);
        }
        Ok(())
    }

    /// The revocation status of an issued certificate (hex serial) from the database.
    async fn status_of(&self, serial: &str) -> Result<ocsp::response::CertStatus, StatusError> {
        use ocsp::response::CertStatus;
        Ok(match self.inner.store.revocation(serial).await? {
            None => CertStatus::Good,
            Some(r) => CertStatus::Revoked {
                at: OffsetDateTime::from_unix_timestamp(r.revoked_at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                reason: RevocationReason::from_code(r.reason).unwrap_or(RevocationReason::Unspecified),
            },
        })
    }

    /// Forgets a cached OCSP response (another process changed it).
    pub(crate) fn forget_ocsp(&self, serial: &str) {
        self.inner.ocsp_cache.write().unwrap_or_else(|p| p.into_inner()).remove(serial);
    }

    /// Whether the HSM can sign now (readiness says "degraded" when it cannot but pre-signed
    /// responses are still being served).
    pub fn hsm_ready(&self) -> bool {
        self.inner.hsm.readiness().is_ok()
    }
}
