//! Instances: network namespace isolation, identity and environment, lifecycle across
//! updates, deletes, shutdown and a crash of the server itself.

mod support;

use std::time::Duration;

use serde_json::json;
use support::procs::eventually;
use support::Server;

#[test]
fn two_instances_of_one_function_both_listen_on_9000() {
    let server = Server::start();
    server.create_function(support::testfn_function("pair", json!({})));
    let barrier = support::scratch_dir("pair");
    let cmd = format!("barrier:{}:2", barrier.path().display());
    let responses: Vec<support::Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| server.invoke("pair", cmd.as_bytes())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids = Vec::new();
    for r in &responses {
        assert_eq!(r.status, 200, "{}", r.text());
        let id = r.header("x-fc-instance-id").unwrap().to_owned();
        assert_eq!(r.text(), format!("released {id}"));
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "both requests were served by one instance");
    assert_eq!(server.instance_pids().len(), 2);
}

#[test]
fn instances_get_fc_environment_and_context_headers() {
    let server = Server::start();
    let created = server.create_function(support::testfn_function(
        "envy",
        json!({"MY_VAR": "my value"}),
    ));
    let env = server.invoke("envy", b"env").text();
    let instance_id = server
        .invoke("envy", b"echo:x")
        .header("x-fc-instance-id")
        .unwrap()
        .to_owned();
    let account = created["functionArn"]
        .as_str()
        .unwrap()
        .split(':')
        .nth(3)
        .unwrap()
        .to_owned();
    for line in [
        "FC_FUNCTION_NAME=envy".to_owned(),
        "FC_FUNCTION_MEMORY_SIZE=512".to_owned(),
        "FC_FUNCTION_HANDLER=index.handler".to_owned(),
        "FC_CUSTOM_LISTEN_PORT=9000".to_owned(),
        "FC_REGION=local".to_owned(),
        format!("FC_ACCOUNT_ID={account}"),
        format!("FC_INSTANCE_ID={instance_id}"),
        "MY_VAR=my value".to_owned(),
    ] {
        assert!(env.lines().any(|l| l == line), "missing {line} in:\n{env}");
    }
    let code_path = env
        .lines()
        .find_map(|l| l.strip_prefix("FC_FUNC_CODE_PATH="))
        .expect("FC_FUNC_CODE_PATH");
    assert!(std::path::Path::new(code_path).join("bootstrap").exists());

    let headers = server.invoke("envy", b"headers").text();
    for line in [
        "x-fc-function-name: envy",
        "x-fc-function-memory: 512",
        "x-fc-function-timeout: 10",
        "x-fc-function-handler: index.handler",
        "x-fc-region: local",
        "x-fc-qualifier: LATEST",
        "x-fc-version-id: LATEST",
        "x-fc-control-path: /invoke",
        "content-type: application/octet-stream",
    ] {
        assert!(
            headers.lines().any(|l| l == line),
            "missing {line} in:\n{headers}"
        );
    }
    assert!(headers.contains(&format!("x-fc-account-id: {account}")));
    assert!(headers.lines().any(|l| l.starts_with("x-fc-request-id: ")));
}

/// The contract changed with issue 13: instances no longer run as `nobody` but as their
/// function's own uid from `--instance-uids` (default 100000-165535), and the data dir of
/// these tests (under the host's /tmp) is not even visible: every instance has a /tmp of
/// its own. Reading it is denied either way.
#[test]
fn instances_run_unprivileged_and_cannot_read_the_data_dir() {
    let server = Server::start();
    server.create_function(support::testfn_function("jailed", json!({})));
    let (uid, gid) = whoami(&server, "jailed");
    assert!((100_000..=165_535).contains(&uid), "uid {uid}");
    assert_eq!(uid, gid);
    // A file every data dir holds, whichever the store: the function's code package.
    let db = std::fs::read_dir(server.data_dir.path().join("code"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "zip"))
        .expect("a stored code package");
    let r = server.invoke("jailed", format!("read:{}", db.display()).as_bytes());
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("Permission denied") || r.text().contains("No such file"),
        "{}",
        r.text()
    );
}

