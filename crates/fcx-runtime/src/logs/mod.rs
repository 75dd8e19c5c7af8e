//! An instance's log: everything its processes write to stdout and stderr, stored by the log
//! task ([`LogWriter`], `writer.rs`) with FC's per-request markers, a timestamp, the instance
//! and the request on every line (`format.rs`), in segments bounded by size and age per
//! function (`retention.rs`); plus the in-memory tails fcx answers with (`x-fc-log-result`,
//! the `Logs :` part of FunctionNotStarted).
//!
//! One reader thread per instance drains its output pipe and hands each chunk to the log
//! task without waiting (a full buffer drops the chunk and counts it). The invocation path
//! only sends its markers through the same channel (no lock, no file write); only a request
//! that asked for its log tail takes the capture lock. "The pipe is empty and the reader is
//! not between a read and its hand-off" means every byte the process wrote before answering
//! is in the request's capture and queued before its end marker.
//!
//! Which lines an error answer may carry: only the failing request's own. Every request
//! opens a window at its start marker ([`InstanceLog::begin`]); [`InstanceLog::since_begin`]
//! gives what the instance wrote since. With `instanceConcurrency` 1 that is the request's
//! own output (and whatever the instance printed late for the one before it); with more,
//! nothing when another request ran on the instance meanwhile, since their lines cannot be
//! told apart.
//!
//! A streamed answer ends in synchronous code, so its end marker may be sent later by a
//! task (once the reader caught up); the next request's start marker waits for it, so every
//! request's lines stay between its own markers.

pub mod format;
mod retention;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

pub use writer::{LogSettings, LogWriter, Marker, FLUSH_EVERY};
use writer::{Record, Source};

use tokio::sync::watch;

use crate::sys;

/// How much recent output is kept in memory for error messages.
const RECENT_MAX: usize = 8 * 1024;
/// How much of one request's output is kept in memory (the tail returned is 4 KB).
const CAPTURE_MAX: usize = 16 * 1024;

#[derive(Default)]
struct Memory {
    recent: VecDeque<u8>,
    captures: HashMap<String, Vec<u8>>,
    /// Bytes of output so far (the offset of the end of `recent`).
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
    /// Where records go (`None`: memory only, as for the test fake's instances).
    sink: Option<(Arc<LogWriter>, Arc<Source>)>,
    memory: Mutex<Memory>,
    /// Open captures; the reader takes the memory lock for them only when there are any.
    capturing: AtomicUsize,
    /// The read end of the output pipe, kept open as long as the log lives so that its
    /// unread bytes can be queried at any time.
    pipe: OnceLock<File>,
    /// Set by the reader from before a read until its chunk is handed on.
    reading: AtomicBool,
    /// End markers a task still has to send (see [`InstanceLog::end_when_settled`]).
    deferred_ends: watch::Sender<usize>,
}

impl InstanceLog {
    /// The log of instance `id` of `function`, stored by `writer` under
    /// `<log dir>/<function>/`, where `fcx logs` reads it.
    pub fn for_instance(writer: &Arc<LogWriter>, function: &str, id: &str) -> Arc<InstanceLog> {
        if !writer.files {
            return Self::in_memory();
        }
        Arc::new(InstanceLog {
            sink: Some((Arc::clone(writer), writer.source(function, id))),
            ..Self::memory_only()
        })
    }

    /// A log kept in memory only (instances without a log file, such as the test fake's).
    pub fn in_memory() -> Arc<InstanceLog> {
        Arc::new(Self::memory_only())
    }

    fn memory_only() -> InstanceLog {
        InstanceLog {
            sink: None,
            memory: Mutex::default(),
            capturing: AtomicUsize::new(0),
            pipe: OnceLock::new(),
            reading: AtomicBool::new(false),
            deferred_ends: watch::Sender::new(0),
        }
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, make: impl FnOnce(Arc<Source>) -> Record) {
        if let Some((writer, source)) = &self.sink {
            writer.send(make(Arc::clone(source)));
        }
    }

