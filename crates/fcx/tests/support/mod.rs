//! End-to-end harness: starts the real `fcx` binary on `127.0.0.1:0` with a temporary data
//! dir (and `--auth none` unless [`Options::with_auth`]), reads its address from the startup
//! line, and talks HTTP to it. Dropping a [`Server`]
//! kills it and every process it started (found by pid files and by working directory under
//! its run dir), and removes its run dir, even when the test failed.
//!
//! The store is chosen by the environment, so the whole suite runs on either: by default the
//! embedded SQLite store; with `FCX_TEST_STORE=postgres` each server gets a PostgreSQL
//! database of its own (`--store postgres://...`) on the run's shared server
//! (`FCX_TEST_PG_URL`, started once by `scripts/test.sh`) or, without one, on a server
//! started for that test.
#![allow(dead_code)]

pub mod containers;
pub mod http;
pub mod images;
pub mod procs;
pub mod raw;
pub mod services;
pub mod sign;
pub mod zipper;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub use self::http::Response;

/// Path of the built `fcx` binary.
pub fn fcx_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fcx"))
}

/// Path of the test function binary, built on demand (it is a separate package).
pub fn testfn_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Built every time (a no-op when fresh): `cargo test` does not build another
            // package's binary, and a copy left from an older checkout lacks new commands.
            // The profile of the fcx binary under test: a bench (release) gets a release
            // build, not a debug one while it runs whatever release copy lies beside fcx.
            let path = fcx_bin().with_file_name("fcx-testfn");
            let release = path.parent().is_some_and(|d| d.ends_with("release"));
            let mut args = vec!["build", "--quiet", "-p", "fcx-testfn"];
            if release {
                args.push("--release");
            }
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(&args)
                .status()
                .expect("run cargo build -p fcx-testfn");
            assert!(status.success(), "cargo {} failed", args.join(" "));
            path
        })
        .clone()
}

/// The repository root (for `examples/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Options for starting a server.
#[derive(Clone)]
pub struct Options {
    pub start_timeout_secs: u64,
    /// More `fcx server` flags.
    pub extra_args: Vec<String>,
    /// `--auth signature`: every request must be signed; the first start's admin key is read
    /// from `<data dir>/credentials` into [`Server::credentials`]. Off by default
    /// (`--auth none`), so tests send plain requests.
    pub auth: bool,
    /// `--listen`.
    pub listen: String,
    /// More environment variables for the server.
    pub extra_env: Vec<(String, String)>,
    /// The data dir goes under [`SCRATCH_ROOT`], which instances see (by default it is under
    /// the host's `/tmp`, which they do not: each has a `/tmp` of its own), so a test of
    /// its permissions tests them and not its invisibility.
    pub data_dir_visible: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            start_timeout_secs: 20,
            extra_args: Vec::new(),
            auth: false,
            listen: "127.0.0.1:0".into(),
            extra_env: Vec::new(),
            data_dir_visible: false,
        }
    }
}

/// An AccessKey as `<data dir>/credentials` holds it.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub id: String,
    pub secret: String,
}

impl Credentials {
    /// Reads `access_key_id=` / `access_key_secret=` lines.
    pub fn read(path: &Path) -> Credentials {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("{} lacks {name}: {text}", path.display()))
                .trim()
                .to_owned()
        };
        Credentials {
            id: field("access_key_id="),
            secret: field("access_key_secret="),
        }
    }
}

impl Options {
    pub fn with_args(args: &[&str]) -> Options {
        Options {
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            ..Options::default()
        }
    }

    /// Signed requests required (`--auth signature`).
    pub fn with_auth() -> Options {
        Options {
            auth: true,
            ..Options::default()
        }
    }
}

/// A running `fcx server`.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub run_dir: PathBuf,
    /// The admin key of a server started with [`Options::with_auth`].
    pub credentials: Option<Credentials>,
    /// The `--metrics-listen` address, when the server was given one.
    pub metrics_addr: Option<SocketAddr>,
    /// The HTTPS listener's address, with `--https-listen`.
    pub https_addr: Option<SocketAddr>,
    options: Options,
    /// Its PostgreSQL database (`FCX_TEST_STORE=postgres`); dropped after the server.
    database: Option<fcx_testkit::postgres::TestDatabase>,
}

