//! What the fake's instances do, as a test scripts it: how a start goes, and how each kind of
//! request (`/invoke`, `/initialize`, `/pre-stop`, `/pre-freeze`) and each event run is answered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::record::Received;
use crate::backend::InstanceStats;
use crate::spec::ExitReason;
use crate::StartFailure;

/// Decides the answer to one `/invoke` request.
pub type Responder = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// Decides the outcome of one non-web-server run from its event.
pub type EventResponder = Arc<dyn Fn(&[u8]) -> EventRun + Send + Sync>;

/// The whole behaviour of the fake's instances.
#[derive(Clone)]
pub struct Script {
    /// How starts go (delay, gate, failure).
    pub start: StartPlan,
    /// `/invoke`; by default a 200 echoing the request body.
    pub invoke: Responder,
    /// `/initialize`; by default a 200.
    pub initialize: Reply,
    /// `/pre-stop`; by default a 200.
    pub pre_stop: Reply,
    /// `/pre-freeze`; by default a 200.
    pub pre_freeze: Reply,
    /// Non-web-server runs; by default exit 0 with the event as stdout.
    pub event: EventResponder,
    /// Instances ignore the stop signal (they end only when killed).
    pub ignore_sigterm: bool,
    /// What [`Backend::stats`](crate::Backend::stats) reports for every instance.
    pub stats: InstanceStats,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            start: StartPlan::default(),
            invoke: Arc::new(|req: &Received| Reply::ok(req.body.clone())),
            initialize: Reply::ok(""),
            pre_stop: Reply::ok(""),
            pre_freeze: Reply::ok(""),
            event: Arc::new(|event: &[u8]| EventRun {
                exit: ExitReason::Code(0),
                stdout: event.to_vec(),
                log: Vec::new(),
                delay: Duration::ZERO,
            }),
            ignore_sigterm: false,
            stats: InstanceStats::default(),
        }
    }
}

impl Script {
    /// Answers `/invoke` with `responder`.
    pub fn on_invoke(&mut self, responder: impl Fn(&Received) -> Reply + Send + Sync + 'static) {
        self.invoke = Arc::new(responder);
    }

    /// Runs events with `responder`.
    pub fn on_event(&mut self, responder: impl Fn(&[u8]) -> EventRun + Send + Sync + 'static) {
        self.event = Arc::new(responder);
    }
}

/// How starts go.
#[derive(Clone, Default)]
pub struct StartPlan {
    /// Waits this long before the instance listens (a slow start).
    pub delay: Duration,
    /// Waits until the gate opens before the instance listens.
    pub gate: Option<Gate>,
    /// Fails every start so.
    pub fail: Option<StartFail>,
    /// Starts from a pre-created sandbox fail as a broken sandbox would.
    pub break_sandboxes: bool,
}

/// A scripted start failure.
#[derive(Clone, Debug)]
pub enum StartFail {
    /// The server never listened (FC's FunctionNotStarted), with this cause.
    NotStarted(String),
    /// A failure with its own kind.
    Failed(StartFailure, String),
}

/// The answer to one request.
#[derive(Clone)]
pub enum Reply {
    /// An HTTP answer.
    Answer(Answer),
    /// The process dies mid-request: the connection closes unanswered and the instance
    /// reports this exit.
    Crash(ExitReason),
    /// The server closes the connection unanswered; the process keeps running.
    Close,
    /// Never answers.
    Hang,
}

/// An HTTP answer.
#[derive(Clone, Default)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Headers added to the answer (e.g. `x-fc-status`).
    pub headers: Vec<(String, String)>,
    /// The body (with `hold`: its first part).
    pub body: Bytes,
    /// Waits this long before answering.
    pub delay: Duration,
    /// Sends the status, headers and `body`, then holds the body open until the gate opens.
    pub hold: Option<Gate>,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply::status(200, body)
    }

    /// `status` with `body`.
    pub fn status(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply::Answer(Answer {
            status,
            body: body.into(),
            ..Answer::default()
        })
    }

    /// Adds a header (an answer only).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Answer(a) = &mut self {
            a.headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// Answers after `delay` (an answer only).
    pub fn after(mut self, delay: Duration) -> Reply {
        if let Reply::Answer(a) = &mut self {
            a.delay = delay;
        }
        self
    }

    /// Streams: the body's first part at once, its end when `gate` opens (an answer only).
    pub fn held_by(mut self, gate: &Gate) -> Reply {
        if let Reply::Answer(a) = &mut self {
            a.hold = Some(gate.clone());
        }
        self
    }
}

/// The outcome of one event run.
#[derive(Clone, Debug)]
pub struct EventRun {
    /// How the process ends.
    pub exit: ExitReason,
    /// What it prints on stdout (the result).
    pub stdout: Vec<u8>,
    /// What it writes to its log.
    pub log: Vec<u8>,
    /// How long the run takes (past the function timeout: the run is killed).
    pub delay: Duration,
}

/// A one-way gate: closed until [`Gate::open`], then open for good.
#[derive(Clone, Debug)]
pub struct Gate(Arc<Semaphore>);

impl Default for Gate {
    fn default() -> Gate {
        Gate(Arc::new(Semaphore::new(0)))
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Opens the gate for every waiter, present and future.
    pub fn open(&self) {
        // A closed semaphore fails every acquire at once: that is the gate being open.
        self.0.close();
    }

    /// Returns once the gate is open.
    pub async fn wait(&self) {
        let _ = self.0.acquire().await;
    }
}
