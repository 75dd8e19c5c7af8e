//! The log task: one thread that owns every instance log file. Instances' reader threads
//! and the invocation path hand it records through one bounded channel (a full channel drops
//! the record and counts it; nothing waits), and it writes them as stored lines
//! ([`super::format`]), names the request of each line, rotates segments, enforces the
//! per-function size and age limits, and flushes within [`FLUSH_EVERY`] so `fcx logs
//! --follow` sees new lines promptly.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fcx_metrics::Counters;

use super::format;
use super::retention::{self, Budget};

/// How soon written lines reach the files.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often closed segments past the age limit are removed.
const AGE_SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long the task naps between batches while records keep coming (see [`Task::run`]).
const BATCH_NAP: Duration = Duration::from_millis(5);
/// Longest stored line; longer output is split.
const LINE_MAX: usize = 16 * 1024;

/// Retention and buffering of instance logs (`fcx server --log-*`).
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Most bytes of log files kept per function (all instances, all segments).
    pub max_bytes_per_function: u64,
    /// Closed segments older than this are removed.
    pub max_age: Duration,
    /// A segment is closed and a new one opened past this size (at most a quarter of the
    /// per-function limit, so rotation and pruning keep the limit).
    pub segment_bytes: u64,
    /// Records (output chunks of up to 16 KB, markers) buffered for the log task.
    pub buffer_records: usize,
    /// `false`: no log files at all, only the in-memory tails (the warm-path benchmark's
    /// baseline, `fcx server --no-observability`).
    pub files: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            max_bytes_per_function: 100 * 1024 * 1024,
            max_age: Duration::from_secs(7 * 24 * 3600),
            segment_bytes: 8 * 1024 * 1024,
            buffer_records: 2048,
            files: true,
        }
    }
}

impl LogSettings {
    fn segment_limit(&self) -> u64 {
        self.segment_bytes
            .min(self.max_bytes_per_function / 4)
            .max(4096)
    }
}

/// Which FC marker a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// `FC Invoke Start/End RequestId: ...`.
    Invoke,
    /// `FC Initialize Start/End RequestId: ...`.
    Initialize,
    /// A lifecycle hook (`PreFreeze`, `PreStop`).
    Hook(&'static str),
}

impl Marker {
    /// The marker's line (FC's form), without a newline.
    pub fn text(self, start: bool, request_id: &str) -> String {
        let name = match self {
            Marker::Invoke => "Invoke",
            Marker::Initialize => "Initialize",
            Marker::Hook(name) => name,
        };
        let edge = if start { "Start" } else { "End" };
        format!("FC {name} {edge} RequestId: {request_id}")
    }
}

/// Who a record is about.
pub struct Source {
    pub function: String,
    pub instance: String,
    /// Records this instance dropped since the log task last said so.
    dropped: AtomicU64,
}

pub enum Record {
    /// Bytes the instance's processes wrote.
    Output {
        from: Arc<Source>,
        at: SystemTime,
        bytes: Vec<u8>,
    },
    /// A request's start or end.
    Mark {
        from: Arc<Source>,
        at: SystemTime,
        marker: Marker,
        start: bool,
        request_id: String,
    },
    /// A line of fcx's own.
    Note {
        from: Arc<Source>,
        at: SystemTime,
        text: String,
    },
    /// The instance's output ended.
    Closed { from: Arc<Source> },
}

/// The handle instances send their records to; the task ends when every handle is gone.
pub struct LogWriter {
    tx: SyncSender<Record>,
    counters: Counters,
    /// Where function logs are stored (`<log_dir>/<function>/`).
    pub log_dir: PathBuf,
    /// Whether instance logs are stored at all ([`LogSettings::files`]).
    pub files: bool,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("log_dir", &self.log_dir)
            .finish_non_exhaustive()
    }
}

