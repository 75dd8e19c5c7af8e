//! The server-wide half of veth egress: one address block leased from the configured range,
//! fcx's own nftables table, per-interface forwarding on the uplinks, and their removal.
//!
//! What one server changes on the host, all named with its prefix (`fcx-<8 hex>`):
//! - links `fcx<8 hex><4 hex slot>` (the host ends of its instances' veth pairs; the slot
//!   is the address lease: instance address = block base + slot);
//! - the nftables table `inet fcx-<8 hex>` (masquerade and isolation, see [`ruleset`]);
//! - the lease file `<state dir>/<block>.lease`, flock-ed for the server's life, holding the
//!   prefix, so servers side by side get disjoint blocks and a dead server's lease is known
//!   to be stale;
//! - `net.ipv4.conf.<uplink>.forwarding = 1` on each interface with an IPv4 default route
//!   that had it off (replies to instances enter there), recorded in `<state dir>/forwarding`
//!   and turned off again when the last server stops; while fcx holds it on, its table drops
//!   anything else forwarded from those interfaces, so the host routes nothing new.
//!
//! `net.ipv4.ip_forward` (all interfaces) is never touched, and no bridge is made.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};

use super::netlink::Rtnl;

/// Where servers keep their leases, whatever their run dir: blocks are host-wide.
pub const STATE_DIR: &str = "/run/fcx/egress";

/// The default range blocks are leased from.
pub const DEFAULT_RANGE: &str = "10.251.0.0/16";

/// The link-local range, cloud metadata services included: never reachable.
pub const LINK_LOCAL: &str = "169.254.0.0/16";

/// Where servers' link names start (every server's links match `fcx*`).
const LINK_FAMILY: &str = "fcx";

/// How a server sets up veth egress.
#[derive(Debug, Clone)]
pub struct VethSettings {
    /// The server's prefix, `fcx-<8 hex>`.
    pub prefix: String,
    /// The range blocks are leased from.
    pub range: Ipv4Net,
    /// Most instances with egress at once (the block holds twice as many addresses, so a
    /// released address is reused late, after its old link is surely gone).
    pub capacity: u32,
    /// Lease and record files (default [`STATE_DIR`]).
    pub state_dir: PathBuf,
    /// Interfaces replies enter by (`None`: those with an IPv4 default route).
    pub uplinks: Option<Vec<String>>,
}

/// One server's veth egress: its block, its table, its free addresses.
pub struct VethNetwork {
    prefix: String,
    link_prefix: String,
    block: Ipv4Net,
    /// Slots (offsets in the block) not leased to an instance, oldest release first.
    free: Mutex<VecDeque<u32>>,
    lease_path: PathBuf,
    lease: Mutex<Option<Flock<File>>>,
    state_dir: PathBuf,
    nft: PathBuf,
    /// Uplinks on which fcx turned forwarding on (as recorded when this server started).
    enabled_uplinks: Vec<String>,
}

impl std::fmt::Debug for VethNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VethNetwork")
            .field("prefix", &self.prefix)
            .field("block", &self.block)
            .finish_non_exhaustive()
    }
}

/// `fcx-1a2b3c4d` → `fcx1a2b3c4d` (link names have 15 bytes: this, then 4 hex of slot).
pub fn link_prefix(prefix: &str) -> String {
    prefix.replace('-', "")
}

/// The nftables table of server `prefix`.
pub fn table_name(prefix: &str) -> String {
    prefix.to_owned()
}

