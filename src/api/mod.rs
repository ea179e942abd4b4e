//! HTTP listeners, one module per trust zone. This is the only place errors become HTTP.
//!
//! - [`ops`]: `/live`, `/ready`, `/metrics` on the metrics listener (operations only).
//! - [`public`]: CA certificates, CRLs and OCSP for anyone.
//! - [`admin`]: the back office over mutual TLS ([`tls`]), roles from [`roles`]; its route
//!   table includes the RA's ([`ra`]: the web front's applicant API and the officers').
//! - [`clients`]: the `api` listener: mobile app, relying platforms, payment webhooks.
//! - [`throttle`]: rate limits as every listener applies them (429 with `Retry-After`).

pub mod accept;
pub mod admin;
pub mod clients;
pub(crate) mod identity;
pub mod limits;
pub mod mtls;
pub mod observe;
pub mod ops;
pub mod problem;
pub mod public;
pub mod ra;
pub mod throttle;
pub mod tls;
