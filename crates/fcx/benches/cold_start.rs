//! Cold-start benchmark, all in one run, on three apps pushed to a real `docker-registry`
//! on loopback and cached:
//!
//! - `trivial`: the std-only `fcx-testfn` HTTP server;
//! - `heavy`: a Python app whose `/initialize` imports sympy and flask (Debian's
//!   `python3-sympy` and `python3-flask`, copied into the image with the host's CPython);
//! - `state200`: `fcx-testfn` building 200 MiB of state in `/initialize`.
//!
//! For each app, rounds interleaved:
//!
//! - raw crun: a fresh network namespace (made the way fcx makes them), an overlay rootfs on
//!   the cached image, the bundle fcx generated for this function (its `config.json`, copied
//!   from a live fcx instance), `crun run -d`, `POST /initialize` polled every 0.25 ms until
//!   it answers 200, then `POST /invoke`: "raw crun + initialize", the baseline of the ratios;
//! - fcx cold: the first invocation of a function with no instance (image cached, no
//!   pre-created sandbox), measured by the client, `/initialize` included;
//! - fcx sandbox: the same from a pre-created sandbox;
//! - snapshot restore: a function with `fcxSnapshot` whose instance was reclaimed (idle
//!   timeout), so the invocation restores its snapshot (no `/initialize`);
//! - snapshot + lazy pages: the same on a server that restores every snapshot lazily.
//!
//! Then memory and disk per snapshot, and the trivial app's warm invocation. Functions run
//! with `internetAccess: false` so raw crun and fcx set up the same thing; two extra rows
//! show the trivial app's cold start with egress: veth (the default) and pasta.
//! `FCX_COLD_ROUNDS` (default 30) sets the rounds; `FCX_COLD_APPS` (default
//! `trivial,heavy,state200`) the apps. Timings are
//! printed, never asserted. Run it with `bash scripts/bench-cold.sh`.

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

/// The heavy app: stdlib HTTP server, `/initialize` imports sympy and flask and computes.
const HEAVY_APP: &str = r#"
import http.server
state = {}
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/initialize":
            import sympy, flask, sympy.physics.mechanics
            x = sympy.Symbol("x")
            state["integral"] = str(sympy.integrate(sympy.sin(x) ** 2, x))
            state["app"] = flask.Flask("bench")
            out = b"initialized"
        elif body.startswith(b"echo:"):
            out = body[5:]
        else:
            out = state.get("integral", "none").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 9000), Handler).serve_forever()
"#;

/// One app of the benchmark.
struct App {
    name: &'static str,
    image: String,
    env: Value,
}

/// Rows of one app, each a list of cold-start times.
#[derive(Default)]
struct Rows {
    raw: Vec<Duration>,
    cold: Vec<Duration>,
    sandbox: Vec<Duration>,
    restore: Vec<Duration>,
    lazy: Vec<Duration>,
}

fn rounds() -> Result<usize, String> {
    std::env::var("FCX_COLD_ROUNDS")
        .ok()
        .map(|v| {
            v.parse()
                .map_err(|_| format!("FCX_COLD_ROUNDS={v} is not a count"))
        })
        .transpose()
        .map(|r| r.unwrap_or(30))
}

