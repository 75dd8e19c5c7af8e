//! A real PostgreSQL 15 (Debian's `postgresql-15`) for tests: `initdb` in a temporary
//! directory owned by the unprivileged `postgres` user, the postmaster started directly as
//! that user (so the test owns its PID) on a free 127.0.0.1 port, trust authentication on
//! loopback only, and stopped by that PID on drop. No shared or preinstalled cluster is used.
//!
//! [`TestDatabase::create`] gives a test a database of its own: on the run's shared server
//! when `FCX_TEST_PG_URL` names one (an admin URL, as `scripts/test.sh` exports for the whole
//! suite), else on a server started for that test. The database is dropped on drop.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where Debian installs PostgreSQL 15's server binaries.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The environment variable naming the run's shared server (an admin URL).
pub const SHARED_URL_ENV: &str = "FCX_TEST_PG_URL";

/// Whether this host can start a PostgreSQL server for tests.
pub fn available() -> bool {
    Path::new(BIN_DIR).join("postgres").exists() || std::env::var_os(SHARED_URL_ENV).is_some()
}

/// A running postmaster. Dropping it stops it (SIGINT: fast shutdown) and removes its files.
pub struct PgServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Runs a PostgreSQL binary as the `postgres` user.
fn as_postgres(binary: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--reset-env",
    ])
    .arg(Path::new(BIN_DIR).join(binary));
    cmd
}

impl PgServer {
    /// initdb + postmaster on 127.0.0.1; panics with what failed (a test fixture).
    pub fn start() -> PgServer {
        Self::start_on(&[], None)
    }

    /// Also listening on `extra` addresses (e.g. host ends of veths a test made), with trust
    /// authentication for clients in `trust_net` (a CIDR) besides loopback.
    pub fn start_on(extra: &[std::net::Ipv4Addr], trust_net: Option<&str>) -> PgServer {
        Self::launch(extra, trust_net, false)
    }

    /// With PostgreSQL's default durability (fsync on), for benchmarks that compare commits.
    pub fn start_durable() -> PgServer {
        Self::launch(&[], None, true)
    }

    fn launch(extra: &[std::net::Ipv4Addr], trust_net: Option<&str>, durable: bool) -> PgServer {
        assert!(
            Path::new(BIN_DIR).join("postgres").exists(),
            "{BIN_DIR}/postgres is missing: run scripts/setup.sh (it installs postgresql-15)"
        );
        let dir = tempfile::Builder::new()
            .prefix("fcx-pg-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(chown.success(), "chown of {} failed", dir.path().display());
        let init = as_postgres("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .arg("-D")
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        if let Some(net) = trust_net {
            let hba = data.join("pg_hba.conf");
            let mut text = std::fs::read_to_string(&hba).expect("pg_hba.conf");
            text.push_str(&format!("host all all {net} trust\n"));
            std::fs::write(&hba, text).expect("pg_hba.conf");
        }
        let listen: Vec<String> = std::iter::once("127.0.0.1".to_string())
            .chain(extra.iter().map(|a| a.to_string()))
            .collect();
        let listen = format!("listen_addresses={}", listen.join(","));
        let port = free_port();
        let fsync = if durable { "fsync=on" } else { "fsync=off" };
        let fpw = if durable {
            "full_page_writes=on"
        } else {
            "full_page_writes=off"
        };
        let child = as_postgres("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args([
                "-c",
                &listen,
                "-c",
                "max_connections=400",
                "-c",
                "shared_buffers=32MB",
                // Tests kill fcx, never PostgreSQL: its own fsyncs only cost time there.
                "-c",
                fsync,
                "-c",
                fpw,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("server.log")).unwrap(),
            ))
            .spawn()
            .expect("start postgres");
        let server = PgServer { child, port, dir };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if psql(&self.admin_url(), "SELECT 1").is_ok() {
                return;
            }
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not accept connections on port {} within 60 s:\n{log}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A URL of database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The maintenance database's URL (to create and drop databases).
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT = fast shutdown: clients are disconnected, then the postmaster exits.
        let pid = self.child.id() as libc::pid_t;
        signal(pid, libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: libc::pid_t, sig: libc::c_int) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Runs `sql` with psql against `url`; the output (tuples only, unaligned) or the error text.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(Path::new(BIN_DIR).join("psql"))
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// A database of a test's own, dropped (with its connections) on drop.
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
    /// The server, when this test started one.
    _own: Option<Arc<PgServer>>,
}

impl TestDatabase {
    /// A fresh database named `fcx_<tag>_<random>`.
    pub fn create(tag: &str) -> TestDatabase {
        let own = match std::env::var(SHARED_URL_ENV) {
            Ok(_) => None,
            Err(_) => Some(Arc::new(PgServer::start())),
        };
        Self::create_on(tag, own)
    }

    /// A fresh database on `server` (several databases of one test share it).
    pub fn create_on(tag: &str, own: Option<Arc<PgServer>>) -> TestDatabase {
        let admin = match &own {
            Some(s) => s.admin_url(),
            None => std::env::var(SHARED_URL_ENV).expect("FCX_TEST_PG_URL"),
        };
        let tag: String = tag
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let name = format!("fcx_{tag}_{:08x}", random());
        psql(&admin, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("admin URL without a database: {admin}"),
        };
        TestDatabase {
            admin,
            name,
            url,
            _own: own,
        }
    }

    /// The database's connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `sql` in this database.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        psql(&self.url, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn random() -> u32 {
    let mut buf = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    u32::from_le_bytes(buf) ^ std::process::id()
}
