//! Custom containers end to end: real OCI images (built from host files, no Docker) pushed
//! to a real `docker-registry` on loopback, pulled by fcx, run by crun.

mod support;

use serde_json::{json, Value};
use support::{images, Options, Server};

use fcx_testkit::images as fixtures;
use fcx_testkit::registry::TestRegistry;

fn container_function(name: &str, image: &str, extra: Value) -> Value {
    let mut body = json!({
        "functionName": name,
        "runtime": "custom-container",
        "handler": "index.handler",
        "timeout": 30,
        "memorySize": 256,
        "customContainerConfig": { "image": image, "port": 9000 },
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if k == "customContainerConfig" {
                let cc = b["customContainerConfig"].as_object_mut().unwrap();
                for (ck, cv) in v.as_object().unwrap() {
                    cc.insert(ck.clone(), cv.clone());
                }
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    body
}

fn code(r: &support::http::Response) -> String {
    r.json()["Code"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn seed_express_sample_as_an_image_from_the_registry() {
    let registry = TestRegistry::start();
    let app = fixtures::examples_dir().join("express-event");
    let image = images::push(
        &registry,
        "seed/express-event:v1",
        &fixtures::express_image(&app).expect("express image"),
    );
    let server = Server::start();
    server.create_function(container_function(
        "express-image",
        &image,
        json!({ "instanceLifecycleConfig": { "initializer": { "handler": "i", "timeout": 30 } } }),
    ));
    let r = server.invoke("express-image", br#"{"key":"value"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "Hello FunctionCompute, event function\n");
    // Warm: the same container answers again.
    let again = server.invoke("express-image", b"{}");
    assert_eq!(again.text(), "Hello FunctionCompute, event function\n");
    assert_eq!(
        again.header("x-fc-instance-id"),
        r.header("x-fc-instance-id")
    );
    let run_dir = server.run_dir.clone();
    drop(server);
    assert!(
        support::containers::mounts_under(&run_dir).is_empty(),
        "the server left mounts under {}",
        run_dir.display()
    );
}

#[test]
fn seed_python_sample_as_an_image_in_non_web_server_mode() {
    let registry = TestRegistry::start();
    let app = fixtures::examples_dir().join("python-event");
    let image = images::push(
        &registry,
        "seed/python-event:v1",
        &fixtures::python_event_image(&app).expect("python image"),
    );
    let server = Server::start();
    server.create_function(container_function(
        "python-image",
        &image,
        json!({ "customContainerConfig": { "webServerMode": false } }),
    ));
    let r = server.invoke("python-image", br#"{"k":"v"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        "Hello serverless image\nFC event is: {\"k\":\"v\"}\n"
    );
}

/// A web function whose requests are shell scripts run inside the container.
fn shell(server: &Server, name: &str, script: &str) -> support::http::Response {
    server.invoke(name, script.as_bytes())
}

#[test]
fn instances_are_isolated_from_the_host_and_each_other() {
    let registry = TestRegistry::start();
    let image = images::push(
        &registry,
        "test/busybox-web:v1",
        &fixtures::busybox_web_image("").expect("busybox image"),
    );
    let host = fcx_testkit::egress::HostServer::loopback();
    let server = Server::start();
    server.create_function(container_function("iso-a", &image, json!({})));
    server.create_function(container_function(
        "iso-b",
        &image,
        json!({ "internetAccess": false }),
    ));

    // Its processes run under SCHED_BATCH (3, field 41 of stat), inherited through the OCI
    // runtime: fcx's default `--instance-scheduling`.
    let policy = shell(
        &server,
        "iso-a",
        "cut -d' ' -f41 /proc/1/stat /proc/self/stat",
    );
    assert_eq!(policy.status, 200, "{}", policy.text());
    assert_eq!(
        policy.text().split_whitespace().collect::<Vec<_>>(),
        ["3", "3"]
    );

    // Only its own processes: pid 1 is the server, nothing of the host shows.
    let ps = shell(&server, "iso-a", "ps -o pid,comm");
    assert_eq!(ps.status, 200, "{}", ps.text());
    let text = ps.text();
    assert!(
        text.lines().nth(1).unwrap_or("").trim().starts_with('1'),
        "{text}"
    );
    // Host processes (the fcx server, crun, pasta) would show with their own names.
    let comms: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert!(
        !comms
            .iter()
            .any(|c| ["fcx", "crun", "pasta", "systemd", "init"].contains(c)),
        "{text}"
    );
    let procs = shell(&server, "iso-a", "ls /proc | grep -c '^[0-9]'").text();
    assert!(procs.trim().parse::<u32>().unwrap() < 20, "{procs}");

    // The host's loopback is out of reach, with and without internet access.
    let port = host.port();
    for f in ["iso-a", "iso-b"] {
        let r = shell(
            &server,
            f,
            &format!(
                "if echo x | nc -w 2 127.0.0.1 {port}; then echo reached; else echo refused; fi"
            ),
        );
        assert_eq!(r.text().trim(), "refused", "{f}: {}", r.text());
    }
    assert_eq!(host.accepted(), 0);

    // Outbound networking follows internetAccess: the target in the test's own namespace
    // answers iso-a (default true, via the default egress), not iso-b (false: loopback only).
    let target = fcx_testkit::egress::EgressTarget::start();
    let (ip, tport) = (target.addr().ip(), target.addr().port());
    let probe =
        format!("timeout 5 nc {ip} {tport} </dev/null | head -1 | grep . || echo unreachable");
    let r = shell(&server, "iso-a", &probe);
    assert_eq!(r.text().lines().next(), Some("egress-ok"), "{}", r.text());
    let r = shell(&server, "iso-b", &probe);
    assert_eq!(r.text().lines().next(), Some("unreachable"), "{}", r.text());
    let resolv = shell(&server, "iso-a", "cat /etc/resolv.conf").text();
    assert!(!resolv.contains("127.0.0."), "{resolv}");

    // One instance's files are invisible to another function's instance.
    let w = shell(
        &server,
        "iso-a",
        "echo s3cret > /marker-a && echo s3cret > /tmp/marker-a && echo ok",
    );
    assert_eq!(w.text().trim(), "ok");
    let r = shell(
        &server,
        "iso-b",
        "ls /marker-a /tmp/marker-a 2>&1; cat /marker-a /tmp/marker-a 2>/dev/null; echo done",
    );
    assert!(
        !r.text().contains("s3cret") && r.text().contains("No such file"),
        "{}",
        r.text()
    );
    // Nor can it see fcx's data dir or the host's files.
    let r = shell(&server, "iso-b", "ls / ; cat /etc/passwd");
    assert!(!r
        .text()
        .contains(&server.data_dir.path().display().to_string()));
    assert!(
        !r.text().contains("_apt"),
        "host /etc/passwd leaked: {}",
        r.text()
    );
}

#[test]
fn fork_bombs_and_memory_hogs_hit_their_limits_while_others_answer() {
    let registry = TestRegistry::start();
    let image = images::push(
        &registry,
        "test/busybox-web:v1",
        &fixtures::busybox_web_image("").expect("busybox image"),
    );
    let server = Server::start_with(Options::with_args(&["--pids-limit", "64"]));
    for name in ["bomb", "hog", "calm"] {
        server.create_function(container_function(
            name,
            &image,
            json!({ "timeout": 8, "memorySize": 128 }),
        ));
    }
    assert_eq!(shell(&server, "calm", "echo up").text().trim(), "up");

    // The fork bomb runs into the pids limit (its group never holds more than 64 tasks)
    // while another function keeps answering; the request ends by its timeout at the latest
    // (as an error or a cut-off stream: what it prints depends on which fork failed).
    let bomb = std::thread::spawn({
        let addr = server.addr;
        move || {
            support::http::try_request(
                addr,
                "POST",
                "/2023-03-30/functions/bomb/invocations",
                &[],
                b"b() { b | b & }; b; sleep 6; echo survived",
            )
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let during = shell(&server, "calm", "echo still-up");
    assert_eq!(during.status, 200, "{}", during.text());
    assert_eq!(during.text().trim(), "still-up");
    // FC's X-Fc-Max-Memory-Usage: the container's memory peak in MB, within its memorySize.
    let peak: u64 = during
        .header("x-fc-max-memory-usage")
        .unwrap_or_else(|| panic!("no x-fc-max-memory-usage: {:?}", during.headers))
        .parse()
        .unwrap();
    assert!((1..=128).contains(&peak), "peak {peak} MB");
    let prefix = server.run_dir.file_name().unwrap().to_owned();
    let groups = std::path::Path::new("/sys/fs/cgroup/pids/fcx").join(prefix);
    let mut seen = 0;
    for entry in std::fs::read_dir(&groups).into_iter().flatten().flatten() {
        let ctr = entry.path().join("ctr");
        if let Ok(max) = std::fs::read_to_string(ctr.join("pids.max")) {
            assert_eq!(max.trim(), "64");
            let current: u32 = std::fs::read_to_string(ctr.join("pids.current"))
                .unwrap_or_default()
                .trim()
                .parse()
                .unwrap_or(0);
            assert!(current <= 64, "{current} tasks in {}", ctr.display());
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "no container pids groups under {}",
        groups.display()
    );
    let _ = bomb.join().unwrap();

    // A memory hog in a request is OOM-killed at the memory limit; its instance and the
    // other functions go on.
    let hog = shell(
        &server,
        "hog",
        "x=aaaaaaaa; while true; do x=\"$x$x\"; done",
    );
    assert_eq!(hog.status, 200, "{}", hog.text());
    assert_eq!(shell(&server, "hog", "echo alive").text().trim(), "alive");

    // When the instance's main process is the hog, the whole instance is killed, and the
    // error says so with its own code.
    let hog_image = images::push(
        &registry,
        "test/busybox-hog:v1",
        &fixtures::busybox_web_image("x=aaaaaaaa; while true; do x=\"$x$x\"; done")
            .expect("busybox image"),
    );
    server.create_function(container_function(
        "main-hog",
        &hog_image,
        json!({ "timeout": 8, "memorySize": 128 }),
    ));
    let hog = shell(&server, "main-hog", "echo never");
    assert_eq!(hog.status, 502, "{}", hog.text());
    assert_eq!(code(&hog), "MemoryLimitExceeded", "{}", hog.text());
    assert!(
        hog.text().contains("memorySize of 128 MB"),
        "{}",
        hog.text()
    );
    assert_eq!(shell(&server, "calm", "echo after").text().trim(), "after");
}

/// Issue 13: the registry password was echoed by Create/Get/ListFunctions and stored in
/// plain text (the database and its WAL held it). Now it is sealed at rest, "******" in every
/// answer, still usable after a restart (versions included), and kept when a client sends
/// the placeholder back.
#[test]
fn registry_password_is_sealed_at_rest_and_redacted_in_every_answer() {
    const PASSWORD: &str = "pw-7f3c9e-sealed-at-rest";
    let registry = TestRegistry::start_with_auth("fcx-user", PASSWORD);
    let image = images::push(
        &registry,
        "private/busybox-event:v2",
        &fixtures::busybox_event_image().expect("busybox image"),
    );
    let mut server = Server::start();
    let auth = json!({ "authConfig": { "userName": "fcx-user", "password": PASSWORD } });
    let body = container_function(
        "sealed",
        &image,
        json!({ "customContainerConfig": { "webServerMode": false, "registryConfig": auth } }),
    );
    let created = server.post_json("/2023-03-30/functions", &body);
    assert_eq!(created.status, 200, "{}", created.text());
    let got = server.request("GET", "/2023-03-30/functions/sealed", &[], b"");
    let listed = server.request("GET", "/2023-03-30/functions", &[], b"");
    for (what, r) in [("create", &created), ("get", &got), ("list", &listed)] {
        println!("{what}: {}", r.text());
        assert!(
            !r.text().contains(PASSWORD),
            "{what} shows the password: {}",
            r.text()
        );
    }
    assert_eq!(
        got.json()["customContainerConfig"]["registryConfig"]["authConfig"]["password"],
        "******"
    );
    assert_eq!(server.invoke("sealed", b"pulled").text(), "pulled\n");
    let r = server.request("POST", "/2023-03-30/functions/sealed/versions", &[], b"{}");
    assert_eq!(r.status, 200, "{}", r.text());

    // A GetFunction answer sent back as an update keeps the stored password.
    let mut cc = got.json()["customContainerConfig"].clone();
    cc.as_object_mut().unwrap().remove("resolvedImageUri");
    let r = server.put_json(
        "/2023-03-30/functions/sealed",
        &json!({ "customContainerConfig": cc, "description": "round trip" }),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    server.crash_and_restart();
    // Forget the cached tag, so the image is pulled again with the stored password.
    for e in std::fs::read_dir(server.data_dir.path().join("images/refs"))
        .unwrap()
        .flatten()
    {
        std::fs::remove_file(e.path()).unwrap();
    }
    for qualifier in ["LATEST", "1"] {
        let r = server.request(
            "POST",
            &format!("/2023-03-30/functions/sealed/invocations?qualifier={qualifier}"),
            &[],
            b"again",
        );
        assert_eq!(r.status, 200, "{qualifier}: {}", r.text());
    }
    for entry in std::fs::read_dir(server.data_dir.path()).unwrap().flatten() {
        let path = entry.path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes());
            assert!(
                !found,
                "{} holds the password in plain text",
                path.display()
            );
        }
    }

    // A wrong password is not echoed in the error either; a wrongly typed one is refused.
    // Another tag, so the pull goes to the registry (a cached reference is not pulled again).
    let uncached = images::push(
        &registry,
        "private/busybox-event:wrong",
        &fixtures::busybox_event_image().expect("busybox image"),
    );
    let wrong = "wrong-pw-never-echoed";
    let body = container_function(
        "wrong",
        &uncached,
        json!({ "customContainerConfig": { "webServerMode": false,
            "registryConfig": { "authConfig": { "userName": "fcx-user", "password": wrong } } } }),
    );
    server.create_function(body);
    let r = server.invoke("wrong", b"x");
    assert_eq!(code(&r), "ImageAccessDenied", "{}", r.text());
    assert!(!r.text().contains(wrong), "{}", r.text());
    let body = container_function(
        "typed",
        &image,
        json!({ "customContainerConfig": { "registryConfig":
            { "authConfig": { "userName": "fcx-user", "password": ["a", "b"] } } } }),
    );
    let r = server.post_json("/2023-03-30/functions", &body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text()
            .contains("customContainerConfig.registryConfig.authConfig.password"),
        "{}",
        r.text()
    );
}

#[test]
fn private_registry_needs_the_right_credentials() {
    let registry = TestRegistry::start_with_auth("fcx-user", "s3cret-pw");
    let image = images::push(
        &registry,
        "private/busybox-event:v1",
        &fixtures::busybox_event_image().expect("busybox image"),
    );
    let server = Server::start();
    let event = |name: &str, auth: Value| {
        container_function(
            name,
            &image,
            json!({ "customContainerConfig": { "webServerMode": false, "registryConfig": auth } }),
        )
    };
    server.create_function(event("no-creds", json!({})));
    let r = server.invoke("no-creds", b"hi");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(code(&r), "ImageAccessDenied", "{}", r.text());
    assert!(r.text().contains("authConfig"), "{}", r.text());

    server.create_function(event(
        "wrong-creds",
        json!({ "authConfig": { "userName": "fcx-user", "password": "nope" } }),
    ));
    let r = server.invoke("wrong-creds", b"hi");
    assert_eq!(code(&r), "ImageAccessDenied", "{}", r.text());

    server.create_function(event(
        "right-creds",
        json!({ "authConfig": { "userName": "fcx-user", "password": "s3cret-pw" } }),
    ));
    let r = server.invoke("right-creds", b"hello-event");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello-event\n");

    // The image is cached now: functions without the right credentials still cannot use it.
    server.create_function(event("no-creds-cached", json!({})));
    server.create_function(event(
        "wrong-creds-cached",
        json!({ "authConfig": { "userName": "fcx-user", "password": "nope" } }),
    ));
    for name in ["no-creds-cached", "wrong-creds-cached"] {
        let r = server.invoke(name, b"hi");
        assert_eq!(code(&r), "ImageAccessDenied", "{name}: {}", r.text());
    }

    // The pulls in the metrics: the refused ones, and the one that brought the image's bytes.
    let metrics = server.request("GET", "/metrics", &[], b"").text();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{metrics}"))
    };
    assert_eq!(value(r#"fcx_image_pulls_total{kind="pulled"}"#), 1.0);
    assert!(value(r#"fcx_image_pulls_total{kind="failed"}"#) >= 2.0);
    assert!(value("fcx_image_pull_bytes_total") > 10_000.0, "{metrics}");
}

#[test]
fn image_and_entrypoint_failures_have_their_own_codes() {
    let registry = TestRegistry::start();
    let image = images::push(
        &registry,
        "test/busybox-event:v1",
        &fixtures::busybox_event_image().expect("busybox image"),
    );
    let server = Server::start();
    let missing = format!("{}/test/nothing-here:v1", registry.addr());
    server.create_function(container_function("missing", &missing, json!({})));
    let r = server.invoke("missing", b"");
    assert_eq!(code(&r), "ImageNotFound", "{}", r.text());

    // A loopback port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    server.create_function(container_function(
        "unreachable",
        &format!("127.0.0.1:{closed}/x/y:v1"),
        json!({}),
    ));
    let r = server.invoke("unreachable", b"");
    assert_eq!(code(&r), "RegistryUnreachable", "{}", r.text());

    server.create_function(container_function(
        "bad-entrypoint",
        &image,
        json!({ "customContainerConfig": { "entrypoint": ["/no/such/program"] } }),
    ));
    let r = server.invoke("bad-entrypoint", b"");
    assert_eq!(code(&r), "EntrypointNotFound", "{}", r.text());
    assert!(r.text().contains("/no/such/program"), "{}", r.text());
}

/// Ids of the pre-created sandboxes waiting at their start gate under a server's run dir:
/// bundles whose gate fifo a `cat` hook process holds open, either inside the container
/// (`cat /dev/.fcx-start`, in the sandbox's cgroup) or on the host (`cat <bundle>/start`).
fn sandboxes(server: &Server) -> Vec<String> {
    let gates: Vec<(String, String)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cgroup = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
            Some((String::from_utf8_lossy(&cmdline).replace('\0', " "), cgroup))
        })
        .filter(|(c, _)| {
            c == "cat /dev/.fcx-start " || (c.starts_with("cat ") && c.ends_with("/start "))
        })
        .collect();
    let dir = server.run_dir.join("oci");
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let gate = e.path().join("start").display().to_string();
            let group = format!("/{}", e.file_name().to_string_lossy());
            gates.iter().any(|(c, cgroup)| {
                c.contains(&gate) || (c.contains("/dev/.fcx-start") && cgroup.contains(&group))
            })
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..400 {
        if ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn cold_starts_use_a_pre_created_sandbox_which_is_refilled_and_removed_with_the_function() {
    let registry = TestRegistry::start();
    let image = images::push(
        &registry,
        "test/busybox-web:v1",
        &fixtures::busybox_web_image("").expect("busybox image"),
    );
    let server = Server::start();
    // No egress: the sandbox is handed to the pool before its hook waits at the gate.
    server.create_function(container_function(
        "pre",
        &image,
        json!({ "internetAccess": false }),
    ));
    wait_for("a sandbox", || sandboxes(&server).len() == 1);
    let ready = sandboxes(&server);
    // No process of the function runs before it is invoked: the container waits at its gate.
    let r = shell(&server, "pre", "echo warm");
    assert_eq!(r.text().trim(), "warm");
    assert_eq!(r.header("x-fc-instance-id"), Some(ready[0].as_str()));
    // The pool is refilled with a new sandbox.
    wait_for("a new sandbox", || {
        let now = sandboxes(&server);
        now.len() == 1 && now != ready
    });
    // Deleting the function removes its sandbox, instance, bundles and mounts.
    let r = server.request("DELETE", "/2023-03-30/functions/pre", &[], b"");
    assert!(r.status < 300, "{}", r.text());
    wait_for("the bundles to go", || {
        std::fs::read_dir(server.run_dir.join("oci"))
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    });
    assert!(support::containers::mounts_under(&server.run_dir).is_empty());

    // Without sandboxes (0 per function) cold starts make their container on demand.
    let plain = Server::start_with(Options::with_args(&["--sandboxes-per-function", "0"]));
    plain.create_function(container_function("plain", &image, json!({})));
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(sandboxes(&plain).is_empty());
    assert_eq!(shell(&plain, "plain", "echo ok").text().trim(), "ok");
}

#[test]
fn a_restarted_server_reaps_the_containers_and_mounts_a_crashed_run_left() {
    let registry = TestRegistry::start();
    let image = images::push(
        &registry,
        "test/busybox-web:v1",
        &fixtures::busybox_web_image("").expect("busybox image"),
    );
    let mut server = Server::start();
    server.create_function(container_function("survivor", &image, json!({})));
    let r = shell(&server, "survivor", "echo $$; hostname");
    assert_eq!(r.status, 200, "{}", r.text());
    let old_instance = r.header("x-fc-instance-id").unwrap().to_owned();
    let state = server.run_dir.join("oci-state");
    let left: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().any(|n| n.ends_with(&old_instance)), "{left:?}");

    // SIGKILL: the server cleans nothing up itself.
    server.crash_and_restart();
    let names: Vec<String> = std::fs::read_dir(&state)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(&old_instance)),
        "the old container is still in the runtime state: {names:?}"
    );
    let old_bundle = server.run_dir.join("oci").join(&old_instance);
    assert!(!old_bundle.exists(), "{} survived", old_bundle.display());
    assert!(
        !support::containers::mounts_under(&server.run_dir)
            .iter()
            .any(|m| m.starts_with(&old_bundle)),
        "the old rootfs is still mounted"
    );
    // No process of the old container is left (its init was the busybox server).
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("environ")).ok())
        .filter(|env| env.contains(&format!("FC_INSTANCE_ID={old_instance}")))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{} processes of the old instance",
        leftovers.len()
    );
    // And the function runs again.
    let r = shell(&server, "survivor", "echo back");
    assert_eq!(r.text().trim(), "back");
}
