//! Pid files of live instances (`<run dir>/instances/<id>.pid`), so a server restarted after a
//! crash can find and end the instances its previous run left behind.

use std::path::{Path, PathBuf};

use crate::sys;

/// Records `pid` (with its start time, which tells it apart from a later process that reuses
/// the pid) and returns the file's path.
pub fn write(run_dir: &Path, id: &str, pid: u32) -> PathBuf {
    let dir = run_dir.join("instances");
    let path = dir.join(format!("{id}.pid"));
    let content = format!("{pid} {}\n", start_time(pid).unwrap_or(0));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, content)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write instance pid file");
    }
    path
}

/// Kills every instance recorded under `run_dir` that is still running; returns how many.
pub fn reap(run_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(run_dir.join("instances")) else {
        return 0;
    };
    let mut reaped = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut words = text.split_whitespace();
        let pid: u32 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        let started: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        if pid > 1 && sys::process_exists(pid as i32) && start_time(pid) == Some(started) {
            sys::kill_group(pid as i32, libc::SIGKILL);
            reaped += 1;
        }
        let _ = std::fs::remove_file(&path);
    }
    reaped
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    stat_after_name(pid)?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether `pid` is a running process: it exists and is not a zombie (a zombie's files,
/// and the locks on them, are already gone).
pub fn running(pid: u32) -> bool {
    stat_after_name(pid).is_some_and(|rest| !rest.starts_with('Z'))
}

/// `/proc/<pid>/stat` from field 3 (the state) on. The command name (field 2) may hold
/// spaces; the fields after it follow the last ')'.
fn stat_after_name(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.to_owned())
}
