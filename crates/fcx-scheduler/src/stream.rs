//! The streamed answer of an invocation: forwards the instance's response body as it comes,
//! keeps the request's concurrency slot and its reserved-concurrency admission until the
//! last byte, enforces the function timeout on the body too, and writes the request's end
//! marker into the instance log and records the invocation's metrics when done.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use fcx_protocol::outcome;
use fcx_runtime::body::BoxError;
use fcx_runtime::ResponseBody;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::limits::Admission;
use crate::pool::Lease;

/// What the metrics need when the answer ends.
pub struct Observed {
    pub metrics: Arc<fcx_metrics::FunctionMetrics>,
    /// The request's arrival.
    pub request_started: std::time::Instant,
    /// When `/invoke` was called.
    pub call_started: std::time::Instant,
    pub cold_start: bool,
}

pub struct InvocationBody {
    inner: ResponseBody,
    deadline: Instant,
    /// Armed only if the body is not complete on the first poll (most answers are), so the
    /// common case registers no timer.
    timer: Option<Pin<Box<Sleep>>>,
    lease: Option<Lease>,
    /// The request's place in its function's reserved concurrency: the request is in
    /// flight until its answer's last byte.
    admission: Option<Admission>,
    request_id: String,
    timeout_secs: u32,
    observed: Observed,
}

impl InvocationBody {
    pub fn new(
        inner: ResponseBody,
        lease: Lease,
        admission: Admission,
        deadline: Instant,
        request_id: String,
        timeout_secs: u32,
        observed: Observed,
    ) -> InvocationBody {
        InvocationBody {
            inner,
            deadline,
            timer: None,
            lease: Some(lease),
            admission: Some(admission),
            request_id,
            timeout_secs,
            observed,
        }
    }

    /// Ends the request: end marker, metrics, slot and admission released. `failure` is
    /// the FC code when the answer broke off (a drop before the end counts as success: the
    /// client went away).
    fn finish(&mut self, failure: Option<(fcx_metrics::Outcome, &'static str)>) {
        self.admission.take();
        if let Some(lease) = self.lease.take() {
            let instance = &lease.slot.instance;
            let (outcome, code) = failure.unwrap_or((fcx_metrics::Outcome::Success, ""));
            let o = &self.observed;
            o.metrics.finished(&fcx_metrics::Finished {
                request_id: &self.request_id,
                instance_id: &instance.id,
                outcome,
                code,
                total: o.request_started.elapsed(),
                in_instance: Some(o.call_started.elapsed()),
                cold_start: o.cold_start,
            });
            instance
                .log()
                .end_when_settled(&self.request_id, fcx_runtime::Marker::Invoke);
        }
    }
}

impl HttpBody for InvocationBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => return Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                if let Some(lease) = &self.lease {
                    lease.discard();
                }
                self.finish(Some((fcx_metrics::Outcome::PlatformError, "BadResponse")));
                return Poll::Ready(Some(Err(e)));
            }
            Poll::Ready(None) => {
                self.finish(None);
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            let message = outcome::timeout_message(self.timeout_secs);
            if let Some(lease) = &self.lease {
                lease
                    .slot
                    .instance
                    .log()
                    .line(&format!("fcx: {message} (request {})", self.request_id));
                lease.discard();
            }
            self.finish(Some((
                fcx_metrics::Outcome::FunctionError,
                "FunctionTimeout",
            )));
            return Poll::Ready(Some(Err(message.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for InvocationBody {
    fn drop(&mut self) {
        self.finish(None);
    }
}
