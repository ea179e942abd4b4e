//! What the fault tests check afterwards: the database as the daemon left it, the CRL and
//! OCSP answers for every revocation, the audit chain.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::load::Record;
use crate::common::*;

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// The database as the daemon left it, read directly.
pub struct Snapshot {
    /// serial → DER.
    pub certificates: HashMap<String, Vec<u8>>,
    /// Serials with `status = 'revoked'`.
    pub marked_revoked: HashSet<String>,
    pub reserved: HashSet<String>,
    pub revocations: HashSet<String>,
    /// Serials of `certificate.issued` and `certificate.revoked` events (duplicates kept).
    pub issued_events: Vec<String>,
    pub revoked_events: Vec<String>,
}

pub async fn snapshot(ca: &TestCa) -> Snapshot {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&ca.config.database.url).await.unwrap();
    let serials = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql)
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String, _>(0).unwrap())
                .collect::<Vec<String>>()
        }
    };
    let certificates = sqlx::query("SELECT serial, der FROM certificates")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get::<String, _>(0).unwrap(), r.try_get::<Vec<u8>, _>(1).unwrap()))
        .collect();
    let s = Snapshot {
        certificates,
        marked_revoked: serials("SELECT serial FROM certificates WHERE status = 'revoked'").await.into_iter().collect(),
        reserved: serials("SELECT serial FROM serials").await.into_iter().collect(),
        revocations: serials("SELECT serial FROM revocations").await.into_iter().collect(),
        issued_events: serials("SELECT serial FROM audit_events WHERE kind = 'certificate.issued'").await,
        revoked_events: serials("SELECT serial FROM audit_events WHERE kind = 'certificate.revoked'").await,
    };
    pool.close().await;
    s
}

/// Nothing lost, nothing half-written: every certificate a client received is in the database
/// with exactly those bytes, no serial twice, every certificate has its reserved serial and its
/// audit event (and no event lacks its certificate), revocation rows, certificate status and
/// revocation events agree, every acknowledged revocation is stored, the audit chain verifies.
pub async fn check_database(ca: &TestCa, record: &Record) -> Snapshot {
    let db = snapshot(ca).await;
    let received: HashSet<&str> = record.issued.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(received.len(), record.issued.len(), "a serial was handed out twice");
    for (serial, der) in &record.issued {
        assert_eq!(db.certificates.get(serial), Some(der), "received certificate {serial} is not stored as received");
    }
    for serial in db.certificates.keys() {
        assert!(db.reserved.contains(serial), "certificate {serial} without its reserved serial");
    }
    let events: HashSet<&String> = db.issued_events.iter().collect();
    assert_eq!(events.len(), db.issued_events.len(), "an issuance audited twice");
    let stored: HashSet<&String> = db.certificates.keys().collect();
    assert_eq!(events, stored, "certificate rows and certificate.issued events differ");
    let revoked_events: HashSet<String> = db.revoked_events.iter().cloned().collect();
    assert_eq!(revoked_events.len(), db.revoked_events.len(), "a revocation audited twice");
    assert_eq!(db.revocations, db.marked_revoked, "revocation rows and certificate status differ");
    assert_eq!(db.revocations, revoked_events, "revocation rows and certificate.revoked events differ");
    for serial in &record.revoked {
        assert!(db.revocations.contains(serial), "acknowledged revocation of {serial} is not stored");
    }
    audit_verifies(ca);
    db
}

pub fn audit_verifies(ca: &TestCa) {
    let out = cloudca(&["--config", ca.config_path.to_str().unwrap(), "audit", "verify"]);
    assert!(out.ok, "audit verify: {}", out.text);
}

/// Asks openssl about `cert` as an RFC 6960 client would: `tryLater` is asked again (bounded).
/// A revocation acknowledged while the database was away has no signed response until the
/// revocation feed re-signs it (within `status.propagation_seconds`); meanwhile a request that
/// needs a signature on the spot while OCSP's HSM share is busy gets `tryLater`, by design
/// (taking a slot never waits, see `status::ocsp::budget`).
fn ask_until_answered(check: &OcspCheck, cert: &Path) -> Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = check.run(cert, &["-no_nonce"]);
        if !out.text.contains("trylater") || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every revocation in the database is on the `org` CRL the public listener serves (waiting
/// for the rebuild: after a `kill -9` the dead daemon's CRL lease must lapse first), the CRL
/// verifies with openssl, and OCSP (openssl, the pre-signed path) says revoked for each.
/// Returns when the CRL listed them all.
pub async fn check_crl_and_ocsp(ca: &TestCa, public: &str, db: &Snapshot) -> Instant {
    let deadline = Instant::now() + cloudca::coord::TTL + Duration::from_secs(30);
    let path = ca.path("org.crl");
    let listed_at = loop {
        let response = http().get(format!("{public}/crl/org.crl")).send().await;
        if let Some(r) = response.ok().filter(|r| r.status() == 200) {
            let der = r.bytes().await.unwrap();
            let (_, crl) = x509_parser::parse_x509_crl(&der).expect("a CRL");
            let listed: HashSet<String> = crl
                .iter_revoked_certificates()
                .map(|r| hex::encode(r.raw_serial()).trim_start_matches('0').to_string())
                .collect();
            let missing: Vec<&String> =
                db.revocations.iter().filter(|s| !listed.contains(s.trim_start_matches('0'))).collect();
            if missing.is_empty() {
                std::fs::write(&path, &der).unwrap();
                break Instant::now();
            }
            assert!(Instant::now() < deadline, "revocations missing from the CRL: {missing:?}");
        }
        assert!(Instant::now() < deadline, "no CRL served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let bundle = bundle(ca, "org");
    let args = ["crl", "-inform", "DER", "-in", path.to_str().unwrap(), "-CAfile", bundle.to_str().unwrap(), "-noout"];
    let out = run("openssl", &args);
    assert!(out.ok && out.text.contains("verify OK"), "openssl crl: {}", out.text);

    // OCSP, several openssl processes at once.
    let jobs: Vec<(String, PathBuf)> = db
        .revocations
        .iter()
        .map(|serial| {
            let path = ca.path(&format!("revoked-{serial}.pem"));
            write_pem(&path, "CERTIFICATE", &db.certificates[serial]);
            (serial.clone(), path)
        })
        .collect();
    let check = OcspCheck::new(ca, public);
    let handles: Vec<_> = jobs
        .chunks(jobs.len().div_ceil(4).max(1))
        .map(|chunk| {
            let (chunk, check) = (chunk.to_vec(), check.clone());
            tokio::task::spawn_blocking(move || {
                for (serial, cert) in chunk {
                    let out = ask_until_answered(&check, &cert);
                    assert!(
                        out.text.contains("Response verify OK") && out.text.contains(": revoked"),
                        "OCSP for revoked {serial}: {}",
                        out.text
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("OCSP checks");
    }
    listed_at
}
