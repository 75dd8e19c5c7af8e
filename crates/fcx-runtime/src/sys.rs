//! The only module with `unsafe`: thin wrappers over the namespace, mount, credential and
//! signal syscalls fcx needs (`unshare`, `setns`, `mount`, `ioctl`, `setsid`, `prctl`, `kill`).
//!
//! Changing a thread's network namespace is safe for memory but a hazard for fcx: a tokio
//! worker left in an instance's namespace would open every later connection there. So the
//! namespace changes take an [`OwnThread`], which only [`spawn_namespace_thread`] hands out,
//! on a thread of its own; what runs between `fork` and `exec` is an `unsafe fn`.
#![allow(unsafe_code)]

use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;

/// Proof that the code holding it runs on a thread made for one namespace job by
/// [`spawn_namespace_thread`], never on a tokio worker or another shared thread. Neither
/// `Send` nor `Sync`, so it cannot leave that thread.
pub struct OwnThread(PhantomData<*const ()>);

/// Spawns a thread for a job that changes its own namespace; `job` gets the proof.
pub fn spawn_namespace_thread<F, T>(
    builder: std::thread::Builder,
    job: F,
) -> io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce(&OwnThread) -> T + Send + 'static,
    T: Send + 'static,
{
    builder.spawn(move || job(&OwnThread(PhantomData)))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Moves the calling thread (one made for it, see [`OwnThread`]) into a new network namespace.
pub fn unshare_netns(_on: &OwnThread) -> io::Result<()> {
    // SAFETY: unshare only changes the calling thread's namespace membership; no memory is shared.
    check(unsafe { libc::unshare(libc::CLONE_NEWNET) })
}

/// Brings the loopback interface of the calling thread's network namespace up: a fresh
/// namespace has `lo` down, so nothing could connect to 127.0.0.1 inside it.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket creation; the fd is closed below on every path.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: sock is a valid socket and req a properly initialised ifreq for these ioctls.
    let result = unsafe {
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            check(libc::ioctl(sock, libc::SIOCSIFFLAGS, &req))
        }
    };
    // SAFETY: sock is owned here and closed exactly once.
    unsafe { libc::close(sock) };
    result
}

/// Moves the future children of the calling thread (one made for it, see [`OwnThread`]) into
/// a new PID namespace: the next process it forks is pid 1 there. The thread itself stays.
pub fn unshare_pidns(_on: &OwnThread) -> io::Result<()> {
    // SAFETY: unshare only changes the calling thread's namespace for its children.
    check(unsafe { libc::unshare(libc::CLONE_NEWPID) })
}

/// One file system an instance gets of its own, mounted in its mount namespace before `exec`
/// (strings prepared before the fork: nothing is allocated in the child).
#[derive(Debug)]
pub struct PrivateMount {
    pub target: std::ffi::CString,
    pub fstype: std::ffi::CString,
    pub flags: libc::c_ulong,
    pub data: Option<std::ffi::CString>,
}

/// What a freshly forked instance init does before `exec`: join its cgroups and the
/// instance's network namespace, start its own session (so fcx can signal its whole process
/// group), enter a mount and an IPC namespace of its own with private mounts (`/proc` of its
/// PID namespace, tmpfs `/tmp`...), put the status pipe on fd 3, and die with the thread that
/// spawned it. It stays root: the init drops to the function's user in the function's process.
///
/// Only async-signal-safe syscalls: this runs between `fork` and `exec`.
///
/// # Safety
///
/// Call it only in a freshly forked child before `exec` (a `pre_exec` hook): it changes the
/// calling process's namespaces, mounts and session for good, which in fcx itself would move
/// fcx into the instance's namespaces.
unsafe fn enter_instance(
    parent: Option<RawFd>,
    netns: RawFd,
    cgroup_procs: &[std::ffi::CString],
    mounts: &[PrivateMount],
    status_fd: RawFd,
) -> io::Result<()> {
    // First, while `parent` is still the fd it was (the dup2 below could reuse its number).
    die_with_fcx_now(parent)?;
    for path in cgroup_procs {
        // Joining before exec puts every later fork of the instance in its groups too.
        join_cgroup(path)?;
    }
    // SAFETY: called in the child between fork and exec; every call below is
    // async-signal-safe and touches only this process's own state; every pointer is a
    // NUL-terminated string prepared before the fork and alive for the call.
    unsafe {
        check(libc::setns(netns, libc::CLONE_NEWNET))?;
        check(libc::setsid())?;
        check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWIPC))?;
        // Nothing mounted here may propagate back to the host.
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        for m in mounts {
            let data = m
                .data
                .as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr().cast());
            let ret = libc::mount(
                m.fstype.as_ptr(),
                m.target.as_ptr(),
                m.fstype.as_ptr(),
                m.flags,
                data,
            );
            // A host without the directory (e.g. no /var/tmp) has nothing to hide there.
            if ret == -1 && *libc::__errno_location() != libc::ENOENT {
                return Err(io::Error::last_os_error());
            }
        }
        if status_fd == 3 {
            check(libc::fcntl(3, libc::F_SETFD, 0))?;
        } else {
            check(libc::dup2(status_fd, 3))?;
        }
    }
    Ok(())
}

