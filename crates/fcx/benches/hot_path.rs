//! In-process microbenchmark of the warm invoke path (issue 12): fcx's gateway, control plane
//! and scheduler run in this process, on one current-thread tokio runtime driven by the bench
//! thread, so divan's allocation counter sees every allocation fcx makes for a request.
//!
//! Each request is a real HTTP/1.1 `POST` over loopback TCP, from an in-process hyper client:
//! - `direct`: client → the echo server (`fcx-testfn`, the instance's binary) on the host;
//! - `fcx`: client → fcx's gateway → scheduler → a warm instance of the same binary
//!   (process backend: own network namespace, pooled keep-alive connection).
//!
//! - `proxy`: client → a minimal reverse proxy made of hyper alone (each client connection
//!   with an upstream connection of its own, nothing else) → the echo server: the floor of
//!   what one hyper-based HTTP hop costs here, the part of fcx's cost no change to fcx's own
//!   code can remove.
//!
//! `fcx` minus `direct` (time and allocations, same run) is what fcx adds per request. The
//! `_64` variants keep 64 requests in flight on 64 connections (time per iteration / 64 is
//! the CPU cost per request at that load). Needs root (fcx's process backend).
//!
//!   cargo bench -p fcx --bench hot_path
//!   cargo bench -p fcx --bench hot_path -- --sample-count 200
//!   FCX_HOT_PATH_OBSERVABILITY=0 cargo bench -p fcx --bench hot_path   (metrics, log files off)

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

const FUNCTION: &str = "hot";
const INVOKE: &str = "/2023-03-30/functions/hot/invocations";
/// Requests in flight (and connections) in the `_64` benches.
const WIDE: usize = 64;

/// The runtime everything runs on, and the two targets' client connections.
struct Bench {
    rt: Runtime,
    fcx: Targets,
    direct: Targets,
    proxy: Targets,
    _echo: ChildGuard,
    _data: tempfile::TempDir,
}

