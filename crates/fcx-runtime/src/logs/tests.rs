use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

fn writer(dir: &Path, settings: LogSettings) -> Arc<LogWriter> {
    LogWriter::start(dir.to_owned(), settings, fcx_metrics::Counters::default()).unwrap()
}

/// A log with a real pipe attached; returns the write end (the instance's stdout).
fn attached(writer: &Arc<LogWriter>, id: &str) -> (Arc<InstanceLog>, File) {
    let log = InstanceLog::for_instance(writer, "f", id);
    let (read, write) = nix::unistd::pipe().unwrap();
    log.attach(read, id);
    (log, File::from(write))
}

/// Every stored line of the function `f`, oldest segment first. A segment the writer prunes
/// between the listing and the read is left out: it is gone, as it should be.
fn stored(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("f"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

/// The bytes the segments of `f` take now (a segment pruned while being listed counts 0).
fn stored_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("f"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn lines_get_time_instance_and_the_request_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let w = writer(dir.path(), LogSettings::default());
    let (log, mut out) = attached(&w, "c-1");
    log.begin("r-a", Marker::Invoke, false).await;
    log.begin("r-b", Marker::Invoke, true).await;
    out.write_all(b"working on r-b\nworking on r-a\nno id\n")
        .unwrap();
    let tail = log.end("r-b", Marker::Invoke).await;
    log.end("r-a", Marker::Invoke).await;
    log.begin("r-c", Marker::Invoke, false).await;
    out.write_all(b"alone").unwrap();
    log.end("r-c", Marker::Invoke).await;
    eventually("the end marker of r-c", || {
        stored(dir.path()).contains("FC Invoke End RequestId: r-c")
    });
    let text = stored(dir.path());
    let lines: Vec<format::Line> = text.lines().map(|l| format::parse_line(l, "?")).collect();
    let by_text = |t: &str| {
        lines
            .iter()
            .find(|l| l.text == t)
            .unwrap_or_else(|| panic!("{t:?} not in\n{text}"))
    };
    assert_eq!(by_text("working on r-b").request_id, Some("r-b"));
    assert_eq!(by_text("working on r-a").request_id, Some("r-a"));
    assert_eq!(by_text("no id").request_id, None);
    assert_eq!(by_text("alone").request_id, Some("r-c"));
    assert_eq!(
        by_text("FC Invoke Start RequestId: r-a").request_id,
        Some("r-a")
    );
    assert!(
        lines.iter().all(|l| l.instance == "c-1" && l.at_ms > 0),
        "{text}"
    );
    // The tail keeps FC's plain form.
    let tail = String::from_utf8(tail).unwrap();
    assert!(
        tail.starts_with("FC Invoke Start RequestId: r-b\n"),
        "{tail}"
    );
    assert!(tail.ends_with("FC Invoke End RequestId: r-b\n"), "{tail}");
    assert!(tail.contains("working on r-b\n"), "{tail}");
}

#[test]
fn a_chatty_instance_stays_under_the_function_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cap = 64 * 1024;
    let settings = LogSettings {
        max_bytes_per_function: cap,
        segment_bytes: 1024 * 1024,
        ..LogSettings::default()
    };
    let w = writer(dir.path(), settings);
    let (_log, mut out) = attached(&w, "c-1");
    let line = format!("{}\n", "x".repeat(200));
    let mut max_seen = 0;
    for i in 0..2_000 {
        out.write_all(line.as_bytes()).unwrap();
        if i % 50 == 0 {
            max_seen = max_seen.max(stored_bytes(dir.path()));
        }
    }
    drop(out);
    eventually("segments to rotate", || {
        std::fs::read_dir(dir.path().join("f"))
            .map(|d| d.count() >= 2)
            .unwrap_or(false)
    });
    assert!(max_seen <= cap, "{max_seen} bytes > {cap}");
    // ~450 KB written in total: most of it was pruned, the newest lines are kept.
    assert!(stored(dir.path()).len() as u64 <= cap);
}

#[tokio::test]
async fn a_full_buffer_drops_records_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let counters = fcx_metrics::Counters::default();
    let w = LogWriter::start(
        dir.path().to_owned(),
        LogSettings {
            buffer_records: 16,
            ..LogSettings::default()
        },
        counters.clone(),
    )
    .unwrap();
    let log = InstanceLog::for_instance(&w, "f", "c-1");
    // Far more markers than the buffer holds, faster than the log task writes them.
    for i in 0..20_000 {
        log.begin(&format!("r-{i}"), Marker::Invoke, false).await;
    }
    assert!(counters.log_dropped.get() > 0);
    log.line("after the burst");
    eventually("the drop note", || {
        stored(dir.path()).contains("log records dropped")
    });
}

/// The test plays the reader thread: output stays in the pipe until it drains it, so the
/// streamed end marker is deferred every time.
#[tokio::test]
async fn a_request_begins_only_after_the_previous_streamed_end_marker() {
    let dir = tempfile::tempdir().unwrap();
    let w = writer(dir.path(), LogSettings::default());
    let log = InstanceLog::for_instance(&w, "f", "c-1");
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    let mut reader = File::from(read_end);
    assert!(log.pipe.set(reader.try_clone().unwrap()).is_ok());
    log.begin("a", Marker::Invoke, false).await;
    File::from(write_end).write_all(b"line of a\n").unwrap();
    log.end_when_settled("a", Marker::Invoke);

    let next = tokio::spawn({
        let log = Arc::clone(&log);
        async move { log.begin("b", Marker::Invoke, false).await }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!next.is_finished(), "b began before a's output was read");

    let mut buf = [0u8; 64];
    let n = reader.read(&mut buf).unwrap();
    log.hand_on(&buf[..n]);
    next.await.unwrap();
    eventually("the start marker of b", || {
        stored(dir.path()).contains("FC Invoke Start RequestId: b")
    });
    let text = stored(dir.path());
    let order: Vec<&str> = text
        .lines()
        .map(|l| format::parse_line(l, "?").text)
        .collect();
    assert_eq!(
        order,
        [
            "FC Invoke Start RequestId: a",
            "line of a",
            "FC Invoke End RequestId: a",
            "FC Invoke Start RequestId: b",
        ],
        "{text}"
    );
}

#[tokio::test]
async fn an_error_gets_only_its_own_requests_lines() {
    let log = InstanceLog::in_memory();
    log.begin("r1", Marker::Invoke, false).await;
    log.hand_on(b"secret of r1\n");
    log.end_now("r1", Marker::Invoke);
    log.begin("r2", Marker::Invoke, false).await;
    log.hand_on(b"r2 crashing\n");
    let logs = log.since_begin("r2", 2048, true);
    assert!(logs.contains("r2 crashing"), "{logs}");
    assert!(!logs.contains("secret of r1"), "{logs}");
    // Two requests at once: their lines cannot be told apart, so neither gets any.
    log.begin("r3", Marker::Invoke, false).await;
    log.hand_on(b"r3 line\n");
    assert_eq!(log.since_begin("r2", 2048, false), "");
    assert_eq!(log.since_begin("r3", 2048, false), "");
    assert_eq!(log.since_begin("unknown", 2048, true), "");
    // An ended request's window is gone.
    log.end_now("r2", Marker::Invoke);
    assert_eq!(log.since_begin("r2", 2048, true), "");
}
