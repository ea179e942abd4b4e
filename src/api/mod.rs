//! HTTP listeners, one module per trust zone. This is the only place errors become HTTP.
//!
//! - [`ops`]: `/live`, `/ready`, `/metrics` on the metrics listener (operations only).
//! - [`public`]: CA certificates, CRLs and OCSP for anyone.
//! - [`admin`]: the back office over mutual TLS ([`tls`]), roles from [`roles`]; its route
//!   table includes the RA's ([`ra`]: the web front's applicant API and the officers').
//! - [`clients`]: the `api` listener: mobile app, relying platforms, payment webhooks.
//! - [`accept`]: the one serving path (connection caps, timeouts, client address from
//!   [`client_addr`] and [`proxy_header`]) every listener runs on.
//! - [`throttle`]: rate limits as every listener applies them (429 with `Retry-After`).

pub mod accept;
pub mod admin;
pub mod client_addr;
pub mod clients;
pub(crate) mod identity;
pub mod limits;
pub mod mtls;
pub mod observe;
pub mod ops;
pub mod problem;
pub mod proxy_header;
pub mod public;
pub mod ra;
pub mod throttle;
pub mod tls;
