//! The last invocations, for the status page: a fixed ring of fixed-size entries, filled
//! with a `try_lock` so recording never waits (an entry that meets a held lock is skipped
//! and counted) and never allocates (ids are copied into inline buffers, function labels
//! are shared `Arc`s).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::labels::FunctionLabels;

/// Invocations the ring keeps.
pub const RECENT_MAX: usize = 256;

/// Text of at most 64 bytes stored inline (request and instance ids are shorter).
#[derive(Clone, Copy)]
pub struct Short {
    len: u8,
    bytes: [u8; 64],
}

impl Short {
    /// `text`, cut at 64 bytes (on a character boundary).
    pub fn new(text: &str) -> Short {
        let mut end = text.len().min(64);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0; 64];
        bytes[..end].copy_from_slice(&text.as_bytes()[..end]);
        Short {
            len: end as u8,
            bytes,
        }
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

/// One finished invocation.
#[derive(Clone)]
pub struct Invocation {
    /// Milliseconds since the Unix epoch when it ended.
    pub at_ms: u64,
    /// The version it ran.
    pub labels: Arc<FunctionLabels>,
    /// Its request id.
    pub request_id: Short,
    /// The instance it ran on (empty when it reached none).
    pub instance_id: Short,
    /// `success`, `function_error`, `throttled` or `platform_error`.
    pub outcome: &'static str,
    /// The error type, limit or FC code; empty on success.
    pub code: &'static str,
    /// From its arrival to its answer's last byte.
    pub duration: Duration,
    /// Whether it started an instance.
    pub cold_start: bool,
}

struct Ring {
    entries: Vec<Invocation>,
    next: usize,
}

/// The ring of recent invocations.
pub struct Recent {
    ring: Mutex<Ring>,
    /// Entries skipped because the ring was being written or read at that moment.
    pub skipped: AtomicU64,
}

impl Default for Recent {
    fn default() -> Self {
        Recent {
            ring: Mutex::new(Ring {
                entries: Vec::with_capacity(RECENT_MAX),
                next: 0,
            }),
            skipped: AtomicU64::new(0),
        }
    }
}

impl Recent {
    /// Adds `entry`, replacing the oldest once the ring is full; never waits (an entry that
    /// meets the ring locked is counted in `skipped` instead).
    pub fn record(&self, entry: Invocation) {
        let Ok(mut ring) = self.ring.try_lock() else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let next = ring.next;
        if ring.entries.len() < RECENT_MAX {
            // Capacity was reserved up front: no allocation.
            ring.entries.push(entry);
        } else {
            ring.entries[next] = entry;
        }
        ring.next = (next + 1) % RECENT_MAX;
    }

    /// The kept invocations, newest first.
    pub fn snapshot(&self) -> Vec<Invocation> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let (newer, older) = ring.entries.split_at(ring.next.min(ring.entries.len()));
        newer
            .iter()
            .rev()
            .chain(older.iter().rev())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> Invocation {
        Invocation {
            at_ms: n,
            labels: Arc::new(FunctionLabels {
                function: "f".into(),
                qualifier: "LATEST".into(),
            }),
            request_id: Short::new(&format!("r{n}")),
            instance_id: Short::new("c-1"),
            outcome: "success",
            code: "",
            duration: Duration::from_millis(n),
            cold_start: false,
        }
    }

    #[test]
    fn keeps_the_newest_entries_newest_first() {
        let recent = Recent::default();
        for n in 0..(RECENT_MAX as u64 + 10) {
            recent.record(entry(n));
        }
        let kept = recent.snapshot();
        assert_eq!(kept.len(), RECENT_MAX);
        assert_eq!(kept[0].at_ms, RECENT_MAX as u64 + 9);
        assert_eq!(kept[RECENT_MAX - 1].at_ms, 10);
        assert_eq!(kept[0].request_id.as_str(), format!("r{}", RECENT_MAX + 9));
    }

    #[test]
    fn short_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(40); // 80 bytes
        assert_eq!(Short::new(&long).as_str().len(), 64);
        assert_eq!(Short::new("abc").as_str(), "abc");
    }
}
