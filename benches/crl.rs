//! CRL build for 1,000,000 revoked entries: time and peak memory.
//!
//! Fills the `revocations` table of a fresh SQLite instance (bulk insert, not timed), then
//! times `StatusService::build_crl` (stream from the database, lay out, hash, one HSM
//! signature) and reports the growth of the process's peak resident memory during the build.
//! `cargo bench --bench crl`; `CLOUDCA_BENCH_CRL_ENTRIES` to change the count.

use std::sync::Arc;
use std::time::Instant;

use cloudca::clock::SystemClock;
use cloudca::config::Config;
use cloudca::daemon::Instance;
use cloudca::devinit::{self, Options};
use cloudca::status::{crl, RevocationReason};
use sqlx::Connection;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("crl: benchmark");
        return;
    }
    let entries: usize =
        std::env::var("CLOUDCA_BENCH_CRL_ENTRIES").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let created = runtime
        .block_on(devinit::create(
            &dir.path().join("ca"),
            &Options { token_label: "bench-crl".into(), ..Options::default() },
        ))
        .expect("dev instance");
    let config = Config::load(&created.config_path).expect("config");
    runtime.block_on(async {
        let filled = Instant::now();
        fill(&config.database.url, entries).await;
        eprintln!("inserted {entries} revocations in {:.1} s (not timed)", filled.elapsed().as_secs_f64());
        let instance = Instance::open(config.clone(), Arc::new(SystemClock)).await.expect("instance");
        let rss_before = status_kib("VmRSS");
        reset_peak();
        let started = Instant::now();
        let crl = instance.status.build_crl("org", 0).await.expect("CRL");
        let elapsed = started.elapsed().as_secs_f64();
        let peak = status_kib("VmHWM");
        println!();
        println!(
            "CRL build, {} entries: {:.2} s, {:.1} MB DER, peak RSS growth {:.0} MB (process peak {:.0} MB)",
            crl.entries,
            elapsed,
            crl.der.len() as f64 / 1e6,
            (peak.saturating_sub(rss_before)) as f64 / 1024.0,
            peak as f64 / 1024.0
        );
        let path = dir.path().join("big.crl");
        std::fs::write(&path, &crl.der).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-in", path.to_str().unwrap()])
            .output()
            .unwrap();
        println!("openssl parses it: {}", if out.status.success() { "yes" } else { "NO" });
    });
}

/// Bulk-inserts revoked entries (foreign keys off on this connection: there are no certificate
/// rows behind them, only the revoked-only table the CRL reads).
async fn fill(url: &str, entries: usize) {
    let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc")).await.unwrap();
    sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut conn).await.unwrap();
    sqlx::query("PRAGMA synchronous = OFF").execute(&mut conn).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut tx = conn.begin().await.unwrap();
    let chunk = 500;
    for start in (0..entries).step_by(chunk) {
        let rows = chunk.min(entries - start);
        let values: Vec<String> = (0..rows)
            .map(|i| {
                let n = (start + i) as u64;
                let serial =
                    format!("{:016x}{:016x}", 0x4000_0000_0000_0000u64 | n.wrapping_mul(0x9e37_79b9_7f4a_7c15), n);
                let reason =
                    if n.is_multiple_of(3) { RevocationReason::Unspecified } else { RevocationReason::Superseded };
                let entry = crl::encode_entry(&crl::Entry {
                    serial: hex::decode(&serial).unwrap(),
                    revoked_at: time::OffsetDateTime::from_unix_timestamp(now).unwrap(),
                    reason,
                    invalidity_date: None,
                });
                let code = reason.code().map(|c| c.to_string()).unwrap_or_else(|| "NULL".into());
                format!("('{serial}', 'org', 0, {now}, {code}, NULL, {}, X'{}')", now + 86400 * 300, hex::encode(entry))
            })
            .collect();
        let sql = format!("INSERT INTO revocations (serial, issuer, crl_shard, revoked_at, reason, invalidity_date, not_after, entry) VALUES {}", values.join(","));
        sqlx::query(&sql).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    // Steady state: a long-running daemon's WAL is checkpointed; measure that, not a 1 GB WAL.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await.unwrap();
}

fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
