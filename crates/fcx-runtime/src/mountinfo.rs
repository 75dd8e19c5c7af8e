//! `/proc/self/mountinfo`, parsed once for everyone who needs the host's mounts: the host
//! checks (cgroup layout), the OCI backend (cgroup hierarchies, leftover overlay mounts) and
//! the process backend (the cgroup2 mount).

use std::path::PathBuf;

/// One line of `/proc/self/mountinfo`, the fields the host checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,nodev,noexec,relatime`).
    pub options: String,
    /// Filesystem type (`cgroup2`, `overlay`, ...).
    pub fstype: String,
    /// Per-superblock options: for a cgroup v1 mount, its controllers (`rw,memory`).
    pub super_options: String,
}

/// Parses mountinfo text; malformed lines are skipped (the kernel does not write any).
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut left = left.split_whitespace().skip(4);
            let mount_point = left.next()?;
            let options = left.next().unwrap_or("").to_string();
            let mut right = right.split_whitespace();
            let fstype = right.next()?.to_string();
            let _source = right.next()?;
            let super_options = right.next().unwrap_or("").to_string();
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(mount_point)),
                options,
                fstype,
                super_options,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount `path` lives on: the last-mounted entry whose mount point is the longest
/// prefix of `path` (which should be absolute and free of symlinks).
pub fn mount_of<'a>(mounts: &'a [MountEntry], path: &std::path::Path) -> Option<&'a MountEntry> {
    let best = mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .map(|m| m.mount_point.as_os_str().len())
        .max()?;
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point.as_os_str().len() == best && path.starts_with(&m.mount_point))
}

/// Whether a mount's options forbid executing files (`noexec`).
pub fn is_noexec(entry: &MountEntry) -> bool {
    entry.options.split(',').any(|o| o == "noexec")
}

/// The calling process's mounts (empty if `/proc` cannot be read).
pub fn current() -> Vec<MountEntry> {
    parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}
