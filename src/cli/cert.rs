//! `cloudca --config FILE cert show SERIAL`, `cert list` and `cert search [filters]`.

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::store::{CertificateQuery, CertificateRecord, Store};

/// `cert` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Show one certificate (serial in hex, any case, colons allowed) and print its PEM.
    Show {
        /// The serial as openssl prints it.
        serial: String,
    },
    /// One line per certificate: serial, status, profile, not-after, subject.
    List,
    /// Certificates matching every filter given, one line each (as `list`).
    Search(SearchArgs),
}

/// Filters of `cert search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Exact serial (hex, colons allowed).
    #[arg(long)]
    serial: Option<String>,
    /// Part of the subject (RFC 4514 text, e.g. `O=Example`).
    #[arg(long)]
    subject: Option<String>,
    /// Exact credit code or resident ID.
    #[arg(long)]
    identifier: Option<String>,
    /// issued, revoked or expired.
    #[arg(long, value_parser = ["issued", "revoked", "expired"])]
    status: Option<String>,
    /// Profile name.
    #[arg(long)]
    profile: Option<String>,
    /// Expiring at or after this time (RFC 3339).
    #[arg(long, value_parser = super::parse_time)]
    expires_after: Option<time::OffsetDateTime>,
    /// Expiring at or before this time (RFC 3339).
    #[arg(long, value_parser = super::parse_time)]
    expires_before: Option<time::OffsetDateTime>,
    /// At most this many lines.
    #[arg(long, default_value_t = 1000)]
    limit: i64,
}

/// Runs a `cert` command (database only: no HSM needed).
pub fn run(action: Action, config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let store = Store::open(&config.database).await.context("cannot open the database")?;
        match action {
            Action::Show { serial } => show(&store, &serial).await,
            Action::List => list(&store).await,
            Action::Search(args) => search(&store, args).await,
        }
    })
}

async fn show(store: &Store, text: &str) -> anyhow::Result<()> {
    let Some(serial) = crate::ca::serial::parse(text) else {
        anyhow::bail!("{text:?} is not a hexadecimal serial");
    };
    let record =
        store.certificate(&serial).await?.ok_or_else(|| anyhow::anyhow!("no certificate with serial {serial}"))?;
    println!("serial:      {}", record.serial);
    println!("status:      {}", record.status);
    println!("profile:     {}", record.profile);
    println!("issuer:      {}", record.issuer);
    println!("subject:     {}", record.subject);
    println!("not before:  {}", date(record.not_before));
    println!("not after:   {}", date(record.not_after));
    println!("sha256:      {}", super::ceremony::colon_hex(&record.fingerprint));
    print!("{}", super::pem("CERTIFICATE", &record.der));
    Ok(())
}

async fn list(store: &Store) -> anyhow::Result<()> {
    let mut after = String::new();
    loop {
        let page = store.certificates(&after, 1000).await?;
        for r in &page {
            println!("{}", line(r));
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = last.serial.clone(),
            _ => return Ok(()),
        }
    }
}

async fn search(store: &Store, a: SearchArgs) -> anyhow::Result<()> {
    let serial = match &a.serial {
        Some(text) => Some(
            crate::ca::serial::parse(text).ok_or_else(|| anyhow::anyhow!("{text:?} is not a hexadecimal serial"))?,
        ),
        None => None,
    };
    let query = CertificateQuery {
        serial,
        subject: a.subject,
        identifier: a.identifier,
        status: a.status,
        profile: a.profile,
        not_after_from: a.expires_after.map(|t| t.unix_timestamp()),
        not_after_to: a.expires_before.map(|t| t.unix_timestamp()),
        after: String::new(),
        limit: a.limit.clamp(1, 100_000),
    };
    for r in store.search_certificates(&query, crate::clock::unix_now()).await? {
        println!("{}", line(&r));
    }
    Ok(())
}

fn line(r: &CertificateRecord) -> String {
    format!("{}\t{}\t{}\t{}\t{}", r.serial, r.status, r.profile, date(r.not_after), r.subject)
}

pub(crate) fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}
