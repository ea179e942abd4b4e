//! Certificates: search, show, issue from a CSR, revoke.
//!
//! A certificate record names its subject unmasked (a personal certificate's name and resident
//! ID number), so every search and every read of one is audited before it is served
//! (`certificate.identity_read`, once per officer and search or certificate per minute).

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{actor, rfc3339};
use crate::api::problem::{JsonBody, Params, Problem};
use crate::ca::{CaError, RequestError};
use crate::daemon::Instance;
use crate::roles::Caller;
use crate::status::{Revocation, RevocationReason, StatusError};
use crate::store::{CertificateQuery, CertificateRecord};

/// Search filters (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchParams {
    serial: Option<String>,
    subject: Option<String>,
    identifier: Option<String>,
    status: Option<String>,
    profile: Option<String>,
    not_after_from: Option<String>,
    not_after_to: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

fn hex_serial(text: &str) -> Result<String, Problem> {
    crate::ca::serial::parse(text).ok_or_else(|| Problem::bad_request("not a hexadecimal serial"))
}

fn time_param(name: &str, text: &Option<String>) -> Result<Option<i64>, Problem> {
    text.as_deref()
        .map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map(|t| t.unix_timestamp())
                .map_err(|_| Problem::bad_request(format!("{name}: an RFC 3339 time such as 2026-11-24T08:00:00Z")))
        })
        .transpose()
}

fn bounded(name: &str, text: &Option<String>, max: usize) -> Result<Option<String>, Problem> {
    match text {
        Some(t) if t.is_empty() || t.chars().count() > max => {
            Err(Problem::bad_request(format!("{name}: 1 to {max} characters")))
        }
        other => Ok(other.clone()),
    }
}

impl SearchParams {
    fn query(&self) -> Result<CertificateQuery, Problem> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(Problem::bad_request("limit: 1 to 1000"));
        }
        if let Some(s) = &self.status {
            if !["issued", "revoked", "expired"].contains(&s.as_str()) {
                return Err(Problem::bad_request("status: issued, revoked or expired"));
            }
        }
        Ok(CertificateQuery {
            serial: self.serial.as_deref().map(hex_serial).transpose()?,
            subject: bounded("subject", &self.subject, 256)?,
            identifier: bounded("identifier", &self.identifier, 64)?,
            status: self.status.clone(),
            profile: bounded("profile", &self.profile, 64)?,
            not_after_from: time_param("not_after_from", &self.not_after_from)?,
            not_after_to: time_param("not_after_to", &self.not_after_to)?,
            after: self.after.as_deref().map(hex_serial).transpose()?.unwrap_or_default(),
            limit,
        })
    }
}

/// What a listing shows of a certificate; `status` says `expired` for issued certificates
/// past their not-after.
fn summary(r: &CertificateRecord, now: i64) -> serde_json::Value {
    let status = if r.status == "issued" && r.not_after < now { "expired" } else { r.status.as_str() };
    serde_json::json!({
        "serial": r.serial, "status": status, "profile": r.profile, "issuer": r.issuer, "subject": r.subject,
        "identifier": r.identifier, "not_before": rfc3339(r.not_before), "not_after": rfc3339(r.not_after),
        "fingerprint": r.fingerprint,
    })
}

/// The filters a search was made with, for its audit entry (only those given). A person's ID
/// number or name typed as a filter is masked like everywhere else personal data is shown in
/// bulk: the log says who searched and how many records came back, not whom they looked for.
fn filters(params: &SearchParams) -> serde_json::Value {
    let given = [
        ("serial", &params.serial),
        ("subject", &params.subject),
        ("identifier", &params.identifier),
        ("status", &params.status),
        ("profile", &params.profile),
        ("not_after_from", &params.not_after_from),
        ("not_after_to", &params.not_after_to),
        ("after", &params.after),
    ];
    let mut map = serde_json::Map::new();
    for (name, value) in given {
        if let Some(v) = value {
            let shown = match name {
                "identifier" | "subject" => crate::ra::mask_identifier(v),
                _ => v.clone(),
            };
            map.insert(name.into(), shown.into());
        }
    }
    serde_json::Value::Object(map)
}

pub(super) async fn search(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Params(params): Params<SearchParams>,
) -> Result<Response, Problem> {
    let query = params.query()?;
    let now = instance.issuance.clock.now().unix_timestamp();
    let rows = instance.store.search_certificates(&query, now).await.map_err(|e| Problem::internal(&e))?;
    let filters = filters(&params);
    let detail = serde_json::json!({ "search": filters, "limit": query.limit, "results": rows.len() });
    let what = format!("search {filters} {}", query.limit);
    let officer = actor(&caller);
    let read = instance.ra.audit_officer_read(&officer, "certificate.identity_read", &what, None, detail);
    read.await.map_err(crate::api::ra::problem)?;
    let next = (rows.len() as i64 == query.limit).then(|| rows.last().map(|r| r.serial.clone())).flatten();
    let items: Vec<_> = rows.iter().map(|r| summary(r, now)).collect();
    Ok(Json(serde_json::json!({ "items": items, "next": next })).into_response())
}

