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
    /// The function whose instance received it.
    pub function: String,
    /// The instance's id.
    pub instance: String,
    /// The request's method.
    pub method: http::Method,
    /// The request's path (`/invoke`, `/initialize`, ...).
    pub path: String,
    /// Every header as received (the FC context headers among them).
    pub headers: http::HeaderMap,
    /// The whole request body.
    pub body: Bytes,
    /// When it arrived (tokio time: the paused clock in tests that pause it).
    pub at: tokio::time::Instant,
}

impl Received {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One recorded call.
#[derive(Clone, Debug)]
pub enum Call {
    /// A sandbox was created ahead of demand.
    Prepare {
        /// The function it was made for.
        function: String,
        /// The id its instance will have.
        instance: String,
    },
    /// An instance started and listens.
    Start {
        /// The function it runs.
        function: String,
        /// Its id.
        instance: String,
        /// Whether it came from a pre-created sandbox.
        from_sandbox: bool,
    },
    /// A start failed as the script said.
    StartFailed {
        /// The function whose start failed.
        function: String,
    },
    /// A non-web-server run.
    RunEvent {
        /// The function it ran.
        function: String,
        /// The event it was given.
        event: Vec<u8>,
    },
    /// A request an instance received.
    Request(Received),
    /// The instance was asked to end (SIGTERM).
    Stop {
        /// Its id.
        instance: String,
    },
    /// The instance was killed (recorded once, when it ended so).
    Kill {
        /// Its id.
        instance: String,
    },
    /// The instance was frozen.
    Freeze {
        /// Its id.
        instance: String,
    },
    /// The instance was thawed.
    Thaw {
        /// Its id.
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