/// Whether this run puts every server on PostgreSQL (`FCX_TEST_STORE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("FCX_TEST_STORE").is_ok_and(|s| s == "postgres")
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Server {
        let mut builder = tempfile::Builder::new();
        builder.prefix("fcx-e2e-");
        let data_dir = if options.data_dir_visible {
            std::fs::create_dir_all(SCRATCH_ROOT).expect("scratch root");
            builder.tempdir_in(SCRATCH_ROOT)
        } else {
            builder.tempdir()
        }
        .expect("temp data dir");
        Self::start_in(data_dir, options)
    }

    /// A server on a data dir the test made (e.g. a small mount of its own).
    pub fn start_in(data_dir: tempfile::TempDir, options: Options) -> Server {
        let database = on_postgres().then(|| fcx_testkit::postgres::TestDatabase::create("e2e"));
        let mut options = options;
        if let Some(db) = &database {
            options
                .extra_args
                .extend(["--store".into(), db.url().to_owned()]);
        }
        let (child, addr, run_dir, metrics_addr, https_addr) = spawn(data_dir.path(), &options);
        // Written before the startup line, so it is there now.
        let credentials = options
            .auth
            .then(|| Credentials::read(&data_dir.path().join("credentials")));
        Server {
            child: Some(child),
            addr,
            data_dir,
            run_dir,
            credentials,
            metrics_addr,
            https_addr,
            options,
            database,
        }
    }

    /// The `--store` URL of a server on PostgreSQL (for CLI commands run beside it).
    pub fn store_url(&self) -> Option<&str> {
        self.database.as_ref().map(|d| d.url())
    }

    /// Stops the server (SIGTERM, as an operator would), waits `down`, and starts it again on
    /// the same data dir and address.
    pub fn restart_after(&mut self, down: Duration) {
        if let Some(mut child) = self.child.take() {
            procs::terminate(child.id(), Duration::from_secs(10));
            let _ = child.kill();
            let _ = child.wait();
        }
        std::thread::sleep(down);
        let mut options = self.options.clone();
        options.listen = self.addr.to_string();
        let (child, addr, _, metrics, https) = spawn(self.data_dir.path(), &options);
        self.child = Some(child);
        self.addr = addr;
        self.metrics_addr = metrics;
        self.https_addr = https;
    }

    /// A request signed with the server's admin key (`--auth signature`), else plain.
    pub fn signed(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let Some(key) = &self.credentials else {
            return self.request(method, path_and_query, headers, body);
        };
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let signed = sign::headers(key, &self.addr.to_string(), method, path, query, body);
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.extend(signed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        self.request(method, path_and_query, &all, body)
    }

    /// Kills the server with SIGKILL (no cleanup on its side) and starts it again on the
    /// same data dir.
    pub fn crash_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let (child, addr, run_dir, metrics_addr, https) =
            spawn(self.data_dir.path(), &self.options);
        self.metrics_addr = metrics_addr;
        self.https_addr = https;
        assert_eq!(
            run_dir, self.run_dir,
            "run dir must derive from the data dir"
        );
        self.child = Some(child);
        self.addr = addr;
    }

    /// Stops the server (SIGTERM, its instances cleaned up) and hands over its data dir,
    /// which outlives it (e.g. to migrate the store it holds).
    pub fn stop(mut self) -> tempfile::TempDir {
        let placeholder = tempfile::Builder::new()
            .prefix("fcx-e2e-")
            .tempdir()
            .expect("temp dir");
        std::mem::replace(&mut self.data_dir, placeholder)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http::request(self.addr, method, path, headers, body)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    /// CreateFunction; panics unless it answers 200.
    pub fn create_function(&self, body: Value) -> Value {
        let r = self.post_json("/2023-03-30/functions", &body);
        assert_eq!(r.status, 200, "CreateFunction failed: {}", r.text());
        r.json()
    }

    pub fn invoke(&self, name: &str, payload: &[u8]) -> Response {
        self.invoke_with(name, &[], payload)
    }

    pub fn invoke_with(&self, name: &str, headers: &[(&str, &str)], payload: &[u8]) -> Response {
        self.request(
            "POST",
            &format!("/2023-03-30/functions/{name}/invocations"),
            headers,
            payload,
        )
    }

    /// Processes started by this server that are still running.
    pub fn instance_pids(&self) -> Vec<u32> {
        procs::under(&self.run_dir)
    }

    /// ListInstances: the instance ids the server reports for `name`.
    pub fn instance_ids(&self, name: &str) -> Vec<String> {
        let r = self.request(
            "GET",
            &format!("/2023-03-30/functions/{name}/instances"),
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "ListInstances: {}", r.text());
        let mut ids: Vec<String> = r.json()["instances"]
            .as_array()
            .expect("instances array")
            .iter()
            .map(|i| i["instanceId"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    pub fn put_json(&self, path: &str, body: &Value) -> Response {
        self.request("PUT", path, &[], body.to_string().as_bytes())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM first so the server stops its instances itself; SIGKILL if it hangs.
            procs::terminate(child.id(), Duration::from_secs(10));
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in procs::under(&self.run_dir) {
            procs::kill(pid);
        }
        containers::remove_containers(&self.run_dir);
        containers::unmount_under(&self.run_dir);
        let _ = std::fs::remove_dir_all(&self.run_dir);
        procs::remove_cgroups(&self.run_dir);
        procs::remove_egress(&self.run_dir);
    }
}

/// What a started server's startup lines name: its process, API address, run dir, and the
/// metrics and HTTPS listeners when it has them.
type Spawned = (
    Child,
    SocketAddr,
    PathBuf,
    Option<SocketAddr>,
    Option<SocketAddr>,
);

fn spawn(data_dir: &Path, options: &Options) -> Spawned {
    let mut child = Command::new(fcx_bin())
        .args(["server", "--listen", &options.listen, "--data-dir"])
        .arg(data_dir)
        .args(["--auth", if options.auth { "signature" } else { "none" }])
        .args(["--start-timeout", &options.start_timeout_secs.to_string()])
        .args(&options.extra_args)
        // FCX_TEST_LOG (e.g. `fcx_runtime=debug`) shows the servers' phase timings.
        .env(
            "FCX_LOG",
            std::env::var("FCX_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .envs(options.extra_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fcx server");
    let stdout = child.stdout.take().expect("server stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = match lines.next() {
        Some(Ok(line)) => line,
        other => {
            let _ = child.kill();
            panic!("fcx server printed no startup line: {other:?}");
        }
    };
    // With --https-listen, the second line names the HTTPS address.
    let https = options
        .extra_args
        .iter()
        .any(|a| a == "--https-listen")
        .then(|| {
            let line = lines.next().and_then(Result::ok).unwrap_or_default();
            line.split("https://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no HTTPS startup line: {line}"))
        });
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected startup line: {line}"));
    // `(data dir D, run dir R)` or `(data dir D, run dir R; metrics on http://M/metrics)`.
    let run_dir = line
        .split("run dir ")
        .nth(1)
        .and_then(|rest| rest.split([';', ')']).next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("startup line lacks the run dir: {line}"));
    let metrics_addr = line
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok());
    (child, addr, run_dir, metrics_addr, https)
}

/// A CreateFunction body for the test function with `env` as its environment.
pub fn testfn_function(name: &str, env: Value) -> Value {
    json!({
        "functionName": name,
        "runtime": "custom.debian12",
        "handler": "index.handler",
        "timeout": 10,
        "code": { "zipFile": zipper::testfn_zip_base64() },
        "customRuntimeConfig": { "command": ["./bootstrap"], "port": 9000 },
        "environmentVariables": env,
    })
}

/// Where scratch directories go: not `/tmp`, since every instance has a `/tmp` of its own.
pub const SCRATCH_ROOT: &str = "/run/fcx-e2e";

/// A unique, world-writable scratch directory for barrier files and records, which the
/// test and its instances both see.
pub fn scratch_dir(tag: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(SCRATCH_ROOT).expect("scratch root");
    let dir = tempfile::Builder::new()
        .prefix(&format!("fcx-e2e-{tag}-"))
        .tempdir_in(SCRATCH_ROOT)
        .expect("scratch dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}
