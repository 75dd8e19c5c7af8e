//! Three fcx nodes sharing one real PostgreSQL, each in a network namespace of its own with
//! its own address on a veth pair the test makes (`fxn*` links, 198.18.0.0/24, never fcx's own
//! `fcx*` range). Each node's API listens on loopback inside its namespace (the test's client
//! threads join that namespace to reach it); each node reaches the database over its veth, so
//! downing a veth cuts that node off. The nodes reach each other (ListInstances, `--forward`)
//! over a second network, a bridge in a namespace of its own (198.18.1.0/24; a relay in each
//! node's namespace carries its bridge address to its loopback listener), so cutting a
//! node's database link leaves its peers reachable. Traffic stays on loopback and these
//! namespaces.

mod support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fcx_testkit::postgres::{PgServer, TestDatabase};
use fcx_testkit::skip::{self, Needs};
use serde_json::json;
use support::{http, procs};

fn main() -> std::process::ExitCode {
    let needs = Needs::new()
        .root()
        .executable(
            "/usr/lib/postgresql/15/bin/postgres",
            "package postgresql-15",
        )
        .command("ip", "package iproute2");
    let pg_only = Needs::new().root().executable(
        "/usr/lib/postgresql/15/bin/postgres",
        "package postgresql-15",
    );
    // These tests make their own PostgreSQL and SQLite stores: the suite's PostgreSQL pass
    // (FCX_TEST_STORE=postgres) would only run them a second time.
    let pass = "the SQLite pass (these tests start their own PostgreSQL)";
    let needs = needs.check(pass, !support::on_postgres());
    let pg_only = pg_only.check(pass, !support::on_postgres());
    skip::run(vec![
        skip::test(
            "three_nodes_share_functions_limits_async_and_survive_node_loss",
            &needs,
            three_nodes,
        ),
        skip::test(
            "store_migrate_moves_a_single_node_to_postgres",
            &pg_only,
            store_migrate,
        ),
    ])
}