/// A pidfd of this process, opened once (close-on-exec, as every pidfd). A forked child polls
/// it right after its `PR_SET_PDEATHSIG`: if fcx died before that `prctl`, no signal will ever
/// come. `getppid` cannot tell, since it reads 0 in an instance's new PID namespace. `None`
/// where the kernel has no `pidfd_open` (before 5.3): the check is skipped.
fn own_pidfd() -> Option<RawFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    static FD: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
    FD.get_or_init(|| {
        // SAFETY: pidfd_open on this process's own PID; the fd it returns is owned here.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
        // SAFETY: a new fd that nothing else owns.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    })
    .as_ref()
    .map(|fd| fd.as_raw_fd())
}

/// `PR_SET_PDEATHSIG` (SIGKILL) in a forked child. Then the child checks through `parent`
/// ([`own_pidfd`], taken before the fork) that fcx is still there. A child whose fcx already
/// died gives up before `exec` instead of running on as an orphan. Async-signal-safe.
fn die_with_fcx_now(parent: Option<RawFd>) -> io::Result<()> {
    // SAFETY: prctl and poll touch only the calling process's own state and `pfd`, which
    // lives on its stack.
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        if let Some(fd) = parent {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            if libc::poll(&mut pfd, 1, 0) > 0 && pfd.revents & libc::POLLIN != 0 {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
    }
    Ok(())
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is `procs`.
/// Async-signal-safe: callable between `fork` and `exec`.
fn join_cgroup(procs: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: open/write/close on a NUL-terminated path; no allocation, no shared state.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, b"0".as_ptr().cast(), 1);
        libc::close(fd);
        if written != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends `signal` to the process group led by `pid`. Instances run in their own session, so
/// the group holds the main process and every child that did not start a session of its own;
/// the kernel does not reuse a pid while a group of that id has members.
pub fn kill_group(pid: i32, signal: i32) {
    if pid <= 1 {
        return;
    }
    // SAFETY: kill has no memory effects; a group with no members only yields ESRCH.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// Whether a process with this pid exists (signal 0 probe).
pub fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Bytes waiting to be read in a pipe (`FIONREAD`).
pub fn pending_bytes(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: fd is a pipe owned by the caller; n is a valid out pointer.
    let ret = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if ret < 0 {
        0
    } else {
        n.max(0) as usize
    }
}

/// Whether fcx runs with root's powers (namespaces and setuid need them).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no side effects.
    unsafe { libc::geteuid() == 0 }
}

/// Blocks until `fd` is readable or hung up.
pub fn wait_readable(fd: RawFd) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: pfd is a valid pollfd array of length 1 for the duration of the call.
        let ret = unsafe { libc::poll(&mut pfd, 1, -1) };
        if ret >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Takes ownership of the inherited descriptor `fd` (when it is open), made close-on-exec.
pub fn take_fd_cloexec(fd: RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl on a descriptor number has no memory effects; it fails on a closed fd.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return None;
    }
    // SAFETY: the descriptor is open (fcntl succeeded) and nothing else in this process
    // owns it: it is the one the process was started with for this purpose.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// A pipe whose both ends are close-on-exec: (read end, write end).
pub fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// Makes `cmd`'s child (an instance's init) join its cgroups, the namespace `netns`, and a
/// mount namespace with `mounts`, with `status_fd` as its fd 3, before `exec`.
pub fn prepare_instance_command(
    cmd: &mut tokio::process::Command,
    netns: RawFd,
    cgroup_procs: Vec<std::ffi::CString>,
    mounts: Vec<PrivateMount>,
    status_fd: RawFd,
) {
    let parent = own_pidfd();
    let hook = move || {
        // SAFETY: pre_exec runs this in the forked child before exec, which is exactly
        // enter_instance's contract.
        unsafe { enter_instance(parent, netns, &cgroup_procs, &mounts, status_fd) }
    };
    // SAFETY: the hook only calls async-signal-safe syscalls (see `enter_instance`) and
    // allocates nothing; `netns` and `status_fd` stay open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// `mount(2)`: `source` on `target` as `fstype` with `flags` (`MS_*`) and fs-specific `data`
/// (e.g. overlay's `lowerdir=..,upperdir=..,workdir=..`, or a cgroup v1 controller name).
pub fn mount(
    source: &str,
    target: &std::path::Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let nul = |_| io::Error::new(io::ErrorKind::InvalidInput, "mount argument contains NUL");
    let source = std::ffi::CString::new(source).map_err(nul)?;
    let target = std::ffi::CString::new(target.as_os_str().as_bytes()).map_err(nul)?;
    let fstype = std::ffi::CString::new(fstype).map_err(nul)?;
    let data = data.map(std::ffi::CString::new).transpose().map_err(nul)?;
    let data_ptr = data
        .as_ref()
        .map_or(std::ptr::null(), |d| d.as_ptr().cast());
    // SAFETY: every pointer is a NUL-terminated string (or null for data) alive for the call.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data_ptr,
        )
    })
}

/// `umount2(2)` of `target`; `detach` makes it lazy (MNT_DETACH) for a busy mount.
pub fn umount(target: &std::path::Path, detach: bool) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let target = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let flags = if detach { libc::MNT_DETACH } else { 0 };
    // SAFETY: target is a NUL-terminated path alive for the call.
    check(unsafe { libc::umount2(target.as_ptr(), flags) })
}

