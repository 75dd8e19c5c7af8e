//! What the fake backend records: every backend call and every request its instances
//! receive, in order, and a way to wait (event-driven, with a hang guard) until the record
//! shows something.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

/// How long [`Recorder::wait_until`] waits before failing the test: a guard against a hung
/// test, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// One request an instance received.
#[derive(Clone, Debug)]
pub struct Received {
    pub function: String,
    pub instance: String,
    pub method: http::Method,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// When it arrived (tokio time: the paused clock in tests that pause it).
    pub at: tokio::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One recorded call.
#[derive(Clone, Debug)]
pub enum Call {
    Prepare {
        function: String,
        instance: String,
    },
    Start {
        function: String,
        instance: String,
        from_sandbox: bool,
    },
    StartFailed {
        function: String,
    },
    RunEvent {
        function: String,
        event: Vec<u8>,
    },
    Request(Received),
    Stop {
        instance: String,
    },
    /// The instance was killed (recorded once, when it ended so).
    Kill {
        instance: String,
    },
    Freeze {
        instance: String,
    },
    Thaw {
        instance: String,
    },
}

/// The record.
#[derive(Default)]
pub struct Recorder {
    calls: Mutex<Vec<Call>>,
    changed: Notify,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Vec<Call>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, call: Call) {
        self.lock().push(call);
        self.changed.notify_waiters();
    }

    /// Everything so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().clone()
    }

    /// Ids of the instances started (from a sandbox or not), in order.
    pub fn starts(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter_map(|c| match c {
                Call::Start { instance, .. } => Some(instance.clone()),
                _ => None,
            })
            .collect()
    }

    /// Requests received on `path` (e.g. `/invoke`), in order.
    pub fn requests(&self, path: &str) -> Vec<Received> {
        self.lock()
            .iter()
            .filter_map(|c| match c {
                Call::Request(r) if r.path == path => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    /// How many calls match.
    pub fn count(&self, matches: impl Fn(&Call) -> bool) -> usize {
        self.lock().iter().filter(|c| matches(c)).count()
    }

    /// Waits until `done` holds for the record. Panics, naming `what`, if it does not within
    /// a generous real-time bound (so a broken test fails instead of hanging). Works with
    /// tokio's clock paused too: it waits on notifications, not on timers.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Call]) -> bool) {
        let guard = hang_guard();
        tokio::pin!(guard);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.lock()) {
                return;
            }
            tokio::select! {
                () = &mut notified => {}
                () = &mut guard => panic!("gave up waiting until {what}; record: {:#?}", self.calls()),
            }
        }
    }
}

/// Completes after [`HANG_GUARD`] of real time, whatever tokio's clock does.
pub(crate) fn hang_guard() -> impl std::future::Future<Output = ()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // A plain thread: tokio's blocking pool would keep the test's runtime from ending.
    let _ = std::thread::Builder::new()
        .name("fake-hang-guard".into())
        .spawn(move || {
            std::thread::sleep(HANG_GUARD);
            let _ = tx.send(());
        });
    async move {
        let _ = rx.await;
    }
}
