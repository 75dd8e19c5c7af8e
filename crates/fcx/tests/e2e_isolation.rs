//! Isolation checks from inside: a hostile function (fcx-testfn's `probe:` commands) tries
//! what a tenant must not be able to do, from a process instance and from an OCI instance,
//! next to a victim instance of another function. Every attempt is printed with its result
//! (`isolation[process] mount: denied: ...`) and must be denied:
//!
//! `mount`, `ptrace` of the other instance, a raw socket, opening `/proc/sysrq-trigger` for
//! writing, reading `/proc/kcore`, opening `/proc/sys/vm/drop_caches` for writing, writing to
//! the host's `/tmp`, reading the data dir (placed where instances could see it), another
//! function's code and the other instance's environment, connecting to fcx's API. A `/proc`
//! path this kernel lacks is marked `[absent on this host's kernel]` in the output.
//!
//! The same runs against a snapshot-enabled process instance, cold and restored by CRIU.
//!
//! A `harness = false` target (see `fcx_testkit::skip`): the OCI test needs crun and the
//! registry, the snapshot test CRIU 4.2; a host without them reports it `ignored (needs ...)`.

mod support;

use std::path::{Path, PathBuf};

use fcx_image::build::{ImageBuilder, Layer};
use fcx_testkit::registry::TestRegistry;
use fcx_testkit::skip::{self, Needs};
use serde_json::{json, Value};
use support::Server;

fn main() -> std::process::ExitCode {
    let root = Needs::new().root();
    let criu = fcx_runtime::snapshot::Criu::probe(None);
    let snapshots = Needs::new().root().check(
        &format!(
            "CRIU 4.2+ passing `criu check` ({})",
            criu.as_ref().err().map_or("found", String::as_str)
        ),
        criu.is_ok(),
    );
    let oci = Needs::new()
        .root()
        .command("crun", "package crun")
        .executable("/usr/bin/docker-registry", "package docker-registry");
    skip::run(vec![
        skip::test(
            "a_process_instance_is_denied_every_attempt",
            &root,
            a_process_instance_is_denied_every_attempt,
        ),
        skip::test(
            "a_snapshot_enabled_process_instance_is_denied_every_attempt_cold_and_restored",
            &snapshots,
            a_snapshot_enabled_process_instance_is_denied_every_attempt_cold_and_restored,
        ),
        skip::test(
            "an_oci_instance_is_denied_every_attempt",
            &oci,
            an_oci_instance_is_denied_every_attempt,
        ),
    ])
}

/// What the hostile function reaches for, found from the host side.
struct Targets {
    /// Host pid of another function's instance.
    victim_pid: u32,
    /// Another function's unpacked code (host path).
    victim_code: PathBuf,
    data_db: PathBuf,
    api: String,
}

/// Runs every probe through `invoke` and returns how many were denied, printing each.
fn attempt_all(backend: &str, invoke: &dyn Fn(&str) -> String, t: &Targets) -> usize {
    let marker = format!("/tmp/fcx-isolation-{}", uuid::Uuid::new_v4().simple());
    let attempts: Vec<(&str, String)> = vec![
        ("mount", "probe:mount".into()),
        (
            "ptrace another instance",
            format!("probe:ptrace:{}", t.victim_pid),
        ),
        ("raw socket", "probe:raw-socket".into()),
        (
            "write /proc/sysrq-trigger",
            "probe:open-write:/proc/sysrq-trigger".into(),
        ),
        ("read /proc/kcore", "probe:read:/proc/kcore".into()),
        // Exists on every kernel (sysrq-trigger and kcore may be configured out).
        (
            "write /proc/sys/vm/drop_caches",
            "probe:open-write:/proc/sys/vm/drop_caches".into(),
        ),
        ("write the host's /tmp", format!("probe:create:{marker}")),
        (
            "read the data dir",
            format!("probe:read:{}", t.data_db.display()),
        ),
        (
            "read another function's code",
            format!("probe:read:{}/bootstrap", t.victim_code.display()),
        ),
        (
            "read another instance's environ",
            format!("probe:read:/proc/{}/environ", t.victim_pid),
        ),
        ("connect to fcx's API", format!("connect:{}", t.api)),
    ];
    let total = attempts.len();
    let mut denied = 0;
    for (what, command) in attempts {
        let answer = invoke(&command);
        let ok = if what == "write the host's /tmp" {
            // Inside, /tmp is the instance's own: the file must not appear on the host.
            let on_host = Path::new(&marker).exists();
            let _ = std::fs::remove_file(&marker);
            !on_host
        } else if command.starts_with("connect:") {
            answer.starts_with("error: ")
        } else {
            // Only the probe's own denial: `error: unknown probe` would be a test bug.
            answer.starts_with("denied: ")
        };
        // A path this kernel lacks is denied trivially: say so, so the output is not read
        // as more than it shows.
        let absent_on_host = command
            .strip_prefix("probe:open-write:")
            .or_else(|| command.strip_prefix("probe:read:"))
            .filter(|p| {
                p.starts_with("/proc/") && !p.starts_with(&format!("/proc/{}", t.victim_pid))
            })
            .is_some_and(|p| !Path::new(p).exists());
        println!(
            "isolation[{backend}] {what}: {} ({answer}){}",
            if ok { "DENIED" } else { "ALLOWED" },
            if absent_on_host {
                " [absent on this host's kernel]"
            } else {
                ""
            }
        );
        denied += usize::from(ok);
    }
    println!("isolation[{backend}]: {denied}/{total} attempts denied");
    assert_eq!(
        denied, total,
        "{backend}: some attempts were allowed (see above)"
    );
    denied
}

