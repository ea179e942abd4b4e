//! The daemon as the web front sees it: the RA API over mutual TLS with the web-front
//! certificate, and the api listener for the seal-authorisation pages (as the app would).
//!
//! Every call names the browser it is made for in `x-forwarded-for` (the daemon trusts it from
//! the web-front certificate only), so the daemon's per-address rate limits count browsers,
//! not this process. The address comes from [`BROWSER`], set per page request by the router.
//!
//! The daemon receives exactly the path a page means (review L5): values go into a path
//! through [`segment`] (percent-encoded, dot segments refused), and every URL is built by one
//! function that refuses a path URL parsing would rewrite, so a value pasted in unencoded
//! (`../approvals`) cannot aim the web-front certificate at another endpoint.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::config::WebConfig;
use crate::ra::channels::MATERIAL_KINDS;

tokio::task_local! {
    /// The address of the browser whose page request is being served (set by the router's
    /// `security::browser` layer), forwarded on every call made while serving it.
    pub static BROWSER: std::net::IpAddr;
}

/// One answer from the daemon: status and JSON body (Null when not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Parsed body.
    pub body: Value,
    /// `Retry-After` seconds of a 429 (rate limit).
    pub retry_after: Option<u64>,
}

impl Answer {
    /// 2xx.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's title, for showing to the applicant.
    pub fn title(&self) -> String {
        self.body["title"].as_str().unwrap_or("the service did not answer").to_string()
    }
}

/// Why the daemon could not be asked at all.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// The connection failed, or the answer could not be read.
    #[error("the certificate service is unreachable: {0}")]
    Down(String),
    /// The web front would not send this request: a value that does not belong in a daemon
    /// URL (the message says which), so the daemon was not called.
    #[error("{0}")]
    Refused(String),
}

/// One path segment of a daemon URL: percent-encoded, so `/`, `?`, `#` and `%` in the value
/// stay inside the segment. An empty or dot segment is refused: URL parsing resolves `..`
/// however it is encoded (`%2e%2e` too), so no encoding keeps it a plain segment.
pub fn segment(value: &str) -> Result<String, Unreachable> {
    if matches!(value, "" | "." | "..") {
        return Err(Unreachable::Refused(format!("{value:?} is not a valid path segment")));
    }
    Ok(super::pages::urlencode(value))
}

/// The URL of `path` on `base`, refused unless URL parsing leaves the path exactly as written
/// (no dot segment resolved, no `\` turned into `/`, no query or fragment split off): the
/// request then goes to the endpoint the caller named, whatever values it pasted in.
fn url(base: &str, path: &str) -> Result<reqwest::Url, Unreachable> {
    let refused = || Unreachable::Refused(format!("the path {path:?} does not name one endpoint"));
    let url = reqwest::Url::parse(&format!("{base}{path}")).map_err(|_| refused())?;
    if !path.starts_with('/') || !url.path().ends_with(path) || url.query().is_some() || url.fragment().is_some() {
        return Err(refused());
    }
    Ok(url)
}

/// The HTTP client with the web front's credential.
#[derive(Clone)]
pub struct Daemon {
    http: reqwest::Client,
    admin: String,
    api: String,
}

impl Daemon {
    /// Builds the client from the configured credential and CA. The daemon is trusted only if
    /// its certificate chains to `daemon_ca` (the operator CA): no built-in or system roots, so
    /// a certificate any public CA issued for the daemon's name cannot stand in for it and
    /// collect the web front's client credential, order tokens and applicants' data.
    pub fn new(config: &WebConfig) -> Result<Daemon, String> {
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let mut pem = read(&config.client_cert)?;
        pem.extend(read(&config.client_key)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| format!("client_cert/client_key: {e}"))?;
        let roots =
            reqwest::Certificate::from_pem_bundle(&read(&config.daemon_ca)?).map_err(|e| format!("daemon_ca: {e}"))?;
        if roots.is_empty() {
            return Err(format!("daemon_ca: {} holds no certificate", config.daemon_ca.display()));
        }
        let builder = reqwest::Client::builder().use_rustls_tls().tls_built_in_root_certs(false);
        let http = roots
            .into_iter()
            .fold(builder, reqwest::ClientBuilder::add_root_certificate)
            .no_proxy()
            .identity(identity)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Daemon { http, admin: config.admin_url.clone(), api: config.api_url.clone() })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, Unreachable> {
        let response = forwarded(request).send().await.map_err(|e| Unreachable::Down(e.to_string()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = response.bytes().await.map_err(|e| Unreachable::Down(e.to_string()))?;
        Ok(Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), retry_after })
    }

