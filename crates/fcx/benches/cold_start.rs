//! Cold-start benchmark, all in one run, on one image (the std-only `fcx-testfn` HTTP server
//! with its library closure, pushed to a real `docker-registry` on loopback and cached):
//!
//! - (a) raw crun: a fresh network namespace (made the way fcx makes them), an overlay
//!   rootfs on the cached image, the bundle fcx generated for this function (its
//!   `config.json`, copied from a live fcx instance), `crun run -d`, then `POST /invoke`
//!   polled every 0.25 ms until it answers 200;
//! - (b) fcx cold: the first invocation of a function with no instance (image cached, no
//!   pre-created sandbox: `--sandboxes-per-function 0`), measured by the client;
//! - (b') fcx cold from a pre-created sandbox (the default);
//! - (c) fcx warm: an invocation of a running instance.
//!
//! Functions run with `internetAccess: false` so that (a) and (b) set up the same thing; two
//! extra rows show (b) with egress: veth (the default) and pasta, each against (b) of the same
//! run. Rounds are interleaved. `FCX_COLD_ROUNDS`
//! (default 30) sets the number of cold starts per row. Timings are printed, never
//! asserted. Run it with `bash scripts/bench-cold.sh`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use fcx_image::build::{ImageBuilder, Layer};
use fcx_image::{ImageStore, RegistryOptions};
use fcx_runtime::netns::NetNs;
use fcx_testkit::registry::TestRegistry;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cold_start: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let rounds: usize = std::env::var("FCX_COLD_ROUNDS")
        .ok()
        .map(|v| {
            v.parse()
                .map_err(|_| format!("FCX_COLD_ROUNDS={v} is not a count"))
        })
        .transpose()?
        .unwrap_or(30);
    let testfn = support::testfn_bin();
    let registry = TestRegistry::start();
    let reference = format!("{}/bench/testfn:v1", registry.addr());
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

    let plain = support::Server::start_with(support::Options::with_args(&[
        "--sandboxes-per-function",
        "0",
    ]));
    let pre = support::Server::start_with(support::Options::with_args(&["--sandbox-limit", "64"]));
    let pasta = support::Server::start_with(support::Options::with_args(&[
        "--sandboxes-per-function",
        "0",
        "--egress",
        "pasta",
    ]));
    // Pull once into each server's cache, and take fcx's bundle as the raw baseline's.
    let template = function("template", &reference, false);
    for s in [&plain, &pre, &pasta] {
        s.create_function(template.clone());
    }
    for s in [&plain, &pre, &pasta] {
        let r = s.invoke("template", b"echo:hi");
        if r.status != 200 {
            return Err(format!("template function: {} {}", r.status, r.text()));
        }
    }
    let config = live_config(&plain)?;
    let lower = ImageStore::open(plain.data_dir.path().join("images"))
        .map_err(|e| e.to_string())?
        .lookup(&reference)
        .ok_or("image not in the cache")?
        .rootfs;
    let scratch = tempfile::Builder::new()
        .prefix("fcx-cold-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let state = scratch.path().join("crun-state");

    let (mut raw, mut cold, mut sandboxed, mut egress, mut pasta_egress, mut warm) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    eprintln!("{rounds} rounds");
    for i in 0..rounds {
        raw.push(rt.block_on(raw_crun(i, &config, &lower, scratch.path(), &state))?);
        cold.push(cold_invoke(
            &plain,
            &format!("cold-{i}"),
            &reference,
            false,
            false,
        )?);
        sandboxed.push(cold_invoke(
            &pre,
            &format!("pre-{i}"),
            &reference,
            false,
            true,
        )?);
        egress.push(cold_invoke(
            &plain,
            &format!("egress-{i}"),
            &reference,
            true,
            false,
        )?);
        pasta_egress.push(cold_invoke(
            &pasta,
            &format!("pasta-{i}"),
            &reference,
            true,
            false,
        )?);
        let t = Instant::now();
        let r = plain.invoke("template", b"echo:hi");
        warm.push(t.elapsed());
        if r.status != 200 {
            return Err(format!("warm invoke: {} {}", r.status, r.text()));
        }
    }
    report(
        rounds,
        &raw,
        &cold,
        &sandboxed,
        &[&egress, &pasta_egress],
        &warm,
    );
    Ok(())
}

fn function(name: &str, image: &str, internet: bool) -> Value {
    json!({
        "functionName": name,
        "runtime": "custom-container",
        "handler": "h",
        "timeout": 10,
        "memorySize": 256,
        "internetAccess": internet,
        "customContainerConfig": { "image": image, "port": 9000 },
    })
}

/// The `config.json` of the (only) live instance of `server`.
fn live_config(server: &support::Server) -> Result<Value, String> {
    let dir = server.run_dir.join("oci");
    for e in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = e.map_err(|e| e.to_string())?.path().join("config.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            return serde_json::from_str(&text).map_err(|e| e.to_string());
        }
    }
    Err("no live instance bundle".into())
}