/// The calling thread's kernel id (names `/proc/<pid>/task/<tid>`).
pub fn gettid() -> u32 {
    // SAFETY: gettid cannot fail and has no side effects.
    unsafe { libc::gettid() as u32 }
}

/// Moves the calling thread (one made for it, see [`OwnThread`]) into the network namespace
/// `fd` refers to.
pub fn setns_net(_on: &OwnThread, fd: RawFd) -> io::Result<()> {
    // SAFETY: setns only changes the calling thread's namespace membership.
    check(unsafe { libc::setns(fd, libc::CLONE_NEWNET) })
}

/// Makes `cmd`'s child inherit `keep_fd` (open in the parent until spawn returns), join the
/// cgroup of `cgroup_procs` (when given) and get SIGKILL when the thread that spawns it ends
/// (or fcx dies).
pub fn prepare_helper_command(
    cmd: &mut std::process::Command,
    keep_fd: RawFd,
    cgroup_procs: Option<std::ffi::CString>,
) {
    use std::os::unix::process::CommandExt;
    let parent = own_pidfd();
    // SAFETY: fcntl, `join_cgroup` and `die_with_fcx_now` are async-signal-safe and touch
    // only the child's own state (its copy of the fd table, its cgroup membership).
    unsafe {
        cmd.pre_exec(move || {
            if let Some(procs) = &cgroup_procs {
                join_cgroup(procs)?;
            }
            check(libc::fcntl(keep_fd, libc::F_SETFD, 0))?;
            die_with_fcx_now(parent)
        });
    }
}

