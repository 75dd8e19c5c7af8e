//! The egress target against the real host: it answers over TCP and UDP through its veth and
//! leaves no namespace or interface behind. Needs root; without it the runner shows the tests
//! as ignored (a `harness = false` target on `fcx_testkit::skip`).

use std::net::UdpSocket;
use std::time::Duration;

use fcx_testkit::egress::{read_greeting, EgressTarget, GREETING};
use fcx_testkit::skip::{self, Needs};

fn main() -> std::process::ExitCode {
    let root = Needs::new().root();
    skip::run(vec![
        skip::test(
            "target_answers_over_tcp_and_udp_from_the_host_and_leaves_nothing_behind",
            &root,
            target_answers_over_tcp_and_udp_from_the_host_and_leaves_nothing_behind,
        ),
        skip::test(
            "two_targets_get_different_subnets",
            &root,
            two_targets_get_different_subnets,
        ),
    ])
}

fn target_answers_over_tcp_and_udp_from_the_host_and_leaves_nothing_behind() {
    let target = EgressTarget::start();
    let addr = target.addr();
    assert_eq!(read_greeting(addr).unwrap(), GREETING);
    assert_eq!(target.accepted(), 1);
    let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    udp.send_to(b"ping", addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    let netns = target.netns().unwrap().to_owned();
    let veth = target.host_veth().unwrap().to_owned();
    drop(target);
    assert!(!std::path::Path::new(&format!("/run/netns/{netns}")).exists());
    assert!(!std::path::Path::new(&format!("/sys/class/net/{veth}")).exists());
}

fn two_targets_get_different_subnets() {
    let a = EgressTarget::start();
    let b = EgressTarget::start();
    assert_ne!(a.addr().ip(), b.addr().ip());
    assert_eq!(read_greeting(b.addr()).unwrap(), GREETING);
}