impl LogWriter {
    /// Starts the log task writing under `log_dir`.
    pub fn start(
        log_dir: PathBuf,
        settings: LogSettings,
        counters: Counters,
    ) -> std::io::Result<Arc<LogWriter>> {
        std::fs::create_dir_all(&log_dir)?;
        let (tx, rx) = sync_channel(settings.buffer_records.max(16));
        let files = settings.files;
        let task = Task {
            dir: log_dir.clone(),
            settings,
            counters: counters.clone(),
            open: HashMap::new(),
            budgets: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("fcx-logs".into())
            .spawn(move || task.run(rx))?;
        Ok(Arc::new(LogWriter {
            tx,
            counters,
            log_dir,
            files,
        }))
    }

    /// The identity an instance's records carry (its function and id).
    pub fn source(&self, function: &str, instance: &str) -> Arc<Source> {
        Arc::new(Source {
            function: function.to_owned(),
            instance: instance.to_owned(),
            dropped: AtomicU64::new(0),
        })
    }

    /// Hands a record to the log task without waiting; a full buffer drops it (counted in
    /// `fcx_log_dropped_total` and noted in the instance's log).
    pub fn send(&self, record: Record) {
        if let Err(TrySendError::Full(r) | TrySendError::Disconnected(r)) = self.tx.try_send(record)
        {
            if let Some(from) = r.source() {
                from.dropped.fetch_add(1, Ordering::Relaxed);
            }
            self.counters.log_dropped.inc();
        }
    }

    /// Hands a record over, waiting for room (the reader threads' last record: the file
    /// must be closed).
    pub fn send_waiting(&self, record: Record) {
        let _ = self.tx.send(record);
    }
}

impl Record {
    fn source(&self) -> Option<&Arc<Source>> {
        match self {
            Record::Output { from, .. }
            | Record::Mark { from, .. }
            | Record::Note { from, .. }
            | Record::Closed { from } => Some(from),
        }
    }
}

/// An instance's open segment and what the task knows about its requests.
struct Open {
    source: Arc<Source>,
    file: Option<BufWriter<File>>,
    seq: u64,
    size: u64,
    /// Output after the last line break.
    partial: Vec<u8>,
    partial_at: SystemTime,
    /// Requests between their start and end markers, oldest first.
    in_flight: Vec<String>,
    dirty: bool,
}

struct Task {
    dir: PathBuf,
    settings: LogSettings,
    counters: Counters,
    open: HashMap<String, Open>,
    budgets: HashMap<String, Budget>,
}

impl Task {
    fn run(mut self, rx: Receiver<Record>) {
        let mut last_flush = Instant::now();
        let mut last_sweep = Instant::now();
        loop {
            // Buffered lines are flushed when nothing arrived for a while or the interval
            // passed: a busy function costs one write per interval, not one per line.
            let idle = match rx.recv_timeout(FLUSH_EVERY) {
                Ok(record) => {
                    self.handle(record);
                    // While records keep coming, nap and take what queued meanwhile in one
                    // go: a sender then finds the task napping, not parked on the channel,
                    // and pays no wake-up (a futex call and a context switch per record
                    // otherwise, most of what logging added to the warm path). Idle, the
                    // task parks as before. At the default buffer the nap leaves room for
                    // ~400k records a second.
                    loop {
                        std::thread::sleep(BATCH_NAP);
                        let mut got = 0;
                        while let Ok(record) = rx.try_recv() {
                            self.handle(record);
                            got += 1;
                        }
                        // Nothing came, or it is time to flush and sweep (below).
                        if got == 0 || last_flush.elapsed() >= FLUSH_EVERY {
                            break;
                        }
                    }
                    false
                }
                Err(RecvTimeoutError::Timeout) => true,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if idle || last_flush.elapsed() >= FLUSH_EVERY {
                self.flush();
                last_flush = Instant::now();
            }
            if last_sweep.elapsed() >= AGE_SWEEP_EVERY {
                let pruned =
                    retention::prune_by_age(&self.dir, self.settings.max_age, &self.open_paths());
                self.counters.log_pruned_bytes.inc_by(pruned);
                last_sweep = Instant::now();
            }
        }
        for (_, open) in self.open.drain() {
            close(open);
        }
    }

    fn open_paths(&self) -> Vec<PathBuf> {
        self.open
            .values()
            .map(|o| self.segment_path(&o.source, o.seq))
            .collect()
    }

    fn segment_path(&self, source: &Source, seq: u64) -> PathBuf {
        self.dir
            .join(&source.function)
            .join(format::segment_name(&source.instance, seq))
    }

    fn flush(&mut self) {
        for open in self.open.values_mut().filter(|o| o.dirty) {
            if let Some(f) = open.file.as_mut() {
                let _ = f.flush();
            }
            open.dirty = false;
        }
    }

    fn handle(&mut self, record: Record) {
        let Some(source) = record.source().cloned() else {
            return;
        };
        let dropped = source.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format!(
                "fcx: {dropped} log records dropped (the log buffer was full; the function \
                 writes faster than the disk takes it)"
            );
            self.write_line(&source, SystemTime::now(), &note, None);
        }
        match record {
            Record::Output { at, bytes, .. } => self.output(&source, at, &bytes),
            Record::Mark {
                at,
                marker,
                start,
                request_id,
                ..
            } => {
                self.end_partial(&source);
                let text = marker.text(start, &request_id);
                self.write_line(&source, at, &text, Some(&request_id));
                let open = self.open_of(&source);
                if start {
                    open.in_flight.push(request_id);
                } else {
                    open.in_flight.retain(|r| *r != request_id);
                }
            }
            Record::Note { at, text, .. } => {
                self.end_partial(&source);
                self.write_line(&source, at, &text, None);
            }
            Record::Closed { .. } => {
                self.end_partial(&source);
                if let Some(open) = self.open.remove(&source.instance) {
                    close(open);
                }
            }
        }
    }

