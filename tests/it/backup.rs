//! Back-up and restore (docs/backup.md): a back-up taken while the daemon runs is restored into
//! a fresh instance (a new folder, the restored database, a copy of the token folder as the
//! stand-in for the HSM vendor's back-up), whose daemon then serves every certificate, reports
//! the revocation by OCSP and in the CRL, and whose audit chain verifies. SQLite goes through
//! `cloudca backup create|restore`; PostgreSQL through pg_dump and pg_restore into a new
//! database, checked by `cloudca backup verify`. Damaged, foreign and misplaced restores are
//! refused with a message that says why, and change nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use cloudca::config::Config;

fn config_arg(ca: &TestCa) -> &str {
    ca.config_path.to_str().unwrap()
}

/// A new, empty PostgreSQL database on the test server; returns its URL.
async fn new_postgres_database(admin: &str) -> String {
    use rand::RngCore;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect to the test PostgreSQL server");
    let name = format!("cloudca_r_{}_{}", std::process::id(), rand::rngs::OsRng.next_u32());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    format!("{base}/{name}")
}

/// Copies a folder tree (file modes kept), leaving out the top-level entries named in `skip`.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, &[]);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A fresh instance built from `ca`'s configuration, policies, secrets and TLS material, and a
/// copy of its token folder (taken while no process uses the token, as the SoftHSM2 stand-in
/// for an HSM back-up), with an empty data folder. Same listeners as `ca` (whose daemon must be
/// stopped): relying parties keep the URLs in their certificates. `database_url` replaces a
/// PostgreSQL URL; an SQLite instance keeps its path under the new folder.
fn fresh_instance(ca: &TestCa, database_url: Option<&str>) -> TestCa {
    let dir = tempfile::tempdir().unwrap();
    let old = ca.config_path.parent().unwrap().to_path_buf();
    let new = dir.path().canonicalize().unwrap().join("ca");
    copy_tree(&old, &new, &["data"]);
    std::fs::create_dir(new.join("data")).unwrap();
    let (old_text, new_text) = (old.to_str().unwrap(), new.to_str().unwrap());
    for file in ["cloudca.toml", "softhsm2.conf", "web.toml"] {
        let path = new.join(file);
        let text = std::fs::read_to_string(&path).unwrap().replace(old_text, new_text);
        let text = match database_url {
            Some(url) => text
                .lines()
                .map(|l| if l.starts_with("url = \"postgres") { format!("url = \"{url}\"") } else { l.to_string() })
                .map(|l| l + "\n")
                .collect(),
            None => text,
        };
        std::fs::write(&path, text).unwrap();
    }
    let config_path = new.join("cloudca.toml");
    let config = Config::load(&config_path).expect("fresh config");
    TestCa { dir, config_path, config }
}

/// Polls until `check` is Ok (status tasks run in the background), or fails with its last error.
async fn eventually<F: FnMut() -> Result<(), String>>(what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The org CRL the daemon serves, as openssl prints it after checking its signature.
async fn crl_text(ca: &TestCa, daemon: &Daemon) -> String {
    let der = http().get(format!("{}/crl/org.crl", daemon.public)).send().await.unwrap().bytes().await.unwrap();
    let path = ca.path("served.crl");
    std::fs::write(&path, &der).unwrap();
    let bundle = bundle(ca, "org");
    let out = run(
        "openssl",
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            path.to_str().unwrap(),
            "-CAfile",
            bundle.to_str().unwrap(),
            "-noout",
            "-text",
        ],
    );
    assert!(out.ok && out.text.contains("verify OK"), "{}", out.text);
    out.text
}