pub(super) async fn show(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
) -> Result<Response, Problem> {
    let serial = hex_serial(&serial)?;
    let store = &instance.store;
    let record = store
        .certificate(&serial)
        .await
        .map_err(|e| Problem::internal(&e))?
        .ok_or_else(|| Problem::not_found("no certificate with that serial"))?;
    let officer = actor(&caller);
    let detail = serde_json::json!({});
    let read = instance.ra.audit_officer_read(&officer, "certificate.identity_read", &serial, Some(&serial), detail);
    read.await.map_err(crate::api::ra::problem)?;
    let revocation = store.revocation(&serial).await.map_err(|e| Problem::internal(&e))?.map(|r| {
        let reason = RevocationReason::from_code(r.reason).map_or("unspecified", RevocationReason::name);
        serde_json::json!({ "revoked_at": rfc3339(r.revoked_at), "reason": reason })
    });
    let mut body = summary(&record, instance.issuance.clock.now().unix_timestamp());
    body["pem"] = pem::encode(&pem::Pem::new("CERTIFICATE", record.der)).into();
    body["revocation"] = revocation.into();
    Ok(Json(body).into_response())
}

/// Body of an issuance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueBody {
    pub(crate) csr: String,
    pub(crate) profile: String,
}

pub(super) async fn issue(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<IssueBody>,
) -> Result<Response, Problem> {
    let issued =
        instance.issuance.issue(&body.profile, body.csr.as_bytes(), &actor(&caller)).await.map_err(|e| match e {
            CaError::Request(RequestError::MalformedCsr(_) | RequestError::BadCsrSignature) => {
                Problem::bad_request(e.to_string())
            }
            CaError::Request(r) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, r.to_string()),
            CaError::Hsm(h) => Problem::unavailable(&h),
            other => Problem::internal(&other),
        })?;
    if let Err(e) = instance.status.presign(&issued.serial).await {
        tracing::warn!(error = %e, "OCSP pre-signing deferred to the refresh task");
    }
    let chain: String = issued.chain.iter().map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.clone()))).collect();
    let body = serde_json::json!({
        "serial": issued.serial, "pem": pem::encode(&pem::Pem::new("CERTIFICATE", issued.der)), "chain_pem": chain,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Body of a revocation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    pub(crate) reason: String,
    #[serde(default)]
    pub(crate) invalidity_date: Option<String>,
}

pub(super) async fn revoke(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
    JsonBody(body): JsonBody<RevokeBody>,
) -> Result<Response, Problem> {
    let reason = super::reason(&body.reason)?;
    let invalidity = time_param("invalidity_date", &body.invalidity_date)?
        .map(|t| time::OffsetDateTime::from_unix_timestamp(t).map_err(|_| Problem::bad_request("invalidity_date")))
        .transpose()?;
    if invalidity.is_some_and(|t| t > instance.issuance.clock.now()) {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalidity_date is in the future"));
    }
    let outcome = match instance.status.revoke(&serial, reason, invalidity, &actor(&caller)).await {
        Ok(Revocation::Revoked) => "revoked",
        Ok(Revocation::AlreadyRevoked { .. }) => "already revoked",
        Err(StatusError::UnknownSerial(_)) => return Err(Problem::not_found("no certificate with that serial")),
        Err(StatusError::BadSerial(_)) => return Err(Problem::bad_request("not a hexadecimal serial")),
        Err(StatusError::Hsm(e)) => return Err(Problem::unavailable(&e)),
        Err(e) => return Err(Problem::internal(&e)),
    };
    Ok(Json(serde_json::json!({ "outcome": outcome })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attacker review of C6: a bare passport number or a name typed as a filter showed its
    /// first three and last four characters in the audit; now the last two, as any number that
    /// is no resident ID or credit code.
    #[test]
    fn the_search_audit_masks_identifier_and_subject_filters_by_what_they_are() {
        let params = SearchParams {
            identifier: Some("E12345678".into()),
            subject: Some("passport:E12345678".into()),
            status: Some("issued".into()),
            ..SearchParams::default()
        };
        let audited = filters(&params);
        assert_eq!(audited["identifier"], "*******78");
        assert_eq!(audited["subject"], "passport:*******78");
        assert_eq!(audited["status"], "issued");
        let params = SearchParams {
            identifier: Some("11010519491231002X".into()),
            subject: Some("John Smith".into()),
            ..SearchParams::default()
        };
        let audited = filters(&params);
        assert_eq!(audited["identifier"], "110***********002X");
        assert_eq!(audited["subject"], "********th");
    }
}
