//! The registration authority: every application flow from a person's first click to a
//! certificate, and the officers' review of it.
//!
//! ```text
//!   web front ──mTLS (web-front)──▶ api::admin::ra ──▶ Ra::create / step / upload / pay / cancel
//!                                                          │ identity, payment, invoice,
//!                                                          │ SMS, e-mail providers
//!   officer ───mTLS (reviewer)───▶ api::admin::review ─▶ Ra::decide ─▶ carry out (custody,
//!                                                          status, lifecycle, seals)
//!   payment provider ──▶ api::clients webhook ──▶ Ra::payment_webhook (signed, idempotent)
//! ```
//!
//! An order is one row whose `data` holds each completed step's validated input; the steps
//! still to do are computed from the flow, the channel and that data ([`flow::steps`]). Every
//! write is a compare-and-set on the row's version with its audit events in the same
//! transaction, so a step either happened (and is audited) or did not.

mod authorisation;
mod challenge;
pub mod channels;
mod contacts;
pub mod flow;
mod handover;
pub mod letter;
pub mod materials;
mod model;
mod notify;
mod orders;
mod payment;
mod query;
mod review;
mod services;
pub mod setup;
pub(crate) mod steps;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;

pub use model::{mask_identifier, OrderData, OrderView};

pub use challenge::Challenge;
pub use handover::{hand_over_code_scope, NewAdministrator};
pub use orders::CodePurpose;
pub use payment::NoInvoice;
pub use query::{typed_subject, PersonCheck, QuerySession};
pub use services::CertificateChoice;

use crate::ca::IssuanceService;
use crate::clock::Clock;
use crate::config::RaConfig;
use crate::custody::Custody;
use crate::mobile::Mobile;
use crate::providers::email::EmailProvider;
use crate::providers::identity::IdentityChecks;
use crate::providers::invoice::InvoiceProvider;
use crate::providers::payment::PaymentProvider;
use crate::providers::{ProviderError, SmsProvider};
use crate::seals::Seals;
use crate::security_events::SecurityEvents;
use crate::status::StatusService;
use crate::store::{AuditRecord, ContactRecord, OrderRecord, Store, StoreError};
use channels::Channel;
use validate::FieldError;

