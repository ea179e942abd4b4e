//! The OCSP responder (RFC 6960, RFC 5019 profile). The hot path: parse, find the pre-signed
//! response in memory (or the database), return its bytes. Serials the issuer did not issue
//! get a constant `unauthorized`. Only requests that cannot be answered from a pre-signed
//! response (a nonce, several certificates, a SHA-256 CertID) are signed on the spot, by the
//! issuing CA's delegated responder key, within OCSP's bounded share of the HSM ([`budget`]).

pub mod budget;
pub mod request;
pub mod response;

use std::sync::Arc;

use bytes::Bytes;
use sha2::Digest;
use time::OffsetDateTime;

use self::request::{CertId, HashAlgorithm};
use self::response::{CertStatus, ErrorStatus, Single};
use super::{IssuerKeys, StatusError, StatusService};
use crate::hsm::{HsmError, HsmPool};
use crate::store::OcspRecord;

/// A pre-signed response with what HTTP caching needs.
#[derive(Debug)]
pub struct Cached {
    /// OCSPResponse DER.
    pub der: Bytes,
    /// Unix seconds.
    pub this_update: i64,
    /// Unix seconds.
    pub next_update: i64,
    /// Strong validator: hex SHA-256 of the response, quoted.
    pub etag: String,
    /// Which issuing CA's responder signed it.
    pub issuer: String,
    /// When this process took it from the database (unix seconds); memory trusts it for
    /// [`MEMORY_TRUST_SECONDS`] only, bounding staleness even if the revocation feed missed a row.
    pub loaded_at: i64,
}

/// How long a pre-signed response is served from memory before the database is asked again.
pub const MEMORY_TRUST_SECONDS: i64 = 60;

impl Cached {
    /// Wraps a stored response.
    pub fn new(record: OcspRecord, loaded_at: i64) -> Self {
        let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&record.der)[..16]));
        Cached {
            der: Bytes::from(record.der),
            this_update: record.this_update,
            next_update: record.next_update,
            etag,
            issuer: record.issuer,
            loaded_at,
        }
    }
}

/// What the responder answers.
#[derive(Debug)]
pub enum Answer {
    /// A pre-signed response (cacheable).
    Cached(Arc<Cached>),
    /// A response signed for this request (not cacheable: it may carry a nonce).
    Fresh(Vec<u8>),
    /// An unsigned error status.
    Error(ErrorStatus),
}

/// Where a pre-signed response was looked for.
enum Lookup {
    /// A still-valid pre-signed response.
    Found(Arc<Cached>),
    /// Not a certificate this issuer answers for.
    NotOurs,
    /// Ours, not pre-signed yet, and OCSP's share of the HSM is in use.
    Busy,
}

/// What signing on the spot gave.
enum Fresh {
    /// The response.
    Signed(Vec<u8>),
    /// A certificate of the request is not one this issuer answers for.
    NotOurs,
    /// OCSP's share of the HSM is in use.
    Busy,
}

