//! The RFC 3161 timestamp authority behind `POST /tsa` on the public listener.
//!
//! One answer is numbered steps, nothing signed before the query is known to be good:
//! 1. Decode the TimeStampReq strictly ([`request`]); a refusal is a `rejection` reply with its
//!    failInfo, and nothing is signed or counted as a token.
//! 2. Check the instance has a TSA key (the ceremony makes one; older instances add it with
//!    `cloudca ceremony tsa`) and the request's policy, if any, is ours.
//! 3. Take a slot of the TSA's own share of the HSM pool (`hsm.tsa_concurrency`); none free:
//!    [`Outcome::Busy`] (503 with `Retry-After`), before any serial is spent.
//! 4. Take a serial from this daemon's block ([`serial`]; blocks come from the database, so two
//!    daemons never repeat one).
//! 5. Build TSTInfo (policy, imprint and nonce re-encoded from the decoded request, genTime to
//!    the millisecond, accuracy) and the signed attributes; sign once in the HSM.
//! 6. Assemble the token ([`token`]) and count it for the per-minute `tsa.issued` audit entry
//!    ([`tally`]): tokens are counted in the audit log, not written one by one.

pub mod request;
pub mod serial;
pub mod tally;
pub mod token;

use std::sync::Arc;

use const_oid::ObjectIdentifier;
use der::asn1::Uint;

use crate::ca::Hierarchy;
use crate::clock::Clock;
use crate::config::Config;
use crate::hsm::HsmPool;
use crate::metrics;
use crate::status::ocsp::budget::SigningBudget;
use crate::store::Store;
use request::{FailInfo, Refused};
use token::{Accuracy, GenTime, Signer, TstInfo};

/// The authorities-table role (and name) of the TSA key.
pub const ROLE: &str = "tsa";

/// How a query was answered; the API layer maps it to the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A token was signed (200).
    Granted,
    /// The query was refused (200, `rejection` with this failInfo); nothing was signed.
    Rejected(FailInfo),
    /// The TSA's HSM share was in use (503 with `Retry-After`); nothing was signed.
    Busy,
    /// No TSA key on this instance, or the HSM or database failed (503).
    Unavailable,
}

impl Outcome {
    /// The `status` label of `cloudca_tsa_responses_total`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::Rejected(_) => "rejection",
            Outcome::Busy => "busy",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// A reply: the DER TimeStampResp (every outcome has one) and how it came about.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The DER `TimeStampResp`.
    pub der: Vec<u8>,
    /// What happened.
    pub outcome: Outcome,
}

/// The timestamp authority; clones share everything.
#[derive(Clone)]
pub struct Tsa {
    inner: Arc<Inner>,
}

struct Inner {
    hsm: HsmPool,
    /// None on an instance whose ceremony predates the TSA key.
    signer: Option<Signer>,
    policy: ObjectIdentifier,
    accuracy: Accuracy,
    budget: SigningBudget,
    serials: serial::SerialBlocks,
    tally: tally::Tally,
    clock: Arc<dyn Clock>,
}

