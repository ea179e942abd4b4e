//! Integration tests, compiled as one binary. Each test gets a fresh SoftHSM2 token and a fresh
//! database (SQLite by default; PostgreSQL when `CLOUDCA_TEST_POSTGRES` names a server) through
//! the harness in `common`. Run with `cargo nextest run` (one process per test: PKCS#11 allows
//! one module initialisation per process, and each test's token lives in its own folder).

mod common;

mod admin;
mod app_cli;
mod audit;
mod audit_events;
mod audit_hash;
mod audit_pin;
mod audit_witness;
mod backup;
mod ceremony;
mod cli;
mod cluster;
mod csc;
mod custody_keys;
mod daemon;
mod faults;
mod fuzz;
mod hsm;
mod issuance;
mod lifecycle;
mod limits;
mod listener_identity;
mod listeners;
mod migrations;
mod ocsp_der;
mod ocsp_flood;
mod openapi;
mod org_members;
mod pades;
mod ra;
mod ra_attacks;
mod ra_bounds;
mod ra_id_types;
mod ra_identity;
mod ra_money;
mod ra_privacy;
mod ra_services;
mod review_pages;
mod roles;
mod signing;
mod sole_control;
mod status;
mod storage;
mod systemd;
mod tsa;
mod web;
mod web_client;
mod web_flows;
mod web_methods;
mod web_pages;
mod web_query;
mod web_seals;
mod web_services;