/// `fcx store migrate`: a SQLite node's functions, documents, keys, pending async tasks and
/// code packages, served afterwards by a node on PostgreSQL with an empty data dir of its own.
fn store_migrate() {
    let source = support::Server::start_with(support::Options::with_args(&[
        // Nothing runs: the async invocations stay pending for the migration to move.
        "--async-workers",
        "0",
    ]));
    source.create_function(support::testfn_function("moved", json!({"V": "1"})));
    let r = source.post_json("/2023-03-30/functions/moved/versions", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = source.post_json(
        "/2023-03-30/functions/moved/aliases",
        &json!({"aliasName": "prod", "versionId": "1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let trigger = json!({"authType": "anonymous", "methods": ["GET"]}).to_string();
    let r = source.post_json(
        "/2023-03-30/functions/moved/triggers",
        &json!({"triggerName": "web", "triggerType": "http", "triggerConfig": trigger}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = source.put_json(
        "/2023-03-30/functions/moved/concurrency",
        &json!({"reservedConcurrency": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let records = support::scratch_dir("migrate");
    let record = records.path().join("ran");
    let payload = format!("record:{}", record.display());
    let pending: Vec<String> = (0..3)
        .map(|_| {
            let r = source.invoke_with(
                "moved",
                &[("x-fc-invocation-type", "Async")],
                payload.as_bytes(),
            );
            assert_eq!(r.status, 202, "{}", r.text());
            r.header("x-fc-request-id").unwrap().to_owned()
        })
        .collect();
    let account = source
        .request("GET", "/2023-03-30/functions/moved", &[], b"")
        .json()["functionArn"]
        .clone();
    let key = Command::new(support::fcx_bin())
        .args(["keys", "create", "--description", "moved", "--data-dir"])
        .arg(source.data_dir.path())
        .env_remove("FCX_STORE")
        .output()
        .unwrap();
    assert!(key.status.success(), "{key:?}");
    let key = String::from_utf8(key.stdout).unwrap();
    let field = |name: &str| {
        key.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{key}"))
            .to_owned()
    };
    let (key_id, key_secret) = (field("access_key_id="), field("access_key_secret="));
    let data = source.stop();

    let db = TestDatabase::create("migrate");
    let migrate = |from: &str| {
        Command::new(support::fcx_bin())
            .args(["store", "migrate", "--from", from, "--to", db.url()])
            .output()
            .unwrap()
    };
    let from = format!("sqlite:{}", data.path().display());
    let out = migrate(&from);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("migrated 1 function(s)")
            && stdout.contains("1 AccessKey(s)")
            && stdout.contains("3 pending async task(s)")
            && stdout.contains("1 code package(s)"),
        "{stdout}"
    );
    // A second migration into the same database is refused and changes nothing.
    let again = migrate(&from);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("already holds 1 function(s)"),
        "{again:?}"
    );
    let missing = migrate("sqlite:/nonexistent/fcx-data");
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("/nonexistent/fcx-data/fcx.db does not exist"),
        "{missing:?}"
    );
    assert_eq!(db.psql("SELECT count(*) FROM async_tasks").unwrap(), "3");

    // The keys unseal with the source's secret.key, on PostgreSQL.
    let keys = fcx_store::KeyStore::open_for(
        data.path(),
        &fcx_store::StoreUrl::Postgres(db.url().to_owned()),
    )
    .unwrap();
    assert_eq!(keys.secret(&key_id).unwrap(), Some(key_secret));

    // A node on the database with an empty data dir serves everything that moved, its code
    // from the database, and runs the pending invocations.
    let node = support::Server::start_with(support::Options::with_args(&["--store", db.url()]));
    let f = node.request("GET", "/2023-03-30/functions/moved", &[], b"");
    assert_eq!(f.status, 200, "{}", f.text());
    assert_eq!(f.json()["functionArn"], account);
    let alias = node.request("GET", "/2023-03-30/functions/moved/aliases/prod", &[], b"");
    assert_eq!(alias.json()["versionId"], "1", "{}", alias.text());
    let t = node.request("GET", "/2023-03-30/functions/moved/triggers/web", &[], b"");
    assert_eq!(t.status, 200, "{}", t.text());
    let c = node.request("GET", "/2023-03-30/functions/moved/concurrency", &[], b"");
    assert_eq!(c.json()["reservedConcurrency"], 2, "{}", c.text());
    let all_ran = within(Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        pending.iter().all(|id| text.lines().any(|l| l == id))
    });
    assert!(
        all_ran.is_some(),
        "pending invocations after the migration: ran {:?}, expected {pending:?}",
        std::fs::read_to_string(&record).unwrap_or_default()
    );
    // The reserved concurrency moved too: retried while the pending runs hold its 2 slots.
    let env = within(Duration::from_secs(30), || {
        node.invoke("moved", b"env").text().contains("V=1")
    });
    assert!(env.is_some(), "{}", node.invoke("moved", b"env").text());
}

/// The documented bound on config propagation when a node is in sync: a notification, or
/// at worst the next re-read (`--sync-interval`, 1 s here) plus the re-read itself.
const SYNC_INTERVAL_SECS: u64 = 1;
const PROPAGATION_BOUND: Duration = Duration::from_secs(SYNC_INTERVAL_SECS + 3);

/// `--cluster-max-instances` of the nodes: room for every case (an idle split of 10 each, so
/// a's `--max-instances` 8 can fill up in the forward case), and a cap the instance-cap case
/// runs into.
const CLUSTER_MAX_INSTANCES: usize = 30;

/// The namespaces and veth pairs; removed on drop.
struct Net {
    tag: String,
    nodes: usize,
}

impl Net {
    fn ns(&self, i: usize) -> String {
        format!("fxn{}{i}", self.tag)
    }
    fn host_link(&self, i: usize) -> String {
        format!("fxn{}h{i}", self.tag)
    }
    fn host_addr(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, (4 * i + 1) as u8)
    }
    fn node_addr(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, (4 * i + 2) as u8)
    }
    /// Where node `i` is reached by the other nodes (the bridge network).
    fn peer_addr(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 1, (i + 1) as u8)
    }
    fn bridge_ns(&self) -> String {
        format!("fxn{}br", self.tag)
    }

    fn create(nodes: usize) -> Net {
        let tag = format!("{:04x}", std::process::id() & 0xffff);
        let net = Net { tag, nodes };
        for i in 0..nodes {
            let (ns, host) = (net.ns(i), net.host_link(i));
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&[
                "addr",
                "add",
                &format!("{}/30", Net::host_addr(i)),
                "dev",
                &host,
            ]);
            ip(&["link", "set", &host, "up"]);
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &ns, "ip"];
                all.extend_from_slice(args);
                ip(&all);
            };
            inside(&[
                "addr",
                "add",
                &format!("{}/30", Net::node_addr(i)),
                "dev",
                "eth0",
            ]);
            inside(&["link", "set", "eth0", "up"]);
            inside(&["link", "set", "lo", "up"]);
        }
        // The nodes' own network: one bridge, a veth from each node onto it.
        let br = net.bridge_ns();
        ip(&["netns", "add", &br]);
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        for i in 0..nodes {
            let port = format!("fxn{}p{i}", net.tag);
            ip(&[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "peer0",
                "netns",
                &net.ns(i),
            ]);
            ip(&["link", "set", &port, "netns", &br]);
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"]);
            let addr = format!("{}/24", Net::peer_addr(i));
            ip(&["-n", &net.ns(i), "addr", "add", &addr, "dev", "peer0"]);
            ip(&["-n", &net.ns(i), "link", "set", "peer0", "up"]);
        }
        net
    }

    fn set_link(&self, i: usize, up: bool) {
        ip(&[
            "link",
            "set",
            &self.host_link(i),
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let _ = Command::new("ip")
                .args(["link", "del", &self.host_link(i)])
                .status();
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(i)])
                .status();
        }
        // Its veth ends go with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.bridge_ns()])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One fcx node in namespace `ns`; stopped and cleaned up on drop.
struct Node {
    name: &'static str,
    ns: String,
    child: Option<Child>,
    data_dir: tempfile::TempDir,
    run_dir: PathBuf,
    args: Vec<String>,
}

/// Where the test's clients reach a node (inside its namespace).
const API: &str = "127.0.0.1:9100";
/// What a node listens on: loopback in its namespace (the test's clients are there); a
/// [`Relay`] carries the node's bridge address to it for the other nodes.
const LISTEN: &str = API;