    /// Starts the thread that drains `pipe` (the instance's stdout and stderr) into this log.
    pub fn attach(self: &Arc<Self>, pipe: OwnedFd, name: &str) {
        if self.pipe.set(File::from(pipe)).is_err() {
            tracing::warn!("an instance log got a second output pipe");
            return;
        }
        let log = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("log-{name}"))
            .stack_size(64 * 1024)
            .spawn(move || log.drain());
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start instance log reader");
        }
    }

    fn drain(&self) {
        let Some(mut file) = self.pipe.get() else {
            return;
        };
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if sys::wait_readable(file.as_raw_fd()).is_err() {
                break;
            }
            self.reading.store(true, Ordering::SeqCst);
            let n = match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.hand_on(&buf[..n]);
            self.reading.store(false, Ordering::SeqCst);
        }
        self.reading.store(false, Ordering::SeqCst);
        if let Some((writer, source)) = &self.sink {
            writer.send_waiting(Record::Closed {
                from: Arc::clone(source),
            });
        }
    }

    /// What the reader does with a chunk it read: keeps it in memory and queues it for the
    /// log task.
    fn hand_on(&self, chunk: &[u8]) {
        self.remember(chunk);
        self.send(|from| Record::Output {
            from,
            at: SystemTime::now(),
            bytes: chunk.to_vec(),
        });
    }

    /// Keeps output for error messages and open captures.
    fn remember(&self, bytes: &[u8]) {
        let mut memory = self.memory();
        memory.total += bytes.len() as u64;
        memory.recent.extend(bytes);
        let excess = memory.recent.len().saturating_sub(RECENT_MAX);
        memory.recent.drain(..excess);
        if self.capturing.load(Ordering::SeqCst) > 0 {
            for capture in memory.captures.values_mut() {
                append_capped(capture, bytes);
            }
        }
    }

    /// Writes one line of fcx's own (a note such as a timeout) into the log and every open
    /// capture.
    pub fn line(&self, text: &str) {
        let mut memory = self.memory();
        for capture in memory.captures.values_mut() {
            append_capped(capture, text.as_bytes());
            append_capped(capture, b"\n");
        }
        drop(memory);
        self.send(|from| Record::Note {
            from,
            at: SystemTime::now(),
            text: text.to_owned(),
        });
    }

    /// Writes the start marker of `request_id` and, when `capture` is set, starts collecting
    /// its output (only callers that return a log tail need it). Waits first for end markers
    /// still deferred, so this request's marker comes after them.
    pub async fn begin(&self, request_id: &str, marker: Marker, capture: bool) {
        if *self.deferred_ends.borrow() != 0 {
            let mut ends = self.deferred_ends.subscribe();
            let _ = ends.wait_for(|n| *n == 0).await;
        }
        let mut memory = self.memory();
        if capture {
            let mut text = marker.text(true, request_id).into_bytes();
            text.push(b'\n');
            memory.captures.insert(request_id.to_owned(), text);
            self.capturing.fetch_add(1, Ordering::SeqCst);
        }
        let shared = !memory.windows.is_empty();
        for w in memory.windows.values_mut() {
            w.shared = true;
        }
        let start = memory.total;
        memory
            .windows
            .insert(request_id.to_owned(), Window { start, shared });
        drop(memory);
        self.mark(request_id, marker, true);
    }

    fn mark(&self, request_id: &str, marker: Marker, start: bool) {
        self.mark_owned(|| request_id.to_owned(), marker, start);
    }

    /// [`mark`](Self::mark) with the id made only when there is a log task to send it to.
    fn mark_owned(&self, request_id: impl FnOnce() -> String, marker: Marker, start: bool) {
        self.send(|from| Record::Mark {
            from,
            at: SystemTime::now(),
            marker,
            start,
            request_id: request_id(),
        });
    }

    /// Waits until output the process wrote so far is read, writes the end marker, and
    /// returns the request's collected output (empty without a capture).
    pub async fn end(&self, request_id: &str, marker: Marker) -> Vec<u8> {
        self.settle().await;
        self.end_now(request_id, marker)
    }

    /// Like [`end`](Self::end) without waiting for unread output.
    pub fn end_now(&self, request_id: &str, marker: Marker) -> Vec<u8> {
        let (captured, window_key) = {
            let mut memory = self.memory();
            // The window's key is this request's id already: the end marker takes it
            // instead of a new copy (one allocation less per request).
            let window_key = memory.windows.remove_entry(request_id).map(|(key, _)| key);
            if self.capturing.load(Ordering::SeqCst) > 0 {
                let taken = memory.captures.remove(request_id);
                if taken.is_some() {
                    self.capturing.fetch_sub(1, Ordering::SeqCst);
                }
                (taken, window_key)
            } else {
                (None, window_key)
            }
        };
        let key = || window_key.unwrap_or_else(|| request_id.to_owned());
        self.mark_owned(key, marker, false);
        captured
            .map(|mut c| {
                append_capped(&mut c, marker.text(false, request_id).as_bytes());
                append_capped(&mut c, b"\n");
                c
            })
            .unwrap_or_default()
    }

    /// Ends a request from synchronous code (a streamed answer's end): when every byte the
    /// process wrote is already handed on (the usual case: one `FIONREAD`), the marker goes
    /// at once; otherwise a task sends it once the reader caught up, so the request's lines
    /// stay between its markers in the stored log, and [`begin`](Self::begin) waits for it.
    pub fn end_when_settled(self: &Arc<Self>, request_id: &str, marker: Marker) {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if !self.settled() => {
                self.deferred_ends.send_modify(|n| *n += 1);
                let pending = DeferredEnd(Arc::clone(self));
                let rid = request_id.to_owned();
                rt.spawn(async move {
                    pending.0.settle().await;
                    pending.0.end_now(&rid, marker);
                });
            }
            _ => {
                self.end_now(request_id, marker);
            }
        }
    }

    /// Whether the pipe holds no unread bytes and the reader has handed on all it read.
    fn settled(&self) -> bool {
        let Some(pipe) = self.pipe.get() else {
            return true;
        };
        // The reader sets `reading` before it reads: once FIONREAD shows the bytes gone,
        // either their chunk is handed on or `reading` is still set.
        sys::pending_bytes(pipe.as_raw_fd()) == 0 && !self.reading.load(Ordering::SeqCst)
    }

    /// Waits (briefly, bounded) until the output pipe holds no unread bytes.
    pub async fn settle(&self) {
        for _ in 0..200 {
            if self.settled() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The last `max` bytes the instance wrote since `request_id` began; empty when
    /// another request ran on it meanwhile, unless `one_at_a_time` (the instance serves one
    /// request at a time, so an overlap is only the previous request's late end marker).
    /// An error answer must not carry other requests' lines.
    pub fn since_begin(&self, request_id: &str, max: usize, one_at_a_time: bool) -> String {
        let memory = self.memory();
        let Some(w) = memory
            .windows
            .get(request_id)
            .filter(|w| one_at_a_time || !w.shared)
        else {
            return String::new();
        };
        let first = memory.total - memory.recent.len() as u64;
        let skip = w.start.saturating_sub(first) as usize;
        let bytes: Vec<u8> = memory.recent.iter().skip(skip).copied().collect();
        String::from_utf8_lossy(fcx_protocol::logs::tail(&bytes, max)).into_owned()
    }

    /// The last `max` bytes of the instance's output, as text.
    pub fn recent(&self, max: usize) -> String {
        let memory = self.memory();
        let skip = memory.recent.len().saturating_sub(max);
        let bytes: Vec<u8> = memory.recent.iter().skip(skip).copied().collect();
        String::from_utf8_lossy(fcx_protocol::logs::tail(&bytes, max)).into_owned()
    }
}

/// One deferred end marker; counted down when its task ends (also if the task is dropped at
/// shutdown), so a waiting `begin` never waits for a marker no one will send.
struct DeferredEnd(Arc<InstanceLog>);

impl Drop for DeferredEnd {
    fn drop(&mut self) {
        self.0.deferred_ends.send_modify(|n| *n -= 1);
    }
}

fn append_capped(capture: &mut Vec<u8>, bytes: &[u8]) {
    capture.extend_from_slice(bytes);
    let excess = capture.len().saturating_sub(CAPTURE_MAX);
    if excess > 0 {
        capture.drain(..excess);
    }
}

#[cfg(test)]
mod tests;
