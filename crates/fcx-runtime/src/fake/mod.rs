//! A recording fake [`Backend`] for unit tests of the scheduler and the async layer (cargo
//! feature `fake`; youki's `Syscall` trait and its test helper are the model). Its instances
//! are real HTTP/1.1 servers on `127.0.0.1` ephemeral ports, in this process, whose behaviour
//! the test scripts ([`Script`]); every backend call and every request an instance receives
//! is recorded ([`Recorder`]). It needs no root and no namespaces. It proves logic only: the
//! features themselves are shown by the end-to-end tests on the real backends.

mod clock;
mod record;
mod script;
mod server;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

pub use clock::ManualClock;
pub use record::{Call, Received, Recorder};
pub use script::{Answer, EventRun, Gate, Reply, Script, StartFail};

use crate::backend::{Backend, BackendKind, InstanceStats, Sandbox};
use crate::instance::Instance;
use crate::spec::{EventOutcome, InstanceSpec};
use crate::{StartError, StartFailure};

/// The fake backend. Register it under the kind the functions under test run on.
pub struct FakeBackend {
    kind: BackendKind,
    sandboxes: bool,
    script: Arc<Mutex<Script>>,
    recorder: Arc<Recorder>,
}

impl FakeBackend {
    /// A fake of `kind` whose instances answer every call with 200 and echo `/invoke` bodies.
    pub fn new(kind: BackendKind) -> Arc<FakeBackend> {
        Arc::new(FakeBackend {
            kind,
            sandboxes: false,
            script: Arc::default(),
            recorder: Arc::default(),
        })
    }

    /// Like [`FakeBackend::new`], and it supports pre-created sandboxes.
    pub fn with_sandboxes(kind: BackendKind) -> Arc<FakeBackend> {
        Arc::new(FakeBackend {
            kind,
            sandboxes: true,
            script: Arc::default(),
            recorder: Arc::default(),
        })
    }

    /// Changes the script; instances started before see the change on their next request.
    pub fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.lock_script());
    }

    /// What the backend and its instances were asked to do.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    fn lock_script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current(&self) -> Script {
        self.lock_script().clone()
    }

    async fn launch(&self, spec: &InstanceSpec) -> Result<Instance, StartError> {
        server::launch(
            spec,
            Arc::clone(&self.script),
            Arc::clone(&self.recorder),
            self.current().ignore_sigterm,
        )
        .await
        .map_err(StartError::Namespace)
    }

    /// The scripted start: delay, gate, then the scripted failure if any.
    async fn start_plan(&self, spec: &InstanceSpec) -> Result<(), StartError> {
        let script = self.current();
        if !script.start.delay.is_zero() {
            tokio::time::sleep(script.start.delay).await;
        }
        if let Some(gate) = &script.start.gate {
            gate.wait().await;
        }
        let failure = match script.start.fail {
            None => return Ok(()),
            Some(StartFail::NotStarted(cause)) => {
                StartError::not_started(spec.start_timeout, cause, String::new())
            }
            Some(StartFail::Failed(kind, message)) => StartError::failed(kind, message),
        };
        self.recorder.push(Call::StartFailed {
            function: spec.function_name.clone(),
        });
        Err(failure)
    }
}

#[async_trait]
impl Backend for FakeBackend {
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn prepares_sandboxes(&self) -> bool {
        self.sandboxes
    }

    async fn prepare(&self, spec: &InstanceSpec) -> Result<Sandbox, StartError> {
        if !self.sandboxes {
            return Err(StartError::Unsupported {
                backend: self.kind,
                what: "pre-created sandboxes",
            });
        }
        let instance = self.launch(spec).await?;
        self.recorder.push(Call::Prepare {
            function: spec.function_name.clone(),
            instance: instance.id.clone(),
        });
        Ok(Sandbox::new(instance))
    }

    async fn start(
        &self,
        spec: &InstanceSpec,
        sandbox: Option<Sandbox>,
    ) -> Result<Instance, StartError> {
        self.start_plan(spec).await?;
        let from_sandbox = sandbox.is_some();
        let instance = match sandbox {
            Some(sandbox) => {
                if self.current().start.break_sandboxes {
                    self.recorder.push(Call::StartFailed {
                        function: spec.function_name.clone(),
                    });
                    return Err(StartError::failed(
                        StartFailure::Sandbox,
                        "the fake's sandbox is broken (scripted)".into(),
                    ));
                }
                sandbox.into_instance()
            }
            None => self.launch(spec).await?,
        };
        self.recorder.push(Call::Start {
            function: spec.function_name.clone(),
            instance: instance.id.clone(),
            from_sandbox,
        });
        Ok(instance)
    }

    async fn run_event(
        &self,
        spec: &InstanceSpec,
        event: &[u8],
        timeout: Duration,
        _request_id: &str,
    ) -> Result<EventOutcome, StartError> {
        self.start_plan(spec).await?;
        self.recorder.push(Call::RunEvent {
            function: spec.function_name.clone(),
            event: event.to_vec(),
        });
        let run = (self.current().event)(event);
        let finished = tokio::time::timeout(timeout, tokio::time::sleep(run.delay))
            .await
            .is_ok();
        Ok(EventOutcome {
            instance_id: crate::instance::new_id(),
            exit: if finished { Some(run.exit) } else { None },
            stdout: if finished { run.stdout } else { Vec::new() },
            log: run.log,
        })
    }

    async fn stop(&self, instance: &Instance, grace: Duration) {
        self.recorder.push(Call::Stop {
            instance: instance.id.clone(),
        });
        crate::instance::stop(instance, grace).await
    }

    async fn freeze(&self, instance: &Instance) -> io::Result<()> {
        self.recorder.push(Call::Freeze {
            instance: instance.id.clone(),
        });
        instance.control().freeze().await
    }

    async fn thaw(&self, instance: &Instance) -> io::Result<()> {
        self.recorder.push(Call::Thaw {
            instance: instance.id.clone(),
        });
        instance.control().thaw().await
    }

    fn stats(&self, instance: &Instance) -> io::Result<InstanceStats> {
        let _ = instance;
        Ok(self.current().stats)
    }
}
