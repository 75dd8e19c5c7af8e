//! Outbound networking (`internetAccess`) through the real server, in both egress modes
//! (`--egress veth` and `--egress pasta`), on real namespaces, veths and nftables: with it an
//! instance reaches a target outside its namespace over TCP and UDP, seen there from the
//! host's address (NAT); without it, nothing beyond its loopback. Either way it reaches
//! neither the host's loopback, nor the host's other addresses (its primary one, one on a
//! test veth), nor another instance, nor the link-local (metadata) range; nothing connects
//! in; and a server killed with SIGKILL leaves nothing (pasta, link, table, lease) once it
//! has restarted and stopped.
//!
//! A `harness = false` target (see `fcx_testkit::skip`): on a host without root, pasta or nft
//! the tests are reported `ignored (needs ...)`, not passed.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use fcx_testkit::egress::{self, EgressTarget, HostServer, Range, GREETING};
use fcx_testkit::skip::{self, Needs};
use serde_json::json;
use support::procs::eventually;
use support::{Options, Server};

const MODES: [&str; 2] = ["veth", "pasta"];

fn main() -> std::process::ExitCode {
    // Root (namespaces), Debian's pasta, and nft (veth egress and pasta's guard).
    let needs = Needs::new()
        .root()
        .executable("/usr/bin/pasta", "package passt")
        .check(
            "nft (package nftables)",
            fcx_runtime::egress::network::nft_binary().is_ok(),
        );
    skip::run(vec![
        skip::test(
            "instances_reach_outside_through_nat_only_and_nothing_of_the_host_or_each_other",
            &needs,
            instances_reach_outside_through_nat_only_and_nothing_of_the_host_or_each_other,
        ),
        skip::test(
            "a_killed_server_leaves_nothing_after_restart_and_a_stopped_one_nothing_at_all",
            &needs,
            a_killed_server_leaves_nothing_after_restart_and_a_stopped_one_nothing_at_all,
        ),
    ])
}

fn server(mode: &str) -> Server {
    Server::start_with(Options::with_args(&["--egress", mode]))
}

/// A test-function body with `internetAccess` set.
fn function(name: &str, internet: bool) -> serde_json::Value {
    let mut body = support::testfn_function(name, json!({}));
    body["internetAccess"] = json!(internet);
    body
}

/// The server's prefix (`fcx-<8 hex>`, its run dir's name).
fn prefix(server: &Server) -> String {
    server
        .run_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The host ends of the server's veths: (ifindex, name).
fn links(server: &Server) -> Vec<(u32, String)> {
    let want = prefix(server).replace('-', "");
    std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let index = std::fs::read_to_string(e.path().join("ifindex")).ok()?;
            Some((index.trim().parse().ok()?, name))
        })
        .filter(|(_, name)| name.starts_with(&want))
        .collect()
}

/// The link the host routes `ip` through (`/proc/net/route`), if any.
fn link_of(ip: std::net::IpAddr) -> Option<String> {
    let std::net::IpAddr::V4(ip) = ip else {
        return None;
    };
    let hex = format!("{:08X}", u32::from_le_bytes(ip.octets()));
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    routes.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.len() > 7 && cols[1] == hex && cols[7] == "FFFFFFFF").then(|| cols[0].to_owned())
    })
}

fn table_exists(server: &Server) -> bool {
    let nft = fcx_runtime::egress::network::nft_binary().unwrap();
    std::process::Command::new(nft)
        .args(["list", "table", "inet", &prefix(server)])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Lease files naming the server.
fn leases(server: &Server) -> usize {
    let me = prefix(server);
    std::fs::read_dir(fcx_runtime::egress::STATE_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.trim() == me))
        .count()
}

/// Kills the pasta processes a test saw if they are still there when it ends, so a failed
/// assertion leaves nothing running.
struct PastaReaper(Vec<u32>);

impl Drop for PastaReaper {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if egress::runs(pid, "pasta") {
                support::procs::kill(pid);
            }
        }
    }
}

/// The pasta processes `server` runs, remembered in `reaper`.
fn pastas_of(server: &Server, reaper: &mut PastaReaper) -> Vec<u32> {
    let pids = egress::children_running(server.pid(), "pasta");
    reaper.0.extend(pids.iter().copied());
    pids
}

fn is_error(server: &Server, name: &str, probe: &str) -> String {
    let r = server.invoke(name, probe.as_bytes());
    assert_eq!(r.status, 200, "{probe}: {}", r.text());
    assert!(
        r.text().starts_with("error: "),
        "{name} ran {probe}: {}",
        r.text()
    );
    r.text()
}