/// Why an RA operation did not happen. Nothing was changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum RaError {
    /// Input that fails validation, field by field.
    #[error("some fields need correcting")]
    Invalid(Vec<FieldError>),
    /// A request that cannot be understood or does not fit (the message says why).
    #[error("{0}")]
    BadRequest(String),
    /// No such order, or not this applicant's.
    #[error("no such order")]
    NotFound,
    /// Another open order for the same credit code or ID number in this channel. It is not
    /// named (review M6: that would tell anyone whose identifier has an application open, and
    /// where).
    #[error(
        "an application for this {what} is already open in this channel; continue it with its order token or \
         through order query (an idle one is cancelled after some days)"
    )]
    Duplicate {
        /// "credit code" or "ID number".
        what: &'static str,
    },
    /// The order is not in a state that allows this.
    #[error("{0}")]
    State(String),
    /// The channel does not offer this.
    #[error("{0}")]
    NotOffered(String),
    /// The identity check said no; the applicant may correct the data or go offline.
    #[error("identity check failed: {0}")]
    CheckFailed(String),
    /// A payment webhook that is not authentic or not fresh.
    #[error("the webhook is not authentic: {0}")]
    Webhook(String),
    /// There is no invoice to issue again, and which reason it is.
    #[error("{0}")]
    NoInvoice(#[from] NoInvoice),
    /// The caller does not hold the role this needs (the message names it).
    #[error("{0}")]
    Forbidden(String),
    /// A provider did not answer or is down; try again or choose another method.
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// An SMS code step failed.
    #[error("{0}")]
    Code(#[from] crate::mobile::LoginError),
    /// Changed concurrently; read the order again.
    #[error("the order changed meanwhile; reload it and try again")]
    Conflict,
    /// Carrying out an approved order failed (the order stays approved-pending and can be retried).
    #[error("carrying out the order failed: {0}")]
    CarryOut(String),
    /// Database.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// An order whose stored data this binary cannot read (written by another version, or
    /// damaged): refused, and the row left as it is for an operator (the id is logged).
    #[error("the stored data of order {0} cannot be read")]
    UnreadableOrder(String),
}

/// The providers the RA calls.
#[derive(Clone)]
pub struct Providers {
    /// Text messages.
    pub sms: Arc<dyn SmsProvider>,
    /// E-mail.
    pub email: Arc<dyn EmailProvider>,
    /// Identity checks (carrier, bank, micro-deposit, face).
    pub identity: Arc<dyn IdentityChecks>,
    /// Payment (WeChat Pay / Alipay style).
    pub payment: Arc<dyn PaymentProvider>,
    /// E-invoices.
    pub invoice: Arc<dyn InvoiceProvider>,
    /// Sandbox only: where each order-query random code is also written as a JSON line
    /// (`DATA_DIR/challenge-outbox.jsonl`), as the sandbox SMS gateway writes its texts, so
    /// the dev instance and the browser tests can answer it. None with real providers.
    pub challenge_outbox: Option<std::path::PathBuf>,
}

/// What carrying out an order needs from the rest of the CA.
#[derive(Clone)]
pub struct Services {
    /// Issues renewed and changed certificates.
    pub issuance: IssuanceService,
    /// Revokes.
    pub status: StatusService,
    /// Approvals for the holder's app, re-certification, unlock.
    pub custody: Custody,
    /// SMS codes.
    pub mobile: Mobile,
    /// Seals.
    pub seals: Seals,
}

impl Services {
    /// Clones of the instance's services.
    pub fn new(
        issuance: &IssuanceService,
        status: &StatusService,
        custody: &Custody,
        mobile: &Mobile,
        seals: &Seals,
    ) -> Self {
        Services {
            issuance: issuance.clone(),
            status: status.clone(),
            custody: custody.clone(),
            mobile: mobile.clone(),
            seals: seals.clone(),
        }
    }
}

/// The RA service.
#[derive(Clone)]
pub struct Ra {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Channels by name.
    channels: crate::policies::Swappable<BTreeMap<String, Arc<Channel>>>,
    providers: Providers,
    services: Services,
    config: RaConfig,
    /// Refused webhooks, one entry per client address per minute.
    refusals: SecurityEvents,
    /// Officers' reads of personal data and materials, one entry per officer and thing read
    /// per minute; apart from `refusals`, so a flood of those cannot crowd reads out of the
    /// coalescer's table.
    reads: SecurityEvents,
}

impl Ra {
    /// Built by `Instance::open`.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        channels: BTreeMap<String, Arc<Channel>>,
        providers: Providers,
        services: Services,
        config: RaConfig,
    ) -> Self {
        let refusals = SecurityEvents::new(store.clone(), clock.clone());
        let reads = SecurityEvents::new(store.clone(), clock.clone());
        let channels = crate::policies::Swappable::new(channels);
        Ra { store, clock, channels, providers, services, config, refusals, reads }
    }

    /// Points the RA at the services as the daemon finally wired them (issuance notifying
    /// the OCSP pre-signer).
    pub fn rewire(&mut self, services: Services) {
        self.services = services;
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    fn deadline(&self) -> Duration {
        Duration::from_millis(self.config.provider_timeout_ms)
    }

    fn event(&self, kind: &str, actor: &str, order: &OrderRecord, detail: serde_json::Value) -> AuditRecord {
        let mut detail = detail;
        if let Some(map) = detail.as_object_mut() {
            map.insert("order".into(), order.id.clone().into());
            map.insert("flow".into(), order.flow.clone().into());
        }
        AuditRecord::new(self.clock.as_ref(), kind, actor, order.serial.as_deref(), detail)
    }

    /// Every channel, as the current policies define them.
    pub fn channels(&self) -> Arc<BTreeMap<String, Arc<Channel>>> {
        self.channels.current()
    }

    /// Replaces the channels (policy reload).
    pub fn replace_channels(&self, channels: BTreeMap<String, Arc<Channel>>) {
        self.channels.replace(channels);
    }

    fn channel(&self, name: &str) -> Result<Arc<Channel>, RaError> {
        self.channels
            .current()
            .get(name)
            .cloned()
            .ok_or_else(|| RaError::BadRequest(format!("channel: no channel named {name:?}")))
    }

    /// Loads an order the caller may change: only with the order's own token (review H1: a
    /// query session reads, it does not write). Anything else is "no such order" (no
    /// existence oracle).
    pub async fn authorized(&self, id: &str, token: &str) -> Result<OrderRecord, RaError> {
        let order = self.store.order(id).await?.ok_or(RaError::NotFound)?;
        if !token.is_empty() && token_hash(token) == order.token_hash {
            return Ok(order);
        }
        Err(RaError::NotFound)
    }

    /// Loads an order the caller may read: its own token, or a live order-query session that
    /// covers it. The second is [`Access::Query`]: what can act on the order (the payment QR,
    /// a face-check link) is left out of its view.
    pub async fn readable(&self, id: &str, token: &str) -> Result<(OrderRecord, Access), RaError> {
        let order = self.store.order(id).await?.ok_or(RaError::NotFound)?;
        if !token.is_empty() && token_hash(token) == order.token_hash {
            return Ok((order, Access::Owner));
        }
        if self.query_covers(&order, token).await? {
            return Ok((order, Access::Query));
        }
        Err(RaError::NotFound)
    }

    /// Writes an order (compare-and-set on its version) with its audit events; maps a second
    /// open order for the same subject to [`RaError::Duplicate`].
    async fn save(&self, order: &mut OrderRecord, audits: &[&AuditRecord]) -> Result<(), RaError> {
        self.save_with(order, None, audits).await
    }

    /// [`Ra::save`], recording the verified contacts an approval establishes in the same
    /// transaction.
    async fn save_with(
        &self,
        order: &mut OrderRecord,
        contact: Option<&ContactRecord>,
        audits: &[&AuditRecord],
    ) -> Result<(), RaError> {
        order.updated_at = self.now();
        match self.store.save_order(order, contact, audits).await {
            Ok(true) => {
                order.version += 1;
                Ok(())
            }
            Ok(false) => Err(RaError::Conflict),
            Err(StoreError::Duplicate(_)) => Err(Self::duplicate(order)),
            Err(e) => Err(e.into()),
        }
    }

    fn duplicate(order: &OrderRecord) -> RaError {
        let what = if order.flow == "personal-new" { "ID number" } else { "credit code" };
        RaError::Duplicate { what }
    }
}

/// How a reader reached an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// With the order's own token: may read and change it.
    Owner,
    /// Through an order-query session: reads only.
    Query,
}

/// SHA-256 (hex) of a bearer token: only this is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A random bearer token (256 bits, URL-safe base64).
pub fn new_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
