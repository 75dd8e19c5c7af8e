//! pasta egress (`--egress pasta`): one `pasta` process (Debian's `passt` package) per
//! instance, attached to the instance's network namespace, for hosts where veth egress cannot
//! run. Each costs ~29 MB of memory (its packet buffers).
//!
//! pasta gives the namespace a tap interface with the host's address and default route and
//! relays what leaves through it over ordinary host sockets, so outbound TCP and UDP (DNS
//! included) work without host routes, bridges or address ranges. Nothing is forwarded
//! inwards (`-t/-u none`), nothing bound inside appears on the host (`-T/-U none`), and the
//! gateway is not mapped to the host's loopback (`--no-map-gw`): the host's 127.0.0.1, where
//! fcx's API listens, stays out of reach. The host's other addresses (and the link-local
//! range) would be reached like from any host process, so the pastas of a server run in one
//! cgroup (`<cgroup2>/fcx/<prefix>/egress`) whose sockets fcx's nftables table refuses them
//! ([`PastaGuard`]). pasta ends when its [`Pasta`] drops, and through
//! `PR_SET_PDEATHSIG` when fcx dies: it holds the namespace open, so it would never notice the
//! instance going away by itself.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sys;

/// Where Debian 12 installs pasta.
pub const PASTA: &str = "/usr/bin/pasta";

/// How long pasta may take to configure a namespace (it takes milliseconds).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running pasta serving one namespace. Dropping it ends pasta.
pub struct Pasta {
    pid: u32,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// pasta has been reaped, so its pid may belong to someone else now.
    reaped: bool,
    /// The `Pasta` was dropped: pasta's end is expected.
    stopping: bool,
}

impl Pasta {
    /// Starts pasta for the namespace at `netns_path` and waits (bounded) until the namespace
    /// has its interface and default route. `name` labels pasta's thread and log lines;
    /// `cgroup_procs` is the `cgroup.procs` pasta joins before it runs.
    pub fn attach(
        netns_path: &Path,
        name: &str,
        cgroup_procs: Option<CString>,
    ) -> io::Result<Pasta> {
        attach_with(Path::new(PASTA), netns_path, name, cgroup_procs)
    }

    /// pasta's pid (for diagnostics and tests).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Pasta {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.stopping = true;
        // pasta keeps no state worth a graceful stop; the supervising thread reaps it.
        if !state.reaped {
            sys::kill(self.pid, libc::SIGKILL);
        }
    }
}

fn attach_with(
    pasta: &Path,
    netns_path: &Path,
    name: &str,
    cgroup_procs: Option<CString>,
) -> io::Result<Pasta> {
    if !pasta.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} not found: outbound networking (internetAccess) needs pasta; \
                 install the passt package",
                pasta.display()
            ),
        ));
    }
    let netns = File::open(netns_path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot open network namespace {}: {e}",
                netns_path.display()
            ),
        )
    })?;
    // pasta gets the namespace as an inherited fd, named through its own /proc/self: it
    // drops capabilities early, after which it may not open another process's ns files.
    let mut cmd = Command::new(pasta);
    cmd.args(pasta_args(netns.as_raw_fd()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let state = Arc::new(Mutex::new(State::default()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread_state = Arc::clone(&state);
    let label = name.to_owned();
    // PR_SET_PDEATHSIG fires when the spawning *thread* ends, so pasta is spawned by a thread
    // that lives exactly as long as pasta.
    let thread = std::thread::Builder::new()
        .name(format!("egress-{name}"))
        .stack_size(128 * 1024);
    sys::spawn_namespace_thread(thread, move |own| {
        supervise(own, cmd, netns, cgroup_procs, ready_tx, thread_state, label)
    })?;
    let pid = ready_rx
        .recv()
        .map_err(|_| io::Error::other("the pasta thread ended before reporting"))?
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("egress for {}: {e}", netns_path.display()),
            )
        })?;
    Ok(Pasta { pid, state })
}

