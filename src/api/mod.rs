//! HTTP listeners, one module per trust zone. This is the only place errors become HTTP.
//!
//! - [`ops`]: `/live`, `/ready`, `/metrics` on the metrics listener (operations only).
//! - [`public`]: CA certificates (and, with the status work, CRLs and OCSP) for anyone.

pub mod ops;
pub mod public;