/// The scheduling policy (`/proc/<pid>/task/<tid>/stat`, field 41) of every thread of
/// `pid`; threads that ended meanwhile are left out.
fn thread_policies(pid: u32) -> Vec<(u32, u32)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| {
            let tid: u32 = t.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            // Fields after the command name (which may hold spaces) start at field 3.
            let policy = stat.rsplit_once(')')?.1.split_whitespace().nth(41 - 3)?;
            Some((tid, policy.parse().ok()?))
        })
        .collect()
}

/// Instances run under SCHED_BATCH (3) by default, so that a request written into one does
/// not let it preempt the thread serving the gateway; `--instance-scheduling normal` keeps
/// the default policy (SCHED_OTHER, 0). Every thread of every instance process inherits it.
#[test]
fn instances_run_sched_batch_unless_the_server_asks_for_normal() {
    for (args, want) in [(&[][..], 3), (&["--instance-scheduling", "normal"][..], 0)] {
        let server = Server::start_with(support::Options::with_args(args));
        server.create_function(support::testfn_function("sched", json!({})));
        let r = server.invoke("sched", b"echo:up");
        assert_eq!(r.status, 200, "{}", r.text());
        let pids = server.instance_pids();
        assert!(!pids.is_empty(), "no instance processes ({args:?})");
        let threads: Vec<(u32, u32, u32)> = pids
            .iter()
            .flat_map(|&pid| {
                thread_policies(pid)
                    .into_iter()
                    .map(move |(t, p)| (pid, t, p))
            })
            .collect();
        assert!(!threads.is_empty(), "no instance threads ({args:?})");
        for (pid, tid, policy) in threads {
            assert_eq!(policy, want, "pid {pid} thread {tid} with {args:?}");
        }
    }
}

fn whoami(server: &Server, name: &str) -> (u32, u32) {
    let text = server.invoke(name, b"whoami").text();
    let field = |key: &str| -> u32 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {text:?}"))
    };
    (field("uid="), field("gid="))
}

#[test]
fn each_function_runs_under_its_own_uid_kept_across_restarts() {
    let mut server = Server::start_with(support::Options::with_args(&[
        "--instance-uids",
        "200000-200009",
    ]));
    let names = ["tenant-a", "tenant-b", "tenant-c"];
    for name in names {
        server.create_function(support::testfn_function(name, json!({})));
    }
    let before: Vec<(u32, u32)> = names.iter().map(|n| whoami(&server, n)).collect();
    println!("uids before the restart: {before:?}");
    for (uid, gid) in &before {
        assert!(
            (200_000..=200_009).contains(uid),
            "uid {uid} outside the range"
        );
        assert_eq!(uid, gid);
    }
    let mut uids: Vec<u32> = before.iter().map(|(u, _)| *u).collect();
    uids.dedup();
    assert_eq!(uids.len(), names.len(), "functions share a uid: {before:?}");

    server.crash_and_restart();
    let after: Vec<(u32, u32)> = names.iter().map(|n| whoami(&server, n)).collect();
    assert_eq!(after, before, "uids changed across a restart");
    // A function deleted and created again keeps its uid; a new one gets a fresh uid.
    let r = server.request("DELETE", "/2023-03-30/functions/tenant-b", &[], b"");
    assert_eq!(r.status, 204);
    server.create_function(support::testfn_function("tenant-b", json!({})));
    server.create_function(support::testfn_function("tenant-d", json!({})));
    assert_eq!(whoami(&server, "tenant-b"), before[1]);
    let d = whoami(&server, "tenant-d").0;
    assert!(!uids.contains(&d), "tenant-d got a uid in use: {d}");
}