/// Keep-alive client connections to one target: one for the sequential bench, `WIDE` for the wide one.
struct Targets {
    path: &'static str,
    one: Mutex<SendRequest<Full<Bytes>>>,
    wide: Vec<Arc<Mutex<SendRequest<Full<Bytes>>>>>,
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    // fcx's process backend execs its instance init from the running binary (this bench,
    // here), as `fcx __instance-init`: do what fcx's own main does with it.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == fcx_runtime::init::SUBCOMMAND)
    {
        std::process::exit(fcx_runtime::init::main(&args[2..]));
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !fcx_runtime::is_root() {
        eprintln!("hot_path bench skipped: fcx's process backend needs root");
        return;
    }
    bench();
    divan::main();
    // A static is never dropped: the echo server is stopped here, by its PID (fcx's server
    // goes with this process; the echo server, a plain child, would stay).
    if let Some(b) = BENCH.get() {
        let pid = nix::unistd::Pid::from_raw(b._echo.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

static BENCH: OnceLock<Bench> = OnceLock::new();

fn bench() -> &'static Bench {
    BENCH.get_or_init(|| setup().unwrap_or_else(|e| panic!("hot_path bench setup: {e}")))
}

fn setup() -> Result<Bench, String> {
    ensure_release_testfn()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let listen = free_port()?;
    let (echo, echo_addr) = start_echo()?;
    // Metrics and log files on (as `fcx server` by default); `FCX_HOT_PATH_OBSERVABILITY=0`
    // measures the `--no-observability` baseline.
    let observability = std::env::var("FCX_HOT_PATH_OBSERVABILITY").as_deref() != Ok("0");
    let core = fcx_control::CoreConfig {
        data_dir: data.path().to_owned(),
        run_root: "/run/fcx".into(),
        start_timeout: Duration::from_secs(30),
        instance_uids: "100000-165535"
            .parse()
            .map_err(|e| format!("instance uids: {e}"))?,
        region: "local".into(),
        idle_timeout: Duration::from_secs(3600),
        freeze_after: None,
        max_instances: 8,
        async_workers: 4,
        async_retry_base: Duration::from_secs(1),
        oci_runtime: None,
        pids_limit: 512,
        instance_scheduling: fcx_runtime::Scheduling::Batch,
        sandboxes_per_function: 0,
        sandbox_limit: 0,
        async_error_text: fcx_gateway::error::async_error_text,
        scheduler_error_code: fcx_gateway::error::scheduler_error_code,
        metrics_max_functions: 100,
        logs: fcx_runtime::LogSettings {
            files: observability,
            ..fcx_runtime::LogSettings::default()
        },
        record_metrics: observability,
        // The bench's function has no `fcxSnapshot`: it never restores or dumps.
        criu: None,
        snapshot_budget: 2048 * 1024 * 1024,
        snapshot_lazy_above: 64 * 1024 * 1024,
        egress: fcx_runtime::egress::Requested::Auto,
        egress_range: fcx_runtime::egress::DEFAULT_RANGE
            .parse()
            .map_err(|e| format!("egress range: {e}"))?,
        egress_pool: 0,
        trigger_domain: "fcx.localhost".into(),
        store: fcx_store::StoreUrl::Sqlite,
        node_id: None,
        advertise: None,
        sync_interval: Duration::from_secs(10),
        cluster_max_instances: None,
        forward: false,
    };
    let (fcx, direct, proxy) = rt.block_on(async {
        let control = fcx_control::ControlPlane::start(core)
            .await
            .map_err(|e| format!("start the core: {e}"))?;
        let http = fcx_gateway::HttpConfig {
            listen,
            auth: fcx_gateway::AuthMode::None,
            shutdown_timeout: Duration::from_secs(1),
            https_listen: None,
            metrics_listen: None,
            connections: fcx_gateway::ConnLimits::default(),
            // Served on this bench thread's runtime (no serving threads of its own), so the
            // allocation counter sees every allocation and no request crosses threads.
            serve_threads: 0,
        };
        tokio::spawn(fcx_gateway::serve(control, http, std::future::pending()));
        wait_connectable(listen).await?;
        let mut function = support::testfn_function(FUNCTION, serde_json::json!({}));
        function["instanceConcurrency"] = serde_json::json!(200);
        let mut admin = connect(listen).await?;
        let (status, body) = post(
            &mut admin,
            "/2023-03-30/functions",
            serde_json::to_vec(&function).unwrap().into(),
        )
        .await?;
        if status != 201 && status != 200 {
            return Err(format!("CreateFunction answered {status}: {body:?}"));
        }
        let fcx = Targets::open(listen, INVOKE).await?;
        let direct = Targets::open(echo_addr, "/invoke").await?;
        let proxy = Targets::open(start_floor_proxy(echo_addr).await?, "/invoke").await?;
        // Warm: the first call starts the instance; the wide round opens its pooled connections.
        fcx.call_one().await?;
        fcx.call_wide().await?;
        direct.call_wide().await?;
        proxy.call_wide().await?;
        Ok::<_, String>((fcx, direct, proxy))
    })?;
    Ok(Bench {
        rt,
        fcx,
        direct,
        proxy,
        _echo: echo,
        _data: data,
    })
}

impl Targets {
    async fn open(addr: SocketAddr, path: &'static str) -> Result<Targets, String> {
        let one = Mutex::new(connect(addr).await?);
        let mut wide = Vec::with_capacity(WIDE);
        for _ in 0..WIDE {
            wide.push(Arc::new(Mutex::new(connect(addr).await?)));
        }
        Ok(Targets { path, one, wide })
    }

    async fn call_one(&self) -> Result<(), String> {
        let mut conn = self.one.lock().await;
        check(post(&mut conn, self.path, Bytes::from_static(b"echo:hello")).await)
    }

    async fn call_wide(&self) -> Result<(), String> {
        let mut set = tokio::task::JoinSet::new();
        for conn in &self.wide {
            let conn = Arc::clone(conn);
            let path = self.path;
            set.spawn(async move {
                let mut conn = conn.lock().await;
                check(post(&mut conn, path, Bytes::from_static(b"echo:hello")).await)
            });
        }
        while let Some(done) = set.join_next().await {
            done.map_err(|e| e.to_string())??;
        }
        Ok(())
    }
}

fn check(answer: Result<(u16, Bytes), String>) -> Result<(), String> {
    match answer? {
        (200, body) if body.as_ref() == b"hello" => Ok(()),
        (status, body) => Err(format!("answered {status}: {body:?}")),
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn post(
    conn: &mut SendRequest<Full<Bytes>>,
    path: &str,
    body: Bytes,
) -> Result<(u16, Bytes), String> {
    conn.ready().await.map_err(|e| e.to_string())?;
    let req = http::Request::post(path)
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::CONTENT_TYPE, "application/octet-stream")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

#[divan::bench]
fn direct_1(bencher: divan::Bencher) {
    let b = bench();
    bencher.bench_local(|| b.rt.block_on(b.direct.call_one()).unwrap());
}

#[divan::bench]
fn fcx_1(bencher: divan::Bencher) {
    let b = bench();
    bencher.bench_local(|| b.rt.block_on(b.fcx.call_one()).unwrap());
}

#[divan::bench]
fn proxy_1(bencher: divan::Bencher) {
    let b = bench();
    bencher.bench_local(|| b.rt.block_on(b.proxy.call_one()).unwrap());
}

#[divan::bench]
fn proxy_64(bencher: divan::Bencher) {
    let b = bench();
    bencher
        .counter(divan::counter::ItemsCount::new(WIDE))
        .bench_local(|| b.rt.block_on(b.proxy.call_wide()).unwrap());
}

#[divan::bench]
fn direct_64(bencher: divan::Bencher) {
    let b = bench();
    bencher
        .counter(divan::counter::ItemsCount::new(WIDE))
        .bench_local(|| b.rt.block_on(b.direct.call_wide()).unwrap());
}

#[divan::bench]
fn fcx_64(bencher: divan::Bencher) {
    let b = bench();
    bencher
        .counter(divan::counter::ItemsCount::new(WIDE))
        .bench_local(|| b.rt.block_on(b.fcx.call_wide()).unwrap());
}

/// The `proxy` target (see the module doc): hyper's server and client and nothing else,
/// each accepted connection forwarded over an upstream connection of its own.
async fn start_floor_proxy(upstream: SocketAddr) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind the floor proxy: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = client.set_nodelay(true);
                let Ok(up) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = up.set_nodelay(true);
                let io = hyper_util::rt::TokioIo::new(up);
                let Ok((sender, conn)) = hyper::client::conn::http1::handshake(io).await else {
                    return;
                };
                tokio::spawn(conn);
                let sender = Arc::new(Mutex::new(sender));
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let sender = Arc::clone(&sender);
                        async move {
                            let mut sender = sender.lock().await;
                            sender.ready().await?;
                            sender.send_request(req).await
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(client), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// `fcx-testfn` next to the release `fcx` binary (`support::testfn_bin()` looks there).
fn ensure_release_testfn() -> Result<(), String> {
    let path = support::fcx_bin().with_file_name("fcx-testfn");
    if path.exists() {
        return Ok(());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "fcx-testfn"])
        .status()
        .map_err(|e| format!("run cargo build --release -p fcx-testfn: {e}"))?;
    if !status.success() || !path.exists() {
        return Err(format!(
            "cargo build --release -p fcx-testfn failed ({status}), or {} is missing",
            path.display()
        ));
    }
    Ok(())
}

/// The echo server on the host, on an ephemeral loopback port read from its startup line.
fn start_echo() -> Result<(ChildGuard, SocketAddr), String> {
    use std::io::{BufRead, BufReader};
    let testfn = support::testfn_bin();
    let mut child = Command::new(&testfn)
        .env("TESTFN_MODE", "listen-localhost")
        .env("TESTFN_PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start {}: {e}", testfn.display()))?;
    let stdout = child.stdout.take().ok_or("echo server stdout")?;
    let guard = ChildGuard(child);
    let mut lines = BufReader::new(stdout).lines();
    let line = match lines.next() {
        Some(Ok(line)) => line,
        other => return Err(format!("echo server printed no startup line: {other:?}")),
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let addr = line
        .strip_prefix("testfn: listening on ")
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| format!("unexpected echo server startup line: {line:?}"))?;
    Ok((guard, addr))
}

fn free_port() -> Result<SocketAddr, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map_err(|e| e.to_string())
}

async fn wait_connectable(addr: SocketAddr) -> Result<(), String> {
    for _ in 0..500 {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("nothing listens on {addr} after 5 s"))
}
