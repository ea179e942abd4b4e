//! Typed metric families, registered once into one registry that `/metrics` renders.
//! Names follow Prometheus conventions: `cloudca_<subsystem>_<what>_<unit>`.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Every metric the process exports.
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Sessions (worker threads) in the HSM pool.
    pub hsm_pool_size: IntGauge,
    /// 1 when the HSM pool has working sessions, 0 while it is rebuilding or the token is gone.
    pub hsm_ready: IntGauge,
    /// 1 for each once-only job whose lease this daemon holds (`crate::coord`).
    pub leases_held: IntGaugeVec,
    /// Completed HSM operations by kind.
    pub hsm_operations: IntCounterVec,
    /// Failed HSM operations by PKCS#11 function and CKR code.
    pub hsm_errors: IntCounterVec,
    /// Time from queueing an HSM job to its answer, by kind.
    pub hsm_operation_seconds: HistogramVec,
    /// Session rebuilds after a loss.
    pub hsm_rebuilds: IntCounter,
    /// PKCS#11 module re-initialisations (C_Finalize + C_Initialize) after a long outage.
    pub hsm_module_reinits: IntCounter,
    /// OCSP signatures in flight, against `hsm.ocsp_concurrency` (security review M2).
    pub ocsp_signing_in_flight: IntGauge,
    /// OCSP requests answered without a fresh signature because OCSP's HSM share was in use
    /// (nonce dropped, or `tryLater`).
    pub ocsp_signing_refused: IntCounter,
    /// Timestamp replies by status: `granted`, `rejection` (a refused query: nothing
    /// signed), `busy` (the TSA's HSM share was in use: 503), `unavailable` (no TSA key, or the
    /// HSM or database failed: 503).
    pub tsa_responses: IntCounterVec,
    /// Timestamp signatures in flight, against `hsm.tsa_concurrency`.
    pub tsa_signing_in_flight: IntGauge,
    /// Timestamp requests answered 503 because the TSA's HSM share was in use.
    pub tsa_signing_refused: IntCounter,
    /// Issuance outcomes by profile and result (`issued`, `refused`, `failed`).
    pub issuance: IntCounterVec,
    /// End-to-end issuance latency by profile.
    pub issuance_seconds: HistogramVec,
    /// Rows per group commit of the database writer.
    pub db_batch_size: Histogram,
    /// How long each group commit took, fsync included: with the batch size, whether the
    /// writer is what limits issuance (busy nearly all the time) or is waiting for work.
    pub db_commit_seconds: Histogram,
    /// HTTP requests by listener, route (as routed, never with values) and status code.
    pub http_requests: IntCounterVec,
    /// Failed TLS handshakes by listener and reason (`no_certificate`, `unknown_issuer`,
    /// `revoked`, `expired`, ...).
    pub tls_handshake_failures: IntCounterVec,
    /// Requests refused by role (or by a revoked certificate on an open connection).
    pub access_denied: IntCounter,
    /// Audit entries committed to the hash chain.
    pub audit_appends: IntCounter,
    /// Seconds since the newest signed checkpoint (set when `/metrics` is scraped).
    pub audit_checkpoint_age: IntGauge,
    /// 1 while this daemon's checkpoint round finds the audit chain broken and refuses to sign.
    pub audit_chain_broken: IntGauge,
    /// Checkpoint rounds that refused to sign, by reason (`chain_broken`,
    /// `checkpoints_deleted`, `witness`).
    pub audit_checkpoint_refusals: IntCounterVec,
    /// Orders by flow and state (set when `/metrics` is scraped; no per-order labels).
    pub ra_orders: IntGaugeVec,
    /// Seconds from submission to an officer's decision, by flow.
    pub ra_review_wait_seconds: HistogramVec,
    /// Seconds the oldest order in the review queue has waited (set when scraped).
    pub ra_review_oldest_seconds: IntGauge,
    /// Third-party provider calls by provider, operation and outcome (`ok`, `refused`,
    /// `unavailable`, `timeout`).
    pub provider_calls: IntCounterVec,
    /// Provider call latency by provider.
    pub provider_call_seconds: HistogramVec,
    /// Requests refused by a rate limit, by limit (its `[limits]` key).
    pub rate_limited: IntCounterVec,
    /// SMS not sent because of a bound, by reason: `country` (outside
    /// `custody.sms_country_codes`), `no_standing` (a login or admin code to a phone with no
    /// approval or credential), `budget` (`custody.sms_total_per_hour` spent).
    pub sms_refused: IntCounterVec,
    /// Material uploads refused by an order's bounds, by bound (`order_upload_bytes`,
    /// `uploads_per_material`).
    pub uploads_refused: IntCounterVec,
    /// Open connections by listener (`api::accept`).
    pub connections_open: IntGaugeVec,
    /// Connections closed before serving, by listener and reason (`max_connections`,
    /// `max_connections_per_client`, `proxy_header`, `untrusted_proxy`).
    pub connections_refused: IntCounterVec,
    /// Connections closed by a timeout, by listener and phase (`handshake`, `header`, `idle`,
    /// `request`).
    pub connections_timed_out: IntCounterVec,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics, registered on first use.
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| build().unwrap_or_else(|e| panic!("metric registration is static and cannot collide: {e}")))
}