#[test]
fn instances_see_only_their_own_processes_and_stop_on_sigterm() {
    let server = Server::start();
    server.create_function(support::testfn_function("seer", json!({})));
    server.create_function(support::testfn_function("other", json!({})));
    assert_eq!(server.invoke("other", b"echo:up").status, 200);
    let other_pids = server.instance_pids();
    let seen = server.invoke("seer", b"pids").text();
    println!("pids visible inside the instance: {seen}");
    let seen: Vec<u32> = seen
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    // Its own PID namespace: the init (1) and the function (2), nothing of the host's.
    assert_eq!(seen.first(), Some(&1), "{seen:?}");
    assert!(
        seen.len() <= 3,
        "sees more than its own processes: {seen:?}"
    );
    for pid in other_pids {
        let r = server.invoke("seer", format!("read:/proc/{pid}/environ").as_bytes());
        assert!(r.text().contains("cannot read"), "{}", r.text());
    }
    // FC_INSTANCE_ID still reaches the function; SIGTERM (a delete) still stops it.
    let env = server.invoke("seer", b"env").text();
    assert!(
        env.lines().any(|l| l.starts_with("FC_INSTANCE_ID=")),
        "{env}"
    );
    let r = server.request("DELETE", "/2023-03-30/functions/seer", &[], b"");
    assert_eq!(r.status, 204);
    let r = server.request("DELETE", "/2023-03-30/functions/other", &[], b"");
    assert_eq!(r.status, 204);
    assert!(
        eventually(Duration::from_secs(10), || server
            .instance_pids()
            .is_empty()),
        "instances survived their function: {:?}",
        server.instance_pids()
    );
}

/// The instance's limit groups: `fcx/<prefix>/<id>` in the v1 pids hierarchy, else cgroup2.
fn pids_max_of(server: &Server, instance: &str) -> Option<String> {
    let prefix = server.run_dir.file_name()?.to_owned();
    let mounts = fcx_runtime::mountinfo::current();
    let v1 = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == "pids"));
    let v2 = mounts.iter().find(|m| m.fstype == "cgroup2");
    let mount = v1.or(v2)?;
    let file = mount
        .mount_point
        .join("fcx")
        .join(prefix)
        .join(instance)
        .join("pids.max");
    std::fs::read_to_string(file)
        .ok()
        .map(|s| s.trim().to_owned())
}

#[test]
fn memory_size_is_enforced_as_memory_limit_exceeded() {
    let server = Server::start_with(support::Options::with_args(&["--pids-limit", "64"]));
    let mut f = support::testfn_function("small", json!({}));
    f["memorySize"] = json!(128);
    server.create_function(f);
    let r = server.invoke("small", b"alloc:32");
    assert_eq!(r.text(), "allocated 32 MB");
    let id = r.header("x-fc-instance-id").unwrap().to_owned();
    assert_eq!(
        pids_max_of(&server, &id).as_deref(),
        Some("64"),
        "pids limit"
    );
    let r = server.invoke("small", b"alloc:512");
    println!("512 MB under a 128 MB function: {} {}", r.status, r.text());
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["Code"], "MemoryLimitExceeded", "{}", r.text());
    assert!(r.text().contains("128 MB"), "{}", r.text());
    // A new instance serves the next request.
    assert_eq!(server.invoke("small", b"echo:again").text(), "again");
}

#[test]
fn instances_have_loopback_only_and_cannot_reach_host_services() {
    let server = Server::start();
    // internetAccess false: loopback only (e2e_egress covers the default, true).
    let mut f = support::testfn_function("netless", json!({}));
    f["internetAccess"] = json!(false);
    server.create_function(f);
    // fcx's own API listens on the host's loopback; inside the namespace that address is empty.
    let r = server.invoke("netless", format!("connect:{}", server.addr).as_bytes());
    assert!(r.text().starts_with("error: "), "{}", r.text());
    // The instance's own loopback works (its server listens there).
    let r = server.invoke("netless", b"connect:127.0.0.1:9000");
    assert_eq!(r.text(), "connected");
    let r = server.invoke("netless", b"connect:1.1.1.1:53");
    assert!(r.text().starts_with("error: "), "{}", r.text());
}

