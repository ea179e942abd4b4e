//! Certificate services start from the subject (handbook §4.3; coverage E3, G2): renewal,
//! change, revocation, re-issue, unlock and seal orders begin with the credit code or ID number
//! and the order-query identity check ([`super::query`]: a code to a verified agent or the
//! legal representative on file, or the legal representative's bank card), then list that
//! subject's certificates to pick from. Typing a serial proves nothing: the order's
//! certificate step takes the serial together with either that session or a code sent to the
//! certificate's consenting phone.
//!
//! Who may act on a certificate (decision recorded in ARCHITECTURE.md, "Certificate
//! services"):
//! - the legal representative (their phone on file, or their bank card): every certificate of
//!   the subject, every service;
//! - the certificate's *consenter* ([`Ra::consenter`]): for an organisation certificate its
//!   certificate administrator (`org_members` admin; after a hand-over the new one), except
//!   that a PIN unlock is the key holder's own; else the cloud key's holder; else the verified
//!   agent of the approved order that produced it;
//! - nobody else: a past agent or anyone whose check passed only on some order of the subject
//!   sees no certificate and can act on none.

use serde::Serialize;

use super::flow::Flow;
use super::{token_hash, Ra, RaError};
use crate::store::{CertificateQuery, CertificateRecord};

/// One of the subject's certificates, as the picker lists it.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateChoice {
    /// Serial (hex): what the order's certificate step takes with the session.
    pub serial: String,
    /// Profile (`org`, `personal`): the product family.
    pub profile: String,
    /// The subject name (RFC 4514).
    pub subject: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// `issued`, `expired` or `revoked`.
    pub status: &'static str,
    /// Whether the key is in the CA's custody (unlock and change need it).
    pub in_custody: bool,
    /// Whether a renewal can be applied for now (inside the window, not expired or revoked).
    pub renewable_now: bool,
    /// When the renewal window opens (unix seconds).
    pub renewal_opens_at: i64,
    /// The flows this session may start on it now (`renewal`, `change`, `revocation`,
    /// `reissue`, `unlock`, `seal`): the buttons to show.
    pub services: Vec<&'static str>,
}

impl Ra {
    /// The phone whose consent stands for the certificate's subject in `flow` (see the module
    /// docs); None when nobody is on file (an officer checks the papers instead).
    pub(super) async fn consenter(&self, cert: &CertificateRecord, flow: Flow) -> Result<Option<String>, RaError> {
        if cert.profile == "org" && flow != Flow::Unlock {
            if let Some(credit_code) = &cert.identifier {
                let members = self.store.org_members(credit_code).await?;
                if let Some((phone, _)) = members.into_iter().find(|(_, role)| role == "admin") {
                    return Ok(Some(phone));
                }
            }
        }
        if let Some(c) = self.store.credential_by_serial(&cert.serial).await? {
            return Ok(Some(c.phone));
        }
        Ok(self.store.contact_of_certificate(&cert.serial).await?.and_then(|c| c.agent_phone))
    }

    /// The certificates a live query session may pick from: all of the subject's for the
    /// legal representative, those the agent consents for otherwise. Newest first.
    pub async fn subject_certificates(&self, query_token: &str) -> Result<Vec<CertificateChoice>, RaError> {
        let session = self.store.query_session(&token_hash(query_token), self.now()).await?.ok_or(RaError::NotFound)?;
        let phone = session.phone;
        let q = CertificateQuery { identifier: Some(session.subject_key), limit: 200, ..CertificateQuery::default() };
        let mut out = Vec::new();
        for cert in self.store.search_certificates(&q, self.now()).await? {
            let choice = self.choice(cert, phone.as_deref()).await?;
            // An agent sees only what they may act on; the legal representative everything.
            if phone.is_none() || !choice.services.is_empty() {
                out.push(choice);
            }
        }
        out.sort_by(|a, b| b.not_before.cmp(&a.not_before).then_with(|| b.serial.cmp(&a.serial)));
        Ok(out)
    }

    async fn choice(&self, cert: CertificateRecord, phone: Option<&str>) -> Result<CertificateChoice, RaError> {
        let now = self.now();
        let status = match cert.status.as_str() {
            "revoked" => "revoked",
            _ if cert.not_after < now => "expired",
            _ => "issued",
        };
        let opens = cert.not_after - self.renewal_window_days(&cert.profile) * 86400;
        let in_custody = self.store.credential_by_serial(&cert.serial).await?.is_some();
        let renewable_now = status == "issued" && now >= opens;
        let mut services = Vec::new();
        for flow in candidate_flows(status, renewable_now, in_custody, cert.profile == "org") {
            let allowed = match phone {
                // A PIN unlock is the key holder's own, never the legal representative's.
                None => flow != Flow::Unlock,
                Some(_) => self.consenter(&cert, flow).await?.as_deref() == phone,
            };
            if allowed {
                services.push(flow.name());
            }
        }
        Ok(CertificateChoice {
            in_custody,
            renewable_now,
            services,
            renewal_opens_at: opens,
            serial: cert.serial,
            profile: cert.profile,
            subject: cert.subject,
            not_before: cert.not_before,
            not_after: cert.not_after,
            status,
        })
    }

    /// The profile's renewal window in days (90 when the profile is gone).
    pub(super) fn renewal_window_days(&self, profile: &str) -> i64 {
        self.services.issuance.profiles.current().get(profile).map_or(90, |p| i64::from(p.renewal_window_days))
    }

    /// Checks that a live query session may pick the certificate for `flow` in `order`: the
    /// session is of the certificate's subject and of the order's channel, and is the legal
    /// representative's or the consenter's. A PIN unlock stays the key holder's alone.
    /// Anything else is "no such certificate" (nothing tells whose it is). Returns the role.
    ///
    /// The session only chooses; it never consents by itself: the consenter still confirms
    /// this order and serial with a fresh code, and the legal representative's choice goes to
    /// an officer (see `certificate_step`). A session token lives for many minutes and sits in
    /// a cookie of the web front, so whoever captured it must not be able to renew, unlock or
    /// revoke with it.
    pub(super) async fn session_consents(
        &self,
        query_token: &str,
        cert: &CertificateRecord,
        consenter: Option<&str>,
        order: &crate::store::OrderRecord,
        flow: Flow,
    ) -> Result<&'static str, RaError> {
        let refused = || RaError::BadRequest(format!("no certificate {} for this order query", cert.serial));
        let Some(session) = self.store.query_session(&token_hash(query_token), self.now()).await? else {
            return Err(refused());
        };
        if cert.identifier.as_deref() != Some(session.subject_key.as_str()) {
            return Err(refused());
        }
        if session.channel.as_deref().is_some_and(|c| c != order.channel) {
            return Err(refused());
        }
        match session.phone {
            None if flow == Flow::Unlock => Err(refused()),
            None => Ok("legal-rep"),
            Some(p) if consenter == Some(p.as_str()) => Ok("consenter"),
            Some(_) => Err(refused()),
        }
    }
}

/// The flows a certificate in this state can take (what the certificate step accepts).
fn candidate_flows(status: &str, renewable: bool, in_custody: bool, org: bool) -> Vec<Flow> {
    match status {
        "revoked" => vec![],
        "expired" => vec![Flow::Revocation],
        _ => [
            (Flow::Renewal, renewable),
            (Flow::Change, in_custody),
            (Flow::Revocation, true),
            (Flow::Reissue, true),
            (Flow::Unlock, in_custody),
            (Flow::Seal, org),
        ]
        .into_iter()
        .filter_map(|(flow, ok)| ok.then_some(flow))
        .collect(),
    }
}
