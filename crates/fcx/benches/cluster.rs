//! Several nodes, in one run: warm invokes through nginx (the shipped
//! `deploy/nginx/fcx-cluster.conf`, consistent hashing on the function) in front of two fcx
//! nodes sharing a real PostgreSQL 15, against the same nginx config in front of one of those
//! nodes; and cold-start latency (the first invoke of a new function) on that cluster against
//! a single node on the embedded SQLite store. Eight functions of the test binary, so the hash
//! spreads them; wrk at 64 connections for FCX_BENCH_SECS (default 5) per run. Prints req/s,
//! the two-node/one-node ratio, cold-start medians and their ratio; asserts no timing.
//! Run with `bash scripts/bench.sh` (installs wrk and nginx) or
//! `cargo bench -p fcx --bench cluster`.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use fcx_testkit::postgres::{PgServer, TestDatabase};
use serde_json::json;

/// Functions the load spreads over (the hash places each on one node).
const FUNCTIONS: usize = 8;

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// nginx, stopped with SIGTERM (by its pid) and reaped when dropped.
struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Nginx {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped front config with `nodes` as its upstream servers, on a free loopback port.
fn start_nginx(nodes: &[SocketAddr]) -> Result<Nginx, String> {
    let shipped =
        std::fs::read_to_string(support::repo_root().join("deploy/nginx/fcx-cluster.conf"))
            .map_err(|e| format!("reading deploy/nginx/fcx-cluster.conf: {e}"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("free port: {e}"))?
        .port();
    let servers: String = nodes
        .iter()
        .map(|a| format!("    server {a} max_fails=2 fail_timeout=5s;\n"))
        .collect();
    let mut config = String::new();
    let mut placed = false;
    for line in shipped.lines() {
        if line.trim_start().starts_with("server 10.0.0.") {
            if !placed {
                config.push_str(&servers);
                placed = true;
            }
        } else if line.trim() == "listen 80;" {
            config.push_str(&format!("    listen 127.0.0.1:{port};\n"));
        } else {
            config.push_str(line);
            config.push('\n');
        }
    }
    if !placed {
        return Err("deploy/nginx/fcx-cluster.conf lists no `server 10.0.0.*` lines".into());
    }
    let dir = tempfile::Builder::new()
        .prefix("fcx-bench-nginx-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    // nginx's workers run as `nobody`; they must reach the temp paths.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod: {e}"))?;
    let d = dir.path().display();
    let conf = format!(
        "worker_processes 1;
daemon off;
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
{config}}}
"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).map_err(|e| format!("writing nginx.conf: {e}"))?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run nginx (apt-get install nginx-light): {e}"))?;
    let nginx = Nginx {
        child,
        _dir: dir,
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("nginx did not listen on {port}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(nginx)
}

fn wrk(base: &str, script: &Path, secs: u64) -> Result<f64, String> {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "-s"])
        .arg(script)
        .arg(base)
        .output()
        .map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!("wrk saw errors:\n{text}"));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output:\n{text}"))
}

fn function(name: &str) -> serde_json::Value {
    let mut f = support::testfn_function(name, json!({}));
    f["instanceConcurrency"] = json!(200);
    f["internetAccess"] = json!(false);
    f
}

/// Creates `names` on `on` and returns the median and largest first-invoke latency through
/// `invoke` (each first invoke starts the function's first instance: a cold start).
fn cold_starts(
    on: &support::Server,
    names: &[String],
    invoke: impl Fn(&str) -> Result<(), String>,
) -> Result<(Duration, Duration), String> {
    let mut took = Vec::new();
    for name in names {
        on.create_function(function(name));
        let start = Instant::now();
        invoke(name)?;
        took.push(start.elapsed());
    }
    took.sort();
    Ok((took[took.len() / 2], took[took.len() - 1]))
}

/// The invocation path of function `name`.
fn invocations(name: &str) -> String {
    format!("/2023-03-30/functions/{name}/invocations")
}

fn post(addr: SocketAddr, path: &str) -> Result<(), String> {
    let r = support::http::try_request(addr, "POST", path, &[], b"echo:cold")
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    if r.status == 200 && r.body == b"cold" {
        Ok(())
    } else {
        Err(format!("{addr}{path}: {} {}", r.status, r.text()))
    }
}