fn build_apps(registry: &TestRegistry, rt: &tokio::runtime::Runtime) -> Result<Vec<App>, String> {
    let wanted = std::env::var("FCX_COLD_APPS").unwrap_or_else(|_| "trivial,heavy,state200".into());
    let testfn = support::testfn_bin();
    let testfn_ref = format!("{}/bench/testfn:v1", registry.addr());
    let testfn_image = ImageBuilder::new()
        .env("PATH=/usr/bin:/bin")
        .layer(fcx_testkit::images::base_layer())
        .layer(fcx_testkit::images::closure(&[&testfn]).map_err(|e| e.to_string())?)
        .layer(
            Layer::new()
                .host_file("/fcx-testfn", &testfn)
                .map_err(|e| e.to_string())?,
        )
        .cmd(&["/fcx-testfn"]);
    rt.block_on(testfn_image.push(&testfn_ref, &RegistryOptions::default()))
        .map_err(|e| format!("push: {e}"))?;
    let mut apps = Vec::new();
    for name in wanted.split(',').map(str::trim) {
        match name {
            "trivial" => apps.push(App {
                name: "trivial",
                image: testfn_ref.clone(),
                env: json!({}),
            }),
            "state200" => apps.push(App {
                name: "state200",
                image: testfn_ref.clone(),
                env: json!({ "TESTFN_INIT_ALLOC_MB": "200" }),
            }),
            "heavy" => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                std::fs::write(dir.path().join("app.py"), HEAVY_APP).map_err(|e| e.to_string())?;
                let packages = [
                    "sympy",
                    "mpmath",
                    "flask",
                    "werkzeug",
                    "jinja2",
                    "markupsafe",
                    "itsdangerous",
                    "click",
                    "blinker",
                ];
                let image = fcx_testkit::images::python_packages_image(dir.path(), &packages)
                    .map_err(|e| {
                        format!("heavy image (apt-get install python3-sympy python3-flask): {e}")
                    })?;
                let reference = format!("{}/bench/heavy:v1", registry.addr());
                rt.block_on(image.push(&reference, &RegistryOptions::default()))
                    .map_err(|e| format!("push: {e}"))?;
                apps.push(App {
                    name: "heavy",
                    image: reference,
                    env: json!({}),
                });
            }
            other => return Err(format!("FCX_COLD_APPS: unknown app {other:?}")),
        }
    }
    Ok(apps)
}

fn run() -> Result<(), String> {
    let rounds = rounds()?;
    let registry = TestRegistry::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let apps = build_apps(&registry, &rt)?;

    let plain = support::Server::start_with(support::Options::with_args(&[
        "--sandboxes-per-function",
        "0",
    ]));
    let pre = support::Server::start_with(support::Options::with_args(&["--sandbox-limit", "64"]));
    let snap = support::Server::start_with(support::Options::with_args(&[
        "--sandboxes-per-function",
        "0",
        "--snapshot-lazy-pages-mb",
        "1000000",
    ]));
    let lazy = support::Server::start_with(support::Options::with_args(&[
        "--sandboxes-per-function",
        "0",
        "--snapshot-lazy-pages-mb",
        "0",
    ]));
    let scratch = tempfile::Builder::new()
        .prefix("fcx-cold-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let pasta = support::Server::start_with(support::Options::with_args(&[
        "--sandboxes-per-function",
        "0",
        "--egress",
        "pasta",
    ]));
    let state = scratch.path().join("crun-state");

    // Per app: pull into every cache, take fcx's bundle as the raw baseline's, and take the
    // snapshot the restore rows start from.
    let mut configs = Vec::new();
    for app in &apps {
        let template = format!("template-{}", app.name);
        for s in [&plain, &pre, &pasta] {
            s.create_function(function(&template, app, false, false));
            let r = s.invoke(&template, b"echo:hi");
            if r.status != 200 {
                return Err(format!("{template}: {} {}", r.status, r.text()));
            }
        }
        configs.push(live_config(&plain)?);
        plain.request(
            "DELETE",
            &format!("/2023-03-30/functions/{template}"),
            &[],
            b"",
        );
        std::thread::sleep(Duration::from_millis(800));
        for s in [&snap, &lazy] {
            let name = format!("snap-{}", app.name);
            s.create_function(function(&name, app, false, true));
            let r = s.invoke(&name, b"echo:hi");
            if r.status != 200 {
                return Err(format!("{name}: {} {}", r.status, r.text()));
            }
            if snapshot_dirs(s).is_empty() {
                return Err(format!(
                    "{name}: no snapshot was taken (is CRIU 4.2 installed? see fcx doctor)"
                ));
            }
        }
    }
    let lower = |app: &App| -> Result<PathBuf, String> {
        Ok(ImageStore::open(plain.data_dir.path().join("images"))
            .map_err(|e| e.to_string())?
            .lookup(&app.image)
            .ok_or("image not in the cache")?
            .rootfs)
    };

    let mut rows: Vec<Rows> = apps.iter().map(|_| Rows::default()).collect();
    let (mut egress, mut pasta_egress, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    plain.create_function(function("warm", &apps[0], false, false));
    eprintln!("{rounds} rounds of {} apps", apps.len());
    for i in 0..rounds {
        for (a, app) in apps.iter().enumerate() {
            let r = &mut rows[a];
            r.raw.push(rt.block_on(raw_crun(
                i,
                &configs[a],
                &lower(app)?,
                scratch.path(),
                &state,
            ))?);
            r.cold.push(cold_invoke(
                &plain,
                &format!("cold-{}-{i}", app.name),
                app,
                false,
                false,
            )?);
            r.sandbox.push(cold_invoke(
                &pre,
                &format!("pre-{}-{i}", app.name),
                app,
                false,
                true,
            )?);
            r.restore
                .push(restore_invoke(&snap, &format!("snap-{}", app.name))?);
            r.lazy
                .push(restore_invoke(&lazy, &format!("snap-{}", app.name))?);
        }
        egress.push(cold_invoke(
            &plain,
            &format!("egress-{i}"),
            &apps[0],
            true,
            false,
        )?);
        pasta_egress.push(cold_invoke(
            &pasta,
            &format!("pasta-{i}"),
            &apps[0],
            true,
            false,
        )?);
        let t = Instant::now();
        let r = plain.invoke("warm", b"echo:hi");
        warm.push(t.elapsed());
        if r.status != 200 {
            return Err(format!("warm invoke: {} {}", r.status, r.text()));
        }
        eprintln!("round {} done", i + 1);
    }
    report(rounds, &apps, &rows, [&egress, &pasta_egress], &warm, &snap);
    Ok(())
}

