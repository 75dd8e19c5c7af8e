//! Snapshot starts (the `fcxSnapshot` extension) through the real server, with real CRIU,
//! real namespaces and real processes: later instances are restored from a snapshot taken
//! after the first `/initialize` (the function's own record of its lifecycle shows no second
//! one), restored instances get fresh identities and serve side by side, an update
//! invalidates the snapshot, a restored instance with `internetAccess` reaches outside
//! through its veth egress, a corrupted snapshot and a missing CRIU fall back to cold
//! starts that still answer, and a server killed mid-dump leaves nothing behind.
//!
//! A `harness = false` target (see `fcx_testkit::skip`): on a host without root or CRIU 4.2
//! the tests are reported `ignored (needs ...)`, not passed.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fcx_testkit::skip::{self, Needs};
use serde_json::{json, Value};
use support::Server;

fn main() -> std::process::ExitCode {
    let criu = fcx_runtime::snapshot::Criu::probe(None);
    let needs = Needs::new().root().check(
        &format!(
            "CRIU 4.2+ passing `criu check` ({})",
            criu.as_ref().err().map_or("found", String::as_str)
        ),
        criu.is_ok(),
    );
    let root = Needs::new().root();
    let oci = needs
        .clone()
        .executable("/usr/bin/crun", "package crun")
        .command("docker-registry", "package docker-registry");
    skip::run(vec![
        skip::test(
            "a_container_is_restored_from_its_snapshot_without_initialize",
            &oci,
            a_container_is_restored_from_its_snapshot_without_initialize,
        ),
        skip::test(
            "later_instances_are_restored_without_initialize_and_with_fresh_ids",
            &needs,
            later_instances_are_restored_without_initialize_and_with_fresh_ids,
        ),
        skip::test(
            "a_big_snapshot_is_restored_with_lazy_pages",
            &needs.clone().check(
                "userfaultfd for lazy pages (criu check --feature uffd-noncoop)",
                criu.as_ref().is_ok_and(|c| c.lazy_pages),
            ),
            a_big_snapshot_is_restored_with_lazy_pages,
        ),
        skip::test(
            "a_restored_instance_with_internet_access_reaches_outside_through_veth",
            &needs.clone().check(
                "nft (package nftables) for veth egress",
                fcx_runtime::egress::network::nft_binary().is_ok(),
            ),
            a_restored_instance_with_internet_access_reaches_outside_through_veth,
        ),
        skip::test(
            "an_update_invalidates_the_snapshot",
            &needs,
            an_update_invalidates_the_snapshot,
        ),
        skip::test(
            "a_corrupted_snapshot_falls_back_to_a_cold_start",
            &needs,
            a_corrupted_snapshot_falls_back_to_a_cold_start,
        ),
        skip::test(
            "kill_9_during_a_dump_leaves_nothing_behind",
            &needs,
            kill_9_during_a_dump_leaves_nothing_behind,
        ),
        skip::test(
            "without_criu_instances_start_cold_and_doctor_says_why",
            &root,
            without_criu_instances_start_cold_and_doctor_says_why,
        ),
    ])
}

/// The test function with an initializer, snapshot starts on, and its lifecycle recorded
/// (`initialize <FC_INSTANCE_ID>`, `restore <id from the identity file>`) in `record`.
fn function(name: &str, record: &Path, extra_env: Value) -> Value {
    let mut env = json!({ "TESTFN_RECORD": record });
    if let (Some(env), Some(extra)) = (env.as_object_mut(), extra_env.as_object()) {
        env.extend(extra.clone());
    }
    let mut body = support::testfn_function(name, env);
    body["internetAccess"] = json!(false);
    body["instanceLifecycleConfig"] = json!({
        "initializer": { "handler": "init", "timeout": 10 }
    });
    body["fcxSnapshot"] = json!({ "enabled": true, "restoreHook": true });
    body
}

fn lines(record: &Path, event: &str) -> Vec<String> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(event))
        .map(str::to_owned)
        .collect()
}