/// Signs a response with the issuer's delegated responder key.
pub async fn sign(
    hsm: &HsmPool,
    issuer: &IssuerKeys,
    produced_at: OffsetDateTime,
    singles: &[Single<'_>],
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, HsmError> {
    let tbs = response::response_data(&issuer.responder_key_hash, produced_at, singles, nonce);
    let algorithm_id = issuer.responder_algorithm.signature_algorithm_der();
    let signature = hsm.sign(&issuer.responder_label, issuer.responder_algorithm, &tbs).await?;
    Ok(response::assemble(&tbs, &algorithm_id, &signature, &issuer.responder_certificate))
}

impl StatusService {
    /// Answers one DER OCSP request. HSM work happens only within OCSP's share of the pool
    /// ([`budget`]); everything else is answered from memory, the database or constant bytes:
    ///
    /// 1. one SHA-1 CertID: the pre-signed response. A serial this issuer did not issue (or no
    ///    longer answers for) gets `unauthorized`, never a signature (RFC 5019 §2.2.3).
    /// 2. with a nonce: signed for it if OCSP's share has a free slot, else the pre-signed
    ///    response with the nonce dropped (RFC 8954 §2.1 lets a responder ignore it).
    /// 3. several certificates or a SHA-256 CertID: every serial must be this issuer's
    ///    (else `unauthorized`); signed within the share, else `tryLater`.
    pub async fn answer(&self, der: &[u8]) -> Answer {
        let request = match request::parse(der) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return Answer::Error(ErrorStatus::MalformedRequest);
            }
        };
        let Some(issuer) = self.issuer_of(&request.certs[0]) else { return Answer::Error(ErrorStatus::Unauthorized) };
        if request.certs.iter().any(|c| !self.issuer_of(c).is_some_and(|i| Arc::ptr_eq(&i, &issuer))) {
            // One responder signs one response: certificates of several issuers cannot share it.
            return Answer::Error(ErrorStatus::Unauthorized);
        }
        let first = &request.certs[0];
        if request.certs.len() > 1 || first.hash != HashAlgorithm::Sha1 {
            return match self.sign_fresh(&issuer, &request.certs, request.nonce.as_deref()).await {
                Ok(Fresh::Signed(der)) => Answer::Fresh(der),
                Ok(Fresh::NotOurs) => Answer::Error(ErrorStatus::Unauthorized),
                Ok(Fresh::Busy) => Answer::Error(ErrorStatus::TryLater),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot sign an OCSP response now");
                    Answer::Error(ErrorStatus::TryLater)
                }
            };
        }
        let presigned = match self.presigned(&hex::encode(&first.serial), &issuer.name).await {
            Ok(Lookup::Found(c)) => c,
            Ok(Lookup::NotOurs) => return Answer::Error(ErrorStatus::Unauthorized),
            Ok(Lookup::Busy) => return Answer::Error(ErrorStatus::TryLater),
            Err(e) => {
                tracing::warn!(error = %e, "OCSP lookup failed");
                return Answer::Error(ErrorStatus::TryLater);
            }
        };
        let Some(nonce) = request.nonce.as_deref() else { return Answer::Cached(presigned) };
        match self.sign_fresh(&issuer, &request.certs, Some(nonce)).await {
            Ok(Fresh::Signed(der)) => Answer::Fresh(der),
            // Under load (or with the HSM away) the nonce is dropped: the pre-signed answer
            // is still valid, and better than none.
            Ok(_) => Answer::Cached(presigned),
            Err(e) => {
                tracing::warn!(error = %e, "cannot sign an OCSP response now; nonce dropped");
                Answer::Cached(presigned)
            }
        }
    }

    /// The response `POST /ocsp` would serve for a certificate `issuer` issued (pre-signed,
    /// signed now within OCSP's share if there is none yet), for a PAdES B-LT document security
    /// store. `None`: not ours, or the share was busy.
    pub async fn response_for(&self, serial: &str, issuer: &str) -> Result<Option<Vec<u8>>, StatusError> {
        Ok(match self.presigned(serial, issuer).await? {
            Lookup::Found(c) => Some(c.der.to_vec()),
            Lookup::NotOurs | Lookup::Busy => None,
        })
    }

    fn issuer_of(&self, id: &CertId) -> Option<Arc<IssuerKeys>> {
        self.inner
            .issuers
            .iter()
            .find(|i| match id.hash {
                HashAlgorithm::Sha1 => i.name_sha1 == id.name_hash && i.key_sha1 == id.key_hash,
                HashAlgorithm::Sha256 => i.name_sha256 == id.name_hash && i.key_sha256 == id.key_hash,
            })
            .cloned()
    }

    /// A still-valid pre-signed response: memory, then the database, then (for a certificate
    /// we issued but have not pre-signed yet) signed and stored now, within OCSP's share.
    async fn presigned(&self, serial: &str, issuer: &str) -> Result<Lookup, StatusError> {
        let now = self.inner.clock.now().unix_timestamp();
        if let Some(c) = self.inner.ocsp_cache.read().unwrap_or_else(|p| p.into_inner()).get(serial) {
            if c.next_update > now && now - c.loaded_at < MEMORY_TRUST_SECONDS {
                return Ok(if c.issuer == issuer { Lookup::Found(c.clone()) } else { Lookup::NotOurs });
            }
        }
        if let Some(record) = self.inner.store.ocsp(serial).await? {
            if record.issuer != issuer {
                return Ok(Lookup::NotOurs);
            }
            if record.next_update > now {
                let c = Arc::new(Cached::new(record, now));
                self.inner.ocsp_cache.write().unwrap_or_else(|p| p.into_inner()).insert(serial.to_string(), c.clone());
                return Ok(Lookup::Found(c));
            }
        }
        match self.inner.store.certificate(serial).await? {
            Some(cert) if cert.issuer == issuer => {}
            _ => return Ok(Lookup::NotOurs),
        }
        let Some(_slot) = self.inner.ocsp_budget.try_take() else { return Ok(Lookup::Busy) };
        self.presign(serial).await?;
        // Nothing cached after pre-signing: past its OCSP service period, no longer answered for.
        let cached = self.inner.ocsp_cache.read().unwrap_or_else(|p| p.into_inner()).get(serial).cloned();
        Ok(cached.map_or(Lookup::NotOurs, Lookup::Found))
    }

    /// Signs a response for these certificates now, if every one is this issuer's and OCSP's
    /// share of the HSM has a free slot.
    async fn sign_fresh(
        &self,
        issuer: &IssuerKeys,
        certs: &[CertId],
        nonce: Option<&[u8]>,
    ) -> Result<Fresh, StatusError> {
        let now = self.inner.clock.now();
        let next_update = now + time::Duration::hours(self.inner.config.ocsp_validity_hours.into());
        let mut statuses = Vec::with_capacity(certs.len());
        for c in certs {
            match self.served_status(&hex::encode(&c.serial), &issuer.name).await? {
                CertStatus::Unknown => return Ok(Fresh::NotOurs),
                status => statuses.push(status),
            }
        }
        let singles: Vec<Single<'_>> = certs
            .iter()
            .zip(statuses)
            .map(|(c, status)| Single { cert_id: &c.der, status, this_update: now, next_update })
            .collect();
        let Some(_slot) = self.inner.ocsp_budget.try_take() else { return Ok(Fresh::Busy) };
        Ok(Fresh::Signed(sign(&self.inner.hsm, issuer, now, &singles, nonce).await?))
    }

    /// Sets OCSP's share of the HSM pool (`hsm.ocsp_concurrency`), within the share all public
    /// work together may hold.
    pub fn limit_ocsp_signing(&self, cap: usize, public: Arc<budget::PublicShare>) {
        self.inner.ocsp_budget.set_cap(cap);
        self.inner.ocsp_budget.share_with(public);
    }

    /// Most OCSP signatures that were ever in flight at once in this process.
    pub fn ocsp_signing_peak(&self) -> usize {
        self.inner.ocsp_budget.peak()
    }

    /// The status OCSP serves for a serial under an issuing CA: the real one while the
    /// certificate is within its profile's OCSP service period (validity plus
    /// `status_after_expiry_days`); "unknown" after that, and for serials that CA did not issue.
    pub async fn served_status(&self, serial: &str, issuer: &str) -> Result<CertStatus, StatusError> {
        let Some(cert) = self.inner.store.certificate(serial).await? else { return Ok(CertStatus::Unknown) };
        if cert.issuer != issuer {
            return Ok(CertStatus::Unknown);
        }
        let after_expiry =
            self.inner.profiles.current().get(&cert.profile).map(|p| p.status_after_expiry_days).unwrap_or(0);
        if self.inner.clock.now().unix_timestamp() > cert.not_after + i64::from(after_expiry) * 86400 {
            return Ok(CertStatus::Unknown);
        }
        self.status_of(serial).await
    }
}
