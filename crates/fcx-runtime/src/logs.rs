//! An instance's log: everything its processes write to stdout and stderr, stored in a file
//! per instance with FC's per-request markers, plus the in-memory tails fcx answers with
//! (`x-fc-log-result`, the `Logs :` part of FunctionNotStarted).
//!
//! Which lines an error answer may carry: only the failing request's own. Every request
//! opens a window at its start marker ([`InstanceLog::begin`]); [`InstanceLog::since_begin`]
//! gives what the instance wrote since. With `instanceConcurrency` 1 that is the request's
//! own output (and whatever the instance printed late for the one before it); with more,
//! nothing when another request ran on the instance meanwhile, since their lines cannot be
//! told apart.
//!
//! One reader thread per instance drains its output pipe. It reads only while holding the
//! state lock, so "the pipe is empty and the lock is free" means every byte the process wrote
//! before answering a request is already in that request's capture.
//!
//! A streamed answer ends in synchronous code, so its end marker may be written later by a
//! task (once the reader caught up); the next request's start marker waits for it, so every
//! request's lines stay between its own markers.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::sys;

/// How much recent output is kept in memory for error messages.
const RECENT_MAX: usize = 8 * 1024;
/// How much of one request's output is kept in memory (the tail returned is 4 KB).
const CAPTURE_MAX: usize = 16 * 1024;

#[derive(Default)]
struct State {
    file: Option<BufWriter<File>>,
    recent: VecDeque<u8>,
    captures: HashMap<String, Vec<u8>>,
    /// Bytes written so far (the offset of the end of `recent`).
    total: u64,
    /// Open requests: where their output starts, and whether another request overlapped.
    windows: HashMap<String, Window>,
}

struct Window {
    start: u64,
    shared: bool,
}

/// The log of one instance.
pub struct InstanceLog {
    state: Mutex<State>,
    pipe: Mutex<Option<RawFd>>,
    /// End markers a task still has to write (see [`InstanceLog::end_when_settled`]).
    deferred_ends: watch::Sender<usize>,
}

impl InstanceLog {
    /// The log of instance `id` of `function`: `<log_dir>/<function>/<id>.log`, where
    /// `fcx logs` reads it.
    pub fn for_instance(log_dir: &Path, function: &str, id: &str) -> Arc<InstanceLog> {
        Self::create(&log_dir.join(function).join(format!("{id}.log")))
    }

    /// A log kept in memory only (instances without a log file, such as the test fake's).
    pub fn in_memory() -> Arc<InstanceLog> {
        Arc::new(InstanceLog {
            state: Mutex::new(State::default()),
            pipe: Mutex::new(None),
            deferred_ends: watch::Sender::new(0),
        })
    }