/// Probes that must fail whatever the instance's access: the host's loopback, its API, its
/// primary address and an address on the test's own veth, the link-local target. (Under
/// pasta the primary address is also the instance's own, so it stays inside; the veth's
/// address is the one pasta's guard must refuse.)
fn assert_host_and_metadata_unreachable(
    server: &Server,
    name: &str,
    host_ip: std::net::Ipv4Addr,
    metadata: &EgressTarget,
) {
    let loopback = HostServer::loopback();
    let everywhere = HostServer::every_address();
    is_error(
        server,
        name,
        &format!("connect:127.0.0.1:{}", loopback.port()),
    );
    is_error(server, name, &format!("connect:{}", server.addr));
    let primary = egress::host_primary_address().expect("the host's primary address");
    for addr in [primary, host_ip] {
        is_error(server, name, &format!("tcp:{addr}:{}", everywhere.port()));
        // fcx's API port, on that address.
        is_error(
            server,
            name,
            &format!("connect:{addr}:{}", server.addr.port()),
        );
    }
    // pasta could map the gateway to the host's loopback; it must not.
    if let Some(gateway) = egress::host_gateway() {
        let r = server.invoke(
            name,
            format!("tcp:{gateway}:{}", loopback.port()).as_bytes(),
        );
        assert!(!r.text().contains("host-loopback"), "{}", r.text());
    }
    is_error(server, name, &format!("tcp:{}", metadata.addr()));
    is_error(server, name, &format!("udp:{}", metadata.addr()));
    assert_eq!(
        loopback.accepted(),
        0,
        "an instance reached the host's loopback"
    );
    assert_eq!(
        everywhere.accepted(),
        0,
        "an instance reached a host address"
    );
    assert_eq!(
        metadata.accepted(),
        0,
        "an instance reached the link-local range"
    );
}

fn instances_reach_outside_through_nat_only_and_nothing_of_the_host_or_each_other() {
    let target = EgressTarget::start();
    let metadata = EgressTarget::start_in(Range::LinkLocal);
    for mode in MODES {
        let server = server(mode);
        let mut reaper = PastaReaper(Vec::new());
        server.create_function(function("online", true));
        server.create_function(function("peer", true));
        server.create_function(function("offline", false));

        let before = target.accepted();
        let tcp = server.invoke("online", format!("tcp:{}", target.addr()).as_bytes());
        assert_eq!(tcp.status, 200, "{mode}: {}", tcp.text());
        assert_eq!(tcp.text(), format!("got: {GREETING}"), "{mode}");
        assert_eq!(target.accepted(), before + 1);
        // Through NAT: the target saw the host's address, not the instance's.
        assert_eq!(
            target.peers().last().copied(),
            Some(target.host_ip().into()),
            "{mode}"
        );
        let udp = server.invoke("online", format!("udp:{}", target.addr()).as_bytes());
        assert_eq!(udp.text(), "got: udp-probe", "{mode}");

        // What the instance's address is depends on the mode: its own in the block (veth),
        // a copy of the host's (pasta).
        let own = server.invoke("online", format!("source:{}", target.addr()).as_bytes());
        let own_ip: std::net::IpAddr = own.text().parse().unwrap_or_else(|_| {
            panic!("{mode}: source: {}", own.text());
        });
        match mode {
            "veth" => {
                // Its own link (from the pool or made for it), named with the server's prefix.
                let link = link_of(own_ip).unwrap_or_default();
                assert!(
                    links(&server).iter().any(|(_, name)| *name == link),
                    "{mode}: {own_ip} routed through {link:?}, not a link of the server: {:?}",
                    links(&server)
                );
                assert!(pastas_of(&server, &mut reaper).is_empty());
                // Nothing connects in: neither from outside (a route to the instance is
                // added in the target's namespace) nor from the host.
                let inside = SocketAddr::new(own_ip, 9000);
                assert!(
                    target.connect_from_outside(inside).is_err(),
                    "reached {inside}"
                );
                assert!(
                    std::net::TcpStream::connect_timeout(&inside, Duration::from_secs(2)).is_err(),
                    "the host reached {inside}"
                );
            }
            _ => {
                // One pasta for the one instance, and it waits for no one: nothing bound
                // inside (the instance's 9000 included) appears on the host.
                let pastas = pastas_of(&server, &mut reaper);
                assert_eq!(pastas.len(), 1, "pasta processes: {pastas:?}");
                let sockets = egress::bound_sockets(pastas[0]);
                assert!(
                    sockets
                        .iter()
                        .all(|s| s.starts_with("udp") && !s.ends_with(":2328")),
                    "{sockets:?}"
                );
            }
        }

        // Another instance (serving on 9000, as the gateway shows) is out of reach. Under
        // pasta every instance has the same copy of the host's address, its own: there is no
        // address of another instance to try.
        let peer = server.invoke("peer", format!("source:{}", target.addr()).as_bytes());
        let peer_ip: std::net::IpAddr = peer.text().parse().expect("peer address");
        if mode == "veth" {
            assert_ne!(peer_ip, own_ip);
            is_error(&server, "online", &format!("tcp:{peer_ip}:9000"));
            is_error(&server, "online", &format!("connect:{peer_ip}:9000"));
        } else {
            assert_eq!(peer_ip, own_ip);
        }

        assert_host_and_metadata_unreachable(&server, "online", target.host_ip(), &metadata);

        // Without internetAccess: loopback only.
        let before = target.accepted();
        is_error(&server, "offline", &format!("tcp:{}", target.addr()));
        is_error(&server, "offline", &format!("udp:{}", target.addr()));
        assert_eq!(target.accepted(), before);
        assert_host_and_metadata_unreachable(&server, "offline", target.host_ip(), &metadata);
        let routes = server.invoke("offline", format!("source:{}", target.addr()).as_bytes());
        assert!(
            routes.text().starts_with("error: "),
            "{mode}: {}",
            routes.text()
        );

        // Deleting the function ends its egress.
        let pastas = pastas_of(&server, &mut reaper);
        let own_links: Vec<String> = [own_ip, peer_ip].into_iter().filter_map(link_of).collect();
        for f in ["online", "peer"] {
            let r = server.request("DELETE", &format!("/2023-03-30/functions/{f}"), &[], b"");
            assert_eq!(r.status, 204, "{}", r.text());
        }
        assert!(
            eventually(Duration::from_secs(10), || {
                let now = links(&server);
                own_links.iter().all(|l| now.iter().all(|(_, n)| n != l))
                    && pastas.iter().all(|p| !egress::runs(*p, "pasta"))
            }),
            "{mode}: egress outlived its deleted functions: links {own_links:?} in {:?}",
            links(&server)
        );
    }
}

