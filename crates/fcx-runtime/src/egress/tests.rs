//! veth egress on the real kernel: a namespace gets its link, address and route, the lease
//! and the link go with it, and removal leaves no link, table or lease. Needs root and nft.

use std::time::{Duration, Instant};

use super::*;

fn can_run() -> bool {
    let ok = crate::sys::is_root() && network::nft_binary().is_ok();
    if !ok {
        eprintln!("skipped: needs root and nft (package nftables)");
    }
    ok
}

fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Settings of a test's own veth network: a fresh prefix, `range` (one per test, so it never
/// meets a running server's block or another test's), 4 instances, and no uplinks (servers
/// may rely on the host's uplinks meanwhile: the tests leave them alone).
fn test_settings(state_dir: &std::path::Path, range: &str) -> VethSettings {
    let hex = &uuid::Uuid::new_v4().simple().to_string()[..8];
    VethSettings {
        prefix: format!("fcx-{hex}"),
        range: range.parse().unwrap(),
        capacity: 4,
        state_dir: state_dir.to_owned(),
        uplinks: Some(Vec::new()),
    }
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

#[test]
fn veth_attach_configures_the_namespace_and_everything_goes_on_removal() {
    if !can_run() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let settings = test_settings(state.path(), "10.250.128.0/20");
    let net = Arc::new(VethNetwork::setup(&settings).unwrap());
    let table = network::table_name(&settings.prefix);
    let nft = network::nft_binary().unwrap();
    let listed = std::process::Command::new(&nft)
        .args(["list", "table", "inet", &table])
        .output()
        .unwrap();
    assert!(listed.status.success(), "table {table} missing");
    let leases = || {
        std::fs::read_dir(state.path())
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "lease"))
            .count()
    };
    assert_eq!(leases(), 1);

    let netns = crate::netns::NetNs::create("veth-test").unwrap();
    let fd = netns.fd().try_clone_to_owned().unwrap();
    // attach joins the namespace: on its own thread, as in PendingEgress.
    let for_thread = Arc::clone(&net);
    let link = crate::sys::spawn_namespace_thread(std::thread::Builder::new(), move |own| {
        veth::attach(own, &for_thread, fd)
    })
    .unwrap()
    .join()
    .unwrap()
    .unwrap();
    let host_end = net.link_name(2);
    assert!(link_exists(&host_end), "{host_end} missing");
    let task = netns.path().parent().unwrap().parent().unwrap().to_owned();
    let routes = std::fs::read_to_string(task.join("net/route")).unwrap();
    assert!(
        routes.lines().any(|l| l.starts_with("eth0\t00000000")),
        "no default route in the namespace: {routes}"
    );
    assert_eq!(link.address(), net.address(2));
    assert!(net.block().contains(&link.address()));

    // The namespace going takes the pair with it; the slot comes back.
    drop(netns);
    drop(link);
    assert!(
        eventually(|| !link_exists(&host_end)),
        "{host_end} outlived its namespace"
    );

    net.remove();
    let listed = std::process::Command::new(&nft)
        .args(["list", "table", "inet", &table])
        .output()
        .unwrap();
    assert!(!listed.status.success(), "table {table} left behind");
    assert_eq!(leases(), 0);
}

#[test]
fn the_pool_hands_out_configured_namespaces_and_refills() {
    if !can_run() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let settings = test_settings(state.path(), "10.250.144.0/20");
    let net = Arc::new(VethNetwork::setup(&settings).unwrap());
    let pool = pool::Pool::start(Arc::clone(&net), 2);
    let take = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(entry) = pool.take() {
                return entry;
            }
            assert!(Instant::now() < deadline, "the pool stayed empty");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let (a, link_a) = take();
    let (b, link_b) = take();
    assert_ne!(link_a.address(), link_b.address());
    for ns in [&a, &b] {
        let task = ns.path().parent().unwrap().parent().unwrap().to_owned();
        let routes = std::fs::read_to_string(task.join("net/route")).unwrap();
        assert!(
            routes.lines().any(|l| l.starts_with("eth0\t00000000")),
            "{routes}"
        );
    }
    // Taking made room: it fills up again.
    let (c, _link_c) = take();
    let prefix = network::link_prefix(&settings.prefix);
    pool.stop();
    drop((a, b, c, link_a, link_b));
    let gone = eventually(|| {
        std::fs::read_dir("/sys/class/net")
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with(&prefix))
    });
    net.remove();
    assert!(gone, "links {prefix}* outlived the pool and its namespaces");
}