/// Published snapshots of `server` (directories under `<data>/snapshots` but `tmp`).
fn snapshots(server: &Server) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(server.data_dir.path().join("snapshots"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != "tmp"))
        .collect();
    found.sort();
    found
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn invoke_ok(server: &Server, name: &str, payload: &str) -> support::http::Response {
    let r = server.invoke(name, payload.as_bytes());
    assert_eq!(r.status, 200, "{name} {payload}: {}", r.text());
    r
}

/// `n` invocations at once, each held on a barrier until all have arrived (so each needs an
/// instance of its own); returns the instance ids that answered.
fn concurrent(server: &Server, name: &str, dir: &Path, n: usize) -> Vec<String> {
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..n)
            .map(|_| {
                let payload = format!("barrier:{}:{n}", dir.display());
                s.spawn(move || invoke_ok(server, name, &payload))
            })
            .collect();
        let mut ids: Vec<String> = calls
            .into_iter()
            .map(|c| {
                let r = c.join().expect("invocation thread");
                r.header("x-fc-instance-id").unwrap_or_default().to_owned()
            })
            .collect();
        ids.sort();
        ids
    })
}

fn later_instances_are_restored_without_initialize_and_with_fresh_ids() {
    let server = Server::start();
    let scratch = support::scratch_dir("snap");
    let record = scratch.path().join("record");
    server.create_function(function("snap", &record, json!({})));

    // The first instance initializes, is dumped, then serves.
    let first = invoke_ok(&server, "snap", "echo:one");
    assert_eq!(first.text(), "one");
    assert_eq!(lines(&record, "initialize").len(), 1);
    assert_eq!(
        snapshots(&server).len(),
        1,
        "one snapshot after the first /initialize"
    );

    // Three at once: the first instance and two restored ones serve side by side.
    let barrier = support::scratch_dir("snap-barrier");
    let ids = concurrent(&server, "snap", barrier.path(), 3);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(
        unique.len(),
        3,
        "three different instances answered: {ids:?}"
    );
    assert_eq!(
        lines(&record, "initialize").len(),
        1,
        "restored instances are not initialized again:\n{}",
        std::fs::read_to_string(&record).unwrap_or_default()
    );
    // Each restored instance ran its /restore hook and read a fresh id from its identity file.
    let restores = lines(&record, "restore");
    assert_eq!(restores.len(), 2, "{restores:?}");
    let restored_ids: Vec<&str> = restores
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    for id in &restored_ids {
        assert!(ids.iter().any(|i| i == id), "{id} not among {ids:?}");
    }
    assert_ne!(restored_ids[0], restored_ids[1]);
    // The frozen environment still names the dumped instance; the header and the identity
    // file name the one that answers.
    for id in &restored_ids {
        let found = (0..20).find_map(|_| {
            let r = invoke_ok(&server, "snap", "read:/proc/self/fd/3");
            (r.header("x-fc-instance-id") == Some(id)).then(|| r.text())
        });
        if let Some(text) = found {
            assert_eq!(text.trim(), *id);
        }
    }
    let headers = invoke_ok(&server, "snap", "headers");
    let answered = headers.header("x-fc-instance-id").unwrap().to_owned();
    assert!(
        headers
            .text()
            .contains(&format!("x-fc-instance-id: {answered}")),
        "{}",
        headers.text()
    );
}

/// Lines of the instance logs of `function` that contain `needle`.
fn log_lines(server: &Server, function: &str, needle: &str) -> Vec<String> {
    let dir = server.data_dir.path().join("logs").join(function);
    let mut found = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        found.extend(
            text.lines()
                .filter(|l| l.contains(needle))
                .map(str::to_owned),
        );
    }
    found
}