fn a_killed_server_leaves_nothing_after_restart_and_a_stopped_one_nothing_at_all() {
    let target = EgressTarget::start();
    for mode in MODES {
        let mut server = server(mode);
        let mut reaper = PastaReaper(Vec::new());
        server.create_function(function("kept", true));
        let r = server.invoke("kept", format!("tcp:{}", target.addr()).as_bytes());
        assert_eq!(r.text(), format!("got: {GREETING}"), "{mode}");
        assert!(table_exists(&server), "{mode}: no nftables table");
        // The instance's link and the pool's (veth), or the instance's pasta.
        let old_links = links(&server);
        let old_pastas = pastas_of(&server, &mut reaper);
        match mode {
            "veth" => assert!(!old_links.is_empty(), "{old_links:?}"),
            _ => assert_eq!(old_pastas.len(), 1, "{old_pastas:?}"),
        }

        // SIGKILL leaves fcx no chance to clean up; the restart reaps what is left.
        server.crash_and_restart();
        assert!(
            eventually(Duration::from_secs(10), || {
                let now = links(&server);
                old_links.iter().all(|l| !now.contains(l))
                    && old_pastas.iter().all(|p| !egress::runs(*p, "pasta"))
            }),
            "{mode}: the killed server's egress outlived its restart: links {:?}",
            links(&server)
        );
        assert_eq!(
            leases(&server),
            usize::from(mode == "veth"),
            "{mode}: leases"
        );

        // The restarted server serves the function again...
        let r = server.invoke("kept", format!("tcp:{}", target.addr()).as_bytes());
        assert_eq!(r.text(), format!("got: {GREETING}"), "{mode}");
        let new_pastas = pastas_of(&server, &mut reaper);
        // ...and a graceful stop removes everything.
        support::procs::terminate(server.pid(), Duration::from_secs(15));
        assert!(
            eventually(Duration::from_secs(10), || links(&server).is_empty()
                && new_pastas.iter().all(|p| !egress::runs(*p, "pasta"))),
            "{mode}: egress outlived the stopped server: {:?}",
            links(&server)
        );
        assert!(!table_exists(&server), "{mode}: table left behind");
        assert_eq!(leases(&server), 0, "{mode}: lease left behind");
    }
}