#[test]
fn update_moves_new_requests_to_new_instances_and_stops_old_ones() {
    let server = Server::start();
    server.create_function(support::testfn_function("rolling", json!({"V": "1"})));
    let before = server.invoke("rolling", b"env");
    assert!(before.text().lines().any(|l| l == "V=1"));
    let old_pids = server.instance_pids();
    assert_eq!(old_pids.len(), 1);

    let r = server.request(
        "PUT",
        "/2023-03-30/functions/rolling",
        &[],
        json!({"environmentVariables": {"V": "2"}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let after = server.invoke("rolling", b"env");
    assert!(after.text().lines().any(|l| l == "V=2"), "{}", after.text());
    assert_ne!(
        after.header("x-fc-instance-id"),
        before.header("x-fc-instance-id")
    );
    assert!(
        eventually(Duration::from_secs(10), || !server
            .instance_pids()
            .contains(&old_pids[0])),
        "old instance still running"
    );

    let r = server.request("DELETE", "/2023-03-30/functions/rolling", &[], b"");
    assert_eq!(r.status, 204);
    assert!(
        eventually(Duration::from_secs(10), || server
            .instance_pids()
            .is_empty()),
        "instances of a deleted function still running: {:?}",
        server.instance_pids()
    );
}

#[test]
fn graceful_shutdown_stops_every_instance() {
    let server = Server::start();
    server.create_function(support::testfn_function("a", json!({})));
    server.create_function(support::testfn_function("b", json!({})));
    assert_eq!(server.invoke("a", b"echo:1").status, 200);
    assert_eq!(server.invoke("b", b"echo:1").status, 200);
    assert_eq!(server.instance_pids().len(), 2);
    let run_dir = server.run_dir.clone();
    let pid = server.pid();
    support::procs::terminate(pid, Duration::from_secs(15));
    assert!(
        eventually(Duration::from_secs(5), || support::procs::under(&run_dir)
            .is_empty()),
        "instances outlived the server"
    );
    drop(server);
}

#[test]
fn restart_after_kill_keeps_functions_and_leaves_no_orphans() {
    let mut server = Server::start();
    server.create_function(support::testfn_function("survivor", json!({})));
    let first = server.invoke("survivor", b"echo:before");
    assert_eq!(first.text(), "before");
    assert_eq!(server.instance_pids().len(), 1);

    server.crash_and_restart();
    let after = server.invoke("survivor", b"echo:after");
    assert_eq!(after.status, 200, "{}", after.text());
    assert_eq!(after.text(), "after");
    assert_ne!(
        after.header("x-fc-instance-id"),
        first.header("x-fc-instance-id")
    );
    let got = server.request("GET", "/2023-03-30/functions/survivor", &[], b"");
    assert_eq!(got.status, 200);
    // Only the new instance runs: the old one died with its server or was reaped at start.
    assert!(
        eventually(Duration::from_secs(5), || server.instance_pids().len() == 1),
        "leftover processes: {:?}",
        server.instance_pids()
    );
    let pidfiles = std::fs::read_dir(server.run_dir.join("instances"))
        .unwrap()
        .count();
    assert_eq!(pidfiles, 1, "stale pid files left behind");
}

#[test]
fn servers_side_by_side_do_not_touch_each_others_instances() {
    let a = Server::start();
    let b = Server::start();
    assert_ne!(a.run_dir, b.run_dir);
    a.create_function(support::testfn_function("same", json!({})));
    b.create_function(support::testfn_function("same", json!({})));
    assert_eq!(a.invoke("same", b"echo:a").text(), "a");
    assert_eq!(b.invoke("same", b"echo:b").text(), "b");
    let a_pids = a.instance_pids();
    drop(b);
    assert_eq!(
        a.instance_pids(),
        a_pids,
        "stopping one server touched the other's instances"
    );
    assert_eq!(a.invoke("same", b"echo:still").text(), "still");
}

#[test]
fn a_second_server_on_a_running_servers_data_dir_is_refused() {
    let server = Server::start();
    server.create_function(support::testfn_function("owned", json!({})));
    assert_eq!(server.invoke("owned", b"echo:x").text(), "x");
    let mut second = std::process::Command::new(support::fcx_bin())
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--auth",
            "none",
            "--data-dir",
        ])
        .arg(server.data_dir.path())
        .arg("--run-dir")
        .arg(&server.run_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start a second fcx server");
    let ended = eventually(Duration::from_secs(30), || {
        second.try_wait().ok().flatten().is_some()
    });
    if !ended {
        let _ = second.kill();
    }
    let out = second
        .wait_with_output()
        .expect("the second server's output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        ended,
        "a second server on the same data dir kept running: {stderr}"
    );
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is in use by another fcx server (pid {})",
            server.pid()
        )),
        "{stderr}"
    );
    // The first server and its instance are untouched.
    let r = server.invoke("owned", b"echo:still");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "still");
    assert_eq!(server.instance_pids().len(), 1);
}