fn a_container_is_restored_from_its_snapshot_without_initialize() {
    use fcx_image::build::{ImageBuilder, Layer};
    let registry = fcx_testkit::registry::TestRegistry::start();
    let testfn = support::testfn_bin();
    let image = ImageBuilder::new()
        .env("PATH=/usr/bin:/bin")
        .layer(fcx_testkit::images::base_layer())
        .layer(fcx_testkit::images::closure(&[&testfn]).expect("library closure"))
        .layer(
            Layer::new()
                .host_file("/fcx-testfn", &testfn)
                .expect("layer"),
        )
        .cmd(&["/fcx-testfn"]);
    let image = support::images::push(&registry, "snap/testfn:v1", &image);
    let server = Server::start();
    server.create_function(json!({
        "functionName": "snap-oci",
        "runtime": "custom-container",
        "handler": "h",
        "timeout": 30,
        "memorySize": 256,
        "internetAccess": false,
        "customContainerConfig": { "image": image, "port": 9000 },
        "instanceLifecycleConfig": { "initializer": { "handler": "i", "timeout": 30 } },
        "fcxSnapshot": { "enabled": true, "restoreHook": true },
    }));
    invoke_ok(&server, "snap-oci", "echo:one");
    assert_eq!(
        snapshots(&server).len(),
        1,
        "a snapshot after the first /initialize"
    );

    // Three at once, each held for 3 s (containers share no directory for a barrier, and a
    // restore takes far less): the first container and two restored ones answer.
    let ids = std::thread::scope(|s| {
        let calls: Vec<_> = (0..3)
            .map(|_| s.spawn(|| invoke_ok(&server, "snap-oci", "sleep:3000")))
            .collect();
        let mut ids: Vec<String> = calls
            .into_iter()
            .map(|c| {
                let r = c.join().expect("invocation thread");
                r.header("x-fc-instance-id").unwrap_or_default().to_owned()
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    });
    assert_eq!(ids.len(), 3, "three instances answered: {ids:?}");
    let inits = log_lines(&server, "snap-oci", "testfn: initialize");
    assert_eq!(
        inits.len(),
        1,
        "only the first container initialized: {inits:?}"
    );
    let restores = log_lines(&server, "snap-oci", "testfn: restore ");
    assert_eq!(restores.len(), 2, "{restores:?}");
    // Each restored container read its own, fresh id from the identity file.
    for id in &ids {
        let mine: Vec<&String> = restores
            .iter()
            .filter(|l| l.ends_with(id.as_str()))
            .collect();
        assert!(mine.len() <= 1, "{id}: {mine:?}");
    }
    let fresh: Vec<&String> = restores
        .iter()
        .filter(|l| ids.iter().any(|id| l.ends_with(id.as_str())))
        .collect();
    assert_eq!(
        fresh.len(),
        2,
        "restores name the answering ids {ids:?}: {restores:?}"
    );
}

fn a_big_snapshot_is_restored_with_lazy_pages() {
    let server = Server::start_with(support::Options::with_args(&[
        "--snapshot-lazy-pages-mb",
        "16",
    ]));
    let scratch = support::scratch_dir("snap-lazy");
    let record = scratch.path().join("record");
    server.create_function(function(
        "lazy",
        &record,
        json!({ "TESTFN_INIT_ALLOC_MB": "64" }),
    ));
    let first = invoke_ok(&server, "lazy", "state");
    assert_eq!(first.text(), "pages=16384 intact=true");
    // Two at once: the first instance and a restored one each check every page of their
    // state (the restored one's arrive on demand).
    let barrier = support::scratch_dir("snap-lazy-barrier");
    let payload = format!("barrier:{}:2", barrier.path().display());
    let states: Vec<String> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| s.spawn(|| invoke_ok(&server, "lazy", &payload).text()))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert_eq!(
        lines(&record, "restore").len(),
        1,
        "one instance was restored"
    );
    assert!(
        states
            .iter()
            .all(|s| s.ends_with("pages=16384 intact=true")),
        "{states:?}"
    );
    let restored = std::fs::read_dir(server.run_dir.join("restore"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("lazy-pages.log").exists());
    assert!(restored, "the restore ran a lazy-pages daemon");
    assert_eq!(lines(&record, "initialize").len(), 1);
}

/// A snapshot-enabled function with `internetAccess` under veth egress: the restored
/// instance gets a namespace with its veth (a pre-made one from the egress pool) and reaches
/// a target outside through NAT, as the dumped one did.
fn a_restored_instance_with_internet_access_reaches_outside_through_veth() {
    use fcx_testkit::egress::{EgressTarget, GREETING};
    let target = EgressTarget::start();
    let server = Server::start_with(support::Options::with_args(&["--egress", "veth"]));
    let scratch = support::scratch_dir("snap-veth");
    let record = scratch.path().join("record");
    let mut body = function("online", &record, json!({}));
    body["internetAccess"] = json!(true);
    // Reclaimed after a second idle, so the next invocation restores.
    body["idleTimeout"] = json!(1);
    server.create_function(body);
    let probe = format!("tcp:{}", target.addr());

    let first = invoke_ok(&server, "online", &probe);
    assert_eq!(first.text(), format!("got: {GREETING}"));
    assert_eq!(snapshots(&server).len(), 1, "dumped after /initialize");
    let first_id = first.header("x-fc-instance-id").unwrap().to_owned();
    wait_for(
        "the idle instance to be reclaimed",
        Duration::from_secs(30),
        || server.instance_ids("online").is_empty(),
    );

    let again = invoke_ok(&server, "online", &probe);
    assert_eq!(again.text(), format!("got: {GREETING}"));
    let id = again.header("x-fc-instance-id").unwrap().to_owned();
    assert_ne!(id, first_id, "a new instance answered");
    assert_eq!(
        lines(&record, "initialize").len(),
        1,
        "the new instance was restored, not initialized"
    );
    let restores = lines(&record, "restore");
    assert_eq!(restores.len(), 1, "{restores:?}");
    assert_eq!(restores[0].split_whitespace().nth(1), Some(id.as_str()));
    // Through NAT, like any veth instance.
    assert_eq!(
        target.peers().last().copied(),
        Some(target.host_ip().into())
    );
    assert_eq!(target.accepted(), 2);
}

fn an_update_invalidates_the_snapshot() {
    let server = Server::start();
    let scratch = support::scratch_dir("snap-upd");
    let record = scratch.path().join("record");
    server.create_function(function("upd", &record, json!({})));
    invoke_ok(&server, "upd", "echo:x");
    let before = snapshots(&server);
    assert_eq!(before.len(), 1);

    let r = server.put_json(
        "/2023-03-30/functions/upd",
        &json!({ "environmentVariables": { "TESTFN_RECORD": record, "V": "2" } }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        !before[0].exists(),
        "the old snapshot is removed by the update"
    );
    // The new version starts cold (a second /initialize) and takes its own snapshot.
    let env = invoke_ok(&server, "upd", "env");
    assert!(env.text().contains("V=2"), "{}", env.text());
    assert_eq!(lines(&record, "initialize").len(), 2);
    let after = snapshots(&server);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
}

fn a_corrupted_snapshot_falls_back_to_a_cold_start() {
    let server = Server::start();
    let scratch = support::scratch_dir("snap-bad");
    let record = scratch.path().join("record");
    server.create_function(function("bad", &record, json!({})));
    invoke_ok(&server, "bad", "echo:x");
    let snap = snapshots(&server).pop().expect("a snapshot");
    // Truncate every image: CRIU cannot read them any more.
    for e in std::fs::read_dir(snap.join("images")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "img") {
            std::fs::write(e.path(), b"garbage").unwrap();
        }
    }
    // Two at once: the second instance's restore fails, it starts cold, and both answer.
    let barrier = support::scratch_dir("snap-bad-barrier");
    let ids = concurrent(&server, "bad", barrier.path(), 2);
    assert_ne!(ids[0], ids[1]);
    assert_eq!(
        lines(&record, "initialize").len(),
        2,
        "the fallback was a cold start with /initialize"
    );
    assert!(lines(&record, "restore").is_empty());
    // The broken snapshot was replaced by a fresh one from the cold start.
    let now = snapshots(&server);
    assert_eq!(now.len(), 1);
    let restored = std::fs::read(now[0].join("images").join("inventory.img")).unwrap();
    assert_ne!(restored, b"garbage");
    // The fallback is counted in the metrics by its reason, never shown to the caller.
    let metrics = server.request("GET", "/metrics", &[], b"").text();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{metrics}"))
    };
    assert!(
        value(r#"fcx_snapshot_fallbacks_total{reason="restore_failed"}"#) >= 1.0,
        "{metrics}"
    );
    assert!(value("fcx_snapshot_dumps_total") >= 2.0, "{metrics}");
}

fn kill_9_during_a_dump_leaves_nothing_behind() {
    let mut server = Server::start();
    let scratch = support::scratch_dir("snap-kill");
    let record = scratch.path().join("record");
    // 256 MB of state: the dump takes long enough to be caught in the middle.
    server.create_function(function(
        "big",
        &record,
        json!({ "TESTFN_INIT_ALLOC_MB": "256" }),
    ));
    let tmp = server.data_dir.path().join("snapshots").join("tmp");
    let addr = server.addr;
    // A raw request: its connection breaks when the server is killed, and that is fine.
    let caller = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return;
        };
        let _ = s.write_all(
            b"POST /2023-03-30/functions/big/invocations HTTP/1.1\r\nHost: x\r\n\
              Content-Length: 6\r\nConnection: close\r\n\r\necho:x",
        );
        let _ = s.read_to_end(&mut Vec::new());
    });
    // A dump is under way once its directory has images in it.
    wait_for("a dump in progress", Duration::from_secs(60), || {
        std::fs::read_dir(&tmp)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read_dir(e.path().join("images"))
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(false)
            })
    });
    server.crash_and_restart();
    let _ = caller.join();
    assert_eq!(
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0),
        0,
        "the interrupted dump's files are gone after the restart"
    );
    assert!(snapshots(&server).is_empty(), "no half snapshot was kept");
    wait_for("no leftover processes", Duration::from_secs(10), || {
        server.instance_pids().is_empty()
    });
    let criu_left = criu_processes_for(server.data_dir.path());
    assert!(criu_left.is_empty(), "criu processes left: {criu_left:?}");
    // The restarted server snapshots it again and serves.
    invoke_ok(&server, "big", "echo:again");
    assert_eq!(snapshots(&server).len(), 1);
}