/// pasta's command line: join the namespace it inherits as fd `netns_fd`, configure it,
/// forward nothing in either direction, keep the host's loopback unmapped.
fn pasta_args(netns_fd: i32) -> Vec<String> {
    let mut args: Vec<String> = [
        // As root pasta would otherwise drop to `nobody`, who cannot join the namespace.
        "--runas",
        "0:0",
        "--foreground",
        "--quiet",
        "--config-net",
        "--no-map-gw",
        "--tcp-ports",
        "none",
        "--udp-ports",
        "none",
        "--tcp-ns",
        "none",
        "--udp-ns",
        "none",
        // fcx ends pasta itself; the path is under /proc, where pasta's watch sees nothing.
        "--no-netns-quit",
        "--netns",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.push(format!("/proc/self/fd/{netns_fd}"));
    args
}

/// Runs on pasta's own thread: spawns it, reports readiness, then relays its stderr to the
/// log until it ends and reaps it.
fn supervise(
    own: &sys::OwnThread,
    mut cmd: Command,
    netns: File,
    cgroup_procs: Option<CString>,
    ready: mpsc::Sender<io::Result<u32>>,
    state: Arc<Mutex<State>>,
    name: String,
) {
    sys::prepare_helper_command(&mut cmd, netns.as_raw_fd(), cgroup_procs);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = ready.send(Err(io::Error::new(
                e.kind(),
                format!("cannot start pasta: {e}"),
            )));
            return;
        }
    };
    let pid = child.id();
    let stderr = child.stderr.take();
    if let Err(e) = wait_ready(own, &mut child, &netns) {
        let _ = child.kill();
        let _ = child.wait();
        let said = stderr.map(read_tail).unwrap_or_default();
        let said = if said.is_empty() {
            String::new()
        } else {
            format!("; pasta said: {said}")
        };
        let _ = ready.send(Err(io::Error::new(e.kind(), format!("{e}{said}"))));
        return;
    }
    drop(netns);
    if ready.send(Ok(pid)).is_err() {
        // Nobody will own a `Pasta` for this pasta.
        state.lock().unwrap_or_else(|p| p.into_inner()).stopping = true;
        sys::kill(pid, libc::SIGKILL);
    }
    if let Some(stderr) = stderr {
        for line in io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if !is_noise(&line) {
                tracing::warn!(egress = %name, "pasta: {line}");
            }
        }
    }
    // Reap only under the lock, so `Pasta::drop` never signals a pid that was reused.
    let _ = sys::wait_exited_unreaped(pid);
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let status = child.wait();
    state.reaped = true;
    if !state.stopping {
        let how = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        tracing::warn!(egress = %name, "pasta ended ({how}): the instance lost outbound networking");
    }
}

/// Waits until pasta has configured the namespace: a default route exists there and pasta has
/// moved into its own mount namespace, which it does only once configuration is done.
fn wait_ready(own: &sys::OwnThread, child: &mut Child, netns: &File) -> io::Result<()> {
    // This thread only waits and relays from now on, so it may as well live in the
    // namespace: then its /proc/thread-self/net shows the namespace's routing tables.
    sys::setns_net(own, netns.as_raw_fd())
        .map_err(|e| io::Error::new(e.kind(), format!("not a network namespace (setns: {e})")))?;
    let started = Instant::now();
    let mut delay = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "pasta exited ({status}) before configuring the namespace"
            )));
        }
        let routed = ["route", "ipv6_route"].iter().any(|table| {
            std::fs::read_to_string(format!("/proc/thread-self/net/{table}"))
                .is_ok_and(|text| has_default_route(table, &text))
        });
        if routed && isolated(child.id()) {
            return Ok(());
        }
        if started.elapsed() >= READY_TIMEOUT {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("pasta did not configure the namespace within {READY_TIMEOUT:?}"),
            ));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(5));
    }
}

/// Whether a `/proc/net/route` (`table` = "route") or `/proc/net/ipv6_route` text has a
/// default route through an interface other than `lo`.
fn has_default_route(table: &str, text: &str) -> bool {
    text.lines().any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if table == "route" {
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            cols.len() >= 8 && cols[0] != "lo" && cols[1] == "00000000" && cols[7] == "00000000"
        } else {
            // Destination PrefixLen Source SrcPrefixLen NextHop Metric RefCnt Use Flags Iface
            cols.len() >= 10
                && cols[9] != "lo"
                && cols[1] == "00"
                && cols[0].bytes().all(|b| b == b'0')
        }
    })
}

/// Whether pasta `pid` has sandboxed itself (the last step before it serves): it is in a
/// mount namespace other than ours, or it runs under its seccomp filter. Reading its
/// `ns/mnt` link needs CAP_SYS_PTRACE once pasta has made itself non-dumpable; fcx in a
/// container (a Kubernetes DaemonSet's capabilities) lacks it, so the readiness wait never
/// ended there (found by scripts/portability.sh). `/proc/<pid>/status` is readable by all,
/// and pasta installs its filter after isolating.
fn isolated(pid: u32) -> bool {
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt"));
    let ours = std::fs::read_link("/proc/self/ns/mnt");
    if let (Ok(t), Ok(o)) = (theirs, ours) {
        return t != o;
    }
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| seccomp_filtered(&s))
}

