//! cloudca: an HSM-backed certificate authority and cloud-signing appliance.
//!
//! # Map
//!
//! ```text
//!   cli (main.rs, cli/)          operators' commands: dev-init, ceremony, issue, cert, serve
//!        │
//!   daemon::Instance ─────────── wires config → HSM pool → store → hierarchy → services
//!        │
//!   api (ops, public, admin,     listeners per trust zone; the only place errors become HTTP
//!        clients)
//!        │
//!   custody, signing, seals,     cloud keys and PINs, signing sessions, organisations,
//!   mobile, operators, platforms app login, back-office credentials, relying platforms
//!        │
//!   ca::IssuanceService          numbered issuance steps (ca/issue.rs)
//!      │            │
//!   hsm::HsmPool   store::Writer  PKCS#11 sessions on worker threads │ group-committed SQL
//! ```
//!
//! Start reading at [`daemon::Instance::open`] and [`ca::issue`]. `ARCHITECTURE.md` has the
//! flows, trust zones and invariants.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod asn1;
pub mod audit;
pub mod ca;
pub mod cli;
pub mod clock;
pub mod config;
pub mod coord;
pub mod csc;
pub mod custody;
pub mod daemon;
pub mod devinit;
pub mod fuzz;
pub mod hsm;
pub mod lifecycle;
pub mod metrics;
pub mod mobile;
pub mod operators;
pub mod pades;
pub mod pdf;
pub mod platforms;
pub mod policies;
pub mod providers;
pub mod ra;
pub mod ratelimit;
pub mod roles;
pub mod seals;
pub mod security_events;
pub mod signing;
pub mod status;
pub mod store;
pub mod tsa;
pub mod web;
