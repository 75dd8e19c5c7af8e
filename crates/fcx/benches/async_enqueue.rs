//! Durable async enqueue rate vs synchronous invoke rate, in one run (issue: async
//! invocation). Starts the real `fcx` server (release build) with the test function, then
//! drives it with `wrk` at 64 connections: `x-fc-invocation-type: Async` (each 202 means the
//! event is fsync'd in SQLite) and plain synchronous invocations of the same function.
//! Prints req/s for both and their ratio. Then the same async enqueue against a server on a
//! PostgreSQL store (a real PostgreSQL 15 with its default durability, fsync on, started for
//! the run) and its ratio to SQLite's. Bounded: FCX_BENCH_SECS (default 5) per run.
//! Run with `bash scripts/bench.sh` (installs wrk) or `cargo bench -p fcx --bench async_enqueue`.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::process::{Command, ExitCode};

use serde_json::json;

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("async_enqueue bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn wrk(url: &str, script: &std::path::Path, secs: u64) -> Result<(f64, String), String> {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        eprintln!("warning: wrk saw errors:\n{text}");
    }
    Ok((rps, text))
}

fn run() -> Result<(), String> {
    let secs: u64 = std::env::var("FCX_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let server = support::Server::start();
    let mut f = support::testfn_function("bench", json!({}));
    f["instanceConcurrency"] = json!(200);
    server.create_function(f);
    if server.invoke("bench", b"echo:warm").status != 200 {
        return Err("warm-up invocation failed".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let async_lua = dir.path().join("async.lua");
    let sync_lua = dir.path().join("sync.lua");
    let common = "wrk.method = \"POST\"\nwrk.body = \"echo:hello\"\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n";
    std::fs::write(&sync_lua, common).map_err(|e| e.to_string())?;
    std::fs::write(
        &async_lua,
        format!("{common}wrk.headers[\"x-fc-invocation-type\"] = \"Async\"\n"),
    )
    .map_err(|e| e.to_string())?;
    let url = server.url("/2023-03-30/functions/bench/invocations");
    let (sync_rps, _) = wrk(&url, &sync_lua, secs)?;
    let (async_rps, async_out) = wrk(&url, &async_lua, secs)?;
    let p50 = async_out
        .lines()
        .find(|l| l.trim_start().starts_with("50%"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_default();
    println!("| run (64 connections, {secs} s) | req/s |");
    println!("|---|---|");
    println!("| sync invoke (warm instance) | {sync_rps:.0} |");
    println!("| async enqueue (durable 202) | {async_rps:.0} |");
    println!("async enqueue latency {p50}");
    println!(
        "ratio async enqueue / sync invoke: {:.2}",
        async_rps / sync_rps
    );
    println!("goal: >= 20000 durable enqueues/s on 2 cores");
    drop(server);

    // The same enqueues on the shared store (group-committed in PostgreSQL).
    let pg = fcx_testkit::postgres::PgServer::start_durable();
    let db = fcx_testkit::postgres::TestDatabase::create_on("bench", Some(std::sync::Arc::new(pg)));
    let server = support::Server::start_with(support::Options::with_args(&["--store", db.url()]));
    let mut f = support::testfn_function("bench", json!({}));
    f["instanceConcurrency"] = json!(200);
    server.create_function(f);
    let url = server.url("/2023-03-30/functions/bench/invocations");
    let (pg_rps, _) = wrk(&url, &async_lua, secs)?;
    println!("| async enqueue on PostgreSQL (durable 202, fsync on) | {pg_rps:.0} |");
    println!(
        "ratio async enqueue PostgreSQL / SQLite: {:.2}",
        pg_rps / async_rps
    );
    Ok(())
}
