//! Density benchmark: how much memory the platform spends per warm instance.
//!
//! For each backend (`process` with fcx-testfn as a code package, `oci` with an image of
//! the same binary from a real registry on loopback) and each egress variant (no
//! `internetAccess`, then `internetAccess: true` under each `--egress` mode asked for), one
//! fresh server: deploy N functions, warm M of them (one instance each, invoked by a few
//! parallel clients), then read PSS (`/proc/<pid>/smaps_rollup`) of fcx, of each helper kind
//! under it (pasta, crun) and of the instances, fcx's fds and threads, and the time to warm
//! all M. The per-instance platform overhead is (fcx's growth while warming + helpers) / M.
//!
//! Environment: `FCX_DENSITY_FUNCTIONS` (N, default 1000), `FCX_DENSITY_WARM` (M, default
//! 200), `FCX_DENSITY_BACKENDS` (default `process,oci`), `FCX_DENSITY_EGRESS` (modes for
//! the `internetAccess` rows, default `veth,pasta`; `default` passes no `--egress` flag, for
//! builds that predate it), `FCX_DENSITY_CLIENTS` (parallel warm-up clients, default 8).
//! Nothing is asserted; it fails only when something does not run. `bash
//! scripts/bench-density.sh` builds what it needs and runs it.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "density/procs.rs"]
mod procs;

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fcx_image::build::{ImageBuilder, Layer};
use fcx_image::RegistryOptions;
use fcx_testkit::registry::TestRegistry;
use procs::Kind;
use serde_json::{json, Value};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("density: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Settings {
    functions: usize,
    warm: usize,
    clients: usize,
    backends: Vec<String>,
    egress: Vec<String>,
}

fn env_count(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| format!("{name}={v} is not a count")),
        Err(_) => Ok(default),
    }
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn run() -> Result<(), String> {
    let s = Settings {
        functions: env_count("FCX_DENSITY_FUNCTIONS", 1000)?,
        warm: env_count("FCX_DENSITY_WARM", 200)?,
        clients: env_count("FCX_DENSITY_CLIENTS", 8)?.max(1),
        backends: env_list("FCX_DENSITY_BACKENDS", "process,oci"),
        egress: env_list("FCX_DENSITY_EGRESS", "veth,pasta"),
    };
    if s.warm > s.functions {
        return Err(format!(
            "FCX_DENSITY_WARM={} exceeds FCX_DENSITY_FUNCTIONS={}",
            s.warm, s.functions
        ));
    }
    let registry = TestRegistry::start();
    let image = if s.backends.iter().any(|b| b == "oci") {
        Some(push_image(&registry)?)
    } else {
        None
    };
    let (_package_dir, package) = tiny_package()?;
    let mut rows = Vec::new();
    for backend in &s.backends {
        let mut variants = vec![None];
        variants.extend(s.egress.iter().map(Some));
        for egress in variants {
            let label = egress.map_or("off".to_owned(), |m| format!("on ({m})"));
            eprintln!(
                "== {backend}, egress {label}: {} functions, {} warm",
                s.functions, s.warm
            );
            let row = measure(
                &s,
                backend,
                egress.map(String::as_str),
                image.as_deref(),
                &package,
            )?;
            rows.push((backend.clone(), label, row));
        }
    }
    report(&s, &rows);
    Ok(())
}