/// Why the TSA could not be set up at start-up (the daemon refuses to start).
#[derive(Debug, thiserror::Error)]
pub enum TsaError {
    /// The TSA certificate or its chain could not be read.
    #[error("TSA certificate: {0}")]
    Certificate(#[from] crate::signing::cms::CmsError),
    /// The hierarchy above the TSA certificate.
    #[error("TSA chain: {0}")]
    Chain(#[from] crate::ca::CaError),
    /// `[tsa]` settings.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

impl Tsa {
    /// The TSA of an instance: its key from the hierarchy (if the ceremony made one), the
    /// `[tsa]` settings and its own share of the pool.
    pub fn new(
        config: &Config,
        hierarchy: &Hierarchy,
        hsm: HsmPool,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Tsa, TsaError> {
        let signer = match hierarchy.authorities.values().find(|a| a.record.role == ROLE) {
            None => {
                tracing::warn!(
                    "no timestamp authority key: POST /tsa answers 503 until `cloudca ceremony tsa` adds one"
                );
                None
            }
            Some(tsa) => {
                let chain = chain_below_root(hierarchy, tsa.record.issuer.as_deref().unwrap_or_default())?;
                let label = tsa.record.key_label.clone();
                Some(Signer::new(label, tsa.algorithm, &tsa.record.certificate, &chain)?)
            }
        };
        let m = metrics::get();
        let budget = SigningBudget::with_meters(
            config.hsm.tsa_concurrency,
            m.tsa_signing_in_flight.clone(),
            m.tsa_signing_refused.clone(),
        );
        Ok(Tsa {
            inner: Arc::new(Inner {
                hsm,
                signer,
                policy: config.tsa.policy()?,
                accuracy: Accuracy::from_millis(config.tsa.accuracy_millis),
                budget,
                serials: serial::SerialBlocks::new(store.clone(), clock.clone()),
                tally: tally::Tally::new(store, clock.clone()),
                clock,
            }),
        })
    }

    /// Takes the TSA's slots also from the share all public work together may hold (start-up
    /// wiring; see [`crate::status::ocsp::budget`]).
    pub fn share_pool_with(&self, public: Arc<crate::status::ocsp::budget::PublicShare>) {
        self.inner.budget.share_with(public);
    }

    /// Answers one query (the request body); see the module docs for the steps.
    pub async fn answer(&self, der: &[u8]) -> Reply {
        let reply = self.answer_unmetered(der).await;
        metrics::get().tsa_responses.with_label_values(&[reply.outcome.label()]).inc();
        reply
    }

    async fn answer_unmetered(&self, der: &[u8]) -> Reply {
        let inner = &self.inner;
        // 1. Strict decoding.
        let request = match request::parse(der) {
            Ok(r) => r,
            Err(refused) => return rejected(&refused),
        };
        // 2. A key, and our policy.
        let Some(signer) = &inner.signer else {
            return unavailable("timestamping is not set up on this instance");
        };
        if request.policy.is_some_and(|p| p != inner.policy) {
            let text = format!("this TSA issues tokens under policy {} only", inner.policy);
            return rejected(&Refused { fail: FailInfo::UnacceptedPolicy, text });
        }
        // 3. The TSA's share of the HSM, never waiting for it.
        let Some(_slot) = inner.budget.try_take() else {
            return Reply {
                der: token::rejection(FailInfo::SystemFailure, "the timestamp authority is busy; try again"),
                outcome: Outcome::Busy,
            };
        };
        // 4. A serial no other token of this TSA has, from any daemon.
        let serial = match inner.serials.next().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reserve timestamp serials");
                return unavailable("the timestamp authority cannot answer now");
            }
        };
        // 5. TSTInfo, attributes, one HSM signature.
        let tst_info = TstInfo {
            version: 1,
            policy: inner.policy,
            message_imprint: request.imprint,
            serial_number: serial_number(serial),
            gen_time: GenTime::new(inner.clock.now()),
            accuracy: Some(inner.accuracy.clone()),
            ordering: false,
            nonce: request.nonce,
            tsa: None,
            extensions: None,
        };
        let tst_der = crate::asn1::encode(&tst_info);
        let signed = async {
            let (attributes, message) = signer.attributes(&tst_der)?;
            let signature = inner.hsm.sign(&signer.label, signer.algorithm, &message).await?;
            // 6. The token.
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(signer.token(
                tst_der,
                attributes,
                &signature,
                request.cert_req,
            )?)
        };
        match signed.await {
            Ok(der) => {
                inner.tally.count(serial);
                Reply { der, outcome: Outcome::Granted }
            }
            Err(e) => {
                tracing::warn!(error = %e, serial, "cannot sign a timestamp token");
                unavailable("the timestamp authority cannot answer now")
            }
        }
    }

    /// Writes the `tsa.issued` audit entry for the tokens counted since the last one, if any
    /// (the daemon calls it every minute and at shutdown).
    pub async fn flush_tally(&self) {
        self.inner.tally.flush().await;
    }

    /// Whether this instance has a TSA key.
    pub fn has_key(&self) -> bool {
        self.inner.signer.is_some()
    }

    /// Most timestamp signatures that were ever in flight at once (tests check the share held).
    pub fn signing_peak(&self) -> usize {
        self.inner.budget.peak()
    }
}

/// The certificates from `issuer` up to, not including, the root: what a token carries with
/// the TSA certificate (relying parties have the root already).
fn chain_below_root(hierarchy: &Hierarchy, issuer: &str) -> Result<Vec<Vec<u8>>, crate::ca::CaError> {
    let mut chain = Vec::new();
    let mut current = Some(issuer.to_string());
    while let Some(name) = current {
        let authority = hierarchy.get(&name)?;
        if authority.record.role == "root" {
            break;
        }
        chain.push(authority.record.certificate.clone());
        current = authority.record.issuer.clone().filter(|i| *i != name);
        if chain.len() > 8 {
            return Err(crate::ca::CaError::Hierarchy("issuer loop in the hierarchy".into()));
        }
    }
    Ok(chain)
}

/// A serial as a positive INTEGER.
fn serial_number(serial: u64) -> Uint {
    // Invariant: eight bytes are far below der's length limit.
    Uint::new(&serial.to_be_bytes()).expect("invariant: a u64 is a valid unsigned INTEGER")
}

fn rejected(refused: &Refused) -> Reply {
    tracing::debug!(reason = %refused.text, "timestamp query refused");
    Reply { der: token::rejection(refused.fail, &refused.text), outcome: Outcome::Rejected(refused.fail) }
}

fn unavailable(text: &str) -> Reply {
    Reply { der: token::rejection(FailInfo::SystemFailure, text), outcome: Outcome::Unavailable }
}