/// (b): create a function (not timed), time its first invocation, delete it (not timed).
fn cold_invoke(
    server: &support::Server,
    name: &str,
    image: &str,
    internet: bool,
    wait_sandbox: bool,
) -> Result<Duration, String> {
    server.create_function(function(name, image, internet));
    if wait_sandbox {
        let deadline = Instant::now() + Duration::from_secs(20);
        // The template function keeps one too.
        while ready_sandboxes(server) < 2 {
            if Instant::now() > deadline {
                return Err(format!("no sandbox for {name} after 20 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let t = Instant::now();
    let r = server.invoke(name, b"echo:hi");
    let took = t.elapsed();
    if r.status != 200 || r.text() != "hi" {
        return Err(format!("{name}: {} {}", r.status, r.text()));
    }
    server.request("DELETE", &format!("/2023-03-30/functions/{name}"), &[], b"");
    // Let the teardown (and any sandbox refill) finish before the next measurement: on two
    // cores it would otherwise compete with it.
    std::thread::sleep(Duration::from_millis(600));
    Ok(took)
}

/// Sandboxes waiting at their start gate (bundles with a gate and no pid file yet).
fn ready_sandboxes(server: &support::Server) -> usize {
    std::fs::read_dir(server.run_dir.join("oci"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("start").exists() && !e.path().join("pid").exists())
        .count()
}

/// (a): the same setup by hand, timed from the namespace to the first 200.
async fn raw_crun(
    i: usize,
    template: &Value,
    lower: &Path,
    scratch: &Path,
    state: &Path,
) -> Result<Duration, String> {
    let name = format!("fcx-cold-raw-{}-{i}", std::process::id());
    let bundle = scratch.join(&name);
    let t = Instant::now();
    let netns = NetNs::create(&name).map_err(|e| format!("netns: {e}"))?;
    let rootfs = bundle.join("rootfs");
    for d in [bundle.join("upper"), bundle.join("work"), rootfs.clone()] {
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        bundle.join("upper").display(),
        bundle.join("work").display()
    );
    nix::mount::mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        nix::mount::MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(|e| format!("overlay: {e}"))?;
    let mut config = template.clone();
    config["linux"]["namespaces"][4]["path"] = json!(netns.path());
    config["linux"]["cgroupsPath"] = json!(format!("/fcx-cold-raw/{name}"));
    for (file, text) in [("resolv.conf", ""), ("hosts", "127.0.0.1 localhost\n")] {
        std::fs::write(bundle.join(file), text).map_err(|e| e.to_string())?;
    }
    if let Some(mounts) = config["mounts"].as_array_mut() {
        for m in mounts {
            for file in ["resolv.conf", "hosts"] {
                if m["destination"] == format!("/etc/{file}") {
                    m["source"] = json!(bundle.join(file));
                }
            }
        }
    }
    std::fs::write(bundle.join("config.json"), config.to_string()).map_err(|e| e.to_string())?;
    let status = Command::new("crun")
        .arg("--root")
        .arg(state)
        .args(["run", "-d", "--bundle"])
        .arg(&bundle)
        .arg(&name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("crun: {e}"))?;
    let answered = if status.success() {
        poll_invoke(&netns).await
    } else {
        Err(format!("crun run -d: {status}"))
    };
    let took = t.elapsed();
    let _ = Command::new("crun")
        .arg("--root")
        .arg(state)
        .args(["delete", "--force", &name])
        .status();
    let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir_all(&bundle);
    for c in [
        "memory", "cpu", "pids", "cpuacct", "blkio", "devices", "freezer", "cpuset", "hugetlb",
        "systemd", "unified",
    ] {
        let _ = std::fs::remove_dir(
            PathBuf::from("/sys/fs/cgroup")
                .join(c)
                .join("fcx-cold-raw")
                .join(&name),
        );
    }
    answered.map(|()| took)
}

/// `POST /invoke` until the server answers 200 (bounded).
async fn poll_invoke(netns: &NetNs) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = netns.dial(9000).await {
            let req = b"POST /invoke HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\necho:hi";
            if s.write_all(req).await.is_ok() {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf).await {
                    if buf[..n].starts_with(b"HTTP/1.1 200") {
                        return Ok(());
                    }
                }
            }
        }
        if Instant::now() > deadline {
            return Err("the raw container never answered".into());
        }
        tokio::time::sleep(Duration::from_micros(250)).await;
    }
}

fn percentile(v: &[Duration], p: f64) -> f64 {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let idx = ((ms.len() as f64 - 1.0) * p).round() as usize;
    ms[idx.min(ms.len() - 1)]
}

fn report(
    rounds: usize,
    raw: &[Duration],
    cold: &[Duration],
    sandboxed: &[Duration],
    egress: &[&[Duration]; 2],
    warm: &[Duration],
) {
    println!("# fcx cold-start benchmark");
    println!();
    println!(
        "machine: {} CPUs, kernel {}; {}; {rounds} cold starts per row, interleaved",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        String::from_utf8_lossy(
            &Command::new("crun")
                .arg("--version")
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default()
        )
        .lines()
        .next()
        .unwrap_or("crun")
    );
    println!();
    println!("| path | p50 ms | p99 ms | p50 / (a) |");
    println!("|---|---:|---:|---:|");
    let base = percentile(raw, 0.5);
    let row = |label: &str, v: &[Duration]| {
        let p50 = percentile(v, 0.5);
        println!(
            "| {label} | {p50:.1} | {:.1} | {:.2} |",
            percentile(v, 0.99),
            p50 / base
        );
    };
    row("(a) raw crun run -d, same bundle, netns + overlay", raw);
    row("(b) fcx first invocation, no sandbox", cold);
    row("(b') fcx first invocation, pre-created sandbox", sandboxed);
    row("(b) with internetAccess (veth, the default)", egress[0]);
    row("(b) with internetAccess (--egress pasta)", egress[1]);
    row("(c) fcx warm invocation", warm);
    println!();
    println!(
        "ratio (b)/(a) = {:.2} (target <= 1.0); (b')/(a) = {:.2} (target <= 0.6)",
        percentile(cold, 0.5) / base,
        percentile(sandboxed, 0.5) / base
    );
    let plain = percentile(cold, 0.5);
    println!(
        "egress cost at p50 (internetAccess minus (b), same run): veth {:+.1} ms, pasta {:+.1} ms \
         (target: veth <= 0)",
        percentile(egress[0], 0.5) - plain,
        percentile(egress[1], 0.5) - plain
    );
}