impl VethNetwork {
    /// Reaps what dead servers left, leases a block, turns forwarding on where replies
    /// enter, and loads the server's nftables table.
    pub fn setup(s: &VethSettings) -> Result<VethNetwork, String> {
        let nft = nft_binary()?;
        std::fs::create_dir_all(&s.state_dir)
            .map_err(|e| format!("cannot create {}: {e}", s.state_dir.display()))?;
        let _guard = lock_state(&s.state_dir)?;
        reap_stale_leases(&s.state_dir, &nft);
        reap_prefix(&s.prefix, Some(&nft));
        let block_len = block_len(s.capacity);
        if block_len < s.range.prefix_len() {
            return Err(format!(
                "--egress-range {} is too small for {} instances with egress (each server \
                 needs a /{block_len}); give a larger range",
                s.range, s.capacity
            ));
        }
        let routes = host_routes();
        let (block, lease, lease_path) = lease_block(s, block_len, &routes)?;
        let uplinks = s.uplinks.clone().unwrap_or_else(uplinks);
        let enabled_uplinks = enable_uplink_forwarding(&s.state_dir, &uplinks)?;
        let net = VethNetwork {
            prefix: s.prefix.clone(),
            link_prefix: link_prefix(&s.prefix),
            block,
            free: Mutex::new((2..block_size(block) - 1).collect()),
            lease_path,
            lease: Mutex::new(Some(lease)),
            state_dir: s.state_dir.clone(),
            nft,
            enabled_uplinks,
        };
        let rules = ruleset(
            &table_name(&s.prefix),
            &net.link_prefix,
            block,
            &net.enabled_uplinks,
        );
        if let Err(e) = nft_replace(&net.nft, &table_name(&s.prefix), &rules) {
            net.release_host_state();
            return Err(format!("cannot load fcx's nftables table: {e}"));
        }
        Ok(net)
    }

    /// The address block instance namespaces get their addresses from.
    pub fn block(&self) -> Ipv4Net {
        self.block
    }

    /// The prefix naming this server's veths, namespaces and nftables table.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Uplinks fcx turned forwarding on for.
    pub fn enabled_uplinks(&self) -> &[String] {
        &self.enabled_uplinks
    }

    /// The host-side gateway address every instance routes through (on every host end).
    pub fn gateway(&self) -> Ipv4Addr {
        nth(self.block, 1)
    }

    /// The address of slot `slot`.
    pub fn address(&self, slot: u32) -> Ipv4Addr {
        nth(self.block, slot)
    }

    /// The host end's name for slot `slot`.
    pub fn link_name(&self, slot: u32) -> String {
        format!("{}{slot:04x}", self.link_prefix)
    }

    pub(crate) fn take_slot(&self) -> Option<u32> {
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// Returns a slot to the back of the queue.
    pub(crate) fn put_back(&self, slot: u32) {
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(slot);
    }

    /// Clean stop: waits (bounded) for the instances' links to go with their namespaces,
    /// deletes what is left, the table and the lease; the last server turns forwarding
    /// back off where fcx turned it on.
    pub fn remove(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !own_links(&self.link_prefix).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let Ok(_guard) = lock_state(&self.state_dir) else {
            reap_prefix(&self.prefix, Some(&self.nft));
            return;
        };
        reap_prefix(&self.prefix, Some(&self.nft));
        self.release_host_state();
        reap_stale_leases(&self.state_dir, &self.nft);
    }

    /// Drops the lease; restores forwarding when no other server holds one.
    fn release_host_state(&self) {
        drop(self.lease.lock().unwrap_or_else(|p| p.into_inner()).take());
        let _ = std::fs::remove_file(&self.lease_path);
        if live_leases(&self.state_dir) == 0 {
            restore_forwarding(&self.state_dir);
        }
    }
}

/// Prefix length of a block for `capacity` instances: twice the addresses (released ones
/// are reused last), plus network and gateway; at most a /24.
fn block_len(capacity: u32) -> u8 {
    let need = (u64::from(capacity) * 2 + 3).next_power_of_two();
    let bits = need.trailing_zeros().max(8);
    (32 - bits.min(32)) as u8
}

fn block_size(block: Ipv4Net) -> u32 {
    1u32 << (32 - u32::from(block.prefix_len()))
}

fn nth(block: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(block.network()) + n)
}

/// The `nft` binary.
pub fn nft_binary() -> Result<PathBuf, String> {
    crate::host::find_executable("nft").ok_or_else(|| {
        "nft not found: veth egress needs nftables (apt-get install -y nftables), or start \
         with --egress pasta"
            .to_string()
    })
}

/// Holds the state dir's lock while setups and removals change shared host state.
fn lock_state(dir: &Path) -> Result<Flock<File>, String> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cannot lock {}: {e}", path.display()))
}