    fn open_of(&mut self, source: &Arc<Source>) -> &mut Open {
        let dir = self.dir.join(&source.function);
        self.open.entry(source.instance.clone()).or_insert_with(|| {
            // Continue after what an earlier segment of this instance left (a restart).
            let seq = retention::last_segment(&dir, &source.instance) + 1;
            Open {
                source: Arc::clone(source),
                file: None,
                seq,
                size: 0,
                partial: Vec::new(),
                partial_at: SystemTime::now(),
                in_flight: Vec::new(),
                dirty: false,
            }
        })
    }

    fn output(&mut self, source: &Arc<Source>, at: SystemTime, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let open = self.open_of(source);
            if open.partial.is_empty() {
                open.partial_at = at;
            }
            match rest.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    open.partial.extend_from_slice(&rest[..i]);
                    rest = &rest[i + 1..];
                    self.end_partial(source);
                }
                None => {
                    open.partial.extend_from_slice(rest);
                    rest = &[];
                    if open.partial.len() >= LINE_MAX {
                        self.end_partial(source);
                    }
                }
            }
        }
    }

    /// Writes the buffered partial line (if any) as a line.
    fn end_partial(&mut self, source: &Arc<Source>) {
        let open = self.open_of(source);
        if open.partial.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut open.partial);
        let at = open.partial_at;
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_end_matches('\r');
        let request = attribute(&open.in_flight, text).map(str::to_owned);
        self.write_line(source, at, text, request.as_deref());
    }

    fn write_line(
        &mut self,
        source: &Arc<Source>,
        at: SystemTime,
        text: &str,
        request: Option<&str>,
    ) {
        let mut line = format::format_line(format::unix_ms(at), &source.instance, request, text);
        line.push('\n');
        let len = line.len() as u64;
        let limit = self.settings.segment_limit();
        let cap = self.settings.max_bytes_per_function;
        let fn_dir = self.dir.join(&source.function);
        // Room first: the directory never grows past its limit, even for a moment.
        let over = self
            .budgets
            .entry(source.function.clone())
            .or_insert_with(|| Budget::measure(&fn_dir))
            .used
            + len
            > cap;
        if over {
            self.make_room(source, &fn_dir, len);
        }
        let open = self.open_of(source);
        if open.file.is_some() && open.size + len > limit {
            rotate(open);
        }
        if open.file.is_none() {
            let path = fn_dir.join(format::segment_name(&source.instance, open.seq));
            open.file = open_segment(&path);
            open.size = std::fs::metadata(&path).map_or(0, |m| m.len());
        }
        if let Some(f) = open.file.as_mut() {
            if f.write_all(line.as_bytes()).is_ok() {
                open.size += len;
                open.dirty = true;
                self.counters.log_written_bytes.inc_by(len);
                if let Some(b) = self.budgets.get_mut(&source.function) {
                    b.used += len;
                }
            }
        }
    }

    /// Removes the function's oldest closed segments until `len` more bytes fit under its
    /// limit with a segment's worth to spare; if only open segments are left, the writing
    /// instance's segment is closed so that it can go too.
    fn make_room(&mut self, source: &Arc<Source>, fn_dir: &Path, len: u64) {
        let cap = self.settings.max_bytes_per_function;
        let target = cap.saturating_sub(self.settings.segment_limit()).max(len);
        for _ in 0..2 {
            let open = self.open_paths();
            let (used, pruned) = retention::prune_to(fn_dir, target, &open);
            self.counters.log_pruned_bytes.inc_by(pruned);
            self.budgets
                .insert(source.function.clone(), Budget { used });
            if used + len <= cap {
                return;
            }
            rotate(self.open_of(source));
        }
    }
}

/// The request a line belongs to: the only one in flight, else the in-flight one whose id the
/// line names (functions print it: with instanceConcurrency > 1 that is the only way to know).
fn attribute<'a>(in_flight: &'a [String], text: &str) -> Option<&'a str> {
    match in_flight {
        [] => None,
        [only] => Some(only),
        many => many
            .iter()
            .rev()
            .find(|r| text.contains(r.as_str()))
            .map(String::as_str),
    }
}

fn rotate(open: &mut Open) {
    if let Some(mut f) = open.file.take() {
        let _ = f.flush();
    }
    open.seq += 1;
    open.size = 0;
}

fn close(mut open: Open) {
    if let Some(mut f) = open.file.take() {
        let _ = f.flush();
    }
}

fn open_segment(path: &Path) -> Option<BufWriter<File>> {
    let opened = path
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| File::options().create(true).append(true).open(path));
    match opened {
        Ok(f) => Some(BufWriter::with_capacity(32 * 1024, f)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot open an instance log file");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_goes_to_the_single_request_or_the_one_it_names() {
        let two = vec!["r-a".to_owned(), "r-b".to_owned()];
        assert_eq!(attribute(&two[..1], "anything"), Some("r-a"));
        assert_eq!(attribute(&two, "handling r-b now"), Some("r-b"));
        assert_eq!(attribute(&two, "no id here"), None);
        assert_eq!(attribute(&[], "idle output"), None);
    }
}