/// The fcx-testfn image (its binary and `ldd` closure), pushed to the test registry.
fn push_image(registry: &TestRegistry) -> Result<String, String> {
    let testfn = support::testfn_bin();
    let reference = format!("{}/bench/density:v1", registry.addr());
    let image = ImageBuilder::new()
        .env("PATH=/usr/bin:/bin")
        .layer(fcx_testkit::images::base_layer())
        .layer(fcx_testkit::images::closure(&[&testfn]).map_err(|e| e.to_string())?)
        .layer(
            Layer::new()
                .host_file("/fcx-testfn", &testfn)
                .map_err(|e| e.to_string())?,
        )
        .cmd(&["/fcx-testfn"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(image.push(&reference, &RegistryOptions::default()))
        .map_err(|e| format!("push: {e}"))?;
    Ok(reference)
}

/// One server's figures.
struct Row {
    fcx_idle_kb: u64,
    fcx_deployed_kb: u64,
    fcx_warm_kb: u64,
    fds: usize,
    threads: usize,
    usage: procs::Usage,
    deploy: Duration,
    warm: Duration,
    host_delta_kb: i64,
    slab_delta_kb: i64,
}

impl Row {
    fn helpers_kb(&self) -> u64 {
        self.usage.pss(Kind::Pasta) + self.usage.pss(Kind::Runtime)
    }

    /// (fcx's growth while warming + every helper) / M, in kB.
    fn platform_per_instance_kb(&self, m: usize) -> f64 {
        let growth = self.fcx_warm_kb.saturating_sub(self.fcx_deployed_kb);
        (growth + self.helpers_kb()) as f64 / m.max(1) as f64
    }
}

/// A code package whose `bootstrap` execs fcx-testfn from a world-readable copy: 1,000
/// uploads of the binary itself would be gigabytes of JSON.
fn tiny_package() -> Result<(tempfile::TempDir, String), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("fcx-density-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let bin = dir.path().join("fcx-testfn");
    std::fs::copy(support::testfn_bin(), &bin).map_err(|e| e.to_string())?;
    for (path, mode) in [(dir.path(), 0o755), (bin.as_path(), 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| e.to_string())?;
    }
    let script = format!("#!/bin/sh\nexec {}\n", bin.display());
    let zip = support::zipper::zip_files(&[("bootstrap", script.as_bytes(), 0o755)]);
    Ok((dir, support::zipper::base64(&zip)))
}

fn function(
    backend: &str,
    name: &str,
    internet: bool,
    image: Option<&str>,
    package: &str,
) -> Value {
    let mut body = match (backend, image) {
        ("oci", Some(image)) => json!({
            "functionName": name,
            "runtime": "custom-container",
            "handler": "h",
            "timeout": 10,
            "memorySize": 128,
            "customContainerConfig": { "image": image, "port": 9000 },
        }),
        _ => {
            let mut b = support::testfn_function(name, json!({}));
            b["code"]["zipFile"] = json!(package);
            b
        }
    };
    body["internetAccess"] = json!(internet);
    body
}

fn measure(
    s: &Settings,
    backend: &str,
    egress: Option<&str>,
    image: Option<&str>,
    package: &str,
) -> Result<Row, String> {
    let max = (s.warm + 16).to_string();
    let mut args = vec![
        "--max-instances",
        &max,
        "--sandboxes-per-function",
        "0",
        "--idle-timeout",
        "3600",
    ];
    if let Some(mode) = egress.filter(|m| *m != "default") {
        args.extend(["--egress", mode]);
    }
    let server = support::Server::start_with(support::Options::with_args(&args));
    let pid = server.pid();
    // Let start-up work (reaping, store open, egress set-up) settle first.
    std::thread::sleep(Duration::from_millis(500));
    let fcx_idle_kb = procs::pss_kb(pid);
    let internet = egress.is_some();
    if backend == "oci" {
        // The one image pull, not timed: a function warmed and deleted.
        server.create_function(function(backend, "pull", internet, image, package));
        let r = server.invoke("pull", b"echo:hi");
        if r.status != 200 {
            return Err(format!("oci pull function: {} {}", r.status, r.text()));
        }
        server.request("DELETE", "/2023-03-30/functions/pull", &[], b"");
        std::thread::sleep(Duration::from_millis(500));
    }
    let t = Instant::now();
    let body = function(backend, "f-0", internet, image, package);
    parallel(s.clients, s.functions, |i| {
        let mut b = body.clone();
        b["functionName"] = json!(format!("f-{i}"));
        let r = server.post_json("/2023-03-30/functions", &b);
        (r.status == 200)
            .then_some(())
            .ok_or_else(|| format!("CreateFunction f-{i}: {} {}", r.status, r.text()))
    })?;
    let deploy = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let fcx_deployed_kb = procs::pss_kb(pid);
    let (host0, slab0) = (procs::host_used_kb(), procs::slab_kb());
    let t = Instant::now();
    let done = AtomicUsize::new(0);
    parallel(s.clients, s.warm, |i| {
        let r = server.invoke(&format!("f-{i}"), b"echo:hi");
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if n % 50 == 0 {
            eprintln!("   {n}/{} warm", s.warm);
        }
        (r.status == 200 && r.text() == "hi")
            .then_some(())
            .ok_or_else(|| format!("invoke f-{i}: {} {}", r.status, r.text()))
    })?;
    let warm = t.elapsed();
    // Let helpers finish their start-up allocations before reading them.
    std::thread::sleep(Duration::from_secs(2));
    let usage = procs::usage_below(pid);
    let row = Row {
        fcx_idle_kb,
        fcx_deployed_kb,
        fcx_warm_kb: procs::pss_kb(pid),
        fds: procs::fds(pid),
        threads: procs::threads(pid),
        host_delta_kb: procs::host_used_kb() as i64 - host0 as i64,
        slab_delta_kb: procs::slab_kb() as i64 - slab0 as i64,
        usage,
        deploy,
        warm,
    };
    if row.usage.count(Kind::Instance) < s.warm {
        return Err(format!(
            "{} instance processes after warming {}",
            row.usage.count(Kind::Instance),
            s.warm
        ));
    }
    drop(server);
    Ok(row)
}

/// Runs `job(0..count)` on `clients` threads; the first error wins.
fn parallel(
    clients: usize,
    count: usize,
    job: impl Fn(usize) -> Result<(), String> + Sync,
) -> Result<(), String> {
    let next = AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || failed.lock().unwrap().is_some() {
                    return;
                }
                if let Err(e) = job(i) {
                    failed.lock().unwrap().get_or_insert(e);
                }
            });
        }
    });
    match failed.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