/// `criu` processes whose command line names a path under `data_dir`.
fn criu_processes_for(data_dir: &Path) -> Vec<u32> {
    let needle = data_dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains("criu") && cmd.contains(&needle)
        })
        .collect()
}

fn without_criu_instances_start_cold_and_doctor_says_why() {
    let server = Server::start_with(support::Options::with_args(&[
        "--criu",
        "/nonexistent/criu",
    ]));
    let scratch = support::scratch_dir("snap-none");
    let record = scratch.path().join("record");
    server.create_function(function("cold", &record, json!({})));
    invoke_ok(&server, "cold", "echo:x");
    let barrier = support::scratch_dir("snap-none-barrier");
    concurrent(&server, "cold", barrier.path(), 2);
    assert_eq!(
        lines(&record, "initialize").len(),
        2,
        "every start was cold"
    );
    assert!(snapshots(&server).is_empty());

    let out = std::process::Command::new(support::fcx_bin())
        .args(["doctor", "--criu", "/nonexistent/criu", "--data-dir"])
        .arg(server.data_dir.path())
        .output()
        .expect("fcx doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("snapshots"))
        .unwrap_or_else(|| panic!("no snapshots line in:\n{text}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("criu not found at /nonexistent/criu"),
        "{line}"
    );
    assert!(text.contains("scripts/criu.sh install"), "{text}");
}