fn env_value(env: &str, key: &str) -> String {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {env}"))
        .to_owned()
}

/// A victim code-package function with its one instance up: (its pid, its code dir).
fn start_victim(server: &Server) -> (u32, PathBuf) {
    server.create_function(support::testfn_function(
        "victim",
        json!({"VICTIM_SECRET": "s3cr3t-of-the-victim"}),
    ));
    let env = server.invoke("victim", b"env").text();
    let pids = server.instance_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    (pids[0], PathBuf::from(env_value(&env, "FC_FUNC_CODE_PATH")))
}

fn a_process_instance_is_denied_every_attempt() {
    let server = Server::start_with(support::Options {
        data_dir_visible: true,
        ..Default::default()
    });
    let (victim_pid, victim_code) = start_victim(&server);
    server.create_function(support::testfn_function("hostile", json!({})));
    let targets = Targets {
        victim_pid,
        victim_code,
        data_db: server.data_dir.path().join("fcx.db"),
        api: server.addr.to_string(),
    };
    let invoke = |cmd: &str| server.invoke("hostile", cmd.as_bytes()).text();
    attempt_all("process", &invoke, &targets);
}

/// A snapshot-enabled function (CRIU's shape of a process instance, with the same private
/// mount and IPC namespaces) is as confined as any: the instance that was dumped, and one
/// restored from its snapshot (its mount namespace rebuilt by CRIU) after it was reclaimed.
fn a_snapshot_enabled_process_instance_is_denied_every_attempt_cold_and_restored() {
    let server = Server::start_with(support::Options {
        data_dir_visible: true,
        ..Default::default()
    });
    let (victim_pid, victim_code) = start_victim(&server);
    let scratch = support::scratch_dir("isolation-snap");
    let record = scratch.path().join("record");
    let mut body = support::testfn_function("hostile-snap", json!({ "TESTFN_RECORD": record }));
    body["instanceLifecycleConfig"] = json!({
        "initializer": { "handler": "init", "timeout": 10 }
    });
    body["fcxSnapshot"] = json!({ "enabled": true, "restoreHook": true });
    // Reclaimed after a second idle, so the next invocation restores.
    body["idleTimeout"] = json!(1);
    server.create_function(body);
    let targets = Targets {
        victim_pid,
        victim_code,
        data_db: server.data_dir.path().join("fcx.db"),
        api: server.addr.to_string(),
    };
    let invoke = |cmd: &str| server.invoke("hostile-snap", cmd.as_bytes()).text();
    let events = |event: &str| {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(event))
            .count()
    };
    attempt_all("process, snapshot-enabled", &invoke, &targets);
    assert_eq!(events("initialize"), 1, "the first instance started cold");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.instance_ids("hostile-snap").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle instance was not reclaimed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    attempt_all("process, restored", &invoke, &targets);
    assert_eq!(
        events("initialize"),
        1,
        "the second instance was not initialized"
    );
    assert_eq!(events("restore"), 1, "the second instance was restored");
}

/// fcx-testfn and its library closure as a web-server image (as the cold-start bench does).
fn testfn_image() -> ImageBuilder {
    let testfn = support::testfn_bin();
    ImageBuilder::new()
        .env("PATH=/usr/bin:/bin")
        .layer(fcx_testkit::images::base_layer())
        .layer(fcx_testkit::images::closure(&[&testfn]).expect("testfn closure"))
        .layer(
            Layer::new()
                .host_file("/fcx-testfn", &testfn)
                .expect("testfn binary"),
        )
        .cmd(&["/fcx-testfn"])
}

fn container(name: &str, image: &str) -> Value {
    json!({
        "functionName": name,
        "runtime": "custom-container",
        "handler": "index.handler",
        "timeout": 30,
        "memorySize": 256,
        "customContainerConfig": { "image": image, "port": 9000 },
    })
}

fn an_oci_instance_is_denied_every_attempt() {
    let registry = TestRegistry::start();
    let image = support::images::push(&registry, "isolation/testfn:v1", &testfn_image());
    let server = Server::start_with(support::Options {
        data_dir_visible: true,
        ..support::Options::with_args(&["--sandboxes-per-function", "0"])
    });
    // The other function's code is a code package's; the instance to attack is a container.
    let (_, victim_code) = start_victim(&server);
    server.create_function(container("victim-ctr", &image));
    let r = server.invoke("victim-ctr", b"echo:up");
    assert_eq!(r.status, 200, "{}", r.text());
    let before = server.instance_pids();
    server.create_function(container("hostile-ctr", &image));
    let r = server.invoke("hostile-ctr", b"whoami");
    assert_eq!(r.status, 200, "{}", r.text());
    println!("the hostile container runs as {}", r.text());
    let hostile: Vec<u32> = server
        .instance_pids()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    let victim_pid = *before
        .iter()
        .max()
        .expect("the victim container's processes");
    assert!(!hostile.contains(&victim_pid));
    let targets = Targets {
        victim_pid,
        victim_code,
        data_db: server.data_dir.path().join("fcx.db"),
        api: server.addr.to_string(),
    };
    let invoke = |cmd: &str| server.invoke("hostile-ctr", cmd.as_bytes()).text();
    attempt_all("oci", &invoke, &targets);
}