/// Whether a `/proc/<pid>/status` text says the process runs under a seccomp filter.
fn seccomp_filtered(status: &str) -> bool {
    status
        .lines()
        .any(|l| l.strip_prefix("Seccomp:").is_some_and(|v| v.trim() == "2"))
}

/// Lines Debian's pasta prints when it finds no syslog socket, before each real message.
fn is_noise(line: &str) -> bool {
    line.starts_with("Failed to send") && line.ends_with("to syslog")
}

/// The last part of what pasta printed, without the syslog noise.
fn read_tail(mut stderr: std::process::ChildStderr) -> String {
    let mut bytes = Vec::new();
    let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !is_noise(l)).collect();
    let joined = lines.join(" | ");
    let start = joined.len().saturating_sub(1024);
    let start = (start..joined.len())
        .find(|i| joined.is_char_boundary(*i))
        .unwrap_or(0);
    joined[start..].to_owned()
}

/// The pastas of one server run in one cgroup, and fcx's nftables table refuses that
/// cgroup's sockets the host's own addresses (every local address, loopback included: pasta
/// would otherwise reach them like any host process) and the link-local ranges (cloud
/// metadata). nft names cgroups relative to `/sys/fs/cgroup`, where the cgroup2 mount must be.
pub struct PastaGuard {
    dir: PathBuf,
    procs: CString,
    table: String,
    nft: PathBuf,
}

impl PastaGuard {
    /// Creates `<cgroup2>/fcx/<prefix>/egress` and loads the table `inet <prefix>`; `Err`
    /// says why it cannot (then pastas run unguarded, as before fcx had the guard).
    pub fn setup(prefix: &str) -> Result<PastaGuard, String> {
        let nft = super::network::nft_binary()?;
        let mount = crate::cgroup::cgroup2_mount()
            .ok_or("the host has no cgroup2 mount to put pasta processes in")?;
        let under = mount.strip_prefix("/sys/fs/cgroup").map_err(|_| {
            format!(
                "cgroup2 is mounted at {}, outside /sys/fs/cgroup where nft looks for cgroups",
                mount.display()
            )
        })?;
        let rel = Path::new("fcx").join(prefix).join("egress");
        let dir = mount.join(&rel);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let procs = CString::new(
            dir.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .map_err(|_| "cgroup path contains NUL".to_string())?;
        let table = super::network::table_name(prefix);
        let rules = guard_ruleset(&table, &under.join(&rel).to_string_lossy(), 3);
        if let Err(e) = super::network::nft_replace(&nft, &table, &rules) {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!("cannot load the pasta guard table: {e}"));
        }
        Ok(PastaGuard {
            dir,
            procs,
            table,
            nft,
        })
    }

    /// The `cgroup.procs` pastas join.
    pub(crate) fn procs(&self) -> CString {
        self.procs.clone()
    }

    /// Removes the table and the (emptied) group.
    pub fn remove(&self) {
        let _ =
            super::network::nft_apply(&self.nft, &format!("delete table inet {}\n", self.table));
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The guard table: sockets of the cgroup at `cgroup` (relative to /sys/fs/cgroup, `level`
/// deep in the cgroup2 tree) may not reach local addresses or link-local ranges.
pub fn guard_ruleset(table: &str, cgroup: &str, level: u32) -> String {
    let who = format!("socket cgroupv2 level {level} \"{cgroup}\"");
    let deny = "reject with icmpx admin-prohibited";
    format!(
        "table inet {table} {{\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority filter; policy accept;\n\
         \t\t{who} fib daddr type local {deny} comment \"the host itself: every address, fcx's API included\"\n\
         \t\t{who} ip daddr {ll} {deny} comment \"link-local: cloud metadata\"\n\
         \t\t{who} ip6 daddr fe80::/10 {deny}\n\
         \t}}\n\
         }}\n",
        ll = super::network::LINK_LOCAL,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_default_routes_but_not_loopback_ones() {
        let v4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert!(has_default_route("route", v4));
        let subnet_only = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                           eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert!(!has_default_route("route", subnet_only));
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                  fd000000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n";
        assert!(has_default_route("ipv6_route", v6));
        let v6_lo = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                     00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        assert!(!has_default_route("ipv6_route", v6_lo));
        assert!(!has_default_route("route", ""));
    }

    #[test]
    fn missing_pasta_says_which_package_to_install() {
        let Err(e) = attach_with(
            Path::new("/nonexistent/pasta"),
            Path::new("/proc/self/ns/net"),
            "t",
            None,
        ) else {
            panic!("attached without pasta");
        };
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("install the passt package"), "{e}");
    }

    #[test]
    fn pasta_args_forward_nothing_and_keep_the_gateway_unmapped() {
        let text = pasta_args(7).join(" ");
        for want in [
            "--runas 0:0",
            "--no-map-gw",
            "--tcp-ports none",
            "--udp-ports none",
            "--tcp-ns none",
            "--udp-ns none",
            "--netns /proc/self/fd/7",
        ] {
            assert!(text.contains(want), "{want} missing from {text}");
        }
    }

    /// Real pasta on a real namespace; needs root and the passt package.
    fn can_run() -> bool {
        let ok = sys::is_root() && Path::new(PASTA).exists();
        if !ok {
            eprintln!("skipped: needs root and {PASTA}");
        }
        ok
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| !r.starts_with('Z')))
    }

    /// Waits (bounded) for `cond`.
    fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        cond()
    }