fn run() -> Result<(), String> {
    let secs: u64 = std::env::var("FCX_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("# fcx several-nodes benchmark");
    println!(
        "machine: {} CPUs; wrk -t2 -c64, {secs} s per run; {FUNCTIONS} functions",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Cold start on a single node on SQLite, the baseline.
    let single = support::Server::start();
    let names: Vec<String> = (0..FUNCTIONS).map(|i| format!("solo{i}")).collect();
    let (solo_p50, solo_max) =
        cold_starts(&single, &names, |n| post(single.addr, &invocations(n)))?;
    drop(single);

    let pg = std::sync::Arc::new(PgServer::start_durable());
    let db = TestDatabase::create_on("cluster_bench", Some(pg));
    let node = |id: &str| {
        support::Server::start_with(support::Options::with_args(&[
            "--store",
            db.url(),
            "--node-id",
            id,
            "--sync-interval",
            "1",
        ]))
    };
    let a = node("bench-a");
    let b = node("bench-b");
    let two = start_nginx(&[a.addr, b.addr])?;
    let one = start_nginx(&[a.addr])?;
    let url = |n: &Nginx| format!("http://127.0.0.1:{}/", n.port);

    // Cold start on the cluster: created through a, first invoked through the front (the
    // node the hash picks learns of the function through NOTIFY, then starts an instance).
    let names: Vec<String> = (0..FUNCTIONS).map(|i| format!("bench{i}")).collect();
    let (pg_p50, pg_max) = cold_starts(&a, &names, |n| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match post(two.addr(), &invocations(n)) {
                Ok(()) => return Ok(()),
                // Not yet heard of on the other node: 404 until the notification lands.
                Err(e) if e.contains("404") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(e),
            }
        }
    })?;
    // Every function warm on both nodes, so both fronts measure warm invokes.
    for n in &names {
        for s in [&a, &b] {
            post(s.addr, &invocations(n))?;
        }
    }
    let on_a = names
        .iter()
        .filter(|n| !a.instance_ids(n).is_empty())
        .count();
    let on_b = names
        .iter()
        .filter(|n| !b.instance_ids(n).is_empty())
        .count();

    let scratch = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let lua = scratch.path().join("spread.lua");
    std::fs::write(
        &lua,
        format!(
            "local i = 0\n\
             request = function()\n\
             \x20 i = (i % {FUNCTIONS}) + 1\n\
             \x20 return wrk.format(\"POST\", \"/2023-03-30/functions/bench\" .. (i - 1) .. \
             \"/invocations\", {{[\"Content-Type\"] = \"application/octet-stream\"}}, \"echo:hi\")\n\
             end\n"
        ),
    )
    .map_err(|e| format!("writing the wrk script: {e}"))?;
    // Warm-up (unreported): nginx's upstream connections, the instances' first requests.
    wrk(&url(&two), &lua, 1)?;
    wrk(&url(&one), &lua, 1)?;
    let one_rps = wrk(&url(&one), &lua, secs)?;
    let two_rps = wrk(&url(&two), &lua, secs)?;
    let spread: Vec<usize> = names
        .iter()
        .map(|n| {
            let r = support::http::request(two.addr(), "POST", &invocations(n), &[], b"echo:x");
            usize::from(
                r.header("x-fc-instance-id")
                    .is_some_and(|id| b.instance_ids(n).iter().any(|x| x == id)),
            )
        })
        .collect();
    let via_b = spread.iter().sum::<usize>();

    println!();
    println!("| measurement | value |");
    println!("|---|---|");
    println!("| warm invoke, nginx -> 1 node (PostgreSQL store) | {one_rps:.0} req/s |");
    println!(
        "| warm invoke, nginx -> 2 nodes (hash: {} functions on a, {via_b} on b) | {two_rps:.0} req/s |",
        FUNCTIONS - via_b
    );
    println!(
        "| cold start, single node on SQLite (median / max of {FUNCTIONS}) | {:.1} / {:.1} ms |",
        ms(solo_p50),
        ms(solo_max)
    );
    println!(
        "| cold start, 2 nodes on PostgreSQL through nginx (median / max) | {:.1} / {:.1} ms |",
        ms(pg_p50),
        ms(pg_max)
    );
    println!(
        "ratio warm invoke 2 nodes / 1 node: {:.2}",
        two_rps / one_rps
    );
    println!(
        "ratio cold start (median) cluster / single node: {:.2}",
        ms(pg_p50) / ms(solo_p50)
    );
    eprintln!("instances after warming: {on_a} functions on a, {on_b} on b");
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