/// Leases the first block of the range that no live server holds and that overlaps no
/// route of the host.
fn lease_block(
    s: &VethSettings,
    block_len: u8,
    routes: &[Route],
) -> Result<(Ipv4Net, Flock<File>, PathBuf), String> {
    let blocks = s
        .range
        .subnets(block_len)
        .map_err(|e| format!("--egress-range {}: {e}", s.range))?;
    let mut overlapping = Vec::new();
    for block in blocks {
        if let Some(r) = routes.iter().find(|r| overlaps(r.net, block)) {
            overlapping.push(format!("{block} (route {} dev {})", r.net, r.dev));
            continue;
        }
        let path = s
            .state_dir
            .join(format!("{}-{}.lease", block.network(), block.prefix_len()));
        let Ok(file) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
        else {
            continue;
        };
        let Ok(mut lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        lock.set_len(0)
            .and_then(|()| lock.write_all(s.prefix.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        return Ok((block, lock, path));
    }
    let why = if overlapping.is_empty() {
        String::new()
    } else {
        format!(
            "; blocks overlapping the host's routes were skipped: {}",
            overlapping.join(", ")
        )
    };
    Err(format!(
        "no free /{block_len} left in --egress-range {} (other fcx servers hold the rest{why}); \
         give another range with --egress-range",
        s.range
    ))
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// An IPv4 route of the host's main table.
#[derive(Debug, Clone)]
struct Route {
    net: Ipv4Net,
    dev: String,
}

/// The main table's IPv4 routes, except default routes and those through fcx's own links.
fn host_routes() -> Vec<Route> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    parse_routes(&text)
        .into_iter()
        .filter(|r| r.net.prefix_len() > 0 && !is_fcx_link(&r.dev))
        .collect()
}

/// Whether `name` is a host end of some fcx server's veth (`fcx` + 12 hex digits).
pub fn is_fcx_link(name: &str) -> bool {
    name.strip_prefix(LINK_FAMILY)
        .is_some_and(|rest| rest.len() == 12 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `/proc/net/route` rows as routes (`Iface Destination Gateway Flags ... Mask`, hex in
/// host byte order).
fn parse_routes(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let dst = Ipv4Addr::from(le_hex(cols.get(1)?)?);
            let len = le_hex(cols.get(7)?)?.count_ones() as u8;
            Some(Route {
                net: Ipv4Net::new(dst, len).ok()?.trunc(),
                dev: cols[0].to_owned(),
            })
        })
        .collect()
}

/// A `/proc/net/route` hex field (the address's bytes in memory order) as an address value.
fn le_hex(s: &str) -> Option<u32> {
    let v = u32::from_str_radix(s, 16).ok()?;
    Some(u32::from_be_bytes(v.to_le_bytes()))
}

/// Interfaces with an IPv4 default route in the main table.
pub fn uplinks() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let mut out: Vec<String> = parse_routes(&text)
        .into_iter()
        .filter(|r| r.net.prefix_len() == 0 && !is_fcx_link(&r.dev))
        .map(|r| r.dev)
        .collect();
    out.dedup();
    out
}

fn forwarding_path(dev: &str) -> PathBuf {
    Path::new("/proc/sys/net/ipv4/conf")
        .join(dev)
        .join("forwarding")
}

/// Whether IPv4 forwarding is on for `dev` (`None`: no such interface).
pub fn forwarding(dev: &str) -> Option<bool> {
    std::fs::read_to_string(forwarding_path(dev))
        .ok()
        .map(|v| v.trim() == "1")
}

/// Turns forwarding on for every uplink that has it off, recording each in
/// `<state dir>/forwarding`; returns every uplink fcx holds it on for (earlier servers'
/// included).
fn enable_uplink_forwarding(state_dir: &Path, uplinks: &[String]) -> Result<Vec<String>, String> {
    let record = state_dir.join("forwarding");
    let mut enabled = read_record(&record);
    for dev in uplinks.iter().cloned() {
        if forwarding(&dev) == Some(false) {
            std::fs::write(forwarding_path(&dev), "1").map_err(|e| {
                format!("cannot set net.ipv4.conf.{dev}.forwarding=1 (replies to instances enter there): {e}")
            })?;
            tracing::info!(uplink = %dev, "egress: set net.ipv4.conf.{dev}.forwarding=1 (restored when the last fcx server stops)");
            if !enabled.contains(&dev) {
                enabled.push(dev);
            }
        }
    }
    std::fs::write(&record, enabled.join("\n"))
        .map_err(|e| format!("cannot write {}: {e}", record.display()))?;
    Ok(enabled)
}

fn read_record(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Turns forwarding off where fcx turned it on, and forgets the record.
fn restore_forwarding(state_dir: &Path) {
    let record = state_dir.join("forwarding");
    for dev in read_record(&record) {
        if forwarding(&dev) == Some(true) {
            match std::fs::write(forwarding_path(&dev), "0") {
                Ok(()) => {
                    tracing::info!(uplink = %dev, "egress: restored net.ipv4.conf.{dev}.forwarding=0")
                }
                Err(e) => {
                    tracing::warn!(uplink = %dev, error = %e, "egress: cannot restore forwarding")
                }
            }
        }
    }
    let _ = std::fs::remove_file(record);
}

/// Lease files whose lock is held by a live server.
fn live_leases(state_dir: &Path) -> usize {
    lease_files(state_dir)
        .into_iter()
        .filter(|path| {
            File::open(path)
                .map(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err())
                .unwrap_or(false)
        })
        .count()
}

fn lease_files(state_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "lease"))
        .collect()
}

/// Removes the links, table and lease of every server whose lease lock is free (it died
/// without cleaning up).
fn reap_stale_leases(state_dir: &Path, nft: &Path) {
    for path in lease_files(state_dir) {
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        let owner = std::fs::read_to_string(&path).unwrap_or_default();
        let owner = owner.trim();
        if owner.starts_with("fcx-") {
            tracing::warn!(server = %owner, lease = %path.display(), "egress: removing what a dead server left");
            reap_prefix(owner, Some(nft));
        }
        let _ = std::fs::remove_file(&path);
        drop(lock);
    }
}

/// The links of this host named `<link prefix>…`: (index, name).
fn own_links(link_prefix: &str) -> Vec<(u32, String)> {
    Rtnl::open()
        .and_then(|mut r| r.links())
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, name)| name.starts_with(link_prefix))
        .collect()
}

