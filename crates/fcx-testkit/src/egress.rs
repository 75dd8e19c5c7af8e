//! Things for instances to reach (or fail to reach) in egress tests: an [`EgressTarget`] in a
//! network namespace of its own, joined to the host by a veth pair, with documentation
//! addresses ([`Range::Outside`], 198.51.100.0/24: it stands for "the internet" without any)
//! or link-local ones ([`Range::LinkLocal`], 169.254.77.0/24: where cloud metadata lives);
//! a [`HostServer`] on the host's 127.0.0.1 or on every host address, counting who got
//! through; and [`bound_sockets`] / [`children_running`] to check what a pasta process
//! listens on and which ones remain. Drop removes everything (server threads, veth,
//! namespace), also when the test panics.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the target's TCP server writes to every connection before closing it.
pub const GREETING: &str = "egress-ok\n";

/// How often server threads look at their stop flag.
const POLL: Duration = Duration::from_millis(10);

/// /30 subnets of a target range handed out to targets (64 of them).
const SUBNETS: u32 = 64;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Where a target's addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// 198.51.100.0/24 (TEST-NET-2, never routed on the internet): an outside address.
    Outside,
    /// 169.254.77.0/24: inside the link-local range, where cloud metadata services live.
    LinkLocal,
}

impl Range {
    /// The /24 and the tag in link names (`fxt<k>h` / `fxl<k>h`: never `fcx…`).
    fn parts(self) -> ([u8; 3], &'static str) {
        match self {
            Range::Outside => ([198, 51, 100], "fxt"),
            Range::LinkLocal => ([169, 254, 77], "fxl"),
        }
    }
}

/// A TCP server (answers [`GREETING`]) and a UDP echo server, both on the same port of
/// `<range>.<4k+2>` inside namespace `<tag>-<pid>-<n>`, routed from the host through veth
/// `<tag><k>h` (`<range>.<4k+1>/30`, with IPv4 forwarding on: for the test it is the uplink
/// replies to veth-egress instances come back through).
pub struct EgressTarget {
    netns: Option<String>,
    host_veth: Option<String>,
    host_ip: Option<Ipv4Addr>,
    addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    peers: Arc<std::sync::Mutex<Vec<std::net::IpAddr>>>,
    threads: Vec<JoinHandle<()>>,
}

impl EgressTarget {
    /// A target at an outside address ([`Range::Outside`]).
    pub fn start() -> EgressTarget {
        EgressTarget::start_in(Range::Outside)
    }

    /// Creates the namespace, veth and servers; panics (after cleaning up) if it cannot.
    pub fn start_in(range: Range) -> EgressTarget {
        let mut target = EgressTarget {
            netns: None,
            host_veth: None,
            host_ip: None,
            addr: None,
            stop: Arc::new(AtomicBool::new(false)),
            accepted: Arc::new(AtomicUsize::new(0)),
            peers: Arc::default(),
            threads: Vec::new(),
        };
        if let Err(e) = target.build(range) {
            drop(target);
            panic!("cannot set up the egress target: {e}");
        }
        target
    }

    /// The target's network namespace (`/run/netns/<name>`), once made.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// The host end of the target's veth pair, once made.
    pub fn host_veth(&self) -> Option<&str> {
        self.host_veth.as_deref()
    }

    /// Where the TCP and UDP servers listen.
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The source addresses of the TCP connections accepted so far.
    pub fn peers(&self) -> Vec<std::net::IpAddr> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The host's address on the target's veth: an address of the host itself.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// Connects from inside the target's namespace to `addr` (a route to it via the host is
    /// added first), as a machine outside would: `Ok` if a connection was made.
    pub fn connect_from_outside(&self, addr: SocketAddr) -> std::io::Result<()> {
        let netns = self.netns.clone().unwrap_or_default();
        let via = self.host_ip().to_string();
        let _ = ip(&[
            "-n",
            &netns,
            "route",
            "replace",
            &format!("{}/32", addr.ip()),
            "via",
            &via,
        ]);
        let ns_file = std::fs::File::open(format!("/run/netns/{netns}"))?;
        std::thread::spawn(move || -> std::io::Result<()> {
            enter_netns(&ns_file)?;
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(drop)
        })
        .join()
        .map_err(|_| std::io::Error::other("the probe thread panicked"))?
    }

