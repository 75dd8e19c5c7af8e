//! The init of a process instance: pid 1 of the instance's PID namespace, run as root by
//! `fcx __instance-init UID GID -- PROGRAM ARGS...` (the fcx binary itself, exec'd by the
//! process backend after its namespaces and mounts are set up).
//!
//! A PID namespace's init ignores every signal it has no handler for, and orphans are
//! re-parented to it. So the function does not run as pid 1: the init starts it as pid 2
//! under the function's own uid and gid (in its own process group), forwards the signals
//! fcx sends (SIGTERM on stop, ...) to that group, reaps every orphan, and ends when the
//! function ends, which takes down everything else in the namespace. How the function
//! ended (`exit N` / `signal N`) goes to fd 3, a pipe fcx reads: the init itself cannot die
//! of the function's signal. The kernel's OOM killer is told to spare the init.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;

use nix::sys::signal::{killpg, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The hidden subcommand of the fcx binary that runs [`main`].
pub const SUBCOMMAND: &str = "__instance-init";

/// The path the process backend execs as each instance's init: `/proc/self/fd/N`, N a
/// descriptor on the fcx binary (`current_exe`) opened once and kept for the process's life,
/// at N ≥ 10, clear of the status pipe the child puts on fd 3. The exec happens after the
/// instance's private mounts are in place, so a plain path under `/tmp` (a checkout built
/// there) was hidden by the instance's own `/tmp` and failed with ENOENT; a descriptor
/// reaches the file whatever the mounts hide.
pub fn program() -> std::io::Result<std::path::PathBuf> {
    static FD: std::sync::OnceLock<std::os::fd::RawFd> = std::sync::OnceLock::new();
    let fd = match FD.get() {
        Some(fd) => *fd,
        None => {
            let file = std::fs::File::open(std::env::current_exe()?)?;
            let dup = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))
                .map_err(std::io::Error::from)?;
            // Never closed: every instance this process starts execs it. (Two first callers
            // at once leave one spare descriptor open, which is harmless.)
            *FD.get_or_init(|| dup)
        }
    };
    Ok(std::path::PathBuf::from(format!("/proc/self/fd/{fd}")))
}

/// Signals the init passes on to the function's process group.
const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// How the function's process ended, as the init reports it on fd 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Exit(i32),
    /// This signal killed it.
    Signal(i32),
}

impl Ended {
    /// The line the init writes.
    pub fn encode(self) -> String {
        match self {
            Ended::Exit(code) => format!("exit {code}\n"),
            Ended::Signal(sig) => format!("signal {sig}\n"),
        }
    }

    /// What a line written by [`Ended::encode`] says (`None`: not such a line).
    pub fn decode(text: &str) -> Option<Ended> {
        let (kind, n) = text.trim().split_once(' ')?;
        let n: i32 = n.parse().ok()?;
        match kind {
            "exit" => Some(Ended::Exit(n)),
            "signal" => Some(Ended::Signal(n)),
            _ => None,
        }
    }
}

/// Runs the init with the arguments after the subcommand; returns the exit code.
pub fn main(args: &[OsString]) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("fcx init: {message}");
            // 127: as a shell says of a command it cannot run.
            127
        }
    }
}

fn run(args: &[OsString]) -> Result<i32, String> {
    let number = |i: usize, what: &str| -> Result<u32, String> {
        args.get(i)
            .and_then(|a| a.to_str())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("usage: {SUBCOMMAND} UID GID -- PROGRAM ARGS... ({what})"))
    };
    let (uid, gid) = (number(0, "uid")?, number(1, "gid")?);
    if args.get(2).map(|a| a.as_os_str()) != Some("--".as_ref()) || args.len() < 4 {
        return Err(format!("usage: {SUBCOMMAND} UID GID -- PROGRAM ARGS..."));
    }
    let program = &args[3];
    // Fd 3 is the pipe to fcx (put there by the backend), close-on-exec from here on so
    // the function does not inherit it.
    let mut status = crate::sys::take_fd_cloexec(3).map(std::fs::File::from);

    let mut signals = SigSet::empty();
    signals.add(Signal::SIGCHLD);
    for s in FORWARDED {
        signals.add(s);
    }
    signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;

    // std clears the signal mask in the child and drops supplementary groups with setuid.
    let child = std::process::Command::new(program)
        .args(&args[4..])
        .uid(uid)
        .gid(gid)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {program:?}: {e}"))?;
    let pid = Pid::from_raw(child.id() as i32);
    drop(child);
    // The function keeps the default OOM score; the init (inherited by nothing) is spared.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    // The init's cwd must not pin the code dir: fcx finds an instance's processes by theirs.
    let _ = std::env::set_current_dir("/");

    loop {
        let Ok(signal) = signals.wait() else { continue };
        if signal != Signal::SIGCHLD {
            let _ = killpg(pid, signal);
            continue;
        }
        while let Ok(reaped) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            let ended = match reaped {
                WaitStatus::Exited(p, code) if p == pid => Ended::Exit(code),
                WaitStatus::Signaled(p, sig, _) if p == pid => Ended::Signal(sig as i32),
                WaitStatus::StillAlive => break,
                // An orphan re-parented to the init: reaped, nothing else.
                _ => continue,
            };
            if let Some(file) = status.as_mut() {
                let _ = file.write_all(ended.encode().as_bytes());
            }
            return Ok(match ended {
                Ended::Exit(code) => code,
                Ended::Signal(sig) => 128 + sig,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_round_trip() {
        for e in [Ended::Exit(0), Ended::Exit(7), Ended::Signal(6)] {
            assert_eq!(Ended::decode(&e.encode()), Some(e));
        }
        assert_eq!(Ended::decode(""), None);
        assert_eq!(Ended::decode("exit x"), None);
    }
}
