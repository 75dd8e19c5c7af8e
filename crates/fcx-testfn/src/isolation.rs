//! Isolation probes for the isolation tests: each tries one thing a hostile function would
//! try and answers `allowed: <what happened>` or `denied: <the error>`, so a test prints and
//! checks every attempt. They never do harm when allowed: a file opened for writing is not
//! written (`/proc/sysrq-trigger`), a traced process is detached at once.

use std::io::Read;

/// Runs the probe `spec` (`mount`, `ptrace:<pid>`, `raw-socket`, `open-write:<path>`,
/// `read:<path>`, `create:<path>`).
pub fn run(spec: &str) -> String {
    let (what, arg) = spec.split_once(':').unwrap_or((spec, ""));
    let result = match what {
        "mount" => mount(),
        "ptrace" => match arg.parse() {
            Ok(pid) => ptrace(pid),
            Err(_) => return format!("error: ptrace needs a pid, got {arg:?}"),
        },
        "raw-socket" => raw_socket(),
        "open-write" => std::fs::OpenOptions::new()
            .write(true)
            .open(arg)
            .map(|_| format!("opened {arg} for writing")),
        "read" => std::fs::File::open(arg).and_then(|mut f| {
            let mut buf = [0u8; 64];
            let n = f.read(&mut buf)?;
            Ok(format!("read {n} bytes of {arg}"))
        }),
        "create" => {
            std::fs::write(arg, b"written by an instance\n").map(|()| format!("created {arg}"))
        }
        other => return format!("error: unknown probe {other:?}"),
    };
    match result {
        Ok(done) => format!("allowed: {done}"),
        Err(e) => format!("denied: {e}"),
    }
}

fn mount() -> std::io::Result<String> {
    nix::mount::mount(
        Some("none"),
        "/tmp",
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )?;
    Ok("mounted a tmpfs on /tmp".into())
}

fn ptrace(pid: i32) -> std::io::Result<String> {
    let pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::ptrace::attach(pid)?;
    let _ = nix::sys::ptrace::detach(pid, None);
    Ok(format!("attached to pid {pid}"))
}

fn raw_socket() -> std::io::Result<String> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
    let _fd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Icmp,
    )?;
    Ok("opened a raw ICMP socket".into())
}

/// The pids this process can see in `/proc` (its PID namespace's), ascending.
pub fn visible_pids() -> String {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Allocates `mb` MiB and touches every page, so the memory is really used.
pub fn allocate(mb: u64) -> String {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mb {
        let mut chunk = vec![0u8; 1024 * 1024];
        for i in (0..chunk.len()).step_by(4096) {
            chunk[i] = 1;
        }
        chunks.push(chunk);
    }
    let total: usize = chunks.iter().map(Vec::len).sum();
    format!("allocated {} MB", total / (1024 * 1024))
}