fn report(s: &Settings, rows: &[(String, String, Row)]) {
    let m = s.warm;
    println!("# fcx density benchmark");
    println!();
    println!(
        "machine: {} CPUs, kernel {}; N = {} functions deployed, M = {m} warm instances, \
         {} warm-up clients; PSS from /proc/<pid>/smaps_rollup",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        s.functions,
        s.clients,
    );
    println!();
    println!(
        "| backend | egress | fcx idle MB | fcx N deployed MB | fcx M warm MB | pasta n / MB | \
         crun n / MB | instances n / MB | fcx fds | fcx threads | deploy N s | warm M s | \
         platform kB / instance | fcx + helpers MB | host used Δ kB / inst | slab Δ kB / inst |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (backend, egress, r) in rows {
        println!(
            "| {backend} | {egress} | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} | {} | {:.1} | {:.1} | {:.0} | {} | {} | {} |",
            mb(r.fcx_idle_kb),
            mb(r.fcx_deployed_kb),
            mb(r.fcx_warm_kb),
            r.usage.count(Kind::Pasta),
            mb(r.usage.pss(Kind::Pasta)),
            r.usage.count(Kind::Runtime),
            mb(r.usage.pss(Kind::Runtime)),
            r.usage.count(Kind::Instance),
            mb(r.usage.pss(Kind::Instance)),
            r.fds,
            r.threads,
            r.deploy.as_secs_f64(),
            r.warm.as_secs_f64(),
            r.platform_per_instance_kb(m),
            mb(r.fcx_warm_kb + r.helpers_kb()),
            r.host_delta_kb / m as i64,
            r.slab_delta_kb / m as i64,
        );
    }
    println!();
    println!("per-instance platform overhead (fcx growth while warming + helpers, / M):");
    for (backend, egress, r) in rows {
        let base = rows
            .iter()
            .find(|(b, e, _)| b == backend && e == "off")
            .map(|(_, _, r)| r.platform_per_instance_kb(m));
        let extra = match base {
            Some(b) if egress != "off" => {
                format!(
                    "; egress adds {:.0} kB / instance over off",
                    r.platform_per_instance_kb(m) - b
                )
            }
            _ => String::new(),
        };
        println!(
            "- {backend}, egress {egress}: {:.0} kB / instance; fcx + helpers {} MB for {m} warm{extra}",
            r.platform_per_instance_kb(m),
            mb(r.fcx_warm_kb + r.helpers_kb()),
        );
    }
}