fn latency_buckets() -> Vec<f64> {
    vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
}

fn build() -> prometheus::Result<Metrics> {
    let registry = Registry::new_custom(Some("cloudca".into()), None)?;
    let m = Metrics {
        hsm_pool_size: IntGauge::new("hsm_pool_size", "Sessions in the HSM pool")?,
        hsm_ready: IntGauge::new("hsm_ready", "1 when the HSM pool has working sessions")?,
        leases_held: IntGaugeVec::new(
            Opts::new("leases_held", "1 for each once-only job whose lease this daemon holds"),
            &["job"],
        )?,
        hsm_operations: IntCounterVec::new(Opts::new("hsm_operations_total", "Completed HSM operations"), &["op"])?,
        hsm_errors: IntCounterVec::new(
            Opts::new("hsm_errors_total", "Failed HSM operations by PKCS#11 function and code"),
            &["function", "code"],
        )?,
        hsm_operation_seconds: HistogramVec::new(
            HistogramOpts::new("hsm_operation_seconds", "Queue-to-answer time of HSM jobs").buckets(latency_buckets()),
            &["op"],
        )?,
        hsm_rebuilds: IntCounter::new("hsm_session_rebuilds_total", "HSM session rebuilds after a loss")?,
        hsm_module_reinits: IntCounter::new(
            "hsm_module_reinits_total",
            "PKCS#11 module re-initialisations after no session worked for a while",
        )?,
        ocsp_signing_in_flight: IntGauge::new("ocsp_signing_in_flight", "OCSP signatures in flight")?,
        ocsp_signing_refused: IntCounter::new(
            "ocsp_signing_refused_total",
            "OCSP requests answered without a fresh signature: OCSP's HSM share was in use",
        )?,
        tsa_responses: IntCounterVec::new(
            Opts::new("tsa_responses_total", "Timestamp replies by status"),
            &["status"],
        )?,
        tsa_signing_in_flight: IntGauge::new("tsa_signing_in_flight", "Timestamp signatures in flight")?,
        tsa_signing_refused: IntCounter::new(
            "tsa_signing_refused_total",
            "Timestamp requests answered 503: the TSA's HSM share was in use",
        )?,
        issuance: IntCounterVec::new(Opts::new("issuance_total", "Issuance outcomes"), &["profile", "result"])?,
        issuance_seconds: HistogramVec::new(
            HistogramOpts::new("issuance_seconds", "End-to-end issuance latency").buckets(latency_buckets()),
            &["profile"],
        )?,
        db_batch_size: Histogram::with_opts(
            HistogramOpts::new("db_batch_rows", "Writes per group commit")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?,
        db_commit_seconds: Histogram::with_opts(
            HistogramOpts::new("db_commit_seconds", "Group commit duration, fsync included").buckets(latency_buckets()),
        )?,
        http_requests: IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by listener, route and status"),
            &["listener", "route", "status"],
        )?,
        tls_handshake_failures: IntCounterVec::new(
            Opts::new("tls_handshake_failures_total", "Failed TLS handshakes by listener and reason"),
            &["listener", "reason"],
        )?,
        access_denied: IntCounter::new("access_denied_total", "Requests refused by role")?,
        audit_appends: IntCounter::new("audit_appends_total", "Audit entries committed to the hash chain")?,
        audit_checkpoint_age: IntGauge::new(
            "audit_checkpoint_age_seconds",
            "Seconds since the newest signed audit checkpoint",
        )?,
        audit_chain_broken: IntGauge::new(
            "audit_chain_broken",
            "1 while the checkpoint round finds the audit chain broken and refuses to sign",
        )?,
        audit_checkpoint_refusals: IntCounterVec::new(
            Opts::new("audit_checkpoint_refusals_total", "Audit checkpoint rounds that refused to sign, by reason"),
            &["reason"],
        )?,
        ra_orders: IntGaugeVec::new(Opts::new("ra_orders", "Orders by flow and state"), &["flow", "state"])?,
        ra_review_wait_seconds: HistogramVec::new(
            HistogramOpts::new("ra_review_wait_seconds", "Submission to review decision").buckets(vec![
                60.0,
                600.0,
                3600.0,
                4.0 * 3600.0,
                86400.0,
                3.0 * 86400.0,
                5.0 * 86400.0,
                10.0 * 86400.0,
            ]),
            &["flow"],
        )?,
        ra_review_oldest_seconds: IntGauge::new(
            "ra_review_oldest_seconds",
            "Seconds the oldest order in the review queue has waited",
        )?,
        provider_calls: IntCounterVec::new(
            Opts::new("provider_calls_total", "Third-party provider calls by provider, operation and outcome"),
            &["provider", "operation", "outcome"],
        )?,
        provider_call_seconds: HistogramVec::new(
            HistogramOpts::new("provider_call_seconds", "Provider call latency").buckets(latency_buckets()),
            &["provider"],
        )?,
        rate_limited: IntCounterVec::new(
            Opts::new("rate_limited_total", "Requests refused by a rate limit"),
            &["limit"],
        )?,
        sms_refused: IntCounterVec::new(
            Opts::new("sms_refused_total", "SMS not sent because of a bound"),
            &["reason"],
        )?,
        uploads_refused: IntCounterVec::new(
            Opts::new("uploads_refused_total", "Material uploads refused by an order's bounds"),
            &["bound"],
        )?,
        connections_open: IntGaugeVec::new(Opts::new("connections_open", "Open connections"), &["listener"])?,
        connections_refused: IntCounterVec::new(
            Opts::new("connections_refused_total", "Connections closed before serving, by reason"),
            &["listener", "reason"],
        )?,
        connections_timed_out: IntCounterVec::new(
            Opts::new("connections_timed_out_total", "Connections closed by a timeout, by phase"),
            &["listener", "phase"],
        )?,
        registry,
    };
    m.registry.register(Box::new(m.hsm_pool_size.clone()))?;
    m.registry.register(Box::new(m.hsm_ready.clone()))?;
    m.registry.register(Box::new(m.leases_held.clone()))?;
    m.registry.register(Box::new(m.hsm_operations.clone()))?;
    m.registry.register(Box::new(m.hsm_errors.clone()))?;
    m.registry.register(Box::new(m.hsm_operation_seconds.clone()))?;
    m.registry.register(Box::new(m.hsm_rebuilds.clone()))?;
    m.registry.register(Box::new(m.hsm_module_reinits.clone()))?;
    m.registry.register(Box::new(m.ocsp_signing_in_flight.clone()))?;
    m.registry.register(Box::new(m.ocsp_signing_refused.clone()))?;
    m.registry.register(Box::new(m.tsa_responses.clone()))?;
    m.registry.register(Box::new(m.tsa_signing_in_flight.clone()))?;
    m.registry.register(Box::new(m.tsa_signing_refused.clone()))?;
    for status in ["granted", "rejection", "busy", "unavailable"] {
        m.tsa_responses.with_label_values(&[status]);
    }
    m.registry.register(Box::new(m.issuance.clone()))?;
    m.registry.register(Box::new(m.issuance_seconds.clone()))?;
    m.registry.register(Box::new(m.db_batch_size.clone()))?;
    m.registry.register(Box::new(m.db_commit_seconds.clone()))?;
    m.registry.register(Box::new(m.http_requests.clone()))?;
    m.registry.register(Box::new(m.tls_handshake_failures.clone()))?;
    m.registry.register(Box::new(m.access_denied.clone()))?;
    m.registry.register(Box::new(m.audit_appends.clone()))?;
    m.registry.register(Box::new(m.audit_checkpoint_age.clone()))?;
    m.registry.register(Box::new(m.audit_chain_broken.clone()))?;
    m.registry.register(Box::new(m.audit_checkpoint_refusals.clone()))?;
    for reason in ["chain_broken", "checkpoints_deleted", "witness"] {
        // Present at 0 from the start, so `increase()` in an alert rule sees the first refusal.
        m.audit_checkpoint_refusals.with_label_values(&[reason]);
    }
    m.registry.register(Box::new(m.ra_orders.clone()))?;
    m.registry.register(Box::new(m.ra_review_wait_seconds.clone()))?;
    m.registry.register(Box::new(m.ra_review_oldest_seconds.clone()))?;
    m.registry.register(Box::new(m.provider_calls.clone()))?;
    m.registry.register(Box::new(m.provider_call_seconds.clone()))?;
    m.registry.register(Box::new(m.rate_limited.clone()))?;
    m.registry.register(Box::new(m.sms_refused.clone()))?;
    m.registry.register(Box::new(m.uploads_refused.clone()))?;
    m.registry.register(Box::new(m.connections_open.clone()))?;
    m.registry.register(Box::new(m.connections_refused.clone()))?;
    m.registry.register(Box::new(m.connections_timed_out.clone()))?;
    Ok(m)
}

/// Renders the registry in the Prometheus text format.
pub fn render() -> String {
    let mut out = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&get().registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
