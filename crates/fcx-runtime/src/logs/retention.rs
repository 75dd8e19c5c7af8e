//! Size and age limits of a function's log directory: closed segments go, oldest first;
//! the segment an instance is writing is never removed here (the log task closes it first
//! when nothing else is left to remove).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::format;

/// Bytes a function's log files take, as the log task counts them between directory reads.
pub struct Budget {
    pub used: u64,
}

impl Budget {
    pub fn measure(dir: &Path) -> Budget {
        Budget {
            used: segments(dir).iter().map(|s| s.len).sum(),
        }
    }
}

struct Segment {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

fn segments(dir: &Path) -> Vec<Segment> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Segment> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(format::parse_segment)
                .is_some()
        })
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some(Segment {
                path: e.path(),
                len: meta.len(),
                modified: meta.modified().ok()?,
            })
        })
        .collect();
    // Oldest first; names break ties (segments of one instance count up).
    out.sort_by(|a, b| (a.modified, &a.path).cmp(&(b.modified, &b.path)));
    out
}

/// Removes closed segments of `dir`, oldest first, until at most `target` bytes are left.
/// Returns the bytes left and the bytes removed.
pub fn prune_to(dir: &Path, target: u64, open: &[PathBuf]) -> (u64, u64) {
    let all = segments(dir);
    let mut used: u64 = all.iter().map(|s| s.len).sum();
    let mut pruned = 0;
    for s in all.iter().filter(|s| !open.contains(&s.path)) {
        if used <= target {
            break;
        }
        if std::fs::remove_file(&s.path).is_ok() {
            used -= s.len;
            pruned += s.len;
        }
    }
    (used, pruned)
}

/// Removes closed segments older than `max_age` in every function directory under `root`.
pub fn prune_by_age(root: &Path, max_age: Duration, open: &[PathBuf]) -> u64 {
    let Some(cutoff) = SystemTime::now().checked_sub(max_age) else {
        return 0;
    };
    let Ok(dirs) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut pruned = 0;
    for dir in dirs.flatten().filter(|d| d.path().is_dir()) {
        for s in segments(&dir.path()) {
            if s.modified < cutoff
                && !open.contains(&s.path)
                && std::fs::remove_file(&s.path).is_ok()
            {
                pruned += s.len;
            }
        }
    }
    pruned
}

/// The highest segment number `instance` has in `dir` (0: none).
pub fn last_segment(dir: &Path, instance: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let (id, seq) = format::parse_segment(name.to_str()?)?;
                    (id == instance).then_some(seq)
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_removes_closed_segments_oldest_first_and_spares_open_ones() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("f");
        std::fs::create_dir(&dir).unwrap();
        let path = |n: u64| dir.join(format::segment_name("c-1", n));
        for n in 1..=4 {
            std::fs::write(path(n), vec![b'x'; 100]).unwrap();
            // Distinct modification times, oldest first.
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + n);
            std::fs::File::options()
                .write(true)
                .open(path(n))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        std::fs::write(dir.as_path().join("notes.txt"), "not a segment").unwrap();
        assert_eq!(Budget::measure(dir.as_path()).used, 400);
        // Segment 1 is open: 2 and 3 go.
        let (used, pruned) = prune_to(dir.as_path(), 200, &[path(1)]);
        assert_eq!((used, pruned), (200, 200));
        assert!(path(1).exists() && !path(2).exists() && !path(3).exists() && path(4).exists());
        assert_eq!(last_segment(dir.as_path(), "c-1"), 4);
        assert_eq!(last_segment(dir.as_path(), "c-2"), 0);
        // Everything closed is older than a day.
        assert_eq!(
            prune_by_age(root.path(), Duration::from_secs(86_400), &[path(1)]),
            100
        );
        assert!(path(1).exists() && !path(4).exists());
    }
}