/// Deletes server `prefix`'s links and nftables table (whatever mode left them; the table
/// only with `nft`).
pub fn reap_prefix(prefix: &str, nft: Option<&Path>) {
    let links = own_links(&link_prefix(prefix));
    if !links.is_empty() {
        if let Ok(mut rtnl) = Rtnl::open() {
            for (index, _) in &links {
                // ENODEV: it went with its namespace meanwhile.
                let _ = rtnl.delete_link(*index);
            }
        }
    }
    let table = table_name(prefix);
    let Some(nft) = nft else { return };
    if nft_table_exists(nft, &table) {
        let _ = nft_apply(nft, &format!("delete table inet {table}\n"));
    }
}

fn nft_table_exists(nft: &Path, table: &str) -> bool {
    Command::new(nft)
        .args(["list", "table", "inet", table])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Replaces table `inet <table>` by `rules` (its definition) in one transaction.
pub(crate) fn nft_replace(nft: &Path, table: &str, rules: &str) -> Result<(), String> {
    nft_apply(
        nft,
        &format!("table inet {table}\ndelete table inet {table}\n{rules}"),
    )
}

/// Runs `nft -f -` with `rules` (one atomic transaction).
pub(crate) fn nft_apply(nft: &Path, rules: &str) -> Result<(), String> {
    nft_run(nft, &["-f", "-"], rules)
}

/// Checks `rules` against the kernel without applying them (`nft -c`).
pub(crate) fn nft_check(nft: &Path, rules: &str) -> Result<(), String> {
    nft_run(nft, &["-c", "-f", "-"], rules)
}

fn nft_run(nft: &Path, args: &[&str], input: &str) -> Result<(), String> {
    let mut child = Command::new(nft)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", nft.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The server's nftables table (its definition). Instances are the links `<link prefix>*`, addressed from
/// `block`; `guarded` are uplinks whose forwarding fcx turned on.
pub fn ruleset(table: &str, link_prefix: &str, block: Ipv4Net, guarded: &[String]) -> String {
    let me = format!("\"{link_prefix}*\"");
    let any = format!("\"{LINK_FAMILY}*\"");
    let deny = "reject with icmpx admin-prohibited";
    let guard = if guarded.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = guarded.iter().map(|d| format!("\"{d}\"")).collect();
        format!(
            "\t\tiifname {{ {} }} oifname != {any} drop comment \"fcx turned forwarding on here for its instances' replies only\"\n",
            list.join(", ")
        )
    };
    format!(
        "table inet {table} {{\n\
         \tchain prerouting {{\n\
         \t\ttype filter hook prerouting priority raw; policy accept;\n\
         \t\tiifname {me} ip saddr != {block} drop comment \"instances send from their own block\"\n\
         \t\tiifname {me} fib saddr . iif oif missing drop comment \"and from their own address\"\n\
         \t}}\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy accept;\n\
         \t\tiifname {me} {deny} comment \"the host itself: every address, fcx's API included\"\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\toifname {me} ct state established,related accept\n\
         \t\tiifname {me} oifname {any} {deny} comment \"other instances\"\n\
         \t\toifname {me} drop comment \"nothing connects in\"\n\
         \t\tiifname {me} ip daddr {LINK_LOCAL} {deny} comment \"link-local: cloud metadata\"\n\
         \t\tiifname {me} meta nfproto ipv6 {deny}\n\
         {guard}\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority filter; policy accept;\n\
         \t\toifname {me} ct state established,related accept\n\
         \t\toifname {me} meta l4proto {{ tcp, udp, sctp }} drop comment \"host processes do not connect in either\"\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {block} oifname != {me} masquerade\n\
         \t}}\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hold_twice_the_capacity_and_at_most_a_slash_24() {
        assert_eq!(block_len(100), 24);
        assert_eq!(block_len(1), 24);
        assert_eq!(block_len(216), 23);
        assert_eq!(block_len(1000), 21);
    }

    #[test]
    fn parses_proc_net_route() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    fcx1a2b3c4d0002\t0200FB0A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n";
        let routes = parse_routes(text);
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[0].net.to_string(), "0.0.0.0/0");
        assert_eq!(routes[1].net.to_string(), "192.0.2.0/24");
        assert_eq!(routes[2].net.to_string(), "10.251.0.2/32");
        assert!(is_fcx_link(&routes[2].dev));
        assert!(!is_fcx_link("fcxt3h") && !is_fcx_link("eth0"));
    }

    #[test]
    fn link_names_fit_ifnamsiz_and_carry_the_prefix() {
        assert_eq!(link_prefix("fcx-1a2b3c4d"), "fcx1a2b3c4d");
        let name = format!("{}{:04x}", link_prefix("fcx-1a2b3c4d"), 0x1fe);
        assert_eq!(name, "fcx1a2b3c4d01fe");
        assert!(name.len() <= 15 && is_fcx_link(&name));
    }

    #[test]
    fn ruleset_isolates_instances_and_masquerades_their_block() {
        let block: Ipv4Net = "10.251.3.0/24".parse().unwrap();
        let rules = ruleset("fcx-1a2b3c4d", "fcx1a2b3c4d", block, &["eth0".into()]);
        for want in [
            "table inet fcx-1a2b3c4d {",
            "iifname \"fcx1a2b3c4d*\" reject with icmpx admin-prohibited",
            "oifname \"fcx1a2b3c4d*\" ct state established,related accept",
            "iifname \"fcx1a2b3c4d*\" oifname \"fcx*\" reject",
            "oifname \"fcx1a2b3c4d*\" drop",
            "ip daddr 169.254.0.0/16 reject",
            "iifname { \"eth0\" } oifname != \"fcx*\" drop",
            "ip saddr 10.251.3.0/24 oifname != \"fcx1a2b3c4d*\" masquerade",
        ] {
            assert!(rules.contains(want), "{want} missing from\n{rules}");
        }
        assert!(!ruleset("t", "l", block, &[]).contains("oifname != \"fcx*\" drop"));
    }

    #[test]
    fn ruleset_is_valid_for_this_kernel() {
        let Ok(nft) = nft_binary() else {
            eprintln!("skipped: no nft");
            return;
        };
        if !crate::sys::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let block: Ipv4Net = "10.251.3.0/24".parse().unwrap();
        let rules = ruleset("fcx-check", "fcxcheck", block, &["eth0".into()]);
        // `-c` checks against the kernel and applies nothing.
        nft_check(&nft, &rules).unwrap();
    }
}
