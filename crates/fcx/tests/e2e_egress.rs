//! Outbound networking (`internetAccess`) through the real server: with it an instance reaches
//! a target outside its namespace over TCP and UDP through pasta; without it, nothing beyond
//! its loopback. Either way the host's loopback stays out of reach, nothing inside is exposed
//! on the host, and no pasta outlives its instance or its server.
//!
//! A `harness = false` target (see `fcx_testkit::skip`): on a host without root or pasta the
//! tests are reported `ignored (needs ...)`, not passed.

mod support;

use std::time::Duration;

use fcx_testkit::egress::{self, EgressTarget, HostLoopbackServer, GREETING};
use fcx_testkit::skip::{self, Needs};
use serde_json::json;
use support::procs::eventually;
use support::Server;

fn main() -> std::process::ExitCode {
    // Egress needs root (namespaces) and Debian's pasta.
    let needs = Needs::new()
        .root()
        .executable("/usr/bin/pasta", "package passt");
    skip::run(vec![
        skip::test(
            "with_internet_access_an_instance_reaches_the_target_but_not_the_host_loopback",
            &needs,
            with_internet_access_an_instance_reaches_the_target_but_not_the_host_loopback,
        ),
        skip::test(
            "without_internet_access_an_instance_has_loopback_only",
            &needs,
            without_internet_access_an_instance_has_loopback_only,
        ),
        skip::test(
            "pasta_ends_with_a_stopped_or_killed_server",
            &needs,
            pasta_ends_with_a_stopped_or_killed_server,
        ),
    ])
}

/// A test-function body with `internetAccess` set.
fn function(name: &str, internet: bool) -> serde_json::Value {
    let mut body = support::testfn_function(name, json!({}));
    body["internetAccess"] = json!(internet);
    body
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

/// Probes that must not reach the host's loopback server, whatever the instance's access.
fn assert_host_loopback_unreachable(server: &Server, name: &str, host: &HostLoopbackServer) {
    let port = host.port();
    let own_loopback = server.invoke(name, format!("connect:127.0.0.1:{port}").as_bytes());
    assert!(
        own_loopback.text().starts_with("error: "),
        "{}",
        own_loopback.text()
    );
    let api = server.invoke(name, format!("connect:{}", server.addr).as_bytes());
    assert!(api.text().starts_with("error: "), "{}", api.text());
    // pasta could map the gateway to the host's loopback; it must not.
    if let Some(gateway) = egress::host_gateway() {
        let via_gateway = server.invoke(name, format!("tcp:{gateway}:{port}").as_bytes());
        assert!(
            !via_gateway.text().contains("host-loopback"),
            "{}",
            via_gateway.text()
        );
    }
    assert_eq!(
        host.accepted(),
        0,
        "an instance reached the host's loopback"
    );
}

fn with_internet_access_an_instance_reaches_the_target_but_not_the_host_loopback() {
    let target = EgressTarget::start();
    let host = HostLoopbackServer::start();
    let server = Server::start();
    let mut reaper = PastaReaper(Vec::new());
    server.create_function(function("online", true));

    let tcp = server.invoke("online", format!("tcp:{}", target.addr()).as_bytes());
    assert_eq!(tcp.status, 200, "{}", tcp.text());
    assert_eq!(tcp.text(), format!("got: {GREETING}"));
    assert_eq!(target.accepted(), 1);

    // One pasta for the one instance, and it waits for no one: the instance's 9000 (or
    // anything else bound inside) does not appear on the host.
    let pastas = pastas_of(&server, &mut reaper);
    assert_eq!(pastas.len(), 1, "pasta processes: {pastas:?}");
    assert_eq!(egress::bound_sockets(pastas[0]), Vec::<String>::new());

    let udp = server.invoke("online", format!("udp:{}", target.addr()).as_bytes());
    assert_eq!(udp.text(), "got: udp-probe");
    // An outbound UDP flow gets a host socket for its replies (bound to the port the instance
    // sent from, dropped by pasta after idling); still no TCP listener, nothing on 9000.
    let sockets = egress::bound_sockets(pastas[0]);
    assert!(
        sockets
            .iter()
            .all(|s| s.starts_with("udp") && !s.ends_with(":2328")),
        "{sockets:?}"
    );
    assert_host_loopback_unreachable(&server, "online", &host);

    let r = server.request("DELETE", "/2023-03-30/functions/online", &[], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(
        eventually(Duration::from_secs(10), || !egress::runs(
            pastas[0], "pasta"
        )),
        "pasta {} outlived its deleted function",
        pastas[0]
    );
}

fn without_internet_access_an_instance_has_loopback_only() {
    let target = EgressTarget::start();
    let host = HostLoopbackServer::start();
    let server = Server::start();
    let mut reaper = PastaReaper(Vec::new());
    server.create_function(function("offline", false));

    let tcp = server.invoke("offline", format!("tcp:{}", target.addr()).as_bytes());
    assert_eq!(tcp.status, 200, "{}", tcp.text());
    assert!(tcp.text().starts_with("error: "), "{}", tcp.text());
    let udp = server.invoke("offline", format!("udp:{}", target.addr()).as_bytes());
    assert!(udp.text().starts_with("error: "), "{}", udp.text());
    assert_eq!(target.accepted(), 0);
    assert_host_loopback_unreachable(&server, "offline", &host);
    assert_eq!(pastas_of(&server, &mut reaper), Vec::<u32>::new());
}

fn pasta_ends_with_a_stopped_or_killed_server() {
    let target = EgressTarget::start();
    let mut server = Server::start();
    let mut reaper = PastaReaper(Vec::new());
    server.create_function(function("kept", true));
    let r = server.invoke("kept", format!("tcp:{}", target.addr()).as_bytes());
    assert_eq!(r.text(), format!("got: {GREETING}"));
    let before = pastas_of(&server, &mut reaper);
    assert_eq!(before.len(), 1, "pasta processes: {before:?}");

    // SIGKILL leaves fcx no chance to clean up: pasta must go by itself (parent-death signal).
    server.crash_and_restart();
    assert!(
        eventually(Duration::from_secs(10), || !egress::runs(
            before[0], "pasta"
        )),
        "pasta {} outlived its killed server",
        before[0]
    );

    // The restarted server serves the function again through a new pasta...
    let r = server.invoke("kept", format!("tcp:{}", target.addr()).as_bytes());
    assert_eq!(r.text(), format!("got: {GREETING}"));
    let after = pastas_of(&server, &mut reaper);
    assert_eq!(after.len(), 1, "pasta processes: {after:?}");
    // ...which a graceful stop ends too.
    support::procs::terminate(server.pid(), Duration::from_secs(15));
    assert!(
        eventually(Duration::from_secs(10), || !egress::runs(after[0], "pasta")),
        "pasta {} outlived its stopped server",
        after[0]
    );
}