/// Blocks until child `pid` has exited, leaving it unreaped so its pid cannot be reused yet.
pub fn wait_exited_unreaped(pid: u32) -> io::Result<()> {
    loop {
        // SAFETY: siginfo_t is plain old data; waitid writes only into it.
        let ret = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        match check(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Sends `signal` to the single process `pid`.
pub fn kill(pid: u32, signal: i32) {
    if pid <= 1 {
        return;
    }
    // SAFETY: kill has no memory effects.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Makes `cmd`'s child, and every process it starts, run under `SCHED_BATCH` (see
/// `crate::Scheduling`).
pub fn batch_scheduling(cmd: &mut tokio::process::Command) {
    // SAFETY: sched_setscheduler is async-signal-safe and changes only the child's own
    // scheduling policy; `param` lives on the child's stack.
    unsafe {
        cmd.pre_exec(|| {
            let param = libc::sched_param { sched_priority: 0 };
            // Best effort: where the policy is refused (a seccomp filter), the instance
            // still runs, under the default policy.
            libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
            Ok(())
        });
    }
}

/// Makes a tokio `cmd`'s child get SIGKILL when fcx dies (the OCI runtime of an instance).
pub fn die_with_fcx(cmd: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        let parent = own_pidfd();
        cmd.pre_exec(move || die_with_fcx_now(parent));
    }
}

/// How a process that snapshots can be taken of starts (see [`prepare_pidns_command`]).
pub struct PidnsSetup {
    /// The instance's network namespace.
    pub netns: RawFd,
    /// `cgroup.procs` files to join before anything else (one per hierarchy).
    pub cgroup_procs: Vec<std::ffi::CString>,
    /// Who the program runs as; `None`: keep root (the restorer, which gives each restored
    /// task its own credentials, and [`pidns_init`], which drops them for its child).
    pub user: Option<(u32, u32)>,
    /// Open fds handed to the program as the given numbers (at most four): the identity
    /// file, or a restorer's namespace, log pipe and identity file.
    pub fds: Vec<(RawFd, RawFd)>,
    /// Whether the parent stays behind as a subreaper (a restorer whose tree outlives it).
    pub subreaper: bool,
    /// A mount and an IPC namespace of the instance's own (not for a restorer: CRIU makes
    /// them from the image).
    pub private: Option<PrivateNamespace>,
}

/// The mount and IPC namespaces of a snapshot-enabled process instance: the hardened
/// instances' private mounts (`/proc` of its PID namespace, tmpfs `/tmp`...), in a shape CRIU
/// can dump (see docs/snapshots.md): the host mounts other instances come and go with
/// (`detach`) are gone from it, stdin is reopened inside it, and each directory of `keep`
/// that a private mount hides is bind-mounted back at its own path.
#[derive(Debug, Default)]
pub struct PrivateNamespace {
    /// The private mounts.
    pub mounts: Vec<PrivateMount>,
    /// Host mount points detached from the namespace first (lazily, errors ignored).
    pub detach: Vec<std::ffi::CString>,
    /// Directories that must stay reachable by their paths (at most four): the code
    /// directory (the first one, which also becomes the working directory) and the
    /// directory of the binary exec'd as the init.
    pub keep: Vec<KeepVisible>,
}

/// A directory a private mount may hide, put back at its own path (strings prepared before
/// the fork).
#[derive(Debug)]
pub struct KeepVisible {
    /// The directory.
    pub path: std::ffi::CString,
    /// Its ancestors below the root, outermost first, created in a private mount when the
    /// directory is hidden.
    pub ancestors: Vec<std::ffi::CString>,
}

impl KeepVisible {
    /// The directory `path` (absolute).
    pub fn new(path: &std::path::Path) -> io::Result<KeepVisible> {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &std::path::Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
        };
        let mut ancestors: Vec<std::ffi::CString> = path
            .ancestors()
            .skip(1)
            .filter(|a| a.parent().is_some())
            .map(c)
            .collect::<io::Result<_>>()?;
        ancestors.reverse();
        Ok(KeepVisible {
            path: c(path)?,
            ancestors,
        })
    }
}

/// `/proc/self/fd/N` for the descriptors [`KeepVisible`] directories are held open on in
/// the child (fixed numbers, so nothing is formatted after the fork).
const KEEP_FDS: [(libc::c_int, &std::ffi::CStr); 4] = [
    (60, c"/proc/self/fd/60"),
    (61, c"/proc/self/fd/61"),
    (62, c"/proc/self/fd/62"),
    (63, c"/proc/self/fd/63"),
];

/// Makes `cmd`'s child join its cgroups and network namespace, start a session, and fork
/// the program as PID 1 of a new PID namespace, session leader there: the shape CRIU can
/// dump and restore. The forked-off parent stays as a small waiter (closing every fd, so it
/// holds nothing open) and exits with the program's status (128+N for signal N), so the
/// caller's child still ends when the instance does. With `subreaper` it also collects
/// orphans (a `criu restore -d` and the restored tree it leaves).
pub fn prepare_pidns_command(cmd: &mut tokio::process::Command, setup: PidnsSetup) {
    let parent = own_pidfd();
    let hook = move || {
        // SAFETY: pre_exec runs this in the forked child before exec; see `enter_pidns`.
        unsafe { enter_pidns(&setup, parent) }
    };
    // SAFETY: the hook only makes async-signal-safe syscalls and allocates nothing; the fds
    // it uses stay open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// # Safety
///
/// Only in a freshly forked child before `exec` (a `pre_exec` hook): it changes the
/// process's namespaces and credentials for good and may never return in the waiter.
unsafe fn enter_pidns(s: &PidnsSetup, parent: Option<RawFd>) -> io::Result<()> {
    // First, while `parent` is still the fd it was (the dup2s below could reuse its number).
    die_with_fcx_now(parent)?;
    // SAFETY: called between fork and exec; every call is async-signal-safe and touches only
    // this process's own state.
    unsafe {
        for path in &s.cgroup_procs {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if written != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        check(libc::setns(s.netns, libc::CLONE_NEWNET))?;
        check(libc::setsid())?;
        // Copies above every target first, so no dup2 overwrites a source still needed.
        let mut high = [-1; 4];
        for (i, (fd, _)) in s.fds.iter().take(4).enumerate() {
            high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 64);
            if high[i] < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        for (i, (_, target)) in s.fds.iter().take(4).enumerate() {
            check(libc::dup2(high[i], *target))?;
            libc::close(high[i]);
        }
        if s.subreaper {
            check(libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))?;
        } else if s.private.is_some() {
            check(libc::unshare(
                libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWIPC,
            ))?;
        } else {
            check(libc::unshare(libc::CLONE_NEWPID))?;
        }
        let child = libc::fork();
        if child < 0 {
            return Err(io::Error::last_os_error());
        }
        if child > 0 {
            wait_and_exit(child);
        }
        // The program (PID 1 of the new namespace, or the restorer).
        if !s.subreaper {
            check(libc::setsid())?;
        }
        if let Some(private) = &s.private {
            enter_private_mounts(private)?;
        }
        if let Some((uid, gid)) = s.user {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))?;
        }
        // Set last: a credential change clears it. The parent is the waiter.
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
    }
    Ok(())
}

/// Sets up the private mounts of a snapshot-enabled instance, in its fresh mount namespace,
/// as PID 1 of its PID namespace (so `/proc` is that namespace's).
///
/// # Safety
///
/// Only in a freshly forked child before `exec`, in a mount namespace of its own.
unsafe fn enter_private_mounts(p: &PrivateNamespace) -> io::Result<()> {
    // SAFETY: async-signal-safe syscalls on NUL-terminated strings prepared before the fork;
    // they change only this process's (new) mount namespace and fd table.
    unsafe {
        // Nothing mounted here may propagate back to the host.
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        for target in &p.detach {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
        for (keep, (fd, _)) in p.keep.iter().zip(KEEP_FDS) {
            let opened = libc::open(
                keep.path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if opened < 0 {
                return Err(io::Error::last_os_error());
            }
            check(libc::dup3(opened, fd, libc::O_CLOEXEC))?;
            libc::close(opened);
        }
        for m in &p.mounts {
            let data = m
                .data
                .as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr().cast());
            let ret = libc::mount(
                m.fstype.as_ptr(),
                m.target.as_ptr(),
                m.fstype.as_ptr(),
                m.flags,
                data,
            );
            // A host without the directory (e.g. no /var/tmp) has nothing to hide there.
            if ret == -1 && *libc::__errno_location() != libc::ENOENT {
                return Err(io::Error::last_os_error());
            }
        }
        for (keep, (fd, fd_path)) in p.keep.iter().zip(KEEP_FDS) {
            if libc::access(keep.path.as_ptr(), libc::F_OK) != 0 {
                for dir in keep.ancestors.iter().chain(std::iter::once(&keep.path)) {
                    libc::mkdir(dir.as_ptr(), 0o755);
                }
                // Through the descriptor: the kernel follows /proc/self/fd/N to the hidden
                // directory itself.
                check(libc::mount(
                    fd_path.as_ptr(),
                    keep.path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            libc::close(fd);
        }
        // The working directory (set before the fork) and stdin (opened by fcx) belong to
        // the host's mounts, which CRIU cannot name in this namespace: both anew from here.
        if let Some(code) = p.keep.first() {
            check(libc::chdir(code.path.as_ptr()))?;
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if null < 0 {
            return Err(io::Error::last_os_error());
        }
        check(libc::dup2(null, 0))?;
        libc::close(null);
        // Nothing but stdio and the identity file (fd 3) goes on: a descriptor fcx itself
        // inherited without close-on-exec would name a host file CRIU cannot dump.
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
    }
    Ok(())
}

/// The waiter: holds no fd, reaps every child and exits with the status of the last one
/// that was not `first` (or with `first`'s when it failed: a restorer that gave up).
///
/// # Safety
///
/// Only in a forked child that will never return to Rust code.
unsafe fn wait_and_exit(first: libc::pid_t) -> ! {
    // SAFETY: async-signal-safe syscalls only; this process never returns.
    unsafe {
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
        let mut code = 0;
        loop {
            let mut status: libc::c_int = 0;
            let pid = libc::waitpid(-1, &mut status, 0);
            if pid < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                libc::_exit(code);
            }
            let this = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                continue;
            };
            if pid == first && this != 0 {
                libc::_exit(this);
            }
            code = this;
        }
    }
}

/// Makes `cmd` (a `criu dump`) run with the real uid and gid of the instance it dumps while
/// keeping root's effective ids: reading another user's resource limits (`prlimit`) needs
/// CAP_SYS_RESOURCE or matching real ids, and some hosts (this kind of VM) give root no
/// CAP_SYS_RESOURCE. Real ids apart from the effective ones make the exec a secure one,
/// which clears `PR_SET_PDEATHSIG`: a dump outlives a killed server, and the next start stops
/// it (`SnapshotStore::open`).
pub fn run_as_real_ids(cmd: &mut tokio::process::Command, uid: u32, gid: u32) {
    // SAFETY: setresgid/setresuid are async-signal-safe and change only the child.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(gid, 0, 0))?;
            check(libc::setresuid(uid, 0, 0))
        });
    }
}

/// Makes `cmd`'s child get `fd` (open in the parent until spawn returns) as fd `target`.
pub fn pass_fd(cmd: &mut tokio::process::Command, fd: RawFd, target: RawFd) {
    // SAFETY: dup2 and fcntl are async-signal-safe and change only the child's fd table.
    unsafe {
        cmd.pre_exec(move || {
            if fd == target {
                check(libc::fcntl(fd, libc::F_SETFD, 0))
            } else {
                check(libc::dup2(fd, target))
            }
        });
    }
}

/// `capset(2)`'s header and one 32-bit half of the sets (`_LINUX_CAPABILITY_VERSION_3`).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets the calling thread's effective and permitted capabilities to `caps` (bit numbers
/// below 32), nothing inheritable.
fn set_caps(caps: u32) -> io::Result<()> {
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        CapData {
            effective: caps,
            permitted: caps,
            inheritable: 0,
        },
        CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    // SAFETY: header and data are the v3 layout capset expects, alive for the call.
    check(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } as libc::c_int)
}

