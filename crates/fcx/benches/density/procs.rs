//! What a server and everything it started cost, read from `/proc`: the process tree under a
//! pid, each process's PSS (`smaps_rollup`), and fcx's own fds and threads.

use std::collections::HashMap;

/// What a process is, from the file name of its `argv[0]` (pasta re-executes itself as
/// `passt.avx2`, so the command name alone does not tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Outbound-networking helpers (`pasta`).
    Pasta,
    /// OCI runtime processes (`crun`, `runc`, `youki`, `conmon`).
    Runtime,
    /// Anything else under the server: the functions' own processes.
    Instance,
}

impl Kind {
    fn of(argv0: &str) -> Kind {
        let name = argv0.rsplit('/').next().unwrap_or(argv0);
        if name == "pasta" || name.starts_with("passt") {
            Kind::Pasta
        } else if ["crun", "runc", "youki", "conmon"].contains(&name) {
            Kind::Runtime
        } else {
            Kind::Instance
        }
    }
}

/// PSS (kB) and process count per kind.
#[derive(Debug, Default, Clone)]
pub struct Usage {
    pub by_kind: HashMap<Kind, (u64, usize)>,
}

impl Usage {
    pub fn pss(&self, kind: Kind) -> u64 {
        self.by_kind.get(&kind).map_or(0, |(kb, _)| *kb)
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.by_kind.get(&kind).map_or(0, |(_, n)| *n)
    }
}

/// PSS in kB of one process (0 if it is gone or has no memory, like a zombie).
pub fn pss_kb(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of `pid`.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Threads of `pid`.
pub fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Every live process below `root` (not `root` itself), with its kind.
pub fn descendants(root: u32) -> Vec<(u32, Kind)> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            // A zombie has no command line and no memory.
            if !argv0.is_empty() {
                out.push((child, Kind::of(&String::from_utf8_lossy(argv0))));
            }
            todo.push(child);
        }
    }
    out
}

/// PSS per kind of everything below `root`.
pub fn usage_below(root: u32) -> Usage {
    let mut usage = Usage::default();
    for (pid, kind) in descendants(root) {
        let slot = usage.by_kind.entry(kind).or_default();
        slot.0 += pss_kb(pid);
        slot.1 += 1;
    }
    usage
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `MemTotal - MemAvailable` in kB: what the whole host uses, kernel included (noisy on a
/// shared machine; printed for the kernel side of costs, which PSS does not show).
pub fn host_used_kb() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field("MemTotal:").saturating_sub(field("MemAvailable:"))
}

/// Kernel slab memory in kB (`Slab:` of /proc/meminfo): network devices, sockets and
/// namespaces live there.
pub fn slab_kb() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