/// Carries TCP connections to `peer_addr(i):9100` in node `i`'s namespace to the node's
/// loopback listener, standing for a node listening on the address it advertises (as it
/// does with `--auth signature`). Stopped on drop.
struct Relay {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(ns: &str, from: SocketAddr) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = PathBuf::from("/run/netns").join(ns);
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let listener = std::net::TcpListener::bind(from).unwrap();
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            let to: SocketAddr = API.parse().unwrap();
            while !stopped.load(Ordering::Relaxed) {
                let Ok((inbound, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = inbound.set_nonblocking(false);
                // Threads made here are in the namespace too (setns is per thread, inherited).
                std::thread::spawn(move || {
                    let Ok(outbound) = std::net::TcpStream::connect(to) else {
                        return;
                    };
                    let pipe = |mut a: std::net::TcpStream, mut b: std::net::TcpStream| {
                        let _ = std::io::copy(&mut a, &mut b);
                        let _ = b.shutdown(std::net::Shutdown::Write);
                    };
                    let (i2, o2) = (inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
                    let back = std::thread::spawn(move || pipe(o2, i2));
                    pipe(inbound, outbound);
                    let _ = back.join();
                });
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("relay listening");
        Relay {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The admin AccessKey every node imports (FCX_ADMIN_KEY_ID/SECRET, as a Kubernetes Secret
/// would hand it): the nodes check signatures, and every request of the test is signed.
fn admin_key() -> support::Credentials {
    support::Credentials {
        id: "FCXCLUSTERADMIN".into(),
        secret: "cluster-e2e-secret-2b7f0c1d".into(),
    }
}

/// Signature headers of `method path?query` with `body`, for any node (the test reaches each
/// at [`API`] in its own namespace, so one signed request is valid on each of them).
fn signed_headers(method: &str, path: &str, body: &[u8]) -> Vec<(String, String)> {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    support::sign::headers(&admin_key(), API, method, path, query, body)
}

impl Node {
    /// Starts a node whose data dir holds `secret` as its secret.key (every node of a
    /// cluster holds the same one).
    fn start(name: &'static str, ns: String, args: Vec<String>, secret: &[u8; 32]) -> Node {
        let data_dir = tempfile::Builder::new()
            .prefix("fcx-e2e-node-")
            .tempdir()
            .unwrap();
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(data_dir.path().join("secret.key"))
                .unwrap();
            f.write_all(secret).unwrap();
        }
        let mut node = Node {
            name,
            ns,
            child: None,
            data_dir,
            run_dir: PathBuf::new(),
            args,
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(support::fcx_bin())
            .args([
                "server",
                "--listen",
                LISTEN,
                "--auth",
                "signature",
                "--data-dir",
            ])
            .arg(self.data_dir.path())
            .args(&self.args)
            .env("FCX_ADMIN_KEY_ID", admin_key().id)
            .env("FCX_ADMIN_KEY_SECRET", admin_key().secret)
            .env(
                "FCX_LOG",
                std::env::var("FCX_TEST_NODE_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fcx server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let line = lines.next().and_then(Result::ok).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("node {} printed no startup line", self.name)
        });
        std::thread::spawn(move || for _ in lines.by_ref() {});
        self.run_dir = line
            .split("run dir ")
            .nth(1)
            .map(|rest| PathBuf::from(rest.trim_end_matches(')')))
            .unwrap_or_else(|| panic!("startup line lacks the run dir: {line}"));
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A request from a thread inside the node's namespace, signed with the admin key.
    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<http::Response> {
        let signed = signed_headers(method, path, body);
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.extend(signed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        self.send(method, path, &all, body)
    }

    /// Sends exactly these headers (a captured signed request, replayed).
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<http::Response> {
        let ns = PathBuf::from("/run/netns").join(&self.ns);
        let (method, path, body) = (method.to_owned(), path.to_owned(), body.to_vec());
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&ns)?;
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let addr: SocketAddr = API.parse().unwrap();
            http::try_request(addr, &method, &path, &h, &body)
        })
        .join()
        .expect("client thread")
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> http::Response {
        self.try_request(method, path, &[("content-type", "application/json")], body)
            .unwrap_or_else(|e| panic!("node {}: {e}", self.name))
    }

    fn invoke(&self, function: &str, body: &[u8]) -> http::Response {
        self.request(
            "POST",
            &format!("/2023-03-30/functions/{function}/invocations"),
            body,
        )
    }

    /// ListInstances through this node: the instances of every live node.
    fn list_instances(&self, function: &str) -> http::Response {
        self.request(
            "GET",
            &format!("/2023-03-30/functions/{function}/instances"),
            b"",
        )
    }

    /// How many instances of `function` ListInstances through this node shows on each node.
    fn instances_by_node(&self, function: &str) -> HashMap<String, usize> {
        let r = self.list_instances(function);
        assert_eq!(r.status, 200, "node {}: {}", self.name, r.text());
        let mut by_node = HashMap::new();
        for i in r.json()["instances"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let node = i["nodeId"].as_str().unwrap_or_else(|| panic!("{i}"));
            *by_node.entry(node.to_owned()).or_insert(0) += 1;
        }
        by_node
    }

    /// The instances of `function` this node runs (as it lists them).
    fn instances(&self, function: &str) -> usize {
        let id = format!("node-{}", self.name);
        self.instances_by_node(function)
            .get(&id)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            procs::terminate(child.id(), Duration::from_secs(10));
        }
        self.kill9();
        for pid in procs::under(&self.run_dir) {
            procs::kill(pid);
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
        procs::remove_cgroups(&self.run_dir);
        procs::remove_egress(&self.run_dir);
    }
}

/// Polls `cond` every 100 ms until it holds or `limit` passes; returns the time it took.
fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn function(name: &str, env: serde_json::Value) -> serde_json::Value {
    let mut f = support::testfn_function(name, env);
    f["internetAccess"] = json!(false);
    f
}

/// The `triggerTime`s of the fires recorded in `path` (the test function's TESTFN_BODIES
/// lines: request id, then the event).
fn fire_times(path: &std::path::Path) -> Vec<chrono::DateTime<chrono::Utc>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (_, body) = l.split_once(' ')?;
            let event: serde_json::Value = serde_json::from_str(body).ok()?;
            let time = chrono::DateTime::parse_from_rfc3339(event["triggerTime"].as_str()?).ok()?;
            Some(time.with_timezone(&chrono::Utc))
        })
        .collect()
}

/// A timer trigger created through b, on a function created through a: over a 5-second
/// window the cluster fires 5 times (±1, as on one node), each tick once, though all three
/// nodes run the schedule (they claim each tick in `timer_ticks`).
fn timer_fires_once_per_tick(nodes: &[Node], db: &TestDatabase) {
    let scratch = support::scratch_dir("timer");
    let record = scratch.path().join("fires");
    let ticker = function(
        "ticker",
        json!({"TESTFN_BODIES": record.display().to_string()}),
    );
    let r = nodes[0].request(
        "POST",
        "/2023-03-30/functions",
        ticker.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for n in &nodes[1..] {
        assert!(
            within(PROPAGATION_BOUND, || n.invoke("ticker", b"echo:ok").status
                == 200)
            .is_some()
        );
    }
    let config = json!({"cronExpression": "@every 1s", "payload": "tick", "enable": true});
    let trigger = json!({
        "triggerName": "tick", "triggerType": "timer", "triggerConfig": config.to_string()
    });
    let r = nodes[1].request(
        "POST",
        "/2023-03-30/functions/ticker/triggers",
        trigger.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "CreateTrigger: {}", r.text());
    // Every node runs the schedule once the trigger has reached it: start counting after
    // that, one tick after the first fire.
    std::thread::sleep(PROPAGATION_BOUND);
    let first = within(Duration::from_secs(30), || !fire_times(&record).is_empty());
    assert!(
        first.is_some(),
        "the timer never fired; its async tasks: {:?}; recorded: {:?}",
        db.psql("SELECT status, attempts, error, origin FROM async_tasks LIMIT 5"),
        std::fs::read_to_string(&record)
    );
    let start = *fire_times(&record).iter().max().unwrap();
    let (from, to) = (
        start + chrono::Duration::seconds(1),
        start + chrono::Duration::seconds(6),
    );
    let done = within(Duration::from_secs(30), || {
        fire_times(&record).iter().any(|t| *t >= to)
    });
    assert!(done.is_some(), "no fire at or after {to}");
    // A fire still queued for the window's last tick has had a second to run.
    std::thread::sleep(Duration::from_secs(1));
    let times = fire_times(&record);
    let window: Vec<_> = times.iter().filter(|t| **t >= from && **t < to).collect();
    let mut distinct = window.clone();
    distinct.sort();
    distinct.dedup();
    eprintln!(
        "timer @every 1s on three nodes: {} fires in a 5 s window, {} distinct ticks",
        window.len(),
        distinct.len()
    );
    assert_eq!(
        window.len(),
        distinct.len(),
        "a tick fired more than once: {window:?}"
    );
    assert!(
        (4..=6).contains(&window.len()),
        "{} fires in a 5 s window of @every 1s on three nodes: {window:?}",
        window.len()
    );
    // Gone, and its function too: nothing fires into the later cases.
    let r = nodes[2].request("DELETE", "/2023-03-30/functions/ticker/triggers/tick", b"");
    assert_eq!(r.status, 204, "{}", r.text());
    let r = nodes[2].request("DELETE", "/2023-03-30/functions/ticker", b"");
    assert_eq!(r.status, 204, "{}", r.text());
}

/// A signed request, captured and sent again: refused by the node that accepted it and by
/// the others (the nonce is in the shared store), with FC's 403 SignatureNotMatch.
fn replayed_requests_are_refused_by_every_node(nodes: &[Node]) {
    let path = "/2023-03-30/functions?limit=1";
    let captured = signed_headers("GET", path, b"");
    let headers: Vec<(&str, &str)> = captured
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let first = nodes[1].send("GET", path, &headers, b"").unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    for n in [&nodes[1], &nodes[2], &nodes[0]] {
        let replay = n.send("GET", path, &headers, b"").unwrap();
        assert_eq!(
            replay.status,
            403,
            "replayed to node {}: {}",
            n.name,
            replay.text()
        );
        let body = replay.json();
        assert_eq!(body["Code"], "SignatureNotMatch", "{}", replay.text());
        assert!(
            body["Message"]
                .as_str()
                .unwrap_or("")
                .contains("already used"),
            "{}",
            replay.text()
        );
    }
    // A request signed afresh (a new nonce) is served by every node.
    for n in nodes {
        let r = n.request("GET", path, b"");
        assert_eq!(r.status, 200, "node {}: {}", n.name, r.text());
    }
}

/// With `--cluster-max-instances` N, parallel requests over the three nodes (a function of
/// one request per instance, each holding its instance) never hold more than N instances
/// at once (the documented bound while the database is reachable: none), and the excess
/// gets FC's throttling error (429 ResourceExhausted) naming the limit (a node out of its
/// share forwards first, `--forward`, to a node that had room; that one refuses if it has
/// none left).
fn instance_cap_holds_across_nodes(nodes: &[Node], db: &TestDatabase) {
    let cap = CLUSTER_MAX_INSTANCES;
    let hold_dir = support::scratch_dir("cap");
    let mut f = function("capped", json!({}));
    f["timeout"] = json!(30);
    f["instanceConcurrency"] = json!(1);
    let r = nodes[0].request("POST", "/2023-03-30/functions", f.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    // Served, not only readable (GetFunction reads the shared store, which a node may
    // answer from before it has deployed the function: its invocations would be 404s).
    for n in &nodes[1..] {
        assert!(
            within(PROPAGATION_BOUND, || n.invoke("capped", b"echo:ok").status
                == 200)
            .is_some(),
            "node {} does not serve capped",
            n.name
        );
    }
    // More than any node's share on every node (a also has its --max-instances 8).
    let requests = cap * 3 / 2;
    let body = format!("hold:{}:2000", hold_dir.path().display());
    let results: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..requests)
            .map(|i| {
                let body = body.clone();
                s.spawn(move || {
                    let r = nodes[i % 3].invoke("capped", body.as_bytes());
                    (r.status, r.text())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let shares: u32 = db
        .psql("SELECT coalesce(sum(share), 0) FROM limit_shares WHERE scope = '*instances'")
        .unwrap()
        .parse()
        .unwrap();
    let held: Vec<usize> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, t)| {
            t.trim_start_matches("holding ")
                .parse()
                .unwrap_or_else(|_| panic!("{t}"))
        })
        .collect();
    let throttled: Vec<&String> = results
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, t)| t)
        .collect();
    eprintln!(
        "cluster instance cap {cap}: {} ran (most at once {:?}), {} throttled, shares {shares}",
        held.len(),
        held.iter().max(),
        throttled.len()
    );
    assert!(!held.is_empty(), "{results:?}");
    assert_eq!(held.len() + throttled.len(), requests, "{results:?}");
    assert!(
        *held.iter().max().unwrap() <= cap,
        "more than {cap} instances held at once: {held:?}"
    );
    assert!(shares as usize <= cap, "recorded shares {shares} > {cap}");
    let capped_by_the_cluster = throttled
        .iter()
        .filter(|t| t.contains("ResourceExhausted") && t.contains("clusterMaxInstances"))
        .count();
    assert!(
        capped_by_the_cluster > 0,
        "no refusal names the cluster's cap: {throttled:?}"
    );
    // Its instances go, so the later cases have the room.
    let r = nodes[0].request("DELETE", "/2023-03-30/functions/capped", b"");
    assert_eq!(r.status, 204, "{}", r.text());
}

/// The nodes' common secret.key (fixed: the test is deterministic).
const SECRET: [u8; 32] = *b"e2e-cluster-secret-key-32-bytes!";
/// `--max-instances` of node a.
const A_MAX_INSTANCES: usize = 8;

/// Node a's free instances as its last heartbeat recorded them.
fn free_on_a(db: &TestDatabase) -> String {
    db.psql("SELECT free_instances FROM nodes WHERE id = 'node-a'")
        .unwrap()
}

/// Node a's share of the cluster's instance cap as its last lease recorded it (0: none).
fn share_of_a(db: &TestDatabase) -> usize {
    db.psql("SELECT share FROM limit_shares WHERE scope = '*instances' AND node = 'node-a'")
        .unwrap()
        .parse()
        .unwrap_or(0)
}

/// Every node's row of the cluster's instance cap, for failure messages.
fn instance_shares(db: &TestDatabase) -> String {
    db.psql("SELECT node, want, share FROM limit_shares WHERE scope = '*instances' ORDER BY node")
        .unwrap_or_default()
}

/// ListInstances through b shows the instances running on a and c (b runs none). Then a's
/// instances are all busy and it can start no more (`--max-instances`): a request to a is
/// served by b or c (`--forward`), also one carrying a client's forged node mark (stripped);
/// a request another node forwarded is not forwarded again (a answers its own 429).
fn list_and_forward(nodes: &[Node], db: &TestDatabase) {
    // The earlier cases' instances on a are gone (stopping ones hold their instance slot
    // until they end): else a heartbeat from before spread's start could show the free
    // count expected below while one of them still holds a slot the holders need.
    let all = A_MAX_INSTANCES.to_string();
    assert!(
        within(Duration::from_secs(20), || free_on_a(db) == all).is_some(),
        "a's free instances: {}",
        free_on_a(db)
    );
    let r = nodes[0].request(
        "POST",
        "/2023-03-30/functions",
        function("spread", json!({})).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(nodes[0].invoke("spread", b"echo:a").text(), "a");
    let c = within(PROPAGATION_BOUND, || {
        nodes[2].invoke("spread", b"echo:c").status == 200
    });
    assert!(c.is_some(), "c does not serve spread");
    let listed = within(PROPAGATION_BOUND, || {
        nodes[1].list_instances("spread").status == 200
    });
    assert!(
        listed.is_some(),
        "{}",
        nodes[1].list_instances("spread").text()
    );
    let r = nodes[1].list_instances("spread");
    assert_eq!(r.header("x-fcx-nodes-missing"), None, "{}", r.text());
    let by_node = nodes[1].instances_by_node("spread");
    assert_eq!(
        by_node,
        HashMap::from([("node-a".to_string(), 1), ("node-c".to_string(), 1)]),
        "ListInstances through b: {}",
        r.text()
    );
    let ids: std::collections::HashSet<String> = r.json()["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instanceId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{}", r.text());
    // Each node answers the same (a lists c's, c lists a's).
    assert_eq!(nodes[0].instances_by_node("spread"), by_node);
    assert_eq!(nodes[2].instances_by_node("spread"), by_node);

    // a runs spread's one instance and nothing else (the earlier cases' are gone), and its
    // share of the cluster's cap (an idle split of 10) covers its --max-instances: the
    // holders below fill a by --max-instances alone. If one is forwarded all the same, its
    // message shows the shares.
    let one = (A_MAX_INSTANCES - 1).to_string();
    assert!(
        within(Duration::from_secs(10), || free_on_a(db) == one
            && share_of_a(db) >= A_MAX_INSTANCES)
        .is_some(),
        "a's free instances: {}; shares of the cluster's instances: {}",
        free_on_a(db),
        instance_shares(db)
    );
    // a's instances all busy: A_MAX_INSTANCES requests holding one each.
    let hold = support::scratch_dir("fill");
    let held_body = format!("hold:{}:15000", hold.path().display());
    let markers = || std::fs::read_dir(hold.path()).map_or(0, |d| d.count());
    std::thread::scope(|s| {
        let holders: Vec<_> = (0..A_MAX_INSTANCES)
            .map(|_| s.spawn(|| nodes[0].invoke("spread", held_body.as_bytes())))
            .collect();
        let full = within(Duration::from_secs(12), || {
            markers() == A_MAX_INSTANCES && free_on_a(db) == "0"
        });
        assert!(
            full.is_some(),
            "{} of {A_MAX_INSTANCES} holding, a's free instances {}",
            markers(),
            free_on_a(db)
        );
        // Served elsewhere, said so.
        let r = nodes[0].invoke("spread", b"echo:elsewhere");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "elsewhere");
        let to = r.header("x-fcx-forwarded-to").map(str::to_owned);
        assert!(
            matches!(to.as_deref(), Some("node-b" | "node-c")),
            "forwarded to {to:?}"
        );
        // A client's own mark means nothing: stripped, the request is forwarded as any.
        let r = nodes[0]
            .try_request(
                "POST",
                "/2023-03-30/functions/spread/invocations",
                &[("x-fcx-node-from", "node-b"), ("x-fcx-node-auth", "00")],
                b"echo:forged",
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("x-fcx-forwarded-to").is_some());
        // Signed as b's forward (the nodes' key from the shared secret.key): a has no room
        // and does not send it on a second hop.
        let key = fcx_store::derived_key(nodes[1].data_dir.path(), fcx_control::peers::KEY_PURPOSE)
            .unwrap();
        let uri: ::http::Uri = "/2023-03-30/functions/spread/invocations".parse().unwrap();
        let signed = fcx_gateway::peer::sign(
            &key,
            "node-b",
            &::http::Method::POST,
            &uri,
            &::http::HeaderMap::new(),
            b"echo:twice",
        );
        let headers: Vec<(&str, &str)> = signed
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        let r = nodes[0]
            .try_request("POST", uri.path(), &headers, b"echo:twice")
            .unwrap();
        assert_eq!(
            r.status,
            429,
            "a forwarded request was served: {}",
            r.text()
        );
        assert!(r.text().contains("--max-instances"), "{}", r.text());
        assert_eq!(r.header("x-fcx-forwarded-to"), None);
        for h in holders {
            let r = h.join().unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(
                r.header("x-fcx-forwarded-to"),
                None,
                "a holder was forwarded; shares of the cluster's instances: {}; a's free \
                 instances {}",
                instance_shares(db),
                free_on_a(db)
            );
        }
    });
    // Gone, its instances too: a has its room back for the later cases.
    let r = nodes[0].request("DELETE", "/2023-03-30/functions/spread", b"");
    assert_eq!(r.status, 204, "{}", r.text());
}

fn three_nodes() {
    let net = Net::create(3);
    let hosts: Vec<Ipv4Addr> = (0..3).map(Net::host_addr).collect();
    let server = Arc::new(PgServer::start_on(&hosts, Some("198.18.0.0/24")));
    let db = TestDatabase::create_on("cluster", Some(Arc::clone(&server)));
    let url_for = |i: usize| {
        format!(
            "postgres://postgres@{}:{}/{}",
            Net::host_addr(i),
            server.port(),
            db.name()
        )
    };
    let names = ["a", "b", "c"];
    let _relays: Vec<Relay> = (0..3)
        .map(|i| Relay::start(&net.ns(i), SocketAddr::from((Net::peer_addr(i), 9100))))
        .collect();
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let args = vec![
                "--store".to_string(),
                url_for(i),
                "--node-id".into(),
                format!("node-{}", names[i]),
                "--advertise".into(),
                format!("{}:9100", Net::peer_addr(i)),
                "--forward".into(),
                "--sync-interval".into(),
                SYNC_INTERVAL_SECS.to_string(),
                "--egress-pool".into(),
                "0".into(),
                "--async-workers".into(),
                "8".into(),
                "--oci-runtime".into(),
                "none".into(),
                "--cluster-max-instances".into(),
                CLUSTER_MAX_INSTANCES.to_string(),
            ];
            let mut args = args;
            if i == 0 {
                // Small enough that the forward case fills it; the other cases fit.
                args.extend(["--max-instances".into(), A_MAX_INSTANCES.to_string()]);
            }
            Node::start(names[i], net.ns(i), args, &SECRET)
        })
        .collect();
    // Every node is in the nodes table with its own address.
    assert!(
        within(Duration::from_secs(10), || db
            .psql("SELECT count(*) FROM nodes")
            .unwrap()
            == "3")
        .is_some(),
        "nodes: {:?}",
        db.psql("SELECT id, address FROM nodes")
    );
    let addresses = db.psql("SELECT address FROM nodes ORDER BY id").unwrap();
    assert_eq!(
        addresses,
        "198.18.1.1:9100\n198.18.1.2:9100\n198.18.1.3:9100"
    );

    // Every node holds a share of the instance cap once the first node to start has given
    // back what it took alone (a lease or two), and the shares never add up past the cap.
    let spread = within(Duration::from_secs(20), || {
        db.psql(
            "SELECT count(*) FILTER (WHERE share > 0) || ' ' || sum(share) FROM limit_shares \
             WHERE scope = '*instances'",
        )
        .unwrap()
            == format!("3 {CLUSTER_MAX_INSTANCES}")
    });
    assert!(
        spread.is_some(),
        "instance cap shares: {:?}",
        db.psql("SELECT node, want, share FROM limit_shares")
    );

    // 0. The nonces are shared: a signed request accepted by B is refused when replayed to
    // B, C or A, with FC's error.
    replayed_requests_are_refused_by_every_node(&nodes);

    // 1. Created through A, invoked through B and C.
    let r = nodes[0].request(
        "POST",
        "/2023-03-30/functions",
        function("echo", json!({"V": "1"})).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for n in &nodes[1..] {
        let ok = within(PROPAGATION_BOUND, || {
            n.invoke("echo", b"echo:hi").status == 200
        });
        assert!(
            ok.is_some(),
            "node {} does not serve a function created on a",
            n.name
        );
        assert_eq!(n.invoke("echo", b"echo:hi").text(), "hi");
    }
    // An update through B reaches A and C within the bound.
    let r = nodes[1].request(
        "PUT",
        "/2023-03-30/functions/echo",
        json!({"environmentVariables": {"V": "2"}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for n in [&nodes[0], &nodes[2]] {
        let took = within(PROPAGATION_BOUND, || {
            n.invoke("echo", b"env").text().contains("V=2")
        });
        assert!(
            took.is_some(),
            "node {} still serves the old LATEST after {PROPAGATION_BOUND:?}",
            n.name
        );
        eprintln!("update reached node {} after {:?}", n.name, took.unwrap());
    }
    // A delete through C: A and B stop serving it within the bound.
    let r = nodes[2].request("DELETE", "/2023-03-30/functions/echo", b"");
    assert_eq!(r.status, 204, "{}", r.text());
    for n in &nodes[..2] {
        let took = within(PROPAGATION_BOUND, || {
            n.invoke("echo", b"echo:x").status == 404
        });
        assert!(
            took.is_some(),
            "node {} still serves a deleted function",
            n.name
        );
    }

    // 1a. ListInstances through any node answers for all; a node without capacity
    // forwards, once.
    list_and_forward(&nodes, &db);

    // 1b. A timer at `@every 1s` on three nodes fires once per tick, not three times.
    timer_fires_once_per_tick(&nodes, &db);

    // 2. reservedConcurrency 4 holds across the nodes: 40 parallel requests.
    let hold_dir = support::scratch_dir("hold");
    let mut limited = function("limited", json!({}));
    limited["timeout"] = json!(30);
    assert_eq!(
        nodes[0]
            .request(
                "POST",
                "/2023-03-30/functions",
                limited.to_string().as_bytes()
            )
            .status,
        200
    );
    let r = nodes[0].request(
        "PUT",
        "/2023-03-30/functions/limited/concurrency",
        json!({"reservedConcurrency": 4}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The three nodes hold shares adding up to the limit (never more).
    let settled = within(Duration::from_secs(20), || {
        db.psql("SELECT count(*) || ' ' || sum(share) FROM limit_shares WHERE scope = 'limited'")
            .unwrap()
            == "3 4"
    });
    assert!(
        settled.is_some(),
        "shares: {:?}",
        db.psql("SELECT node, want, share FROM limit_shares")
    );
    let body = format!("hold:{}:1500", hold_dir.path().display());
    let nodes_ref = &nodes;
    let results: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let body = body.clone();
                s.spawn(move || {
                    let r = nodes_ref[i % 3].invoke("limited", body.as_bytes());
                    (r.status, r.text())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let held: Vec<u32> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, t)| {
            t.trim_start_matches("holding ")
                .parse()
                .unwrap_or_else(|_| panic!("{t}"))
        })
        .collect();
    let throttled = results.iter().filter(|(s, _)| *s == 429).count();
    eprintln!(
        "reservedConcurrency 4: {} ran (most at once {:?}), {throttled} throttled",
        held.len(),
        held.iter().max()
    );
    assert!(!held.is_empty(), "{results:?}");
    assert_eq!(held.len() + throttled, 40, "{results:?}");
    assert!(
        *held.iter().max().unwrap() <= 4,
        "more than 4 in flight at once: {held:?}"
    );

    // 2b. The cluster's instance cap holds across the nodes.
    let r = nodes[0].request("DELETE", "/2023-03-30/functions/limited", b"");
    assert_eq!(r.status, 204, "{}", r.text());
    instance_cap_holds_across_nodes(&nodes, &db);

    // 3. Minimum instances spread over the nodes: 3 cluster-wide, one each.
    assert_eq!(
        nodes[0]
            .request(
                "POST",
                "/2023-03-30/functions",
                function("warm", json!({})).to_string().as_bytes()
            )
            .status,
        200
    );
    let r = nodes[0].request(
        "PUT",
        "/2023-03-30/functions/warm/scaling-config",
        json!({"minInstances": 3}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let total = |ns: &[Node]| ns.iter().map(|n| n.instances("warm")).sum::<usize>();
    let spread = within(Duration::from_secs(30), || {
        nodes.iter().all(|n| n.instances("warm") == 1)
    });
    assert!(
        spread.is_some(),
        "instances per node: {:?}",
        nodes
            .iter()
            .map(|n| n.instances("warm"))
            .collect::<Vec<_>>()
    );

    // 4. 2,000 async invocations across the nodes; node A is killed with kill -9 mid-run.
    let records = support::scratch_dir("async");
    let record = records.path().join("ran");
    let mut job = function("job", json!({}));
    job["instanceConcurrency"] = json!(8);
    assert_eq!(
        nodes[0]
            .request("POST", "/2023-03-30/functions", job.to_string().as_bytes())
            .status,
        200
    );
    for n in &nodes[1..] {
        assert!(
            within(PROPAGATION_BOUND, || n.invoke("job", b"echo:ok").status
                == 200)
            .is_some()
        );
    }
    let payload = format!("record:{}", record.display());
    let mut accepted: Vec<String> = Vec::new();
    let total_jobs = 2000;
    let kill_at = 700;
    for i in 0..total_jobs {
        if i == kill_at {
            nodes[0].kill9();
        }
        let n = &nodes[i % 3];
        if i % 3 == 0 && i >= kill_at {
            // A is gone: its requests are refused, nothing is accepted there.
            assert!(n
                .try_request(
                    "POST",
                    "/2023-03-30/functions/job/invocations",
                    &[("x-fc-invocation-type", "Async")],
                    payload.as_bytes()
                )
                .is_err());
            continue;
        }
        let r = n.try_request(
            "POST",
            "/2023-03-30/functions/job/invocations",
            &[("x-fc-invocation-type", "Async")],
            payload.as_bytes(),
        );
        let r = r.unwrap_or_else(|e| panic!("enqueue {i} on {}: {e}", n.name));
        assert_eq!(r.status, 202, "{}", r.text());
        accepted.push(r.header("x-fc-request-id").unwrap().to_owned());
    }
    let ran = || -> HashMap<String, usize> {
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        let mut counts = HashMap::new();
        for line in text.lines() {
            *counts.entry(line.to_owned()).or_insert(0) += 1;
        }
        counts
    };
    let all_ran = within(Duration::from_secs(240), || {
        let counts = ran();
        accepted.iter().all(|id| counts.contains_key(id))
    });
    let counts = ran();
    let missing = accepted
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .count();
    assert!(
        all_ran.is_some(),
        "{missing} of {} accepted invocations never ran",
        accepted.len()
    );
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "async: {} accepted, all ran at least once, {duplicates} ran twice or more (node a killed after {kill_at} enqueues)",
        accepted.len()
    );

    // 5. Node loss: the minimum instances come back on the surviving nodes.
    let restored = within(Duration::from_secs(30), || total(&nodes[1..]) == 3);
    assert!(
        restored.is_some(),
        "after a's loss: b {} c {}",
        nodes[1].instances("warm"),
        nodes[2].instances("warm")
    );

    // 5b. ListInstances through b leaves out the dead a's instances within its heartbeat
    // bound (a dead node is one whose heartbeat is older than 4 s, read every second).
    let forgotten = within(Duration::from_secs(10), || {
        !nodes[1].instances_by_node("warm").contains_key("node-a")
    });
    assert!(
        forgotten.is_some(),
        "b still lists a's instances: {:?}",
        nodes[1].instances_by_node("warm")
    );

    // 6. A network cut (c's veth down) degrades c: it stops serving rather than serve what
    // may have changed; b keeps serving. Restored, c serves again.
    net.set_link(2, false);
    let degraded = within(Duration::from_secs(60), || {
        let r = nodes[2].invoke("warm", b"echo:cut");
        r.status == 503 && r.text().contains("NodeOutOfSync")
    });
    assert!(
        degraded.is_some(),
        "c kept serving while cut off: {}",
        nodes[2].invoke("warm", b"echo:cut").text()
    );
    assert_eq!(nodes[1].invoke("warm", b"echo:b").text(), "b");
    net.set_link(2, true);
    let recovered = within(Duration::from_secs(60), || {
        nodes[2].invoke("warm", b"echo:back").status == 200
    });
    assert!(
        recovered.is_some(),
        "c did not recover: {}",
        nodes[2].invoke("warm", b"echo:back").text()
    );
    drop(nodes.drain(..));
}
