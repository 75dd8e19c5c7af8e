//! One fake instance: an HTTP/1.1 server on a `127.0.0.1` ephemeral port answering as the
//! script says, and the control handles that kill, stop, freeze it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming};
use tokio::sync::{mpsc, watch};

use super::record::{Call, Received, Recorder};
use super::script::{Reply, Script};
use crate::backend::Control;
use crate::instance::{Dial, Instance, InstanceParts};
use crate::logs::InstanceLog;
use crate::spec::{ExitReason, InstanceSpec};

type Exit = Arc<watch::Sender<Option<ExitReason>>>;

/// Starts a server for one instance of `spec` and returns the instance.
pub(super) async fn launch(
    spec: &InstanceSpec,
    script: Arc<Mutex<Script>>,
    recorder: Arc<Recorder>,
    ignore_sigterm: bool,
) -> std::io::Result<Instance> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let id = crate::instance::new_id();
    let (exit_tx, exit_rx) = watch::channel(None);
    let exit: Exit = Arc::new(exit_tx);
    let log = InstanceLog::in_memory();
    let site = Arc::new(Site {
        function: spec.function_name.clone(),
        instance: id.clone(),
        script,
        recorder: Arc::clone(&recorder),
        exit: Arc::clone(&exit),
        log: Arc::clone(&log),
    });
    tokio::spawn(accept(listener, site, exit_rx.clone()));
    let control = FakeControl {
        instance: id.clone(),
        exit,
        recorder,
        ignore_sigterm,
        frozen: AtomicBool::new(false),
    };
    Ok(Instance::new(InstanceParts {
        id,
        dial: Dial::Tcp(addr),
        log,
        exit: exit_rx,
        control: Box::new(control),
    }))
}

/// What every connection of one instance shares.
struct Site {
    function: String,
    instance: String,
    script: Arc<Mutex<Script>>,
    recorder: Arc<Recorder>,
    exit: Exit,
    log: Arc<InstanceLog>,
}

/// Serves connections until the instance's "process" ends; then every connection closes.
async fn accept(
    listener: tokio::net::TcpListener,
    site: Arc<Site>,
    mut exit: watch::Receiver<Option<ExitReason>>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => return,
            },
            _ = exit.wait_for(Option::is_some) => return,
        };
        let site = Arc::clone(&site);
        let mut exit = exit.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let site = Arc::clone(&site);
                async move { site.handle(req).await }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = exit.wait_for(Option::is_some) => {}
            }
        });
    }
}

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
struct Unanswered;

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closed without answering (scripted)")
    }
}

impl std::error::Error for Unanswered {}

impl Site {
    async fn handle(
        &self,
        req: http::Request<Incoming>,
    ) -> Result<http::Response<HeldBody>, Unanswered> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map_err(|_| Unanswered)?.to_bytes();
        let received = Received {
            function: self.function.clone(),
            instance: self.instance.clone(),
            method: parts.method,
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body,
            at: tokio::time::Instant::now(),
        };
        let reply = {
            let script = self.script.lock().unwrap_or_else(|p| p.into_inner());
            match received.path.as_str() {
                "/invoke" => (script.invoke)(&received),
                "/initialize" => script.initialize.clone(),
                "/pre-stop" => script.pre_stop.clone(),
                "/pre-freeze" => script.pre_freeze.clone(),
                _ => Reply::status(404, "no such path"),
            }
        };
        self.log.line(&format!(
            "fake {}: {} {}",
            self.instance, received.method, received.path
        ));
        self.recorder.push(Call::Request(received));
        let answer = match reply {
            Reply::Answer(a) => a,
            Reply::Crash(reason) => {
                self.log.line("fake: crashing (scripted)");
                self.exit.send_if_modified(|e| set_once(e, reason));
                return Err(Unanswered);
            }
            Reply::Close => return Err(Unanswered),
            Reply::Hang => std::future::pending().await,
        };
        if !answer.delay.is_zero() {
            tokio::time::sleep(answer.delay).await;
        }
        let (tx, rx) = mpsc::channel(2);
        let _ = tx.try_send(answer.body.clone());
        match answer.hold {
            Some(gate) => {
                tokio::spawn(async move {
                    gate.wait().await;
                    drop(tx);
                });
            }
            None => drop(tx),
        }
        let mut response = http::Response::new(HeldBody(rx));
        *response.status_mut() =
            http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::OK);
        for (name, value) in &answer.headers {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                response.headers_mut().append(n, v);
            }
        }
        Ok(response)
    }
}

/// Sets the exit once; later ends do not overwrite the first.
fn set_once(exit: &mut Option<ExitReason>, reason: ExitReason) -> bool {
    if exit.is_some() {
        return false;
    }
    *exit = Some(reason);
    true
}

/// A response body fed by a channel: ends when the sender is dropped.
struct HeldBody(mpsc::Receiver<Bytes>);

impl HttpBody for HeldBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// A fake instance's handles: ending it is reporting its exit (its server then closes).
struct FakeControl {
    instance: String,
    exit: Exit,
    recorder: Arc<Recorder>,
    ignore_sigterm: bool,
    frozen: AtomicBool,
}

#[async_trait]
impl Control for FakeControl {
    fn kill(&self) {
        if self
            .exit
            .send_if_modified(|e| set_once(e, ExitReason::Signal(libc::SIGKILL)))
        {
            self.recorder.push(Call::Kill {
                instance: self.instance.clone(),
            });
        }
    }

    fn terminate(&self) {
        if !self.ignore_sigterm {
            self.exit
                .send_if_modified(|e| set_once(e, ExitReason::Signal(libc::SIGTERM)));
        }
    }

    async fn freeze(&self) -> std::io::Result<()> {
        self.frozen.store(true, Ordering::Release);
        Ok(())
    }

    async fn thaw(&self) -> std::io::Result<()> {
        self.frozen.store(false, Ordering::Release);
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