    fn build(&mut self, range: Range) -> std::io::Result<()> {
        let ([a, b, c], tag) = range.parts();
        let pid = std::process::id();
        let start = pid
            .wrapping_mul(7)
            .wrapping_add(NEXT.fetch_add(1, Ordering::SeqCst));
        let netns = format!("{tag}-{pid}-{}", start % 1000);
        ip(&["netns", "add", &netns])?;
        self.netns = Some(netns.clone());
        // Creating the host end is the atomic claim on subnet k: names are unique per host.
        let mut claimed = None;
        for i in 0..SUBNETS {
            let k = (start + i) % SUBNETS;
            let host_veth = format!("{tag}{k}h");
            let ns_veth = format!("{tag}{k}n");
            let created = ip(&[
                "link", "add", &host_veth, "type", "veth", "peer", "name", &ns_veth, "netns",
                &netns,
            ]);
            if created.is_ok() {
                self.host_veth = Some(host_veth.clone());
                claimed = Some((k, host_veth, ns_veth));
                break;
            }
        }
        let (k, host_veth, ns_veth) = claimed.ok_or_else(|| {
            std::io::Error::other(format!(
                "every {a}.{b}.{c}.0/24 subnet is taken (stale {tag}* veths?)"
            ))
        })?;
        let host_ip = Ipv4Addr::new(a, b, c, (4 * k + 1) as u8);
        let ns_ip = Ipv4Addr::new(a, b, c, (4 * k + 2) as u8);
        self.host_ip = Some(host_ip);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_veth])?;
        // Replies to veth-egress instances enter the host here, as through a real uplink.
        std::fs::write(
            format!("/proc/sys/net/ipv4/conf/{host_veth}/forwarding"),
            "1",
        )?;
        ip(&["link", "set", &host_veth, "up"])?;
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &ns_veth,
        ])?;
        ip(&["-n", &netns, "link", "set", &ns_veth, "up"])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        self.serve(&netns, ns_ip)
    }

    /// Starts the server threads inside the namespace and waits until both are bound.
    fn serve(&mut self, netns: &str, ip: Ipv4Addr) -> std::io::Result<()> {
        let ns_file = std::fs::File::open(format!("/run/netns/{netns}"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::clone(&self.stop);
        let accepted = Arc::clone(&self.accepted);
        let peers = Arc::clone(&self.peers);
        let tcp = std::thread::spawn(move || {
            let setup = || -> std::io::Result<(TcpListener, UdpSocket)> {
                enter_netns(&ns_file)?;
                let listener = TcpListener::bind((ip, 0))?;
                listener.set_nonblocking(true)?;
                let udp = UdpSocket::bind(listener.local_addr()?)?;
                udp.set_read_timeout(Some(POLL))?;
                Ok((listener, udp))
            };
            let (listener, udp) = match setup() {
                Ok(pair) => pair,
                Err(e) => return drop(tx.send(Err(e))),
            };
            let _ = tx.send(listener.local_addr());
            let udp_stop = Arc::clone(&stop);
            let echo = std::thread::spawn(move || udp_echo(&udp, &udp_stop));
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut conn, from)) => {
                        peers
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(from.ip());
                        accepted.fetch_add(1, Ordering::SeqCst);
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.write_all(GREETING.as_bytes());
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
            }
            let _ = echo.join();
        });
        self.threads.push(tcp);
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| std::io::Error::other("the target's server thread did not start"))??;
        self.addr = Some(addr);
        Ok(())
    }
}

impl Drop for EgressTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Deleting one end of a veth pair deletes the other.
        if let Some(veth) = self.host_veth.take() {
            let _ = ip(&["link", "del", &veth]);
        }
        if let Some(netns) = self.netns.take() {
            let _ = ip(&["netns", "del", &netns]);
        }
    }
}

