//! `cloudca --config FILE cert show SERIAL` and `cert list`.

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::store::{CertificateRecord, Store};

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
}

/// Runs a `cert` command (database only: no HSM needed).
pub fn run(action: Action, config: Config) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let store = Store::open(&config.database).await.context("cannot open the database")?;
        match action {
            Action::Show { serial } => show(&store, &serial).await,
            Action::List => list(&store).await,
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

fn line(r: &CertificateRecord) -> String {
    format!("{}\t{}\t{}\t{}\t{}", r.serial, r.status, r.profile, date(r.not_after), r.subject)
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}
