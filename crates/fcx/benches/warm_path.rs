//! Warm-path benchmark: the same tiny echo server (`fcx-testfn`, `POST /invoke` with
//! `echo:hello` answers `hello`) measured with `wrk` in one run,
//!
//! - (a) direct: the echo server on the host at `127.0.0.1:<port>`;
//! - (b) nginx: a keep-alive reverse proxy in front of it;
//! - (c) fcx: `POST /2023-03-30/functions/bench/invocations` on a warm instance of the same
//!   binary, run by fcx in its own network namespace, with its default metrics and logging;
//! - (d) fcx-bare: the same with `--no-observability` (no invocation metrics, no instance
//!   log files), the baseline of what (c)'s observability costs,
//! - (e) fcx-trigger: the same function through an anonymous HTTP trigger
//!   (`Host: bench.localhost`, `POST /body` with `hello`, answered `hello`): the passthrough
//!   path with FC's header checks and reserved-header filtering,
//! - (f) fcx-1t, only when `FCX_BENCH_TARGETS` names it: (c) served by one serving thread
//!   (`--serve-threads 1`) instead of one per CPU, for the thread-per-core comparison,
//! - (f') fcx-normal, only when `FCX_BENCH_TARGETS` names it: (c) with its instance under
//!   the default scheduling policy (`--instance-scheduling normal`) instead of
//!   `SCHED_BATCH`, the baseline of what the policy gains,
//! - (g) nginx-fc: the same nginx carrying the bytes FC's protocol puts on the wire, on a
//!   second port: the client's request to `/2023-03-30/functions/bench/invocations`, the 13
//!   context headers fcx sends the instance, and the 6 headers fcx answers with. It separates
//!   what fcx's implementation costs from what the protocol makes every hop (wrk, the proxy,
//!   the echo server) parse and write,
//!
//! at 1 and 64 connections, reporting req/s, p50 and p99, the fcx/nginx ratios, and the CPU
//! per request of the server side and of the proxy process alone (user space and kernel
//! apart, where the two proxies differ most). Each run
//! lasts `FCX_BENCH_SECS` seconds (default 5); `FCX_BENCH_ROUNDS` (default 1) repeats the
//! whole set, interleaved, and reports per-cell medians. Timings are never asserted: the bench exits
//! non-zero only when something failed to run (a tool missing, a process that did not start,
//! wrk failing or counting non-2xx responses). Run it with `bash scripts/bench.sh`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// Connection counts measured for every target.
const CONNS: [u32; 2] = [1, 64];
/// Length of the unreported warm-up run (64 connections) before each target is measured.
const WARMUP_SECS: u64 = 1;
/// The function name used in fcx.
const FUNCTION: &str = "bench";