    #[test]
    fn attach_configures_the_namespace_and_drop_ends_pasta() {
        if !can_run() {
            return;
        }
        let netns = crate::netns::NetNs::create("egress-test").unwrap();
        let egress = Pasta::attach(&netns.path(), "egress-test", None).unwrap();
        let pid = egress.pid();
        assert!(alive(pid));
        let tid_dir = netns.path().parent().unwrap().parent().unwrap().to_owned();
        let routes = std::fs::read_to_string(tid_dir.join("net/route")).unwrap();
        assert!(has_default_route("route", &routes), "{routes}");
        drop(egress);
        let gone = eventually(|| !alive(pid));
        if !gone {
            sys::kill(pid, libc::SIGKILL);
        }
        assert!(gone, "pasta {pid} outlived its Pasta");
    }

    /// fcx in a container has no CAP_SYS_PTRACE: it cannot read the namespace links of a
    /// pasta that made itself non-dumpable, and must still see it ready. Capabilities are
    /// per thread, so a thread that dropped CAP_SYS_PTRACE plays that fcx. Whether the link
    /// is unreadable there depends on the moment (pasta re-executes itself, which makes it
    /// dumpable again for a while), so the fallback's signal is checked on its own: a running
    /// pasta is under its seccomp filter.
    #[test]
    fn readiness_is_seen_without_cap_sys_ptrace() {
        if !can_run() {
            return;
        }
        let netns = crate::netns::NetNs::create("egress-noptrace").unwrap();
        let egress = Pasta::attach(&netns.path(), "egress-noptrace", None).unwrap();
        let pid = egress.pid();
        let ready = std::thread::spawn(move || {
            sys::drop_effective_capability(sys::CAP_SYS_PTRACE).unwrap();
            isolated(pid)
        })
        .join()
        .unwrap();
        // pasta may be re-executing itself (`passt.avx2`) at this moment, before it applies
        // its filter again: wait for the running state rather than read one instant.
        let mut status = String::new();
        let filtered = eventually(|| {
            status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            seccomp_filtered(&status)
        });
        drop(egress);
        assert!(ready, "a running pasta must count as isolated");
        assert!(filtered, "{status}");
        assert!(!seccomp_filtered("Seccomp:\t0\n"));
    }

    #[test]
    fn a_path_that_is_no_namespace_is_refused() {
        if !can_run() {
            return;
        }
        let Err(e) = Pasta::attach(Path::new("/etc/hostname"), "egress-bad", None) else {
            panic!("attached to a regular file");
        };
        assert!(e.to_string().contains("not a network namespace"), "{e}");
    }

    #[test]
    fn guard_refuses_local_and_link_local_destinations_to_the_pasta_cgroup() {
        let rules = guard_ruleset("fcx-1a2b3c4d", "unified/fcx/fcx-1a2b3c4d/egress", 3);
        for want in [
            "socket cgroupv2 level 3 \"unified/fcx/fcx-1a2b3c4d/egress\" fib daddr type local reject",
            "ip daddr 169.254.0.0/16 reject",
            "ip6 daddr fe80::/10 reject",
        ] {
            assert!(rules.contains(want), "{want} missing from\n{rules}");
        }
    }
}