fn function(name: &str, app: &App, internet: bool, snapshot: bool) -> Value {
    let mut f = json!({
        "functionName": name,
        "runtime": "custom-container",
        "handler": "h",
        "timeout": 30,
        "memorySize": 1024,
        "internetAccess": internet,
        "environmentVariables": app.env,
        "customContainerConfig": { "image": app.image, "port": 9000 },
        "instanceLifecycleConfig": { "initializer": { "handler": "init", "timeout": 60 } },
    });
    if snapshot {
        f["fcxSnapshot"] = json!({ "enabled": true });
        // Reclaimed after a second idle, so each round's invocation is a cold start.
        f["idleTimeout"] = json!(1);
    }
    f
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

/// Published snapshots of `server`.
fn snapshot_dirs(server: &support::Server) -> Vec<PathBuf> {
    std::fs::read_dir(server.data_dir.path().join("snapshots"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != "tmp"))
        .collect()
}

/// fcx cold: create a function (not timed), time its first invocation, delete it (not timed).
fn cold_invoke(
    server: &support::Server,
    name: &str,
    app: &App,
    internet: bool,
    wait_sandbox: bool,
) -> Result<Duration, String> {
    server.create_function(function(name, app, internet, false));
    if wait_sandbox {
        let deadline = Instant::now() + Duration::from_secs(60);
        // The template functions keep one each too.
        while !has_ready_sandbox(server, name) {
            if Instant::now() > deadline {
                return Err(format!("no sandbox for {name} after 60 s"));
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

/// Whether a sandbox of function `name` waits at its start gate: a bundle with a gate and
/// the function's name in its environment whose gate hook is running, inside the container
/// (`cat /dev/.fcx-start` in the sandbox's cgroup) or on the host (`cat <bundle>/start`).
fn has_ready_sandbox(server: &support::Server, name: &str) -> bool {
    let needle = format!("FC_FUNCTION_NAME={name}\"");
    let hooks: Vec<(String, String)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cgroup = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
            Some((String::from_utf8_lossy(&cmdline).replace('\0', " "), cgroup))
        })
        .filter(|(c, _)| c.starts_with("cat ") && c.ends_with("start "))
        .collect();
    std::fs::read_dir(server.run_dir.join("oci"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("start").exists())
        .filter(|e| {
            let gate = e.path().join("start").display().to_string();
            let group = format!("/{}", e.file_name().to_string_lossy());
            hooks.iter().any(|(c, cgroup)| {
                c.contains(&gate) || (c.contains("/dev/.fcx-start") && cgroup.contains(&group))
            })
        })
        .any(|e| {
            std::fs::read_to_string(e.path().join("config.json")).is_ok_and(|c| c.contains(&needle))
        })
}

/// Snapshot restore: wait until the function's instance was reclaimed (not timed), then time
/// an invocation, which restores the snapshot.
fn restore_invoke(server: &support::Server, name: &str) -> Result<Duration, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.instance_ids(name).is_empty() {
        if Instant::now() > deadline {
            return Err(format!(
                "{name}: its instance was not reclaimed within 30 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The reclaimed instance's teardown runs in the background.
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let r = server.invoke(name, b"echo:hi");
    let took = t.elapsed();
    if r.status != 200 || r.text() != "hi" {
        return Err(format!("{name}: {} {}", r.status, r.text()));
    }
    Ok(took)
}

/// Raw crun + initialize: the same setup by hand, timed from the namespace to the first 200
/// of `/invoke` after `/initialize`.
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
        match poll(&netns, "/initialize", b"", Duration::from_secs(60)).await {
            Ok(()) => poll(&netns, "/invoke", b"echo:hi", Duration::from_secs(5)).await,
            Err(e) => Err(e),
        }
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

/// `POST <path>` until the server answers 200 (bounded by `within`).
async fn poll(netns: &NetNs, path: &str, body: &[u8], within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    loop {
        if let Ok(mut s) = netns.dial(9000).await {
            if s.write_all(req.as_bytes()).await.is_ok() && s.write_all(body).await.is_ok() {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf).await {
                    if buf[..n].starts_with(b"HTTP/1.1 200")
                        || buf[..n].starts_with(b"HTTP/1.0 200")
                    {
                        return Ok(());
                    }
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("the raw container never answered {path}"));
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
    apps: &[App],
    rows: &[Rows],
    egress: [&[Duration]; 2],
    warm: &[Duration],
    snap: &support::Server,
) {
    println!("# fcx cold-start benchmark");
    println!();
    println!(
        "machine: {} CPUs, kernel {}; {}; criu {}; {rounds} cold starts per row, interleaved",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        first_line("crun", "--version"),
        first_line("criu", "--version"),
    );
    println!();
    println!("| app | path | p50 ms | p99 ms | p50 / raw crun + initialize |");
    println!("|---|---|---:|---:|---:|");
    for (app, r) in apps.iter().zip(rows) {
        let base = percentile(&r.raw, 0.5);
        let row = |label: &str, v: &[Duration]| {
            let p50 = percentile(v, 0.5);
            println!(
                "| {} | {label} | {p50:.1} | {:.1} | {:.2} |",
                app.name,
                percentile(v, 0.99),
                p50 / base
            );
        };
        row("raw crun run -d + /initialize, same bundle", &r.raw);
        row("fcx cold (first invocation, /initialize included)", &r.cold);
        row("fcx pre-created sandbox", &r.sandbox);
        row("fcx snapshot restore", &r.restore);
        row("fcx snapshot restore, lazy pages", &r.lazy);
    }
    let trivial = &rows[0];
    let base = percentile(&trivial.raw, 0.5);
    for (label, v) in [
        ("veth, the default", egress[0]),
        ("--egress pasta", egress[1]),
    ] {
        println!(
            "| {} | fcx cold with internetAccess ({label}) | {:.1} | {:.1} | {:.2} |",
            apps[0].name,
            percentile(v, 0.5),
            percentile(v, 0.99),
            percentile(v, 0.5) / base
        );
    }
    println!(
        "| {} | fcx warm invocation | {:.1} | {:.1} | {:.2} |",
        apps[0].name,
        percentile(warm, 0.5),
        percentile(warm, 0.99),
        percentile(warm, 0.5) / base
    );
    println!();
    println!("Snapshots (server without lazy pages):");
    println!();
    println!("| snapshot | memory at dump (RSS) | pages in the image | disk |");
    println!("|---|---:|---:|---:|");
    for dir in snapshot_dirs(snap) {
        let meta: Value = std::fs::read_to_string(dir.join("meta.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            dir.file_name().unwrap_or_default().to_string_lossy(),
            mib(meta["memory_bytes"].as_u64().unwrap_or(0)),
            mib(meta["pages_bytes"].as_u64().unwrap_or(0)),
            mib(fcx_runtime::snapshot::store::dir_size(&dir)),
        );
    }
    println!();
    for (app, r) in apps.iter().zip(rows) {
        let cold = percentile(&r.cold, 0.5);
        println!(
            "{}: restore / fcx cold = {:.2} (heavy target <= 0.1); sandbox / raw = {:.2} (trivial target <= 0.6)",
            app.name,
            percentile(&r.restore, 0.5) / cold,
            percentile(&r.sandbox, 0.5) / percentile(&r.raw, 0.5),
        );
    }
}

fn first_line(cmd: &str, arg: &str) -> String {
    let out = Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or(cmd)
        .to_owned()
}