/// PID 1 of a snapshot-enabled process instance (`fcx __fcx-pidns-init UID GID -- PROG
/// ARGS...`, exec'd as root by the pid-namespace child). It becomes `uid:gid` like the
/// program, so CRIU, which must read every task's resource limits with the same real ids
/// (`prlimit`; this kind of host gives root no CAP_SYS_RESOURCE), can dump both; it keeps
/// only CAP_SYS_ADMIN and CAP_DAC_OVERRIDE, which CRIU's parasite needs in the namespace's
/// init to mount the namespace's own `/proc` beside the code. Then it forks the program (no
/// capabilities, default signal handling), passes SIGTERM/SIGINT/SIGHUP on to it, reaps
/// orphans, and returns the program's status (128+N for signal N) once it ends. The program
/// cannot reach its capabilities: ptrace needs a superset of them, and its `/proc` files
/// stay root's. Call it first thing in `main`, while the process has one thread.
pub fn pidns_init(uid: u32, gid: u32, argv: &[std::ffi::CString]) -> i32 {
    if argv.is_empty() {
        return 127;
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: credential calls on this (single) thread, with valid arguments.
    let dropped = unsafe {
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0))
            .and_then(|()| check(libc::setgroups(0, std::ptr::null())))
            .and_then(|()| check(libc::setresgid(gid, gid, gid)))
            .and_then(|()| check(libc::setresuid(uid, uid, uid)))
    };
    // CAP_DAC_OVERRIDE is capability 1, CAP_SYS_ADMIN 21.
    let kept = (1u32 << 21) | (1u32 << 1);
    if dropped.and_then(|()| set_caps(kept)).is_err() {
        return 126;
    }
    // SAFETY: single-threaded at this point (called before anything spawns threads), so
    // fork is safe; the child only makes async-signal-safe calls before exec; sigset_t is
    // plain old data.
    unsafe {
        let mut forwarded: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut forwarded);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD] {
            libc::sigaddset(&mut forwarded, sig);
        }
        // Blocked signals reach a PID-namespace init even from outside it; sigwaitinfo
        // takes them one by one.
        libc::sigprocmask(libc::SIG_BLOCK, &forwarded, std::ptr::null_mut());
        let child = libc::fork();
        if child < 0 {
            return 126;
        }
        if child == 0 {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            // No capabilities at all for the program (exec as a non-root user would drop
            // them too; this does not depend on it).
            let none = [CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            }; 2];
            let header = CapHeader {
                version: 0x2008_0522,
                pid: 0,
            };
            if libc::syscall(libc::SYS_capset, &header, none.as_ptr()) != 0 {
                libc::_exit(126);
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            libc::execvp(ptrs[0], ptrs.as_ptr());
            libc::_exit(127);
        }
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&forwarded, &mut info);
            if sig == libc::SIGCHLD {
                loop {
                    let mut status: libc::c_int = 0;
                    let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                    if pid <= 0 {
                        break;
                    }
                    if pid == child {
                        if libc::WIFEXITED(status) {
                            return libc::WEXITSTATUS(status);
                        }
                        if libc::WIFSIGNALED(status) {
                            return 128 + libc::WTERMSIG(status);
                        }
                    }
                }
            } else if sig > 0 {
                libc::kill(child, sig);
            }
        }
    }
}

