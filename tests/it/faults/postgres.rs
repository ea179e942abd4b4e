//! A throwaway PostgreSQL cluster of a test's own, and a development instance on it.

use std::path::PathBuf;

use crate::common::*;

// ---------------------------------------------------------------------------------------------
// 3. PostgreSQL restarts under load
// ---------------------------------------------------------------------------------------------

/// A throwaway PostgreSQL cluster of this test's own on 127.0.0.1 (trust auth, loopback only),
/// made the way `scripts/postgres.sh` makes the suite's: stopped and removed when dropped.
pub struct Postgres {
    /// Holds the cluster's folder (data, socket, log).
    pub dir: tempfile::TempDir,
    /// `/usr/lib/postgresql/NN/bin`, the newest installed.
    pub bin: PathBuf,
    /// As root, the server runs as `postgres` (it refuses to run as root).
    pub as_postgres: bool,
    /// The `-o` options of `pg_ctl start`.
    pub options: String,
    pub port: u16,
}

impl Postgres {
    pub fn start() -> Postgres {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL must be installed (scripts/install-deps.sh)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort_by_key(|p| {
            p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
        });
        let bin = versions.pop().expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::Builder::new().prefix("cloudca-pg").tempdir().unwrap();
        let as_postgres = run("id", &["-u"]).text.trim() == "0";
        if as_postgres {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let out = run("chown", &["postgres", dir.path().to_str().unwrap()]);
            assert!(out.ok, "{}", out.text);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let options = format!("-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=on", dir.path().display());
        let pg = Postgres { dir, bin, as_postgres, options, port };
        let data = pg.data();
        let out = pg.command("initdb", &["-D", &data, "-A", "trust", "-U", "postgres"]);
        assert!(out.ok, "initdb: {}", out.text);
        pg.start_server();
        pg
    }

    pub fn data(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_string()
    }

    /// Runs a PostgreSQL program (as `postgres` when we are root).
    pub fn command(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let path = path.to_str().unwrap();
        if self.as_postgres {
            run("runuser", &[&["-u", "postgres", "--", path], args].concat())
        } else {
            run(path, args)
        }
    }

    pub fn pg_ctl(&self, args: &[&str]) -> Output {
        let (data, log) = (self.data(), self.dir.path().join("log"));
        self.command("pg_ctl", &[&["-D", data.as_str(), "-l", log.to_str().unwrap(), "-w"], args].concat())
    }

    pub fn start_server(&self) {
        let out = self.pg_ctl(&["-o", &self.options, "start"]);
        assert!(out.ok, "pg_ctl start: {}", out.text);
    }

    /// A fresh database on the cluster; returns its URL.
    pub async fn database(&self, name: &str) -> String {
        use sqlx::Connection;
        let base = format!("postgres://postgres@127.0.0.1:{}", self.port);
        let mut conn = sqlx::PgConnection::connect(&format!("{base}/postgres")).await.expect("connect");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
        format!("{base}/{name}")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

/// A development instance on a given database (`TestCa::new` picks it from the environment).
pub async fn test_ca_on(database_url: String) -> TestCa {
    let dir = tempfile::tempdir().unwrap();
    let options = cloudca::devinit::Options {
        database_url: Some(database_url),
        hsm_workers: 2,
        key_algorithm: cloudca::hsm::KeyAlgorithm::EcdsaP256,
        token_label: format!("t{}", std::process::id()),
        ports: Some(crate::common::reserve_ports()),
    };
    let created = cloudca::devinit::create(&dir.path().join("ca"), &options).await.expect("dev-init");
    let config = cloudca::config::Config::load(&created.config_path).expect("config");
    TestCa { dir, config_path: created.config_path, config }
}