/// A child process stopped and reaped when dropped, also on panic: `graceful` (if any) first,
/// SIGKILL after 5 s. nginx needs SIGTERM: a SIGKILLed master leaves its workers running.
struct ChildGuard {
    name: &'static str,
    child: Child,
    graceful: Option<i32>,
}

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited: {status}", self.name)),
            Err(e) => Err(format!("{}: wait failed: {e}", self.name)),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Only the process this bench started, by its own pid (not yet reaped, so not reused).
        if let (Some(sig), Ok(None)) = (self.graceful, self.child.try_wait()) {
            #[allow(unsafe_code)]
            // SAFETY: kill(2) on the live child this bench spawned.
            unsafe {
                libc::kill(self.child.id() as i32, sig);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One wrk run's results.
#[derive(Debug, Default, Clone)]
struct Run {
    target: &'static str,
    conns: u32,
    rps: f64,
    /// Lowest and highest req/s over the rounds.
    rps_range: (f64, f64),
    p50_us: f64,
    p99_us: f64,
    /// CPU time (user + system) of the server-side processes per request, in µs.
    cpu_us_per_req: f64,
    /// The proxy's own user and kernel CPU per request, in µs: nginx's processes or the fcx
    /// server, without the echo server or the instance (none for direct).
    proxy_user_us: f64,
    proxy_sys_us: f64,
    /// Peak resident memory of the server-side processes (sum of their VmHWM), in KiB,
    /// read after the run.
    rss_kib: u64,
    requests: u64,
    non_2xx: u64,
    socket_errors: String,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("warm_path: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; `Ok(false)` when some wrk run failed but the others were reported.
fn run() -> Result<bool, String> {
    let secs = env_count("FCX_BENCH_SECS", 5)?;
    let rounds = env_count("FCX_BENCH_ROUNDS", 1)?;
    let wrk = which("wrk").ok_or("wrk not found (apt-get install wrk, or run scripts/bench.sh)")?;
    let nginx = which("nginx")
        .ok_or("nginx not found (apt-get install nginx-light, or run scripts/bench.sh)")?;
    ensure_release_testfn()?;
    let testfn = support::testfn_bin();

    println!("# fcx warm-path benchmark");
    println!();
    println!(
        "machine: {} CPUs, kernel {}; {}; {}; {} s per run, {} round(s)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        read_trimmed("/proc/sys/kernel/osrelease"),
        tool_version(&nginx, "-v"),
        tool_version(&wrk, "-v"),
        secs,
        rounds
    );

    let scratch = tempfile::Builder::new()
        .prefix("fcx-bench-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;

    // (a) the echo server, directly on the host.
    let (mut echo, echo_addr) = start_echo(&testfn)?;
    eprintln!("echo server: pid {} on {echo_addr}", echo.pid());

    // (b) nginx in front of it.
    let (mut proxy, nginx_addr, nginx_fc_addr) = start_nginx(&nginx, scratch.path(), echo_addr)?;
    eprintln!(
        "nginx: pid {} on {nginx_addr} (with FC's headers: {nginx_fc_addr})",
        proxy.pid()
    );

    // (c) fcx with a warm instance of the same binary, (d) the same without observability.
    let server = start_fcx(&[])?;
    let bare = start_fcx(&["--no-observability"])?;
    // (f) opt-in: FCX_BENCH_TARGETS must name it.
    let only = std::env::var("FCX_BENCH_TARGETS").unwrap_or_default();
    let named = |t: &str| only.split(',').any(|w| w.trim() == t);
    let mut opt_in: Vec<(&'static str, support::Server)> = Vec::new();
    if named("fcx-1t") {
        opt_in.push(("fcx-1t", start_fcx(&["--serve-threads", "1"])?));
    }
    if named("fcx-normal") {
        let args = ["--instance-scheduling", "normal"];
        opt_in.push(("fcx-normal", start_fcx(&args)?));
    }
    let trigger = server.post_json(
        &format!("/2023-03-30/functions/{FUNCTION}/triggers"),
        &json!({"triggerName": "web", "triggerType": "http",
                "triggerConfig": json!({"authType": "anonymous"}).to_string()}),
    );
    if trigger.status != 200 {
        return Err(format!(
            "CreateTrigger failed: {} {}",
            trigger.status,
            trigger.text()
        ));
    }
    let warm = server.invoke(FUNCTION, b"echo:hello");
    if warm.status != 200 || warm.body != b"hello" {
        return Err(format!(
            "warm-up invoke failed: {} {}",
            warm.status,
            warm.text()
        ));
    }
    eprintln!(
        "fcx: pid {} on {}, instance {}",
        server.pid(),
        server.addr,
        warm.header("x-fc-instance-id").unwrap_or("?")
    );

    let lua = scratch.path().join("post.lua");
    std::fs::write(
        &lua,
        "wrk.method = \"POST\"\n\
         wrk.body = \"echo:hello\"\n\
         wrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n",
    )
    .map_err(|e| format!("write {}: {e}", lua.display()))?;
    let trigger_lua = scratch.path().join("trigger.lua");
    std::fs::write(
        &trigger_lua,
        format!(
            "wrk.method = \"POST\"\n\
             wrk.body = \"hello\"\n\
             wrk.headers[\"Host\"] = \"{FUNCTION}.localhost:{}\"\n\
             wrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n",
            server.addr.port()
        ),
    )
    .map_err(|e| format!("write {}: {e}", trigger_lua.display()))?;

    let mut targets: Vec<(&'static str, String, &Path)> = vec![
        ("direct", format!("http://{echo_addr}/invoke"), &lua),
        ("nginx", format!("http://{nginx_addr}/invoke"), &lua),
        (
            "nginx-fc",
            format!("http://{nginx_fc_addr}/2023-03-30/functions/{FUNCTION}/invocations"),
            &lua,
        ),
        (
            "fcx",
            server.url(&format!("/2023-03-30/functions/{FUNCTION}/invocations")),
            &lua,
        ),
        (
            "fcx-bare",
            bare.url(&format!("/2023-03-30/functions/{FUNCTION}/invocations")),
            &lua,
        ),
        ("fcx-trigger", server.url("/body"), &trigger_lua),
    ];
    for (name, one) in &opt_in {
        targets.push((
            *name,
            one.url(&format!("/2023-03-30/functions/{FUNCTION}/invocations")),
            &lua,
        ));
    }

    // FCX_BENCH_TARGETS=nginx,fcx measures only those (profiling one path); ratios need
    // the rows they compare.
    let wanted = |t: &str| only.trim().is_empty() || only.split(',').any(|w| w.trim() == t);
    let targets: Vec<_> = targets.into_iter().filter(|(t, _, _)| wanted(t)).collect();
    if targets.is_empty() {
        return Err(format!(
            "FCX_BENCH_TARGETS={only:?} names no target (direct, nginx, nginx-fc, fcx, fcx-bare, fcx-trigger, fcx-1t, fcx-normal)"
        ));
    }

    let mut runs = Vec::new();
    let mut failures = Vec::new();
    // Rounds interleave the targets so that a slow spell of the machine hits all of them.
    for round in 1..=rounds {
        for (target, url, lua) in &targets {
            echo.check_alive()?;
            proxy.check_alive()?;
            if round == 1 {
                // Unreported warm-up: opens the proxies' upstream connections, faults pages in.
                if let Err(e) = wrk_run(&wrk, lua, url, 64, WARMUP_SECS) {
                    failures.push(format!("{target} warm-up: {e}"));
                }
            }
            for &conns in &CONNS {
                eprintln!("wrk: round {round}/{rounds}, {target}, {conns} connection(s), {secs} s");
                // Server side of this target: the proxy (nginx's processes, or the fcx
                // server) and what serves behind it (the echo server, or fcx's instances).
                // The proxy is also measured alone, user space and kernel apart.
                let (proxy_pids, backend_pids): (Vec<u32>, Vec<u32>) = match *target {
                    "nginx" | "nginx-fc" => (with_children(proxy.pid()), vec![echo.pid()]),
                    "fcx" | "fcx-trigger" => (vec![server.pid()], server.instance_pids()),
                    "fcx-bare" => (vec![bare.pid()], bare.instance_pids()),
                    // An opt-in fcx target, or direct.
                    other => match opt_in.iter().find(|(name, _)| *name == other) {
                        Some((_, one)) => (vec![one.pid()], one.instance_pids()),
                        None => (Vec::new(), vec![echo.pid()]),
                    },
                };
                let pids: Vec<u32> = proxy_pids.iter().chain(&backend_pids).copied().collect();
                let cpu_before = cpu_ticks(&pids);
                let proxy_before = user_sys_ticks(&proxy_pids);
                let result = wrk_run(&wrk, lua, url, conns, secs);
                let cpu_ticks_used = cpu_ticks(&pids).saturating_sub(cpu_before);
                let proxy_after = user_sys_ticks(&proxy_pids);
                let proxy_used = (
                    proxy_after.0.saturating_sub(proxy_before.0),
                    proxy_after.1.saturating_sub(proxy_before.1),
                );
                match result {
                    Ok(out) => match parse_wrk(&out) {
                        Some(mut r) => {
                            r.target = target;
                            r.conns = conns;
                            r.rss_kib = peak_rss_kib(&pids);
                            if r.requests > 0 {
                                let per_req =
                                    |ticks: u64| ticks as f64 * 1e6 / clk_tck() / r.requests as f64;
                                r.cpu_us_per_req = per_req(cpu_ticks_used);
                                r.proxy_user_us = per_req(proxy_used.0);
                                r.proxy_sys_us = per_req(proxy_used.1);
                            }
                            if r.non_2xx > 0 {
                                failures.push(format!(
                                    "{target} at {conns} conns: {} non-2xx responses",
                                    r.non_2xx
                                ));
                            }
                            runs.push(r);
                        }
                        None => failures.push(format!(
                            "{target} at {conns} conns: cannot parse wrk output:\n{out}"
                        )),
                    },
                    Err(e) => failures.push(format!("{target} at {conns} conns: {e}")),
                }
            }
        }
    }
    let instances = server.instance_pids().len();

    print_report(&summarize(&runs, rounds), rounds, instances);
    if failures.is_empty() {
        Ok(true)
    } else {
        println!();
        println!("FAILED:");
        for f in &failures {
            println!("- {f}");
        }
        Ok(false)
    }
}

/// A server with `extra` flags and the warm bench function.
fn start_fcx(extra: &[&str]) -> Result<support::Server, String> {
    let server = support::Server::start_with(support::Options::with_args(extra));
    let mut function = support::testfn_function(FUNCTION, json!({}));
    function["instanceConcurrency"] = json!(200);
    server.create_function(function);
    let warm = server.invoke(FUNCTION, b"echo:hello");
    if warm.status != 200 || warm.body != b"hello" {
        return Err(format!(
            "warm-up invoke ({extra:?}) failed: {} {}",
            warm.status,
            warm.text()
        ));
    }
    Ok(server)
}

/// Makes sure `fcx-testfn` sits next to the release `fcx` binary: under `cargo bench`,
/// `support::testfn_bin()` looks there and would otherwise build a debug binary elsewhere.
fn ensure_release_testfn() -> Result<(), String> {
    let path = support::fcx_bin().with_file_name("fcx-testfn");
    if path.exists() {
        return Ok(());
    }
    eprintln!("building fcx-testfn (release) for {}", path.display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "fcx-testfn"])
        .status()
        .map_err(|e| format!("run cargo build --release -p fcx-testfn: {e}"))?;
    if !status.success() || !path.exists() {
        return Err(format!(
            "cargo build --release -p fcx-testfn failed ({status}), or {} is still missing",
            path.display()
        ));
    }
    Ok(())
}

/// Starts the echo server on an ephemeral loopback port and reads the port from its startup line.
fn start_echo(testfn: &Path) -> Result<(ChildGuard, SocketAddr), String> {
    let child = Command::new(testfn)
        .env("TESTFN_MODE", "listen-localhost")
        .env("TESTFN_PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start {}: {e}", testfn.display()))?;
    let mut guard = ChildGuard {
        name: "echo server",
        child,
        graceful: None,
    };
    let stdout = guard.child.stdout.take().ok_or("echo server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = match lines.next() {
        Some(Ok(line)) => line,
        other => return Err(format!("echo server printed no startup line: {other:?}")),
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let addr: SocketAddr = line
        .strip_prefix("testfn: listening on ")
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| format!("unexpected echo server startup line: {line:?}"))?;
    wait_connectable(&mut guard, addr)?;
    Ok((guard, addr))
}

/// The context headers fcx sends an instance with each invocation (`fcx_scheduler`'s
/// `context` module; values as for the bench function), for nginx-fc. `$request_id` is
/// nginx's per-request id.
const FC_REQUEST_HEADERS: &[(&str, &str)] = &[
    ("Host", "127.0.0.1"),
    ("x-fc-function-name", FUNCTION),
    ("x-fc-function-memory", "512"),
    ("x-fc-function-timeout", "10"),
    ("x-fc-function-handler", "index.handler"),
    ("x-fc-region", "local"),
    ("x-fc-account-id", "4817154519659470"),
    ("x-fc-version-id", "LATEST"),
    ("x-fc-instance-id", "c-31173982a890420ca911"),
    ("x-fc-request-id", "$request_id"),
    ("x-fc-qualifier", "LATEST"),
    ("x-fc-control-path", "/invoke"),
    ("traceparent", "00-$request_id-fe684372140d41a5-01"),
];

/// The headers fcx adds to an invocation's answer, for nginx-fc (which drops the echo
/// server's own `x-testfn-instance`, as fcx does).
const FC_ANSWER_HEADERS: &[(&str, &str)] = &[
    ("x-fc-instance-id", "c-31173982a890420ca911"),
    ("x-fc-invocation-duration", "0"),
    ("x-fc-max-memory-usage", "10"),
    ("x-fc-code-checksum", "1235252643496576788"),
    ("x-fc-request-id", "$request_id"),
    ("traceparent", "00-$request_id-5fcf59b006b941f5-01"),
];

/// Writes an nginx config under `dir` and starts nginx in the foreground on two free ports:
/// the plain proxy, and nginx-fc (the same proxy with FC's headers both ways).
fn start_nginx(
    nginx: &Path,
    dir: &Path,
    upstream: SocketAddr,
) -> Result<(ChildGuard, SocketAddr, SocketAddr), String> {
    use std::os::unix::fs::PermissionsExt;
    // nginx's workers run as `nobody`; they must reach the temp paths.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    let addr = free_port()?;
    let fc_addr = free_port()?;
    let fc_request: String = FC_REQUEST_HEADERS
        .iter()
        .map(|(n, v)| format!("            proxy_set_header {n} \"{v}\";\n"))
        .collect();
    let fc_answer: String = FC_ANSWER_HEADERS
        .iter()
        .map(|(n, v)| format!("            add_header {n} \"{v}\";\n"))
        .collect();
    let d = dir.display();
    let conf = format!(
        "worker_processes auto;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    upstream echo {{
        server {upstream};
        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        listen {addr};
        location / {{
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
    server {{
        listen {fc_addr};
        location = /2023-03-30/functions/{FUNCTION}/invocations {{
            proxy_pass http://echo/invoke;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
{fc_request}            proxy_hide_header x-testfn-instance;
{fc_answer}        }}
    }}
}}
"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| format!("write nginx.conf: {e}"))?;
    let child = Command::new(nginx)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start {}: {e}", nginx.display()))?;
    let mut guard = ChildGuard {
        name: "nginx",
        child,
        graceful: Some(libc::SIGTERM),
    };
    for a in [addr, fc_addr] {
        if let Err(e) = wait_connectable(&mut guard, a) {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            return Err(format!("{e}\nnginx error.log:\n{log}"));
        }
    }
    Ok((guard, addr, fc_addr))
}

/// A loopback address with a port that was free a moment ago.
fn free_port() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr().map_err(|e| format!("local_addr: {e}"))
}

/// Waits up to 10 s until `addr` accepts connections while `child` is alive.
fn wait_connectable(child: &mut ChildGuard, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        child.check_alive()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{} does not accept on {addr}", child.name));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs wrk once (bounded by `-d` plus a generous margin) and returns its stdout.
fn wrk_run(wrk: &Path, lua: &Path, url: &str, conns: u32, secs: u64) -> Result<String, String> {
    let threads = conns.min(2);
    let mut child = Command::new(wrk)
        .arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .args(["--timeout", "5s", "--latency", "-s"])
        .arg(lua)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start wrk: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("wrk stdout")?;
    let mut stderr = child.stderr.take().ok_or("wrk stderr")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let err_reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("wrk did not finish in time; killed".into());
            }
            Err(e) => return Err(format!("wait for wrk: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("wrk failed ({status}): {err}{out}"));
    }
    Ok(out)
}

/// A positive integer from the environment, or `default` when unset or empty.
fn env_count(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name}={v:?}: expected a positive integer")),
        _ => Ok(default),
    }
}

/// One row per (target, conns): the median of each metric over the rounds (upper median for
/// an even count), request and error counts summed.
fn summarize(runs: &[Run], rounds: u64) -> Vec<Run> {
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    let mut rows: Vec<Run> = Vec::new();
    for r in runs {
        if rows
            .iter()
            .any(|x| x.target == r.target && x.conns == r.conns)
        {
            continue;
        }
        let same: Vec<&Run> = runs
            .iter()
            .filter(|x| x.target == r.target && x.conns == r.conns)
            .collect();
        let rps: Vec<f64> = same.iter().map(|x| x.rps).collect();
        let mut socket_errors: Vec<&str> = same
            .iter()
            .map(|x| x.socket_errors.as_str())
            .filter(|e| !e.is_empty())
            .collect();
        socket_errors.dedup();
        rows.push(Run {
            target: r.target,
            conns: r.conns,
            rps: median(rps.clone()),
            rps_range: (
                rps.iter().copied().fold(f64::INFINITY, f64::min),
                rps.iter().copied().fold(0.0, f64::max),
            ),
            p50_us: median(same.iter().map(|x| x.p50_us).collect()),
            p99_us: median(same.iter().map(|x| x.p99_us).collect()),
            cpu_us_per_req: median(same.iter().map(|x| x.cpu_us_per_req).collect()),
            proxy_user_us: median(same.iter().map(|x| x.proxy_user_us).collect()),
            proxy_sys_us: median(same.iter().map(|x| x.proxy_sys_us).collect()),
            rss_kib: same.iter().map(|x| x.rss_kib).max().unwrap_or(0),
            requests: same.iter().map(|x| x.requests).sum(),
            non_2xx: same.iter().map(|x| x.non_2xx).sum(),
            socket_errors: socket_errors.join(" / "),
        });
    }
    if rounds > 1 {
        eprintln!(
            "{} runs summarized as medians over {rounds} rounds",
            runs.len()
        );
    }
    rows
}

/// Parses wrk's `--latency` output.
fn parse_wrk(out: &str) -> Option<Run> {
    let mut run = Run::default();
    let mut in_dist = false;
    let (mut rps, mut p50, mut p99) = (None, None, None);
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if t.starts_with("Latency Distribution") {
            in_dist = true;
        } else if in_dist && t.starts_with("50%") {
            p50 = t.split_whitespace().nth(1).and_then(duration_us);
        } else if in_dist && t.starts_with("99%") {
            p99 = t.split_whitespace().nth(1).and_then(duration_us);
            in_dist = false;
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            run.non_2xx = v.trim().parse().unwrap_or(u64::MAX);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            run.socket_errors = v.trim().to_string();
        } else if t.contains(" requests in ") {
            run.requests = t.split_whitespace().next()?.parse().ok()?;
        }
    }
    run.rps = rps?;
    run.rps_range = (run.rps, run.rps);
    run.p50_us = p50?;
    run.p99_us = p99?;
    Some(run)
}

/// `45.00us`, `1.20ms`, `2.00s`, `1.00m` → microseconds.
fn duration_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(n * scale)
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn print_report(runs: &[Run], rounds: u64, fcx_instances: usize) {
    println!();
    if rounds > 1 {
        println!("Medians over {rounds} rounds; req/s range = lowest-highest round.");
        println!();
        println!(
            "| target | conns | req/s | req/s range | p50 | p99 | server CPU/req | server RSS | requests | errors |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    } else {
        println!(
            "| target | conns | req/s | p50 | p99 | server CPU/req | server RSS | requests | errors |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    }
    for r in runs {
        let mut errors = Vec::new();
        if r.non_2xx > 0 {
            errors.push(format!("{} non-2xx", r.non_2xx));
        }
        if !r.socket_errors.is_empty() {
            errors.push(format!("socket: {}", r.socket_errors));
        }
        let range = if rounds > 1 {
            format!(" {:.0}-{:.0} |", r.rps_range.0, r.rps_range.1)
        } else {
            String::new()
        };
        println!(
            "| {} | {} | {:.0} |{range} {} | {} | {:.0} µs | {:.1} MiB | {} | {} |",
            r.target,
            r.conns,
            r.rps,
            fmt_us(r.p50_us),
            fmt_us(r.p99_us),
            r.cpu_us_per_req,
            r.rss_kib as f64 / 1024.0,
            r.requests,
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join("; ")
            }
        );
    }
    let get =
        |target: &str, conns: u32| runs.iter().find(|r| r.target == target && r.conns == conns);
    println!();
    println!("Ratios:");
    for conns in CONNS {
        if let (Some(f), Some(n), Some(d)) =
            (get("fcx", conns), get("nginx", conns), get("direct", conns))
        {
            println!(
                "- throughput at {conns} conn(s): fcx/nginx = {:.2}, fcx/direct = {:.2}, \
                 nginx/direct = {:.2}",
                f.rps / n.rps,
                f.rps / d.rps,
                n.rps / d.rps
            );
        }
    }
    for conns in CONNS {
        if let (Some(f), Some(n), Some(d)) = (
            get("fcx", conns),
            get("nginx-fc", conns),
            get("direct", conns),
        ) {
            println!(
                "- with FC's headers on nginx too, at {conns} conn(s): fcx/nginx-fc = {:.2}, \
                 nginx-fc/nginx = {:.2}, proxy CPU/req fcx {:.0} µs vs nginx-fc {:.0} µs",
                f.rps / n.rps,
                get("nginx", conns).map_or(f64::NAN, |p| n.rps / p.rps),
                f.cpu_us_per_req - d.cpu_us_per_req,
                n.cpu_us_per_req - d.cpu_us_per_req
            );
        }
    }
    for conns in CONNS {
        if let (Some(f), Some(b)) = (get("fcx", conns), get("fcx-bare", conns)) {
            println!(
                "- metrics and logging at {conns} conn(s): fcx/fcx-bare throughput = {:.3} \
                 (cost {:+.1} %), CPU/req {:.0} µs vs {:.0} µs",
                f.rps / b.rps,
                (1.0 - f.rps / b.rps) * 100.0,
                f.cpu_us_per_req,
                b.cpu_us_per_req
            );
        }
    }
    for conns in CONNS {
        if let (Some(f), Some(o)) = (get("fcx", conns), get("fcx-1t", conns)) {
            println!(
                "- serving threads at {conns} conn(s): fcx (one per CPU) / fcx-1t (one) \
                 throughput = {:.3}, p50 {} vs {}, CPU/req {:.0} µs vs {:.0} µs",
                f.rps / o.rps,
                fmt_us(f.p50_us),
                fmt_us(o.p50_us),
                f.cpu_us_per_req,
                o.cpu_us_per_req
            );
        }
    }
    for conns in CONNS {
        if let (Some(f), Some(o)) = (get("fcx", conns), get("fcx-normal", conns)) {
            println!(
                "- instance scheduling at {conns} conn(s): fcx (SCHED_BATCH) / fcx-normal \
                 (SCHED_OTHER) throughput = {:.3}, p50 {} vs {}, p99 {} vs {}, \
                 CPU/req {:.0} µs vs {:.0} µs",
                f.rps / o.rps,
                fmt_us(f.p50_us),
                fmt_us(o.p50_us),
                fmt_us(f.p99_us),
                fmt_us(o.p99_us),
                f.cpu_us_per_req,
                o.cpu_us_per_req
            );
        }
    }
    if let (Some(f), Some(n), Some(d)) = (get("fcx", 1), get("nginx", 1), get("direct", 1)) {
        println!(
            "- added p50 at 1 conn (vs direct): fcx +{}, nginx +{} (ratio {:.2})",
            fmt_us(f.p50_us - d.p50_us),
            fmt_us(n.p50_us - d.p50_us),
            (f.p50_us - d.p50_us) / (n.p50_us - d.p50_us)
        );
    }
    if let (Some(f), Some(n)) = (get("fcx", 64), get("nginx", 64)) {
        println!(
            "- p99 at 64 conns: fcx {} vs nginx {} (ratio {:.2})",
            fmt_us(f.p99_us),
            fmt_us(n.p99_us),
            f.p99_us / n.p99_us
        );
    }
    if let (Some(f), Some(n), Some(d)) = (get("fcx", 64), get("nginx", 64), get("direct", 64)) {
        println!(
            "- proxy CPU per request at 64 conns (server-side CPU/req minus direct's): \
             fcx {:.0} µs, nginx {:.0} µs (ratio {:.2})",
            f.cpu_us_per_req - d.cpu_us_per_req,
            n.cpu_us_per_req - d.cpu_us_per_req,
            (f.cpu_us_per_req - d.cpu_us_per_req) / (n.cpu_us_per_req - d.cpu_us_per_req)
        );
    }
    for conns in CONNS {
        if let (Some(f), Some(n), Some(c)) = (
            get("fcx", conns),
            get("nginx", conns),
            get("nginx-fc", conns),
        ) {
            println!(
                "- the proxy process alone at {conns} conn(s), user / kernel CPU per request: \
                 fcx {:.1} / {:.1} µs, nginx {:.1} / {:.1} µs, nginx-fc {:.1} / {:.1} µs \
                 (fcx/nginx: user {:.2}, kernel {:.2})",
                f.proxy_user_us,
                f.proxy_sys_us,
                n.proxy_user_us,
                n.proxy_sys_us,
                c.proxy_user_us,
                c.proxy_sys_us,
                f.proxy_user_us / n.proxy_user_us,
                f.proxy_sys_us / n.proxy_sys_us
            );
        }
    }
    for conns in CONNS {
        if let (Some(t), Some(n)) = (get("fcx-trigger", conns), get("nginx", conns)) {
            println!(
                "- HTTP trigger at {conns} conn(s): fcx-trigger/nginx = {:.2} (req/s), p50 {} vs \
                 {} (ratio {:.2}), p99 {} vs {} (ratio {:.2}), server CPU/req {:.0} vs {:.0} µs \
                 (ratio {:.2})",
                t.rps / n.rps,
                fmt_us(t.p50_us),
                fmt_us(n.p50_us),
                t.p50_us / n.p50_us,
                fmt_us(t.p99_us),
                fmt_us(n.p99_us),
                t.p99_us / n.p99_us,
                t.cpu_us_per_req,
                n.cpu_us_per_req,
                t.cpu_us_per_req / n.cpu_us_per_req
            );
        }
    }
    if let (Some(f), Some(n)) = (get("fcx", 64), get("nginx", 64)) {
        println!(
            "- peak RSS at 64 conns, one warm instance: fcx + instance {:.1} MiB, nginx (master, \
             workers) + echo server {:.1} MiB",
            f.rss_kib as f64 / 1024.0,
            n.rss_kib as f64 / 1024.0
        );
    }
    println!("- fcx instances running after the runs: {fcx_instances}");
    println!(
        "- server CPU/req: user + system CPU of the echo server (direct), nginx's processes + \
         the echo server (nginx, nginx-fc), fcx + its instance (fcx), divided by the requests served; \
         server RSS: the same processes' peak resident memory (VmHWM) summed; the proxy \
         process alone: nginx's master and workers, or the fcx server (its instance excluded)"
    );
}

/// First line of `<tool> <flag>` (stdout or stderr), e.g. `nginx version: nginx/1.22.1`.
fn tool_version(tool: &Path, flag: &str) -> String {
    Command::new(tool)
        .arg(flag)
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stderr),
                String::from_utf8_lossy(&o.stdout)
            );
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("{} (version unknown)", tool.display()))
}

/// Utime + stime (clock ticks, all threads, reaped children excluded) summed over `pids`;
/// processes that are gone count as 0.
fn cpu_ticks(pids: &[u32]) -> u64 {
    let (user, sys) = user_sys_ticks(pids);
    user + sys
}

/// Utime and stime (clock ticks, all threads, reaped children excluded), each summed over
/// `pids`; processes that are gone count as 0.
fn user_sys_ticks(pids: &[u32]) -> (u64, u64) {
    pids.iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after "pid (comm) ": state is the 1st, utime the 12th, stime the 13th.
            let mut rest = stat[stat.rfind(')')? + 2..].split_whitespace();
            let utime: u64 = rest.nth(11)?.parse().ok()?;
            let stime: u64 = rest.next()?.parse().ok()?;
            Some((utime, stime))
        })
        .fold((0, 0), |(u, s), (du, ds)| (u + du, s + ds))
}

/// The summed peak resident set (`VmHWM`, KiB) of `pids`.
fn peak_rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// `pid` and its direct children (nginx's master and workers).
fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let ppid = std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            if ppid == Some(pid) {
                pids.push(child);
            }
        }
    }
    pids
}

/// Clock ticks per second for /proc/<pid>/stat times.
fn clk_tck() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf(3) with a valid name has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The first executable `name` on `PATH` (plus the sbin directories, for nginx).
fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}