    /// A JSON call to the RA API, with the order token when given.
    pub async fn ra(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, Unreachable> {
        let mut request = self.http.request(method, url(&self.admin, path)?);
        if let Some(t) = token {
            request = request.header("x-order-token", t);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        self.send(request).await
    }

    /// The orders an order-query session covers.
    pub async fn queried_orders(&self, query_token: &str) -> Result<Answer, Unreachable> {
        let request = self.http.get(url(&self.admin, "/v1/ra/queries/orders")?).header("x-query-token", query_token);
        self.send(request).await
    }

    /// The certificates an order-query session may pick from (certificate services).
    pub async fn queried_certificates(&self, query_token: &str) -> Result<Answer, Unreachable> {
        let request =
            self.http.get(url(&self.admin, "/v1/ra/queries/certificates")?).header("x-query-token", query_token);
        self.send(request).await
    }

    /// A POST under an order-query session (`x-query-token`), e.g. resuming an order.
    pub async fn with_query(&self, path: &str, query_token: &str, body: &Value) -> Result<Answer, Unreachable> {
        let request = self.http.post(url(&self.admin, path)?).header("x-query-token", query_token).json(body);
        self.send(request).await
    }

    /// Uploads a material's bytes. `kind` comes from the browser's form, so it must be one of
    /// the RA's material kinds before it goes near a URL (review L5).
    pub async fn upload(&self, order: &str, token: &str, kind: &str, bytes: Vec<u8>) -> Result<Answer, Unreachable> {
        if !MATERIAL_KINDS.contains(&kind) {
            return Err(Unreachable::Refused(format!("kind: one of {}", MATERIAL_KINDS.join(", "))));
        }
        let path = format!("/v1/ra/orders/{}/materials/{}", segment(order)?, segment(kind)?);
        let request = self.http.put(url(&self.admin, &path)?).header("x-order-token", token).body(bytes);
        self.send(request).await
    }

    /// A binary download (PDFs): status and bytes; with the order token when given (a letter
    /// link is its own credential).
    pub async fn download(&self, path: &str, token: Option<&str>) -> Result<(StatusCode, Vec<u8>), Unreachable> {
        let mut request = self.http.get(url(&self.admin, path)?);
        if let Some(t) = token {
            request = request.header("x-order-token", t);
        }
        let response = forwarded(request).send().await.map_err(|e| Unreachable::Down(e.to_string()))?;
        let status = response.status();
        Ok((status, response.bytes().await.map_err(|e| Unreachable::Down(e.to_string()))?.to_vec()))
    }

    /// A call to the api listener as the app would make it (bearer token when given).
    pub async fn app(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, Unreachable> {
        let mut request = self.http.request(method, url(&self.api, path)?);
        if let Some(b) = bearer {
            request = request.bearer_auth(b);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        self.send(request).await
    }
}

/// Names the browser being served (if any) in `x-forwarded-for`.
fn forwarded(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match BROWSER.try_with(|ip| *ip) {
        Ok(ip) => request.header(crate::api::throttle::FORWARDED_FOR, ip.to_string()),
        Err(_) => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://localhost:8443";

    #[test]
    fn a_dot_segment_or_a_pasted_query_never_reaches_the_daemon() {
        for path in
            ["/v1/ra/orders/x/materials/../approvals", "/v1/ra/orders/x/%2e%2e/y", "/v1/a\\..\\b", "/v1/a?b", "/v1/a#b"]
        {
            assert!(matches!(url(BASE, path), Err(Unreachable::Refused(_))), "{path}");
        }
        assert_eq!(url(BASE, "/v1/ra/orders/RA1/steps/company").unwrap().path(), "/v1/ra/orders/RA1/steps/company");
    }

    #[test]
    fn segments_are_encoded_and_dot_segments_refused() {
        assert_eq!(segment("id-front").unwrap(), "id-front");
        assert_eq!(segment("../approvals").unwrap(), "..%2Fapprovals");
        assert_eq!(segment("a?b#c%").unwrap(), "a%3Fb%23c%25");
        for bad in ["", ".", ".."] {
            assert!(segment(bad).is_err(), "{bad:?}");
        }
    }
}