fn udp_echo(sock: &UdpSocket, stop: &AtomicBool) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    }
}

/// Moves the calling thread into the namespace `ns` refers to.
fn enter_netns(ns: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: setns only changes the calling (dedicated) thread's namespace membership.
    #[allow(unsafe_code)]
    let ret = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs `ip <args>`, turning a failure into an error that carries its stderr.
fn ip(args: &[&str]) -> std::io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A TCP server on the host (`127.0.0.1` or every address, a free port) that accepts and
/// counts connections: an instance must never get one.
pub struct HostServer {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl HostServer {
    /// On `127.0.0.1`.
    pub fn loopback() -> HostServer {
        HostServer::start_on(Ipv4Addr::LOCALHOST)
    }

    /// On `0.0.0.0`: every address of the host (its primary address, the test veths' ...).
    pub fn every_address() -> HostServer {
        HostServer::start_on(Ipv4Addr::UNSPECIFIED)
    }

    fn start_on(ip: Ipv4Addr) -> HostServer {
        let listener = TcpListener::bind((ip, 0)).expect("bind a host port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (thread_stop, thread_accepted) = (Arc::clone(&stop), Arc::clone(&accepted));
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        thread_accepted.fetch_add(1, Ordering::SeqCst);
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.write_all(b"host-loopback\n");
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        });
        HostServer {
            port,
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sockets of process `pid` that wait for peers: TCP in LISTEN and UDP bound but unconnected,
/// as `tcp 0.0.0.0:9000`-style strings (addresses in the kernel's hex notation).
pub fn bound_sockets(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: Vec<String> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut out = Vec::new();
    // TCP LISTEN is state 0A; an unconnected UDP socket is state 07 (TCP_CLOSE).
    for (table, waiting) in [("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == waiting && inodes.iter().any(|i| i == cols[9]) {
                out.push(format!("{table} {}", cols[1]));
            }
        }
    }
    out
}

/// Live children of `parent` started as `program` (the file name of their `argv[0]`: Debian's
/// pasta re-executes itself as `passt.avx2`, so the command name does not tell).
pub fn children_running(parent: u32, program: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent) && runs(*pid, program))
        .collect()
}

/// Whether process `pid` still runs `program` (a zombie has no command line, so it does not).
pub fn runs(pid: u32, program: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let name = argv0.rsplit(|b| *b == b'/').next().unwrap_or_default();
    !argv0.is_empty() && name == program.as_bytes()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The host's primary IPv4 address: the one it reaches its default gateway from.
pub fn host_primary_address() -> Option<Ipv4Addr> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect((host_gateway()?, 9)).ok()?;
    match sock.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(ip) => Some(ip),
        std::net::IpAddr::V6(_) => None,
    }
}

/// The host's IPv4 default gateway (pasta gives namespaces the same one).
pub fn host_gateway() -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    text.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 8 || cols[1] != "00000000" || cols[7] != "00000000" {
            return None;
        }
        let hex = u32::from_str_radix(cols[2], 16).ok()?;
        Some(Ipv4Addr::from(hex.to_le_bytes()))
    })
}

/// Reads what a TCP server at `addr` says first (up to a line), with a bounded wait.
pub fn read_greeting(addr: SocketAddr) -> std::io::Result<String> {
    let conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let _ = conn.take(256).read_to_end(&mut buf);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_loopback_server_counts_connections() {
        let server = HostServer::loopback();
        assert_eq!(server.accepted(), 0);
        assert_eq!(read_greeting(server.addr()).unwrap(), "host-loopback\n");
        assert_eq!(server.accepted(), 1);
    }

    #[test]
    fn parses_our_own_process() {
        let me = std::process::id();
        let exe = std::env::args().next().unwrap();
        let name = exe.rsplit('/').next().unwrap();
        assert!(runs(me, name));
        assert!(!runs(me, "pasta"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sockets = bound_sockets(me);
        assert!(
            sockets.iter().any(|s| s.ends_with(&format!(":{port:04X}"))),
            "{sockets:?}"
        );
    }
}