/// Everything `cert list` prints: serial, status, profile, expiry, subject per certificate.
fn certificate_list(ca: &TestCa) -> String {
    let out = cloudca(&["--config", config_arg(ca), "cert", "list"]);
    assert!(out.ok, "{}", out.text);
    out.text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_into_a_fresh_instance_with_certificates_revocations_and_the_audit_chain() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let issued: Vec<(PathBuf, String)> =
        (0..3).map(|i| issue_cli(&ca, &format!("ee{i}"), "org", ORG_SUBJECT)).collect();
    let (revoked_cert, revoked_serial) = &issued[1];
    let out = cloudca(&[
        "--config",
        config_arg(&ca),
        "revoke",
        "--yes",
        "--serial",
        revoked_serial,
        "--reason",
        "keyCompromise",
    ]);
    assert!(out.ok, "{}", out.text);
    let out = cloudca(&["--config", config_arg(&ca), "audit", "checkpoint"]);
    assert!(out.ok && out.text.contains("checkpoint signed"), "{}", out.text);
    let before = certificate_list(&ca);

    // The back-up, taken while the daemon runs.
    let postgres = postgres_admin_url();
    let backup = ca.path("cloudca.backup");
    if postgres.is_some() {
        let out = run("pg_dump", &["-Fc", "-f", backup.to_str().unwrap(), &ca.config.database.url]);
        assert!(out.ok, "pg_dump: {}", out.text);
    } else {
        let out = cloudca(&["--config", config_arg(&ca), "backup", "create", "--out", backup.to_str().unwrap()]);
        assert!(out.ok, "{}", out.text);
        assert!(out.text.contains("back-up written to") && out.text.contains("audit chain intact"), "{}", out.text);
        assert!(out.text.contains("3 certificates, 1 revoked"), "{}", out.text);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600, "private to its owner");
    }
    // The token is backed up while no process uses it.
    drop(daemon);

    // A fresh instance: new folder, restored database, the token copy.
    let fresh = match &postgres {
        Some(admin) => {
            let url = new_postgres_database(admin).await;
            let out = run(
                "pg_restore",
                &["--no-owner", "--no-privileges", "--exit-on-error", "-d", &url, backup.to_str().unwrap()],
            );
            assert!(out.ok, "pg_restore: {}", out.text);
            // As docs/backup.md says: the copy's leases name daemons of the old instance.
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query("DELETE FROM leases").execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            let fresh = fresh_instance(&ca, Some(&url));
            let out = cloudca(&["--config", config_arg(&fresh), "backup", "verify"]);
            assert!(out.ok && out.text.contains("the configured database is sound"), "{}", out.text);
            assert!(out.text.contains("3 certificates, 1 revoked"), "{}", out.text);
            fresh
        }
        None => {
            let fresh = fresh_instance(&ca, None);
            let out =
                cloudca(&["--config", config_arg(&fresh), "backup", "restore", "--from", backup.to_str().unwrap()]);
            assert!(out.ok && out.text.contains("restored"), "{}", out.text);
            fresh
        }
    };
    assert_ne!(fresh.config.data_dir, ca.config.data_dir);
    let daemon = Daemon::start(&fresh).await;

    // Every certificate, byte for byte, with its status.
    assert_eq!(certificate_list(&fresh), before);
    for (cert, serial) in &issued {
        let out = cloudca(&["--config", config_arg(&fresh), "cert", "show", serial]);
        assert!(out.ok, "{}", out.text);
        let original = std::fs::read_to_string(cert).unwrap();
        assert!(out.text.contains(original.trim()), "certificate {serial} differs after the restore:\n{}", out.text);
    }

    // The revocation, by OCSP and in the CRL; the others still good.
    eventually("OCSP reports the revocation", || {
        let out = crate::status::ocsp(&ca, &daemon, revoked_cert, &["-no_nonce"]);
        let ok = out.text.contains("Response verify OK") && out.text.contains(": revoked");
        ok.then_some(()).ok_or(out.text)
    })
    .await;
    let out = crate::status::ocsp(&ca, &daemon, &issued[0].0, &["-no_nonce"]);
    assert!(out.text.contains("Response verify OK") && out.text.contains(": good"), "{}", out.text);
    // The back-up may predate the CRL rebuild after the revocation; with the old instance's
    // leases gone the fresh daemon rebuilds every CRL at start (left in place, they would delay
    // that by up to coord::TTL; docs/backup.md).
    let deadline = Instant::now() + cloudca::coord::TTL + Duration::from_secs(20);
    let text = loop {
        let text = crl_text(&ca, &daemon).await;
        if text.contains(&format!("Serial Number: {revoked_serial}")) {
            break text;
        }
        assert!(Instant::now() < deadline, "the CRL never listed {revoked_serial}:\n{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(!text.contains(&format!("Serial Number: {}", issued[0].1)), "{text}");

    // The audit chain, signed checkpoints included, and it goes on growing. The restored
    // database is checked on its own: the fresh host has no witness of the old checkpoints
    // (docs/backup.md: the witness is moved aside knowingly; audit_witness tests the witness).
    let out = cloudca(&["--config", config_arg(&fresh), "audit", "verify", "--no-witness"]);
    assert!(out.ok && out.text.contains("audit log intact"), "{}", out.text);
    assert!(!out.text.contains(" 0 signed checkpoints"), "{}", out.text);
    let (cert, _) = issue_cli(&fresh, "after", "org", ORG_SUBJECT);
    assert!(crate::status::ocsp(&ca, &daemon, &cert, &["-no_nonce"]).text.contains(": good"));
    let out = cloudca(&["--config", config_arg(&fresh), "audit", "verify", "--no-witness"]);
    assert!(out.ok && out.text.contains("audit log intact"), "{}", out.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_are_refused_over_data_and_from_damaged_or_foreign_files() {
    let ca = TestCa::new().await;
    issue_cli(&ca, "ee", "org", ORG_SUBJECT);
    let config = config_arg(&ca).to_string();
    let backup_of = |ca: &TestCa, name: &str| -> PathBuf {
        let path = ca.path(name);
        let out = cloudca(&["--config", config_arg(ca), "backup", "create", "--out", path.to_str().unwrap()]);
        assert!(out.ok, "{}", out.text);
        path
    };

    if postgres_admin_url().is_some() {
        // PostgreSQL: both commands name the tools to use instead, and change nothing.
        let out = cloudca(&["--config", &config, "backup", "create", "--out", ca.path("x").to_str().unwrap()]);
        assert!(!out.ok && out.text.contains("pg_dump -Fc"), "{}", out.text);
        assert!(!ca.path("x").exists() && !ca.path("x.partial").exists());
        let out = cloudca(&["--config", &config, "backup", "restore", "--from", ca.path("x").to_str().unwrap()]);
        assert!(!out.ok && out.text.contains("pg_restore"), "{}", out.text);
        let out = cloudca(&["--config", &config, "backup", "verify"]);
        assert!(out.ok && out.text.contains("1 certificates"), "{}", out.text);
        return;
    }
    let good = backup_of(&ca, "good.backup");

    // An existing back-up is never overwritten.
    let out = cloudca(&["--config", &config, "backup", "create", "--out", good.to_str().unwrap()]);
    assert!(!out.ok && out.text.contains("already exists"), "{}", out.text);

    // Over a database with data: refused (exit 73), the database untouched.
    let database = ca.config.data_dir.join("cloudca.db");
    let list = certificate_list(&ca);
    let out = cloudca(&["--config", &config, "backup", "restore", "--from", good.to_str().unwrap()]);
    assert!(
        !out.ok && out.text.contains("refusing to restore over") && out.text.contains("holds data"),
        "{}",
        out.text
    );
    assert!(out.text.contains(database.to_str().unwrap()), "names the database: {}", out.text);
    assert_eq!(certificate_list(&ca), list);

    // Into an empty target, every damaged or foreign file is refused and nothing is left behind.
    let target = fresh_target(&ca);
    let refused = |from: &Path, expected: &str| {
        let out = cloudca(&["--config", config_arg(&target), "backup", "restore", "--from", from.to_str().unwrap()]);
        assert!(!out.ok, "restored from {}: {}", from.display(), out.text);
        assert!(out.text.contains(expected), "{}: expected {expected:?} in: {}", from.display(), out.text);
        let left: Vec<_> =
            std::fs::read_dir(&target.config.data_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "a refused restore left {left:?}");
    };
    let bytes = std::fs::read(&good).unwrap();
    let truncated = ca.path("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    refused(&truncated, "is not a readable SQLite database");
    let garbage = ca.path("garbage.backup");
    std::fs::write(&garbage, b"PGDMP not an SQLite file at all, perhaps a pg_dump").unwrap();
    refused(&garbage, "is not a readable SQLite database");
    refused(&ca.path("missing.backup"), "missing.backup");
    let foreign = ca.path("foreign.backup");
    edit(&foreign, None, "CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('hello')").await;
    refused(&foreign, "is not a cloudca database");
    let edited = ca.path("edited-audit.backup");
    edit(&edited, Some(&good), "UPDATE audit_events SET detail = '{\"edited\":true}' WHERE seq = 3").await;
    refused(&edited, "audit chain broken at entry 3");
    let swapped = ca.path("edited-certificate.backup");
    edit(&swapped, Some(&good), "UPDATE certificates SET der = X'3000'").await;
    refused(&swapped, "does not match its fingerprint");
    let newer = ca.path("newer.backup");
    let future = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (9999, 'future', TRUE, X'00', 0)";
    edit(&newer, Some(&good), future).await;
    refused(&newer, "schema version 9999");

    // `verify` says the same about a file, and changes nothing in it.
    let out = cloudca(&["--config", &config, "backup", "verify", "--from", edited.to_str().unwrap()]);
    assert!(!out.ok && out.text.contains("audit chain broken"), "{}", out.text);
    let out = cloudca(&["--config", &config, "backup", "verify", "--from", good.to_str().unwrap()]);
    assert!(out.ok && out.text.contains("is a sound back-up"), "{}", out.text);
    assert_eq!(std::fs::read(&good).unwrap(), bytes, "verify must not write to the back-up");

    // And the good back-up restores into the empty target.
    let out = cloudca(&["--config", config_arg(&target), "backup", "restore", "--from", good.to_str().unwrap()]);
    assert!(out.ok && out.text.contains("1 certificates"), "{}", out.text);
    assert_eq!(certificate_list(&target), list);
}

/// An instance whose SQLite database path is an empty folder (configuration only; it never runs).
fn fresh_target(ca: &TestCa) -> TestCa {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().canonicalize().unwrap().join("data");
    std::fs::create_dir(&data).unwrap();
    let text = std::fs::read_to_string(&ca.config_path).unwrap();
    let old = ca.config.data_dir.to_str().unwrap();
    let config_path = dir.path().join("cloudca.toml");
    std::fs::write(&config_path, text.replace(old, data.to_str().unwrap())).unwrap();
    let config = Config::load(&config_path).expect("target config");
    TestCa { dir, config_path, config }
}

/// Writes `path` as a copy of `from` (or a new SQLite database) with `sql` applied: the damage
/// an attacker or a bad disk could do to a back-up file.
async fn edit(path: &Path, from: Option<&Path>, sql: &str) {
    use sqlx::{Connection, Executor};
    if let Some(from) = from {
        std::fs::copy(from, path).unwrap();
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    conn.execute(sql).await.unwrap();
    conn.close().await.unwrap();
}