    /// A log written to `path` (created with its parent directories); in memory only if that fails.
    pub fn create(path: &Path) -> Arc<InstanceLog> {
        let file = path
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| File::options().create(true).append(true).open(path))
            .map_err(|e| tracing::warn!(path = %path.display(), error = %e, "cannot open instance log file"))
            .ok()
            .map(BufWriter::new);
        Arc::new(InstanceLog {
            state: Mutex::new(State {
                file,
                ..State::default()
            }),
            pipe: Mutex::new(None),
            deferred_ends: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the thread that drains `pipe` (the instance's stdout and stderr) into this log.
    pub fn attach(self: &Arc<Self>, pipe: OwnedFd, name: &str) {
        *self.pipe.lock().unwrap_or_else(|p| p.into_inner()) = Some(pipe.as_raw_fd());
        let log = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("log-{name}"))
            .stack_size(64 * 1024)
            .spawn(move || log.drain(pipe));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start instance log reader");
        }
    }

    fn drain(&self, pipe: OwnedFd) {
        let mut file = File::from(pipe);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if sys::wait_readable(file.as_raw_fd()).is_err() {
                break;
            }
            let mut state = self.lock();
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => append(&mut state, &buf[..n]),
            }
            if let Some(f) = state.file.as_mut() {
                let _ = f.flush();
            }
        }
        *self.pipe.lock().unwrap_or_else(|p| p.into_inner()) = None;
        drop(file);
        if let Some(f) = self.lock().file.as_mut() {
            let _ = f.flush();
        }
    }

    /// Writes one line of fcx's own (a marker or a note) into the log and every open capture.
    pub fn line(&self, text: &str) {
        let mut state = self.lock();
        append(&mut state, text.as_bytes());
        append(&mut state, b"\n");
    }

    /// Writes `marker` and, when `capture` is set, starts collecting output for `request_id`
    /// (only callers that return a log tail need it: every open capture costs each line a copy).
    /// Waits first for end markers still deferred, so this request's marker comes after them.
    pub async fn begin(&self, request_id: &str, marker: &str, capture: bool) {
        if *self.deferred_ends.borrow() != 0 {
            let mut ends = self.deferred_ends.subscribe();
            let _ = ends.wait_for(|n| *n == 0).await;
        }
        let mut state = self.lock();
        if capture {
            state.captures.insert(request_id.to_owned(), Vec::new());
        }
        let shared = !state.windows.is_empty();
        for w in state.windows.values_mut() {
            w.shared = true;
        }
        let start = state.total;
        state
            .windows
            .insert(request_id.to_owned(), Window { start, shared });
        append(&mut state, marker.as_bytes());
        append(&mut state, b"\n");
    }

    /// The last `max` bytes the instance wrote since `request_id` began; empty when
    /// another request ran on it meanwhile, unless `one_at_a_time` (the instance serves one
    /// request at a time, so an overlap is only the previous request's late end marker).
    /// An error answer must not carry other requests' lines.
    pub fn since_begin(&self, request_id: &str, max: usize, one_at_a_time: bool) -> String {
        let state = self.lock();
        let Some(w) = state
            .windows
            .get(request_id)
            .filter(|w| one_at_a_time || !w.shared)
        else {
            return String::new();
        };
        let first = state.total - state.recent.len() as u64;
        let skip = w.start.saturating_sub(first) as usize;
        let bytes: Vec<u8> = state.recent.iter().skip(skip).copied().collect();
        String::from_utf8_lossy(fcx_protocol::logs::tail(&bytes, max)).into_owned()
    }

    /// Waits until output the process wrote so far is read, writes `marker`, and returns the
    /// request's collected output.
    pub async fn end(&self, request_id: &str, marker: &str) -> Vec<u8> {
        let capturing = self.lock().captures.contains_key(request_id);
        if capturing {
            self.settle().await;
        }
        let mut state = self.lock();
        append(&mut state, marker.as_bytes());
        append(&mut state, b"\n");
        state.windows.remove(request_id);
        state.captures.remove(request_id).unwrap_or_default()
    }

    /// Like [`end`](Self::end) without waiting for unread output (a streamed answer ends
    /// in synchronous code).
    pub fn end_now(&self, request_id: &str, marker: &str) {
        let mut state = self.lock();
        append(&mut state, marker.as_bytes());
        append(&mut state, b"\n");
        state.windows.remove(request_id);
        state.captures.remove(request_id);
    }

    /// Ends a request from synchronous code (a streamed answer's end): when every byte the
    /// process wrote is already read (the usual case: one `FIONREAD`), the marker is written
    /// at once; otherwise a task writes it once the reader caught up, so the request's lines
    /// stay between its markers in the stored log, and [`begin`](Self::begin) waits for it.
    pub fn end_when_settled(self: &Arc<Self>, request_id: &str, marker: String) {
        let settled = {
            let fd = self.pipe.lock().unwrap_or_else(|p| p.into_inner());
            let _state = self.lock();
            fd.map(sys::pending_bytes).unwrap_or(0) == 0
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if !settled => {
                self.deferred_ends.send_modify(|n| *n += 1);
                let pending = DeferredEnd(Arc::clone(self));
                let rid = request_id.to_owned();
                rt.spawn(async move {
                    pending.0.settle().await;
                    pending.0.end_now(&rid, &marker);
                });
            }
            _ => self.end_now(request_id, &marker),
        }
    }

    /// Waits (briefly, bounded) until the output pipe holds no unread bytes.
    pub async fn settle(&self) {
        for _ in 0..200 {
            let pending = {
                // The pipe lock keeps the fd open while it is queried; holding the state
                // lock means the reader is not between its read and its append.
                let fd = self.pipe.lock().unwrap_or_else(|p| p.into_inner());
                let _state = self.lock();
                fd.map(sys::pending_bytes).unwrap_or(0)
            };
            if pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Writes buffered lines (markers above all) to the log file. The scheduler calls it
    /// periodically, so the hot path never waits on a file write.
    pub fn flush(&self) {
        if let Some(f) = self.lock().file.as_mut() {
            let _ = f.flush();
        }
    }

    /// The last `max` bytes of the instance's output, as text.
    pub fn recent(&self, max: usize) -> String {
        let state = self.lock();
        let skip = state.recent.len().saturating_sub(max);
        let bytes: Vec<u8> = state.recent.iter().skip(skip).copied().collect();
        String::from_utf8_lossy(fcx_protocol::logs::tail(&bytes, max)).into_owned()
    }
}

/// One deferred end marker; counted down when its task ends (also if the task is dropped at
/// shutdown), so a waiting `begin` never waits for a marker no one will write.
struct DeferredEnd(Arc<InstanceLog>);

impl Drop for DeferredEnd {
    fn drop(&mut self) {
        self.0.deferred_ends.send_modify(|n| *n -= 1);
    }
}

fn append(state: &mut State, bytes: &[u8]) {
    if let Some(f) = state.file.as_mut() {
        let _ = f.write_all(bytes);
    }
    state.total += bytes.len() as u64;
    state.recent.extend(bytes);
    let excess = state.recent.len().saturating_sub(RECENT_MAX);
    state.recent.drain(..excess);
    for capture in state.captures.values_mut() {
        capture.extend_from_slice(bytes);
        let excess = capture.len().saturating_sub(CAPTURE_MAX);
        if excess > 0 {
            capture.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    use super::*;

    /// The test plays the reader thread: output stays in the pipe until it drains it, so the
    /// streamed end marker is deferred every time.
    #[tokio::test]
    async fn a_request_begins_only_after_the_previous_streamed_end_marker() {
        let log = InstanceLog::in_memory();
        let (read_end, write_end) = sys::pipe().unwrap();
        *log.pipe.lock().unwrap() = Some(read_end.as_raw_fd());
        log.begin("a", "START a", false).await;
        File::from(write_end).write_all(b"line of a\n").unwrap();
        log.end_when_settled("a", "END a".to_owned());

        let next = tokio::spawn({
            let log = Arc::clone(&log);
            async move { log.begin("b", "START b", false).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!next.is_finished(), "b began before a's output was read");

        let mut buf = [0u8; 64];
        let n = File::from(read_end.try_clone().unwrap())
            .read(&mut buf)
            .unwrap();
        append(&mut log.lock(), &buf[..n]);
        next.await.unwrap();
        assert_eq!(
            log.recent(RECENT_MAX),
            "START a\nline of a\nEND a\nSTART b\n"
        );
    }

    #[tokio::test]
    async fn an_error_gets_only_its_own_requests_lines() {
        let log = InstanceLog::in_memory();
        log.begin("r1", "START r1", false).await;
        log.line("secret of r1");
        log.line("END r1 (not yet)");
        tokio_free_end(&log, "r1");
        log.begin("r2", "START r2", false).await;
        log.line("r2 crashing");
        let logs = log.since_begin("r2", 2048, true);
        assert!(logs.contains("r2 crashing"), "{logs}");
        assert!(!logs.contains("secret of r1"), "{logs}");
        // Two requests at once: their lines cannot be told apart, so neither gets any.
        log.begin("r3", "START r3", false).await;
        log.line("r3 line");
        assert_eq!(log.since_begin("r2", 2048, false), "");
        assert_eq!(log.since_begin("r3", 2048, false), "");
        assert_eq!(log.since_begin("unknown", 2048, true), "");
    }

    fn tokio_free_end(log: &InstanceLog, rid: &str) {
        log.end_now(rid, &format!("END {rid}"));
    }
}
