//! The audit log: query and verification (auditors).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::api::problem::{Params, Problem};
use crate::daemon::Instance;
use crate::store::AuditQuery;

/// Audit query filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryParams {
    after_seq: Option<i64>,
    kind: Option<String>,
    actor: Option<String>,
    serial: Option<String>,
    limit: Option<i64>,
}

pub(super) async fn query(
    State(instance): State<Instance>,
    Params(p): Params<QueryParams>,
) -> Result<Response, Problem> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request("limit: 1 to 1000"));
    }
    let after_seq = p.after_seq.unwrap_or(0);
    if after_seq < 0 {
        return Err(Problem::bad_request("after_seq: 0 or more"));
    }
    let too_long = |v: &Option<String>, max: usize| v.as_ref().is_some_and(|s| s.is_empty() || s.chars().count() > max);
    if too_long(&p.kind, 64) || too_long(&p.actor, 256) {
        return Err(Problem::bad_request("kind: 1 to 64 characters; actor: 1 to 256"));
    }
    let serial = match &p.serial {
        Some(s) => Some(crate::ca::serial::parse(s).ok_or_else(|| Problem::bad_request("not a hexadecimal serial"))?),
        None => None,
    };
    let q = AuditQuery { after_seq, kind: p.kind, actor: p.actor, serial, limit };
    let entries = instance.store.audit_events(&q).await.map_err(|e| Problem::internal(&e))?;
    let next_seq = (entries.len() as i64 == limit).then(|| entries.last().map(|e| e.seq)).flatten();
    let items: Vec<_> = entries
        .iter()
        .map(|e| {
            let detail: serde_json::Value = serde_json::from_str(&e.record.detail).unwrap_or(serde_json::Value::Null);
            serde_json::json!({
                "seq": e.seq, "at": time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.record.at) * 1_000_000)
                    .ok().and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
                "kind": e.record.kind, "actor": e.record.actor, "serial": e.record.serial, "detail": detail, "hash": e.hash,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items, "next_seq": next_seq })).into_response())
}

/// The same verification as `cloudca audit verify`: the database, and this daemon's own
/// witness (a missing or unreadable witness is reported as not intact).
pub(super) async fn verify(State(instance): State<Instance>) -> Result<Response, Problem> {
    let witness = crate::audit::WitnessSource { path: instance.config.audit_witness(), explicit: false };
    let pinned = instance.config.audit.certificate_sha256.as_deref();
    let verdict = match crate::audit::verify(&instance.store, &[witness], pinned).await {
        Ok(verdict) => verdict,
        Err(crate::audit::AuditError::Witness(e)) => crate::audit::Verdict::Broken(e.to_string()),
        Err(e) => return Err(Problem::internal(&e)),
    };
    Ok(Json(match verdict {
        crate::audit::Verdict::Intact { entries, checkpoints, .. } => {
            serde_json::json!({ "intact": true, "entries": entries, "checkpoints": checkpoints })
        }
        crate::audit::Verdict::Broken(problem) => serde_json::json!({ "intact": false, "problem": problem }),
    })
    .into_response())
}