/// The capability number of CAP_SYS_PTRACE (`linux/capability.h`).
#[cfg(test)]
pub const CAP_SYS_PTRACE: u32 = 19;

/// Drops capability `cap` from the calling thread's effective set (capabilities are per
/// thread): tests play a caller that lacks it, as fcx does in a container.
#[cfg(test)]
pub fn drop_effective_capability(cap: u32) -> io::Result<()> {
    let mut header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget writes one header and two data structs (version 3), both live and of
    // the kernel's layout.
    let got = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    check(got as libc::c_int)?;
    let word = (cap / 32) as usize;
    data[word].effective &= !(1u32 << (cap % 32));
    // SAFETY: as above; capset only reads them, and changes the calling thread alone.
    let set = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    check(set as libc::c_int)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;

    /// `/bin/true`, spawned with [`die_with_fcx_now`] watching `parent`.
    fn spawn_watching(parent: RawFd) -> io::Result<std::process::ExitStatus> {
        let mut cmd = std::process::Command::new("/bin/true");
        // SAFETY: die_with_fcx_now is async-signal-safe (prctl and poll only).
        unsafe {
            cmd.pre_exec(move || die_with_fcx_now(Some(parent)));
        }
        cmd.status()
    }

    #[test]
    fn a_child_whose_parent_is_gone_gives_up_before_exec() {
        // A process that has ended stands for an fcx that died before the child's prctl.
        let mut gone = std::process::Command::new("/bin/true").spawn().unwrap();
        // SAFETY: pidfd_open on our own unreaped child; the fd is owned below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, gone.id() as libc::pid_t, 0) };
        assert!(fd >= 0, "pidfd_open: {}", io::Error::last_os_error());
        // SAFETY: a new fd that nothing else owns.
        let gone_fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        gone.wait().unwrap();
        let e = spawn_watching(gone_fd.as_raw_fd()).expect_err("ran with its parent gone");
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "{e}");
        // This process is alive: the same child runs.
        let alive = own_pidfd().expect("pidfd_open on this kernel");
        assert!(spawn_watching(alive).unwrap().success());
    }
}
